/*
 * runner-aware-trace: starts a task's command under a seccomp filter whose
 * file system calls it is notified of (SECCOMP_RET_USER_NOTIF, Linux 5.5+, no
 * root), records each into the trace file and lets it continue
 * (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
 *
 *   runner-aware-trace [--mode preload|seccomp] -- <command> [args...]
 *
 * RUNNER_AWARE_TRACE names the trace file, RUNNER_AWARE_TRACE_PRELOAD the
 * preload library the command gets in LD_PRELOAD. In `preload` mode (the default)
 * calls made from the preload library's trampoline page pass unseen, since
 * the library recorded them already; the supervisor sees what the library
 * cannot: libc internals, static programs, raw `syscall` instructions. In
 * `seccomp` mode it sees every file system call of the task.
 *
 * The supervisor is the parent of the command, so it may read its memory
 * (process_vm_readv) under Yama's default ptrace scope. It exits like the
 * command, once every process of the task has exited or, when some outlive
 * the command, after a grace period (RUNNER_AWARE_TRACE_GRACE_MS, default
 * 2000), recording that the trace misses what they do afterwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "trace.h"

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif

#ifndef SECCOMP_FILTER_FLAG_SPEC_ALLOW
#define SECCOMP_FILTER_FLAG_SPEC_ALLOW (1UL << 2)
#endif
/* Linux 6.6: wake the supervisor on the notifying task's CPU. */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

#if defined(__x86_64__)
#define TRACE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TRACE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "the tracer supports x86_64 and aarch64"
#endif

static int trace_fd = -1;
static const char *trace_file;

static void die(const char *what) {
  fprintf(stderr, "runner-aware-trace: %s: %s\n", what, strerror(errno));
  exit(127);
}

/*
 * The supervisor's records of one notification reach the file before it lets
 * the call continue: the preload library in the task's other processes
 * writes its records at once, and the order of records in the file is the
 * order the accesses happened across every process (a static program reading
 * a file that a later Node step rewrites is a modified input, and the
 * reverse is not). Records are deduplicated first, so a file is written to
 * once per new path, not per call. If the supervisor itself is killed, the
 * run ends with that signal, which no runner caches.
 */
static char out_buf[1 << 16];
static size_t out_len;
/* A write that failed: the supervisor then exits with TRACE_WRITE_FAILED, so
 * the run fails rather than look whole. */
static int write_failed;
#define TRACE_WRITE_FAILED 125

static void flush_records(void) {
  size_t done = 0;
  while (done < out_len) {
    ssize_t w = write(trace_fd, out_buf + done, out_len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      write_failed = 1;
      break;
    }
    done += (size_t)w;
  }
  out_len = 0;
}

static void write_record(char kind, const char *text) {
  size_t n = strlen(text);
  if (n > TRACE_PATH_MAX) return;
  if (out_len + n + 2 > sizeof out_buf) flush_records();
  out_buf[out_len] = kind;
  memcpy(out_buf + out_len + 1, text, n + 1);
  out_len += n + 2;
}

/* ---- the filter ---------------------------------------------------------- */

/* Every system call that names a file by path. Descriptor-based calls
 * (read, write, getdents64, fstat) need no record: the path was recorded when
 * the descriptor was opened. */
static const int traced_syscalls[] = {
#ifdef SYS_open
    SYS_open,
#endif
#ifdef SYS_creat
    SYS_creat,
#endif
#ifdef SYS_stat
    SYS_stat,
#endif
#ifdef SYS_lstat
    SYS_lstat,
#endif
#ifdef SYS_access
    SYS_access,
#endif
#ifdef SYS_readlink
    SYS_readlink,
#endif
#ifdef SYS_mkdir
    SYS_mkdir,
#endif
#ifdef SYS_mknod
    SYS_mknod,
#endif
#ifdef SYS_rmdir
    SYS_rmdir,
#endif
#ifdef SYS_unlink
    SYS_unlink,
#endif
#ifdef SYS_rename
    SYS_rename,
#endif
#ifdef SYS_renameat
    SYS_renameat,
#endif
#ifdef SYS_link
    SYS_link,
#endif
#ifdef SYS_symlink
    SYS_symlink,
#endif
#ifdef SYS_newfstatat
    SYS_newfstatat,
#endif
    SYS_openat,      SYS_openat2,   SYS_statx,   SYS_faccessat, SYS_faccessat2, SYS_readlinkat,
    SYS_execve,      SYS_execveat,  SYS_mkdirat, SYS_unlinkat,  SYS_renameat2,  SYS_truncate,
    SYS_linkat,      SYS_symlinkat, SYS_mknodat,
    /* No path to record: the trace says it is incomplete. */
    SYS_chroot,      SYS_open_by_handle_at, SYS_name_to_handle_at,
};
#define N_TRACED (sizeof traced_syscalls / sizeof traced_syscalls[0])

