/* SPDX-License-Identifier: MIT */
/*
 * Feature probes: every answer valid and cached, and each checked
 * against a signal independent of the probe where one exists.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "pt_internal.h"	/* pt__features_reset */
#include "tap.h"
#include "uapi.h"

static const char *const expected_names[PT_FEAT__COUNT] = {
	"pagemap_scan", "scan_soft_dirty", "scan_guard", "pagemap_pfn", "soft_dirty",
	"uffd_syscall", "uffd_dev", "uffd_unprivileged", "uffd_wp_async",
	"uffd_wp_unpopulated", "uffd_wp_hugetlbfs_shmem", "pidfd_open", "pidfd_getfd",
	"process_madvise", "madv_pageout", "madv_guard_install", "kpageflags",
	"swap_active", "cap_sys_admin", "ptrace", "page_size_4k",
};

/* Effective capabilities from /proc/self/status (not capget). */
static int cap_eff(uint64_t *caps)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "re");
	int found = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %" SCNx64, caps) == 1)
			found = 0;
	fclose(f);
	return found;
}

/* Lines in /proc/swaps after the header, counted with stdio. */
static int swaps_lines(void)
{
	char line[512];
	FILE *f = fopen("/proc/swaps", "re");
	int n = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n < 0 ? 0 : n;
}

/* 1 if CONFIG_MEM_SOFT_DIRTY=y, 0 if unset, -1 if the config is not found. */
static int config_soft_dirty(const char **src)
{
	char cmd[512], line[256];
	struct utsname un;
	FILE *f = NULL;
	int r = -1;

	if (uname(&un) == 0) {
		snprintf(cmd, sizeof(cmd), "/boot/config-%s", un.release);
		f = fopen(cmd, "re");
		*src = "/boot/config";
	}
	if (!f && access("/proc/config.gz", R_OK) == 0) {
		f = popen("zcat /proc/config.gz 2>/dev/null", "r");
		*src = "/proc/config.gz";
		if (!f)
			return -1;
		while (fgets(line, sizeof(line), f)) {
			if (!strncmp(line, "CONFIG_MEM_SOFT_DIRTY=y", 23))
				r = 1;
			else if (strstr(line, "CONFIG_MEM_SOFT_DIRTY is not set"))
				r = 0;
		}
		pclose(f);
		return r;
	}
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "CONFIG_MEM_SOFT_DIRTY=y", 23))
			r = 1;
		else if (strstr(line, "CONFIG_MEM_SOFT_DIRTY is not set"))
			r = 0;
	}
	fclose(f);
	return r;
}

/* Direct PAGEMAP_SCAN attempt: 0, or -errno. */
static int direct_scan(uint64_t mask)
{
	char *p = fx_map(4 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct page_region vec[8];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + 4 * FX_PAGE,
		.vec = (uintptr_t)vec,
		.vec_len = 8,
		.return_mask = mask,
	};
	int fd, r;

	p[0] = 1;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
	} else {
		r = ioctl(fd, PAGEMAP_SCAN, &arg) < 0 ? -errno : 0;
		/* the written page must be reported present */
		if (r == 0 && mask == PAGE_IS_PRESENT &&
		    !(vec[0].start == (uintptr_t)p && (vec[0].categories & PAGE_IS_PRESENT)))
			r = -EBADMSG;
		close(fd);
	}
	munmap(p, 4 * FX_PAGE);
	return r;
}

static void *thread_probe(void *arg)
{
	int *out = arg;

	for (int f = 0; f < PT_FEAT__COUNT; f++)
		out[f] = pt_feature(f, NULL);
	return NULL;
}

