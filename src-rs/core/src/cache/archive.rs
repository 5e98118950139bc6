//! An entry's archive: tar compressed with zstd, as Turborepo's artifacts
//! are. Members, in order: `manifest.json`, `stdout`, `stderr`, then
//! `outputs/<path>` for every output the manifest lists, in its order.
//! Reading treats every archive as hostile: member names, types, sizes and
//! digests are checked against the manifest before anything is placed, and
//! the decompressed size and member count are bounded, so a bomb is an
//! error, never an out-of-memory.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::entry::{Manifest, OutputRecord};
use super::restore::Placer;
use super::CacheError;
use crate::fingerprint::hex;

/// Bounds on what reading an archive may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed bytes, headers included.
    pub max_bytes: u64,
    /// Members.
    pub max_members: usize,
    /// The manifest's size.
    pub max_manifest_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 8 << 30,
            max_members: 1_000_000,
            max_manifest_bytes: 64 << 20,
        }
    }
}

/// The zstd level archives are written at (zstd's own default).
const LEVEL: i32 = 3;

/// The most memory a window may take to decode (2^27 = 128 MiB, zstd's
/// default limit for streams).
const WINDOW_LOG_MAX: u32 = 27;

fn io_err(context: impl std::fmt::Display) -> impl FnOnce(io::Error) -> CacheError {
    move |err| CacheError::Io(format!("{context}: {err}"))
}

/// Whether the path `rel` under `root` reaches a file through a link in the
/// checkout (`node_modules/dep -> /store/dep`): such an output lies outside
/// the checkout, whatever its name says.
fn through_link(
    root: &Path,
    rel: &str,
    real_dirs: &mut std::collections::HashSet<PathBuf>,
) -> Option<PathBuf> {
    let mut dir = root.to_path_buf();
    let mut components: Vec<&str> = rel.split('/').collect();
    components.pop();
    for component in components {
        dir.push(component);
        if real_dirs.contains(&dir) {
            continue;
        }
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {
                real_dirs.insert(dir.clone());
            }
            _ => return Some(dir),
        }
    }
    None
}

/// The records of `paths` (relative to `root`, each checked as an output
/// path): a directory adds itself and everything beneath but what lies under
/// one of `ignored` (relative too: a tool's `ignoreOutput`); a link is kept
/// as a link when its target stays inside the root, else the output is
/// refused. Sorted and deduplicated.
pub fn collect_outputs(
    root: &Path,
    paths: &[String],
    ignored: &[String],
) -> Result<Outputs, CacheError> {
    let mut records = std::collections::BTreeMap::new();
    let mut real_dirs = std::collections::HashSet::new();
    for rel in paths {
        super::entry::check_output_path(rel)?;
        if let Some(link) = through_link(root, rel, &mut real_dirs) {
            return Err(CacheError::Unsafe(format!(
                "{rel}: {} is a link or no directory in the checkout, so the output lies outside it",
                link.display()
            )));
        }
        collect(root, rel, ignored, &mut records)?;
    }
    // The files' digests, hashed on every core: the part that grows with the
    // build. Their bytes are held for the archive up to a budget, so most
    // builds' outputs are read once.
    let files: Vec<&String> = records
        .iter()
        .filter(|(_, record)| matches!(record, OutputRecord::File { .. }))
        .map(|(rel, _)| rel)
        .collect();
    let budget = std::sync::atomic::AtomicU64::new(HELD_BYTES);
    let read = crate::fingerprint::in_parallel(&files, |rel| read_file(&root.join(rel), &budget));
    let mut digests = std::collections::HashMap::new();
    let mut held = std::collections::HashMap::new();
    let mut identities = std::collections::HashMap::new();
    for (rel, file) in files.into_iter().zip(read) {
        let file = file?;
        if let Some(bytes) = file.bytes {
            held.insert(rel.clone(), bytes);
        }
        identities.insert(rel.clone(), file.identity);
        digests.insert(rel.clone(), (file.mode, file.size, file.sha256));
    }
    let records = records
        .into_values()
        .map(|record| match record {
            OutputRecord::File { path, .. } => {
                let (mode, size, sha256) = digests.remove(&path).unwrap_or_default();
                OutputRecord::File {
                    path,
                    mode,
                    size,
                    sha256,
                }
            }
            other => other,
        })
        .collect();
    Ok(Outputs {
        records,
        held,
        identities,
    })
}

