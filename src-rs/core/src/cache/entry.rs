//! A cache entry's manifest: what it rests on (its key) and what it holds
//! (outputs with their digests, the command's stdout and stderr). An entry's
//! id is the digest of its key, recomputed on every read: an entry cannot
//! claim an id it does not rest on.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::env_fingerprint::EnvFingerprint;
use crate::fingerprint::{sha256_hex, InputKind};

use super::CacheError;

/// The format every manifest names; another is refused.
pub const ENTRY_FORMAT: &str = "runner-aware-entry/1";

/// The longest path an entry may name, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// The largest stdout or stderr an entry may hold, in bytes: a restore
/// keeps both in memory to replay them.
pub const MAX_LOG_BYTES: u64 = 256 << 20;

/// An input an entry rests on and what it was when the run read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRecord {
    /// What a look-up checks.
    pub kind: InputKind,
    /// [`crate::fingerprint::fingerprint_input`]'s answer at store time.
    pub fingerprint: String,
    /// For a listing: the names left out of it (what the task wrote there,
    /// what its tools ignored, the cache's own directory), sorted; each one
    /// path component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub without: Vec<String>,
    /// For a listing above the checkout: the names the task went on to use
    /// there. The listing covers those and the names a tool resolving from
    /// the checkout could pick up ([`crate::fingerprint::is_resolution_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<Vec<String>>,
}

/// Everything an entry's validity rests on; its id is the digest of this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntryKey {
    /// The runner's task key (its command and the options that change what
    /// the command does).
    pub task: String,
    /// Every input: a path relative to the root (`src/main.ts`, or
    /// `../package.json` for a look-up above it), or absolute outside it.
    pub inputs: BTreeMap<String, InputRecord>,
    /// Tracked env and `addValue` values.
    pub env: EnvFingerprint,
    /// Where no complete trace existed: the repository's content before the
    /// run ([`super::repo`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<super::repo::RepoKey>,
}

impl EntryKey {
    /// The entry id: sha256 of the format and the canonical key.
    pub fn id(&self) -> String {
        let canonical = serde_json::to_string(self).unwrap_or_default();
        sha256_hex(format!("{ENTRY_FORMAT}\0{canonical}").as_bytes())
    }

    /// The id without the `addValue` values: two entries with the same
    /// lookup id and other values prove the key misses what the output
    /// depends on.
    pub fn lookup_id(&self) -> String {
        let inputs = serde_json::to_string(&self.inputs).unwrap_or_default();
        let repo = serde_json::to_string(&self.repo).unwrap_or_default();
        sha256_hex(
            format!(
                "{ENTRY_FORMAT}\0lookup\0{}\0{inputs}\0{repo}\0{}",
                self.task,
                self.env.lookup_digest()
            )
            .as_bytes(),
        )
    }
}

/// One output an entry restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum OutputRecord {
    /// A regular file.
    File {
        /// Relative to the root, `/`-separated.
        path: String,
        /// Permission bits (0o644 or 0o755 after masking).
        mode: u32,
        /// Its length.
        size: u64,
        /// sha256 (hex) of its bytes.
        sha256: String,
    },
    /// A symbolic link whose target stays inside the root.
    Symlink {
        /// Relative to the root, `/`-separated.
        path: String,
        /// Relative target, as `readlink` gives it.
        target: String,
    },
    /// A directory (an empty one is restored too).
    Dir {
        /// Relative to the root, `/`-separated.
        path: String,
    },
}

impl OutputRecord {
    /// The output's path relative to the root.
    pub fn path(&self) -> &str {
        match self {
            Self::File { path, .. } | Self::Symlink { path, .. } | Self::Dir { path } => path,
        }
    }
}

/// A blob of an entry (stdout, stderr): its length and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRecord {
    /// Its length.
    pub size: u64,
    /// sha256 (hex) of its bytes.
    pub sha256: String,
}

impl BlobRecord {
    /// The record of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }
}

/// An entry's manifest, the first member of its archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// [`ENTRY_FORMAT`].
    pub format: String,
    /// [`EntryKey::id`] of `key`.
    pub id: String,
    /// What the entry rests on.
    pub key: EntryKey,
    /// What it restores, sorted by path, each directory before what it holds.
    pub outputs: Vec<OutputRecord>,
    /// The command's stdout.
    pub stdout: BlobRecord,
    /// The command's stderr.
    pub stderr: BlobRecord,
    /// When it was stored (ms since the epoch): the newest entry that holds wins.
    pub created_at: u64,
    /// What the runner's user overruled to store it (`describeReason` lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overruled: Vec<String>,
    /// Output directories the recorded run emptied before it wrote (Vite
    /// empties its `outDir`): a restore removes what else they hold, as the
    /// run itself would have. Each is a directory output of this entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emptied: Vec<String>,
}

