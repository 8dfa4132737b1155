// SPDX-License-Identifier: MIT
/*
 * pagetrack watch: the modes apart from exact tracking (doc/cli.md,
 * "Modes and budget"): one sampling round (MODE_SAMPLE), and the budget
 * of --max-overhead / --max-cpu that picks the mode of the next interval.
 */
#include <errno.h>
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

#define HASH_NS_PER_PAGE 1000	/* assumed CPU to hash one page; measured once hashing */
#define CALM_INTERVALS 3	/* intervals the exact cost must fit in half before going back */

/* The target's data pages (VmRSS + VmSwap), what the hash backend reads per round. */
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
 * Choose the mode of the next interval from what this one measured, and
 * say why in w->budget_why.  Up the ladder exact -> hot -> hash -> sample
 * while the target's overhead (or, hashing, pagetrack's CPU) is over its
 * budget; back down to hot once exact tracking of what was written would
 * have cost at most half the budget, CALM_INTERVALS intervals in a row.
 */
enum wmode watch_budget_decide(struct watch *w)
{
	double B = w->o.max_overhead, C = w->o.max_cpu, ivl = (double)w->st.interval_ns;
	double over, exact, cpu, hash_cpu;
	enum wmode m = w->mode;
	uint64_t cost = 0;
	char *y = w->budget_why;
	size_t ylen = sizeof(w->budget_why);

	pt_fault_cost_ns(&cost, NULL);	/* cached; measured once if sampling from the start */
	if (ivl <= 0) {
		snprintf(y, ylen, "nothing measured yet");
		return m;
	}
	over = (double)w->st.est_fault_ns * 100.0 / ivl;
	exact = (double)w->cur_pages * (double)cost * 100.0 / ivl;
	cpu = (double)w->st.self_cpu_ns * 100.0 / ivl;
	w->calm = exact <= B / 2 ? w->calm + 1 : 0;
	switch (m) {
	case MODE_EXACT:
		if (over <= B) {
			snprintf(y, ylen, "overhead %.1f%% within %.3g%%", over, B);
			return m;
		}
		snprintf(y, ylen, "overhead %.1f%% > %.3g%%: skip hot pages", over, B);
		return MODE_HOT;
	case MODE_HOT:
		if (over <= B) {
			snprintf(y, ylen, "overhead %.1f%% within %.3g%% (hot pages skipped)", over, B);
			return m;
		}
		hash_cpu = (double)data_pages(w) * HASH_NS_PER_PAGE * 100.0 / ivl;
		if (hash_cpu <= C) {
			snprintf(y, ylen, "overhead %.1f%% > %.3g%% with hot pages: hash (~%.0f%% CPU "
				 "<= %.3g%%)", over, B, hash_cpu, C);
			return MODE_HASH;
		}
		snprintf(y, ylen, "overhead %.1f%% > %.3g%% with hot pages, hashing ~%.0f%% CPU > "
			 "%.3g%%: sample", over, B, hash_cpu, C);
		return MODE_SAMPLE;
	case MODE_HASH:
		if (cpu > C) {
			snprintf(y, ylen, "hashing took %.0f%% CPU > %.3g%%: sample", cpu, C);
			return MODE_SAMPLE;
		}
		break;
	case MODE_SAMPLE:
		break;
	}
	if (w->calm >= CALM_INTERVALS) {
		snprintf(y, ylen, "exact would cost ~%.1f%% <= %.3g%%/2 for %u intervals: hot pages",
			 exact, B, w->calm);
		return MODE_HOT;
	}
	snprintf(y, ylen, "%s: target overhead 0%%, exact would cost ~%.1f%% (budget %.3g%%)",
		 m == MODE_HASH ? "hashing" : "sampling", exact, B);
	return m;
}

/* Leave the current tracker (or sampler) for one of mode @m.  0 or -errno. */
int watch_switch_mode(struct watch *w, enum wmode m, const sigset_t *setupmask,
		       enum stop_reason *why)
{
	pt_tracker_free(w->tr);
	w->tr = NULL;
	pt_sampler_free(w->smp);
	w->smp = NULL;
	w->mode = m;
	w->calm = 0;
	return watch_start(w, setupmask, why);
}
