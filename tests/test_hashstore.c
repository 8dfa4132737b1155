/* SPDX-License-Identifier: MIT */
/*
 * The content-hash engine (lib/track/hashstore.c), driven directly through a
 * hash store and target of its own, against the calling process and a forked
 * child.  The test keeps its own record of which pages it changed and
 * requires the engine to report exactly those: no miss, and for this
 * engine no false positive either.
 *
 *	private anon, shared anon, memfd: random writes, write(2) on the
 *	memfd, MADV_DONTNEED, hole punch, zero written over zero
 *	a 64 TiB PROT_NONE reservation with 4 pages of data: bounded memory,
 *	PROT_NONE pages read through /proc/PID/mem
 *	swapped private and shared pages: not swapped in by hashing, changes
 *	after swap-in + write + swap-out reported
 *	target killed: -ESRCH
 * Throughput against raw process_vm_readv is printed (PT_HASH_BENCH_MB).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"
#include "track/hashstore.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define NP 128
#define SPARSE_LEN (64ULL << 40)

/* ---- commands, run in the target (ourselves or the child) ---- */

enum { K_ANON, K_SHARED, K_MEMFD, K_SPARSE, K_NKIND };
static const char *const kname[K_NKIND] = { "private anon", "shared anon", "memfd", "sparse" };

enum { OP_MAP, OP_FILL, OP_XOR, OP_SET0, OP_READ, OP_MADV, OP_MPROT, OP_QUIT };

struct cmd {
	int op, arg;
	uint64_t addr, len, val;
};

struct rep {
	uint64_t addr;
	int fd, err;
};

static struct rep exec_cmd(const struct cmd *c)
{
	struct rep r = { .fd = -1 };
	unsigned char *p = (unsigned char *)(uintptr_t)c->addr;

	switch (c->op) {
	case OP_MAP: {
		int flags = MAP_PRIVATE | MAP_ANONYMOUS, prot = PROT_READ | PROT_WRITE;
		void *m;

		if (c->arg == K_SHARED)
			flags = MAP_SHARED | MAP_ANONYMOUS;
		if (c->arg == K_SPARSE) {
			flags |= MAP_NORESERVE;
			prot = PROT_NONE;
		}
		if (c->arg == K_MEMFD) {
			r.fd = memfd_create("pt-hash", MFD_CLOEXEC);
			if (r.fd < 0 || ftruncate(r.fd, (off_t)c->len)) {
				r.err = errno;
				return r;
			}
			flags = MAP_SHARED;
		}
		m = mmap(NULL, c->len, prot, flags, r.fd, 0);
		if (m == MAP_FAILED)
			r.err = errno;
		else
			r.addr = (uintptr_t)m;
		return r;
	}
	case OP_FILL:
		memset(p, (int)c->val, c->len);
		break;
	case OP_XOR:
		p[c->val >> 8] ^= (unsigned char)(c->val | 1);
		break;
	case OP_SET0:
		p[c->val] = 0;
		break;
	case OP_READ:
		r.addr = *(volatile unsigned char *)p;
		break;
	case OP_MADV:
		if (madvise(p, c->len, c->arg))
			r.err = errno;
		break;
	case OP_MPROT:
		if (mprotect(p, c->len, c->arg))
			r.err = errno;
		break;
	}
	return r;
}

struct tgt {
	pid_t pid;		/* 0: ourselves */
	int to, from;		/* command pipes to the child */
};

static void child_loop(int in, int out)
{
	struct cmd c;

	while (read(in, &c, sizeof(c)) == sizeof(c) && c.op != OP_QUIT) {
		struct rep r = exec_cmd(&c);

		if (write(out, &r, sizeof(r)) != sizeof(r))
			break;
	}
	_exit(0);
}

static int tgt_start(struct tgt *T, bool child)
{
	int a[2], b[2];

	memset(T, 0, sizeof(*T));
	T->to = T->from = -1;
	if (!child)
		return 0;
	if (pipe2(a, O_CLOEXEC) || pipe2(b, O_CLOEXEC))
		return -1;
	fflush(stdout);
	T->pid = fork();
	if (T->pid < 0)
		return -1;
	if (T->pid == 0) {
		close(a[1]);
		close(b[0]);
		child_loop(a[0], b[1]);
	}
	close(a[0]);
	close(b[1]);
	T->to = a[1];
	T->from = b[0];
	return 0;
}

