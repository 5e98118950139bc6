//! Storing a finished run by the core's rules (`Store::store_run`), as a
//! Rust runner does with its server's reports and as the Node package's
//! `Cache.store` does through the addon: the verdict, the key a run gets,
//! outputs that stay inside the root, and values that contradict.
#![cfg(unix)]

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use runner_aware::cache::{KeyKind, Lookup, Run, Store, Stored};
use runner_aware::reports::{Reports, UncacheableKind, UncacheableReason};
use runner_aware::rules::CommandOutcome;
use runner_aware::trace::{Trace, TraceMode};

const TASK: &str = "node build.mjs";

struct Fx {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    store: Store,
}

fn fx() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let root = base.join("root");
    fs::create_dir_all(root.join("src")).unwrap();
    fs::write(root.join("src/in.txt"), "input").unwrap();
    fs::create_dir_all(root.join("dist")).unwrap();
    fs::write(root.join("dist/out.txt"), "output").unwrap();
    let store = Store::open(base.join("cache"), &root).unwrap();
    Fx {
        _tmp: tmp,
        root,
        store,
    }
}

/// What a run looks like once its tools declared `src/in.txt` and `dist`.
fn declared(fx: &Fx) -> Reports {
    let path = |rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    Reports {
        inputs: [path("src/in.txt")].into(),
        outputs: [path("dist")].into(),
        cacheable: true,
        ..Reports::default()
    }
}

/// Reports of a traced run, as a server returns them: the trace attached
/// and its reasons in the verdict.
fn traced(trace: Trace) -> Reports {
    let mut reports = Reports {
        cacheable: true,
        ..Reports::default()
    };
    runner_aware::rules::apply_trace_and_ignores(&mut reports, Some(trace), &[]);
    reports
}

/// Stores `reports` as a run of [`TASK`] that exited 0, started after the
/// fixture's files were written.
fn store(fx: &mut Fx, reports: &Reports) -> Stored {
    fx.store
        .store_run(TASK, &Run::new(reports, ok(), started()))
        .unwrap()
}

/// Looks [`TASK`] up against an empty env.
fn look_up(fx: &mut Fx) -> Lookup {
    fx.store.lookup(TASK, &Default::default())
}

fn ok() -> CommandOutcome {
    CommandOutcome {
        exit_code: Some(0),
        signal: None,
    }
}

/// A start time after the fixture's files were written: none of them
/// changed while the command ran.
fn started() -> SystemTime {
    SystemTime::now() + Duration::from_secs(1)
}

fn reasons(stored: Stored) -> Vec<String> {
    match stored {
        Stored::NotStored { reasons } => reasons,
        Stored::Stored { .. } => panic!("stored"),
    }
}

#[test]
fn a_declared_run_is_stored_and_then_hits() {
    let mut fx = fx();
    let reports = declared(&fx);
    let stored = store(&mut fx, &reports);
    let Stored::Stored { manifest, key, .. } = stored else {
        panic!("not stored: {stored:?}");
    };
    assert_eq!(key, KeyKind::Declared);
    let outputs: Vec<&str> = manifest
        .outputs
        .iter()
        .map(|output| output.path())
        .collect();
    assert!(outputs.contains(&"dist/out.txt"), "{outputs:?}");
    assert!(matches!(look_up(&mut fx), Lookup::Hit(_)));
    fs::write(fx.root.join("src/in.txt"), "edited").unwrap();
    assert!(matches!(look_up(&mut fx), Lookup::Miss { .. }));
}

#[test]
fn a_failed_or_killed_command_is_never_stored() {
    let mut fx = fx();
    let reports = declared(&fx);
    let failed = CommandOutcome {
        exit_code: Some(2),
        signal: None,
    };
    assert_eq!(
        reasons(
            fx.store
                .store_run(TASK, &Run::new(&reports, failed, started()))
                .unwrap()
        ),
        ["exit: the command exited with code 2"]
    );
    let killed = CommandOutcome {
        exit_code: None,
        signal: Some("SIGKILL".into()),
    };
    assert_eq!(
        reasons(
            fx.store
                .store_run(TASK, &Run::new(&reports, killed, started()))
                .unwrap()
        ),
        ["exit: the command was killed by SIGKILL"]
    );
}

