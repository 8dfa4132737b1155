/* SPDX-License-Identifier: MIT */
/*
 * snaptarget: a process holding every kind of memory, for the tests of
 * `pagetrack snapshot` and `pagetrack image` (tests/test_snapshot.py)
 * and, later, of migration.  Driven by commands on stdin, one per line;
 * every command answers exactly one line on stdout (JSON), so a test is
 * deterministic and bounded by work, not by time.
 *
 * Usage:
 *   snaptarget [--tag TAG] [--dir DIR] [--big MB] [--live-pages N] [--live-shm]
 *   snaptarget --swap MB     hold zram swap (tools/common/zram.h) until
 *                            stdin closes or says "quit"; answers
 *                            {"swap": 0|1, "why": ...} first
 *
 * Regions (each its own VMA, fenced by pages of another protection):
 *   anon       private anon, pages i%8 < 4 data, 4-5 written with zeros,
 *              6-7 never touched (holes)
 *   thp        4 MiB, 2 MiB aligned, MADV_HUGEPAGE, filled
 *   shanon     MAP_SHARED|MAP_ANONYMOUS
 *   memfd      memfd "snap-memfd" mapped shared (half its pages written)
 *   sysv       SysV shm segment (IPC_PRIVATE, removed at once: gone at exit)
 *   devshm     /dev/shm/TAG-devshm mapped shared
 *   filepriv   DIR/TAG-file (data) mapped private, every 4th page COW'd
 *   protnone   written, then PROT_NONE
 *   zeropage   PROT_READ, every page read (the zero page, if mapped)
 *   guard      pages 4-7 of 16 guard pages (MADV_GUARD_INSTALL = 102)
 *              when the kernel accepts it
 *   live       written only by the live writer thread; private anon, or
 *              with --live-shm /dev/shm/TAG-live mapped shared (the object
 *              a migration test sends with --object)
 *   big        (--big MB) private anon, every page holds data
 *   bigshm     (--big MB) memfd "snap-bigshm" of MB/4, every page data
 * Two idle threads ("snap-idle") block in read() on a pipe.  For debuggers:
 * the global snap_global (0x5eed5eed12345678) and snap_heap, a heap object
 * {magic 0x48ea948ea948ea9, text "snaptarget heap object"}.
 *
 * Commands (one answer line each; errors: {"error": "..."}):
 *   layout          {"pid", "page_size", "regions": [{name, kind, addr,
 *                   size, path, shared, writable, guard_pages}], "threads",
 *                   "guard_ok"}; path is what /proc/self/maps shows
 *                   (null for anonymous)
 *   write SEED N    writes N pages drawn by SEED over the writable pages
 *                   (not live, big, bigshm, guard pages), each filled from
 *                   (SEED, address): {"written": ["0x..", ...]} (distinct,
 *                   sorted)
 *   pageout         MADV_PAGEOUT of the first half of anon, shanon, memfd,
 *                   sysv, devshm, big, bigshm (shared pages read first, so
 *                   that they are mapped here): {"pages": N}
 *   dump FILE [NAME...]  one line per page of the regions (all by default):
 *                   "NAME 0xADDR CRC" with CRC the zlib crc32 of the
 *                   content in hex, or "NAME 0xADDR hole" (no data: reads
 *                   as zeros) or "NAME 0xADDR guard"; private pages are
 *                   read through /proc/self/mem when pagemap says present
 *                   or swapped, shared ones through their object (holes by
 *                   SEEK_DATA, data by pread: nothing allocated): the dump changes no page's
 *                   kind, but it reads swapped pages back in
 *                   {"pages": N}
 *   live RATE_MBPS  starts the writer thread: write k (k = 1, 2, ...; a
 *                   new start goes on from the last k) goes
 *                   to page p(k) = mix(k) % npages of "live": word 0 = k
 *                   first, then word i = (k << 12) ^ i ^ (p << 40) for
 *                   i = 1..511, at RATE MB/s: {"addr", "pages"}
 *   live RATE_MBPS nocatchup   the same, but writes missed while the
 *                   writer was held up (stopped, throttled: more than
 *                   ~10 ms of them) are not made up for: the rate is one
 *                   of running time, as a CPU-bound program's
 *   stop            stops it: {"k": last complete write}
 *   progress        {"k": writes completed so far}
 *   check           (writer stopped) the live region against the state
 *                   after exactly k writes, recomputed here (e.g. after
 *                   a restore; it reads every page, so never-written ones
 *                   get the zero page): {"k", "bad": pages that differ,
 *                   "first_bad"}
 *   ping            {"pong": PID}
 *   quit            removes its files, {"bye": PID}, exit 0
 * EOF on stdin is quit.  Run it with GLIBC_TUNABLES=glibc.pthread.rseq=0 for a
 * target whose memory does not change while idle: otherwise the kernel
 * rewrites each thread's rseq area (cpu_id) whenever it resumes it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "zram.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#define MADV_GUARD_INSTALL_ 102
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_GUARD (1ULL << 58)

#define MAXREG 16

struct region {
	const char *name, *kind;
	char *addr;
	size_t size;
	bool shared, writable;
	int fd;			/* the object, for shared regions (pread), else -1 */
	int guard_lo, guard_n;	/* guard pages [lo, lo + n) when guard_n */
	char path[256];		/* as /proc/self/maps shows it, "" anonymous */
};

