/*
 * What the preload library's files share: the process's trace state, the
 * libc functions the hooks fall back to, the raw system call every hook
 * makes its own calls with, the record writer's entry points and the traced
 * calls the dispatch table answers with. Internal to the library: every
 * name declared here is hidden; only the libc names the hooks interpose are
 * exported (EXPORT).
 *
 * Rules the hooks keep, because they run inside arbitrary programs, on any
 * thread, in forked children and in signal handlers:
 * - no allocation, no locks, no stdio: a record is built on the stack and
 *   written with one write(2); the per-process dedupe table is a static array
 *   updated with compare-and-swap;
 * - no recursion: a hook never calls a hooked function. Its own system calls
 *   go through a trampoline on a page at TRACE_TRAMPOLINE_ADDR, which the
 *   supervisor's seccomp filter lets through; everything else a process does
 *   (libc internals, raw `syscall` instructions) reaches the supervisor, so
 *   the hooks are the fast path, never the only path;
 * - errno is what the hooked function would have left.
 */
#ifndef RUNNER_AWARE_PRELOAD_H
#define RUNNER_AWARE_PRELOAD_H

#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../trace.h"

/* Older musl headers turn the LFS64 names into macros for the plain ones. */
#undef open64
#undef openat64
#undef creat64
#undef stat64
#undef lstat64
#undef fstatat64
#undef fopen64
#undef truncate64

/* Syscalls newer than some build hosts' headers; numbered alike on every
 * architecture since Linux 5.1. */
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#if defined(SYS_newfstatat)
#define SYS_FSTATAT SYS_newfstatat
#else
#define SYS_FSTATAT SYS_fstatat
#endif

/* Syscall User Dispatch (Linux 5.11), for headers that predate it. */
#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#define PR_SYS_DISPATCH_ON 1
#define SYSCALL_DISPATCH_FILTER_ALLOW 0
#define SYSCALL_DISPATCH_FILTER_BLOCK 1
#endif

struct statx;
struct stat64;

#define EXPORT __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define TLS __attribute__((tls_model("initial-exec")))

/* What traced_call() returns for a system call that names no file. */
#define NOT_TRACED (-4096 - 2)

/* Declarations the pragma covers are hidden even where -fvisibility=hidden
 * would not reach them (it leaves extern declarations alone). The system
 * headers are included above it: libc's own names stay libc's. */
#pragma GCC visibility push(hidden)

/* ---- state (init.c; the trace descriptor: records.c) ----------------- */

extern int trace_fd;
extern char trace_path[TRACE_PATH_MAX];
extern int supervised;
extern int initialized;

void init(void);
#define ENSURE_INIT()                 \
  do {                                \
    if (!LIKELY(initialized)) init(); \
  } while (0)

/* Looked up once, at init: the libc functions the hooks fall back to, each
 * with the type of its pointer. One list for the declarations here and the
 * definitions and look-ups in init.c. The last ones are typed by hand, as
 * older libc headers lack some of them. */
#define REAL_FUNCTIONS(X)                                                      \
  X(execve, __typeof__(execve) *)                                              \
  X(execvpe, __typeof__(execvpe) *)                                            \
  X(fexecve, __typeof__(fexecve) *)                                            \
  X(posix_spawn, __typeof__(posix_spawn) *)                                    \
  X(posix_spawnp, __typeof__(posix_spawnp) *)                                  \
  X(fdopendir, __typeof__(fdopendir) *)                                        \
  X(scandir, __typeof__(scandir) *)                                            \
  X(fopen, __typeof__(fopen) *)                                                \
  X(freopen, __typeof__(freopen) *)                                            \
  X(realpath, __typeof__(realpath) *)                                          \
  X(sigaction, __typeof__(sigaction) *)                                        \
  X(pthread_create, __typeof__(pthread_create) *)                              \
  X(fopen64, FILE *(*)(const char *, const char *))                            \
  X(execveat, int (*)(int, const char *, char *const[], char *const[], int))   \
  X(syscall, long (*)(long, ...))
#define DECLARE_REAL(name, type) extern __typeof__(type) real_##name;
REAL_FUNCTIONS(DECLARE_REAL)
#undef DECLARE_REAL

/* ---- system calls (trampoline.c, sigsys.c) --------------------------- */

typedef long (*syscall6_fn)(long, long, long, long, long, long, long);
extern syscall6_fn trampoline;
void map_trampoline(void);

/* The thread's Syscall User Dispatch selector, and whether dispatch is on. */
extern __thread volatile char sud_selector TLS;
extern __thread int sud_on TLS;
void sud_start(void);

/* A raw system call: through the trampoline when it is mapped, else through
 * libc's syscall(3) (which the supervisor then sees too). Returns -errno. */
long sys6(long nr, long a, long b, long c, long d, long e, long f);
#define sys(nr, a, b, c, d) sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* The libc convention from a raw result. */
static inline long ret_errno(long r) {
  if (r < 0 && r > -4096) {
    errno = (int)-r;
    return -1;
  }
  return r;
}

static inline size_t str_len(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

/* ---- records (records.c) --------------------------------------------- */

void open_trace_fd(void);
void fd_link(char *link, int fd);
void record_at(char kind, int dirfd, const char *path);
#define record(kind, path) record_at(kind, AT_FDCWD, path)
void record_incomplete(const char *why, const char *path);
/* Why a record was left out: its path does not fit. */
#define WHY_TOO_LONG "a path longer than the tracer records was accessed"
void record_open_before(int dirfd, const char *path, int flags);
void record_open_after(int dirfd, const char *path, int flags, long result);
void record_lookup(int dirfd, const char *path, long result);

/* ---- the child's environment (env.c) --------------------------------- */

void remember_env(void);
size_t env_count(char *const *envp);
char *const *traced_env(char *const *envp, char **out, char *preload_buf, size_t preload_cap);

/* ---- traced calls, for the dispatch table (syscall_table.c) ---------- */

/*
 * Each traced call records and makes one system call and returns its raw
 * result (-errno on failure): the libc hooks wrap them in libc's convention,
 * and the dispatch table answers a raw call with them.
 */
long openat_traced(int dirfd, const char *path, int flags, long mode);
long openat2_traced(int dirfd, const char *path, const void *how_arg, size_t size);
long fstatat_traced(int dirfd, const char *path, void *buf, int flags);
long statx_traced(int dirfd, const char *path, int flags, unsigned mask, void *buf);
long lookup_traced(long nr, int dirfd, const char *path, long a, long b);
long getdents_traced(long nr, int fd, void *buf, long len);
long mkdirat_traced(int dirfd, const char *path, long mode);
long mknodat_traced(int dirfd, const char *path, long mode, long dev);
long unlinkat_traced(int dirfd, const char *path, int flags);
long renameat2_traced(int olddir, const char *oldpath, int newdir, const char *newpath, unsigned flags);
long linkat_traced(int olddir, const char *oldpath, int newdir, const char *newpath, int flags);
long symlinkat_traced(const char *target, int dirfd, const char *linkpath);
long truncate_traced(const char *path, long length);

long traced_call(long nr, const long *a);

#pragma GCC visibility pop

#endif
