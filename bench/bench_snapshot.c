/* SPDX-License-Identifier: MIT */
/*
 * bench_snapshot: snapshots against the raw kernel rate and against gcore,
 * measured in the same run (doc/bench.md, "Snapshots").  Prints figures
 * and ratios, never asserts on time: the exit code is 0 unless something
 * failed.
 *
 * One forked target of SIZE (default 4 GiB), every page written (the
 * first 1 KiB of each page random, the rest a pattern of the page
 * number: compressible as real heaps are; with -m mixed a quarter zero
 * pages, a quarter random, half text), runs commands sent over a pipe: start/stop a writer thread that rewrites random pages of a
 * working set (default 256 MiB) at RATE (default 100 MB/s), or dirty a
 * fraction of all pages once.  Parts:
 *   raw:     process_vm_readv of the whole target (the reference rate)
 *   frozen:  pt_snapshot() frozen, to DIR (default /dev/shm): rate and
 *            ratio to raw, and to the compressor's limit: zstd 1 alone
 *            on the same bytes with the writer's thread count (no I/O),
 *            min(raw, that), and both sharing the CPUs; the CPU time it
 *            took (this process, all threads: a rate below what the CPU
 *            time allows means the machine was busy) against that of
 *            the raw read and zstd; image size against the resident size
 *   chain:   pt_snapshotter: a base layer, then layers after dirtying
 *            1% and 10% of the pages: time against the base layer's
 *   live:    pt_snapshot(PT_SNAP_LIVE) while the writer runs: the pause
 *   gcore:   gcore of the same process while the writer runs: its pause
 *            is the whole dump
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "image/format.h"
#include "image/zpool.h"
#include "pt_internal.h"

#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define PAGE ((uint64_t)4096)

static uint64_t size = 4 * GiB, wset = 256 * MiB, rate = 100 * MiB;
static const char *dir = "/dev/shm";
static const char *only;
static bool mixed;
static int failed;

/* CPU time of this process, all its threads (the writer's compression workers too). */
static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ULL +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void row(const char *name, const char *val, const char *ref, double ratio, const char *target,
		const char *verdict)
{
	char r[16] = "-";

	if (ratio >= 0)
		snprintf(r, sizeof(r), "%.3f", ratio);
	printf("%-40s %14s %14s %8s %9s %s\n", name, val, ref, r, target, verdict);
}

/* ---- the target ---- */

static unsigned char *mem;
static volatile int writing;

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Mixed content (-m mixed), by page number: a quarter zero pages, a
 * quarter random, half text-like (words from a small vocabulary).
 */
static void fill_mixed(unsigned char *p, uint64_t pg)
{
	static const char *const words[16] = {
		"the ", "memory ", "page ", "of ", "a ", "process ", "is ", "copied ",
		"into ", "an ", "image ", "frame ", "with ", "zstd ", "level ", "one\n",
	};
	uint64_t s = pg * 0x9e3779b97f4a7c15ULL + 1, h = rnd(&s);
	size_t i = 0;

	switch (h % 4) {
	case 0:
		memset(p, 0, PAGE);
		return;
	case 1:
		for (; i < PAGE; i += 8) {
			uint64_t v = rnd(&s);

			memcpy(p + i, &v, 8);
		}
		return;
	default:
		while (i < PAGE) {
			uint64_t v = rnd(&s);

			for (int k = 0; k < 8 && i < PAGE; k++, v >>= 4) {
				const char *w = words[v & 15];
				size_t n = strlen(w);

				if (n > PAGE - i)
					n = PAGE - i;
				memcpy(p + i, w, n);
				i += n;
			}
		}
	}
}

static void fill_page(unsigned char *p, uint64_t pg, uint64_t salt)
{
	uint64_t s = pg * 0x9e3779b97f4a7c15ULL + salt + 1;

	if (mixed && !salt) {
		fill_mixed(p, pg);
		return;
	}

	for (size_t i = 0; i < 1024; i += 8) {
		uint64_t v = rnd(&s);

		memcpy(p + i, &v, 8);
	}
	for (size_t i = 1024; i < PAGE; i += 8)
		memcpy(p + i, &pg, 8);
}

