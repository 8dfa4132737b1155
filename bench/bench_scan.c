/* SPDX-License-Identifier: MIT */
/*
 * bench_scan: scan throughput of the pagetrack API against the raw kernel
 * interfaces measured in the same run, and the cost of shared-memory
 * resolution.  Prints ratios, never asserts on time: the exit code is 0
 * unless something failed (an API error, wrong page counts).  See
 * doc/bench.md for what is measured and the latest figures.
 *
 * Parts, in output order (each big target is a forked child; never two
 * at once):
 *   1. scan:    4 GiB private anonymous, all resident, idle.
 *   2. reserve: a 64 TiB PROT_NONE reservation (in the part 1 target).
 *   3. shared:  4 GiB MAP_SHARED anonymous, every other 2 MiB paged out
 *               to swap (zram swap created when root and none is active).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/swap.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pt_internal.h"
#include "uapi.h"
#include "zram.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)
#define CHUNK (2 * MiB)			/* pageout granule of part 2 */
#define RAW_VEC_LEN (2 * PT_WINDOW_PAGES + 16)
#define API_CAP 4096			/* caller buffer, in regions */

static int reps = 5;
static int profile_be = -1;		/* -P: only repeat one API pass (for perf) */
static uint32_t profile_flags;
static const char *only;		/* -x scan|shared: run one part */
static uint64_t size = 4 * GiB;
static int failed;
static uint64_t pageout_budget;		/* part 2: bytes the target pages out */

/* What an interrupted run must undo (see on_signal()). */
static volatile pid_t live_child;
static volatile int live_own_zram = -1;
static volatile int live_common_zram;

struct child {
	pid_t pid;
	uint64_t addr, len;	/* the measured region */
	uint64_t res;		/* 64 TiB reservation (part 1), 0 if none */
	uint64_t paged;		/* bytes paged out (part 2) */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double gbps(uint64_t bytes, double sec)
{
	return sec > 0 ? (double)bytes / sec / 1e9 : 0;
}

/* ---- targets ---- */

/*
 * Fill every page with data that is neither zero nor same-filled (zram
 * stores same-filled pages for free) yet compresses well, so swapping
 * it out costs little memory: eight distinct words per page.
 */
static void fill(char *p, uint64_t len)
{
	for (uint64_t off = 0; off < len; off += PT_PAGE_SIZE)
		for (unsigned i = 0; i < 8; i++)
			*(uint64_t *)(p + off + i * 512) = (off >> PT_PAGE_SHIFT) * 8 + i + 1;
}

/* Runs in the child: build the target, report it on @wfd, then idle. */
static void child_main(int wfd, bool shared)
{
	struct child c = { .pid = getpid(), .len = size };
	int flags = MAP_ANONYMOUS | (shared ? MAP_SHARED : MAP_PRIVATE);
	char *p;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		_exit(2);
	/* no THP: the region is measured as 4 KiB pages (see doc/bench.md) */
	madvise(p, size, MADV_NOHUGEPAGE);
	fill(p, size);
	c.addr = (uint64_t)(uintptr_t)p;
	if (!shared) {
		void *r = mmap(NULL, 64 * TiB, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		c.res = r == MAP_FAILED ? 0 : (uint64_t)(uintptr_t)r;
	} else {
		/* every other 2 MiB chunk, up to the budget the parent set */
		for (uint64_t off = 0; off + CHUNK <= size && c.paged < pageout_budget;
		     off += 2 * CHUNK) {
			if (madvise(p + off, CHUNK, MADV_PAGEOUT))
				_exit(3);
			c.paged += CHUNK;
		}
	}
	if (write(wfd, &c, sizeof(c)) != (ssize_t)sizeof(c))
		_exit(4);
	close(wfd);
	for (;;)
		pause();
}

static int child_start(struct child *c, bool shared)
{
	int fds[2];
	ssize_t got;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	fflush(NULL);
	c->pid = fork();
	if (c->pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -errno;
	}
	if (c->pid == 0) {
		close(fds[0]);
		child_main(fds[1], shared);
	}
	close(fds[1]);
	live_child = c->pid;
	got = read(fds[0], c, sizeof(*c));
	close(fds[0]);
	if (got != (ssize_t)sizeof(*c)) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		c->pid = 0;
		return -EIO;
	}
	return 0;
}

static void child_stop(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	c->pid = 0;
	live_child = 0;
}

/* MemAvailable in bytes, 0 if unknown. */
static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kb = 0;
	char line[256];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* A @size target must fit with room to spare; else say why we skip. */
static bool enough_memory(void)
{
	uint64_t avail = mem_available();

	if (avail && avail < size + GiB) {
		printf("skipped: needs %llu MiB available, %llu MiB are (use -s SIZE_MiB)\n",
		       (unsigned long long)((size + GiB) / MiB), (unsigned long long)(avail / MiB));
		return false;
	}
	return true;
}

/* ---- output ---- */

static void header(const char *title)
{
	if (title)
		printf("\n== %s\n", title);
	printf("%-34s %12s %12s %7s %7s %s\n", "measurement", "value", "raw ref", "ratio",
	       "target", "result");
}

static void line_info(const char *name, double v, const char *unit)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.2f %s", v, unit);
	printf("%-34s %12s %12s %7s %7s %s\n", name, buf, "-", "-", "-", "info");
}

