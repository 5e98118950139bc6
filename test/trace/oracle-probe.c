/*
 * The trace oracle's probe (test/trace-oracle.test.ts): one file operation,
 * made one way, on the files the test put under `d/` in its working
 * directory. The test runs it under strace and under the tracer and checks
 * that the trace has every path strace saw.
 *
 *   oracle-probe <op> <way> [addon.so]
 *
 * A way is a calling method (the libc wrapper, syscall(3), a raw `syscall`
 * instruction, `int $0x80`) and a place to call from (the main thread, a
 * thread of the program's, a thread a shared library started, a vfork or
 * posix_spawn child), with the path named directly, relative to a
 * descriptor, through /proc/self/fd, /proc/self/cwd, /proc/<pid>/root or a
 * symlink the probe made. Built dynamically and with -static
 * (-DPROBE_STATIC: no shared library there). x86_64 only.
 *
 * Exits 0 when the operation succeeded, 1 (saying why) when it failed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif

extern char **environ;

/* openat2's argument, as <linux/openat2.h> has it. */
struct how {
  uint64_t flags, mode, resolve;
};

/* The i386 numbers `int $0x80` takes, from a 64-bit program too. */
enum {
  I386_OPEN = 5,
  I386_UNLINK = 10,
  I386_ACCESS = 33,
  I386_RENAME = 38,
  I386_MKDIR = 39,
  I386_READLINK = 85,
  I386_STAT64 = 195,
  I386_LSTAT64 = 196,
  I386_GETDENTS64 = 220,
  I386_RENAMEAT2 = 353,
  I386_STATX = 383,
  I386_OPENAT2 = 437,
};

enum method { LIBC, SYSCALL, RAW, INT80 };

/* How the operation is made: the method, and the directory its names are
 * relative to (a descriptor, or a prefix of the name). */
struct call {
  enum method method;
  int dirfd;
  char prefix[256];
};

static long raw6(long nr, long a, long b, long c, long d, long e) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
  return ret;
}

static long int80(long nr, long a, long b, long c, long d, long e) {
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e) : "memory");
  return (int)ret;
}

/* int $0x80 takes 32-bit pointers: its arguments live in a page below 4 GiB. */
static char *low;

static long libc_result(long r) { return r < 0 ? -errno : r; }

/* The call's name for `name`, in `out`; for INT80, a copy below 4 GiB. */
static char *path_of(const struct call *c, const char *name, char *out, int slot) {
  snprintf(out, 1024, "%s%s", c->prefix, name);
  if (c->method != INT80) return out;
  char *copy = low + 1024 * slot;
  snprintf(copy, 1024, "%s", out);
  return copy;
}

#define P(name, slot) path_of(c, name, path##slot, slot)
#define AT(c) ((c)->dirfd)
#define VIA_AT(c) ((c)->dirfd != AT_FDCWD)

static long op_read(const struct call *c) {
  char path0[1024];
  char *p = P("input.txt", 0);
  switch (c->method) {
    case LIBC: return libc_result(VIA_AT(c) ? openat(AT(c), p, O_RDONLY) : open(p, O_RDONLY));
    case SYSCALL: return libc_result(syscall(SYS_openat, AT(c), p, O_RDONLY));
    case RAW: return VIA_AT(c) ? raw6(SYS_openat, AT(c), (long)p, O_RDONLY, 0, 0) : raw6(SYS_open, (long)p, O_RDONLY, 0, 0, 0);
    case INT80: return int80(I386_OPEN, (long)p, O_RDONLY, 0, 0, 0);
  }
  return -EINVAL;
}

static long op_write(const struct call *c) {
  char path0[1024];
  char *p = P("created.txt", 0);
  int flags = O_WRONLY | O_CREAT | O_TRUNC;
  switch (c->method) {
    case LIBC: return libc_result(VIA_AT(c) ? openat(AT(c), p, flags, 0644) : open(p, flags, 0644));
    case SYSCALL: return libc_result(syscall(SYS_openat, AT(c), p, flags, 0644));
    case RAW: return VIA_AT(c) ? raw6(SYS_openat, AT(c), (long)p, flags, 0644, 0) : raw6(SYS_open, (long)p, flags, 0644, 0, 0);
    case INT80: return int80(I386_OPEN, (long)p, flags, 0644, 0, 0);
  }
  return -EINVAL;
}

