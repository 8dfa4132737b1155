/* SPDX-License-Identifier: MIT */
/*
 * Streaming JSON writer for the CLI.
 *
 * The writer keeps one "first member" flag per nesting level so commas are
 * always right, whatever order the caller emits members in.  Strings are
 * escaped so that the output is valid UTF-8 JSON whatever bytes a path
 * holds: control characters, '"' and '\\' are escaped, valid UTF-8
 * sequences pass through, and every byte that is not part of a valid
 * sequence is written as \u00XX (its Latin-1 code point, so nothing is
 * silently dropped).
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define JSON_MAX_DEPTH 64

struct json {
	FILE *out;
	bool pretty;
	int depth;
	bool first[JSON_MAX_DEPTH];
	bool wrote;	/* anything at all was written */
};

struct json *json_new(FILE *out, bool pretty)
{
	struct json *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->out = out;
	j->pretty = pretty;
	j->first[0] = true;
	return j;
}

void json_free(struct json *j)
{
	if (!j)
		return;
	if (j->wrote)
		fputc('\n', j->out);
	fflush(j->out);
	free(j);
}

static void put_indent(struct json *j)
{
	if (!j->pretty)
		return;
	fputc('\n', j->out);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->out);
}

/* Length of the valid UTF-8 sequence at @s (1..4), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		/* Also stops at the terminating NUL. */
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;	/* overlong, out of range or a surrogate */
	return n;
}

static void put_string(struct json *j, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	FILE *f = j->out;

	fputc('"', f);
	while (*s) {
		unsigned char c = *s;
		size_t n;

		switch (c) {
		case '"': fputs("\\\"", f); s++; continue;
		case '\\': fputs("\\\\", f); s++; continue;
		case '\n': fputs("\\n", f); s++; continue;
		case '\r': fputs("\\r", f); s++; continue;
		case '\t': fputs("\\t", f); s++; continue;
		case '\b': fputs("\\b", f); s++; continue;
		case '\f': fputs("\\f", f); s++; continue;
		default: break;
		}
		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
			s++;
			continue;
		}
		n = utf8_seq_len(s);
		if (!n) {
			fprintf(f, "\\u%04x", c);
			s++;
			continue;
		}
		fwrite(s, 1, n, f);
		s += n;
	}
	fputc('"', f);
}

/* Separator, indentation and "key": before a value or container. */
static void begin_value(struct json *j, const char *key)
{
	if (j->depth > 0) {
		if (!j->first[j->depth])
			fputc(',', j->out);
		put_indent(j);
	}
	j->first[j->depth] = false;
	if (key && j->depth > 0) {
		put_string(j, key);
		fputs(j->pretty ? ": " : ":", j->out);
	}
	j->wrote = true;
}

static void open_container(struct json *j, const char *key, char c)
{
	begin_value(j, key);
	fputc(c, j->out);
	/* Deeper nesting is a programming error; clamp rather than overflow. */
	if (j->depth < JSON_MAX_DEPTH - 1)
		j->depth++;
	j->first[j->depth] = true;
}

static void close_container(struct json *j, char c)
{
	bool empty = j->first[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (!empty)
		put_indent(j);
	fputc(c, j->out);
}

void json_obj_begin(struct json *j, const char *key)
{
	open_container(j, key, '{');
}

void json_obj_end(struct json *j)
{
	close_container(j, '}');
}

void json_arr_begin(struct json *j, const char *key)
{
	open_container(j, key, '[');
}

void json_arr_end(struct json *j)
{
	close_container(j, ']');
}

void json_str(struct json *j, const char *key, const char *val)
{
	begin_value(j, key);
	if (val)
		put_string(j, val);
	else
		fputs("null", j->out);
}

void json_int(struct json *j, const char *key, int64_t val)
{
	begin_value(j, key);
	fprintf(j->out, "%" PRId64, val);
}

void json_uint(struct json *j, const char *key, uint64_t val)
{
	begin_value(j, key);
	fprintf(j->out, "%" PRIu64, val);
}

void json_bool(struct json *j, const char *key, bool val)
{
	begin_value(j, key);
	fputs(val ? "true" : "false", j->out);
}

void json_hex(struct json *j, const char *key, uint64_t val)
{
	begin_value(j, key);
	fprintf(j->out, "\"0x%" PRIx64 "\"", val);
}

/* Shortest of %.15g / %.17g that reads back as the same double. */
static const char *shortest_double(double val, char *buf, size_t len)
{
	snprintf(buf, len, "%.15g", val);
	if (strtod(buf, NULL) != val)
		snprintf(buf, len, "%.17g", val);
	return buf;
}

void json_double(struct json *j, const char *key, double val)
{
	char buf[32];

	begin_value(j, key);
	/* JSON has no NaN or infinity. */
	if (!isfinite(val))
		fputs("null", j->out);
	else
		fputs(shortest_double(val, buf, sizeof(buf)), j->out);
}
