/*
 * runner-aware's preload library: loaded into every dynamically linked process
 * of a traced task (LD_PRELOAD), it records which files the process read,
 * stat'ed, listed, wrote and deleted into the task's trace file.
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
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <sys/prctl.h>
#include <ucontext.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "trace.h"

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

struct statx;
struct stat64;

#define EXPORT __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)

extern char **environ;

/* ---- system calls ------------------------------------------------------ */

typedef long (*syscall6_fn)(long, long, long, long, long, long, long);
static syscall6_fn trampoline;
static long (*real_syscall)(long, ...);

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

/*
 * Syscall User Dispatch (Linux 5.11): a thread's system calls made from
 * outside libc's code (raw `syscall` instructions in a native addon, the
 * dynamic loader's) raise SIGSYS in the thread itself while its selector
 * says BLOCK, and the handler below records and makes them: a few
 * microseconds, where the supervisor's notification round trip costs far
 * more. Unlike a seccomp filter it ends at exec, so a static program started
 * from here is left to the supervisor. The selector is ALLOW while the
 * tracer itself makes a call through the trampoline.
 */
#ifndef PR_SET_SYSCALL_USER_DISPATCH
#define PR_SET_SYSCALL_USER_DISPATCH 59
#define PR_SYS_DISPATCH_OFF 0
#define PR_SYS_DISPATCH_ON 1
#define SYSCALL_DISPATCH_FILTER_ALLOW 0
#define SYSCALL_DISPATCH_FILTER_BLOCK 1
#endif
#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2 /* si_code of its SIGSYS */
#endif
#define TLS __attribute__((tls_model("initial-exec")))
static __thread volatile char sud_selector TLS = SYSCALL_DISPATCH_FILTER_ALLOW;
static __thread int sud_on TLS;
static unsigned long libc_code_start, libc_code_len;

/* A raw system call: through the trampoline when it is mapped, else through
 * libc's syscall(3) (which the supervisor then sees too). Returns -errno. */
static long sys6(long nr, long a, long b, long c, long d, long e, long f) {
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
#define sys(nr, a, b, c, d) sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* The libc convention from a raw result. */
static long ret_errno(long r) {
  if (r < 0 && r > -4096) {
    errno = (int)-r;
    return -1;
  }
  return r;
}

static void map_trampoline(void) {
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

/* ---- state ------------------------------------------------------------- */

#define TRACE_FD_MIN 900
static int trace_fd = -1;
static char trace_path[TRACE_PATH_MAX];
static int supervised;
/* "NAME=value" strings an exec'd child must get back when its env lost them. */
static char env_preload[TRACE_PATH_MAX + 16];
static char env_trace[TRACE_PATH_MAX + 32];
static char env_supervised[64];
static const char env_no_io_uring[] = "UV_USE_IO_URING=0";
static char preload_lib[TRACE_PATH_MAX];
static int initialized;

static void init(void);
static void sud_start(void);
#define ENSURE_INIT()                   \
  do {                                  \
    if (!LIKELY(initialized)) init();   \
  } while (0)

/* Looked up once, at init: the libc functions the hooks fall back to. */
#define REAL(name) static __typeof__(name) *real_##name
REAL(execve);
REAL(execvpe);
REAL(fexecve);
REAL(posix_spawn);
REAL(posix_spawnp);
REAL(fdopendir);
REAL(scandir);
REAL(fopen);
REAL(freopen);
REAL(realpath);
REAL(close);
REAL(sigaction);
REAL(pthread_create);
static int (*real_close_range)(unsigned, unsigned, int);
static void (*real_closefrom)(int);
static FILE *(*real_fopen64)(const char *, const char *);
static int (*real_execveat)(int, const char *, char *const[], char *const[], int);

/* ---- dedupe ------------------------------------------------------------ */

/* Per process: each (kind, path) is written once. 2^16 slots of 64-bit
 * hashes, lock-free; when a probe finds no room the record is written again,
 * which costs a write, never a record. A forked child inherits the table,
 * which is right: the trace is the whole task's. */
#define DEDUPE_SLOTS 65536
static uint64_t dedupe[DEDUPE_SLOTS];

static uint64_t hash_record(const char *rec, size_t len) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)rec[i]) * 0x100000001b3ULL;
  return h ? h : 1;
}

