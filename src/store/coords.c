/*
 * coords.c - what the projector records beside the tokens: rejected and
 * quarantined records by (partition, offset), idempotency keys and each
 * partition's next offset; their writes and walks.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

int ctkn_store_put_rejected(ctkn_store_txn *t, int32_t partition,
                            int64_t offset, const char *event_id,
                            const char *token_id, const char *reason,
                            struct ctkn_err *err)
{
  uint8_t key[COORD_KEY_LEN];
  MDB_val k = {sizeof(key), key};
  struct ctkn__sv_gather g;
  int rc;

  if ((rc = ctkn__store_need_write(t, err)) != CTKN_OK ||
      (rc = ctkn__store_check_coord(partition, offset, err)) != CTKN_OK)
    return rc;
  if (reason == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "reason", "reason is NULL");
  ctkn__store_coord_key(key, partition, offset);
  if (ctkn__sv_rejected_pack(&g, token_id, event_id, reason) != CTKN_OK)
    return ctkn__err(err, CTKN_EINTERNAL, "rejected value does not pack");
  return ctkn__store_put_value(t, T_REJECTED, &k, &g, 0, err);
}

/* ---- the quarantine counts in meta (store_int.h) ----------------------- */

#define QCOUNT     "quarantined"
#define QCOUNT_LEN (sizeof(QCOUNT) - 1)

static void qcount_key(uint8_t k[QCOUNT_LEN + 4], uint32_t partition)
{
  memcpy(k, QCOUNT, QCOUNT_LEN);
  ctkn__put_be32(k + QCOUNT_LEN, partition);
}

/* Move partition p's count by one (an LMDB code). */
static int qcount_bump(MDB_txn *txn, MDB_dbi meta, uint32_t p)
{
  uint8_t kb[QCOUNT_LEN + 4], vb[8];
  MDB_val k = {sizeof(kb), kb}, v;
  uint64_t n = 0;
  int rc;

  qcount_key(kb, p);
  rc = mdb_get(txn, meta, &k, &v);
  if (rc == MDB_SUCCESS && v.mv_size == 8)
    n = ctkn__get_be(v.mv_data, 8);
  else if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return rc;
  ctkn__put_be64(vb, n + 1);
  v.mv_size = sizeof(vb);
  v.mv_data = vb;
  return mdb_put(txn, meta, &k, &v, 0);
}

/* Whether meta holds the counts (false on any error: then scan). */
static bool qcount_held(MDB_txn *txn, MDB_dbi meta)
{
  MDB_val k = {QCOUNT_LEN, (void *)QCOUNT}, v;

  return mdb_get(txn, meta, &k, &v) == MDB_SUCCESS;
}

int ctkn__store_count_quarantine(MDB_txn *txn, MDB_dbi meta, MDB_dbi q)
{
  MDB_val k = {QCOUNT_LEN, (void *)QCOUNT}, v = {1, (void *)"1"};
  MDB_cursor *c;
  int rc;

  if (qcount_held(txn, meta))
    return MDB_SUCCESS;
  if ((rc = mdb_cursor_open(txn, q, &c)) != MDB_SUCCESS)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    if (k.mv_size == COORD_KEY_LEN &&
        (rc = qcount_bump(txn, meta, (uint32_t)ctkn__get_be(k.mv_data, 4))) !=
            MDB_SUCCESS)
      break;
  mdb_cursor_close(c);
  if (rc != MDB_NOTFOUND)
    return rc;
  k.mv_size = QCOUNT_LEN;
  k.mv_data = (void *)QCOUNT;
  v.mv_size = 1;
  v.mv_data = (void *)"1";
  return mdb_put(txn, meta, &k, &v, 0);
}

