//! A local process racing a restore: while restores run in a loop, another
//! thread keeps swapping a directory of the checkout (`dist`, then
//! `dist/assets`) for a link to a directory outside it and back. Whatever
//! each restore makes of that (placed, or refused), nothing outside the
//! checkout may ever be written, created or removed. And the directory
//! handles that close the race hold for a tree of many directories.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use runner_aware::cache::{Manifest, Store, StoreRequest};
use runner_aware::env_fingerprint::EnvFingerprint;
use runner_aware::fingerprint::InputKind;
use tempfile::TempDir;

const TASK: &str = "vite build";

/// Restores per test; `RESTORE_RACE_ITERATIONS` asks for more.
fn iterations() -> usize {
    std::env::var("RESTORE_RACE_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(600)
}

/// The checkout (`root`), the cache dir, and `outside`, where the links
/// point: `dist` to `outside` itself, `dist/assets` to `outside/assets`.
struct Fx {
    _tmp: TempDir,
    root: PathBuf,
    cache: PathBuf,
    outside: PathBuf,
}

fn fx() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let (root, cache, outside) = (base.join("root"), base.join("cache"), base.join("outside"));
    fs::create_dir(&root).unwrap();
    // Sentinels under the very names a restore writes or removes.
    for rel in [
        "index.html",
        "app.js",
        "stale.js",
        "olddir/x.js",
        "assets/a0.js",
        "assets/a1.js",
        "assets/stale.js",
    ] {
        write(&outside.join(rel), b"sentinel");
    }
    Fx {
        _tmp: tmp,
        root,
        cache,
        outside,
    }
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// Every name under `dir`, links not followed, with what it is.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, u32, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, u32, Vec<u8>)>) {
        for item in fs::read_dir(dir).unwrap() {
            let path = item.unwrap().path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let bytes = if meta.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            if meta.is_dir() {
                walk(base, &path, out);
            }
            out.insert(rel, (meta.ino(), meta.mode(), bytes));
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What changed in `outside` since `before`: every name written, created or
/// removed there.
fn escapes(outside: &Path, before: &BTreeMap<String, (u64, u32, Vec<u8>)>) -> Vec<String> {
    let after = snapshot(outside);
    let mut changes: Vec<String> = before
        .iter()
        .filter_map(|(name, was)| match after.get(name) {
            None => Some(format!("removed {name}")),
            Some(now) if now != was => Some(format!("rewritten {name}")),
            Some(_) => None,
        })
        .collect();
    changes.extend(
        after
            .keys()
            .filter(|name| !before.contains_key(*name))
            .map(|name| format!("created {name}")),
    );
    changes
}

/// A run that wrote `dist/` (and deleted `deleted` in it), stored.
fn stored_run(fx: &Fx, deleted: &[&str]) -> (Store, Manifest) {
    stored_run_writing(fx, deleted, || {
        write(&fx.root.join("dist/index.html"), b"<script src=app.js>");
        write(&fx.root.join("dist/app.js"), b"console.log(1)\n");
        for i in 0..24 {
            write(
                &fx.root.join(format!("dist/assets/a{i}.js")),
                format!("export const a{i} = {i};\n").as_bytes(),
            );
        }
    })
}

/// A run that wrote `dist/` with `run` (and deleted `deleted` in it), stored.
fn stored_run_writing(fx: &Fx, deleted: &[&str], run: impl FnOnce()) -> (Store, Manifest) {
    write(&fx.root.join("src/in.txt"), b"export const a = 1;\n");
    std::thread::sleep(Duration::from_millis(30));
    let started_at = SystemTime::now();
    run();
    let mut store = Store::open(&fx.cache, &fx.root).unwrap();
    let manifest = store
        .store(&StoreRequest {
            task: TASK.to_owned(),
            inputs: vec![(fx.root.join("src/in.txt"), InputKind::Content)],
            env: EnvFingerprint::new(BTreeMap::new(), Vec::new(), BTreeMap::new(), Vec::new()),
            outputs: vec!["dist".to_owned()],
            ignored_outputs: Vec::new(),
            ignored_inputs: Vec::new(),
            deleted: deleted.iter().map(|rel| (*rel).to_owned()).collect(),
            repo: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            started_at,
            overruled: Vec::new(),
        })
        .unwrap();
    (store, manifest)
}

/// Swaps `dist` and `dist/assets` for links out of the checkout and back,
/// over and over, until told to stop. Holds `quiet` for each swap, so the
/// test can plant files in the checkout between them.
fn attacker(
    fx: &Fx,
    stop: Arc<AtomicBool>,
    quiet: Arc<Mutex<()>>,
) -> std::thread::JoinHandle<usize> {
    let targets = [
        (fx.root.join("dist"), fx.outside.clone()),
        (fx.root.join("dist/assets"), fx.outside.join("assets")),
    ];
    std::thread::spawn(move || {
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) {
            for (dir, target) in &targets {
                let _quiet = quiet.lock().unwrap();
                // `dist/assets` is only renamed while `dist` is a real
                // directory, so this thread never moves anything outside.
                let is_real_dir = |path: &Path| {
                    fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_dir())
                };
                if !is_real_dir(dir.parent().unwrap()) || !is_real_dir(dir) {
                    continue;
                }
                let aside = dir.with_extension("real");
                if fs::rename(dir, &aside).is_err() {
                    continue;
                }
                if symlink(target, dir).is_ok() {
                    swaps += 1;
                    for _ in 0..50 {
                        std::thread::yield_now();
                    }
                    if fs::symlink_metadata(dir).is_ok_and(|meta| meta.file_type().is_symlink()) {
                        let _ = fs::remove_file(dir);
                    }
                }
                // A restore may have made a new directory there meanwhile.
                if fs::rename(&aside, dir).is_err() {
                    let _ = fs::remove_dir_all(&aside);
                }
            }
            // Pauses of varying length, so restores also run in peace.
            std::thread::sleep(Duration::from_micros((swaps as u64 * 7919) % 500));
        }
        swaps
    })
}

