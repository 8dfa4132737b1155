/* SPDX-License-Identifier: MIT */
/*
 * pagetrack-demo: a workload with a known, mixed memory layout, for
 * `pagetrack map` to be run on (`make demo`, doc/demo.md).
 *
 * Every region is cut into quarters with a designed state each.  Regions
 * sit at fixed offsets from one 2 MiB-aligned base with a 2 MiB hole after
 * each, so the kernel never merges two regions into one VMA and smaps can
 * be read per region.  Nothing but a zram swap it created can outlive the
 * process, even killed: the temp file is unlinked once created, the SysV
 * segment IPC_RMID'd once attached, the memfd dies with its last reference.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "zram.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#define TMPFS_MAGIC_ 0x01021994
#define MIB (1024UL * 1024)
#define GAP (2 * MIB)

enum kind { R_ANON, R_ANON_OUT, R_THP, R_SHARED, R_MEMFD, R_SYSV, R_FILE, R__COUNT };

struct region {
	const char *name;
	const char *expect[4];	/* designed state of each quarter */
	int swapped_q;		/* quarters meant to be in swap */
	char *addr;
	size_t len;
};

#define TOUCHED "present (touched)"
#define UNTOUCHED "absent (never touched)"
#define PAGEDOUT "swapped (MADV_PAGEOUT)"
#define SHM_PARTS { TOUCHED, PAGEDOUT, "cached (touched, MADV_DONTNEED)", UNTOUCHED }, 1

static struct region regs[R__COUNT] = {
	[R_ANON] = { "anon", { TOUCHED, TOUCHED, UNTOUCHED, UNTOUCHED } },
	[R_ANON_OUT] = { "anon-pageout", { PAGEDOUT, PAGEDOUT, TOUCHED, TOUCHED }, 2 },
	[R_THP] = { "thp", { "present, huge", "present, huge", "present, huge", "present, huge" } },
	[R_SHARED] = { "shared-anon", SHM_PARTS },
	[R_MEMFD] = { "memfd", SHM_PARTS },
	[R_SYSV] = { "sysv-shm", SHM_PARTS },
	[R_FILE] = { "file", { "present (read through the mapping)", "absent (not in page cache)",
			       "cached (read with pread, not mapped)", "absent (not in page cache)" } },
};

static int memfd = -1, filefd = -1;	/* closed in main */

/* Varied, incompressible-enough bytes: zram stores same-filled pages specially. */
static void fill(void *p, size_t len, uint64_t seed)
{
	uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++) {
		uint64_t x = (i + seed) * 0x9E3779B97F4A7C15ULL;
		w[i] = x ^ (x >> 29);
	}
}

static int map_at(struct region *r, char *at, int prot, int flags, int fd)
{
	void *p = mmap(at, r->len, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	if (p != at) {	/* pre-4.17 kernels ignore NOREPLACE */
		munmap(p, r->len);
		return -EEXIST;
	}
	r->addr = p;
	return 0;
}

/* Quarters: 0 mapped, 1 swapped, 2 cached but unmapped, 3 never touched. */
static int shared_layout(struct region *r, uint64_t seed)
{
	size_t q = r->len / 4;

	fill(r->addr, 3 * q, seed);
	if (madvise(r->addr + q, q, MADV_PAGEOUT) != 0)
		return -errno;
	if (madvise(r->addr + 2 * q, q, MADV_DONTNEED) != 0)
		return -errno;
	return 0;
}

/*
 * An unlinked temp file in a directory on a disk filesystem (a tmpfs file
 * would be shmem, not "file").  Unlinked at once: it can never leak.
 */
static int open_tmpfile(void)
{
	const char *dirs[] = { getenv("TMPDIR"), "/var/tmp", "/tmp", "." };
	char file_path[4096];
	struct statfs sf;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		int fd;

		if (!dirs[i] || statfs(dirs[i], &sf) != 0 || sf.f_type == TMPFS_MAGIC_)
			continue;
		snprintf(file_path, sizeof(file_path), "%s/pagetrack-demo.XXXXXX", dirs[i]);
		fd = mkostemp(file_path, O_CLOEXEC);
		if (fd >= 0) {
			unlink(file_path);
			return fd;
		}
	}
	return -ENOENT;
}

static int build_file(struct region *r, char *at)
{
	size_t q = r->len / 4, chunk = MIB;
	char *buf = malloc(chunk);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	filefd = open_tmpfile();
	if (filefd < 0) {
		err = filefd;
		goto out;
	}
	for (size_t off = 0; off < r->len; off += chunk) {
		fill(buf, chunk, 7 + off);
		if (write(filefd, buf, chunk) != (ssize_t)chunk) {
			err = -EIO;
			goto out;
		}
	}
	/* Written pages sit in the page cache: write back, then drop them. */
	if (fsync(filefd) != 0) {
		err = -errno;
		goto out;
	}
	if ((err = -posix_fadvise(filefd, 0, 0, POSIX_FADV_DONTNEED)) ||
	    (err = -posix_fadvise(filefd, 0, 0, POSIX_FADV_RANDOM)) ||
	    (err = map_at(r, at, PROT_READ, MAP_PRIVATE, filefd)))
		goto out;
	/* No readahead, so the quarters keep their edges. */
	madvise(r->addr, r->len, MADV_RANDOM);
	for (size_t off = 0; off < q; off += 4096)
		(void)*(volatile char *)(r->addr + off);
	for (size_t off = 2 * q; off < 3 * q; off += chunk)
		if (pread(filefd, buf, chunk, (off_t)off) != (ssize_t)chunk) {
			err = -EIO;
			goto out;
		}
out:
	free(buf);
	return err;
}

