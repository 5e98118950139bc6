//! The preload library (C) has the trace format from `src-rs/tracer/trace.h`,
//! the parser and the supervisor from `runner_aware::trace_format`: every
//! `#define TRACE_*` of the header must equal its Rust counterpart, so the two
//! cannot drift.

use std::collections::BTreeMap;

use runner_aware::trace_format::{
    RecordKind, ENV_TRACE, ENV_TRACE_PRELOAD, ENV_TRACE_SUPERVISED, LOST_PATH, PATH_MAX,
    RESOLVE_IN_ROOT, TRAMPOLINE_ADDR, TRAMPOLINE_SIZE,
};

const HEADER: &str = include_str!("../../tracer/trace.h");

/// A define's value, read the way C reads the literals the header uses.
#[derive(Debug, PartialEq, Eq)]
enum Value {
    Char(u8),
    Text(String),
    Number(u64),
}

fn value(literal: &str) -> Value {
    if let Some(c) = literal
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
    {
        assert_eq!(c.len(), 1, "a character literal of one byte: {literal}");
        return Value::Char(c.as_bytes()[0]);
    }
    if let Some(text) = literal
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        assert!(!text.contains('\\'), "a string with no escapes: {literal}");
        return Value::Text(text.to_owned());
    }
    let digits = literal.trim_end_matches(['U', 'L', 'u', 'l']);
    let number = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    };
    Value::Number(number.unwrap_or_else(|_| panic!("a number: {literal}")))
}

/// Every `#define TRACE_<name> <value>` of the header, its comment left out.
fn defines() -> BTreeMap<String, Value> {
    HEADER
        .lines()
        .filter_map(|line| line.strip_prefix("#define TRACE_"))
        .map(|define| {
            let define = define.split("/*").next().unwrap_or(define).trim();
            let (name, literal) = define
                .split_once(char::is_whitespace)
                .unwrap_or_else(|| panic!("a define with a value: {define}"));
            (name.to_owned(), value(literal.trim()))
        })
        .collect()
}

fn rust_value(name: &str) -> Option<Value> {
    let kind = |kind: RecordKind| Some(Value::Char(kind.byte()));
    let text = |text: &str| Some(Value::Text(text.to_owned()));
    match name {
        "READ" => kind(RecordKind::Read),
        "EXEC" => kind(RecordKind::Exec),
        "FOUND" => kind(RecordKind::Found),
        "MISSING" => kind(RecordKind::Missing),
        "LISTED" => kind(RecordKind::Listed),
        "WRITTEN" => kind(RecordKind::Written),
        "DELETED" => kind(RecordKind::Deleted),
        "INCOMPLETE" => kind(RecordKind::Incomplete),
        "BEGIN" => kind(RecordKind::Begin),
        "END" => kind(RecordKind::End),
        "ENV_FILE" => text(ENV_TRACE),
        "ENV_PRELOAD" => text(ENV_TRACE_PRELOAD),
        "ENV_SUPERVISED" => text(ENV_TRACE_SUPERVISED),
        "LOST_PATH" => text(LOST_PATH),
        "TRAMPOLINE_ADDR" => Some(Value::Number(TRAMPOLINE_ADDR)),
        "TRAMPOLINE_SIZE" => Some(Value::Number(TRAMPOLINE_SIZE)),
        "PATH_MAX" => Some(Value::Number(PATH_MAX as u64)),
        "RESOLVE_IN_ROOT" => Some(Value::Number(RESOLVE_IN_ROOT)),
        _ => None,
    }
}

#[test]
fn trace_h_defines_what_the_rust_format_does() {
    let defines = defines();
    for (name, value) in &defines {
        match rust_value(name) {
            Some(rust) => assert_eq!(&rust, value, "TRACE_{name}"),
            None => {
                panic!("trace.h defines TRACE_{name}, which runner_aware::trace_format does not")
            }
        }
    }
    for kind in RecordKind::ALL {
        assert!(
            defines
                .values()
                .any(|value| *value == Value::Char(kind.byte())),
            "trace.h has no define for {kind:?}"
        );
    }
    assert!(
        defines.len() >= 18,
        "read {} defines from trace.h",
        defines.len()
    );
}
