/* SPDX-License-Identifier: MIT */
/*
 * pagetrack check [--json] [--pretty] [--hazards]
 *
 * Print every kernel feature probe (yes / no / unknown, and why), then
 * what pagetrack will therefore use.  Output format: doc/check.md.
 * --hazards also runs the COW / O_DIRECT stress (tools/common/cowstress.c,
 * seed 004) for ~2 s per tracker backend and reports whether this kernel
 * loses O_DIRECT data when pages are write-protected or swapped meanwhile.
 * Uses the public API only; the backend shown is the one the library
 * really picks for a target (pt_target_create on self), so it honours
 * PT_FORCE_BACKEND exactly as pagetrack map does.
 */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cowstress.h"

struct check_opts {
	bool json, pretty, hazards;
};

#define HAZARD_MS 2000

/* Result of the cow-odirect hazard stress for one tracker backend. */
struct hazard {
	enum pt_track_backend backend;
	int err;			/* 0 ran, -EOPNOTSUPP skipped, else failed to run */
	struct pt_cowstress_result r;
	bool pageout;
};

/* One line of the "pagetrack will use" section. */
struct use_item {
	const char *key;	/* JSON key, stable */
	const char *label;	/* human label */
	const char *value;	/* short value (JSON string) */
	char reason[256];
};

enum { USE_BACKEND, USE_SHARED, USE_PFNS, USE_KFLAGS, USE_HUGE, USE_SWAP, USE__COUNT };

static const char *state_name(int st)
{
	return st == PT_YES ? "yes" : st == PT_NO ? "no" : "unknown";
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pagetrack check [OPTIONS]\n"
		"\n"
		"Probe the kernel features pagetrack relies on and say what it will use.\n"
		"\n"
		"Options:\n"
		"  -j, --json    JSON output (doc/check.md)\n"
		"  -p, --pretty  indented JSON (implies --json)\n"
		"      --hazards run the COW/O_DIRECT stress (~2 s per tracker backend)\n"
		"  -h, --help    show this help and exit\n");
}

