//! The cache store of the core (`runner_aware::cache`) for Node: every call
//! that touches the disk runs off the main thread, and manifests cross as
//! JSON text.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use napi::bindgen_prelude::{AsyncTask, Buffer};
use napi::{Env, Error, Result, Status, Task};
use napi_derive::napi;

use runner_aware::cache::repo::RepoSnapshot;
use runner_aware::cache::{self, CacheError, Lookup, Manifest, Run, Store, Stored};
use runner_aware::reports::Reports;
use runner_aware::rules::CommandOutcome;
use serde_json::Value;

fn cache_error(err: CacheError) -> Error {
    Error::new(Status::GenericFailure, err.to_string())
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(Status::InvalidArg, message.into())
}

fn to_json(manifest: &Manifest) -> String {
    String::from_utf8(manifest.to_bytes()).unwrap_or_default()
}

/// What a runner shows of an entry (`CacheEntry`'s fields), as JSON: small
/// where the manifest is not (a repository key holds every file's digest),
/// so JavaScript parses only this.
fn summary_json(manifest: &Manifest) -> String {
    serde_json::json!({
        "id": manifest.id,
        "createdAt": manifest.created_at,
        "inputs": manifest.key.inputs.keys().collect::<Vec<_>>(),
        "outputs": manifest.outputs.iter().map(|output| output.path()).collect::<Vec<_>>(),
        "envs": manifest.key.env.envs.keys().collect::<Vec<_>>(),
        "envQueries": manifest.key.env.env_queries,
        "values": manifest.key.env.values.keys().collect::<Vec<_>>(),
        "overruled": manifest.overruled,
        "repo": manifest.key.repo.is_some(),
    })
    .to_string()
}

fn parse_manifest(json: &str) -> Result<Manifest> {
    Manifest::parse(json.as_bytes()).map_err(cache_error)
}

fn lock(store: &Arc<Mutex<Store>>) -> MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A task on libuv's pool with the store locked; a panic rejects instead of
/// ending the process.
macro_rules! store_task {
    ($name:ident -> $out:ty { $($field:ident : $ty:ty),* } |$store:ident, $this:ident| $body:expr) => {
        #[doc = concat!("The `", stringify!($name), "` call, run off the main thread.")]
        pub struct $name {
            store: Arc<Mutex<Store>>,
            $($field: $ty),*
        }

        impl Task for $name {
            type Output = $out;
            type JsValue = $out;

            fn compute(&mut self) -> Result<$out> {
                let $this = &*self;
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let mut guard = lock(&$this.store);
                    let $store: &mut Store = &mut guard;
                    $body
                }))
                .unwrap_or_else(|_| Err(Error::from_reason("the cache store panicked")))
            }

            fn resolve(&mut self, _env: Env, output: $out) -> Result<$out> {
                Ok(output)
            }
        }
    };
}

store_task!(LookupTask -> CacheLookup { task: String, env: HashMap<String, String> } |store, this| {
    Ok(match store.lookup(&this.task, &this.env) {
        Lookup::Hit(manifest) => CacheLookup {
            hit: Some(to_json(&manifest)),
            summary: Some(summary_json(&manifest)),
            reasons: Vec::new(),
        },
        Lookup::Miss { reasons } => CacheLookup { hit: None, summary: None, reasons },
    })
});

store_task!(EntriesTask -> Vec<CacheEntryState> { task: String, env: HashMap<String, String> } |store, this| {
    store.refresh();
    let (manifests, _) = store.entries(&this.task);
    Ok(manifests
        .into_iter()
        .map(|manifest| CacheEntryState {
            reasons: store.stale_reasons(&manifest, &this.env),
            lookup_id: manifest.key.lookup_id(),
            manifest: to_json(&manifest),
        })
        .collect())
});

store_task!(StaleTask -> Vec<String> { manifest: String, env: HashMap<String, String> } |store, this| {
    let manifest = parse_manifest(&this.manifest)?;
    Ok(store.stale_reasons(&manifest, &this.env))
});

