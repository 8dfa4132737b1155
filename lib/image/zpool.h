/* SPDX-License-Identifier: MIT */
/*
 * Frame compression for the image writer (lib/image/zpool.c): a ring of
 * frame slots compressed by worker threads, handed back strictly in
 * submission order so the writer can put them in the file in order.
 *
 * One thread (the writer's) calls every function here; the workers only
 * touch slots that were submitted.  With one thread (the fallback,
 * PT_FORCE_ZSTD_THREADS=1) there are no workers: submit compresses in
 * the caller, as the writer always did.  The bytes of a frame depend on
 * the level and the content only, never on the thread that compressed
 * it.
 */
#ifndef PT_IMAGE_ZPOOL_H
#define PT_IMAGE_ZPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pt_internal.h"

struct pt__zpool;

/* One frame: filled by the writer, compressed and hashed by a worker. */
struct pt__zframe {
	unsigned char *ubuf;		/* fcap pages */
	uint32_t npages;		/* pages filled */
	uint32_t no;			/* frame number (submission order) */
	/* results, valid once returned by pt__zpool_done() */
	const unsigned char *cbuf;
	size_t clen;			/* compressed length */
	size_t zerr;			/* a zstd error code, or 0 */
	uint64_t payload_hash;		/* XXH3 of cbuf[0, clen) */
	uint64_t content_hash;		/* XXH3 of ubuf[0, npages pages) */
};

/*
 * The number of threads compressing: PT_FORCE_ZSTD_THREADS=N (1..16) if
 * set, else the online CPUs the process may run on (its affinity), capped
 * at 4; at least 1.  1 means inline.
 */
PT_HIDDEN unsigned pt__zpool_threads(void);
/*
 * @nthreads workers (1: none, inline) and max(2 * nthreads, 16) slots of
 * @fcap pages (1 slot when inline).  0, -ENOMEM, -EINVAL (zstd rejected the
 * level) or -errno from pthread_create.
 */
PT_HIDDEN int pt__zpool_create(int level, uint32_t fcap, unsigned nthreads,
			       struct pt__zpool **out);
/* The slot being filled (never NULL once created). */
PT_HIDDEN struct pt__zframe *pt__zpool_filling(struct pt__zpool *p);
/*
 * Submit the slot being filled (npages > 0).  Inline, it is compressed
 * before this returns.  The next slot to fill may still be in flight:
 * call pt__zpool_full() and hand the oldest out before filling again.
 */
PT_HIDDEN void pt__zpool_submit(struct pt__zpool *p);
/* True when the next slot to fill is still in flight. */
PT_HIDDEN bool pt__zpool_full(const struct pt__zpool *p);
/*
 * The oldest submitted frame not yet released, once compressed: NULL when
 * none is submitted, or when !@wait and the oldest is not done yet.
 * Release it with pt__zpool_release() before the next call.
 */
PT_HIDDEN const struct pt__zframe *pt__zpool_done(struct pt__zpool *p, bool wait);
PT_HIDDEN void pt__zpool_release(struct pt__zpool *p);
/* Stop the workers (waiting for the frames they compress), free all.  NULL is fine. */
PT_HIDDEN void pt__zpool_free(struct pt__zpool *p);

#endif
