// SPDX-License-Identifier: MIT
/*
 * pagetrack snapshot: copy a process's memory into an image layer
 * (doc/cli.md, doc/image-format.md) with pt_snapshot().
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define NSEC 1000000000ULL

struct snap_cli {
	pid_t pid;
	const char *out, *parent, *core;
	bool live, no_evict, json, force;
	uint64_t pause_ns, max_rounds;
	uint64_t every_ns, count;	/* --every / --count: a tracked chain */
	int level;
	bool tty;
	bool progress_shown;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pagetrack snapshot [OPTIONS] PID -o FILE\n"
		"\n"
		"Copy the memory of process PID into the image FILE (doc/image-format.md),\n"
		"with its threads' registers, as a consistent state.  By default every\n"
		"thread is frozen for the whole copy, as gcore does; with --live the copy\n"
		"runs while the process does, and it is frozen only for the last delta.\n"
		"Pages that were swapped out are put back out after they are copied.\n"
		"\n"
		"Options:\n"
		"  -o, --output FILE    the image to write (mode 0600; an existing file is\n"
		"                       kept unless --force)\n"
		"  -p, --parent FILE    store only the pages that differ from this earlier\n"
		"                       image (compared page by page: the layers come from\n"
		"                       two runs)\n"
		"      --live           pre-copy rounds with a tracker while the process runs\n"
		"                       (layers FILE.live-0, FILE.live-1, ... beside FILE,\n"
		"                       which FILE needs), then freeze for the rest\n"
		"      --pause-limit D  --live: freeze once the rest can be copied in D at the\n"
		"                       measured copy rate (default 300ms)\n"
		"      --max-rounds N   --live: freeze after at most N rounds (default 30)\n"
		"      --count N        N frozen layers FILE.1 ... FILE.N, each holding the\n"
		"                       pages written since the one before (a tracker runs\n"
		"                       in between: incremental checkpoints)\n"
		"      --every D        with --count: time between the layers (default 10s)\n"
		"      --core CORE      also write an ELF core file (as gcore)\n"
		"      --no-evict       leave the pages the copy swapped in resident\n"
		"      --level N        zstd level: 1 (default) to 19, or -1 to -7 (faster,\n"
		"                       larger files; -1 often compresses as well as 1)\n"
		"  -f, --force          replace FILE (and the live layers) if they exist\n"
		"  -j, --json           one JSON report object on stdout (doc/cli.md)\n"
		"  -h, --help           show this help\n"
		"\n"
		"Exit status: 0 success, 1 runtime error (no file left, the process\n"
		"resumed), 2 usage error.\n");
}

static int parse_args(int argc, char **argv, struct snap_cli *o)
{
	enum { O_LIVE = 256, O_PAUSE, O_ROUNDS, O_CORE, O_NOEVICT, O_LEVEL, O_EVERY, O_COUNT };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "parent", required_argument, NULL, 'p' },
		{ "live", no_argument, NULL, O_LIVE },
		{ "pause-limit", required_argument, NULL, O_PAUSE },
		{ "max-rounds", required_argument, NULL, O_ROUNDS },
		{ "core", required_argument, NULL, O_CORE },
		{ "every", required_argument, NULL, O_EVERY },
		{ "count", required_argument, NULL, O_COUNT },
		{ "no-evict", no_argument, NULL, O_NOEVICT },
		{ "level", required_argument, NULL, O_LEVEL },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int opt;

	o->json = cli_wants_json(argc, argv);
	o->level = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":o:p:fjh", opts, NULL)) != -1) {
		switch (opt) {
		case 'o': o->out = optarg; break;
		case 'p': o->parent = optarg; break;
		case O_LIVE: o->live = true; break;
		case O_PAUSE:
			if (parse_duration(optarg, &o->pause_ns, 1000, 3600 * NSEC) < 0) {
				cli_error(o->json, 0, "--pause-limit: '%s' is not a duration from 1us "
					  "to 1h", optarg);
				return -1;
			}
			break;
		case O_ROUNDS:
			if (parse_uint(optarg, 100000, &o->max_rounds) < 0 || !o->max_rounds) {
				cli_error(o->json, 0, "--max-rounds: '%s' is not a number from 1 to "
					  "100000", optarg);
				return -1;
			}
			break;
		case O_CORE: o->core = optarg; break;
		case O_EVERY:
			if (parse_duration(optarg, &o->every_ns, 0, 24 * 3600 * NSEC) < 0) {
				cli_error(o->json, 0, "--every: '%s' is not a duration up to 24h",
					  optarg);
				return -1;
			}
			break;
		case O_COUNT:
			if (parse_uint(optarg, 100000, &o->count) < 0 || !o->count) {
				cli_error(o->json, 0, "--count: '%s' is not a number from 1 to 100000",
					  optarg);
				return -1;
			}
			break;
		case O_NOEVICT: o->no_evict = true; break;
		case O_LEVEL: {
			bool neg = optarg[0] == '-';

			/* zstd's levels: 1 (default) to 19, and its fast ones -1 to -7 */
			if (parse_uint(optarg + neg, neg ? 7 : 19, &v) < 0 || !v) {
				cli_error(o->json, 0, "--level: '%s' is not a zstd level from -7 to 19 "
					  "(0 excluded)", optarg);
				return -1;
			}
			o->level = neg ? -(int)v : (int)v;
			break;
		}
		case 'f': o->force = true; break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); return 1;
		case ':':
			cli_error(o->json, 0, "option '%s' needs a value", argv[optind - 1]);
			return -1;
		default:
			cli_error(o->json, 0, "unknown option '%s' (try 'pagetrack snapshot --help')",
				  argv[optind - 1]);
			return -1;
		}
	}
	if (optind != argc - 1) {
		cli_error(o->json, 0, optind >= argc ? "missing PID (try 'pagetrack snapshot --help')"
						     : "too many arguments");
		return -1;
	}
	if (parse_pid(argv[optind], &o->pid) < 0 || o->pid == 0) {
		cli_error(o->json, 0, "'%s' is not a process id", argv[optind]);
		return -1;
	}
	if (!o->out) {
		cli_error(o->json, 0, "missing -o FILE");
		return -1;
	}
	if (!o->live && (o->pause_ns || o->max_rounds)) {
		cli_error(o->json, 0, "--pause-limit and --max-rounds go with --live");
		return -1;
	}
	if (o->every_ns && !o->count) {
		cli_error(o->json, 0, "--every goes with --count");
		return -1;
	}
	if (o->count && (o->live || o->parent || o->core)) {
		cli_error(o->json, 0, "--count does not go with --live, --parent or --core");
		return -1;
	}
	if (o->live && o->parent) {
		cli_error(o->json, 0, "--live and --parent do not go together");
		return -1;
	}
	return 0;
}

