/* SPDX-License-Identifier: MIT */
/* /proc/PID/maps and /proc/PID/smaps parsing. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "pt_internal.h"

#define TMPFS_MAGIC_ 0x01021994
#define HUGETLBFS_MAGIC_ 0x958458f6

static bool starts_with(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static bool ends_with(const char *s, const char *p)
{
	size_t ls = strlen(s), lp = strlen(p);

	return ls >= lp && strcmp(s + ls - lp, p) == 0;
}

static uint32_t classify(struct pt_vma *v)
{
	const char *p = v->path;

	if (!*p)
		return PT_VMA_ANON;
	if (strcmp(p, "[heap]") == 0)
		return PT_VMA_HEAP;
	if (starts_with(p, "[stack"))
		return PT_VMA_STACK;
	if (starts_with(p, "[anon_shmem:"))
		return PT_VMA_SHMEM;
	if (starts_with(p, "[anon:"))
		return PT_VMA_ANON;
	if (*p == '[')
		return PT_VMA_SPECIAL;
	if (starts_with(p, "/dev/zero (deleted)") && (v->prot & PT_MAP_SHARED))
		return PT_VMA_SHMEM;
	if (starts_with(p, "/memfd:"))
		return PT_VMA_MEMFD;
	if (starts_with(p, "/SYSV")) {
		v->sysv_key = (uint32_t)strtoul(p + 5, NULL, 16);
		return PT_VMA_SYSV;
	}
	if (starts_with(p, "/anon_hugepage"))
		return PT_VMA_HUGETLB;
	if (starts_with(p, "/dev/shm/"))
		return PT_VMA_SHM_FILE;
	if (v->dev_major == 0 && !ends_with(p, " (deleted)")) {
		struct statfs sfs;

		/* tmpfs and hugetlbfs have anonymous devices (major 0) */
		if (statfs(p, &sfs) == 0) {
			if ((unsigned long)sfs.f_type == TMPFS_MAGIC_)
				return PT_VMA_SHM_FILE;
			if ((unsigned long)sfs.f_type == HUGETLBFS_MAGIC_)
				return PT_VMA_HUGETLB;
		}
	}
	if (starts_with(p, "/dev/") && v->inode && v->dev_major == 0)
		return PT_VMA_SPECIAL;
	return PT_VMA_FILE;
}

int pt__maps_parse_line(char *line, struct pt_vma *v)
{
	char perms[8] = "";
	unsigned long long start, end, off, ino;
	unsigned int maj, min;
	int pos = 0;

	memset(v, 0, sizeof(*v));
	v->path = "";
	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj,
		   &min, &ino, &pos) < 7 || pos == 0)
		return -EINVAL;
	if (end <= start || strlen(perms) != 4)
		return -EINVAL;
	v->start = start;
	v->end = end;
	v->offset = off;
	v->dev_major = maj;
	v->dev_minor = min;
	v->inode = ino;
	v->prot = (perms[0] == 'r' ? PT_PROT_READ : 0) | (perms[1] == 'w' ? PT_PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PT_PROT_EXEC : 0) | (perms[3] == 's' ? PT_MAP_SHARED : 0);
	char *p = line + pos;
	while (*p == ' ')
		p++;
	p[strcspn(p, "\n")] = 0;
	v->path = p;	/* points into @line until pt__vmas_pack() */
	v->kind = classify(v);
	return 0;
}

struct pt_vma *pt__vmas_pack(const struct pt_vma *v, size_t n)
{
	size_t bytes = n * sizeof(*v) + 1;
	struct pt_vma *out;
	char *pool;

	for (size_t i = 0; i < n; i++)
		bytes += strlen(v[i].path) + 1;
	out = malloc(bytes);
	if (!out)
		return NULL;
	pool = (char *)(out + n);
	*pool = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i].path) + 1;

		out[i] = v[i];
		memcpy(pool, v[i].path, len);
		out[i].path = pool;
		pool += len;
	}
	if (!n)
		*pool = 0;
	return out;
}

