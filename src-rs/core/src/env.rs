//! Env queries and the runner's env table they are answered from.

#[cfg(feature = "server")]
mod matcher;
mod syntax;

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

#[cfg(feature = "server")]
pub use matcher::{EnvMatcher, EnvTable};
pub use syntax::check_glob;

/// A query over env names: a glob (`VITE_*`) or a literal prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum EnvQuery {
    /// Names matching a glob: `*` any run of characters, `?` one, `[…]` a class.
    Glob(String),
    /// Names starting with this literal string (`*` in it is not special).
    Prefix(String),
}

impl fmt::Display for EnvQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Glob(glob) => f.write_str(glob),
            Self::Prefix(prefix) => write!(f, "{prefix} (prefix)"),
        }
    }
}

/// Longest env glob accepted, in bytes. Env names are short; a longer glob
/// is a bug, and compiling a huge one can exhaust the matcher's limits.
pub const MAX_GLOB_LEN: usize = 4096;

/// An env query that is not valid.
#[derive(Debug, thiserror::Error)]
#[error("invalid env glob {}: {reason}", shown(.glob))]
pub struct InvalidGlob {
    glob: String,
    reason: String,
}

/// The glob as an error shows it: a long one cut short.
fn shown(glob: &str) -> String {
    if glob.len() <= 64 {
        format!("{glob:?}")
    } else {
        let cut = (0..=64)
            .rev()
            .find(|&i| glob.is_char_boundary(i))
            .unwrap_or(0);
        format!("{:?}…", &glob[..cut])
    }
}

impl InvalidGlob {
    fn new(glob: &str, reason: impl Into<String>) -> Self {
        Self {
            glob: glob.to_owned(),
            reason: reason.into(),
        }
    }

    /// What is wrong with the glob, without the glob itself.
    pub fn reason(&self) -> String {
        self.reason.clone()
    }
}

/// How env names compare: byte for byte on Unix; ignoring case on Windows,
/// where `Path` and `PATH` name one variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameCase {
    /// Names are equal when their bytes are (Unix).
    Exact,
    /// Names are equal when their [`NameCase::fold`]s are (Windows).
    Insensitive,
}

impl NameCase {
    /// This platform's rule.
    pub const NATIVE: Self = if cfg!(windows) {
        Self::Insensitive
    } else {
        Self::Exact
    };

    /// The form a name is compared in: the name itself, or, ignoring case,
    /// its upper case as Windows' own table makes it: each UTF-16 unit that
    /// has a one-character upper case is replaced by it (`path` → `PATH`),
    /// anything else is kept (`ß` stays `ß`, never `SS`).
    pub fn fold(self, name: &str) -> Cow<'_, str> {
        match self {
            Self::Exact => Cow::Borrowed(name),
            Self::Insensitive if name.chars().all(|c| upcase(c) == c) => Cow::Borrowed(name),
            Self::Insensitive => Cow::Owned(name.chars().map(upcase).collect()),
        }
    }
}

/// One character's upper case where Windows has one: a single character in
/// the Basic Multilingual Plane (Windows upcases UTF-16 units one by one, so
/// nothing outside it changes).
fn upcase(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) if u32::from(c) <= 0xFFFF && u32::from(u) <= 0xFFFF => u,
        _ => c,
    }
}

/// Names a runner serves but never tracks by default: shell bookkeeping that
/// differs between two otherwise identical runs.
pub const DEFAULT_UNTRACKED_ENV: &[&str] = &[
    "_",
    "COLUMNS",
    "LINES",
    "OLDPWD",
    "PWD",
    "SHLVL",
    "TERM_SESSION_ID",
    "WINDOWID",
    "RUNNER_AWARE_*",
    "VP_RUN_NODE_CLIENT_PATH",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_windows_upper_case() {
        let fold = |name| NameCase::Insensitive.fold(name).into_owned();
        assert_eq!(fold("Path"), "PATH");
        assert_eq!(fold("SystemRoot"), "SYSTEMROOT");
        assert_eq!(fold("vite_x-1.2"), "VITE_X-1.2");
        assert_eq!(fold("é"), "É");
        // No one-to-many mappings, and nothing outside the BMP changes.
        assert_eq!(fold("straße"), "STRAßE");
        assert_eq!(fold("\u{10428}"), "\u{10428}");
        assert!(matches!(
            NameCase::Insensitive.fold("PATH"),
            Cow::Borrowed(_)
        ));
        assert_eq!(NameCase::Exact.fold("Path"), "Path");
    }
}
