/* SPDX-License-Identifier: MIT */
/*
 * /proc/kpageflags and /proc/kpagecount: physical page flags and map
 * counts (root only).
 *
 * Lookups are expressed as PFN ranges.  They are sorted by PFN, split
 * into pieces of at most KPF_BUF_PAGES, and neighbouring pieces whose
 * gap is at most KPF_GAP PFNs are coalesced into one pread of each
 * file through a bounded scratch buffer, so the cost is a few syscalls
 * per contiguous physical area, never one per page.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pt_internal.h"

#define KPF_BUF_PAGES 4096u	/* 32 KiB of u64 per file per pread */
#define KPF_GAP 64u		/* read through holes up to this many PFNs */
#define KPF_MAX_PFN PT_PM_PFN_MASK

/* Huge page geometry (x86-64 PMD). */
#define HPAGE_PAGES 512u
#define HPAGE_SIZE (HPAGE_PAGES * PT_PAGE_SIZE)

#define KPF(b) (1ULL << PT_KPF_##b)

/* @n consecutive PFNs from @pfn, results go to index @out onwards. */
struct kpf_range {
	uint64_t pfn;
	uint64_t n;
	size_t out;
};

struct kpf_ctx {
	int flags_fd;	/* /proc/kpageflags */
	int count_fd;	/* /proc/kpagecount, -1 when counts are not wanted */
	uint64_t *fbuf, *cbuf;
};

static void kpf_ctx_close(struct kpf_ctx *c)
{
	if (c->flags_fd >= 0)
		close(c->flags_fd);
	if (c->count_fd >= 0)
		close(c->count_fd);
	free(c->fbuf);
	free(c->cbuf);
	c->flags_fd = c->count_fd = -1;
	c->fbuf = c->cbuf = NULL;
}

/* Open the files (counts only if @counts); 0 or -errno. */
static int kpf_ctx_open(struct kpf_ctx *c, bool counts)
{
	int err;

	c->flags_fd = c->count_fd = -1;
	c->fbuf = c->cbuf = NULL;
	c->flags_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (c->flags_fd < 0)
		goto fail;
	if (counts) {
		c->count_fd = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
		if (c->count_fd < 0)
			goto fail;
		c->cbuf = malloc(KPF_BUF_PAGES * sizeof(uint64_t));
		if (!c->cbuf) {
			errno = ENOMEM;
			goto fail;
		}
	}
	c->fbuf = malloc(KPF_BUF_PAGES * sizeof(uint64_t));
	if (!c->fbuf) {
		errno = ENOMEM;
		goto fail;
	}
	return 0;
fail:
	err = -errno;
	kpf_ctx_close(c);
	return err;
}

/*
 * Read @n entries from PFN @pfn into @buf.  Entries beyond the end of
 * the file (PFNs past max_pfn) read as @fill.
 */
static int kpf_pread(int fd, uint64_t pfn, uint64_t *buf, size_t n, uint64_t fill)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got * sizeof(*buf),
				  (n - got) * sizeof(*buf),
				  (off_t)((pfn + got) * sizeof(*buf)));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		if (r % sizeof(*buf))
			return -EIO;
		got += (size_t)r / sizeof(*buf);
	}
	for (; got < n; got++)
		buf[got] = fill;
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct kpf_range *x = a, *y = b;

	if (x->pfn != y->pfn)
		return x->pfn < y->pfn ? -1 : 1;
	return 0;
}

/*
 * Look up @nr ranges (reordered in place; each at most KPF_BUF_PAGES
 * long): flags[r.out + i] and (if c->count_fd >= 0) counts[r.out + i]
 * get the entries of PFN r.pfn + i.
 */
