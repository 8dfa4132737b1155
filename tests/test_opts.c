/* SPDX-License-Identifier: MIT */
/*
 * Options and stats structs that can grow (pagetrack.h, "Options
 * structs"): a short sz gets defaults for the fields it does not cover
 * and is honoured for the ones it does; nonzero bytes past the size the
 * library knows are -EINVAL; sz < sizeof(size_t) is -EINVAL; NULL means
 * defaults.  The "newer caller" is simulated by a struct with a field
 * appended.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"

#define BAD_BACKEND 99	/* not a value of either backend enum */

static void test_macro(void)
{
	PT_OPTS(pt_scan_opts, so, .flags = PT_SCAN_NO_SHARED);
	PT_OPTS(pt_tracker_opts, to, .end = 1);

	tap_ok(so.sz == sizeof(struct pt_scan_opts) && so.flags == PT_SCAN_NO_SHARED &&
	       so.reserved == 0, "PT_OPTS sets sz and the given fields, zeroes the rest");
	tap_ok(to.sz == sizeof(struct pt_tracker_opts) && to.backend == PT_TRACK_AUTO &&
	       to.flags == 0 && to.start == 0 && to.end == 1,
	       "PT_OPTS on pt_tracker_opts");
}

static void test_target_opts(void)
{
	struct {
		struct pt_target_opts o;
		uint64_t newer;		/* a field this library does not know */
	} big;
	struct pt_target_opts o;
	struct pt_target *t;

	t = pt_target_create(0, NULL);
	tap_ok(t != NULL, "pt_target_create: NULL opts are the defaults");
	pt_target_free(t);

	o = (struct pt_target_opts){ .scan_backend = BAD_BACKEND };
	o.sz = offsetof(struct pt_target_opts, scan_backend);
	t = pt_target_create(0, &o);
	tap_ok(t != NULL, "pt_target_create: a short sz ignores the field it does not cover");
	pt_target_free(t);

	o.sz = sizeof(o);
	errno = 0;
	t = pt_target_create(0, &o);
	tap_ok(!t && errno == EINVAL, "pt_target_create: the covered backend field is read (%s)",
	       strerror(errno));
	pt_target_free(t);

	o = (struct pt_target_opts){ .sz = sizeof(o), .scan_backend = PT_SCAN_BACKEND_PAGEMAP_READ };
	t = pt_target_create(0, &o);
	tap_ok(t && pt_target_scan_backend(t) == PT_SCAN_BACKEND_PAGEMAP_READ,
	       "pt_target_create: a covered backend is honoured");
	pt_target_free(t);

	o = (struct pt_target_opts){ .sz = sizeof(o), .reserved = 1 };
	errno = 0;
	t = pt_target_create(0, &o);
	tap_ok(!t && errno == EINVAL, "pt_target_create: nonzero reserved field -> EINVAL");
	pt_target_free(t);

	o = (struct pt_target_opts){ .sz = sizeof(uint32_t) };
	errno = 0;
	t = pt_target_create(0, &o);
	tap_ok(!t && errno == EINVAL, "pt_target_create: sz < sizeof(size_t) -> EINVAL");
	pt_target_free(t);

	memset(&big, 0, sizeof(big));
	big.o.sz = sizeof(big);
	big.o.scan_backend = PT_SCAN_BACKEND_PAGEMAP_READ;
	t = pt_target_create(0, &big.o);
	tap_ok(t && pt_target_scan_backend(t) == PT_SCAN_BACKEND_PAGEMAP_READ,
	       "pt_target_create: a larger struct with zero tail is accepted");
	pt_target_free(t);

	big.newer = 1;
	errno = 0;
	t = pt_target_create(0, &big.o);
	tap_ok(!t && errno == EINVAL, "pt_target_create: nonzero bytes past the known size -> EINVAL");
	pt_target_free(t);
}

