//! ntdll's types the hooks read, and how the names they carry become the
//! Windows paths a trace records: `\??\C:\dir\file` is `C:\dir\file`,
//! `\??\UNC\server\share\file` is `\\server\share\file`, a name relative to a
//! directory handle is joined to that directory's path; a drive letter is
//! upper case. Pipes, consoles and other devices are no files, and are not
//! recorded.

use core::ffi::c_void;
use std::slice;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Storage::FileSystem::GetFinalPathNameByHandleW;

/// An NTSTATUS.
pub type Status = i32;

/// `UNICODE_STRING`.
#[repr(C)]
pub struct UnicodeString {
    /// Length in bytes, no NUL.
    pub length: u16,
    pub maximum_length: u16,
    pub buffer: *const u16,
}

/// `OBJECT_ATTRIBUTES`.
#[repr(C)]
pub struct ObjectAttributes {
    pub length: u32,
    pub root_directory: HANDLE,
    pub object_name: *const UnicodeString,
    pub attributes: u32,
    pub security_descriptor: *const c_void,
    pub security_quality_of_service: *const c_void,
}

/// `IO_STATUS_BLOCK`.
#[repr(C)]
pub struct IoStatusBlock {
    pub status: usize,
    pub information: usize,
}

/// What a name in a call refers to.
pub enum Name {
    /// A file or directory, by its Windows path.
    Path(Vec<u16>),
    /// A device, pipe or other object that is no file.
    NotAFile,
    /// A file the trace cannot name; the text says which.
    Unnamed(String),
}

const BACKSLASH: u16 = b'\\' as u16;

fn units(text: &str) -> Vec<u16> {
    text.encode_utf16().collect()
}

fn starts_with_ignore_case(name: &[u16], prefix: &str) -> bool {
    let prefix = units(prefix);
    name.len() >= prefix.len()
        && name[..prefix.len()]
            .iter()
            .zip(&prefix)
            .all(|(&a, &b)| to_upper(a) == to_upper(b))
}

fn to_upper(unit: u16) -> u16 {
    if (u16::from(b'a')..=u16::from(b'z')).contains(&unit) {
        unit - 32
    } else {
        unit
    }
}

/// The units of a `UNICODE_STRING`, empty for a null one.
///
/// # Safety
/// `string` is null or points to a valid `UNICODE_STRING`.
pub unsafe fn unicode<'a>(string: *const UnicodeString) -> &'a [u16] {
    if string.is_null() || (*string).buffer.is_null() {
        return &[];
    }
    slice::from_raw_parts((*string).buffer, usize::from((*string).length) / 2)
}

/// The path `attributes` names.
///
/// # Safety
/// `attributes` is null or points to valid `OBJECT_ATTRIBUTES`.
pub unsafe fn object_path(attributes: *const ObjectAttributes) -> Name {
    if attributes.is_null() {
        return Name::NotAFile;
    }
    let name = unicode((*attributes).object_name);
    relative_path((*attributes).root_directory, name, None)
}

/// The path `name` names: relative to the directory `root` when it is not
/// null, else an NT name; a name with neither root nor leading backslash is
/// in `sibling_of`'s directory (a rename's plain new name).
pub fn relative_path(root: HANDLE, name: &[u16], sibling_of: Option<&[u16]>) -> Name {
    if !root.is_null() {
        let Some(mut dir) = handle_path(root) else {
            return Name::Unnamed(format!(
                "a file was opened relative to a directory handle the trace cannot name ({})",
                String::from_utf16_lossy(name)
            ));
        };
        if !name.is_empty() {
            dir = with_backslash(dir);
            dir.extend_from_slice(name);
        }
        return Name::Path(trimmed(dir));
    }
    if name.first() != Some(&BACKSLASH) {
        if let Some(sibling) = sibling_of {
            let cut = sibling
                .iter()
                .rposition(|&unit| unit == BACKSLASH)
                .unwrap_or(0);
            let mut path = sibling[..=cut.min(sibling.len().saturating_sub(1))].to_vec();
            path.extend_from_slice(name);
            return Name::Path(path);
        }
        return Name::NotAFile;
    }
    dos_path(name)
}

/// The Windows path of an NT name.
pub fn dos_path(name: &[u16]) -> Name {
    for prefix in ["\\??\\", "\\DosDevices\\", "\\GLOBAL??\\"] {
        if starts_with_ignore_case(name, prefix) {
            return dos_device_path(&name[prefix.len()..]);
        }
    }
    // The Win32 forms, which a few callers pass through.
    if starts_with_ignore_case(name, "\\\\?\\") {
        return dos_device_path(&name[4..]);
    }
    if starts_with_ignore_case(name, "\\Device\\") {
        for disk in [
            "\\Device\\Harddisk",
            "\\Device\\Mup\\",
            "\\Device\\LanmanRedirector\\",
        ] {
            if starts_with_ignore_case(name, disk) {
                return Name::Unnamed(format!(
                    "a file was named by its device path, which the trace cannot name as a drive path ({})",
                    String::from_utf16_lossy(name)
                ));
            }
        }
    }
    Name::NotAFile
}

