//! What the tracer's parts share: the trace file's record format, the
//! environment they are configured by, and the address range whose system
//! calls the supervisor's filter lets through unseen.
//!
//! [`crate::trace`] reads trace files with these definitions and the
//! supervisor (`src-rs/tracer-supervisor`) writes them; the preload library,
//! which is C, has them from `src-rs/tracer/trace.h`, and a test of the
//! supervisor's crate checks that header against this module.
//!
//! A trace file is a sequence of records appended with `O_APPEND`, one
//! `write(2)` per record, so records from every process of a task interleave
//! whole. A record is one kind byte, then the absolute path (or, for
//! [`RecordKind::Incomplete`], a sentence), then a NUL byte. It needs no
//! feature: the supervisor uses it with none of the runner's dependencies.

/// A trace record's kind: its first byte. Reads are recorded after the call
/// (its outcome decides the kind), effects (writes, deletes) before it, so an
/// effect is never unrecorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// Opened for reading.
    Read = b'r',
    /// Executed.
    Exec = b'x',
    /// Looked up (stat, access, readlink): exists.
    Found = b'f',
    /// Looked up or opened: does not exist.
    Missing = b'm',
    /// A directory opened for listing.
    Listed = b'l',
    /// Opened for writing, created, truncated, renamed to, linked to.
    Written = b'w',
    /// Unlinked, removed, renamed from.
    Deleted = b'd',
    /// The trace may miss accesses; the text says why.
    Incomplete = b'!',
    /// The supervisor started the command; the text is its mode.
    Begin = b'b',
    /// The supervisor saw the task to its end; no text.
    End = b'e',
}

impl RecordKind {
    /// Every kind, in the order `trace.h` defines them.
    pub const ALL: [Self; 10] = [
        Self::Read,
        Self::Exec,
        Self::Found,
        Self::Missing,
        Self::Listed,
        Self::Written,
        Self::Deleted,
        Self::Incomplete,
        Self::Begin,
        Self::End,
    ];

    /// The kind byte a record starts with.
    pub fn byte(self) -> u8 {
        self as u8
    }

    /// The kind a record's first byte names, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.byte() == byte)
    }
}

/// The variable naming the trace file, in a traced task's env.
pub const ENV_TRACE: &str = "RUNNER_AWARE_TRACE";

/// The variable naming the preload library, which the supervisor puts first
/// in `LD_PRELOAD` for the command (and only for it: a shell or wrapper the
/// runner starts the supervisor through is not part of the task).
pub const ENV_TRACE_PRELOAD: &str = "RUNNER_AWARE_TRACE_PRELOAD";

/// Set to `1` by the supervisor for the command it starts once its seccomp
/// filter is installed; its absence in a preloaded process means nothing sees
/// what the preload library cannot (static programs, raw system calls).
pub const ENV_TRACE_SUPERVISED: &str = "RUNNER_AWARE_TRACE_SUPERVISED";

/// Where the preload library maps the page it makes its own system calls
/// from; the supervisor's filter lets file system calls made from this page
/// through in preload mode. Below 2^39, so it exists on every arm64
/// address-space size, and far from where Linux puts executables, heaps and
/// mmap regions.
pub const TRAMPOLINE_ADDR: u64 = 0x5e_5e00_0000;

/// The size of the preload library's trampoline page.
pub const TRAMPOLINE_SIZE: u64 = 4096;

/// A path a preload library that cannot write its records looks up through
/// libc, where the supervisor's filter sees it: the supervisor then marks the
/// trace incomplete. It can never exist (`/dev/null` is no directory).
pub const LOST_PATH: &str = "/dev/null/runner-aware-trace-lost";

/// The longest path a record carries, the kind byte and NUL not included.
pub const PATH_MAX: usize = 4096;

/// openat2's resolve flag that makes a path relative to its descriptor as
/// the root (`RESOLVE_IN_ROOT`, `<linux/openat2.h>`).
pub const RESOLVE_IN_ROOT: u64 = 0x10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_byte() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::from_byte(kind.byte()), Some(kind));
        }
        assert_eq!(RecordKind::from_byte(b'?'), None);
        assert_eq!(RecordKind::from_byte(0), None);
    }
}
