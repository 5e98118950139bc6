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

use crate::client::Client;
use crate::env::{EnvTable, InvalidGlob, DEFAULT_UNTRACKED_ENV};
use crate::nesting::NestedRun;
use crate::protocol::{ENV_CLIENT_PATH, ENV_DIR, ENV_SOCKET, ENV_TOKEN};
use crate::reports::{EnvValues, Recorder, Reports, UncacheableKind};
use crate::rules::{apply_trace_and_ignores, normalize};
use crate::runtime;
use crate::session::{Next, Session, SessionContext, SessionState};
use crate::trace::{TraceMode, TraceSession, TraceUnavailable, Tracer};
use crate::transport::{Connection, EndpointError, Listener};

/// Env name globs of the channel itself, never tracked.
const CHANNEL_ENV: &[&str] = &["RUNNER_AWARE_*", ENV_CLIENT_PATH];

/// How long [`Server::close`] waits for connections still open by default.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_millis(1000);

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
    /// The Node addon to hand out as `VP_RUN_NODE_CLIENT_PATH` (the `.node`
    /// file of the `runner-aware-<triple>` package), so tools using
    /// `@voidzero-dev/vite-task-client`, which only ever load that variable,
    /// report here. Tools using the npm package `runner-aware` need none: with
    /// `None`, or a path they cannot load, they talk through their own
    /// package's addon, and one that can load no client at all leaves a lost
    /// marker, so the run is not cacheable. `None` hands out nothing.
    ///
    /// A vite-task-client tool that cannot load the file says nothing, so
    /// [`Server::start`] refuses a path that is no file or no object file
    /// of this platform ([`ServerError::ClientPath`]) rather than start a
    /// run whose tools would go unheard.
    pub client_path: Option<PathBuf>,
    /// Whether, when a runner listens to this process (this runner is a task
    /// of another), the reports are forwarded upstream at close
    /// ([`crate::nesting`]). `None` means yes.
    pub forward: Option<bool>,
    /// How the reports hold env values; `None` means
    /// [`EnvValues::Sha256`], so nothing a runner stores, prints or uploads
    /// carries a secret. Ask for [`EnvValues::Plain`] only to use the values.
    pub env_values: Option<EnvValues>,
    /// Trace what every process of the task reads, looks up, lists, writes
    /// and deletes (Linux), through the tracer in
    /// [`ServerOptions::tracer_dir`]. The trace comes back as
    /// `reports.trace`; a trace that may miss accesses makes the run not
    /// cacheable (a `trace` reason), as does a path the task read and then
    /// wrote or deleted that no ignored input covers (`modified-input`).
    /// Spawn [`Server::command`] with [`Server::env`]. `None` traces nothing.
    pub trace: Option<TraceRequest>,
    /// Where the tracer is (`runner-aware-trace.<triple>` and
    /// `runner-aware-preload.<triple>.so`: the npm platform package's
    /// directory, beside its addon); `None` looks in the directory
    /// `RUNNER_AWARE_TRACER_DIR` names.
    pub tracer_dir: Option<PathBuf>,
    /// Paths the runner's user ignores, as if a tool had called
    /// `ignoreInput` and `ignoreOutput` for each (the runner's own cache
    /// directory, a log file): they join the reports' `ignored_inputs` and
    /// `ignored_outputs`. Relative paths resolve against the current
    /// directory.
    pub ignore: Vec<String>,
}