static void on_progress(const struct pt_snapshot_progress *p, void *ctx)
{
	struct snap_cli *o = ctx;
	char a[16], b[16], r[16];

	if (!o->tty)
		return;
	fmt_size(p->bytes_done, a, sizeof(a));
	fmt_size(p->rate_bps, r, sizeof(r));
	if (p->phase == PT_SNAP_PHASE_ROUND)
		fprintf(stderr, "\r\033[Kround %u: %s", p->round, a);
	else
		fprintf(stderr, "\r\033[Kfrozen: %s", a);
	if (p->bytes_total && p->bytes_total >= p->bytes_done) {
		fmt_size(p->bytes_total, b, sizeof(b));
		fprintf(stderr, " of %s", b);
	}
	fprintf(stderr, ", %s/s", r);
	if (p->rate_bps && p->bytes_total > p->bytes_done)
		fprintf(stderr, ", ETA %.0fs",
			(double)(p->bytes_total - p->bytes_done) / (double)p->rate_bps);
	o->progress_shown = true;
}

static void report_json(const struct snap_cli *o, const char *file, uint64_t layer,
			const struct pt_snapshot_report *r)
{
	struct json *j = json_new(stdout, false);

	json_obj_begin(j, NULL);
	json_str(j, "file", file);
	if (layer)
		json_uint(j, "layer", layer);
	json_int(j, "pid", o->pid);
	json_str(j, "mode", o->live ? "live" : o->count ? "chain" : "frozen");
	json_double(j, "pause_ms", (double)r->pause_ns / 1e6);
	json_uint(j, "rounds", r->rounds);
	json_uint(j, "layers", r->layers);
	json_uint(j, "threads", r->threads);
	json_uint(j, "bytes_copied", r->bytes_copied);
	json_uint(j, "frozen_bytes", r->frozen_bytes);
	json_uint(j, "bytes_stored", r->bytes_stored);
	json_uint(j, "pages_data", r->pages_data);
	json_uint(j, "pages_zero", r->pages_zero);
	json_uint(j, "pages_hole", r->pages_hole);
	json_uint(j, "pages_unchanged", r->pages_unchanged);
	json_uint(j, "pages_unreadable", r->pages_unreadable);
	json_uint(j, "pages_swapped_in", r->pages_swapped_in);
	json_uint(j, "pages_evicted", r->pages_evicted);
	json_bool(j, "evict", !o->no_evict);
	json_double(j, "duration_ms", (double)r->duration_ns / 1e6);
	json_arr_begin(j, "deltas");
	for (int d = PT_DELTA_FULL; d <= PT_DELTA_COMPARED; d++)
		if (r->deltas & (1u << d))
			json_str(j, NULL, pt_image_delta_name(d));
	json_arr_end(j);
	json_str(j, "parent", o->parent);
	json_str(j, "core", o->core);
	json_obj_end(j);
	json_free(j);
}

