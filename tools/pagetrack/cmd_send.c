// SPDX-License-Identifier: MIT
/*
 * pagetrack send: live-migrate a process's memory (or a shared object it
 * maps) to `pagetrack receive` (doc/cli.md, doc/migration-protocol.md)
 * with pt_migrate_send().
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_SEL 64

struct send_cli {
	pid_t pid;
	const char *to, *key_path, *cmd;
	const char *objects[MAX_SEL];
	uint64_t areas[MAX_SEL];
	size_t nobjects, nareas;
	bool insecure, json, force, no_throttle, no_compress, trust;
	uint64_t downtime_ns, timeout_ns, idle_ns, bandwidth, max_rounds;
	uint32_t freeze, after;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pagetrack send PID --to HOST:PORT [OPTIONS]\n"
		"\n"
		"Live-migrate the memory of process PID to 'pagetrack receive' at HOST:PORT:\n"
		"pre-copy rounds while it runs (round 0 everything, then what it wrote),\n"
		"then a switch-over: the target is stopped, the last delta and a commit\n"
		"record are sent, the receiver acknowledges, and the target is resumed\n"
		"(or stopped, or killed: --after).  Authenticated and encrypted with a\n"
		"pre-shared key (doc/migration-protocol.md).\n"
		"\n"
		"Options:\n"
		"      --to HOST:PORT       the receiver\n"
		"      --key FILE           pre-shared key file (32 bytes or more, mode 0600)\n"
		"      --insecure           no key: plaintext, loopback only\n"
		"      --object PATH        send this shared object (as /proc/PID/maps shows\n"
		"                           it, or its file path) by object offset; repeatable\n"
		"      --area ADDR          send the private area holding ADDR (hex); repeatable\n"
		"                           (neither: the whole process, receiver -o FILE)\n"
		"      --downtime D         switch over when the rest can be sent in D at the\n"
		"                           measured rate (default 300ms)\n"
		"      --max-rounds N       fail after N rounds without converging (default 30)\n"
		"      --timeout T          fail when not converged after T (default none);\n"
		"                           a round in progress, a blocked write, are cut\n"
		"      --force-switchover   at --max-rounds / --timeout switch over anyway\n"
		"                           (if the receiver still answers)\n"
		"      --idle-timeout T     fail when a write stays blocked or the receiver\n"
		"                           does not answer for T (default 60s); after the\n"
		"                           commit record, 10s (or T if shorter) without a\n"
		"                           word from the receiver: exit 3\n"
		"      --bandwidth RATE     cap the send rate, bytes/s: 100M, 1G, 500K\n"
		"      --throttle auto|off  slow the target down when it writes faster than\n"
		"                           half the bandwidth (default auto)\n"
		"      --switchover-cmd CMD run CMD (sh -c) at switch-over, before the last\n"
		"                           delta; a failure aborts, the target keeps running\n"
		"      --freeze stop|none   stop every thread (ptrace, default) or rely on CMD\n"
		"      --after resume|stop|kill  what becomes of the target once the receiver\n"
		"                           confirmed the commit (default resume)\n"
		"      --no-compress        never zstd on the wire\n"
		"      --trust-shared       objects: after round 0 read only the pages the\n"
		"                           target wrote through its mappings (tracker) and\n"
		"                           the parts it does not map; writes by other\n"
		"                           processes are then missed (default: compare\n"
		"                           the whole object every round)\n"
		"  -j, --json               one JSON object per round and a final one\n"
		"\n"
		"Exit status: 0 migrated (the receiver committed), 1 error or no\n"
		"convergence, 2 usage error, 3 the commit's outcome is unknown (the\n"
		"receiver may have committed; the target was resumed).\n");
}

enum { O_TO = 256, O_KEY, O_INSECURE, O_OBJECT, O_AREA, O_DOWNTIME, O_ROUNDS, O_TIMEOUT,
       O_IDLE, O_BW, O_THROTTLE, O_CMD, O_FREEZE, O_AFTER, O_FORCE, O_NOZ, O_TRUST };

static int parse(int argc, char **argv, struct send_cli *o)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, O_TO },
		{ "key", required_argument, NULL, O_KEY },
		{ "insecure", no_argument, NULL, O_INSECURE },
		{ "object", required_argument, NULL, O_OBJECT },
		{ "area", required_argument, NULL, O_AREA },
		{ "downtime", required_argument, NULL, O_DOWNTIME },
		{ "max-rounds", required_argument, NULL, O_ROUNDS },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, O_IDLE },
		{ "bandwidth", required_argument, NULL, O_BW },
		{ "throttle", required_argument, NULL, O_THROTTLE },
		{ "switchover-cmd", required_argument, NULL, O_CMD },
		{ "freeze", required_argument, NULL, O_FREEZE },
		{ "after", required_argument, NULL, O_AFTER },
		{ "force-switchover", no_argument, NULL, O_FORCE },
		{ "no-compress", no_argument, NULL, O_NOZ },
		{ "trust-shared", no_argument, NULL, O_TRUST },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	o->json = cli_wants_json(argc, argv);
	while ((opt = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (opt) {
		case O_TO: o->to = optarg; break;
		case O_KEY: o->key_path = optarg; break;
		case O_INSECURE: o->insecure = true; break;
		case O_OBJECT:
			if (o->nobjects == MAX_SEL) {
				cli_error(o->json, 0, "at most %d --object", MAX_SEL);
				return -1;
			}
			o->objects[o->nobjects++] = optarg;
			break;
		case O_AREA: {
			uint64_t a, b;
			char *end;

			errno = 0;
			a = strtoull(optarg, &end, 16);
			if (errno || end == optarg || *end) {
				if (parse_range(optarg, &a, &b)) {
					cli_error(o->json, 0, "--area: '%s' is not an address (hex)", optarg);
					return -1;
				}
			}
			if (o->nareas == MAX_SEL) {
				cli_error(o->json, 0, "at most %d --area", MAX_SEL);
				return -1;
			}
			o->areas[o->nareas++] = a;
			break;
		}
		case O_DOWNTIME:
			if (parse_duration(optarg, &o->downtime_ns, 1000, 3600000000000ULL)) {
				cli_error(o->json, 0, "--downtime: '%s' is not a duration from 1us to 1h",
					  optarg);
				return -1;
			}
			break;
		case O_ROUNDS:
			if (parse_uint(optarg, 100000, &o->max_rounds) || !o->max_rounds) {
				cli_error(o->json, 0, "--max-rounds: '%s' is not a number from 1 to 100000",
					  optarg);
				return -1;
			}
			break;
		case O_TIMEOUT:
			if (parse_duration(optarg, &o->timeout_ns, 1000000, 86400000000000ULL)) {
				cli_error(o->json, 0, "--timeout: '%s' is not a duration from 1ms to 24h",
					  optarg);
				return -1;
			}
			break;
		case O_IDLE:
			if (parse_duration(optarg, &o->idle_ns, 1000000, 86400000000000ULL)) {
				cli_error(o->json, 0, "--idle-timeout: '%s' is not a duration from 1ms "
					  "to 24h", optarg);
				return -1;
			}
			break;
		case O_BW:
			if (parse_rate(optarg, &o->bandwidth)) {
				cli_error(o->json, 0, "--bandwidth: '%s' is not a rate (100M, 1G, 500K)",
					  optarg);
				return -1;
			}
			break;
		case O_THROTTLE:
			if (strcmp(optarg, "auto") && strcmp(optarg, "off")) {
				cli_error(o->json, 0, "--throttle: auto or off");
				return -1;
			}
			o->no_throttle = !strcmp(optarg, "off");
			break;
		case O_CMD: o->cmd = optarg; break;
		case O_FREEZE:
			if (!strcmp(optarg, "stop"))
				o->freeze = PT_MIGRATE_FREEZE_STOP;
			else if (!strcmp(optarg, "none"))
				o->freeze = PT_MIGRATE_FREEZE_NONE;
			else {
				cli_error(o->json, 0, "--freeze: stop or none");
				return -1;
			}
			break;
		case O_AFTER:
			if (!strcmp(optarg, "resume"))
				o->after = PT_MIGRATE_AFTER_RESUME;
			else if (!strcmp(optarg, "stop"))
				o->after = PT_MIGRATE_AFTER_STOP;
			else if (!strcmp(optarg, "kill"))
				o->after = PT_MIGRATE_AFTER_KILL;
			else {
				cli_error(o->json, 0, "--after: resume, stop or kill");
				return -1;
			}
			break;
		case O_FORCE: o->force = true; break;
		case O_NOZ: o->no_compress = true; break;
		case O_TRUST: o->trust = true; break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); return 1;
		case ':':
			cli_error(o->json, 0, "option '%s' needs a value", argv[optind - 1]);
			return -1;
		default:
			cli_error(o->json, 0, "unknown option '%s' (try 'pagetrack send --help')",
				  argv[optind - 1]);
			return -1;
		}
	}
	if (optind != argc - 1) {
		cli_error(o->json, 0, optind >= argc ? "missing PID (try 'pagetrack send --help')"
						     : "too many arguments");
		return -1;
	}
	if (parse_pid(argv[optind], &o->pid) < 0 || o->pid == 0) {
		cli_error(o->json, 0, "'%s' is not a process id", argv[optind]);
		return -1;
	}
	if (!o->to) {
		cli_error(o->json, 0, "missing --to HOST:PORT");
		return -1;
	}
	if (!o->key_path == !o->insecure) {
		cli_error(o->json, 0, o->insecure ? "--key and --insecure do not go together"
						  : "missing --key FILE (or --insecure, loopback only)");
		return -1;
	}
	if (o->nobjects && o->nareas) {
		cli_error(o->json, 0, "--object and --area do not go together");
		return -1;
	}
	if (o->freeze == PT_MIGRATE_FREEZE_NONE && !o->cmd) {
		cli_error(o->json, 0, "--freeze none needs --switchover-cmd (to pause the target)");
		return -1;
	}
	return 0;
}

static void on_round(const struct pt_migrate_round *r, void *ctx)
{
	struct send_cli *o = ctx;

	if (!o->json) {
		char a[16];

		fprintf(stderr, "round %u: %s sent, %" PRIu64 " pages dirty, %.1f Mbit/s, "
			"%.0f ms expected%s\n", r->round, fmt_size(r->bytes_sent, a, sizeof(a)),
			r->pages_dirty, (double)r->bandwidth_bps * 8 / 1e6,
			(double)r->expected_downtime_ns / 1e6, r->throttle_percent ? ", throttled" : "");
		return;
	}
	struct json *j = json_new(stdout, false);

	if (!j)
		return;
	json_obj_begin(j, NULL);
	json_uint(j, "round", r->round);
	json_uint(j, "bytes_sent", r->bytes_sent);
	json_uint(j, "pages_dirty", r->pages_dirty);
	json_double(j, "dirty_rate_mbps", (double)r->dirty_rate_bps * 8 / 1e6);
	json_double(j, "bandwidth_mbps", (double)r->bandwidth_bps * 8 / 1e6);
	json_double(j, "expected_downtime_ms", (double)r->expected_downtime_ns / 1e6);
	json_uint(j, "throttle_percent", r->throttle_percent);
	json_obj_end(j);
	json_free(j);
	fflush(stdout);
}

int cmd_send(int argc, char **argv)
{
	struct send_cli o;
	unsigned char key[4096];
	size_t key_len = 0;
	char err[1024] = "";
	int r;

	memset(&o, 0, sizeof(o));
	r = parse(argc, argv, &o);
	if (r)
		return r > 0 ? PT_EXIT_OK : PT_EXIT_USAGE;
	if (cli_page_size_refused(o.json))
		return PT_EXIT_RUNTIME;
	if (o.key_path && cli_read_key(o.json, o.key_path, key, sizeof(key), &key_len))
		return PT_EXIT_RUNTIME;
	PT_OPTS(pt_migrate_send_opts, so,
		.flags = (o.insecure ? PT_MIGRATE_INSECURE : 0) |
			 (o.force ? PT_MIGRATE_FORCE_SWITCHOVER : 0) |
			 (o.no_throttle ? PT_MIGRATE_NO_THROTTLE : 0) |
			 (o.no_compress ? PT_MIGRATE_NO_COMPRESS : 0) |
			 (o.trust ? PT_MIGRATE_TRUST_SHARED : 0),
		.freeze = o.freeze, .after = o.after, .max_rounds = (uint32_t)o.max_rounds,
		.key = o.key_path ? key : NULL, .key_len = key_len,
		.objects = o.nobjects ? o.objects : NULL, .nobjects = o.nobjects,
		.areas = o.nareas ? o.areas : NULL, .nareas = o.nareas,
		.downtime_ns = o.downtime_ns, .timeout_ns = o.timeout_ns,
		.bandwidth_bps = o.bandwidth, .switchover_cmd = o.cmd,
		.on_round = on_round, .ctx = &o, .idle_timeout_ns = o.idle_ns);
	PT_OPTS(pt_migrate_report, rep);
	r = pt_migrate_send(o.pid, o.to, &so, &rep, err, sizeof(err));
	memset(key, 0, sizeof(key));
	const char *res = pt_migrate_result_name(rep.result);

	if (o.json) {
		struct json *j = json_new(stdout, false);

		if (j) {
			json_obj_begin(j, NULL);
			json_str(j, "result", res ? res : "error");
			json_double(j, "downtime_ms", (double)rep.downtime_ns / 1e6);
			json_uint(j, "total_bytes", rep.total_bytes);
			json_uint(j, "rounds", rep.rounds);
			json_uint(j, "throttle_percent", rep.throttle_percent);
			json_uint(j, "pages_swapped", rep.pages_swapped);
			json_uint(j, "pages_sent", rep.pages_sent);
			json_double(j, "duration_ms", (double)rep.duration_ns / 1e6);
			if (r)
				json_str(j, "error", err[0] ? err : strerror(-r));
			json_obj_end(j);
			json_free(j);
		}
		if (r)
			fprintf(stderr, "pagetrack: %s\n", err[0] ? err : strerror(-r));
	} else if (r) {
		fprintf(stderr, "pagetrack: %s\n", err[0] ? err : strerror(-r));
	} else {
		char a[16];

		fprintf(stderr, "migrated: %u rounds, %s on the wire, downtime %.1f ms\n", rep.rounds,
			fmt_size(rep.total_bytes, a, sizeof(a)), (double)rep.downtime_ns / 1e6);
	}
	if (r && rep.result == PT_MIGRATE_COMMIT_UNKNOWN)
		return PT_EXIT_UNKNOWN;
	return r ? PT_EXIT_RUNTIME : PT_EXIT_OK;
}
