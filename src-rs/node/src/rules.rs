//! The runner's rules of the core (`runner_aware::rules`, `fingerprint`,
//! `env_fingerprint`, `trace`) for `runner-aware/runner`, which wraps each
//! with the same name. Plain data crosses as JS values (serde); argument
//! checks with readable errors are the TypeScript wrappers' job, so a shape
//! that does not deserialize here is a bug there and says what it expected.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Error, Result, Status, Task};
use napi_derive::napi;
use serde::Deserialize;
use serde_json::Value;

use runner_aware::env_fingerprint::EnvFingerprint;
use runner_aware::fingerprint::{self, InputKind, StatCache};
use runner_aware::reports::REPORT_CHUNK_BYTES;
use runner_aware::reports::{EnvQueryRecord, EnvRecord, EnvValues, Reports, UncacheableReason};
use runner_aware::rules::{self, CommandOutcome, PathSet, VerdictOptions};
use runner_aware::trace::{Trace, TraceMode, TraceSession, Tracer};

fn invalid(what: &str, err: impl std::fmt::Display) -> Error {
    Error::new(Status::InvalidArg, format!("{what}: {err}"))
}

fn from_js<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|err| invalid(what, err))
}

fn to_js(value: &impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(|err| Error::from_reason(err.to_string()))
}

/// The parts of `Reports` the rules read, each optional.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ReportsView {
    ignored_inputs: BTreeSet<String>,
    ignored_outputs: BTreeSet<String>,
    inputs: BTreeSet<String>,
    outputs: BTreeSet<String>,
    values: BTreeMap<String, String>,
    envs: BTreeMap<String, EnvRecord>,
    env_queries: Vec<EnvQueryRecord>,
    untracked_env: Vec<String>,
    env_values: Option<EnvValues>,
    trace: Option<Trace>,
}

impl ReportsView {
    fn into_reports(self) -> Reports {
        Reports {
            ignored_inputs: self.ignored_inputs,
            ignored_outputs: self.ignored_outputs,
            inputs: self.inputs,
            outputs: self.outputs,
            values: self.values,
            envs: self.envs,
            env_queries: self.env_queries,
            untracked_env: self.untracked_env,
            env_values: self.env_values.unwrap_or(EnvValues::Plain),
            trace: self.trace,
            ..Reports::default()
        }
    }
}

/// `verdict(reports.notCacheable, outcome, options)`.
#[napi(
    catch_unwind,
    js_name = "verdict",
    ts_args_type = "notCacheable: unknown, outcome: unknown, options: unknown",
    ts_return_type = "unknown"
)]
pub fn verdict(not_cacheable: Value, outcome: Value, options: Value) -> Result<Value> {
    let reasons: Vec<UncacheableReason> = from_js(not_cacheable, "notCacheable")?;
    let outcome: CommandOutcome = from_js(outcome, "outcome")?;
    let options: VerdictOptions = from_js(options, "options")?;
    to_js(&rules::verdict(&reasons, &outcome, &options))
}

/// `describeReason(reason)`.
#[napi(catch_unwind, ts_args_type = "reason: unknown")]
pub fn describe_reason(reason: Value) -> Result<String> {
    let reason: UncacheableReason = from_js(reason, "reason")?;
    Ok(rules::describe_reason(&reason))
}

/// `inferAccesses(reports)`.
#[napi(
    catch_unwind,
    ts_args_type = "reports: unknown",
    ts_return_type = "unknown"
)]
pub fn infer_accesses(reports: Value) -> Result<Value> {
    let reports: ReportsView = from_js(reports, "reports")?;
    to_js(&rules::infer_accesses(&reports.into_reports()))
}

/// What `traceReasons` reads of a trace.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraceView {
    mode: TraceMode,
    complete: bool,
    incomplete: Vec<String>,
    read_then_written: Vec<String>,
}

