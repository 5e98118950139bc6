//! What a traced task's processes did to files, read back from the trace file
//! the tracer (the preload library in `src-rs/tracer`, the seccomp supervisor
//! in `src-rs/tracer-supervisor`) appended to while the task ran. The record
//! format is [`crate::trace_format`]'s.
//!
//! A trace file is a sequence of records, each one kind byte, an absolute
//! path (or, for an incomplete record, a sentence) and a NUL byte, in the
//! order the accesses happened across every process of the task. Reads are
//! recorded after the call, effects (writes, deletes) before it, so a
//! process killed at any instant leaves no effect unrecorded.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::paths::clean;
use crate::reports::ChunkWriter;
use crate::trace_format::RecordKind;
pub use crate::trace_format::{ENV_TRACE, ENV_TRACE_PRELOAD};

/// How a task is traced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceMode {
    /// A preload library records what goes through libc; the supervisor's
    /// seccomp filter sees the rest (static programs, raw system calls).
    /// The default.
    #[default]
    Preload,
    /// The supervisor sees every file-access system call of the task.
    Seccomp,
    /// Nothing is traced here (another platform, no tracer, a traced
    /// runner); the trace says why, and a runner falls back to what the
    /// tools declared or to the repository's content.
    Unsupported,
}

impl TraceMode {
    /// The mode's name, as reports spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preload => "preload",
            Self::Seccomp => "seccomp",
            Self::Unsupported => "unsupported",
        }
    }
}

/// What every process of a traced task touched: absolute, lexically clean
/// paths, deduplicated and sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    /// How the task was traced. [`parse`] leaves the default; a
    /// [`TraceSession`] sets its own.
    #[serde(default)]
    pub mode: TraceMode,
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
    let separator = std::path::MAIN_SEPARATOR;
    path.strip_prefix(dir).is_some_and(|rest| {
        rest.is_empty() || rest.starts_with(separator) || dir.ends_with(separator)
    })
}

/// Whether a record's text is an absolute path as this platform's tracer
/// writes them: `/…` on Unix; `C:\…` or `\\server\share\…` on Windows.
fn is_absolute_record(text: &str) -> bool {
    if cfg!(windows) {
        Path::new(text).is_absolute()
    } else {
        text.starts_with('/')
    }
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
        let Some((&byte, text)) = record.split_first() else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(text) else {
            incomplete.insert(format!(
                "a path that is not UTF-8 was accessed ({})",
                String::from_utf8_lossy(text)
            ));
            continue;
        };
        let kind = RecordKind::from_byte(byte);
        match kind {
            Some(RecordKind::Incomplete) => {
                incomplete.insert(text.to_owned());
                continue;
            }
            Some(RecordKind::Begin) => {
                supervised = true;
                continue;
            }
            Some(RecordKind::End) => {
                ended = true;
                continue;
            }
            _ => {}
        }
        if !is_absolute_record(text) {
            incomplete.insert(format!(
                "a trace record of kind {:?} is malformed",
                byte as char
            ));
            continue;
        }
        let path = clean_str(text);
        if exclude.iter().any(|dir| is_under(&path, dir)) {
            continue;
        }
        let state = states.entry(path).or_default();
        match kind {
            Some(RecordKind::Read | RecordKind::Exec) => state.read = true,
            Some(RecordKind::Listed) => state.listed = true,
            Some(RecordKind::Found) => state.found = true,
            Some(RecordKind::Missing) => state.missing = true,
            Some(effect @ (RecordKind::Written | RecordKind::Deleted)) => {
                if (state.read || state.listed) && !state.written && !state.deleted {
                    state.read_then_written = true;
                }
                if effect == RecordKind::Written {
                    state.written = true;
                } else {
                    state.deleted = true;
                }
            }
            _ => {
                incomplete.insert(format!(
                    "a trace record of kind {:?} is unknown",
                    byte as char
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

/// The variable naming where a runner finds the tracer when its options
/// name no directory.
pub const ENV_TRACER_DIR: &str = "RUNNER_AWARE_TRACER_DIR";

/// The name of this build's platform, as the tracer's files and the npm
/// platform packages spell it (`linux-x64-gnu`, `linux-arm64-musl`,
/// `win32-x64-msvc`); `None` where no tracer is built.
pub fn platform_triple() -> Option<&'static str> {
    if cfg!(all(windows, target_arch = "x86_64")) {
        return Some(if cfg!(target_env = "gnu") {
            "win32-x64-gnu"
        } else {
            "win32-x64-msvc"
        });
    }
    if cfg!(not(target_os = "linux")) {
        return None;
    }
    match (
        cfg!(target_arch = "x86_64"),
        cfg!(target_arch = "aarch64"),
        cfg!(target_env = "musl"),
    ) {
        (true, _, false) => Some("linux-x64-gnu"),
        (true, _, true) => Some("linux-x64-musl"),
        (_, true, false) => Some("linux-arm64-gnu"),
        (_, true, true) => Some("linux-arm64-musl"),
        _ => None,
    }
}

/// The tracer's two programs: the seccomp supervisor a traced command runs
/// under, and the preload library it puts in the command's `LD_PRELOAD`. On
/// Windows: the launcher, and the DLL it loads into every process of the
/// task (`src-rs/tracer-windows`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracer {
    /// `runner-aware-trace.<triple>` (Windows: `.exe`).
    pub supervisor: PathBuf,
    /// `runner-aware-preload.<triple>.so` (Windows: `.dll`).
    pub preload: PathBuf,
}

impl Tracer {
    /// The tracer in `dir` (where the npm platform package keeps it, beside
    /// the addon), or why there is none usable here.
    pub fn in_dir(dir: &Path) -> Result<Self, String> {
        let Some(triple) = platform_triple() else {
            return Err(format!(
                "file-access tracing is Linux on x64 and arm64 and Windows on x64 only (this is {} on {})",
                std::env::consts::OS,
                std::env::consts::ARCH
            ));
        };
        let (program, library) = if cfg!(windows) {
            (".exe", "dll")
        } else {
            ("", "so")
        };
        let tracer = Self {
            supervisor: dir.join(format!("runner-aware-trace.{triple}{program}")),
            preload: dir.join(format!("runner-aware-preload.{triple}.{library}")),
        };
        for file in [&tracer.supervisor, &tracer.preload] {
            if !file.is_file() {
                return Err(format!(
                    "{} is missing (the platform package or the build lacks the tracer)",
                    file.display()
                ));
            }
        }
        Ok(tracer)
    }

    /// The tracer in the directory `RUNNER_AWARE_TRACER_DIR` names.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var_os(ENV_TRACER_DIR) {
            Some(dir) if !dir.is_empty() => Self::in_dir(Path::new(&dir)),
            _ => Err(format!(
                "no tracer was given (set {ENV_TRACER_DIR}, or name its directory in the runner's options)"
            )),
        }
    }
}

/// The trace files this process's sessions made: never taken for an outer
/// runner's.
static OWN_TRACE_FILES: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn own_trace_files<T>(f: impl FnOnce(&mut HashSet<PathBuf>) -> T) -> T {
    let mut guard = OWN_TRACE_FILES
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(HashSet::new))
}

