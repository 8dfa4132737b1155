/* SPDX-License-Identifier: MIT */
/* The random writer of tests/test_nevermiss.c: see writer.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "writer.h"

#define THP_SZ (2UL << 20)
#define MAXA 24
#define OPS_PER_EPOCH 64

const char *const op_names[OP__COUNT] = {
	"write", "mmap+write", "munmap", "mremap-move", "mremap-grow", "mprotect-rw-r-rw+write",
	"fork-child-write-shared", "madv-dontneed", "o_direct-read", "read()", "process_vm_writev",
};

struct ctl *ctl;
uint64_t seed;
char odirect_dir[256];

uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	return mix(*s);
}

enum kind { K_PRIV, K_BASE, K_SHARED, K_MEMFD, K_THP };

struct w_area {
	uint8_t *p;
	size_t pages;
	enum kind kind;
	bool ro;
	uint64_t *last;		/* per page: epoch after its last logged write */
};

#define NVAC 512
struct vac {
	uint64_t start, len, epoch;
};

struct writer {
	struct vac vac[NVAC];
	size_t nvac;
	struct w_area a[MAXA];
	int na;
	uint64_t rng, val;
	int log_fd, cmd_fd, dio_fd, rd_fd;
	int dio_wfd, rd_wfd;	/* the same files, buffered, for stamps */
	uint64_t stamp;		/* stamps written into them: 1 << 61 | n */
	bool concurrent;
	uint64_t batch;		/* lockstep: the epoch is the batch number */
	struct rec buf[64];
	size_t nbuf;
	uint64_t flushed_epoch;
	uint64_t dio_next;	/* next file page for O_DIRECT (see there) */
	bool hot;		/* PT_WRITER_HOT=1: rewrite a hot set (w_hot) */
	uint64_t hot_n;
};

static uint64_t w_epoch(struct writer *w)
{
	return w->concurrent ? atomic_load(&ctl->epoch) : w->batch;
}

static void w_flush(struct writer *w)
{
	size_t len = w->nbuf * sizeof(struct rec);	/* <= PIPE_BUF: atomic */

	if (len && write(w->log_fd, w->buf, len) != (ssize_t)len)
		_exit(3);
	w->nbuf = 0;
}

static void w_log(struct writer *w, enum rec_type t, enum op op, const void *addr, size_t npages,
		  uint64_t e1, uint64_t e2)
{
	if (w->nbuf == sizeof(w->buf) / sizeof(w->buf[0]))
		w_flush(w);
	w->buf[w->nbuf++] = (struct rec){ .type = t, .op = op, .addr = (uint64_t)(uintptr_t)addr,
					  .npages = npages, .e1 = e1, .e2 = e2 };
}

static struct w_area *w_add(struct writer *w, void *p, size_t pages, enum kind k)
{
	struct w_area *a = &w->a[w->na++];

	*a = (struct w_area){ .p = p, .pages = pages, .kind = k,
			      .last = calloc(pages, sizeof(uint64_t)) };
	if (!a->last)
		_exit(4);
	return a;
}

static void w_del(struct writer *w, int i)
{
	free(w->a[i].last);
	w->a[i] = w->a[--w->na];
}

static struct w_area *w_pick(struct writer *w, bool rw, bool churn_only)
{
	for (int tries = 0; tries < 32; tries++) {
		struct w_area *a = &w->a[rnd(&w->rng) % (uint64_t)w->na];

		if ((rw && a->ro) || (churn_only && a->kind != K_PRIV))
			continue;
		return a;
	}
	return NULL;
}

static bool page_nonzero(const uint8_t *p)
{
	static const uint8_t zero[PG];

	return memcmp(p, zero, PG) != 0;
}

/* Write a never-used value into @n pages from @pg: their content changes. */
static void w_write(struct writer *w, struct w_area *a, size_t pg, size_t n, enum op op)
{
	uint64_t e1 = w_epoch(w), e2;

	if (pg + n > a->pages)
		n = a->pages - pg;
	for (size_t i = 0; i < n; i++) {
		volatile uint64_t *q = (volatile uint64_t *)(a->p + (pg + i) * PG);

		q[rnd(&w->rng) % (PG / 8)] = ++w->val;
	}
	e2 = w_epoch(w);
	w_log(w, R_WRITE, op, a->p + pg * PG, n, e1, e2);
	for (size_t i = 0; i < n; i++)
		a->last[pg + i] = e2;
}

