//! Storing a finished run as a runner has it: its reports, how its command
//! ended, and what the runner's user named, turned into an entry by the same
//! rules for every runner (the Node package's `Cache.store` calls this): the
//! verdict, which key the run gets (its complete trace, the inputs its tools
//! declared, or the repository's content where no complete trace exists),
//! outputs that stay inside the root, and entries whose values contradict
//! each other dropped.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::{repo::RepoSnapshot, CacheError, Manifest, Store, StoreRequest};
use crate::env_fingerprint::EnvFingerprint;
use crate::reports::{Reports, UncacheableKind, UncacheableReason};
use crate::rules::{
    declared_inputs, declared_outputs, describe_reason, infer_accesses, normalize, verdict,
    CommandOutcome, PathSet, VerdictOptions,
};
use crate::trace::TraceMode;

/// A finished run, for [`Store::store_run`].
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// What the server's close returned.
    pub reports: &'a Reports,
    /// How the command ended: a failed or killed command is never stored.
    pub outcome: CommandOutcome,
    /// When the command started: an input changed since is not stored.
    pub started_at: SystemTime,
    /// What the command printed, replayed on a hit.
    pub stdout: Vec<u8>,
    /// What the command printed on stderr.
    pub stderr: Vec<u8>,
    /// The repository's content before the run ([`Store::repo_snapshot`]):
    /// where the trace is off, unsupported or incomplete and `inputs` names
    /// nothing, the run is keyed on it, and what the run created becomes
    /// its output.
    pub before: Option<RepoSnapshot>,
    /// Files the runner's user named as inputs (absolute, or relative to the
    /// root), hashed as content.
    pub inputs: Vec<PathBuf>,
    /// Files or directories the runner's user named as outputs.
    pub outputs: Vec<PathBuf>,
    /// Callers whose `disableCache` the user overrules ([`VerdictOptions`]).
    pub cacheable_despite: Option<Vec<String>>,
}

impl<'a> Run<'a> {
    /// A run of `reports` that ended with `outcome`, started at `started_at`,
    /// with nothing printed and nothing named by the user.
    pub fn new(reports: &'a Reports, outcome: CommandOutcome, started_at: SystemTime) -> Self {
        Self {
            reports,
            outcome,
            started_at,
            stdout: Vec::new(),
            stderr: Vec::new(),
            before: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            cacheable_despite: None,
        }
    }
}

/// What keys a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// The inputs of a complete trace.
    Trace,
    /// The inputs the tools (or the runner's user) declared.
    Declared,
    /// The repository's content.
    Repository,
}

/// What storing a run did.
#[derive(Debug, Clone)]
pub enum Stored {
    /// The run is an entry now.
    Stored {
        /// Its manifest.
        manifest: Box<Manifest>,
        /// The `disableCache` calls the user overruled to store it.
        overruled: Vec<UncacheableReason>,
        /// What keys it.
        key: KeyKind,
    },
    /// The run was not stored, and why, in words for people.
    NotStored {
        /// Why.
        reasons: Vec<String>,
    },
}

fn not_stored(reason: String) -> Stored {
    Stored::NotStored {
        reasons: vec![reason],
    }
}

/// How many paths a reason names before it says how many there are.
const SHOWN_PATHS: usize = 5;

fn shown(paths: &[String]) -> String {
    let more = if paths.len() > SHOWN_PATHS {
        format!(", … ({} in all)", paths.len())
    } else {
        String::new()
    };
    format!("{}{more}", paths[..paths.len().min(SHOWN_PATHS)].join(", "))
}

/// The system's scratch directories, where a tool's stray writes are not
/// outputs of the checkout (and not a reason to refuse the run).
fn scratch_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![std::env::temp_dir()];
    if cfg!(unix) {
        dirs.push(PathBuf::from("/tmp"));
        dirs.push(PathBuf::from("/var/tmp"));
    }
    let real: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|dir| dir.canonicalize().ok())
        .collect();
    dirs.extend(real);
    dirs
}

