/* SPDX-License-Identifier: MIT */
/*
 * The tracker on targets of a shape that used to stall them or take
 * hours to set up: 64 threads spinning and writing memory (every area
 * registration froze them one thread at a time, every collect passed
 * each through a ptrace stop, one at a time), and 4,000 and 32,000
 * separate writable areas (each registration froze the target and
 * re-read all of /proc/PID/maps).  Each step runs under a generous time
 * cap (a watchdog kills the target: the rest of the step is then
 * skipped with the cap as the reason, so a hang ends, and a slow,
 * loaded machine is not a failure), every thread must be running again
 * after it (TracerPid 0,
 * not in tracing stop), signals sent meanwhile must all arrive, and our
 * child's exit status must still be ours.  Times are printed, never
 * asserted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"

#define NTHREADS 64
#define THREAD_BUF (256 * 1024)
#define NCOLLECT 5
#define CAP_S 60
#define NSIG_SENT 20

struct shared {
	volatile uint64_t spins[NTHREADS];	/* iterations of each thread */
	int rt_got;				/* SIGRTMIN handled (atomic) */
	uintptr_t areas;			/* first area; area i at areas + 2 i pages */
};

static struct shared *sh;
static int nareas;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- the targets ---- */

static void *spin_main(void *arg)
{
	volatile unsigned char *buf = fx_map(THREAD_BUF, PROT_READ | PROT_WRITE,
					     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t k = (size_t)(uintptr_t)arg;

	for (uint64_t i = 0;; i++) {
		buf[(i * FX_PAGE + 64) % THREAD_BUF]++;
		sh->spins[k] = i;
	}
	return NULL;
}

static void on_rt(int sig)
{
	(void)sig;
	/* handlers may run on two threads at once (two CPUs): atomic */
	__atomic_fetch_add(&sh->rt_got, 1, __ATOMIC_RELAXED);
}

static void on_usr2(int sig)
{
	(void)sig;
	_exit(42);
}

static void setup_threads(void *arg)
{
	struct sigaction sa = { .sa_handler = on_rt };

	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigaction(SIGRTMIN, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	for (size_t i = 0; i < NTHREADS; i++) {
		pthread_t th;

		if (pthread_create(&th, NULL, spin_main, (void *)(uintptr_t)i))
			_exit(3);
	}
}

/* One-page areas with one-page holes between them: they never merge. */
static void setup_areas(void *arg)
{
	unsigned char *p;

	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	p = mmap(NULL, 2ul * nareas * FX_PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(2);
	for (int i = 0; i < nareas; i++) {
		p[2ul * i * FX_PAGE] = 1;
		if (munmap(p + (2ul * i + 1) * FX_PAGE, FX_PAGE))
			_exit(2);
	}
	sh->areas = (uintptr_t)p;
}

/* Kills @pid after CAP_S seconds: a step that does not end is cut short, not hung. */
static pid_t watchdog(pid_t pid)
{
	pid_t w = fork();

	if (w == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sleep(CAP_S);
		kill(pid, SIGKILL);
		_exit(0);
	}
	return w;
}

/* Did watchdog @*w fire (kill the target)?  Then it is reaped and *w is -1. */
static bool watchdog_fired(pid_t *w)
{
	if (*w > 0 && waitpid(*w, NULL, WNOHANG) == *w) {
		*w = -1;
		return true;
	}
	return false;
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define CAP_WHY \
	"time cap hit first: the watchdog killed the target after " STR(CAP_S) " s (slow machine?)"

static void watchdog_stop(pid_t w)
{
	if (w > 0) {
		kill(w, SIGKILL);
		waitpid(w, NULL, 0);
	}
}

/*
 * Every thread of @pid running again: not traced, not in tracing stop.
 * Returns the number of threads that are not, and the threads seen.
 */
static int threads_held(pid_t pid, int *seen)
{
	char path[64], line[256];
	struct dirent *de;
	int held = 0;
	DIR *d;

	*seen = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, atoi(de->d_name));
		f = fopen(path, "re");
		if (!f)
			continue;
		(*seen)++;
		while (fgets(line, sizeof(line), f)) {
			if (!strncmp(line, "State:", 6) && strchr(line, 't'))
				held += strstr(line, "(tracing stop)") != NULL;
			if (!strncmp(line, "TracerPid:", 10) && atoi(line + 10) != 0)
				held++;
		}
		fclose(f);
	}
	closedir(d);
	return held;
}

static int collect_all(struct pt_tracker *tr, struct pt_dirty *d, size_t cap, size_t *n)
{
	bool more = true;

	*n = 0;
	while (more) {
		int r = pt_tracker_collect(tr, d + *n, cap - *n, &more);

		if (r < 0)
			return r;
		*n += (size_t)r;
		if (*n == cap && more)
			return -ENOBUFS;
	}
	return 0;
}

/* NULL when the probes say @b can track another process, else why not (fixture.c). */
#define N_BUSY 5	/* subtests of busy_threads(), skips included */
#define N_AREAS 2	/* of many_areas() */

static const char *usable(enum pt_track_backend b)
{
	const char *why = NULL;

	return fx_track_backend_usable(b, true, &why) ? NULL : why;
}

/* ---- 64 busy threads ---- */

static void busy_threads(enum pt_track_backend b)
{
	const char *bn = pt_track_backend_name(b), *why = usable(b);
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b };
	struct pt_tracker_stats st = { .sz = sizeof(st) };
	size_t cap = 1 << 16, n;
	struct pt_dirty *d = malloc(cap * sizeof(*d));
	struct pt_tracker *tr;
	pid_t pid, w;
	uint64_t t0, setup_ns, coll_max = 0;
	int held, seen, err = 0, status, i;
	bool all_ok = true;

	if (why) {
		tap_skip_n(N_BUSY, why, "%s: %d busy threads (backend not usable here)", bn, NTHREADS);
		free(d);
		return;
	}
	memset((void *)sh, 0, sizeof(*sh));
	pid = fx_child(setup_threads, NULL);
	if (pid < 0 || !d) {
		tap_ok(0, "%s: start a target with %d busy threads", bn, NTHREADS);
		free(d);
		return;
	}
	usleep(100000);	/* every thread spinning */
	w = watchdog(pid);
	t0 = now_ns();
	tr = pt_tracker_create(pid, &o);
	setup_ns = now_ns() - t0;
	if (!tr && watchdog_fired(&w)) {
		tap_skip_n(N_BUSY, CAP_WHY, "%s: %d busy threads", bn, NTHREADS);
		goto out;
	}
	if (!tap_ok(tr != NULL, "%s: tracker created on %d busy threads (%.1f ms)", bn,
		    NTHREADS, setup_ns / 1e6)) {
		tap_diag("pt_tracker_create: %s", strerror(errno));
		goto out;
	}
	held = threads_held(pid, &seen);
	tap_ok(held == 0 && seen == NTHREADS + 1, "%s: after set-up every thread runs (%d of %d held)",
	       bn, held, seen);
	for (i = 0; i < NCOLLECT && !err; i++) {
		uint64_t t1 = now_ns();

		/* queued signals sent around the collects: each must be delivered */
		for (int k = 0; k < NSIG_SENT / NCOLLECT; k++)
			sigqueue(pid, SIGRTMIN, (union sigval){ 0 });
		err = collect_all(tr, d, cap, &n);
		if (now_ns() - t1 > coll_max)
			coll_max = now_ns() - t1;
		held = threads_held(pid, &seen);
		if (err || held || seen != NTHREADS + 1)
			all_ok = false;
	}
	if (watchdog_fired(&w)) {
		tap_skip_n(N_BUSY - 2, CAP_WHY, "%s: %d busy threads: collects", bn, NTHREADS);
		goto out;
	}
	tap_ok(all_ok, "%s: %d collects, every thread running after each (%s; %d held)",
	       bn, NCOLLECT, err ? strerror(-err) : "ok", held);
	for (int k = 0; k < 200 && __atomic_load_n(&sh->rt_got, __ATOMIC_RELAXED) < NSIG_SENT; k++)
		usleep(5000);
	tap_ok(__atomic_load_n(&sh->rt_got, __ATOMIC_RELAXED) == NSIG_SENT,
	       "%s: %d queued signals sent around the collects, %d delivered", bn, NSIG_SENT,
	       __atomic_load_n(&sh->rt_got, __ATOMIC_RELAXED));
	pt_tracker_stats(tr, &st);
	tap_diag("%s, %d busy threads: set-up %.1f ms, longest collect %.1f ms, pause_ns_max %.3f ms"
		 " (one thread), pause_total_ns_max %.3f ms (all)", bn, NTHREADS, setup_ns / 1e6,
		 coll_max / 1e6, st.pause_ns_max / 1e6, st.pause_total_ns_max / 1e6);
	/* the target exits while it is being tracked: its status stays ours */
	kill(pid, SIGUSR2);
	for (i = 0; i < 20; i++)
		if (collect_all(tr, d, cap, &n) < 0)
			break;
	pt_tracker_free(tr);
	tr = NULL;
	watchdog_stop(w);	/* before the pid can be reused */
	w = -1;
	status = 0;
	err = waitpid(pid, &status, 0) == pid ? 0 : -errno;
	tap_ok(!err && WIFEXITED(status) && WEXITSTATUS(status) == 42,
	       "%s: the target's exit during collects is left to its parent (status %#x)", bn,
	       status);
	pid = -1;
out:
	pt_tracker_free(tr);
	watchdog_stop(w);
	fx_child_kill(pid);
	free(d);
}

/*
 * The target is killed while the tracker is being created on it (its
 * threads frozen, or being stopped): its parent, us, must still be able
 * to reap it.  A thread killed while traced stays a zombie until its
 * tracer waits for it, and the process with it.  Delays spread the kill
 * over the set-up; each wait is bounded (5 s) so a hang fails clearly.
 */
static void killed_in_setup(enum pt_track_backend b)
{
	static const int delays_ms[] = { 1, 5, 20, 50, 100 };
	const char *bn = pt_track_backend_name(b), *why = usable(b);
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b };
	int reaped = 0, n = (int)(sizeof(delays_ms) / sizeof(delays_ms[0]));

	if (why) {
		tap_skip(why, "%s: target killed during set-up (backend not usable here)", bn);
		return;
	}
	for (int i = 0; i < n; i++) {
		pid_t pid = fx_child(setup_threads, NULL), k;
		struct pt_tracker *tr;
		int status = 0;

		if (pid < 0)
			break;
		k = fork();
		if (k == 0) {
			usleep((useconds_t)delays_ms[i] * 1000);
			kill(pid, SIGKILL);
			_exit(0);
		}
		tr = pt_tracker_create(pid, &o);
		waitpid(k, NULL, 0);
		pt_tracker_free(tr);
		for (int t = 0; t < 500; t++) {
			pid_t r = waitpid(pid, &status, WNOHANG);

			if (r == pid) {
				reaped += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
				break;
			}
			usleep(10000);
		}
	}
	tap_ok(reaped == n, "%s: target killed during set-up (%d delays): reaped by its parent %d times",
	       bn, n, reaped);
}

