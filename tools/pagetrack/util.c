/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the CLI's subcommands. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/*
 * Convention for @err: 0 means a usage error (exit code 2, "errno": null),
 * a positive errno value means a runtime error (exit code 1).  The error
 * line always goes to stderr so a human sees it even when stdout is piped
 * into a JSON consumer; in JSON mode the same message is also written to
 * stdout as an "error" object.
 */
void cli_error(bool json, int err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	fflush(stdout);
	fprintf(stderr, "pagetrack: %s\n", msg);
	if (json) {
		struct json *j = json_new(stdout, false);

		if (!j)
			return;
		json_obj_begin(j, NULL);
		json_obj_begin(j, "error");
		json_str(j, "message", msg);
		json_str(j, "errno", err ? errno_name(err) : NULL);
		json_int(j, "exit_code", err ? PT_EXIT_RUNTIME : PT_EXIT_USAGE);
		json_obj_end(j);
		json_obj_end(j);
		json_free(j);
	}
}

const char *fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return buf;
	}
	v = (double)bytes / 1024;
	/* Switch unit before "1024.0" would be printed. */
	while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

int parse_pid(const char *s, pid_t *pid)
{
	unsigned long v;
	char *end;

	if (!s || !*s)
		return -1;
	if (!strcmp(s, "self")) {
		*pid = 0;
		return 0;
	}
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > INT_MAX)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

/* One hex address, "0x" optional; advances *@s past it. */
static int parse_hex(const char **s, uint64_t *out)
{
	const char *p = *s;
	unsigned long long v;
	char *end;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	if (!isxdigit((unsigned char)*p))
		return -EINVAL;
	errno = 0;
	v = strtoull(p, &end, 16);
	if (errno)
		return -EINVAL;
	*out = v;
	*s = end;
	return 0;
}

int parse_range(const char *s, uint64_t *start, uint64_t *end)
{
	uint64_t a, b;

	if (!s || parse_hex(&s, &a) < 0 || *s++ != '-' || parse_hex(&s, &b) < 0 || *s)
		return -EINVAL;
	if (a >= b)
		return -EINVAL;
	*start = a;
	*end = b;
	return 0;
}

const char *errno_name(int err)
{
	const char *n = err > 0 ? strerrorname_np(err) : NULL;

	return n ? n : "E?";
}

bool cli_page_size_refused(bool json)
{
	const char *why = NULL;

	if (pt_feature(PT_FEAT_PAGE_SIZE_4K, &why) != PT_NO)
		return false;
	cli_error(json, EOPNOTSUPP, "%s", why ? why : "pagetrack supports 4 KiB pages only");
	return true;
}

bool cli_wants_json(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j") ||
		    !strcmp(argv[i], "--pretty") || !strcmp(argv[i], "-p"))
			return true;
	return false;
}

/*
 * "500ms", "1s", "2.5s", "100us", "2m", "1h", or a bare number of seconds,
 * from @min to @max ns.
 */
int parse_duration(const char *s, uint64_t *ns, uint64_t min, uint64_t max)
{
	static const struct {
		const char *sfx;
		double mul;
	} units[] = {
		{ "", 1e9 }, { "s", 1e9 }, { "ms", 1e6 }, { "us", 1e3 }, { "ns", 1 }, { "m", 60e9 },
		{ "h", 3600e9 },
	};
	const char *p = s;
	bool digit = false, dot = false;
	double v;

	for (; (*p >= '0' && *p <= '9') || *p == '.'; p++) {
		if (*p == '.') {
			if (dot)
				return -EINVAL;
			dot = true;
		} else {
			digit = true;
		}
	}
	if (!digit)
		return -EINVAL;
	v = strtod(s, NULL);
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].sfx))
			continue;
		v *= units[i].mul;
		if (!isfinite(v) || v < (double)min || v > (double)max)
			return -ERANGE;
		*ns = (uint64_t)(v + 0.5);
		return 0;
	}
	return -EINVAL;
}

int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_read_key(bool json, const char *path, unsigned char *key, size_t cap, size_t *len)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		cli_error(json, errno, "--key %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		cli_error(json, EINVAL, "--key %s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & 077) {
		cli_error(json, EPERM, "--key %s: readable or writable by group or others (mode %03o): "
			  "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
		close(fd);
		return -1;
	}
	n = read(fd, key, cap);
	close(fd);
	if (n < 32) {
		cli_error(json, EINVAL, "--key %s: %s", path,
			  n < 0 ? strerror(errno) : "shorter than 32 bytes (head -c 32 /dev/urandom)");
		return -1;
	}
	*len = (size_t)n;
	return 0;
}

int parse_rate(const char *s, uint64_t *bps)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v <= 0)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': v *= 1e3; end++; break;
	case 'm': case 'M': v *= 1e6; end++; break;
	case 'g': case 'G': v *= 1e9; end++; break;
	default: break;
	}
	if (*end == 'B')
		end++;
	if (!strcmp(end, "/s"))
		end += 2;
	if (*end || v < 1 || v > 1e13)
		return -EINVAL;
	*bps = (uint64_t)v;
	return 0;
}
