//! The runner's side of env queries: globs compiled with globset, and the
//! table a server answers them from.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

use super::{EnvQuery, InvalidGlob, NameCase, MAX_GLOB_LEN};

/// The glob the runner compiles for `pattern`.
pub(super) fn env_glob(pattern: &str, case: NameCase) -> Result<Glob, InvalidGlob> {
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
    GlobBuilder::new(&unix_parse(pattern))
        .literal_separator(false)
        .backslash_escape(true)
        .case_insensitive(case == NameCase::Insensitive)
        .build()
        .map_err(|source| InvalidGlob::new(pattern, source.kind().to_string()))
}

/// `pattern` as globset reads it on Unix. On Windows globset takes a `\`
/// right before or after `**` for a path separator even with escapes on
/// (`**\x` is `**/x` there, and `**\` no dangling escape); there a run of
/// stars beside a backslash becomes one star, which is the same glob for a
/// name (`**` is two `*` where no separator is literal).
fn unix_parse(pattern: &str) -> Cow<'_, str> {
    if !cfg!(windows) || !pattern.contains("**") {
        return Cow::Borrowed(pattern);
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len());
    // Whether the last thing read is an escaped backslash (`\\`).
    let mut after_backslash = false;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                out.push('\\');
                after_backslash = chars.get(i + 1) == Some(&'\\');
                out.extend(chars.get(i + 1));
                i += 2;
            }
            '*' => {
                let run = chars[i..].iter().take_while(|&&c| c == '*').count();
                let beside = after_backslash || chars.get(i + run) == Some(&'\\');
                let stars = if run >= 2 && beside { 1 } else { run };
                out.extend(std::iter::repeat_n('*', stars));
                after_backslash = false;
                i += run;
            }
            c => {
                out.push(c);
                after_backslash = false;
                i += 1;
            }
        }
    }
    Cow::Owned(out)
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
pub struct EnvMatcher {
    rule: MatchRule,
    case: NameCase,
}

#[derive(Debug, Clone)]
enum MatchRule {
    Glob(GlobMatcher),
    /// The prefix, folded by the matcher's [`NameCase`].
    Prefix(String),
}

impl EnvMatcher {
    /// Compiles `query` for this platform's names ([`NameCase::NATIVE`]).
    pub fn new(query: &EnvQuery) -> Result<Self, InvalidGlob> {
        Self::with_case(query, NameCase::NATIVE)
    }

    /// Compiles `query` for names compared by `case`.
    pub fn with_case(query: &EnvQuery, case: NameCase) -> Result<Self, InvalidGlob> {
        let rule = match query {
            EnvQuery::Glob(glob) => {
                let compiled = env_glob(glob, case)?;
                MatchRule::Glob(compile_guarded(glob, || compiled.compile_matcher())?)
            }
            EnvQuery::Prefix(prefix) => MatchRule::Prefix(case.fold(prefix).into_owned()),
        };
        Ok(Self { rule, case })
    }

    /// Whether `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        match &self.rule {
            MatchRule::Glob(glob) => glob.is_match(name),
            MatchRule::Prefix(prefix) => self.case.fold(name).starts_with(prefix.as_str()),
        }
    }
}

/// The env a server answers from: the runner's map plus the untracked names.
#[derive(Debug)]
pub struct EnvTable {
    vars: HashMap<String, String>,
    case: NameCase,
    /// Ignoring case: each folded name and the spelling the runner's map has
    /// (of two spellings of one name, the one that sorts first).
    spellings: HashMap<String, String>,
    untracked: Arc<GlobSet>,
    untracked_patterns: Vec<String>,
}

impl EnvTable {
    /// A table over `vars` in which names matching any of `untracked` are
    /// served but never tracked; names compare by this platform's rule
    /// ([`NameCase::NATIVE`]).
    pub fn new(vars: HashMap<String, String>, untracked: Vec<String>) -> Result<Self, InvalidGlob> {
        Self::with_case(vars, untracked, NameCase::NATIVE)
    }

