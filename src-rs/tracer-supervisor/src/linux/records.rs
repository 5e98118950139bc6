//! The supervisor's side of the trace file: records deduplicated, buffered
//! for one notification and written before its call continues.
//!
//! The records of one notification reach the file before the supervisor lets
//! the call continue: the preload library in the task's other processes
//! writes its records at once, and the order of records in the file is the
//! order the accesses happened across every process (a static program
//! reading a file that a later Node step rewrites is a modified input, and
//! the reverse is not). Records are deduplicated first, so the file is
//! written to once per new path, not per call. If the supervisor itself is
//! killed, the run ends with that signal, which no runner caches.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

use runner_aware::trace_format::{RecordKind, PATH_MAX};

use super::tracee::TOO_LONG;

/// Records buffered before a write; a notification's records are far fewer.
const BUFFER: usize = 1 << 16;

/// The trace file, as the supervisor appends to it.
pub struct Recorder {
    file: File,
    trace_file: Vec<u8>,
    pending: Vec<u8>,
    seen: Dedupe,
    failed: bool,
}

impl Recorder {
    /// Opens the trace file `path` (which exists) for appending.
    pub fn open(path: &OsStr) -> io::Result<Self> {
        Ok(Self {
            file: OpenOptions::new().append(true).open(path)?,
            trace_file: path.as_bytes().to_vec(),
            pending: Vec::with_capacity(BUFFER),
            seen: Dedupe::new(),
            failed: false,
        })
    }

    /// Appends a record to the buffer, whatever came before. A text longer
    /// than a record holds is no path the trace can name: the record says
    /// so instead.
    pub fn write(&mut self, kind: RecordKind, text: &[u8]) {
        let (kind, text) = if text.len() > PATH_MAX {
            (RecordKind::Incomplete, TOO_LONG.as_bytes())
        } else {
            (kind, text)
        };
        if self.pending.len() + text.len() + 2 > BUFFER {
            self.flush();
        }
        self.pending.push(kind.byte());
        self.pending.extend_from_slice(text);
        self.pending.push(0);
    }

    /// Records that the trace may miss accesses, and why.
    pub fn incomplete(&mut self, why: &str) {
        self.record(RecordKind::Incomplete, why.as_bytes());
    }

    /// Records `(kind, path)` unless it was recorded before or the path is
    /// never in a trace.
    pub fn record(&mut self, kind: RecordKind, path: &[u8]) {
        if self.is_ignored(path) || self.seen.insert(kind, path) {
            return;
        }
        self.write(kind, path);
    }

    /// Whether `path` was recorded as looked up already: the first look-up
    /// is the one the trace keeps, and needs no second stat.
    pub fn looked_up(&self, path: &[u8]) -> bool {
        self.seen.contains(RecordKind::Found, path) || self.seen.contains(RecordKind::Missing, path)
    }

    /// Pseudo-filesystems and the trace file itself: never in the trace.
    pub fn is_ignored(&self, path: &[u8]) -> bool {
        ["/proc", "/sys", "/dev"]
            .iter()
            .any(|dir| is_under(path, dir.as_bytes()))
            || path == self.trace_file
    }

    /// Writes the buffered records. A write that fails is remembered: the
    /// supervisor then fails the run rather than let it look whole.
    pub fn flush(&mut self) {
        if !self.pending.is_empty() && self.file.write_all(&self.pending).is_err() {
            self.failed = true;
        }
        self.pending.clear();
    }

    /// Whether a write of the trace file failed.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

/// Whether `path` is `dir` or beneath it.
fn is_under(path: &[u8], dir: &[u8]) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
}

/// Each (kind, path) recorded, as the preload library keeps them: an open
/// addressing table of 64-bit FNV-1a hashes. A full neighbourhood records
/// again, which the trace's reader deduplicates.
struct Dedupe {
    slots: Box<[u64]>,
}

impl Dedupe {
    const SLOTS: usize = 1 << 16;
    const PROBES: usize = 64;

    fn new() -> Self {
        Self {
            slots: vec![0; Self::SLOTS].into_boxed_slice(),
        }
    }

    fn hash(kind: RecordKind, path: &[u8]) -> u64 {
        const PRIME: u64 = 0x0100_0000_01b3;
        let start = (0xcbf2_9ce4_8422_2325 ^ u64::from(kind.byte())).wrapping_mul(PRIME);
        let hash = path
            .iter()
            .fold(start, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME));
        // 0 marks an empty slot.
        hash.max(1)
    }

    /// Where `hash` is or would go: `Ok` when it is in the table, `Err` with
    /// the free slot it would take (none when its neighbourhood is full).
    fn probe(&self, hash: u64) -> Result<(), Option<usize>> {
        for probe in 0..Self::PROBES {
            let slot = (hash as usize).wrapping_add(probe) % Self::SLOTS;
            match self.slots[slot] {
                0 => return Err(Some(slot)),
                taken if taken == hash => return Ok(()),
                _ => {}
            }
        }
        Err(None)
    }

    /// Whether `(kind, path)` is in the table.
    fn contains(&self, kind: RecordKind, path: &[u8]) -> bool {
        self.probe(Self::hash(kind, path)).is_ok()
    }

    /// Whether `(kind, path)` was in the table; it is now.
    fn insert(&mut self, kind: RecordKind, path: &[u8]) -> bool {
        let hash = Self::hash(kind, path);
        match self.probe(hash) {
            Ok(()) => true,
            Err(free) => {
                if let Some(slot) = free {
                    self.slots[slot] = hash;
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_recorded_once_per_kind_and_pseudo_files_never() {
        let dir =
            std::env::temp_dir().join(format!("runner-aware-trace-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("trace");
        std::fs::write(&file, "").unwrap();
        let mut recorder = Recorder::open(file.as_os_str()).unwrap();
        recorder.record(RecordKind::Read, b"/a");
        recorder.record(RecordKind::Read, b"/a");
        recorder.record(RecordKind::Written, b"/a");
        recorder.record(RecordKind::Read, b"/proc/self/status");
        recorder.record(RecordKind::Read, b"/dev");
        recorder.record(RecordKind::Read, b"/device");
        recorder.record(RecordKind::Read, file.as_os_str().as_bytes());
        assert!(!recorder.looked_up(b"/a"));
        recorder.record(RecordKind::Missing, b"/b");
        assert!(recorder.looked_up(b"/b"));
        recorder.write(RecordKind::Read, &vec![b'x'; PATH_MAX + 1]);
        recorder.flush();
        let written = std::fs::read(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let expected = format!("r/a\0w/a\0r/device\0m/b\0!{TOO_LONG}\0");
        assert_eq!(String::from_utf8_lossy(&written), expected);
        assert!(!recorder.failed());
    }
}
