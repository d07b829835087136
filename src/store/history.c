/*
 * history.c - history and positions: a token's events by version, and
 * every applied event by where it sits in the log.
 *
 * Every history write puts the event's positions entry and its events
 * entry (events.c) in the same txn, so both always index history (a
 * writer that opens a projection whose counts differ rebuilds them:
 * env.c, events.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

/* History's key of (id, version): the ID, then the version (u64 BE). */
static void hist_key(uint8_t key[HIST_KEY_LEN], const char *id,
                     uint64_t version)
{
  memcpy(key, id, CTKN_ID_LEN);
  ctkn__put_be64(key + CTKN_ID_LEN, version);
}

int ctkn__store_put_value(ctkn_store_txn *t, int table, MDB_val *k,
                          const struct ctkn__sv_gather *g, unsigned flags,
                          struct ctkn_err *err)
{
  MDB_val v = {g->total, NULL};
  int rc = mdb_put(t->txn, t->st->dbi[table], k, &v, flags | MDB_RESERVE);
  char what[64];

  if (rc != MDB_SUCCESS) {
    snprintf(what, sizeof(what), "put %s", ctkn__store_table_names[table]);
    return ctkn__store_lmdb_err(err, rc, what);
  }
  ctkn__sv_copy(g, v.mv_data);
  return CTKN_OK;
}

/*
 * Put one positions entry through c: the key is the partition, the value
 * the offset and then the history key, so a partition's entries are its
 * duplicates in offset order. Offsets only grow, so the value appends to
 * them (MDB_APPENDDUP: no descent through the partition's entries); one
 * that does not goes in its place.
 */
int ctkn__store_put_pos(MDB_cursor *c, int32_t partition, int64_t offset,
                        const uint8_t hkey[HIST_KEY_LEN])
{
  uint8_t pk[4], pv[POS_VALUE_LEN];
  MDB_val k = {sizeof(pk), pk}, v = {sizeof(pv), pv};
  int rc;

  ctkn__put_be32(pk, (uint32_t)partition);
  ctkn__put_be64(pv, (uint64_t)offset);
  memcpy(pv + 8, hkey, HIST_KEY_LEN);
  rc = mdb_cursor_put(c, &k, &v, MDB_APPENDDUP);
  if (rc == MDB_KEYEXIST) {
    v.mv_size = sizeof(pv);
    v.mv_data = pv;
    rc = mdb_cursor_put(c, &k, &v, 0);
  }
  return rc;
}

/* The positions entry of the history entry whose key is hkey. */
static int put_position(ctkn_store_txn *t, int32_t partition, int64_t offset,
                        const uint8_t hkey[HIST_KEY_LEN], struct ctkn_err *err)
{
  MDB_cursor *c;
  int rc = mdb_cursor_open(t->txn, t->st->dbi[T_POSITIONS], &c);

  if (rc == MDB_SUCCESS) {
    rc = ctkn__store_put_pos(c, partition, offset, hkey);
    mdb_cursor_close(c);
  }
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "put positions");
}

/* The arguments of one history write. */
static int check_history(const char *id, int32_t partition, int64_t offset,
                         const void *value, size_t len, struct ctkn_err *err)
{
  int rc;

  if (!ctkn__store_has_len(id, CTKN_ID_LEN))
    return ctkn__err_field(err, CTKN_EINVAL, "id", "an ID has %d characters",
                           CTKN_ID_LEN);
  if ((rc = ctkn__store_check_coord(partition, offset, err)) != CTKN_OK)
    return rc;
  if (value == NULL && len > 0)
    return ctkn__err(err, CTKN_EINVAL, "history value is NULL");
  return CTKN_OK;
}

