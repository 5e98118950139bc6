//! A task cache a runner can trust with a shared, hostile store: look up →
//! run → store; a hit restores.
//!
//! - **Self-verifying entries.** An entry's id is the digest of everything
//!   its validity rests on (task key, every input's fingerprint, the env
//!   fingerprint with its values); it is recomputed on every read, and an
//!   entry resting on no input at all is never stored nor served. Every
//!   output carries its digest, checked before it is placed.
//! - **A real archive.** tar + zstd, streaming, keeping modes and links
//!   that stay inside the root; no devices, hard links, absolute or `..`
//!   names; bounded size and member count ([`archive`]).
//! - **Restore that cannot escape.** Parents are looked at on disk and never
//!   written through when they are links; files are written aside and
//!   renamed over; nothing is placed until every member was checked, and
//!   nothing the entry does not name is deleted ([`restore`]).
//! - **Signing** as Turborepo signs remote artifacts ([`sign`]).
//!
//! The store keeps entries under `<dir>/<sha256 of the task key>/<id>.tar.zst`.
//! Anything else found there, or an entry that fails a check, is a miss with
//! the reason, never an error that fails the run.

pub mod archive;
pub mod entry;
pub mod repo;
pub mod restore;
pub mod run;
pub mod sign;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::env_fingerprint::EnvFingerprint;
use crate::fingerprint::{
    changed_since, fingerprint_listing_of, identity, in_parallel, sha256_hex, status_changed,
    InputKind, ListingNames, StatCache,
};

pub use archive::{Limits, Replay};
pub use entry::{BlobRecord, EntryKey, InputRecord, Manifest, OutputRecord, ENTRY_FORMAT};
pub use run::{KeyKind, Run, Stored};

/// Why the cache could not do something. Every variant is a miss or a
/// skipped store for the runner, with this as the reason.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// An entry or archive that does not hold together.
    #[error("malformed cache entry: {0}")]
    Malformed(String),
    /// An entry that would write outside the root or through a link.
    #[error("unsafe cache entry: {0}")]
    Unsafe(String),
    /// A run that cannot be stored as it is.
    #[error("not stored: {0}")]
    Refused(String),
    /// The file system said no.
    #[error("cache i/o: {0}")]
    Io(String),
}

/// The most entries a look-up considers per task (the newest first).
pub const MAX_ENTRIES_PER_TASK: usize = 64;

/// How far before a run's start a file time still counts as during it:
/// the kernel stamps files from a clock that lags by up to a tick (10 ms at
/// 100 Hz), so a change made just after the start can look older.
const COARSE_CLOCK_MARGIN: std::time::Duration = std::time::Duration::from_millis(10);

/// How many reasons of one entry a miss names.
const SHOWN_REASONS: usize = 5;

/// What a look-up found.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// An entry that holds: restore it with [`Store::restore`].
    Hit(Box<Manifest>),
    /// No entry holds; `reasons` explain the closest one (`no entry` when
    /// there is none).
    Miss {
        /// Why the closest entry does not hold.
        reasons: Vec<String>,
    },
}

/// What a run gives the store.
#[derive(Debug, Clone)]
pub struct StoreRequest {
    /// The runner's task key: its command and the options that change what
    /// the command does.
    pub task: String,
    /// Every input, as an absolute path, and what of it matters.
    pub inputs: Vec<(PathBuf, InputKind)>,
    /// The run's env fingerprint (tracked env and values).
    pub env: EnvFingerprint,
    /// Outputs relative to the root (a directory adds all it holds).
    pub outputs: Vec<String>,
    /// Paths relative to the root whose writes are not outputs (a tool's
    /// `ignoreOutput`): left out of a directory output.
    pub ignored_outputs: Vec<String>,
    /// What the command printed.
    pub stdout: Vec<u8>,
    /// What the command printed on stderr.
    pub stderr: Vec<u8>,
    /// When the command started: an input changed since is a refusal.
    pub started_at: SystemTime,
    /// What the runner's user overruled to store it.
    pub overruled: Vec<String>,
    /// The repository's content before the run, taken where no complete
    /// trace may exist: the run is keyed on it (minus what the run changed,
    /// which becomes its outputs, and what its tools ignored) when `inputs`
    /// is empty.
    pub repo: Option<repo::RepoSnapshot>,
    /// Paths whose reads are not inputs (a tool's `ignoreInput`), relative to
    /// the root: left out of a repository key.
    pub ignored_inputs: Vec<String>,
    /// Paths the run deleted, relative to the root (its trace's `deleted`):
    /// an output directory it deleted in and that holds only its outputs
    /// now was emptied by it, and a restore empties it too.
    pub deleted: Vec<String>,
}

/// A local cache of task entries, rooted at a checkout.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    root: PathBuf,
    stat_cache: StatCache,
    limits: Limits,
    repo_snapshot: Option<repo::RepoSnapshot>,
    /// Per task, the files (relative to the root) that held, at its last
    /// look-up that missed, the bytes an entry of the task put there: what
    /// the one run after it reads there and rewrites is its own previous
    /// output ([`Store::store_run`] takes it). None after a hit.
    own_outputs: HashMap<String, BTreeSet<String>>,
}

