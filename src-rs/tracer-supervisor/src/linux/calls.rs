//! What each notified system call records: the paths it names, read from
//! the calling process while it waits, and what kind of access each is.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;

use libc::{c_long, pid_t, seccomp_notif};
use runner_aware::trace_format::{RecordKind, LOST_PATH, PATH_MAX, RESOLVE_IN_ROOT};

use super::describe;
use super::filter::{self, Call};
use super::paths::in_root;
use super::records::Recorder;
use super::tracee::{self, Memory, Unread, TOO_LONG};

/// A record a call makes, kept until the notification is known to be live.
pub struct Record {
    /// The record's kind.
    pub kind: RecordKind,
    /// Its path, or for [`RecordKind::Incomplete`] why.
    pub text: Vec<u8>,
}

/// The records the call `notif` is about makes. `recorder` says which
/// look-ups were recorded already, which need no second stat.
pub fn records_of(notif: &seccomp_notif, memory: &mut Memory, recorder: &Recorder) -> Vec<Record> {
    let mut call = Notified {
        pid: notif.pid as pid_t,
        memory,
        recorder,
        records: Vec::new(),
    };
    match filter::call_of(&notif.data) {
        Call::Native(nr) => call.handle(nr, &notif.data.args),
        Call::OtherAbi(arch) => call.incomplete(&format!(
            "a program made system calls of another architecture (audit arch {arch:#x}), which the tracer cannot read"
        )),
    }
    call.records
}

struct Notified<'a> {
    pid: pid_t,
    memory: &'a mut Memory,
    recorder: &'a Recorder,
    records: Vec<Record>,
}

/// The working directory, as a `dirfd` argument.
const CWD: u64 = libc::AT_FDCWD as u64;