/// Restores `manifest` `iterations()` times under attack, calling `plant`
/// (with the attacker paused) before each; returns how many restores went
/// through and how many were refused.
fn restore_under_attack(
    fx: &Fx,
    store: &Store,
    manifest: &Manifest,
    plant: impl Fn(),
) -> (usize, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = Arc::new(Mutex::new(()));
    let swapper = attacker(fx, stop.clone(), quiet.clone());
    let (mut placed, mut refused) = (0, 0);
    for _ in 0..iterations() {
        {
            let _quiet = quiet.lock().unwrap();
            plant();
        }
        match store.restore(manifest) {
            Ok(_) => placed += 1,
            Err(_) => refused += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("{swaps} swaps; {placed} restores placed, {refused} refused");
    assert!(swaps > 0, "the attacker never swapped a directory");
    (placed, refused)
}

/// What the checkout's `dist` must hold once the attack is over and the
/// entry is restored in peace.
fn assert_restored(fx: &Fx, store: &Store, manifest: &Manifest) {
    for aside in ["dist.real", "dist/assets.real"] {
        let _ = fs::remove_dir_all(fx.root.join(aside));
    }
    store.restore(manifest).unwrap();
    assert_eq!(
        fs::read(fx.root.join("dist/app.js")).unwrap(),
        b"console.log(1)\n"
    );
    assert_eq!(
        fs::read(fx.root.join("dist/assets/a23.js")).unwrap(),
        b"export const a23 = 23;\n"
    );
}

#[test]
fn swapping_a_directory_for_a_link_never_lets_a_restore_write_outside() {
    let fx = fx();
    let (store, manifest) = stored_run(&fx, &[]);
    assert!(manifest.emptied.is_empty());
    let outside_before = snapshot(&fx.outside);
    // Each restore stages and renames in every file again.
    restore_under_attack(&fx, &store, &manifest, || {});
    assert_eq!(escapes(&fx.outside, &outside_before), Vec::<String>::new());
    assert_restored(&fx, &store, &manifest);
    assert_eq!(escapes(&fx.outside, &outside_before), Vec::<String>::new());
}

#[test]
fn swapping_a_directory_for_a_link_never_lets_emptying_remove_outside() {
    let fx = fx();
    write(&fx.root.join("dist/old.js"), b"old");
    write(&fx.root.join("dist/assets/old.js"), b"old");
    let (store, manifest) = stored_run(&fx, &["dist/old.js", "dist/assets/old.js"]);
    assert_eq!(manifest.emptied, ["dist", "dist/assets"]);
    let outside_before = snapshot(&fx.outside);
    let plant = || {
        // What each restore must remove: stale files and a stale directory.
        let real =
            |path: &Path| fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_dir());
        if real(&fx.root.join("dist")) {
            let _ = fs::write(fx.root.join("dist/stale.js"), b"stale");
            let _ = fs::create_dir_all(fx.root.join("dist/olddir"));
            let _ = fs::write(fx.root.join("dist/olddir/x.js"), b"stale");
            if real(&fx.root.join("dist/assets")) {
                let _ = fs::write(fx.root.join("dist/assets/stale.js"), b"stale");
            }
        }
    };
    restore_under_attack(&fx, &store, &manifest, plant);
    assert_eq!(escapes(&fx.outside, &outside_before), Vec::<String>::new());
    plant();
    assert_restored(&fx, &store, &manifest);
    assert!(!fx.root.join("dist/stale.js").exists());
    assert!(!fx.root.join("dist/olddir").exists());
    assert!(!fx.root.join("dist/assets/stale.js").exists());
    assert_eq!(escapes(&fx.outside, &outside_before), Vec::<String>::new());
}

#[test]
fn an_entry_of_more_directories_than_handles_kept_open_restores() {
    let fx = fx();
    let (store, manifest) = stored_run_writing(&fx, &[], || {
        for i in 0..600 {
            write(
                &fx.root.join(format!("dist/d{i}/e/f.js")),
                format!("{i}").as_bytes(),
            );
        }
    });
    fs::remove_dir_all(fx.root.join("dist")).unwrap();
    store.restore(&manifest).unwrap();
    // Over what is there, every file is staged and renamed in again.
    store.restore(&manifest).unwrap();
    for i in 0..600 {
        assert_eq!(
            fs::read(fx.root.join(format!("dist/d{i}/e/f.js"))).unwrap(),
            format!("{i}").as_bytes()
        );
    }
    let strays: Vec<_> = snapshot(&fx.root.join("dist"))
        .into_keys()
        .filter(|name| name.contains(".runner-aware-"))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
}
