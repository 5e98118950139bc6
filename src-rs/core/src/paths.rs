//! Path rules shared by the client (which makes paths absolute) and the server
//! (which only accepts absolute, clean paths).

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

/// A reported path the server will not record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty.
    #[error("path is empty")]
    Empty,
    /// The path has a NUL byte, which no file system accepts.
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    /// The path is relative; clients resolve paths before sending them.
    #[error("path {0:?} is not absolute")]
    Relative(String),
}

/// Makes `path` absolute against the directory `cwd` returns (asked only for
/// a relative path) and removes `.` and `..` components lexically (symlinks
/// are not resolved: the tool's view of the path is kept).
pub fn absolutize(path: &str, cwd: impl FnOnce() -> PathBuf) -> Cow<'_, Path> {
    let path = Path::new(path);
    if path.is_absolute() {
        clean(path)
    } else {
        Cow::Owned(clean(&cwd().join(path)).into_owned())
    }
}

/// Removes `.` and `..` components and trailing separators lexically.
/// Reported paths almost always are clean already: those are borrowed, not
/// rebuilt.
pub fn clean(path: &Path) -> Cow<'_, Path> {
    if is_clean_absolute(path) {
        return Cow::Borrowed(path);
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                // `..` at the root stays at the root.
                if !matches!(
                    out.components().next_back(),
                    None | Some(Component::RootDir | Component::Prefix(_))
                ) {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    Cow::Owned(out)
}

/// Whether [`clean`] would return `path` as it is: absolute, with no empty,
/// `.` or `..` component and no trailing separator; checking is far cheaper
/// than rebuilding.
fn is_clean_absolute(path: &Path) -> bool {
    // Other platforms' roots and separators take the general path.
    if !cfg!(unix) {
        return false;
    }
    match path.to_str().and_then(|p| p.strip_prefix('/')) {
        Some("") => true,
        Some(rest) => rest
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".."),
        None => false,
    }
}

/// Checks a path received from a peer and returns its clean form (the same
/// string when it is clean already).
pub fn validate_reported(path: String) -> Result<String, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains('\0') {
        return Err(PathError::Nul(path));
    }
    if !Path::new(&path).is_absolute() {
        return Err(PathError::Relative(path));
    }
    Ok(match clean(Path::new(&path)) {
        Cow::Borrowed(_) => path,
        Cow::Owned(cleaned) => cleaned.to_string_lossy().into_owned(),
    })
}

/// Whether `path` is `dir` or lies beneath it, compared component by component
/// (`/a/dist` covers `/a/dist/x` but not `/a/dist2/x`).
pub fn is_within(path: &Path, dir: &Path) -> bool {
    clean(path).starts_with(clean(dir))
}

/// A Unix-style absolute path written as this platform's, for tests: `/a/b`
/// stays as it is on Unix and is `C:\a\b` on Windows, where a path is only
/// absolute with a drive or a share.
#[cfg(test)]
pub(crate) fn native(path: &str) -> String {
    if cfg!(windows) {
        format!("C:{}", path.replace('/', "\\"))
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_a_clean_absolute_path_without_rebuilding_it() {
        for path in [
            "/", "/a", "/a/b.c", "/a/.b", "/a/..b", "/a/b..", "//a", "/a//b", "/a/", "/a/.",
            "/a/./b", "/a/../b", "/..", "a/b", "", "./a",
        ] {
            let rebuilt = clean(Path::new(path));
            let unchanged = Path::new(path).is_absolute() && rebuilt.as_os_str() == path;
            assert_eq!(is_clean_absolute(Path::new(path)), unchanged, "{path:?}");
        }
    }

    #[test]
    fn absolutizes_against_cwd() {
        let cwd = || PathBuf::from(native("/home/dev/app"));
        let expect = |path: &str| PathBuf::from(native(path));
        assert_eq!(absolutize("dist", cwd), expect("/home/dev/app/dist"));
        assert_eq!(absolutize("./dist/", cwd), expect("/home/dev/app/dist"));
        assert_eq!(absolutize("../lib/x", cwd), expect("/home/dev/lib/x"));
        assert_eq!(absolutize(&native("/abs/./p/../q"), cwd), expect("/abs/q"));
        assert_eq!(absolutize(&native("/../.."), cwd), expect("/"));
    }

    #[test]
    fn validates_reported_paths() {
        let validate = |path: &str| validate_reported(path.to_owned());
        assert_eq!(validate(&native("/a/b/../c/")).unwrap(), native("/a/c"));
        assert_eq!(validate(""), Err(PathError::Empty));
        assert!(matches!(validate(&native("/a\0b")), Err(PathError::Nul(_))));
        assert!(matches!(validate("rel"), Err(PathError::Relative(_))));
    }

    #[cfg(windows)]
    #[test]
    fn a_windows_path_needs_a_drive_or_share_to_be_absolute() {
        let validate = |path: &str| validate_reported(path.to_owned());
        assert!(matches!(validate("/a/b"), Err(PathError::Relative(_))));
        assert_eq!(validate("C:/a/./b").unwrap(), "C:\\a\\b");
        assert_eq!(
            validate(r"\\server\share\x\..\y").unwrap(),
            r"\\server\share\y"
        );
    }

    #[test]
    fn within_is_component_wise() {
        let path = |p: &str| PathBuf::from(native(p));
        let dist = path("/p/dist");
        assert!(is_within(&path("/p/dist"), &dist));
        assert!(is_within(&path("/p/dist/a/b"), &dist));
        assert!(is_within(&path("/p/dist/"), &path("/p/dist/")));
        assert!(!is_within(&path("/p/dist2/a"), &dist));
        assert!(!is_within(&path("/p/distribution.txt"), &dist));
        assert!(is_within(&path("/p/x/../dist/a"), &dist));
    }
}