store_task!(RestoreTask -> CacheReplay { manifest: String } |store, this| {
    let manifest = parse_manifest(&this.manifest)?;
    let replay = store.restore(&manifest).map_err(cache_error)?;
    Ok(CacheReplay { stdout: replay.stdout.into(), stderr: replay.stderr.into() })
});

store_task!(StoreRunTask -> CacheStored { task: String, reports: Reports, run: RunParts } |store, this| {
    let run = Run {
        reports: &this.reports,
        outcome: this.run.outcome.clone(),
        started_at: this.run.started_at,
        stdout: this.run.stdout.clone(),
        stderr: this.run.stderr.clone(),
        before: this.run.before.clone(),
        inputs: this.run.inputs.clone(),
        outputs: this.run.outputs.clone(),
        cacheable_despite: this.run.cacheable_despite.clone(),
    };
    Ok(match store.store_run(&this.task, &run).map_err(cache_error)? {
        Stored::Stored { manifest, overruled, key } => CacheStored {
            stored: true,
            manifest: Some(to_json(&manifest)),
            overruled: Some(
                serde_json::to_string(&overruled).map_err(|err| Error::from_reason(err.to_string()))?,
            ),
            key: serde_json::to_value(key)
                .ok()
                .and_then(|key| key.as_str().map(str::to_owned)),
            reasons: Vec::new(),
        },
        Stored::NotStored { reasons } => CacheStored {
            stored: false,
            manifest: None,
            overruled: None,
            key: None,
            reasons,
        },
    })
});

/// What storing a run did.
#[napi(object)]
pub struct CacheStored {
    /// Whether the run is an entry now.
    pub stored: bool,
    /// Its manifest (JSON), when stored.
    pub manifest: Option<String>,
    /// The `disableCache` reasons overruled to store it (JSON), when stored.
    pub overruled: Option<String>,
    /// What keys it (`trace`, `declared`, `repository`), when stored.
    pub key: Option<String>,
    /// Why it was not stored.
    pub reasons: Vec<String>,
}

/// What a run to store holds besides its reports, owned for the pool.
pub struct RunParts {
    outcome: CommandOutcome,
    started_at: SystemTime,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    before: Option<RepoSnapshot>,
    inputs: Vec<PathBuf>,
    outputs: Vec<PathBuf>,
    cacheable_despite: Option<Vec<String>>,
}

store_task!(RepoSnapshotTask -> String { } |store, _this| {
    let snapshot = store.repo_snapshot().map_err(|err| Error::from_reason(err.to_string()))?;
    serde_json::to_string(&snapshot).map_err(|err| Error::from_reason(err.to_string()))
});

store_task!(ImportTask -> () { manifest: String, bytes: Vec<u8> } |store, this| {
    let manifest = parse_manifest(&this.manifest)?;
    store.import(&manifest, &this.bytes).map_err(cache_error)
});

store_task!(ReadEntryTask -> Buffer { task: String, id: String } |store, this| {
    Ok(store.read_entry(&this.task, &this.id).map_err(cache_error)?.into())
});

/// A finished run to store (`runner-aware/runner`'s `Cache.store` builds
/// it): everything but the reports.
#[napi(object)]
pub struct CacheRun {
    /// The command's exit code; absent when a signal ended it.
    pub exit_code: Option<i32>,
    /// The signal that ended the command.
    pub signal: Option<String>,
    /// When the command started (ms since the epoch).
    pub started_at_ms: f64,
    /// What the command printed.
    pub stdout: Buffer,
    /// What the command printed on stderr.
    pub stderr: Buffer,
    /// The repository's content before the run (`repoSnapshot`'s JSON).
    pub before: Option<String>,
    /// Files the runner's user named as inputs.
    pub inputs: Vec<String>,
    /// Files or directories the runner's user named as outputs.
    pub outputs: Vec<String>,
    /// Callers whose `disableCache` the user overrules.
    pub cacheable_despite: Option<Vec<String>>,
}

