/* SPDX-License-Identifier: MIT */
/*
 * Shared memory, told truthfully.
 *
 * The page table cannot tell a never-touched page of a shared mapping
 * from one that is in swap or in the page cache but not mapped here: all
 * three read as an empty entry (and uffd-wp PTE markers hide the same
 * three cases).  The backing object knows: on shmem, SEEK_DATA/SEEK_HOLE
 * count swapped pages as data, and mincore() on our own read-only shared
 * mapping of the object counts page-cache and swap-cache pages as
 * resident.  So, for every PT_STATE_NONE run:
 *
 *	shmem:   hole -> ABSENT; data+resident -> CACHED; data -> SWAPPED
 *	file:    resident -> CACHED; otherwise ABSENT
 *	anon:    ABSENT (private anon memory has no object to hide behind)
 *
 * Cost, per NONE run: one SEEK_DATA/SEEK_HOLE pair per shmem data
 * extent (the extent's end is remembered briefly across windows, since
 * SEEK_HOLE walks the whole extent), one mmap + mincore + munmap per
 * SH_VEC pages of data; never a syscall per page.  Opened objects are
 * cached per target, keyed by device and inode, so a scan of many windows opens each object once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "pt_internal.h"

#define SH_TMPFS_MAGIC		0x01021994UL
#define SH_HUGETLBFS_MAGIC	0x958458f6UL

#define SH_VEC		65536u		/* pages per mmap + mincore (256 MiB) */
#define SH_MAX_OPEN	128		/* cached open objects per target */

enum sh_type {
	SH_NO_ACCESS = 0,	/* could not open: pages are UNKNOWN */
	SH_SHMEM,		/* tmpfs / shmem: can be in swap */
	SH_FILE,		/* other regular file: page cache only */
	SH_HUGETLB,		/* hugetlbfs: not inspected */
	SH_OTHER,		/* device or other non-regular object */
};

/*
 * One backing object.  Objects that could not be opened are cached too
 * (fd -1, SH_NO_ACCESS) so that every window does not retry the /proc
 * walk; a target handle therefore does not notice an object becoming
 * reachable later (open a new target for that).
 */
struct pt_shared_obj {
	struct pt_shared_obj *next;
	dev_t dev;
	uint64_t ino;
	int fd;
	enum sh_type type;
	bool mincore_ok;	/* mincore tells the truth for this object */
	uint64_t hint_lo, hint_hi, hint_epoch;	/* see shmem_data_end() */
};

/* State of one pt__shared_resolve() call. */
struct sh_ctx {
	const struct pt_vma *v;
	const struct pt_region *run;	/* input run being resolved */
	struct pt_runbuf *out;
	uint64_t *stopped;
	unsigned char *vec;		/* SH_VEC bytes, allocated lazily */
	uint64_t epoch;			/* t->scan_epoch: hints are valid within one scan */
	bool all_data;			/* pt__shared_resolve_object(): file pages not
					   resident are SWAPPED (data elsewhere), not ABSENT */
};

static bool vma_is_anon(const struct pt_vma *v)
{
	switch (v->kind) {
	case PT_VMA_ANON:
	case PT_VMA_HEAP:
	case PT_VMA_STACK:
		return true;
	case PT_VMA_SPECIAL:
		/* [vdso] etc.; device mappings carry an inode and a path */
		return !v->inode || v->path[0] != '/';
	default:
		return false;
	}
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* Emit [start,end) of the current input run with @state. */
static int emit(struct sh_ctx *c, uint64_t start, uint64_t end, uint8_t state,
		uint8_t reason, uint32_t add_attrs)
{
	struct pt_region p = *c->run;
	int err;

	if (start >= end)
		return 0;
	p.state = state;
	p.reason = state == PT_STATE_UNKNOWN ? reason : PT_REASON_NONE;
	p.attrs = (p.attrs & ~PT_ATTR_LOC) | add_attrs;
	p.loc = 0;
	p.swap_type = 0;
	err = pt__run_append(c->out, start, end, &p);
	if (err == -ENOSPC)
		*c->stopped = start;
	return err;
}

/* File offset <-> address inside the VMA. */
static uint64_t off_of(const struct pt_vma *v, uint64_t addr)
{
	return v->offset + (addr - v->start);
}

static uint64_t addr_of(const struct pt_vma *v, uint64_t off)
{
	return v->start + (off - v->offset);
}

static uint64_t page_down(uint64_t x)
{
	return x & ~(PT_PAGE_SIZE - 1);
}

static uint64_t page_up(uint64_t x)
{
	return (x + PT_PAGE_SIZE - 1) & ~(PT_PAGE_SIZE - 1);
}

/* ---- opening and caching backing objects ---- */

static bool has_cap(int cap)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d))
		return false;
	return d[cap / 32].effective & (1u << (cap % 32));
}

