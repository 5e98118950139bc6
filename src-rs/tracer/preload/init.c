/*
 * The library's start: the libc functions the hooks fall back to, looked up
 * once, and the process's trace state read from its environment, in a
 * constructor that runs before the program's code (and again from the first
 * hook, for a call made by another library's constructor before it).
 */
#include "preload.h"

#include <string.h>

char trace_path[TRACE_PATH_MAX];
int supervised;
int initialized;

#define REAL(name) __typeof__(name) *real_##name
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
#undef REAL
int (*real_close_range)(unsigned, unsigned, int);
void (*real_closefrom)(int);
FILE *(*real_fopen64)(const char *, const char *);
int (*real_execveat)(int, const char *, char *const[], char *const[], int);
long (*real_syscall)(long, ...);

__attribute__((constructor(101))) void init(void) {
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
  const char *sup = getenv(TRACE_ENV_SUPERVISED);
  supervised = sup != NULL && strcmp(sup, "1") == 0;
  remember_env();
  open_trace_fd();
  sud_start();
  if (!supervised)
    record_incomplete("a process ran outside the trace supervisor, so system calls libc makes internally "
                      "and raw system calls were not seen",
                      NULL);
}