/* ---- many areas ---- */

static long map_count_raised;

static void raise_map_count(long want)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	long cur = 0;

	if (!f)
		return;
	if (fscanf(f, "%ld", &cur) != 1)
		cur = want;
	fclose(f);
	if (cur >= want || !(f = fopen("/proc/sys/vm/max_map_count", "we")))
		return;
	fprintf(f, "%ld\n", want);
	if (fclose(f) == 0 && !map_count_raised)
		map_count_raised = cur;
}

static void restore_map_count(void)
{
	FILE *f;

	if (!map_count_raised || !(f = fopen("/proc/sys/vm/max_map_count", "we")))
		return;
	fprintf(f, "%ld\n", map_count_raised);
	fclose(f);
	map_count_raised = 0;
}

/* Write one byte in every area with process_vm_writev (it faults like the target). */
static int write_areas(pid_t pid)
{
	static struct iovec lo[1024], re[1024];
	static char byte[1024];

	for (int i = 0; i < nareas;) {
		int k = 0;

		for (; k < 1024 && i < nareas; k++, i++) {
			byte[k] = (char)(i | 1);
			lo[k] = (struct iovec){ &byte[k], 1 };
			re[k] = (struct iovec){ (void *)(sh->areas + 2ul * i * FX_PAGE + 16), 1 };
		}
		if (process_vm_writev(pid, lo, (unsigned long)k, re, (unsigned long)k, 0) != k)
			return -errno;
	}
	return 0;
}