/// How a server traces its task ([`ServerOptions::trace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceRequest {
    /// Trace in preload mode where the tracer runs; elsewhere the trace is
    /// `unsupported` with the reason, and the run falls back to what the
    /// tools declared (or the repository's content).
    IfSupported,
    /// Trace in this mode, or fail to start: [`ServerError::Trace`].
    Mode(TraceMode),
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
    /// A trace mode was asked for and cannot be done here.
    #[error(transparent)]
    Trace(#[from] TraceUnavailable),
    /// `client_path` names no Node addon this platform could load.
    #[error("client_path {path} is not a Node addon for this platform: {reason}")]
    ClientPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The first bytes of a loadable library here: ELF, PE (`MZ`) or Mach-O.
fn object_magic_ok(head: &[u8]) -> bool {
    if cfg!(windows) {
        head.starts_with(b"MZ")
    } else if cfg!(target_os = "macos") {
        [
            [0xfe, 0xed, 0xfa, 0xcf],
            [0xcf, 0xfa, 0xed, 0xfe],
            [0xca, 0xfe, 0xba, 0xbe],
            [0xbe, 0xba, 0xfe, 0xca],
        ]
        .iter()
        .any(|magic| head.starts_with(magic))
    } else {
        head.starts_with(b"\x7fELF")
    }
}

/// Opens `path` for reading without waiting on it (a FIFO swapped in after
/// it was looked at opens at once instead of blocking the runner).
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
    }
    #[cfg(not(unix))]
    {
        std::fs::File::open(path)
    }
}