static long op_stat(const struct call *c) {
  char path0[1024];
  char *p = P("looked-up.txt", 0);
  struct stat st;
  switch (c->method) {
    case LIBC: return libc_result(VIA_AT(c) ? fstatat(AT(c), p, &st, 0) : stat(p, &st));
    case SYSCALL: return libc_result(syscall(SYS_newfstatat, AT(c), p, &st, 0));
    case RAW: return VIA_AT(c) ? raw6(SYS_newfstatat, AT(c), (long)p, (long)&st, 0, 0) : raw6(SYS_stat, (long)p, (long)&st, 0, 0, 0);
    case INT80: return int80(I386_STAT64, (long)p, (long)(low + 3072), 0, 0, 0);
  }
  return -EINVAL;
}

static long op_lstat(const struct call *c) {
  char path0[1024];
  char *p = P("a-link", 0);
  struct stat st;
  switch (c->method) {
    case LIBC: return libc_result(VIA_AT(c) ? fstatat(AT(c), p, &st, AT_SYMLINK_NOFOLLOW) : lstat(p, &st));
    case SYSCALL:
      return libc_result(VIA_AT(c) ? syscall(SYS_newfstatat, AT(c), p, &st, AT_SYMLINK_NOFOLLOW) : syscall(SYS_lstat, p, &st));
    case RAW: return raw6(SYS_newfstatat, AT(c), (long)p, (long)&st, AT_SYMLINK_NOFOLLOW, 0);
    case INT80: return int80(I386_LSTAT64, (long)p, (long)(low + 3072), 0, 0, 0);
  }
  return -EINVAL;
}

static long op_statx(const struct call *c) {
  char path0[1024];
  char *p = P("looked-up.txt", 0);
  struct statx stx;
  switch (c->method) {
    case LIBC: return libc_result(statx(AT(c), p, 0, STATX_BASIC_STATS, &stx));
    case SYSCALL: return libc_result(syscall(SYS_statx, AT(c), p, 0, STATX_BASIC_STATS, &stx));
    case RAW: return raw6(SYS_statx, AT(c), (long)p, 0, STATX_BASIC_STATS, (long)&stx);
    case INT80: return int80(I386_STATX, AT_FDCWD, (long)p, 0, STATX_BASIC_STATS, (long)(low + 3072));
  }
  return -EINVAL;
}

static long op_access(const struct call *c) {
  char path0[1024];
  char *p = P("looked-up.txt", 0);
  switch (c->method) {
    case LIBC: return libc_result(VIA_AT(c) ? faccessat(AT(c), p, R_OK, 0) : access(p, R_OK));
    case SYSCALL: return libc_result(syscall(SYS_faccessat2, AT(c), p, R_OK, 0));
    case RAW: return VIA_AT(c) ? raw6(SYS_faccessat, AT(c), (long)p, R_OK, 0, 0) : raw6(SYS_access, (long)p, R_OK, 0, 0, 0);
    case INT80: return int80(I386_ACCESS, (long)p, R_OK, 0, 0, 0);
  }
  return -EINVAL;
}

/* A listing: opened without O_DIRECTORY where the method allows, so only
 * the getdents64 calls say it is one. */
static long op_list(const struct call *c) {
  char path0[1024], entries[4096];
  char *p = P("listed", 0);
  long fd, n;
  switch (c->method) {
    case LIBC: {
      DIR *dir = VIA_AT(c) ? fdopendir(openat(AT(c), p, O_RDONLY | O_DIRECTORY)) : opendir(p);
      if (dir == NULL) return -errno;
      while (readdir(dir) != NULL) continue;
      closedir(dir);
      return 0;
    }
    case SYSCALL:
      fd = syscall(SYS_openat, AT(c), p, O_RDONLY);
      if (fd < 0) return -errno;
      while ((n = syscall(SYS_getdents64, fd, entries, sizeof entries)) > 0) continue;
      return libc_result(n);
    case RAW:
      fd = raw6(SYS_openat, AT(c), (long)p, O_RDONLY, 0, 0);
      if (fd < 0) return fd;
      while ((n = raw6(SYS_getdents64, fd, (long)entries, sizeof entries, 0, 0)) > 0) continue;
      return n;
    case INT80:
      fd = int80(I386_OPEN, (long)p, O_RDONLY, 0, 0, 0);
      if (fd < 0) return fd;
      while ((n = int80(I386_GETDENTS64, fd, (long)(low + 3072), 1024, 0, 0)) > 0) continue;
      return n;
  }
  return -EINVAL;
}

