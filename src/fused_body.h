/* One sample-chunk of the fused training pass, and the chunk reduction + weight update.
 *
 * Included by fused.h once per (element type, instruction set): T is float or double, VT a
 * 32-byte vector of T, VL its lane count, MN_FN(name) the suffixed function name and
 * MN_TARGET the target attribute.  Layouts (hp = hidden padded to a multiple of VL):
 *   w1   (n_in + 1, hp)  input-to-hidden weights, bias weights in row n_in, zero padding
 *   w2t  (k, hp)         hidden-to-output weights transposed, zero padding; b2 (k) the biases
 *   gw1, gw2t, gb2       this chunk's gradient sums, same layouts
 */

/* Sigmoid of a whole vector: exp(-|x|) by range reduction x = n ln2 + r (|r| <= ln2 / 2),
 * a Taylor polynomial for exp(r) (error below an ulp: degree 7 for float, 13 for double) and
 * 2^n put straight into the exponent bits; then (x >= 0 ? 1 : e) / (1 + e).  About ten times
 * faster than calling expf/exp lane by lane, and as accurate. */
MN_TARGET static inline __attribute__((always_inline)) VT MN_FN(mn_vsigmoid)(VT x)
{
    const VT zero = {0};
    const IVT neg = x < zero;
    VT a = (VT)(((IVT)x & ~neg) | ((IVT)(-x) & neg));  /* |x| */
    a = (VT)(((IVT)a & (a < (T)MN_EXP_MAX)) | ((IVT)(zero + (T)MN_EXP_MAX) & ~(a < (T)MN_EXP_MAX)));
    const VT y = -a;                                     /* in [-MN_EXP_MAX, 0] */
    const VT t = y * (T)1.4426950408889634 + (T)MN_ROUND_MAGIC;
    const VT n = t - (T)MN_ROUND_MAGIC;                  /* nearest integer to y / ln2 */
    const VT r = (y - n * (T)MN_LN2_HI) - n * (T)MN_LN2_LO;
    VT p = zero + (T)MN_EXP_C[MN_EXP_DEGREE];
    MN_UNROLL for (int i = MN_EXP_DEGREE - 1; i >= 0; i--) p = p * r + (T)MN_EXP_C[i];
    const IVT ni = __builtin_convertvector(n, IVT);
    const VT scale = (VT)((ni + MN_EXP_BIAS) << MN_MANT_BITS);
    const VT e = p * scale;
    const VT one = zero + (T)1;
    const VT num = (VT)(((IVT)e & neg) | ((IVT)one & ~neg));
    return num / (one + e);
}

/* One block of nv vectors of hidden units (nv a constant after inlining, so the block's
 * sums live in registers while the sample's nonzero pixels stream past). */
MN_TARGET static inline __attribute__((always_inline)) void MN_FN(mn_hidden_block)(
    T *oh, const T *w1, const uint16_t *indices, const T *values, int64_t p0, int64_t p1,
    int64_t n_in, int64_t hp, int64_t j0, const int nv)
{
    VT acc[MN_NV];
    const T *bias = w1 + n_in * hp + j0;
    MN_UNROLL for (int v = 0; v < nv; v++) acc[v] = MN_LOAD(bias + v * VL);
    for (int64_t p = p0; p < p1; p++) {
        const T x = values[p];
        const T *row = w1 + (int64_t)indices[p] * hp + j0;
        if (p + MN_PREFETCH < p1) {
            const char *next = (const char *)(w1 + (int64_t)indices[p + MN_PREFETCH] * hp + j0);
            MN_UNROLL for (int c = 0; c < nv * VL * (int)sizeof(T); c += 64) __builtin_prefetch(next + c);
        }
        MN_UNROLL for (int v = 0; v < nv; v++) acc[v] += x * MN_LOAD(row + v * VL);
    }
    MN_UNROLL for (int v = 0; v < nv; v++) MN_STORE(oh + j0 + v * VL, acc[v]);
}

