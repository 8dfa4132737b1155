/* SPDX-License-Identifier: MIT */
/*
 * Never miss a write (issue 3, section 6): for each tracker backend, a
 * forked writer makes random changes to its memory and logs every page
 * whose content it changed to a pipe (a side channel the tracker cannot
 * see); the parent tracks the writer and checks every logged page is in
 * the right collect's result.  See doc/tracking-tests.md.
 *
 *  1. lockstep: the writer does a batch of ops, then the parent collects;
 *     every page logged in the batch must be in that round.
 *  2. concurrent: the writer never stops; each record carries the epoch
 *     (published by the parent before each collect, in a shared page)
 *     read before and after the change: the page must be reported in a
 *     round r with e_before <= r <= e_after + 1.
 *  3. the tracker, in its own process, is SIGKILLed mid-collect (and
 *     once during its creation): the writer must keep its pace and find
 *     its memory intact.
 *
 * PT_SEED=N reproduces a run; PT_NEVERMISS_ROUNDS overrides the rounds.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "track/tracker.h"
#include <xxhash.h>
#include "tap.h"
#include "writer.h"

#define NRING 256
/* larger areas (the sanitizers' shadow) are not copied, compared nor checked */
#define SNAP_MAX_AREA (256ull << 20)
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ================= the parent: tracker and checks ================= */

struct dvec {
	struct pt_dirty *d;
	size_t n, cap;
};

static int cmp_dirty(const void *x, const void *y)
{
	const struct pt_dirty *a = x, *b = y;

	return a->start < b->start ? -1 : a->start > b->start;
}

/* PT_TRACK_HOT modes: pages reported hot and re-armed, over all rounds */
static uint64_t hot_seen, rearmed_seen;
/*
 * The budget mode: after each round, a random quarter of the areas change
 * method (pt_tracker_set_area_method(): to hashing, or back), so that
 * writes fall on every side of both switches.
 */
static bool budget_mode;
static uint64_t budget_rng, to_hash, to_backend, budget_rounds_hashed;
/*
 * Set once the concurrent writer has stopped: no more switches, so that
 * the rounds before the final comparison arm nothing.  A round that arms
 * an area moved back to the backend freezes the writer (ptrace stops
 * every thread, also one asleep in pause()), and when the kernel resumes
 * it on the other CPU it rewrites the thread's rseq area (cpu_id, in the
 * TCB: the middle page of a 3-page anonymous area), a kernel write
 * caused by the tracker itself, landing after that round collected the
 * page.  The next round reports it (tests/test_tracker.c checks that),
 * but after the last round there is no next one: the copy would differ
 * by that page (seen under load with PT_SEED=1796604911, 3626049843,
 * 979212776).
 */
static bool budget_hold;

static void budget_flip(struct pt_tracker *tr)
{
	bool any = false;

	for (size_t i = 0; i < tr->nareas; i++) {
		const struct pt_area *a = &tr->areas[i];
		uint64_t x = budget_rng += 0x9e3779b97f4a7c15ULL;

		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
		x ^= x >> 31;
		if (a->method == PT_METHOD_HASH && a->reason == PT_AREA_REASON_BUDGET)
			any = true;
		/* the sanitizers' shadow (terabytes, reported whole at each move back) stays */
		if (x % 4 || a->end - a->start > SNAP_MAX_AREA)
			continue;
		if (a->method == PT_METHOD_BACKEND &&
		    pt_tracker_set_area_method(tr, a->start, PT_AREA_HASHED) == 0)
			to_hash++;
		else if (a->method == PT_METHOD_HASH && a->reason == PT_AREA_REASON_BUDGET &&
			 pt_tracker_set_area_method(tr, a->start, PT_AREA_BACKEND) == 0)
			to_backend++;
	}
	budget_rounds_hashed += any;
}

/* One whole round into @v (sorted); 0 or -errno. */
static int collect_round(struct pt_tracker *tr, struct dvec *v)
{
	bool more = true;

	v->n = 0;
	while (more) {
		int n;

		if (v->cap - v->n < 256) {
			size_t nc = v->cap ? v->cap * 2 : 1024;
			struct pt_dirty *nd = realloc(v->d, nc * sizeof(*nd));

			if (!nd)
				return -ENOMEM;
			v->d = nd;
			v->cap = nc;
		}
		n = pt_tracker_collect(tr, v->d + v->n, 256, &more);
		if (n < 0)
			return n;
		v->n += (size_t)n;
	}
	qsort(v->d, v->n, sizeof(*v->d), cmp_dirty);
	hot_seen += tr->st.pages_hot;
	rearmed_seen += tr->st.pages_rearmed;
	if (budget_mode && !budget_hold)
		budget_flip(tr);
	return 0;
}

/* Index of the first region of @v ending after @addr. */
static size_t dvec_first(const struct dvec *v, uint64_t addr)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (v->d[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct pt_dirty *dvec_find(const struct dvec *v, uint64_t addr)
{
	size_t lo = dvec_first(v, addr);

	return lo < v->n && v->d[lo].start <= addr ? &v->d[lo] : NULL;
}

struct want {
	uint64_t page, e1, e2, seq;
	uint32_t op;
};

struct wvec {
	struct want *w;
	size_t n, cap;
};

static void wvec_add(struct wvec *v, struct want x)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 4096;
		v->w = realloc(v->w, v->cap * sizeof(*v->w));
		if (!v->w)
			abort();
	}
	v->w[v->n++] = x;
}

static int cmp_want(const void *x, const void *y)
{
	const struct want *a = x, *b = y;

	return a->page < b->page ? -1 : a->page > b->page;
}

static bool read_rec(int fd, struct rec *r)
{
	size_t got = 0;

	while (got < sizeof(*r)) {
		ssize_t n = read(fd, (char *)r + got, sizeof(*r) - got);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return false;
		}
		got += (size_t)n;
	}
	return true;
}

struct fork_res {
	pid_t pid;
	int log_fd, cmd_fd;
};

static int start_writer(bool concurrent, struct fork_res *f)
{
	int lp[2], cp[2];

	memset((void *)ctl, 0, sizeof(*ctl));
	if (pipe2(lp, O_CLOEXEC) || pipe2(cp, O_CLOEXEC))
		return -errno;
	fcntl(lp[1], F_SETPIPE_SZ, 1 << 20);
	f->pid = fork();
	if (f->pid < 0)
		return -errno;
	if (f->pid == 0) {
		close(lp[0]);
		close(cp[1]);
		writer_main(lp[1], cp[0], concurrent);
		_exit(0);
	}
	close(lp[1]);
	close(cp[0]);
	f->log_fd = lp[0];
	f->cmd_fd = cp[1];
	while (!atomic_load(&ctl->ready))
		usleep(200);
	return 0;
}

