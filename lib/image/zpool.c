// SPDX-License-Identifier: MIT
/*
 * Frame compression for the image writer (lib/image/zpool.h).
 *
 * A ring of max(2W, ZP_SLOTS_MIN) slots: the writer fills one, submits
 * it, and hands frames out in ring order (submission order) once the
 * workers have compressed them; a worker takes the oldest queued slot.
 * So at most that many frames are in memory, and a frame that compresses
 * slowly holds back the writer only once the ring is full; then, if no worker has taken the
 * oldest frame yet, the writer compresses it itself rather than sleep.
 * Each worker (and the writer) has its own zstd context with the same
 * parameters: a frame's bytes do not depend on
 * which context compressed it (one-shot ZSTD_compress2, no dictionary,
 * no multithreading inside zstd).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "image/format.h"
#include "image/zpool.h"

#define ZP_THREADS_AUTO_MAX 4
#define ZP_THREADS_FORCE_MAX 16
/*
 * The writer's thread (reading the target, filling frames, writing the
 * file) is the critical path, and it submits frames in bursts: the copy
 * engine hands it 4 MiB (4 frames) per read.  With 2W slots (4 on two
 * CPUs) it often found the ring full and waited for a frame while the
 * workers sat idle half the time; 16 slots (16 MiB of frames) absorb a
 * few bursts (bench_snapshot, 2 CPUs: the frozen copy ~15-25% faster).
 */
#define ZP_SLOTS_MIN 16

enum { SL_FREE, SL_QUEUED, SL_BUSY, SL_DONE };

struct zslot {
	struct pt__zframe f;
	unsigned char *cbuf;
	int state;
};

struct pt__zpool {
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	bool stop;
	unsigned nthreads, nstarted, ncctx;
	pthread_t *tids;
	ZSTD_CCtx **cctx;		/* one per worker, then the caller's */
	struct zslot *slots;
	unsigned nslots, head, fill, nsub;
	uint32_t fcap, next_no;
	size_t ccap;
};

unsigned pt__zpool_threads(void)
{
	const char *force = getenv("PT_FORCE_ZSTD_THREADS");
	cpu_set_t set;
	long n;

	if (force && *force) {
		char *end;

		n = strtol(force, &end, 10);
		if (!*end && n >= 1 && n <= ZP_THREADS_FORCE_MAX)
			return (unsigned)n;
	}
	n = sysconf(_SC_NPROCESSORS_ONLN);
	/* a process confined to fewer CPUs (taskset, cpuset) gets fewer workers */
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) < n)
		n = CPU_COUNT(&set);
	if (n < 1)
		n = 1;
	return n > ZP_THREADS_AUTO_MAX ? ZP_THREADS_AUTO_MAX : (unsigned)n;
}

static void compress(ZSTD_CCtx *cc, struct zslot *s, size_t ccap)
{
	size_t ulen = (size_t)s->f.npages * PT_PAGE_SIZE;
	size_t clen = ZSTD_compress2(cc, s->cbuf, ccap, s->f.ubuf, ulen);

	s->f.cbuf = s->cbuf;
	if (ZSTD_isError(clen)) {
		s->f.zerr = clen;
		s->f.clen = 0;
		return;
	}
	s->f.zerr = 0;
	s->f.clen = clen;
	s->f.payload_hash = XXH3_64bits(s->cbuf, clen);
	s->f.content_hash = XXH3_64bits(s->f.ubuf, ulen);
}

struct wctx {
	struct pt__zpool *p;
	unsigned i;
};

static void *worker(void *arg)
{
	struct pt__zpool *p = ((struct wctx *)arg)->p;
	unsigned me = ((struct wctx *)arg)->i;

	free(arg);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct zslot *s = NULL;

		for (unsigned k = 0; !p->stop && k < p->nsub; k++) {
			struct zslot *c = &p->slots[(p->head + k) % p->nslots];

			if (c->state == SL_QUEUED) {
				s = c;
				break;
			}
		}
		if (p->stop)
			break;
		if (!s) {
			pthread_cond_wait(&p->work, &p->lock);
			continue;
		}
		s->state = SL_BUSY;
		pthread_mutex_unlock(&p->lock);
		compress(p->cctx[me], s, p->ccap);
		pthread_mutex_lock(&p->lock);
		s->state = SL_DONE;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static int set_params(ZSTD_CCtx *cc, int level)
{
	if (ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_dictIDFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, IMG_WINDOW_LOG_MAX)))
		return -EINVAL;
	return 0;
}