/// A look-up's answer.
#[napi(object)]
pub struct CacheLookup {
    /// The manifest (JSON) of the entry that holds, if one does.
    pub hit: Option<String>,
    /// What a runner shows of that entry, as JSON (its id, creation time,
    /// input and output paths, env names and queries, value names, overruled
    /// reasons, whether the repository keys it), without the manifest's
    /// digests.
    pub summary: Option<String>,
    /// Why no entry holds (the closest one's reasons, `no entry`, refused entries).
    pub reasons: Vec<String>,
}

/// A stored entry and whether it still holds.
#[napi(object)]
pub struct CacheEntryState {
    /// Its manifest, as JSON.
    pub manifest: String,
    /// Its id without the `addValue` values.
    pub lookup_id: String,
    /// Why it does not hold here now (empty: it holds).
    pub reasons: Vec<String>,
}

/// What a restore replays.
#[napi(object)]
pub struct CacheReplay {
    /// The command's stdout.
    pub stdout: Buffer,
    /// The command's stderr.
    pub stderr: Buffer,
}

fn env_map(env: HashMap<String, Option<String>>) -> HashMap<String, String> {
    env.into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect()
}

/// A local cache of task entries for one checkout (the core's `Store`).
#[napi]
pub struct NativeCacheStore {
    store: Arc<Mutex<Store>>,
}

#[napi]
impl NativeCacheStore {
    /// A store in `dir` for the checkout at `root`.
    #[napi(constructor, catch_unwind)]
    pub fn new(dir: String, root: String) -> Result<Self> {
        Ok(Self {
            store: Arc::new(Mutex::new(Store::open(dir, root).map_err(cache_error)?)),
        })
    }

    /// The newest entry of `task` whose inputs and env still hold, or why none does.
    #[napi(ts_return_type = "Promise<CacheLookup>", catch_unwind)]
    pub fn lookup(
        &self,
        task: String,
        env: HashMap<String, Option<String>>,
    ) -> AsyncTask<LookupTask> {
        AsyncTask::new(LookupTask {
            store: self.store.clone(),
            task,
            env: env_map(env),
        })
    }

    /// Every local entry of `task`, newest first, with why each does not hold.
    #[napi(ts_return_type = "Promise<CacheEntryState[]>", catch_unwind)]
    pub fn entries(
        &self,
        task: String,
        env: HashMap<String, Option<String>>,
    ) -> AsyncTask<EntriesTask> {
        AsyncTask::new(EntriesTask {
            store: self.store.clone(),
            task,
            env: env_map(env),
        })
    }

    /// Checks a manifest from elsewhere (a remote index) and says why it
    /// does not hold here (empty: it holds). Rejects a malformed manifest.
    #[napi(ts_return_type = "Promise<string[]>", catch_unwind)]
    pub fn stale_reasons(
        &self,
        manifest: String,
        env: HashMap<String, Option<String>>,
    ) -> AsyncTask<StaleTask> {
        AsyncTask::new(StaleTask {
            store: self.store.clone(),
            manifest,
            env: env_map(env),
        })
    }

    /// Restores a local entry (its manifest as `lookup` gave it): every member
    /// checked before anything is placed. Resolves with stdout and stderr.
    #[napi(ts_return_type = "Promise<CacheReplay>", catch_unwind)]
    pub fn restore(&self, manifest: String) -> AsyncTask<RestoreTask> {
        AsyncTask::new(RestoreTask {
            store: self.store.clone(),
            manifest,
        })
    }

