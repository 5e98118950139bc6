//! The supervisor on Linux: start the command under the filter, record what
//! each notified call names, pass signals on, and exit like the command.

mod calls;
mod cli;
mod filter;
mod launch;
mod paths;
mod records;
mod seccomp;
mod signals;
mod tracee;

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use runner_aware::trace_format::{RecordKind, ENV_TRACE};

use records::Recorder;
use seccomp::Listener;
use signals::Signals;
use tracee::Memory;

/// The exit status when the supervisor cannot start the command.
const FAILED: i32 = 127;
/// The exit status when the trace file could not be written: the run fails
/// rather than look whole.
const WRITE_FAILED: i32 = 125;
/// How long processes of the task may outlive the command by default.
const DEFAULT_GRACE_MS: i64 = 2000;

/// Prints a line on stderr, prefixed with the program's name. A stderr that
/// is gone loses the line; the exit status still tells.
fn say(message: &str) {
    let _ = writeln!(io::stderr(), "runner-aware-trace: {message}");
}

/// An error's description without Rust's "(os error N)", as C's strerror
/// gives it.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rsplit_once(" (os error ") {
        Some((description, _)) => description.to_owned(),
        None => text,
    }
}

/// Says what failed and ends the supervisor.
fn die(what: &str, err: &io::Error) -> ! {
    say(&format!("{what}: {}", describe(err)));
    std::process::exit(FAILED);
}

/// Runs the supervisor; returns its exit status, when it does not end by
/// the command's signal.
pub fn main() -> i32 {
    // Rust's runtime ignores SIGPIPE; the supervisor and the command it
    // starts get the default, as any program does.
    // SAFETY: sets a signal's disposition to the default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let Some(options) = cli::parse(std::env::args_os().skip(1)) else {
        let _ = writeln!(io::stderr(), "{}", cli::USAGE);
        return FAILED;
    };
    let trace_file = match std::env::var_os(ENV_TRACE) {
        Some(file) if file.as_bytes().starts_with(b"/") => file,
        _ => {
            say(&format!(
                "{ENV_TRACE} must name the trace file (an absolute path)"
            ));
            return FAILED;
        }
    };
    let mut recorder =
        Recorder::open(&trace_file).unwrap_or_else(|err| die("cannot open the trace file", &err));
    recorder.write(RecordKind::Begin, options.mode.as_str().as_bytes());
    recorder.flush();

    let mut signals = Signals::block().unwrap_or_else(|(what, err)| die(what, &err));
    // Orphaned processes of the task become ours, so we know when all are gone.
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a plain flag.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };

    launch::prepare_env(options.mode);
    let filter = filter::build(options.mode);
    let started = launch::start(&options.command, &filter, signals.old_mask())
        .unwrap_or_else(|err| die("fork", &err));
    let mut listener = match started.listener {
        Ok(fd) => {
            Some(Listener::new(fd).unwrap_or_else(|err| die("SECCOMP_GET_NOTIF_SIZES", &err)))
        }
        Err(why) => {
            recorder.incomplete(&why);
            None
        }
    };

    let grace = grace_period();
    let mut supervision = Supervision {
        child: started.child,
        status: 0,
        done_at: None,
        memory: Memory::default(),
        notified: vec![0; 512],
    };
    supervision.run(&mut recorder, &mut signals, listener.as_mut(), grace);

    // A trace without it was cut short: the supervisor was killed, or died.
    recorder.write(RecordKind::End, b"");
    recorder.flush();
    if recorder.failed() {
        say(&format!(
            "could not write the trace file {}: what the task did is not all recorded",
            trace_file.to_string_lossy()
        ));
        return WRITE_FAILED;
    }
    if std::env::var_os("RUNNER_AWARE_TRACE_STATS").is_some_and(|stats| stats == "1") {
        supervision.print_stats();
    }
    exit_like(supervision.status, &signals)
}

/// `RUNNER_AWARE_TRACE_GRACE_MS`: its leading integer, as C's `strtol`
/// reads it (0 when it has none), or the default when it is unset or empty.
fn grace_period() -> i64 {
    let Some(grace) =
        std::env::var_os("RUNNER_AWARE_TRACE_GRACE_MS").filter(|grace| !grace.is_empty())
    else {
        return DEFAULT_GRACE_MS;
    };
    leading_integer(&grace)
}

fn leading_integer(text: &OsStr) -> i64 {
    let text = text.as_bytes().trim_ascii_start();
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let value = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i64, |value, &b| {
            value.saturating_mul(10).saturating_add(i64::from(b - b'0'))
        });
    if negative {
        -value
    } else {
        value
    }
}

