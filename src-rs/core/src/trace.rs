//! What a traced task's processes did to files, read back from the trace file
//! the tracer (`src-rs/tracer`: a preload library and a seccomp supervisor)
//! appended to while the task ran.
//!
//! A trace file is a sequence of records, each one kind byte, an absolute
//! path (or, for an incomplete record, a sentence) and a NUL byte, in the
//! order the accesses happened across every process of the task. Reads are
//! recorded after the call, effects (writes, deletes) before it, so a
//! process killed at any instant leaves no effect unrecorded.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::paths::clean;
use crate::reports::ChunkWriter;

/// What every process of a traced task touched: absolute, lexically clean
/// paths, deduplicated and sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    /// Whether the trace saw every file access of the task. When `false`,
    /// `incomplete` says why, and a run trusted on this trace is not cacheable.
    pub complete: bool,
    /// Why the trace may miss accesses (empty when `complete`).
    pub incomplete: Vec<String>,
    /// Files opened for reading, and programs executed.
    pub read: Vec<String>,
    /// Paths looked up (stat, access, readlink) that existed.
    pub found: Vec<String>,
    /// Paths looked up or opened that did not exist.
    pub missing: Vec<String>,
    /// Directories opened for listing.
    pub listed: Vec<String>,
    /// Paths opened for writing, created, truncated, or renamed or linked to.
    pub written: Vec<String>,
    /// Paths unlinked, removed or renamed away.
    pub deleted: Vec<String>,
    /// Paths whose contents or listing were read before they were first
    /// written or deleted: the task modified something it had read.
    pub read_then_written: Vec<String>,
}

/// A trace record's kind byte.
mod kind {
    pub const READ: u8 = b'r';
    pub const EXEC: u8 = b'x';
    pub const FOUND: u8 = b'f';
    pub const MISSING: u8 = b'm';
    pub const LISTED: u8 = b'l';
    pub const WRITTEN: u8 = b'w';
    pub const DELETED: u8 = b'd';
    pub const INCOMPLETE: u8 = b'!';
    pub const BEGIN: u8 = b'b';
    pub const END: u8 = b'e';
}

#[derive(Default)]
struct PathState {
    read: bool,
    found: bool,
    missing: bool,
    listed: bool,
    written: bool,
    deleted: bool,
    read_then_written: bool,
}

/// Whether `path` is `dir` or beneath it (both clean and absolute).
fn is_under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || dir.ends_with('/'))
}

/// `text` made lexically clean: borrowed when it already is, which nearly
/// every recorded path is.
fn clean_str(text: &str) -> Cow<'_, str> {
    match clean(Path::new(text)) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(path) => Cow::Owned(path.to_string_lossy().into_owned()),
    }
}

