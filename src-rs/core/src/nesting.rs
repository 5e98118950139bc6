//! Nested runners: a runner that is itself a task of another forwards what
//! its tools said upstream, so the outer run's reports are a superset.
//!
//! The Node API does the same through the tool API (so it also reaches a
//! `vp run` addon); this is the Rust runners' side, on the crate's [`Client`].

use std::path::{Path, PathBuf};

use crate::client::Client;
use crate::protocol::LOST_MARKER_PREFIX;
use crate::reports::Reports;

/// A nested run in progress: while it lives, a marker in the outer runner's
/// private directory says so, and an outer run whose inner runner died before
/// forwarding anything finds it and is not cacheable.
#[derive(Debug)]
pub struct NestedRun {
    client: &'static Client,
    marker: Option<PathBuf>,
}

impl NestedRun {
    /// Opens a nested run when a runner listens to this process (connecting
    /// to it now, so it knows of the inner run from the start); `None` when
    /// none does.
    pub fn open(client: &'static Client) -> Option<Self> {
        if !client.is_connected() {
            return None;
        }
        let marker = client.marker_dir().and_then(write_marker);
        Some(Self { client, marker })
    }

    /// Forwards `reports` upstream and closes the nested run. Tracked env
    /// names and queries are asked of the outer runner again, tracked, so it
    /// records the values it serves; paths and values are reported as they
    /// are; every reason the inner run is not cacheable becomes a
    /// `disableCache` naming it. Untracked reads stay untracked.
    pub fn forward(self, reports: &Reports) {
        let client = self.client;
        let tracked: Vec<&str> = reports
            .envs
            .iter()
            .filter(|(_, record)| record.tracked)
            .map(|(name, _)| name.as_str())
            .collect();
        if !tracked.is_empty() {
            client.get_env_batch(&tracked, true);
        }
        for query in reports.env_queries.iter().filter(|q| q.tracked) {
            // The query compiled on the inner server, so it compiles here.
            let _ = client.get_envs(&query.query, true);
        }
        for path in &reports.ignored_inputs {
            client.ignore_input(path);
        }
        for path in &reports.ignored_outputs {
            client.ignore_output(path);
        }
        for path in &reports.inputs {
            client.add_input(path);
        }
        for path in &reports.outputs {
            client.add_output(path);
        }
        for (name, value) in &reports.values {
            client.add_value(name, value);
        }
        let pid = std::process::id();
        for reason in &reports.not_cacheable {
            let kind = serde_json::to_value(reason.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let from = reason
                .caller
                .as_ref()
                .map_or_else(String::new, |caller| format!(", from {caller}"));
            client.disable_cache(Some(&format!(
                "a nested run (pid {pid}) is not cacheable: {kind}: {}{from}",
                reason.message
            )));
        }
        // Everything went upstream: the marker can go. A nested run dropped
        // without forwarding keeps it, so the outer run knows.
        if let Some(marker) = &self.marker {
            let _ = std::fs::remove_file(marker);
        }
    }
}

fn write_marker(dir: &Path) -> Option<PathBuf> {
    let pid = std::process::id();
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).ok()?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{LOST_MARKER_PREFIX}{pid}-nested-{suffix}.json"));
    let body = serde_json::json!({
        "pid": pid,
        "reason": "a nested runner ended before it forwarded what its tools said",
    });
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).ok()?;
    std::io::Write::write_all(&mut file, body.to_string().as_bytes()).ok()?;
    Some(path)
}
