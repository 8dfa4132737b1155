/* SPDX-License-Identifier: MIT */
/*
 * pagetrack map: per memory area, where every page is.
 *
 * Memory stays bounded whatever the target looks like: one fixed scan
 * buffer, per-VMA counters, and (only with --pages) the merged runs of the
 * memory area being printed.  Output is streamed VMA by VMA, so what was
 * scanned before the target exited is still printed.
 * The JSON output is a stable interface: doc/map-json.md, doc/map.schema.json.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define SCAN_BUF_REGIONS 4096

struct map_opts {
	bool json, pretty, pages, kflags, verify, no_shared, has_range;
	uint64_t rstart, rend;
	pid_t pid;
};

static const struct {
	const char *name;
	uint32_t bit;
	char letter;
} attr_tab[] = {
	{ "file", PT_ATTR_FILE, 'F' },
	{ "exclusive", PT_ATTR_EXCLUSIVE, 'E' },
	{ "soft_dirty", PT_ATTR_SOFT_DIRTY, 'S' },
	{ "uffd_wp", PT_ATTR_UFFD_WP, 'W' },
	{ "zero", PT_ATTR_ZERO, 'Z' },
	{ "huge", PT_ATTR_HUGE, 'H' },
	{ "guard", PT_ATTR_GUARD, 'G' },
};
#define N_ATTRS (sizeof(attr_tab) / sizeof(attr_tab[0]))

/* Per-VMA kflags counters; the last one, "shared", is mapcount > 1. */
static const struct {
	const char *name;
	int bit;
} kflag_tab[] = {
	{ "lru", PT_KPF_LRU }, { "active", PT_KPF_ACTIVE },
	{ "referenced", PT_KPF_REFERENCED }, { "dirty", PT_KPF_DIRTY },
	{ "anon", PT_KPF_ANON }, { "swapcache", PT_KPF_SWAPCACHE },
	{ "swapbacked", PT_KPF_SWAPBACKED }, { "ksm", PT_KPF_KSM },
	{ "thp", PT_KPF_THP }, { "zero_page", PT_KPF_ZERO_PAGE },
	{ "idle", PT_KPF_IDLE }, { "mlocked", PT_KPF_MLOCKED },
	{ "unevictable", PT_KPF_UNEVICTABLE },
};
#define N_KFLAGS (sizeof(kflag_tab) / sizeof(kflag_tab[0]))

static const struct {
	uint32_t bit;
	const char *id, *text;
} limit_tab[] = {
	{ PT_LIMIT_NO_PFN, "no_pfn", "PFNs not visible (needs CAP_SYS_ADMIN)" },
	{ PT_LIMIT_NO_HUGE, "no_huge", "huge attribute not visible" },
	{ PT_LIMIT_NO_ZERO, "no_zero", "zero-page attribute not visible" },
	{ PT_LIMIT_NO_KFLAGS, "no_kflags", "kpageflags not readable" },
	{ PT_LIMIT_NO_GUARD, "no_guard", "guard regions not visible" },
};

static const char *state_names[PT_STATE__COUNT] = {
	"absent", "present", "swapped", "cached", "unknown",
};
/* Column order of the states in the output. */
static const enum pt_state state_order[PT_STATE__COUNT] = {
	PT_STATE_PRESENT, PT_STATE_SWAPPED, PT_STATE_CACHED, PT_STATE_ABSENT, PT_STATE_UNKNOWN,
};

struct counts {
	uint64_t total;
	uint64_t state[PT_STATE__COUNT];
	uint64_t attr[N_ATTRS];
	uint64_t zero_present;			/* for --verify */
	uint64_t kflag[N_KFLAGS + 1];		/* + shared */
	uint64_t reason[PT_REASON__COUNT];	/* unknown pages by reason */
};

struct runvec {
	struct pt_region *r;
	size_t n, cap;
};

struct smaps_ent {
	uint64_t start, end, rss_kb, swap_kb, hugetlb_kb;
};

struct smaps {
	struct smaps_ent *e;
	size_t n, cap;
};

enum vstatus { V_OK, V_EXPLAINED, V_MISMATCH, V_SKIPPED };
static const char *const vstatus_names[] = { "ok", "explained", "mismatch", "skipped" };

struct discrepancy {
	const char *field;	/* "rss", "swap", "vma" */
	uint64_t smaps_kb, pt_kb;
	bool explained;
	char cause[192];
};

struct vcheck {
	enum vstatus status;
	const char *skip_reason;
	bool have_smaps;
	uint64_t rss_kb, swap_kb, hugetlb_kb;
	int n;
	struct discrepancy d[3];
};

