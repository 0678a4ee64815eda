/* The portable layer, for any other architecture (and for testing: MN_SIMD_SCALAR=1): one
 * lane, plain C that the compiler may vectorise as it can.  Included as simd_avx2.h is. */
#include <string.h>

/* 2^n from t = n + MN_ROUND_MAGIC (see mn_vexp_neg), through the bits as the vector layers
 * do, in unsigned integers of T's width. */
#if MN_F64
#define MN_BITS uint64_t
#else
#define MN_BITS uint32_t
#endif
static inline T MN_CAT(mn_pow2i, MN_SFX)(T t)
{
    const T magic = (T)MN_ROUND_MAGIC;
    MN_BITS bt, bm, bits;
    T r;
    memcpy(&bt, &t, sizeof bt);
    memcpy(&bm, &magic, sizeof bm);
    bits = (MN_BITS)(bt - bm + MN_EXP_BIAS) << MN_MANT_BITS;
    memcpy(&r, &bits, sizeof r);
    return r;
}

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
