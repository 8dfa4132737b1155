/* SPDX-License-Identifier: MIT */
/*
 * Run one system call inside another process with ptrace and put the
 * process back exactly as it was (doc/inject.md).  Internal to lib/.
 */
#ifndef PT_INJECT_H
#define PT_INJECT_H

#include <stdint.h>
#include <sys/types.h>

#include "pt_internal.h"

struct pt_inject_stats {
	/* From the moment the thread was seen stopped to the moment it was
	 * resumed (PTRACE_DETACH issued); 0 if it was never stopped. */
	uint64_t pause_ns;
	pid_t tid;		/* the thread that ran the call; 0 if none */
	uint64_t insn_addr;	/* address of the `syscall` instruction used */
	unsigned stops;		/* ptrace stops seen in all */
	unsigned signals_passed;/* signals delivered before the call ran */
	unsigned signals_kept;	/* signals that arrived during it, re-queued */
	int group_stopped;	/* the target was in a group-stop (stays so) */
};

/*
 * Execute system call @nr with @args in a thread of process @pid and
 * restore that thread (registers, FP/extended state, signal mask,
 * interrupted system call) exactly; the target is never left traced or
 * stopped by us.  Blocks while the chosen thread is in an uninterruptible
 * sleep.  Must not be called for the caller's own process.  The calling
 * thread must not be waiting for children with __WALL in another thread
 * meanwhile (it would steal the stops), and the caller gets SIGCHLD for
 * each ptrace stop (ignored by default).
 *
 * Returns 0 and *ret = the raw return of the call (-errno on its
 * failure), or: -ESRCH no such process (or it exited meanwhile),
 * -EPERM not allowed to ptrace it, -EBUSY traced by someone else,
 * -EINVAL @pid is the caller's own process, -EACCES the thread runs
 * under seccomp (the call could kill it), -EOPNOTSUPP not x86_64, a
 * 32-bit target, or SIGTRAP ignored by the target (a single step would
 * reset that disposition), -ENOEXEC no `syscall` instruction found in
 * its executable memory, -EFAULT the instruction could not be executed
 * (the target changed its mappings meanwhile), -EAGAIN a storm of
 * signals kept the thread from stopping, other -errno from ptrace.
 * @st may be NULL; it is filled on success and, as far as known, on
 * failure.
 */
PT_HIDDEN int pt__inject_syscall(pid_t pid, long nr, const long args[6], long *ret,
				 struct pt_inject_stats *st);
/*
 * The same, for the address space @mm_fd (an open /proc/PID/pagemap, or
 * -1: any) only: once the thread is stopped, -ESRCH without running
 * anything when that mm is gone (the target exec'd or exited since).
 */
PT_HIDDEN int pt__inject_syscall_mm(pid_t pid, int mm_fd, long nr, const long args[6],
				    long *ret, struct pt_inject_stats *st);

#endif /* PT_INJECT_H */
