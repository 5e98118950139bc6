//! What keeps the runner's private directory private (Unix).
//!
//! The directory is born with mode 0700 (the mode is passed to `mkdir`, so
//! no umask can widen it, and there is no window in which it is open to
//! others), and the FIFOs in it are born 0600. Before the runner relies on
//! one of them it checks it: the kind of file it expects (never a symbolic
//! link), owned by this process's effective user, and nothing for group or
//! others. Another local user who could reach the directory could otherwise
//! bind the socket's name or plant FIFOs, receive the tools' token and
//! answer `getEnv` in the runner's place.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// What a checked path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The private directory: permission bits exactly 0700.
    Dir,
    /// A FIFO in it: no bits for group or others.
    Fifo,
    /// The listening socket in it: no bits for group or others.
    Socket,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Dir => "directory",
            Self::Fifo => "FIFO",
            Self::Socket => "socket",
        }
    }
}

/// Why `meta`, which should describe a `kind` of this user's, is not
/// private; `None` when it is.
pub(crate) fn flaw(meta: &Metadata, kind: Kind) -> Option<String> {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        return Some("it is a symbolic link".to_owned());
    }
    let right_kind = match kind {
        Kind::Dir => file_type.is_dir(),
        Kind::Fifo => file_type.is_fifo(),
        Kind::Socket => file_type.is_socket(),
    };
    if !right_kind {
        return Some(format!("it is not a {}", kind.name()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        return Some(format!(
            "it is owned by uid {}, not by this process's uid {euid}",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o777;
    match kind {
        // The set-group-id bit a parent directory may pass on does not open
        // the directory to anyone; the permission bits must be 0700.
        Kind::Dir if mode != 0o700 => Some(format!("its mode is {mode:03o}, not 700")),
        Kind::Fifo | Kind::Socket if mode & 0o077 != 0 => Some(format!(
            "its mode is {mode:03o}: group or others may open it"
        )),
        _ => None,
    }
}

fn not_private(path: &Path, kind: Kind, flaw: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "the {} {} is not private to this user: {flaw}",
            kind.name(),
            path.display()
        ),
    )
}

/// Checks the `kind` at `path` without following a link.
pub(crate) fn check_path(path: &Path, kind: Kind) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    match flaw(&meta, kind) {
        Some(flaw) => Err(not_private(path, kind, &flaw)),
        None => Ok(()),
    }
}

/// Checks `file`, opened from `path` (with `O_NOFOLLOW`), is a `kind` of
/// this user's.
pub(crate) fn check_file(file: &File, path: &Path, kind: Kind) -> io::Result<()> {
    match flaw(&file.metadata()?, kind) {
        Some(flaw) => Err(not_private(path, kind, &flaw)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// Gives `path` (not following a link) to the user `nobody`.
    fn give_away(path: &Path) {
        std::os::unix::fs::lchown(path, Some(65534), Some(65534)).unwrap();
    }

    #[test]
    fn a_directory_must_be_ours_0700_and_no_link() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        check_path(&dir, Kind::Dir).unwrap();
        for mode in [0o777, 0o770, 0o750, 0o701, 0o500] {
            chmod(&dir, mode);
            let err = check_path(&dir, Kind::Dir).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{mode:o}");
            assert!(err.to_string().contains("not 700"), "{err}");
        }
        chmod(&dir, 0o700);
        let link = scratch.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let err = check_path(&link, Kind::Dir).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let file = scratch.path().join("file");
        std::fs::write(&file, "").unwrap();
        chmod(&file, 0o700);
        assert!(check_path(&file, Kind::Dir).is_err());
        if is_root() {
            give_away(&dir);
            let err = check_path(&dir, Kind::Dir).unwrap_err();
            assert!(err.to_string().contains("owned by uid 65534"), "{err}");
        }
    }

    #[test]
    fn a_fifo_must_be_ours_and_closed_to_group_and_others() {
        let scratch = tempfile::tempdir().unwrap();
        let fifo = scratch.path().join("f");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        check_path(&fifo, Kind::Fifo).unwrap();
        assert!(check_path(&fifo, Kind::Socket).is_err());
        for mode in [0o666, 0o620, 0o604] {
            chmod(&fifo, mode);
            let err = check_path(&fifo, Kind::Fifo).unwrap_err();
            assert!(err.to_string().contains("group or others"), "{err}");
        }
        chmod(&fifo, 0o600);
        if is_root() {
            give_away(&fifo);
            assert!(check_path(&fifo, Kind::Fifo).is_err());
        }
    }
}
