// SPDX-License-Identifier: MIT
/*
 * pagetrack image show|verify|diff|extract|core: look into image layers
 * (doc/image-format.md) with the public pt_image_* API.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define P 4096u
#define CHUNK 256u	/* pages read at once */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pagetrack image show [--json] FILE\n"
		"       pagetrack image verify FILE [PID]\n"
		"       pagetrack image diff [--json] OLD NEW\n"
		"       pagetrack image extract FILE (--area ADDR | --object PATH) -o OUT\n"
		"       pagetrack image core FILE -o CORE\n"
		"\n"
		"show     the layer and its chain: areas, objects, pages by kind, sizes\n"
		"verify   every checksum of the layer and of its chain; with PID, also\n"
		"         compare it page by page with the process (frozen meanwhile) and\n"
		"         list the pages that differ; exit 0 only when all is equal\n"
		"diff     the pages that differ between two snapshots\n"
		"extract  the content of the area holding ADDR, or of a stored shared\n"
		"         object (its name as /proc/PID/maps shows it), as a plain file\n"
		"         (holes of an object stay holes)\n"
		"core     an ELF core file of a frozen layer, for gdb\n"
		"\n"
		"Options: -j, --json (show, diff)  -o, --output FILE (extract, core)\n"
		"         -h, --help\n"
		"Exit status: 0 success, 1 runtime error or differences found, 2 usage error.\n");
}

struct img_cli {
	bool json;
	const char *out, *object;
	bool have_area;
	uint64_t area;
	char **args;
	int nargs;
};

static int parse_args(int argc, char **argv, struct img_cli *o)
{
	enum { O_AREA = 256, O_OBJECT };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'o' },
		{ "area", required_argument, NULL, O_AREA },
		{ "object", required_argument, NULL, O_OBJECT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	o->json = cli_wants_json(argc, argv);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":jo:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': o->json = true; break;
		case 'o': o->out = optarg; break;
		case O_AREA: {
			char *end;

			errno = 0;
			o->area = strtoull(optarg, &end, 16);
			if (errno || end == optarg || *end) {
				cli_error(o->json, 0, "--area: '%s' is not an address", optarg);
				return -1;
			}
			o->have_area = true;
			break;
		}
		case O_OBJECT: o->object = optarg; break;
		case 'h': usage(stdout); return 1;
		case ':':
			cli_error(o->json, 0, "option '%s' needs a value", argv[optind - 1]);
			return -1;
		default:
			cli_error(o->json, 0, "unknown option '%s' (try 'pagetrack image --help')",
				  argv[optind - 1]);
			return -1;
		}
	}
	o->args = argv + optind;
	o->nargs = argc - optind;
	return 0;
}

static int open_img(const char *path, struct pt_image **img, bool json)
{
	char e[1024] = "";
	int r = pt_image_open(path, img, e, sizeof(e));

	if (r < 0)
		cli_error(json, -r, "%s", e[0] ? e : strerror(-r));
	return r;
}

/* ---- show ---- */

struct counts {
	uint64_t k[6];
};

struct show_ctx {
	struct counts *areas, *objs, total;
};

static int count_run(const struct pt_image_run *r, void *ctx)
{
	struct show_ctx *s = ctx;
	unsigned k = r->kind < 6 ? r->kind : 0;

	if (r->owner_type == PT_OWNER_AREA)
		s->areas[r->owner].k[k] += r->npages;
	else
		s->objs[r->owner].k[k] += r->npages;
	s->total.k[k] += r->npages;
	return 0;
}

static void json_counts(struct json *j, const char *key, const struct counts *c)
{
	json_obj_begin(j, key);
	for (int k = PT_PAGE_DATA; k <= PT_PAGE_UNREADABLE; k++)
		json_uint(j, pt_page_kind_name(k), c->k[k]);
	json_obj_end(j);
}

static void prot_str(uint32_t prot, char out[5])
{
	out[0] = prot & PT_PROT_READ ? 'r' : '-';
	out[1] = prot & PT_PROT_WRITE ? 'w' : '-';
	out[2] = prot & PT_PROT_EXEC ? 'x' : '-';
	out[3] = prot & PT_MAP_SHARED ? 's' : 'p';
	out[4] = 0;
}

