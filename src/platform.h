/* What the build gives the kernels, and every compiler and CPU difference in one place:
 * OpenMP or serial stand-ins, the compiler's name, the architecture, inlining and unrolling
 * hints, the per-target attributes that let GCC and Clang compile a function for a wider
 * instruction set, the floating-point mode the kernels run in, and CPU detection.  MSVC
 * gets plain C here (no GNU extensions): it needs no target attributes for intrinsics.
 * MN_PORTABLE=1 (MNIST_NATIVE_PORTABLE=1 at build time) builds with GCC or Clang the code
 * MSVC gets wherever GCC can take it: no unroll pragmas, and the same CPU detection
 * (MSVC's is the same code over its own cpuid). */
#ifndef MNIST_NATIVE_PLATFORM_H
#define MNIST_NATIVE_PLATFORM_H

#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define MN_OPENMP 1
static inline int mn_max_threads(void) { return omp_get_max_threads(); }
static inline int mn_thread_num(void) { return omp_get_thread_num(); }
static inline int mn_num_threads(void) { return omp_get_num_threads(); }
/* An orphaned barrier: every thread of the enclosing parallel region waits here. */
static inline void mn_barrier(void) {
#pragma omp barrier
}
#else
#define MN_OPENMP 0
static inline int mn_max_threads(void) { return 1; }
static inline int mn_thread_num(void) { return 0; }
static inline int mn_num_threads(void) { return 1; }
static inline void mn_barrier(void) {}
#endif

#define MN_STR2(x) #x
#define MN_STR(x) MN_STR2(x)
#if defined(__clang__)
#define MN_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define MN_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define MN_COMPILER "msvc " MN_STR(_MSC_FULL_VER)
#else
#define MN_COMPILER "unknown"
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define MN_X86 1
#else
#define MN_X86 0
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define MN_ARM64 1
#else
#define MN_ARM64 0
#endif

#ifndef MN_PORTABLE
#define MN_PORTABLE 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MN_ALWAYS_INLINE inline __attribute__((always_inline))
#define MN_NOINLINE __attribute__((noinline))
#define MN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define MN_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")))
#if MN_PORTABLE
#define MN_UNROLL
#else
#define MN_UNROLL _Pragma("GCC unroll 16")
#endif
#elif defined(_MSC_VER)
#define MN_ALWAYS_INLINE __forceinline
#define MN_NOINLINE __declspec(noinline)
#define MN_TARGET_AVX2
#define MN_TARGET_AVX512
#define MN_UNROLL
#else
#define MN_ALWAYS_INLINE inline
#define MN_NOINLINE
#define MN_TARGET_AVX2
#define MN_TARGET_AVX512
#define MN_UNROLL
#endif

/* Hides how a pointer was computed from the optimiser.  In the gather loops GCC rewrote
 * `row + v * VL` (row = base + index * hp) as base + (index * hp + offset_v), one offset
 * register per vector, spilled to the stack: five stack loads per entry (measured, hidden
 * 75, AVX2).  Opaque, the row is one register and each vector a displacement from it. */
#if defined(__GNUC__) || defined(__clang__)
#define MN_OPAQUE(ptr) __asm__("" : "+r"(ptr))
#else
#define MN_OPAQUE(ptr) ((void)0)
#endif

/* Asks for the cache lines of bytes [p, p + bytes) ahead of their use: a hint, which never
 * faults and changes no value.  The hidden sums load weight rows by pixel index, which no
 * hardware prefetcher predicts; with w1 crowding L2 (hidden 128 in float32 is 402 kB, Zen
 * 3's L2 512 kB) the rows came late: asked for ahead, the forward pass ran 12-25% faster on
 * 1 thread, 5-10% on 2.  (Where w1 fits, it ran slower: see fused.h, mn_prefetch_above.) */
#if defined(__GNUC__) || defined(__clang__)
#define MN_PREFETCH(p) __builtin_prefetch(p)
#elif defined(_MSC_VER) && MN_X86
#include <intrin.h>
#define MN_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#elif defined(_MSC_VER) && MN_ARM64
#include <intrin.h>
#define MN_PREFETCH(p) __prefetch(p)
#else
#define MN_PREFETCH(p) ((void)0)
#endif
static MN_ALWAYS_INLINE void mn_prefetch_span(const void *p, int64_t bytes) {
    const char *c = (const char *)p;
    for (int64_t off = 0; off < bytes; off += 64) MN_PREFETCH(c + off);
    MN_PREFETCH(c + bytes - 1);  /* the last line, when the span does not start on one */
}

/* The CSR conversion's two bit helpers: it flags a block's nonzero pixels (0 or 1 per
 * byte: GCC vectorises the comparisons, checked in its code), packs the flags into bits,
 * then walks the set bits.
 * mn_pack_flags8: bit i of the result is flags[i], for 8 flags of 0 or 1.  The multiply
 * moves byte i's low bit to bit 56 + i, with no carries into the top byte (each of the 256
 * cases is checked by tests/test_fused.py through csr_fill).  The bytes are read
 * little-endian: every target we build for (x86-64, arm64) is. */