    /// [`EnvTable::new`] with names compared by `case`.
    pub fn with_case(
        vars: HashMap<String, String>,
        untracked: Vec<String>,
        case: NameCase,
    ) -> Result<Self, InvalidGlob> {
        let mut spellings: HashMap<String, String> = HashMap::new();
        if case == NameCase::Insensitive {
            for name in vars.keys() {
                let folded = case.fold(name).into_owned();
                match spellings.get_mut(&folded) {
                    Some(kept) if *kept <= *name => {}
                    Some(kept) => name.clone_into(kept),
                    None => {
                        spellings.insert(folded, name.clone());
                    }
                }
            }
        }
        Ok(Self {
            vars,
            case,
            spellings,
            untracked: untracked_set(&untracked, case)?,
            untracked_patterns: untracked,
        })
    }

    /// The value of `name`, if the runner has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        match self.case {
            NameCase::Exact => self.vars.get(name),
            NameCase::Insensitive => self
                .spellings
                .get(self.case.fold(name).as_ref())
                .and_then(|spelling| self.vars.get(spelling)),
        }
        .map(String::as_str)
    }

    /// The one spelling under which `name` is recorded: the runner's, when
    /// its map has the name in any case; otherwise the folded name, so that
    /// `Foo` and `FOO` asked for and absent are one record.
    pub fn spelling<'a>(&'a self, name: &'a str) -> Cow<'a, str> {
        match self.case {
            NameCase::Exact => Cow::Borrowed(name),
            NameCase::Insensitive => {
                let folded = self.case.fold(name);
                match self.spellings.get(folded.as_ref()) {
                    Some(spelling) => Cow::Borrowed(spelling),
                    None => folded,
                }
            }
        }
    }

    /// Every variable matching `matcher`, under the runner's spellings.
    pub fn matching(&self, matcher: &EnvMatcher) -> BTreeMap<String, String> {
        let names: Box<dyn Iterator<Item = &String>> = match self.case {
            NameCase::Exact => Box::new(self.vars.keys()),
            NameCase::Insensitive => Box::new(self.spellings.values()),
        };
        names
            .filter(|name| matcher.is_match(name))
            .filter_map(|name| Some((name.clone(), self.vars.get(name)?.clone())))
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
fn untracked_set(patterns: &[String], case: NameCase) -> Result<Arc<GlobSet>, InvalidGlob> {
    type Compiled = (Vec<String>, NameCase, Arc<GlobSet>);
    static LAST: Mutex<Option<Compiled>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((cached, cached_case, set)) = &*last {
        if cached.as_slice() == patterns && *cached_case == case {
            return Ok(Arc::clone(set));
        }
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(env_glob(pattern, case)?);
    }
    let joined = patterns.join(",");
    let set = compile_guarded(&joined, || builder.build())?
        .map_err(|source| InvalidGlob::new(&joined, source.kind().to_string()))?;
    let set = Arc::new(set);
    *last = Some((patterns.to_vec(), case, Arc::clone(&set)));
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(query: EnvQuery) -> EnvMatcher {
        EnvMatcher::with_case(&query, NameCase::Exact).unwrap()
    }

    fn insensitive(query: EnvQuery) -> EnvMatcher {
        EnvMatcher::with_case(&query, NameCase::Insensitive).unwrap()
    }

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_native_rule_is_the_platforms() {
        let expected = if cfg!(windows) {
            NameCase::Insensitive
        } else {
            NameCase::Exact
        };
        assert_eq!(NameCase::NATIVE, expected);
        let table = EnvTable::new(vars(&[("Path", "p")]), Vec::new()).unwrap();
        assert_eq!(table.get("PATH").is_some(), cfg!(windows));
        assert_eq!(
            EnvMatcher::new(&EnvQuery::Glob("PA*".into()))
                .unwrap()
                .is_match("Path"),
            cfg!(windows)
        );
    }

    #[test]
    fn ignoring_case_a_name_is_found_in_any_spelling_and_recorded_in_one() {
        let table = EnvTable::with_case(
            vars(&[("Path", "C:\\bin"), ("SystemRoot", "C:\\Windows")]),
            Vec::new(),
            NameCase::Insensitive,
        )
        .unwrap();
        for asked in ["PATH", "Path", "path"] {
            assert_eq!(table.get(asked), Some("C:\\bin"));
            assert_eq!(table.spelling(asked), "Path", "the runner's spelling");
        }
        assert_eq!(table.get("SYSTEMROOT"), Some("C:\\Windows"));
        assert_eq!(table.get("NOPE"), None);
        // Absent in every spelling: recorded once, folded.
        assert_eq!(table.spelling("Nope"), "NOPE");
        assert_eq!(table.spelling("nope"), "NOPE");
    }

    #[test]
    fn ignoring_case_two_spellings_in_the_runners_map_are_one_variable() {
        let table = EnvTable::with_case(
            vars(&[("Path", "b"), ("PATH", "a"), ("path", "c")]),
            Vec::new(),
            NameCase::Insensitive,
        )
        .unwrap();
        // The spelling that sorts first wins, whatever order the map has.
        assert_eq!(table.get("path"), Some("a"));
        assert_eq!(table.spelling("path"), "PATH");
        let all = table.matching(&insensitive(EnvQuery::Glob("*".into())));
        assert_eq!(all, BTreeMap::from([("PATH".to_owned(), "a".to_owned())]));
    }

    #[test]
    fn ignoring_case_globs_and_prefixes_match_any_spelling() {
        let table = EnvTable::with_case(
            vars(&[
                ("Vite_A", "1"),
                ("VITE_B", "2"),
                ("vitest", "3"),
                ("NODE_ENV", "x"),
            ]),
            vec!["node_*".into()],
            NameCase::Insensitive,
        )
        .unwrap();
        let glob = table.matching(&insensitive(EnvQuery::Glob("VITE_*".into())));
        assert_eq!(glob.keys().collect::<Vec<_>>(), ["VITE_B", "Vite_A"]);
        let prefix = table.matching(&insensitive(EnvQuery::Prefix("vite".into())));
        assert_eq!(prefix.len(), 3);
        assert!(insensitive(EnvQuery::Glob("[a-c]*".into())).is_match("B"));
        assert!(table.is_untracked("Node_Env"));
        assert!(!table.is_untracked("VITE_B"));
    }

    #[test]
    fn exact_case_keeps_spellings_apart() {
        let table = EnvTable::with_case(
            vars(&[("Path", "b"), ("PATH", "a")]),
            vec!["node_*".into()],
            NameCase::Exact,
        )
        .unwrap();
        assert_eq!(table.get("Path"), Some("b"));
        assert_eq!(table.get("path"), None);
        assert_eq!(table.spelling("path"), "path");
        assert_eq!(
            table.matching(&matcher(EnvQuery::Prefix("P".into()))).len(),
            2
        );
        assert!(!table.is_untracked("NODE_ENV"));
        assert!(!matcher(EnvQuery::Prefix("p".into())).is_match("Path"));
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
    fn a_backslash_beside_two_stars_escapes_on_every_platform() {
        let glob = matcher(EnvQuery::Glob("**\\x".into()));
        assert!(glob.is_match("abx"));
        assert!(glob.is_match("x"));
        for dangling in ["**\\", "{a,**\\"] {
            let err = EnvMatcher::new(&EnvQuery::Glob(dangling.into())).unwrap_err();
            assert_eq!(err.reason(), "dangling '\\'", "{dangling}");
        }
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
        assert!(EnvTable::new(HashMap::new(), vec![set.clone()]).is_err());
        assert!(EnvTable::with_case(HashMap::new(), vec![set], NameCase::Insensitive).is_err());
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