/* Log the pages of [pg, pg+n) whose content differs from @old. */
static void w_log_changed(struct writer *w, struct w_area *a, size_t pg, size_t n,
			  const uint8_t *old, enum op op, uint64_t e1)
{
	uint64_t e2 = w_epoch(w);

	for (size_t i = 0; i < n; i++) {
		if (memcmp(old + i * PG, a->p + (pg + i) * PG, PG)) {
			w_log(w, R_WRITE, op, a->p + (pg + i) * PG, 1, e1, e2);
			a->last[pg + i] = e2;
		}
	}
}

/* Remember [p, p+pages) was vacated at epoch @e (by munmap or a move). */
static void w_vacated(struct writer *w, void *p, size_t pages, uint64_t e)
{
	w->vac[w->nvac++ % NVAC] = (struct vac){ (uint64_t)(uintptr_t)p, pages * PG, e };
}

/*
 * After a move: every page holding data is new at its new address.  If
 * the new place was vacated since the last full round, the area may be
 * back where it was (same content, nothing changed): stamp it instead.
 */
static void w_log_moved(struct writer *w, struct w_area *a, enum op op, uint64_t e1, uint64_t e2)
{
	uint64_t s = (uint64_t)(uintptr_t)a->p, e = s + a->pages * PG;
	bool stamp = false;

	for (size_t i = 0; i < NVAC && i < w->nvac; i++)
		if (w->vac[i].start < e && w->vac[i].start + w->vac[i].len > s &&
		    w->vac[i].epoch + 2 > e2)
			stamp = true;
	for (size_t i = 0; i < a->pages; i++) {
		if (!page_nonzero(a->p + i * PG))
			continue;
		if (stamp) {
			if (!a->ro)	/* (read-only: no change is certain, log nothing) */
				w_write(w, a, i, 1, op);
			else	/* but the tracker may not have seen this data here yet */
				a->last[i] = e2;
		} else {
			w_log(w, R_WRITE, op, a->p + i * PG, 1, e1, e2);
			a->last[i] = e2;
		}
	}
}

/*
 * PT_WRITER_HOT=1 (for PT_TRACK_HOT): the same HOT_PAGES pages of the base
 * area rewritten every batch (lockstep) or epoch (concurrent), so they
 * turn hot; skipped one time in HOT_PAUSE so that some cool down and are
 * re-armed.  Without w->rng: the op sequence stays the one of PT_SEED.
 */
#define HOT_PAGES 24
#define HOT_PAUSE 9
static void w_hot(struct writer *w)
{
	uint64_t e1 = w_epoch(w);

	if (!w->hot || ++w->hot_n % HOT_PAUSE == 0)
		return;
	for (int i = 0; i < w->na; i++) {
		struct w_area *a = &w->a[i];

		if (a->kind != K_BASE || a->ro)
			continue;
		for (size_t k = 0; k < HOT_PAGES && k * 7 < a->pages; k++) {
			/* a third of them only every other time: streaks of all lengths */
			if (k % 3 == 2 && (w->hot_n & 1))
				continue;
			*(volatile uint64_t *)(a->p + k * 7 * PG + 8 * (w->hot_n % (PG / 8))) = ++w->val;
			w_log(w, R_WRITE, OP_WRITE, a->p + k * 7 * PG, 1, e1, w_epoch(w));
			a->last[k * 7] = w_epoch(w);
		}
		return;
	}
}

