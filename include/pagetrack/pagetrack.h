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
 *  - pt_x_name() returns a stable lowercase identifier (used in JSON
 *    output), pt_x_text() a one-line sentence for humans; both return
 *    static strings, NULL for a value outside the enum.
 *  - A handle (pt_target, pt_tracker) is not thread-safe; distinct
 *    handles may be used from distinct threads.  pt_feature() and the
 *    functions without a handle are thread-safe; pt_set_log() is not.
 *
 * Side effects (doc/api.md, "Side effects"); each function says which
 * of these it may have:
 *  - Files: every fd the library opens is O_CLOEXEC.  Handles keep fds
 *    open until freed (pagemap, pidfd, backing objects of shared memory,
 *    clear_refs, a userfaultfd); other calls close what they open.
 *  - Helper processes: the soft-dirty feature probe, the soft-dirty
 *    fault cost (pt_fault_cost_ns()) and the uffd tracker of another
 *    process fork() a short-lived child (pthread_atfork handlers run;
 *    the cost grows with the caller's page tables, and, as after any
 *    fork, the caller's next write to each private page it had written
 *    takes a fault) and reap it with waitpid() on its pid.  The caller
 *    gets SIGCHLD when it exits.
 *  - ptrace: the trackers of another process attach to it with
 *    PTRACE_SEIZE and stop its threads (freeze, barrier, syscall
 *    injection): microseconds when they get a CPU at once, longer when
 *    busy threads outnumber the CPUs or many areas are registered at
 *    once (pt_tracker_stats(): pause_ns_max, pause_total_ns_max), then
 *    detach, handing back any signal that arrived meanwhile.  They fail with EBUSY/EPERM if it is
 *    already traced.  The caller gets SIGCHLD for every such stop it
 *    traces, and waits for it with waitid()/waitpid() on the thread id.
 *  - Hence, while such a call runs, no other thread and no SIGCHLD
 *    handler of the caller may wait for "any child" (wait(),
 *    waitpid(-1, ...), waitid(P_ALL, ...)): it could consume a stop the
 *    library waits for (the call may then hang) or a helper's exit.  Wait
 *    for specific pids instead.  SIGCHLD left at its default (ignored)
 *    is always safe; a handler installed without SA_RESTART makes the
 *    caller's own blocking calls return EINTR.  The library retries
 *    EINTR and never changes signal dispositions or masks of the caller.
 *  - Memory: pt_scan() may map a backing object read-only for a moment
 *    (mincore); the feature probes map and unmap scratch pages.
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
#define PT_VERSION_MINOR 2
#define PT_VERSION_PATCH 0

PT_API const char *pt_version(void);

/* ------------------------------------------------------------------ */
/* Options structs                                                      */

/*
 * Every options struct starts with "size_t sz", the size the caller was
 * compiled with, so structs can grow without breaking old binaries (as
 * libbpf's LIBBPF_OPTS):
 *  - the library reads only the fields that lie entirely within sz; the
 *    others take their defaults (NULL options: all defaults);
 *  - every byte past what the library knows must be zero, else the call
 *    fails with -EINVAL (constructors: NULL and errno EINVAL), so a newer
 *    caller's request is never silently ignored by an older library;
 *  - sz < sizeof(size_t) is -EINVAL;
 *  - the structs have no padding: fields named "reserved" must be zero.
 * Declare them with PT_OPTS, which zeroes everything and sets sz:
 *
 *	PT_OPTS(pt_scan_opts, so, .flags = PT_SCAN_NO_SHARED);
 *	n = pt_scan(t, &cursor, end, out, cap, &so);
 *
 * struct pt_tracker_stats is an output struct with the same rules: the
 * library fills the fields within sz and leaves bytes past its own size
 * alone (they must be zero on input, which PT_OPTS ensures).
 */
#define PT_OPTS(TYPE, NAME, ...)					\
	struct TYPE NAME = {						\
		.sz = sizeof(struct TYPE),				\
		__VA_ARGS__						\
	}

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
	PT_FEAT_PAGE_SIZE_4K,		/* base pages are 4 KiB, the only size pagetrack
					   supports (PT_FORCE_PAGE_SIZE=N pretends N) */
	PT_FEAT__COUNT
};

/* Non-negative, so that pt_feature() can return either one or -errno. */
enum pt_tristate {
	PT_NO = 0,
	PT_YES = 1,
	PT_UNKNOWN = 2,		/* the probe could not tell; the reason says why */
};

/*
 * Probe (once, cached) and return PT_YES / PT_NO / PT_UNKNOWN (>= 0) for
 * @f, or -EINVAL for a bad @f (reason untouched).  When @reason is not
 * NULL it receives a static, human-readable reason valid for the life of
 * the process.  Thread-safe.  Side effects of the first call: ~40 system
 * calls on scratch objects of the calling process (mappings, pipes, a
 * userfaultfd, its own pidfd), all released; the first query of
 * PT_FEAT_SOFT_DIRTY also forks a child (see "Side effects" above).
 */
PT_API int pt_feature(enum pt_feature f, const char **reason);
/* Short stable identifier ("pagemap_scan", ...), or NULL for a bad @f. */
PT_API const char *pt_feature_name(enum pt_feature f);
/*
 * The kernel's base page size in bytes, as probed (PT_FORCE_PAGE_SIZE
 * applies).  pagetrack supports 4096 only: elsewhere pt_target_create()
 * and pt_tracker_create() fail with EOPNOTSUPP (PT_FEAT_PAGE_SIZE_4K).
 */
PT_API size_t pt_page_size(void);

/* What pt_fault_cost_ns() measured. */
enum pt_fault_kind {
	PT_FAULT_KIND_NONE = 0,		/* nothing could be measured (*how says why) */
	PT_FAULT_KIND_UFFD_WP,		/* a userfaultfd-wp async write fault on a populated
					   page: what the uffd tracker charges per page */
	PT_FAULT_KIND_FIRST_TOUCH,	/* neither uffd-wp async nor soft-dirty usable: the
					   first write to a fresh anonymous page instead */
	PT_FAULT_KIND_SOFT_DIRTY,	/* no uffd-wp async: a write fault on a populated page
					   write-protected by clear_refs 4, what the
					   softdirty tracker charges per page */
};