static void *writer(void *arg)
{
	uint64_t s = 12345, salt = 1, pages_per_ms = rate / PAGE / 1000;
	uint64_t npages = wset / PAGE;

	(void)arg;
	if (!pages_per_ms)
		pages_per_ms = 1;
	while (writing) {
		uint64_t t0 = now_ns();

		for (uint64_t i = 0; i < pages_per_ms; i++)
			fill_page(mem + (rnd(&s) % npages) * PAGE, 0, salt++);
		uint64_t dt = now_ns() - t0;

		if (dt < 1000000) {
			struct timespec ts = { 0, (long)(1000000 - dt) };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void target(int cmd, int ack)
{
	pthread_t th;
	char c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		_exit(1);
	for (uint64_t pg = 0; pg < size / PAGE; pg++)
		fill_page(mem + pg * PAGE, pg, 0);
	if (write(ack, "r", 1) != 1)
		_exit(1);
	while (read(cmd, &c, 1) == 1) {
		switch (c) {
		case 'w':
			writing = 1;
			pthread_create(&th, NULL, writer, NULL);
			break;
		case 's':
			writing = 0;
			pthread_join(th, NULL);
			break;
		case '1':	/* dirty 1% of the pages */
		case 'x': {	/* 10% */
			uint64_t n = size / PAGE / (c == '1' ? 100 : 10), s = 777;

			for (uint64_t i = 0; i < n; i++) {
				uint64_t pg = rnd(&s) % (size / PAGE);

				fill_page(mem + pg * PAGE, pg, i + 99);
			}
			break;
		}
		case 'q':
			_exit(0);
		}
		if (write(ack, "k", 1) != 1)
			_exit(1);
	}
	_exit(0);
}

struct child {
	pid_t pid;
	int cmd, ack;
};

static int child_start(struct child *c)
{
	int a[2], b[2];
	char r;

	if (pipe(a) || pipe(b))
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0) {
		close(a[1]);
		close(b[0]);
		target(a[0], b[1]);
	}
	close(a[0]);
	close(b[1]);
	c->cmd = a[1];
	c->ack = b[0];
	return read(c->ack, &r, 1) == 1 ? 0 : -EIO;
}

static int child_do(struct child *c, char what)
{
	char r;

	if (write(c->cmd, &what, 1) != 1 || read(c->ack, &r, 1) != 1)
		return -EIO;
	return 0;
}

static void child_stop(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	close(c->cmd);
	close(c->ack);
}

/* ---- parts ---- */

static double raw_rate(pid_t pid, uint64_t base, uint64_t *cpu)
{
	size_t chunk = 4 * MiB;
	unsigned char *buf = malloc(chunk);
	uint64_t t0 = now_ns(), c0 = cpu_ns();

	if (!buf)
		return 0;
	for (uint64_t off = 0; off < size; off += chunk) {
		struct iovec l = { buf, chunk }, r = { (void *)(uintptr_t)(base + off), chunk };

		if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)chunk) {
			free(buf);
			return 0;
		}
	}
	double s = (double)(now_ns() - t0) / 1e9;

	*cpu = cpu_ns() - c0;
	free(buf);
	return (double)size / s;
}

/*
 * The compressor's limit: the same bytes compressed by zstd alone with
 * the writer's thread count, no I/O.  The target is read in windows of
 * ZL_WIN (untimed); its non-zero pages (those a snapshot compresses; it
 * stores zero pages as runs) are packed into frames of the writer's
 * default size, and only the compression of each window's frames by
 * @nthreads threads (ZSTD_compressCCtx, one frame at a time each) is
 * timed.  Bytes of the target per second of that time, or 0; *@cpu: the
 * CPU time of the timed parts, all threads.
 */
#define ZL_WIN (64 * MiB)
#define ZL_FRAME ((size_t)IMG_FRAME_PAGES_DEFAULT * PAGE)

