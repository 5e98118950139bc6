//! The git index read in process, for the entries `git ls-files -s` lists: a
//! process that prints every entry through a pipe costs several times the
//! reading of the file. Only what git writes for an ordinary SHA-1
//! repository is read here (index versions 2 to 4, its checksum verified);
//! anything else (a split or sparse index, another object format, a git dir
//! or index named by the environment, a file that fails a check) is `None`,
//! and the caller asks git.

use std::fs;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::fingerprint::hex;

/// The length of a SHA-1 object id, and of the index's trailing checksum.
const OID_BYTES: usize = 20;

/// An entry's fixed part before its flags: stat data, mode and object id.
const STAT_BYTES: usize = 40;

/// The variables that point git at another git dir, work tree or index.
const GIT_LOCATION_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_INDEX_FILE",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
];

/// What git keeps of a file when it adds it to the index, to tell later
/// whether the file may have changed without reading it: its times, inode,
/// mode, owner and size, each cut to 32 bits as git stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Compared on Unix only: elsewhere git decides what changed.
#[cfg_attr(not(unix), allow(dead_code))]
pub(super) struct Stat {
    pub ctime: (u32, u32),
    pub mtime: (u32, u32),
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

/// The index of a work tree.
#[cfg_attr(not(unix), allow(dead_code))]
pub(super) struct Index {
    /// Every entry in the index's order: its path and `git:<object id>`, as
    /// `git ls-files -s -z` would list them.
    pub entries: Vec<(String, String)>,
    /// Each entry's stat data, in the same order.
    pub stats: Vec<Stat>,
    /// Whether every entry is a file or link whose stat data and object id
    /// describe it: no submodule, no conflict, no intent-to-add. An entry git
    /// is told to trust or skip (assume-unchanged, skip-worktree) is plain:
    /// `git status` would not look at its file, and the caller does.
    pub plain: bool,
    /// When the index was written: an entry whose file was modified at or
    /// after it may have changed within the same clock tick ("racily
    /// clean", as git calls it), and only its content tells.
    pub written: Option<std::time::SystemTime>,
    /// The names that are not UTF-8, by their entry's position: `entries`
    /// holds them lossily, which names no file.
    pub raw_names: std::collections::HashMap<usize, Vec<u8>>,
    /// The paths git is told to trust or skip (assume-unchanged,
    /// skip-worktree), whose files `git status` never looks at.
    pub trusted: Vec<String>,
}

/// The index of the work tree whose top is `top`.
pub(super) fn read(top: &Path) -> Option<Index> {
    if GIT_LOCATION_VARS
        .iter()
        .any(|name| std::env::var_os(name).is_some())
    {
        return None;
    }
    let path = git_dir(top)?.join("index");
    let mut file = fs::File::open(&path).ok()?;
    let written = file.metadata().ok()?.modified().ok();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).ok()?;
    let mut index = parse(&bytes)?;
    index.written = written;
    Some(index)
}

/// The git dir of the work tree at `top`: `.git` itself, or where the
/// `gitdir:` line of a linked work tree's or submodule's `.git` file points.
fn git_dir(top: &Path) -> Option<PathBuf> {
    let dot_git = top.join(".git");
    if fs::metadata(&dot_git).ok()?.is_dir() {
        return Some(dot_git);
    }
    let text = fs::read_to_string(&dot_git).ok()?;
    let dir = text.strip_prefix("gitdir: ")?.trim_end();
    Some(top.join(dir))
}

/// An entry's fingerprint: `git:<object id>`, and its mode where it is not
/// a plain file's. Git stores a link's target as a blob, the same blob as a
/// file holding those bytes, and an executable's bytes as a plain file's.
pub(super) fn fingerprint(mode: u32, oid: &str) -> String {
    if mode == 0o100644 {
        format!("git:{oid}")
    } else {
        format!("git:{oid} {mode:o}")
    }
}

