/* SPDX-License-Identifier: MIT */
/*
 * bench_modes: what watching costs a random writer, per mode (issue 11,
 * section 5), measured in the same run, as ratios to its throughput
 * without pagetrack; and the sampler's estimate against the exact count.
 * Prints the machine it ran on.  Never asserts on time: the exit code is
 * 0 unless something failed.  See doc/bench.md ("Modes").
 *
 *   throughput: a forked child writes one byte to a random page of its
 *     SIZE MiB, as fast as it can, and counts; `pagetrack watch` watches
 *     it every INTERVAL in each mode (exact with BACKEND, --hot,
 *     --sample auto, --max-overhead 5, --backend hash) while the parent
 *     reads the count over SECONDS; PASSES passes, each after its own
 *     measure without pagetrack (the machine may be shared: the spread is
 *     printed).  Each interval the budget ran is listed: its mode, the
 *     target's estimated overhead, and what it chose next and why.
 *   estimate: the same child, slowed to write about a quarter of its
 *     pages per interval, tracked exactly (BACKEND) and sampled at once;
 *     per interval the exact count, the estimate and its 95% interval.
 * BACKEND (-b): uffd (default), softdirty or auto (a kernel without uffd
 * WP_ASYNC, as the VM lane's 6.1: scripts/vm-lane.sh --bench).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pagetrack/pagetrack.h"

#define MiB (1ULL << 20)
#define PG 4096ULL

static uint64_t size = 256 * MiB;
static uint64_t interval_ms = 500;
static double secs = 5;
static int rounds = 8;
static int passes = 2;
static const char *backend = "uffd";
static char pagetrack[PATH_MAX];

/* What `pagetrack watch --json` said of each interval (the budget's choices). */
#define MAX_IVL 64
struct ivl {
	char mode[16], next[16];
	double target_pct;
	char why[200];
};
struct watched {
	char backend[16];
	char last[16];		/* mode of the last interval, "?" if none */
	int n;			/* intervals seen (those in iv[]: at most MAX_IVL) */
	struct ivl iv[MAX_IVL];
};

struct shared {
	_Atomic uint64_t writes;
	_Atomic uint64_t per_ms;	/* 0: as fast as it can */
	_Atomic int stop;
};

static struct shared *sh;
static pid_t child = -1;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static __attribute__((noreturn)) void writer(void)
{
	uint64_t pages = size / PG, x = 0x9e3779b97f4a7c15ULL, n = 0;
	uint64_t lim_was = 0, base_n = 0, base_t = 0;
	volatile unsigned char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (p == MAP_FAILED)
		_exit(1);
	madvise((void *)p, size, MADV_NOHUGEPAGE);	/* page-sized faults, as most heaps */
	for (uint64_t i = 0; i < size; i += PG)
		p[i] = 1;
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		uint64_t lim = atomic_load_explicit(&sh->per_ms, memory_order_relaxed);

		if (lim != lim_was) {	/* a limit counts from when it is set */
			lim_was = lim;
			base_n = n;
			base_t = now_ns();
		}
		for (int k = 0; k < 1024; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			p[(x % pages) * PG + (x >> 52)]++;
		}
		n += 1024;
		atomic_store_explicit(&sh->writes, n, memory_order_relaxed);
		if (lim) {	/* no faster than lim writes per ms */
			uint64_t due = base_t + (n - base_n) * 1000000ULL / lim;

			while (now_ns() < due)
				usleep(200);
		}
	}
	_exit(0);
}

static int start_child(void)
{
	sh = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return -errno;
	child = fork();
	if (child < 0)
		return -errno;
	if (child == 0)
		writer();
	/* populated: the first writes are in */
	for (int i = 0; i < 2000 && atomic_load(&sh->writes) < 1024 * 1024; i++)
		usleep(5000);
	return 0;
}

static void stop_child(void)
{
	if (child > 0) {
		atomic_store(&sh->stop, 1);
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
}

/* The child's CPU time (utime + stime) in ns, from /proc/PID/stat. */
static uint64_t child_cpu_ns(void)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return 0;
	return (ut + st) * (1000000000ULL / (uint64_t)sysconf(_SC_CLK_TCK));
}

/*
 * Writes per second of the writer's own CPU time over @s seconds (its
 * write faults are its system time; time it waits for a CPU taken by
 * other processes of a shared machine is not), and per wall second.
 */
static double rate(double s, double *wall)
{
	uint64_t n0 = atomic_load(&sh->writes), t0 = now_ns(), c0 = child_cpu_ns(), n, c;

	usleep((useconds_t)(s * 1e6));
	n = atomic_load(&sh->writes) - n0;
	c = child_cpu_ns() - c0;
	if (wall)
		*wall = (double)n * 1e9 / (double)(now_ns() - t0);
	return c ? (double)n * 1e9 / (double)c : 0;
}