#if defined(__x86_64__)
/*
 * A 64-bit kernel runs i386 programs, and `int $0x80` from a 64-bit one,
 * under other numbers (the filter's arch is then AUDIT_ARCH_I386). Each
 * file system call of that ABI, with the native call it is handled as: the
 * same arguments in the same places, pointers and flags alike.
 */
static const struct {
  int i386, native;
} i386_syscalls[] = {
    {5, SYS_open},        {8, SYS_creat},          {9, SYS_link},          {10, SYS_unlink},
    {11, SYS_execve},     {14, SYS_mknod},         {18, SYS_stat},         {33, SYS_access},
    {38, SYS_rename},     {39, SYS_mkdir},         {40, SYS_rmdir},        {61, SYS_chroot},
    {83, SYS_symlink},    {84, SYS_lstat},         {85, SYS_readlink},     {92, SYS_truncate},
    {106, SYS_stat},      {107, SYS_lstat},        {193, SYS_truncate},    {195, SYS_stat},
    {196, SYS_lstat},     {295, SYS_openat},       {296, SYS_mkdirat},     {297, SYS_mknodat},
    {300, SYS_newfstatat}, {301, SYS_unlinkat},    {302, SYS_renameat},    {303, SYS_linkat},
    {304, SYS_symlinkat}, {305, SYS_readlinkat},   {307, SYS_faccessat},   {341, SYS_name_to_handle_at},
    {342, SYS_open_by_handle_at}, {353, SYS_renameat2}, {358, SYS_execveat}, {383, SYS_statx},
    {437, SYS_openat2},   {439, SYS_faccessat2},
};
#define N_I386 (sizeof i386_syscalls / sizeof i386_syscalls[0])
#define FOREIGN_ARCH AUDIT_ARCH_I386
#else
#define N_I386 0
#endif

#define LD_ABS(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (uint32_t)offsetof(struct seccomp_data, field))
#define IP_LO ((uint32_t)offsetof(struct seccomp_data, instruction_pointer))
#define IP_HI (IP_LO + 4)

/* Builds the filter into `prog` (room for FILTER_MAX instructions). */
#define FILTER_MAX (N_TRACED + N_I386 + 24)
static size_t build_filter(struct sock_filter *prog, int preload_mode) {
  size_t n = 0;
  prog[n++] = (struct sock_filter)LD_ABS(arch);
  /* Set below: another ABI's calls jump to their part, at the end. */
  size_t to_foreign = n++;
  prog[n++] = (struct sock_filter)LD_ABS(nr);
#if defined(__x86_64__)
  /* x32 system calls would reach the same kernel code under other numbers. */
  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
#endif
  /* io_uring would do file I/O where no filter sees it: libuv and others
   * fall back to plain system calls when it is refused. */
  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1);
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
  /* One comparison per traced call, each jumping to the check below. */
  size_t check = n + N_TRACED + 1;
  for (size_t i = 0; i < N_TRACED; i++) {
    prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)traced_syscalls[i],
                                           (uint8_t)(check - n - 1), 0);
    n++;
  }
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  if (preload_mode) {
    /* Calls from the trampoline page were recorded by the preload library. */
    uint64_t lo = TRACE_TRAMPOLINE_ADDR, hi = TRACE_TRAMPOLINE_ADDR + TRACE_TRAMPOLINE_SIZE;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, IP_HI);
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(lo >> 32), 0, 4);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, IP_LO);
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)lo, 0, 2);
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)hi, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  }
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
  /* Another ABI: on x86_64, i386's file system calls are notified and its
   * io_uring refused; any other ABI's calls are all notified, and the
   * supervisor says it cannot read them. */
  prog[to_foreign] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TRACE_AUDIT_ARCH, 0, (uint8_t)(n - to_foreign - 1));
#if defined(__x86_64__)
  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FOREIGN_ARCH, 0, (uint8_t)(N_I386 + 4));
  prog[n++] = (struct sock_filter)LD_ABS(nr);
  prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1);
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
  for (size_t i = 0; i < N_I386; i++) {
    prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)i386_syscalls[i].i386, (uint8_t)(N_I386 - i), 0);
    n++;
  }
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
#endif
  prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
  return n;
}

