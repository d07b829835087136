/*
 * kv.c - the side tables whose keys and values other modules define
 * (ctkn_store_kv_*: settings.c, notify.c), copying the process-local ones
 * into another projection, and snapshots.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_int.h"

/* ctkn_store_kv_*()'s tables, by enum ctkn_store_table. */
static const int kv_tables[] = {[CTKN_TABLE_POSITIONS] = T_POSITIONS,
                                [CTKN_TABLE_DESTINATIONS] = T_DEST,
                                [CTKN_TABLE_DEST_START] = T_DEST_START,
                                [CTKN_TABLE_SETTINGS_OFFSETS] = T_SET_OFFSETS,
                                [CTKN_TABLE_SETTINGS_LOG] = T_SET_LOG,
                                [CTKN_TABLE_NOTIFICATIONS] = T_NTF,
                                [CTKN_TABLE_ATTEMPTS] = T_ATTEMPTS,
                                [CTKN_TABLE_CURSORS] = T_CURSORS,
                                [CTKN_TABLE_QUEUE] = T_QUEUE,
                                [CTKN_TABLE_TRUST] = T_TRUST,
                                [CTKN_TABLE_API_KEYS] = T_AKEYS,
                                [CTKN_TABLE_API_KEY_HASHES] = T_AKEY_HASH,
                                [CTKN_TABLE_DELIVERIES] = T_DLV,
                                [CTKN_TABLE_DELIVERY_ATTEMPTS] = T_DLV_ATT,
                                [CTKN_TABLE_DELIVERY_OFFSETS] = T_DLV_OFFSETS,
                                [CTKN_TABLE_DELIVERY_LOG] = T_DLV_LOG};

static int kv_table(ctkn_store_txn *t, enum ctkn_store_table table, int *out,
                    struct ctkn_err *err)
{
  if (table == CTKN_TABLE_POSITIONS) /* its own layout: event_at() */
    return ctkn__err(err, CTKN_EINTERNAL, "positions: use ctkn_store_event_at");
  if ((unsigned)table >= CTKN__ARRAY_LEN(kv_tables))
    return ctkn__err(err, CTKN_EINTERNAL, "no table %d", (int)table);
  *out = kv_tables[table];
  return t->st->absent[*out] ? CTKN_ENOTFOUND : CTKN_OK;
}

static int kv_key(ctkn_store_txn *t, size_t klen, struct ctkn_err *err)
{
  if (klen == 0 || klen > (size_t)mdb_env_get_maxkeysize(t->st->env))
    return ctkn__err(err, CTKN_EINTERNAL, "key of %zu bytes", klen);
  return CTKN_OK;
}

int ctkn_store_kv_get(ctkn_store_txn *t, enum ctkn_store_table table,
                      const void *key, size_t klen, const void **val,
                      size_t *vlen, struct ctkn_err *err)
{
  MDB_val k = {klen, (void *)key}, v;
  int tb = 0, rc;

  if ((rc = kv_table(t, table, &tb, err)) != CTKN_OK)
    return rc == CTKN_ENOTFOUND ? ctkn__err(err, rc, "not found") : rc;
  if ((rc = kv_key(t, klen, err)) != CTKN_OK)
    return rc;
  rc = mdb_get(t->txn, t->st->dbi[tb], &k, &v);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "not found in %s",
                     ctkn__store_table_names[tb]);
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, ctkn__store_table_names[tb]);
  *val = v.mv_data;
  *vlen = v.mv_size;
  return CTKN_OK;
}

int ctkn_store_kv_put(ctkn_store_txn *t, enum ctkn_store_table table,
                      const void *key, size_t klen, const void *val,
                      size_t vlen, struct ctkn_err *err)
{
  MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
  int tb = 0, rc;

  if ((rc = ctkn__store_need_write(t, err)) != CTKN_OK ||
      (rc = kv_table(t, table, &tb, err)) != CTKN_OK ||
      (rc = kv_key(t, klen, err)) != CTKN_OK)
    return rc;
  rc = mdb_put(t->txn, t->st->dbi[tb], &k, &v, 0);
  return rc == MDB_SUCCESS
             ? CTKN_OK
             : ctkn__store_lmdb_err(err, rc, ctkn__store_table_names[tb]);
}

