// SPDX-License-Identifier: MIT
/*
 * The throttle used by pt_migrate_send()'s auto-converge.  Until
 * lib/process/throttle.h is in the tree this is NULL (the sender reports
 * throttle_percent 0 and logs that throttling is unavailable).  To wire
 * it: include "process/throttle.h" and define
 *	static int t_start(pid_t pid, struct pt__throttle **out)
 *	{ return pt__throttle_start(pid, PT_THROTTLE_AUTO, out); }
 *	static const struct pt__mig_throttle_ops ops = {
 *		t_start, pt__throttle_set, pt__throttle_stop };
 *	const struct pt__mig_throttle_ops *const pt__mig_throttle = &ops;
 */
#include "migrate.h"

const struct pt__mig_throttle_ops *const pt__mig_throttle = NULL;
