/* SPDX-License-Identifier: MIT */
/*
 * Constants and byte helpers of the image format (doc/image-format.md),
 * shared by lib/image/writer.c and lib/image/reader.c.  Every field is
 * read and written through these helpers: no raw structs on disk.
 */
#ifndef PT_IMAGE_FORMAT_H
#define PT_IMAGE_FORMAT_H

#include <stdint.h>
#include <string.h>

#define IMG_MAGIC		"\x8aPTIMG\r\n"
#define IMG_END_MAGIC		"PTIMGEND"
#define IMG_VERSION_MAJOR	1
#define IMG_VERSION_MINOR	0
#define IMG_HDR_FIXED		128u	/* header without the parent path */
#define IMG_HDR_MAX		4224u
#define IMG_PATH_MAX		4096u
#define IMG_SEC_HDR		32u
#define IMG_FOOTER		64u
#define IMG_SEQ_MAX		1023u
#define IMG_STR_MAX		8192u

#define IMG_HF_HAS_PARENT	(1u << 0)
#define IMG_HF_FROZEN		(1u << 1)
#define IMG_HF_LIVE		(1u << 2)
#define IMG_HF_KNOWN		0x7u
#define IMG_HF_MUST		0xffffu

enum img_sec {
	IMG_S_DIRECTORY = 1,
	IMG_S_STRINGS = 2,
	IMG_S_AREAS = 3,
	IMG_S_OBJECTS = 4,
	IMG_S_FRAMES = 5,
	IMG_S_INDEX = 6,
	IMG_S_FRAME = 7,
	IMG_S_PROCESS = 8,
	IMG_S_AUXV = 9,
	IMG_S_THREADS = 10,
	IMG_S_FILES = 11,
	IMG_S__COUNT
};
#define IMG_SF_OPTIONAL		(1u << 0)

/* entry sizes of version 1 */
#define IMG_E_DIR		24u
#define IMG_E_AREA		64u
#define IMG_E_OBJECT		64u
#define IMG_E_FRAME		32u
#define IMG_E_RUN		32u
#define IMG_E_AUXV		16u
#define IMG_E_FILE		48u
#define IMG_PROCESS_FIXED	64u
#define IMG_THREAD_HDR		48u
#define IMG_NOTE_HDR		16u

/* caps */
#define IMG_DIR_MAX		65536u
#define IMG_STRINGS_MAX		(256ull << 20)
#define IMG_CHUNK_MAX		(16ull << 20)
#define IMG_CHUNK_DEFAULT	(1u << 20)	/* writer's flush size */
#define IMG_AREAS_MAX		1048576u
#define IMG_FRAME_PAGES_MAX	1024u
#define IMG_FRAME_BYTES_MAX	(4u << 20)
#define IMG_FRAME_CLEN_MAX	((4u << 20) + (64u << 10))
#define IMG_FRAME_PAGES_DEFAULT	256u
#define IMG_CMDLINE_MAX		4096u
#define IMG_AUXV_MAX		1024u
#define IMG_THREADS_MAX		4194304u
#define IMG_NOTES_MAX		64u
#define IMG_NOTE_DESC_MAX	(1u << 20)
#define IMG_OBJ_SIZE_MAX	(1ull << 56)
#define IMG_NO_OBJECT		0xffffffffu

#define IMG_CODEC_ZSTD		1u
#define IMG_WINDOW_LOG_MAX	22

#define IMG_FF_ANY_TRACKED	(1u << 0)
#define IMG_FF_ANY_COMPARED	(1u << 1)

#define IMG_OF_STORED		(1u << 0)
#define IMG_OF_DELETED		(1u << 1)

static inline uint64_t img_align8(uint64_t v)
{
	return (v + 7) & ~7ull;
}

static inline uint16_t img_get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t img_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t img_get64(const unsigned char *p)
{
	return (uint64_t)img_get32(p) | (uint64_t)img_get32(p + 4) << 32;
}

static inline void img_put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void img_put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void img_put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline int img_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

#endif