/* @higher_better: target is ratio >= @target, else ratio <= @target. */
static void line_ratio(const char *name, double v, double ref, const char *unit,
		       double target, bool higher_better)
{
	char a[32], b[32], tg[16];
	double ratio = ref > 0 ? v / ref : 0;
	bool pass = higher_better ? ratio >= target : ratio <= target;

	snprintf(a, sizeof(a), "%.2f %s", v, unit);
	snprintf(b, sizeof(b), "%.2f %s", ref, unit);
	snprintf(tg, sizeof(tg), "%s%.1f", higher_better ? ">=" : "<=", target);
	printf("%-34s %12s %12s %7.2f %7s %s\n", name, a, b, ratio, tg, pass ? "PASS" : "MISS");
}

/* ---- raw kernel loops ---- */

static uint64_t lib_return_mask(void)
{
	uint64_t cats = pt__scan_categories();

	return PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_FILE | PAGE_IS_PFNZERO |
	       PAGE_IS_HUGE | PAGE_IS_WRITTEN | (cats & (PAGE_IS_SOFT_DIRTY | PAGE_IS_GUARD));
}

/* One tight PAGEMAP_SCAN pass; returns seconds or < 0. */
static double raw_scan(int fd, uint64_t start, uint64_t end, struct page_region *vec)
{
	struct pm_scan_arg arg;
	uint64_t cur = start;
	double t0 = now();

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.vec = (uint64_t)(uintptr_t)vec;
	arg.vec_len = RAW_VEC_LEN;
	arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	arg.return_mask = lib_return_mask();
	while (cur < end) {
		arg.start = cur;
		arg.end = end;
		if (ioctl(fd, PAGEMAP_SCAN, &arg) < 0 || arg.walk_end <= cur)
			return -1;
		cur = arg.walk_end;
	}
	return now() - t0;
}

/* One tight pread pass in windows of @win pages; returns seconds or < 0. */
static double raw_pread(int fd, uint64_t start, uint64_t end, uint64_t win, uint64_t *buf)
{
	double t0 = now();

	for (uint64_t a = start; a < end; a += win << PT_PAGE_SHIFT) {
		uint64_t n = (end - a) >> PT_PAGE_SHIFT;

		if (n > win)
			n = win;
		if (pread(fd, buf, n * 8, (off_t)((a >> PT_PAGE_SHIFT) * 8)) != (ssize_t)(n * 8))
			return -1;
	}
	return now() - t0;
}

/* ---- API passes ---- */

struct counts {
	uint64_t pages[PT_STATE__COUNT];
	uint64_t regions;
};

/*
 * One pt_scan() pass over [start, end) with a fresh target, as a caller
 * doing one scan pays it (open, layout, scratch, scan).  @map_like adds
 * pt_vmas_read() as `pagetrack map` does.  Returns seconds or < 0.
 */
