/* What the build gives the kernels: OpenMP or serial stand-ins, and the compiler's name. */
#ifndef MNIST_NATIVE_PLATFORM_H
#define MNIST_NATIVE_PLATFORM_H

#ifdef _OPENMP
#include <omp.h>
#define MN_OPENMP 1
static inline int mn_max_threads(void) { return omp_get_max_threads(); }
static inline int mn_thread_num(void) { return omp_get_thread_num(); }
#else
#define MN_OPENMP 0
static inline int mn_max_threads(void) { return 1; }
static inline int mn_thread_num(void) { return 0; }
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

#endif