/* The string value of "@key" in @s (from @s on), unescaped into @out; false if absent. */
static bool json_get(const char *s, const char *key, char *out, size_t len)
{
	char pat[48];
	const char *p;
	size_t o = 0;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = s ? strstr(s, pat) : NULL;
	if (!p || !len)
		return false;
	for (p += strlen(pat); *p && *p != '"' && o + 1 < len; p++) {
		if (*p == '\\' && p[1])
			p++;
		out[o++] = *p;
	}
	out[o] = 0;
	return true;
}

/* One interval's line of `pagetrack watch --json` into @w. */
static void parse_interval(const char *line, struct watched *w)
{
	const char *b = strstr(line, "\"budget\":{"), *o = strstr(line, "\"target_pct\":");
	struct ivl *v = w->n < MAX_IVL ? &w->iv[w->n] : NULL;

	if (strstr(line, "\"summary\"") || !json_get(line, "mode", w->last, sizeof(w->last)))
		return;
	json_get(line, "backend", w->backend, sizeof(w->backend));
	w->n++;
	if (!v)
		return;
	snprintf(v->mode, sizeof(v->mode), "%s", w->last);
	v->target_pct = o ? atof(o + 13) : -1;
	if (!b || !json_get(b, "next_mode", v->next, sizeof(v->next)))
		snprintf(v->next, sizeof(v->next), "-");
	if (!b || !json_get(b, "reason", v->why, sizeof(v->why)))
		v->why[0] = 0;
}

/*
 * `pagetrack watch --json` on the child with @args, for a warm-up
 * interval then @secs: the writer's rate meanwhile.  @w gets what watch
 * said of each interval.
 */
