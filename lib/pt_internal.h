/* SPDX-License-Identifier: MIT */
/* Internal interfaces between lib/ files. Not installed. */
#ifndef PT_INTERNAL_H
#define PT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "pagetrack/pagetrack.h"

#define PT_HIDDEN __attribute__((visibility("hidden")))
#define PT_PAGE_SIZE 4096ULL
#define PT_PAGE_SHIFT 12
#define PT_HUGE_MASK ((2ULL << 20) - 1)	/* PMD-sized pages */

/* Addresses from here on (x86_64 vsyscall) are not in any mm's page tables. */
#define PT_USER_ADDR_END (1ULL << 56)

/* Pages per scan window: bounds all per-scan memory (entries + runs). */
#define PT_WINDOW_PAGES 65536u

/*
 * Internal-only run state: the page table says nothing about this page
 * (pte_none, or a uffd-wp marker); for memory backed by an object the
 * truth must be asked of the object (lib/scan/shared.c).  Never escapes
 * pt_scan().
 */
#define PT_STATE_NONE 0xffu

/* ---- options structs (pagetrack.h, "Options structs") ---- */
/*
 * One set of helpers, used by every entry point that takes an options
 * or stats struct (as libbpf's OPTS_VALID / OPTS_GET).
 *
 * PT_OPTS_VALID(opts, type): true for NULL, or for sz >= sizeof(size_t)
 * with every byte in [sizeof(struct type), sz) zero.  The structs have no
 * tail padding (asserted below), so sizeof is where the known fields end.
 */
static inline bool pt__opts_tail_zero(const void *opts, size_t known, size_t sz)
{
	const unsigned char *p = opts;

	for (size_t i = known; i < sz; i++)
		if (p[i])
			return false;
	return true;
}

#define PT_OPTS_VALID(opts, type)					\
	(!(opts) || ((opts)->sz >= sizeof(size_t) &&			\
		     pt__opts_tail_zero((opts), sizeof(struct type), (opts)->sz)))

/* The caller's struct covers @field entirely (it is not NULL and sz reaches its end). */
#define PT_OPTS_HAS(opts, field)					\
	((opts) && (opts)->sz >= offsetof(__typeof__(*(opts)), field) + sizeof((opts)->field))

/* @field if the caller's struct covers it, else @fallback. */
#define PT_OPTS_GET(opts, field, fallback)				\
	(PT_OPTS_HAS(opts, field) ? (opts)->field : (fallback))

/* No implicit padding anywhere: sizeof ends at the last field. */
#define PT__OPTS_END(type, last) (offsetof(struct type, last) + sizeof(((struct type *)0)->last))
_Static_assert(sizeof(struct pt_target_opts) == PT__OPTS_END(pt_target_opts, reserved) &&
	       offsetof(struct pt_target_opts, scan_backend) == sizeof(size_t),
	       "pt_target_opts has padding");
_Static_assert(sizeof(struct pt_scan_opts) == PT__OPTS_END(pt_scan_opts, reserved) &&
	       offsetof(struct pt_scan_opts, flags) == sizeof(size_t),
	       "pt_scan_opts has padding");
_Static_assert(sizeof(struct pt_tracker_opts) == PT__OPTS_END(pt_tracker_opts, hot_lease) &&
	       offsetof(struct pt_tracker_opts, backend) == sizeof(size_t) &&
	       offsetof(struct pt_tracker_opts, start) == sizeof(size_t) + 8,
	       "pt_tracker_opts has padding");
_Static_assert(sizeof(struct pt_sampler_opts) == PT__OPTS_END(pt_sampler_opts, end) &&
	       offsetof(struct pt_sampler_opts, pages_per_gib) == sizeof(size_t),
	       "pt_sampler_opts has padding");
_Static_assert(sizeof(struct pt_tracker_stats) == PT__OPTS_END(pt_tracker_stats, hash_cpu_ns) &&
	       offsetof(struct pt_tracker_stats, rounds) == sizeof(size_t),
	       "pt_tracker_stats has padding");
_Static_assert(sizeof(struct pt_migrate_send_opts) ==
	       PT__OPTS_END(pt_migrate_send_opts, idle_timeout_ns),
	       "pt_migrate_send_opts has tail padding");
_Static_assert(sizeof(struct pt_migrate_recv_opts) ==
	       PT__OPTS_END(pt_migrate_recv_opts, accept_timeout_ns),
	       "pt_migrate_recv_opts has tail padding");