/// The state of the supervision loop.
struct Supervision {
    child: libc::pid_t,
    /// The command's wait status, once it has exited.
    status: libc::c_int,
    /// When the command exited.
    done_at: Option<Instant>,
    memory: Memory,
    /// `RUNNER_AWARE_TRACE_STATS=1`: notifications per system call number.
    notified: Vec<u64>,
}

impl Supervision {
    /// Serves notifications and signals until every process of the task has
    /// exited or, when some outlive the command, the grace period (ms) ends.
    fn run(
        &mut self,
        recorder: &mut Recorder,
        signals: &mut Signals,
        mut listener: Option<&mut Listener>,
        grace: i64,
    ) {
        let grace_end =
            |done_at: Instant| done_at + Duration::from_millis(grace.max(0).unsigned_abs());
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: signals.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: listener
                        .as_ref()
                        .map_or(-1, |listener| listener.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let timeout = match self.done_at {
                None => -1,
                Some(done_at) => {
                    let left = grace_end(done_at).saturating_duration_since(Instant::now());
                    i32::try_from(left.as_millis()).unwrap_or(i32::MAX)
                }
            };
            let count = if listener.is_some() { 2 } else { 1 };
            // SAFETY: `fds` holds `count` initialised pollfds.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, timeout) };
            if ready < 0 {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    die("poll", &err);
                }
            }
            if ready > 0 && fds[0].revents & libc::POLLIN != 0 {
                signals.forward(self.child, self.done_at.is_some());
                self.reap();
            }
            if let Some(listener) = listener.as_deref_mut() {
                if ready > 0 && fds[1].revents & libc::POLLIN != 0 {
                    self.serve(listener, recorder);
                    continue;
                }
            }
            let Some(done_at) = self.done_at else {
                continue;
            };
            // The command has exited; every process of the task is gone once
            // the filter has no user left (POLLHUP) or, without seccomp, no
            // child.
            let all_gone = match listener {
                Some(_) => ready > 0 && fds[1].revents & libc::POLLHUP != 0,
                None => {
                    // SAFETY: waitpid with a null status pointer only reports.
                    let waited = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
                    waited < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
                }
            };
            if all_gone {
                return;
            }
            if Instant::now() >= grace_end(done_at) {
                recorder.incomplete(
                    "processes of the task outlived it, and what they did afterwards was not seen",
                );
                return;
            }
            if listener.is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Records what one notified call names, then lets it run. Its records
    /// are kept only when the caller is still waiting in the call once they
    /// are read: a caller that died meanwhile never ran it, and its pid may
    /// be another process's by then.
    fn serve(&mut self, listener: &mut Listener, recorder: &mut Recorder) {
        let Ok(notif) = listener.receive() else {
            return;
        };
        if let Some(count) = usize::try_from(notif.data.nr)
            .ok()
            .and_then(|nr| self.notified.get_mut(nr))
        {
            *count += 1;
        }
        let records = calls::records_of(&notif, &mut self.memory, recorder);
        if listener.is_live(notif.id) {
            for record in records {
                recorder.record(record.kind, &record.text);
            }
        }
        recorder.flush();
        listener.continue_call(notif.id);
    }

    /// Waits for every child that has exited; notes the command's status.
    fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes the status of a child it reaps.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if pid == self.child {
                self.status = status;
                self.done_at = Some(Instant::now());
            }
        }
    }

    /// Notifications per system call and the supervisor's own CPU time, on
    /// stderr.
    fn print_stats(&self) {
        for (nr, &count) in self.notified.iter().enumerate() {
            if count > 0 {
                say(&format!("system call {nr}: {count} notifications"));
            }
        }
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: getrusage fills the rusage it is given when it succeeds.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0 {
            // SAFETY: initialised by the successful call above.
            let usage = unsafe { usage.assume_init() };
            let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
            say(&format!(
                "supervisor CPU {:.1} ms",
                ms(usage.ru_utime) + ms(usage.ru_stime)
            ));
        }
    }
}

/// Exits the way the command did: with its status, or by its signal.
fn exit_like(status: libc::c_int, signals: &Signals) -> i32 {
    if !libc::WIFSIGNALED(status) {
        return libc::WEXITSTATUS(status);
    }
    let sig = libc::WTERMSIG(status);
    // SAFETY: restores the signal's default action and the mask the
    // supervisor started with, unblocks the signal and raises it: the
    // supervisor ends by it as the command did.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_SETMASK, signals.old_mask(), std::ptr::null_mut());
        let mut only = signals::empty_set();
        libc::sigaddset(&mut only, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
        libc::raise(sig);
    }
    128 + sig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_period_reads_like_strtol() {
        for (text, ms) in [
            ("1500", 1500),
            (" 20ms", 20),
            ("-5", -5),
            ("abc", 0),
            ("+7", 7),
        ] {
            assert_eq!(leading_integer(OsStr::new(text)), ms, "{text}");
        }
    }
}
