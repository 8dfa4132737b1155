/* SPDX-License-Identifier: MIT */
/*
 * pagetrack watch: per interval, the pages a process wrote, per memory
 * area and in total, and the write working set since the start.
 *
 * Memory is proportional to written *ranges*, never to pages: one fixed
 * collect buffer, the merged ranges of the current interval, the merged
 * ranges written since the start (the working set), and one counter per
 * memory area of the current layout.
 *
 * Leaving the target as found is the tracker's job (pt_tracker_free()
 * disarms it); ours is to reach pt_tracker_free() on every exit path we
 * control: SIGINT, SIGTERM, SIGPIPE (stdout closed), the end of --count,
 * errors.  SIGINT/SIGTERM/SIGCHLD stay blocked except while we sleep in
 * ppoll(), so a signal can never land between a check and the sleep, and
 * while pt_tracker_create() runs (SIGINT/SIGTERM only: set-up can take a
 * fraction of a second, and a stop must not wait for it to end; the
 * library retries what a signal interrupts).
 *
 * A target that execs keeps its pid but gets a new address space: the
 * tracker of the old one fails with -ESRCH.  watch then tracks the new
 * program with a new tracker (follow_exec()).
 *
 * The JSON output (one object per line) is a stable interface:
 * doc/watch-json.md, doc/watch.schema.json.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "watch.h"

static const char *const mode_ids[] = {
	[MODE_EXACT] = "exact", [MODE_HOT] = "hot", [MODE_HASH] = "hash", [MODE_SAMPLE] = "sample",
};

static const char *const stop_ids[] = {
	[STOP_NONE] = "none", [STOP_COUNT] = "count", [STOP_SIGNAL] = "signal",
	[STOP_EXITED] = "target_exited", [STOP_OUTPUT] = "output_closed",
	[STOP_ERROR] = "error",
};

#define COLLECT_BUF	4096		/* pt_dirty entries per collect call */
#define TOP_DEFAULT	5
#define TOP_MAX		100000
#define INTERVAL_MIN_NS	(10ULL * 1000 * 1000)		/* 10 ms */
#define INTERVAL_MAX_NS	(24ULL * 3600 * 1000000000)	/* a day */
#define KILL_GRACE_NS	(2 * NSEC)	/* --kill-after: from SIGTERM to SIGKILL */


/* ---- signals ---- */

static volatile sig_atomic_t stop_signal;	/* SIGINT/SIGTERM received */
static volatile sig_atomic_t stop_forward;	/* ... and sent by a process, not the tty */
static volatile sig_atomic_t child_event;	/* SIGCHLD */

static void on_stop(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	stop_signal = sig;
	/*
	 * SI_USER, SI_QUEUE, SI_TKILL (<= 0): someone ran kill() on pagetrack
	 * alone.  A tty's ^C (SI_KERNEL) already went to the whole foreground
	 * group, the command included: forwarding it would deliver it twice.
	 */
	if (si && si->si_code <= 0)
		stop_forward = 1;
}

static void on_child(int sig)
{
	(void)sig;
	child_event = 1;
}

/* Install the handlers (no SA_RESTART) and block the signals; @orig gets the old mask. */
static int signals_setup(sigset_t *orig)
{
	struct sigaction sa = { 0 };
	sigset_t block;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &block, orig) < 0)
		return -errno;
	sa.sa_sigaction = on_stop;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return -errno;
	sa.sa_flags = SA_NOCLDSTOP;
	sa.sa_handler = on_child;
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		return -errno;
	/* A closed stdout must end the watch through pt_tracker_free(), not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

uint64_t watch_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

/*
 * Sleep until @deadline or until a signal arrives.  The signals are only
 * unblocked inside ppoll(), atomically, so none is missed.
 */
static void sleep_until(uint64_t deadline, const sigset_t *waitmask)
{
	uint64_t now = watch_now_ns();
	struct timespec ts;

	if (now >= deadline)
		return;
	ts.tv_sec = (time_t)((deadline - now) / NSEC);
	ts.tv_nsec = (long)((deadline - now) % NSEC);
	ppoll(NULL, 0, &ts, waitmask);
}

/* ---- the command (-- CMD ARGS) ---- */

/*
 * Start @cmd.  A close-on-exec pipe tells when exec is done: EOF means the
 * new program is in place (its mm is the one to track), a 4-byte errno
 * means exec failed.  The command runs from then on; whatever it writes
 * before the tracker is armed is not counted (doc/watch-json.md).
 */
