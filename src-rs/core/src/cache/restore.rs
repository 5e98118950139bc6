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

use std::fs::File;
use std::io::Write;
use std::path::Path;

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

/// Writes `bytes` to `file` and flushes it.
pub fn write_all(file: &mut File, bytes: &[u8], path: &Path) -> Result<(), CacheError> {
    file.write_all(bytes)
        .map_err(|err| CacheError::Io(format!("{}: {err}", path.display())))
}
