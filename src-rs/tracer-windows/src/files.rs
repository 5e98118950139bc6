//! The hooks of ntdll's file calls: opens and creates, attribute look-ups,
//! directory listings, renames, links, deletes and truncation. Effects are
//! recorded before the call, look-ups after it (their outcome decides found
//! or missing), as on Linux.

use core::ffi::c_void;
use std::sync::atomic::AtomicUsize;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Storage::FileSystem::{
    FileStandardInfo, GetFileInformationByHandleEx, FILE_STANDARD_INFO,
};

use crate::nt::{self, IoStatusBlock, Name, ObjectAttributes, Status, UnicodeString};
use crate::record;

// The original calls, each set as its hook is installed.
/// The original `NtCreateFile`.
pub(crate) static NT_CREATE_FILE: AtomicUsize = AtomicUsize::new(0);
/// The original `NtOpenFile`.
pub(crate) static NT_OPEN_FILE: AtomicUsize = AtomicUsize::new(0);
/// The original `NtQueryAttributesFile`.
pub(crate) static NT_QUERY_ATTRIBUTES_FILE: AtomicUsize = AtomicUsize::new(0);
/// The original `NtQueryFullAttributesFile`.
pub(crate) static NT_QUERY_FULL_ATTRIBUTES_FILE: AtomicUsize = AtomicUsize::new(0);
/// The original `NtQueryDirectoryFile`.
pub(crate) static NT_QUERY_DIRECTORY_FILE: AtomicUsize = AtomicUsize::new(0);
/// The original `NtQueryDirectoryFileEx`.
pub(crate) static NT_QUERY_DIRECTORY_FILE_EX: AtomicUsize = AtomicUsize::new(0);
/// The original `NtSetInformationFile`.
pub(crate) static NT_SET_INFORMATION_FILE: AtomicUsize = AtomicUsize::new(0);
/// The original `NtDeleteFile`.
pub(crate) static NT_DELETE_FILE: AtomicUsize = AtomicUsize::new(0);

type NtCreateFile = unsafe extern "system" fn(
    *mut HANDLE,
    u32,
    *const ObjectAttributes,
    *mut IoStatusBlock,
    *const i64,
    u32,
    u32,
    u32,
    u32,
    *const c_void,
    u32,
) -> Status;
type NtOpenFile = unsafe extern "system" fn(
    *mut HANDLE,
    u32,
    *const ObjectAttributes,
    *mut IoStatusBlock,
    u32,
    u32,
) -> Status;
type NtQueryAttributesFile =
    unsafe extern "system" fn(*const ObjectAttributes, *mut c_void) -> Status;
type NtQueryDirectoryFile = unsafe extern "system" fn(
    HANDLE,
    HANDLE,
    *const c_void,
    *const c_void,
    *mut IoStatusBlock,
    *mut c_void,
    u32,
    u32,
    u8,
    *const UnicodeString,
    u8,
) -> Status;
type NtQueryDirectoryFileEx = unsafe extern "system" fn(
    HANDLE,
    HANDLE,
    *const c_void,
    *const c_void,
    *mut IoStatusBlock,
    *mut c_void,
    u32,
    u32,
    u32,
    *const UnicodeString,
) -> Status;
type NtSetInformationFile =
    unsafe extern "system" fn(HANDLE, *mut IoStatusBlock, *const c_void, u32, u32) -> Status;
type NtDeleteFile = unsafe extern "system" fn(*const ObjectAttributes) -> Status;

// Access rights and options (winnt.h, ntifs.h).
const FILE_READ_DATA: u32 = 0x1;
const FILE_WRITE_DATA: u32 = 0x2;
const FILE_APPEND_DATA: u32 = 0x4;
const FILE_EXECUTE: u32 = 0x20;
const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
const GENERIC_ALL: u32 = 0x1000_0000;
const GENERIC_EXECUTE: u32 = 0x2000_0000;
const GENERIC_WRITE: u32 = 0x4000_0000;
const GENERIC_READ: u32 = 0x8000_0000;
const WRITE_ACCESS: u32 =
    FILE_WRITE_DATA | FILE_APPEND_DATA | GENERIC_WRITE | GENERIC_ALL | MAXIMUM_ALLOWED;
const READ_ACCESS: u32 =
    FILE_READ_DATA | FILE_EXECUTE | GENERIC_READ | GENERIC_EXECUTE | GENERIC_ALL | MAXIMUM_ALLOWED;
const FILE_OPEN: u32 = 1;
const FILE_DIRECTORY_FILE: u32 = 0x1;
const FILE_NON_DIRECTORY_FILE: u32 = 0x40;
const FILE_DELETE_ON_CLOSE: u32 = 0x1000;
const FILE_OPEN_BY_FILE_ID: u32 = 0x2000;

