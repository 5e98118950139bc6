//! The supervisor as a runner starts it: a real command under it, in seccomp
//! mode (no preload library), and the trace file it leaves.

#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use runner_aware::trace_format::{RecordKind, ENV_TRACE, ENV_TRACE_PRELOAD};

/// Runs `argv` under the supervisor with a trace file in `dir`; `None` where
/// this machine cannot run the supervisor (an emulator without binfmt).
fn supervise(dir: &Path, argv: &[&str]) -> Option<(Output, Vec<(u8, String)>)> {
    let trace = dir.join("trace");
    std::fs::write(&trace, "").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_runner-aware-trace"))
        .args(argv)
        .current_dir(dir)
        .env(ENV_TRACE, &trace)
        .env_remove(ENV_TRACE_PRELOAD)
        .env_remove("LD_PRELOAD")
        .output();
    let output = match run {
        // An arm64 binary started from a test under qemu-user, without binfmt.
        Err(err) if err.raw_os_error() == Some(libc::ENOEXEC) => return None,
        other => other.unwrap(),
    };
    let records = std::fs::read(&trace)
        .unwrap()
        .split(|&b| b == 0)
        .filter(|record| !record.is_empty())
        .map(|record| {
            (
                record[0],
                String::from_utf8_lossy(&record[1..]).into_owned(),
            )
        })
        .collect();
    Some((output, records))
}

fn has(records: &[(u8, String)], kind: RecordKind, path: &Path) -> bool {
    let path = path.to_string_lossy();
    records.iter().any(|(k, p)| *k == kind.byte() && *p == path)
}

#[test]
fn records_what_a_command_reads_lists_misses_and_writes_and_exits_like_it() {
    let dir = tempfile::tempdir().unwrap();
    // The paths as the kernel names them: the temp dir may be a link.
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("input.txt"), "in").unwrap();
    std::fs::create_dir(root.join("listed")).unwrap();
    let script = "cat input.txt > output.txt; ls listed > /dev/null; test -e absent.txt; exit 3";
    let Some((output, records)) =
        supervise(&root, &["--mode", "seccomp", "--", "/bin/sh", "-c", script])
    else {
        return;
    };
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    assert_eq!(
        records.first(),
        Some(&(RecordKind::Begin.byte(), "seccomp".to_owned()))
    );
    assert_eq!(
        records.last(),
        Some(&(RecordKind::End.byte(), String::new()))
    );
    let incomplete: Vec<&String> = records
        .iter()
        .filter(|(kind, _)| *kind == RecordKind::Incomplete.byte())
        .map(|(_, why)| why)
        .collect();
    if incomplete
        .iter()
        .any(|why| why.contains("seccomp user notification is unavailable"))
    {
        // Nothing to see here: the trace says so, which the runner's tests check.
        return;
    }
    assert!(incomplete.is_empty(), "{incomplete:?}");
    for (kind, path) in [
        (RecordKind::Read, root.join("input.txt")),
        (RecordKind::Written, root.join("output.txt")),
        (RecordKind::Listed, root.join("listed")),
        (RecordKind::Missing, root.join("absent.txt")),
        (RecordKind::Exec, "/bin/sh".into()),
    ] {
        assert!(has(&records, kind, &path), "{kind:?} {path:?}: {records:?}");
    }
    // Pseudo-files and the trace file itself are never in it.
    assert!(
        !records
            .iter()
            .any(|(_, path)| path.starts_with("/dev/") || path.ends_with("/trace")),
        "{records:?}"
    );
    // Each (kind, path) once.
    let mut sorted = records.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), records.len(), "{records:?}");
}

#[test]
fn ends_by_the_signal_that_ended_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let Some((output, records)) = supervise(dir.path(), &["--", "/bin/sh", "-c", "kill -TERM $$"])
    else {
        return;
    };
    assert_eq!(output.status.signal(), Some(libc::SIGTERM), "{output:?}");
    assert_eq!(
        records.last(),
        Some(&(RecordKind::End.byte(), String::new()))
    );
}

#[test]
fn refuses_a_command_line_it_does_not_take_and_says_what_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let Some((output, records)) = supervise(dir.path(), &["--mode", "strace", "--", "true"]) else {
        return;
    };
    assert_eq!(output.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("usage: runner-aware-trace"));
    assert!(records.is_empty(), "{records:?}");

    let (output, _) = supervise(dir.path(), &["--", "runner-aware-no-such-command"]).unwrap();
    assert_eq!(output.status.code(), Some(127));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot run runner-aware-no-such-command: not found on PATH"),
        "{stderr}"
    );
}