static void tgt_kill(struct tgt *T)
{
	if (T->pid > 0) {
		kill(T->pid, SIGKILL);
		waitpid(T->pid, NULL, 0);
	}
	if (T->to >= 0)
		close(T->to);
	if (T->from >= 0)
		close(T->from);
	T->pid = 0;
	T->to = T->from = -1;
}

static struct rep run(struct tgt *T, int op, int arg, uint64_t addr, uint64_t len, uint64_t val)
{
	struct cmd c = { .op = op, .arg = arg, .addr = addr, .len = len, .val = val };
	struct rep r = { .err = EIO };

	if (!T->pid)
		return exec_cmd(&c);
	if (write(T->to, &c, sizeof(c)) != sizeof(c) || read(T->from, &r, sizeof(r)) != sizeof(r))
		r.err = EIO;
	return r;
}

/* ---- the engine, with a hand-built tracker ---- */

struct ctx {
	struct pt_target *t;
	struct pt_hashstore *hs;
	uint64_t pages_hashed;
	struct pt_dirtylist out;
};

static int ctx_open(struct ctx *C, pid_t pid)
{
	memset(C, 0, sizeof(*C));
	C->t = pt_target_create(pid, NULL);
	C->hs = pt__hashstore_new();
	if (!C->t || !C->hs)
		return -1;
	return 0;
}

static void ctx_close(struct ctx *C)
{
	pt__hashstore_free(C->hs);
	pt_target_free(C->t);
	free(C->out.d);
}

/* Hash [a, a+len) area by area, as the tracker does.  0 or -errno. */
static int hash_range(struct ctx *C, uint64_t a, uint64_t len, bool baseline)
{
	struct pt_vma *v;
	size_t n;
	int err = pt_vmas_read(C->t, &v, &n);

	C->out.n = 0;
	if (err < 0)
		return err;
	for (size_t i = 0; i < n && !err; i++) {
		uint64_t s = v[i].start > a ? v[i].start : a;
		uint64_t e = v[i].end < a + len ? v[i].end : a + len;

		if (s < e)
			err = pt__hash_area(C->hs, C->t, &v[i], s, e, baseline, &C->out,
					    &C->pages_hashed);
	}
	pt_vmas_free(v);
	return err;
}

/*
 * Compare the reported pages of [a, a+np pages) with @want.  Returns the
 * number of differences (misses + false positives); fills @miss/@fp.
 */
static int compare(const struct ctx *C, uint64_t a, size_t np, const bool *want, int *miss,
		   int *fp)
{
	bool *got = calloc(np, 1);

	*miss = *fp = 0;
	for (size_t i = 0; i < C->out.n; i++) {
		const struct pt_dirty *d = &C->out.d[i];

		if (!(d->flags & PT_DIRTY_HASHED))
			(*fp)++;
		for (uint64_t p = d->start; p < d->end; p += FX_PAGE) {
			if (p < a || p >= a + np * FX_PAGE)
				(*fp)++;
			else
				got[(p - a) / FX_PAGE] = true;
		}
	}
	for (size_t i = 0; i < np; i++) {
		*miss += want[i] && !got[i];
		*fp += !want[i] && got[i];
	}
	free(got);
	return *miss + *fp;
}

static bool check_round(struct ctx *C, uint64_t a, size_t np, const bool *want, const char *what)
{
	int err = hash_range(C, a, np * FX_PAGE, false), miss = 0, fp = 0;

	if (err)
		return tap_ok(0, "%s: pt__hash_area: %s", what, strerror(-err));
	compare(C, a, np, want, &miss, &fp);
	return tap_ok(!miss && !fp, "%s: %d misses, %d false positives", what, miss, fp);
}

static size_t count_state(struct ctx *C, uint64_t a, size_t np, uint8_t state)
{
	uint8_t *st = malloc(np);
	struct pt_vma *v;
	size_t n = 0;

	if (pt_vmas_read(C->t, &v, &n) == 0)	/* the scan uses the layout read last */
		pt_vmas_free(v);
	n = 0;
	if (fx_scan_pages(C->t, a, a + np * FX_PAGE, 0, st, NULL) == 0)
		n = fx_count(st, 0, np, state);
	free(st);
	return n;
}

/* ---- the suites ---- */

static uint64_t rnd(void)
{
	static uint64_t s = 0x9e3779b97f4a7c15ull;

	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s;
}

