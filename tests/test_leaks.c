/* SPDX-License-Identifier: MIT */
/*
 * Every failure of the tracker after it touched the target leaves the
 * target as found, and leaves nothing in pagetrack's own process.
 *
 * For each fault point of lib/fault.c (PT_FAULT, doc/inject.md) a fresh
 * forked target is tracked twice over, once with the uffd backend forced
 * (creation must fail with the point's error) and once with the
 * automatic choice (it must fall back and work).  Afterwards the target
 * must hold the same fds as before (no anon_inode:[userfaultfd]), no
 * area registered with a userfaultfd (smaps VmFlags um/uw/ui) and no
 * page write-protected (pagemap bit 57, and a PAGEMAP_SCAN sweep of the
 * whole address space), must not be stopped or traced, must still run
 * and hold its memory (it rewrites and checks a pattern on command), and
 * this process must hold the same fds as before.  A control case without
 * a fault shows that these checks do see a live uffd tracker; a last case
 * frees a tracker while another process traces the target (the close is
 * retried).  Leaks of memory are LeakSanitizer's (the ASan suite).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "pt_internal.h"
#include "tap.h"
#include "uapi.h"

#define NAREAS 4
#define NP 16			/* pages per area */
#define POKE_TRIES 10000	/* x 200 us: the target answers a command */
#define LIST_MAX 8192

struct shared {
	int cmd;		/* pattern generation to check, then write; 0 idle */
	int done;		/* last generation handled */
	int bad;		/* pages that did not hold the expected pattern */
	uintptr_t area[NAREAS];
};

static struct shared *sh;

/* ---- the target ---- */

static uint64_t pattern(int gen, int a, int p)
{
	return 0x9e3779b97f4a7c15ULL * (uint64_t)(gen * 1000 + a * NP + p + 1);
}

static int check_fill(int gen, bool fill)
{
	int bad = 0;

	for (int a = 0; a < NAREAS; a++)
		for (int p = 0; p < NP; p++) {
			uint64_t *w = (uint64_t *)(sh->area[a] + (uintptr_t)p * FX_PAGE);

			if (fill) {
				w[0] = pattern(gen, a, p);
				w[FX_PAGE / 8 - 1] = ~pattern(gen, a, p);
			} else {
				bad += w[0] != pattern(gen, a, p) || w[FX_PAGE / 8 - 1] != ~pattern(gen, a, p);
			}
		}
	return bad;
}

/* Areas apart (PROT_NONE between them), so each is a VMA of its own. */
static void target_setup(void *unused)
{
	char *r = fx_map(2 * NAREAS * NP * FX_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)unused;
	for (int a = 0; a < NAREAS; a++) {
		char *p = r + (size_t)2 * a * NP * FX_PAGE;

		if (mprotect(p, NP * FX_PAGE, PROT_READ | PROT_WRITE))
			_exit(1);
		sh->area[a] = (uintptr_t)p;
	}
	check_fill(1, true);
	sh->done = 1;
}

static pid_t start_target(void)
{
	int p[2];
	pid_t pid;
	char c;

	memset(sh, 0, sizeof(*sh));
	if (pipe(p))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int last = 1;

		close(p[0]);
		target_setup(NULL);
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		for (;;) {	/* until killed */
			int cmd = __atomic_load_n(&sh->cmd, __ATOMIC_ACQUIRE);

			if (cmd > last) {
				int bad = check_fill(last, false);

				check_fill(cmd, true);
				sh->bad = bad + check_fill(cmd, false);
				last = cmd;
				__atomic_store_n(&sh->done, cmd, __ATOMIC_RELEASE);
			}
			usleep(200);
		}
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1) {
		fx_child_kill(pid);
		pid = -1;
	}
	close(p[0]);
	return pid;
}

/*
 * The target checks that it still holds the last pattern, writes the
 * next and checks it.  Returns the pages that were wrong, -1 if it did
 * not answer (stopped, dead).
 */
