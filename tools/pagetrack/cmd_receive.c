// SPDX-License-Identifier: MIT
/*
 * pagetrack receive: the other end of `pagetrack send` (doc/cli.md,
 * doc/migration-protocol.md), with pt_migrate_receive().
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct recv_cli {
	const char *listen, *out, *into, *key_path;
	bool insecure, json;
	uint64_t timeout_ns, idle_ns;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pagetrack receive --listen ADDR:PORT (-o FILE | --into PATH) [OPTIONS]\n"
		"\n"
		"Serve one migration from 'pagetrack send', then exit: 0 only once the\n"
		"sender's commit record was received and the result made durable.\n"
		"\n"
		"Options:\n"
		"      --listen ADDR:PORT  where to listen (PORT 0: any; the line\n"
		"                          'pagetrack: listening on ADDR:PORT' says which)\n"
		"  -o, --output FILE       write an image layer (doc/image-format.md); nothing\n"
		"                          is at FILE before the commit\n"
		"      --into PATH         update this shared-memory file in place (created or\n"
		"                          resized); PATH.pagetrack-incomplete exists until the\n"
		"                          commit\n"
		"      --key FILE          pre-shared key file (32 bytes or more, mode 0600)\n"
		"      --insecure          no key: plaintext, loopback only\n"
		"      --timeout T         fail when no sender connected within T (default:\n"
		"                          wait forever)\n"
		"      --idle-timeout T    fail when the sender sends nothing for T\n"
		"                          (default 60s)\n"
		"  -j, --json              JSON on stdout (the listening line, a final report)\n"
		"\n"
		"Exit status: 0 committed, 1 error, 2 usage error.\n");
}

enum { O_LISTEN = 256, O_INTO, O_KEY, O_INSECURE, O_TIMEOUT, O_IDLE };

static int parse(int argc, char **argv, struct recv_cli *o)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "output", required_argument, NULL, 'o' },
		{ "into", required_argument, NULL, O_INTO },
		{ "key", required_argument, NULL, O_KEY },
		{ "insecure", no_argument, NULL, O_INSECURE },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, O_IDLE },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	o->json = cli_wants_json(argc, argv);
	while ((opt = getopt_long(argc, argv, ":o:jh", opts, NULL)) != -1) {
		switch (opt) {
		case O_LISTEN: o->listen = optarg; break;
		case 'o': o->out = optarg; break;
		case O_INTO: o->into = optarg; break;
		case O_KEY: o->key_path = optarg; break;
		case O_INSECURE: o->insecure = true; break;
		case O_TIMEOUT:
		case O_IDLE:
			if (parse_duration(optarg, opt == O_TIMEOUT ? &o->timeout_ns : &o->idle_ns,
					   1000000, 86400000000000ULL)) {
				cli_error(o->json, 0, "%s: '%s' is not a duration from 1ms to 24h",
					  opt == O_TIMEOUT ? "--timeout" : "--idle-timeout", optarg);
				return -1;
			}
			break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); return 1;
		case ':':
			cli_error(o->json, 0, "option '%s' needs a value", argv[optind - 1]);
			return -1;
		default:
			cli_error(o->json, 0, "unknown option '%s' (try 'pagetrack receive --help')",
				  argv[optind - 1]);
			return -1;
		}
	}
	if (optind != argc) {
		cli_error(o->json, 0, "too many arguments");
		return -1;
	}
	if (!o->listen) {
		cli_error(o->json, 0, "missing --listen ADDR:PORT");
		return -1;
	}
	if (!o->out == !o->into) {
		cli_error(o->json, 0, "one of -o FILE and --into PATH");
		return -1;
	}
	if (!o->key_path == !o->insecure) {
		cli_error(o->json, 0, o->insecure ? "--key and --insecure do not go together"
						  : "missing --key FILE (or --insecure, loopback only)");
		return -1;
	}
	return 0;
}

static void on_listening(const char *addr, void *ctx)
{
	struct recv_cli *o = ctx;

	fprintf(stderr, "pagetrack: listening on %s\n", addr);
	fflush(stderr);
	if (o->json) {
		struct json *j = json_new(stdout, false);

		if (j) {
			json_obj_begin(j, NULL);
			json_str(j, "listening", addr);
			json_obj_end(j);
			json_free(j);
		}
		fflush(stdout);
	}
}

int cmd_receive(int argc, char **argv)
{
	struct recv_cli o;
	unsigned char key[4096];
	size_t key_len = 0;
	char err[1024] = "";
	int r;

	memset(&o, 0, sizeof(o));
	r = parse(argc, argv, &o);
	if (r)
		return r > 0 ? PT_EXIT_OK : PT_EXIT_USAGE;
	if (o.key_path && cli_read_key(o.json, o.key_path, key, sizeof(key), &key_len))
		return PT_EXIT_RUNTIME;
	PT_OPTS(pt_migrate_recv_opts, ro, .flags = o.insecure ? PT_MIGRATE_INSECURE : 0,
		.key = o.key_path ? key : NULL, .key_len = key_len, .output = o.out,
		.into = o.into, .listening = on_listening, .ctx = &o,
		.idle_timeout_ns = o.idle_ns, .accept_timeout_ns = o.timeout_ns);
	PT_OPTS(pt_migrate_recv_report, rep);
	r = pt_migrate_receive(o.listen, &ro, &rep, err, sizeof(err));
	memset(key, 0, sizeof(key));
	if (r) {
		cli_error(o.json, -r, "%s", err[0] ? err : strerror(-r));
		return PT_EXIT_RUNTIME;
	}
	if (o.json) {
		struct json *j = json_new(stdout, false);

		if (j) {
			json_obj_begin(j, NULL);
			json_str(j, "result", "completed");
			json_uint(j, "bytes_received", rep.bytes_received);
			json_uint(j, "pages_received", rep.pages_received);
			json_uint(j, "pages_total", rep.pages_total);
			json_uint(j, "rounds", rep.rounds);
			json_double(j, "duration_ms", (double)rep.duration_ns / 1e6);
			json_obj_end(j);
			json_free(j);
		}
	} else {
		char a[16];

		fprintf(stderr, "received: %" PRIu64 " rounds, %s, committed to %s\n", rep.rounds,
			fmt_size(rep.bytes_received, a, sizeof(a)), o.out ? o.out : o.into);
	}
	return PT_EXIT_OK;
}