int ctkn_store_put_quarantine(ctkn_store_txn *t, int32_t partition,
                              int64_t offset, const char *reason,
                              const void *key, size_t klen, const void *value,
                              size_t vlen, struct ctkn_err *err)
{
  uint8_t kb[COORD_KEY_LEN];
  MDB_val k = {sizeof(kb), kb}, old;
  struct ctkn__sv_gather g;
  bool fresh;
  int rc;

  if ((rc = ctkn__store_need_write(t, err)) != CTKN_OK ||
      (rc = ctkn__store_check_coord(partition, offset, err)) != CTKN_OK)
    return rc;
  if (reason == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "reason", "reason is NULL");
  if ((key == NULL && klen > 0) || (value == NULL && vlen > 0))
    return ctkn__err(err, CTKN_EINVAL, "quarantined bytes are NULL");
  ctkn__store_coord_key(kb, partition, offset);
  if (ctkn__sv_quarantine_pack(&g, reason, key, klen, value, vlen) != CTKN_OK)
    return ctkn__err(err, CTKN_EINTERNAL, "quarantine value does not pack");
  rc = mdb_get(t->txn, t->st->dbi[T_QUARANTINE], &k, &old);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, "get quarantine");
  fresh = rc == MDB_NOTFOUND; /* counted once, however often put */
  if ((rc = ctkn__store_put_value(t, T_QUARANTINE, &k, &g, 0, err)) != CTKN_OK)
    return rc;
  if (fresh && (rc = qcount_bump(t->txn, t->st->dbi[T_META],
                                 (uint32_t)partition)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "quarantine count");
  return CTKN_OK;
}

/*
 * First writer wins: a key already stored with the same token and hash is
 * a no-op, with anything else CTKN_ECONFLICT (the projector should have
 * asked ctkn_store_get_idem() first; this keeps the invariant anyway).
 */
int ctkn_store_put_idem(ctkn_store_txn *t, const char *key, const char *id,
                        const uint8_t hash[CTKN_HASH_LEN], struct ctkn_err *err)
{
  MDB_val k, v;
  struct ctkn__sv_gather g;
  uint8_t packed[128];
  int rc;

  if ((rc = ctkn__store_need_write(t, err)) != CTKN_OK)
    return rc;
  if (!ctkn__store_idem_key_ok(key))
    return ctkn__err_field(err, CTKN_EINVAL, "idempotency_key",
                           "an idempotency key has 1 to %d bytes",
                           CTKN_IDEM_KEY_MAX);
  if (!ctkn__store_has_len(id, CTKN_ID_LEN))
    return ctkn__err_field(err, CTKN_EINVAL, "id", "an ID has %d characters",
                           CTKN_ID_LEN);
  k.mv_size = strlen(key);
  k.mv_data = (void *)key;
  if (ctkn__sv_idem_pack(&g, id, hash) != CTKN_OK || g.total > sizeof(packed))
    return ctkn__err(err, CTKN_EINTERNAL, "idempotency value does not pack");
  ctkn__sv_copy(&g, packed);
  v.mv_size = g.total;
  v.mv_data = packed;
  rc = mdb_put(t->txn, t->st->dbi[T_IDEM], &k, &v, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) {
    if (v.mv_size == g.total && memcmp(v.mv_data, packed, g.total) == 0)
      return CTKN_OK;
    return ctkn__err_field(err, CTKN_ECONFLICT, "idempotency_key",
                           "idempotency key already used for another "
                           "request");
  }
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "put idempotency");
}

int ctkn_store_set_offset(ctkn_store_txn *t, int32_t partition, int64_t next,
                          struct ctkn_err *err)
{
  uint8_t key[4], val[8];
  MDB_val k = {sizeof(key), key}, v = {sizeof(val), val};
  int rc;

  if ((rc = ctkn__store_need_write(t, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn__store_check_coord(partition, next, err)) != CTKN_OK)
    return rc;
  ctkn__put_be32(key, (uint32_t)partition);
  ctkn__put_be64(val, (uint64_t)next);
  rc = mdb_put(t->txn, t->st->dbi[T_OFFSETS], &k, &v, 0);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "put offsets");
}

/* ---- walks ----------------------------------------------------------- */

/* Decoded (partition, offset) of a coordinate key; false when corrupt. */
static bool read_coord(const MDB_val *k, int32_t *partition, int64_t *offset)
{
  uint64_t p, o;

  if (k->mv_size != COORD_KEY_LEN)
    return false;
  p = ctkn__get_be(k->mv_data, 4);
  o = ctkn__get_be((const uint8_t *)k->mv_data + 4, 8);
  if (p >= CTKN_STORE_MAX_PARTITIONS || o > INT64_MAX)
    return false;
  *partition = (int32_t)p;
  *offset = (int64_t)o;
  return true;
}

