/* SPDX-License-Identifier: MIT */
/*
 * bench_scale: how the uffd tracker's cost to set up and its pauses grow
 * with the target's shape.  Prints figures and ratios, never asserts on
 * time: the exit code is 0 unless something failed (an API error, a
 * collect that missed an area).  See doc/bench.md ("Scaling").
 *
 *   areas:   pt_tracker_create on a target with N separate one-page
 *            writable areas (100, 1000, 4000, 32000), against the raw
 *            kernel cost of the same arming done by the target itself
 *            (its own userfaultfd: register every area, one protect pass)
 *   threads: a target with T threads spinning and writing memory (1, 8,
 *            64): set-up time, then 5 collects; pause_ns_max (the longest
 *            time one thread was held stopped), pause_total_ns_max (first
 *            thread stopped to last resumed) and the longest gap each
 *            thread saw, against the same spin with no tracker
 *
 * Every target is a forked child driven over a pipe.  A watchdog kills a
 * target after -c CAP seconds (default 60) so that a set-up that does not
 * scale ends the measurement instead of the bench.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pt_internal.h"
#include "uapi.h"

#define MAX_THREADS 64
#define THREAD_BUF (64 * 1024)	/* each spinning thread writes its own 64 KiB */
#define NCOLLECT 5
#define API_CAP 4096

static int cap_s = 60;
static const char *only;
static int failed;
static volatile pid_t live_child;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void header(const char *title)
{
	printf("\n== %s\n", title);
	printf("%-38s %12s %12s %7s %7s %s\n", "measurement", "value", "raw ref", "ratio",
	       "target", "result");
}

static void line(const char *name, double v, double ref, const char *unit, const char *target,
		 const char *result, const char *note)
{
	char a[32], b[32] = "-", r[16] = "-";

	snprintf(a, sizeof(a), "%.2f %s", v, unit);
	if (ref > 0) {
		snprintf(b, sizeof(b), "%.2f %s", ref, unit);
		snprintf(r, sizeof(r), "%.2f", v / ref);
	}
	printf("%-38s %12s %12s %7s %7s %s%s%s\n", name, a, b, r, target, result,
	       note ? " " : "", note ? note : "");
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "bench_scale: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return err < 0 ? err : -err;
}

/* ---- the target ---- */

enum op {
	OP_WRITE_AREAS = 1,	/* one byte in every area's page */
	OP_RAW_ARM,		/* own uffd: register every area, protect (timed), undo */
	OP_GAPS,		/* reply: the longest gap of each thread since the last OP_GAPS */
};

struct reply {
	int64_t val;		/* ns, or -errno */
	uint64_t n;
	uint64_t gap[MAX_THREADS];
};

struct spin {
	pthread_t th;
	volatile uint64_t gap;	/* longest gap between two iterations */
	volatile int reset;
	unsigned char *buf;
};

static struct spin spins[MAX_THREADS];

/* Spin writing its buffer and reading the clock (vDSO: no system call). */
static void *spin_main(void *arg)
{
	struct spin *s = arg;
	uint64_t prev = now_ns(), i = 0;

	for (;;) {
		uint64_t t;

		s->buf[(i++ * 4096 + 64) % THREAD_BUF]++;
		t = now_ns();
		if (s->reset) {
			s->reset = 0;
			s->gap = 0;
		} else if (t - prev > s->gap) {
			s->gap = t - prev;
		}
		prev = t;
	}
	return NULL;
}

