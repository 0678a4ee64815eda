/* SIMD micro-kernels of the fused training pass (see fused_body.h): one body, built once
 * per target of the architecture through a thin layer of named operations (simd_*.h, see
 * fused_variants.h), and the target picked at run time by what the CPU supports.  On
 * x86-64: AVX-512, AVX2+FMA and the SSE2 baseline, so one wheel runs on any x86-64 and uses
 * the widest vectors it can; on aarch64: NEON.  Plain C and intrinsics: GCC, Clang and MSVC
 * build it (compiler and CPU differences live in platform.h). */
#ifndef MNIST_NATIVE_FUSED_H
#define MNIST_NATIVE_FUSED_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "platform.h"

/* MN_SIMD_SCALAR=1 builds the portable layer only, on any architecture (to test it). */
#ifndef MN_SIMD_SCALAR
#define MN_SIMD_SCALAR 0
#endif
#define MN_LAYERS_X86 (MN_X86 && !MN_SIMD_SCALAR)
#define MN_LAYERS_NEON (MN_ARM64 && !MN_SIMD_SCALAR)

#define MN_LOSS_MSE 0
#define MN_LOSS_XE 1
#define MN_ACT_SIGMOID 1
#define MN_ACT_TANH 2

/* Most sets of interleaved sums a register block adds a sample's pixels in (each layer's
 * MN_CHAIN_SETS(nv) says how many it uses for nv vectors; MN_NV, the vectors per block,
 * and MN_ACC_REGS, the registers a dense pass may fill with sums, are per layer too). */
#define MN_MAX_SETS 4
/* Most samples (or pixels) a dense-column pass keeps sums for at once. */
#define MN_DENSE_MAX 4
/* Samples whose hidden sums are kept together (see fused_body.h, "Tiling").  Groups of 64
 * ran 3-8% faster per iteration than groups of 32 (MNIST, 1,000 and 50,000 images; a
 * gradient row is loaded and stored once per group, and the dense loops run longer), 128
 * no faster; fixed at build time, as the scratch rows per thread and mn_runs's uint8 place
 * in a group follow it. */
#define MN_GROUP 64
/* mn_runs holds a sample's place in its group in a uint8. */
MN_STATIC_ASSERT(MN_GROUP <= 256, mn_group_fits_uint8);
/* Bytes of weight rows per tile: the hidden sums' for rows of up to 320 bytes (hp's blocks
 * of MN_NV vectors or fewer, but AVX-512's) and for longer rows, and the scatter's; and the
 * size of w1 above which the hidden sums prefetch (MN_AHEAD).  Set at import from the
 * running CPU's caches (mnist_native._fused.cache_tuning, where the measurements behind
 * them are); these are the values of a 48 kB L1, 2 MB L2 CPU.  Neither changes a sum. */
static int64_t mn_hidden_tile_short = 160 * 1024, mn_hidden_tile_long = 56 * 1024;
static int64_t mn_scatter_tile_bytes = 28 * 1024;
static int64_t mn_prefetch_above = 1024 * 1024;
#define MN_HIDDEN_TILE_BYTES(row_bytes) \
    ((row_bytes) <= 320 ? mn_hidden_tile_short : mn_hidden_tile_long)
#define MN_SCATTER_TILE_BYTES mn_scatter_tile_bytes
static inline void mn_set_cache_tuning(int64_t hidden_short, int64_t hidden_long,
                                       int64_t scatter, int64_t prefetch_above) {
    mn_hidden_tile_short = hidden_short;
    mn_hidden_tile_long = hidden_long;
    mn_scatter_tile_bytes = scatter;
    mn_prefetch_above = prefetch_above;
}
/* The hidden sums ask for the weight rows of the entry MN_AHEAD places on
 * (mn_prefetch_span) when w1 is larger than mn_prefetch_above bytes (set at import from
 * the L2's size: mnist_native._fused.cache_tuning).  8 and 16 measured alike, 4 slower. */
#define MN_AHEAD 8
/* Weights per strip of the gradient reduction (mn_reduce_update). */
#define MN_STRIP 512

/* A data set's sparse entries regrouped for the input layer's gradient (see mn_runs_block):
 * for each group of MN_GROUP samples, runs of entries of one pixel each, a run's entries in
 * sample order, the group's runs ordered by length.  Group g's runs are group_runs[g] to
 * group_runs[g + 1]; run r's entries run_start[r] to run_start[r + 1]; an entry holds its
 * sample's place in the group and its value (of the kernel's type T). */