/*
 * The cost, on this machine, of one write fault of the kind a tracker
 * makes its target take, in ns: measured once (on the first call) and
 * cached.  Returns the kind measured (enum pt_fault_kind, >= 0); *@ns
 * gets the cost (0 with PT_FAULT_KIND_NONE), *@how a static sentence
 * saying how it was measured or why it could not be (either may be
 * NULL).  Method: 256 pages of a scratch private mapping, populated,
 * registered with a userfaultfd (WP async) and write-protected; the
 * first write to each page minus the same writes again (unprotected),
 * per page, median of 9 runs.  Without uffd-wp async, where the kernel
 * has soft-dirty (PT_FEAT_SOFT_DIRTY), the same in a forked child that
 * write-protects its pages with clear_refs 4 (clear_refs acts on a whole
 * process); else the same with first touches of fresh pages.
 * Thread-safe.  Side effects of the first call: the feature probes
 * (pt_feature()), a scratch mapping and a userfaultfd of the calling
 * process, both released, or, for soft-dirty, a second forked child
 * (see "Side effects" above), waited for 20 s at most, then killed;
 * ~1 ms where a fault costs ~1 us, ~25 ms where it costs ~17 us
 * (shadow-paged VMs), plus the fork.  PT_FORCE_FAULT_COST=soft_dirty
 * skips uffd-wp, =first_touch skips both (tests).
 * pt_tracker_create() calls it (pt_tracker_stats().est_fault_ns).
 */
PT_API int pt_fault_cost_ns(uint64_t *ns, const char **how);
/* "none", "uffd_wp", "first_touch", "soft_dirty" (stable); NULL for a bad @k. */
PT_API const char *pt_fault_kind_name(enum pt_fault_kind k);

/* ------------------------------------------------------------------ */
/* Targets                                                              */

enum pt_scan_backend {
	PT_SCAN_BACKEND_AUTO = 0,
	PT_SCAN_BACKEND_PAGEMAP_SCAN,	/* PAGEMAP_SCAN ioctl */
	PT_SCAN_BACKEND_PAGEMAP_READ,	/* batched pread of /proc/PID/pagemap */
};

struct pt_target_opts {
	size_t sz;			/* sizeof(struct pt_target_opts) */
	enum pt_scan_backend scan_backend;	/* AUTO honours PT_FORCE_BACKEND */
	uint32_t reserved;		/* must be 0 */
};

struct pt_target;

/*
 * Open @pid for inspection (0 = the calling process).  Fails with NULL
 * and errno ESRCH (no such process), ENODATA (a kernel thread: no user
 * memory), EACCES/EPERM (not allowed), EOPNOTSUPP (backend forced but
 * not available, or pages are not 4 KiB: PT_FEAT_PAGE_SIZE_4K), EINVAL
 * (bad @opts).  @opts may be NULL.  Reads only: the target is never
 * stopped or traced.  Keeps its pagemap and a pidfd open until
 * pt_target_free().
 */
PT_API struct pt_target *pt_target_create(pid_t pid, const struct pt_target_opts *opts);
PT_API void pt_target_free(struct pt_target *t);
PT_API pid_t pt_target_pid(const struct pt_target *t);
PT_API enum pt_scan_backend pt_target_scan_backend(const struct pt_target *t);
/* "pagemap_scan", "pagemap_read", "auto". */
PT_API const char *pt_scan_backend_name(enum pt_scan_backend b);
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
	uint32_t reserved;	/* must be 0 */
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
 * Reads /proc/PID only; the target is never stopped.  For shared memory
 * it opens the backing object (kept open in @t, O_CLOEXEC) and may map
 * it read-only for a moment to ask mincore().  May run the feature
 * probes (pt_feature()) on first use, including the soft-dirty one,
 * which forks.
 */
PT_API int pt_scan(struct pt_target *t, uint64_t *cursor, uint64_t end,
		   struct pt_region *out, size_t cap, const struct pt_scan_opts *opts);

/* PT_LIMIT_* bits that applied to scans of @t so far. */
PT_API uint32_t pt_scan_limits(const struct pt_target *t);

PT_API const char *pt_state_name(enum pt_state s);	/* "present", ... */
PT_API const char *pt_reason_name(enum pt_reason r);	/* "no_access", ... */
PT_API const char *pt_reason_text(enum pt_reason r);	/* one line for humans */

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
 * Opens /proc/kpageflags and /proc/kpagecount for the call only.
 * Thread-safe.
 */
PT_API int pt_kpageflags_read(struct pt_kpage *pages, size_t n);

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
#define PT_TRACK_HOT		(1u << 2)	/* hot-page skipping (doc/tracking.md, "Hot
						   pages"): pages written round after round
						   are left writable and reported every round
						   with PT_DIRTY_HOT (uffd; other backends
						   accept the flag and track as usual) */

struct pt_tracker_opts {
	size_t sz;			/* sizeof(struct pt_tracker_opts) */
	enum pt_track_backend backend;
	uint32_t flags;			/* PT_TRACK_* */
	uint64_t start, end;		/* track only [start, end); 0, 0: everything */
	/* PT_TRACK_HOT: a page written in each of the last hot_rounds rounds
	   becomes hot; 0: adaptive (from 2).  Ignored without PT_TRACK_HOT. */
	uint32_t hot_rounds;
	/* rounds a hot page stays writable before it is re-armed and checked;
	   0: adaptive (from 4, grows while re-armed pages turn hot again) */
	uint32_t hot_lease;
};

/* Flags of a dirty region. */
#define PT_DIRTY_NEW		(1u << 0)	/* area new since the last collect: reported whole */
#define PT_DIRTY_HASHED		(1u << 1)	/* found by content hash (fallback or hash backend) */
#define PT_DIRTY_ZEROED		(1u << 2)	/* pages dropped (MADV_DONTNEED/FREE, reclaim): now zero */
/*
 * With PT_DIRTY_NEW: pages of a new private anonymous area that held no
 * data when the area was armed (never touched, PROT_NONE reservations,
 * calloc'd memory not yet written).  They read as zeros as of this round:
 * a copier records them as zero without reading them (and need not pass
 * them to pt_tracker_note_copy()).  A write into one after this collect
 * is reported by a later one like any other.  They were not written:
 * counters of written pages leave them out (pt_tracker_stats().pages_hole).
 * A backend that cannot tell holes cheaply reports the whole area without
 * this flag; a page that holds data never carries it.
 */
#define PT_DIRTY_HOLE		(1u << 3)
/*
 * A hot page (PT_TRACK_HOT): left writable, so every write to it is free
 * for the target; it is reported by this collect (it may have been
 * written) and is reported again by the next one (with this flag while
 * it stays hot; without it in the round that re-arms it; as zeroed if it
 * was dropped; not at all only when its area was unmapped).  A pre-copy
 * copier may skip it until its final round and send it then, once
 * (doc/tracking.md, "Hot pages").  Never together with PT_DIRTY_NEW.
 */
