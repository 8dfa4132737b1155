/* SPDX-License-Identifier: MIT */
/*
 * COW / O_DIRECT hazard stress: see cowstress.h.  Uses only the public
 * pagetrack API and libc, so the CLI can link it.
 *
 * Layout of the buffer (CS_PAGES pages, private anonymous):
 *   [0, CS_DIO)            O_DIRECT target of one reader (page p belongs
 *                          to reader p % readers), poisoned before each read
 *   [CS_DIO, 4096)         split in equal slots, one per writer thread
 * The file holds word i (8 bytes at offset 8*i) = cs_mix(i ^ salt), so a
 * reader knows every byte it must find.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cowstress.h"

#define CS_PAGE 4096UL
#define CS_PAGES 64
#define CS_DIO 2048UL			/* bytes read by O_DIRECT per page */
#define CS_FILE (4UL << 20)		/* file size */
#define CS_POISON 0xa5
#define CS_SLOT 64			/* bytes a writer writes per page per pass */
#define CS_MAXTHR 8

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

struct cs {
	const struct pt_cowstress_opts *o;
	unsigned readers, writers;
	uint8_t *buf;
	int fd;				/* O_DIRECT */
	uint64_t salt;
	atomic_bool stop;		/* readers and writers */
	atomic_bool cstop;		/* the collector: stopped first */
	struct pt_tracker *tr;
	/* results, each written by one thread */
	uint64_t reads[CS_MAXTHR], read_bad[CS_MAXTHR];
	uint64_t writes[CS_MAXTHR], write_bad[CS_MAXTHR];
	uint64_t rounds, pages, pageouts;
	int collect_err;
	pid_t child;			/* workload in a child process, or 0 */
	int pidfd;
};

struct cs_thr {
	struct cs *cs;
	unsigned idx;
};

static uint64_t cs_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t cs_rand(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	return cs_mix(*s);
}

static uint8_t cs_file_byte(uint64_t salt, uint64_t off)
{
	uint64_t w = cs_mix((off / 8) ^ salt);

	return (uint8_t)(w >> (8 * (off % 8)));
}

static bool dir_ok(const char *dir)
{
	char path[4096 + 32];
	struct statfs sf;
	void *b = NULL;
	bool ok = false;
	int fd;

	if (!dir || statfs(dir, &sf) || sf.f_type == TMPFS_MAGIC)
		return false;
	snprintf(path, sizeof(path), "%s/pt-cowprobe-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return false;
	unlink(path);
	if (posix_memalign(&b, CS_PAGE, CS_PAGE) == 0) {
		memset(b, 1, CS_PAGE);
		if (pwrite(fd, b, CS_PAGE, 0) == (ssize_t)CS_PAGE && fsync(fd) == 0) {
			int dfd;

			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			dfd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
			if (dfd >= 0) {
				ok = pread(dfd, b, CS_DIO, 0) == (ssize_t)CS_DIO;
				close(dfd);
			}
		}
	}
	free(b);
	close(fd);
	return ok;
}

int pt_cowstress_dir(char *buf, size_t len, const char **why)
{
	const char *cand[] = { getenv("PT_ODIRECT_DIR"), "/var/tmp", "/tmp", "." };

	for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		if (dir_ok(cand[i])) {
			snprintf(buf, len, "%s", cand[i]);
			return 0;
		}
	}
	if (why)
		*why = "no directory on a filesystem that supports O_DIRECT "
		       "($PT_ODIRECT_DIR, /var/tmp, /tmp, . are tmpfs or refuse O_DIRECT)";
	return -EOPNOTSUPP;
}

/* File of CS_FILE bytes with the known content; returns an O_DIRECT fd. */
static int make_file(const char *dir, uint64_t salt, char *why, size_t wlen)
{
	char path[4096 + 32];
	uint8_t *chunk;
	int fd, dfd = -1;

	snprintf(path, sizeof(path), "%s/pt-cowstress-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, wlen, "cannot create a file in %.100s: %s", dir, strerror(errno));
		return -errno;
	}
	unlink(path);
	chunk = malloc(1 << 16);
	if (!chunk)
		goto out;
	for (uint64_t off = 0; off < CS_FILE; off += 1 << 16) {
		for (uint64_t i = 0; i < (1 << 16); i++)
			chunk[i] = cs_file_byte(salt, off + i);
		if (pwrite(fd, chunk, 1 << 16, (off_t)off) != (1 << 16)) {
			snprintf(why, wlen, "cannot write the test file: %s", strerror(errno));
			goto out;
		}
	}
	if (fsync(fd))
		goto out;
	/* drop the page cache so reads really go to the device by DMA */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	dfd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (dfd < 0)
		snprintf(why, wlen, "O_DIRECT open refused in %.100s: %s", dir, strerror(errno));
out:
	free(chunk);
	close(fd);
	return dfd < 0 ? -EOPNOTSUPP : dfd;
}

