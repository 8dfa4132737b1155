// SPDX-License-Identifier: MIT
/*
 * pt_migrate_receive(): serve one migration (doc/migration-protocol.md).
 *
 * -o FILE: pages are kept in an unlinked temp file beside FILE (one
 * slot per page, reused when a page is sent again), their kinds in
 * memory.  Each round is a layer FILE.live-N (round 0 FULL; then
 * TRACKED: the pages received in the round, every other page UNCHANGED,
 * parent the previous layer), streamed into the image writer as the
 * round's PAGES come in order (else written from the page store at the
 * end of the round) and finished at ROUND_END, before the ack; at the
 * commit record only the final round's pages make the last layer, FILE
 * (temp + fsync + rename), then acknowledged.  On failure the
 * FILE.live-N this receiver wrote are removed.
 * --into PATH: pages are written into PATH as they come, while the
 * marker PATH.pagetrack-incomplete exists; at commit PATH is fsynced,
 * the marker removed (and the directory fsynced), then acknowledged.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "migrate.h"
#include "image/image.h"

#define P PT_PAGE_SIZE

/*
 * What was received for each page of an owner, in chunks of CH pages: a
 * chunk whose pages all have one kind and no stored data is one byte
 * pair (huge PROT_NONE reservations, holes), others have arrays.
 */
#define CH 512u

struct chunk_arr {
	uint8_t kind[CH];	/* 0: not received */
	uint8_t detail[CH];
	uint8_t dirty[CH];	/* received in the current round */
	uint32_t slot[CH];	/* -o: slot + 1 in the store; 0 none */
};

struct chunk {
	uint8_t ukind, udetail, udirty;	/* when !arr */
	struct chunk_arr *arr;
};

struct pages {
	uint64_t n;
	struct chunk *c;
};

struct rarea {
	struct pt_image_area a;
	char *path;
	struct pages pg;
};

struct robj {
	struct pt_image_object o;
	char *name;
	struct pages pg;
};

struct mrecv {
	struct pt_migrate_recv_opts o;
	struct pt_migrate_recv_report *rep;
	char *err;
	size_t errlen;
	struct pt__mig_conn c;
	bool connected;
	/* params */
	uint32_t mode;
	int32_t pid;
	char comm[16];
	/* state */
	struct rarea *areas;
	size_t na;
	struct robj *objs;
	size_t no;
	int store;		/* -o: the page store */
	uint32_t next_slot;
	int into;		/* --into: PATH */
	char *marker;
	uint64_t into_size;
	uint32_t round;
	uint64_t pages_rx;
	/* -o: the layers written so far (FILE.live-N), the last one open */
	char **live;
	size_t nlive;
	struct pt_image *prev;
	/* -o: the current round's layer streamed as its PAGES come in order */
	bool final;		/* ROUND_BEGIN said final */
	char *sw_path;		/* the layer's name; NULL: no layer opened this round */
	struct pt__imgw *sw;	/* NULL: not streaming (out of order: written at the end) */
	size_t sw_pos;		/* owner (areas, then objects) being written */
	uint64_t sw_next;	/* its next page */
	/*
	 * Keepalives (COMMIT_PROGRESS, protocol version 2) in the final round
	 * and the commit.  In the final round the serving thread sends them
	 * between frames; during the commit (no frame read, nothing else
	 * sent) the keepalive thread owns the connection's sending side from
	 * ka_start() to ka_stop() (pthread_create/join order the accesses).
	 */
	atomic_uint_least64_t ka_bytes;	/* written to disk since the final round began */
	uint64_t ka_t0, ka_last;	/* the final round's start, the last keepalive */
	uint32_t ka_count, ka_phase;
	bool ka_dead;			/* a keepalive failed: no more */
	bool ka_running, ka_quit;
	pthread_t ka_thr;
	pthread_mutex_t ka_lock;
	pthread_cond_t ka_cond;
};

