//! Placing an entry's outputs in the checkout without ever leaving it: every
//! parent directory is looked at on disk (a link there is never written
//! through), each file is written to a fresh temporary name in its own
//! directory and renamed over the old one (a link or a hard-linked file in
//! the checkout is replaced, never written into), and nothing becomes
//! visible until every member of the entry was checked.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::CacheError;

/// Outputs staged beside their final place, renamed into it by
/// [`Placer::commit`], removed by dropping the placer uncommitted.
pub struct Placer {
    root: PathBuf,
    staged: Vec<(PathBuf, PathBuf)>,
    created_dirs: Vec<PathBuf>,
    committed: bool,
}

fn escape(path: &str, why: &str) -> CacheError {
    CacheError::Unsafe(format!("{path}: {why}"))
}

fn io(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |err| CacheError::Io(format!("{}: {err}", path.display()))
}

fn temp_name(dir: &Path, name: &str) -> PathBuf {
    let mut random = [0u8; 6];
    let _ = getrandom::fill(&mut random);
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!(".{name}.runner-aware-{suffix}"))
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
            committed: false,
        })
    }

    /// The directory that holds `rel`, created where missing, every
    /// component checked on disk to be a real directory (not a link).
    fn parent(&mut self, rel: &str) -> Result<(PathBuf, String), CacheError> {
        let mut components: Vec<&str> = rel.split('/').collect();
        let name = components.pop().unwrap_or_default().to_owned();
        let mut dir = self.root.clone();
        for component in components {
            dir.push(component);
            self.ensure_dir(&dir, rel)?;
        }
        Ok((dir, name))
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
    pub fn file(&mut self, rel: &str) -> Result<(File, PathBuf), CacheError> {
        let (dir, name) = self.parent(rel)?;
        let temp = temp_name(&dir, &name);
        let file = create_new(&temp).map_err(io(&temp))?;
        self.staged.push((temp.clone(), dir.join(name)));
        Ok((file, temp))
    }

    /// Sets the mode of a staged file (group and others never get write).
    pub fn set_mode(&self, temp: &Path, mode: u32) -> Result<(), CacheError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(temp, fs::Permissions::from_mode(mode & 0o755))
                .map_err(io(temp))?;
        }
        #[cfg(not(unix))]
        let _ = (temp, mode);
        Ok(())
    }

    /// A link at `rel`'s place pointing at `target` (checked by the manifest).
    pub fn symlink(&mut self, rel: &str, target: &str) -> Result<(), CacheError> {
        let (dir, name) = self.parent(rel)?;
        let temp = temp_name(&dir, &name);
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
                let temp = temp_name(&parent, "dir");
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
    pub fn empty(
        &mut self,
        rel: &str,
        keep: &std::collections::BTreeSet<&str>,
    ) -> Result<(), CacheError> {
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
        let staged: std::collections::HashSet<&Path> =
            self.staged.iter().map(|(temp, _)| temp.as_path()).collect();
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
            if name.eq_ignore_ascii_case(".git") || (is_dir && holds_repository(&path)) {
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
    pub fn check_places(&self) -> Result<(), CacheError> {
        for (temp, path) in &self.staged {
            if let Ok(meta) = fs::symlink_metadata(path) {
                let staged_dir = fs::symlink_metadata(temp).is_ok_and(|m| m.is_dir());
                if meta.is_dir() && !staged_dir {
                    return Err(escape(
                        &path.display().to_string(),
                        "a directory in the checkout is where the entry has a file",
                    ));
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
        self.committed = true;
        Ok(())
    }
}

impl Drop for Placer {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
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
            entry.file_name().eq_ignore_ascii_case(".git")
                || (entry.file_type().is_ok_and(|t| t.is_dir()) && holds_repository(&entry.path()))
        })
    })
}

fn remove_link_or_file(path: &Path) -> io::Result<()> {
    fs::remove_file(path).or_else(|err| {
        // A link to a directory is a directory entry to remove_dir on Windows.
        if cfg!(windows) {
            fs::remove_dir(path)
        } else {
            Err(err)
        }
    })
}

#[cfg(unix)]
fn create_new(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(not(unix))]
fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn make_symlink(target: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(windows)]
fn make_symlink(target: &str, path: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target.replace('/', "\\"), path)
}

/// Writes `bytes` to `file` and flushes it.
pub fn write_all(file: &mut File, bytes: &[u8], path: &Path) -> Result<(), CacheError> {
    file.write_all(bytes).map_err(io(path))
}
