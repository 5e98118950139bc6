//! Attacks on the cache store, with real files and real archives: every
//! entry is hostile. Archives are forged byte by byte (tar headers written by
//! hand, then zstd), so a test can say anything a hostile writer could.
#![cfg(unix)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use runner_aware::cache::{
    archive, sign, BlobRecord, CacheError, EntryKey, InputRecord, Limits, Lookup, Manifest,
    OutputRecord, Store, StoreRequest, ENTRY_FORMAT,
};
use runner_aware::env_fingerprint::EnvFingerprint;
use runner_aware::fingerprint::{fingerprint_input, sha256_hex, InputKind, StatCache};
use tar::EntryType;
use tempfile::TempDir;

const TASK: &str = "vite build --mode production";

/// A temp dir holding the checkout (`root`), the cache dir and a sibling
/// `outside` that nothing may ever write to.
struct Fx {
    _tmp: TempDir,
    base: PathBuf,
    root: PathBuf,
    cache: PathBuf,
    outside: PathBuf,
}

fn fx() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let (root, cache, outside) = (base.join("root"), base.join("cache"), base.join("outside"));
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    Fx {
        _tmp: tmp,
        base,
        root,
        cache,
        outside,
    }
}

impl Fx {
    fn store(&self) -> Store {
        Store::open(&self.cache, &self.root).unwrap()
    }
}

fn env_fp(node_env: &str) -> EnvFingerprint {
    EnvFingerprint::new(
        BTreeMap::from([("NODE_ENV".to_owned(), Some(sha256_hex(node_env.as_bytes())))]),
        Vec::new(),
        BTreeMap::new(),
        Vec::new(),
    )
}

fn env_map(node_env: &str) -> HashMap<String, String> {
    HashMap::from([("NODE_ENV".to_owned(), node_env.to_owned())])
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// What a tree holds, links not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File {
        mode: u32,
        bytes: Vec<u8>,
        ino: Option<u64>,
    },
    Link(PathBuf),
    Dir(u32),
    Other,
}

fn snapshot(dir: &Path, with_ino: bool) -> BTreeMap<String, Node> {
    fn walk(base: &Path, dir: &Path, with_ino: bool, out: &mut BTreeMap<String, Node>) {
        let Ok(read) = fs::read_dir(dir) else { return };
        for item in read {
            let path = item.unwrap().path();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).unwrap();
            let node = if meta.file_type().is_symlink() {
                Node::Link(fs::read_link(&path).unwrap())
            } else if meta.is_dir() {
                walk(base, &path, with_ino, out);
                Node::Dir(meta.mode() & 0o7777)
            } else if meta.is_file() {
                Node::File {
                    mode: meta.mode() & 0o7777,
                    bytes: fs::read(&path).unwrap(),
                    ino: with_ino.then(|| meta.ino()),
                }
            } else {
                Node::Other
            };
            out.insert(rel, node);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, with_ino, &mut out);
    out
}

fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().next().is_none()
}

// ---------------------------------------------------------------- forging