/* ---- reading the tracee ------------------------------------------------ */

/* Up to `len` bytes at `addr` in `pid`: with process_vm_readv, or through
 * /proc/<pid>/mem where a sandbox denies that call (Codex's does). Returns
 * the count read, -1 when there is nothing to read (a bad pointer: the call
 * fails without touching a file; the caller is gone: the call never runs),
 * or -2 when the memory exists but cannot be read. */
static long read_memory(pid_t pid, uint64_t addr, void *out, size_t len) {
  static int use_mem_file;
  ssize_t r = -1;
  if (!use_mem_file) {
    struct iovec local = {out, len}, remote = {(void *)(uintptr_t)addr, len};
    r = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (r < 0 && (errno == EPERM || errno == ENOSYS)) use_mem_file = 1;
  }
  if (use_mem_file) {
    char file[64];
    snprintf(file, sizeof file, "/proc/%d/mem", pid);
    int mem = open(file, O_RDONLY | O_CLOEXEC);
    if (mem < 0) return errno == ENOENT || errno == ESRCH ? -1 : -2;
    r = pread(mem, out, len, (off_t)addr);
    int saved = errno;
    close(mem);
    errno = saved;
  }
  if (r > 0) return r;
  return r == 0 || errno == EFAULT || errno == EIO || errno == ESRCH || errno == ENOENT ? -1 : -2;
}

/* The NUL-terminated string at `addr` in `pid`, page by page (a string may
 * end just before an unmapped page). Returns its length, or read_memory's
 * -1 or -2. */
static long read_string(pid_t pid, uint64_t addr, char *out, size_t cap) {
  size_t got = 0;
  while (got + 1 < cap) {
    size_t page_left = 4096 - ((addr + got) & 4095);
    size_t want = page_left < cap - 1 - got ? page_left : cap - 1 - got;
    long r = read_memory(pid, addr + got, out + got, want);
    if (r < 0) return r;
    void *nul = memchr(out + got, '\0', (size_t)r);
    if (nul) return (char *)nul - out;
    got += (size_t)r;
  }
  return -2;
}

/* The directory `dirfd` names in `pid` (its cwd for AT_FDCWD). */
static long dir_of(pid_t pid, int dirfd, char *out, size_t cap) {
  char link[64];
  if (dirfd == AT_FDCWD)
    snprintf(link, sizeof link, "/proc/%d/cwd", pid);
  else
    snprintf(link, sizeof link, "/proc/%d/fd/%d", pid, dirfd);
  ssize_t n = readlink(link, out, cap - 1);
  if (n <= 0 || out[0] != '/') return -1;
  out[n] = '\0';
  return n;
}

static void write_record(char kind, const char *text);

/* Says once per process that a path could not be read: the trace is incomplete. */
static void unreadable(pid_t pid, const char *what) {
  char why[256];
  snprintf(why, sizeof why, "the supervisor could not read %s of process %d (%s)", what, pid, strerror(errno));
  write_record(TRACE_INCOMPLETE, why);
}

static const char too_long[] = "a path longer than the tracer records was accessed";

/*
 * `out` (absolute) rewritten when it goes through a cwd, root or descriptor
 * link of a process in /proc: the link's target, then the rest ("self" is
 * the caller `pid`). Left as it is (a pseudo-file) when the link names no
 * file: a pipe's descriptor, a process gone.
 */
static void through_proc_link(pid_t pid, char *out, size_t cap) {
  unsigned long process_end;
  size_t end = trace_proc_link(out, &process_end);
  if (end == 0) return;
  char link[128], target[TRACE_PATH_MAX];
  const char *process = out + strlen("/proc/");
  int len = (process[0] >= '0' && process[0] <= '9')
                ? snprintf(link, sizeof link, "%.*s", (int)end, out)
                : snprintf(link, sizeof link, "/proc/%d%.*s", pid, (int)(end - process_end), out + process_end);
  if (len < 0 || (size_t)len >= sizeof link) return;
  ssize_t t = readlink(link, target, sizeof target - 1);
  if (t <= 0 || target[0] != '/') return;
  /* The root is "/": the rest is already absolute. */
  if (t == 1) t = 0;
  size_t rest = strlen(out + end);
  if ((size_t)t + rest + 2 > cap) {
    write_record(TRACE_INCOMPLETE, too_long);
    return;
  }
  memmove(out + t, out + end, rest + 1);
  memcpy(out, target, (size_t)t);
  if (t == 0 && rest == 0) strcpy(out, "/");
}