/*
 * mincore() on a file mapping reports every page resident unless the
 * caller owns the inode (or has CAP_FOWNER) or could open it for writing
 * (mm/mincore.c can_do_mincore()).  Mirror that test so a lie is never
 * taken for the truth.
 */
static bool mincore_truthful(int fd, const struct stat *st)
{
	char path[64];

	if (st->st_uid == geteuid() || has_cap(CAP_FOWNER))
		return true;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0;
}

static bool same_obj(const struct stat *st, dev_t dev, uint64_t ino)
{
	return st->st_dev == dev && (uint64_t)st->st_ino == ino;
}

/*
 * stat() @path (following the link: no open, so no side effect on
 * devices or FIFOs) and, when it is the object, open it read-only.
 * Returns 1 when @o was filled, 0 when this way does not lead to the
 * object, -errno on a hard error.
 */
static int try_open_at(int dirfd, const char *path, struct pt_shared_obj *o)
{
	struct stat st;
	int fd;

	if (fstatat(dirfd, path, &st, 0))
		return errno == ENOMEM ? -ENOMEM : 0;
	if (!same_obj(&st, o->dev, o->ino))
		return 0;
	if (!S_ISREG(st.st_mode)) {
		o->type = SH_OTHER;
		return 1;
	}
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOMEM || errno == EMFILE || errno == ENFILE ? -errno : 0;
	o->fd = fd;
	return 1;
}

/* Look through the target's open fds for the object (memfd, unlinked files). */
static int try_fds(const struct pt_target *t, struct pt_shared_obj *o)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/fd", t->procdir);
	d = opendir(path);
	if (!d)
		return errno == ENOMEM ? -ENOMEM : 0;
	while (!ret && (de = readdir(d)))
		if (de->d_name[0] != '.')
			ret = try_open_at(dirfd(d), de->d_name, o);
	closedir(d);
	return ret;
}

static int obj_open(const struct pt_target *t, const struct pt_vma *v, struct pt_shared_obj *o)
{
	char path[96];
	int ret;

	/* 1. The mapping itself (needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE). */
	snprintf(path, sizeof(path), "%s/map_files/%llx-%llx", t->procdir,
		 (unsigned long long)v->start, (unsigned long long)v->end);
	ret = try_open_at(AT_FDCWD, path, o);
	/* 2. The path, when it still names the object in our namespace. */
	if (!ret && v->path[0] == '/' && !ends_with(v->path, " (deleted)"))
		ret = try_open_at(AT_FDCWD, v->path, o);
	/* 3. An fd the target holds (memfd, deleted files, /dev/shm). */
	if (!ret && (v->inode || o->dev))
		ret = try_fds(t, o);
	if (ret < 0)
		return ret;
	if (o->fd >= 0) {
		struct statfs sfs;
		struct stat st;

		if (fstatfs(o->fd, &sfs) || fstat(o->fd, &st))
			return -errno;
		if ((unsigned long)sfs.f_type == SH_HUGETLBFS_MAGIC)
			o->type = SH_HUGETLB;
		else if ((unsigned long)sfs.f_type == SH_TMPFS_MAGIC)
			o->type = SH_SHMEM;
		else
			o->type = SH_FILE;
		o->mincore_ok = mincore_truthful(o->fd, &st);
	}
	return 0;
}

static void obj_close(struct pt_shared_obj *o)
{
	if (o->fd >= 0)
		close(o->fd);
	free(o);
}

