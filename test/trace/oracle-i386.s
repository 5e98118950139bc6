# The trace oracle's 32-bit probe: a static i386 program (no libc) that
# makes one file operation with int $0x80 on the files under d/, chosen by
# the first letter of argv[1] (the test's table names it). Exits 0 when the
# call succeeded, 1 when it failed.
#
#   as --32 -o oracle-i386.o oracle-i386.s && ld -m elf_i386 -o oracle-i386 oracle-i386.o

        .set AT_FDCWD, -100
        .set O_WRONLY_CREAT_TRUNC, 01101
        .set O_DIRECTORY, 0200000
        .set O_PATH, 010000000

        .section .rodata
input:   .asciz "d/input.txt"
created: .asciz "d/created.txt"
looked:  .asciz "d/looked-up.txt"
link:    .asciz "d/a-link"
listed:  .asciz "d/listed"
doomed:  .asciz "d/doomed.txt"
from:    .asciz "d/from.txt"
to:      .asciz "d/to.txt"
to2:     .asciz "d/to2.txt"
made:    .asciz "d/made"
sub:     .asciz "d/sub"
inroot:  .asciz "/../inner.txt"

        .data
        .balign 8
how:      .quad 0, 0, 0           # O_RDONLY, no mode, no resolve flags
how_root: .quad 0, 0, 0x10        # RESOLVE_IN_ROOT

        .bss
        .balign 16
buf:    .space 4096

        .text
        .globl _start
_start:
        movl 8(%esp), %esi              # argv[1]
        testl %esi, %esi
        jz fail
        movzbl (%esi), %eax
        cmpb $'r', %al
        je op_read
        cmpb $'w', %al
        je op_write
        cmpb $'s', %al
        je op_stat
        cmpb $'l', %al
        je op_lstat
        cmpb $'x', %al
        je op_statx
        cmpb $'a', %al
        je op_access
        cmpb $'d', %al
        je op_list
        cmpb $'u', %al
        je op_unlink
        cmpb $'n', %al
        je op_rename
        cmpb $'2', %al
        je op_renameat2
        cmpb $'m', %al
        je op_mkdir
        cmpb $'k', %al
        je op_readlink
        cmpb $'o', %al
        je op_openat2
        cmpb $'i', %al
        je op_openat2_in_root
        jmp fail

op_read:                                # open(input, O_RDONLY)
        movl $5, %eax
        movl $input, %ebx
        xorl %ecx, %ecx
        jmp call
op_write:                               # open(created, O_WRONLY|O_CREAT|O_TRUNC, 0644)
        movl $5, %eax
        movl $created, %ebx
        movl $O_WRONLY_CREAT_TRUNC, %ecx
        movl $0644, %edx
        jmp call
op_stat:                                # stat64(looked, buf)
        movl $195, %eax
        movl $looked, %ebx
        movl $buf, %ecx
        jmp call
op_lstat:                               # lstat64(link, buf)
        movl $196, %eax
        movl $link, %ebx
        movl $buf, %ecx
        jmp call
op_statx:                               # statx(AT_FDCWD, looked, 0, STATX_BASIC_STATS, buf)
        movl $383, %eax
        movl $AT_FDCWD, %ebx
        movl $looked, %ecx
        xorl %edx, %edx
        movl $0x7ff, %esi
        movl $buf, %edi
        jmp call
op_access:                              # access(looked, F_OK)
        movl $33, %eax
        movl $looked, %ebx
        xorl %ecx, %ecx
        jmp call
op_list:                                # open(listed, O_RDONLY|O_DIRECTORY), getdents64 to the end
        movl $5, %eax
        movl $listed, %ebx
        movl $O_DIRECTORY, %ecx
        int $0x80
        testl %eax, %eax
        js fail
        movl %eax, %ebx
1:      movl $220, %eax
        movl $buf, %ecx
        movl $4096, %edx
        int $0x80
        testl %eax, %eax
        jg 1b
        jmp done
op_unlink:                              # unlink(doomed)
        movl $10, %eax
        movl $doomed, %ebx
        jmp call
op_rename:                              # rename(from, to)
        movl $38, %eax
        movl $from, %ebx
        movl $to, %ecx
        jmp call
op_renameat2:                           # renameat2(AT_FDCWD, from, AT_FDCWD, to2, RENAME_NOREPLACE)
        movl $353, %eax
        movl $AT_FDCWD, %ebx
        movl $from, %ecx
        movl $AT_FDCWD, %edx
        movl $to2, %esi
        movl $1, %edi
        jmp call
op_mkdir:                               # mkdir(made, 0755)
        movl $39, %eax
        movl $made, %ebx
        movl $0755, %ecx
        jmp call
op_readlink:                            # readlink(link, buf, 4096)
        movl $85, %eax
        movl $link, %ebx
        movl $buf, %ecx
        movl $4096, %edx
        jmp call
op_openat2:                             # openat2(AT_FDCWD, input, &how, 24)
        movl $437, %eax
        movl $AT_FDCWD, %ebx
        movl $input, %ecx
        movl $how, %edx
        movl $24, %esi
        jmp call
op_openat2_in_root:                     # openat2(open(sub, O_PATH|O_DIRECTORY), "/../inner.txt", RESOLVE_IN_ROOT)
        movl $5, %eax
        movl $sub, %ebx
        movl $(O_PATH | O_DIRECTORY), %ecx
        int $0x80
        testl %eax, %eax
        js fail
        movl %eax, %ebx
        movl $437, %eax
        movl $inroot, %ecx
        movl $how_root, %edx
        movl $24, %esi
        jmp call

call:   int $0x80
done:   testl %eax, %eax
        js fail
        movl $1, %eax
        xorl %ebx, %ebx
        int $0x80
fail:   movl $1, %eax
        movl $1, %ebx
        int $0x80
