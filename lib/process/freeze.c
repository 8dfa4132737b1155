/* SPDX-License-Identifier: MIT */
/*
 * Freezing a process: PTRACE_SEIZE + PTRACE_INTERRUPT of every thread.
 * Used where a harvest and its re-arm are two steps (soft-dirty: read
 * bits, then clear_refs) or where the layout must hold still (uffd
 * registration), so no write or mapping change falls between them.  A
 * thread that was about to take a signal stops in signal-delivery-stop
 * instead; that signal is handed back on detach so nothing is lost.
 *
 * Every thread is interrupted first and the stops are collected after:
 * a stop arrives only when its thread gets a CPU, and with many busy
 * threads on few CPUs, stopping them one at a time cost a reschedule
 * each (30-80 ms a thread measured with 64 busy threads on 2 CPUs).
 * The stops are collected by polling each thread with WNOHANG: a
 * blocking wait for "any tracee" (P_ALL) would also see, and could
 * reap, the caller's own children.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "freeze.h"
#include "pt_internal.h"

/*
 * How long the stops are polled for before a warning; polling then goes
 * on (1 ms apart) without a limit.  A seized thread that has not stopped
 * yet cannot be released (PTRACE_DETACH needs a stopped tracee): leaving
 * would let it stop later and stay stopped.  It is in a system call
 * that has not returned (disk sleep).  Never a blocking wait: a killed
 * thread group's leader reports its exit only once every other thread
 * is reaped, and those we hold stopped are reaped by us (reap_killed()).
 */
#define POLL_CAP_NS (10ull * 1000000000ull)
#define SPIN_NS 50000ull	/* sweep without sleeping this long after progress */
#define MAX_ROUNDS 64		/* pt__freeze: re-reads of the thread list */
#define MAX_THREADS 1000000	/* more than the kernel's threads-max default allows */

enum { TS_PENDING, TS_STOPPED, TS_GONE };

/* Threads seized and interrupted, and what became of them. */
struct stopset {
	pid_t *tid;
	int *sig;		/* consumed by a signal-delivery-stop: re-injected on detach */
	uint8_t *st;
	uint64_t *seen;		/* last time it was seen not stopped yet */
	size_t n, cap, pending;
	bool child;		/* the leader is our child: never reap its exit */
	pid_t pid;
};

static void set_free(struct stopset *s)
{
	free(s->tid);
	free(s->sig);
	free(s->st);
	free(s->seen);
	memset(s, 0, sizeof(*s));
}

static bool set_has(const struct stopset *s, pid_t tid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->tid[i] == tid)
			return true;
	return false;
}

static int set_grow(struct stopset *s)
{
	size_t ncap = s->cap ? s->cap * 2 : 16;
	void *p;

	if (s->n >= MAX_THREADS)
		return -E2BIG;
#define GROW(f)                                              \
	do {                                                 \
		p = realloc(s->f, ncap * sizeof(*s->f));     \
		if (!p)                                      \
			return -ENOMEM;                      \
		s->f = p;                                    \
	} while (0)
	GROW(tid);
	GROW(sig);
	GROW(st);
	GROW(seen);
#undef GROW
	s->cap = ncap;
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
 * Resume a stopped thread, handing back the signal it stopped for.  If
 * it was killed meanwhile (SIGKILL wakes a tracee; then PTRACE_DETACH
 * fails with ESRCH), its exit is reported to us, its tracer, and it
 * stays a zombie until we wait for it: its process could never be
 * reaped by its parent.  So wait for that exit (a killed thread exits at
 * once; at most ~1 s) and reap it, unless it is the leader of our own
 * child (@keep_exit), whose status belongs to our caller.
 */
static void detach_or_reap(pid_t tid, int sig, bool keep_exit)
{
	struct timespec ts = { 0, 1000000 };

	if (ptrace(PTRACE_DETACH, tid, 0, sig) == 0 || errno != ESRCH)
		return;
	for (int i = 0; i < 1000; i++) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)tid, &si, WEXITED | __WALL | WNOWAIT | WNOHANG) < 0) {
			if (errno == EINTR)
				continue;
			return;	/* ECHILD: not ours to wait for any more */
		}
		if (si.si_pid) {
			if (!keep_exit)
				waitpid(tid, NULL, __WALL | WNOHANG);
			return;
		}
		nanosleep(&ts, NULL);
	}
}

