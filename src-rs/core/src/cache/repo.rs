//! The key of a run where no complete trace exists: the repository's
//! content. Every file git tracks (its object id from the index, re-hashed
//! only where `git status` says it is modified), every untracked file and
//! every git-ignored file too (tools read some: `.env.local`), except `.git`
//! and `node_modules` (the lockfile stands in for it). A change anywhere in
//! the repository misses, so the key over-approximates; it is never stale for
//! a file inside the repository. What lies outside (global tools, the Node
//! binary, a hand-edited `node_modules`) is its known limit.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::fingerprint::{fingerprint_input, InputKind, StatCache};

/// The most files a snapshot takes: a repository beyond it is keyed on nothing.
pub const MAX_REPO_FILES: usize = 1_000_000;

/// Why a repository's content cannot key a run.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The root is in no git work tree.
    #[error("{0} is not in a git repository: no key covers what the task read")]
    NotGit(String),
    /// git failed.
    #[error("git {0}")]
    Git(String),
    /// The repository holds more files than a snapshot takes.
    #[error("the repository holds more than {MAX_REPO_FILES} files")]
    TooLarge,
}

/// A repository's content at one moment: every file (relative to the
/// repository's top level, `/`-separated) → its fingerprint (`git:<object id>`
/// for a tracked file as the index has it, else its sha256, or the link).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoSnapshot {
    /// Where the store's root lies in the repository (`""` at its top).
    pub root: String,
    /// Every file and its fingerprint.
    pub files: BTreeMap<String, String>,
}

/// What an entry keyed on its repository rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoKey {
    /// Where the store's root lies in the repository.
    pub root: String,
    /// Paths (and everything beneath them) left out on both sides: the run's
    /// outputs and what it changed, and what its tools ignored.
    pub exclude: Vec<String>,
    /// Every other file of the repository before the run, and its fingerprint.
    pub files: BTreeMap<String, String>,
}

/// Starts git with `args` in `top`, its output piped.
fn git_start(top: &Path, args: &[&str]) -> Result<std::process::Child, RepoError> {
    Command::new("git")
        .arg("-C")
        .arg(top)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|err| RepoError::Git(format!("{}: {err}", args.join(" "))))
}

