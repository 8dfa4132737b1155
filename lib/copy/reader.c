/* SPDX-License-Identifier: MIT */
/*
 * The batched page reader shared by the copy engine and the hash store.
 *
 * The caller (which knows from pt_scan() which pages hold data and where
 * it is) queues segments; they are read in batches of up to PT_RD_BUF
 * bytes and handed back in order:
 *	private memory	 one process_vm_readv per batch, PT_RD_MAXIOV iovecs
 *			 per call (or straight from the address for the
 *			 calling process)
 *	object-backed	 pread on the backing object (never maps pages into
 *			 the target); swapped shmem through our own
 *			 read-only mapping of the object, paged out again
 *	unreadable	 /proc/PID/mem (FOLL_FORCE: PROT_NONE areas, races)
 * A short process_vm_readv (a page unmapped or made inaccessible
 * meanwhile) continues through /proc/PID/mem; pages that cannot be read
 * at all are zero-filled and marked bad.
 *
 * Swapped private pages (PT_RD_EVICT) get MADV_WILLNEED before the read
 * and MADV_PAGEOUT after it (process_madvise on the target's pidfd):
 * WILLNEED reads them into the swap cache without mapping them, so the
 * read maps the swap-cache page and keeps the slot (a direct fault on
 * zram skips the swap cache and frees it); PAGEOUT then only drops the
 * clean page.  Swapped shared pages are read through our own mapping of
 * the object, which only we map, so MADV_PAGEOUT there reclaims them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "reader.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

int pt__reader_init(struct pt_reader *rd, struct pt_target *t, const char *who)
{
	memset(rd, 0, sizeof(*rd));
	rd->t = t;
	rd->who = who;
	rd->mem_fd = -1;
	rd->obj_fd = -1;
	rd->buf = malloc(PT_RD_BUF);
	rd->seg = malloc(PT_RD_MAXSEG * sizeof(*rd->seg));
	rd->liov = malloc(PT_RD_MAXSEG * sizeof(*rd->liov));
	rd->riov = malloc(PT_RD_MAXSEG * sizeof(*rd->riov));
	if (!rd->buf || !rd->seg || !rd->liov || !rd->riov) {
		pt__reader_fini(rd);
		return -ENOMEM;
	}
	return 0;
}

void pt__reader_fini(struct pt_reader *rd)
{
	free(rd->buf);
	free(rd->seg);
	free(rd->liov);
	free(rd->riov);
	rd->buf = NULL;
	rd->seg = NULL;
	rd->liov = rd->riov = NULL;
	if (rd->mem_fd >= 0)
		close(rd->mem_fd);
	rd->mem_fd = -1;
}

void pt__reader_target(struct pt_reader *rd, struct pt_target *t)
{
	if (rd->t == t)
		return;
	if (rd->mem_fd >= 0)
		close(rd->mem_fd);
	rd->mem_fd = -1;
	rd->t = t;
}

void pt__reader_reset(struct pt_reader *rd)
{
	rd->nseg = rd->used = 0;
	memset(rd->bad, 0, sizeof(rd->bad));
}

static int mem_fd(struct pt_reader *rd)
{
	char path[48];

	if (rd->mem_fd == -1) {
		snprintf(path, sizeof(path), "%s/mem", rd->t->procdir);
		rd->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (rd->mem_fd < 0)
			rd->mem_fd = -2;
	}
	return rd->mem_fd;
}

static void mark_bad(struct pt_reader *rd, size_t buf_off, size_t len)
{
	for (size_t p = buf_off >> PT_PAGE_SHIFT; p < (buf_off + len) >> PT_PAGE_SHIFT; p++)
		rd->bad[p / 64] |= 1ull << (p % 64);
	memset(rd->buf + buf_off, 0, len);
}

bool pt__reader_bad(const struct pt_reader *rd, const struct pt_rd_seg *g, uint64_t o)
{
	size_t p;

	switch (g->src) {
	case PT_RD_VM:
	case PT_RD_MEM:
	case PT_RD_OBJ:
		p = (g->buf + o) >> PT_PAGE_SHIFT;
		return rd->bad[p / 64] & (1ull << (p % 64));
	case PT_RD_OBJMAP:
		return rd->map_bad;
	default:
		return false;
	}
}

/*
 * Read target [addr, addr+len) into the buffer at @bo with /proc/PID/mem
 * (which also reads PROT_NONE pages).  Pages that cannot be read are
 * marked bad: one extra pread per bad page, which only happens when the
 * layout changed under us or a page faults (file mapping past EOF).
 */
