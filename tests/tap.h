/* SPDX-License-Identifier: MIT */
/*
 * Minimal TAP producer for pagetrack's tests (header-only).
 * A skipped subtest always carries its reason; a whole program that
 * cannot run calls tap_skip_all(), which exits 77.
 */
#ifndef PT_TAP_H
#define PT_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_fails;

__attribute__((format(printf, 2, 3), unused))
static int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_fails++;
	return cond;
}

/*
 * A check that a known, open bug can make fail: TAP "TODO".  A failure is
 * printed (and listed by run-tests.sh) but not counted as failed; the
 * reason names the bug.  Use only with a hard bound checked beside it.
 */
__attribute__((format(printf, 3, 4), unused))
static int tap_todo(int cond, const char *todo, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # TODO %s\n", todo);
	fflush(stdout);
	return cond;
}

__attribute__((format(printf, 2, 3), unused))
static void tap_skip(const char *reason, const char *fmt, ...)
{
	va_list ap;

	printf("ok %d - ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", reason);
	fflush(stdout);
}

__attribute__((format(printf, 1, 2), unused))
static void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

__attribute__((noreturn, unused))
static void tap_skip_all(const char *reason)
{
	printf("1..0 # SKIP %s\n", reason);
	fflush(stdout);
	exit(77);
}

/* Print the plan (at the end) and return the exit code. */
__attribute__((unused))
static int tap_done(void)
{
	printf("1..%d\n", tap_n);
	fflush(stdout);
	return tap_fails ? 1 : 0;
}

#endif