struct map_ctx {
	struct map_opts o;
	struct pt_target *t;
	pid_t pid;
	struct pt_vma *vmas;
	size_t nvmas;
	struct pt_region *buf;
	uint64_t page_size;
	struct json *j;
	int addr_width;
	struct counts totals;
	struct smaps sm;
	unsigned v_checked, v_ok, v_explained, v_mismatch, v_skipped;
	int scan_err;		/* first scan error, -errno */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pagetrack map [OPTIONS] PID|self\n"
		"\n"
		"Show, per memory area of a process, where its pages are: present\n"
		"(mapped here), swapped, cached (in memory, not mapped here), absent\n"
		"(no data anywhere) or unknown (with the reason).\n"
		"\n"
		"Options:\n"
		"  -j, --json           JSON output (doc/map-json.md)\n"
		"  -p, --pretty         indented JSON (implies --json)\n"
		"  -P, --pages          also print merged page runs\n"
		"  -k, --kflags         per-page kernel flags (root: /proc/kpageflags)\n"
		"  -r, --range S-E      only addresses [S, E), hex (0x optional)\n"
		"      --verify         cross-check Rss/Swap against /proc/PID/smaps\n"
		"      --no-shared      do not resolve shared memory (reported unknown)\n"
		"  -h, --help           show this help\n"
		"\n"
		"Exit status: 0 success, 1 runtime error (incl. process exited during the\n"
		"scan, --verify mismatch), 2 usage error.\n");
}

/* ---- scanning ---- */

static bool run_continues(const struct pt_region *prev, const struct pt_region *p,
			  uint64_t page_size)
{
	if (prev->end != p->start || prev->state != p->state || prev->reason != p->reason ||
	    prev->attrs != p->attrs || prev->kflags != p->kflags ||
	    prev->mapcount != p->mapcount)
		return false;
	if (!(p->attrs & PT_ATTR_LOC))
		return true;
	return prev->swap_type == p->swap_type &&
	       prev->loc + (prev->end - prev->start) / page_size == p->loc;
}

static int runvec_add(struct runvec *rv, const struct pt_region *r, uint64_t page_size)
{
	if (rv->n && run_continues(&rv->r[rv->n - 1], r, page_size)) {
		rv->r[rv->n - 1].end = r->end;
		return 0;
	}
	if (rv->n == rv->cap) {
		size_t cap = rv->cap ? rv->cap * 2 : 64;
		struct pt_region *n = realloc(rv->r, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		rv->r = n;
		rv->cap = cap;
	}
	rv->r[rv->n++] = *r;
	return 0;
}

static void count_region(struct counts *c, const struct pt_region *r, uint64_t page_size)
{
	uint64_t n = (r->end - r->start) / page_size;
	unsigned s = r->state < PT_STATE__COUNT ? r->state : PT_STATE_UNKNOWN;

	c->total += n;
	c->state[s] += n;
	if (s == PT_STATE_UNKNOWN)
		c->reason[r->reason < PT_REASON__COUNT ? r->reason : PT_REASON_NONE] += n;
	for (size_t i = 0; i < N_ATTRS; i++)
		if (r->attrs & attr_tab[i].bit)
			c->attr[i] += n;
	if ((r->attrs & PT_ATTR_ZERO) && s == PT_STATE_PRESENT)
		c->zero_present += n;
	if (r->attrs & PT_ATTR_KFLAGS) {
		for (size_t i = 0; i < N_KFLAGS; i++)
			if (r->kflags & (1ULL << kflag_tab[i].bit))
				c->kflag[i] += n;
		if (r->mapcount > 1)
			c->kflag[N_KFLAGS] += n;
	}
}

static void counts_add(struct counts *a, const struct counts *b)
{
	a->total += b->total;
	a->zero_present += b->zero_present;
	for (size_t i = 0; i < PT_STATE__COUNT; i++)
		a->state[i] += b->state[i];
	for (size_t i = 0; i < N_ATTRS; i++)
		a->attr[i] += b->attr[i];
	for (size_t i = 0; i <= N_KFLAGS; i++)
		a->kflag[i] += b->kflag[i];
	for (size_t i = 0; i < PT_REASON__COUNT; i++)
		a->reason[i] += b->reason[i];
}

/*
 * Scan [start, end) into @c (and @rv when not NULL).  Returns 0 or -errno;
 * on error @c holds what was scanned before it, and *@done (when not NULL)
 * is the end of the part scanned.
 */
static int scan_range(struct map_ctx *m, uint64_t start, uint64_t end, uint32_t flags,
		      struct counts *c, struct runvec *rv, uint64_t *done)
{
	PT_OPTS(pt_scan_opts, so, .flags = flags);
	uint64_t cursor = start;

	if (done)
		*done = start;

	while (cursor < end) {
		int n = pt_scan(m->t, &cursor, end, m->buf, SCAN_BUF_REGIONS, &so);

		if (n < 0)
			return n;
		if (n == 0)
			break;
		for (int i = 0; i < n; i++) {
			if (rv && runvec_add(rv, &m->buf[i], m->page_size) < 0)
				return -ENOMEM;
			count_region(c, &m->buf[i], m->page_size);
			if (done)
				*done = m->buf[i].end;
		}
	}
	return 0;
}

static uint32_t scan_flags(const struct map_opts *o)
{
	uint32_t f = 0;

	if (o->kflags)
		f |= PT_SCAN_KFLAGS | PT_SCAN_LOCATION;
	if (o->no_shared)
		f |= PT_SCAN_NO_SHARED;
	return f;
}

/* ---- --verify: /proc/PID/smaps ---- */

static int smaps_read(pid_t pid, struct smaps *sm)
{
	char path[64], *line = NULL;
	size_t len = 0;
	struct smaps_ent *cur = NULL;
	FILE *f;
	int err = 0;

	sm->n = 0;
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (getline(&line, &len, f) > 0) {
		char name[64];
		unsigned long long a, b, v;

		/* A header line's first word is "start-end"; fields end in ':'. */
		if (sscanf(line, "%63s", name) != 1)
			continue;
		if (name[strlen(name) - 1] != ':') {
			if (sscanf(line, "%llx-%llx", &a, &b) != 2)
				continue;
			if (sm->n == sm->cap) {
				size_t cap = sm->cap ? sm->cap * 2 : 256;
				struct smaps_ent *e = realloc(sm->e, cap * sizeof(*e));

				if (!e) {
					err = -ENOMEM;
					break;
				}
				sm->e = e;
				sm->cap = cap;
			}
			cur = &sm->e[sm->n++];
			memset(cur, 0, sizeof(*cur));
			cur->start = a;
			cur->end = b;
			continue;
		}
		if (!cur || sscanf(line, "%*s %llu", &v) != 1)
			continue;
		if (!strcmp(name, "Rss:"))
			cur->rss_kb = v;
		else if (!strcmp(name, "Swap:"))
			cur->swap_kb = v;
		else if (!strcmp(name, "Shared_Hugetlb:") || !strcmp(name, "Private_Hugetlb:"))
			cur->hugetlb_kb += v;
	}
	if (!err && ferror(f))
		err = -EIO;
	free(line);
	fclose(f);
	return err;
}

static const struct smaps_ent *smaps_find(const struct smaps *sm, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < sm->n; i++)
		if (sm->e[i].start == start && sm->e[i].end == end)
			return &sm->e[i];
	return NULL;
}

