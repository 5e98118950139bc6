//! The [`Placer`] on Unix, where every step works on directory handles.
//!
//! The root is opened once: links in the checkout's own path (a workspace
//! reached through a link, `/tmp` on macOS) are resolved then, as the place
//! the checkout is. Beneath it, each directory is opened from its parent's
//! handle with `O_NOFOLLOW | O_DIRECTORY`, so a name that is a link or no
//! directory when it is opened refuses the entry instead of being followed,
//! and every file is created (`O_CREAT | O_EXCL | O_NOFOLLOW`), renamed in,
//! linked and removed relative to the handle of its directory. Once a handle
//! is open, swapping its name for a link changes nothing for the restore: it
//! writes into and removes from the directory it opened, wherever that is
//! moved. Emptying lists and removes through handles too, never by path.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{self as at, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{directory_in_the_way, escape, is_git, split, temp_name};
use crate::cache::CacheError;

/// How many directory handles a placer keeps open; past that they are closed
/// and reopened (through real directories only, like the first time) when
/// needed, so a tree of thousands of directories stays under the process's
/// descriptor limit.
const MAX_OPEN_DIRS: usize = 256;

/// The mode a restore makes directories with (the umask narrows it).
const DIR_MODE: Mode = Mode::RWXU.union(Mode::RWXG).union(Mode::RWXO);

/// Outputs staged beside their final place, renamed into it by
/// [`Placer::commit`], removed by dropping the placer uncommitted.
pub struct Placer {
    root: PathBuf,
    root_dir: Arc<OwnedFd>,
    /// Handles of directories beneath the root, by path relative to it.
    open: HashMap<String, Arc<OwnedFd>>,
    staged: Vec<Staged>,
    /// Directories this placer made, as (parent, name), to remove if it
    /// drops uncommitted.
    created: Vec<(String, String)>,
}

/// An output written under a temporary name in the directory of its place.
struct Staged {
    /// The directory that holds both names, relative to the root.
    dir: String,
    temp: String,
    name: String,
    is_dir: bool,
}

