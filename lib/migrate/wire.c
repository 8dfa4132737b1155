// SPDX-License-Identifier: MIT
/*
 * The migration wire (doc/migration-protocol.md): handshake, key
 * derivation, records, frames.  One connection per migration; frames
 * are written and read by one thread.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "wire.h"

#define HELLO_MAGIC "PTMIGRT"	/* 8 bytes with its NUL */
#define HELLO_LEN 48u
#define REC_MAX (PT_MIG_HDR + PT_MIG_MAX_PAYLOAD + crypto_secretstream_xchacha20poly1305_ABYTES)

int pt__mig_fail(struct pt__mig_conn *c, int e, const char *fmt, ...)
{
	va_list ap;

	if (c->err && c->errlen && !c->err[0]) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return e < 0 ? e : -EIO;
}

bool pt__mig_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		const unsigned char *a = in6->sin6_addr.s6_addr;
		static const unsigned char lo[16] = { [15] = 1 };
		static const unsigned char v4m[12] = { [10] = 0xff, [11] = 0xff };

		return !memcmp(a, lo, 16) || (!memcmp(a, v4m, 12) && a[12] == 127);
	}
	return false;
}

int pt__mig_split_addr(const char *s, char *host, size_t cap, char *port, size_t pcap)
{
	const char *colon;
	size_t hl;

	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		hl = (size_t)(rb - s - 1);
		s++;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= cap || !colon[1] || strlen(colon + 1) >= pcap)
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = 0;
	strcpy(port, colon + 1);
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	return 0;
}

/* ---- raw I/O with an idle timeout ---- */

/*
 * Until @fd is ready for @ev: -ETIMEDOUT after the idle timeout, -ETIME
 * at the deadline (plus the grace when @grace: a record begun, a read).
 */
static int wait_fd(struct pt__mig_conn *c, short ev, bool grace)
{
	struct pollfd p = { .fd = c->fd, .events = ev };
	uint64_t idle_end = pt__now_ns() + (c->idle_timeout_ms ? c->idle_timeout_ms : 60000) * 1000000;
	uint64_t limit = c->deadline_ns ? c->deadline_ns + (grace ? c->grace_ns : 0) : UINT64_MAX;

	for (;;) {
		uint64_t now = pt__now_ns();

		if (now >= limit)
			return -ETIME;
		if (now >= idle_end)
			return -ETIMEDOUT;
		uint64_t end = limit < idle_end ? limit : idle_end;
		/* rounded up: a poll never returns just short of its end */
		int ms = (int)((end - now + 999999) / 1000000);
		int r = poll(&p, 1, ms);

		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static int write_all(struct pt__mig_conn *c, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	uint64_t t0 = pt__now_ns();
	size_t n0 = n;

	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				int e = wait_fd(c, POLLOUT, n < n0);

				if (e == -ETIME && n == n0)
					return e;	/* nothing of it sent: the stream is intact */
				if (e && n < n0)
					c->torn = true;	/* a half-written record */
				if (e)
					return pt__mig_fail(c, e, "sending: %s", e == -ETIME ?
							    "the peer stopped reading (--timeout "
							    "reached with a write blocked)" :
							    e == -ETIMEDOUT ?
							    "the peer stopped reading (timeout)" :
							    strerror(-e));
				continue;
			}
			int e = -errno;

			if (n < n0)
				c->torn = true;
			return pt__mig_fail(c, e, "sending: %s", e == -EPIPE || e == -ECONNRESET ?
					    "connection closed by the peer" : strerror(-e));
		}
		p += w;
		n -= (size_t)w;
	}
	c->write_ns += pt__now_ns() - t0;
	return 0;
}

static int read_all(struct pt__mig_conn *c, void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n) {
		ssize_t r = recv(c->fd, p, n, MSG_DONTWAIT);

		if (r == 0)
			return -ECONNRESET;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				int e = wait_fd(c, POLLIN, true);

				if (e)
					return e;
				continue;
			}
			return -errno;
		}
		p += r;
		n -= (size_t)r;
		c->bytes_in += (uint64_t)r;
	}
	return 0;
}

