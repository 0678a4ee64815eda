/* SIMD micro-kernels of the fused training pass (see fused_body.h), built twice on x86-64:
 * once for AVX2+FMA and once for the baseline instruction set, picked at run time by what the
 * CPU supports, so one wheel runs on any x86-64 and still uses AVX2/FMA where it can.
 * Needs GCC or Clang (vector extensions). */
#ifndef MNIST_NATIVE_FUSED_H
#define MNIST_NATIVE_FUSED_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MN_LOSS_MSE 0
#define MN_LOSS_XE 1
#define MN_ACT_SIGMOID 1
#define MN_ACT_TANH 2

/* Hidden units per register block: MN_NV vectors of 32 bytes (80 floats or 40 doubles). */
#define MN_NV 10
#define MN_UNROLL _Pragma("GCC unroll 16")
/* Nonzeros ahead whose weight row is prefetched from L2 while this one is summed. */
#define MN_PREFETCH 4

static inline float mn_act_f(float x, int act) {
    if (act == MN_ACT_TANH) return tanhf(x);
    if (x >= 0) return 1.0f / (1.0f + expf(-x));  /* exp of a non-positive number only */
    const float e = expf(x);
    return e / (1.0f + e);
}
static inline double mn_act_d(double x, int act) {
    if (act == MN_ACT_TANH) return tanh(x);
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    const double e = exp(x);
    return e / (1.0 + e);
}
/* f'(u) written through o = f(u). */
#define MN_DERIVATIVE(o, act) ((act) == MN_ACT_TANH ? 1 - (o) * (o) : (o) * (1 - (o)))
#define MN_EXP(x) exp((double)(x))

/* 32-byte vectors with only element alignment: numpy arrays need not be 32-byte aligned. */
typedef float mn_vf __attribute__((vector_size(32), aligned(4)));
typedef double mn_vd __attribute__((vector_size(32), aligned(8)));
typedef int32_t mn_vi32 __attribute__((vector_size(32), aligned(4)));
typedef int64_t mn_vi64 __attribute__((vector_size(32), aligned(8)));