static void *reader(void *arg)
{
	struct cs_thr *t = arg;
	struct cs *cs = t->cs;
	uint64_t rng = cs->o->seed ^ (0x1000 + t->idx);
	unsigned mine = (CS_PAGES - t->idx + cs->readers - 1) / cs->readers;

	while (!atomic_load_explicit(&cs->stop, memory_order_relaxed)) {
		unsigned p = t->idx + cs->readers * (unsigned)(cs_rand(&rng) % mine);
		uint64_t off = (cs_rand(&rng) % ((CS_FILE - CS_DIO) / 512)) * 512;
		uint8_t *dst = cs->buf + (size_t)p * CS_PAGE;
		ssize_t n;
		uint64_t bad = 0;

		memset(dst, CS_POISON, CS_DIO);
		n = pread(cs->fd, dst, CS_DIO, (off_t)off);
		if (n != (ssize_t)CS_DIO) {
			if (n < 0 && errno == EINTR)
				continue;
			bad = CS_DIO;	/* a failed read counts as lost data */
		} else {
			for (uint64_t i = 0; i < CS_DIO; i++)
				bad += dst[i] != cs_file_byte(cs->salt, off + i);
		}
		cs->read_bad[t->idx] += bad;
		/* one writer per counter; the main thread reads it while running */
		__atomic_store_n(&cs->reads[t->idx], cs->reads[t->idx] + 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *writer(void *arg)
{
	struct cs_thr *t = arg;
	struct cs *cs = t->cs;
	size_t slot = (CS_PAGE - CS_DIO) / cs->writers;
	size_t base = CS_DIO + t->idx * slot;
	uint64_t last[CS_PAGES] = { 0 };
	uint64_t gen = 0;

	if (slot > CS_SLOT)
		slot = CS_SLOT;
	slot &= ~7UL;
	while (!atomic_load_explicit(&cs->stop, memory_order_relaxed)) {
		gen++;
		for (unsigned p = 0; p < CS_PAGES; p++) {
			volatile uint64_t *w = (volatile uint64_t *)(cs->buf + p * CS_PAGE + base);
			uint64_t v = (gen << 8) | p;

			for (size_t i = 0; i < slot / 8; i++) {
				if (w[i] != last[p]) {
					uint64_t x = w[i] ^ last[p];

					for (int b = 0; b < 8; b++)
						cs->write_bad[t->idx] += ((x >> (8 * b)) & 0xff) != 0;
				}
				w[i] = v;
			}
			last[p] = v;
			__atomic_store_n(&cs->writes[t->idx], cs->writes[t->idx] + 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

static void *collector(void *arg)
{
	struct cs *cs = arg;
	struct pt_dirty d[256];
	uint64_t rng = cs->o->seed ^ 0x77;

	while (!atomic_load_explicit(&cs->cstop, memory_order_relaxed)) {
		bool more = true;

		while (more) {
			int n = pt_tracker_collect(cs->tr, d, 256, &more);

			if (n < 0) {
				cs->collect_err = n;
				return NULL;
			}
			for (int i = 0; i < n; i++)
				cs->pages += (d[i].end - d[i].start) / CS_PAGE;
		}
		__atomic_store_n(&cs->rounds, cs->rounds + 1, __ATOMIC_RELAXED);
		if (cs->o->pageout) {
			unsigned p = (unsigned)(cs_rand(&rng) % (CS_PAGES - 3));

			struct iovec iov = { cs->buf + (size_t)p * CS_PAGE, 4 * CS_PAGE };

			if (cs->child ? syscall(SYS_process_madvise, cs->pidfd, &iov, 1, MADV_PAGEOUT, 0) >= 0
				      : madvise(iov.iov_base, iov.iov_len, MADV_PAGEOUT) == 0)
				cs->pageouts++;
		}
	}
	return NULL;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static uint64_t cs_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool work_done(const struct cs *cs, const struct pt_cowstress_opts *o)
{
	uint64_t reads = 0, writes = 0;

	for (unsigned i = 0; i < CS_MAXTHR; i++) {
		reads += __atomic_load_n(&cs->reads[i], __ATOMIC_RELAXED);
		writes += __atomic_load_n(&cs->writes[i], __ATOMIC_RELAXED);
	}
	return reads >= o->min_reads && writes >= o->min_writes &&
	       __atomic_load_n(&cs->rounds, __ATOMIC_RELAXED) >= o->min_rounds;
}

/*
 * Let the stress run: until the work targets are reached, checked every
 * few ms, with o->ms as the cap; without targets, for o->ms.  The work
 * keeps a slow machine (expensive page faults, TCG) from failing a
 * fixed-duration run, and a fast one from stopping early.  True when the
 * cap ended it before the targets.
 */
static bool run_for(const struct cs *cs, const struct pt_cowstress_opts *o)
{
	uint64_t t0 = cs_now_ms();

	if (!o->min_reads && !o->min_writes && !o->min_rounds) {
		sleep_ms(o->ms);
		return false;
	}
	for (;;) {
		if (work_done(cs, o))
			return false;
		if (cs_now_ms() - t0 >= o->ms)
			return true;
		sleep_ms(5);
	}
}

/*
 * Soft-dirty cannot track the calling process while it has other threads
 * (it cannot freeze itself): the readers and writers then run in a child
 * process, tracked from here.  Returns the child's pid, or -errno.
 */
static pid_t start_child(struct cs *cs, struct cs_thr *args)
{
	pthread_t thr[2 * CS_MAXTHR];
	int p[2];
	pid_t pid;
	char c = 0;

	if (pipe(p))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		unsigned n = 0;

		close(p[0]);
		cs->buf = mmap(NULL, CS_PAGES * CS_PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (cs->buf == MAP_FAILED)
			_exit(1);
		madvise(cs->buf, CS_PAGES * CS_PAGE, MADV_NOHUGEPAGE);
		memset(cs->buf, 0, CS_PAGES * CS_PAGE);
		for (unsigned i = 0; i < cs->readers + cs->writers; i++) {
			bool rd = i < cs->readers;

			args[i] = (struct cs_thr){ .cs = cs, .idx = rd ? i : i - cs->readers };
			if (pthread_create(&thr[n], NULL, rd ? reader : writer, &args[i]) == 0)
				n++;
		}
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		while (!atomic_load(&cs->stop))
			sleep_ms(1);
		for (unsigned i = 0; i < n; i++)
			pthread_join(thr[i], NULL);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1) {
		close(p[0]);
		waitpid(pid, NULL, 0);
		return -ECHILD;
	}
	close(p[0]);
	return pid;
}

int pt_cowstress_run(const struct pt_cowstress_opts *o, struct pt_cowstress_result *r)
{
	PT_OPTS(pt_tracker_opts, to);
	pthread_t thr[2 * CS_MAXTHR + 1];
	struct cs_thr args[2 * CS_MAXTHR];
	struct cs cs_local = { .o = o, .fd = -1, .pidfd = -1 }, *csp = &cs_local;
	bool in_child = o->backend == PT_TRACK_SOFTDIRTY;
	size_t nthr = 0;
	bool thr_is_collector = false;	/* thr[nthr - 1] is the collector */
	char dir[4096];
	const char *why = NULL;
	uint64_t t0;
	int err = 0;

	memset(r, 0, sizeof(*r));
	if (in_child) {	/* results cross the fork */
		csp = mmap(NULL, sizeof(*csp), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			   -1, 0);
		if (csp == MAP_FAILED)
			return -errno;
		*csp = cs_local;
	}
	struct cs *cs = csp;
	cs->readers = o->readers ? o->readers : 2;
	cs->writers = o->writers ? o->writers : 2;
	if (cs->readers > CS_MAXTHR || cs->writers > CS_MAXTHR) {
		snprintf(r->why, sizeof(r->why), "at most %d readers and writers", CS_MAXTHR);
		return -EINVAL;
	}
	if (o->dir) {
		snprintf(dir, sizeof(dir), "%s", o->dir);
	} else if (pt_cowstress_dir(dir, sizeof(dir), &why)) {
		snprintf(r->why, sizeof(r->why), "%s", why);
		return -EOPNOTSUPP;
	}
	cs->salt = cs_mix(o->seed ^ 0xc0ffee);
	cs->fd = make_file(dir, cs->salt, r->why, sizeof(r->why));
	if (cs->fd < 0)
		return cs->fd;
	if (in_child) {
		pid_t pid = start_child(cs, args);

		if (pid < 0) {
			err = pid;
			snprintf(r->why, sizeof(r->why), "workload process: %s", strerror(-err));
			goto out;
		}
		cs->child = pid;
		cs->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	} else {
		cs->buf = mmap(NULL, CS_PAGES * CS_PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (cs->buf == MAP_FAILED) {
			err = -errno;
			snprintf(r->why, sizeof(r->why), "mmap: %s", strerror(errno));
			cs->buf = NULL;
			goto out;
		}
		/* keep the buffer out of any THP so every page is its own folio */
		madvise(cs->buf, CS_PAGES * CS_PAGE, MADV_NOHUGEPAGE);
		memset(cs->buf, 0, CS_PAGES * CS_PAGE);
	}
	/* track only the buffer: rounds are short, so protection is frequent */
	to.backend = o->backend;
	to.start = (uint64_t)(uintptr_t)cs->buf;
	to.end = to.start + CS_PAGES * CS_PAGE;
	cs->tr = pt_tracker_create(cs->child, &to);
	if (!cs->tr) {
		err = -errno;
		snprintf(r->why, sizeof(r->why), "cannot create a %s tracker: %s",
			 pt_track_backend_name(o->backend), strerror(errno));
		if (err == -EOPNOTSUPP || err == -ENOSYS)
			err = -EOPNOTSUPP;
		goto out;
	}
	for (unsigned i = 0; !cs->child && i < cs->readers + cs->writers; i++) {
		bool rd = i < cs->readers;

		args[i] = (struct cs_thr){ .cs = cs, .idx = rd ? i : i - cs->readers };
		if ((err = -pthread_create(&thr[nthr], NULL, rd ? reader : writer, &args[i]))) {
			snprintf(r->why, sizeof(r->why), "pthread_create: %s", strerror(-err));
			goto stop;
		}
		nthr++;
	}
	if ((err = -pthread_create(&thr[nthr], NULL, collector, cs))) {
		snprintf(r->why, sizeof(r->why), "pthread_create: %s", strerror(-err));
		goto stop;
	}
	nthr++;
	thr_is_collector = true;
	t0 = cs_now_ms();
	r->capped = run_for(cs, o);
	r->elapsed_ms = cs_now_ms() - t0;
stop:
	/* the collector first: a workload child must outlive its last round */
	atomic_store(&cs->cstop, true);
	if (nthr && thr_is_collector)
		pthread_join(thr[--nthr], NULL);
	atomic_store(&cs->stop, true);
	for (size_t i = 0; i < nthr; i++)
		pthread_join(thr[i], NULL);
	if (cs->child > 0) {
		waitpid(cs->child, NULL, 0);
		cs->child = -1;	/* reaped */
	}
	for (unsigned i = 0; i < CS_MAXTHR; i++) {
		r->reads += cs->reads[i];
		r->read_bad += cs->read_bad[i];
		r->writes += cs->writes[i];
		r->write_bad += cs->write_bad[i];
	}
	r->rounds = cs->rounds;
	r->pages_reported = cs->pages;
	r->pageouts = cs->pageouts;
	r->collect_err = cs->collect_err;
out:
	pt_tracker_free(cs->tr);
	if (cs->child > 0) {	/* stopped early: set-up failed after the fork */
		atomic_store(&cs->stop, true);
		waitpid(cs->child, NULL, 0);
	} else if (cs->buf && !in_child) {	/* in_child: the buffer is the child's */
		munmap(cs->buf, CS_PAGES * CS_PAGE);
	}
	if (cs->pidfd >= 0)
		close(cs->pidfd);
	if (cs->fd >= 0)
		close(cs->fd);
	if (in_child)
		munmap(csp, sizeof(*csp));
	return err;
}