/// A name in the DOS devices directory: `C:\…` and `UNC\…` are files,
/// anything else (`pipe\…`, `CONIN$`, `nul`, `Volume{…}`) is not.
fn dos_device_path(rest: &[u16]) -> Name {
    let drive = rest.len() >= 2
        && rest[1] == u16::from(b':')
        && char::from_u32(u32::from(rest[0])).is_some_and(|c| c.is_ascii_alphabetic());
    if drive && (rest.len() == 2 || rest[2] == BACKSLASH) {
        // `c:\x` and `C:\x` are one file: the drive letter is recorded upper case.
        let mut path = rest.to_vec();
        path[0] = to_upper(path[0]);
        if path.len() == 2 {
            path.push(BACKSLASH);
        }
        return Name::Path(trimmed(path));
    }
    if starts_with_ignore_case(rest, "UNC\\") {
        let mut path = units("\\\\");
        path.extend_from_slice(&rest[4..]);
        return Name::Path(trimmed(path));
    }
    Name::NotAFile
}

/// A directory's path ending in a backslash, for a name to be appended.
pub fn with_backslash(mut dir: Vec<u16>) -> Vec<u16> {
    if dir.last() != Some(&BACKSLASH) {
        dir.push(BACKSLASH);
    }
    dir
}

/// Without a trailing backslash, except a drive's root (`C:\`).
fn trimmed(mut path: Vec<u16>) -> Vec<u16> {
    while path.len() > 3 && path.last() == Some(&BACKSLASH) {
        path.pop();
    }
    path
}

/// The Windows path of an open file or directory: its final name (links
/// resolved, as the file system spells it), or `None` if it has none.
pub fn handle_path(handle: HANDLE) -> Option<Vec<u16>> {
    let mut buffer = vec![0u16; 512];
    loop {
        // SAFETY: the buffer's length is passed; VOLUME_NAME_DOS (0) gives
        // `\\?\C:\…`, or the length needed when it does not fit.
        let len = unsafe {
            GetFinalPathNameByHandleW(handle, buffer.as_mut_ptr(), buffer.len() as u32, 0)
        } as usize;
        if len == 0 {
            return None;
        }
        if len < buffer.len() {
            buffer.truncate(len);
            break;
        }
        if buffer.len() >= 32_768 {
            return None;
        }
        buffer.resize(len.clamp(buffer.len() + 1, 32_768), 0);
    }
    match dos_path(&buffer) {
        Name::Path(path) => Some(path),
        Name::NotAFile | Name::Unnamed(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(name: &str) -> Option<String> {
        match dos_path(&units(name)) {
            Name::Path(path) => Some(String::from_utf16(&path).unwrap()),
            Name::NotAFile => None,
            Name::Unnamed(why) => Some(format!("unnamed: {why}")),
        }
    }

    #[test]
    fn nt_names_become_win32_paths() {
        assert_eq!(
            path_of("\\??\\C:\\proj\\a.js").as_deref(),
            Some("C:\\proj\\a.js")
        );
        assert_eq!(
            path_of("\\??\\c:\\proj\\dist\\").as_deref(),
            Some("C:\\proj\\dist")
        );
        assert_eq!(path_of("\\??\\D:").as_deref(), Some("D:\\"));
        assert_eq!(path_of("\\??\\D:\\").as_deref(), Some("D:\\"));
        assert_eq!(path_of("\\DosDevices\\C:\\x").as_deref(), Some("C:\\x"));
        assert_eq!(path_of("\\GLOBAL??\\C:\\x").as_deref(), Some("C:\\x"));
        assert_eq!(path_of("\\\\?\\C:\\x").as_deref(), Some("C:\\x"));
        assert_eq!(
            path_of("\\??\\UNC\\server\\share\\f.txt").as_deref(),
            Some("\\\\server\\share\\f.txt")
        );
        assert_eq!(
            path_of("\\\\?\\UNC\\server\\share").as_deref(),
            Some("\\\\server\\share")
        );
    }

    #[test]
    fn devices_pipes_and_consoles_are_no_files() {
        for name in [
            "\\??\\pipe\\node-ipc",
            "\\??\\CONIN$",
            "\\??\\nul",
            "\\??\\Volume{0a1b}\\x",
            "\\Device\\Afd\\Endpoint",
            "\\Device\\NamedPipe\\x",
            "\\Device\\ConDrv\\Output",
            "relative\\name",
        ] {
            assert_eq!(path_of(name), None, "{name}");
        }
    }

    #[test]
    fn a_disk_named_by_its_device_is_unnamed() {
        let path = path_of("\\Device\\HarddiskVolume3\\proj\\a.js").unwrap();
        assert!(path.starts_with("unnamed: "), "{path}");
    }

    #[test]
    fn a_plain_new_name_is_in_its_source_s_directory() {
        let renamed = |name: &str| match relative_path(
            std::ptr::null_mut(),
            &units(name),
            Some(&units("C:\\proj\\old.txt")),
        ) {
            Name::Path(path) => String::from_utf16(&path).unwrap(),
            Name::NotAFile | Name::Unnamed(_) => panic!("{name}: not a path"),
        };
        assert_eq!(renamed("new.txt"), "C:\\proj\\new.txt");
        assert_eq!(renamed("\\??\\D:\\elsewhere.txt"), "D:\\elsewhere.txt");
    }
}
