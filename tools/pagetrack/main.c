/* SPDX-License-Identifier: MIT */
/*
 * pagetrack: command dispatcher.
 *
 *   pagetrack [-v] [-h] [-V] COMMAND [ARGS...]
 *
 * Global options come before the command; everything after it belongs to
 * the command, which parses its own options with getopt_long.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static int verbosity;

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static int cmd_help(int argc, char **argv);

static const struct command commands[] = {
	{ "check", cmd_check, "probe kernel features and say what pagetrack will use" },
	{ "map", cmd_map, "show where each page of a process's memory is" },
	{ "watch", cmd_watch, "show the pages a process writes, per interval" },
	{ "snapshot", cmd_snapshot, "copy a process's memory into an image file" },
	{ "image", cmd_image, "show, verify, compare and extract image files" },
	{ "send", cmd_send, "live-migrate a process's memory to 'pagetrack receive'" },
	{ "receive", cmd_receive, "receive a migration into an image or a shared-memory file" },
	{ "help", cmd_help, "show this help, or a command's help (help COMMAND)" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: pagetrack [OPTIONS] COMMAND [ARGS...]\n"
		"\n"
		"Options:\n"
		"  -h, --help     show this help and exit\n"
		"  -V, --version  show the version and exit\n"
		"  -v, --verbose  print library warnings on stderr (repeat for more detail)\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
	fprintf(f,
		"\n"
		"Run 'pagetrack COMMAND --help' for a command's options.\n"
		"Exit status: 0 success, 1 runtime error, 2 usage error.\n");
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static int cmd_help(int argc, char **argv)
{
	const struct command *c;
	char help_opt[] = "--help";
	char *args[3];

	if (argc < 2) {
		usage(stdout);
		return PT_EXIT_OK;
	}
	c = find_command(argv[1]);
	if (!c || c->fn == cmd_help) {
		if (!c)
			cli_error(false, 0, "unknown command '%s' (try 'pagetrack help')", argv[1]);
		else
			usage(stdout);
		return c ? PT_EXIT_OK : PT_EXIT_USAGE;
	}
	args[0] = argv[1];
	args[1] = help_opt;
	args[2] = NULL;
	optind = 0;
	return c->fn(2, args);
}

static void log_to_stderr(enum pt_log_level level, const char *msg, void *ctx)
{
	static const char *const names[] = { "warning", "info", "debug" };

	(void)ctx;
	if ((int)level >= verbosity)
		return;
	fprintf(stderr, "pagetrack: %s: %s\n",
		(unsigned)level < 3 ? names[level] : "log", msg);
}

/*
 * What was printed must have reached stdout: a full disk, a closed
 * descriptor or a failed close turns success into a runtime error with
 * one line on stderr, as coreutils' close_stdout does.
 */
static int close_stdout(int code)
{
	bool failed = ferror(stdout);
	int err = errno;

	if (fclose(stdout) != 0) {
		failed = true;
		err = errno;
	} else if (failed && !err) {
		err = EIO;
	}
	if (!failed)
		return code;
	/* stderr is ours alone now: stdout is closed */
	fprintf(stderr, "pagetrack: write error on standard output: %s\n", strerror(err));
	return code == PT_EXIT_OK ? PT_EXIT_RUNTIME : code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *c;
	int opt;

	/*
	 * '+': stop at the command name; its options are its own.  ':' and
	 * opterr = 0: we print the one-line error ourselves.
	 */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:hVv", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			usage(stdout);
			return close_stdout(PT_EXIT_OK);
		case 'V':
			printf("pagetrack %s\n", pt_version());
			return close_stdout(PT_EXIT_OK);
		case 'v':
			verbosity++;
			break;
		default:
			if (optopt)
				cli_error(false, 0, "unknown option '-%c' (try 'pagetrack --help')",
					  optopt);
			else
				cli_error(false, 0, "unknown option '%s' (try 'pagetrack --help')",
					  argv[optind - 1]);
			return PT_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return PT_EXIT_USAGE;
	}
	c = find_command(argv[optind]);
	if (!c) {
		cli_error(false, 0, "unknown command '%s' (try 'pagetrack help')", argv[optind]);
		return PT_EXIT_USAGE;
	}
	/* -v: warnings; -vv: also info; -vvv: also debug. */
	if (verbosity > 0)
		pt_set_log(log_to_stderr, NULL);

	argc -= optind;
	argv += optind;
	optind = 0;	/* full getopt re-initialisation for the command */
	errno = 0;
	return close_stdout(c->fn(argc, argv));
}
