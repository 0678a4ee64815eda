/* One sample-chunk of the fused training pass, and the chunk reduction + weight update.
 *
 * Included by fused_variants.h once per (element type, target): T is float or double, and
 * the target's layer (simd_*.h) gives VT, a vector of T, VL its lane count, the operations
 * on it (V_LOAD, V_FMA, ...) and its register blocking (MN_NV, MN_ACC_REGS,
 * MN_CHAIN_SETS); MN_FN(name) is the suffixed function name and MN_TARGET the target
 * attribute.  Layouts (hp = hidden padded to a multiple of VL):
 *   w1   (n_in + 1, hp)  input-to-hidden weights, bias weights in row n_in, zero padding
 *   w2t  (k, hp)         hidden-to-output weights transposed, zero padding; b2 (k) the biases
 *   gw1, gw2t, gb2       this chunk's gradient sums, same layouts
 *
 * Tiling.  A pixel's weight row (and its gradient row) is hp values: 75 hidden units make
 * 320 bytes, the whole of w1 250 kB, which lives in L2, not L1.  Streaming each sample's
 * nonzero pixels straight through w1 moves a row from L2 per pixel (and, for the gradient,
 * one back): the pass is then L2-bound.  So samples go in groups of MN_GROUP, and pixels in
 * tiles of rows (sizes in fused.h, as measured): every sample of the group adds its pixels
 * of one tile before the next tile is touched.  Each row then crosses from L2 once per
 * group rather than once per pixel.  Within a sample, pixels are still added in index
 * order, so the sums are exactly those of the untiled loop (blocks of interleaved sums,
 * whose sets would restart at each tile, are not tiled).  (The full-batch gradient reads
 * each row once per group anyway: see mn_runs_block.)
 */

/* exp(-a) for a whole vector, a in [0, MN_EXP_MAX] (the sigmoid's exp(-|x|) and the
 * softmax's): range reduction -a = n ln2 + r (|r| <= ln2 / 2), a Taylor polynomial for
 * exp(r) (error below an ulp: degree 7 for float, 13 for double) and 2^n put straight into
 * the exponent bits.  About ten times faster than calling expf/exp lane by lane, and as
 * accurate. */
MN_TARGET static MN_ALWAYS_INLINE VT MN_FN(mn_vexp_neg)(VT a)
{
    const VT y = V_SUB(V_ZERO(), a);                     /* in [-MN_EXP_MAX, 0] */
    const VT t = V_FMA(y, V_SET1((T)1.4426950408889634), V_SET1((T)MN_ROUND_MAGIC));
    const VT n = V_SUB(t, V_SET1((T)MN_ROUND_MAGIC));    /* nearest integer to y / ln2 */
    const VT r = V_FMA(n, V_SET1((T)-MN_LN2_LO), V_FMA(n, V_SET1((T)-MN_LN2_HI), y));
    VT p = V_SET1((T)MN_EXP_C[MN_EXP_DEGREE]);
    MN_UNROLL for (int i = MN_EXP_DEGREE - 1; i >= 0; i--)
        p = V_FMA(p, r, V_SET1((T)MN_EXP_C[i]));
    return V_MUL(p, V_POW2I(t));
}

/* Sigmoid of a whole vector: e = exp(-|x|), then (x >= 0 ? 1 : e) / (1 + e). */
MN_TARGET static MN_ALWAYS_INLINE VT MN_FN(mn_vsigmoid)(VT x)
{
    const VT e = MN_FN(mn_vexp_neg)(V_MIN(V_ABS(x), V_SET1((T)MN_EXP_MAX)));
    const VT one = V_SET1((T)1);
    return V_DIV(V_IF_NEG(x, e, one), V_ADD(one, e));
}

/* Hidden sums of a group, one block of nv vectors (a constant after inlining, so a sample's
 * block lives in registers while its pixels of a tile stream past): u[s] = bias + x_s w1. */
