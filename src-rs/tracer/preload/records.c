/*
 * The record writer: a path made absolute (and a /proc link followed to its
 * target), pseudo-files and the trace file itself left out, each (kind,
 * path) written once per process, one write(2) per record, to a trace
 * descriptor that is reopened when the process took it away.
 */
#include "preload.h"

#include <string.h>

/* The trace file's descriptor is moved this high, out of the way of the
 * numbers a program expects open(2) to give it. */
#define TRACE_FD_MIN 900

#define TOO_LONG ((size_t)-1)

int trace_fd = -1;

/* ---- dedupe ------------------------------------------------------------ */

/* Per process: each (kind, path) is written once. 2^16 slots of 64-bit
 * hashes, lock-free; when a probe finds no room the record is written again,
 * which costs a write, never a record. A forked child inherits the table,
 * which is right: the trace is the whole task's. */
#define DEDUPE_SLOTS 65536
static uint64_t dedupe[DEDUPE_SLOTS];

static uint64_t hash_record(const char *rec, size_t len) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)rec[i]) * 0x100000001b3ULL;
  return h ? h : 1;
}

/* True when the record was seen before in this process. */
static int seen_before(const char *rec, size_t len) {
  uint64_t h = hash_record(rec, len);
  for (size_t probe = 0; probe < 64; probe++) {
    uint64_t *slot = &dedupe[(h + probe) & (DEDUPE_SLOTS - 1)];
    uint64_t cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (cur == h) return 1;
    if (cur == 0) {
      uint64_t expected = 0;
      if (__atomic_compare_exchange_n(slot, &expected, h, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return 0;
      if (expected == h) return 1;
    }
  }
  return 0;
}

/* ---- writing ------------------------------------------------------------ */

static int starts_with_dir(const char *path, const char *dir) {
  size_t n = str_len(dir);
  return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Pseudo-filesystems describe processes and devices, not task files. */
static int is_pseudo(const char *abs) {
  return starts_with_dir(abs, "/proc") || starts_with_dir(abs, "/sys") || starts_with_dir(abs, "/dev");
}

/* Reopens the trace file when the process lost its descriptor. */
void open_trace_fd(void) {
  long fd = sys(SYS_openat, AT_FDCWD, trace_path, O_WRONLY | O_APPEND | O_CLOEXEC, 0);
  if (fd < 0) return;
  long high = sys(SYS_fcntl, fd, F_DUPFD_CLOEXEC, TRACE_FD_MIN, 0);
  if (high >= 0) {
    sys(SYS_close, fd, 0, 0, 0);
    fd = high;
  }
  trace_fd = (int)fd;
}

/* Says once, through a call the supervisor sees, that records were lost. */
static void records_lost(void) {
  static int said;
  if (said || real_syscall == NULL) return;
  said = 1;
  real_syscall(SYS_faccessat, AT_FDCWD, TRACE_LOST_PATH, F_OK, 0);
}

static void write_record(const char *rec, size_t len) {
  /* No descriptor (or one taken away) is reopened once below. */
  long r = trace_fd < 0 ? -EBADF : sys(SYS_write, trace_fd, rec, len, 0);
  if (r == -EBADF) {
    trace_fd = -1;
    open_trace_fd();
    if (trace_fd >= 0) r = sys(SYS_write, trace_fd, rec, len, 0);
  }
  if (r != (long)len) records_lost();
}

/* ---- paths -------------------------------------------------------------- */

/* "/proc/self/fd/<fd>" into `link` (32 bytes), without stdio. */
void fd_link(char *link, int fd) {
  static const char prefix[] = "/proc/self/fd/";
  int i = (int)sizeof prefix - 1, digits[12], k = 0;
  memcpy(link, prefix, sizeof prefix - 1);
  do digits[k++] = fd % 10; while ((fd /= 10) > 0);
  while (k > 0) link[i++] = (char)('0' + digits[--k]);
  link[i] = '\0';
}

/* The absolute form of `path` relative to `dirfd`, in `out`; 0 when it has
 * none (an empty path, a descriptor that names no directory: the call fails
 * without touching a file), TOO_LONG when it does not fit a record. */
static size_t absolute(int dirfd, const char *path, char *out, size_t cap) {
  if (path == NULL || path[0] == '\0') return 0;
  size_t n = 0;
  if (path[0] != '/') {
    long r;
    if (dirfd == AT_FDCWD) {
      r = sys(SYS_getcwd, out, cap, 0, 0);
      if (r <= 0) return 0;
      n = str_len(out);
    } else {
      char link[32];
      if (dirfd < 0) return 0;
      fd_link(link, dirfd);
      r = sys(SYS_readlinkat, AT_FDCWD, link, out, cap - 1);
      if (r <= 0 || out[0] != '/') return 0;
      n = (size_t)r;
    }
    if (n + 1 >= cap) return TOO_LONG;
    if (n > 1) out[n++] = '/';
  }
  size_t len = str_len(path);
  if (n + len >= cap) return TOO_LONG;
  memcpy(out + n, path, len + 1);
  return n + len;
}

/*
 * `path` (absolute, `len` bytes, in a buffer of `cap`) rewritten in place
 * when it goes through a process's cwd, root or descriptor link in /proc:
 * the link's target, then the rest. Returns the new length, 0 when it names
 * no file (a pipe's descriptor, a process gone) or is no such path,
 * TOO_LONG when it does not fit.
 */
static size_t through_proc_link(char *path, size_t len, size_t cap) {
  unsigned long process_end;
  size_t end = trace_proc_link(path, &process_end);
  char link[64], target[TRACE_PATH_MAX];
  if (end == 0 || end >= sizeof link) return 0;
  memcpy(link, path, end);
  link[end] = '\0';
  long r = sys(SYS_readlinkat, AT_FDCWD, link, target, sizeof target - 1);
  /* A target that fills the buffer may have been cut short. */
  if (r >= (long)sizeof target - 1) return TOO_LONG;
  if (r <= 0 || target[0] != '/') return 0;
  /* The root is "/": the rest is already absolute. */
  size_t t = r == 1 ? 0 : (size_t)r, rest = len - end;
  if (t + rest + 2 > cap) return TOO_LONG;
  memmove(path + t, path + end, rest + 1);
  memcpy(path, target, t);
  if (t + rest == 0) {
    path[0] = '/';
    path[1] = '\0';
    return 1;
  }
  return t + rest;
}

/* ---- records ------------------------------------------------------------ */

void record_at(char kind, int dirfd, const char *path) {
  char rec[TRACE_PATH_MAX + 2];
  if (trace_path[0] == '\0') return;
  size_t n = absolute(dirfd, path, rec + 1, sizeof rec - 1);
  /* Off the common path: only a name in /proc is looked at again. */
  if (n != TOO_LONG && n != 0 && is_pseudo(rec + 1)) {
    n = through_proc_link(rec + 1, n, sizeof rec - 1);
    if (n != TOO_LONG && n != 0 && is_pseudo(rec + 1)) return;
  }
  if (n == TOO_LONG) {
    record_incomplete(WHY_TOO_LONG, NULL);
    return;
  }
  if (n == 0) return;
  if (starts_with_dir(rec + 1, trace_path)) return;
  rec[0] = kind;
  if (seen_before(rec, n + 1)) return;
  write_record(rec, n + 2);
}

void record_incomplete(const char *why, const char *path) {
  char rec[TRACE_PATH_MAX + 256];
  size_t n = 0, w = str_len(why), p = path ? str_len(path) : 0;
  if (w + p + 3 > sizeof rec) p = 0;
  rec[n++] = TRACE_INCOMPLETE;
  memcpy(rec + n, why, w);
  n += w;
  if (p) {
    memcpy(rec + n, path, p);
    n += p;
  }
  rec[n++] = '\0';
  write_record(rec, n);
}

/* What an open's flags do to a path, and what its outcome says. */
void record_open_before(int dirfd, const char *path, int flags) {
  int acc = flags & O_ACCMODE;
  /* O_TRUNC empties the file before anything can be read from it (Dart's
   * way of writing sass-embedded's CSS): a write, not an input. */
  if (acc == O_RDWR && !(flags & O_TRUNC)) record_at(TRACE_READ, dirfd, path);
  if (acc != O_RDONLY || (flags & (O_CREAT | O_TRUNC))) record_at(TRACE_WRITTEN, dirfd, path);
}

/* Whether a call's raw result says its path does not exist. */
static int is_missing(long result) { return result == -ENOENT || result == -ENOTDIR; }

void record_open_after(int dirfd, const char *path, int flags, long result) {
  if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC))) return;
  if (result >= 0) {
    record_at((flags & O_DIRECTORY) ? TRACE_LISTED : TRACE_READ, dirfd, path);
  } else {
    record_lookup(dirfd, path, result);
  }
}

void record_lookup(int dirfd, const char *path, long result) {
  record_at(is_missing(result) ? TRACE_MISSING : TRACE_FOUND, dirfd, path);
}
