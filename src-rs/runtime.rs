//! The background runtime every server of a process shares.
//!
//! A runner may run hundreds of tasks at once; each server is a few tasks on
//! this runtime, never a thread of its own. The runtime is created on first use
//! and lives as long as the process.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// A handle to the shared runtime.
pub fn handle() -> &'static Handle {
    RUNTIME
        .get_or_init(|| {
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
            Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name("runner-aware")
                .enable_io()
                .enable_time()
                .build()
                // Without threads the process cannot serve anything; failing to
                // spawn two threads means the process is already out of resources.
                .expect("runner-aware: cannot start its background runtime")
        })
        .handle()
}
