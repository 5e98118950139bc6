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

use crate::fingerprint::{fingerprint_input, in_parallel, InputKind, StatCache};

mod index;

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
/// and any mode but a plain file's for a tracked file as the index has it,
/// else its sha256, or the link).
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

/// `git status` as a snapshot asks it: the tracked files that differ from
/// the index or from `HEAD`. With one CPU to run on, git's preload (threads
/// that share the stat of every tracked file) only adds thread start-ups.
fn status_args() -> Vec<&'static str> {
    let mut args = Vec::new();
    if std::thread::available_parallelism().map_or(1, usize::from) == 1 {
        args.extend(["-c", "core.preloadIndex=false"]);
    }
    args.extend([
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=no",
        "--no-renames",
    ]);
    args
}

/// Every path of the index and `git:<object id>`, sorted, and the paths git
/// is told to trust or skip: read in process, or from `git ls-files -s -v -z`
/// where the index is not one [`index::read`] follows.
fn tracked_files(top: &Path, index: Option<index::Index>) -> Result<Tracked, RepoError> {
    if let Some(index) = index {
        return Ok((sorted_unique(index.entries), index.trusted));
    }
    const LS_FILES: &[&str] = &["ls-files", "-s", "-v", "-z"];
    let listing = git_start(top, LS_FILES)?;
    Ok(index_entries(&git_finish(listing, LS_FILES)?))
}

/// The index's entries and the paths git is told to trust or skip.
type Tracked = (Vec<(String, String)>, Vec<String>);

/// Whether a file may differ from its index entry, as `git status` decides
/// before it reads one: its stat data differs from what git recorded, or it
/// was modified at or after the index was written (racily clean).
#[cfg(unix)]
fn may_differ(
    meta: &fs::Metadata,
    stat: &index::Stat,
    written: Option<std::time::SystemTime>,
) -> bool {
    use std::os::unix::fs::MetadataExt;
    // Git keeps each field in 32 bits.
    let cut = |value: i64| value as u32;
    let now = index::Stat {
        ctime: (cut(meta.ctime()), cut(meta.ctime_nsec())),
        mtime: (cut(meta.mtime()), cut(meta.mtime_nsec())),
        ino: meta.ino() as u32,
        mode: git_mode(meta.mode()),
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.size() as u32,
    };
    let recorded = index::Stat {
        mode: git_mode(stat.mode),
        ..*stat
    };
    now != recorded
        || written
            .is_none_or(|written| meta.modified().map_or(true, |modified| modified >= written))
}

/// What git keeps of a mode: a link, or a file's type and executable bit.
#[cfg(unix)]
fn git_mode(mode: u32) -> u32 {
    if mode & 0o170000 == 0o120000 {
        0o120000
    } else {
        mode & 0o170100
    }
}

/// The object id git would give the file (or link) at `path` now, when it
/// is a file or a link: `blob <length>\0` and its bytes, hashed with SHA-1.
#[cfg(unix)]
fn blob_id(path: &Path, meta: &fs::Metadata) -> Option<String> {
    use sha1::{Digest, Sha1};
    let mut hasher = Sha1::new();
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).ok()?;
        let bytes = target.as_os_str().as_encoded_bytes();
        hasher.update(format!("blob {}\0", bytes.len()));
        hasher.update(bytes);
    } else if meta.is_file() {
        let mut file = crate::fingerprint::open_checked(path, meta).ok()?;
        hasher.update(format!("blob {}\0", meta.len()));
        let copied = std::io::copy(&mut file, &mut hasher).ok()?;
        // A file that changed length while it was read is no object git has.
        if copied != meta.len() {
            return None;
        }
    } else {
        return None;
    }
    Some(crate::fingerprint::hex(&hasher.finalize()))
}

/// A tracked file's fingerprint now, from its index entry: the entry's
/// object id where the file cannot differ from it (its stat data as git
/// recorded it), or where its bytes still hash to it; its content's
/// fingerprint where they do not; `missing` where it is gone.
#[cfg(unix)]
fn refreshed(
    top: &Path,
    (path, fingerprint): (String, String),
    raw_name: Option<&Vec<u8>>,
    stat: &index::Stat,
    written: Option<std::time::SystemTime>,
    stat_cache: &StatCache,
) -> Result<(String, String), RepoError> {
    let full = match raw_name {
        Some(raw) => top.join(native_path(raw)),
        None => top.join(&path),
    };
    let Ok(meta) = fs::symlink_metadata(&full) else {
        return Ok((path, "missing".to_owned()));
    };
    if !may_differ(&meta, stat, written) {
        return Ok((path, fingerprint));
    }
    use std::os::unix::fs::MetadataExt;
    let mode_changed = git_mode(meta.mode()) != git_mode(stat.mode);
    // Another length than git saw (git writes 0 for an entry it must check
    // again) or another mode: changed, with no need to hash it as git would.
    let may_be_same = !mode_changed && (stat.size == 0 || stat.size == meta.size() as u32);
    if may_be_same
        && blob_id(&full, &meta).is_some_and(|id| index::fingerprint(stat.mode, &id) == fingerprint)
    {
        return Ok((path, fingerprint));
    }
    let now = changed_fingerprint(&full, stat_cache)?;
    Ok((path, now))
}

