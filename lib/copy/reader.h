/* SPDX-License-Identifier: MIT */
/*
 * The batched page reader (lib/copy/reader.c): reads ranges of a target
 * or of its backing objects into one bounded buffer, at close to the
 * kernel's rate, and hands each queued segment to a consumer in order.
 * Used by the copy engine (lib/copy/copy.c) and the hash store
 * (lib/track/hashstore.c).  Not installed.
 */
#ifndef PT_READER_H
#define PT_READER_H

#include <sys/uio.h>

#include "pt_internal.h"

#define PT_RD_BUF	(4u << 20)			/* batch buffer */
#define PT_RD_BUF_PAGES	(PT_RD_BUF >> PT_PAGE_SHIFT)
#define PT_RD_MAXSEG	2048				/* segments per batch */
#define PT_RD_MAXIOV	1024				/* UIO_MAXIOV */
#define PT_RD_MAP_MAX	(64ull << 20)			/* bytes per object mapping */

/* Where a segment's data comes from. */
enum pt_rd_src {
	PT_RD_NONE = 0,	/* nothing to read (a hole): data NULL */
	PT_RD_VM,	/* process_vm_readv into the buffer */
	PT_RD_MEM,	/* pread of /proc/PID/mem into the buffer (also PROT_NONE) */
	PT_RD_SELF,	/* the calling process's own memory, in place */
	PT_RD_OBJ,	/* pread of the backing object into the buffer */
	PT_RD_OBJMAP,	/* our own read-only mapping of the object (swapped shmem) */
};

/* Segment flags. */
#define PT_RD_SWAPPED	(1u << 0)	/* swapped out / not resident before the read */
#define PT_RD_EVICT	(1u << 1)	/* page out again after reading */

struct pt_rd_seg {
	uint64_t addr, len;	/* the caller's address (target address or object offset) */
	uint64_t off;		/* object offset (OBJ, OBJMAP); NONE: the caller's tag
				   (segments with different tags never merge) */
	size_t buf;		/* buffer offset (VM, MEM, OBJ) */
	uint8_t src;		/* enum pt_rd_src */
	uint8_t flags;		/* PT_RD_* */
};

struct pt_reader {
	struct pt_target *t;
	const char *who;	/* log prefix: "hash", "copy" */
	unsigned char *buf;
	struct pt_rd_seg *seg;
	struct iovec *liov, *riov;
	uint64_t bad[PT_RD_BUF_PAGES / 64];	/* buffer pages that could not be read */
	size_t nseg, used;
	int mem_fd;		/* /proc/PID/mem, -1 not yet, -2 unavailable */
	int obj_fd;		/* backing object for OBJ / OBJMAP segments, -1 none */
	bool map_bad;		/* the current OBJMAP segment could not be mapped */
	bool warned_evict;
	/* counters, never reset by the reader */
	uint64_t bytes_read, read_ns, pages_evicted;
};

/*
 * Consumer of one segment, called in queue order once the batch is read.
 * @data: the segment's bytes (NULL for PT_RD_NONE); pages that could not
 * be read are zero-filled and pt__reader_bad() says which.  0 to go on,
 * or -errno to stop.
 */
typedef int (*pt_rd_fn)(void *ctx, const struct pt_rd_seg *g, const unsigned char *data);

/* Allocate the batch state (a few MiB).  0 or -ENOMEM. */
PT_HIDDEN int pt__reader_init(struct pt_reader *rd, struct pt_target *t, const char *who);
PT_HIDDEN void pt__reader_fini(struct pt_reader *rd);
/* Read from @t from now on (the reader's /proc/PID/mem is reopened if it changes). */
PT_HIDDEN void pt__reader_target(struct pt_reader *rd, struct pt_target *t);
/* Drop whatever is queued, unread. */
PT_HIDDEN void pt__reader_reset(struct pt_reader *rd);
/*
 * Queue [addr, addr+len) from @src (object offset @off for OBJ/OBJMAP),
 * splitting it over batches as needed: a full batch is read and handed to
 * @fn first.  0 or -errno (-ESRCH target gone, or what @fn returned).
 */
PT_HIDDEN int pt__reader_queue(struct pt_reader *rd, uint64_t addr, uint64_t len, uint64_t off,
			       uint8_t src, uint8_t flags, pt_rd_fn fn, void *ctx);
/* Read everything queued and hand it to @fn. */
PT_HIDDEN int pt__reader_flush(struct pt_reader *rd, pt_rd_fn fn, void *ctx);
/* True when the page at byte @o of segment @g (being consumed) could not be read. */
PT_HIDDEN bool pt__reader_bad(const struct pt_reader *rd, const struct pt_rd_seg *g, uint64_t o);

#endif
