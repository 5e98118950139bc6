//! Placing an entry's outputs in the checkout without ever leaving it: a
//! link in the checkout is never written through nor removed through, each
//! file is written to a fresh temporary name in its own directory and
//! renamed over the old one (a link or a hard-linked file in the checkout is
//! replaced, never written into), and nothing becomes visible until every
//! member of the entry was checked.
//!
//! On Unix every step works on directory handles ([`handles`]): the root is
//! opened once, each directory beneath it is opened from its parent's handle
//! without following a link, and files are created, renamed and removed
//! relative to those handles, so a process that swaps a directory of the
//! checkout for a link while a restore runs cannot redirect it. Elsewhere
//! (Windows) each path is checked on disk and then used by name ([`paths`]).

use super::CacheError;

#[cfg(unix)]
mod handles;
#[cfg(not(unix))]
mod paths;

#[cfg(unix)]
pub use handles::Placer;
#[cfg(not(unix))]
pub use paths::Placer;

fn escape(path: &str, why: &str) -> CacheError {
    CacheError::Unsafe(format!("{path}: {why}"))
}

/// Why an entry cannot go in: `path`, where it has a file, is a directory in
/// the checkout (checked before anything is removed or renamed).
fn directory_in_the_way(path: &str) -> CacheError {
    escape(
        path,
        "a directory in the checkout is where the entry has a file",
    )
}

/// Whether a name in the checkout is a repository's `.git`: emptying leaves
/// it, and any directory holding one, whole (it is no tool's output).
fn is_git(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b".git")
}

/// A fresh name beside `name` in its directory, for staging it.
fn temp_name(name: &str) -> String {
    let mut random = [0u8; 6];
    let _ = getrandom::fill(&mut random);
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!(".{name}.runner-aware-{suffix}")
}

/// The directory part of an output's path ("" for the root) and its name.
fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}