static struct region reg[MAXREG];
static int nreg;
static size_t ps;
static int mem_fd = -1, pagemap_fd = -1;
static char tag[128], dir[256], devshm_path[512], file_path[512], live_path[512];
static bool guard_ok;

/* live writer */
static pthread_t live_thr;
static bool live_on;
static _Atomic uint64_t live_k;		/* last complete write */
static _Atomic int live_stop;
static double live_rate;		/* bytes per second */
static bool live_nocatchup;		/* "live RATE nocatchup" */
static struct region *live_reg;
static _Atomic pid_t idle_tid[2];
static int idle_pipe[2] = { -1, -1 };

/*
 * Known values for debuggers reading a core file or a restored process:
 * a global and a heap object (snap_heap points to it), set at start.
 */
struct snap_heap_obj {
	uint64_t magic;		/* SNAP_HEAP_MAGIC */
	char text[32];		/* "snaptarget heap object" */
};
#define SNAP_GLOBAL_MAGIC 0x5eed5eed12345678ULL
#define SNAP_HEAP_MAGIC 0x48ea948ea948ea9ULL
volatile uint64_t snap_global;
struct snap_heap_obj *volatile snap_heap;

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int j = 0; j < 8; j++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

/* zlib's crc32 (Python's zlib.crc32) */
static uint32_t crc32_buf(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

static void die(const char *what)
{
	fprintf(stderr, "snaptarget: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * Reserve @size bytes at @align (>= page) with a fence of at least one
 * page of protection @fence_prot on each side: the region is its own VMA.
 */
static char *reserve(size_t size, size_t align, int fence_prot)
{
	size_t len = size + 2 * align + 2 * ps;
	char *r = mmap(NULL, len, fence_prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (r == MAP_FAILED)
		die("mmap reserve");
	uintptr_t a = ((uintptr_t)r + ps + align - 1) & ~(uintptr_t)(align - 1);
	return (char *)a;
}

static struct region *add(const char *name, const char *kind, size_t size, bool shared)
{
	struct region *g = &reg[nreg++];

	g->name = name;
	g->kind = kind;
	g->size = size;
	g->shared = shared;
	g->writable = true;
	g->fd = -1;
	return g;
}

static char *map_fixed(char *at, size_t size, int prot, int flags, int fd)
{
	char *p = mmap(at, size, prot, flags | MAP_FIXED, fd, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void fill_page(char *p, uint64_t seed, uint64_t addr)
{
	uint64_t *w = (uint64_t *)p;

	for (size_t i = 0; i < ps / 8; i++)
		w[i] = mix(seed ^ mix(addr + i));
}

/* the object of shared region @g, opened through /proc/self/map_files */
static void open_object(struct region *g)
{
	char p[128];

	snprintf(p, sizeof(p), "/proc/self/map_files/%lx-%lx", (unsigned long)g->addr,
		 (unsigned long)(g->addr + g->size));
	g->fd = open(p, O_RDONLY | O_CLOEXEC);
	if (g->fd < 0)
		die(p);
}

static void set_up(size_t big_mb, size_t live_pages, bool live_shm)
{
	struct region *g;
	char *p;
	int fd;

	/* anon */
	g = add("anon", "anon", 512 * ps, false);
	g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1);
	for (size_t i = 0; i < 512; i++) {
		p = g->addr + i * ps;
		if (i % 8 < 4)
			fill_page(p, 1, (uint64_t)p);
		else if (i % 8 < 6)
			memset(p, 0, ps);	/* zeros written: a real page */
	}

	/* thp */
	g = add("thp", "thp", 4UL << 20, false);
	g->addr = map_fixed(reserve(g->size, 2UL << 20, PROT_NONE), g->size,
			    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	madvise(g->addr, g->size, MADV_HUGEPAGE);	/* a hint: no THP is no failure */
	for (size_t i = 0; i < g->size / ps; i++)
		fill_page(g->addr + i * ps, 2, (uint64_t)(g->addr + i * ps));

	/* shanon */
	g = add("shanon", "shmem", 64 * ps, true);
	g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1);
	for (size_t i = 0; i < 64; i += 2)
		fill_page(g->addr + i * ps, 3, (uint64_t)(g->addr + i * ps));

	/* memfd: pages 0..31 written, 32..63 holes */
	g = add("memfd", "memfd", 64 * ps, true);
	fd = memfd_create("snap-memfd", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)g->size) < 0)
		die("memfd");
	g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size, PROT_READ | PROT_WRITE,
			    MAP_SHARED, fd);
	close(fd);
	for (size_t i = 0; i < 32; i++)
		fill_page(g->addr + i * ps, 4, (uint64_t)(g->addr + i * ps));

	/* sysv */
	g = add("sysv", "sysv", 64 * ps, true);
	int id = shmget(IPC_PRIVATE, g->size, IPC_CREAT | 0600);
	if (id < 0)
		die("shmget");
	p = reserve(g->size, ps, PROT_NONE);
	munmap(p, g->size);	/* shmat at a fixed address needs the hole */
	g->addr = shmat(id, p, 0);
	shmctl(id, IPC_RMID, NULL);	/* gone when the last user detaches */
	if (g->addr == (void *)-1)
		die("shmat");
	for (size_t i = 0; i < 64; i += 3)
		fill_page(g->addr + i * ps, 5, (uint64_t)(g->addr + i * ps));

	/* devshm */
	g = add("devshm", "shm_file", 64 * ps, true);
	snprintf(devshm_path, sizeof(devshm_path), "/dev/shm/%s-devshm", tag);
	fd = open(devshm_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)g->size) < 0)
		die(devshm_path);
	g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size, PROT_READ | PROT_WRITE,
			    MAP_SHARED, fd);
	close(fd);
	for (size_t i = 0; i < 48; i++)
		fill_page(g->addr + i * ps, 6, (uint64_t)(g->addr + i * ps));

	/* filepriv: the file holds data; every 4th page COW'd */
	g = add("filepriv", "file", 64 * ps, false);
	snprintf(file_path, sizeof(file_path), "%s/%s-file", dir, tag);
	fd = open(file_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		die(file_path);
	{
		char *buf = malloc(ps);
		for (size_t i = 0; i < 64; i++) {
			fill_page(buf, 7, i);
			if (pwrite(fd, buf, ps, (off_t)(i * ps)) != (ssize_t)ps)
				die("pwrite");
		}
		free(buf);
	}
	g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE, fd);
	close(fd);
	for (size_t i = 0; i < 64; i += 4)
		fill_page(g->addr + i * ps, 8, (uint64_t)(g->addr + i * ps));

	/* protnone: data, then PROT_NONE (fences PROT_READ: no merge) */
	g = add("protnone", "anon", 16 * ps, false);
	g->addr = map_fixed(reserve(g->size, ps, PROT_READ), g->size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1);
	for (size_t i = 0; i < 16; i++)
		fill_page(g->addr + i * ps, 9, (uint64_t)(g->addr + i * ps));
	if (mprotect(g->addr, g->size, PROT_NONE) < 0)
		die("mprotect");
	g->writable = false;

	/* zeropage: read-only, every page read */
	g = add("zeropage", "anon", 32 * ps, false);
	g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size, PROT_READ,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1);
	{
		volatile uint64_t sum = 0;
		for (size_t i = 0; i < 32; i++)
			sum += *(volatile uint64_t *)(g->addr + i * ps);
		(void)sum;
	}
	g->writable = false;

	/* guard */
	g = add("guard", "anon", 16 * ps, false);
	g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1);
	for (size_t i = 0; i < 16; i++)
		fill_page(g->addr + i * ps, 10, (uint64_t)(g->addr + i * ps));
	if (madvise(g->addr + 4 * ps, 4 * ps, MADV_GUARD_INSTALL_) == 0) {
		guard_ok = true;
		g->guard_lo = 4;
		g->guard_n = 4;
	}

	/* live: untouched until the writer runs */
	if (live_shm) {
		g = add("live", "shm_file", live_pages * ps, true);
		snprintf(live_path, sizeof(live_path), "/dev/shm/%s-live", tag);
		fd = open(live_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)g->size) < 0)
			die(live_path);
		g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size,
				    PROT_READ | PROT_WRITE, MAP_SHARED, fd);
		close(fd);
	} else {
		g = add("live", "anon", live_pages * ps, false);
		g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size,
				    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	}
	g->writable = false;	/* not for "write": the writer thread's */
	live_reg = g;

	if (big_mb) {
		/* compressible, not same-filled: word 0 the address, word 1 a tag */
		g = add("big", "anon", big_mb << 20, false);
		g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size,
				    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
		g->writable = false;
		for (size_t i = 0; i < g->size; i += ps) {
			((uint64_t *)(g->addr + i))[0] = (uint64_t)(g->addr + i);
			((uint64_t *)(g->addr + i))[1] = 0x5ea1b16ULL;
		}
		g = add("bigshm", "memfd", (big_mb << 20) / 4, true);
		fd = memfd_create("snap-bigshm", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)g->size) < 0)
			die("memfd big");
		g->addr = map_fixed(reserve(g->size, ps, PROT_NONE), g->size,
				    PROT_READ | PROT_WRITE, MAP_SHARED, fd);
		close(fd);
		g->writable = false;
		for (size_t i = 0; i < g->size; i += ps) {
			((uint64_t *)(g->addr + i))[0] = i;
			((uint64_t *)(g->addr + i))[1] = 0x5ea1b16ULL;
		}
	}

	for (int i = 0; i < nreg; i++)
		if (reg[i].shared)
			open_object(&reg[i]);
}

