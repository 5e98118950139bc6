//! What the tools of one task run said, merged over all their connections.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::env::EnvQuery;

/// At most this many protocol errors are listed; the rest are counted.
pub const MAX_LISTED_ERRORS: usize = 256;

/// One env variable a tool asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvRecord {
    /// The value served; `None` (JSON `null`) when the runner's env lacks it.
    pub value: Option<String>,
    /// Whether the value belongs in the cache key.
    pub tracked: bool,
}

/// One env query a tool made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvQueryRecord {
    /// The query: `{ "glob": … }` or `{ "prefix": … }`.
    #[serde(flatten)]
    pub query: EnvQuery,
    /// Whether the match set belongs in the cache key.
    pub tracked: bool,
    /// Every variable that matched, with its value.
    pub matches: BTreeMap<String, String>,
}

/// A protocol violation seen on one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedError {
    /// What went wrong, in words a runner can show.
    pub message: String,
    /// The peer's process id, when its handshake told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// Everything the tools of one run reported. Plain data: sorted, deduped and
/// JSON-serialisable, so a runner can store it next to a cache entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reports {
    /// Reads under these absolute paths are not inputs.
    pub ignored_inputs: BTreeSet<String>,
    /// Writes under these absolute paths are not outputs.
    pub ignored_outputs: BTreeSet<String>,
    /// Paths the tools declared as inputs.
    pub inputs: BTreeSet<String>,
    /// Paths the tools declared as outputs.
    pub outputs: BTreeSet<String>,
    /// Named values that belong in the cache key.
    pub values: BTreeMap<String, String>,
    /// Every env variable asked for by name.
    pub envs: BTreeMap<String, EnvRecord>,
    /// Every env query, sorted by query.
    pub env_queries: Vec<EnvQueryRecord>,
    /// The runner's never-tracked name patterns, so a fingerprint can leave
    /// their matches out.
    pub untracked_env: Vec<String>,
    /// Whether any tool asked not to cache this run.
    pub cache_disabled: bool,
    /// The reasons given, sorted and deduped.
    pub cache_disabled_reasons: Vec<String>,
    /// Protocol violations; each ended its connection.
    pub errors: Vec<ReportedError>,
    /// Connections that completed the handshake.
    pub clients: u64,
    /// Connections still open when the close grace period ran out.
    pub clients_still_connected: u64,
    /// Env requests served (`getEnv` and `getEnvs` round trips).
    pub env_requests: u64,
}

/// Builds [`Reports`] as messages arrive; the server holds one per run.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    reports: Reports,
    queries: BTreeMap<EnvQuery, EnvQueryRecord>,
    reasons: BTreeSet<String>,
    unlisted_errors: u64,
}

impl Recorder {
    /// A recorder for a run whose runner never tracks `untracked_env`.
    pub fn new(untracked_env: Vec<String>) -> Self {
        let mut recorder = Self::default();
        recorder.reports.untracked_env = untracked_env;
        recorder
    }

    /// Reads under `path` are not inputs.
    pub fn ignore_input(&mut self, path: String) {
        self.reports.ignored_inputs.insert(path);
    }

    /// Writes under `path` are not outputs.
    pub fn ignore_output(&mut self, path: String) {
        self.reports.ignored_outputs.insert(path);
    }

    /// `path` is an input.
    pub fn add_input(&mut self, path: String) {
        self.reports.inputs.insert(path);
    }

    /// `path` is an output.
    pub fn add_output(&mut self, path: String) {
        self.reports.outputs.insert(path);
    }

    /// A named key value. Two different values for one name make the key
    /// ambiguous, so the run is marked not cacheable.
    pub fn add_value(&mut self, name: String, value: String) {
        match self.reports.values.get(&name) {
            Some(existing) if *existing != value => {
                self.disable_cache(Some(format!(
                    "value {name:?} was reported with conflicting values"
                )));
            }
            Some(_) => {}
            None => {
                self.reports.values.insert(name, value);
            }
        }
    }

    /// The run must not be cached.
    pub fn disable_cache(&mut self, reason: Option<String>) {
        self.reports.cache_disabled = true;
        if let Some(reason) = reason {
            self.reasons.insert(reason);
        }
    }

    /// A variable was served; `tracked` is sticky once any caller sets it.
    pub fn record_env(&mut self, name: &str, value: Option<&str>, tracked: bool) {
        match self.reports.envs.get_mut(name) {
            Some(record) => record.tracked |= tracked,
            None => {
                self.reports.envs.insert(
                    name.to_owned(),
                    EnvRecord {
                        value: value.map(str::to_owned),
                        tracked,
                    },
                );
            }
        }
    }

    /// A query was served; `tracked` is sticky.
    pub fn record_query(
        &mut self,
        query: &EnvQuery,
        tracked: bool,
        matches: &BTreeMap<String, String>,
    ) {
        match self.queries.get_mut(query) {
            Some(record) => record.tracked |= tracked,
            None => {
                self.queries.insert(
                    query.clone(),
                    EnvQueryRecord {
                        query: query.clone(),
                        tracked,
                        matches: matches.clone(),
                    },
                );
            }
        }
    }