static inline uint32_t mn_pack_flags8(const uint8_t *flags) {
    uint64_t word;
    memcpy(&word, flags, 8);
    return (uint32_t)((word * 0x0102040810204080ull) >> 56);
}

/* mn_lowest_bit: the index of the lowest set bit of `bits` (nonzero). */
#if defined(__GNUC__) || defined(__clang__)
static inline int mn_lowest_bit(uint32_t bits) { return __builtin_ctz(bits); }
#elif defined(_MSC_VER)
#include <intrin.h>
static inline int mn_lowest_bit(uint32_t bits) {
    unsigned long i;
    _BitScanForward(&i, bits);
    return (int)i;
}
#else
static inline int mn_lowest_bit(uint32_t bits) {
    int i = 0;
    while (!(bits & 1u)) { bits >>= 1; i++; }
    return i;
}
#endif

/* Subnormal floats flushed to zero while the kernels run.  Arithmetic that takes or makes
 * a subnormal (below 1.2e-38 in float32, 2.2e-308 in float64) takes a slow path on x86
 * and on many ARM cores, up to a hundred cycles an operation; saturated sigmoids make them
 * (mini-batch SGD at batch 1 and learning rate 0.5: epochs 3 to 6 times slower).  Values
 * that small are far below any result's precision, so the kernels flush them, as inputs
 * and as results: MXCSR's FTZ and DAZ bits on x86-64, FPCR's FZ bit on aarch64 (NEON
 * included).  The mode
 * belongs to a thread: each thread sets it where a kernel starts and puts the caller's
 * back where it ends, so NumPy, PyTorch and the caller's own code keep theirs.
 * Elsewhere (and MSVC on ARM64) the mode is left alone: slower where subnormals arise. */
typedef uint64_t mn_fp_mode;
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
static inline mn_fp_mode mn_flush_subnormals(void) {
    const unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u);  /* FTZ (bit 15), DAZ (bit 6) */
    return saved;
}
/* The caller's control bits back; the status flags the kernels raised stay raised. */
static inline void mn_restore_fp_mode(mn_fp_mode saved) {
    _mm_setcsr((unsigned int)saved | (_mm_getcsr() & 0x3fu));
}
#elif defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
static inline mn_fp_mode mn_flush_subnormals(void) {
    uint64_t saved;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(saved) : : "memory");
    __asm__ __volatile__("msr fpcr, %0" : : "r"(saved | (UINT64_C(1) << 24)) : "memory");  /* FZ */
    return saved;
}
static inline void mn_restore_fp_mode(mn_fp_mode saved) {
    __asm__ __volatile__("msr fpcr, %0" : : "r"(saved) : "memory");
}
#else
static inline mn_fp_mode mn_flush_subnormals(void) { return 0; }
static inline void mn_restore_fp_mode(mn_fp_mode saved) { (void)saved; }
#endif

/* Whether the mode takes effect: 1e-30 * 1e-10, a float32 subnormal, computed in it comes
 * out 0.  (Volatile, so the product is made between the two mode changes.) */
static inline int mn_subnormals_flushed(void) {
    volatile float a = 1e-30f, b = 1e-10f, product;
    const mn_fp_mode saved = mn_flush_subnormals();
    product = a * b;
    mn_restore_fp_mode(saved);
    return product == 0.0f;
}

/* Compile-time checks without C11's _Static_assert (MSVC's C takes it only with /std:c11). */
#define MN_STATIC_ASSERT(cond, name) typedef char name[(cond) ? 1 : -1]

#if MN_X86
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static inline void mn_cpuid(int leaf, int sub, unsigned regs[4]) {
    int r[4];
    __cpuidex(r, leaf, sub);
    for (int i = 0; i < 4; i++) regs[i] = (unsigned)r[i];
}
static inline uint64_t mn_xgetbv0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static inline void mn_cpuid(int leaf, int sub, unsigned regs[4]) {
    __cpuid_count(leaf, sub, regs[0], regs[1], regs[2], regs[3]);
}
static inline uint64_t mn_xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

/* The widest x86 kernel variant the CPU and the operating system support: 2 = AVX-512
 * (F, DQ, VL, BW), 1 = AVX2 + FMA, 0 = the baseline (SSE2).  Wide registers count only when
 * the OS saves them (XCR0), as the Intel manual asks. */
static inline int mn_x86_level(void) {
    unsigned r[4];
    mn_cpuid(0, 0, r);
    if (r[0] < 7) return 0;
    mn_cpuid(1, 0, r);
    const unsigned fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28;
    if ((r[2] & (fma | osxsave | avx)) != (fma | osxsave | avx)) return 0;
    const uint64_t xcr0 = mn_xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0;  /* SSE and AVX state */
    mn_cpuid(7, 0, r);
    if (!(r[1] & (1u << 5))) return 0;  /* AVX2 */
    const unsigned avx512 = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);  /* F DQ BW VL */
    if ((r[1] & avx512) == avx512 && (xcr0 & 0xe0) == 0xe0) return 2;  /* opmask, ZMM state */
    return 1;
}
#endif

#endif