/*
 * Seize @tid and ask it to stop; the stop is collected by collect().
 * 0, 1 if it vanished, -EBUSY when it is traced by someone else or not
 * ours, or -errno (then it is not in the set).
 */
static int seize(struct stopset *s, pid_t tid)
{
	int err;

	if (s->n == s->cap && (err = set_grow(s)))
		return err;
	if (ptrace(PTRACE_SEIZE, tid, 0, 0) < 0)	/* EPERM: traced by another, or not ours */
		return errno == ESRCH ? 1 : errno == EPERM ? -EBUSY : -errno;
	s->tid[s->n] = tid;
	s->sig[s->n] = 0;
	s->st[s->n] = TS_PENDING;
	s->seen[s->n] = pt__now_ns();
	s->n++;
	s->pending++;
	/* ESRCH: it is exiting; collect() sees the exit */
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0 && errno != ESRCH)
		return -errno;	/* seized: collect() still waits for it */
	return 0;
}

/*
 * Has thread @i stopped?  0: not yet; 1: stopped (its signal kept in
 * sig[i] when it stopped to take one); 2: gone; -errno.  Never blocks.
 * An exit is only looked at (WNOWAIT), never reaped when it is the
 * leader of our child: the caller may be the target's parent
 * (`pagetrack watch -- CMD`), and a command ending while it is frozen
 * must keep its exit status.
 */
static int poll_one(struct stopset *s, size_t i)
{
	pid_t tid = s->tid[i];
	bool child = s->child && tid == s->pid;	/* only the leader's exit reaches the parent */
	int status, f = WSTOPPED | WEXITED | __WALL | WNOWAIT | WNOHANG;
	siginfo_t si;
	pid_t r;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)tid, &si, f) < 0)
		return errno == EINTR ? 0 : errno == ECHILD ? 2 : -errno;
	if (si.si_pid == 0)
		return 0;
	if (si.si_code == CLD_EXITED || si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) {
		if (!child)	/* as its tracer only: let its parent see it */
			waitpid(tid, NULL, __WALL | WNOHANG);
		return 2;
	}
	r = waitpid(tid, &status, __WALL | WNOHANG);	/* the stop just seen */
	if (r < 0)
		return errno == ECHILD ? 2 : errno == EINTR ? 0 : -errno;
	if (r == 0 || !WIFSTOPPED(status))
		return 0;
	/* signal-delivery-stop: keep the signal for later, stay stopped */
	s->sig[i] = (status >> 16) == PTRACE_EVENT_STOP ? 0 : WSTOPSIG(status);
	return 1;
}

/*
 * Give the CPU to the target between sweeps: a thread stops only when it
 * runs.  Sleep, not sched_yield(): a yielding task goes behind every
 * runnable thread (with 64 busy ones on 2 CPUs, tens of ms before the
 * next sweep), while one waking from a short sleep is run again at once.
 * 10 us at first, longer each empty sweep, up to 0.5 ms.  collect()
 * sleeps only after 50 us without a stop: a sleep costs ~60 us here
 * (timer slack), more than most stops take to arrive.
 */
static void backoff(unsigned idle)
{
	struct timespec ts = { 0, idle / 2 < 6 ? 10000L << (idle / 2) : 500000L };

	nanosleep(&ts, NULL);
}

/*
 * Threads already stopped that a SIGKILL woke: they exit as our tracees
 * and stay zombies until we reap them, and until then their leader's
 * exit is not reported, so a pending leader would never be seen gone.
 * Reap them (not the leader of our child: its status is our caller's).
 */