/// The reasons a trace adds (`trace`, `modified-input`), given the reports'
/// ignored inputs.
#[napi(
    catch_unwind,
    ts_args_type = "ignoredInputs: string[], trace: unknown",
    ts_return_type = "unknown"
)]
pub fn trace_reasons(ignored_inputs: Vec<String>, trace: Value) -> Result<Value> {
    let view: TraceView = from_js(trace, "trace")?;
    let trace = Trace {
        mode: view.mode,
        complete: view.complete,
        incomplete: view.incomplete,
        read_then_written: view.read_then_written,
        ..Trace::default()
    };
    to_js(&rules::trace_reasons(
        &PathSet::new(&ignored_inputs),
        &trace,
    ))
}

/// The env fingerprint of reports, as JSON text: its records are keyed by
/// env names, and a name such as `__proto__` must come back as a key, which
/// only `JSON.parse` makes of it.
#[napi(catch_unwind, ts_args_type = "reports: unknown")]
pub fn env_fingerprint(reports: Value) -> Result<String> {
    let reports: ReportsView = from_js(reports, "reports")?;
    serde_json::to_string(&EnvFingerprint::of_reports(&reports.into_reports()))
        .map_err(|err| Error::from_reason(err.to_string()))
}

/// Checks a fingerprint's JSON text, digest and queries included.
#[napi(catch_unwind)]
pub fn check_fingerprint(json: String) -> Result<()> {
    EnvFingerprint::parse(&json)
        .map(drop)
        .map_err(|err| Error::new(Status::InvalidArg, err.to_string()))
}

/// Why a stored fingerprint no longer holds against `env` (and `values`).
#[napi(
    catch_unwind,
    ts_args_type = "fingerprint: unknown, env: Record<string, string>, values?: Record<string, string> | undefined | null"
)]
pub fn validate_fingerprint(
    fingerprint: Value,
    env: HashMap<String, String>,
    values: Option<HashMap<String, String>>,
) -> Result<Vec<String>> {
    let fingerprint: EnvFingerprint = from_js(fingerprint, "not a valid env fingerprint")?;
    fingerprint
        .check()
        .map_err(|err| Error::new(Status::InvalidArg, err.to_string()))?;
    let values: Option<BTreeMap<String, String>> = values.map(|v| v.into_iter().collect());
    Ok(fingerprint.validate_with_values(&env, values.as_ref()))
}

/// The digests of files keyed by identity, for `fingerprintInput`.
#[napi]
pub struct NativeStatCache {
    inner: Arc<StatCache>,
}

#[napi]
impl NativeStatCache {
    /// A cache from `toJson()`'s text; anything else gives an empty cache.
    #[napi(constructor, catch_unwind)]
    pub fn new(json: Option<String>) -> Self {
        Self {
            inner: Arc::new(json.map_or_else(StatCache::new, |json| StatCache::from_json(&json))),
        }
    }

    /// Files hashed (not answered from the cache) since it was made.
    #[napi(getter, catch_unwind)]
    pub fn hashed(&self) -> f64 {
        self.inner.hashed() as f64
    }

    /// The cache as JSON text: `[[path, [identity, sha256]], …]`.
    #[napi(catch_unwind)]
    pub fn to_json_text(&self) -> String {
        self.inner.to_json()
    }
}

fn input_kind(kind: &str) -> Result<InputKind> {
    match kind {
        "content" => Ok(InputKind::Content),
        "listing" => Ok(InputKind::Listing),
        "existence" => Ok(InputKind::Existence),
        other => Err(invalid(
            "kind",
            format!("must be 'content', 'listing' or 'existence', got {other:?}"),
        )),
    }
}

/// `fingerprintInput({ path, kind }, cache)`.
#[napi(catch_unwind)]
pub fn fingerprint_input(path: String, kind: String, cache: &NativeStatCache) -> Result<String> {
    let kind = input_kind(&kind)?;
    fingerprint::fingerprint_input(Path::new(&path), kind, &cache.inner)
        .map_err(|err| Error::from_reason(err.to_string()))
}

/// The paths among `paths` whose files changed at or after `since_ms`
/// (milliseconds since the epoch).
#[napi(catch_unwind)]
pub fn changed_since(paths: Vec<String>, since_ms: f64) -> Vec<String> {
    let since = SystemTime::UNIX_EPOCH + Duration::from_nanos((since_ms.max(0.0) * 1e6) as u64);
    paths
        .into_iter()
        .filter(|path| fingerprint::changed_since(Path::new(path), since))
        .collect()
}