MN_TARGET static MN_ALWAYS_INLINE void MN_FN(mn_hidden_block)(
    T *u, int64_t *cursor, const int64_t *rows, int64_t ns, const int64_t *indptr,
    const uint16_t *indices, const T *values, const T *w1, int64_t n_in, int64_t hp,
    int64_t j0, const int nv)
{
    const int64_t row_bytes = nv * VL * (int64_t)sizeof(T);
    /* Blocks of interleaved sums are not tiled: their sets would restart at each tile, and
     * the rounding follow the cache sizes.  Their rows are short (w1's block of them is a
     * quarter or less of a tile of the longest rows), so a tile rarely cut them anyway. */
    const int64_t tile = MN_CHAIN_SETS(nv) > 1 ? n_in : MN_HIDDEN_TILE_BYTES(row_bytes) / row_bytes;
    /* Rows asked for ahead only when w1 crowds L2 (fused.h, mn_prefetch_above). */
    const int ahead = (n_in + 1) * hp * (int64_t)sizeof(T) > mn_prefetch_above;
    const T *bias = w1 + n_in * hp + j0, *w1j0 = w1 + j0;
    for (int64_t s = 0; s < ns; s++) {
        MN_UNROLL for (int v = 0; v < nv; v++) V_STORE(u + s * hp + j0 + v * VL, V_LOAD(bias + v * VL));
        cursor[s] = indptr[rows[s]];
    }
    for (int64_t t0 = 0; t0 < n_in; t0 += tile) {
        const int64_t t1 = t0 + tile < n_in ? t0 + tile : n_in;
        for (int64_t s = 0; s < ns; s++) {
            int64_t p = cursor[s];
            const int64_t end = indptr[rows[s] + 1];
            if (p == end || indices[p] >= t1) continue;
            VT acc[MN_NV];
            T *us = u + s * hp + j0;
            MN_UNROLL for (int v = 0; v < nv; v++) acc[v] = V_LOAD(us + v * VL);
            /* Few vectors: too few independent multiply-add chains to hide their latency,
             * so consecutive entries go round-robin to `sets` sets of sums (fixed by nv,
             * so the order of every sum is fixed). */
            const int sets = MN_CHAIN_SETS(nv);
            if (sets > 1) {
                VT more[MN_MAX_SETS - 1][MN_NV];
                MN_UNROLL for (int q = 0; q < sets - 1; q++)
                    MN_UNROLL for (int v = 0; v < nv; v++) more[q][v] = V_ZERO();
                for (; p + sets - 1 < end && indices[p + sets - 1] < t1; p += sets) {
                    const T *row = w1j0 + (int64_t)indices[p] * hp;
                    if (ahead)
                        MN_UNROLL for (int q = 0; q < sets; q++)
                            if (p + MN_AHEAD + q < end)
                                mn_prefetch_span(w1j0 + (int64_t)indices[p + MN_AHEAD + q] * hp,
                                                 row_bytes);
                    const VT x = V_SET1(values[p]);
                    MN_UNROLL for (int v = 0; v < nv; v++)
                        acc[v] = V_FMA(x, V_LOAD(row + v * VL), acc[v]);
                    MN_UNROLL for (int q = 0; q < sets - 1; q++) {
                        const T *rq = w1j0 + (int64_t)indices[p + 1 + q] * hp;
                        const VT xq = V_SET1(values[p + 1 + q]);
                        MN_UNROLL for (int v = 0; v < nv; v++)
                            more[q][v] = V_FMA(xq, V_LOAD(rq + v * VL), more[q][v]);
                    }
                }
                if (sets == 4)
                    MN_UNROLL for (int v = 0; v < nv; v++)
                        acc[v] = V_ADD(V_ADD(acc[v], more[0][v]), V_ADD(more[1][v], more[2][v]));
                else
                    MN_UNROLL for (int v = 0; v < nv; v++) acc[v] = V_ADD(acc[v], more[0][v]);
            }
            for (; p < end && indices[p] < t1; p++) {
                const VT x = V_SET1(values[p]);
                const T *row = w1j0 + (int64_t)indices[p] * hp;
                MN_OPAQUE(row);
                if (ahead && p + MN_AHEAD < end)
                    mn_prefetch_span(w1j0 + (int64_t)indices[p + MN_AHEAD] * hp, row_bytes);
                MN_UNROLL for (int v = 0; v < nv; v++) acc[v] = V_FMA(x, V_LOAD(row + v * VL), acc[v]);
            }
            MN_UNROLL for (int v = 0; v < nv; v++) V_STORE(us + v * VL, acc[v]);
            cursor[s] = p;
        }
    }
}

/* Gradient of a group, one block: gw1[pixel] += x * d[s] for each nonzero pixel of each
 * sample, tile by tile; then the bias row gets every d[s] (its input is 1). */
MN_TARGET static MN_ALWAYS_INLINE void MN_FN(mn_scatter_block)(
    T *gw1, int64_t *cursor, const T *d, const int64_t *rows, int64_t ns,
    const int64_t *indptr, const uint16_t *indices, const T *values, int64_t n_in, int64_t hp,
    int64_t j0, const int nv)
{
    const int64_t tile = MN_SCATTER_TILE_BYTES / (nv * VL * (int64_t)sizeof(T));
    VT bias[MN_NV];
    T *gb = gw1 + n_in * hp + j0, *gw1j0 = gw1 + j0;
    MN_UNROLL for (int v = 0; v < nv; v++) bias[v] = V_LOAD(gb + v * VL);
    for (int64_t s = 0; s < ns; s++) {
        MN_UNROLL for (int v = 0; v < nv; v++)
            bias[v] = V_ADD(bias[v], V_LOAD(d + s * hp + j0 + v * VL));
        cursor[s] = indptr[rows[s]];
    }
    MN_UNROLL for (int v = 0; v < nv; v++) V_STORE(gb + v * VL, bias[v]);
    for (int64_t t0 = 0; t0 < n_in; t0 += tile) {
        const int64_t t1 = t0 + tile < n_in ? t0 + tile : n_in;
        for (int64_t s = 0; s < ns; s++) {
            int64_t p = cursor[s];
            const int64_t end = indptr[rows[s] + 1];
            if (p == end || indices[p] >= t1) continue;
            VT ds[MN_NV];
            MN_UNROLL for (int v = 0; v < nv; v++) ds[v] = V_LOAD(d + s * hp + j0 + v * VL);
            for (; p < end && indices[p] < t1; p++) {
                const VT x = V_SET1(values[p]);
                T *g = gw1j0 + (int64_t)indices[p] * hp;
                MN_UNROLL for (int v = 0; v < nv; v++)
                    V_STORE(g + v * VL, V_FMA(x, ds[v], V_LOAD(g + v * VL)));
            }
            cursor[s] = p;
        }
    }
}

/* The same gradient from the group's runs (mn_runs): each pixel's row is loaded once, gets
 * the run's terms in sample order (the sums of mn_scatter_block, bit for bit) and is stored
 * once.  The runs come ordered by length, so the inner loop's trip count repeats from one
 * run to the next and its exit is predicted; in pixel order it was mispredicted about once
 * a run.  Measured alone on the lab's 1,000 images (hidden 30, AVX-512, groups of 32): 61 us,
 * 101 us with the runs in pixel order, 117 us for mn_scatter_block's per-sample scatter. */