/* fill in each region's path from /proc/self/maps */
static void read_paths(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[1024];

	if (!f)
		die("/proc/self/maps");
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		int n = 0;

		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &s, &e, &n) < 2 || !n)
			continue;
		char *path = line + n;
		path[strcspn(path, "\n")] = 0;
		for (int i = 0; i < nreg; i++)
			if ((unsigned long)reg[i].addr == s)
				snprintf(reg[i].path, sizeof(reg[i].path), "%s", path);
	}
	fclose(f);
}

static void json_str(FILE *o, const char *s)
{
	fputc('"', o);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(o, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(o, "\\u%04x", *s);
		else
			fputc(*s, o);
	}
	fputc('"', o);
}

static void cmd_layout(void)
{
	read_paths();
	printf("{\"pid\": %d, \"page_size\": %zu, \"guard_ok\": %s, \"regions\": [", getpid(), ps,
	       guard_ok ? "true" : "false");
	for (int i = 0; i < nreg; i++) {
		struct region *g = &reg[i];

		printf("%s{\"name\": \"%s\", \"kind\": \"%s\", \"addr\": \"0x%lx\", \"size\": %zu, "
		       "\"path\": ",
		       i ? ", " : "", g->name, g->kind, (unsigned long)g->addr, g->size);
		if (g->path[0])
			json_str(stdout, g->path);
		else
			printf("null");
		printf(", \"shared\": %s, \"writable\": %s, \"guard_pages\": [", g->shared ? "true" : "false",
		       g->writable ? "true" : "false");
		for (int j = 0; j < g->guard_n; j++)
			printf("%s\"0x%lx\"", j ? ", " : "", (unsigned long)(g->addr + (size_t)(g->guard_lo + j) * ps));
		printf("]}");
	}
	printf("], \"threads\": [%d, %d, %d], \"files\": [", getpid(), (int)idle_tid[0], (int)idle_tid[1]);
	json_str(stdout, devshm_path);
	printf(", ");
	json_str(stdout, file_path);
	if (live_path[0]) {
		printf(", ");
		json_str(stdout, live_path);
	}
	printf("]}\n");
}

