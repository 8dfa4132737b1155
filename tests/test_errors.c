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
#include "pt_internal.h"
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
	t = pt_target_create(pid, NULL);
	tap_ok(!t && errno == ESRCH, "opening a nonexistent pid fails with ESRCH (%s)", strerror(errno));
	pt_target_free(t);
}

static void test_zombie(void)
{
	pid_t pid = fork();
	struct pt_target *t;
	siginfo_t si;

	if (pid == 0)
		_exit(0);
	/* wait until it has exited, without reaping it: a zombie without an mm */
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
		;
	errno = 0;
	t = pt_target_create(pid, NULL);
	tap_ok(!t && errno == ESRCH, "opening a zombie fails with ESRCH (%s)", strerror(errno));
	pt_target_free(t);
	waitpid(pid, NULL, 0);
}

static void test_exit_mid_scan(enum pt_scan_backend b)
{
	PT_OPTS(pt_target_opts, o, .scan_backend = b);
	pid_t pid = fx_child(big_layout, NULL);
	struct pt_target *t = pid > 0 ? pt_target_create(pid, &o) : NULL;
	struct pt_region r[8];
	struct pt_vma *v = NULL;
	size_t nv = 0;
	int first, later = 0, calls = 0;
	const char *bn = pt_scan_backend_name(b);

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
		t = pt_target_create(getppid(), NULL);
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
	struct pt_target *t = pt_target_create(0, NULL);
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
	tap_ok(pt_target_create(-5, NULL) == NULL && errno == EINVAL, "negative pid -> EINVAL");
	pt_target_free(t);
	pt_target_free(NULL);
	tap_ok(1, "pt_target_free(NULL) is harmless");
}

static void test_force_env(void)
{
	struct pt_target *t;

	setenv("PT_FORCE_BACKEND", "read", 1);
	t = pt_target_create(0, NULL);
	tap_ok(t && pt_target_scan_backend(t) == PT_SCAN_BACKEND_PAGEMAP_READ,
	       "PT_FORCE_BACKEND=read forces the read backend");
	pt_target_free(t);
	unsetenv("PT_FORCE_BACKEND");
	t = pt_target_create(0, NULL);
	if (pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL) == PT_YES)
		tap_ok(t && pt_target_scan_backend(t) == PT_SCAN_BACKEND_PAGEMAP_SCAN,
		       "default backend is PAGEMAP_SCAN where available");
	else
		tap_ok(t && pt_target_scan_backend(t) == PT_SCAN_BACKEND_PAGEMAP_READ,
		       "default backend is the read fallback without PAGEMAP_SCAN");
	pt_target_free(t);
}

