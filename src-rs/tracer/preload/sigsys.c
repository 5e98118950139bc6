/*
 * Syscall User Dispatch (Linux 5.11): a thread's system calls made from
 * outside libc's code (raw `syscall` instructions in a native addon, the
 * dynamic loader's) raise SIGSYS in the thread itself while its selector
 * says BLOCK, and the handler below records and makes them, answering from
 * the dispatch table (syscall_table.c): a few microseconds, where the
 * supervisor's notification round trip costs far more. Unlike a seccomp
 * filter it ends at exec, so a static program started from here is left to
 * the supervisor. The selector is ALLOW while the tracer itself makes a
 * call through the trampoline. Here too: the pthread_create hook that turns
 * it on for a thread, and the sigaction hook that keeps SIGSYS the tracer's.
 */
#include "preload.h"

#include <link.h>
#include <linux/audit.h>
#include <string.h>
#include <ucontext.h>

#ifndef SYS_USER_DISPATCH
#define SYS_USER_DISPATCH 2 /* si_code of its SIGSYS */
#endif
__thread volatile char sud_selector TLS = SYSCALL_DISPATCH_FILTER_ALLOW;
__thread int sud_on TLS;
static unsigned long libc_code_start, libc_code_len;

#if defined(__x86_64__)
static const int arg_regs[6] = {REG_RDI, REG_RSI, REG_RDX, REG_R10, REG_R8, REG_R9};
#define UC_ARG(uc, i) ((uc)->uc_mcontext.gregs[arg_regs[i]])
#define UC_NR(uc) ((uc)->uc_mcontext.gregs[REG_RAX])
#define UC_RET(uc) ((uc)->uc_mcontext.gregs[REG_RAX])
#define UC_PC(uc) ((uc)->uc_mcontext.gregs[REG_RIP])
#define SYSCALL_INSN_LEN 2 /* syscall, and int $0x80 */
#define TRACE_NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define UC_ARG(uc, i) ((uc)->uc_mcontext.regs[i])
#define UC_NR(uc) ((uc)->uc_mcontext.regs[8])
#define UC_RET(uc) ((uc)->uc_mcontext.regs[0])
#define UC_PC(uc) ((uc)->uc_mcontext.pc)
#define SYSCALL_INSN_LEN 4
#define TRACE_NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

/* Run the call as the thread itself: it creates a thread or process, or
 * returns from a signal, which cannot happen inside a handler. */
#define RUN_NATIVELY (-4096 - 1)

static struct sigaction program_sigsys; /* a SIGSYS handler the program set, chained to */
static int sud_usable;

static long emulate(long nr, const long *a, ucontext_t *uc) {
  long r = traced_call(nr, a);
  if (r != NOT_TRACED) return r;
  switch (nr) {
    case SYS_rt_sigprocmask: {
      /* The mask the thread returns to is the handler's saved one. */
      uint64_t *mask = (uint64_t *)(void *)&uc->uc_sigmask, old = *mask, set;
      if (a[3] != 8) return -EINVAL;
      if (a[1]) {
        memcpy(&set, (const void *)a[1], 8);
        if (a[0] == SIG_BLOCK)
          *mask |= set;
        else if (a[0] == SIG_UNBLOCK)
          *mask &= ~set;
        else if (a[0] == SIG_SETMASK)
          *mask = set;
        else
          return -EINVAL;
        *mask &= ~((1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1)) | (1ULL << (SIGSYS - 1)));
      }
      if (a[2]) memcpy((void *)a[2], &old, 8);
      return 0;
    }
    case SYS_rt_sigaction:
      /* SIGSYS stays the tracer's. */
      if (a[0] == SIGSYS) return 0;
      break;
    case SYS_clone:
    case SYS_clone3:
#ifdef SYS_fork
    case SYS_fork:
    case SYS_vfork:
#endif
    case SYS_rt_sigreturn:
    case SYS_execve:
    case SYS_execveat:
      return RUN_NATIVELY;
    default:
      break;
  }
  /* Any other call, from libc's code: allowed by dispatch, and the
   * supervisor's filter sees it if it names a file. */
  r = real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
  return r == -1 ? -errno : r;
}

