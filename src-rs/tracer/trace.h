/*
 * What the preload library and the supervisor share: the trace file's record
 * format, the environment they are configured by, and the one address range
 * whose system calls the supervisor's seccomp filter lets through unseen.
 *
 * A trace file is a sequence of records appended with O_APPEND, one write(2)
 * per record, so records from every process of a task interleave whole and a
 * record is in the kernel the moment the write returns: a process killed with
 * SIGKILL loses no record it wrote. A record is one kind byte, then the
 * absolute path (or, for TRACE_INCOMPLETE, a sentence), then a NUL byte.
 *
 * The supervisor (src-rs/tracer-supervisor) and the trace's reader are Rust
 * and take these from runner_aware::trace_format; a test of the supervisor's
 * crate checks every TRACE_ define here against it.
 */
#ifndef RUNNER_AWARE_TRACE_H
#define RUNNER_AWARE_TRACE_H

/* Record kinds. Reads are recorded after the call (its outcome decides the
 * kind; a process killed before the record cannot have used what it read),
 * effects (writes, deletes) before the call, so an effect is never unrecorded. */
#define TRACE_READ 'r'       /* opened for reading */
#define TRACE_EXEC 'x'       /* executed */
#define TRACE_FOUND 'f'      /* stat'ed, access'ed or readlink'ed: exists */
#define TRACE_MISSING 'm'    /* stat'ed or opened: does not exist */
#define TRACE_LISTED 'l'     /* a directory opened for listing */
#define TRACE_WRITTEN 'w'    /* opened for writing, created, truncated, renamed to, linked to */
#define TRACE_DELETED 'd'    /* unlinked, removed, renamed from */
#define TRACE_INCOMPLETE '!' /* the trace may miss accesses; the text says why */
#define TRACE_BEGIN 'b'      /* the supervisor started the command; the text is its mode */
#define TRACE_END 'e'        /* the supervisor saw the task to its end; no text */

/* The trace file every process appends to. */
#define TRACE_ENV_FILE "RUNNER_AWARE_TRACE"
/* The preload library, which the supervisor puts first in LD_PRELOAD for
 * the command (and only for it: a shell or wrapper the runner starts the
 * supervisor through is not part of the task). */
#define TRACE_ENV_PRELOAD "RUNNER_AWARE_TRACE_PRELOAD"
/* Set by the supervisor for the command it starts once its seccomp filter is
 * installed: "1" sees what the preload cannot (static programs, raw system
 * calls); its absence in a preloaded process means nothing does. */
#define TRACE_ENV_SUPERVISED "RUNNER_AWARE_TRACE_SUPERVISED"

/*
 * The preload library maps a page at this fixed address and makes its own
 * system calls from code on that page; the supervisor's filter lets file
 * system calls made from this page through and sends every other one (libc
 * internals, static programs, raw `syscall` instructions) to the supervisor.
 * Chosen below 2^39 so it exists on every arm64 address-space size, and far
 * from where Linux puts executables, heaps and mmap regions.
 */
#define TRACE_TRAMPOLINE_ADDR 0x5e5e000000UL
#define TRACE_TRAMPOLINE_SIZE 4096UL

/* A preload library that cannot write its records (the trace file gone,
 * a full disk) looks this path up through libc, where the supervisor's
 * filter sees it: the supervisor then marks the trace incomplete. It can
 * never exist (/dev/null is no directory), so the call changes nothing. */
#define TRACE_LOST_PATH "/dev/null/runner-aware-trace-lost"

/* Longest path a record carries, the kind byte and NUL not included. */
#define TRACE_PATH_MAX 4096

/* openat2's resolve flags that change what a name means (<linux/openat2.h>). */
#define TRACE_RESOLVE_IN_ROOT 0x10

/*
 * The name a RESOLVE_IN_ROOT path has relative to its root directory, in
 * `out`: a leading `/` is the root and `..` never climbs above it, so
 * "/../a/./b" is "a/b" and "/" is ".". Returns its length, or 0 when it does
 * not fit. Both the preload library and the supervisor (its paths.rs, by
 * the same rule) record an openat2 of that kind as this name relative to its
 * descriptor.
 */
static inline unsigned long trace_in_root(const char *path, char *out, unsigned long cap) {
  unsigned long n = 0;
  while (*path) {
    const char *end = path;
    while (*end && *end != '/') end++;
    unsigned long len = (unsigned long)(end - path);
    if (len == 2 && path[0] == '.' && path[1] == '.') {
      while (n > 0 && out[n - 1] != '/') n--;
      if (n > 0) n--;
    } else if (len > 0 && !(len == 1 && path[0] == '.')) {
      if (n + len + 2 > cap) return 0;
      if (n > 0) out[n++] = '/';
      for (unsigned long i = 0; i < len; i++) out[n++] = path[i];
    }
    path = *end ? end + 1 : end;
  }
  if (n == 0) {
    if (cap < 2) return 0;
    out[n++] = '.';
  }
  out[n] = '\0';
  return n;
}

/*
 * Whether `path` (absolute) goes through a process's link in /proc:
 * /proc/<self|thread-self|pid>/cwd, .../root or .../fd/<n>, alone or
 * followed by `/`. Returns the length of that link's part of `path` (0 when
 * it has none) and sets `*process_end` to where its process part
 * ("/proc/self") ends. The tracer records such a path as the link's target
 * followed by the rest, not as a pseudo-file.
 */
static inline unsigned long trace_proc_link(const char *path, unsigned long *process_end) {
  static const char proc[] = "/proc/";
  unsigned long i = 0;
  for (; proc[i]; i++)
    if (path[i] != proc[i]) return 0;
  const char *p = path + i;
  if (p[0] == 's' && p[1] == 'e' && p[2] == 'l' && p[3] == 'f' && p[4] == '/') {
    p += 4;
  } else if (p[0] == 't' && p[1] == 'h' && p[2] == 'r' && p[3] == 'e' && p[4] == 'a' && p[5] == 'd' && p[6] == '-' &&
             p[7] == 's' && p[8] == 'e' && p[9] == 'l' && p[10] == 'f' && p[11] == '/') {
    p += 11;
  } else {
    const char *digits = p;
    while (*p >= '0' && *p <= '9') p++;
    if (p == digits || *p != '/') return 0;
  }
  *process_end = (unsigned long)(p - path);
  p++;
  if (p[0] == 'c' && p[1] == 'w' && p[2] == 'd') {
    p += 3;
  } else if (p[0] == 'r' && p[1] == 'o' && p[2] == 'o' && p[3] == 't') {
    p += 4;
  } else if (p[0] == 'f' && p[1] == 'd' && p[2] == '/' && p[3] >= '0' && p[3] <= '9') {
    p += 3;
    while (*p >= '0' && *p <= '9') p++;
  } else {
    return 0;
  }
  return *p == '/' || *p == '\0' ? (unsigned long)(p - path) : 0;
}

#endif