impl Store {
    /// Stores a finished run when its verdict is cacheable and something
    /// keys it: a complete trace's inputs, the inputs the tools declared or
    /// the user named, or, where no complete trace exists and nothing was
    /// named, the repository's content before the run (`run.before`). What
    /// kept the run from being stored is in [`Stored::NotStored`]; an error
    /// is the cache's own failure ([`CacheError::Io`]: a directory that
    /// cannot be written), which a runner reports as a warning, keeping the
    /// command's exit code.
    ///
    /// Where the repository keys the run, the trace's own reasons (`trace`,
    /// `modified-input`) do not count: the key covers what the trace could
    /// not see, and what the run changed becomes its output.
    pub fn store_run(&mut self, task: &str, run: &Run<'_>) -> Result<Stored, CacheError> {
        let reports = run.reports;
        let trace = reports
            .trace
            .as_ref()
            .filter(|trace| trace.mode != TraceMode::Unsupported);
        let complete = trace.is_some_and(|trace| trace.complete);
        let fallback = !complete && run.before.is_some() && run.inputs.is_empty();
        let mut reasons: Vec<UncacheableReason> = if fallback {
            reports
                .not_cacheable
                .iter()
                .filter(|reason| {
                    !matches!(
                        reason.kind,
                        UncacheableKind::Trace | UncacheableKind::ModifiedInput
                    )
                })
                .cloned()
                .collect()
        } else {
            reports.not_cacheable.clone()
        };
        // A run that read a file and then rewrote it modified its input,
        // unless what it read was its own previous output: the bytes an entry
        // of this task put there, untouched since (the look-up before the run
        // saw them), which the run overwrote with an output of its own. What
        // it read then is a function of that entry's inputs, not something a
        // person edited, and a clean checkout, without it, hits the entry
        // this run stores.
        // A look-up vouches for the one run after it: taken here, whether or
        // not this run needs it, so a later run with no look-up finds none.
        let own = self.own_outputs.remove(task);
        let ignored_inputs = PathSet::new(&reports.ignored_inputs);
        let traced = (!fallback && trace.is_some()).then(|| infer_accesses(reports));
        if let (Some(trace), Some(traced)) = (trace, &traced) {
            let modified = crate::rules::modified_inputs(&ignored_inputs, trace);
            if !modified.is_empty() {
                let remaining: Vec<String> = modified
                    .into_iter()
                    .filter(|path| {
                        let rewritten = traced.outputs.binary_search(path).is_ok();
                        let own_before = own
                            .as_ref()
                            .zip(self.relative(path))
                            .is_some_and(|(own, rel)| own.contains(&rel));
                        !(rewritten && own_before)
                    })
                    .collect();
                reasons.retain(|reason| reason.kind != UncacheableKind::ModifiedInput);
                reasons.extend(crate::rules::modified_input_reason(&remaining));
            }
        }
        let judged = verdict(
            &reasons,
            &run.outcome,
            &VerdictOptions {
                cacheable_despite: run.cacheable_despite.clone(),
            },
        );
        if !judged.cacheable {
            return Ok(Stored::NotStored {
                reasons: judged.reasons.iter().map(describe_reason).collect(),
            });
        }
        let overruled = judged.overruled.unwrap_or_default();
        let ignored_outputs = PathSet::new(&reports.ignored_outputs);
        let mut inputs: Vec<(PathBuf, crate::fingerprint::InputKind)> = match (&traced, fallback) {
            (_, true) => Vec::new(),
            (Some(traced), false) => traced
                .inputs
                .iter()
                .map(|input| (PathBuf::from(&input.path), input.kind))
                .collect(),
            (None, false) => declared_inputs(reports)
                .into_iter()
                .map(|path| (PathBuf::from(path), crate::fingerprint::InputKind::Content))
                .collect(),
        };
        // What the trace saw that is not so now: a file it read or found that
        // is gone, one it looked for in vain that is there. The task did not
        // do it (what it wrote or deleted is no input), so someone did while
        // it ran, and what it read may not be what a look-up would see.
        if let (Some(trace), Some(traced)) = (trace, &traced) {
            let inputs: std::collections::BTreeSet<&str> = traced
                .inputs
                .iter()
                .map(|input| input.path.as_str())
                .collect();
            let exists = |path: &str| std::fs::symlink_metadata(path).is_ok();
            let mut changed: Vec<String> = trace
                .read
                .iter()
                .chain(&trace.found)
                .filter(|path| inputs.contains(path.as_str()) && !exists(path))
                .map(|path| format!("{path} (removed)"))
                .collect();
            changed.extend(
                trace
                    .missing
                    .iter()
                    .filter(|path| inputs.contains(path.as_str()) && exists(path))
                    .map(|path| format!("{path} (added)")),
            );
            if !changed.is_empty() {
                changed.sort();
                return Ok(not_stored(format!(
                    "inputs changed while the command ran: {}",
                    shown(&changed)
                )));
            }
        }
        for path in &run.inputs {
            let file = self.absolute(path);
            if !ignored_inputs.covers(&file) {
                inputs.push((PathBuf::from(file), crate::fingerprint::InputKind::Content));
            }
        }
        let mut outputs: Vec<String> = traced
            .as_ref()
            .map(|traced| traced.outputs.clone())
            .unwrap_or_default();
        outputs.extend(declared_outputs(reports));
        outputs.extend(run.outputs.iter().map(|path| self.absolute(path)));
        outputs.sort();
        outputs.dedup();
        outputs.retain(|path| !ignored_outputs.covers(path));
        let scratch = scratch_dirs();
        let outside: Vec<String> = outputs
            .iter()
            .filter(|path| {
                self.relative(path).is_none()
                    && !scratch.iter().any(|tmp| Path::new(path).starts_with(tmp))
            })
            .cloned()
            .collect();
        if !outside.is_empty() {
            return Ok(not_stored(format!(
                "outputs outside the root: {}",
                shown(&outside)
            )));
        }
        let inside = |paths: &mut dyn Iterator<Item = &String>| -> Vec<String> {
            paths.filter_map(|path| self.relative(path)).collect()
        };
        let mut relative_outputs = inside(&mut outputs.iter());
        relative_outputs.sort();
        let request = StoreRequest {
            task: task.to_owned(),
            inputs,
            env: EnvFingerprint::of_reports(reports),
            outputs: relative_outputs,
            // A declared directory holds what a tool said is not an output.
            ignored_outputs: inside(&mut reports.ignored_outputs.iter()),
            ignored_inputs: inside(&mut reports.ignored_inputs.iter()),
            // What a complete trace saw deleted: a directory the run emptied
            // is emptied on a restore too.
            deleted: match (&traced, trace) {
                (Some(_), Some(trace)) if trace.complete => inside(&mut trace.deleted.iter()),
                _ => Vec::new(),
            },
            repo: if fallback { run.before.clone() } else { None },
            stdout: run.stdout.clone(),
            stderr: run.stderr.clone(),
            started_at: run.started_at,
            overruled: overruled.iter().map(describe_reason).collect(),
        };
        let manifest = match self.store(&request) {
            Ok(manifest) => manifest,
            Err(CacheError::Refused(reason)) => return Ok(not_stored(reason)),
            Err(err @ CacheError::Io(_)) => return Err(err),
            Err(err) => return Ok(not_stored(err.to_string())),
        };
        // Same inputs and env with other values: the key misses what the
        // output depends on, so neither entry can be trusted.
        let conflicting = self.conflicting(&manifest);
        if !conflicting.is_empty() {
            let ours = &manifest.key.env.values;
            let mut differ = std::collections::BTreeSet::new();
            for other in &conflicting {
                let theirs = &other.key.env.values;
                for name in theirs.keys().chain(ours.keys()) {
                    if theirs.get(name) != ours.get(name) {
                        differ.insert(name.clone());
                    }
                }
                self.remove(task, &other.id);
            }
            self.remove(task, &manifest.id);
            let names: Vec<String> = differ
                .iter()
                .map(|name| format!("value {name} changed"))
                .collect();
            return Ok(not_stored(format!(
                "{} with the same inputs and env, so the key misses what it depends on (stored entry dropped)",
                names.join(", ")
            )));
        }
        Ok(Stored::Stored {
            manifest: Box::new(manifest),
            overruled,
            key: if fallback {
                KeyKind::Repository
            } else if traced.is_some() {
                KeyKind::Trace
            } else {
                KeyKind::Declared
            },
        })
    }

    /// `path` made absolute against the root, lexically clean.
    fn absolute(&self, path: &Path) -> String {
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root().join(path)
        };
        normalize(&joined.to_string_lossy())
    }

    /// `path` relative to the root (`/`-separated), when it lies strictly
    /// inside it.
    fn relative(&self, path: &str) -> Option<String> {
        let rel = Path::new(path).strip_prefix(self.root()).ok()?;
        let rel = rel.to_string_lossy().replace('\\', "/");
        (!rel.is_empty()).then_some(rel)
    }
}
