/*
 * The library's own system calls: sys6, through a trampoline on a page at
 * TRACE_TRAMPOLINE_ADDR whose calls the supervisor's seccomp filter lets
 * through unseen, or through libc's syscall(3) when the page could not be
 * mapped.
 */
#include "preload.h"

#include <string.h>
#include <sys/mman.h>

syscall6_fn trampoline;

/* Machine code for `long f(long nr, long a1, ..., long a6)`: the system call
 * with the arguments shifted into the kernel's registers. */
#if defined(__x86_64__)
static const unsigned char trampoline_code[] = {
    0x48, 0x89, 0xf8,             /* mov %rdi,%rax */
    0x48, 0x89, 0xf7,             /* mov %rsi,%rdi */
    0x48, 0x89, 0xd6,             /* mov %rdx,%rsi */
    0x48, 0x89, 0xca,             /* mov %rcx,%rdx */
    0x4d, 0x89, 0xc2,             /* mov %r8,%r10 */
    0x4d, 0x89, 0xc8,             /* mov %r9,%r8 */
    0x4c, 0x8b, 0x4c, 0x24, 0x08, /* mov 0x8(%rsp),%r9 */
    0x0f, 0x05,                   /* syscall */
    0xc3,                         /* ret */
};
#elif defined(__aarch64__)
static const uint32_t trampoline_code[] = {
    0xaa0003e8, /* mov x8, x0 */
    0xaa0103e0, /* mov x0, x1 */
    0xaa0203e1, /* mov x1, x2 */
    0xaa0303e2, /* mov x2, x3 */
    0xaa0403e3, /* mov x3, x4 */
    0xaa0503e4, /* mov x4, x5 */
    0xaa0603e5, /* mov x5, x6 */
    0xd4000001, /* svc #0 */
    0xd65f03c0, /* ret */
};
#else
#error "the tracer supports x86_64 and aarch64"
#endif

void map_trampoline(void) {
  void *page = (void *)TRACE_TRAMPOLINE_ADDR;
  /* MAP_FIXED_NOREPLACE: if something already lives there, run without a
   * trampoline (slower, still complete) rather than clobber it. */
  long addr = real_syscall(SYS_mmap, page, TRACE_TRAMPOLINE_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (addr == -1 || (void *)addr != page) return;
  memcpy(page, trampoline_code, sizeof trampoline_code);
  __builtin___clear_cache((char *)page, (char *)page + sizeof trampoline_code);
  if (real_syscall(SYS_mprotect, page, TRACE_TRAMPOLINE_SIZE, PROT_READ | PROT_EXEC) != 0) {
    real_syscall(SYS_munmap, page, TRACE_TRAMPOLINE_SIZE);
    return;
  }
  trampoline = (syscall6_fn)page;
}

long sys6(long nr, long a, long b, long c, long d, long e, long f) {
  if (LIKELY(trampoline != NULL)) {
    if (!sud_on) return trampoline(nr, a, b, c, d, e, f);
    char was = sud_selector;
    sud_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
    __asm__ volatile("" ::: "memory");
    long r = trampoline(nr, a, b, c, d, e, f);
    __asm__ volatile("" ::: "memory");
    sud_selector = was;
    return r;
  }
  long r = real_syscall(nr, a, b, c, d, e, f);
  return r == -1 ? -errno : r;
}