/// A path as git keeps it, in bytes, as the file system names it: on Unix
/// the bytes themselves, which need not be UTF-8 (read lossily, they would
/// name no file, and an edit of it would go unseen).
fn native_path(raw: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(raw))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(raw).into_owned())
    }
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
        // What differs from the index in the work tree: on Unix, where every
        // entry is a plain file or link, decided here as `git status` decides
        // it (stat data first, the bytes where it may differ), with no git
        // process; elsewhere, from git, while the index is read and the work
        // tree walked here.
        let index = index::read(&top);
        let in_process = cfg!(unix) && index.as_ref().is_some_and(|index| index.plain);
        let status_args = status_args();
        let status = if in_process {
            None
        } else {
            Some(git_start(&top, &status_args)?)
        };
        let skip: Vec<PathBuf> = skip
            .iter()
            .map(|dir| fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
            .collect();
        let index = match index {
            #[cfg(unix)]
            Some(mut index) if in_process => {
                let entries = std::mem::take(&mut index.entries);
                index.entries = entries
                    .into_iter()
                    .zip(&index.stats)
                    .enumerate()
                    .map(|(at, (entry, stat))| {
                        let raw_name = index.raw_names.get(&at);
                        refreshed(&top, entry, raw_name, stat, index.written, stat_cache)
                    })
                    .collect::<Result<_, RepoError>>()?;
                Some(index)
            }
            other => other,
        };
        let listed = tracked_files(&top, index).map(|(tracked, trusted)| {
            let mut walk = Walk {
                top: &top,
                tracked: tracked.iter().map(|(path, _)| path.as_str()).collect(),
                skip: &skip,
                untracked: Vec::new(),
            };
            let walked = walk.dir("").map(|()| walk.untracked);
            (tracked, trusted, walked)
        });
        let status = status.map(|status| git_finish(status, &status_args));
        let (mut files, trusted, untracked) = listed?;
        let status = status.transpose()?.unwrap_or_default();
        let untracked = untracked?;
        // What differs from the index in the work tree, and where git
        // decides it, what git status trusts without a look: hashed as it is
        // now.
        let now = |full: &Path| {
            if fs::symlink_metadata(full).is_err() {
                Ok("missing".to_owned())
            } else {
                changed_fingerprint(full, stat_cache)
            }
        };
        if !in_process {
            for path in &trusted {
                if let Ok(at) = find(&files, path) {
                    files[at].1 = now(&top.join(path))?;
                }
            }
        }
        let mut added = Vec::new();
        for record in status.split(|&b| b == 0) {
            let Some(raw) = record.get(3..).filter(|raw| !raw.is_empty()) else {
                continue;
            };
            let path = &*String::from_utf8_lossy(raw);
            let fingerprint = now(&top.join(native_path(raw)))?;
            match find(&files, path) {
                Ok(at) => files[at].1 = fingerprint,
                Err(_) => added.push((path.to_owned(), fingerprint)),
            }
        }
        // Untracked and ignored files, hashed (where the stat cache does not
        // know them) on every core.
        let fingerprints = in_parallel(&untracked, |(path, is_link)| {
            file_fingerprint(&top.join(path), Some(*is_link), stat_cache)
        });
        files.extend(added);
        for ((path, _), fingerprint) in untracked.into_iter().zip(fingerprints) {
            files.push((path, fingerprint?));
        }
        Ok(Self {
            root: root_rel,
            files: sorted_unique(files).into_iter().collect(),
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
    // One pass over both sorted maps: files changed or removed in the key's
    // order, then those added.
    let mut current = now
        .files
        .iter()
        .filter(|(path, _)| !is_excluded(path, &key.exclude))
        .peekable();
    let mut changed = Vec::new();
    let mut added = Vec::new();
    let mut count = 0;
    let mut note = |list: &mut Vec<String>, reason: &dyn Fn() -> String| {
        count += 1;
        if list.len() < shown {
            list.push(reason());
        }
    };
    for (path, then) in &key.files {
        while let Some((new, _)) = current.next_if(|(now_path, _)| *now_path < path) {
            note(&mut added, &|| format!("repository file {new} added"));
        }
        match current.next_if(|(now_path, _)| *now_path == path) {
            Some((_, fingerprint)) if fingerprint == then => {}
            Some(_) => note(&mut changed, &|| format!("repository file {path} changed")),
            None => note(&mut changed, &|| format!("repository file {path} removed")),
        }
    }
    for (new, _) in current {
        note(&mut added, &|| format!("repository file {new} added"));
    }
    let mut reasons = changed;
    reasons.extend(added.into_iter().take(shown.saturating_sub(reasons.len())));
    if count > reasons.len() {
        reasons.push(format!("… ({count} repository files in all)"));
    }
    reasons
}

/// `files`' entry for `path`, or where it would go: `files` is sorted.
fn find(files: &[(String, String)], path: &str) -> Result<usize, usize> {
    files.binary_search_by(|(known, _)| known.as_str().cmp(path))
}

/// `files` sorted by path, each path once with the last fingerprint given
/// for it (git lists an unmerged path once per stage).
fn sorted_unique(mut files: Vec<(String, String)>) -> Vec<(String, String)> {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(&mut later.1, &mut earlier.1);
        }
        same
    });
    files
}

