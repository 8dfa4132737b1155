// SPDX-License-Identifier: MIT
/*
 * pagetrack watch: the modes apart from exact tracking (doc/cli.md,
 * "Modes and budget"): one sampling round (MODE_SAMPLE), and the budget
 * of --max-overhead / --max-cpu that picks the mode of the next interval.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "watch.h"

/* ---- sampling ---- */

uint64_t watch_self_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

/*
 * MODE_SAMPLE: one interval of estimates.  The areas are the target's
 * layout now; an area the sample drew from that is gone since counts in
 * the total only.  The working set is not known: it stays as the exact
 * intervals left it.  Stats are zero but for the clocks (the sampler
 * charges the target nothing).  Returns 0 or -errno.
 */
int watch_sample_round(struct watch *w)
{
	uint64_t mono = watch_now_ns(), cpu = watch_self_cpu_ns(), rounds = w->st.rounds;
	struct pt_sample_estimate *ar;
	struct pt_vma *v = NULL;
	size_t n = 0, k = 0;
	int na, err;

	err = pt_vmas_read(w->t, &v, &n);
	if (err < 0)
		return err;
	ar = calloc(n + 64, sizeof(*ar));
	if (!ar) {
		pt_vmas_free(v);
		return -ENOMEM;
	}
	na = pt_sampler_collect(w->smp, &w->est, ar, n + 64);
	if (na < 0 || (err = watch_adopt_layout(w, v, n)) < 0) {
		free(ar);
		return na < 0 ? na : err;
	}
	if ((size_t)na > n + 64)
		na = (int)(n + 64);
	for (int i = 0; i < na; i++) {
		while (k < w->nvmas && w->vmas[k].end <= ar[i].start)
			k++;
		if (k < w->nvmas && w->vmas[k].start == ar[i].start) {
			w->est_areas[k] = ar[i];
			w->vpages[k] = ar[i].est;
		}
	}
	free(ar);
	w->cur.n = 0;
	w->f_new = w->f_zeroed = w->f_hashed = w->f_hole = w->f_hot = 0;
	w->unattributed = 0;
	w->cur_pages = w->est.est;
	w->total_pages += w->cur_pages;
	watch_rank(w);
	w->st = (struct pt_tracker_stats){ .sz = sizeof(w->st), .rounds = rounds + 1 };
	w->st.interval_ns = mono - w->smp_mono;
	w->st.self_cpu_ns = cpu - w->smp_cpu;
	w->st.collect_ns = watch_now_ns() - mono;
	w->smp_mono = mono;
	w->smp_cpu = cpu;
	return 0;
}

/* ---- the budget (--max-overhead, --max-cpu) ---- */

#define CALM_INTERVALS 3	/* intervals the exact cost must fit in half before going back */
#define FIRST_SHARE 10		/* a short first interval: 1/FIRST_SHARE of the interval, */
#define FIRST_MIN_NS 10000000ULL	/* at least 10 ms */

/* The target's data pages (VmRSS + VmSwap): no area hashes more than that. */
static uint64_t data_pages(const struct watch *w)
{
	char path[64], buf[4096], *p;
	uint64_t kb = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)w->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	if ((p = strstr(buf, "VmRSS:")))
		kb += strtoull(p + 6, NULL, 10);
	if ((p = strstr(buf, "VmSwap:")))
		kb += strtoull(p + 7, NULL, 10);
	return kb * 1024 / w->page_size;
}

/*
 * The first interval of a budget that starts exact: a tenth of the
 * interval (at least 10 ms) when the target's data pages, all written
 * once, would cost more than the budget in one interval, so that a
 * target as dear as that is not tracked exactly for a whole interval
 * before the budget can act (where a fault costs ~20 us, a 256 MiB random
 * writer lost ~80% of an interval).  Its faults, counted against the full
 * interval (watch_budget_decide()), are a lower bound of what a whole
 * exact interval would cost.  Else the interval itself.
 */
uint64_t watch_budget_first_ns(struct watch *w)
{
	uint64_t ivl = w->o.interval_ns, cost = 0, first = ivl / FIRST_SHARE;

	if (w->o.max_overhead <= 0 || w->mode != MODE_EXACT || !w->tr)
		return ivl;
	pt_fault_cost_ns(&cost, NULL);	/* cached: the tracker measured it */
	if ((double)data_pages(w) * (double)cost * 100.0 <= w->o.max_overhead * (double)ivl)
		return ivl;
	return first < FIRST_MIN_NS ? (ivl < FIRST_MIN_NS ? ivl : FIRST_MIN_NS) : first;
}

