//! The trace file's records, as `src-rs/tracer/trace.h` defines them: one kind
//! byte, the path in UTF-8 (or, for an incomplete record, a sentence), a NUL.
//! Every record is one `WriteFile` on a handle opened to append only, so the
//! records of concurrent processes interleave whole.

use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use windows_sys::Win32::Foundation::{HANDLE, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, WriteFile, FILE_APPEND_DATA, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    OPEN_EXISTING,
};

use runner_aware::trace_format::RecordKind;

// The record kinds, as `runner_aware::trace_format` (the one definition the
// Linux supervisor and the trace parser use too) has them.
/// Opened for reading, or a module loaded.
pub const READ: u8 = RecordKind::Read as u8;
/// Executed: a process created from this image.
pub const EXEC: u8 = RecordKind::Exec as u8;
/// Looked up and there.
pub const FOUND: u8 = RecordKind::Found as u8;
/// Looked up or opened and not there.
pub const MISSING: u8 = RecordKind::Missing as u8;
/// A directory listed.
pub const LISTED: u8 = RecordKind::Listed as u8;
/// Opened for writing, created, truncated, renamed to, linked to.
pub const WRITTEN: u8 = RecordKind::Written as u8;
/// Deleted or renamed away.
pub const DELETED: u8 = RecordKind::Deleted as u8;
/// The trace may miss accesses; the text says why.
pub const INCOMPLETE: u8 = RecordKind::Incomplete as u8;
/// The launcher started the command; the text is the mode.
pub const BEGIN: u8 = RecordKind::Begin as u8;
/// The launcher saw the task to its end.
pub const END: u8 = RecordKind::End as u8;

/// Longest path a record carries, in UTF-8 bytes (as on Linux).
const PATH_MAX: usize = runner_aware::trace_format::PATH_MAX;

static TRACE_FILE: AtomicUsize = AtomicUsize::new(0);

/// Hashes of the (kind, path) pairs this process already wrote: a program
/// stats the same file thousands of times.
static SEEN: [AtomicU64; 1 << 16] = [const { AtomicU64::new(0) }; 1 << 16];

/// Opens the trace file `path` (no NUL) for appending. False if it cannot.
pub fn open(path: &[u16]) -> bool {
    let mut name = path.to_vec();
    name.push(0);
    // SAFETY: a NUL-terminated name; the handle is kept for the process's life.
    let handle = unsafe {
        CreateFileW(
            name.as_ptr(),
            FILE_APPEND_DATA,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            ptr::null(),
            OPEN_EXISTING,
            0,
            ptr::null_mut(),
        )
    };
    if handle == INVALID_HANDLE_VALUE {
        return false;
    }
    TRACE_FILE.store(handle as usize, Ordering::Release);
    true
}

fn first_time(kind: u8, text: &[u8]) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(kind);
    for &byte in text {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let hash = hash | 1;
    for probe in 0..8 {
        let slot = &SEEN[(hash as usize).wrapping_add(probe) & (SEEN.len() - 1)];
        match slot.compare_exchange(0, hash, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(seen) if seen == hash => return false,
            Err(_) => {}
        }
    }
    true
}

/// The bytes of one record: `kind`, `text`, a NUL.
pub fn encoded(kind: u8, text: &str) -> Vec<u8> {
    let mut record = Vec::with_capacity(text.len() + 2);
    record.push(kind);
    record.extend_from_slice(text.as_bytes());
    record.push(0);
    record
}

/// Writes one record of `kind` with `text`, unless this process already did.
pub fn write(kind: u8, text: &str) {
    let handle = TRACE_FILE.load(Ordering::Acquire) as HANDLE;
    if handle.is_null() || !first_time(kind, text.as_bytes()) {
        return;
    }
    let record = encoded(kind, text);
    let mut written = 0;
    // SAFETY: an append-only handle this module opened; the buffer outlives
    // the synchronous call.
    unsafe {
        WriteFile(
            handle,
            record.as_ptr(),
            record.len() as u32,
            &mut written,
            ptr::null_mut(),
        );
    }
}

/// Writes a record of `kind` for the Windows path `path` (UTF-16, no NUL).
pub fn path(kind: u8, path: &[u16]) {
    match String::from_utf16(path) {
        Ok(text) if text.len() <= PATH_MAX => write(kind, &text),
        Ok(text) => write(
            INCOMPLETE,
            &format!(
                "a path longer than {PATH_MAX} bytes was accessed ({}…)",
                text.chars().take(200).collect::<String>()
            ),
        ),
        Err(_) => write(
            INCOMPLETE,
            &format!(
                "a path that is not valid UTF-16 was accessed ({})",
                String::from_utf16_lossy(path)
            ),
        ),
    }
}
