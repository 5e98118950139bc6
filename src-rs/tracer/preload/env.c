/*
 * The tracer's variables in a child's environment: remembered at start as
 * "NAME=value" strings, and put back into the environment an exec or spawn
 * passes on, so a child whose program dropped them is still traced.
 */
#include "preload.h"

#include <string.h>

/* "NAME=value" strings an exec'd child must get back when its env lost them. */
static char env_preload[TRACE_PATH_MAX + 16];
static char env_trace[TRACE_PATH_MAX + 32];
static char env_supervised[64];
static const char env_no_io_uring[] = "UV_USE_IO_URING=0";
static char preload_lib[TRACE_PATH_MAX];

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

/* Called at start, once trace_path and supervised are known. */
void remember_env(void) {
  copy_env(env_trace, sizeof env_trace, TRACE_ENV_FILE, trace_path);
  if (supervised) copy_env(env_supervised, sizeof env_supervised, TRACE_ENV_SUPERVISED, "1");
  find_self();
  if (preload_lib[0]) copy_env(env_preload, sizeof env_preload, "LD_PRELOAD", preload_lib);
}

static int env_name_is(const char *entry, const char *name) {
  size_t n = str_len(name);
  return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* `envp` with the tracer's variables restored into `out` (which holds
 * count(envp) + 5 entries); LD_PRELOAD keeps the child's other libraries. */
char *const *traced_env(char *const *envp, char **out, char *preload_buf, size_t preload_cap) {
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

size_t env_count(char *const *envp) {
  size_t n = 0;
  while (envp && envp[n]) n++;
  return n;
}
