/* The portable layer, for any other architecture (and for testing: MN_SIMD_SCALAR=1): one
 * lane, plain C that the compiler may vectorise as it can.  Included as simd_avx2.h is. */
#ifndef MNIST_NATIVE_SIMD_SCALAR_ONCE
#define MNIST_NATIVE_SIMD_SCALAR_ONCE
#include <string.h>
/* 2^n from t = n + magic (see mn_vsigmoid), through the bits as the vector layers do. */
static inline float mn_pow2i_f32(float t) {
    const float magic = 12582912.0f;
    int32_t bt, bm, bits;
    float r;
    memcpy(&bt, &t, sizeof bt);
    memcpy(&bm, &magic, sizeof bm);
    bits = (int32_t)((uint32_t)(bt - bm + 127) << 23);
    memcpy(&r, &bits, sizeof r);
    return r;
}
static inline double mn_pow2i_f64(double t) {
    const double magic = 6755399441055744.0;
    int64_t bt, bm, bits;
    double r;
    memcpy(&bt, &t, sizeof bt);
    memcpy(&bm, &magic, sizeof bm);
    bits = (int64_t)((uint64_t)(bt - bm + 1023) << 52);
    memcpy(&r, &bits, sizeof r);
    return r;
}
#endif

#define VT T
#define VL 1
#define V_LOAD(p) (*(p))
#define V_STORE(p, x) (*(p) = (x))
#define V_SET1(x) ((T)(x))
#define V_ZERO() ((T)0)
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_MIN(a, b) ((a) < (b) ? (a) : (b))
#define V_ABS(x) ((x) < 0 ? -(x) : (x))
#define V_IF_NEG(x, a, b) ((x) < 0 ? (a) : (b))
#define V_POW2I(t) MN_CAT(mn_pow2i, MN_SFX)(t)

#define MN_NV 10
#define MN_ACC_REGS 12
#define MN_CHAIN_SETS(nv) ((nv) <= 2 ? 4 : (nv) <= 4 ? 2 : 1)