static long op_unlink(const struct call *c) {
  char path0[1024];
  char *p = P("doomed.txt", 0);
  switch (c->method) {
    case LIBC: return libc_result(VIA_AT(c) ? unlinkat(AT(c), p, 0) : unlink(p));
    case SYSCALL: return libc_result(syscall(SYS_unlinkat, AT(c), p, 0));
    case RAW: return VIA_AT(c) ? raw6(SYS_unlinkat, AT(c), (long)p, 0, 0, 0) : raw6(SYS_unlink, (long)p, 0, 0, 0, 0);
    case INT80: return int80(I386_UNLINK, (long)p, 0, 0, 0, 0);
  }
  return -EINVAL;
}

static long op_rename(const struct call *c) {
  char path0[1024], path1[1024];
  char *from = P("from.txt", 0), *to = P("to.txt", 1);
  switch (c->method) {
    case LIBC: return libc_result(VIA_AT(c) ? renameat(AT(c), from, AT(c), to) : rename(from, to));
    case SYSCALL:
      return libc_result(VIA_AT(c) ? syscall(SYS_renameat, AT(c), from, AT(c), to) : syscall(SYS_rename, from, to));
    case RAW:
      return VIA_AT(c) ? raw6(SYS_renameat, AT(c), (long)from, AT(c), (long)to, 0) : raw6(SYS_rename, (long)from, (long)to, 0, 0, 0);
    case INT80: return int80(I386_RENAME, (long)from, (long)to, 0, 0, 0);
  }
  return -EINVAL;
}

static long op_renameat2(const struct call *c) {
  char path0[1024], path1[1024];
  char *from = P("from.txt", 0), *to = P("to2.txt", 1);
  switch (c->method) {
    case LIBC: return libc_result(renameat2(AT(c), from, AT(c), to, RENAME_NOREPLACE));
    case SYSCALL: return libc_result(syscall(SYS_renameat2, AT(c), from, AT(c), to, RENAME_NOREPLACE));
    case RAW: return raw6(SYS_renameat2, AT(c), (long)from, AT(c), (long)to, RENAME_NOREPLACE);
    case INT80: return int80(I386_RENAMEAT2, AT_FDCWD, (long)from, AT_FDCWD, (long)to, RENAME_NOREPLACE);
  }
  return -EINVAL;
}

static long op_mkdir(const struct call *c) {
  char path0[1024];
  char *p = P("made", 0);
  switch (c->method) {
    case LIBC: return libc_result(VIA_AT(c) ? mkdirat(AT(c), p, 0755) : mkdir(p, 0755));
    case SYSCALL: return libc_result(syscall(SYS_mkdirat, AT(c), p, 0755));
    case RAW: return VIA_AT(c) ? raw6(SYS_mkdirat, AT(c), (long)p, 0755, 0, 0) : raw6(SYS_mkdir, (long)p, 0755, 0, 0, 0);
    case INT80: return int80(I386_MKDIR, (long)p, 0755, 0, 0, 0);
  }
  return -EINVAL;
}

static long op_readlink(const struct call *c) {
  char path0[1024], target[256];
  char *p = P("a-link", 0);
  switch (c->method) {
    case LIBC: return libc_result(VIA_AT(c) ? readlinkat(AT(c), p, target, sizeof target) : readlink(p, target, sizeof target));
    case SYSCALL: return libc_result(syscall(SYS_readlinkat, AT(c), p, target, sizeof target));
    case RAW:
      return VIA_AT(c) ? raw6(SYS_readlinkat, AT(c), (long)p, (long)target, sizeof target, 0)
                       : raw6(SYS_readlink, (long)p, (long)target, sizeof target, 0, 0);
    case INT80: return int80(I386_READLINK, (long)p, (long)(low + 3072), 256, 0, 0);
  }
  return -EINVAL;
}

