/* SPDX-License-Identifier: MIT */
/*
 * The sampler (pagetrack.h, "Sampling"; doc/tracking.md "Sampling"): a
 * stratified random sample of data pages, one stratum per memory area,
 * watched by content hash; estimates of pages written with a 95%
 * interval.
 *
 * Per interval: the sample drawn at its start is read again at its end;
 * in stratum h (N_h data pages, n_h sampled, x_h found changed) the
 * share written is estimated by p_h = x_h / n_h, bounded by Wilson's
 * score interval with continuity correction (share_interval()), and the
 * area's estimate is N_h p_h within N_h times those bounds (a census is
 * exact).  The total is the sum of the estimates, each side of its
 * interval the root of the sum of the squared sides of the strata's.
 * Intervals never leave what the sample proves: at least the written
 * pages seen, at most N_h minus the unwritten ones seen.
 * tests/test_sampler.c checks the coverage.
 *
 * Memory: the sample (addresses, hashes) and per-area counts, never
 * proportional to the target's pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "pt_internal.h"

#define AUTO_PER_GIB 512
#define MIN_PER_AREA 32
#define PAGES_PER_GIB (1ULL << 18)
#define SAMPLE_MAX (1u << 20)	/* pages in one sample, all areas (4 GiB read per round) */
#define BATCH 256		/* pages per process_vm_readv */
#define REGIONS 512		/* pt_region entries per pt_scan call */
#define Z95 1.959963984540054

struct stratum {
	uint64_t start, end;	/* the area */
	uint64_t pages;		/* N: data pages when the sample was drawn */
	uint64_t first, n;	/* its sample: s->addr[first .. first + n) */
};

struct pt_sampler {
	struct pt_target *t;
	pid_t pid;
	int mem_fd;		/* /proc/PID/mem, -1 not opened yet, -2 unavailable */
	uint64_t start, end;
	uint32_t per_gib, min_area;
	uint64_t rng;

	struct stratum *st;	/* strata of the current sample, in address order */
	size_t nst, capst;
	uint64_t *addr;		/* sampled pages, per stratum in address order */
	uint64_t *hash;		/* their hashes when drawn */
	uint8_t *ok;		/* read when drawn */
	size_t nsample, capsample;

