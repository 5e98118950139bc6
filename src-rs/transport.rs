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

    use tokio::net::{UnixListener, UnixStream};

    use super::EndpointError;

    /// Unix socket paths longer than this do not fit in `sockaddr_un`.
    const MAX_SOCKET_PATH: usize = 107;

    /// An accepted connection.
    pub type Connection = UnixStream;

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
            self.socket.accept().await.map(|(stream, _)| stream)
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
                        let accepted = stream
                            .set_nonblocking(true)
                            .and_then(|()| UnixStream::from_std(stream));
                        if let Ok(stream) = accepted {
                            queued.push(stream);
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
