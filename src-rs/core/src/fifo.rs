//! The named-FIFO transport, for where Unix sockets are denied (the seccomp
//! filters of coding-agent sandboxes deny `socket(AF_UNIX)` or
//! `bind`/`connect`; none touches `mkfifo`, `open`, `read` or `write`).
//!
//! In the server's private directory (born 0700) a rendezvous FIFO, `r`, is
//! read by the server. A client:
//! 1. creates a pair of FIFOs `c-<id>.up` (client → server) and `c-<id>.down`
//!    (server → client), mode 0600 passed to `mkfifo` (which fails on an
//!    existing name), with a fresh random id;
//! 2. opens `down` for reading (non-blocking: it succeeds with no writer);
//! 3. writes the line `<id>\n` to `r` — one `write` of at most 34 bytes,
//!    under `PIPE_BUF`, so announcements of concurrent clients never
//!    interleave; `ENXIO` opening `r` means no server reads it (gone);
//!    `EAGAIN` (the rendezvous is full) is retried within the timeout;
//! 4. opens `up` for writing, retrying `ENXIO` until the server has opened
//!    its read end, within the timeout.
//!
//! The server, for each announced id, opens `down` for writing, then `up`
//! for reading (refusing either unless it is a FIFO, not a link, owned by
//! the server's user with no bits for group or others), and serves the pair
//! like a socket (the client unlinks both names once it holds its ends): the
//! same frames, handshake and token. A client that exits closes `up`, which
//! the server reads as end of stream after every byte it wrote; one that exits
//! before it opened `up` closes `down`, which the server's write end sees as
//! an error (Linux), and that is the end of the stream too.

#[cfg(feature = "server")]
mod listener;

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(feature = "server")]
pub use listener::{FifoConnection, FifoListener};

/// The rendezvous FIFO's name in the server's directory.
pub const RENDEZVOUS: &str = "r";

/// Bytes of a client id in hex.
const ID_LEN: usize = 32;

/// Creates a FIFO at `path` with `mode`.
fn mkfifo(path: &Path, mode: libc::mode_t) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::mkfifo(path.as_ptr(), mode) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens `path` with `flags` (plus `O_CLOEXEC`, `O_NONBLOCK`, and
/// `O_NOFOLLOW`: nothing in the private directory is a link).
fn open(path: &Path, flags: libc::c_int) -> io::Result<File> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    let flags = flags | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOFOLLOW;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}
fn fifo_paths(dir: &Path, id: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("c-{id}.up")),
        dir.join(format!("c-{id}.down")),
    )
}
/// A tool's pair of FIFOs: blocking-style reads and writes, each bounded by
/// the timeout through `poll`.
#[derive(Debug)]
pub struct FifoStream {
    up: File,
    down: File,
    timeout: Option<Duration>,
}

/// A fresh random client id.
fn client_id() -> io::Result<String> {
    let mut bytes = [0u8; ID_LEN / 2];
    getrandom::fill(&mut bytes).map_err(|err| io::Error::other(err.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Connects to the server whose private directory is `dir`, within
/// `timeout` (`None`: no limit).
pub fn connect(dir: &Path, timeout: Option<Duration>) -> io::Result<FifoStream> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let id = client_id()?;
    let (up_path, down_path) = fifo_paths(dir, &id);
    mkfifo(&up_path, 0o600)?;
    let cleanup = || {
        let _ = std::fs::remove_file(&up_path);
        let _ = std::fs::remove_file(&down_path);
    };
    let result = (|| {
        mkfifo(&down_path, 0o600)?;
        let down = open(&down_path, libc::O_RDONLY)?;
        // ENXIO: nobody reads the rendezvous, the server is gone.
        let mut rendezvous = open(&dir.join(RENDEZVOUS), libc::O_WRONLY)?;
        let announcement = format!("{id}\n");
        // Under PIPE_BUF, a write is whole or fails with EAGAIN: a rendezvous
        // full of announcements the runner has not read yet (thousands of
        // clients at once, or a stopped runner) is waited out within the
        // timeout, as a socket's full listen backlog is.
        let mut backoff = Duration::from_micros(50);
        loop {
            match rendezvous.write(announcement.as_bytes()) {
                Ok(written) if written == announcement.len() => break,
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the announcement was cut short",
                    ))
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the runner's rendezvous stayed full until the timeout",
                ));
            }
            let mut pause = backoff;
            if let Some(deadline) = deadline {
                pause = pause.min(deadline - now);
            }
            std::thread::sleep(pause);
            backoff = (backoff * 2).min(Duration::from_millis(20));
        }
        drop(rendezvous);
        let mut backoff = Duration::from_micros(50);
        let mut tries = 0u32;
        let up = loop {
            match open(&up_path, libc::O_WRONLY) {
                Ok(up) => break up,
                Err(err) if err.raw_os_error() == Some(libc::ENXIO) => {}
                Err(err) => return Err(err),
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the runner did not open this client's FIFOs in time",
                ));
            }
            // The server opens the pair microseconds after it reads the
            // announcement: yielding first lets it run (on a shared CPU, a
            // sleep's timer slack would cost more than the wait itself).
            tries += 1;
            if tries <= 64 {
                std::thread::yield_now();
                continue;
            }
            // A runner that died after reading the announcement never opens
            // the pair: nobody reading the rendezvous any more says so.
            if tries.is_multiple_of(8) {
                open(&dir.join(RENDEZVOUS), libc::O_WRONLY)?;
            }
            let mut pause = backoff;
            if let Some(deadline) = deadline {
                pause = pause.min(deadline - now);
            }
            std::thread::sleep(pause);
            backoff = (backoff * 2).min(Duration::from_millis(20));
        };
        Ok(FifoStream { up, down, timeout })
    })();
    // Both ends are open (or the attempt failed): the names are not needed.
    cleanup();
    result
}

/// Waits until `fd` is ready for `events` or the timeout passes.
fn wait(fd: &File, events: libc::c_short, timeout: Option<Duration>) -> io::Result<()> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let millis = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Round up: a wait of 0.4 ms must not become a busy loop.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
            }
        };
        let mut pollfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
        match ready {
            // Readable, writable, or hung up: the next read or write says which.
            1.. => return Ok(()),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the runner did not respond in time",
                ))
            }
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
}

impl Read for FifoStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.down.read(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    wait(&self.down, libc::POLLIN, self.timeout)?;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl Write for FifoStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.up.write(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    wait(&self.up, libc::POLLOUT, self.timeout)?;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gone_server_is_noticed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        mkfifo(&dir.path().join(RENDEZVOUS), 0o600).unwrap();
        let started = Instant::now();
        let err = connect(dir.path(), Some(Duration::from_secs(5))).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENXIO));
        assert!(started.elapsed() < Duration::from_secs(1));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "the client's FIFOs are removed");
    }

    #[test]
    fn a_server_gone_after_the_announcement_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let rendezvous = dir.path().join(RENDEZVOUS);
        mkfifo(&rendezvous, 0o600).unwrap();
        // A "server" that reads the rendezvous, then is gone.
        let reader = open(&rendezvous, libc::O_RDONLY).unwrap();
        let path = dir.path().to_owned();
        let client = std::thread::spawn(move || {
            let started = Instant::now();
            let err = connect(&path, Some(Duration::from_secs(10))).unwrap_err();
            (err.raw_os_error(), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(reader);
        let (errno, waited) = client.join().unwrap();
        assert_eq!(errno, Some(libc::ENXIO));
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }
}
