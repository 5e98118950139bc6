//! The server's listening endpoint, per platform.
//!
//! Unix: a Unix domain socket in a fresh directory, created with mode 0700
//! (whatever the umask) and checked before use, removed with the directory.
//! Windows: a named pipe with a random name. Either way the address travels
//! to tools in the environment, never as an inherited handle, and the
//! per-server token guards what a connection may see.

use std::io;
use std::path::PathBuf;

/// Why an endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The private socket directory could not be created.
    #[error(
        "cannot create the runner's private directory under {dir}: {source}; \
         point the temp dir (TMPDIR; TMP on Windows) at a directory this process may write"
    )]
    SocketDir {
        /// The directory it was to be created in.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The private directory is not private: not a directory of this user's
    /// with mode 0700, so another user could reach the channel through it.
    #[error(
        "the runner's private directory {path} is not private ({reason}); it must be a \
         directory (not a link) owned by this process's user with mode 0700: point the temp \
         dir (TMPDIR) at a local file system with Unix permissions, and use a umask that \
         keeps the owner's own bits (such as 022 or 077)"
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The socket or pipe could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The socket path or pipe name.
        address: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The Unix socket could not be set up, and `RUNNER_AWARE_TRANSPORT=socket`
    /// rules out the FIFOs.
    #[error(
        "cannot listen on {address}: {source}; RUNNER_AWARE_TRANSPORT=socket rules out \
         the named FIFOs a runner serves where Unix sockets are denied (as in a coding-agent \
         sandbox): unset it, or set it to auto"
    )]
    SocketOnly {
        /// The socket path.
        address: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The FIFO rendezvous could not be created, and
    /// `RUNNER_AWARE_TRANSPORT=fifo` rules out the Unix socket.
    #[error(
        "cannot create the FIFO rendezvous {rendezvous}: {source}; RUNNER_AWARE_TRANSPORT=fifo \
         rules out the Unix socket: unset it, or set it to auto"
    )]
    FifoOnly {
        /// The rendezvous FIFO's path.
        rendezvous: String,
        /// What the OS said.
        source: io::Error,
    },
    /// Neither the Unix socket nor the FIFO rendezvous could be set up.
    #[error(
        "cannot serve tools: neither a Unix socket ({address}: {socket}) nor a named FIFO \
         ({rendezvous}: {fifo}) can be created; point TMPDIR at a local directory where \
         this process may create one of them"
    )]
    NoTransport {
        /// The socket path.
        address: String,
        /// Why the socket failed.
        socket: io::Error,
        /// The rendezvous FIFO's path.
        rendezvous: String,
        /// Why the FIFO failed.
        fifo: io::Error,
    },
}

/// What is left of a listener after it stopped: its private directory, with
/// the markers tools left in it, to read and then remove.
#[derive(Debug)]
pub struct Endpoint {
    dir: tempfile::TempDir,
}

impl Endpoint {
    /// The markers tools left in the directory.
    pub fn lost_markers(&self) -> Vec<LostMarker> {
        read_markers(self.dir.path())
    }

    /// Removes the directory and everything in it.
    pub fn remove(self) {
        let _ = self.dir.close();
    }
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
const MAX_MARKER: u64 = 4096;

/// Reads every marker in `dir` (see docs/protocol.md). A marker that does not
/// parse still counts: something was lost.
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
pub use unix::{Connection, Listener};
#[cfg(windows)]
pub use windows::{Connection, Listener};

#[cfg(unix)]
mod unix {
    use std::io::{self, Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};

    use tokio::io::unix::AsyncFd;
    use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
    use tokio::net::UnixListener;

    use super::EndpointError;
    use crate::fifo::{self, FifoConnection, FifoListener};
    use crate::private;
    use crate::transport::unix::TransportMode;

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
    pub struct SocketConnection {
        socket: AsyncFd<UnixStream>,
        write_wait: Option<AsyncFd<UnixStream>>,
    }

    impl SocketConnection {
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

    impl AsyncRead for SocketConnection {
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

    impl AsyncWrite for SocketConnection {
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

    /// An accepted connection: a socket, or a client's pair of FIFOs.
    #[derive(Debug)]
    pub enum Connection {
        /// Over the Unix socket.
        Socket(SocketConnection),
        /// Over named FIFOs (where sockets are denied).
        Fifo(FifoConnection),
    }

    impl AsyncRead for Connection {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match self.get_mut() {
                Self::Socket(socket) => Pin::new(socket).poll_read(cx, buf),
                Self::Fifo(fifo) => Pin::new(fifo).poll_read(cx, buf),
            }
        }
    }

