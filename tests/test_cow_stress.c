/* SPDX-License-Identifier: MIT */
/*
 * COW safety (seed 004): O_DIRECT readers and writers on the same pages
 * of the calling process while a tracker of each backend collects (and
 * so write-protects) continuously from another thread; first alone, then
 * with MADV_PAGEOUT of the same pages (swap-out is the other trigger of
 * the wrong COW).  Zero corrupted bytes are allowed.  The core is
 * tools/common/cowstress.c, which `pagetrack check --hazards` runs too.
 *
 * Each run is bounded by work: it goes on until the readers checked
 * MIN_READS O_DIRECT reads, the writers made MIN_WRITES passes and the
 * tracker completed MIN_ROUNDS collect rounds (PT_COWSTRESS_ROUNDS
 * overrides the rounds), so a slow machine runs longer rather than fail.
 * The time cap (a share of the runner's budget, fixture.h; or
 * PT_COWSTRESS_MS per run) is a safety net: a run it ends is reported
 * (the work subtest skipped with the counts reached), and the data checks
 * still hold for what ran.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cowstress.h"
#include "fixture.h"
#include "tap.h"

#define MIN_READS 20000
#define MIN_WRITES 200000
#define MIN_ROUNDS 2000

static const enum pt_track_backend backends[] = { PT_TRACK_UFFD, PT_TRACK_SOFTDIRTY, PT_TRACK_HASH };

int main(void)
{
	const char *why = NULL, *ms_env = getenv("PT_COWSTRESS_MS");
	const char *rounds_env = getenv("PT_COWSTRESS_ROUNDS");
	uint64_t min_rounds = rounds_env ? strtoull(rounds_env, NULL, 10) : MIN_ROUNDS;
	unsigned runs_left = 2 * sizeof(backends) / sizeof(backends[0]);
	uint64_t seed = (uint64_t)time(NULL);
	char dir[4096];
	bool swap;

	if (getenv("PT_SEED"))
		seed = strtoull(getenv("PT_SEED"), NULL, 0);
	if (pt_cowstress_dir(dir, sizeof(dir), &why))
		tap_skip_all(why);
	swap = fx_swap(&why);
	tap_diag("seed %" PRIu64 " (PT_SEED=%" PRIu64 " reproduces), O_DIRECT file in %s; each run: "
		 "%d reads, %d writer passes, %" PRIu64 " rounds; time cap %s", seed, seed, dir,
		 MIN_READS, MIN_WRITES, min_rounds, ms_env ? ms_env : "a share of PT_TEST_TIMEOUT");
	if (!swap)
		tap_diag("no swap (%s): the MADV_PAGEOUT runs are skipped", why);

	/* per backend: 5 checks without pageout, 6 with */
	tap_plan((int)(sizeof(backends) / sizeof(backends[0])) * (5 + 6));
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		const char *name = pt_track_backend_name(backends[i]), *bwhy = NULL;
		/* soft-dirty runs the workload in a child (cowstress.c): another process */
		bool usable = fx_track_backend_usable(backends[i], backends[i] == PT_TRACK_SOFTDIRTY,
						      &bwhy);

		for (int po = 0; po < 2; po++, runs_left--) {
			uint64_t cap = ms_env ? strtoull(ms_env, NULL, 10)
					      : fx_deadline_ms(runs_left) - fx_now_ms();
			struct pt_cowstress_opts o = { .backend = backends[i], .ms = (unsigned)cap,
						       .dir = dir, .pageout = po, .seed = seed + i,
						       .min_reads = MIN_READS, .min_writes = MIN_WRITES,
						       .min_rounds = min_rounds };
			struct pt_cowstress_result r;
			int checks = po ? 6 : 5;
			int err;

			if (!usable) {
				tap_skip_n(checks, bwhy, "%s%s: no corruption", name, po ? " + pageout" : "");
				continue;
			}
			if (po && !swap) {
				tap_skip_n(checks, why, "%s + pageout: no corruption", name);
				continue;
			}
			/* the probes say the backend works: any failure to run is a failure */
			err = pt_cowstress_run(&o, &r);
			if (!tap_ok(err == 0, "%s%s: stress ran", name, po ? " + pageout" : "")) {
				tap_diag("%s", r.why);
				tap_skip_n(checks - 1, "the stress did not run", "%s%s: no corruption",
					   name, po ? " + pageout" : "");
				continue;
			}
			tap_diag("%s%s: %" PRIu64 " O_DIRECT reads, %" PRIu64 " writer passes, %" PRIu64
				 " collect rounds, %" PRIu64 " pages reported, %" PRIu64 " pageouts in %"
				 PRIu64 " ms (cap %" PRIu64 " ms)", name, po ? " + pageout" : "", r.reads,
				 r.writes, r.rounds, r.pages_reported, r.pageouts, r.elapsed_ms, cap);
			tap_ok(r.collect_err == 0, "%s%s: collect never failed (%s)", name,
			       po ? " + pageout" : "", r.collect_err ? strerror(-r.collect_err) : "ok");
			/*
			 * The stress must really have raced: all the work done
			 * while the tracker collected.  A run the time cap ended
			 * is reported, not failed (tests never assert on time).
			 */
			if (r.capped) {
				char capwhy[160];

				snprintf(capwhy, sizeof(capwhy), "time cap of %" PRIu64 " ms hit first: "
					 "%" PRIu64 " reads, %" PRIu64 " passes, %" PRIu64 " rounds",
					 cap, r.reads, r.writes, r.rounds);
				tap_skip(capwhy, "%s%s: all the work done while tracked", name,
					 po ? " + pageout" : "");
			} else {
				tap_ok(r.reads >= MIN_READS && r.writes >= MIN_WRITES &&
				       r.rounds >= min_rounds, "%s%s: all the work done while tracked (%"
				       PRIu64 " reads, %" PRIu64 " passes, %" PRIu64 " rounds)", name,
				       po ? " + pageout" : "", r.reads, r.writes, r.rounds);
			}
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