static int read_err(struct pt__mig_conn *c, int e, const char *what)
{
	if (e == -ECONNRESET)
		return pt__mig_fail(c, e, "connection closed by the peer %s", what);
	if (e == -ETIMEDOUT)
		return pt__mig_fail(c, e, "no data from the peer %s (timeout)", what);
	if (e == -ETIME)
		return pt__mig_fail(c, e, "no answer from the peer %s by the --timeout", what);
	return pt__mig_fail(c, e, "receiving %s: %s", what, strerror(-e));
}

/* The rate cap's wait before @n bytes; -ETIME (nothing sent) when it would pass the deadline. */
static int throttle(struct pt__mig_conn *c, size_t n)
{
	if (!c->rate_bps)
		return 0;
	uint64_t now = pt__now_ns();
	double burst = (double)c->rate_bps / 20 > 262144 ? (double)c->rate_bps / 20 : 262144;

	if (!c->bucket_ns) {
		c->bucket_ns = now;
		c->tokens = burst;
	}
	c->tokens += (double)(now - c->bucket_ns) * (double)c->rate_bps / 1e9;
	if (c->tokens > burst)
		c->tokens = burst;
	c->bucket_ns = now;
	c->tokens -= (double)n;
	if (c->tokens < 0) {
		double s = -c->tokens / (double)c->rate_bps;
		bool cut = c->deadline_ns && now + (uint64_t)(s * 1e9) >= c->deadline_ns;

		if (cut) {
			c->tokens += (double)n;	/* not sent */
			s = c->deadline_ns > now ? (double)(c->deadline_ns - now) / 1e9 : 0;
		}
		struct timespec ts = { .tv_sec = (time_t)s,
				       .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };

		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		if (cut)
			return -ETIME;
	}
	return 0;
}

static int grow(unsigned char **buf, size_t *cap, size_t need)
{
	if (*cap >= need)
		return 0;
	unsigned char *b = realloc(*buf, need);

	if (!b)
		return -ENOMEM;
	*buf = b;
	*cap = need;
	return 0;
}

/* One record: u32 length, then the frame (sealed when secure). */
static int write_record(struct pt__mig_conn *c, const unsigned char *frame, size_t n)
{
	size_t out = c->secure ? n + crypto_secretstream_xchacha20poly1305_ABYTES : n;
	crypto_secretstream_xchacha20poly1305_state saved;
	int e = grow(&c->wbuf, &c->wcap, out + 4);

	if (e)
		return pt__mig_fail(c, e, "out of memory");
	if (c->deadline_ns && pt__now_ns() >= c->deadline_ns)
		return -ETIME;
	if ((e = throttle(c, out + 4)))
		return e;
	pt__put32(c->wbuf, (uint32_t)out);
	if (c->secure) {
		unsigned long long clen = 0;

		saved = c->tx;
		crypto_secretstream_xchacha20poly1305_push(&c->tx, c->wbuf + 4, &clen, frame, n, NULL,
							   0, 0);
	} else {
		memcpy(c->wbuf + 4, frame, n);
	}
	e = write_all(c, c->wbuf, out + 4);
	if (!e)
		c->bytes_out += out + 4;
	if (c->secure) {
		if (e == -ETIME && !c->torn)
			c->tx = saved;	/* not sent: the next record takes its place */
		sodium_memzero(&saved, sizeof(saved));
	}
	return e;
}

/* The next record's plaintext into c->rbuf; *@n its length. */
static int read_record(struct pt__mig_conn *c, size_t *n, bool first)
{
	unsigned char l[4];
	int e = read_all(c, l, 4);

	if (e)
		return read_err(c, e, first ? "during the handshake" : "mid-stream");
	uint32_t len = pt__get32(l);
	size_t min = PT_MIG_HDR + (c->secure ? crypto_secretstream_xchacha20poly1305_ABYTES : 0);

	if (len < min || len > REC_MAX)
		return pt__mig_fail(c, -EBADMSG, first && c->secure ?
				    "authentication failed: wrong key?" :
				    "corrupt stream: record of %u bytes", len);
	if ((e = grow(&c->rbuf, &c->rcap, len)) || (e = grow(&c->pbuf, &c->pcap, len)))
		return pt__mig_fail(c, e, "out of memory");
	e = read_all(c, c->rbuf, len);
	if (e)
		return read_err(c, e, first ? "during the handshake" : e == -ECONNRESET ?
				"mid-stream (truncated)" : "mid-stream");
	if (c->secure) {
		unsigned long long mlen = 0;
		unsigned char tag = 0;

		if (crypto_secretstream_xchacha20poly1305_pull(&c->rx, c->pbuf, &mlen, &tag, c->rbuf,
							       len, NULL, 0))
			return pt__mig_fail(c, -EBADMSG, first ? "authentication failed: wrong key?"
					    : "corrupt stream: a record failed authentication "
					      "(altered in transit)");
		*n = (size_t)mlen;
	} else {
		memcpy(c->pbuf, c->rbuf, len);
		*n = len;
	}
	return 0;
}

