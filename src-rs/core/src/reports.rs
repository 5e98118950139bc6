//! What the tools of one task run said, merged over all their connections.

use std::collections::{BTreeMap, BTreeSet};

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::env::EnvQuery;
use crate::protocol::{truncate_utf8, MAX_CALLER_BYTES, MAX_COMMAND_BYTES};

/// At most this many protocol errors (and reasons not to cache) are listed;
/// the rest are counted.
pub const MAX_LISTED_ERRORS: usize = 256;

/// At most this many paths, values, env names and queries are recorded per
/// run; past it the run is not cacheable and recording stops.
pub const MAX_RECORDED_ENTRIES: usize = 2_000_000;

/// At most this many bytes of paths, names and values are recorded per run;
/// past it the run is not cacheable and recording stops.
pub const MAX_RECORDED_BYTES: usize = 256 << 20;

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

/// Why a run may not be cached: the kind of cause, for a runner to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UncacheableKind {
    /// A tool called `disableCache`.
    DisableCache,
    /// A tool reported one name with two different values.
    ConflictingValue,
    /// A peer that presented the token broke the protocol: what it said after
    /// that point was not recorded.
    ChannelError,
    /// A peer that presented the token speaks no protocol version this runner
    /// speaks: nothing it said was recorded.
    Version,
    /// A tool said something this runner does not understand (a newer op).
    Unsupported,
    /// A tool could not deliver a report or get an answer (it left a marker).
    Lost,
    /// The run's reports exceeded a cap and recording stopped.
    Cap,
    /// The runner failed internally while handling a tool.
    Panic,
    /// A tool was still connected when the close grace period ended.
    StillConnected,
    /// A process of the task connected after `close()` began.
    LateClient,
    /// The file-access trace may miss accesses.
    Trace,
    /// The task read a path and then wrote or deleted it.
    ModifiedInput,
    /// The command failed or was killed ([`crate::rules::verdict`]).
    Exit,
}

/// One reason a run may not be cached.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UncacheableReason {
    /// The kind of cause.
    pub kind: UncacheableKind,
    /// What happened, in words a runner can show.
    pub message: String,
    /// The process it concerns, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// For `disable-cache`: the code that called it, when the tool said
    /// (`"vite … _createServer"`); a runner may let its user overrule a
    /// caller by the module it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// For `disable-cache`: the calling process's command line, when the
    /// tool said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// Who said a run may not be cached: what a reason records besides its kind
/// and message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Teller {
    pid: Option<u32>,
    command: Option<String>,
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
    /// The verdict: whether a runner may cache this run. `false` exactly when
    /// `not_cacheable` has an entry; every way a tool's words can be lost
    /// lands there, so a runner checks this one field.
    pub cacheable: bool,
    /// Every reason the run may not be cached, sorted by kind, message and
    /// caller and deduped by the three (the first process to give one is
    /// named).
    pub not_cacheable: Vec<UncacheableReason>,
    /// Protocol violations; each ended its connection. A peer without the
    /// token lands here only: it is not part of the task.
    pub errors: Vec<ReportedError>,
    /// Connections that completed the handshake.
    pub clients: u64,
    /// Connections still open when the close grace period ran out.
    pub clients_still_connected: u64,
    /// Env requests served (`getEnv` and `getEnvs` round trips).
    pub env_requests: u64,
    /// How `envs` and query `matches` hold values: their sha256 digests (what
    /// a server returns unless asked otherwise), or the values themselves.
    #[serde(default)]
    pub env_values: EnvValues,
    /// What every process of the task did to files, when the server traced
    /// it ([`crate::ServerOptions::trace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::Trace>,
}

/// How reports hold env values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvValues {
    /// Each value's sha256 (hex): reports a runner can store, print or upload
    /// without carrying a secret. A server's default.
    Sha256,
    /// The values themselves, for a runner that needs them and keeps them to
    /// itself. What the recorder collects before a server digests it.
    #[default]
    Plain,
}

