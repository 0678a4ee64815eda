/* Counts the C heap allocations of a whole process, native code's and Python's alike, for
 * tests/test_memory.py: loaded with LD_PRELOAD (glibc), it wraps malloc and its kin and
 * counts calls between mn_count_start() and mn_count_stop(), from any thread. */
#include <stddef.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static volatile int counting;
static size_t calls;

static void note(void) {
    if (counting) __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
}

void *malloc(size_t size) { note(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { note(); return __libc_calloc(count, size); }
void *realloc(void *ptr, size_t size) { note(); return __libc_realloc(ptr, size); }
void *memalign(size_t alignment, size_t size) { note(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { return memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    void *p = memalign(alignment, size);
    if (p == NULL && size != 0) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void mn_count_start(void) { calls = 0; counting = 1; }
size_t mn_count_stop(void) { counting = 0; return calls; }
