//! What a look-up compares of an input: a file's content digest, a
//! directory's listing, or only whether a path exists and as what, with a
//! stat cache so that a look-up re-hashes only files whose identity changed.
//!
//! The paths come from a cache entry, which may be hostile: nothing here
//! opens anything but a regular file, reads a pseudo-filesystem, or walks a
//! directory tree without a bound.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a look-up must check of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// Whether the path exists, and as what (file, directory, other).
    Existence,
    /// The names in a directory.
    Listing,
    /// The bytes of a file (every file beneath, for a directory).
    Content,
}

impl InputKind {
    /// The kind's name, as entries and reports spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Existence => "existence",
            Self::Listing => "listing",
            Self::Content => "content",
        }
    }
}

/// The most files a directory input's content digest walks: a directory
/// beyond it cannot be checked (an entry naming `/` costs a bounded walk).
pub const MAX_TREE_FILES: usize = 200_000;

/// The most bytes a directory input's content digest reads, for the same reason.
pub const MAX_TREE_BYTES: u64 = 1 << 30;

/// Why an input cannot be fingerprinted: a look-up treats its entry as not
/// holding, and a run with such an input is not stored.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    /// The path is in a pseudo-filesystem, whose files are not content.
    #[error(
        "{path} is in a pseudo-filesystem (/proc, /sys, /dev): not an input a cache can check"
    )]
    PseudoFilesystem {
        /// The input.
        path: PathBuf,
    },
    /// A directory input holds more files or bytes than a digest walks.
    #[error("{path} holds more than {MAX_TREE_FILES} files or {MAX_TREE_BYTES} bytes: too large to check as one input")]
    TooLarge {
        /// The input.
        path: PathBuf,
    },
    /// Reading the input failed.
    #[error("{path} cannot be read: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FingerprintError + '_ {
    move |source| FingerprintError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Digests of files keyed by identity (device, inode, size, mtime, ctime), so
/// a look-up re-hashes only what changed. A runner keeps one per cache. It is
/// shared by the threads that hash a run's inputs at once.
#[derive(Debug, Default)]
pub struct StatCache {
    entries: Mutex<HashMap<PathBuf, (String, String)>>,
    hashed: AtomicU64,
}

/// A stat cache as JSON: `[[path, [identity, sha256]], …]`.
type StatCacheJson = Vec<(PathBuf, (String, String))>;

impl StatCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (String, String)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Files hashed (not answered from the cache) since this cache was made.
    pub fn hashed(&self) -> u64 {
        self.hashed.load(Ordering::Relaxed)
    }

    /// The cache as JSON.
    pub fn to_json(&self) -> String {
        let entries: StatCacheJson = self
            .entries()
            .iter()
            .map(|(path, entry)| (path.clone(), entry.clone()))
            .collect();
        serde_json::to_string(&entries).unwrap_or_else(|_| "[]".to_owned())
    }

    /// A cache from [`StatCache::to_json`]'s output; anything else gives an
    /// empty cache (it is only ever a shortcut).
    pub fn from_json(json: &str) -> Self {
        let entries: StatCacheJson = serde_json::from_str(json).unwrap_or_default();
        Self {
            entries: Mutex::new(entries.into_iter().collect()),
            hashed: AtomicU64::new(0),
        }
    }

    /// The sha256 (hex) of the regular file at `path`, whose metadata is `meta`.
    fn digest(&self, path: &Path, meta: &Metadata) -> Result<String, FingerprintError> {
        let identity = identity(meta);
        if let Some((known, digest)) = self.entries().get(path) {
            if *known == identity {
                return Ok(digest.clone());
            }
        }
        let digest = hash_regular_file(path, meta)?;
        self.hashed.fetch_add(1, Ordering::Relaxed);
        self.entries()
            .insert(path.to_path_buf(), (identity, digest.clone()));
        Ok(digest)
    }
}

