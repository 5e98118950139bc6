//! The server side of the FIFO transport: the rendezvous a server reads
//! announcements from, and each client's pair of FIFOs as an async stream.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::unix::pipe;

use super::{fifo_paths, mkfifo, open, ID_LEN, RENDEZVOUS};
use crate::private;

/// Opens the FIFO at `path` with `flags` and checks it is ours and closed
/// to group and others: one planted by another user is refused.
fn open_private(path: &Path, flags: libc::c_int) -> io::Result<File> {
    let file = open(path, flags)?;
    private::check_file(&file, path, private::Kind::Fifo)?;
    Ok(file)
}

/// The server side: the rendezvous FIFO and the announcements read from it.
#[derive(Debug)]
pub struct FifoListener {
    dir: PathBuf,
    rendezvous: pipe::Receiver,
    /// A writer the server holds itself, so the rendezvous never reads as
    /// end of stream between clients.
    _keep_open: File,
    /// Bytes of an announcement not yet ended by a newline.
    partial: Vec<u8>,
}

impl FifoListener {
    /// Creates the rendezvous FIFO in `dir` and reads it. Call inside a
    /// runtime.
    pub fn bind(dir: &Path) -> io::Result<Self> {
        let path = dir.join(RENDEZVOUS);
        // Born 0600 (a umask only takes bits away), and checked once open.
        mkfifo(&path, 0o600)?;
        let rendezvous = pipe::Receiver::from_file(open_private(&path, libc::O_RDONLY)?)?;
        let keep_open = open(&path, libc::O_WRONLY)?;
        Ok(Self {
            dir: dir.to_owned(),
            rendezvous,
            _keep_open: keep_open,
            partial: Vec::new(),
        })
    }

    /// The next connection.
    pub async fn accept(&mut self) -> io::Result<FifoConnection> {
        loop {
            if let Some(connection) = self.next_announced() {
                return Ok(connection);
            }
            self.rendezvous.readable().await?;
            self.read_announcements()?;
        }
    }

    /// Every connection announced so far, read without waiting: what clients
    /// announced before a close must not be lost.
    pub fn take_queued(&mut self) -> Vec<FifoConnection> {
        let _ = self.read_announcements();
        std::iter::from_fn(|| self.next_announced()).collect()
    }

    /// Reads what the rendezvous holds into `partial`.
    fn read_announcements(&mut self) -> io::Result<()> {
        let mut buffer = [0u8; 4096];
        loop {
            match self.rendezvous.try_read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => self.partial.extend_from_slice(&buffer[..n]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Opens the pair of the first complete announcement that names a live
    /// client; malformed lines and clients gone already are skipped.
    fn next_announced(&mut self) -> Option<FifoConnection> {
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let id = &line[..line.len() - 1];
            if id.len() != ID_LEN || !id.iter().all(u8::is_ascii_hexdigit) {
                continue;
            }
            let id = String::from_utf8_lossy(id).into_owned();
            if let Ok(connection) = self.open_pair(&id) {
                return Some(connection);
            }
        }
        // A line longer than any announcement is garbage: drop it.
        if self.partial.len() > ID_LEN + 1 {
            self.partial.clear();
        }
        None
    }

    fn open_pair(&self, id: &str) -> io::Result<FifoConnection> {
        let (up, down) = fifo_paths(&self.dir, id);
        let result = (|| {
            // `down` first: the client opens `up` only once the server reads
            // it, and then reads `down` at once, where no writer yet would
            // read as end of stream. ENXIO here: the client no longer reads
            // its answers (it left). Each must be a FIFO of this user's with
            // no bits for group or others, as a tool makes them: another
            // user's would read the token and answer in the runner's place.
            let down = pipe::Sender::from_file(open_private(&down, libc::O_WRONLY)?)?;
            let up = pipe::Receiver::from_file(open_private(&up, libc::O_RDONLY)?)?;
            Ok(FifoConnection::new(up, down))
        })();
        // The client removes the names once it has opened both ends; a
        // client that is gone cannot.
        if result.is_err() {
            let _ = std::fs::remove_file(&up);
            let _ = std::fs::remove_file(&down);
        }
        result
    }
}

/// One client's pair of FIFOs on the server side.
#[derive(Debug)]
pub struct FifoConnection {
    up: pipe::Receiver,
    down: pipe::Sender,
    /// `down` again, registered for its error event only (Linux): the write
    /// end of a FIFO whose reader is gone reports `EPOLLERR`. A client gone
    /// between its announcement and opening `up` (killed, or given up at its
    /// timeout just as the runner opened the pair) leaves an `up` that never
    /// reports a hang-up, since no writer ever opened it: without this the
    /// connection stayed open until `close()` gave up on it.
    client_gone: Option<AsyncFd<OwnedFd>>,
}

impl FifoConnection {
    fn new(up: pipe::Receiver, down: pipe::Sender) -> Self {
        let client_gone = if cfg!(any(target_os = "linux", target_os = "android")) {
            // No watch (the old behaviour) when it cannot be set up.
            down.as_fd()
                .try_clone_to_owned()
                .and_then(watch_errors)
                .ok()
        } else {
            None
        };
        Self {
            up,
            down,
            client_gone,
        }
    }

    /// Whether the client no longer holds `down` open (it exited). Registers
    /// `cx` for that event.
    fn client_gone(&self, cx: &mut Context<'_>) -> bool {
        // The event arrives as write-closed readiness; it stays set.
        self.client_gone
            .as_ref()
            .is_some_and(|fd| fd.poll_write_ready(cx).is_ready())
    }
}

/// Registers `fd`, which the `AsyncFd` will own, for its error events.
/// tokio deprecated the safe constructor because a borrowed descriptor could
/// be closed under it; an `OwnedFd` stays open until the `AsyncFd` drops it,
/// so the call is sound here (as in `transport/listener.rs`).
#[allow(deprecated)]
fn watch_errors(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    AsyncFd::with_interest(fd, Interest::ERROR)
}

/// Reads `fd` once, without waiting: `Ok(false)` when it would block.
fn read_now(fd: &impl AsRawFd, buf: &mut ReadBuf<'_>) -> io::Result<bool> {
    let unfilled = buf.initialize_unfilled();
    loop {
        // SAFETY: `unfilled` is valid for writes of its length for the call.
        let n = unsafe { libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len()) };
        if n >= 0 {
            buf.advance(n as usize);
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => return Ok(false),
            _ => return Err(err),
        }
    }
}

impl AsyncRead for FifoConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = Pin::new(&mut this.up).poll_read(cx, buf);
        if read.is_pending() && this.client_gone(cx) {
            // Whatever `up` still holds, then the end of the stream (a read
            // with no writer left returns 0). Would block: something still
            // holds `up` open, and its readiness will wake this task.
            return match read_now(&this.up, buf) {
                Ok(true) => Poll::Ready(Ok(())),
                Ok(false) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err)),
            };
        }
        read
    }
}

