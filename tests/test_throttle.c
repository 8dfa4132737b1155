// SPDX-License-Identifier: MIT
/*
 * The throttle module (lib/process/throttle.h): a busy child's CPU time
 * per period drops to roughly the level set, in both modes; stop puts it
 * back (cgroup, not stopped, full speed); a SIGKILLed throttler leaves
 * the target running unthrottled (its guardian restores); a leftover
 * cgroup whose owner and guardian were both killed is cleaned up.
 *
 * CPU time is read from /proc/PID/stat over a fixed number of 100 ms
 * periods; the bounds are loose (other tests share the machine), a rate
 * check is measured again (up to 3 times) while it fails, and a machine
 * too busy to give the child most of a CPU skips the rate checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "fixture.h"
#include "process/throttle.h"

#define PERIODS 10

static pid_t busy_child(void)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		volatile unsigned long x = 0;
		int fd;

		/*
		 * A shared machine: its own autogroup (session) with a higher
		 * priority, so that its unthrottled rate is near a full CPU.
		 */
		setsid();
		fd = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!write(fd, "-10", 3);
			close(fd);
		}
		setpriority(PRIO_PROCESS, 0, -10);

		for (;;)
			x++;
	}
	return pid;
}

/* utime + stime in ms, and the state letter. */
static long cpu_ms(pid_t pid, char *state)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 state ? state : &(char){0}, &ut, &st) != 3)
		return -1;
	return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

static char state_of(pid_t pid)
{
	char s = '?';

	cpu_ms(pid, &s);
	return s;
}

/* CPU fraction of @pid over PERIODS periods of 100 ms. */
static double cpu_frac(pid_t pid)
{
	struct timespec a, b, d = { 0, 100 * 1000000L };
	long c0, c1;

	clock_gettime(CLOCK_MONOTONIC, &a);
	c0 = cpu_ms(pid, NULL);
	for (int i = 0; i < PERIODS; i++)
		nanosleep(&d, NULL);
	c1 = cpu_ms(pid, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(c1 - c0) /
	       ((double)(b.tv_sec - a.tv_sec) * 1000 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
}

/* The target's cgroup line for hierarchy v2 ("0::") or the one with cpu. */
static void cgroup_of(pid_t pid, char *out, size_t sz)
{
	char path[64], line[1024];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	out[0] = 0;
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "0::", 3) || strstr(line, ":cpu:") || strstr(line, ":cpu,"))
			snprintf(out + strlen(out), sz - strlen(out), "%s|", line);
	}
	fclose(f);
}

static bool gone(const char *dir)
{
	struct stat st;

	return stat(dir, &st) < 0 && errno == ENOENT;
}

static const char *mode_name(enum pt__throttle_mode m)
{
	return m == PT_THROTTLE_CGROUP ? "cgroup" : "signal";
}