static bool kind_is_shmem(uint32_t kind)
{
	return kind == PT_VMA_SHMEM || kind == PT_VMA_MEMFD || kind == PT_VMA_SYSV ||
	       kind == PT_VMA_SHM_FILE;
}

static enum pt_reason main_reason(const struct counts *c)
{
	enum pt_reason best = PT_REASON_NONE;

	for (int i = 0; i < PT_REASON__COUNT; i++)
		if (c->reason[i] > c->reason[best])
			best = (enum pt_reason)i;
	return best;
}

/*
 * Compare one VMA's counts with its smaps entry; fills @v's discrepancies
 * and says which have a known cause.  Returns the number unexplained.
 */
static int compare_smaps(const struct map_ctx *m, const struct pt_vma *vma,
			 const struct counts *c, const struct smaps_ent *e, struct vcheck *v)
{
	uint64_t kb = m->page_size / 1024;
	uint64_t present = c->state[PT_STATE_PRESENT] * kb, zero = c->zero_present * kb;
	uint64_t swapped = c->state[PT_STATE_SWAPPED] * kb, unk = c->state[PT_STATE_UNKNOWN] * kb;
	uint64_t cached = c->state[PT_STATE_CACHED] * kb;
	/* hugetlb pages are accounted in *_Hugetlb, not in Rss. */
	uint64_t rss = e->rss_kb + e->hugetlb_kb;
	int unexplained = 0;
	struct discrepancy *d;

	v->n = 0;
	v->have_smaps = true;
	v->rss_kb = e->rss_kb;
	v->swap_kb = e->swap_kb;
	v->hugetlb_kb = e->hugetlb_kb;
	if (rss != present) {
		d = &v->d[v->n++];
		*d = (struct discrepancy){ .field = "rss", .smaps_kb = rss, .pt_kb = present };
		d->explained = true;
		if (zero && rss == present - zero)
			snprintf(d->cause, sizeof(d->cause),
				 "%" PRIu64 " zero-page mappings are present but not counted in Rss",
				 zero / kb);
		else if (vma->kind == PT_VMA_SPECIAL && rss < present)
			snprintf(d->cause, sizeof(d->cause),
				 "pages of a special mapping are present but not counted in Rss");
		else if (unk && rss + zero >= present && rss <= present + unk)
			snprintf(d->cause, sizeof(d->cause), "%" PRIu64 " pages are unknown: %s",
				 unk / kb, pt_reason_text(main_reason(c)));
		else
			d->explained = false;
		unexplained += !d->explained;
	}
	if (e->swap_kb != swapped) {
		d = &v->d[v->n++];
		*d = (struct discrepancy){ .field = "swap", .smaps_kb = e->swap_kb, .pt_kb = swapped };
		d->explained = true;
		if (unk && e->swap_kb >= swapped && e->swap_kb <= swapped + unk)
			snprintf(d->cause, sizeof(d->cause), "%" PRIu64 " pages are unknown: %s",
				 unk / kb, pt_reason_text(main_reason(c)));
		else if (kind_is_shmem(vma->kind) && e->swap_kb > swapped &&
			 e->swap_kb - swapped <= cached)
			snprintf(d->cause, sizeof(d->cause),
				 "shmem pages in the swap cache count as Swap in smaps, as cached here");
		else
			d->explained = false;
		unexplained += !d->explained;
	}
	return unexplained;
}

/*
 * Verify one fully scanned VMA.  An unexplained difference gets one
 * re-scan and a fresh smaps read: if they agree, the target changed
 * between the two reads.
 */
