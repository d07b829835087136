/*
 * tokens.c - reads: a token by ID or token string, idempotency keys,
 * rejected events, partition offsets, counts and the list.
 *
 * Reads of tokens and token_index in a write txn go through its batch
 * first (batch.c), so they see the txn's own buffered writes; a read that
 * walks or counts those tables writes the batch out before it starts.
 */
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "ctkn/codec.h"
#include "store/store_int.h"

int ctkn__store_decode_record(const MDB_val *v, const char *id,
                              struct ctkn_record *out, struct ctkn_err *err)
{
  struct ctkn_err derr;

  if (ctkn_record_decode(v->mv_data, v->mv_size, out, &derr) != CTKN_OK)
    return ctkn__err(err, CTKN_ESTORE, "corrupt value in tokens: %s", derr.msg);
  if (memcmp(out->token.id, id, CTKN_ID_LEN) != 0)
    return ctkn__err(err, CTKN_ESTORE,
                     "corrupt value in tokens: record of another ID");
  return CTKN_OK;
}

int ctkn_store_get(ctkn_store_txn *t, const char *id, struct ctkn_record *out,
                   struct ctkn_err *err)
{
  MDB_val k, v;
  int rc;

  if (!ctkn__store_has_len(id, CTKN_ID_LEN))
    return ctkn__err(err, CTKN_ENOTFOUND, "no token has this ID");
  if (t->batch != NULL)
    return ctkn__store_batch_get(t, id, false, out, err);
  k.mv_size = CTKN_ID_LEN;
  k.mv_data = (void *)id;
  rc = mdb_get(t->txn, t->st->dbi[T_TOKENS], &k, &v);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "no token has this ID");
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "get tokens");
  return ctkn__store_decode_record(&v, id, out, err);
}

int ctkn_store_lookup_token(ctkn_store_txn *t, const char *token,
                            char id[CTKN_ID_BUF], ctkn_status *status,
                            struct ctkn_err *err)
{
  MDB_val k, v;
  int rc;

  if (!ctkn__store_has_len(token, CTKN_TOKEN_LEN))
    return ctkn__err(err, CTKN_ENOTFOUND, "no token has this token string");
  k.mv_size = CTKN_TOKEN_LEN;
  k.mv_data = (void *)token;
  rc = t->batch != NULL ? ctkn__store_batch_lookup(t, token, &v)
                        : CTKN__STORE_UNSEEN;
  if (rc == CTKN__STORE_UNSEEN)
    rc = mdb_get(t->txn, t->st->dbi[T_INDEX], &k, &v);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "no token has this token string");
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "get token_index");
  const uint8_t *e = v.mv_data;
  if (v.mv_size != INDEX_VALUE_LEN || (e[CTKN_ID_LEN] != CTKN_STATUS_ACTIVE &&
                                       e[CTKN_ID_LEN] != CTKN_STATUS_REVOKED))
    return ctkn__store_corrupt(err, T_INDEX);
  memcpy(id, e, CTKN_ID_LEN);
  id[CTKN_ID_LEN] = '\0';
  *status = (ctkn_status)e[CTKN_ID_LEN];
  return CTKN_OK;
}

int ctkn_store_get_by_token(ctkn_store_txn *t, const char *token,
                            struct ctkn_record *out, struct ctkn_err *err)
{
  char id[CTKN_ID_BUF];
  ctkn_status status = CTKN_STATUS_ACTIVE;
  int rc;