static int poke(void)
{
	int gen = sh->done + 1;

	__atomic_store_n(&sh->cmd, gen, __ATOMIC_RELEASE);
	for (int i = 0; i < POKE_TRIES; i++) {
		if (__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) == gen)
			return sh->bad;
		usleep(200);
	}
	return -1;
}

/* ---- what a process holds ---- */

/* "fd -> link" lines of @pid (0: this process, without the listing's own fd). */
static int list_fds(pid_t pid, char *out, size_t cap)
{
	char dir[64], link[256];
	struct dirent *de;
	size_t len = 0;
	int n = 0;
	DIR *d;

	if (pid)
		snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	else
		snprintf(dir, sizeof(dir), "/proc/self/fd");
	out[0] = '\0';
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		ssize_t l;

		if (de->d_name[0] == '.' || (!pid && atoi(de->d_name) == dirfd(d)))
			continue;
		l = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (l < 0)
			continue;
		link[l] = '\0';
		len += (size_t)snprintf(out + len, cap - len, "%s -> %s\n", de->d_name, link);
		if (len >= cap)
			break;
		n++;
	}
	closedir(d);
	return n;
}

static int count_str(const char *s, const char *what)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, what)); p++)
		n++;
	return n;
}

/* Pages of the target's own areas with pagemap bit 57 (uffd-wp) set. */
static int wp_pages_pagemap(pid_t pid)
{
	char path[64];
	uint64_t pm[NP];
	int fd, n = 0;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (int a = 0; a < NAREAS; a++) {
		if (pread(fd, pm, sizeof(pm), (off_t)(sh->area[a] / FX_PAGE * 8)) != sizeof(pm)) {
			n = -1;
			break;
		}
		for (int p = 0; p < NP; p++)
			n += !!(pm[p] & PT_PM_UFFD_WP);
	}
	close(fd);
	return n;
}

/*
 * Pages holding data with the uffd-wp bit anywhere in the target: one
 * PAGEMAP_SCAN sweep (pages not "written" are the protected ones), which
 * walks page tables only and so copes with huge sparse reservations.
 */
static long wp_pages_scan(pid_t pid)
{
	struct page_region vec[64];
	struct pm_scan_arg a;
	char path[64], line[512];
	uint64_t cur = 0, end = 0, s, e;
	long pages = 0;
	FILE *f;
	int fd;

	/* up to the end of its last area ([vsyscall] is beyond the user range) */
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && !strstr(line, "[vsyscall]") && e > end)
			end = e;
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (int i = 0; i < 100000 && cur < end; i++) {
		memset(&a, 0, sizeof(a));
		a.size = sizeof(a);
		a.start = cur;
		a.end = end;
		a.vec = (uint64_t)(uintptr_t)vec;
		a.vec_len = 64;
		a.category_inverted = PAGE_IS_WRITTEN;
		a.category_mask = PAGE_IS_WRITTEN;
		a.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
		a.return_mask = PAGE_IS_WRITTEN;
		long n = ioctl(fd, PAGEMAP_SCAN, &a);

		if (n < 0) {
			pages = -1;
			break;
		}
		for (long k = 0; k < n; k++)
			pages += (long)((vec[k].end - vec[k].start) / FX_PAGE);
		if (a.walk_end <= cur)
			break;
		cur = a.walk_end;
	}
	close(fd);
	return pages;
}

static long long status_field(pid_t pid, const char *key)
{
	char path[64], line[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key))) {
			char *p = line + strlen(key);

			while (*p == ' ' || *p == '\t')
				p++;
			v = *p >= '0' && *p <= '9' ? atoll(p) : *p;	/* State: the letter */
			break;
		}
	fclose(f);
	return v;
}

/* ---- log ---- */

static int warned_close;

static void log_cb(enum pt_log_level lvl, const char *msg, void *ctx)
{
	(void)ctx;
	if (lvl != PT_LOG_WARN)
		return;
	if (strstr(msg, "could not close the userfaultfd"))
		warned_close++;
	tap_diag("log: %s", msg);
}

/* ---- the cases ---- */