static void check_valid_and_cached(void)
{
	bool valid = true, cached = true, reasons = true;

	for (int f = 0; f < PT_FEAT__COUNT; f++) {
		const char *r1 = NULL, *r2 = NULL;
		int s1 = pt_feature(f, &r1), s2 = pt_feature(f, &r2);

		if (s1 != PT_YES && s1 != PT_NO && s1 != PT_UNKNOWN) {
			valid = false;
			tap_diag("%s: state %d", pt_feature_name(f), s1);
		}
		if (!r1 || !*r1) {
			reasons = false;
			tap_diag("%s: empty reason", pt_feature_name(f));
		}
		if (s1 != s2 || r1 != r2)
			cached = false;
		tap_diag("%-24s %-7s %s", pt_feature_name(f),
			 s1 == PT_YES ? "yes" : s1 == PT_NO ? "no" : "unknown", r1 ? r1 : "(null)");
	}
	tap_ok(valid, "every feature is yes/no/unknown");
	tap_ok(reasons, "every feature has a non-empty reason");
	tap_ok(cached, "second call gives the same answer and the same reason pointer");
	tap_ok(pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL) >= 0, "reason pointer may be NULL");
}

static void check_names(void)
{
	bool stable = true, unique = true;

	for (int f = 0; f < PT_FEAT__COUNT; f++) {
		const char *n = pt_feature_name(f);

		if (!n || strcmp(n, expected_names[f])) {
			stable = false;
			tap_diag("feature %d: name %s, expected %s", f, n ? n : "(null)",
				 expected_names[f]);
		}
		for (int g = 0; g < f && n; g++)
			if (pt_feature_name(g) && !strcmp(pt_feature_name(g), n))
				unique = false;
	}
	tap_ok(stable, "feature names are the documented stable ids");
	tap_ok(unique, "feature names are unique");
}

static void check_bad_enum(void)
{
	const char *r = "untouched";

	tap_ok(pt_feature(PT_FEAT__COUNT, &r) == -EINVAL && !strcmp(r, "untouched"),
	       "pt_feature(PT_FEAT__COUNT) is -EINVAL and leaves reason alone");
	tap_ok(pt_feature((enum pt_feature)-1, NULL) == -EINVAL, "pt_feature(-1) is -EINVAL");
	tap_ok(pt_feature_name(PT_FEAT__COUNT) == NULL &&
	       pt_feature_name((enum pt_feature)-1) == NULL,
	       "pt_feature_name() of a bad enum is NULL");
}

static void check_caps(void)
{
	uint64_t caps;

	if (cap_eff(&caps) < 0) {
		tap_skip("no CapEff in /proc/self/status", "cap_sys_admin agrees with CapEff");
		tap_skip("no CapEff in /proc/self/status", "pagemap_pfn agrees with CAP_SYS_ADMIN");
		tap_skip("no CapEff in /proc/self/status", "ptrace is yes with CAP_SYS_PTRACE");
		return;
	}
	bool admin = caps & (1ULL << 21);

	tap_ok(pt_feature(PT_FEAT_CAP_SYS_ADMIN, NULL) == (admin ? PT_YES : PT_NO),
	       "cap_sys_admin agrees with CapEff bit 21 (%d)", admin);
	/* pagemap shows PFNs to openers with CAP_SYS_ADMIN (since 4.2). */
	tap_ok(pt_feature(PT_FEAT_PAGEMAP_PFN, NULL) == (admin ? PT_YES : PT_NO),
	       "pagemap_pfn == CAP_SYS_ADMIN (%d, euid %d)", admin, (int)geteuid());
	if (caps & (1ULL << 19))
		tap_ok(pt_feature(PT_FEAT_PTRACE, NULL) == PT_YES ||
		       access("/proc/sys/kernel/yama/ptrace_scope", F_OK) == 0,
		       "ptrace is yes with CAP_SYS_PTRACE and no Yama");
	else
		tap_skip("no CAP_SYS_PTRACE", "ptrace is yes with CAP_SYS_PTRACE");
}

static void check_scan(void)
{
	int r = direct_scan(PAGE_IS_PRESENT), st = pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL);

	tap_ok((r == 0) == (st == PT_YES),
	       "pagemap_scan (%d) agrees with a direct PAGEMAP_SCAN ioctl (%d)", st, r);
	if (st != PT_YES) {
		tap_skip("no PAGEMAP_SCAN", "scan_soft_dirty agrees with a direct ioctl");
		tap_skip("no PAGEMAP_SCAN", "scan_guard agrees with a direct ioctl");
		return;
	}
	r = direct_scan(PAGE_IS_SOFT_DIRTY);
	tap_ok((r == 0) == (pt_feature(PT_FEAT_SCAN_SOFT_DIRTY, NULL) == PT_YES),
	       "scan_soft_dirty agrees with a direct ioctl (%d)", r);
	r = direct_scan(PAGE_IS_GUARD);
	tap_ok((r == 0) == (pt_feature(PT_FEAT_SCAN_GUARD, NULL) == PT_YES),
	       "scan_guard agrees with a direct ioctl (%d)", r);
}