struct zlim {
	const unsigned char *src;	/* the window's frames, packed */
	size_t len;			/* bytes in src */
	unsigned next;			/* next frame to take (atomic) */
	int level;
	bool bad;			/* atomic */
};

struct zlim_thr {
	struct zlim *z;
	ZSTD_CCtx *cc;
	unsigned char *dst;
	pthread_t th;
};

static void *zlim_worker(void *arg)
{
	struct zlim_thr *t = arg;
	struct zlim *z = t->z;
	size_t cap = ZSTD_compressBound(ZL_FRAME);

	for (;;) {
		size_t off = (size_t)__atomic_fetch_add(&z->next, 1, __ATOMIC_RELAXED) * ZL_FRAME;

		if (off >= z->len)
			break;
		size_t n = z->len - off < ZL_FRAME ? z->len - off : ZL_FRAME;

		if (ZSTD_isError(ZSTD_compressCCtx(t->cc, t->dst, cap, z->src + off, n, z->level)))
			__atomic_store_n(&z->bad, true, __ATOMIC_RELAXED);
	}
	return NULL;
}

static bool page_is_zero(const unsigned char *p)
{
	static const unsigned char zero[PAGE];

	return !memcmp(p, zero, PAGE);
}

/* Threads are started per window: their start is in the time, a few µs in tens of ms. */
static double zstd_limit(pid_t pid, uint64_t base, unsigned nthreads, int level, uint64_t *cpu)
{
	struct zlim z = { .level = level };
	unsigned char *win = malloc(ZL_WIN), *packed = malloc(ZL_WIN);
	struct zlim_thr t[16] = { 0 };
	uint64_t ns = 0;

	z.bad = !win || !packed || !nthreads || nthreads > 16;
	for (unsigned i = 0; !z.bad && i < nthreads; i++) {
		t[i].z = &z;
		t[i].cc = ZSTD_createCCtx();
		t[i].dst = malloc(ZSTD_compressBound(ZL_FRAME));
		z.bad = !t[i].cc || !t[i].dst;
	}
	z.src = packed;
	for (uint64_t off = 0; off < size && !z.bad; off += ZL_WIN) {
		size_t n = size - off < ZL_WIN ? (size_t)(size - off) : ZL_WIN;
		struct iovec l = { win, n }, r = { (void *)(uintptr_t)(base + off), n };
		unsigned started = 0;

		if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)n) {
			z.bad = true;
			break;
		}
		z.len = 0;
		for (size_t pg = 0; pg < n; pg += PAGE)
			if (!page_is_zero(win + pg)) {
				memcpy(packed + z.len, win + pg, PAGE);
				z.len += PAGE;
			}
		z.next = 0;
		uint64_t t0 = now_ns(), c0 = cpu_ns();

		for (; started < nthreads; started++)
			if (pthread_create(&t[started].th, NULL, zlim_worker, &t[started]))
				break;
		if (started < nthreads)
			z.bad = true;
		for (unsigned i = 0; i < started; i++)
			pthread_join(t[i].th, NULL);
		ns += now_ns() - t0;
		*cpu += cpu_ns() - c0;	/* the threads ended: their time is the process's */
	}
	for (unsigned i = 0; i < nthreads && i < 16; i++) {
		ZSTD_freeCCtx(t[i].cc);
		free(t[i].dst);
	}
	free(win);
	free(packed);
	return z.bad || !ns ? 0 : (double)size / ((double)ns / 1e9);
}

static double loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "re");

	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static uint64_t file_size(const char *p)
{
	struct stat st;

	return stat(p, &st) ? 0 : (uint64_t)st.st_size;
}

static void unlink_live(const char *path)
{
	for (int i = 0; i < 64; i++) {
		char p[600];

		snprintf(p, sizeof(p), "%.512s.live-%d", path, i);
		unlink(p);
	}
}

static bool want(const char *part)
{
	return !only || !strcmp(only, part);
}