static double api_pass(pid_t pid, enum pt_scan_backend be, uint32_t flags, uint64_t start,
		       uint64_t end, bool map_like, struct pt_region *buf, struct counts *cnt)
{
	PT_OPTS(pt_target_opts, to, .scan_backend = be);
	PT_OPTS(pt_scan_opts, so, .flags = flags);
	struct pt_target *t;
	uint64_t cur = start;
	double t0 = now(), dt = -1;
	int n;

	memset(cnt, 0, sizeof(*cnt));
	t = pt_target_create(pid, &to);
	if (!t) {
		fprintf(stderr, "bench_scan: pt_target_create(%d, %s): %s\n", pid,
			pt_scan_backend_name(be), strerror(errno));
		return -1;
	}
	if (map_like) {
		struct pt_vma *v = NULL;
		size_t nv = 0;

		n = pt_vmas_read(t, &v, &nv);
		pt_vmas_free(v);
		if (n < 0) {
			fprintf(stderr, "bench_scan: pt_vmas_read: %s\n", strerror(-n));
			goto out;
		}
	}
	while ((n = pt_scan(t, &cur, end, buf, API_CAP, &so)) > 0) {
		for (int i = 0; i < n; i++)
			cnt->pages[buf[i].state] += (buf[i].end - buf[i].start) >> PT_PAGE_SHIFT;
		cnt->regions += (uint64_t)n;
	}
	if (n < 0) {
		fprintf(stderr, "bench_scan: pt_scan(%s, flags %#x): %s\n", pt_scan_backend_name(be),
			flags, strerror(-n));
		goto out;
	}
	dt = now() - t0;
out:
	pt_target_free(t);
	return dt;
}

/* Best of reps (plus one warm-up) of api_pass(). */
static double api_best(pid_t pid, enum pt_scan_backend be, uint32_t flags, uint64_t start,
		       uint64_t end, bool map_like, struct pt_region *buf, struct counts *cnt)
{
	double best = -1;

	for (int r = 0; r <= reps; r++) {
		double dt = api_pass(pid, be, flags, start, end, map_like, buf, cnt);

		if (dt < 0)
			return -1;
		if (r && (best < 0 || dt < best))
			best = dt;
	}
	return best;
}

static void print_counts(const char *what, const struct counts *c)
{
	printf("  %-32s present %llu swapped %llu cached %llu absent %llu unknown %llu"
	       " (%llu regions)\n", what,
	       (unsigned long long)c->pages[PT_STATE_PRESENT],
	       (unsigned long long)c->pages[PT_STATE_SWAPPED],
	       (unsigned long long)c->pages[PT_STATE_CACHED],
	       (unsigned long long)c->pages[PT_STATE_ABSENT],
	       (unsigned long long)c->pages[PT_STATE_UNKNOWN],
	       (unsigned long long)c->regions);
}

static const char *flags_name(uint32_t f)
{
	return f & PT_SCAN_NO_EXCLUSIVE ? "no_exclusive" : f & PT_SCAN_NO_SHARED ? "no_shared"
									: "default";
}

/* ---- part 1 (and 3): private anonymous throughput, reservation ---- */

