//! A task runner written in Rust on the crate alone: one server per task,
//! its env handed to the child, the reports and the verdict after it exits,
//! and with a cache directory the whole loop: look up → run → store, a hit
//! restoring the outputs and replaying what the command printed.
//!
//! ```sh
//! npm install                          # builds the addon Node tools talk through, and the tracer
//! cargo run --example rust-runner      # runs tool.mjs beside this file, prints its reports
//! cargo run --example rust-runner -- -- node -e "require('runner-aware').disableCache('demo')"
//! cargo run --example rust-runner -- --cache-dir target/rr-cache --trace -- node build.mjs
//! ```
//!
//! Options, before `--` and the command:
//! - `--cache-dir <dir>`: cache the task through the crate's store
//!   (`runner_aware::cache`), running it in the current directory;
//! - `--trace`: trace what the task reads and writes (Linux), so its inputs
//!   need no declaring; the tracer is looked for in `RUNNER_AWARE_TRACER_DIR`,
//!   else in this checkout's build;
//! - `--client-path <file>`: hand out the `.node` addon that tools using
//!   `@voidzero-dev/vite-task-client` (stock Vite) load. Tools using the npm
//!   package `runner-aware` need none: they load their own.

use std::collections::HashMap;
use std::error::Error;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::SystemTime;

use runner_aware::cache::{KeyKind, Lookup, Run, Store, Stored};
use runner_aware::rules::{describe_reason, verdict, CommandOutcome, VerdictOptions};
use runner_aware::{Server, ServerOptions, TraceRequest};

struct Options {
    cache_dir: Option<PathBuf>,
    trace: bool,
    client_path: Option<PathBuf>,
    command: Vec<String>,
}

fn parse_args() -> Result<Options, Box<dyn Error>> {
    let mut options = Options {
        cache_dir: None,
        trace: false,
        client_path: None,
        command: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cache-dir" => {
                options.cache_dir =
                    Some(args.next().ok_or("--cache-dir needs a directory")?.into());
            }
            "--client-path" => {
                options.client_path = Some(args.next().ok_or("--client-path needs a file")?.into());
            }
            "--trace" => options.trace = true,
            "--" => {
                options.command = args.collect();
                break;
            }
            other if other.starts_with("--") => {
                return Err(format!("unknown option {other:?}").into());
            }
            // The command, which may also follow `--`.
            _ => {
                options.command = std::iter::once(arg).chain(args).collect();
                break;
            }
        }
    }
    if options.command.is_empty() {
        let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rust-runner/tool.mjs");
        options.command = vec!["node".into(), tool.to_string_lossy().into_owned()];
    }
    Ok(options)
}

fn main() -> ExitCode {
    run().unwrap_or_else(|err| {
        eprintln!("rust-runner: {err}");
        ExitCode::from(2)
    })
}

fn run() -> Result<ExitCode, Box<dyn Error>> {
    let options = parse_args()?;
    // Tools may fetch only what the runner chooses to serve: here its own env
    // plus a mode the task is run in.
    let mut env: HashMap<String, String> = std::env::vars().collect();
    env.insert("NODE_ENV".into(), "production".into());
    // The task runs in the current directory, which the cache restores into.
    let root = std::env::current_dir()?;
    let task = options.command.join("\0");

    let mut store = match &options.cache_dir {
        Some(dir) => {
            let mut store = Store::open(dir, &root)?;
            match store.lookup(&task, &env) {
                Lookup::Hit(manifest) => {
                    let replay = store.restore(&manifest)?;
                    std::io::stdout().write_all(&replay.stdout)?;
                    std::io::stderr().write_all(&replay.stderr)?;
                    store.save_stat_cache();
                    eprintln!("cache hit");
                    return Ok(ExitCode::SUCCESS);
                }
                Lookup::Miss { reasons } => eprintln!("cache miss: {}", reasons.join(", ")),
            }
            Some(store)
        }
        None => None,
    };

    let server = Server::start(ServerOptions {
        env: Some(env),
        client_path: options.client_path,
        trace: options.trace.then_some(TraceRequest::IfSupported),
        tracer_dir: tracer_dir(),
        ..ServerOptions::default()
    })?;
    // Where no complete trace exists and no input is declared, the
    // repository's content keys the run: its state before the run.
    let before = store.as_ref().and_then(|store| store.repo_snapshot().ok());
    let argv = server.command(&options.command);
    let started_at = SystemTime::now();
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .envs(server.env())
        .stdin(Stdio::inherit())
        .output()
        .map_err(|error| format!("cannot run {}: {error}", options.command[0]))?;
    let reports = server.close_blocking();
    std::io::stdout().write_all(&output.stdout)?;
    std::io::stderr().write_all(&output.stderr)?;
    let outcome = CommandOutcome::of(&output.status);

    let Some(store) = &mut store else {
        // No cache: print the reports and the verdict a cache would act on.
        println!("{}", serde_json::to_string_pretty(&reports)?);
        let judged = verdict(&reports.not_cacheable, &outcome, &VerdictOptions::default());
        eprintln!(
            "rust-runner: {} exited with {}, {} client(s), {}",
            options.command[0],
            output.status,
            reports.clients,
            if judged.cacheable {
                "cacheable".to_owned()
            } else {
                let reasons: Vec<String> = judged.reasons.iter().map(describe_reason).collect();
                format!("not cacheable: {}", reasons.join("; "))
            }
        );
        return Ok(exit_code(&output.status));
    };
    let run = Run {
        stdout: output.stdout,
        stderr: output.stderr,
        before,
        ..Run::new(&reports, outcome, started_at)
    };
    match store.store_run(&task, &run) {
        Ok(Stored::Stored { manifest, key, .. }) => {
            let key = match key {
                KeyKind::Trace => "the trace",
                KeyKind::Declared => "the declared inputs",
                KeyKind::Repository => "the repository's content",
            };
            eprintln!("cache stored {} (keyed on {key})", manifest.id);
        }
        Ok(Stored::NotStored { reasons }) => eprintln!("cache skipped: {}", reasons.join("; ")),
        // The cache's own failure: a warning, and the command's exit code stands.
        Err(err) => eprintln!("rust-runner: the cache could not store the run: {err}"),
    }
    store.save_stat_cache();
    Ok(exit_code(&output.status))
}

/// Where the tracer is: `RUNNER_AWARE_TRACER_DIR`, else this checkout, where
/// `npm install` builds it beside the addon.
fn tracer_dir() -> Option<PathBuf> {
    if std::env::var_os(runner_aware::trace::ENV_TRACER_DIR).is_some() {
        return None;
    }
    std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).ok()
}

fn exit_code(status: &std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}
