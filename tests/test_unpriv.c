/* SPDX-License-Identifier: MIT */
/*
 * The unprivileged view.  As root: set up swap, then fork a target that
 * drops to nobody (65534) and builds shared and private memory, and a
 * scanner that drops to the same uid and scans the target with each
 * backend.  The scanner reports through a shared area; the root parent
 * asserts: no PFNs (PT_LIMIT_NO_PFN, never PT_ATTR_LOC), shared memory
 * whose object cannot be opened is UNKNOWN / PT_REASON_NO_ACCESS, a
 * memfd still open in the target is resolved through /proc/PID/fd,
 * private anon pages are right, and nothing crashes.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "pt_internal.h"	/* pt__features_reset */
#include "tap.h"

#define NP 64
#define LEN (NP * FX_PAGE)
#define NOBODY 65534

enum { R_SHMEM, R_SYSV, R_MEMFD, R_ANON, R_RO, R_N };
static const char *const rname[R_N] = { "shared anon (no fd)", "SysV shm (no fd)",
					"memfd (fd open in target)", "private anon",
					"root's read-only /dev/shm file" };

struct area {
	/* target */
	char why[160];
	uint64_t addr[R_N];
	char ro_path[64];	/* root-owned 0644 tmpfs file: mincore would lie */
	int swap_ok;
	/* scanner */
	int nb;
	enum pt_scan_backend be[2];
	int open_errno[2];
	int scan_err[2][R_N];
	uint8_t st[2][R_N][NP], rs[2][R_N][NP];
	uint32_t at[2][R_N][NP];
	uint32_t limits[2];
	int done;
};

static struct area *ar;

static int drop_privileges(void)
{
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		return -errno;
	/* changing uid made us non-dumpable: pagemap would refuse the same uid */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		return -errno;
	return 0;
}