static int fail(struct mrecv *r, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct mrecv *r, int e, const char *fmt, ...)
{
	va_list ap;

	if (r->err && r->errlen && !r->err[0]) {
		va_start(ap, fmt);
		vsnprintf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	return e < 0 ? e : -EIO;
}

static void pages_free(struct pages *p)
{
	for (uint64_t i = 0; p->c && i < (p->n + CH - 1) / CH; i++)
		free(p->c[i].arr);
	free(p->c);
	memset(p, 0, sizeof(*p));
}

static int pages_alloc(struct pages *p, uint64_t n)
{
	p->n = n;
	p->c = calloc((n + CH - 1) / CH + 1, sizeof(*p->c));
	return p->c ? 0 : -ENOMEM;
}

static struct chunk_arr *materialize(struct chunk *c)
{
	if (c->arr)
		return c->arr;
	c->arr = calloc(1, sizeof(*c->arr));
	if (c->arr) {
		memset(c->arr->kind, c->ukind, CH);
		memset(c->arr->detail, c->udetail, CH);
		memset(c->arr->dirty, c->udirty, CH);
	}
	return c->arr;
}

static void page_get(const struct pages *p, uint64_t g, uint8_t *kind, uint8_t *detail,
		     uint32_t *slot, uint8_t *dirty)
{
	const struct chunk *c = &p->c[g / CH];

	if (!c->arr) {
		*kind = c->ukind;
		*detail = c->udetail;
		*slot = 0;
		*dirty = c->udirty;
		return;
	}
	*kind = c->arr->kind[g % CH];
	*detail = c->arr->detail[g % CH];
	*slot = c->arr->slot[g % CH];
	*dirty = c->arr->dirty[g % CH];
}

/* A new round: no page was received in it yet. */
static void pages_clean(struct pages *p)
{
	for (uint64_t i = 0; p->c && i < (p->n + CH - 1) / CH; i++) {
		p->c[i].udirty = 0;
		if (p->c[i].arr)
			memset(p->c[i].arr->dirty, 0, CH);
	}
}

/*
 * Pages [g, g+n) become @kind (not DATA), received this round, keeping
 * slots of partly covered chunks.
 */
static int pages_set(struct pages *p, uint64_t g, uint64_t n, uint8_t kind, uint8_t detail)
{
	while (n) {
		struct chunk *c = &p->c[g / CH];
		uint64_t o = g % CH, k = CH - o < n ? CH - o : n;

		if (o == 0 && k == CH) {
			free(c->arr);	/* their slots are abandoned in the store */
			c->arr = NULL;
			c->ukind = kind;
			c->udetail = detail;
			c->udirty = 1;
		} else {
			struct chunk_arr *a = materialize(c);

			if (!a)
				return -ENOMEM;
			memset(a->kind + o, kind, k);
			memset(a->detail + o, detail, k);
			memset(a->dirty + o, 1, k);
		}
		g += k;
		n -= k;
	}
	return 0;
}

/* Page @to of @dst takes the state of page @from of @src. */
static int page_move(struct pages *dst, uint64_t to, const struct pages *src, uint64_t from)
{
	uint8_t k, d, dy;
	uint32_t sl;

	page_get(src, from, &k, &d, &sl, &dy);
	struct chunk *c = &dst->c[to / CH];

	if (!c->arr && !sl && c->ukind == k && c->udetail == d && c->udirty == dy)
		return 0;
	struct chunk_arr *a = materialize(c);

	if (!a)
		return -ENOMEM;
	a->kind[to % CH] = k;
	a->detail[to % CH] = d;
	a->slot[to % CH] = sl;
	a->dirty[to % CH] = dy;
	return 0;
}

/* Move the whole state of @src to @dst (same size), leaving @src empty. */
static void pages_take(struct pages *dst, struct pages *src)
{
	pages_free(dst);
	*dst = *src;
	memset(src, 0, sizeof(*src));
}

static void state_free(struct mrecv *r)
{
	for (size_t i = 0; i < r->na; i++) {
		free(r->areas[i].path);
		pages_free(&r->areas[i].pg);
	}
	free(r->areas);
	for (size_t k = 0; k < r->no; k++) {
		free(r->objs[k].name);
		pages_free(&r->objs[k].pg);
	}
	free(r->objs);
	r->areas = NULL;
	r->objs = NULL;
	r->na = r->no = 0;
}

static bool area_private(const struct pt_image_area *a)
{
	return !((a->prot & PT_MAP_SHARED) && a->object != PT_IMAGE_NO_OBJECT);
}

/* ---- LAYOUT ---- */

static int into_open(struct mrecv *r)
{
	if (r->into >= 0)
		return 0;
	int mfd = open(r->marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (mfd < 0)
		return fail(r, -errno, "%s: %s", r->marker, strerror(errno));
	close(mfd);
	r->into = open(r->o.into, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (r->into < 0)
		return fail(r, -errno, "%s: %s", r->o.into, strerror(errno));
	return 0;
}

static int apply_layout(struct mrecv *r, const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len;
	struct rarea *na = NULL;
	struct robj *no = NULL;
	uint32_t nna, nno;
	int e = 0;

	if (len < 8)
		return fail(r, -EBADMSG, "protocol error: short LAYOUT");
	nna = pt__get32(p);
	nno = pt__get32(p + 4);
	p += 8;
	if (nna > len / 48 || nno > len / 56)
		return fail(r, -EBADMSG, "protocol error: LAYOUT counts");
	na = calloc(nna + 1, sizeof(*na));
	no = calloc(nno + 1, sizeof(*no));
	if (!na || !no) {
		e = fail(r, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < nna; i++) {
		struct rarea *a = &na[i];

		if (end - p < 48 || (size_t)(end - p - 48) < pt__get32(p + 36)) {
			e = fail(r, -EBADMSG, "protocol error: LAYOUT area %u", i);
			goto out;
		}
		a->a.start = pt__get64(p);
		a->a.end = pt__get64(p + 8);
		a->a.offset = pt__get64(p + 16);
		a->a.prot = pt__get32(p + 24);
		a->a.kind = pt__get32(p + 28);
		a->a.object = pt__get32(p + 32);
		a->a.path_len = pt__get32(p + 36);
		a->path = strndup((const char *)p + 48, a->a.path_len);
		a->a.path = a->path;
		p += 48 + a->a.path_len;
		if (!a->path || a->a.start >= a->a.end || (a->a.start | a->a.end) % P ||
		    (i && a->a.start < na[i - 1].a.end) ||
		    (a->a.object != PT_IMAGE_NO_OBJECT && a->a.object >= nno)) {
			e = fail(r, -EBADMSG, "protocol error: LAYOUT area %u invalid", i);
			goto out;
		}
		if (area_private(&a->a) &&
		    (e = pages_alloc(&a->pg, (a->a.end - a->a.start) / P))) {
			e = fail(r, e, "out of memory");
			goto out;
		}
	}
	for (uint32_t k = 0; k < nno; k++) {
		struct robj *o = &no[k];

		if (end - p < 56 || (size_t)(end - p - 56) < pt__get32(p + 44)) {
			e = fail(r, -EBADMSG, "protocol error: LAYOUT object %u", k);
			goto out;
		}
		o->o.dev_major = pt__get32(p);
		o->o.dev_minor = pt__get32(p + 4);
		o->o.inode = pt__get64(p + 8);
		o->o.size = pt__get64(p + 16);
		o->o.mtime_ns = pt__get64(p + 24);
		o->o.kind = pt__get32(p + 32);
		o->o.flags = pt__get32(p + 36);
		o->o.sysv_key = pt__get32(p + 40);
		o->o.name_len = pt__get32(p + 44);
		o->name = strndup((const char *)p + 56, o->o.name_len);
		o->o.name = o->name;
		p += 56 + o->o.name_len;
		if (!o->name || o->o.size > (1ULL << 46)) {
			e = fail(r, -EBADMSG, "protocol error: LAYOUT object %u invalid", k);
			goto out;
		}
		if ((o->o.flags & PT_OBJECT_STORED) &&
		    (e = pages_alloc(&o->pg, (o->o.size + P - 1) / P))) {
			e = fail(r, e, "out of memory");
			goto out;
		}
	}
	/* carry over what was received: areas by address, objects by identity */
	for (uint32_t i = 0; i < nna; i++) {
		if (!na[i].pg.n)
			continue;
		for (size_t j = 0; j < r->na; j++) {
			struct rarea *old = &r->areas[j];

			if (!old->pg.n || old->a.end <= na[i].a.start || old->a.start >= na[i].a.end)
				continue;
			if (old->a.start == na[i].a.start && old->a.end == na[i].a.end) {
				pages_take(&na[i].pg, &old->pg);
				break;
			}
			uint64_t s0 = old->a.start > na[i].a.start ? old->a.start : na[i].a.start;
			uint64_t t0 = old->a.end < na[i].a.end ? old->a.end : na[i].a.end;

			for (uint64_t a = s0; a < t0 && !e; a += P)
				e = page_move(&na[i].pg, (a - na[i].a.start) / P, &old->pg,
					      (a - old->a.start) / P);
		}
	}
	for (uint32_t k = 0; k < nno; k++) {
		if (!no[k].pg.n)
			continue;
		for (size_t j = 0; j < r->no; j++) {
			struct robj *old = &r->objs[j];

			if (old->o.inode != no[k].o.inode || old->o.dev_major != no[k].o.dev_major ||
			    old->o.dev_minor != no[k].o.dev_minor || !old->pg.n)
				continue;
			if (old->pg.n == no[k].pg.n) {
				pages_take(&no[k].pg, &old->pg);
				break;
			}
			for (uint64_t g = 0; g < old->pg.n && g < no[k].pg.n && !e; g++)
				e = page_move(&no[k].pg, g, &old->pg, g);
		}
	}
	if (e) {
		e = fail(r, -ENOMEM, "out of memory");
		goto out;
	}
	if (r->o.into) {
		struct robj *t = NULL;

		for (uint32_t k = 0; k < nno; k++)
			if (no[k].o.flags & PT_OBJECT_STORED) {
				if (t) {
					e = fail(r, -EINVAL, "--into takes one object; the sender "
						 "sends several");
					goto out;
				}
				t = &no[k];
			}
		if (!t && nno) {
			e = fail(r, -EINVAL, "--into: the sender sends no stored object");
			goto out;
		}
		if (t) {
			if ((e = into_open(r)))
				goto out;
			if (t->o.size != r->into_size || r->round == 0) {
				struct stat st;

				if (fstat(r->into, &st) == 0 && (uint64_t)st.st_size != t->o.size &&
				    ftruncate(r->into, (off_t)t->o.size)) {
					e = fail(r, -errno, "%s: resizing to %llu bytes: %s", r->o.into,
						 (unsigned long long)t->o.size, strerror(errno));
					goto out;
				}
				r->into_size = t->o.size;
			}
		}
	}
	state_free(r);
	r->areas = na;
	r->na = nna;
	r->objs = no;
	r->no = nno;
	return 0;
out:
	for (uint32_t i = 0; na && i < nna; i++) {
		free(na[i].path);
		pages_free(&na[i].pg);
	}
	for (uint32_t k = 0; no && k < nno; k++) {
		free(no[k].name);
		pages_free(&no[k].pg);
	}
	free(na);
	free(no);
	return e;
}

/* ---- PAGES ---- */

static int store_write(struct mrecv *r, const void *buf, size_t n, uint64_t off, const char *what)
{
	const char *b = buf;

	while (n) {
		ssize_t w = pwrite(what ? r->into : r->store, b, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;

			return fail(r, e, "%s: %s", what ? what : "the page store (beside -o FILE)",
				    strerror(-e));
		}
		b += w;
		n -= (size_t)w;
		off += (uint64_t)w;
		if (r->final)
			atomic_fetch_add_explicit(&r->ka_bytes, (uint64_t)w, memory_order_relaxed);
	}
	return 0;
}

static int into_zero(struct mrecv *r, uint64_t off, uint64_t len)
{
	if (fallocate(r->into, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	static const unsigned char z[P];

	for (uint64_t o = 0; o < len; o += P) {
		int e = store_write(r, z, P, off + o, r->o.into);

		if (e)
			return e;
	}
	return 0;
}

/* Pages the source had in swap go back out here too (best effort). */
static void into_pageout(struct mrecv *r, uint64_t off, uint64_t len)
{
	void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, r->into, (off_t)off);

	if (m == MAP_FAILED)
		return;
	madvise(m, len, 21 /* MADV_PAGEOUT */);
	munmap(m, len);
}

static int apply_pages(struct mrecv *r, const unsigned char *p, size_t len)
{
	if (len < PT_MIG_PAGES_HEAD)
		return fail(r, -EBADMSG, "protocol error: short PAGES");
	uint32_t otype = p[0], kind = p[1], flags = p[2], detail = p[3], owner = pt__get32(p + 4);
	uint64_t off = pt__get64(p + 8), n = pt__get32(p + 16);
	const unsigned char *data = p + PT_MIG_PAGES_HEAD;
	struct pages *pg;
	uint64_t first;

	if (kind < PT_PAGE_DATA || kind > PT_PAGE_UNREADABLE || kind == PT_PAGE_UNCHANGED || !n ||
	    (kind == PT_PAGE_DATA && n > PT_MIG_FRAME_PAGES) || off % P ||
	    len != PT_MIG_PAGES_HEAD + (kind == PT_PAGE_DATA ? n * P : 0))
		return fail(r, -EBADMSG, "protocol error: PAGES frame invalid");
	if (otype == PT_OWNER_AREA && owner < r->na && r->areas[owner].pg.n &&
	    off >= r->areas[owner].a.start && off < r->areas[owner].a.end) {
		pg = &r->areas[owner].pg;
		first = (off - r->areas[owner].a.start) / P;
	} else if (otype == PT_OWNER_OBJECT && owner < r->no && r->objs[owner].pg.n) {
		pg = &r->objs[owner].pg;
		first = off / P;
	} else {
		return fail(r, -EBADMSG, "protocol error: PAGES for no owner of the layout");
	}
	if (first + n > pg->n)
		return fail(r, -EBADMSG, "protocol error: PAGES past the end of its owner");
	r->pages_rx += n;
	if (kind != PT_PAGE_DATA) {
		if (pages_set(pg, first, n, (uint8_t)kind,
			      kind == PT_PAGE_UNREADABLE ? (uint8_t)detail : 0))
			return fail(r, -ENOMEM, "out of memory");
	} else {
		for (uint64_t i = 0; i < n; i++) {
			struct chunk_arr *ca = materialize(&pg->c[(first + i) / CH]);

			if (!ca)
				return fail(r, -ENOMEM, "out of memory");
			ca->kind[(first + i) % CH] = PT_PAGE_DATA;
			ca->detail[(first + i) % CH] = 0;
			ca->dirty[(first + i) % CH] = 1;
		}
	}
	if (r->o.into) {
		if (otype != PT_OWNER_OBJECT)
			return 0;	/* only the object is mirrored */
		int e = kind == PT_PAGE_DATA ? store_write(r, data, n * P, off, r->o.into)
					     : into_zero(r, off, n * P);

		if (!e && kind == PT_PAGE_DATA && (flags & PT_MIG_PG_SWAPPED))
			into_pageout(r, off, n * P);
		return e;
	}
	if (kind != PT_PAGE_DATA)
		return 0;
#define SLOT(i) (pg->c[(first + (i)) / CH].arr->slot[(first + (i)) % CH])
	bool fresh = true;

	for (uint64_t i = 0; i < n && fresh; i++)
		fresh = !SLOT(i);
	if (fresh) {
		if (r->next_slot > UINT32_MAX - n - 1)
			return fail(r, -EFBIG, "too many pages");
		for (uint64_t i = 0; i < n; i++)
			SLOT(i) = r->next_slot + (uint32_t)i + 1;
		r->next_slot += (uint32_t)n;
		return store_write(r, data, n * P, (uint64_t)(SLOT(0) - 1) * P, NULL);
	}
	for (uint64_t i = 0; i < n; i++) {
		if (!SLOT(i)) {
			if (r->next_slot >= UINT32_MAX - 1)
				return fail(r, -EFBIG, "too many pages");
			SLOT(i) = ++r->next_slot;
		}
		int e = store_write(r, data + i * P, P, (uint64_t)(SLOT(i) - 1) * P, NULL);

		if (e)
			return e;
	}
#undef SLOT
	return 0;
}

/* ---- commit ---- */

/* The first page of @p never received, or UINT64_MAX. */
static uint64_t first_missing(const struct pages *p)
{
	for (uint64_t c = 0; c < (p->n + CH - 1) / CH; c++) {
		uint64_t lim = p->n - c * CH < CH ? p->n - c * CH : CH;

		if (!p->c[c].arr) {
			if (!p->c[c].ukind)
				return c * CH;
			continue;
		}
		for (uint64_t i = 0; i < lim; i++)
			if (!p->c[c].arr->kind[i])
				return c * CH + i;
	}
	return UINT64_MAX;
}

static int complete_check(struct mrecv *r)
{
	uint64_t g;

	for (size_t i = 0; i < r->na; i++)
		if (r->areas[i].pg.n && (g = first_missing(&r->areas[i].pg)) != UINT64_MAX)
			return fail(r, -EPROTO, "incomplete: page 0x%llx never received",
				    (unsigned long long)(r->areas[i].a.start + g * P));
	for (size_t k = 0; k < r->no; k++)
		if (r->objs[k].pg.n && (g = first_missing(&r->objs[k].pg)) != UINT64_MAX)
			return fail(r, -EPROTO, "incomplete: page %llu of %s never received",
				    (unsigned long long)g, r->objs[k].name);
	return 0;
}

/*
 * What page @g of @pg is in the layer being written: its kind when it was
 * received this round (or in a base layer), else UNCHANGED (the parent
 * layer, the previous round's, has it: carried over by apply_layout()).
 */
static void page_eff(const struct pages *pg, uint64_t g, bool parent, uint8_t *kind,
		     uint8_t *detail, uint32_t *slot)
{
	uint8_t dy;

	page_get(pg, g, kind, detail, slot, &dy);
	if (parent && !dy) {
		*kind = PT_PAGE_UNCHANGED;
		*detail = 0;
		*slot = 0;
	}
}

static int write_owner(struct mrecv *r, struct pt__imgw *w, const char *path, uint32_t type,
		       uint32_t idx, const struct pages *pg, bool parent, unsigned char *buf)
{
	for (uint64_t g = 0; g < pg->n;) {
		uint8_t k, d, k2, d2;
		uint32_t sl;
		uint64_t j = g + 1;

		page_eff(pg, g, parent, &k, &d, &sl);
		while (j < pg->n) {
			if (k == PT_PAGE_DATA && j - g >= PT_MIG_FRAME_PAGES)
				break;
			/* a uniform chunk at once */
			const struct chunk *c = &pg->c[j / CH];

			if (k != PT_PAGE_DATA && j % CH == 0 && !c->arr &&
			    ((parent && !c->udirty) ? (k == PT_PAGE_UNCHANGED)
						    : (c->ukind == k && c->udetail == d))) {
				j = j + CH < pg->n ? j + CH : pg->n;
				continue;
			}
			page_eff(pg, j, parent, &k2, &d2, &sl);
			if (k2 != k || d2 != d)
				break;
			j++;
		}
		if (k == PT_PAGE_DATA)
			for (uint64_t i = g; i < j; i++) {
				page_eff(pg, i, parent, &k2, &d2, &sl);
				ssize_t rd = pread(r->store, buf + (i - g) * P, P,
						   (off_t)(sl - 1) * (off_t)P);

				if (rd != (ssize_t)P)
					return fail(r, rd < 0 ? -errno : -EIO,
						    "reading the page store: %s",
						    rd < 0 ? strerror(errno) : "short read");
			}
		int e = pt__imgw_run(w, type, idx, k, d, j - g, k == PT_PAGE_DATA ? buf : NULL);

		if (e)
			return fail(r, e, "writing %s: %s", path, strerror(-e));
		if (k == PT_PAGE_DATA && r->final)
			atomic_fetch_add_explicit(&r->ka_bytes, (j - g) * P, memory_order_relaxed);
		g = j;
	}
	return 0;
}

/* The writer of the layer @path for the current layout: FULL without a parent, else TRACKED. */
static int layer_open(struct mrecv *r, const char *path, struct pt__imgw **out)
{
	/* FILE does not exist: a FILE.live-N is a leftover (a killed receiver, a
	   removed FILE), no finished result's layer; it is replaced */
	struct pt__imgw_opts wo = { .flags = PT_IMAGE_LIVE, .pid = r->pid, .comm = r->comm,
				    .parent = r->prev, .overwrite = !r->final };
	struct pt_image_area *areas = calloc(r->na + 1, sizeof(*areas));
	struct pt_image_object *objs = calloc(r->no + 1, sizeof(*objs));
	uint32_t delta = r->prev ? PT_DELTA_TRACKED : PT_DELTA_FULL;
	struct pt__imgw *w = NULL;
	int e;

	*out = NULL;
	if (!areas || !objs) {
		e = fail(r, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < r->na; i++) {
		areas[i] = r->areas[i].a;
		areas[i].delta = area_private(&areas[i]) ? delta : PT_DELTA_FULL;
	}
	for (size_t k = 0; k < r->no; k++) {
		objs[k] = r->objs[k].o;
		objs[k].delta = (objs[k].flags & PT_OBJECT_STORED) ? delta : PT_DELTA_FULL;
	}
	e = pt__imgw_open(path, &wo, &w, r->err, r->errlen);
	if (!e && (e = pt__imgw_layout(w, areas, r->na, objs, r->no))) {
		fail(r, e, "%s: layout: %s", path, strerror(-e));
		pt__imgw_abort(w);
		w = NULL;
	}
	*out = w;
out:
	free(areas);
	free(objs);
	return e;
}

static void pages_clean_all(struct mrecv *r)
{
	for (size_t i = 0; i < r->na; i++)
		pages_clean(&r->areas[i].pg);
	for (size_t k = 0; k < r->no; k++)
		pages_clean(&r->objs[k].pg);
}

static int layer_finish(struct mrecv *r, struct pt__imgw *w, const char *path)
{
	struct pt__imgw_result res;
	int e;

	memset(&res, 0, sizeof(res));
	e = pt__imgw_finish(w, &res, r->err, r->errlen);
	if (e)
		return fail(r, e, "writing %s: %s", path, strerror(-e));
	pages_clean_all(r);
	return 0;
}

/*
 * The pages received this round as the layer @path, from the page store
 * (PAGES came out of order): FULL without a parent (round 0), else
 * TRACKED over r->prev.
 */
static int write_layer(struct mrecv *r, const char *path)
{
	unsigned char *buf = malloc(PT_MIG_FRAME_PAGES * P);
	bool parent = r->prev != NULL;
	struct pt__imgw *w = NULL;
	int e;

	if (!buf)
		return fail(r, -ENOMEM, "out of memory");
	e = layer_open(r, path, &w);
	for (size_t i = 0; !e && i < r->na; i++)
		if (r->areas[i].pg.n)
			e = write_owner(r, w, path, PT_OWNER_AREA, (uint32_t)i, &r->areas[i].pg,
					parent, buf);
	for (size_t k = 0; !e && k < r->no; k++)
		if (r->objs[k].pg.n)
			e = write_owner(r, w, path, PT_OWNER_OBJECT, (uint32_t)k, &r->objs[k].pg,
					parent, buf);
	free(buf);
	if (e) {
		pt__imgw_abort(w);
		return e;
	}
	return layer_finish(r, w, path);
}

/* ---- streaming a round's layer ---- */

static const struct pages *owner_pg(const struct mrecv *r, size_t pos)
{
	return pos < r->na ? &r->areas[pos].pg : &r->objs[pos - r->na].pg;
}

/* Out of order: the layer will be written from the page store at the end. */
static void stream_stop(struct mrecv *r)
{
	pt__imgw_abort(r->sw);
	r->sw = NULL;
}

/*
 * Pages [from, to) of owner @pos as UNCHANGED: only when there is a parent
 * and each of them is still what the parent has (received before this
 * round, not in it).  false: not possible (stream_stop).
 */
static bool stream_gap(struct mrecv *r, size_t pos, uint64_t from, uint64_t to)
{
	const struct pages *pg = owner_pg(r, pos);

	if (from >= to)
		return true;
	if (!r->prev)
		return false;
	for (uint64_t g = from; g < to;) {
		const struct chunk *c = &pg->c[g / CH];
		uint64_t lim = (g / CH + 1) * CH < to ? (g / CH + 1) * CH : to;

		if (!c->arr) {
			if (!c->ukind || c->udirty)
				return false;
			g = lim;
			continue;
		}
		for (; g < lim; g++)
			if (!c->arr->kind[g % CH] || c->arr->dirty[g % CH])
				return false;
	}
	return pt__imgw_run(r->sw, pos < r->na ? PT_OWNER_AREA : PT_OWNER_OBJECT,
			    (uint32_t)(pos < r->na ? pos : pos - r->na), PT_PAGE_UNCHANGED, 0,
			    to - from, NULL) == 0;
}

/* Up to page @page of owner @want (r->na + r->no, 0: the end) with UNCHANGED runs. */
static bool stream_to(struct mrecv *r, size_t want, uint64_t page)
{
	if (want < r->sw_pos || (want == r->sw_pos && page < r->sw_next))
		return false;
	while (r->sw_pos < want) {
		if (!stream_gap(r, r->sw_pos, r->sw_next, owner_pg(r, r->sw_pos)->n))
			return false;
		r->sw_pos++;
		r->sw_next = 0;
	}
	if (want < r->na + r->no) {
		if (!stream_gap(r, want, r->sw_next, page))
			return false;
		r->sw_next = page;
	}
	return true;
}

/* A PAGES frame already applied (r's state, the page store): into the layer too. */
static void stream_pages(struct mrecv *r, const unsigned char *p)
{
	uint32_t otype = p[0], kind = p[1], detail = p[3], owner = pt__get32(p + 4);
	uint64_t off = pt__get64(p + 8), n = pt__get32(p + 16), first;
	size_t want;

	if (!r->sw)
		return;
	if (otype == PT_OWNER_AREA) {
		want = owner;
		first = (off - r->areas[owner].a.start) / P;
	} else {
		want = r->na + owner;
		first = off / P;
	}
	if (!stream_to(r, want, first) ||
	    pt__imgw_run(r->sw, otype, owner, kind, kind == PT_PAGE_UNREADABLE ? detail : 0, n,
			 kind == PT_PAGE_DATA ? p + PT_MIG_PAGES_HEAD : NULL)) {
		stream_stop(r);
		return;
	}
	if (kind == PT_PAGE_DATA && r->final)
		atomic_fetch_add_explicit(&r->ka_bytes, n * P, memory_order_relaxed);
	r->sw_next = first + n;
}

/* LAYOUT with -o: open the round's layer (FILE.live-N, or FILE in the final round). */
static int stream_open(struct mrecv *r)
{
	if (r->sw_path) {	/* a second LAYOUT in one round: write at the end */
		stream_stop(r);
		return 0;
	}
	if (r->final ? !(r->sw_path = strdup(r->o.output))
		     : asprintf(&r->sw_path, "%s.live-%u", r->o.output, r->round) < 0) {
		r->sw_path = NULL;
		return fail(r, -ENOMEM, "out of memory");
	}
	r->sw_pos = 0;
	r->sw_next = 0;
	if (pt__fault(PT_FAULT_RECV_STREAM))
		return 0;	/* tests: the fallback (doc/inject.md) */
	return layer_open(r, r->sw_path, &r->sw);
}

/* The end of the round (ROUND_END, COMMIT): finish the layer, streamed or from the store. */
static int round_layer(struct mrecv *r)
{
	int e;

	if (!r->sw_path)
		return fail(r, -EPROTO, "protocol error: a round without LAYOUT");
	if (r->sw && !stream_to(r, r->na + r->no, 0))
		stream_stop(r);
	if (r->sw) {
		e = layer_finish(r, r->sw, r->sw_path);
		r->sw = NULL;
		return e;
	}
	return write_layer(r, r->sw_path);
}

/* ROUND_END with -o: the round's layer FILE.live-N, the next one's parent. */
static int live_layer(struct mrecv *r)
{
	char e[256] = "", **nl;
	struct pt_image *img = NULL;
	int err;

	nl = realloc(r->live, (r->nlive + 1) * sizeof(*nl));
	if (!nl)
		return fail(r, -ENOMEM, "out of memory");
	r->live = nl;
	if ((err = round_layer(r)))
		return err;
	r->live[r->nlive++] = r->sw_path;
	r->sw_path = NULL;
	err = pt_image_open(r->live[r->nlive - 1], &img, e, sizeof(e));
	if (err)
		return fail(r, err, "%s: %s", r->live[r->nlive - 1], e[0] ? e : strerror(-err));
	pt_image_close(r->prev);
	r->prev = img;
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char *d = strdup(path);

	if (!d)
		return -ENOMEM;
	int fd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC), e = 0;

	free(d);
	if (fd < 0)
		return 0;
	if (fsync(fd) && errno != EINVAL)
		e = -errno;
	close(fd);
	return e;
}

static int commit_into(struct mrecv *r)
{
	if (r->into < 0)
		return fail(r, -EPROTO, "--into: nothing was received");
	if (fsync(r->into) && errno != EINVAL)
		return fail(r, -errno, "%s: fsync: %s", r->o.into, strerror(errno));
	if (unlink(r->marker))
		return fail(r, -errno, "%s: %s", r->marker, strerror(errno));
	fsync_dir_of(r->marker);
	return 0;
}

/* ---- serving ---- */

static void send_error(struct mrecv *r)
{
	if (!r->connected)
		return;
	char keep[512];
	const char *m = r->err && r->err[0] ? r->err : "error";

	snprintf(keep, sizeof(keep), "%s", r->err ? r->err : "");
	r->c.idle_timeout_ms = 1000;
	pt__mig_send(&r->c, PT_MIG_ERROR, m, strlen(m), NULL, 0, false, 0);
	if (r->err && r->errlen)
		snprintf(r->err, r->errlen, "%s", keep);
}

static int ack(struct mrecv *r, uint32_t what, uint32_t round, uint64_t pages)
{
	unsigned char a[PT_MIG_ACK_LEN];

	pt__put32(a, what);
	pt__put32(a + 4, round);
	pt__put64(a + 8, pages);
	return pt__mig_send(&r->c, PT_MIG_ACK, a, sizeof(a), NULL, 0, false, 0);
}

/* ---- keepalives (COMMIT_PROGRESS) ---- */

#define KA_INTERVAL_NS 1000000000ULL

/*
 * One COMMIT_PROGRESS: u32 phase (1 final round, 2 commit), u32 count,
 * u64 bytes written since the final round began, u64 ms since then.
 * Best effort: skipped when the socket has no room (a keepalive must
 * never block the commit), never an error of the migration (c->err is
 * left alone); after a failure no more are sent.
 */
static void keepalive(struct mrecv *r)
{
	struct pollfd p = { .fd = r->c.fd, .events = POLLOUT };
	unsigned char k[PT_MIG_PROGRESS_LEN];
	uint64_t now = pt__now_ns();

	if (r->c.version < 2 || r->ka_dead || r->c.torn)
		return;
	r->ka_last = now;
	if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT))
		return;
	pt__put32(k, r->ka_phase);
	pt__put32(k + 4, ++r->ka_count);
	pt__put64(k + 8, atomic_load_explicit(&r->ka_bytes, memory_order_relaxed));
	pt__put64(k + 16, (now - r->ka_t0) / 1000000);
	char *err = r->c.err;
	size_t errlen = r->c.errlen;

	r->c.err = NULL;
	r->c.errlen = 0;
	if (pt__mig_send(&r->c, PT_MIG_COMMIT_PROGRESS, k, sizeof(k), NULL, 0, false, 0))
		r->ka_dead = true;
	r->c.err = err;
	r->c.errlen = errlen;
}

static void *ka_main(void *arg)
{
	struct mrecv *r = arg;

	pthread_mutex_lock(&r->ka_lock);
	while (!r->ka_quit) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;	/* KA_INTERVAL_NS */
		while (!r->ka_quit && pthread_cond_timedwait(&r->ka_cond, &r->ka_lock, &ts) != ETIMEDOUT)
			;
		if (r->ka_quit)
			break;
		pthread_mutex_unlock(&r->ka_lock);
		keepalive(r);
		pthread_mutex_lock(&r->ka_lock);
	}
	pthread_mutex_unlock(&r->ka_lock);
	return NULL;
}

/* The commit begins: keepalives from a thread (none with a version 1 sender). */
static void ka_start(struct mrecv *r)
{
	pthread_condattr_t ca;

	r->ka_phase = PT_MIG_PROGRESS_COMMIT;
	if (r->c.version < 2)
		return;
	keepalive(r);	/* the commit began */
	if (pthread_condattr_init(&ca))
		return;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	r->ka_quit = false;
	if (pthread_mutex_init(&r->ka_lock, NULL) == 0) {
		if (pthread_cond_init(&r->ka_cond, &ca) == 0) {
			if (pthread_create(&r->ka_thr, NULL, ka_main, r) == 0)
				r->ka_running = true;	/* else: no keepalives, the sender may give up */
			else
				pthread_cond_destroy(&r->ka_cond);
		}
		if (!r->ka_running)
			pthread_mutex_destroy(&r->ka_lock);
	}
	pthread_condattr_destroy(&ca);
}

/* Before anything else is sent (the ack, ERROR): the thread is gone. */
static void ka_stop(struct mrecv *r)
{
	if (!r->ka_running)
		return;
	pthread_mutex_lock(&r->ka_lock);
	r->ka_quit = true;
	pthread_cond_signal(&r->ka_cond);
	pthread_mutex_unlock(&r->ka_lock);
	pthread_join(r->ka_thr, NULL);
	pthread_cond_destroy(&r->ka_cond);
	pthread_mutex_destroy(&r->ka_lock);
	r->ka_running = false;
}

/* COMMIT accepted: make the result durable (keepalives meanwhile). */
static int commit(struct mrecv *r)
{
	int e;

	ka_start(r);
	if (pt__fault(PT_FAULT_RECV_COMMIT_STOP))
		kill(getpid(), SIGSTOP);	/* tests: a receiver stopped here */
	if (pt__fault(PT_FAULT_RECV_COMMIT_SLOW)) {
		/* tests: a slow disk, slower than the sender's commit-silence
		   bound (the keepalives carry the sender through) */
		struct timespec ts = { .tv_sec = 15 };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	e = complete_check(r);
	if (!e)
		e = r->o.into ? commit_into(r) : round_layer(r);
	ka_stop(r);
	return e;
}

static int serve(struct mrecv *r)
{
	struct pt__mig_frame f;
	bool hello = false;
	int e;

	for (;;) {
		if (r->final && pt__now_ns() - r->ka_last >= KA_INTERVAL_NS)
			keepalive(r);	/* between frames of the final round */
		e = pt__mig_recv(&r->c, &f);
		if (e)
			return e;
		if (!hello && f.type != PT_MIG_HELLO && f.type != PT_MIG_ABORT)
			return fail(r, -EPROTO, "protocol error: frame %u before HELLO", f.type);
		switch (f.type) {
		case PT_MIG_HELLO:
			if (hello || f.len < PT_MIG_PARAMS_LEN)
				return fail(r, -EPROTO, "protocol error: HELLO");
			if (pt__get32(f.payload) != P)
				return fail(r, -EPROTO, "the sender's page size is %u",
					    pt__get32(f.payload));
			r->pid = (int32_t)pt__get32(f.payload + 4);
			r->mode = pt__get32(f.payload + 8);
			memcpy(r->comm, f.payload + 16, 15);
			r->comm[15] = 0;
			if (r->o.into && r->mode != PT_MIG_MODE_OBJECTS)
				return fail(r, -EINVAL, "--into needs a sender with --object "
					    "(it sends a whole process: use -o FILE)");
			hello = true;
			if ((e = ack(r, PT_MIG_ACK_HELLO, 0, 0)))
				return e;
			break;
		case PT_MIG_ROUND_BEGIN:
			if (f.len < PT_MIG_ROUND_LEN)
				return fail(r, -EPROTO, "protocol error: ROUND_BEGIN");
			r->round = pt__get32(f.payload);
			r->final = pt__get32(f.payload + 4) != 0;
			if (r->final) {
				r->ka_t0 = r->ka_last = pt__now_ns();
				r->ka_phase = PT_MIG_PROGRESS_FINAL;
			}
			break;
		case PT_MIG_LAYOUT:
			if ((e = apply_layout(r, f.payload, f.len)) ||
			    (r->o.output && (e = stream_open(r))))
				return e;
			break;
		case PT_MIG_PAGES:
			if ((e = apply_pages(r, f.payload, f.len)))
				return e;
			if (r->o.output)
				stream_pages(r, f.payload);
			break;
		case PT_MIG_ROUND_END:
			if (f.len < PT_MIG_ROUND_LEN || pt__get32(f.payload) != r->round || r->final)
				return fail(r, -EPROTO, "protocol error: ROUND_END");
			if (pt__get32(f.payload + 4) & PT_MIG_ROUND_CUT) {
				/* cut at the sender's --timeout: no layer; what came in
				   it stays "received this round" for the final round's
				   delta, whose ROUND_BEGIN comes next */
				if (r->o.output) {
					stream_stop(r);
					free(r->sw_path);
					r->sw_path = NULL;
				}
				if ((e = ack(r, PT_MIG_ACK_ROUND, r->round, r->pages_rx)))
					return e;
				break;
			}
			r->rep->rounds = r->round + 1;
			/* the layer is written before the ack: the sender's next round
			   (the switch-over's, at the latest) does not wait behind it */
			if (r->o.output && ((e = complete_check(r)) || (e = live_layer(r))))
				return e;
			if ((e = ack(r, PT_MIG_ACK_ROUND, r->round, r->pages_rx)))
				return e;
			break;
		case PT_MIG_COMMIT: {
			if (f.len < PT_MIG_COMMIT_LEN)
				return fail(r, -EPROTO, "protocol error: COMMIT");
			uint64_t frames = pt__get64(f.payload + 8), pages = pt__get64(f.payload + 16);

			/* the sender counts its frames after the handshake's one */
			if (frames + 1 != f.seq || pages != r->pages_rx)
				return fail(r, -EPROTO, "commit record mismatch: %llu frames, %llu "
					    "pages announced; %llu and %llu received",
					    (unsigned long long)frames, (unsigned long long)pages,
					    (unsigned long long)(f.seq - 1),
					    (unsigned long long)r->pages_rx);
			if (!r->final)
				return fail(r, -EPROTO, "protocol error: COMMIT outside the final round");
			if ((e = commit(r)))
				return e;
			r->rep->rounds = r->round;
			for (size_t i = 0; i < r->na; i++)
				r->rep->pages_total += r->areas[i].pg.n;
			for (size_t k = 0; k < r->no; k++)
				r->rep->pages_total += r->objs[k].pg.n;
			r->c.idle_timeout_ms = 2000;
			/* done either way: the result is durable */
			if (ack(r, PT_MIG_ACK_COMMIT, r->round, r->pages_rx))
				pt__log(PT_LOG_WARN, "migrate: committed, but the acknowledgement "
					"could not be sent: the sender reports the outcome as unknown "
					"(commit_unknown) and resumed the source");
			return 0;
		}
		case PT_MIG_ABORT:
			return fail(r, -ECANCELED, "the sender aborted: %.*s",
				    (int)(f.len < 400 ? f.len : 400), (const char *)f.payload);
		default:
			return fail(r, -EPROTO, "protocol error: unexpected frame type %u", f.type);
		}
	}
}

static int listen_on(struct mrecv *r, const char *addr, int *out)
{
	char host[256], port[16], shown[320], ip[INET6_ADDRSTRLEN];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE },
			*res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd, e, one = 1;

	if (pt__mig_split_addr(addr, host, sizeof(host), port, sizeof(port)))
		return fail(r, -EINVAL, "bad address '%s' (ADDR:PORT)", addr);
	e = getaddrinfo(host, port, &hints, &res);
	if (e)
		return fail(r, -EADDRNOTAVAIL, "%s: %s", host, gai_strerror(e));
	if ((r->o.flags & PT_MIGRATE_INSECURE) && !pt__mig_is_loopback(res->ai_addr)) {
		freeaddrinfo(res);
		return fail(r, -EPERM, "--insecure is allowed on loopback only (%s)", host);
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 4)) {
		e = -errno;
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return fail(r, e, "listening on %s: %s", addr, strerror(-e));
	}
	freeaddrinfo(res);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
		snprintf(shown, sizeof(shown), "[%s]:%u", ip,
			 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
		snprintf(shown, sizeof(shown), "%s:%u", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
	}
	if (r->o.listening)
		r->o.listening(shown, r->o.ctx);
	*out = fd;
	return 0;
}

static int accept_one(struct mrecv *r, int lfd, int *out)
{
	uint64_t end = r->o.accept_timeout_ns ? pt__now_ns() + r->o.accept_timeout_ns : 0;
	struct sockaddr_storage ss;
	socklen_t sl;

	if (end && fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK))
		return fail(r, -errno, "listening: %s", strerror(errno));
	for (;;) {
		if (end) {
			struct pollfd p = { .fd = lfd, .events = POLLIN };
			uint64_t now = pt__now_ns();

			if (now >= end)
				return fail(r, -ETIMEDOUT, "no sender connected within %.3g s "
					    "(--timeout)", (double)r->o.accept_timeout_ns / 1e9);
			if (poll(&p, 1, (int)((end - now + 999999) / 1000000)) <= 0)
				continue;	/* the time is checked again */
		}
		sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			return fail(r, -errno, "accept: %s", strerror(errno));
		}
		if ((r->o.flags & PT_MIGRATE_INSECURE) && !pt__mig_is_loopback((struct sockaddr *)&ss)) {
			close(fd);
			continue;
		}
		*out = fd;
		return 0;
	}
}