static int raw_arm(unsigned char *base, int nareas, int64_t *ns)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	struct page_region vec[64];
	uint64_t t0;
	int uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK), pm, err = 0;

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0)
		return -errno;
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0) {
		close(uffd);
		return -errno;
	}
	t0 = now_ns();
	for (int i = 0; i < nareas && !err; i++) {
		struct uffdio_register reg = {
			.range = { (uint64_t)(uintptr_t)(base + 2 * i * 4096), 4096 },
			.mode = UFFDIO_REGISTER_MODE_WP };

		if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
			err = -errno;
	}
	/* one protect pass over them all (the tracker walks each area) */
	for (uint64_t cur = (uint64_t)(uintptr_t)base,
		      end = (uint64_t)(uintptr_t)base + 2ull * nareas * 4096; !err && cur < end;) {
		struct pm_scan_arg a = { .size = sizeof(a),
					 .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
					 .start = cur, .end = end, .vec = (uint64_t)(uintptr_t)vec,
					 .vec_len = 64, .category_anyof_mask = PAGE_IS_PRESENT,
					 .return_mask = PAGE_IS_PRESENT };

		if (ioctl(pm, PAGEMAP_SCAN, &a) < 0 || a.walk_end <= cur)
			err = -EIO;
		cur = a.walk_end;
	}
	*ns = (int64_t)(now_ns() - t0);
	close(pm);
	close(uffd);	/* unregisters everything */
	return err;
}