static int part_scan(void)
{
	static const uint32_t fl[] = { 0, PT_SCAN_NO_EXCLUSIVE };
	struct page_region *vec = malloc(RAW_VEC_LEN * sizeof(*vec));
	uint64_t *pm = malloc(PT_WINDOW_PAGES * sizeof(uint64_t));
	struct pt_region *buf = malloc(API_CAP * sizeof(*buf));
	double r_scan = -1, r_2m = -1, r_256m = -1;
	struct child c = { 0 };
	char path[64], name[64];
	int fd = -1, err = 0;

	if (!vec || !pm || !buf) {
		err = -ENOMEM;
		goto out;
	}
	printf("\nsetting up: %llu MiB private anonymous target ...\n",
	       (unsigned long long)(size / MiB));
	if (!enough_memory())
		goto out;
	err = child_start(&c, false);
	if (err) {
		fprintf(stderr, "bench_scan: cannot start the target: %s\n", strerror(-err));
		goto out;
	}
	uint64_t start = c.addr, end = c.addr + c.len;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", c.pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		fprintf(stderr, "bench_scan: %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (profile_be >= 0) {
		struct counts cnt;
		double dt = api_best(c.pid, (enum pt_scan_backend)profile_be, profile_flags, start, end,
				     false, buf, &cnt);

		printf("profile %s flags %#x: %.2f GB/s\n", pt_scan_backend_name(profile_be),
		       profile_flags, gbps(c.len, dt));
		print_counts("counts:", &cnt);
		goto out;
	}
	header("scan throughput: 4 KiB pages, all resident (GB of address space/s)");
	for (int r = 0; r <= reps; r++) {
		double a = -1, b, d;

		if (pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL) == PT_YES &&
		    (a = raw_scan(fd, start, end, vec)) < 0) {
			err = -errno;
			fprintf(stderr, "bench_scan: raw PAGEMAP_SCAN: %s\n", strerror(errno));
			goto out;
		}
		b = raw_pread(fd, start, end, 512, pm);
		d = raw_pread(fd, start, end, PT_WINDOW_PAGES, pm);
		if (b < 0 || d < 0) {
			err = -EIO;
			fprintf(stderr, "bench_scan: raw pread of %s failed\n", path);
			goto out;
		}
		if (!r)
			continue;	/* warm-up */
		if (a >= 0 && (r_scan < 0 || a < r_scan))
			r_scan = a;
		if (r_2m < 0 || b < r_2m)
			r_2m = b;
		if (r_256m < 0 || d < r_256m)
			r_256m = d;
	}
	double g_scan = gbps(c.len, r_scan), g_2m = gbps(c.len, r_2m),
	       g_256m = gbps(c.len, r_256m);
	if (r_scan >= 0)
		line_info("raw PAGEMAP_SCAN loop", g_scan, "GB/s");
	else
		printf("%-34s skipped: PAGEMAP_SCAN not available\n", "raw PAGEMAP_SCAN loop");
	line_info("raw pread 2 MiB windows", g_2m, "GB/s");
	line_info("raw pread 256 MiB windows", g_256m, "GB/s");

	for (size_t i = 0; i < 2; i++) {
		struct counts cnt;
		double dt;

		if (r_scan >= 0) {
			dt = api_best(c.pid, PT_SCAN_BACKEND_PAGEMAP_SCAN, fl[i], start, end, false, buf,
				      &cnt);
			if (dt < 0 || cnt.pages[PT_STATE_PRESENT] != c.len >> PT_PAGE_SHIFT)
				goto bad;
			snprintf(name, sizeof(name), "api pagemap_scan %s", flags_name(fl[i]));
			line_ratio(name, gbps(c.len, dt), g_scan, "GB/s", 0.5, true);
		}
		dt = api_best(c.pid, PT_SCAN_BACKEND_PAGEMAP_READ, fl[i], start, end, false, buf, &cnt);
		if (dt < 0 || cnt.pages[PT_STATE_PRESENT] != c.len >> PT_PAGE_SHIFT)
			goto bad;
		snprintf(name, sizeof(name), "api pagemap_read %s", flags_name(fl[i]));
		line_ratio(name, gbps(c.len, dt), g_256m, "GB/s", 0.5, true);
		snprintf(name, sizeof(name), "  same vs raw 2 MiB pread");
		line_ratio(name, gbps(c.len, dt), g_2m, "GB/s", 0.5, true);
		continue;
bad:
		if (dt >= 0) {
			print_counts("unexpected counts:", &cnt);
			fprintf(stderr, "bench_scan: expected %llu present pages\n",
				(unsigned long long)(c.len >> PT_PAGE_SHIFT));
		}
		err = -EIO;
		goto out;
	}

	header("64 TiB PROT_NONE reservation: one pt_scan pass, fresh target (ms)");
	if (!c.res) {
		printf("%-34s skipped: the 64 TiB reservation could not be mapped\n", "reservation");
		goto out;
	}
	for (int be = PT_SCAN_BACKEND_PAGEMAP_SCAN; be <= PT_SCAN_BACKEND_PAGEMAP_READ; be++) {
		struct counts cnt;
		double dt;

		if (be == PT_SCAN_BACKEND_PAGEMAP_SCAN && r_scan < 0)
			continue;
		dt = api_best(c.pid, (enum pt_scan_backend)be, 0, c.res, c.res + 64 * TiB, false, buf,
			      &cnt);
		if (dt < 0 || cnt.pages[PT_STATE_ABSENT] != (64 * TiB) >> PT_PAGE_SHIFT) {
			if (dt >= 0)
				print_counts("unexpected counts:", &cnt);
			err = -EIO;
			goto out;
		}
		snprintf(name, sizeof(name), "reservation %s", pt_scan_backend_name((enum pt_scan_backend)be));
		line_info(name, dt * 1e3, "ms");
	}