int pt__mig_send(struct pt__mig_conn *c, uint32_t type, const void *head, size_t n1,
		 const void *body, size_t n2, bool compress, int level)
{
	size_t raw = n1 + n2, plen = raw;
	uint32_t flags = 0;
	int e;

	if (raw > PT_MIG_MAX_PAYLOAD)
		return pt__mig_fail(c, -EMSGSIZE, "frame too large");
	e = grow(&c->zbuf, &c->zcap, PT_MIG_HDR + n1 + ZSTD_compressBound(n2 ? n2 : 1));
	if (e)
		return pt__mig_fail(c, e, "out of memory");
	unsigned char *f = c->zbuf;

	if (n1)
		memcpy(f + PT_MIG_HDR, head, n1);
	if (compress && n2) {
		if (!c->cctx && !(c->cctx = ZSTD_createCCtx()))
			return pt__mig_fail(c, -ENOMEM, "out of memory");
		size_t z = ZSTD_compressCCtx(c->cctx, f + PT_MIG_HDR + n1,
					     ZSTD_compressBound(n2), body, n2, level ? level : 1);

		if (!ZSTD_isError(z) && z < n2 - n2 / 8) {
			flags |= PT_MIG_F_ZSTD;
			plen = n1 + z;
		}
	}
	if (!(flags & PT_MIG_F_ZSTD) && n2)
		memcpy(f + PT_MIG_HDR + n1, body, n2);
	pt__put32(f, PT_MIG_MAGIC);
	f[4] = (unsigned char)c->version;
	f[5] = 0;
	f[6] = (unsigned char)type;
	f[7] = (unsigned char)flags;
	pt__put64(f + 8, c->tx_seq);
	pt__put32(f + 16, (uint32_t)plen);
	pt__put32(f + 20, (uint32_t)raw);
	pt__put64(f + 24, 0);
	pt__put64(f + 24, XXH3_64bits(f, PT_MIG_HDR + plen));
	e = write_record(c, f, PT_MIG_HDR + plen);
	if (!e)
		c->tx_seq++;
	return e;
}