impl Reports {
    /// The reports with every env value (`envs`, query `matches`) replaced by
    /// its sha256 digest, as the fingerprint compares them. Reports that
    /// already hold digests are left as they are.
    pub fn digest_env_values(&mut self) {
        if self.env_values == EnvValues::Sha256 {
            return;
        }
        let digest = |value: &mut String| *value = crate::fingerprint::sha256_hex(value.as_bytes());
        for record in self.envs.values_mut() {
            if let Some(value) = &mut record.value {
                digest(value);
            }
        }
        for query in &mut self.env_queries {
            query.matches.values_mut().for_each(digest);
        }
        self.env_values = EnvValues::Sha256;
    }
}

/// Bytes of JSON a chunk of [`Reports::into_json_chunks`] aims at: parsing
/// one takes a JavaScript runner a few milliseconds, so handing reports over
/// a chunk per event-loop turn never stalls it long.
pub const REPORT_CHUNK_BYTES: usize = 256 << 10;

impl Reports {
    /// The reports as JSON text in chunks of about `chunk_bytes`, so a runner
    /// can take in huge reports a piece at a time. The first chunk is the
    /// whole object with its path lists, values, env records and queries
    /// empty; each further chunk is `{"field": F, "items": [...]}` (the path
    /// lists and `envQueries`) or `{"field": F, "entries": [[name, value],
    /// ...]}` (`values` and `envs`), to be appended to field `F` in order.
    pub fn into_json_chunks(
        mut self,
        chunk_bytes: usize,
    ) -> Result<Vec<String>, serde_json::Error> {
        let lists = [
            ("ignoredInputs", std::mem::take(&mut self.ignored_inputs)),
            ("ignoredOutputs", std::mem::take(&mut self.ignored_outputs)),
            ("inputs", std::mem::take(&mut self.inputs)),
            ("outputs", std::mem::take(&mut self.outputs)),
        ];
        let values = std::mem::take(&mut self.values);
        let envs = std::mem::take(&mut self.envs);
        let queries = std::mem::take(&mut self.env_queries);
        let mut writer = ChunkWriter::start(serde_json::to_string(&self)?, chunk_bytes);
        for (field, items) in lists {
            writer.push_all(field, "items", items)?;
        }
        writer.push_all("values", "entries", values)?;
        writer.push_all("envs", "entries", envs)?;
        writer.push_all("envQueries", "items", queries)?;
        Ok(writer.finish())
    }
}

/// Packs items of one field after another into chunks of about a budget,
/// after a first chunk that is the object they belong to.
pub(crate) struct ChunkWriter {
    budget: usize,
    chunks: Vec<String>,
    open: Option<(&'static str, Vec<u8>)>,
}

impl ChunkWriter {
    /// A writer whose first chunk is `head`.
    pub(crate) fn start(head: String, budget: usize) -> Self {
        Self {
            budget,
            chunks: vec![head],
            open: None,
        }
    }

    /// Every item of `items`, as `{"field": field, kind: [...]}` chunks.
    pub(crate) fn push_all<T: Serialize>(
        &mut self,
        field: &'static str,
        kind: &str,
        items: impl IntoIterator<Item = T>,
    ) -> Result<(), serde_json::Error> {
        items
            .into_iter()
            .try_for_each(|item| self.push(field, kind, &item))
    }

    fn push<T: Serialize>(
        &mut self,
        field: &'static str,
        kind: &str,
        item: &T,
    ) -> Result<(), serde_json::Error> {
        let full = self
            .open
            .as_ref()
            .is_some_and(|(open, bytes)| *open != field || bytes.len() >= self.budget);
        if full {
            self.close_chunk();
        }
        let (_, bytes) = self.open.get_or_insert_with(|| {
            let mut bytes = Vec::with_capacity(self.budget + 4096);
            bytes.extend_from_slice(format!(r#"{{"field":"{field}","{kind}":["#).as_bytes());
            (field, bytes)
        });
        if bytes.last() != Some(&b'[') {
            bytes.push(b',');
        }
        serde_json::to_writer(&mut *bytes, item)
    }

    fn close_chunk(&mut self) {
        if let Some((_, mut bytes)) = self.open.take() {
            bytes.extend_from_slice(b"]}");
            // Only serde_json and ASCII went in: valid UTF-8.
            self.chunks
                .push(String::from_utf8(bytes).unwrap_or_default());
        }
    }

    /// The chunks, the last one closed.
    pub(crate) fn finish(mut self) -> Vec<String> {
        self.close_chunk();
        self.chunks
    }
}

/// Builds [`Reports`] as messages arrive; the server holds one per run.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    reports: Reports,
    queries: BTreeMap<EnvQuery, EnvQueryRecord>,
    reasons: BTreeMap<(UncacheableKind, String, Option<String>), Teller>,
    unlisted_errors: u64,
    entries: usize,
    bytes: usize,
    over_cap: bool,
}

impl Recorder {
    /// A recorder for a run whose runner never tracks `untracked_env`.
    pub fn new(untracked_env: Vec<String>) -> Self {
        let mut recorder = Self::default();
        recorder.reports.untracked_env = untracked_env;
        recorder
    }

