//! The seccomp calls: installing the filter with a listener (in the child),
//! and the listener's side (in the supervisor): receive a notification, check
//! it is still live, let the call continue.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use libc::{seccomp_notif, seccomp_notif_resp, seccomp_notif_sizes, sock_filter, sock_fprog};

/// Linux 6.6: wake the supervisor on the notifying task's CPU.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;

/// The seccomp system call.
///
/// # Safety
///
/// `arg` points to the structure `op` reads or writes, alive for the call.
unsafe fn seccomp(op: libc::c_uint, flags: libc::c_ulong, arg: *mut libc::c_void) -> libc::c_long {
    libc::syscall(libc::SYS_seccomp, op, flags, arg)
}

/// Installs `filter` on the calling thread with a notification listener, and
/// returns the listener's descriptor. Run in the child before it executes
/// the command.
pub fn install(filter: &[sock_filter]) -> io::Result<RawFd> {
    let len = u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
    let mut prog = sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SPEC_ALLOW: a filter installed without it turns on the Speculative
    // Store Bypass mitigation where the kernel applies it to seccomp'd
    // processes, which slows every instruction of the build; this filter
    // observes, it does not confine. Kernels that do not know it say EINVAL.
    let arg = (&raw mut prog).cast();
    let flags = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    let with_spec_allow = flags | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    // SAFETY: SET_MODE_FILTER reads the sock_fprog `prog`, whose filter is
    // `filter`, both alive for the call.
    let mut fd = unsafe { seccomp(libc::SECCOMP_SET_MODE_FILTER, with_spec_allow, arg) };
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        fd = unsafe { seccomp(libc::SECCOMP_SET_MODE_FILTER, flags, arg) };
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))
}

/// A buffer the kernel writes a structure of `bytes` bytes into, at least
/// `T`'s size (the kernel's may be larger: a newer one than libc knows),
/// aligned for it.
struct KernelBuffer<T> {
    words: Vec<u64>,
    kind: std::marker::PhantomData<T>,
}

impl<T: Copy> KernelBuffer<T> {
    fn new(bytes: u16) -> Self {
        let bytes = usize::from(bytes).max(size_of::<T>());
        Self {
            words: vec![0; bytes.div_ceil(8)],
            kind: std::marker::PhantomData,
        }
    }

    fn zeroed(&mut self) -> *mut T {
        self.words.fill(0);
        self.words.as_mut_ptr().cast()
    }

    fn get(&self) -> T {
        // SAFETY: the buffer is at least `T`'s size and 8-byte aligned (T is
        // a kernel structure of integers, any bit pattern of which is valid).
        unsafe { self.words.as_ptr().cast::<T>().read() }
    }
}

/// The supervisor's end of the filter: notifications of the task's calls.
pub struct Listener {
    fd: OwnedFd,
    notif: KernelBuffer<seccomp_notif>,
    resp: KernelBuffer<seccomp_notif_resp>,
}

impl Listener {
    /// The listener `fd`, with buffers of the kernel's sizes.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        let mut sizes = seccomp_notif_sizes {
            seccomp_notif: 0,
            seccomp_notif_resp: 0,
            seccomp_data: 0,
        };
        // SAFETY: GET_NOTIF_SIZES writes the seccomp_notif_sizes `sizes`.
        if unsafe { seccomp(libc::SECCOMP_GET_NOTIF_SIZES, 0, (&raw mut sizes).cast()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Best effort: older kernels answer EINVAL and wake the supervisor as usual.
        // SAFETY: SET_FLAGS takes its flags as the argument itself.
        unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            );
        }
        Ok(Self {
            fd,
            notif: KernelBuffer::new(sizes.seccomp_notif),
            resp: KernelBuffer::new(sizes.seccomp_notif_resp),
        })
    }

    /// The listener's descriptor, to poll.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next notification; an error when its caller died meanwhile
    /// (ENOENT) or the call was interrupted.
    pub fn receive(&mut self) -> io::Result<seccomp_notif> {
        let notif = self.notif.zeroed();
        // SAFETY: RECV writes one notification of the kernel's size, which
        // the buffer holds.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, notif) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self.notif.get())
    }

    /// Whether notification `id`'s caller is still waiting in its call: what
    /// was read from its memory and `/proc` links since it was received was
    /// read from it, not from a process that took its pid after it died.
    pub fn is_live(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: ID_VALID reads one u64 from the pointer.
        unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &raw mut id,
            ) == 0
        }
    }

    /// Lets notification `id`'s call run as it would have unfiltered. A
    /// caller that died meanwhile (ENOENT) never runs its call: nothing to do.
    pub fn continue_call(&mut self, id: u64) {
        let resp = self.resp.zeroed();
        // SAFETY: the buffer holds a seccomp_notif_resp, aligned (above).
        unsafe {
            (*resp).id = id;
            (*resp).flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
            libc::ioctl(self.fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, resp);
        }
    }
}
