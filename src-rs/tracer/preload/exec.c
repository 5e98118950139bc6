/*
 * Hooks for the exec family and posix_spawn: the program run is recorded,
 * a static or setuid one that nothing would see is reported, and the child
 * gets the tracer's variables back in its environment (env.c).
 */
#include "preload.h"

#include <stdarg.h>
#include <string.h>

extern char **environ;

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