/// The file an open names: by its ID (`OpenFileById`) it names no path.
unsafe fn opened_name(attributes: *const ObjectAttributes, options: u32) -> Name {
    if options & FILE_OPEN_BY_FILE_ID != 0 {
        return Name::Unnamed(
            "a file was opened by its file ID (OpenFileById), which names no path".to_owned(),
        );
    }
    nt::object_path(attributes)
}

/// What an open does to its file before it returns, if anything: a
/// disposition other than "open" may create or truncate.
fn open_effect(access: u32, disposition: u32, options: u32) -> Option<u8> {
    if options & FILE_DELETE_ON_CLOSE != 0 {
        Some(record::DELETED)
    } else if disposition != FILE_OPEN || access & WRITE_ACCESS != 0 {
        Some(record::WRITTEN)
    } else {
        None
    }
}

/// Whether a failed call's status says the name is not there.
fn is_missing(status: Status) -> bool {
    matches!(
        status as u32,
        0xC000_000F // STATUS_NO_SUCH_FILE
            | 0xC000_0033 // STATUS_OBJECT_NAME_INVALID
            | 0xC000_0034 // STATUS_OBJECT_NAME_NOT_FOUND
            | 0xC000_0039 // STATUS_OBJECT_PATH_INVALID
            | 0xC000_003A // STATUS_OBJECT_PATH_NOT_FOUND
            | 0xC000_003B // STATUS_OBJECT_PATH_SYNTAX_BAD
            | 0xC000_0103 // STATUS_NOT_A_DIRECTORY
            | 0xC000_0225 // STATUS_NOT_FOUND
    )
}

fn looked_up(status: Status) -> u8 {
    if status >= 0 || !is_missing(status) {
        record::FOUND
    } else {
        record::MISSING
    }
}

/// Records `kind` for `name`, or why the trace cannot.
fn note(kind: u8, name: &Name) {
    match name {
        Name::Path(path) => record::path(kind, path),
        Name::NotAFile => {}
        Name::Unnamed(why) => record::write(record::INCOMPLETE, why),
    }
}

fn is_directory(handle: HANDLE, options: u32) -> bool {
    if options & FILE_DIRECTORY_FILE != 0 {
        return true;
    }
    if options & FILE_NON_DIRECTORY_FILE != 0 {
        return false;
    }
    // SAFETY: zeroed plain data, its size passed.
    unsafe {
        let mut info: FILE_STANDARD_INFO = std::mem::zeroed();
        GetFileInformationByHandleEx(
            handle,
            FileStandardInfo,
            (&mut info as *mut FILE_STANDARD_INFO).cast(),
            size_of::<FILE_STANDARD_INFO>() as u32,
        ) != 0
            && info.Directory
    }
}

/// What an open that changed nothing did: read a file, looked at a
/// directory (its listing is recorded when it is listed) or at attributes
/// only, or found nothing.
unsafe fn after_open(name: &Name, access: u32, options: u32, status: Status, handle: *mut HANDLE) {
    if !matches!(name, Name::Path(_)) {
        note(record::FOUND, name);
        return;
    }
    let kind = if status < 0 {
        looked_up(status)
    } else if access & READ_ACCESS != 0 && !is_directory(*handle, options) {
        record::READ
    } else {
        record::FOUND
    };
    note(kind, name);
}

pub unsafe extern "system" fn nt_create_file(
    handle: *mut HANDLE,
    access: u32,
    attributes: *const ObjectAttributes,
    io: *mut IoStatusBlock,
    allocation: *const i64,
    file_attributes: u32,
    share: u32,
    disposition: u32,
    options: u32,
    ea: *const c_void,
    ea_length: u32,
) -> Status {
    let name = opened_name(attributes, options);
    let effect = open_effect(access, disposition, options);
    if let Some(kind) = effect {
        note(kind, &name);
    }
    let status = original!(NT_CREATE_FILE, NtCreateFile)(
        handle,
        access,
        attributes,
        io,
        allocation,
        file_attributes,
        share,
        disposition,
        options,
        ea,
        ea_length,
    );
    if effect.is_none() {
        after_open(&name, access, options, status, handle);
    }
    status
}

