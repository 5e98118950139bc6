//! A task runner written in Rust, using the crate's server API directly: one
//! server per task, its env handed to the child, the reports after it exits.
//!
//! ```sh
//! npm install                          # builds the addon Node tools talk through
//! cargo run --example rust-runner      # runs tool.mjs beside this file
//! cargo run --example rust-runner -- node -e "require('runner-aware').disableCache('demo')"
//! ```
//!
//! Node tools report through the runner-aware addon named in
//! `VP_RUN_NODE_CLIENT_PATH`. This example uses the checkout's build; a runner
//! that ships on its own points `RUNNER_AWARE_ADDON` (here) at the `.node` file
//! of the `runner-aware-<triple>` npm package it installs.

use std::collections::HashMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use runner_aware::{Server, ServerOptions};

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

fn main() -> Result<ExitCode, Box<dyn Error>> {
    // The checkout: the crate lives in src-rs/core.
    let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let addon = match std::env::var_os("RUNNER_AWARE_ADDON") {
        Some(path) => PathBuf::from(path),
        None => local_addon(root)?,
    };
    let mut command: Vec<String> = std::env::args().skip(1).collect();
    if command.is_empty() {
        let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rust-runner/tool.mjs");
        command = vec!["node".into(), tool.to_string_lossy().into_owned()];
    }

    // Tools may fetch only what the runner chooses to serve: here its own env
    // plus a mode the task is run in.
    let mut env: HashMap<String, String> = std::env::vars().collect();
    env.insert("NODE_ENV".into(), "production".into());
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