#define PT_DIRTY_HOT		(1u << 4)

struct pt_dirty {
	uint64_t start, end;	/* [start, end), page aligned */
	uint32_t flags;		/* PT_DIRTY_* */
	uint32_t reserved;
};

struct pt_tracker;

/*
 * Start tracking @pid (0 = the calling process).  Every page of the
 * tracked range is armed; the first collect reports what was written
 * since.  Fails with NULL and errno: ESRCH, ENODATA (kernel thread),
 * EPERM/EACCES, EOPNOTSUPP (backend forced but not usable here, or
 * pages are not 4 KiB), EBUSY (target already traced), EALREADY
 * (uffd or auto: another pagetrack process tracks @pid with a
 * userfaultfd; its pid is logged), EINVAL (bad @opts).
 * Side effects, for another process (see "Side effects" above):
 *  - uffd: runs one userfaultfd() inside the target by ptrace injection
 *    (doc/inject.md), from a forked helper process (in the caller itself
 *    when Yama forbids the helper to trace); the target then holds that
 *    fd until pt_tracker_free() closes it the same way (if the caller
 *    dies first it stays open in the target, its pages write-protected
 *    in async mode: writes still proceed; the next pagetrack that tracks
 *    the target closes it, see pt_tracker_stats().leftovers_closed).
 *    While tracking, a lock file /run/pagetrack/uffd-PID-START (or under
 *    $PT_RUN_DIR) is held (doc/tracking.md, "Trackers that meet").  The
 *    target's threads are also frozen while a new area is registered.
 *  - softdirty: freezes every thread of the target (ptrace) around each
 *    round, this first one included, and clears its soft-dirty bits
 *    (clear_refs), which other soft-dirty users (CRIU) would see.
 *  - hash: reads the target's memory (process_vm_readv, /proc/PID/mem,
 *    pread of backing objects); no stop.
 * For the calling process (pid 0): no ptrace and no helper; soft-dirty
 * then needs a single-threaded caller.  The first create may run the
 * feature probes (pt_feature()), including the soft-dirty one (a fork),
 * and (backends other than hash) measure the fault cost
 * (pt_fault_cost_ns(): a scratch mapping and a userfaultfd, ~2-25 ms).
 */
PT_API struct pt_tracker *pt_tracker_create(pid_t pid, const struct pt_tracker_opts *opts);
/*
 * Disarm everything, leave the target as found and free @tr.  Accepts
 * NULL.  uffd on another process: one more injection (a close() in the
 * target, from a forked helper), retried for up to a second while
 * another process traces the target.  Returns 0, or -EBUSY when that
 * close failed: the userfaultfd stays open inside the target (with no
 * area registered: nothing is write-protected) until the next
 * pagetrack tracking it closes it.  @tr is freed either way.
 */
PT_API int pt_tracker_free(struct pt_tracker *tr);
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
 * Side effects on another process: softdirty freezes it for the round;
 * uffd stops each of its running threads for a moment after the round
 * (the barrier, unless PT_TRACK_NO_BARRIER) and freezes it to register
 * areas that appeared.  pt_tracker_stats() reports the longest pause.
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
	uint64_t leftovers_closed;	/* userfaultfds that killed pagetracks had left
					   in the target, closed there by create */
	int32_t auto_uffd_err;		/* PT_TRACK_AUTO: errno that made it pass over
					   uffd (0: uffd used, or not tried) */
	int32_t auto_softdirty_err;	/* ... and over softdirty */
	uint64_t pages_hole;		/* of pages_new in the last round: holes
					   (PT_DIRTY_HOLE), not written */
	/*
	 * The cost of tracking to the target over the last round's interval
	 * (doc/api.md, "Overhead"): from the start of the previous round (or
	 * of the arming round in create) to the start of the last one.  All
	 * 0 until the first collect.
	 */
	uint64_t interval_ns;		/* wall time of that interval (CLOCK_MONOTONIC) */
	uint64_t pages_faulted;		/* pages the backend had write-protected and the
					   target wrote in it, one write fault each: uffd,
					   the written pages the harvest re-protected;
					   softdirty, the soft-dirty pages; hash: 0 */
	uint64_t est_fault_ns;		/* pages_faulted x pt_fault_cost_ns(): the target's
					   time estimated spent in those faults.  Overhead %
					   = est_fault_ns * 100 / interval_ns */
	uint64_t target_minflt;		/* the target's minor faults in it (/proc/PID/stat;
					   all of them, not only tracking's) */
	uint64_t target_cpu_ns;		/* the target's CPU time in it (utime + stime,
					   in clock ticks of _SC_CLK_TCK, as ns) */
	uint64_t self_cpu_ns;		/* the calling process's own CPU time in it
					   (CLOCK_PROCESS_CPUTIME_ID: pagetrack's and
					   whatever else the caller ran) */
	/* Hot-page skipping (PT_TRACK_HOT; all 0 without it) */
	uint64_t pages_hot;		/* of pages_dirty in the last round: PT_DIRTY_HOT
					   (left writable: no fault, maybe not written) */
	uint64_t pages_rearmed;		/* hot pages re-armed by the last round (reported
					   without PT_DIRTY_HOT) */
	uint64_t hot_rounds;		/* K in use: rounds in a row that make a page hot */
	uint64_t hot_lease;		/* rounds a hot page stays writable before re-arming */
	uint64_t hash_cpu_ns;		/* the caller's CPU time spent hashing in the last
					   round (baselines and comparisons of hashed
					   areas; CLOCK_THREAD_CPUTIME_ID): with
					   pages_hashed, the measured cost per hashed page */
};

PT_API int pt_tracker_stats(const struct pt_tracker *tr, struct pt_tracker_stats *st);

/*
 * The memory areas the last completed round tracked, so a caller can
 * attribute reported pages to areas, or a copier mirror the layout,
 * without reading /proc/PID/maps itself (which races with the target):
 * the layout that round read, clipped to the tracked range
 * (opts.start/end: .start, .end and .offset are clipped), without the
 * areas no backend tracks (the kernel's [vdso], [vvar], [vsyscall]).
 * Every page a collect reports lies in one of these areas.  Sorted by
 * address, never overlapping; paths, kinds and backing identity
 * (inode, device, offset) as in pt_vmas_read().
 *
 * "Last completed round": a round is harvested whole in the first
 * pt_tracker_collect() call that starts it, so from that call on, and
 * while it is handed out in further calls (*more set), this is the
 * layout of the pages being handed out.  It changes only when the next
 * round starts; a failed collect leaves it as it was.  Before the first
 * collect it is the layout pt_tracker_create() armed.
 *
 * On success *@out is an array of *@count entries (possibly 0) allocated
 * by the library, independent of @tr; release it with pt_vmas_free().
 * Returns 0 or -errno (-EINVAL, -ENOMEM).  Not concurrently with
 * pt_tracker_collect().
 */