/* True when the record was seen before in this process. */
static int seen_before(const char *rec, size_t len) {
  uint64_t h = hash_record(rec, len);
  for (size_t probe = 0; probe < 64; probe++) {
    uint64_t *slot = &dedupe[(h + probe) & (DEDUPE_SLOTS - 1)];
    uint64_t cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (cur == h) return 1;
    if (cur == 0) {
      uint64_t expected = 0;
      if (__atomic_compare_exchange_n(slot, &expected, h, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return 0;
      if (expected == h) return 1;
    }
  }
  return 0;
}

/* ---- records ----------------------------------------------------------- */

static size_t str_len(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static int starts_with_dir(const char *path, const char *dir) {
  size_t n = str_len(dir);
  return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Pseudo-filesystems describe processes and devices, not task files. */
static int is_pseudo(const char *abs) {
  return starts_with_dir(abs, "/proc") || starts_with_dir(abs, "/sys") || starts_with_dir(abs, "/dev");
}

/* Reopens the trace file when the process lost its descriptor. */
static void open_trace_fd(void) {
  long fd = sys(SYS_openat, AT_FDCWD, trace_path, O_WRONLY | O_APPEND | O_CLOEXEC, 0);
  if (fd < 0) return;
  long high = sys(SYS_fcntl, fd, F_DUPFD_CLOEXEC, TRACE_FD_MIN, 0);
  if (high >= 0) {
    sys(SYS_close, fd, 0, 0, 0);
    fd = high;
  }
  trace_fd = (int)fd;
}

/* Says once, through a call the supervisor sees, that records were lost. */
static void records_lost(void) {
  static int said;
  if (said || real_syscall == NULL) return;
  said = 1;
  real_syscall(SYS_faccessat, AT_FDCWD, TRACE_LOST_PATH, F_OK, 0);
}

static void write_record(const char *rec, size_t len) {
  /* No descriptor (or one taken away) is reopened once below. */
  long r = trace_fd < 0 ? -EBADF : sys(SYS_write, trace_fd, rec, len, 0);
  if (r == -EBADF) {
    trace_fd = -1;
    open_trace_fd();
    if (trace_fd >= 0) r = sys(SYS_write, trace_fd, rec, len, 0);
  }
  if (r != (long)len) records_lost();
}

#define TOO_LONG ((size_t)-1)

/* "/proc/self/fd/<fd>" into `link` (32 bytes), without stdio. */
static void fd_link(char *link, int fd) {
  static const char prefix[] = "/proc/self/fd/";
  int i = (int)sizeof prefix - 1, digits[12], k = 0;
  memcpy(link, prefix, sizeof prefix - 1);
  do digits[k++] = fd % 10; while ((fd /= 10) > 0);
  while (k > 0) link[i++] = (char)('0' + digits[--k]);
  link[i] = '\0';
}

/* The absolute form of `path` relative to `dirfd`, in `out`; 0 when it has
 * none (an empty path, a descriptor that names no directory: the call fails
 * without touching a file), TOO_LONG when it does not fit a record. */
static size_t absolute(int dirfd, const char *path, char *out, size_t cap) {
  if (path == NULL || path[0] == '\0') return 0;
  size_t n = 0;
  if (path[0] != '/') {
    long r;
    if (dirfd == AT_FDCWD) {
      r = sys(SYS_getcwd, out, cap, 0, 0);
      if (r <= 0) return 0;
      n = str_len(out);
    } else {
      char link[32];
      if (dirfd < 0) return 0;
      fd_link(link, dirfd);
      r = sys(SYS_readlinkat, AT_FDCWD, link, out, cap - 1);
      if (r <= 0 || out[0] != '/') return 0;
      n = (size_t)r;
    }
    if (n + 1 >= cap) return TOO_LONG;
    if (n > 1) out[n++] = '/';
  }
  size_t len = str_len(path);
  if (n + len >= cap) return TOO_LONG;
  memcpy(out + n, path, len + 1);
  return n + len;
}

static void record_incomplete(const char *why, const char *path);

/*
 * `path` (absolute, `len` bytes, in a buffer of `cap`) rewritten in place
 * when it goes through a process's cwd, root or descriptor link in /proc:
 * the link's target, then the rest. Returns the new length, 0 when it names
 * no file (a pipe's descriptor, a process gone) or is no such path,
 * TOO_LONG when it does not fit.
 */
static size_t through_proc_link(char *path, size_t len, size_t cap) {
  unsigned long process_end;
  size_t end = trace_proc_link(path, &process_end);
  char link[64], target[TRACE_PATH_MAX];
  if (end == 0 || end >= sizeof link) return 0;
  memcpy(link, path, end);
  link[end] = '\0';
  long r = sys(SYS_readlinkat, AT_FDCWD, link, target, sizeof target - 1);
  if (r <= 0 || target[0] != '/') return 0;
  /* The root is "/": the rest is already absolute. */
  size_t t = r == 1 ? 0 : (size_t)r, rest = len - end;
  if (t + rest + 2 > cap) return TOO_LONG;
  memmove(path + t, path + end, rest + 1);
  memcpy(path, target, t);
  if (t + rest == 0) {
    path[0] = '/';
    path[1] = '\0';
    return 1;
  }
  return t + rest;
}

static void record_at(char kind, int dirfd, const char *path) {
  char rec[TRACE_PATH_MAX + 2];
  if (trace_path[0] == '\0') return;
  size_t n = absolute(dirfd, path, rec + 1, sizeof rec - 1);
  /* Off the common path: only a name in /proc is looked at again. */
  if (n != TOO_LONG && n != 0 && is_pseudo(rec + 1)) {
    n = through_proc_link(rec + 1, n, sizeof rec - 1);
    if (n != TOO_LONG && n != 0 && is_pseudo(rec + 1)) return;
  }
  if (n == TOO_LONG) {
    record_incomplete("a path longer than the tracer records was accessed", NULL);
    return;
  }
  if (n == 0) return;
  if (starts_with_dir(rec + 1, trace_path)) return;
  rec[0] = kind;
  if (seen_before(rec, n + 1)) return;
  write_record(rec, n + 2);
}
#define record(kind, path) record_at(kind, AT_FDCWD, path)

static void record_incomplete(const char *why, const char *path) {
  char rec[TRACE_PATH_MAX + 256];
  size_t n = 0, w = str_len(why), p = path ? str_len(path) : 0;
  if (w + p + 3 > sizeof rec) p = 0;
  rec[n++] = TRACE_INCOMPLETE;
  memcpy(rec + n, why, w);
  n += w;
  if (p) {
    memcpy(rec + n, path, p);
    n += p;
  }
  rec[n++] = '\0';
  write_record(rec, n);
}

/* What an open's flags do to a path, and what its outcome says. */
static void record_open_before(int dirfd, const char *path, int flags) {
  int acc = flags & O_ACCMODE;
  /* O_TRUNC empties the file before anything can be read from it (Dart's
   * way of writing sass-embedded's CSS): a write, not an input. */
  if (acc == O_RDWR && !(flags & O_TRUNC)) record_at(TRACE_READ, dirfd, path);
  if (acc != O_RDONLY || (flags & (O_CREAT | O_TRUNC))) record_at(TRACE_WRITTEN, dirfd, path);
}

static void record_open_after(int dirfd, const char *path, int flags, long result) {
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC))) return;
  if (result >= 0) {
    record_at((flags & O_DIRECTORY) ? TRACE_LISTED : TRACE_READ, dirfd, path);
  } else if (result == -ENOENT || result == -ENOTDIR) {
    record_at(TRACE_MISSING, dirfd, path);
  } else {
    record_at(TRACE_FOUND, dirfd, path);
  }
}

static void record_lookup(int dirfd, const char *path, long result) {
  record_at(result >= 0 ? TRACE_FOUND : (result == -ENOENT || result == -ENOTDIR) ? TRACE_MISSING : TRACE_FOUND,
            dirfd, path);
}

/* ---- init -------------------------------------------------------------- */

static void copy_env(char *out, size_t cap, const char *name, const char *value) {
  size_t n = str_len(name), v = str_len(value);
  if (n + v + 2 > cap) return;
  memcpy(out, name, n);
  out[n] = '=';
  memcpy(out + n + 1, value, v + 1);
}

/* This library's own path, for LD_PRELOAD in a child whose env lost it. */
static void find_self(void) {
  Dl_info info;
  if (dladdr((void *)find_self, &info) && info.dli_fname && info.dli_fname[0] == '/' &&
      str_len(info.dli_fname) < sizeof preload_lib)
    memcpy(preload_lib, info.dli_fname, str_len(info.dli_fname) + 1);
}

__attribute__((constructor(101))) static void init(void) {
  if (initialized) return;
  real_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
#define LOOKUP(name) real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name)
  LOOKUP(execve);
  LOOKUP(execvpe);
  LOOKUP(fexecve);
  LOOKUP(posix_spawn);
  LOOKUP(posix_spawnp);
  LOOKUP(fdopendir);
  LOOKUP(scandir);
  LOOKUP(fopen);
  LOOKUP(fopen64);
  LOOKUP(freopen);
  LOOKUP(realpath);
  LOOKUP(close);
  LOOKUP(close_range);
  LOOKUP(closefrom);
  LOOKUP(execveat);
  LOOKUP(sigaction);
  LOOKUP(pthread_create);
#undef LOOKUP
  if (real_syscall == NULL) return;
  map_trampoline();
  initialized = 1;

  const char *file = getenv(TRACE_ENV_FILE);
  if (file == NULL || file[0] != '/' || str_len(file) >= sizeof trace_path) return;
  memcpy(trace_path, file, str_len(file) + 1);
  copy_env(env_trace, sizeof env_trace, TRACE_ENV_FILE, trace_path);
  const char *sup = getenv(TRACE_ENV_SUPERVISED);
  supervised = sup != NULL && strcmp(sup, "1") == 0;
  if (supervised) copy_env(env_supervised, sizeof env_supervised, TRACE_ENV_SUPERVISED, "1");
  find_self();
  if (preload_lib[0]) copy_env(env_preload, sizeof env_preload, "LD_PRELOAD", preload_lib);
  open_trace_fd();
  sud_start();
  if (!supervised)
    record_incomplete("a process ran outside the trace supervisor, so system calls libc makes internally "
                      "and raw system calls were not seen",
                      NULL);
}

/* ---- keeping the trace descriptor -------------------------------------- */

/* A program that closes every descriptor (daemons, close_fds=True) must not
 * close the trace file: its number could be reused for a file of the
 * program's, and records would land there. */
EXPORT int close(int fd) {
  ENSURE_INIT();
  if (fd >= 0 && fd == trace_fd) return 0;
  return (int)ret_errno(sys(SYS_close, fd, 0, 0, 0));
}

EXPORT int close_range(unsigned first, unsigned last, int flags) {
  ENSURE_INIT();
  unsigned fd = (unsigned)trace_fd;
  if (trace_fd >= 0 && fd >= first && fd <= last) {
    int r = 0;
    if (fd > first) r = (int)ret_errno(sys(SYS_close_range, first, fd - 1, flags, 0));
    if (r == 0 && fd < last) r = (int)ret_errno(sys(SYS_close_range, fd + 1, last, flags, 0));
    return r;
  }
  return (int)ret_errno(sys(SYS_close_range, first, last, flags, 0));
}

EXPORT void closefrom(int lowfd) {
  ENSURE_INIT();
  close_range(lowfd < 0 ? 0 : (unsigned)lowfd, ~0U, 0);
}

static int move_trace_fd_from(int fd) {
  if (fd < 0 || fd != trace_fd) return 0;
  long high = sys(SYS_fcntl, trace_fd, F_DUPFD_CLOEXEC, fd + 1, 0);
  trace_fd = high >= 0 ? (int)high : -1;
  return 0;
}

EXPORT int dup2(int oldfd, int newfd) {
  ENSURE_INIT();
  if (oldfd != newfd) move_trace_fd_from(newfd);
  if (oldfd == newfd) return (int)ret_errno(sys(SYS_fcntl, oldfd, F_GETFD, 0, 0) < 0 ? -EBADF : newfd);
  return (int)ret_errno(sys(SYS_dup3, oldfd, newfd, 0, 0));
}

EXPORT int dup3(int oldfd, int newfd, int flags) {
  ENSURE_INIT();
  move_trace_fd_from(newfd);
  return (int)ret_errno(sys(SYS_dup3, oldfd, newfd, flags, 0));
}

/* ---- open -------------------------------------------------------------- */

/*
 * Each traced call records and makes one system call and returns its raw
 * result (-errno on failure): the libc hooks wrap them in libc's convention,
 * and the dispatch handler (below) answers a raw call with them.
 */
static long openat_traced(int dirfd, const char *path, int flags, long mode) {
  record_open_before(dirfd, path, flags);
  long r = sys(SYS_openat, dirfd, path, flags, mode);
  record_open_after(dirfd, path, flags, r);
  return r;
}

static int do_openat(int dirfd, const char *path, int flags, mode_t mode) {
  ENSURE_INIT();
  return (int)ret_errno(openat_traced(dirfd, path, flags, mode));
}

static mode_t mode_arg(int flags, va_list ap) {
  return ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? (mode_t)va_arg(ap, int) : 0;
}

EXPORT int open(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return do_openat(AT_FDCWD, path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return do_openat(AT_FDCWD, path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return do_openat(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return do_openat(dirfd, path, flags, mode);
}

/* The _FORTIFY_SOURCE entry points: no mode, O_CREAT is rejected by them. */
EXPORT int __open_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
EXPORT int __open64_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
EXPORT int __openat_2(int dirfd, const char *path, int flags) { return do_openat(dirfd, path, flags, 0); }
EXPORT int __openat64_2(int dirfd, const char *path, int flags) { return do_openat(dirfd, path, flags, 0); }

EXPORT int creat(const char *path, mode_t mode) {
  return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
EXPORT int creat64(const char *path, mode_t mode) {
  return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

/* stdio opens through libc's internal open, which the supervisor sees; the
 * hook records first so an unsupervised process sees it too. */
static int fopen_flags(const char *mode) {
  /* "w" truncates, "a" appends: as fopen itself opens. */
  int flags = mode[0] == 'r' ? O_RDONLY : O_WRONLY | O_CREAT | (mode[0] == 'w' ? O_TRUNC : O_APPEND);
  for (const char *m = mode + 1; *m && *m != ','; m++)
    if (*m == '+') flags = (flags & ~O_ACCMODE) | O_RDWR;
  return flags;
}

EXPORT FILE *fopen(const char *path, const char *mode) {
  ENSURE_INIT();
  int flags = fopen_flags(mode);
  record_open_before(AT_FDCWD, path, flags);
  FILE *f = real_fopen(path, mode);
  int saved = errno;
  record_open_after(AT_FDCWD, path, flags, f ? 0 : -saved);
  errno = saved;
  return f;
}

EXPORT FILE *fopen64(const char *path, const char *mode) {
  ENSURE_INIT();
  int flags = fopen_flags(mode);
  record_open_before(AT_FDCWD, path, flags);
  FILE *f = (real_fopen64 ? real_fopen64 : real_fopen)(path, mode);
  int saved = errno;
  record_open_after(AT_FDCWD, path, flags, f ? 0 : -saved);
  errno = saved;
  return f;
}

EXPORT FILE *freopen(const char *path, const char *mode, FILE *stream) {
  ENSURE_INIT();
  int flags = path ? fopen_flags(mode) : 0;
  if (path) record_open_before(AT_FDCWD, path, flags);
  FILE *f = real_freopen(path, mode, stream);
  int saved = errno;
  if (path) record_open_after(AT_FDCWD, path, flags, f ? 0 : -saved);
  errno = saved;
  return f;
}

/* ---- stat, access, readlink -------------------------------------------- */

#if defined(SYS_newfstatat)
#define SYS_FSTATAT SYS_newfstatat
#else
#define SYS_FSTATAT SYS_fstatat
#endif

static long fstatat_traced(int dirfd, const char *path, void *buf, int flags) {
  long r = sys(SYS_FSTATAT, dirfd, path, buf, flags);
  if (!((flags & AT_EMPTY_PATH) && path && path[0] == '\0')) record_lookup(dirfd, path, r);
  return r;
}

static int do_fstatat(int dirfd, const char *path, void *buf, int flags) {
  ENSURE_INIT();
  return (int)ret_errno(fstatat_traced(dirfd, path, buf, flags));
}

EXPORT int stat(const char *path, struct stat *buf) { return do_fstatat(AT_FDCWD, path, buf, 0); }
EXPORT int stat64(const char *path, struct stat64 *buf) { return do_fstatat(AT_FDCWD, path, buf, 0); }
EXPORT int lstat(const char *path, struct stat *buf) { return do_fstatat(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW); }
EXPORT int lstat64(const char *path, struct stat64 *buf) {
  return do_fstatat(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
EXPORT int fstatat(int dirfd, const char *path, struct stat *buf, int flags) {
  return do_fstatat(dirfd, path, buf, flags);
}
EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *buf, int flags) {
  return do_fstatat(dirfd, path, buf, flags);
}

/* glibc before 2.33 exported the stat family under these names; programs
 * built against it (official Node binaries among them) still call them. On
 * x86_64 and arm64 their buffer is the kernel's struct stat. */
EXPORT int __xstat(int ver, const char *path, struct stat *buf) {
  (void)ver;
  return do_fstatat(AT_FDCWD, path, buf, 0);
}
EXPORT int __xstat64(int ver, const char *path, struct stat64 *buf) {
  (void)ver;
  return do_fstatat(AT_FDCWD, path, buf, 0);
}
EXPORT int __lxstat(int ver, const char *path, struct stat *buf) {
  (void)ver;
  return do_fstatat(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
EXPORT int __lxstat64(int ver, const char *path, struct stat64 *buf) {
  (void)ver;
  return do_fstatat(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW);
}
EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *buf, int flags) {
  (void)ver;
  return do_fstatat(dirfd, path, buf, flags);
}
EXPORT int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *buf, int flags) {
  (void)ver;
  return do_fstatat(dirfd, path, buf, flags);
}

static long do_statx(int dirfd, const char *path, int flags, unsigned mask, void *buf) {
  long r = sys6(SYS_statx, dirfd, (long)path, flags, mask, (long)buf, 0);
  if (!((flags & AT_EMPTY_PATH) && path && path[0] == '\0')) record_lookup(dirfd, path, r);
  return r;
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) {
  ENSURE_INIT();
  return (int)ret_errno(do_statx(dirfd, path, flags, mask, buf));
}

/* faccessat, faccessat2, readlinkat: a look-up of (dirfd, path). */
static long lookup_traced(long nr, int dirfd, const char *path, long a, long b) {
  long r = sys(nr, dirfd, path, a, b);
  record_lookup(dirfd, path, r);
  return r;
}

EXPORT int access(const char *path, int mode) {
  ENSURE_INIT();
  return (int)ret_errno(lookup_traced(SYS_faccessat, AT_FDCWD, path, mode, 0));
}

EXPORT int faccessat(int dirfd, const char *path, int mode, int flags) {
  ENSURE_INIT();
  if (flags == 0) return (int)ret_errno(lookup_traced(SYS_faccessat, dirfd, path, mode, 0));
  long r = lookup_traced(SYS_faccessat2, dirfd, path, mode, flags);
  return (int)ret_errno(r == -ENOSYS ? -EINVAL : r);
}

EXPORT int euidaccess(const char *path, int mode) { return faccessat(AT_FDCWD, path, mode, AT_EACCESS); }
EXPORT int eaccess(const char *path, int mode) { return faccessat(AT_FDCWD, path, mode, AT_EACCESS); }

EXPORT ssize_t readlink(const char *path, char *buf, size_t len) {
  ENSURE_INIT();
  return ret_errno(lookup_traced(SYS_readlinkat, AT_FDCWD, path, (long)buf, (long)len));
}

EXPORT ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t len) {
  ENSURE_INIT();
  return ret_errno(lookup_traced(SYS_readlinkat, dirfd, path, (long)buf, (long)len));
}

/* The kernel's own canonical name of the path: open it O_PATH and read the
 * descriptor's link, one lookup instead of a readlink per component. */
EXPORT char *realpath(const char *path, char *resolved) {
  ENSURE_INIT();
  if (path == NULL) return real_realpath(path, resolved);
  long fd = sys(SYS_openat, AT_FDCWD, path, O_PATH | O_CLOEXEC, 0);
  record_lookup(AT_FDCWD, path, fd);
  if (fd < 0) {
    errno = (int)-fd;
    return NULL;
  }
  char link[32], buf[PATH_MAX];
  fd_link(link, (int)fd);
  long n = sys(SYS_readlinkat, AT_FDCWD, link, buf, sizeof buf - 1);
  sys(SYS_close, fd, 0, 0, 0);
  if (n <= 0 || buf[0] != '/') return real_realpath(path, resolved);
  buf[n] = '\0';
  if (resolved == NULL) {
    resolved = malloc((size_t)n + 1);
    if (resolved == NULL) return NULL;
  }
  memcpy(resolved, buf, (size_t)n + 1);
  return resolved;
}

/* ---- directories -------------------------------------------------------- */

EXPORT DIR *opendir(const char *path) {
  ENSURE_INIT();
  long fd = sys(SYS_openat, AT_FDCWD, path, O_RDONLY | O_NONBLOCK | O_DIRECTORY | O_CLOEXEC, 0);
  record_open_after(AT_FDCWD, path, O_RDONLY | O_DIRECTORY, fd);
  if (fd < 0) {
    errno = (int)-fd;
    return NULL;
  }
  DIR *dir = real_fdopendir((int)fd);
  if (dir == NULL) {
    int saved = errno;
    sys(SYS_close, fd, 0, 0, 0);
    errno = saved;
  }
  return dir;
}

EXPORT int scandir(const char *path, struct dirent ***list, int (*filter)(const struct dirent *),
                   int (*compare)(const struct dirent **, const struct dirent **)) {
  ENSURE_INIT();
  int r = real_scandir(path, list, filter, compare);
  int saved = errno;
  record_open_after(AT_FDCWD, path, O_RDONLY | O_DIRECTORY, r >= 0 ? 0 : -saved);
  errno = saved;
  return r;
}

#ifdef __GLIBC__
/* What programs built with _FILE_OFFSET_BITS=64 (libuv among them) call. */
static __typeof__(scandir64) *real_scandir64;

EXPORT int scandir64(const char *path, struct dirent64 ***list, int (*filter)(const struct dirent64 *),
                     int (*compare)(const struct dirent64 **, const struct dirent64 **)) {
  ENSURE_INIT();
  if (real_scandir64 == NULL) real_scandir64 = (__typeof__(real_scandir64))dlsym(RTLD_NEXT, "scandir64");
  int r = real_scandir64(path, list, filter, compare);
  int saved = errno;
  record_open_after(AT_FDCWD, path, O_RDONLY | O_DIRECTORY, r >= 0 ? 0 : -saved);
  errno = saved;
  return r;
}
#endif

/* ---- effects: recorded before they happen ------------------------------- */

/* A directory made is recorded once it exists: a failed mkdir changed nothing. */
static long mkdirat_traced(int dirfd, const char *path, long mode) {
  long r = sys(SYS_mkdirat, dirfd, path, mode, 0);
  if (r == 0) record_at(TRACE_WRITTEN, dirfd, path);
  return r;
}

static long unlinkat_traced(int dirfd, const char *path, int flags) {
  record_at(TRACE_DELETED, dirfd, path);
  return sys(SYS_unlinkat, dirfd, path, flags, 0);
}

static long renameat2_traced(int olddir, const char *oldpath, int newdir, const char *newpath, unsigned flags) {
  record_at(TRACE_DELETED, olddir, oldpath);
  record_at(TRACE_WRITTEN, newdir, newpath);
  return sys6(SYS_renameat2, olddir, (long)oldpath, newdir, (long)newpath, flags, 0);
}

static long truncate_traced(const char *path, long length) {
  record(TRACE_WRITTEN, path);
  return sys(SYS_truncate, path, length, 0, 0);
}

EXPORT int mkdir(const char *path, mode_t mode) {
  ENSURE_INIT();
  return (int)ret_errno(mkdirat_traced(AT_FDCWD, path, mode));
}

EXPORT int mkdirat(int dirfd, const char *path, mode_t mode) {
  ENSURE_INIT();
  return (int)ret_errno(mkdirat_traced(dirfd, path, mode));
}

EXPORT int rmdir(const char *path) {
  ENSURE_INIT();
  return (int)ret_errno(unlinkat_traced(AT_FDCWD, path, AT_REMOVEDIR));
}

EXPORT int unlink(const char *path) {
  ENSURE_INIT();
  return (int)ret_errno(unlinkat_traced(AT_FDCWD, path, 0));
}

EXPORT int unlinkat(int dirfd, const char *path, int flags) {
  ENSURE_INIT();
  return (int)ret_errno(unlinkat_traced(dirfd, path, flags));
}

EXPORT int remove(const char *path) {
  ENSURE_INIT();
  long r = unlinkat_traced(AT_FDCWD, path, 0);
  if (r == -EISDIR) r = sys(SYS_unlinkat, AT_FDCWD, path, AT_REMOVEDIR, 0);
  return (int)ret_errno(r);
}

static int do_renameat2(int olddir, const char *oldpath, int newdir, const char *newpath, unsigned flags) {
  ENSURE_INIT();
  return (int)ret_errno(renameat2_traced(olddir, oldpath, newdir, newpath, flags));
}

EXPORT int rename(const char *oldpath, const char *newpath) {
  return do_renameat2(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
}
EXPORT int renameat(int olddir, const char *oldpath, int newdir, const char *newpath) {
  return do_renameat2(olddir, oldpath, newdir, newpath, 0);
}
EXPORT int renameat2(int olddir, const char *oldpath, int newdir, const char *newpath, unsigned int flags) {
  return do_renameat2(olddir, oldpath, newdir, newpath, flags);
}

EXPORT int truncate(const char *path, off_t length) {
  ENSURE_INIT();
  return (int)ret_errno(truncate_traced(path, length));
}
EXPORT int truncate64(const char *path, off_t length) { return truncate(path, length); }

static long linkat_traced(int olddir, const char *oldpath, int newdir, const char *newpath, int flags) {
  record_at(TRACE_WRITTEN, newdir, newpath);
  long r = sys6(SYS_linkat, olddir, (long)oldpath, newdir, (long)newpath, flags, 0);
  record_lookup(olddir, oldpath, r);
  return r;
}

static long symlinkat_traced(const char *target, int dirfd, const char *linkpath) {
  record_at(TRACE_WRITTEN, dirfd, linkpath);
  return sys(SYS_symlinkat, target, dirfd, linkpath, 0);
}

/* A node made (a FIFO, a socket, a device): written once it exists. */
static long mknodat_traced(int dirfd, const char *path, long mode, long dev) {
  long r = sys(SYS_mknodat, dirfd, path, mode, dev);
  if (r == 0) record_at(TRACE_WRITTEN, dirfd, path);
  return r;
}

EXPORT int link(const char *oldpath, const char *newpath) {
  ENSURE_INIT();
  return (int)ret_errno(linkat_traced(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0));
}

EXPORT int linkat(int olddir, const char *oldpath, int newdir, const char *newpath, int flags) {
  ENSURE_INIT();
  return (int)ret_errno(linkat_traced(olddir, oldpath, newdir, newpath, flags));
}

EXPORT int symlink(const char *target, const char *linkpath) {
  ENSURE_INIT();
  return (int)ret_errno(symlinkat_traced(target, AT_FDCWD, linkpath));
}

EXPORT int symlinkat(const char *target, int dirfd, const char *linkpath) {
  ENSURE_INIT();
  return (int)ret_errno(symlinkat_traced(target, dirfd, linkpath));
}

/* ---- openat2, listings by descriptor ------------------------------------ */

/*
 * openat2 (no libc wrapper: syscall(3) or raw) records like openat, with
 * the flags of its `struct open_how`. RESOLVE_IN_ROOT makes its descriptor
 * the root, so the name is recorded as the one it has beneath that root.
 */
static long openat2_traced(int dirfd, const char *path, const void *how_arg, size_t size) {
  uint64_t how[3]; /* flags, mode, resolve */
  if (how_arg == NULL || size < sizeof how || path == NULL) return sys(SYS_openat2, dirfd, path, how_arg, size);
  memcpy(how, how_arg, sizeof how);
  char in_root[TRACE_PATH_MAX];
  const char *name = path;
  if (how[2] & TRACE_RESOLVE_IN_ROOT) {
    if (trace_in_root(path, in_root, sizeof in_root) == 0) {
      record_incomplete("a path longer than the tracer records was accessed", NULL);
      return sys(SYS_openat2, dirfd, path, how_arg, size);
    }
    name = in_root;
  }
  record_open_before(dirfd, name, (int)how[0]);
  long r = sys(SYS_openat2, dirfd, path, how_arg, size);
  record_open_after(dirfd, name, (int)how[0], r);
  return r;
}

/* A directory read by descriptor: listed, under the name its descriptor has.
 * libc's readdir makes this call internally, where the supervisor's filter
 * needs no record (the open was one); only syscall(3) and raw calls get here. */
static long getdents_traced(long nr, int fd, void *buf, long len) {
  long r = sys(nr, fd, buf, len, 0);
  if (r >= 0 && trace_path[0]) {
    char link[32], dir[TRACE_PATH_MAX];
    fd_link(link, fd);
    long n = sys(SYS_readlinkat, AT_FDCWD, link, dir, sizeof dir - 1);
    if (n > 0 && dir[0] == '/') {
      dir[n] = '\0';
      record(TRACE_LISTED, dir);
    }
  }
  return r;
}

/* ---- one table for syscall(3) and raw system calls ----------------------- */

#define NOT_TRACED (-4096 - 2)

/*
 * Every system call that names a file, recorded and made as the libc hooks
 * do it: for syscall(3) (libuv's statx, a program's openat2) and for the raw
 * calls Syscall User Dispatch hands to the SIGSYS handler. One table, so the
 * two cannot drift. NOT_TRACED for any other number: the caller makes that
 * call through libc, where the supervisor's filter sees it if it names a
 * file after all (execve, chroot, open_by_handle_at, …).
 */
static long traced_call(long nr, const long *a) {
  const char *p0 = (const char *)a[0], *p1 = (const char *)a[1];
  switch (nr) {
    case SYS_openat:
      return openat_traced((int)a[0], p1, (int)a[2], a[3]);
    case SYS_openat2:
      return openat2_traced((int)a[0], p1, (const void *)a[2], (size_t)a[3]);
    case SYS_statx:
      return do_statx((int)a[0], p1, (int)a[2], (unsigned)a[3], (void *)a[4]);
    case SYS_FSTATAT:
      return fstatat_traced((int)a[0], p1, (void *)a[2], (int)a[3]);
    case SYS_faccessat:
    case SYS_faccessat2:
    case SYS_readlinkat:
      return lookup_traced(nr, (int)a[0], p1, a[2], a[3]);
    case SYS_mkdirat:
      return mkdirat_traced((int)a[0], p1, a[2]);
    case SYS_mknodat:
      return mknodat_traced((int)a[0], p1, a[2], a[3]);
    case SYS_unlinkat:
      return unlinkat_traced((int)a[0], p1, (int)a[2]);
    case SYS_renameat2:
      return renameat2_traced((int)a[0], p1, (int)a[2], (const char *)a[3], (unsigned)a[4]);
    case SYS_linkat:
      return linkat_traced((int)a[0], p1, (int)a[2], (const char *)a[3], (int)a[4]);
    case SYS_symlinkat:
      return symlinkat_traced(p0, (int)a[1], (const char *)a[2]);
    case SYS_truncate:
      return truncate_traced(p0, a[1]);
    case SYS_getdents64:
      return getdents_traced(nr, (int)a[0], (void *)a[1], a[2]);
#ifdef SYS_open
    /* The older calls, as the *at call they equal. */
    case SYS_open:
      return openat_traced(AT_FDCWD, p0, (int)a[1], a[2]);
    case SYS_creat:
      return openat_traced(AT_FDCWD, p0, O_CREAT | O_WRONLY | O_TRUNC, a[1]);
    case SYS_stat:
      return fstatat_traced(AT_FDCWD, p0, (void *)a[1], 0);
    case SYS_lstat:
      return fstatat_traced(AT_FDCWD, p0, (void *)a[1], AT_SYMLINK_NOFOLLOW);
    case SYS_access:
      return lookup_traced(SYS_faccessat, AT_FDCWD, p0, a[1], 0);
    case SYS_readlink:
      return lookup_traced(SYS_readlinkat, AT_FDCWD, p0, a[1], a[2]);
    case SYS_mkdir:
      return mkdirat_traced(AT_FDCWD, p0, a[1]);
    case SYS_mknod:
      return mknodat_traced(AT_FDCWD, p0, a[1], a[2]);
    case SYS_rmdir:
      return unlinkat_traced(AT_FDCWD, p0, AT_REMOVEDIR);
    case SYS_unlink:
      return unlinkat_traced(AT_FDCWD, p0, 0);
    case SYS_rename:
      return renameat2_traced(AT_FDCWD, p0, AT_FDCWD, p1, 0);
    case SYS_renameat:
      return renameat2_traced((int)a[0], p1, (int)a[2], (const char *)a[3], 0);
    case SYS_link:
      return linkat_traced(AT_FDCWD, p0, AT_FDCWD, p1, 0);
    case SYS_symlink:
      return symlinkat_traced(p0, AT_FDCWD, p1);
    case SYS_getdents:
      return getdents_traced(nr, (int)a[0], (void *)a[1], a[2]);
#endif
    default:
      return NOT_TRACED;
  }
}

/* ---- syscall(2) --------------------------------------------------------- */

/* Calls that name a file go through the table above (libuv stats through
 * syscall(SYS_statx)); any other through libc's syscall(3), which the
 * supervisor's filter sees. io_uring would move file access where neither
 * the hooks nor the filter see it, so it is refused (libuv, told ENOSYS,
 * falls back to its thread pool). */
EXPORT long syscall(long nr, ...) {
  va_list ap;
  va_start(ap, nr);
  long a[6];
  for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
  va_end(ap);
  ENSURE_INIT();
  if (nr == SYS_io_uring_setup) {
    errno = ENOSYS;
    return -1;
  }
  long r = traced_call(nr, a);
  if (r != NOT_TRACED) return ret_errno(r);
  return real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ---- exec: the tracer stays in the child's env -------------------------- */

static int env_name_is(const char *entry, const char *name) {
  size_t n = str_len(name);
  return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* `envp` with the tracer's variables restored into `out` (which holds
 * count(envp) + 5 entries); LD_PRELOAD keeps the child's other libraries. */
static char *const *traced_env(char *const *envp, char **out, char *preload_buf, size_t preload_cap) {
  size_t n = 0;
  const char *their_preload = NULL;
  for (char *const *e = envp; e && *e; e++) {
    if (env_name_is(*e, "LD_PRELOAD")) {
      their_preload = *e + 11;
      continue;
    }
    if (env_name_is(*e, TRACE_ENV_FILE) || env_name_is(*e, TRACE_ENV_SUPERVISED) || env_name_is(*e, "UV_USE_IO_URING"))
      continue;
    out[n++] = *e;
  }
  if (env_preload[0]) {
    if (their_preload && strstr(their_preload, preload_lib) == NULL &&
        str_len(env_preload) + str_len(their_preload) + 2 < preload_cap) {
      size_t k = str_len(env_preload);
      memcpy(preload_buf, env_preload, k);
      preload_buf[k] = ':';
      memcpy(preload_buf + k + 1, their_preload, str_len(their_preload) + 1);
      out[n++] = preload_buf;
    } else if (their_preload && strstr(their_preload, preload_lib) != NULL) {
      out[n++] = (char *)their_preload - 11;
    } else {
      out[n++] = env_preload;
    }
  }
  out[n++] = env_trace;
  if (supervised) out[n++] = env_supervised;
  out[n++] = (char *)env_no_io_uring;
  out[n] = NULL;
  return out;
}

static size_t env_count(char *const *envp) {
  size_t n = 0;
  while (envp && envp[n]) n++;
  return n;
}

/* Without the supervisor nothing sees a static program or a setuid one
 * (the loader drops LD_PRELOAD for it): the trace must say so. */
static void check_unseeable(int dirfd, const char *path) {
  if (supervised || trace_path[0] == '\0' || path == NULL) return;
  struct stat st;
  if (sys(SYS_FSTATAT, dirfd, path, &st, 0) == 0 && (st.st_mode & (S_ISUID | S_ISGID))) {
    record_incomplete("a setuid or setgid program ran untraced: ", path);
    return;
  }
  long fd = sys(SYS_openat, dirfd, path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return;
  unsigned char hdr[64];
  long n = sys(SYS_pread64, fd, hdr, sizeof hdr, 0);
  int is_static = 0;
  if (n == 64 && hdr[0] == 0x7f && hdr[1] == 'E' && hdr[2] == 'L' && hdr[3] == 'F' && hdr[4] == 2) {
    uint64_t phoff;
    uint16_t phentsize, phnum;
    memcpy(&phoff, hdr + 32, 8);
    memcpy(&phentsize, hdr + 54, 2);
    memcpy(&phnum, hdr + 56, 2);
    is_static = 1;
    for (uint16_t i = 0; i < phnum && i < 256; i++) {
      uint32_t type;
      if (sys(SYS_pread64, fd, &type, 4, phoff + (uint64_t)i * phentsize) != 4) break;
      if (type == 3 /* PT_INTERP */) {
        is_static = 0;
        break;
      }
    }
  }
  sys(SYS_close, fd, 0, 0, 0);
  if (is_static) record_incomplete("a static program ran untraced: ", path);
}

#define WITH_TRACED_ENV(envp, body)                          \
  do {                                                       \
    size_t count_ = env_count(envp);                         \
    char *out_[count_ + 6];                                  \
    char preload_[2 * TRACE_PATH_MAX + 16];                  \
    char *const *env_ = trace_path[0] ? traced_env(envp, out_, preload_, sizeof preload_) : (envp); \
    body;                                                    \
  } while (0)

EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
  ENSURE_INIT();
  record(TRACE_EXEC, path);
  check_unseeable(AT_FDCWD, path);
  int r;
  WITH_TRACED_ENV(envp, r = real_execve(path, argv, env_));
  return r;
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
  ENSURE_INIT();
  if (real_execveat == NULL) {
    errno = ENOSYS;
    return -1;
  }
  record_at(TRACE_EXEC, dirfd, path);
  check_unseeable(dirfd, path);
  int r;
  WITH_TRACED_ENV(envp, r = real_execveat(dirfd, path, argv, env_, flags));
  return r;
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[]) {
  ENSURE_INIT();
  int r;
  WITH_TRACED_ENV(envp, r = real_fexecve(fd, argv, env_));
  return r;
}

EXPORT int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
  ENSURE_INIT();
  if (strchr(file, '/')) {
    record(TRACE_EXEC, file);
    check_unseeable(AT_FDCWD, file);
  }
  int r;
  WITH_TRACED_ENV(envp, r = real_execvpe(file, argv, env_));
  return r;
}

EXPORT int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

/* The execl family: the variadic argument list as an argv array. */
#define COLLECT_ARGS(first, last_named, argv_name, extra_env)  \
  va_list ap_;                                                 \
  size_t argc_ = 1;                                            \
  va_start(ap_, last_named);                                   \
  while (va_arg(ap_, char *) != NULL) argc_++;                 \
  va_end(ap_);                                                 \
  char *argv_name[argc_ + 1];                                  \
  argv_name[0] = (char *)(first);                              \
  va_start(ap_, last_named);                                   \
  for (size_t i_ = 1; i_ <= argc_; i_++) argv_name[i_] = va_arg(ap_, char *); \
  extra_env;                                                   \
  va_end(ap_)

EXPORT int execl(const char *path, const char *arg, ...) {
  COLLECT_ARGS(arg, arg, argv, (void)0);
  return execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...) {
  COLLECT_ARGS(arg, arg, argv, (void)0);
  return execvpe(file, argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...) {
  char *const *envp;
  COLLECT_ARGS(arg, arg, argv, envp = va_arg(ap_, char *const *));
  return execve(path, argv, envp);
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  ENSURE_INIT();
  record(TRACE_EXEC, path);
  check_unseeable(AT_FDCWD, path);
  int r;
  WITH_TRACED_ENV(envp, r = real_posix_spawn(pid, path, actions, attr, argv, env_));
  return r;
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  ENSURE_INIT();
  int r;
  WITH_TRACED_ENV(envp, r = real_posix_spawnp(pid, file, actions, attr, argv, env_));
  return r;
}

/* ---- Syscall User Dispatch: raw system calls, in the thread ------------- */

#if defined(__x86_64__)
static const int arg_regs[6] = {REG_RDI, REG_RSI, REG_RDX, REG_R10, REG_R8, REG_R9};
#define UC_ARG(uc, i) ((uc)->uc_mcontext.gregs[arg_regs[i]])
#define UC_NR(uc) ((uc)->uc_mcontext.gregs[REG_RAX])
#define UC_RET(uc) ((uc)->uc_mcontext.gregs[REG_RAX])
#define UC_PC(uc) ((uc)->uc_mcontext.gregs[REG_RIP])
#define SYSCALL_INSN_LEN 2 /* syscall, and int $0x80 */
#define TRACE_NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define UC_ARG(uc, i) ((uc)->uc_mcontext.regs[i])
#define UC_NR(uc) ((uc)->uc_mcontext.regs[8])
#define UC_RET(uc) ((uc)->uc_mcontext.regs[0])
#define UC_PC(uc) ((uc)->uc_mcontext.pc)
#define SYSCALL_INSN_LEN 4
#define TRACE_NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

/* Run the call as the thread itself: it creates a thread or process, or
 * returns from a signal, which cannot happen inside a handler. */
#define RUN_NATIVELY (-4096 - 1)

static struct sigaction program_sigsys; /* a SIGSYS handler the program set, chained to */
static int sud_usable;

static long emulate(long nr, const long *a, ucontext_t *uc) {
  long r = traced_call(nr, a);
  if (r != NOT_TRACED) return r;
  switch (nr) {
    case SYS_rt_sigprocmask: {
      /* The mask the thread returns to is the handler's saved one. */
      uint64_t *mask = (uint64_t *)(void *)&uc->uc_sigmask, old = *mask, set;
      if (a[3] != 8) return -EINVAL;
      if (a[1]) {
        memcpy(&set, (const void *)a[1], 8);
        if (a[0] == SIG_BLOCK)
          *mask |= set;
        else if (a[0] == SIG_UNBLOCK)
          *mask &= ~set;
        else if (a[0] == SIG_SETMASK)
          *mask = set;
        else
          return -EINVAL;
        *mask &= ~((1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1)) | (1ULL << (SIGSYS - 1)));
      }
      if (a[2]) memcpy((void *)a[2], &old, 8);
      return 0;
    }
    case SYS_rt_sigaction:
      /* SIGSYS stays the tracer's. */
      if (a[0] == SIGSYS) return 0;
      break;
    case SYS_clone:
    case SYS_clone3:
#ifdef SYS_fork
    case SYS_fork:
    case SYS_vfork:
#endif
    case SYS_rt_sigreturn:
    case SYS_execve:
    case SYS_execveat:
      return RUN_NATIVELY;
    default:
      break;
  }
  /* Any other call, from libc's code: allowed by dispatch, and the
   * supervisor's filter sees it if it names a file. */
  r = real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
  return r == -1 ? -errno : r;
}

static void on_sigsys(int sig, siginfo_t *info, void *context) {
  ucontext_t *uc = context;
  if (info->si_code != SYS_USER_DISPATCH) {
    /* Not ours (a seccomp filter of the program's): its handler, or the default. */
    if (program_sigsys.sa_flags & SA_SIGINFO) {
      if (program_sigsys.sa_sigaction) program_sigsys.sa_sigaction(sig, info, context);
    } else if (program_sigsys.sa_handler != SIG_DFL && program_sigsys.sa_handler != SIG_IGN) {
      program_sigsys.sa_handler(sig);
    } else {
      signal(SIGSYS, SIG_DFL);
      raise(SIGSYS);
    }
    return;
  }
  int saved = errno;
  long nr = info->si_syscall, a[6];
  for (int i = 0; i < 6; i++) a[i] = (long)UC_ARG(uc, i);
  sud_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
  /* int $0x80 in a 64-bit thread has i386 numbers and registers, which the
   * table does not know: the thread makes it itself, under the supervisor's
   * filter, which knows them. */
  long r = info->si_arch == TRACE_NATIVE_ARCH ? emulate(nr, a, uc) : RUN_NATIVELY;
  if (r == RUN_NATIVELY) {
    /* Back over the instruction with dispatch off for this thread: its raw
     * calls go to the supervisor from now on, slower but seen. */
    UC_NR(uc) = nr;
#if defined(__aarch64__)
    UC_ARG(uc, 0) = a[0];
#endif
    UC_PC(uc) -= SYSCALL_INSN_LEN;
    errno = saved;
    return;
  }
  UC_RET(uc) = r;
  sud_selector = SYSCALL_DISPATCH_FILTER_BLOCK;
  errno = saved;
}

/* The main program's code: threads it starts are left alone. */
static unsigned long main_code_start, main_code_end;

static int find_main_code(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  (void)data;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    unsigned long start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
    if (main_code_end == 0 || start < main_code_start) main_code_start = start;
    if (end > main_code_end) main_code_end = end;
  }
  return 1; /* the first object is the program */
}

/* libc's own code, where dispatch lets calls through. */
static int find_libc_code(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  unsigned long target = (unsigned long)data;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    unsigned long start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
    if (target >= start && target < end) {
      libc_code_start = start;
      libc_code_len = end - start;
      return 1;
    }
  }
  return 0;
}

static void sud_enable_thread(void) {
  if (!sud_usable) return;
  sud_selector = SYSCALL_DISPATCH_FILTER_BLOCK;
  if (real_syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, libc_code_start, libc_code_len,
                   &sud_selector) == 0) {
    sud_on = 1;
  } else {
    sud_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
  }
}

/*
 * Dispatch for the threads native libraries start (a bundler's worker
 * threads, whose raw calls are the ones libc never sees), when the
 * supervisor and the trampoline are there and the kernel has it. The main
 * thread and the threads the program itself starts keep the supervisor
 * alone: a runtime that makes every call raw and handles signals its own way
 * (Go's) is not made to take a signal per call. RUNNER_AWARE_TRACE_DISPATCH=0
 * turns it off.
 */
static void sud_start(void) {
  if (!supervised || trampoline == NULL) return;
  const char *off = getenv("RUNNER_AWARE_TRACE_DISPATCH");
  if (off && strcmp(off, "0") == 0) return;
  dl_iterate_phdr(find_libc_code, (void *)real_syscall);
  dl_iterate_phdr(find_main_code, NULL);
  if (libc_code_len == 0 || real_pthread_create == NULL) return;
  struct sigaction act;
  memset(&act, 0, sizeof act);
  act.sa_sigaction = on_sigsys;
  /* No SA_ONSTACK: the handler needs some kilobytes of stack, which a
   * thread's own stack has and the small alternate stacks runtimes set up
   * for overflow reports may not. */
  act.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  if (real_sigaction(SIGSYS, &act, &program_sigsys) != 0) return;
  sud_usable = 1;
}

struct thread_start {
  void *(*routine)(void *);
  void *arg;
};

static void *start_with_dispatch(void *p) {
  struct thread_start start = *(struct thread_start *)p;
  free(p);
  sud_enable_thread();
  return start.routine(start.arg);
}

EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*routine)(void *), void *arg) {
  ENSURE_INIT();
  /* Before glibc 2.34 it lives in libpthread, which a program may load after
   * this library's start (a dlopen'ed module that needs it). */
  if (real_pthread_create == NULL) real_pthread_create = (__typeof__(real_pthread_create))dlsym(RTLD_NEXT, "pthread_create");
  if (real_pthread_create == NULL) return EAGAIN;
  unsigned long caller = (unsigned long)__builtin_return_address(0);
  int from_program = (caller >= main_code_start && caller < main_code_end) ||
                     (caller >= libc_code_start && caller < libc_code_start + libc_code_len);
  if (sud_usable && !from_program) {
    struct thread_start *start = malloc(sizeof *start);
    if (start != NULL) {
      start->routine = routine;
      start->arg = arg;
      int r = real_pthread_create(thread, attr, start_with_dispatch, start);
      if (r != 0) free(start);
      return r;
    }
  }
  return real_pthread_create(thread, attr, routine, arg);
}

/* A program's SIGSYS handler is chained to, not installed: dispatch needs ours. */
EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  ENSURE_INIT();
  if (real_sigaction == NULL) real_sigaction = (__typeof__(real_sigaction))dlsym(RTLD_NEXT, "sigaction");
  if (real_sigaction == NULL) {
    errno = ENOSYS;
    return -1;
  }
  if (sig != SIGSYS || !sud_usable) return real_sigaction(sig, act, old);
  if (old) *old = program_sigsys;
  if (act) program_sigsys = *act;
  return 0;
}
