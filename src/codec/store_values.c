/*
 * store_values.c - the store's small values <-> msgpack: history,
 * rejected, quarantine and idempotency (internal.h, "stored values").
 *
 *   history      [partition, offset, bin event]
 *   rejected     [token ID | nil, event ID | nil, reason]
 *   quarantine   [reason, bin key | nil, bin value | nil]
 *   idempotency  [token ID, bin hash]
 *
 * The digest hashes these bytes as stored, so the encoding must be
 * canonical and must never change within a store format: msgpack-c
 * always picks an integer's and a length's shortest form, and every value
 * is packed by the same calls as when the format was fixed.
 *
 * Packing assembles a value without copying any body twice. msgpack-c
 * writes every type-and-length header (at most 9 bytes) from its own
 * stack, so short writes are copied into the gather's hdr; a string or bin
 * body arrives in one write straight from the caller's buffer, which stays
 * valid until the store copies the value, so long writes are only
 * referenced. The store reserves the value's exact size in LMDB and
 * ctkn__sv_copy() copies the pieces once, into the page: no allocation
 * per put.
 *
 * Reading is a bounded reader for exactly these shapes: a flat array of
 * integers, strings, bins and nils. It never allocates and never reads
 * past the end, so a corrupt value is an error rather than an allocation
 * of the size its header claims.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <msgpack.h>

#include "codec/store_values.h"
#include "internal.h"

/* ---- packing ---------------------------------------------------------- */

#define GATHER_COPY 16 /* writes up to this size are headers: copied */

static int gather_write(void *data, const char *buf, size_t len)
{
  struct ctkn__sv_gather *g = data;
  const uint8_t *p = (const uint8_t *)buf;

  if (len == 0)
    return 0;
  if (len <= GATHER_COPY) {
    if (len > sizeof(g->hdr) - g->hlen)
      return -1;
    memcpy(g->hdr + g->hlen, buf, len);
    p = g->hdr + g->hlen;
    g->hlen += len;
    if (g->nseg > 0 && g->seg[g->nseg - 1].p + g->seg[g->nseg - 1].n == p) {
      g->seg[g->nseg - 1].n += len;
      g->total += len;
      return 0;
    }
  }
  if (g->nseg == CTKN__SV_SEGS)
    return -1;
  g->seg[g->nseg].p = p;
  g->seg[g->nseg].n = len;
  g->nseg++;
  g->total += len;
  return 0;
}

static void gather_init(struct ctkn__sv_gather *g, msgpack_packer *pk)
{
  g->hlen = 0;
  g->nseg = 0;
  g->total = 0;
  msgpack_packer_init(pk, g, gather_write);
}

static int pack_raw(msgpack_packer *pk, bool bin, const void *p, size_t n)
{
  if (bin)
    return msgpack_pack_bin(pk, n) | msgpack_pack_bin_body(pk, p, n);
  return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, p, n);
}

/* A string, or nil for NULL. */
static int pack_str_or_nil(msgpack_packer *pk, const char *s)
{
  return s == NULL ? msgpack_pack_nil(pk) : pack_raw(pk, false, s, strlen(s));
}

/* bin bytes, or nil for NULL. */
static int pack_bin_or_nil(msgpack_packer *pk, const void *p, size_t n)
{
  return p == NULL ? msgpack_pack_nil(pk) : pack_raw(pk, true, p, n);
}

void ctkn__sv_copy(const struct ctkn__sv_gather *g, uint8_t *dst)
{
  for (size_t i = 0; i < g->nseg; i++) {
    memcpy(dst, g->seg[i].p, g->seg[i].n);
    dst += g->seg[i].n;
  }
}

int ctkn__sv_history_pack(struct ctkn__sv_gather *g, int32_t partition,
                          int64_t offset, const void *event, size_t len)
{
  msgpack_packer pk;

  gather_init(g, &pk);
  if ((msgpack_pack_array(&pk, 3) | msgpack_pack_int32(&pk, partition) |
       msgpack_pack_int64(&pk, offset) |
       pack_raw(&pk, true, event == NULL ? "" : event, len)) != 0)
    return CTKN_EINTERNAL;
  return CTKN_OK;
}

int ctkn__sv_rejected_pack(struct ctkn__sv_gather *g, const char *token_id,
                           const char *event_id, const char *reason)
{
  msgpack_packer pk;

  gather_init(g, &pk);
  if ((msgpack_pack_array(&pk, 3) | pack_str_or_nil(&pk, token_id) |
       pack_str_or_nil(&pk, event_id) | pack_str_or_nil(&pk, reason)) != 0)
    return CTKN_EINTERNAL;
  return CTKN_OK;
}

int ctkn__sv_quarantine_pack(struct ctkn__sv_gather *g, const char *reason,
                             const void *key, size_t klen, const void *value,
                             size_t vlen)
{
  msgpack_packer pk;

  gather_init(g, &pk);
  if ((msgpack_pack_array(&pk, 3) | pack_str_or_nil(&pk, reason) |
       pack_bin_or_nil(&pk, key, klen) | pack_bin_or_nil(&pk, value, vlen)) !=
      0)
    return CTKN_EINTERNAL;
  return CTKN_OK;
}

int ctkn__sv_idem_pack(struct ctkn__sv_gather *g, const char *id,
                       const uint8_t hash[CTKN_HASH_LEN])
{
  msgpack_packer pk;

  gather_init(g, &pk);
  if ((msgpack_pack_array(&pk, 2) | pack_raw(&pk, false, id, CTKN_ID_LEN) |
       pack_raw(&pk, true, hash, CTKN_HASH_LEN)) != 0)
    return CTKN_EINTERNAL;
  return CTKN_OK;
}

/* ---- reading ---------------------------------------------------------- */