#[test]
fn a_disable_cache_is_not_stored_unless_the_user_overrules_its_caller() {
    let mut fx = fx();
    let mut reports = declared(&fx);
    reports.cacheable = false;
    reports.not_cacheable = vec![UncacheableReason {
        kind: UncacheableKind::DisableCache,
        message: "dev server".into(),
        pid: Some(7),
        caller: Some("vite … _createServer".into()),
        command: None,
    }];
    let run = Run::new(&reports, ok(), started());
    assert_eq!(
        reasons(fx.store.store_run(TASK, &run).unwrap()),
        ["disable-cache: dev server, from vite … _createServer (pid 7)"]
    );
    let run = Run {
        cacheable_despite: Some(vec!["vite".into()]),
        ..run
    };
    let Stored::Stored { overruled, .. } = fx.store.store_run(TASK, &run).unwrap() else {
        panic!("not stored");
    };
    assert_eq!(overruled.len(), 1);
}

#[test]
fn outputs_outside_the_root_are_refused() {
    let mut fx = fx();
    let mut reports = declared(&fx);
    // Not in a temp directory, whose stray writes are scratch, not outputs.
    reports.outputs.insert("/srv/elsewhere/out.js".to_owned());
    let got = reasons(store(&mut fx, &reports));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("outputs outside the root: ") && got[0].contains("elsewhere"),
        "{got:?}"
    );
}

#[test]
fn nothing_keys_a_run_with_no_input_and_no_snapshot() {
    let mut fx = fx();
    let reports = Reports {
        cacheable: true,
        ..Reports::default()
    };
    let got = reasons(store(&mut fx, &reports));
    assert!(got[0].contains("no inputs known"), "{got:?}");
}

#[test]
fn an_incomplete_trace_is_not_stored_on_the_trace() {
    let mut fx = fx();
    let mut reports = declared(&fx);
    let trace = Trace {
        mode: TraceMode::Preload,
        complete: false,
        incomplete: vec!["a static program ran".into()],
        read: vec![fx.root.join("src/in.txt").to_string_lossy().into_owned()],
        ..Trace::default()
    };
    runner_aware::rules::apply_trace_and_ignores(&mut reports, Some(trace), &[]);
    assert!(!reports.cacheable);
    let got = reasons(store(&mut fx, &reports));
    assert_eq!(
        got,
        ["trace: the file-access trace may be incomplete: a static program ran"]
    );
}

#[test]
fn values_that_contradict_drop_both_entries() {
    let mut fx = fx();
    let mut reports = declared(&fx);
    reports.values.insert("config".into(), "one".into());
    assert!(matches!(store(&mut fx, &reports), Stored::Stored { .. }));
    reports.values.insert("config".into(), "two".into());
    let got = reasons(store(&mut fx, &reports));
    assert!(got[0].starts_with("value config changed"), "{got:?}");
    assert!(fx.store.entries(TASK).0.is_empty());
}

/// Reports of a traced run that listed the root and `node_modules`, read
/// `src/in.txt` and wrote `dist/out.txt`.
fn listed(fx: &Fx) -> Reports {
    let path = |rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    let reports = traced(Trace {
        mode: TraceMode::Preload,
        complete: true,
        read: vec![path("src/in.txt")],
        listed: vec![fx.root.to_string_lossy().into_owned(), path("node_modules")],
        written: vec![path("dist"), path("dist/out.txt")],
        ..Trace::default()
    });
    reports
}

#[test]
fn a_listing_leaves_out_the_tasks_outputs_and_the_caches_own_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap().join("root");
    fs::create_dir_all(root.join("src")).unwrap();
    fs::create_dir_all(root.join("node_modules/dep")).unwrap();
    fs::write(root.join("src/in.txt"), "input").unwrap();
    fs::create_dir_all(root.join("dist")).unwrap();
    fs::write(root.join("dist/out.txt"), "output").unwrap();
    // The runner's cache where runners keep theirs: it appears in the
    // `node_modules` listing once the first entry is stored.
    let mut fx = Fx {
        store: Store::open(root.join("node_modules/.cache/runner"), &root).unwrap(),
        _tmp: tmp,
        root,
    };
    let reports = listed(&fx);
    let Stored::Stored { key, .. } = store(&mut fx, &reports) else {
        panic!("not stored");
    };
    assert_eq!(key, KeyKind::Trace);
    assert!(fx.root.join("node_modules/.cache").is_dir());
    // The second run, with the cache's directory in node_modules: a hit.
    assert!(matches!(look_up(&mut fx), Lookup::Hit(_)));
    // A clean checkout, as on CI: no dist. Still a hit, and the restore brings it back.
    fs::remove_dir_all(fx.root.join("dist")).unwrap();
    let Lookup::Hit(entry) = look_up(&mut fx) else {
        panic!("a clean checkout missed");
    };
    fx.store.restore(&entry).unwrap();
    assert_eq!(
        fs::read_to_string(fx.root.join("dist/out.txt")).unwrap(),
        "output"
    );
    // What the task could have seen in its listing still counts.
    fs::write(fx.root.join("new.txt"), "").unwrap();
    let Lookup::Miss { reasons } = look_up(&mut fx) else {
        panic!("a new name in a listed directory hit");
    };
    assert_eq!(reasons, ["input . changed"]);
}

