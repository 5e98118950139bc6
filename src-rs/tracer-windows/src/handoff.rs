//! How a process hands the trace file's name to a child it loads the DLL
//! into: a named section the parent makes for the child's process id before
//! the DLL runs there, which the DLL opens by its own id. A child started with
//! an env of its own (`spawn(…, { env: {} })`) is traced all the same, and the
//! DLL says through the section whether it started.

use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ALREADY_EXISTS, HANDLE, INVALID_HANDLE_VALUE,
};
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, MapViewOfFile, OpenFileMappingW, UnmapViewOfFile, FILE_MAP_ALL_ACCESS,
    MEMORY_MAPPED_VIEW_ADDRESS, PAGE_READWRITE,
};

/// The longest path a Windows file name can have, in UTF-16 units.
const PATH_UNITS: usize = 32_768;

/// What the DLL says it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    /// The DLL has not run (yet).
    Waiting = 0,
    /// The DLL opened the trace file and installed its hooks (a hook it could
    /// not install is in the trace as an incomplete record).
    Tracing = 1,
    /// The DLL ran and could not open the trace file.
    NoTraceFile = 2,
}

#[repr(C)]
struct Shared {
    state: AtomicU32,
    trace_len: u32,
    trace: [u16; PATH_UNITS],
}

/// A view of the section handed to one process.
pub struct Handoff {
    mapping: HANDLE,
    view: *mut Shared,
}

fn name(pid: u32) -> Vec<u16> {
    format!("Local\\runner-aware-trace-{pid}\0")
        .encode_utf16()
        .collect()
}

impl Handoff {
    /// Makes the section for process `pid`, naming the trace file `trace`.
    pub fn create(pid: u32, trace: &[u16]) -> std::io::Result<Self> {
        if trace.len() >= PATH_UNITS {
            return Err(std::io::Error::other("the trace file's name is too long"));
        }
        // SAFETY: a page-file-backed section of the size of `Shared`; the
        // view is checked before use and written only within that size.
        unsafe {
            let mapping = CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                ptr::null(),
                PAGE_READWRITE,
                0,
                size_of::<Shared>() as u32,
                name(pid).as_ptr(),
            );
            // A section of that name made by anyone else (the name is
            // guessable) could hand the child another trace file.
            if !mapping.is_null() && GetLastError() == ERROR_ALREADY_EXISTS {
                CloseHandle(mapping);
                return Err(std::io::Error::other(
                    "a section of the name the tracer hands over through already exists",
                ));
            }
            let handoff = Self::map(mapping).ok_or_else(std::io::Error::last_os_error)?;
            let shared = &mut *handoff.view;
            shared.trace[..trace.len()].copy_from_slice(trace);
            shared.trace_len = trace.len() as u32;
            shared.state.store(State::Waiting as u32, Ordering::Release);
            Ok(handoff)
        }
    }

    /// The section made for this process, if a tracer made one.
    pub fn open_own() -> Option<Self> {
        // SAFETY: opens a section by name; `map` checks the handle and view.
        unsafe {
            let pid = windows_sys::Win32::System::Threading::GetCurrentProcessId();
            Self::map(OpenFileMappingW(FILE_MAP_ALL_ACCESS, 0, name(pid).as_ptr()))
        }
    }

    unsafe fn map(mapping: HANDLE) -> Option<Self> {
        if mapping.is_null() {
            return None;
        }
        let view: MEMORY_MAPPED_VIEW_ADDRESS =
            MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, size_of::<Shared>());
        if view.Value.is_null() {
            CloseHandle(mapping);
            return None;
        }
        Some(Self {
            mapping,
            view: view.Value.cast(),
        })
    }

    fn shared(&self) -> &Shared {
        // SAFETY: the view stays mapped while `self` lives.
        unsafe { &*self.view }
    }

    /// The trace file's name.
    pub fn trace(&self) -> Vec<u16> {
        let shared = self.shared();
        let len = (shared.trace_len as usize).min(PATH_UNITS);
        shared.trace[..len].to_vec()
    }

    /// What the DLL said.
    pub fn state(&self) -> State {
        match self.shared().state.load(Ordering::Acquire) {
            word if word == State::Tracing as u32 => State::Tracing,
            word if word == State::NoTraceFile as u32 => State::NoTraceFile,
            _ => State::Waiting,
        }
    }

    /// Says what the DLL did.
    pub fn set_state(&self, state: State) {
        self.shared().state.store(state as u32, Ordering::Release);
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        // SAFETY: the view and handle are this value's own.
        unsafe {
            UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS {
                Value: self.view.cast(),
            });
            CloseHandle(self.mapping);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process id no process has (ids are multiples of four).
    const NO_PROCESS: u32 = 0xffff_fff1;

    #[test]
    fn the_section_holds_the_trace_file_s_name_and_the_dll_s_word() {
        let trace: Vec<u16> = "C:\\runner\\trace".encode_utf16().collect();
        let handoff = Handoff::create(NO_PROCESS, &trace).unwrap();
        assert_eq!(handoff.trace(), trace);
        assert_eq!(handoff.state(), State::Waiting);
        handoff.set_state(State::Tracing);
        assert_eq!(handoff.state(), State::Tracing);
    }

    #[test]
    fn a_section_someone_else_made_is_not_handed_over() {
        let trace: Vec<u16> = "C:\\runner\\trace".encode_utf16().collect();
        let _first = Handoff::create(NO_PROCESS - 1, &trace).unwrap();
        let err = Handoff::create(NO_PROCESS - 1, &trace)
            .err()
            .expect("a second section of one name");
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}
