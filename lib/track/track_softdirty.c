/* SPDX-License-Identifier: MIT */
/*
 * Tracker backend: soft-dirty.  Writing "4" to /proc/PID/clear_refs
 * clears every soft-dirty bit and write-protects the pages; the next
 * write sets bit 55 again.  Harvest (read the bits) and re-arm (clear
 * them) are two steps, so the target is frozen for both: a write in
 * between would otherwise be cleared unseen.  The calling process cannot
 * freeze itself, so self-tracking needs it to have a single thread.
 * Used only where the probe shows soft-dirty really works.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "process/freeze.h"
#include "tracker.h"

struct sd_priv {
	int clear_refs_fd;
	struct pt_freeze fz;
	bool frozen;
	bool relaid;		/* layout re-read since the freeze of this round */
};

static int count_threads(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int sd_clear(struct pt_tracker *tr)
{
	struct sd_priv *s = tr->priv;

	if (pwrite(s->clear_refs_fd, "4", 1, 0) != 1)
		return pt__target_errno(tr->t, errno);
	return 0;
}

static int sd_init(struct pt_tracker *tr)
{
	struct sd_priv *s;
	char path[64];

	if (pt_feature(PT_FEAT_SOFT_DIRTY, NULL) != PT_YES)
		return -EOPNOTSUPP;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	tr->priv = s;
	snprintf(path, sizeof(path), "%s/clear_refs", tr->t->procdir);
	s->clear_refs_fd = open(path, O_WRONLY | O_CLOEXEC);
	if (s->clear_refs_fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return 0;
}

static bool sd_can_track(struct pt_tracker *tr, const struct pt_vma *v)
{
	(void)tr;
	/* soft-dirty is lost when a shared page is swapped out (seed 000) */
	return !(v->prot & PT_MAP_SHARED);
}

static int sd_round_begin(struct pt_tracker *tr)
{
	struct sd_priv *s = tr->priv;
	int err;

	s->relaid = false;
	if (tr->self) {
		int n = count_threads(tr->pid);

		if (n < 0)
			return n;
		return n == 1 ? 0 : -EOPNOTSUPP;
	}
	err = pt__freeze(tr->pid, &s->fz);
	if (err)
		return err;
	s->frozen = true;
	return 0;
}

static void sd_round_end(struct pt_tracker *tr)
{
	struct sd_priv *s = tr->priv;
	int err = sd_clear(tr);

	if (err)
		pt__log(PT_LOG_WARN, "clear_refs failed: %s", strerror(-err));
	if (s->frozen) {
		uint64_t dt = pt__thaw(&s->fz);

		if (dt > tr->st.pause_ns_max)
			tr->st.pause_ns_max = dt;
		if (dt > tr->st.pause_total_ns_max)
			tr->st.pause_total_ns_max = dt;
		s->frozen = false;
	}
}

/*
 * Walk [start,end) with the scan API: pages with data are populated
 * (recorded when @pop), soft-dirty ones (when @out) are written, the rest
 * are holes (added to @none when given).  @holes (may be NULL): the pages
 * that certainly read as zeros, absent or mapping the zero page.
 */
static int sd_walk(struct pt_tracker *tr, uint64_t start, uint64_t end, struct pt_dirtylist *out,
		   struct pt_dirtylist *none, bool pop, struct pt_dirtylist *holes)
{
	PT_OPTS(pt_scan_opts, o, .flags = PT_SCAN_NO_SHARED | PT_SCAN_NO_EXCLUSIVE);
	struct pt_region r[512];
	uint64_t cur = start;
	int err = 0;

	while (cur < end) {
		int n = pt_scan(tr->t, &cur, end, r, 512, &o);

		if (n < 0)
			return n;
		if (n == 0)
			break;
		for (int i = 0; i < n && !err; i++) {
			/*
			 * A page mapping the zero page holds no data: after
			 * MADV_DONTNEED a read fault maps it without setting
			 * soft-dirty, and only the populated set can tell the
			 * content went from data to zero.
			 */
			bool zero = r[i].state == PT_STATE_PRESENT && (r[i].attrs & PT_ATTR_ZERO);
			bool data = (r[i].state == PT_STATE_PRESENT && !zero) ||
				    r[i].state == PT_STATE_SWAPPED;

			if (!data) {
				err = none ? pt__dirty_add(none, r[i].start, r[i].end, 0) : 0;
				if (!err && holes && !(r[i].attrs & PT_ATTR_FILE) &&
				    (zero || r[i].state == PT_STATE_ABSENT))
					err = pt__hole_add(tr, r[i].start, r[i].end);
				continue;
			}
			if (pop)
				err = pt__pop_add(tr, r[i].start, r[i].end);
			if (!err && out && (r[i].attrs & PT_ATTR_SOFT_DIRTY)) {
				tr->st.pages_faulted += (r[i].end - r[i].start) >> PT_PAGE_SHIFT;
				err = pt__dirty_add(out, r[i].start, r[i].end, 0);
			}
		}
		if (err)
			return err;
	}
	return 0;
}

static int sd_arm(struct pt_tracker *tr, const struct pt_vma *v, uint64_t start, uint64_t end,
		  struct pt_dirtylist *out)
{
	struct pt_dirtylist *holes = pt__area_zero_fill(v) ? &tr->holes : NULL;
	struct sd_priv *s = tr->priv;
	size_t nholes = holes ? holes->n : 0;
	int err;

	(void)out;
	/*
	 * The round's layout was read before the freeze: an area replaced
	 * by a file mapping in between would show its pages as absent, not
	 * as holes that read zeros.  Walk with the layout as frozen (once a
	 * round: it holds still now); there a file page is not resolved
	 * (PT_SCAN_NO_SHARED) and never taken for a hole.
	 */
	if (holes && !s->relaid) {
		struct pt_vma *vm = NULL;
		size_t n = 0;

		if (pt_vmas_read(tr->t, &vm, &n) == 0)
			s->relaid = true;
		else
			holes = NULL;	/* cannot tell: report the area whole */
		pt_vmas_free(vm);
	}
	/*
	 * clear_refs at the end of the round arms it; record what holds
	 * data.  The target is frozen for the whole round (another process)
	 * or is the caller itself (single-threaded), so a page seen empty
	 * here is empty when clear_refs runs, and a write into it afterwards
	 * makes a soft-dirty page, which the next harvest reports.
	 */
	err = sd_walk(tr, start, end, NULL, NULL, true, holes);
	if (err && holes)
		holes->n = nholes;
	return err;
}

static int sd_harvest(struct pt_tracker *tr, const struct pt_vma *v, uint64_t start, uint64_t end,
		      struct pt_dirtylist *out)
{
	struct pt_dirtylist none = { 0 };
	int err;

	(void)v;
	/* harvest derives what holds data from the holes */
	err = sd_walk(tr, start, end, out, &none, false, NULL);
	if (!err)
		err = pt__pop_from_holes(tr, start, end, &none, out);
	pt__dirty_free(&none);
	return err;
}

static int sd_fini(struct pt_tracker *tr)
{
	struct sd_priv *s = tr->priv;

	if (!s)
		return 0;
	if (s->frozen)
		pt__thaw(&s->fz);
	if (s->clear_refs_fd >= 0)
		close(s->clear_refs_fd);
	free(s);
	tr->priv = NULL;
	return 0;
}

const struct pt_track_ops pt__track_softdirty_ops = {
	.name = "softdirty",
	.init = sd_init,
	.can_track = sd_can_track,
	.arm = sd_arm,
	.harvest = sd_harvest,
	.round_begin = sd_round_begin,
	.round_end = sd_round_end,
	.fini = sd_fini,
};
