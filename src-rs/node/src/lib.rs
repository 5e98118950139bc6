//! The Node-API binding of runner-aware: type conversion only, no logic.
//!
//! Two halves share this addon. The tool half is [`load`], the contract that
//! `@voidzero-dev/vite-task-client` calls through `VP_RUN_NODE_CLIENT_PATH`.
//! The runner half is [`create_server`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::{
    AsyncTask, Either, JavaScriptClassExt, JsObjectValue, Object, Undefined,
};
use napi::{Env, Error, Property, PropertyAttributes, Result, Status, Task};
use napi_derive::napi;

use runner_aware::reports::REPORT_CHUNK_BYTES;
use runner_aware::{Client, EnvMatcher, EnvQuery, Reports, Server, ServerOptions};

pub mod cache;
mod raw;
pub mod rules;

/// Options of an env fetch.
#[napi(object)]
pub struct EnvOptions {
    /// Whether the answer belongs in the run's cache key. Default `true`;
    /// once any caller asks for a name tracked, it stays tracked.
    pub tracked: Option<bool>,
}

/// A literal-prefix env query: every name that starts with `prefix`.
#[napi(object)]
pub struct PrefixQuery {
    /// The prefix; `*` and `?` in it are not special.
    pub prefix: String,
}

fn tracked(options: Option<EnvOptions>) -> bool {
    options.and_then(|o| o.tracked).unwrap_or(true)
}

/// The tool-side client of this process: every method is a no-op when no
/// runner is listening, and none throws for transport reasons.
#[napi]
pub struct RunnerClient {}

#[napi]
impl RunnerClient {
    /// Reads under `path` are not inputs of this run.
    #[napi(catch_unwind)]
    pub fn ignore_input(&self, path: String) {
        Client::global().ignore_input(&path);
    }

    /// Writes under `path` are not outputs of this run.
    #[napi(catch_unwind)]
    pub fn ignore_output(&self, path: String) {
        Client::global().ignore_output(&path);
    }

    /// `path` is an input of this run.
    #[napi(catch_unwind)]
    pub fn add_input(&self, path: String) {
        Client::global().add_input(&path);
    }

    /// `path` is an output of this run.
    #[napi(catch_unwind)]
    pub fn add_output(&self, path: String) {
        Client::global().add_output(&path);
    }

    /// A named value that belongs in this run's cache key.
    #[napi(catch_unwind)]
    pub fn add_value(&self, name: String, value: String) {
        Client::global().add_value(&name, &value);
    }

    /// This run must not be cached. The runner is told who asked: this
    /// process's command line and the calling code, from the JavaScript stack.
    #[napi(catch_unwind)]
    pub fn disable_cache(&self, env: &Env, reason: Option<String>) {
        let caller = raw::caller_of(env);
        Client::global().disable_cache_from(reason.as_deref(), caller.as_deref());
    }

    /// The runner's value of `name`, `undefined` when it has none.
    #[napi(catch_unwind)]
    pub fn get_env(&self, name: String, options: Option<EnvOptions>) -> Either<String, Undefined> {
        match Client::global().get_env(&name, tracked(options)) {
            Some(value) => Either::A(value),
            None => Either::B(()),
        }
    }

    /// Every runner variable matching a glob (`VITE_*`) or `{ prefix }`.
    /// Throws for a glob that does not parse.
    #[napi(catch_unwind, ts_return_type = "Record<string, string>")]
    pub fn get_envs<'env>(
        &self,
        env: &'env Env,
        query: Either<String, PrefixQuery>,
        options: Option<EnvOptions>,
    ) -> Result<Object<'env>> {
        let query = match query {
            Either::A(glob) => EnvQuery::Glob(glob),
            Either::B(prefix) => EnvQuery::Prefix(prefix.prefix),
        };
        let matches = Client::global()
            .get_envs(&query, tracked(options))
            .map_err(|err| Error::new(Status::InvalidArg, err.to_string()))?;
        own_properties(env, &matches)
    }

    /// Whether a runner accepted this process's connection.
    #[napi(catch_unwind)]
    pub fn is_connected(&self) -> bool {
        Client::global().is_connected()
    }
}

