/* SPDX-License-Identifier: MIT */
/*
 * The dirty-page tracker: one interface, three backends (ops tables in
 * lib/track/track_*.c), and the bookkeeping every backend needs:
 *  - areas created, moved or remapped since the last round are reported
 *    whole and armed (an area is "known" only where the previous round
 *    tracked the same object at the same offset with the same method);
 *  - areas a backend cannot track, and MAP_SHARED areas (written by other
 *    mappers or through the object, invisible to this process's page
 *    tables) are hashed instead — never silently missed;
 *  - a round is harvested whole, then handed out through the caller's
 *    buffer in as many calls as it takes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tracker.h"

/* ---- overhead (doc/api.md, "Overhead") ---- */

/* minflt, utime + stime (ticks) of /proc/PID/stat; false if unreadable. */
static bool read_stat(const struct pt_tracker *tr, uint64_t *minflt, uint64_t *ticks)
{
	char path[64], buf[1024];
	unsigned long long mf, ut, st;
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/stat", tr->t->procdir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	/* after the command name, which may hold spaces and ')': field 3 on */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %llu %*u %*u %*u %llu %llu",
			 &mf, &ut, &st) != 3)
		return false;
	*minflt = mf;
	*ticks = ut + st;
	return true;
}

static void usage_now(const struct pt_tracker *tr, struct pt_usage *u)
{
	struct timespec ts;

	u->mono_ns = pt__now_ns();
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	u->self_cpu_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	u->target_ok = read_stat(tr, &u->target_minflt, &u->target_ticks);
}

/* The round that started at @now succeeded: its interval ends there. */
static void usage_round(struct pt_tracker *tr, const struct pt_usage *now, bool first)
{
	const struct pt_usage *was = &tr->usage;
	long tck = sysconf(_SC_CLK_TCK);

	if (!first) {
		tr->st.interval_ns = now->mono_ns - was->mono_ns;
		tr->st.est_fault_ns = tr->st.pages_faulted * tr->fault_cost_ns;
		tr->st.self_cpu_ns = now->self_cpu_ns - was->self_cpu_ns;
		tr->st.target_minflt = tr->st.target_cpu_ns = 0;
		if (now->target_ok && was->target_ok && tck > 0) {
			tr->st.target_minflt = now->target_minflt - was->target_minflt;
			tr->st.target_cpu_ns = (now->target_ticks - was->target_ticks) *
					       (1000000000ULL / (uint64_t)tck);
		}
	}
	tr->usage = *now;
}

/* ---- populated sets ---- */

int pt__pop_add(struct pt_tracker *tr, uint64_t start, uint64_t end)
{
	return pt__dirty_add(&tr->pop_cur, start, end, 0);
}

