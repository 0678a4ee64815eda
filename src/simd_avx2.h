/* The AVX2 + FMA layer: 32-byte vectors, 16 registers.  Included by fused_variants.h once
 * per element type (T, MN_F64) before fused_body.h; simd_undef.h clears it.  Intrinsics, so
 * GCC, Clang and MSVC all build it (GCC and Clang through MN_TARGET_AVX2). */
#include <immintrin.h>

#if MN_F64
#define VT __m256d
#define MN_X(op) _mm256_##op##_pd
#define MN_XI(op) _mm256_##op##_epi64
#define MN_SET1_I(x) _mm256_set1_epi64x(x)
#define MN_AS_INT(x) _mm256_castpd_si256(x)
#define MN_FROM_INT(x) _mm256_castsi256_pd(x)
#else
#define VT __m256
#define MN_X(op) _mm256_##op##_ps
#define MN_XI(op) _mm256_##op##_epi32
#define MN_SET1_I(x) _mm256_set1_epi32(x)
#define MN_AS_INT(x) _mm256_castps_si256(x)
#define MN_FROM_INT(x) _mm256_castsi256_ps(x)
#endif
#define VL (32 / (int)sizeof(T))
#define V_FMA(a, b, c) MN_X(fmadd)(a, b, c)
#define V_ABS(x) MN_X(andnot)(V_SET1((T)-0.0), x)
#define V_IF_NEG(x, a, b) MN_X(blendv)(b, a, MN_X(cmp)(x, V_ZERO(), _CMP_LT_OQ))
#include "simd_x86_common.h"

/* Register blocking: 10 vectors of hidden units per block (80 floats, 40 doubles), at most
 * 12 registers of dense-pass sums, and as many sets of interleaved sums as keep at least
 * eight multiply-add chains in flight within the 16 registers. */
#define MN_NV 10
#define MN_ACC_REGS 12
#define MN_CHAIN_SETS(nv) ((nv) <= 2 ? 4 : (nv) <= 4 ? 2 : 1)