pub unsafe extern "system" fn nt_open_file(
    handle: *mut HANDLE,
    access: u32,
    attributes: *const ObjectAttributes,
    io: *mut IoStatusBlock,
    share: u32,
    options: u32,
) -> Status {
    let name = opened_name(attributes, options);
    let effect = open_effect(access, FILE_OPEN, options);
    if let Some(kind) = effect {
        note(kind, &name);
    }
    let status =
        original!(NT_OPEN_FILE, NtOpenFile)(handle, access, attributes, io, share, options);
    if effect.is_none() {
        after_open(&name, access, options, status, handle);
    }
    status
}

/// An attribute look-up through the original call in `slot`: found or missing.
unsafe fn query_attributes(
    slot: &AtomicUsize,
    attributes: *const ObjectAttributes,
    info: *mut c_void,
) -> Status {
    let status = original!(slot, NtQueryAttributesFile)(attributes, info);
    note(looked_up(status), &nt::object_path(attributes));
    status
}

pub unsafe extern "system" fn nt_query_attributes_file(
    attributes: *const ObjectAttributes,
    info: *mut c_void,
) -> Status {
    query_attributes(&NT_QUERY_ATTRIBUTES_FILE, attributes, info)
}

pub unsafe extern "system" fn nt_query_full_attributes_file(
    attributes: *const ObjectAttributes,
    info: *mut c_void,
) -> Status {
    query_attributes(&NT_QUERY_FULL_ATTRIBUTES_FILE, attributes, info)
}

/// A listing of the directory `handle` is open on; with a mask that has no
/// wildcard (`FindFirstFileW(L"C:\\dir\\name")`), a look-up of that one name.
unsafe fn listed(handle: HANDLE, mask: *const UnicodeString, status: Status) {
    let Some(dir) = nt::handle_path(handle) else {
        record::write(
            record::INCOMPLETE,
            "a directory was listed through a handle the trace cannot name",
        );
        return;
    };
    let mask = nt::unicode(mask);
    let wildcard = mask.is_empty()
        || mask
            .iter()
            .any(|&unit| matches!(unit, 0x2a | 0x3f | 0x3c | 0x3e | 0x22)); // * ? < > "
    if wildcard {
        record::path(record::LISTED, &dir);
    } else {
        note(
            looked_up(status),
            &nt::relative_path(std::ptr::null_mut(), mask, Some(&nt::with_backslash(dir))),
        );
    }
}

pub unsafe extern "system" fn nt_query_directory_file(
    handle: HANDLE,
    event: HANDLE,
    apc: *const c_void,
    apc_context: *const c_void,
    io: *mut IoStatusBlock,
    info: *mut c_void,
    length: u32,
    class: u32,
    single: u8,
    mask: *const UnicodeString,
    restart: u8,
) -> Status {
    let status = original!(NT_QUERY_DIRECTORY_FILE, NtQueryDirectoryFile)(
        handle,
        event,
        apc,
        apc_context,
        io,
        info,
        length,
        class,
        single,
        mask,
        restart,
    );
    listed(handle, mask, status);
    status
}

pub unsafe extern "system" fn nt_query_directory_file_ex(
    handle: HANDLE,
    event: HANDLE,
    apc: *const c_void,
    apc_context: *const c_void,
    io: *mut IoStatusBlock,
    info: *mut c_void,
    length: u32,
    class: u32,
    flags: u32,
    mask: *const UnicodeString,
) -> Status {
    let status = original!(NT_QUERY_DIRECTORY_FILE_EX, NtQueryDirectoryFileEx)(
        handle,
        event,
        apc,
        apc_context,
        io,
        info,
        length,
        class,
        flags,
        mask,
    );
    listed(handle, mask, status);
    status
}

// FILE_INFORMATION_CLASS values that change names or contents.
const FILE_RENAME_INFORMATION: u32 = 10;
const FILE_LINK_INFORMATION: u32 = 11;
const FILE_DISPOSITION_INFORMATION: u32 = 13;
const FILE_ALLOCATION_INFORMATION: u32 = 19;
const FILE_END_OF_FILE_INFORMATION: u32 = 20;
const FILE_DISPOSITION_INFORMATION_EX: u32 = 64;
const FILE_RENAME_INFORMATION_EX: u32 = 65;
const FILE_LINK_INFORMATION_EX: u32 = 72;

/// The new name in a `FILE_RENAME_INFORMATION` or `FILE_LINK_INFORMATION`:
/// flags (8 bytes with padding), a root directory handle, the name's length
/// in bytes, the name. A plain name is in `source`'s directory.
unsafe fn new_name(info: *const c_void, length: u32, source: &Name) -> Name {
    let source = match source {
        Name::Path(path) => Some(path.as_slice()),
        Name::NotAFile | Name::Unnamed(_) => None,
    };
    if length < 20 {
        return Name::Unnamed("a rename or link named no new name".to_owned());
    }
    let bytes = info.cast::<u8>();
    let root = bytes.add(8).cast::<HANDLE>().read_unaligned();
    let name_bytes = bytes
        .add(16)
        .cast::<u32>()
        .read_unaligned()
        .min(length - 20);
    let name =
        std::slice::from_raw_parts(bytes.add(20).cast::<u16>(), name_bytes as usize / 2).to_vec();
    nt::relative_path(root, &name, source)
}

