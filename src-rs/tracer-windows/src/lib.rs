//! The Windows file-access tracer: `runner_aware_trace_windows.dll`, which the
//! launcher (`src/main.rs`) loads into the task's first process and which loads
//! itself into every process that one starts. Its hooks replace the start of
//! ntdll's file and process-creation calls, so whatever a program uses
//! (kernel32, the C runtime, libuv, Go's syscall package) is seen where it
//! enters the kernel, and record each access to the trace file in the format
//! the Linux tracer writes (`src-rs/tracer/trace.h`), with Windows paths
//! (`C:\dir\file`, `\\server\share\file`).
//!
//! Everything here is Windows-only; on other hosts the crate is empty.
#![cfg(all(windows, target_arch = "x86_64"))]

/// The original call behind a hook: the trampoline in `$slot`, as a `$ty`.
/// Defined before the modules, which use it.
macro_rules! original {
    ($slot:expr, $ty:ty) => {
        // SAFETY: the slot holds the trampoline of a call of this type, set
        // before the hook that reads it could run.
        unsafe {
            std::mem::transmute::<usize, $ty>($slot.load(std::sync::atomic::Ordering::Acquire))
        }
    };
}

mod dll;
mod files;
pub mod handoff;
mod hook;
pub mod inject;
mod nt;
mod process;
pub mod record;
