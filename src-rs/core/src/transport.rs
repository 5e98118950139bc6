//! The server's listening endpoint, per platform.
//!
//! Unix: a Unix domain socket in a fresh directory of mode 0700, removed with
//! the directory. Windows: a named pipe with a random name. Either way the
//! address travels to tools in the environment, never as an inherited handle,
//! and the per-server token guards what a connection may see.

use std::io;
use std::path::PathBuf;

/// Why an endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The private socket directory could not be created.
    #[error("cannot create the socket directory under {dir}: {source}")]
    SocketDir {
        /// The directory it was to be created in.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The socket or pipe could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The socket path or pipe name.
        address: String,
        /// What the OS said.
        source: io::Error,
    },
}

/// A marker a tool left because it could not deliver something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostMarker {
    /// The tool's process.
    pub pid: Option<u32>,
    /// What it gave up on.
    pub reason: String,
}

/// Largest marker read; a marker is a short JSON object.
#[cfg(unix)]
const MAX_MARKER: u64 = 4096;

/// Reads every marker in `dir` (see docs/protocol.md). A marker that does not
/// parse still counts: something was lost.
#[cfg(unix)]
pub fn read_markers(dir: &std::path::Path) -> Vec<LostMarker> {
    use std::io::Read;

    #[derive(serde::Deserialize)]
    struct Body {
        pid: Option<u32>,
        reason: Option<String>,
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut markers: Vec<LostMarker> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(crate::protocol::LOST_MARKER_PREFIX))
        })
        .map(|entry| {
            let mut text = String::new();
            let _ = std::fs::File::open(entry.path())
                .and_then(|file| file.take(MAX_MARKER).read_to_string(&mut text));
            match serde_json::from_str::<Body>(&text) {
                Ok(body) => LostMarker {
                    pid: body.pid,
                    reason: body.reason.unwrap_or_else(|| "no reason given".to_owned()),
                },
                Err(_) => LostMarker {
                    pid: None,
                    reason: format!(
                        "an unreadable marker {}",
                        entry.file_name().to_string_lossy()
                    ),
                },
            }
        })
        .collect();
    markers.sort_by(|a, b| (&a.reason, a.pid).cmp(&(&b.reason, b.pid)));
    markers
}

