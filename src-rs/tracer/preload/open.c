/*
 * Hooks for opening a file: the open family and its _FORTIFY_SOURCE and
 * LFS64 names, creat, the stdio opens, and openat2 (which has no libc
 * wrapper and arrives through the dispatch table only).
 */
#include "preload.h"

#include <stdarg.h>
#include <string.h>

long openat_traced(int dirfd, const char *path, int flags, long mode) {
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

EXPORT int openat(int dirfd, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  return do_openat(dirfd, path, flags, mode);
}

/* The LFS64 names: the same calls where off_t is 64 bits, as on every
 * architecture the tracer supports. */
EXPORT int open64(const char *path, int flags, ...) __attribute__((alias("open")));
EXPORT int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

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

/* An fopen recorded around libc's `open_file` (fopen or fopen64). */
static FILE *fopen_traced(FILE *(*open_file)(const char *, const char *), const char *path, const char *mode) {
  int flags = fopen_flags(mode);
  record_open_before(AT_FDCWD, path, flags);
  FILE *f = open_file(path, mode);
  int saved = errno;
  record_open_after(AT_FDCWD, path, flags, f ? 0 : -saved);
  errno = saved;
  return f;
}

EXPORT FILE *fopen(const char *path, const char *mode) {
  ENSURE_INIT();
  return fopen_traced(real_fopen, path, mode);
}

EXPORT FILE *fopen64(const char *path, const char *mode) {
  ENSURE_INIT();
  return fopen_traced(real_fopen64 ? real_fopen64 : real_fopen, path, mode);
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

/*
 * openat2 (no libc wrapper: syscall(3) or raw) records like openat, with
 * the flags of its `struct open_how`. RESOLVE_IN_ROOT makes its descriptor
 * the root, so the name is recorded as the one it has beneath that root.
 */
long openat2_traced(int dirfd, const char *path, const void *how_arg, size_t size) {
  uint64_t how[3]; /* flags, mode, resolve */
  if (how_arg == NULL || size < sizeof how || path == NULL) return sys(SYS_openat2, dirfd, path, how_arg, size);
  memcpy(how, how_arg, sizeof how);
  char in_root[TRACE_PATH_MAX];
  const char *name = path;
  if (how[2] & TRACE_RESOLVE_IN_ROOT) {
    if (trace_in_root(path, in_root, sizeof in_root) == 0) {
      record_incomplete(WHY_TOO_LONG, NULL);
      return sys(SYS_openat2, dirfd, path, how_arg, size);
    }
    name = in_root;
  }
  record_open_before(dirfd, name, (int)how[0]);
  long r = sys(SYS_openat2, dirfd, path, how_arg, size);
  record_open_after(dirfd, name, (int)how[0], r);
  return r;
}
