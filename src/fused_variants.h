/* The kernels of fused_body.h for one element type, once per target of this architecture:
 * on x86, the SSE2 baseline, AVX2+FMA and AVX-512; on aarch64, NEON; elsewhere (or with
 * MN_SIMD_SCALAR=1), the portable layer.  Each target is a layer (simd_*.h) of the same
 * named operations under the one body.  fused.h defines the type's constants (T, MN_F64,
 * MN_SFX, the exp constants, MN_TANH) before including this file; it undefines them all
 * at the end, ready for the next type. */
#if MN_LAYERS_X86
#include "simd_sse2.h"
#elif MN_LAYERS_NEON
#include "simd_neon.h"
#else
#include "simd_scalar.h"
#endif
#define MN_TARGET
#define MN_FN(name) MN_CAT(MN_CAT(name, MN_SFX), _base)
#include "fused_body.h"
#include "simd_undef.h"

#if MN_LAYERS_X86
#include "simd_avx2.h"
#define MN_TARGET MN_TARGET_AVX2
#define MN_FN(name) MN_CAT(MN_CAT(name, MN_SFX), _avx2)
#include "fused_body.h"
#include "simd_undef.h"

#include "simd_avx512.h"
#define MN_TARGET MN_TARGET_AVX512
#define MN_FN(name) MN_CAT(MN_CAT(name, MN_SFX), _avx512)
#include "fused_body.h"
#include "simd_undef.h"
#endif

#undef T
#undef MN_F64
#undef MN_SFX
#undef MN_EXP_DEGREE
#undef MN_EXP_MAX
#undef MN_ROUND_MAGIC
#undef MN_LN2_HI
#undef MN_LN2_LO
#undef MN_EXP_BIAS
#undef MN_MANT_BITS
#undef MN_TANH