/* CLOCK_MONOTONIC in nanoseconds (durations, pauses, deadlines). */
static inline uint64_t pt__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- log.c ---- */
PT_HIDDEN void pt__log(enum pt_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- fault.c ---- fault injection, forced from tests (doc/inject.md) */
enum pt_fault {
	PT_FAULT_NONE = 0,
	PT_FAULT_UFFD_CREATE,	/* the injected userfaultfd() ran; the step fails after it */
	PT_FAULT_UFFD_GETFD,	/* pidfd_getfd() of the remote userfaultfd */
	PT_FAULT_UFFD_API,	/* UFFDIO_API */
	PT_FAULT_UFFD_REGISTER,	/* UFFDIO_REGISTER of one area */
	PT_FAULT_UFFD_PROTECT,	/* after write-protecting the pages of one area */
	PT_FAULT_UFFD_HARVEST,	/* after harvesting (and re-protecting) one area */
	PT_FAULT_UFFD_CLOSE,	/* the injected close() of the remote userfaultfd */
	PT_FAULT_ROUND,		/* a round, after every area was harvested or armed */
	PT_FAULT_FREEZE,	/* pt__freeze(), once its threads have stopped */
	PT_FAULT_BARRIER,	/* pt__barrier(), once every thread passed its stop */
	PT_FAULT_INJECT,	/* pt__inject_syscall(), after the thread stopped */
	PT_FAULT_RECV_STREAM,	/* pt_migrate_receive -o: a round's layer not streamed */
	PT_FAULT_MIG_V1,	/* migration handshake: this side speaks protocol version 1 only */
	PT_FAULT_RECV_COMMIT_STOP, /* pt_migrate_receive: SIGSTOP itself once COMMIT came */
	PT_FAULT_RECV_COMMIT_SLOW, /* pt_migrate_receive: the commit takes 15 s more */
	PT_FAULT__COUNT
};
/*
 * 0, or the -errno the step at point @f must fail with, when PT_FAULT
 * names it (read once).  Thread-safe.
 */
PT_HIDDEN int pt__fault(enum pt_fault f);
/* Tests: read PT_FAULT again on the next pt__fault(); must not race. */
PT_HIDDEN void pt__fault_reset(void);

/* ---- features.c ---- internal accessors; all cached, thread-safe. */
/*
 * Forget cached probe results, so the next query probes again (tests that
 * change the environment; they link the static archive).  Must not race
 * with other pagetrack calls.
 */
PT_HIDDEN void pt__features_reset(void);
/* errno's name ("ENOTTY"), for probe reasons. */
PT_HIDDEN const char *pt__errname(int err);
/* A private read-write anonymous mapping of @pages pages, NULL on failure. */
PT_HIDDEN void *pt__scratch_map(size_t pages);
/* Forget the measured fault cost (process/faultcost.c), for tests. */
PT_HIDDEN void pt__fault_cost_reset(void);
/* Tests: a sleep (ns) in the middle of two measured runs in three (a preempted run). */
extern uint64_t pt__fault_cost_test_stall_ns PT_HIDDEN;
/*
 * The soft-dirty fault cost, measured in a forked child whatever the
 * probes say (tests run the child where the kernel has no soft-dirty:
 * the cost is then meaningless, the child's round trip is not).  0 and
 * *ns, or -errno with *what naming the step (-ETIMEDOUT: no report in
 * pt__fault_cost_child_timeout_ms; the child was killed).  The child is
 * always reaped.  Not cached.
 */
PT_HIDDEN int pt__fault_cost_measure_soft_dirty(uint64_t *ns, const char **what);
/* Tests: the soft-dirty child sleeps this long (ns) before it reports. */
extern uint64_t pt__fault_cost_test_child_sleep_ns PT_HIDDEN;
/* The bound on the soft-dirty child's report (ms of wall time; tests shorten it). */
extern unsigned int pt__fault_cost_child_timeout_ms PT_HIDDEN;
/* The PFN of the zero page as seen in pagemap, 0 when not visible or not used. */
PT_HIDDEN uint64_t pt__zero_pfn(void);
/*
 * Does a read fault on private anon memory map the zero page?  PT_YES
 * (then pt__zero_pfn() is it), PT_NO (the kernel never maps it, or
 * PT_FORCE_NO_ZERO_PAGE=1: then no page is reported PT_ATTR_ZERO), or
 * PT_UNKNOWN (PFNs hidden); *reason (if not NULL) says why, valid until
 * pt__features_reset().
 */
PT_HIDDEN int pt__zero_page(const char **reason);
/* PAGE_IS_* category bits accepted by PAGEMAP_SCAN (0 if no ioctl). */
PT_HIDDEN uint64_t pt__scan_categories(void);
/* Number of active swap areas right now (not cached). */
PT_HIDDEN int pt__swap_count(void);
/*
 * 0 when base pages are 4 KiB (PT_PAGE_SIZE, built into every page
 * computation), else -EOPNOTSUPP with a log message naming the size.
 */
PT_HIDDEN int pt__page_size_check(void);

/* ---- run buffers ---- */
struct pt_runbuf {
	struct pt_region *r;
	size_t n, cap;
};

/*
 * Append a run [start,end) described by @proto (state/attrs/loc/...),
 * merging it into the previous run when contiguous and identical (for
 * runs with PT_ATTR_LOC: locations must continue).  Returns 0, or -ENOSPC
 * when the buffer is full (nothing appended).
 */
PT_HIDDEN int pt__run_append(struct pt_runbuf *rb, uint64_t start, uint64_t end,
			     const struct pt_region *proto);
/* Append without merging into the previous run (memory-area boundaries). */
PT_HIDDEN int pt__run_push(struct pt_runbuf *rb, uint64_t start, uint64_t end,
			   const struct pt_region *proto);
/* Truncate @rb so that nothing at or beyond @addr remains. */
PT_HIDDEN void pt__run_truncate(struct pt_runbuf *rb, uint64_t addr);

/* ---- target.c ---- */
struct pt_shared_obj;	/* lib/scan/shared.c: cached open backing object */

struct pt_target {
	pid_t pid;		/* real pid, also for "self" */
	bool self;
	int pagemap_fd;
	int pidfd;		/* -1 when pidfd_open is unavailable */
	enum pt_scan_backend backend;
	uint32_t limits;	/* PT_LIMIT_* seen so far */
	int pending_err;	/* error to report on the next pt_scan() */
	char procdir[32];	/* "/proc/PID" */

	struct pt_vma *vmas;	/* layout used by pt_scan, sorted */
	size_t nvmas;
	bool vmas_valid;

	/* per-target scratch, allocated on first scan */
	uint64_t *pm_buf;	/* PT_WINDOW_PAGES entries */
	struct pt_runbuf rb[2];
	void *scan_vec;		/* page_region[PT_WINDOW_PAGES] */

	/* the window a full caller buffer cut short, reused only by the call
	 * that resumes at exactly win_resume */
	struct pt_runbuf *win;	/* NULL when not valid */
	uint64_t win_start, win_end, win_resume;
	uint32_t win_flags;

	/* a scan that does not resume where the previous call stopped starts a new epoch */
	uint64_t scan_epoch, last_cursor;

	/* smaps per-VMA Rss/Swap, read lazily (read backend, markers) */
	struct pt_smaps_ent *smaps;
	size_t nsmaps;
	bool smaps_valid;
	/* read backend: VMA (by start) whose smaps skip check is due / done */
	uint64_t skip_probe_vma, skip_checked_vma;

	struct pt_shared_obj *objs;	/* lib/scan/shared.c cache */
};

struct pt_smaps_ent {
	uint64_t start, end;
	uint64_t rss_kb, swap_kb, anon_huge_kb, shmem_pmd_kb, file_pmd_kb;
};

/* Refresh t->vmas from /proc/PID/maps. -ESRCH if the target is gone. */
PT_HIDDEN int pt__target_load_vmas(struct pt_target *t);
/* Index of the VMA containing @addr, or of the first VMA after it; nvmas if none. */
PT_HIDDEN size_t pt__vma_find(const struct pt_target *t, uint64_t addr);
/* smaps figures for the VMA starting at @start, read lazily; NULL if none. */
PT_HIDDEN const struct pt_smaps_ent *pt__smaps_lookup(struct pt_target *t, uint64_t start);
/*
 * False once the address space the target was opened on is gone: the
 * process exited, or exec'd another program (its pid lives on with a new
 * mm that this handle does not see).
 */
PT_HIDDEN bool pt__target_mm_alive(const struct pt_target *t);
/* Map errno of a failed /proc read on the target to ESRCH if it has exited. */
PT_HIDDEN int pt__target_errno(const struct pt_target *t, int err);
/* Is @pid a kernel thread (no user memory)? */
PT_HIDDEN bool pt__is_kernel_thread(pid_t pid);

/* ---- maps.c ---- */
/*
 * Parse /proc/PID/maps text from @fd into a malloc'd array.  Returns
 * the count or -errno.
 */
PT_HIDDEN int pt__maps_parse_fd(int fd, struct pt_vma **out);
/*
 * Parse one maps line; 0 on success, -EINVAL on a malformed line.
 * v->path points into @line (NUL-terminated there) until packed.
 */
PT_HIDDEN int pt__maps_parse_line(char *line, struct pt_vma *v);
/* Copy @n areas and their paths into one malloc'd block (free() it). */
PT_HIDDEN struct pt_vma *pt__vmas_pack(const struct pt_vma *v, size_t n);
/* Shared memory (MAP_SHARED anon, memfd, SysV, tmpfs file) by its kind. */
PT_HIDDEN bool pt__vma_is_shmem(const struct pt_vma *v);
/* Backed by an object whose page cache holds the truth (file, shmem, hugetlbfs). */
PT_HIDDEN bool pt__vma_has_object(const struct pt_vma *v);
/* Parse /proc/PID/smaps from @fd. Returns count or -errno. */
PT_HIDDEN int pt__smaps_parse_fd(int fd, struct pt_smaps_ent **out);

/* ---- backends: fill raw runs for [start, end) within one VMA ---- */
/*
 * Write runs covering [start, *next) to @rb, where start < *next <= end.
 * States are PT_STATE_PRESENT, PT_STATE_SWAPPED, PT_STATE_NONE (nothing
 * in the page table), or PT_STATE_ABSENT with PT_ATTR_GUARD.  Swap
 * entries that are uffd-wp markers are already turned into NONE where
 * they can be told apart.  @need_detail: exclusive/location needed.
 */
PT_HIDDEN int pt__backend_read_fill(struct pt_target *t, const struct pt_vma *v,
				    uint64_t start, uint64_t end, bool need_detail,
				    struct pt_runbuf *rb, uint64_t *next);
PT_HIDDEN int pt__backend_scan_fill(struct pt_target *t, const struct pt_vma *v,
				    uint64_t start, uint64_t end, bool need_detail,
				    struct pt_runbuf *rb, uint64_t *next);
/*
 * Decode @n raw pagemap entries for pages starting at @addr into runs.
 * @cat, if not NULL, gives per-page PAGE_IS_* categories to merge in
 * (huge, zero).  Returns 0 or -ENOSPC (then *stopped is the first page
 * address not appended).
 */
PT_HIDDEN int pt__decode_entries(struct pt_target *t, const struct pt_vma *v,
				 uint64_t addr, const uint64_t *pm, size_t n,
				 uint64_t extra_attrs, struct pt_runbuf *rb,
				 uint64_t *stopped);

/* ---- shared.c ---- */
/*
 * Resolve every PT_STATE_NONE run of @in (all inside VMA @v) into
 * ABSENT / CACHED / SWAPPED / UNKNOWN, writing the result to @out.
 * Runs in other states are copied.  If @out fills, stops at a run
 * boundary and sets *stopped to the first address not written
 * (otherwise *stopped = end of the last run of @in).  @resolve false
 * (PT_SCAN_NO_SHARED): NONE in object-backed VMAs becomes UNKNOWN /
 * PT_REASON_NOT_RESOLVED; in anonymous VMAs NONE always becomes ABSENT.
 */
PT_HIDDEN int pt__shared_resolve(struct pt_target *t, const struct pt_vma *v,
				 const struct pt_runbuf *in, bool resolve,
				 struct pt_runbuf *out, uint64_t *stopped);
/*
 * The backing object of @v, opened once and cached in @t (owned by it:
 * valid until @t is freed or more than 128 other objects were opened
 * since).  Returns the fd, -1 when it cannot be opened (or is not a
 * regular file), or -errno (-ESRCH).  *@shmem (may be NULL): on tmpfs.
 */
PT_HIDDEN int pt__shared_obj_fd(struct pt_target *t, const struct pt_vma *v, bool *shmem);
/*
 * Object offsets [off, end) of @v's backing object as runs whose
 * start/end are byte offsets: ABSENT (hole, or beyond EOF), CACHED
 * (resident), SWAPPED (holds data but not resident: shmem in swap, file
 * data not in the page cache), PRESENT (hugetlbfs), UNKNOWN (not
 * openable, mincore denied).  Stops at a run boundary when @out fills
 * (*stopped: first offset not written).  0 or -errno.
 */
PT_HIDDEN int pt__shared_resolve_object(struct pt_target *t, const struct pt_vma *v,
					uint64_t off, uint64_t end, struct pt_runbuf *out,
					uint64_t *stopped);
/* Release the object cache of @t. */
PT_HIDDEN void pt__shared_free(struct pt_target *t);

/* ---- kpageflags.c ---- */
/*
 * For PRESENT runs with PT_ATTR_LOC in @in, look up kpageflags/kpagecount
 * and write runs split by identical flags to @out (PT_ATTR_KFLAGS set).
 * @want_all: attach flags to every run (PT_SCAN_KFLAGS); otherwise only
 * used to detect huge pages (read backend) and .kflags is left 0.
 */
PT_HIDDEN int pt__kflags_apply(struct pt_target *t, const struct pt_vma *v,
			       const struct pt_runbuf *in, bool want_all,
			       struct pt_runbuf *out, uint64_t *stopped);

#endif /* PT_INTERNAL_H */