static void many_areas(enum pt_track_backend b, int count)
{
	const char *bn = pt_track_backend_name(b), *why = usable(b);
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = b };
	struct pt_tracker_stats st = { .sz = sizeof(st) };
	size_t cap = 1 << 17, n = 0;
	struct pt_dirty *d = malloc(cap * sizeof(*d));
	uint8_t *hit = calloc((size_t)count, 1);
	struct pt_tracker *tr = NULL;
	pid_t pid, w = -1;
	uint64_t t0, setup_ns;
	int err, got = 0;

	if (why) {
		tap_skip_n(N_AREAS, why, "%s: %d areas (backend not usable here)", bn, count);
		goto out_free;
	}
	nareas = count;
	raise_map_count(count + 4096L);	/* one VMA an area, and the rest */
	sh->areas = 0;
	pid = fx_child(setup_areas, NULL);
	if (pid < 0 || !sh->areas || !d || !hit) {
		tap_ok(0, "%s: start a target with %d separate areas", bn, count);
		fx_child_kill(pid);
		goto out_free;
	}
	w = watchdog(pid);
	t0 = now_ns();
	tr = pt_tracker_create(pid, &o);
	setup_ns = now_ns() - t0;
	if (!tr && watchdog_fired(&w)) {
		tap_skip_n(N_AREAS, CAP_WHY, "%s: %d areas", bn, count);
		goto out;
	}
	if (!tap_ok(tr != NULL, "%s: tracker created on %d areas (%.1f ms)", bn, count,
		    setup_ns / 1e6)) {
		tap_diag("pt_tracker_create: %s", strerror(errno));
		goto out;
	}
	err = write_areas(pid);
	if (!err)
		err = collect_all(tr, d, cap, &n);
	for (size_t i = 0; !err && i < n; i++)
		for (uint64_t a = d[i].start; a < d[i].end; a += FX_PAGE) {
			uint64_t off = a - sh->areas;

			if (a < sh->areas || off >= 2ul * count * FX_PAGE || (off / FX_PAGE) % 2)
				continue;
			got += !hit[off / FX_PAGE / 2];
			hit[off / FX_PAGE / 2] = 1;
		}
	if (watchdog_fired(&w)) {
		tap_skip(CAP_WHY, "%s: one page written in each of %d areas", bn, count);
		goto out;
	}
	tap_ok(!err && got == count, "%s: one page written in each of %d areas, %d reported (%s)", bn,
	       count, got, err ? strerror(-err) : "ok");
	pt_tracker_stats(tr, &st);
	tap_diag("%s, %d areas: set-up %.1f ms (%.2f us per area), pause_ns_max %.3f ms", bn, count,
		 setup_ns / 1e6, setup_ns / 1e3 / count, st.pause_ns_max / 1e6);
out:
	pt_tracker_free(tr);
	watchdog_stop(w);
	fx_child_kill(pid);
	restore_map_count();
out_free:
	free(d);
	free(hit);
}

int main(void)
{
	static const enum pt_track_backend bs[] = { PT_TRACK_UFFD, PT_TRACK_SOFTDIRTY };

	sh = fx_map(sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	/* per backend: busy threads, killed in set-up (1), 4,000 and 32,000 areas */
	tap_plan((int)(sizeof(bs) / sizeof(bs[0])) * (N_BUSY + 1 + 2 * N_AREAS));
	for (size_t i = 0; i < sizeof(bs) / sizeof(bs[0]); i++) {
		busy_threads(bs[i]);
		killed_in_setup(bs[i]);
		many_areas(bs[i], 4000);
		many_areas(bs[i], 32000);
	}
	restore_map_count();
	return tap_done();
}