/// Checks that `path` is a regular file that starts as an object file of
/// this platform does: a missing file, a truncated download or random bytes
/// are refused before any tool is started.
fn check_addon(path: &Path) -> Result<(), ServerError> {
    let refuse = |reason: String| ServerError::ClientPath {
        path: path.display().to_string(),
        reason,
    };
    // Looked at before it is opened: opening a FIFO would wait for a writer.
    let named = std::fs::metadata(path).map_err(|err| refuse(err.to_string()))?;
    if !named.is_file() {
        return Err(refuse("not a regular file".to_owned()));
    }
    let mut file = open_nonblocking(path).map_err(|err| refuse(err.to_string()))?;
    let meta = file.metadata().map_err(|err| refuse(err.to_string()))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".to_owned()));
    }
    let mut head = [0u8; 4];
    let read = std::io::Read::read(&mut file, &mut head).map_err(|err| refuse(err.to_string()))?;
    if !object_magic_ok(&head[..read]) {
        return Err(refuse(
            "it does not start as a library of this platform does (a truncated download, or another file)".to_owned(),
        ));
    }
    Ok(())
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

    fn context(&self) -> SessionContext<'_> {
        SessionContext {
            env: &self.env,
            token: &self.token,
        }
    }

    fn spawn_connection<S>(self: &Arc<Self>, stream: S, late: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::clone(self);
        let task = tokio::spawn(async move { serve_connection(stream, shared, late).await });
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
    nested: Option<NestedRun>,
    transports: Vec<&'static str>,
    env_values: EnvValues,
    trace: Option<TraceSession>,
    ignore: Vec<String>,
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
        // Before anything is made that would need removing.
        if let Some(client_path) = &options.client_path {
            check_addon(client_path)?;
        }
        let token = random_token()?;
        let handle = runtime::handle();
        let listener = {
            let _entered = handle.enter();
            Listener::bind()?
        };
        let socket_path = PathBuf::from(listener.address());
        let transports = listener.transports();
        let marker_dir = listener.marker_dir_env();
        // The private directory: named in the env where the address is not
        // a path inside it (a Windows named pipe).
        let private_dir = marker_dir
            .as_ref()
            .map(PathBuf::from)
            .or_else(|| socket_path.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let trace = match options.trace {
            None => None,
            Some(request) => {
                let (mode, required) = match request {
                    TraceRequest::IfSupported => (TraceMode::Preload, false),
                    TraceRequest::Mode(mode) => (mode, true),
                };
                let tracer = match &options.tracer_dir {
                    Some(dir) => Tracer::in_dir(dir),
                    None => Tracer::from_env(),
                };
                match TraceSession::start(mode, tracer, &private_dir, required) {
                    Ok(session) => Some(session),
                    Err(err) => {
                        // Nothing of this server may outlive the refusal.
                        listener.stop().remove();
                        return Err(err.into());
                    }
                }
            }
        };
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
        if let Some(dir) = marker_dir {
            child_env.insert(ENV_DIR.to_owned(), dir);
        }
        if let Some(client_path) = options.client_path {
            child_env.insert(
                ENV_CLIENT_PATH.to_owned(),
                client_path.to_string_lossy().into_owned(),
            );
        }
        if let Some(session) = &trace {
            child_env.extend(session.env().clone());
        }
        Ok(Self {
            trace,
            // Resolved now: the runner may change directory before close.
            ignore: options.ignore.iter().map(|path| normalize(path)).collect(),
            shared,
            socket_path,
            child_env,
            phase: phase_tx,
            accept_task,
            close_timeout: options.close_timeout.unwrap_or(DEFAULT_CLOSE_TIMEOUT),
            transports,
            env_values: options.env_values.unwrap_or(EnvValues::Sha256),
            nested: if options.forward.unwrap_or(true) {
                NestedRun::open(Client::global())
            } else {
                None
            },
        })
    }

    /// The variables to merge into the child's environment.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.child_env
    }

    /// How the task is traced ([`ServerOptions::trace`]): `None` when not
    /// asked, `unsupported` where nothing can be.
    pub fn trace_mode(&self) -> Option<TraceMode> {
        self.trace.as_ref().map(TraceSession::mode)
    }

    /// The command line to spawn for `argv`: under the trace supervisor
    /// when tracing, else `argv` as it is.
    pub fn command<S: Into<std::ffi::OsString> + Clone>(
        &self,
        argv: &[S],
    ) -> Vec<std::ffi::OsString> {
        match &self.trace {
            Some(session) => session.command(argv),
            None => argv.iter().cloned().map(Into::into).collect(),
        }
    }

    /// The socket the server listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The transports tools can reach this server by: `socket` and `fifo` on
    /// Unix (FIFOs only where the sandbox denies sockets, or as
    /// `RUNNER_AWARE_TRANSPORT` asks), `pipe` on Windows.
    pub fn transports(&self) -> &[&'static str] {
        &self.transports
    }

    /// The reports so far, without closing.
    pub fn snapshot(&self) -> Reports {
        let mut reports = self.shared.recorder().snapshot();
        apply_trace_and_ignores(&mut reports, None, &self.ignore);
        if self.env_values == EnvValues::Sha256 {
            reports.digest_env_values();
        }
        reports
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

    /// [`Server::close`] handing the reports to `then` on the background
    /// runtime: for callers with an event loop of their own (the Node binding
    /// resolves a promise from it).
    pub fn close_then(self, then: impl FnOnce(Reports) + Send + 'static) {
        let close = self.close();
        runtime::handle().spawn(async move { then(close.await) });
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
        let mut listener = self.accept_task.await.ok().flatten();
        // Connections the kernel queued before the close are the task's
        // processes that connected in time: their bytes must not be lost.
        if let Some(listener) = &mut listener {
            for connection in listener.take_queued().await {
                self.shared.spawn_connection(connection, false);
            }
        }
        loop {
            let tasks = std::mem::take(
                &mut *self
                    .shared
                    .connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if tasks.is_empty() {
                // One last look: a process that connected meanwhile outlived
                // the task's command; it is served, and marks the run.
                let late = match &mut listener {
                    Some(listener) => listener.take_queued().await,
                    None => Vec::new(),
                };
                if late.is_empty() {
                    break;
                }
                for connection in late {
                    self.shared.spawn_connection(connection, true);
                }
                continue;
            }
            for mut task in tasks {
                loop {
                    tokio::select! {
                        biased;
                        _ = &mut task => break,
                        accepted = accept_some(&mut listener) => match accepted {
                            Ok(connection) => self.shared.spawn_connection(connection, true),
                            // Out of descriptors: stop accepting; what is
                            // queued is looked at once more at the end.
                            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                        },
                    }
                }
            }
        }
        let endpoint = listener.map(Listener::stop);
        let mut recorder = std::mem::take(&mut *self.shared.recorder());
        if let Some(endpoint) = &endpoint {
            // Word from tools that could not use the channel (see
            // docs/protocol.md): read after every connection has ended.
            for marker in endpoint.lost_markers() {
                recorder.not_cacheable(
                    UncacheableKind::Lost,
                    format!("a tool could not deliver what it said: {}", marker.reason),
                    marker.pid,
                );
            }
        }
        // The trace file lives in the private directory the endpoint removes.
        let trace = match self.trace {
            Some(session) => {
                let mode = session.mode();
                Some(
                    tokio::task::spawn_blocking(move || session.finish())
                        .await
                        .unwrap_or_else(|_| crate::trace::Trace {
                            mode,
                            incomplete: vec!["reading the trace file panicked".to_owned()],
                            ..crate::trace::Trace::default()
                        }),
                )
            }
            None => None,
        };
        if let Some(endpoint) = endpoint {
            endpoint.remove();
        }
        let mut reports = recorder.into_reports();
        apply_trace_and_ignores(&mut reports, trace, &self.ignore);
        if let Some(nested) = self.nested {
            // Round trips to the outer runner block: off the shared runtime.
            let forwarded = reports.clone();
            let _ = tokio::task::spawn_blocking(move || nested.forward(&forwarded)).await;
        }
        if self.env_values == EnvValues::Sha256 {
            reports.digest_env_values();
        }
        reports
    }
}

/// The next connection of `listener`; never ends without one.
async fn accept_some(listener: &mut Option<Listener>) -> std::io::Result<Connection> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
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
                Ok(connection) => shared.spawn_connection(connection, false),
                // Out of file descriptors or similar: back off instead of spinning;
                // queued peers stay in the backlog until there is room.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
        }
    }
}