  if ((rc = ctkn_store_lookup_token(t, token, id, &status, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_get(t, id, out, err);
  if (rc == CTKN_ENOTFOUND)
    return ctkn__err(err, CTKN_ESTORE,
                     "corrupt value in token_index: %s has no record", id);
  if (rc == CTKN_OK &&
      (strcmp(out->token.token, token) != 0 || out->token.status != status))
    return ctkn__store_corrupt(err, T_INDEX);
  return rc;
}

int ctkn_store_get_idem(ctkn_store_txn *t, const char *key,
                        char id[CTKN_ID_BUF], uint8_t hash[CTKN_HASH_LEN],
                        struct ctkn_err *err)
{
  struct ctkn__sv_span tid, h;
  MDB_val k, v;
  int rc;

  if (!ctkn__store_idem_key_ok(key))
    return ctkn__err_field(err, CTKN_EINVAL, "idempotency_key",
                           "an idempotency key has 1 to %d bytes",
                           CTKN_IDEM_KEY_MAX);
  k.mv_size = strlen(key);
  k.mv_data = (void *)key;
  rc = mdb_get(t->txn, t->st->dbi[T_IDEM], &k, &v);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "idempotency key not used yet");
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "get idempotency");
  if (ctkn__sv_idem_read(v.mv_data, v.mv_size, &tid, &h) != CTKN_OK ||
      tid.n != CTKN_ID_LEN || h.n != CTKN_HASH_LEN)
    return ctkn__store_corrupt(err, T_IDEM);
  memcpy(id, tid.p, CTKN_ID_LEN);
  id[CTKN_ID_LEN] = '\0';
  memcpy(hash, h.p, CTKN_HASH_LEN);
  return CTKN_OK;
}

int ctkn_store_offset(ctkn_store_txn *t, int32_t partition, int64_t *next,
                      struct ctkn_err *err)
{
  uint8_t key[4];
  MDB_val k = {sizeof(key), key}, v;
  uint64_t n;
  int rc;

  *next = 0;
  if ((rc = ctkn__store_check_coord(partition, 0, err)) != CTKN_OK)
    return rc;
  ctkn__put_be32(key, (uint32_t)partition);
  rc = mdb_get(t->txn, t->st->dbi[T_OFFSETS], &k, &v);
  if (rc == MDB_NOTFOUND)
    return CTKN_OK;
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "get offsets");
  if (v.mv_size != 8 || (n = ctkn__get_be(v.mv_data, 8)) > INT64_MAX)
    return ctkn__store_corrupt(err, T_OFFSETS);
  *next = (int64_t)n;
  return CTKN_OK;
}

int ctkn_store_count(ctkn_store_txn *t, int64_t *n, struct ctkn_err *err)
{
  MDB_stat ms;
  int rc;

  *n = 0;
  if ((rc = ctkn__store_batch_sync(t, err)) != CTKN_OK)
    return rc;
  if ((rc = mdb_stat(t->txn, t->st->dbi[T_TOKENS], &ms)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "stat tokens");
  *n = (int64_t)ms.ms_entries;
  return CTKN_OK;
}

/* The "revoked" count in meta, or a scan where a read-only open meets a
 * projection from before it. */
static int count_revoked(ctkn_store_txn *t, int64_t *n, struct ctkn_err *err)
{
  MDB_val k = ctkn__store_revoked_key, v;
  int rc;

  *n = 0;
  if ((rc = ctkn__store_batch_sync(t, err)) != CTKN_OK)
    return rc;
  rc = mdb_get(t->txn, t->st->dbi[T_META], &k, &v);
  if (rc == MDB_NOTFOUND)
    rc = ctkn__store_scan_revoked(t->txn, t->st->dbi[T_INDEX], n);
  else if (rc == MDB_SUCCESS && v.mv_size != 8)
    return ctkn__store_corrupt(err, T_META);
  else if (rc == MDB_SUCCESS)
    *n = (int64_t)ctkn__get_be(v.mv_data, 8);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "revoked count");
}

int ctkn_store_count_status(ctkn_store_txn *t, unsigned status_mask, int64_t *n,
                            struct ctkn_err *err)
{
  const unsigned active = 1u << CTKN_STATUS_ACTIVE;
  const unsigned revoked = 1u << CTKN_STATUS_REVOKED;
  const unsigned both = active | revoked;
  int64_t all, r;
  int rc;

  *n = 0;
  if ((rc = ctkn_store_count(t, &all, err)) != CTKN_OK)
    return rc;
  if ((status_mask & both) == both) {
    *n = all;
    return CTKN_OK;
  }
  if ((status_mask & both) == 0)
    return CTKN_OK;
  if ((rc = count_revoked(t, &r, err)) != CTKN_OK)
    return rc;
  *n = status_mask & revoked ? r : all - r;
  return CTKN_OK;
}