static void pick(bool *want, size_t np, size_t k, const bool *only)
{
	memset(want, 0, np);
	for (size_t n = 0, tries = 0; n < k && tries < 100000; tries++) {
		size_t i = rnd() % np;

		if (!want[i] && (!only || only[i])) {
			want[i] = true;
			n++;
		}
	}
}

/* Subtests each suite prints, skips included: the plan is fixed. */
#define N_BASIC 19
#define N_SPARSE 4
#define N_SWAP (2 * 6)
#define N_SUITES (N_BASIC + N_SPARSE + N_SWAP)

static void suite_basic(struct tgt *T, struct ctx *C, const char *who)
{
	uint64_t a[3];
	int fd[3];
	bool zero[3][NP], want[NP];
	char what[128];

	for (int k = 0; k < 3; k++) {
		struct rep r = run(T, OP_MAP, k, 0, NP * FX_PAGE, 0);

		if (r.err) {
			tap_skip_n(N_BASIC, strerror(r.err), "%s: %s: map", who, kname[k]);
			return;
		}
		a[k] = r.addr;
		fd[k] = r.fd;
		for (size_t i = 0; i < NP; i++) {
			zero[k][i] = i % 3 == 0;
			if (!zero[k][i])
				run(T, OP_FILL, 0, a[k] + i * FX_PAGE, FX_PAGE, (i * 7 + k) | 1);
		}
	}
	for (int k = 0; k < 3; k++) {
		int err = hash_range(C, a[k], NP * FX_PAGE, true);

		snprintf(what, sizeof(what), "%s: %s: baseline", who, kname[k]);
		tap_ok(!err && C->out.n == 0, "%s stores only (%s)", what, strerror(-err));
	}
	memset(want, 0, sizeof(want));
	for (int k = 0; k < 3; k++) {
		snprintf(what, sizeof(what), "%s: %s: no change", who, kname[k]);
		check_round(C, a[k], NP, want, what);
	}
	/* random writes, some to pages that were zero */
	for (int k = 0; k < 3; k++) {
		pick(want, NP, 24, NULL);
		for (size_t i = 0; i < NP; i++) {
			if (!want[i])
				continue;
			run(T, OP_XOR, 0, a[k] + i * FX_PAGE, 0, (rnd() % FX_PAGE) << 8 | (rnd() & 0xff));
			zero[k][i] = false;
		}
		snprintf(what, sizeof(what), "%s: %s: 24 random writes", who, kname[k]);
		check_round(C, a[k], NP, want, what);
	}
	/* write(2) on the memfd from this process, not through any mapping */
	{
		char path[64];
		int wfd;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", T->pid ? T->pid : getpid(),
			 fd[K_MEMFD]);
		wfd = open(path, O_RDWR | O_CLOEXEC);
		pick(want, NP, 5, NULL);
		for (size_t i = 0; wfd >= 0 && i < NP; i++) {
			unsigned char b = 0;

			if (!want[i])
				continue;
			if (pread(wfd, &b, 1, (off_t)(i * FX_PAGE + 9)) != 1)
				break;
			b ^= 0xa5;
			if (pwrite(wfd, &b, 1, (off_t)(i * FX_PAGE + 9)) != 1)
				break;
			zero[K_MEMFD][i] = false;
		}
		snprintf(what, sizeof(what), "%s: memfd: pwrite on the fd", who);
		if (wfd < 0)
			tap_ok(0, "%s: open %s: %s", what, path, strerror(errno));
		else
			check_round(C, a[K_MEMFD], NP, want, what);
		/* hole punch: content of those pages becomes zero */
		bool nz[NP];

		for (size_t i = 0; i < NP; i++)
			nz[i] = !zero[K_MEMFD][i];
		pick(want, NP, 4, nz);
		for (size_t i = 0; wfd >= 0 && i < NP; i++) {
			if (!want[i])
				continue;
			fallocate(wfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)(i * FX_PAGE), FX_PAGE);
			zero[K_MEMFD][i] = true;
		}
		snprintf(what, sizeof(what), "%s: memfd: hole punch", who);
		if (wfd >= 0)
			check_round(C, a[K_MEMFD], NP, want, what);
		else
			tap_skip("the memfd could not be opened", "%s", what);
		if (wfd >= 0)
			close(wfd);
	}
	/* MADV_DONTNEED: private content becomes zero, shared content stays */
	for (int k = 0; k < 2; k++) {
		bool nz[NP];

		for (size_t i = 0; i < NP; i++)
			nz[i] = !zero[k][i];
		pick(want, NP, 6, nz);
		for (size_t i = 0; i < NP; i++)
			if (want[i])
				run(T, OP_MADV, MADV_DONTNEED, a[k] + i * FX_PAGE, FX_PAGE, 0);
		if (k == K_SHARED)
			memset(want, 0, sizeof(want));
		else
			for (size_t i = 0; i < NP; i++)
				zero[k][i] |= want[i];
		snprintf(what, sizeof(what), "%s: %s: MADV_DONTNEED of 6 pages %s", who, kname[k],
			 k == K_SHARED ? "(data stays: nothing)" : "(now zero)");
		check_round(C, a[k], NP, want, what);
	}
	/* zero written over zero: now present but zero, unchanged */
	for (int k = 0; k < 3; k++) {
		memset(want, 0, sizeof(want));
		for (size_t i = 0, n = 0; i < NP && n < 8; i++)
			if (zero[k][i] && ++n)
				run(T, OP_SET0, 0, a[k] + i * FX_PAGE, 0, 100);
		snprintf(what, sizeof(what), "%s: %s: zero written over 8 zero pages", who,
			 kname[k]);
		check_round(C, a[k], NP, want, what);
		snprintf(what, sizeof(what), "%s: %s: no change again", who, kname[k]);
		check_round(C, a[k], NP, want, what);
	}
	for (int k = 0; k < 3; k++) {
		run(T, OP_MADV, MADV_DONTNEED, a[k], 0, 0);	/* keep the child small */
		pt__hash_forget(C->hs, a[k], a[k] + NP * FX_PAGE);
	}
}

