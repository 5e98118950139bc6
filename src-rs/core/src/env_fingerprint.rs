//! The env fingerprint a cache entry rests on: every tracked env name (absent
//! ones included), every tracked query's match set, and the `addValue`
//! values, each as a sha256 digest. The same format and digest as the
//! TypeScript `envFingerprint` of `runner-aware/runner`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::env::{EnvMatcher, EnvQuery, NameCase};
use crate::fingerprint::sha256_hex;
use crate::reports::{EnvValues, Reports};

/// One tracked query of a fingerprint: a glob or a literal prefix, and its
/// whole match set (name → sha256 of the value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintQuery {
    /// The glob (`VITE_*`), when the query is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// The literal prefix, when the query is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Every tracked name that matched → the sha256 (hex) of its value.
    pub matches: BTreeMap<String, String>,
}

impl FingerprintQuery {
    fn query(&self) -> Option<EnvQuery> {
        match (&self.glob, &self.prefix) {
            (Some(glob), None) => Some(EnvQuery::Glob(glob.clone())),
            (None, Some(prefix)) => Some(EnvQuery::Prefix(prefix.clone())),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match (&self.glob, &self.prefix) {
            (Some(glob), _) => glob.clone(),
            (_, Some(prefix)) => format!("{prefix} (prefix)"),
            _ => String::new(),
        }
    }

    fn sort_key(&self) -> (u8, &str) {
        match (&self.glob, &self.prefix) {
            (Some(glob), _) => (0, glob),
            (_, Some(prefix)) => (1, prefix),
            _ => (2, ""),
        }
    }
}

/// Everything a run's cache entry depends on besides files, as digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvFingerprint {
    /// Format version: 1.
    pub version: u32,
    /// sha256 (hex) over `envs`, `env_queries` and `values`.
    pub digest: String,
    /// Tracked names → sha256 (hex) of the value, `None` when absent.
    pub envs: BTreeMap<String, Option<String>>,
    /// Tracked queries, globs first, then prefixes.
    pub env_queries: Vec<FingerprintQuery>,
    /// `addValue` names → sha256 (hex) of the value.
    pub values: BTreeMap<String, String>,
    /// The runner's never-tracked globs: their names stay out of query match
    /// sets on validation too.
    pub untracked_env: Vec<String>,
}

/// Why a fingerprint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintFormatError {
    /// Not JSON of the expected shape.
    #[error("not a valid env fingerprint: {0}")]
    Shape(#[from] serde_json::Error),
    /// An unknown version.
    #[error("not a valid env fingerprint: unsupported version {0}")]
    Version(u32),
    /// A query that is neither a glob nor a prefix, or a glob that does not parse.
    #[error("not a valid env fingerprint: {0}")]
    Query(String),
    /// The digest does not match the content.
    #[error("not a valid env fingerprint: digest does not match its content")]
    Digest,
}

