/* The aarch64 layer, NEON (every aarch64 CPU has it, Apple Silicon included): 16-byte
 * vectors, 32 registers, fused multiply-add.  Included as simd_avx2.h is; every compiler
 * (GCC, Clang, Apple clang, MSVC for arm64) takes these intrinsics as they are. */
#include <arm_neon.h>

#if MN_F64
#define VT float64x2_t
#define MN_N(op) v##op##q_f64
#define V_SET1(x) vdupq_n_f64(x)
#define MN_AS_INT(x) vreinterpretq_s64_f64(x)
#define MN_FROM_INT(x) vreinterpretq_f64_s64(x)
#define MN_INT_OPS(a, b) vshlq_n_s64(vaddq_s64(vsubq_s64(a, b), vdupq_n_s64(MN_EXP_BIAS)), \
                                     MN_MANT_BITS)
#else
#define VT float32x4_t
#define MN_N(op) v##op##q_f32
#define V_SET1(x) vdupq_n_f32(x)
#define MN_AS_INT(x) vreinterpretq_s32_f32(x)
#define MN_FROM_INT(x) vreinterpretq_f32_s32(x)
#define MN_INT_OPS(a, b) vshlq_n_s32(vaddq_s32(vsubq_s32(a, b), vdupq_n_s32(MN_EXP_BIAS)), \
                                     MN_MANT_BITS)
#endif
#define VL (16 / (int)sizeof(T))
#define V_LOAD(p) MN_N(ld1)(p)
#define V_STORE(p, x) MN_N(st1)(p, x)
#define V_ZERO() V_SET1((T)0)
#define V_ADD(a, b) MN_N(add)(a, b)
#define V_SUB(a, b) MN_N(sub)(a, b)
#define V_MUL(a, b) MN_N(mul)(a, b)
#define V_DIV(a, b) MN_N(div)(a, b)
#define V_FMA(a, b, c) MN_N(fma)(c, a, b)  /* NEON's order: c + a * b */
#define V_MIN(a, b) MN_N(min)(a, b)
#define V_ABS(x) MN_N(abs)(x)
#define V_IF_NEG(x, a, b) MN_N(bsl)(MN_N(clt)(x, V_ZERO()), a, b)
/* 2^n from t = n + MN_ROUND_MAGIC: as in simd_x86_common.h. */
#define V_POW2I(t) MN_FROM_INT(MN_INT_OPS(MN_AS_INT(t), MN_AS_INT(V_SET1((T)MN_ROUND_MAGIC))))

/* Register blocking for NEON's 32 registers of 16 bytes, not x86's: 16 vectors per block
 * (64 floats, 32 doubles), up to 24 registers of dense-pass sums, and interleaved sums up
 * to 16 registers (a core such as Apple's M1 has four multiply-add pipes of latency 4: it
 * needs 16 independent chains to stay busy). */
#define MN_NV 16
#define MN_ACC_REGS 24
#define MN_CHAIN_SETS(nv) ((nv) <= 4 ? 4 : (nv) <= 8 ? 2 : 1)