/*
 * Hand one rejected or quarantine entry to cb: rejected [token ID, event
 * ID, reason] as (reason, token ID, event ID), quarantine [reason, key,
 * value] as they are. The reason goes as a C string, copied into reason.
 */
static int coord_entry(int table, const MDB_val *k, const MDB_val *v,
                       struct ctkn__buf *reason, ctkn_store_coord_cb cb,
                       void *arg, struct ctkn_err *err)
{
  struct ctkn__sv_span a, b, why;
  int32_t partition;
  int64_t offset;
  int rc;

  if (!read_coord(k, &partition, &offset))
    return ctkn__store_corrupt(err, table);
  rc = table == T_REJECTED
           ? ctkn__sv_rejected_read(v->mv_data, v->mv_size, &a, &b, &why)
           : ctkn__sv_quarantine_read(v->mv_data, v->mv_size, &why, &a, &b);
  if (rc != CTKN_OK || memchr(why.p, '\0', why.n) != NULL)
    return ctkn__store_corrupt(err, table);
  ctkn__buf_reset(reason);
  if (ctkn__buf_append(reason, why.p, why.n) != CTKN_OK)
    return ctkn__err(err, CTKN_ENOMEM, "copying a %zu-byte reason", why.n);
  return cb(arg, partition, offset, reason->data, a.p, a.n, b.p, b.n);
}

/* The reason stored at (partition, offset) in rejected or quarantine
 * (table), into reason; what names the table in the not-found message. */
static int get_reason(ctkn_store_txn *t, int table, const char *what,
                      int32_t partition, int64_t offset, char *reason,
                      size_t reasonsz, struct ctkn_err *err)
{
  uint8_t kb[COORD_KEY_LEN];
  MDB_val k = {sizeof(kb), kb}, v;
  struct ctkn__sv_span why, a, b;
  int rc;

  if ((rc = ctkn__store_check_coord(partition, offset, err)) != CTKN_OK)
    return rc;
  ctkn__store_coord_key(kb, partition, offset);
  rc = mdb_get(t->txn, t->st->dbi[table], &k, &v);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND,
                     "no %s at partition %" PRId32 " offset %" PRId64, what,
                     partition, offset);
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, what);
  rc = table == T_REJECTED
           ? ctkn__sv_rejected_read(v.mv_data, v.mv_size, &a, &b, &why)
           : ctkn__sv_quarantine_read(v.mv_data, v.mv_size, &why, &a, &b);
  if (rc != CTKN_OK)
    return ctkn__store_corrupt(err, table);
  if (reason != NULL && reasonsz > 0) {
    size_t n = why.n < reasonsz - 1 ? why.n : reasonsz - 1;
    if (n > 0)
      memcpy(reason, why.p, n);
    reason[n] = '\0';
  }
  return CTKN_OK;
}

int ctkn_store_get_rejected(ctkn_store_txn *t, int32_t partition,
                            int64_t offset, char *reason, size_t reasonsz,
                            struct ctkn_err *err)
{
  return get_reason(t, T_REJECTED, "rejected event", partition, offset, reason,
                    reasonsz, err);
}

int ctkn_store_get_quarantine(ctkn_store_txn *t, int32_t partition,
                              int64_t offset, char *reason, size_t reasonsz,
                              struct ctkn_err *err)
{
  return get_reason(t, T_QUARANTINE, "quarantined record", partition, offset,
                    reason, reasonsz, err);
}

/* Walk rejected or quarantine in (partition, offset) order. */
static int walk_coords(ctkn_store_txn *t, int table, ctkn_store_coord_cb cb,
                       void *arg, struct ctkn_err *err)
{
  struct ctkn__buf reason = CTKN__BUF_INIT;
  MDB_cursor *c;
  MDB_val k, v;
  int rc, crc = 0;

  if ((rc = ctkn__store_cursor(t, table, &c, err)) != CTKN_OK)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if ((crc = coord_entry(table, &k, &v, &reason, cb, arg, err)) != 0)
      break;
  }
  mdb_cursor_close(c);
  ctkn__buf_free(&reason);
  if (crc != 0)
    return crc;
  return rc == MDB_NOTFOUND ? CTKN_OK : ctkn__store_lmdb_err(err, rc, "walk");
}