/* nr_throttled of cgroup @dir's cpu.stat (v1 and v2 alike), -1 if unreadable. */
static long nr_throttled(const char *dir)
{
	char path[4200], line[256];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cpu.stat", dir);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "nr_throttled %ld", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

/*
 * CPU fraction of @pid, measured again (at most 3 times) while under
 * @want: the load of a shared machine comes and goes; a target left
 * throttled stays under it every time.
 */
static double cpu_frac_retry(pid_t pid, double want)
{
	double f = cpu_frac(pid);

	for (int i = 0; i < 2 && f < want; i++)
		f = cpu_frac(pid);
	return f;
}

static double baseline;
static char own_cg[4096];

/* 7 subtests. */
static void test_mode(pid_t pid, enum pt__throttle_mode mode)
{
	struct pt__throttle *t = NULL;
	char before[1024], during[1024], after[1024], dir[4096] = "";
	const char *m = mode_name(mode);
	double f50, f80, fafter;
	int rc;

	baseline = cpu_frac(pid);

	cgroup_of(pid, before, sizeof(before));
	rc = pt__throttle_start(pid, mode, &t);
	if (rc == -EOPNOTSUPP) {
		tap_skip_n(7, "no usable cgroup v2 or v1 cpu controller", "%s mode", m);
		return;
	}
	tap_ok(rc == 0 && pt__throttle_mode(t) == mode, "%s: start (%s)", m, rc ? strerror(-rc) : pt__throttle_why(t));
	if (rc) {
		tap_skip_n(6, "start failed", "%s mode", m);
		return;
	}
	if (mode == PT_THROTTLE_CGROUP) {
		snprintf(dir, sizeof(dir), "%s", pt__throttle_cgroup(t));
		cgroup_of(pid, during, sizeof(during));
		tap_ok(strstr(during, strrchr(dir, '/')) != NULL, "cgroup: target moved into %s (%s)", dir, during);
	} else {
		tap_ok(pt__throttle_guardian(t) > 0, "signal: guardian %d", (int)pt__throttle_guardian(t));
	}
	/*
	 * Signal mode takes p% of whatever the child gets, cgroup mode caps it
	 * at (100-p)% of a CPU: both give f80 <= 0.3 and well under the
	 * unthrottled rate, and f50 clearly above f80, once the child gets
	 * 0.6 of a CPU or more unthrottled (it has the highest weight: less
	 * means a very busy machine).  The bounds depend on the load staying
	 * alike over the measurements, and in signal mode on the throttler
	 * itself getting a CPU on time: up to 3 tries.
	 * In cgroup mode the child leaves its own high-weight cgroup: under
	 * load it may get less than its 50% quota, so f50 says nothing of
	 * the quota unless the cgroup was throttled (cpu.stat nr_throttled)
	 * in at least 8 of the 10 periods measured.
	 */
	long thr50 = -1;

	for (int tries = 0; tries < 3; tries++) {
		long n0 = dir[0] ? nr_throttled(dir) : -1;

		pt__throttle_set(t, 50);
		f50 = cpu_frac(pid);
		thr50 = dir[0] && n0 >= 0 && nr_throttled(dir) >= 0 ? nr_throttled(dir) - n0 : -1;
		pt__throttle_set(t, 80);
		f80 = cpu_frac(pid);
		if (f80 <= 0.3 && f80 <= 0.6 * baseline && f50 <= 0.6 && f50 >= 1.5 * f80)
			break;
	}
	if (baseline < 0.6) {
		tap_skip_n(2, "machine too busy: the child ran under 0.6 of a CPU unthrottled", "%s rates", m);
	} else {
		tap_ok(f80 <= 0.3 && f80 <= 0.6 * baseline, "%s 80%%: %.2f of a CPU (unthrottled %.2f)", m, f80, baseline);
		if (f50 < 1.5 * f80 && thr50 >= 0 && thr50 < PERIODS * 8 / 10)
			tap_skip("machine too busy: at 50% the child did not use its quota (throttled "
				 "in under 8 of 10 periods)", "%s 50%%: %.2f of a CPU (80%%: %.2f, "
				 "throttled in %ld periods)", m, f50, f80, thr50);
		else
			tap_ok(f50 <= 0.6 && f50 >= 1.5 * f80, "%s 50%%: %.2f of a CPU (80%%: %.2f, "
			       "unthrottled %.2f)", m, f50, f80, baseline);
	}
	tap_ok(pt__throttle_get(t) == 80, "%s: get = %u", m, pt__throttle_get(t));
	rc = pt__throttle_stop(t);
	cgroup_of(pid, after, sizeof(after));
	tap_ok(rc == 0 && state_of(pid) != 'T' && !strcmp(before, after) && (!dir[0] || gone(dir)),
	       "%s: stop restores (rc %d, state %c, cgroup %s -> %s)", m, rc, state_of(pid), before, after);
	fafter = cpu_frac_retry(pid, 0.5 * baseline);
	if (baseline < 0.6)
		tap_skip("machine too busy", "%s after stop", m);
	else
		tap_ok(fafter >= 0.5 * baseline, "%s: after stop %.2f of a CPU (unthrottled %.2f)", m, fafter, baseline);
}

struct report {
	int rc;
	pid_t guardian;
	char dir[4096];
};

/* Fork a throttler of @pid at 80%; it reports through @pfd and waits to be killed. */
static pid_t throttler(pid_t pid, enum pt__throttle_mode mode, struct report *r)
{
	int p[2];
	pid_t tp;

	if (pipe(p))
		return -1;
	fflush(stdout);
	tp = fork();
	if (tp == 0) {
		struct pt__throttle *t = NULL;
		struct report out = { 0 };

		close(p[0]);
		out.rc = pt__throttle_start(pid, mode, &t);
		if (!out.rc) {
			out.guardian = pt__throttle_guardian(t);
			if (pt__throttle_cgroup(t))
				snprintf(out.dir, sizeof(out.dir), "%s", pt__throttle_cgroup(t));
			pt__throttle_set(t, 80);
		}
		if (write(p[1], &out, sizeof(out)) != sizeof(out))
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	if (tp < 0 || read(p[0], r, sizeof(*r)) != sizeof(*r)) {
		close(p[0]);
		if (tp > 0) {
			kill(tp, SIGKILL);
			waitpid(tp, NULL, 0);
		}
		return -1;
	}
	close(p[0]);
	return tp;
}

/* Wait for @pid (not our child) to exit; false when the cap passed first. */
static bool wait_exit(pid_t pid, int cap_ms)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd pfd;
	int rc;

	if (fd < 0)
		return errno == ESRCH;
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	rc = poll(&pfd, 1, cap_ms);
	close(fd);
	return rc == 1;
}

/* 3 subtests. */
static void test_kill(pid_t pid, enum pt__throttle_mode mode)
{
	const char *m = mode_name(mode);
	char before[1024], after[1024];
	struct report r;
	pid_t tp;
	double f;

	cgroup_of(pid, before, sizeof(before));
	tp = throttler(pid, mode, &r);
	if (tp < 0 || r.rc) {
		if (tp > 0) {
			kill(tp, SIGKILL);
			waitpid(tp, NULL, 0);
		}
		if (r.rc == -EOPNOTSUPP)
			tap_skip_n(3, "no usable cgroup v2 or v1 cpu controller", "%s: SIGKILL of the throttler", m);
		else
			for (int i = 0; i < 3; i++)
				tap_ok(0, "%s: throttler did not start (%d)", m, tp < 0 ? -1 : r.rc);
		return;
	}
	/* In signal mode, kill it while the target is stopped (bounded wait: 400 polls of 1 ms). */
	for (int i = 0; i < 400 && mode == PT_THROTTLE_SIGNAL && state_of(pid) != 'T'; i++)
		usleep(1000);
	kill(tp, SIGKILL);
	waitpid(tp, NULL, 0);
	if (!wait_exit(r.guardian, 10000)) {
		tap_skip_n(3, "the guardian did not exit within 10 s (time cap)", "%s: SIGKILL of the throttler", m);
		return;
	}
	cgroup_of(pid, after, sizeof(after));
	tap_ok(state_of(pid) != 'T', "%s: after SIGKILL of the throttler the target is not stopped (%c)", m, state_of(pid));
	tap_ok(!strcmp(before, after) && (!r.dir[0] || gone(r.dir)),
	       "%s: back in its cgroup, ours removed (%s -> %s)", m, before, after);
	f = cpu_frac_retry(pid, 0.5 * baseline);
	if (baseline < 0.6)
		tap_skip("machine too busy", "%s: unthrottled after SIGKILL", m);
	else
		tap_ok(f >= 0.5 * baseline, "%s: runs unthrottled again: %.2f of a CPU (unthrottled %.2f)", m, f, baseline);
}

/* 3 subtests: throttler and guardian both killed, the next start cleans up. */
static void test_leftover(pid_t pid)
{
	char before[1024], after[1024];
	struct report r;
	pid_t tp;
	int n;
	double f;

	cgroup_of(pid, before, sizeof(before));
	tp = throttler(pid, PT_THROTTLE_CGROUP, &r);
	if (tp < 0 || r.rc) {
		if (tp > 0) {
			kill(tp, SIGKILL);
			waitpid(tp, NULL, 0);
		}
		tap_skip_n(3, "no usable cgroup v2 or v1 cpu controller", "leftover cgroup cleanup");
		return;
	}
	kill(r.guardian, SIGKILL);
	wait_exit(r.guardian, 10000);
	kill(tp, SIGKILL);
	waitpid(tp, NULL, 0);
	tap_ok(!gone(r.dir), "leftover: %s is still there with both killed", r.dir);
	n = pt__throttle_cleanup();
	cgroup_of(pid, after, sizeof(after));
	tap_ok(n >= 1 && gone(r.dir) && !strcmp(before, after),
	       "leftover: cleanup removed %d, target back (%s -> %s)", n, before, after);
	f = cpu_frac_retry(pid, 0.5 * baseline);
	if (baseline < 0.6)
		tap_skip("machine too busy", "leftover: unthrottled");
	else
		tap_ok(f >= 0.5 * baseline, "leftover: unthrottled again: %.2f (unthrottled %.2f)", f, baseline);
}

int main(void)
{
	pid_t pid;

	tap_plan(23);
	pid = busy_child();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	/*
	 * Start it in a cgroup of its own (in the hierarchy with the cpu
	 * controller), so that "back in its cgroup" is not just the root.
	 */
	if (!access("/sys/fs/cgroup/cpu/cgroup.procs", W_OK))
		snprintf(own_cg, sizeof(own_cg), "/sys/fs/cgroup/cpu/pt-test-throttle-%d", (int)getpid());
	else if (!access("/sys/fs/cgroup/cgroup.subtree_control", W_OK))
		snprintf(own_cg, sizeof(own_cg), "/sys/fs/cgroup/pt-test-throttle-%d", (int)getpid());
	if (own_cg[0] && !mkdir(own_cg, 0755)) {
		char path[4200], num[24];
		FILE *f;

		/* autogroups do not apply outside the root cgroup: a higher weight instead */
		snprintf(path, sizeof(path), "%s/cpu.shares", own_cg);
		f = fopen(path, "we");
		if (f && (fputs("10240", f), fclose(f)))
			tap_diag("could not raise %s", path);
		snprintf(path, sizeof(path), "%s/cgroup.procs", own_cg);
		snprintf(num, sizeof(num), "%d", (int)pid);
		f = fopen(path, "we");
		if (!f || fputs(num, f) < 0 || fclose(f) != 0)
			tap_diag("could not move the child into %s", own_cg);
	} else {
		own_cg[0] = 0;
	}
	baseline = cpu_frac(pid);
	tap_diag("the busy child runs %.2f of a CPU unthrottled", baseline);
	test_mode(pid, PT_THROTTLE_SIGNAL);
	test_mode(pid, PT_THROTTLE_CGROUP);
	test_kill(pid, PT_THROTTLE_SIGNAL);
	test_kill(pid, PT_THROTTLE_CGROUP);
	test_leftover(pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (own_cg[0])
		rmdir(own_cg);
	return tap_done();
}
