/* SPDX-License-Identifier: MIT */
/* Shared helpers for pagetrack's kernel tests. */
#ifndef PT_FIXTURE_H
#define PT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pagetrack/pagetrack.h"

#define FX_PAGE 4096UL

/*
 * Ensure swap is active (creating a zram swap as root, removed again at
 * exit).  Returns true when swap is available; otherwise *why says why.
 */
bool fx_swap(const char **why);

/* Backends the running kernel offers: fills @out, returns the count. */
int fx_backends(enum pt_scan_backend out[2]);

/*
 * Run @setup(arg) in a forked child, which then waits until killed.
 * @shared (may be NULL) is a MAP_SHARED area of @shared_len bytes
 * created before the fork, through which the child reports addresses.
 * Returns the child's pid once @setup has returned, or -1.
 */
pid_t fx_child(void (*setup)(void *shared), void *shared);
void fx_child_kill(pid_t pid);

/* mmap helper: aborts the test program on failure. */
void *fx_map(size_t len, int prot, int flags, int fd, off_t off);

/* Page out [addr, addr+len) of the caller (MADV_PAGEOUT). 0 or -errno. */
int fx_pageout(void *addr, size_t len);

/*
 * Scan [start, end) of @t into a caller-visible per-page array of
 * states (@states[i] for page i) and attrs, using @flags.  Returns 0 or
 * -errno.  Arrays must hold (end-start)/4096 entries.
 */
int fx_scan_pages(struct pt_target *t, uint64_t start, uint64_t end, uint32_t flags,
		  uint8_t *states, uint32_t *attrs);

/*
 * Oracle: the raw pagemap entries of @n pages at @addr of the calling
 * process (one pread); 0 or -errno.  fx_pagemap_same() compares two such
 * reads by location (present/swapped and PFN or swap entry), the bits
 * that proactive reclaim changes, ignoring soft-dirty/exclusive/uffd-wp.
 */
int fx_pagemap(const void *addr, size_t n, uint64_t *e);
bool fx_pagemap_same(const uint64_t *a, const uint64_t *b, size_t n);

/* Count pages in @states equal to @state in [from, to) page indices. */
size_t fx_count(const uint8_t *states, size_t from, size_t to, uint8_t state);

/*
 * Whether a tracker of backend @b can be created here, on the calling
 * process (@other false) or on another one (a child), decided from the
 * feature probes alone, never by trying the backend (that would turn a
 * regression into a skip).  The conditions are those of lib/track_uffd.c
 * uffd_init() (PAGEMAP_SCAN, WP_ASYNC, WP_UNPOPULATED; for another
 * process pidfd_getfd and ptrace to inject its userfaultfd()) and
 * lib/track_softdirty.c (soft-dirty really set; another process is
 * frozen by ptrace; the calling process only while single-threaded).
 * False with *why (the probe's reason); when true, pt_tracker_create()
 * must succeed and a failure is a test failure.
 */
bool fx_track_backend_usable(enum pt_track_backend b, bool other, const char **why);

/*
 * True when PT_FORCE_NO_ZERO_PAGE=1 overrules the zero-page probe: the
 * library then reports no zero page although the kernel may map it, so
 * the kernel's own word (kpageflags, PFNs) need not agree with the probe.
 */
bool fx_zero_page_forced(void);

/*
 * Time caps.  Tests are bounded by work (rounds, operations); a time cap
 * is only a safety net, so that on a slow machine a test ends by itself
 * and says so before the runner's timeout kills it mid-output.  Tests
 * never assert on time: a cap that is hit ends the work early and is
 * reported (the work subtest skipped with the counts reached), and every
 * correctness check still runs on the work that was done.
 *
 * The budget is PT_TEST_TIMEOUT seconds (the runner's per-test limit:
 * 600 in tests/run-tests.sh, the default; the VM lane exports its own),
 * of which 85% is used, counted from the start of the program.
 */
uint64_t fx_now_ms(void);

/* State letter of @pid from /proc/PID/stat ('R', 'S', 'T', 'Z', ...), '?' if unreadable. */
char fx_proc_state(pid_t pid);
/* Poll (1 ms apart, at most @cap_ms) until @pid is in @state; false at the cap or once it is gone. */
bool fx_wait_state(pid_t pid, char state, unsigned cap_ms);
/*
 * Deadline (fx_now_ms() clock) for the next of @parts_left pieces of work
 * that share what is left of the budget; at least 1 s from now.
 */
uint64_t fx_deadline_ms(unsigned parts_left);
/* The budget in seconds, for reports. */
unsigned fx_budget_s(void);

/*
 * Simulated proactive reclaim (PT_TEST_RECLAIM=1): machines of this kind
 * run DAMON pageout, which moves pages to swap at any moment while swap
 * is active, shared memory too.  With the variable set, a thread started
 * at program start pages out (MADV_PAGEOUT) a random range of 1-64 pages
 * of a random mapping of the test process (big ones more often), or
 * (process_madvise) of a child started by fx_child(), every 0.02-0.5 ms,
 * until the program exits.
 * Tests that hold with it hold against an oracle read beside the scan.
 * (The thread makes the process multi-threaded: soft-dirty cannot then
 * track the process itself, see fx_track_backend_usable().)
 */
bool fx_reclaim_active(void);

/* String for a backend. */
const char *fx_backend_name(enum pt_scan_backend b);

/* Userfaultfds process @pid holds (its fd links), -1 if unreadable. */
int fx_uffd_fds(pid_t pid);
/* Its VMAs registered with any userfaultfd (VmFlags um, uw or ui), -1 if unreadable. */
int fx_uffd_vmas(pid_t pid);

#endif