/// A plain object with one own property per entry. Defined, not assigned:
/// assigning `__proto__` would set the prototype and lose the variable.
fn own_properties<'env>(env: &'env Env, map: &BTreeMap<String, String>) -> Result<Object<'env>> {
    let mut object = Object::new(env)?;
    let properties = map
        .iter()
        .map(|(name, value)| {
            Ok(Property::new()
                .with_utf8_name(name)?
                .with_value(&env.create_string(value)?)
                .with_property_attributes(
                    PropertyAttributes::Writable
                        | PropertyAttributes::Enumerable
                        | PropertyAttributes::Configurable,
                ))
        })
        .collect::<Result<Vec<_>>>()?;
    object.define_properties(&properties)?;
    Ok(object)
}

/// The `@voidzero-dev/vite-task-client` entry point: the client of this
/// process. Connects lazily, on the first call that needs the runner.
#[napi(ts_return_type = "RunnerClient", catch_unwind)]
pub fn load(env: &Env) -> Result<Object<'_>> {
    let mut client = RunnerClient {}.into_instance(env)?.as_object(env);
    // Own properties shadow the class methods of the same names, which stay
    // for their types and docs.
    let fast: [(&str, napi::Callback); 6] = [
        ("getEnv", raw::get_env),
        ("disableCache", raw::disable_cache),
        ("ignoreInput", raw::ignore_input),
        ("ignoreOutput", raw::ignore_output),
        ("addInput", raw::add_input),
        ("addOutput", raw::add_output),
    ];
    for (name, callback) in fast {
        let function = env.create_function::<(), ()>(name, callback)?;
        client.set_named_property(name, function)?;
    }
    Ok(client)
}

/// An env query compiled by the core, so a runner matches names exactly as
/// its server does (the cache helpers use it to re-evaluate queries).
#[napi]
pub struct EnvNameMatcher {
    matcher: EnvMatcher,
}

#[napi]
impl EnvNameMatcher {
    /// Compiles a glob (`VITE_*`) or `{ prefix }`; throws with the reason for a
    /// glob that does not parse.
    #[napi(constructor, catch_unwind)]
    pub fn new(query: Either<String, PrefixQuery>) -> Result<Self> {
        let query = match query {
            Either::A(glob) => EnvQuery::Glob(glob),
            Either::B(prefix) => EnvQuery::Prefix(prefix.prefix),
        };
        EnvMatcher::new(&query)
            .map(|matcher| Self { matcher })
            .map_err(|err| Error::new(Status::InvalidArg, err.reason()))
    }

    /// Whether `name` matches.
    #[napi(catch_unwind)]
    pub fn is_match(&self, name: String) -> bool {
        self.matcher.is_match(&name)
    }
}

/// How a server is set up.
#[napi(object)]
pub struct NativeServerOptions {
    /// The variables tools may fetch. Default: this process's env.
    pub env: Option<HashMap<String, String>>,
    /// Name globs served but never tracked. Default: shell noise such as
    /// `OLDPWD`, `PWD`, `SHLVL`, `_`. The channel's own variables are added
    /// to any list.
    pub untracked_env: Option<Vec<String>>,
    /// How long `close()` waits for connections still open. Default 1000.
    pub close_timeout_ms: Option<u32>,
    /// The addon to hand out as `VP_RUN_NODE_CLIENT_PATH`.
    pub client_path: Option<String>,
    /// Paths the runner's user ignores, as if a tool had ignored each as an
    /// input and an output.
    pub ignore: Option<Vec<String>>,
}

/// A server for one task run.
#[napi]
pub struct NativeServer {
    server: Option<Server>,
    env: HashMap<String, String>,
    socket_path: String,
    transports: Vec<String>,
}

#[napi]
impl NativeServer {
    /// The variables to merge into the child's environment.
    #[napi(getter, catch_unwind)]
    pub fn env(&self) -> HashMap<String, String> {
        self.env.clone()
    }

    /// The socket the server listens on.
    #[napi(getter, catch_unwind)]
    pub fn socket_path(&self) -> String {
        self.socket_path.clone()
    }

    /// The transports tools can reach this server by: `socket` and `fifo` on
    /// Unix (FIFOs only where a sandbox denies sockets), `pipe` on Windows.
    #[napi(getter, catch_unwind)]
    pub fn transports(&self) -> Vec<String> {
        self.transports.clone()
    }

    /// The reports so far, as JSON text, without closing.
    #[napi(catch_unwind)]
    pub fn snapshot(&self) -> Result<String> {
        let server = self.server.as_ref().ok_or_else(closed)?;
        to_json(&server.snapshot())
    }