/// `work` applied to every item, on up to as many threads as there are
/// cores: hashing a run's inputs or outputs is the part of storing it that
/// grows with the build.
pub(crate) fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8);
    if threads <= 1 || items.len() < 64 {
        return items.iter().map(&work).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let work = &work;
                scope.spawn(move || part.iter().map(work).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// What tells one state of a file from another without reading it: its
/// device, inode, size and modification and change times.
#[cfg(unix)]
pub(crate) fn identity(meta: &Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    format!(
        "{}:{}:{}:{}:{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        ns(meta.mtime(), meta.mtime_nsec()),
        ns(meta.ctime(), meta.ctime_nsec())
    )
}

#[cfg(not(unix))]
pub(crate) fn identity(meta: &Metadata) -> String {
    let ns = |time: io::Result<SystemTime>| {
        time.ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    };
    format!(
        "{}:{}:{}",
        meta.len(),
        ns(meta.modified()),
        ns(meta.created())
    )
}

/// Whether `path` lies in a pseudo-filesystem, whose "files" are the kernel's
/// state (`/proc/self/mem`, `/dev/zero`): never hashed, never opened.
fn is_pseudo(path: &Path) -> bool {
    cfg!(unix)
        && ["/proc", "/sys", "/dev"]
            .iter()
            .any(|dir| path.starts_with(dir))
}

/// The regular file `meta` describes (as a stat of `path` saw it), opened
/// without blocking (a FIFO swapped in since the stat is never waited on)
/// and checked to be that file.
pub(crate) fn open_checked(path: &Path, meta: &Metadata) -> Result<File, FingerprintError> {
    let file = open_regular(path).map_err(io_error(path))?;
    let opened = file.metadata().map_err(io_error(path))?;
    if !opened.is_file() || identity(&opened) != identity(meta) {
        return Err(FingerprintError::Io {
            path: path.to_path_buf(),
            source: io::Error::other("it changed while it was being read"),
        });
    }
    Ok(file)
}

/// The sha256 of the regular file `meta` describes ([`open_checked`]).
pub(crate) fn hash_regular_file(path: &Path, meta: &Metadata) -> Result<String, FingerprintError> {
    let file = open_checked(path, meta)?;
    let mut hasher = Sha256::new();
    let mut reader = io::BufReader::with_capacity(64 * 1024, file);
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(unix)]
fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open_regular(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The sha256 (hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A path's metadata, or `None` where nothing is (a missing name, or a file
/// where a directory was expected).
fn metadata(path: &Path, follow: bool) -> Result<Option<Metadata>, FingerprintError> {
    let result = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    match result {
        Ok(meta) => Ok(Some(meta)),
        Err(err) if is_absent(&err) => Ok(None),
        Err(source) => Err(FingerprintError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn is_absent(err: &io::Error) -> bool {
    if err.kind() == io::ErrorKind::NotFound {
        return true;
    }
    #[cfg(unix)]
    if let Some(code) = err.raw_os_error() {
        return [libc::ENOTDIR, libc::ENAMETOOLONG, libc::ELOOP].contains(&code);
    }
    false
}

fn type_of(meta: &Metadata) -> &'static str {
    if meta.is_file() {
        "file"
    } else if meta.is_dir() {
        "directory"
    } else {
        "other"
    }
}

/// Where the link at `path` points; `None` when it is no link (any more).
fn link_target(path: &Path) -> Result<Option<String>, FingerprintError> {
    match fs::read_link(path) {
        Ok(target) => Ok(Some(target.to_string_lossy().into_owned())),
        Err(err) if is_absent(&err) || err.kind() == io::ErrorKind::InvalidInput => Ok(None),
        Err(source) => Err(FingerprintError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// What a look-up compares for an input, as one string: `missing`, or for a
/// path that exists, by kind: `content` the file's sha256 (`tree:…` for a
/// directory), `listing` a digest of the sorted names (the type when it is no
/// directory), `existence` its type (`file`, `directory`, `other`). A
/// symbolic link also counts by where it points (`link "<target>" …`).
/// Special files are never opened: their fingerprint is `other`.
pub fn fingerprint_input(
    path: &Path,
    kind: InputKind,
    cache: &StatCache,
) -> Result<String, FingerprintError> {
    fingerprint_listing_of(path, kind, cache, ListingNames::default())
}

/// Which names of a directory a listing input covers. `without`: the names
/// left out (what the task itself wrote there, such as `dist`, which a clean
/// checkout lacks and a restore brings back; what its tools ignored; the
/// cache's own directory). `only`, for a listing above the checkout: the
/// names the task went on to use; the listing then covers those and the
/// names a tool resolving upward could pick up ([`is_resolution_name`]), not
/// the churn of a shared directory such as `/tmp`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListingNames<'a> {
    /// Names left out.
    pub without: &'a [String],
    /// Names kept, besides the resolution names; `None` keeps every name.
    pub only: Option<&'a [String]>,
}

impl ListingNames<'_> {
    /// Whether the listing covers `name`.
    pub fn covers(&self, name: &std::ffi::OsStr) -> bool {
        let bytes = name_bytes(name);
        let is = |known: &String| *bytes == *known.as_bytes();
        !self.without.iter().any(is)
            && self.only.is_none_or(|only| {
                only.iter().any(is) || is_resolution_name(&name.to_string_lossy())
            })
    }

    /// Whether every name counts (nothing left out, nothing narrowed).
    pub fn is_whole(&self) -> bool {
        self.without.is_empty() && self.only.is_none()
    }
}

/// Whether a tool resolving from a checkout could pick up a file of this name
/// in a directory above it: the package and config files Node tools look for
/// upward (`package.json`, `node_modules`, `tsconfig*.json`, `.pnp.cjs`,
/// `*.config.*`, dot-files of configuration such as `.babelrc`, `.npmrc`,
/// `.prettierrc.json` or `.env.local`). Other dot-files are not: temporary
/// files (`.tmpA1b2C3`, which every `tempfile` user leaves in `/tmp` while it
/// runs) would make a listing of `/tmp` change with every program's work.
pub fn is_resolution_name(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "package.json",
        "node_modules",
        "jsconfig.json",
        "pnpm-workspace.yaml",
        "deno.json",
        "deno.jsonc",
        "bunfig.toml",
        "browserslist",
        "lerna.json",
        "nx.json",
        "turbo.json",
        "rush.json",
    ];
    NAMES.contains(&name)
        || (name.starts_with("tsconfig") && name.ends_with(".json"))
        || name.contains(".config.")
        || name.strip_prefix('.').is_some_and(is_dot_config)
}

/// Whether a dot-file's name (without its dot) is one of configuration: an
/// rc file (`babelrc`, `npmrc`, `prettierrc.json`, `yarnrc.yml`), an env
/// file (`env`, `env.local`), or one of the names tools look for upward.
fn is_dot_config(stem: &str) -> bool {
    const NAMES: &[&str] = &[
        "git",
        "gitignore",
        "editorconfig",
        "node-version",
        "tool-versions",
        "pnp.cjs",
        "pnp.loader.mjs",
        "pnpmfile.cjs",
        "yarn",
        "browserslistrc",
        "config",
    ];
    NAMES.contains(&stem)
        || stem.ends_with("rc")
        || stem.contains("rc.")
        || stem == "env"
        || stem.starts_with("env.")
        || stem.contains(".config.")
}

/// [`fingerprint_input`] of a listing covering only `names` (other kinds
/// look at no name and ignore it).
pub fn fingerprint_listing_of(
    path: &Path,
    kind: InputKind,
    cache: &StatCache,
    names: ListingNames<'_>,
) -> Result<String, FingerprintError> {
    if is_pseudo(path) {
        return Err(FingerprintError::PseudoFilesystem {
            path: path.to_path_buf(),
        });
    }
    let Some(link) = metadata(path, false)? else {
        return Ok("missing".to_owned());
    };
    refuse_pseudo_target(path, &link)?;
    let followed = fingerprint_followed(path, kind, cache, names)?;
    if link.file_type().is_symlink() {
        if let Some(target) = link_target(path)? {
            return Ok(format!("link {} {followed}", json_string(&target)));
        }
    }
    Ok(followed)
}

/// A link is followed only where it does not lead into a pseudo-filesystem
/// (`env -> /proc/self/environ` would hash the runner's own environment).
fn refuse_pseudo_target(path: &Path, link: &Metadata) -> Result<(), FingerprintError> {
    if !link.file_type().is_symlink() {
        return Ok(());
    }
    match fs::canonicalize(path) {
        Ok(target) if is_pseudo(&target) => {
            Err(FingerprintError::PseudoFilesystem { path: target })
        }
        _ => Ok(()),
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn fingerprint_followed(
    path: &Path,
    kind: InputKind,
    cache: &StatCache,
    names: ListingNames<'_>,
) -> Result<String, FingerprintError> {
    let Some(meta) = metadata(path, true)? else {
        return Ok("missing".to_owned());
    };
    match kind {
        InputKind::Existence => Ok(type_of(&meta).to_owned()),
        InputKind::Listing if !meta.is_dir() => Ok(type_of(&meta).to_owned()),
        InputKind::Listing => {
            let mut listed = sorted_names(path)?;
            listed.retain(|name| names.covers(name));
            let mut hasher = Sha256::new();
            for (i, name) in listed.iter().enumerate() {
                if i > 0 {
                    hasher.update([0]);
                }
                hasher.update(name_bytes(name));
            }
            Ok(format!("listing:{}", hex(&hasher.finalize())))
        }
        InputKind::Content => {
            let mut walk = Walk {
                cache,
                files: 0,
                bytes: 0,
                root: path,
            };
            walk.content(path, &meta, &HashSet::new())
        }
    }
}

fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>, FingerprintError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        names.push(entry.map_err(io_error(dir))?.file_name());
        if names.len() > MAX_TREE_FILES {
            return Err(FingerprintError::TooLarge {
                path: dir.to_path_buf(),
            });
        }
    }
    names.sort_by(|a, b| name_bytes(a).cmp(&name_bytes(b)));
    Ok(names)
}

#[cfg(unix)]
fn name_bytes(name: &std::ffi::OsStr) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    std::borrow::Cow::Borrowed(name.as_bytes())
}

#[cfg(not(unix))]
fn name_bytes(name: &std::ffi::OsStr) -> std::borrow::Cow<'_, [u8]> {
    std::borrow::Cow::Owned(name.to_string_lossy().into_owned().into_bytes())
}

/// A content digest's walk of a directory tree, bounded in files.
struct Walk<'a> {
    cache: &'a StatCache,
    files: usize,
    bytes: u64,
    root: &'a Path,
}

impl Walk<'_> {
    fn content(
        &mut self,
        path: &Path,
        meta: &Metadata,
        above: &HashSet<String>,
    ) -> Result<String, FingerprintError> {
        self.files += 1;
        self.bytes += if meta.is_file() { meta.len() } else { 0 };
        // A single file input is read whole, whatever its size; a tree is bounded.
        if self.files > MAX_TREE_FILES
            || (meta.is_file() && self.files > 1 && self.bytes > MAX_TREE_BYTES)
        {
            return Err(FingerprintError::TooLarge {
                path: self.root.to_path_buf(),
            });
        }
        if !meta.is_dir() {
            return if meta.is_file() {
                self.cache.digest(path, meta)
            } else {
                Ok(type_of(meta).to_owned())
            };
        }
        // Links are followed, but never back into a directory above (pnpm's
        // node_modules has such cycles), which counts by its link alone.
        let dir_identity = dir_identity(meta);
        if above.contains(&dir_identity) {
            return Ok("cycle".to_owned());
        }
        let mut here = above.clone();
        here.insert(dir_identity);
        let mut hasher = Sha256::new();
        for name in sorted_names(path)? {
            let child = path.join(&name);
            let link = match metadata(&child, false)? {
                Some(meta) if meta.file_type().is_symlink() => {
                    refuse_pseudo_target(&child, &meta)?;
                    link_target(&child)?
                        .map(|target| format!("link {} ", json_string(&target)))
                        .unwrap_or_default()
                }
                _ => String::new(),
            };
            let digest = match metadata(&child, true)? {
                Some(child_meta) => self.content(&child, &child_meta, &here)?,
                None => "missing".to_owned(),
            };
            hasher.update(name_bytes(&name));
            hasher.update([0]);
            hasher.update(link.as_bytes());
            hasher.update(digest.as_bytes());
            hasher.update([0]);
        }
        Ok(format!("tree:{}", hex(&hasher.finalize())))
    }
}

#[cfg(unix)]
fn dir_identity(meta: &Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{}:{}", meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn dir_identity(meta: &Metadata) -> String {
    identity(meta)
}

/// Whether the file at `path` changed at or after `since` (its modification
/// or status-change time): what a run read may not be what a fingerprint
/// taken now sees. Directories are left out: a run that writes its outputs
/// changes the directories it listed, and their listing fingerprints say
/// what they hold.
pub fn changed_since(path: &Path, since: SystemTime) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if meta.is_dir() {
        return false;
    }
    meta.modified().is_ok_and(|t| t >= since) || status_changed(&meta).is_some_and(|t| t >= since)
}

/// When a file's status last changed (its ctime: a write, a rename, a link,
/// a mode change); `None` where the platform keeps none.
pub(crate) fn status_changed(meta: &Metadata) -> Option<SystemTime> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(
            SystemTime::UNIX_EPOCH
                + std::time::Duration::new(
                    u64::try_from(meta.ctime()).unwrap_or(0),
                    u32::try_from(meta.ctime_nsec()).unwrap_or(0),
                ),
        )
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_hashed_once_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        fs::write(&file, "one").unwrap();
        let cache = StatCache::new();
        let first = fingerprint_input(&file, InputKind::Content, &cache).unwrap();
        assert_eq!(first, sha256_hex(b"one"));
        fingerprint_input(&file, InputKind::Content, &cache).unwrap();
        assert_eq!(cache.hashed(), 1);
        fs::write(&file, "two!").unwrap();
        let second = fingerprint_input(&file, InputKind::Content, &cache).unwrap();
        assert_eq!(second, sha256_hex(b"two!"));
        let restored = StatCache::from_json(&cache.to_json());
        assert_eq!(restored.entries().len(), 1);
    }

    #[test]
    fn kinds_see_what_they_should() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("src");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("a.ts"), "a").unwrap();
        let cache = StatCache::new();
        let listing = fingerprint_input(&sub, InputKind::Listing, &cache).unwrap();
        let tree = fingerprint_input(&sub, InputKind::Content, &cache).unwrap();
        assert_eq!(
            fingerprint_input(&sub, InputKind::Existence, &cache).unwrap(),
            "directory"
        );
        fs::write(sub.join("a.ts"), "b").unwrap();
        assert_eq!(
            fingerprint_input(&sub, InputKind::Listing, &cache).unwrap(),
            listing
        );
        assert_ne!(
            fingerprint_input(&sub, InputKind::Content, &cache).unwrap(),
            tree
        );
        fs::write(sub.join("b.ts"), "b").unwrap();
        assert_ne!(
            fingerprint_input(&sub, InputKind::Listing, &cache).unwrap(),
            listing
        );
        assert_eq!(
            fingerprint_input(&dir.path().join("none"), InputKind::Content, &cache).unwrap(),
            "missing"
        );
    }

    #[test]
    fn dot_files_above_a_checkout_count_when_they_configure_a_tool() {
        for name in [
            ".babelrc",
            ".npmrc",
            ".prettierrc.json",
            ".yarnrc.yml",
            ".env",
            ".env.local",
            ".pnp.cjs",
            ".git",
            ".eslintrc.cjs",
            ".config",
        ] {
            assert!(is_resolution_name(name), "{name}");
        }
        for name in [
            ".tmpA1b2C3",
            ".X11-unix",
            ".font-unix",
            ".staging-x1",
            ".cache",
        ] {
            assert!(!is_resolution_name(name), "{name}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let cache = StatCache::new();
        // A FIFO no one writes: opening it for reading would block forever.
        assert_eq!(
            fingerprint_input(&fifo, InputKind::Content, &cache).unwrap(),
            "other"
        );
        assert!(matches!(
            fingerprint_input(Path::new("/proc/self/mem"), InputKind::Content, &cache),
            Err(FingerprintError::PseudoFilesystem { .. })
        ));
        std::os::unix::fs::symlink("/proc/self/environ", dir.path().join("env")).unwrap();
        // Nor through a link: the runner's own environment is no input.
        assert!(matches!(
            fingerprint_input(&dir.path().join("env"), InputKind::Content, &cache),
            Err(FingerprintError::PseudoFilesystem { .. })
        ));
    }
}
