//! `runner-aware-trace` for Windows: runs a command with the tracing DLL
//! loaded into it and, through the DLL's hook of process creation, into every
//! process it starts, and writes the begin and end records around it.
//!
//! ```text
//! RUNNER_AWARE_TRACE=<trace file> RUNNER_AWARE_TRACE_PRELOAD=<the DLL> \
//!     runner-aware-trace [--mode preload] -- <command> [args…]
//! ```
//!
//! Exits as the command does, after every process of the task has exited or
//! the grace period (`RUNNER_AWARE_TRACE_GRACE_MS`, 2,000 ms) has passed.

#[cfg(all(windows, target_arch = "x86_64"))]
mod launcher;

fn main() {
    #[cfg(all(windows, target_arch = "x86_64"))]
    std::process::exit(launcher::run());
    #[cfg(not(all(windows, target_arch = "x86_64")))]
    {
        eprintln!(
            "runner-aware-trace-windows: this is the Windows x64 tracer; Linux's is src-rs/tracer"
        );
        std::process::exit(127);
    }
}
