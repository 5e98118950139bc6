//! Where no complete trace exists, a run is keyed on its repository's
//! content: a real git repository, a real run's outputs, and each kind of
//! file mutated in turn.
#![cfg(unix)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use runner_aware::cache::repo::{RepoError, RepoSnapshot};
use runner_aware::cache::{Lookup, Store, StoreRequest};
use runner_aware::env_fingerprint::EnvFingerprint;
use runner_aware::fingerprint::StatCache;

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.email=ci@example.com", "-c", "user.name=ci"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(status.status.success(), "git {args:?}: {status:?}");
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A repository with tracked sources, a git-ignored `.env.local` and cache,
/// and the app in `packages/app`.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path();
    git(top, &["init", "-q"]);
    write(
        top,
        ".gitignore",
        "dist/\n.env.local\n.cache/\nnode_modules/\n",
    );
    write(top, "package-lock.json", "{}\n");
    write(top, "packages/app/src/main.js", "console.log(1)\n");
    write(top, "packages/lib/index.js", "export const x = 1\n");
    write(top, "packages/app/.env.local", "VITE_KEY=a\n");
    write(top, "packages/app/.cache/state", "1\n");
    write(top, "packages/app/node_modules/dep/index.js", "dep\n");
    git(top, &["add", "-A"]);
    git(top, &["commit", "-q", "-m", "init"]);
    dir
}

/// One run of the "build": reads nothing the store knows of, writes dist/.
fn run_and_store(store: &mut Store, app: &Path) -> Result<(), String> {
    let before = store.repo_snapshot().map_err(|err| err.to_string())?;
    let started_at = SystemTime::now();
    write(
        app,
        "dist/out.js",
        &fs::read_to_string(app.join("src/main.js")).unwrap(),
    );
    store
        .store(&StoreRequest {
            task: "build".into(),
            inputs: Vec::new(),
            env: EnvFingerprint::new(Default::default(), vec![], Default::default(), vec![]),
            outputs: Vec::new(),
            ignored_outputs: Vec::new(),
            ignored_inputs: vec![".cache".into()],
            deleted: Vec::new(),
            stdout: b"built\n".to_vec(),
            stderr: Vec::new(),
            started_at,
            overruled: Vec::new(),
            repo: Some(before),
        })
        .map(|manifest| {
            assert_eq!(
                manifest
                    .outputs
                    .iter()
                    .map(|o| o.path())
                    .collect::<Vec<_>>(),
                ["dist/out.js"],
                "what the run created is its output"
            );
        })
        .map_err(|err| err.to_string())
}

fn lookup(app: &Path, cache: &Path) -> Result<(), Vec<String>> {
    let mut store = Store::open(cache, app).unwrap();
    match store.lookup("build", &Default::default()) {
        Lookup::Hit(_) => Ok(()),
        Lookup::Miss { reasons } => Err(reasons),
    }
}

/// A look-up's answer when the one file `rel` changed.
fn changed(rel: &str) -> Result<(), Vec<String>> {
    Err(vec![format!("repository file {rel} changed")])
}

#[test]
fn every_file_of_the_repository_keys_the_run_but_outputs_and_ignored_inputs() {
    let repo = repository();
    let app = repo.path().join("packages/app");
    // A cache dir in the repository, as `--cache-dir .cache-runner` makes it:
    // what the store writes there is never part of a key.
    let cache = repo.path().join("packages/app/.cache-runner");
    let mut store = Store::open(&cache, &app).unwrap();
    run_and_store(&mut store, &app).unwrap();
    assert_eq!(lookup(&app, &cache), Ok(()));

    // Each kind of file, changed, misses by name; put back, it hits again.
    for (rel, text, reason) in [
        (
            "packages/app/src/main.js",
            "console.log(2)\n",
            "repository file packages/app/src/main.js changed",
        ),
        (
            "packages/lib/index.js",
            "export const x = 2\n",
            "repository file packages/lib/index.js changed",
        ),
        (
            "packages/app/.env.local",
            "VITE_KEY=b\n",
            "repository file packages/app/.env.local changed",
        ),
        (
            "package-lock.json",
            "{\"v\":2}\n",
            "repository file package-lock.json changed",
        ),
    ] {
        let path = repo.path().join(rel);
        let was = fs::read_to_string(&path).unwrap();
        fs::write(&path, text).unwrap();
        assert_eq!(lookup(&app, &cache), Err(vec![reason.to_owned()]), "{rel}");
        fs::write(&path, was).unwrap();
        assert_eq!(lookup(&app, &cache), Ok(()), "{rel} put back");
    }
    write(repo.path(), "notes.txt", "new\n");
    assert_eq!(
        lookup(&app, &cache),
        Err(vec!["repository file notes.txt added".to_owned()])
    );
    fs::remove_file(repo.path().join("notes.txt")).unwrap();

    // What the tools ignored, the run's own outputs and node_modules do not count.
    write(&app, ".cache/state", "2\n");
    fs::remove_file(app.join("dist/out.js")).unwrap();
    write(&app, "node_modules/dep/index.js", "patched\n");
    assert_eq!(lookup(&app, &cache), Ok(()));
    let replay = {
        let mut store = Store::open(&cache, &app).unwrap();
        let Lookup::Hit(manifest) = store.lookup("build", &Default::default()) else {
            panic!("a hit");
        };
        store.restore(&manifest).unwrap()
    };
    assert_eq!(replay.stdout, b"built\n");
    assert_eq!(
        fs::read_to_string(app.join("dist/out.js")).unwrap(),
        "console.log(1)\n"
    );

    // A rebuild over what an entry of the task restored is stored; a run
    // that rewrites any other file that was there (one it may have read, as
    // a formatter does) is not.
    let mut store = Store::open(&cache, &app).unwrap();
    write(&app, "src/main.js", "console.log(3)\n");
    run_and_store(&mut store, &app).unwrap();
    write(&app, "src/main.js", "console.log(4)\n");
    let mut other = Store::open(repo.path().join("other-cache"), &app).unwrap();
    let err = run_and_store(&mut other, &app).unwrap_err();
    assert!(
        err.contains("it may have read: packages/app/dist/out.js"),
        "{err}"
    );
}