    /// Stores a finished run by the core's rules (`Store::store_run`);
    /// resolves with JSON: `{ stored: true, manifest, overruled, key }` or
    /// `{ stored: false, reasons }`.
    #[napi(
        ts_args_type = "task: string, reports: unknown, run: CacheRun",
        ts_return_type = "Promise<CacheStored>",
        catch_unwind
    )]
    pub fn store(
        &self,
        task: String,
        reports: Value,
        run: CacheRun,
    ) -> Result<AsyncTask<StoreRunTask>> {
        let reports: Reports = serde_json::from_value(reports)
            .map_err(|err| invalid(format!("not valid reports: {err}")))?;
        let before = run
            .before
            .map(|json| {
                serde_json::from_str(&json)
                    .map_err(|err| invalid(format!("not a repository snapshot: {err}")))
            })
            .transpose()?;
        let parts = RunParts {
            outcome: CommandOutcome {
                exit_code: run.exit_code,
                signal: run.signal,
            },
            started_at: SystemTime::UNIX_EPOCH
                + Duration::from_millis(run.started_at_ms.max(0.0) as u64),
            stdout: run.stdout.to_vec(),
            stderr: run.stderr.to_vec(),
            before,
            inputs: run.inputs.into_iter().map(PathBuf::from).collect(),
            outputs: run.outputs.into_iter().map(PathBuf::from).collect(),
            cacheable_despite: run.cacheable_despite,
        };
        Ok(AsyncTask::new(StoreRunTask {
            store: self.store.clone(),
            task,
            reports,
            run: parts,
        }))
    }

    /// The repository's content now, as JSON, for a run that may have no
    /// complete trace: take it before the run and give it to `store`. Rejects
    /// with the reason where the root is in no git repository.
    #[napi(ts_return_type = "Promise<string>", catch_unwind)]
    pub fn repo_snapshot(&self) -> AsyncTask<RepoSnapshotTask> {
        AsyncTask::new(RepoSnapshotTask {
            store: self.store.clone(),
        })
    }

    /// Adds an archive downloaded from a remote cache as a local entry, once
    /// all of it checked out against `manifest` (the index line validated).
    #[napi(ts_return_type = "Promise<void>", catch_unwind)]
    pub fn import(&self, manifest: String, bytes: Buffer) -> AsyncTask<ImportTask> {
        AsyncTask::new(ImportTask {
            store: self.store.clone(),
            manifest,
            bytes: bytes.to_vec(),
        })
    }

    /// The archive of a local entry, to upload.
    #[napi(ts_return_type = "Promise<Buffer>", catch_unwind)]
    pub fn read_entry(&self, task: String, id: String) -> AsyncTask<ReadEntryTask> {
        AsyncTask::new(ReadEntryTask {
            store: self.store.clone(),
            task,
            id,
        })
    }

    /// Removes a local entry.
    #[napi(catch_unwind)]
    pub fn remove(&self, task: String, id: String) {
        lock(&self.store).remove(&task, &id);
    }

    /// Removes every local entry of `task`; returns how many there were.
    #[napi(catch_unwind)]
    pub fn clean_task(&self, task: String) -> u32 {
        u32::try_from(lock(&self.store).clean_task(&task)).unwrap_or(u32::MAX)
    }

    /// Persists the stat cache beside the entries.
    #[napi(catch_unwind)]
    pub fn save_stat_cache(&self) {
        lock(&self.store).save_stat_cache();
    }

    /// Files hashed so far (not answered from the stat cache).
    #[napi(getter, catch_unwind)]
    pub fn hashed(&self) -> f64 {
        lock(&self.store).hashed() as f64
    }
}

/// Checks a manifest from anywhere and returns it as the store writes it;
/// throws with the reason when it is malformed.
#[napi(catch_unwind)]
pub fn check_cache_manifest(manifest: String) -> Result<String> {
    Ok(to_json(&parse_manifest(&manifest)?))
}

/// The `x-artifact-tag` of `body` under `hash` for `team`, as Turborepo
/// signs artifacts with `TURBO_REMOTE_CACHE_SIGNATURE_KEY`.
#[napi(catch_unwind)]
pub fn artifact_tag(key: String, hash: String, team: String, body: Buffer) -> String {
    cache::sign::artifact_tag(key.as_bytes(), &hash, &team, &body)
}

/// Whether `tag` is the `x-artifact-tag` of `body` under `hash` for `team`.
#[napi(catch_unwind)]
pub fn verify_artifact_tag(
    key: String,
    hash: String,
    team: String,
    body: Buffer,
    tag: String,
) -> bool {
    cache::sign::verify_artifact_tag(key.as_bytes(), &hash, &team, &body, &tag)
}
