/*
 * What the preload library and the supervisor share: the trace file's record
 * format, the environment they are configured by, and the one address range
 * whose system calls the supervisor's seccomp filter lets through unseen.
 *
 * A trace file is a sequence of records appended with O_APPEND, one write(2)
 * per record, so records from every process of a task interleave whole and a
 * record is in the kernel the moment the write returns: a process killed with
 * SIGKILL loses no record it wrote. A record is one kind byte, then the
 * absolute path (or, for TRACE_INCOMPLETE, a sentence), then a NUL byte.
 */
#ifndef RUNNER_AWARE_TRACE_H
#define RUNNER_AWARE_TRACE_H

/* Record kinds. Reads are recorded after the call (its outcome decides the
 * kind; a process killed before the record cannot have used what it read),
 * effects (writes, deletes) before the call, so an effect is never unrecorded. */
#define TRACE_READ 'r'       /* opened for reading */
#define TRACE_EXEC 'x'       /* executed */
#define TRACE_FOUND 'f'      /* stat'ed, access'ed or readlink'ed: exists */
#define TRACE_MISSING 'm'    /* stat'ed or opened: does not exist */
#define TRACE_LISTED 'l'     /* a directory opened for listing */
#define TRACE_WRITTEN 'w'    /* opened for writing, created, truncated, renamed to, linked to */
#define TRACE_DELETED 'd'    /* unlinked, removed, renamed from */
#define TRACE_INCOMPLETE '!' /* the trace may miss accesses; the text says why */
#define TRACE_BEGIN 'b'      /* the supervisor started the command; the text is its mode */
#define TRACE_END 'e'        /* the supervisor saw the task to its end; no text */

/* The trace file every process appends to. */
#define TRACE_ENV_FILE "RUNNER_AWARE_TRACE"
/* The preload library, which the supervisor puts first in LD_PRELOAD for
 * the command (and only for it: a shell or wrapper the runner starts the
 * supervisor through is not part of the task). */
#define TRACE_ENV_PRELOAD "RUNNER_AWARE_TRACE_PRELOAD"
/* Set by the supervisor for the command it starts once its seccomp filter is
 * installed: "1" sees what the preload cannot (static programs, raw system
 * calls); its absence in a preloaded process means nothing does. */
#define TRACE_ENV_SUPERVISED "RUNNER_AWARE_TRACE_SUPERVISED"

/*
 * The preload library maps a page at this fixed address and makes its own
 * system calls from code on that page; the supervisor's filter lets file
 * system calls made from this page through and sends every other one (libc
 * internals, static programs, raw `syscall` instructions) to the supervisor.
 * Chosen below 2^39 so it exists on every arm64 address-space size, and far
 * from where Linux puts executables, heaps and mmap regions.
 */
#define TRACE_TRAMPOLINE_ADDR 0x5e5e000000UL
#define TRACE_TRAMPOLINE_SIZE 4096UL

/* A preload library that cannot write its records (the trace file gone,
 * a full disk) looks this path up through libc, where the supervisor's
 * filter sees it: the supervisor then marks the trace incomplete. It can
 * never exist (/dev/null is no directory), so the call changes nothing. */
#define TRACE_LOST_PATH "/dev/null/runner-aware-trace-lost"

/* Longest path a record carries, the kind byte and NUL not included. */
#define TRACE_PATH_MAX 4096

#endif