/* Workers with every signal blocked: signals stay the application's business. */
static int start_workers(struct pt__zpool *p)
{
	sigset_t all, old;
	int r = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < p->nthreads; i++) {
		struct wctx *c = malloc(sizeof(*c));

		if (!c) {
			r = -ENOMEM;
			break;
		}
		c->p = p;
		c->i = i;
		r = pthread_create(&p->tids[i], NULL, worker, c);
		if (r) {
			free(c);
			r = -r;
			break;
		}
		p->nstarted++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

int pt__zpool_create(int level, uint32_t fcap, unsigned nthreads, struct pt__zpool **out)
{
	struct pt__zpool *p;
	unsigned ncctx = nthreads > 1 ? nthreads + 1 : 1;
	int r;

	*out = NULL;
	if (!fcap || !nthreads)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->nthreads = nthreads > 1 ? nthreads : 0;
	p->nslots = nthreads > 1 ? (2 * nthreads > ZP_SLOTS_MIN ? 2 * nthreads : ZP_SLOTS_MIN) : 1;
	p->fcap = fcap;
	p->ccap = ZSTD_compressBound((size_t)fcap * PT_PAGE_SIZE);
	p->ncctx = ncctx;
	p->tids = calloc(ncctx, sizeof(*p->tids));
	p->cctx = calloc(ncctx, sizeof(*p->cctx));
	p->slots = calloc(p->nslots, sizeof(*p->slots));
	if (!p->tids || !p->cctx || !p->slots) {
		pt__zpool_free(p);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < p->nslots; i++) {
		p->slots[i].f.ubuf = malloc((size_t)fcap * PT_PAGE_SIZE);
		p->slots[i].cbuf = malloc(p->ccap);
		if (!p->slots[i].f.ubuf || !p->slots[i].cbuf) {
			pt__zpool_free(p);
			return -ENOMEM;
		}
	}
	for (unsigned i = 0; i < ncctx; i++) {
		p->cctx[i] = ZSTD_createCCtx();
		if (!p->cctx[i]) {
			pt__zpool_free(p);
			return -ENOMEM;
		}
		if (set_params(p->cctx[i], level)) {
			pt__zpool_free(p);
			return -EINVAL;
		}
	}
	if ((r = start_workers(p))) {
		pt__zpool_free(p);
		return r;
	}
	*out = p;
	return 0;
}

struct pt__zframe *pt__zpool_filling(struct pt__zpool *p)
{
	return &p->slots[p->fill].f;
}

void pt__zpool_submit(struct pt__zpool *p)
{
	struct zslot *s = &p->slots[p->fill];

	s->f.no = p->next_no++;
	if (!p->nthreads) {
		compress(p->cctx[0], s, p->ccap);
		s->state = SL_DONE;
	} else {
		pthread_mutex_lock(&p->lock);
		s->state = SL_QUEUED;
		p->nsub++;
		pthread_cond_signal(&p->work);
		pthread_mutex_unlock(&p->lock);
		p->fill = (p->fill + 1) % p->nslots;
		return;
	}
	p->nsub++;
	p->fill = (p->fill + 1) % p->nslots;
}

bool pt__zpool_full(const struct pt__zpool *p)
{
	return p->nsub == p->nslots;
}

const struct pt__zframe *pt__zpool_done(struct pt__zpool *p, bool wait)
{
	struct zslot *s;

	if (!p->nsub)
		return NULL;
	s = &p->slots[p->head];
	if (!p->nthreads)
		return &s->f;
	pthread_mutex_lock(&p->lock);
	if (wait && s->state == SL_QUEUED) {
		/*
		 * No worker has taken it yet (all busy, or not scheduled yet on
		 * a busy machine): compress it here rather than sleep.
		 */
		s->state = SL_BUSY;
		pthread_mutex_unlock(&p->lock);
		compress(p->cctx[p->nthreads], s, p->ccap);
		pthread_mutex_lock(&p->lock);
		s->state = SL_DONE;
	}
	while (s->state != SL_DONE && wait)
		pthread_cond_wait(&p->done, &p->lock);
	wait = s->state == SL_DONE;
	pthread_mutex_unlock(&p->lock);
	return wait ? &s->f : NULL;
}

void pt__zpool_release(struct pt__zpool *p)
{
	struct zslot *s = &p->slots[p->head];

	if (p->nthreads)
		pthread_mutex_lock(&p->lock);
	s->state = SL_FREE;
	s->f.npages = 0;
	p->head = (p->head + 1) % p->nslots;
	p->nsub--;
	if (p->nthreads)
		pthread_mutex_unlock(&p->lock);
}

void pt__zpool_free(struct pt__zpool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nstarted; i++)
		pthread_join(p->tids[i], NULL);
	for (unsigned i = 0; p->cctx && i < p->ncctx; i++)
		ZSTD_freeCCtx(p->cctx[i]);
	for (unsigned i = 0; p->slots && i < p->nslots; i++) {
		free(p->slots[i].f.ubuf);
		free(p->slots[i].cbuf);
	}
	free(p->slots);
	free(p->cctx);
	free(p->tids);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