/// The most bytes of output files held in memory between hashing them and
/// archiving them; files beyond it are read again (and checked again).
const HELD_BYTES: u64 = 256 << 20;

/// A run's outputs as [`collect_outputs`] found them: their records, and the
/// bytes of the files it held for the archive.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Sorted by path, each directory before what it holds.
    pub records: Vec<OutputRecord>,
    held: std::collections::HashMap<String, Vec<u8>>,
    /// Each file's identity (device, inode, size, times) as it was read: a
    /// file that still has it holds the bytes its record's digest covers.
    pub identities: std::collections::HashMap<String, String>,
}

/// What reading an output file found: its mode, size and sha256, and its
/// bytes while the budget allowed holding them.
struct ReadFile {
    mode: u32,
    size: u64,
    sha256: String,
    bytes: Option<Vec<u8>>,
    identity: String,
}

/// Reads an output file, never through a link, and not a special file.
fn read_file(path: &Path, budget: &std::sync::atomic::AtomicU64) -> Result<ReadFile, CacheError> {
    use std::sync::atomic::Ordering;
    let mut file = open_no_follow(path).map_err(io_err(path.display()))?;
    let meta = file.metadata().map_err(io_err(path.display()))?;
    if !meta.is_file() {
        return Err(CacheError::Unsafe(format!(
            "{}: is not a regular file",
            path.display()
        )));
    }
    let (mode, len) = (file_mode(&meta), meta.len());
    let identity = crate::fingerprint::identity(&meta);
    let held = budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(len)
        })
        .is_ok();
    if held {
        // The length fstat gave, read whole: the bytes hashed are the bytes
        // archived, whatever the file does next.
        let mut bytes = vec![0; usize::try_from(len).unwrap_or(0)];
        file.read_exact(&mut bytes)
            .map_err(io_err(path.display()))?;
        let sha256 = hex(&Sha256::digest(&bytes));
        return Ok(ReadFile {
            mode,
            size: bytes.len() as u64,
            sha256,
            bytes: Some(bytes),
            identity,
        });
    }
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(io_err(path.display()))?;
    Ok(ReadFile {
        mode,
        size,
        sha256: hex(&hasher.finalize()),
        bytes: None,
        identity,
    })
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> io::Result<File> {
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(io::Error::other("it is a link"));
    }
    File::open(path)
}

/// A file's record before it is read: its mode, size and digest come after
/// the walk, with every other file's.
fn pending_file(path: String) -> OutputRecord {
    OutputRecord::File {
        path,
        mode: 0,
        size: 0,
        sha256: String::new(),
    }
}

