//! Path rules shared by the client (which makes paths absolute) and the server
//! (which only accepts absolute, clean paths).

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

/// Makes `path` absolute against `cwd` and removes `.` and `..` components
/// lexically (symlinks are not resolved: the tool's view of the path is kept).
pub fn absolutize(path: &str, cwd: &Path) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        clean(path)
    } else {
        clean(&cwd.join(path))
    }
}

/// Removes `.` and `..` components and trailing separators lexically.
pub fn clean(path: &Path) -> PathBuf {
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
    out
}

/// Whether [`clean`] would return `path` as it is: absolute, with no empty,
/// `.` or `..` component and no trailing separator. Reported paths almost
/// always are, and checking is far cheaper than rebuilding them.
pub fn is_clean_absolute(path: &str) -> bool {
    // Other platforms' roots and separators take the general path.
    if !cfg!(unix) {
        return false;
    }
    match path.strip_prefix('/') {
        Some("") => true,
        Some(rest) => rest
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".."),
        None => false,
    }
}

/// Checks a path received from a peer and returns its clean form.
pub fn validate_reported(path: &str) -> Result<String, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains('\0') {
        return Err(PathError::Nul(path.to_owned()));
    }
    let as_path = Path::new(path);
    if !as_path.is_absolute() {
        return Err(PathError::Relative(path.to_owned()));
    }
    if is_clean_absolute(path) {
        return Ok(path.to_owned());
    }
    Ok(clean(as_path).to_string_lossy().into_owned())
}

/// Whether `path` is `dir` or lies beneath it, compared component by component
/// (`/a/dist` covers `/a/dist/x` but not `/a/dist2/x`).
pub fn is_within(path: &Path, dir: &Path) -> bool {
    clean(path).starts_with(clean(dir))
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
            assert_eq!(is_clean_absolute(path), unchanged, "{path:?}");
        }
    }

    #[test]
    fn absolutizes_against_cwd() {
        let cwd = Path::new("/home/dev/app");
        assert_eq!(absolutize("dist", cwd), Path::new("/home/dev/app/dist"));
        assert_eq!(absolutize("./dist/", cwd), Path::new("/home/dev/app/dist"));
        assert_eq!(absolutize("../lib/x", cwd), Path::new("/home/dev/lib/x"));
        assert_eq!(absolutize("/abs/./p/../q", cwd), Path::new("/abs/q"));
        assert_eq!(absolutize("/../..", cwd), Path::new("/"));
    }

    #[test]
    fn validates_reported_paths() {
        assert_eq!(validate_reported("/a/b/../c/").unwrap(), "/a/c");
        assert_eq!(validate_reported(""), Err(PathError::Empty));
        assert!(matches!(validate_reported("/a\0b"), Err(PathError::Nul(_))));
        assert!(matches!(
            validate_reported("rel"),
            Err(PathError::Relative(_))
        ));
    }

    #[test]
    fn within_is_component_wise() {
        let dist = Path::new("/p/dist");
        assert!(is_within(Path::new("/p/dist"), dist));
        assert!(is_within(Path::new("/p/dist/a/b"), dist));
        assert!(is_within(Path::new("/p/dist/"), Path::new("/p/dist/")));
        assert!(!is_within(Path::new("/p/dist2/a"), dist));
        assert!(!is_within(Path::new("/p/distribution.txt"), dist));
        assert!(is_within(Path::new("/p/x/../dist/a"), dist));
    }
}