static long self_swap_pages(void *addr)
{
	unsigned long long a, b;
	char line[512], perms[8];
	long kb = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx %7s ", &a, &b, perms) == 3) {
			in = a == (uintptr_t)addr;
			continue;
		}
		if (in && sscanf(line, "Swap: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb < 0 ? -1 : kb / 4;
}

/* Page out pages [from, from+16) of the VMA at @p until smaps agrees (swap only). */
static const char *pageout(char *p, int from)
{
	if (!ar->swap_ok)
		return NULL;
	for (int tries = 0; tries < 5 && self_swap_pages(p) < 16; tries++)
		if (fx_pageout(p + from * FX_PAGE, 16 * FX_PAGE))
			return "MADV_PAGEOUT failed";
	return self_swap_pages(p) == 16 ? NULL : "MADV_PAGEOUT did not swap the pages out";
}

/* 0-15 hole, 16-31 swapped, 32-47 cached, 48-63 present. */
static const char *layout_shared(char *p)
{
	const char *why;

	for (int i = 16; i < NP; i++)
		p[i * FX_PAGE] = (char)i;
	why = pageout(p, 16);
	if (!why && madvise(p + 32 * FX_PAGE, 16 * FX_PAGE, MADV_DONTNEED))
		why = "MADV_DONTNEED failed";
	return why;
}

static void target_setup(void *arg)
{
	const char *why = NULL;
	char *p;
	int fd, id;

	(void)arg;
	if (drop_privileges()) {
		snprintf(ar->why, sizeof(ar->why), "cannot drop to uid %d", NOBODY);
		return;
	}
	p = fx_map(LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ar->addr[R_SHMEM] = (uintptr_t)p;
	why = layout_shared(p);

	id = shmget(IPC_PRIVATE, LEN, IPC_CREAT | 0600);
	p = id < 0 ? (char *)-1 : shmat(id, NULL, 0);
	if (id >= 0)
		shmctl(id, IPC_RMID, NULL);
	if (p == (char *)-1) {
		why = why ? why : "shmget/shmat failed";
	} else {
		ar->addr[R_SYSV] = (uintptr_t)p;
		why = why ? why : layout_shared(p);
	}

	fd = memfd_create("pt-test-unpriv", MFD_CLOEXEC);	/* stays open */
	if (fd < 0 || ftruncate(fd, LEN)) {
		why = why ? why : "memfd_create failed";
	} else {
		p = fx_map(LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		ar->addr[R_MEMFD] = (uintptr_t)p;
		why = why ? why : layout_shared(p);
	}

	/* private anon: 0-31 untouched, 32-47 present, 48-63 swapped */
	p = fx_map(LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 32; i < NP; i++)
		p[i * FX_PAGE] = 1;
	ar->addr[R_ANON] = (uintptr_t)p;
	why = why ? why : pageout(p, 48);

	/* root's file, readable only; not touched (fault-around would map pages) */
	fd = ar->ro_path[0] ? open(ar->ro_path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd < 0 && ar->ro_path[0]) {
		why = why ? why : "cannot open root's /dev/shm file";
	} else {
		p = fx_map(LEN, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		ar->addr[R_RO] = (uintptr_t)p;
	}
	if (why)
		snprintf(ar->why, sizeof(ar->why), "%s", why);
}

/* The scanner: runs as nobody, writes what it saw into the area, _exits. */
static void scanner(pid_t target)
{
	struct pt_region r[64];
	struct pt_scan_opts so = { .sz = sizeof(so) };

	if (drop_privileges())
		_exit(3);
	pt__features_reset();
	for (int b = 0; b < ar->nb; b++) {
		struct pt_target_opts o = { .sz = sizeof(o), .scan_backend = ar->be[b] };
		struct pt_target *t = pt_target_create(target, &o);

		if (!t) {
			ar->open_errno[b] = errno;
			continue;
		}
		for (int k = 0; k < R_N; k++) {
			uint64_t start = ar->addr[k], cur = start, end = start + LEN;
			int n = 1;

			memset(ar->st[b][k], 0xee, NP);
			while (cur < end && n > 0) {
				n = pt_scan(t, &cur, end, r, 64, &so);
				for (int i = 0; i < n; i++)
					for (uint64_t a = r[i].start; a < r[i].end; a += FX_PAGE) {
						size_t pg = (a - start) / FX_PAGE;
						if (pg >= NP)
							continue;
						ar->st[b][k][pg] = r[i].state;
						ar->rs[b][k][pg] = r[i].reason;
						ar->at[b][k][pg] = r[i].attrs;
					}
			}
			ar->scan_err[b][k] = n < 0 ? n : 0;
		}
		ar->limits[b] = pt_scan_limits(t);
		pt_target_free(t);
	}
	ar->done = 1;
	_exit(0);	/* never run the parent's atexit handlers (swap teardown) */
}

static size_t count(const uint8_t *st, int from, int to, uint8_t s)
{
	return fx_count(st, (size_t)from, (size_t)to, s);
}

static bool all_unknown(const uint8_t *st, const uint8_t *rs, int from, int to, uint8_t reason)
{
	for (int i = from; i < to; i++)
		if (st[i] != PT_STATE_UNKNOWN || rs[i] != reason)
			return false;
	return true;
}

static void diag_states(const char *what, const uint8_t *st)
{
	static const char ch[] = "APSCU";
	char buf[NP + 1];

	for (int i = 0; i < NP; i++)
		buf[i] = st[i] < PT_STATE__COUNT ? ch[st[i]] : '?';
	buf[NP] = 0;
	tap_diag("%s: %s", what, buf);
}

/* check_backend()'s subtests, skips included: open, R_N scans, 2, 2 + 3 layouts */
#define N_BACKEND (1 + R_N + 2 + 2 + 3)

static void check_backend(int b, pid_t target)
{
	const char *bn = fx_backend_name(ar->be[b]);
	bool loc = false;

	if (!tap_ok(ar->open_errno[b] == 0, "%s: nobody can open a nobody target (errno %d)", bn,
		    ar->open_errno[b])) {
		tap_skip_n(N_BACKEND - 1, "no target", "%s: layouts", bn);
		return;
	}
	for (int k = 0; k < R_N; k++) {
		tap_ok(ar->scan_err[b][k] == 0, "%s: %s scanned (%d)", bn, rname[k],
		       ar->scan_err[b][k]);
		for (int i = 0; i < NP; i++)
			loc |= !!(ar->at[b][k][i] & PT_ATTR_LOC);
	}
	tap_ok(ar->limits[b] & PT_LIMIT_NO_PFN, "%s: PT_LIMIT_NO_PFN reported", bn);
	tap_ok(!loc, "%s: no page carries a location (PFN/swap slot)", bn);

	/* no fd, no map_files: the truth is out of reach, so say unknown */
	for (int k = R_SHMEM; k <= R_SYSV; k++) {
		const uint8_t *st = ar->st[b][k];
		const uint8_t *rs = ar->rs[b][k];
		bool ok = all_unknown(st, rs, 0, 16, PT_REASON_NO_ACCESS) &&
			  (ar->swap_ok ? all_unknown(st, rs, 16, 32, PT_REASON_NO_ACCESS)
				       : count(st, 16, 32, PT_STATE_PRESENT) == 16) &&
			  all_unknown(st, rs, 32, 48, PT_REASON_NO_ACCESS) &&
			  count(st, 48, 64, PT_STATE_PRESENT) == 16;
		if (!tap_ok(ok, "%s: %s: non-mapped pages unknown (no access), mapped present", bn,
			    rname[k]))
			diag_states(rname[k], st);
	}

	/* memfd: reachable through /proc/PID/fd, owned by us: fully resolved */
	const uint8_t *st = ar->st[b][R_MEMFD];
	long sw = -1;
	{
		char path[64], line[512], perms[8];
		unsigned long long a, e;
		int in = 0;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/smaps", (int)target);
		f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f)) {
			if (sscanf(line, "%llx-%llx %7s ", &a, &e, perms) == 3) {
				in = a == ar->addr[R_MEMFD];
				continue;
			}
			if (in && sscanf(line, "Swap: %ld kB", &sw) == 1)
				break;
		}
		if (f)
			fclose(f);
		sw = sw < 0 ? -1 : sw / 4;
	}
	size_t drift = count(st, 32, 64, PT_STATE_SWAPPED);
	bool ok = count(st, 0, 16, PT_STATE_ABSENT) == 16 &&
		  (ar->swap_ok ? count(st, 16, 32, PT_STATE_SWAPPED) == 16
			       : count(st, 16, 32, PT_STATE_PRESENT) == 16) &&
		  count(st, 32, 48, PT_STATE_CACHED) + count(st, 48, 64, PT_STATE_PRESENT) + drift ==
			  32 &&
		  count(st, 0, NP, PT_STATE_SWAPPED) == (size_t)(sw < 0 ? 0 : sw);
	if (!tap_ok(ok, "%s: memfd via /proc/PID/fd: absent/swapped/cached/present (smaps Swap %ld)",
		    bn, sw))
		diag_states("memfd", st);

	/* readable but not ours: holes are told, data is not guessed */
	st = ar->st[b][R_RO];
	ok = count(st, 0, 16, PT_STATE_ABSENT) == 16 &&
	     all_unknown(st, ar->rs[b][R_RO], 16, 64, PT_REASON_MINCORE_DENIED);
	if (!ar->addr[R_RO])
		tap_skip("no file in /dev/shm", "%s: %s", bn, rname[R_RO]);
	else if (!tap_ok(ok, "%s: %s: holes absent, data unknown (mincore would lie)", bn,
			 rname[R_RO]))
		diag_states(rname[R_RO], st);

	st = ar->st[b][R_ANON];
	ok = count(st, 0, 32, PT_STATE_ABSENT) == 32 && count(st, 32, 48, PT_STATE_PRESENT) == 16 &&
	     count(st, 48, 64, ar->swap_ok ? PT_STATE_SWAPPED : PT_STATE_PRESENT) == 16;
	if (!tap_ok(ok, "%s: private anon: 32 absent, 16 present, 16 swapped", bn))
		diag_states("anon", st);
}

/* Root-owned 0644 file on /dev/shm: pages 0-15 hole, 16-63 written. */
static int make_ro_file(void)
{
	char buf[FX_PAGE];
	int fd;

	snprintf(ar->ro_path, sizeof(ar->ro_path), "/dev/shm/pt-test-unpriv.%d", (int)getpid());
	fd = open(ar->ro_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	memset(buf, 'r', sizeof(buf));
	int err = ftruncate(fd, LEN) || fchmod(fd, 0644);
	for (int i = 16; i < NP && !err; i++)
		err = pwrite(fd, buf, sizeof(buf), (off_t)i * FX_PAGE) != (ssize_t)sizeof(buf);
	close(fd);
	return err ? -1 : 0;
}

int main(void)
{
	const char *why = NULL;
	pid_t target, sc;
	int status;

	if (geteuid() != 0)
		tap_skip_all("needs root to create swap and switch to uid 65534");
	ar = fx_map(sizeof(*ar), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset(ar, 0, sizeof(*ar));
	ar->swap_ok = fx_swap(&why);
	if (!ar->swap_ok)
		tap_diag("no swap (%s): swapped layouts not checked", why ? why : "?");
	ar->nb = fx_backends(ar->be);
	if (make_ro_file()) {
		tap_diag("cannot create a file in /dev/shm");
		ar->ro_path[0] = 0;
	}

	/* set-up, scanner, then the checks of both backends */
	tap_plan(2 + 2 * N_BACKEND);
	target = fx_child(target_setup, ar);
	if (!tap_ok(target > 0 && !ar->why[0], "unprivileged target set up%s%s",
		    ar->why[0] ? ": " : "", ar->why)) {
		tap_skip_n(1 + 2 * N_BACKEND, "no target", "unprivileged scans");
		fx_child_kill(target);
		if (ar->ro_path[0])
			unlink(ar->ro_path);
		munmap(ar, sizeof(*ar));
		return tap_done();
	}
	fflush(stdout);
	sc = fork();
	if (sc == 0)
		scanner(target);
	if (sc < 0 || waitpid(sc, &status, 0) != sc)
		status = -1;
	tap_ok(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && ar->done,
	       "unprivileged scanner ran to completion (status 0x%x)", status);
	if (ar->done)
		for (int b = 0; b < ar->nb; b++)
			check_backend(b, target);
	else
		tap_skip_n(ar->nb * N_BACKEND, "the scanner did not finish", "unprivileged scans");
	if (ar->nb < 2)
		tap_skip_n(N_BACKEND, "PAGEMAP_SCAN not available", "pagemap_scan: unprivileged scans");
	fx_child_kill(target);
	if (ar->ro_path[0])
		unlink(ar->ro_path);
	munmap(ar, sizeof(*ar));
	return tap_done();
}
