// SPDX-License-Identifier: MIT
/*
 * Taking CPU away from a target (lib/process/throttle.h).
 *
 * cgroup mode: a cgroup "pagetrack-OWNER-RAND" (OWNER = the caller's pid)
 * at the root of the cgroup v2 hierarchy (its cpu controller enabled in
 * the root's cgroup.subtree_control if it is not), or, when the cpu
 * controller is bound to a cgroup v1 hierarchy instead (hybrid systems),
 * at the root of that "cpu" hierarchy.  The target's processes are moved
 * in by writing its pid to cgroup.procs (all its threads follow); the
 * cgroup it came from (/proc/PID/cgroup) is remembered, also in the
 * xattr trusted.pagetrack.origin of the new cgroup when the filesystem
 * takes it, so that a later start can put them back after a crash.
 *
 * The quota for @percent taken is (100 - percent)% of one 100 ms period
 * times the number of CPUs the target could use: its thread count capped
 * by its CPU affinity, counted at each pt__throttle_set().  A quota of
 * (100 - p)% of one period times every online CPU would not slow a
 * single-threaded target at all; counting threads means "the target
 * runs (100 - p)% of what it could run".
 *
 * signal mode: a thread of the caller sends SIGSTOP for p ms of each
 * 100 ms period and SIGCONT for the rest; the target is never left
 * stopped (the thread and every restore path send SIGCONT when the last
 * signal sent was SIGSTOP).
 *
 * The guardian: a child forked at start, with PR_SET_PDEATHSIG, that
 * waits on a pipe from the caller.  When the caller dies (the pipe's
 * write end closes, the death signal arrives or its parent changes) it
 * runs the same restore as pt__throttle_stop(): quota removed, processes
 * moved back, cgroup removed, SIGCONT.  The restore is written with
 * async-signal-safe calls only (the caller may have threads) over paths
 * and a buffer prepared before fork, and is idempotent, so the caller
 * and the guardian may both run it.
 */
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "pt_internal.h"
#include "process/throttle.h"

#define PERIOD_US 100000u
#define PERIOD_MS 100u
#define ORIGIN_XATTR "trusted.pagetrack.origin"
#define PROCS_BUF 65536

struct shared {
	atomic_int stopped;	/* the last signal sent was SIGSTOP */
};

struct pt__throttle {
	pid_t pid;
	enum pt__throttle_mode mode;
	unsigned percent;
	char why[192];

	int cgv;			/* 0, 1 (v1 cpu) or 2 */
	char dir[PATH_MAX];		/* our cgroup */
	char procs[PATH_MAX];		/* its cgroup.procs */
	char quota[PATH_MAX];		/* cpu.max or cpu.cfs_quota_us */
	char origin_procs[PATH_MAX];	/* where the target came from */
	char root_procs[PATH_MAX];	/* the hierarchy's root, if that fails */
	char *buf;			/* PROCS_BUF bytes, for the restore */

	struct shared *sh;
	pthread_t thr;
	bool thr_started, quit;
	pthread_mutex_t mu;
	pthread_cond_t cv;

	pid_t guardian;
	int pipe_wr;
};