static void check_soft_dirty(void)
{
	const char *src = NULL, *why;
	int cfg = config_soft_dirty(&src), st = pt_feature(PT_FEAT_SOFT_DIRTY, &why);

	if (cfg < 0)
		tap_skip("kernel config not found in /boot or /proc/config.gz",
			 "soft_dirty agrees with CONFIG_MEM_SOFT_DIRTY");
	else
		tap_ok(st == (cfg ? PT_YES : PT_NO), "soft_dirty (%d: %s) agrees with "
		       "CONFIG_MEM_SOFT_DIRTY=%s in %s", st, why, cfg ? "y" : "n", src);
	/*
	 * The probe writes clear_refs in a child: the caller's own pagemap
	 * entries (soft-dirty bit included) must be unchanged by it.
	 */
	char *p = fx_map(FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t before = 0, after = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	off_t off = (off_t)((uintptr_t)p / FX_PAGE * 8);

	p[0] = 1;
	bool rd = fd >= 0 && pread(fd, &before, 8, off) == 8;
	pt__features_reset();
	pt_feature(PT_FEAT_SOFT_DIRTY, NULL);
	rd = rd && pread(fd, &after, 8, off) == 8;
	tap_ok(rd && before == after && (before & PT_PM_PRESENT),
	       "soft-dirty re-probe leaves the caller's pagemap entry alone (%#" PRIx64 " -> %#" PRIx64 ")",
	       before, after);
	if (fd >= 0)
		close(fd);
	munmap(p, FX_PAGE);
}

static void check_swap(void)
{
	const char *why;
	int n = swaps_lines();

	tap_ok(n >= 0 && pt_feature(PT_FEAT_SWAP_ACTIVE, NULL) == (n > 0 ? PT_YES : PT_NO),
	       "swap_active agrees with /proc/swaps (%d areas)", n);
	if (geteuid() != 0) {
		tap_skip("not root: cannot create swap", "swap_active follows reset after swapon");
		return;
	}
	if (!fx_swap(&why)) {
		tap_skip(why ? why : "no swap", "swap_active follows reset after swapon");
		return;
	}
	pt__features_reset();
	tap_ok(pt_feature(PT_FEAT_SWAP_ACTIVE, NULL) == PT_YES && swaps_lines() > 0,
	       "swap_active is yes after swap is on and the cache is reset");
}

static void check_misc(void)
{
	struct stat st;
	long r;
	int fd;

	fd = (int)syscall(__NR_pidfd_open, getpid(), 0);
	tap_ok((fd >= 0) == (pt_feature(PT_FEAT_PIDFD_OPEN, NULL) == PT_YES),
	       "pidfd_open agrees with a direct syscall");
	if (fd >= 0)
		close(fd);

	if (pt_feature(PT_FEAT_UFFD_DEV, NULL) == PT_YES)
		tap_ok(stat("/dev/userfaultfd", &st) == 0 && S_ISCHR(st.st_mode),
		       "uffd_dev yes implies /dev/userfaultfd is a character device");
	else
		tap_ok(stat("/dev/userfaultfd", &st) != 0 || access("/dev/userfaultfd", R_OK | W_OK) != 0 ||
		       pt_feature(PT_FEAT_UFFD_DEV, NULL) == PT_UNKNOWN,
		       "uffd_dev no implies /dev/userfaultfd missing or not accessible");

	{
		FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
		int v = -1;

		if (f) {
			if (fscanf(f, "%d", &v) != 1)
				v = -1;
			fclose(f);
		}
		tap_ok(pt_feature(PT_FEAT_UFFD_UNPRIVILEGED, NULL) == (v == 1 ? PT_YES : PT_NO),
		       "uffd_unprivileged agrees with the sysctl (%d)", v);
	}

	bool wp_any = pt_feature(PT_FEAT_UFFD_WP_ASYNC, NULL) == PT_YES ||
		      pt_feature(PT_FEAT_UFFD_WP_UNPOPULATED, NULL) == PT_YES ||
		      pt_feature(PT_FEAT_UFFD_WP_HUGETLBFS_SHMEM, NULL) == PT_YES;
	tap_ok(!wp_any || pt_feature(PT_FEAT_UFFD_SYSCALL, NULL) == PT_YES ||
	       pt_feature(PT_FEAT_UFFD_DEV, NULL) == PT_YES,
	       "uffd WP features only reported with a usable userfaultfd");

	/* An independent uffd: UFFDIO_API on a fresh fd lists the features. */
	fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		tap_skip("userfaultfd(2) unavailable here", "uffd_wp_async agrees with UFFDIO_API");
	} else {
		struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };

		/* Asking for the feature itself: accepted only when supported. */
		r = ioctl(fd, UFFDIO_API, &api);
		tap_ok((r == 0) == (pt_feature(PT_FEAT_UFFD_WP_ASYNC, NULL) == PT_YES),
		       "uffd_wp_async agrees with UFFDIO_API requesting WP_ASYNC (%ld)", r);
		close(fd);
	}

	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	{
		uint64_t v;
		bool ok = fd >= 0 && pread(fd, &v, 8, 0) == 8;

		if (fd >= 0)
			close(fd);
		tap_ok(ok == (pt_feature(PT_FEAT_KPAGEFLAGS, NULL) == PT_YES) ||
		       pt_feature(PT_FEAT_KPAGEFLAGS, NULL) == PT_UNKNOWN,
		       "kpageflags agrees with a direct pread");
	}

	char *p = fx_map(FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p[0] = 1;
	r = madvise(p, FX_PAGE, MADV_PAGEOUT);
	tap_ok((r == 0) == (pt_feature(PT_FEAT_MADV_PAGEOUT, NULL) == PT_YES),
	       "madv_pageout agrees with a direct madvise");
	r = madvise(p, FX_PAGE, MADV_GUARD_INSTALL);
	tap_ok((r == 0) == (pt_feature(PT_FEAT_MADV_GUARD_INSTALL, NULL) == PT_YES),
	       "madv_guard_install agrees with a direct madvise");
	munmap(p, FX_PAGE);
}