static int kpf_lookup(struct kpf_ctx *c, struct kpf_range *r, size_t nr,
		      uint64_t *flags, uint64_t *counts)
{
	size_t i = 0;
	int err;

	qsort(r, nr, sizeof(*r), range_cmp);
	while (i < nr) {
		uint64_t lo = r[i].pfn, hi = r[i].pfn + r[i].n;
		size_t j = i + 1;

		for (; j < nr; j++) {
			uint64_t nhi = r[j].pfn + r[j].n > hi ? r[j].pfn + r[j].n : hi;

			if (r[j].pfn > hi + KPF_GAP || nhi - lo > KPF_BUF_PAGES)
				break;
			hi = nhi;
		}
		err = kpf_pread(c->flags_fd, lo, c->fbuf, hi - lo, KPF(NOPAGE));
		if (!err && c->count_fd >= 0)
			err = kpf_pread(c->count_fd, lo, c->cbuf, hi - lo, 0);
		if (err)
			return err;
		for (; i < j; i++) {
			memcpy(flags + r[i].out, c->fbuf + (r[i].pfn - lo), r[i].n * sizeof(uint64_t));
			if (c->count_fd >= 0)
				memcpy(counts + r[i].out, c->cbuf + (r[i].pfn - lo),
				       r[i].n * sizeof(uint64_t));
		}
	}
	return 0;
}

int pt_kpageflags_read(struct pt_kpage *pages, size_t n)
{
	struct kpf_ctx c = { .flags_fd = -1, .count_fd = -1 };
	struct kpf_range *r = NULL;
	uint64_t *flags = NULL, *counts = NULL;
	int err;

	if (!n)
		return 0;
	if (!pages || n > SIZE_MAX / sizeof(*r))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (pages[i].pfn > KPF_MAX_PFN)
			return -EINVAL;
	err = kpf_ctx_open(&c, true);
	if (err)
		return err;
	r = malloc(n * sizeof(*r));
	flags = malloc(n * sizeof(*flags));
	counts = malloc(n * sizeof(*counts));
	if (!r || !flags || !counts) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		r[i] = (struct kpf_range){ .pfn = pages[i].pfn, .n = 1, .out = i };
	err = kpf_lookup(&c, r, n, flags, counts);
	if (err)
		goto out;
	for (size_t i = 0; i < n; i++) {
		pages[i].flags = flags[i];
		pages[i].mapcount = counts[i];
	}
out:
	free(r);
	free(flags);
	free(counts);
	kpf_ctx_close(&c);
	return err;
}

/* ------------------------------------------------------------------ */
/* Scan post-processing                                                 */

static bool run_has_pfn(const struct pt_region *r)
{
	return r->state == PT_STATE_PRESENT && (r->attrs & PT_ATTR_LOC);
}

/*
 * Copy @in to @out unchanged (from run index @from); see the contract
 * of pt__kflags_apply for *stopped.
 */
static int copy_runs(const struct pt_runbuf *in, size_t from, struct pt_runbuf *out,
		     uint64_t *stopped)
{
	for (size_t i = from; i < in->n; i++) {
		if (pt__run_append(out, in->r[i].start, in->r[i].end, &in->r[i]) == -ENOSPC) {
			*stopped = in->r[i].start;
			return 0;
		}
	}
	*stopped = in->n ? in->r[in->n - 1].end : 0;
	return 0;
}

/*
 * Huge candidates: 2 MiB-aligned virtual blocks entirely covered by
 * address-contiguous PRESENT runs whose PFNs continue across the
 * block and start at a 512-aligned PFN.  Writes their start addresses
 * (ascending) to @cand and returns the count.
 */
static size_t find_huge_candidates(const struct pt_runbuf *in, uint64_t *cand, uint64_t *cand_pfn)
{
	size_t nc = 0, i = 0;

	while (i < in->n) {
		uint64_t cs, ce, cpfn, b;

		if (!run_has_pfn(&in->r[i])) {
			i++;
			continue;
		}
		/* Chain of runs with continuing PFNs. */
		cs = in->r[i].start;
		cpfn = in->r[i].loc;
		ce = in->r[i].end;
		for (i++; i < in->n && run_has_pfn(&in->r[i]) && in->r[i].start == ce &&
			  in->r[i].loc == cpfn + (ce - cs) / PT_PAGE_SIZE; i++)
			ce = in->r[i].end;
		for (b = (cs + HPAGE_SIZE - 1) & ~(HPAGE_SIZE - 1); b + HPAGE_SIZE <= ce;
		     b += HPAGE_SIZE) {
			uint64_t pfn = cpfn + (b - cs) / PT_PAGE_SIZE;

			if (pfn % HPAGE_PAGES)
				break;	/* PFN alignment is the same for every block */
			cand[nc] = b;
			cand_pfn[nc++] = pfn;
		}
	}
	return nc;
}

