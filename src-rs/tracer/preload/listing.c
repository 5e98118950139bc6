/*
 * Hooks for listing a directory: opendir and scandir record the directory
 * as listed; getdents (through the dispatch table) records the directory
 * its descriptor names.
 */
#include "preload.h"

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

/* A directory read by descriptor: listed, under the name its descriptor has.
 * libc's readdir makes this call internally, where the supervisor's filter
 * needs no record (the open was one); only syscall(3) and raw calls get here. */
long getdents_traced(long nr, int fd, void *buf, long len) {
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
