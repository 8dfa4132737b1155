/* SPDX-License-Identifier: MIT */
/*
 * A 64 TiB PROT_NONE reservation must scan in bounded memory and fast on
 * every backend (no per-virtual-page work or allocation).  Time is only
 * reported here; bench/ measures it.  An alarm guards against a hang.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

int main(void)
{
	const size_t len = 64ULL << 40;
	enum pt_scan_backend bs[2];
	int nb = fx_backends(bs);
	char *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		tap_skip_all("cannot reserve 64 TiB of address space");
	/* a few touched pages in the middle (splits the reservation in three) */
	char *mid = p + len / 2;
	mprotect(mid, 8 * FX_PAGE, PROT_READ | PROT_WRITE);
	memset(mid, 1, 4 * FX_PAGE);

	tap_plan(2 * 3);	/* 3 per backend */
	alarm(120);
	for (int i = 0; i < nb; i++) {
		struct pt_target_opts o = { .sz = sizeof(o), .scan_backend = bs[i] };
		struct pt_target *t = pt_target_create(0, &o);
		struct pt_region r[16];
		uint64_t cur = (uintptr_t)p, end = (uintptr_t)p + len;
		size_t regions = 0, present = 0, absent = 0;
		long rss0 = maxrss_kb();
		double t0 = now();
		int err = 0;

		while (t && cur < end) {
			int n = pt_scan(t, &cur, end, r, 16, NULL);
			if (n <= 0) {
				err = n;
				break;
			}
			for (int k = 0; k < n; k++) {
				size_t pages = (r[k].end - r[k].start) / FX_PAGE;
				regions++;
				if (r[k].state == PT_STATE_PRESENT)
					present += pages;
				else if (r[k].state == PT_STATE_ABSENT)
					absent += pages;
			}
		}
		double dt = now() - t0;
		long grew = maxrss_kb() - rss0;
		const char *bn = pt_scan_backend_name(bs[i]);

		tap_ok(t && !err && cur == end, "%s: 64 TiB reservation scanned", bn);
		tap_ok(present == 4 && absent == len / FX_PAGE - 4 && regions == 4,
		       "%s: 4 present pages, everything else absent, in %zu regions", bn, regions);
		tap_ok(grew < 64 * 1024, "%s: memory stays bounded (max RSS grew %ld KiB)", bn, grew);
		tap_diag("%s: %.3f s for 64 TiB (%.0f TB/s of address space)", bn, dt,
			 len / dt / 1e12);
		pt_target_free(t);
	}
	if (nb < 2)
		tap_skip_n(3, "PAGEMAP_SCAN not supported", "pagemap_scan: 64 TiB reservation");
	munmap(p, len);
	return tap_done();
}
