//! The [`Placer`] where there are no directory handles to work from
//! (Windows): each parent directory is looked at on disk before it is used
//! by name. A process that swaps a directory of the checkout for a link
//! between that look and the write could still redirect it.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::{directory_in_the_way, escape, is_git, split, temp_name};
use crate::cache::CacheError;

/// Outputs staged beside their final place, renamed into it by
/// [`Placer::commit`], removed by dropping the placer uncommitted.
pub struct Placer {
    root: PathBuf,
    staged: Vec<(PathBuf, PathBuf)>,
    created_dirs: Vec<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |err| CacheError::Io(format!("{}: {err}", path.display()))
}

impl Placer {
    /// A placer for outputs under `root`, which must be a directory.
    pub fn new(root: &Path) -> Result<Self, CacheError> {
        let meta = fs::metadata(root).map_err(io(root))?;
        if !meta.is_dir() {
            return Err(CacheError::Io(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        Ok(Self {
            root: root.to_path_buf(),
            staged: Vec::new(),
            created_dirs: Vec::new(),
        })
    }

    /// The directory that holds `rel`, created where missing, every
    /// component checked on disk to be a real directory (not a link).
    fn parent(&mut self, rel: &str) -> Result<(PathBuf, String), CacheError> {
        let (parent, name) = split(rel);
        let mut dir = self.root.clone();
        for component in parent.split('/').filter(|c| !c.is_empty()) {
            dir.push(component);
            self.ensure_dir(&dir, rel)?;
        }
        Ok((dir, name.to_owned()))
    }

    fn ensure_dir(&mut self, dir: &Path, rel: &str) -> Result<(), CacheError> {
        match fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(meta) if meta.file_type().is_symlink() => Err(escape(
                rel,
                &format!(
                    "{} is a link in the checkout: an entry never writes through one",
                    dir.display()
                ),
            )),
            Ok(_) => Err(escape(
                rel,
                &format!("{} is not a directory in the checkout", dir.display()),
            )),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(dir).map_err(io(dir))?;
                self.created_dirs.push(dir.to_path_buf());
                Ok(())
            }
            Err(err) => Err(io(dir)(err)),
        }
    }

    /// A fresh file beside `rel`'s place, for its bytes: created exclusively,
    /// so nothing already there (a link planted under that name) is opened.
    /// The mode is not kept here.
    pub fn file(&mut self, rel: &str, _mode: u32) -> Result<File, CacheError> {
        let (dir, name) = self.parent(rel)?;
        let temp = dir.join(temp_name(&name));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io(&temp))?;
        self.staged.push((temp, dir.join(name)));
        Ok(file)
    }

    /// A link at `rel`'s place pointing at `target` (checked by the manifest).
    pub fn symlink(&mut self, rel: &str, target: &str) -> Result<(), CacheError> {
        let (dir, name) = self.parent(rel)?;
        let temp = dir.join(temp_name(&name));
        make_symlink(target, &temp).map_err(io(&temp))?;
        self.staged.push((temp, dir.join(name)));
        Ok(())
    }