static void stop_writer(struct fork_res *f)
{
	int st = 0;

	kill(f->pid, SIGKILL);
	waitpid(f->pid, &st, 0);
	/* a writer that died on its own is a failure of the test or of the tracker */
	if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
		tap_diag("writer ended by itself: status 0x%x (%s)", st,
			 WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exit");
	close(f->log_fd);
	close(f->cmd_fd);
}


static void report_miss(const char *mode, const char *bk, const struct want *x, uint64_t round)
{
	tap_diag("MISS %s %s: page 0x%" PRIx64 " changed by %s (epochs %" PRIu64 "..%" PRIu64
		 ") not reported in round %" PRIu64 " (PT_SEED=%" PRIu64 ")", mode, bk, x->page,
		 op_names[x->op], x->e1, x->e2, round, seed);
}

/* Subtests per mode, whatever happens (the plan is fixed). */
#define N_LOCKSTEP 4
#define N_CONCURRENT 6
#define N_KILLED 3
#define N_BACKEND (N_LOCKSTEP + N_CONCURRENT + 2 * N_KILLED)

/*
 * A mode's rounds ended by its time cap (fixture.h): skip the "rounds ran"
 * subtest with the counts, so the cap is reported, never a pass or a kill.
 */
static void rounds_ran(const char *mode, const char *bk, unsigned done, unsigned rounds,
		       uint64_t t0, bool capped, int err)
{
	char why[160];

	if (capped && !err) {
		snprintf(why, sizeof(why), "time cap hit: %u of %u rounds in %.1f s (budget %u s, "
			 "PT_TEST_TIMEOUT)", done, rounds, (double)(fx_now_ms() - t0) / 1000.0,
			 fx_budget_s());
		tap_skip(why, "%s %s: %u rounds ran", mode, bk, rounds);
	} else {
		tap_ok(err == 0, "%s %s: %u rounds ran (%s)", mode, bk, rounds,
		       err ? strerror(-err) : "ok");
	}
}

static void lockstep(struct pt_tracker_opts *o, const char *bk, unsigned rounds, uint64_t deadline)
{
	struct fork_res f;
	struct pt_tracker *tr = NULL;
	struct dvec v = { 0 };
	struct wvec want = { 0 };
	uint64_t miss = 0, checked = 0, reported = 0, hit = 0, reported_old = 0, hit_old = 0;
	uint64_t op_checked[OP__COUNT] = { 0 }, pvw_val = 1ULL << 62, t0 = fx_now_ms();
	unsigned done = 0;
	bool capped = false;
	int err = 0;

	if ((err = start_writer(false, &f))) {
		tap_ok(0, "lockstep %s: writer started (%s)", bk, strerror(-err));
		tap_skip_n(N_LOCKSTEP - 1, "no writer", "lockstep %s: every changed page reported", bk);
		return;
	}
	tr = pt_tracker_create(f.pid, o);
	if (!tap_ok(tr != NULL, "lockstep %s: tracker created on the writer (%s)", bk,
		    tr ? "ok" : strerror(errno))) {
		tap_skip_n(N_LOCKSTEP - 1, "no tracker", "lockstep %s: every changed page reported", bk);
		goto out;
	}
	for (uint64_t b = 1; b <= rounds && !err; b++) {
		struct rec r;

		if (fx_now_ms() >= deadline) {	/* safety net: report it, check what ran */
			capped = true;
			break;
		}
		done = (unsigned)b;
		want.n = 0;
		if (write(f.cmd_fd, &b, sizeof(b)) != sizeof(b)) {
			err = -EPIPE;
			break;
		}
		while ((err = read_rec(f.log_fd, &r) ? 0 : -EPIPE) == 0 && r.type != R_END) {
			if (r.type == R_UNMAP) {	/* earlier writes there need not be reported */
				for (size_t i = 0; i < want.n; i++)
					if (want.w[i].page >= r.addr && want.w[i].page < r.addr + r.npages * PG)
						want.w[i--] = want.w[--want.n];
				continue;
			}
			if (r.type == R_PVW) {		/* a kernel write from another process */
				uint64_t val = ++pvw_val;
				struct iovec l = { &val, 8 }, rm = {
					(void *)(uintptr_t)(r.addr + 8 * (val % (PG / 8))), 8 };

				if (process_vm_writev(f.pid, &l, 1, &rm, 1, 0) != 8)
					continue;
			}
			for (uint64_t p = 0; p < r.npages; p++)
				wvec_add(&want, (struct want){ .page = r.addr + p * PG, .e1 = r.e1,
							       .e2 = r.e2, .op = r.op });
		}
		if (err)
			break;
		if (getenv("PT_MISS_DEBUG") && tr->backend == PT_TRACK_HASH)
			for (size_t i = 0; i < want.n; i++) {
				uint64_t h;

				if (want.w[i].op == OP_DONTNEED && !pt__hash_peek(tr->hs, want.w[i].page, &h))
					tap_diag("  before round %" PRIu64 ": dropped page %#" PRIx64
						 " has no stored hash", b, want.w[i].page);
			}
		if ((err = collect_round(tr, &v))) {
			tap_diag("lockstep %s: collect of round %" PRIu64 " failed: %s (PT_SEED=%"
				 PRIu64 ")", bk, b, strerror(-err), seed);
			break;
		}
		if (getenv("PT_MISS_DEBUG") && tr->backend == PT_TRACK_HASH) {
			/* every private page of the paused writer: stored hash == content? */
			char mp[64], pm[64], line[512];
			static uint8_t pgbuf[PG], zp[PG];
			static int shown;
			int pfd;
			FILE *mf;

			snprintf(mp, sizeof(mp), "/proc/%d/maps", (int)f.pid);
			snprintf(pm, sizeof(pm), "/proc/%d/pagemap", (int)f.pid);
			mf = fopen(mp, "re");
			pfd = open(pm, O_RDONLY | O_CLOEXEC);
			while (mf && pfd >= 0 && fgets(line, sizeof(line), mf)) {
				unsigned long long vs, ve;
				char perms[8];

				if (sscanf(line, "%llx-%llx %7s", &vs, &ve, perms) != 3 || perms[3] != 'p' ||
				    perms[0] != 'r' || strchr(line, '/') || strchr(line, '[') ||
				    ve - vs > SNAP_MAX_AREA)
					continue;
				for (uint64_t a = vs; a < ve; a += PG) {
					struct iovec l = { pgbuf, PG }, rm = { (void *)(uintptr_t)a, PG };
					uint64_t h = 0, now, e = 0;
					int has = pt__hash_peek(tr->hs, a, &h);

					if (pread(pfd, &e, 8, (off_t)(a / PG * 8)) != 8)
						e = 0;
					if (!(e >> 63))	/* absent: do not fault it in */
						now = XXH3_64bits(zp, PG);
					else if (process_vm_readv(f.pid, &l, 1, &rm, 1, 0) == PG)
						now = XXH3_64bits(pgbuf, PG);
					else
						continue;
					bool zero = now == XXH3_64bits(zp, PG);
					if ((zero ? has : (!has || h != now)) && shown++ < 10)
						tap_diag("  after round %" PRIu64 ": page %#" PRIx64
							 " in %llx-%llx: stored %s, content %s, pagemap %#" PRIx64,
							 b, a, vs, ve, has ? "hash" : "none",
							 zero ? "zero" : "data", e);
				}
			}
			if (mf)
				fclose(mf);
			if (pfd >= 0)
				close(pfd);
		}
		qsort(want.w, want.n, sizeof(*want.w), cmp_want);
		for (size_t i = 0; i < want.n; i++) {
			if (i && want.w[i].page == want.w[i - 1].page)
				continue;
			const struct pt_dirty *d = dvec_find(&v, want.w[i].page);

			checked++;
			op_checked[want.w[i].op]++;
			if (d) {
				hit++;
				if (!(d->flags & PT_DIRTY_NEW))
					hit_old++;
			} else if (miss++ < 20) {
				report_miss("lockstep", bk, &want.w[i], b);
				if (getenv("PT_MISS_DEBUG")) {	/* the page's pagemap entry now */
					uint64_t e = 0;
					char pm[64];

					snprintf(pm, sizeof(pm), "/proc/%d/pagemap", (int)f.pid);
					int pfd = open(pm, O_RDONLY | O_CLOEXEC);
					if (pfd >= 0 && pread(pfd, &e, 8, (off_t)(want.w[i].page / PG * 8)) == 8)
						tap_diag("  pagemap entry %#llx", (unsigned long long)e);
					if (tr->backend == PT_TRACK_HASH || tr->st.areas_fallback) {
						static uint8_t pb[PG];
						uint64_t h = 0;
						int has = pt__hash_peek(tr->hs, want.w[i].page, &h);
						struct iovec l = { pb, PG }, rm = { (void *)(uintptr_t)want.w[i].page, PG };
						bool rd = process_vm_readv(f.pid, &l, 1, &rm, 1, 0) == PG;

						tap_diag("  stored %s %#llx, content %s %#llx", has ? "hash" : "none",
							 (unsigned long long)h, rd ? "read" : "unreadable",
							 rd ? (unsigned long long)XXH3_64bits(pb, PG) : 0ULL);
					}
					if (pfd >= 0)
						close(pfd);
					char mp[64], line[512];
					snprintf(mp, sizeof(mp), "/proc/%d/maps", (int)f.pid);
					FILE *mf = fopen(mp, "re");
					while (mf && fgets(line, sizeof(line), mf)) {
						unsigned long long vs, ve;
						if (sscanf(line, "%llx-%llx", &vs, &ve) == 2 &&
						    ve + 0x10000 > want.w[i].page && vs < want.w[i].page + 0x10000)
							tap_diag("  maps: %.*s", (int)strcspn(line, "\n"), line);
					}
					if (mf)
						fclose(mf);
					for (size_t k = 0; k < v.n; k++)
						if (v.d[k].end + 0x10000 > want.w[i].page &&
						    v.d[k].start < want.w[i].page + 0x10000)
							tap_diag("  reported: %#llx-%#llx flags %#x",
								 (unsigned long long)v.d[k].start,
								 (unsigned long long)v.d[k].end, v.d[k].flags);
				}
			}
		}
		for (size_t i = 0; i < v.n; i++) {
			uint64_t n = (v.d[i].end - v.d[i].start) / PG;

			if (v.d[i].start <= (uint64_t)(uintptr_t)ctl && (uint64_t)(uintptr_t)ctl < v.d[i].end)
				n--;
			reported += n;
			if (!(v.d[i].flags & PT_DIRTY_NEW))
				reported_old += n;
		}
	}
	rounds_ran("lockstep", bk, done, rounds, t0, capped, err);
	tap_ok(checked > 0 && miss * 1000 <= checked, "lockstep %s: at most 0.1%% of changed pages "
	       "missed (%" PRIu64 " of %" PRIu64 ")", bk, miss, checked);
	tap_ok(miss == 0, "lockstep %s: every changed page reported (%" PRIu64
		 " missed of %" PRIu64 " checked, PT_SEED=%" PRIu64 ")", bk, miss, checked, seed);
	{
		char line[512];
		size_t len = 0;

		for (int i = 0; i < OP__COUNT; i++)
			len += (size_t)snprintf(line + len, sizeof(line) - len, " %s=%" PRIu64,
						op_names[i], op_checked[i]);
		tap_diag("lockstep %s: pages checked per op:%s", bk, line);
	}
	tap_diag("lockstep %s: false positives %.1f%% (%" PRIu64 " of %" PRIu64
		 " reported pages not logged); outside new areas %.1f%% (%" PRIu64 " of %" PRIu64 ")",
		 bk, reported ? 100.0 * (double)(reported - hit) / (double)reported : 0.0,
		 reported - hit, reported,
		 reported_old ? 100.0 * (double)(reported_old - hit_old) / (double)reported_old : 0.0,
		 reported_old - hit_old, reported_old);
out:
	pt_tracker_free(tr);
	{
		uint64_t zero = 0;

		if (write(f.cmd_fd, &zero, sizeof(zero)) < 0)
			(void)0;
	}
	stop_writer(&f);
	free(v.d);
	free(want.w);
}

/*
 * PT_MISS_DEBUG: the history of every page of the concurrent run (what
 * was reported, logged and copied, in order), printed for a page whose
 * copy differs at the end.
 */
enum { H_REPORT, H_WRITE, H_UNMAP, H_COPY, H_AREA, H_POP };
struct hev {
	uint64_t start, end, round, v;
	uint32_t kind, op;
};
static struct hev *hist;
static size_t nhist, caphist;
static uint64_t hist_round;

static void hist_add(uint32_t kind, uint64_t start, uint64_t end, uint64_t v, uint32_t op)
{
	if (!getenv("PT_MISS_DEBUG"))
		return;
	if (nhist == caphist) {
		caphist = caphist ? 2 * caphist : 65536;
		hist = realloc(hist, caphist * sizeof(*hist));
		if (!hist)
			abort();
	}
	hist[nhist++] = (struct hev){ start, end, hist_round, v, kind, op };
}

/* End of one round's block of populated ranges: say when @a went in or out. */
static void hist_pop_end(uint64_t round, bool in, int *prev)
{
	if (*prev != (int)in)
		tap_diag("    round %" PRIu64 ": %s the tracker's populated set", round,
			 in ? "in" : "NOT in");
	*prev = in;
}

static void hist_show(uint64_t a, uint64_t upto)
{
	static const char *const kn[] = { "reported", "logged", "unmapped", "copied" };
	size_t last = nhist, from, k = 0;
	uint64_t pop_round = 0, as = 0, ae = 0, am = 0;
	bool in_pop = false, open = false;
	int prev = -1;

	while (last > 0 && hist[last - 1].round > upto)
		last--;
	from = last;
	while (from > 0 && k < 60) {	/* from the 60th last event of @a up to round @upto */
		const struct hev *h = &hist[--from];

		k += a >= h->start && a < h->end && h->kind != H_AREA && h->kind != H_POP;
	}
	for (size_t i = from; i < last; i++) {
		const struct hev *h = &hist[i];
		bool mine = a >= h->start && a < h->end;

		if (h->kind == H_POP) {	/* each round's set is one block of events */
			if (open && h->round != pop_round)
				hist_pop_end(pop_round, in_pop, &prev);
			if (!open || h->round != pop_round)
				in_pop = false;
			open = true;
			pop_round = h->round;
			in_pop |= mine;
			continue;
		}
		if (open) {
			hist_pop_end(pop_round, in_pop, &prev);
			open = false;
		}
		if (!mine)
			continue;
		if (h->kind == H_AREA) {	/* only when it changes */
			if (h->start != as || h->end != ae || h->v != am)
				tap_diag("    round %" PRIu64 ": in the tracker's area %#" PRIx64 "-%#"
					 PRIx64 " (%s)", h->round, h->start, h->end,
					 h->v == PT_METHOD_HASH ? "hashed" : "backend");
			as = h->start;
			ae = h->end;
			am = h->v;
		} else if (h->kind == H_REPORT) {
			tap_diag("    round %" PRIu64 ": %s flags %#" PRIx64, h->round, kn[h->kind], h->v);
		} else if (h->kind == H_WRITE || h->kind == H_UNMAP) {
			tap_diag("    round %" PRIu64 ": %s %s epochs %" PRIu64 "..%" PRIu64, h->round,
				 kn[h->kind], h->kind == H_WRITE ? op_names[h->op] : "", h->v >> 32,
				 h->v & 0xffffffffu);
		} else {
			tap_diag("    round %" PRIu64 ": %s %#" PRIx64, h->round, kn[h->kind], h->v);
		}
	}
	if (open)
		hist_pop_end(pop_round, in_pop, &prev);
}

/*
 * ---- the copy a pre-copy migration would make ----
 * A baseline of every readable page after arming, then after each collect
 * the reported pages copied again (as content hashes), while the writer
 * runs; the tracker is told what was copied (pt_tracker_note_copy), as a
 * migration tool would do.  Once the writer is quiet and a last round is
 * copied, the copy
 * must equal its memory page for page: a change reported too early (a
 * kernel write landing after the page was copied and re-armed) would
 * show here, where the epoch windows cannot see it.
 */

struct shadow {
	uint64_t *key, *h;	/* open addressing by page address; key 0 = free */
	size_t cap, n;
};

static void shadow_put(struct shadow *sd, uint64_t a, uint64_t h)
{
	if (2 * (sd->n + 1) > sd->cap) {
		struct shadow nw = { .cap = sd->cap ? 2 * sd->cap : 4096 };

		nw.key = calloc(nw.cap, sizeof(uint64_t));
		nw.h = calloc(nw.cap, sizeof(uint64_t));
		if (!nw.key || !nw.h)
			abort();
		for (size_t i = 0; i < sd->cap; i++)
			if (sd->key[i])
				shadow_put(&nw, sd->key[i], sd->h[i]);
		free(sd->key);
		free(sd->h);
		*sd = nw;
	}
	size_t i = (size_t)((a >> 12) * 0x9e3779b97f4a7c15ull) & (sd->cap - 1);

	while (sd->key[i] && sd->key[i] != a)
		i = (i + 1) & (sd->cap - 1);
	if (!sd->key[i])
		sd->n++;
	sd->key[i] = a;
	sd->h[i] = h;
}

static bool shadow_get(const struct shadow *sd, uint64_t a, uint64_t *h)
{
	if (!sd->cap)
		return false;
	for (size_t i = (size_t)((a >> 12) * 0x9e3779b97f4a7c15ull) & (sd->cap - 1); sd->key[i];
	     i = (i + 1) & (sd->cap - 1))
		if (sd->key[i] == a) {
			*h = sd->h[i];
			return true;
		}
	return false;
}

/*
 * Hash of the writer's page @a now (and its bytes, in a static buffer);
 * false when it cannot be read.  A
 * page of a private anonymous area with no data is not read (that would
 * map the zero page into the writer): it hashes as zeros.  (@read: not
 * private anonymous, read it whatever its pagemap entry says.)
 */
static bool page_hash(pid_t pid, int pmfd, int memfd, uint64_t a, bool read, uint64_t *h,
		      const void **bytes)
{
	static uint8_t buf[PG], zero[PG];
	struct iovec l = { buf, PG }, r = { (void *)(uintptr_t)a, PG };
	uint64_t e = 0;

	if (!read && pread(pmfd, &e, 8, (off_t)(a / PG * 8)) == 8 && !(e >> 62)) {
		*h = XXH3_64bits(zero, PG);
		*bytes = zero;
		return true;
	}
	/* an area without read permission: /proc/PID/mem (FOLL_FORCE), as the hash engine */
	if (process_vm_readv(pid, &l, 1, &r, 1, 0) != PG &&
	    (memfd < 0 || pread(memfd, buf, PG, (off_t)a) != PG))
		return false;
	*h = XXH3_64bits(buf, PG);
	*bytes = buf;
	return true;
}

/*
 * From a maps line of any area (the copier reads unreadable ones through
 * /proc/PID/mem): its bounds, and whether its pages must always be read.
 */
static bool maps_line_any(const char *line, unsigned long long *vs, unsigned long long *ve,
			  bool *read)
{
	unsigned long long ino = 0;
	char perms[8];

	if (sscanf(line, "%llx-%llx %7s %*s %*s %llu", vs, ve, perms, &ino) < 3)
		return false;
	*read = perms[3] == 's' || ino != 0;
	return true;
}

/* The same for readable areas only. */
static bool maps_line(const char *line, unsigned long long *vs, unsigned long long *ve, bool *read)
{
	char perms[8];

	return maps_line_any(line, vs, ve, read) && sscanf(line, "%*s %7s", perms) == 1 &&
	       perms[0] == 'r';
}

/* Calls @fn for each page of the writer's readable, tracked areas. */
static void for_each_page(pid_t pid, void (*fn)(uint64_t a, bool read, void *), void *arg)
{
	char path[64], line[512];
	FILE *mf;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	mf = fopen(path, "re");
	while (mf && fgets(line, sizeof(line), mf)) {
		unsigned long long vs, ve;
		bool rd;

		/*
		 * Not the sanitizers' shadow reservations (terabytes): the
		 * writer's own areas are far below the limit.
		 */
		if (!maps_line(line, &vs, &ve, &rd) || ve - vs > SNAP_MAX_AREA ||
		    strstr(line, "[vvar") || strstr(line, "[vdso]") || strstr(line, "[vsyscall]"))
			continue;
		for (uint64_t a = vs; a < ve; a += PG)
			if (a != (uint64_t)(uintptr_t)ctl)	/* the parent writes it */
				fn(a, rd, arg);
	}
	if (mf)
		fclose(mf);
}

struct snap {
	struct shadow sd;
	struct pt_tracker *tr;	/* told what was copied (pt_tracker_note_copy) */
	pid_t pid;
	int pmfd, memfd;
	uint64_t differ, compared, unreadable;
	uint64_t holes;		/* pages recorded as zeros unread (PT_DIRTY_HOLE) */
	uint64_t first_bad, bad_copy, bad_now;
	bool bad_had;
};

static void snap_one(uint64_t a, bool read, void *arg)
{
	struct snap *sn = arg;
	const void *bytes;
	uint64_t h;

	if (!page_hash(sn->pid, sn->pmfd, sn->memfd, a, read, &h, &bytes)) {
		/* unmapped since the layout was read: no data, as in snap_gap() */
		static const uint8_t zero[PG];

		bytes = zero;
		h = XXH3_64bits(zero, PG);
	}
	shadow_put(&sn->sd, a, h);
	hist_add(H_COPY, a, a + PG, h, 0);
	if (pt_tracker_note_copy(sn->tr, a, bytes, PG))
		abort();
}

/*
 * A page reported as a hole of a new area (PT_DIRTY_HOLE): recorded as
 * zeros without reading it, and without a note, as the flag promises a
 * copier may.  A write into it afterwards must be reported by a later
 * round, or the final comparison finds the copy's zeros stale.
 */
static void snap_hole(struct snap *sn, uint64_t a)
{
	static const uint8_t zero[PG];
	uint64_t h = XXH3_64bits(zero, PG);

	sn->holes++;
	shadow_put(&sn->sd, a, h);
	hist_add(H_COPY, a, a + PG, h, 0);
}

/*
 * The copy mirrors the layout, as a migration's destination would: pages
 * in no area now are dropped (no data: zero, what they read if mapped
 * again).  The tracker does not report unmaps, and a page written after a
 * collect, copied, then unmapped is not reported again.  @m: the mapped
 * ranges now, sorted, @nm of them.
 */
static void snap_prune(struct snap *sn, const uint64_t (*m)[2], size_t nm)
{
	static const uint8_t zero[PG];
	uint64_t hz = XXH3_64bits(zero, PG);

	for (size_t i = 0; i < sn->sd.cap; i++) {
		uint64_t a = sn->sd.key[i];
		size_t lo = 0, hi = nm;

		if (!a || sn->sd.h[i] == hz)
			continue;
		while (lo < hi) {	/* first range ending after a */
			size_t mid = (lo + hi) / 2;

			if (m[mid][1] <= a)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < nm && m[lo][0] <= a)
			continue;	/* mapped */
		sn->sd.h[i] = hz;
		hist_add(H_COPY, a, a + PG, hz, 0);
		/* data moved back here later must differ from the copy */
		if (pt_tracker_note_copy(sn->tr, a, zero, PG))
			abort();
	}
}

/*
 * Copy the pages of @v: those mapped are read (through /proc/PID/mem when
 * not readable), then every copied page in no area now is dropped.
 */
static void snap_regions(struct snap *sn, const struct dvec *v)
{
	char path[64], line[512];
	uint64_t (*m)[2] = NULL;
	size_t nm = 0, cm = 0;
	FILE *mf;

	/* shared or not, per area */
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)sn->pid);
	mf = fopen(path, "re");
	while (mf && fgets(line, sizeof(line), mf)) {
		unsigned long long vs, ve;
		bool rd;

		if (sscanf(line, "%llx-%llx", &vs, &ve) == 2) {
			if (nm == cm) {
				cm = cm ? 2 * cm : 256;
				m = realloc(m, cm * sizeof(*m));
				if (!m)
					abort();
			}
			m[nm][0] = vs;
			m[nm++][1] = ve;
		}
		if (!maps_line_any(line, &vs, &ve, &rd) || ve - vs > SNAP_MAX_AREA)
			continue;
		for (size_t i = dvec_first(v, vs); i < v->n && v->d[i].start < ve; i++)
			for (uint64_t a = v->d[i].start > vs ? v->d[i].start : vs;
			     a < v->d[i].end && a < ve; a += PG) {
				if (v->d[i].flags & PT_DIRTY_HOLE) {
					snap_hole(sn, a);
					continue;
				}
				snap_one(a, rd, sn);
			}
	}
	if (mf) {
		fclose(mf);
		snap_prune(sn, (const uint64_t (*)[2])m, nm);
	}
	free(m);
}

