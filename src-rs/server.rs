//! The runner side: one server per task run.
//!
//! A [`Server`] listens on a Unix socket in a fresh private directory, accepts
//! every process of the task that inherited [`Server::env`], and records what
//! they report. [`Server::close`] stops accepting, takes every connection that
//! was already queued, reads every byte the tools wrote, waits a bounded grace
//! period for connections still open, and returns the merged [`Reports`].

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::env::{EnvMatcher, EnvQuery, EnvTable, InvalidGlob, DEFAULT_UNTRACKED_ENV};
use crate::paths::validate_reported;
use crate::protocol::{
    encode_frame, ClientMessage, FrameDecoder, FrameError, ServerMessage, ENV_CLIENT_PATH,
    ENV_SOCKET, ENV_TOKEN, MAX_CLIENT_FRAME, MAX_SERVER_FRAME, PROTOCOL_VERSION,
};
use crate::reports::{Recorder, Reports};
use crate::runtime;
use crate::transport::{EndpointError, Listener};

/// Env name globs of the channel itself, never tracked.
const CHANNEL_ENV: &[&str] = &["RUNNER_AWARE_*", ENV_CLIENT_PATH];

/// How long [`Server::close`] waits for connections still open by default.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Largest frame accepted before the handshake: a hello is about 100 bytes.
pub const MAX_HELLO_FRAME: usize = 4 * 1024;

/// How long a new connection may take to send its hello. Real clients send
/// it right after connecting; this only bounds peers that never do.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a server is set up.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The variables tools may fetch; `None` snapshots this process's env
    /// (bytes that are not UTF-8 become U+FFFD).
    pub env: Option<HashMap<String, String>>,
    /// Name globs served but never tracked; `None` uses [`DEFAULT_UNTRACKED_ENV`].
    /// The channel's own variables (`RUNNER_AWARE_*`, `VP_RUN_NODE_CLIENT_PATH`)
    /// are added to any list.
    pub untracked_env: Option<Vec<String>>,
    /// Grace for connections still open at close; `None` uses [`DEFAULT_CLOSE_TIMEOUT`].
    pub close_timeout: Option<Duration>,
    /// The Node addon to hand out as `VP_RUN_NODE_CLIENT_PATH`, so tools using
    /// `@voidzero-dev/vite-task-client` report here.
    pub client_path: Option<PathBuf>,
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket (or named pipe) could not be set up.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The OS gave no randomness for the token.
    #[error("cannot generate the handshake token: {0}")]
    Token(String),
    /// An `untracked_env` pattern is not a valid glob.
    #[error(transparent)]
    UntrackedEnv(#[from] InvalidGlob),
}

/// Where a server is in its life; connections watch it to know when to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Draining { deadline: Instant },
}

/// State every connection of one server shares.
struct Shared {
    recorder: Mutex<Recorder>,
    env: EnvTable,
    token: String,
    connections: Mutex<Vec<JoinHandle<()>>>,
    phase: watch::Receiver<Phase>,
}

impl Shared {
    fn recorder(&self) -> MutexGuard<'_, Recorder> {
        // A panic while recording cannot leave the recorder half-updated in a
        // way that matters more than losing the run's reports.
        self.recorder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spawn_connection<S>(self: &Arc<Self>, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::clone(self);
        let task = tokio::spawn(async move { serve_connection(stream, shared).await });
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if connections.len() >= 64 && connections.len().is_power_of_two() {
            connections.retain(|task| !task.is_finished());
        }
        connections.push(task);
    }
}

/// A server for one task run.
pub struct Server {
    shared: Arc<Shared>,
    socket_path: PathBuf,
    child_env: BTreeMap<String, String>,
    phase: watch::Sender<Phase>,
    accept_task: JoinHandle<Option<Listener>>,
    close_timeout: Duration,
}