enum expect {
	FAILS,		/* forced uffd: creation fails with .err; auto: another backend */
	WORKS,		/* both: created with uffd, nothing left after the free */
	COLLECT_FAILS,	/* both: uffd created, the collect fails with .err */
	FD_STAYS,	/* both: the fd cannot be closed in the target; nothing registered */
	FAILS_FD_STAYS,	/* FAILS, and the fd cannot be closed: nothing registered anyway */
};

static const struct fcase {
	const char *spec;	/* PT_FAULT */
	int err;
	enum expect expect;
} cases[] = {
	{ "", 0, WORKS },	/* control: the checks see the live tracker */
	{ "uffd-create", -EIO, FAILS },
	{ "uffd-getfd", -EMFILE, FAILS },
	{ "uffd-api", -EINVAL, FAILS },
	{ "uffd-register", -ENOMEM, FAILS },
	{ "uffd-register:3", -ENOMEM, FAILS },	/* two areas registered before */
	{ "uffd-protect", -ENOMEM, FAILS },
	{ "uffd-protect:3", -ENOMEM, FAILS },
	{ "round:1", -ENOMEM, FAILS },		/* after every area was armed */
	{ "freeze", -EIO, FAILS },
	{ "inject", -EIO, FAILS },
	{ "barrier", 0, WORKS },		/* logged, not an error */
	{ "uffd-close:1", 0, WORKS },		/* retried */
	{ "uffd-harvest", -ENOMEM, COLLECT_FAILS },
	{ "uffd-close", -EBUSY, FD_STAYS },
	/* the close fails too: what the failed round registered is unregistered */
	{ "uffd-register:3,uffd-close", -ENOMEM, FAILS_FD_STAYS },
	{ "round:1,uffd-close", -ENOMEM, FAILS_FD_STAYS },
};

/*
 * Checks run_case() prints for @c: with a failing start, forced uffd stops
 * after the failure and the clean-up checks (5); auto adds the fallback
 * tracker's (11).  A tracker that starts prints 9.
 */
static int case_checks(const struct fcase *c, bool forced)
{
	if (c->expect == FAILS || c->expect == FAILS_FD_STAYS)
		return forced ? 5 : 11;
	return 9;
}

#define N_SECOND_TRACER 5	/* second_tracer()'s checks */

static void set_fault(const char *spec)
{
	if (spec && *spec)
		setenv("PT_FAULT", spec, 1);
	else
		unsetenv("PT_FAULT");
	pt__fault_reset();
}

/* Not stopped, not traced, running, memory intact: as it was. */
static void check_alive(pid_t pid, const char *tag, const char *when)
{
	long long state = status_field(pid, "State:"), tracer = status_field(pid, "TracerPid:");
	int bad = poke();

	tap_ok(state != 't' && state != 'T' && tracer == 0 && bad == 0,
	       "%s: %s: target not stopped (%c) or traced (%lld), runs, memory intact (%d bad pages)",
	       tag, when, state > 0 ? (char)state : '?', tracer, bad);
}

static void check_clean(pid_t pid, const char *tag, const char *when, const char *fds_before,
			bool fd_stays)
{
	static char fds[LIST_MAX];
	int vmas = fx_uffd_vmas(pid), wp = wp_pages_pagemap(pid);
	long wps = wp_pages_scan(pid);

	list_fds(pid, fds, sizeof(fds));
	if (fd_stays) {
		int extra = count_str(fds, "anon_inode:[userfaultfd]") -
			    count_str(fds_before, "anon_inode:[userfaultfd]");

		tap_ok(extra == 1 && warned_close > 0,
		       "%s: %s: the fd it could not close stays (%d extra userfaultfd), with a warning",
		       tag, when, extra);
	} else if (!tap_ok(!strcmp(fds, fds_before) && !count_str(fds, "userfaultfd"),
			   "%s: %s: target holds the same fds as before, no userfaultfd", tag, when)) {
		tap_diag("before:\n%s", fds_before);
		tap_diag("after:\n%s", fds);
	}
	tap_ok(vmas == 0 && wp == 0 && wps == 0,
	       "%s: %s: no area registered (%d), no page write-protected (%d in its areas, %ld in all)",
	       tag, when, vmas, wp, wps);
	check_alive(pid, tag, when);
}