/* An area of the last round the budget may hash: its faults and its hashing cost. */
struct cand {
	size_t idx;		/* in w->vmas */
	uint64_t faulted;	/* pages it made the target fault last interval */
	uint64_t pages;		/* pages hashing it reads per interval, at most */
	double score;		/* faults saved per page hashed */
};

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return x->score < y->score ? 1 : x->score > y->score ? -1 : (x->idx > y->idx) - (x->idx < y->idx);
}

/* "anon 7f..": what an area is, for a reason line. */
static const char *area_name(const struct watch *w, size_t i, char *out, size_t len)
{
	const struct pt_vma *v = &w->vmas[i];
	const char *path = v->path && v->path[0] ? strrchr(v->path, '/') : NULL;

	snprintf(out, len, "%s %" PRIx64, path ? path + 1 : pt_vma_kind_name((enum pt_vma_kind)v->kind),
		 v->start);
	return out;
}

/*
 * Areas hashed by the budget now, and what they cost: their pages hashed
 * last interval.  The largest is *@big (SIZE_MAX if none).
 */
static size_t budget_hashed(const struct watch *w, size_t *big)
{
	uint64_t most = 0;
	size_t n = 0;

	*big = SIZE_MAX;
	for (size_t i = 0; i < w->nvmas; i++) {
		struct pt_track_area a = { .sz = sizeof(a) };

		if (pt_tracker_area(w->tr, w->vmas[i].start, &a) || a.reason != PT_AREA_REASON_BUDGET)
			continue;
		n++;
		if (*big == SIZE_MAX || a.pages_hashed > most) {
			most = a.pages_hashed;
			*big = i;
		}
	}
	return n;
}

/* Move every budget-hashed area back to the backend; how many. */
static size_t unhash_all(struct watch *w)
{
	size_t n = 0;

	for (size_t i = 0; i < w->nvmas; i++) {
		struct pt_track_area a = { .sz = sizeof(a) };

		if (!pt_tracker_area(w->tr, w->vmas[i].start, &a) && a.reason == PT_AREA_REASON_BUDGET &&
		    !pt_tracker_set_area_method(w->tr, w->vmas[i].start, PT_AREA_BACKEND))
			n++;
	}
	return n;
}

/*
 * Hash the areas whose faults cost the target most per page hashed, as
 * many as fit in @room_ns of pagetrack's CPU per interval (at the
 * measured w->hash_ns_page) and are needed to save @need_ns of the
 * target's fault time.  Without a measured cost yet, only the best area
 * (its first rounds measure it).  Returns how many were moved, -errno
 * (-EOPNOTSUPP: the backend cannot hash single areas); *@first: the
 * best one's index, *@cpu_ns its estimated cost.
 */
static int hash_areas(struct watch *w, double room_ns, double need_ns, uint64_t fault_ns,
		      size_t *first, double *cpu_ns)
{
	uint64_t cap = data_pages(w);
	struct cand *c = calloc(w->nvmas ? w->nvmas : 1, sizeof(*c));
	size_t nc = 0;
	int moved = 0, err = 0;

	*first = SIZE_MAX;
	*cpu_ns = 0;
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < w->nvmas; i++) {
		struct pt_track_area a = { .sz = sizeof(a) };
		uint64_t pages = (w->vmas[i].end - w->vmas[i].start) / w->page_size;

		if (pt_tracker_area(w->tr, w->vmas[i].start, &a) || a.method != PT_AREA_BACKEND ||
		    !a.pages_faulted)
			continue;
		if (cap && pages > cap)
			pages = cap;
		c[nc++] = (struct cand){ .idx = i, .faulted = a.pages_faulted, .pages = pages,
					 .score = (double)a.pages_faulted / (double)(pages ? pages : 1) };
	}
	qsort(c, nc, sizeof(*c), cmp_cand);
	for (size_t k = 0; k < nc && need_ns > 0; k++) {
		double cost = (double)c[k].pages * w->hash_ns_page;

		if (w->hash_ns_page > 0 && cost > room_ns)
			continue;	/* a smaller one further down may fit */
		err = pt_tracker_set_area_method(w->tr, w->vmas[c[k].idx].start, PT_AREA_HASHED);
		if (err)
			break;
		if (!moved)
			*first = c[k].idx;
		moved++;
		*cpu_ns += cost;
		room_ns -= cost;
		need_ns -= (double)c[k].faulted * (double)fault_ns;
		if (w->hash_ns_page <= 0)
			break;	/* one, to measure the cost */
	}
	free(c);
	return err && !moved ? err : moved;
}