MN_TARGET static MN_ALWAYS_INLINE void MN_FN(mn_runs_block)(
    T *gw1, const T *d, int64_t ns, const int64_t *run_start, const uint16_t *run_pixel,
    const uint8_t *sample, const T *value, int64_t r0, int64_t r1, int64_t n_in, int64_t hp,
    int64_t j0, const int nv)
{
    VT acc[MN_NV];
    T *gb = gw1 + n_in * hp + j0, *gw1j0 = gw1 + j0;
    const T *dj0 = d + j0;
    MN_UNROLL for (int v = 0; v < nv; v++) acc[v] = V_LOAD(gb + v * VL);
    for (int64_t s = 0; s < ns; s++)
        MN_UNROLL for (int v = 0; v < nv; v++) acc[v] = V_ADD(acc[v], V_LOAD(dj0 + s * hp + v * VL));
    MN_UNROLL for (int v = 0; v < nv; v++) V_STORE(gb + v * VL, acc[v]);
    for (int64_t r = r0; r < r1; r++) {
        T *g = gw1j0 + (int64_t)run_pixel[r] * hp;
        MN_UNROLL for (int v = 0; v < nv; v++) acc[v] = V_LOAD(g + v * VL);
        for (int64_t e = run_start[r]; e < run_start[r + 1]; e++) {
            const VT x = V_SET1(value[e]);
            const T *ds = dj0 + (int64_t)sample[e] * hp;
            MN_UNROLL for (int v = 0; v < nv; v++) acc[v] = V_FMA(x, V_LOAD(ds + v * VL), acc[v]);
        }
        MN_UNROLL for (int v = 0; v < nv; v++) V_STORE(g + v * VL, acc[v]);
    }
}

/* Run BLOCK over all of hp: full blocks of MN_NV vectors, then the remainder with a
 * constant count, so every call site is specialised (layers have 10 <= MN_NV <= 16). */
#define MN_BLOCK (MN_NV * VL)
#define MN_CASE(k, BLOCK, ...) case k: BLOCK(__VA_ARGS__, j0_, k); break;
#if MN_NV > 10
#define MN_CASES_10_TO_15(BLOCK, ...) MN_CASE(10, BLOCK, __VA_ARGS__) \
    MN_CASE(11, BLOCK, __VA_ARGS__) MN_CASE(12, BLOCK, __VA_ARGS__) \
    MN_CASE(13, BLOCK, __VA_ARGS__) MN_CASE(14, BLOCK, __VA_ARGS__) \
    MN_CASE(15, BLOCK, __VA_ARGS__)
#else
#define MN_CASES_10_TO_15(BLOCK, ...)
#endif
#define MN_OVER_BLOCKS(BLOCK, ...) do { \
    const int64_t nvec_ = hp / VL; int64_t j0_ = 0; \
    for (; j0_ + MN_BLOCK <= hp; j0_ += MN_BLOCK) BLOCK(__VA_ARGS__, j0_, MN_NV); \
    switch (nvec_ % MN_NV) { \
    MN_CASE(1, BLOCK, __VA_ARGS__) MN_CASE(2, BLOCK, __VA_ARGS__) \
    MN_CASE(3, BLOCK, __VA_ARGS__) MN_CASE(4, BLOCK, __VA_ARGS__) \
    MN_CASE(5, BLOCK, __VA_ARGS__) MN_CASE(6, BLOCK, __VA_ARGS__) \
    MN_CASE(7, BLOCK, __VA_ARGS__) MN_CASE(8, BLOCK, __VA_ARGS__) \
    MN_CASE(9, BLOCK, __VA_ARGS__) MN_CASES_10_TO_15(BLOCK, __VA_ARGS__) \
    default: break; } } while (0)

/* The hidden sums and the input layer's gradient of a group, over all blocks.  Out of line:
 * inlined into the large mn_chunk, their inner loops lost registers to spills (measured
 * about 1.5x slower). */
MN_TARGET static MN_NOINLINE void MN_FN(mn_hidden_group)(
    T *u, int64_t *cursor, const int64_t *rows, int64_t ns, const int64_t *indptr,
    const uint16_t *indices, const T *values, const T *w1, int64_t n_in, int64_t hp)
{
    MN_OVER_BLOCKS(MN_FN(mn_hidden_block), u, cursor, rows, ns, indptr, indices, values, w1,
                   n_in, hp);
}

MN_TARGET static MN_NOINLINE void MN_FN(mn_scatter_group)(
    T *gw1, int64_t *cursor, const T *d, const int64_t *rows, int64_t ns,
    const int64_t *indptr, const uint16_t *indices, const T *values, int64_t n_in, int64_t hp)
{
    MN_OVER_BLOCKS(MN_FN(mn_scatter_block), gw1, cursor, d, rows, ns, indptr, indices, values,
                   n_in, hp);
}

MN_TARGET static MN_NOINLINE void MN_FN(mn_runs_group)(
    T *gw1, const T *d, int64_t ns, const mn_runs *runs, int64_t group, int64_t n_in,
    int64_t hp)
{
    MN_OVER_BLOCKS(MN_FN(mn_runs_block), gw1, d, ns, runs->run_start, runs->run_pixel,
                   runs->sample, (const T *)runs->value, runs->group_runs[group],
                   runs->group_runs[group + 1], n_in, hp);
}

