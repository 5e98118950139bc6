//! The rules a runner applies to a run's reports, so no runner re-derives
//! them: the verdict it acts on, the inputs and outputs a trace implies, and
//! what a trace adds to the reasons a run may not be cached. The Node
//! package's `runner-aware/runner` calls these same functions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fingerprint::InputKind;
use crate::paths::absolutize;
use crate::reports::{Reports, UncacheableKind, UncacheableReason};
use crate::trace::{Trace, TraceMode};

/// How the task's command ended, for [`verdict`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandOutcome {
    /// Its exit code; `None` when a signal ended it or it is not known.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended it (`SIGTERM`).
    #[serde(default)]
    pub signal: Option<String>,
}

impl CommandOutcome {
    /// The outcome of a finished [`std::process::Command`].
    pub fn of(status: &std::process::ExitStatus) -> Self {
        #[cfg(unix)]
        let signal = {
            use std::os::unix::process::ExitStatusExt;
            status.signal().map(signal_name)
        };
        #[cfg(not(unix))]
        let signal = None;
        Self {
            exit_code: status.code(),
            signal,
        }
    }
}

/// A signal's name as Node spells it (`SIGKILL`), or its number.
#[cfg(unix)]
fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// What the runner's user decided, for [`verdict`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerdictOptions {
    /// Callers whose `disableCache` the user overrules for this task (user
    /// config wins): a `disable-cache` reason whose `caller` is one of these,
    /// or starts with one and a space, does not count (`vite` overrules
    /// `vite … _createServer`, not `vitest … x`). Only `disable-cache` can be
    /// overruled, and only with a caller: every other reason means what a
    /// tool said may be missing.
    #[serde(default)]
    pub cacheable_despite: Option<Vec<String>>,
}

/// Whether to cache a run, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Whether the run may be cached.
    pub cacheable: bool,
    /// Every reason it may not, the reports' first.
    pub reasons: Vec<UncacheableReason>,
    /// The `disableCache` calls the user overruled: not in `reasons`, kept
    /// so a runner can record and show them. Present only with
    /// [`VerdictOptions::cacheable_despite`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overruled: Option<Vec<UncacheableReason>>,
}

fn is_overruled(reason: &UncacheableReason, callers: &[String]) -> bool {
    let Some(caller) = reason.caller.as_deref() else {
        return false;
    };
    reason.kind == UncacheableKind::DisableCache
        && callers.iter().any(|overruled| {
            !overruled.is_empty()
                && (caller == overruled
                    || caller
                        .strip_prefix(overruled.as_str())
                        .is_some_and(|rest| rest.starts_with(' ')))
        })
}

/// The one verdict a runner acts on: the reports' reasons (`not_cacheable`),
/// plus the command's exit (a failed or killed command is never cached),
/// minus the `disableCache` calls the user overruled.
pub fn verdict(
    not_cacheable: &[UncacheableReason],
    outcome: &CommandOutcome,
    options: &VerdictOptions,
) -> Verdict {
    let mut reasons = not_cacheable.to_vec();
    if let Some(signal) = &outcome.signal {
        reasons.push(reason(
            UncacheableKind::Exit,
            format!("the command was killed by {signal}"),
        ));
    } else if let Some(code) = outcome.exit_code.filter(|code| *code != 0) {
        reasons.push(reason(
            UncacheableKind::Exit,
            format!("the command exited with code {code}"),
        ));
    }
    let Some(callers) = &options.cacheable_despite else {
        return Verdict {
            cacheable: reasons.is_empty(),
            reasons,
            overruled: None,
        };
    };
    let (overruled, reasons): (Vec<_>, Vec<_>) = reasons
        .into_iter()
        .partition(|reason| is_overruled(reason, callers));
    Verdict {
        cacheable: reasons.is_empty(),
        reasons,
        overruled: Some(overruled),
    }
}

fn reason(kind: UncacheableKind, message: String) -> UncacheableReason {
    UncacheableReason {
        kind,
        message,
        pid: None,
        caller: None,
        command: None,
    }
}

/// At most this many characters of a command line are shown in a reason.
const SHOWN_COMMAND_CHARS: usize = 200;