static void report_human(const struct snap_cli *o, const char *file,
			 const struct pt_snapshot_report *r)
{
	char a[16], b[16];

	printf("snapshot of %d in %s: %s, paused %.1f ms, %" PRIu64 " thread%s\n", (int)o->pid,
	       file, o->live ? "live" : "frozen", (double)r->pause_ns / 1e6, r->threads,
	       r->threads == 1 ? "" : "s");
	if (o->live)
		printf("  %" PRIu64 " pre-copy round%s, %s copied while frozen\n", r->rounds,
		       r->rounds == 1 ? "" : "s", fmt_size(r->frozen_bytes, a, sizeof(a)));
	printf("  copied %s, stored %s in %" PRIu32 " file%s, %.2f s\n",
	       fmt_size(r->bytes_copied, a, sizeof(a)), fmt_size(r->bytes_stored, b, sizeof(b)),
	       r->layers, r->layers == 1 ? "" : "s", (double)r->duration_ns / 1e9);
	printf("  pages: %" PRIu64 " data, %" PRIu64 " zero, %" PRIu64 " hole, %" PRIu64
	       " unchanged, %" PRIu64 " unreadable\n",
	       r->pages_data, r->pages_zero, r->pages_hole, r->pages_unchanged,
	       r->pages_unreadable);
	if (r->pages_swapped_in || o->no_evict)
		printf("  swap: %" PRIu64 " pages brought in, %" PRIu64 " put back out%s\n",
		       r->pages_swapped_in, r->pages_evicted,
		       o->no_evict ? " (--no-evict: they stay resident)" : "");
	if (r->deltas & (1u << PT_DELTA_COMPARED))
		printf("  delta: compared page by page with %s (%s)\n",
		       o->parent ? o->parent : "the previous layer",
		       o->parent ? "no tracker ran between the two layers"
				 : "shared objects: the tracker sees only their mapped parts");
	if (r->deltas & (1u << PT_DELTA_TRACKED))
		printf("  delta: tracked (the pages written since the previous layer)\n");
	if (o->core)
		printf("  core file: %s\n", o->core);
}

/* --count N: a chain of frozen layers FILE.1 ... FILE.N, tracked in between. */
static int run_chain(struct snap_cli *o)
{
	PT_OPTS(pt_snapshot_opts, so, .level = o->level);
	char err[1024] = "";
	struct pt_snapshotter *sn;
	int r = 0;

	so.flags = (o->no_evict ? PT_SNAP_NO_EVICT : 0) | (o->force ? PT_SNAP_OVERWRITE : 0);
	sn = pt_snapshotter_create(o->pid, &so);
	if (!sn) {
		r = errno;
		cli_error(o->json, r, "snapshot of %d: %s", (int)o->pid,
			  r == EALREADY ? "another pagetrack tracks it" : strerror(r));
		return PT_EXIT_RUNTIME;
	}
	if (!o->every_ns)
		o->every_ns = 10 * NSEC;
	for (uint64_t i = 1; i <= o->count && !r; i++) {
		PT_OPTS(pt_snapshot_report, rep);
		char *file = NULL;

		if (i > 1) {
			struct timespec ts = { (time_t)(o->every_ns / NSEC),
					       (long)(o->every_ns % NSEC) };

			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		if (asprintf(&file, "%s.%" PRIu64, o->out, i) < 0) {
			cli_error(o->json, ENOMEM, "out of memory");
			r = -ENOMEM;
			break;
		}
		r = pt_snapshotter_layer(sn, file, 0, &rep, err, sizeof(err));
		if (r < 0)
			cli_error(o->json, -r, "snapshot of %d: %s", (int)o->pid,
				  err[0] ? err : strerror(-r));
		else if (o->json)
			report_json(o, file, i, &rep);
		else
			report_human(o, file, &rep);
		fflush(stdout);
		free(file);
	}
	if (pt_snapshotter_free(sn) && !r) {
		cli_error(o->json, EBUSY, "could not close the userfaultfd inside process %d",
			  (int)o->pid);
		r = -EBUSY;
	}
	return r ? PT_EXIT_RUNTIME : PT_EXIT_OK;
}

int cmd_snapshot(int argc, char **argv)
{
	struct snap_cli o = { 0 };
	char err[1024] = "";
	int r = parse_args(argc, argv, &o);

	if (r)
		return r > 0 ? PT_EXIT_OK : PT_EXIT_USAGE;
	if (cli_page_size_refused(o.json))
		return PT_EXIT_RUNTIME;
	o.tty = !o.json && isatty(STDERR_FILENO);
	if (o.count)
		return run_chain(&o);

	PT_OPTS(pt_snapshot_opts, so, .level = o.level, .parent = o.parent,
		.pause_limit_ns = o.pause_ns, .max_rounds = (uint32_t)o.max_rounds,
		.core_path = o.core, .progress = on_progress, .progress_ctx = &o);
	PT_OPTS(pt_snapshot_report, rep);

	so.flags = (o.live ? PT_SNAP_LIVE : 0) | (o.no_evict ? PT_SNAP_NO_EVICT : 0) |
		   (o.force ? PT_SNAP_OVERWRITE : 0);
	r = pt_snapshot(o.pid, o.out, &so, &rep, err, sizeof(err));
	if (o.progress_shown)
		fprintf(stderr, "\r\033[K");
	if (r < 0) {
		cli_error(o.json, -r, "snapshot of %d: %s", (int)o.pid, err[0] ? err : strerror(-r));
		return PT_EXIT_RUNTIME;
	}
	if (o.json)
		report_json(&o, o.out, 0, &rep);
	else
		report_human(&o, o.out, &rep);
	return PT_EXIT_OK;
}
