/*
 * sandbox <claude|codex|no-seccomp> <command> [args...]
 *
 * Test helper: runs <command> under a seccomp filter that denies what the
 * Linux filter of a coding-agent sandbox denies, so the transports can be
 * tested against it without root (PR_SET_NO_NEW_PRIVS, then the filter,
 * then execvp; children inherit both). Every denial fails with EPERM.
 *
 * claude: anthropic-experimental/sandbox-runtime, vendor/seccomp-src/
 *   seccomp-unix-block.c: socket(AF_UNIX, ...); socketpair(AF_UNIX, type)
 *   for SOCK_DGRAM and SOCK_RAW (type & 0xf, so SOCK_CLOEXEC/SOCK_NONBLOCK
 *   do not dodge it; stream and seqpacket pairs stay allowed);
 *   io_uring_setup, io_uring_enter, io_uring_register.
 * codex: openai/codex, codex-rs/linux-sandbox/src/seccomp.rs, the
 *   `Restricted` network mode: connect, accept, accept4, bind, listen,
 *   getpeername, getsockname, shutdown, sendto, sendmmsg, recvmmsg,
 *   getsockopt, setsockopt; socket and socketpair of any family but
 *   AF_UNIX; ptrace, process_vm_readv, process_vm_writev; io_uring_*.
 *   (recvfrom, sendmsg and recvmsg stay allowed, as there.)
 *
 * no-seccomp: seccomp(2) itself, as where a container's profile or an
 *   emulated kernel (gVisor, qemu-user) offers no seccomp user
 *   notification; for the file-access tracer's fallback.
 *
 * Differences from the real ones: only the seccomp filter is reproduced, not
 * what surrounds it (bubblewrap, the nested PID/user namespaces of
 * sandbox-runtime's apply-seccomp, Landlock, network namespaces, the proxy
 * modes of Codex). Arguments are compared on their low 32 bits (as both
 * do). A foreign architecture, and x32 system calls on x86_64, kill the
 * process (libseccomp and seccompiler default to killing on a bad arch).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "sandbox.c: x86_64 and aarch64 only"
#endif
#ifndef __NR_io_uring_setup /* the same numbers on every architecture */
#define __NR_io_uring_setup 425
#define __NR_io_uring_enter 426
#define __NR_io_uring_register 427
#endif

static struct sock_filter code[128];
static unsigned short len;

static void op(unsigned short c, unsigned k, unsigned char jt, unsigned char jf) {
  code[len++] = (struct sock_filter){c, jt, jf, k};
}
#define LD(off) op(BPF_LD | BPF_W | BPF_ABS, (off), 0, 0)
#define JEQ(k, jt, jf) op(BPF_JMP | BPF_JEQ | BPF_K, (k), (jt), (jf))
#define RET(k) op(BPF_RET | BPF_K, (k), 0, 0)
#define NR offsetof(struct seccomp_data, nr)
/* The low half of an argument: both architectures are little-endian. */
#define ARG(i) offsetof(struct seccomp_data, args[i])
#define EPERM_ (SECCOMP_RET_ERRNO | EPERM)

static void deny(unsigned nr) { JEQ(nr, 0, 1); RET(EPERM_); }

/* nr with (arg a & mask) == v (or != v, with `unless`) fails with EPERM. */
static void deny_arg(unsigned nr, int a, unsigned mask, unsigned v, int unless) {
  JEQ(nr, 0, 4);
  LD(ARG(a));
  op(BPF_ALU | BPF_AND | BPF_K, mask, 0, 0);
  JEQ(v, unless ? 1 : 0, unless ? 0 : 1);
  RET(EPERM_);
  LD(NR);
}

int main(int argc, char **argv) {
  int claude = argc > 2 && strcmp(argv[1], "claude") == 0;
  int no_seccomp = argc > 2 && strcmp(argv[1], "no-seccomp") == 0;
  if (argc < 3 || (!claude && !no_seccomp && strcmp(argv[1], "codex") != 0)) {
    fprintf(stderr, "usage: sandbox <claude|codex|no-seccomp> <command> [args...]\n");
    return 2;
  }
  LD(offsetof(struct seccomp_data, arch));
  JEQ(ARCH, 1, 0);
  RET(SECCOMP_RET_KILL_PROCESS);
  LD(NR);
#ifdef __x86_64__
  op(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1); /* x32 */
  RET(SECCOMP_RET_KILL_PROCESS);
#endif
  deny(__NR_io_uring_setup);
  deny(__NR_io_uring_enter);
  deny(__NR_io_uring_register);
  if (no_seccomp) {
    deny(__NR_seccomp);
  } else if (claude) {
    deny_arg(__NR_socket, 0, 0xffffffff, AF_UNIX, 0);
    /* socketpair(AF_UNIX, SOCK_DGRAM or SOCK_RAW) */
    JEQ(__NR_socketpair, 0, 7);
    LD(ARG(0));
    JEQ(AF_UNIX, 0, 5);
    LD(ARG(1));
    op(BPF_ALU | BPF_AND | BPF_K, 0xf, 0, 0);
    JEQ(SOCK_DGRAM, 1, 0);
    JEQ(SOCK_RAW, 0, 1);
    RET(EPERM_);
    LD(NR);
  } else {
    static const unsigned denied[] = {
        __NR_connect, __NR_accept, __NR_accept4, __NR_bind, __NR_listen, __NR_getpeername,
        __NR_getsockname, __NR_shutdown, __NR_sendto, __NR_sendmmsg, __NR_recvmmsg,
        __NR_getsockopt, __NR_setsockopt, __NR_ptrace, __NR_process_vm_readv, __NR_process_vm_writev,
    };
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) deny(denied[i]);
    deny_arg(__NR_socket, 0, 0xffffffff, AF_UNIX, 1);
    deny_arg(__NR_socketpair, 0, 0xffffffff, AF_UNIX, 1);
  }
  RET(SECCOMP_RET_ALLOW);

  struct sock_fprog prog = {.len = len, .filter = code};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    perror("sandbox: PR_SET_NO_NEW_PRIVS");
    return 126;
  }
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    perror("sandbox: PR_SET_SECCOMP");
    return 126;
  }
  execvp(argv[2], argv + 2);
  fprintf(stderr, "sandbox: cannot run %s: %s\n", argv[2], strerror(errno));
  return 127;
}