/// Whether `rel` is one of `ignored` or beneath one, component by component.
fn is_ignored(rel: &str, ignored: &[String]) -> bool {
    ignored.iter().any(|dir| {
        rel.strip_prefix(dir.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn collect(
    root: &Path,
    rel: &str,
    ignored: &[String],
    records: &mut std::collections::BTreeMap<String, OutputRecord>,
) -> Result<(), CacheError> {
    if is_ignored(rel, ignored) {
        return Ok(());
    }
    let path = root.join(rel);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_err(path.display())(err)),
    };
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        let target = fs::read_link(&path).map_err(io_err(path.display()))?;
        let target = target.to_string_lossy().replace('\\', "/");
        super::entry::check_link_target(rel, &target)?;
        records.insert(
            rel.to_owned(),
            OutputRecord::Symlink {
                path: rel.to_owned(),
                target,
            },
        );
    } else if meta.is_dir() {
        records.insert(
            rel.to_owned(),
            OutputRecord::Dir {
                path: rel.to_owned(),
            },
        );
        let mut names: Vec<(String, bool)> = Vec::new();
        for entry in fs::read_dir(&path).map_err(io_err(path.display()))? {
            let entry = entry.map_err(io_err(path.display()))?;
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(CacheError::Unsafe(format!(
                    "{rel}: holds a name that is not UTF-8"
                )));
            };
            names.push((name.to_owned(), is_file));
        }
        names.sort();
        for (name, is_file) in names {
            let child = format!("{rel}/{name}");
            super::entry::check_output_path(&child)?;
            if is_file && !is_ignored(&child, ignored) {
                // The directory said what it is: no stat of its own (the
                // file is opened with no link followed when it is read).
                records.insert(child.clone(), pending_file(child));
            } else {
                collect(root, &child, ignored, records)?;
            }
        }
    } else if meta.is_file() {
        records.insert(rel.to_owned(), pending_file(rel.to_owned()));
    } else {
        return Err(CacheError::Unsafe(format!(
            "{rel}: is a special file (a device, FIFO or socket), which no entry holds"
        )));
    }
    Ok(())
}

#[cfg(unix)]
fn file_mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

#[cfg(not(unix))]
fn file_mode(_meta: &fs::Metadata) -> u32 {
    0o644
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that hashes what passes through it.
struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// Writes the archive of `manifest` (whose outputs [`collect_outputs`] made
/// from `root`) to `out`. A file that was not held and changed since it was
/// collected is an error: the archive would not be what the manifest says.
pub fn write_archive<W: Write>(
    root: &Path,
    manifest: &Manifest,
    outputs: &Outputs,
    stdout: &[u8],
    stderr: &[u8],
    out: W,
) -> Result<W, CacheError> {
    let encoder = zstd::stream::write::Encoder::new(out, LEVEL).map_err(io_err("zstd"))?;
    let mut tar = tar::Builder::new(encoder);
    let bytes = manifest.to_bytes();
    for (name, data) in [
        ("manifest.json", &bytes[..]),
        ("stdout", stdout),
        ("stderr", stderr),
    ] {
        let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
        tar.append_data(&mut h, name, data).map_err(io_err(name))?;
    }
    for output in &manifest.outputs {
        let name = format!("outputs/{}", output.path());
        match output {
            OutputRecord::File {
                path,
                size,
                sha256,
                mode,
                ..
            } => {
                if let Some(bytes) = outputs.held.get(path) {
                    // Exactly the bytes that were hashed.
                    let mut h = header(tar::EntryType::Regular, *size, *mode);
                    tar.append_data(&mut h, &name, &bytes[..])
                        .map_err(io_err(&name))?;
                    continue;
                }
                let full = root.join(path);
                let file = File::open(&full).map_err(io_err(full.display()))?;
                let mut reader = HashReader {
                    inner: file.take(*size),
                    hasher: Sha256::new(),
                    read: 0,
                };
                let mut h = header(tar::EntryType::Regular, *size, *mode);
                tar.append_data(&mut h, &name, &mut reader)
                    .map_err(io_err(&name))?;
                if reader.read != *size || hex(&reader.hasher.finalize()) != *sha256 {
                    return Err(CacheError::Io(format!(
                        "{path} changed while it was being stored"
                    )));
                }
            }
            OutputRecord::Symlink { target, .. } => {
                let mut h = header(tar::EntryType::Symlink, 0, 0o777);
                tar.append_link(&mut h, &name, target)
                    .map_err(io_err(&name))?;
            }
            OutputRecord::Dir { .. } => {
                let mut h = header(tar::EntryType::Directory, 0, 0o755);
                tar.append_data(&mut h, &name, io::empty())
                    .map_err(io_err(&name))?;
            }
        }
    }
    let encoder = tar.into_inner().map_err(io_err("tar"))?;
    encoder.finish().map_err(io_err("zstd"))
}

/// Counts decompressed bytes and fails past the bound.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other("the archive decompresses to more than its size limit")
        })?;
        Ok(n)
    }
}