/*
 * The cached object behind @v, opening it on first use.  Most recently
 * used first; beyond SH_MAX_OPEN entries the oldest is dropped so a
 * target with thousands of mapped files does not exhaust our fds.
 */
static int obj_get(struct pt_target *t, const struct pt_vma *v, struct pt_shared_obj **out)
{
	dev_t dev = makedev(v->dev_major, v->dev_minor);
	struct pt_shared_obj **pp, *o;
	size_t n;
	int err;

	for (pp = &t->objs; (o = *pp); pp = &o->next) {
		if (o->dev == dev && o->ino == v->inode) {
			*pp = o->next;
			o->next = t->objs;
			t->objs = o;
			*out = o;
			return 0;
		}
	}
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->fd = -1;
	o->dev = dev;
	o->ino = v->inode;
	err = obj_open(t, v, o);
	if (!err && o->type == SH_NO_ACCESS && pt_target_alive(t) == 0)
		err = -ESRCH;
	if (err) {
		obj_close(o);
		return err;
	}
	o->next = t->objs;
	t->objs = o;
	*out = o;
	/* drop the least recently used beyond the bound */
	for (n = 1, o = t->objs; o->next; o = o->next, n++) {
		if (n == SH_MAX_OPEN) {
			struct pt_shared_obj *x = o->next, *y;

			o->next = NULL;
			for (; x; x = y) {
				y = x->next;
				obj_close(x);
			}
			break;
		}
	}
	return 0;
}

void pt__shared_free(struct pt_target *t)
{
	struct pt_shared_obj *o, *next;

	if (!t)
		return;
	for (o = t->objs; o; o = next) {
		next = o->next;
		obj_close(o);
	}
	t->objs = NULL;
}

/* ---- asking the object ---- */

/*
 * End of the shmem data extent that starts at @ds (page aligned).
 * SEEK_HOLE walks the whole extent, which can run far past the window
 * being resolved (a swapped stretch followed by gigabytes of resident
 * data): the answer is remembered for the rest of the same scan (one
 * scan epoch, see pt_scan()) so its next windows do not walk it again.
 * A hole punched meanwhile may go unseen, the same race any scan of a
 * live process has.
 */
static int shmem_data_end(struct pt_shared_obj *o, uint64_t epoch, uint64_t ds, uint64_t *he)
{
	off_t h;

	if (o->hint_hi && ds >= o->hint_lo && ds < o->hint_hi && o->hint_epoch == epoch) {
		*he = o->hint_hi;
		return 0;
	}
	h = lseek(o->fd, (off_t)ds, SEEK_HOLE);
	if (h < 0) {
		if (errno != ENXIO)
			return -errno;
		*he = ds;	/* truncated under us: no data here any more */
		return 0;
	}
	*he = page_up((uint64_t)h);
	o->hint_lo = ds;
	o->hint_hi = *he;
	o->hint_epoch = epoch;
	return 0;
}

/*
 * Object offsets [off, end), page aligned, at most SH_VEC pages, all
 * data: one read-only shared mapping, one mincore.  Resident pages (page
 * cache or swap cache) are CACHED, the others @not_resident.  Pages
 * found beyond EOF afterwards (the file shrank meanwhile) become ABSENT.
 */
