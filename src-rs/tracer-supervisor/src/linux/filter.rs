//! The seccomp filter the command runs under, built by hand: which system
//! calls notify the supervisor, the trampoline page whose calls pass unseen in
//! preload mode, and another ABI's calls (i386 and `int 0x80` on x86_64).

use std::mem::offset_of;

use libc::{c_long, seccomp_data, sock_filter};
use runner_aware::trace_format::{TRAMPOLINE_ADDR, TRAMPOLINE_SIZE};

use super::cli::Mode;

/// The audit arch of this build's own system calls (`<linux/audit.h>`).
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH_NATIVE: u32 = 0xc000_003e;
/// The audit arch of this build's own system calls (`<linux/audit.h>`).
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH_NATIVE: u32 = 0xc000_00b7;
/// i386's audit arch: i386 programs, and `int $0x80` from 64-bit ones.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// `renameat`: arm64 keeps it (`__ARCH_WANT_RENAMEAT`) where libc's table
/// for musl does not name it.
#[cfg(target_arch = "x86_64")]
pub const SYS_RENAMEAT: c_long = libc::SYS_renameat;
/// `renameat`: arm64 keeps it (`__ARCH_WANT_RENAMEAT`) where libc's table
/// for musl does not name it.
#[cfg(target_arch = "aarch64")]
pub const SYS_RENAMEAT: c_long = 38;

/// Every system call that names a file by path. Descriptor-based calls
/// (read, write, getdents64, fstat) need no record: the path was recorded when
/// the descriptor was opened. The last three name no path to record: the
/// trace says it is incomplete.
const TRACED: &[c_long] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_creat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_stat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_lstat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_access,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_readlink,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mkdir,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mknod,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_rmdir,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_unlink,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_rename,
    SYS_RENAMEAT,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_link,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_symlink,
    libc::SYS_newfstatat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_statx,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlinkat,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_mkdirat,
    libc::SYS_unlinkat,
    libc::SYS_renameat2,
    libc::SYS_truncate,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_mknodat,
    libc::SYS_chroot,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
];

/// i386's `io_uring_setup`, refused as the native one is.
#[cfg(target_arch = "x86_64")]
const I386_IO_URING_SETUP: u32 = 425;

/// Each file system call of i386's ABI, with the native call it is handled
/// as: the same arguments in the same places, pointers and flags alike.
#[cfg(target_arch = "x86_64")]
const I386: &[(u32, c_long)] = &[
    (5, libc::SYS_open),
    (8, libc::SYS_creat),
    (9, libc::SYS_link),
    (10, libc::SYS_unlink),
    (11, libc::SYS_execve),
    (14, libc::SYS_mknod),
    (18, libc::SYS_stat),
    (33, libc::SYS_access),
    (38, libc::SYS_rename),
    (39, libc::SYS_mkdir),
    (40, libc::SYS_rmdir),
    (61, libc::SYS_chroot),
    (83, libc::SYS_symlink),
    (84, libc::SYS_lstat),
    (85, libc::SYS_readlink),
    (92, libc::SYS_truncate),
    (106, libc::SYS_stat),
    (107, libc::SYS_lstat),
    (193, libc::SYS_truncate),
    (195, libc::SYS_stat),
    (196, libc::SYS_lstat),
    (295, libc::SYS_openat),
    (296, libc::SYS_mkdirat),
    (297, libc::SYS_mknodat),
    (300, libc::SYS_newfstatat),
    (301, libc::SYS_unlinkat),
    (302, libc::SYS_renameat),
    (303, libc::SYS_linkat),
    (304, libc::SYS_symlinkat),
    (305, libc::SYS_readlinkat),
    (307, libc::SYS_faccessat),
    (341, libc::SYS_name_to_handle_at),
    (342, libc::SYS_open_by_handle_at),
    (353, libc::SYS_renameat2),
    (358, libc::SYS_execveat),
    (383, libc::SYS_statx),
    (437, libc::SYS_openat2),
    (439, libc::SYS_faccessat2),
];

/// The system call a notification is about, in this build's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A native call, or another ABI's handled as this one.
    Native(c_long),
    /// A call of an ABI the supervisor cannot read (its audit arch).
    OtherAbi(u32),
}