/// Every path of `git ls-files -s -v -z`'s output and `git:<object id>`,
/// sorted, and the paths its tag marks as trusted (assume-unchanged, in lower
/// case) or skipped (`S`).
fn index_entries(output: &[u8]) -> Tracked {
    let mut files = Vec::new();
    let mut trusted = Vec::new();
    for record in output.split(|&b| b == 0) {
        // `<tag> <mode> <object id> <stage>\t<path>`
        let (Some(&tag), Some(record)) = (record.first(), record.get(2..)) else {
            continue;
        };
        let Some(tab) = record.iter().position(|&b| b == b'\t') else {
            continue;
        };
        let meta = String::from_utf8_lossy(&record[..tab]);
        let mut fields = meta.split(' ');
        let mode = fields
            .next()
            .and_then(|mode| u32::from_str_radix(mode, 8).ok())
            .unwrap_or_default();
        let oid = fields.next().unwrap_or_default();
        let path = String::from_utf8_lossy(&record[tab + 1..]).into_owned();
        if tag.is_ascii_lowercase() || tag == b'S' {
            trusted.push(path.clone());
        }
        files.push((path, index::fingerprint(mode, oid)));
    }
    (sorted_unique(files), trusted)
}

/// The fingerprint of a tracked file that differs from its index entry: its
/// content's, marked where it is executable, as git records the mode beside
/// the bytes (an index that says executable and a file that is not must not
/// match the other way round).
fn changed_fingerprint(full: &Path, stat_cache: &StatCache) -> Result<String, RepoError> {
    let now = file_fingerprint(full, None, stat_cache)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let executable = fs::symlink_metadata(full)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o100 != 0);
        if executable {
            return Ok(format!("{now} 100755"));
        }
    }
    Ok(now)
}

/// A file's fingerprint; `is_link` is what the directory listing said, when
/// there was one.
fn file_fingerprint(
    path: &Path,
    is_link: Option<bool>,
    stat_cache: &StatCache,
) -> Result<String, RepoError> {
    // A link counts by where it points: it is never followed into a tree.
    if is_link != Some(false) {
        if let Ok(target) = fs::read_link(path) {
            return Ok(format!("link {}", target.to_string_lossy()));
        }
    }
    fingerprint_input(path, InputKind::Content, stat_cache)
        .map_err(|err| RepoError::Git(format!("cannot read {}: {err}", path.display())))
}

/// The walk of the work tree for the files git does not track.
struct Walk<'a> {
    top: &'a Path,
    /// The index's paths.
    tracked: HashSet<&'a str>,
    skip: &'a [PathBuf],
    /// Untracked files and links found so far, and whether each is a link.
    untracked: Vec<(String, bool)>,
}

impl Walk<'_> {
    fn dir(&mut self, rel: &str) -> Result<(), RepoError> {
        let dir = if rel.is_empty() {
            self.top.to_path_buf()
        } else {
            self.top.join(rel)
        };
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(());
        };
        let mut path = String::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == ".git" || name == "node_modules" {
                continue;
            }
            path.clear();
            if !rel.is_empty() {
                path.push_str(rel);
                path.push('/');
            }
            path.push_str(&name);
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if !self.skip.iter().any(|dir| *dir == self.top.join(&path)) {
                    self.dir(&path)?;
                }
            } else if (kind.is_file() || kind.is_symlink()) && !self.tracked.contains(path.as_str())
            {
                self.untracked.push((path.clone(), kind.is_symlink()));
                if self.tracked.len() + self.untracked.len() > MAX_REPO_FILES {
                    return Err(RepoError::TooLarge);
                }
            }
        }
        Ok(())
    }
}