static void verify_vma(struct map_ctx *m, const struct pt_vma *vma, const struct counts *c,
		       struct vcheck *v)
{
	const struct smaps_ent *e = smaps_find(&m->sm, vma->start, vma->end);
	struct vcheck v2 = { 0 };
	struct counts c2 = { 0 };
	int bad;

	if (!e) {
		/* Born after the smaps read: read it again. */
		if (smaps_read(m->pid, &m->sm) == 0)
			e = smaps_find(&m->sm, vma->start, vma->end);
	}
	if (!e) {
		v->n = 1;
		v->d[0] = (struct discrepancy){ .field = "vma", .explained = true };
		snprintf(v->d[0].cause, sizeof(v->d[0].cause),
			 "memory area not in smaps: the target's layout changed between reads");
		v->status = V_EXPLAINED;
		return;
	}
	bad = compare_smaps(m, vma, c, e, v);
	if (bad && scan_range(m, vma->start, vma->end, m->o.no_shared ? PT_SCAN_NO_SHARED : 0,
			      &c2, NULL, NULL) == 0 && smaps_read(m->pid, &m->sm) == 0 &&
	    (e = smaps_find(&m->sm, vma->start, vma->end)) && !compare_smaps(m, vma, &c2, e, &v2)) {
		for (int i = 0; i < v->n; i++) {
			const char *again = NULL;

			if (v->d[i].explained)
				continue;
			for (int k = 0; k < v2.n; k++)
				if (!strcmp(v2.d[k].field, v->d[i].field))
					again = v2.d[k].cause;
			v->d[i].explained = true;
			if (again)
				snprintf(v->d[i].cause, sizeof(v->d[i].cause),
					 "the target changed between reads; on a re-scan: %.120s", again);
			else
				snprintf(v->d[i].cause, sizeof(v->d[i].cause),
					 "the target changed between reads: a re-scan agrees with smaps");
		}
		bad = 0;
	}
	v->status = bad ? V_MISMATCH : v->n ? V_EXPLAINED : V_OK;
}

/* ---- output ---- */

static void perms_str(const struct pt_vma *v, char out[5])
{
	out[0] = v->prot & PT_PROT_READ ? 'r' : '-';
	out[1] = v->prot & PT_PROT_WRITE ? 'w' : '-';
	out[2] = v->prot & PT_PROT_EXEC ? 'x' : '-';
	out[3] = v->prot & PT_MAP_SHARED ? 's' : 'p';
	out[4] = '\0';
}

static const char *kind_name(uint32_t kind)
{
	const char *n = pt_vma_kind_name((enum pt_vma_kind)kind);

	return n ? n : "unknown";
}

static const char *reason_id(unsigned r)
{
	const char *n = pt_reason_name((enum pt_reason)r);

	return n ? n : "none";
}

/* Human size, "-" for nothing, so the interesting columns stand out. */
static const char *hsize(const struct map_ctx *m, uint64_t pages, char *buf, size_t len)
{
	if (!pages)
		return "-";
	return fmt_size(pages * m->page_size, buf, len);
}