static void on_sigsys(int sig, siginfo_t *info, void *context) {
  ucontext_t *uc = context;
  if (info->si_code != SYS_USER_DISPATCH) {
    /* Not ours (a seccomp filter of the program's): its handler, or the default. */
    if (program_sigsys.sa_flags & SA_SIGINFO) {
      if (program_sigsys.sa_sigaction) program_sigsys.sa_sigaction(sig, info, context);
    } else if (program_sigsys.sa_handler != SIG_DFL && program_sigsys.sa_handler != SIG_IGN) {
      program_sigsys.sa_handler(sig);
    } else {
      signal(SIGSYS, SIG_DFL);
      raise(SIGSYS);
    }
    return;
  }
  int saved = errno;
  long nr = info->si_syscall, a[6];
  for (int i = 0; i < 6; i++) a[i] = (long)UC_ARG(uc, i);
  sud_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
  /* int $0x80 in a 64-bit thread has i386 numbers and registers, which the
   * table does not know: the thread makes it itself, under the supervisor's
   * filter, which knows them. */
  long r = info->si_arch == TRACE_NATIVE_ARCH ? emulate(nr, a, uc) : RUN_NATIVELY;
  if (r == RUN_NATIVELY) {
    /* Back over the instruction with dispatch off for this thread: its raw
     * calls go to the supervisor from now on, slower but seen. */
    UC_NR(uc) = nr;
#if defined(__aarch64__)
    UC_ARG(uc, 0) = a[0];
#endif
    UC_PC(uc) -= SYSCALL_INSN_LEN;
    errno = saved;
    return;
  }
  UC_RET(uc) = r;
  sud_selector = SYSCALL_DISPATCH_FILTER_BLOCK;
  errno = saved;
}

/* The main program's code: threads it starts are left alone. */
static unsigned long main_code_start, main_code_end;

static int find_main_code(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  (void)data;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    unsigned long start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
    if (main_code_end == 0 || start < main_code_start) main_code_start = start;
    if (end > main_code_end) main_code_end = end;
  }
  return 1; /* the first object is the program */
}

/* libc's own code, where dispatch lets calls through. */
static int find_libc_code(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  unsigned long target = (unsigned long)data;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    unsigned long start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
    if (target >= start && target < end) {
      libc_code_start = start;
      libc_code_len = end - start;
      return 1;
    }
  }
  return 0;
}

static void sud_enable_thread(void) {
  if (!sud_usable) return;
  sud_selector = SYSCALL_DISPATCH_FILTER_BLOCK;
  if (real_syscall(SYS_prctl, PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, libc_code_start, libc_code_len,
                   &sud_selector) == 0) {
    sud_on = 1;
  } else {
    sud_selector = SYSCALL_DISPATCH_FILTER_ALLOW;
  }
}

/*
 * Dispatch for the threads native libraries start (a bundler's worker
 * threads, whose raw calls are the ones libc never sees), when the
 * supervisor and the trampoline are there and the kernel has it. The main
 * thread and the threads the program itself starts keep the supervisor
 * alone: a runtime that makes every call raw and handles signals its own way
 * (Go's) is not made to take a signal per call. RUNNER_AWARE_TRACE_DISPATCH=0
 * turns it off.
 */
void sud_start(void) {
  if (!supervised || trampoline == NULL) return;
  const char *off = getenv("RUNNER_AWARE_TRACE_DISPATCH");
  if (off && strcmp(off, "0") == 0) return;
  dl_iterate_phdr(find_libc_code, (void *)real_syscall);
  dl_iterate_phdr(find_main_code, NULL);
  if (libc_code_len == 0 || real_pthread_create == NULL) return;
  struct sigaction act;
  memset(&act, 0, sizeof act);
  act.sa_sigaction = on_sigsys;
  /* No SA_ONSTACK: the handler needs some kilobytes of stack, which a
   * thread's own stack has and the small alternate stacks runtimes set up
   * for overflow reports may not. */
  act.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  if (real_sigaction(SIGSYS, &act, &program_sigsys) != 0) return;
  sud_usable = 1;
}

struct thread_start {
  void *(*routine)(void *);
  void *arg;
};

static void *start_with_dispatch(void *p) {
  struct thread_start start = *(struct thread_start *)p;
  free(p);
  sud_enable_thread();
  return start.routine(start.arg);
}

EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*routine)(void *), void *arg) {
  ENSURE_INIT();
  /* Before glibc 2.34 it lives in libpthread, which a program may load after
   * this library's start (a dlopen'ed module that needs it). */
  if (real_pthread_create == NULL) real_pthread_create = (__typeof__(real_pthread_create))dlsym(RTLD_NEXT, "pthread_create");
  if (real_pthread_create == NULL) return EAGAIN;
  unsigned long caller = (unsigned long)__builtin_return_address(0);
  int from_program = (caller >= main_code_start && caller < main_code_end) ||
                     (caller >= libc_code_start && caller < libc_code_start + libc_code_len);
  if (sud_usable && !from_program) {
    struct thread_start *start = malloc(sizeof *start);
    if (start != NULL) {
      start->routine = routine;
      start->arg = arg;
      int r = real_pthread_create(thread, attr, start_with_dispatch, start);
      if (r != 0) free(start);
      return r;
    }
  }
  return real_pthread_create(thread, attr, routine, arg);
}

/* A program's SIGSYS handler is chained to, not installed: dispatch needs ours. */
EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  ENSURE_INIT();
  if (real_sigaction == NULL) real_sigaction = (__typeof__(real_sigaction))dlsym(RTLD_NEXT, "sigaction");
  if (real_sigaction == NULL) {
    errno = ENOSYS;
    return -1;
  }
  if (sig != SIGSYS || !sud_usable) return real_sigaction(sig, act, old);
  if (old) *old = program_sigsys;
  if (act) program_sigsys = *act;
  return 0;
}