/* Taylor coefficients 1/i! of exp, and the constants of the vector sigmoid (mn_vsigmoid). */
static const double mn_exp_taylor[14] = {
    1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
    1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
#define MN_EXP_C mn_exp_taylor
#define MN_LOAD(p) (*(const VT *)(p))
#define MN_STORE(p, x) (*(VT *)(p) = (x))

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MN_HAVE_AVX2_VARIANT 1
#else
#define MN_HAVE_AVX2_VARIANT 0
#endif

/* float, baseline */
#define T float
#define VT mn_vf
#define IVT mn_vi32
#define VL 8
#define MN_EXP_DEGREE 7
#define MN_EXP_MAX 87.0           /* exp(-87) is still a normal float */
#define MN_ROUND_MAGIC 12582912.0 /* 1.5 * 2^23: adding it rounds a float to an integer */
#define MN_LN2_HI 0.693359375     /* ln 2 in two parts: n * MN_LN2_HI is exact */
#define MN_LN2_LO -2.12194440e-4
#define MN_EXP_BIAS 127
#define MN_MANT_BITS 23
#define MN_BLOCK (MN_NV * 8)
#define MN_ACTIVATE mn_act_f
#define MN_TARGET
#define MN_FN(name) name##_f32_base
#include "fused_body.h"
#undef MN_FN
#undef MN_TARGET
#if MN_HAVE_AVX2_VARIANT
#define MN_TARGET __attribute__((target("avx2,fma")))
#define MN_FN(name) name##_f32_avx2
#include "fused_body.h"
#undef MN_FN
#undef MN_TARGET
#endif
#undef T
#undef VT
#undef IVT
#undef VL
#undef MN_EXP_DEGREE
#undef MN_EXP_MAX
#undef MN_ROUND_MAGIC
#undef MN_LN2_HI
#undef MN_LN2_LO
#undef MN_EXP_BIAS
#undef MN_MANT_BITS
#undef MN_BLOCK
#undef MN_ACTIVATE

/* double */
#define T double
#define VT mn_vd
#define IVT mn_vi64
#define VL 4
#define MN_EXP_DEGREE 13
#define MN_EXP_MAX 708.0
#define MN_ROUND_MAGIC 6755399441055744.0 /* 1.5 * 2^52 */
#define MN_LN2_HI 0.693145751953125
#define MN_LN2_LO 1.42860682030941723212e-6
#define MN_EXP_BIAS 1023
#define MN_MANT_BITS 52
#define MN_BLOCK (MN_NV * 4)
#define MN_ACTIVATE mn_act_d
#define MN_TARGET
#define MN_FN(name) name##_f64_base
#include "fused_body.h"
#undef MN_FN
#undef MN_TARGET
#if MN_HAVE_AVX2_VARIANT
#define MN_TARGET __attribute__((target("avx2,fma")))
#define MN_FN(name) name##_f64_avx2
#include "fused_body.h"
#undef MN_FN
#undef MN_TARGET
#endif
#undef T
#undef VT
#undef IVT
#undef VL
#undef MN_EXP_DEGREE
#undef MN_EXP_MAX
#undef MN_ROUND_MAGIC
#undef MN_LN2_HI
#undef MN_LN2_LO
#undef MN_EXP_BIAS
#undef MN_MANT_BITS
#undef MN_BLOCK
#undef MN_ACTIVATE

/* Which variant runs: 1 = AVX2+FMA, 0 = baseline.  Set once at import (mn_simd_init). */
static int mn_use_avx2 = 0;

static inline int mn_cpu_has_avx2(void) {
#if MN_HAVE_AVX2_VARIANT
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* Pick the variant: `wanted` 1 asks for AVX2 (granted only if the CPU has it), 0 baseline.
 * Returns the variant in use. */
static inline int mn_simd_init(int wanted) {
    mn_use_avx2 = wanted && mn_cpu_has_avx2();
    return mn_use_avx2;
}

#if MN_HAVE_AVX2_VARIANT
#define MN_DISPATCH(name, suffix, ...) \
    (mn_use_avx2 ? name##_##suffix##_avx2(__VA_ARGS__) : name##_##suffix##_base(__VA_ARGS__))
#else
#define MN_DISPATCH(name, suffix, ...) name##_##suffix##_base(__VA_ARGS__)
#endif

static inline void mn_chunk_f32(float *gw1, float *gw2t, float *gb2, double *stats, float *oh,
    float *dh, float *o, const int64_t *indptr, const uint16_t *indices, const float *values,
    const int64_t *order, const float *targets, const int32_t *labels, const float *w1,
    const float *w2t, const float *b2, int64_t r0, int64_t r1, int64_t n_in, int64_t h,
    int64_t hp, int64_t k, int loss, int act) {
    MN_DISPATCH(mn_chunk, f32, gw1, gw2t, gb2, stats, oh, dh, o, indptr, indices, values,
                order, targets, labels, w1, w2t, b2, r0, r1, n_in, h, hp, k, loss, act);
}
static inline void mn_chunk_f64(double *gw1, double *gw2t, double *gb2, double *stats,
    double *oh, double *dh, double *o, const int64_t *indptr, const uint16_t *indices,
    const double *values, const int64_t *order, const double *targets, const int32_t *labels,
    const double *w1, const double *w2t, const double *b2, int64_t r0, int64_t r1,
    int64_t n_in, int64_t h, int64_t hp, int64_t k, int loss, int act) {
    MN_DISPATCH(mn_chunk, f64, gw1, gw2t, gb2, stats, oh, dh, o, indptr, indices, values,
                order, targets, labels, w1, w2t, b2, r0, r1, n_in, h, hp, k, loss, act);
}
static inline void mn_reduce_update_f32(float *w, double *acc, const float *g, int64_t n_chunks,
    int64_t stride, int64_t i0, int64_t i1, int64_t cols, double step) {
    MN_DISPATCH(mn_reduce_update, f32, w, acc, g, n_chunks, stride, i0, i1, cols, step);
}
static inline void mn_reduce_update_f64(double *w, double *acc, const double *g,
    int64_t n_chunks, int64_t stride, int64_t i0, int64_t i1, int64_t cols, double step) {
    MN_DISPATCH(mn_reduce_update, f64, w, acc, g, n_chunks, stride, i0, i1, cols, step);
}

#endif