__attribute__((format(printf, 3, 4)))
static int fmt(char *out, size_t sz, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(out, sz, f, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= sz ? -ENAMETOOLONG : 0;
}

/* ---- async-signal-safe helpers (used by the guardian) ---- */

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static size_t fmt_u(char *out, unsigned long v)
{
	char tmp[24];
	size_t n = 0, i = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		out[i++] = tmp[--n];
	out[i] = 0;
	return i;
}

/* Move every process listed in @from (a cgroup.procs) to @to, else @alt. Returns how many were listed. */
static int move_all(const char *from, const char *to, const char *alt, char *buf)
{
	int fd = open(from, O_RDONLY | O_CLOEXEC), to_fd, alt_fd, listed = 0;
	size_t len = 0;
	ssize_t r;

	if (fd < 0)
		return 0;
	while (len < PROCS_BUF - 1 && (r = read(fd, buf + len, PROCS_BUF - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	buf[len] = 0;
	to_fd = to[0] ? open(to, O_WRONLY | O_CLOEXEC) : -1;
	alt_fd = alt[0] ? open(alt, O_WRONLY | O_CLOEXEC) : -1;
	for (char *p = buf; *p; ) {
		char *s = p;

		while (*p && *p != '\n')
			p++;
		if (p == s) {
			p++;
			continue;
		}
		listed++;
		if ((to_fd < 0 || write(to_fd, s, (size_t)(p - s)) < 0) && alt_fd >= 0)
			(void)!write(alt_fd, s, (size_t)(p - s));
		if (*p)
			p++;
	}
	if (to_fd >= 0)
		close(to_fd);
	if (alt_fd >= 0)
		close(alt_fd);
	return listed;
}

/* Unthrottle, move back, remove, SIGCONT.  Idempotent; async-signal-safe. */
static int restore(struct pt__throttle *t)
{
	int rc = 0;

	if (t->cgv) {
		(void)write_str(t->quota, t->cgv == 2 ? "max" : "-1");
		for (int i = 0; i < 8 && move_all(t->procs, t->origin_procs, t->root_procs, t->buf); i++)
			;
		if (rmdir(t->dir) < 0 && errno != ENOENT)
			rc = -errno;
	}
	if (t->sh && atomic_exchange(&t->sh->stopped, 0))
		kill(t->pid, SIGCONT);
	return rc;
}

/* ---- the guardian ---- */

static void on_usr1(int sig)
{
	(void)sig;
}

static __attribute__((noreturn)) void guardian_main(struct pt__throttle *t, int rd, pid_t parent)
{
	static const int ignored[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGPIPE };
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigset_t none;

	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		signal(ignored[i], SIG_IGN);
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGUSR1);
	/* Nothing but our pipe: a writer's end kept open here would hide the caller's death. */
	if (rd > 3)
		close_range(3, (unsigned)rd - 1, 0);
	close_range((unsigned)rd + 1, ~0u, 0);
	for (;;) {
		struct pollfd pfd = { .fd = rd, .events = POLLIN };
		char c;

		if (getppid() != parent)
			break;
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		if (read(rd, &c, 1) == 1) {
			if (c == 'q')
				_exit(0);
			continue;
		}
		break;		/* EOF: every writer is gone */
	}
	restore(t);
	_exit(0);
}

static int start_guardian(struct pt__throttle *t)
{
	int p[2];
	pid_t self = getpid(), g;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	g = fork();
	if (g < 0) {
		int e = errno;

		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (g == 0) {
		close(p[1]);
		guardian_main(t, p[0], self);
	}
	close(p[0]);
	t->guardian = g;
	t->pipe_wr = p[1];
	return 0;
}

static int stop_guardian(struct pt__throttle *t);

/* ---- cgroup discovery ---- */

static bool has_token(const char *list, const char *tok, const char *seps)
{
	size_t n = strlen(tok);

	for (const char *p = list; *p; ) {
		size_t l = strcspn(p, seps);

		if (l == n && !strncmp(p, tok, n))
			return true;
		p += l;
		if (*p)
			p++;
	}
	return false;
}

/* Mount points of the cgroup2 hierarchy and of the v1 hierarchy with "cpu" (empty if none). */
static void find_mounts(char *v2, char *v1cpu, size_t sz)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];

	v2[0] = v1cpu[0] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char root[PATH_MAX], mnt[PATH_MAX], fstype[64], src[PATH_MAX], opts[1024];
		char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2 ||
		    sscanf(dash + 3, "%63s %4095s %1023s", fstype, src, opts) != 3 || strcmp(root, "/"))
			continue;
		if (!strcmp(fstype, "cgroup2") && !v2[0])
			fmt(v2, sz, "%s", mnt);
		else if (!strcmp(fstype, "cgroup") && has_token(opts, "cpu", ",") && !v1cpu[0])
			fmt(v1cpu, sz, "%s", mnt);
	}
	fclose(f);
}

static int read_small(const char *path, char *buf, size_t sz)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return -errno;
	r = read(fd, buf, sz - 1);
	close(fd);
	if (r < 0)
		return -errno;
	buf[r] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* The target's cgroup path in hierarchy @v (2, or 1 = the one with "cpu"). */