impl Notified<'_> {
    fn handle(&mut self, nr: c_long, a: &[u64; 6]) {
        match nr {
            #[cfg(target_arch = "x86_64")]
            libc::SYS_open => {
                if let Some(path) = self.path_at(CWD, a[0]) {
                    self.open(path, a[1]);
                }
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_creat | libc::SYS_mkdir | libc::SYS_mknod => self.effect(RecordKind::Written, CWD, a[0]),
            libc::SYS_truncate => self.effect(RecordKind::Written, CWD, a[0]),
            libc::SYS_openat => {
                if let Some(path) = self.path_at(a[0], a[1]) {
                    self.open(path, a[2]);
                }
            }
            libc::SYS_openat2 => self.openat2(a),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_stat | libc::SYS_access | libc::SYS_readlink | libc::SYS_lstat => {
                if let Some(path) = self.path_at(CWD, a[0]) {
                    self.lookup(path, nr != libc::SYS_stat && nr != libc::SYS_access);
                }
            }
            libc::SYS_newfstatat => {
                if let Some(path) = self.path_at(a[0], a[1]) {
                    self.lookup(path, a[3] & libc::AT_SYMLINK_NOFOLLOW as u64 != 0);
                }
            }
            libc::SYS_statx => {
                if let Some(path) = self.path_at(a[0], a[1]) {
                    self.lookup(path, a[2] & libc::AT_SYMLINK_NOFOLLOW as u64 != 0);
                }
            }
            libc::SYS_faccessat | libc::SYS_faccessat2 | libc::SYS_readlinkat => {
                let Some(path) = self.path_at(a[0], a[1]) else {
                    return;
                };
                if path == LOST_PATH.as_bytes() {
                    let why = format!("process {} could not write its trace records", self.pid);
                    self.incomplete(&why);
                } else {
                    self.lookup(path, nr == libc::SYS_readlinkat);
                }
            }
            libc::SYS_name_to_handle_at => {
                if let Some(path) = self.path_at(a[0], a[1]) {
                    self.lookup(path, a[4] & libc::AT_SYMLINK_FOLLOW as u64 == 0);
                }
            }
            libc::SYS_execve => {
                if let Some(path) = self.path_at(CWD, a[0]) {
                    self.exec(path);
                }
            }
            libc::SYS_execveat => {
                if let Some(path) = self.path_at(a[0], a[1]) {
                    self.exec(path);
                }
            }
            libc::SYS_mkdirat | libc::SYS_mknodat => self.effect(RecordKind::Written, a[0], a[1]),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_rmdir | libc::SYS_unlink => self.effect(RecordKind::Deleted, CWD, a[0]),
            libc::SYS_unlinkat => self.effect(RecordKind::Deleted, a[0], a[1]),
            #[cfg(target_arch = "x86_64")]
            libc::SYS_rename => {
                self.effect(RecordKind::Deleted, CWD, a[0]);
                self.effect(RecordKind::Written, CWD, a[1]);
            }
            filter::SYS_RENAMEAT | libc::SYS_renameat2 => {
                self.effect(RecordKind::Deleted, a[0], a[1]);
                self.effect(RecordKind::Written, a[2], a[3]);
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_link => {
                if let Some(path) = self.path_at(CWD, a[0]) {
                    self.lookup(path, true);
                }
                self.effect(RecordKind::Written, CWD, a[1]);
            }
            libc::SYS_linkat => {
                if let Some(path) = self.path_at(a[0], a[1]) {
                    self.lookup(path, true);
                }
                self.effect(RecordKind::Written, a[2], a[3]);
            }
            #[cfg(target_arch = "x86_64")]
            libc::SYS_symlink => self.effect(RecordKind::Written, CWD, a[1]),
            libc::SYS_symlinkat => self.effect(RecordKind::Written, a[1], a[2]),
            libc::SYS_open_by_handle_at => {
                self.incomplete("a program opened a file by handle (open_by_handle_at), which names no path");
            }
            libc::SYS_chroot => self.incomplete(
                "a program changed its root directory (chroot), so the paths it names are not the ones the trace records",
            ),
            _ => {}
        }
    }

    /// openat2: its flags and resolve rules are in a `struct open_how` in
    /// the caller's memory.
    fn openat2(&mut self, a: &[u64; 6]) {
        // flags, mode, resolve: three u64s, which the call's size must cover.
        let mut how = [0u8; 24];
        let read = if a[3] >= how.len() as u64 {
            self.memory.read(self.pid, a[2], &mut how)
        } else {
            Err(Unread::NoFile)
        };
        let word = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&how[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(bytes)
        };
        // Flags not known: taken as a read and a write, the stronger record.
        let (flags, resolve) = match read {
            Ok(n) if n == how.len() => (word(0), word(2)),
            Ok(_) | Err(Unread::NoFile) => (libc::O_RDWR as u64, 0),
            Err(Unread::Unreadable(err)) => {
                self.unreadable("the flags of an openat2 call", &err);
                (libc::O_RDWR as u64, 0)
            }
        };
        if let Some(path) = self.resolve(a[0], a[1], resolve & RESOLVE_IN_ROOT != 0) {
            self.open(path, flags);
        }
    }

    /// The absolute path a (dirfd, path pointer) pair names, or `None` when
    /// it names none (a bad pointer, an empty path, a process gone).
    fn path_at(&mut self, dirfd: u64, addr: u64) -> Option<Vec<u8>> {
        self.resolve(dirfd, addr, false)
    }

    /// [`Self::path_at`]; `in_root`: the path is resolved with `dirfd` as
    /// its root (openat2's `RESOLVE_IN_ROOT`).
    fn resolve(&mut self, dirfd: u64, addr: u64, in_root_of_dirfd: bool) -> Option<Vec<u8>> {
        let name = match self.memory.read_string(self.pid, addr) {
            Ok(name) if !name.is_empty() => name,
            Ok(_) | Err(Unread::NoFile) => return None,
            Err(Unread::Unreadable(err)) => {
                self.unreadable("a path argument", &err);
                return None;
            }
        };
        let name = if in_root_of_dirfd {
            in_root(&name)
        } else {
            name
        };
        let path = if name[0] == b'/' {
            name
        } else {
            // The descriptor is the call's int argument: its low 32 bits.
            let mut dir = match tracee::dir_of(self.pid, dirfd as i32) {
                Ok(dir) => dir,
                Err(Unread::NoFile) => return None,
                Err(Unread::Unreadable(err)) => {
                    self.unreadable("the directory of a relative path", &err);
                    return None;
                }
            };
            if dir.len() > 1 {
                dir.push(b'/');
            }
            dir.extend_from_slice(&name);
            dir
        };
        if path.len() > PATH_MAX {
            self.incomplete(TOO_LONG);
            return None;
        }
        if !path.starts_with(b"/proc/") {
            return Some(path);
        }
        match tracee::through_proc_link(self.pid, path) {
            Ok(path) => Some(path),
            Err(why) => {
                self.incomplete(why);
                None
            }
        }
    }

    /// Says that a path could not be read: the trace is incomplete.
    fn unreadable(&mut self, what: &str, err: &io::Error) {
        let why = format!(
            "the supervisor could not read {what} of process {} ({})",
            self.pid,
            describe(err)
        );
        self.incomplete(&why);
    }

    fn incomplete(&mut self, why: &str) {
        self.record(RecordKind::Incomplete, why.as_bytes().to_vec());
    }

    fn record(&mut self, kind: RecordKind, text: Vec<u8>) {
        self.records.push(Record { kind, text });
    }

    /// A write or delete of the path `(dirfd, addr)` names, recorded before
    /// the call runs.
    fn effect(&mut self, kind: RecordKind, dirfd: u64, addr: u64) {
        if let Some(path) = self.path_at(dirfd, addr) {
            self.record(kind, path);
        }
    }

    /// What the path is now, before the call runs: the kind a look-up gets.
    /// A path never in the trace, or looked up before, is not stat'ed.
    fn lookup(&mut self, path: Vec<u8>, nofollow: bool) {
        if self.recorder.is_ignored(&path) || self.recorder.looked_up(&path) {
            return;
        }
        let file = OsStr::from_bytes(&path);
        let exists = if nofollow {
            fs::symlink_metadata(file)
        } else {
            fs::metadata(file)
        };
        let kind = match exists {
            Err(err) if is_missing(&err) => RecordKind::Missing,
            _ => RecordKind::Found,
        };
        self.record(kind, path);
    }

    /// An exec: a PATH search tries names that do not exist, which are
    /// look-ups.
    fn exec(&mut self, path: Vec<u8>) {
        if self.recorder.is_ignored(&path) {
            return;
        }
        let kind = match fs::metadata(OsStr::from_bytes(&path)) {
            Ok(_) => RecordKind::Exec,
            Err(err) if is_missing(&err) => RecordKind::Missing,
            Err(_) => RecordKind::Found,
        };
        self.record(kind, path);
    }

    /// An open with `flags`: a write when it may change the file, else a
    /// read of a file or a listing of a directory, as the path is now.
    fn open(&mut self, path: Vec<u8>, flags: u64) {
        if self.recorder.is_ignored(&path) {
            return;
        }
        let access = flags & libc::O_ACCMODE as u64;
        if access != libc::O_RDONLY as u64 || flags & (libc::O_CREAT | libc::O_TRUNC) as u64 != 0 {
            // O_TRUNC empties the file before anything can be read from it.
            if access == libc::O_RDWR as u64 && flags & libc::O_TRUNC as u64 == 0 {
                self.record(RecordKind::Read, path.clone());
            }
            self.record(RecordKind::Written, path);
            return;
        }
        if flags & libc::O_PATH as u64 != 0 {
            self.lookup(path, flags & libc::O_NOFOLLOW as u64 != 0);
            return;
        }
        let kind = match fs::metadata(OsStr::from_bytes(&path)) {
            Ok(meta) if meta.is_dir() => RecordKind::Listed,
            Ok(_) => RecordKind::Read,
            Err(err) if is_missing(&err) => RecordKind::Missing,
            Err(_) => RecordKind::Found,
        };
        self.record(kind, path);
    }
}

/// Whether a stat's error says the path does not exist.
fn is_missing(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
}
