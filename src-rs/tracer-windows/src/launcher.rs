//! The launcher's work: start the command suspended in a job of its own, load
//! the DLL into it, let it run, and wait for every process of the job.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::AsRawHandle;
use std::os::windows::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use runner_aware::trace_format::{ENV_TRACE, ENV_TRACE_PRELOAD};
use runner_aware_trace_windows::{inject, record};
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectBasicAccountingInformation,
    JobObjectExtendedLimitInformation, QueryInformationJobObject, SetInformationJobObject,
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_BREAKAWAY_OK,
};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Threading::CREATE_SUSPENDED;

const ENV_GRACE: &str = "RUNNER_AWARE_TRACE_GRACE_MS";
const USAGE: &str = "usage: runner-aware-trace [--mode preload] -- <command> [args…]";

/// Where records go: the trace file, opened to append.
struct Trace(File);

impl Trace {
    fn write(&mut self, kind: u8, text: &str) {
        // One write per record, as every process of the task appends.
        let _ = self.0.write_all(&record::encoded(kind, text));
    }
}

fn fail(message: &str) -> i32 {
    eprintln!("runner-aware-trace: {message}");
    127
}

fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().collect()
}

/// Runs the launcher; returns its exit status.
pub fn run() -> i32 {
    let mut args = std::env::args_os().skip(1);
    let mut command = Vec::new();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--") => {
                command.extend(args.by_ref());
                break;
            }
            Some("--mode") => match args.next().as_deref().and_then(|mode| mode.to_str()) {
                Some("preload") => {}
                Some("seccomp") => return fail(
                    "seccomp mode is Linux's; Windows traces with the DLL alone (--mode preload)",
                ),
                _ => return fail(USAGE),
            },
            _ => return fail(USAGE),
        }
    }
    if command.is_empty() {
        return fail(USAGE);
    }
    let trace_path = match std::env::var_os(ENV_TRACE).map(PathBuf::from) {
        Some(path) if path.is_absolute() => path,
        _ => {
            return fail(&format!(
                "{ENV_TRACE} must name the trace file (an absolute path)"
            ))
        }
    };
    let dll = match std::env::var_os(ENV_TRACE_PRELOAD).map(PathBuf::from) {
        Some(path) if path.is_absolute() && path.is_file() => path,
        _ => {
            return fail(&format!(
                "{ENV_TRACE_PRELOAD} must name the tracing DLL (an absolute path)"
            ))
        }
    };
    let mut trace = match OpenOptions::new().append(true).open(&trace_path) {
        Ok(file) => Trace(file),
        Err(err) => {
            return fail(&format!(
                "cannot open the trace file {}: {err}",
                trace_path.display()
            ))
        }
    };
    trace.write(record::BEGIN, "preload");

    let mut child = match Command::new(&command[0])
        .args(&command[1..])
        .creation_flags(CREATE_SUSPENDED)
        .spawn()
    {
        Ok(child) => child,
        Err(err) => {
            trace.write(record::END, "");
            return fail(&format!(
                "cannot run {}: {err}",
                command[0].to_string_lossy()
            ));
        }
    };
    let process = child.as_raw_handle() as HANDLE;
    // SAFETY: a job of our own; the child is suspended until resumed below.
    let job = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
    // A process may still leave it (CREATE_BREAKAWAY_FROM_JOB), as it could
    // untraced; the DLL then says the trace may end before that process.
    if !job.is_null() {
        allow_breakaway(job);
    }
    let in_job = !job.is_null() && unsafe { AssignProcessToJobObject(job, process) } != 0;
    if !in_job {
        trace.write(
            record::INCOMPLETE,
            "the task's processes could not be put in a job, so the trace may end before the last of them",
        );
    }
    // SAFETY: the child was created suspended, with full access.
    if let Err(err) = unsafe { inject::into_suspended(process, &wide(&dll), &wide(&trace_path)) } {
        trace.write(
            record::INCOMPLETE,
            &format!(
                "the command ran untraced ({}): {err}",
                command[0].to_string_lossy()
            ),
        );
    }
    if let Err(err) = resume(process) {
        let _ = child.kill();
        trace.write(record::END, "");
        return fail(&format!("cannot resume the command: {err}"));
    }
    let code = match child.wait() {
        Ok(status) => status.code().unwrap_or(1),
        Err(err) => return fail(&format!("cannot wait for the command: {err}")),
    };
    if in_job && !job_ended(job, grace()) {
        trace.write(
            record::INCOMPLETE,
            "processes of the task outlived it, and what they did afterwards was not seen",
        );
    }
    if !job.is_null() {
        // SAFETY: our own handle.
        unsafe { CloseHandle(job) };
    }
    trace.write(record::END, "");
    code
}

fn allow_breakaway(job: HANDLE) {
    // SAFETY: plain data of the size passed, for our own job.
    unsafe {
        let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_BREAKAWAY_OK;
        SetInformationJobObject(
            job,
            JobObjectExtendedLimitInformation,
            (&limits as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
            size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
        );
    }
}

fn grace() -> Duration {
    let ms = std::env::var(ENV_GRACE)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(2000);
    Duration::from_millis(ms)
}

/// Resumes every thread of a process created suspended.
fn resume(process: HANDLE) -> std::io::Result<()> {
    let ntdll: Vec<u16> = "ntdll.dll\0".encode_utf16().collect();
    // SAFETY: NtResumeProcess takes a process handle and returns an NTSTATUS.
    unsafe {
        let Some(address) = GetProcAddress(
            GetModuleHandleW(ntdll.as_ptr()),
            c"NtResumeProcess".as_ptr().cast(),
        ) else {
            return Err(std::io::Error::last_os_error());
        };
        let nt_resume_process = std::mem::transmute::<
            unsafe extern "system" fn() -> isize,
            unsafe extern "system" fn(HANDLE) -> i32,
        >(address);
        match nt_resume_process(process) {
            status if status >= 0 => Ok(()),
            status => Err(std::io::Error::other(format!(
                "NtResumeProcess: status {status:#x}"
            ))),
        }
    }
}

/// Waits up to `grace` for the job to have no process left.
fn job_ended(job: HANDLE, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        // SAFETY: plain data of the size passed.
        let active = unsafe {
            let mut info: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION = std::mem::zeroed();
            let ok = QueryInformationJobObject(
                job,
                JobObjectBasicAccountingInformation,
                (&mut info as *mut JOBOBJECT_BASIC_ACCOUNTING_INFORMATION).cast(),
                size_of::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>() as u32,
                std::ptr::null_mut(),
            );
            if ok == 0 {
                return false;
            }
            info.ActiveProcesses
        };
        if active == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
