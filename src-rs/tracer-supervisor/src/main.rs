//! `runner-aware-trace`: starts a task's command under a seccomp filter whose
//! file system calls it is notified of (`SECCOMP_RET_USER_NOTIF`, Linux 5.5+,
//! no root), records each into the trace file and lets it continue
//! (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
//!
//! ```text
//! runner-aware-trace [--mode preload|seccomp] -- <command> [args...]
//! ```
//!
//! `RUNNER_AWARE_TRACE` names the trace file, `RUNNER_AWARE_TRACE_PRELOAD` the
//! preload library the command gets in `LD_PRELOAD`. In `preload` mode (the
//! default) calls made from the preload library's trampoline page pass
//! unseen, since the library recorded them already; the supervisor sees what
//! the library cannot: libc internals, static programs, raw `syscall`
//! instructions. In `seccomp` mode it sees every file system call of the task.
//!
//! The supervisor is the parent of the command, so it may read its memory
//! (`process_vm_readv`) under Yama's default ptrace scope. It exits like the
//! command, once every process of the task has exited or, when some outlive
//! the command, after a grace period (`RUNNER_AWARE_TRACE_GRACE_MS`, default
//! 2000), recording that the trace misses what they do afterwards.

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod linux;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn main() {
    std::process::exit(linux::main());
}

/// Elsewhere there is nothing to supervise: runners trace on Linux only.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn main() {
    eprintln!(
        "runner-aware-trace: the file-access tracer runs on Linux on x86_64 and aarch64 only"
    );
    std::process::exit(127);
}