#[cfg(unix)]
pub use unix::{connect, ClientStream, Connection, Listener};
#[cfg(windows)]
pub use windows::{connect, ClientStream, Connection, Listener};

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use std::io::{self, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};
    use std::time::{Duration, Instant};

    use socket2::{Domain, SockAddr, Socket, Type};

    use std::os::fd::AsFd;

    use tokio::io::unix::AsyncFd;
    use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
    use tokio::net::UnixListener;

    use super::EndpointError;

    /// Unix socket paths longer than this do not fit in `sockaddr_un`
    /// (`sun_path` is 108 bytes on Linux, 104 on macOS and the BSDs, with
    /// room for the terminating NUL).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub const MAX_SOCKET_PATH: usize = 107;
    /// Unix socket paths longer than this do not fit in `sockaddr_un`
    /// (`sun_path` is 108 bytes on Linux, 104 on macOS and the BSDs, with
    /// room for the terminating NUL).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub const MAX_SOCKET_PATH: usize = 103;

    /// A tool's connection to its runner: a blocking socket whose reads and
    /// writes time out.
    pub type ClientStream = UnixStream;

    /// Connects to the socket at `path` within `timeout` (`None`: no limit),
    /// and sets the same timeout on every later read and write.
    ///
    /// A runner whose listen backlog is full makes a non-blocking connect
    /// fail with `EAGAIN` (Linux) or `ECONNREFUSED` (macOS) at once; a tool
    /// must not go silently offline for that, so such a connect is retried
    /// with backoff until the timeout. A blocking connect on Linux waits
    /// for room in the backlog by itself, bounded by the send timeout.
    pub fn connect(path: &str, timeout: Option<Duration>) -> io::Result<UnixStream> {
        let address = SockAddr::unix(path)?;
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        // A dead runner leaves its socket behind, refusing connections: on
        // macOS, where a full backlog refuses too, that is retried only
        // briefly, so a tool of a dead runner does not wait the whole timeout.
        let refused_until = Instant::now() + Duration::from_secs(1);
        let mut backoff = Duration::from_millis(1);
        loop {
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the runner's listen backlog stayed full until the timeout",
                ));
            }
            socket.set_write_timeout(remaining)?;
            match socket.connect(&address) {
                Ok(()) => {
                    let stream = UnixStream::from(std::os::fd::OwnedFd::from(socket));
                    stream.set_read_timeout(timeout)?;
                    stream.set_write_timeout(timeout)?;
                    return Ok(stream);
                }
                Err(err) => {
                    let full = err.kind() == io::ErrorKind::WouldBlock
                        || err.kind() == io::ErrorKind::Interrupted
                        || (cfg!(not(target_os = "linux"))
                            && err.kind() == io::ErrorKind::ConnectionRefused
                            && Instant::now() < refused_until);
                    if !full {
                        return Err(err);
                    }
                }
            }
            let mut pause = backoff;
            if let Some(deadline) = deadline {
                pause = pause.min(deadline.saturating_duration_since(Instant::now()));
            }
            std::thread::sleep(pause);
            backoff = (backoff * 2).min(Duration::from_millis(50));
        }
    }

    /// An accepted connection, registered with the reactor for reads only.
    ///
    /// tokio's `UnixStream` also registers for writability, and a Unix socket
    /// signals that edge each time the tool reads an answer, so the runner's
    /// thread was woken once more per round trip for nothing: about 1.7 µs on
    /// one CPU, and the slow mode of a two-peaked latency (`npm run bench`).
    /// Answers are written straight away; only a write that finds the socket
    /// full waits, on a duplicate of the descriptor registered for writability
    /// for as long as that wait lasts.
    #[derive(Debug)]
    pub struct Connection {
        socket: AsyncFd<UnixStream>,
        write_wait: Option<AsyncFd<UnixStream>>,
    }

    impl Connection {
        /// Takes over a stream. Call inside a runtime.
        fn new(stream: UnixStream) -> io::Result<Self> {
            stream.set_nonblocking(true)?;
            Ok(Self {
                socket: register(stream, Interest::READABLE)?,
                write_wait: None,
            })
        }
    }

    /// Registers a stream the `AsyncFd` will own. tokio deprecated the safe
    /// constructor because a borrowed descriptor could be closed under it; an
    /// owned `UnixStream` keeps its descriptor open until the `AsyncFd` drops
    /// it, so the call is sound here and works on every tokio 1.x.
    #[allow(deprecated)]
    fn register(stream: UnixStream, interest: Interest) -> io::Result<AsyncFd<UnixStream>> {
        AsyncFd::with_interest(stream, interest)
    }

    impl AsyncRead for Connection {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            loop {
                let mut guard = ready!(this.socket.poll_read_ready(cx))?;
                let unfilled = buf.initialize_unfilled();
                let room = unfilled.len();
                match guard.try_io(|socket| socket.get_ref().read(unfilled)) {
                    Ok(Ok(n)) => {
                        // A short read drained the socket: the next read waits
                        // for the next edge instead of trying and failing once.
                        if n > 0 && n < room {
                            guard.clear_ready();
                        }
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Ok(Err(err)) => return Poll::Ready(Err(err)),
                    Err(_would_block) => {}
                }
            }
        }
    }

    impl AsyncWrite for Connection {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            loop {
                if let Some(wait) = &this.write_wait {
                    let mut guard = ready!(wait.poll_write_ready(cx))?;
                    if let Ok(written) = guard.try_io(|socket| socket.get_ref().write(buf)) {
                        this.write_wait = None;
                        return Poll::Ready(written);
                    }
                    continue;
                }
                match this.socket.get_ref().write(buf) {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        let duplicate = this.socket.get_ref().try_clone()?;
                        this.write_wait = Some(register(duplicate, Interest::WRITABLE)?);
                    }
                    written => return Poll::Ready(written),
                }
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(self.socket.get_ref().shutdown(std::net::Shutdown::Write))
        }
    }

    /// A Unix socket in a private directory.
    #[derive(Debug)]
    pub struct Listener {
        socket: UnixListener,
        /// The same socket, for `accept` calls made without waiting for the
        /// reactor's readiness: what the kernel queued is taken even when
        /// its event has not been processed yet.
        raw: std::os::unix::net::UnixListener,
        address: String,
        dir: tempfile::TempDir,
    }

    impl Listener {
        /// Creates the directory and listens in it. Call inside a runtime.
        pub fn bind() -> Result<Self, EndpointError> {
            let dir = socket_dir()?;
            let path = dir.path().join("s");
            let address = path.to_string_lossy().into_owned();
            let bind_error = |source| EndpointError::Bind {
                address: address.clone(),
                source,
            };
            let socket = UnixListener::bind(&path).map_err(bind_error)?;
            let raw = socket
                .as_fd()
                .try_clone_to_owned()
                .map(std::os::unix::net::UnixListener::from)
                .map_err(bind_error)?;
            Ok(Self {
                socket,
                raw,
                address,
                dir,
            })
        }

        /// What a client connects to.
        pub fn address(&self) -> &str {
            &self.address
        }

        /// The next connection.
        pub async fn accept(&mut self) -> std::io::Result<Connection> {
            let (stream, _) = self.socket.accept().await?;
            Connection::new(stream.into_std()?)
        }

        /// Every connection the kernel has queued right now, taken with
        /// non-blocking `accept` calls on the socket itself, so no readiness
        /// event can be missed. Call inside a runtime.
        pub async fn take_queued(&mut self) -> Vec<Connection> {
            let mut queued = Vec::new();
            // The descriptor is shared with the tokio listener: non-blocking.
            while let Ok((stream, _)) = self.raw.accept() {
                if let Ok(connection) = Connection::new(stream) {
                    queued.push(connection);
                }
            }
            queued
        }

        /// Stops listening; what is left is the directory.
        pub fn stop(self) -> Endpoint {
            Endpoint { dir: self.dir }
        }
    }

    /// What is left of a listener after it stopped: the directory to remove.
    #[derive(Debug)]
    pub struct Endpoint {
        dir: tempfile::TempDir,
    }

    impl Endpoint {
        /// The markers tools left in the directory.
        pub fn lost_markers(&self) -> Vec<super::LostMarker> {
            super::read_markers(self.dir.path())
        }

        /// Removes the directory and the socket in it.
        pub fn remove(self) {
            let _ = self.dir.close();
        }
    }

    /// Where the private directory goes: the temp dir, unless its path is
    /// too long for a socket or not UTF-8 (the path travels to tools in an
    /// env variable, which must be text); then `/tmp`.
    pub fn socket_base(preferred: PathBuf) -> PathBuf {
        let fits = preferred.as_os_str().len() + "/runner-aware-XXXXXX/s".len() <= MAX_SOCKET_PATH;
        if fits && preferred.to_str().is_some() {
            preferred
        } else {
            PathBuf::from("/tmp")
        }
    }

    /// A fresh directory only this user can enter, short enough for a socket path.
    fn socket_dir() -> Result<tempfile::TempDir, EndpointError> {
        let base = socket_base(std::env::temp_dir());
        let dir = tempfile::Builder::new()
            .prefix("runner-aware-")
            .tempdir_in(&base)
            .map_err(|source| EndpointError::SocketDir {
                dir: base.clone(),
                source,
            })?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|source| EndpointError::SocketDir { dir: base, source })?;
        Ok(dir)
    }
}