static bool is_guard(const struct region *g, size_t page)
{
	return g->guard_n && page >= (size_t)g->guard_lo && page < (size_t)(g->guard_lo + g->guard_n);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void cmd_write(uint64_t seed, size_t n)
{
	size_t total = 0;

	for (int i = 0; i < nreg; i++)
		if (reg[i].writable)
			total += reg[i].size / ps;
	uint64_t *w = malloc((n ? n : 1) * sizeof(*w));
	size_t nw = 0;

	for (size_t j = 0; j < n && total; j++) {
		uint64_t pick = mix(seed * 0x100000001b3ULL + j) % total;
		for (int i = 0; i < nreg; i++) {
			struct region *g = &reg[i];
			if (!g->writable)
				continue;
			if (pick >= g->size / ps) {
				pick -= g->size / ps;
				continue;
			}
			if (is_guard(g, pick))
				break;	/* drawn on a guard page: no write */
			char *p = g->addr + pick * ps;
			fill_page(p, mix(seed + 11), (uint64_t)p);
			w[nw++] = (uint64_t)p;
			break;
		}
	}
	qsort(w, nw, sizeof(*w), cmp_u64);
	printf("{\"written\": [");
	for (size_t j = 0, k = 0; j < nw; j++) {
		if (j && w[j] == w[j - 1])
			continue;
		printf("%s\"0x%" PRIx64 "\"", k++ ? ", " : "", w[j]);
	}
	printf("]}\n");
	free(w);
}

static void cmd_pageout(void)
{
	static const char *const names[] = { "anon", "shanon", "memfd", "sysv", "devshm", "big",
					     "bigshm" };
	size_t pages = 0;

	for (int i = 0; i < nreg; i++)
		for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++)
			if (!strcmp(reg[i].name, names[j])) {
				size_t half = (reg[i].size / ps / 2) * ps;

				/* MADV_PAGEOUT sees mapped pages only: map the object's
				   (a copier may have read it without mapping it here) */
				if (reg[i].shared)
					for (size_t o = 0; o < half; o += ps)
						(void)*(volatile char *)(reg[i].addr + o);
				if (madvise(reg[i].addr, half, MADV_PAGEOUT) < 0) {
					printf("{\"error\": \"MADV_PAGEOUT %s: %s\"}\n", reg[i].name,
					       strerror(errno));
					return;
				}
				pages += half / ps;
			}
	printf("{\"pages\": %zu}\n", pages);
}

