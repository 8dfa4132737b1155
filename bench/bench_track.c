/* SPDX-License-Identifier: MIT */
/*
 * bench_track: the cost of dirty-page tracking against the raw kernel
 * rates measured in the same run.  Prints ratios, never asserts on time:
 * the exit code is 0 unless something failed (an API error, a wrong
 * number of dirty pages).  See doc/bench.md ("Tracking").
 *
 * Parts, in output order (each target is a forked child that runs
 * commands sent over a pipe; never two big ones at once):
 *   fault:   the first write to a page in a round (256 MiB writer),
 *            tracked by pt_tracker vs the child's own userfaultfd
 *   pause:   the pause injection imposes on a busy target (same child)
 *   collect: uffd collect throughput on a 4 GiB resident child with
 *            1/64 of its pages written per round vs raw PAGEMAP_SCAN
 *   hash:    hash backend collect throughput vs raw process_vm_readv
 *            (same 4 GiB child)
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
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pt_internal.h"
#include "uapi.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define RAW_VEC_LEN 131088		/* as bench_scan: one ioctl per pass */
#define API_CAP 4096			/* caller buffer, in regions */
#define UNREG_CHUNK (16 * MiB)		/* chunked UFFDIO_UNREGISTER (a proposal) */
#define DIRTY_STRIDE 64			/* parts collect/hash: 1 page in 64 per round */
#define VM_IOV (1 * MiB)		/* raw process_vm_readv: iovec size ... */
#define VM_NIOV 4			/* ... and iovecs per call (the hash batch: 4 MiB) */

static int reps = 5;
static int npause = 10;
static uint64_t wsize = 256 * MiB;	/* part fault/pause */
static uint64_t size = 4 * GiB;		/* parts collect/hash */
static const char *only;
static int failed;

static volatile pid_t live_child;

/* ---- time, output ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0;
}

static void header(const char *title)
{
	printf("\n== %s\n", title);
	printf("%-38s %12s %12s %7s %7s %s\n", "measurement", "value", "raw ref", "ratio",
	       "target", "result");
}

static void line_info(const char *name, double v, const char *unit, const char *note)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.2f %s", v, unit);
	printf("%-38s %12s %12s %7s %7s info%s%s\n", name, buf, "-", "-", "-",
	       note ? " " : "", note ? note : "");
}

/* @higher_better: target is ratio >= @target, else ratio <= @target. */
static void line_ratio(const char *name, double v, double ref, const char *unit, double target,
		       bool higher_better, bool judged)
{
	char a[32], b[32], tg[16];
	double ratio = ref > 0 ? v / ref : 0;
	bool pass = higher_better ? ratio >= target : ratio <= target;

	snprintf(a, sizeof(a), "%.2f %s", v, unit);
	snprintf(b, sizeof(b), "%.2f %s", ref, unit);
	if (judged)
		snprintf(tg, sizeof(tg), "%s%.1f", higher_better ? ">=" : "<=", target);
	else
		snprintf(tg, sizeof(tg), "-");
	printf("%-38s %12s %12s %7.2f %7s %s\n", name, a, b, ratio, tg,
	       judged ? (pass ? "PASS" : "MISS") : "info");
}

/* An absolute limit (the pause). */
static void line_limit(const char *name, double v, const char *unit, double limit, bool judged)
{
	char a[32], tg[16];

	snprintf(a, sizeof(a), "%.3f %s", v, unit);
	snprintf(tg, sizeof(tg), "<%g", limit);
	printf("%-38s %12s %12s %7s %7s %s\n", name, a, "-", "-", judged ? tg : "-",
	       judged ? (v < limit ? "PASS" : "MISS") : "info");
}

/* ---- raw PAGEMAP_SCAN ---- */

struct pm_count {
	uint64_t pages, regions;
	uint64_t written;	/* pages of regions with PAGE_IS_WRITTEN */
};

/*
 * One PAGEMAP_SCAN pass over [start,end) resuming at walk_end, as the
 * tracker's scan_pass() but with one big vec.  Returns ns or -errno.
 */
static int64_t pm_pass(int fd, uint64_t start, uint64_t end, uint64_t flags, uint64_t inverted,
		       uint64_t mask, uint64_t anyof, struct page_region *vec, struct pm_count *cnt)
{
	struct pm_scan_arg a;
	uint64_t cur = start, t0 = now_ns();

	memset(cnt, 0, sizeof(*cnt));
	while (cur < end) {
		long n;

		memset(&a, 0, sizeof(a));
		a.size = sizeof(a);
		a.flags = flags;
		a.start = cur;
		a.end = end;
		a.vec = (uint64_t)(uintptr_t)vec;
		a.vec_len = RAW_VEC_LEN;
		a.category_inverted = inverted;
		a.category_mask = mask;
		a.category_anyof_mask = anyof;
		a.return_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
		n = ioctl(fd, PAGEMAP_SCAN, &a);
		if (n < 0)
			return -errno;
		if (a.walk_end <= cur)
			return -EIO;
		for (long i = 0; i < n; i++) {
			uint64_t np = (vec[i].end - vec[i].start) >> PT_PAGE_SHIFT;

			cnt->pages += np;
			if (vec[i].categories & PAGE_IS_WRITTEN)
				cnt->written += np;
		}
		cnt->regions += (uint64_t)n;
		cur = a.walk_end;
	}
	return (int64_t)(now_ns() - t0);
}