int ctkn_store_put_history(ctkn_store_txn *t, const char *id, uint64_t version,
                           int32_t partition, int64_t offset, const void *value,
                           size_t len, struct ctkn_err *err)
{
  uint8_t key[HIST_KEY_LEN];
  MDB_val k = {sizeof(key), key};
  struct ctkn__sv_gather g;
  int rc;

  if ((rc = ctkn__store_need_write(t, err)) != CTKN_OK ||
      (rc = check_history(id, partition, offset, value, len, err)) != CTKN_OK)
    return rc;
  hist_key(key, id, version);
  if (ctkn__sv_history_pack(&g, partition, offset, value, len) != CTKN_OK)
    return ctkn__err(err, CTKN_EINTERNAL, "history value does not pack");
  if ((rc = ctkn__store_put_value(t, T_HISTORY, &k, &g, 0, err)) != CTKN_OK ||
      (rc = put_position(t, partition, offset, key, err)) != CTKN_OK)
    return rc;
  /* The events entry, its ID decoded from the value (event_id ""). */
  struct ctkn_store_history_put one = {.version = version,
                                       .partition = partition,
                                       .offset = offset,
                                       .value = value,
                                       .len = len};
  memcpy(one.id, id, CTKN_ID_LEN);
  return ctkn__store_put_events(t, &one, 1, err);
}

static int history_cmp(const void *a, const void *b)
{
  const struct ctkn_store_history_put *x = a, *y = b;
  int c = memcmp(x->id, y->id, CTKN_ID_LEN);

  if (c != 0)
    return c;
  return x->version < y->version ? -1 : x->version > y->version;
}

/* A positions entry of a batch: the key, then the value. */
struct pos {
  uint8_t key[COORD_KEY_LEN];
  uint8_t hkey[HIST_KEY_LEN];
};

static int pos_cmp(const void *a, const void *b)
{
  return memcmp(*(const struct pos *const *)a, *(const struct pos *const *)b,
                COORD_KEY_LEN);
}

/* The positions entries of n sorted history entries, sorted in turn and
 * put through one cursor: each partition's offsets only grow, so they
 * append, or land beside the previous batch's. */
static int put_positions(ctkn_store_txn *t,
                         const struct ctkn_store_history_put *e, size_t n,
                         struct ctkn_err *err)
{
  struct pos *p = malloc(n * sizeof(*p));
  void **o = malloc(n * sizeof(*o));
  int rc;

  if (p == NULL || o == NULL) {
    free(p);
    free(o);
    return ctkn__err(err, CTKN_ENOMEM, "positions: out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    ctkn__store_coord_key(p[i].key, e[i].partition, e[i].offset);
    hist_key(p[i].hkey, e[i].id, e[i].version);
    o[i] = &p[i];
  }
  if (n > 1)
    qsort(o, n, sizeof(*o), pos_cmp);
  MDB_cursor *c = NULL;
  rc = mdb_cursor_open(t->txn, t->st->dbi[T_POSITIONS], &c);
  for (size_t i = 0; rc == MDB_SUCCESS && i < n; i++) {
    const struct pos *q = o[i];
    rc = ctkn__store_put_pos(c, (int32_t)ctkn__get_be(q->key, 4),
                             (int64_t)ctkn__get_be(q->key + 4, 8), q->hkey);
  }
  if (c != NULL)
    mdb_cursor_close(c);
  free(p);
  free(o);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "put positions");
}

/* Put n sorted history entries through c, appending past last (have: the
 * table had a last key). */
static int put_history_sorted(MDB_cursor *c,
                              const struct ctkn_store_history_put *e, size_t n,
                              uint8_t last[HIST_KEY_LEN], bool have,
                              struct ctkn_err *err)
{
  uint8_t key[HIST_KEY_LEN];
  MDB_val k = {sizeof(key), key};
  struct ctkn__sv_gather g;
  int rc;

