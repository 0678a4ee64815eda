/* The kernels of fused_body.h for one element type, three times: baseline and AVX2+FMA on
 * 32-byte vectors, AVX-512 on 64-byte ones (x86-64 only).  fused.h defines the type's
 * constants (T, MN_SFX, the vector types, the exp constants, MN_ACTIVATE) before including
 * this file; it undefines them all at the end, ready for the next type. */
#define MN_BLOCK (MN_NV * VL)

#define VT MN_VT32
#define IVT MN_IVT32
#define VL (32 / (int)sizeof(T))
#define MN_TARGET
#define MN_FN(name) MN_CAT(MN_CAT(name, MN_SFX), _base)
#include "fused_body.h"
#undef MN_FN
#undef MN_TARGET
#if MN_HAVE_X86_VARIANTS
#define MN_TARGET MN_AVX2
#define MN_FN(name) MN_CAT(MN_CAT(name, MN_SFX), _avx2)
#include "fused_body.h"
#undef MN_FN
#undef MN_TARGET
#undef VT
#undef IVT
#undef VL
#define VT MN_VT64
#define IVT MN_IVT64
#define VL (64 / (int)sizeof(T))
#define MN_TARGET MN_AVX512
#define MN_FN(name) MN_CAT(MN_CAT(name, MN_SFX), _avx512)
#include "fused_body.h"
#undef MN_FN
#undef MN_TARGET
#endif
#undef VT
#undef IVT
#undef VL
#undef MN_BLOCK

#undef T
#undef MN_SFX
#undef MN_VT32
#undef MN_IVT32
#undef MN_VT64
#undef MN_IVT64
#undef MN_EXP_DEGREE
#undef MN_EXP_MAX
#undef MN_ROUND_MAGIC
#undef MN_LN2_HI
#undef MN_LN2_LO
#undef MN_EXP_BIAS
#undef MN_MANT_BITS
#undef MN_ACTIVATE
