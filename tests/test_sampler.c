/* SPDX-License-Identifier: MIT */
/*
 * The sampler's estimates (issue 11, sections 3 and 5): in this process,
 * three areas of data pages; each run draws a sample (its own seed),
 * changes a random share of each area's pages (known exactly here), and
 * the 95% interval of the total must cover the exact count in at least
 * 95 of 100 runs.  The seed set is fixed (PT_SAMPLER_SEED=N shifts it),
 * so the outcome is deterministic.  Also: a census is exact, bad options
 * are refused, another process is sampled (process_vm_readv).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"

#define PG 4096UL
#define RUNS 100
#define NAREA 3
static const size_t area_pages[NAREA] = { 8192, 2048, 256 };	/* 32 MiB, 8 MiB, 1 MiB */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint8_t *area[NAREA];
static uint8_t *block;
static size_t block_len;
static uint64_t val;

/* The areas in one reservation, a PROT_NONE page between them (distinct VMAs). */
static void setup(void)
{
	size_t off = 0;

	block_len = 0;
	for (int i = 0; i < NAREA; i++)
		block_len += (area_pages[i] + 1) * PG;
	block = fx_map(block_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < NAREA; i++) {
		area[i] = block + off;
		if (mprotect(area[i], area_pages[i] * PG, PROT_READ | PROT_WRITE))
			tap_bail("mprotect: %s", strerror(errno));
		for (size_t p = 0; p < area_pages[i]; p++)
			*(uint64_t *)(area[i] + p * PG) = ++val;	/* all data pages */
		off += (area_pages[i] + 1) * PG;
	}
}

/* Change each page of area @a with probability @p; the count changed. */
static uint64_t write_share(int a, double p, uint64_t *rng)
{
	uint64_t n = 0, thr = p >= 1 ? UINT64_MAX : (uint64_t)(p * 18446744073709551615.0);

	for (size_t pg = 0; pg < area_pages[a]; pg++) {
		if (rng_next(rng) > thr)
			continue;
		*(volatile uint64_t *)(area[a] + pg * PG + 8) = ++val;
		n++;
	}
	return n;
}

static void bad_opts(void)
{
	struct pt_sampler_opts o = { .sz = 2 };
	struct pt_sampler *s = pt_sampler_create(0, &o);
	int e1 = errno;
	struct pt_sampler_opts big[2];
	struct pt_sample_estimate tot;

	memset(big, 0, sizeof(big));
	big[0].sz = sizeof(big);
	((char *)big)[sizeof(big[0]) + 3] = 1;	/* a newer caller's field we do not know */
	struct pt_sampler *s2 = pt_sampler_create(0, &big[0]);
	int e2 = errno;

	tap_ok(!s && e1 == EINVAL && !s2 && e2 == EINVAL &&
	       pt_sampler_collect(NULL, &tot, NULL, 0) == -EINVAL,
	       "bad options and arguments are refused with EINVAL");
	pt_sampler_free(s);
	pt_sampler_free(s2);
	pt_sampler_free(NULL);
}

/* A census (every page sampled) is exact: the interval is the count itself. */
static void census(void)
{
	PT_OPTS(pt_sampler_opts, o, .min_per_area = 1u << 20, .seed = 7,
		.start = (uint64_t)(uintptr_t)block, .end = (uint64_t)(uintptr_t)block + block_len);
	struct pt_sample_estimate tot, ar[NAREA + 1];
	struct pt_sampler *s = pt_sampler_create(0, &o);
	uint64_t rng = 99, exact = 0;
	int n = -1;

	if (s) {
		for (int a = 0; a < NAREA; a++)
			exact += write_share(a, 0.3, &rng);
		n = pt_sampler_collect(s, &tot, ar, NAREA + 1);
	}
	tap_ok(s && n == NAREA && tot.sampled == tot.pages && tot.est == exact && tot.lo == exact &&
	       tot.hi == exact, "census: every page sampled gives the exact count (%" PRIu64
	       " written; areas %d, est %" PRIu64 " [%" PRIu64 ", %" PRIu64 "])", exact, n,
	       n >= 0 ? tot.est : 0, n >= 0 ? tot.lo : 0, n >= 0 ? tot.hi : 0);
	pt_sampler_free(s);
}