    /// Counts one served env request.
    pub fn count_env_request(&mut self) {
        self.reports.env_requests += 1;
    }

    /// Counts one connection that completed its handshake.
    pub fn count_client(&mut self) {
        self.reports.clients += 1;
    }

    /// Counts one connection cut off at the end of the close grace period.
    pub fn count_still_connected(&mut self) {
        self.reports.clients_still_connected += 1;
    }

    /// Records a protocol violation.
    pub fn record_error(&mut self, message: String, pid: Option<u32>) {
        if self.reports.errors.len() < MAX_LISTED_ERRORS {
            self.reports.errors.push(ReportedError { message, pid });
        } else {
            self.unlisted_errors += 1;
        }
    }

    /// The reports so far, as they would be returned now.
    pub fn snapshot(&self) -> Reports {
        self.clone().into_reports()
    }

    /// The finished reports, moved out rather than copied.
    pub fn into_reports(self) -> Reports {
        let mut reports = self.reports;
        reports.env_queries = self.queries.into_values().collect();
        reports.cache_disabled_reasons = self.reasons.into_iter().collect();
        if self.unlisted_errors > 0 {
            reports.errors.push(ReportedError {
                message: format!("{} more errors not listed", self.unlisted_errors),
                pid: None,
            });
        }
        reports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_sorted_and_deduped() {
        let mut recorder = Recorder::default();
        for path in ["/b", "/a", "/b"] {
            recorder.ignore_input(path.into());
            recorder.add_output(path.into());
        }
        let reports = recorder.snapshot();
        assert_eq!(
            reports.ignored_inputs.iter().collect::<Vec<_>>(),
            ["/a", "/b"]
        );
        assert_eq!(reports.outputs.len(), 2);
    }

    #[test]
    fn tracked_is_sticky_and_absent_is_kept() {
        let mut recorder = Recorder::default();
        recorder.record_env("A", Some("1"), false);
        recorder.record_env("A", Some("1"), true);
        recorder.record_env("A", Some("1"), false);
        recorder.record_env("MISSING", None, true);
        let reports = recorder.snapshot();
        assert!(reports.envs["A"].tracked);
        assert_eq!(reports.envs["MISSING"].value, None);
        let json = serde_json::to_value(&reports).unwrap();
        assert_eq!(json["envs"]["MISSING"]["value"], serde_json::Value::Null);
    }

    #[test]
    fn queries_merge_and_serialise_flat() {
        let mut recorder = Recorder::default();
        let matches = BTreeMap::from([("VITE_A".to_owned(), "1".to_owned())]);
        let glob = EnvQuery::Glob("VITE_*".into());
        recorder.record_query(&glob, false, &matches);
        recorder.record_query(&glob, true, &matches);
        recorder.record_query(&EnvQuery::Prefix("VITE_".into()), false, &matches);
        let reports = recorder.snapshot();
        assert_eq!(reports.env_queries.len(), 2);
        let json = serde_json::to_value(&reports.env_queries).unwrap();
        assert_eq!(
            json[0],
            serde_json::json!({ "glob": "VITE_*", "tracked": true, "matches": { "VITE_A": "1" } })
        );
        assert_eq!(json[1]["prefix"], "VITE_");
        let back: Vec<EnvQueryRecord> = serde_json::from_value(json).unwrap();
        assert_eq!(back, reports.env_queries);
    }

    #[test]
    fn disable_cache_collects_reasons() {
        let mut recorder = Recorder::default();
        assert!(!recorder.snapshot().cache_disabled);
        recorder.disable_cache(None);
        recorder.disable_cache(Some("dev server".into()));
        recorder.disable_cache(Some("dev server".into()));
        let reports = recorder.snapshot();
        assert!(reports.cache_disabled);
        assert_eq!(reports.cache_disabled_reasons, ["dev server"]);
    }

    #[test]
    fn conflicting_values_disable_the_cache() {
        let mut recorder = Recorder::default();
        recorder.add_value("hash".into(), "1".into());
        recorder.add_value("hash".into(), "1".into());
        assert!(!recorder.snapshot().cache_disabled);
        recorder.add_value("hash".into(), "2".into());
        let reports = recorder.snapshot();
        assert_eq!(reports.values["hash"], "1");
        assert!(reports.cache_disabled);
    }

    #[test]
    fn errors_are_capped() {
        let mut recorder = Recorder::default();
        for i in 0..MAX_LISTED_ERRORS + 5 {
            recorder.record_error(format!("e{i}"), None);
        }
        let reports = recorder.snapshot();
        assert_eq!(reports.errors.len(), MAX_LISTED_ERRORS + 1);
        assert_eq!(
            reports.errors.last().unwrap().message,
            "5 more errors not listed"
        );
    }

    #[test]
    fn reports_round_trip_through_json() {
        let mut recorder = Recorder::new(vec!["PWD".into()]);
        recorder.ignore_output("/o".into());
        recorder.add_value("v".into(), "1".into());
        recorder.record_env("A", None, true);
        recorder.record_error("bad".into(), Some(3));
        let reports = recorder.snapshot();
        let text = serde_json::to_string(&reports).unwrap();
        assert_eq!(serde_json::from_str::<Reports>(&text).unwrap(), reports);
    }
}