  for (size_t i = 0; i < n; i++) {
    hist_key(key, e[i].id, e[i].version);
    if (ctkn__sv_history_pack(&g, e[i].partition, e[i].offset, e[i].value,
                              e[i].len) != CTKN_OK)
      return ctkn__err(err, CTKN_EINTERNAL, "history value does not pack");
    /* Past the last key: append. Sorted, so the rest follow. */
    bool append = !have || memcmp(key, last, sizeof(key)) > 0;
    MDB_val v = {g.total, NULL};
    rc = mdb_cursor_put(c, &k, &v, MDB_RESERVE | (append ? MDB_APPEND : 0));
    if (rc != MDB_SUCCESS)
      return ctkn__store_lmdb_err(err, rc, "put history");
    ctkn__sv_copy(&g, v.mv_data);
    if (append) {
      memcpy(last, key, sizeof(key));
      have = true;
    }
  }
  return CTKN_OK;
}

int ctkn_store_put_history_batch(ctkn_store_txn *t,
                                 struct ctkn_store_history_put *e, size_t n,
                                 struct ctkn_err *err)
{
  uint8_t last[HIST_KEY_LEN];
  MDB_val lk, lv;
  MDB_cursor *c;
  int rc;

  if ((rc = ctkn__store_need_write(t, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = check_history(e[i].id, e[i].partition, e[i].offset, e[i].value,
                            e[i].len, err)) != CTKN_OK)
      return rc;
  if (n == 0)
    return CTKN_OK;
  qsort(e, n, sizeof(*e), history_cmp);
  if ((rc = mdb_cursor_open(t->txn, t->st->dbi[T_HISTORY], &c)) != 0)
    return ctkn__store_lmdb_err(err, rc, "cursor history");
  rc = mdb_cursor_get(c, &lk, &lv, MDB_LAST);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
    mdb_cursor_close(c);
    return ctkn__store_lmdb_err(err, rc, "last history");
  }
  bool have = rc == MDB_SUCCESS && lk.mv_size == sizeof(last);
  if (have)
    memcpy(last, lk.mv_data, sizeof(last));
  rc = put_history_sorted(c, e, n, last, have, err);
  mdb_cursor_close(c);
  if (rc != CTKN_OK || (rc = put_positions(t, e, n, err)) != CTKN_OK)
    return rc;
  return ctkn__store_put_events(t, e, n, err);
}

/* ---- reads -------------------------------------------------------------- */

/* A history value read strictly: partition and offset in range. */
static bool read_history(const MDB_val *v, int64_t *partition, int64_t *offset,
                         struct ctkn__sv_span *body)
{
  return ctkn__sv_history_read(v->mv_data, v->mv_size, NULL, partition, offset,
                               body) == CTKN_OK &&
         *partition >= 0 && *partition < CTKN_STORE_MAX_PARTITIONS &&
         *offset >= 0;
}

/* Walk id's entries from the cursor's position (rc: its LMDB code). */
static int walk_history(MDB_cursor *c, int rc, const char *id, MDB_val *k,
                        MDB_val *v, ctkn_store_history_cb cb, void *arg,
                        bool *found, struct ctkn_err *err)
{
  struct ctkn__sv_span body;
  int64_t partition, offset;

  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(c, k, v, MDB_NEXT)) {
    if (k->mv_size < CTKN_ID_LEN || memcmp(k->mv_data, id, CTKN_ID_LEN) != 0)
      break;
    if (k->mv_size != HIST_KEY_LEN ||
        !read_history(v, &partition, &offset, &body))
      return ctkn__store_corrupt(err, T_HISTORY);
    *found = true;
    rc = cb(arg, ctkn__get_be((const uint8_t *)k->mv_data + CTKN_ID_LEN, 8),
            (int32_t)partition, offset, body.p, body.n);
    if (rc != 0)
      return rc;
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, "walk history");
  return CTKN_OK;
}

int ctkn_store_history(ctkn_store_txn *t, const char *id,
                       ctkn_store_history_cb cb, void *arg,
                       struct ctkn_err *err)
{
  uint8_t key[HIST_KEY_LEN];
  MDB_val k = {sizeof(key), key}, v;
  MDB_cursor *c;
  bool found = false;
  int rc;