#[test]
fn an_input_that_changes_while_the_command_runs_is_not_stored() {
    let path = |fx: &Fx, rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    let traced = |fx: &Fx, trace: Trace| {
        traced(Trace {
            mode: TraceMode::Preload,
            complete: true,
            written: vec![path(fx, "dist"), path(fx, "dist/out.txt")],
            ..trace
        })
    };

    // A file it read, deleted before the run ended.
    let mut fx = fx();
    let reports = traced(
        &fx,
        Trace {
            read: vec![path(&fx, "src/in.txt")],
            ..Trace::default()
        },
    );
    fs::remove_file(fx.root.join("src/in.txt")).unwrap();
    let got = reasons(store(&mut fx, &reports));
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("inputs changed while the command ran: ")
            && got[0].ends_with("in.txt (removed)"),
        "{got:?}"
    );

    // A file it looked for in vain, there by the end.
    let mut fx = self::fx();
    let reports = traced(
        &fx,
        Trace {
            read: vec![path(&fx, "src/in.txt")],
            missing: vec![path(&fx, ".env.production")],
            ..Trace::default()
        },
    );
    fs::write(fx.root.join(".env.production"), "VITE_X=1").unwrap();
    let got = reasons(store(&mut fx, &reports));
    assert!(got[0].ends_with(".env.production (added)"), "{got:?}");

    // A file added to a directory it listed, while it ran.
    let mut fx = self::fx();
    let reports = traced(
        &fx,
        Trace {
            read: vec![path(&fx, "src/in.txt")],
            listed: vec![path(&fx, "src")],
            ..Trace::default()
        },
    );
    std::thread::sleep(Duration::from_millis(50));
    let began = SystemTime::now();
    fs::write(fx.root.join("src/extra.ts"), "export {}").unwrap();
    let got = reasons(
        fx.store
            .store_run(TASK, &Run::new(&reports, ok(), began))
            .unwrap(),
    );
    assert_eq!(got, ["inputs changed while the command ran: src"]);
}

/// A traced run that wrote `dist/out.txt`, having deleted `deleted` first.
fn wrote_dist(fx: &Fx, deleted: &[&str]) -> Reports {
    let path = |rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    let reports = traced(Trace {
        mode: TraceMode::Preload,
        complete: true,
        read: vec![path("src/in.txt")],
        written: vec![path("dist"), path("dist/out.txt")],
        deleted: deleted.iter().map(|rel| path(rel)).collect(),
        ..Trace::default()
    });
    reports
}