    impl AsyncWrite for Connection {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            match self.get_mut() {
                Self::Socket(socket) => Pin::new(socket).poll_write(cx, buf),
                Self::Fifo(fifo) => Pin::new(fifo).poll_write(cx, buf),
            }
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.get_mut() {
                Self::Socket(socket) => Pin::new(socket).poll_flush(cx),
                Self::Fifo(fifo) => Pin::new(fifo).poll_flush(cx),
            }
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match self.get_mut() {
                Self::Socket(socket) => Pin::new(socket).poll_shutdown(cx),
                Self::Fifo(fifo) => Pin::new(fifo).poll_shutdown(cx),
            }
        }
    }

    /// The Unix socket and the FIFO rendezvous in a private directory: in
    /// `auto` mode both are served, so a tool whose sandbox denies sockets
    /// reaches the runner too; a runner whose sandbox denies binding a socket
    /// serves FIFOs only.
    #[derive(Debug)]
    pub struct Listener {
        socket: Option<SocketListener>,
        fifo: Option<FifoListener>,
        address: String,
        dir: tempfile::TempDir,
    }

    /// The socket half of a [`Listener`].
    #[derive(Debug)]
    struct SocketListener {
        socket: UnixListener,
        /// The same socket, for `accept` calls made without waiting for the
        /// reactor's readiness: what the kernel queued is taken even when
        /// its event has not been processed yet.
        raw: std::os::unix::net::UnixListener,
    }

    impl Listener {
        /// Creates the directory and listens in it. Call inside a runtime.
        pub fn bind() -> Result<Self, EndpointError> {
            let mode = TransportMode::from_env();
            let dir = socket_dir()?;
            let path = dir.path().join("s");
            let address = path.to_string_lossy().into_owned();
            let mut socket_error = None;
            let socket = if mode == TransportMode::Fifo {
                None
            } else {
                match bind_socket(&path) {
                    Ok(socket) => Some(socket),
                    Err(source) if mode == TransportMode::Socket => {
                        return Err(EndpointError::SocketOnly { address, source })
                    }
                    // Denied (a sandbox's EPERM/EACCES) or unsupported: FIFOs.
                    Err(err) => {
                        socket_error = Some(err);
                        None
                    }
                }
            };
            let fifo = if mode == TransportMode::Socket {
                None
            } else {
                match FifoListener::bind(dir.path()) {
                    Ok(fifo) => Some(fifo),
                    Err(err) if socket.is_none() => {
                        let rendezvous = dir
                            .path()
                            .join(fifo::RENDEZVOUS)
                            .to_string_lossy()
                            .into_owned();
                        return Err(match socket_error {
                            Some(socket) => EndpointError::NoTransport {
                                address,
                                socket,
                                rendezvous,
                                fifo: err,
                            },
                            None => EndpointError::FifoOnly {
                                rendezvous,
                                source: err,
                            },
                        });
                    }
                    Err(_) => None,
                }
            };
            Ok(Self {
                socket,
                fifo,
                address,
                dir,
            })
        }

        /// Which transports this listener serves: `socket`, `fifo` or both.
        pub fn transports(&self) -> Vec<&'static str> {
            let mut served = Vec::new();
            if self.socket.is_some() {
                served.push("socket");
            }
            if self.fifo.is_some() {
                served.push("fifo");
            }
            served
        }

        /// What a client connects to.
        pub fn address(&self) -> &str {
            &self.address
        }

        /// No marker directory to hand out: tools find it as the socket's
        /// parent.
        pub fn marker_dir_env(&self) -> Option<String> {
            None
        }