    /// Counts an entry of `bytes` against the run's caps; `false` (and the
    /// run not cacheable, once) when it does not fit.
    fn admit(&mut self, bytes: usize, pid: Option<u32>) -> bool {
        if self.over_cap {
            return false;
        }
        if self.entries < MAX_RECORDED_ENTRIES && self.bytes + bytes <= MAX_RECORDED_BYTES {
            self.entries += 1;
            self.bytes += bytes;
            return true;
        }
        self.over_cap = true;
        self.not_cacheable(
            UncacheableKind::Cap,
            format!(
                "the run's reports exceeded the cap of {MAX_RECORDED_ENTRIES} entries or {} MiB; later reports were not recorded",
                MAX_RECORDED_BYTES >> 20
            ),
            pid,
        );
        false
    }

    fn insert_path(
        set: fn(&mut Reports) -> &mut BTreeSet<String>,
        this: &mut Self,
        path: String,
        pid: Option<u32>,
    ) {
        if set(&mut this.reports).contains(&path) || !this.admit(path.len(), pid) {
            return;
        }
        set(&mut this.reports).insert(path);
    }

    /// Reads under `path` are not inputs.
    pub fn ignore_input(&mut self, path: String, pid: Option<u32>) {
        Self::insert_path(|r| &mut r.ignored_inputs, self, path, pid);
    }

    /// Writes under `path` are not outputs.
    pub fn ignore_output(&mut self, path: String, pid: Option<u32>) {
        Self::insert_path(|r| &mut r.ignored_outputs, self, path, pid);
    }

    /// `path` is an input.
    pub fn add_input(&mut self, path: String, pid: Option<u32>) {
        Self::insert_path(|r| &mut r.inputs, self, path, pid);
    }

    /// `path` is an output.
    pub fn add_output(&mut self, path: String, pid: Option<u32>) {
        Self::insert_path(|r| &mut r.outputs, self, path, pid);
    }

    /// A named key value. Two different values for one name make the key
    /// ambiguous, so the run is marked not cacheable.
    pub fn add_value(&mut self, name: String, value: String, pid: Option<u32>) {
        match self.reports.values.get(&name) {
            Some(existing) if *existing != value => {
                self.not_cacheable(
                    UncacheableKind::ConflictingValue,
                    format!("value {name:?} was reported with conflicting values"),
                    pid,
                );
            }
            Some(_) => {}
            None => {
                if self.admit(name.len() + value.len(), pid) {
                    self.reports.values.insert(name, value);
                }
            }
        }
    }

    /// A tool asked not to cache the run: `reason` in its words, the code
    /// that asked (`caller`) and its process's command line, as far as the
    /// tool said (each cut to the protocol's limit).
    pub fn disable_cache(
        &mut self,
        reason: Option<String>,
        caller: Option<String>,
        command: Option<String>,
        pid: Option<u32>,
    ) {
        let message = reason.unwrap_or_else(|| "disableCache() with no reason".to_owned());
        let cut = |text: String, max| match truncate_utf8(&text, max) {
            Cow::Borrowed(_) => text,
            Cow::Owned(cut) => cut,
        };
        let caller = caller.map(|caller| cut(caller, MAX_CALLER_BYTES));
        let command = command.map(|command| cut(command, MAX_COMMAND_BYTES));
        self.record_reason(
            (UncacheableKind::DisableCache, message, caller),
            Teller { pid, command },
        );
    }