/* Dense columns.  Pixels that are nonzero in most samples are cheaper as a dense block
 * (xd, one row of m values per sample, the pixels dcols) than as CSR entries: no index per
 * entry, and every weight row loaded serves several samples (forward) or every delta
 * loaded serves several pixels (gradient), with the sums in registers.  MN_DENSE_COUNT(nv)
 * samples (pixels) at a time: as many as the registers hold next to nv vectors. */
#define MN_DENSE_COUNT(nv) (MN_ACC_REGS / (nv) >= MN_DENSE_MAX ? MN_DENSE_MAX \
                            : MN_ACC_REGS / (nv) < 1 ? 1 : MN_ACC_REGS / (nv))

/* u[i] += sum over dense columns c of xd[rows[i]][c] * w1[dcols[c]], for `count` samples. */
MN_TARGET static MN_ALWAYS_INLINE void MN_FN(mn_dense_hidden_rows)(
    T *u, const int64_t *rows, const T *xd, int64_t m, const int64_t *dcols, const T *w1,
    int64_t hp, int64_t j0, const int nv, const int count)
{
    VT acc[MN_DENSE_MAX][MN_NV];
    const T *x[MN_DENSE_MAX];
    MN_UNROLL for (int i = 0; i < count; i++) {
        x[i] = xd + rows[i] * m;
        MN_UNROLL for (int v = 0; v < nv; v++) acc[i][v] = V_LOAD(u + i * hp + j0 + v * VL);
    }
    for (int64_t c = 0; c < m; c++) {
        const T *row = w1 + dcols[c] * hp + j0;
        VT r[MN_NV];
        MN_UNROLL for (int v = 0; v < nv; v++) r[v] = V_LOAD(row + v * VL);
        MN_UNROLL for (int i = 0; i < count; i++) {
            const VT xi = V_SET1(x[i][c]);
            MN_UNROLL for (int v = 0; v < nv; v++) acc[i][v] = V_FMA(xi, r[v], acc[i][v]);
        }
    }
    MN_UNROLL for (int i = 0; i < count; i++)
        MN_UNROLL for (int v = 0; v < nv; v++) V_STORE(u + i * hp + j0 + v * VL, acc[i][v]);
}

MN_TARGET static MN_ALWAYS_INLINE void MN_FN(mn_dense_hidden_block)(
    T *u, const int64_t *rows, int64_t ns, const T *xd, int64_t m, const int64_t *dcols,
    const T *w1, int64_t hp, int64_t j0, const int nv)
{
    const int count = MN_DENSE_COUNT(nv);
    int64_t s = 0;
    for (; s + count <= ns; s += count)
        MN_FN(mn_dense_hidden_rows)(u + s * hp, rows + s, xd, m, dcols, w1, hp, j0, nv, count);
    for (; s < ns; s++)
        MN_FN(mn_dense_hidden_rows)(u + s * hp, rows + s, xd, m, dcols, w1, hp, j0, nv, 1);
}

/* gw1[dcols[c0 + i]] += sum over the group's samples s, in order, of xd[rows[s]][c0 + i] d[s],
 * for `count` columns. */
MN_TARGET static MN_ALWAYS_INLINE void MN_FN(mn_dense_scatter_cols)(
    T *gw1, const T *d, const int64_t *rows, int64_t ns, const T *xd, int64_t m,
    const int64_t *dcols, int64_t c0, int64_t hp, int64_t j0, const int nv, const int count)
{
    VT acc[MN_DENSE_MAX][MN_NV];
    MN_UNROLL for (int i = 0; i < count; i++)
        MN_UNROLL for (int v = 0; v < nv; v++) acc[i][v] = V_ZERO();
    for (int64_t s = 0; s < ns; s++) {
        const T *x = xd + rows[s] * m + c0;
        VT ds[MN_NV];
        MN_UNROLL for (int v = 0; v < nv; v++) ds[v] = V_LOAD(d + s * hp + j0 + v * VL);
        MN_UNROLL for (int i = 0; i < count; i++) {
            const VT xi = V_SET1(x[i]);
            MN_UNROLL for (int v = 0; v < nv; v++) acc[i][v] = V_FMA(xi, ds[v], acc[i][v]);
        }
    }
    MN_UNROLL for (int i = 0; i < count; i++) {
        T *g = gw1 + dcols[c0 + i] * hp + j0;
        MN_UNROLL for (int v = 0; v < nv; v++)
            V_STORE(g + v * VL, V_ADD(V_LOAD(g + v * VL), acc[i][v]));
    }
}

MN_TARGET static MN_ALWAYS_INLINE void MN_FN(mn_dense_scatter_block)(
    T *gw1, const T *d, const int64_t *rows, int64_t ns, const T *xd, int64_t m,
    const int64_t *dcols, int64_t hp, int64_t j0, const int nv)
{
    const int count = MN_DENSE_COUNT(nv);
    int64_t c = 0;
    for (; c + count <= m; c += count)
        MN_FN(mn_dense_scatter_cols)(gw1, d, rows, ns, xd, m, dcols, c, hp, j0, nv, count);
    for (; c < m; c++)
        MN_FN(mn_dense_scatter_cols)(gw1, d, rows, ns, xd, m, dcols, c, hp, j0, nv, 1);
}

MN_TARGET static MN_NOINLINE void MN_FN(mn_dense_hidden_group)(
    T *u, const int64_t *rows, int64_t ns, const T *xd, int64_t m, const int64_t *dcols,
    const T *w1, int64_t hp)
{
    MN_OVER_BLOCKS(MN_FN(mn_dense_hidden_block), u, rows, ns, xd, m, dcols, w1, hp);
}