/* Map region @i at @at and give it its designed state (file: build_file). */
static int build(int i, char *at)
{
	struct region *r = &regs[i];
	int rw = PROT_READ | PROT_WRITE, err, id;
	void *p;

	switch (i) {
	case R_ANON:
	case R_ANON_OUT:
	case R_THP:
		if ((err = map_at(r, at, rw, MAP_PRIVATE | MAP_ANONYMOUS, -1)))
			return err;
		if (i == R_THP && madvise(r->addr, r->len, MADV_HUGEPAGE) != 0)
			fprintf(stderr, "pagetrack-demo: MADV_HUGEPAGE: %s\n", strerror(errno));
		fill(r->addr, i == R_ANON ? r->len / 2 : r->len, i);
		if (i == R_ANON_OUT && madvise(r->addr, r->len / 2, MADV_PAGEOUT) != 0)
			return -errno;
		return 0;
	case R_SHARED:
		if ((err = map_at(r, at, rw, MAP_SHARED | MAP_ANONYMOUS, -1)))
			return err;
		return shared_layout(r, i);
	case R_MEMFD:
		memfd = memfd_create("pagetrack-demo", MFD_CLOEXEC);
		if (memfd < 0 || ftruncate(memfd, (off_t)r->len) != 0)
			return -errno;
		if ((err = map_at(r, at, rw, MAP_SHARED, memfd)))
			return err;
		return shared_layout(r, i);
	case R_SYSV:
		/* A visible key ("pt" + pid) when free, else a private segment. */
		id = shmget(0x70740000 | (getpid() & 0xffff), r->len, IPC_CREAT | IPC_EXCL | 0600);
		if (id < 0)
			id = shmget(IPC_PRIVATE, r->len, IPC_CREAT | 0600);
		if (id < 0)
			return -errno;
		p = shmat(id, at, 0);
		/* Destroyed at the last detach, so even a killed demo cannot leak it. */
		shmctl(id, IPC_RMID, NULL);
		if (p == (void *)-1)
			return -errno;
		r->addr = p;
		return shared_layout(r, i);
	}
	return build_file(r, at);
}

/* smaps Rss/Swap/AnonHugePages (kB) of the VMA starting at @addr. */
static void smaps_of(const char *addr, unsigned long *rss, unsigned long *swap,
		     unsigned long *huge)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	unsigned long start, end, v;
	char line[512];
	int in = 0;

	*rss = *swap = *huge = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			if (in)
				break;
			in = start == (unsigned long)addr;
		} else if (in && sscanf(line, "Rss: %lu", &v) == 1) {
			*rss = v;
		} else if (in && sscanf(line, "Swap: %lu", &v) == 1) {
			*swap = v;
		} else if (in && sscanf(line, "AnonHugePages: %lu", &v) == 1) {
			*huge = v;
		}
	}
	fclose(f);
}

/* kB of @r in memory by mincore (for shmem/file: page cache and swap cache). */
static unsigned long mincore_kb(const struct region *r)
{
	size_t n = r->len / 4096, res = 0;
	unsigned char *vec = malloc(n);

	if (!vec)
		return 0;
	if (mincore(r->addr, r->len, vec) == 0)
		for (size_t i = 0; i < n; i++)
			res += vec[i] & 1;
	free(vec);
	return res * 4;
}

static void print_layout(size_t scale, const char *swapmsg, int have_swap)
{
	printf("pagetrack-demo: pid %d, %zu MiB per region; swap: %s\n",
	       getpid(), scale, swapmsg);
	for (int i = 0; i < R__COUNT; i++) {
		const struct region *r = &regs[i];
		size_t q = r->len / 4;
		unsigned long rss, swap, huge;

		if (!r->addr)
			continue;
		smaps_of(r->addr, &rss, &swap, &huge);
		printf("%-13s %p-%p  smaps: Rss %lu kB, Swap %lu kB, AnonHuge %lu kB; "
		       "mincore: %lu kB in memory\n", r->name, (void *)r->addr,
		       (void *)(r->addr + r->len), rss, swap, huge, mincore_kb(r));
		for (int j = 0, k; j < 4; j = k) {
			for (k = j + 1; k < 4 && !strcmp(r->expect[k], r->expect[j]); k++)
				;
			printf("    %p-%p %5zu MiB  %s%s\n", (void *)(r->addr + j * q),
			       (void *)(r->addr + k * q), (k - j) * q / MIB, r->expect[j],
			       have_swap || !strstr(r->expect[j], "swapped") ? "" :
			       i == R_ANON_OUT ? " -- NO SWAP: stays present" :
			       " -- NO SWAP: unmapped, stays cached");
		}
		if (have_swap && r->swapped_q && swap < r->swapped_q * q / 1024 / 2)
			fprintf(stderr, "pagetrack-demo: %s: only %lu of %zu kB went to swap\n",
				r->name, swap, r->swapped_q * q / 1024);
		if (i == R_THP && !huge)
			fprintf(stderr, "pagetrack-demo: thp: no huge pages granted "
				"(THP disabled or memory fragmented)\n");
	}
	fflush(stdout);
}

