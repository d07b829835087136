/*
 * store_values.h - the codec's encoding of the store's small values, for
 * the store (src/store/) only. Not installed.
 */
#ifndef CTKN_CODEC_STORE_VALUES_H
#define CTKN_CODEC_STORE_VALUES_H

#include <stddef.h>
#include <stdint.h>

#include "ctkn/event.h"

/* ---- the store's stored values (codec/store_values.c) ------------------ */

/*
 * The msgpack values of the store's history, rejected, quarantine and
 * idempotency tables (the layouts are at the top of codec/store_values.c;
 * the token record is ctkn_record_encode()'s). The digest hashes them as
 * stored, so their bytes never change within a store format.
 *
 * A packed value is a gather: its headers are copied into hdr, its string
 * and bin bodies are referenced where the caller keeps them, so the store
 * can reserve total bytes in LMDB and copy the value there once with
 * ctkn__sv_copy(). The gather borrows the bodies: they must stay valid
 * until that copy. Packers return CTKN_OK, or CTKN_EINTERNAL when the
 * value does not pack (never, for these shapes).
 */
#define CTKN__SV_SEGS 16
struct ctkn__sv_gather {
  uint8_t hdr[128];
  size_t hlen;
  struct {
    const uint8_t *p;
    size_t n;
  } seg[CTKN__SV_SEGS];
  size_t nseg;
  size_t total; /* the value's size */
};

/* Copy the packed value's total bytes to dst. */
void ctkn__sv_copy(const struct ctkn__sv_gather *g, uint8_t *dst);

/* history: [partition, offset, bin event]; event NULL packs len 0. */
int ctkn__sv_history_pack(struct ctkn__sv_gather *g, int32_t partition,
                          int64_t offset, const void *event, size_t len);
/* rejected: [token ID | nil, event ID | nil, reason]; NULL packs nil. */
int ctkn__sv_rejected_pack(struct ctkn__sv_gather *g, const char *token_id,
                           const char *event_id, const char *reason);
/* quarantine: [reason, bin key | nil, bin value | nil]; NULL packs nil. */
int ctkn__sv_quarantine_pack(struct ctkn__sv_gather *g, const char *reason,
                             const void *key, size_t klen, const void *value,
                             size_t vlen);
/* idempotency: [token ID (CTKN_ID_LEN bytes), bin hash]. */
int ctkn__sv_idem_pack(struct ctkn__sv_gather *g, const char *id,
                       const uint8_t hash[CTKN_HASH_LEN]);

/*
 * A string or bin read from a value: n bytes at p, valid as long as the
 * value; p is NULL for nil (where nil is allowed) and never NULL
 * otherwise. Not NUL-terminated.
 */
struct ctkn__sv_span {
  const uint8_t *p;
  size_t n;
};

/*
 * Readers of the same shapes: CTKN_OK, or CTKN_EDECODE when the n bytes
 * at p are not exactly that shape (a wrong type, a truncated field,
 * trailing bytes). They check the shape only; lengths and ranges are the
 * caller's rules. They never allocate and never read past p + n.
 */
/* With used NULL the value must end with the array; otherwise trailing
 * bytes are allowed and *used gets the bytes the array took. */
int ctkn__sv_history_read(const void *p, size_t n, size_t *used,
                          int64_t *partition, int64_t *offset,
                          struct ctkn__sv_span *event);
int ctkn__sv_rejected_read(const void *p, size_t n,
                           struct ctkn__sv_span *token_id,
                           struct ctkn__sv_span *event_id,
                           struct ctkn__sv_span *reason);
int ctkn__sv_quarantine_read(const void *p, size_t n,
                             struct ctkn__sv_span *reason,
                             struct ctkn__sv_span *key,
                             struct ctkn__sv_span *value);
int ctkn__sv_idem_read(const void *p, size_t n, struct ctkn__sv_span *id,
                       struct ctkn__sv_span *hash);

/* ctkn_record_encode_into() of a record given in parts, so that a caller
 * holding the token elsewhere (the projector: in the decoded event) need
 * not copy it into a struct ctkn_record first. Errors: as
 * ctkn_record_encode_into(). */
int ctkn__record_encode_parts(const struct ctkn_token *t, uint64_t version,
                              int32_t partition, int64_t offset, uint8_t *buf,
                              size_t cap, size_t *len, struct ctkn_err *err);

#endif /* CTKN_CODEC_STORE_VALUES_H */