impl Server {
    /// Starts a server on the shared background runtime.
    pub fn start(options: ServerOptions) -> Result<Self, ServerError> {
        let env = options.env.unwrap_or_else(snapshot_env);
        let mut untracked = options.untracked_env.unwrap_or_else(|| {
            DEFAULT_UNTRACKED_ENV
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        });
        // A runner's own channel variables differ on every run (an outer
        // runner's, when runners nest): never tracked, whatever the list says.
        for own in CHANNEL_ENV {
            if !untracked.iter().any(|pattern| pattern == own) {
                untracked.push((*own).to_owned());
            }
        }
        let table = EnvTable::new(env, untracked.clone())?;
        let token = random_token()?;
        let handle = runtime::handle();
        let listener = {
            let _entered = handle.enter();
            Listener::bind()?
        };
        let socket_path = PathBuf::from(listener.address());
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let shared = Arc::new(Shared {
            recorder: Mutex::new(Recorder::new(untracked)),
            env: table,
            token: token.clone(),
            connections: Mutex::new(Vec::new()),
            phase: phase_rx,
        });
        let accept_task = handle.spawn(accept_loop(listener, Arc::clone(&shared)));
        let mut child_env = BTreeMap::from([
            (
                ENV_SOCKET.to_owned(),
                socket_path.to_string_lossy().into_owned(),
            ),
            (ENV_TOKEN.to_owned(), token),
        ]);
        if let Some(client_path) = options.client_path {
            child_env.insert(
                ENV_CLIENT_PATH.to_owned(),
                client_path.to_string_lossy().into_owned(),
            );
        }
        Ok(Self {
            shared,
            socket_path,
            child_env,
            phase: phase_tx,
            accept_task,
            close_timeout: options.close_timeout.unwrap_or(DEFAULT_CLOSE_TIMEOUT),
        })
    }

    /// The variables to merge into the child's environment.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.child_env
    }

    /// The socket the server listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The reports so far, without closing.
    pub fn snapshot(&self) -> Reports {
        self.shared.recorder().snapshot()
    }

    /// Stops accepting, drains every connection, removes the socket directory
    /// and returns the run's reports. Awaitable from any executor: the work
    /// runs on the shared runtime.
    pub fn close(self) -> impl Future<Output = Reports> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        let task = runtime::handle().spawn(self.drain());
        async move {
            match task.await {
                Ok(reports) => reports,
                // The drain task only fails if it panicked; the recorder still
                // holds everything that arrived.
                Err(_) => shared.recorder().snapshot(),
            }
        }
    }

    /// [`Server::close`] for callers outside any async runtime.
    pub fn close_blocking(self) -> Reports {
        let (tx, rx) = std::sync::mpsc::channel();
        let close = self.close();
        runtime::handle().spawn(async move {
            let _ = tx.send(close.await);
        });
        rx.recv().unwrap_or_default()
    }

    async fn drain(self) -> Reports {
        let deadline = Instant::now() + self.close_timeout;
        // Nobody may be watching (no connection yet); that is fine.
        let _ = self.phase.send(Phase::Draining { deadline });
        let endpoint = match self.accept_task.await {
            Ok(Some(listener)) => {
                let (queued, endpoint) = listener.into_queued().await;
                for connection in queued {
                    self.shared.spawn_connection(connection);
                }
                Some(endpoint)
            }
            _ => None,
        };
        loop {
            let tasks = std::mem::take(
                &mut *self
                    .shared
                    .connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                let _ = task.await;
            }
        }
        // Every connection has ended: nothing records any more.
        let reports = std::mem::take(&mut *self.shared.recorder()).into_reports();
        if let Some(endpoint) = endpoint {
            endpoint.remove();
        }
        reports
    }
}