static int mem_read(struct pt_reader *rd, uint64_t addr, size_t len, size_t bo)
{
	int fd = mem_fd(rd);

	while (len) {
		ssize_t n = fd >= 0 ? pread(fd, rd->buf + bo, len, (off_t)addr) : -1;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOMEM)
			return -ENOMEM;
		if (n > 0)
			rd->bytes_read += (uint64_t)n;
		if (n <= 0) {
			if (pt_target_alive(rd->t) == 0)
				return -ESRCH;
			mark_bad(rd, bo, PT_PAGE_SIZE);
			n = PT_PAGE_SIZE;
		}
		n &= ~(ssize_t)(PT_PAGE_SIZE - 1);
		if (!n) {	/* cannot happen with page-aligned ranges */
			mark_bad(rd, bo, PT_PAGE_SIZE);
			n = PT_PAGE_SIZE;
		}
		addr += (size_t)n;
		bo += (size_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * process_vm_readv for all PT_RD_VM segments of the batch, contiguous
 * ones merged into one iovec; a short read continues through
 * /proc/PID/mem for the rest of that iovec, then process_vm_readv again.
 */
static int vm_read_all(struct pt_reader *rd)
{
	struct iovec *l = rd->liov, *r = rd->riov;
	size_t n = 0, i = 0;
	int err;

	for (size_t s = 0; s < rd->nseg; s++) {
		const struct pt_rd_seg *g = &rd->seg[s];

		if (g->src != PT_RD_VM)
			continue;
		if (n && (uint64_t)(uintptr_t)r[n - 1].iov_base + r[n - 1].iov_len == g->addr &&
		    (unsigned char *)l[n - 1].iov_base + l[n - 1].iov_len == rd->buf + g->buf) {
			l[n - 1].iov_len += g->len;
			r[n - 1].iov_len += g->len;
			continue;
		}
		l[n].iov_base = rd->buf + g->buf;
		l[n].iov_len = g->len;
		r[n].iov_base = (void *)(uintptr_t)g->addr;
		r[n].iov_len = g->len;
		n++;
	}
	while (i < n) {
		size_t k = n - i > PT_RD_MAXIOV ? PT_RD_MAXIOV : n - i, stop = i + k;
		ssize_t got = process_vm_readv(rd->t->pid, l + i, k, r + i, k, 0);

		if (got < 0) {
			int e = errno;

			if (e == EPERM || (e == ESRCH && pt_target_alive(rd->t) == 0))
				return -e;
			/*
			 * EFAULT: nothing from the first iovec.  ENOMEM and ESRCH
			 * are also seen while the target remaps memory: the page
			 * by page fallback below sorts it out.
			 */
			got = 0;
		}
		rd->bytes_read += (uint64_t)got;
		while (i < stop && (size_t)got >= r[i].iov_len)
			got -= (ssize_t)r[i++].iov_len;
		if (i == stop)
			continue;
		r[i].iov_base = (char *)r[i].iov_base + got;
		r[i].iov_len -= (size_t)got;
		l[i].iov_base = (char *)l[i].iov_base + got;
		l[i].iov_len -= (size_t)got;
		/* the rest of iovec i, through /proc/PID/mem */
		err = mem_read(rd, (uint64_t)(uintptr_t)r[i].iov_base, r[i].iov_len,
			       (size_t)((unsigned char *)l[i].iov_base - rd->buf));
		if (err)
			return err;
		i++;
	}
	return 0;
}

static int obj_read(struct pt_reader *rd, const struct pt_rd_seg *g)
{
	size_t done = 0;

	while (done < g->len) {
		ssize_t n = rd->obj_fd >= 0 ? pread(rd->obj_fd, rd->buf + g->buf + done,
						    g->len - done, (off_t)(g->off + done))
					    : (errno = EBADF, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOMEM)
			return -ENOMEM;
		if (n < 0) {
			mark_bad(rd, g->buf + (done & ~(PT_PAGE_SIZE - 1)),
				 g->len - (done & ~(PT_PAGE_SIZE - 1)));
			return 0;
		}
		if (n == 0) {	/* truncated: the data is gone, i.e. zero */
			memset(rd->buf + g->buf + done, 0, g->len - done);
			return 0;
		}
		rd->bytes_read += (uint64_t)n;
		done += (size_t)n;
	}
	return 0;
}

/*
 * Swapped shmem: our own read-only mapping of the object, populated
 * (swapped in to the page cache), consumed, then paged out again: the
 * pages are mapped by us alone, so MADV_PAGEOUT reclaims them.
 */
static int objmap(struct pt_reader *rd, const struct pt_rd_seg *g, pt_rd_fn fn, void *ctx)
{
	bool evict = g->flags & PT_RD_EVICT;
	uint64_t t0 = pt__now_ns();
	void *m = rd->obj_fd < 0 ? MAP_FAILED
		  : mmap(NULL, g->len, PROT_READ, MAP_SHARED | MAP_POPULATE, rd->obj_fd,
			 (off_t)g->off);
	int err;

	if (m == MAP_FAILED) {
		if (rd->obj_fd >= 0 && errno == ENOMEM)
			return -ENOMEM;
		rd->map_bad = true;	/* not mappable: unreadable */
		err = fn(ctx, g, NULL);
		rd->map_bad = false;
		return err;
	}
	rd->read_ns += pt__now_ns() - t0;
	rd->bytes_read += g->len;
	err = fn(ctx, g, m);
	if (evict) {
		if (madvise(m, g->len, MADV_PAGEOUT) == 0) {
			rd->pages_evicted += g->len >> PT_PAGE_SHIFT;
		} else if (!rd->warned_evict) {
			rd->warned_evict = true;
			pt__log(PT_LOG_INFO, "%s: cannot page out shared memory read from swap: %s",
				rd->who, strerror(errno));
		}
	}
	munmap(m, g->len);
	return err;
}

/*
 * MADV_WILLNEED / MADV_PAGEOUT on the private pages of this batch to be
 * evicted.  Returns the errno of a failure, or 0; counts what PAGEOUT
 * accepted.
 */
static int advise_private(struct pt_reader *rd, int advice)
{
	struct pt_target *t = rd->t;
	size_t n = 0;
	uint64_t pages = 0;
	int fail = 0;

	for (size_t s = 0; s <= rd->nseg; s++) {
		const struct pt_rd_seg *g = s < rd->nseg ? &rd->seg[s] : NULL;

		if (g && (g->flags & PT_RD_EVICT) && g->src != PT_RD_OBJMAP &&
		    g->src != PT_RD_NONE) {
			if (t->self) {
				if (madvise((void *)(uintptr_t)g->addr, g->len, advice))
					fail = errno;
				else
					pages += g->len >> PT_PAGE_SHIFT;
				continue;
			}
			rd->riov[n].iov_base = (void *)(uintptr_t)g->addr;
			rd->riov[n++].iov_len = g->len;
		}
		if (n && (!g || n == PT_RD_MAXIOV)) {
			long r = t->pidfd < 0 ? -1
				 : syscall(SYS_process_madvise, t->pidfd, rd->riov, n, advice, 0);

			if (r < 0)
				fail = t->pidfd < 0 ? EBADF : errno;
			else
				pages += (uint64_t)r >> PT_PAGE_SHIFT;
			n = 0;
		}
	}
	if (advice == MADV_PAGEOUT)
		rd->pages_evicted += pages;
	return fail;
}

int pt__reader_flush(struct pt_reader *rd, pt_rd_fn fn, void *ctx)
{
	bool evict = false;
	uint64_t t0;
	int err = 0;

	if (!rd->nseg)
		return 0;
	for (size_t s = 0; s < rd->nseg; s++)
		evict |= (rd->seg[s].flags & PT_RD_EVICT) && rd->seg[s].src != PT_RD_OBJMAP &&
			 rd->seg[s].src != PT_RD_NONE;
	t0 = pt__now_ns();
	if (evict)
		advise_private(rd, MADV_WILLNEED);	/* only an optimisation: errors ignored */
	err = vm_read_all(rd);
	for (size_t s = 0; s < rd->nseg && !err; s++) {
		const struct pt_rd_seg *g = &rd->seg[s];

		if (g->src == PT_RD_MEM)
			err = mem_read(rd, g->addr, g->len, g->buf);
		else if (g->src == PT_RD_OBJ)
			err = obj_read(rd, g);
	}
	rd->read_ns += pt__now_ns() - t0;
	for (size_t s = 0; s < rd->nseg && !err; s++) {
		const struct pt_rd_seg *g = &rd->seg[s];

		switch (g->src) {
		case PT_RD_NONE:
			err = fn(ctx, g, NULL);
			break;
		case PT_RD_SELF:
			err = fn(ctx, g, (const unsigned char *)(uintptr_t)g->addr);
			break;
		case PT_RD_OBJMAP:
			err = objmap(rd, g, fn, ctx);
			break;
		default:
			err = fn(ctx, g, rd->buf + g->buf);
			break;
		}
	}
	if (!err && evict) {
		int e = advise_private(rd, MADV_PAGEOUT);

		if (e && !rd->warned_evict) {
			rd->warned_evict = true;
			pt__log(PT_LOG_INFO, "%s: cannot page out pages swapped in to be read: %s",
				rd->who, strerror(e));
		}
	}
	pt__reader_reset(rd);
	return err;
}

static bool uses_buf(uint8_t src)
{
	return src == PT_RD_VM || src == PT_RD_MEM || src == PT_RD_OBJ;
}

int pt__reader_queue(struct pt_reader *rd, uint64_t addr, uint64_t len, uint64_t off,
		     uint8_t src, uint8_t flags, pt_rd_fn fn, void *ctx)
{
	int err;

	while (len) {
		uint64_t room = uses_buf(src) ? PT_RD_BUF - rd->used
			      : src == PT_RD_OBJMAP ? PT_RD_MAP_MAX : len;
		struct pt_rd_seg *g = rd->nseg ? &rd->seg[rd->nseg - 1] : NULL;

		if (!room || rd->nseg == PT_RD_MAXSEG) {
			if ((err = pt__reader_flush(rd, fn, ctx)))
				return err;
			continue;
		}
		uint64_t n = len < room ? len : room;

		if (g && g->src == src && g->addr + g->len == addr && g->flags == flags &&
		    (!uses_buf(src) || g->buf + g->len == rd->used) &&
		    (src != PT_RD_OBJMAP || g->len + n <= PT_RD_MAP_MAX) &&
		    (src == PT_RD_NONE ? g->off == off : g->off + g->len == off)) {
			g->len += n;
		} else {
			g = &rd->seg[rd->nseg++];
			*g = (struct pt_rd_seg){ .addr = addr, .len = n, .off = off, .buf = rd->used,
						 .src = src, .flags = flags };
		}
		if (uses_buf(src))
			rd->used += n;
		addr += n;
		if (src != PT_RD_NONE)
			off += n;
		len -= n;
	}
	return 0;
}