PT_API int pt_tracker_vmas(const struct pt_tracker *tr, struct pt_vma **out, size_t *count);

/* How the last completed round tracked an area (pt_tracker_area()). */
enum pt_area_method {
	PT_AREA_BACKEND = 0,	/* by the tracker's backend (pt_tracker_backend()) */
	PT_AREA_HASHED,		/* by content hashing instead of that page-table backend */
};

/* Why an area is hashed instead of tracked by the page-table backend. */
enum pt_area_reason {
	PT_AREA_REASON_NONE = 0,	/* not hashed (or the hash backend is the backend) */
	PT_AREA_REASON_SHARED,		/* MAP_SHARED without PT_TRACK_TRUST_SHARED: writes by
					   other mappers or write(2) bypass the page tables */
	PT_AREA_REASON_PINNED,		/* holds io_uring registered buffers, which the kernel
					   writes through a long-term pin, not the page tables */
	PT_AREA_REASON_UNSUPPORTED,	/* the backend cannot track this kind of area (uffd:
					   hugetlbfs without WP_HUGETLBFS_SHMEM; softdirty:
					   MAP_SHARED with PT_TRACK_TRUST_SHARED) */
	PT_AREA_REASON_REFUSED,		/* the backend refused to arm it (uffd registration
					   failed: e.g. the target's own userfaultfd there) */
	PT_AREA_REASON_BUDGET,		/* the caller moved it to hashing
					   (pt_tracker_set_area_method()): its faults
					   cost the target more than hashing costs us */
};

struct pt_track_area {
	size_t sz;		/* in: sizeof(struct pt_track_area) */
	uint64_t start, end;	/* the area of pt_tracker_vmas() holding the address */
	uint32_t method;	/* enum pt_area_method */
	uint32_t reason;	/* enum pt_area_reason (NONE unless hashed) */
	uint64_t pages_faulted;	/* of stats.pages_faulted in that round: this area's */
	uint64_t pages_hashed;	/* of stats.pages_hashed in that round: this area's */
};

/*
 * How the last completed round (the one pt_tracker_vmas() describes)
 * tracked the area holding @addr.  Set @info->sz first: the library fills
 * what both sides know and zeroes the rest, so the struct can grow.  An
 * area hashed once keeps being hashed, for the same reason, while it
 * lives (switching back would report it whole every round), except one
 * hashed by the caller's choice (PT_AREA_REASON_BUDGET).  Returns 0,
 * -ENOENT (@addr is in no tracked area), -EINVAL.
 */
PT_API int pt_tracker_area(const struct pt_tracker *tr, uint64_t addr, struct pt_track_area *info);
/*
 * From the next round on, track the area of pt_tracker_vmas() holding
 * @addr by content hashing (PT_AREA_HASHED: pagetrack's CPU, the target
 * no longer faults there once each page has been written) or by the
 * backend again (PT_AREA_BACKEND, undoing an earlier PT_AREA_HASHED).
 * No write is missed at either switch: to hashing, the round takes the
 * area's baseline hashes before its last harvest (a page written in
 * between is reported in both rounds); back to the backend, the area is
 * reported whole once (PT_DIRTY_NEW) and armed.  The choice follows the
 * area while it lives (same object, same offsets).  uffd backend only:
 * -EOPNOTSUPP with softdirty (clear_refs write-protects every area, so
 * hashing one spares the target nothing) or hash, or for BACKEND on an
 * area hashed for another reason.  0, -ENOENT (no tracked area there),
 * -EINVAL.  Not concurrently with pt_tracker_collect().
 */
PT_API int pt_tracker_set_area_method(struct pt_tracker *tr, uint64_t addr, enum pt_area_method m);
/* "none", "shared", "pinned", "unsupported", "refused", "budget" (stable); NULL if unknown. */
PT_API const char *pt_area_reason_name(enum pt_area_reason r);

/* ------------------------------------------------------------------ */
/* Sampling: estimates of pages written, never for copying              */
/*   (doc/tracking.md, "Sampling")                                      */

/*
 * A sampler watches a random, stratified sample of the target's data
 * pages (pages present or swapped, per memory area) by content hash and
 * estimates how many pages each area wrote in an interval, with a 95%
 * interval.  It costs the target nothing (it is never stopped nor
 * write-protected: the sampled pages are read with process_vm_readv);
 * its cost is pagetrack's (about 2 x sample pages read and hashed per
 * collect, plus a page-table scan of the tracked range).  It is a type
 * apart from struct pt_tracker on purpose: it reports no page, so
 * nothing that copies memory can be handed one.
 */
struct pt_sampler_opts {
	size_t sz;			/* sizeof(struct pt_sampler_opts) */
	uint32_t pages_per_gib;		/* sample size per GiB of data pages; 0: auto
					   (512, as QEMU's calc-dirty-rate) */
	uint32_t min_per_area;		/* at least this many per area (all of a smaller
					   one); 0: 32 */
	uint64_t seed;			/* of the random draws; 0: from the clock */
	uint64_t start, end;		/* only [start, end); 0, 0: everything */
};

/*
 * An estimate, for one area or for the total (.start = .end = 0).  The
 * population is the pages holding data when the interval began (a page
 * that gained data during it is not counted); "written" is "its content
 * changed" (a rewrite of the same bytes is not seen; a sampled page that
 * could not be read again, unmapped, counts as not written).
 */
struct pt_sample_estimate {
	uint64_t start, end;		/* the area; 0, 0 for the total */
	uint64_t pages;			/* data pages at the start of the interval */
	uint64_t sampled;		/* of which in the sample (all: exact) */
	uint64_t sampled_written;	/* of the sample, found written */
	uint64_t est;			/* estimated pages written */
	uint64_t lo, hi;		/* 95% interval of it (lo <= est <= hi) */
};

struct pt_sampler;

/*
 * Draw the first sample of @pid (0 = the caller) and read it.  NULL with
 * errno: ESRCH, EPERM/EACCES (needs ptrace access, as process_vm_readv),
 * EINVAL (bad @opts), ENOMEM.  Reads /proc/PID/maps, pagemap and the
 * sampled pages; no stop, no helper process.
 */