/* The first region of [p, p + len) (the target's layout is read on first use). */
static int scan_first(struct pt_target *t, void *p, size_t len, const struct pt_scan_opts *o,
		      struct pt_region *r)
{
	uint64_t cur = (uint64_t)(uintptr_t)p;

	return pt_scan(t, &cur, cur + len, r, 1, o);
}

static void test_scan_opts(void)
{
	struct {
		struct pt_scan_opts o;
		uint64_t newer;
	} big;
	struct pt_target *t = pt_target_create(0, NULL);
	size_t len = 4 * FX_PAGE;
	/* never touched shared memory: the page tables say nothing, the object is asked */
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct pt_scan_opts o;
	struct pt_region r;
	int n;

	if (!t || p == MAP_FAILED) {
		tap_ok(0, "pt_scan: open self and map shared memory");
		pt_target_free(t);
		return;
	}
	n = scan_first(t, p, len, NULL, &r);
	tap_ok(n == 1 && r.reason != PT_REASON_NOT_RESOLVED,
	       "pt_scan: NULL opts resolve shared memory (state %d reason %d)", r.state, r.reason);

	o = (struct pt_scan_opts){ .sz = sizeof(o), .flags = PT_SCAN_NO_SHARED };
	n = scan_first(t, p, len, &o, &r);
	tap_ok(n == 1 && r.state == PT_STATE_UNKNOWN && r.reason == PT_REASON_NOT_RESOLVED,
	       "pt_scan: covered flags are honoured (PT_SCAN_NO_SHARED)");

	o.sz = offsetof(struct pt_scan_opts, flags);
	n = scan_first(t, p, len, &o, &r);
	tap_ok(n == 1 && r.reason != PT_REASON_NOT_RESOLVED,
	       "pt_scan: a short sz gets the default flags");

	o = (struct pt_scan_opts){ .sz = sizeof(o), .reserved = 1 };
	tap_ok(scan_first(t, p, len, &o, &r) == -EINVAL, "pt_scan: nonzero reserved field -> -EINVAL");

	o = (struct pt_scan_opts){ .sz = 1 };
	tap_ok(scan_first(t, p, len, &o, &r) == -EINVAL, "pt_scan: sz < sizeof(size_t) -> -EINVAL");

	memset(&big, 0, sizeof(big));
	big.o.sz = sizeof(big);
	big.o.flags = PT_SCAN_NO_SHARED;
	n = scan_first(t, p, len, &big.o, &r);
	tap_ok(n == 1 && r.reason == PT_REASON_NOT_RESOLVED,
	       "pt_scan: a larger struct with zero tail is accepted");
	big.newer = 1ULL << 40;
	tap_ok(scan_first(t, p, len, &big.o, &r) == -EINVAL,
	       "pt_scan: nonzero bytes past the known size -> -EINVAL");

	munmap(p, len);
	pt_target_free(t);
}

static bool dirty_has(const struct pt_dirty *d, int n, uint64_t addr)
{
	for (int i = 0; i < n; i++)
		if (d[i].start <= addr && addr < d[i].end)
			return true;
	return false;
}