MN_TARGET static MN_NOINLINE void MN_FN(mn_dense_scatter_group)(
    T *gw1, const T *d, const int64_t *rows, int64_t ns, const T *xd, int64_t m,
    const int64_t *dcols, int64_t hp)
{
    MN_OVER_BLOCKS(MN_FN(mn_dense_scatter_block), gw1, d, rows, ns, xd, m, dcols, hp);
}

/* Samples (pixels) per dense-column pass in hp's first block (mn_dense_count in fused.h). */
static inline int MN_FN(mn_dense_count)(int64_t hp)
{
    const int64_t nv = hp / VL;
    return MN_DENSE_COUNT(nv > MN_NV ? MN_NV : nv < 1 ? 1 : (int)nv);
}

#undef MN_DENSE_COUNT

/* The output layer's weights by hidden unit, biases last: h + 1 rows of kp (k rounded up to
 * whole vectors, zero padded).  The output layer is then whole-vector multiply-adds with no
 * horizontal sums.  Written once per pass, read by every chunk. */
MN_TARGET static void MN_FN(mn_output_weights)(T *w2, const T *w2t, const T *b2, int64_t h,
                                               int64_t hp, int64_t k)
{
    const int64_t kp = (k + VL - 1) / VL * VL;
    for (int64_t j = 0; j <= h; j++)
        for (int64_t kk = 0; kk < kp; kk++)
            w2[j * kp + kk] = kk >= k ? 0 : j < h ? w2t[kk * hp + j] : b2[kk];
}

/* Output sums of one sample for nc vectors of outputs from c: the biases + the sum over
 * hidden units j of oh[j] * (row j of w2), each vector in four interleaved partial sums, so
 * 4 * nc independent multiply-add chains are in flight. */
MN_TARGET static MN_ALWAYS_INLINE void MN_FN(mn_output_block)(
    T *o, const T *oh, const T *w2, int64_t h, int64_t kp, int64_t c, const int nc)
{
    VT a[2][4];
    int64_t j = 0;
    MN_UNROLL for (int q = 0; q < nc; q++) {
        a[q][0] = V_LOAD(w2 + h * kp + c + q * VL);
        a[q][1] = a[q][2] = a[q][3] = V_ZERO();
    }
    for (; j + 4 <= h; j += 4)
        MN_UNROLL for (int i = 0; i < 4; i++) {
            const VT x = V_SET1(oh[j + i]);
            const T *w = w2 + (j + i) * kp + c;
            MN_UNROLL for (int q = 0; q < nc; q++) a[q][i] = V_FMA(x, V_LOAD(w + q * VL), a[q][i]);
        }
    for (; j < h; j++) {
        const VT x = V_SET1(oh[j]);
        MN_UNROLL for (int q = 0; q < nc; q++)
            a[q][0] = V_FMA(x, V_LOAD(w2 + j * kp + c + q * VL), a[q][0]);
    }
    MN_UNROLL for (int q = 0; q < nc; q++)
        V_STORE(o + c + q * VL, V_ADD(a[q][0], V_ADD(V_ADD(a[q][1], a[q][2]), a[q][3])));
}

/* Hidden deltas of one sample, one block of nv vectors of hidden units from j0: (W2 dk)
 * f'(hidden).  Each vector's sum is one chain of k multiply-adds; the block's nv chains in
 * flight hide their latency (one at a time, each waited on the last: 28 % of
 * mn_group_forward in a full-run profile). */
MN_TARGET static MN_ALWAYS_INLINE void MN_FN(mn_delta_block)(
    T *dh, const T *dk, const T *oh, const T *w2t, int64_t hp, int64_t k, int act, int64_t j0,
    const int nv)
{
    const VT one = V_SET1((T)1);
    VT a[MN_NV];
    MN_UNROLL for (int v = 0; v < nv; v++) a[v] = V_ZERO();
    for (int64_t kk = 0; kk < k; kk++) {
        const VT x = V_SET1(dk[kk]);
        const T *w = w2t + kk * hp + j0;
        MN_UNROLL for (int v = 0; v < nv; v++) a[v] = V_FMA(x, V_LOAD(w + v * VL), a[v]);
    }
    MN_UNROLL for (int v = 0; v < nv; v++) {
        if (act == MN_ACT_SIGMOID) {  /* sigmoid' = o (1 - o) */
            const VT ov = V_LOAD(oh + j0 + v * VL);
            a[v] = V_MUL(a[v], V_MUL(ov, V_SUB(one, ov)));
        }
        V_STORE(dh + j0 + v * VL, a[v]);
    }
}

/* Forward over one group of ns <= MN_GROUP samples, rows[0..ns) of the data set, and, when
 * dko != NULL, backward to the deltas.  A sample's inputs: its CSR entries plus its row of
 * the dense block xd (m values, the pixels dcols).  Writes the hidden outputs u and, when
 * dko != NULL, the hidden deltas d (rows of hp) and output deltas dko (rows of kstride >= kp,
 * kp = k rounded up to whole vectors); adds the group's losses to *loss_sum and its correct
 * count to *correct.  w2: the output weights from mn_output_weights; o: a row of kp scratch.
 * Each sample's values are its own: the same in any group. */