/* First index of @l whose end is after @addr (l sorted, non-overlapping). */
static size_t first_after(const struct pt_dirtylist *l, uint64_t addr)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (l->d[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The populated set of [start,end) is its complement of @none (sorted):
 * no per-written-page entries, no sort.  Pages of the previous set that
 * are in @none were dropped: added to @out as PT_DIRTY_ZEROED.
 */
int pt__pop_from_holes(struct pt_tracker *tr, uint64_t start, uint64_t end,
		       const struct pt_dirtylist *none, struct pt_dirtylist *out)
{
	const struct pt_dirtylist *prev = &tr->pop_prev;
	uint64_t cur = start;
	size_t i = first_after(prev, start);
	int err;

	for (size_t j = 0; j < none->n; j++) {
		uint64_t hs = none->d[j].start, he = none->d[j].end;

		if ((err = pt__pop_add(tr, cur, hs)))
			return err;
		cur = he;
		while (i < prev->n && prev->d[i].end <= hs)
			i++;
		for (size_t k = i; k < prev->n && prev->d[k].start < he; k++) {
			uint64_t s = prev->d[k].start > hs ? prev->d[k].start : hs;
			uint64_t e = prev->d[k].end < he ? prev->d[k].end : he;

			if (s < e && (err = pt__dirty_add(out, s, e, PT_DIRTY_ZEROED)))
				return err;
		}
	}
	return pt__pop_add(tr, cur, end);
}

/* ---- holes of new areas ---- */

bool pt__area_zero_fill(const struct pt_vma *v)
{
	return !(v->prot & PT_MAP_SHARED) && !v->inode &&
	       (v->kind == PT_VMA_ANON || v->kind == PT_VMA_HEAP || v->kind == PT_VMA_STACK);
}

int pt__hole_add(struct pt_tracker *tr, uint64_t start, uint64_t end)
{
	return pt__dirty_add(&tr->holes, start, end, 0);
}

/*
 * Mark the holes of this round's new areas in the round (sorted): the
 * pages of a PT_DIRTY_NEW region that lie in tr->holes get PT_DIRTY_HOLE.
 * A hole is the last thing the round saw of its page (the walk that armed
 * it ran after every harvest of the round, or under the same freeze), so
 * it holds even where another report of the same page merged in.  Out of
 * memory the round stays as it is: holes then count as new pages to read,
 * never the other way round.
 */
static void mark_holes(struct pt_tracker *tr)
{
	struct pt_dirtylist out = { 0 };
	const struct pt_dirtylist *h = &tr->holes;
	uint64_t holes = 0;
	size_t k = 0;
	int err = 0;

	tr->st.pages_hole = 0;
	if (!h->n)
		return;
	pt__dirty_sort_merge(&tr->holes);
	for (size_t i = 0; i < tr->round.n && !err; i++) {
		const struct pt_dirty *d = &tr->round.d[i];
		uint64_t cur = d->start;

		if (!(d->flags & PT_DIRTY_NEW)) {
			err = pt__dirty_add(&out, d->start, d->end, d->flags);
			continue;
		}
		while (k < h->n && h->d[k].end <= d->start)
			k++;
		for (size_t j = k; j < h->n && h->d[j].start < d->end && !err; j++) {
			uint64_t s = h->d[j].start > cur ? h->d[j].start : cur;
			uint64_t e = h->d[j].end < d->end ? h->d[j].end : d->end;

			if (s >= e)
				continue;
			if (!(err = pt__dirty_add(&out, cur, s, d->flags)))
				err = pt__dirty_add(&out, s, e, d->flags | PT_DIRTY_HOLE);
			holes += e - s;
			cur = e;
		}
		if (!err)
			err = pt__dirty_add(&out, cur, d->end, d->flags);
	}
	if (err) {
		pt__log(PT_LOG_WARN, "pid %d: out of memory: holes of new areas are reported "
			"as new pages", (int)tr->pid);
		pt__dirty_free(&out);
		return;
	}
	pt__dirty_free(&tr->round);
	tr->round = out;
	tr->st.pages_hole = holes >> PT_PAGE_SHIFT;
}

/* ---- areas ---- */

const char *pt_track_backend_name(enum pt_track_backend b)
{
	switch (b) {
	case PT_TRACK_UFFD:
		return "uffd";
	case PT_TRACK_SOFTDIRTY:
		return "softdirty";
	case PT_TRACK_HASH:
		return "hash";
	case PT_TRACK_AUTO:
		return "auto";
	}
	return NULL;
}

static bool shared_area(const struct pt_vma *v)
{
	return (v->prot & PT_MAP_SHARED) != 0;
}

/* Areas whose contents are the kernel's business, not the process's. */
static bool untracked_area(const struct pt_vma *v)
{
	return v->kind == PT_VMA_SPECIAL || v->start >= PT_USER_ADDR_END;
}

static bool same_object(const struct pt_area *a, const struct pt_vma *v);

/* Index of the first area of the last round ending after @addr. */
static size_t first_area_after(const struct pt_tracker *tr, uint64_t addr)
{
	size_t lo = 0, hi = tr->nareas;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (tr->areas[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Was (part of) @v hashed last round instead of tracked by the backend?
 * Then *@reason is why it was.
 */
static bool fell_back(const struct pt_tracker *tr, const struct pt_vma *v, uint8_t *reason)
{
	for (size_t i = first_area_after(tr, v->start); i < tr->nareas && tr->areas[i].start < v->end;
	     i++) {
		if (tr->areas[i].method == PT_METHOD_HASH && tr->areas[i].reason != PT_AREA_REASON_BUDGET &&
		    same_object(&tr->areas[i], v)) {
			*reason = tr->areas[i].reason ? tr->areas[i].reason : PT_AREA_REASON_REFUSED;
			return true;
		}
	}
	return false;
}

/*
 * Does the caller want @v hashed (pt_tracker_set_area_method())?  Asked
 * for since the last round, or hashed for that reason then and not asked
 * back.
 */
static bool budget_hashed(const struct pt_tracker *tr, const struct pt_vma *v)
{
	for (size_t i = first_area_after(tr, v->start); i < tr->nareas && tr->areas[i].start < v->end;
	     i++) {
		const struct pt_area *a = &tr->areas[i];

		if (!same_object(a, v))
			continue;
		if (a->want == PT_AREA_HASHED + 1 ||
		    (a->reason == PT_AREA_REASON_BUDGET && a->want != PT_AREA_BACKEND + 1))
			return true;
	}
	return false;
}

/* Does @v hold memory the kernel writes through a long-term pin? */
static bool pinned_area(const struct pt_tracker *tr, const struct pt_vma *v)
{
	for (size_t i = 0; i < tr->pinned.n; i++)
		if (tr->pinned.d[i].start < v->end && tr->pinned.d[i].end > v->start)
			return true;
	return false;
}

/* How to track @v this round; *@reason: why it is hashed (enum pt_area_reason). */
static enum pt_method area_method(struct pt_tracker *tr, const struct pt_vma *v, uint8_t *reason)
{
	*reason = PT_AREA_REASON_NONE;
	if (tr->ops == &pt__track_hash_ops)
		return PT_METHOD_HASH;
	*reason = PT_AREA_REASON_SHARED;
	if (shared_area(v) && !(tr->flags & PT_TRACK_TRUST_SHARED))
		return PT_METHOD_HASH;
	/* no page-table bit sees those writes: hash the whole area */
	*reason = PT_AREA_REASON_PINNED;
	if (pinned_area(tr, v))
		return PT_METHOD_HASH;
	/* a fallback sticks, or the area would be reported whole every round */
	if (fell_back(tr, v, reason))
		return PT_METHOD_HASH;
	*reason = PT_AREA_REASON_UNSUPPORTED;
	if (!tr->ops->can_track(tr, v))
		return PT_METHOD_HASH;
	*reason = PT_AREA_REASON_BUDGET;
	if (budget_hashed(tr, v))
		return PT_METHOD_HASH;
	*reason = PT_AREA_REASON_NONE;
	return PT_METHOD_BACKEND;
}

static bool same_object(const struct pt_area *a, const struct pt_vma *v)
{
	if (a->kind != v->kind || a->inode != v->inode || a->dev_major != v->dev_major ||
	    a->dev_minor != v->dev_minor || (a->prot & PT_MAP_SHARED) != (v->prot & PT_MAP_SHARED))
		return false;
	/* for objects the file offset of each address must be unchanged */
	if (v->inode && a->offset - a->start != v->offset - v->start)
		return false;
	return true;
}

/* What a part of an area is to the last round (for_each_part()). */
enum part_kind {
	PART_KNOWN = 0,		/* same object, same method */
	PART_NEW,		/* reported whole and armed */
	PART_TO_HASH,		/* backend-tracked last round, hashed by the caller's choice from
				   this one: baseline hashes, then the last harvest */
};

/*
 * Split [start,end) of @v into parts known from the last round (same
 * object, same method), parts moving from the backend to hashing when
 * @to_hash (PT_AREA_REASON_BUDGET), and new parts.  Calls @fn for each.
 */
static int for_each_part(struct pt_tracker *tr, const struct pt_vma *v, uint64_t start, uint64_t end,
			 enum pt_method m, bool to_hash,
			 int (*fn)(struct pt_tracker *, const struct pt_vma *, uint64_t, uint64_t,
				   enum part_kind, enum pt_method, struct pt_dirtylist *),
			 struct pt_dirtylist *out)
{
	uint64_t cur = start;
	int err;

	for (size_t i = first_area_after(tr, start); i < tr->nareas && tr->areas[i].start < end && cur < end; i++) {
		const struct pt_area *a = &tr->areas[i];
		uint64_t s = a->start > cur ? a->start : cur, e = a->end < end ? a->end : end;
		enum part_kind k = PART_KNOWN;

		if (s >= e || !same_object(a, v))
			continue;
		if (a->method != m) {
			if (!to_hash || m != PT_METHOD_HASH || a->method != PT_METHOD_BACKEND)
				continue;
			k = PART_TO_HASH;
		}
		if (s > cur && (err = fn(tr, v, cur, s, PART_NEW, m, out)))
			return err;
		if ((err = fn(tr, v, s, e, k, m, out)))
			return err;
		cur = e;
	}
	if (cur < end)
		return fn(tr, v, cur, end, PART_NEW, m, out);
	return 0;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int add_part(struct pt_parts *ps, const struct pt_vma *v, uint64_t start, uint64_t end)
{
	if (ps->n == ps->cap) {
		size_t ncap = ps->cap ? ps->cap * 2 : 64;
		struct pt_part *p = realloc(ps->p, ncap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		ps->p = p;
		ps->cap = ncap;
	}
	ps->p[ps->n++] = (struct pt_part){ .v = v, .start = start, .end = end };
	return 0;
}

static int track_part(struct pt_tracker *tr, const struct pt_vma *v, uint64_t start, uint64_t end,
		      enum part_kind kind, enum pt_method m, struct pt_dirtylist *out)
{
	uint64_t c0;
	int err;

	if (kind == PART_KNOWN && m == PT_METHOD_HASH) {
		c0 = thread_cpu_ns();
		err = pt__hash_area(tr->hs, tr->t, v, start, end, false, out, &tr->st.pages_hashed);
		tr->st.hash_cpu_ns += thread_cpu_ns() - c0;
		return err;
	}
	if (kind == PART_TO_HASH) {
		/*
		 * Baseline first, then the backend's last harvest: a write
		 * before the harvest is in it, one after it differs from
		 * the baseline next round (one in between: in both).
		 *
		 * The ordering that makes both switches safe (issue 11):
		 *  - to hashing: read every page's baseline, THEN harvest.
		 *    The area stays registered and its pages protected: a
		 *    write at any moment before the harvest (even one torn
		 *    by the baseline's read) faults and is harvested; one
		 *    after it changes the page after its baseline.  Nothing
		 *    is un-protected here, ever: a harvest before the
		 *    baseline would leave a write in between in neither.
		 *  - back to the backend (a PART_NEW): the whole part is
		 *    reported this round, then armed after every harvest
		 *    (protect walk: data pages protected, holes recorded as
		 *    holes); a write before the walk is in the whole report's
		 *    copy, one after it faults (or fills a hole) and is
		 *    harvested next round.  No hash is compared there.
		 *  - in every case, a write that lands after this round
		 *    collected a page is the next round's, whoever made it:
		 *    also the kernel's own writes that the round's freeze
		 *    causes (arming moved-back areas ptrace-stops every
		 *    thread; resumed on another CPU, a thread's rseq cpu_id
		 *    is rewritten), which test_tracker checks.
		 */
		c0 = thread_cpu_ns();
		err = pt__hash_baseline(tr->hs, tr->t, v, start, end, NULL, &tr->st.pages_hashed);
		tr->st.hash_cpu_ns += thread_cpu_ns() - c0;
		if (err)
			return err;
		err = tr->ops->harvest(tr, v, start, end, out);
		if (err != -ENOENT)
			return err;
		/* not armed any more: whatever it held is reported, the baseline stands */
		tr->st.pages_new += (end - start) >> PT_PAGE_SHIFT;
		return pt__dirty_add(out, start, end, PT_DIRTY_NEW);
	}
	if (kind == PART_KNOWN) {
		err = tr->ops->harvest(tr, v, start, end, out);
		if (err != -ENOENT)
			return err;
		/* the kernel no longer has it armed (e.g. remapped): new */
	}
	tr->st.pages_new += (end - start) >> PT_PAGE_SHIFT;
	err = pt__dirty_add(out, start, end, PT_DIRTY_NEW);
	if (err)
		return err;
	if (m == PT_METHOD_HASH) {	/* the baseline sees which pages hold no data */
		c0 = thread_cpu_ns();
		err = pt__hash_baseline(tr->hs, tr->t, v, start, end,
					pt__area_zero_fill(v) ? &tr->holes : NULL,
					&tr->st.pages_hashed);
		tr->st.hash_cpu_ns += thread_cpu_ns() - c0;
		return err;
	}
	if (tr->defer)	/* armed with the others after the harvests: run_round() */
		return add_part(tr->defer, v, start, end);
	err = tr->ops->arm(tr, v, start, end, out);
	/*
	 * -ENOENT: the area changed or vanished while being armed.  It is
	 * reported whole this round; next round the kernel will say it is
	 * not armed, and it is reported whole and armed again.
	 */
	return err == -ENOENT ? 0 : err;
}

/*
 * Keep the areas this round tracked: @vmas (the layout it read) clipped to
 * the tracked range, without the untracked ones (@methods[i] 0xff), as
 * the reference of the next round (tr->areas) and as what
 * pt_tracker_vmas() hands out (tr->layout, the same areas with paths).
 * @vmas is reused as scratch.
 */
static int save_areas(struct pt_tracker *tr, struct pt_vma *vmas, size_t n,
		      const uint8_t *methods, const uint8_t *reasons, const uint64_t *counts)
{
	struct pt_area *a = malloc((n ? n : 1) * sizeof(*a));
	struct pt_vma *layout;
	size_t k = 0;

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct pt_vma *v = &vmas[i];
		uint64_t s = v->start > tr->start ? v->start : tr->start;
		uint64_t e = v->end < tr->end ? v->end : tr->end;

		if (s >= e || methods[i] == 0xff)
			continue;
		a[k] = (struct pt_area){ .start = s, .end = e, .offset = v->offset + (s - v->start),
					 .inode = v->inode, .dev_major = v->dev_major,
					 .dev_minor = v->dev_minor, .prot = v->prot, .kind = v->kind,
					 .method = methods[i], .reason = reasons[i],
					 .faulted = counts[2 * i], .hashed = counts[2 * i + 1] };
		vmas[k] = *v;	/* k <= i: compacts in place */
		vmas[k].start = s;
		vmas[k].end = e;
		vmas[k].offset = a[k].offset;
		k++;
	}
	layout = pt__vmas_pack(vmas, k);
	if (!layout) {
		free(a);
		return -ENOMEM;
	}
	/* hashes of areas that are gone, or now tracked otherwise, are stale */
	for (size_t i = 0; tr->hs && i < tr->nareas; i++) {
		const struct pt_area *o = &tr->areas[i];
		uint64_t cur = o->start;

		if (o->method != PT_METHOD_HASH)
			continue;
		for (size_t j = 0; j < k && cur < o->end; j++) {
			if (a[j].end <= cur || a[j].start >= o->end)
				continue;
			if (a[j].start > cur)
				pt__hash_forget(tr->hs, cur, a[j].start);
			if (a[j].method != PT_METHOD_HASH)
				pt__hash_forget(tr->hs, a[j].start > cur ? a[j].start : cur,
						a[j].end < o->end ? a[j].end : o->end);
			cur = a[j].end;
		}
		if (cur < o->end)
			pt__hash_forget(tr->hs, cur, o->end);
	}
	free(tr->areas);
	pt_vmas_free(tr->layout);
	tr->areas = a;
	tr->layout = layout;
	tr->nareas = k;
	return 0;
}

/* Is [start,end) inside the areas of tr->areas from index *@a on?  Advances *@a. */
static bool in_areas(const struct pt_tracker *tr, size_t *a, uint64_t start, uint64_t end)
{
	while (*a < tr->nareas && tr->areas[*a].end <= start)
		(*a)++;
	for (size_t k = *a; k < tr->nareas && start < end; k++) {
		if (tr->areas[k].start > start)
			return false;
		start = tr->areas[k].end;
	}
	return start >= end;
}

/*
 * Keep in the round (sorted) only what lies in its own layout, so that
 * every page reported is in an area pt_tracker_vmas() hands out.  The
 * uffd backend reports a whole VMA it had to register afresh as the kernel
 * has it when arming, which can reach past the area this round's layout
 * read (the VMA grew, or merged with a neighbour, in between).  Such pages
 * were not mapped there when this round read the layout (else they would
 * be in it), so whatever they hold got there after that: the next round finds
 * them in an area this one did not track and reports them whole, with
 * their area.  The layout read is where a round draws its line.
 * Out of memory, the round is left as it is: more pages, never fewer.
 */
static void clip_to_layout(struct pt_tracker *tr)
{
	struct pt_dirtylist out = { 0 };
	uint64_t before = 0, after = 0;
	size_t a = 0, i;
	int err = 0;

	for (i = 0; i < tr->round.n; i++)
		if (!in_areas(tr, &a, tr->round.d[i].start, tr->round.d[i].end))
			break;
	if (i == tr->round.n)
		return;		/* the usual case: all inside */
	a = 0;
	for (i = 0; i < tr->round.n && !err; i++) {
		const struct pt_dirty *d = &tr->round.d[i];

		before += d->end - d->start;
		while (a < tr->nareas && tr->areas[a].end <= d->start)
			a++;
		for (size_t k = a; k < tr->nareas && tr->areas[k].start < d->end && !err; k++) {
			uint64_t s = tr->areas[k].start > d->start ? tr->areas[k].start : d->start;
			uint64_t e = tr->areas[k].end < d->end ? tr->areas[k].end : d->end;

			if (s < e) {
				err = pt__dirty_add(&out, s, e, d->flags);
				after += e - s;
			}
		}
	}
	if (err) {
		pt__log(PT_LOG_WARN, "pid %d: out of memory: pages reported outside the layout "
			"of the round are left in", (int)tr->pid);
		pt__dirty_free(&out);
		return;
	}
	pt__log(PT_LOG_DEBUG, "pid %d: %llu pages reported outside this round's layout "
		"(an area changed while being armed): reported with their area next round",
		(int)tr->pid, (unsigned long long)((before - after) >> PT_PAGE_SHIFT));
	pt__dirty_free(&tr->round);
	tr->round = out;
}

/*
 * Arm the new parts deferred by this round's walk (in address order).  A
 * part the backend refused has its whole area hashed instead, as in
 * run_round().
 */
static int arm_parts(struct pt_tracker *tr, const struct pt_vma *vmas, uint8_t *methods,
		     uint8_t *reasons, struct pt_parts *parts)
{
	int err = tr->ops->arm_batch(tr, parts, &tr->round);

	for (size_t k = 0; k < parts->n && !err; k++) {
		const struct pt_part *p = &parts->p[k];
		size_t i = (size_t)(p->v - vmas);
		uint64_t s = p->v->start > tr->start ? p->v->start : tr->start;
		uint64_t e = p->v->end < tr->end ? p->v->end : tr->end;

		/* -ENOENT: changed or vanished while armed, reported whole (track_part) */
		if (!p->err || p->err == -ENOENT)
			continue;
		if (p->err != -EOPNOTSUPP) {
			err = p->err;
			break;
		}
		if (methods[i] != PT_METHOD_BACKEND)
			continue;	/* another part of it fell back already */
		methods[i] = PT_METHOD_HASH;
		reasons[i] = PT_AREA_REASON_REFUSED;
		tr->st.areas_fallback++;
		err = for_each_part(tr, p->v, s, e, methods[i], false, track_part, &tr->round);
	}
	return err;
}

/* One full round: every area harvested (or armed when new). */
static int run_round(struct pt_tracker *tr, bool first)
{
	struct pt_vma *vmas = NULL;
	struct pt_parts parts = { 0 };
	uint8_t *methods = NULL, *reasons;
	uint64_t *counts = NULL;	/* per area: pages faulted, pages hashed */
	size_t n = 0;
	uint64_t t0 = pt__now_ns();
	int err;

	struct pt_usage usage;

	usage_now(tr, &usage);
	tr->round.n = tr->holes.n = 0;
	tr->st.pages_new = tr->st.pages_hashed = tr->st.pages_faulted = tr->st.hash_cpu_ns = 0;
	if (tr->hot)
		tr->hot->rearmed_pages = 0;
	if (!pt__target_mm_alive(tr->t)) {
		pt__log(PT_LOG_INFO, "pid %d exited or exec'd: its tracked memory is gone",
			(int)tr->pid);
		return -ESRCH;
	}
	err = pt_vmas_read(tr->t, &vmas, &n);
	if (err)
		return err;
	/*
	 * After the layout: a buffer registered between the two is in an
	 * area hashed from now on (reported whole this round).
	 */
	if (tr->ops != &pt__track_hash_ops && (err = pt__pinned_ranges(tr->t, &tr->pinned)))
		goto out;
	tr->pop_cur.n = 0;
	if (tr->pop_prev_sorted < tr->pop_prev.n)	/* pages noted as copied with data */
		pt__dirty_sort_merge(&tr->pop_prev);
	methods = malloc(n ? 2 * n : 1);
	counts = calloc(n ? 2 * n : 1, sizeof(*counts));
	if (!methods || !counts) {
		err = -ENOMEM;
		goto out;
	}
	reasons = methods + n;
	if (tr->ops->round_begin && (err = tr->ops->round_begin(tr)))
		goto out;
	tr->st.areas_fallback = 0;
	/*
	 * Known parts are harvested first; new ones, with a backend that
	 * can, are armed together afterwards (one freeze of the target for
	 * all of them, not one per area).
	 */
	tr->defer = tr->ops->arm_batch ? &parts : NULL;
	for (size_t i = 0; i < n; i++) {
		const struct pt_vma *v = &vmas[i];
		uint64_t s = v->start > tr->start ? v->start : tr->start;
		uint64_t e = v->end < tr->end ? v->end : tr->end;

		methods[i] = 0xff;
		reasons[i] = PT_AREA_REASON_NONE;
		if (s >= e || untracked_area(v))
			continue;
		methods[i] = (uint8_t)area_method(tr, v, &reasons[i]);
		if (methods[i] == PT_METHOD_HASH && tr->ops != &pt__track_hash_ops)
			tr->st.areas_fallback++;
		uint64_t f0 = tr->st.pages_faulted, h0 = tr->st.pages_hashed;

		err = for_each_part(tr, v, s, e, methods[i], reasons[i] == PT_AREA_REASON_BUDGET,
				    track_part, &tr->round);
		if (err == -EOPNOTSUPP && methods[i] == PT_METHOD_BACKEND) {
			/*
			 * The backend refused the area (registration failed: the
			 * target's own userfaultfd, or the area changed since the
			 * layout was read): hash it rather than miss its writes.
			 */
			methods[i] = PT_METHOD_HASH;
			reasons[i] = PT_AREA_REASON_REFUSED;
			tr->st.areas_fallback++;
			err = for_each_part(tr, v, s, e, methods[i], false, track_part, &tr->round);
		}
		counts[2 * i] = tr->st.pages_faulted - f0;
		counts[2 * i + 1] = tr->st.pages_hashed - h0;
		if (err)
			break;
	}
	tr->defer = NULL;
	if (!err && parts.n)
		err = arm_parts(tr, vmas, methods, reasons, &parts);
	if (tr->ops->round_end)
		tr->ops->round_end(tr);
	if (!err)
		err = pt__fault(PT_FAULT_ROUND);
	if (err)
		goto out;
	err = save_areas(tr, vmas, n, methods, reasons, counts);
	if (err)
		goto out;
	tr->saves++;
	/* the populated set built this round is the reference for the next */
	pt__dirty_sort_merge(&tr->pop_cur);
	struct pt_dirtylist swap = tr->pop_prev;
	tr->pop_prev = tr->pop_cur;
	tr->pop_cur = swap;
	tr->pop_prev_sorted = tr->pop_prev.n;
	if (first)
		tr->round.n = 0;	/* arming round: nothing to report */
	pt__dirty_sort_merge(&tr->round);
	mark_holes(tr);
	clip_to_layout(tr);
	if (tr->hot && pt__hot_round_end(tr->hot))
		pt__log(PT_LOG_WARN, "pid %d: out of memory: hot pages are re-armed next round",
			(int)tr->pid);
	tr->st.pages_dirty = tr->st.pages_hot = 0;
	for (size_t i = 0; i < tr->round.n; i++) {
		uint64_t pages = (tr->round.d[i].end - tr->round.d[i].start) >> PT_PAGE_SHIFT;

		tr->st.pages_dirty += pages;
		if (tr->round.d[i].flags & PT_DIRTY_HOT)
			tr->st.pages_hot += pages;
	}
	if (tr->hot) {
		tr->st.pages_rearmed = tr->hot->rearmed_pages;
		tr->st.hot_rounds = tr->hot->k;
		tr->st.hot_lease = tr->hot->lease;
	}
	if (!first)
		tr->st.rounds++;
	usage_round(tr, &usage, first);
	tr->st.collect_ns = pt__now_ns() - t0;
out:
	if (err)	/* what its harvests left writable is re-armed by the next */
		pt__hot_forget(tr->hot);
	free(parts.p);
	free(methods);
	free(counts);
	pt_vmas_free(vmas);
	return err;
}

static const struct pt_track_ops *ops_for(enum pt_track_backend b)
{
	switch (b) {
	case PT_TRACK_UFFD:
		return &pt__track_uffd_ops;
	case PT_TRACK_SOFTDIRTY:
		return &pt__track_softdirty_ops;
	case PT_TRACK_HASH:
		return &pt__track_hash_ops;
	case PT_TRACK_AUTO:
		break;
	}
	return NULL;
}

static enum pt_track_backend env_backend(void)
{
	const char *e = getenv("PT_FORCE_TRACKER");

	if (!e)
		return PT_TRACK_AUTO;
	if (!strcmp(e, "uffd"))
		return PT_TRACK_UFFD;
	if (!strcmp(e, "softdirty"))
		return PT_TRACK_SOFTDIRTY;
	if (!strcmp(e, "hash"))
		return PT_TRACK_HASH;
	return PT_TRACK_AUTO;
}

/*
 * Undo a backend that failed in init() or in its first round, and drop
 * everything its round gathered, so that the next one starts as if it
 * were the first: nothing of it stays in the target or in memory.
 */
static int backend_undo(struct pt_tracker *tr)
{
	if (tr->ops && tr->ops->fini)
		tr->ops->fini(tr);	/* a failure to undo is logged by the backend */
	tr->ops = NULL;
	tr->priv = NULL;	/* fini freed it; a backend without fini keeps none */
	free(tr->areas);
	tr->areas = NULL;
	tr->nareas = 0;
	tr->round.n = tr->pop_prev.n = tr->pop_cur.n = tr->pinned.n = tr->holes.n = 0;
	tr->pop_prev_sorted = 0;
	tr->st.areas_fallback = 0;
	pt__hashstore_free(tr->hs);	/* hashes of its fallback areas */
	tr->hs = pt__hashstore_new();
	return tr->hs ? 0 : -ENOMEM;
}

/* Start backend @b: its init() and its first (arming) round. */
static int backend_start(struct pt_tracker *tr, enum pt_track_backend b)
{
	int err;

	tr->backend = b;
	tr->ops = ops_for(b);
	if (!tr->ops)
		return -EINVAL;
	err = tr->ops->init(tr);
	if (!err)
		err = run_round(tr, true);
	if (err) {
		int e2 = backend_undo(tr);

		pt__log(PT_LOG_INFO, "tracker backend %s not usable: %s",
			pt_track_backend_name(b), strerror(-err));
		if (e2)
			return e2;
	}
	return err;
}

struct pt_tracker *pt_tracker_create(pid_t pid, const struct pt_tracker_opts *opts)
{
	enum pt_track_backend want;
	uint64_t start, end;
	struct pt_tracker *tr;
	int err;

	if (pid < 0 || !PT_OPTS_VALID(opts, pt_tracker_opts)) {
		errno = EINVAL;
		return NULL;
	}
	/* each field on its own: a short sz gets defaults for what it does not cover */
	want = PT_OPTS_GET(opts, backend, PT_TRACK_AUTO);
	start = PT_OPTS_GET(opts, start, 0);
	end = PT_OPTS_GET(opts, end, 0);
	tr = calloc(1, sizeof(*tr));
	if (!tr) {
		errno = ENOMEM;
		return NULL;
	}
	tr->st.sz = sizeof(tr->st);
	tr->start = 0;
	tr->end = PT_USER_ADDR_END;
	tr->flags = PT_OPTS_GET(opts, flags, 0);
	if (start || end) {
		tr->start = start & ~(PT_PAGE_SIZE - 1);
		tr->end = (end + PT_PAGE_SIZE - 1) & ~(PT_PAGE_SIZE - 1);
	}
	if (want == PT_TRACK_AUTO)
		want = env_backend();
	/*
	 * Measured once per process, before anything is armed (the probe's
	 * scratch mapping never enters a round of a tracker of the caller).
	 */
	if (want != PT_TRACK_HASH)
		pt_fault_cost_ns(&tr->fault_cost_ns, NULL);
	tr->t = pt_target_create(pid, NULL);
	if (!tr->t) {
		err = -errno;
		goto fail;
	}
	tr->pid = pt_target_pid(tr->t);
	tr->self = pid == 0 || pid == getpid();
	tr->hs = pt__hashstore_new();
	if (!tr->hs) {
		err = -ENOMEM;
		goto fail;
	}
	if (want == PT_TRACK_AUTO) {
		/*
		 * Best available: uffd, then soft-dirty, then hashing.  A
		 * backend whose init or first round fails is undone before
		 * the next is tried; a target that is gone ends the search
		 * (and so does memory too short for a fresh hash store).
		 */
		const enum pt_track_backend order[] = { PT_TRACK_UFFD, PT_TRACK_SOFTDIRTY, PT_TRACK_HASH };

		/*
		 * Another pagetrack tracking the target (-EALREADY) is not a
		 * reason to pick a lesser backend behind the user's back.  Why
		 * each better backend was passed over is kept for the stats.
		 */
		err = -EOPNOTSUPP;
		for (size_t i = 0; i < 3 && err && err != -ESRCH && err != -EALREADY && tr->hs; i++) {
			err = backend_start(tr, order[i]);
			if (err && order[i] == PT_TRACK_UFFD)
				tr->st.auto_uffd_err = -err;
			else if (err && order[i] == PT_TRACK_SOFTDIRTY)
				tr->st.auto_softdirty_err = -err;
		}
	} else {
		err = backend_start(tr, want);
	}
	if (err)
		goto fail;
	/*
	 * Hot-page skipping needs a backend that can leave chosen pages
	 * writable: uffd.  Soft-dirty re-arms the whole address space at
	 * once (clear_refs), and hashing charges the target nothing.
	 */
	if ((tr->flags & PT_TRACK_HOT) && tr->backend == PT_TRACK_UFFD) {
		tr->hot = pt__hot_new(PT_OPTS_GET(opts, hot_rounds, 0), PT_OPTS_GET(opts, hot_lease, 0));
		if (!tr->hot) {
			err = -ENOMEM;
			goto fail;
		}
		tr->st.hot_rounds = tr->hot->k;
		tr->st.hot_lease = tr->hot->lease;
	}
	return tr;
fail:
	pt_tracker_free(tr);
	errno = -err;
	return NULL;
}

int pt_tracker_free(struct pt_tracker *tr)
{
	int err = 0;

	if (!tr)
		return 0;
	if (tr->ops && tr->ops->fini)
		err = tr->ops->fini(tr);
	pt__hashstore_free(tr->hs);
	pt__hot_free(tr->hot);
	pt__dirty_free(&tr->round);
	pt__dirty_free(&tr->pop_prev);
	pt__dirty_free(&tr->pop_cur);
	pt__dirty_free(&tr->pinned);
	pt__dirty_free(&tr->holes);
	free(tr->areas);
	pt_vmas_free(tr->layout);
	pt_target_free(tr->t);
	free(tr);
	return err;
}

enum pt_track_backend pt_tracker_backend(const struct pt_tracker *tr)
{
	return tr ? tr->backend : PT_TRACK_AUTO;
}

int pt_tracker_collect(struct pt_tracker *tr, struct pt_dirty *out, size_t cap, bool *more)
{
	size_t k = 0;
	int err;

	if (!tr || !more || (!out && cap) || !cap)
		return -EINVAL;
	if (!tr->in_round) {
		err = run_round(tr, false);
		if (err) {
			pt__log(PT_LOG_WARN, "collect round failed: %s", strerror(-err));
			return pt__target_errno(tr->t, err);
		}
		tr->in_round = true;
		tr->emitted = 0;
	}
	while (k < cap && tr->emitted < tr->round.n)
		out[k++] = tr->round.d[tr->emitted++];
	*more = tr->emitted < tr->round.n;
	if (!*more)
		tr->in_round = false;
	return (int)k;
}

static bool page_is_zero(const unsigned char *p)
{
	uint64_t w[8], acc = 0;

	for (size_t off = 0; off < PT_PAGE_SIZE; off += sizeof(w)) {
		memcpy(w, p + off, sizeof(w));	/* any alignment */
		for (int k = 0; k < 8; k++)
			acc |= w[k];
		if (acc)
			return false;
	}
	return true;
}

int pt_tracker_note_copy(struct pt_tracker *tr, uint64_t addr, const void *data, size_t len)
{
	uint64_t end = addr + len;

	if (!tr || (!data && len) || (addr | len) & (PT_PAGE_SIZE - 1) || end < addr)
		return -EINVAL;
	for (size_t i = first_area_after(tr, addr); i < tr->nareas && tr->areas[i].start < end; i++) {
		const struct pt_area *a = &tr->areas[i];
		uint64_t s = a->start > addr ? a->start : addr;
		uint64_t e = a->end < end ? a->end : end;
		const unsigned char *p = (const unsigned char *)data + (s - addr);
		int err = 0;

		if (s >= e)
			continue;
		if (a->method == PT_METHOD_HASH) {	/* compare the next round with the copy */
			if (tr->hs)
				err = pt__hash_note(tr->hs, s, p, (size_t)((e - s) >> PT_PAGE_SHIFT));
		} else {
			/*
			 * Page tables see every write after the harvest, but not
			 * a page that loses its data before the next one (dropped,
			 * or unmapped and its address mapped again) when it had
			 * none at the harvest: the copy would keep the bytes it
			 * read.  A page copied with data counts as populated, so
			 * its loss is reported as zeroed.
			 */
			struct pt_dirtylist in_order = { .d = tr->pop_prev.d, .n = tr->pop_prev_sorted };

			for (uint64_t pg = s; pg < e && !err; pg += PT_PAGE_SIZE, p += PT_PAGE_SIZE) {
				size_t k = first_after(&in_order, pg);

				/* held data at the harvest already (the usual case): nothing to add */
				if ((k < in_order.n && in_order.d[k].start <= pg) || page_is_zero(p))
					continue;
				err = pt__dirty_add(&tr->pop_prev, pg, pg + PT_PAGE_SIZE, 0);
				in_order.d = tr->pop_prev.d;	/* the add may have moved it */
			}
		}
		if (err)
			return err;
	}
	return 0;
}

int pt_tracker_stats(const struct pt_tracker *tr, struct pt_tracker_stats *st)
{
	size_t sz;

	/* an output struct: a newer caller's fields must be zero, so it can tell
	 * "not filled in by this library" from a value */
	if (!tr || !st || !PT_OPTS_VALID(st, pt_tracker_stats))
		return -EINVAL;
	sz = st->sz < sizeof(*st) ? st->sz : sizeof(*st);
	sz -= (sz - sizeof(size_t)) % sizeof(uint64_t);	/* whole fields only */
	memcpy((char *)st + sizeof(size_t), (const char *)&tr->st + sizeof(size_t),
	       sz - sizeof(size_t));
	return 0;
}

int pt_tracker_vmas(const struct pt_tracker *tr, struct pt_vma **out, size_t *count)
{
	if (!tr || !out || !count)
		return -EINVAL;
	*out = pt__vmas_pack(tr->layout, tr->nareas);
	if (!*out)
		return -ENOMEM;
	*count = tr->nareas;
	return 0;
}

int pt_tracker_area(const struct pt_tracker *tr, uint64_t addr, struct pt_track_area *info)
{
	struct pt_track_area a = { .sz = sizeof(a) };
	size_t i, sz;

	if (!tr || !info || info->sz < sizeof(size_t))
		return -EINVAL;
	i = first_area_after(tr, addr);
	if (i == tr->nareas || tr->areas[i].start > addr)
		return -ENOENT;
	a.start = tr->areas[i].start;
	a.end = tr->areas[i].end;
	a.method = tr->areas[i].method == PT_METHOD_HASH && tr->ops != &pt__track_hash_ops
			   ? PT_AREA_HASHED : PT_AREA_BACKEND;
	a.reason = a.method == PT_AREA_HASHED ? tr->areas[i].reason : PT_AREA_REASON_NONE;
	a.pages_faulted = tr->areas[i].faulted;
	a.pages_hashed = tr->areas[i].hashed;
	/* a caller built against a larger struct gets zeros past ours */
	sz = info->sz < sizeof(a) ? info->sz : sizeof(a);
	memset((char *)info + sizeof(size_t), 0, info->sz - sizeof(size_t));
	memcpy((char *)info + sizeof(size_t), (const char *)&a + sizeof(size_t), sz - sizeof(size_t));
	return 0;
}

const char *pt_area_reason_name(enum pt_area_reason r)
{
	switch (r) {
	case PT_AREA_REASON_NONE:
		return "none";
	case PT_AREA_REASON_SHARED:
		return "shared";
	case PT_AREA_REASON_PINNED:
		return "pinned";
	case PT_AREA_REASON_UNSUPPORTED:
		return "unsupported";
	case PT_AREA_REASON_REFUSED:
		return "refused";
	case PT_AREA_REASON_BUDGET:
		return "budget";
	}
	return NULL;
}

int pt_tracker_set_area_method(struct pt_tracker *tr, uint64_t addr, enum pt_area_method m)
{
	struct pt_area *a;
	size_t i;

	if (!tr || (m != PT_AREA_HASHED && m != PT_AREA_BACKEND))
		return -EINVAL;
	i = first_area_after(tr, addr);
	if (i == tr->nareas || tr->areas[i].start > addr)
		return -ENOENT;
	if (tr->ops != &pt__track_uffd_ops)
		return -EOPNOTSUPP;
	a = &tr->areas[i];
	if (a->method == PT_METHOD_HASH && a->reason != PT_AREA_REASON_BUDGET)
		return m == PT_AREA_HASHED ? 0 : -EOPNOTSUPP;
	a->want = (uint8_t)(m + 1);	/* read by the next round's area_method() */
	return 0;
}