/* The absolute path a (dirfd, path pointer) pair of `pid` names, or 0 when
 * it names none (a bad pointer, an empty path, a process gone). `in_root`:
 * the path is resolved with `dirfd` as its root (openat2's RESOLVE_IN_ROOT). */
static int resolve_name(pid_t pid, int dirfd, uint64_t addr, int in_root, char *out, size_t cap) {
  char rel[TRACE_PATH_MAX];
  long len = read_string(pid, addr, rel, sizeof rel);
  if (len == -2) unreadable(pid, "a path argument");
  if (len <= 0) return 0;
  if (in_root) {
    char beneath[TRACE_PATH_MAX];
    len = (long)trace_in_root(rel, beneath, sizeof beneath);
    if (len == 0) {
      write_record(TRACE_INCOMPLETE, too_long);
      return 0;
    }
    memcpy(rel, beneath, (size_t)len + 1);
  }
  long n = 0;
  if (rel[0] != '/') {
    n = dir_of(pid, dirfd, out, cap);
    if (n < 0) {
      /* A process that is gone never makes the call; any other failure hides a path. */
      if (errno != ENOENT && errno != ESRCH) unreadable(pid, "the directory of a relative path");
      return 0;
    }
    if ((size_t)(n + 1 + len + 1) > cap) {
      write_record(TRACE_INCOMPLETE, too_long);
      return 0;
    }
    if (n > 1) out[n++] = '/';
  }
  memcpy(out + n, rel, (size_t)len + 1);
  if (strncmp(out, "/proc/", 6) == 0) through_proc_link(pid, out, cap);
  return 1;
}
#define resolve(pid, dirfd, addr, out, cap) resolve_name(pid, dirfd, addr, 0, out, cap)