        /// The next connection, over either transport.
        pub async fn accept(&mut self) -> std::io::Result<Connection> {
            let socket = async {
                match &self.socket {
                    Some(listener) => {
                        let (stream, _) = listener.socket.accept().await?;
                        SocketConnection::new(stream.into_std()?).map(Connection::Socket)
                    }
                    None => std::future::pending().await,
                }
            };
            let fifo = async {
                match &mut self.fifo {
                    Some(listener) => listener.accept().await.map(Connection::Fifo),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                accepted = socket => accepted,
                accepted = fifo => accepted,
            }
        }

        /// Every connection queued right now on either transport, taken
        /// without waiting for readiness events, so none can be missed.
        /// Call inside a runtime.
        pub async fn take_queued(&mut self) -> Vec<Connection> {
            let mut queued = Vec::new();
            if let Some(listener) = &self.socket {
                // The descriptor is shared with the tokio listener: non-blocking.
                while let Ok((stream, _)) = listener.raw.accept() {
                    if let Ok(connection) = SocketConnection::new(stream) {
                        queued.push(Connection::Socket(connection));
                    }
                }
            }
            if let Some(listener) = &mut self.fifo {
                queued.extend(listener.take_queued().into_iter().map(Connection::Fifo));
            }
            queued
        }

        /// Stops listening; what is left is the directory.
        pub fn stop(self) -> super::Endpoint {
            super::Endpoint { dir: self.dir }
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
        private_dir_in(&socket_base(std::env::temp_dir()))
    }

    /// A fresh directory in `base` only this user can enter. It is born with
    /// mode 0700: the mode goes to `mkdir` itself, and a umask can only take
    /// bits away, so it is never open to others, not even for an instant (a
    /// `chmod` after the fact left a window in which another user could
    /// plant the socket's name or FIFOs under a umask of 000 or 002). It is
    /// then checked: a directory, not a link, ours, mode 0700.
    fn private_dir_in(base: &Path) -> Result<tempfile::TempDir, EndpointError> {
        let dir = tempfile::Builder::new()
            .prefix("runner-aware-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)
            .map_err(|source| EndpointError::SocketDir {
                dir: base.to_owned(),
                source,
            })?;
        check_private_dir(dir.path())?;
        Ok(dir)
    }

    /// Checks that `path` is a directory of this user's, not a link, with
    /// mode 0700.
    fn check_private_dir(path: &Path) -> Result<(), EndpointError> {
        let meta = std::fs::symlink_metadata(path).map_err(|source| EndpointError::SocketDir {
            dir: path.to_owned(),
            source,
        })?;
        match private::flaw(&meta, private::Kind::Dir) {
            Some(reason) => Err(EndpointError::NotPrivate {
                path: path.to_owned(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Binds the listening socket at `path` in the private directory. A
    /// socket's mode comes from the umask alone (`bind` takes none); it is
    /// set to 0600 and checked at once, before any tool learns its name,
    /// and until then only this user can reach it through the directory.
    fn bind_socket(path: &Path) -> io::Result<SocketListener> {
        let socket = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        private::check_path(path, private::Kind::Socket)?;
        let raw = socket
            .as_fd()
            .try_clone_to_owned()
            .map(std::os::unix::net::UnixListener::from)?;
        Ok(SocketListener { socket, raw })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// `sun_path` of this platform's `sockaddr_un`, less the NUL.
        fn sun_path_room() -> usize {
            // SAFETY: all zeros is a valid sockaddr_un.
            let address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            address.sun_path.len() - 1
        }

        #[cfg(any(target_os = "linux", target_os = "android"))]
        #[test]
        fn linux_socket_paths_fit_108_byte_sun_path() {
            assert_eq!(MAX_SOCKET_PATH, 107);
            assert_eq!(MAX_SOCKET_PATH, sun_path_room());
        }

        #[cfg(any(target_os = "macos", target_os = "ios"))]
        #[test]
        fn macos_socket_paths_fit_104_byte_sun_path() {
            assert_eq!(MAX_SOCKET_PATH, 103);
            assert_eq!(MAX_SOCKET_PATH, sun_path_room());
        }

        #[cfg(any(
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "netbsd",
            target_os = "dragonfly"
        ))]
        #[test]
        fn bsd_socket_paths_fit_104_byte_sun_path() {
            assert_eq!(MAX_SOCKET_PATH, 103);
            assert_eq!(MAX_SOCKET_PATH, sun_path_room());
        }

        #[test]
        fn a_temp_dir_too_long_for_a_socket_falls_back_to_tmp() {
            // The longest base that still fits, and one byte more.
            let room = MAX_SOCKET_PATH - "/runner-aware-XXXXXX/s".len();
            let fits = PathBuf::from(format!("/{}", "d".repeat(room - 1)));
            assert_eq!(socket_base(fits.clone()), fits);
            let too_long = PathBuf::from(format!("/{}", "d".repeat(room)));
            assert_eq!(socket_base(too_long), PathBuf::from("/tmp"));
            // The macOS temp dir, /var/folders/<2>/<30>/T, fits with room to spare.
            let macos = PathBuf::from(format!("/var/folders/zz/{}/T", "x".repeat(30)));
            assert_eq!(socket_base(macos.clone()), macos);
        }

        fn mode(path: &Path) -> u32 {
            std::fs::symlink_metadata(path)
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        }

        /// A listener's directory is 0700, its socket and rendezvous 0600;
        /// a directory no longer private (made 0777, or swapped for a link
        /// to a directory of 0700) is refused with a typed error.
        #[test]
        fn the_private_directory_is_checked_before_use() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let listener = runtime.block_on(async { Listener::bind() }).unwrap();
            let dir = Path::new(listener.address()).parent().unwrap().to_owned();
            assert_eq!(mode(&dir), 0o700);
            check_private_dir(&dir).unwrap();
            if listener.transports().contains(&"socket") {
                assert_eq!(mode(Path::new(listener.address())), 0o600);
            }
            if listener.transports().contains(&"fifo") {
                assert_eq!(mode(&dir.join(fifo::RENDEZVOUS)), 0o600);
            }
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            let err = check_private_dir(&dir).unwrap_err();
            assert!(
                matches!(&err, EndpointError::NotPrivate { reason, .. } if reason.contains("777")),
                "{err}"
            );
            assert!(err.to_string().contains("mode 0700"), "{err}");
            let scratch = tempfile::tempdir().unwrap();
            let link = scratch.path().join("link");
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::symlink(&dir, &link).unwrap();
            let err = check_private_dir(&link).unwrap_err();
            assert!(
                matches!(&err, EndpointError::NotPrivate { reason, .. } if reason.contains("link")),
                "{err}"
            );
            listener.stop().remove();
        }

        #[test]
        fn sockets_are_bound_within_the_limit() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let listener = runtime.block_on(async { Listener::bind() }).unwrap();
            assert!(listener.address().len() <= MAX_SOCKET_PATH);
            listener.stop().remove();
        }
    }
}

#[cfg(windows)]
mod windows {
    use std::io;
    use std::time::Duration;

    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
    use windows_sys::Win32::Foundation::ERROR_NO_DATA;

    use super::EndpointError;

    /// An accepted connection.
    pub type Connection = NamedPipeServer;

    /// A client that connected, wrote and closed its end before the server
    /// looked makes `ConnectNamedPipe` fail with `ERROR_NO_DATA`; what it
    /// wrote is still in the pipe, to be read like any connection's.
    fn connected(result: io::Result<()>) -> io::Result<()> {
        match result {
            Err(err) if err.raw_os_error() == Some(ERROR_NO_DATA as i32) => Ok(()),
            other => other,
        }
    }

    /// A named pipe; one instance always waits for the next client. Beside
    /// it, a private directory for lost markers, which a pipe cannot hold.
    #[derive(Debug)]
    pub struct Listener {
        waiting: NamedPipeServer,
        address: String,
        dir: tempfile::TempDir,
    }

    impl Listener {
        /// Creates the marker directory and the first pipe instance under a
        /// random name. Call inside a runtime.
        pub fn bind() -> Result<Self, EndpointError> {
            let base = std::env::temp_dir();
            // Under the user's temp dir, which only that user (and the
            // system and administrators) may enter; the directory inherits
            // that ACL.
            let dir = tempfile::Builder::new()
                .prefix("runner-aware-")
                .tempdir_in(&base)
                .map_err(|source| EndpointError::SocketDir { dir: base, source })?;
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
            Ok(Self {
                waiting,
                address,
                dir,
            })
        }

        /// What a client connects to.
        pub fn address(&self) -> &str {
            &self.address
        }

        /// The marker directory, which tools cannot derive from a pipe name:
        /// handed to them in `RUNNER_AWARE_DIR`.
        pub fn marker_dir_env(&self) -> Option<String> {
            Some(self.dir.path().to_string_lossy().into_owned())
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
            match connected(self.waiting.connect().await) {
                Ok(()) => self.rotate(),
                Err(err) => {
                    // The client left before it was served; the instance is spent.
                    self.rotate()?;
                    Err(err)
                }
            }
        }

        /// Which transports this listener serves.
        pub fn transports(&self) -> Vec<&'static str> {
            vec!["pipe"]
        }

        /// The connections clients already made to waiting instances.
        pub async fn take_queued(&mut self) -> Vec<Connection> {
            let mut queued = Vec::new();
            // A client already connected completes `connect` on its first poll.
            while let Ok(Ok(())) = tokio::time::timeout(Duration::ZERO, self.waiting.connect())
                .await
                .map(connected)
            {
                match self.rotate() {
                    Ok(connection) => queued.push(connection),
                    Err(_) => break,
                }
            }
            queued
        }

        /// Stops listening (the pipe goes away with its last handle); what
        /// is left is the marker directory.
        pub fn stop(self) -> super::Endpoint {
            super::Endpoint { dir: self.dir }
        }
    }
}