/* The written pattern of every area is reported by one collect. */
static void check_collect(struct pt_tracker *tr, const char *tag, int *err)
{
	struct pt_dirty d[256];
	bool more = true;
	uint64_t pages = 0;
	int n = 0;

	*err = 0;
	for (int i = 0; i < 64 && more; i++) {
		n = pt_tracker_collect(tr, d, 256, &more);
		if (n < 0) {
			*err = n;
			return;
		}
		for (int k = 0; k < n; k++)
			for (int a = 0; a < NAREAS; a++) {
				uint64_t s = d[k].start > sh->area[a] ? d[k].start : sh->area[a];
				uint64_t e = sh->area[a] + NP * FX_PAGE;

				e = d[k].end < e ? d[k].end : e;
				if (s < e)
					pages += (e - s) / FX_PAGE;
			}
	}
	tap_ok(pages == NAREAS * NP, "%s: the tracker reports the %d pages written (%llu)", tag,
	       NAREAS * NP, (unsigned long long)pages);
}

static void run_case(const struct fcase *c, bool forced)
{
	static char fds_before[LIST_MAX], self_before[LIST_MAX], self_after[LIST_MAX];
	struct pt_tracker_opts o = { .sz = sizeof(o),
				     .backend = forced ? PT_TRACK_UFFD : PT_TRACK_AUTO };
	bool fails = c->expect == FAILS || c->expect == FAILS_FD_STAYS;
	struct pt_tracker *tr;
	char tag[96];
	pid_t pid;
	int err;

	snprintf(tag, sizeof(tag), "%s %s", forced ? "uffd" : "auto", *c->spec ? c->spec : "no fault");
	pid = start_target();
	if (pid < 0) {
		tap_ok(0, "%s: start a target", tag);
		return;
	}
	list_fds(pid, fds_before, sizeof(fds_before));
	list_fds(0, self_before, sizeof(self_before));
	warned_close = 0;

	set_fault(c->spec);
	tr = pt_tracker_create(pid, &o);
	err = tr ? 0 : -errno;
	if (fails && forced) {
		tap_ok(!tr && err == c->err, "%s: creation fails with the injected error (%s, want %s)",
		       tag, strerror(-err), strerror(-c->err));
	} else if (fails) {
		tap_ok(tr && pt_tracker_backend(tr) != PT_TRACK_UFFD,
		       "%s: creation falls back to another backend (%s)", tag,
		       tr ? pt_track_backend_name(pt_tracker_backend(tr)) : strerror(-err));
	} else {
		tap_ok(tr && pt_tracker_backend(tr) == PT_TRACK_UFFD, "%s: created with uffd (%s)", tag,
		       tr ? "yes" : strerror(-err));
	}
	if (tr) {
		bool uffd = pt_tracker_backend(tr) == PT_TRACK_UFFD;

		if (uffd) {
			/* the control: what the checks below must not find afterwards */
			static char fds[LIST_MAX];

			int extra, vmas = fx_uffd_vmas(pid), wp = wp_pages_pagemap(pid);
			long wps = wp_pages_scan(pid);

			list_fds(pid, fds, sizeof(fds));
			extra = count_str(fds, "anon_inode:[userfaultfd]") -
				count_str(fds_before, "anon_inode:[userfaultfd]");
			tap_ok(extra == 1 && vmas > 0 && wp == NAREAS * NP && wps >= wp,
			       "%s: while tracked, the checks see it: %d userfaultfd, %d areas registered, "
			       "%d pages protected in its areas, %ld in all", tag, extra, vmas, wp, wps);
		} else {
			/* what the failed uffd attempt left would show now */
			check_clean(pid, tag, "fallback tracker alive", fds_before,
				    c->expect == FAILS_FD_STAYS);
		}
		check_alive(pid, tag, "tracked");
		check_collect(tr, tag, &err);
		if (c->expect == COLLECT_FAILS)
			tap_ok(err == c->err, "%s: the collect fails with the injected error (%s)", tag,
			       strerror(-err));
		else if (err)
			tap_ok(0, "%s: collect: %s", tag, strerror(-err));
		err = pt_tracker_free(tr);
		/* a close that failed in the target is an error the caller sees */
		tap_ok(err == (c->expect == FD_STAYS ? -EBUSY : 0),
		       "%s: pt_tracker_free returns %s", tag, err ? strerror(-err) : "0");
	}
	set_fault(NULL);
	check_clean(pid, tag, "after", fds_before,
		    c->expect == FD_STAYS || c->expect == FAILS_FD_STAYS);
	list_fds(0, self_after, sizeof(self_after));
	if (!tap_ok(!strcmp(self_before, self_after), "%s: this process holds the same fds as before",
		    tag)) {
		tap_diag("before:\n%s", self_before);
		tap_diag("after:\n%s", self_after);
	}
	fx_child_kill(pid);
}