static bool wanted(const char *name, char **names, int n)
{
	if (!n)
		return true;
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

static void cmd_dump(const char *file, char **names, int nnames)
{
	FILE *o = fopen(file, "we");
	unsigned char *buf = malloc(ps);
	size_t pages = 0;

	if (!o) {
		printf("{\"error\": \"%s: %s\"}\n", file, strerror(errno));
		free(buf);
		return;
	}
	for (int i = 0; i < nreg; i++) {
		struct region *g = &reg[i];

		if (!wanted(g->name, names, nnames))
			continue;
		for (size_t j = 0; j < g->size / ps; j++, pages++) {
			uint64_t a = (uint64_t)(g->addr + j * ps);
			ssize_t r;

			if (g->shared) {
				off_t d = lseek(g->fd, (off_t)(j * ps), SEEK_DATA);

				if (d != (off_t)(j * ps)) {	/* a hole of the object (or ENXIO) */
					fprintf(o, "%s 0x%" PRIx64 " hole\n", g->name, a);
					continue;
				}
				r = pread(g->fd, buf, ps, (off_t)(j * ps));
			} else {
				uint64_t pm = 0;

				if (pread(pagemap_fd, &pm, 8, (off_t)(a / ps * 8)) != 8)
					pm = PM_PRESENT;	/* unknown: read */
				if (pm & PM_GUARD || is_guard(g, j)) {
					fprintf(o, "%s 0x%" PRIx64 " guard\n", g->name, a);
					continue;
				}
				if (!(pm & (PM_PRESENT | PM_SWAP)) && strcmp(g->kind, "file")) {
					fprintf(o, "%s 0x%" PRIx64 " hole\n", g->name, a);
					continue;
				}
				r = pread(mem_fd, buf, ps, (off_t)a);
			}
			if (r != (ssize_t)ps) {
				fprintf(o, "%s 0x%" PRIx64 " unreadable\n", g->name, a);
				continue;
			}
			fprintf(o, "%s 0x%" PRIx64 " %08x\n", g->name, a, crc32_buf(buf, ps));
		}
	}
	if (fclose(o) != 0)
		printf("{\"error\": \"%s: %s\"}\n", file, strerror(errno));
	else
		printf("{\"pages\": %zu}\n", pages);
	free(buf);
}

static void *live_main(void *arg)
{
	/* k goes on from the last run: the sequence of writes is one */
	uint64_t npages = live_reg->size / ps, t0 = now_ns(), k = atomic_load(&live_k), k0 = k;

	(void)arg;
	prctl(PR_SET_NAME, "snap-live");
	while (!atomic_load_explicit(&live_stop, memory_order_relaxed)) {
		/* writes due by now at the rate; at most 256 in a row */
		double due = (double)(now_ns() - t0) * 1e-9 * live_rate / (double)ps;
		uint64_t n = 0;

		/* nocatchup: held up (stopped, throttled) for more than ~10 ms
		   of writes, the writer forgets them and goes on at the rate */
		if (live_nocatchup && due > (double)(k - k0) + 16 &&
		    due > (double)(k - k0) + live_rate * 0.01 / (double)ps) {
			t0 = now_ns();
			k0 = k;
			due = 0;
		}

		while (k < k0 + (uint64_t)due && n++ < 256) {
			uint64_t kk = k + 1, p = mix(kk) % npages;
			volatile uint64_t *w = (volatile uint64_t *)(live_reg->addr + p * ps);

			w[0] = kk;	/* first: the page with the highest word 0 is the last write */
			for (size_t i = 1; i < ps / 8; i++)
				w[i] = (kk << 12) ^ i ^ (p << 40);
			k = kk;
			atomic_store_explicit(&live_k, k, memory_order_release);
		}
		if (!n) {
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void cmd_live(double mbps, bool nocatchup)
{
	if (live_on || mbps <= 0) {
		printf("{\"error\": \"%s\"}\n", live_on ? "already live" : "bad rate");
		return;
	}
	live_rate = mbps * 1e6;
	live_nocatchup = nocatchup;
	atomic_store(&live_stop, 0);
	if (pthread_create(&live_thr, NULL, live_main, NULL) != 0) {
		printf("{\"error\": \"pthread_create\"}\n");
		return;
	}
	live_on = true;
	printf("{\"addr\": \"0x%lx\", \"pages\": %zu}\n", (unsigned long)live_reg->addr,
	       live_reg->size / ps);
}

static void cmd_stop(void)
{
	if (live_on) {
		atomic_store(&live_stop, 1);
		pthread_join(live_thr, NULL);
		live_on = false;
	}
	printf("{\"k\": %" PRIu64 "}\n", atomic_load(&live_k));
}

/* The live region against the state after exactly live_k writes (writer stopped). */
static void cmd_check(void)
{
	uint64_t npages = live_reg->size / ps, k = atomic_load(&live_k), bad = 0, first = 0;
	uint64_t *last = calloc(npages, sizeof(*last));

	if (live_on || !last) {
		printf("{\"error\": \"%s\"}\n", live_on ? "stop the writer first" : "out of memory");
		free(last);
		return;
	}
	for (uint64_t kk = 1; kk <= k; kk++)
		last[mix(kk) % npages] = kk;
	for (uint64_t p = 0; p < npages; p++) {
		const uint64_t *w = (const uint64_t *)(live_reg->addr + p * ps);
		uint64_t kk = last[p];
		bool good = w[0] == kk;

		for (size_t i = 1; i < ps / 8 && good; i++)
			good = w[i] == (kk ? (kk << 12) ^ i ^ (p << 40) : 0);
		if (!good && !bad++)
			first = (uint64_t)(live_reg->addr + p * ps);
	}
	free(last);
	printf("{\"k\": %" PRIu64 ", \"bad\": %" PRIu64 ", \"first_bad\": \"0x%" PRIx64 "\"}\n", k,
	       bad, first);
}

static void *idle_main(void *arg)
{
	char c;

	idle_tid[(intptr_t)arg] = (pid_t)syscall(SYS_gettid);
	prctl(PR_SET_NAME, "snap-idle");
	while (read(idle_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void cleanup_files(void)
{
	if (devshm_path[0])
		unlink(devshm_path);
	if (file_path[0])
		unlink(file_path);
	if (live_path[0])
		unlink(live_path);
}

static int swap_holder(size_t mb)
{
	const char *why = "";
	char line[64];
	int r = pt_zram_swap_on(mb, &why);

	printf("{\"swap\": %d, \"active\": %s, \"why\": \"%s\"}\n", r, pt_swap_active() ? "true" : "false",
	       r < 0 ? why : "");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) && strncmp(line, "quit", 4))
		;
	if (r >= 0)
		pt_zram_swap_off();
	printf("{\"bye\": %d}\n", getpid());
	return 0;
}

int main(int argc, char **argv)
{
	size_t big_mb = 0, live_pages = 4096;
	bool live_shm = false;
	char line[4096];
	pthread_t idle[2];

	ps = (size_t)sysconf(_SC_PAGESIZE);
	crc_init();
	snprintf(tag, sizeof(tag), "snaptarget-%d", getpid());
	snprintf(dir, sizeof(dir), "%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--swap") && i + 1 < argc)
			return swap_holder(strtoull(argv[i + 1], NULL, 0));
		if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			snprintf(tag, sizeof(tag), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			snprintf(dir, sizeof(dir), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--big") && i + 1 < argc)
			big_mb = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--live-pages") && i + 1 < argc)
			live_pages = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--live-shm"))
			live_shm = true;
		else {
			fprintf(stderr, "usage: snaptarget [--tag TAG] [--dir DIR] [--big MB] "
					"[--live-pages N] [--live-shm] | --swap MB\n");
			return 2;
		}
	}
	if (!live_pages)
		live_pages = 1;
	mem_fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (mem_fd < 0 || pagemap_fd < 0)
		die("/proc/self");
	signal(SIGPIPE, SIG_IGN);
	snap_global = SNAP_GLOBAL_MAGIC;
	snap_heap = calloc(1, sizeof(*snap_heap));
	if (!snap_heap)
		die("calloc");
	snap_heap->magic = SNAP_HEAP_MAGIC;
	snprintf(snap_heap->text, sizeof(snap_heap->text), "snaptarget heap object");
	set_up(big_mb, live_pages, live_shm);
	if (pipe2(idle_pipe, O_CLOEXEC) < 0)
		die("pipe");
	for (intptr_t i = 0; i < 2; i++)
		if (pthread_create(&idle[i], NULL, idle_main, (void *)i) != 0)
			die("pthread_create");
	while (!idle_tid[0] || !idle_tid[1])
		sched_yield();
	setvbuf(stdout, NULL, _IOLBF, 0);

	while (fgets(line, sizeof(line), stdin)) {
		char *argvv[MAXREG + 2], *save = NULL;
		int n = 0;

		for (char *t = strtok_r(line, " \t\n", &save); t && n < MAXREG + 2;
		     t = strtok_r(NULL, " \t\n", &save))
			argvv[n++] = t;
		if (!n)
			continue;
		if (!strcmp(argvv[0], "layout"))
			cmd_layout();
		else if (!strcmp(argvv[0], "write") && n == 3)
			cmd_write(strtoull(argvv[1], NULL, 0), strtoull(argvv[2], NULL, 0));
		else if (!strcmp(argvv[0], "pageout"))
			cmd_pageout();
		else if (!strcmp(argvv[0], "dump") && n >= 2)
			cmd_dump(argvv[1], argvv + 2, n - 2);
		else if (!strcmp(argvv[0], "live") && (n == 2 || (n == 3 && !strcmp(argvv[2], "nocatchup"))))
			cmd_live(strtod(argvv[1], NULL), n == 3);
		else if (!strcmp(argvv[0], "stop"))
			cmd_stop();
		else if (!strcmp(argvv[0], "check"))
			cmd_check();
		else if (!strcmp(argvv[0], "progress"))
			printf("{\"k\": %" PRIu64 "}\n", atomic_load(&live_k));
		else if (!strcmp(argvv[0], "ping"))
			printf("{\"pong\": %d}\n", getpid());
		else if (!strcmp(argvv[0], "quit"))
			break;
		else
			printf("{\"error\": \"unknown command %s\"}\n", argvv[0]);
	}
	if (live_on) {
		atomic_store(&live_stop, 1);
		pthread_join(live_thr, NULL);
	}
	close(idle_pipe[1]);	/* the idle threads return */
	for (int i = 0; i < 2; i++)
		pthread_join(idle[i], NULL);
	cleanup_files();
	free(snap_heap);
	printf("{\"bye\": %d}\n", getpid());
	return 0;
}
