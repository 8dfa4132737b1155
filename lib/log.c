/* SPDX-License-Identifier: MIT */
/*
 * Logging through the caller's callback, and the version string.
 * The library never prints: without a callback, messages are dropped.
 */
#include <stdarg.h>
#include <stdio.h>

#include "pt_internal.h"

#define PT_STR_(x) #x
#define PT_STR(x) PT_STR_(x)

/* Set once by the application, before other threads use the library. */
static pt_log_fn log_fn;
static void *log_ctx;

const char *pt_version(void)
{
	return PT_STR(PT_VERSION_MAJOR) "." PT_STR(PT_VERSION_MINOR) "."
	       PT_STR(PT_VERSION_PATCH);
}

void pt_set_log(pt_log_fn fn, void *ctx)
{
	log_fn = fn;
	log_ctx = ctx;
}

void pt__log(enum pt_log_level lvl, const char *fmt, ...)
{
	pt_log_fn fn = log_fn;
	char buf[512];	/* longer messages are truncated */
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fn(lvl, buf, log_ctx);
}