/* No child left, zombie or running: every helper was reaped. */
static bool no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

/* The soft-dirty child gave up on: a starved machine, not a failure. */
#define SD_LATE "not in time"

/*
 * The soft-dirty child itself, run whatever the probes say (where the
 * kernel has no soft-dirty its cost means nothing, its round trip does):
 * it reports, it is reaped, and past the bound it is killed and reaped.
 */
static void check_fault_cost_child(int sd)
{
	const char *what = "";
	uint64_t ns = 0;
	int r;

	if (access("/proc/self/clear_refs", W_OK)) {
		tap_skip("no writable /proc/self/clear_refs", "soft-dirty child: reports and is reaped");
	} else {
		r = pt__fault_cost_measure_soft_dirty(&ns, &what);
		if (r == -ETIMEDOUT)
			tap_skip("the child did not report in 20 s (a starved machine)",
				 "soft-dirty child: reports and is reaped");
		else
			tap_ok(r == 0 && no_children() && ns < 1000000000ULL &&
			       (sd != PT_YES || ns > 0),
			       "soft-dirty child: reports (%d, %s; %" PRIu64 " ns, soft_dirty %d) "
			       "and is reaped", r, r ? what : "ok", ns, sd);
	}

	/* it sleeps 60 s before reporting; the parent waits 100 ms */
	pt__fault_cost_test_child_sleep_ns = 60 * 1000000000ULL;
	pt__fault_cost_child_timeout_ms = 100;
	what = "";
	r = pt__fault_cost_measure_soft_dirty(&ns, &what);
	pt__fault_cost_test_child_sleep_ns = 0;
	pt__fault_cost_child_timeout_ms = 20000;
	tap_ok(r == -ETIMEDOUT && strstr(what, SD_LATE) && no_children(),
	       "soft-dirty child past the bound: ETIMEDOUT, killed and reaped (%d, %s)", r, what);
}

