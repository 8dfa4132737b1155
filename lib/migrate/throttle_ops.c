// SPDX-License-Identifier: MIT
/* The throttle used by pt_migrate_send()'s auto-converge: lib/process/throttle.c. */
#include "migrate.h"
#include "process/throttle.h"

static int t_start(pid_t pid, struct pt__throttle **out)
{
	return pt__throttle_start(pid, PT_THROTTLE_AUTO, out);
}

static const struct pt__mig_throttle_ops ops = {
	t_start,
	pt__throttle_set,
	pt__throttle_stop,
};

const struct pt__mig_throttle_ops *const pt__mig_throttle = &ops;