	struct pt_region *regs;	/* scratch: data runs of one area */
	size_t nregs, capregs;
	uint64_t *idx;		/* scratch: drawn indices */
	size_t capidx;
	unsigned char *buf;	/* BATCH pages */
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift with rejection). */
static uint64_t below(uint64_t *s, uint64_t n)
{
	unsigned __int128 m = (unsigned __int128)splitmix(s) * n;
	uint64_t l = (uint64_t)m;

	if (l < n) {
		uint64_t t = -n % n;

		while (l < t) {
			m = (unsigned __int128)splitmix(s) * n;
			l = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 64;
	while (ncap < need)
		ncap *= 2;
	np = realloc(*p, ncap * elem);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

/* ---- reading pages ---- */

static bool read_mem(struct pt_sampler *s, uint64_t a, unsigned char *out)
{
	if (s->mem_fd == -1) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/mem", (int)s->pid);
		s->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (s->mem_fd < 0)
			s->mem_fd = -2;
	}
	return s->mem_fd >= 0 && pread(s->mem_fd, out, PT_PAGE_SIZE, (off_t)a) == (ssize_t)PT_PAGE_SIZE;
}

/*
 * Hash the pages @addr[from, to) into @h (ok[i] false when unreadable).
 * One process_vm_readv per BATCH pages; a page it cannot read (PROT_NONE
 * since, unmapped) is tried with /proc/PID/mem, then given up.
 */
static void hash_pages(struct pt_sampler *s, const uint64_t *addr, size_t from, size_t to,
		       uint64_t *h, uint8_t *ok)
{
	struct iovec l[BATCH], r[BATCH];

	for (size_t i = from; i < to;) {
		size_t k = to - i < BATCH ? to - i : BATCH, done = 0;
		ssize_t got;

		for (size_t j = 0; j < k; j++) {
			l[j] = (struct iovec){ s->buf + j * PT_PAGE_SIZE, PT_PAGE_SIZE };
			r[j] = (struct iovec){ (void *)(uintptr_t)addr[i + j], PT_PAGE_SIZE };
		}
		while (done < k) {
			got = process_vm_readv(s->pid, l + done, k - done, r + done, k - done, 0);
			size_t whole = got > 0 ? (size_t)got / PT_PAGE_SIZE : 0;

			for (size_t j = done; j < done + whole; j++) {
				h[i + j] = XXH3_64bits(s->buf + j * PT_PAGE_SIZE, PT_PAGE_SIZE);
				ok[i + j] = 1;
			}
			done += whole;
			if (done < k) {	/* the page that stopped it */
				ok[i + done] = read_mem(s, addr[i + done], s->buf + done * PT_PAGE_SIZE);
				if (ok[i + done])
					h[i + done] = XXH3_64bits(s->buf + done * PT_PAGE_SIZE,
								  PT_PAGE_SIZE);
				done++;
			}
		}
		i += k;
	}
}

/* ---- drawing a sample ---- */

static bool tracked_area(const struct pt_vma *v)
{
	return v->kind != PT_VMA_SPECIAL && v->start < PT_USER_ADDR_END;
}

/* The data runs (present or swapped) of [start, end) into s->regs; their page count. */
static int data_runs(struct pt_sampler *s, uint64_t start, uint64_t end, uint64_t *pages)
{
	PT_OPTS(pt_scan_opts, so, .flags = PT_SCAN_NO_SHARED | PT_SCAN_NO_EXCLUSIVE);
	struct pt_region r[REGIONS];
	uint64_t cur = start;
	int n = 0;

	s->nregs = 0;
	*pages = 0;
	while (cur < end && (n = pt_scan(s->t, &cur, end, r, REGIONS, &so)) > 0) {
		for (int i = 0; i < n; i++) {
			if (r[i].state != PT_STATE_PRESENT && r[i].state != PT_STATE_SWAPPED)
				continue;
			if (grow((void **)&s->regs, &s->capregs, s->nregs + 1, sizeof(*s->regs)))
				return -ENOMEM;
			s->regs[s->nregs++] = r[i];
			*pages += (r[i].end - r[i].start) >> PT_PAGE_SHIFT;
		}
	}
	return n < 0 ? n : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* @n distinct indices of [0, N), sorted, into s->idx (n <= N / 2, or n == N). */
static int draw(struct pt_sampler *s, uint64_t N, uint64_t n)
{
	size_t have = 0;

	if (grow((void **)&s->idx, &s->capidx, (size_t)n, sizeof(*s->idx)))
		return -ENOMEM;
	if (n == N) {
		for (uint64_t i = 0; i < n; i++)
			s->idx[i] = i;
		return 0;
	}
	while (have < n) {	/* draw the missing ones, drop repeats (few: n <= N / 2) */
		size_t w = 1;

		while (have < n)
			s->idx[have++] = below(&s->rng, N);
		qsort(s->idx, have, sizeof(*s->idx), cmp_u64);
		for (size_t i = 1; i < have; i++)
			if (s->idx[i] != s->idx[w - 1])
				s->idx[w++] = s->idx[i];
		have = w;
	}
	return 0;
}

/* How many of an area's @N data pages to sample. */
static uint64_t sample_size(const struct pt_sampler *s, uint64_t N)
{
	uint64_t n = (N * s->per_gib + PAGES_PER_GIB - 1) / PAGES_PER_GIB;

	if (n < s->min_area)
		n = s->min_area;
	if (n * 2 > N)	/* as good as all: take all (exact) */
		n = N;
	return n;
}

/* Draw a new sample over the current layout (not read yet: s->ok all 0). */
static int plan_sample(struct pt_sampler *s)
{
	struct pt_vma *v = NULL;
	size_t nv = 0;
	int err = pt_vmas_read(s->t, &v, &nv);

	if (err)
		return err;
	s->nst = s->nsample = 0;
	for (size_t i = 0; i < nv && !err; i++) {
		uint64_t a = v[i].start > s->start ? v[i].start : s->start;
		uint64_t e = v[i].end < s->end ? v[i].end : s->end;
		uint64_t N, n, k = 0, base = 0;
		struct stratum *st;

		if (a >= e || !tracked_area(&v[i]))
			continue;
		if ((err = data_runs(s, a, e, &N)) || !N)
			continue;
		n = sample_size(s, N);
		if (s->nsample + n > SAMPLE_MAX)
			break;	/* (a sample of 4 GiB: the rest is left out) */
		if ((err = draw(s, N, n)) ||
		    (err = grow((void **)&s->st, &s->capst, s->nst + 1, sizeof(*s->st))) ||
		    (err = grow((void **)&s->addr, &s->capsample, s->nsample + n, sizeof(*s->addr))))
			break;
		st = &s->st[s->nst++];
		*st = (struct stratum){ .start = a, .end = e, .pages = N, .first = s->nsample, .n = n };
		/* indices to addresses: both in order, one walk over the runs */
		for (size_t r = 0; r < s->nregs && k < n; r++) {
			uint64_t len = (s->regs[r].end - s->regs[r].start) >> PT_PAGE_SHIFT;

			while (k < n && s->idx[k] < base + len) {
				s->addr[s->nsample++] = s->regs[r].start +
							((s->idx[k] - base) << PT_PAGE_SHIFT);
				k++;
			}
			base += len;
		}
	}
	pt_vmas_free(v);
	if (err) {
		s->nst = s->nsample = 0;
		return err;
	}
	/* hashes and ok live beside addr, with the same capacity */
	{
		uint64_t *h = realloc(s->hash, (s->capsample ? s->capsample : 1) * sizeof(*h));
		uint8_t *ok;

		if (!h) {
			s->nst = s->nsample = 0;
			return -ENOMEM;
		}
		s->hash = h;
		ok = realloc(s->ok, s->capsample ? s->capsample : 1);
		if (!ok) {
			s->nst = s->nsample = 0;
			return -ENOMEM;
		}
		s->ok = ok;
	}
	memset(s->ok, 0, s->nsample);
	return 0;
}

/* Draw a new sample over the current layout and hash it. */
static int draw_sample(struct pt_sampler *s)
{
	int err = plan_sample(s);

	if (!err)
		hash_pages(s, s->addr, 0, s->nsample, s->hash, s->ok);
	return err;
}

/* ---- estimating ---- */

/*
 * The share written in a stratum, x of n sampled out of N: [*lo, *hi]
 * around p = x / n.  Wilson's score interval with continuity correction
 * (Newcombe 1998, method 4: its coverage stays at or above 95% for small
 * samples and shares near 0 or 1, where the plain one falls short), each
 * side narrowed toward p by the finite-population factor.
 */
static void share_interval(uint64_t N, uint64_t n, uint64_t x, double *lo, double *hi)
{
	double dn = (double)n, p = (double)x / dn, z2 = Z95 * Z95, d = 2 * (dn + z2);
	double fpc = N > 1 ? sqrt((double)(N - n) / (double)(N - 1)) : 0;
	double l = 0, u = 1;

	if (x > 0)
		l = (2 * dn * p + z2 - 1 - Z95 * sqrt(z2 - 2 - 1 / dn + 4 * p * (dn * (1 - p) + 1))) / d;
	if (x < n)
		u = (2 * dn * p + z2 + 1 + Z95 * sqrt(z2 + 2 - 1 / dn + 4 * p * (dn * (1 - p) - 1))) / d;
	if (l < 0)
		l = 0;
	if (u > 1)
		u = 1;
	*lo = p - (p - l) * fpc;
	*hi = p + (u - p) * fpc;
}

static uint64_t round_in(double v, uint64_t lo, uint64_t hi)
{
	uint64_t r = v <= 0 ? 0 : (uint64_t)llround(v);

	return r < lo ? lo : r > hi ? hi : r;
}

static void fill(struct pt_sample_estimate *e, uint64_t N, uint64_t n, uint64_t x, double est,
		 double lo, double hi)
{
	uint64_t least = x, most = N - (n - x);	/* what the sample itself proves */

	e->pages = N;
	e->sampled = n;
	e->sampled_written = x;
	e->lo = round_in(floor(lo), least, most);
	e->hi = round_in(ceil(hi), least, most);
	e->est = round_in(est, e->lo, e->hi);
}

struct pt_sampler *pt_sampler_create(pid_t pid, const struct pt_sampler_opts *opts)
{
	struct pt_sampler *s;
	uint64_t start, end;
	int err;

	if (pid < 0 || !PT_OPTS_VALID(opts, pt_sampler_opts)) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	s->mem_fd = -1;
	s->per_gib = PT_OPTS_GET(opts, pages_per_gib, 0);
	if (!s->per_gib)
		s->per_gib = AUTO_PER_GIB;
	s->min_area = PT_OPTS_GET(opts, min_per_area, 0);
	if (!s->min_area)
		s->min_area = MIN_PER_AREA;
	s->rng = PT_OPTS_GET(opts, seed, 0);
	if (!s->rng)
		s->rng = pt__now_ns() ^ ((uint64_t)getpid() << 32);
	start = PT_OPTS_GET(opts, start, 0);
	end = PT_OPTS_GET(opts, end, 0);
	s->start = 0;
	s->end = PT_USER_ADDR_END;
	if (start || end) {
		s->start = start & ~(PT_PAGE_SIZE - 1);
		s->end = (end + PT_PAGE_SIZE - 1) & ~(PT_PAGE_SIZE - 1);
	}
	s->buf = malloc(BATCH * PT_PAGE_SIZE);
	if (!s->buf) {
		err = -ENOMEM;
		goto fail;
	}
	s->t = pt_target_create(pid, NULL);
	if (!s->t) {
		err = -errno;
		goto fail;
	}
	s->pid = pt_target_pid(s->t);
	err = draw_sample(s);
	if (err)
		goto fail;
	return s;
fail:
	pt_sampler_free(s);
	errno = -err;
	return NULL;
}

int pt_sampler_collect(struct pt_sampler *s, struct pt_sample_estimate *total,
		       struct pt_sample_estimate *areas, size_t cap)
{
	uint64_t *h = NULL;
	uint8_t *ok = NULL;
	double est = 0, var_lo = 0, var_hi = 0;
	uint64_t N = 0, n = 0, x = 0;
	/* the sample of the interval that ends now; s-> gets the next one */
	struct stratum *ost = s ? s->st : NULL;
	uint64_t *oaddr = s ? s->addr : NULL, *ohash = s ? s->hash : NULL;
	uint8_t *ook = s ? s->ok : NULL;
	size_t nst = s ? s->nst : 0, onsample = s ? s->nsample : 0;
	int err, perr;

	if (!s || !total || (!areas && cap))
		return -EINVAL;
	if (!pt__target_mm_alive(s->t))
		return -ESRCH;
	h = malloc((onsample ? onsample : 1) * sizeof(*h));
	ok = malloc(onsample ? onsample : 1);
	if (!h || !ok) {
		free(h);
		free(ok);
		return -ENOMEM;
	}
	/*
	 * Plan the next sample (the layout, a pagemap walk of every area:
	 * the slow part) before this one is read again, then read both
	 * back to back: the next interval starts right where this one ends,
	 * and the writes made meanwhile are not lost between them.
	 */
	s->st = NULL;
	s->addr = s->hash = NULL;
	s->ok = NULL;
	s->nst = s->capst = s->nsample = s->capsample = 0;
	perr = plan_sample(s);
	hash_pages(s, oaddr, 0, onsample, h, ok);
	if (!perr)
		hash_pages(s, s->addr, 0, s->nsample, s->hash, s->ok);
	/*
	 * The total: the sum of the strata's estimates, each side of its
	 * interval as wide as the root of the sum of the squared sides of
	 * the strata's (independent draws: their errors add in quadrature).
	 */
	for (size_t i = 0; i < nst; i++) {
		const struct stratum *st = &ost[i];
		double Nd = (double)st->pages, p, lo, hi;
		uint64_t xi = 0;

		for (uint64_t k = st->first; k < st->first + st->n; k++)
			xi += ook[k] && ok[k] && h[k] != ohash[k];
		share_interval(st->pages, st->n, xi, &lo, &hi);
		p = (double)xi / (double)st->n;
		if (i < cap) {
			areas[i] = (struct pt_sample_estimate){ .start = st->start, .end = st->end };
			fill(&areas[i], st->pages, st->n, xi, Nd * p, Nd * lo, Nd * hi);
		}
		est += Nd * p;
		var_lo += (Nd * (p - lo)) * (Nd * (p - lo));
		var_hi += (Nd * (hi - p)) * (Nd * (hi - p));
		N += st->pages;
		n += st->n;
		x += xi;
	}
	*total = (struct pt_sample_estimate){ 0 };
	fill(total, N, n, x, est, est - sqrt(var_lo), est + sqrt(var_hi));
	if (!perr)
		err = (int)(nst > INT32_MAX ? INT32_MAX : nst);
	else	/* nothing to compare with next time: an empty sample, drawn again then */
		s->nst = s->nsample = 0, err = pt__target_errno(s->t, perr);
	free(ost);
	free(oaddr);
	free(ohash);
	free(ook);
	free(h);
	free(ok);
	return err;
}

void pt_sampler_free(struct pt_sampler *s)
{
	if (!s)
		return;
	if (s->mem_fd >= 0)
		close(s->mem_fd);
	pt_target_free(s->t);
	free(s->st);
	free(s->addr);
	free(s->hash);
	free(s->ok);
	free(s->regs);
	free(s->idx);
	free(s->buf);
	free(s);
}