/*
 * Choose the mode of the next interval from what this one measured, and
 * say why in w->budget_why.  Up the ladder exact -> hot -> hash -> sample
 * while the target's overhead is over its budget.  "hash" is hot-page
 * skipping with the areas that cost the target the most faults per page
 * moved to content hashing (pt_tracker_set_area_method()), as many as fit
 * in --max-cpu at the measured cost of hashing a page; sample when no
 * more fits and the overhead is still over.  Areas are moved back (the
 * largest first) when hashing takes more than --max-cpu, and all of them
 * once exact tracking of what was written would have cost at most half
 * the budget, CALM_INTERVALS intervals in a row.  A backend that can
 * neither skip hot pages nor hash single areas (softdirty: clear_refs
 * re-arms the whole process) has no rung between exact and sample: an
 * interval in hot there would cost what exact costs, over the budget.
 */
static enum wmode budget_decide(struct watch *w, double *nom_out);

enum wmode watch_budget_decide(struct watch *w)
{
	double nom = 0;
	enum wmode m = budget_decide(w, &nom);
	size_t n = strlen(w->budget_why);

	if (nom > (double)w->st.interval_ns && n < sizeof(w->budget_why))
		snprintf(w->budget_why + n, sizeof(w->budget_why) - n, " (a short first interval, "
			 "%.0f ms: its faults against a whole one)", (double)w->st.interval_ns / 1e6);
	return m;
}

static enum wmode budget_decide(struct watch *w, double *nom_out)
{
	double B = w->o.max_overhead, C = w->o.max_cpu, ivl = (double)w->st.interval_ns;
	double over, exact, hcpu, est = 0, nom;
	enum wmode m = w->mode;
	uint64_t cost = 0;
	char *y = w->budget_why, name[64];
	size_t ylen = sizeof(w->budget_why), big = SIZE_MAX, first;
	int moved;