#[test]
fn a_restore_empties_what_the_recorded_run_emptied_and_nothing_else() {
    // Vite's way: it empties outDir, then writes. The restore does the same.
    let mut fx = fx();
    let reports = wrote_dist(&fx, &["dist/old-1a2b.js"]);
    let Stored::Stored { manifest, .. } = store(&mut fx, &reports) else {
        panic!("not stored");
    };
    assert_eq!(manifest.emptied, ["dist"]);
    fs::write(fx.root.join("dist/stale-9f8e.js"), "an older build's").unwrap();
    fs::create_dir_all(fx.root.join("dist/assets")).unwrap();
    fs::write(fx.root.join("dist/assets/older.css"), "").unwrap();
    fx.store.restore(&manifest).unwrap();
    let mut names: Vec<String> = fs::read_dir(fx.root.join("dist"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["out.txt"]);

    // tsc's way: it never deletes. Old files stay, as a real run leaves them.
    let mut fx = self::fx();
    let reports = wrote_dist(&fx, &[]);
    let Stored::Stored { manifest, .. } = store(&mut fx, &reports) else {
        panic!("not stored");
    };
    assert!(manifest.emptied.is_empty());
    fs::write(fx.root.join("dist/stale.js"), "kept").unwrap();
    fx.store.restore(&manifest).unwrap();
    assert_eq!(
        fs::read_to_string(fx.root.join("dist/stale.js")).unwrap(),
        "kept"
    );
}

#[test]
fn emptying_never_goes_through_a_link() {
    let mut fx = fx();
    let reports = wrote_dist(&fx, &["dist/old.js"]);
    let Stored::Stored { manifest, .. } = store(&mut fx, &reports) else {
        panic!("not stored");
    };
    // dist is now a link to a directory outside the checkout.
    let outside = fx.root.parent().unwrap().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("sentinel"), "must stay").unwrap();
    fs::remove_dir_all(fx.root.join("dist")).unwrap();
    std::os::unix::fs::symlink(&outside, fx.root.join("dist")).unwrap();
    let err = fx.store.restore(&manifest).unwrap_err().to_string();
    assert!(err.contains("dist"), "{err}");
    assert_eq!(
        fs::read_to_string(outside.join("sentinel")).unwrap(),
        "must stay"
    );
}

#[test]
fn a_restore_empties_a_directory_another_run_of_the_task_emptied() {
    // The first run, on a clean checkout, had nothing to delete: its entry
    // cannot say the tool empties dist. A later run of the task did.
    let mut fx = fx();
    fs::remove_dir_all(fx.root.join("dist")).unwrap();
    fs::create_dir_all(fx.root.join("dist")).unwrap();
    fs::write(fx.root.join("dist/out.txt"), "output").unwrap();
    let first = wrote_dist(&fx, &[]);
    let Stored::Stored {
        manifest: clean, ..
    } = store(&mut fx, &first)
    else {
        panic!("not stored");
    };
    assert!(clean.emptied.is_empty());
    // An edit, and a run that empties dist and writes another file.
    fs::write(fx.root.join("src/in.txt"), "edited").unwrap();
    fs::remove_file(fx.root.join("dist/out.txt")).unwrap();
    fs::write(fx.root.join("dist/other-3c4d.js"), "the edited build's").unwrap();
    let path = |rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    let second = traced(Trace {
        mode: TraceMode::Preload,
        complete: true,
        read: vec![path("src/in.txt")],
        written: vec![path("dist"), path("dist/other-3c4d.js")],
        deleted: vec![path("dist/out.txt")],
        ..Trace::default()
    });
    let Stored::Stored {
        manifest: edited, ..
    } = store(&mut fx, &second)
    else {
        panic!("not stored");
    };
    assert_eq!(edited.emptied, ["dist"]);
    // The edit reverted: the first entry hits, and its restore leaves dist
    // as the tool would, without the edited build's file.
    fs::write(fx.root.join("src/in.txt"), "input").unwrap();
    let Lookup::Hit(hit) = look_up(&mut fx) else {
        panic!("the reverted edit missed");
    };
    assert_eq!(hit.id, clean.id);
    fx.store.restore(&hit).unwrap();
    let names: Vec<String> = fs::read_dir(fx.root.join("dist"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["out.txt"]);
}

#[test]
fn a_listing_above_the_checkout_keys_only_what_a_tool_could_use_there() {
    // esbuild lists every directory above the project looking for
    // package.json, tsconfig.json and node_modules.
    let mut fx = fx();
    let above = fx.root.parent().unwrap().to_path_buf();
    let path = |rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    let reports = traced(Trace {
        mode: TraceMode::Preload,
        complete: true,
        read: vec![path("src/in.txt")],
        listed: vec![above.to_string_lossy().into_owned()],
        written: vec![path("dist"), path("dist/out.txt")],
        ..Trace::default()
    });
    assert!(matches!(store(&mut fx, &reports), Stored::Stored { .. }));
    // Churn of a shared directory: another program's files come and go.
    fs::write(above.join("some-other-program.log"), "").unwrap();
    fs::create_dir_all(above.join("another-checkout")).unwrap();
    // A temporary directory, as the tempfile crate names them.
    fs::create_dir_all(above.join(".tmpA1b2C3")).unwrap();
    assert!(matches!(look_up(&mut fx), Lookup::Hit(_)));
    // A dot-file of configuration is not churn.
    fs::write(above.join(".babelrc"), "{}").unwrap();
    let Lookup::Miss { reasons } = look_up(&mut fx) else {
        panic!("a .babelrc above the checkout hit");
    };
    assert!(reasons[0].ends_with(" changed"), "{reasons:?}");
    fs::remove_file(above.join(".babelrc")).unwrap();
    // A file a tool resolving upward would pick up is a miss.
    fs::write(above.join("tsconfig.json"), "{}").unwrap();
    let Lookup::Miss { reasons } = look_up(&mut fx) else {
        panic!("a tsconfig.json above the checkout hit");
    };
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].ends_with(" changed"), "{reasons:?}");
}