    /// Stops accepting, drains every connection and resolves with the run's
    /// reports as chunks of JSON text, serialised off the main thread: a
    /// runner takes them in one per event-loop turn, so even huge reports
    /// never block it for long.
    #[napi(ts_return_type = "Promise<ReportChunks>", catch_unwind)]
    pub fn close<'env>(&mut self, env: &'env Env) -> Result<Object<'env>> {
        let server = self.server.take().ok_or_else(closed)?;
        let (deferred, promise) = env.create_deferred()?;
        server.close_then(move |reports| {
            let chunks = reports.into_json_chunks(REPORT_CHUNK_BYTES);
            deferred.resolve(move |_| match chunks {
                Ok(chunks) => Ok(ReportChunks {
                    chunks: chunks.into(),
                }),
                Err(err) => Err(Error::from_reason(err.to_string())),
            });
        });
        Ok(promise)
    }
}

/// A run's reports as chunks of JSON text (see `Reports::into_json_chunks`
/// in the core crate for their shape).
#[napi]
pub struct ReportChunks {
    chunks: VecDeque<String>,
}

#[napi]
impl ReportChunks {
    /// The next chunk; `null` once all were taken. The first is the reports
    /// object with its big fields empty.
    #[napi(catch_unwind)]
    pub fn take_next(&mut self) -> Option<String> {
        self.chunks.pop_front()
    }
}

fn closed() -> Error {
    Error::new(Status::GenericFailure, "server is already closed")
}

fn to_json(reports: &Reports) -> Result<String> {
    serde_json::to_string(reports).map_err(|err| Error::from_reason(err.to_string()))
}

/// Starts a server for one task run.
#[napi(catch_unwind)]
pub fn create_server(options: Option<NativeServerOptions>) -> Result<NativeServer> {
    let options = options.unwrap_or(NativeServerOptions {
        env: None,
        untracked_env: None,
        close_timeout_ms: None,
        client_path: None,
        ignore: None,
    });
    let server = Server::start(ServerOptions {
        env: options.env,
        untracked_env: options.untracked_env,
        close_timeout: options
            .close_timeout_ms
            .map(|ms| Duration::from_millis(ms.into())),
        client_path: options.client_path.map(PathBuf::from),
        // The JavaScript side forwards through the tool API, which also
        // reaches runners whose addon is not this one.
        forward: Some(false),
        // The JavaScript side digests at close(), unless asked for plain values.
        env_values: Some(runner_aware::EnvValues::Plain),
        ignore: options.ignore.unwrap_or_default(),
        ..ServerOptions::default()
    })
    .map_err(|err| Error::from_reason(err.to_string()))?;
    Ok(NativeServer {
        env: server.env().clone().into_iter().collect(),
        socket_path: server.socket_path().to_string_lossy().into_owned(),
        transports: server
            .transports()
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
        server: Some(server),
    })
}

/// Reads and parses a trace file on libuv's thread pool (see [`read_trace`]).
pub struct ReadTrace {
    file: String,
    exclude: Vec<PathBuf>,
}

impl Task for ReadTrace {
    type Output = Vec<String>;
    type JsValue = ReportChunks;

    fn compute(&mut self) -> Result<Vec<String>> {
        let (file, exclude) = (&self.file, &self.exclude);
        // A panic off the main thread would end the process: it rejects instead.
        std::panic::catch_unwind(|| {
            let trace =
                runner_aware::trace::read(std::path::Path::new(file), exclude).map_err(|err| {
                    Error::from_reason(format!("cannot read the trace file {file}: {err}"))
                })?;
            trace
                .into_json_chunks(REPORT_CHUNK_BYTES)
                .map_err(|err| Error::from_reason(err.to_string()))
        })
        .unwrap_or_else(|_| Err(Error::from_reason("reading the trace file panicked")))
    }

    fn resolve(&mut self, _env: Env, chunks: Vec<String>) -> Result<ReportChunks> {
        Ok(ReportChunks {
            chunks: chunks.into(),
        })
    }
}

/// Reads a trace file the tracer wrote while a task ran: what every process
/// of the task read, looked up, listed, wrote and deleted (the core's
/// `Trace`), as chunks of JSON text like `close()`'s: the first is the trace
/// with its lists empty, each further one `{ field, items }`. Paths under any
/// of `exclude` are left out. The file is read and parsed off the main
/// thread, so a big build's trace never holds up the runner's event loop.
#[napi(ts_return_type = "Promise<ReportChunks>", catch_unwind)]
pub fn read_trace(file: String, exclude: Vec<String>) -> AsyncTask<ReadTrace> {
    AsyncTask::new(ReadTrace {
        file,
        exclude: exclude.into_iter().map(PathBuf::from).collect(),
    })
}