impl AsyncWrite for FifoConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().down).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().down).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().down).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::fifo::connect;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn announced_clients_are_served_and_garbage_is_skipped() {
        let runtime = runtime();
        runtime.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};

            let dir = tempfile::tempdir().unwrap();
            let mut listener = FifoListener::bind(dir.path()).unwrap();
            // Garbage in the rendezvous (it is 0600 in a 0700 directory, but
            // the server must not trust what it reads).
            let mut raw = open(&dir.path().join(RENDEZVOUS), libc::O_WRONLY).unwrap();
            raw.write_all(b"not-an-id\nzz\n").unwrap();
            let path = dir.path().to_owned();
            let client = std::thread::spawn(move || {
                let mut stream = connect(&path, Some(Duration::from_secs(5))).unwrap();
                stream.write_all(b"ping").unwrap();
                let mut answer = [0u8; 4];
                stream.read_exact(&mut answer).unwrap();
                answer
            });
            let mut connection = listener.accept().await.unwrap();
            let mut request = [0u8; 4];
            connection.read_exact(&mut request).await.unwrap();
            assert_eq!(&request, b"ping");
            connection.write_all(b"pong").await.unwrap();
            assert_eq!(&client.join().unwrap(), b"pong");
            // The client exited: end of stream after everything it wrote.
            assert_eq!(connection.read(&mut request).await.unwrap(), 0);
            // Only the rendezvous is left in the directory.
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, [RENDEZVOUS]);
        });
    }

    /// FIFOs another user planted in the directory (possible only if it
    /// was ever open to others) must not become a connection: the planter
    /// would read the token and answer in the runner's place. Refused: a
    /// pair open to group and others, a pair whose `up` only is, a link to
    /// a FIFO elsewhere, and (as root) a pair owned by another user. The
    /// names of a refused pair are removed, and a real tool is still served.
    #[test]
    fn fifos_not_private_to_the_server_are_refused() {
        use std::os::unix::fs::PermissionsExt;

        let chmod = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let runtime = runtime();
        runtime.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};

            let dir = tempfile::tempdir().unwrap();
            let elsewhere = tempfile::tempdir().unwrap();
            let mut listener = FifoListener::bind(dir.path()).unwrap();
            let mut rendezvous = open(&dir.path().join(RENDEZVOUS), libc::O_WRONLY).unwrap();
            // SAFETY: geteuid has no preconditions.
            let root = unsafe { libc::geteuid() } == 0;
            let mut readers = Vec::new();
            for (n, how) in ["open", "up-open", "link", "owner"].into_iter().enumerate() {
                if how == "owner" && !root {
                    continue;
                }
                let id = format!("{n:02x}").repeat(ID_LEN / 2);
                let (up, down) = fifo_paths(dir.path(), &id);
                mkfifo(&up, 0o600).unwrap();
                match how {
                    "link" => {
                        let target = elsewhere.path().join("down");
                        mkfifo(&target, 0o600).unwrap();
                        std::os::unix::fs::symlink(&target, &down).unwrap();
                        readers.push(open(&target, libc::O_RDONLY).unwrap());
                    }
                    _ => {
                        mkfifo(&down, 0o600).unwrap();
                        readers.push(open(&down, libc::O_RDONLY).unwrap());
                    }
                }
                match how {
                    "open" => {
                        chmod(&up, 0o666);
                        chmod(&down, 0o666);
                    }
                    "up-open" => chmod(&up, 0o622),
                    "owner" => {
                        for path in [&up, &down] {
                            std::os::unix::fs::lchown(path, Some(65534), Some(65534)).unwrap();
                        }
                    }
                    _ => {}
                }
                rendezvous.write_all(format!("{id}\n").as_bytes()).unwrap();
            }
            let path = dir.path().to_owned();
            let client = std::thread::spawn(move || {
                let mut stream = connect(&path, Some(Duration::from_secs(5))).unwrap();
                stream.write_all(b"ping").unwrap();
            });
            // The first connection accepted is the real tool's.
            let mut connection = tokio::time::timeout(Duration::from_secs(5), listener.accept())
                .await
                .expect("a connection")
                .unwrap();
            let mut request = [0u8; 4];
            tokio::time::timeout(Duration::from_secs(5), connection.read_exact(&mut request))
                .await
                .expect("the first connection accepted is the tool's, not a planted one")
                .unwrap();
            assert_eq!(&request, b"ping");
            connection.shutdown().await.unwrap();
            client.join().unwrap();
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, [RENDEZVOUS], "the refused names are removed");
        });
    }

    #[test]
    fn a_client_gone_before_it_opened_up_ends_its_connection() {
        let runtime = runtime();
        runtime.block_on(async {
            use tokio::io::AsyncReadExt;

            let dir = tempfile::tempdir().unwrap();
            let mut listener = FifoListener::bind(dir.path()).unwrap();
            // A client that announces itself and is killed before it opens
            // `up`: the runner has opened the pair, but no writer ever
            // opened `up`, so reading it never reports a hang-up.
            let (up, down) = fifo_paths(dir.path(), &"ab".repeat(ID_LEN / 2));
            mkfifo(&up, 0o600).unwrap();
            mkfifo(&down, 0o600).unwrap();
            let reader = open(&down, libc::O_RDONLY).unwrap();
            let mut rendezvous = open(&dir.path().join(RENDEZVOUS), libc::O_WRONLY).unwrap();
            rendezvous
                .write_all(format!("{}\n", "ab".repeat(ID_LEN / 2)).as_bytes())
                .unwrap();
            let mut connection = listener.accept().await.unwrap();
            drop(reader);
            let read =
                tokio::time::timeout(Duration::from_secs(3), connection.read(&mut [0u8; 16])).await;
            assert_eq!(read.expect("the connection ends").unwrap(), 0);
        });
    }

    #[test]
    fn an_announcement_waits_while_the_rendezvous_is_full() {
        let runtime = runtime();
        let dir = tempfile::tempdir().unwrap();
        let mut listener = runtime
            .block_on(async { FifoListener::bind(dir.path()) })
            .unwrap();
        // A runner too busy to read its rendezvous (thousands of clients
        // announced at once): the pipe is full, and a write fails with
        // EAGAIN. Empty lines, which the server skips.
        let mut filler = open(&dir.path().join(RENDEZVOUS), libc::O_WRONLY).unwrap();
        let mut filled = 0;
        loop {
            match filler.write(&[b'\n'; 4096]) {
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => panic!("{err}"),
            }
        }
        assert!(filled >= 4096);
        let path = dir.path().to_owned();
        let client = std::thread::spawn(move || {
            let mut stream = connect(&path, Some(Duration::from_secs(5)))?;
            stream.write_all(b"ping")
        });
        // The runner gets to its rendezvous a little later.
        std::thread::sleep(Duration::from_millis(200));
        runtime.block_on(async {
            use tokio::io::AsyncReadExt;

            let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
            let mut connection = accepted.expect("the client announced itself").unwrap();
            let mut request = [0u8; 4];
            connection.read_exact(&mut request).await.unwrap();
            assert_eq!(&request, b"ping");
        });
        client.join().unwrap().unwrap();
    }

    #[test]
    fn a_stalled_server_times_out_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let runtime = runtime();
        let mut listener = runtime
            .block_on(async { FifoListener::bind(&path) })
            .unwrap();
        let client = std::thread::spawn(move || {
            let mut stream = connect(&path, Some(Duration::from_millis(300))).unwrap();
            let started = Instant::now();
            let err = stream.read(&mut [0u8; 4]).unwrap_err();
            (err.kind(), started.elapsed())
        });
        let _connection = runtime.block_on(listener.accept()).unwrap();
        let (kind, waited) = client.join().unwrap();
        assert_eq!(kind, io::ErrorKind::TimedOut);
        assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(3));
    }
}