#[test]
fn a_file_moved_into_a_listed_directory_while_the_command_runs_is_not_stored() {
    // `mv` keeps a file's birth and modification times: only its change
    // time says it arrived in the listed directory after the start.
    let path = |fx: &Fx, rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    let mut fx = fx();
    let elsewhere = fx.root.parent().unwrap().join("elsewhere.ts");
    fs::write(&elsewhere, "export {}").unwrap();
    let reports = traced(Trace {
        mode: TraceMode::Preload,
        complete: true,
        read: vec![path(&fx, "src/in.txt")],
        listed: vec![path(&fx, "src")],
        written: vec![path(&fx, "dist"), path(&fx, "dist/out.txt")],
        ..Trace::default()
    });
    std::thread::sleep(Duration::from_millis(50));
    let began = SystemTime::now();
    fs::rename(&elsewhere, fx.root.join("src/moved.ts")).unwrap();
    let got = reasons(
        fx.store
            .store_run(TASK, &Run::new(&reports, ok(), began))
            .unwrap(),
    );
    assert_eq!(got, ["inputs changed while the command ran: src"]);
}

#[test]
fn a_name_removed_from_a_listed_directory_while_the_command_runs_is_not_stored() {
    // A route generator lists `src` and writes a route per name, reading
    // none of them: a name gone by the end was in what it listed.
    let path = |fx: &Fx, rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    let mut fx = fx();
    fs::write(fx.root.join("src/old-page.ts"), "export {}").unwrap();
    let reports = traced(Trace {
        mode: TraceMode::Preload,
        complete: true,
        read: vec![path(&fx, "src/in.txt")],
        listed: vec![path(&fx, "src")],
        written: vec![path(&fx, "dist"), path(&fx, "dist/out.txt")],
        ..Trace::default()
    });
    std::thread::sleep(Duration::from_millis(50));
    let began = SystemTime::now();
    fs::remove_file(fx.root.join("src/old-page.ts")).unwrap();
    let got = reasons(
        fx.store
            .store_run(TASK, &Run::new(&reports, ok(), began))
            .unwrap(),
    );
    assert_eq!(got, ["inputs changed while the command ran: src"]);
}

#[test]
fn a_file_changed_in_a_declared_input_directory_while_the_command_runs_is_not_stored() {
    // The runner declared `src` whole; an editor saves `src/in.txt` in place
    // halfway through the build.
    let mut fx = fx();
    let path = |rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    let reports = Reports {
        inputs: [path("src")].into(),
        outputs: [path("dist")].into(),
        cacheable: true,
        ..Reports::default()
    };
    std::thread::sleep(Duration::from_millis(50));
    let began = SystemTime::now();
    fs::write(fx.root.join("src/in.txt"), "edited").unwrap();
    let got = reasons(
        fx.store
            .store_run(TASK, &Run::new(&reports, ok(), began))
            .unwrap(),
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("inputs changed while the command ran: src"),
        "{got:?}"
    );
}

#[test]
fn a_declared_input_directory_holding_the_outputs_is_stored() {
    // The whole checkout declared, `dist` written in it while the build ran.
    let mut fx = fx();
    let path = |rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    let reports = Reports {
        inputs: [fx.root.to_string_lossy().into_owned()].into(),
        outputs: [path("dist")].into(),
        cacheable: true,
        ..Reports::default()
    };
    std::thread::sleep(Duration::from_millis(50));
    let began = SystemTime::now();
    fs::remove_dir_all(fx.root.join("dist")).unwrap();
    fs::create_dir_all(fx.root.join("dist/assets")).unwrap();
    fs::write(fx.root.join("dist/assets/out.js"), "built").unwrap();
    assert!(matches!(
        fx.store
            .store_run(TASK, &Run::new(&reports, ok(), began))
            .unwrap(),
        Stored::Stored { .. }
    ));
}