out:
	if (fd >= 0)
		close(fd);
	child_stop(&c);
	free(vec);
	free(pm);
	free(buf);
	return err;
}

/* ---- swap for part 2 ---- */

/* Free swap space in bytes, from /proc/swaps. */
static uint64_t swap_free(void)
{
	FILE *f = fopen("/proc/swaps", "re");
	unsigned long long sz, used;
	uint64_t total = 0;
	char line[512];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %*s %llu %llu", &sz, &used) == 2 && sz > used)
			total += (sz - used) * 1024;
	fclose(f);
	return total;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), err = 0;
	ssize_t len = (ssize_t)strlen(s);

	if (fd < 0)
		return -errno;
	if (write(fd, s, (size_t)len) != len)
		err = -EIO;
	close(fd);
	return err;
}

/*
 * Add a zram swap device of our own (zram-control/hot_add), preferred
 * over any other active swap so our pages land on it and do not fill
 * another user's device.  pt_zram_swap_on() only creates swap when none
 * is active, hence this.  Returns the zram id or -errno.
 */
static int own_zram_on(uint64_t bytes, const char **why)
{
	char path[96], cmd[128];
	int id = -1, err;
	FILE *f = fopen("/sys/class/zram-control/hot_add", "re");

	if (!f || fscanf(f, "%d", &id) != 1 || id < 0) {
		if (f)
			fclose(f);
		*why = "cannot add a zram device (zram-control/hot_add)";
		return -ENODEV;
	}
	fclose(f);
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", id);
	snprintf(cmd, sizeof(cmd), "%lluM", (unsigned long long)(bytes / MiB));
	err = write_file(path, cmd);
	if (!err) {
		snprintf(cmd, sizeof(cmd), "mkswap /dev/zram%d >/dev/null 2>&1", id);
		err = system(cmd) == 0 ? 0 : -EIO;
	}
	if (!err) {
		snprintf(path, sizeof(path), "/dev/zram%d", id);
		err = swapon(path, SWAP_FLAG_PREFER | (10 & SWAP_FLAG_PRIO_MASK)) ? -errno : 0;
	}
	if (err) {
		*why = "cannot set up an extra zram swap device";
		snprintf(cmd, sizeof(cmd), "%d", id);
		write_file("/sys/class/zram-control/hot_remove", cmd);
		return err;
	}
	return id;
}

static void own_zram_off(int id)
{
	char path[96], num[16];

	snprintf(path, sizeof(path), "/dev/zram%d", id);
	swapoff(path);
	snprintf(path, sizeof(path), "/sys/block/zram%d/reset", id);
	write_file(path, "1");
	snprintf(num, sizeof(num), "%d", id);
	write_file("/sys/class/zram-control/hot_remove", num);
}

/* ---- part 2: shared-memory resolution cost ---- */

/*
 * The kernel floor of resolution: mincore() over every paged-out chunk
 * of the object (the per-page work no resolution can avoid: telling
 * swap from swap cache), through our own read-only mapping of
 * /proc/PID/map_files.  Best of reps, seconds, or < 0.
 */
static double raw_mincore(const struct child *c, uint64_t *swapped)
{
	unsigned char *vec = malloc(CHUNK >> PT_PAGE_SHIFT);
	char path[96];
	double best = -1;
	void *map = MAP_FAILED;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", c->pid,
		 (unsigned long long)c->addr, (unsigned long long)(c->addr + c->len));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		map = mmap(NULL, c->len, PROT_READ, MAP_SHARED, fd, 0);
	if (!vec || map == MAP_FAILED)
		goto out;
	for (int r = 0; r <= reps; r++) {
		double t0 = now();
		uint64_t n = 0;

		for (uint64_t off = 0; off < c->paged * 2; off += 2 * CHUNK) {
			if (mincore((char *)map + off, CHUNK, vec))
				goto out;
			for (uint64_t i = 0; i < CHUNK >> PT_PAGE_SHIFT; i++)
				n += !(vec[i] & 1);
		}
		double dt = now() - t0;
		if (r && (best < 0 || dt < best))
			best = dt;
		*swapped = n;
	}