struct rd {
  const uint8_t *p;
  const uint8_t *end;
};

static void rd_init(struct rd *r, const void *p, size_t n)
{
  r->p = p;
  r->end = r->p + n;
}

static bool rd_take(struct rd *r, size_t n, const uint8_t **out)
{
  if ((size_t)(r->end - r->p) < n)
    return false;
  *out = r->p;
  r->p += n;
  return true;
}

static bool rd_uint(struct rd *r, size_t n, uint64_t *v)
{
  const uint8_t *p;

  if (!rd_take(r, n, &p))
    return false;
  *v = ctkn__get_be(p, n);
  return true;
}

static bool rd_array(struct rd *r, uint32_t want)
{
  const uint8_t *b;
  uint64_t n;

  if (!rd_take(r, 1, &b))
    return false;
  if (*b >= 0x90 && *b <= 0x9f)
    n = *b & 0x0f;
  else if (*b == 0xdc || *b == 0xdd) {
    if (!rd_uint(r, *b == 0xdc ? 2 : 4, &n))
      return false;
  } else
    return false;
  return n == want;
}

/* The integer after a uint (0xcc..0xcf) or int (0xd0..0xd3) type byte b. */
static bool rd_wide_int(struct rd *r, uint8_t b, int64_t *v)
{
  bool sign = b >= 0xd0;
  size_t n = (size_t)1 << (b - (sign ? 0xd0 : 0xcc));
  uint64_t u;

  if (!rd_uint(r, n, &u))
    return false;
  if (!sign) {
    if (u > INT64_MAX)
      return false;
  } else if (n < 8 && (u >> (8 * n - 1)) != 0) {
    u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
  }
  *v = (int64_t)u;
  return true;
}

static bool rd_int(struct rd *r, int64_t *v)
{
  const uint8_t *b;

  if (!rd_take(r, 1, &b))
    return false;
  if (*b <= 0x7f) {
    *v = *b;
    return true;
  }
  if (*b >= 0xe0) {
    *v = (int8_t)*b;
    return true;
  }
  if (*b >= 0xcc && *b <= 0xd3)
    return rd_wide_int(r, *b, v);
  return false;
}

/* The length of a string (bin false) or bin (bin true) whose type byte is
 * b; false when b is another type. */
static bool rd_raw_len(struct rd *r, bool bin, uint8_t b, uint64_t *len)
{
  if (!bin && b >= 0xa0 && b <= 0xbf) {
    *len = b & 0x1f;
    return true;
  }
  if (bin && b >= 0xc4 && b <= 0xc6)
    return rd_uint(r, (size_t)1 << (b - 0xc4), len);
  if (!bin && b >= 0xd9 && b <= 0xdb)
    return rd_uint(r, (size_t)1 << (b - 0xd9), len);
  return false;
}

/*
 * A string (bin false) or bin (bin true). With nil_ok, nil is accepted and
 * gives a NULL span.
 */
static bool rd_raw(struct rd *r, bool bin, bool nil_ok, struct ctkn__sv_span *s)
{
  const uint8_t *b;
  uint64_t len;

  if (!rd_take(r, 1, &b))
    return false;
  if (*b == 0xc0 && nil_ok) {
    s->p = NULL;
    s->n = 0;
    return true;
  }
  if (!rd_raw_len(r, bin, *b, &len) || len > SIZE_MAX ||
      !rd_take(r, (size_t)len, &s->p))
    return false;
  s->n = (size_t)len;
  if (s->p == NULL) /* 0 bytes of an empty value at NULL */
    s->p = (const uint8_t *)"";
  return true;
}

static int rd_end(const struct rd *r)
{
  return r->p == r->end ? CTKN_OK : CTKN_EDECODE;
}

int ctkn__sv_history_read(const void *p, size_t n, size_t *used,
                          int64_t *partition, int64_t *offset,
                          struct ctkn__sv_span *event)
{
  struct rd r;

  rd_init(&r, p, n);
  if (!rd_array(&r, 3) || !rd_int(&r, partition) || !rd_int(&r, offset) ||
      !rd_raw(&r, true, false, event))
    return CTKN_EDECODE;
  if (used == NULL)
    return rd_end(&r);
  *used = (size_t)(r.p - (const uint8_t *)p);
  return CTKN_OK;
}

int ctkn__sv_rejected_read(const void *p, size_t n,
                           struct ctkn__sv_span *token_id,
                           struct ctkn__sv_span *event_id,
                           struct ctkn__sv_span *reason)
{
  struct rd r;

  rd_init(&r, p, n);
  if (!rd_array(&r, 3) || !rd_raw(&r, false, true, token_id) ||
      !rd_raw(&r, false, true, event_id) || !rd_raw(&r, false, false, reason))
    return CTKN_EDECODE;
  return rd_end(&r);
}

int ctkn__sv_quarantine_read(const void *p, size_t n,
                             struct ctkn__sv_span *reason,
                             struct ctkn__sv_span *key,
                             struct ctkn__sv_span *value)
{
  struct rd r;

  rd_init(&r, p, n);
  if (!rd_array(&r, 3) || !rd_raw(&r, false, false, reason) ||
      !rd_raw(&r, true, true, key) || !rd_raw(&r, true, true, value))
    return CTKN_EDECODE;
  return rd_end(&r);
}

int ctkn__sv_idem_read(const void *p, size_t n, struct ctkn__sv_span *id,
                       struct ctkn__sv_span *hash)
{
  struct rd r;

  rd_init(&r, p, n);
  if (!rd_array(&r, 2) || !rd_raw(&r, false, false, id) ||
      !rd_raw(&r, true, false, hash))
    return CTKN_EDECODE;
  return rd_end(&r);
}