static void child_main(int cmd_fd, int rep_fd, int nareas, int nthreads)
{
	unsigned char *base = NULL;
	struct reply r;
	uint32_t op;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (nareas) {
		/* one-page areas with one-page holes between them: they never merge */
		base = mmap(NULL, 2ull * nareas * 4096, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (base == MAP_FAILED)
			_exit(2);
		for (int i = 0; i < nareas; i++) {
			base[2 * i * 4096] = 1;
			if (munmap(base + (2 * i + 1) * 4096, 4096))
				_exit(2);
		}
	}
	for (int i = 0; i < nthreads; i++) {
		spins[i].buf = mmap(NULL, THREAD_BUF, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (spins[i].buf == MAP_FAILED || pthread_create(&spins[i].th, NULL, spin_main, &spins[i]))
			_exit(3);
	}
	memset(&r, 0, sizeof(r));
	r.n = (uint64_t)(uintptr_t)base;
	if (write(rep_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(4);
	while (read(cmd_fd, &op, sizeof(op)) == (ssize_t)sizeof(op)) {
		memset(&r, 0, sizeof(r));
		switch (op) {
		case OP_WRITE_AREAS:
			for (int i = 0; i < nareas; i++)
				base[2 * i * 4096 + 8]++;
			break;
		case OP_RAW_ARM: {
			int64_t ns = 0;
			int e = raw_arm(base, nareas, &ns);

			r.val = e ? e : ns;
			break;
		}
		case OP_GAPS:
			for (int i = 0; i < nthreads; i++) {
				r.gap[i] = spins[i].gap;
				spins[i].reset = 1;
			}
			break;
		default:
			r.val = -EINVAL;
		}
		if (write(rep_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(4);
	}
	_exit(0);
}

struct child {
	pid_t pid, watchdog;
	int cmd_fd, rep_fd;
	uint64_t base;
};

static void child_stop(struct child *c)
{
	if (c->watchdog > 0) {
		kill(c->watchdog, SIGKILL);
		waitpid(c->watchdog, NULL, 0);
	}
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	if (c->cmd_fd >= 0)
		close(c->cmd_fd);
	if (c->rep_fd >= 0)
		close(c->rep_fd);
	memset(c, 0, sizeof(*c));
	c->cmd_fd = c->rep_fd = -1;
	live_child = 0;
}

static int child_start(struct child *c, int nareas, int nthreads)
{
	int cmd[2], rep[2];
	struct reply r;

	memset(c, 0, sizeof(*c));
	c->cmd_fd = c->rep_fd = -1;
	if (pipe2(cmd, O_CLOEXEC))
		return -errno;
	if (pipe2(rep, O_CLOEXEC)) {
		close(cmd[0]);
		close(cmd[1]);
		return -errno;
	}
	fflush(NULL);
	c->pid = fork();
	if (c->pid == 0) {
		close(cmd[1]);
		close(rep[0]);
		child_main(cmd[0], rep[1], nareas, nthreads);
	}
	close(cmd[0]);
	close(rep[1]);
	c->cmd_fd = cmd[1];
	c->rep_fd = rep[0];
	if (c->pid < 0) {
		c->pid = 0;
		child_stop(c);
		return -ENOMEM;
	}
	live_child = c->pid;
	if (read(c->rep_fd, &r, sizeof(r)) != (ssize_t)sizeof(r)) {
		child_stop(c);
		return -EIO;
	}
	c->base = r.n;
	/* the watchdog: a set-up that takes longer than the cap is cut short */
	c->watchdog = fork();
	if (c->watchdog == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sleep((unsigned)cap_s);
		kill(c->pid, SIGKILL);
		_exit(0);
	}
	return 0;
}

static int child_do(struct child *c, uint32_t op, struct reply *r)
{
	if (write(c->cmd_fd, &op, sizeof(op)) != (ssize_t)sizeof(op) ||
	    read(c->rep_fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
		return -EIO;
	return r->val < 0 ? (int)r->val : 0;
}

/* One collect round (until !more): pages reported, or -errno. */
static int64_t collect_round(struct pt_tracker *tr, struct pt_dirty *buf, uint64_t base, int nareas,
			     int *areas_seen)
{
	uint64_t pages = 0;
	bool more = true;

	*areas_seen = 0;
	while (more) {
		int n = pt_tracker_collect(tr, buf, API_CAP, &more);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			pages += (buf[i].end - buf[i].start) >> PT_PAGE_SHIFT;
			for (uint64_t a = buf[i].start; nareas && a < buf[i].end; a += 4096)
				if (a >= base && a < base + 2ull * nareas * 4096 && !((a - base) & 4096))
					(*areas_seen)++;
		}
	}
	return (int64_t)pages;
}

/* ---- part areas ---- */

static int areas_one(int nareas, double *per_area_100)
{
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = PT_TRACK_UFFD };
	struct pt_dirty *buf = malloc(API_CAP * sizeof(*buf));
	struct pt_tracker *tr = NULL;
	struct child c;
	struct reply r;
	uint64_t t0, create_ns, collect_ns;
	int64_t raw = -1;
	int err, seen = 0;
	char name[64], note[96];

	if (!buf)
		return -ENOMEM;
	err = child_start(&c, nareas, 0);
	if (err) {
		free(buf);
		return fail("cannot start the target", err);
	}
	if ((err = child_do(&c, OP_RAW_ARM, &r)))
		goto out;
	raw = r.val;
	t0 = now_ns();
	tr = pt_tracker_create(c.pid, &o);
	create_ns = now_ns() - t0;
	snprintf(name, sizeof(name), "set-up, %d areas", nareas);
	if (!tr) {
		snprintf(note, sizeof(note), "(failed after %.1f s: %s%s)", create_ns / 1e9,
			 strerror(errno), create_ns / 1e9 >= cap_s - 1 ? ", the watchdog's cap" : "");
		line(name, create_ns / 1e6, raw / 1e6, "ms", "-", "info", note);
		err = 0;
		goto out;
	}
	if ((err = child_do(&c, OP_WRITE_AREAS, &r)))
		goto out;
	t0 = now_ns();
	int64_t got = collect_round(tr, buf, c.base, nareas, &seen);
	collect_ns = now_ns() - t0;
	if (got < 0) {
		err = fail("pt_tracker_collect", (int)got);
		goto out;
	}
	double per = (double)create_ns / nareas;

	if (nareas == 100)
		*per_area_100 = per;
	snprintf(note, sizeof(note), "(%.2f us per area, x%.2f of the 100-area cost per area)",
		 per / 1e3, *per_area_100 > 0 ? per / *per_area_100 : 0);
	line(name, create_ns / 1e6, raw / 1e6, "ms", "-", "info", note);
	struct pt_tracker_stats st = { .sz = sizeof(st) };

	pt_tracker_stats(tr, &st);
	line("  pause_ns_max of the set-up", st.pause_ns_max / 1e6, 0, "ms", "-", "info",
	     "(the target frozen while its areas are registered)");
	snprintf(name, sizeof(name), "  collect, one page in each written");
	snprintf(note, sizeof(note), "(%d of %d areas reported)", seen, nareas);
	line(name, collect_ns / 1e6, 0, "ms", "-", seen == nareas ? "info" : "FAIL", note);
	if (seen != nareas)
		err = -EIO;
out:
	pt_tracker_free(tr);
	child_stop(&c);
	free(buf);
	return err;
}

static int raise_map_count(long want, long *old)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	long cur = 0;

	*old = 0;
	if (!f)
		return -errno;
	if (fscanf(f, "%ld", &cur) != 1)
		cur = 0;
	fclose(f);
	if (cur >= want)
		return 0;
	f = fopen("/proc/sys/vm/max_map_count", "we");
	if (!f)
		return -errno;
	fprintf(f, "%ld\n", want);
	if (fclose(f))
		return -errno;
	*old = cur;
	return 0;
}

static void restore_map_count(long old)
{
	FILE *f;

	if (!old || !(f = fopen("/proc/sys/vm/max_map_count", "we")))
		return;
	fprintf(f, "%ld\n", old);
	fclose(f);
}

static int part_areas(void)
{
	static const int counts[] = { 100, 1000, 4000, 32000 };
	double per100 = 0;
	long old = 0;
	int err = 0;

	header("set-up against the number of areas (uffd; raw: the target arms them itself)");
	if (raise_map_count(80000, &old))
		printf("(vm.max_map_count not raised: the 32000-area target may fail)\n");
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]) && !err; i++)
		err = areas_one(counts[i], &per100);
	restore_map_count(old);
	return err;
}

/* ---- part threads ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Longest gap over the threads, and the median of the threads' longest. */
static void gaps(const struct reply *r, int n, uint64_t *max, uint64_t *med)
{
	uint64_t g[MAX_THREADS];

	memcpy(g, r->gap, (size_t)n * sizeof(g[0]));
	qsort(g, (size_t)n, sizeof(g[0]), cmp_u64);
	*max = g[n - 1];
	*med = g[n / 2];
}

static int threads_one(int nthreads)
{
	struct pt_tracker_opts o = { .sz = sizeof(o), .backend = PT_TRACK_UFFD };
	struct pt_tracker_stats st = { .sz = sizeof(st) };
	struct pt_dirty *buf = malloc(API_CAP * sizeof(*buf));
	struct pt_tracker *tr = NULL;
	struct child c;
	struct reply r;
	uint64_t t0, create_ns, coll_max = 0, wall, gmax, gmed, imax, imed;
	int err, seen;
	char name[64], note[128];

	if (!buf)
		return -ENOMEM;
	err = child_start(&c, 0, nthreads);
	if (err) {
		free(buf);
		return fail("cannot start the target", err);
	}
	usleep(100000);	/* let every thread start spinning */
	if ((err = child_do(&c, OP_GAPS, &r)))
		goto out;
	t0 = now_ns();
	tr = pt_tracker_create(c.pid, &o);
	create_ns = now_ns() - t0;
	snprintf(name, sizeof(name), "%d busy threads: set-up", nthreads);
	if (!tr) {
		snprintf(note, sizeof(note), "(failed after %.1f s: %s%s)", create_ns / 1e9,
			 strerror(errno), create_ns / 1e9 >= cap_s - 1 ? ", the watchdog's cap" : "");
		line(name, create_ns / 1e6, 0, "ms", "-", "info", note);
		goto out;
	}
	line(name, create_ns / 1e6, 0, "ms", "-", "info", NULL);
	pt_tracker_stats(tr, &st);
	line("  pause_ns_max after set-up", st.pause_ns_max / 1e6, 0, "ms", "<1",
	     st.pause_ns_max < 1000000 ? "PASS" : "MISS", "(one thread held)");
	for (int i = 0; i < NCOLLECT; i++) {
		uint64_t t1 = now_ns();
		int64_t got = collect_round(tr, buf, 0, 0, &seen);

		if (got < 0) {
			snprintf(note, sizeof(note), "(collect %d failed after %.1f s: %s)", i + 1,
				 (now_ns() - t1) / 1e9, strerror((int)-got));
			line("  collect", (now_ns() - t1) / 1e6, 0, "ms", "-", "info", note);
			goto out;
		}
		if (now_ns() - t1 > coll_max)
			coll_max = now_ns() - t1;
	}
	wall = now_ns() - t0;
	if ((err = child_do(&c, OP_GAPS, &r)))
		goto out;
	gaps(&r, nthreads, &gmax, &gmed);
	pt_tracker_stats(tr, &st);
	snprintf(note, sizeof(note), "(longest of %d collects)", NCOLLECT);
	line("  collect", coll_max / 1e6, 0, "ms", "-", "info", note);
	line("  pause_ns_max, one thread", st.pause_ns_max / 1e6, 0, "ms", "<1",
	     st.pause_ns_max < 1000000 ? "PASS" : "MISS", "(set-up and collects)");
#ifndef PT_BENCH_NO_TOTAL
	line("  pause_total_ns_max, all threads", st.pause_total_ns_max / 1e6, 0, "ms", "-", "info",
	     "(first stopped to last resumed)");
#endif
	pt_tracker_free(tr);
	tr = NULL;
	/* the same spin as long without us: the machine's own gaps */
	usleep((useconds_t)(wall / 1000));
	if ((err = child_do(&c, OP_GAPS, &r)))
		goto out;
	gaps(&r, nthreads, &imax, &imed);
	line("  target's longest gap, any thread", gmax / 1e6, imax / 1e6, "ms", "-", "info",
	     "(raw ref: the same spin, no tracker)");
	line("  median of the threads' longest", gmed / 1e6, imed / 1e6, "ms", "-", "info", NULL);
out:
	pt_tracker_free(tr);
	child_stop(&c);
	free(buf);
	return err;
}

static int part_threads(void)
{
	static const int counts[] = { 1, 8, 64 };
	int err = 0;

	header("pause against the number of busy threads (uffd, 5 collects)");
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]) && !err; i++)
		err = threads_one(counts[i]);
	return err;
}

