//! Reading a traced process: the strings and structures its call points at,
//! and the directories its descriptors and working directory name in `/proc`.
//! Everything here comes from a process of the task and is treated as
//! hostile: any pointer, any length, any link target.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;

use runner_aware::trace_format::PATH_MAX;

use super::paths::proc_link;

/// Why nothing was read.
#[derive(Debug)]
pub enum Unread {
    /// There is no file the call could touch: a bad pointer (the call fails
    /// before it names a file), a name longer than the kernel takes, a
    /// descriptor that names no directory, or a caller that is gone (its call
    /// never runs).
    NoFile,
    /// The memory or link exists and could not be read: the trace misses a
    /// path.
    Unreadable(io::Error),
}

/// The tracer cannot name the path: the trace says it is incomplete.
pub const TOO_LONG: &str = "a path longer than the tracer records was accessed";

/// The task's memory, read with `process_vm_readv`, or through
/// `/proc/<pid>/mem` where a sandbox denies that call (Codex's does).
#[derive(Default)]
pub struct Memory {
    use_mem_file: bool,
}

impl Memory {
    /// Up to `out.len()` bytes at `addr` in `pid`; how many were read.
    pub fn read(&mut self, pid: libc::pid_t, addr: u64, out: &mut [u8]) -> Result<usize, Unread> {
        if !self.use_mem_file {
            let local = libc::iovec {
                iov_base: out.as_mut_ptr().cast(),
                iov_len: out.len(),
            };
            let remote = libc::iovec {
                iov_base: addr as usize as *mut libc::c_void,
                iov_len: out.len(),
            };
            // SAFETY: `local` is `out`, writable for its length; the kernel
            // checks `remote` against the other process's mappings.
            let read = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
            if read >= 0 {
                return outcome(Ok(read.unsigned_abs()));
            }
            let err = io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) {
                return outcome(Err(err));
            }
            self.use_mem_file = true;
        }
        let mem = match File::open(format!("/proc/{pid}/mem")) {
            Ok(mem) => mem,
            Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {
                return Err(Unread::NoFile)
            }
            Err(err) => return Err(Unread::Unreadable(err)),
        };
        outcome(mem.read_at(out, addr))
    }

    /// The NUL-terminated string at `addr` in `pid`, read page by page (a
    /// string may end just before an unmapped page), without its NUL. A
    /// string with no NUL in the kernel's `PATH_MAX` bytes is a name the
    /// kernel refuses (ENAMETOOLONG).
    pub fn read_string(&mut self, pid: libc::pid_t, addr: u64) -> Result<Vec<u8>, Unread> {
        const PAGE: u64 = 4096;
        let mut out = vec![0; PATH_MAX];
        let mut got = 0;
        while got < out.len() {
            let at = addr.checked_add(got as u64).ok_or(Unread::NoFile)?;
            let page_left = (PAGE - at % PAGE) as usize;
            let want = page_left.min(out.len() - got);
            let read = self.read(pid, at, &mut out[got..got + want])?;
            if let Some(nul) = out[got..got + read].iter().position(|&b| b == 0) {
                out.truncate(got + nul);
                return Ok(out);
            }
            got += read;
        }
        Err(Unread::NoFile)
    }
}

/// What a read's result means for the call that named the memory.
fn outcome(read: io::Result<usize>) -> Result<usize, Unread> {
    match read {
        Ok(0) => Err(Unread::NoFile),
        Ok(read) => Ok(read),
        Err(err)
            if matches!(
                err.raw_os_error(),
                Some(libc::EFAULT | libc::EIO | libc::ESRCH | libc::ENOENT)
            ) =>
        {
            Err(Unread::NoFile)
        }
        Err(err) => Err(Unread::Unreadable(err)),
    }
}

/// The target of the link at `path`.
fn read_link(path: &[u8]) -> io::Result<Vec<u8>> {
    Ok(std::fs::read_link(OsStr::from_bytes(path))?
        .into_os_string()
        .into_vec())
}

/// The directory `dirfd` names in `pid` (its working directory for
/// `AT_FDCWD`).
pub fn dir_of(pid: libc::pid_t, dirfd: i32) -> Result<Vec<u8>, Unread> {
    let link = if dirfd == libc::AT_FDCWD {
        format!("/proc/{pid}/cwd")
    } else {
        format!("/proc/{pid}/fd/{dirfd}")
    };
    match read_link(link.as_bytes()) {
        // A descriptor that is no directory (a pipe, a socket): the call
        // fails with ENOTDIR before it names a file.
        Ok(dir) if dir.first() == Some(&b'/') => Ok(dir),
        Ok(_) => Err(Unread::NoFile),
        // A process that is gone never makes the call, nor does one whose
        // descriptor is not open.
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {
            Err(Unread::NoFile)
        }
        Err(err) => Err(Unread::Unreadable(err)),
    }
}

/// `path` (absolute) rewritten when it goes through a cwd, root or
/// descriptor link of a process in `/proc`: the link's target, then the rest
/// (`self` is the caller `pid`). Left as it is (a pseudo-file) when the link
/// names no file: a pipe's descriptor, a process gone. `Err` when the result
/// is longer than a record holds.
pub fn through_proc_link(pid: libc::pid_t, path: Vec<u8>) -> Result<Vec<u8>, &'static str> {
    let Some((process_end, link_end)) = proc_link(&path) else {
        return Ok(path);
    };
    let link = if path[6].is_ascii_digit() {
        path[..link_end].to_vec()
    } else {
        let mut link = format!("/proc/{pid}").into_bytes();
        link.extend_from_slice(&path[process_end..link_end]);
        link
    };
    let mut target = match read_link(&link) {
        Ok(target) if target.first() == Some(&b'/') => target,
        _ => return Ok(path),
    };
    let rest = &path[link_end..];
    // The root is "/": the rest is already absolute.
    if target == b"/" && !rest.is_empty() {
        target.clear();
    }
    target.extend_from_slice(rest);
    if target.len() > PATH_MAX {
        return Err(TOO_LONG);
    }
    Ok(target)
}