fn tar_reader<R: Read>(
    input: R,
    limits: &Limits,
) -> Result<tar::Archive<Bounded<impl Read>>, CacheError> {
    let mut decoder = zstd::stream::read::Decoder::new(input).map_err(io_err("zstd"))?;
    decoder
        .window_log_max(WINDOW_LOG_MAX)
        .map_err(io_err("zstd"))?;
    Ok(tar::Archive::new(Bounded {
        inner: decoder,
        left: limits.max_bytes,
    }))
}

/// The most a member's claimed size reserves before its bytes are read.
const PREALLOCATE_MAX: u64 = 1 << 20;

fn malformed(err: io::Error) -> CacheError {
    CacheError::Malformed(err.to_string())
}

fn read_member<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    max: u64,
    what: &str,
) -> Result<Vec<u8>, CacheError> {
    // The header's size, and the one a PAX record may put over it, which is
    // what the reader reads.
    let size = entry
        .header()
        .entry_size()
        .map_err(malformed)?
        .max(entry.size());
    if size > max {
        return Err(CacheError::Malformed(format!(
            "{what} of {size} bytes exceeds the {max}-byte limit"
        )));
    }
    // The size is the archive's claim: reserve no more than a little ahead
    // of what is actually read, and never read past `max`.
    let reserve = usize::try_from(size.min(PREALLOCATE_MAX)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(reserve);
    entry
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(malformed)?;
    if bytes.len() as u64 > max {
        return Err(CacheError::Malformed(format!(
            "{what} exceeds the {max}-byte limit"
        )));
    }
    Ok(bytes)
}

/// Reads only the manifest, the archive's first member, and checks it.
pub fn read_manifest<R: Read>(input: R, limits: &Limits) -> Result<Manifest, CacheError> {
    let mut archive = tar_reader(input, limits)?;
    let mut entries = archive.entries().map_err(malformed)?;
    let mut first = entries
        .next()
        .ok_or_else(|| CacheError::Malformed("the archive is empty".into()))?
        .map_err(malformed)?;
    if first.path_bytes().as_ref() != b"manifest.json" {
        return Err(CacheError::Malformed(
            "the archive does not start with its manifest".into(),
        ));
    }
    let bytes = read_member(&mut first, limits.max_manifest_bytes, "the manifest")?;
    Manifest::parse(&bytes)
}

/// What a restore gives back besides the placed outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The command's stdout, checked against its digest.
    pub stdout: Vec<u8>,
    /// The command's stderr, checked against its digest.
    pub stderr: Vec<u8>,
}