/// Why a trace asked for in so many words cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file-access tracing ({mode}) was asked for and cannot be done: {reason}")]
pub struct TraceUnavailable {
    /// The mode asked for.
    pub mode: &'static str,
    /// Why not.
    pub reason: String,
}

/// A trace being recorded for one run, or the reason none is: the env the
/// task needs, its command wrapped in the supervisor, and the trace read back
/// once it has exited. A runner gets one from its server
/// ([`crate::ServerOptions::trace`]); this is the piece for a runner with a
/// channel of its own.
#[derive(Debug)]
pub struct TraceSession {
    mode: TraceMode,
    env: BTreeMap<String, String>,
    supervisor: Option<PathBuf>,
    file: Option<PathBuf>,
    unsupported: Option<String>,
    private_dir: PathBuf,
}

impl TraceSession {
    /// Starts a trace in `private_dir` (the runner's own directory, which
    /// the trace leaves out): `mode` is [`TraceMode::Preload`] or
    /// [`TraceMode::Seccomp`], `tracer` where the tracer is or why it is
    /// not. Where nothing can be traced (no tracer, another platform, this
    /// runner itself traced by an outer one, which already records what this
    /// task does) the session's mode is `unsupported` with the reason, or,
    /// when `required`, it is an error.
    pub fn start(
        mode: TraceMode,
        tracer: Result<Tracer, String>,
        private_dir: &Path,
        required: bool,
    ) -> Result<Self, TraceUnavailable> {
        let unavailable = |reason: String| -> Result<Self, TraceUnavailable> {
            if required {
                return Err(TraceUnavailable {
                    mode: mode.as_str(),
                    reason,
                });
            }
            Ok(Self::unsupported(reason, private_dir))
        };
        if mode == TraceMode::Unsupported {
            return unavailable("no trace mode was asked for".to_owned());
        }
        if cfg!(windows) && mode == TraceMode::Seccomp {
            return unavailable(
                "seccomp mode is Linux's; on Windows the tracing DLL alone traces (preload mode)"
                    .to_owned(),
            );
        }
        if let Some(outer) = std::env::var_os(ENV_TRACE).filter(|file| !file.is_empty()) {
            let outer = PathBuf::from(outer);
            // Not a file of this process's own sessions (a runner may put a
            // server's env into its own), nor one that is gone (a daemon that
            // outlived the traced task that started it). A second supervisor
            // could not listen: the kernel allows one seccomp listener in a
            // process's filter chain.
            // Not an error even where a mode was required: the task is
            // traced, by the outer runner.
            if !own_trace_files(|own| own.contains(&outer)) && outer.exists() {
                return Ok(Self::unsupported(
                    format!(
                        "this runner is itself traced by an outer runner ({}), whose trace records what this task does",
                        outer.display()
                    ),
                    private_dir,
                ));
            }
        }
        let tracer = match tracer {
            Ok(tracer) => tracer,
            Err(reason) => return unavailable(reason),
        };
        let file = private_dir.join("trace");
        let created = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file);
        if let Err(err) = created {
            return unavailable(format!(
                "the trace file {} could not be made: {err}",
                file.display()
            ));
        }
        own_trace_files(|own| own.insert(file.clone()));
        let mut env = BTreeMap::from([
            (ENV_TRACE.to_owned(), file.to_string_lossy().into_owned()),
            // libuv's io_uring would do file I/O no system call shows.
            ("UV_USE_IO_URING".to_owned(), "0".to_owned()),
        ]);
        if mode == TraceMode::Preload {
            env.insert(
                ENV_TRACE_PRELOAD.to_owned(),
                tracer.preload.to_string_lossy().into_owned(),
            );
        }
        Ok(Self {
            mode,
            env,
            supervisor: Some(tracer.supervisor),
            file: Some(file),
            unsupported: None,
            private_dir: private_dir.to_path_buf(),
        })
    }

    fn unsupported(reason: String, private_dir: &Path) -> Self {
        Self {
            mode: TraceMode::Unsupported,
            env: BTreeMap::new(),
            supervisor: None,
            file: None,
            unsupported: Some(reason),
            private_dir: private_dir.to_path_buf(),
        }
    }

    /// How the task is traced: the mode asked for, or `unsupported`.
    pub fn mode(&self) -> TraceMode {
        self.mode
    }

    /// Variables the task needs (none when nothing is traced).
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// The command line to spawn for `argv`: under the supervisor when
    /// tracing, else `argv` as it is. Without the supervisor nothing sees
    /// what the preload library cannot, and the trace says so.
    pub fn command<S: Into<OsString> + Clone>(&self, argv: &[S]) -> Vec<OsString> {
        let argv = argv.iter().cloned().map(Into::into);
        match &self.supervisor {
            Some(supervisor) => [
                supervisor.clone().into_os_string(),
                "--mode".into(),
                self.mode.as_str().into(),
                "--".into(),
            ]
            .into_iter()
            .chain(argv)
            .collect(),
            None => argv.collect(),
        }
    }

    /// Reads the trace once the task has exited. Never fails: a trace file
    /// that cannot be read is an incomplete trace with the reason.
    pub fn finish(mut self) -> Trace {
        let Some(file) = self.file.take() else {
            return Trace {
                mode: TraceMode::Unsupported,
                incomplete: vec![format!(
                    "trace: unsupported: {}",
                    self.unsupported.take().unwrap_or_default()
                )],
                ..Trace::default()
            };
        };
        let trace = match read(&file, std::slice::from_ref(&self.private_dir)) {
            Ok(trace) => trace,
            Err(err) => Trace {
                incomplete: vec![format!("the trace file could not be read: {err}")],
                ..Trace::default()
            },
        };
        let _ = fs::remove_file(&file);
        own_trace_files(|own| own.remove(&file));
        Trace {
            mode: self.mode,
            ..trace
        }
    }
}