static void w_op(struct writer *w)
{
	uint64_t r = rnd(&w->rng) % 100, e1;
	struct w_area *a;
	static uint8_t old[2 * PG];
	static int maxop = -1;

	/* PT_WRITER_MAXOP=N limits the op mix to r < N (bisecting a miss) */
	if (maxop < 0) {
		const char *e = getenv("PT_WRITER_MAXOP");
		maxop = e ? atoi(e) : 100;
	}
	if (maxop < 100)
		r = r % (maxop > 0 ? maxop : 1);

	if (r < 45) {				/* plain writes, any area */
		if ((a = w_pick(w, true, false)))
			w_write(w, a, rnd(&w->rng) % a->pages, 1 + rnd(&w->rng) % 4, OP_WRITE);
	} else if (r < 52) {			/* a new area, written */
		size_t pages = 8 + rnd(&w->rng) % 56;
		void *p;

		if (w->na >= MAXA)
			return;
		p = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return;
		a = w_add(w, p, pages, K_PRIV);
		w_write(w, a, rnd(&w->rng) % pages, 1 + rnd(&w->rng) % 8, OP_MMAP);
	} else if (r < 57) {			/* munmap whole or the tail half */
		if (!(a = w_pick(w, false, true)) || w->na < 6)
			return;
		size_t keep = rnd(&w->rng) % 2 && a->pages >= 4 ? a->pages / 2 : 0;

		e1 = w_epoch(w);
		munmap(a->p + keep * PG, (a->pages - keep) * PG);
		w_log(w, R_UNMAP, OP_MUNMAP, a->p + keep * PG, a->pages - keep, e1, w_epoch(w));
		w_vacated(w, a->p + keep * PG, a->pages - keep, w_epoch(w));
		if (keep)
			a->pages = keep;
		else
			w_del(w, (int)(a - w->a));
	} else if (r < 61) {			/* mremap to a new place */
		void *dst, *p;

		if (!(a = w_pick(w, false, true)))
			return;
		dst = mmap(NULL, a->pages * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (dst == MAP_FAILED)
			return;
		e1 = w_epoch(w);
		p = mremap(a->p, a->pages * PG, a->pages * PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		if (p == MAP_FAILED) {
			munmap(dst, a->pages * PG);
			return;
		}
		w_log(w, R_UNMAP, OP_MREMAP_MOVE, a->p, a->pages, e1, w_epoch(w));
		w_vacated(w, a->p, a->pages, w_epoch(w));
		a->p = p;
		w_log_moved(w, a, OP_MREMAP_MOVE, e1, w_epoch(w));
	} else if (r < 64) {			/* mremap grow (in place or moved) */
		size_t np;
		void *p;

		if (!(a = w_pick(w, true, true)) || a->pages > 256)
			return;
		np = a->pages * 2;
		uint64_t *nl = realloc(a->last, np * sizeof(uint64_t));
		if (!nl)
			return;
		memset(nl + a->pages, 0, a->pages * sizeof(uint64_t));
		a->last = nl;
		e1 = w_epoch(w);
		p = mremap(a->p, a->pages * PG, np * PG, MREMAP_MAYMOVE);
		if (p == MAP_FAILED)
			return;
		if (p != a->p) {
			w_log(w, R_UNMAP, OP_MREMAP_GROW, a->p, a->pages, e1, w_epoch(w));
			w_vacated(w, a->p, a->pages, w_epoch(w));
			a->p = p;
			a->pages = np;
			w_log_moved(w, a, OP_MREMAP_GROW, e1, w_epoch(w));
		} else {
			a->pages = np;
		}
		w_write(w, a, np / 2 + rnd(&w->rng) % (np / 2), 1, OP_MREMAP_GROW);
	} else if (r < 70) {			/* RW -> R (left for a while) -> RW + write */
		if (!(a = w_pick(w, false, false)))
			return;
		if (!a->ro) {
			w_write(w, a, rnd(&w->rng) % a->pages, 1, OP_MPROTECT);
			if (mprotect(a->p, a->pages * PG, PROT_READ) == 0)
				a->ro = true;
		} else if (mprotect(a->p, a->pages * PG, PROT_READ | PROT_WRITE) == 0) {
			a->ro = false;
			w_write(w, a, rnd(&w->rng) % a->pages, 2, OP_MPROTECT);
		}
	} else if (r < 73) {			/* fork: the child writes its copy and the shared areas */
		pid_t pid;

		w_flush(w);
		w->val += 16;	/* the child's 8 values are ours to skip: never reused */
		pid = fork();
		if (pid == 0) {
			w->rng ^= 0x5555;
			/* its values never collide with ours, nor with other children's */
			w->val = (w->val - 16) | 1ULL << 63;
			for (int i = 0; i < 8; i++) {
				struct w_area *c = w_pick(w, true, false);

				if (!c)
					continue;
				size_t pg = rnd(&w->rng) % c->pages;
				if (c->kind == K_SHARED || c->kind == K_MEMFD)
					w_write(w, c, pg, 1, OP_FORK);
				else	/* its own copy: invisible to the parent's memory */
					((volatile uint8_t *)c->p)[pg * PG] ^= 0xff;
			}
			w_flush(w);
			_exit(0);
		}
		if (pid > 0)
			waitpid(pid, NULL, 0);
	} else if (r < 80) {			/* MADV_DONTNEED: data becomes zero */
		if (!(a = w_pick(w, false, false)) || a->kind == K_SHARED || a->kind == K_MEMFD)
			return;	/* (shared objects keep their content: no change) */
		size_t pg = rnd(&w->rng) % a->pages, n = 1 + rnd(&w->rng) % 4;
		bool nz[4];
		uint64_t e = w_epoch(w);

		if (pg + n > a->pages)
			n = a->pages - pg;
		/*
		 * Only pages whose last write was seen by a full round: a page
		 * written and dropped between two collects may be back to the
		 * content of the previous round (zero), and then nothing changed.
		 */
		for (size_t i = 0; i < n; i++)
			if (a->last[pg + i] + (w->concurrent ? 2 : 1) > e && a->last[pg + i])
				return;
		for (size_t i = 0; i < n; i++)
			nz[i] = page_nonzero(a->p + (pg + i) * PG);
		e1 = w_epoch(w);
		madvise(a->p + pg * PG, n * PG, MADV_DONTNEED);
		for (size_t i = 0; i < n; i++)
			if (nz[i])
				w_log(w, R_WRITE, OP_DONTNEED, a->p + (pg + i) * PG, 1, e1, w_epoch(w));
	} else if (r < 90) {			/* O_DIRECT read from a disk file */
		if (w->dio_fd < 0 || !(a = w_pick(w, true, false)))
			return;
		size_t pg = rnd(&w->rng) % a->pages, n = pg + 1 < a->pages ? 2 : 1;
		/*
		 * File pages in turn, two at a time: a page's content after the
		 * read is a file page, and reading the same file page into the
		 * same page again soon would undo the changes in between
		 * (A -> B -> A), which a content tracker rightly does not
		 * report.  The same file page comes back only after 127 reads.
		 */
		off_t off = (off_t)(w->dio_next % (FILE_SZ / PG / 2)) * 2 * (off_t)PG;

		w->dio_next++;

		/*
		 * And a never-used stamp in each file page first (the direct read
		 * writes the dirty page back, then reads it): a page that kept a
		 * file page's content since long ago must not get it back.
		 */
		for (size_t i = 0; i < n; i++) {
			uint64_t st = 1ULL << 61 | ++w->stamp;

			if (pwrite(w->dio_wfd, &st, 8, off + (off_t)(i * PG)) != 8)
				_exit(5);
		}
		memcpy(old, a->p + pg * PG, n * PG);
		e1 = w_epoch(w);
		if (pread(w->dio_fd, a->p + pg * PG, n * PG, off) < 0)
			_exit(5);
		w_log_changed(w, a, pg, n, old, OP_ODIRECT, e1);
	} else {				/* read() into an unaligned buffer */
		if (!(a = w_pick(w, true, false)) || a->pages < 2)
			return;
		size_t pg = rnd(&w->rng) % (a->pages - 1), in = rnd(&w->rng) % (PG - 8);
		size_t len = 8 + rnd(&w->rng) % (2 * PG - in - 8);
		off_t foff = (off_t)(rnd(&w->rng) % (FILE_SZ - 2 * PG));
		/* a never-used stamp lands whole in each page the read reaches */
		uint64_t st = 1ULL << 61 | ++w->stamp;

		if (pwrite(w->rd_wfd, &st, 8, foff) != 8)
			_exit(6);
		if (in + len >= PG + 8) {
			st = 1ULL << 61 | ++w->stamp;
			if (pwrite(w->rd_wfd, &st, 8, foff + (off_t)(PG - in)) != 8)
				_exit(6);
		}
		memcpy(old, a->p + pg * PG, 2 * PG);
		e1 = w_epoch(w);
		if (pread(w->rd_fd, a->p + pg * PG + in, len, foff) < 0)
			_exit(6);
		w_log_changed(w, a, pg, 2, old, OP_READ, e1);
	}
}

/* Also a buffered writable fd in *@wfd when asked (for stamping). */
static int make_file_rw(const char *dir, bool direct, uint64_t salt, int *wfd)
{
	char path[300];
	uint64_t *b = malloc(FILE_SZ);
	int fd, rfd = -1;

	if (wfd)
		*wfd = -1;

	snprintf(path, sizeof(path), "%s/pt-nevermiss-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0 || !b)
		goto out;
	unlink(path);
	for (size_t i = 0; i < FILE_SZ / 8; i++)
		b[i] = mix(i ^ salt);
	if (pwrite(fd, b, FILE_SZ, 0) != (ssize_t)FILE_SZ || fsync(fd))
		goto out;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rfd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (wfd) {
		*wfd = rfd >= 0 ? dup(fd) : -1;
		if (rfd >= 0 && *wfd < 0) {
			close(rfd);
			rfd = -1;
		}
	}
out:
	free(b);
	if (fd >= 0)
		close(fd);
	return rfd;
}

int make_file(const char *dir, bool direct, uint64_t salt)
{
	return make_file_rw(dir, direct, salt, NULL);
}

static void w_setup(struct writer *w)
{
	void *raw;
	int mfd;

	w->a[0].p = NULL;
	w_add(w, fx_map(256 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
	      256, K_BASE);
	w_add(w, fx_map(128 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0),
	      128, K_SHARED);
	mfd = memfd_create("pt-nevermiss", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, 128 * PG))
		_exit(7);
	w_add(w, fx_map(128 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0), 128, K_MEMFD);
	close(mfd);
	raw = fx_map(3 * THP_SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *h = (uint8_t *)(((uintptr_t)raw + THP_SZ - 1) & ~(THP_SZ - 1));
	madvise(h, THP_SZ, MADV_HUGEPAGE);
	w_add(w, h, THP_SZ / PG, K_THP);
	for (int i = 0; i < 4; i++)
		w_add(w, fx_map(32 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
		      32, K_PRIV);
	/* everything starts with data, so the first round has something to find */
	for (int i = 0; i < w->na; i++)
		for (size_t p = 0; p < w->a[i].pages; p += 3)
			*(uint64_t *)(w->a[i].p + p * PG) = ++w->val;	/* unique: moves change content */
	w->dio_wfd = -1;
	w->dio_fd = odirect_dir[0] ? make_file_rw(odirect_dir, true, seed, &w->dio_wfd) : -1;
	w->rd_fd = make_file_rw("/tmp", false, seed ^ 1, &w->rd_wfd);
	if (w->rd_fd < 0)
		_exit(8);
}

void writer_main(int log_fd, int cmd_fd, bool concurrent)
{
	struct writer *w = calloc(1, sizeof(*w));

	if (!w)
		_exit(2);
	w->rng = seed ^ (concurrent ? 0xc0c0 : 0x10c5);
	w->log_fd = log_fd;
	w->cmd_fd = cmd_fd;
	w->concurrent = concurrent;
	w->hot = getenv("PT_WRITER_HOT") && !strcmp(getenv("PT_WRITER_HOT"), "1");
	w_setup(w);
	atomic_store(&ctl->ready, 1);
	if (concurrent) {
		uint64_t ops = 0, last = 0;

		while (!atomic_load(&ctl->epoch))
			usleep(100);
		while (!atomic_load(&ctl->stop)) {
			uint64_t e = atomic_load(&ctl->epoch);

			if (e != last) {
				w_flush(w);
				last = e;
				ops = 0;
				w_hot(w);
			}
			if (ops++ >= OPS_PER_EPOCH) {
				usleep(50);
				continue;
			}
			w_op(w);
		}
		w_log(w, R_END, 0, NULL, 0, 0, 0);
		w_flush(w);
		pause();
	}
	for (;;) {
		uint64_t b;

		if (read(cmd_fd, &b, sizeof(b)) != sizeof(b) || !b)
			_exit(0);
		w->batch = b;
		w_hot(w);
		for (uint64_t n = 10 + rnd(&w->rng) % 40; n; n--)
			w_op(w);
		/* targets for the parent's process_vm_writev */
		for (int i = 0; i < 3; i++) {
			struct w_area *a = w_pick(w, true, false);

			if (a) {
				size_t pg = rnd(&w->rng) % a->pages;

				w_log(w, R_PVW, OP_PVW, a->p + pg * PG, 1, b, b);
				a->last[pg] = b;
			}
		}
		w_log(w, R_END, 0, NULL, 0, 0, 0);
		w_flush(w);
	}
}