MN_TARGET static MN_NOINLINE void MN_FN(mn_group_forward)(
    T *u, T *d, T *dko, int64_t kstride, T *o, int64_t *cursor, const int64_t *rows,
    int64_t ns, const int64_t *indptr, const uint16_t *indices, const T *values,
    const T *xd, int64_t m, const int64_t *dcols, const T *targets, const int32_t *labels,
    const T *w1, const T *w2t, const T *w2, int64_t n_in, int64_t h, int64_t hp, int64_t k,
    int loss, int act, double *loss_sum, double *correct)
{
    int64_t j, kk, c;
    const int64_t kp = (k + VL - 1) / VL * VL;
    /* The padding units h..hp are 0, not the sigmoid's 1/2, after either transfer function:
     * the vector holding unit h is multiplied by ones and zeros (made once here), the
     * vectors past it stored as zeros.  (Zeros stored one unit at a time made
     * mn_delta_block's vector load of the row wait for them: a store-forwarding stall per
     * sample.) */
    const int64_t h_vec = h / VL * VL;
    T lane_mask[VL];
    for (j = 0; j < VL; j++) lane_mask[j] = h_vec + j < h ? (T)1 : (T)0;
    const VT keep = V_LOAD(lane_mask);

    /* Hidden layer of the whole group, tiled; its transfer function per sample below. */
    MN_FN(mn_hidden_group)(u, cursor, rows, ns, indptr, indices, values, w1, n_in, hp);
    if (m > 0) MN_FN(mn_dense_hidden_group)(u, rows, ns, xd, m, dcols, w1, hp);

    for (int64_t s = 0; s < ns; s++) {
        T *oh = u + s * hp;
        T *dh = d + s * hp;
        const T *y = targets + rows[s] * k;
        if (act == MN_ACT_SIGMOID) {
            for (j = 0; j < hp; j += VL) V_STORE(oh + j, MN_FN(mn_vsigmoid)(V_LOAD(oh + j)));
        } else {
            for (j = 0; j < h; j++) oh[j] = MN_TANH(oh[j]);  /* the other transfer: tanh */
        }
        if (h_vec < h) V_STORE(oh + h_vec, V_MUL(V_LOAD(oh + h_vec), keep));
        for (j = (h + VL - 1) / VL * VL; j < hp; j += VL) V_STORE(oh + j, V_ZERO());

        /* Output layer, two vectors of outputs at a time (mn_output_block). */
        for (c = 0; c + 2 * VL <= kp; c += 2 * VL) MN_FN(mn_output_block)(o, oh, w2, h, kp, c, 2);
        if (c < kp) MN_FN(mn_output_block)(o, oh, w2, h, kp, c, 1);
        if (loss != MN_LOSS_XE && act == MN_ACT_SIGMOID)
            for (c = 0; c < kp; c += VL) V_STORE(o + c, MN_FN(mn_vsigmoid)(V_LOAD(o + c)));
        if (loss == MN_LOSS_XE) {
            /* Softmax, its maximum subtracted, the exponentials a vector at a time (twenty
             * calls to libm's exp per sample made a measuring pass 15-20% slower); the
             * loss, -sum y (o - top - log total), from sums taken first.  A logit
             * MN_EXP_MAX or more below the top gets probability 0 (kept, its own, the
             * type's smallest normal or less, moved weights the reference leaves alone). */
            T top = o[0];
            for (kk = 1; kk < k; kk++) if (o[kk] > top) top = o[kk];
            double y_sum = 0.0, y_dot = 0.0;
            for (kk = 0; kk < k; kk++) {
                y_sum += (double)y[kk];
                y_dot += (double)y[kk] * (double)(o[kk] - top);
            }
            const VT vtop = V_SET1(top), vmax = V_SET1((T)MN_EXP_MAX);
            for (c = 0; c < kp; c += VL) {
                const VT below = V_SUB(vtop, V_LOAD(o + c));  /* >= 0 */
                const VT e = MN_FN(mn_vexp_neg)(V_MIN(below, vmax));
                V_STORE(o + c, V_IF_NEG(V_SUB(below, vmax), e, V_ZERO()));
            }
            double total = 0.0;
            for (kk = 0; kk < k; kk++) total += (double)o[kk];
            for (kk = 0; kk < k; kk++) o[kk] = (T)((double)o[kk] / total);
            *loss_sum += y_sum * log(total) - y_dot;
        } else {
            if (act != MN_ACT_SIGMOID)
                for (kk = 0; kk < k; kk++) o[kk] = MN_TANH(o[kk]);
            /* A sample's squared errors in two sums held in registers (the chunk's sum
             * lives in memory: adding every term to it chained each add to a store). */
            double se0 = 0.0, se1 = 0.0;
            for (kk = 0; kk + 1 < k; kk += 2) {
                const double e0 = (double)o[kk] - (double)y[kk];
                const double e1 = (double)o[kk + 1] - (double)y[kk + 1];
                se0 += e0 * e0;
                se1 += e1 * e1;
            }
            if (kk < k) {
                const double e = (double)o[kk] - (double)y[kk];
                se0 += e * e;
            }
            *loss_sum += se0 + se1;
        }
        int64_t best = 0;  /* first maximum, as np.argmax */
        T top = o[0];
        for (kk = 1; kk < k; kk++)
            if (o[kk] > top) {
                top = o[kk];
                best = kk;
            }
        *correct += (best == labels[rows[s]]);
        if (dko == NULL) continue;

        /* Backward: the output deltas, then the hidden deltas (mn_delta_block). */
        T *dk = dko + s * kstride;
        for (kk = 0; kk < k; kk++)
            dk[kk] = (loss == MN_LOSS_XE) ? o[kk] - y[kk]
                     : (T)2 * (o[kk] - y[kk]) * MN_DERIVATIVE(o[kk], act);
        for (; kk < kp; kk++) dk[kk] = 0;
        MN_OVER_BLOCKS(MN_FN(mn_delta_block), dh, dk, oh, w2t, hp, k, act);
        if (act != MN_ACT_SIGMOID)
            for (j = 0; j < h; j++) dh[j] *= MN_DERIVATIVE(oh[j], act);
    }
}

