//! How a tool reaches its runner, per platform, synchronously: a Unix
//! socket, falling back to named FIFOs where sockets are denied; a named
//! pipe on Windows. Connecting, every read and every write are bounded by
//! the client's timeout. The runner's side, the listening endpoint, is in
//! `transport/listener.rs`.

#[cfg(feature = "server")]
mod listener;

#[cfg(feature = "server")]
pub use listener::{Connection, EndpointError, Listener};
#[cfg(unix)]
pub use unix::{connect, ClientStream};
#[cfg(windows)]
pub use windows::{connect, ClientStream};

#[cfg(unix)]
mod unix {
    use std::io::{self, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use socket2::{Domain, SockAddr, Socket, Type};

    use crate::fifo::{self, FifoStream};
    use crate::protocol::ENV_TRANSPORT;

    /// Connects to the socket at `path` within `timeout` (`None`: no limit),
    /// and sets the same timeout on every later read and write.
    ///
    /// A runner whose listen backlog is full makes a non-blocking connect
    /// fail with `EAGAIN` (Linux) or `ECONNREFUSED` (macOS) at once; a tool
    /// must not go silently offline for that, so such a connect is retried
    /// with backoff until the timeout. A blocking connect on Linux waits
    /// for room in the backlog by itself, bounded by the send timeout.
    fn connect_socket(path: &str, timeout: Option<Duration>) -> io::Result<UnixStream> {
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

    /// Which transports to use, from [`ENV_TRANSPORT`]: `socket`, `fifo`, or
    /// `auto` (the default: the server serves both, the client tries the
    /// socket and falls back to FIFOs).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum TransportMode {
        /// Both; each side uses what works.
        Auto,
        /// The Unix socket only.
        Socket,
        /// Named FIFOs only.
        Fifo,
    }

    impl TransportMode {
        /// The mode this process's env asks for; anything unknown is `auto`.
        pub fn from_env() -> Self {
            match std::env::var(ENV_TRANSPORT).as_deref() {
                Ok("socket") => Self::Socket,
                Ok("fifo") => Self::Fifo,
                _ => Self::Auto,
            }
        }
    }

    /// A tool's connection to its runner, over whichever transport worked.
    #[derive(Debug)]
    pub enum ClientStream {
        /// A Unix socket.
        Socket(UnixStream),
        /// A pair of named FIFOs.
        Fifo(FifoStream),
    }

    impl Read for ClientStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self {
                Self::Socket(socket) => socket.read(buf),
                Self::Fifo(fifo) => fifo.read(buf),
            }
        }
    }

    impl Write for ClientStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            match self {
                Self::Socket(socket) => socket.write(buf),
                Self::Fifo(fifo) => fifo.write(buf),
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Connects to the runner whose socket is `path` (its private directory
    /// is the socket's parent) within `timeout`. In `auto` mode a socket that
    /// cannot be reached (denied by a sandbox, or never bound because the
    /// runner's sandbox denied it) falls back to the FIFOs, when the runner
    /// serves them.
    pub fn connect(path: &str, timeout: Option<Duration>) -> io::Result<ClientStream> {
        let dir = Path::new(path).parent().unwrap_or(Path::new("/"));
        match TransportMode::from_env() {
            TransportMode::Socket => connect_socket(path, timeout).map(ClientStream::Socket),
            TransportMode::Fifo => fifo::connect(dir, timeout).map(ClientStream::Fifo),
            TransportMode::Auto => match connect_socket(path, timeout) {
                Ok(socket) => Ok(ClientStream::Socket(socket)),
                Err(err)
                    if err.kind() != io::ErrorKind::TimedOut
                        && dir.join(fifo::RENDEZVOUS).exists() =>
                {
                    fifo::connect(dir, timeout).map(ClientStream::Fifo)
                }
                Err(err) => Err(err),
            },
        }
    }
}

#[cfg(windows)]
mod windows {
    use std::ffi::OsStr;
    use std::io::{self, Read, Write};
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::fs::OpenOptionsExt;
    use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
    use std::time::{Duration, Instant};

    use windows_sys::core::BOOL;
    use windows_sys::Win32::Foundation::{
        GetLastError, ERROR_BROKEN_PIPE, ERROR_IO_PENDING, ERROR_PIPE_BUSY, ERROR_SEM_TIMEOUT,
        HANDLE, WAIT_OBJECT_0, WAIT_TIMEOUT,
    };
    use windows_sys::Win32::Storage::FileSystem::{
        ReadFile, WriteFile, FILE_FLAG_OVERLAPPED, SECURITY_IDENTIFICATION,
    };
    use windows_sys::Win32::System::Pipes::{WaitNamedPipeW, NMPWAIT_WAIT_FOREVER};
    use windows_sys::Win32::System::Threading::{CreateEventW, WaitForSingleObject, INFINITE};
    use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};

    /// A tool's connection to its runner: the pipe opened for overlapped I/O,
    /// so that connecting, every write and every read can be given up on
    /// after the timeout, as a Unix socket's `SO_SNDTIMEO`/`SO_RCVTIMEO` do.
    ///
    /// Each read or write starts an overlapped operation, waits on its event
    /// for at most the timeout, and on expiry cancels that one operation with
    /// `CancelIoEx`. It then waits for the operation to end (cancelled, or
    /// completed in the meantime, which counts as success) before returning,
    /// so the kernel never touches a buffer the caller got back.
    ///
    /// The other design, a watchdog thread calling `CancelSynchronousIo` on a
    /// blocking call, was rejected: that cancels whatever the watched thread
    /// is blocked in at that instant, so a cancel that lands just before the
    /// call starts cancels nothing and the call blocks for good (the watchdog
    /// has to retry in a loop, handshaking with the thread it watches); and
    /// it costs every tool process a thread. Overlapped I/O is exact, needs
    /// no thread, and costs one event per connection and, only for an
    /// operation that does not complete at once, one wait.
    #[derive(Debug)]
    pub struct ClientStream {
        pipe: OwnedHandle,
        /// Signalled when the pending operation ends; manual-reset, and reset
        /// by `ReadFile`/`WriteFile` as each operation starts.
        event: OwnedHandle,
        timeout: Option<Duration>,
    }

    /// `timeout` in whole milliseconds, rounded up so a wait never ends
    /// early, and kept below `INFINITE` (`None`: `INFINITE`).
    fn millis(timeout: Option<Duration>) -> u32 {
        match timeout {
            None => INFINITE,
            Some(timeout) => {
                let ms = timeout.as_nanos().div_ceil(1_000_000);
                u32::try_from(ms).unwrap_or(INFINITE - 1).min(INFINITE - 1)
            }
        }
    }

    fn timed_out(timeout: Option<Duration>) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out after {} ms", millis(timeout)),
        )
    }

    impl ClientStream {
        fn new(pipe: OwnedHandle, timeout: Option<Duration>) -> io::Result<Self> {
            // SAFETY: no name and no security attributes: a fresh, unnamed,
            // non-inheritable event, manual-reset as overlapped I/O wants.
            let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
            if event.is_null() {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `event` is a handle this function just created and
            // owns; `OwnedHandle` closes it once.
            let event = unsafe { OwnedHandle::from_raw_handle(event) };
            Ok(Self {
                pipe,
                event,
                timeout,
            })
        }

        /// Runs one overlapped operation that `start` begins (it must pass
        /// the `OVERLAPPED` it is given) and returns the bytes it moved,
        /// within the timeout.
        fn transfer(
            &mut self,
            start: impl FnOnce(HANDLE, *mut OVERLAPPED) -> BOOL,
        ) -> io::Result<u32> {
            let pipe: HANDLE = self.pipe.as_raw_handle();
            // SAFETY: all zeros is a valid OVERLAPPED: offset 0, no event.
            let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
            overlapped.hEvent = self.event.as_raw_handle();
            if start(pipe, &mut overlapped) == 0 {
                // SAFETY: reads this thread's last error, set by `start`.
                let error = unsafe { GetLastError() };
                if error != ERROR_IO_PENDING {
                    // The operation never started: nothing to wait for.
                    return Err(io::Error::from_raw_os_error(error as i32));
                }
                // SAFETY: the event handle is open for as long as `self` is.
                let waited =
                    unsafe { WaitForSingleObject(overlapped.hEvent, millis(self.timeout)) };
                if waited != WAIT_OBJECT_0 {
                    let why = if waited == WAIT_TIMEOUT {
                        timed_out(self.timeout)
                    } else {
                        io::Error::last_os_error()
                    };
                    let mut moved = 0;
                    // SAFETY: cancels this operation only, then waits until
                    // it has ended, so `overlapped` and the buffer `start`
                    // handed out outlive every use the kernel makes of them.
                    let completed = unsafe {
                        CancelIoEx(pipe, &overlapped);
                        GetOverlappedResult(pipe, &overlapped, &mut moved, 1)
                    };
                    // Completed between the timeout and the cancel: done.
                    return if completed != 0 { Ok(moved) } else { Err(why) };
                }
            }
            let mut moved = 0;
            // SAFETY: the operation has ended (its event is signalled, or it
            // completed at once), so this returns without blocking.
            if unsafe { GetOverlappedResult(pipe, &overlapped, &mut moved, 1) } == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(moved)
        }
    }

    impl Read for ClientStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if buf.is_empty() {
                return Ok(0);
            }
            let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            let data = buf.as_mut_ptr();
            // SAFETY: `data` is valid for `len` bytes for as long as
            // `transfer` runs, and `transfer` waits for the operation to end.
            let read = self.transfer(|pipe, overlapped| unsafe {
                ReadFile(pipe, data, len, std::ptr::null_mut(), overlapped)
            });
            match read {
                Ok(n) => Ok(n as usize),
                // The runner closed its end: the end of the stream, as std
                // reports it for pipes.
                Err(err) if err.raw_os_error() == Some(ERROR_BROKEN_PIPE as i32) => Ok(0),
                Err(err) => Err(err),
            }
        }
    }

    impl Write for ClientStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if buf.is_empty() {
                return Ok(0);
            }
            let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            let data = buf.as_ptr();
            // SAFETY: as in `read`.
            let written = self.transfer(|pipe, overlapped| unsafe {
                WriteFile(pipe, data, len, std::ptr::null_mut(), overlapped)
            })?;
            Ok(written as usize)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Opens the pipe `name` for overlapped I/O. The handle is not
    /// inheritable (std's default), and the runner may identify this process
    /// but not impersonate it.
    fn open_pipe(name: &str) -> io::Result<OwnedHandle> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(FILE_FLAG_OVERLAPPED)
            .security_qos_flags(SECURITY_IDENTIFICATION)
            .open(name)?;
        Ok(OwnedHandle::from(file))
    }

    /// Connects to the named pipe `name` within `timeout` (`None`: no
    /// limit); every later read and write has the same timeout.
    ///
    /// While every instance of the pipe is busy (the runner is between
    /// accepting one client and offering the next instance) the open fails
    /// with `ERROR_PIPE_BUSY`; that is waited out with `WaitNamedPipeW`
    /// until the timeout, never taken for "no runner". A pipe that does not
    /// exist (a dead runner) fails at once.
    pub fn connect(name: &str, timeout: Option<Duration>) -> io::Result<ClientStream> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let wide: Vec<u16> = OsStr::new(name)
            .encode_wide()
            .chain(std::iter::once(0))
            .collect();
        loop {
            match open_pipe(name) {
                Ok(pipe) => return ClientStream::new(pipe, timeout),
                Err(err) if err.raw_os_error() != Some(ERROR_PIPE_BUSY as i32) => return Err(err),
                Err(_busy) => {}
            }
            let wait = match deadline {
                None => NMPWAIT_WAIT_FOREVER,
                Some(deadline) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "every instance of the runner's pipe stayed busy until the timeout",
                        ));
                    }
                    // At least 1 ms: 0 would mean the pipe's default wait.
                    millis(Some(remaining)).max(1)
                }
            };
            // SAFETY: `wide` is a NUL-terminated UTF-16 string.
            if unsafe { WaitNamedPipeW(wide.as_ptr(), wait) } == 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(ERROR_SEM_TIMEOUT as i32) {
                    return Err(err);
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn millis_round_up_and_stay_finite() {
            assert_eq!(millis(None), INFINITE);
            assert_eq!(millis(Some(Duration::ZERO)), 0);
            assert_eq!(millis(Some(Duration::from_nanos(1))), 1);
            assert_eq!(millis(Some(Duration::from_millis(5000))), 5000);
            assert_eq!(millis(Some(Duration::MAX)), INFINITE - 1);
        }

        #[test]
        fn a_pipe_that_does_not_exist_fails_at_once() {
            let started = Instant::now();
            let name = r"\\.\pipe\runner-aware-test-missing-0123456789abcdef";
            assert!(connect(name, Some(Duration::from_secs(30))).is_err());
            assert!(started.elapsed() < Duration::from_secs(5));
        }

        /// Against a pipe served as the runner serves it.
        #[cfg(feature = "server")]
        mod with_a_server {
            use tokio::net::windows::named_pipe::ServerOptions;

            use super::*;

            fn runtime() -> tokio::runtime::Runtime {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
            }

            fn pipe_name(test: &str) -> String {
                format!(r"\\.\pipe\runner-aware-test-{test}-{}", std::process::id())
            }

            #[test]
            fn a_read_gives_up_after_the_timeout_and_the_pipe_still_works() {
                use tokio::io::AsyncWriteExt;

                let name = pipe_name("read-timeout");
                let runtime = runtime();
                let mut server = runtime.block_on(async {
                    ServerOptions::new()
                        .first_pipe_instance(true)
                        .create(&name)
                        .unwrap()
                });
                let mut client = connect(&name, Some(Duration::from_millis(300))).unwrap();
                runtime.block_on(server.connect()).unwrap();
                let started = Instant::now();
                let mut buf = [0u8; 16];
                let err = client.read(&mut buf).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
                assert!(started.elapsed() >= Duration::from_millis(300));
                assert!(started.elapsed() < Duration::from_secs(5));
                // The cancel ended that read only: the next one gets the bytes.
                runtime.block_on(server.write_all(b"late")).unwrap();
                assert_eq!(client.read(&mut buf).unwrap(), 4);
                assert_eq!(&buf[..4], b"late");
                // No limit: a read waits for as long as the runner takes.
                client.timeout = None;
                let writer = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(400));
                    runtime.block_on(server.write_all(b"slow")).unwrap();
                    (runtime, server)
                });
                assert_eq!(client.read(&mut buf).unwrap(), 4);
                assert_eq!(&buf[..4], b"slow");
                // The runner goes away: the end of the stream, not an error. (The
                // pipe closes once the runtime has seen its own read cancelled.)
                let (runtime, server) = writer.join().unwrap();
                runtime.block_on(async {
                    drop(server);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                });
                assert_eq!(client.read(&mut buf).unwrap(), 0);
            }

            #[test]
            fn a_write_to_a_runner_that_stops_reading_gives_up_after_the_timeout() {
                let name = pipe_name("write-timeout");
                let runtime = runtime();
                let server = runtime.block_on(async {
                    ServerOptions::new()
                        .first_pipe_instance(true)
                        .in_buffer_size(4096)
                        .create(&name)
                        .unwrap()
                });
                let mut client = connect(&name, Some(Duration::from_millis(300))).unwrap();
                runtime.block_on(server.connect()).unwrap();
                let started = Instant::now();
                let err = client.write_all(&vec![7u8; 4 << 20]).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
                assert!(started.elapsed() >= Duration::from_millis(300));
                assert!(started.elapsed() < Duration::from_secs(5));
                drop(server);
            }

            #[test]
            fn connecting_while_every_instance_is_busy_gives_up_after_the_timeout() {
                let name = pipe_name("busy");
                let runtime = runtime();
                let server = runtime.block_on(async {
                    ServerOptions::new()
                        .first_pipe_instance(true)
                        .max_instances(1)
                        .create(&name)
                        .unwrap()
                });
                let _first = connect(&name, Some(Duration::from_secs(5))).unwrap();
                let started = Instant::now();
                let err = connect(&name, Some(Duration::from_millis(300))).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
                assert!(started.elapsed() >= Duration::from_millis(300));
                assert!(started.elapsed() < Duration::from_secs(5));
                drop(server);
            }
        }
    }
}