int ctkn_store_kv_del(ctkn_store_txn *t, enum ctkn_store_table table,
                      const void *key, size_t klen, struct ctkn_err *err)
{
  MDB_val k = {klen, (void *)key};
  int tb = 0, rc;

  if ((rc = ctkn__store_need_write(t, err)) != CTKN_OK ||
      (rc = kv_table(t, table, &tb, err)) != CTKN_OK ||
      (rc = kv_key(t, klen, err)) != CTKN_OK)
    return rc;
  rc = mdb_del(t->txn, t->st->dbi[tb], &k, NULL);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "not found in %s",
                     ctkn__store_table_names[tb]);
  return rc == MDB_SUCCESS
             ? CTKN_OK
             : ctkn__store_lmdb_err(err, rc, ctkn__store_table_names[tb]);
}

int ctkn_store_kv_walk(ctkn_store_txn *t, enum ctkn_store_table table,
                       const void *from, size_t flen, size_t plen,
                       ctkn_store_kv_cb cb, void *arg, struct ctkn_err *err)
{
  MDB_val k = {flen, (void *)from}, v;
  MDB_cursor *c;
  int tb = 0, rc;

  if (plen > flen)
    return ctkn__err(err, CTKN_EINTERNAL, "prefix longer than the key");
  if ((rc = kv_table(t, table, &tb, err)) == CTKN_ENOTFOUND)
    return CTKN_OK; /* an absent table is empty */
  if (rc != CTKN_OK || (flen > 0 && (rc = kv_key(t, flen, err)) != CTKN_OK))
    return rc;
  if ((rc = ctkn__store_cursor(t, tb, &c, err)) != CTKN_OK)
    return rc;
  rc = mdb_cursor_get(c, &k, &v, flen > 0 ? MDB_SET_RANGE : MDB_FIRST);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (plen > 0 && (k.mv_size < plen || memcmp(k.mv_data, from, plen) != 0))
      break;
    if ((rc = cb(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != 0) {
      mdb_cursor_close(c);
      return rc;
    }
  }
  mdb_cursor_close(c);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, ctkn__store_table_names[tb]);
  return CTKN_OK;
}

/* The cursor at the last key < before (blen 0: the last key). */
static int last_before(MDB_cursor *c, const void *before, size_t blen,
                       MDB_val *k, MDB_val *v)
{
  int rc;

  if (blen == 0)
    return mdb_cursor_get(c, k, v, MDB_LAST);
  k->mv_size = blen;
  k->mv_data = (void *)before;
  rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE); /* first key >= before */
  if (rc == MDB_NOTFOUND)
    return mdb_cursor_get(c, k, v, MDB_LAST);
  return rc == MDB_SUCCESS ? mdb_cursor_get(c, k, v, MDB_PREV) : rc;
}

int ctkn_store_kv_walk_back(ctkn_store_txn *t, enum ctkn_store_table table,
                            const void *before, size_t blen,
                            ctkn_store_kv_cb cb, void *arg,
                            struct ctkn_err *err)
{
  MDB_val k, v;
  MDB_cursor *c;
  int tb = 0, rc;

  if ((rc = kv_table(t, table, &tb, err)) == CTKN_ENOTFOUND)
    return CTKN_OK; /* an absent table is empty */
  if (rc != CTKN_OK || (blen > 0 && (rc = kv_key(t, blen, err)) != CTKN_OK))
    return rc;
  if ((rc = ctkn__store_cursor(t, tb, &c, err)) != CTKN_OK)
    return rc;
  for (rc = last_before(c, before, blen, &k, &v); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_PREV)) {
    if ((rc = cb(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != 0) {
      mdb_cursor_close(c);
      return rc;
    }
  }
  mdb_cursor_close(c);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, ctkn__store_table_names[tb]);
  return CTKN_OK;
}

