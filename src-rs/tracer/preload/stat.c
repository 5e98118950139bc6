/*
 * Hooks for looking a name up without opening it: the stat family (with
 * glibc's old __xstat names and statx), access, readlink and realpath. Each
 * records whether the name exists.
 */
#include "preload.h"

#include <limits.h>
#include <string.h>

/* AT_EMPTY_PATH with "" looks up the descriptor itself, whose name was
 * recorded when it was opened. */
static int names_a_path(int flags, const char *path) {
  return !((flags & AT_EMPTY_PATH) && path && path[0] == '\0');
}

long fstatat_traced(int dirfd, const char *path, void *buf, int flags) {
  long r = sys(SYS_FSTATAT, dirfd, path, buf, flags);
  if (names_a_path(flags, path)) record_lookup(dirfd, path, r);
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

long statx_traced(int dirfd, const char *path, int flags, unsigned mask, void *buf) {
  long r = sys6(SYS_statx, dirfd, (long)path, flags, mask, (long)buf, 0);
  if (names_a_path(flags, path)) record_lookup(dirfd, path, r);
  return r;
}

EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) {
  ENSURE_INIT();
  return (int)ret_errno(statx_traced(dirfd, path, flags, mask, buf));
}

/* faccessat, faccessat2, readlinkat: a look-up of (dirfd, path). */
long lookup_traced(long nr, int dirfd, const char *path, long a, long b) {
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