/// The most bytes of a task's record of what it last placed that are read.
const MAX_PLACED_BYTES: u64 = 64 << 20;

fn io_err(context: impl std::fmt::Display) -> impl FnOnce(io::Error) -> CacheError {
    move |err| CacheError::Io(format!("{context}: {err}"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether `name` is an entry's file name: 64 lower-case hex digits and `.tar.zst`.
fn entry_id(name: &str) -> Option<&str> {
    let id = name.strip_suffix(".tar.zst")?;
    (id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(id)
}

/// Opens a file of the cache dir only if it is a regular file (a link there,
/// to `/proc/self/environ` or anywhere, is refused).
fn open_entry(path: &Path) -> Result<File, CacheError> {
    #[cfg(unix)]
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    };
    #[cfg(not(unix))]
    let file = {
        if fs::symlink_metadata(path)
            .map_err(io_err(path.display()))?
            .file_type()
            .is_symlink()
        {
            return Err(CacheError::Unsafe(format!("{} is a link", path.display())));
        }
        File::open(path)
    };
    let file = file.map_err(io_err(path.display()))?;
    if !file.metadata().map_err(io_err(path.display()))?.is_file() {
        return Err(CacheError::Unsafe(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

/// `path` lexically clean (no `.`, `..` resolved), for comparing paths.
fn clean(path: &Path) -> PathBuf {
    crate::paths::clean(path).into_owned()
}

/// The first component beneath `dir` of each of `paths` that lies strictly
/// beneath it, sorted and deduplicated.
fn names_beneath(dir: &Path, paths: &[PathBuf]) -> Vec<String> {
    let dir = clean(dir);
    let mut names: Vec<String> = paths
        .iter()
        .filter_map(|path| path.strip_prefix(&dir).ok())
        .filter_map(|rest| match rest.components().next() {
            Some(std::path::Component::Normal(name)) => Some(name.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether a name the listing of `dir` covers (`names`) appeared there at or
/// after `since`: a file added to a listed directory while the task ran (an
/// editor saving `src/extra.ts` during a `tsc` build), which the task may not
/// have seen. A listing is names, so a file merely changed there does not
/// count (its content counts where it is an input itself).
///
/// A whole listing of a directory where the task deleted no name
/// (`made_names` false) also counts the directory's own modification time: a
/// name went away (a page a route generator listed, deleted before the end).
fn name_arrived_since(
    dir: &Path,
    names: ListingNames<'_>,
    made_names: bool,
    since: SystemTime,
) -> bool {
    if names.is_whole() && !made_names && modified_since(dir, since) {
        return true;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries
        .flatten()
        .take(crate::fingerprint::MAX_TREE_FILES)
        .any(|entry| names.covers(&entry.file_name()) && arrived_since(&entry.path(), since))
}

/// Whether what `path` names (links followed) was modified at or after `since`.
fn modified_since(path: &Path, since: SystemTime) -> bool {
    fs::metadata(path)
        .and_then(|meta| meta.modified())
        .is_ok_and(|modified| modified >= since)
}

/// Whether anything in the tree `dir` (a directory input keyed on its whole
/// content) changed at or after `since`: a file written, or a name added to
/// or removed from a directory where the task made none. What the task
/// wrote or its tools ignored (`left_out`) is skipped; links are looked at,
/// not walked; at most `budget` names are.
fn tree_changed_since(
    dir: &Path,
    left_out: &[PathBuf],
    since: SystemTime,
    budget: &mut usize,
) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let here = clean(dir);
    let made_names = left_out.iter().any(|left| left.starts_with(&here));
    for entry in entries.flatten() {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let path = clean(&entry.path());
        if left_out.contains(&path) {
            continue;
        }
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        let changed = if meta.is_dir() {
            tree_changed_since(&path, left_out, since, budget)
        } else {
            changed_since(&path, since) || modified_since(&path, since)
        };
        if changed {
            return true;
        }
    }
    !made_names && modified_since(dir, since)
}

/// Whether the name `path` was made at or after `since`: born then, or
/// moved or linked there then (a rename keeps a file's birth and
/// modification times and sets only its change time, which a content write
/// sets too, with its modification time). Where the file system keeps no
/// birth time, any change counts, to be safe.
fn arrived_since(path: &Path, since: SystemTime) -> bool {
    let Ok(meta) = path.symlink_metadata() else {
        return changed_since(path, since);
    };
    let Ok(born) = meta.created() else {
        return changed_since(path, since);
    };
    if born >= since {
        return true;
    }
    let written = meta.modified().is_ok_and(|t| t >= since);
    status_changed(&meta).is_some_and(|ctime| ctime >= since) && !written
}

impl Store {
    /// A store in `dir` for the checkout at `root` (both made absolute
    /// against the current directory). The directory is created when the
    /// first entry is stored.
    pub fn open(dir: impl AsRef<Path>, root: impl AsRef<Path>) -> Result<Self, CacheError> {
        let cwd = std::env::current_dir().map_err(io_err("the current directory"))?;
        let root = clean(&cwd.join(root.as_ref()));
        let dir = clean(&cwd.join(dir.as_ref()));
        let stat_cache = match open_entry(&dir.join("stat-cache.json")) {
            Ok(file) => {
                let mut text = String::new();
                let _ = io::Read::read_to_string(&mut io::Read::take(file, 256 << 20), &mut text);
                StatCache::from_json(&text)
            }
            Err(_) => StatCache::new(),
        };
        Ok(Self {
            dir,
            root,
            stat_cache,
            limits: Limits::default(),
            repo_snapshot: None,
            own_outputs: HashMap::new(),
        })
    }

    /// Sets the bounds on reading an archive.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The checkout the store restores into.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Files hashed by look-ups and stores so far (not answered from the stat cache).
    pub fn hashed(&self) -> u64 {
        self.stat_cache.hashed()
    }

    fn task_dir(&self, task: &str) -> PathBuf {
        self.dir.join(sha256_hex(task.as_bytes()))
    }

    /// Where an entry's archive is kept locally.
    pub fn entry_path(&self, task: &str, id: &str) -> PathBuf {
        self.task_dir(task).join(format!("{id}.tar.zst"))
    }

    /// An input path as an entry holds it: relative to the root when inside
    /// it, or when it is a directory above it or in one (Node's
    /// `node_modules` and `package.json` look-ups, which a checkout
    /// elsewhere makes in its own ancestors); absolute otherwise.
    pub fn portable(&self, path: &Path) -> String {
        let path = clean(path);
        let slash = |p: &Path| p.to_string_lossy().replace('\\', "/");
        if let Ok(rel) = path.strip_prefix(&self.root) {
            let rel = slash(rel);
            return if rel.is_empty() { ".".to_owned() } else { rel };
        }
        // How many levels above the root `dir` is, for a directory above it
        // (never the filesystem's root, which every checkout shares).
        let levels_above = |dir: &Path| {
            (dir != self.root && self.root.starts_with(dir) && dir.parent().is_some()).then(|| {
                vec![".."; self.root.components().count() - dir.components().count()].join("/")
            })
        };
        if let Some(up) = levels_above(&path) {
            return up;
        }
        if let (Some(up), Some(name)) = (path.parent().and_then(levels_above), path.file_name()) {
            return format!("{up}/{}", name.to_string_lossy());
        }
        slash(&path)
    }

    /// The absolute path an entry's input names here.
    fn resolve(&self, input: &str) -> PathBuf {
        let path = Path::new(input);
        if path.is_absolute() {
            clean(path)
        } else {
            clean(&self.root.join(path))
        }
    }

    /// Why `manifest`'s inputs or env no longer hold here (empty: it holds).
    pub fn stale_reasons(
        &mut self,
        manifest: &Manifest,
        env: &HashMap<String, String>,
    ) -> Vec<String> {
        let mut reasons = Vec::new();
        for (input, record) in &manifest.key.inputs {
            let path = self.resolve(input);
            let names = ListingNames {
                without: &record.without,
                only: record.only.as_deref(),
            };
            match fingerprint_listing_of(&path, record.kind, &self.stat_cache, names) {
                Ok(now) if now == record.fingerprint => {}
                Ok(_) if record.fingerprint == "missing" => {
                    reasons.push(format!("input {input} added"))
                }
                Ok(now) if now == "missing" => reasons.push(format!("input {input} removed")),
                Ok(_) => reasons.push(format!("input {input} changed")),
                Err(err) => reasons.push(format!("input {input} cannot be checked: {err}")),
            }
            if reasons.len() > SHOWN_REASONS {
                break;
            }
        }
        if reasons.len() > SHOWN_REASONS {
            reasons.truncate(SHOWN_REASONS);
            reasons.push("…".to_owned());
        }
        if let Some(key) = &manifest.key.repo {
            match self.repo_now() {
                Ok(now) if now.root == key.root => {
                    reasons.extend(repo::stale_reasons(key, now, SHOWN_REASONS))
                }
                Ok(_) => {
                    reasons.push("the entry was stored from another place in its repository".into())
                }
                Err(err) => reasons.push(format!("the repository cannot be read: {err}")),
            }
        }
        reasons.extend(manifest.key.env.validate(env));
        reasons
    }

    /// The repository's content as this look-up sees it: taken once, on the
    /// first entry keyed on it, and reused for the others and for the remote
    /// index lines checked right after. [`Store::lookup`] and
    /// [`Store::refresh`] forget it, so a later look-up never compares with
    /// the repository as it was before another task ran.
    fn repo_now(&mut self) -> Result<&repo::RepoSnapshot, repo::RepoError> {
        if self.repo_snapshot.is_none() {
            self.repo_snapshot = Some(self.repo_snapshot()?);
        }
        Ok(self
            .repo_snapshot
            .as_ref()
            .unwrap_or_else(|| unreachable!()))
    }

    /// Forgets the repository snapshot the last look-up took: the next check
    /// of an entry keyed on the repository takes a new one.
    pub fn refresh(&mut self) {
        self.repo_snapshot = None;
    }

    /// The repository's content now, for a run that may have no complete
    /// trace: take it before the run and give it to [`Store::store`].
    pub fn repo_snapshot(&self) -> Result<repo::RepoSnapshot, repo::RepoError> {
        repo::RepoSnapshot::take(
            &self.root,
            std::slice::from_ref(&self.dir),
            &self.stat_cache,
        )
    }

    /// The task's local entries, newest first; those that fail a check are
    /// removed (a partial or tampered entry is never a hit) and named in the
    /// second list.
    pub fn entries(&self, task: &str) -> (Vec<Manifest>, Vec<String>) {
        self.entries_but(task, None)
    }

    /// [`Store::entries`] without reading the entry `skip` (one just written,
    /// whose manifest is known): a store compares a run with the others.
    fn entries_but(&self, task: &str, skip: Option<&str>) -> (Vec<Manifest>, Vec<String>) {
        let dir = self.task_dir(task);
        let mut manifests = Vec::new();
        let mut refused = Vec::new();
        let Ok(read) = fs::read_dir(&dir) else {
            return (manifests, refused);
        };
        for item in read.flatten().take(MAX_ENTRIES_PER_TASK * 4) {
            let name = item.file_name().to_string_lossy().into_owned();
            let Some(id) = entry_id(&name) else {
                continue;
            };
            if skip == Some(id) {
                continue;
            }
            let path = dir.join(&name);
            let manifest = open_entry(&path)
                .and_then(|file| archive::read_manifest(BufReader::new(file), &self.limits))
                .and_then(|manifest| {
                    if manifest.id == id && manifest.key.task == task {
                        Ok(manifest)
                    } else {
                        Err(CacheError::Malformed(
                            "it is kept under another id or task".into(),
                        ))
                    }
                });
            match manifest {
                Ok(manifest) => manifests.push(manifest),
                Err(err) => {
                    refused.push(format!("entry {id} refused: {err}"));
                    let _ = fs::remove_file(&path);
                }
            }
        }
        manifests.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        manifests.truncate(MAX_ENTRIES_PER_TASK);
        (manifests, refused)
    }

    /// Looks `task` up in the local store against the current `env` (the env
    /// the runner would give `createServer`): the newest entry whose inputs
    /// and env still hold is a hit.
    pub fn lookup(&mut self, task: &str, env: &HashMap<String, String>) -> Lookup {
        self.refresh();
        let (manifests, refused) = self.entries(task);
        let mut closest: Option<Vec<String>> = None;
        for manifest in &manifests {
            let reasons = self.stale_reasons(manifest, env);
            if reasons.is_empty() {
                self.own_outputs.remove(task);
                return Lookup::Hit(Box::new(manifest.clone()));
            }
            if closest.as_ref().is_none_or(|c| reasons.len() < c.len()) {
                closest = Some(reasons);
            }
        }
        let own = self.placed_and_unchanged(task, &manifests);
        self.own_outputs.insert(task.to_owned(), own);
        let mut reasons = closest.unwrap_or_else(|| vec!["no entry".to_owned()]);
        reasons.extend(refused);
        Lookup::Miss { reasons }
    }

    /// Restores a local entry: checks the whole archive against `manifest`,
    /// staging its outputs beside their places, and only then renames them
    /// in. Returns the command's stdout and stderr to replay.
    pub fn restore(&self, manifest: &Manifest) -> Result<Replay, CacheError> {
        manifest.check()?;
        let file = open_entry(&self.entry_path(&manifest.key.task, &manifest.id))?;
        let mut placer = restore::Placer::new(&self.root)?;
        let replay = archive::read_archive(
            BufReader::new(file),
            manifest,
            &self.limits,
            Some(&mut placer),
        )?;
        let keep: std::collections::BTreeSet<&str> =
            manifest.outputs.iter().map(OutputRecord::path).collect();
        // Nothing is removed for an entry whose outputs cannot all go in.
        placer.check_places()?;
        for dir in self.to_empty(manifest, &keep) {
            placer.empty(&dir, &keep)?;
        }
        placer.commit()?;
        self.remember_placed(
            &manifest.key.task,
            manifest.outputs.iter().filter_map(|output| match output {
                OutputRecord::File { path, sha256, .. } => {
                    let meta = fs::symlink_metadata(self.root.join(path)).ok()?;
                    Some((path.clone(), sha256.clone(), identity(&meta)))
                }
                _ => None,
            }),
        );
        Ok(replay)
    }

    /// The files of the checkout that, as a look-up of `task` finds them,
    /// still hold what an entry of the task put there (its last restore or
    /// store, unchanged since): a run that reads one of them and rewrites it
    /// read its own previous output.
    fn placed_and_unchanged(&self, task: &str, manifests: &[Manifest]) -> BTreeSet<String> {
        let mut own = BTreeSet::new();
        let placed = self.placed(task);
        if placed.is_empty() {
            return own;
        }
        let outputs: HashSet<(&str, &str)> = manifests
            .iter()
            .flat_map(|manifest| &manifest.outputs)
            .filter_map(|output| match output {
                OutputRecord::File { path, sha256, .. } => Some((path.as_str(), sha256.as_str())),
                _ => None,
            })
            .collect();
        let recorded = fs::metadata(self.placed_path(task)).and_then(|meta| meta.modified());
        for (path, (sha256, was)) in placed {
            if !outputs.contains(&(path.as_str(), sha256.as_str())) {
                continue;
            }
            let Ok(rel) = entry::check_output_path(&path).map(|()| path) else {
                continue;
            };
            let full = self.root.join(&rel);
            let unchanged = fs::symlink_metadata(&full).is_ok_and(|meta| {
                identity(&meta) == was
                    // Modified no earlier than the record was written (in
                    // one tick of a coarse clock, "racily clean" as git
                    // calls it), its identity cannot tell an edit: its
                    // bytes do.
                    && (recorded
                        .as_ref()
                        .is_ok_and(|recorded| meta.modified().is_ok_and(|at| at < *recorded))
                        || crate::fingerprint::hash_regular_file(&full, &meta)
                            .is_ok_and(|now| now == sha256))
            });
            if unchanged {
                own.insert(rel);
            }
        }
        own
    }

    fn placed_path(&self, task: &str) -> PathBuf {
        self.task_dir(task).join(".placed.json")
    }

    /// What `task`'s last restore or store left in the checkout: each file's
    /// path, digest and identity then. Best effort: unreadable is empty.
    fn placed(&self, task: &str) -> BTreeMap<String, (String, String)> {
        let Ok(file) = open_entry(&self.placed_path(task)) else {
            return BTreeMap::new();
        };
        let mut text = String::new();
        if io::Read::read_to_string(&mut io::Read::take(file, MAX_PLACED_BYTES), &mut text).is_err()
        {
            return BTreeMap::new();
        }
        serde_json::from_str(&text).unwrap_or_default()
    }

    /// Records what `task`'s restore or store left in the checkout, replacing
    /// the record of the one before. Best effort, like the stat cache.
    fn remember_placed(&self, task: &str, files: impl Iterator<Item = (String, String, String)>) {
        let placed: BTreeMap<String, (String, String)> = files
            .map(|(path, sha256, identity)| (path, (sha256, identity)))
            .collect();
        let dir = self.task_dir(task);
        if fs::create_dir_all(&dir).is_err() {
            return;
        }
        let Ok(text) = serde_json::to_string(&placed) else {
            return;
        };
        if let Ok(mut staging) = tempfile::Builder::new()
            .prefix(".placed-")
            .tempfile_in(&dir)
        {
            if staging.write_all(text.as_bytes()).is_ok() {
                let _ = staging.persist(self.placed_path(task));
            }
        }
    }

    /// The output directories a restore of `manifest` empties: those its run
    /// emptied, and those another entry of the task shows the tool empties
    /// (Vite empties `outDir` on every run, but a run on a clean checkout had
    /// nothing to delete, so its entry cannot say so). Other entries are read
    /// only when a directory holds something the entry does not restore.
    fn to_empty(
        &self,
        manifest: &Manifest,
        keep: &std::collections::BTreeSet<&str>,
    ) -> Vec<String> {
        let mut dirs = manifest.emptied.clone();
        let holds_more = |dir: &str| {
            fs::read_dir(self.root.join(dir)).is_ok_and(|entries| {
                entries.flatten().any(|entry| {
                    !keep
                        .contains(format!("{dir}/{}", entry.file_name().to_string_lossy()).as_str())
                })
            })
        };
        let unsure: Vec<&str> = manifest
            .outputs
            .iter()
            .filter(|output| matches!(output, OutputRecord::Dir { .. }))
            .map(OutputRecord::path)
            .filter(|dir| !dirs.iter().any(|emptied| emptied == dir) && holds_more(dir))
            .collect();
        if unsure.is_empty() {
            return dirs;
        }
        let (others, _) = self.entries_but(&manifest.key.task, Some(&manifest.id));
        for dir in unsure {
            if others
                .iter()
                .any(|other| other.emptied.iter().any(|emptied| emptied == dir))
            {
                dirs.push(dir.to_owned());
            }
        }
        dirs
    }

    /// Adds an archive that came from elsewhere (a remote cache) as a local
    /// entry, once every member of it checked out against `expected`, the
    /// manifest the look-up validated. Written aside and renamed into place.
    pub fn import(&mut self, expected: &Manifest, bytes: &[u8]) -> Result<(), CacheError> {
        expected.check()?;
        archive::read_archive(bytes, expected, &self.limits, None)?;
        self.write_entry(&expected.key.task, &expected.id, |file| {
            file.write_all(bytes).map_err(io_err("the entry"))
        })
    }

    fn write_entry(
        &self,
        task: &str,
        id: &str,
        write: impl FnOnce(&mut File) -> Result<(), CacheError>,
    ) -> Result<(), CacheError> {
        let dir = self.task_dir(task);
        fs::create_dir_all(&dir).map_err(io_err(dir.display()))?;
        let mut staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempfile_in(&dir)
            .map_err(io_err(dir.display()))?;
        // No fsync: an entry cut short by a crash fails its digests on read
        // and is a miss, so durability is not worth a disk flush per store.
        write(staging.as_file_mut())?;
        staging
            .persist(dir.join(format!("{id}.tar.zst")))
            .map_err(|err| CacheError::Io(format!("the entry: {}", err.error)))?;
        Ok(())
    }

    /// Stores a run: fingerprints its inputs (refusing a run with none, or
    /// one whose inputs changed while it ran), collects its outputs (refusing
    /// one that lies outside the root or under a link), and writes the
    /// archive aside before renaming it into place. Returns its manifest.
    pub fn store(&mut self, request: &StoreRequest) -> Result<Manifest, CacheError> {
        let (repo, changed_outputs) = match (&request.repo, request.inputs.is_empty()) {
            (Some(before), true) => {
                let (key, outputs) = self.repo_key(before, request)?;
                (Some(key), outputs)
            }
            (None, true) => {
                return Err(CacheError::Refused(
                    "no inputs known: a key that covers nothing would hit after any change".into(),
                ))
            }
            (_, false) => (None, Vec::new()),
        };
        let mut inputs = BTreeMap::new();
        let mut changed = Vec::new();
        // What a listing leaves out: the names beneath it of what the task
        // wrote, what its tools ignored and the cache's own directory. A
        // clean checkout (no `dist`) and one with old outputs list alike.
        let left_out: Vec<PathBuf> = request
            .outputs
            .iter()
            .chain(&request.ignored_outputs)
            .chain(&request.ignored_inputs)
            .map(|rel| self.resolve(rel))
            .chain([self.dir.clone()])
            .collect();
        let deleted: Vec<PathBuf> = request
            .deleted
            .iter()
            .map(|rel| self.resolve(rel))
            .collect();
        // Where the task itself made or removed names.
        let touched: Vec<PathBuf> = left_out.iter().chain(&deleted).cloned().collect();
        let withouts: Vec<Vec<String>> = request
            .inputs
            .iter()
            .map(|(path, kind)| match kind {
                InputKind::Listing => names_beneath(path, &left_out),
                _ => Vec::new(),
            })
            .collect();
        // A listing outside the checkout (`/tmp`, the home directory, the
        // directories above it) keeps only what the task could learn from it:
        // the names it went on to use, and those a tool resolving upward
        // could pick up. Everything else there is churn of a shared place.
        let used: Vec<PathBuf> = request
            .inputs
            .iter()
            .map(|(path, _)| path.clone())
            .chain([self.root.clone()])
            .collect();
        let onlys: Vec<Option<Vec<String>>> = request
            .inputs
            .iter()
            .map(|(path, kind)| {
                (*kind == InputKind::Listing && !clean(path).starts_with(&self.root))
                    .then(|| names_beneath(path, &used))
            })
            .collect();
        let stat_cache = &self.stat_cache;
        // File times come from a clock that lags by up to a tick: a file
        // written just after the start may carry a time just before it.
        let since = request
            .started_at
            .checked_sub(COARSE_CLOCK_MARGIN)
            .unwrap_or(request.started_at);
        // An input, what its listing leaves out, and what alone it covers.
        type Job<'a> = (
            (&'a (PathBuf, InputKind), &'a Vec<String>),
            &'a Option<Vec<String>>,
        );
        let jobs: Vec<Job<'_>> = request.inputs.iter().zip(&withouts).zip(&onlys).collect();
        let fingerprints = in_parallel(&jobs, |(((path, kind), without), only)| {
            let names = ListingNames {
                without,
                only: only.as_deref(),
            };
            let appeared = || {
                let made_names = deleted.iter().any(|gone| gone.parent() == Some(path));
                name_arrived_since(path, names, made_names, since)
            };
            let tree_changed = || {
                *kind == InputKind::Content
                    && fs::metadata(path).is_ok_and(|meta| meta.is_dir())
                    && tree_changed_since(path, &touched, since, &mut {
                        crate::fingerprint::MAX_TREE_FILES
                    })
            };
            if changed_since(path, since)
                || (*kind == InputKind::Listing && appeared())
                || tree_changed()
            {
                return Ok(None);
            }
            fingerprint_listing_of(path, *kind, stat_cache, names).map(Some)
        });
        for ((((path, kind), without), only), fingerprint) in jobs.into_iter().zip(fingerprints) {
            let key = self.portable(path);
            let Some(fingerprint) =
                fingerprint.map_err(|err| CacheError::Refused(err.to_string()))?
            else {
                changed.push(key);
                continue;
            };
            let record = InputRecord {
                kind: *kind,
                fingerprint,
                without: without.clone(),
                only: only.clone(),
            };
            // One path reached two ways keeps its strongest kind.
            match inputs.get(&key) {
                Some(InputRecord { kind: had, .. }) if *had >= *kind => {}
                _ => {
                    inputs.insert(key, record);
                }
            }
        }
        if !changed.is_empty() {
            let more = if changed.len() > SHOWN_REASONS {
                format!(", … ({} in all)", changed.len())
            } else {
                String::new()
            };
            changed.truncate(SHOWN_REASONS);
            return Err(CacheError::Refused(format!(
                "inputs changed while the command ran: {}{more}",
                changed.join(", ")
            )));
        }
        request
            .env
            .check()
            .map_err(|err| CacheError::Refused(err.to_string()))?;
        let mut wanted = request.outputs.clone();
        wanted.extend(changed_outputs);
        wanted.sort();
        wanted.dedup();
        let mut outputs = archive::collect_outputs(&self.root, &wanted, &request.ignored_outputs)?;
        let key = EntryKey {
            task: request.task.clone(),
            inputs,
            env: request.env.clone(),
            repo,
        };
        let emptied = self.emptied(&outputs.records, &request.deleted);
        let manifest = Manifest {
            format: ENTRY_FORMAT.to_owned(),
            id: key.id(),
            key,
            outputs: std::mem::take(&mut outputs.records),
            stdout: BlobRecord::of(&request.stdout),
            stderr: BlobRecord::of(&request.stderr),
            created_at: now_ms(),
            overruled: request.overruled.clone(),
            emptied,
        };
        manifest
            .check()
            .map_err(|err| CacheError::Refused(err.to_string()))?;
        self.write_entry(&request.task, &manifest.id, |file| {
            let out = io::BufWriter::new(file);
            archive::write_archive(
                &self.root,
                &manifest,
                &outputs,
                &request.stdout,
                &request.stderr,
                out,
            )?
            .flush()
            .map_err(io_err("the entry"))
        })?;
        // The run's files as it left them, for the next run's look-up: a file
        // changed since it was hashed is left out.
        self.remember_placed(
            &request.task,
            manifest.outputs.iter().filter_map(|output| match output {
                OutputRecord::File { path, sha256, .. } => {
                    let hashed = outputs.identities.get(path)?;
                    let meta = fs::symlink_metadata(self.root.join(path)).ok()?;
                    (identity(&meta) == *hashed)
                        .then(|| (path.clone(), sha256.clone(), hashed.clone()))
                }
                _ => None,
            }),
        );
        Ok(manifest)
    }

    /// The output directories the run emptied: it deleted something directly
    /// in each, and each holds nothing now but the run's outputs. A tool that
    /// deletes one stale file among others it leaves (or never deletes, as
    /// `tsc`) empties nothing, and a restore leaves such a directory's other
    /// files as the tool would.
    fn emptied(&self, records: &[OutputRecord], deleted: &[String]) -> Vec<String> {
        let outputs: std::collections::BTreeSet<&str> =
            records.iter().map(OutputRecord::path).collect();
        let parent = |path: &str| path.rsplit_once('/').map_or("", |(dir, _)| dir).to_owned();
        let deleted_in: std::collections::BTreeSet<String> =
            deleted.iter().map(|path| parent(path)).collect();
        records
            .iter()
            .filter(|record| matches!(record, OutputRecord::Dir { .. }))
            .map(OutputRecord::path)
            .filter(|dir| deleted_in.contains(*dir))
            .filter(|dir| {
                let Ok(entries) = fs::read_dir(self.root.join(dir)) else {
                    return false;
                };
                entries.flatten().all(|entry| {
                    let name = entry.file_name();
                    outputs.contains(format!("{dir}/{}", name.to_string_lossy()).as_str())
                })
            })
            .map(str::to_owned)
            .collect()
    }

    /// A repository key for a run with no complete trace: its content
    /// before the run, minus what the run changed (which becomes its outputs,
    /// relative to the root), its declared outputs and what its tools ignored.
    fn repo_key(
        &self,
        before: &repo::RepoSnapshot,
        request: &StoreRequest,
    ) -> Result<(repo::RepoKey, Vec<String>), CacheError> {
        let refused = |err: repo::RepoError| CacheError::Refused(err.to_string());
        let after = repo::RepoSnapshot::take(
            &self.root,
            std::slice::from_ref(&self.dir),
            &self.stat_cache,
        )
        .map_err(refused)?;
        if after.root != before.root {
            return Err(CacheError::Refused(
                "the repository moved while the command ran".into(),
            ));
        }
        let prefix = if before.root.is_empty() {
            String::new()
        } else {
            format!("{}/", before.root)
        };
        let in_repo = |rel: &String| format!("{prefix}{rel}");
        let changed = after.changed_since(before);
        let outside: Vec<&str> = changed
            .iter()
            .filter(|path| !path.starts_with(&prefix))
            .map(String::as_str)
            .collect();
        if !outside.is_empty() {
            let shown: Vec<&str> = outside.into_iter().take(SHOWN_REASONS).collect();
            return Err(CacheError::Refused(format!(
                "the command changed files of the repository outside its root: {}",
                shown.join(", ")
            )));
        }
        let mut exclude: Vec<String> = request.outputs.iter().map(in_repo).collect();
        exclude.extend(request.ignored_inputs.iter().map(in_repo));
        exclude.extend(request.ignored_outputs.iter().map(in_repo));
        // A file that was there before and the run changed or deleted may be
        // what it read (a formatter's source): keyed on nothing, a later edit
        // of it would hit and be overwritten. Only what the tools declared or
        // ignored may be rewritten, and what an entry of this task restored
        // (a rebuild over its own previous output).
        let mut rewritable = exclude.clone();
        rewritable.extend(self.entries(&request.task).0.iter().flat_map(|entry| {
            entry
                .outputs
                .iter()
                .map(|output| in_repo(&output.path().to_owned()))
        }));
        let modified: Vec<&str> = changed
            .iter()
            .filter(|path| {
                before.files.contains_key(*path) && !repo::is_excluded(path, &rewritable)
            })
            .map(String::as_str)
            .collect();
        if !modified.is_empty() {
            let more = if modified.len() > SHOWN_REASONS {
                format!(", … ({} in all)", modified.len())
            } else {
                String::new()
            };
            let shown: Vec<&str> = modified.into_iter().take(SHOWN_REASONS).collect();
            return Err(CacheError::Refused(format!(
                "the command changed or deleted files of the repository it may have read: {}{more}",
                shown.join(", ")
            )));
        }
        // What the run created (or rewrote where allowed) is its output, and out of its key.
        let outputs: Vec<String> = changed
            .iter()
            .filter(|path| after.files.contains_key(*path))
            .map(|path| path[prefix.len()..].to_owned())
            .collect();
        exclude.extend(changed);
        exclude.sort();
        exclude.dedup();
        let files = before.without(&exclude);
        if files.is_empty() {
            return Err(CacheError::Refused(
                "the repository holds nothing the run could have read: a key that covers nothing would hit after any change".into(),
            ));
        }
        Ok((
            repo::RepoKey {
                root: before.root.clone(),
                exclude,
                files,
            },
            outputs,
        ))
    }

    /// The task's other entries that rest on the same inputs and env as
    /// `manifest` but hold other `addValue` values: proof that the key misses
    /// what the output depends on, so none of them can be trusted.
    pub fn conflicting(&self, manifest: &Manifest) -> Vec<Manifest> {
        let lookup_id = manifest.key.lookup_id();
        self.entries_but(&manifest.key.task, Some(&manifest.id))
            .0
            .into_iter()
            .filter(|other| {
                other.id != manifest.id
                    && other.key.lookup_id() == lookup_id
                    && other.key.env.values != manifest.key.env.values
            })
            .collect()
    }

    /// The archive of a stored entry, as uploaded to a remote cache.
    pub fn read_entry(&self, task: &str, id: &str) -> Result<Vec<u8>, CacheError> {
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut open_entry(&self.entry_path(task, id))?, &mut bytes)
            .map_err(io_err("the entry"))?;
        Ok(bytes)
    }

    /// Removes an entry (one whose values contradict a later run's).
    pub fn remove(&self, task: &str, id: &str) {
        let _ = fs::remove_file(self.entry_path(task, id));
    }

    /// Removes every entry of `task`; returns how many there were.
    pub fn clean_task(&self, task: &str) -> usize {
        let dir = self.task_dir(task);
        let count = fs::read_dir(&dir)
            .map(|read| {
                read.flatten()
                    .filter(|e| entry_id(&e.file_name().to_string_lossy()).is_some())
                    .count()
            })
            .unwrap_or(0);
        let _ = fs::remove_dir_all(&dir);
        count
    }

    /// Writes the stat cache beside the entries, when a look-up or store hashed
    /// a file, so the next look-up re-hashes only what changed. Best effort:
    /// it is only a shortcut.
    pub fn save_stat_cache(&self) {
        // Nothing new to remember: the file stays as it is.
        if self.stat_cache.hashed() == 0 || fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        if let Ok(mut staging) = tempfile::Builder::new()
            .prefix(".stat-cache-")
            .tempfile_in(&self.dir)
        {
            if staging
                .write_all(self.stat_cache.to_json().as_bytes())
                .is_ok()
            {
                let _ = staging.persist(self.dir.join("stat-cache.json"));
            }
        }
    }
}
