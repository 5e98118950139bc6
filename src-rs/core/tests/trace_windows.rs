//! The trace format as the Windows tracer writes it (`src-rs/tracer-windows`):
//! records of Windows paths (`C:\…`, `\\server\share\…`), read back by
//! [`runner_aware::trace::parse`], and the tracer's files as a platform
//! package names them. Runs where the tracer does: under Wine in
//! `scripts/ci-cross.sh`, and on Windows.
#![cfg(all(windows, feature = "server"))]

use std::path::PathBuf;

use runner_aware::trace::{parse, platform_triple, Tracer};

fn trace_of(records: &[&str]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for record in records {
        bytes.extend_from_slice(record.as_bytes());
        bytes.push(0);
    }
    bytes
}

#[test]
fn windows_paths_are_recorded_clean_and_sorted() {
    let trace = parse(
        &trace_of(&[
            "bpreload",
            "rC:\\proj\\src\\index.js",
            "xC:\\tools\\esbuild.exe",
            "lC:\\proj\\src",
            "fC:\\proj\\src\\..\\package.json",
            "mC:\\proj\\tsconfig.json",
            "lC:\\proj\\dist",
            "wC:\\proj\\dist\\out.js",
            "d\\\\server\\share\\old.txt",
            "e",
        ]),
        &[],
    );
    assert!(trace.complete, "{:?}", trace.incomplete);
    assert_eq!(
        trace.read,
        ["C:\\proj\\src\\index.js", "C:\\tools\\esbuild.exe"]
    );
    assert_eq!(trace.found, ["C:\\proj\\package.json"]);
    assert_eq!(trace.missing, ["C:\\proj\\tsconfig.json"]);
    assert_eq!(trace.listed, ["C:\\proj\\dist", "C:\\proj\\src"]);
    assert_eq!(trace.written, ["C:\\proj\\dist\\out.js"]);
    assert_eq!(trace.deleted, ["\\\\server\\share\\old.txt"]);
    assert!(trace.read_then_written.is_empty());
}

#[test]
fn the_private_directory_is_left_out() {
    let trace = parse(
        &trace_of(&[
            "bpreload",
            "wC:\\Temp\\runner\\trace",
            "rC:\\Temp\\runner-other\\a.txt",
            "e",
        ]),
        &[PathBuf::from("C:\\Temp\\runner")],
    );
    assert!(trace.complete);
    assert!(trace.written.is_empty());
    assert_eq!(trace.read, ["C:\\Temp\\runner-other\\a.txt"]);
}

#[test]
fn a_path_without_a_drive_is_malformed() {
    let trace = parse(
        &trace_of(&["bpreload", "r\\proj\\a.txt", "rproj\\b.txt", "e"]),
        &[],
    );
    assert!(!trace.complete);
    assert!(trace.read.is_empty());
    assert!(
        trace.incomplete.iter().all(|why| why.contains("malformed")),
        "{:?}",
        trace.incomplete
    );
}

#[test]
fn the_tracer_is_named_as_the_platform_package_ships_it() {
    let triple = platform_triple().expect("Windows x64 has a tracer");
    assert_eq!(
        triple,
        if cfg!(target_env = "gnu") {
            "win32-x64-gnu"
        } else {
            "win32-x64-msvc"
        }
    );
    let dir = tempfile::tempdir().unwrap();
    let missing = Tracer::in_dir(dir.path()).unwrap_err();
    assert!(
        missing.contains(&format!("runner-aware-trace.{triple}.exe")),
        "{missing}"
    );
    for name in [
        format!("runner-aware-trace.{triple}.exe"),
        format!("runner-aware-preload.{triple}.dll"),
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    let tracer = Tracer::in_dir(dir.path()).unwrap();
    assert!(tracer
        .preload
        .ends_with(format!("runner-aware-preload.{triple}.dll")));
}