int main(int argc, char **argv)
{
	struct child c = { -1, -1, -1 };
	char a[32], b[32], path[512], e[512];
	int opt;

	while ((opt = getopt(argc, argv, "s:w:r:d:x:m:")) != -1) {
		switch (opt) {
		case 's': size = strtoull(optarg, NULL, 0) * MiB; break;
		case 'w': wset = strtoull(optarg, NULL, 0) * MiB; break;
		case 'r': rate = strtoull(optarg, NULL, 0) * MiB; break;
		case 'd': dir = optarg; break;
		case 'x': only = optarg; break;
		case 'm':
			if (strcmp(optarg, "mixed") && strcmp(optarg, "pattern")) {
				fprintf(stderr, "bench_snapshot: -m pattern|mixed\n");
				return 2;
			}
			mixed = !strcmp(optarg, "mixed");
			break;
		default:
			fprintf(stderr, "usage: bench_snapshot [-s SIZE_MiB] [-w WORKSET_MiB] "
					"[-r RATE_MiB/s] [-d DIR] [-x raw|frozen|chain|live|gcore] "
					"[-m pattern|mixed]\n");
			return 2;
		}
	}
	if (wset > size)
		wset = size;
	printf("\n== snapshots: a %" PRIu64 " MiB target (%s), images in %s ==\n", size / MiB,
	       mixed ? "mixed: 1/4 zero, 1/4 random, 1/2 text pages" : "1 KiB random a page",
	       dir);
	row("measurement", "value", "reference", -1, "target", "");
	if (child_start(&c)) {
		fprintf(stderr, "bench_snapshot: cannot start the target\n");
		return 1;
	}
	uint64_t base = 0;
	{
		/* the target's big area: the largest anonymous one */
		struct pt_target *t = pt_target_create(c.pid, NULL);
		struct pt_vma *v = NULL;
		size_t nv = 0;

		if (t && !pt_vmas_read(t, &v, &nv))
			for (size_t i = 0; i < nv; i++)
				if (v[i].end - v[i].start >= size)
					base = v[i].start;
		pt_vmas_free(v);
		pt_target_free(t);
	}
	uint64_t raw_cpu = 0, zlim_cpu = 0;
	double raw = base ? raw_rate(c.pid, base, &raw_cpu) : 0;

	if (!raw) {
		fprintf(stderr, "bench_snapshot: raw read failed\n");
		failed = 1;
		goto out;
	}
	snprintf(a, sizeof(a), "%.2f GiB/s", raw / GiB);
	row("raw process_vm_readv, 4 MiB calls", a, "-", -1, "-", "info");

	/* the compressor's limit on the same bytes and CPUs; the readv and both sharing the CPUs */
	unsigned zthreads = pt__zpool_threads();
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	double zlim = 0, lim = raw, shared = 0;

	if (want("frozen")) {
		zlim = zstd_limit(c.pid, base, zthreads, 1, &zlim_cpu);
		if (!zlim) {
			fprintf(stderr, "bench_snapshot: the zstd limit failed\n");
			failed = 1;
		} else {
			if (ncpu < 1)
				ncpu = 1;
			unsigned k = zthreads < ncpu ? zthreads : (unsigned)ncpu;

			lim = zlim < raw ? zlim : raw;
			/* CPU-seconds per byte: 1/raw for the read, k/zlim for zstd, over ncpu CPUs */
			shared = (double)ncpu / (1.0 / raw + (double)k / zlim);
			snprintf(a, sizeof(a), "%.2f GiB/s", zlim / GiB);
			snprintf(b, sizeof(b), "%u threads", zthreads);
			row("raw zstd 1 of the same bytes, no I/O", a, b, -1, "-", "info");
			snprintf(a, sizeof(a), "%.2f GiB/s", shared / GiB);
			snprintf(b, sizeof(b), "%ld CPUs", ncpu);
			row("  readv and zstd 1 sharing the CPUs", a, b, -1, "-", "info");
		}
	}

	snprintf(path, sizeof(path), "%s/bench-snap-%d.img", dir, (int)getpid());
	if (want("frozen")) {
		PT_OPTS(pt_snapshot_opts, so, .flags = PT_SNAP_OVERWRITE);
		PT_OPTS(pt_snapshot_report, r);
		double l0 = loadavg();
		uint64_t c0 = cpu_ns();
		int err = pt_snapshot(c.pid, path, &so, &r, e, sizeof(e));
		uint64_t cpu = cpu_ns() - c0;
		double l1 = loadavg();

		/* the machine's load: the ratios hold only if it was steady */
		snprintf(a, sizeof(a), "%.2f", l0);
		snprintf(b, sizeof(b), "%.2f after", l1);
		row("load average (1 min) before the snapshot", a, b, -1, "-", "info");

		if (err) {
			fprintf(stderr, "bench_snapshot: frozen: %s\n", e);
			failed = 1;
		} else {
			double rt = (double)r.bytes_copied / ((double)r.duration_ns / 1e9);

			snprintf(a, sizeof(a), "%.2f GiB/s", rt / GiB);
			snprintf(b, sizeof(b), "%.2f GiB/s", raw / GiB);
			row("frozen snapshot rate (zstd 1)", a, b, rt / raw, ">=1GiB/s",
			    rt >= GiB ? "PASS" : "MISS");
			if (zlim) {
				snprintf(b, sizeof(b), "%.2f GiB/s", lim / GiB);
				row("  / min(readv, raw zstd 1)", a, b, rt / lim, ">=0.6",
				    rt >= 0.6 * lim ? "PASS" : "MISS");
				snprintf(b, sizeof(b), "%.2f GiB/s", shared / GiB);
				row("  / readv and zstd 1 sharing the CPUs", a, b, rt / shared, "-",
				    "info");
			}
			snprintf(a, sizeof(a), "%.0f ms", (double)r.pause_ns / 1e6);
			row("frozen snapshot pause (the whole copy)", a, "-", -1, "-", "info");
			snprintf(a, sizeof(a), "%.0f ms", (double)cpu / 1e6);
			row("frozen snapshot CPU (all threads)", a, "-", -1, "-", "info");
			if (zlim) {
				/* load-independent: CPU against the raw readv's and zstd's */
				snprintf(b, sizeof(b), "%.0f ms", (double)(raw_cpu + zlim_cpu) / 1e6);
				row("  CPU of readv + raw zstd 1 / its CPU", a, b,
				    (double)(raw_cpu + zlim_cpu) / (double)cpu, "-", "info");
			}
			uint64_t fs = file_size(path);

			snprintf(a, sizeof(a), "%" PRIu64 " MiB", fs / MiB);
			snprintf(b, sizeof(b), "%" PRIu64 " MiB", size / MiB);
			row("image size / resident size", a, b, (double)fs / (double)size, "-", "info");
		}
		unlink(path);
	}
	if (want("frozen")) {	/* zstd's first fast level: same work, cheaper compression */
		PT_OPTS(pt_snapshot_opts, so, .flags = PT_SNAP_OVERWRITE, .level = -1);
		PT_OPTS(pt_snapshot_report, r);
		int err = pt_snapshot(c.pid, path, &so, &r, e, sizeof(e));

		if (err) {
			fprintf(stderr, "bench_snapshot: frozen -1: %s\n", e);
			failed = 1;
		} else {
			double rt = (double)r.bytes_copied / ((double)r.duration_ns / 1e9);
			uint64_t fs = file_size(path);

			snprintf(a, sizeof(a), "%.2f GiB/s", rt / GiB);
			snprintf(b, sizeof(b), "%.2f GiB/s", raw / GiB);
			row("frozen snapshot rate (zstd -1)", a, b, rt / raw, ">=1GiB/s",
			    rt >= GiB ? "PASS" : "MISS");
			snprintf(a, sizeof(a), "%.0f ms", (double)r.pause_ns / 1e6);
			snprintf(b, sizeof(b), "%" PRIu64 " MiB", fs / MiB);
			row("  its pause, its image size", a, b, -1, "-", "info");
		}
		unlink(path);
	}
	if (want("chain")) {
		PT_OPTS(pt_snapshot_opts, so, .flags = PT_SNAP_OVERWRITE);
		struct pt_snapshotter *sn = pt_snapshotter_create(c.pid, &so);
		uint64_t t[3] = { 0 };
		const char cmds[3] = { 0, '1', 'x' };
		char p[3][600];

		for (int i = 0; sn && i < 3; i++) {
			PT_OPTS(pt_snapshot_report, r);

			snprintf(p[i], sizeof(p[i]), "%s.%d", path, i);
			if (cmds[i] && child_do(&c, cmds[i])) {
				failed = 1;
				break;
			}
			if (pt_snapshotter_layer(sn, p[i], 0, &r, e, sizeof(e))) {
				fprintf(stderr, "bench_snapshot: chain: %s\n", e);
				failed = 1;
				break;
			}
			t[i] = r.duration_ns;
		}
		if (!sn) {
			fprintf(stderr, "bench_snapshot: chain: %s\n", strerror(errno));
			failed = 1;
		}
		pt_snapshotter_free(sn);
		for (int i = 0; i < 3; i++)
			unlink(p[i]);
		if (t[2]) {
			snprintf(a, sizeof(a), "%.0f ms", (double)t[0] / 1e6);
			row("tracked chain: base layer (100%)", a, "-", -1, "-", "info");
			snprintf(a, sizeof(a), "%.0f ms", (double)t[1] / 1e6);
			snprintf(b, sizeof(b), "%.0f ms", (double)t[0] / 1e6);
			row("tracked layer, 1% dirty / base", a, b, (double)t[1] / (double)t[0], "~0.01",
			    "info");
			snprintf(a, sizeof(a), "%.0f ms", (double)t[2] / 1e6);
			row("tracked layer, 10% dirty / base", a, b, (double)t[2] / (double)t[0], "~0.10",
			    "info");
		}
	}
	if (want("live") || want("gcore")) {
		if (child_do(&c, 'w')) {
			failed = 1;
			goto out;
		}
		snprintf(a, sizeof(a), "%" PRIu64 " MB/s", rate / MiB);
		snprintf(b, sizeof(b), "%" PRIu64 " MiB", wset / MiB);
		row("writer: rate over working set", a, b, -1, "-", "info");
	}
	if (want("live")) {
		PT_OPTS(pt_snapshot_opts, so, .flags = PT_SNAP_LIVE | PT_SNAP_OVERWRITE);
		PT_OPTS(pt_snapshot_report, r);
		int err = pt_snapshot(c.pid, path, &so, &r, e, sizeof(e));

		if (err) {
			fprintf(stderr, "bench_snapshot: live: %s\n", e);
			failed = 1;
		} else {
			snprintf(a, sizeof(a), "%.1f ms", (double)r.pause_ns / 1e6);
			row("live snapshot pause", a, "300 ms", (double)r.pause_ns / 3e8, "<=300ms",
			    r.pause_ns <= 300000000ULL ? "PASS" : "MISS");
			snprintf(a, sizeof(a), "%" PRIu64, r.rounds);
			snprintf(b, sizeof(b), "%.2f s", (double)r.duration_ns / 1e9);
			row("live snapshot rounds, duration", a, b, -1, "-", "info");
		}
		unlink(path);
		unlink_live(path);
	}
	if (want("gcore")) {
		char cmd[1200];
		uint64_t t0 = now_ns();
		int rc;

		snprintf(cmd, sizeof(cmd), "gcore -o %s/bench-gcore-%d %d >/dev/null 2>&1", dir,
			 (int)getpid(), (int)c.pid);
		rc = system(cmd);
		uint64_t dt = now_ns() - t0;

		snprintf(cmd, sizeof(cmd), "%s/bench-gcore-%d.%d", dir, (int)getpid(), (int)c.pid);
		if (rc != 0) {
			row("gcore pause (the whole dump)", "-", "-", -1, "-",
			    "skipped: gcore failed or is not installed");
		} else {
			snprintf(a, sizeof(a), "%.0f ms", (double)dt / 1e6);
			row("gcore pause (the whole dump)", a, "-", -1, "-", "info");
		}
		unlink(cmd);
	}
out:
	child_stop(&c);
	return failed;
}