/* Forward (and, when gw1 != NULL, backward) over samples r0..r1 (full batch: no order) or
 * order[r0..r1) (measuring), a group at a time (mn_group_forward).  Adds the chunk's summed
 * loss to stats[0] and its correct count to stats[1].  Scratch: u, d (MN_GROUP, hp),
 * cursor, rows (MN_GROUP), and out: (MN_GROUP + 2) * kp values.  With gw1, the chunk's
 * gradient sums go to gw1, gw2t, gb2 (zeroed first); the input layer's from runs (the CSR
 * entries regrouped, this chunk's first group being runs' group group0), or, with runs NULL,
 * scattered.  Samples and pixels are visited in a fixed order: the sums are fixed. */
MN_TARGET static void MN_FN(mn_chunk)(
    T *gw1, T *gw2t, T *gb2, double *stats,
    T *u, T *d, int64_t *cursor, int64_t *rows, T *out,
    const int64_t *indptr, const uint16_t *indices, const T *values,
    const T *xd, int64_t m, const int64_t *dcols, const int64_t *order,
    const T *targets, const int32_t *labels,
    const T *w1, const T *w2t, const T *w2,
    int64_t r0, int64_t r1, int64_t n_in, int64_t h, int64_t hp, int64_t k,
    int loss, int act, const mn_runs *runs, int64_t group0)
{
    double loss_sum = 0.0, correct = 0.0;
    int64_t j, kk, c;
    const int64_t kp = (k + VL - 1) / VL * VL;
    /* Scratch, rows of kp: o, the outputs; dko, the group's output deltas (MN_GROUP rows);
     * gbs, the chunk's bias gradient. */
    T *o = out, *dko = out + kp, *gbs = dko + MN_GROUP * kp;
    if (gw1 != NULL) {
        memset(gw1, 0, sizeof(T) * (size_t)((n_in + 1) * hp));
        memset(gw2t, 0, sizeof(T) * (size_t)(k * hp));
        memset(gbs, 0, sizeof(T) * (size_t)kp);
    }
    for (int64_t g0 = r0; g0 < r1; g0 += MN_GROUP) {
        const int64_t ns = g0 + MN_GROUP < r1 ? MN_GROUP : r1 - g0;
        for (int64_t s = 0; s < ns; s++) rows[s] = order ? order[g0 + s] : g0 + s;
        MN_FN(mn_group_forward)(u, d, gw1 ? dko : NULL, kp, o, cursor, rows, ns, indptr,
                                indices, values, xd, m, dcols, targets, labels, w1, w2t, w2,
                                n_in, h, hp, k, loss, act, &loss_sum, &correct);
        if (gw1 == NULL) continue;
        for (int64_t s = 0; s < ns; s++)
            for (c = 0; c < kp; c += VL)
                V_STORE(gbs + c, V_ADD(V_LOAD(gbs + c), V_LOAD(dko + s * kp + c)));
        /* The output layer's gradient for the group: gw2t[kk] += dk[s][kk] oh[s], sample by
         * sample (the same sums as a sample-at-a-time update, without a store per sample). */
        for (j = 0; j < hp; j += VL) {
            /* Four outputs at a time: four independent multiply-add chains. */
            for (kk = 0; kk + 4 <= k; kk += 4) {
                T *g = gw2t + kk * hp + j;
                VT a0 = V_LOAD(g), a1 = V_LOAD(g + hp), a2 = V_LOAD(g + 2 * hp),
                   a3 = V_LOAD(g + 3 * hp);
                for (int64_t s = 0; s < ns; s++) {
                    const VT hs = V_LOAD(u + s * hp + j);
                    const T *dks = dko + s * kp + kk;
                    a0 = V_FMA(V_SET1(dks[0]), hs, a0);
                    a1 = V_FMA(V_SET1(dks[1]), hs, a1);
                    a2 = V_FMA(V_SET1(dks[2]), hs, a2);
                    a3 = V_FMA(V_SET1(dks[3]), hs, a3);
                }
                V_STORE(g, a0);
                V_STORE(g + hp, a1);
                V_STORE(g + 2 * hp, a2);
                V_STORE(g + 3 * hp, a3);
            }
            for (; kk < k; kk++) {
                VT a = V_LOAD(gw2t + kk * hp + j);
                for (int64_t s = 0; s < ns; s++)
                    a = V_FMA(V_SET1(dko[s * kp + kk]), V_LOAD(u + s * hp + j), a);
                V_STORE(gw2t + kk * hp + j, a);
            }
        }
        /* The input layer's gradient for the whole group: from its runs when the data set
         * has them (the groups are then samples r0.., in order), else scattered, tiled. */
        if (runs != NULL)
            MN_FN(mn_runs_group)(gw1, d, ns, runs, group0 + (g0 - r0) / MN_GROUP, n_in, hp);
        else
            MN_FN(mn_scatter_group)(gw1, cursor, d, rows, ns, indptr, indices, values, n_in,
                                    hp);
        if (m > 0) MN_FN(mn_dense_scatter_group)(gw1, d, rows, ns, xd, m, dcols, hp);
    }
    if (gw1 != NULL)
        for (kk = 0; kk < k; kk++) gb2[kk] = gbs[kk];
    stats[0] = loss_sum;
    stats[1] = correct;
}

