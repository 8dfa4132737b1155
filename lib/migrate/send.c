// SPDX-License-Identifier: MIT
/*
 * pt_migrate_send(): pre-copy rounds of a running process's memory to a
 * receiver (doc/migration-protocol.md), then the switch-over.
 *
 * What each round sends:
 *  - private areas: round 0 everything, then the ranges the tracker
 *    reported written, plus the parts of areas that were not in the
 *    previous round's layout (new or grown areas);
 *  - stored objects (shmem, memfd, SysV, /dev/shm files, hugetlbfs,
 *    deleted files) and --object objects: read whole every round
 *    through the object itself (pt_copy_object: swap-aware), each page
 *    compared with the XXH3 of what was last sent for it; changed pages
 *    are sent.  No tracker is trusted for objects: parts of an object
 *    that the target does not map, and writes by other processes or by
 *    write(2), are seen all the same.  Never stale, at the price of
 *    reading the object every round (doc/migration-protocol.md,
 *    "Objects").
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sockios.h>
#include <xxhash.h>

#include "migrate.h"
#include "process/freeze.h"

#define P PT_PAGE_SIZE
#define DIRTY_CAP 4096u
/* --timeout: a record begun at the deadline may finish within this */
#define CUT_GRACE_NS 2000000000ULL
/* --timeout --force-switchover: the cut round's acknowledgement within
   this (plus what is in flight at the measured rate) */
#define CUT_ACK_MS 5000u
/*
 * After COMMIT (doc/migration-protocol.md, "Timeouts"): a version 2
 * receiver says COMMIT_PROGRESS every second until it acknowledges; this
 * much silence (or the idle timeout, when shorter) ends the wait, the
 * outcome unknown.  The whole wait stays bounded by COMMIT_WAIT_MS (or
 * the idle timeout, when longer), keepalives or not.
 */
#define COMMIT_SILENCE_MS 10000u
#define COMMIT_WAIT_MS 600000u

struct mobj {
	struct pt_image_object o;	/* as sent in LAYOUT (name owned here) */
	char *name;
	uint32_t vma;			/* a mapping of it in the current layout */
	bool present;			/* mapped in the current layout */
	uint64_t npages;		/* hash/kind arrays */
	uint64_t *hash;
	uint8_t *kind;			/* 0: never sent */
	uint64_t changed;		/* pages sent by the last scan */
};

struct msend {
	pid_t pid;
	struct pt_migrate_send_opts o;
	struct pt_migrate_report *rep;
	char *err;
	size_t errlen;
	struct pt__mig_conn c;
	bool connected;
	struct pt_copier *cp;
	struct pt_tracker *tr;
	struct pt_target *t;		/* objects mode: the layout, without a tracker */
	struct pt__throttle *thr;
	unsigned thr_level;
	struct pt_vma *v;		/* the layout of this round */
	size_t nv;
	bool *sel;			/* v[i] sent as a private area */
	struct pt_image_area *areas;	/* LAYOUT areas (sel ones + shared areas of objects) */
	size_t na;
	uint32_t *area_vma;
	struct mobj *objs;
	size_t no;
	struct { uint64_t start, end; } *prev;	/* private areas of the previous round */
	size_t nprev;
	struct pt_dirty *d;		/* pending dirty ranges */
	size_t nd, dcap;
	bool objects_mode;
	bool trust;			/* PT_MIGRATE_TRUST_SHARED */
	uint64_t idle_ms;		/* the idle timeout between frames */
	bool cut;			/* a round was cut at the deadline: its
					   pages go again in the final round */
	bool ack_late;			/* the deadline passed waiting for an ACK */
	/* the frame being assembled */
	unsigned char head[PT_MIG_PAGES_HEAD];
	uint64_t round_pages, round_changed_obj;
	uint64_t frames, pages_total;
	uint32_t owner_type, owner;
	struct mobj *cur;		/* object being scanned */
	uint64_t scan_ns;
	/* rates */
	bool compress;
	uint64_t z_bytes, z_ns;		/* compression speed sample */
	uint64_t z_in, z_out;		/* what compressing saved lately */
	uint64_t z_off_until;		/* bytes_out before which not to try again */
	uint64_t w_bytes0, w_ns0;	/* link-rate window start */
	uint64_t link_bps;
	uint64_t bw_bps;
};

static int fail(struct msend *s, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct msend *s, int e, const char *fmt, ...)
{
	va_list ap;

	if (s->err && s->errlen && !s->err[0]) {
		va_start(ap, fmt);
		vsnprintf(s->err, s->errlen, fmt, ap);
		va_end(ap);
	}
	return e < 0 ? e : -EIO;
}

/* ---- connecting ---- */

/* connect() bounded by the idle timeout and the deadline (-ETIMEDOUT, -ETIME). */
static int connect_wait(struct msend *s, int fd, const struct addrinfo *ai)
{
	uint64_t end = pt__now_ns() + s->idle_ms * 1000000, dl = s->c.deadline_ns;
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int err = 0;
	socklen_t l = sizeof(err);

	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	for (;;) {
		uint64_t now = pt__now_ns(), lim = dl && dl < end ? dl : end;

		if (now >= lim)
			return lim == dl ? -ETIME : -ETIMEDOUT;
		int r = poll(&p, 1, (int)((lim - now + 999999) / 1000000));

		if (r > 0)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l))
		return -errno;
	return -err;
}

