//! Signals: read from a signalfd, so the supervisor's loop sees children
//! exiting and the signals the runner sends to stop the task, which go on to
//! the command.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use libc::{pid_t, sigset_t};

/// The signals a runner stops a task with, passed on to the command.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// How soon after a terminal's signal the same one from the parent (a runner
/// passing on its own Ctrl-C) is taken for that one.
const PASSED_ON_WITHIN: Duration = Duration::from_millis(200);

/// The supervisor's signals, blocked and read from a descriptor.
pub struct Signals {
    fd: OwnedFd,
    old_mask: sigset_t,
    /// When each signal last came from a terminal (`SI_KERNEL`), by number.
    kernel_at: [Option<Instant>; 64],
}

/// An empty signal set.
pub fn empty_set() -> sigset_t {
    let mut set = MaybeUninit::<sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

impl Signals {
    /// Blocks `SIGCHLD` and the forwarded signals, and opens a signalfd for
    /// them. `Err` names the step that failed.
    pub fn block() -> Result<Self, (&'static str, io::Error)> {
        let mut mask = empty_set();
        let mut old_mask = empty_set();
        for sig in FORWARDED.into_iter().chain([libc::SIGCHLD]) {
            // SAFETY: adds a valid signal number to an initialised set.
            unsafe { libc::sigaddset(&mut mask, sig) };
        }
        // SAFETY: both sets are initialised; the old mask is written.
        if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &mask, &mut old_mask) } != 0 {
            return Err(("sigprocmask", io::Error::last_os_error()));
        }
        // SAFETY: -1 asks for a new descriptor for the initialised `mask`.
        let fd = unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(("signalfd", io::Error::last_os_error()));
        }
        Ok(Self {
            // SAFETY: a new descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            old_mask,
            kernel_at: [None; 64],
        })
    }

    /// The descriptor to poll.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The mask the supervisor started with, which the command gets.
    pub fn old_mask(&self) -> &sigset_t {
        &self.old_mask
    }

    /// Reads every pending signal, and passes on to the command's processes
    /// those that would not reach them otherwise; once the command has
    /// exited (`child_done`), none.
    pub fn forward(&mut self, child: pid_t, child_done: bool) {
        while let Some(info) = self.next() {
            let sig = info.ssi_signo as libc::c_int;
            if sig == libc::SIGCHLD || child_done {
                continue;
            }
            self.pass_on(child, sig, info.ssi_code, info.ssi_pid as pid_t);
        }
    }

    fn next(&self) -> Option<libc::signalfd_siginfo> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most one siginfo into `info`.
        let read = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
        // SAFETY: the kernel wrote a whole siginfo when it returned its size.
        (read == size as isize).then(|| unsafe { info.assume_init() })
    }

    fn pass_on(&mut self, child: pid_t, sig: libc::c_int, code: i32, sender: pid_t) {
        // SAFETY: these calls take and return plain process ids.
        let (group, me, parent, child_group, sender_group) = unsafe {
            (
                libc::getpgrp(),
                libc::getpid(),
                libc::getppid(),
                libc::getpgid(child),
                libc::getpgid(sender),
            )
        };
        let leader = group == me;
        let child_in_group = child_group == group;
        let slot = usize::try_from(sig)
            .ok()
            .and_then(|sig| self.kernel_at.get_mut(sig));
        // A terminal's signal (Ctrl-C, Ctrl-\, a hang-up) went to its whole
        // foreground group: a command in ours has it already. So has the
        // same signal from our parent (a runner passing on its own Ctrl-C)
        // right after it.
        if code == libc::SI_KERNEL {
            if let Some(slot) = slot {
                *slot = Some(Instant::now());
            }
            if child_in_group {
                return;
            }
        } else if sender == parent
            && child_in_group
            && slot.is_some_and(|at| at.is_some_and(|at| at.elapsed() < PASSED_ON_WITHIN))
        {
            return;
        }
        // Our own signal to the group (below), back to us; or one a process
        // of the task sent to the group we lead (`kill 0`): it has reached
        // the group already.
        if sender == me || (leader && code != libc::SI_KERNEL && sender_group == group) {
            return;
        }
        // A task spawned with a process group of its own, which we lead:
        // every process of it gets the signal once, as if we were not here;
        // a command that left the group (setsid) gets it too. Else the
        // command does.
        // SAFETY: kill takes plain ids and a signal number.
        unsafe {
            if leader {
                libc::kill(0, sig);
            }
            if !leader || !child_in_group {
                libc::kill(child, sig);
            }
        }
    }
}