static int spawn(char **cmd, const sigset_t *origmask, pid_t *out)
{
	int p[2], e = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		/* Ignored and blocked signals survive exec: give the command ours. */
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigprocmask(SIG_SETMASK, origmask, NULL);
		close(p[0]);
		execvp(cmd[0], cmd);
		e = errno;
		if (write(p[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(p[1]);
	do
		n = read(p[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		return -(e ? e : ENOEXEC);
	}
	*out = pid;
	return 0;
}

/* Shell convention: the exit code, or 128 + the signal that killed it. */
static int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return PT_EXIT_RUNTIME;
}

/* Reap the command if it ended (@block: wait for it).  True once reaped. */
static bool reap_child(struct watch *w, bool block)
{
	int st;
	pid_t r;

	if (w->child <= 0 || w->child_status >= 0)
		return w->child_status >= 0;
	do
		r = waitpid(w->child, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == w->child)
		w->child_status = status_code(st);
	else if (r < 0)
		w->child_status = PT_EXIT_RUNTIME;	/* reaped elsewhere: status unknown */
	return w->child_status >= 0;
}

/*
 * After the watch: wait for the command, forwarding SIGINT/SIGTERM that
 * were sent to pagetrack alone (see on_stop()).  With --kill-after, at
 * most that long: then SIGTERM, and SIGKILL KILL_GRACE_NS later.
 */
static void wait_child(struct watch *w, const sigset_t *waitmask)
{
	uint64_t kill_at = w->o.kill_after_set ? watch_now_ns() + w->o.kill_after_ns : UINT64_MAX;
	int sig = SIGTERM;

	while (!reap_child(w, false)) {
		uint64_t now = watch_now_ns();

		if (stop_signal && stop_forward) {
			kill(w->child, stop_signal);
			stop_forward = 0;
		}
		if (now >= kill_at) {
			kill(w->child, sig);
			if (sig == SIGKILL) {
				reap_child(w, true);
				break;
			}
			sig = SIGKILL;
			kill_at = now + KILL_GRACE_NS;
			continue;
		}
		sleep_until(kill_at < now + NSEC ? kill_at : now + NSEC, waitmask);
	}
}

/* ---- ranges ---- */

static int rangeset_reserve(struct rangeset *s, size_t n)
{
	struct range *r;
	size_t cap;

	if (n <= s->cap)
		return 0;
	cap = s->cap ? s->cap : 256;
	while (cap < n)
		cap *= 2;
	r = realloc(s->r, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	s->r = r;
	s->cap = cap;
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort @s and merge overlapping or adjacent ranges; returns the pages covered. */
static uint64_t rangeset_normalize(struct rangeset *s, uint64_t page_size)
{
	uint64_t pages = 0;
	size_t o = 0;

	if (s->n > 1)
		qsort(s->r, s->n, sizeof(*s->r), cmp_range);
	for (size_t i = 0; i < s->n; i++) {
		if (o && s->r[i].start <= s->r[o - 1].end) {
			if (s->r[i].end > s->r[o - 1].end)
				s->r[o - 1].end = s->r[i].end;
			continue;
		}
		s->r[o++] = s->r[i];
	}
	s->n = o;
	for (size_t i = 0; i < o; i++)
		pages += (s->r[i].end - s->r[i].start) / page_size;
	return pages;
}

/* @out = @a ∪ @b (both normalized); returns the pages covered or -ENOMEM. */
static int64_t rangeset_union(const struct rangeset *a, const struct rangeset *b,
			      struct rangeset *out, uint64_t page_size)
{
	size_t i = 0, k = 0;
	uint64_t pages = 0;

	if (rangeset_reserve(out, a->n + b->n) < 0)
		return -ENOMEM;
	out->n = 0;
	while (i < a->n || k < b->n) {
		const struct range *r;

		if (k >= b->n || (i < a->n && a->r[i].start <= b->r[k].start))
			r = &a->r[i++];
		else
			r = &b->r[k++];
		if (out->n && r->start <= out->r[out->n - 1].end) {
			if (r->end > out->r[out->n - 1].end)
				out->r[out->n - 1].end = r->end;
		} else {
			out->r[out->n++] = *r;
		}
	}
	for (size_t n = 0; n < out->n; n++)
		pages += (out->r[n].end - out->r[n].start) / page_size;
	return (int64_t)pages;
}

/* ---- one interval ---- */

/*
 * The layout the tracker used for the round being handed out: every page
 * it reports is in one of its areas, which a maps read of our own, made
 * later, would not promise (the target maps and unmaps meanwhile).
 */
int watch_adopt_layout(struct watch *w, struct pt_vma *v, size_t n)
{
	if (n > w->vcap) {
		uint64_t *p = realloc(w->vpages, n * sizeof(*p));
		struct topent *t = p ? realloc(w->top, n * sizeof(*t)) : NULL;
		struct pt_sample_estimate *e = t ? realloc(w->est_areas, n * sizeof(*e)) : NULL;

		if (p)
			w->vpages = p;
		if (t)
			w->top = t;
		if (!e) {
			pt_vmas_free(v);
			return -ENOMEM;
		}
		w->est_areas = e;
		w->vcap = n;
	}
	pt_vmas_free(w->vmas);
	w->vmas = v;
	w->nvmas = n;
	if (n) {
		memset(w->vpages, 0, n * sizeof(*w->vpages));
		memset(w->est_areas, 0, n * sizeof(*w->est_areas));
	}
	return 0;
}

static int read_layout(struct watch *w)
{
	struct pt_vma *v = NULL;
	size_t n = 0;
	int err = pt_tracker_vmas(w->tr, &v, &n);

	return err < 0 ? err : watch_adopt_layout(w, v, n);
}

/*
 * Count the merged ranges of this interval per memory area.  Both lists
 * are sorted, so one pass does it.  Pages outside every area cannot
 * happen (the layout is the round's own); they would be counted apart,
 * as unattributed_pages, rather than lost.
 */
static void attribute(struct watch *w)
{
	uint64_t ps = w->page_size;
	size_t v = 0;

	w->unattributed = 0;
	for (size_t i = 0; i < w->cur.n; i++) {
		uint64_t s = w->cur.r[i].start, e = w->cur.r[i].end;

		while (s < e) {
			uint64_t ve;

			while (v < w->nvmas && w->vmas[v].end <= s)
				v++;
			if (v == w->nvmas || w->vmas[v].start >= e) {
				w->unattributed += (e - s) / ps;
				break;
			}
			if (w->vmas[v].start > s) {
				w->unattributed += (w->vmas[v].start - s) / ps;
				s = w->vmas[v].start;
			}
			ve = w->vmas[v].end < e ? w->vmas[v].end : e;
			w->vpages[v] += (ve - s) / ps;
			s = ve;
		}
	}
}

static int cmp_top(const void *a, const void *b)
{
	const struct topent *x = a, *y = b;

	if (x->pages != y->pages)
		return x->pages > y->pages ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void watch_rank(struct watch *w)
{
	w->ntop = 0;
	for (size_t i = 0; i < w->nvmas; i++)
		if (w->vpages[i])
			w->top[w->ntop++] = (struct topent){ .pages = w->vpages[i], .idx = i };
	if (w->ntop > 1)
		qsort(w->top, w->ntop, sizeof(*w->top), cmp_top);
	if (w->ntop > w->o.top)
		w->ntop = w->o.top;
}

static void count_flags(struct watch *w, const struct pt_dirty *d)
{
	uint64_t n = (d->end - d->start) / w->page_size;

	if (d->flags & PT_DIRTY_HOLE) {	/* no data, never written: counted apart */
		w->f_hole += n;
		return;
	}
	if (d->flags & PT_DIRTY_NEW)
		w->f_new += n;
	if (d->flags & PT_DIRTY_ZEROED)
		w->f_zeroed += n;
	if (d->flags & PT_DIRTY_HASHED)
		w->f_hashed += n;
	if (d->flags & PT_DIRTY_HOT)
		w->f_hot += n;
}


/*
 * One collect round: harvest until !more, take the round's layout from
 * the tracker after the first call (it stays the same while the round is
 * handed out), then attribute, rank and add to the working set.
 * Returns 0 or -errno.
 */
static int collect_round(struct watch *w)
{
	bool more = true, first = true;
	int64_t wss;
	int err;

	if (w->mode == MODE_SAMPLE)
		return watch_sample_round(w);
	w->cur.n = 0;
	w->f_new = w->f_zeroed = w->f_hashed = w->f_hole = w->f_hot = 0;
	while (more) {
		int n = pt_tracker_collect(w->tr, w->buf, COLLECT_BUF, &more);

		if (n < 0)
			return n;
		if (first) {
			err = read_layout(w);
			if (err < 0)
				return err;
			first = false;
		}
		if (rangeset_reserve(&w->cur, w->cur.n + (size_t)n) < 0)
			return -ENOMEM;
		for (int i = 0; i < n; i++) {
			if (w->buf[i].end <= w->buf[i].start)
				continue;
			count_flags(w, &w->buf[i]);
			/*
			 * A hole of a new area holds no data: it was not written,
			 * so it is no part of the pages written, MB/s or the
			 * working set (a PROT_NONE arena, calloc'd memory).
			 */
			if (w->buf[i].flags & PT_DIRTY_HOLE)
				continue;
			w->cur.r[w->cur.n++] = (struct range){ w->buf[i].start, w->buf[i].end };
		}
		if (n == 0)
			break;	/* a round that says "more" but gives nothing: don't spin */
	}
	if (w->layout_new) {
		/*
		 * The first round on a program that exec'd: what it wrote
		 * before the new tracker was armed is unknown, so all of its
		 * areas are reported as new, whole.
		 */
		if (rangeset_reserve(&w->cur, w->cur.n + w->nvmas) < 0)
			return -ENOMEM;
		for (size_t i = 0; i < w->nvmas; i++)
			w->cur.r[w->cur.n++] = (struct range){ w->vmas[i].start, w->vmas[i].end };
	}
	w->cur_pages = rangeset_normalize(&w->cur, w->page_size);
	if (w->layout_new) {
		w->f_new = w->cur_pages;
		w->layout_new = false;
	}
	attribute(w);
	watch_rank(w);
	wss = rangeset_union(&w->wss, &w->cur, &w->tmp, w->page_size);
	if (wss < 0)
		return (int)wss;
	{
		struct rangeset t = w->wss;

		w->wss = w->tmp;
		w->tmp = t;
	}
	w->wss_pages = (uint64_t)wss;
	w->total_pages += w->cur_pages;
	w->total_holes += w->f_hole;
	w->st.sz = sizeof(w->st);
	if (pt_tracker_stats(w->tr, &w->st) < 0)
		w->st = (struct pt_tracker_stats){ .sz = sizeof(w->st) };
	return 0;
}


/* ---- output ---- */

static double mb_per_s(uint64_t bytes, double secs)
{
	return secs > 0 ? (double)bytes / 1e6 / secs : 0;
}

/* @ns as a percentage of the last round's interval (0 before the first). */
static double pct_of_interval(const struct watch *w, uint64_t ns)
{
	return w->st.interval_ns ? (double)ns * 100.0 / (double)w->st.interval_ns : 0;
}

/* The cost of tracking, over the interval the last round closed (doc/watch-json.md). */
static void json_overhead(struct json *j, const struct watch *w)
{
	uint64_t cost = 0;

	pt_fault_cost_ns(&cost, NULL);	/* measured by pt_tracker_create(): cached */
	json_obj_begin(j, "overhead");
	json_uint(j, "fault_cost_ns", cost);
	json_double(j, "target_pct", pct_of_interval(w, w->st.est_fault_ns));
	json_double(j, "target_cpu_pct", pct_of_interval(w, w->st.target_cpu_ns));
	json_double(j, "self_cpu_pct", pct_of_interval(w, w->st.self_cpu_ns));
	json_obj_end(j);
}

static void json_stats(struct json *j, const struct watch *w)
{
	/* Zeros before the first round. */
	json_obj_begin(j, "stats");
	json_uint(j, "rounds", w->st.rounds);
	json_uint(j, "pages_dirty", w->st.pages_dirty);
	json_uint(j, "pages_new", w->st.pages_new);
	json_uint(j, "pages_hole", w->st.pages_hole);
	json_uint(j, "pages_hashed", w->st.pages_hashed);
	json_uint(j, "areas_fallback", w->st.areas_fallback);
	json_uint(j, "collect_ns", w->st.collect_ns);
	json_uint(j, "pause_ns_max", w->st.pause_ns_max);
	json_uint(j, "pause_total_ns_max", w->st.pause_total_ns_max);
	json_uint(j, "leftovers_closed", w->st.leftovers_closed);
	json_uint(j, "interval_ns", w->st.interval_ns);
	json_uint(j, "pages_faulted", w->st.pages_faulted);
	json_uint(j, "est_fault_ns", w->st.est_fault_ns);
	json_uint(j, "target_minflt", w->st.target_minflt);
	json_uint(j, "target_cpu_ns", w->st.target_cpu_ns);
	json_uint(j, "self_cpu_ns", w->st.self_cpu_ns);
	json_uint(j, "pages_hot", w->st.pages_hot);
	json_uint(j, "pages_rearmed", w->st.pages_rearmed);
	json_uint(j, "hot_rounds", w->st.hot_rounds);
	json_uint(j, "hot_lease", w->st.hot_lease);
	json_str(j, "auto_uffd_error", w->st.auto_uffd_err ? errno_name(w->st.auto_uffd_err) : NULL);
	json_str(j, "auto_softdirty_error",
		 w->st.auto_softdirty_err ? errno_name(w->st.auto_softdirty_err) : NULL);
	json_obj_end(j);
}

/* Which method tracked the area, and why it is hashed when it is. */
static void json_tracked_by(struct json *j, const struct watch *w, const struct pt_vma *v)
{
	struct pt_track_area a = { .sz = sizeof(a) };
	bool hashed = pt_tracker_area(w->tr, v->start, &a) == 0 && a.method == PT_AREA_HASHED;

	json_str(j, "tracked_by", hashed ? "hash" : w->backend);
	json_str(j, "hash_reason", hashed ? pt_area_reason_name((enum pt_area_reason)a.reason)
				   : NULL);
}

/* An estimate (MODE_SAMPLE): the figure, its 95% interval, the sample. */
static void json_estimate(struct json *j, const char *key, const struct pt_sample_estimate *e)
{
	json_obj_begin(j, key);
	json_uint(j, "pages", e->est);
	json_uint(j, "lo", e->lo);
	json_uint(j, "hi", e->hi);
	json_uint(j, "data_pages", e->pages);
	json_uint(j, "sampled", e->sampled);
	json_uint(j, "sampled_written", e->sampled_written);
	json_obj_end(j);
}

static void json_budget(struct json *j, const struct watch *w)
{
	if (w->o.max_overhead < 0) {
		json_str(j, "budget", NULL);
		return;
	}
	json_obj_begin(j, "budget");
	json_double(j, "max_overhead_pct", w->o.max_overhead);
	json_double(j, "max_cpu_pct", w->o.max_cpu);
	json_str(j, "next_mode", mode_ids[w->budget_next]);
	json_bool(j, "changed", w->budget_changed);
	json_str(j, "reason", w->budget_why);
	json_int(j, "hashed_areas", (int64_t)w->hashed_areas);
	json_double(j, "hash_ns_per_page", w->hash_ns_page);
	json_obj_end(j);
}

static void emit_json(const struct watch *w, double t, double dt)
{
	struct json *j = json_new(stdout, false);
	uint64_t ps = w->page_size;

	if (!j)
		return;
	json_obj_begin(j, NULL);
	json_uint(j, "interval", w->intervals);
	json_double(j, "time", t);
	json_double(j, "elapsed", dt);
	json_int(j, "pid", w->pid);
	json_str(j, "backend", w->backend);
	json_str(j, "mode", mode_ids[w->mode]);
	json_uint(j, "pages_written", w->cur_pages);
	json_uint(j, "bytes_written", w->cur_pages * ps);
	json_double(j, "mb_per_s", mb_per_s(w->cur_pages * ps, dt));
	json_uint(j, "wss_pages", w->wss_pages);
	json_uint(j, "wss_bytes", w->wss_pages * ps);
	json_uint(j, "unattributed_pages", w->unattributed);
	json_arr_begin(j, "vmas");
	for (size_t i = 0; i < w->ntop; i++) {
		const struct pt_vma *v = &w->vmas[w->top[i].idx];
		const char *kind = pt_vma_kind_name((enum pt_vma_kind)v->kind);

		json_obj_begin(j, NULL);
		json_hex(j, "start", v->start);
		json_hex(j, "end", v->end);
		json_str(j, "path", v->path ? v->path : "");
		json_str(j, "kind", kind ? kind : "unknown");
		json_uint(j, "pages_written", w->top[i].pages);
		json_uint(j, "bytes_written", w->top[i].pages * ps);
		json_double(j, "mb_per_s", mb_per_s(w->top[i].pages * ps, dt));
		json_tracked_by(j, w, v);
		if (w->mode == MODE_SAMPLE)
			json_estimate(j, "estimate", &w->est_areas[w->top[i].idx]);
		json_obj_end(j);
	}
	json_arr_end(j);
	json_stats(j, w);
	json_overhead(j, w);
	json_obj_begin(j, "flags");
	json_uint(j, "new_pages", w->f_new);
	json_uint(j, "zeroed_pages", w->f_zeroed);
	json_uint(j, "hashed_pages", w->f_hashed);
	json_uint(j, "new_hole_pages", w->f_hole);
	json_uint(j, "hot_pages", w->f_hot);
	json_obj_end(j);
	if (w->mode == MODE_SAMPLE)
		json_estimate(j, "estimate", &w->est);
	else
		json_str(j, "estimate", NULL);
	json_budget(j, w);
	json_obj_end(j);
	json_free(j);
}

/*
 * @p in at most @room columns, control characters replaced: the whole path
 * if it fits, else its base name, else the end of the base name after "...".
 */
static const char *short_path(const char *p, size_t room, char *out, size_t len)
{
	size_t n = strlen(p), o = 0;
	const char *base = strrchr(p, '/');

	if (n > room && base && base[1]) {
		p = base + 1;
		n = strlen(p);
	}
	if (n > room && room > 3) {
		p += n - (room - 3);
		out[o++] = '.';
		out[o++] = '.';
		out[o++] = '.';
	}
	for (; *p && o + 1 < len && o < room; p++)
		out[o++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
	out[o] = '\0';
	return out;
}

/*
 * Columns (80 wide):
 *      #   TIME    WRITTEN       MB/s        WSS        NEW  FB COLLECT   PAUSE
 *     12  12.0s   12.0 MiB     1234.5   48.0 MiB    4.0 KiB   0   1.2ms   0.3ms
 *       7f3a1c000000-7f3a1c040000 anon        2.0 MiB      2.1 H [heap]
 * The legend says what the numbers are: pages, not bytes moved.
 */
static void print_columns(const struct watch *w)
{
	printf("WRITTEN  distinct pages written in the interval, as bytes (pages x %" PRIu64 ");\n"
	       "MB/s     those pages per second: not write bandwidth (a rewrite counts once)\n"
	       "WSS      distinct pages written since the start; NEW: of WRITTEN, in new areas\n"
	       "FB       areas hashed instead of tracked by %s (H on an area; why: listed)\n"
	       "Untouched pages of new areas hold no data: counted apart, as holes.\n"
	       "overhead: the target's time in write faults tracking made it take (pages\n"
	       "         faulted x the fault cost of pagetrack check), %% of the interval;\n"
	       "         CPU: of the target and of pagetrack, %% of one CPU\n"
	       "~        an estimate from a sample (--sample, or the budget's choice):\n"
	       "         the estimate line gives its 95%% interval; WSS is not updated\n",
	       w->page_size, w->backend);
	printf("%6s %6s %10s %10s %10s %10s %3s %7s %7s\n", "#", "TIME", "WRITTEN", "MB/s",
	       "WSS", "NEW", "FB", "COLLECT", "PAUSE");
}

/* Why an area is hashed, in at most 39 columns. */
static const char *reason_text(uint32_t r)
{
	switch (r) {
	case PT_AREA_REASON_SHARED:
		return "MAP_SHARED (--trust-shared to track)";
	case PT_AREA_REASON_PINNED:
		return "io_uring registered buffer (pinned)";
	case PT_AREA_REASON_UNSUPPORTED:
		return "the backend cannot track this kind";
	case PT_AREA_REASON_REFUSED:
		return "the backend refused to arm it";
	case PT_AREA_REASON_BUDGET:
		return "the budget's (--max-overhead)";
	}
	return "unknown reason";
}

/* Is @v hashed instead of tracked by the backend?  *@reason: why. */
static bool area_hashed(const struct watch *w, const struct pt_vma *v, uint32_t *reason)
{
	struct pt_track_area a = { .sz = sizeof(a) };

	if (pt_tracker_area(w->tr, v->start, &a) || a.method != PT_AREA_HASHED)
		return false;
	*reason = a.reason;
	return true;
}

#define FB_LIST_MAX 8

/*
 * Never fall back silently: whenever the number of hashed areas changes,
 * list them (up to FB_LIST_MAX) with the reason.
 */
static void say_fallbacks(struct watch *w)
{
	size_t shown = 0, n = 0;
	uint32_t r;

	if (w->st.areas_fallback == w->fb_shown)
		return;
	w->fb_shown = w->st.areas_fallback;
	if (!w->st.areas_fallback) {
		printf("  note: every area is tracked by %s again\n", w->backend);
		return;
	}
	printf("  note: %" PRIu64 " area%s hashed instead of tracked by %s:\n",
	       w->st.areas_fallback, w->st.areas_fallback > 1 ? "s" : "", w->backend);
	for (size_t i = 0; i < w->nvmas; i++) {
		const struct pt_vma *v = &w->vmas[i];
		const char *kind = pt_vma_kind_name((enum pt_vma_kind)v->kind);

		if (!area_hashed(w, v, &r))
			continue;
		if (shown++ < FB_LIST_MAX)
			printf("      %012" PRIx64 "-%012" PRIx64 " %-8.8s %s\n", v->start, v->end,
			       kind ? kind : "unknown", reason_text(r));
		n++;
	}
	if (n > FB_LIST_MAX)
		printf("      ... and %zu more (--json: tracked_by, hash_reason)\n", n - FB_LIST_MAX);
}

static void emit_plain(struct watch *w, double t, double dt)
{
	char b1[24], b2[24], b3[24], path[64];
	uint64_t ps = w->page_size;
	uint32_t r;

	char est[26];

	fmt_size(w->cur_pages * ps, b1, sizeof(b1));
	snprintf(est, sizeof(est), "%s%s", w->mode == MODE_SAMPLE ? "~" : "", b1);
	printf("%6" PRIu64 " %5.1fs %10s %10.1f %10s %10s %3" PRIu64 " %5.1fms %5.1fms\n",
	       w->intervals, t, est,
	       mb_per_s(w->cur_pages * ps, dt), fmt_size(w->wss_pages * ps, b2, sizeof(b2)),
	       fmt_size(w->f_new * ps, b3, sizeof(b3)), w->st.areas_fallback,
	       (double)w->st.collect_ns / 1e6, (double)w->st.pause_ns_max / 1e6);
	if (w->st.interval_ns)	/* 6 + 10 + 6 + 16 + 14 + 4 + 12 + 6 = 74 columns */
		printf("      overhead ~%.1f%% of target time; CPU: target %.0f%%, pagetrack %.1f%%\n",
		       pct_of_interval(w, w->st.est_fault_ns), pct_of_interval(w, w->st.target_cpu_ns),
		       pct_of_interval(w, w->st.self_cpu_ns));
	if (w->mode == MODE_SAMPLE)	/* 6 + 37 + 21 + 16 = 80 columns at most */
		printf("      estimate: ~%" PRIu64 " pages (95%%: %" PRIu64 "-%" PRIu64 "), %" PRIu64
		       " of %" PRIu64 " sampled\n", w->est.est, w->est.lo, w->est.hi, w->est.sampled,
		       w->est.pages);
	else if (w->f_hot)
		printf("      hot: %s of it left writable (no fault; maybe unwritten)\n",
		       fmt_size(w->f_hot * ps, b1, sizeof(b1)));
	if (w->o.max_overhead >= 0) {	/* the reason on a line of its own when too long */
		int n = snprintf(b1, sizeof(b1), "%s%s", w->budget_changed ? "now " : "",
				 mode_ids[w->budget_next]);

		if (14 + n + 2 + strlen(w->budget_why) <= 80)
			printf("      budget: %s, %s\n", b1, w->budget_why);
		else
			printf("      budget: %s:\n        %s\n", b1, w->budget_why);
	}
	if (w->mode != MODE_SAMPLE)
		say_fallbacks(w);
	for (size_t i = 0; i < w->ntop; i++) {
		const struct pt_vma *v = &w->vmas[w->top[i].idx];
		const char *kind = pt_vma_kind_name((enum pt_vma_kind)v->kind);

		/* 6 + 25 + 1 + 8 + 1 + 10 + 1 + 8 + 3 = 63: 17 left for the path. */
		printf("      %012" PRIx64 "-%012" PRIx64 " %-8.8s %10s %8.1f %c %s\n", v->start,
		       v->end, kind ? kind : "unknown",
		       fmt_size(w->top[i].pages * ps, b1, sizeof(b1)),
		       mb_per_s(w->top[i].pages * ps, dt),
		       w->mode == MODE_SAMPLE ? '~' : area_hashed(w, v, &r) ? 'H' : ' ',
		       short_path(v->path ? v->path : "", 17, path, sizeof(path)));
	}
	if (w->f_hole)
		printf("      + %s of new areas untouched (holes, no data): not counted\n",
		       fmt_size(w->f_hole * ps, b1, sizeof(b1)));
	if (w->unattributed)	/* never: the layout is the round's own */
		printf("      %-25s %-8s %10s\n", "(in no area)", "-",
		       fmt_size(w->unattributed * ps, b1, sizeof(b1)));
}

static void emit_summary(const struct watch *w, enum stop_reason why)
{
	double t = w->t0 ? (double)(watch_now_ns() - w->t0) / 1e9 : 0;
	uint64_t ps = w->page_size;
	char b1[24], b2[24];

	if (w->o.json) {
		struct json *j = json_new(stdout, false);

		if (!j)
			return;
		json_obj_begin(j, NULL);
		json_obj_begin(j, "summary");
		json_uint(j, "intervals", w->intervals);
		json_double(j, "time", t);
		json_int(j, "pid", w->pid);
		json_str(j, "backend", w->backend);
		json_uint(j, "pages_written", w->total_pages);
		json_uint(j, "bytes_written", w->total_pages * ps);
		json_uint(j, "wss_pages", w->wss_pages);
		json_uint(j, "wss_bytes", w->wss_pages * ps);
		json_uint(j, "new_hole_pages", w->total_holes);
		json_str(j, "reason", stop_ids[why]);
		if (w->child > 0 && w->child_status >= 0)
			json_int(j, "exit_status", w->child_status);
		else
			json_str(j, "exit_status", NULL);
		json_stats(j, w);
		json_obj_end(j);
		json_obj_end(j);
		json_free(j);
		return;
	}
	/*
	 * At most 78 columns with 5-digit counts, 6-digit seconds, "1023.9 MiB"
	 * sizes; the holes, when there were any, on a line of their own.
	 */
	if (w->total_holes)
		printf("holes: %s of new areas never held data (not counted as written)\n",
		       fmt_size(w->total_holes * ps, b1, sizeof(b1)));
	printf("summary: %" PRIu64 " intervals, %.1fs, written %s, wss %s, %s\n",
	       w->intervals, t, fmt_size(w->total_pages * ps, b1, sizeof(b1)),
	       fmt_size(w->wss_pages * ps, b2, sizeof(b2)),
	       why == STOP_COUNT ? "count" : why == STOP_SIGNAL ? "signal"
	       : why == STOP_EXITED ? "exited" : why == STOP_OUTPUT ? "closed" : "error");
	fflush(stdout);
}

/* ---- arguments ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pagetrack watch [OPTIONS] PID\n"
		"       pagetrack watch [OPTIONS] self\n"
		"       pagetrack watch [OPTIONS] -- CMD [ARGS...]\n"
		"\n"
		"Every interval, show the distinct pages a process wrote, per memory area\n"
		"and in total, and its write working set (the pages written since the\n"
		"start).  MB/s is those pages per second, not write bandwidth: a page\n"
		"rewritten many times counts once.  Untouched pages of new areas (no data)\n"
		"are not counted as written; they are shown apart, as holes.\n"
		"'self' watches pagetrack itself (a test of the machinery).\n"
		"With -- CMD, run CMD and watch it from just after its exec.\n"
		"\n"
		"Options:\n"
		"  -i, --interval DUR   time between collects, 10ms to 24h (500ms, 1s, 2.5s,\n"
		"                       5m, 1h, a bare number of seconds; default 1s)\n"
		"  -c, --count N        stop after N intervals\n"
		"      --kill-after DUR with -- CMD: after the watch ends, wait at most DUR\n"
		"                       for CMD, then SIGTERM it (SIGKILL 2s later); without\n"
		"                       it pagetrack waits for CMD to exit, however long\n"
		"  -b, --backend B      uffd, softdirty, hash or auto (default: best available)\n"
		"      --trust-shared   trust page tables for MAP_SHARED areas (faster; misses\n"
		"                       writes by other processes or write(2) to the object)\n"
		"      --hot            skip hot pages: pages written round after round are\n"
		"                       left writable (no fault) and counted every interval\n"
		"      --sample N|auto  estimate from a random sample of N pages per GiB of\n"
		"                       data (auto: 512), read by hash: no cost to the target;\n"
		"                       counts are estimates with a 95%% interval\n"
		"      --max-overhead PCT  keep the target's tracking overhead under PCT%%:\n"
		"                       each interval choose exact, hot-page skipping, hashing\n"
		"                       the areas that fault most (within --max-cpu) or\n"
		"                       sampling, and say why\n"
		"      --max-cpu PCT    pagetrack's CPU the budget may spend hashing (default 25)\n"
		"  -t, --top K          memory areas to list per interval (default 5)\n"
		"  -j, --json           one JSON object per interval and line (doc/watch-json.md)\n"
		"  -h, --help           show this help\n"
		"\n"
		"Ctrl-C or SIGTERM stops the watch and leaves the target as it was.\n"
		"Exit status: 0 success (PID mode), the command's status (CMD mode),\n"
		"1 runtime error, 2 usage error.\n");
}

static int parse_backend(const char *s, enum pt_track_backend *b)
{
	if (!strcmp(s, "auto"))
		*b = PT_TRACK_AUTO;
	else if (!strcmp(s, "uffd"))
		*b = PT_TRACK_UFFD;
	else if (!strcmp(s, "softdirty"))
		*b = PT_TRACK_SOFTDIRTY;
	else if (!strcmp(s, "hash"))
		*b = PT_TRACK_HASH;
	else
		return -EINVAL;
	return 0;
}

/* Returns 0, 1 (--help shown) or -EINVAL (usage error reported). */
static int parse_args(int argc, char **argv, struct watch_opts *o)
{
	enum { OPT_TRUST_SHARED = 256, OPT_KILL_AFTER, OPT_HOT, OPT_SAMPLE, OPT_MAX_OVERHEAD,
	       OPT_MAX_CPU };
	static const struct option opts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'c' },
		{ "backend", required_argument, NULL, 'b' },
		{ "trust-shared", no_argument, NULL, OPT_TRUST_SHARED },
		{ "kill-after", required_argument, NULL, OPT_KILL_AFTER },
		{ "hot", no_argument, NULL, OPT_HOT },
		{ "sample", required_argument, NULL, OPT_SAMPLE },
		{ "max-overhead", required_argument, NULL, OPT_MAX_OVERHEAD },
		{ "max-cpu", required_argument, NULL, OPT_MAX_CPU },
		{ "top", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char badopt[3] = "-?";
	int opt, nopt = argc;
	uint64_t v;

	o->interval_ns = NSEC;
	o->top = TOP_DEFAULT;
	o->max_overhead = -1;
	o->max_cpu = -1;
	o->backend = PT_TRACK_AUTO;
	/* Everything after "--" is the command, never our options. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			nopt = i;
			o->cmd = &argv[i + 1];
			break;
		}
	}
	for (int i = 1; i < nopt; i++)
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j"))
			o->json = true;

	opterr = 0;
	while ((opt = getopt_long(nopt, argv, ":i:c:b:t:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			if (parse_duration(optarg, &o->interval_ns, INTERVAL_MIN_NS,
					   INTERVAL_MAX_NS) < 0) {
				cli_error(o->json, 0, "invalid interval '%s' (expected e.g. 500ms, 1s, 5m, "
					  "2.5s; from 10ms to 24h)", optarg);
				return -EINVAL;
			}
			break;
		case 'c':
			if (parse_uint(optarg, UINT32_MAX, &o->count) < 0 || !o->count) {
				cli_error(o->json, 0, "invalid count '%s' (expected a positive number)",
					  optarg);
				return -EINVAL;
			}
			break;
		case 'b':
			if (parse_backend(optarg, &o->backend) < 0) {
				cli_error(o->json, 0, "invalid backend '%s' (expected uffd, softdirty, "
					  "hash or auto)", optarg);
				return -EINVAL;
			}
			break;
		case OPT_TRUST_SHARED: o->trust_shared = true; break;
		case OPT_HOT: o->hot = true; break;
		case OPT_SAMPLE:
			o->sample = true;
			if (!strcmp(optarg, "auto")) {
				o->sample_per_gib = 0;
			} else if (parse_uint(optarg, 1u << 18, &v) < 0 || !v) {
				cli_error(o->json, 0, "invalid --sample '%s' (expected pages per GiB, 1 to "
					  "262144, or auto)", optarg);
				return -EINVAL;
			} else {
				o->sample_per_gib = (uint32_t)v;
			}
			break;
		case OPT_MAX_OVERHEAD:
		case OPT_MAX_CPU: {
			char *end;
			double pct;

			errno = 0;
			pct = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(pct) || pct < 0 ||
			    pct > (opt == OPT_MAX_CPU ? 10000 : 100)) {
				cli_error(o->json, 0, "invalid --%s '%s' (expected a percentage, e.g. 5 "
					  "or 0.5)", opt == OPT_MAX_CPU ? "max-cpu" : "max-overhead",
					  optarg);
				return -EINVAL;
			}
			if (opt == OPT_MAX_CPU)
				o->max_cpu = pct;
			else
				o->max_overhead = pct;
			break;
		}
		case OPT_KILL_AFTER:
			if (parse_duration(optarg, &o->kill_after_ns, 0, INTERVAL_MAX_NS) < 0) {
				cli_error(o->json, 0, "invalid --kill-after '%s' (expected e.g. 0, 500ms, "
					  "10s, 5m; up to 24h)", optarg);
				return -EINVAL;
			}
			o->kill_after_set = true;
			break;
		case 't':
			if (parse_uint(optarg, TOP_MAX, &v) < 0) {
				cli_error(o->json, 0, "invalid --top '%s' (expected 0 to %d)", optarg,
					  TOP_MAX);
				return -EINVAL;
			}
			o->top = (unsigned)v;
			break;
		case 'j': o->json = true; break;
		case 'h':
			usage(stdout);
			return 1;
		case ':':
			cli_error(o->json, 0, "option '%s' needs an argument "
				  "(try 'pagetrack watch --help')", argv[optind - 1]);
			return -EINVAL;
		default:
			if (optopt)
				badopt[1] = (char)optopt;
			cli_error(o->json, 0, "unknown option '%s' (try 'pagetrack watch --help')",
				  optopt ? badopt : argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (o->max_cpu >= 0 && o->max_overhead < 0) {
		cli_error(o->json, 0, "--max-cpu needs --max-overhead");
		return -EINVAL;
	}
	if (o->max_cpu < 0)
		o->max_cpu = 25;
	if ((o->sample || o->hot) && o->max_overhead >= 0) {
		cli_error(o->json, 0, "--max-overhead chooses the mode itself: not with --%s",
			  o->sample ? "sample" : "hot");
		return -EINVAL;
	}
	if (o->sample && o->hot) {
		cli_error(o->json, 0, "--sample and --hot exclude each other");
		return -EINVAL;
	}
	if (o->sample && o->backend != PT_TRACK_AUTO) {
		cli_error(o->json, 0, "--sample uses no tracker backend: not with --backend");
		return -EINVAL;
	}
	if (o->kill_after_set && !o->cmd) {
		cli_error(o->json, 0, "--kill-after needs -- CMD (a PID is never killed)");
		return -EINVAL;
	}
	if (o->cmd) {
		if (optind != nopt) {
			cli_error(o->json, 0, "give either a PID or -- CMD, not both");
			return -EINVAL;
		}
		if (!o->cmd[0]) {
			cli_error(o->json, 0, "missing command after '--'");
			return -EINVAL;
		}
		return 0;
	}
	if (optind != nopt - 1) {
		cli_error(o->json, 0, optind >= nopt ? "missing PID (or -- CMD ARGS)"
			  : "too many arguments (expected one PID, or -- CMD ARGS)");
		return -EINVAL;
	}
	if (parse_pid(argv[optind], &o->pid) < 0) {
		cli_error(o->json, 0, "invalid PID '%s' (expected a positive number or 'self')",
			  argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* ---- driver ---- */

static void track_error(const struct watch *w, int err)
{
	const char *b = w->o.backend == PT_TRACK_AUTO ? "auto"
			: pt_track_backend_name(w->o.backend);

	if (err == ESRCH)
		cli_error(w->o.json, err, "no such process: %d", (int)w->pid);
	else if (err == ENODATA)
		cli_error(w->o.json, err, "process %d is a kernel thread: it has no user memory",
			  (int)w->pid);
	else if (err == EACCES || err == EPERM)
		cli_error(w->o.json, err, "permission denied: cannot track process %d "
			  "(needs the same user or root, and ptrace access)", (int)w->pid);
	else if (err == EOPNOTSUPP)
		cli_error(w->o.json, err, "backend %s cannot track process %d on this system "
			  "(see 'pagetrack check')", b ? b : "?", (int)w->pid);
	else if (err == EBUSY)
		cli_error(w->o.json, err, "process %d is already traced by another process",
			  (int)w->pid);
	else if (err == EALREADY)
		cli_error(w->o.json, err, "process %d is already tracked by another pagetrack "
			  "(-v names its pid; --backend hash leaves the target alone)", (int)w->pid);
	else
		cli_error(w->o.json, err, "cannot track process %d: %s", (int)w->pid,
			  strerror(err));
}

/* Has the target ended?  (The command: reaped; a pid: gone or a zombie.) */
static bool target_gone(struct watch *w)
{
	if (w->child > 0)
		return reap_child(w, false);
	return w->t ? pt_target_alive(w->t) == 0 : false;
}

/*
 * Never choose silently: what the tracker found and chose at its start,
 * on stderr (JSON consumers read the same from each interval's stats).
 */
static void say_start_notes(const struct watch *w)
{
	struct pt_tracker_stats st = { .sz = sizeof(st) };

	if (pt_tracker_stats(w->tr, &st) < 0)
		return;
	if (st.leftovers_closed)
		fprintf(stderr, "pagetrack: note: closed %llu userfaultfd%s that a killed pagetrack "
			"had left in process %d\n", (unsigned long long)st.leftovers_closed,
			st.leftovers_closed > 1 ? "s" : "", (int)w->pid);
	if (st.auto_uffd_err)
		fprintf(stderr, "pagetrack: note: backend %s: uffd cannot track process %d (%s)%s\n",
			w->backend, (int)w->pid, strerror(st.auto_uffd_err),
			st.auto_uffd_err == EBUSY ? ": another process traces it" : "");
}

/* Is @pid a live process (not a zombie)?  Asked on a fresh target. */
static bool process_runs(pid_t pid)
{
	struct pt_target *t = pt_target_create(pid, NULL);
	bool runs = t && pt_target_alive(t) == 1;

	pt_target_free(t);
	return runs;
}

/*
 * Create the tracker (and w->t, opened first: its address space is never
 * newer than the tracker's, so a scan of it tells whether the tracker's
 * is gone).  SIGINT/SIGTERM are let in meanwhile: a stop signal frees
 * the new tracker at once (*@why = STOP_SIGNAL).  A target that execs
 * during set-up makes it fail with ESRCH while the process runs on: then
 * set-up starts over on the new program, at most ARM_TRIES times.
 * Returns 0 or -errno.
 */
#define ARM_TRIES	20
static int arm(struct watch *w, const sigset_t *setupmask, enum stop_reason *why)
{
	PT_OPTS(pt_tracker_opts, to,
		.backend = w->o.backend,
		/* counts only, copies nothing: never wait for the target's disk I/O */
		.flags = (w->o.trust_shared ? PT_TRACK_TRUST_SHARED : 0) | PT_TRACK_NO_BARRIER |
			 (w->mode == MODE_HOT || w->mode == MODE_HASH ? PT_TRACK_HOT : 0),
	);
	PT_OPTS(pt_sampler_opts, so, .pages_per_gib = w->o.sample_per_gib);
	pid_t pid = w->child > 0 ? w->child : w->o.pid;	/* 0: self */
	sigset_t blocked;
	int err = 0;

	for (int i = 0; i < ARM_TRIES; i++) {
		if (i) {
			struct timespec ts = { 0, 1000000L << (i < 6 ? i : 6) };

			nanosleep(&ts, NULL);	/* an exec in a loop: let it get on */
		}
		pt_target_free(w->t);
		w->t = pt_target_create(pid, NULL);
		if (!w->t)
			return -(errno ? errno : EIO);
		sigprocmask(SIG_SETMASK, setupmask, &blocked);
		if (w->mode == MODE_SAMPLE) {
			w->smp = pt_sampler_create(pid, &so);
			err = w->smp ? 0 : (errno ? errno : EIO);
			w->smp_mono = watch_now_ns();
			w->smp_cpu = watch_self_cpu_ns();
		} else {
			w->tr = pt_tracker_create(pid, &to);
			err = w->tr ? 0 : (errno ? errno : EIO);
		}
		sigprocmask(SIG_SETMASK, &blocked, NULL);
		if (w->tr)
			w->backend = pt_track_backend_name(pt_tracker_backend(w->tr));
		if (w->smp)
			w->backend = "sample";
		if (stop_signal) {
			/* the caller frees the tracker at once: that leaves the target as found */
			*why = STOP_SIGNAL;
			return 0;
		}
		if (w->tr || w->smp)
			return 0;
		if (err != ESRCH || (w->child > 0 && reap_child(w, false)) || !process_runs(pid))
			break;
	}
	return -err;
}

/*
 * Open the target and arm the tracker.  Returns 0 (with *@why =
 * STOP_EXITED when the command ended before it could be tracked,
 * STOP_SIGNAL when a stop signal came during set-up) or -errno.
 */
int watch_start(struct watch *w, const sigset_t *setupmask, enum stop_reason *why)
{
	int err = arm(w, setupmask, why);

	if (!err) {
		if (*why == STOP_NONE)
			say_start_notes(w);
		return 0;
	}
	/* A short command may be over before tracking could start: not an error. */
	if (w->child > 0) {
		for (int i = 0; i < 50 && !reap_child(w, false); i++)
			usleep(2000);
		if (w->child_status >= 0) {
			*why = STOP_EXITED;
			return 0;
		}
	}
	return err;
}

/*
 * Did the target exec?  The tracker failed with -ESRCH; it did when the
 * process runs on (a fresh target of its pid is alive) while the address
 * space w->t was opened on is gone (a scan of it fails with -ESRCH): a
 * mere failure of the tracker is not taken for an exec.
 */
static bool execd(struct watch *w)
{
	struct pt_scan_opts so = { .sz = sizeof(so), .flags = PT_SCAN_NO_SHARED };
	struct pt_region r;
	uint64_t cur = 0;

	if (w->child > 0 && reap_child(w, false))
		return false;
	if (!process_runs(w->pid))
		return false;
	/* (the end must stay page-aligned when rounded up) */
	return pt_scan(w->t, &cur, UINT64_MAX - pt_page_size() + 1, &r, 1, &so) == -ESRCH;
}

/* The target's command name, for humans: control characters replaced. */
static void read_comm(pid_t pid, char *out, size_t len)
{
	char path[64];
	ssize_t n = -1;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, out, len - 1);
		close(fd);
	}
	if (n < 0)
		n = 0;
	while (n > 0 && out[n - 1] == '\n')
		n--;
	out[n] = '\0';
}

static void emit_exec(const struct watch *w)
{
	double t = (double)(watch_now_ns() - w->t0) / 1e9;
	char comm[64];

	read_comm(w->pid, comm, sizeof(comm));
	if (w->o.json) {
		struct json *j = json_new(stdout, false);

		if (!j)
			return;
		json_obj_begin(j, NULL);
		json_str(j, "event", "exec");
		json_double(j, "time", t);
		json_int(j, "pid", w->pid);
		json_str(j, "comm", comm);
		json_str(j, "backend", w->backend);
		json_obj_end(j);
		json_free(j);
		return;
	}
	for (char *c = comm; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	printf("exec: pid %d now runs %s (tracking restarted)\n", (int)w->pid, comm);
}

/*
 * The target exec'd: the old tracker's address space is gone (freeing it
 * injects nothing: the library checks the mm before any injection, and
 * the O_CLOEXEC userfaultfd went with the old program).  Track the new
 * program from here; its areas are reported as new at the next round and
 * the working set starts again (the old program's pages are gone).
 * Returns 0 (*@why set when set-up was stopped or the command ended) or
 * -errno.
 */
static int follow_exec(struct watch *w, const sigset_t *setupmask, enum stop_reason *why)
{
	int err;

	pt_tracker_free(w->tr);
	w->tr = NULL;
	pt_sampler_free(w->smp);
	w->smp = NULL;
	w->execs++;
	err = watch_start(w, setupmask, why);
	if (err < 0 || *why != STOP_NONE)
		return err;
	w->layout_new = true;
	w->wss.n = 0;
	w->wss_pages = 0;
	emit_exec(w);
	return 0;
}


static enum stop_reason run(struct watch *w, const sigset_t *waitmask,
			    const sigset_t *setupmask)
{
	uint64_t deadline = w->t0 + watch_budget_first_ns(w);

	if (!w->o.json) {
		printf("watching pid %d (%s%s) every %.3gs%s; Ctrl-C stops\n",
		       (int)w->pid, w->backend, w->mode == MODE_HOT ? ", hot pages skipped" : "",
		       (double)w->o.interval_ns / 1e9, w->o.trust_shared ? ", shared trusted" : "");
		if (w->o.max_overhead >= 0)
			printf("budget: target overhead <= %.3g%%, pagetrack CPU for hashing <= %.3g%%\n",
			       w->o.max_overhead, w->o.max_cpu);
		print_columns(w);
		fflush(stdout);
	}
	for (;;) {
		uint64_t tstart;
		int err;

		while (!stop_signal && !child_event && watch_now_ns() < deadline)
			sleep_until(deadline, waitmask);
		if (stop_signal)
			return STOP_SIGNAL;
		if (child_event) {
			child_event = 0;	/* also raised by ptrace stops in the library */
			if (w->child > 0 && reap_child(w, false))
				return STOP_EXITED;
			continue;
		}
		tstart = watch_now_ns();
		err = collect_round(w);
		if (err == -ESRCH && execd(w)) {
			enum stop_reason why = STOP_NONE;

			/* no interval line: the next one covers the time since the last */
			err = follow_exec(w, setupmask, &why);
			if (err < 0) {
				track_error(w, -err);
				return STOP_ERROR;
			}
			if (why != STOP_NONE)
				return why;
			if (fflush(stdout) == EOF || ferror(stdout))
				return STOP_OUTPUT;
			goto next;
		}
		if (err < 0) {
			if (err == -ESRCH || target_gone(w))
				return STOP_EXITED;
			cli_error(w->o.json, -err, "cannot collect the pages written by process "
				  "%d: %s", (int)w->pid, strerror(-err));
			return STOP_ERROR;
		}
		w->intervals++;
		enum wmode want = w->mode;

		if (w->o.max_overhead >= 0) {
			want = watch_budget_decide(w);
			w->budget_next = want;
			w->budget_changed = want != w->mode;
		}
		if (w->o.json)
			emit_json(w, (double)(tstart - w->t0) / 1e9, (double)(tstart - w->prev) / 1e9);
		else
			emit_plain(w, (double)(tstart - w->t0) / 1e9, (double)(tstart - w->prev) / 1e9);
		w->prev = tstart;
		if (fflush(stdout) == EOF || ferror(stdout))
			return STOP_OUTPUT;
		if (w->o.count && w->intervals >= w->o.count)
			return STOP_COUNT;
		if (want != w->mode) {
			enum stop_reason why = STOP_NONE;

			err = watch_switch_mode(w, want, setupmask, &why);
			if (err < 0) {
				track_error(w, -err);
				return STOP_ERROR;
			}
			if (why != STOP_NONE)
				return why;
		}
next:
		/* The next tick on the grid; ticks missed by a slow collect are skipped. */
		deadline += w->o.interval_ns;
		if (deadline <= watch_now_ns())
			deadline += ((watch_now_ns() - deadline) / w->o.interval_ns + 1) * w->o.interval_ns;
	}
}

int cmd_watch(int argc, char **argv)
{
	struct watch w = { .child = -1, .child_status = -1 };
	enum stop_reason why = STOP_NONE;
	sigset_t orig, setup;
	int ret = PT_EXIT_RUNTIME, err, free_err = 0;

	err = parse_args(argc, argv, &w.o);
	if (err)
		return err > 0 ? PT_EXIT_OK : PT_EXIT_USAGE;
	/* before -- CMD is started: nothing to undo */
	if (cli_page_size_refused(w.o.json))
		return PT_EXIT_RUNTIME;
	w.page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	w.backend = "none";
	w.mode = w.o.sample ? MODE_SAMPLE : w.o.hot ? MODE_HOT : MODE_EXACT;
	stop_signal = stop_forward = child_event = 0;
	err = signals_setup(&orig);
	if (err < 0) {
		cli_error(w.o.json, -err, "cannot set up signal handling: %s", strerror(-err));
		return PT_EXIT_RUNTIME;
	}
	w.buf = malloc(COLLECT_BUF * sizeof(*w.buf));
	if (!w.buf) {
		cli_error(w.o.json, ENOMEM, "out of memory");
		goto out;
	}
	if (w.o.cmd) {
		err = spawn(w.o.cmd, &orig, &w.child);
		if (err < 0) {
			cli_error(w.o.json, -err, "cannot run '%s': %s", w.o.cmd[0], strerror(-err));
			goto out;
		}
		w.pid = w.child;
	} else {
		w.pid = w.o.pid ? w.o.pid : getpid();
	}

	/* set-up lets SIGINT/SIGTERM in (arm()) */
	setup = orig;
	sigaddset(&setup, SIGCHLD);
	sigdelset(&setup, SIGINT);
	sigdelset(&setup, SIGTERM);
	err = watch_start(&w, &setup, &why);
	if (err < 0) {
		track_error(&w, -err);
		goto out;
	}
	w.t0 = w.prev = watch_now_ns();
	if (why == STOP_NONE)
		why = run(&w, &orig, &setup);
	/* Disarm first: the summary must never delay leaving the target as found. */
	free_err = pt_tracker_free(w.tr);
	w.tr = NULL;
	pt_sampler_free(w.smp);
	w.smp = NULL;
	if (why == STOP_SIGNAL && w.child > 0 && stop_forward) {
		kill(w.child, stop_signal);
		stop_forward = 0;
	}
	emit_summary(&w, why);
	if (free_err)	/* the target runs on unharmed, but holds a file of ours */
		cli_error(w.o.json, -free_err, "could not close the userfaultfd inside process %d "
			  "(another process was tracing it): it stays open there, with nothing "
			  "registered, until the next pagetrack watch of it closes it", (int)w.pid);
	if (why == STOP_ERROR)
		goto out;
	ret = PT_EXIT_OK;
	if (w.child > 0) {
		wait_child(&w, &orig);
		ret = w.child_status;
	}
	if (free_err)
		ret = PT_EXIT_RUNTIME;
out:
	pt_tracker_free(w.tr);
	pt_sampler_free(w.smp);
	if (w.child > 0 && w.child_status < 0) {
		/* pagetrack failed: the command must not outlive a failed watch. */
		kill(w.child, SIGKILL);
		reap_child(&w, true);
	}
	pt_target_free(w.t);
	pt_vmas_free(w.vmas);
	free(w.vpages);
	free(w.top);
	free(w.est_areas);
	free(w.cur.r);
	free(w.wss.r);
	free(w.tmp.r);
	free(w.buf);
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &orig, NULL);
	return ret;
}