/* gw1[pixel, block] += x * dh[block] for each nonzero pixel, then the bias row. */
MN_TARGET static inline __attribute__((always_inline)) void MN_FN(mn_scatter_block)(
    T *gw1, const T *dh, const uint16_t *indices, const T *values, int64_t p0, int64_t p1,
    int64_t n_in, int64_t hp, int64_t j0, const int nv)
{
    VT d[MN_NV];
    MN_UNROLL for (int v = 0; v < nv; v++) d[v] = MN_LOAD(dh + j0 + v * VL);
    for (int64_t p = p0; p < p1; p++) {
        const T x = values[p];
        T *g = gw1 + (int64_t)indices[p] * hp + j0;
        if (p + MN_PREFETCH < p1) {
            const char *next = (const char *)(gw1 + (int64_t)indices[p + MN_PREFETCH] * hp + j0);
            MN_UNROLL for (int c = 0; c < nv * VL * (int)sizeof(T); c += 64) __builtin_prefetch(next + c, 1);
        }
        MN_UNROLL for (int v = 0; v < nv; v++) MN_STORE(g + v * VL, MN_LOAD(g + v * VL) + x * d[v]);
    }
    T *g = gw1 + n_in * hp + j0;  /* the bias input is 1 */
    MN_UNROLL for (int v = 0; v < nv; v++) MN_STORE(g + v * VL, MN_LOAD(g + v * VL) + d[v]);
}

/* Run BLOCK over all of hp: full blocks of MN_NV vectors, then the remainder with a
 * constant count, so every call site is specialised. */
#define MN_OVER_BLOCKS(BLOCK, ...) do { \
    const int64_t nvec_ = hp / VL; int64_t j0_ = 0; \
    for (; j0_ + MN_BLOCK <= hp; j0_ += MN_BLOCK) BLOCK(__VA_ARGS__, j0_, MN_NV); \
    switch (nvec_ % MN_NV) { \
    case 1: BLOCK(__VA_ARGS__, j0_, 1); break; case 2: BLOCK(__VA_ARGS__, j0_, 2); break; \
    case 3: BLOCK(__VA_ARGS__, j0_, 3); break; case 4: BLOCK(__VA_ARGS__, j0_, 4); break; \
    case 5: BLOCK(__VA_ARGS__, j0_, 5); break; case 6: BLOCK(__VA_ARGS__, j0_, 6); break; \
    case 7: BLOCK(__VA_ARGS__, j0_, 7); break; case 8: BLOCK(__VA_ARGS__, j0_, 8); break; \
    case 9: BLOCK(__VA_ARGS__, j0_, 9); break; default: break; } } while (0)

/* Forward (and, when gw1 != NULL, backward) over samples order[r0..r1) (or r0..r1 when order
 * is NULL).  Adds the chunk's summed loss to stats[0] and its correct count to stats[1].
 * Scratch: oh, dh (hp each), o (k).  Samples are visited in order: the sums are fixed. */