static void reap_killed(struct stopset *s)
{
	for (size_t i = 0; i < s->n; i++) {
		siginfo_t si;

		if (s->st[i] != TS_STOPPED)
			continue;
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)s->tid[i], &si, WEXITED | __WALL | WNOWAIT | WNOHANG) < 0 ||
		    !si.si_pid)
			continue;
		if (!(s->child && s->tid[i] == s->pid))
			waitpid(s->tid[i], NULL, __WALL | WNOHANG);
		s->st[i] = TS_GONE;
	}
}

/*
 * Collect the stops of every pending thread of @s.  @on_stop (may be
 * NULL) is called for each thread as soon as its stop is seen.  Returns
 * 0 or the first -errno; every seized thread is stopped or gone on
 * return, whatever the result.
 */
static int collect(struct stopset *s, void (*on_stop)(struct stopset *, size_t, void *), void *arg)
{
	uint64_t cap = pt__now_ns() + POLL_CAP_NS, busy_until = pt__now_ns() + SPIN_NS;
	unsigned idle = 0;
	bool warned = false;
	int err = 0;

	while (s->pending) {
		bool late = pt__now_ns() > cap, progress = false;

		if (late && !warned) {
			pt__log(PT_LOG_WARN, "pid %d: %zu thread(s) not stopped after %llu s "
				"(in disk sleep?): waiting for them", (int)s->pid, s->pending,
				POLL_CAP_NS / 1000000000ull);
			warned = true;
		}
		for (size_t i = 0; i < s->n && s->pending; i++) {
			uint64_t t;
			int r;

			if (s->st[i] != TS_PENDING)
				continue;
			t = pt__now_ns();
			r = poll_one(s, i);
			if (r == 0) {
				s->seen[i] = t;
				continue;
			}
			if (r < 0) {
				/*
				 * Cannot wait for it (should not happen): it is not
				 * ours to release either; count it as gone.
				 */
				if (!err)
					err = r;
				r = 2;
			}
			s->st[i] = r == 1 ? TS_STOPPED : TS_GONE;
			s->pending--;
			progress = true;
			if (r == 1 && on_stop)
				on_stop(s, i, arg);
		}
		if (progress) {
			idle = 0;
			busy_until = pt__now_ns() + SPIN_NS;
		}
		/* a stop often follows within microseconds: sweep again at once, briefly */
		if (s->pending && !progress && pt__now_ns() > busy_until) {
			reap_killed(s);
			if (late) {
				struct timespec ts = { 0, 1000000 };

				nanosleep(&ts, NULL);
			} else {
				backoff(idle++);
			}
		}
	}
	return err;
}

/* The processes this process holds frozen (nesting, freeze.h). */
#define MAX_HELD 16
static pid_t held[MAX_HELD];
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;

static bool held_has(pid_t pid)
{
	bool r = false;

	pthread_mutex_lock(&held_lock);
	for (int i = 0; i < MAX_HELD; i++)
		r |= held[i] == pid;
	pthread_mutex_unlock(&held_lock);
	return r;
}

static void held_set(pid_t pid, pid_t to)
{
	pthread_mutex_lock(&held_lock);
	for (int i = 0; i < MAX_HELD; i++)
		if (held[i] == pid) {
			held[i] = to;
			break;
		}
	pthread_mutex_unlock(&held_lock);
}