PT_API struct pt_sampler *pt_sampler_create(pid_t pid, const struct pt_sampler_opts *opts);
/*
 * Close the interval: draw a new sample for the next interval, read this
 * one again and the new one right after, estimate.  Fills *@total and the first
 * @cap entries of @areas (in address order; areas without data pages
 * are left out) and returns how many areas there were (may exceed @cap),
 * or -errno (-ESRCH: target gone, -EINVAL, -ENOMEM).
 */
PT_API int pt_sampler_collect(struct pt_sampler *s, struct pt_sample_estimate *total,
			      struct pt_sample_estimate *areas, size_t cap);
PT_API void pt_sampler_free(struct pt_sampler *s);

/* ------------------------------------------------------------------ */
/* Copying memory out (lib/copy/, doc/api.md "Copying")                 */

/* What a page of a copy (or of an image) is. Values frozen by doc/image-format.md. */
enum pt_page_kind {
	PT_PAGE_DATA = 1,	/* content copied */
	PT_PAGE_ZERO = 2,	/* holds data, all zeros: recorded, not stored */
	PT_PAGE_HOLE = 3,	/* no data in the process (never written, dropped; a
				   private file mapping reads through to its file) */
	PT_PAGE_UNCHANGED = 4,	/* images only: as in the parent layer */
	PT_PAGE_UNREADABLE = 5,	/* could not be read; detail: enum pt_unreadable */
};

enum pt_unreadable {
	PT_UNREADABLE_NONE = 0,
	PT_UNREADABLE_FAULT = 1,	/* the read faulted (e.g. file mapping past EOF) */
	PT_UNREADABLE_KERNEL = 2,	/* kernel area ([vvar], [vsyscall]) */
	PT_UNREADABLE_DEVICE = 3,	/* device / PFN mapping (VM_IO) */
	PT_UNREADABLE_PERM = 4,		/* not permitted */
};

#define PT_COPY_NO_EVICT	(1u << 0)	/* leave pages the copy swapped in resident */
#define PT_COPY_FORCE_MEM	(1u << 1)	/* read through /proc/PID/mem only, never
						   process_vm_readv (the fallback; also
						   PT_FORCE_COPY=mem) */

struct pt_copy_opts {
	size_t sz;			/* sizeof(struct pt_copy_opts) */
	uint32_t flags;			/* PT_COPY_* */
	uint32_t reserved;		/* must be 0 */
	struct pt_tracker *tracker;	/* if set, every page copied from an area is
					   noted: pt_tracker_note_copy() */
};

/*
 * One piece of a copy: @npages consecutive pages of one owner, one kind.
 * The pieces of one call tile its range exactly, in increasing order.
 */
struct pt_copy_piece {
	uint64_t addr;		/* area: virtual address; object: byte offset in it */
	uint64_t npages;
	uint32_t kind;		/* enum pt_page_kind, never UNCHANGED */
	uint32_t detail;	/* UNREADABLE: enum pt_unreadable; else 0 */
	const void *data;	/* DATA: npages * page size bytes, valid during the
				   call only; else NULL */
	uint64_t swapped;	/* of these pages, how many were swapped out (or
				   their object's page not resident) before the read */
};
/* Consumer of pieces: 0 to go on, or a negative errno to stop the copy with it. */
typedef int (*pt_copy_fn)(const struct pt_copy_piece *piece, void *ctx);

struct pt_copy_stats {
	size_t sz;			/* sizeof(struct pt_copy_stats) */
	uint64_t bytes_read;		/* bytes read from the target or its objects */
	uint64_t pages_data, pages_zero, pages_hole, pages_unreadable;
	uint64_t pages_swapped_in;	/* pages the copy had to bring in (swap or, for
					   objects, not resident) */
	uint64_t pages_evicted;		/* of those, put back out (MADV_PAGEOUT) */
	uint64_t read_ns;		/* time spent reading */
};

struct pt_copier;

/*
 * A copier of @pid's memory.  NULL and errno: ESRCH, EPERM/EACCES,
 * EINVAL (bad @opts), ENOMEM.  It opens /proc/PID/mem and the backing
 * objects it needs (O_CLOEXEC) and never stops the target: to copy a
 * consistent state the caller freezes it (or copies what a tracker
 * reported).  Its own memory is bounded (a few MiB) whatever the
 * target's size.
 */
PT_API struct pt_copier *pt_copier_create(pid_t pid, const struct pt_copy_opts *opts);
PT_API void pt_copier_free(struct pt_copier *cp);

/* True when @v's pages are those of a backing object (MAP_SHARED file,
 * shmem, memfd, SysV): copy them once per object with pt_copy_object(). */
PT_API bool pt_vma_is_object(const struct pt_vma *v);

/*
 * Copy [@start, @end) of private area @v (from pt_vmas_read() or
 * pt_tracker_vmas(); page aligned, inside @v) and hand it to @fn in
 * pieces that tile the range.  Pages with no data are HOLE (never read);
 * in a private file mapping, pages not copied-on-write are HOLE too
 * (their content is the file's).  Pages read as all zeros are ZERO.
 * Swapped-out pages are read and, unless PT_COPY_NO_EVICT, paged out
 * again afterwards (process_madvise(MADV_PAGEOUT)).  Returns 0, what @fn
 * returned, or -errno: -ESRCH (target gone), -EINVAL (@v shared, bad
 * range), -EIO.  A page that vanished while reading (unmapped) is HOLE.
 */
PT_API int pt_copy_area(struct pt_copier *cp, const struct pt_vma *v, uint64_t start,
			uint64_t end, pt_copy_fn fn, void *ctx);

/*
 * Copy byte range [@off, @end) (page aligned; @end clipped to the
 * object's size, rounded up to a page) of the object that area @v maps
 * (pt_vma_is_object()), through the object itself, not the target's
 * page tables: pages never allocated in it are HOLE.  Pages not resident
 * in the object (swapped) are read through pagetrack's own mapping of it
 * and paged out there again unless PT_COPY_NO_EVICT.  Offsets in pieces
 * are byte offsets in the object.
 */
PT_API int pt_copy_object(struct pt_copier *cp, const struct pt_vma *v, uint64_t off,
			  uint64_t end, pt_copy_fn fn, void *ctx);
/* The size in bytes of the object area @v maps (fstat), or -errno. */
PT_API int64_t pt_copy_object_size(struct pt_copier *cp, const struct pt_vma *v);
PT_API int pt_copier_stats(const struct pt_copier *cp, struct pt_copy_stats *st);

/* ------------------------------------------------------------------ */
/* Images (doc/image-format.md): read, verify, core files               */

