//! A tool written in Rust, on the crate's client alone (`default-features =
//! false, features = ["client"]`: no async runtime, no glob library). Under a
//! runner-aware runner it asks for the env it depends on, declares what it
//! reads and writes, and says when its run must not be cached; under no
//! runner every call is a no-op and it reads its own environment.
//!
//! ```sh
//! cargo run --example rust-tool -- config.json out.txt
//! cargo run --example rust-tool -- --watch config.json out.txt
//! ```

use std::process::ExitCode;

use runner_aware::Client;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let watch = args.first().is_some_and(|arg| arg == "--watch");
    if watch {
        args.remove(0);
    }
    let [input, output] = args.as_slice() else {
        eprintln!("usage: rust-tool [--watch] <input> <output>");
        return ExitCode::FAILURE;
    };
    let runner = Client::global();
    // The mode changes the output: tracked, so it is part of the cache key.
    // Outside a runner the tool reads its own environment.
    let mode = runner
        .get_env("NODE_ENV", true)
        .or_else(|| std::env::var("NODE_ENV").ok())
        .unwrap_or_else(|| "development".to_owned());
    runner.add_input(input);
    runner.add_output(output);
    if watch {
        // A watcher never finishes a build a cache could replay.
        runner.disable_cache(Some("rust-tool --watch"));
    }
    let text = match std::fs::read_to_string(input) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("rust-tool: cannot read {input}: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = std::fs::write(output, format!("{mode}: {}", text.trim())) {
        eprintln!("rust-tool: cannot write {output}: {err}");
        return ExitCode::FAILURE;
    }
    println!("rust-tool: connected={} mode={mode}", runner.is_connected());
    ExitCode::SUCCESS
}