/// A reason as one line for people, with who gave it when known: `kind:
/// message`, then `, from <caller>` and ` (pid N: <command line>)`.
pub fn describe_reason(reason: &UncacheableReason) -> String {
    let from = reason
        .caller
        .as_deref()
        .map(|caller| format!(", from {caller}"))
        .unwrap_or_default();
    let command = match &reason.command {
        None => String::new(),
        Some(command) if command.encode_utf16().count() > SHOWN_COMMAND_CHARS => {
            // Cut by UTF-16 code unit, as a JavaScript runner counts, and
            // never inside a character.
            let mut units: Vec<u16> = command
                .encode_utf16()
                .take(SHOWN_COMMAND_CHARS - 1)
                .collect();
            if units
                .last()
                .is_some_and(|unit| (0xD800..0xDC00).contains(unit))
            {
                units.pop();
            }
            format!(": {}…", String::from_utf16_lossy(&units))
        }
        Some(command) => format!(": {command}"),
    };
    let pid = match reason.pid {
        Some(pid) if pid != 0 => format!(" (pid {pid}{command})"),
        _ => String::new(),
    };
    let kind = serde_json::to_value(reason.kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("{kind}: {}{from}{pid}", reason.message)
}

/// A set of directories and the test "is this path one of them or beneath
/// one", compared component by component: `dist` covers `dist/a`, not
/// `dist2/a`.
#[derive(Debug, Clone, Default)]
pub struct PathSet {
    dirs: Vec<String>,
}

impl PathSet {
    /// The set of `dirs`, made absolute against the current directory and
    /// lexically clean.
    pub fn new<'a>(dirs: impl IntoIterator<Item = &'a String>) -> Self {
        Self {
            dirs: dirs.into_iter().map(|dir| normalize(dir)).collect(),
        }
    }

    /// Whether `path` is one of the set's directories or beneath one.
    pub fn covers(&self, path: &str) -> bool {
        if self.dirs.is_empty() {
            return false;
        }
        let path = normalize(path);
        self.dirs.iter().any(|dir| is_within_clean(&path, dir))
    }
}

/// `path` made absolute against the current directory, `.` and `..` removed
/// (lexically: links are not resolved, the tool side's view of a path).
pub fn normalize(path: &str) -> String {
    absolutize(path, || std::env::current_dir().unwrap_or_default())
        .to_string_lossy()
        .into_owned()
}

fn is_within_clean(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|rest| {
        rest.is_empty()
            || rest.starts_with(std::path::MAIN_SEPARATOR)
            || dir.ends_with(std::path::MAIN_SEPARATOR)
    })
}

/// Whether `path` is `dir` or beneath it, after normalisation.
pub fn is_within(path: &str, dir: &str) -> bool {
    is_within_clean(&normalize(path), &normalize(dir))
}

/// The inputs the tools declared (`addInput`), minus any under an ignored
/// input; normalised and sorted.
pub fn declared_inputs(reports: &Reports) -> Vec<String> {
    filter(&reports.inputs, &PathSet::new(&reports.ignored_inputs))
}

/// The outputs the tools declared (`addOutput`), minus any under an ignored
/// output; normalised and sorted. A declared directory may still hold
/// ignored paths.
pub fn declared_outputs(reports: &Reports) -> Vec<String> {
    filter(&reports.outputs, &PathSet::new(&reports.ignored_outputs))
}

fn filter(paths: &BTreeSet<String>, ignored: &PathSet) -> Vec<String> {
    let kept: BTreeSet<String> = paths
        .iter()
        .map(|path| normalize(path))
        .filter(|path| !ignored.covers(path))
        .collect();
    kept.into_iter().collect()
}

/// An input of a run and what of it matters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InferredInput {
    /// Absolute path.
    pub path: String,
    /// What a look-up checks.
    pub kind: InputKind,
}

