/* SPDX-License-Identifier: MIT */
/*
 * The migration wire (doc/migration-protocol.md): the handshake, the
 * records (secretstream or plaintext), the frames with their header,
 * sequence numbers and checksums, and the send-rate cap.
 */
#ifndef PT_MIG_WIRE_H
#define PT_MIG_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>
#include <sys/socket.h>

#include "pt_internal.h"

#define PT_MIG_MAGIC		0x474d5450u	/* "PTMG" little-endian */
/* versions spoken: 1, and 2 = 1 + COMMIT_PROGRESS (doc/migration-protocol.md) */
#define PT_MIG_VERSION_MIN	1u
#define PT_MIG_VERSION		2u
#define PT_MIG_HDR		32u
#define PT_MIG_MAX_PAYLOAD	(1u << 20) + 64u
#define PT_MIG_FRAME_PAGES	256u

enum pt__mig_type {
	PT_MIG_HELLO = 1,
	PT_MIG_ROUND_BEGIN = 2,
	PT_MIG_LAYOUT = 3,
	PT_MIG_PAGES = 4,
	PT_MIG_ROUND_END = 5,
	PT_MIG_COMMIT = 6,
	PT_MIG_ACK = 7,
	PT_MIG_ABORT = 8,
	PT_MIG_ERROR = 9,
	PT_MIG_COMMIT_PROGRESS = 10,	/* receiver, version 2: alive in the final round / commit */
};

#define PT_MIG_F_ZSTD		(1u << 0)	/* payload body zstd-compressed */

/* PAGES flags */
#define PT_MIG_PG_SWAPPED	(1u << 0)	/* every page was swapped out at the source */

struct pt__mig_frame {
	uint32_t type, flags;
	uint64_t seq;
	uint32_t len;			/* payload length (decompressed) */
	unsigned char *payload;		/* owned by the connection, valid until the next recv */
};

struct pt__mig_conn {
	int fd;
	uint32_t version;		/* negotiated by the handshake */
	bool secure;
	bool tx_ready, rx_ready;
	crypto_secretstream_xchacha20poly1305_state tx, rx;
	uint64_t tx_seq, rx_seq;
	unsigned char *wbuf, *rbuf, *zbuf, *pbuf;
	size_t wcap, rcap, zcap, pcap;
	/* rate cap (token bucket): 0 = none */
	uint64_t rate_bps;
	double tokens;
	uint64_t bucket_ns;
	/* measured */
	uint64_t bytes_out, bytes_in, write_ns;
	void *cctx, *dctx;		/* zstd */
	uint64_t idle_timeout_ms;	/* poll timeout for one read / write; 0 = 60 s */
	/*
	 * The sender's --timeout (doc/migration-protocol.md, "Timeouts"):
	 * absolute pt__now_ns(), 0 = none.  No wait outlives it: a record
	 * not begun is not sent (-ETIME, the stream intact); a record begun
	 * and a read may take @grace_ns more, then -ETIME.  @torn: a
	 * record was left half-written (any error): the stream is unusable.
	 */
	uint64_t deadline_ns, grace_ns;
	bool torn;
	char *err;
	size_t errlen;
};

/* Error line into c->err (first one wins); returns @e (negative). */
PT_HIDDEN int pt__mig_fail(struct pt__mig_conn *c, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The peer address is a loopback one (127/8, ::1, ::ffff:127/104). */
PT_HIDDEN bool pt__mig_is_loopback(const struct sockaddr *sa);

/*
 * Handshake on connected @fd (doc/migration-protocol.md, "Handshake");
 * c->idle_timeout_ms, deadline_ns and grace_ns set before are kept.
 * @initiator: the sender.  @key NULL: plaintext (both sides must agree).
 * On success the connection can carry frames.  "authentication failed:
 * wrong key?" is the error when the first frame does not decrypt.
 */
PT_HIDDEN int pt__mig_conn_init(struct pt__mig_conn *c, int fd, bool initiator,
				const unsigned char *key, size_t key_len, char *err, size_t errlen);
PT_HIDDEN void pt__mig_conn_free(struct pt__mig_conn *c);	/* closes fd */

/*
 * Send one frame: @hdr_body (n1 bytes, never compressed) then @body
 * (n2 bytes; zstd-compressed at @level when @compress and it shrinks).
 */
PT_HIDDEN int pt__mig_send(struct pt__mig_conn *c, uint32_t type, const void *head, size_t n1,
			   const void *body, size_t n2, bool compress, int level);
/*
 * Thread safety: one thread at a time calls pt__mig_send(), one at a
 * time pt__mig_recv() (each uses only its direction's state), and both
 * write c->err only on failure: a second thread that sends while
 * another receives must point c->err elsewhere first (recv.c's
 * keepalives do not: they run only while nobody receives).
 */
/* The next frame (checked: magic, version, seq, checksum, length). */
PT_HIDDEN int pt__mig_recv(struct pt__mig_conn *c, struct pt__mig_frame *f);

/* little-endian helpers */
static inline void pt__put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static inline void pt__put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint32_t pt__get32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}
static inline uint64_t pt__get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* "HOST:PORT" / "[V6]:PORT" split into @host (cap bytes) and @port. */
PT_HIDDEN int pt__mig_split_addr(const char *s, char *host, size_t cap, char *port, size_t pcap);

#endif
