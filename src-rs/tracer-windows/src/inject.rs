//! Loading the DLL into a process created suspended, before any of its own
//! code runs: a thread of ours in it calls `LoadLibraryW` on the DLL's path,
//! whose `DllMain` installs the hooks, and only then is the process resumed.

use std::io;
use std::ptr;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Diagnostics::Debug::WriteProcessMemory;
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Memory::{
    VirtualAllocEx, VirtualFreeEx, MEM_COMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_READWRITE,
};
use windows_sys::Win32::System::Threading::{
    CreateRemoteThread, GetProcessId, IsWow64Process, WaitForSingleObject,
};

use crate::handoff::{Handoff, State};

/// How long the DLL may take to start in a new process.
const LOAD_TIMEOUT_MS: u32 = 60_000;

/// Why a process could not be traced.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// A 32-bit program: the DLL is x64.
    #[error("it is not an x64 program")]
    NotX64,
    /// A Windows call failed.
    #[error("{0} failed: {1}")]
    Os(&'static str, io::Error),
    /// The DLL did not start within the time allowed.
    #[error("the tracer did not start in it within {LOAD_TIMEOUT_MS} ms")]
    Timeout,
    /// `LoadLibraryW` returned without running the DLL.
    #[error("the tracing DLL did not load in it")]
    NotLoaded,
    /// The DLL ran and could not open the trace file.
    #[error("the tracing DLL could not open the trace file in it")]
    NoTraceFile,
}

fn os(call: &'static str) -> InjectError {
    InjectError::Os(call, io::Error::last_os_error())
}

/// Loads the DLL at `dll` (no NUL) into `process`, created suspended, and
/// hands it the trace file `trace`. Returns once the DLL's hooks are in
/// place; the caller resumes the process.
///
/// # Safety
/// `process` must be a handle to a live process with the access
/// `CreateProcess` grants (create thread, VM operation, write, query).
pub unsafe fn into_suspended(
    process: HANDLE,
    dll: &[u16],
    trace: &[u16],
) -> Result<(), InjectError> {
    let mut wow64 = 0;
    if IsWow64Process(process, &mut wow64) == 0 {
        return Err(os("IsWow64Process"));
    }
    if wow64 != 0 {
        return Err(InjectError::NotX64);
    }
    let pid = GetProcessId(process);
    if pid == 0 {
        return Err(os("GetProcessId"));
    }
    let handoff =
        Handoff::create(pid, trace).map_err(|err| InjectError::Os("CreateFileMappingW", err))?;

    let mut path: Vec<u16> = dll.to_vec();
    path.push(0);
    let bytes = path.len() * 2;
    let remote = VirtualAllocEx(
        process,
        ptr::null(),
        bytes,
        MEM_COMMIT | MEM_RESERVE,
        PAGE_READWRITE,
    );
    if remote.is_null() {
        return Err(os("VirtualAllocEx"));
    }
    let result = load(process, remote, &path, &handoff);
    VirtualFreeEx(process, remote, 0, MEM_RELEASE);
    result
}

unsafe fn load(
    process: HANDLE,
    remote: *mut core::ffi::c_void,
    path: &[u16],
    handoff: &Handoff,
) -> Result<(), InjectError> {
    if WriteProcessMemory(
        process,
        remote,
        path.as_ptr().cast(),
        path.len() * 2,
        ptr::null_mut(),
    ) == 0
    {
        return Err(os("WriteProcessMemory"));
    }
    // kernel32 is at the same address in every process of a session.
    let kernel32: Vec<u16> = "kernel32.dll\0".encode_utf16().collect();
    let load_library = GetProcAddress(
        GetModuleHandleW(kernel32.as_ptr()),
        c"LoadLibraryW".as_ptr().cast(),
    );
    let Some(load_library) = load_library else {
        return Err(os("GetProcAddress(LoadLibraryW)"));
    };
    // SAFETY: LoadLibraryW takes one pointer and returns a pointer-sized
    // value, which a thread start routine's ABI carries the same way.
    let start: unsafe extern "system" fn(*mut core::ffi::c_void) -> u32 =
        std::mem::transmute(load_library);
    let thread = CreateRemoteThread(
        process,
        ptr::null(),
        0,
        Some(start),
        remote,
        0,
        ptr::null_mut(),
    );
    if thread.is_null() {
        return Err(os("CreateRemoteThread"));
    }
    let waited = WaitForSingleObject(thread, LOAD_TIMEOUT_MS);
    CloseHandle(thread);
    if waited != WAIT_OBJECT_0 {
        return Err(InjectError::Timeout);
    }
    match handoff.state() {
        State::Tracing => Ok(()),
        State::NoTraceFile => Err(InjectError::NoTraceFile),
        State::Waiting => Err(InjectError::NotLoaded),
    }
}
