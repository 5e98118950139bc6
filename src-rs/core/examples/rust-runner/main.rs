//! A task runner written in Rust, using the crate's server API directly: one
//! server per task, its env handed to the child, the reports after it exits.
//!
//! ```sh
//! npm install                          # builds the addon Node tools talk through
//! cargo run --example rust-runner      # runs tool.mjs beside this file
//! cargo run --example rust-runner -- node -e "require('runner-aware').disableCache('demo')"
//! cargo run --example rust-runner -- --cache-dir target/rr-cache -- node build.mjs
//! ```
//!
//! With `--cache-dir`, the task runs in the current directory and is cached
//! through the crate's store
//! (`runner_aware::cache`): a look-up, then a hit restores the outputs and
//! replays the output, or a miss runs the command and stores the run when its
//! verdict is cacheable, keyed on the inputs the tools declared and the env
//! they tracked.
//!
//! Node tools report through the runner-aware addon named in
//! `VP_RUN_NODE_CLIENT_PATH`. This example uses the checkout's build; a runner
//! that ships on its own points `RUNNER_AWARE_ADDON` (here) at the `.node` file
//! of the `runner-aware-<triple>` npm package it installs.

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use runner_aware::cache::{Lookup, Store, StoreRequest};
use runner_aware::env_fingerprint::EnvFingerprint;
use runner_aware::fingerprint::InputKind;
use runner_aware::{Reports, Server, ServerOptions};

/// The addon built by `napi build` in this checkout (`runner-aware.<triple>.node`).
fn local_addon(root: &Path) -> Result<PathBuf, Box<dyn Error>> {
    std::fs::read_dir(root)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("runner-aware.") && name.ends_with(".node"))
        })
        .ok_or_else(|| {
            format!(
                "no runner-aware.<triple>.node in {}: run npm install",
                root.display()
            )
            .into()
        })
}

/// The tools' declared inputs, minus those under an ignored input.
fn declared_inputs(reports: &Reports) -> Vec<(PathBuf, InputKind)> {
    reports
        .inputs
        .iter()
        .filter(|input| {
            !reports
                .ignored_inputs
                .iter()
                .any(|dir| Path::new(input).starts_with(dir))
        })
        .map(|input| (PathBuf::from(input), InputKind::Content))
        .collect()
}

/// The tools' declared outputs under `root`, relative to it.
fn declared_outputs(reports: &Reports, root: &Path) -> Vec<String> {
    reports
        .outputs
        .iter()
        .filter_map(|output| Path::new(output).strip_prefix(root).ok())
        .map(|rel| rel.to_string_lossy().replace('\\', "/"))
        .filter(|rel| !rel.is_empty())
        .collect()
}

fn main() -> Result<ExitCode, Box<dyn Error>> {
    // The checkout: the crate lives in src-rs/core.
    let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = &std::fs::canonicalize(root)?;
    let addon = match std::env::var_os("RUNNER_AWARE_ADDON") {
        Some(path) => PathBuf::from(path),
        None => local_addon(root)?,
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let cache_dir = if args.first().is_some_and(|arg| arg == "--cache-dir") {
        let dir = args
            .get(1)
            .cloned()
            .ok_or("--cache-dir needs a directory")?;
        args.drain(..2);
        if args.first().is_some_and(|arg| arg == "--") {
            args.remove(0);
        }
        Some(dir)
    } else {
        None
    };
    let mut command = args;
    if command.is_empty() {
        let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rust-runner/tool.mjs");
        command = vec!["node".into(), tool.to_string_lossy().into_owned()];
    }

    // Tools may fetch only what the runner chooses to serve: here its own env
    // plus a mode the task is run in.
    let mut env: HashMap<String, String> = std::env::vars().collect();
    env.insert("NODE_ENV".into(), "production".into());

    let Some(cache_dir) = cache_dir else {
        return report_only(root, addon, env, &command);
    };
    // The task runs in the current directory, which the cache restores into.
    let root = &std::env::current_dir()?;
    // Look up: the task key is the command; the entry says what else it rests on.
    let task = command.join("\0");
    let mut store = Store::open(&cache_dir, root)?;
    match store.lookup(&task, &env) {
        Lookup::Hit(manifest) => {
            let replay = store.restore(&manifest)?;
            std::io::Write::write_all(&mut std::io::stdout(), &replay.stdout)?;
            std::io::Write::write_all(&mut std::io::stderr(), &replay.stderr)?;
            store.save_stat_cache();
            eprintln!("cache hit");
            return Ok(ExitCode::SUCCESS);
        }
        Lookup::Miss { reasons } => eprintln!("cache miss: {}", reasons.join(", ")),
    }
    let server = Server::start(ServerOptions {
        env: Some(env),
        client_path: Some(addon),
        ..ServerOptions::default()
    })?;
    // Where the tools declare no input, the repository's content keys the run.
    let before = store.repo_snapshot().ok();
    let started_at = std::time::SystemTime::now();
    let output = Command::new(&command[0])
        .args(&command[1..])
        .current_dir(root)
        .envs(server.env())
        .stdin(std::process::Stdio::inherit())
        .output()
        .map_err(|error| format!("cannot run {}: {error}", command[0]))?;
    let reports = server.close_blocking();
    std::io::Write::write_all(&mut std::io::stdout(), &output.stdout)?;
    std::io::Write::write_all(&mut std::io::stderr(), &output.stderr)?;
    if !output.status.success() || !reports.cacheable {
        eprintln!("cache skipped: the command failed or its reports say it is not cacheable");
    } else {
        let request = StoreRequest {
            task,
            inputs: declared_inputs(&reports),
            env: EnvFingerprint::of_reports(&reports),
            outputs: declared_outputs(&reports, root),
            ignored_outputs: Vec::new(),
            ignored_inputs: Vec::new(),
            repo: before,
            stdout: output.stdout,
            stderr: output.stderr,
            started_at,
            overruled: Vec::new(),
        };
        match store.store(&request) {
            Ok(manifest) => eprintln!("cache stored {}", manifest.id),
            Err(err) => eprintln!("cache skipped: {err}"),
        }
    }
    store.save_stat_cache();
    Ok(if output.status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the command once under a server and prints its reports.
fn report_only(
    root: &Path,
    addon: PathBuf,
    env: HashMap<String, String>,
    command: &[String],
) -> Result<ExitCode, Box<dyn Error>> {
    let server = Server::start(ServerOptions {
        env: Some(env),
        client_path: Some(addon),
        ..ServerOptions::default()
    })?;

    let status = Command::new(&command[0])
        .args(&command[1..])
        .current_dir(root)
        .envs(server.env())
        .status()
        .map_err(|error| format!("cannot run {}: {error}", command[0]))?;
    let reports = server.close_blocking();

    println!("{}", serde_json::to_string_pretty(&reports)?);
    eprintln!(
        "rust-runner: {} exited with {status}, {} client(s), {}",
        command[0],
        reports.clients,
        if reports.cacheable {
            "cacheable"
        } else {
            "not cacheable"
        }
    );
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