static void coverage(uint64_t base)
{
	unsigned covered = 0, area_cov = 0, area_n = 0, failed = 0;
	double relerr = 0;

	for (unsigned run = 0; run < RUNS; run++) {
		uint64_t rng = base * 1000003 + run, exact = 0, ex[NAREA];
		PT_OPTS(pt_sampler_opts, o, .pages_per_gib = 4096, .seed = rng_next(&rng) | 1,
			.start = (uint64_t)(uintptr_t)block,
			.end = (uint64_t)(uintptr_t)block + block_len);
		struct pt_sample_estimate tot, ar[NAREA];
		struct pt_sampler *s = pt_sampler_create(0, &o);
		int n;

		if (!s) {
			failed++;
			continue;
		}
		for (int a = 0; a < NAREA; a++) {
			/* shares from none to most, some areas untouched */
			uint64_t r = rng_next(&rng) % 8;
			double p = r == 0 ? 0 : (double)(rng_next(&rng) % 1000) / 1000.0 * 0.8;

			ex[a] = write_share(a, p, &rng);
			exact += ex[a];
		}
		n = pt_sampler_collect(s, &tot, ar, NAREA);
		pt_sampler_free(s);
		if (n != NAREA) {
			failed++;
			continue;
		}
		covered += tot.lo <= exact && exact <= tot.hi;
		for (int a = 0; a < NAREA; a++) {
			area_n++;
			area_cov += ar[a].lo <= ex[a] && ex[a] <= ar[a].hi;
		}
		relerr += exact ? (double)(tot.est > exact ? tot.est - exact : exact - tot.est) /
				  (double)exact : 0;
		if (getenv("PT_DEBUG"))
			tap_diag("run %u: exact %" PRIu64 " est %" PRIu64 " [%" PRIu64 ", %" PRIu64
				 "] sampled %" PRIu64 " of %" PRIu64, run, exact, tot.est, tot.lo, tot.hi,
				 tot.sampled, tot.pages);
	}
	tap_diag("seed set %" PRIu64 ": total covered in %u of %d runs, per area %u of %u; mean "
		 "relative error of the estimate %.1f%%", base, covered, RUNS, area_cov, area_n,
		 relerr * 100.0 / RUNS);
	tap_ok(failed == 0, "%d randomized runs sampled (%u failed)", RUNS, failed);
	tap_ok(covered >= 95, "the 95%% interval of the total covers the exact count in at least "
	       "95 of %d runs (%u; PT_SAMPLER_SEED=%" PRIu64 ")", RUNS, covered, base);
}

/* Another process: read through process_vm_readv, not our own memory. */
static void other_process(void)
{
	int go[2], done[2];
	uint64_t exact = 0;
	pid_t c;

	if (pipe(go) || pipe(done))
		tap_bail("pipe: %s", strerror(errno));
	c = fork();
	if (c < 0)
		tap_bail("fork: %s", strerror(errno));
	if (c == 0) {
		uint64_t rng = 5, n;
		char b;

		close(go[1]);
		close(done[0]);
		if (read(go[0], &b, 1) != 1)
			_exit(1);
		n = write_share(0, 0.25, &rng) + write_share(1, 1.0, &rng);
		if (write(done[1], &n, sizeof(n)) != sizeof(n))
			_exit(1);
		pause();
		_exit(0);
	}
	close(go[0]);
	close(done[1]);
	PT_OPTS(pt_sampler_opts, o, .pages_per_gib = 8192, .seed = 11,
		.start = (uint64_t)(uintptr_t)block, .end = (uint64_t)(uintptr_t)block + block_len);
	struct pt_sampler *s = pt_sampler_create(c, &o);
	struct pt_sample_estimate tot = { 0 }, ar[NAREA];
	int n = -1;

	if (s && write(go[1], "x", 1) == 1 && read(done[0], &exact, sizeof(exact)) == sizeof(exact))
		n = pt_sampler_collect(s, &tot, ar, NAREA);
	tap_ok(s && n == NAREA && tot.lo <= exact && exact <= tot.hi && ar[2].est == 0 &&
	       ar[1].est == ar[1].pages,
	       "another process: %" PRIu64 " written, estimated %" PRIu64 " [%" PRIu64 ", %" PRIu64
	       "] from %" PRIu64 " sampled pages (%s)", exact, tot.est, tot.lo, tot.hi, tot.sampled,
	       s ? "ok" : strerror(errno));
	pt_sampler_free(s);
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	close(go[1]);
	close(done[0]);
}

int main(void)
{
	uint64_t base = getenv("PT_SAMPLER_SEED") ? strtoull(getenv("PT_SAMPLER_SEED"), NULL, 0) : 1;

	tap_plan(5);
	setup();
	bad_opts();
	census();
	coverage(base);
	other_process();
	munmap(block, block_len);
	return tap_done();
}