#[test]
fn each_look_up_of_a_long_lived_store_sees_the_repository_as_it_is_then() {
    let repo = repository();
    let app = repo.path().join("packages/app");
    let mut store = Store::open(repo.path().join("cache"), &app).unwrap();
    run_and_store(&mut store, &app).unwrap();
    assert!(matches!(
        store.lookup("build", &Default::default()),
        Lookup::Hit(_)
    ));
    // The same store, as a runner process keeps it across tasks: a file
    // changed since its last look-up is a miss, not the old snapshot's hit.
    write(&app, "src/main.js", "console.log(5)\n");
    let Lookup::Miss { reasons } = store.lookup("build", &Default::default()) else {
        panic!("a change after the last look-up was not seen");
    };
    assert_eq!(
        reasons,
        ["repository file packages/app/src/main.js changed"]
    );
}

#[test]
fn a_run_that_changes_the_repository_outside_its_root_is_not_stored() {
    let repo = repository();
    let app = repo.path().join("packages/app");
    let mut store = Store::open(repo.path().join("cache"), &app).unwrap();
    let before = store.repo_snapshot().unwrap();
    write(repo.path(), "packages/lib/generated.js", "x\n");
    let err = store
        .store(&StoreRequest {
            task: "build".into(),
            inputs: Vec::new(),
            env: EnvFingerprint::new(Default::default(), vec![], Default::default(), vec![]),
            outputs: Vec::new(),
            ignored_outputs: Vec::new(),
            ignored_inputs: Vec::new(),
            deleted: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            started_at: SystemTime::now(),
            overruled: Vec::new(),
            repo: Some(before),
        })
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("outside its root: packages/lib/generated.js"),
        "{err}"
    );
}

#[test]
fn without_git_there_is_no_repository_key() {
    let dir = tempfile::tempdir().unwrap();
    let err = RepoSnapshot::take(dir.path(), &[], &StatCache::new()).unwrap_err();
    assert!(matches!(err, RepoError::NotGit(_)), "{err}");
}

#[test]
fn a_file_rewritten_unchanged_hits_and_one_made_executable_misses() {
    let repo = repository();
    let app = repo.path().join("packages/app");
    let cache = repo.path().join("packages/app/.cache-runner");
    let mut store = Store::open(&cache, &app).unwrap();
    run_and_store(&mut store, &app).unwrap();
    // New times and inode, the same bytes (a branch switched and back): the
    // stat data git recorded no longer holds, and the bytes decide.
    let lib = repo.path().join("packages/lib/index.js");
    let bytes = fs::read(&lib).unwrap();
    fs::remove_file(&lib).unwrap();
    fs::write(&lib, &bytes).unwrap();
    assert_eq!(lookup(&app, &cache), Ok(()));
    // Every entry racily clean (the index no older than the files): each is
    // read, and the unchanged ones still hit.
    let index = repo.path().join(".git/index");
    let old = Command::new("touch")
        .args(["-d", "2000-01-01"])
        .arg(&index)
        .status()
        .unwrap();
    assert!(old.success());
    assert_eq!(lookup(&app, &cache), Ok(()));
    // The same bytes made executable: git sees a change, and so does the key.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&lib, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(lookup(&app, &cache), changed("packages/lib/index.js"));
}