#define PT_IMAGE_HAS_PARENT	(1u << 0)	/* header flags */
#define PT_IMAGE_FROZEN		(1u << 1)
#define PT_IMAGE_LIVE		(1u << 2)

enum pt_image_delta {
	PT_DELTA_FULL = 0,
	PT_DELTA_TRACKED = 1,
	PT_DELTA_COMPARED = 2,
};

#define PT_IMAGE_NO_OBJECT	0xffffffffu
#define PT_OBJECT_STORED	(1u << 0)
#define PT_OBJECT_DELETED	(1u << 1)

struct pt_image_area {
	uint64_t start, end, offset;
	uint32_t prot;		/* PT_PROT_* | PT_MAP_SHARED */
	uint32_t kind;		/* enum pt_vma_kind */
	uint32_t delta;		/* enum pt_image_delta */
	uint32_t object;	/* index into the objects, or PT_IMAGE_NO_OBJECT */
	const char *path;	/* as /proc/PID/maps showed it, path_len bytes, NOT
				   NUL-terminated (images: "%.*s"); "" anonymous */
	size_t path_len;
};

struct pt_image_object {
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	uint64_t size;		/* bytes */
	uint64_t mtime_ns;
	uint32_t kind;		/* enum pt_vma_kind */
	uint32_t delta;		/* enum pt_image_delta */
	uint32_t flags;		/* PT_OBJECT_* */
	uint32_t sysv_key;
	const char *name;	/* name_len bytes, NOT NUL-terminated */
	size_t name_len;
};

#define PT_OWNER_AREA	1
#define PT_OWNER_OBJECT	2

struct pt_image_run {
	uint32_t owner_type;	/* PT_OWNER_* */
	uint32_t owner;		/* area or object number */
	uint64_t page, npages;	/* relative to the owner */
	uint32_t kind;		/* enum pt_page_kind */
	uint32_t detail;
};

struct pt_image_info {
	size_t sz;			/* sizeof(struct pt_image_info) */
	uint32_t version_major, version_minor;
	uint32_t flags;			/* PT_IMAGE_* */
	uint32_t page_size;
	int32_t pid;
	uint32_t machine;		/* ELF e_machine */
	uint64_t seq;
	uint64_t ctime_ns;
	uint8_t boot_id[16], layer_id[16], parent_layer_id[16];
	char comm[16];			/* NUL-terminated */
	uint64_t parent_checksum;
	uint64_t file_checksum;		/* this layer's identity */
	uint64_t file_size;
	uint64_t frames, data_pages;
	uint64_t frame_bytes;		/* compressed bytes of all frames */
	uint64_t nareas, nobjects, nthreads;
	uint32_t footer_flags;		/* bit 0 any tracked, bit 1 any compared */
	uint32_t reserved;
	const char *parent_path;	/* as stored; "" none; owned by the image */
};

struct pt_image;

/*
 * Open and validate an image layer (doc/image-format.md, "Validation",
 * steps 1-6; frames are checked when read).  The parent chain is opened
 * when first needed.  Returns 0 or -errno: -ENODATA truncated,
 * -EBADMSG checksum, -EPROTONOSUPPORT unsupported, -EUCLEAN invalid,
 * -ENOENT/-ESTALE chain, or the open's errno; @err (may be NULL) then
 * holds one line: "FILE: offset N: what".  Memory: the layout, never
 * the data.
 */
PT_API int pt_image_open(const char *path, struct pt_image **out, char *err, size_t errlen);
PT_API void pt_image_close(struct pt_image *img);	/* and its opened parents */
PT_API int pt_image_info(const struct pt_image *img, struct pt_image_info *info);
/* The layer's areas (sorted) and objects; arrays owned by @img. */
PT_API int pt_image_areas(const struct pt_image *img, const struct pt_image_area **areas,
			  size_t *count);
PT_API int pt_image_objects(const struct pt_image *img, const struct pt_image_object **objs,
			    size_t *count);
/* Call @fn for each of the layer's own runs in index order; stops at a non-zero return. */
PT_API int pt_image_runs(struct pt_image *img, int (*fn)(const struct pt_image_run *r, void *ctx),
			 void *ctx);
/* The parent layer, opened and checked against this one's link (owned by @img). */
PT_API int pt_image_parent(struct pt_image *img, struct pt_image **parent, char *err,
			   size_t errlen);
/*
 * Content of @npages pages from @addr, resolved through the chain
 * (UNCHANGED pages are taken from the parents; a shared area's pages
 * from its object).  The range must lie in one area of this layer.
 * @buf gets npages * page size bytes (zeros for ZERO, HOLE, UNREADABLE);
 * @kinds (may be NULL) the resolved enum pt_page_kind of each page.
 * For a HOLE in a private file mapping the bytes are zeros: the content
 * is the file's.  @buf may be NULL when @kinds is not: kinds only, no
 * frame is read.  -ENOENT: no such area; other errors as pt_image_open.
 */
PT_API int pt_image_read(struct pt_image *img, uint64_t addr, size_t npages, void *buf,
			 uint8_t *kinds, char *err, size_t errlen);
/* The same for object @obj (index), @page relative to its start. */
PT_API int pt_image_read_object(struct pt_image *img, uint32_t obj, uint64_t page, size_t npages,
				void *buf, uint8_t *kinds, char *err, size_t errlen);
/*
 * Full verification (step 8): the whole-file checksum, every frame's two
 * checksums, and the same for every parent in the chain.  0 or -errno
 * with @err set.
 */
PT_API int pt_image_verify(struct pt_image *img, char *err, size_t errlen);
/*
 * Write an ELF core file of a FROZEN layer (resolved through its chain)
 * to @path (temp file, fsync, rename; mode 0600): a PT_LOAD per area,
 * NT_PRSTATUS and FP registers per thread, NT_PRPSINFO, NT_AUXV,
 * NT_FILE.  -EINVAL: a LIVE layer.
 */
PT_API int pt_image_core(struct pt_image *img, const char *path, char *err, size_t errlen);
/*
 * Compare a layer, resolved through its chain, with process @pid's
 * memory now, page by page; the process is frozen (ptrace) meanwhile.
 * @fn gets each run of differing pages: for an area, addresses; for a
 * stored object, byte offsets in it (owner_type PT_OWNER_*).  Pages
 * equal when their content is (a hole of anonymous memory equals a zero
 * page); kernel areas ([vdso], [vvar], [vsyscall]) are skipped; areas
 * the process maps and the layer lacks, and the reverse, differ whole.
 * The bytes of each thread's rseq area are left out (the kernel rewrites
 * them when a thread changes CPU; found with PTRACE_GET_RSEQ_CONFIGURATION,
 * Linux 5.13+).
 * Returns the number of differing pages, or -errno with @err set.
 */