static int mincore_chunk(struct sh_ctx *c, const struct pt_shared_obj *o, uint64_t off,
			 uint64_t end, uint8_t not_resident)
{
	const struct pt_vma *v = c->v;
	uint64_t len = end - off, n = len >> PT_PAGE_SHIFT, eof;
	struct stat st;
	void *map;
	int err = 0;

	if (!c->vec && !(c->vec = malloc(SH_VEC)))
		return -ENOMEM;
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, o->fd, (off_t)off);
	if (map == MAP_FAILED) {
		if (errno == ENOMEM)
			return -ENOMEM;
		/* not mappable (ENODEV, EACCES, ...): cannot tell */
		return emit(c, addr_of(v, off), addr_of(v, end), PT_STATE_UNKNOWN,
			    PT_REASON_UNSUPPORTED, 0);
	}
	if (mincore(map, len, c->vec) || fstat(o->fd, &st))
		err = -errno;
	munmap(map, len);
	if (err)
		return err;
	eof = page_up((uint64_t)st.st_size);
	for (uint64_t i = 0, j; i < n && !err; i = j) {
		uint64_t a = off + (i << PT_PAGE_SHIFT), b;
		bool res = c->vec[i] & 1;

		if (a >= eof)
			return emit(c, addr_of(v, a), addr_of(v, end), PT_STATE_ABSENT, 0,
				    PT_ATTR_FILE);
		for (j = i + 1; j < n && !!(c->vec[j] & 1) == res; j++)
			;
		b = off + (j << PT_PAGE_SHIFT);
		if (b > eof) {
			b = eof;
			j = (eof - off) >> PT_PAGE_SHIFT;
		}
		err = emit(c, addr_of(v, a), addr_of(v, b), res ? PT_STATE_CACHED : not_resident, 0,
			   PT_ATTR_FILE);
	}
	return err;
}

/*
 * Resolve object offsets [off, end).  Beyond EOF is absent.  Shmem:
 * SEEK_DATA/SEEK_HOLE split the range into holes (absent) and data
 * extents (swapped pages count as data); mincore then tells cached from
 * swapped.  Other files: mincore alone, not resident = absent.  When
 * mincore would lie, data pages are UNKNOWN (holes are still told:
 * SEEK_DATA needs no privilege beyond reading).
 */
static int resolve_object(struct sh_ctx *c, struct pt_shared_obj *o, uint64_t off, uint64_t end)
{
	const uint64_t chunk = (uint64_t)SH_VEC << PT_PAGE_SHIFT;
	const struct pt_vma *v = c->v;
	uint8_t not_res = o->type == SH_SHMEM || c->all_data ? PT_STATE_SWAPPED : PT_STATE_ABSENT;
	uint64_t pos = off, eof, lim;
	struct stat st;
	int err = 0;

	if (fstat(o->fd, &st))
		return -errno;
	eof = page_up((uint64_t)st.st_size);
	lim = eof < off ? off : eof > end ? end : eof;
	while (pos < lim && !err) {
		uint64_t ds = pos, he = lim;

		if (o->type == SH_SHMEM || c->all_data) {
			off_t d = lseek(o->fd, (off_t)pos, SEEK_DATA);

			if (d < 0 && errno != ENXIO)	/* ENXIO: no data at or after pos */
				return -errno;
			ds = d < 0 ? lim : page_down((uint64_t)d);
			if (ds > lim)
				ds = lim;
			err = emit(c, addr_of(v, pos), addr_of(v, ds), PT_STATE_ABSENT, 0,
				   PT_ATTR_FILE);
			pos = ds;
			if (err || ds >= lim)
				break;
			err = shmem_data_end(o, c->epoch, ds, &he);
			if (err)
				return err;
			if (he <= ds) {		/* truncated meanwhile */
				he = lim;
				err = emit(c, addr_of(v, ds), addr_of(v, he), PT_STATE_ABSENT, 0,
					   PT_ATTR_FILE);
				pos = he;
				continue;
			}
			he = he > lim ? lim : he;
		}
		if (!o->mincore_ok) {
			err = emit(c, addr_of(v, ds), addr_of(v, he), PT_STATE_UNKNOWN,
				   PT_REASON_MINCORE_DENIED, 0);
		} else {
			for (uint64_t a = ds; a < he && !err; a += chunk)
				err = mincore_chunk(c, o, a, he - a > chunk ? a + chunk : he, not_res);
		}
		pos = he;
	}
	if (err)
		return err;
	return emit(c, addr_of(v, pos), addr_of(v, end), PT_STATE_ABSENT, 0, PT_ATTR_FILE);
}

static int resolve_run(struct pt_target *t, struct sh_ctx *c, bool resolve,
		       struct pt_shared_obj **obj)
{
	const struct pt_region *r = c->run;
	const struct pt_vma *v = c->v;
	int err;

