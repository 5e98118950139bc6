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

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{ConnectOptions, GenericFilePath, Stream};
use interprocess::ConnectWaitMode;
use rustc_hash::FxHashMap;

use crate::env::{EnvMatcher, EnvQuery, InvalidGlob};
use crate::paths::absolutize;
use crate::protocol::{
    encode_frame, ClientMessage, EncodeError, FrameDecoder, ServerMessage, ENV_DEBUG, ENV_SOCKET,
    ENV_TIMEOUT_MS, ENV_TOKEN, MAX_CLIENT_FRAME, MAX_SERVER_FRAME, PROTOCOL_VERSION,
};

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
    /// How long to wait for the runner on any one call.
    pub timeout: Duration,
}

impl ClientConfig {
    /// Reads the configuration a runner put in this process's environment;
    /// `None` when no runner is listening.
    pub fn from_env() -> Option<Self> {
        let socket = std::env::var(ENV_SOCKET).ok().filter(|s| !s.is_empty())?;
        let token = std::env::var(ENV_TOKEN).ok()?;
        let timeout = std::env::var(ENV_TIMEOUT_MS)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        Some(Self {
            socket,
            token,
            timeout,
        })
    }
}

/// A cached answer for one env name.
#[derive(Debug, Clone)]
struct NameAnswer {
    value: Option<String>,
    tracked: bool,
}

/// A cached answer for one env query.
#[derive(Debug, Clone)]
struct QueryAnswer {
    matches: BTreeMap<String, String>,
    tracked: bool,
}

#[derive(Debug, Default)]
struct AnswerCache {
    names: FxHashMap<String, NameAnswer>,
    queries: FxHashMap<EnvQuery, QueryAnswer>,
}

/// The connection and its scratch buffers; one caller at a time.
#[derive(Debug)]
struct Channel {
    stream: Option<Stream>,
    frame: Vec<u8>,
    answers: FrameDecoder,
}

impl Default for Channel {
    fn default() -> Self {
        Self {
            stream: None,
            frame: Vec::new(),
            answers: FrameDecoder::new(MAX_SERVER_FRAME),
        }
    }
}

