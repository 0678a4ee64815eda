/* The AVX-512 layer (F, DQ, VL, BW): 64-byte vectors, 32 registers.  Included as
 * simd_avx2.h is. */
#include <immintrin.h>

#if MN_F64
#define VT __m512d
#define MN_X(op) _mm512_##op##_pd
#define MN_XI(op) _mm512_##op##_epi64
#define MN_SET1_I(x) _mm512_set1_epi64(x)
#define MN_AS_INT(x) _mm512_castpd_si512(x)
#define MN_FROM_INT(x) _mm512_castsi512_pd(x)
#define MN_LT_MASK(a, b) _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ)
#else
#define VT __m512
#define MN_X(op) _mm512_##op##_ps
#define MN_XI(op) _mm512_##op##_epi32
#define MN_SET1_I(x) _mm512_set1_epi32(x)
#define MN_AS_INT(x) _mm512_castps_si512(x)
#define MN_FROM_INT(x) _mm512_castsi512_ps(x)
#define MN_LT_MASK(a, b) _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#endif
#define VL (64 / (int)sizeof(T))
#define V_FMA(a, b, c) MN_X(fmadd)(a, b, c)
#define V_ABS(x) MN_X(abs)(x)
#define V_IF_NEG(x, a, b) MN_X(mask_blend)(MN_LT_MASK(x, V_ZERO()), b, a)
#include "simd_x86_common.h"

/* Register blocking as measured on an AVX-512 Xeon (see fused.h): 10 vectors per block
 * (160 floats, 80 doubles), up to 24 registers of dense-pass sums. */
#define MN_NV 10
#define MN_ACC_REGS 24
#define MN_CHAIN_SETS(nv) ((nv) <= 2 ? 4 : (nv) <= 4 ? 2 : 1)