static double rate_under(const char *const *args, struct watched *wd, double *wall)
{
	char iv[32], pid[16], line[8192];
	const char *argv[24];
	int n = 0, p[2];
	double r;
	pid_t w;
	FILE *f;

	snprintf(iv, sizeof(iv), "%llums", (unsigned long long)interval_ms);
	snprintf(pid, sizeof(pid), "%d", (int)child);
	argv[n++] = pagetrack;
	argv[n++] = "watch";
	argv[n++] = "--json";
	argv[n++] = "--top";
	argv[n++] = "0";
	argv[n++] = "-i";
	argv[n++] = iv;
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n++] = pid;
	argv[n] = NULL;
	memset(wd, 0, sizeof(*wd));
	snprintf(wd->last, sizeof(wd->last), "?");
	snprintf(wd->backend, sizeof(wd->backend), "?");
	if (pipe(p))
		return -1;
	w = fork();
	if (w == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(pagetrack, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	usleep((useconds_t)(interval_ms * 1500));	/* set-up and one interval */
	r = rate(secs, wall);
	kill(w, SIGINT);
	f = fdopen(p[0], "r");
	while (f && fgets(line, sizeof(line), f))
		parse_interval(line, wd);
	if (f)
		fclose(f);
	else
		close(p[0]);
	waitpid(w, NULL, 0);
	return r;
}

static void machine(void)
{
	char model[256] = "?", line[512];
	struct utsname u;
	uint64_t cost = 0;
	const char *how = "";
	int k;
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && c) {
			snprintf(model, sizeof(model), "%s", c + 2);
			model[strcspn(model, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	uname(&u);
	k = pt_fault_cost_ns(&cost, &how);
	printf("machine: %s, %ld CPUs, %s %s %s; %s write fault %llu ns (pagetrack check)\n",
	       model, sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, u.machine,
	       k == PT_FAULT_KIND_UFFD_WP ? "uffd-wp" : k == PT_FAULT_KIND_SOFT_DIRTY ?
	       "soft-dirty" : k == PT_FAULT_KIND_FIRST_TOUCH ? "first-touch" : "no",
	       (unsigned long long)cost);
	if (k != PT_FAULT_KIND_UFFD_WP)
		printf("fault cost: %s\n", how);
}

/* The intervals of one budget run: mode, estimated overhead, choice and why. */
static void print_budget(int pass, const struct watched *w)
{
	printf("budget, pass %d (%s): %d intervals\n", pass + 1, w->backend, w->n);
	for (int i = 0; i < w->n && i < MAX_IVL; i++)
		printf("  %2d %-6s target %6.1f%% -> %-6s %s\n", i + 1, w->iv[i].mode,
		       w->iv[i].target_pct, w->iv[i].next, w->iv[i].why);
}

static int part_throughput(void)
{
	const char *const m_exact[] = { "--backend", backend, NULL };
	const char *const m_hot[] = { "--backend", backend, "--hot", NULL };
	static const char *const m_sample[] = { "--sample", "auto", NULL };
	static const char *const m_budget[] = { "--max-overhead", "5", NULL };
	static const char *const m_hash[] = { "--backend", "hash", NULL };
	char exact_name[32];
	const struct {
		const char *name;
		const char *const *args;
	} modes[] = {
		{ exact_name, m_exact }, { "hot pages (--hot)", m_hot },
		{ "sample (--sample auto)", m_sample }, { "budget (--max-overhead 5)", m_budget },
		{ "hash (--backend hash)", m_hash },
	};
	enum { NMODES = sizeof(modes) / sizeof(modes[0]) };
	double none[8], r[8][NMODES], wnone[8], wr[8][NMODES], best_none = 0;
	static struct watched wd[NMODES], budget[8];

	printf("\n== throughput of a random writer (%llu MiB, one byte per write), watched every "
	       "%llu ms; %d pass%s over the modes, each pass after its own measure without "
	       "pagetrack\n", (unsigned long long)(size / MiB), (unsigned long long)interval_ms,
	       passes, passes > 1 ? "es" : "");
	snprintf(exact_name, sizeof(exact_name), "exact (%s)", backend);
	atomic_store(&sh->per_ms, 0);
	for (int k = 0; k < passes; k++) {
		none[k] = rate(secs, &wnone[k]);
		if (none[k] > best_none)
			best_none = none[k];
		for (size_t i = 0; i < NMODES; i++) {
			r[k][i] = rate_under(modes[i].args, &wd[i], &wr[k][i]);
			if (modes[i].args == m_budget)
				budget[k] = wd[i];
		}
	}
	printf("%-26s %12s %7s %8s  %s\n", "mode", "writes/cpu-s", "ratio", "wall", "per pass (cpu); "
	       "last mode");
	printf("%-26s %12.0f %7s %8s  (", "without pagetrack", best_none, "1.000", "1.000");
	for (int k = 0; k < passes; k++)
		printf("%s%.3g", k ? ", " : "", none[k]);
	printf(")\n");
	for (size_t i = 0; i < NMODES; i++) {
		double sum = 0, rsum = 0, wsum = 0;

		for (int k = 0; k < passes; k++) {
			sum += r[k][i];
			rsum += none[k] > 0 ? r[k][i] / none[k] : 0;
			wsum += wnone[k] > 0 ? wr[k][i] / wnone[k] : 0;
		}
		printf("%-26s %12.0f %7.3f %8.3f  (", modes[i].name, sum / passes, rsum / passes,
		       wsum / passes);
		for (int k = 0; k < passes; k++)
			printf("%s%.3f", k ? ", " : "", none[k] > 0 ? r[k][i] / none[k] : 0);
		printf(") %s (%s)\n", wd[i].last, wd[i].backend);
	}
	printf("ratio: mean over the passes of the writer's writes per second of its own CPU time "
	       "(its faults\nincluded) under the mode / without pagetrack just before; wall: the "
	       "same per wall second\n(on a shared machine, time it waited for a CPU counts "
	       "there)\n");
	for (int k = 0; k < passes; k++)
		print_budget(k, &budget[k]);
	return 0;
}

static int64_t exact_round(struct pt_tracker *tr, struct pt_dirty *buf)
{
	uint64_t pages = 0;
	bool more = true;

	while (more) {
		int n = pt_tracker_collect(tr, buf, 4096, &more);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			if (!(buf[i].flags & PT_DIRTY_HOLE))
				pages += (buf[i].end - buf[i].start) / PG;
		if (!n)
			break;
	}
	return (int64_t)pages;
}

static int part_estimate(void)
{
	PT_OPTS(pt_tracker_opts, to, .backend = !strcmp(backend, "softdirty") ? PT_TRACK_SOFTDIRTY :
		!strcmp(backend, "auto") ? PT_TRACK_AUTO : PT_TRACK_UFFD, .flags = PT_TRACK_NO_BARRIER);
	PT_OPTS(pt_sampler_opts, so, .seed = 1);
	PT_OPTS(pt_sampler_opts, so4, .seed = 2, .pages_per_gib = 4096);
	struct pt_dirty *buf = malloc(4096 * sizeof(*buf));
	struct pt_tracker *tr = NULL;
	struct pt_sampler *s = NULL, *s4 = NULL;
	double err_sum = 0, err4_sum = 0;
	int covered = 0, covered4 = 0, done = 0, rc = 0;

	/* about a quarter of the pages per interval: writes = -ln(0.75) x pages */
	atomic_store(&sh->per_ms, (uint64_t)(0.2877 * (double)(size / PG) / (double)interval_ms) + 1);
	printf("\n== estimate vs exact count (%llu MiB writer, ~1/4 of its pages per interval; "
	       "%s tracker and samplers at once)\n", (unsigned long long)(size / MiB), backend);
	tr = buf ? pt_tracker_create(child, &to) : NULL;
	s = tr ? pt_sampler_create(child, &so) : NULL;
	s4 = s ? pt_sampler_create(child, &so4) : NULL;
	if (!s4) {
		printf("estimate: skipped: %s\n", strerror(errno));
		rc = errno == EOPNOTSUPP ? 0 : 1;
		goto out;
	}
	printf("%-6s %10s %26s %8s %26s %8s\n", "round", "exact", "auto (512/GiB) [95%]", "error",
	       "4096/GiB [95%]", "error");
	for (int r = 1; r <= rounds; r++) {
		struct pt_sample_estimate t, t4;
		int64_t exact;
		char a[40], b[40];
		double e, e4;

		usleep((useconds_t)(interval_ms * 1000));
		exact = exact_round(tr, buf);
		if (exact < 0 || pt_sampler_collect(s, &t, NULL, 0) < 0 ||
		    pt_sampler_collect(s4, &t4, NULL, 0) < 0) {
			printf("estimate: a collect failed\n");
			rc = 1;
			break;
		}
		e = exact ? ((double)t.est - (double)exact) * 100.0 / (double)exact : 0;
		e4 = exact ? ((double)t4.est - (double)exact) * 100.0 / (double)exact : 0;
		snprintf(a, sizeof(a), "%llu [%llu-%llu]", (unsigned long long)t.est,
			 (unsigned long long)t.lo, (unsigned long long)t.hi);
		snprintf(b, sizeof(b), "%llu [%llu-%llu]", (unsigned long long)t4.est,
			 (unsigned long long)t4.lo, (unsigned long long)t4.hi);
		printf("%-6d %10lld %26s %+7.1f%% %26s %+7.1f%%\n", r, (long long)exact, a, e, b, e4);
		err_sum += e < 0 ? -e : e;
		err4_sum += e4 < 0 ? -e4 : e4;
		covered += t.lo <= (uint64_t)exact && (uint64_t)exact <= t.hi;
		covered4 += t4.lo <= (uint64_t)exact && (uint64_t)exact <= t4.hi;
		done++;
	}
	if (done)
		printf("mean |error|: auto %.1f%%, 4096/GiB %.1f%%; interval covered the exact count "
		       "%d/%d and %d/%d times (the sampler sees changed content, the tracker writes; "
		       "their intervals are back to back, not identical)\n", err_sum / done,
		       err4_sum / done, covered, done, covered4, done);
out:
	pt_sampler_free(s);
	pt_sampler_free(s4);
	pt_tracker_free(tr);
	free(buf);
	atomic_store(&sh->per_ms, 0);
	return rc;
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	char *slash;
	int opt, rc = 0, err;

	snprintf(pagetrack, sizeof(pagetrack), "%s", argv[0]);
	slash = strrchr(pagetrack, '/');
	snprintf(slash ? slash + 1 : pagetrack, sizeof(pagetrack) - (size_t)(slash ? slash + 1 - pagetrack : 0),
		 "../tools/pagetrack");
	while ((opt = getopt(argc, argv, "s:i:t:r:n:P:x:b:")) != -1) {
		switch (opt) {
		case 's': size = strtoull(optarg, NULL, 10) * MiB; break;
		case 'i': interval_ms = strtoull(optarg, NULL, 10); break;
		case 't': secs = atof(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'n': passes = atoi(optarg); break;
		case 'P': snprintf(pagetrack, sizeof(pagetrack), "%s", optarg); break;
		case 'x': only = optarg; break;
		case 'b': backend = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-s SIZE_MiB] [-i INTERVAL_ms] [-t SECONDS] "
				"[-r ROUNDS] [-n PASSES] [-P PAGETRACK] [-x throughput|estimate] "
				"[-b uffd|softdirty|auto]\n", argv[0]);
			return 2;
		}
	}
	if (size < 4 * MiB || interval_ms < 10 || secs <= 0 || rounds < 1 || passes < 1 ||
	    passes > 8 || (strcmp(backend, "uffd") && strcmp(backend, "softdirty") &&
			    strcmp(backend, "auto"))) {
		fprintf(stderr, "bench_modes: need SIZE >= 4, INTERVAL >= 10, SECONDS > 0, "
			"ROUNDS >= 1, PASSES 1 to 8, BACKEND uffd, softdirty or auto\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("\npagetrack modes bench: a watched random writer's throughput as ratios to its own "
	       "without pagetrack, same run\n");
	machine();
	if (access(pagetrack, X_OK)) {
		printf("throughput: skipped: %s not found (-P)\n", pagetrack);
		only = only ? only : "estimate";
	}
	if ((err = start_child())) {
		printf("bench_modes: cannot start the writer: %s\n", strerror(-err));
		return 1;
	}
	if (!only || !strcmp(only, "throughput"))
		rc |= part_throughput();
	if (!only || !strcmp(only, "estimate"))
		rc |= part_estimate();
	stop_child();
	return rc;
}