int pt__freeze(pid_t pid, struct pt_freeze *fz)
{
	struct stopset s = { .pid = pid, .child = our_child(pid) };
	char path[64];
	bool added = true;
	int err = 0, round;

	memset(fz, 0, sizeof(*fz));
	if (pid > 0 && held_has(pid)) {
		fz->pid = pid;
		fz->nested = true;
		fz->since_ns = pt__now_ns();
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	/* threads may be born until their creator stops: read the list again */
	for (round = 0; round < MAX_ROUNDS && added && !err; round++) {
		DIR *d = opendir(path);
		struct dirent *de;

		if (!d) {
			err = errno == ENOENT ? -ESRCH : -errno;
			break;
		}
		added = false;
		while ((de = readdir(d))) {
			pid_t tid = (pid_t)atoi(de->d_name);
			int r;

			if (tid <= 0 || set_has(&s, tid))
				continue;
			r = seize(&s, tid);
			if (r < 0) {
				err = r;
				break;
			}
			if (r == 0 && !fz->since_ns)
				fz->since_ns = s.seen[s.n - 1];
			added |= r == 0;
		}
		closedir(d);
		int e = collect(&s, NULL, NULL);	/* also after an error: every seized thread */

		if (!err)
			err = e;
		/* a failure with threads stopped: they must all be released (lib/fault.c) */
		if (!err && round == 0)
			err = pt__fault(PT_FAULT_FREEZE);
	}
	if (!err && added)
		err = -EAGAIN;	/* still new threads after MAX_ROUNDS reads */
	/* hand the stopped ones to pt__thaw() */
	for (size_t i = 0; i < s.n; i++) {
		if (s.st[i] != TS_STOPPED)
			continue;
		s.tid[fz->n] = s.tid[i];
		s.sig[fz->n++] = s.sig[i];
	}
	fz->tids = s.tid;
	fz->sigs = s.sig;
	fz->cap = s.cap;
	fz->pid = pid;
	fz->child = s.child;
	free(s.st);
	free(s.seen);
	if (!err && !fz->n)
		err = -ESRCH;
	if (err)
		pt__thaw(fz);
	else
		held_set(0, pid);	/* a full table only loses nesting, never a thaw */
	return err;
}

uint64_t pt__thaw(struct pt_freeze *fz)
{
	uint64_t dt = fz->n ? pt__now_ns() - fz->since_ns : 0;

	if (fz->nested) {
		memset(fz, 0, sizeof(*fz));
		return 0;
	}
	if (fz->n)
		held_set(fz->pid, 0);
	for (size_t i = 0; i < fz->n; i++)
		detach_or_reap(fz->tids[i], fz->sigs[i], fz->child && fz->tids[i] == fz->pid);
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

struct barrier_acc {
	uint64_t max, last;
};

/*
 * Resume a thread as soon as its stop is seen.  It stopped after it was
 * last seen running: the time since then bounds how long it was held.
 */
static void release(struct stopset *s, size_t i, void *arg)
{
	struct barrier_acc *a = arg;
	uint64_t t;

	detach_or_reap(s->tid[i], s->sig[i], s->child && s->tid[i] == s->pid);
	t = pt__now_ns();
	if (t - s->seen[i] > a->max)
		a->max = t - s->seen[i];
	a->last = t;
}

int pt__barrier(pid_t pid, uint64_t *pause_ns, uint64_t *total_ns)
{
	struct stopset s = { .pid = pid, .child = our_child(pid) };
	struct barrier_acc acc = { 0, 0 };
	uint64_t t0 = 0;
	char path[64];
	DIR *d;
	struct dirent *de;
	int err = 0, e;

	*pause_ns = *total_ns = 0;
	if (held_has(pid))
		return 0;	/* frozen by us: every thread is stopped outside system calls */
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	/* threads born meanwhile start in user space: nothing of theirs is in flight */
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		char st;
		int r;

		if (tid <= 0)
			continue;
		/*
		 * Only threads running or in disk sleep: one sleeping
		 * interruptibly, stopped or dead is not inside a system call
		 * that writes into pinned pages (a FUSE direct read is the
		 * exception, doc/tracking.md), and waking it would make some
		 * calls return EINTR (epoll_wait, signal(7)).  A thread in disk
		 * sleep stops only once its system call has returned.
		 */
		st = thread_state(pid, tid);
		if (st != 'R' && st != 'D' && st != 0)
			continue;
		r = seize(&s, tid);
		if (r < 0) {
			err = r;
			break;
		}
		if (r == 0 && !t0)
			t0 = s.seen[s.n - 1];
	}
	closedir(d);
	/* all of them at once; each resumed as soon as it has stopped */
	e = collect(&s, release, &acc);
	if (!err)
		err = e;
	if (!err)
		err = pt__fault(PT_FAULT_BARRIER);
	*pause_ns = acc.max;
	*total_ns = acc.last > t0 && t0 ? acc.last - t0 : 0;
	set_free(&s);
	return err;
}
