//! The tool side: a synchronous client, one connection per process.
//!
//! Every call is safe to make with no runner listening: the client finds the
//! runner through [`ENV_SOCKET`] and [`ENV_TOKEN`]; when they are missing, the
//! runner refuses the handshake, or the connection breaks, the client turns
//! into a no-op for the rest of the process. It never panics and never blocks
//! longer than its timeout.
//!
//! Env answers are cached per process and shared by every thread: a name (or
//! query) already answered with the same or a stronger `tracked` is answered
//! locally with no round trip.

mod answers;
mod channel;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use crate::env::{check_glob, EnvQuery, InvalidGlob};
use crate::paths::absolutize;
use crate::protocol::{
    truncate_utf8, ClientMessage, ServerMessage, ENV_DEBUG, ENV_DIR, ENV_SOCKET, ENV_TIMEOUT_MS,
    ENV_TOKEN, MAX_CALLER_BYTES, MAX_COMMAND_BYTES,
};

pub use answers::EnvAnswers;
pub use channel::{leave_marker, Channel, ChannelError};

/// How long a call waits on the runner before giving up, unless the runner
/// set [`ENV_TIMEOUT_MS`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const UNTRIED: u8 = 0;
const CONNECTED: u8 = 1;
const OFFLINE: u8 = 2;

/// Where to find the runner, as read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The runner's socket path.
    pub socket: String,
    /// The per-server handshake token.
    pub token: String,
    /// How long to wait for the runner on any one call; `None`: as long as
    /// it takes.
    pub timeout: Option<Duration>,
    /// The runner's private directory, where lost markers go ([`ENV_DIR`]);
    /// `None`: the directory holding the socket (Unix), or nowhere (a
    /// Windows pipe has no directory).
    pub dir: Option<PathBuf>,
}

impl ClientConfig {
    /// Reads the configuration a runner put in this process's environment;
    /// `None` when no runner is listening.
    pub fn from_env() -> Option<Self> {
        let socket = std::env::var(ENV_SOCKET).ok().filter(|s| !s.is_empty())?;
        let token = std::env::var(ENV_TOKEN).ok()?;
        // `0` means no limit (a runner under a debugger); anything that is
        // not a number of milliseconds means the default.
        let timeout = match std::env::var(ENV_TIMEOUT_MS)
            .ok()
            .map(|ms| ms.trim().parse::<u64>())
        {
            Some(Ok(0)) => None,
            Some(Ok(ms)) => Some(Duration::from_millis(ms)),
            _ => Some(DEFAULT_TIMEOUT),
        };
        let dir = std::env::var_os(ENV_DIR)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        Some(Self {
            socket,
            token,
            timeout,
            dir,
        })
    }

    /// Where this client leaves lost markers, if anywhere.
    pub fn marker_dir(&self) -> Option<&Path> {
        match &self.dir {
            Some(dir) => Some(dir),
            None if cfg!(unix) => Path::new(&self.socket).parent(),
            None => None,
        }
    }
}