/*
 * A PMD-sized folio: the first page is a compound head of a THP (or
 * hugetlb page), and the page half-way is a tail.  Folios are
 * naturally aligned, so a tail at offset 256 rules out every smaller
 * folio (mTHP) starting at offset 0.
 */
static bool is_pmd_folio(uint64_t head, uint64_t mid)
{
	return (head & KPF(COMPOUND_HEAD)) && (head & (KPF(THP) | KPF(HUGE))) &&
	       (mid & KPF(COMPOUND_TAIL)) && !(mid & KPF(COMPOUND_HEAD));
}

int pt__kflags_apply(struct pt_target *t, const struct pt_vma *v,
		     const struct pt_runbuf *in, bool want_all,
		     struct pt_runbuf *out, uint64_t *stopped)
{
	struct kpf_ctx c = { .flags_fd = -1, .count_fd = -1 };
	struct kpf_range *rg = NULL;
	uint64_t *flags = NULL, *counts = NULL, *cand = NULL, *cand_pfn = NULL;
	bool *huge = NULL;
	size_t npages = 0, nrg = 0, nc = 0, nh, ci = 0, pi = 0;
	int err = 0;

	(void)v;
	for (size_t i = 0; i < in->n; i++) {
		if (run_has_pfn(&in->r[i])) {
			uint64_t len = (in->r[i].end - in->r[i].start) / PT_PAGE_SIZE;

			npages += len;
			nrg += (len + KPF_BUF_PAGES - 1) / KPF_BUF_PAGES;
		}
	}
	if (!npages)
		return copy_runs(in, 0, out, stopped);

	/* Candidates: at most one per 2 MiB of PFN-carrying pages. */
	cand = malloc((npages / HPAGE_PAGES + 1) * sizeof(*cand));
	cand_pfn = malloc((npages / HPAGE_PAGES + 1) * sizeof(*cand_pfn));
	if (!cand || !cand_pfn) {
		err = -ENOMEM;
		goto out;
	}
	nc = find_huge_candidates(in, cand, cand_pfn);
	if (!want_all && !nc) {
		err = copy_runs(in, 0, out, stopped);
		goto out;
	}
	huge = calloc(nc + 1, sizeof(*huge));
	if (!huge) {
		err = -ENOMEM;
		goto out;
	}
	err = kpf_ctx_open(&c, want_all);
	if (err == -EACCES || err == -EPERM || err == -ENOENT) {
		t->limits |= PT_LIMIT_NO_KFLAGS;
		err = copy_runs(in, 0, out, stopped);
		goto out;
	}
	if (err)
		goto out;

