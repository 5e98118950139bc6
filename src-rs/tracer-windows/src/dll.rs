//! The DLL's start in each process: read the trace file's name from the
//! section its parent made, open the file, record the modules already
//! loaded (the program and what it imports, loaded before the DLL), and hook
//! ntdll. One table lists every hook.

use core::ffi::c_void;
use std::sync::atomic::AtomicUsize;

use windows_sys::core::BOOL;
use windows_sys::Win32::Foundation::{HMODULE, TRUE};
use windows_sys::Win32::System::LibraryLoader::{GetModuleFileNameW, GetModuleHandleW};
use windows_sys::Win32::System::ProcessStatus::K32EnumProcessModules;
use windows_sys::Win32::System::SystemServices::DLL_PROCESS_ATTACH;
use windows_sys::Win32::System::Threading::GetCurrentProcess;

use crate::files;
use crate::handoff::{Handoff, State};
use crate::hook::Trampolines;
use crate::process;
use crate::record;

/// A hook of one of ntdll's calls.
struct Hook {
    /// The export, NUL-terminated.
    export: &'static [u8],
    /// The function that replaces it.
    detour: *const (),
    /// Where the address that runs the original call goes.
    original: &'static AtomicUsize,
    /// Whether a Windows version may lack the export (then nothing calls it).
    optional: bool,
}

/// Every hook.
const HOOKS: &[Hook] = &[
    Hook {
        export: b"NtCreateFile\0",
        detour: files::nt_create_file as *const (),
        original: &files::NT_CREATE_FILE,
        optional: false,
    },
    Hook {
        export: b"NtOpenFile\0",
        detour: files::nt_open_file as *const (),
        original: &files::NT_OPEN_FILE,
        optional: false,
    },
    Hook {
        export: b"NtQueryAttributesFile\0",
        detour: files::nt_query_attributes_file as *const (),
        original: &files::NT_QUERY_ATTRIBUTES_FILE,
        optional: false,
    },
    Hook {
        export: b"NtQueryFullAttributesFile\0",
        detour: files::nt_query_full_attributes_file as *const (),
        original: &files::NT_QUERY_FULL_ATTRIBUTES_FILE,
        optional: false,
    },
    Hook {
        export: b"NtQueryDirectoryFile\0",
        detour: files::nt_query_directory_file as *const (),
        original: &files::NT_QUERY_DIRECTORY_FILE,
        optional: false,
    },
    Hook {
        export: b"NtQueryDirectoryFileEx\0",
        detour: files::nt_query_directory_file_ex as *const (),
        original: &files::NT_QUERY_DIRECTORY_FILE_EX,
        optional: true,
    },
    Hook {
        export: b"NtSetInformationFile\0",
        detour: files::nt_set_information_file as *const (),
        original: &files::NT_SET_INFORMATION_FILE,
        optional: false,
    },
    Hook {
        export: b"NtDeleteFile\0",
        detour: files::nt_delete_file as *const (),
        original: &files::NT_DELETE_FILE,
        optional: false,
    },
    Hook {
        export: b"NtCreateUserProcess\0",
        detour: process::nt_create_user_process as *const (),
        original: &process::NT_CREATE_USER_PROCESS,
        optional: false,
    },
];

/// The DLL's entry point: starts tracing when a tracer loaded it.
#[no_mangle]
pub unsafe extern "system" fn DllMain(
    module: HMODULE,
    reason: u32,
    _reserved: *mut c_void,
) -> BOOL {
    if reason == DLL_PROCESS_ATTACH {
        start(module);
    }
    TRUE
}

unsafe fn start(module: HMODULE) {
    // Loaded by anything but the tracer: nothing to do.
    let Some(handoff) = Handoff::open_own() else {
        return;
    };
    let trace = handoff.trace();
    if !record::open(&trace) {
        handoff.set_state(State::NoTraceFile);
        return;
    }
    let _ = process::SELF.set((module_path(module), trace));
    record_loaded_modules();
    install_hooks();
    handoff.set_state(State::Tracing);
}

/// The path of a module loaded in this process, empty if it has none.
fn module_path(module: HMODULE) -> Vec<u16> {
    let mut buffer = vec![0u16; 32_768];
    // SAFETY: the buffer's length is passed.
    let len = unsafe { GetModuleFileNameW(module, buffer.as_mut_ptr(), buffer.len() as u32) };
    buffer.truncate(len as usize);
    buffer
}

/// The program and the libraries loaded before the hooks were: read.
unsafe fn record_loaded_modules() {
    let mut modules = vec![std::ptr::null_mut(); 1024];
    let mut needed = 0;
    let bytes = (modules.len() * size_of::<HMODULE>()) as u32;
    if K32EnumProcessModules(
        GetCurrentProcess(),
        modules.as_mut_ptr(),
        bytes,
        &mut needed,
    ) == 0
    {
        record::write(
            record::INCOMPLETE,
            "the modules loaded before the tracer could not be listed",
        );
        return;
    }
    let listed = needed as usize / size_of::<HMODULE>();
    if listed > modules.len() {
        // More modules than the list holds: those left out would be reads
        // the trace never shows.
        record::write(
            record::INCOMPLETE,
            "more modules were loaded before the tracer than it could list",
        );
    }
    modules.truncate(listed);
    for module in modules {
        let path = module_path(module);
        if !path.is_empty() {
            record::path(record::READ, &path);
        }
    }
}

unsafe fn install_hooks() {
    let name: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    let ntdll = GetModuleHandleW(name.as_ptr());
    let mut trampolines = match Trampolines::new() {
        Ok(trampolines) => trampolines,
        Err(err) => {
            record::write(
                record::INCOMPLETE,
                &format!("the tracer could not hook ntdll: {err}"),
            );
            return;
        }
    };
    for hook in HOOKS {
        match trampolines.hook(ntdll, hook.export, hook.detour as usize, hook.original) {
            Ok(()) => {}
            Err(crate::hook::HookError::Missing) if hook.optional => {}
            Err(err) => {
                let export = String::from_utf8_lossy(&hook.export[..hook.export.len() - 1]);
                record::write(
                    record::INCOMPLETE,
                    &format!("the tracer could not hook {export}: {err}"),
                );
            }
        }
    }
    trampolines.seal();
}