/// This process's command line as a person would type it: arguments joined
/// by spaces, one with whitespace (or none at all) single-quoted, at most
/// [`MAX_COMMAND_BYTES`].
pub fn command_line() -> String {
    let line = std::env::args_os()
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(char::is_whitespace) {
                format!("'{arg}'")
            } else {
                arg.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    truncate_utf8(&line, MAX_COMMAND_BYTES).into_owned()
}

/// A client of one runner.
#[derive(Debug)]
pub struct Client {
    config: Option<ClientConfig>,
    state: AtomicU8,
    channel: Mutex<Channel>,
    answers: EnvAnswers,
}

impl Client {
    /// A client for the runner described by `config`; `None` makes every call
    /// a no-op. Connects on first use.
    pub fn new(config: Option<ClientConfig>) -> Self {
        let state = if config.is_some() { UNTRIED } else { OFFLINE };
        Self {
            config,
            state: AtomicU8::new(state),
            channel: Mutex::new(Channel::default()),
            answers: EnvAnswers::default(),
        }
    }

    /// The process-wide client, configured from the environment at first use.
    pub fn global() -> &'static Client {
        static GLOBAL: OnceLock<Client> = OnceLock::new();
        GLOBAL.get_or_init(|| Client::new(ClientConfig::from_env()))
    }

    /// The runner's private directory, where lost markers go; `None` without
    /// a runner or where it has none.
    pub fn marker_dir(&self) -> Option<&Path> {
        self.config.as_ref()?.marker_dir()
    }

    /// Whether a runner accepted this process's handshake. Connects if no call
    /// has yet.
    pub fn is_connected(&self) -> bool {
        if self.state.load(Ordering::Acquire) != OFFLINE {
            let mut channel = self.channel();
            self.ensure_connected(&mut channel);
        }
        self.state.load(Ordering::Acquire) == CONNECTED
    }

    /// Reads under `path` (absolute, or relative to the current directory)
    /// are not inputs.
    pub fn ignore_input(&self, path: &str) {
        self.report_path(path, |path| ClientMessage::IgnoreInput { path });
    }

    /// Writes under `path` are not outputs.
    pub fn ignore_output(&self, path: &str) {
        self.report_path(path, |path| ClientMessage::IgnoreOutput { path });
    }

    /// `path` is an input of this run.
    pub fn add_input(&self, path: &str) {
        self.report_path(path, |path| ClientMessage::AddInput { path });
    }

    /// `path` is an output of this run.
    pub fn add_output(&self, path: &str) {
        self.report_path(path, |path| ClientMessage::AddOutput { path });
    }

    /// A named value that belongs in this run's cache key; an empty name is
    /// ignored.
    pub fn add_value(&self, name: &str, value: &str) {
        if name.is_empty() {
            return;
        }
        self.report(ClientMessage::AddValue {
            name: name.to_owned(),
            value: value.to_owned(),
        });
    }

    /// This run must not be cached. The runner is told this process's
    /// command line with it, so its user can see who disabled caching.
    pub fn disable_cache(&self, reason: Option<&str>) {
        self.disable_cache_from(reason, None);
    }

    /// [`Client::disable_cache`] naming the code that asked: `caller` is
    /// shown to the runner's user, and a runner may let its user overrule a
    /// caller they know to be wrong (at most [`MAX_CALLER_BYTES`] are sent).
    pub fn disable_cache_from(&self, reason: Option<&str>, caller: Option<&str>) {
        if self.is_offline() {
            return;
        }
        self.report(ClientMessage::DisableCache {
            reason: reason.map(str::to_owned),
            caller: caller
                .filter(|caller| !caller.is_empty())
                .map(|caller| truncate_utf8(caller, MAX_CALLER_BYTES).into_owned()),
            command: Some(command_line()),
        });
    }

    /// The runner's value of `name`; `None` when it has none or no runner is
    /// listening.
    pub fn get_env(&self, name: &str, tracked: bool) -> Option<String> {
        self.with_env(name, tracked, |value| value.map(str::to_owned))
    }

    /// [`Client::get_env`] without copying a cached answer: `f` sees it while
    /// the cache is read-locked, so the binding can turn it straight into a JS
    /// string (a repeated `getEnv` then allocates nothing in Rust).
    pub fn with_env<R>(&self, name: &str, tracked: bool, f: impl FnOnce(Option<&str>) -> R) -> R {
        match self.answers.with_cached(name, tracked, f) {
            Ok(answer) => answer,
            Err(f) => {
                let value = self.get_env_batch(&[name], tracked).pop().flatten();
                f(value.as_deref())
            }
        }
    }

    /// The runner's values of `names`, in order, asking only for the names not
    /// already answered, in one round trip.
    pub fn get_env_batch(&self, names: &[&str], tracked: bool) -> Vec<Option<String>> {
        if self.is_offline() {
            return self
                .answers
                .names(names, tracked, &self.channel, |_, _| None);
        }
        self.answers
            .names(names, tracked, &self.channel, |channel, missing| {
                let request = ClientMessage::GetEnv {
                    names: missing.to_vec(),
                    tracked,
                };
                match self.request(channel, &request)? {
                    ServerMessage::Env { values } if values.len() == missing.len() => Some(values),
                    _ => {
                        self.give_up(channel, "the runner answered getEnv with something else");
                        None
                    }
                }
            })
    }

    /// Every runner variable matching `query`; empty when no runner is listening.
    /// A glob the runner would not parse is the caller's error, reported
    /// whether or not a runner listens, and never sent (the check is
    /// [`check_glob`], with no glob library in the tool's build).
    pub fn get_envs(
        &self,
        query: &EnvQuery,
        tracked: bool,
    ) -> Result<BTreeMap<String, String>, InvalidGlob> {
        if let Some(matches) = self.answers.cached_query(query, tracked) {
            return Ok(matches);
        }
        if let EnvQuery::Glob(glob) = query {
            check_glob(glob)?;
        }
        if self.is_offline() {
            return Ok(BTreeMap::new());
        }
        let matches = self
            .answers
            .query(query, tracked, &self.channel, |channel| {
                let request = ClientMessage::GetEnvs {
                    query: query.clone(),
                    tracked,
                };
                match self.request(channel, &request)? {
                    ServerMessage::Envs { matches } => Some(matches),
                    _ => {
                        self.give_up(channel, "the runner answered getEnvs with something else");
                        None
                    }
                }
            });
        Ok(matches.unwrap_or_default())
    }

    fn is_offline(&self) -> bool {
        self.state.load(Ordering::Acquire) == OFFLINE
    }

    fn report_path(&self, path: &str, message: impl FnOnce(String) -> ClientMessage) {
        // No file has an empty name or a NUL byte; the TypeScript API throws
        // for both, direct callers get a no-op.
        if self.is_offline() || path.is_empty() || path.contains('\0') {
            return;
        }
        // No cwd (it was deleted): resolve against the root rather than drop it.
        let cwd = || std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let path = absolutize(path, cwd).to_string_lossy().into_owned();
        self.report(message(path));
    }

    /// Sends a fire-and-forget message; returns once the bytes are in the kernel.
    fn report(&self, message: ClientMessage) {
        if self.is_offline() {
            return;
        }
        let mut channel = self.channel();
        if !self.ensure_connected(&mut channel) {
            return;
        }
        if let Err(err) = channel.send(&message) {
            self.give_up(&mut channel, &err.to_string());
        }
    }

    /// Sends a request and waits for its answer; `None` when the runner did
    /// not answer (the client is then offline and the run marked).
    fn request(&self, channel: &mut Channel, message: &ClientMessage) -> Option<ServerMessage> {
        if !self.ensure_connected(channel) {
            return None;
        }
        match channel.request(message) {
            Ok(answer) => Some(answer),
            Err(err) => {
                self.give_up(channel, &err.to_string());
                None
            }
        }
    }

    /// Connects and handshakes if that has not been tried yet, and again in a
    /// forked child, which must not use its parent's connection.
    fn ensure_connected(&self, channel: &mut Channel) -> bool {
        if channel.is_inherited() {
            channel.reset();
            self.answers.clear();
            self.state.store(UNTRIED, Ordering::Release);
        }
        match self.state.load(Ordering::Acquire) {
            CONNECTED => return channel.is_open(),
            OFFLINE => return false,
            _ => {}
        }
        let Some(config) = &self.config else {
            self.state.store(OFFLINE, Ordering::Release);
            return false;
        };
        match channel.open(&config.socket, &config.token, config.timeout) {
            Ok(()) => {
                self.state.store(CONNECTED, Ordering::Release);
                true
            }
            // A refusal is recorded by the runner itself (from a peer with
            // the token it makes the run not cacheable); nothing was lost.
            Err(err @ ChannelError::Refused(_)) => {
                self.go_offline(channel, &err.to_string());
                false
            }
            Err(err) => {
                self.give_up(channel, &err.to_string());
                false
            }
        }
    }

    /// Gives up on the runner for the rest of the process, leaving it word
    /// that this run is not cacheable: a marker file in its directory, which
    /// it reads at close even when the connection is what failed, or, where
    /// no marker can be written, a `disableCache` on the connection.
    fn give_up(&self, channel: &mut Channel, why: &str) {
        // The marker first: it costs no wait, and it survives this process
        // being killed. Only without one is the connection tried, which may
        // block for another timeout when the runner is what stalled.
        let marked = self
            .config
            .as_ref()
            .and_then(ClientConfig::marker_dir)
            .is_some_and(|dir| leave_marker(dir, why));
        if !marked && channel.is_open() {
            channel.say_not_cacheable(&format!("a tool gave up on the runner: {why}"));
        }
        self.go_offline(channel, why);
    }

    /// Stops talking to the runner for the rest of the process; with
    /// [`ENV_DEBUG`] set, says why on stderr.
    fn go_offline(&self, channel: &mut Channel, why: &str) {
        channel.reset();
        self.state.store(OFFLINE, Ordering::Release);
        if std::env::var_os(ENV_DEBUG).is_some() {
            eprintln!("runner-aware: client offline: {why}");
        }
    }

    fn channel(&self) -> MutexGuard<'_, Channel> {
        self.channel.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
