/* SPDX-License-Identifier: MIT */
/*
 * What a snapshot records of a frozen process besides its memory: the
 * threads' register sets, auxv, process identity, open files
 * (lib/process/capture.c; stored by lib/image as PROCESS, AUXV, THREADS
 * and FILES sections, doc/image-format.md; turned into ELF notes by
 * lib/image/core.c).
 */
#ifndef PT_CAPTURE_H
#define PT_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pt_internal.h"
#include "freeze.h"

/* One note of a thread: what PTRACE_GETREGSET(tid, type) returned, verbatim. */
struct pt__note {
	uint32_t type;		/* NT_PRSTATUS, NT_PRFPREG, NT_X86_XSTATE, NT_SIGINFO */
	char name[16];		/* "CORE", "LINUX"; NUL-terminated, 1-15 chars */
	uint32_t len;
	void *desc;		/* malloc'd, @len bytes */
};

struct pt__thread {
	pid_t tid;
	uint32_t cursig;	/* signal it was stopped with, 0 if none */
	uint64_t sigblocked;	/* bit n-1 = signal n */
	uint64_t sigpending;	/* thread-private pending */
	size_t nnotes;
	struct pt__note *notes;
};

struct pt__file {
	uint32_t fd, flags;	/* flags: O_* from fdinfo */
	uint64_t pos;
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	uint32_t mode;		/* st_mode */
	char *name;		/* readlink of /proc/PID/fd/N, malloc'd */
};

struct pt__capture {
	pid_t pid, ppid, pgrp, sid;
	uint32_t uid, gid;	/* real */
	char state;		/* /proc/PID/stat letter as read while frozen: 't' (tracing
				   stop, ours) unless the process was already stopped ('T')
				   or a zombie; the state before the freeze is not knowable */
	int32_t nice;
	char comm[16];
	char *cmdline;		/* NUL-separated, malloc'd, at most 4096 bytes */
	size_t cmdline_len;
	uint64_t (*auxv)[2];	/* a_type, a_val; ends with AT_NULL */
	size_t nauxv;
	struct pt__thread *threads;	/* main thread (tid == pid) first */
	size_t nthreads;
	struct pt__file *files;	/* sorted by fd */
	size_t nfiles;
};

/*
 * Record @fz's process (every thread ptrace-stopped by pt__freeze()).
 * Returns 0 or -errno; on failure @c is empty (freeable).
 */
PT_HIDDEN int pt__capture(const struct pt_freeze *fz, struct pt__capture *c);
PT_HIDDEN void pt__capture_free(struct pt__capture *c);	/* and zero it */

#endif