/// What a started git printed, or why it failed.
fn git_finish(child: std::process::Child, args: &[&str]) -> Result<Vec<u8>, RepoError> {
    let output = child
        .wait_with_output()
        .map_err(|err| RepoError::Git(format!("{}: {err}", args.join(" "))))?;
    if !output.status.success() {
        return Err(RepoError::Git(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

/// Whether `path` is one of `dirs` or beneath one, component by component.
pub fn is_excluded(path: &str, dirs: &[String]) -> bool {
    dirs.iter().any(|dir| {
        dir.is_empty()
            || path
                .strip_prefix(dir.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

impl RepoSnapshot {
    /// The content of the repository that holds `root`, now, but for the
    /// directories `skip` (absolute: the cache's own directory, which every
    /// look-up and store changes).
    pub fn take(root: &Path, skip: &[PathBuf], stat_cache: &StatCache) -> Result<Self, RepoError> {
        let real_root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        // The work tree's top: the nearest directory with a `.git` (a
        // directory, or the file of a linked work tree or submodule), as git
        // finds it, without a process to ask.
        let top = real_root
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .map(Path::to_path_buf)
            .ok_or_else(|| RepoError::NotGit(root.display().to_string()))?;
        let root_rel = real_root
            .strip_prefix(&top)
            .map(|rel| rel.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let mut files = BTreeMap::new();
        // The index, and what differs from it in the work tree: both at once.
        const LS_FILES: &[&str] = &["ls-files", "-s", "-z"];
        const STATUS: &[&str] = &[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=no",
            "--no-renames",
        ];
        let ls_files = git_start(&top, LS_FILES)?;
        let status = git_start(&top, STATUS)?;
        let (index, status) = (git_finish(ls_files, LS_FILES), git_finish(status, STATUS));
        let (index, status) = (index?, status?);
        // The index: every tracked path and the object id git keeps for it.
        for record in index.split(|&b| b == 0) {
            let record = String::from_utf8_lossy(record);
            let Some((meta, path)) = record.split_once('\t') else {
                continue;
            };
            let oid = meta.split(' ').nth(1).unwrap_or_default();
            files.insert(path.to_owned(), format!("git:{oid}"));
        }
        let tracked: HashSet<String> = files.keys().cloned().collect();
        // What differs from the index in the work tree: hashed as it is now.
        for record in status.split(|&b| b == 0) {
            let record = String::from_utf8_lossy(record);
            if record.len() < 4 {
                continue;
            }
            let path = &record[3..];
            let full = top.join(path);
            let fingerprint = if fs::symlink_metadata(&full).is_err() {
                "missing".to_owned()
            } else {
                file_fingerprint(&full, stat_cache)?
            };
            files.insert(path.to_owned(), fingerprint);
        }
        // Untracked and ignored files: a walk of the work tree.
        let skip: Vec<PathBuf> = skip
            .iter()
            .map(|dir| fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
            .collect();
        walk(&top, "", &tracked, &skip, &mut files, stat_cache)?;
        Ok(Self {
            root: root_rel,
            files,
        })
    }

    /// The paths added, changed or removed since `before`.
    pub fn changed_since(&self, before: &RepoSnapshot) -> Vec<String> {
        let mut changed: Vec<String> = self
            .files
            .iter()
            .filter(|(path, now)| before.files.get(*path) != Some(now))
            .map(|(path, _)| path.clone())
            .collect();
        changed.extend(
            before
                .files
                .keys()
                .filter(|path| !self.files.contains_key(*path))
                .cloned(),
        );
        changed.sort();
        changed
    }

    /// The files not under any of `exclude`.
    pub fn without(&self, exclude: &[String]) -> BTreeMap<String, String> {
        self.files
            .iter()
            .filter(|(path, _)| !is_excluded(path, exclude))
            .map(|(path, fingerprint)| (path.clone(), fingerprint.clone()))
            .collect()
    }
}

/// Why `key` no longer holds against `now` (empty: it holds); the first few
/// files by name.
pub fn stale_reasons(key: &RepoKey, now: &RepoSnapshot, shown: usize) -> Vec<String> {
    let current = now.without(&key.exclude);
    let mut reasons = Vec::new();
    let mut count = 0;
    for (path, then) in &key.files {
        let reason = match current.get(path) {
            Some(fingerprint) if fingerprint == then => continue,
            Some(_) => format!("repository file {path} changed"),
            None => format!("repository file {path} removed"),
        };
        count += 1;
        if reasons.len() < shown {
            reasons.push(reason);
        }
    }
    for path in current.keys().filter(|path| !key.files.contains_key(*path)) {
        count += 1;
        if reasons.len() < shown {
            reasons.push(format!("repository file {path} added"));
        }
    }
    if count > reasons.len() {
        reasons.push(format!("… ({count} repository files in all)"));
    }
    reasons
}

fn file_fingerprint(path: &Path, stat_cache: &StatCache) -> Result<String, RepoError> {
    // A link counts by where it points: it is never followed into a tree.
    if let Ok(target) = fs::read_link(path) {
        return Ok(format!("link {}", target.to_string_lossy()));
    }
    fingerprint_input(path, InputKind::Content, stat_cache)
        .map_err(|err| RepoError::Git(format!("cannot read {}: {err}", path.display())))
}

fn walk(
    top: &Path,
    rel: &str,
    tracked: &HashSet<String>,
    skip: &[PathBuf],
    files: &mut BTreeMap<String, String>,
    stat_cache: &StatCache,
) -> Result<(), RepoError> {
    let dir = if rel.is_empty() {
        top.to_path_buf()
    } else {
        top.join(rel)
    };
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".git" || name == "node_modules" {
            continue;
        }
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !skip.iter().any(|dir| *dir == top.join(&path)) {
                walk(top, &path, tracked, skip, files, stat_cache)?;
            }
        } else if !tracked.contains(&path) && (kind.is_file() || kind.is_symlink()) {
            files.insert(
                path.clone(),
                file_fingerprint(&top.join(&path), stat_cache)?,
            );
            if files.len() > MAX_REPO_FILES {
                return Err(RepoError::TooLarge);
            }
        }
    }
    Ok(())
}
