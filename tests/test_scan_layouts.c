/* SPDX-License-Identifier: MIT */
/*
 * Each scan backend against known layouts of the calling process:
 * private anon touched/untouched, anon swapped out, THP, zero page,
 * guard region, COW pages shared with a forked child, private file
 * mapping, and a uffd-wp region partly paged out.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "pt_internal.h"
#include "tap.h"
#include "uapi.h"

#define NP 64

/* subtests of one backend's test_*() calls in main(), skips included */
#define N_ZERO 3	/* test_zero_page() */
#define N_PER_BACKEND (4 + 2 + 2 + N_ZERO + 1 + 2 + 3 + 5)

static enum pt_scan_backend backends[2];
static int nbackends;

static struct pt_target *open_self(enum pt_scan_backend b)
{
	PT_OPTS(pt_target_opts, o, .scan_backend = b);
	struct pt_target *t = pt_target_create(0, &o);

	if (!t) {
		printf("Bail out! pt_target_create(self, %s): %s\n", pt_scan_backend_name(b),
		       strerror(errno));
		exit(1);
	}
	return t;
}

/* Scan [p, p+n pages) of self with backend @b into states/attrs. */
static int scan(enum pt_scan_backend b, void *p, size_t n, uint32_t flags, uint8_t *st, uint32_t *at)
{
	struct pt_target *t = open_self(b);
	int r = fx_scan_pages(t, (uint64_t)(uintptr_t)p, (uint64_t)(uintptr_t)p + n * FX_PAGE,
			      flags, st, at);
	pt_target_free(t);
	return r;
}

static size_t count_attr(const uint32_t *at, size_t from, size_t to, uint32_t attr)
{
	size_t n = 0;

	for (size_t i = from; i < to; i++)
		n += (at[i] & attr) == attr;
	return n;
}

static void fill(char *p, size_t pages)
{
	for (size_t i = 0; i < pages; i++)
		memset(p + i * FX_PAGE, (int)(i * 7 + 1), FX_PAGE);
}