    /// A directory at `rel`, created now if missing; a link or a file in its
    /// place is replaced at commit.
    pub fn dir(&mut self, rel: &str) -> Result<(), CacheError> {
        let (parent, name) = self.parent(rel)?;
        let path = parent.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => {
                // Staged as an empty directory renamed over the link or file.
                let temp = parent.join(temp_name("dir"));
                fs::create_dir(&temp).map_err(io(&temp))?;
                self.staged.push((temp, path));
                Ok(())
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&path).map_err(io(&path))?;
                self.created_dirs.push(path);
                Ok(())
            }
            Err(err) => Err(io(&path)(err)),
        }
    }

    /// Removes from the directory `rel` what the recorded run left out of
    /// it: every entry whose path is not in `keep` (the entry's outputs),
    /// other than what this placer staged there. `rel` is reached through
    /// real directories only (a link on the way is refused, never followed);
    /// a directory that is not there holds nothing to remove. A directory
    /// beneath is removed whole, without following a link inside it.
    pub fn empty(&mut self, rel: &str, keep: &BTreeSet<&str>) -> Result<(), CacheError> {
        let mut dir = self.root.clone();
        for component in rel.split('/') {
            dir.push(component);
            match fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(escape(
                        rel,
                        &format!(
                            "{} is no directory in the checkout: nothing is removed through it",
                            dir.display()
                        ),
                    ))
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(err) => return Err(io(&dir)(err)),
            }
        }
        let staged: HashSet<&Path> = self.staged.iter().map(|(temp, _)| temp.as_path()).collect();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let name = entry.file_name();
            if staged.contains(path.as_path())
                || keep.contains(format!("{rel}/{}", name.to_string_lossy()).as_str())
            {
                continue;
            }
            let is_dir = fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir());
            // A repository inside the checkout is no tool's output: left whole.
            if is_git(name.as_encoded_bytes()) || (is_dir && holds_repository(&path)) {
                continue;
            }
            let removed = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                remove_link_or_file(&path)
            };
            removed.map_err(io(&path))?;
        }
        Ok(())
    }

    /// Checks that every staged output can go in (no directory in the
    /// checkout where the entry has a file), before anything is removed or
    /// renamed.
    pub fn check_places(&mut self) -> Result<(), CacheError> {
        for (temp, path) in &self.staged {
            if let Ok(meta) = fs::symlink_metadata(path) {
                let staged_dir = fs::symlink_metadata(temp).is_ok_and(|m| m.is_dir());
                if meta.is_dir() && !staged_dir {
                    return Err(directory_in_the_way(&path.display().to_string()));
                }
            }
        }
        Ok(())
    }

    /// Renames every staged output into place: a link or file there is
    /// replaced, never followed. Every place is checked before anything is
    /// renamed, so an output that cannot go in leaves the checkout as it was
    /// (its staged files removed when the placer drops).
    pub fn commit(mut self) -> Result<(), CacheError> {
        self.check_places()?;
        // Popped from the end, renamed in the order they were staged.
        self.staged.reverse();
        while let Some((temp, path)) = self.staged.pop() {
            if let Ok(meta) = fs::symlink_metadata(&path) {
                // rename() replaces a file or a link; a link to a directory or
                // a file in the way of a staged directory must go first.
                let staged_dir = fs::symlink_metadata(&temp).is_ok_and(|m| m.is_dir());
                if meta.file_type().is_symlink() || (!meta.is_dir() && staged_dir) {
                    if let Err(err) = remove_link_or_file(&path) {
                        self.staged.push((temp, path.clone()));
                        return Err(io(&path)(err));
                    }
                }
            }
            if let Err(err) = fs::rename(&temp, &path) {
                self.staged.push((temp, path.clone()));
                return Err(io(&path)(err));
            }
        }
        // What it made is the checkout's now: nothing is left to undo.
        self.created_dirs.clear();
        Ok(())
    }
}

impl Drop for Placer {
    /// Undoes an uncommitted restore: removes what is still staged and the
    /// directories it made (those left empty).
    fn drop(&mut self) {
        for (temp, _) in &self.staged {
            let _ = if fs::symlink_metadata(temp).is_ok_and(|m| m.is_dir()) {
                fs::remove_dir(temp)
            } else {
                fs::remove_file(temp)
            };
        }
        for dir in self.created_dirs.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Whether a `.git` lies anywhere beneath `dir` (links not followed).
fn holds_repository(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            is_git(entry.file_name().as_encoded_bytes())
                || (entry.file_type().is_ok_and(|t| t.is_dir()) && holds_repository(&entry.path()))
        })
    })
}

/// A link to a directory is a directory entry to `remove_dir` on Windows.
fn remove_link_or_file(path: &Path) -> io::Result<()> {
    fs::remove_file(path).or_else(|_| fs::remove_dir(path))
}

#[cfg(windows)]
fn make_symlink(target: &str, path: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target.replace('/', "\\"), path)
}