	if (vma_is_anon(v))
		return emit(c, r->start, r->end, PT_STATE_ABSENT, 0, 0);
	if (!resolve)
		return emit(c, r->start, r->end, PT_STATE_UNKNOWN, PT_REASON_NOT_RESOLVED, 0);
	if (v->kind == PT_VMA_HUGETLB)
		return emit(c, r->start, r->end, PT_STATE_UNKNOWN, PT_REASON_UNSUPPORTED, 0);
	if (!*obj) {
		err = obj_get(t, v, obj);
		if (err)
			return err;
	}
	switch ((*obj)->type) {
	case SH_SHMEM:
	case SH_FILE:
		return resolve_object(c, *obj, off_of(v, r->start), off_of(v, r->end));
	case SH_HUGETLB:
		return emit(c, r->start, r->end, PT_STATE_UNKNOWN, PT_REASON_UNSUPPORTED, 0);
	case SH_OTHER:
		return emit(c, r->start, r->end, PT_STATE_ABSENT, 0, 0);
	case SH_NO_ACCESS:
		break;
	}
	return emit(c, r->start, r->end, PT_STATE_UNKNOWN, PT_REASON_NO_ACCESS, 0);
}

int pt__shared_resolve(struct pt_target *t, const struct pt_vma *v,
		       const struct pt_runbuf *in, bool resolve,
		       struct pt_runbuf *out, uint64_t *stopped)
{
	struct sh_ctx c = { .v = v, .out = out, .stopped = stopped, .epoch = t->scan_epoch };
	struct pt_shared_obj *obj = NULL;
	int err = 0;

	/* nothing to write: do not hold the caller back */
	*stopped = in->n ? in->r[in->n - 1].end : UINT64_MAX;
	for (size_t i = 0; i < in->n && !err; i++) {
		const struct pt_region *r = &in->r[i];

		c.run = r;
		if (r->state != PT_STATE_NONE) {
			err = pt__run_append(out, r->start, r->end, r);
			if (err == -ENOSPC)
				*stopped = r->start;
			continue;
		}
		err = resolve_run(t, &c, resolve, &obj);
	}
	free(c.vec);
	if (err == -ENOSPC)
		return 0;
	if (err == -ENOENT || err == -ESRCH)
		return pt__target_errno(t, err);
	return err;
}

int pt__shared_obj_fd(struct pt_target *t, const struct pt_vma *v, bool *shmem)
{
	struct pt_shared_obj *o;
	int err;

	if (!pt__vma_has_object(v))
		return -1;
	err = obj_get(t, v, &o);
	if (err)
		return err;
	if (shmem)
		*shmem = o->type == SH_SHMEM;
	return o->type == SH_SHMEM || o->type == SH_FILE || o->type == SH_HUGETLB ? o->fd : -1;
}

int pt__shared_resolve_object(struct pt_target *t, const struct pt_vma *v, uint64_t off,
			      uint64_t end, struct pt_runbuf *out, uint64_t *stopped)
{
	/* an area that maps the object at address == offset */
	struct pt_vma id = *v;
	struct pt_region run = { .start = off, .end = end, .state = PT_STATE_NONE };
	struct sh_ctx c = { .v = &id, .run = &run, .out = out, .stopped = stopped,
			    .epoch = t->scan_epoch, .all_data = true };
	struct pt_shared_obj *o;
	int err;

	id.start = 0;
	id.end = UINT64_MAX;
	id.offset = 0;
	*stopped = end;
	err = obj_get(t, v, &o);
	if (err)
		return pt__target_errno(t, err);
	switch (o->type) {
	case SH_SHMEM:
	case SH_FILE:
		err = resolve_object(&c, o, off, end);
		break;
	case SH_HUGETLB:	/* never swapped: all present */
		err = emit(&c, off, end, PT_STATE_PRESENT, 0, PT_ATTR_FILE);
		break;
	case SH_OTHER:
		err = emit(&c, off, end, PT_STATE_UNKNOWN, PT_REASON_UNSUPPORTED, 0);
		break;
	case SH_NO_ACCESS:
		err = emit(&c, off, end, PT_STATE_UNKNOWN, PT_REASON_NO_ACCESS, 0);
		break;
	}
	free(c.vec);
	if (err == -ENOSPC)
		return 0;
	return err;
}