impl Manifest {
    /// Parses and checks a manifest read from anywhere: its format, its id
    /// recomputed from its key, its env fingerprint's digest, every path it
    /// names, and that it rests on at least one input.
    pub fn parse(bytes: &[u8]) -> Result<Self, CacheError> {
        let manifest: Self = serde_json::from_slice(bytes)
            .map_err(|err| CacheError::Malformed(format!("manifest: {err}")))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The checks of [`Manifest::parse`].
    pub fn check(&self) -> Result<(), CacheError> {
        if self.format != ENTRY_FORMAT {
            return Err(CacheError::Malformed(format!(
                "unknown entry format {:?}",
                self.format
            )));
        }
        if self.key.id() != self.id {
            return Err(CacheError::Malformed(
                "the entry's id is not the digest of what it rests on".into(),
            ));
        }
        self.key
            .env
            .check()
            .map_err(|err| CacheError::Malformed(err.to_string()))?;
        let repo_files = self.key.repo.as_ref().map_or(0, |repo| repo.files.len());
        if self.key.inputs.is_empty() && repo_files == 0 {
            return Err(CacheError::Malformed(
                "the entry rests on no input: it would hold after any change".into(),
            ));
        }
        if let Some(repo) = &self.key.repo {
            for path in repo.files.keys().chain(&repo.exclude) {
                check_input_path(path)?;
            }
        }
        for (path, record) in &self.key.inputs {
            check_input_path(path)?;
            // Only a listing outside the checkout is narrowed to what the task
            // used: inside it, every name counts.
            // An absolute path is `/…`, or on Windows `C:/…` (`portable`'s form).
            let outside = path.starts_with('/')
                || Path::new(path).is_absolute()
                || path == ".."
                || path.starts_with("../");
            if record.only.is_some() && (record.kind != InputKind::Listing || !outside) {
                return Err(malformed_path(
                    path,
                    "narrows a listing that is not one above or outside the checkout",
                ));
            }
            for name in record.without.iter().chain(record.only.iter().flatten()) {
                if record.kind != InputKind::Listing
                    || name.is_empty()
                    || name == "."
                    || name == ".."
                    || name.contains(['/', '\\', '\0'])
                {
                    return Err(malformed_path(
                        path,
                        "leaves out of its listing a name that is no one path component",
                    ));
                }
            }
        }
        for (name, blob) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if blob.size > MAX_LOG_BYTES {
                return Err(CacheError::Malformed(format!(
                    "its {name} of {} bytes is over the {MAX_LOG_BYTES}-byte limit",
                    blob.size
                )));
            }
        }
        let mut previous_emptied: Option<&str> = None;
        for dir in &self.emptied {
            check_output_path(dir)?;
            if previous_emptied.is_some_and(|p| p >= dir.as_str()) {
                return Err(CacheError::Malformed(
                    "emptied directories are not sorted, or one is named twice".into(),
                ));
            }
            previous_emptied = Some(dir);
            let is_dir_output = self
                .outputs
                .iter()
                .any(|output| matches!(output, OutputRecord::Dir { path } if path == dir));
            if !is_dir_output {
                return Err(malformed_path(
                    dir,
                    "is emptied on restore but is no directory the entry restores",
                ));
            }
        }
        let mut previous: Option<&str> = None;
        // The outputs that are no directory: nothing may lie beneath one.
        let mut leaves: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for output in &self.outputs {
            check_output_path(output.path())?;
            if previous.is_some_and(|p| p >= output.path()) {
                return Err(CacheError::Malformed(
                    "outputs are not sorted, or one is named twice".into(),
                ));
            }
            previous = Some(output.path());
            let path = output.path();
            // Each directory above it, by its `/`s: linear in the outputs.
            if path
                .match_indices('/')
                .any(|(at, _)| leaves.contains(&path[..at]))
            {
                return Err(malformed_path(
                    path,
                    "lies beneath an output that is a file or a link",
                ));
            }
            if !matches!(output, OutputRecord::Dir { .. }) {
                leaves.insert(path);
            }
            if let OutputRecord::Symlink { path, target } = output {
                check_link_target(path, target)?;
            }
        }
        Ok(())
    }