/// Orders strings as JavaScript's default comparison does (UTF-16 code
/// units), so both implementations write the same canonical text.
fn js_order(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn js_sorted<V>(map: &BTreeMap<String, V>) -> Vec<(&str, &V)> {
    let mut entries: Vec<_> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
    entries.sort_by(|a, b| js_order(a.0, b.0));
    entries
}

impl EnvFingerprint {
    /// A fingerprint of the given digests, its own digest computed.
    pub fn new(
        envs: BTreeMap<String, Option<String>>,
        env_queries: Vec<FingerprintQuery>,
        values: BTreeMap<String, String>,
        untracked_env: Vec<String>,
    ) -> Self {
        let mut fingerprint = Self {
            version: 1,
            digest: String::new(),
            envs,
            env_queries,
            values,
            untracked_env,
        };
        fingerprint.digest = fingerprint.computed_digest(true);
        fingerprint
    }

    /// The fingerprint of a run's reports (their env values as digests, as a
    /// server returns them by default, or plain): tracked names, tracked
    /// queries' match sets and the `addValue` values, each as its sha256; names
    /// matching the runner's never-tracked globs left out. The same as the
    /// TypeScript `envFingerprint` of the same reports.
    pub fn of_reports(reports: &Reports) -> Self {
        let untracked: Vec<EnvMatcher> = reports
            .untracked_env
            .iter()
            .filter_map(|glob| EnvMatcher::new(&EnvQuery::Glob(glob.clone())).ok())
            .collect();
        let is_untracked = |name: &str| untracked.iter().any(|m| m.is_match(name));
        // Digested reports (a server's default) hold the fingerprint's digests already.
        let plain = reports.env_values == EnvValues::Plain;
        let digest = |value: &str| {
            if plain {
                sha256_hex(value.as_bytes())
            } else {
                value.to_owned()
            }
        };
        let envs = reports
            .envs
            .iter()
            .filter(|(name, record)| record.tracked && !is_untracked(name))
            .map(|(name, record)| (name.clone(), record.value.as_deref().map(digest)))
            .collect();
        let queries = reports
            .env_queries
            .iter()
            .filter(|record| record.tracked)
            .map(|record| {
                let matches = record
                    .matches
                    .iter()
                    .filter(|(name, _)| !is_untracked(name))
                    .map(|(name, value)| (name.clone(), digest(value)))
                    .collect();
                let (glob, prefix) = match &record.query {
                    EnvQuery::Glob(glob) => (Some(glob.clone()), None),
                    EnvQuery::Prefix(prefix) => (None, Some(prefix.clone())),
                };
                FingerprintQuery {
                    glob,
                    prefix,
                    matches,
                }
            })
            .collect();
        // `addValue` values are the tools' own words, never digested in reports.
        let mut queries: Vec<FingerprintQuery> = queries;
        // Globs first, then prefixes, each by text: the order a fingerprint
        // lists its queries in, whatever order the reports gave.
        queries.sort_by(|a, b| {
            let (ka, pa) = a.sort_key();
            let (kb, pb) = b.sort_key();
            ka.cmp(&kb).then_with(|| js_order(pa, pb))
        });
        let values = reports
            .values
            .iter()
            .map(|(name, value)| (name.clone(), sha256_hex(value.as_bytes())))
            .collect();
        let mut untracked_env = reports.untracked_env.clone();
        untracked_env.sort_by(|a, b| js_order(a, b));
        untracked_env.dedup();
        Self::new(envs, queries, values, untracked_env)
    }

    /// Parses a fingerprint (as `serializeFingerprint` writes it), checking
    /// its shape, its queries and its digest.
    pub fn parse(json: &str) -> Result<Self, FingerprintFormatError> {
        let fingerprint: Self = serde_json::from_str(json)?;
        fingerprint.check()?;
        Ok(fingerprint)
    }

    /// Checks version, queries and digest of a fingerprint read from anywhere.
    pub fn check(&self) -> Result<(), FingerprintFormatError> {
        if self.version != 1 {
            return Err(FingerprintFormatError::Version(self.version));
        }
        for query in &self.env_queries {
            let parsed = query.query().ok_or_else(|| {
                FingerprintFormatError::Query("a query must have a glob or a prefix".into())
            })?;
            EnvMatcher::new(&parsed)
                .map_err(|err| FingerprintFormatError::Query(err.to_string()))?;
        }
        if self.computed_digest(true) != self.digest {
            return Err(FingerprintFormatError::Digest);
        }
        Ok(())
    }

    /// The digest over envs, queries and (when `with_values`) values: the
    /// canonical JSON the TypeScript implementation hashes.
    fn computed_digest(&self, with_values: bool) -> String {
        let envs: Vec<_> = js_sorted(&self.envs);
        let mut queries: Vec<&FingerprintQuery> = self.env_queries.iter().collect();
        queries.sort_by(|a, b| {
            let (ka, pa) = a.sort_key();
            let (kb, pb) = b.sort_key();
            ka.cmp(&kb).then_with(|| js_order(pa, pb))
        });
        let queries: Vec<_> = queries
            .iter()
            .map(|q| {
                let kind = if q.glob.is_some() { "glob" } else { "prefix" };
                (kind, q.sort_key().1, js_sorted(&q.matches))
            })
            .collect();
        let empty = BTreeMap::new();
        let values = js_sorted(if with_values { &self.values } else { &empty });
        let canonical = serde_json::to_string(&(envs, queries, values)).unwrap_or_default();
        sha256_hex(canonical.as_bytes())
    }

    /// The digest without the `addValue` values: what a look-up can check
    /// (values are known only once a tool ran).
    pub fn lookup_digest(&self) -> String {
        self.computed_digest(false)
    }

    /// Checks the fingerprint against the runner's current env (what it would
    /// give `createServer`): every tracked name and every tracked query's
    /// whole match set. The reasons name what changed, never a value.
    pub fn validate(&self, env: &HashMap<String, String>) -> Vec<String> {
        self.validate_with_values(env, None)
    }

    /// [`EnvFingerprint::validate`], and when `values` are given (a later
    /// run's `addValue` values: known only once a tool ran), each value
    /// compared too: `value NAME changed` (`added`, `removed`), sorted.
    pub fn validate_with_values(
        &self,
        env: &HashMap<String, String>,
        values: Option<&BTreeMap<String, String>>,
    ) -> Vec<String> {
        let mut reasons = self.validate_env(env);
        if let Some(values) = values {
            let current: BTreeMap<&str, String> = values
                .iter()
                .map(|(name, value)| (name.as_str(), sha256_hex(value.as_bytes())))
                .collect();
            let mut names: Vec<&str> = self
                .values
                .keys()
                .map(String::as_str)
                .chain(current.keys().copied())
                .collect();
            names.sort_by(|a, b| js_order(a, b));
            names.dedup();
            for name in names {
                match (self.values.get(name), current.get(name)) {
                    (Some(a), Some(b)) if a == b => {}
                    (None, Some(_)) => reasons.push(format!("value {name} added")),
                    (Some(_), None) => reasons.push(format!("value {name} removed")),
                    (Some(_), Some(_)) => reasons.push(format!("value {name} changed")),
                    (None, None) => {}
                }
            }
        }
        reasons
    }

    fn validate_env(&self, env: &HashMap<String, String>) -> Vec<String> {
        let case = NameCase::NATIVE;
        let folded: HashMap<std::borrow::Cow<'_, str>, &str> = env
            .iter()
            .map(|(name, value)| (case.fold(name), value.as_str()))
            .collect();
        let mut reasons = Vec::new();
        for (name, stored) in js_sorted(&self.envs) {
            let current = folded
                .get(&case.fold(name))
                .map(|v| sha256_hex(v.as_bytes()));
            match (stored, &current) {
                (None, None) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, Some(_)) => reasons.push(format!("env {name} added")),
                (Some(_), None) => reasons.push(format!("env {name} removed")),
                (Some(_), Some(_)) => reasons.push(format!("env {name} changed")),
            }
        }
        let untracked: Vec<EnvMatcher> = self
            .untracked_env
            .iter()
            .filter_map(|glob| EnvMatcher::with_case(&EnvQuery::Glob(glob.clone()), case).ok())
            .collect();
        for query in &self.env_queries {
            let Some(matcher) = query
                .query()
                .and_then(|q| EnvMatcher::with_case(&q, case).ok())
            else {
                reasons.push(format!("env query {} cannot be checked", query.describe()));
                continue;
            };
            let current: BTreeMap<String, String> = env
                .iter()
                .filter(|(name, _)| {
                    matcher.is_match(name) && !untracked.iter().any(|u| u.is_match(name))
                })
                .map(|(name, value)| (name.clone(), sha256_hex(value.as_bytes())))
                .collect();
            if current != query.matches {
                reasons.push(format!("env query {} changed", query.describe()));
            }
        }
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the TypeScript `envFingerprint` gives for `NODE_ENV=production`
    /// tracked, `MISSING` tracked and absent, the query `VITE_*` matching
    /// `VITE_A=1`, and `addValue('v', 'x')`, digest included.
    const TS_FINGERPRINT: &str = r#"{"version":1,"digest":"46f80b0d0f74928d6823984c3692c4c28caeea3a82d798fcd1c13bef331bc5ff","envs":{"MISSING":null,"NODE_ENV":"ab8e18ef4ebebeddc0b3152ce9c9006e14fc05242e3fc9ce32246ea6a9543074"},"envQueries":[{"glob":"VITE_*","matches":{"VITE_A":"6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"}}],"values":{"v":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},"untrackedEnv":[]}"#;

    fn fixture() -> EnvFingerprint {
        EnvFingerprint::parse(TS_FINGERPRINT).unwrap()
    }

    #[test]
    fn validates_names_queries_and_absence() {
        let fp = fixture();
        fp.check().unwrap();
        let env: HashMap<String, String> = [("NODE_ENV", "production"), ("VITE_A", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert!(fp.validate(&env).is_empty());
        let mut changed = env.clone();
        changed.insert("NODE_ENV".into(), "development".into());
        changed.insert("MISSING".into(), "now".into());
        changed.insert("VITE_B".into(), "2".into());
        assert_eq!(
            fp.validate(&changed),
            [
                "env MISSING added",
                "env NODE_ENV changed",
                "env query VITE_* changed"
            ]
        );
    }

    #[test]
    fn reports_give_the_typescript_fingerprint() {
        let reports: Reports = serde_json::from_str(
            r#"{"ignoredInputs":[],"ignoredOutputs":[],"inputs":[],"outputs":[],"values":{"v":"x"},
            "envs":{"NODE_ENV":{"value":"production","tracked":true},"MISSING":{"value":null,"tracked":true},
            "HOME":{"value":"/root","tracked":false}},
            "envQueries":[{"glob":"VITE_*","tracked":true,"matches":{"VITE_A":"1"}}],"untrackedEnv":[],
            "cacheable":true,"notCacheable":[],"errors":[],"clients":1,"clientsStillConnected":0,"envRequests":1}"#,
        )
        .unwrap();
        assert_eq!(EnvFingerprint::of_reports(&reports), fixture());
        let mut digested = reports.clone();
        digested.digest_env_values();
        assert_ne!(
            digested.envs["NODE_ENV"].value.as_deref(),
            Some("production")
        );
        assert_eq!(EnvFingerprint::of_reports(&digested), fixture());
    }

    #[test]
    fn a_tampered_fingerprint_is_refused() {
        let mut fp = fixture();
        fp.envs.remove("NODE_ENV");
        assert!(matches!(fp.check(), Err(FingerprintFormatError::Digest)));
        assert_ne!(fixture().lookup_digest(), fixture().digest);
    }
}