    /// The run must not be cached, for `message`. Reasons past
    /// [`MAX_LISTED_ERRORS`] are counted, not listed.
    pub fn not_cacheable(&mut self, kind: UncacheableKind, message: String, pid: Option<u32>) {
        self.record_reason((kind, message, None), Teller { pid, command: None });
    }

    fn record_reason(&mut self, key: (UncacheableKind, String, Option<String>), teller: Teller) {
        if self.reasons.len() < MAX_LISTED_ERRORS || self.reasons.contains_key(&key) {
            self.reasons.entry(key).or_insert(teller);
        } else {
            let kind = key.0;
            self.reasons
                .entry((
                    kind,
                    "more reasons of this kind not listed".to_owned(),
                    None,
                ))
                .or_default();
        }
    }

    /// Whether any reason not to cache was recorded so far.
    pub fn is_cacheable(&self) -> bool {
        self.reasons.is_empty()
    }

    /// A variable was served; `tracked` is sticky once any caller sets it.
    pub fn record_env(&mut self, name: &str, value: Option<&str>, tracked: bool, pid: Option<u32>) {
        match self.reports.envs.get_mut(name) {
            Some(record) => record.tracked |= tracked,
            None => {
                if !self.admit(name.len() + value.map_or(0, str::len), pid) {
                    return;
                }
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
        pid: Option<u32>,
    ) {
        match self.queries.get_mut(query) {
            Some(record) => record.tracked |= tracked,
            None => {
                let bytes = matches
                    .iter()
                    .map(|(n, v)| n.len() + v.len())
                    .sum::<usize>();
                if !self.admit(bytes, pid) {
                    return;
                }
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
        reports.cacheable = self.reasons.is_empty();
        reports.not_cacheable = self
            .reasons
            .into_iter()
            .map(|((kind, message, caller), teller)| UncacheableReason {
                kind,
                message,
                pid: teller.pid,
                caller,
                command: teller.command,
            })
            .collect();
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
            recorder.ignore_input(path.into(), None);
            recorder.add_output(path.into(), None);
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
        recorder.record_env("A", Some("1"), false, None);
        recorder.record_env("A", Some("1"), true, None);
        recorder.record_env("A", Some("1"), false, None);
        recorder.record_env("MISSING", None, true, None);
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
        recorder.record_query(&glob, false, &matches, None);
        recorder.record_query(&glob, true, &matches, None);
        recorder.record_query(&EnvQuery::Prefix("VITE_".into()), false, &matches, None);
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
        assert!(recorder.snapshot().cacheable);
        recorder.disable_cache(None, None, None, Some(1));
        recorder.disable_cache(Some("dev server".into()), None, None, Some(2));
        recorder.disable_cache(Some("dev server".into()), None, None, Some(3));
        let reports = recorder.snapshot();
        assert!(!reports.cacheable);
        let messages: Vec<_> = reports
            .not_cacheable
            .iter()
            .map(|r| (r.message.as_str(), r.pid))
            .collect();
        assert_eq!(
            messages,
            [
                ("dev server", Some(2)),
                ("disableCache() with no reason", Some(1))
            ]
        );
        let json = serde_json::to_value(&reports.not_cacheable[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "kind": "disable-cache", "message": "dev server", "pid": 2 })
        );
    }

    #[test]
    fn disable_cache_names_its_caller_and_command() {
        let mut recorder = Recorder::default();
        let vite = || Some("vite … _createServer".to_owned());
        recorder.disable_cache(None, vite(), Some("node vite.js dev".into()), Some(7));
        recorder.disable_cache(None, vite(), Some("node vite.js dev".into()), Some(8));
        recorder.disable_cache(None, Some("vitest … startVitest".into()), None, Some(9));
        recorder.disable_cache(None, None, Some("x".repeat(5000)), Some(10));
        let reports = recorder.snapshot();
        assert_eq!(
            reports.not_cacheable.len(),
            3,
            "{:?}",
            reports.not_cacheable
        );
        let json = serde_json::to_value(&reports.not_cacheable).unwrap();
        assert_eq!(
            json[0],
            serde_json::json!({ "kind": "disable-cache", "message": "disableCache() with no reason", "pid": 10, "command": format!("{}…", "x".repeat(MAX_COMMAND_BYTES - 3)) })
        );
        assert_eq!(
            json[1],
            serde_json::json!({
                "kind": "disable-cache",
                "message": "disableCache() with no reason",
                "pid": 7,
                "caller": "vite … _createServer",
                "command": "node vite.js dev",
            })
        );
        assert_eq!(json[2]["caller"], "vitest … startVitest");
        let back: Vec<UncacheableReason> = serde_json::from_value(json).unwrap();
        assert_eq!(back, reports.not_cacheable);
    }

    #[test]
    fn reasons_are_capped_per_kind() {
        let mut recorder = Recorder::default();
        for i in 0..MAX_LISTED_ERRORS + 5 {
            recorder.not_cacheable(UncacheableKind::Lost, format!("lost {i}"), None);
        }
        let reports = recorder.snapshot();
        assert_eq!(reports.not_cacheable.len(), MAX_LISTED_ERRORS + 1);
        assert!(reports
            .not_cacheable
            .iter()
            .any(|r| r.message == "more reasons of this kind not listed"));
    }

    #[test]
    fn conflicting_values_disable_the_cache() {
        let mut recorder = Recorder::default();
        recorder.add_value("hash".into(), "1".into(), None);
        recorder.add_value("hash".into(), "1".into(), None);
        assert!(recorder.snapshot().cacheable);
        recorder.add_value("hash".into(), "2".into(), None);
        let reports = recorder.snapshot();
        assert_eq!(reports.values["hash"], "1");
        assert!(!reports.cacheable);
        assert_eq!(
            reports.not_cacheable[0].kind,
            UncacheableKind::ConflictingValue
        );
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
    fn chunks_put_together_give_the_same_reports() {
        let mut recorder = Recorder::new(vec!["PWD".into()]);
        for i in 0..2000 {
            recorder.add_input(format!("/in/{i:05}"), None);
            recorder.ignore_output(format!("/out/{i}"), None);
        }
        recorder.add_value("__proto__".into(), "v".into(), None);
        recorder.record_env("A", None, true, None);
        recorder.record_env("B", Some("b"), false, None);
        let glob = EnvQuery::Glob("*".into());
        recorder.record_query(
            &glob,
            true,
            &BTreeMap::from([("X".into(), "1".into())]),
            None,
        );
        recorder.disable_cache(
            Some("dev".into()),
            Some("vite … _createServer".into()),
            Some("node vite.js".into()),
            Some(3),
        );
        let reports = recorder.snapshot();
        let chunks = reports.clone().into_json_chunks(4096).unwrap();
        assert!(chunks.len() > 10, "{}", chunks.len());
        assert!(chunks.iter().skip(1).all(|c| c.len() < 4096 + 64));
        let mut rebuilt: serde_json::Value = serde_json::from_str(&chunks[0]).unwrap();
        for chunk in &chunks[1..] {
            let chunk: serde_json::Value = serde_json::from_str(chunk).unwrap();
            let field = chunk["field"].as_str().unwrap();
            if let Some(items) = chunk["items"].as_array() {
                rebuilt[field]
                    .as_array_mut()
                    .unwrap()
                    .extend(items.iter().cloned());
            } else {
                for entry in chunk["entries"].as_array().unwrap() {
                    let name = entry[0].as_str().unwrap().to_owned();
                    rebuilt[field]
                        .as_object_mut()
                        .unwrap()
                        .insert(name, entry[1].clone());
                }
            }
        }
        assert_eq!(serde_json::from_value::<Reports>(rebuilt).unwrap(), reports);
    }

    #[test]
    fn reports_round_trip_through_json() {
        let mut recorder = Recorder::new(vec!["PWD".into()]);
        recorder.ignore_output("/o".into(), None);
        recorder.add_value("v".into(), "1".into(), None);
        recorder.record_env("A", None, true, None);
        recorder.record_error("bad".into(), Some(3));
        let reports = recorder.snapshot();
        let text = serde_json::to_string(&reports).unwrap();
        assert_eq!(serde_json::from_str::<Reports>(&text).unwrap(), reports);
    }
}