/* The raw reference: harvest written pages with data and re-protect them. */
static int64_t pm_harvest(int fd, uint64_t start, uint64_t end, struct page_region *vec,
			  struct pm_count *cnt)
{
	return pm_pass(fd, start, end, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0,
		       PAGE_IS_WRITTEN, PAGE_IS_PRESENT | PAGE_IS_SWAPPED, vec, cnt);
}

/*
 * The tracker's walk: every region with data listed (the gaps are the
 * holes), the written ones re-protected.
 */
static int64_t pm_walk(int fd, uint64_t start, uint64_t end, struct page_region *vec,
		       struct pm_count *cnt)
{
	return pm_pass(fd, start, end, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0, 0,
		       PAGE_IS_PRESENT | PAGE_IS_SWAPPED, vec, cnt);
}

/* ---- the target ---- */

enum op {
	OP_WRITE = 1,	/* write one byte in pages first, first+stride, ... (timed) */
	OP_UFFD_ON,	/* own userfaultfd: register the region, protect its data */
	OP_REPROTECT,	/* own PAGEMAP_SCAN harvest + re-protect (timed) */
	OP_UFFD_OFF,	/* unregister and close it */
	OP_BUSY,	/* spin writing until SIGUSR1; report the longest stall */
};

struct cmd {
	uint32_t op;
	uint32_t stride;
	uint64_t first;
};

struct reply {
	int64_t val;	/* ns, or -errno */
	uint64_t n;	/* pages written / protected */
};

/* Stalls the busy target saw (OP_BUSY), sent after its reply. */
#define MAX_STALLS 64
#define STALL_MIN_NS 200000

struct stalls {
	uint32_t n;
	uint64_t at[MAX_STALLS], len[MAX_STALLS];	/* CLOCK_MONOTONIC start, ns */
};

struct child {
	pid_t pid;
	int cmd_fd, rep_fd;
	uint64_t addr, len;
};

struct cstate {
	volatile unsigned char *p;
	uint64_t len;
	int uffd, pm_fd;
	struct page_region *vec;
};

static volatile sig_atomic_t busy_stop;

static void on_usr1(int sig)
{
	(void)sig;
	busy_stop = 1;
}

/* Eight distinct non-zero words per page: no zero page, no same-filled page. */
static void fill(unsigned char *p, uint64_t len)
{
	for (uint64_t off = 0; off < len; off += PT_PAGE_SIZE)
		for (unsigned i = 0; i < 8; i++)
			*(uint64_t *)(p + off + i * 512) = (off >> PT_PAGE_SHIFT) * 8 + i + 1;
}

static void c_write(struct cstate *s, const struct cmd *c, struct reply *r)
{
	uint64_t step = (uint64_t)c->stride << PT_PAGE_SHIFT, k = 0;
	uint64_t t0 = now_ns();

	for (uint64_t off = c->first << PT_PAGE_SHIFT; off < s->len; off += step, k++)
		s->p[off + 64]++;	/* changes the content: the hash backend sees it */
	r->val = (int64_t)(now_ns() - t0);
	r->n = k;
}

static void c_uffd_on(struct cstate *s, struct reply *r)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	struct uffdio_register reg = { .range = { (uint64_t)(uintptr_t)s->p, s->len },
				       .mode = UFFDIO_REGISTER_MODE_WP };
	struct pm_count cnt;
	int64_t ns;

	uint64_t t0;

	s->uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (s->uffd < 0 || ioctl(s->uffd, UFFDIO_API, &api) < 0) {
		r->val = -errno;
		return;
	}
	t0 = now_ns();
	if (ioctl(s->uffd, UFFDIO_REGISTER, &reg) < 0) {
		r->val = -errno;
		return;
	}
	r->n = now_ns() - t0;
	if (s->pm_fd < 0)
		s->pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (s->pm_fd < 0) {
		r->val = -errno;
		return;
	}
	/* protect the pages holding data, as the tracker's arm does */
	ns = pm_pass(s->pm_fd, reg.range.start, reg.range.start + s->len,
		     PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, 0, 0,
		     PAGE_IS_PRESENT | PAGE_IS_SWAPPED, s->vec, &cnt);
	r->val = ns;	/* protect; r->n: register */
}

static void c_reprotect(struct cstate *s, struct reply *r)
{
	struct pm_count cnt;
	uint64_t a = (uint64_t)(uintptr_t)s->p;

	r->val = pm_harvest(s->pm_fd, a, a + s->len, s->vec, &cnt);
	r->n = cnt.pages;
}

/*
 * Unregister (which unprotects every page under the mmap write lock):
 * r->val the total ns.  @c->first != 0: in chunks of that many bytes,
 * front to back (each unregistered chunk merges with the previous one),
 * r->n the longest chunk.
 */
static void c_uffd_off(struct cstate *s, const struct cmd *c, struct reply *r)
{
	uint64_t a = (uint64_t)(uintptr_t)s->p, step = c->first ? c->first : s->len;
	uint64_t t0 = now_ns();

	r->val = 0;
	for (uint64_t off = 0; s->uffd >= 0 && off < s->len; off += step) {
		struct uffdio_range rg = { a + off, s->len - off < step ? s->len - off : step };
		uint64_t t1 = now_ns();

		if (ioctl(s->uffd, UFFDIO_UNREGISTER, &rg) < 0) {
			r->val = -errno;
			break;
		}
		if (now_ns() - t1 > r->n)
			r->n = now_ns() - t1;
	}
	if (!r->val)
		r->val = (int64_t)(now_ns() - t0);
	if (s->uffd >= 0)
		close(s->uffd);
	s->uffd = -1;
}