/* openat2 of `name` relative to `dirfd`; glibc has no wrapper, so the libc
 * method is syscall(3) too. */
static long openat2_at(const struct call *c, int dirfd, const char *name, uint64_t resolve) {
  char path0[1024];
  char *p = c->method == INT80 ? path_of(c, name, path0, 0) : (char *)name;
  struct how how = {O_RDONLY, 0, resolve}, *h = &how;
  if (c->method == INT80) {
    h = (struct how *)(void *)(low + 3072);
    *h = how;
  }
  switch (c->method) {
    case LIBC:
    case SYSCALL: return libc_result(syscall(SYS_openat2, dirfd, p, h, sizeof *h));
    case RAW: return raw6(SYS_openat2, dirfd, (long)p, (long)h, sizeof *h, 0);
    case INT80: return int80(I386_OPENAT2, dirfd, (long)p, (long)h, sizeof *h, 0);
  }
  return -EINVAL;
}

static long op_openat2(const struct call *c) {
  char path0[1024];
  if (c->method == INT80) return openat2_at(c, AT_FDCWD, "input.txt", 0);
  return openat2_at(c, AT(c), P("input.txt", 0), 0);
}

/* RESOLVE_IN_ROOT: `d/sub` is the root, so "/../inner.txt" is d/sub/inner.txt. */
static long op_openat2_in_root(const struct call *c) {
  char path0[1024];
  int root = openat(AT(c), P("sub", 0), O_PATH | O_DIRECTORY);
  if (root < 0) return -errno;
  struct call bare = *c;
  bare.prefix[0] = '\0';
  return openat2_at(&bare, root, "/../inner.txt", RESOLVE_IN_ROOT);
}

/* Calls the tracer cannot map to a path: the trace must say it is
 * incomplete. Each succeeds whether or not the kernel allowed it (it needs
 * privileges a CI runner may lack): the call was made either way. */
static long op_by_handle(const struct call *c) {
  char path0[1024];
  char *p = P("input.txt", 0);
  struct {
    struct file_handle handle;
    unsigned char bytes[MAX_HANDLE_SZ];
  } h;
  int mount_id;
  h.handle.handle_bytes = MAX_HANDLE_SZ;
  if (name_to_handle_at(AT_FDCWD, p, &h.handle, &mount_id, 0) != 0) h.handle.handle_bytes = 0;
  int dir = open(".", O_PATH | O_DIRECTORY);
  if (c->method == SYSCALL)
    syscall(SYS_open_by_handle_at, dir, &h.handle, O_RDONLY);
  else
    open_by_handle_at(dir, &h.handle, O_RDONLY);
  return 0;
}

static long op_chroot(const struct call *c) {
  char path0[1024];
  char *p = P("sub", 0);
  long r = c->method == SYSCALL ? syscall(SYS_chroot, p) : chroot(p);
  if (r == 0) open("/inner.txt", O_RDONLY);
  return 0;
}

static const struct {
  const char *name;
  long (*run)(const struct call *);
} ops[] = {
    {"read", op_read},       {"write", op_write},         {"stat", op_stat},     {"lstat", op_lstat},
    {"statx", op_statx},     {"access", op_access},       {"list", op_list},     {"unlink", op_unlink},
    {"rename", op_rename},   {"renameat2", op_renameat2}, {"mkdir", op_mkdir},   {"readlink", op_readlink},
    {"openat2", op_openat2}, {"openat2-in-root", op_openat2_in_root}, {"by-handle", op_by_handle},
    {"chroot", op_chroot},
};

static long (*op)(const struct call *);
static struct call the_call = {LIBC, AT_FDCWD, "d/"};

static void *in_thread(void *arg) {
  (void)arg;
  return (void *)(intptr_t)op(&the_call);
}

static int fail(const char *what, long r) {
  fprintf(stderr, "oracle-probe: %s: %s\n", what, strerror((int)-r));
  return 1;
}