    /// The manifest as the bytes stored in the archive.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn malformed_path(path: &str, why: &str) -> CacheError {
    CacheError::Malformed(format!("the path {path:?} {why}"))
}

/// An input path: relative (possibly `../` for a look-up above the root) or
/// absolute, clean, no NUL. Inputs are only looked at, never written.
fn check_input_path(path: &str) -> Result<(), CacheError> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES || path.contains(char::is_control) {
        return Err(malformed_path(path, "is not a valid input path"));
    }
    Ok(())
}

/// An output path must stay inside the root by its name alone: relative,
/// `/`-separated, no empty, `.` or `..` component, no NUL, no backslash, no
/// drive or stream syntax, and never inside `.git`.
pub fn check_output_path(path: &str) -> Result<(), CacheError> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Err(malformed_path(path, "is empty or too long"));
    }
    // A control character would let a name forge lines of a runner's output.
    if path.contains(['\0', '\\'])
        || path.contains(char::is_control)
        || (cfg!(windows) && path.contains(':'))
    {
        return Err(malformed_path(path, "holds a character no output path may"));
    }
    if path.starts_with('/') {
        return Err(malformed_path(path, "is absolute"));
    }
    for component in path.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err(malformed_path(path, "has an empty, `.` or `..` component"));
        }
        if component.len() > 255 {
            return Err(malformed_path(path, "has a component over 255 bytes"));
        }
    }
    // Case-insensitive file systems (macOS, Windows) take `.GIT` for `.git`;
    // a repository checked out inside the checkout has its own.
    if path.split('/').any(is_dot_git) {
        return Err(malformed_path(path, "is inside .git"));
    }
    Ok(())
}

/// Whether a path component names `.git` on some file system: in any case
/// (macOS, Windows), with trailing dots or spaces (Windows drops them), as
/// Windows' 8.3 short name `GIT~1`, or with code points HFS+ ignores.
fn is_dot_git(component: &str) -> bool {
    let ignorable = |c: char| matches!(c, '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}');
    let name: String = component.chars().filter(|&c| !ignorable(c)).collect();
    let name = name.trim_end_matches(['.', ' ']);
    name.eq_ignore_ascii_case(".git") || name.eq_ignore_ascii_case("git~1")
}

/// A link target must be relative and, resolved lexically from the link's
/// directory, stay inside the root. A `..` may only lead the target: after
/// a name, which may itself be a link (`s -> .`), it would climb from
/// wherever that link leads, not where its name says (`s/..` is the root's
/// parent).
pub fn check_link_target(path: &str, target: &str) -> Result<(), CacheError> {
    if target.is_empty()
        || target.starts_with('/')
        || target.contains(['\0', '\\'])
        || (cfg!(windows) && target.contains(':'))
    {
        return Err(malformed_path(
            path,
            "is a link whose target is absolute or malformed",
        ));
    }
    let mut depth: Vec<&str> = path.split('/').collect();
    depth.pop();
    let mut named = false;
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if named {
                    return Err(malformed_path(
                        path,
                        "is a link whose target climbs with `..` after a name",
                    ));
                }
                if depth.pop().is_none() {
                    return Err(malformed_path(
                        path,
                        "is a link that points outside the root",
                    ));
                }
            }
            name if is_dot_git(name) => {
                return Err(malformed_path(path, "is a link into .git"));
            }
            name => {
                named = true;
                depth.push(name);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_stay_inside_by_name() {
        for good in ["dist/a.js", "a", "dist/.vite/manifest.json", "..a/b"] {
            check_output_path(good).unwrap();
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "dist/../../x",
            "a//b",
            "./a",
            "a/.",
            ".git/config",
            ".git",
            "a\\b",
            "a\0b",
            ".GIT/config",
            "a\nb",
            "x\u{1b}[31m",
        ] {
            assert!(check_output_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_targets_stay_inside() {
        check_link_target("dist/a", "b").unwrap();
        check_link_target("dist/a", "../src/b").unwrap();
        for bad in [
            "../../x",
            "/etc",
            "../../../a",
            "",
            "s/..",
            "b/../../x",
            "./b/..",
        ] {
            assert!(check_link_target("dist/a", bad).is_err(), "{bad:?}");
        }
    }
}