#[cfg(windows)]
mod windows {
    use std::io;
    use std::time::Duration;

    use interprocess::local_socket::prelude::*;
    use interprocess::local_socket::{ConnectOptions, GenericFilePath, Stream};
    use interprocess::ConnectWaitMode;

    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};

    use super::EndpointError;

    /// An accepted connection.
    pub type Connection = NamedPipeServer;

    /// A tool's connection to its runner.
    pub type ClientStream = Stream;

    /// Connects to the named pipe `name` within `timeout`, and sets the same
    /// timeout on every later read and write.
    pub fn connect(name: &str, timeout: Option<Duration>) -> io::Result<Stream> {
        let name = name.to_fs_name::<GenericFilePath>()?;
        let wait = timeout.map_or(ConnectWaitMode::Deferred, ConnectWaitMode::Timeout);
        let stream = ConnectOptions::new()
            .name(name)
            .wait_mode(wait)
            .connect_sync()?;
        stream.set_recv_timeout(timeout)?;
        stream.set_send_timeout(timeout)?;
        Ok(stream)
    }

    /// A named pipe; one instance always waits for the next client.
    #[derive(Debug)]
    pub struct Listener {
        waiting: NamedPipeServer,
        address: String,
    }

    impl Listener {
        /// Creates the first pipe instance under a random name. Call inside a runtime.
        pub fn bind() -> Result<Self, EndpointError> {
            let mut random = [0u8; 16];
            getrandom::fill(&mut random).map_err(|err| EndpointError::Bind {
                address: r"\\.\pipe\runner-aware-…".to_owned(),
                source: std::io::Error::other(err.to_string()),
            })?;
            let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let address = format!(r"\\.\pipe\runner-aware-{suffix}");
            let waiting = ServerOptions::new()
                .first_pipe_instance(true)
                .reject_remote_clients(true)
                .create(&address)
                .map_err(|source| EndpointError::Bind {
                    address: address.clone(),
                    source,
                })?;
            Ok(Self { waiting, address })
        }

        /// What a client connects to.
        pub fn address(&self) -> &str {
            &self.address
        }

        /// Swaps in a fresh waiting instance and returns the one a client used.
        fn rotate(&mut self) -> std::io::Result<NamedPipeServer> {
            let fresh = ServerOptions::new()
                .reject_remote_clients(true)
                .create(&self.address)?;
            Ok(std::mem::replace(&mut self.waiting, fresh))
        }

        /// The next connection.
        pub async fn accept(&mut self) -> std::io::Result<Connection> {
            match self.waiting.connect().await {
                Ok(()) => self.rotate(),
                Err(err) => {
                    // The client left before it was served; the instance is spent.
                    self.rotate()?;
                    Err(err)
                }
            }
        }

        /// The connections clients already made to waiting instances.
        pub async fn take_queued(&mut self) -> Vec<Connection> {
            let mut queued = Vec::new();
            // A client already connected completes `connect` on its first poll.
            while let Ok(Ok(())) =
                tokio::time::timeout(Duration::ZERO, self.waiting.connect()).await
            {
                match self.rotate() {
                    Ok(connection) => queued.push(connection),
                    Err(_) => break,
                }
            }
            queued
        }

        /// Stops listening.
        pub fn stop(self) -> Endpoint {
            Endpoint
        }
    }

    /// Nothing to remove: a pipe goes away with its last handle.
    #[derive(Debug)]
    pub struct Endpoint;

    impl Endpoint {
        /// Markers need a directory; a pipe has none.
        pub fn lost_markers(&self) -> Vec<super::LostMarker> {
            Vec::new()
        }

        /// Nothing to do on Windows.
        pub fn remove(self) {}
    }
}