/// What `data` calls, in native numbering. The filter notifies no i386 call
/// without a native one; were it to, it counts as another ABI's.
pub fn call_of(data: &seccomp_data) -> Call {
    if data.arch == AUDIT_ARCH_NATIVE {
        return Call::Native(c_long::from(data.nr));
    }
    #[cfg(target_arch = "x86_64")]
    if data.arch == AUDIT_ARCH_I386 {
        let native = I386
            .iter()
            .find(|&&(i386, _)| i386 == data.nr as u32)
            .map(|&(_, native)| native);
        if let Some(native) = native {
            return Call::Native(native);
        }
    }
    Call::OtherAbi(data.arch)
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const NR: u32 = offset_of!(seccomp_data, nr) as u32;
const ARCH: u32 = offset_of!(seccomp_data, arch) as u32;
/// The instruction pointer's low and high words (little-endian, as both
/// supported architectures are).
const IP_LO: u32 = offset_of!(seccomp_data, instruction_pointer) as u32;
const IP_HI: u32 = IP_LO + 4;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

fn load(offset: u32) -> sock_filter {
    sock_filter {
        code: LD_W_ABS,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

fn ret(action: u32) -> sock_filter {
    sock_filter {
        code: RET,
        jt: 0,
        jf: 0,
        k: action,
    }
}

/// A conditional jump; `jt` and `jf` count instructions skipped.
fn jump(code: u16, k: u32, jt: usize, jf: usize) -> sock_filter {
    // The program's length is fixed by the tables above, and its tests build
    // both modes: a jump that did not fit would fail them, never a user.
    let skip = |n: usize| u8::try_from(n).expect("a filter jump skips fewer than 256 instructions");
    sock_filter {
        code,
        jt: skip(jt),
        jf: skip(jf),
        k,
    }
}

/// The filter for `mode`.
pub fn build(mode: Mode) -> Vec<sock_filter> {
    let mut prog = vec![load(ARCH)];
    // Set below: another ABI's calls jump to their part, at the end.
    let to_other_abi = prog.len();
    prog.push(ret(NOTIFY));
    prog.push(load(NR));
    // x32 system calls would reach the same kernel code under other numbers.
    #[cfg(target_arch = "x86_64")]
    {
        prog.push(jump(JGE, 0x4000_0000, 0, 1));
        prog.push(ret(ENOSYS));
    }
    // io_uring would do file I/O where no filter sees it: libuv and others
    // fall back to plain system calls when it is refused.
    prog.push(jump(JEQ, libc::SYS_io_uring_setup as u32, 0, 1));
    prog.push(ret(ENOSYS));
    // One comparison per traced call, each jumping to the check after them.
    let check = prog.len() + TRACED.len() + 1;
    for &nr in TRACED {
        let at = prog.len();
        prog.push(jump(JEQ, nr as u32, check - at - 1, 0));
    }
    prog.push(ret(ALLOW));
    if mode == Mode::Preload {
        // Calls from the trampoline page were recorded by the preload library.
        let (lo, hi) = (TRAMPOLINE_ADDR, TRAMPOLINE_ADDR + TRAMPOLINE_SIZE);
        prog.push(load(IP_HI));
        prog.push(jump(JEQ, (lo >> 32) as u32, 0, 4));
        prog.push(load(IP_LO));
        prog.push(jump(JGE, lo as u32, 0, 2));
        prog.push(jump(JGE, hi as u32, 1, 0));
        prog.push(ret(ALLOW));
    }
    prog.push(ret(NOTIFY));
    // Another ABI: on x86_64, i386's file system calls are notified and its
    // io_uring refused; any other ABI's calls are all notified, and the
    // supervisor says it cannot read them.
    let other_abi = prog.len();
    prog[to_other_abi] = jump(JEQ, AUDIT_ARCH_NATIVE, 0, other_abi - to_other_abi - 1);
    #[cfg(target_arch = "x86_64")]
    {
        prog.push(jump(JEQ, AUDIT_ARCH_I386, 0, I386.len() + 4));
        prog.push(load(NR));
        prog.push(jump(JEQ, I386_IO_URING_SETUP, 0, 1));
        prog.push(ret(ENOSYS));
        for (i, &(i386, _)) in I386.iter().enumerate() {
            prog.push(jump(JEQ, i386, I386.len() - i, 0));
        }
        prog.push(ret(ALLOW));
    }
    prog.push(ret(NOTIFY));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel would do with a call: runs the program the way its
    /// classic-BPF interpreter does, for the instructions the filter uses.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, ip: u64) -> u32 {
        let word = |offset: u32| match offset {
            NR => nr,
            ARCH => arch,
            IP_LO => ip as u32,
            IP_HI => (ip >> 32) as u32,
            other => panic!("the filter loads offset {other}"),
        };
        let (mut pc, mut acc) = (0, 0);
        loop {
            let insn = prog[pc];
            pc += 1;
            match insn.code {
                LD_W_ABS => acc = word(insn.k),
                RET => return insn.k,
                JEQ | JGE => {
                    let taken = if insn.code == JEQ {
                        acc == insn.k
                    } else {
                        acc >= insn.k
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                code => panic!("the filter has an instruction of code {code:#x}"),
            }
        }
    }

    const ELSEWHERE: u64 = 0x7f00_1234_5678;
    const TRAMPOLINE: u64 = TRAMPOLINE_ADDR + 0x10;

    #[test]
    fn traced_calls_notify_and_others_pass() {
        for mode in [Mode::Preload, Mode::Seccomp] {
            let prog = build(mode);
            let native = |nr: c_long, ip| run(&prog, AUDIT_ARCH_NATIVE, nr as u32, ip);
            for &nr in TRACED {
                assert_eq!(native(nr, ELSEWHERE), NOTIFY, "{mode:?} {nr}");
            }
            assert_eq!(native(libc::SYS_read, ELSEWHERE), ALLOW);
            assert_eq!(native(libc::SYS_getdents64, ELSEWHERE), ALLOW);
            assert_eq!(native(libc::SYS_io_uring_setup, ELSEWHERE), ENOSYS);
            assert_eq!(native(libc::SYS_openat, TRAMPOLINE_ADDR - 1), NOTIFY);
            assert_eq!(
                native(libc::SYS_openat, TRAMPOLINE_ADDR + TRAMPOLINE_SIZE),
                NOTIFY
            );
            assert_eq!(native(libc::SYS_openat, TRAMPOLINE + (1 << 32)), NOTIFY);
            assert_eq!(run(&prog, 0x4000_0028, 5, ELSEWHERE), NOTIFY, "another ABI");
        }
    }

    #[test]
    fn the_trampoline_page_passes_in_preload_mode_only() {
        let preload = build(Mode::Preload);
        let seccomp = build(Mode::Seccomp);
        for ip in [
            TRAMPOLINE_ADDR,
            TRAMPOLINE,
            TRAMPOLINE_ADDR + TRAMPOLINE_SIZE - 1,
        ] {
            assert_eq!(
                run(&preload, AUDIT_ARCH_NATIVE, libc::SYS_openat as u32, ip),
                ALLOW
            );
            assert_eq!(
                run(&seccomp, AUDIT_ARCH_NATIVE, libc::SYS_openat as u32, ip),
                NOTIFY
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn i386_file_calls_notify_and_map_to_native_ones() {
        for mode in [Mode::Preload, Mode::Seccomp] {
            let prog = build(mode);
            for &(i386, native) in I386 {
                // The trampoline's page is no exception for another ABI.
                assert_eq!(run(&prog, AUDIT_ARCH_I386, i386, TRAMPOLINE), NOTIFY);
                let data = seccomp_data {
                    nr: i386 as i32,
                    arch: AUDIT_ARCH_I386,
                    instruction_pointer: 0,
                    args: [0; 6],
                };
                assert_eq!(call_of(&data), Call::Native(native));
            }
            assert_eq!(run(&prog, AUDIT_ARCH_I386, 3, ELSEWHERE), ALLOW, "read");
            assert_eq!(
                run(&prog, AUDIT_ARCH_I386, I386_IO_URING_SETUP, ELSEWHERE),
                ENOSYS
            );
            assert_eq!(
                run(&prog, AUDIT_ARCH_NATIVE, 0x4000_0000 | 2, ELSEWHERE),
                ENOSYS,
                "x32"
            );
        }
    }

    #[test]
    fn another_abi_is_named_by_its_arch() {
        let data = seccomp_data {
            nr: 5,
            arch: 0x4000_0028,
            instruction_pointer: 0,
            args: [0; 6],
        };
        assert_eq!(call_of(&data), Call::OtherAbi(0x4000_0028));
    }
}
