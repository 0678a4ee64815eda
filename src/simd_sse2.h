/* The x86 baseline layer, SSE2 (every x86-64 CPU has it): 16-byte vectors, 16 registers,
 * no fused multiply-add.  Included as simd_avx2.h is; no target attribute needed. */
#include <emmintrin.h>

#if MN_F64
#define VT __m128d
#define MN_X(op) _mm_##op##_pd
#define MN_XI(op) _mm_##op##_epi64
#define MN_SET1_I(x) _mm_set1_epi64x(x)
#define MN_AS_INT(x) _mm_castpd_si128(x)
#define MN_FROM_INT(x) _mm_castsi128_pd(x)
#else
#define VT __m128
#define MN_X(op) _mm_##op##_ps
#define MN_XI(op) _mm_##op##_epi32
#define MN_SET1_I(x) _mm_set1_epi32(x)
#define MN_AS_INT(x) _mm_castps_si128(x)
#define MN_FROM_INT(x) _mm_castsi128_ps(x)
#endif
#define VL (16 / (int)sizeof(T))
#define V_FMA(a, b, c) V_ADD(V_MUL(a, b), c)
#define V_ABS(x) MN_X(andnot)(V_SET1((T)-0.0), x)
#define V_IF_NEG(x, a, b) \
    MN_X(or)(MN_X(and)(MN_X(cmplt)(x, V_ZERO()), a), MN_X(andnot)(MN_X(cmplt)(x, V_ZERO()), b))
#include "simd_x86_common.h"

/* Register blocking: 10 vectors per block (40 floats, 20 doubles) leave room in the 16
 * registers for a broadcast and a load. */
#define MN_NV 10
#define MN_ACC_REGS 12
#define MN_CHAIN_SETS(nv) ((nv) <= 2 ? 4 : (nv) <= 4 ? 2 : 1)