static int recv_frame(struct pt__mig_conn *c, struct pt__mig_frame *fr, bool first)
{
	size_t n = 0;
	int e = read_record(c, &n, first);

	if (e)
		return e;
	unsigned char *f = c->pbuf;
	uint32_t plen = pt__get32(f + 16), raw = pt__get32(f + 20);
	uint64_t sum = pt__get64(f + 24), seq = pt__get64(f + 8);

	if (pt__get32(f) != PT_MIG_MAGIC)
		return pt__mig_fail(c, -EBADMSG, first && !c->secure ?
				    "not a pagetrack migration peer (bad magic)" :
				    "corrupt stream: bad frame magic");
	if (f[4] != c->version)
		return pt__mig_fail(c, -EPROTONOSUPPORT, "frame of protocol version %u", f[4]);
	if ((size_t)plen + PT_MIG_HDR != n || raw > PT_MIG_MAX_PAYLOAD)
		return pt__mig_fail(c, -EBADMSG, "corrupt stream: frame length %u in a record of %zu",
				    plen, n);
	pt__put64(f + 24, 0);
	if (XXH3_64bits(f, n) != sum)
		return pt__mig_fail(c, -EBADMSG, "corrupt stream: frame %llu checksum mismatch",
				    (unsigned long long)seq);
	if (seq != c->rx_seq)
		return pt__mig_fail(c, -EBADMSG, "corrupt stream: frame %llu where %llu was due",
				    (unsigned long long)seq, (unsigned long long)c->rx_seq);
	c->rx_seq++;
	fr->type = f[6];
	fr->flags = f[7];
	fr->seq = seq;
	fr->len = raw;
	if (f[7] & PT_MIG_F_ZSTD) {
		/* type-specific head stays raw: PAGES has a 24-byte head */
		size_t head = f[6] == PT_MIG_PAGES ? 24 : 0;

		if (plen < head || raw < head)
			return pt__mig_fail(c, -EBADMSG, "corrupt stream: short compressed frame");
		e = grow(&c->rbuf, &c->rcap, raw);
		if (e)
			return pt__mig_fail(c, e, "out of memory");
		if (!c->dctx && !(c->dctx = ZSTD_createDCtx()))
			return pt__mig_fail(c, -ENOMEM, "out of memory");
		memcpy(c->rbuf, f + PT_MIG_HDR, head);
		size_t d = ZSTD_decompressDCtx(c->dctx, c->rbuf + head, raw - head,
					       f + PT_MIG_HDR + head, plen - head);

		if (ZSTD_isError(d) || d != raw - head)
			return pt__mig_fail(c, -EBADMSG, "corrupt stream: frame %llu does not "
					    "decompress", (unsigned long long)seq);
		fr->payload = c->rbuf;
	} else {
		if (raw != plen)
			return pt__mig_fail(c, -EBADMSG, "corrupt stream: frame length mismatch");
		fr->payload = f + PT_MIG_HDR;
	}
	return 0;
}

int pt__mig_recv(struct pt__mig_conn *c, struct pt__mig_frame *f)
{
	return recv_frame(c, f, false);
}

/* ---- handshake ---- */

static void hello_fill(unsigned char *h, bool secure, bool initiator, const unsigned char *nonce,
		       uint16_t vmin, uint16_t vmax)
{
	memset(h, 0, HELLO_LEN);
	memcpy(h, HELLO_MAGIC, 8);
	h[8] = (unsigned char)vmin;
	h[9] = (unsigned char)(vmin >> 8);
	h[10] = (unsigned char)vmax;
	h[11] = (unsigned char)(vmax >> 8);
	h[12] = secure;
	h[13] = initiator ? 1 : 2;
	memcpy(h + 16, nonce, 32);
}