PT_API int64_t pt_image_compare(struct pt_image *img, pid_t pid,
				int (*fn)(uint32_t owner_type, uint32_t owner, uint64_t start,
					  uint64_t end, void *ctx),
				void *ctx, char *err, size_t errlen);
PT_API const char *pt_page_kind_name(enum pt_page_kind k);	/* "data", "zero", ... */
PT_API const char *pt_image_delta_name(enum pt_image_delta d);	/* "full", "tracked", "compared" */

/* ------------------------------------------------------------------ */
/* Snapshots (lib/snapshot/, doc/api.md "Snapshots")                    */

#define PT_SNAP_LIVE		(1u << 0)	/* pre-copy rounds while the target runs */
#define PT_SNAP_NO_EVICT	(1u << 1)	/* PT_COPY_NO_EVICT */
#define PT_SNAP_OVERWRITE	(1u << 2)	/* replace an existing file */

enum pt_snap_phase {
	PT_SNAP_PHASE_ROUND = 1,	/* a live pre-copy round */
	PT_SNAP_PHASE_FROZEN,		/* the copy while the target is frozen */
};

struct pt_snapshot_progress {
	uint32_t phase;			/* enum pt_snap_phase */
	uint32_t round;			/* 0 for the base */
	uint64_t bytes_done;		/* of this phase */
	uint64_t bytes_total;		/* estimate of this phase */
	uint64_t rate_bps;		/* copy rate measured so far */
};
typedef void (*pt_snapshot_progress_fn)(const struct pt_snapshot_progress *p, void *ctx);

struct pt_snapshot_opts {
	size_t sz;			/* sizeof(struct pt_snapshot_opts) */
	uint32_t flags;			/* PT_SNAP_* */
	int32_t level;			/* zstd level; 0 = 1 (fast) */
	const char *parent;		/* store only what changed since this layer */
	uint64_t pause_limit_ns;	/* PT_SNAP_LIVE: freeze when the rest fits; 0 = 300 ms */
	uint32_t max_rounds;		/* PT_SNAP_LIVE: at most; 0 = 30 */
	uint32_t reserved;
	const char *core_path;		/* also write an ELF core here */
	pt_snapshot_progress_fn progress;
	void *progress_ctx;
};

struct pt_snapshot_report {
	size_t sz;			/* sizeof(struct pt_snapshot_report) */
	uint64_t pause_ns;		/* the target frozen, first stop to last resume */
	uint64_t rounds;		/* live pre-copy rounds (0 without PT_SNAP_LIVE) */
	uint64_t bytes_copied;		/* read from the target, all layers */
	uint64_t bytes_stored;		/* written to files, all layers */
	uint64_t pages_data, pages_zero, pages_hole, pages_unchanged, pages_unreadable;
	uint64_t pages_swapped_in, pages_evicted;
	uint64_t duration_ns;
	uint64_t frozen_bytes;		/* copied while frozen */
	uint64_t threads;
	uint32_t deltas;		/* 1 << enum pt_image_delta, OR over the final layer */
	uint32_t layers;		/* files written (live rounds + 1) */
};

/*
 * Snapshot @pid's memory into image @path (doc/image-format.md).
 * Default: freeze every thread, copy everything (or, with a parent,
 * what differs from it: compared page by page, the tracker cannot span
 * two runs), capture threads, resume.  PT_SNAP_LIVE: a LIVE base layer
 * and pre-copy rounds tracked by a pt_tracker while the target runs,
 * written as layers "PATH.live-N" beside @path, then a freeze for the
 * last delta (the FROZEN layer @path, whose chain holds everything).
 * Errors: -errno with one line in @err; no partial file is left, and
 * the target is resumed.  Frames are compressed in up to 4 threads of
 * the calling process (PT_FORCE_ZSTD_THREADS; all signals blocked),
 * joined before the call returns (doc/api.md, "Side effects"); the same
 * for pt_snapshotter_layer().
 */
PT_API int pt_snapshot(pid_t pid, const char *path, const struct pt_snapshot_opts *opts,
		       struct pt_snapshot_report *report, char *err, size_t errlen);

/*
 * Incremental checkpoints: a chain of layers whose deltas a tracker
 * establishes, so each layer costs what was written since the last one
 * (not the whole memory, as with a parent from another run).  create
 * arms a pt_tracker on @pid (its side effects apply until free); @opts:
 * flags PT_SNAP_NO_EVICT / PT_SNAP_OVERWRITE and level only (else
 * EINVAL).  NULL and errno as pt_tracker_create().
 */
struct pt_snapshotter;
PT_API struct pt_snapshotter *pt_snapshotter_create(pid_t pid, const struct pt_snapshot_opts *opts);
/*
 * Write the next layer at @path: the first holds everything (FULL),
 * each next one the pages written since the previous one (TRACKED; its
 * parent link names the previous file).  @flags 0: freeze the target for
 * the copy (a FROZEN layer, with its threads); PT_SNAP_LIVE: copy while
 * it runs (a LIVE layer).  @report: this layer's figures.  On failure no
 * file is left and the pages stay due for the next layer.
 */
PT_API int pt_snapshotter_layer(struct pt_snapshotter *sn, const char *path, uint32_t flags,
				struct pt_snapshot_report *report, char *err, size_t errlen);
/* Stop tracking; 0, or -EBUSY as pt_tracker_free().  Accepts NULL. */
PT_API int pt_snapshotter_free(struct pt_snapshotter *sn);

/* ------------------------------------------------------------------ */
/* Live migration (lib/migrate/, doc/migration-protocol.md, doc/api.md "Migration") */

#define PT_MIGRATE_INSECURE		(1u << 0)	/* no key: plaintext, loopback only */
#define PT_MIGRATE_FORCE_SWITCHOVER	(1u << 1)	/* at max_rounds / timeout, switch over
							   anyway instead of failing */
#define PT_MIGRATE_NO_THROTTLE		(1u << 2)	/* never throttle the target */
#define PT_MIGRATE_NO_COMPRESS		(1u << 3)	/* never zstd on the wire */
#define PT_MIGRATE_TRUST_SHARED		(1u << 4)	/* objects: after round 0 read only what
							   the tracker saw written through the
							   target's mappings (PT_TRACK_TRUST_SHARED;
							   writes by other processes or write(2)
							   are then missed) and the parts it does
							   not map; default: read and compare the
							   whole object every round */

