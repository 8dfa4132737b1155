/* SPDX-License-Identifier: MIT */
/*
 * bench_migrate: loopback migration throughput (pt_migrate_send into
 * pt_migrate_receive, public API only) against, measured in the same
 * run: raw process_vm_readv of the same memory, a raw TCP loopback copy
 * of as many bytes, and the two chained (readv then send, one thread).
 * Prints rates and ratios, never asserts on time: the exit code is 0
 * unless something failed.  See doc/bench.md ("Migration").
 *
 * The target is a forked child holding SIZE (default 256 MiB) of private
 * anonymous memory and a /dev/shm object of SIZE, every page written
 * with incompressible data; it sleeps.  Per rep (the best is reported):
 *   readv        process_vm_readv of the private area (4 x 1 MiB iovecs)
 *   tcp          SIZE bytes over a loopback TCP socket to a reader thread
 *   readv+tcp    the two, one thread (what a minimal migrator would do)
 *   send plain   pt_migrate_send --insecure of the private area (--area)
 *                into pt_migrate_receive -o FILE (DIR), start to commit ack
 *   send key     the same, encrypted (libsodium secretstream)
 *   object key   --object into --into /dev/shm/..., encrypted
 * Options: -n REPS (3) -s SIZE_MiB (256) -d DIR (/tmp)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pagetrack/pagetrack.h"

#define MiB (1ULL << 20)

static int reps = 3;
static uint64_t size = 256 * MiB;
static const char *dir = "/tmp";
static int failed;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static double gbs(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0;
}

/* ---- the target ---- */

static void fill(unsigned char *p, uint64_t len, uint64_t seed)
{
	uint64_t x = seed | 1;

	for (uint64_t i = 0; i < len / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		((uint64_t *)p)[i] = x;
	}
}