pub unsafe extern "system" fn nt_set_information_file(
    handle: HANDLE,
    io: *mut IoStatusBlock,
    info: *const c_void,
    length: u32,
    class: u32,
) -> Status {
    let source = || match nt::handle_path(handle) {
        Some(path) => Name::Path(path),
        None => Name::Unnamed(
            "a file was renamed, deleted or truncated through a handle the trace cannot name"
                .to_owned(),
        ),
    };
    match class {
        FILE_RENAME_INFORMATION | FILE_RENAME_INFORMATION_EX => {
            let from = source();
            note(record::DELETED, &from);
            note(record::WRITTEN, &new_name(info, length, &from));
        }
        FILE_LINK_INFORMATION | FILE_LINK_INFORMATION_EX => {
            note(record::WRITTEN, &new_name(info, length, &source()));
        }
        FILE_DISPOSITION_INFORMATION if length >= 1 && info.cast::<u8>().read() != 0 => {
            note(record::DELETED, &source());
        }
        FILE_DISPOSITION_INFORMATION_EX
            if length >= 4 && info.cast::<u32>().read_unaligned() & 1 != 0 =>
        {
            note(record::DELETED, &source());
        }
        FILE_ALLOCATION_INFORMATION | FILE_END_OF_FILE_INFORMATION => {
            note(record::WRITTEN, &source())
        }
        _ => {}
    }
    original!(NT_SET_INFORMATION_FILE, NtSetInformationFile)(handle, io, info, length, class)
}

pub unsafe extern "system" fn nt_delete_file(attributes: *const ObjectAttributes) -> Status {
    note(record::DELETED, &nt::object_path(attributes));
    original!(NT_DELETE_FILE, NtDeleteFile)(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE_SUPERSEDE: u32 = 0;
    const FILE_CREATE: u32 = 2;
    const FILE_OPEN_IF: u32 = 3;
    const FILE_OVERWRITE: u32 = 4;
    const FILE_OVERWRITE_IF: u32 = 5;
    const FILE_READ_ATTRIBUTES: u32 = 0x80;
    const SYNCHRONIZE: u32 = 0x0010_0000;
    const DELETE: u32 = 0x0001_0000;

    #[test]
    fn an_open_is_an_effect_when_it_may_write_create_truncate_or_delete() {
        let read = GENERIC_READ | SYNCHRONIZE;
        assert_eq!(open_effect(read, FILE_OPEN, 0), None);
        assert_eq!(open_effect(FILE_READ_ATTRIBUTES, FILE_OPEN, 0), None);
        assert_eq!(open_effect(DELETE | SYNCHRONIZE, FILE_OPEN, 0), None);
        for disposition in [
            FILE_SUPERSEDE,
            FILE_CREATE,
            FILE_OPEN_IF,
            FILE_OVERWRITE,
            FILE_OVERWRITE_IF,
        ] {
            assert_eq!(
                open_effect(read, disposition, 0),
                Some(record::WRITTEN),
                "{disposition}"
            );
        }
        for access in [
            FILE_WRITE_DATA,
            FILE_APPEND_DATA,
            GENERIC_WRITE,
            GENERIC_ALL,
            MAXIMUM_ALLOWED,
        ] {
            assert_eq!(
                open_effect(access, FILE_OPEN, 0),
                Some(record::WRITTEN),
                "{access:#x}"
            );
        }
        assert_eq!(
            open_effect(DELETE, FILE_OPEN, FILE_DELETE_ON_CLOSE),
            Some(record::DELETED)
        );
    }

    #[test]
    fn a_failed_look_up_is_missing_only_when_the_name_is_not_there() {
        assert_eq!(looked_up(0), record::FOUND);
        assert_eq!(looked_up(0xC000_0034_u32 as i32), record::MISSING);
        assert_eq!(looked_up(0xC000_003A_u32 as i32), record::MISSING);
        assert_eq!(looked_up(0xC000_0103_u32 as i32), record::MISSING);
        // Access denied, a sharing violation: the file is there.
        assert_eq!(looked_up(0xC000_0022_u32 as i32), record::FOUND);
        assert_eq!(looked_up(0xC000_0043_u32 as i32), record::FOUND);
    }
}
