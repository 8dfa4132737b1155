/* SPDX-License-Identifier: MIT */
/* Error paths of the library: bad pids, permissions, a target exiting mid-scan. */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"

static void big_layout(void *shared)
{
	(void)shared;
	/* many small VMAs with alternating protections: many regions */
	for (int i = 0; i < 256; i++) {
		char *p = fx_map(16 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		for (int k = 0; k < 16; k += 2)
			p[k * FX_PAGE] = (char)k;
	}
}

static void test_no_such_pid(void)
{
	pid_t pid = fork();
	struct pt_target *t;

	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);	/* reaped: the pid no longer exists */
	errno = 0;
	t = pt_target_open(pid, NULL);
	tap_ok(!t && errno == ESRCH, "opening a nonexistent pid fails with ESRCH (%s)", strerror(errno));
	pt_target_free(t);
}

static void test_zombie(void)
{
	pid_t pid = fork();
	struct pt_target *t;

	if (pid == 0)
		_exit(0);
	usleep(100000);	/* not reaped: a zombie without an mm */
	errno = 0;
	t = pt_target_open(pid, NULL);
	tap_ok(!t && errno == ESRCH, "opening a zombie fails with ESRCH (%s)", strerror(errno));
	pt_target_free(t);
	waitpid(pid, NULL, 0);
}

static void test_exit_mid_scan(enum pt_backend b)
{
	struct pt_target_opts o = { .sz = sizeof(o), .backend = b };
	pid_t pid = fx_child(big_layout, NULL);
	struct pt_target *t = pid > 0 ? pt_target_open(pid, &o) : NULL;
	struct pt_region r[8];
	struct pt_vma *v = NULL;
	size_t nv = 0;
	int first, later = 0, calls = 0;
	const char *bn = pt_backend_name(b);

	if (!t) {
		tap_ok(0, "%s: open child for the mid-scan exit test", bn);
		tap_skip_n(2, "no child", "%s: scan of a target exiting mid-scan", bn);
		fx_child_kill(pid);
		return;
	}
	pt_vmas_read(t, &v, &nv);
	uint64_t cur = v[0].start, end = v[nv - 1].end;
	first = pt_scan(t, &cur, end, r, 8, NULL);
	fx_child_kill(pid);	/* exits (and is reaped) in the middle of the scan */
	while (cur < end && calls++ < 100000) {
		later = pt_scan(t, &cur, end, r, 8, NULL);
		if (later <= 0)
			break;
	}
	tap_ok(first == 8, "%s: first chunk of the scan returned before the exit", bn);
	tap_ok(later == -ESRCH, "%s: scan after the target exited fails with ESRCH (%d)", bn, later);
	tap_ok(pt_target_alive(t) == 0, "%s: target reported as gone", bn);
	pt_vmas_free(v);
	pt_target_free(t);
}

static void test_permission(void)
{
	int pfd[2];
	pid_t pid;

	if (geteuid() != 0) {
		tap_skip("needs root to drop to an unprivileged user", "unprivileged open of a root process");
		return;
	}
	if (pipe(pfd)) {
		tap_ok(0, "unprivileged open of a root process: pipe: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0) {
		int res[2] = { 0, 0 };
		struct pt_target *t;

		close(pfd[0]);
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(1);
		errno = 0;
		t = pt_target_open(getppid(), NULL);
		res[0] = t == NULL;
		res[1] = errno;
		pt_target_free(t);
		if (write(pfd[1], res, sizeof(res)) != sizeof(res))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	int res[2] = { 0, 0 };
	ssize_t n = read(pfd[0], res, sizeof(res));
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	tap_ok(n == sizeof(res) && res[0] && (res[1] == EACCES || res[1] == EPERM),
	       "unprivileged open of a root process fails with EACCES/EPERM (%s)", strerror(res[1]));
}

static void test_bad_args(void)
{
	struct pt_target *t = pt_target_open(0, NULL);
	struct pt_region r[4];
	struct pt_scan_opts bad = { .sz = 0 };
	uint64_t cur = 0x1000;

	tap_ok(t != NULL, "open self");
	tap_ok(pt_scan(NULL, &cur, 0x2000, r, 4, NULL) == -EINVAL, "NULL target -> -EINVAL");
	tap_ok(pt_scan(t, NULL, 0x2000, r, 4, NULL) == -EINVAL, "NULL cursor -> -EINVAL");
	tap_ok(pt_scan(t, &cur, 0x2000, r, 0, NULL) == -EINVAL, "zero capacity -> -EINVAL");
	tap_ok(pt_scan(t, &cur, 0x2000, r, 4, &bad) == -EINVAL, "opts without size -> -EINVAL");
	cur = 0x5000;
	tap_ok(pt_scan(t, &cur, 0x2000, r, 4, NULL) == 0 && cur == 0x2000,
	       "empty range: 0 regions, cursor at end");
	tap_ok(pt_feature(PT_FEAT__COUNT, NULL) == -EINVAL && pt_feature_name(PT_FEAT__COUNT) == NULL,
	       "bad feature -> -EINVAL");
	errno = 0;
	tap_ok(pt_target_open(-5, NULL) == NULL && errno == EINVAL, "negative pid -> EINVAL");
	pt_target_free(t);
	pt_target_free(NULL);
	tap_ok(1, "pt_target_free(NULL) is harmless");
}

static void test_force_env(void)
{
	struct pt_target *t;

	setenv("PT_FORCE_BACKEND", "read", 1);
	t = pt_target_open(0, NULL);
	tap_ok(t && pt_target_backend(t) == PT_BACKEND_PAGEMAP_READ,
	       "PT_FORCE_BACKEND=read forces the read backend");
	pt_target_free(t);
	unsetenv("PT_FORCE_BACKEND");
	t = pt_target_open(0, NULL);
	if (pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL) == PT_YES)
		tap_ok(t && pt_target_backend(t) == PT_BACKEND_PAGEMAP_SCAN,
		       "default backend is PAGEMAP_SCAN where available");
	else
		tap_ok(t && pt_target_backend(t) == PT_BACKEND_PAGEMAP_READ,
		       "default backend is the read fallback without PAGEMAP_SCAN");
	pt_target_free(t);
}

int main(void)
{
	enum pt_backend bs[2];
	int nb = fx_backends(bs);

	/* no_such_pid, zombie, 3 per backend, permission, bad_args, force_env */
	tap_plan(1 + 1 + 3 * 2 + 1 + 9 + 2);
	test_no_such_pid();
	test_zombie();
	for (int i = 0; i < nb; i++)
		test_exit_mid_scan(bs[i]);
	if (nb < 2)
		tap_skip_n(3, "PAGEMAP_SCAN not available",
			   "pagemap_scan: scan of a target exiting mid-scan");
	test_permission();
	test_bad_args();
	test_force_env();
	return tap_done();
}