  if (!ctkn__store_has_len(id, CTKN_ID_LEN))
    return ctkn__err(err, CTKN_ENOTFOUND, "no history for this ID");
  hist_key(key, id, 0);
  if ((rc = ctkn__store_cursor(t, T_HISTORY, &c, err)) != CTKN_OK)
    return rc;
  rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
  rc = walk_history(c, rc, id, &k, &v, cb, arg, &found, err);
  mdb_cursor_close(c);
  if (rc == CTKN_OK && !found)
    return ctkn__err(err, CTKN_ENOTFOUND, "no history for this ID");
  return rc;
}

/* The positions entry of partition at offset or the first after it, into
 * *v (valid until the txn ends); its history key is at v + 8. */
static int find_position(ctkn_store_txn *t, int32_t partition, int64_t offset,
                         bool exact, MDB_val *v, struct ctkn_err *err)
{
  uint8_t pk[4], po[8];
  MDB_val k = {sizeof(pk), pk};
  MDB_cursor *c;
  int rc;

  ctkn__put_be32(pk, (uint32_t)partition);
  ctkn__put_be64(po, (uint64_t)offset);
  v->mv_size = sizeof(po);
  v->mv_data = po;
  if ((rc = ctkn__store_cursor(t, T_POSITIONS, &c, err)) != CTKN_OK)
    return rc;
  /* The partition's first entry whose value (offset first) is >= po. */
  rc = mdb_cursor_get(c, &k, v, MDB_GET_BOTH_RANGE);
  mdb_cursor_close(c);
  if (rc == MDB_SUCCESS && v->mv_size != POS_VALUE_LEN)
    return ctkn__store_corrupt(err, T_POSITIONS);
  if (rc == MDB_NOTFOUND ||
      (rc == MDB_SUCCESS && exact && memcmp(v->mv_data, po, sizeof(po)) != 0))
    return ctkn__err(err, CTKN_ENOTFOUND, "no applied event there");
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "positions");
  return CTKN_OK;
}

int ctkn_store_event_at(ctkn_store_txn *t, int32_t partition, int64_t offset,
                        bool exact, struct ctkn_store_event *out,
                        struct ctkn_err *err)
{
  MDB_val v, hk, hv;
  struct ctkn__sv_span body;
  int64_t p, o;
  int rc;

  if ((rc = ctkn__store_check_coord(partition, offset, err)) != CTKN_OK)
    return rc;
  if (t->st->absent[T_POSITIONS])
    return ctkn__err(err, CTKN_ENOTFOUND, "no positions index");
  if ((rc = find_position(t, partition, offset, exact, &v, err)) != CTKN_OK)
    return rc;
  hk.mv_size = HIST_KEY_LEN;
  hk.mv_data = (uint8_t *)v.mv_data + 8;
  rc = mdb_get(t->txn, t->st->dbi[T_HISTORY], &hk, &hv);
  if (rc != MDB_SUCCESS)
    return rc == MDB_NOTFOUND ? ctkn__store_corrupt(err, T_POSITIONS)
                              : ctkn__store_lmdb_err(err, rc, "history");
  if (ctkn__sv_history_read(hv.mv_data, hv.mv_size, NULL, &p, &o, &body) !=
          CTKN_OK ||
      p != partition || o != (int64_t)ctkn__get_be(v.mv_data, 8))
    return ctkn__store_corrupt(err, T_HISTORY);
  memcpy(out->id, hk.mv_data, CTKN_ID_LEN);
  out->id[CTKN_ID_LEN] = '\0';
  out->version = ctkn__get_be((const uint8_t *)hk.mv_data + CTKN_ID_LEN, 8);
  out->partition = partition;
  out->offset = o;
  out->value = body.p;
  out->len = body.n;
  return CTKN_OK;
}
