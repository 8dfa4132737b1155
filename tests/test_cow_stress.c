/* SPDX-License-Identifier: MIT */
/*
 * COW safety (seed 004): O_DIRECT readers and writers on the same pages
 * of the calling process while a tracker of each backend collects (and
 * so write-protects) continuously from another thread; first alone, then
 * with MADV_PAGEOUT of the same pages (swap-out is the other trigger of
 * the wrong COW).  Zero corrupted bytes are allowed.  The core is
 * tools/common/cowstress.c, which `pagetrack check --hazards` runs too.
 * PT_COWSTRESS_MS overrides the duration of each run (default 5000).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cowstress.h"
#include "fixture.h"
#include "tap.h"

static const struct {
	enum pt_track_backend b;
	enum pt_feature f;	/* the probe that says why it is missing */
} backends[] = {
	{ PT_TRACK_UFFD, PT_FEAT_UFFD_WP_ASYNC },
	{ PT_TRACK_SOFTDIRTY, PT_FEAT_SOFT_DIRTY },
	{ PT_TRACK_HASH, PT_FEAT__COUNT },
};

int main(void)
{
	const char *why = NULL, *ms_env = getenv("PT_COWSTRESS_MS");
	unsigned ms = ms_env ? (unsigned)strtoul(ms_env, NULL, 10) : 5000;
	uint64_t seed = (uint64_t)time(NULL);
	char dir[4096];
	bool swap;

	if (getenv("PT_SEED"))
		seed = strtoull(getenv("PT_SEED"), NULL, 0);
	if (pt_cowstress_dir(dir, sizeof(dir), &why))
		tap_skip_all(why);
	swap = fx_swap(&why);
	tap_diag("seed %" PRIu64 " (PT_SEED=%" PRIu64 " reproduces), O_DIRECT file in %s, %u ms per run",
		 seed, seed, dir, ms);
	if (!swap)
		tap_diag("no swap (%s): the MADV_PAGEOUT runs are skipped", why);

	/* per backend: 5 checks without pageout, 6 with */
	tap_plan((int)(sizeof(backends) / sizeof(backends[0])) * (5 + 6));
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		const char *name = pt_track_backend_name(backends[i].b);

		for (int po = 0; po < 2; po++) {
			struct pt_cowstress_opts o = { .backend = backends[i].b, .ms = ms, .dir = dir,
						       .pageout = po, .seed = seed + i };
			struct pt_cowstress_result r;
			int checks = po ? 6 : 5;
			int err;

			if (po && !swap) {
				tap_skip_n(checks, why, "%s + pageout: no corruption", name);
				continue;
			}
			err = pt_cowstress_run(&o, &r);
			if (err == -EOPNOTSUPP) {
				const char *fwhy = "backend not usable";

				if (backends[i].f != PT_FEAT__COUNT)
					pt_feature(backends[i].f, &fwhy);
				tap_skip_n(checks, fwhy, "%s%s: no corruption (%s)", name,
					 po ? " + pageout" : "", r.why);
				continue;
			}
			if (!tap_ok(err == 0, "%s%s: stress ran", name, po ? " + pageout" : "")) {
				tap_diag("%s", r.why);
				tap_skip_n(checks - 1, "the stress did not run", "%s%s: no corruption",
					   name, po ? " + pageout" : "");
				continue;
			}
			tap_diag("%s%s: %" PRIu64 " O_DIRECT reads, %" PRIu64 " writer passes, %" PRIu64
				 " collect rounds, %" PRIu64 " pages reported, %" PRIu64 " pageouts",
				 name, po ? " + pageout" : "", r.reads, r.writes, r.rounds,
				 r.pages_reported, r.pageouts);
			tap_ok(r.collect_err == 0, "%s%s: collect never failed (%s)", name,
			       po ? " + pageout" : "", r.collect_err ? strerror(-r.collect_err) : "ok");
			/* the stress must really have raced: reads, writes and rounds */
			tap_ok(r.reads >= 100 && r.writes >= 1000 && r.rounds >= 100,
			       "%s%s: enough concurrency (%" PRIu64 " reads, %" PRIu64 " rounds)", name,
			       po ? " + pageout" : "", r.reads, r.rounds);
			tap_ok(r.read_bad == 0, "%s%s: O_DIRECT data intact (%" PRIu64
			       " bytes corrupted in %" PRIu64 " reads)", name, po ? " + pageout" : "",
			       r.read_bad, r.reads);
			tap_ok(r.write_bad == 0, "%s%s: writers' bytes intact (%" PRIu64 " bytes changed)",
			       name, po ? " + pageout" : "", r.write_bad);
			if (po)
				tap_ok(r.pageouts > 0, "%s + pageout: pages were paged out (%" PRIu64 ")",
				       name, r.pageouts);
		}
	}
	return tap_done();
}
