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

#define DEFINE_REAL(name, type) __typeof__(type) real_##name;
REAL_FUNCTIONS(DEFINE_REAL)
#undef DEFINE_REAL

__attribute__((constructor(101))) void init(void) {
  if (initialized) return;
#define LOOKUP(name, type) real_##name = (__typeof__(type))dlsym(RTLD_NEXT, #name);
  REAL_FUNCTIONS(LOOKUP)
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