static bool is_ident(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* pt_x_name(): stable lowercase identifiers; pt_x_text(): a line; NULL outside the enum. */
static void test_names(void)
{
	bool ok = true;

	for (int i = 0; i < PT_STATE__COUNT; i++)
		ok &= is_ident(pt_state_name((enum pt_state)i));
	for (int i = 0; i < PT_REASON__COUNT; i++)
		ok &= is_ident(pt_reason_name((enum pt_reason)i)) && pt_reason_text((enum pt_reason)i);
	for (int i = PT_VMA_ANON; i <= PT_VMA_SPECIAL; i++)
		ok &= is_ident(pt_vma_kind_name((enum pt_vma_kind)i));
	for (int i = PT_SCAN_BACKEND_AUTO; i <= PT_SCAN_BACKEND_PAGEMAP_READ; i++)
		ok &= is_ident(pt_scan_backend_name((enum pt_scan_backend)i));
	for (int i = PT_TRACK_AUTO; i <= PT_TRACK_HASH; i++)
		ok &= is_ident(pt_track_backend_name((enum pt_track_backend)i));
	for (int i = 0; i < PT_FEAT__COUNT; i++)
		ok &= is_ident(pt_feature_name((enum pt_feature)i));
	tap_ok(ok, "every _name() of a valid value is a lowercase identifier");
	tap_ok(!pt_state_name(PT_STATE__COUNT) && !pt_reason_name(PT_REASON__COUNT) &&
	       !pt_reason_text(PT_REASON__COUNT) && !pt_vma_kind_name((enum pt_vma_kind)99) &&
	       !pt_scan_backend_name((enum pt_scan_backend)99) &&
	       !pt_track_backend_name((enum pt_track_backend)99) &&
	       !pt_feature_name(PT_FEAT__COUNT), "_name() and _text() of a bad value are NULL");
}

static const char *last_log;
static char log_buf[256];

static void keep_log(enum pt_log_level lvl, const char *msg, void *ctx)
{
	(void)lvl;
	(void)ctx;
	snprintf(log_buf, sizeof(log_buf), "%s", msg);
	last_log = log_buf;
}

/*
 * pagetrack computes with 4 KiB pages: on a 16K or 64K kernel it must
 * refuse clearly, not compute garbage.  PT_FORCE_PAGE_SIZE makes the
 * probe see another size on this machine.
 */
static void test_page_size(void)
{
	const char *why = NULL;
	struct pt_target *t;
	struct pt_tracker *tr;
	int st, terr, trerr;

	st = pt_feature(PT_FEAT_PAGE_SIZE_4K, &why);
	if (st != PT_YES) {
		tap_skip_n(6, why ? why : "unknown", "page size: 4 KiB here, then forced to 16 KiB");
		return;
	}
	tap_ok(pt_page_size() == 4096 && !strcmp(pt_feature_name(PT_FEAT_PAGE_SIZE_4K),
						 "page_size_4k"),
	       "page size: 4096 here, feature page_size_4k yes (%s)", why);
	setenv("PT_FORCE_PAGE_SIZE", "16384", 1);
	pt__features_reset();
	pt_set_log(keep_log, NULL);
	st = pt_feature(PT_FEAT_PAGE_SIZE_4K, &why);
	tap_ok(st == PT_NO && pt_page_size() == 16384 && strstr(why, "16 KiB pages") &&
		       strstr(why, "4 KiB pages only"),
	       "PT_FORCE_PAGE_SIZE=16384: page_size_4k no (%s)", why);
	last_log = NULL;
	errno = 0;
	t = pt_target_create(0, NULL);
	terr = errno;
	tap_ok(!t && terr == EOPNOTSUPP && last_log && strstr(last_log, "16 KiB"),
	       "16 KiB pages: pt_target_create fails with EOPNOTSUPP and logs the size (%s; %s)",
	       strerror(terr), last_log ? last_log : "no log");
	pt_target_free(t);
	errno = 0;
	tr = pt_tracker_create(0, NULL);
	trerr = errno;
	tap_ok(!tr && trerr == EOPNOTSUPP, "16 KiB pages: pt_tracker_create fails with EOPNOTSUPP (%s)",
	       strerror(trerr));
	pt_tracker_free(tr);
	setenv("PT_FORCE_PAGE_SIZE", "65536", 1);
	pt__features_reset();
	pt_feature(PT_FEAT_PAGE_SIZE_4K, &why);
	tap_ok(strstr(why, "64 KiB pages") != NULL, "PT_FORCE_PAGE_SIZE=65536: %s", why);
	pt_set_log(NULL, NULL);
	unsetenv("PT_FORCE_PAGE_SIZE");
	pt__features_reset();
	t = pt_target_create(0, NULL);
	tap_ok(t != NULL && pt_feature(PT_FEAT_PAGE_SIZE_4K, NULL) == PT_YES,
	       "without PT_FORCE_PAGE_SIZE, targets open again");
	pt_target_free(t);
}

int main(void)
{
	enum pt_scan_backend bs[2];
	int nb = fx_backends(bs);

	/* no_such_pid, zombie, 3 per backend, permission, bad_args, force_env */
	tap_plan(1 + 1 + 3 * 2 + 1 + 9 + 2 + 2 + 6);
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
	test_names();
	test_page_size();
	return tap_done();
}