/// A trace being recorded for one run (`runner_aware::trace::TraceSession`).
#[napi]
pub struct NativeTraceSession {
    session: Option<TraceSession>,
    mode: TraceMode,
    env: BTreeMap<String, String>,
}

#[napi]
impl NativeTraceSession {
    /// Starts a trace in `private_dir` with the tracer in `tracer_dir`:
    /// `mode` is `preload` or `seccomp`; with `required` a trace that
    /// cannot be made throws, else the session is `unsupported`.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        mode: String,
        tracer_dir: String,
        private_dir: String,
        required: bool,
    ) -> Result<Self> {
        let mode = match mode.as_str() {
            "preload" => TraceMode::Preload,
            "seccomp" => TraceMode::Seccomp,
            other => {
                return Err(invalid(
                    "mode",
                    format!("must be 'preload' or 'seccomp', got {other:?}"),
                ))
            }
        };
        let tracer = Tracer::in_dir(Path::new(&tracer_dir));
        let session = TraceSession::start(mode, tracer, Path::new(&private_dir), required)
            .map_err(|err| Error::from_reason(err.to_string()))?;
        Ok(Self {
            mode: session.mode(),
            env: session.env().clone(),
            session: Some(session),
        })
    }

    /// `preload`, `seccomp` or `unsupported`.
    #[napi(getter, catch_unwind)]
    pub fn mode(&self) -> String {
        self.mode.as_str().to_owned()
    }

    /// Variables the task needs.
    #[napi(getter, catch_unwind, ts_return_type = "Record<string, string>")]
    pub fn env(&self) -> HashMap<String, String> {
        self.env.clone().into_iter().collect()
    }

    /// The command line to spawn for `argv`.
    #[napi(catch_unwind)]
    pub fn command(&self, argv: Vec<String>) -> Vec<String> {
        match &self.session {
            Some(session) => session
                .command(&argv)
                .into_iter()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect(),
            None => argv,
        }
    }

    /// Reads the trace once the task has exited, off the main thread, as
    /// report chunks; never rejects (an unreadable trace is incomplete).
    #[napi(ts_return_type = "Promise<ReportChunks>", catch_unwind)]
    pub fn finish(&mut self) -> AsyncTask<FinishTrace> {
        AsyncTask::new(FinishTrace {
            session: self.session.take(),
            mode: self.mode,
        })
    }
}

/// [`NativeTraceSession::finish`], run on libuv's pool.
pub struct FinishTrace {
    session: Option<TraceSession>,
    mode: TraceMode,
}

impl Task for FinishTrace {
    type Output = Vec<String>;
    type JsValue = crate::ReportChunks;

    fn compute(&mut self) -> Result<Vec<String>> {
        let session = self.session.take();
        let mode = self.mode;
        let trace = std::panic::catch_unwind(move || match session {
            Some(session) => session.finish(),
            None => Trace {
                mode,
                incomplete: vec!["the trace was already read".to_owned()],
                ..Trace::default()
            },
        })
        .unwrap_or_else(|_| Trace {
            mode,
            incomplete: vec!["reading the trace file panicked".to_owned()],
            ..Trace::default()
        });
        trace
            .into_json_chunks(REPORT_CHUNK_BYTES)
            .map_err(|err| Error::from_reason(err.to_string()))
    }

    fn resolve(&mut self, _env: Env, chunks: Vec<String>) -> Result<crate::ReportChunks> {
        Ok(crate::ReportChunks {
            chunks: chunks.into(),
        })
    }
}

/// The package managers' and Node's own private files for `env`
/// (`runner_aware::rules::package_manager_paths`).
#[napi(catch_unwind)]
pub fn package_manager_paths(env: HashMap<String, String>) -> Vec<String> {
    rules::package_manager_paths(&env)
}

/// `path` with the `node_modules/.bin` directories of `cwd` and its
/// ancestors in front (`runner_aware::rules::node_modules_bin_path`).
#[napi(catch_unwind)]
pub fn node_modules_bin_path(cwd: String, path: String) -> String {
    rules::node_modules_bin_path(Path::new(&cwd), &path)
}