async fn serve_connection<S>(mut stream: S, shared: Arc<Shared>, late: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut phase = shared.phase.clone();
    let mut session = if late {
        Session::late()
    } else {
        Session::new()
    };
    let handshake_deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        let current = *phase.borrow_and_update();
        let awaiting_hello = session.state() == SessionState::AwaitingHello;
        let deadline = match current {
            Phase::Draining { deadline } => Some(deadline),
            Phase::Running if awaiting_hello => Some(handshake_deadline),
            Phase::Running => None,
        };
        let running = current == Phase::Running;
        let read = tokio::select! {
            biased;
            read = stream.read(session.spare()) => read,
            changed = phase.changed(), if running => match changed {
                Ok(()) => continue,
                // The server was dropped without `close()`: nobody will read the reports.
                Err(_) => return,
            },
            () = sleep_until(deadline), if deadline.is_some() => {
                let mut recorder = shared.recorder();
                if running {
                    session.handshake_timed_out(HANDSHAKE_TIMEOUT.as_secs(), &mut recorder);
                } else {
                    session.cut_off(&mut recorder);
                }
                return;
            }
        };
        match read {
            Ok(0) => {
                session.finish(&mut shared.recorder());
                return;
            }
            Ok(n) => {
                session.filled(n);
                loop {
                    let next = session.process(&shared.context(), &mut shared.recorder());
                    if !session.answers().is_empty() {
                        let written =
                            write_bounded(&mut stream, session.answers(), &mut phase).await;
                        session.answers_written();
                        match written {
                            Written::All => {}
                            Written::PeerGone => {
                                // What the peer sent is already recorded, but a
                                // frame it was part-way through must be noted.
                                session.finish(&mut shared.recorder());
                                return;
                            }
                            Written::CutOff => {
                                session.cut_off(&mut shared.recorder());
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
                session.finish(&mut shared.recorder());
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

/// Sleeps until `deadline`; never ends without one. `select!` builds every
/// branch's future on each pass, and a `Sleep` built for a disabled branch
/// still read the clock: once per request on the hot path.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Writes `bytes`, giving up when the close grace period ends: a peer that
/// stops reading its answers must not hold `close()` open.
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