/* 0 to go on, 1 for --help (exit 0), -EINVAL for a usage error. */
static int parse_args(int argc, char **argv, struct check_opts *o)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pretty", no_argument, NULL, 'p' },
		{ "hazards", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char badopt[3] = "-?";
	int opt;

	/* Know --json before reporting any usage error, wherever it is. */
	o->json = cli_wants_json(argc, argv);

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":jphH", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			o->json = true;
			break;
		case 'p':
			o->json = o->pretty = true;
			break;
		case 'H':
			o->hazards = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			if (optopt) {
				badopt[1] = (char)optopt;
				cli_error(o->json, 0, "unknown option '%s' (try 'pagetrack check --help')",
					  badopt);
			} else {
				cli_error(o->json, 0, "unknown option '%s' (try 'pagetrack check --help')",
					  argv[optind - 1]);
			}
			return -EINVAL;
		}
	}
	if (optind < argc) {
		cli_error(o->json, 0, "unexpected argument '%s' (check takes no arguments)",
			  argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int feat(enum pt_feature f, const char **why)
{
	const char *r = NULL;
	int st = pt_feature(f, &r);

	if (why)
		*why = r ? r : "";
	return st < 0 ? PT_UNKNOWN : st;	/* < 0 only for a bad feature */
}

static void decide_backend(struct use_item *u, enum pt_scan_backend *used)
{
	const char *env = getenv("PT_FORCE_BACKEND");
	const char *why;
	struct pt_target *t;
	int st = feat(PT_FEAT_PAGEMAP_SCAN, &why);

	u->key = "scan_backend";
	u->label = "scan backend";
	*used = PT_SCAN_BACKEND_AUTO;
	t = pt_target_create(0, NULL);
	if (!t) {
		int err = errno;
		const char *pg;

		u->value = "none";
		if (feat(PT_FEAT_PAGE_SIZE_4K, &pg) == PT_NO)
			snprintf(u->reason, sizeof(u->reason), "%s", pg);
		else
			snprintf(u->reason, sizeof(u->reason), "%s%s%scannot open a target: %s",
				 env && *env ? "PT_FORCE_BACKEND=" : "", env && *env ? env : "",
				 env && *env ? ": " : "", strerror(err));
		return;
	}
	*used = pt_target_scan_backend(t);
	u->value = pt_scan_backend_name(*used);
	pt_target_free(t);
	if (env && (!strcmp(env, "read") || !strcmp(env, "pagemap_read") ||
		    !strcmp(env, "scan") || !strcmp(env, "pagemap_scan")))
		snprintf(u->reason, sizeof(u->reason), "forced by PT_FORCE_BACKEND=%s", env);
	else if (*used == PT_SCAN_BACKEND_PAGEMAP_SCAN)
		snprintf(u->reason, sizeof(u->reason), "%sPAGEMAP_SCAN ioctl available",
			 env && *env ? "PT_FORCE_BACKEND value ignored; " : "");
	else
		snprintf(u->reason, sizeof(u->reason), "%sPAGEMAP_SCAN not usable (%s: %s)",
			 env && *env ? "PT_FORCE_BACKEND value ignored; " : "", state_name(st), why);
}

static void decide(struct use_item *u)
{
	const char *why_admin, *why_pfn, *why_kpf, *why_swap;
	int admin = feat(PT_FEAT_CAP_SYS_ADMIN, &why_admin);
	int pfn = feat(PT_FEAT_PAGEMAP_PFN, &why_pfn);
	int kpf = feat(PT_FEAT_KPAGEFLAGS, &why_kpf);
	int swap = feat(PT_FEAT_SWAP_ACTIVE, &why_swap);
	enum pt_scan_backend backend;
	struct use_item *s;

	decide_backend(&u[USE_BACKEND], &backend);

	s = &u[USE_SHARED];
	s->key = "shared_resolution";
	s->label = "shared memory";
	if (admin == PT_YES) {
		s->value = "map_files";
		snprintf(s->reason, sizeof(s->reason),
			 "CAP_SYS_ADMIN: backing objects opened via /proc/PID/map_files");
	} else if (admin == PT_NO) {
		s->value = "memfd_or_path";
		snprintf(s->reason, sizeof(s->reason),
			 "no CAP_SYS_ADMIN: memfd or path when reachable, else pages reported unknown");
	} else {
		s->value = "unknown";
		snprintf(s->reason, sizeof(s->reason), "CAP_SYS_ADMIN unknown: %s", why_admin);
	}

	s = &u[USE_PFNS];
	s->key = "pfns";
	s->label = "PFNs";
	s->value = state_name(pfn);
	snprintf(s->reason, sizeof(s->reason), "%s", why_pfn);

	s = &u[USE_KFLAGS];
	s->key = "kpageflags";
	s->label = "kpageflags";
	s->value = state_name(kpf == PT_YES && pfn != PT_YES ? PT_NO : kpf);
	if (kpf == PT_YES && pfn != PT_YES)
		snprintf(s->reason, sizeof(s->reason), "readable, but PFNs are not visible");
	else
		snprintf(s->reason, sizeof(s->reason), "%s", why_kpf);

	s = &u[USE_HUGE];
	s->key = "huge_pages";
	s->label = "huge pages";
	if (backend == PT_SCAN_BACKEND_PAGEMAP_SCAN) {
		s->value = "pagemap_scan";
		snprintf(s->reason, sizeof(s->reason), "PAGE_IS_HUGE from PAGEMAP_SCAN");
	} else if (kpf == PT_YES && pfn == PT_YES) {
		s->value = "kpageflags";
		snprintf(s->reason, sizeof(s->reason),
			 "PMD-mapped THP found by PFN layout and kpageflags (hugetlb by VMA)");
	} else {
		s->value = "hugetlb_only";
		snprintf(s->reason, sizeof(s->reason),
			 "THP not visible without PAGEMAP_SCAN or kpageflags; hugetlb by VMA");
	}

	s = &u[USE_SWAP];
	s->key = "swap";
	s->label = "swap";
	s->value = swap == PT_YES ? "active" : swap == PT_NO ? "none" : "unknown";
	snprintf(s->reason, sizeof(s->reason), "%s", why_swap);
}

static const enum pt_track_backend hazard_backends[] = { PT_TRACK_UFFD, PT_TRACK_SOFTDIRTY,
							  PT_TRACK_HASH };
#define NHAZ (sizeof(hazard_backends) / sizeof(hazard_backends[0]))

/* Run the stress per backend; true when none found corruption. */
static bool run_hazards(struct hazard *h)
{
	bool swap = feat(PT_FEAT_SWAP_ACTIVE, NULL) == PT_YES;
	bool page_ok = feat(PT_FEAT_PAGE_SIZE_4K, NULL) != PT_NO;
	bool ok = true;

	for (size_t i = 0; i < NHAZ; i++) {
		/* swap-out is the other trigger of the wrong COW: use it when there */
		struct pt_cowstress_opts o = { .backend = hazard_backends[i], .ms = HAZARD_MS,
					       .pageout = swap, .seed = (uint64_t)time(NULL) };

		h[i].backend = hazard_backends[i];
		h[i].pageout = swap;
		h[i].err = pt_cowstress_run(&o, &h[i].r);
		if (h[i].err == -EOPNOTSUPP && (h[i].backend != PT_TRACK_HASH || !page_ok)) {
			const char *why;
			char tmp[sizeof(h[i].r.why)];

			feat(!page_ok ? PT_FEAT_PAGE_SIZE_4K : h[i].backend == PT_TRACK_UFFD ?
			     PT_FEAT_UFFD_WP_ASYNC : PT_FEAT_SOFT_DIRTY, &why);
			snprintf(tmp, sizeof(tmp), "%s", h[i].r.why);
			snprintf(h[i].r.why, sizeof(h[i].r.why), "%.80s: %.100s", tmp, why);
		}
		if (h[i].err == 0 && (h[i].r.read_bad || h[i].r.write_bad))
			ok = false;
	}
	return ok;
}

static const char *hazard_result(const struct hazard *h)
{
	if (h->err == -EOPNOTSUPP)
		return "skipped";
	if (h->err)
		return "error";
	return h->r.read_bad || h->r.write_bad ? "fail" : "pass";
}

static void print_hazards_plain(const struct hazard *h)
{
	printf("\nhazards:\n");
	for (size_t i = 0; i < NHAZ; i++) {
		const char *name = pt_track_backend_name(h[i].backend);

		if (h[i].err) {
			printf("  hazard cow-odirect: backend %s: %s (%s)\n", name,
			       hazard_result(&h[i]), h[i].r.why);
			continue;
		}
		printf("  hazard cow-odirect: backend %s: %" PRIu64 " bytes corrupted in %" PRIu64
		       " reads (%s)%s\n", name, h[i].r.read_bad + h[i].r.write_bad, h[i].r.reads,
		       h[i].r.read_bad || h[i].r.write_bad ? "FAIL" : "PASS",
		       h[i].pageout ? ", with swap-out" : "");
	}
}

static void print_hazards_json(struct json *j, const struct hazard *h)
{
	json_obj_begin(j, "hazards");
	json_arr_begin(j, "cow_odirect");
	for (size_t i = 0; i < NHAZ; i++) {
		json_obj_begin(j, NULL);
		json_str(j, "backend", pt_track_backend_name(h[i].backend));
		json_str(j, "result", hazard_result(&h[i]));
		if (h[i].err) {
			json_str(j, "reason", h[i].r.why);
		} else {
			json_uint(j, "bytes_corrupted", h[i].r.read_bad + h[i].r.write_bad);
			json_uint(j, "reads", h[i].r.reads);
			json_uint(j, "read_bytes_corrupted", h[i].r.read_bad);
			json_uint(j, "write_bytes_corrupted", h[i].r.write_bad);
			json_uint(j, "collect_rounds", h[i].r.rounds);
			json_bool(j, "swap_out", h[i].pageout);
			json_uint(j, "duration_ms", HAZARD_MS);
		}
		json_obj_end(j);
	}
	json_arr_end(j);
	json_obj_end(j);
}

/* ---- tracker backends: usable here, which one auto picks, blind spots ---- */

static const struct {
	enum pt_track_backend b;
	const char *what, *blind;
} trackers[] = {
	{ PT_TRACK_UFFD, "userfaultfd write-protect (async) + PAGEMAP_SCAN",
	  "writes through long-term pins other than io_uring registered buffers (RDMA, "
	  "VFIO); asynchronous DMA (io_uring, AIO) into a page re-protected mid-transfer, "
	  "and synchronous O_DIRECT too when the target is the caller or traced by another "
	  "(no barrier); MAP_SHARED areas are hashed (other processes and write(2) on the "
	  "object); vdso/vvar not tracked" },
	{ PT_TRACK_SOFTDIRTY, "soft-dirty bits (clear_refs 4), target frozen for each collect",
	  "a swapped-out shared page loses its bit (MAP_SHARED areas are hashed); VMA merges "
	  "and new areas over-report; pinned pages stay dirty (over-reported); the calling "
	  "process only while single-threaded" },
	{ PT_TRACK_HASH, "XXH3 of every page's content, read each collect",
	  "reports content changes, not rewrites of identical bytes; a 2^-64 collision "
	  "chance per changed page; reads all tracked memory each collect; a copier must "
	  "note what it copied (pt_tracker_note_copy), or a page changed after the "
	  "collect and back before the next is not reported again" },
};
#define NTRACKERS (sizeof(trackers) / sizeof(trackers[0]))

struct tracker_item {
	bool usable;
	char reason[200];
};

/*
 * Really create each backend's tracker, on one page of our own, so the
 * answer is the library's and not a guess from the probes.
 */
static void decide_trackers(struct tracker_item *t, enum pt_track_backend *chosen)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *m = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	*chosen = PT_TRACK_AUTO;
	for (size_t i = 0; i < NTRACKERS; i++) {
		PT_OPTS(pt_tracker_opts, o, .backend = trackers[i].b);
		struct pt_tracker *tr;
		const char *why = NULL;

		if (m == MAP_FAILED) {
			snprintf(t[i].reason, sizeof(t[i].reason), "cannot map a test page");
			continue;
		}
		m[0] = 1;
		o.start = (uintptr_t)m;
		o.end = (uintptr_t)m + (size_t)pg;
		tr = pt_tracker_create(0, &o);
		t[i].usable = tr != NULL;
		if (tr) {
			snprintf(t[i].reason, sizeof(t[i].reason), "%s", trackers[i].what);
			if (*chosen == PT_TRACK_AUTO)
				*chosen = trackers[i].b;	/* auto takes the first usable */
		} else {
			int e = errno;

			if (e == EOPNOTSUPP && feat(PT_FEAT_PAGE_SIZE_4K, NULL) == PT_NO)
				feat(PT_FEAT_PAGE_SIZE_4K, &why);
			else if (e == EOPNOTSUPP && trackers[i].b == PT_TRACK_UFFD)
				feat(PT_FEAT_UFFD_WP_ASYNC, &why);
			else if (e == EOPNOTSUPP && trackers[i].b == PT_TRACK_SOFTDIRTY)
				feat(PT_FEAT_SOFT_DIRTY, &why);
			snprintf(t[i].reason, sizeof(t[i].reason), "%s", why ? why : strerror(e));
		}
		pt_tracker_free(tr);
	}
	if (m != MAP_FAILED)
		munmap(m, (size_t)pg);
}

static void print_trackers_plain(const struct tracker_item *t, enum pt_track_backend chosen)
{
	printf("\ntracker backends (--backend; auto picks the first usable):\n");
	for (size_t i = 0; i < NTRACKERS; i++) {
		printf("  %-10s %-4s %s%s\n", pt_track_backend_name(trackers[i].b),
		       t[i].usable ? "yes" : "no", chosen == trackers[i].b ? "[auto] " : "",
		       t[i].reason);
		printf("  %-10s      blind spots: %s\n", "", trackers[i].blind);
	}
}

static void print_trackers_json(struct json *j, const struct tracker_item *t,
				enum pt_track_backend chosen)
{
	json_arr_begin(j, "trackers");
	for (size_t i = 0; i < NTRACKERS; i++) {
		json_obj_begin(j, NULL);
		json_str(j, "backend", pt_track_backend_name(trackers[i].b));
		json_bool(j, "usable", t[i].usable);
		json_bool(j, "auto", chosen == trackers[i].b);
		json_str(j, "reason", t[i].reason);
		json_str(j, "blind_spots", trackers[i].blind);
		json_obj_end(j);
	}
	json_arr_end(j);
}

/* pt_fault_cost_ns(): measured once, by the first tracker created or here. */
static void print_fault_cost_plain(void)
{
	const char *how;
	uint64_t ns;
	int k = pt_fault_cost_ns(&ns, &how);

	printf("\nfault cost (one tracked write to a page, as charged to the target):\n");
	if (k == PT_FAULT_KIND_NONE)
		printf("  %-11s %s\n", "none", how);
	else
		printf("  %-11s %" PRIu64 " ns  %s\n", pt_fault_kind_name(k), ns, how);
}

static void print_fault_cost_json(struct json *j)
{
	const char *how;
	uint64_t ns;
	int k = pt_fault_cost_ns(&ns, &how);

	json_obj_begin(j, "fault_cost");
	json_str(j, "kind", pt_fault_kind_name(k));
	json_uint(j, "ns", ns);
	json_str(j, "how", how);
	json_obj_end(j);
}

static void print_plain(const struct use_item *u)
{
	struct utsname un;

	if (uname(&un) == 0)
		printf("Kernel features (Linux %s, %zu-byte pages, pagetrack %s):\n", un.release,
		       pt_page_size(), pt_version());
	else
		printf("Kernel features (%zu-byte pages, pagetrack %s):\n", pt_page_size(),
		       pt_version());
	for (int f = 0; f < PT_FEAT__COUNT; f++) {
		const char *why;
		int st = feat((enum pt_feature)f, &why);

		printf("  %-24s %-8s %s\n", pt_feature_name((enum pt_feature)f), state_name(st), why);
	}
	printf("\npagetrack will use:\n");
	for (int i = 0; i < USE__COUNT; i++)
		printf("  %-24s %-14s %s\n", u[i].label, u[i].value, u[i].reason);
}

static int print_json(const struct check_opts *o, const struct use_item *u,
		      const struct tracker_item *tk, enum pt_track_backend chosen,
		      const struct hazard *hz)
{
	struct json *j = json_new(stdout, o->pretty);
	struct utsname un;

	if (!j) {
		cli_error(true, ENOMEM, "out of memory");
		return PT_EXIT_RUNTIME;
	}
	json_obj_begin(j, NULL);
	json_str(j, "version", pt_version());
	json_str(j, "kernel", uname(&un) == 0 ? un.release : NULL);
	json_uint(j, "page_size", pt_page_size());
	json_obj_begin(j, "features");
	for (int f = 0; f < PT_FEAT__COUNT; f++) {
		const char *why;
		int st = feat((enum pt_feature)f, &why);

		json_obj_begin(j, pt_feature_name((enum pt_feature)f));
		json_str(j, "state", state_name(st));
		json_str(j, "reason", why);
		json_obj_end(j);
	}
	json_obj_end(j);
	json_obj_begin(j, "will_use");
	for (int i = 0; i < USE__COUNT; i++) {
		char key[64];

		if (i == USE_PFNS || i == USE_KFLAGS)
			json_bool(j, u[i].key, !strcmp(u[i].value, "yes"));
		else
			json_str(j, u[i].key, u[i].value);
		snprintf(key, sizeof(key), "%s_reason", u[i].key);
		json_str(j, key, u[i].reason);
	}
	json_obj_end(j);
	print_trackers_json(j, tk, chosen);
	print_fault_cost_json(j);
	if (hz)
		print_hazards_json(j, hz);
	json_obj_end(j);
	json_free(j);
	return PT_EXIT_OK;
}

int cmd_check(int argc, char **argv)
{
	struct check_opts o = { 0 };
	struct use_item u[USE__COUNT];
	struct tracker_item tk[NTRACKERS];
	enum pt_track_backend chosen;
	struct hazard hz[NHAZ];
	bool hz_ok = true;
	int r;

	r = parse_args(argc, argv, &o);
	if (r)
		return r > 0 ? PT_EXIT_OK : PT_EXIT_USAGE;
	memset(u, 0, sizeof(u));
	memset(tk, 0, sizeof(tk));
	decide(u);
	decide_trackers(tk, &chosen);
	if (o.hazards)
		hz_ok = run_hazards(hz);
	if (o.json) {
		r = print_json(&o, u, tk, chosen, o.hazards ? hz : NULL);
		return r == PT_EXIT_OK && !hz_ok ? PT_EXIT_RUNTIME : r;
	}
	print_plain(u);
	print_trackers_plain(tk, chosen);
	print_fault_cost_plain();
	if (o.hazards)
		print_hazards_plain(hz);
	/* a kernel that corrupts data is a finding, not a success */
	return hz_ok ? PT_EXIT_OK : PT_EXIT_RUNTIME;
}
