//! The Node-API binding: type conversion only, no logic.
//!
//! Two halves share this addon. The tool half is [`load`], the contract that
//! `@voidzero-dev/vite-task-client` calls through `VP_RUN_NODE_CLIENT_PATH`.
//! The runner half is [`create_server`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use napi::bindgen_prelude::{Either, JavaScriptClassExt, JsObjectValue, Object, Undefined};
use napi::{Env, Error, Result, Status};
use napi_derive::napi;

use crate::client::Client;
use crate::env::{EnvMatcher, EnvQuery};
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
    /// Throws for a glob that does not parse.
    #[napi]
    pub fn get_envs(
        &self,
        query: Either<String, PrefixQuery>,
        options: Option<EnvOptions>,
    ) -> Result<BTreeMap<String, String>> {
        let query = match query {
            Either::A(glob) => EnvQuery::Glob(glob),
            Either::B(prefix) => EnvQuery::Prefix(prefix.prefix),
        };
        Client::global()
            .get_envs(&query, tracked(options))
            .map_err(|err| Error::new(Status::InvalidArg, err.to_string()))
    }

    /// Whether a runner accepted this process's connection.
    #[napi]
    pub fn is_connected(&self) -> bool {
        Client::global().is_connected()
    }
}

/// The `@voidzero-dev/vite-task-client` entry point: the client of this
/// process. Connects lazily, on the first call that needs the runner.
#[napi(ts_return_type = "RunnerClient")]
pub fn load(env: &Env) -> Result<Object<'_>> {
    let mut client = RunnerClient {}.into_instance(env)?.as_object(env);
    // Own properties shadow the class methods of the same names, which stay
    // for their types and docs.
    let fast: [(&str, napi::Callback); 5] = [
        ("getEnv", fast::get_env),
        ("ignoreInput", fast::ignore_input),
        ("ignoreOutput", fast::ignore_output),
        ("addInput", fast::add_input),
        ("addOutput", fast::add_output),
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
    #[napi(constructor)]
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
    #[napi]
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

/// Raw Node-API callbacks for the calls tools make in hot loops.
///
/// A generated napi-rs method costs about 0.25 µs before it does anything
/// (receiver unwrap, borrow scopes, a heap `String` per argument), as much as
/// a whole deduped `getEnv` may take. These read a string argument into a
/// stack buffer and build the answer straight from the cache: conversion only,
/// like the rest of this module.
mod fast {
    use std::ptr;

    use napi::sys;

    use crate::client::Client;

    /// Stack room for a string argument; longer ones take one allocation.
    const SCRATCH: usize = 512;

    /// The first two arguments (missing ones are `undefined`) and their count.
    unsafe fn args(
        env: sys::napi_env,
        info: sys::napi_callback_info,
    ) -> ([sys::napi_value; 2], usize) {
        let mut argv = [ptr::null_mut(); 2];
        let mut argc = argv.len();
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        );
        (argv, argc)
    }

    unsafe fn throw_type_error(env: sys::napi_env, message: &str) -> sys::napi_value {
        let message = std::ffi::CString::new(message).unwrap_or_default();
        sys::napi_throw_type_error(env, ptr::null(), message.as_ptr());
        ptr::null_mut()
    }

    unsafe fn undefined(env: sys::napi_env) -> sys::napi_value {
        let mut value = ptr::null_mut();
        sys::napi_get_undefined(env, &mut value);
        value
    }

    /// Calls `f` with the string in `value`; `None` (a TypeError thrown) when
    /// it is not a string.
    unsafe fn with_str<R>(
        env: sys::napi_env,
        value: sys::napi_value,
        f: impl FnOnce(&str) -> R,
    ) -> Option<R> {
        let mut stack = [0u8; SCRATCH];
        let mut copied = 0;
        let status = sys::napi_get_value_string_utf8(
            env,
            value,
            stack.as_mut_ptr().cast(),
            SCRATCH,
            &mut copied,
        );
        if status != sys::Status::napi_ok {
            return None;
        }
        // Node writes whole characters only: a copy that leaves room for one
        // more 4-byte character was not cut short.
        if copied + 4 < SCRATCH - 1 {
            return Some(f(&String::from_utf8_lossy(&stack[..copied])));
        }
        let mut len = 0;
        sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len);
        let mut heap = vec![0u8; len + 1];
        sys::napi_get_value_string_utf8(
            env,
            value,
            heap.as_mut_ptr().cast(),
            heap.len(),
            &mut copied,
        );
        Some(f(&String::from_utf8_lossy(&heap[..copied])))
    }

    /// `options.tracked`, default `true`; `None` (a TypeError thrown) when the
    /// options are not an object with an optional boolean `tracked`.
    unsafe fn tracked(env: sys::napi_env, options: sys::napi_value) -> Option<bool> {
        let mut kind = 0;
        sys::napi_typeof(env, options, &mut kind);
        match kind {
            sys::ValueType::napi_undefined | sys::ValueType::napi_null => return Some(true),
            sys::ValueType::napi_object => {}
            _ => {
                throw_type_error(env, "runner-aware getEnv: options must be an object");
                return None;
            }
        }
        let mut value = ptr::null_mut();
        sys::napi_get_named_property(env, options, c"tracked".as_ptr(), &mut value);
        sys::napi_typeof(env, value, &mut kind);
        match kind {
            sys::ValueType::napi_undefined | sys::ValueType::napi_null => Some(true),
            sys::ValueType::napi_boolean => {
                let mut tracked = true;
                sys::napi_get_value_bool(env, value, &mut tracked);
                Some(tracked)
            }
            _ => {
                throw_type_error(
                    env,
                    "runner-aware getEnv: options.tracked must be a boolean",
                );
                None
            }
        }
    }

    /// `getEnv(name, options?)`: the runner's value, `undefined` when it has none.
    pub unsafe extern "C" fn get_env(
        env: sys::napi_env,
        info: sys::napi_callback_info,
    ) -> sys::napi_value {
        let (argv, argc) = args(env, info);
        let Some(tracked) = (if argc > 1 {
            tracked(env, argv[1])
        } else {
            Some(true)
        }) else {
            return ptr::null_mut();
        };
        let answer = with_str(env, argv[0], |name| {
            Client::global().with_env(name, tracked, |value| match value {
                Some(value) => {
                    let mut string = ptr::null_mut();
                    sys::napi_create_string_utf8(
                        env,
                        value.as_ptr().cast(),
                        value.len() as isize,
                        &mut string,
                    );
                    string
                }
                None => undefined(env),
            })
        });
        answer
            .unwrap_or_else(|| throw_type_error(env, "runner-aware getEnv: name must be a string"))
    }

    unsafe fn report(
        env: sys::napi_env,
        info: sys::napi_callback_info,
        method: &str,
        send: impl FnOnce(&Client, &str),
    ) -> sys::napi_value {
        let (argv, _) = args(env, info);
        match with_str(env, argv[0], |path| send(Client::global(), path)) {
            Some(()) => undefined(env),
            None => throw_type_error(
                env,
                &format!("runner-aware {method}: path must be a string"),
            ),
        }
    }

    /// One callback per path report: napi takes plain function pointers.
    macro_rules! path_reports {
        ($($name:ident: $js:literal => $send:path;)*) => {$(
            #[doc = concat!("`", $js, "(path)`.")]
            pub unsafe extern "C" fn $name(
                env: sys::napi_env,
                info: sys::napi_callback_info,
            ) -> sys::napi_value {
                report(env, info, $js, $send)
            }
        )*};
    }

    path_reports! {
        ignore_input: "ignoreInput" => Client::ignore_input;
        ignore_output: "ignoreOutput" => Client::ignore_output;
        add_input: "addInput" => Client::add_input;
        add_output: "addOutput" => Client::add_output;
    }
}
