/*
 * The one table of system calls that name a file, and the syscall(3) hook
 * that answers from it. The SIGSYS handler (sigsys.c) answers raw calls
 * from the same table, so the two cannot drift.
 */
#include "preload.h"

#include <stdarg.h>

/*
 * Every system call that names a file, recorded and made as the libc hooks
 * do it: for syscall(3) (libuv's statx, a program's openat2) and for the raw
 * calls Syscall User Dispatch hands to the SIGSYS handler. NOT_TRACED for
 * any other number: the caller makes that call through libc, where the
 * supervisor's filter sees it if it names a file after all (execve, chroot,
 * open_by_handle_at, …).
 */
long traced_call(long nr, const long *a) {
  const char *p0 = (const char *)a[0], *p1 = (const char *)a[1];
  switch (nr) {
    case SYS_openat:
      return openat_traced((int)a[0], p1, (int)a[2], a[3]);
    case SYS_openat2:
      return openat2_traced((int)a[0], p1, (const void *)a[2], (size_t)a[3]);
    case SYS_statx:
      return statx_traced((int)a[0], p1, (int)a[2], (unsigned)a[3], (void *)a[4]);
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