	if (want_all) {
		/* Every page, in address order: flags[k] is page k of the PFN runs. */
		rg = malloc(nrg * sizeof(*rg));
		flags = malloc(npages * sizeof(*flags));
		counts = malloc(npages * sizeof(*counts));
		if (!rg || !flags || !counts) {
			err = -ENOMEM;
			goto out;
		}
		nrg = 0;
		for (size_t i = 0, k = 0; i < in->n; i++) {
			uint64_t len, off;

			if (!run_has_pfn(&in->r[i]))
				continue;
			len = (in->r[i].end - in->r[i].start) / PT_PAGE_SIZE;
			for (off = 0; off < len; off += KPF_BUF_PAGES) {
				uint64_t m = len - off < KPF_BUF_PAGES ? len - off : KPF_BUF_PAGES;

				rg[nrg++] = (struct kpf_range){ in->r[i].loc + off, m, k + off };
			}
			k += len;
		}
		err = kpf_lookup(&c, rg, nrg, flags, counts);
		if (err)
			goto out;
		/* Huge verdicts from the flags already read (address order). */
		for (size_t i = 0, k = 0, j = 0; i < in->n && j < nc; i++) {
			uint64_t a;

			if (!run_has_pfn(&in->r[i]))
				continue;
			for (a = in->r[i].start; a < in->r[i].end; a += PT_PAGE_SIZE, k++) {
				if (j < nc && a == cand[j]) {
					huge[j] = is_pmd_folio(flags[k], flags[k + HPAGE_PAGES / 2]);
					j++;
				}
			}
		}
	} else if (nc) {
		/* Only the head and the middle page of each candidate. */
		rg = malloc(2 * nc * sizeof(*rg));
		flags = malloc(2 * nc * sizeof(*flags));
		if (!rg || !flags) {
			err = -ENOMEM;
			goto out;
		}
		for (size_t j = 0; j < nc; j++) {
			rg[2 * j] = (struct kpf_range){ cand_pfn[j], 1, 2 * j };
			rg[2 * j + 1] = (struct kpf_range){ cand_pfn[j] + HPAGE_PAGES / 2, 1, 2 * j + 1 };
		}
		err = kpf_lookup(&c, rg, 2 * nc, flags, NULL);
		if (err)
			goto out;
		for (size_t j = 0; j < nc; j++)
			huge[j] = is_pmd_folio(flags[2 * j], flags[2 * j + 1]);
	}

	/* Keep only the blocks found huge. */
	nh = 0;
	for (size_t j = 0; j < nc; j++)
		if (huge[j])
			cand[nh++] = cand[j];
	nc = nh;

	/*
	 * Re-split PFN runs into runs of identical (huge, kflags, mapcount)
	 * and append; other runs are copied.
	 */
	for (size_t i = 0; i < in->n; i++) {
		const struct pt_region *src = &in->r[i];
		uint64_t a = src->start;

		if (!run_has_pfn(src)) {
			if (pt__run_append(out, src->start, src->end, src) == -ENOSPC) {
				*stopped = src->start;
				goto out;
			}
			continue;
		}
		while (a < src->end) {
			struct pt_region p = *src;
			uint64_t seg_end, k0 = pi;
			bool h;

			/* Skip huge blocks that end at or before @a. */
			while (ci < nc && cand[ci] + HPAGE_SIZE <= a)
				ci++;
			h = ci < nc && cand[ci] <= a;
			/* Segment ends at the run end or the next huge boundary. */
			seg_end = src->end;
			if (ci < nc) {
				uint64_t edge = h ? cand[ci] + HPAGE_SIZE : cand[ci];

				if (edge < seg_end)
					seg_end = edge;
			}
			if (want_all) {
				uint64_t e = a + PT_PAGE_SIZE;

				pi++;
				while (e < seg_end && flags[pi] == flags[k0] && counts[pi] == counts[k0]) {
					e += PT_PAGE_SIZE;
					pi++;
				}
				seg_end = e;
				p.kflags = flags[k0];
				p.mapcount = counts[k0];
				p.attrs |= PT_ATTR_KFLAGS;
				/* the attribute follows the probe (features.c); kflags stay raw */
				if ((flags[k0] & KPF(ZERO_PAGE)) && pt__zero_page(NULL) != PT_NO)
					p.attrs |= PT_ATTR_ZERO;
			} else {
				p.kflags = 0;
				p.mapcount = 0;
			}
			if (h)
				p.attrs |= PT_ATTR_HUGE;
			p.loc = src->loc + (a - src->start) / PT_PAGE_SIZE;
			if (pt__run_append(out, a, seg_end, &p) == -ENOSPC) {
				*stopped = a;
				goto out;
			}
			a = seg_end;
		}
	}
	*stopped = in->r[in->n - 1].end;
out:
	free(rg);
	free(flags);
	free(counts);
	free(cand);
	free(cand_pfn);
	free(huge);
	kpf_ctx_close(&c);
	return err;
}
