/* SPDX-License-Identifier: MIT */
/*
 * pagetrack — where a process's memory is, page by page.
 *
 * Conventions (see doc/api.md):
 *  - Functions return >= 0 on success or -errno on failure; errno is not
 *    relied upon.  Constructors return NULL and set errno.
 *  - Handles are opaque; every *_free() accepts NULL.
 *  - The caller owns every output buffer.  Long operations take a cursor
 *    and return how much they wrote, so they can be resumed.
 *  - The library never prints, never exits; diagnostics go through the
 *    callback installed with pt_set_log().
 *  - A pt_target is not thread-safe; distinct targets may be used from
 *    distinct threads.  Feature probes are thread-safe.
 */
#ifndef PAGETRACK_PAGETRACK_H
#define PAGETRACK_PAGETRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef PT_API
#define PT_API __attribute__((visibility("default")))
#endif

#define PT_VERSION_MAJOR 0
#define PT_VERSION_MINOR 1
#define PT_VERSION_PATCH 0

PT_API const char *pt_version(void);

/* ------------------------------------------------------------------ */
/* Logging                                                              */

enum pt_log_level {
	PT_LOG_WARN = 0,
	PT_LOG_INFO = 1,
	PT_LOG_DEBUG = 2,
};

typedef void (*pt_log_fn)(enum pt_log_level level, const char *msg, void *ctx);

