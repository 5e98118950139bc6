//! The background runtime every server of a process shares.
//!
//! A runner may run hundreds of tasks at once; each server is a few tasks on
//! this runtime, never a thread of its own. The runtime is created on first use
//! and lives as long as the process.
//!
//! It is a current-thread runtime on one background thread: serving a frame
//! takes microseconds, so one thread keeps up with many servers, and a request
//! then wakes exactly one thread. A multi-thread runtime woke the I/O driver
//! and handed tasks between workers, about 0.7 more context switches and 0.3
//! more `epoll_wait` calls per round trip (`npm run bench`, docs/benchmarks.md).

use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle};

static RUNTIME: OnceLock<Handle> = OnceLock::new();

/// A handle to the shared runtime.
pub fn handle() -> &'static Handle {
    RUNTIME.get_or_init(|| {
        let runtime = Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            // Failing to create an epoll instance or a thread means the process is
            // already out of resources; nothing can be served.
            .expect("runner-aware: cannot start its background runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("runner-aware".to_owned())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("runner-aware: cannot start its background thread");
        handle
    })
}