/// One tar member as a hostile writer would put it.
#[derive(Debug, Clone)]
struct Part {
    name: Vec<u8>,
    kind: EntryType,
    data: Vec<u8>,
    link: Vec<u8>,
    mode: u32,
    /// The size the header claims, when not the data's.
    size: Option<u64>,
    /// A GNU long-name header before it, naming it.
    long_name: Option<Vec<u8>>,
    /// A PAX header before it, with these records (`path`, `size`, …).
    pax: Vec<(&'static str, Vec<u8>)>,
}

fn part(name: &str, kind: EntryType, data: &[u8]) -> Part {
    Part {
        name: name.as_bytes().to_vec(),
        kind,
        data: data.to_vec(),
        link: Vec::new(),
        mode: 0o644,
        size: None,
        long_name: None,
        pax: Vec::new(),
    }
}

fn header(name: &[u8], kind: EntryType, size: u64, mode: u32, link: &[u8]) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    let gnu = h.as_gnu_mut().unwrap();
    let n = name.len().min(gnu.name.len());
    gnu.name[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(gnu.linkname.len());
    gnu.linkname[..l].copy_from_slice(&link[..l]);
    h.set_cksum();
    h
}

fn push_block(out: &mut Vec<u8>, h: &tar::Header, data: &[u8]) {
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

fn tar_bytes(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        if !p.pax.is_empty() {
            let data: Vec<u8> = p.pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
            push_block(
                &mut out,
                &header(
                    b"PaxHeader",
                    EntryType::XHeader,
                    data.len() as u64,
                    0o644,
                    b"",
                ),
                &data,
            );
        }
        let long = p
            .long_name
            .clone()
            .or_else(|| (p.name.len() > 100).then(|| p.name.clone()));
        if let Some(name) = long {
            let mut data = name;
            data.push(0);
            push_block(
                &mut out,
                &header(
                    b"././@LongLink",
                    EntryType::GNULongName,
                    data.len() as u64,
                    0o644,
                    b"",
                ),
                &data,
            );
        }
        let size = p.size.unwrap_or(p.data.len() as u64);
        push_block(
            &mut out,
            &header(&p.name, p.kind, size, p.mode, &p.link),
            &p.data,
        );
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn forge(parts: &[Part]) -> Vec<u8> {
    zstd::encode_all(&tar_bytes(parts)[..], 3).unwrap()
}

fn file_record(path: &str, bytes: &[u8], mode: u32) -> OutputRecord {
    OutputRecord::File {
        path: path.to_owned(),
        mode,
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    }
}

fn link_record(path: &str, target: &str) -> OutputRecord {
    OutputRecord::Symlink {
        path: path.to_owned(),
        target: target.to_owned(),
    }
}

fn dir_record(path: &str) -> OutputRecord {
    OutputRecord::Dir {
        path: path.to_owned(),
    }
}

/// An input that holds in any fixture: the root exists as a directory.
fn root_input(root: &Path) -> BTreeMap<String, InputRecord> {
    let fingerprint = fingerprint_input(root, InputKind::Existence, &StatCache::new()).unwrap();
    BTreeMap::from([(
        ".".to_owned(),
        InputRecord {
            kind: InputKind::Existence,
            fingerprint,
            without: Vec::new(),
            only: None,
        },
    )])
}

/// A manifest with a correct id for whatever it says.
fn manifest_of(
    inputs: BTreeMap<String, InputRecord>,
    outputs: Vec<OutputRecord>,
    stdout: &[u8],
    stderr: &[u8],
) -> Manifest {
    let key = EntryKey {
        task: TASK.to_owned(),
        inputs,
        env: env_fp("production"),
        repo: None,
    };
    Manifest {
        format: ENTRY_FORMAT.to_owned(),
        id: key.id(),
        key,
        outputs,
        stdout: BlobRecord::of(stdout),
        stderr: BlobRecord::of(stderr),
        created_at: 1,
        overruled: Vec::new(),
        emptied: Vec::new(),
    }
}

/// The members an honest writer would give `manifest`, file bytes from `files`.
fn parts_for(
    manifest: &Manifest,
    files: &HashMap<String, Vec<u8>>,
    stdout: &[u8],
    stderr: &[u8],
) -> Vec<Part> {
    let mut parts = vec![
        part("manifest.json", EntryType::Regular, &manifest.to_bytes()),
        part("stdout", EntryType::Regular, stdout),
        part("stderr", EntryType::Regular, stderr),
    ];
    for output in &manifest.outputs {
        let name = format!("outputs/{}", output.path());
        parts.push(match output {
            OutputRecord::File { path, mode, .. } => Part {
                mode: *mode,
                ..part(&name, EntryType::Regular, &files[path])
            },
            OutputRecord::Symlink { target, .. } => Part {
                link: target.as_bytes().to_vec(),
                mode: 0o777,
                ..part(&name, EntryType::Symlink, b"")
            },
            OutputRecord::Dir { .. } => Part {
                mode: 0o755,
                ..part(&name, EntryType::Directory, b"")
            },
        });
    }
    parts
}

/// Puts `bytes` where the store keeps `manifest`'s entry.
fn put(store: &Store, manifest: &Manifest, bytes: &[u8]) -> PathBuf {
    let path = store.entry_path(&manifest.key.task, &manifest.id);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    path
}

/// A small honest entry: `dist/` with two files and a link.
fn sample(root: &Path) -> (Manifest, Vec<Part>) {
    let files = HashMap::from([
        ("dist/a.txt".to_owned(), b"hello".to_vec()),
        ("dist/b.sh".to_owned(), b"#!/bin/sh\n".to_vec()),
    ]);
    let manifest = manifest_of(
        root_input(root),
        vec![
            dir_record("dist"),
            file_record("dist/a.txt", b"hello", 0o644),
            file_record("dist/b.sh", b"#!/bin/sh\n", 0o755),
            link_record("dist/c", "a.txt"),
        ],
        b"out",
        b"err",
    );
    let parts = parts_for(&manifest, &files, b"out", b"err");
    (manifest, parts)
}

fn index_of(parts: &[Part], name: &str) -> usize {
    parts
        .iter()
        .position(|p| p.name == name.as_bytes())
        .unwrap()
}

/// Restores `parts` as `manifest`'s entry in a fresh checkout holding one
/// file: the restore (and an import of the same bytes) must fail, and the
/// checkout, the cache's neighbours and `outside` must be as they were.
fn assert_refused(what: &str, manifest: &Manifest, parts: &[Part]) -> CacheError {
    let fx = fx();
    write(&fx.root.join("keep.txt"), b"keep", 0o644);
    let store = fx.store();
    let bytes = forge(parts);
    put(&store, manifest, &bytes);
    let before = snapshot(&fx.root, true);
    let err = match store.restore(manifest) {
        Ok(replay) => panic!("{what}: restored {replay:?}"),
        Err(err) => err,
    };
    assert_eq!(
        snapshot(&fx.root, true),
        before,
        "{what}: the checkout changed"
    );
    assert!(is_empty_dir(&fx.outside), "{what}: wrote outside");
    let mut import = Store::open(fx.base.join("import-cache"), &fx.root).unwrap();
    assert!(import.import(manifest, &bytes).is_err(), "{what}: imported");
    assert!(!import.entry_path(TASK, &manifest.id).exists());
    err
}

// ---------------------------------------------------------------- 1. round trip

fn run_request(fx: &Fx, node_env: &str, started_at: SystemTime) -> StoreRequest {
    StoreRequest {
        task: TASK.to_owned(),
        inputs: vec![
            (fx.root.join("src/in.txt"), InputKind::Content),
            (fx.root.join("src"), InputKind::Listing),
            (fx.root.join("gen/missing.txt"), InputKind::Existence),
        ],
        env: env_fp(node_env),
        outputs: vec!["dist".to_owned()],
        ignored_outputs: Vec::new(),
        ignored_inputs: Vec::new(),
        deleted: Vec::new(),
        repo: None,
        stdout: b"built in 3ms\n".to_vec(),
        stderr: b"warning: none\n".to_vec(),
        started_at,
        overruled: Vec::new(),
    }
}

/// Inputs, then a run that writes `dist/`, stored.
fn stored_run(fx: &Fx) -> (Store, Manifest) {
    write(&fx.root.join("src/in.txt"), b"export const a = 1;\n", 0o644);
    std::thread::sleep(Duration::from_millis(30));
    let started_at = SystemTime::now();
    write(&fx.root.join("dist/app.js"), b"console.log(1)\n", 0o644);
    write(&fx.root.join("dist/run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    symlink("app.js", fx.root.join("dist/link")).unwrap();
    fs::create_dir(fx.root.join("dist/empty")).unwrap();
    fs::set_permissions(
        fx.root.join("dist/empty"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::set_permissions(fx.root.join("dist"), fs::Permissions::from_mode(0o755)).unwrap();
    let mut store = fx.store();
    let manifest = store
        .store(&run_request(fx, "production", started_at))
        .unwrap();
    (store, manifest)
}

#[test]
fn round_trip_restores_outputs_byte_for_byte_and_misses_name_what_changed() {
    let fx = fx();
    let (mut store, manifest) = stored_run(&fx);
    assert_eq!(
        manifest.key.inputs.keys().collect::<Vec<_>>(),
        ["gen/missing.txt", "src", "src/in.txt"]
    );
    assert_eq!(
        manifest.key.inputs["gen/missing.txt"].fingerprint,
        "missing"
    );
    let paths: Vec<&str> = manifest.outputs.iter().map(OutputRecord::path).collect();
    assert_eq!(
        paths,
        [
            "dist",
            "dist/app.js",
            "dist/empty",
            "dist/link",
            "dist/run.sh"
        ]
    );
    let dist_before = snapshot(&fx.root.join("dist"), false);
    assert_eq!(
        dist_before["run.sh"],
        Node::File {
            mode: 0o755,
            bytes: b"#!/bin/sh\necho hi\n".to_vec(),
            ino: None
        }
    );

    let env = env_map("production");
    match store.lookup(TASK, &env) {
        Lookup::Hit(hit) => assert_eq!(*hit, manifest),
        Lookup::Miss { reasons } => panic!("miss: {reasons:?}"),
    }
    fs::remove_dir_all(fx.root.join("dist")).unwrap();
    let replay = store.restore(&manifest).unwrap();
    assert_eq!(replay.stdout, b"built in 3ms\n");
    assert_eq!(replay.stderr, b"warning: none\n");
    assert_eq!(snapshot(&fx.root.join("dist"), false), dist_before);
    // Restoring over what is already there changes nothing either.
    store.restore(&manifest).unwrap();
    assert_eq!(snapshot(&fx.root.join("dist"), false), dist_before);
    assert!(is_empty_dir(&fx.outside));

    // The env changed: a miss naming it.
    match store.lookup(TASK, &env_map("development")) {
        Lookup::Miss { reasons } => {
            assert!(
                reasons.iter().any(|r| r.contains("NODE_ENV")),
                "{reasons:?}"
            )
        }
        Lookup::Hit(_) => panic!("hit with another NODE_ENV"),
    }
    // An input edited: a miss naming it.
    fs::write(fx.root.join("src/in.txt"), b"export const a = 22;\n").unwrap();
    match store.lookup(TASK, &env) {
        Lookup::Miss { reasons } => assert!(
            reasons.iter().any(|r| r.contains("src/in.txt")),
            "{reasons:?}"
        ),
        Lookup::Hit(_) => panic!("hit after an input changed"),
    }
    fs::write(fx.root.join("src/in.txt"), b"export const a = 1;\n").unwrap();
    assert!(matches!(store.lookup(TASK, &env), Lookup::Hit(_)));
    // A path that was missing appears: a miss naming it.
    write(&fx.root.join("gen/missing.txt"), b"", 0o644);
    match store.lookup(TASK, &env) {
        Lookup::Miss { reasons } => assert!(
            reasons.iter().any(|r| r.contains("gen/missing.txt")),
            "{reasons:?}"
        ),
        Lookup::Hit(_) => panic!("hit after a missing input appeared"),
    }
}

// ---------------------------------------------------------------- 2. no inputs

#[test]
fn a_run_or_an_entry_resting_on_no_input_is_refused() {
    let fx = fx();
    write(&fx.root.join("dist/a.txt"), b"a", 0o644);
    let mut store = fx.store();
    let mut request = run_request(&fx, "production", SystemTime::now());
    request.inputs.clear();
    request.outputs = vec!["dist/a.txt".to_owned()];
    assert!(matches!(store.store(&request), Err(CacheError::Refused(_))));
    assert!(!fx.cache.exists(), "a refused run wrote to the cache");

    let manifest = manifest_of(
        BTreeMap::new(),
        vec![file_record("dist/a.txt", b"forged", 0o644)],
        b"",
        b"",
    );
    assert!(manifest.check().is_err());
    let files = HashMap::from([("dist/a.txt".to_owned(), b"forged".to_vec())]);
    let bytes = forge(&parts_for(&manifest, &files, b"", b""));
    assert!(archive::read_manifest(&bytes[..], &Limits::default()).is_err());
    put(&store, &manifest, &bytes);
    match store.lookup(TASK, &env_map("production")) {
        Lookup::Miss { reasons } => {
            assert!(
                reasons.iter().any(|r| r.contains("no input")),
                "{reasons:?}"
            )
        }
        Lookup::Hit(_) => panic!("an entry resting on nothing was a hit"),
    }
    put(&store, &manifest, &bytes);
    assert!(store.restore(&manifest).is_err());
    assert_eq!(fs::read(fx.root.join("dist/a.txt")).unwrap(), b"a");
}

// ---------------------------------------------------------------- 3. tampering

#[test]
fn the_honest_sample_restores() {
    let fx = fx();
    let (manifest, parts) = sample(&fx.root);
    let store = fx.store();
    put(&store, &manifest, &forge(&parts));
    let replay = store.restore(&manifest).unwrap();
    assert_eq!(
        (&replay.stdout[..], &replay.stderr[..]),
        (&b"out"[..], &b"err"[..])
    );
    let tree = snapshot(&fx.root, false);
    assert_eq!(tree.len(), 4, "{tree:?}");
    assert_eq!(tree["dist/c"], Node::Link("a.txt".into()));
    assert!(matches!(&tree["dist/b.sh"], Node::File { mode: 0o755, .. }));
}

#[test]
fn an_edited_manifest_is_refused() {
    let fx = fx();
    let (manifest, mut parts) = sample(&fx.root);
    // The key edited, the id left: no longer its key's digest.
    let mut edited = manifest.clone();
    edited.key.task = "vite build --mode development".to_owned();
    parts[0].data = edited.to_bytes();
    let err = assert_refused("id not the key's digest", &manifest, &parts);
    assert!(err.to_string().contains("digest"), "{err}");
    // The same seen by a look-up: a miss, the entry dropped.
    let store = fx.store();
    let path = put(&store, &manifest, &forge(&parts));
    let mut store = fx.store();
    match store.lookup(TASK, &env_map("production")) {
        Lookup::Miss { reasons } => {
            assert!(reasons.iter().any(|r| r.contains("refused")), "{reasons:?}")
        }
        Lookup::Hit(_) => panic!("hit"),
    }
    assert!(!path.exists());

    // An output record edited and the id recomputed: another entry than
    // the one looked up.
    let (manifest, mut parts) = sample(&fx.root);
    let mut other = manifest.clone();
    other.outputs[1] = file_record("dist/a.txt", b"HELLO", 0o644);
    parts[0].data = other.to_bytes();
    parts[4].data = b"HELLO".to_vec();
    assert_refused("another manifest", &manifest, &parts);
    // An unknown field smuggled in.
    let (manifest, mut parts) = sample(&fx.root);
    let mut json: serde_json::Value = serde_json::from_slice(&parts[0].data).unwrap();
    json["extra"] = serde_json::Value::Bool(true);
    parts[0].data = serde_json::to_vec(&json).unwrap();
    assert_refused("unknown manifest field", &manifest, &parts);
}

#[test]
fn changed_bytes_and_missing_extra_or_reordered_members_are_refused() {
    let (manifest, parts) = sample(&fx().root);
    let a = index_of(&parts, "outputs/dist/a.txt");

    let mut p = parts.clone();
    p[a].data = b"hellp".to_vec();
    assert!(assert_refused("bytes changed", &manifest, &p)
        .to_string()
        .contains("digest"));

    let mut p = parts.clone();
    p[a].data = b"hello!".to_vec();
    assert_refused("bytes appended", &manifest, &p);

    let mut p = parts.clone();
    p[1].data = b"OUT".to_vec();
    assert_refused("stdout changed", &manifest, &p);

    let mut p = parts.clone();
    p.push(part("outputs/dist/extra.txt", EntryType::Regular, b"x"));
    assert_refused("an extra member", &manifest, &p);

    let mut p = parts.clone();
    p.push(part("../../outside/x", EntryType::Regular, b"x"));
    assert_refused("an extra member climbing out", &manifest, &p);

    let mut p = parts.clone();
    p.remove(a);
    assert_refused("a missing member", &manifest, &p);

    let mut p = parts.clone();
    p.pop();
    assert_refused("the last member missing", &manifest, &p);

    let mut p = parts.clone();
    p.swap(a, a + 1);
    assert_refused("members out of order", &manifest, &p);

    let mut p = parts.clone();
    p.swap(1, 2);
    assert_refused("stdout and stderr swapped", &manifest, &p);

    let mut p = parts.clone();
    p.remove(0);
    assert_refused("no manifest member", &manifest, &p);

    // A truncated archive: valid zstd of half the tar.
    let tar = tar_bytes(&parts);
    let fx2 = fx();
    let store = fx2.store();
    put(
        &store,
        &manifest,
        &zstd::encode_all(&tar[..tar.len() - 1536], 3).unwrap(),
    );
    assert!(store.restore(&manifest).is_err());
    assert!(snapshot(&fx2.root, false).is_empty());
    // A cut zstd frame.
    let bytes = forge(&parts);
    put(&store, &manifest, &bytes[..bytes.len() / 2]);
    assert!(store.restore(&manifest).is_err());
    assert!(snapshot(&fx2.root, false).is_empty());
}

#[test]
fn a_member_hidden_past_the_end_or_after_the_frame_is_refused() {
    let (manifest, parts) = sample(&fx().root);
    // A full archive, its end marker, then one more member.
    let mut tar = tar_bytes(&parts);
    push_block(
        &mut tar,
        &header(b"outputs/dist/hidden", EntryType::Regular, 4, 0o644, b""),
        b"evil",
    );
    tar.extend_from_slice(&[0; 1024]);
    let fx = fx();
    let mut store = fx.store();
    let bytes = zstd::encode_all(&tar[..], 3).unwrap();
    put(&store, &manifest, &bytes);
    assert!(store.restore(&manifest).is_err());
    assert!(store.import(&manifest, &bytes).is_err());
    // Bytes after the zstd frame.
    let mut bytes = forge(&parts);
    bytes.extend_from_slice(b"garbage");
    put(&store, &manifest, &bytes);
    assert!(store.restore(&manifest).is_err());
    assert!(snapshot(&fx.root, false).is_empty());
    // Zero padding past the end marker, as tar writers add, is fine.
    let mut tar = tar_bytes(&parts);
    tar.resize(tar.len().next_multiple_of(10240) + 10240, 0);
    put(&store, &manifest, &zstd::encode_all(&tar[..], 3).unwrap());
    store.restore(&manifest).unwrap();
}

#[test]
fn a_member_of_another_type_is_refused() {
    let (manifest, parts) = sample(&fx().root);
    let a = index_of(&parts, "outputs/dist/a.txt");
    let c = index_of(&parts, "outputs/dist/c");
    let cases: Vec<(&str, EntryType, &[u8], usize)> = vec![
        ("file → symlink", EntryType::Symlink, b"/etc/passwd", a),
        ("file → hard link", EntryType::Link, b"keep.txt", a),
        (
            "file → hard link to outside",
            EntryType::Link,
            b"../outside/x",
            a,
        ),
        ("file → char device", EntryType::Char, b"", a),
        ("file → block device", EntryType::Block, b"", a),
        ("file → FIFO", EntryType::Fifo, b"", a),
        ("file → directory", EntryType::Directory, b"", a),
        ("file → GNU sparse", EntryType::GNUSparse, b"", a),
        ("file → contiguous", EntryType::Continuous, b"", a),
        ("symlink → file", EntryType::Regular, b"", c),
        (
            "symlink → hard link",
            EntryType::Link,
            b"outputs/dist/a.txt",
            c,
        ),
        ("dir → file", EntryType::Regular, b"", 3),
    ];
    for (what, kind, link, at) in cases {
        let mut p = parts.clone();
        p[at].kind = kind;
        p[at].link = link.to_vec();
        if matches!(kind, EntryType::Symlink | EntryType::Link) {
            p[at].size = Some(0);
            p[at].data.clear();
        }
        assert_refused(what, &manifest, &p);
    }
}

#[test]
fn member_names_that_climb_out_are_refused_in_every_spelling() {
    let (manifest, parts) = sample(&fx().root);
    let a = index_of(&parts, "outputs/dist/a.txt");
    for evil in [
        &b"../x"[..],
        b"../outside/x",
        b"/tmp/x",
        b"outputs/../../x",
        b"outputs/dist/../../../outside/a.txt",
        b"outputs//dist/a.txt",
        b"./outputs/dist/a.txt",
        b"outputs/dist/a.txt/",
        b"outputs\\dist\\a.txt",
    ] {
        let what = String::from_utf8_lossy(evil);
        let mut p = parts.clone();
        p[a].name = evil.to_vec();
        assert_refused(&format!("header name {what}"), &manifest, &p);
        let mut p = parts.clone();
        p[a].long_name = Some(evil.to_vec());
        assert_refused(&format!("GNU long name {what}"), &manifest, &p);
        let mut p = parts.clone();
        p[a].pax = vec![("path", evil.to_vec())];
        assert_refused(&format!("PAX path {what}"), &manifest, &p);
        // The honest name in the header, the evil one where a reader looks
        // first, and the other way round.
        let mut p = parts.clone();
        p[a].name = evil.to_vec();
        p[a].pax = vec![("path", b"outputs/dist/a.txt".to_vec())];
        p[a].long_name = Some(evil.to_vec());
        assert_refused(&format!("PAX over GNU {what}"), &manifest, &p);
    }
    // A PAX header that lengthens the data past what the header claims.
    let mut p = parts.clone();
    p[a].data = b"hello, and more".to_vec();
    p[a].size = Some(5);
    p[a].pax = vec![("size", b"15".to_vec())];
    assert_refused("data past the claimed size", &manifest, &p);
}

#[test]
fn symlinks_that_point_out_are_refused() {
    let (manifest, parts) = sample(&fx().root);
    let c = index_of(&parts, "outputs/dist/c");
    // The manifest says `a.txt`, the member another target.
    for evil in [
        &b"/etc/passwd"[..],
        b"../../outside",
        b"../..",
        b"a.txt/../../..",
    ] {
        let mut p = parts.clone();
        p[c].link = evil.to_vec();
        assert_refused(
            &format!("member target {}", String::from_utf8_lossy(evil)),
            &manifest,
            &p,
        );
    }
    // The manifest itself names the target.
    let fx = fx();
    for evil in [
        "/etc/passwd",
        "../../outside",
        "../..",
        "a.txt/../../..",
        "",
    ] {
        let mut m = manifest.clone();
        m.outputs[3] = link_record("dist/c", evil);
        m.id = m.key.id();
        assert!(m.check().is_err(), "{evil:?}");
        let mut p = parts.clone();
        p[0].data = m.to_bytes();
        p[c].link = evil.as_bytes().to_vec();
        assert_refused(&format!("manifest target {evil}"), &m, &p);
    }
    // A link to `.` then a link through it and up: each stays inside by its
    // name, together they point at the root's parent.
    let m = manifest_of(
        root_input(&fx.root),
        vec![link_record("s", "."), link_record("t", "s/..")],
        b"",
        b"",
    );
    assert!(m.check().is_err());
    let p = parts_for(&m, &HashMap::new(), b"", b"");
    assert_refused("a link climbing through a link", &m, &p);
}

// ---------------------------------------------------------------- 4. manifest paths

#[test]
fn manifest_output_paths_stay_inside_by_name() {
    let root = fx();
    for evil in [
        "../dir",
        "/abs",
        "a/../../b",
        ".git/config",
        ".git",
        "a\\b",
        "..\\x",
        "a//b",
        "./a",
        "a/.",
        "",
        "a\0b",
    ] {
        for record in [
            file_record(evil, b"x", 0o644),
            link_record(evil, "x"),
            dir_record(evil),
        ] {
            let m = manifest_of(root_input(&root.root), vec![record], b"", b"");
            assert!(m.check().is_err(), "{evil:?}");
            assert!(Manifest::parse(&m.to_bytes()).is_err(), "{evil:?}");
        }
    }
    // Unsorted, named twice, beneath a file or a link.
    for outputs in [
        vec![file_record("b", b"", 0o644), file_record("a", b"", 0o644)],
        vec![file_record("a", b"", 0o644), file_record("a", b"", 0o644)],
        vec![file_record("a", b"", 0o644), file_record("a/b", b"", 0o644)],
        vec![link_record("a", "d"), file_record("a/b", b"", 0o644)],
    ] {
        let m = manifest_of(root_input(&root.root), outputs.clone(), b"", b"");
        assert!(m.check().is_err(), "{outputs:?}");
    }
    let good = manifest_of(
        root_input(&root.root),
        vec![dir_record("a"), file_record("a/b", b"", 0o644)],
        b"",
        b"",
    );
    good.check().unwrap();
}

#[test]
fn a_file_beneath_a_file_output_places_nothing() {
    let fx = fx();
    let m = manifest_of(
        root_input(&fx.root),
        vec![
            file_record("a", b"1", 0o644),
            file_record("a/b", b"2", 0o644),
        ],
        b"",
        b"",
    );
    let files = HashMap::from([
        ("a".to_owned(), b"1".to_vec()),
        ("a/b".to_owned(), b"2".to_vec()),
    ]);
    assert_refused(
        "a file beneath a file",
        &m,
        &parts_for(&m, &files, b"", b""),
    );
}

// ---------------------------------------------------------------- 5. links in the checkout

#[test]
fn restore_never_writes_through_a_link_in_the_checkout() {
    let fx = fx();
    // pnpm: node_modules/dep is a link to a store outside the checkout.
    write(&fx.outside.join("dep/index.js"), b"original", 0o644);
    fs::create_dir(fx.root.join("node_modules")).unwrap();
    symlink(fx.outside.join("dep"), fx.root.join("node_modules/dep")).unwrap();
    let outside_before = snapshot(&fx.outside, true);
    let m = manifest_of(
        root_input(&fx.root),
        vec![file_record("node_modules/dep/index.js", b"evil", 0o644)],
        b"",
        b"",
    );
    let files = HashMap::from([("node_modules/dep/index.js".to_owned(), b"evil".to_vec())]);
    let store = fx.store();
    put(&store, &m, &forge(&parts_for(&m, &files, b"", b"")));
    let before = snapshot(&fx.root, true);
    assert!(matches!(store.restore(&m), Err(CacheError::Unsafe(_))));
    assert_eq!(snapshot(&fx.root, true), before);
    assert_eq!(snapshot(&fx.outside, true), outside_before);

    // Nor is such an output stored.
    let mut store = fx.store();
    write(&fx.root.join("src/in.txt"), b"x", 0o644);
    std::thread::sleep(Duration::from_millis(30));
    let mut request = run_request(&fx, "production", SystemTime::now());
    request.outputs = vec!["node_modules/dep/index.js".to_owned()];
    assert!(matches!(store.store(&request), Err(CacheError::Unsafe(_))));
}

#[test]
fn a_destination_that_is_a_link_or_hard_link_is_replaced_not_written_through() {
    let fx = fx();
    write(&fx.outside.join("secret.txt"), b"secret", 0o600);
    write(&fx.outside.join("hard.txt"), b"original", 0o644);
    fs::create_dir(fx.root.join("dist")).unwrap();
    symlink(fx.outside.join("secret.txt"), fx.root.join("dist/a.txt")).unwrap();
    fs::hard_link(fx.outside.join("hard.txt"), fx.root.join("dist/b.sh")).unwrap();
    symlink(&fx.outside, fx.root.join("dist/c")).unwrap();
    let outside_before = snapshot(&fx.outside, true);
    let (manifest, parts) = sample(&fx.root);
    let store = fx.store();
    put(&store, &manifest, &forge(&parts));
    store.restore(&manifest).unwrap();
    assert_eq!(snapshot(&fx.outside, true), outside_before);
    assert_eq!(
        fs::metadata(fx.outside.join("hard.txt")).unwrap().nlink(),
        1
    );
    let tree = snapshot(&fx.root, false);
    assert_eq!(
        tree["dist/a.txt"],
        Node::File {
            mode: 0o644,
            bytes: b"hello".to_vec(),
            ino: None
        }
    );
    assert_eq!(
        tree["dist/b.sh"],
        Node::File {
            mode: 0o755,
            bytes: b"#!/bin/sh\n".to_vec(),
            ino: None
        }
    );
    assert_eq!(tree["dist/c"], Node::Link("a.txt".into()));
    assert_eq!(tree.len(), 4, "{tree:?}");
}

#[test]
fn an_output_that_cannot_go_in_leaves_every_other_one_out() {
    let fx = fx();
    // `a` would be replaced, but `b` is a directory in the checkout: the
    // restore must fail before `a` is touched.
    write(&fx.root.join("a"), b"old a", 0o644);
    write(&fx.root.join("b/mine.txt"), b"mine", 0o644);
    let m = manifest_of(
        root_input(&fx.root),
        vec![
            file_record("a", b"new a", 0o644),
            file_record("b", b"new b", 0o644),
        ],
        b"",
        b"",
    );
    let files = HashMap::from([
        ("a".to_owned(), b"new a".to_vec()),
        ("b".to_owned(), b"new b".to_vec()),
    ]);
    let store = fx.store();
    put(&store, &m, &forge(&parts_for(&m, &files, b"", b"")));
    let before = snapshot(&fx.root, true);
    let err = store.restore(&m).unwrap_err();
    assert!(matches!(err, CacheError::Unsafe(_)), "{err}");
    assert_eq!(snapshot(&fx.root, true), before);
}

// ---------------------------------------------------------------- 6. the cache dir

#[test]
fn an_entry_file_that_is_a_link_is_never_read() {
    let fx = fx();
    let (mut store, manifest) = stored_run(&fx);
    let path = store.entry_path(TASK, &manifest.id);
    // A valid archive elsewhere, linked in.
    let elsewhere = fx.outside.join("valid.tar.zst");
    fs::rename(&path, &elsewhere).unwrap();
    let valid = fs::read(&elsewhere).unwrap();
    symlink(&elsewhere, &path).unwrap();
    fs::remove_dir_all(fx.root.join("dist")).unwrap();
    assert!(store.restore(&manifest).is_err());
    assert!(store.read_entry(TASK, &manifest.id).is_err());
    assert!(!fx.root.join("dist").exists());
    match store.lookup(TASK, &env_map("production")) {
        Lookup::Miss { reasons } => assert!(reasons.iter().any(|r| r.contains("refused"))),
        Lookup::Hit(_) => panic!("a linked entry was a hit"),
    }
    assert_eq!(fs::read(&elsewhere).unwrap(), valid);
    // A link to /proc/self/environ.
    let _ = fs::remove_file(&path);
    symlink("/proc/self/environ", &path).unwrap();
    assert!(store.restore(&manifest).is_err());
    assert!(store.read_entry(TASK, &manifest.id).is_err());
    assert!(matches!(
        store.lookup(TASK, &env_map("production")),
        Lookup::Miss { .. }
    ));
    // A FIFO named like the entry: refused at once, never waited on.
    let _ = fs::remove_file(&path);
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let started = Instant::now();
    assert!(store.restore(&manifest).is_err());
    assert!(store.read_entry(TASK, &manifest.id).is_err());
    assert!(matches!(
        store.lookup(TASK, &env_map("production")),
        Lookup::Miss { .. }
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!fx.root.join("dist").exists());
}

#[test]
fn an_entry_kept_under_another_id_or_task_is_refused() {
    let fx = fx();
    let (mut store, manifest) = stored_run(&fx);
    let path = store.entry_path(TASK, &manifest.id);
    let bytes = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let other_id = "0".repeat(64);
    let elsewhere = store.entry_path(TASK, &other_id);
    fs::write(&elsewhere, &bytes).unwrap();
    match store.lookup(TASK, &env_map("production")) {
        Lookup::Miss { reasons } => assert!(
            reasons.iter().any(|r| r.contains("another id or task")),
            "{reasons:?}"
        ),
        Lookup::Hit(_) => panic!("an entry under another id was a hit"),
    }
    let mut moved = manifest.clone();
    moved.id = other_id;
    assert!(store.restore(&moved).is_err());

    let other_task = "vite build --mode test";
    let elsewhere = store.entry_path(other_task, &manifest.id);
    fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    fs::write(&elsewhere, &bytes).unwrap();
    match store.lookup(other_task, &env_map("production")) {
        Lookup::Miss { reasons } => assert!(
            reasons.iter().any(|r| r.contains("another id or task")),
            "{reasons:?}"
        ),
        Lookup::Hit(_) => panic!("an entry of another task was a hit"),
    }
}

#[test]
fn a_directory_named_like_an_entry_is_ignored() {
    let fx = fx();
    let (mut store, manifest) = stored_run(&fx);
    let dir_entry = store.entry_path(TASK, &"f".repeat(64));
    fs::create_dir(&dir_entry).unwrap();
    fs::write(dir_entry.join("inside"), b"x").unwrap();
    fs::create_dir(store.entry_path(TASK, &"not-an-id".repeat(3))).unwrap();
    match store.lookup(TASK, &env_map("production")) {
        Lookup::Hit(hit) => assert_eq!(*hit, manifest),
        Lookup::Miss { reasons } => panic!("{reasons:?}"),
    }
    let mut fake = manifest.clone();
    fake.id = "f".repeat(64);
    assert!(store.restore(&fake).is_err());
    assert!(store.read_entry(TASK, &fake.id).is_err());
    assert!(dir_entry.join("inside").exists());
    // Only the directory's own entry is a directory: still no panic.
    fs::remove_file(store.entry_path(TASK, &manifest.id)).unwrap();
    assert!(matches!(
        store.lookup(TASK, &env_map("production")),
        Lookup::Miss { .. }
    ));
}

// ---------------------------------------------------------------- 7. bombs

fn vm_hwm_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn a_decompression_bomb_is_refused_quickly_and_in_little_memory() {
    let fx = fx();
    const BIG: u64 = 64 << 20;
    let m = manifest_of(
        root_input(&fx.root),
        vec![OutputRecord::File {
            path: "big.bin".to_owned(),
            mode: 0o644,
            size: BIG,
            sha256: "0".repeat(64),
        }],
        b"",
        b"",
    );
    // Streamed: the 64 MiB never exist in memory here either.
    let mut head = Vec::new();
    for p in &parts_for(
        &m,
        &HashMap::from([("big.bin".to_owned(), Vec::new())]),
        b"",
        b"",
    )[..3]
    {
        let size = p.data.len() as u64;
        push_block(
            &mut head,
            &header(&p.name, p.kind, size, p.mode, b""),
            &p.data,
        );
    }
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    encoder.write_all(&head).unwrap();
    encoder
        .write_all(header(b"outputs/big.bin", EntryType::Regular, BIG, 0o644, b"").as_bytes())
        .unwrap();
    let zeros = vec![0u8; 1 << 16];
    for _ in 0..(BIG >> 16) {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.write_all(&[0; 1024]).unwrap();
    let bytes = encoder.finish().unwrap();
    assert!(bytes.len() < (1 << 20), "{}", bytes.len());

    let limits = Limits {
        max_bytes: 1 << 20,
        ..Limits::default()
    };
    let mut store = Store::open(&fx.cache, &fx.root)
        .unwrap()
        .with_limits(limits);
    put(&store, &m, &bytes);
    let hwm = vm_hwm_kib();
    let started = Instant::now();
    let err = store.restore(&m).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    assert!(store.import(&m, &bytes).is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
    let grown = vm_hwm_kib().saturating_sub(hwm);
    assert!(grown < 48 << 10, "peak RSS grew by {grown} KiB");
    assert!(snapshot(&fx.root, false).is_empty());
}

#[test]
fn a_blob_claiming_a_huge_size_is_refused_without_reserving_it() {
    let fx = fx();
    let store = fx.store();
    let (manifest, parts) = sample(&fx.root);
    // stdout claims a terabyte: the manifest alone is refused.
    let mut m = manifest.clone();
    m.stdout = BlobRecord {
        size: 1 << 40,
        sha256: "0".repeat(64),
    };
    m.id = m.key.id();
    assert!(m.check().is_err());
    let mut p = parts.clone();
    p[0].data = m.to_bytes();
    p[1].size = Some(1 << 40);
    put(&store, &m, &forge(&p));
    assert!(store.restore(&m).is_err());
    // 200 MiB claimed by manifest and header, 3 bytes there.
    let mut m = manifest.clone();
    m.stdout = BlobRecord {
        size: 200 << 20,
        sha256: "0".repeat(64),
    };
    m.id = m.key.id();
    let mut p = parts.clone();
    p[0].data = m.to_bytes();
    p[1].size = Some(200 << 20);
    put(&store, &m, &forge(&p));
    assert!(store.restore(&m).is_err());
    // The manifest member's header claims 60 MiB.
    let mut p = parts.clone();
    p[0].size = Some(60 << 20);
    put(&store, &manifest, &forge(&p));
    assert!(store.restore(&manifest).is_err());
    assert!(archive::read_manifest(&forge(&p)[..], &Limits::default()).is_err());
    assert!(snapshot(&fx.root, false).is_empty());
}

#[test]
fn a_pax_size_over_a_small_blob_is_not_read_into_memory() {
    let fx = fx();
    let (manifest, parts) = sample(&fx.root);
    const BIG: u64 = 96 << 20;
    // stdout: the header says 3 bytes as the manifest does, a PAX record says
    // 96 MiB, and 96 MiB of zeros follow.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    let first = tar_bytes(&parts[..1]);
    encoder.write_all(&first[..first.len() - 1024]).unwrap();
    let pax = pax_record("size", BIG.to_string().as_bytes());
    let mut head = Vec::new();
    push_block(
        &mut head,
        &header(
            b"PaxHeader",
            EntryType::XHeader,
            pax.len() as u64,
            0o644,
            b"",
        ),
        &pax,
    );
    push_block(
        &mut head,
        &header(b"stdout", EntryType::Regular, 3, 0o644, b""),
        b"",
    );
    encoder.write_all(&head).unwrap();
    let zeros = vec![0u8; 1 << 16];
    for _ in 0..(BIG >> 16) {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.write_all(&tar_bytes(&parts[2..])).unwrap();
    let bytes = encoder.finish().unwrap();
    let store = fx.store();
    put(&store, &manifest, &bytes);
    let hwm = vm_hwm_kib();
    let err = store.restore(&manifest).unwrap_err();
    assert!(err.to_string().contains("stdout"), "{err}");
    let grown = vm_hwm_kib().saturating_sub(hwm);
    assert!(grown < 48 << 10, "peak RSS grew by {grown} KiB");
    assert!(snapshot(&fx.root, false).is_empty());
}

#[test]
fn member_count_and_manifest_size_are_bounded() {
    let fx = fx();
    let outputs: Vec<OutputRecord> = (0..50).map(|i| dir_record(&format!("d{i:02}"))).collect();
    let m = manifest_of(root_input(&fx.root), outputs, b"", b"");
    let bytes = forge(&parts_for(&m, &HashMap::new(), b"", b""));
    let limits = Limits {
        max_members: 10,
        ..Limits::default()
    };
    let mut store = fx.store().with_limits(limits);
    put(&store, &m, &bytes);
    let err = store.restore(&m).unwrap_err();
    assert!(err.to_string().contains("members"), "{err}");
    assert!(store.import(&m, &bytes).is_err());
    assert!(snapshot(&fx.root, false).is_empty());
    // Within the bound, it restores.
    fx.store().restore(&m).unwrap();
    assert_eq!(snapshot(&fx.root, false).len(), 50);

    // A manifest over max_manifest_bytes.
    let fx2 = self::fx();
    let (mut manifest, _) = sample(&fx2.root);
    manifest.overruled = vec!["x".repeat(4096)];
    let files = HashMap::from([
        ("dist/a.txt".to_owned(), b"hello".to_vec()),
        ("dist/b.sh".to_owned(), b"#!/bin/sh\n".to_vec()),
    ]);
    let bytes = forge(&parts_for(&manifest, &files, b"out", b"err"));
    let limits = Limits {
        max_manifest_bytes: 1024,
        ..Limits::default()
    };
    assert!(archive::read_manifest(&bytes[..], &limits).is_err());
    archive::read_manifest(&bytes[..], &Limits::default()).unwrap();
    let mut store = fx2.store().with_limits(limits);
    put(&store, &manifest, &bytes);
    assert!(store.restore(&manifest).is_err());
    match store.lookup(TASK, &env_map("production")) {
        Lookup::Miss { reasons } => {
            assert!(reasons.iter().any(|r| r.contains("limit")), "{reasons:?}")
        }
        Lookup::Hit(_) => panic!("an oversized manifest was a hit"),
    }
    assert!(snapshot(&fx2.root, false).is_empty());
}

// ---------------------------------------------------------------- 8. property

fn name_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "a", "b", "..", ".", "", "/", "\\", ":", ".git", "a\\..",
        ]),
        1..4,
    )
    .prop_map(|parts| parts.join("/"))
}

#[test]
fn whatever_an_archive_names_nothing_lands_outside_the_root() {
    let strategy = prop::collection::vec(
        (
            name_strategy(),
            0u8..3,
            name_strategy(),
            0usize..64,
            any::<bool>(),
        ),
        1..6,
    );
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |members| {
            let fx = fx();
            let mut outputs = BTreeMap::new();
            let mut files = HashMap::new();
            for (name, kind, target, size, exec) in members {
                let record = match kind {
                    0 => {
                        let bytes = vec![b'x'; size];
                        let mode = if exec { 0o755 } else { 0o644 };
                        let record = file_record(&name, &bytes, mode);
                        files.insert(name.clone(), bytes);
                        record
                    }
                    1 => link_record(&name, &target),
                    _ => dir_record(&name),
                };
                outputs.entry(name).or_insert(record);
            }
            let m = manifest_of(
                root_input(&fx.root),
                outputs.into_values().collect(),
                b"",
                b"",
            );
            for o in &m.outputs {
                files.entry(o.path().to_owned()).or_default();
            }
            let store = fx.store();
            put(&store, &m, &forge(&parts_for(&m, &files, b"", b"")));
            let result = store.restore(&m);
            prop_assert!(is_empty_dir(&fx.outside));
            let mut around: Vec<String> = fs::read_dir(&fx.base)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            around.sort();
            prop_assert_eq!(around, ["cache", "outside", "root"]);
            let tree = snapshot(&fx.root, false);
            if result.is_err() {
                prop_assert!(tree.is_empty(), "{:?} left {:?}", result, tree);
            }
            let root = fx.root.canonicalize().unwrap();
            for (path, node) in &tree {
                prop_assert!(!path.contains(".runner-aware-"), "left {}", path);
                prop_assert!(
                    m.outputs
                        .iter()
                        .any(|o| o.path() == path || o.path().starts_with(&format!("{path}/"))),
                    "{} is not named by {:?}",
                    path,
                    m.outputs
                );
                if let Node::Link(_) = node {
                    if let Ok(real) = fx.root.join(path).canonicalize() {
                        prop_assert!(real.starts_with(&root), "{} -> {:?}", path, real);
                    }
                }
            }
            if result.is_ok() {
                m.check().unwrap();
                for o in &m.outputs {
                    if let OutputRecord::File { path, .. } = o {
                        prop_assert_eq!(&fs::read(fx.root.join(path)).unwrap(), &files[path]);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------- 9. signing

#[test]
fn a_tag_over_one_artifact_does_not_verify_another() {
    let fx = fx();
    let (store, manifest) = stored_run(&fx);
    let body = store.read_entry(TASK, &manifest.id).unwrap();
    let (other, _) = sample(&fx.root);
    let (_, other_parts) = sample(&fx.root);
    let other_body = forge(&other_parts);
    let key = b"team signing key";
    let team = "team_abc";
    let tag = sign::artifact_tag(key, &manifest.id, team, &body);
    assert!(sign::verify_artifact_tag(
        key,
        &manifest.id,
        team,
        &body,
        &tag
    ));
    // The tag of one artifact replayed with another's bytes, under its hash
    // or the other's.
    assert!(!sign::verify_artifact_tag(
        key,
        &manifest.id,
        team,
        &other_body,
        &tag
    ));
    assert!(!sign::verify_artifact_tag(
        key,
        &other.id,
        team,
        &other_body,
        &tag
    ));
    assert!(!sign::verify_artifact_tag(
        key, &other.id, team, &body, &tag
    ));
    assert!(!sign::verify_artifact_tag(
        key,
        &manifest.id,
        "team_xyz",
        &body,
        &tag
    ));
    assert!(!sign::verify_artifact_tag(
        b"another key",
        &manifest.id,
        team,
        &body,
        &tag
    ));
    let mut flipped = body.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(!sign::verify_artifact_tag(
        key,
        &manifest.id,
        team,
        &flipped,
        &tag
    ));
    let truncated = &body[..body.len() - 1];
    assert!(!sign::verify_artifact_tag(
        key,
        &manifest.id,
        team,
        truncated,
        &tag
    ));
}

#[test]
fn a_listing_can_leave_out_only_single_names() {
    let fx = fx();
    for (kind, name) in [
        (InputKind::Listing, "../outside"),
        (InputKind::Listing, "a/b"),
        (InputKind::Listing, ".."),
        (InputKind::Listing, ""),
        (InputKind::Content, "dist"),
    ] {
        let mut inputs = root_input(&fx.root);
        let record = inputs.get_mut(".").unwrap();
        record.kind = kind;
        record.without = vec![name.to_owned()];
        let manifest = manifest_of(inputs, Vec::new(), b"", b"");
        let err = manifest.check().unwrap_err().to_string();
        assert!(
            err.contains("no one path component"),
            "{kind:?} {name:?}: {err}"
        );
    }
}

#[test]
fn an_entry_empties_only_directories_it_restores() {
    let fx = fx();
    for (emptied, outputs) in [
        (
            vec!["src"],
            vec![OutputRecord::Dir {
                path: "dist".into(),
            }],
        ),
        (
            vec!["dist/../src"],
            vec![OutputRecord::Dir {
                path: "dist".into(),
            }],
        ),
        (vec![".git"], vec![]),
        (
            vec!["dist", "dist"],
            vec![OutputRecord::Dir {
                path: "dist".into(),
            }],
        ),
    ] {
        let mut manifest = manifest_of(root_input(&fx.root), outputs, b"", b"");
        manifest.emptied = emptied.iter().map(|dir| (*dir).to_owned()).collect();
        assert!(manifest.check().is_err(), "{emptied:?} passed");
    }
}

#[test]
fn only_a_listing_outside_the_checkout_may_be_narrowed() {
    let fx = fx();
    for (key, kind) in [
        (".", InputKind::Listing),
        ("src", InputKind::Listing),
        ("..", InputKind::Content),
    ] {
        let mut inputs = root_input(&fx.root);
        let mut record = inputs.remove(".").unwrap();
        record.kind = kind;
        record.only = Some(vec!["app".into()]);
        inputs.insert(key.to_owned(), record);
        let manifest = manifest_of(inputs, Vec::new(), b"", b"");
        let err = manifest.check().unwrap_err().to_string();
        assert!(err.contains("narrows a listing"), "{key} {kind:?}: {err}");
    }
    let mut inputs = root_input(&fx.root);
    let mut record = inputs.remove(".").unwrap();
    record.kind = InputKind::Listing;
    record.only = Some(vec!["app".into()]);
    inputs.insert("..".to_owned(), record);
    manifest_of(inputs, Vec::new(), b"", b"").check().unwrap();
}

#[test]
fn an_emptied_directory_keeps_everything_when_another_output_cannot_go_in() {
    // The entry empties `dist`, but `b` is a directory in the checkout where
    // it has a file: the restore fails, and must fail before `dist` loses
    // what it held.
    let fx = fx();
    write(&fx.root.join("dist/mine.txt"), b"mine", 0o644);
    write(&fx.root.join("b/mine.txt"), b"mine", 0o644);
    let mut m = manifest_of(
        root_input(&fx.root),
        vec![file_record("b", b"new b", 0o644), dir_record("dist")],
        b"",
        b"",
    );
    m.emptied = vec!["dist".into()];
    let files = HashMap::from([("b".to_owned(), b"new b".to_vec())]);
    let store = fx.store();
    put(&store, &m, &forge(&parts_for(&m, &files, b"", b"")));
    let before = snapshot(&fx.root, true);
    let err = store.restore(&m).unwrap_err();
    assert!(matches!(err, CacheError::Unsafe(_)), "{err}");
    assert_eq!(snapshot(&fx.root, true), before);
}

#[test]
fn no_output_lies_in_a_nested_repository_and_emptying_leaves_one_whole() {
    // A repository checked out inside the checkout (`vendor/lib/.git`): its
    // hooks run code, its objects are someone's history.
    for bad in [
        "vendor/lib/.git/hooks/post-checkout",
        "a/.GIT/config",
        "a/.git",
    ] {
        assert!(
            runner_aware::cache::entry::check_output_path(bad).is_err(),
            "{bad:?}"
        );
    }
    let fx = fx();
    write(&fx.root.join("vendor/lib/.git/HEAD"), b"ref: x", 0o644);
    write(&fx.root.join("vendor/lib/stale.js"), b"old", 0o644);
    write(
        &fx.root.join("vendor/lib/deep/er/.git/HEAD"),
        b"ref: y",
        0o644,
    );
    let mut m = manifest_of(
        root_input(&fx.root),
        vec![
            dir_record("vendor"),
            dir_record("vendor/lib"),
            file_record("vendor/lib/index.js", b"new", 0o644),
        ],
        b"",
        b"",
    );
    m.emptied = vec!["vendor/lib".into()];
    let files = HashMap::from([("vendor/lib/index.js".to_owned(), b"new".to_vec())]);
    let store = fx.store();
    put(&store, &m, &forge(&parts_for(&m, &files, b"", b"")));
    store.restore(&m).unwrap();
    assert_eq!(
        fs::read(fx.root.join("vendor/lib/.git/HEAD")).unwrap(),
        b"ref: x"
    );
    assert_eq!(
        fs::read(fx.root.join("vendor/lib/deep/er/.git/HEAD")).unwrap(),
        b"ref: y"
    );
    assert!(!fx.root.join("vendor/lib/stale.js").exists());
}

#[test]
fn no_output_reaches_git_by_another_spelling_of_its_name() {
    // Windows drops a trailing dot or space and answers to the 8.3 name
    // `GIT~1`; HFS+ ignores some invisible code points. An entry made on
    // one system is restored on any other.
    for bad in [
        ".git./hooks/post-checkout",
        ".git /hooks/post-checkout",
        ".git. ./config",
        "GIT~1/hooks/post-checkout",
        "git~1/config",
        ".g\u{200c}it/hooks/post-checkout",
        ".\u{feff}git/config",
        "sub/.GiT\u{200d}/config",
    ] {
        assert!(
            runner_aware::cache::entry::check_output_path(bad).is_err(),
            "{bad:?}"
        );
    }
    // Nor a link that leads there, for a later tool to write through.
    for target in ["../.git/hooks", "../.GIT.", "../sub/.git"] {
        assert!(
            runner_aware::cache::entry::check_link_target("dist/hooks", target).is_err(),
            "{target:?}"
        );
    }
    for good in [
        ".gitignore",
        ".github/workflows/ci.yml",
        "git",
        ".git-blame-ignore-revs",
        "a.git",
    ] {
        runner_aware::cache::entry::check_output_path(good).unwrap();
    }
}