/// A run's inputs and outputs, inferred from its trace and its tools' reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferredAccesses {
    /// Paths first read, looked up or listed (and never written), minus
    /// ignored inputs, plus declared inputs (`content`); sorted by path. The
    /// strongest kind wins: a path read and listed is `content`. A directory
    /// only looked up that the run then wrote beneath (`mkdir -p dist`) is
    /// not one.
    pub inputs: Vec<InferredInput>,
    /// Paths written that exist now, minus ignored outputs, plus declared
    /// outputs that exist; sorted.
    pub outputs: Vec<String>,
    /// Paths the run read (or listed) and then wrote or deleted that no
    /// ignored input covers: a run that modifies its own input is not
    /// cacheable.
    pub modified_inputs: Vec<String>,
}

fn exists(path: &str) -> bool {
    std::fs::symlink_metadata(Path::new(path)).is_ok()
}

fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

/// Infers a traced run's inputs and outputs from `reports.trace` (without a
/// trace only declared inputs and outputs are known).
pub fn infer_accesses(reports: &Reports) -> InferredAccesses {
    let mut kinds: BTreeMap<String, InputKind> = BTreeMap::new();
    let mut note = |path: &str, kind: InputKind| match kinds.get_mut(path) {
        Some(had) if *had >= kind => {}
        Some(had) => *had = kind,
        None => {
            kinds.insert(path.to_owned(), kind);
        }
    };
    let ignored_inputs = PathSet::new(&reports.ignored_inputs);
    let ignored_outputs = PathSet::new(&reports.ignored_outputs);
    let mut outputs = BTreeSet::new();
    let mut modified = Vec::new();
    if let Some(trace) = &reports.trace {
        let changed: BTreeSet<&str> = trace
            .written
            .iter()
            .chain(&trace.deleted)
            .map(String::as_str)
            .collect();
        // Looking up a directory the run then writes into (mkdir -p dist) is
        // how it makes room for its outputs, which a restore recreates.
        let mut containers = changed.clone();
        for path in &trace.written {
            let mut dir = parent(path);
            while let Some(here) = dir {
                if here == "/" || !containers.insert(here) {
                    break;
                }
                dir = parent(here);
            }
        }
        let lists: [(&Vec<String>, InputKind, &BTreeSet<&str>); 4] = [
            (&trace.found, InputKind::Existence, &containers),
            (&trace.missing, InputKind::Existence, &changed),
            (&trace.listed, InputKind::Listing, &changed),
            (&trace.read, InputKind::Content, &changed),
        ];
        for (paths, kind, skip) in lists {
            for path in paths {
                if !skip.contains(path.as_str()) && !ignored_inputs.covers(path) {
                    note(path, kind);
                }
            }
        }
        modified = modified_inputs(&ignored_inputs, trace);
        for path in &trace.written {
            if !ignored_outputs.covers(path) && exists(path) {
                outputs.insert(path.clone());
            }
        }
        // A directory the run made only to hold what is ignored (npm's
        // `~/.npm`, made for its `_logs`) is no output: one with an ignored
        // path beneath it and no output of its own beneath it is dropped.
        let ignored_dirs: Vec<String> = reports
            .ignored_outputs
            .iter()
            .map(|dir| normalize(dir))
            .collect();
        let beneath = |path: &str, dir: &str| path != dir && is_within_clean(path, dir);
        // Deepest first, so a holder's parent sees it gone (`~` made for `~/.npm`).
        let mut deepest_first: Vec<String> = outputs.iter().cloned().collect();
        deepest_first.sort_by_key(|path| std::cmp::Reverse(path.len()));
        for out in deepest_first {
            let holds_ignored = ignored_dirs.iter().any(|dir| beneath(dir, &out));
            if holds_ignored && !outputs.iter().any(|other| beneath(other, &out)) {
                outputs.remove(&out);
            }
        }
    }
    for path in declared_inputs(reports) {
        note(&path, InputKind::Content);
    }
    for path in declared_outputs(reports) {
        if exists(&path) {
            outputs.insert(path);
        }
    }
    modified.sort();
    InferredAccesses {
        inputs: kinds
            .into_iter()
            .map(|(path, kind)| InferredInput { path, kind })
            .collect(),
        outputs: outputs.into_iter().collect(),
        modified_inputs: modified,
    }
}

/// The paths the trace saw read (or listed) and then written or deleted that
/// no ignored input covers. An ignored output does not excuse one: it says
/// the writes there are not outputs, not that what the run read there did
/// not matter.
pub fn modified_inputs(ignored_inputs: &PathSet, trace: &Trace) -> Vec<String> {
    trace
        .read_then_written
        .iter()
        .filter(|path| !ignored_inputs.covers(path))
        .cloned()
        .collect()
}

