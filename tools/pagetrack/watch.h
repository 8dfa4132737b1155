/* SPDX-License-Identifier: MIT */
/*
 * pagetrack watch, between its files (not installed): cmd_watch.c (the
 * command: arguments, the tracker, the intervals, the output) and
 * watch_modes.c (the modes apart from exact tracking: sampling rounds and
 * the budget of --max-overhead / --max-cpu).
 */
#ifndef PT_CLI_WATCH_H
#define PT_CLI_WATCH_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli.h"

#define NSEC		1000000000ULL

struct watch_opts {
	uint64_t interval_ns;
	uint64_t count;			/* 0: until stopped */
	enum pt_track_backend backend;
	bool trust_shared, json;
	unsigned top;
	pid_t pid;
	char **cmd;			/* -- CMD ARGS (NULL-terminated), or NULL */
	bool kill_after_set;		/* --kill-after given */
	uint64_t kill_after_ns;
	bool hot;			/* --hot: hot-page skipping (PT_TRACK_HOT) */
	bool sample;			/* --sample: estimate with a pt_sampler */
	uint32_t sample_per_gib;	/* --sample N (0: auto) */
	double max_overhead;		/* --max-overhead PCT (< 0: no budget) */
	double max_cpu;			/* --max-cpu PCT (pagetrack's CPU for hashing) */
};

/*
 * How the watch counts (doc/cli.md, "Modes and budget"): exactly, with
 * hot-page skipping, with hot-page skipping and the areas that fault the
 * most hashed (the budget's "hash"), or by sampling (estimates).
 * With --max-overhead the budget moves between them each interval.
 */
enum wmode { MODE_EXACT = 0, MODE_HOT, MODE_HASH, MODE_SAMPLE };


struct range {
	uint64_t start, end;
};

/* Sorted, disjoint, non-adjacent ranges. */
struct rangeset {
	struct range *r;
	size_t n, cap;
};

struct topent {
	uint64_t pages;
	size_t idx;
};

enum stop_reason {
	STOP_NONE = 0,
	STOP_COUNT,		/* --count intervals done */
	STOP_SIGNAL,		/* SIGINT / SIGTERM */
	STOP_EXITED,		/* the target exited */
	STOP_OUTPUT,		/* stdout closed or failing */
	STOP_ERROR,		/* runtime error (already reported) */
};


struct watch {
	struct watch_opts o;
	pid_t pid;
	pid_t child;			/* CMD mode: the command, else -1 */
	int child_status;		/* exit status once reaped, else -1 */
	struct pt_target *t;
	struct pt_tracker *tr;
	const char *backend;
	uint64_t page_size;
	struct pt_dirty *buf;
	struct pt_vma *vmas;
	size_t nvmas;
	uint64_t *vpages;		/* per memory area: pages this interval */
	size_t vcap;
	struct topent *top;
	size_t ntop;
	struct rangeset cur, wss, tmp;
	uint64_t cur_pages, wss_pages, unattributed;
	uint64_t f_new, f_zeroed, f_hashed;	/* written pages with each flag, this interval */
	uint64_t f_hole;		/* holes of new areas this interval: not written */
	uint64_t f_hot;			/* written pages reported hot (PT_DIRTY_HOT) */
	uint64_t total_holes;
	uint64_t fb_shown;		/* areas_fallback when the hashed areas were last listed */
	uint64_t t0, prev;		/* CLOCK_MONOTONIC ns: start, previous collect */
	uint64_t intervals, total_pages;
	struct pt_tracker_stats st;	/* after the last round */
	bool layout_new;		/* the target exec'd: the next round's areas are new */
	uint64_t execs;			/* execs followed */
	enum wmode mode;
	struct pt_sampler *smp;		/* MODE_SAMPLE, else NULL (then w->tr is NULL) */
	struct pt_sample_estimate est;	/* MODE_SAMPLE: the total of the last interval */
	struct pt_sample_estimate *est_areas;	/* per area, w->vmas order */
	uint64_t smp_mono, smp_cpu;	/* MODE_SAMPLE: clocks at the last collect */
	/* --max-overhead: what it chose for the next interval, and why */
	bool budget_changed;
	enum wmode budget_next;
	unsigned calm;			/* intervals in a row the exact cost fitted in half */
	char budget_why[256];
	size_t hashed_areas;		/* areas the budget hashes now (MODE_HASH) */
	double hash_ns_page;		/* pagetrack's CPU per hashed page, measured (0: not yet) */
	bool budget_no_hot;		/* the backend can neither skip hot pages nor hash
					   single areas (softdirty): exact <-> sample only */
};

uint64_t watch_now_ns(void);
/* Take @v (@n areas, owned from now on) as the layout of the interval.  0 or -errno. */
int watch_adopt_layout(struct watch *w, struct pt_vma *v, size_t n);
/* Rank the areas by pages written for the top list. */
void watch_rank(struct watch *w);
/* Create the tracker (or sampler) of w->mode on w->pid.  0 or -errno; *@why: a stop. */
int watch_start(struct watch *w, const sigset_t *setupmask, enum stop_reason *why);

/* watch_modes.c */
/* CLOCK_PROCESS_CPUTIME_ID in ns. */
uint64_t watch_self_cpu_ns(void);
int watch_sample_round(struct watch *w);
enum wmode watch_budget_decide(struct watch *w);
/* The length of the first interval (ns): short when the budget must judge fast. */
uint64_t watch_budget_first_ns(struct watch *w);
int watch_switch_mode(struct watch *w, enum wmode m, const sigset_t *setupmask,
		      enum stop_reason *why);

#endif