int ctkn_store_kv_count(ctkn_store_txn *t, enum ctkn_store_table table,
                        int64_t *n, struct ctkn_err *err)
{
  MDB_stat s;
  int tb = 0, rc;

  *n = 0;
  if ((rc = kv_table(t, table, &tb, err)) == CTKN_ENOTFOUND)
    return CTKN_OK;
  if (rc != CTKN_OK)
    return rc;
  if ((rc = mdb_stat(t->txn, t->st->dbi[tb], &s)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, ctkn__store_table_names[tb]);
  *n = (int64_t)s.ms_entries;
  return CTKN_OK;
}

/* Copy table tb of from into to, entry by entry. */
static int copy_table(ctkn_store_txn *from, ctkn_store_txn *to, int tb,
                      struct ctkn_err *err)
{
  MDB_cursor *c;
  MDB_val k, v;
  int rc;

  if ((rc = ctkn__store_cursor(from, tb, &c, err)) != CTKN_OK)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if ((rc = mdb_put(to->txn, to->st->dbi[tb], &k, &v, 0)) != MDB_SUCCESS)
      break;
  }
  mdb_cursor_close(c);
  if (rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, ctkn__store_table_names[tb]);
  return CTKN_OK;
}

int ctkn__store_copy_local(struct ctkn_store_txn *from,
                           struct ctkn_store_txn *to, struct ctkn_err *err)
{
  static const int local[] = {T_NTF, T_ATTEMPTS, T_CURSORS, T_QUEUE};
  int rc;

  if ((rc = ctkn__store_need_write(to, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < CTKN__ARRAY_LEN(local); i++) {
    int tb = local[i];
    if (from->st->absent[tb] || to->st->absent[tb])
      continue;
    if ((rc = copy_table(from, to, tb, err)) != CTKN_OK)
      return rc;
  }
  return CTKN_OK;
}

int ctkn_store_snapshot(ctkn_store *st, const char *dir, struct ctkn_err *err)
{
  char path[4200], partial[4224];
  struct stat sb;
  bool made = stat(dir, &sb) != 0;
  int rc, fd;

  if ((rc = ctkn__store_mkdir_p(dir, err)) != CTKN_OK)
    return rc;
  snprintf(path, sizeof(path), "%s/data.mdb", dir);
  if (stat(path, &sb) == 0)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "%s already holds a projection; snapshot into a new "
                     "directory",
                     dir);
  /* The copy is written under another name and linked into place once
   * it is whole and synced: a copy cut short (a full disk, a signal)
   * never sits at data.mdb, where every command would take it for a
   * projection (and LMDB would fault reading past its end). */
  snprintf(partial, sizeof(partial), "%s/data.mdb.XXXXXX", dir);
  if ((fd = mkstemp(partial)) < 0) {
    rc = errno;
  } else {
    /* mdb_env_copyfd2 copies from one read transaction: a consistent
     * state with the offsets that produced it, while writers go on.
     * Compacting leaves out free pages. */
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    rc = mdb_env_copyfd2(st->env, fd, MDB_CP_COMPACT);
    if (rc == MDB_SUCCESS && fsync(fd) != 0)
      rc = errno;
    if (close(fd) != 0 && rc == MDB_SUCCESS)
      rc = errno;
    /* link, not rename: never over a snapshot that finished meanwhile */
    if (rc == MDB_SUCCESS && link(partial, path) != 0)
      rc = errno;
    unlink(partial);
  }
  if (rc != MDB_SUCCESS && made)
    rmdir(dir);
  if (rc == EEXIST)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "%s already holds a projection; snapshot into a new "
                     "directory",
                     dir);
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "snapshot");
  return CTKN_OK;
}

/* ---- pauses: partitions stopped at a record of a newer schema --------- */

#define PAUSE_KEY_LEN 9 /* "pause" + partition (be32) */

static void pause_key(int32_t p, uint8_t k[PAUSE_KEY_LEN])
{
  memcpy(k, "pause", 5);
  ctkn__put_be32(k + 5, (uint32_t)p);
}