/* ---- the list ---------------------------------------------------------- */

/* Position c on the first key strictly beyond after (alen bytes; 0: from
 * the start) in list order. An LMDB code. */
static int list_start(MDB_cursor *c, const char *after, size_t alen, bool desc,
                      MDB_val *k, MDB_val *v)
{
  int rc;

  if (alen == 0)
    return mdb_cursor_get(c, k, v, desc ? MDB_LAST : MDB_FIRST);
  k->mv_size = alen;
  k->mv_data = (void *)after;
  rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE); /* first key >= after */
  if (desc && (rc == MDB_SUCCESS || rc == MDB_NOTFOUND))
    return mdb_cursor_get(c, k, v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
  if (rc == MDB_SUCCESS && k->mv_size == alen &&
      memcmp(k->mv_data, after, alen) == 0)
    return mdb_cursor_get(c, k, v, MDB_NEXT);
  return rc;
}

/* A page being filled. */
struct page {
  unsigned mask;
  size_t limit;
  struct ctkn_record *out;
  size_t n;
  bool has_more; /* the page is full and another token matches */
};

/* Take the token at (k, v) into pg if its status matches. */
static int list_take(struct page *pg, const MDB_val *k, const MDB_val *v,
                     struct ctkn_err *err)
{
  struct ctkn_record spare;
  struct ctkn_record *r = pg->n < pg->limit ? &pg->out[pg->n] : &spare;
  char id[CTKN_ID_BUF];
  int rc;

  if (k->mv_size != CTKN_ID_LEN)
    return ctkn__err(err, CTKN_ESTORE, "corrupt key in tokens");
  memcpy(id, k->mv_data, CTKN_ID_LEN);
  id[CTKN_ID_LEN] = '\0';
  if ((rc = ctkn__store_decode_record(v, id, r, err)) != CTKN_OK)
    return rc;
  if ((pg->mask & (1u << r->token.status)) == 0)
    return CTKN_OK;
  if (r == &spare)
    pg->has_more = true;
  else
    pg->n++;
  return CTKN_OK;
}

/*
 * Listing is a scan of the tokens table in ID order from the cursor. With
 * a status filter that most tokens fail (revoked tokens among millions of
 * active ones), it reads and decodes every skipped token: cost grows with
 * the tokens between `after` and the page's end, not with the page. A
 * status index would make it proportional to the page; format 1 has none.
 */
int ctkn_store_list(ctkn_store_txn *t, const char *after, bool desc,
                    unsigned status_mask, size_t limit, struct ctkn_record *out,
                    size_t *n, bool *has_more, struct ctkn_err *err)
{
  const unsigned all = (1u << CTKN_STATUS_ACTIVE) | (1u << CTKN_STATUS_REVOKED);
  struct page pg = {status_mask, limit, out, 0, false};
  MDB_cursor_op step = desc ? MDB_PREV : MDB_NEXT;
  MDB_cursor *c;
  MDB_val k, v;
  size_t alen = after == NULL ? 0 : strlen(after);
  int rc, trc = CTKN_OK;

  *n = 0;
  *has_more = false;
  if (alen > (size_t)mdb_env_get_maxkeysize(t->st->env))
    return ctkn__err_field(err, CTKN_EINVAL, "after",
                           "after is not a token ID");
  if ((status_mask & all) == 0)
    return CTKN_OK;
  if ((rc = ctkn__store_batch_sync(t, err)) != CTKN_OK ||
      (rc = ctkn__store_cursor(t, T_TOKENS, &c, err)) != CTKN_OK)
    return rc;
  rc = list_start(c, after, alen, desc, &k, &v);
  while (rc == MDB_SUCCESS) {
    if ((trc = list_take(&pg, &k, &v, err)) != CTKN_OK || pg.has_more)
      break;
    rc = mdb_cursor_get(c, &k, &v, step);
  }
  mdb_cursor_close(c);
  if (trc != CTKN_OK)
    return trc;
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, "list tokens");
  *n = pg.n;
  *has_more = pg.has_more;
  return CTKN_OK;
}