static int connect_to(struct msend *s, const char *to, int *fdp)
{
	char host[256], port[16];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	int fd = -1, e;

	if (pt__mig_split_addr(to, host, sizeof(host), port, sizeof(port)))
		return fail(s, -EINVAL, "bad address '%s' (HOST:PORT)", to);
	e = getaddrinfo(host, port, &hints, &res);
	if (e)
		return fail(s, -EHOSTUNREACH, "%s: %s", host, gai_strerror(e));
	e = -ECONNREFUSED;
	for (ai = res; ai; ai = ai->ai_next) {
		if ((s->o.flags & PT_MIGRATE_INSECURE) && !pt__mig_is_loopback(ai->ai_addr)) {
			e = -EPERM;
			continue;
		}
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			e = -errno;
			continue;
		}
		e = connect_wait(s, fd, ai);
		if (!e)
			break;
		close(fd);
		fd = -1;
		if (e == -ETIME || e == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return e == -EPERM ? fail(s, e, "--insecure is allowed on loopback only (%s)", host)
		       : e == -ETIME ? fail(s, e, "connecting to %s: no answer by the --timeout", to)
		       : e == -ETIMEDOUT ? fail(s, e, "connecting to %s: no answer (timeout)", to)
				   : fail(s, e, "connecting to %s: %s", to, strerror(-e));
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
	*fdp = fd;
	return 0;
}

/* After a failed write or read: the receiver's ERROR frame, if it sent one. */
static void peer_error(struct msend *s)
{
	struct pt__mig_frame f;
	char keep[512];

	snprintf(keep, sizeof(keep), "%s", s->err ? s->err : "");
	if (s->err && s->errlen)
		s->err[0] = 0;
	s->c.err = s->err;
	s->c.idle_timeout_ms = 300;
	s->c.deadline_ns = 0;
	/* keepalives queued in the final round are not counted */
	for (int i = 0, ka = 0; i < 64; i++) {
		if (pt__mig_recv(&s->c, &f))
			break;
		if (f.type == PT_MIG_COMMIT_PROGRESS && ka++ < 100000) {
			i--;
			continue;
		}
		if (f.type == PT_MIG_ERROR || f.type == PT_MIG_ABORT) {
			if (s->err && s->errlen)
				snprintf(s->err, s->errlen, "the receiver failed: %.*s",
					 (int)(f.len < 400 ? f.len : 400), (const char *)f.payload);
			return;
		}
	}
	if (s->err && s->errlen)
		snprintf(s->err, s->errlen, "%s", keep);
}

static int xmit(struct msend *s, uint32_t type, const void *head, size_t n1, const void *body,
		size_t n2, bool compress)
{
	compress = compress && s->c.bytes_out >= s->z_off_until;
	uint64_t t0 = compress ? pt__now_ns() : 0;
	int e = pt__mig_send(&s->c, type, head, n1, body, n2, compress, s->o.level);

	if (compress && !e) {
		s->z_bytes += n2;
		s->z_ns += pt__now_ns() - t0;
		/* the frame just sent: flags and length in the connection's buffer */
		s->z_in += n2;
		s->z_out += (s->c.zbuf[7] & PT_MIG_F_ZSTD) ? pt__get32(s->c.zbuf + 16) - n1 : n2;
		if (s->z_in >= (8u << 20)) {
			/* incompressible lately: do not try for the next 64 MiB */
			if (s->z_out > s->z_in - s->z_in / 8)
				s->z_off_until = s->c.bytes_out + (64u << 20);
			s->z_in = s->z_out = 0;
		}
	}
	if (e) {
		/* at the deadline: no time to read (else the receiver's ERROR
		   frame, if it sent one, says why) */
		if (e != -ETIME)
			peer_error(s);
		return e;
	}
	s->frames++;
	/* the link rate: bytes over time blocked writing, per 4 MiB window */
	if (s->c.bytes_out - s->w_bytes0 >= (4u << 20)) {
		uint64_t dn = s->c.write_ns - s->w_ns0, db = s->c.bytes_out - s->w_bytes0;

		s->link_bps = dn ? (uint64_t)((double)db * 1e9 / (double)dn) : UINT64_MAX;
		s->w_bytes0 = s->c.bytes_out;
		s->w_ns0 = s->c.write_ns;
		uint64_t zbps = s->z_ns ? (uint64_t)((double)s->z_bytes * 1e9 / (double)s->z_ns)
					: 300000000ULL;
		s->compress = !(s->o.flags & PT_MIGRATE_NO_COMPRESS) && s->link_bps < zbps;
	}
	return 0;
}

static int expect(struct msend *s, uint32_t what, uint32_t round, struct pt__mig_frame *f)
{
	int e = pt__mig_recv(&s->c, f);

	if (e)
		return e;
	if (f->type == PT_MIG_ERROR || f->type == PT_MIG_ABORT)
		return fail(s, -EIO, "the receiver failed: %.*s", (int)(f->len < 400 ? f->len : 400),
			    (const char *)f->payload);
	if (f->type != PT_MIG_ACK || f->len < PT_MIG_ACK_LEN || pt__get32(f->payload) != what ||
	    pt__get32(f->payload + 4) != round)
		return fail(s, -EPROTO, "protocol error: unexpected frame %u from the receiver",
			    f->type);
	return 0;
}

/*
 * COMMIT sent: wait for its acknowledgement.  0 (committed); -errno with
 * result ERROR when the receiver said it failed; else the outcome is
 * unknown (result COMMIT_UNKNOWN): silence, a closed connection, a
 * garbled answer.
 */
static int wait_commit(struct msend *s, uint32_t round, bool frozen)
{
	bool ka = s->c.version >= 2;
	uint64_t total = s->idle_ms > COMMIT_WAIT_MS ? s->idle_ms : COMMIT_WAIT_MS;
	uint64_t silence = ka ? (s->idle_ms < COMMIT_SILENCE_MS ? s->idle_ms : COMMIT_SILENCE_MS)
			      : total;
	uint64_t t0 = pt__now_ns(), end = t0 + total * 1000000, heard = t0, bytes = 0;
	uint32_t phase = 0, n = 0;
	struct pt__mig_frame f;
	int e;

	for (;;) {
		uint64_t now = pt__now_ns();

		if (now >= end) {
			e = -ETIMEDOUT;
			break;
		}
		uint64_t left = (end - now + 999999) / 1000000;

		s->c.idle_timeout_ms = left < silence ? left : silence;
		e = pt__mig_recv(&s->c, &f);
		if (e)
			break;
		if (ka && f.type == PT_MIG_COMMIT_PROGRESS && f.len >= PT_MIG_PROGRESS_LEN) {
			phase = pt__get32(f.payload);
			bytes = pt__get64(f.payload + 8);
			heard = pt__now_ns();
			n++;
			continue;
		}
		if (f.type == PT_MIG_ERROR || f.type == PT_MIG_ABORT)
			return fail(s, -EIO, "the receiver failed: %.*s",
				    (int)(f.len < 400 ? f.len : 400), (const char *)f.payload);
		if (f.type == PT_MIG_ACK && f.len >= PT_MIG_ACK_LEN &&
		    pt__get32(f.payload) == PT_MIG_ACK_COMMIT && pt__get32(f.payload + 4) == round)
			return 0;
		e = -EPROTO;
		break;
	}
	char why[512];
	uint64_t now = pt__now_ns();

	if (e == -ETIMEDOUT && now >= end)
		snprintf(why, sizeof(why), "no acknowledgement within %llu s",
			 (unsigned long long)(total / 1000));
	else if (e == -ETIMEDOUT)
		snprintf(why, sizeof(why), "no word from the receiver for %.3g s",
			 (double)silence / 1000);
	else
		snprintf(why, sizeof(why), "%s", e == -EPROTO ? "an unexpected frame" :
			 e == -ECONNRESET ? "connection closed by the receiver" :
			 s->err && s->err[0] ? s->err : strerror(-e));
	if (s->err && s->errlen)
		s->err[0] = 0;
	s->rep->result = PT_MIGRATE_COMMIT_UNKNOWN;
	char last[160] = "";

	if (n)
		snprintf(last, sizeof(last), "; its last progress %.1f s before: %s, %llu MiB "
			 "written", (double)(now - heard) / 1e9, phase == PT_MIG_PROGRESS_COMMIT ?
			 "making the result durable" : "receiving the last delta",
			 (unsigned long long)(bytes >> 20));
	return fail(s, e, "commit outcome UNKNOWN: %s (%.1f s after the commit record%s); the "
		    "receiver may have committed; %s", why, (double)(now - t0) / 1e9, last,
		    frozen ? "the target was resumed (--after not applied)"
			   : "the target is left as --switchover-cmd left it");
}

static void send_abort(struct msend *s, const char *why)
{
	if (!s->connected || s->c.torn)
		return;	/* a half-written record: the receiver sees the connection close */
	s->c.idle_timeout_ms = 1000;
	s->c.deadline_ns = 0;
	char keep[512];

	snprintf(keep, sizeof(keep), "%s", s->err ? s->err : "");
	pt__mig_send(&s->c, PT_MIG_ABORT, why, strlen(why), NULL, 0, false, 0);
	if (s->err && s->errlen)
		snprintf(s->err, s->errlen, "%s", keep);
}

/* ---- the layout ---- */

static bool stored_kind(const struct pt_vma *v)
{
	size_t n = strlen(v->path);

	return pt__vma_is_shmem(v) || v->kind == PT_VMA_HUGETLB ||
	       (v->kind == PT_VMA_FILE && n > 10 && !strcmp(v->path + n - 10, " (deleted)"));
}

static bool wanted_object(struct msend *s, const struct pt_vma *v)
{
	for (size_t k = 0; k < s->o.nobjects; k++) {
		const char *p = s->o.objects[k];
		struct stat st;

		if (!strcmp(p, v->path))
			return true;
		if (stat(p, &st) == 0 && st.st_ino == v->inode &&
		    (uint32_t)major(st.st_dev) == v->dev_major &&
		    (uint32_t)minor(st.st_dev) == v->dev_minor)
			return true;
	}
	return false;
}

static bool wanted_area(struct msend *s, const struct pt_vma *v)
{
	if (s->objects_mode)
		return false;
	if (!s->o.nareas)
		return true;
	for (size_t k = 0; k < s->o.nareas; k++)
		if (s->o.areas[k] >= v->start && s->o.areas[k] < v->end)
			return true;
	return false;
}

static struct mobj *obj_find(struct msend *s, const struct pt_vma *v)
{
	for (size_t k = 0; k < s->no; k++)
		if (s->objs[k].o.inode == v->inode && s->objs[k].o.dev_major == v->dev_major &&
		    s->objs[k].o.dev_minor == v->dev_minor)
			return &s->objs[k];
	return NULL;
}

static int obj_resize(struct msend *s, struct mobj *m, uint64_t size)
{
	uint64_t n = (size + P - 1) / P;

	m->o.size = size;
	if (n <= m->npages)
		return 0;
	uint64_t *h = realloc(m->hash, n * sizeof(*h));

	if (h)
		m->hash = h;
	uint8_t *k = realloc(m->kind, n);

	if (k)
		m->kind = k;
	if (!h || !k)
		return fail(s, -ENOMEM, "out of memory");
	memset(m->kind + m->npages, 0, n - m->npages);
	m->npages = n;
	return 0;
}

/* Build the layout of this round from s->v (the tracker's). */
static int build_layout(struct msend *s)
{
	int e;

	free(s->sel);
	free(s->areas);
	free(s->area_vma);
	s->sel = calloc(s->nv + 1, sizeof(*s->sel));
	s->areas = calloc(s->nv + 1, sizeof(*s->areas));
	s->area_vma = calloc(s->nv + 1, sizeof(*s->area_vma));
	if (!s->sel || !s->areas || !s->area_vma)
		return fail(s, -ENOMEM, "out of memory");
	s->na = 0;
	for (size_t k = 0; k < s->no; k++)
		s->objs[k].present = false;
	for (size_t i = 0; i < s->nv; i++) {
		const struct pt_vma *v = &s->v[i];
		bool obj = pt__vma_has_object(v) && v->inode;
		bool shared_obj = obj && (v->prot & PT_MAP_SHARED);
		struct mobj *m = NULL;

		if (obj && ((s->objects_mode && wanted_object(s, v) && pt_vma_is_object(v)) ||
			    (!s->objects_mode && (wanted_area(s, v) || !s->o.nareas)))) {
			m = obj_find(s, v);
			if (!m) {
				struct mobj *n = realloc(s->objs, (s->no + 1) * sizeof(*n));

				if (!n)
					return fail(s, -ENOMEM, "out of memory");
				s->objs = n;
				m = &s->objs[s->no++];
				memset(m, 0, sizeof(*m));
				m->name = strdup(v->path);
				if (!m->name)
					return fail(s, -ENOMEM, "out of memory");
				m->o.dev_major = v->dev_major;
				m->o.dev_minor = v->dev_minor;
				m->o.inode = v->inode;
				m->o.kind = v->kind;
				m->o.sysv_key = v->kind == PT_VMA_SYSV ? v->sysv_key : 0;
				m->o.name = m->name;
				m->o.name_len = strlen(m->name);
				if (m->o.name_len > 10 && !strcmp(m->name + m->o.name_len - 10, " (deleted)"))
					m->o.flags |= PT_OBJECT_DELETED;
				if (pt_vma_is_object(v) && (s->objects_mode || stored_kind(v)))
					m->o.flags |= PT_OBJECT_STORED;
				m->vma = UINT32_MAX;
			}
			if (!m->present && pt_vma_is_object(v) && (m->o.flags & PT_OBJECT_STORED)) {
				int64_t sz = pt_copy_object_size(s->cp, v);

				if (sz < 0)
					return fail(s, (int)sz, "%s: %s", v->path, strerror((int)-sz));
				if ((e = obj_resize(s, m, (uint64_t)sz)))
					return e;
				m->vma = (uint32_t)i;
				m->present = true;
			}
		}
		bool take = s->objects_mode ? (m && shared_obj) : wanted_area(s, v);

		if (!take)
			continue;
		struct pt_image_area *a = &s->areas[s->na];

		a->start = v->start;
		a->end = v->end;
		a->offset = v->offset;
		a->prot = v->prot;
		a->kind = v->kind;
		a->path = v->path;
		a->path_len = strlen(v->path);
		a->object = m ? (uint32_t)(m - s->objs) : PT_IMAGE_NO_OBJECT;
		s->sel[i] = !((a->prot & PT_MAP_SHARED) && a->object != PT_IMAGE_NO_OBJECT);
		s->area_vma[s->na++] = (uint32_t)i;
	}
	if (s->objects_mode)
		for (size_t k = 0; k < s->o.nobjects; k++) {
			bool found = false;

			for (size_t j = 0; j < s->no; j++)
				if (s->objs[j].present && (!strcmp(s->objs[j].name, s->o.objects[k]) ||
							   wanted_object(s, &s->v[s->objs[j].vma])))
					found = true;
			if (!found)
				return fail(s, -ENOENT, "process %d maps no shared object %s",
					    (int)s->pid, s->o.objects[k]);
		}
	if (!s->objects_mode && s->o.nareas && !s->na)
		return fail(s, -ENOENT, "no area of process %d holds the --area addresses",
			    (int)s->pid);
	return 0;
}

static int send_layout(struct msend *s)
{
	size_t n = 8;

	for (size_t i = 0; i < s->na; i++)
		n += 48 + s->areas[i].path_len;
	for (size_t k = 0; k < s->no; k++)
		n += 56 + s->objs[k].o.name_len;
	if (n > PT_MIG_MAX_PAYLOAD)
		return fail(s, -E2BIG, "the layout does not fit a frame (%zu areas)", s->na);
	unsigned char *b = calloc(1, n), *p = b;

	if (!b)
		return fail(s, -ENOMEM, "out of memory");
	pt__put32(p, (uint32_t)s->na);
	pt__put32(p + 4, (uint32_t)s->no);
	p += 8;
	for (size_t i = 0; i < s->na; i++) {
		const struct pt_image_area *a = &s->areas[i];

		pt__put64(p, a->start);
		pt__put64(p + 8, a->end);
		pt__put64(p + 16, a->offset);
		pt__put32(p + 24, a->prot);
		pt__put32(p + 28, a->kind);
		pt__put32(p + 32, a->object);
		pt__put32(p + 36, (uint32_t)a->path_len);
		pt__put64(p + 40, 0);
		memcpy(p + 48, a->path, a->path_len);
		p += 48 + a->path_len;
	}
	for (size_t k = 0; k < s->no; k++) {
		const struct pt_image_object *o = &s->objs[k].o;
		uint32_t flags = o->flags & ~(s->objs[k].present ? 0u : PT_OBJECT_STORED);

		pt__put32(p, o->dev_major);
		pt__put32(p + 4, o->dev_minor);
		pt__put64(p + 8, o->inode);
		pt__put64(p + 16, o->size);
		pt__put64(p + 24, o->mtime_ns);
		pt__put32(p + 32, o->kind);
		pt__put32(p + 36, flags);
		pt__put32(p + 40, o->sysv_key);
		pt__put32(p + 44, (uint32_t)o->name_len);
		pt__put64(p + 48, 0);
		memcpy(p + 56, o->name, o->name_len);
		p += 56 + o->name_len;
	}
	int e = xmit(s, PT_MIG_LAYOUT, b, n, NULL, 0, false);

	free(b);
	return e;
}

/* ---- pages ---- */

static int send_pages(struct msend *s, uint32_t type, uint32_t owner, uint64_t off, uint32_t kind,
		      uint32_t detail, uint64_t npages, const unsigned char *data, bool swapped)
{
	while (npages) {
		uint64_t lim = kind == PT_PAGE_DATA ? PT_MIG_FRAME_PAGES : UINT32_MAX;
		uint64_t n = npages < lim ? npages : lim;
		unsigned char *h = s->head;

		h[0] = (unsigned char)type;
		h[1] = (unsigned char)kind;
		h[2] = swapped ? PT_MIG_PG_SWAPPED : 0;
		h[3] = (unsigned char)detail;
		pt__put32(h + 4, owner);
		pt__put64(h + 8, off);
		pt__put32(h + 16, (uint32_t)n);
		pt__put32(h + 20, 0);
		int e = xmit(s, PT_MIG_PAGES, h, PT_MIG_PAGES_HEAD, data,
			     kind == PT_PAGE_DATA ? n * P : 0, s->compress && kind == PT_PAGE_DATA);

		if (e)
			return e;
		s->round_pages += n;
		s->pages_total += n;
		if (swapped)
			s->rep->pages_swapped += n;
		off += n * P;
		npages -= n;
		if (data)
			data += n * P;
	}
	return 0;
}

static int on_area_piece(const struct pt_copy_piece *pc, void *ctx)
{
	struct msend *s = ctx;

	return send_pages(s, PT_OWNER_AREA, s->owner, pc->addr, pc->kind, pc->detail, pc->npages,
			  pc->data, pc->swapped && pc->swapped == pc->npages);
}

/* Object pages: only those whose content differs from what was last sent. */
static int on_object_piece(const struct pt_copy_piece *pc, void *ctx)
{
	struct msend *s = ctx;
	struct mobj *m = s->cur;
	uint64_t pg = pc->addr / P;
	const unsigned char *d = pc->data;
	bool sw = pc->swapped && pc->swapped == pc->npages;

	for (uint64_t i = 0; i < pc->npages;) {
		uint64_t j = i;
		bool first_changed = false;

		for (; j < pc->npages && pg + j < m->npages; j++) {
			uint64_t h = pc->kind == PT_PAGE_DATA ? XXH3_64bits(d + j * P, P) : 0;
			bool ch = m->kind[pg + j] != pc->kind ||
				  (pc->kind == PT_PAGE_DATA && m->hash[pg + j] != h);

			if (j == i)
				first_changed = ch;
			else if (ch != first_changed)
				break;
			if (ch) {
				m->kind[pg + j] = (uint8_t)pc->kind;
				m->hash[pg + j] = h;
			}
		}
		if (j == i)
			break;
		if (first_changed) {
			int e = send_pages(s, PT_OWNER_OBJECT, s->owner, (pg + i) * P, pc->kind,
					   pc->detail, j - i, d ? d + i * P : NULL, sw);

			if (e) {
				/* not (all) sent: never sent, for the final round */
				memset(m->kind + pg + i, 0, j - i);
				return e;
			}
			m->changed += j - i;
		}
		i = j;
	}
	return 0;
}

static int copy_err(struct msend *s, int e, const struct pt_vma *v)
{
	if ((s->err && s->err[0]) || e == -ETIME)
		return e;	/* the wire's error, or the deadline (round_cut()) */
	if (e == -ESRCH)
		return fail(s, e, "target %d exited during the migration", (int)s->pid);
	return fail(s, e, "copying 0x%llx-0x%llx (%s): %s", (unsigned long long)v->start,
		    (unsigned long long)v->end, v->path[0] ? v->path : "anon", strerror(-e));
}

static int copy_area_range(struct msend *s, size_t li, uint64_t a, uint64_t b)
{
	const struct pt_vma *v = &s->v[s->area_vma[li]];

	if (a >= b)
		return 0;
	s->owner = (uint32_t)li;
	int e = pt_copy_area(s->cp, v, a, b, on_area_piece, s);

	return e ? copy_err(s, e, v) : 0;
}

/* [a,b) of area li: the dirty ranges in it. */
static int copy_dirty_in(struct msend *s, size_t li, uint64_t a, uint64_t b, size_t *j)
{
	while (*j < s->nd && s->d[*j].end <= a)
		(*j)++;
	for (size_t k = *j; k < s->nd && s->d[k].start < b; k++) {
		uint64_t ds = s->d[k].start > a ? s->d[k].start : a;
		uint64_t de = s->d[k].end < b ? s->d[k].end : b;
		int e = copy_area_range(s, li, ds, de);

		if (e)
			return e;
	}
	return 0;
}

static int send_areas(struct msend *s, bool all)
{
	size_t j = 0;

	for (size_t li = 0; li < s->na; li++) {
		const struct pt_image_area *a = &s->areas[li];
		int e;

		if (!s->sel[s->area_vma[li]])
			continue;
		if (all) {
			if ((e = copy_area_range(s, li, a->start, a->end)))
				return e;
			continue;
		}
		/* parts covered by the previous round's private areas: dirty only */
		uint64_t pos = a->start;

		for (size_t p = 0; p < s->nprev && pos < a->end; p++) {
			if (s->prev[p].end <= pos || s->prev[p].start >= a->end)
				continue;
			uint64_t cs = s->prev[p].start > pos ? s->prev[p].start : pos;
			uint64_t ce = s->prev[p].end < a->end ? s->prev[p].end : a->end;

			if ((e = copy_area_range(s, li, pos, cs)) ||
			    (e = copy_dirty_in(s, li, cs, ce, &j)))
				return e;
			pos = ce;
		}
		if ((e = copy_area_range(s, li, pos, a->end)))
			return e;
	}
	return 0;
}

struct orange {
	uint64_t lo, hi;
};

static int cmp_orange(const void *a, const void *b)
{
	const struct orange *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static bool same_object(const struct pt_vma *v, const struct mobj *m)
{
	return (v->prot & PT_MAP_SHARED) && v->inode == m->o.inode &&
	       v->dev_major == m->o.dev_major && v->dev_minor == m->o.dev_minor;
}

/*
 * PT_MIGRATE_TRUST_SHARED, after round 0: the object byte ranges to read
 * for @m: the tracker's dirty ranges inside the target's mappings of it,
 * converted to object offsets, and every part of it no mapping covers
 * (no tracker sees those: read whole and compared).  Sorted, merged.
 */
static int trusted_ranges(struct msend *s, const struct mobj *m, struct orange **out, size_t *n)
{
	uint64_t end = m->npages * P;
	size_t cap = 16, k = 0, nm = 0;
	struct orange *r = malloc(cap * sizeof(*r)), *mp = calloc(s->nv + 1, sizeof(*mp));

	if (!r || !mp) {
		free(r);
		free(mp);
		return fail(s, -ENOMEM, "out of memory");
	}
#define PUSH(a, b) do {							\
		if (k == cap) {						\
			struct orange *t_ = realloc(r, 2 * cap * sizeof(*r));	\
			if (!t_) { free(r); free(mp); return fail(s, -ENOMEM, "out of memory"); } \
			r = t_; cap *= 2;				\
		}							\
		r[k].lo = (a); r[k].hi = (b); k++;			\
	} while (0)
	for (size_t i = 0; i < s->nv; i++) {
		const struct pt_vma *v = &s->v[i];

		if (!same_object(v, m) || v->offset >= end)
			continue;
		uint64_t vend = v->offset + (v->end - v->start) < end ? v->offset + (v->end - v->start)
								       : end;

		mp[nm].lo = v->offset;
		mp[nm++].hi = vend;
		for (size_t j = 0; j < s->nd; j++) {
			if (s->d[j].end <= v->start || s->d[j].start >= v->end)
				continue;
			uint64_t a = s->d[j].start > v->start ? s->d[j].start : v->start;
			uint64_t b = s->d[j].end < v->end ? s->d[j].end : v->end;
			uint64_t lo = v->offset + (a - v->start), hi = v->offset + (b - v->start);

			if (hi > end)
				hi = end;
			if (lo < hi)
				PUSH(lo, hi);
		}
	}
	qsort(mp, nm, sizeof(*mp), cmp_orange);
	uint64_t pos = 0;

	for (size_t i = 0; i < nm; i++) {
		if (mp[i].lo > pos)
			PUSH(pos, mp[i].lo);
		if (mp[i].hi > pos)
			pos = mp[i].hi;
	}
	if (pos < end)
		PUSH(pos, end);
#undef PUSH
	free(mp);
	qsort(r, k, sizeof(*r), cmp_orange);
	size_t o = 0;

	for (size_t i = 0; i < k; i++) {
		if (o && r[i].lo <= r[o - 1].hi) {
			if (r[i].hi > r[o - 1].hi)
				r[o - 1].hi = r[i].hi;
			continue;
		}
		r[o++] = r[i];
	}
	*out = r;
	*n = o;
	return 0;
}

static int send_objects(struct msend *s, uint32_t round)
{
	uint64_t t0 = pt__now_ns(), w0 = s->c.write_ns;

	s->round_changed_obj = 0;
	for (size_t k = 0; k < s->no; k++) {
		struct mobj *m = &s->objs[k];

		if (!m->present || !(m->o.flags & PT_OBJECT_STORED))
			continue;
		const struct pt_vma *v = &s->v[m->vma];
		int e;

		s->cur = m;
		s->owner = (uint32_t)k;
		m->changed = 0;
		if (s->trust && round > 0) {
			struct orange *r = NULL;
			size_t n = 0;

			e = trusted_ranges(s, m, &r, &n);
			for (size_t i = 0; !e && i < n; i++)
				e = pt_copy_object(s->cp, v, r[i].lo, r[i].hi, on_object_piece, s);
			free(r);
		} else {
			e = pt_copy_object(s->cp, v, 0, m->npages * P, on_object_piece, s);
		}
		if (e)
			return copy_err(s, e, v);
		s->round_changed_obj += m->changed;
	}
	/* time reading and comparing, not sending */
	uint64_t dt = pt__now_ns() - t0, wt = s->c.write_ns - w0;

	s->scan_ns = dt > wt ? dt - wt : 0;
	return 0;
}

/* PT_MIGRATE_TRUST_SHARED: bytes of the pending ranges in mappings of stored objects. */
static uint64_t trusted_pending(struct msend *s)
{
	uint64_t b = 0;

	for (size_t i = 0; i < s->nv; i++) {
		const struct pt_vma *v = &s->v[i];
		bool stored = false;

		for (size_t k = 0; k < s->no && !stored; k++)
			stored = s->objs[k].present && (s->objs[k].o.flags & PT_OBJECT_STORED) &&
				 same_object(v, &s->objs[k]);
		if (!stored)
			continue;
		for (size_t j = 0; j < s->nd; j++) {
			if (s->d[j].end <= v->start || s->d[j].start >= v->end)
				continue;
			uint64_t a = s->d[j].start > v->start ? s->d[j].start : v->start;
			uint64_t c = s->d[j].end < v->end ? s->d[j].end : v->end;

			b += c - a;
		}
	}
	return b;
}

/* ---- tracking ---- */

static int cmp_dirty(const void *a, const void *b)
{
	const struct pt_dirty *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static int collect(struct msend *s)
{
	bool more = true;

	if (!s->tr)
		return 0;
	while (more) {
		if (s->dcap - s->nd < DIRTY_CAP) {
			size_t cap = s->dcap * 2 + DIRTY_CAP;
			struct pt_dirty *d = realloc(s->d, cap * sizeof(*d));

			if (!d)
				return fail(s, -ENOMEM, "out of memory");
			s->d = d;
			s->dcap = cap;
		}
		int n = pt_tracker_collect(s->tr, s->d + s->nd, DIRTY_CAP, &more);

		if (n < 0)
			return n == -ESRCH ? fail(s, n, "target %d exited during the migration",
						  (int)s->pid)
					   : fail(s, n, "tracking: %s", strerror(-n));
		s->nd += (size_t)n;
	}
	qsort(s->d, s->nd, sizeof(*s->d), cmp_dirty);
	size_t o = 0;

	for (size_t i = 0; i < s->nd; i++) {
		if (o && s->d[i].start <= s->d[o - 1].end) {
			if (s->d[i].end > s->d[o - 1].end)
				s->d[o - 1].end = s->d[i].end;
			continue;
		}
		s->d[o++] = s->d[i];
	}
	s->nd = o;
	return 0;
}

/* Bytes of the pending dirty ranges inside the selected private areas. */
static uint64_t pending_bytes(struct msend *s)
{
	uint64_t b = 0;

	for (size_t i = 0; i < s->nd; i++)
		for (size_t li = 0; li < s->na; li++) {
			const struct pt_image_area *a = &s->areas[li];

			if (!s->sel[s->area_vma[li]] || a->end <= s->d[i].start ||
			    a->start >= s->d[i].end)
				continue;
			uint64_t x = a->start > s->d[i].start ? a->start : s->d[i].start;
			uint64_t y = a->end < s->d[i].end ? a->end : s->d[i].end;

			b += y - x;
		}
	return b;
}

/* Remember the private areas sent, to tell new parts next round. */
static int remember_areas(struct msend *s)
{
	free(s->prev);
	s->prev = calloc(s->na + 1, sizeof(*s->prev));
	if (!s->prev)
		return fail(s, -ENOMEM, "out of memory");
	s->nprev = 0;
	for (size_t li = 0; li < s->na; li++)
		if (s->sel[s->area_vma[li]]) {
			s->prev[s->nprev].start = s->areas[li].start;
			s->prev[s->nprev].end = s->areas[li].end;
			s->nprev++;
		}
	return 0;
}

static int refresh_layout(struct msend *s)
{
	/* after a cut round, keep the last complete round's areas: the cut
	   round's new parts were perhaps not sent */
	if (!s->cut) {
		int e = remember_areas(s);

		if (e)
			return e;
	}
	pt_vmas_free(s->v);
	s->v = NULL;
	s->nv = 0;
	int e = s->tr ? pt_tracker_vmas(s->tr, &s->v, &s->nv) : pt_vmas_read(s->t, &s->v, &s->nv);

	if (e)
		return fail(s, e, "tracking: %s", strerror(-e));
	return 0;
}

/* One round: ROUND_BEGIN, LAYOUT, pages, ROUND_END, and the receiver's ACK. */
static int do_round(struct msend *s, uint32_t round, bool final)
{
	unsigned char rb[PT_MIG_ROUND_LEN] = { 0 };
	struct pt__mig_frame f;
	int e;

	if ((e = build_layout(s)))
		return e;
	s->round_pages = 0;
	pt__put32(rb, round);
	pt__put32(rb + 4, final);
	if ((e = xmit(s, PT_MIG_ROUND_BEGIN, rb, sizeof(rb), NULL, 0, false)) ||
	    (e = send_layout(s)) || (e = send_areas(s, round == 0)) || (e = send_objects(s, round)))
		return e;
	s->nd = 0;
	if (final)
		return 0;
	pt__put64(rb + 8, s->round_pages);
	pt__put32(rb + 4, 0);
	if ((e = xmit(s, PT_MIG_ROUND_END, rb, sizeof(rb), NULL, 0, false)))
		return e;
	e = expect(s, PT_MIG_ACK_ROUND, round, &f);
	s->ack_late = e == -ETIME;
	return e;
}

/* ---- switch-over ---- */

static int run_cmd(struct msend *s, const char *cmd)
{
	pid_t p = fork();
	int st = 0;

	if (p < 0)
		return fail(s, -errno, "--switchover-cmd: fork: %s", strerror(errno));
	if (p == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(p, &st, 0) < 0)
		if (errno != EINTR)
			return fail(s, -errno, "--switchover-cmd: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return fail(s, -ECANCELED, "--switchover-cmd failed (%s %d): switch-over aborted, "
			    "the target keeps running", WIFEXITED(st) ? "exit" : "signal",
			    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return 0;
}

static void throttle_to(struct msend *s, unsigned pct)
{
	if (!pt__mig_throttle || (s->o.flags & PT_MIGRATE_NO_THROTTLE))
		return;
	if (!s->thr) {
		int e = pt__mig_throttle->start(s->pid, &s->thr);

		if (e) {
			pt__log(PT_LOG_WARN, "migrate: cannot throttle %d: %s", (int)s->pid,
				strerror(-e));
			s->o.flags |= PT_MIGRATE_NO_THROTTLE;
			return;
		}
	}
	if (pt__mig_throttle->set(s->thr, pct) == 0)
		s->thr_level = pct;
}

static void throttle_end(struct msend *s)
{
	if (s->thr && pt__mig_throttle)
		pt__mig_throttle->stop(s->thr);
	s->thr = NULL;
}

/*
 * The deadline (--timeout) passed inside round @round (@e -ETIME).  Fail,
 * or with PT_MIGRATE_FORCE_SWITCHOVER go on to the switch-over, but only
 * when the link is alive: the stream intact, and the cut round's
 * ROUND_END (flag CUT) acknowledged in time.  What the cut round did not
 * send stays pending (the tracker's ranges, objects marked unsent).
 */
static int round_cut(struct msend *s, uint32_t round)
{
	unsigned char rb[PT_MIG_ROUND_LEN] = { 0 };
	struct pt__mig_frame f;
	int in = 0;
	int e;

	s->rep->result = PT_MIGRATE_TIMEOUT;
	if (s->c.torn || s->ack_late)
		return fail(s, -ETIMEDOUT, "--timeout reached in round %u and the link stalled",
			    round);
	if (!(s->o.flags & PT_MIGRATE_FORCE_SWITCHOVER))
		return fail(s, -ETIMEDOUT, "no convergence within --timeout (round %u cut, "
			    "%llu pages sent in it)", round, (unsigned long long)s->round_pages);
	s->c.deadline_ns = 0;
	uint64_t rate = s->bw_bps ? s->bw_bps : s->link_bps;
	uint64_t ms = CUT_ACK_MS;

	if (ioctl(s->c.fd, SIOCOUTQ, &in) == 0 && in > 0 && rate && rate != UINT64_MAX)
		ms += (uint64_t)in * 1000 / rate;
	s->c.idle_timeout_ms = ms < s->idle_ms ? ms : s->idle_ms;
	pt__put32(rb, round);
	pt__put32(rb + 4, PT_MIG_ROUND_CUT);
	pt__put64(rb + 8, s->round_pages);
	e = xmit(s, PT_MIG_ROUND_END, rb, sizeof(rb), NULL, 0, false);
	if (!e)
		e = expect(s, PT_MIG_ACK_ROUND, round, &f);
	if (e) {
		if (s->err && s->errlen)
			s->err[0] = 0;
		return fail(s, -ETIMEDOUT, "--timeout reached in round %u; no switch-over: "
			    "the receiver did not acknowledge within %llu ms (link down?)", round,
			    (unsigned long long)s->c.idle_timeout_ms);
	}
	s->c.idle_timeout_ms = s->idle_ms;
	s->cut = true;
	s->rep->result = PT_MIGRATE_ERROR;
	return 0;
}

static int migrate(struct msend *s, const char *to)
{
	static const unsigned steps[] = { 20, 40, 60, 80, 95 };
	uint64_t limit = s->o.downtime_ns ? s->o.downtime_ns : 300000000ULL;
	uint32_t max_rounds = s->o.max_rounds ? s->o.max_rounds : 30;
	uint64_t t_start = pt__now_ns();
	unsigned step = 0, hot = 0;
	struct pt__mig_frame f;
	int fd = -1, e;

	s->c.idle_timeout_ms = s->idle_ms;
	s->c.deadline_ns = s->o.timeout_ns ? t_start + s->o.timeout_ns : 0;
	s->c.grace_ns = CUT_GRACE_NS;
	if ((e = connect_to(s, to, &fd)))
		goto timed;
	e = pt__mig_conn_init(&s->c, fd, true, (s->o.flags & PT_MIGRATE_INSECURE) ? NULL : s->o.key,
			      s->o.key_len, s->err, s->errlen);
	s->connected = true;
	if (e)
		goto timed;
	s->c.rate_bps = s->o.bandwidth_bps;
	s->compress = !(s->o.flags & PT_MIGRATE_NO_COMPRESS) && s->o.bandwidth_bps &&
		      s->o.bandwidth_bps < 300000000ULL;
	/* params */
	unsigned char pr[PT_MIG_PARAMS_LEN] = { 0 };
	char path[64];

	pt__put32(pr, (uint32_t)P);
	pt__put32(pr + 4, (uint32_t)s->pid);
	pt__put32(pr + 8, s->objects_mode ? PT_MIG_MODE_OBJECTS : PT_MIG_MODE_PROCESS);
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)s->pid);
	int cfd = open(path, O_RDONLY | O_CLOEXEC);

	if (cfd >= 0) {
		ssize_t r = read(cfd, pr + 16, 15);

		close(cfd);
		for (ssize_t i = 0; i < r; i++)
			if (pr[16 + i] == '\n')
				pr[16 + i] = 0;
	}
	if ((e = xmit(s, PT_MIG_HELLO, pr, sizeof(pr), NULL, 0, false)) ||
	    (e = expect(s, PT_MIG_ACK_HELLO, 0, &f)))
		goto timed;

	uint32_t round = 0;
	bool switch_over = false;

	for (;;) {
		uint64_t r0 = pt__now_ns(), b0 = s->c.bytes_out;

		if ((e = refresh_layout(s)) || (e = do_round(s, round, false))) {
			if (e != -ETIME)
				return e;
			if ((e = round_cut(s, round)))
				return e;
			break;	/* forced: the switch-over sends what the round did not */
		}
		uint64_t dt = pt__now_ns() - r0, wire = s->c.bytes_out - b0;

		if ((e = collect(s)))
			return e;
		round++;
		s->rep->rounds = round;
		/* the send rate, without the time spent reading objects whole */
		uint64_t busy = dt > s->scan_ns ? dt - s->scan_ns : 1;

		if (wire >= (256u << 10) || !s->bw_bps)
			s->bw_bps = (uint64_t)((double)wire * 1e9 / (double)busy);
		uint64_t pend = pending_bytes(s);
		uint64_t obj_pend = 0;

		if (s->trust)
			obj_pend = trusted_pending(s);
		else
			for (size_t k = 0; k < s->no; k++)	/* round 0 read them whole: unknown */
				obj_pend += round == 1 && s->objs[k].present ? s->objs[k].o.size
									    : s->objs[k].changed * P;
		uint64_t dirty_pages = (pend + obj_pend) / P;
		/* written per second during the round (objects: known from round 1 on) */
		uint64_t dirty_rate = (uint64_t)((double)(pend + (round > 1 || s->trust ? obj_pend : 0)) * 1e9 /
						 (double)(dt ? dt : 1));
		double exp_s = s->bw_bps ? (double)(pend + obj_pend) / (double)s->bw_bps : 1e9;
		uint64_t exp_ns = (uint64_t)(exp_s * 1e9 > 1e18 ? 1e18 : exp_s * 1e9) + s->scan_ns;

		if (s->o.on_round) {
			struct pt_migrate_round r = {
				.sz = sizeof(r), .round = round - 1, .throttle_percent = s->thr_level,
				.bytes_sent = wire, .pages_dirty = dirty_pages,
				.dirty_rate_bps = dirty_rate, .bandwidth_bps = s->bw_bps,
				.expected_downtime_ns = exp_ns,
			};
			s->o.on_round(&r, s->o.ctx);
		}
		if ((pend + obj_pend) == 0 || exp_ns <= limit) {
			switch_over = true;
			break;
		}
		if (round >= max_rounds || (s->o.timeout_ns && pt__now_ns() - t_start >= s->o.timeout_ns)) {
			bool to_hit = !(round >= max_rounds);

			if (s->o.flags & PT_MIGRATE_FORCE_SWITCHOVER) {
				switch_over = true;
				break;
			}
			s->rep->result = to_hit ? PT_MIGRATE_TIMEOUT : PT_MIGRATE_MAX_ROUNDS;
			if (to_hit)
				return fail(s, -ETIMEDOUT, "no convergence within --timeout (%llu KiB "
					    "remaining, %.0f ms expected)",
					    (unsigned long long)((pend + obj_pend) >> 10),
					    (double)exp_ns / 1e6);
			return fail(s, -ETIMEDOUT, "no convergence in %u rounds (%llu KiB remaining, "
				    "%.0f ms expected)", max_rounds,
				    (unsigned long long)((pend + obj_pend) >> 10), (double)exp_ns / 1e6);
		}
		/* auto-converge: dirtying above half the bandwidth for 2 rounds */
		if (s->bw_bps && dirty_rate > s->bw_bps / 2)
			hot++;
		else
			hot = 0;
		if (hot >= 2 && step < sizeof(steps) / sizeof(steps[0])) {
			throttle_to(s, steps[step++]);
			hot = 0;
		}
	}
	(void)switch_over;
	s->c.deadline_ns = 0;	/* the switch-over is not cut: bounded by the idle timeout */
	/* switch-over */
	uint64_t t_down = 0;
	struct pt_freeze fz;
	bool frozen = false;

	/*
	 * The throttle goes before the freeze: in signal mode its SIGSTOP
	 * must not meet the ptrace stops (doc/api.md, "Throttling").
	 */
	throttle_end(s);
	if (s->o.switchover_cmd) {
		if (s->o.freeze == PT_MIGRATE_FREEZE_NONE)
			t_down = pt__now_ns();
		e = run_cmd(s, s->o.switchover_cmd);
		if (e) {
			s->rep->result = PT_MIGRATE_ABORTED;
			return e;
		}
	}
	if (s->o.freeze == PT_MIGRATE_FREEZE_STOP) {
		e = pt__freeze(s->pid, &fz);
		if (e)
			return fail(s, e, "freezing %d: %s", (int)s->pid,
				    e == -EBUSY ? "it is traced by another process" : strerror(-e));
		frozen = true;
		t_down = fz.since_ns;
	}
	if (!t_down)
		t_down = pt__now_ns();
	e = collect(s);
	if (!e)
		e = refresh_layout(s);
	if (!e)
		e = do_round(s, round, true);
	if (!e) {
		unsigned char cm[PT_MIG_COMMIT_LEN] = { 0 };

		pt__put32(cm, round);
		pt__put64(cm + 8, s->frames);
		pt__put64(cm + 16, s->pages_total);
		e = xmit(s, PT_MIG_COMMIT, cm, sizeof(cm), NULL, 0, false);
	}
	if (!e)
		e = wait_commit(s, round, frozen);
	if (e) {
		if (frozen)
			pt__thaw(&fz);
		if (s->rep->result == PT_MIGRATE_COMMIT_UNKNOWN)
			s->rep->downtime_ns = pt__now_ns() - t_down;	/* how long it was stopped */
		return e;
	}
	if (s->o.after == PT_MIGRATE_AFTER_STOP)
		kill(s->pid, SIGSTOP);	/* pending before the threads are let go */
	else if (s->o.after == PT_MIGRATE_AFTER_KILL)
		kill(s->pid, SIGKILL);
	if (frozen)
		pt__thaw(&fz);
	s->rep->downtime_ns = pt__now_ns() - t_down;
	s->rep->result = PT_MIGRATE_COMPLETED;
	return 0;
timed:
	/* before the first round: the deadline ends it whatever --force-switchover says */
	if (e == -ETIME) {
		s->rep->result = PT_MIGRATE_TIMEOUT;
		e = fail(s, -ETIMEDOUT, "--timeout reached before the first round (the receiver "
			 "does not answer)");
	}
	return e;
}

static bool opts_ok(const struct pt_migrate_send_opts *o)
{
	const uint32_t known = PT_MIGRATE_INSECURE | PT_MIGRATE_FORCE_SWITCHOVER |
			       PT_MIGRATE_NO_THROTTLE | PT_MIGRATE_NO_COMPRESS |
			       PT_MIGRATE_TRUST_SHARED;

	if (!PT_OPTS_VALID(o, pt_migrate_send_opts))
		return false;
	if (!o)
		return false;	/* a key or INSECURE is required */
	return !(o->flags & ~known) && !o->reserved && o->freeze <= PT_MIGRATE_FREEZE_NONE &&
	       o->after <= PT_MIGRATE_AFTER_KILL && (!o->nobjects || o->objects) &&
	       (!o->nareas || o->areas) && !(o->nobjects && o->nareas) &&
	       ((o->flags & PT_MIGRATE_INSECURE) ? !o->key : (o->key && o->key_len >= 32));
}

int pt_migrate_send(pid_t pid, const char *to, const struct pt_migrate_send_opts *opts,
		    struct pt_migrate_report *report, char *err, size_t errlen)
{
	struct pt_migrate_report rep = { .sz = sizeof(rep), .result = PT_MIGRATE_ERROR };
	struct msend *s;
	int e;

	if (err && errlen)
		err[0] = 0;
	if (pid <= 0 || !to || !opts_ok(opts) ||
	    (report && (report->sz < sizeof(size_t) ||
			!pt__opts_tail_zero(report, sizeof(*report), report->sz)))) {
		if (err && errlen)
			snprintf(err, errlen, "invalid arguments%s",
				 opts && !(opts->flags & PT_MIGRATE_INSECURE) &&
				 (!opts->key || opts->key_len < 32) ? " (a key of 32 bytes or more, "
				 "or PT_MIGRATE_INSECURE)" : "");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	memcpy(&s->o, opts, opts->sz < sizeof(s->o) ? opts->sz : sizeof(s->o));
	s->o.sz = sizeof(s->o);
	s->pid = pid;
	s->rep = &rep;
	s->err = err;
	s->errlen = errlen;
	s->c.fd = -1;
	s->objects_mode = s->o.nobjects > 0;
	s->idle_ms = s->o.idle_timeout_ns ? (s->o.idle_timeout_ns + 999999) / 1000000 : 60000;
	uint64_t t0 = pt__now_ns();

	s->trust = s->o.flags & PT_MIGRATE_TRUST_SHARED;
	if (!s->objects_mode || s->trust) {
		/* shared areas by page tables: objects are compared by content
		   (or, trusted, tracked through the target's mappings) */
		PT_OPTS(pt_tracker_opts, to_, .backend = PT_TRACK_AUTO,
			.flags = PT_TRACK_TRUST_SHARED);

		s->tr = pt_tracker_create(pid, &to_);
		if (!s->tr) {
			e = -errno;
			e = fail(s, e, "tracking %d: %s", (int)pid,
				 e == -EALREADY ? "another pagetrack tracks it"
				 : e == -ESRCH ? "no such process" : strerror(-e));
			goto out;
		}
	}
	PT_OPTS(pt_copy_opts, co, .tracker = s->tr);
	s->cp = pt_copier_create(pid, &co);
	if (!s->cp) {
		e = -errno;
		e = fail(s, e, "target %d: %s", (int)pid, e == -ESRCH ? "no such process" : strerror(-e));
		goto out;
	}
	if (!s->tr) {
		/* no tracker: the layout from /proc/PID/maps each round */
		s->t = pt_target_create(pid, NULL);
		if (!s->t) {
			e = fail(s, -errno, "target %d: %s", (int)pid, strerror(errno));
			goto out;
		}
	}
	e = migrate(s, to);
out:
	if (e && rep.result == PT_MIGRATE_COMPLETED)
		rep.result = PT_MIGRATE_ERROR;
	if (e) {
		const char *why = rep.result == PT_MIGRATE_ABORTED ? "switch-over aborted"
				  : rep.result == PT_MIGRATE_TIMEOUT ? "timeout"
				  : rep.result == PT_MIGRATE_MAX_ROUNDS ? "max_rounds"
				  : rep.result == PT_MIGRATE_COMMIT_UNKNOWN ? "commit_unknown"
				  : (err && err[0]) ? err : "error";
		send_abort(s, why);
	}
	throttle_end(s);
	if (s->connected)
		pt__mig_conn_free(&s->c);
	else if (s->c.fd >= 0)
		close(s->c.fd);
	PT_OPTS(pt_copy_stats, cs);
	if (s->cp && pt_copier_stats(s->cp, &cs) == 0)
		rep.bytes_read = cs.bytes_read;
	pt_copier_free(s->cp);
	if (s->tr && pt_tracker_free(s->tr))
		pt__log(PT_LOG_WARN, "migrate: the tracker's userfaultfd stays open in %d", (int)pid);
	rep.total_bytes = s->c.bytes_out + s->c.bytes_in;
	rep.pages_sent = s->pages_total;
	rep.throttle_percent = s->thr_level;
	rep.duration_ns = pt__now_ns() - t0;
	if (rep.result == PT_MIGRATE_ABORTED)
		e = -ECANCELED;
	pt_vmas_free(s->v);
	pt_target_free(s->t);
	free(s->sel);
	free(s->areas);
	free(s->area_vma);
	free(s->prev);
	free(s->d);
	for (size_t k = 0; k < s->no; k++) {
		free(s->objs[k].name);
		free(s->objs[k].hash);
		free(s->objs[k].kind);
	}
	free(s->objs);
	free(s);
	if (report) {
		size_t n = report->sz < sizeof(rep) ? report->sz : sizeof(rep);

		memcpy((char *)report + sizeof(size_t), (char *)&rep + sizeof(size_t),
		       n - sizeof(size_t));
	}
	return e;
}

const char *pt_migrate_result_name(enum pt_migrate_result r)
{
	switch (r) {
	case PT_MIGRATE_COMPLETED:
		return "completed";
	case PT_MIGRATE_TIMEOUT:
		return "timeout";
	case PT_MIGRATE_MAX_ROUNDS:
		return "max_rounds";
	case PT_MIGRATE_ABORTED:
		return "aborted";
	case PT_MIGRATE_ERROR:
		return "error";
	case PT_MIGRATE_COMMIT_UNKNOWN:
		return "commit_unknown";
	}
	return NULL;
}