enum pt_migrate_freeze {
	PT_MIGRATE_FREEZE_STOP = 0,	/* ptrace freeze of every thread at switch-over */
	PT_MIGRATE_FREEZE_NONE = 1,	/* the switch-over command paused the target */
};

enum pt_migrate_after {
	PT_MIGRATE_AFTER_RESUME = 0,
	PT_MIGRATE_AFTER_STOP = 1,	/* left SIGSTOPped */
	PT_MIGRATE_AFTER_KILL = 2,	/* SIGKILL */
};

enum pt_migrate_result {
	PT_MIGRATE_COMPLETED = 0,
	PT_MIGRATE_TIMEOUT = 1,
	PT_MIGRATE_MAX_ROUNDS = 2,
	PT_MIGRATE_ABORTED = 3,		/* the switch-over command failed */
	PT_MIGRATE_ERROR = 4,
	/* the commit record was sent but not acknowledged (receiver silent,
	   connection lost): it may have committed; the target was resumed */
	PT_MIGRATE_COMMIT_UNKNOWN = 5,
};

/* One pre-copy round, as reported to the progress callback. */
struct pt_migrate_round {
	size_t sz;			/* sizeof(struct pt_migrate_round) */
	uint32_t round;			/* 0: everything */
	uint32_t throttle_percent;	/* of the target's CPU taken away */
	uint64_t bytes_sent;		/* on the wire in this round */
	uint64_t pages_dirty;		/* pages found written for the next round */
	uint64_t dirty_rate_bps;	/* bytes written per second by the target */
	uint64_t bandwidth_bps;		/* measured send rate */
	uint64_t expected_downtime_ns;	/* if switching over now */
};
typedef void (*pt_migrate_round_fn)(const struct pt_migrate_round *r, void *ctx);

struct pt_migrate_send_opts {
	size_t sz;			/* sizeof(struct pt_migrate_send_opts) */
	uint32_t flags;			/* PT_MIGRATE_* */
	uint32_t freeze;		/* enum pt_migrate_freeze */
	uint32_t after;			/* enum pt_migrate_after */
	uint32_t max_rounds;		/* 0 = 30 */
	const unsigned char *key;	/* pre-shared key (>= 32 bytes), or NULL with
					   PT_MIGRATE_INSECURE */
	size_t key_len;
	const char *const *objects;	/* send these shared objects (path as
					   /proc/PID/maps shows it, or the file path) */
	size_t nobjects;
	const uint64_t *areas;		/* send the private areas holding these addresses */
	size_t nareas;			/* no objects and no areas: the whole process */
	uint64_t downtime_ns;		/* switch-over limit; 0 = 300 ms */
	uint64_t timeout_ns;		/* whole pre-copy, every wait in it
					   included (a round in progress is cut);
					   0 = none */
	uint64_t bandwidth_bps;		/* send-rate cap; 0 = none */
	const char *switchover_cmd;	/* sh -c at switch-over, before the last delta */
	int32_t level;			/* zstd level; 0 = 1 */
	uint32_t reserved;
	pt_migrate_round_fn on_round;
	void *ctx;
	uint64_t idle_timeout_ns;	/* a write blocked or no answer for this
					   long: fail; 0 = 60 s */
};

struct pt_migrate_report {
	size_t sz;			/* sizeof(struct pt_migrate_report) */
	uint32_t result;		/* enum pt_migrate_result */
	uint32_t rounds;		/* pre-copy rounds (the final delta not counted) */
	uint64_t downtime_ns;		/* target stopped (freeze or command) to resumed */
	uint64_t total_bytes;		/* on the wire, both directions */
	uint64_t pages_sent;		/* PAGES entries (data, zero, hole) */
	uint64_t pages_swapped;		/* sent pages that were swapped out at the source */
	uint64_t bytes_read;		/* read from the target */
	uint64_t duration_ns;
	uint32_t throttle_percent;	/* the last throttle level */
	uint32_t reserved;
};

/*
 * Migrate @pid's memory to a receiver (pt_migrate_receive()) at @to,
 * "HOST:PORT": pre-copy rounds driven by a tracker while it runs, then a
 * switch-over (command, freeze, last delta, commit record, the
 * receiver's acknowledgement), then @opts->after.  Returns 0 only when
 * the receiver acknowledged the commit (report->result COMPLETED);
 * else -errno with one line in @err and report->result saying why
 * (-ETIMEDOUT: TIMEOUT or MAX_ROUNDS; -ECANCELED: ABORTED), the target
 * resumed and the receiver told to abort.
 */
PT_API int pt_migrate_send(pid_t pid, const char *to, const struct pt_migrate_send_opts *opts,
			   struct pt_migrate_report *report, char *err, size_t errlen);

struct pt_migrate_recv_opts {
	size_t sz;			/* sizeof(struct pt_migrate_recv_opts) */
	uint32_t flags;			/* PT_MIGRATE_INSECURE only */
	uint32_t reserved;
	const unsigned char *key;	/* as the sender's */
	size_t key_len;
	const char *output;		/* write an image layer here (temp + rename at commit) */
	const char *into;		/* or: update this shared-memory file in place */
	/* called once when listening, with the real "ADDR:PORT" */
	void (*listening)(const char *addr, void *ctx);
	void *ctx;
	uint64_t idle_timeout_ns;	/* no data for this long: fail; 0 = 60 s */
	uint64_t accept_timeout_ns;	/* no sender connected within this: fail
					   (-ETIMEDOUT); 0 = wait forever */
};

struct pt_migrate_recv_report {
	size_t sz;			/* sizeof(struct pt_migrate_recv_report) */
	uint64_t bytes_received;
	uint64_t pages_received;	/* PAGES entries */
	uint64_t rounds;
	uint64_t pages_total;		/* of the result */
	uint64_t duration_ns;
};

/*
 * Serve one migration on @listen ("ADDR:PORT", port 0: any): accept one
 * sender, apply its rounds to @opts->output (an image layer, written at
 * commit) or @opts->into (in place, marked incomplete until commit:
 * doc/migration-protocol.md, "Commit"), acknowledge the commit record
 * once the result is durable.  0 only then; -errno with one line in
 * @err otherwise (nothing presented as complete).
 */
PT_API int pt_migrate_receive(const char *listen, const struct pt_migrate_recv_opts *opts,
			      struct pt_migrate_recv_report *report, char *err, size_t errlen);

/* "completed", "timeout", "max_rounds", "aborted", "error"; NULL if unknown. */
PT_API const char *pt_migrate_result_name(enum pt_migrate_result r);

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