static void snap_compare(uint64_t a, bool read, void *arg)
{
	struct snap *sn = arg;
	const void *bytes;
	uint64_t now, copy;

	if (!page_hash(sn->pid, sn->pmfd, -1, a, read, &now, &bytes)) {
		sn->unreadable++;
		return;
	}
	sn->compared++;
	bool had = shadow_get(&sn->sd, a, &copy);
	static const uint8_t zero[PG];

	/* never copied: the copy has nothing there, which reads as zeros */
	if (!had)
		copy = XXH3_64bits(zero, PG);
	if (copy != now) {
		if (!sn->differ++) {
			sn->first_bad = a;
			sn->bad_had = had;
			sn->bad_copy = had ? copy : 0;
			sn->bad_now = now;
		}
	}
}

/* A record of the concurrent writer: its pages to check, or an unmap. */
static void take_rec(const struct rec *rec, struct wvec *queue, struct wvec *unmaps, uint64_t *seq)
{
	hist_add(rec->type == R_UNMAP ? H_UNMAP : H_WRITE, rec->addr, rec->addr + rec->npages * PG,
		 rec->e1 << 32 | (rec->e2 & 0xffffffffu), rec->op);
	if (rec->type == R_UNMAP)
		wvec_add(unmaps, (struct want){ .page = rec->addr, .e1 = rec->e1, .e2 = rec->npages,
						.seq = (*seq)++ });
	else
		for (uint64_t p = 0; p < rec->npages; p++)
			wvec_add(queue, (struct want){ .page = rec->addr + p * PG, .e1 = rec->e1,
						       .e2 = rec->e2, .op = rec->op, .seq = (*seq)++ });
}