static void on_signal(int sig)
{
	if (live_child > 0) {
		kill(live_child, SIGKILL);
		waitpid(live_child, NULL, 0);
	}
	_exit(128 + sig);
}

int main(int argc, char **argv)
{
	const char *why = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "c:x:")) != -1) {
		switch (opt) {
		case 'c':
			cap_s = atoi(optarg);
			break;
		case 'x':
			only = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-c CAP_S] [-x areas|threads]\n", argv[0]);
			return 2;
		}
	}
	if (cap_s < 1)
		cap_s = 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	printf("\npagetrack scaling bench: set-up against areas, pauses against threads"
	       " (watchdog cap %d s per target)\n", cap_s);
	if (pt_feature(PT_FEAT_PAGEMAP_SCAN, &why) != PT_YES ||
	    pt_feature(PT_FEAT_UFFD_WP_ASYNC, &why) != PT_YES ||
	    pt_feature(PT_FEAT_PIDFD_GETFD, &why) != PT_YES) {
		printf("skipped: uffd not usable: %s\n", why ? why : "-");
		return 0;
	}
	if ((!only || !strcmp(only, "areas")) && part_areas())
		failed = 1;
	if ((!only || !strcmp(only, "threads")) && part_threads())
		failed = 1;
	return failed;
}
