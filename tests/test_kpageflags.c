/* SPDX-License-Identifier: MIT */
/*
 * pt_kpageflags_read() and pt__kflags_apply() against per-PFN preads of
 * /proc/kpageflags and /proc/kpagecount (the oracle).  Needs root.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "pt_internal.h"
#include "tap.h"

#define KPF(b) (1ULL << PT_KPF_##b)
#define HPAGE (2UL << 20)

/*
 * Flags that cannot change under us for mlocked pages we hold mapped
 * (LRU/ACTIVE/REFERENCED/DIRTY... may flip at any time).
 */
#define STABLE_MASK (KPF(ANON) | KPF(MMAP) | KPF(SWAPBACKED) | KPF(COMPOUND_HEAD) | \
		     KPF(COMPOUND_TAIL) | KPF(THP) | KPF(ZERO_PAGE) | KPF(NOPAGE) | \
		     KPF(HUGE) | KPF(SLAB) | KPF(BUDDY))

static int kpf_fd = -1, kpc_fd = -1, pm_fd = -1;

static void oracle(uint64_t pfn, uint64_t *flags, uint64_t *count)
{
	*flags = *count = 0;
	if (pread(kpf_fd, flags, 8, (off_t)(pfn * 8)) != 8)
		*flags = KPF(NOPAGE);
	if (pread(kpc_fd, count, 8, (off_t)(pfn * 8)) != 8)
		*count = 0;
}

/* Pagemap entries of @n pages from @addr (one pread). */
static void pagemap(const void *addr, size_t n, uint64_t *e)
{
	if (pread(pm_fd, e, n * 8, (off_t)((uintptr_t)addr / FX_PAGE * 8)) != (ssize_t)(n * 8)) {
		printf("Bail out! pagemap read: %s\n", strerror(errno));
		exit(1);
	}
}

static void shuffle(struct pt_kpage *k, size_t n)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1);
		struct pt_kpage t = k[i];

		k[i] = k[j];
		k[j] = t;
	}
}