/* Path with control characters replaced, so one VMA stays one line. */
static void print_path(const char *p)
{
	for (; *p; p++)
		putchar((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
}

static void json_pages(struct json *j, const char *key, const struct counts *c)
{
	json_obj_begin(j, key);
	json_uint(j, "total", c->total);
	for (size_t i = 0; i < PT_STATE__COUNT; i++)
		json_uint(j, state_names[state_order[i]], c->state[state_order[i]]);
	for (size_t i = 0; i < N_ATTRS; i++)
		json_uint(j, attr_tab[i].name, c->attr[i]);
	json_obj_end(j);
}

static void json_kflags(struct json *j, const char *key, const struct counts *c)
{
	json_obj_begin(j, key);
	for (size_t i = 0; i < N_KFLAGS; i++)
		json_uint(j, kflag_tab[i].name, c->kflag[i]);
	json_uint(j, "shared", c->kflag[N_KFLAGS]);
	json_obj_end(j);
}

static void json_run(struct json *j, const struct pt_region *r)
{
	unsigned s = r->state < PT_STATE__COUNT ? r->state : PT_STATE_UNKNOWN;

	json_obj_begin(j, NULL);
	json_hex(j, "start", r->start);
	json_hex(j, "end", r->end);
	json_str(j, "state", state_names[s]);
	if (s == PT_STATE_UNKNOWN)
		json_str(j, "reason", reason_id(r->reason));
	json_arr_begin(j, "attrs");
	for (size_t i = 0; i < N_ATTRS; i++)
		if (r->attrs & attr_tab[i].bit)
			json_str(j, NULL, attr_tab[i].name);
	json_arr_end(j);
	if (r->attrs & PT_ATTR_LOC) {
		if (s == PT_STATE_SWAPPED) {
			json_uint(j, "swap_type", r->swap_type);
			json_hex(j, "swap_offset", r->loc);
		} else {
			json_hex(j, "pfn", r->loc);
		}
	}
	if (r->attrs & PT_ATTR_KFLAGS) {
		json_arr_begin(j, "kflags");
		for (size_t i = 0; i < N_KFLAGS; i++)
			if (r->kflags & (1ULL << kflag_tab[i].bit))
				json_str(j, NULL, kflag_tab[i].name);
		json_arr_end(j);
		json_uint(j, "mapcount", r->mapcount);
	}
	json_obj_end(j);
}

static void json_verify(struct json *j, const struct vcheck *v)
{
	json_obj_begin(j, "verify");
	json_str(j, "status", vstatus_names[v->status]);
	if (v->skip_reason)
		json_str(j, "reason", v->skip_reason);
	if (v->have_smaps) {
		json_uint(j, "rss_kb", v->rss_kb);
		json_uint(j, "swap_kb", v->swap_kb);
		json_uint(j, "hugetlb_kb", v->hugetlb_kb);
	}
	json_arr_begin(j, "discrepancies");
	for (int i = 0; i < v->n; i++) {
		const struct discrepancy *d = &v->d[i];

		json_obj_begin(j, NULL);
		json_str(j, "field", d->field);
		json_uint(j, "smaps_kb", d->smaps_kb);
		json_uint(j, "pagetrack_kb", d->pt_kb);
		json_bool(j, "explained", d->explained);
		json_str(j, "cause", d->explained ? d->cause : NULL);
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
}

static void emit_vma_json(struct map_ctx *m, const struct pt_vma *vma, uint64_t s, uint64_t e,
			  const struct counts *c, const struct runvec *rv, const struct vcheck *v)
{
	struct json *j = m->j;
	char perms[5];

	perms_str(vma, perms);
	json_obj_begin(j, NULL);
	json_hex(j, "start", vma->start);
	json_hex(j, "end", vma->end);
	if (s != vma->start || e != vma->end) {
		json_hex(j, "scan_start", s);
		json_hex(j, "scan_end", e);
	}
	json_str(j, "perms", perms);
	json_uint(j, "offset", vma->offset);
	json_str(j, "path", vma->path);
	json_str(j, "kind", kind_name(vma->kind));
	json_pages(j, "pages", c);
	if (m->o.kflags)
		json_kflags(j, "kflags", c);
	if (rv) {
		json_arr_begin(j, "runs");
		for (size_t i = 0; i < rv->n; i++)
			json_run(j, &rv->r[i]);
		json_arr_end(j);
	}
	if (v)
		json_verify(j, v);
	json_obj_end(j);
}

static void print_kflags_line(const struct map_ctx *m, const char *indent, const struct counts *c)
{
	char b[24];
	bool any = false;

	for (size_t i = 0; i <= N_KFLAGS; i++) {
		if (!c->kflag[i])
			continue;
		if (!any)
			printf("%skflags:", indent);
		printf("%s %s %s", any ? "," : "", i < N_KFLAGS ? kflag_tab[i].name : "shared",
		       hsize(m, c->kflag[i], b, sizeof(b)));
		any = true;
	}
	if (any)
		putchar('\n');
}

static void attr_letters(uint32_t attrs_present, char out[N_ATTRS + 1])
{
	for (size_t i = 0; i < N_ATTRS; i++)
		out[i] = attrs_present & (1u << i) ? attr_tab[i].letter : '-';
	out[N_ATTRS] = '\0';
}

static void print_run(const struct map_ctx *m, const struct pt_region *r)
{
	unsigned s = r->state < PT_STATE__COUNT ? r->state : PT_STATE_UNKNOWN;
	char letters[N_ATTRS + 1], b[24];
	uint32_t mask = 0;

	for (size_t i = 0; i < N_ATTRS; i++)
		if (r->attrs & attr_tab[i].bit)
			mask |= 1u << i;
	attr_letters(mask, letters);
	printf("    %0*" PRIx64 "-%0*" PRIx64 " %-8s %10s %s", m->addr_width, r->start,
	       m->addr_width, r->end, state_names[s],
	       fmt_size(r->end - r->start, b, sizeof(b)), letters);
	if (s == PT_STATE_UNKNOWN)
		printf("  reason: %s", pt_reason_text((enum pt_reason)r->reason));
	if (r->attrs & PT_ATTR_LOC) {
		if (s == PT_STATE_SWAPPED)
			printf("  swap %u:0x%" PRIx64, r->swap_type, r->loc);
		else
			printf("  pfn 0x%" PRIx64, r->loc);
	}
	if (r->attrs & PT_ATTR_KFLAGS) {
		const char *sep = "  kflags ";

		for (size_t i = 0; i < N_KFLAGS; i++) {
			if (r->kflags & (1ULL << kflag_tab[i].bit)) {
				printf("%s%s", sep, kflag_tab[i].name);
				sep = ",";
			}
		}
		printf("  mapcount %" PRIu64, r->mapcount);
	}
	putchar('\n');
}

static void print_state_cols(const struct map_ctx *m, const struct counts *c)
{
	char b[24];

	for (size_t i = 0; i < PT_STATE__COUNT; i++)
		printf(" %10s", hsize(m, c->state[state_order[i]], b, sizeof(b)));
}

static void emit_vma_plain(struct map_ctx *m, const struct pt_vma *vma, uint64_t s, uint64_t e,
			   const struct counts *c, const struct runvec *rv, const struct vcheck *v)
{
	char perms[5], letters[N_ATTRS + 1], b[24], b2[24];
	uint32_t mask = 0;

	perms_str(vma, perms);
	for (size_t i = 0; i < N_ATTRS; i++)
		if (c->attr[i])
			mask |= 1u << i;
	attr_letters(mask, letters);
	printf("%0*" PRIx64 "-%0*" PRIx64 " %s %10s %-8s", m->addr_width, s, m->addr_width, e,
	       perms, fmt_size(e - s, b, sizeof(b)), kind_name(vma->kind));
	print_state_cols(m, c);
	printf(" %s ", letters);
	print_path(vma->path);
	putchar('\n');
	if (m->o.kflags)
		print_kflags_line(m, "    ", c);
	if (v) {
		if (v->status == V_SKIPPED)
			printf("    verify: skipped: %s\n", v->skip_reason);
		for (int i = 0; i < v->n; i++) {
			const struct discrepancy *d = &v->d[i];

			if (!strcmp(d->field, "vma")) {
				printf("    verify: %s\n", d->cause);
				continue;
			}
			printf("    verify: smaps %s %s, pagetrack %s %s: %s\n",
			       !strcmp(d->field, "rss") ? "Rss" : "Swap",
			       fmt_size(d->smaps_kb * 1024, b, sizeof(b)),
			       !strcmp(d->field, "rss") ? "present" : "swapped",
			       fmt_size(d->pt_kb * 1024, b2, sizeof(b2)),
			       d->explained ? d->cause : "UNEXPLAINED");
		}
	}
	if (rv)
		for (size_t i = 0; i < rv->n; i++)
			print_run(m, &rv->r[i]);
}

static void print_header(struct map_ctx *m)
{
	int w = 2 * m->addr_width + 1;

	printf("pid %d, backend %s%s\n", (int)m->pid,
	       pt_scan_backend_name(pt_target_scan_backend(m->t)),
	       m->o.has_range ? ", addresses clipped to --range" : "");
	printf("legend: present = mapped here, cached = in memory but not mapped here; "
	       "attrs: F file, E exclusive, S soft-dirty, W uffd-wp, Z zero page, H huge, "
	       "G guard\n");
	printf("%-*s %-4s %10s %-8s %10s %10s %10s %10s %10s %-*s %s\n", w, "ADDRESS", "PERM",
	       "SIZE", "KIND", "PRESENT", "SWAPPED", "CACHED", "ABSENT", "UNKNOWN", (int)N_ATTRS,
	       "ATTRS", "PATH");
}

static void print_footer(struct map_ctx *m, bool complete)
{
	int w = 2 * m->addr_width + 1;
	uint32_t limits = pt_scan_limits(m->t);
	const struct counts *c = &m->totals;
	char b[24];
	bool any = false;

	printf("%-*s %-4s %10s %-8s", w, "total", "", fmt_size(c->total * m->page_size, b, sizeof(b)),
	       "");
	print_state_cols(m, c);
	putchar('\n');
	for (size_t i = 0; i < N_ATTRS; i++) {
		if (!c->attr[i])
			continue;
		printf("%s%s %s", any ? ", " : "attrs: ", attr_tab[i].name,
		       hsize(m, c->attr[i], b, sizeof(b)));
		any = true;
	}
	if (any)
		putchar('\n');
	if (m->o.kflags)
		print_kflags_line(m, "", c);
	for (int i = 0; i < PT_REASON__COUNT; i++)
		if (c->reason[i])
			printf("note: unknown %s: %s\n", hsize(m, c->reason[i], b, sizeof(b)),
			       pt_reason_text((enum pt_reason)i));
	any = false;
	for (size_t i = 0; i < sizeof(limit_tab) / sizeof(limit_tab[0]); i++) {
		if (!(limits & limit_tab[i].bit))
			continue;
		printf("%s%s", any ? "; " : "note: limits: ", limit_tab[i].text);
		any = true;
	}
	if (any)
		putchar('\n');
	if (m->o.verify)
		printf("verify: %u memory areas checked against smaps: %u agree, %u explained, "
		       "%u unexplained, %u skipped\n",
		       m->v_checked, m->v_ok, m->v_explained, m->v_mismatch, m->v_skipped);
	if (!complete)
		printf("note: incomplete: the scan stopped early (see the error)\n");
}

static void json_footer(struct map_ctx *m, bool complete, const char *errmsg, int err)
{
	struct json *j = m->j;
	uint32_t limits = pt_scan_limits(m->t);

	json_pages(j, "totals", &m->totals);
	if (m->o.kflags)
		json_kflags(j, "kflags_totals", &m->totals);
	json_bool(j, "complete", complete);
	json_arr_begin(j, "limits");
	for (size_t i = 0; i < sizeof(limit_tab) / sizeof(limit_tab[0]); i++)
		if (limits & limit_tab[i].bit)
			json_str(j, NULL, limit_tab[i].id);
	json_arr_end(j);
	json_obj_begin(j, "unknown_reasons");
	for (int i = 0; i < PT_REASON__COUNT; i++)
		if (m->totals.reason[i])
			json_uint(j, reason_id((unsigned)i), m->totals.reason[i]);
	json_obj_end(j);
	if (m->o.verify) {
		json_obj_begin(j, "verify");
		json_uint(j, "checked", m->v_checked);
		json_uint(j, "ok", m->v_ok);
		json_uint(j, "explained", m->v_explained);
		json_uint(j, "unexplained", m->v_mismatch);
		json_uint(j, "skipped", m->v_skipped);
		json_obj_end(j);
	}
	if (errmsg) {
		json_obj_begin(j, "error");
		json_str(j, "message", errmsg);
		json_str(j, "errno", errno_name(err));
		json_int(j, "exit_code", PT_EXIT_RUNTIME);
		json_obj_end(j);
	}
}

/* ---- driver ---- */

static void verify_account(struct map_ctx *m, const struct vcheck *v)
{
	m->v_checked += v->status != V_SKIPPED;
	m->v_ok += v->status == V_OK;
	m->v_explained += v->status == V_EXPLAINED;
	m->v_mismatch += v->status == V_MISMATCH;
	m->v_skipped += v->status == V_SKIPPED;
}

/* Scan and print one VMA (its part inside the range).  Returns 0 or -errno. */
static int map_vma(struct map_ctx *m, const struct pt_vma *vma)
{
	uint64_t s = vma->start > m->o.rstart ? vma->start : m->o.rstart;
	uint64_t e = vma->end < m->o.rend ? vma->end : m->o.rend;
	struct runvec rv = { 0 };
	struct counts c = { 0 };
	struct vcheck v = { 0 };
	uint64_t done;
	int err;

	err = scan_range(m, s, e, scan_flags(&m->o), &c, m->o.pages ? &rv : NULL, &done);
	if (err) {
		/* Print only what was scanned: the part before the failure. */
		if (done == s) {
			free(rv.r);
			return err;
		}
		e = done;
	}
	if (m->o.verify) {
		if (err) {
			v.status = V_SKIPPED;
			v.skip_reason = "the scan of this memory area did not complete";
		} else if (s != vma->start || e != vma->end) {
			v.status = V_SKIPPED;
			v.skip_reason = "--range covers only part of this memory area";
		} else {
			verify_vma(m, vma, &c, &v);
		}
		verify_account(m, &v);
	}
	if (m->j)
		emit_vma_json(m, vma, s, e, &c, m->o.pages ? &rv : NULL, m->o.verify ? &v : NULL);
	else
		emit_vma_plain(m, vma, s, e, &c, m->o.pages ? &rv : NULL, m->o.verify ? &v : NULL);
	counts_add(&m->totals, &c);
	free(rv.r);
	return err;
}

static int parse_args(int argc, char **argv, struct map_opts *o)
{
	enum { OPT_VERIFY = 256, OPT_NO_SHARED };
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "pages", no_argument, NULL, 'P' },
		{ "kflags", no_argument, NULL, 'k' },
		{ "range", required_argument, NULL, 'r' },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "no-shared", no_argument, NULL, OPT_NO_SHARED },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *bad = NULL, *range = NULL;
	char badopt[3] = "-?";
	int opt;

	/* Know --json before reporting any usage error, wherever it is. */
	o->json = cli_wants_json(argc, argv);

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":jpPkr:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': o->json = true; break;
		case 'p': o->json = o->pretty = true; break;
		case 'P': o->pages = true; break;
		case 'k': o->kflags = true; break;
		case 'r': range = optarg; break;
		case OPT_VERIFY: o->verify = true; break;
		case OPT_NO_SHARED: o->no_shared = true; break;
		case 'h':
			usage(stdout);
			return 1;
		case ':':
			cli_error(o->json, 0, "option '%s' needs an argument (try 'pagetrack map --help')",
				  argv[optind - 1]);
			return -EINVAL;
		default:
			if (optopt) {
				badopt[1] = (char)optopt;
				bad = badopt;
			} else {
				bad = argv[optind - 1];
			}
			cli_error(o->json, 0, "unknown option '%s' (try 'pagetrack map --help')", bad);
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		cli_error(o->json, 0, optind >= argc ? "missing PID (a process id or 'self')"
			  : "too many arguments (expected one PID)");
		return -EINVAL;
	}
	if (parse_pid(argv[optind], &o->pid) < 0) {
		cli_error(o->json, 0, "invalid PID '%s' (expected a positive number or 'self')",
			  argv[optind]);
		return -EINVAL;
	}
	o->rstart = 0;
	o->rend = UINT64_MAX;
	if (range) {
		if (parse_range(range, &o->rstart, &o->rend) < 0) {
			cli_error(o->json, 0, "invalid range '%s' (expected START-END in hex, "
				  "START < END)", range);
			return -EINVAL;
		}
		o->has_range = true;
	}
	return 0;
}