static long maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* 64 TiB reservation, 4 pages of data: memory and time follow the data. */
static void suite_sparse(struct tgt *T, struct ctx *C, const char *who)
{
	struct rep r = run(T, OP_MAP, K_SPARSE, 0, SPARSE_LEN, 0);
	uint64_t base, pg[4];
	bool want[4] = { false, false, true, false };
	long rss0;
	int err;

	if (r.err) {
		tap_skip_n(N_SPARSE, strerror(r.err), "%s: 64 TiB reservation", who);
		return;
	}
	base = r.addr;
	for (int i = 0; i < 4; i++) {
		pg[i] = base + (SPARSE_LEN / 5) * (uint64_t)(i + 1);
		pg[i] &= ~(FX_PAGE - 1);
		run(T, OP_MPROT, PROT_READ | PROT_WRITE, pg[i], FX_PAGE, 0);
		run(T, OP_FILL, 0, pg[i], FX_PAGE, 0x40 + i);
	}
	/* page 3 goes back to PROT_NONE: readable only through /proc/PID/mem */
	run(T, OP_MPROT, PROT_NONE, pg[3], FX_PAGE, 0);
	rss0 = maxrss_kb();
	err = hash_range(C, base, SPARSE_LEN, true);
	tap_ok(!err, "%s: sparse: baseline of 64 TiB (%s)", who, strerror(-err));
	err = hash_range(C, base, SPARSE_LEN, false);
	tap_ok(!err && C->out.n == 0, "%s: sparse: no change: %zu regions", who, C->out.n);
	tap_ok(maxrss_kb() - rss0 < 32 * 1024, "%s: sparse: hashing 64 TiB raised max RSS by %ld KiB",
	       who, maxrss_kb() - rss0);
	/* change page 2 and the PROT_NONE page 3 (made writable for a moment) */
	run(T, OP_XOR, 0, pg[2], 0, 77 << 8 | 3);
	run(T, OP_MPROT, PROT_READ | PROT_WRITE, pg[3], FX_PAGE, 0);
	run(T, OP_XOR, 0, pg[3], 0, 5 << 8 | 9);
	run(T, OP_MPROT, PROT_NONE, pg[3], FX_PAGE, 0);
	want[3] = true;
	err = hash_range(C, base, SPARSE_LEN, false);
	{
		int got = 0, bad = 0;

		for (size_t i = 0; i < C->out.n; i++)
			for (uint64_t p = C->out.d[i].start; p < C->out.d[i].end; p += FX_PAGE) {
				bool hit = false;

				for (int j = 0; j < 4; j++)
					if (p == pg[j] && want[j])
						hit = true;
				got += hit;
				bad += !hit;
			}
		tap_ok(!err && got == 2 && bad == 0,
		       "%s: sparse: write to a RW page and a PROT_NONE page: %d of 2 found, %d others",
		       who, got, bad);
	}
	pt__hash_forget(C->hs, base, base + SPARSE_LEN);
	if (!T->pid)
		munmap((void *)(uintptr_t)base, SPARSE_LEN);
}

