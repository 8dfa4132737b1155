/* SPDX-License-Identifier: MIT */
/*
 * Fault injection (like CRIU's CRIU_FAULT): PT_FAULT=NAME or NAME:N in
 * the environment makes one step of the library fail as a real failure
 * would, so that tests can drive every error path that would otherwise
 * leave something behind in the target (doc/inject.md, "Fault
 * injection").  Up to MAX_ARMED of them, comma-separated, act together.
 * Without the variable this costs one acquire load.
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
	[PT_FAULT_RECV_STREAM] = { "recv-stream", -EINVAL },
	[PT_FAULT_MIG_V1] = { "mig-v1", -EPROTONOSUPPORT },
	[PT_FAULT_RECV_COMMIT_STOP] = { "recv-commit-stop", -EINTR },
	[PT_FAULT_RECV_COMMIT_SLOW] = { "recv-commit-slow", -EAGAIN },
};

#define MAX_ARMED 4

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool loaded;
static struct {
	enum pt_fault f;
	unsigned long nth;	/* 0: every hit */
	atomic_ulong hits;
} armed[MAX_ARMED];
static int narmed;

static void load(void)
{
	const char *e = getenv("PT_FAULT");

	narmed = 0;
	if (!e || !*e)
		return;
	for (const char *p = e; *p && narmed < MAX_ARMED; p += *p == ',') {
		size_t len = strcspn(p, ":,");
		enum pt_fault f = PT_FAULT_NONE;
		char *end;

		for (int i = 1; i < PT_FAULT__COUNT; i++)
			if (strlen(points[i].name) == len && !strncmp(p, points[i].name, len))
				f = (enum pt_fault)i;
		if (f == PT_FAULT_NONE) {
			pt__log(PT_LOG_WARN, "PT_FAULT=%s: no such fault point (doc/inject.md)", e);
			narmed = 0;
			return;
		}
		armed[narmed].f = f;
		armed[narmed].nth = p[len] == ':' ? strtoul(p + len + 1, &end, 10) : 0;
		atomic_store(&armed[narmed].hits, 0);
		narmed++;
		p = p[len] == ':' ? end : p + len;
	}
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
	for (int i = 0; i < narmed; i++) {
		if (armed[i].f != f)
			continue;
		if (armed[i].nth && atomic_fetch_add(&armed[i].hits, 1) + 1 != armed[i].nth)
			return 0;
		pt__log(PT_LOG_INFO, "fault injected: %s", points[f].name);
		return points[f].err;
	}
	return 0;
}

void pt__fault_reset(void)
{
	atomic_store_explicit(&loaded, false, memory_order_release);
}