static int starts_with_dir(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

/* Each (kind, path) is written once: the same 64-bit FNV-1a hash table as
 * the preload library's, here single-threaded. */
#define DEDUPE_SLOTS 65536
static uint64_t dedupe[DEDUPE_SLOTS];

/* Whether (kind, path) was recorded; with `insert`, records that it is now. */
static int seen(char kind, const char *path, int insert) {
  uint64_t h = (0xcbf29ce484222325ULL ^ (unsigned char)kind) * 0x100000001b3ULL;
  for (const char *p = path; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
  if (h == 0) h = 1;
  for (size_t probe = 0; probe < 64; probe++) {
    uint64_t *slot = &dedupe[(h + probe) & (DEDUPE_SLOTS - 1)];
    if (*slot == h) return 1;
    if (*slot == 0) {
      if (insert) *slot = h;
      return 0;
    }
  }
  return 0;
}

/* Pseudo-filesystems and the trace file itself: never in the trace. */
static int ignored(const char *path) {
  return starts_with_dir(path, "/proc") || starts_with_dir(path, "/sys") || starts_with_dir(path, "/dev") || strcmp(path, trace_file) == 0;
}

static void record(char kind, const char *path) {
  if (ignored(path) || seen(kind, path, 1)) return;
  write_record(kind, path);
}

/* A path already recorded as looked up needs no second stat: the first
 * look-up is the one the trace keeps. */
static int looked_up(const char *path) { return seen(TRACE_FOUND, path, 0) || seen(TRACE_MISSING, path, 0); }

/* What the path is now, before the call runs: the kind a look-up gets. An
 * ignored path is not stat'ed at all. */
static void record_lookup(const char *path, int nofollow) {
  if (ignored(path) || looked_up(path)) return;
  struct stat st;
  int r = nofollow ? lstat(path, &st) : stat(path, &st);
  record(r == 0 ? TRACE_FOUND : (errno == ENOENT || errno == ENOTDIR) ? TRACE_MISSING : TRACE_FOUND, path);
}

/* A PATH search tries names that do not exist: those are look-ups. */
static void record_exec(const char *path) {
  struct stat st;
  if (ignored(path)) return;
  if (stat(path, &st) == 0)
    record(TRACE_EXEC, path);
  else
    record(errno == ENOENT || errno == ENOTDIR ? TRACE_MISSING : TRACE_FOUND, path);
}

static void record_open(const char *path, uint64_t flags) {
  int acc = (int)(flags & O_ACCMODE);
  if (acc != O_RDONLY || (flags & (O_CREAT | O_TRUNC))) {
    /* O_TRUNC empties the file before anything can be read from it. */
    if (acc == O_RDWR && !(flags & O_TRUNC)) record(TRACE_READ, path);
    record(TRACE_WRITTEN, path);
    return;
  }
  if (flags & O_PATH) {
    record_lookup(path, (flags & O_NOFOLLOW) != 0);
    return;
  }
  struct stat st;
  if (stat(path, &st) != 0) {
    record(errno == ENOENT || errno == ENOTDIR ? TRACE_MISSING : TRACE_FOUND, path);
    return;
  }
  record(S_ISDIR(st.st_mode) ? TRACE_LISTED : TRACE_READ, path);
}

/* RUNNER_AWARE_TRACE_STATS=1: notifications per system call and the
 * supervisor's own CPU time, on stderr at exit. */
static unsigned long notified[512];

/* The native number of a call notified under another ABI's, or -1 (once
 * per ABI, the trace then says it is incomplete). */
static int native_nr(const struct seccomp_data *data) {
  if (data->arch == TRACE_AUDIT_ARCH) return data->nr;
#if defined(__x86_64__)
  if (data->arch == FOREIGN_ARCH) {
    for (size_t i = 0; i < N_I386; i++)
      if (i386_syscalls[i].i386 == data->nr) return i386_syscalls[i].native;
    return -1;
  }
#endif
  char why[160];
  snprintf(why, sizeof why, "a program made system calls of another architecture (audit arch 0x%x), which the tracer cannot read",
           data->arch);
  record(TRACE_INCOMPLETE, why);
  return -1;
}

static void handle(const struct seccomp_notif *req) {
  pid_t pid = (pid_t)req->pid;
  if (req->data.nr < 512) notified[req->data.nr]++;
  const __u64 *a = req->data.args;
  char path[TRACE_PATH_MAX + 1], other[TRACE_PATH_MAX + 1];
#define PATH_AT(dirfd, arg) resolve(pid, (int)(dirfd), (arg), path, sizeof path)
#define OTHER_AT(dirfd, arg) resolve(pid, (int)(dirfd), (arg), other, sizeof other)
  switch (native_nr(&req->data)) {
#ifdef SYS_open
    case SYS_open:
      if (PATH_AT(AT_FDCWD, a[0])) record_open(path, a[1]);
      break;
#endif
#ifdef SYS_creat
    case SYS_creat:
      if (PATH_AT(AT_FDCWD, a[0])) record(TRACE_WRITTEN, path);
      break;
#endif
    case SYS_openat:
      if (PATH_AT(a[0], a[1])) record_open(path, a[2]);
      break;
    case SYS_openat2: {
      uint64_t how[3] = {O_RDWR, 0, 0}; /* flags, mode, resolve */
      long got = a[3] >= sizeof how ? read_memory(pid, a[2], how, sizeof how) : -1;
      if (got == -2) unreadable(pid, "the flags of an openat2 call");
      /* Flags not known: taken as a read and a write, the stronger record. */
      if (got != (long)sizeof how) {
        how[0] = O_RDWR;
        how[2] = 0;
      }
      if (resolve_name(pid, (int)a[0], a[1], (how[2] & TRACE_RESOLVE_IN_ROOT) != 0, path, sizeof path)) record_open(path, how[0]);
      break;
    }
#ifdef SYS_stat
    case SYS_stat:
#endif
#ifdef SYS_access
    case SYS_access:
#endif
#ifdef SYS_readlink
    case SYS_readlink:
#endif
#if defined(SYS_stat) || defined(SYS_access) || defined(SYS_readlink)
      if (PATH_AT(AT_FDCWD, a[0])) record_lookup(path, req->data.nr != SYS_stat);
      break;
#endif
#ifdef SYS_lstat
    case SYS_lstat:
      if (PATH_AT(AT_FDCWD, a[0])) record_lookup(path, 1);
      break;
#endif
#ifdef SYS_newfstatat
    case SYS_newfstatat:
      if (PATH_AT(a[0], a[1])) record_lookup(path, (a[3] & AT_SYMLINK_NOFOLLOW) != 0);
      break;
#endif
    case SYS_statx:
      if (PATH_AT(a[0], a[1])) record_lookup(path, (a[2] & AT_SYMLINK_NOFOLLOW) != 0);
      break;
    case SYS_faccessat:
    case SYS_faccessat2:
    case SYS_readlinkat:
      if (!PATH_AT(a[0], a[1])) break;
      if (strcmp(path, TRACE_LOST_PATH) == 0) {
        char why[128];
        snprintf(why, sizeof why, "process %d could not write its trace records", pid);
        write_record(TRACE_INCOMPLETE, why);
        break;
      }
      record_lookup(path, req->data.nr == SYS_readlinkat);
      break;
    case SYS_execve:
      if (PATH_AT(AT_FDCWD, a[0])) record_exec(path);
      break;
    case SYS_execveat:
      if (PATH_AT(a[0], a[1])) record_exec(path);
      break;
#ifdef SYS_mkdir
    case SYS_mkdir:
      if (PATH_AT(AT_FDCWD, a[0])) record(TRACE_WRITTEN, path);
      break;
#endif
    case SYS_mkdirat:
    case SYS_mknodat:
      if (PATH_AT(a[0], a[1])) record(TRACE_WRITTEN, path);
      break;
#ifdef SYS_mknod
    case SYS_mknod:
      if (PATH_AT(AT_FDCWD, a[0])) record(TRACE_WRITTEN, path);
      break;
#endif
    case SYS_name_to_handle_at:
      if (PATH_AT(a[0], a[1])) record_lookup(path, (a[4] & AT_SYMLINK_FOLLOW) == 0);
      break;
    case SYS_open_by_handle_at:
      record(TRACE_INCOMPLETE, "a program opened a file by handle (open_by_handle_at), which names no path");
      break;
    case SYS_chroot:
      record(TRACE_INCOMPLETE, "a program changed its root directory (chroot), so the paths it names are not the ones the trace records");
      break;
#ifdef SYS_rmdir
    case SYS_rmdir:
#endif
#ifdef SYS_unlink
    case SYS_unlink:
#endif
#if defined(SYS_rmdir) || defined(SYS_unlink)
      if (PATH_AT(AT_FDCWD, a[0])) record(TRACE_DELETED, path);
      break;
#endif
    case SYS_unlinkat:
      if (PATH_AT(a[0], a[1])) record(TRACE_DELETED, path);
      break;
#ifdef SYS_rename
    case SYS_rename:
      if (PATH_AT(AT_FDCWD, a[0])) record(TRACE_DELETED, path);
      if (OTHER_AT(AT_FDCWD, a[1])) record(TRACE_WRITTEN, other);
      break;
#endif
#ifdef SYS_renameat
    case SYS_renameat:
#endif
    case SYS_renameat2:
      if (PATH_AT(a[0], a[1])) record(TRACE_DELETED, path);
      if (OTHER_AT(a[2], a[3])) record(TRACE_WRITTEN, other);
      break;
    case SYS_truncate:
      if (PATH_AT(AT_FDCWD, a[0])) record(TRACE_WRITTEN, path);
      break;
#ifdef SYS_link
    case SYS_link:
      if (PATH_AT(AT_FDCWD, a[0])) record_lookup(path, 1);
      if (OTHER_AT(AT_FDCWD, a[1])) record(TRACE_WRITTEN, other);
      break;
#endif
    case SYS_linkat:
      if (PATH_AT(a[0], a[1])) record_lookup(path, 1);
      if (OTHER_AT(a[2], a[3])) record(TRACE_WRITTEN, other);
      break;
#ifdef SYS_symlink
    case SYS_symlink:
      if (OTHER_AT(AT_FDCWD, a[1])) record(TRACE_WRITTEN, other);
      break;
#endif
    case SYS_symlinkat:
      if (OTHER_AT(a[1], a[2])) record(TRACE_WRITTEN, other);
      break;
    default:
      break;
  }
}

/* ---- main ---------------------------------------------------------------- */

static int seccomp_call(unsigned op, unsigned flags, void *arg) { return (int)syscall(SYS_seccomp, op, flags, arg); }

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int main(int argc, char **argv) {
  int preload_mode = 1, i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
      i++;
      if (strcmp(argv[i], "seccomp") == 0)
        preload_mode = 0;
      else if (strcmp(argv[i], "preload") != 0)
        goto usage;
    } else {
      goto usage;
    }
  }
  if (i >= argc) goto usage;
  char **command = argv + i;
  trace_file = getenv(TRACE_ENV_FILE);
  if (trace_file == NULL || trace_file[0] != '/') {
    fprintf(stderr, "runner-aware-trace: %s must name the trace file (an absolute path)\n", TRACE_ENV_FILE);
    return 127;
  }
  trace_fd = open(trace_file, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (trace_fd < 0) die("cannot open the trace file");
  write_record(TRACE_BEGIN, preload_mode ? "preload" : "seccomp");
  flush_records();

  /* Signals are read from a signalfd: children exiting, and the ones the
   * runner sends to stop the task, which go on to the command. */
  sigset_t mask, old;
  sigemptyset(&mask);
  int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++) sigaddset(&mask, forwarded[k]);
  sigaddset(&mask, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &mask, &old) != 0) die("sigprocmask");
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("signalfd");
  /* Orphaned processes of the task become ours, so we know when all are gone. */
  prctl(PR_SET_CHILD_SUBREAPER, 1);

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) die("pipe");
  setenv(TRACE_ENV_SUPERVISED, "1", 1);
  const char *lib = getenv(TRACE_ENV_PRELOAD);
  if (preload_mode && lib && lib[0] == '/') {
    const char *theirs = getenv("LD_PRELOAD");
    if (theirs && theirs[0] && strstr(theirs, lib) == NULL) {
      size_t n = strlen(lib) + strlen(theirs) + 2;
      char *both = malloc(n);
      if (both == NULL) die("malloc");
      snprintf(both, n, "%s:%s", lib, theirs);
      setenv("LD_PRELOAD", both, 1);
    } else if (!theirs || !theirs[0]) {
      setenv("LD_PRELOAD", lib, 1);
    }
  }
  setenv("UV_USE_IO_URING", "0", 1);

  /* The child shares our descriptor table until it has installed the
   * filter, so the listener it creates is ours too; then it takes a copy of
   * the table of its own and closes the listener there. */
  /* Where the descriptor table cannot be shared (qemu-user refuses the
   * flag), a plain fork runs the command with no filter, and the trace says
   * it is incomplete. */
  int shared = 1;
  pid_t child = (pid_t)syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
  int clone_error = errno;
  if (child < 0) {
    shared = 0;
    child = fork();
  }
  if (child < 0) die("fork");
  if (child == 0) {
    struct sock_filter filter[FILTER_MAX];
    struct sock_fprog prog = {(unsigned short)build_filter(filter, preload_mode), filter};
    int listener = -1;
    int result = -clone_error;
    if (shared) {
      /* SPEC_ALLOW: a filter installed without it turns on the Speculative
       * Store Bypass mitigation where the kernel applies it to seccomp'd
       * processes, which slows every instruction of the build; this filter
       * observes, it does not confine. */
      if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0) {
        unsigned flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_SPEC_ALLOW;
        listener = seccomp_call(SECCOMP_SET_MODE_FILTER, flags, &prog);
        if (listener < 0 && errno == EINVAL) listener = seccomp_call(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
      }
      result = listener >= 0 ? listener : -errno;
      if (syscall(SYS_unshare, CLONE_FILES) != 0) _exit(127);
    }
    if (write(pipefd[1], &result, sizeof result) != sizeof result) _exit(127);
    if (listener >= 0) close(listener);
    close(pipefd[0]);
    close(pipefd[1]);
    close(sfd);
    close(trace_fd);
    if (listener < 0) unsetenv(TRACE_ENV_SUPERVISED);
    sigprocmask(SIG_SETMASK, &old, NULL);
    execvp(command[0], command);
    if (errno == ENOENT && strchr(command[0], '/') == NULL)
      fprintf(stderr, "runner-aware-trace: cannot run %s: not found on PATH\n", command[0]);
    else
      fprintf(stderr, "runner-aware-trace: cannot run %s: %s\n", command[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }

  int listener;
  if (read(pipefd[0], &listener, sizeof listener) != sizeof listener) listener = -EIO;
  close(pipefd[0]);
  close(pipefd[1]);
  if (listener < 0) {
    char why[256];
    if (shared)
      snprintf(why, sizeof why, "seccomp user notification is unavailable (%s), so static programs and raw system calls were not seen",
               strerror(-listener));
    else
      snprintf(why, sizeof why, "the supervisor could not start the command under its filter (clone with CLONE_FILES: %s), so static programs and raw system calls were not seen",
               strerror(-listener));
    write_record(TRACE_INCOMPLETE, why);
    listener = -1;
  }

  struct seccomp_notif_sizes sizes = {0};
  struct seccomp_notif *req = NULL;
  struct seccomp_notif_resp *resp = NULL;
  if (listener >= 0) {
    if (seccomp_call(SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0) die("SECCOMP_GET_NOTIF_SIZES");
    req = calloc(1, sizes.seccomp_notif > sizeof *req ? sizes.seccomp_notif : sizeof *req);
    resp = calloc(1, sizes.seccomp_notif_resp > sizeof *resp ? sizes.seccomp_notif_resp : sizeof *resp);
    if (!req || !resp) die("calloc");
    /* Best effort: older kernels answer EINVAL and wake the supervisor as usual. */
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
  }

  long grace_ms = 2000;
  const char *grace = getenv("RUNNER_AWARE_TRACE_GRACE_MS");
  if (grace && *grace) grace_ms = strtol(grace, NULL, 10);
  int status = 0, child_done = 0;
  long done_at = 0;
  /* When each signal last came from a terminal (SI_KERNEL), by number. */
  long kernel_at[64] = {0};
  for (;;) {
    struct pollfd fds[2] = {{sfd, POLLIN, 0}, {listener, POLLIN, 0}};
    int timeout = -1;
    if (child_done) {
      long left = done_at + grace_ms - now_ms();
      timeout = left > 0 ? (int)left : 0;
    }
    int r = poll(fds, listener >= 0 ? 2 : 1, timeout);
    if (r < 0 && errno != EINTR) die("poll");
    if (r > 0 && (fds[0].revents & POLLIN)) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD || child_done) continue;
        int leader = getpgrp() == getpid();
        int child_in_group = getpgid(child) == getpgrp();
        /* A terminal's signal (Ctrl-C, Ctrl-\, a hang-up) went to its whole
         * foreground group: a command in ours has it already. So has the
         * same signal from our parent (a runner passing on its own Ctrl-C)
         * right after it. */
        if (si.ssi_code == SI_KERNEL) {
          if (sig < 64) kernel_at[sig] = now_ms();
          if (child_in_group) continue;
        } else if (si.ssi_pid == (uint32_t)getppid() && sig < 64 && kernel_at[sig] && now_ms() - kernel_at[sig] < 200 && child_in_group) {
          continue;
        }
        /* Our own signal to the group (below), back to us; or one a process
         * of the task sent to the group we lead (`kill 0`): it has reached
         * the group already. */
        if (si.ssi_pid == (uint32_t)getpid()) continue;
        if (leader && si.ssi_code != SI_KERNEL && getpgid((pid_t)si.ssi_pid) == getpgrp()) continue;
        /* A task spawned with a process group of its own, which we lead:
         * every process of it gets the signal once, as if we were not here;
         * a command that left the group (setsid) gets it too. Else the
         * command does. */
        if (leader) kill(0, sig);
        if (!leader || !child_in_group) kill(child, sig);
      }
      pid_t p;
      int st;
      while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
        if (p == child) {
          status = st;
          child_done = 1;
          done_at = now_ms();
        }
      }
    }
    if (listener >= 0 && r > 0 && (fds[1].revents & POLLIN)) {
      memset(req, 0, sizes.seccomp_notif);
      if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) == 0) {
        handle(req);
        flush_records();
        memset(resp, 0, sizes.seccomp_notif_resp);
        resp->id = req->id;
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        /* ENOENT: the caller died meanwhile; its call never ran. */
        ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
      }
      continue;
    }
    if (!child_done) continue;
    /* The command has exited; every process of the task is gone once the
     * filter has no user left (POLLHUP) or, without seccomp, no child. */
    int all_gone = listener >= 0 ? (r > 0 && (fds[1].revents & POLLHUP)) : 0;
    if (listener < 0) {
      all_gone = waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
    }
    if (all_gone) break;
    if (now_ms() - done_at >= grace_ms) {
      write_record(TRACE_INCOMPLETE, "processes of the task outlived it, and what they did afterwards was not seen");
      break;
    }
    if (listener < 0) {
      struct timespec ts = {0, 10 * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  /* A trace without it was cut short: the supervisor was killed, or died. */
  write_record(TRACE_END, "");
  flush_records();
  if (write_failed) {
    fprintf(stderr, "runner-aware-trace: could not write the trace file %s: what the task did is not all recorded\n", trace_file);
    return TRACE_WRITE_FAILED;
  }
  const char *stats = getenv("RUNNER_AWARE_TRACE_STATS");
  if (stats && strcmp(stats, "1") == 0) {
    for (int nr = 0; nr < 512; nr++)
      if (notified[nr]) fprintf(stderr, "runner-aware-trace: system call %d: %lu notifications\n", nr, notified[nr]);
    struct rusage self;
    getrusage(RUSAGE_SELF, &self);
    fprintf(stderr, "runner-aware-trace: supervisor CPU %.1f ms\n",
            (self.ru_utime.tv_sec + self.ru_stime.tv_sec) * 1e3 + (self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e3);
  }
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    raise(sig);
    return 128 + sig;
  }
  return WEXITSTATUS(status);

usage:
  fprintf(stderr, "usage: runner-aware-trace [--mode preload|seccomp] -- <command> [args...]\n");
  return 127;
}