static void test_batch(void)
{
	const size_t n = 8192;	/* 32 MiB: several scratch-buffer batches */
	char *p = fx_map(n * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t *e = calloc(n, 8);
	struct pt_kpage *k = calloc(n + 16, sizeof(*k));
	size_t nk = 0, bad_stable = 0, bad_any = 0, not_anon = 0, no_map = 0;
	int r;

	if (!e || !k) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
	madvise(p, n * FX_PAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < n; i++)
		p[i * FX_PAGE] = (char)i;
	if (mlock(p, n * FX_PAGE))
		tap_diag("mlock: %s (flags may drift)", strerror(errno));
	pagemap(p, n, e);
	for (size_t i = 0; i < n; i++)
		if ((e[i] & PT_PM_PRESENT) && (e[i] & PT_PM_PFN_MASK))
			k[nk++].pfn = e[i] & PT_PM_PFN_MASK;
	tap_ok(nk == n, "all %zu touched pages present with PFNs (%zu)", n, nk);
	/* duplicates, and a PFN far beyond any memory */
	for (size_t i = 0, m = nk; i < 8 && m; i++, nk++)
		k[nk].pfn = k[i * 7 % m].pfn;
	k[nk++].pfn = 1ULL << 40;
	shuffle(k, nk);

	r = pt_kpageflags_read(k, nk);
	tap_ok(r == 0, "pt_kpageflags_read on %zu shuffled PFNs returns 0 (%d)", nk, r);
	for (size_t i = 0; i < nk; i++) {
		uint64_t f, c;

		oracle(k[i].pfn, &f, &c);
		if ((f & STABLE_MASK) != (k[i].flags & STABLE_MASK) || c != k[i].mapcount)
			bad_stable++;
		if (f != k[i].flags)
			bad_any++;
		if (k[i].pfn == 1ULL << 40)
			continue;
		if (!(k[i].flags & KPF(ANON)))
			not_anon++;
		if (k[i].mapcount < 1)
			no_map++;
	}
	if (bad_any)
		tap_diag("%zu entries differ in volatile flags (LRU/active/...) from the oracle", bad_any);
	tap_ok(bad_stable == 0, "flags and map counts equal per-PFN preads (%zu differ)", bad_stable);
	tap_ok(not_anon == 0, "every anonymous page has KPF_ANON (%zu lack it)", not_anon);
	tap_ok(no_map == 0, "every mapped page has mapcount >= 1 (%zu do not)", no_map);
	for (size_t i = 0; i < nk; i++)
		if (k[i].pfn == 1ULL << 40)
			tap_ok(k[i].flags == KPF(NOPAGE) && k[i].mapcount == 0,
			       "a PFN beyond memory reads as KPF_NOPAGE, count 0");
	munlock(p, n * FX_PAGE);
	munmap(p, n * FX_PAGE);
	free(e);
	free(k);
}

static void test_args(void)
{
	struct pt_kpage k = { .pfn = PT_PM_PFN_MASK + 1 };

	tap_ok(pt_kpageflags_read(NULL, 0) == 0, "n = 0 is a no-op");
	tap_ok(pt_kpageflags_read(NULL, 1) == -EINVAL, "NULL pages is -EINVAL");
	tap_ok(pt_kpageflags_read(&k, 1) == -EINVAL, "a PFN above 55 bits is -EINVAL");
}

/*
 * The zero page, as the probe (pt__zero_page()) has it.  Yes: two
 * read-faulted pages share its PFN, which has KPF_ZERO_PAGE and is
 * pt__zero_pfn().  No (a kernel that never maps it, or forced by
 * PT_FORCE_NO_ZERO_PAGE=1): the zero-page checks are skipped with the
 * probe's reason; pt__zero_pfn() is 0 and the read-faulted pages come out
 * of pt__kflags_apply() as plain present pages without PT_ATTR_ZERO, with
 * their raw kflags; unless forced, the kernel (oracle) agrees: two
 * distinct anonymous pages without KPF_ZERO_PAGE.
 */
#define N_ZERO 2	/* test_zero_page() */
#define N_APPLY 16	/* test_apply() */

static void test_zero_page(const char *pass)
{
	volatile char *p = fx_map(2 * FX_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const char *why = NULL;
	int zp = pt__zero_page(&why);
	uint64_t e[2], f[2], c[2], pfn[2];

	(void)p[0];
	(void)p[FX_PAGE];
	pagemap((void *)p, 2, e);
	for (int i = 0; i < 2; i++) {
		pfn[i] = (e[i] & PT_PM_PRESENT) ? e[i] & PT_PM_PFN_MASK : 0;
		oracle(pfn[i], &f[i], &c[i]);
	}
	tap_diag("%szero page probe: %s (%s)", pass, zp == PT_YES ? "yes" : zp == PT_NO ? "no" :
		 "unknown", why);
	if (zp == PT_UNKNOWN || !pfn[0] || !pfn[1]) {
		why = zp == PT_UNKNOWN ? why : "read faults did not map visible pages";
		tap_skip(why, "%sread-faulted pages map the zero page, KPF_ZERO_PAGE", pass);
		tap_skip(why, "%spt__zero_pfn() is the zero page", pass);
	} else if (zp == PT_YES) {
		struct pt_kpage k = { .pfn = pfn[0] };
		int r = pt_kpageflags_read(&k, 1);

		tap_ok(r == 0 && pfn[0] == pfn[1] && (k.flags & KPF(ZERO_PAGE)),
		       "%sread-faulted pages map the zero page, KPF_ZERO_PAGE (PFNs %#" PRIx64
		       " %#" PRIx64 ", flags %#" PRIx64 ")", pass, pfn[0], pfn[1], k.flags);
		tap_ok(pt__zero_pfn() == pfn[0], "%spt__zero_pfn() %#" PRIx64 " is the zero page %#"
		       PRIx64, pass, pt__zero_pfn(), pfn[0]);
	} else {
		struct pt_region ib[2], ob[4];
		struct pt_runbuf in = { .r = ib, .cap = 2 }, out = { .r = ob, .cap = 4 };
		struct pt_target t;
		struct pt_vma v;
		uint64_t stopped = 0;
		bool plain = true, forced = fx_zero_page_forced();

		memset(&t, 0, sizeof(t));
		memset(&v, 0, sizeof(v));
		tap_skip(why, "%sread-faulted pages map the zero page, KPF_ZERO_PAGE", pass);
		for (int i = 0; i < 2; i++) {
			struct pt_region r = { .state = PT_STATE_PRESENT, .attrs = PT_ATTR_LOC,
					       .loc = pfn[i] };

			pt__run_append(&in, (uintptr_t)p + i * FX_PAGE, (uintptr_t)p + (i + 1) * FX_PAGE, &r);
		}
		plain = pt__kflags_apply(&t, &v, &in, true, &out, &stopped) == 0 && out.n >= 1 &&
			out.r[0].start == (uintptr_t)p && out.r[out.n - 1].end == (uintptr_t)p + 2 * FX_PAGE;
		for (size_t i = 0; plain && i < out.n; i++) {
			size_t k = (out.r[i].start - (uintptr_t)p) / FX_PAGE;

			plain = out.r[i].state == PT_STATE_PRESENT && !(out.r[i].attrs & PT_ATTR_ZERO) &&
				(out.r[i].attrs & PT_ATTR_KFLAGS) && k < 2 &&
				(out.r[i].kflags & STABLE_MASK) == (f[k] & STABLE_MASK);
		}
		/* the kernel's own word, unless the probe was overruled */
		if (!forced)
			plain = plain && pfn[0] != pfn[1] && !((f[0] | f[1]) & KPF(ZERO_PAGE)) &&
				(f[0] & f[1] & KPF(ANON));
		tap_ok(pt__zero_pfn() == 0 && plain,
		       "%sno zero page: pt__zero_pfn() is 0, read-faulted pages are plain present "
		       "pages%s (PFNs %#" PRIx64 " %#" PRIx64 ", kflags %#" PRIx64 " %#" PRIx64 ")",
		       pass, forced ? " (forced; the kernel maps the zero page)" : ", distinct, anonymous",
		       pfn[0], pfn[1], f[0], f[1]);
	}
	munmap((void *)p, 2 * FX_PAGE);
}

/* A touched, 2 MiB-aligned 4 MiB MADV_HUGEPAGE region, or NULL with *why. */
static char *thp_region(void **base, const char **why)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	char *p;

	if (!f) {
		*why = "no /sys/kernel/mm/transparent_hugepage (THP not built)";
		return NULL;
	}
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	if (strstr(buf, "[never]")) {
		*why = "transparent_hugepage/enabled is never";
		return NULL;
	}
	*base = fx_map(4 * HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p = (char *)(((uintptr_t)*base + HPAGE - 1) & ~(HPAGE - 1));
	/* leave the 1 MiB after the region free (test_apply maps it) */
	munmap(p + 2 * HPAGE, (char *)*base + 4 * HPAGE - (p + 2 * HPAGE));
	if (madvise(p, 2 * HPAGE, MADV_HUGEPAGE)) {
		*why = "madvise(MADV_HUGEPAGE) failed";
		munmap(*base, 4 * HPAGE);
		return NULL;
	}
	for (size_t i = 0; i < 2 * HPAGE; i += FX_PAGE)
		p[i] = 1;
	return p;
}

/* Is the 2 MiB block at @e (512 entries) a PMD-mapped THP by pagemap + oracle? */
static bool block_is_thp(const uint64_t *e)
{
	uint64_t pfn = e[0] & PT_PM_PFN_MASK, f, c;

	if (!(e[0] & PT_PM_PRESENT) || pfn % 512)
		return false;
	for (size_t i = 1; i < 512; i++)
		if (!(e[i] & PT_PM_PRESENT) || (e[i] & PT_PM_PFN_MASK) != pfn + i)
			return false;
	oracle(pfn, &f, &c);
	return (f & KPF(THP)) && (f & KPF(COMPOUND_HEAD));
}

static void test_thp(void)
{
	const char *why = NULL;
	void *base = NULL;
	char *p = thp_region(&base, &why);
	uint64_t e[1024];
	struct pt_kpage k[2];

	if (!p) {
		tap_skip(why, "pt_kpageflags_read on THP pages");
		tap_skip(why, "THP head page has KPF_THP and KPF_COMPOUND_HEAD");
		tap_skip(why, "THP tail page has KPF_THP and KPF_COMPOUND_TAIL");
		return;
	}
	pagemap(p, 1024, e);
	if (!block_is_thp(e)) {
		tap_skip("the region did not get a PMD-mapped THP", "pt_kpageflags_read on THP pages");
		tap_skip("the region did not get a PMD-mapped THP", "THP head page has KPF_THP and KPF_COMPOUND_HEAD");
		tap_skip("the region did not get a PMD-mapped THP", "THP tail page has KPF_THP and KPF_COMPOUND_TAIL");
	} else {
		k[0].pfn = e[0] & PT_PM_PFN_MASK;
		k[1].pfn = e[300] & PT_PM_PFN_MASK;
		tap_ok(pt_kpageflags_read(k, 2) == 0, "pt_kpageflags_read on THP pages");
		tap_ok((k[0].flags & KPF(THP)) && (k[0].flags & KPF(COMPOUND_HEAD)),
		       "THP head page has KPF_THP and KPF_COMPOUND_HEAD (%#" PRIx64 ")", k[0].flags);
		tap_ok((k[1].flags & KPF(THP)) && (k[1].flags & KPF(COMPOUND_TAIL)),
		       "THP tail page has KPF_THP and KPF_COMPOUND_TAIL (%#" PRIx64 ")", k[1].flags);
	}
	munmap(base, 4 * HPAGE);
}

/* ------------------------------------------------------------------ */
/* pt__kflags_apply                                                     */

/* Runs for @n pages at @addr from pagemap entries, as a backend would. */
static void build_runs(const char *addr, const uint64_t *e, size_t n, struct pt_runbuf *rb)
{
	for (size_t i = 0; i < n; i++) {
		struct pt_region p = { .state = PT_STATE_ABSENT };
		uint64_t a = (uintptr_t)addr + i * FX_PAGE;

		if (e[i] & PT_PM_PRESENT) {
			p.state = PT_STATE_PRESENT;
			p.attrs = PT_ATTR_LOC;
			p.loc = e[i] & PT_PM_PFN_MASK;
		}
		if (pt__run_append(rb, a, a + FX_PAGE, &p)) {
			printf("Bail out! run buffer full\n");
			exit(1);
		}
	}
}

/* Expand @rb to per-page attrs/kflags/mapcount/loc; false if not covering exactly. */
static bool expand(const struct pt_runbuf *rb, uint64_t start, size_t n, uint32_t *attrs,
		   uint64_t *kf, uint64_t *mc, uint64_t *loc)
{
	uint64_t a = start;

	for (size_t i = 0; i < rb->n; i++) {
		const struct pt_region *r = &rb->r[i];

		if (r->start != a || r->end <= r->start)
			return false;
		for (; a < r->end; a += FX_PAGE) {
			size_t k = (a - start) / FX_PAGE;

			if (k >= n)
				return false;
			attrs[k] = r->attrs;
			kf[k] = r->kflags;
			mc[k] = r->mapcount;
			loc[k] = (r->attrs & PT_ATTR_LOC) ? r->loc + (a - r->start) / FX_PAGE : 0;
		}
	}
	return a == start + n * FX_PAGE;
}

static void test_apply(const char *pass)
{
	const char *why = NULL;
	void *base = NULL;
	char *p = thp_region(&base, &why);
	const size_t n = 1024 + 256;	/* 4 MiB THP candidate + 1 MiB of 4 KiB pages */
	char *q;
	uint64_t *e = calloc(n, 8), *kf = calloc(n, 8), *mc = calloc(n, 8), *loc = calloc(n, 8);
	uint32_t *at = calloc(n, 4);
	struct pt_region *ibuf = calloc(n, sizeof(*ibuf)), *obuf = calloc(2 * n, sizeof(*obuf));
	struct pt_runbuf in = { .r = ibuf, .cap = n }, out = { .r = obuf, .cap = 2 * n };
	struct pt_target t;
	struct pt_vma v;
	uint64_t stopped = 0;
	bool thp[2] = { false, false };
	size_t bad_kf = 0, bad_huge = 0, bad_loc = 0, no_kattr = 0, zero_ok = 0, zero_bad = 0;
	const char *zp_why = NULL;
	int zp = pt__zero_page(&zp_why);
	int r;

	if (!e || !kf || !mc || !loc || !at || !ibuf || !obuf) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
	memset(&t, 0, sizeof(t));
	memset(&v, 0, sizeof(v));
	if (!p) {
		/* still test with plain pages */
		base = fx_map(4 * HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		p = (char *)(((uintptr_t)base + HPAGE - 1) & ~(HPAGE - 1));
		munmap(p + 2 * HPAGE, (char *)base + 4 * HPAGE - (p + 2 * HPAGE));
		madvise(p, 2 * HPAGE, MADV_NOHUGEPAGE);
		for (size_t i = 0; i < 2 * HPAGE; i += FX_PAGE)
			p[i] = 1;
		tap_diag("no THP (%s): apply tested on 4 KiB pages only", why);
	}
	/* A 1 MiB area right after: 4 KiB pages, some zero-page mapped. */
	q = mmap(p + 2 * HPAGE, 256 * FX_PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (q == MAP_FAILED) {
		tap_skip_n(N_APPLY, "cannot map the area after the THP region", "%spt__kflags_apply",
			   pass);
		goto out;
	}
	madvise(q, 256 * FX_PAGE, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < 256; i++) {
		if (i % 4 == 3)
			(void)*(volatile char *)(q + i * FX_PAGE);	/* zero page */
		else if (i % 4 != 2)
			q[i * FX_PAGE] = 1;			/* i % 4 == 2: untouched */
	}
	mlock(p, 2 * HPAGE);
	pagemap(p, n, e);
	thp[0] = block_is_thp(e);
	thp[1] = block_is_thp(e + 512);
	tap_diag("THP blocks: %d %d", thp[0], thp[1]);
	build_runs(p, e, n, &in);

	/* want_all = false: HUGE only, no kflags. */
	r = pt__kflags_apply(&t, &v, &in, false, &out, &stopped);
	tap_ok(r == 0 && stopped == (uintptr_t)p + n * FX_PAGE,
	       "%sapply(want_all=false) returns 0 and stops at the end (%d)", pass, r);
	tap_ok(expand(&out, (uintptr_t)p, n, at, kf, mc, loc), "%soutput runs cover the input exactly", pass);
	for (size_t i = 0; i < n; i++) {
		bool want_huge = i < 1024 && thp[i / 512];

		if (!!(at[i] & PT_ATTR_HUGE) != want_huge)
			bad_huge++;
		if ((at[i] & PT_ATTR_KFLAGS) || kf[i] || mc[i])
			bad_kf++;
		if ((e[i] & PT_PM_PRESENT) && loc[i] != (e[i] & PT_PM_PFN_MASK))
			bad_loc++;
	}
	tap_ok(bad_huge == 0, "%sHUGE set exactly on PMD-mapped THP blocks (%zu pages wrong)", pass, bad_huge);
	tap_ok(bad_kf == 0, "%swant_all=false leaves kflags/mapcount unset (%zu pages)", pass, bad_kf);
	tap_ok(bad_loc == 0, "%slocations preserved (%zu pages wrong)", pass, bad_loc);

	/* want_all = true: every present page gets its flags. */
	out.n = 0;
	bad_kf = bad_huge = bad_loc = 0;
	r = pt__kflags_apply(&t, &v, &in, true, &out, &stopped);
	tap_ok(r == 0 && stopped == (uintptr_t)p + n * FX_PAGE,
	       "%sapply(want_all=true) returns 0 and stops at the end (%d)", pass, r);
	tap_ok(expand(&out, (uintptr_t)p, n, at, kf, mc, loc), "%soutput runs cover the input exactly", pass);
	for (size_t i = 0; i < n; i++) {
		uint64_t f, c;

		if (!(e[i] & PT_PM_PRESENT)) {
			if (at[i] & PT_ATTR_KFLAGS)
				bad_kf++;
			continue;
		}
		if (!(at[i] & PT_ATTR_KFLAGS))
			no_kattr++;
		oracle(e[i] & PT_PM_PFN_MASK, &f, &c);
		if ((f & STABLE_MASK) != (kf[i] & STABLE_MASK) || c != mc[i])
			bad_kf++;
		if (!!(at[i] & PT_ATTR_HUGE) != (i < 1024 && thp[i / 512]))
			bad_huge++;
		if (loc[i] != (e[i] & PT_PM_PFN_MASK))
			bad_loc++;
		if (i >= 1024 && (i - 1024) % 4 == 3) {
			/* read-faulted: ZERO exactly when the probe says the zero page is used */
			if (zp == PT_YES ? (at[i] & PT_ATTR_ZERO) && (kf[i] & KPF(ZERO_PAGE))
					 : !(at[i] & PT_ATTR_ZERO))
				zero_ok++;
		} else if (at[i] & PT_ATTR_ZERO) {
			zero_bad++;
		}
	}
	tap_ok(no_kattr == 0, "%severy present page has PT_ATTR_KFLAGS (%zu lack it)", pass, no_kattr);
	tap_ok(bad_kf == 0, "%skflags and mapcount equal per-PFN preads (%zu pages differ)", pass, bad_kf);
	tap_ok(bad_huge == 0 && bad_loc == 0, "%sHUGE and locations right with want_all (%zu, %zu)", pass,
	       bad_huge, bad_loc);
	if (zp == PT_UNKNOWN) {
		tap_skip(zp_why, "%szero-page pages carry KPF_ZERO_PAGE and PT_ATTR_ZERO", pass);
		tap_skip(zp_why, "%sno zero page: read-faulted pages carry no PT_ATTR_ZERO", pass);
	} else if (zp == PT_YES) {
		tap_ok(zero_ok == 64, "%szero-page pages carry KPF_ZERO_PAGE and PT_ATTR_ZERO (%zu/64)",
		       pass, zero_ok);
		tap_skip(zp_why, "%sno zero page: read-faulted pages carry no PT_ATTR_ZERO", pass);
	} else {
		tap_skip(zp_why, "%szero-page pages carry KPF_ZERO_PAGE and PT_ATTR_ZERO", pass);
		tap_ok(zero_ok == 64, "%sno zero page: read-faulted pages carry no PT_ATTR_ZERO (%zu/64)",
		       pass, zero_ok);
	}
	tap_ok(zero_bad == 0, "%sno written or THP page carries PT_ATTR_ZERO (%zu do)", pass, zero_bad);

	/* A full output buffer: stop at a run boundary, resume gives the rest. */
	{
		struct pt_region small[5];
		struct pt_runbuf sb = { .r = small, .cap = 5 };
		uint64_t st2 = 0;

		r = pt__kflags_apply(&t, &v, &in, true, &sb, &st2);
		tap_ok(r == 0 && sb.n == 5 && st2 == small[4].end && st2 < (uintptr_t)p + n * FX_PAGE,
		       "%sa full @out stops at the first address not written (%d, n=%zu)", pass, r, sb.n);
	}
	tap_ok(!(t.limits & PT_LIMIT_NO_KFLAGS), "%sno PT_LIMIT_NO_KFLAGS when readable", pass);

	/* Unprivileged: runs copied unchanged, PT_LIMIT_NO_KFLAGS. */
	{
		pid_t pid;
		int status = -1;

		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			struct pt_runbuf o2 = { .r = obuf, .cap = 2 * n };
			uint64_t st3 = 0;
			int bad = 0;

			if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
				_exit(3);
			if (pt__kflags_apply(&t, &v, &in, true, &o2, &st3))
				_exit(4);
			bad |= !(t.limits & PT_LIMIT_NO_KFLAGS);
			bad |= o2.n != in.n || memcmp(o2.r, in.r, in.n * sizeof(*in.r)) != 0;
			bad |= st3 != (uintptr_t)p + n * FX_PAGE;
			_exit(bad ? 1 : 0);
		}
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
			tap_skip("cannot drop privileges", "%sunreadable kpageflags: copy + PT_LIMIT_NO_KFLAGS",
				 pass);
		else
			tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			       "%sunreadable kpageflags: runs copied, PT_LIMIT_NO_KFLAGS set (status %#x)", pass,
			       status);
	}
	munmap(q, 256 * FX_PAGE);
out:
	munmap(base, 4 * HPAGE);
	free(e);
	free(kf);
	free(mc);
	free(loc);
	free(at);
	free(ibuf);
	free(obuf);
}

int main(void)
{
	if (geteuid() != 0)
		tap_skip_all("needs root: /proc/kpageflags and PFNs in pagemap");
	if (pt_feature(PT_FEAT_KPAGEFLAGS, NULL) != PT_YES)
		tap_skip_all("/proc/kpageflags not readable here");
	if (pt_feature(PT_FEAT_PAGEMAP_PFN, NULL) != PT_YES)
		tap_skip_all("PFNs not visible in pagemap");
	kpf_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	kpc_fd = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
	pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (kpf_fd < 0 || kpc_fd < 0 || pm_fd < 0)
		tap_skip_all("cannot open /proc/kpageflags, kpagecount or pagemap");
	srand(12345);

	/* per test_*(), in the order called below */
	tap_plan(3 + 6 + N_ZERO + 3 + N_APPLY + N_ZERO + N_APPLY);
	test_args();
	test_batch();
	test_zero_page("");
	test_thp();
	test_apply("");

	/*
	 * Both branches of the zero-page probe stay tested: where the kernel
	 * maps the zero page, run the zero-page checks again with the probe
	 * forced to "no" (PT_FORCE_NO_ZERO_PAGE=1).
	 */
	if (pt__zero_page(NULL) == PT_YES) {
		setenv("PT_FORCE_NO_ZERO_PAGE", "1", 1);
		pt__features_reset();
		test_zero_page("forced no zero page: ");
		test_apply("forced no zero page: ");
		unsetenv("PT_FORCE_NO_ZERO_PAGE");
		pt__features_reset();
	} else {
		tap_skip_n(N_ZERO + N_APPLY, fx_zero_page_forced() ? "already forced" :
			   "the probe says the kernel does not map the zero page",
			   "forced no zero page: zero-page and kflags_apply checks");
	}

	close(kpf_fd);
	close(kpc_fd);
	close(pm_fd);
	return tap_done();
}