/* pt_fault_cost_ns(): measured on request, cached, a fallback with its reason. */
static void check_fault_cost(void)
{
	const char *how = NULL, *how2 = NULL, *wp_reason = NULL, *sd_reason = NULL;
	uint64_t ns = 0, ns2 = 1, touch_ns = 0;
	int k, k2, wp = pt_feature(PT_FEAT_UFFD_WP_ASYNC, &wp_reason);
	int sd = pt_feature(PT_FEAT_SOFT_DIRTY, &sd_reason);
	int want = wp == PT_YES ? PT_FAULT_KIND_UFFD_WP :
		   sd == PT_YES ? PT_FAULT_KIND_SOFT_DIRTY : PT_FAULT_KIND_FIRST_TOUCH;

	k = pt_fault_cost_ns(&ns, &how);
	tap_diag("fault cost: %s, %" PRIu64 " ns (%s)", pt_fault_kind_name(k), ns, how);
	tap_ok(pt_fault_kind_name(k) && how && *how && (k == PT_FAULT_KIND_NONE) == (ns == 0),
	       "fault cost: a known kind, a reason, ns 0 exactly when nothing was measured");
	/* the kind the probes call for: uffd-wp async, else soft-dirty, else first touch */
	if (want == PT_FAULT_KIND_SOFT_DIRTY && k != want && strstr(how, SD_LATE))
		tap_skip("the soft-dirty child did not report in 20 s (a starved machine)",
			 "the fault kind the probes call for");
	else
		tap_ok(k == want && ns > 0 && ns < 1000000000ULL &&
		       (wp == PT_YES || strstr(how, "uffd")),
		       "uffd_wp_async %d (%s), soft_dirty %d (%s): %s measured (want %s), 0 < %"
		       PRIu64 " ns < 1 s, the reason says why if not uffd-wp", wp, wp_reason,
		       sd, sd_reason, pt_fault_kind_name(k), pt_fault_kind_name(want), ns);
	k2 = pt_fault_cost_ns(&ns2, &how2);
	tap_ok(k2 == k && ns2 == ns && how2 == how && pt_fault_cost_ns(NULL, NULL) == k,
	       "cached: a second call gives the same kind, cost and reason pointer");
	tap_ok(!strcmp(pt_fault_kind_name(PT_FAULT_KIND_NONE), "none") &&
	       !strcmp(pt_fault_kind_name(PT_FAULT_KIND_UFFD_WP), "uffd_wp") &&
	       !strcmp(pt_fault_kind_name(PT_FAULT_KIND_FIRST_TOUCH), "first_touch") &&
	       !strcmp(pt_fault_kind_name(PT_FAULT_KIND_SOFT_DIRTY), "soft_dirty") &&
	       PT_FAULT_KIND_UFFD_WP == 1 && PT_FAULT_KIND_FIRST_TOUCH == 2 &&
	       PT_FAULT_KIND_SOFT_DIRTY == 3 &&
	       !pt_fault_kind_name((enum pt_fault_kind)4) &&
	       !pt_fault_kind_name((enum pt_fault_kind)-1),
	       "fault kind names are the documented stable ids, NULL outside the enum");

	/* the last fallback, forced, measures first touches and says so */
	setenv("PT_FORCE_FAULT_COST", "first_touch", 1);
	pt__features_reset();
	pt__fault_cost_reset();
	k = pt_fault_cost_ns(&ns, &how);
	touch_ns = ns;
	tap_ok(k == PT_FAULT_KIND_FIRST_TOUCH && ns > 0 && ns < 1000000000ULL &&
	       strstr(how, "PT_FORCE_FAULT_COST"),
	       "PT_FORCE_FAULT_COST=first_touch: first-touch cost %" PRIu64 " ns (%s)", ns, how);

	/* uffd-wp skipped: soft-dirty where the kernel has it, else first touch */
	setenv("PT_FORCE_FAULT_COST", "soft_dirty", 1);
	pt__features_reset();
	pt__fault_cost_reset();
	k = pt_fault_cost_ns(&ns, &how);
	sd = pt_feature(PT_FEAT_SOFT_DIRTY, &sd_reason);
	want = sd == PT_YES ? PT_FAULT_KIND_SOFT_DIRTY : PT_FAULT_KIND_FIRST_TOUCH;
	if (want == PT_FAULT_KIND_SOFT_DIRTY && k != want && strstr(how, SD_LATE))
		tap_skip("the soft-dirty child did not report in 20 s (a starved machine)",
			 "PT_FORCE_FAULT_COST=soft_dirty");
	else
		tap_ok(k == want && ns > 0 && ns < 1000000000ULL &&
		       strstr(how, "PT_FORCE_FAULT_COST=soft_dirty") &&
		       (sd == PT_YES || strstr(how, "no soft-dirty")),
		       "PT_FORCE_FAULT_COST=soft_dirty, soft_dirty %d (%s): %s, %" PRIu64 " ns (%s)",
		       sd, sd_reason, pt_fault_kind_name(k), ns, how);
	if (k == PT_FAULT_KIND_SOFT_DIRTY && touch_ns)
		tap_diag("soft-dirty fault %" PRIu64 " ns, first touch %" PRIu64 " ns: %.2fx",
			 ns, touch_ns, (double)touch_ns / (double)(ns ? ns : 1));
	unsetenv("PT_FORCE_FAULT_COST");
	pt__features_reset();
	pt__fault_cost_reset();
	check_fault_cost_child(pt_feature(PT_FEAT_SOFT_DIRTY, NULL));

	/*
	 * Robust against runs that wait or are preempted: two runs in three
	 * sleep 2 ms mid-way (in wall time that is ~7.8 µs more per page,
	 * the size of the outlier once seen): the median stays near the
	 * cost measured undisturbed.
	 */
	/*
	 * Two measurements of an undisturbed machine can differ by 2x on
	 * their own where a vCPU's CPU time includes the host's preemption
	 * (a TCG guest on a loaded host: 20 then 56 µs seen).  A probe that
	 * is not robust fails every pair; noise fails one: up to 3 pairs.
	 */
	for (int pair = 0; pair < 3; pair++) {
		k = pt_fault_cost_ns(&ns, NULL);
		pt__fault_cost_reset();
		pt__fault_cost_test_stall_ns = 2000000;
		k2 = pt_fault_cost_ns(&ns2, NULL);
		pt__fault_cost_test_stall_ns = 0;
		pt__fault_cost_reset();
		if (k2 != k || k == PT_FAULT_KIND_NONE || ns2 <= 2 * ns + 500)
			break;
		tap_diag("pair %d: stalled %" PRIu64 " ns against %" PRIu64 " ns undisturbed: again",
			 pair + 1, ns2, ns);
	}
	tap_ok(k2 == k && (k == PT_FAULT_KIND_NONE || ns2 <= 2 * ns + 500),
	       "fault cost with most runs stalled 2 ms: %" PRIu64 " ns (undisturbed: %" PRIu64 " ns)",
	       ns2, ns);
}

static void check_threads(void)
{
	pthread_t th[4];
	int res[4][PT_FEAT__COUNT], ref[PT_FEAT__COUNT];
	bool same = true;

	pt__features_reset();
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, thread_probe, res[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	thread_probe(ref);
	for (int i = 0; i < 4; i++)
		if (memcmp(res[i], ref, sizeof(ref)))
			same = false;
	tap_ok(same, "concurrent first calls from 4 threads agree");
}

int main(void)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	tap_diag("probing took %.2f ms", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);

	/* per function, in the order called below */
	tap_plan(4 + 2 + 3 + 3 + 3 + 2 + 8 + 9 + 1 + 2);
	check_valid_and_cached();
	check_names();
	check_bad_enum();
	check_caps();
	check_scan();
	check_soft_dirty();
	check_misc();
	check_fault_cost();
	check_threads();
	check_swap();
	return tap_done();
}