/* One clear line for a failure to open or read the target. */
static void target_error(const struct map_opts *o, pid_t pid, int err, const char *what)
{
	if (err == ESRCH)
		cli_error(o->json, err, "no such process: %d", (int)pid);
	else if (err == ENODATA)
		cli_error(o->json, err, "process %d is a kernel thread: it has no user memory",
			  (int)pid);
	else if (err == EACCES || err == EPERM)
		cli_error(o->json, err, "permission denied: cannot inspect process %d "
			  "(needs the same user or root, and ptrace access)", (int)pid);
	else
		cli_error(o->json, err, "cannot %s process %d: %s", what, (int)pid, strerror(err));
}

static bool vma_selected(const struct map_opts *o, const struct pt_vma *v)
{
	return v->end > o->rstart && v->start < o->rend;
}

static int addr_width(const struct map_ctx *m)
{
	uint64_t max = 0;
	int w = 8;

	for (size_t i = 0; i < m->nvmas; i++)
		if (vma_selected(&m->o, &m->vmas[i]) && m->vmas[i].end > max)
			max = m->vmas[i].end;
	while (w < 16 && (max >> (4 * w)))
		w++;
	return w;
}

int cmd_map(int argc, char **argv)
{
	struct map_ctx m = { 0 };
	char errmsg[256] = "";
	bool complete = true;
	int ret = PT_EXIT_RUNTIME, err;
	size_t i;

	err = parse_args(argc, argv, &m.o);
	if (err)
		return err > 0 ? PT_EXIT_OK : PT_EXIT_USAGE;
	if (cli_page_size_refused(m.o.json))
		return PT_EXIT_RUNTIME;
	m.page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	/* Page-align the range outward: runs are whole pages. */
	m.o.rstart &= ~(m.page_size - 1);
	if (m.o.rend != UINT64_MAX)
		m.o.rend = (m.o.rend + m.page_size - 1) & ~(m.page_size - 1);

	if (m.o.kflags && pt_feature(PT_FEAT_KPAGEFLAGS, NULL) != PT_YES) {
		const char *why = NULL;

		pt_feature(PT_FEAT_KPAGEFLAGS, &why);
		cli_error(m.o.json, EACCES, "--kflags: /proc/kpageflags is not readable: %s",
			  why ? why : "needs root");
		return PT_EXIT_RUNTIME;
	}
	m.t = pt_target_create(m.o.pid, NULL);
	if (!m.t) {
		target_error(&m.o, m.o.pid, errno, "open");
		return PT_EXIT_RUNTIME;
	}
	m.pid = pt_target_pid(m.t);
	if (m.pid == 0)
		m.pid = getpid();
	err = pt_vmas_read(m.t, &m.vmas, &m.nvmas);
	if (err == 0 && m.nvmas == 0 && pt_target_alive(m.t) == 0)
		err = -ESRCH;	/* a zombie has no memory areas left */
	if (err < 0) {
		if (err == -ESRCH)
			cli_error(m.o.json, ESRCH, "process %d exited before it could be scanned",
				  (int)m.pid);
		else
			target_error(&m.o, m.pid, -err, "read the memory areas of");
		goto out;
	}
	if (m.o.verify) {
		err = smaps_read(m.pid, &m.sm);
		if (err < 0) {
			cli_error(m.o.json, -err, "--verify: cannot read /proc/%d/smaps: %s",
				  (int)m.pid, strerror(-err));
			goto out;
		}
	}
	m.buf = malloc(SCAN_BUF_REGIONS * sizeof(*m.buf));
	if (m.o.json)
		m.j = json_new(stdout, m.o.pretty);
	if (!m.buf || (m.o.json && !m.j)) {
		cli_error(m.o.json, ENOMEM, "out of memory");
		goto out;
	}
	m.addr_width = addr_width(&m);

	if (m.j) {
		json_obj_begin(m.j, NULL);
		json_int(m.j, "pid", m.pid);
		json_str(m.j, "backend", pt_scan_backend_name(pt_target_scan_backend(m.t)));
		if (m.o.has_range) {
			json_obj_begin(m.j, "range");
			json_hex(m.j, "start", m.o.rstart);
			json_hex(m.j, "end", m.o.rend);
			json_obj_end(m.j);
		}
		json_arr_begin(m.j, "vmas");
	} else {
		print_header(&m);
	}
	for (i = 0; i < m.nvmas; i++) {
		if (!vma_selected(&m.o, &m.vmas[i]))
			continue;
		err = map_vma(&m, &m.vmas[i]);
		if (err < 0)
			break;
	}
	if (err < 0) {
		complete = false;
		if (err == -ESRCH || pt_target_alive(m.t) == 0) {
			err = -ESRCH;
			snprintf(errmsg, sizeof(errmsg), "process %d exited during the scan; "
				 "the output covers only what was scanned before", (int)m.pid);
		} else {
			snprintf(errmsg, sizeof(errmsg), "scan of process %d failed at 0x%" PRIx64
				 ": %s; the output is incomplete", (int)m.pid, m.vmas[i].start,
				 strerror(-err));
		}
	}
	if (m.j) {
		json_arr_end(m.j);
		json_footer(&m, complete, complete ? NULL : errmsg, -err);
		json_obj_end(m.j);
		json_free(m.j);
		m.j = NULL;
	} else {
		print_footer(&m, complete);
	}
	fflush(stdout);
	if (!complete) {
		fprintf(stderr, "pagetrack: %s\n", errmsg);
		goto out;
	}
	if (m.v_mismatch) {
		fprintf(stderr, "pagetrack: --verify: %u memory areas disagree with smaps "
			"for no known reason\n", m.v_mismatch);
		goto out;
	}
	ret = PT_EXIT_OK;
out:
	json_free(m.j);
	free(m.buf);
	free(m.sm.e);
	pt_vmas_free(m.vmas);
	pt_target_free(m.t);
	return ret;
}