	pt_fault_cost_ns(&cost, NULL);	/* cached; measured once if sampling from the start */
	if (ivl <= 0) {
		snprintf(y, ylen, "nothing measured yet");
		return m;
	}
	/*
	 * Against the interval asked for when the first one was shorter
	 * (watch_budget_first_ns()): faults of part of an interval are
	 * a lower bound of a whole one's, never blown up to a rate.  (What
	 * exact would cost, which may bring exact tracking back, stays per
	 * the interval measured: the higher figure.)
	 */
	nom = w->intervals <= 1 && ivl < (double)w->o.interval_ns ? (double)w->o.interval_ns : ivl;
	*nom_out = nom;
	over = (double)w->st.est_fault_ns * 100.0 / nom;
	exact = (double)w->cur_pages * (double)cost * 100.0 / ivl;
	hcpu = (double)w->st.hash_cpu_ns * 100.0 / ivl;
	if (w->st.pages_hashed && w->st.hash_cpu_ns)	/* measured, not assumed */
		w->hash_ns_page = (double)w->st.hash_cpu_ns / (double)w->st.pages_hashed;
	w->calm = exact <= B / 2 ? w->calm + 1 : 0;
	w->hashed_areas = m == MODE_HASH && w->tr ? budget_hashed(w, &big) : 0;
	if (w->tr)	/* kept for the way back from sample, which has no tracker */
		w->budget_no_hot = pt_tracker_backend(w->tr) != PT_TRACK_UFFD;
	switch (m) {
	case MODE_EXACT:
		if (over <= B) {
			snprintf(y, ylen, "overhead %.1f%% within %.3g%%", over, B);
			return m;
		}
		if (w->budget_no_hot) {
			snprintf(y, ylen, "overhead %.1f%% > %.3g%%, %s can neither skip hot pages nor "
				 "hash single areas: sample", over, B, w->backend);
			return MODE_SAMPLE;
		}
		snprintf(y, ylen, "overhead %.1f%% > %.3g%%: skip hot pages", over, B);
		return MODE_HOT;
	case MODE_HOT:
	case MODE_HASH:
		if (m == MODE_HASH && hcpu > C) {
			if (big != SIZE_MAX)
				pt_tracker_set_area_method(w->tr, w->vmas[big].start, PT_AREA_BACKEND);
			snprintf(y, ylen, "hashing took %.1f%% CPU > %.3g%%: %s tracked by %s again", hcpu,
				 C, big != SIZE_MAX ? area_name(w, big, name, sizeof(name)) : "none",
				 w->backend);
			w->hashed_areas -= big != SIZE_MAX;
			return w->hashed_areas ? MODE_HASH : MODE_HOT;
		}
		if (over <= B) {
			if (m == MODE_HASH && w->calm >= CALM_INTERVALS) {
				size_t n = unhash_all(w);

				w->hashed_areas = 0;
				snprintf(y, ylen, "exact would cost ~%.1f%% <= %.3g%%/2 for %u intervals: "
					 "%zu areas tracked by %s again", exact, B, w->calm, n, w->backend);
				return MODE_HOT;
			}
			snprintf(y, ylen, "overhead %.1f%% within %.3g%% (hot pages skipped%s)", over, B,
				 w->hashed_areas ? ", areas hashed" : "");
			return m;
		}
		moved = hash_areas(w, (C - hcpu) / 100.0 * ivl, (over - B) / 100.0 * ivl, cost, &first, &est);
		if (moved > 0) {
			w->hashed_areas += (size_t)moved;
			if (w->hash_ns_page > 0)
				snprintf(y, ylen, "overhead %.1f%% > %.3g%%: hash %d more areas (most faults "
					 "per page: %s), ~%.1f%% CPU at %.0f ns/page, total <= %.3g%%", over, B,
					 moved, area_name(w, first, name, sizeof(name)), est * 100.0 / ivl,
					 w->hash_ns_page, C);
			else
				snprintf(y, ylen, "overhead %.1f%% > %.3g%%: hash %s (most faults per page), "
					 "measuring the CPU it takes", over, B,
					 area_name(w, first, name, sizeof(name)));
			return MODE_HASH;
		}
		if (moved == -EOPNOTSUPP)
			snprintf(y, ylen, "overhead %.1f%% > %.3g%% with hot pages, %s cannot hash single "
				 "areas: sample", over, B, w->backend);
		else
			snprintf(y, ylen, "overhead %.1f%% > %.3g%% with hot pages%s, no more area fits "
				 "%.3g%% CPU (hashing %.1f%%, %.0f ns/page): sample", over, B,
				 w->hashed_areas ? " and hashed areas" : "", C, hcpu, w->hash_ns_page);
		return MODE_SAMPLE;
	case MODE_SAMPLE:
		break;
	}
	if (w->calm >= CALM_INTERVALS) {
		snprintf(y, ylen, "exact would cost ~%.1f%% <= %.3g%%/2 for %u intervals: %s", exact,
			 B, w->calm, w->budget_no_hot ? "exact" : "hot pages");
		return w->budget_no_hot ? MODE_EXACT : MODE_HOT;
	}
	snprintf(y, ylen, "sampling: target overhead 0%%, exact would cost ~%.1f%% (budget %.3g%%)",
		 exact, B);
	return m;
}

/*
 * Go to mode @m: hot and hash share one tracker (hash only moves areas),
 * the others free the tracker (or sampler) and create the next.  0 or
 * -errno.
 */
int watch_switch_mode(struct watch *w, enum wmode m, const sigset_t *setupmask,
		      enum stop_reason *why)
{
	if (w->tr && (w->mode == MODE_HOT || w->mode == MODE_HASH) &&
	    (m == MODE_HOT || m == MODE_HASH)) {
		w->mode = m;
		return 0;
	}
	pt_tracker_free(w->tr);
	w->tr = NULL;
	pt_sampler_free(w->smp);
	w->smp = NULL;
	w->mode = m;
	w->calm = 0;
	w->hashed_areas = 0;
	return watch_start(w, setupmask, why);
}