static void test_private_anon(enum pt_scan_backend b)
{
	char *p = fx_map(NP * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t st[NP];
	uint32_t at[NP];
	const char *bn = pt_scan_backend_name(b);

	fill(p, NP / 2);
	tap_ok(scan(b, p, NP, 0, st, at) == 0, "%s: scan private anon", bn);
	tap_ok(fx_count(st, 0, 32, PT_STATE_PRESENT) == 32 &&
		       fx_count(st, 32, NP, PT_STATE_ABSENT) == 32,
	       "%s: 32 touched pages present, 32 untouched absent", bn);
	tap_ok(count_attr(at, 0, 32, PT_ATTR_EXCLUSIVE) == 32 && count_attr(at, 0, 32, PT_ATTR_FILE) == 0,
	       "%s: touched anon pages exclusive, not file", bn);
	tap_ok(scan(b, p, NP, PT_SCAN_NO_EXCLUSIVE, st, at) == 0 &&
		       count_attr(at, 0, 32, PT_ATTR_EXCLUSIVE) == 0 &&
		       fx_count(st, 0, 32, PT_STATE_PRESENT) == 32,
	       "%s: NO_EXCLUSIVE drops only the exclusive attribute", bn);
	munmap(p, NP * FX_PAGE);
}

static void test_anon_swapped(enum pt_scan_backend b)
{
	const char *bn = pt_scan_backend_name(b), *why;
	uint8_t st[NP];
	char *p;

	if (!fx_swap(&why)) {
		tap_skip_n(2, why, "%s: private anon swapped with MADV_PAGEOUT", bn);
		return;
	}
	p = fx_map(NP * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fill(p, NP);
	if (fx_pageout(p, 32 * FX_PAGE) < 0) {
		tap_skip_n(2, "MADV_PAGEOUT failed", "%s: private anon swapped", bn);
		munmap(p, NP * FX_PAGE);
		return;
	}
	tap_ok(scan(b, p, NP, 0, st, NULL) == 0 && fx_count(st, 0, 32, PT_STATE_SWAPPED) == 32 &&
		       fx_count(st, 32, NP, PT_STATE_PRESENT) == 32,
	       "%s: 32 paged-out pages swapped, 32 present", bn);
	/* swapped pages' contents are intact once faulted back */
	int good = 1;
	for (size_t i = 0; i < NP; i++)
		good &= p[i * FX_PAGE + 100] == (char)(i * 7 + 1);
	tap_ok(good, "%s: swapped pages read back intact", bn);
	munmap(p, NP * FX_PAGE);
}

static int thp_mode_never(void)
{
	char buf[128] = "";
	int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY);

	if (fd < 0)
		return 1;
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	close(fd);
	return strstr(buf, "[never]") != NULL;
}

/* AnonHugePages of the VMA at @addr according to smaps (independent oracle). */
static long smaps_anon_huge_kb(void *addr)
{
	char line[512];
	unsigned long long a, e, want = (uintptr_t)addr;
	long kb = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &a, &e) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = want >= a && want < e;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static void test_thp(enum pt_scan_backend b)
{
	const char *bn = pt_scan_backend_name(b);
	const size_t len = 4UL << 20, np = len / FX_PAGE;
	uint8_t *st = malloc(np);
	uint32_t *at = malloc(np * sizeof(*at));
	char *raw, *p;

	if (thp_mode_never()) {
		tap_skip_n(2, "transparent hugepages disabled", "%s: THP region", bn);
		goto out;
	}
	raw = fx_map(len + (2UL << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p = (char *)(((uintptr_t)raw + (2UL << 20) - 1) & ~((2UL << 20) - 1));
	madvise(p, len, MADV_HUGEPAGE);
	fill(p, np);
	long kb = smaps_anon_huge_kb(p);
	if (kb < 2048) {
		tap_skip_n(2, "kernel gave no THP for the region (smaps AnonHugePages 0)",
			   "%s: THP region", bn);
	} else if (b == PT_SCAN_BACKEND_PAGEMAP_READ && pt_feature(PT_FEAT_KPAGEFLAGS, NULL) != PT_YES) {
		tap_skip("read backend sees huge pages only through /proc/kpageflags (root)",
			 "%s: THP region", bn);
		struct pt_target *t = open_self(b);
		fx_scan_pages(t, (uintptr_t)p, (uintptr_t)p + len, 0, st, at);
		tap_ok(pt_scan_limits(t) & PT_LIMIT_NO_HUGE, "%s: scan says huge is not visible", bn);
		pt_target_free(t);
	} else {
		/*
		 * Proactive reclaim (DAMON pageout) may swap pages out at
		 * any moment: the oracle is pagemap and smaps read right
		 * before and after the scan, the scan retried (at most 5
		 * times) until both reads agree.
		 */
		uint64_t *e0 = calloc(np, 8), *e1 = calloc(np, 8);
		size_t bad = 0, present = 0;
		bool stable = false;
		int r = -1, tries = 0;

		if (!e0 || !e1) {
			printf("Bail out! out of memory\n");
			exit(1);
		}
		for (; tries < 5 && !stable; tries++) {
			kb = smaps_anon_huge_kb(p);
			fx_pagemap(p, np, e0);
			r = scan(b, p, np, 0, st, at);
			stable = fx_pagemap(p, np, e1) == 0 && fx_pagemap_same(e0, e1, np) &&
				 smaps_anon_huge_kb(p) == kb;
		}
		for (size_t i = 0; i < np; i++) {
			present += !!(e0[i] & PT_PM_PRESENT);
			bad += st[i] != ((e0[i] & PT_PM_PRESENT) ? PT_STATE_PRESENT :
					 (e0[i] & PT_PM_SWAP) ? PT_STATE_SWAPPED : PT_STATE_ABSENT);
		}
		if (present < np || tries > 1)
			tap_diag("%s: THP region: %zu of %zu pages present by pagemap, %d scan%s (reclaim?)",
				 bn, present, np, tries, tries > 1 ? "s" : "");
		tap_ok(r == 0 && stable && bad == 0, "%s: THP region: states equal pagemap read beside "
		       "the scan (%zu of %zu present, %zu differ)", bn, present, np, bad);
		tap_ok(count_attr(at, 0, np, PT_ATTR_HUGE) * 4 == (size_t)kb,
		       "%s: huge pages match smaps AnonHugePages (%zu vs %ld kB)", bn,
		       count_attr(at, 0, np, PT_ATTR_HUGE) * 4, kb);
		free(e0);
		free(e1);
	}
	munmap(raw, len + (2UL << 20));
out:
	free(st);
	free(at);
}

/*
 * Read-faulted pages, as the zero-page probe (pt__zero_page()) has it.
 * Yes: they carry PT_ATTR_ZERO, written ones do not.  No (a kernel that
 * never maps the zero page, or PT_FORCE_NO_ZERO_PAGE=1): the zero-page
 * check is skipped with the probe's reason, and the read-faulted pages
 * are plain present pages without PT_ATTR_ZERO; unless forced, they are
 * real pages of their own (exclusive, like the written ones).
 * PT_LIMIT_NO_ZERO is set exactly when the read backend cannot tell.
 */
static void test_zero_page(enum pt_scan_backend b, const char *pass)
{
	const char *bn = pt_scan_backend_name(b), *why = NULL;
	int zp = pt__zero_page(&why);
	volatile char *p = fx_map(16 * FX_PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t st[16];
	uint32_t at[16];
	int sum = 0;
	bool limit, want_limit;

	for (int i = 0; i < 8; i++)
		sum += p[i * FX_PAGE];	/* read faults (the zero page?) */
	for (int i = 8; i < 16; i++)
		p[i * FX_PAGE] = 1;
	struct pt_target *t = open_self(b);
	int r = fx_scan_pages(t, (uintptr_t)p, (uintptr_t)p + 16 * FX_PAGE, 0, st, at);

	tap_ok(sum == 0 && r == 0 && fx_count(st, 0, 16, PT_STATE_PRESENT) == 16,
	       "%s%s: read-faulted and written pages present", pass, bn);
	limit = pt_scan_limits(t) & PT_LIMIT_NO_ZERO;
	want_limit = b == PT_SCAN_BACKEND_PAGEMAP_READ && zp == PT_UNKNOWN;
	if (limit || zp == PT_UNKNOWN) {
		tap_ok(limit == want_limit, "%s%s: PT_LIMIT_NO_ZERO %s, the zero-page probe is unknown",
		       pass, bn, limit ? "set" : "not set");
		tap_skip(why, "%s%s: zero page", pass, bn);
	} else if (zp == PT_YES) {
		tap_ok(count_attr(at, 0, 8, PT_ATTR_ZERO) == 8 && count_attr(at, 8, 16, PT_ATTR_ZERO) == 0,
		       "%s%s: read-faulted pages map the zero page, written ones do not", pass, bn);
		tap_skip(why, "%s%s: no zero page: read-faulted pages are plain present pages", pass, bn);
	} else {
		bool forced = fx_zero_page_forced();
		/* the kernel's word (exclusive real pages) holds unless the probe was overruled */
		size_t excl = count_attr(at, 0, 16, PT_ATTR_EXCLUSIVE);

		tap_skip(why, "%s%s: read-faulted pages map the zero page, written ones do not", pass, bn);
		tap_ok(count_attr(at, 0, 16, PT_ATTR_ZERO) == 0 && !limit && (forced || excl == 16),
		       "%s%s: no zero page: read-faulted pages are plain present pages (no PT_ATTR_ZERO, "
		       "no PT_LIMIT_NO_ZERO%s; %zu/16 exclusive)", pass, bn,
		       forced ? "; forced, the kernel maps it" : ", exclusive", excl);
	}
	pt_target_free(t);
	munmap((void *)p, 16 * FX_PAGE);
}

static void test_guard(enum pt_scan_backend b)
{
	const char *bn = pt_scan_backend_name(b);
	char *p = fx_map(16 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t st[16];
	uint32_t at[16];

	fill(p, 16);
	if (madvise(p + 4 * FX_PAGE, 8 * FX_PAGE, MADV_GUARD_INSTALL) != 0) {
		tap_skip("MADV_GUARD_INSTALL not supported", "%s: guard region", bn);
		munmap(p, 16 * FX_PAGE);
		return;
	}
	tap_ok(scan(b, p, 16, 0, st, at) == 0 && fx_count(st, 4, 12, PT_STATE_ABSENT) == 8 &&
		       count_attr(at, 4, 12, PT_ATTR_GUARD) == 8 &&
		       fx_count(st, 0, 4, PT_STATE_PRESENT) == 4 &&
		       fx_count(st, 12, 16, PT_STATE_PRESENT) == 4 &&
		       count_attr(at, 0, 4, PT_ATTR_GUARD) == 0,
	       "%s: guard pages absent with the guard attribute, neighbours present", bn);
	munmap(p, 16 * FX_PAGE);
}

static void test_cow_fork(enum pt_scan_backend b)
{
	const char *bn = pt_scan_backend_name(b);
	char *p = fx_map(16 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t st[16];
	uint32_t at[16];
	int pfd[2];
	pid_t pid;
	char c;

	fill(p, 16);
	tap_ok(scan(b, p, 16, 0, st, at) == 0 && count_attr(at, 0, 16, PT_ATTR_EXCLUSIVE) == 16,
	       "%s: pages exclusive before fork", bn);
	if (pipe(pfd)) {
		tap_skip("pipe failed", "%s: COW pages shared with a child", bn);
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		p[0] = 'c';	/* child breaks COW of page 0 only */
		if (write(pfd[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], &c, 1) != 1)
		c = 0;
	close(pfd[0]);
	tap_ok(scan(b, p, 16, 0, st, at) == 0 && fx_count(st, 0, 16, PT_STATE_PRESENT) == 16 &&
		       count_attr(at, 1, 16, PT_ATTR_EXCLUSIVE) == 0,
	       "%s: COW pages shared with the child are reported non-exclusive", bn);
	fx_child_kill(pid);
	munmap(p, 16 * FX_PAGE);
}

static void test_private_file(enum pt_scan_backend b)
{
	const char *bn = pt_scan_backend_name(b);
	char path[] = "/var/tmp/pt-test-XXXXXX";
	int fd = mkstemp(path);
	uint8_t st[NP];
	uint32_t at[NP];
	char *p, buf[FX_PAGE];
	int sum = 0;

	if (fd < 0) {
		tap_skip_n(3, "cannot create a file in /var/tmp", "%s: private file mapping", bn);
		return;
	}
	unlink(path);
	memset(buf, 'f', sizeof(buf));
	for (int i = 0; i < NP; i++)
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			break;
	p = fx_map(NP * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	for (int i = 0; i < 8; i++)
		sum += p[i * FX_PAGE];
	p[0] = 'w';	/* COW: becomes anonymous */
	tap_ok(sum == 8 * 'f' && scan(b, p, NP, 0, st, at) == 0 &&
		       fx_count(st, 0, 8, PT_STATE_PRESENT) == 8,
	       "%s: read pages of a private file mapping present", bn);
	tap_ok((at[0] & PT_ATTR_FILE) == 0 && count_attr(at, 1, 8, PT_ATTR_FILE) == 7,
	       "%s: the COW-written page is anonymous, read pages are file pages", bn);
	/* fault-around maps up to 16 neighbours; the rest are in the page cache */
	size_t cached = fx_count(st, 16, NP, PT_STATE_CACHED);
	tap_ok(cached > 0 && cached + fx_count(st, 16, NP, PT_STATE_PRESENT) == NP - 16,
	       "%s: unmapped pages of a just-written file are cached (%zu)", bn, cached);
	munmap(p, NP * FX_PAGE);
	close(fd);
}

static int uffd_wp_setup(void *p, size_t len, const char **why)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	struct uffdio_register reg = { .range = { (uintptr_t)p, len },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .range = { (uintptr_t)p, len },
					  .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	int fd;

	if (pt_feature(PT_FEAT_UFFD_WP_ASYNC, why) != PT_YES ||
	    pt_feature(PT_FEAT_UFFD_WP_UNPOPULATED, why) != PT_YES)
		return -1;
	fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		*why = "userfaultfd() failed";
		return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg) ||
	    ioctl(fd, UFFDIO_WRITEPROTECT, &wp)) {
		*why = "uffd-wp registration failed";
		close(fd);
		return -1;
	}
	return fd;
}

static void test_uffd_wp(enum pt_scan_backend b)
{
	const char *bn = pt_scan_backend_name(b), *why = "";
	char *p = fx_map(NP * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t st[NP];
	uint32_t at[NP];
	bool swap = fx_swap(&why);
	int fd;

	fill(p, 32);	/* 0-31 touched, 32-63 never touched */
	fd = uffd_wp_setup(p, NP * FX_PAGE, &why);
	if (fd < 0) {
		tap_skip_n(5, why, "%s: uffd-wp region", bn);
		munmap(p, NP * FX_PAGE);
		return;
	}
	if (swap)
		fx_pageout(p, 16 * FX_PAGE);
	tap_ok(scan(b, p, NP, 0, st, at) == 0, "%s: scan uffd-wp region", bn);
	if (swap)
		tap_ok(fx_count(st, 0, 16, PT_STATE_SWAPPED) == 16 &&
			       count_attr(at, 0, 16, PT_ATTR_UFFD_WP) == 16,
		       "%s: paged-out protected pages swapped and uffd-wp", bn);
	else
		tap_skip(why, "%s: paged-out protected pages", bn);
	tap_ok(fx_count(st, 16, 32, PT_STATE_PRESENT) == 16 &&
		       count_attr(at, 16, 32, PT_ATTR_UFFD_WP) == 16,
	       "%s: resident protected pages present and uffd-wp", bn);
	size_t absent = fx_count(st, 32, NP, PT_STATE_ABSENT);
	size_t unknown = fx_count(st, 32, NP, PT_STATE_UNKNOWN);
	tap_ok(absent == 32 || (unknown == 32 && geteuid() != 0),
	       "%s: never-touched pages with uffd-wp markers are absent, not swapped (%zu absent)",
	       bn, absent);
	p[40 * FX_PAGE] = 1;	/* async WP: the kernel resolves the fault */
	tap_ok(scan(b, p, NP, 0, st, at) == 0 && st[40] == PT_STATE_PRESENT &&
		       !(at[40] & PT_ATTR_UFFD_WP),
	       "%s: a written page loses uffd-wp", bn);
	close(fd);
	munmap(p, NP * FX_PAGE);
}

int main(void)
{
	nbackends = fx_backends(backends);
	if (pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL) != PT_YES)
		tap_diag("PAGEMAP_SCAN not available: only the read backend is tested");
	tap_plan(2 * N_PER_BACKEND + 2 * N_ZERO);
	for (int i = 0; i < nbackends; i++) {
		enum pt_scan_backend b = backends[i];

		test_private_anon(b);
		test_anon_swapped(b);
		test_thp(b);
		test_zero_page(b, "");
		test_guard(b);
		test_cow_fork(b);
		test_private_file(b);
		test_uffd_wp(b);
	}
	if (nbackends < 2)
		tap_skip_n(N_PER_BACKEND, "PAGEMAP_SCAN not supported by this kernel",
			   "pagemap_scan backend layouts");
	/* both branches of the zero-page probe: force "no" where the kernel maps it */
	if (pt__zero_page(NULL) == PT_YES) {
		setenv("PT_FORCE_NO_ZERO_PAGE", "1", 1);
		pt__features_reset();
		for (int i = 0; i < nbackends; i++)
			test_zero_page(backends[i], "forced no zero page: ");
		if (nbackends < 2)
			tap_skip_n(N_ZERO, "PAGEMAP_SCAN not supported by this kernel",
				   "forced no zero page: pagemap_scan backend");
		unsetenv("PT_FORCE_NO_ZERO_PAGE");
		pt__features_reset();
	} else {
		tap_skip_n(2 * N_ZERO, fx_zero_page_forced() ? "already forced" :
			   "the probe says the kernel does not map the zero page",
			   "forced no zero page: zero-page checks");
	}
	return tap_done();
}