/// The entries of an index file, or `None` where it is not one this reader
/// follows git on.
fn parse(bytes: &[u8]) -> Option<Index> {
    let (body, checksum) = bytes.split_at(bytes.len().checked_sub(OID_BYTES)?);
    // Git checks it too; an index of another object format fails it.
    if Sha1::digest(body).as_slice() != checksum {
        return None;
    }
    let mut reader = Reader { bytes: body, at: 0 };
    if reader.take(4)? != b"DIRC" {
        return None;
    }
    let version = reader.u32()?;
    if !(2..=4).contains(&version) {
        return None;
    }
    let count = usize::try_from(reader.u32()?).ok()?;
    let capacity = count.min(body.len() / (STAT_BYTES + OID_BYTES));
    let mut entries = Vec::with_capacity(capacity);
    let mut stats = Vec::with_capacity(capacity);
    let mut plain = true;
    let mut name: Vec<u8> = Vec::new();
    let mut raw_names = std::collections::HashMap::new();
    let mut trusted = Vec::new();
    for _ in 0..count {
        let start = reader.at;
        let stat = reader.take(STAT_BYTES)?;
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(stat.get(at..at + 4)?.try_into().ok()?))
        };
        let mode = word(24)?;
        // A sparse index's directory entry stands for files git would list.
        if mode & 0o170000 == 0o040000 {
            return None;
        }
        stats.push(Stat {
            ctime: (word(0)?, word(4)?),
            mtime: (word(8)?, word(12)?),
            ino: word(20)?,
            mode,
            uid: word(28)?,
            gid: word(32)?,
            size: word(36)?,
        });
        let oid = reader.take(OID_BYTES)?;
        let flags = reader.u16()?;
        // A conflict's stage. Assume-unchanged is no reason to ask git: its
        // status would trust the entry, where the stat data here is compared.
        if flags & 0x3000 != 0 {
            plain = false;
        }
        let mut trusts = flags & 0x8000 != 0;
        // A submodule: a commit, not a file.
        if mode & 0o170000 != 0o100000 && mode & 0o170000 != 0o120000 {
            plain = false;
        }
        if flags & 0x4000 != 0 {
            // Extended flags (skip-worktree, intent-to-add): version 3 and later.
            if version < 3 {
                return None;
            }
            // Intent-to-add: the empty blob's id stands for bytes never added.
            // Skip-worktree, like assume-unchanged, is git's to trust, not ours.
            let extended = reader.u16()?;
            if extended & !0x4000 != 0 {
                plain = false;
            }
            trusts |= extended & 0x4000 != 0;
        }
        let header = reader.at - start;
        if version == 4 {
            // The name is the previous one less its last `strip` bytes, plus
            // what follows.
            let strip = reader.varint()?;
            name.truncate(name.len().checked_sub(strip)?);
            name.extend_from_slice(reader.until_nul()?);
        } else {
            name.clear();
            name.extend_from_slice(reader.until_nul()?);
            // NULs pad the entry to a multiple of eight bytes.
            reader.at = start + ((header + name.len() + 8) & !7);
        }
        let length = usize::from(flags & 0xfff);
        if length != name.len().min(0xfff) || name.is_empty() {
            return None;
        }
        if std::str::from_utf8(&name).is_err() {
            raw_names.insert(entries.len(), name.clone());
        }
        if trusts {
            trusted.push(String::from_utf8_lossy(&name).into_owned());
        }
        entries.push((
            String::from_utf8_lossy(&name).into_owned(),
            fingerprint(mode, &hex(oid)),
        ));
    }
    if reader.at > body.len() {
        return None;
    }
    // Extensions: optional ones (an upper-case signature) are caches git can
    // do without; a split index (`link`), a sparse one (`sdir`) or any other
    // required extension means the entries above are not all there is.
    while reader.at < body.len() {
        let signature = reader.take(4)?;
        let size = usize::try_from(reader.u32()?).ok()?;
        reader.take(size)?;
        if !signature[0].is_ascii_uppercase() {
            return None;
        }
    }
    Some(Index {
        entries,
        stats,
        plain,
        written: None,
        raw_names,
        trusted,
    })
}

/// A cursor over an index file's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(count)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// The bytes up to the next NUL, which is consumed.
    fn until_nul(&mut self) -> Option<&'a [u8]> {
        let rest = self.bytes.get(self.at..)?;
        let length = rest.iter().position(|&b| b == 0)?;
        self.at += length + 1;
        Some(&rest[..length])
    }

    /// Git's variable-length offset (index version 4).
    fn varint(&mut self) -> Option<usize> {
        let mut byte = self.take(1)?[0];
        let mut value = usize::from(byte & 0x7f);
        while byte & 0x80 != 0 {
            byte = self.take(1)?[0];
            if value >= 1 << 40 {
                return None;
            }
            value = ((value + 1) << 7) | usize::from(byte & 0x7f);
        }
        Some(value)
    }
}

// The tests run git beside the reader: where it runs (not under Wine).
#[cfg(all(test, unix))]
mod tests {
    use std::process::Command;

    use super::*;

    fn entries(top: &Path) -> Option<Vec<(String, String)>> {
        read(top).map(|index| index.entries)
    }

    fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.email=ci@example.com", "-c", "user.name=ci"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(output.status.success(), "git {args:?}: {output:?}");
        output.stdout
    }

    /// What `git ls-files -s -z` lists: every path and its object id.
    fn listed(dir: &Path) -> Vec<(String, String)> {
        let output = git(dir, &["ls-files", "-s", "-z"]);
        output
            .split(|&b| b == 0)
            .filter_map(|record| {
                let record = String::from_utf8_lossy(record);
                let (meta, path) = record.split_once('\t')?;
                let mut fields = meta.split(' ');
                let mode = u32::from_str_radix(fields.next()?, 8).ok()?;
                Some((path.to_owned(), fingerprint(mode, fields.next()?)))
            })
            .collect()
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A repository with nested, long, odd and unmerged paths.
    fn repository() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        git(top, &["init", "-q"]);
        for i in 0..50 {
            write(top, &format!("src/d{}/f{i}.js", i % 7), &format!("{i}\n"));
        }
        write(top, "with space.txt", "s\n");
        write(top, "ünï/cödé.txt", "u\n");
        write(top, "conflict.txt", "base\n");
        git(top, &["add", "-A"]);
        git(top, &["commit", "-q", "-m", "base"]);
        git(top, &["checkout", "-q", "-b", "other"]);
        write(top, "conflict.txt", "other\n");
        git(top, &["commit", "-q", "-am", "other"]);
        git(top, &["checkout", "-q", "-"]);
        write(top, "conflict.txt", "mine\n");
        git(top, &["commit", "-q", "-am", "mine"]);
        let merge = Command::new("git")
            .arg("-C")
            .arg(top)
            .args(["-c", "user.email=ci@example.com", "-c", "user.name=ci"])
            .args(["merge", "-q", "other"])
            .output()
            .unwrap();
        assert!(!merge.status.success(), "the merge conflicts");
        dir
    }

    #[test]
    fn every_index_version_reads_as_git_lists_it() {
        let dir = repository();
        let top = dir.path();
        // A name longer than an entry's 12-bit length field holds, which no
        // file system here takes as a path: an entry of the index alone.
        write(top, "blob.txt", "d\n");
        let oid = String::from_utf8(git(top, &["hash-object", "-w", "blob.txt"])).unwrap();
        let deep = format!("{}/deep.txt", ["segment"; 600].join("/"));
        let cacheinfo = format!("100644,{},{deep}", oid.trim());
        git(top, &["update-index", "--add", "--cacheinfo", &cacheinfo]);
        let expected = listed(top);
        assert!(
            expected
                .iter()
                .filter(|(path, _)| path == "conflict.txt")
                .count()
                == 3
        );
        assert!(expected.iter().any(|(path, _)| path.len() > 0xfff));
        for version in ["2", "3", "4"] {
            git(top, &["update-index", "--index-version", version]);
            assert_eq!(
                entries(top).as_ref(),
                Some(&expected),
                "index version {version}"
            );
        }
        // Intent-to-add sets extended flags (version 3).
        write(top, "later.txt", "l\n");
        git(top, &["update-index", "--index-version", "2"]);
        git(top, &["add", "-N", "later.txt"]);
        assert_eq!(entries(top), Some(listed(top)));
    }

    #[test]
    fn a_linked_work_tree_reads_its_own_index() {
        let dir = repository();
        let top = dir.path();
        git(top, &["merge", "--abort"]);
        let linked = top.join("linked");
        git(top, &["worktree", "add", "-q", linked.to_str().unwrap()]);
        write(&linked, "only-here.txt", "o\n");
        git(&linked, &["add", "only-here.txt"]);
        let linked_entries = entries(&linked).unwrap();
        assert_eq!(linked_entries, listed(&linked));
        assert!(linked_entries
            .iter()
            .any(|(path, _)| path == "only-here.txt"));
        assert!(!entries(top)
            .unwrap()
            .iter()
            .any(|(path, _)| path == "only-here.txt"));
    }

    #[test]
    fn what_this_reader_does_not_follow_is_left_to_git() {
        let dir = repository();
        let top = dir.path();
        git(top, &["merge", "--abort"]);
        git(top, &["update-index", "--split-index"]);
        assert_eq!(entries(top), None, "a split index");
        git(top, &["update-index", "--no-split-index"]);
        assert_eq!(entries(top), Some(listed(top)));
        git(
            top,
            &[
                "sparse-checkout",
                "set",
                "--cone",
                "--sparse-index",
                "src/d0",
            ],
        );
        assert_eq!(entries(top), None, "a sparse index");
        git(top, &["sparse-checkout", "disable"]);

        let sha256 = tempfile::tempdir().unwrap();
        git(sha256.path(), &["init", "-q", "--object-format=sha256"]);
        write(sha256.path(), "a.txt", "a\n");
        git(sha256.path(), &["add", "a.txt"]);
        assert_eq!(entries(sha256.path()), None, "another object format");

        let mut corrupt = fs::read(top.join(".git/index")).unwrap();
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 1;
        assert_eq!(
            parse(&corrupt).map(|index| index.entries),
            None,
            "a checksum that does not match"
        );
        assert_eq!(parse(b"").map(|index| index.entries), None);
    }
}