int ctkn_store_set_pause(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                         int schema, struct ctkn_err *err)
{
  uint8_t k[PAUSE_KEY_LEN], v[12];

  pause_key(partition, k);
  ctkn__put_be64(v, (uint64_t)offset);
  ctkn__put_be32(v + 8, (uint32_t)schema);
  return ctkn_store_kv_put(txn, CTKN_TABLE_TRUST, k, sizeof(k), v, sizeof(v),
                           err);
}

int ctkn_store_clear_pause(ctkn_store_txn *txn, int32_t partition, int64_t next,
                           struct ctkn_err *err)
{
  uint8_t k[PAUSE_KEY_LEN];
  const void *v = NULL;
  size_t n = 0;
  int rc;

  pause_key(partition, k);
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_TRUST, k, sizeof(k), &v, &n, err);
  if (rc == CTKN_ENOTFOUND)
    return CTKN_OK;
  if (rc != CTKN_OK)
    return rc;
  if (n == 12 && (int64_t)ctkn__get_be(v, 8) >= next)
    return CTKN_OK; /* still below the record it stopped at */
  return ctkn_store_kv_del(txn, CTKN_TABLE_TRUST, k, sizeof(k), err);
}

struct first_pause {
  struct ctkn_store_pause *out;
};

static int note_pause(void *arg, const void *key, size_t klen, const void *val,
                      size_t vlen)
{
  struct first_pause *f = arg;

  if (klen != PAUSE_KEY_LEN || vlen != 12)
    return 0;
  f->out->partition = (int32_t)ctkn__get_be((const uint8_t *)key + 5, 4);
  f->out->offset = (int64_t)ctkn__get_be(val, 8);
  f->out->schema = (int)ctkn__get_be((const uint8_t *)val + 8, 4);
  return 1; /* the first is enough */
}

int ctkn_store_first_pause(ctkn_store_txn *txn, struct ctkn_store_pause *out,
                           struct ctkn_err *err)
{
  struct first_pause f = {out};
  int rc;

  out->partition = -1;
  rc = ctkn_store_kv_walk(txn, CTKN_TABLE_TRUST, "pause", 5, 5, note_pause, &f,
                          err);
  if (rc == 1 || rc == CTKN_ENOTFOUND)
    return CTKN_OK; /* found one; or no table in an older projection */
  return rc;
}

int ctkn_store_get_pause(ctkn_store_txn *txn, int32_t partition, bool *paused,
                         struct ctkn_store_pause *out, struct ctkn_err *err)
{
  uint8_t k[PAUSE_KEY_LEN];
  const void *v = NULL;
  size_t n = 0; /* GCC -O2 cannot see that kv_get sets both on CTKN_OK */
  int rc;

  *paused = false;
  pause_key(partition, k);
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_TRUST, k, sizeof(k), &v, &n, err);
  if (rc == CTKN_ENOTFOUND)
    return CTKN_OK;
  if (rc != CTKN_OK)
    return rc;
  *paused = true;
  out->partition = partition;
  out->offset = n == 12 ? (int64_t)ctkn__get_be(v, 8) : -1;
  out->schema = n == 12 ? (int)ctkn__get_be((const uint8_t *)v + 8, 4) : 0;
  return CTKN_OK;
}

int ctkn_store_is_paused(ctkn_store_txn *txn, int32_t partition, bool *paused,
                         struct ctkn_err *err)
{
  uint8_t k[PAUSE_KEY_LEN];
  const void *v;
  size_t n;
  int rc = CTKN_ENOTFOUND;

  *paused = false;
  for (int i = 0; i < 2 && rc == CTKN_ENOTFOUND; i++) {
    pause_key(i == 0 ? partition : CTKN_STORE_PAUSE_ALL, k);
    rc = ctkn_store_kv_get(txn, CTKN_TABLE_TRUST, k, sizeof(k), &v, &n, err);
  }
  if (rc == CTKN_OK)
    *paused = true;
  return rc == CTKN_ENOTFOUND ? CTKN_OK : rc;
}