typedef struct {
    const int64_t *group_runs;
    const int64_t *run_start;
    const uint16_t *run_pixel;
    const uint8_t *sample;
    const void *value;
} mn_runs;

/* f'(u) written through o = f(u). */
#define MN_DERIVATIVE(o, act) ((act) == MN_ACT_TANH ? 1 - (o) * (o) : (o) * (1 - (o)))

/* Taylor coefficients 1/i! of exp, and the constants of the vector exp (mn_vexp_neg). */
static const double mn_exp_taylor[14] = {
    1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
    1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
#define MN_EXP_C mn_exp_taylor

/* Each type's kernels once per target (fused_variants.h). */
#define MN_CAT_(a, b) a##b
#define MN_CAT(a, b) MN_CAT_(a, b)

/* float: each of these constants is read by fused_variants.h, which undefines them. */
#define T float
#define MN_F64 0
#define MN_SFX _f32
#define MN_EXP_DEGREE 7
#define MN_EXP_MAX 87.0           /* exp(-87) is still a normal float */
#define MN_ROUND_MAGIC 12582912.0 /* 1.5 * 2^23: adding it rounds a float to an integer */
#define MN_LN2_HI 0.693359375     /* ln 2 in two parts: n * MN_LN2_HI is exact */
#define MN_LN2_LO -2.12194440e-4
#define MN_EXP_BIAS 127
#define MN_MANT_BITS 23
#define MN_TANH tanhf  /* the transfer function besides sigmoid (whose vector form is mn_vsigmoid) */
#include "fused_variants.h"

/* double */
#define T double
#define MN_F64 1
#define MN_SFX _f64
#define MN_EXP_DEGREE 13
#define MN_EXP_MAX 708.0
#define MN_ROUND_MAGIC 6755399441055744.0 /* 1.5 * 2^52 */
#define MN_LN2_HI 0.693145751953125
#define MN_LN2_LO 1.42860682030941723212e-6
#define MN_EXP_BIAS 1023
#define MN_MANT_BITS 52
#define MN_TANH tanh
#include "fused_variants.h"

/* The targets of this build, by level (MNIST_NATIVE_SIMD names them), and the one in use:
 * set once at import. */
#if MN_LAYERS_X86
static const char *const mn_simd_names[] = {"baseline", "avx2+fma", "avx512"};
#elif MN_LAYERS_NEON
static const char *const mn_simd_names[] = {"neon"};
#else
static const char *const mn_simd_names[] = {"portable"};
#endif
static inline int mn_simd_count(void) { return (int)(sizeof mn_simd_names / sizeof *mn_simd_names); }
static inline const char *mn_simd_name(int level) { return mn_simd_names[level]; }
static int mn_simd_level = 0;

/* The best level this CPU can run. */
static inline int mn_cpu_simd_level(void) {
#if MN_LAYERS_X86
    return mn_x86_level();
#else
    return 0;
#endif
}

/* Use the best level up to `wanted` that the CPU supports; returns the level in use. */
static inline int mn_simd_init(int wanted) {
    const int best = mn_cpu_simd_level();
    mn_simd_level = wanted < best ? wanted : best;
    return mn_simd_level;
}

#if MN_LAYERS_X86
#define MN_DISPATCH(name, suffix, ...) \
    (mn_simd_level == 2 ? name##_##suffix##_avx512(__VA_ARGS__) \
     : mn_simd_level == 1 ? name##_##suffix##_avx2(__VA_ARGS__) \
     : name##_##suffix##_base(__VA_ARGS__))
#else
#define MN_DISPATCH(name, suffix, ...) name##_##suffix##_base(__VA_ARGS__)
#endif

/* Samples (pixels) per dense-column pass for hp hidden units of `itemsize` bytes, with the
 * target in use (fused_body.h's MN_DENSE_COUNT for the first block). */
static inline int mn_dense_count(int64_t hp, int64_t itemsize) {
    return itemsize == 4 ? MN_DISPATCH(mn_dense_count, f32, hp)
                         : MN_DISPATCH(mn_dense_count, f64, hp);
}

static inline void mn_chunk_f32(float *gw1, float *gw2t, float *gb2, double *stats, float *u,
    float *d, int64_t *cursor, int64_t *rows, float *o, const int64_t *indptr,
    const uint16_t *indices, const float *values, const float *xd, int64_t m,
    const int64_t *dcols, const int64_t *order, const float *targets, const int32_t *labels,
    const float *w1, const float *w2t, const float *w2, int64_t r0, int64_t r1, int64_t n_in,
    int64_t h, int64_t hp, int64_t k, int loss, int act, const mn_runs *runs, int64_t group0) {
    MN_DISPATCH(mn_chunk, f32, gw1, gw2t, gb2, stats, u, d, cursor, rows, o, indptr, indices,
                values, xd, m, dcols, order, targets, labels, w1, w2t, w2, r0, r1, n_in, h, hp,
                k, loss, act, runs, group0);
}
static inline void mn_chunk_f64(double *gw1, double *gw2t, double *gb2, double *stats,
    double *u, double *d, int64_t *cursor, int64_t *rows, double *o, const int64_t *indptr,
    const uint16_t *indices, const double *values, const double *xd, int64_t m,
    const int64_t *dcols, const int64_t *order, const double *targets, const int32_t *labels,
    const double *w1, const double *w2t, const double *w2, int64_t r0, int64_t r1,
    int64_t n_in, int64_t h, int64_t hp, int64_t k, int loss, int act, const mn_runs *runs,
    int64_t group0) {
    MN_DISPATCH(mn_chunk, f64, gw1, gw2t, gb2, stats, u, d, cursor, rows, o, indptr, indices,
                values, xd, m, dcols, order, targets, labels, w1, w2t, w2, r0, r1, n_in, h, hp,
                k, loss, act, runs, group0);
}
static inline void mn_deltas_f32(float *u, float *d, float *dko, int64_t kstride, float *xc,
    double *stats, float *o, int64_t *cursor, int64_t *rows, const int64_t *indptr,
    const uint16_t *indices, const float *values, const float *xd, int64_t m,
    const int64_t *dcols, const int64_t *order, const float *targets, const int32_t *labels,
    const float *w1, const float *w2t, const float *w2, int64_t r0, int64_t r1, int64_t n_in,
    int64_t h, int64_t hp, int64_t k, int loss, int act) {
    MN_DISPATCH(mn_deltas, f32, u, d, dko, kstride, xc, stats, o, cursor, rows, indptr, indices,
                values, xd, m, dcols, order, targets, labels, w1, w2t, w2, r0, r1, n_in, h, hp,
                k, loss, act);
}
static inline void mn_deltas_f64(double *u, double *d, double *dko, int64_t kstride,
    double *xc, double *stats, double *o, int64_t *cursor, int64_t *rows,
    const int64_t *indptr, const uint16_t *indices, const double *values, const double *xd,
    int64_t m, const int64_t *dcols, const int64_t *order, const double *targets,
    const int32_t *labels, const double *w1, const double *w2t, const double *w2, int64_t r0,
    int64_t r1, int64_t n_in, int64_t h, int64_t hp, int64_t k, int loss, int act) {
    MN_DISPATCH(mn_deltas, f64, u, d, dko, kstride, xc, stats, o, cursor, rows, indptr, indices,
                values, xd, m, dcols, order, targets, labels, w1, w2t, w2, r0, r1, n_in, h, hp,
                k, loss, act);
}
static inline void mn_row_grad_f32(float *g, const float *v, int64_t vstride,
    const int32_t *idx, const float *x, int64_t xstride, int64_t n, int64_t hp, int add) {
    MN_DISPATCH(mn_row_grad, f32, g, v, vstride, idx, x, xstride, n, hp, add);
}
static inline void mn_row_grad_f64(double *g, const double *v, int64_t vstride,
    const int32_t *idx, const double *x, int64_t xstride, int64_t n, int64_t hp, int add) {
    MN_DISPATCH(mn_row_grad, f64, g, v, vstride, idx, x, xstride, n, hp, add);
}
static inline void mn_output_weights_f32(float *w2, const float *w2t, const float *b2,
                                         int64_t h, int64_t hp, int64_t k) {
    MN_DISPATCH(mn_output_weights, f32, w2, w2t, b2, h, hp, k);
}
static inline void mn_output_weights_f64(double *w2, const double *w2t, const double *b2,
                                         int64_t h, int64_t hp, int64_t k) {
    MN_DISPATCH(mn_output_weights, f64, w2, w2t, b2, h, hp, k);
}
static inline void mn_reduce_update_f32(float *w, const float *g, int64_t n_chunks,
    int64_t stride, int64_t m, double step) {
    MN_DISPATCH(mn_reduce_update, f32, w, g, n_chunks, stride, m, step);
}
static inline void mn_reduce_update_f64(double *w, const double *g, int64_t n_chunks,
    int64_t stride, int64_t m, double step) {
    MN_DISPATCH(mn_reduce_update, f64, w, g, n_chunks, stride, m, step);
}

#endif
