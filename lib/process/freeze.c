/* SPDX-License-Identifier: MIT */
/*
 * Freezing a process: PTRACE_SEIZE + PTRACE_INTERRUPT of every thread.
 * Used where a harvest and its re-arm are two steps (soft-dirty: read
 * bits, then clear_refs) so no write falls between them.  A thread that
 * was about to take a signal stops in signal-delivery-stop instead; that
 * signal is handed back on detach so nothing is lost.  The barrier
 * (pt__barrier) stops the threads one at a time instead of all at once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "freeze.h"
#include "pt_internal.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool have(const struct pt_freeze *fz, pid_t tid)
{
	for (size_t i = 0; i < fz->n; i++)
		if (fz->tids[i] == tid)
			return true;
	return false;
}

static int push(struct pt_freeze *fz, pid_t tid, int sig)
{
	if (fz->n == fz->cap) {
		size_t ncap = fz->cap ? fz->cap * 2 : 16;
		pid_t *t = realloc(fz->tids, ncap * sizeof(*t));
		int *s;

		if (!t)
			return -ENOMEM;
		fz->tids = t;
		s = realloc(fz->sigs, ncap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		fz->sigs = s;
		fz->cap = ncap;
	}
	fz->tids[fz->n] = tid;
	fz->sigs[fz->n++] = sig;
	return 0;
}

/* Is @pid a child of ours?  Then its exit status belongs to our caller. */
static bool our_child(pid_t pid)
{
	char path[64], line[128];
	bool r = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "PPid:", 5)) {
			r = atoi(line + 5) == getpid();
			break;
		}
	fclose(f);
	return r;
}

/*
 * Seize and stop one thread.  Returns 0, 1 if it vanished, -EBUSY when it
 * is traced by someone else or not ours, or -errno.  On failure the
 * thread is not left traced: once seized, every error path detaches it
 * (with the signal its stop consumed, if any).
 * An exit is only looked at (WNOWAIT), never reaped when @child: the
 * caller may be the target's parent (`pagetrack watch -- CMD`), and a
 * command ending while it is frozen must keep its exit status.
 * @fault: the caller's fault point (lib/fault.c), checked once the
 * thread is stopped.
 */
static int stop_one(pid_t tid, bool child, int *sig, enum pt_fault fault)
{
	int status, err;

	*sig = 0;
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0)	/* EPERM: traced by another, or not ours */
		return errno == ESRCH ? 1 : errno == EPERM ? -EBUSY : -errno;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 && errno != ESRCH) {
		err = -errno;
		goto fail;
	}
	for (;;) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)tid, &si, WSTOPPED | WEXITED | __WALL | WNOWAIT) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECHILD)
				return 1;
			err = -errno;
			goto fail;
		}
		if (si.si_code == CLD_EXITED || si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) {
			if (!child)	/* as its tracer only: let its parent see it */
				waitpid(tid, NULL, __WALL | WNOHANG);
			return 1;
		}
		if (waitpid(tid, &status, __WALL) < 0) {	/* the stop just seen */
			if (errno == ECHILD)
				return 1;
			err = -errno;
			goto fail;
		}
		if (!WIFSTOPPED(status))
			continue;
		/* signal-delivery-stop: keep the signal for later, stay stopped */
		if ((status >> 16) != PTRACE_EVENT_STOP)
			*sig = WSTOPSIG(status);
		err = pt__fault(fault);
		if (err)
			goto fail;
		return 0;
	}
fail:
	ptrace(PTRACE_DETACH, tid, 0, *sig);
	*sig = 0;
	return err;
}

int pt__freeze(pid_t pid, struct pt_freeze *fz)
{
	char path[64];
	bool added, child = our_child(pid);
	int err = 0;

	memset(fz, 0, sizeof(*fz));
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	do {
		DIR *d = opendir(path);
		struct dirent *de;

		if (!d) {
			err = errno == ENOENT ? -ESRCH : -errno;
			break;
		}
		added = false;
		while ((de = readdir(d))) {
			pid_t tid = (pid_t)atoi(de->d_name);
			int sig, r;

			if (tid <= 0 || have(fz, tid))
				continue;
			/* only the leader's exit is reported to the parent */
			r = stop_one(tid, child && tid == pid, &sig, PT_FAULT_FREEZE);
			if (r < 0) {
				err = r;
				break;
			}
			if (r == 1)
				continue;
			if (!fz->n)
				fz->since_ns = now_ns();
			err = push(fz, tid, sig);
			if (err) {
				ptrace(PTRACE_DETACH, tid, 0, sig);
				break;
			}
			added = true;
		}
		closedir(d);
	} while (!err && added);	/* threads may have been born meanwhile */
	if (!err && !fz->n)
		err = -ESRCH;
	if (err)
		pt__thaw(fz);
	return err;
}

uint64_t pt__thaw(struct pt_freeze *fz)
{
	uint64_t dt = fz->n ? now_ns() - fz->since_ns : 0;

	for (size_t i = 0; i < fz->n; i++)
		ptrace(PTRACE_DETACH, fz->tids[i], 0, fz->sigs[i]);
	free(fz->tids);
	free(fz->sigs);
	memset(fz, 0, sizeof(*fz));
	return dt;
}

/* State letter of thread @tid (R, S, D, T, ...), 0 when it cannot be read. */
static char thread_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');	/* the name may hold anything */
	return p && p[1] == ' ' ? p[2] : 0;
}

int pt__barrier(pid_t pid, uint64_t *pause_ns)
{
	char path[64];
	bool child = our_child(pid);
	DIR *d;
	struct dirent *de;
	int err = 0;

	*pause_ns = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	/* threads born meanwhile start in user space: nothing of theirs is in flight */
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		uint64_t t0, t1, t2;
		bool busy;
		char st;
		int sig, r;

		if (tid <= 0)
			continue;
		/*
		 * Only threads running or in disk sleep: one sleeping
		 * interruptibly, stopped or dead is not inside a system call
		 * that writes into pinned pages (a FUSE direct read is the
		 * exception, doc/tracking.md), and waking it would make some
		 * calls return EINTR (epoll_wait, signal(7)).
		 */
		st = thread_state(pid, tid);
		if (st != 'R' && st != 'D' && st != 0)
			continue;
		busy = st == 'D';
		t0 = now_ns();
		r = stop_one(tid, child && tid == pid, &sig, PT_FAULT_BARRIER);
		if (r < 0) {
			err = r;
			break;
		}
		if (r == 1)
			continue;
		t1 = now_ns();
		ptrace(PTRACE_DETACH, tid, 0, sig);
		t2 = now_ns();
		/*
		 * Held stopped from the moment it stopped: at once for a thread
		 * running or sleeping interruptibly, but a thread in disk sleep
		 * ran its system call to the end first, not paused meanwhile.
		 */
		if (t2 - (busy ? t1 : t0) > *pause_ns)
			*pause_ns = t2 - (busy ? t1 : t0);
	}
	closedir(d);
	return err;
}