#[test]
fn a_mode_git_records_keys_the_run_as_the_bytes_do() {
    use std::os::unix::fs::PermissionsExt;
    let repo = repository();
    let top = repo.path();
    let app = top.join("packages/app");
    let cache = top.join("packages/app/.cache-runner");
    // A file whose bytes are a path: as a link to that path, git stores the
    // same blob under another mode.
    write(top, "packages/app/config", "../lib/index.js");
    git(top, &["add", "packages/app/config"]);
    git(top, &["commit", "-q", "-m", "config"]);
    let mut store = Store::open(&cache, &app).unwrap();
    run_and_store(&mut store, &app).unwrap();
    assert_eq!(lookup(&app, &cache), Ok(()));

    // Made a link and added: a tool reading it now reads another file.
    let config = app.join("config");
    fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("../lib/index.js", &config).unwrap();
    git(top, &["add", "packages/app/config"]);
    assert_eq!(lookup(&app, &cache), changed("packages/app/config"));
    fs::remove_file(&config).unwrap();
    write(top, "packages/app/config", "../lib/index.js");
    git(top, &["add", "packages/app/config"]);
    assert_eq!(lookup(&app, &cache), Ok(()));

    // Made executable and added: git's mode changed, the blob did not.
    let lib = top.join("packages/lib/index.js");
    fs::set_permissions(&lib, fs::Permissions::from_mode(0o755)).unwrap();
    git(top, &["add", "packages/lib/index.js"]);
    assert_eq!(lookup(&app, &cache), changed("packages/lib/index.js"));

    // The index and the file disagree on the executable bit both ways: the
    // file's bytes are the same, its mode is not.
    let mut store = Store::open(&cache, &app).unwrap();
    fs::set_permissions(&lib, fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_dir_all(app.join("dist")).unwrap();
    run_and_store(&mut store, &app).unwrap();
    assert_eq!(lookup(&app, &cache), Ok(()));
    git(
        top,
        &["update-index", "--chmod=-x", "packages/lib/index.js"],
    );
    fs::set_permissions(&lib, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(lookup(&app, &cache), changed("packages/lib/index.js"));
}

#[test]
fn a_file_git_is_told_to_assume_unchanged_or_skip_still_keys_the_run() {
    let repo = repository();
    let top = repo.path();
    let app = top.join("packages/app");
    let cache = top.join("packages/app/.cache-runner");
    let mut store = Store::open(&cache, &app).unwrap();
    run_and_store(&mut store, &app).unwrap();
    // `git status` trusts such an entry and never looks at the file; a tool
    // reads what is there.
    for flag in ["--assume-unchanged", "--skip-worktree"] {
        git(top, &["update-index", flag, "packages/lib/index.js"]);
        write(top, "packages/lib/index.js", "export const x = 2\n");
        assert_eq!(
            lookup(&app, &cache),
            changed("packages/lib/index.js"),
            "{flag}"
        );
        write(top, "packages/lib/index.js", "export const x = 1\n");
        let unset = flag.replacen("--", "--no-", 1);
        git(top, &["update-index", &unset, "packages/lib/index.js"]);
    }

    // So too where git decides what differs: an entry added with intent to
    // add (read here, not plain), and a split index (not read here).
    write(top, "packages/lib/later.js", "later\n");
    git(top, &["add", "-N", "packages/lib/later.js"]);
    for split in [false, true] {
        if split {
            git(top, &["update-index", "--split-index"]);
        }
        for flag in ["--assume-unchanged", "--skip-worktree"] {
            let mut store = Store::open(&cache, &app).unwrap();
            fs::remove_dir_all(app.join("dist")).unwrap();
            run_and_store(&mut store, &app).unwrap();
            assert_eq!(lookup(&app, &cache), Ok(()), "{flag}, split {split}");
            git(top, &["update-index", flag, "packages/lib/index.js"]);
            write(top, "packages/lib/index.js", "export const x = 2\n");
            assert_eq!(
                lookup(&app, &cache),
                changed("packages/lib/index.js"),
                "{flag}, split {split}"
            );
            write(top, "packages/lib/index.js", "export const x = 1\n");
            let unset = flag.replacen("--", "--no-", 1);
            git(top, &["update-index", &unset, "packages/lib/index.js"]);
        }
    }
}

#[test]
fn a_tracked_file_whose_name_is_not_utf8_keys_the_run() {
    use std::os::unix::ffi::OsStrExt;
    let repo = repository();
    let top = repo.path();
    let app = top.join("packages/app");
    let cache = top.join("packages/app/.cache-runner");
    let name = std::ffi::OsStr::from_bytes(b"packages/lib/caf\xe9.js");
    fs::write(top.join(name), "latin-1\n").unwrap();
    git(top, &["add", "packages/lib"]);
    git(top, &["commit", "-q", "-m", "latin-1 name"]);
    let mut store = Store::open(&cache, &app).unwrap();
    run_and_store(&mut store, &app).unwrap();
    assert_eq!(lookup(&app, &cache), Ok(()));
    fs::write(top.join(name), "edited!\n").unwrap();
    assert!(lookup(&app, &cache).is_err(), "an edit of it hits");

    // So too where git status decides (an entry added with intent to add),
    // from one edit to the next.
    fs::write(top.join(name), "edited 1\n").unwrap();
    write(top, "packages/lib/later.js", "later\n");
    git(top, &["add", "-N", "packages/lib/later.js"]);
    let mut store = Store::open(&cache, &app).unwrap();
    fs::remove_dir_all(app.join("dist")).unwrap();
    run_and_store(&mut store, &app).unwrap();
    assert_eq!(lookup(&app, &cache), Ok(()));
    fs::write(top.join(name), "edited 2\n").unwrap();
    assert!(
        lookup(&app, &cache).is_err(),
        "an edit of it hits git's way"
    );
}
