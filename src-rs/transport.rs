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

#[cfg(unix)]
pub use unix::{Connection, Endpoint, Listener};
#[cfg(windows)]
pub use windows::{Connection, Endpoint, Listener};

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use std::io::{self, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::pin::Pin;
    use std::task::{ready, Context, Poll};

    use tokio::io::unix::AsyncFd;
    use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
    use tokio::net::UnixListener;

    use super::EndpointError;

    /// Unix socket paths longer than this do not fit in `sockaddr_un`.
    const MAX_SOCKET_PATH: usize = 107;

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
        address: String,
        dir: tempfile::TempDir,
    }

    impl Listener {
        /// Creates the directory and listens in it. Call inside a runtime.
        pub fn bind() -> Result<Self, EndpointError> {
            let dir = socket_dir()?;
            let path = dir.path().join("s");
            let address = path.to_string_lossy().into_owned();
            let socket = UnixListener::bind(&path).map_err(|source| EndpointError::Bind {
                address: address.clone(),
                source,
            })?;
            Ok(Self {
                socket,
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

        /// Stops listening and returns every connection the kernel already
        /// queued: each is a process that connected before the close, and its
        /// bytes must not be lost. Taken with non-blocking `accept` calls on the
        /// socket itself, so no readiness event can be missed.
        pub async fn into_queued(self) -> (Vec<Connection>, Endpoint) {
            let mut queued = Vec::new();
            if let Ok(listener) = self.socket.into_std() {
                if listener.set_nonblocking(true).is_ok() {
                    while let Ok((stream, _)) = listener.accept() {
                        if let Ok(connection) = Connection::new(stream) {
                            queued.push(connection);
                        }
                    }
                }
            }
            (queued, Endpoint { dir: self.dir })
        }
    }

    /// What is left of a listener after it stopped: the directory to remove.
    #[derive(Debug)]
    pub struct Endpoint {
        dir: tempfile::TempDir,
    }

    impl Endpoint {
        /// Removes the directory and the socket in it.
        pub fn remove(self) {
            let _ = self.dir.close();
        }
    }

    /// A fresh directory only this user can enter, short enough for a socket path.
    fn socket_dir() -> Result<tempfile::TempDir, EndpointError> {
        let preferred = std::env::temp_dir();
        // "<dir>/runner-aware-XXXXXX/s" must fit in sockaddr_un.
        let base =
            if preferred.as_os_str().len() + "/runner-aware-XXXXXX/s".len() <= MAX_SOCKET_PATH {
                preferred
            } else {
                PathBuf::from("/tmp")
            };
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
    use std::time::Duration;

    use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};

    use super::EndpointError;

    /// An accepted connection.
    pub type Connection = NamedPipeServer;

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

        /// Stops listening and returns the connections clients already made to
        /// waiting instances.
        pub async fn into_queued(mut self) -> (Vec<Connection>, Endpoint) {
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
            (queued, Endpoint)
        }
    }

    /// Nothing to remove: a pipe goes away with its last handle.
    #[derive(Debug)]
    pub struct Endpoint;

    impl Endpoint {
        /// Nothing to do on Windows.
        pub fn remove(self) {}
    }
}