/// This process's env. Bytes that are not UTF-8 become U+FFFD, as Node's
/// `process.env` shows them, so a tool sees the same value either way.
fn snapshot_env() -> HashMap<String, String> {
    std::env::vars_os()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

fn random_token() -> Result<String, ServerError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| ServerError::Token(err.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Accepts until the server starts draining, then hands the listener back so
/// the connections already queued can be taken without racing the reactor.
async fn accept_loop(mut listener: Listener, shared: Arc<Shared>) -> Option<Listener> {
    let mut phase = shared.phase.clone();
    loop {
        tokio::select! {
            biased;
            _ = phase.changed() => return Some(listener),
            accepted = listener.accept() => match accepted {
                Ok(connection) => shared.spawn_connection(connection),
                // Out of file descriptors or similar: back off instead of spinning;
                // queued peers stay in the backlog until there is room.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
        }
    }
}

/// Per-connection protocol state.
struct Connection {
    decoder: FrameDecoder,
    responses: Vec<u8>,
    authenticated: bool,
    pid: Option<u32>,
}

/// What to do with a connection after its latest bytes.
enum Next {
    /// Every complete frame was handled; read more.
    Continue,
    /// Answers reached [`MAX_PENDING_ANSWERS`]: write them, then handle the rest.
    Flush,
    /// A protocol violation ended the connection.
    Close,
}

/// Answers buffered before they are written: a peer that sends many requests
/// at once cannot make the runner hold all their answers in memory.
const MAX_PENDING_ANSWERS: usize = 1 << 20;

async fn serve_connection<S>(mut stream: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut phase = shared.phase.clone();
    let mut connection = Connection {
        // Until the hello is accepted a frame may only be hello-sized, so a
        // peer without the token cannot make the runner buffer a 1 MiB frame.
        decoder: FrameDecoder::new(MAX_HELLO_FRAME),
        responses: Vec::new(),
        authenticated: false,
        pid: None,
    };
    let handshake_deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let current = *phase.borrow_and_update();
        let deadline = match current {
            Phase::Draining { deadline } => Some(deadline),
            Phase::Running if !connection.authenticated => Some(handshake_deadline),
            Phase::Running => None,
        };
        let running = current == Phase::Running;
        let read = tokio::select! {
            biased;
            read = stream.read(connection.decoder.spare()) => read,
            changed = phase.changed(), if running => match changed {
                Ok(()) => continue,
                // The server was dropped without `close()`: nobody will read the reports.
                Err(_) => return,
            },
            () = sleep_until(deadline), if deadline.is_some() => {
                if running {
                    connection.handshake_timed_out(&shared);
                } else {
                    connection.cut_off(&shared);
                }
                return;
            }
        };
        match read {
            Ok(0) => {
                connection.finish(&shared);
                return;
            }
            Ok(n) => {
                connection.decoder.filled(n);
                loop {
                    let next = connection.process(&shared);
                    if !connection.responses.is_empty() {
                        let written =
                            write_bounded(&mut stream, &connection.responses, &mut phase).await;
                        connection.responses.clear();
                        match written {
                            Written::All => {}
                            Written::PeerGone => {
                                // What the peer sent is already recorded, but a
                                // frame it was part-way through must be noted.
                                connection.finish(&shared);
                                return;
                            }
                            Written::CutOff => {
                                connection.cut_off(&shared);
                                return;
                            }
                        }
                    }
                    match next {
                        Next::Continue => break,
                        Next::Flush => {}
                        Next::Close => return,
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // A peer that dies with unread data in its socket shows up as a
                // reset rather than EOF; the kernel has delivered everything
                // it sent by then, so this ends the connection like EOF does.
                connection.finish(&shared);
                return;
            }
        }
    }
}

/// How a bounded write ended.
enum Written {
    All,
    /// The peer closed its end or the server was dropped.
    PeerGone,
    /// The close grace period ran out while the peer was not reading.
    CutOff,
}

/// Writes `bytes`, giving up when the close grace period ends: a peer that
/// stops reading its answers must not hold `close()` open.
/// Sleeps until `deadline`; never ends without one. `select!` builds every
/// branch's future on each pass, and a `Sleep` built for a disabled branch
/// still read the clock: once per request on the hot path.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn write_bounded<S>(
    stream: &mut S,
    bytes: &[u8],
    phase: &mut watch::Receiver<Phase>,
) -> Written
where
    S: AsyncWrite + Unpin,
{
    let write = stream.write_all(bytes);
    tokio::pin!(write);
    loop {
        let deadline = match *phase.borrow_and_update() {
            Phase::Draining { deadline } => Some(deadline),
            Phase::Running => None,
        };
        tokio::select! {
            biased;
            written = &mut write => {
                return if written.is_ok() { Written::All } else { Written::PeerGone };
            }
            changed = phase.changed(), if deadline.is_none() => {
                if changed.is_err() {
                    return Written::PeerGone;
                }
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                return Written::CutOff;
            }
        }
    }
}

impl Connection {
    /// Handles every complete frame received so far.
    fn process(&mut self, shared: &Shared) -> Next {
        let mut recorder = shared.recorder();
        loop {
            if self.responses.len() >= MAX_PENDING_ANSWERS {
                return Next::Flush;
            }
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Next::Continue,
                Err(err) => {
                    recorder.record_error(err.to_string(), self.pid);
                    return Next::Close;
                }
            };
            let message = match ClientMessage::decode(frame) {
                Ok(message) => message,
                Err(err) => {
                    recorder.record_error(FrameError::Malformed(err).to_string(), self.pid);
                    return Next::Close;
                }
            };
            if !self.authenticated {
                match self.handshake(message, shared) {
                    Ok(()) => {
                        recorder.count_client();
                        continue;
                    }
                    Err(reason) => {
                        recorder.record_error(format!("handshake refused: {reason}"), self.pid);
                        let _ = encode_frame(
                            &ServerMessage::Refused { reason },
                            MAX_SERVER_FRAME,
                            &mut self.responses,
                        );
                        return Next::Close;
                    }
                }
            }
            if let Err(message) = self.handle(message, shared, &mut recorder) {
                recorder.record_error(message, self.pid);
                return Next::Close;
            }
        }
    }

    fn handshake(&mut self, message: ClientMessage, shared: &Shared) -> Result<(), String> {
        let ClientMessage::Hello {
            version,
            token,
            pid,
        } = message
        else {
            return Err("the first frame must be a hello".to_owned());
        };
        self.pid = Some(pid);
        if version != PROTOCOL_VERSION {
            return Err(format!(
                "protocol version {version} is not supported (this runner speaks {PROTOCOL_VERSION})"
            ));
        }
        if !constant_time_eq(token.as_bytes(), shared.token.as_bytes()) {
            return Err("wrong token".to_owned());
        }
        self.authenticated = true;
        self.decoder.set_limit(MAX_CLIENT_FRAME);
        let _ = encode_frame(
            &ServerMessage::Welcome {
                version: PROTOCOL_VERSION,
            },
            MAX_SERVER_FRAME,
            &mut self.responses,
        );
        Ok(())
    }

    /// Applies one message of an authenticated peer; `Err` is a protocol
    /// violation that ends the connection.
    fn handle(
        &mut self,
        message: ClientMessage,
        shared: &Shared,
        recorder: &mut Recorder,
    ) -> Result<(), String> {
        let path = |path: String| validate_reported(path).map_err(|err| err.to_string());
        match message {
            ClientMessage::Hello { .. } => return Err("unexpected second hello".to_owned()),
            ClientMessage::IgnoreInput { path: p } => recorder.ignore_input(path(p)?),
            ClientMessage::IgnoreOutput { path: p } => recorder.ignore_output(path(p)?),
            ClientMessage::AddInput { path: p } => recorder.add_input(path(p)?),
            ClientMessage::AddOutput { path: p } => recorder.add_output(path(p)?),
            ClientMessage::AddValue { name, value } => {
                if name.is_empty() {
                    return Err("addValue with an empty name".to_owned());
                }
                recorder.add_value(name, value);
            }
            ClientMessage::DisableCache { reason } => recorder.disable_cache(reason),
            ClientMessage::GetEnv { names, tracked } => {
                recorder.count_env_request();
                let values = names
                    .iter()
                    .map(|name| {
                        let value = shared.env.get(name);
                        let tracked = tracked && !shared.env.is_untracked(name);
                        recorder.record_env(name, value, tracked);
                        value.map(str::to_owned)
                    })
                    .collect();
                self.respond(&ServerMessage::Env { values }, recorder);
            }
            ClientMessage::GetEnvs { query, tracked } => {
                recorder.count_env_request();
                let matches = serve_query(&query, tracked, shared, recorder, self.pid);
                self.respond(&ServerMessage::Envs { matches }, recorder);
            }
        }
        Ok(())
    }

    fn respond(&mut self, message: &ServerMessage, recorder: &mut Recorder) {
        if let Err(err) = encode_frame(message, MAX_SERVER_FRAME, &mut self.responses) {
            recorder.record_error(format!("cannot answer: {err}"), self.pid);
            // The client still needs an answer to stay in step: an empty one.
            let empty = match message {
                ServerMessage::Env { values } => ServerMessage::Env {
                    values: vec![None; values.len()],
                },
                _ => ServerMessage::Envs {
                    matches: BTreeMap::new(),
                },
            };
            let _ = encode_frame(&empty, MAX_SERVER_FRAME, &mut self.responses);
            recorder.disable_cache(Some("an env answer exceeded the frame limit".to_owned()));
        }
    }

    /// The peer closed its end: everything it sent has been read.
    fn finish(&self, shared: &Shared) {
        if let Err(err) = self.decoder.finish() {
            shared.recorder().record_error(err.to_string(), self.pid);
        }
    }

    /// The peer connected but sent no valid hello in time.
    fn handshake_timed_out(&self, shared: &Shared) {
        shared.recorder().record_error(
            format!(
                "no handshake within {} s; connection closed",
                HANDSHAKE_TIMEOUT.as_secs()
            ),
            self.pid,
        );
    }

    /// The close grace period ran out while the peer kept its end open.
    fn cut_off(&self, shared: &Shared) {
        let mut recorder = shared.recorder();
        if self.authenticated {
            recorder.count_still_connected();
        } else {
            recorder.record_error(
                "connection closed by the runner before it completed the handshake".to_owned(),
                self.pid,
            );
        }
        if self.decoder.pending() > 0 {
            recorder.record_error(
                format!(
                    "{} bytes of an unfinished frame dropped at close",
                    self.decoder.pending()
                ),
                self.pid,
            );
        }
    }
}

fn serve_query(
    query: &EnvQuery,
    tracked: bool,
    shared: &Shared,
    recorder: &mut Recorder,
    pid: Option<u32>,
) -> BTreeMap<String, String> {
    match EnvMatcher::new(query) {
        Ok(matcher) => {
            let matches = shared.env.matching(&matcher);
            recorder.record_query(query, tracked, &matches);
            matches
        }
        Err(err) => {
            recorder.record_error(err.to_string(), pid);
            BTreeMap::new()
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
