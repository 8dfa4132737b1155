/* SPDX-License-Identifier: MIT */
/*
 * Minimal TAP producer for pagetrack's tests (header-only).
 *
 * The plan comes first, as in kselftest (ksft_set_plan): main() decides
 * whether the whole program can run (tap_skip_all(), which prints
 * "1..0 # SKIP reason" and exits 77), then calls tap_plan(n) once, before
 * the first subtest.  n is fixed: a subtest that cannot run here is still
 * printed, as "ok N - ... # SKIP reason" (tap_skip(), tap_skip_n()), so
 * the count does not depend on the machine.  tap_done() returns the exit
 * status and turns a plan that does not match the subtests printed into
 * "Bail out!" and a failure.
 */
#ifndef PT_TAP_H
#define PT_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_fails, tap_planned = -1;

/* Bail out of the whole program: a harness error, not a subtest result. */
__attribute__((noreturn, format(printf, 1, 2), unused))
static void tap_bail(const char *fmt, ...)
{
	va_list ap;

	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

/* Print the plan "1..n": once, before the first subtest. */
__attribute__((unused))
static void tap_plan(int n)
{
	if (tap_planned >= 0 || tap_n)
		tap_bail("tap_plan(%d) after %s", n, tap_n ? "a subtest" : "another plan");
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

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

/*
 * @n subtests that one missing feature (or one failed step) rules out
 * together, so that the plan stays fixed: "ok N - DESC [i/n] # SKIP reason".
 */
__attribute__((format(printf, 3, 4), unused))
static void tap_skip_n(int n, const char *reason, const char *fmt, ...)
{
	char desc[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	for (int i = 1; i <= n; i++) {
		if (n > 1)
			printf("ok %d - %s [%d/%d] # SKIP %s\n", ++tap_n, desc, i, n, reason);
		else
			printf("ok %d - %s # SKIP %s\n", ++tap_n, desc, reason);
	}
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
	/* "1..0" after "1..n" would be a second plan: the test's bug */
	if (tap_planned >= 0)
		tap_bail("tap_skip_all() after tap_plan(): %s", reason);
	printf("1..0 # SKIP %s\n", reason);
	fflush(stdout);
	exit(77);
}

/*
 * The exit status: 1 if a subtest failed, or (after "Bail out!") if there
 * was no plan or it does not match the number of subtests printed.
 */
__attribute__((unused))
static int tap_done(void)
{
	if (tap_planned < 0) {
		printf("Bail out! no plan: tap_plan() was never called (%d subtests)\n", tap_n);
		fflush(stdout);
		return 1;
	}
	if (tap_n != tap_planned) {
		printf("Bail out! planned %d subtests, printed %d\n", tap_planned, tap_n);
		fflush(stdout);
		return 1;
	}
	return tap_fails ? 1 : 0;
}

#endif