int pt__mig_conn_init(struct pt__mig_conn *c, int fd, bool initiator, const unsigned char *key,
		      size_t key_len, char *err, size_t errlen)
{
	unsigned char mine[HELLO_LEN], peer[HELLO_LEN], nonce[32];
	int e;

	uint64_t idle = c->idle_timeout_ms, dl = c->deadline_ns, grace = c->grace_ns;

	memset(c, 0, sizeof(*c));
	c->idle_timeout_ms = idle;
	c->deadline_ns = dl;
	c->grace_ns = grace;
	c->fd = fd;
	c->err = err;
	c->errlen = errlen;
	c->secure = key != NULL;
	if (sodium_init() < 0)
		return pt__mig_fail(c, -ENOSYS, "libsodium failed to initialise");
	randombytes_buf(nonce, sizeof(nonce));
	/* tests: an older peer, which speaks version 1 only */
	uint32_t ours = pt__fault(PT_FAULT_MIG_V1) ? 1 : PT_MIG_VERSION;
	uint16_t vmin, vmax;

	hello_fill(mine, c->secure, initiator, nonce, PT_MIG_VERSION_MIN, (uint16_t)ours);

	if (initiator) {
		if ((e = write_all(c, mine, HELLO_LEN)))
			return e;
		if ((e = read_all(c, peer, HELLO_LEN)))
			return read_err(c, e, "during the handshake");
		/* the receiver's choice in both fields; 0-0: none */
		vmin = (uint16_t)(peer[8] | peer[9] << 8);
		vmax = (uint16_t)(peer[10] | peer[11] << 8);
		c->version = vmin;
	} else {
		if ((e = read_all(c, peer, HELLO_LEN)))
			return read_err(c, e, "during the handshake");
		vmin = (uint16_t)(peer[8] | peer[9] << 8);
		vmax = (uint16_t)(peer[10] | peer[11] << 8);
		/* the highest version both speak */
		uint32_t v = vmax < ours ? vmax : ours;

		if (v < vmin || v < PT_MIG_VERSION_MIN)
			v = 0;
		if (!memcmp(peer, HELLO_MAGIC, 8))
			hello_fill(mine, c->secure, initiator, nonce, (uint16_t)v, (uint16_t)v);
		c->version = v;
		if ((e = write_all(c, mine, HELLO_LEN)))
			return e;
	}
	if (memcmp(peer, HELLO_MAGIC, 8) || peer[13] != (initiator ? 2 : 1))
		return pt__mig_fail(c, -EPROTO, "not a pagetrack migration peer");
	if (c->version < PT_MIG_VERSION_MIN || c->version > ours || (initiator && vmin != vmax))
		return pt__mig_fail(c, -EPROTONOSUPPORT, "no common protocol version (ours %u-%u, "
				    "the peer's %u-%u)", PT_MIG_VERSION_MIN, ours, vmin, vmax);
	if (!!peer[12] != c->secure)
		return pt__mig_fail(c, -EPERM, c->secure ?
				    "the peer runs with --insecure and no key: refused" :
				    "the peer requires a key (--key); this side has none (--insecure)");
	if (c->secure) {
		const unsigned char *ns = initiator ? nonce : peer + 16;
		const unsigned char *nr = initiator ? peer + 16 : nonce;
		unsigned char pskh[32], master[32], ks[32], kr[32], msg[20 + 64];
		unsigned char hdr_out[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
		unsigned char hdr_in[crypto_secretstream_xchacha20poly1305_HEADERBYTES];

		crypto_generichash(pskh, 32, key, key_len, NULL, 0);
		memcpy(msg, "pagetrack migrate v1", 20);
		memcpy(msg + 20, ns, 32);
		memcpy(msg + 52, nr, 32);
		crypto_generichash(master, 32, msg, sizeof(msg), pskh, 32);
		crypto_kdf_derive_from_key(ks, 32, 1, "ptmigrat", master);	/* sender -> receiver */
		crypto_kdf_derive_from_key(kr, 32, 2, "ptmigrat", master);	/* receiver -> sender */
		crypto_secretstream_xchacha20poly1305_init_push(&c->tx, hdr_out, initiator ? ks : kr);
		sodium_memzero(pskh, 32);
		sodium_memzero(master, 32);
		e = write_all(c, hdr_out, sizeof(hdr_out));
		if (!e && (e = read_all(c, hdr_in, sizeof(hdr_in))))
			e = read_err(c, e, "during the handshake");
		if (!e && crypto_secretstream_xchacha20poly1305_init_pull(&c->rx, hdr_in,
									 initiator ? kr : ks))
			e = pt__mig_fail(c, -EBADMSG, "authentication failed: wrong key?");
		sodium_memzero(ks, 32);
		sodium_memzero(kr, 32);
		if (e)
			return e;
	}
	/* both sides send their first frame before reading the peer's: each
	   learns of a wrong key from the first frame it reads */
	unsigned char auth[64];

	memcpy(auth, initiator ? nonce : peer + 16, 32);
	memcpy(auth + 32, initiator ? peer + 16 : nonce, 32);
	e = pt__mig_send(c, PT_MIG_HELLO, auth, sizeof(auth), NULL, 0, false, 0);
	if (e)
		return e;
	struct pt__mig_frame f;

	e = recv_frame(c, &f, true);
	if (e)
		return e;
	if (f.type != PT_MIG_HELLO || f.len != sizeof(auth) || memcmp(f.payload, auth, sizeof(auth)))
		return pt__mig_fail(c, -EPROTO, c->secure ? "authentication failed: wrong key?"
				    : "handshake: unexpected first frame");
	return 0;
}

void pt__mig_conn_free(struct pt__mig_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->wbuf);
	free(c->rbuf);
	free(c->zbuf);
	free(c->pbuf);
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	c->wbuf = c->rbuf = c->zbuf = c->pbuf = NULL;
	c->cctx = c->dctx = NULL;
	sodium_memzero(&c->tx, sizeof(c->tx));
	sodium_memzero(&c->rx, sizeof(c->rx));
}
