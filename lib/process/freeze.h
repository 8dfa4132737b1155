/* SPDX-License-Identifier: MIT */
/* Stopping every thread of a process for a few microseconds (ptrace). */
#ifndef PT_FREEZE_H
#define PT_FREEZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pt_freeze {
	pid_t *tids;
	int *sigs;		/* signal consumed by a signal-delivery-stop, re-injected on thaw */
	size_t n, cap;
	uint64_t since_ns;	/* when the first thread was asked to stop */
	pid_t pid;		/* the process */
	bool child;		/* it is our child: its leader's exit is never reaped */
	bool nested;		/* the process was already frozen by this process:
				   this freeze and its thaw do nothing */
};

/*
 * Seize and interrupt every thread of @pid, all at once, then collect
 * the stops (reading the thread list again until no new thread appears,
 * at most 64 times).  On failure everything already stopped is resumed.
 * -EBUSY when the process is traced by someone else or not ours;
 * -EAGAIN when threads kept appearing.
 * Nesting: while one freeze of @pid made by this process holds, another
 * pt__freeze(@pid) succeeds at once without touching the threads
 * (fz->nested) and pt__barrier(@pid) returns 0 with no pause: every
 * thread is already stopped outside system calls.  So a caller that
 * froze the target can run a tracker's round in the freeze (snapshots).
 */
int pt__freeze(pid_t pid, struct pt_freeze *fz);
/* Resume every thread; returns how long the process was stopped (ns). */
uint64_t pt__thaw(struct pt_freeze *fz);

/*
 * Make every thread of @pid that is running or in disk sleep pass
 * through a ptrace stop: all are interrupted at once and each is resumed
 * as soon as its stop is seen.  A thread stops only outside system
 * calls, so when this returns every such system call in progress when
 * it was called has finished: a synchronous O_DIRECT read that had
 * pinned its pages before a harvest has landed.  Threads sleeping
 * interruptibly are left alone.  *@pause_ns: the longest time one thread
 * was held stopped (bounded above: from the last time it was seen
 * running); *@total_ns: from the first interrupt to the last resume.
 * -EBUSY as pt__freeze(), -ESRCH when the process is gone.
 */
int pt__barrier(pid_t pid, uint64_t *pause_ns, uint64_t *total_ns);

#endif