int ctkn_store_quarantine(ctkn_store_txn *t, ctkn_store_coord_cb cb, void *arg,
                          struct ctkn_err *err)
{
  return walk_coords(t, T_QUARANTINE, cb, arg, err);
}

/* The counts meta holds: one cursor step a partition that has any. */
static int held_counts(ctkn_store_txn *t, int64_t *counts, int32_t n,
                       struct ctkn_err *err)
{
  uint8_t kb[QCOUNT_LEN + 4];
  MDB_val k = {sizeof(kb), kb}, v;
  MDB_cursor *c;
  int rc;

  if ((rc = ctkn__store_cursor(t, T_META, &c, err)) != CTKN_OK)
    return rc;
  qcount_key(kb, 0);
  for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
       rc == MDB_SUCCESS && k.mv_size == QCOUNT_LEN + 4 &&
       memcmp(k.mv_data, QCOUNT, QCOUNT_LEN) == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    uint64_t p = ctkn__get_be((const uint8_t *)k.mv_data + QCOUNT_LEN, 4);
    if (v.mv_size != 8) {
      mdb_cursor_close(c);
      return ctkn__store_corrupt(err, T_META);
    }
    if (p >= (uint64_t)n)
      break; /* in partition order: the rest lie past n too */
    counts[p] = (int64_t)ctkn__get_be(v.mv_data, 8);
  }
  mdb_cursor_close(c);
  return rc == MDB_SUCCESS || rc == MDB_NOTFOUND
             ? CTKN_OK
             : ctkn__store_lmdb_err(err, rc, "quarantine count");
}

/* From meta's counts; a read-only open of a projection from before them
 * counts the keys (no value decoded). */
int ctkn_store_quarantine_counts(ctkn_store_txn *t, int64_t *counts, int32_t n,
                                 struct ctkn_err *err)
{
  MDB_cursor *c;
  MDB_val k, v;
  int rc;

  for (int32_t i = 0; i < n; i++)
    counts[i] = 0;
  if (qcount_held(t->txn, t->st->dbi[T_META]))
    return held_counts(t, counts, n, err);
  if ((rc = ctkn__store_cursor(t, T_QUARANTINE, &c, err)) != CTKN_OK)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    uint64_t p;

    if (k.mv_size != COORD_KEY_LEN) {
      mdb_cursor_close(c);
      return ctkn__store_corrupt(err, T_QUARANTINE);
    }
    p = ctkn__get_be(k.mv_data, 4);
    if (p < (uint64_t)(n > 0 ? n : 0))
      counts[p]++;
  }
  mdb_cursor_close(c);
  return rc == MDB_NOTFOUND ? CTKN_OK : ctkn__store_lmdb_err(err, rc, "walk");
}

int ctkn_store_rejected(ctkn_store_txn *t, ctkn_store_coord_cb cb, void *arg,
                        struct ctkn_err *err)
{
  return walk_coords(t, T_REJECTED, cb, arg, err);
}

int ctkn_store_offsets(ctkn_store_txn *t, ctkn_store_offset_cb cb, void *arg,
                       struct ctkn_err *err)
{
  MDB_cursor *c;
  MDB_val k, v;
  int rc;

  if ((rc = ctkn__store_cursor(t, T_OFFSETS, &c, err)) != CTKN_OK)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    uint64_t p, next;

    if (k.mv_size != 4 || v.mv_size != 8 ||
        (p = ctkn__get_be(k.mv_data, 4)) >= CTKN_STORE_MAX_PARTITIONS ||
        (next = ctkn__get_be(v.mv_data, 8)) > INT64_MAX) {
      rc = ctkn__store_corrupt(err, T_OFFSETS);
      goto done;
    }
    rc = cb(arg, (int32_t)p, (int64_t)next);
    if (rc != 0)
      goto done;
  }
  rc = rc == MDB_NOTFOUND ? CTKN_OK
                          : ctkn__store_lmdb_err(err, rc, "walk offsets");
done:
  mdb_cursor_close(c);
  return rc;
}