MN_TARGET static void MN_FN(mn_chunk)(
    T *gw1, T *gw2t, T *gb2, double *stats,
    T *oh, T *dh, T *o,
    const int64_t *indptr, const uint16_t *indices, const T *values, const int64_t *order,
    const T *targets, const int32_t *labels,
    const T *w1, const T *w2t, const T *b2,
    int64_t r0, int64_t r1, int64_t n_in, int64_t h, int64_t hp, int64_t k,
    int loss, int act)
{
    double loss_sum = 0.0, correct = 0.0;
    int64_t j, kk;
    int v;
    if (gw1 != NULL) {
        memset(gw1, 0, sizeof(T) * (size_t)((n_in + 1) * hp));
        memset(gw2t, 0, sizeof(T) * (size_t)(k * hp));
        memset(gb2, 0, sizeof(T) * (size_t)k);
    }
    for (int64_t r = r0; r < r1; r++) {
        const int64_t s = order ? order[r] : r;
        const int64_t p0 = indptr[s], p1 = indptr[s + 1];
        const T *y = targets + s * k;

        /* Hidden layer, fused with its transfer function below. */
        MN_OVER_BLOCKS(MN_FN(mn_hidden_block), oh, w1, indices, values, p0, p1, n_in, hp);
        if (act == MN_ACT_SIGMOID) {
            for (j = 0; j < hp; j += VL) MN_STORE(oh + j, MN_FN(mn_vsigmoid)(MN_LOAD(oh + j)));
        } else {
            for (j = 0; j < h; j++) oh[j] = MN_ACTIVATE(oh[j], act);
        }
        for (j = h; j < hp; j++) oh[j] = 0;  /* padding contributes nothing downstream */

        /* Output layer: k dot products of length hp. */
        for (kk = 0; kk < k; kk++) {
            VT sum = {0};
            const T *wr = w2t + kk * hp;
            for (j = 0; j < hp; j += VL) sum += MN_LOAD(oh + j) * MN_LOAD(wr + j);
            T u = b2[kk];
            MN_UNROLL for (v = 0; v < VL; v++) u += sum[v];
            o[kk] = u;
        }
        if (loss == MN_LOSS_XE) {  /* softmax, its maximum subtracted; log-softmax for the loss */
            T top = o[0];
            for (kk = 1; kk < k; kk++) if (o[kk] > top) top = o[kk];
            double total = 0.0;
            for (kk = 0; kk < k; kk++) total += MN_EXP(o[kk] - top);
            const double log_total = log(total);
            for (kk = 0; kk < k; kk++) {
                const double log_o = (double)(o[kk] - top) - log_total;
                loss_sum -= (double)y[kk] * log_o;
                o[kk] = (T)exp(log_o);
            }
        } else {
            for (kk = 0; kk < k; kk++) {
                o[kk] = MN_ACTIVATE(o[kk], act);
                const double e = (double)o[kk] - (double)y[kk];
                loss_sum += e * e;
            }
        }
        int64_t best = 0;  /* first maximum, as np.argmax */
        for (kk = 1; kk < k; kk++) if (o[kk] > o[best]) best = kk;
        correct += (best == labels[s]);
        if (gw1 == NULL) continue;

        /* Backward: output delta, hidden delta through w2t, then every gradient term. */
        for (j = 0; j < hp; j += VL) MN_STORE(dh + j, (VT){0});
        for (kk = 0; kk < k; kk++) {
            const T d = (loss == MN_LOSS_XE) ? o[kk] - y[kk]
                        : (T)2 * (o[kk] - y[kk]) * MN_DERIVATIVE(o[kk], act);
            gb2[kk] += d;
            const T *wr = w2t + kk * hp;
            T *gr = gw2t + kk * hp;
            for (j = 0; j < hp; j += VL) {
                MN_STORE(gr + j, MN_LOAD(gr + j) + d * MN_LOAD(oh + j));
                MN_STORE(dh + j, MN_LOAD(dh + j) + d * MN_LOAD(wr + j));
            }
        }
        for (j = 0; j < h; j++) dh[j] *= MN_DERIVATIVE(oh[j], act);
        MN_OVER_BLOCKS(MN_FN(mn_scatter_block), gw1, dh, indices, values, p0, p1, n_in, hp);
    }
    stats[0] = loss_sum;
    stats[1] = correct;
}

/* w[i, :] -= step * sum over chunks c (in order) of g[c, i, :], for rows i0..i1 of a
 * (rows, cols) matrix whose chunk gradients lie `stride` elements apart.  Sums in double. */
MN_TARGET static void MN_FN(mn_reduce_update)(
    T *w, double *acc, const T *g, int64_t n_chunks, int64_t stride,
    int64_t i0, int64_t i1, int64_t cols, double step)
{
    for (int64_t i = i0; i < i1; i++) {
        for (int64_t j = 0; j < cols; j++) acc[j] = 0.0;
        for (int64_t c = 0; c < n_chunks; c++) {
            const T *gr = g + c * stride + i * cols;
            for (int64_t j = 0; j < cols; j++) acc[j] += (double)gr[j];
        }
        T *wr = w + i * cols;
        for (int64_t j = 0; j < cols; j++) wr[j] = (T)((double)wr[j] - step * acc[j]);
    }
}

#undef MN_OVER_BLOCKS