static int target_cgroup(pid_t pid, int v, char *out, size_t sz)
{
	char path[64], line[4096];
	FILE *f;
	int rc = -ENOENT;

	fmt(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2)
			continue;
		*c2 = 0;
		c2[1 + strcspn(c2 + 1, "\n")] = 0;
		if ((v == 2 && !strcmp(line, "0") && c1[1] == 0) ||
		    (v == 1 && strcmp(line, "0") && has_token(c1 + 1, "cpu", ","))) {
			fmt(out, sz, "%s", c2 + 1);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

static int procs_path(char *out, const char *mnt, const char *cg)
{
	int n = fmt(out, PATH_MAX, "%s%s%scgroup.procs", mnt, cg,
			 cg[strlen(cg) - 1] == '/' ? "" : "/");

	return n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Set up cgroup @v under @mnt and move the target in; fills t->why on failure. */
static int cgroup_setup(struct pt__throttle *t, int v, const char *mnt)
{
	char origin[PATH_MAX], ctl[PATH_MAX + 32], buf[512], pidbuf[24];
	uint32_t rnd = 0;
	int rc;

	if (v == 2) {
		fmt(ctl, sizeof(ctl), "%s/cgroup.controllers", mnt);
		if (read_small(ctl, buf, sizeof(buf)) < 0 || !has_token(buf, "cpu", " ")) {
			fmt(t->why, sizeof(t->why),
				 "the cgroup v2 cpu controller is not available at %s (bound to v1?)", mnt);
			return -EOPNOTSUPP;
		}
		fmt(ctl, sizeof(ctl), "%s/cgroup.subtree_control", mnt);
		if (read_small(ctl, buf, sizeof(buf)) < 0 || !has_token(buf, "cpu", " ")) {
			rc = write_str(ctl, "+cpu");
			if (rc < 0) {
				fmt(t->why, sizeof(t->why),
					 "cannot enable the cpu controller in %s: %s", ctl, strerror(-rc));
				return rc;
			}
		}
	}
	rc = target_cgroup(t->pid, v, origin, sizeof(origin));
	if (rc < 0) {
		fmt(t->why, sizeof(t->why), "cannot read the target's cgroup: %s", strerror(-rc));
		return rc;
	}
	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	if (fmt(t->dir, sizeof(t->dir), "%s/pagetrack-%d-%08x", mnt, (int)getpid(), rnd) >= PATH_MAX ||
	    procs_path(t->origin_procs, mnt, origin) < 0 || procs_path(t->root_procs, mnt, "/") < 0)
		return -ENAMETOOLONG;
	fmt(t->procs, sizeof(t->procs), "%s/cgroup.procs", t->dir);
	fmt(t->quota, sizeof(t->quota), "%s/%s", t->dir, v == 2 ? "cpu.max" : "cpu.cfs_quota_us");
	if (mkdir(t->dir, 0755) < 0) {
		rc = -errno;
		fmt(t->why, sizeof(t->why), "cannot create %s: %s", t->dir, strerror(-rc));
		t->dir[0] = 0;
		return rc;
	}
	(void)setxattr(t->dir, ORIGIN_XATTR, origin, strlen(origin), 0);
	t->cgv = v;
	if (access(t->quota, W_OK) < 0) {
		rc = -errno;
		fmt(t->why, sizeof(t->why), "no %s: %s", t->quota, strerror(-rc));
		goto undo;
	}
	if (v == 1) {
		fmt(ctl, sizeof(ctl), "%s/cpu.cfs_period_us", t->dir);
		(void)write_str(ctl, "100000");
	}
	/* The guardian before the move: from now on a crash puts the target back. */
	rc = start_guardian(t);
	if (rc < 0) {
		fmt(t->why, sizeof(t->why), "cannot fork the guardian: %s", strerror(-rc));
		goto undo;
	}
	fmt_u(pidbuf, (unsigned long)t->pid);
	rc = write_str(t->procs, pidbuf);
	if (rc < 0) {
		fmt(t->why, sizeof(t->why), "cannot move the target into %s: %s", t->dir, strerror(-rc));
		goto undo;
	}
	fmt(t->why, sizeof(t->why), "cgroup %s (%s)", v == 2 ? "v2" : "v1 cpu", t->dir);
	return 0;
undo:
	restore(t);
	stop_guardian(t);
	t->cgv = 0;
	return rc;
}

/* ---- signal mode ---- */

static void wait_ms(struct pt__throttle *t, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	while (!t->quit && pthread_cond_timedwait(&t->cv, &t->mu, &ts) != ETIMEDOUT)
		;
}

static void *duty_cycle(void *arg)
{
	struct pt__throttle *t = arg;

	pthread_mutex_lock(&t->mu);
	for (;;) {
		unsigned p;

		while (!t->quit && !t->percent)
			pthread_cond_wait(&t->cv, &t->mu);
		if (t->quit)
			break;
		p = t->percent;
		atomic_store(&t->sh->stopped, 1);
		if (kill(t->pid, SIGSTOP) < 0) {
			atomic_store(&t->sh->stopped, 0);
			break;		/* gone */
		}
		wait_ms(t, p * PERIOD_MS / 100);
		if (atomic_exchange(&t->sh->stopped, 0))
			kill(t->pid, SIGCONT);
		if (!t->quit)
			wait_ms(t, (100 - p) * PERIOD_MS / 100);
	}
	pthread_mutex_unlock(&t->mu);
	if (atomic_exchange(&t->sh->stopped, 0))
		kill(t->pid, SIGCONT);
	return NULL;
}

/* ---- the API ---- */

/* CPUs the target could use: its threads, capped by its affinity. */
static unsigned target_cpus(pid_t pid)
{
	char path[64];
	cpu_set_t set;
	unsigned threads = 0, cpus;
	DIR *d;
	struct dirent *e;

	fmt(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (d) {
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				threads++;
		closedir(d);
	}
	cpus = sched_getaffinity(pid, sizeof(set), &set) == 0 ? (unsigned)CPU_COUNT(&set)
							      : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (!threads || threads > cpus)
		threads = cpus;
	return threads ? threads : 1;
}

PT_HIDDEN int pt__throttle_set(struct pt__throttle *t, unsigned percent)
{
	if (!t || percent > 99)
		return -EINVAL;
	if (t->cgv) {
		char val[64];
		unsigned long quota = (unsigned long)(100 - percent) * PERIOD_US / 100 * target_cpus(t->pid);
		int rc;

		if (quota < 1000)
			quota = 1000;
		if (!percent)
			fmt(val, sizeof(val), t->cgv == 2 ? "max %u" : "-1", PERIOD_US);
		else if (t->cgv == 2)
			fmt(val, sizeof(val), "%lu %u", quota, PERIOD_US);
		else
			fmt(val, sizeof(val), "%lu", quota);
		rc = write_str(t->quota, val);
		if (rc < 0)
			return rc;
		t->percent = percent;
		return 0;
	}
	pthread_mutex_lock(&t->mu);
	t->percent = percent;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return 0;
}

PT_HIDDEN unsigned pt__throttle_get(const struct pt__throttle *t)
{
	return t ? t->percent : 0;
}

PT_HIDDEN enum pt__throttle_mode pt__throttle_mode(const struct pt__throttle *t)
{
	return t ? t->mode : PT_THROTTLE_AUTO;
}

PT_HIDDEN const char *pt__throttle_why(const struct pt__throttle *t)
{
	return t ? t->why : "";
}

PT_HIDDEN pid_t pt__throttle_guardian(const struct pt__throttle *t)
{
	return t ? t->guardian : -1;
}

PT_HIDDEN const char *pt__throttle_cgroup(const struct pt__throttle *t)
{
	return t && t->cgv ? t->dir : NULL;
}

static int stop_guardian(struct pt__throttle *t)
{
	if (t->pipe_wr >= 0) {
		(void)!write(t->pipe_wr, "q", 1);
		close(t->pipe_wr);
		t->pipe_wr = -1;
	}
	if (t->guardian > 0) {
		while (waitpid(t->guardian, NULL, 0) < 0 && errno == EINTR)
			;
		t->guardian = -1;
	}
	return 0;
}

PT_HIDDEN int pt__throttle_stop(struct pt__throttle *t)
{
	int rc;

	if (!t)
		return 0;
	if (t->thr_started) {
		pthread_mutex_lock(&t->mu);
		t->quit = true;
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
		pthread_join(t->thr, NULL);
	}
	rc = restore(t);
	stop_guardian(t);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	if (t->sh)
		munmap(t->sh, sizeof(*t->sh));
	free(t->buf);
	free(t);
	return rc;
}

PT_HIDDEN int pt__throttle_start(pid_t pid, enum pt__throttle_mode mode, struct pt__throttle **out)
{
	struct pt__throttle *t;
	char v2[PATH_MAX], v1[PATH_MAX];
	pthread_condattr_t ca;
	int rc = -EOPNOTSUPP;

	/* not the caller: a SIGSTOP would stop the duty cycle itself */
	if (!out || pid <= 0 || pid == getpid() || mode > PT_THROTTLE_SIGNAL)
		return -EINVAL;
	*out = NULL;
	if (kill(pid, 0) < 0)
		return -errno;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->pid = pid;
	t->pipe_wr = -1;
	t->guardian = -1;
	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	t->buf = malloc(PROCS_BUF);
	t->sh = mmap(NULL, sizeof(*t->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!t->buf || t->sh == MAP_FAILED) {
		t->sh = NULL;
		rc = -ENOMEM;
		goto fail;
	}

	if (mode != PT_THROTTLE_SIGNAL) {
		pt__throttle_cleanup();
		find_mounts(v2, v1, sizeof(v2));
		fmt(t->why, sizeof(t->why), "no cgroup v2 or v1 cpu hierarchy is mounted");
		if (v2[0])
			rc = cgroup_setup(t, 2, v2);
		if (rc < 0 && v1[0]) {
			char why2[sizeof(t->why)];

			fmt(why2, sizeof(why2), "%s", t->why);
			rc = cgroup_setup(t, 1, v1);
			if (rc < 0 && v2[0]) {
				size_t n = strlen(why2);

				fmt(why2 + n, sizeof(why2) - n, "; %s", t->why);
				fmt(t->why, sizeof(t->why), "%s", why2);
			}
		}
		if (rc == 0) {
			t->mode = PT_THROTTLE_CGROUP;
			*out = t;
			return 0;
		}
		if (mode == PT_THROTTLE_CGROUP)
			goto fail;
	}
	if (mode == PT_THROTTLE_SIGNAL) {
		fmt(t->why, sizeof(t->why), "signal mode asked");
	} else {
		char why2[sizeof(t->why)];

		fmt(why2, sizeof(why2), "signal (cgroup unusable: %s)", t->why);
		fmt(t->why, sizeof(t->why), "%s", why2);
	}
	t->mode = PT_THROTTLE_SIGNAL;
	rc = start_guardian(t);
	if (rc < 0)
		goto fail;
	rc = -pthread_create(&t->thr, NULL, duty_cycle, t);
	if (rc < 0)
		goto fail;
	t->thr_started = true;
	*out = t;
	return 0;
fail:
	pt__throttle_stop(t);
	return rc;
}

/* ---- leftovers ---- */

static int cleanup_in(const char *mnt, int v)
{
	DIR *d = opendir(mnt);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		struct pt__throttle t = { .cgv = v };
		char origin[PATH_MAX];
		unsigned rnd;
		int owner, end = 0;
		ssize_t l;

		if (sscanf(e->d_name, "pagetrack-%d-%x%n", &owner, &rnd, &end) != 2 ||
		    e->d_name[end] || owner <= 0 || kill(owner, 0) == 0 || errno == EPERM)
			continue;
		fmt(t.dir, sizeof(t.dir), "%s/%s", mnt, e->d_name);
		fmt(t.procs, sizeof(t.procs), "%s/cgroup.procs", t.dir);
		fmt(t.quota, sizeof(t.quota), "%s/%s", t.dir, v == 2 ? "cpu.max" : "cpu.cfs_quota_us");
		procs_path(t.root_procs, mnt, "/");
		l = getxattr(t.dir, ORIGIN_XATTR, origin, sizeof(origin) - 1);
		if (l > 0) {
			origin[l] = 0;
			procs_path(t.origin_procs, mnt, origin);
		}
		t.buf = malloc(PROCS_BUF);
		if (!t.buf)
			break;
		if (restore(&t) == 0)
			n++;
		free(t.buf);
	}
	closedir(d);
	return n;
}

PT_HIDDEN int pt__throttle_cleanup(void)
{
	char v2[PATH_MAX], v1[PATH_MAX];
	int n = 0;

	find_mounts(v2, v1, sizeof(v2));
	if (v2[0])
		n += cleanup_in(v2, 2);
	if (v1[0])
		n += cleanup_in(v1, 1);
	return n;
}
