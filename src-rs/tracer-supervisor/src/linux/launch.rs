//! Starting the command: its environment, and a child that installs the
//! filter, hands the supervisor its listener and executes the command.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use libc::{pid_t, sigset_t, sock_filter};
use runner_aware::trace_format::{ENV_TRACE_PRELOAD, ENV_TRACE_SUPERVISED};

use super::cli::Mode;
use super::{describe, seccomp};

/// Sets what the command's environment needs: that it is supervised, the
/// preload library first in `LD_PRELOAD` (preload mode), and no io_uring in
/// libuv, which would do file I/O no system call shows.
pub fn prepare_env(mode: Mode) {
    std::env::set_var(ENV_TRACE_SUPERVISED, "1");
    let library =
        std::env::var_os(ENV_TRACE_PRELOAD).filter(|lib| lib.as_bytes().starts_with(b"/"));
    if let (Mode::Preload, Some(library)) = (mode, library) {
        match std::env::var_os("LD_PRELOAD").filter(|theirs| !theirs.is_empty()) {
            None => std::env::set_var("LD_PRELOAD", &library),
            Some(theirs) if !contains(theirs.as_bytes(), library.as_bytes()) => {
                let mut both = library;
                both.push(":");
                both.push(&theirs);
                std::env::set_var("LD_PRELOAD", both);
            }
            Some(_) => {}
        }
    }
    std::env::set_var("UV_USE_IO_URING", "0");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The command running, and the listener of its filter or why it has none.
pub struct Started {
    /// The command's process.
    pub child: pid_t,
    /// The filter's listener, or why the command runs unfiltered.
    pub listener: Result<OwnedFd, String>,
}

/// Starts `command` under `filter`. `old_mask` is the signal mask the
/// command gets (the supervisor blocks the ones it reads from a signalfd).
pub fn start(
    command: &[OsString],
    filter: &[sock_filter],
    old_mask: &sigset_t,
) -> io::Result<Started> {
    if command.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // Everything the child needs is made before it exists: it only makes
    // system calls and, when the command cannot run, prints why.
    let argv: Vec<CString> = command
        .iter()
        .map(|arg| CString::new(arg.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let (reader, writer) = pipe()?;

    // The child shares our descriptor table until it has installed the
    // filter, so the listener it creates is ours too; then it takes a copy
    // of the table of its own and closes the listener there. Where the
    // table cannot be shared (qemu-user refuses the flag), a plain fork runs
    // the command with no filter, and the trace says it is incomplete.
    let flags = (libc::CLONE_FILES | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: a clone without CLONE_VM is a fork: the child has a copy of
    // the address space. The supervisor has one thread, so no lock in that
    // copy is held by a thread that does not exist there.
    let mut child =
        unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    let clone_error = io::Error::last_os_error();
    let shared = child >= 0;
    if !shared {
        // SAFETY: as above; a fork of a process with one thread.
        child = libc::c_long::from(unsafe { libc::fork() });
    }
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        run_child(
            &argv,
            &argv_ptrs,
            filter,
            shared,
            &clone_error,
            &writer,
            old_mask,
        );
    }
    // The write end stays open until the child has written: in the shared
    // table, closing it here would close the child's too.
    let mut result = [0u8; 4];
    // SAFETY: reads at most 4 bytes into `result`.
    let read = unsafe { libc::read(reader.as_raw_fd(), result.as_mut_ptr().cast(), result.len()) };
    drop((reader, writer));
    let result = if read == 4 {
        i32::from_ne_bytes(result)
    } else {
        -libc::EIO
    };
    let listener = if result >= 0 {
        // SAFETY: the child created this descriptor in the table it shared
        // with us, and nothing else owns it here.
        Ok(unsafe { OwnedFd::from_raw_fd(result) })
    } else {
        let err = describe(&io::Error::from_raw_os_error(-result));
        Err(if shared {
            format!("seccomp user notification is unavailable ({err}), so static programs and raw system calls were not seen")
        } else {
            format!(
                "the supervisor could not start the command under its filter (clone with CLONE_FILES: {}), so static programs and raw system calls were not seen",
                describe(&clone_error)
            )
        })
    };
    Ok(Started {
        child: child as pid_t,
        listener,
    })
}

/// The child: installs the filter (when it shares the supervisor's
/// descriptor table), tells the supervisor the listener's number or the
/// error, and executes the command. Never returns.
fn run_child(
    argv: &[CString],
    argv_ptrs: &[*const libc::c_char],
    filter: &[sock_filter],
    shared: bool,
    clone_error: &io::Error,
    writer: &OwnedFd,
    old_mask: &sigset_t,
) -> ! {
    let mut listener: Option<RawFd> = None;
    let result = if shared {
        let result = match seccomp::install(filter) {
            Ok(fd) => {
                listener = Some(fd);
                fd
            }
            Err(err) => -err.raw_os_error().unwrap_or(libc::EINVAL),
        };
        // SAFETY: unshare takes plain flags.
        if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
            exit_child(127);
        }
        result
    } else {
        -clone_error.raw_os_error().unwrap_or(libc::EINVAL)
    };
    let bytes = result.to_ne_bytes();
    // SAFETY: writes the 4 bytes of `bytes`.
    if unsafe { libc::write(writer.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) } != 4 {
        exit_child(127);
    }
    match listener {
        // SAFETY: our copy of the listener, in the table of our own now.
        Some(fd) => unsafe {
            libc::close(fd);
        },
        None => std::env::remove_var(ENV_TRACE_SUPERVISED),
    }
    // SAFETY: restores the mask the supervisor started with; `argv_ptrs`
    // is a null-terminated array of the C strings in `argv`, which live on.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, old_mask, std::ptr::null_mut());
        libc::execvp(argv_ptrs[0], argv_ptrs.as_ptr());
    }
    let err = io::Error::last_os_error();
    let program = String::from_utf8_lossy(argv[0].as_bytes());
    if err.raw_os_error() == Some(libc::ENOENT) && !program.contains('/') {
        super::say(&format!("cannot run {program}: not found on PATH"));
    } else {
        super::say(&format!("cannot run {program}: {}", describe(&err)));
    }
    exit_child(if err.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    });
}

/// Ends the child at once: nothing of the supervisor's (buffers, exit
/// handlers) is the child's to run.
fn exit_child(code: i32) -> ! {
    // SAFETY: _exit ends the process; it takes a plain status.
    unsafe { libc::_exit(code) }
}

/// A pipe, both ends closed on exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
