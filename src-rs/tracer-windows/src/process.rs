//! The hook of `NtCreateUserProcess`, which every `CreateProcess*` ends in:
//! the child is created suspended, the DLL loaded into it, and only then let
//! run, unless its creator asked for it suspended. A child the DLL cannot be
//! loaded into (a 32-bit program) makes the trace incomplete.

use core::ffi::c_void;
use std::sync::atomic::AtomicUsize;
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::Threading::ResumeThread;

use crate::inject;
use crate::nt::{self, Name, Status, UnicodeString};
use crate::record;

/// The original `NtCreateUserProcess`, set as its hook is installed.
pub(crate) static NT_CREATE_USER_PROCESS: AtomicUsize = AtomicUsize::new(0);

/// This DLL's path and the trace file's, for the children.
pub(crate) static SELF: OnceLock<(Vec<u16>, Vec<u16>)> = OnceLock::new();

type NtCreateUserProcess = unsafe extern "system" fn(
    *mut HANDLE,
    *mut HANDLE,
    u32,
    u32,
    *const c_void,
    *const c_void,
    u32,
    u32,
    *const c_void,
    *mut c_void,
    *const c_void,
) -> Status;

const THREAD_CREATE_FLAGS_CREATE_SUSPENDED: u32 = 0x1;
/// `CREATE_BREAKAWAY_FROM_JOB`, as `NtCreateUserProcess` has it.
const PROCESS_CREATE_FLAGS_BREAKAWAY: u32 = 0x1;
/// `RTL_USER_PROCESS_PARAMETERS.Flags`: buffers are pointers, not offsets.
const PARAMS_NORMALIZED: u32 = 0x1;
/// Offsets in `RTL_USER_PROCESS_PARAMETERS` (x64).
const PARAMS_FLAGS: usize = 0x08;
const PARAMS_IMAGE_PATH_NAME: usize = 0x60;

/// The Win32 path of the image in a process's parameters.
unsafe fn image_path(params: *const c_void) -> Option<Vec<u16>> {
    if params.is_null() {
        return None;
    }
    let base = params.cast::<u8>();
    let flags = base.add(PARAMS_FLAGS).cast::<u32>().read_unaligned();
    let mut image = base
        .add(PARAMS_IMAGE_PATH_NAME)
        .cast::<UnicodeString>()
        .read_unaligned();
    if flags & PARAMS_NORMALIZED == 0 && !image.buffer.is_null() {
        image.buffer = base.add(image.buffer as usize).cast();
    }
    let units = nt::unicode(&image);
    if units.is_empty() {
        return None;
    }
    match nt::dos_path(units) {
        Name::Path(path) => Some(path),
        _ => Some(units.to_vec()),
    }
}

#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn nt_create_user_process(
    process: *mut HANDLE,
    thread: *mut HANDLE,
    process_access: u32,
    thread_access: u32,
    process_attributes: *const c_void,
    thread_attributes: *const c_void,
    process_flags: u32,
    thread_flags: u32,
    params: *const c_void,
    create_info: *mut c_void,
    attribute_list: *const c_void,
) -> Status {
    let image = image_path(params);
    if let Some(image) = &image {
        record::path(record::EXEC, image);
    }
    if process_flags & PROCESS_CREATE_FLAGS_BREAKAWAY != 0 {
        record::write(
            record::INCOMPLETE,
            "a process left the task's job (CREATE_BREAKAWAY_FROM_JOB), so the trace may end before it does",
        );
    }
    let status = original!(NT_CREATE_USER_PROCESS, NtCreateUserProcess)(
        process,
        thread,
        process_access,
        thread_access,
        process_attributes,
        thread_attributes,
        process_flags,
        thread_flags | THREAD_CREATE_FLAGS_CREATE_SUSPENDED,
        params,
        create_info,
        attribute_list,
    );
    if status < 0 {
        return status;
    }
    let traced = match SELF.get() {
        Some((dll, trace)) => inject::into_suspended(*process, dll, trace),
        None => Err(inject::InjectError::NotLoaded),
    };
    if let Err(err) = traced {
        let name = image.map_or_else(
            || "a program".to_owned(),
            |image| String::from_utf16_lossy(&image),
        );
        record::write(
            record::INCOMPLETE,
            &format!("a child process ran untraced ({name}): {err}"),
        );
    }
    if thread_flags & THREAD_CREATE_FLAGS_CREATE_SUSPENDED == 0 {
        ResumeThread(*thread);
    }
    status
}