static pid_t target(char *shm, uint64_t *addr)
{
	int pfd[2];

	if (pipe(pfd))
		return -1;
	pid_t pid = fork();

	if (pid == 0) {
		unsigned char *a = mmap(NULL, size, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int fd = open(shm, O_RDWR | O_CREAT | O_EXCL, 0600);
		unsigned char *s = MAP_FAILED;

		if (fd >= 0 && ftruncate(fd, (off_t)size) == 0)
			s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (a == MAP_FAILED || s == MAP_FAILED)
			_exit(1);
		fill(a, size, 0x1234);
		fill(s, size, 0x5678);
		uint64_t v = (uint64_t)(uintptr_t)a;

		if (write(pfd[1], &v, sizeof(v)) != sizeof(v))
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	if (pid < 0 || read(pfd[0], addr, sizeof(*addr)) != sizeof(*addr)) {
		close(pfd[0]);
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		return -1;
	}
	close(pfd[0]);
	return pid;
}

/* ---- raw references ---- */

static uint64_t raw_readv(pid_t pid, uint64_t addr, int sock)
{
	static unsigned char buf[4 * MiB];
	uint64_t t0 = now_ns();

	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		struct iovec l[4], r[4];

		for (int i = 0; i < 4; i++) {
			l[i].iov_base = buf + i * MiB;
			l[i].iov_len = MiB;
			r[i].iov_base = (void *)(uintptr_t)(addr + off + i * MiB);
			r[i].iov_len = MiB;
		}
		if (process_vm_readv(pid, l, 4, r, 4, 0) != (ssize_t)sizeof(buf)) {
			failed = 1;
			return 0;
		}
		for (size_t n = 0; sock >= 0 && n < sizeof(buf);) {
			ssize_t w = send(sock, buf + n, sizeof(buf) - n, MSG_NOSIGNAL);

			if (w <= 0) {
				failed = 1;
				return 0;
			}
			n += (size_t)w;
		}
	}
	return now_ns() - t0;
}

static void *sink(void *arg)
{
	int fd = *(int *)arg;
	static unsigned char buf[1 * MiB];

	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
	close(fd);
	return NULL;
}

/* A connected loopback pair: *@w writes, a thread drains the other end. */
static int tcp_pair(int *w, pthread_t *th, int *rfd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &al))
		return -1;
	*w = socket(AF_INET, SOCK_STREAM, 0);
	if (*w < 0 || connect(*w, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	*rfd = accept(l, NULL, NULL);
	close(l);
	if (*rfd < 0 || pthread_create(th, NULL, sink, rfd))
		return -1;
	return 0;
}

static uint64_t raw_tcp(pid_t pid, uint64_t addr, bool with_readv)
{
	static unsigned char buf[4 * MiB];
	pthread_t th;
	int w, r;
	uint64_t t;

	if (tcp_pair(&w, &th, &r)) {
		failed = 1;
		return 0;
	}
	memset(buf, 0x5a, sizeof(buf));
	if (with_readv) {
		t = raw_readv(pid, addr, w);
	} else {
		uint64_t t0 = now_ns();

		for (uint64_t off = 0; off < size; off += sizeof(buf))
			for (size_t n = 0; n < sizeof(buf);) {
				ssize_t x = send(w, buf + n, sizeof(buf) - n, MSG_NOSIGNAL);

				if (x <= 0) {
					failed = 1;
					break;
				}
				n += (size_t)x;
			}
		t = now_ns() - t0;
	}
	shutdown(w, SHUT_WR);
	pthread_join(th, NULL);
	close(w);
	return t;
}

/* ---- migration ---- */

struct rx {
	const char *out, *into;
	const unsigned char *key;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char addr[128];
	int rc;
	char err[512];
};

static void on_listen(const char *addr, void *ctx)
{
	struct rx *x = ctx;

	pthread_mutex_lock(&x->mu);
	snprintf(x->addr, sizeof(x->addr), "%s", addr);
	pthread_cond_signal(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

static void *receiver(void *arg)
{
	struct rx *x = arg;
	struct pt_migrate_recv_opts o = {
		.sz = sizeof(o), .flags = x->key ? 0 : PT_MIGRATE_INSECURE, .key = x->key,
		.key_len = x->key ? 32 : 0, .output = x->out, .into = x->into,
		.listening = on_listen, .ctx = x,
	};

	x->rc = pt_migrate_receive("127.0.0.1:0", &o, NULL, x->err, sizeof(x->err));
	if (x->rc) {
		on_listen("", x);	/* never listened: unblock the sender */
	}
	return NULL;
}

static uint64_t r0_end;

static void on_round(const struct pt_migrate_round *r, void *ctx)
{
	(void)ctx;
	if (r->round == 0)
		r0_end = now_ns();
}

/* Start to the commit ack; *@r0: start to the end of round 0 (everything sent once). */
static uint64_t migrate(pid_t pid, uint64_t addr, const unsigned char *key, const char *obj,
			uint64_t *wire, uint64_t *r0)
{
	char out[512], into[128];
	struct rx x = { .key = key, .mu = PTHREAD_MUTEX_INITIALIZER,
			.cv = PTHREAD_COND_INITIALIZER };
	pthread_t th;

	snprintf(out, sizeof(out), "%s/bench-migrate-%d.img", dir, (int)getpid());
	snprintf(into, sizeof(into), "/dev/shm/bench-migrate-%d-dst", (int)getpid());
	unlink(out);
	if (obj)
		x.into = into;
	else
		x.out = out;
	if (pthread_create(&th, NULL, receiver, &x)) {
		failed = 1;
		return 0;
	}
	pthread_mutex_lock(&x.mu);
	while (!x.addr[0] && !x.rc)
		pthread_cond_wait(&x.cv, &x.mu);
	pthread_mutex_unlock(&x.mu);
	uint64_t t = 0;

	if (x.addr[0]) {
		const char *objs[1] = { obj };
		uint64_t areas[1] = { addr };
		struct pt_migrate_send_opts so = {
			.sz = sizeof(so), .flags = key ? 0 : PT_MIGRATE_INSECURE,
			.key = key, .key_len = key ? 32 : 0,
			.objects = obj ? objs : NULL, .nobjects = obj ? 1 : 0,
			.areas = obj ? NULL : areas, .nareas = obj ? 0 : 1,
			.on_round = on_round,
		};
		struct pt_migrate_report rep = { .sz = sizeof(rep) };
		char err[512] = "";
		uint64_t t0 = now_ns();
		int e = pt_migrate_send(pid, x.addr, &so, &rep, err, sizeof(err));

		t = now_ns() - t0;
		*r0 = r0_end > t0 ? r0_end - t0 : 0;
		*wire = rep.total_bytes;
		if (e) {
			fprintf(stderr, "bench_migrate: send: %s\n", err);
			failed = 1;
			t = 0;
		}
	}
	pthread_join(th, NULL);
	if (x.rc) {
		fprintf(stderr, "bench_migrate: receive: %s\n", x.err);
		failed = 1;
		t = 0;
	}
	unlink(out);
	unlink(into);
	for (int i = 0; i < 64; i++) {	/* -o writes a chain: out.live-N per round */
		char live[540];

		snprintf(live, sizeof(live), "%s.live-%d", out, i);
		unlink(live);
	}
	return t;
}

static void row(const char *name, uint64_t bytes, uint64_t ns, double ref)
{
	double v = gbs(bytes, ns);

	printf("%-38s %9.2f GB/s %8.2f\n", name, v, ref > 0 ? v / ref : 0);
}

static uint64_t best(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

int main(int argc, char **argv)
{
	int opt;

	while ((opt = getopt(argc, argv, "n:s:d:")) != -1) {
		switch (opt) {
		case 'n': reps = atoi(optarg); break;
		case 's': size = strtoull(optarg, NULL, 0) * MiB; break;
		case 'd': dir = optarg; break;
		default:
			fprintf(stderr, "usage: bench_migrate [-n REPS] [-s SIZE_MiB] [-d DIR]\n");
			return 2;
		}
	}
	if (reps < 1 || size < 4 * MiB || size % (4 * MiB)) {
		fprintf(stderr, "bench_migrate: -n >= 1, -s a multiple of 4\n");
		return 2;
	}
	if (getuid() != 0) {
		printf("bench_migrate: SKIP (not root: ptrace and the tracker need it)\n");
		return 0;
	}
	char shm[128];
	unsigned char key[32];
	uint64_t addr = 0;

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 37 + 11);
	snprintf(shm, sizeof(shm), "/dev/shm/bench-migrate-%d-src", (int)getpid());
	pid_t pid = target(shm, &addr);

	if (pid < 0) {
		fprintf(stderr, "bench_migrate: target failed\n");
		unlink(shm);
		return 1;
	}
	uint64_t t_rv = 0, t_tcp = 0, t_both = 0, t_plain = 0, t_key = 0, t_obj = 0, wire = 0, w2;
	uint64_t r_plain = 0, r_key = 0, r_obj = 0, r;

	for (int rep = 0; rep < reps && !failed; rep++) {
		t_rv = best(t_rv, raw_readv(pid, addr, -1));
		t_tcp = best(t_tcp, raw_tcp(pid, addr, false));
		t_both = best(t_both, raw_tcp(pid, addr, true));
		t_plain = best(t_plain, migrate(pid, addr, NULL, NULL, &wire, &r));
		r_plain = best(r_plain, r);
		t_key = best(t_key, migrate(pid, addr, key, NULL, &w2, &r));
		r_key = best(r_key, r);
		t_obj = best(t_obj, migrate(pid, addr, key, shm, &w2, &r));
		r_obj = best(r_obj, r);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(shm);
	printf("\nMigration over loopback: %llu MiB, best of %d (ratio: to readv+tcp)\n",
	       (unsigned long long)(size / MiB), reps);
	printf("%-38s %14s %8s\n", "", "rate", "ratio");
	double ref = gbs(size, t_both);

	row("raw process_vm_readv", size, t_rv, ref);
	row("raw TCP loopback copy", size, t_tcp, ref);
	row("raw readv + TCP (one thread)", size, t_both, ref);
	row("pagetrack send --insecure (area)", size, t_plain, ref);
	row("pagetrack send --key (area)", size, t_key, ref);
	row("pagetrack send --key (object --into)", size, t_obj, ref);
	row("  round 0 only, --insecure (area)", size, r_plain, ref);
	row("  round 0 only, --key (area)", size, r_key, ref);
	row("  round 0 only, --key (object)", size, r_obj, ref);
	printf("(send: start to the commit ack, tracker creation, the receiver's image\n"
	       " write into %s included; %llu bytes on the wire for %llu MiB)\n", dir,
	       (unsigned long long)wire, (unsigned long long)(size / MiB));
	return failed;
}