int pt_migrate_receive(const char *listen, const struct pt_migrate_recv_opts *opts,
		       struct pt_migrate_recv_report *report, char *err, size_t errlen)
{
	struct pt_migrate_recv_report rep = { .sz = sizeof(rep) };
	struct mrecv r;
	int lfd = -1, fd = -1, e;
	uint64_t t0 = pt__now_ns();

	if (err && errlen)
		err[0] = 0;
	memset(&r, 0, sizeof(r));
	r.err = err;
	r.errlen = errlen;
	r.store = r.into = -1;
	r.c.fd = -1;
	if (!listen || !opts || !PT_OPTS_VALID(opts, pt_migrate_recv_opts) || opts->reserved ||
	    (opts->flags & ~PT_MIGRATE_INSECURE) || !opts->output == !opts->into ||
	    ((opts->flags & PT_MIGRATE_INSECURE) ? opts->key != NULL
						 : (!opts->key || opts->key_len < 32)) ||
	    (report && (report->sz < sizeof(size_t) ||
			!pt__opts_tail_zero(report, sizeof(*report), report->sz))))
		return fail(&r, -EINVAL, "invalid arguments");
	memcpy(&r.o, opts, opts->sz < sizeof(r.o) ? opts->sz : sizeof(r.o));
	r.rep = &rep;
	if (r.o.output) {
		char *d = strdup(r.o.output);

		if (!d)
			return -ENOMEM;
		if (access(r.o.output, F_OK) == 0) {
			free(d);
			return fail(&r, -EEXIST, "%s exists", r.o.output);
		}
		r.store = open(dirname(d), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		e = -errno;
		free(d);
		if (r.store < 0)
			return fail(&r, e, "%s: page store: %s", r.o.output, strerror(-e));
	} else if (asprintf(&r.marker, "%s.pagetrack-incomplete", r.o.into) < 0) {
		return -ENOMEM;
	}
	e = listen_on(&r, listen, &lfd);
	if (!e)
		e = accept_one(&r, lfd, &fd);
	if (lfd >= 0)
		close(lfd);
	if (!e) {
		r.c.idle_timeout_ms = r.o.idle_timeout_ns ? (r.o.idle_timeout_ns + 999999) / 1000000
							  : 60000;
		e = pt__mig_conn_init(&r.c, fd, false,
				      (r.o.flags & PT_MIGRATE_INSECURE) ? NULL : r.o.key,
				      r.o.key_len, err, errlen);
		r.connected = true;
		if (!e)
			e = serve(&r);
		if (e && e != -ECANCELED)
			send_error(&r);
	}
	rep.bytes_received = r.c.bytes_in;
	rep.pages_received = r.pages_rx;
	rep.duration_ns = pt__now_ns() - t0;
	if (r.connected)
		pt__mig_conn_free(&r.c);
	if (r.store >= 0)
		close(r.store);
	if (r.into >= 0)
		close(r.into);
	free(r.marker);
	state_free(&r);
	pt__imgw_abort(r.sw);
	free(r.sw_path);
	pt_image_close(r.prev);
	for (size_t i = 0; i < r.nlive; i++) {
		if (e)
			unlink(r.live[i]);	/* nothing half-done stays */
		free(r.live[i]);
	}
	free(r.live);
	if (report) {
		size_t n = report->sz < sizeof(rep) ? report->sz : sizeof(rep);

		memcpy((char *)report + sizeof(size_t), (char *)&rep + sizeof(size_t),
		       n - sizeof(size_t));
	}
	return e;
}
