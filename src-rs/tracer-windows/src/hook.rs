//! Inline hooks of ntdll's system-call stubs. On Windows 10 and 11, and in
//! Wine 8, every `Nt*` export that enters the kernel begins with the same 16
//! bytes:
//!
//! ```text
//! 4c 8b d1                   mov  r10, rcx
//! b8 NN NN NN NN             mov  eax, <service number>
//! f6 04 25 08 03 fe 7f 01    test byte ptr [0x7ffe0308], 1
//! ```
//!
//! None of them depends on where it runs, so the hook copies them to a
//! trampoline followed by a jump back to the stub's 17th byte (which tests the
//! flags they set), and overwrites them with an absolute jump to the hook. A
//! stub that does not begin that way is not patched: the caller says the
//! trace is incomplete.

use core::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use windows_sys::Win32::Foundation::HMODULE;
use windows_sys::Win32::System::Diagnostics::Debug::FlushInstructionCache;
use windows_sys::Win32::System::LibraryLoader::GetProcAddress;
use windows_sys::Win32::System::Memory::{
    VirtualAlloc, VirtualProtect, MEM_COMMIT, MEM_RESERVE, PAGE_EXECUTE_READ,
    PAGE_EXECUTE_READWRITE, PAGE_PROTECTION_FLAGS,
};
use windows_sys::Win32::System::Threading::GetCurrentProcess;

/// The stub's first bytes; `None` is the service number.
const STUB: [Option<u8>; 16] = [
    Some(0x4c),
    Some(0x8b),
    Some(0xd1),
    Some(0xb8),
    None,
    None,
    None,
    None,
    Some(0xf6),
    Some(0x04),
    Some(0x25),
    Some(0x08),
    Some(0x03),
    Some(0xfe),
    Some(0x7f),
    Some(0x01),
];

/// `jmp qword ptr [rip+0]` followed by the 8-byte target.
const JUMP: [u8; 6] = [0xff, 0x25, 0, 0, 0, 0];
const SLOT: usize = 32;
const PAGE: usize = 4096;

/// Why a call could not be hooked.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// ntdll has no such export.
    #[error("ntdll does not export it")]
    Missing,
    /// The export does not begin as a system-call stub does.
    #[error("it does not begin as a system-call stub ({0:02x?})")]
    NotAStub([u8; 16]),
    /// Memory for trampolines could not be had, or the stub made writable.
    #[error("{0}")]
    Memory(std::io::Error),
}

/// Executable memory holding the trampolines.
pub struct Trampolines {
    page: *mut u8,
    used: usize,
}

impl Trampolines {
    /// One page, enough for 128 hooks.
    pub fn new() -> Result<Self, HookError> {
        // SAFETY: a fresh allocation, owned for the process's life.
        let page = unsafe {
            VirtualAlloc(
                ptr::null(),
                PAGE,
                MEM_COMMIT | MEM_RESERVE,
                PAGE_EXECUTE_READWRITE,
            )
        };
        if page.is_null() {
            return Err(HookError::Memory(std::io::Error::last_os_error()));
        }
        Ok(Self {
            page: page.cast(),
            used: 0,
        })
    }

    /// Makes the trampolines executable and no longer writable.
    pub fn seal(self) {
        let mut old: PAGE_PROTECTION_FLAGS = 0;
        // SAFETY: the page this value allocated.
        unsafe { VirtualProtect(self.page.cast(), PAGE, PAGE_EXECUTE_READ, &mut old) };
    }

    /// Hooks `name` (NUL-terminated) of `ntdll`: calls to it go to `detour`,
    /// and `original` holds the address that runs the original call before
    /// the first call can reach the hook.
    ///
    /// # Safety
    /// `detour` must have the export's signature and calling convention. No
    /// other thread may be running the stub while it is patched.
    pub unsafe fn hook(
        &mut self,
        ntdll: HMODULE,
        name: &[u8],
        detour: usize,
        original: &AtomicUsize,
    ) -> Result<(), HookError> {
        let target =
            GetProcAddress(ntdll, name.as_ptr()).ok_or(HookError::Missing)? as usize as *mut u8;
        let mut prologue = [0u8; 16];
        ptr::copy_nonoverlapping(target, prologue.as_mut_ptr(), prologue.len());
        let matches = STUB
            .iter()
            .zip(&prologue)
            .all(|(want, &got)| want.is_none_or(|want| want == got));
        if !matches {
            return Err(HookError::NotAStub(prologue));
        }
        if self.used + SLOT > PAGE {
            return Err(HookError::Memory(std::io::Error::other(
                "no room for another trampoline",
            )));
        }
        let trampoline = self.page.add(self.used);
        self.used += SLOT;
        ptr::copy_nonoverlapping(prologue.as_ptr(), trampoline, prologue.len());
        write_jump(
            trampoline.add(prologue.len()),
            target as usize + prologue.len(),
        );
        original.store(trampoline as usize, Ordering::Release);

        let mut old: PAGE_PROTECTION_FLAGS = 0;
        if VirtualProtect(
            target.cast(),
            prologue.len(),
            PAGE_EXECUTE_READWRITE,
            &mut old,
        ) == 0
        {
            return Err(HookError::Memory(std::io::Error::last_os_error()));
        }
        let mut patch = [0xccu8; 16];
        write_jump(patch.as_mut_ptr(), detour);
        ptr::copy_nonoverlapping(patch.as_ptr(), target, patch.len());
        VirtualProtect(target.cast(), prologue.len(), old, &mut old);
        FlushInstructionCache(GetCurrentProcess(), target as *const c_void, prologue.len());
        Ok(())
    }
}

unsafe fn write_jump(at: *mut u8, to: usize) {
    ptr::copy_nonoverlapping(JUMP.as_ptr(), at, JUMP.len());
    ptr::copy_nonoverlapping(to.to_le_bytes().as_ptr(), at.add(JUMP.len()), 8);
}