/// A traced run that read `src/in.txt` and its own `dist/out.txt`, then
/// rewrote `dist/out.txt` (a generator that compares before it writes).
fn read_then_rewrote_dist(fx: &Fx) -> Reports {
    let path = |rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    traced(Trace {
        mode: TraceMode::Preload,
        complete: true,
        read: vec![path("dist/out.txt"), path("src/in.txt")],
        written: vec![path("dist"), path("dist/out.txt")],
        read_then_written: vec![path("dist/out.txt")],
        ..Trace::default()
    })
}

#[test]
fn a_run_that_rewrites_its_own_previous_output_is_stored_and_a_clean_checkout_hits_it() {
    let mut fx = fx();
    let first = wrote_dist(&fx, &[]);
    assert!(matches!(store(&mut fx, &first), Stored::Stored { .. }));
    // An input edit: the look-up misses with dist/out.txt as the first run
    // left it, and the run reads it and writes a new one.
    fs::write(fx.root.join("src/in.txt"), "input 2").unwrap();
    assert!(matches!(look_up(&mut fx), Lookup::Miss { .. }));
    fs::write(fx.root.join("dist/out.txt"), "output 2").unwrap();
    let second = read_then_rewrote_dist(&fx);
    let Stored::Stored { manifest, .. } = store(&mut fx, &second) else {
        panic!("not stored");
    };
    // Keyed on the inputs only: a clean checkout hits and gets the new output.
    assert!(!manifest
        .key
        .inputs
        .keys()
        .any(|path| path.contains("out.txt")));
    fs::remove_dir_all(fx.root.join("dist")).unwrap();
    let Lookup::Hit(hit) = look_up(&mut fx) else {
        panic!("a clean checkout missed");
    };
    fx.store.restore(&hit).unwrap();
    assert_eq!(
        fs::read_to_string(fx.root.join("dist/out.txt")).unwrap(),
        "output 2"
    );

    // What a restore placed counts as the task's own too.
    fs::write(fx.root.join("src/in.txt"), "input 3").unwrap();
    assert!(matches!(look_up(&mut fx), Lookup::Miss { .. }));
    fs::write(fx.root.join("dist/out.txt"), "output 3").unwrap();
    assert!(matches!(store(&mut fx, &second), Stored::Stored { .. }));
}

#[test]
fn a_run_that_rewrites_an_output_someone_edited_modified_its_input() {
    let mut fx = fx();
    let first = wrote_dist(&fx, &[]);
    assert!(matches!(store(&mut fx, &first), Stored::Stored { .. }));
    fs::write(fx.root.join("src/in.txt"), "input 2").unwrap();
    // Edited by hand after the task wrote it: what the run read is no
    // output of the task, and what it made of it is unknown.
    fs::write(fx.root.join("dist/out.txt"), "edited by hand").unwrap();
    assert!(matches!(look_up(&mut fx), Lookup::Miss { .. }));
    let second = read_then_rewrote_dist(&fx);
    let out = fx.root.join("dist/out.txt").to_string_lossy().into_owned();
    assert_eq!(
        reasons(store(&mut fx, &second)),
        [format!(
            "modified-input: the command modified its input: {out}"
        )]
    );

    // With no look-up before the run, nothing says what the file held.
    let mut fx = self::fx();
    let second = read_then_rewrote_dist(&fx);
    let out = fx.root.join("dist/out.txt").to_string_lossy().into_owned();
    assert_eq!(
        reasons(store(&mut fx, &second)),
        [format!(
            "modified-input: the command modified its input: {out}"
        )]
    );

    // Read and rewritten, but not left as an output (deleted at the end):
    // not the task's output, so still a modified input.
    let mut fx = self::fx();
    let first = wrote_dist(&fx, &[]);
    assert!(matches!(store(&mut fx, &first), Stored::Stored { .. }));
    fs::write(fx.root.join("src/in.txt"), "input 2").unwrap();
    assert!(matches!(look_up(&mut fx), Lookup::Miss { .. }));
    fs::remove_file(fx.root.join("dist/out.txt")).unwrap();
    fs::write(fx.root.join("dist/other.txt"), "other").unwrap();
    let path = |rel: &str| fx.root.join(rel).to_string_lossy().into_owned();
    let gone = traced(Trace {
        mode: TraceMode::Preload,
        complete: true,
        read: vec![path("dist/out.txt"), path("src/in.txt")],
        written: vec![path("dist/other.txt")],
        deleted: vec![path("dist/out.txt")],
        read_then_written: vec![path("dist/out.txt")],
        ..Trace::default()
    });
    let got = reasons(store(&mut fx, &gone));
    assert!(got[0].starts_with("modified-input"), "{got:?}");
}