#define ASLEEP_WAIT_MS 10000	/* cap of the wait for the stopped writer to sleep */

/* Concurrent mode: the writer never waits; windows of epochs are checked. */
static void concurrent(struct pt_tracker_opts *o, const char *bk, unsigned rounds,
		       uint64_t deadline)
{
	struct fork_res f;
	struct pt_tracker *tr = NULL;
	struct dvec ring[NRING];
	struct wvec queue = { 0 }, suspects = { 0 }, unmaps = { 0 };
	struct snap sn = { .pmfd = -1, .memfd = -1 };
	uint64_t miss = 0, checked = 0, late = 0, seq = 0, done = 0;
	size_t head = 0;
	bool ended = false, capped = false;
	uint64_t last = rounds + 1, t0 = fx_now_ms();	/* the round after the writer stops */
	int err = 0;

	memset(ring, 0, sizeof(ring));
	if ((err = start_writer(true, &f))) {
		tap_ok(0, "concurrent %s: writer started (%s)", bk, strerror(-err));
		tap_skip_n(N_CONCURRENT - 1, "no writer", "concurrent %s: every change reported", bk);
		return;
	}
	fcntl(f.log_fd, F_SETFL, O_NONBLOCK);
	tr = pt_tracker_create(f.pid, o);
	if (!tap_ok(tr != NULL, "concurrent %s: tracker created on the writer (%s)", bk,
		    tr ? "ok" : strerror(errno))) {
		tap_skip_n(N_CONCURRENT - 1, "no tracker", "concurrent %s: every change reported", bk);
		goto out;
	}
	{
		char pm[64];

		snprintf(pm, sizeof(pm), "/proc/%d/pagemap", (int)f.pid);
		sn.pid = f.pid;
		sn.tr = tr;
		sn.pmfd = open(pm, O_RDONLY | O_CLOEXEC);
		snprintf(pm, sizeof(pm), "/proc/%d/mem", (int)f.pid);
		sn.memfd = open(pm, O_RDONLY | O_CLOEXEC);
	}
	for_each_page(f.pid, snap_one, &sn);	/* the writer waits for epoch 1 */
	for (uint64_t r = 1; r <= last && !err; r++) {
		struct rec rec;

		if (r < last && fx_now_ms() >= deadline) {	/* safety net: end it here */
			capped = true;
			last = r;
		}
		if (r == last) {	/* last round: the writer has stopped */
			budget_hold = true;	/* and the areas stay where they are */
			atomic_store(&ctl->stop, 1);
			fcntl(f.log_fd, F_SETFL, 0);
			while (!ended && read_rec(f.log_fd, &rec)) {
				if (rec.type == R_END)
					ended = true;
				else
					take_rec(&rec, &queue, &unmaps, &seq);
			}
		}
		atomic_store(&ctl->epoch, r);
		if ((err = collect_round(tr, &ring[r % NRING]))) {
			tap_diag("concurrent %s: collect of round %" PRIu64 " failed: %s (PT_SEED=%"
				 PRIu64 ")", bk, r, strerror(-err), seed);
			break;
		}
		done = r;
		hist_round = r;
		for (size_t i = 0; i < ring[r % NRING].n; i++)
			hist_add(H_REPORT, ring[r % NRING].d[i].start, ring[r % NRING].d[i].end,
				 ring[r % NRING].d[i].flags, 0);
		for (size_t i = 0; getenv("PT_MISS_DEBUG") && i < tr->nareas; i++)
			hist_add(H_AREA, tr->areas[i].start, tr->areas[i].end, tr->areas[i].method, 0);
		for (size_t i = 0; getenv("PT_MISS_DEBUG") && i < tr->pop_prev.n; i++)
			hist_add(H_POP, tr->pop_prev.d[i].start, tr->pop_prev.d[i].end, 0, 0);
		snap_regions(&sn, &ring[r % NRING]);
		/* records so far (those of the last round were read above) */
		while (!ended) {
			ssize_t n = read(f.log_fd, &rec, sizeof(rec));

			if (n == 0 || (n < 0 && errno == EAGAIN))
				break;
			if (n != sizeof(rec)) {	/* records are written whole: cannot be short */
				err = -EIO;
				break;
			}
			if (rec.type == R_UNMAP || rec.type == R_WRITE)
				take_rec(&rec, &queue, &unmaps, &seq);
		}
		/* check every write whose window of rounds is complete */
		while (head < queue.n && queue.w[head].e2 + 1 <= done) {
			struct want *x = &queue.w[head++];
			bool found = false;

			if (done - x->e1 >= NRING) {
				late++;
				continue;
			}
			for (uint64_t k = x->e1; k <= x->e2 + 1 && !found; k++)
				found = dvec_find(&ring[k % NRING], x->page) != NULL;
			checked++;
			if (!found)
				wvec_add(&suspects, *x);
		}
		if (head == queue.n)
			head = queue.n = 0;
	}
	/* a write not found is excused only by a later unmap of its page in time */
	for (size_t i = 0; i < suspects.n; i++) {
		struct want *x = &suspects.w[i];
		bool excused = false;

		for (size_t j = 0; j < unmaps.n && !excused; j++) {
			struct want *u = &unmaps.w[j];

			excused = u->seq > x->seq && x->page >= u->page && x->page < u->page + u->e2 * PG &&
				  u->e1 <= x->e2 + 1;
		}
		if (!excused && miss++ < 20) {
			report_miss("concurrent", bk, x, x->e2 + 1);
			if (miss == 1)
				hist_show(x->page, x->e2 + 3);
		}
	}
	if (!err && !ended)
		tap_ok(0, "concurrent %s: %u rounds ran (writer did not end)", bk, rounds);
	else
		rounds_ran("concurrent", bk, (unsigned)(last - 1), rounds, t0, capped, err);
	tap_ok(late == 0, "concurrent %s: no record outside the kept rounds (%" PRIu64 ")", bk, late);
	tap_ok(checked > 0 && miss * 1000 <= checked, "concurrent %s: at most 0.1%% of changes "
	       "missed (%" PRIu64 " of %" PRIu64 ")", bk, miss, checked);
	tap_ok(miss == 0, "concurrent %s: every change reported within its epochs (%" PRIu64
	       " missed of %" PRIu64 " checked, PT_SEED=%" PRIu64 ")", bk, miss, checked, seed);
	if (!err && ended) {
		/*
		 * One more round once the writer sleeps in pause() (its last
		 * writes, to its stack on the way there, landed before it),
		 * then compare.  This round arms nothing (budget_hold): it
		 * stops no thread, so nothing changes after it collects.
		 */
		if (!fx_wait_state(f.pid, 'S', ASLEEP_WAIT_MS))
			tap_diag("concurrent %s: the writer was not seen asleep within %d ms", bk,
				 ASLEEP_WAIT_MS);
		err = collect_round(tr, &ring[0]);
		hist_round = last + 1;
		for (size_t i = 0; !err && i < ring[0].n; i++)
			hist_add(H_REPORT, ring[0].d[i].start, ring[0].d[i].end, ring[0].d[i].flags, 0);
		if (!err)
			snap_regions(&sn, &ring[0]);
		for_each_page(f.pid, snap_compare, &sn);
		if (sn.differ) {	/* what was the first page? */
			char mp[64], line[512];
			uint64_t h = 0;
			int has = tr->hs ? pt__hash_peek(tr->hs, sn.first_bad, &h) : 0;
			FILE *mf;

			tap_diag("concurrent %s: page %#" PRIx64 ": copy %s %#" PRIx64 ", now %#" PRIx64
				 ", tracker's stored hash %s %#" PRIx64, bk, sn.first_bad,
				 sn.bad_had ? "hash" : "none", sn.bad_copy, sn.bad_now,
				 has ? "hash" : "none", h);
			snprintf(mp, sizeof(mp), "/proc/%d/maps", (int)f.pid);
			mf = fopen(mp, "re");
			while (mf && fgets(line, sizeof(line), mf)) {
				unsigned long long vs, ve;

				if (sscanf(line, "%llx-%llx", &vs, &ve) == 2 && vs <= sn.first_bad &&
				    sn.first_bad < ve)
					tap_diag("  in %.*s", (int)strcspn(line, "\n"), line);
			}
			if (mf)
				fclose(mf);
			hist_show(sn.first_bad, UINT64_MAX);
		}
		bool same = !err && sn.compared > 0 && sn.differ == 0;

		tap_diag("concurrent %s: %" PRIu64 " reported pages were holes of new areas, "
			 "recorded as zeros unread", bk, sn.holes);

		tap_ok(same, "concurrent %s: a copy updated with each round's pages equals "
			       "the writer's memory at the end (%" PRIu64 " pages differ of %" PRIu64
			       ", first %#" PRIx64 "; %" PRIu64 " unreadable; PT_SEED=%" PRIu64 ")", bk,
			       sn.differ, sn.compared, sn.first_bad, sn.unreadable, seed);
	} else {
		tap_ok(0, "concurrent %s: a copy updated with each round's pages equals the writer's "
		       "memory at the end (the run did not end: %s)", bk, strerror(-err));
	}
out:
	budget_hold = false;
	pt_tracker_free(tr);
	stop_writer(&f);
	for (int i = 0; i < NRING; i++)
		free(ring[i].d);
	free(queue.w);
	free(suspects.w);
	free(unmaps.w);
	free(sn.sd.key);
	free(sn.sd.h);
	free(hist);
	hist = NULL;
	nhist = caphist = 0;
	if (sn.pmfd >= 0)
		close(sn.pmfd);
	if (sn.memfd >= 0)
		close(sn.memfd);
}

