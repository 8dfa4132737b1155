/* SPDX-License-Identifier: MIT */
/*
 * scan_self: the public pagetrack API in a few lines.  Opens the calling
 * process, reads its memory areas and scans each one with a small
 * caller-owned buffer, resuming from the cursor whenever it fills.
 *
 *   cc scan_self.c $(pkg-config --cflags --libs pagetrack)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <pagetrack/pagetrack.h>

int main(void)
{
	PT_OPTS(pt_scan_opts, opts, .flags = PT_SCAN_NO_EXCLUSIVE);
	struct pt_region buf[16];	/* small on purpose: shows cursor resumption */
	struct pt_target *t;
	struct pt_vma *vmas = NULL;
	size_t nvmas = 0;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	int err, rc = 1;

	t = pt_target_create(0, NULL);
	if (!t) {
		fprintf(stderr, "scan_self: pt_target_create: %s\n", strerror(errno));
		return 1;
	}
	err = pt_vmas_read(t, &vmas, &nvmas);
	if (err < 0) {
		fprintf(stderr, "scan_self: pt_vmas_read: %s\n", strerror(-err));
		goto out;
	}
	printf("backend %s, %zu memory areas (pages: present swapped absent other)\n",
	       pt_scan_backend_name(pt_target_scan_backend(t)), nvmas);
	for (size_t i = 0; i < nvmas; i++) {
		const struct pt_vma *v = &vmas[i];
		uint64_t pages[PT_STATE__COUNT] = { 0 };
		uint64_t cursor = v->start;

		while (cursor < v->end) {
			int n = pt_scan(t, &cursor, v->end, buf, sizeof(buf) / sizeof(buf[0]), &opts);

			if (n < 0) {
				fprintf(stderr, "scan_self: pt_scan: %s\n", strerror(-n));
				goto out;
			}
			if (n == 0)
				break;
			for (int j = 0; j < n; j++)
				if (buf[j].state < PT_STATE__COUNT)
					pages[buf[j].state] += (buf[j].end - buf[j].start) / page;
		}
		printf("%012" PRIx64 "-%012" PRIx64 " %-7s %8" PRIu64 " %8" PRIu64 " %8" PRIu64
		       " %8" PRIu64 "  %s\n", v->start, v->end, pt_vma_kind_name(v->kind),
		       pages[PT_STATE_PRESENT], pages[PT_STATE_SWAPPED], pages[PT_STATE_ABSENT],
		       pages[PT_STATE_CACHED] + pages[PT_STATE_UNKNOWN], v->path);
	}
	rc = 0;
out:
	pt_vmas_free(vmas);
	pt_target_free(t);
	return rc;
}