#[test]
fn a_look_up_vouches_for_one_run_only() {
    let mut fx = fx();
    let first = wrote_dist(&fx, &[]);
    assert!(matches!(store(&mut fx, &first), Stored::Stored { .. }));
    fs::write(fx.root.join("src/in.txt"), "input 2").unwrap();
    assert!(matches!(look_up(&mut fx), Lookup::Miss { .. }));
    fs::write(fx.root.join("dist/out.txt"), "output 2").unwrap();
    let second = read_then_rewrote_dist(&fx);
    assert!(matches!(store(&mut fx, &second), Stored::Stored { .. }));
    // Edited by hand, then run again with no look-up in between: the
    // look-up before the last run says nothing of what this one read.
    fs::write(fx.root.join("dist/out.txt"), "edited by hand").unwrap();
    let out = fx.root.join("dist/out.txt").to_string_lossy().into_owned();
    assert_eq!(
        reasons(store(&mut fx, &second)),
        [format!(
            "modified-input: the command modified its input: {out}"
        )]
    );
}

#[test]
fn an_output_edited_in_the_tick_its_record_was_written_is_read_again() {
    use std::os::unix::fs::MetadataExt;
    let mut fx = fx();
    let first = wrote_dist(&fx, &[]);
    assert!(matches!(store(&mut fx, &first), Stored::Stored { .. }));
    fs::write(fx.root.join("src/in.txt"), "input 2").unwrap();
    // Rewritten by hand at once, the same length: where the clock's tick is
    // coarse, the file keeps the identity (inode, size, times) the record of
    // the store holds, and the record is no older than the edit.
    let out = fx.root.join("dist/out.txt");
    fs::write(&out, "OUTPUT").unwrap();
    let meta = fs::symlink_metadata(&out).unwrap();
    let identity = format!(
        "{}:{}:{}:{}:{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
    );
    let placed = fs::read_dir(fx.root.parent().unwrap().join("cache"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join(".placed.json"))
        .find(|path| path.exists())
        .expect("the store's record of what it placed");
    let record: std::collections::BTreeMap<String, (String, String)> =
        serde_json::from_str(&fs::read_to_string(&placed).unwrap()).unwrap();
    let record: std::collections::BTreeMap<String, (String, String)> = record
        .into_iter()
        .map(|(path, (sha256, _))| (path, (sha256, identity.clone())))
        .collect();
    fs::write(&placed, serde_json::to_string(&record).unwrap()).unwrap();
    let same_tick = Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg(format!("@{}.{:09}", meta.mtime(), meta.mtime_nsec()))
        .arg(&placed)
        .status()
        .unwrap();
    assert!(same_tick.success());
    assert!(matches!(look_up(&mut fx), Lookup::Miss { .. }));
    let second = read_then_rewrote_dist(&fx);
    let got = reasons(store(&mut fx, &second));
    assert!(got[0].starts_with("modified-input"), "{got:?}");

    // Left as the store left it, in that same tick: its bytes say so.
    let mut fx = self::fx();
    let first = wrote_dist(&fx, &[]);
    let second = read_then_rewrote_dist(&fx);
    assert!(matches!(store(&mut fx, &first), Stored::Stored { .. }));
    fs::write(fx.root.join("src/in.txt"), "input 2").unwrap();
    let meta = fs::symlink_metadata(fx.root.join("dist/out.txt")).unwrap();
    let placed = fs::read_dir(fx.root.parent().unwrap().join("cache"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join(".placed.json"))
        .find(|path| path.exists())
        .expect("the store's record of what it placed");
    let same_tick = Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg(format!("@{}.{:09}", meta.mtime(), meta.mtime_nsec()))
        .arg(&placed)
        .status()
        .unwrap();
    assert!(same_tick.success());
    assert!(matches!(look_up(&mut fx), Lookup::Miss { .. }));
    fs::write(fx.root.join("dist/out.txt"), "output 2").unwrap();
    assert!(matches!(store(&mut fx, &second), Stored::Stored { .. }));
}