/// A client of one runner.
#[derive(Debug)]
pub struct Client {
    config: Option<ClientConfig>,
    state: AtomicU8,
    channel: Mutex<Channel>,
    cache: RwLock<AnswerCache>,
    /// Names threads are waiting for the channel to ask for, with `tracked`.
    waiting: Mutex<Vec<(String, bool)>>,
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
            cache: RwLock::new(AnswerCache::default()),
            waiting: Mutex::new(Vec::new()),
        }
    }

    /// The process-wide client, configured from the environment at first use.
    pub fn global() -> &'static Client {
        static GLOBAL: OnceLock<Client> = OnceLock::new();
        GLOBAL.get_or_init(|| Client::new(ClientConfig::from_env()))
    }

    /// Whether a runner accepted this process's handshake. Connects if no call
    /// has yet.
    pub fn is_connected(&self) -> bool {
        if self.state.load(Ordering::Acquire) == UNTRIED {
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

    /// This run must not be cached.
    pub fn disable_cache(&self, reason: Option<&str>) {
        self.report(ClientMessage::DisableCache {
            reason: reason.map(str::to_owned),
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
        {
            let cache = self.read_cache();
            if let Some(answer) = cache.names.get(name).filter(|a| a.tracked >= tracked) {
                return f(answer.value.as_deref());
            }
        }
        let value = self.get_env_batch(&[name], tracked).pop().flatten();
        f(value.as_deref())
    }

    /// The runner's values of `names`, in order, asking only for the names not
    /// already answered, in one round trip.
    pub fn get_env_batch(&self, names: &[&str], tracked: bool) -> Vec<Option<String>> {
        let missing: Vec<String> = {
            let cache = self.read_cache();
            let mut missing: Vec<String> = names
                .iter()
                // No variable has an empty name: answered as absent, never asked.
                .filter(|name| !name.is_empty())
                .filter(|name| {
                    !cache
                        .names
                        .get(**name)
                        .is_some_and(|a| a.tracked >= tracked)
                })
                .map(|name| (*name).to_owned())
                .collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        if !missing.is_empty() && !self.is_offline() {
            // Threads sharing the connection share round trips too: each says
            // what it is about to ask for, and whoever holds the channel next
            // asks for every waiting name of the same `tracked` with its own,
            // so threads calling at once wait for one round trip, not one each.
            self.waiting()
                .extend(missing.iter().map(|name| (name.clone(), tracked)));
            let mut channel = self.channel();
            let missing: Vec<String> = {
                let cache = self.read_cache();
                let mut waiting = self.waiting();
                let (same, other): (Vec<_>, Vec<_>) = std::mem::take(&mut *waiting)
                    .into_iter()
                    .partition(|(_, wanted)| *wanted == tracked);
                *waiting = other;
                drop(waiting);
                let mut asked: Vec<String> = same
                    .into_iter()
                    .map(|(name, _)| name)
                    .chain(missing)
                    .filter(|name| !cache.names.get(name).is_some_and(|a| a.tracked >= tracked))
                    .collect();
                asked.sort_unstable();
                asked.dedup();
                asked
            };
            let request = ClientMessage::GetEnv {
                names: missing.clone(),
                tracked,
            };
            let answer = if missing.is_empty() {
                None
            } else {
                self.request(&mut channel, &request)
            };
            if let Some(ServerMessage::Env { values }) = answer {
                let mut cache = self.write_cache();
                for (name, value) in missing.into_iter().zip(values) {
                    let entry = cache.names.entry(name).or_insert(NameAnswer {
                        value: None,
                        tracked: false,
                    });
                    entry.value = value;
                    entry.tracked |= tracked;
                }
            }
        }
        let cache = self.read_cache();
        names
            .iter()
            .map(|name| cache.names.get(*name).and_then(|a| a.value.clone()))
            .collect()
    }

    /// Every runner variable matching `query`; empty when no runner is listening.
    /// An invalid glob is the caller's error, reported whether or not a runner
    /// listens, and never sent.
    pub fn get_envs(
        &self,
        query: &EnvQuery,
        tracked: bool,
    ) -> Result<BTreeMap<String, String>, InvalidGlob> {
        if let Some(answer) = self.read_cache().queries.get(query) {
            if answer.tracked >= tracked {
                return Ok(answer.matches.clone());
            }
        }
        EnvMatcher::new(query)?;
        if self.is_offline() {
            return Ok(BTreeMap::new());
        }
        let mut channel = self.channel();
        if let Some(answer) = self.read_cache().queries.get(query) {
            if answer.tracked >= tracked {
                return Ok(answer.matches.clone());
            }
        }
        let request = ClientMessage::GetEnvs {
            query: query.clone(),
            tracked,
        };
        match self.request(&mut channel, &request) {
            Some(ServerMessage::Envs { matches }) => {
                let mut cache = self.write_cache();
                let entry = cache
                    .queries
                    .entry(query.clone())
                    .or_insert_with(|| QueryAnswer {
                        matches: matches.clone(),
                        tracked,
                    });
                entry.tracked |= tracked;
                Ok(matches)
            }
            _ => Ok(BTreeMap::new()),
        }
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
        let Channel { stream, frame, .. } = &mut *channel;
        frame.clear();
        if let Err(EncodeError::TooLarge { len, limit }) =
            encode_frame(&message, MAX_CLIENT_FRAME, frame)
        {
            // The runner cannot be told what this call said, so the run must
            // not be cached on an incomplete picture.
            let reason = format!(
                "a report of {len} bytes exceeds the {} frame limit",
                crate::protocol::format_size(limit)
            );
            let _ = encode_frame(
                &ClientMessage::DisableCache {
                    reason: Some(reason),
                },
                MAX_CLIENT_FRAME,
                frame,
            );
        }
        let sent = stream.as_mut().map(|s| s.write_all(frame));
        if let Some(Err(err)) = sent {
            self.go_offline(&mut channel, &format!("cannot send a report: {err}"));
        }
    }

    /// Sends a request and waits for its answer; `None` when the runner is gone.
    /// The caller holds the channel, so a request is never sent twice for
    /// what another thread was fetching meanwhile: it re-checks the cache
    /// after taking the channel.
    fn request(&self, channel: &mut Channel, message: &ClientMessage) -> Option<ServerMessage> {
        if !self.ensure_connected(channel) {
            return None;
        }
        let Channel {
            stream,
            frame,
            answers,
        } = channel;
        let stream = stream.as_mut()?;
        frame.clear();
        if encode_frame(message, MAX_CLIENT_FRAME, frame).is_err() {
            // The runner cannot be asked, so the run must not be cached on
            // an answer it never gave.
            send_disable_cache(stream, frame, "an env request exceeds the frame limit");
            return None;
        }
        let answer = stream
            .write_all(frame)
            .map_err(|err| format!("cannot send a request: {err}"))
            .and_then(|()| {
                answers
                    .read_frame(stream)
                    .map_err(|err| format!("no answer from the runner: {err}"))
            })
            .and_then(|payload| {
                ServerMessage::decode(payload)
                    .map_err(|err| format!("an answer that does not decode: {err}"))
            });
        if let Err(why) = &answer {
            // Timed out or broken: tell a runner that may still be alive that
            // this run saw an incomplete answer, then stop talking to it.
            send_disable_cache(stream, frame, "a tool gave up waiting for the runner");
            self.go_offline(channel, why);
        }
        answer.ok()
    }

    /// Connects and handshakes if that has not been tried yet.
    fn ensure_connected(&self, channel: &mut Channel) -> bool {
        match self.state.load(Ordering::Acquire) {
            CONNECTED => return channel.stream.is_some(),
            OFFLINE => return false,
            _ => {}
        }
        let Some(config) = &self.config else {
            self.state.store(OFFLINE, Ordering::Release);
            return false;
        };
        match connect(config, &mut channel.answers) {
            Ok(stream) => {
                channel.stream = Some(stream);
                self.state.store(CONNECTED, Ordering::Release);
                true
            }
            Err(why) => {
                self.go_offline(
                    channel,
                    &format!("cannot connect to {}: {why}", config.socket),
                );
                false
            }
        }
    }

    /// Stops talking to the runner for the rest of the process; with
    /// [`ENV_DEBUG`] set, says why on stderr.
    fn go_offline(&self, channel: &mut Channel, why: &str) {
        channel.stream = None;
        self.state.store(OFFLINE, Ordering::Release);
        if std::env::var_os(ENV_DEBUG).is_some() {
            eprintln!("runner-aware: client offline: {why}");
        }
    }

    fn channel(&self) -> MutexGuard<'_, Channel> {
        self.channel.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn waiting(&self) -> MutexGuard<'_, Vec<(String, bool)>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, AnswerCache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, AnswerCache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Best effort: tells a runner that may still be listening not to cache this
/// run, because a request of it went unanswered.
fn send_disable_cache(stream: &mut Stream, frame: &mut Vec<u8>, reason: &str) {
    frame.clear();
    let message = ClientMessage::DisableCache {
        reason: Some(reason.to_owned()),
    };
    if encode_frame(&message, MAX_CLIENT_FRAME, frame).is_ok() {
        let _ = stream.write_all(frame);
    }
}

/// Opens a connection and completes the handshake.
fn connect(config: &ClientConfig, answers: &mut FrameDecoder) -> Result<Stream, String> {
    let name = config
        .socket
        .as_str()
        .to_fs_name::<GenericFilePath>()
        .map_err(|err| err.to_string())?;
    let mut stream = ConnectOptions::new()
        .name(name)
        .wait_mode(ConnectWaitMode::Timeout(config.timeout))
        .connect_sync()
        .map_err(|err| err.to_string())?;
    stream
        .set_recv_timeout(Some(config.timeout))
        .and_then(|()| stream.set_send_timeout(Some(config.timeout)))
        .map_err(|err| err.to_string())?;
    let mut frame = Vec::new();
    let hello = ClientMessage::Hello {
        version: PROTOCOL_VERSION,
        token: config.token.clone(),
        pid: std::process::id(),
    };
    encode_frame(&hello, MAX_CLIENT_FRAME, &mut frame).map_err(|err| err.to_string())?;
    stream
        .write_all(&frame)
        .map_err(|err| format!("cannot send the handshake: {err}"))?;
    let payload = answers
        .read_frame(&mut stream)
        .map_err(|err| format!("no handshake answer: {err}"))?;
    match ServerMessage::decode(payload) {
        Ok(ServerMessage::Welcome { .. }) => Ok(stream),
        Ok(ServerMessage::Refused { reason }) => Err(format!("the runner refused: {reason}")),
        _ => Err("an unexpected handshake answer".to_owned()),
    }
}