/* Swapped pages: not swapped in to be hashed; changes after swap-in + write + swap-out seen. */
static void suite_swap(struct tgt *T, struct ctx *C, const char *who)
{
	const char *why = NULL;
	char what[128];
	bool want[NP];

	if (!fx_swap(&why)) {
		tap_skip_n(N_SWAP, why ? why : "no swap", "%s: swap tests", who);
		return;
	}
	for (int k = 0; k < 2; k++) {
		struct rep r = run(T, OP_MAP, k, 0, NP * FX_PAGE, 0);
		uint64_t a = r.addr;
		size_t sw, after;
		uint64_t hashed;
		int err;

		if (r.err) {
			tap_skip_n(N_SWAP / 2, strerror(r.err), "%s: %s: swap map", who, kname[k]);
			continue;
		}
		for (size_t i = 0; i < NP; i++)
			run(T, OP_FILL, 0, a + i * FX_PAGE, FX_PAGE, (i * 3 + 1) | 1);
		run(T, OP_MADV, MADV_PAGEOUT, a, NP * FX_PAGE, 0);
		sw = count_state(C, a, NP, PT_STATE_SWAPPED);
		if (sw < NP / 2) {
			tap_skip_n(N_SWAP / 2, "MADV_PAGEOUT did not swap the pages out",
				   "%s: %s: swapped (%zu)", who, kname[k], sw);
			continue;
		}
		err = hash_range(C, a, NP * FX_PAGE, true);
		after = count_state(C, a, NP, PT_STATE_SWAPPED);
		tap_ok(!err && after >= sw, "%s: %s: baseline of %zu swapped pages leaves %zu swapped",
		       who, kname[k], sw, after);
		memset(want, 0, sizeof(want));
		snprintf(what, sizeof(what), "%s: %s swapped: no change", who, kname[k]);
		check_round(C, a, NP, want, what);
		hashed = C->pages_hashed;
		snprintf(what, sizeof(what), "%s: %s swapped: no change again", who, kname[k]);
		check_round(C, a, NP, want, what);
		hashed = C->pages_hashed - hashed;
		after = count_state(C, a, NP, PT_STATE_SWAPPED);
		tap_ok(after >= sw, "%s: %s: still %zu of %zu swapped after hashing", who, kname[k],
		       after, sw);
		tap_diag("%s: %s: %llu swapped pages read (and paged out again) per round", who,
			 kname[k], (unsigned long long)hashed);
		/*
		 * Swap-cache read fault, write, reclaim: the page goes back to
		 * the same swap slot with new content.  Must be reported.
		 */
		pick(want, NP, 5, NULL);
		for (size_t i = 0; i < NP; i++) {
			if (!want[i])
				continue;
			run(T, OP_MADV, MADV_WILLNEED, a + i * FX_PAGE, FX_PAGE, 0);
			run(T, OP_READ, 0, a + i * FX_PAGE, 0, 0);
			run(T, OP_XOR, 0, a + i * FX_PAGE, 0, (rnd() % FX_PAGE) << 8 | 0x21);
		}
		run(T, OP_MADV, MADV_PAGEOUT, a, NP * FX_PAGE, 0);
		snprintf(what, sizeof(what), "%s: %s: 5 pages read from swap cache, written, "
			 "swapped out to the same slot", who, kname[k]);
		check_round(C, a, NP, want, what);
		/* swap in, write, swap out */
		pick(want, NP, 5, NULL);
		for (size_t i = 0; i < NP; i++)
			if (want[i])
				run(T, OP_XOR, 0, a + i * FX_PAGE, 0, (rnd() % FX_PAGE) << 8 | 0x11);
		run(T, OP_MADV, MADV_PAGEOUT, a, NP * FX_PAGE, 0);
		snprintf(what, sizeof(what), "%s: %s: 5 pages swapped in, written, swapped out",
			 who, kname[k]);
		check_round(C, a, NP, want, what);
		tap_diag("%s: %s: after the last round %zu swapped, %zu cached, %zu present", who,
			 kname[k], count_state(C, a, NP, PT_STATE_SWAPPED),
			 count_state(C, a, NP, PT_STATE_CACHED), count_state(C, a, NP, PT_STATE_PRESENT));
		run(T, OP_MADV, MADV_DONTNEED, a, NP * FX_PAGE, 0);
		pt__hash_forget(C->hs, a, a + NP * FX_PAGE);
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Hash throughput against raw process_vm_readv of the same memory (printed only). */
static void bench(struct tgt *T, struct ctx *C)
{
	const char *env = getenv("PT_HASH_BENCH_MB");
	uint64_t len = (uint64_t)(env ? atol(env) : 256) << 20;
	struct rep r = run(T, OP_MAP, K_ANON, 0, len, 0);
	const size_t chunk = 4u << 20;
	double raw = 1e9, base = 1e9, round = 1e9;
	char *buf = malloc(chunk);

	if (r.err || !buf || !len) {
		free(buf);
		return;
	}
	run(T, OP_FILL, 0, r.addr, len, 0x5a);
	for (int rep = 0; rep < 3; rep++) {
		double t0 = now();

		for (uint64_t o = 0; o < len; o += chunk) {
			struct iovec l = { buf, chunk }, rr = { (void *)(uintptr_t)(r.addr + o), chunk };

			if (process_vm_readv(T->pid, &l, 1, &rr, 1, 0) != (ssize_t)chunk)
				break;
		}
		if (now() - t0 < raw)
			raw = now() - t0;
		t0 = now();
		hash_range(C, r.addr, len, true);
		if (now() - t0 < base)
			base = now() - t0;
		t0 = now();
		hash_range(C, r.addr, len, false);
		if (now() - t0 < round)
			round = now() - t0;
	}
	tap_diag("throughput on %llu MiB: raw process_vm_readv %.2f GB/s, hash baseline %.2f GB/s "
		 "(%.2f of raw), hash round %.2f GB/s (%.2f of raw)",
		 (unsigned long long)(len >> 20), len / raw / 1e9, len / base / 1e9, raw / base,
		 len / round / 1e9, raw / round);
	free(buf);
	run(T, OP_MADV, MADV_DONTNEED, r.addr, len, 0);
	pt__hash_forget(C->hs, r.addr, r.addr + len);
}

int main(void)
{
	/* the child also checks that a target gone mid-way is reported */
	tap_plan(2 * N_SUITES + 1);
	for (int child = 0; child < 2; child++) {
		const char *who = child ? "child" : "self";
		struct tgt T;
		struct ctx C;

		if (tgt_start(&T, child)) {
			tap_ok(0, "%s: fork", who);
			tap_skip_n(N_SUITES + child - 1, "no target", "%s: all suites", who);
			continue;
		}
		if (ctx_open(&C, T.pid)) {
			tap_ok(0, "%s: open target: %s", who, strerror(errno));
			tap_skip_n(N_SUITES + child - 1, "no target", "%s: all suites", who);
			ctx_close(&C);
			tgt_kill(&T);
			continue;
		}
		if (!child)
			suite_sparse(&T, &C, who);	/* first: max RSS still low */
		suite_basic(&T, &C, who);
		if (child)
			suite_sparse(&T, &C, who);
		suite_swap(&T, &C, who);
		if (child) {
			uint64_t a;
			int err;

			struct pt_vma *v = NULL, *hit = NULL;
			size_t n = 0;

			bench(&T, &C);
			a = run(&T, OP_MAP, K_ANON, 0, NP * FX_PAGE, 0).addr;
			run(&T, OP_FILL, 0, a, NP * FX_PAGE, 1);
			hash_range(&C, a, NP * FX_PAGE, true);
			if (pt_vmas_read(C.t, &v, &n) == 0)
				for (size_t i = 0; i < n; i++)
					if (v[i].start <= a && a < v[i].end)
						hit = &v[i];
			tgt_kill(&T);
			err = hit ? pt__hash_area(C.hs, C.t, hit, a, a + NP * FX_PAGE, false, &C.out,
						    &C.pages_hashed)
				  : -ENOENT;
			tap_ok(err == -ESRCH, "child: target gone mid-way: %s", strerror(-err));
			pt_vmas_free(v);
		}
		ctx_close(&C);
		tgt_kill(&T);
	}
	return tap_done();
}