/* A mini-batch step's first phase, for samples order[r0..r1) (at most MN_GROUP): forward and
 * deltas, kept for the step's gradient: row i of u, d (hidden outputs and deltas, rows of
 * hp), dko (output deltas, rows of kstride) and xc (dense inputs, rows of m) is sample
 * order[r0 + i]'s.  Adds the samples' summed loss to stats[0], their correct count to
 * stats[1].  Scratch: cursor, rows (MN_GROUP), o (a row of kp). */
MN_TARGET static void MN_FN(mn_deltas)(
    T *u, T *d, T *dko, int64_t kstride, T *xc, double *stats, T *o, int64_t *cursor,
    int64_t *rows, const int64_t *indptr, const uint16_t *indices, const T *values,
    const T *xd, int64_t m, const int64_t *dcols, const int64_t *order, const T *targets,
    const int32_t *labels, const T *w1, const T *w2t, const T *w2, int64_t r0, int64_t r1,
    int64_t n_in, int64_t h, int64_t hp, int64_t k, int loss, int act)
{
    const int64_t ns = r1 - r0;
    double loss_sum = 0.0, correct = 0.0;
    for (int64_t s = 0; s < ns; s++) rows[s] = order[r0 + s];
    MN_FN(mn_group_forward)(u, d, dko, kstride, o, cursor, rows, ns, indptr, indices, values,
                            xd, m, dcols, targets, labels, w1, w2t, w2, n_in, h, hp, k, loss,
                            act, &loss_sum, &correct);
    if (m > 0)
        for (int64_t s = 0; s < ns; s++)
            memcpy(xc + s * m, xd + rows[s] * m, sizeof(T) * (size_t)m);
    stats[0] = loss_sum;
    stats[1] = correct;
}

/* A mini-batch step's second phase, one weight row's gradient, one block of nv vectors:
 * g = (g when add, else 0) + the sum over entries e < n, in order, of x[e * xstride] times
 * row idx[e] (e when idx is NULL) of v (rows of vstride), each term a multiply-add into
 * sums held in registers (so a row's entries in several lists, added list after list, make
 * the same sums as one list). */
MN_TARGET static MN_ALWAYS_INLINE void MN_FN(mn_row_grad_block)(
    T *g, const T *v, int64_t vstride, const int32_t *idx, const T *x, int64_t xstride,
    int64_t n, int add, int64_t j0, const int nv)
{
    VT acc[MN_NV];
    const T *vj0 = v + j0;
    MN_UNROLL for (int q = 0; q < nv; q++) acc[q] = add ? V_LOAD(g + j0 + q * VL) : V_ZERO();
    if (idx != NULL) {
        for (int64_t e = 0; e < n; e++) {
            const VT xe = V_SET1(x[e * xstride]);
            const T *row = vj0 + (int64_t)idx[e] * vstride;
            MN_UNROLL for (int q = 0; q < nv; q++) acc[q] = V_FMA(xe, V_LOAD(row + q * VL), acc[q]);
        }
    } else {
        for (int64_t e = 0; e < n; e++) {
            const VT xe = V_SET1(x[e * xstride]);
            const T *row = vj0 + e * vstride;
            MN_UNROLL for (int q = 0; q < nv; q++) acc[q] = V_FMA(xe, V_LOAD(row + q * VL), acc[q]);
        }
    }
    MN_UNROLL for (int q = 0; q < nv; q++) V_STORE(g + j0 + q * VL, acc[q]);
}

/* The whole row, hp values (a multiple of VL).  The terms of every weight are added in
 * entry order: the same sums whichever thread computes the row. */
MN_TARGET static void MN_FN(mn_row_grad)(
    T *g, const T *v, int64_t vstride, const int32_t *idx, const T *x, int64_t xstride,
    int64_t n, int64_t hp, int add)
{
    MN_OVER_BLOCKS(MN_FN(mn_row_grad_block), g, v, vstride, idx, x, xstride, n, add);
}

/* w[0..m) -= step * (sum over chunks c, in order, of g[c * stride + 0..m)), the partial
 * gradients summed in double a strip at a time (the strip's sums stay in L1). */
MN_TARGET static void MN_FN(mn_reduce_update)(
    T *w, const T *g, int64_t n_chunks, int64_t stride, int64_t m, double step)
{
    double acc[MN_STRIP];
    if (n_chunks == 1) {  /* one chunk (a mini-batch step's row): the same values, one pass */
        for (int64_t j = 0; j < m; j++) w[j] = (T)((double)w[j] - step * (double)g[j]);
        return;
    }
    for (int64_t i0 = 0; i0 < m; i0 += MN_STRIP) {
        const int64_t len = m - i0 < MN_STRIP ? m - i0 : MN_STRIP;
        const T *g0 = g + i0;
        T *wi = w + i0;
        for (int64_t j = 0; j < len; j++) acc[j] = (double)g0[j];
        for (int64_t c = 1; c < n_chunks; c++) {
            const T *gc = g0 + c * stride;
            for (int64_t j = 0; j < len; j++) acc[j] += (double)gc[j];
        }
        for (int64_t j = 0; j < len; j++) wi[j] = (T)((double)wi[j] - step * acc[j]);
    }
}

#undef MN_OVER_BLOCKS
#undef MN_CASES_10_TO_15
#undef MN_CASE
#undef MN_BLOCK
