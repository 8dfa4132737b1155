/* SPDX-License-Identifier: MIT */
/* Internal interfaces of the pagetrack command-line tool (public API only). */
#ifndef PT_CLI_H
#define PT_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pagetrack/pagetrack.h"

/* Documented exit codes (doc/pagetrack.1). */
#define PT_EXIT_OK 0
#define PT_EXIT_RUNTIME 1
#define PT_EXIT_USAGE 2
#define PT_EXIT_UNKNOWN 3	/* send: the commit's outcome on the receiver is unknown */

/* Subcommands: argv[0] is the subcommand name; return an exit code. */
int cmd_check(int argc, char **argv);
int cmd_map(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_receive(int argc, char **argv);

/* ---- json.c: streaming JSON writer (pretty when @pretty) ---- */
struct json;
struct json *json_new(FILE *out, bool pretty);
void json_free(struct json *j);	/* accepts NULL; ends with a newline */
/* @key is NULL inside arrays and at top level. */
void json_obj_begin(struct json *j, const char *key);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j, const char *key);
void json_arr_end(struct json *j);
void json_str(struct json *j, const char *key, const char *val);	/* NULL -> null */
void json_int(struct json *j, const char *key, int64_t val);
void json_uint(struct json *j, const char *key, uint64_t val);
void json_bool(struct json *j, const char *key, bool val);
void json_hex(struct json *j, const char *key, uint64_t val);	/* "0x..." string */
void json_double(struct json *j, const char *key, double val);

/* ---- util.c ---- */
/*
 * Report an error: one line "pagetrack: MSG" on stderr, or in JSON mode
 * {"error": {"message": MSG, "errno": NAME, "exit_code": N}} on stdout.
 * @err is a positive errno value or 0.
 */
void cli_error(bool json, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "4.0 KiB", "1.5 GiB" ... into @buf (at least 16 bytes); returns buf. */
const char *fmt_size(uint64_t bytes, char *buf, size_t len);
/* Parse "self" or a positive pid; -1 on error. 0 means self. */
int parse_pid(const char *s, pid_t *pid);
/* Parse "START-END" (hex, 0x optional) into [start,end); -EINVAL if malformed. */
int parse_range(const char *s, uint64_t *start, uint64_t *end);
/*
 * Is --json (or --pretty) among the options, before any "--"?  Known
 * before option parsing so that a usage error is reported as JSON too.
 */
bool cli_wants_json(int argc, char **argv);
/*
 * "500ms", "1s", "2.5s", "100us", "2m", "1h", or a bare number of seconds,
 * from @min to @max ns: 0, -EINVAL (malformed) or -ERANGE.
 */
int parse_duration(const char *s, uint64_t *ns, uint64_t min, uint64_t max);
/* A decimal number up to @max: 0 or -EINVAL. */
int parse_uint(const char *s, uint64_t max, uint64_t *out);
/* errno name such as "ESRCH" (or "E?"). */
const char *errno_name(int err);
/*
 * pagetrack works with 4 KiB pages only: if the kernel's are another
 * size, report it (one line, "this kernel uses 16 KiB pages; ...") and
 * return true; the caller exits with PT_EXIT_RUNTIME.
 */
bool cli_page_size_refused(bool json);

/*
 * Read a pre-shared key file (--key): at least 32 bytes, at most @cap;
 * refused when group or others may read or write it.  0, or -1 after
 * reporting the error (runtime error: exit 1).
 */
int cli_read_key(bool json, const char *path, unsigned char *key, size_t cap, size_t *len);
/* "100M" (bytes/s: K, M, G decimal; an optional B or /s), 0 or -EINVAL. */
int parse_rate(const char *s, uint64_t *bps);

#endif
