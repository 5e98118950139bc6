//! The runner's rules, one suite for two implementations: every case of
//! `test/fixtures/rules.json` runs here through the crate and in
//! `test/rules.test.ts` through the npm package's `runner-aware/runner`,
//! against the same expected results. `<root>` in a case stands for a
//! scratch directory holding its files.
#![cfg(unix)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use runner_aware::env_fingerprint::EnvFingerprint;
use runner_aware::fingerprint::{fingerprint_input, InputKind, StatCache};
use runner_aware::reports::{Reports, UncacheableReason};
use runner_aware::rules::{
    describe_reason, infer_accesses, trace_reasons, verdict, CommandOutcome, PathSet,
    VerdictOptions,
};
use runner_aware::trace::Trace;

fn fixtures() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures/rules.json");
    serde_json::from_str(&fs::read_to_string(path).expect("the fixtures")).expect("JSON")
}

fn cases(name: &str) -> Vec<Value> {
    fixtures()[name].as_array().expect(name).clone()
}

fn from<T: serde::de::DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|err| panic!("{value}: {err}"))
}

/// A scratch directory holding a case's `files` and `links`.
fn materialize(case: &Value) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let root: PathBuf = fs::canonicalize(dir.path()).expect("canonical");
    let empty = serde_json::Map::new();
    for (rel, content) in case["files"].as_object().unwrap_or(&empty) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(&path, content.as_str().expect("text")).expect("write");
    }
    for (rel, target) in case["links"].as_object().unwrap_or(&empty) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::os::unix::fs::symlink(target.as_str().expect("text"), &path).expect("link");
    }
    let text = root.to_string_lossy().into_owned();
    (dir, text)
}

fn with_root(value: &Value, root: &str) -> Value {
    serde_json::from_str(&value.to_string().replace("<root>", root)).expect("JSON")
}

fn without_root(value: &Value, root: &str) -> Value {
    serde_json::from_str(&value.to_string().replace(root, "<root>")).expect("JSON")
}

/// Reports as a fixture writes them: a Node runner's, with every field.
fn reports(value: &Value) -> Reports {
    from(value)
}

#[test]
fn verdict_agrees() {
    for case in cases("verdict") {
        let reasons: Vec<UncacheableReason> = from(&case["notCacheable"]);
        let outcome: CommandOutcome = from(&case["outcome"]);
        let options: VerdictOptions = from(&case["options"]);
        let got = serde_json::to_value(verdict(&reasons, &outcome, &options)).expect("JSON");
        assert_eq!(got, case["expected"], "{}", case["name"]);
    }
}

#[test]
fn describe_reason_agrees() {
    for case in cases("describeReason") {
        let reason: UncacheableReason = from(&case["reason"]);
        assert_eq!(
            describe_reason(&reason),
            case["expected"].as_str().expect("text")
        );
    }
}

#[test]
fn infer_accesses_agrees() {
    for case in cases("inferAccesses") {
        let (_dir, root) = materialize(&case);
        let got = infer_accesses(&reports(&with_root(&case["reports"], &root)));
        let got = without_root(&serde_json::to_value(got).expect("JSON"), &root);
        assert_eq!(got, case["expected"], "{}", case["name"]);
    }
}

#[test]
fn fingerprint_input_agrees() {
    for case in cases("fingerprintInput") {
        let (_dir, root) = materialize(&case);
        let input = with_root(&case["input"], &root);
        let kind: InputKind = from(&input["kind"]);
        let path = PathBuf::from(input["path"].as_str().expect("a path"));
        let cache = StatCache::new();
        let got = fingerprint_input(&path, kind, &cache).expect("a fingerprint");
        assert_eq!(
            without_root(&json!(got), &root),
            case["expected"],
            "{}",
            case["name"]
        );
    }
}

#[test]
fn env_fingerprint_agrees() {
    for case in cases("envFingerprint") {
        let fingerprint = EnvFingerprint::of_reports(&reports(&case["reports"]));
        assert_eq!(
            serde_json::to_value(&fingerprint).expect("JSON"),
            case["expected"],
            "{}",
            case["name"]
        );
        let text = serde_json::to_string(&fingerprint).expect("JSON");
        assert_eq!(EnvFingerprint::parse(&text).expect("parses"), fingerprint);
    }
}

#[test]
fn validate_fingerprint_agrees() {
    for case in cases("validateFingerprint") {
        let fingerprint = EnvFingerprint::of_reports(&reports(&case["reports"]));
        let env: HashMap<String, String> = from(&case["env"]);
        let values: Option<BTreeMap<String, String>> = case.get("values").map(from);
        let reasons = fingerprint.validate_with_values(&env, values.as_ref());
        let got = json!({ "valid": reasons.is_empty(), "reasons": reasons });
        assert_eq!(got, case["expected"], "{}", case["name"]);
    }
}

#[test]
fn trace_reasons_agree() {
    for case in cases("traceReasons") {
        let ignored: Vec<String> = from(&case["ignoredInputs"]);
        let trace: Trace = from(&case["trace"]);
        let got =
            serde_json::to_value(trace_reasons(&PathSet::new(&ignored), &trace)).expect("JSON");
        assert_eq!(got, case["expected"]);
    }
}