impl Staged {
    fn path(&self) -> String {
        join(&self.dir, &self.name)
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens the directory `name` in `parent`, never through a link.
fn open_dir(parent: &OwnedFd, name: impl rustix::path::Arg) -> Result<OwnedFd, Errno> {
    at::openat(parent, name, dir_flags(), Mode::empty())
}

fn is_dir(parent: &OwnedFd, name: impl rustix::path::Arg) -> Result<bool, Errno> {
    at::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
        .map(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Directory)
}

/// The names in the directory `dir`, but `.` and `..`.
fn names(dir: &OwnedFd) -> Result<Vec<CString>, Errno> {
    let mut names = Vec::new();
    for entry in at::Dir::read_from(dir)? {
        let name = entry?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

fn lossy(name: &CStr) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(name.to_bytes())
}

impl Placer {
    /// A placer for outputs under `root`, which must be a directory.
    pub fn new(root: &Path) -> Result<Self, CacheError> {
        let root_dir = at::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| match err {
            Errno::NOTDIR => CacheError::Io(format!("{} is not a directory", root.display())),
            err => CacheError::Io(format!("{}: {err}", root.display())),
        })?;
        Ok(Self {
            root: root.to_path_buf(),
            root_dir: Arc::new(root_dir),
            open: HashMap::new(),
            staged: Vec::new(),
            created: Vec::new(),
        })
    }

    fn io(&self, rel: &str, err: Errno) -> CacheError {
        CacheError::Io(format!("{}: {err}", self.root.join(rel).display()))
    }

    /// Why the directory `rel` did not open on the way to `output`.
    fn refusal(&self, output: &str, rel: &str, err: Errno) -> CacheError {
        let path = self.root.join(rel);
        match err {
            // FreeBSD says EMLINK where others say ELOOP.
            Errno::LOOP | Errno::MLINK => escape(
                output,
                &format!(
                    "{} is a link in the checkout: an entry never writes or removes through one",
                    path.display()
                ),
            ),
            Errno::NOTDIR => escape(
                output,
                &format!("{} is not a directory in the checkout", path.display()),
            ),
            err => self.io(rel, err),
        }
    }

    /// The handle of the directory `rel` ("" is the root), each component
    /// opened from its parent's handle without following a link. Missing
    /// directories are made when `create` (and removed if the placer drops
    /// uncommitted); otherwise a missing one is `None`.
    fn walk(
        &mut self,
        rel: &str,
        create: bool,
        output: &str,
    ) -> Result<Option<Arc<OwnedFd>>, CacheError> {
        if rel.is_empty() {
            return Ok(Some(self.root_dir.clone()));
        }
        if let Some(dir) = self.open.get(rel) {
            return Ok(Some(dir.clone()));
        }
        let (parent_rel, name) = split(rel);
        let Some(parent) = self.walk(parent_rel, create, output)? else {
            return Ok(None);
        };
        let dir = match open_dir(&parent, name) {
            Ok(dir) => dir,
            Err(Errno::NOENT) if create => {
                match at::mkdirat(&*parent, name, DIR_MODE) {
                    Ok(()) => self.created.push((parent_rel.to_owned(), name.to_owned())),
                    // Made meanwhile by someone else: opened as it is below.
                    Err(Errno::EXIST) => {}
                    Err(err) => return Err(self.io(rel, err)),
                }
                open_dir(&parent, name).map_err(|err| self.refusal(output, rel, err))?
            }
            Err(Errno::NOENT) => return Ok(None),
            Err(err) => return Err(self.refusal(output, rel, err)),
        };
        if self.open.len() >= MAX_OPEN_DIRS {
            self.open.clear();
        }
        let dir = Arc::new(dir);
        self.open.insert(rel.to_owned(), dir.clone());
        Ok(Some(dir))
    }

    /// The directory `rel`, made where missing.
    fn make_dir(&mut self, rel: &str, output: &str) -> Result<Arc<OwnedFd>, CacheError> {
        self.walk(rel, true, output)?
            .ok_or_else(|| self.io(rel, Errno::NOENT))
    }

    /// The directory `dir` an output waits in, as it is now.
    fn staged_dir(&mut self, dir: &str, output: &str) -> Result<Arc<OwnedFd>, CacheError> {
        self.walk(dir, false, output)?
            .ok_or_else(|| self.io(dir, Errno::NOENT))
    }

    /// Records `temp`, made in the directory `dir`, to be renamed to `name`
    /// there at commit (or removed if the placer drops uncommitted).
    fn stage(&mut self, dir: &str, temp: String, name: &str, is_dir: bool) {
        self.staged.push(Staged {
            dir: dir.to_owned(),
            temp,
            name: name.to_owned(),
            is_dir,
        });
    }

    /// A fresh file beside `rel`'s place, for its bytes, with `mode` (group
    /// and others never get write): created exclusively and without
    /// following a link, so nothing already there is opened.
    pub fn file(&mut self, rel: &str, mode: u32) -> Result<File, CacheError> {
        let (dir_rel, name) = split(rel);
        let dir = self.make_dir(dir_rel, rel)?;
        let temp = temp_name(name);
        let file = at::openat(
            &*dir,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|err| self.io(&join(dir_rel, &temp), err))?;
        self.stage(dir_rel, temp.clone(), name, false);
        at::fchmod(&file, Mode::from_bits_truncate((mode & 0o755) as _))
            .map_err(|err| self.io(&join(dir_rel, &temp), err))?;
        Ok(File::from(file))
    }

    /// A link at `rel`'s place pointing at `target` (checked by the manifest).
    pub fn symlink(&mut self, rel: &str, target: &str) -> Result<(), CacheError> {
        let (dir_rel, name) = split(rel);
        let dir = self.make_dir(dir_rel, rel)?;
        let temp = temp_name(name);
        at::symlinkat(target, &*dir, temp.as_str())
            .map_err(|err| self.io(&join(dir_rel, &temp), err))?;
        self.stage(dir_rel, temp, name, false);
        Ok(())
    }

    /// A directory at `rel`, created now if missing; a link or a file in its
    /// place is replaced at commit.
    pub fn dir(&mut self, rel: &str) -> Result<(), CacheError> {
        let (parent_rel, name) = split(rel);
        let parent = self.make_dir(parent_rel, rel)?;
        match is_dir(&parent, name) {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Staged as an empty directory renamed over the link or file.
                let temp = temp_name("dir");
                at::mkdirat(&*parent, temp.as_str(), DIR_MODE)
                    .map_err(|err| self.io(&join(parent_rel, &temp), err))?;
                self.stage(parent_rel, temp, name, true);
                Ok(())
            }
            Err(Errno::NOENT) => {
                at::mkdirat(&*parent, name, DIR_MODE).map_err(|err| self.io(rel, err))?;
                self.created.push((parent_rel.to_owned(), name.to_owned()));
                Ok(())
            }
            Err(err) => Err(self.io(rel, err)),
        }
    }

    /// Removes from the directory `rel` what the recorded run left out of
    /// it: every entry whose path is not in `keep` (the entry's outputs),
    /// other than what this placer staged there. `rel` is reached through
    /// real directories only (a link on the way is refused, never followed);
    /// a directory that is not there holds nothing to remove. A directory
    /// beneath is removed whole, through handles, never following a link.
    pub fn empty(&mut self, rel: &str, keep: &BTreeSet<&str>) -> Result<(), CacheError> {
        let Some(dir) = self.walk(rel, false, rel)? else {
            return Ok(());
        };
        let staged: HashSet<&[u8]> = self
            .staged
            .iter()
            .filter(|staged| staged.dir == rel)
            .map(|staged| staged.temp.as_bytes())
            .collect();
        for name in names(&dir).map_err(|err| self.io(rel, err))? {
            let path = join(rel, &lossy(&name));
            if staged.contains(name.to_bytes()) || keep.contains(path.as_str()) {
                continue;
            }
            // A repository inside the checkout is no tool's output: left whole.
            if is_git(name.to_bytes()) {
                continue;
            }
            match is_dir(&dir, name.as_c_str()) {
                Ok(true) => {
                    let sub = open_dir(&dir, name.as_c_str())
                        .map_err(|err| self.refusal(rel, &path, err))?;
                    if holds_repository(&sub) {
                        continue;
                    }
                    remove_contents(&sub, &self.root.join(&path))?;
                    at::unlinkat(&*dir, name.as_c_str(), AtFlags::REMOVEDIR)
                }
                Ok(false) => at::unlinkat(&*dir, name.as_c_str(), AtFlags::empty()),
                // Gone meanwhile: nothing left to remove.
                Err(Errno::NOENT) => Ok(()),
                Err(err) => Err(err),
            }
            .map_err(|err| self.io(&path, err))?;
        }
        Ok(())
    }

    /// Checks that every staged output can go in (no directory in the
    /// checkout where the entry has a file), before anything is removed or
    /// renamed.
    pub fn check_places(&mut self) -> Result<(), CacheError> {
        for index in 0..self.staged.len() {
            let (dir, output) = (self.staged[index].dir.clone(), self.staged[index].path());
            let dir = self.staged_dir(&dir, &output)?;
            let staged = &self.staged[index];
            if !staged.is_dir && is_dir(&dir, staged.name.as_str()).unwrap_or(false) {
                return Err(directory_in_the_way(
                    &self.root.join(staged.path()).display().to_string(),
                ));
            }
        }
        Ok(())
    }

    /// Renames one staged output over its place, in the directory handle
    /// it was staged in: a link there is removed (never followed), and so is
    /// a file in the way of a staged directory.
    fn place(&mut self, staged: &Staged) -> Result<(), CacheError> {
        let path = staged.path();
        let dir = self.staged_dir(&staged.dir, &path)?;
        if let Ok(stat) = at::statat(&*dir, staged.name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            let kind = FileType::from_raw_mode(stat.st_mode);
            if kind == FileType::Symlink || (kind != FileType::Directory && staged.is_dir) {
                at::unlinkat(&*dir, staged.name.as_str(), AtFlags::empty())
                    .map_err(|err| self.io(&path, err))?;
            }
        }
        at::renameat(&*dir, staged.temp.as_str(), &*dir, staged.name.as_str())
            .map_err(|err| self.io(&path, err))
    }

    /// Renames every staged output into place: a link or file there is
    /// replaced, never followed. Every place is checked before anything is
    /// renamed, so an output that cannot go in leaves the checkout as it was
    /// (its staged files removed when the placer drops).
    pub fn commit(mut self) -> Result<(), CacheError> {
        self.check_places()?;
        // Popped from the end, renamed in the order they were staged.
        self.staged.reverse();
        while let Some(staged) = self.staged.pop() {
            if let Err(err) = self.place(&staged) {
                self.staged.push(staged);
                return Err(err);
            }
        }
        // What it made is the checkout's now: nothing is left to undo.
        self.created.clear();
        Ok(())
    }
}

impl Drop for Placer {
    /// Undoes an uncommitted restore: removes what is still staged and the
    /// directories it made (those left empty).
    fn drop(&mut self) {
        for staged in std::mem::take(&mut self.staged) {
            if let Ok(dir) = self.staged_dir(&staged.dir, &staged.path()) {
                let flags = if staged.is_dir {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                let _ = at::unlinkat(&*dir, staged.temp.as_str(), flags);
            }
        }
        for (parent, name) in std::mem::take(&mut self.created).into_iter().rev() {
            if let Ok(Some(dir)) = self.walk(&parent, false, &parent) {
                let _ = at::unlinkat(&*dir, name.as_str(), AtFlags::REMOVEDIR);
            }
        }
    }
}

/// Whether a `.git` lies anywhere beneath the directory `dir` (links not
/// followed).
fn holds_repository(dir: &OwnedFd) -> bool {
    names(dir).is_ok_and(|names| {
        names.iter().any(|name| {
            is_git(name.to_bytes())
                || (is_dir(dir, name.as_c_str()).unwrap_or(false)
                    && open_dir(dir, name.as_c_str()).is_ok_and(|sub| holds_repository(&sub)))
        })
    })
}

/// Removes everything in the directory `dir` (at `path`, for messages),
/// through handles: a directory beneath is opened without following a link
/// and emptied before it is removed; a link is removed, never followed.
fn remove_contents(dir: &OwnedFd, path: &Path) -> Result<(), CacheError> {
    let io = |name: &CStr, err: Errno| {
        CacheError::Io(format!(
            "{}: {err}",
            path.join(OsStr::from_bytes(name.to_bytes())).display()
        ))
    };
    let listed = names(dir).map_err(|err| CacheError::Io(format!("{}: {err}", path.display())))?;
    for name in listed {
        match is_dir(dir, name.as_c_str()) {
            Ok(true) => {
                let sub = open_dir(dir, name.as_c_str()).map_err(|err| io(&name, err))?;
                remove_contents(&sub, &path.join(OsStr::from_bytes(name.to_bytes())))?;
                at::unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR)
            }
            Ok(false) => at::unlinkat(dir, name.as_c_str(), AtFlags::empty()),
            Err(Errno::NOENT) => Ok(()),
            Err(err) => Err(err),
        }
        .map_err(|err| io(&name, err))?;
    }
    Ok(())
}
