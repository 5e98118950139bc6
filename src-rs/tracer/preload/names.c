/*
 * Hooks for calls that make, remove or change a name: mkdir, rmdir,
 * unlink, remove, rename, truncate, link, symlink and mknod. An effect is
 * recorded before it happens, so it is never unrecorded.
 */
#include "preload.h"

/* A directory made is recorded once it exists: a failed mkdir changed nothing. */
long mkdirat_traced(int dirfd, const char *path, long mode) {
  long r = sys(SYS_mkdirat, dirfd, path, mode, 0);
  if (r == 0) record_at(TRACE_WRITTEN, dirfd, path);
  return r;
}

long unlinkat_traced(int dirfd, const char *path, int flags) {
  record_at(TRACE_DELETED, dirfd, path);
  return sys(SYS_unlinkat, dirfd, path, flags, 0);
}

long renameat2_traced(int olddir, const char *oldpath, int newdir, const char *newpath, unsigned flags) {
  record_at(TRACE_DELETED, olddir, oldpath);
  record_at(TRACE_WRITTEN, newdir, newpath);
  return sys6(SYS_renameat2, olddir, (long)oldpath, newdir, (long)newpath, flags, 0);
}

long truncate_traced(const char *path, long length) {
  record(TRACE_WRITTEN, path);
  return sys(SYS_truncate, path, length, 0, 0);
}

long linkat_traced(int olddir, const char *oldpath, int newdir, const char *newpath, int flags) {
  record_at(TRACE_WRITTEN, newdir, newpath);
  long r = sys6(SYS_linkat, olddir, (long)oldpath, newdir, (long)newpath, flags, 0);
  record_lookup(olddir, oldpath, r);
  return r;
}

long symlinkat_traced(const char *target, int dirfd, const char *linkpath) {
  record_at(TRACE_WRITTEN, dirfd, linkpath);
  return sys(SYS_symlinkat, target, dirfd, linkpath, 0);
}

/* A node made (a FIFO, a socket, a device): written once it exists. */
long mknodat_traced(int dirfd, const char *path, long mode, long dev) {
  long r = sys(SYS_mknodat, dirfd, path, mode, dev);
  if (r == 0) record_at(TRACE_WRITTEN, dirfd, path);
  return r;
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