/* Write "PID\n" atomically: readers see no file or the whole line. */
static int write_pidfile(const char *path)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "%d\n", getpid());
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

static void notify_fd(int fd)
{
	if (fd >= 0) {
		dprintf(fd, "%d\n", getpid());
		close(fd);
	}
}

static void usage(FILE *out)
{
	fprintf(out, "usage: pagetrack-demo [--size MB] [--pidfile PATH] [--ready-fd N] "
		"[--foreground]\n"
		"Build a known memory layout (doc/demo.md), print it, wait for SIGTERM/SIGINT.\n"
		"--size: MiB per region (multiple of 8, default 32). Without --foreground it\n"
		"detaches once the layout is ready.\n");
}

/* Detach: the parent returns once the child reports ready on the pipe. */
static int daemonize(void)
{
	int p[2];
	char c;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
		perror("pagetrack-demo: fork");
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		exit(read(p[0], &c, 1) == 1 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nul >= 0) {
		dup2(nul, 0);
		close(nul);
	}
	return p[1];
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pidfile = NULL, *why = "unknown", *swapmsg;
	long scale = 32, ready_fd = -1;
	int foreground = 0, created = 0, have_swap, rc = 1, c, err, daemon_fd = -1, sig;
	sigset_t set;
	char *end, *base;
	size_t total;

	while ((c = getopt_long(argc, argv, "s:p:r:fh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			scale = strtol(optarg, &end, 10);
			if (*end || scale < 8 || scale > 65536) {
				fprintf(stderr, "pagetrack-demo: --size: 8..65536 MiB\n");
				return 2;
			}
			scale = (scale + 7) / 8 * 8;	/* quarters stay 2 MiB aligned */
			break;
		case 'p': pidfile = optarg; break;
		case 'r':
			ready_fd = strtol(optarg, &end, 10);
			if (*end || ready_fd < 0 || fcntl((int)ready_fd, F_GETFD) < 0) {
				fprintf(stderr, "pagetrack-demo: --ready-fd: not an open fd\n");
				return 2;
			}
			break;
		case 'f': foreground = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (!foreground)
		daemon_fd = daemonize();
	/* Held until the layout is up: teardown runs for every stop request. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);

	err = pt_zram_swap_on((size_t)scale * 4 > 512 ? (size_t)scale * 4 : 512, &why);
	created = err == 1;
	have_swap = err >= 0;
	swapmsg = created ? "zram swap created (removed on exit)" :
		  have_swap ? "already active" : "NONE";
	if (!have_swap)
		fprintf(stderr, "pagetrack-demo: no swap (%s): the parts meant to be "
			"swapped stay in memory\n", why);

	for (int i = 0; i < R__COUNT; i++)
		regs[i].len = (size_t)scale * MIB;
	total = R__COUNT * (regs[0].len + GAP) + GAP;
	/* Find room for everything, then place regions in it with MAP_FIXED_NOREPLACE. */
	base = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED) {
		perror("pagetrack-demo: mmap");
		goto out;
	}
	munmap(base, total);
	base = (char *)(((uintptr_t)base + GAP - 1) & ~(uintptr_t)(GAP - 1));
	for (int i = 0; i < R__COUNT; i++) {
		err = build(i, base + (size_t)i * (regs[0].len + GAP));
		if (err < 0) {
			fprintf(stderr, "pagetrack-demo: building %s: %s\n", regs[i].name,
				strerror(-err));
			goto out;
		}
	}
	print_layout((size_t)scale, swapmsg, have_swap);
	if (pidfile && (err = write_pidfile(pidfile)) < 0) {
		fprintf(stderr, "pagetrack-demo: %s: %s\n", pidfile, strerror(-err));
		pidfile = NULL;
		goto out;
	}
	notify_fd((int)ready_fd);
	if (daemon_fd >= 0) {
		/* Let go of the caller's output, so `$(pagetrack-demo)` returns. */
		int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (nul >= 0) {
			dup2(nul, 1);
			dup2(nul, 2);
			close(nul);
		}
		notify_fd(daemon_fd);
		daemon_fd = -1;
	}
	if (sigwait(&set, &sig) == 0)
		rc = 0;
out:
	for (int i = 0; i < R__COUNT; i++) {
		if (!regs[i].addr)
			continue;
		if (i == R_SYSV)
			shmdt(regs[i].addr);
		else
			munmap(regs[i].addr, regs[i].len);
	}
	if (memfd >= 0)
		close(memfd);
	if (filefd >= 0)
		close(filefd);
	if (created)
		pt_zram_swap_off();
	if (pidfile)
		unlink(pidfile);
	return rc;
}
