/* SPDX-License-Identifier: MIT */
/*
 * Fault injection (like CRIU's CRIU_FAULT): PT_FAULT=NAME or NAME:N in
 * the environment makes one step of the library fail as a real failure
 * would, so that tests can drive every error path that would otherwise
 * leave something behind in the target (doc/inject.md, "Fault
 * injection").  Without the variable this costs one acquire load.
 *
 * The variable is read once, on first use; pt__fault_reset() makes the
 * next use read it again (tests; it must not race with other pagetrack
 * calls).  NAME fires on every hit of the point, NAME:N only on the N-th
 * (counted from 1, in this process: the injection helper is a fork, so a
 * count of the "inject" point is not carried across injections).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pt_internal.h"

static const struct {
	const char *name;
	int err;		/* what the step returns when it fails */
} points[PT_FAULT__COUNT] = {
	[PT_FAULT_NONE] = { "none", 0 },
	[PT_FAULT_UFFD_CREATE] = { "uffd-create", -EIO },
	[PT_FAULT_UFFD_GETFD] = { "uffd-getfd", -EMFILE },
	[PT_FAULT_UFFD_API] = { "uffd-api", -EINVAL },
	[PT_FAULT_UFFD_REGISTER] = { "uffd-register", -ENOMEM },
	[PT_FAULT_UFFD_PROTECT] = { "uffd-protect", -ENOMEM },
	[PT_FAULT_UFFD_HARVEST] = { "uffd-harvest", -ENOMEM },
	[PT_FAULT_UFFD_CLOSE] = { "uffd-close", -EBUSY },
	[PT_FAULT_ROUND] = { "round", -ENOMEM },
	[PT_FAULT_FREEZE] = { "freeze", -EIO },
	[PT_FAULT_BARRIER] = { "barrier", -EIO },
	[PT_FAULT_INJECT] = { "inject", -EIO },
};

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool loaded;
static enum pt_fault armed;
static unsigned long nth;	/* 0: every hit */
static atomic_ulong hits;

static void load(void)
{
	const char *e = getenv("PT_FAULT");
	size_t len;

	armed = PT_FAULT_NONE;
	nth = 0;
	atomic_store(&hits, 0);
	if (!e || !*e)
		return;
	len = strcspn(e, ":");
	for (int i = 1; i < PT_FAULT__COUNT; i++)
		if (strlen(points[i].name) == len && !strncmp(e, points[i].name, len))
			armed = (enum pt_fault)i;
	if (armed == PT_FAULT_NONE) {
		pt__log(PT_LOG_WARN, "PT_FAULT=%s: no such fault point (doc/inject.md)", e);
		return;
	}
	if (e[len] == ':')
		nth = strtoul(e + len + 1, NULL, 10);
	pt__log(PT_LOG_INFO, "fault injection armed: %s", e);
}

int pt__fault(enum pt_fault f)
{
	if (!atomic_load_explicit(&loaded, memory_order_acquire)) {
		pthread_mutex_lock(&fault_lock);
		if (!atomic_load_explicit(&loaded, memory_order_relaxed)) {
			load();
			atomic_store_explicit(&loaded, true, memory_order_release);
		}
		pthread_mutex_unlock(&fault_lock);
	}
	if (f != armed || f == PT_FAULT_NONE)
		return 0;
	if (nth && atomic_fetch_add(&hits, 1) + 1 != nth)
		return 0;
	pt__log(PT_LOG_INFO, "fault injected: %s", points[f].name);
	return points[f].err;
}

void pt__fault_reset(void)
{
	atomic_store_explicit(&loaded, false, memory_order_release);
}