/// Reads a whole archive, checking it member by member against `expected`:
/// its manifest must be `expected`, every member must be the next one the
/// manifest names, of its type, size and digest, and nothing may follow.
/// With a `placer`, outputs are staged for it to commit; without, the
/// archive is only verified.
pub fn read_archive<R: Read>(
    input: R,
    expected: &Manifest,
    limits: &Limits,
    mut placer: Option<&mut Placer>,
) -> Result<Replay, CacheError> {
    let mut archive = tar_reader(input, limits)?;
    let mut entries = archive.entries().map_err(malformed)?;
    let mut next = |what: &str| -> Result<tar::Entry<'_, _>, CacheError> {
        entries
            .next()
            .ok_or_else(|| CacheError::Malformed(format!("the archive ends before {what}")))?
            .map_err(malformed)
    };
    let members = 3 + expected.outputs.len();
    if members > limits.max_members {
        return Err(CacheError::Malformed(format!(
            "the entry has {members} members, over the limit of {}",
            limits.max_members
        )));
    }
    {
        let mut entry = next("its manifest")?;
        expect_name(&entry, "manifest.json")?;
        let bytes = read_member(&mut entry, limits.max_manifest_bytes, "the manifest")?;
        if Manifest::parse(&bytes)? != *expected {
            return Err(CacheError::Malformed(
                "the archive's manifest is not the one that was looked up".into(),
            ));
        }
    }
    let mut blob = |name: &str, record: &super::entry::BlobRecord| -> Result<Vec<u8>, CacheError> {
        let mut entry = next(name)?;
        expect_name(&entry, name)?;
        let bytes = read_member(&mut entry, record.size, name)?;
        if super::entry::BlobRecord::of(&bytes) != *record {
            return Err(CacheError::Malformed(format!(
                "{name} does not match its digest"
            )));
        }
        Ok(bytes)
    };
    let stdout = blob("stdout", &expected.stdout)?;
    let stderr = blob("stderr", &expected.stderr)?;
    for output in &expected.outputs {
        let name = format!("outputs/{}", output.path());
        let mut entry = next(&name)?;
        expect_name(&entry, &name)?;
        let kind = entry.header().entry_type();
        match output {
            OutputRecord::File {
                path,
                size,
                sha256,
                mode,
            } => {
                if kind != tar::EntryType::Regular
                    || entry.header().entry_size().map_err(malformed)? != *size
                {
                    return Err(CacheError::Malformed(format!(
                        "{name} is not the file the manifest names"
                    )));
                }
                let mut reader = HashReader {
                    inner: &mut entry,
                    hasher: Sha256::new(),
                    read: 0,
                };
                match placer.as_deref_mut() {
                    Some(placer) => {
                        let mut file = placer.file(path, *mode)?;
                        io::copy(&mut reader, &mut file).map_err(malformed)?;
                    }
                    None => {
                        io::copy(&mut reader, &mut io::sink()).map_err(malformed)?;
                    }
                }
                if reader.read != *size || hex(&reader.hasher.finalize()) != *sha256 {
                    return Err(CacheError::Malformed(format!(
                        "{name} does not match its digest"
                    )));
                }
            }
            OutputRecord::Symlink { path, target } => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                if kind != tar::EntryType::Symlink || link != target.as_bytes() {
                    return Err(CacheError::Malformed(format!(
                        "{name} is not the link the manifest names"
                    )));
                }
                if let Some(placer) = placer.as_deref_mut() {
                    placer.symlink(path, target)?;
                }
            }
            OutputRecord::Dir { path } => {
                if kind != tar::EntryType::Directory {
                    return Err(CacheError::Malformed(format!(
                        "{name} is not the directory the manifest names"
                    )));
                }
                if let Some(placer) = placer.as_deref_mut() {
                    placer.dir(path)?;
                }
            }
        }
    }
    if next("its end").is_ok() {
        return Err(CacheError::Malformed(
            "the archive holds a member its manifest does not name".into(),
        ));
    }
    // After tar's end: only its zero padding, to the end of the stream (a
    // member hidden past the end, or bytes after the zstd frame, are refused).
    let mut rest = archive.into_inner();
    let mut buf = [0u8; 8192];
    loop {
        let n = rest.read(&mut buf).map_err(malformed)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(CacheError::Malformed(
                "the archive holds data after its end".into(),
            ));
        }
    }
    Ok(Replay { stdout, stderr })
}

fn expect_name<R: Read>(entry: &tar::Entry<'_, R>, name: &str) -> Result<(), CacheError> {
    if entry.path_bytes().as_ref() == name.as_bytes() {
        Ok(())
    } else {
        Err(CacheError::Malformed(format!(
            "the archive holds {:?} where its manifest names {name:?}",
            String::from_utf8_lossy(&entry.path_bytes())
        )))
    }
}