/* ---- tracker killed mid-run ---- */

#define KPAGES 512
#define KILL_WAIT_MS 60000	/* cap of the waits for the tracker's rounds, the writer's check */

/* The writer of the kill test: stamps pages, keeps its own copy, verifies. */
static void kill_writer(void)
{
	uint8_t *a = fx_map(KPAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *s = fx_map(64 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *shadow = calloc(KPAGES + 64, sizeof(uint64_t)), rng = seed ^ 0x4b1, gen = 0;

	if (!shadow)
		_exit(2);
	atomic_store(&ctl->ready, 1);
	while (!atomic_load(&ctl->stop)) {
		size_t i = rnd(&rng) % (KPAGES + 64);
		uint8_t *p = i < KPAGES ? a + i * PG : s + (i - KPAGES) * PG;

		gen++;
		/* whole-page stamp at a page-dependent offset, checked later */
		((volatile uint64_t *)p)[gen % (PG / 8)] = gen;
		((volatile uint64_t *)p)[0] = gen;
		shadow[i] = gen;
		atomic_fetch_add_explicit(&ctl->progress, 1, memory_order_relaxed);
	}
	uint64_t bad = 0;

	for (size_t i = 0; i < KPAGES + 64; i++) {
		const uint64_t *p = (const uint64_t *)(i < KPAGES ? a + i * PG : s + (i - KPAGES) * PG);

		if (p[0] != shadow[i] || (shadow[i] && p[shadow[i] % (PG / 8)] != shadow[i]))
			bad++;
	}
	atomic_store(&ctl->verify_bad, bad);
	atomic_store(&ctl->verify_pages, KPAGES + 64);
	atomic_store(&ctl->verified, 1);
	pause();
	_exit(0);
}

static void tracker_proc(pid_t target, struct pt_tracker_opts *o)
{
	struct pt_tracker *tr = pt_tracker_create(target, o);
	struct dvec v = { 0 };

	if (!tr)
		_exit(9);
	for (;;) {
		atomic_store(&ctl->in_collect, 1);
		if (collect_round(tr, &v))
			_exit(10);
		atomic_store(&ctl->in_collect, 0);
		atomic_fetch_add(&ctl->rounds, 1);
	}
}

/* CPU time @pid ran, in ns (/proc/PID/schedstat: not tick-granular); 0 if unreadable. */
static uint64_t run_ns(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

/*
 * The pace of writer @w: writes per ms of the CPU time it got (so that
 * the load of a shared machine, which takes CPU from it, does not count;
 * a slower write, e.g. one that faults, does), or per ms of wall time
 * where schedstat is not readable.  The best of @windows windows of
 * 100 ms, stopping early once @enough is reached.
 */
static double rate(pid_t w, int windows, double enough)
{
	double best = 0;

	for (int i = 0; i < windows && !(enough > 0 && best >= enough); i++) {
		uint64_t p0 = atomic_load(&ctl->progress), t0 = now_ms(), c0 = run_ns(w), c1;
		double r;

		usleep(100 * 1000);
		r = (double)(atomic_load(&ctl->progress) - p0);
		c1 = run_ns(w);
		if (c0 && c1)
			r /= (double)(c1 - c0) / 1e6 + 0.001;
		else
			r /= (double)(now_ms() - t0 + 1);
		if (r > best)
			best = r;
	}
	return best;
}

static void killed(struct pt_tracker_opts *o, const char *bk, bool during_create)
{
	const char *when = during_create ? "during create" : "mid-collect";
	pid_t w, t;
	double before, after;
	int st = 0;

	memset((void *)ctl, 0, sizeof(*ctl));
	w = fork();
	if (w == 0)
		kill_writer();
	while (!atomic_load(&ctl->ready))
		usleep(200);
	before = rate(w, 4, 0);
	t = fork();
	if (t == 0)
		tracker_proc(w, o);
	if (during_create) {
		uint64_t r = seed ^ 0xde1a;

		usleep((useconds_t)(rnd(&r) % 3000));
	} else {
		/* generous caps (a slow machine's rounds are slow); said if hit */
		uint64_t t0 = now_ms();

		while (atomic_load(&ctl->rounds) < 5 && now_ms() - t0 < KILL_WAIT_MS)
			usleep(100);
		while (!atomic_load(&ctl->in_collect) && now_ms() - t0 < KILL_WAIT_MS)
			;
		if (atomic_load(&ctl->rounds) < 5 || !atomic_load(&ctl->in_collect))
			tap_diag("killed %s %s: cap of %d s hit before 5 rounds and a collect "
				 "in progress (%" PRIu64 " rounds)", bk, when, KILL_WAIT_MS / 1000,
				 (uint64_t)atomic_load(&ctl->rounds));
	}
	kill(t, SIGKILL);
	waitpid(t, &st, 0);
	tap_ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "killed %s %s: tracker process died by "
	       "SIGKILL (status 0x%x, %" PRIu64 " rounds done)", bk, when, st,
	       (uint64_t)atomic_load(&ctl->rounds));
	usleep(50000);	/* the first writes after the kill may fault once per page */
	/*
	 * A writer left blocked or slowed for good fails this; a passing
	 * hiccup (TCG, a loaded machine, the dead tracker's teardown) does
	 * not: up to 50 windows (5 s) to show the pace again.
	 */
	after = rate(w, 50, 0.3 * before);
	tap_ok(after >= 0.3 * before, "killed %s %s: writer keeps its pace (%.0f writes per ms of "
	       "its CPU time before, %.0f after)", bk, when, before, after);
	atomic_store(&ctl->stop, 1);
	{
		uint64_t t0 = now_ms();

		while (!atomic_load(&ctl->verified) && now_ms() - t0 < KILL_WAIT_MS)
			usleep(1000);
	}
	tap_ok(atomic_load(&ctl->verified) && atomic_load(&ctl->verify_bad) == 0,
	       "killed %s %s: writer's memory intact (%s, %" PRIu64 " of %" PRIu64 " pages bad)",
	       bk, when, atomic_load(&ctl->verified) ? "verified" : "writer did not answer",
	       (uint64_t)atomic_load(&ctl->verify_bad), (uint64_t)atomic_load(&ctl->verify_pages));
	kill(w, SIGKILL);
	waitpid(w, NULL, 0);
}

static void log_diag(enum pt_log_level level, const char *msg, void *arg)
{
	(void)arg;
	tap_diag("libpagetrack[%d]: %s", (int)level, msg);
}

static void find_odirect_dir(void)
{
	const char *cand[] = { getenv("PT_ODIRECT_DIR"), "/var/tmp" };

	for (size_t i = 0; i < 2; i++) {
		struct statfs sf;
		int fd;

		if (!cand[i] || statfs(cand[i], &sf) || sf.f_type == TMPFS_MAGIC)
			continue;
		snprintf(odirect_dir, sizeof(odirect_dir), "%s", cand[i]);
		fd = make_file(odirect_dir, true, 0);
		if (fd >= 0) {
			close(fd);
			return;
		}
	}
	odirect_dir[0] = 0;
}

int main(void)
{
	/*
	 * The backends, then uffd again with hot-page skipping (PT_TRACK_HOT,
	 * adaptive K and lease, a writer that keeps a hot set): the only
	 * backend that leaves pages writable.  Soft-dirty and hash accept
	 * the flag and track as usual, which their own modes cover.  Last,
	 * uffd with areas moved to hashing and back at random between rounds
	 * (pt_tracker_set_area_method(), the budget's tool).
	 */
	static const enum pt_track_backend bks[] = { PT_TRACK_UFFD, PT_TRACK_SOFTDIRTY,
						     PT_TRACK_HASH, PT_TRACK_UFFD, PT_TRACK_UFFD };
	static const char *const names[] = { "uffd", "softdirty", "hash", "uffd+hot",
					      "uffd+budget" };
#define NMODES (sizeof(bks) / sizeof(bks[0]))
	const char *why[NMODES] = { NULL };
	bool usable[NMODES];
	unsigned parts = 0;	/* modes with rounds still to run: they share the time budget */
	const char *env = getenv("PT_NEVERMISS_ROUNDS");
	unsigned rounds = env ? (unsigned)strtoul(env, NULL, 10) : 300;

	if (getenv("PT_DEBUG"))
		pt_set_log(log_diag, NULL);
	seed = getenv("PT_SEED") ? strtoull(getenv("PT_SEED"), NULL, 0) : (uint64_t)time(NULL);
	ctl = fx_map(PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	find_odirect_dir();
	tap_diag("seed %" PRIu64 " (PT_SEED=%" PRIu64 " reproduces), %u rounds per mode", seed, seed,
		 rounds);
	if (!odirect_dir[0])
		tap_diag("no O_DIRECT-capable disk filesystem (/var/tmp is tmpfs or refuses): "
			 "the o_direct-read op is skipped");
	tap_plan((int)NMODES * N_BACKEND + 2);
	/* the probes decide; then every tracker creation below must succeed */
	for (size_t i = 0; i < NMODES; i++) {
		const char *only = getenv("PT_NEVERMISS_BACKEND");

		if (only && strcmp(only, names[i]) && strcmp(only, pt_track_backend_name(bks[i]))) {
			usable[i] = false;
			why[i] = "PT_NEVERMISS_BACKEND is set";
		} else {
			usable[i] = fx_track_backend_usable(bks[i], true, &why[i]);
		}
		parts += usable[i] ? 2 : 0;
	}
	for (size_t i = 0; i < NMODES; i++) {
		bool hot = !strcmp(names[i], "uffd+hot"), budget = !strcmp(names[i], "uffd+budget");
		struct pt_tracker_opts o = { .sz = sizeof(o), .backend = bks[i],
					     .flags = hot ? PT_TRACK_HOT : 0 };
		const char *bk = names[i];
		uint64_t t0 = now_ms();

		if (!usable[i]) {
			tap_skip_n(N_BACKEND + (hot || budget), why[i], "%s: never misses a write", bk);
			continue;
		}
		if (hot)
			setenv("PT_WRITER_HOT", "1", 1);
		hot_seen = rearmed_seen = 0;
		budget_mode = budget;
		budget_rng = seed ^ 0xb4d6e7;
		to_hash = to_backend = budget_rounds_hashed = 0;
		lockstep(&o, bk, rounds, fx_deadline_ms(parts--));
		concurrent(&o, bk, rounds + rounds / 2, fx_deadline_ms(parts--));
		killed(&o, bk, false);
		killed(&o, bk, true);
		if (hot) {
			/* else the mode checked nothing the uffd one did not */
			tap_ok(hot_seen > 0 && rearmed_seen > 0, "%s: pages were left writable (%" PRIu64
			       " reports with PT_DIRTY_HOT) and re-armed (%" PRIu64 " pages)", bk,
			       hot_seen, rearmed_seen);
			unsetenv("PT_WRITER_HOT");
		}
		if (budget) {
			/* else the mode checked nothing the uffd one did not */
			tap_ok(to_hash > 0 && to_backend > 0 && budget_rounds_hashed > 0,
			       "%s: areas moved to hashing (%" PRIu64 ") and back (%" PRIu64 "), "
			       "%" PRIu64 " rounds with budget-hashed areas", bk, to_hash, to_backend,
			       budget_rounds_hashed);
			budget_mode = false;
		}
		tap_diag("%s: %.1f s", bk, (double)(now_ms() - t0) / 1000.0);
	}
	munmap(ctl, PG);
	return tap_done();
}