impl Drop for TraceSession {
    /// A session dropped unfinished (its runner gave up before the task ran)
    /// leaves no trace file behind, so the next one in the same directory
    /// can start.
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = fs::remove_file(&file);
            own_trace_files(|own| own.remove(&file));
        }
    }
}

// The trace format holds Linux paths, and `Path` reads them as the host's:
// the tests run where the tracer does.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_session_dropped_unfinished_leaves_the_directory_for_the_next() {
        if platform_triple().is_none() {
            return;
        }
        let tracer = tempfile::tempdir().unwrap();
        let triple = platform_triple().unwrap();
        fs::write(
            tracer.path().join(format!("runner-aware-trace.{triple}")),
            "",
        )
        .unwrap();
        fs::write(
            tracer
                .path()
                .join(format!("runner-aware-preload.{triple}.so")),
            "",
        )
        .unwrap();
        let private = tempfile::tempdir().unwrap();
        // Not under an outer runner's trace, whatever the test runs under.
        if std::env::var_os(ENV_TRACE).is_some() {
            return;
        }
        let start = || {
            TraceSession::start(
                TraceMode::Preload,
                Tracer::in_dir(tracer.path()),
                private.path(),
                true,
            )
        };
        let first = start().expect("a trace starts");
        assert!(private.path().join("trace").exists());
        drop(first);
        assert!(!private.path().join("trace").exists());
        let second = start().expect("a second trace starts in the same directory");
        assert_eq!(second.mode(), TraceMode::Preload);
        let trace = second.finish();
        assert!(!trace.complete, "nothing ran under the supervisor");
        assert!(!private.path().join("trace").exists());
    }

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