/// How many modified paths a `modified-input` reason names; the trace has
/// them all.
const SHOWN_MODIFIED: usize = 5;

/// What a trace adds to a run's reasons: a `trace` reason for each cause of
/// a trace that may miss accesses (none for a complete or unsupported one),
/// and one `modified-input` reason naming what the run read and then changed.
pub fn trace_reasons(ignored_inputs: &PathSet, trace: &Trace) -> Vec<UncacheableReason> {
    let mut reasons: Vec<UncacheableReason> =
        if trace.complete || trace.mode == TraceMode::Unsupported {
            Vec::new()
        } else {
            trace
                .incomplete
                .iter()
                .map(|message| {
                    reason(
                        UncacheableKind::Trace,
                        format!("the file-access trace may be incomplete: {message}"),
                    )
                })
                .collect()
        };
    reasons.extend(modified_input_reason(&modified_inputs(
        ignored_inputs,
        trace,
    )));
    reasons
}

/// The `modified-input` reason for `modified` (sorted paths the run read and
/// then changed), naming the first few; none for none.
pub fn modified_input_reason(modified: &[String]) -> Option<UncacheableReason> {
    if modified.is_empty() {
        return None;
    }
    let more = if modified.len() > SHOWN_MODIFIED {
        format!(", … ({} in all)", modified.len())
    } else {
        String::new()
    };
    Some(reason(
        UncacheableKind::ModifiedInput,
        format!(
            "the command modified its input: {}{more}",
            modified[..modified.len().min(SHOWN_MODIFIED)].join(", ")
        ),
    ))
}

/// `reports` with `trace` and the runner's own `ignore` paths applied, as a
/// server does at close: the paths join the ignored inputs and outputs (as if
/// a tool had said them), the trace is attached, and its reasons join the
/// verdict.
pub fn apply_trace_and_ignores(reports: &mut Reports, trace: Option<Trace>, ignore: &[String]) {
    for path in ignore {
        let path = normalize(path);
        reports.ignored_inputs.insert(path.clone());
        reports.ignored_outputs.insert(path);
    }
    if let Some(trace) = trace {
        let reasons = trace_reasons(&PathSet::new(&reports.ignored_inputs), &trace);
        reports.not_cacheable.extend(reasons);
        reports.cacheable = reports.not_cacheable.is_empty();
        reports.trace = Some(trace);
    }
}