/* Read all of @fd into a malloc'd NUL-terminated buffer. */
static int slurp(int fd, char **out, size_t *outlen)
{
	size_t cap = 64 * 1024, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = pread(fd, buf + len, cap - len - 1, (off_t)len);
		if (r < 0) {
			int err = -errno;
			free(buf);
			return err;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = 0;
	*out = buf;
	*outlen = len;
	return 0;
}

int pt__maps_parse_fd(int fd, struct pt_vma **out)
{
	char *buf, *line, *save = NULL;
	size_t len, n = 0, cap = 0;
	struct pt_vma *v = NULL;
	int err = slurp(fd, &buf, &len);

	if (err)
		return err;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct pt_vma *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				err = -ENOMEM;
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		if (pt__maps_parse_line(line, &v[n]) == 0)
			n++;
	}
	*out = pt__vmas_pack(v, n);
	free(v);
	free(buf);
	return *out ? (int)n : -ENOMEM;
fail:
	free(buf);
	free(v);
	return err;
}

int pt__smaps_parse_fd(int fd, struct pt_smaps_ent **out)
{
	char *buf, *line, *save = NULL;
	size_t len, n = 0, cap = 0;
	struct pt_smaps_ent *e = NULL, *cur = NULL;
	int err = slurp(fd, &buf, &len);

	if (err)
		return err;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long a, b, kb;
		char key[64];

		if (sscanf(line, "%llx-%llx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct pt_smaps_ent *ne = realloc(e, ncap * sizeof(*e));
				if (!ne) {
					free(buf);
					free(e);
					return -ENOMEM;
				}
				e = ne;
				cap = ncap;
			}
			cur = &e[n++];
			memset(cur, 0, sizeof(*cur));
			cur->start = a;
			cur->end = b;
			continue;
		}
		if (!cur || sscanf(line, "%63[^:]: %llu kB", key, &kb) != 2)
			continue;
		if (strcmp(key, "Rss") == 0)
			cur->rss_kb = kb;
		else if (strcmp(key, "Swap") == 0)
			cur->swap_kb = kb;
		else if (strcmp(key, "AnonHugePages") == 0)
			cur->anon_huge_kb = kb;
		else if (strcmp(key, "ShmemPmdMapped") == 0)
			cur->shmem_pmd_kb = kb;
		else if (strcmp(key, "FilePmdMapped") == 0)
			cur->file_pmd_kb = kb;
	}
	free(buf);
	*out = e;
	return (int)n;
}

bool pt__vma_is_shmem(const struct pt_vma *v)
{
	switch (v->kind) {
	case PT_VMA_SHMEM:
	case PT_VMA_MEMFD:
	case PT_VMA_SYSV:
	case PT_VMA_SHM_FILE:
		return true;
	default:
		return false;
	}
}

bool pt__vma_has_object(const struct pt_vma *v)
{
	return pt__vma_is_shmem(v) || v->kind == PT_VMA_FILE || v->kind == PT_VMA_HUGETLB;
}

const char *pt_vma_kind_name(enum pt_vma_kind k)
{
	static const char *const names[] = {
		[PT_VMA_ANON] = "anon",	      [PT_VMA_HEAP] = "heap",	  [PT_VMA_STACK] = "stack",
		[PT_VMA_FILE] = "file",	      [PT_VMA_SHMEM] = "shmem",	  [PT_VMA_MEMFD] = "memfd",
		[PT_VMA_SYSV] = "sysv",	      [PT_VMA_SHM_FILE] = "shm_file",
		[PT_VMA_HUGETLB] = "hugetlb", [PT_VMA_SPECIAL] = "special",
	};

	if ((unsigned)k >= sizeof(names) / sizeof(names[0]))
		return NULL;
	return names[k];
}