out:
	if (map != MAP_FAILED)
		munmap(map, c->len);
	if (fd >= 0)
		close(fd);
	free(vec);
	return best;
}

/* Page counts of one map-like pass must be whole and, resolved, known. */
static bool shared_counts_ok(const struct child *c, const struct counts *k, bool resolved)
{
	uint64_t total = 0, paged = c->paged >> PT_PAGE_SHIFT;

	for (int s = 0; s < PT_STATE__COUNT; s++)
		total += k->pages[s];
	if (total != c->len >> PT_PAGE_SHIFT)
		return false;
	if (k->pages[PT_STATE_PRESENT] + paged != total)
		return false;	/* the paged-out half must not be mapped */
	if (!resolved)
		return k->pages[PT_STATE_UNKNOWN] == paged;
	return k->pages[PT_STATE_UNKNOWN] == 0 && k->pages[PT_STATE_ABSENT] == 0;
}

static int part_shared(void)
{
	struct pt_region *buf = malloc(API_CAP * sizeof(*buf));
	uint64_t want = size / 2, margin = 64 * MiB;
	int err = 0;
	struct child c = { 0 };
	const char *why = NULL;
	char name[64];

	printf("\n== shared-memory resolution: map-like pass, %llu MiB MAP_SHARED region,"
	       " half in swap (ms)\n", (unsigned long long)(size / MiB));
	if (!buf)
		return -ENOMEM;
	if (!enough_memory())
		goto out;
	if (geteuid() != 0) {
		printf("skipped: needs root (the shared object is opened via /proc/PID/map_files)\n");
		goto out;
	}
	/*
	 * Our own device first (root is checked above): our pages then go
	 * to it, and another user removing their swap mid-run cannot pull
	 * them back in.  Failing that, the shared helper or whatever swap
	 * is active.
	 */
	int id = own_zram_on(size * 3 / 2, &why);

	if (id >= 0) {
		live_own_zram = id;
	} else if (!pt_swap_active()) {
		int r = pt_zram_swap_on((size_t)(size * 3 / 2 / MiB), &why);

		if (r < 0) {
			printf("skipped: %s\n", why);
			goto out;
		}
		live_common_zram = r == 1;
	} else {
		printf("note: %s; using the active swap\n", why);
	}
	pageout_budget = want;
	if (swap_free() < want + margin)
		pageout_budget = swap_free() > margin ? (swap_free() - margin) & ~(CHUNK - 1) : 0;
	if (!pageout_budget) {
		printf("skipped: no free swap space\n");
		goto out;
	}
	printf("setting up: %llu MiB MAP_SHARED anonymous target, paging out %llu MiB"
	       " (every other 2 MiB) ...\n", (unsigned long long)(size / MiB),
	       (unsigned long long)(pageout_budget / MiB));
	double t0 = now();
	err = child_start(&c, true);
	if (err) {
		fprintf(stderr, "bench_scan: cannot start the shared target: %s\n", strerror(-err));
		goto out;
	}
	printf("  (set-up took %.1f s)\n", now() - t0);
	header(NULL);
	uint64_t start = c.addr, end = c.addr + c.len;

	if (profile_be >= 0) {
		struct counts cnt;
		double dt = api_best(c.pid, (enum pt_scan_backend)profile_be, profile_flags, start, end,
				     true, buf, &cnt);

		printf("profile %s flags %#x: %.2f ms\n", pt_scan_backend_name(profile_be),
		       profile_flags, dt * 1e3);
		print_counts("counts:", &cnt);
		goto out;
	}
	uint64_t nonres = 0;
	double floor_s = raw_mincore(&c, &nonres);

	if (floor_s >= 0)
		printf("%-34s %9.2f ms %12s %7s %7s info (%llu pages not resident)\n",
		       "raw mincore, paged-out chunks", floor_s * 1e3, "-", "-", "-",
		       (unsigned long long)nonres);
	for (int be = PT_SCAN_BACKEND_PAGEMAP_SCAN; be <= PT_SCAN_BACKEND_PAGEMAP_READ; be++) {
		struct counts with, without;
		double a, b;

		if (be == PT_SCAN_BACKEND_PAGEMAP_SCAN && pt_feature(PT_FEAT_PAGEMAP_SCAN, NULL) != PT_YES)
			continue;
		a = api_best(c.pid, (enum pt_scan_backend)be, 0, start, end, true, buf, &with);
		b = api_best(c.pid, (enum pt_scan_backend)be, PT_SCAN_NO_SHARED, start, end, true, buf,
			     &without);
		if (a < 0 || b < 0) {
			err = -EIO;
			goto out;
		}
		snprintf(name, sizeof(name), "map %s resolved / no_shared",
			 pt_scan_backend_name((enum pt_scan_backend)be));
		line_ratio(name, a * 1e3, b * 1e3, "ms", 2.0, false);
		if (floor_s >= 0)
			printf("  %-32s %9.2f ms %9.2f ms %7.2f  (no_shared + raw mincore:"
			       " the kernel floor)\n", "floor", (b + floor_s) * 1e3, b * 1e3,
			       (b + floor_s) / b);
		print_counts("resolved:", &with);
		print_counts("no_shared:", &without);
		if (!shared_counts_ok(&c, &with, true) || !shared_counts_ok(&c, &without, false)) {
			printf("  CHECK FAILED: expected %llu present and %llu paged-out pages\n",
			       (unsigned long long)((c.len - c.paged) >> PT_PAGE_SHIFT),
			       (unsigned long long)(c.paged >> PT_PAGE_SHIFT));
			err = -EIO;
		} else if (with.pages[PT_STATE_SWAPPED] * 10 < (c.paged >> PT_PAGE_SHIFT) * 9) {
			printf("  note: only %llu of %llu paged-out pages are in swap (rest cached)\n",
			       (unsigned long long)with.pages[PT_STATE_SWAPPED],
			       (unsigned long long)(c.paged >> PT_PAGE_SHIFT));
		}
	}
out:
	child_stop(&c);		/* frees the object and its swap before swapoff */
	if (live_own_zram >= 0)
		own_zram_off(live_own_zram);
	live_own_zram = -1;
	if (live_common_zram)
		pt_zram_swap_off();
	live_common_zram = 0;
	free(buf);
	return err;
}

