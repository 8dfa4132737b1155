/* SPDX-License-Identifier: MIT */
/*
 * PAGEMAP_SCAN and pagemap-read backends must give identical results on
 * the same process: a forked child with a mixed layout, scanned whole by
 * both, for each combination of scan flags.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"

#define MAXR 200000

static bool have_swap;

static void fill(char *p, size_t pages)
{
	for (size_t i = 0; i < pages; i++)
		memset(p + i * FX_PAGE, (int)(i * 13 + 5), FX_PAGE);
}

static void setup(void *shared)
{
	(void)shared;
	/* private anon: half touched, a quarter swapped */
	char *a = fx_map(256 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fill(a, 128);
	if (have_swap)
		fx_pageout(a, 64 * FX_PAGE);
	/* zero pages */
	volatile char *z = fx_map(32 * FX_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < 32; i += 2)
		(void)z[i * FX_PAGE];
	/* shared anon: holes, swapped, cached, present */
	char *s = fx_map(64 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	fill(s + 16 * FX_PAGE, 48);
	if (have_swap)
		fx_pageout(s + 16 * FX_PAGE, 16 * FX_PAGE);
	madvise(s + 32 * FX_PAGE, 16 * FX_PAGE, MADV_DONTNEED);
	/* memfd, same pattern */
	int fd = memfd_create("pt-equal", MFD_CLOEXEC);
	if (fd >= 0 && ftruncate(fd, 64 * FX_PAGE) == 0) {
		char *m = fx_map(64 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		fill(m + 16 * FX_PAGE, 48);
		if (have_swap)
			fx_pageout(m + 16 * FX_PAGE, 16 * FX_PAGE);
		madvise(m + 32 * FX_PAGE, 16 * FX_PAGE, MADV_DONTNEED);
	}
	/* THP */
	char *raw = fx_map(6UL << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *h = (char *)(((uintptr_t)raw + (2UL << 20) - 1) & ~((2UL << 20) - 1));
	madvise(h, 4UL << 20, MADV_HUGEPAGE);
	fill(h, 1024);
	/* guard pages */
	char *g = fx_map(16 * FX_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fill(g, 16);
	madvise(g + 4 * FX_PAGE, 4 * FX_PAGE, 102 /* MADV_GUARD_INSTALL */);
	/* a large empty reservation */
	mmap(NULL, 1ULL << 36, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
}

static int scan_all(pid_t pid, enum pt_scan_backend b, uint32_t flags, struct pt_region *out,
		    size_t *n, char *backend_name, size_t bnlen)
{
	struct pt_target_opts o = { .sz = sizeof(o), .scan_backend = b };
	struct pt_scan_opts so = { .sz = sizeof(so), .flags = flags };
	struct pt_target *t = pt_target_create(pid, &o);
	struct pt_vma *v;
	size_t nv;
	int err;

	if (!t)
		return -errno;
	snprintf(backend_name, bnlen, "%s", pt_scan_backend_name(pt_target_scan_backend(t)));
	err = pt_vmas_read(t, &v, &nv);
	*n = 0;
	for (size_t i = 0; !err && i < nv; i++) {
		uint64_t cur = v[i].start;

		/*
		 * Sanitizer shadow (terabytes, partly resident) would take the
		 * read backend minutes: a documented limit, not under test here.
		 */
		if (v[i].end - v[i].start > (1ULL << 40))
			continue;
		/* small chunks exercise the cursor and the resume path */
		while (cur < v[i].end && *n + 64 <= MAXR) {
			int r = pt_scan(t, &cur, v[i].end, out + *n, 64, &so);
			if (r < 0) {
				err = r;
				break;
			}
			if (r == 0)
				break;
			*n += (size_t)r;
		}
	}
	pt_vmas_free(v);
	pt_target_free(t);
	return err;
}

/*
 * The zero page is one page for the whole system: its kpagecount and
 * kpageflags move with every other process that maps or drops it (seen
 * under a loaded CI run: the two scans, a few ms apart, read different
 * counts three times in a row).  They say nothing of the child, and both
 * backends read them from the same files: compare the rest.
 */
static void drop_system_wide(struct pt_region *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].attrs & PT_ATTR_ZERO)
			r[i].kflags = r[i].mapcount = 0;
}

/* Merge adjacent identical regions (cursor resumes may split a run). */
static size_t normalize(struct pt_region *r, size_t n)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++) {
		if (w && r[w - 1].end == r[i].start && r[w - 1].state == r[i].state &&
		    r[w - 1].attrs == r[i].attrs && r[w - 1].reason == r[i].reason &&
		    r[w - 1].kflags == r[i].kflags && r[w - 1].mapcount == r[i].mapcount &&
		    (!(r[i].attrs & PT_ATTR_LOC) ||
		     (r[w - 1].swap_type == r[i].swap_type &&
		      r[w - 1].loc + (r[w - 1].end - r[w - 1].start) / FX_PAGE == r[i].loc))) {
			r[w - 1].end = r[i].end;
			continue;
		}
		r[w++] = r[i];
	}
	return w;
}

static size_t first_diff(const struct pt_region *a, size_t na, const struct pt_region *b, size_t nb)
{
	size_t i;

	for (i = 0; i < na && i < nb; i++)
		if (memcmp(&a[i], &b[i], sizeof(*a)))
			return i;
	return na == nb ? (size_t)-1 : i;
}

int main(void)
{
	static struct pt_region ra[MAXR], rb[MAXR];
	const uint32_t flagsets[] = { 0, PT_SCAN_NO_EXCLUSIVE, PT_SCAN_LOCATION, PT_SCAN_KFLAGS,
				      PT_SCAN_NO_SHARED };
	const char *why;
	char na[32], nb[32];
	pid_t pid;

	if (pt_feature(PT_FEAT_PAGEMAP_SCAN, &why) != PT_YES)
		tap_skip_all("PAGEMAP_SCAN not available: nothing to compare the read backend with");
	have_swap = fx_swap(&why);
	if (!have_swap)
		tap_diag("no swap (%s): layout has no swapped pages", why);
	pid = fx_child(setup, NULL);
	if (pid < 0)
		tap_skip_all("cannot start the child");
	tap_plan(2 * (int)(sizeof(flagsets) / sizeof(flagsets[0])));
	for (size_t f = 0; f < sizeof(flagsets) / sizeof(flagsets[0]); f++) {
		uint32_t fl = flagsets[f];
		size_t n1 = 0, n2 = 0, d = 0;
		int e1 = 0, e2 = 0;

		if ((fl & PT_SCAN_KFLAGS) && pt_feature(PT_FEAT_KPAGEFLAGS, NULL) != PT_YES) {
			tap_skip_n(2, "kpageflags not readable (needs root)", "flags 0x%x: identical",
				   fl);
			continue;
		}
		/* the child is idle, but the kernel may still move pages: retry once */
		for (int attempt = 0; attempt < 3; attempt++) {
			e1 = scan_all(pid, PT_SCAN_BACKEND_PAGEMAP_SCAN, fl, ra, &n1, na, sizeof(na));
			e2 = scan_all(pid, PT_SCAN_BACKEND_PAGEMAP_READ, fl, rb, &n2, nb, sizeof(nb));
			drop_system_wide(ra, n1);
			drop_system_wide(rb, n2);
			n1 = normalize(ra, n1);
			n2 = normalize(rb, n2);
			d = first_diff(ra, n1, rb, n2);
			if (!e1 && !e2 && d == (size_t)-1)
				break;
		}
		tap_ok(!e1 && !e2 && !strcmp(na, "pagemap_scan") && !strcmp(nb, "pagemap_read"),
		       "flags 0x%x: both backends scan the child (%d, %d)", fl, e1, e2);
		if (!tap_ok(d == (size_t)-1, "flags 0x%x: identical results (%zu regions)", fl, n1)) {
			const struct pt_region *x = d < n1 ? &ra[d] : NULL, *y = d < n2 ? &rb[d] : NULL;
			if (x)
				tap_diag("scan: %#llx-%#llx state %u reason %u attrs %#x loc %#llx swap %u "
					 "kflags %#llx mapcount %llu", (unsigned long long)x->start,
					 (unsigned long long)x->end, x->state, x->reason, x->attrs,
					 (unsigned long long)x->loc, x->swap_type,
					 (unsigned long long)x->kflags, (unsigned long long)x->mapcount);
			if (y)
				tap_diag("read: %#llx-%#llx state %u reason %u attrs %#x loc %#llx swap %u "
					 "kflags %#llx mapcount %llu", (unsigned long long)y->start,
					 (unsigned long long)y->end, y->state, y->reason, y->attrs,
					 (unsigned long long)y->loc, y->swap_type,
					 (unsigned long long)y->kflags, (unsigned long long)y->mapcount);
		}
	}
	fx_child_kill(pid);
	return tap_done();
}
