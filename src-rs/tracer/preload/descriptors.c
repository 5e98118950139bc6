/*
 * Hooks that keep the trace descriptor: a program that closes every
 * descriptor (daemons, close_fds=True) or dup2's over its number must not
 * close the trace file, whose number could be reused for a file of the
 * program's, and records would land there.
 */
#include "preload.h"

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