/* Interrupted: do not leave a 4 GiB target or our swap device behind. */
static void on_signal(int sig)
{
	if (live_child > 0) {
		kill(live_child, SIGKILL);
		waitpid(live_child, NULL, 0);
	}
	if (live_own_zram >= 0)
		own_zram_off(live_own_zram);
	if (live_common_zram)
		pt_zram_swap_off();
	_exit(128 + sig);
}

int main(int argc, char **argv)
{
	int opt;

	while ((opt = getopt(argc, argv, "n:s:P:x:")) != -1) {
		switch (opt) {
		case 'n':
			reps = atoi(optarg);
			break;
		case 's':
			size = strtoull(optarg, NULL, 10) * MiB;
			break;
		case 'P':	/* -P BACKEND,FLAGS: repeat one API pass of part 1 */
			if (sscanf(optarg, "%d,%i", &profile_be, (int *)&profile_flags) < 1)
				profile_be = -1;
			break;
		case 'x':
			only = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-n REPS] [-s SIZE_MiB] [-x scan|shared]"
				" [-P BACKEND,FLAGS]\n",
				argv[0]);
			return 2;
		}
	}
	if (reps < 1 || size < 64 * MiB || size % (2 * CHUNK)) {
		fprintf(stderr, "bench_scan: need REPS >= 1 and SIZE a multiple of 4 MiB >= 64\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	struct utsname u;

	uname(&u);
	printf("pagetrack bench: Linux %s, %ld CPUs; best of %d after one warm-up;"
	       " ratios against raw kernel rates from this run\n", u.release,
	       sysconf(_SC_NPROCESSORS_ONLN), reps);
	if ((!only || !strcmp(only, "scan")) && part_scan())
		failed = 1;
	if ((!only || !strcmp(only, "shared")) && part_shared())
		failed = 1;
	return failed;
}
