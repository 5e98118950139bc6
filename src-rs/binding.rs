//! The Node-API binding: type conversion only, no logic.
//!
//! Two halves share this addon. The tool half is [`load`], the contract that
//! `@voidzero-dev/vite-task-client` calls through `VP_RUN_NODE_CLIENT_PATH`.
//! The runner half is [`create_server`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::{Either, Object, Undefined};
use napi::{Env, Error, Result, Status};
use napi_derive::napi;

use crate::client::Client;
use crate::env::EnvQuery;
use crate::server::{Server, ServerOptions};

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
    #[napi]
    pub fn ignore_input(&self, path: String) {
        Client::global().ignore_input(&path);
    }

    /// Writes under `path` are not outputs of this run.
    #[napi]
    pub fn ignore_output(&self, path: String) {
        Client::global().ignore_output(&path);
    }

    /// `path` is an input of this run.
    #[napi]
    pub fn add_input(&self, path: String) {
        Client::global().add_input(&path);
    }

    /// `path` is an output of this run.
    #[napi]
    pub fn add_output(&self, path: String) {
        Client::global().add_output(&path);
    }

    /// A named value that belongs in this run's cache key.
    #[napi]
    pub fn add_value(&self, name: String, value: String) {
        Client::global().add_value(&name, &value);
    }

    /// This run must not be cached.
    #[napi]
    pub fn disable_cache(&self, reason: Option<String>) {
        Client::global().disable_cache(reason.as_deref());
    }

    /// The runner's value of `name`, `undefined` when it has none.
    #[napi]
    pub fn get_env(&self, name: String, options: Option<EnvOptions>) -> Either<String, Undefined> {
        match Client::global().get_env(&name, tracked(options)) {
            Some(value) => Either::A(value),
            None => Either::B(()),
        }
    }

    /// Every runner variable matching a glob (`VITE_*`) or `{ prefix }`.
    #[napi]
    pub fn get_envs(
        &self,
        query: Either<String, PrefixQuery>,
        options: Option<EnvOptions>,
    ) -> BTreeMap<String, String> {
        let query = match query {
            Either::A(glob) => EnvQuery::Glob(glob),
            Either::B(prefix) => EnvQuery::Prefix(prefix.prefix),
        };
        Client::global().get_envs(&query, tracked(options))
    }

    /// Whether a runner accepted this process's connection.
    #[napi]
    pub fn is_connected(&self) -> bool {
        Client::global().is_connected()
    }
}

/// The `@voidzero-dev/vite-task-client` entry point: the client of this
/// process. Connects lazily, on the first call that needs the runner.
#[napi]
pub fn load() -> RunnerClient {
    RunnerClient {}
}

/// How a server is set up.
#[napi(object)]
pub struct NativeServerOptions {
    /// The variables tools may fetch. Default: this process's env.
    pub env: Option<HashMap<String, String>>,
    /// Name globs served but never tracked. Default: shell noise such as
    /// `OLDPWD`, `PWD`, `SHLVL`, `_`.
    pub untracked_env: Option<Vec<String>>,
    /// How long `close()` waits for connections still open. Default 1000.
    pub close_timeout_ms: Option<u32>,
    /// The addon to hand out as `VP_RUN_NODE_CLIENT_PATH`.
    pub client_path: Option<String>,
}

/// A server for one task run.
#[napi]
pub struct NativeServer {
    server: Option<Server>,
    env: HashMap<String, String>,
    socket_path: String,
}

#[napi]
impl NativeServer {
    /// The variables to merge into the child's environment.
    #[napi(getter)]
    pub fn env(&self) -> HashMap<String, String> {
        self.env.clone()
    }

    /// The socket the server listens on.
    #[napi(getter)]
    pub fn socket_path(&self) -> String {
        self.socket_path.clone()
    }

    /// The reports so far, as JSON text, without closing.
    #[napi]
    pub fn snapshot(&self) -> Result<String> {
        let server = self.server.as_ref().ok_or_else(closed)?;
        to_json(&server.snapshot())
    }

    /// Stops accepting, drains every connection and resolves with the run's
    /// reports as JSON text. Never blocks the event loop.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn close<'env>(&mut self, env: &'env Env) -> Result<Object<'env>> {
        let server = self.server.take().ok_or_else(closed)?;
        let (deferred, promise) = env.create_deferred()?;
        let close = server.close();
        crate::runtime::handle().spawn(async move {
            let reports = close.await;
            deferred.resolve(move |_| to_json(&reports));
        });
        Ok(promise)
    }
}

fn closed() -> Error {
    Error::new(Status::GenericFailure, "server is already closed")
}

fn to_json(reports: &crate::Reports) -> Result<String> {
    serde_json::to_string(reports).map_err(|err| Error::from_reason(err.to_string()))
}

/// Starts a server for one task run.
#[napi]
pub fn create_server(options: Option<NativeServerOptions>) -> Result<NativeServer> {
    let options = options.unwrap_or(NativeServerOptions {
        env: None,
        untracked_env: None,
        close_timeout_ms: None,
        client_path: None,
    });
    let server = Server::start(ServerOptions {
        env: options.env,
        untracked_env: options.untracked_env,
        close_timeout: options
            .close_timeout_ms
            .map(|ms| Duration::from_millis(ms.into())),
        client_path: options.client_path.map(PathBuf::from),
    })
    .map_err(|err| Error::from_reason(err.to_string()))?;
    Ok(NativeServer {
        env: server.env().clone().into_iter().collect(),
        socket_path: server.socket_path().to_string_lossy().into_owned(),
        server: Some(server),
    })
}
