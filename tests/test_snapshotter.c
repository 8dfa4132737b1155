/* SPDX-License-Identifier: MIT */
/*
 * test_snapshotter: a chain of tracked layers (pt_snapshotter) never
 * holds a stale page.  A child writes random pages (private anonymous
 * memory, a memfd it maps shared, an area it unmaps and maps again)
 * between layers; after each layer, with the child idle, the layer
 * resolved through its chain must equal the child page by page
 * (pt_image_compare), and the layer's own runs must cover every page
 * the child wrote since the previous one (its log, kept independently).
 * Frozen and live layers alternate.  Bounded by work: LAYERS layers of
 * WRITES writes.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"

#include <pagetrack/pagetrack.h>

#define PAGE 4096u
#define NPRIV 2048u	/* private pages */
#define NOBJ 512u	/* memfd pages */
#define NREMAP 64u	/* pages of the area unmapped and mapped again */
#define LAYERS 8
#define WRITES 300

struct shared_info {
	uint64_t priv, obj, remap;
};

static int cmd_fd = -1, ack_fd = -1;

/* ---- the child: tests/snapchild (no sanitizer: its shadow would be terabytes to walk) ---- */

static int send_cmd(uint32_t what, uint32_t idx, uint64_t val)
{
	struct { uint32_t what, idx; uint64_t val; } c = { what, idx, val };
	char k;

	if (write(cmd_fd, &c, sizeof(c)) != sizeof(c) || read(ack_fd, &k, 1) != 1)
		return -EIO;
	return 0;
}