/* Install a log callback (NULL: silence, the default). Not thread-safe. */
PT_API void pt_set_log(pt_log_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Kernel features: probed once, cached, tri-state with a reason.       */

enum pt_feature {
	PT_FEAT_PAGEMAP_SCAN = 0,	/* PAGEMAP_SCAN ioctl */
	PT_FEAT_SCAN_SOFT_DIRTY,	/* PAGE_IS_SOFT_DIRTY category accepted */
	PT_FEAT_SCAN_GUARD,		/* PAGE_IS_GUARD category accepted */
	PT_FEAT_PAGEMAP_PFN,		/* PFNs visible in pagemap */
	PT_FEAT_SOFT_DIRTY,		/* soft-dirty bit really set on write */
	PT_FEAT_UFFD_SYSCALL,		/* userfaultfd(2) usable */
	PT_FEAT_UFFD_DEV,		/* /dev/userfaultfd usable */
	PT_FEAT_UFFD_UNPRIVILEGED,	/* vm.unprivileged_userfaultfd = 1 */
	PT_FEAT_UFFD_WP_ASYNC,
	PT_FEAT_UFFD_WP_UNPOPULATED,
	PT_FEAT_UFFD_WP_HUGETLBFS_SHMEM,
	PT_FEAT_PIDFD_OPEN,
	PT_FEAT_PIDFD_GETFD,
	PT_FEAT_PROCESS_MADVISE,
	PT_FEAT_MADV_PAGEOUT,
	PT_FEAT_MADV_GUARD_INSTALL,
	PT_FEAT_KPAGEFLAGS,		/* /proc/kpageflags + kpagecount readable */
	PT_FEAT_SWAP_ACTIVE,		/* at least one swap device active */
	PT_FEAT_CAP_SYS_ADMIN,		/* effective CAP_SYS_ADMIN */
	PT_FEAT_PTRACE,			/* may ptrace other processes (yama, caps) */
	PT_FEAT__COUNT
};

enum pt_tristate {
	PT_UNKNOWN = -1,
	PT_NO = 0,
	PT_YES = 1,
};

/*
 * Probe (once, cached) and return PT_YES / PT_NO / PT_UNKNOWN for @f.
 * When @reason is not NULL it receives a static, human-readable reason
 * valid for the life of the process.  Returns -EINVAL for a bad @f.
 */
PT_API int pt_feature(enum pt_feature f, const char **reason);
/* Short stable identifier ("pagemap_scan", ...), or NULL for a bad @f. */
PT_API const char *pt_feature_name(enum pt_feature f);
/* Forget cached probe results (for tests that change the environment). */
PT_API void pt_features_reset(void);

/* ------------------------------------------------------------------ */
/* Targets                                                              */

enum pt_backend {
	PT_BACKEND_AUTO = 0,
	PT_BACKEND_PAGEMAP_SCAN,	/* PAGEMAP_SCAN ioctl */
	PT_BACKEND_PAGEMAP_READ,	/* batched pread of /proc/PID/pagemap */
};

struct pt_target_opts {
	size_t sz;			/* sizeof(struct pt_target_opts) */
	enum pt_backend backend;	/* AUTO honours PT_FORCE_BACKEND */
};

struct pt_target;

/*
 * Open @pid for inspection (0 = the calling process).  Fails with NULL
 * and errno ESRCH (no such process), EACCES/EPERM (not allowed),
 * EOPNOTSUPP (backend forced but not available).  @opts may be NULL.
 */
PT_API struct pt_target *pt_target_open(pid_t pid, const struct pt_target_opts *opts);
PT_API void pt_target_free(struct pt_target *t);
PT_API pid_t pt_target_pid(const struct pt_target *t);
PT_API enum pt_backend pt_target_backend(const struct pt_target *t);
/* "pagemap_scan", "pagemap_read" (stable: used in JSON output). */
PT_API const char *pt_backend_name(enum pt_backend b);
/* 1 if the target is still alive, 0 if it has exited, -errno on error. */
PT_API int pt_target_alive(const struct pt_target *t);

/* ------------------------------------------------------------------ */
/* Memory areas (VMAs)                                                  */

enum pt_vma_kind {
	PT_VMA_ANON = 0,	/* private anonymous */
	PT_VMA_HEAP,
	PT_VMA_STACK,
	PT_VMA_FILE,		/* regular file */
	PT_VMA_SHMEM,		/* MAP_SHARED anonymous (/dev/zero (deleted)) */
	PT_VMA_MEMFD,
	PT_VMA_SYSV,		/* SysV shm segment */
	PT_VMA_SHM_FILE,	/* file on tmpfs (e.g. /dev/shm) */
	PT_VMA_HUGETLB,
	PT_VMA_SPECIAL,		/* [vdso], [vvar], [vsyscall], devices, ... */
};

#define PT_PROT_READ	0x1u
#define PT_PROT_WRITE	0x2u
#define PT_PROT_EXEC	0x4u
#define PT_MAP_SHARED	0x8u

struct pt_vma {
	uint64_t start, end;	/* [start, end) */
	uint64_t offset;	/* file offset of start, in bytes */
	uint64_t inode;
	uint32_t dev_major, dev_minor;
	uint32_t prot;		/* PT_PROT_* | PT_MAP_SHARED */
	uint32_t kind;		/* enum pt_vma_kind */
	uint32_t sysv_key;	/* for PT_VMA_SYSV */
	const char *path;	/* as in /proc/PID/maps, "" for anonymous; owned by the array */
};

/*
 * Read the target's memory areas.  On success *@out is an array of
 * *@count entries allocated by the library; release it with
 * pt_vmas_free().  Also refreshes the layout used by pt_scan().
 */
PT_API int pt_vmas_read(struct pt_target *t, struct pt_vma **out, size_t *count);
PT_API void pt_vmas_free(struct pt_vma *vmas);
PT_API const char *pt_vma_kind_name(enum pt_vma_kind k);

/* ------------------------------------------------------------------ */
/* Page scan                                                            */

enum pt_state {
	PT_STATE_ABSENT = 0,	/* no data anywhere */
	PT_STATE_PRESENT,	/* mapped in this process */
	PT_STATE_SWAPPED,	/* in swap, not in memory */
	PT_STATE_CACHED,	/* in page cache / swap cache, not mapped here */
	PT_STATE_UNKNOWN,	/* pagetrack could not tell; see reason */
	PT_STATE__COUNT
};

/* Why a page is PT_STATE_UNKNOWN. */
enum pt_reason {
	PT_REASON_NONE = 0,
	PT_REASON_NO_ACCESS,		/* backing object not openable (needs CAP_SYS_ADMIN) */
	PT_REASON_NOT_RESOLVED,		/* PT_SCAN_NO_SHARED was given */
	PT_REASON_MINCORE_DENIED,	/* mincore lies: not owner, not writable */
	PT_REASON_MARKER_AMBIGUOUS,	/* uffd-wp marker vs swap without PFNs */
	PT_REASON_UNSUPPORTED,		/* mapping type cannot be inspected */
	PT_REASON__COUNT
};

#define PT_ATTR_FILE		(1u << 0)	/* file page or shared anon page */
#define PT_ATTR_EXCLUSIVE	(1u << 1)	/* exclusively mapped */
#define PT_ATTR_SOFT_DIRTY	(1u << 2)
#define PT_ATTR_UFFD_WP		(1u << 3)	/* write-protected by userfaultfd */
#define PT_ATTR_ZERO		(1u << 4)	/* maps the zero page */
#define PT_ATTR_HUGE		(1u << 5)	/* PMD-mapped THP or hugetlb */
#define PT_ATTR_GUARD		(1u << 6)	/* guard region */
#define PT_ATTR_LOC		(1u << 7)	/* .loc is valid (PFN or swap slot) */
#define PT_ATTR_KFLAGS		(1u << 8)	/* .kflags/.mapcount are valid */

/* /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h). */
#define PT_KPF_LOCKED		0
#define PT_KPF_REFERENCED	2
#define PT_KPF_UPTODATE		3
#define PT_KPF_DIRTY		4
#define PT_KPF_LRU		5
#define PT_KPF_ACTIVE		6
#define PT_KPF_SLAB		7
#define PT_KPF_WRITEBACK	8
#define PT_KPF_RECLAIM		9
#define PT_KPF_BUDDY		10
#define PT_KPF_MMAP		11
#define PT_KPF_ANON		12
#define PT_KPF_SWAPCACHE	13
#define PT_KPF_SWAPBACKED	14
#define PT_KPF_COMPOUND_HEAD	15
#define PT_KPF_COMPOUND_TAIL	16
#define PT_KPF_HUGE		17
#define PT_KPF_UNEVICTABLE	18
#define PT_KPF_HWPOISON		19
#define PT_KPF_NOPAGE		20
#define PT_KPF_KSM		21
#define PT_KPF_THP		22
#define PT_KPF_OFFLINE		23
#define PT_KPF_ZERO_PAGE	24
#define PT_KPF_IDLE		25
#define PT_KPF_PGTABLE		26
#define PT_KPF_MLOCKED		33	/* kernel-internal bit, exported */

/*
 * One run of pages sharing state and attributes.  When PT_ATTR_LOC is
 * set, .loc is the PFN (present) or swap offset (swapped; .swap_type
 * holds the type) of the first page, and consecutive pages of the run
 * have consecutive locations.  When PT_ATTR_KFLAGS is set, every page of
 * the run has the same kpageflags and map count.
 */
struct pt_region {
	uint64_t start, end;	/* [start, end), page aligned */
	uint8_t state;		/* enum pt_state */
	uint8_t reason;		/* enum pt_reason, for PT_STATE_UNKNOWN */
	uint16_t swap_type;
	uint32_t attrs;		/* PT_ATTR_* */
	uint64_t loc;
	uint64_t kflags;	/* 1 << PT_KPF_* */
	uint64_t mapcount;
};

/* Scan flags. Default: the whole truth about state and attributes. */
#define PT_SCAN_LOCATION	(1u << 0)	/* report PFN / swap slot (splits runs) */
#define PT_SCAN_KFLAGS		(1u << 1)	/* report kpageflags (implies LOCATION; root) */
#define PT_SCAN_NO_SHARED	(1u << 2)	/* skip shared/file resolution: UNKNOWN */
#define PT_SCAN_NO_EXCLUSIVE	(1u << 3)	/* exclusive bit not needed (faster) */

struct pt_scan_opts {
	size_t sz;		/* sizeof(struct pt_scan_opts) */
	uint32_t flags;		/* PT_SCAN_* */
};

/* Limits that applied to a scan (pt_scan_limits()). */
#define PT_LIMIT_NO_PFN		(1u << 0)	/* PFNs hidden: no CAP_SYS_ADMIN */
#define PT_LIMIT_NO_HUGE	(1u << 1)	/* huge attribute not visible */
#define PT_LIMIT_NO_ZERO	(1u << 2)	/* zero-page attribute not visible */
#define PT_LIMIT_NO_KFLAGS	(1u << 3)	/* kpageflags not readable */
#define PT_LIMIT_NO_GUARD	(1u << 4)	/* guard regions not visible */

/*
 * Scan [*cursor, end) of the target and write at most @cap regions to
 * @out, in address order.  Only addresses inside memory areas are
 * reported; a region never spans two memory areas.  On return *cursor is
 * where to resume (== end when done).  Returns the number of regions
 * written (0 only when done), or -errno: -ESRCH when the target exited
 * (regions already returned stay valid), -EINVAL for bad arguments,
 * -ENOMEM.  When an error happens after some regions were written, the
 * count is returned and the error is reported by the next call.
 */
PT_API int pt_scan(struct pt_target *t, uint64_t *cursor, uint64_t end,
		   struct pt_region *out, size_t cap, const struct pt_scan_opts *opts);

/* PT_LIMIT_* bits that applied to scans of @t so far. */
PT_API uint32_t pt_scan_limits(const struct pt_target *t);

PT_API const char *pt_state_name(enum pt_state s);	/* "present", ... */
PT_API const char *pt_reason_text(enum pt_reason r);	/* one line */

/* ------------------------------------------------------------------ */
/* Physical page flags (root)                                           */

struct pt_kpage {
	uint64_t pfn;		/* in */
	uint64_t flags;		/* out: 1 << PT_KPF_* */
	uint64_t mapcount;	/* out: /proc/kpagecount */
};

/*
 * Fill .flags and .mapcount for @n pages.  The PFNs need not be sorted:
 * reads are batched in PFN order internally.  -EACCES without privilege.
 */
PT_API int pt_kpageflags(struct pt_kpage *pages, size_t n);

/* ------------------------------------------------------------------ */
/* Dirty-page tracking (doc/tracking.md)                                */

enum pt_track_backend {
	PT_TRACK_AUTO = 0,	/* best available; PT_FORCE_TRACKER=uffd|softdirty|hash */
	PT_TRACK_UFFD,		/* userfaultfd-wp async + PAGEMAP_SCAN (6.7+) */
	PT_TRACK_SOFTDIRTY,	/* clear_refs 4 + soft-dirty bit */
	PT_TRACK_HASH,		/* per-page XXH3 of the contents */
};

/* Tracker flags. */
#define PT_TRACK_TRUST_SHARED	(1u << 0)	/* trust page tables for MAP_SHARED areas
						   (writes by other mappers or write(2) on
						   the object are then invisible) */
#define PT_TRACK_NO_BARRIER	(1u << 1)	/* the caller does not copy the reported
						   pages (it counts them): do not wait, after
						   a round, for system calls in flight whose
						   DMA may still land (uffd; doc/tracking.md) */

struct pt_tracker_opts {
	size_t sz;			/* sizeof(struct pt_tracker_opts) */
	enum pt_track_backend backend;
	uint32_t flags;			/* PT_TRACK_* */
	uint64_t start, end;		/* track only [start, end); 0, 0: everything */
};

/* Flags of a dirty region. */
#define PT_DIRTY_NEW		(1u << 0)	/* area new since the last collect: reported whole */
#define PT_DIRTY_HASHED		(1u << 1)	/* found by content hash (fallback or hash backend) */
#define PT_DIRTY_ZEROED		(1u << 2)	/* pages dropped (MADV_DONTNEED/FREE, reclaim): now zero */

struct pt_dirty {
	uint64_t start, end;	/* [start, end), page aligned */
	uint32_t flags;		/* PT_DIRTY_* */
	uint32_t reserved;
};

struct pt_tracker;

/*
 * Start tracking @pid (0 = the calling process).  Every page of the
 * tracked range is armed; the first collect reports what was written
 * since.  Fails with NULL and errno: ESRCH, EPERM/EACCES, EOPNOTSUPP
 * (backend forced but not usable here), EBUSY (target already traced).
 * For another process the uffd backend runs one userfaultfd() inside the
 * target with ptrace (doc/inject.md); pt_tracker_free() closes it again.
 */
PT_API struct pt_tracker *pt_tracker_create(pid_t pid, const struct pt_tracker_opts *opts);
/* Disarm everything and leave the target as found.  Accepts NULL. */
PT_API void pt_tracker_free(struct pt_tracker *tr);
PT_API enum pt_track_backend pt_tracker_backend(const struct pt_tracker *tr);
PT_API const char *pt_track_backend_name(enum pt_track_backend b);	/* "uffd", ... */

/*
 * Harvest the pages written since the previous round and re-arm them
 * atomically (no write between harvest and re-arm is lost).  Writes up
 * to @cap regions; when more remain, *@more is set and the next call
 * continues the same round without starting a new one.  Returns the
 * number of regions written or -errno (-ESRCH: target exited).
 * Contract: every page whose content changed since the previous round
 * is reported; false positives are allowed and counted.
 */
PT_API int pt_tracker_collect(struct pt_tracker *tr, struct pt_dirty *out, size_t cap, bool *more);

/*
 * Tell the tracker what a consumer copied: @len bytes of @data as the
 * content of [@addr, @addr+@len) (page aligned), read after the collect
 * that reported those pages.  A copier calls it for every page it copies;
 * without it, two changes between collects can leave the copy stale:
 * - areas tracked by content hash (the hash backend, hashed fallback
 *   areas) compare the next round against the copy instead of against
 *   what the tracker read itself, so a page that changed between the
 *   collect and the copy and changed back before the next round is
 *   reported again;
 * - in page-table tracked areas, a page copied with data counts as
 *   holding data, so if it has none at the next round (dropped, or
 *   unmapped and its address covered again, which leaves no trace in
 *   the page tables) it is reported as zeroed even when it had no data
 *   at the collect before the copy.
 * A reported page found unmapped when copying is noted as zeros (what the
 * copy now holds), so data moved back to it later is reported.  Not
 * concurrently with pt_tracker_collect().  0 or -errno (-EINVAL:
 * unaligned, -ENOMEM).
 */
PT_API int pt_tracker_note_copy(struct pt_tracker *tr, uint64_t addr, const void *data, size_t len);

struct pt_tracker_stats {
	size_t sz;			/* sizeof(struct pt_tracker_stats) */
	uint64_t rounds;		/* completed collect rounds */
	uint64_t pages_dirty;		/* pages reported in the last round */
	uint64_t pages_new;		/* of which in new areas */
	uint64_t pages_hashed;		/* pages hashed in the last round */
	uint64_t areas_fallback;	/* areas tracked by hashing instead of the backend */
	uint64_t collect_ns;		/* duration of the last round */
	uint64_t pause_ns_max;		/* longest time one thread of the target was held
					   stopped, so far */
	uint64_t pause_total_ns_max;	/* longest time from the first thread stopped to
					   the last one resumed, in one stop, so far */
};

PT_API int pt_tracker_stats(const struct pt_tracker *tr, struct pt_tracker_stats *st);

/* ------------------------------------------------------------------ */
/* Raw pagemap entry decoding (one u64 of /proc/PID/pagemap).           */

#define PT_PM_PFN_MASK		((1ULL << 55) - 1)
#define PT_PM_SOFT_DIRTY	(1ULL << 55)
#define PT_PM_EXCLUSIVE		(1ULL << 56)
#define PT_PM_UFFD_WP		(1ULL << 57)
#define PT_PM_GUARD		(1ULL << 58)
#define PT_PM_FILE		(1ULL << 61)
#define PT_PM_SWAP		(1ULL << 62)
#define PT_PM_PRESENT		(1ULL << 63)

struct pt_pm_entry {
	uint8_t present, swapped, file, exclusive, soft_dirty, uffd_wp, guard;
	uint8_t swap_type;	/* when swapped (0 if hidden) */
	uint64_t pfn;		/* when present (0 if hidden) */
	uint64_t swap_offset;	/* when swapped (0 if hidden) */
};

PT_API void pt_pm_decode(uint64_t raw, struct pt_pm_entry *e);

#ifdef __cplusplus
}
#endif
#endif /* PAGETRACK_PAGETRACK_H */
