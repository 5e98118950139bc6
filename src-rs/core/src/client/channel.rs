//! One process's connection to its runner: connect, handshake, send a
//! report, ask and wait for an answer, each bounded by the timeout; and the
//! marker a client leaves when it had to give up on something.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::protocol::{
    encode_frame, format_size, ClientMessage, EncodeError, FrameDecoder, ServerMessage,
    LOST_MARKER_PREFIX, MAX_CLIENT_FRAME, MAX_SERVER_FRAME,
};
use crate::transport::{connect, ClientStream};

/// Why the channel could not do what was asked; the client goes offline.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// No connection could be made or the handshake failed.
    #[error("cannot connect to {address}: {why}")]
    Connect {
        /// The endpoint.
        address: String,
        /// What went wrong.
        why: String,
    },
    /// The runner refused the handshake.
    #[error("the runner refused: {0}")]
    Refused(String),
    /// A report could not be sent.
    #[error("cannot send a report: {0}")]
    Send(io::Error),
    /// A request went unanswered.
    #[error("no answer from the runner: {0}")]
    Answer(String),
}

/// How many times this process's ancestry forked since the first connection:
/// bumped in the child by a `pthread_atfork` handler, so telling a forked
/// child costs an atomic load, not a `getpid` system call per message.
#[cfg(unix)]
fn fork_generation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Once;

    static GENERATION: AtomicU64 = AtomicU64::new(0);
    static REGISTER: Once = Once::new();
    extern "C" fn forked() {
        // Async-signal-safe: one atomic add.
        GENERATION.fetch_add(1, Ordering::Relaxed);
    }
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic; it stays
        // valid for the life of the process.
        unsafe { libc::pthread_atfork(None, None, Some(forked)) };
    });
    GENERATION.load(Ordering::Relaxed)
}

/// No fork on this platform: one generation.
#[cfg(not(unix))]
fn fork_generation() -> u64 {
    0
}

/// The connection and its scratch buffers; one caller at a time.
#[derive(Debug)]
pub struct Channel {
    stream: Option<ClientStream>,
    /// The fork generation the connection was made in: a forked child
    /// (a later generation) must not use its parent's connection.
    owner: u64,
    /// The protocol version the runner chose.
    version: u32,
    frame: Vec<u8>,
    answers: FrameDecoder,
}

impl Default for Channel {
    fn default() -> Self {
        Self {
            stream: None,
            owner: 0,
            version: 0,
            frame: Vec::new(),
            answers: FrameDecoder::new(MAX_SERVER_FRAME),
        }
    }
}

impl Channel {
    /// Whether a connection is open.
    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Whether the open connection was inherited through `fork()`: it belongs
    /// to the parent, and answers on it would go to whichever process reads
    /// first.
    pub fn is_inherited(&self) -> bool {
        self.stream.is_some() && self.owner != fork_generation()
    }

    /// Drops the connection (this process's copy of it only) and any
    /// half-read answer.
    pub fn reset(&mut self) {
        self.stream = None;
        self.answers = FrameDecoder::new(MAX_SERVER_FRAME);
    }

    /// Connects to `address` and completes the handshake within `timeout`
    /// (`None`: no limit).
    pub fn open(
        &mut self,
        address: &str,
        token: &str,
        timeout: Option<Duration>,
    ) -> Result<(), ChannelError> {
        let connect_error = |why: String| ChannelError::Connect {
            address: address.to_owned(),
            why,
        };
        self.reset();
        let mut stream = connect(address, timeout).map_err(|err| connect_error(err.to_string()))?;
        let pid = std::process::id();
        self.frame.clear();
        encode_frame(
            &ClientMessage::hello(token.to_owned(), pid),
            MAX_CLIENT_FRAME,
            &mut self.frame,
        )
        .map_err(|err| connect_error(err.to_string()))?;
        stream
            .write_all(&self.frame)
            .map_err(|err| connect_error(format!("cannot send the handshake: {err}")))?;
        let payload = self
            .answers
            .read_frame(&mut stream)
            .map_err(|err| connect_error(format!("no handshake answer: {err}")))?;
        match ServerMessage::decode(payload) {
            Ok(ServerMessage::Welcome { version, .. }) => {
                self.stream = Some(stream);
                self.owner = fork_generation();
                self.version = version;
                Ok(())
            }
            Ok(ServerMessage::Refused { reason }) => Err(ChannelError::Refused(reason)),
            _ => Err(connect_error("an unexpected handshake answer".to_owned())),
        }
    }

    /// Sends a fire-and-forget message; returns once the bytes are in the
    /// kernel. A message over the frame limit is replaced by a `disableCache`
    /// saying so: the runner cannot be told what it said.
    pub fn send(&mut self, message: &ClientMessage) -> Result<(), ChannelError> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        self.frame.clear();
        let stripped;
        let message = match message {
            // Version 1 rejects members it does not know.
            ClientMessage::DisableCache { reason, .. } if self.version < 2 => {
                stripped = ClientMessage::DisableCache {
                    reason: reason.clone(),
                    caller: None,
                    command: None,
                };
                &stripped
            }
            _ => message,
        };
        if let Err(EncodeError::TooLarge { len, limit }) =
            encode_frame(message, MAX_CLIENT_FRAME, &mut self.frame)
        {
            let reason = format!(
                "a report of {len} bytes exceeds the {} frame limit",
                format_size(limit)
            );
            let _ = encode_frame(
                &ClientMessage::disable_cache(reason),
                MAX_CLIENT_FRAME,
                &mut self.frame,
            );
        }
        stream.write_all(&self.frame).map_err(ChannelError::Send)
    }

    /// Sends a request and waits for its answer.
    pub fn request(&mut self, message: &ClientMessage) -> Result<ServerMessage, ChannelError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(ChannelError::Answer("not connected".to_owned()));
        };
        self.frame.clear();
        if let Err(err) = encode_frame(message, MAX_CLIENT_FRAME, &mut self.frame) {
            // The runner cannot be asked, so the run must not be cached on an
            // answer it never gave; the connection itself is fine.
            self.send(&ClientMessage::disable_cache(format!(
                "an env request was not sent: {err}"
            )))?;
            return Err(ChannelError::Answer(err.to_string()));
        }
        stream
            .write_all(&self.frame)
            .map_err(|err| ChannelError::Answer(format!("cannot send a request: {err}")))?;
        let payload = self
            .answers
            .read_frame(stream)
            .map_err(|err| ChannelError::Answer(err.to_string()))?;
        ServerMessage::decode(payload)
            .map_err(|err| ChannelError::Answer(format!("an answer that does not decode: {err}")))
    }

    /// Best effort, before giving up on the connection: tells a runner that
    /// may still be reading not to cache the run.
    pub fn say_not_cacheable(&mut self, reason: &str) {
        let _ = self.send(&ClientMessage::disable_cache(reason.to_owned()));
    }
}

/// Leaves a marker in the runner's private directory `dir` (see
/// [`ClientConfig::marker_dir`](super::ClientConfig::marker_dir)) saying this
/// process gave up on something, so the run is not cacheable even though the
/// channel itself failed. A runner reads markers at close. Returns whether a
/// marker was written: there is none to write when the directory is gone (no
/// runner to tell).
pub fn leave_marker(dir: &Path, reason: &str) -> bool {
    let pid = std::process::id();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!("{LOST_MARKER_PREFIX}{pid}-{nanos}.json"));
    let body = serde_json::json!({ "pid": pid, "reason": reason }).to_string();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut file| file.write_all(body.as_bytes()))
        .is_ok()
}