/* Wait until the child is back in read() on its command pipe: its stack is still. */
static void wait_idle(pid_t pid)
{
	char path[64], buf[64];

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	for (int i = 0; i < 5000; i++) {
		int fd = open(path, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		if (n > 2 && buf[0] == '0' && buf[1] == ' ')
			return;
		usleep(200);
	}
}

/* ---- checks ---- */

struct cover {
	const struct pt_image_area *a;
	size_t na;
	uint8_t *written;	/* per page of the private area: 1 = must be stored */
	uint64_t base, npages, stored, missed;
};

static int count_run(const struct pt_image_run *r, void *ctx)
{
	struct cover *c = ctx;

	if (r->owner_type != PT_OWNER_AREA || r->kind == PT_PAGE_UNCHANGED)
		return 0;
	uint64_t s = c->a[r->owner].start + r->page * PAGE;

	for (uint64_t p = 0; p < r->npages; p++) {
		uint64_t addr = s + p * PAGE;

		if (addr >= c->base && addr < c->base + c->npages * PAGE &&
		    c->written[(addr - c->base) / PAGE] == 1)
			c->written[(addr - c->base) / PAGE] = 2;	/* covered */
		c->stored++;
	}
	return 0;
}

static int on_diff(uint32_t type, uint32_t owner, uint64_t s, uint64_t e, void *ctx)
{
	(void)ctx;
	printf("#   differs: %s %u 0x%llx-0x%llx\n", type == PT_OWNER_AREA ? "area" : "object", owner,
	       (unsigned long long)s, (unsigned long long)e);
	return 0;
}

int main(void)
{
	char dir[] = "/tmp/pt-snapshotter-XXXXXX", path[LAYERS][128], e[512];
	int to[2], from[2];
	struct shared_info si;
	uint8_t written[NPRIV];
	uint64_t content[NPRIV], before[NPRIV];	/* a model: an id of each page's content */
	uint64_t seed = 0x5eed;
	pid_t pid;

	tap_plan(3 + LAYERS * 3);
	if (!mkdtemp(dir) || pipe(to) || pipe(from))
		tap_bail("setup: %s", strerror(errno));
	char exe[PATH_MAX];
	ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 16);
	char *slash = el > 0 ? (exe[el] = 0, strrchr(exe, '/')) : NULL;

	if (!slash)
		tap_bail("readlink /proc/self/exe");
	strcpy(slash + 1, "snapchild");
	if (access(exe, X_OK))
		tap_bail("%s not built", exe);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[0]);
		close(to[1]);
		close(from[0]);
		close(from[1]);
		execl(exe, exe, (char *)NULL);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	cmd_fd = to[1];
	ack_fd = from[0];
	if (read(ack_fd, &si, sizeof(si)) != sizeof(si))
		tap_bail("child did not start");
	wait_idle(pid);
	printf("# child %d: private 0x%llx, memfd 0x%llx, remapped 0x%llx\n", (int)pid,
	       (unsigned long long)si.priv, (unsigned long long)si.obj,
	       (unsigned long long)si.remap);

	PT_OPTS(pt_snapshot_opts, so, .flags = PT_SNAP_OVERWRITE);
	struct pt_snapshotter *sn = pt_snapshotter_create(pid, &so);

	tap_ok(sn != NULL, "pt_snapshotter_create (%s)", sn ? "ok" : strerror(errno));
	if (!sn) {
		tap_skip_n(LAYERS * 3 + 2, "no snapshotter", "the rest");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return tap_done();
	}
	memset(written, 0, sizeof(written));
	for (unsigned i = 0; i < NPRIV; i++)
		content[i] = i % 3 == 0 ? i + 1 : 0;
	for (int l = 0; l < LAYERS; l++) {
		bool live = l % 3 == 1;
		PT_OPTS(pt_snapshot_report, rep);
		struct pt_image *img = NULL;

		if (l) {	/* the child's writes since the previous layer, logged */
			memcpy(before, content, sizeof(content));
			for (int w = 0; w < WRITES; w++) {
				uint64_t r = (seed = seed * 6364136223846793005ULL + 1442695040888963407ULL);
				uint32_t what = (uint32_t)(r >> 60) % 16;

				if (what < 10) {
					uint32_t i = (uint32_t)(r >> 20) % NPRIV;

					send_cmd(0, i, r | 1);
					content[i] = content[i] * 31 + r;
				} else if (what < 14) {
					send_cmd(1, (uint32_t)(r >> 20) % NOBJ, r | 1);
				} else if (what < 15) {
					send_cmd(2, (uint32_t)(r >> 20) % NREMAP, r);
				} else {
					uint32_t i = (uint32_t)(r >> 20) % NPRIV;

					send_cmd(3, i, 0);
					content[i] = 0;	/* dropped: zeros */
				}
			}
			wait_idle(pid);
			for (unsigned i = 0; i < NPRIV; i++)	/* what changed since the last layer */
				written[i] = content[i] != before[i];
		}
		snprintf(path[l], sizeof(path[l]), "%s/layer.%d", dir, l);
		int err = pt_snapshotter_layer(sn, path[l], live ? PT_SNAP_LIVE : 0, &rep, e, sizeof(e));

		tap_ok(err == 0, "layer %d (%s): written (%s)", l, live ? "live" : "frozen",
		       err ? e : "ok");
		if (err) {
			tap_skip_n(2, "no layer", "layer %d checks", l);
			continue;
		}
		err = pt_image_open(path[l], &img, e, sizeof(e));
		int64_t d = err ? err : pt_image_compare(img, pid, on_diff, NULL, e, sizeof(e));

		tap_ok(d == 0, "layer %d resolved through its chain equals the child (%lld pages differ%s%s)",
		       l, (long long)d, d < 0 ? ": " : "", d < 0 ? e : "");
		if (!img || !l) {
			if (img)
				tap_ok(rep.pages_unchanged == 0 && rep.pages_data > 0,
				       "layer 0 is a full copy (%llu data pages)",
				       (unsigned long long)rep.pages_data);
			else
				tap_skip("no image", "layer 0 full copy");
			pt_image_close(img);
			continue;
		}
		const struct pt_image_area *a;
		size_t na;

		pt_image_areas(img, &a, &na);
		struct cover c = { a, na, written, si.priv, NPRIV, 0, 0 };
		uint64_t want = 0;

		pt_image_runs(img, count_run, &c);
		for (unsigned i = 0; i < NPRIV; i++) {
			want += written[i] != 0;
			c.missed += written[i] == 1;
		}
		tap_ok(c.missed == 0, "layer %d stores every page written since the previous one "
		       "(%llu written, %llu missed, %llu stored in all)", l, (unsigned long long)want,
		       (unsigned long long)c.missed, (unsigned long long)c.stored);
		pt_image_close(img);
	}
	tap_ok(pt_snapshotter_free(sn) == 0, "pt_snapshotter_free");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* the child is gone: a layer fails cleanly and leaves nothing */
	sn = NULL;
	{
		struct pt_snapshotter *gone = pt_snapshotter_create(pid, NULL);

		tap_ok(!gone && errno == ESRCH, "a snapshotter of an exited process: ESRCH (%s)",
		       gone ? "created" : strerror(errno));
		pt_snapshotter_free(gone);
	}
	for (int l = 0; l < LAYERS; l++)
		unlink(path[l]);
	rmdir(dir);
	return tap_done();
}