/*
 * The real case behind the close retry: another process (a second
 * pagetrack, a debugger) traces the target while the tracker is freed.
 * The injected close() gets -EBUSY until that tracer is gone (150 ms
 * here), then succeeds: nothing is left and nothing is warned about.
 */
static void second_tracer(void)
{
	static char fds_before[LIST_MAX];
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = PT_TRACK_UFFD };
	const char *tag = "uffd, another tracer at free";
	struct pt_tracker *tr;
	struct timespec t0, t1;
	long long tracer;
	int p[2];
	pid_t pid, h;
	char c;

	pid = start_target();
	if (pid < 0 || pipe(p)) {
		tap_ok(0, "%s: start a target", tag);
		return;
	}
	list_fds(pid, fds_before, sizeof(fds_before));
	warned_close = 0;
	tr = pt_tracker_create(pid, &o);
	if (!tap_ok(tr != NULL, "%s: created (%s)", tag, tr ? "yes" : strerror(errno))) {
		fx_child_kill(pid);
		return;
	}
	fflush(stdout);
	h = fork();
	if (h == 0) {
		/* seized, not stopped: it runs on, traced; our exit detaches it */
		if (ptrace(PTRACE_SEIZE, pid, 0, 0) || write(p[1], "s", 1) != 1)
			_exit(1);
		usleep(150000);
		_exit(0);
	}
	close(p[1]);
	if (h < 0 || read(p[0], &c, 1) != 1) {
		tap_ok(0, "%s: a second tracer seizes the target", tag);
		pt_tracker_free(tr);
	} else {
		tracer = status_field(pid, "TracerPid:");
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pt_tracker_free(tr);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		tap_ok(tracer == h && warned_close == 0,
		       "%s: traced by %lld while freed: the close waited %.0f ms for it, no warning",
		       tag, tracer, (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	}
	close(p[0]);
	if (h > 0)
		waitpid(h, NULL, 0);
	check_clean(pid, tag, "after", fds_before, false);
	fx_child_kill(pid);
}

static const char *uffd_unusable(void)
{
	static const enum pt_feature need[] = { PT_FEAT_PAGEMAP_SCAN, PT_FEAT_UFFD_WP_ASYNC,
						PT_FEAT_UFFD_WP_UNPOPULATED, PT_FEAT_PIDFD_GETFD,
						PT_FEAT_PTRACE };
	static char why[256];
	const char *reason;

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (pt_feature(need[i], &reason) != PT_YES) {
			snprintf(why, sizeof(why), "uffd tracking of another process unusable: %s",
				 reason ? reason : "?");
			return why;
		}
#if !defined(__x86_64__)
	return "syscall injection is x86_64 only";
#endif
	return NULL;
}

int main(void)
{
	const char *why = uffd_unusable();

	if (why)
		tap_skip_all(why);
	unsetenv("PT_FORCE_TRACKER");	/* the cases choose the backend */
	sh = fx_map(sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pt_set_log(log_cb, NULL);
	{
		int plan = N_SECOND_TRACER;

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			plan += case_checks(&cases[i], true) + case_checks(&cases[i], false);
		tap_plan(plan);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_case(&cases[i], true);
		run_case(&cases[i], false);
	}
	second_tracer();
	return tap_done();
}
