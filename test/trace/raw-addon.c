/*
 * A stand-in for a native addon (rolldown's binding): a shared library whose
 * thread makes raw system calls, with no libc wrapper, as Rust's rustix does.
 *
 *   raw_thread(path): in a new thread, looks `path` up with a raw newfstatat,
 *   blocks SIGUSR1 and SIGSYS with raw rt_sigprocmask calls, and returns the
 *   thread's mask as libc then reads it: bit 0 set when SIGUSR1 is blocked,
 *   bit 1 when SIGSYS is.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static long raw4(long nr, long a, long b, long c, long d) {
#if defined(__x86_64__)
  long ret;
  register long r10 __asm__("r10") = d;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = nr, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c, x3 __asm__("x3") = d;
  __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
  return x0;
#endif
}

static void *body(void *path) {
  struct stat st;
#if defined(SYS_newfstatat)
  raw4(SYS_newfstatat, AT_FDCWD, (long)path, (long)&st, 0);
#else
  raw4(SYS_fstatat, AT_FDCWD, (long)path, (long)&st, 0);
#endif
  uint64_t usr1 = 1ULL << (SIGUSR1 - 1), sys = 1ULL << (SIGSYS - 1);
  raw4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&usr1, 0, 8);
  raw4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&sys, 0, 8);
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, NULL, &now);
  return (void *)(intptr_t)((sigismember(&now, SIGUSR1) == 1) | (sigismember(&now, SIGSYS) == 1) << 1);
}

__attribute__((visibility("default"))) int raw_thread(const char *path) {
  pthread_t thread;
  void *result = 0;
  if (pthread_create(&thread, NULL, body, (void *)path) != 0) return -1;
  pthread_join(thread, &result);
  return (int)(intptr_t)result;
}
