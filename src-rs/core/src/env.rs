//! Env queries and the runner's env table they are answered from.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

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

fn env_glob(pattern: &str) -> Result<Glob, InvalidGlob> {
    if pattern.len() > MAX_GLOB_LEN {
        return Err(InvalidGlob::new(
            pattern,
            format!(
                "glob of {} bytes exceeds the {MAX_GLOB_LEN}-byte limit",
                pattern.len()
            ),
        ));
    }
    // Env names have no path separators: `*` must match any character.
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|source| InvalidGlob::new(pattern, source.kind().to_string()))
}

/// Runs a glob compilation that the glob library may panic in (it does on
/// some pathological patterns): the panic becomes an invalid glob, never an
/// abort of the runner's or the tool's process.
fn compile_guarded<T>(pattern: &str, compile: impl FnOnce() -> T) -> Result<T, InvalidGlob> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(compile))
        .map_err(|_| InvalidGlob::new(pattern, "the glob is too complex to compile"))
}

/// A compiled [`EnvQuery`].
#[derive(Debug, Clone)]
pub enum EnvMatcher {
    /// A compiled glob.
    Glob(GlobMatcher),
    /// A literal prefix.
    Prefix(String),
}

impl EnvMatcher {
    /// Compiles `query`.
    pub fn new(query: &EnvQuery) -> Result<Self, InvalidGlob> {
        Ok(match query {
            EnvQuery::Glob(glob) => {
                let compiled = env_glob(glob)?;
                Self::Glob(compile_guarded(glob, || compiled.compile_matcher())?)
            }
            EnvQuery::Prefix(prefix) => Self::Prefix(prefix.clone()),
        })
    }

    /// Whether `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        match self {
            Self::Glob(glob) => glob.is_match(name),
            Self::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
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

/// The env a server answers from: the runner's map plus the untracked names.
#[derive(Debug)]
pub struct EnvTable {
    vars: HashMap<String, String>,
    untracked: Arc<GlobSet>,
    untracked_patterns: Vec<String>,
}

impl EnvTable {
    /// A table over `vars` in which names matching any of `untracked` are
    /// served but never tracked.
    pub fn new(vars: HashMap<String, String>, untracked: Vec<String>) -> Result<Self, InvalidGlob> {
        Ok(Self {
            vars,
            untracked: untracked_set(&untracked)?,
            untracked_patterns: untracked,
        })
    }

    /// The value of `name`, if the runner has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Every variable matching `matcher`.
    pub fn matching(&self, matcher: &EnvMatcher) -> BTreeMap<String, String> {
        self.vars
            .iter()
            .filter(|(name, _)| matcher.is_match(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }

    /// Whether `name` is one the runner declared never tracked.
    pub fn is_untracked(&self, name: &str) -> bool {
        self.untracked.is_match(name)
    }

    /// The untracked patterns, as given.
    pub fn untracked_patterns(&self) -> &[String] {
        &self.untracked_patterns
    }
}

/// The compiled set for `patterns`, shared with the previous server when its
/// list was the same (a runner passes one list to every server): compiling a
/// `GlobSet` was a seventh of a server's start and stop.
fn untracked_set(patterns: &[String]) -> Result<Arc<GlobSet>, InvalidGlob> {
    static LAST: Mutex<Option<(Vec<String>, Arc<GlobSet>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((cached, set)) = &*last {
        if cached.as_slice() == patterns {
            return Ok(Arc::clone(set));
        }
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(env_glob(pattern)?);
    }
    let joined = patterns.join(",");
    let set = compile_guarded(&joined, || builder.build())?
        .map_err(|source| InvalidGlob::new(&joined, source.kind().to_string()))?;
    let set = Arc::new(set);
    *last = Some((patterns.to_vec(), Arc::clone(&set)));
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(query: EnvQuery) -> EnvMatcher {
        EnvMatcher::new(&query).unwrap()
    }

    #[test]
    fn glob_matches_any_characters() {
        let glob = matcher(EnvQuery::Glob("VITE_*".into()));
        assert!(glob.is_match("VITE_API"));
        assert!(glob.is_match("VITE_A/B"));
        assert!(glob.is_match("VITE_"));
        assert!(!glob.is_match("XVITE_API"));
        assert!(!glob.is_match("vite_api"), "env names are case-sensitive");
    }

    #[test]
    fn prefix_is_literal() {
        let prefix = matcher(EnvQuery::Prefix("A*".into()));
        assert!(prefix.is_match("A*B"));
        assert!(!prefix.is_match("AB"));
        let glob = matcher(EnvQuery::Glob("A*".into()));
        assert!(glob.is_match("AB"));
    }

    #[test]
    fn a_huge_or_pathological_glob_is_an_error_not_a_panic() {
        let long = "*a".repeat(100_000);
        let err = EnvMatcher::new(&EnvQuery::Glob(long)).unwrap_err();
        assert_eq!(
            err.reason(),
            "glob of 200000 bytes exceeds the 4096-byte limit"
        );
        assert!(err
            .to_string()
            .ends_with("…: glob of 200000 bytes exceeds the 4096-byte limit"));
        // Under the cap, but enough for the glob library to give up.
        let dense = "*a".repeat(MAX_GLOB_LEN / 2);
        match EnvMatcher::new(&EnvQuery::Glob(dense)) {
            Ok(matcher) => assert!(!matcher.is_match("b")),
            Err(err) => assert_eq!(err.reason(), "the glob is too complex to compile"),
        }
        let names: Vec<String> = (0..50_000).map(|i| format!("N{i}")).collect();
        let set = format!("{{{}}}", names.join(","));
        assert!(EnvMatcher::new(&EnvQuery::Glob(set.clone())).is_err());
        assert!(EnvTable::new(HashMap::new(), vec![set]).is_err());
    }

    #[test]
    fn invalid_glob_is_an_error() {
        let err = EnvMatcher::new(&EnvQuery::Glob("[".into())).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid env glob \"[\""),
            "{err}"
        );
    }

    #[test]
    fn table_serves_untracked_names() {
        let vars = HashMap::from([
            ("PWD".to_owned(), "/x".to_owned()),
            ("NODE_ENV".to_owned(), "production".to_owned()),
        ]);
        let table = EnvTable::new(vars, vec!["PWD".into(), "RUNNER_AWARE_*".into()]).unwrap();
        assert_eq!(table.get("PWD"), Some("/x"));
        assert!(table.is_untracked("PWD"));
        assert!(table.is_untracked("RUNNER_AWARE_TOKEN"));
        assert!(!table.is_untracked("NODE_ENV"));
        let all = table.matching(&matcher(EnvQuery::Glob("*".into())));
        assert_eq!(all.len(), 2);
    }
}
