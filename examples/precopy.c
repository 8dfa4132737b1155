/* SPDX-License-Identifier: MIT */
/*
 * precopy: the copy loop of a pre-copy migration, on the public API.
 * Each round collects the pages written since the previous one, copies
 * them out of the running target (here: only counted) and tells the
 * tracker what was copied, until a round is small enough to be the last
 * (a real migration would stop the target for that one).
 *
 *   cc precopy.c $(pkg-config --cflags --libs pagetrack)
 *   ./precopy PID [ROUNDS]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <pagetrack/pagetrack.h>

#define PAGE 4096u

/* Copy one reported page; a page unmapped meanwhile is copied as zeros. */
static void copy_page(struct pt_tracker *tr, pid_t pid, uint64_t addr, uint64_t *bytes)
{
	static unsigned char buf[PAGE];
	struct iovec l = { buf, PAGE }, r = { (void *)(uintptr_t)addr, PAGE };

	if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)PAGE)
		memset(buf, 0, PAGE);	/* gone: the destination drops it */
	/* ... send buf to the destination here ... */
	*bytes += PAGE;
	/* without this, a hashed area could miss a change undone after the copy */
	pt_tracker_note_copy(tr, addr, buf, PAGE);
}

/*
 * Round 0, after arming: every page that holds data (present or swapped,
 * found with pt_scan), so the rounds after it only need what changed.
 * (Pages of shared memory this process does not map, PT_STATE_CACHED,
 * live in the backing object: a real tool copies that too.  Reading a
 * swapped page swaps it in; doc/hashing.md shows how to avoid that.)
 */
static int copy_all(struct pt_tracker *tr, pid_t pid, uint64_t *bytes)
{
	struct pt_target *t = pt_target_create(pid, NULL);
	struct pt_vma *v = NULL;
	struct pt_region r[256];
	size_t nv = 0;
	int err;

	if (!t)
		return -errno;
	err = pt_vmas_read(t, &v, &nv);
	for (size_t i = 0; !err && i < nv; i++) {
		uint64_t cur = v[i].start;

		while (cur < v[i].end) {
			int n = pt_scan(t, &cur, v[i].end, r, 256, NULL);

			if (n <= 0) {	/* 0: done; an area gone meanwhile is skipped */
				err = n == -ESRCH ? n : 0;
				break;
			}
			for (int k = 0; k < n; k++)
				if (r[k].state == PT_STATE_PRESENT || r[k].state == PT_STATE_SWAPPED)
					for (uint64_t a = r[k].start; a < r[k].end; a += PAGE)
						copy_page(tr, pid, a, bytes);
		}
	}
	pt_vmas_free(v);
	pt_target_free(t);
	return err;
}

int main(int argc, char **argv)
{
	PT_OPTS(pt_tracker_opts, o, .backend = PT_TRACK_AUTO);
	struct pt_dirty d[1024];
	struct pt_tracker *tr;
	pid_t pid = argc > 1 ? (pid_t)atoi(argv[1]) : 0;
	int rounds = argc > 2 ? atoi(argv[2]) : 10;

	if (pid <= 0) {
		fprintf(stderr, "usage: precopy PID [ROUNDS]\n");
		return 2;
	}
	uint64_t all = 0;
	int err;

	tr = pt_tracker_create(pid, &o);	/* arms everything */
	if (!tr) {
		fprintf(stderr, "precopy: pt_tracker_create(%d): %s\n", (int)pid, strerror(errno));
		return 1;
	}
	printf("tracking %d with the %s backend\n", (int)pid,
	       pt_track_backend_name(pt_tracker_backend(tr)));
	if ((err = copy_all(tr, pid, &all))) {
		fprintf(stderr, "precopy: full copy: %s\n", strerror(-err));
		pt_tracker_free(tr);
		return 1;
	}
	printf("round 0: %" PRIu64 " KiB copied\n", all / 1024);
	for (int round = 1; round <= rounds; round++) {
		uint64_t bytes = 0, zeros = 0;
		bool more = true;

		while (more) {
			int n = pt_tracker_collect(tr, d, 1024, &more);

			if (n < 0) {
				fprintf(stderr, "precopy: collect: %s\n", strerror(-n));
				pt_tracker_free(tr);
				return 1;
			}
			for (int i = 0; i < n; i++) {
				/*
				 * A hole of a new area holds no data: zeros as of this
				 * round.  Record it as zero without reading it (no note
				 * needed: the tracker counts it as zeros already); a
				 * write into it later is reported by a later round.
				 */
				if (d[i].flags & PT_DIRTY_HOLE) {
					/* ... tell the destination: [start, end) is zero ... */
					zeros += d[i].end - d[i].start;
					continue;
				}
				for (uint64_t a = d[i].start; a < d[i].end; a += PAGE)
					copy_page(tr, pid, a, &bytes);
			}
		}
		/*
		 * The destination mirrors the layout this round tracked: pages in
		 * no area of it are dropped (the tracker does not report unmaps).
		 * It is the round's own, so every page copied above is in it.
		 */
		struct pt_vma *layout = NULL;
		size_t nl = 0;

		if (pt_tracker_vmas(tr, &layout, &nl) == 0) {
			/* ... send the areas (start, end, path) to the destination here ... */
			pt_vmas_free(layout);
		}
		printf("round %d: %" PRIu64 " KiB copied, %" PRIu64 " KiB of holes recorded as zero, "
		       "%zu areas\n", round, bytes / 1024, zeros / 1024, nl);
		if (bytes < 64 * PAGE)	/* small enough: stop the target, copy once more */
			break;
		usleep(100 * 1000);
	}
	pt_tracker_free(tr);	/* the target is left as it was found */
	return 0;
}