static void test_tracker_opts(void)
{
	struct {
		struct pt_tracker_opts o;
		uint64_t newer;
	} big;
	size_t len = 4 * FX_PAGE;
	char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pt_tracker_opts o;
	struct pt_tracker *tr;
	struct pt_dirty d[256];
	bool more;
	int n;

	if (a == MAP_FAILED || b == MAP_FAILED) {
		tap_ok(0, "pt_tracker_create: map scratch memory");
		return;
	}
	memset(a, 1, len);
	memset(b, 1, len);

	/*
	 * sz covers backend and flags but not start/end: the hash backend is
	 * used and the range is the default (everything), not [a, a + 1 page).
	 */
	o = (struct pt_tracker_opts){ .sz = offsetof(struct pt_tracker_opts, start),
				      .backend = PT_TRACK_HASH,
				      .start = (uint64_t)(uintptr_t)a,
				      .end = (uint64_t)(uintptr_t)a + FX_PAGE };
	tr = pt_tracker_create(0, &o);
	tap_ok(tr && pt_tracker_backend(tr) == PT_TRACK_HASH,
	       "pt_tracker_create: a short sz honours the fields it covers (backend %s)",
	       tr ? pt_track_backend_name(pt_tracker_backend(tr)) : strerror(errno));
	if (tr) {
		b[0] = 2;
		n = pt_tracker_collect(tr, d, 256, &more);
		tap_ok(n > 0 && dirty_has(d, n, (uint64_t)(uintptr_t)b),
		       "pt_tracker_create: ... and defaults the ones it does not (range: everything)");
	} else {
		tap_skip("no tracker", "pt_tracker_create: short sz defaults the range");
	}
	pt_tracker_free(tr);

	o = (struct pt_tracker_opts){ .sz = sizeof(o), .backend = BAD_BACKEND };
	errno = 0;
	tr = pt_tracker_create(0, &o);
	tap_ok(!tr && errno == EINVAL, "pt_tracker_create: a covered bad backend -> EINVAL");
	pt_tracker_free(tr);

	o = (struct pt_tracker_opts){ .sz = 4 };
	errno = 0;
	tr = pt_tracker_create(0, &o);
	tap_ok(!tr && errno == EINVAL, "pt_tracker_create: sz < sizeof(size_t) -> EINVAL");

	memset(&big, 0, sizeof(big));
	big.o.sz = sizeof(big);
	big.o.backend = PT_TRACK_HASH;
	big.o.start = (uint64_t)(uintptr_t)a;
	big.o.end = big.o.start + len;
	big.newer = 1;
	errno = 0;
	tr = pt_tracker_create(0, &big.o);
	tap_ok(!tr && errno == EINVAL,
	       "pt_tracker_create: nonzero bytes past the known size -> EINVAL");
	big.newer = 0;
	tr = pt_tracker_create(0, &big.o);
	tap_ok(tr != NULL, "pt_tracker_create: a larger struct with zero tail is accepted");
	if (tr) {
		struct {
			struct pt_tracker_stats st;
			uint64_t newer;
		} bst;
		struct pt_tracker_stats st;

		memset(&st, 0, sizeof(st));
		st.sz = offsetof(struct pt_tracker_stats, pages_dirty);
		st.pages_dirty = 12345;	/* past sz: must stay untouched */
		tap_ok(pt_tracker_stats(tr, &st) == 0 && st.pages_dirty == 12345,
		       "pt_tracker_stats: writes nothing past a short sz");

		PT_OPTS(pt_tracker_stats, full);
		tap_ok(pt_tracker_stats(tr, &full) == 0 && full.rounds == st.rounds,
		       "pt_tracker_stats: a covered field is filled (rounds %llu)",
		       (unsigned long long)full.rounds);

		st.sz = 2;
		tap_ok(pt_tracker_stats(tr, &st) == -EINVAL,
		       "pt_tracker_stats: sz < sizeof(size_t) -> -EINVAL");

		memset(&bst, 0, sizeof(bst));
		bst.st.sz = sizeof(bst);
		bst.newer = 7;
		tap_ok(pt_tracker_stats(tr, &bst.st) == -EINVAL,
		       "pt_tracker_stats: nonzero bytes past the known size -> -EINVAL");
		bst.newer = 0;
		tap_ok(pt_tracker_stats(tr, &bst.st) == 0 && bst.newer == 0,
		       "pt_tracker_stats: a larger struct is filled up to the known size only");
	}
	pt_tracker_free(tr);
	munmap(a, len);
	munmap(b, len);
}

int main(void)
{
	unsetenv("PT_FORCE_BACKEND");
	unsetenv("PT_FORCE_TRACKER");
	/* every check runs on every machine (a failed set-up step is a failure) */
	tap_plan(28);
	test_macro();
	test_target_opts();
	test_scan_opts();
	test_tracker_opts();
	return tap_done();
}