/// The package managers' and Node's own private files outside the checkout,
/// for `env` (the runner's environment: `HOME`, `npm_config_cache`,
/// `XDG_CACHE_HOME`, `XDG_STATE_HOME`, `NODE_COMPILE_CACHE`): what `npm run`,
/// `npx`, pnpm, yarn and corepack read and write for themselves on every
/// run (logs, metadata caches, update checks, Node's compiled-code cache),
/// which are neither a task's inputs nor its outputs. A runner passes them as
/// [`crate::ServerOptions::ignore`] so `npm run build` caches as `vite build`
/// does. Package contents are not on the list: a package store that
/// `node_modules` links into (pnpm's, yarn's PnP cache) and npx's installed
/// packages hold code a task runs, which are inputs.
pub fn package_manager_paths(env: &std::collections::HashMap<String, String>) -> Vec<String> {
    let var = |name: &str| env.get(name).filter(|value| !value.is_empty()).cloned();
    let home = var("HOME").or_else(|| var("USERPROFILE"));
    let under = |base: Option<String>, rel: &str| base.map(|base| format!("{base}/{rel}"));
    let cache_home = var("XDG_CACHE_HOME").or_else(|| under(home.clone(), ".cache"));
    let state_home = var("XDG_STATE_HOME").or_else(|| under(home.clone(), ".local/state"));
    let npm_cache = var("npm_config_cache").or_else(|| under(home.clone(), ".npm"));
    let mut paths: Vec<String> = [
        // npm: its debug logs (and their listing, to rotate them), its HTTP
        // cache, and the update notifier's stamp.
        under(npm_cache.clone(), "_logs"),
        under(npm_cache.clone(), "_cacache"),
        under(npm_cache, "_update-notifier-last-checked"),
        // pnpm: its metadata cache and its state (update checks).
        under(cache_home.clone(), "pnpm"),
        under(state_home, "pnpm"),
        // yarn 1: its cache, which installs copy out of.
        under(cache_home.clone(), "yarn"),
        // yarn 2+: its telemetry.
        under(home.clone(), ".yarn/berry/telemetry.json"),
        // corepack: which package manager version it last resolved.
        under(cache_home.clone(), "node/corepack/lastKnownGood.json"),
        // Node's compiled-code cache: code the task runs is read from the
        // sources, which are recorded; the cache only makes it faster.
        var("NODE_COMPILE_CACHE"),
        under(cache_home, "node-compile-cache"),
        under(
            var("TMPDIR").or_else(|| Some("/tmp".to_owned())),
            "node-compile-cache",
        ),
    ]
    .into_iter()
    .flatten()
    .map(|path| normalize(&path))
    .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// `path` (a `PATH` value) with the `node_modules/.bin` directories of `cwd`
/// and each of its ancestors in front, nearest first, as npm puts them for a
/// script: a command named by its package's binary (`vite build`) runs as
/// it does under `npm run`. Directories already on `path` are not repeated.
pub fn node_modules_bin_path(cwd: &Path, path: &str) -> String {
    let separator = if cfg!(windows) { ';' } else { ':' };
    let present: BTreeSet<&str> = path.split(separator).collect();
    let mut dirs: Vec<String> = cwd
        .ancestors()
        .map(|dir| dir.join("node_modules").join(".bin"))
        .map(|dir| dir.to_string_lossy().into_owned())
        .filter(|dir| !present.contains(dir.as_str()))
        .collect();
    if !path.is_empty() {
        dirs.push(path.to_owned());
    }
    dirs.join(&separator.to_string())
}

// Unix paths: a Windows path is absolute only with its drive.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn package_manager_paths_follow_the_env() {
        let paths = package_manager_paths(&env(&[("HOME", "/home/u")]));
        for expected in [
            "/home/u/.npm/_logs",
            "/home/u/.npm/_cacache",
            "/home/u/.cache/pnpm",
            "/home/u/.local/state/pnpm",
            "/tmp/node-compile-cache",
        ] {
            assert!(
                paths.contains(&expected.to_owned()),
                "{expected} in {paths:?}"
            );
        }
        // What holds code a task runs is no private file.
        assert!(!paths
            .iter()
            .any(|path| path.contains("_npx") || path.ends_with("store")));
        let moved = package_manager_paths(&env(&[
            ("HOME", "/home/u"),
            ("npm_config_cache", "/cache/npm"),
            ("XDG_CACHE_HOME", "/xdg"),
        ]));
        assert!(moved.contains(&"/cache/npm/_logs".to_owned()));
        assert!(moved.contains(&"/xdg/pnpm".to_owned()));
        assert!(!moved.iter().any(|path| path.starts_with("/home/u/.npm")));
        // No home: only what the env names.
        assert_eq!(
            package_manager_paths(&env(&[("TMPDIR", "/t")])),
            ["/t/node-compile-cache"]
        );
    }

    #[test]
    fn node_modules_bin_comes_first_nearest_first() {
        let path = node_modules_bin_path(Path::new("/w/app"), "/usr/bin:/w/node_modules/.bin");
        assert_eq!(
            path,
            "/w/app/node_modules/.bin:/node_modules/.bin:/usr/bin:/w/node_modules/.bin"
        );
        assert_eq!(
            node_modules_bin_path(Path::new("/w"), ""),
            "/w/node_modules/.bin:/node_modules/.bin"
        );
    }

    #[test]
    fn path_sets_compare_by_component() {
        let set = PathSet::new(&["/w/dist".to_owned()]);
        assert!(set.covers("/w/dist"));
        assert!(set.covers("/w/dist/a.js"));
        assert!(set.covers("/w/x/../dist/a.js"));
        assert!(!set.covers("/w/dist2/a.js"));
        assert!(!set.covers("/w/distribution.txt"));
    }
}