/* Image strings are not NUL-terminated: a terminated copy in @buf. */
static const char *cstr(const char *p, size_t n, char *buf, size_t cap)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, p, n);
	buf[n] = 0;
	return buf;
}

static const char *flags_str(uint32_t f)
{
	return f & PT_IMAGE_FROZEN ? "frozen" : f & PT_IMAGE_LIVE ? "live" : "?";
}

static int do_show(struct img_cli *o)
{
	struct pt_image *img = NULL;
	PT_OPTS(pt_image_info, in);
	const struct pt_image_area *a;
	const struct pt_image_object *ob;
	size_t na, no;
	static char pbuf[8200];
	int r;

	if (o->nargs != 1) {
		cli_error(o->json, 0, "image show: one FILE");
		return PT_EXIT_USAGE;
	}
	if (open_img(o->args[0], &img, o->json) < 0)
		return PT_EXIT_RUNTIME;
	pt_image_info(img, &in);
	pt_image_areas(img, &a, &na);
	pt_image_objects(img, &ob, &no);
	struct show_ctx sc = { calloc(na + 1, sizeof(struct counts)),
			       calloc(no + 1, sizeof(struct counts)), { { 0 } } };

	if (!sc.areas || !sc.objs) {
		cli_error(o->json, ENOMEM, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	r = pt_image_runs(img, count_run, &sc);
	if (r < 0) {
		cli_error(o->json, -r, "%s: %s", o->args[0], strerror(-r));
		goto out;
	}
	/* the chain, from this layer to the base */
	const char *chain[1025];
	size_t nchain = 0;
	struct pt_image *cur = img;
	char e[1024] = "";
	int chain_err = 0;

	chain[nchain++] = o->args[0];
	while (nchain < 1025) {
		PT_OPTS(pt_image_info, ci);
		struct pt_image *par = NULL;

		pt_image_info(cur, &ci);
		if (!(ci.flags & PT_IMAGE_HAS_PARENT))
			break;
		chain_err = pt_image_parent(cur, &par, e, sizeof(e));
		if (chain_err)
			break;
		chain[nchain++] = ci.parent_path;
		cur = par;
	}
	if (o->json) {
		struct json *j = json_new(stdout, false);

		json_obj_begin(j, NULL);
		json_str(j, "file", o->args[0]);
		char ver[32];

		snprintf(ver, sizeof(ver), "%u.%u", in.version_major, in.version_minor);
		json_str(j, "version", ver);
		json_arr_begin(j, "flags");
		json_str(j, NULL, flags_str(in.flags));
		if (in.flags & PT_IMAGE_HAS_PARENT)
			json_str(j, NULL, "has_parent");
		json_arr_end(j);
		json_int(j, "pid", in.pid);
		json_str(j, "comm", in.comm);
		json_uint(j, "seq", in.seq);
		json_uint(j, "ctime_ns", in.ctime_ns);
		json_str(j, "parent", in.parent_path[0] ? in.parent_path : NULL);
		json_hex(j, "checksum", in.file_checksum);
		json_uint(j, "threads", in.nthreads);
		json_arr_begin(j, "areas");
		for (size_t i = 0; i < na; i++) {
			char p[5];

			prot_str(a[i].prot, p);
			json_obj_begin(j, NULL);
			json_hex(j, "start", a[i].start);
			json_hex(j, "end", a[i].end);
			json_str(j, "prot", p);
			json_str(j, "kind", pt_vma_kind_name(a[i].kind));
			json_str(j, "path", cstr(a[i].path, a[i].path_len, pbuf, sizeof(pbuf)));
			json_str(j, "delta", pt_image_delta_name(a[i].delta));
			if (a[i].object == PT_IMAGE_NO_OBJECT)
				json_str(j, "object", NULL);
			else
				json_uint(j, "object", a[i].object);
			json_counts(j, "pages", &sc.areas[i]);
			json_obj_end(j);
		}
		json_arr_end(j);
		json_arr_begin(j, "objects");
		for (size_t i = 0; i < no; i++) {
			json_obj_begin(j, NULL);
			json_str(j, "name", cstr(ob[i].name, ob[i].name_len, pbuf, sizeof(pbuf)));
			json_str(j, "kind", pt_vma_kind_name(ob[i].kind));
			json_uint(j, "size", ob[i].size);
			json_uint(j, "inode", ob[i].inode);
			json_bool(j, "stored", ob[i].flags & PT_OBJECT_STORED);
			json_bool(j, "deleted", ob[i].flags & PT_OBJECT_DELETED);
			json_str(j, "delta", pt_image_delta_name(ob[i].delta));
			json_counts(j, "pages", &sc.objs[i]);
			json_obj_end(j);
		}
		json_arr_end(j);
		json_counts(j, "pages", &sc.total);
		json_uint(j, "frames", in.frames);
		json_uint(j, "data_pages", in.data_pages);
		json_uint(j, "file_size", in.file_size);
		json_uint(j, "frame_bytes", in.frame_bytes);
		json_arr_begin(j, "chain");
		for (size_t i = 0; i < nchain; i++)
			json_str(j, NULL, chain[i]);
		json_arr_end(j);
		if (chain_err)
			json_str(j, "chain_error", e);
		json_obj_end(j);
		json_free(j);
	} else {
		char s1[16], s2[16], s3[16];
		time_t tt = (time_t)(in.ctime_ns / 1000000000ULL);
		struct tm tm;
		char when[64] = "?";

		if (gmtime_r(&tt, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		printf("%s: pagetrack image %u.%u, %s layer %" PRIu64 " of pid %d (%s), %s\n",
		       o->args[0], in.version_major, in.version_minor, flags_str(in.flags), in.seq,
		       in.pid, in.comm, when);
		printf("  %s on disk; %" PRIu64 " data pages (%s) in %" PRIu64
		       " frames of %s compressed; %" PRIu64 " threads\n",
		       fmt_size(in.file_size, s1, sizeof(s1)), in.data_pages,
		       fmt_size(in.data_pages * P, s2, sizeof(s2)), in.frames,
		       fmt_size(in.frame_bytes, s3, sizeof(s3)), in.nthreads);
		printf("  pages: %" PRIu64 " data, %" PRIu64 " zero, %" PRIu64 " hole, %" PRIu64
		       " unchanged, %" PRIu64 " unreadable\n",
		       sc.total.k[1], sc.total.k[2], sc.total.k[3], sc.total.k[4], sc.total.k[5]);
		printf("  chain:");
		for (size_t i = 0; i < nchain; i++)
			printf(" %s%s", i ? "<- " : "", chain[i]);
		printf("%s%s\n", chain_err ? "  BROKEN: " : "", chain_err ? e : "");
		printf("  %-33s %-4s %-8s %-8s %8s %8s %8s %8s  %s\n", "area", "prot", "kind",
		       "delta", "data", "zero", "hole", "unchgd", "path");
		for (size_t i = 0; i < na; i++) {
			char p[5], rng[40];
			bool shared = (a[i].prot & PT_MAP_SHARED) && a[i].object != PT_IMAGE_NO_OBJECT;

			prot_str(a[i].prot, p);
			snprintf(rng, sizeof(rng), "%" PRIx64 "-%" PRIx64, a[i].start, a[i].end);
			if (shared)
				printf("  %-33s %-4s %-8s %-8s %35s  %s\n", rng, p,
				       pt_vma_kind_name(a[i].kind), "-", "(object)", cstr(a[i].path, a[i].path_len, pbuf, sizeof(pbuf)));
			else
				printf("  %-33s %-4s %-8s %-8s %8" PRIu64 " %8" PRIu64 " %8" PRIu64
				       " %8" PRIu64 "  %s\n",
				       rng, p, pt_vma_kind_name(a[i].kind),
				       pt_image_delta_name(a[i].delta), sc.areas[i].k[1],
				       sc.areas[i].k[2], sc.areas[i].k[3], sc.areas[i].k[4],
				       cstr(a[i].path, a[i].path_len, pbuf, sizeof(pbuf)));
		}
		for (size_t i = 0; i < no; i++) {
			if (!(ob[i].flags & PT_OBJECT_STORED))
				continue;
			printf("  object %-26s %-4s %-8s %-8s %8" PRIu64 " %8" PRIu64 " %8" PRIu64
			       " %8" PRIu64 "  %s\n",
			       fmt_size(ob[i].size, s1, sizeof(s1)), "", pt_vma_kind_name(ob[i].kind),
			       pt_image_delta_name(ob[i].delta), sc.objs[i].k[1], sc.objs[i].k[2],
			       sc.objs[i].k[3], sc.objs[i].k[4],
			       cstr(ob[i].name, ob[i].name_len, pbuf, sizeof(pbuf)));
		}
	}
	r = 0;
out:
	free(sc.areas);
	free(sc.objs);
	pt_image_close(img);
	return r < 0 ? PT_EXIT_RUNTIME : PT_EXIT_OK;
}

/* ---- verify ---- */

struct verify_ctx {
	struct pt_image *img;
	uint64_t runs;
};

static int print_diff(uint32_t owner_type, uint32_t owner, uint64_t start, uint64_t end, void *ctx)
{
	struct verify_ctx *v = ctx;

	if (owner_type == PT_OWNER_AREA) {
		printf("0x%" PRIx64 "-0x%" PRIx64 " differs\n", start, end);
	} else {
		const struct pt_image_object *o;
		size_t n;

		pt_image_objects(v->img, &o, &n);
		printf("object %.*s: offset 0x%" PRIx64 "-0x%" PRIx64 " differs\n",
		       owner < n ? (int)o[owner].name_len : 1, owner < n ? o[owner].name : "?", start,
		       end);
	}
	v->runs++;
	return 0;
}

static int do_verify(struct img_cli *o)
{
	struct pt_image *img = NULL;
	char e[1024] = "";
	pid_t pid = 0;
	int r;

	if (o->nargs < 1 || o->nargs > 2) {
		cli_error(false, 0, "image verify: FILE [PID]");
		return PT_EXIT_USAGE;
	}
	if (o->nargs == 2 && (parse_pid(o->args[1], &pid) < 0 || pid == 0)) {
		cli_error(false, 0, "'%s' is not a process id", o->args[1]);
		return PT_EXIT_USAGE;
	}
	if (open_img(o->args[0], &img, false) < 0)
		return PT_EXIT_RUNTIME;
	r = pt_image_verify(img, e, sizeof(e));
	if (r < 0) {
		cli_error(false, -r, "%s", e[0] ? e : strerror(-r));
		pt_image_close(img);
		return PT_EXIT_RUNTIME;
	}
	if (!pid) {
		printf("%s: valid (checksums and chain)\n", o->args[0]);
		pt_image_close(img);
		return PT_EXIT_OK;
	}
	struct verify_ctx vc = { img, 0 };
	int64_t d = pt_image_compare(img, pid, print_diff, &vc, e, sizeof(e));

	pt_image_close(img);
	if (d < 0) {
		cli_error(false, (int)-d, "comparing with %d: %s", (int)pid, e[0] ? e : strerror((int)-d));
		return PT_EXIT_RUNTIME;
	}
	if (d) {
		printf("%s: %" PRId64 " page%s differ from process %d\n", o->args[0], d,
		       d == 1 ? "" : "s", (int)pid);
		return PT_EXIT_RUNTIME;
	}
	printf("%s: valid, and equal to process %d\n", o->args[0], (int)pid);
	return PT_EXIT_OK;
}

/* ---- diff ---- */

struct range {
	uint64_t start, end;
};

struct diff_out {
	struct range *r;
	size_t n, cap;
	uint64_t pages;
};

static int add_range(struct diff_out *d, uint64_t start, uint64_t end)
{
	d->pages += (end - start) / P;
	if (d->n && d->r[d->n - 1].end == start) {
		d->r[d->n - 1].end = end;
		return 0;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 256;
		struct range *nr = realloc(d->r, cap * sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		d->r = nr;
		d->cap = cap;
	}
	d->r[d->n++] = (struct range){ start, end };
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

struct runs_ctx {
	struct diff_out *d;
	const struct pt_image_area *a;
	size_t na;
};

/* NEW's own runs that are not UNCHANGED (NEW's parent is OLD). */
static int changed_run(const struct pt_image_run *r, void *ctx)
{
	struct runs_ctx *c = ctx;

	if (r->kind == PT_PAGE_UNCHANGED)
		return 0;
	if (r->owner_type == PT_OWNER_AREA)
		return add_range(c->d, c->a[r->owner].start + r->page * P,
				 c->a[r->owner].start + (r->page + r->npages) * P);
	/* an object's pages: at every address that maps them */
	for (size_t i = 0; i < c->na; i++) {
		const struct pt_image_area *a = &c->a[i];

		if (a->object != r->owner || !(a->prot & PT_MAP_SHARED))
			continue;
		uint64_t s = r->page * P, e = (r->page + r->npages) * P;
		uint64_t as = a->offset, ae = a->offset + (a->end - a->start);

		if (e <= as || s >= ae)
			continue;
		s = s > as ? s : as;
		e = e < ae ? e : ae;
		int err = add_range(c->d, a->start + (s - as), a->start + (e - as));

		if (err)
			return err;
	}
	return 0;
}

static int same_class(uint8_t k)
{
	return k == PT_PAGE_HOLE || k == PT_PAGE_ZERO ? 0 : k;
}

/* The first of @n sorted areas that ends after @addr (n if none). */
static size_t area_after(const struct pt_image_area *a, size_t n, uint64_t addr)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The pages of OLD's private areas that NEW has no area for (unmapped since). */
static int old_only(struct pt_image *old, struct pt_image *new, struct diff_out *d)
{
	const struct pt_image_area *na, *oa;
	size_t nn, no;
	int err = 0;

	pt_image_areas(new, &na, &nn);
	pt_image_areas(old, &oa, &no);
	for (size_t j = 0; !err && j < no; j++) {
		uint64_t cur = oa[j].start;

		for (size_t i = area_after(na, nn, cur); i < nn && cur < oa[j].end; i++) {
			if (na[i].end <= cur)
				continue;
			if (na[i].start >= oa[j].end)
				break;
			if (na[i].start > cur)
				err = add_range(d, cur, na[i].start);
			cur = na[i].end;
		}
		if (!err && cur < oa[j].end)
			err = add_range(d, cur, oa[j].end);
	}
	return err;
}

/* Unrelated layers: resolved content, area by area. */
static int diff_content(struct pt_image *old, struct pt_image *new, struct diff_out *d, char *e,
			size_t elen)
{
	const struct pt_image_area *na, *oa;
	size_t nn, no;
	unsigned char *b1 = malloc(CHUNK * P), *b2 = malloc(CHUNK * P);
	uint8_t k1[CHUNK], k2[CHUNK];
	int err = 0;

	if (!b1 || !b2) {
		free(b1);
		free(b2);
		return -ENOMEM;
	}
	pt_image_areas(new, &na, &nn);
	pt_image_areas(old, &oa, &no);
	for (size_t i = 0; !err && i < nn; i++) {
		for (uint64_t at = na[i].start; !err && at < na[i].end;) {
			uint64_t n = (na[i].end - at) / P;
			size_t j;

			if (n > CHUNK)
				n = CHUNK;
			j = area_after(oa, no, at);
			if (j == no || oa[j].start > at) {	/* not in OLD */
				uint64_t stop = j < no && oa[j].start < at + n * P ? oa[j].start
										  : at + n * P;
				err = add_range(d, at, stop);
				at = stop;
				continue;
			}
			if (oa[j].end < at + n * P)
				n = (oa[j].end - at) / P;
			err = pt_image_read(new, at, n, b1, k1, e, elen);
			if (!err)
				err = pt_image_read(old, at, n, b2, k2, e, elen);
			for (uint64_t p = 0; !err && p < n; p++)
				if (same_class(k1[p]) != same_class(k2[p]) ||
				    (k1[p] == PT_PAGE_DATA && memcmp(b1 + p * P, b2 + p * P, P)))
					err = add_range(d, at + p * P, at + (p + 1) * P);
			at += n * P;
		}
	}
	if (!err)
		err = old_only(old, new, d);
	free(b1);
	free(b2);
	return err;
}

static int do_diff(struct img_cli *o)
{
	struct pt_image *old = NULL, *new = NULL;
	PT_OPTS(pt_image_info, io);
	PT_OPTS(pt_image_info, inew);
	struct diff_out d = { 0 };
	char e[1024] = "";
	int r;

	if (o->nargs != 2) {
		cli_error(o->json, 0, "image diff: OLD NEW");
		return PT_EXIT_USAGE;
	}
	if (open_img(o->args[0], &old, o->json) < 0)
		return PT_EXIT_RUNTIME;
	if (open_img(o->args[1], &new, o->json) < 0) {
		pt_image_close(old);
		return PT_EXIT_RUNTIME;
	}
	pt_image_info(old, &io);
	pt_image_info(new, &inew);
	bool direct = (inew.flags & PT_IMAGE_HAS_PARENT) &&
		      !memcmp(inew.parent_layer_id, io.layer_id, 16) &&
		      inew.parent_checksum == io.file_checksum;

	if (direct) {
		struct runs_ctx rc = { &d, NULL, 0 };

		pt_image_areas(new, &rc.a, &rc.na);
		r = pt_image_runs(new, changed_run, &rc);
		if (!r)
			r = old_only(old, new, &d);
		if (!r && d.n) {	/* object pages may come out of order */
			qsort(d.r, d.n, sizeof(*d.r), cmp_range);
			size_t w = 0;

			d.pages = 0;
			for (size_t i = 0; i < d.n; i++) {
				if (w && d.r[i].start <= d.r[w - 1].end) {
					if (d.r[i].end > d.r[w - 1].end)
						d.r[w - 1].end = d.r[i].end;
				} else {
					d.r[w++] = d.r[i];
				}
			}
			d.n = w;
			for (size_t i = 0; i < d.n; i++)
				d.pages += (d.r[i].end - d.r[i].start) / P;
		}
	} else {
		r = diff_content(old, new, &d, e, sizeof(e));
	}
	if (r < 0) {
		cli_error(o->json, -r, "%s", e[0] ? e : strerror(-r));
	} else if (o->json) {
		struct json *j = json_new(stdout, false);

		json_obj_begin(j, NULL);
		json_str(j, "old", o->args[0]);
		json_str(j, "new", o->args[1]);
		json_str(j, "method", direct ? "index" : "content");
		json_uint(j, "pages_changed", d.pages);
		json_arr_begin(j, "changed");
		for (size_t i = 0; i < d.n; i++) {
			json_obj_begin(j, NULL);
			json_hex(j, "start", d.r[i].start);
			json_hex(j, "end", d.r[i].end);
			json_obj_end(j);
		}
		json_arr_end(j);
		json_obj_end(j);
		json_free(j);
	} else {
		printf("%" PRIu64 " page%s changed from %s to %s (%s)\n", d.pages,
		       d.pages == 1 ? "" : "s", o->args[0], o->args[1],
		       direct ? "by the newer layer's index" : "by content");
		for (size_t i = 0; i < d.n; i++)
			printf("0x%" PRIx64 "-0x%" PRIx64 "\n", d.r[i].start, d.r[i].end);
	}
	free(d.r);
	pt_image_close(new);
	pt_image_close(old);
	return r < 0 ? PT_EXIT_RUNTIME : PT_EXIT_OK;
}

/* ---- extract ---- */

/* Write the temp file @fd's pages; holes (HOLE, and ZERO of objects) are skipped. */
static int write_pages(int fd, uint64_t off, const unsigned char *buf, const uint8_t *kinds,
		       uint64_t n, bool sparse)
{
	for (uint64_t i = 0; i < n; i++) {
		if (sparse && kinds[i] != PT_PAGE_DATA)
			continue;
		for (size_t done = 0; done < P;) {
			ssize_t w = pwrite(fd, buf + i * P + done, P - done,
					   (off_t)(off + i * P + done));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			done += (size_t)w;
		}
	}
	return 0;
}

static bool name_matches(const char *name, size_t len, const char *want)
{
	size_t wl = strlen(want);
	static const char del[] = " (deleted)";

	if (len == wl && !memcmp(name, want, len))
		return true;
	return len == wl + sizeof(del) - 1 && !memcmp(name, want, wl) &&
	       !memcmp(name + wl, del, sizeof(del) - 1);
}

static int do_extract(struct img_cli *o)
{
	struct pt_image *img = NULL;
	const struct pt_image_area *a;
	const struct pt_image_object *ob;
	size_t na, no, idx = SIZE_MAX;
	unsigned char *buf = NULL;
	uint8_t kinds[CHUNK];
	char e[1024] = "", tmp[PATH_MAX];
	uint64_t pages = 0, bytes = 0;
	int fd = -1, r = 0;

	if (o->nargs != 1 || !o->out || o->have_area == !!o->object) {
		cli_error(false, 0, "image extract: FILE (--area ADDR | --object PATH) -o OUT");
		return PT_EXIT_USAGE;
	}
	if (open_img(o->args[0], &img, false) < 0)
		return PT_EXIT_RUNTIME;
	pt_image_areas(img, &a, &na);
	pt_image_objects(img, &ob, &no);
	if (o->have_area) {
		for (size_t i = 0; i < na; i++)
			if (a[i].start <= o->area && o->area < a[i].end)
				idx = i;
		if (idx == SIZE_MAX) {
			cli_error(false, ENOENT, "%s: no area holds 0x%" PRIx64, o->args[0], o->area);
			r = -ENOENT;
			goto out;
		}
		pages = (a[idx].end - a[idx].start) / P;
	} else {
		for (size_t i = 0; i < no; i++)
			if (name_matches(ob[i].name, ob[i].name_len, o->object))
				idx = i;
		if (idx == SIZE_MAX || !(ob[idx].flags & PT_OBJECT_STORED)) {
			cli_error(false, ENOENT, "%s: no stored object named '%s'%s", o->args[0],
				  o->object, idx == SIZE_MAX ? "" : " (it is a file on disk)");
			r = -ENOENT;
			goto out;
		}
		bytes = ob[idx].size;
		pages = (bytes + P - 1) / P;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", o->out, (int)getpid());
	buf = malloc(CHUNK * P);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (!buf || fd < 0) {
		r = buf ? -errno : -ENOMEM;
		cli_error(false, -r, "%s: %s", o->out, strerror(-r));
		goto out;
	}
	for (uint64_t pg = 0; pg < pages && !r; pg += CHUNK) {
		uint64_t n = pages - pg < CHUNK ? pages - pg : CHUNK;

		r = o->have_area ? pt_image_read(img, a[idx].start + pg * P, n, buf, kinds, e, sizeof(e))
				 : pt_image_read_object(img, (uint32_t)idx, pg, n, buf, kinds, e,
							sizeof(e));
		if (r) {
			cli_error(false, -r, "%s", e[0] ? e : strerror(-r));
			break;
		}
		r = write_pages(fd, pg * P, buf, kinds, n, !o->have_area);
		if (r)
			cli_error(false, -r, "%s: %s", o->out, strerror(-r));
	}
	if (!r && ftruncate(fd, (off_t)(o->have_area ? pages * P : bytes)) < 0) {
		r = -errno;
		cli_error(false, -r, "%s: %s", o->out, strerror(-r));
	}
	if (!r && (fsync(fd) < 0 || close(fd) < 0)) {
		r = -errno;
		fd = -1;
		cli_error(false, -r, "%s: %s", o->out, strerror(-r));
	} else if (!r) {
		fd = -1;
	}
	if (!r && rename(tmp, o->out) < 0) {
		r = -errno;
		cli_error(false, -r, "%s: %s", o->out, strerror(-r));
	}
out:
	if (fd >= 0)
		close(fd);
	if (r && buf)
		unlink(tmp);
	free(buf);
	pt_image_close(img);
	return r ? PT_EXIT_RUNTIME : PT_EXIT_OK;
}

static int do_core(struct img_cli *o)
{
	struct pt_image *img = NULL;
	char e[1024] = "";
	int r;

	if (o->nargs != 1 || !o->out) {
		cli_error(false, 0, "image core: FILE -o CORE");
		return PT_EXIT_USAGE;
	}
	if (open_img(o->args[0], &img, false) < 0)
		return PT_EXIT_RUNTIME;
	r = pt_image_core(img, o->out, e, sizeof(e));
	pt_image_close(img);
	if (r < 0) {
		cli_error(false, -r, "%s", e[0] ? e : strerror(-r));
		return PT_EXIT_RUNTIME;
	}
	printf("core file %s written from %s\n", o->out, o->args[0]);
	return PT_EXIT_OK;
}

int cmd_image(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct img_cli *o);
	} subs[] = {
		{ "show", do_show }, { "verify", do_verify }, { "diff", do_diff },
		{ "extract", do_extract }, { "core", do_core },
	};
	struct img_cli o = { 0 };

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? PT_EXIT_USAGE : PT_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (strcmp(argv[1], subs[i].name))
			continue;
		int r = parse_args(argc - 1, argv + 1, &o);

		if (r)
			return r > 0 ? PT_EXIT_OK : PT_EXIT_USAGE;
		return subs[i].fn(&o);
	}
	cli_error(cli_wants_json(argc, argv), 0,
		  "image: unknown subcommand '%s' (show, verify, diff, extract, core)", argv[1]);
	return PT_EXIT_USAGE;
}