/* The operation in a thread the addon at `path` starts. */
static long in_addon_thread(const char *path) {
#ifdef PROBE_STATIC
  (void)path;
  return -ENOSYS;
#else
  void *addon = path ? dlopen(path, RTLD_NOW) : NULL;
  int (*start)(void *(*)(void *), void *) = addon ? (int (*)(void *(*)(void *), void *))dlsym(addon, "oracle_in_thread") : NULL;
  if (start == NULL) {
    fprintf(stderr, "oracle-probe: the addon: %s\n", path ? dlerror() : "no path given");
    return -ENOENT;
  }
  return start(in_thread, NULL);
#endif
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: oracle-probe <op> <way> [addon.so]\n");
    return 2;
  }
  const char *way = argv[2];
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (strcmp(ops[i].name, argv[1]) == 0) op = ops[i].run;
  if (op == NULL) return fail(argv[1], -EINVAL);
  low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
  if (low == MAP_FAILED) return fail("mmap MAP_32BIT", -errno);

  struct call *c = &the_call;
  long r;
  if (strcmp(way, "libc") == 0 || strcmp(way, "static") == 0) {
    r = op(c);
  } else if (strcmp(way, "syscall") == 0) {
    c->method = SYSCALL;
    r = op(c);
  } else if (strcmp(way, "raw") == 0) {
    c->method = RAW;
    r = op(c);
  } else if (strcmp(way, "int80") == 0) {
    c->method = INT80;
    r = op(c);
  } else if (strcmp(way, "thread") == 0) {
    /* A thread of the program's own: raw calls from it. */
    pthread_t thread;
    void *result;
    c->method = RAW;
    if (pthread_create(&thread, NULL, in_thread, NULL) != 0) return fail("pthread_create", -EAGAIN);
    pthread_join(thread, &result);
    r = (long)(intptr_t)result;
  } else if (strcmp(way, "addon-thread") == 0 || strcmp(way, "addon-int80") == 0) {
    /* A thread a shared library started (a native addon's worker): raw
     * calls from it, or int $0x80 (i386 numbers), which Syscall User
     * Dispatch hands to the tracer's SIGSYS handler. */
    c->method = strcmp(way, "addon-thread") == 0 ? RAW : INT80;
    r = in_addon_thread(argc > 3 ? argv[3] : NULL);
  } else if (strcmp(way, "vfork") == 0) {
    int status;
    pid_t pid = vfork();
    if (pid == 0) _exit(op(c) < 0);
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return fail("vfork", -errno);
    r = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
  } else if (strcmp(way, "spawn") == 0) {
    char *child[] = {argv[0], argv[1], "libc", NULL};
    int status;
    pid_t pid;
    int e = posix_spawn(&pid, argv[0], NULL, NULL, child, environ);
    if (e != 0 || waitpid(pid, &status, 0) != pid) return fail("posix_spawn", -(e ? e : errno));
    r = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
  } else if (strcmp(way, "dirfd") == 0) {
    c->dirfd = open("d", O_PATH | O_DIRECTORY);
    c->prefix[0] = '\0';
    r = op(c);
  } else if (strcmp(way, "proc-fd") == 0) {
    int fd = open("d", O_PATH | O_DIRECTORY);
    snprintf(c->prefix, sizeof c->prefix, "/proc/self/fd/%d/", fd);
    r = op(c);
  } else if (strcmp(way, "proc-cwd") == 0) {
    snprintf(c->prefix, sizeof c->prefix, "/proc/self/cwd/d/");
    r = op(c);
  } else if (strcmp(way, "proc-root") == 0) {
    char cwd[200];
    if (getcwd(cwd, sizeof cwd) == NULL) return fail("getcwd", -errno);
    snprintf(c->prefix, sizeof c->prefix, "/proc/%d/root%s/d/", (int)getpid(), cwd);
    r = op(c);
  } else if (strcmp(way, "symlink") == 0) {
    if (symlink("d", "via") != 0) return fail("symlink", -errno);
    snprintf(c->prefix, sizeof c->prefix, "via/");
    r = op(c);
  } else {
    return fail(way, -EINVAL);
  }
  if (r < 0) return fail(argv[1], r);
  return 0;
}