/*
 * Spin, writing one page of the region per iteration and reading the
 * clock (vDSO: no system call), until SIGUSR1.  The longest gap between
 * two iterations is the longest stall the target saw, whoever caused it
 * (injection, a fault, the scheduler).  Acknowledges the start first.
 */
static void c_busy(struct cstate *s, int rep_fd, struct reply *r, struct stalls *st)
{
	struct reply ack = { 0 };
	uint64_t prev, max = 0, pages = s->len >> PT_PAGE_SHIFT, i = 0;

	busy_stop = 0;
	if (write(rep_fd, &ack, sizeof(ack)) != (ssize_t)sizeof(ack))
		_exit(5);
	prev = now_ns();
	while (!busy_stop) {
		uint64_t t;

		s->p[((i++ % pages) << PT_PAGE_SHIFT) + 128]++;
		t = now_ns();
		if (t - prev > max)
			max = t - prev;
		if (t - prev >= STALL_MIN_NS && st->n < MAX_STALLS) {
			st->at[st->n] = prev;
			st->len[st->n++] = t - prev;
		}
		prev = t;
	}
	r->val = (int64_t)max;
	r->n = i;
}

static void child_main(int cmd_fd, int rep_fd, uint64_t len)
{
	struct cstate s = { .len = len, .uffd = -1, .pm_fd = -1 };
	struct child info = { .pid = getpid(), .len = len };
	struct sigaction sa = { .sa_handler = on_usr1 };
	unsigned char *p;
	struct cmd c;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigaction(SIGUSR1, &sa, NULL);
	s.vec = malloc(RAW_VEC_LEN * sizeof(*s.vec));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || !s.vec)
		_exit(2);
	/* 4 KiB pages: a THP would turn one page's write into 512 */
	madvise(p, len, MADV_NOHUGEPAGE);
	fill(p, len);
	s.p = p;
	info.addr = (uint64_t)(uintptr_t)p;
	if (write(rep_fd, &info, sizeof(info)) != (ssize_t)sizeof(info))
		_exit(4);
	while (read(cmd_fd, &c, sizeof(c)) == (ssize_t)sizeof(c)) {
		struct reply r = { 0 };
		struct stalls st = { 0 };

		switch (c.op) {
		case OP_WRITE:
			c_write(&s, &c, &r);
			break;
		case OP_UFFD_ON:
			c_uffd_on(&s, &r);
			break;
		case OP_REPROTECT:
			c_reprotect(&s, &r);
			break;
		case OP_UFFD_OFF:
			c_uffd_off(&s, &c, &r);
			break;
		case OP_BUSY:
			c_busy(&s, rep_fd, &r, &st);
			break;
		default:
			r.val = -EINVAL;
		}
		if (write(rep_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(4);
		if (c.op == OP_BUSY && write(rep_fd, &st, sizeof(st)) != (ssize_t)sizeof(st))
			_exit(4);
	}
	_exit(0);
}

static void child_stop(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	if (c->cmd_fd >= 0)
		close(c->cmd_fd);
	if (c->rep_fd >= 0)
		close(c->rep_fd);
	c->pid = 0;
	c->cmd_fd = c->rep_fd = -1;
	live_child = 0;
}

static int child_start(struct child *c, uint64_t len)
{
	int cmd[2] = { -1, -1 }, rep[2] = { -1, -1 };
	ssize_t got;

	c->pid = 0;
	c->cmd_fd = c->rep_fd = -1;
	if (pipe2(cmd, O_CLOEXEC) || pipe2(rep, O_CLOEXEC)) {
		int err = -errno;

		for (int i = 0; i < 2; i++) {
			if (cmd[i] >= 0)
				close(cmd[i]);
			if (rep[i] >= 0)
				close(rep[i]);
		}
		return err;
	}
	fflush(NULL);
	c->pid = fork();
	if (c->pid == 0) {
		close(cmd[1]);
		close(rep[0]);
		child_main(cmd[0], rep[1], len);
	}
	close(cmd[0]);
	close(rep[1]);
	c->cmd_fd = cmd[1];
	c->rep_fd = rep[0];
	if (c->pid < 0) {
		int err = -errno;

		c->pid = 0;
		child_stop(c);
		return err;
	}
	live_child = c->pid;
	struct child info;

	got = read(c->rep_fd, &info, sizeof(info));
	if (got != (ssize_t)sizeof(info)) {
		child_stop(c);
		return -EIO;
	}
	c->addr = info.addr;
	c->len = info.len;
	return 0;
}

static int child_send(struct child *c, uint32_t op, uint32_t stride, uint64_t first)
{
	struct cmd m = { .op = op, .stride = stride, .first = first };

	return write(c->cmd_fd, &m, sizeof(m)) == (ssize_t)sizeof(m) ? 0 : -EIO;
}

static int child_reply(struct child *c, struct reply *r)
{
	if (read(c->rep_fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
		return -EIO;
	return r->val < 0 ? (int)r->val : 0;
}

/* Run one command to completion. */
static int child_do(struct child *c, uint32_t op, uint32_t stride, uint64_t first, struct reply *r)
{
	int err = child_send(c, op, stride, first);

	return err ? err : child_reply(c, r);
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

static bool enough_memory(uint64_t bytes)
{
	uint64_t avail = mem_available();

	if (avail && avail < bytes + GiB) {
		printf("skipped: needs %llu MiB available, %llu MiB are (use -s SIZE_MiB)\n",
		       (unsigned long long)((bytes + GiB) / MiB), (unsigned long long)(avail / MiB));
		return false;
	}
	return true;
}

static const char *uffd_unusable(void)
{
	static const enum pt_feature need[] = { PT_FEAT_PAGEMAP_SCAN, PT_FEAT_UFFD_WP_ASYNC,
						PT_FEAT_UFFD_WP_UNPOPULATED, PT_FEAT_PIDFD_GETFD };
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (pt_feature(need[i], &why) != PT_YES)
			return why ? why : pt_feature_name(need[i]);
	return NULL;
}

/* Lines of /proc/PID/maps: the number of VMAs. */
static int vma_count(pid_t pid)
{
	char path[64], line[512];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strchr(line, '\n') != NULL;
	fclose(f);
	return n;
}

/* One collect round (until !more).  Returns ns or -errno. */
static int64_t collect_round(struct pt_tracker *tr, struct pt_dirty *buf, uint64_t *pages)
{
	uint64_t t0 = now_ns();
	bool more = true;

	*pages = 0;
	while (more) {
		int n = pt_tracker_collect(tr, buf, API_CAP, &more);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			*pages += (buf[i].end - buf[i].start) >> PT_PAGE_SHIFT;
	}
	return (int64_t)(now_ns() - t0);
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "bench_track: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return err < 0 ? err : -err;
}

static void keep_min(int64_t *best, int64_t v)
{
	if (*best < 0 || v < *best)
		*best = v;
}

/* ---- part fault: first write to a page in a round ---- */

static int part_fault(struct child *c)
{
	PT_OPTS(pt_tracker_opts, o, .backend = PT_TRACK_UFFD);
	struct pt_dirty *buf = malloc(API_CAP * sizeof(*buf));
	int64_t untracked = -1, raw = -1, tracked = -1;
	uint64_t pages = c->len >> PT_PAGE_SHIFT, got;
	struct pt_tracker *tr = NULL;
	struct reply r;
	int err = 0;

	header("first write to a page in a round (ns per page, 4 KiB pages, one byte each)");
	if (!buf)
		return -ENOMEM;
	/* untracked: populated, writable pages */
	for (int i = 0; i <= reps; i++) {
		if ((err = child_do(c, OP_WRITE, 1, 0, &r)))
			goto out;
		if (i)
			keep_min(&untracked, r.val);
	}
	/* raw: the writer's own userfaultfd, re-protected by its own PAGEMAP_SCAN */
	if ((err = child_do(c, OP_UFFD_ON, 0, 0, &r))) {
		err = fail("raw: own userfaultfd (WP_ASYNC|WP_UNPOPULATED)", err);
		goto out;
	}
	for (int i = 0; i <= reps; i++) {
		if (i && (err = child_do(c, OP_REPROTECT, 0, 0, &r)))
			goto out;
		if ((err = child_do(c, OP_WRITE, 1, 0, &r)))
			goto out;
		if (i)
			keep_min(&raw, r.val);
	}
	if ((err = child_do(c, OP_UFFD_OFF, 0, 0, &r)))
		goto out;
	/* tracked: the tracker (from here, on the child's pid) re-arms by collecting */
	tr = pt_tracker_create(c->pid, &o);
	if (!tr) {
		err = fail("pt_tracker_create(uffd)", errno);
		goto out;
	}
	for (int i = 0; i <= reps; i++) {
		int64_t ns = collect_round(tr, buf, &got);

		if (ns < 0) {
			err = fail("pt_tracker_collect", (int)ns);
			goto out;
		}
		if (i && got < pages) {
			fprintf(stderr, "bench_track: collect reported %llu pages, %llu written\n",
				(unsigned long long)got, (unsigned long long)pages);
			err = -EIO;
			goto out;
		}
		if (i == reps)
			break;	/* that collect checked the last write round */
		if ((err = child_do(c, OP_WRITE, 1, 0, &r)))
			goto out;
		if (i)
			keep_min(&tracked, r.val);
	}
	double u = (double)untracked / (double)pages, w = (double)raw / (double)pages,
	       t = (double)tracked / (double)pages;
	char note[64];

	snprintf(note, sizeof(note), "(%llu MiB)", (unsigned long long)(c->len / MiB));
	line_info("untracked write (reference)", u, "ns", note);
	line_info("raw uffd-wp async fault (own uffd)", w, "ns", NULL);
	line_ratio("tracked (pt_tracker uffd)", t, w, "ns", 1.5, false, true);
	line_ratio("  fault cost only: (tracked-u)/(raw-u)", t - u, w - u, "ns", 0, false, false);
out:
	if (err && !tr)
		child_do(c, OP_UFFD_OFF, 0, 0, &r);
	pt_tracker_free(tr);
	free(buf);
	return err;
}

/* ---- part pause: what injection imposes on a busy target ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ns the child spent runnable but waiting for a CPU (schedstat run_delay), 0 if unknown. */
static uint64_t run_delay(pid_t pid)
{
	unsigned long long run = 0, wait = 0;
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &run, &wait) != 2)
		wait = 0;
	fclose(f);
	return wait;
}

/*
 * Let the child spin; run @fn meanwhile; the child's longest stall, its
 * stalls and (*@rq_ns) how long it waited for a CPU meanwhile.
 */
static int busy_run(struct child *c, int (*fn)(struct child *, void *), void *arg,
		    struct reply *r, struct stalls *st, uint64_t *rq_ns)
{
	int err = child_send(c, OP_BUSY, 0, 0), err2;
	uint64_t rq0;

	if (err || (err = child_reply(c, r)))	/* the start acknowledgement */
		return err;
	rq0 = run_delay(c->pid);
	err = fn(c, arg);
	kill(c->pid, SIGUSR1);
	err2 = child_reply(c, r);
	*rq_ns = run_delay(c->pid) - rq0;
	if (!err2 && read(c->rep_fd, st, sizeof(*st)) != (ssize_t)sizeof(*st))
		err2 = -EIO;
	return err ? err : err2;
}

static int idle_wait(struct child *c, void *arg)
{
	(void)c;
	usleep((useconds_t)(*(uint64_t *)arg / 1000));
	return 0;
}

enum { PH_CREATE, PH_FREE, PH__COUNT };

struct pause_run {
	enum pt_track_backend be;
	uint64_t *pause;	/* npause entries */
	uint64_t *ph;		/* npause * PH__COUNT [start, end) pairs */
	uint64_t wall_ns;
};

static int create_free_loop(struct child *c, void *arg)
{
	struct pause_run *pr = arg;
	PT_OPTS(pt_tracker_opts, o, .backend = pr->be);
	struct pt_dirty *buf = malloc(API_CAP * sizeof(*buf));
	uint64_t t0 = now_ns(), got;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	for (int i = 0; i < npause && !err; i++) {
		PT_OPTS(pt_tracker_stats, st);
		uint64_t *ph = &pr->ph[i * PH__COUNT * 2];
		struct pt_tracker *tr;
		int64_t ns;

		ph[0] = now_ns();
		tr = pt_tracker_create(c->pid, &o);
		ph[1] = now_ns();
		if (!tr) {
			err = fail("pt_tracker_create on a busy target", errno);
			break;
		}
		/* soft-dirty pauses in collect (freeze); uffd does not */
		if (pr->be == PT_TRACK_SOFTDIRTY && (ns = collect_round(tr, buf, &got)) < 0)
			err = fail("pt_tracker_collect", (int)ns);
		pt_tracker_stats(tr, &st);
		pr->pause[i] = st.pause_ns_max;
		ph[2] = now_ns();
		pt_tracker_free(tr);
		ph[3] = now_ns();
	}
	pr->wall_ns = now_ns() - t0;
	free(buf);
	return err;
}

/* Longest stall of @st that began during a phase of kind @k. */
static uint64_t phase_stall(const struct pause_run *pr, const struct stalls *st, int k,
			    uint64_t *phase_ns)
{
	uint64_t max = 0;

	*phase_ns = 0;
	for (int i = 0; i < npause; i++) {
		const uint64_t *ph = &pr->ph[(i * PH__COUNT + k) * 2];

		if (ph[1] - ph[0] > *phase_ns)
			*phase_ns = ph[1] - ph[0];
		for (uint32_t j = 0; j < st->n; j++)
			if (st->at[j] >= ph[0] && st->at[j] < ph[1] && st->len[j] > max)
				max = st->len[j];
	}
	return max;
}

static int pause_for(struct child *c, enum pt_track_backend be, const char *name)
{
	uint64_t *p = calloc((size_t)npause, sizeof(*p));
	uint64_t *ph = calloc((size_t)npause * PH__COUNT * 2, sizeof(*ph));
	struct pause_run pr = { .be = be, .pause = p, .ph = ph };
	struct stalls *st = calloc(2, sizeof(*st));
	struct reply r, idle;
	char label[64], note[160];
	uint64_t pns;
	int err;

	if (!p || !ph || !st) {
		err = -ENOMEM;
		goto out;
	}
	uint64_t rq[2] = { 0, 0 };

	err = busy_run(c, create_free_loop, &pr, &r, &st[0], &rq[0]);
	if (err)
		goto out;
	/* the same spin without us, as long: the machine's own stalls */
	err = busy_run(c, idle_wait, &pr.wall_ns, &idle, &st[1], &rq[1]);
	if (err)
		goto out;
	qsort(p, (size_t)npause, sizeof(*p), cmp_u64);
	snprintf(label, sizeof(label), "%s pause_ns_max, max of %d", name, npause);
	line_limit(label, (double)p[npause - 1] / 1e6, "ms", 1, true);
	snprintf(label, sizeof(label), "  median of %d", npause);
	line_limit(label, (double)p[npause / 2] / 1e6, "ms", 1, true);
	snprintf(note, sizeof(note), "(%u stalls >= %.1f ms, %.1f ms waiting for a CPU in all;"
		 " idle spin as long: %.3f ms, %u, %.1f ms)", st[0].n, STALL_MIN_NS / 1e6,
		 (double)rq[0] / 1e6, (double)idle.val / 1e6, st[1].n, (double)rq[1] / 1e6);
	line_limit("  target's longest stall, any cause", (double)r.val / 1e6, "ms", 1, false);
	printf("%-38s %s\n", "", note);
	uint64_t s = phase_stall(&pr, &st[0], PH_CREATE, &pns);
	snprintf(note, sizeof(note), "(longest pt_tracker_create %.2f ms)", (double)pns / 1e6);
	line_info("    began in pt_tracker_create", (double)s / 1e6, "ms", note);
	s = phase_stall(&pr, &st[0], PH_FREE, &pns);
	snprintf(note, sizeof(note), "(longest pt_tracker_free %.2f ms)", (double)pns / 1e6);
	line_info("    began in pt_tracker_free", (double)s / 1e6, "ms", note);
out:
	free(p);
	free(ph);
	free(st);
	return err;
}

static int part_pause(struct child *c)
{
	const char *why = NULL;
	int err;

	header("pause imposed on a busy target (it spins writing its memory)");
	err = pause_for(c, PT_TRACK_UFFD, "uffd");
	if (err)
		return err;
	/*
	 * What arming and disarming cost in the kernel, run by the target
	 * itself on its own userfaultfd: UFFDIO_UNREGISTER (and close) hold
	 * the mmap lock for writing while every page is unprotected, so a
	 * faulting target waits that long.  Best of reps.
	 */
	int64_t reg = -1, prot = -1, unreg = -1, unprot = -1, unreg2 = -1;
	int vmas_before = vma_count(c->pid), vmas_after = -1;
	struct reply r;
	char note[64];

	for (int i = 0; i <= reps; i++) {
		if ((err = child_do(c, OP_UFFD_ON, 0, 0, &r)))
			return fail("raw: own userfaultfd", err);
		if (i) {
			keep_min(&reg, (int64_t)r.n);
			keep_min(&prot, r.val);
		}
		if ((err = child_do(c, OP_UFFD_OFF, 0, 0, &r)))
			return fail("raw: UFFDIO_UNREGISTER", err);
		if (i)
			keep_min(&unreg, r.val);
		/* the same in chunks: the lock is released between them */
		if ((err = child_do(c, OP_UFFD_ON, 0, 0, &r)))
			return fail("raw: own userfaultfd", err);
		if ((err = child_do(c, OP_UFFD_OFF, 0, UNREG_CHUNK, &r)))
			return fail("raw: chunked UFFDIO_UNREGISTER", err);
		vmas_after = vma_count(c->pid);
		if (i) {
			keep_min(&unprot, (int64_t)r.n);
			keep_min(&unreg2, r.val);
		}
	}
	snprintf(note, sizeof(note), "(%llu MiB resident, own uffd)",
		 (unsigned long long)(c->len / MiB));
	line_info("raw UFFDIO_REGISTER", (double)reg / 1e6, "ms", note);
	line_info("raw protect: PAGEMAP_SCAN WP_MATCHING", (double)prot / 1e6, "ms",
		  "(mmap lock read)");
	line_info("raw UFFDIO_UNREGISTER", (double)unreg / 1e6, "ms", "(mmap lock write)");
	snprintf(note, sizeof(note), "(total %.2f ms; VMAs %d before, %d after)",
		 (double)unreg2 / 1e6, vmas_before, vmas_after);
	line_info("  in 16 MiB chunks: longest chunk", (double)unprot / 1e6, "ms", note);
	if (pt_feature(PT_FEAT_SOFT_DIRTY, &why) != PT_YES) {
		printf("%-38s skipped: %s\n", "softdirty freeze pause", why ? why : "not usable");
		return 0;
	}
	return pause_for(c, PT_TRACK_SOFTDIRTY, "softdirty");
}

/* ---- part collect: uffd collect throughput ---- */

static int part_collect(struct child *c)
{
	PT_OPTS(pt_tracker_opts, o, .backend = PT_TRACK_UFFD,
		.start = c->addr, .end = c->addr + c->len);
	struct page_region *vec = malloc(RAW_VEC_LEN * sizeof(*vec));
	struct pt_dirty *buf = malloc(API_CAP * sizeof(*buf));
	uint64_t start = c->addr, end = c->addr + c->len, want = c->len >> PT_PAGE_SHIFT;
	int64_t r1 = -1, r2 = -1, rmaps = -1, api = -1, wr = -1, fr;
	uint64_t regions1 = 0, got;
	struct pt_tracker *tr = NULL;
	struct pt_target *t = NULL;
	struct pm_count cnt;
	struct reply r;
	char path[64], note[64];
	int fd = -1, err = 0, round = 0;
	bool own = false;
	uint64_t t0;

	want = (want + DIRTY_STRIDE - 1) / DIRTY_STRIDE;
	header("uffd collect throughput, 1/64 of the pages written per round (GB of address space/s)");
	if (!vec || !buf) {
		err = -ENOMEM;
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	t = pt_target_create(c->pid, NULL);
	if (fd < 0 || !t) {
		err = fail(path, errno);
		goto out;
	}
	/*
	 * Raw: the child's own userfaultfd; the same passes the tracker
	 * makes, run from here on its pagemap (WP_MATCHING acts on the mm
	 * the pagemap belongs to, armed by the child's uffd).
	 */
	if ((err = child_do(c, OP_UFFD_ON, 0, 0, &r))) {
		err = fail("raw: own userfaultfd", err);
		goto out;
	}
	own = true;
	for (int i = 0; i <= reps; i++, round++) {
		struct pt_vma *v = NULL;
		size_t nv;
		int64_t a, b, m;

		if ((err = child_do(c, OP_WRITE, DIRTY_STRIDE, (uint64_t)round % DIRTY_STRIDE, &r)))
			goto out;
		a = pm_harvest(fd, start, end, vec, &cnt);
		if (a >= 0 && cnt.pages != want) {
			fprintf(stderr, "bench_track: raw harvest found %llu pages, %llu written\n",
				(unsigned long long)cnt.pages, (unsigned long long)want);
			err = -EIO;
			goto out;
		}
		regions1 = cnt.regions;
		round++;
		if ((err = child_do(c, OP_WRITE, DIRTY_STRIDE, (uint64_t)round % DIRTY_STRIDE, &r)))
			goto out;
		b = pm_walk(fd, start, end, vec, &cnt);
		if (b >= 0 && cnt.written != want) {
			fprintf(stderr, "bench_track: raw walk found %llu written pages of %llu\n",
				(unsigned long long)cnt.written, (unsigned long long)want);
			err = -EIO;
			goto out;
		}
		t0 = now_ns();
		m = pt_vmas_read(t, &v, &nv);
		pt_vmas_free(v);
		if (a < 0 || b < 0 || m < 0) {
			err = fail("raw PAGEMAP_SCAN / maps", a < 0 ? (int)a : b < 0 ? (int)b : (int)m);
			goto out;
		}
		m = (int64_t)(now_ns() - t0);
		if (i) {
			keep_min(&r1, a);
			keep_min(&r2, b);
			keep_min(&rmaps, m);
			keep_min(&wr, r.val);
		}
	}
	own = false;
	if ((err = child_do(c, OP_UFFD_OFF, 0, 0, &r)))
		goto out;
	tr = pt_tracker_create(c->pid, &o);
	if (!tr) {
		err = fail("pt_tracker_create(uffd)", errno);
		goto out;
	}
	for (int i = 0; i <= reps; i++, round++) {
		int64_t ns;

		if ((err = child_do(c, OP_WRITE, DIRTY_STRIDE, (uint64_t)round % DIRTY_STRIDE, &r)))
			goto out;
		ns = collect_round(tr, buf, &got);
		if (ns < 0) {
			err = fail("pt_tracker_collect", (int)ns);
			goto out;
		}
		if (got != want) {
			fprintf(stderr, "bench_track: collect reported %llu pages, %llu written\n",
				(unsigned long long)got, (unsigned long long)want);
			err = -EIO;
			goto out;
		}
		if (i)
			keep_min(&api, ns);
	}
	double g1 = gbps(c->len, (uint64_t)r1), floor_ns = (double)(r2 + rmaps);

	snprintf(note, sizeof(note), "(%llu MiB, %llu regions)", (unsigned long long)(c->len / MiB),
		 (unsigned long long)regions1);
	line_info("raw harvest: WP_MATCHING written", g1, "GB/s", note);
	line_info("raw walk: data listed, written", gbps(c->len, (uint64_t)r2), "GB/s",
		  "(the tracker's PAGEMAP_SCAN)");
	line_info("raw maps read (pt_vmas_read)", (double)rmaps / 1e3, "us", NULL);
	line_info("raw walk + maps", (double)c->len / floor_ns, "GB/s", NULL);
	line_ratio("api collect uffd", gbps(c->len, (uint64_t)api), g1, "GB/s", 0.5, true, true);
	line_ratio("  same vs walk + maps", gbps(c->len, (uint64_t)api),
		   (double)c->len / floor_ns, "GB/s", 0, true, false);
	line_info("  first writes in the child", (double)wr / (double)want, "ns/page",
		  "(own uffd)");
	/* disarming holds the mmap lock for writing over every page (see pause) */
	t0 = now_ns();
	pt_tracker_free(tr);
	tr = NULL;
	fr = (int64_t)(now_ns() - t0);
	line_info("pt_tracker_free (disarm)", (double)fr / 1e6, "ms", "(target faults wait)");
out:
	if (own)
		child_do(c, OP_UFFD_OFF, 0, 0, &r);
	pt_tracker_free(tr);
	pt_target_free(t);
	if (fd >= 0)
		close(fd);
	free(vec);
	free(buf);
	return err;
}

/* ---- part hash: hash backend throughput ---- */

/* One process_vm_readv pass over [start,end), VM_NIOV iovecs of VM_IOV per call. */
static int64_t raw_vm_read(pid_t pid, uint64_t start, uint64_t end, unsigned char *buf)
{
	struct iovec l[VM_NIOV], r[VM_NIOV];
	uint64_t t0 = now_ns();

	for (uint64_t a = start; a < end;) {
		size_t k = 0, want = 0;

		for (; k < VM_NIOV && a < end; k++, a += VM_IOV) {
			size_t len = end - a < VM_IOV ? (size_t)(end - a) : VM_IOV;

			l[k] = (struct iovec){ buf + k * VM_IOV, len };
			r[k] = (struct iovec){ (void *)(uintptr_t)a, len };
			want += len;
		}
		ssize_t got = process_vm_readv(pid, l, k, r, k, 0);
		if (got != (ssize_t)want)
			return got < 0 ? -errno : -EIO;
	}
	return (int64_t)(now_ns() - t0);
}

static int part_hash(struct child *c)
{
	PT_OPTS(pt_tracker_opts, o, .backend = PT_TRACK_HASH,
		.start = c->addr, .end = c->addr + c->len);
	unsigned char *vbuf = malloc(VM_NIOV * VM_IOV);
	struct pt_dirty *buf = malloc(API_CAP * sizeof(*buf));
	uint64_t want = (c->len >> PT_PAGE_SHIFT) / DIRTY_STRIDE, got, t0, base;
	int64_t raw = -1, api = -1;
	struct pt_tracker *tr = NULL;
	struct reply r;
	char note[64];
	int err = 0;

	header("hash backend collect throughput, 1/64 of the pages written per round (GB/s)");
	if (!vbuf || !buf) {
		err = -ENOMEM;
		goto out;
	}
	for (int i = 0; i <= reps; i++) {
		int64_t ns = raw_vm_read(c->pid, c->addr, c->addr + c->len, vbuf);

		if (ns < 0) {
			err = fail("raw process_vm_readv", (int)ns);
			goto out;
		}
		if (i)
			keep_min(&raw, ns);
	}
	t0 = now_ns();
	tr = pt_tracker_create(c->pid, &o);
	base = now_ns() - t0;
	if (!tr) {
		err = fail("pt_tracker_create(hash)", errno);
		goto out;
	}
	for (int i = 0; i <= reps; i++) {
		int64_t ns;

		if ((err = child_do(c, OP_WRITE, DIRTY_STRIDE, (uint64_t)i % DIRTY_STRIDE, &r)))
			goto out;
		ns = collect_round(tr, buf, &got);
		if (ns < 0) {
			err = fail("pt_tracker_collect(hash)", (int)ns);
			goto out;
		}
		if (got != want) {
			fprintf(stderr, "bench_track: hash collect reported %llu pages, %llu written\n",
				(unsigned long long)got, (unsigned long long)want);
			err = -EIO;
			goto out;
		}
		if (i)
			keep_min(&api, ns);
	}
	double g = gbps(c->len, (uint64_t)raw);

	snprintf(note, sizeof(note), "(%llu MiB; %d x %llu MiB iovecs per call)",
		 (unsigned long long)(c->len / MiB), VM_NIOV, (unsigned long long)(VM_IOV / MiB));
	line_info("raw process_vm_readv", g, "GB/s", note);
	line_ratio("api baseline (pt_tracker_create)", gbps(c->len, base), g, "GB/s", 0, true, false);
	line_ratio("api collect hash", gbps(c->len, (uint64_t)api), g, "GB/s", 0.5, true, true);
out:
	pt_tracker_free(tr);
	free(vbuf);
	free(buf);
	return err;
}

/* ---- main ---- */

static void on_signal(int sig)
{
	if (live_child > 0) {
		kill(live_child, SIGKILL);
		waitpid(live_child, NULL, 0);
	}
	_exit(128 + sig);
}

static bool want_part(const char *p)
{
	return !only || !strcmp(only, p);
}

int main(int argc, char **argv)
{
	struct child c = { .cmd_fd = -1, .rep_fd = -1 };
	const char *why;
	int opt;

	while ((opt = getopt(argc, argv, "n:s:w:p:x:")) != -1) {
		switch (opt) {
		case 'n':
			reps = atoi(optarg);
			break;
		case 's':
			size = strtoull(optarg, NULL, 10) * MiB;
			break;
		case 'w':
			wsize = strtoull(optarg, NULL, 10) * MiB;
			break;
		case 'p':
			npause = atoi(optarg);
			break;
		case 'x':
			only = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-n REPS] [-s SIZE_MiB] [-w WRITER_MiB] [-p CREATES]"
				" [-x fault|pause|collect|hash]\n", argv[0]);
			return 2;
		}
	}
	if (reps < 1 || npause < 1 || size < 64 * MiB || wsize < 4 * MiB) {
		fprintf(stderr, "bench_track: need REPS, CREATES >= 1, SIZE >= 64, WRITER >= 4\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	printf("\npagetrack tracking bench: best of %d after one warm-up; ratios against raw"
	       " kernel rates from this run\n", reps);
	why = uffd_unusable();
	if (why && (want_part("fault") || want_part("pause") || want_part("collect")))
		printf("uffd parts skipped: %s\n", why);
	if (!why && (want_part("fault") || want_part("pause"))) {
		int err = child_start(&c, wsize);

		if (err)
			failed |= fail("cannot start the writer target", err) != 0;
		if (!err && want_part("fault") && part_fault(&c))
			failed = 1;
		if (!err && want_part("pause") && part_pause(&c))
			failed = 1;
		child_stop(&c);
	}
	if (want_part("collect") || want_part("hash")) {
		printf("\nsetting up: %llu MiB private anonymous target ...\n",
		       (unsigned long long)(size / MiB));
		if (enough_memory(size)) {
			int err = child_start(&c, size);

			if (err)
				failed |= fail("cannot start the target", err) != 0;
			if (!err && !why && want_part("collect") && part_collect(&c))
				failed = 1;
			if (!err && want_part("hash") && part_hash(&c))
				failed = 1;
			child_stop(&c);
		}
	}
	return failed;
}