/// Parses a trace file's bytes. A trace without the supervisor's begin
/// record is incomplete: the command was not started under it; so is one
/// with a begin and no end record: the supervisor was cut short. Paths under
/// any of `exclude` (the runner's own private directory) are left out. A
/// record that is not valid UTF-8, or a last record cut short, makes the
/// trace incomplete: a path that cannot be named cannot be checked. Each list
/// is sorted by code point (the UTF-8 bytes); JavaScript's default sort
/// agrees but for characters beyond U+FFFF against U+E000 to U+FFFF.
pub fn parse(bytes: &[u8], exclude: &[PathBuf]) -> Trace {
    let exclude: Vec<String> = exclude
        .iter()
        .map(|dir| clean(dir).to_string_lossy().into_owned())
        .collect();
    // Keys borrow from `bytes`: a path is copied only when the lists are built.
    let mut states: HashMap<Cow<'_, str>, PathState> = HashMap::new();
    let mut incomplete = BTreeSet::new();
    let mut supervised = false;
    let mut ended = false;
    let mut records = bytes.split(|&b| b == 0).peekable();
    while let Some(record) = records.next() {
        if records.peek().is_none() {
            // What follows the last NUL: empty in a whole file.
            if !record.is_empty() {
                incomplete.insert("the trace file ends in a partial record".to_owned());
            }
            break;
        }
        let Some((&kind, text)) = record.split_first() else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(text) else {
            incomplete.insert(format!(
                "a path that is not UTF-8 was accessed ({})",
                String::from_utf8_lossy(text)
            ));
            continue;
        };
        if kind == kind::INCOMPLETE {
            incomplete.insert(text.to_owned());
            continue;
        }
        if kind == kind::BEGIN {
            supervised = true;
            continue;
        }
        if kind == kind::END {
            ended = true;
            continue;
        }
        if !text.starts_with('/') {
            incomplete.insert(format!(
                "a trace record of kind {:?} is malformed",
                kind as char
            ));
            continue;
        }
        let path = clean_str(text);
        if exclude.iter().any(|dir| is_under(&path, dir)) {
            continue;
        }
        let state = states.entry(path).or_default();
        match kind {
            kind::READ | kind::EXEC => state.read = true,
            kind::LISTED => state.listed = true,
            kind::FOUND => state.found = true,
            kind::MISSING => state.missing = true,
            kind::WRITTEN | kind::DELETED => {
                if (state.read || state.listed) && !state.written && !state.deleted {
                    state.read_then_written = true;
                }
                if kind == kind::WRITTEN {
                    state.written = true;
                } else {
                    state.deleted = true;
                }
            }
            other => {
                incomplete.insert(format!(
                    "a trace record of kind {:?} is unknown",
                    other as char
                ));
            }
        }
    }
    if !supervised {
        incomplete.insert(
            "the command was not started through the trace supervisor (server.command()), so nothing saw what the preload library cannot"
                .to_owned(),
        );
    } else if !ended {
        incomplete.insert(
            "the trace supervisor did not see the task to its end (it was killed, or died), so what the task did last may be missing"
                .to_owned(),
        );
    }
    let mut trace = Trace {
        complete: incomplete.is_empty(),
        incomplete: incomplete.into_iter().collect(),
        ..Trace::default()
    };
    let mut paths: Vec<(Cow<'_, str>, PathState)> = states.into_iter().collect();
    paths.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (path, state) in paths {
        let name = path.into_owned();
        let lists = [
            (state.read, &mut trace.read),
            (state.found, &mut trace.found),
            (state.missing, &mut trace.missing),
            (state.listed, &mut trace.listed),
            (state.written, &mut trace.written),
            (state.deleted, &mut trace.deleted),
            (state.read_then_written, &mut trace.read_then_written),
        ];
        for (set, list) in lists {
            if set {
                list.push(name.clone());
            }
        }
    }
    trace
}

impl Trace {
    /// The trace as JSON text in chunks of about `chunk_bytes`, the way
    /// [`Reports::into_json_chunks`](crate::Reports::into_json_chunks) hands
    /// over reports: the first chunk is the whole object with its path lists
    /// empty; each further one is `{"field": F, "items": [...]}`, to be
    /// appended to list `F` in order. A big build's trace holds hundreds of
    /// thousands of paths, which one `JSON.parse` would take the runner's
    /// event loop tens of milliseconds to read.
    pub fn into_json_chunks(
        mut self,
        chunk_bytes: usize,
    ) -> Result<Vec<String>, serde_json::Error> {
        let lists = [
            ("read", std::mem::take(&mut self.read)),
            ("found", std::mem::take(&mut self.found)),
            ("missing", std::mem::take(&mut self.missing)),
            ("listed", std::mem::take(&mut self.listed)),
            ("written", std::mem::take(&mut self.written)),
            ("deleted", std::mem::take(&mut self.deleted)),
            (
                "readThenWritten",
                std::mem::take(&mut self.read_then_written),
            ),
        ];
        let mut writer = ChunkWriter::start(serde_json::to_string(&self)?, chunk_bytes);
        for (field, items) in lists {
            writer.push_all(field, "items", items)?;
        }
        Ok(writer.finish())
    }
}

/// Reads and parses the trace file at `file`; see [`parse`].
pub fn read(file: &Path, exclude: &[PathBuf]) -> io::Result<Trace> {
    Ok(parse(&fs::read(file)?, exclude))
}

// The trace format holds Linux paths, and `Path` reads them as the host's:
// the tests run where the tracer does.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A whole trace: the supervisor's begin record, `list`, its end record.
    fn records(list: &[&str]) -> Vec<u8> {
        let mut out = b"bpreload\0".to_vec();
        for record in list {
            out.extend_from_slice(record.as_bytes());
            out.push(0);
        }
        out.extend_from_slice(b"e\0");
        out
    }

    #[test]
    fn sorts_dedupes_and_cleans_paths_by_kind() {
        let trace = parse(
            &records(&[
                "r/b/x", "r/a/./y", "f/c", "r/b/x", "m/d/../e", "l/dir", "w/out", "d/old",
                "x/bin/sh",
            ]),
            &[],
        );
        assert!(trace.complete);
        assert_eq!(trace.read, ["/a/y", "/b/x", "/bin/sh"]);
        assert_eq!(trace.found, ["/c"]);
        assert_eq!(trace.missing, ["/e"]);
        assert_eq!(trace.listed, ["/dir"]);
        assert_eq!(trace.written, ["/out"]);
        assert_eq!(trace.deleted, ["/old"]);
        assert!(trace.read_then_written.is_empty());
    }

    #[test]
    fn a_read_before_the_first_write_is_a_modified_input() {
        let trace = parse(
            &records(&["r/in", "w/in", "w/out", "r/out", "l/d", "d/d", "f/s", "w/s"]),
            &[],
        );
        assert_eq!(trace.read_then_written, ["/d", "/in"]);
    }

    #[test]
    fn incomplete_records_partial_records_and_non_utf8_paths_make_it_incomplete() {
        let trace = parse(
            &records(&["!a static program ran untraced: /bin/x", "r/a"]),
            &[],
        );
        assert!(!trace.complete);
        assert_eq!(trace.incomplete, ["a static program ran untraced: /bin/x"]);

        let mut cut = records(&["r/a"]);
        cut.extend_from_slice(b"r/b");
        let trace = parse(&cut, &[]);
        assert!(!trace.complete);
        assert_eq!(trace.read, ["/a"]);

        let trace = parse(b"bpreload\0r/\xff\0e\0", &[]);
        assert!(!trace.complete);
        assert!(trace.incomplete[0].contains("not UTF-8"));
    }

    #[test]
    fn a_trace_the_supervisor_did_not_end_is_incomplete() {
        let trace = parse(b"bpreload\0r/a\0", &[]);
        assert!(!trace.complete);
        assert!(trace.incomplete[0].contains("did not see the task to its end"));
        assert_eq!(trace.read, ["/a"]);
    }

    #[test]
    fn a_trace_the_supervisor_did_not_begin_is_incomplete() {
        let trace = parse(b"r/a\0", &[]);
        assert!(!trace.complete);
        assert!(trace.incomplete[0].contains("supervisor"));
    }

    #[test]
    fn excluded_directories_are_left_out() {
        let trace = parse(
            &records(&[
                "r/private/trace",
                "r/private",
                "r/a",
                "r/private2/x",
                "r/root/x",
            ]),
            &[PathBuf::from("/private"), PathBuf::from("/root/")],
        );
        assert_eq!(trace.read, ["/a", "/private2/x"]);
    }

    #[test]
    fn chunks_rebuild_the_trace() {
        let paths: Vec<String> = (0..2000).map(|i| format!("r/dir/file-{i:04}")).collect();
        let mut list: Vec<&str> = paths.iter().map(String::as_str).collect();
        list.extend([
            "w/out",
            "r/in",
            "w/in",
            "!a static program ran untraced: /bin/x",
        ]);
        let trace = parse(&records(&list), &[]);
        let chunks = trace.clone().into_json_chunks(4096).unwrap();
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        let mut rebuilt: serde_json::Value = serde_json::from_str(&chunks[0]).unwrap();
        assert_eq!(rebuilt["read"], serde_json::json!([]));
        for chunk in &chunks[1..] {
            assert!(chunk.len() < 4096 + 100, "a chunk of {} bytes", chunk.len());
            let part: serde_json::Value = serde_json::from_str(chunk).unwrap();
            let field = part["field"].as_str().unwrap();
            let items = part["items"].as_array().unwrap().clone();
            rebuilt[field].as_array_mut().unwrap().extend(items);
        }
        assert_eq!(rebuilt, serde_json::to_value(&trace).unwrap());
        assert_eq!(trace.read.len(), 2001);
    }

    #[test]
    fn lists_are_sorted_by_bytes_and_unclean_paths_merge_with_clean_ones() {
        let trace = parse(
            &records(&["r/a/b", "r/a-b", "r/a/./b", "r/a//b/", "w/a/c/../b"]),
            &[],
        );
        // JavaScript's default sort gives the same order: '-' sorts before '/'.
        assert_eq!(trace.read, ["/a-b", "/a/b"]);
        assert_eq!(trace.read_then_written, ["/a/b"]);
    }
}
