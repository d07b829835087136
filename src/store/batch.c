/*
 * batch.c - the write batch: the one way into tokens and token_index.
 *
 * Every token put (ctkn_store_put()) goes into its write txn's batch,
 * which the txn's first put creates (or ctkn__store_batch(), to guess).
 * The batch buffers token records and index entries in two small hash
 * maps until commit, which writes each table's entries sorted, through one
 * cursor, appending (MDB_APPEND) past the table's last key
 * (put_sorted()). A catch-up's tokens are new and time-ordered (ULIDs;
 * token strings lead with the creation time), so most entries append; a
 * token touched several times in one batch (created, updated, revoked) is
 * written once; the revoked count moves once.
 *
 * Reads through the txn (get, lookup) see the maps first, then the
 * tables; a key past the table's last key at the batch's start is known
 * absent without a lookup. Reads that walk or count the tables write the
 * batch out first (ctkn__store_batch_sync()), and it goes on afterwards.
 *
 * The rules, all in ctkn_store_put() (put_new(), put_update()):
 *   - a new token claims its token string; a string held by another token
 *     (in LMDB or in the batch) is CTKN_ECONFLICT, and nothing of the put
 *     stays;
 *   - a token string never changes, so an update writes only the record,
 *     except a revoke, which rewrites the index entry (it holds the
 *     status): verify answers from that one lookup;
 *   - revoked is terminal: the revoked count moves once per token, when
 *     its index entry turns.
 *
 * Guessing (ctkn__store_batch() with guess): an ID the batch has not seen,
 * read by ctkn__store_get_new(), is taken as absent without a lookup, and
 * a put of that token takes its token string as free likewise. Guessed
 * keys go in with MDB_NOOVERWRITE, and a guessed ID never written is
 * looked up at the flush, so every guess is checked; a wrong one voids
 * the batch (CTKN_ECONFLICT) and the txn must be aborted.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "store/store_int.h"

struct brec { /* a token's record as the batch sees it */
  char id[CTKN_ID_LEN];
  bool exists;  /* false: the token has no record (a cached miss) */
  bool dirty;   /* to write at commit */
  bool guessed; /* taken as absent without a lookup: checked at commit */
  uint32_t off, len, cap; /* the encoded record in the arena */
};

struct bidx { /* a token string's index entry as the batch sees it */
  char token[CTKN_TOKEN_LEN];
  bool exists;
  bool dirty;
  bool guessed;
  uint8_t vlen; /* the stored value's size (INDEX_VALUE_LEN when sound) */
  uint8_t value[INDEX_VALUE_LEN];
};

struct bmap {         /* open addressing over an entry array */
  uint32_t *slot;     /* entry index + 1; 0: empty */
  size_t nslot;       /* a power of two, at least twice n */
  size_t n, size;     /* entries, entry size */
  struct ctkn__buf e; /* the entries: n * size bytes */
};

struct ctkn__store_batch {
  struct bmap recs, idx;
  struct ctkn__buf arena; /* the encoded records */
  int64_t revoked;        /* the count's change */
  bool guess;             /* ctkn__store_get_new() may guess */
  bool wrong;             /* a guess was wrong: the batch is void */
  /* Each table's last key when the batch (re)started: keys past it are
   * not in the table. */
  bool have_last_id, have_last_token;
  char last_id[CTKN_ID_LEN];
  char last_token[CTKN_TOKEN_LEN];
};

/* ---- the hash maps ------------------------------------------------------ */

/* IDs and token strings end in random characters (one generator counts
 * up within a millisecond, so the last ones change most): mix the last 16
 * bytes so that every bit reaches the low ones (splitmix64's finalizer). */
static size_t bmap_hash(const char *key, size_t klen)
{
  uint64_t a, b;

  memcpy(&a, key + klen - 16, 8);
  memcpy(&b, key + klen - 8, 8);
  uint64_t h = a ^ (b << 32 | b >> 32);
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
  return (size_t)(h ^ (h >> 31));
}

static void *bmap_at(const struct bmap *m, size_t i)
{
  return m->e.data + i * m->size;
}

/* The entry for key (klen bytes at the start of each entry), or NULL. */
static void *bmap_find(const struct bmap *m, const char *key, size_t klen)
{
  if (m->nslot == 0)
    return NULL;
  for (size_t i = bmap_hash(key, klen) & (m->nslot - 1);;
       i = (i + 1) & (m->nslot - 1)) {
    uint32_t s = m->slot[i];
    if (s == 0)
      return NULL;
    char *e = bmap_at(m, s - 1);
    if (memcmp(e, key, klen) == 0)
      return e;
  }
}

/* Twice the slots, every entry placed again. */
static int bmap_grow(struct bmap *m, size_t klen)
{
  size_t nslot = m->nslot ? 2 * m->nslot : 2048;
  uint32_t *slot = calloc(nslot, sizeof(*slot));

  if (slot == NULL)
    return -1;
  free(m->slot);
  m->slot = slot;
  m->nslot = nslot;
  for (size_t j = 0; j < m->n; j++) {
    size_t i = bmap_hash(bmap_at(m, j), klen) & (nslot - 1);
    while (slot[i] != 0)
      i = (i + 1) & (nslot - 1);
    slot[i] = (uint32_t)(j + 1);
  }
  return 0;
}

/* A new zeroed entry with key (not present), or NULL when out of memory. */
static void *bmap_add(struct bmap *m, const char *key, size_t klen)
{
  char *e;

  if ((2 * (m->n + 1) > m->nslot && bmap_grow(m, klen) != 0) ||
      (e = ctkn__buf_add(&m->e, m->size)) == NULL)
    return NULL;
  size_t i = bmap_hash(key, klen) & (m->nslot - 1);
  while (m->slot[i] != 0)
    i = (i + 1) & (m->nslot - 1);
  memset(e, 0, m->size);
  memcpy(e, key, klen);
  m->slot[i] = (uint32_t)(++m->n);
  return e;
}

static void bmap_clear(struct bmap *m)
{
  if (m->n > 0)
    memset(m->slot, 0, m->nslot * sizeof(*m->slot));
  m->n = 0;
  ctkn__buf_reset(&m->e);
}

static void bmap_free(struct bmap *m)
{
  free(m->slot);
  ctkn__buf_free(&m->e);
}

/* ---- the batch ----------------------------------------------------------- */

void ctkn__store_batch_free(struct ctkn__store_batch *b)
{
  if (b == NULL)
    return;
  bmap_free(&b->recs);
  bmap_free(&b->idx);
  ctkn__buf_free(&b->arena);
  free(b);
}

/* The last key of table into last, when it has klen bytes (*have);
 * otherwise *have is false and nothing is known absent. */
static int table_last(ctkn_store_txn *t, int table, char *last, size_t klen,
                      bool *have)
{
  MDB_cursor *c;
  MDB_val k, v;
  int rc = mdb_cursor_open(t->txn, t->st->dbi[table], &c);

  *have = false;
  if (rc != MDB_SUCCESS)
    return rc;
  rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  mdb_cursor_close(c);
  if (rc == MDB_NOTFOUND)
    return MDB_SUCCESS;
  if (rc == MDB_SUCCESS && k.mv_size == klen) {
    memcpy(last, k.mv_data, klen);
    *have = true;
  }
  return rc;
}

static int batch_start(ctkn_store_txn *t)
{
  struct ctkn__store_batch *b = t->batch;
  int rc = table_last(t, T_TOKENS, b->last_id, CTKN_ID_LEN, &b->have_last_id);

  if (rc == MDB_SUCCESS)
    rc = table_last(t, T_INDEX, b->last_token, CTKN_TOKEN_LEN,
                    &b->have_last_token);
  return rc;
}

/* Give the write txn t its batch. */
static int batch_open(ctkn_store_txn *t, bool guess, struct ctkn_err *err)
{
  struct ctkn__store_batch *b = calloc(1, sizeof(*b));
  int rc;

  if (b == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  b->recs.size = sizeof(struct brec);
  b->idx.size = sizeof(struct bidx);
  b->guess = guess;
  /* Room for 1024 tokens and 1 MiB of records (the NUL's byte included)
   * at once, so a batch grows a few times at most: each buffer doubles. */
  if (ctkn__buf_reserve(&b->recs.e, 1024 * b->recs.size) != CTKN_OK ||
      ctkn__buf_reserve(&b->idx.e, 1024 * b->idx.size) != CTKN_OK ||
      ctkn__buf_reserve(&b->arena, ((size_t)1 << 20) - 1) != CTKN_OK) {
    ctkn__store_batch_free(b);
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  }
  t->batch = b;
  if ((rc = batch_start(t)) != MDB_SUCCESS) {
    t->batch = NULL;
    ctkn__store_batch_free(b);
    return ctkn__store_lmdb_err(err, rc, "batch");
  }
  return CTKN_OK;
}

int ctkn__store_batch(struct ctkn_store_txn *t, bool guess,
                      struct ctkn_err *err)
{
  int rc;

  if ((rc = ctkn__store_need_write(t, err)) != CTKN_OK)
    return rc;
  if (t->batch != NULL)
    return CTKN_OK;
  return batch_open(t, guess, err);
}

/* Store len bytes as e's record, in place when they fit. */
static int brec_set(struct ctkn__store_batch *b, struct brec *e, const void *p,
                    size_t len)
{
  if (e->cap < len) {
    uint8_t *dst = ctkn__buf_add(&b->arena, len);

    if (dst == NULL)
      return -1;
    e->off = (uint32_t)(dst - (uint8_t *)b->arena.data);
    e->cap = (uint32_t)len;
  }
  memcpy(b->arena.data + e->off, p, len);
  e->len = (uint32_t)len;
  return 0;
}

/* id's entry, loaded from the table when the batch has not seen it. */
static int brec_load(ctkn_store_txn *t, const char *id, bool guess,
                     struct brec **out, struct ctkn_err *err)
{
  struct ctkn__store_batch *b = t->batch;
  struct brec *e = bmap_find(&b->recs, id, CTKN_ID_LEN);
  MDB_val k = {CTKN_ID_LEN, (void *)id}, v;
  int rc = MDB_NOTFOUND;
  bool guessed = false;

  if (e != NULL) {
    *out = e;
    return CTKN_OK;
  }
  if (!b->have_last_id || memcmp(id, b->last_id, CTKN_ID_LEN) <= 0) {
    if (guess && b->guess)
      guessed = true;
    else
      rc = mdb_get(t->txn, t->st->dbi[T_TOKENS], &k, &v);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, "get tokens");
  if ((e = bmap_add(&b->recs, id, CTKN_ID_LEN)) == NULL ||
      (rc == MDB_SUCCESS && brec_set(b, e, v.mv_data, v.mv_size) != 0))
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  e->exists = rc == MDB_SUCCESS;
  e->guessed = guessed;
  *out = e;
  return CTKN_OK;
}

/* token's index entry, loaded from the table when not seen. */
static int bidx_load(ctkn_store_txn *t, const char *token, bool guess,
                     struct bidx **out, struct ctkn_err *err)
{
  struct ctkn__store_batch *b = t->batch;
  struct bidx *e = bmap_find(&b->idx, token, CTKN_TOKEN_LEN);
  MDB_val k = {CTKN_TOKEN_LEN, (void *)token}, v;
  int rc = MDB_NOTFOUND;
  bool guessed = false;

  if (e != NULL) {
    *out = e;
    return CTKN_OK;
  }
  if (!b->have_last_token ||
      memcmp(token, b->last_token, CTKN_TOKEN_LEN) <= 0) {
    if (guess)
      guessed = true;
    else
      rc = mdb_get(t->txn, t->st->dbi[T_INDEX], &k, &v);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, "get token_index");
  if ((e = bmap_add(&b->idx, token, CTKN_TOKEN_LEN)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  e->guessed = guessed;
  if (rc == MDB_SUCCESS) {
    e->exists = true;
    /* A value of another size is corrupt; keep what tells it apart. */
    e->vlen = (uint8_t)(v.mv_size < INDEX_VALUE_LEN   ? v.mv_size
                        : v.mv_size > INDEX_VALUE_LEN ? INDEX_VALUE_LEN + 1
                                                      : INDEX_VALUE_LEN);
    memcpy(e->value, v.mv_data,
           v.mv_size < INDEX_VALUE_LEN ? v.mv_size : INDEX_VALUE_LEN);
  }
  *out = e;
  return CTKN_OK;
}

/* The index value is the ID and the status, so that verify answers from
 * one lookup. */
static void bidx_set(struct bidx *e, const char *id, ctkn_status status)
{
  e->exists = true;
  e->dirty = true;
  e->vlen = INDEX_VALUE_LEN;
  memcpy(e->value, id, CTKN_ID_LEN);
  e->value[CTKN_ID_LEN] = (uint8_t)status;
}

/* ---- puts ------------------------------------------------------------- */

static int brec_write(struct ctkn__store_batch *b, struct brec *e,
                      const uint8_t *buf, size_t len, struct ctkn_err *err)
{
  if (brec_set(b, e, buf, len) != 0)
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  e->exists = e->dirty = true;
  return CTKN_OK;
}

/* An update of a token that has a record: only a revoke touches the
 * index, and the count moves once, when the entry turns. */
static int put_update(ctkn_store_txn *t, const struct ctkn_token *tok,
                      struct brec *e, const uint8_t *buf, size_t len,
                      struct ctkn_err *err)
{
  struct ctkn__store_batch *b = t->batch;
  struct bidx *x;
  int rc;

  if ((rc = brec_write(b, e, buf, len, err)) != CTKN_OK)
    return rc;
  if (tok->status != CTKN_STATUS_REVOKED)
    return CTKN_OK;
  if ((rc = bidx_load(t, tok->token, false, &x, err)) != CTKN_OK)
    return rc;
  bool turned = !x->exists || x->vlen != INDEX_VALUE_LEN ||
                x->value[CTKN_ID_LEN] != CTKN_STATUS_REVOKED;
  bidx_set(x, tok->id, tok->status);
  if (turned)
    b->revoked++;
  return CTKN_OK;
}

/* CTKN_ECONFLICT: x, a token string's entry, belongs to another token. */
static int held_by_another(const struct bidx *x, struct ctkn_err *err)
{
  char other[CTKN_ID_BUF];

  snprintf(other, sizeof(other), "%.*s",
           x->vlen < CTKN_ID_LEN ? (int)x->vlen : CTKN_ID_LEN,
           (const char *)x->value);
  return ctkn__err_field(err, CTKN_ECONFLICT, "token",
                         "token string already belongs to %s", other);
}

/* A token without a record claims its token string. */
static int put_new(ctkn_store_txn *t, const struct ctkn_token *tok,
                   struct brec *e, const uint8_t *buf, size_t len,
                   struct ctkn_err *err)
{
  struct ctkn__store_batch *b = t->batch;
  const char *id = tok->id;
  struct bidx *x;
  int rc;

  /* A token guessed new claims its string on a guess too. */
  if ((rc = bidx_load(t, tok->token, e->guessed, &x, err)) != CTKN_OK)
    return rc;
  if (x->exists &&
      (x->vlen != INDEX_VALUE_LEN || memcmp(x->value, id, CTKN_ID_LEN) != 0))
    return held_by_another(x, err);
  if ((rc = brec_write(b, e, buf, len, err)) != CTKN_OK || x->exists)
    return rc; /* x->exists: the entry is the token's own already */
  bidx_set(x, id, tok->status);
  if (tok->status == CTKN_STATUS_REVOKED)
    b->revoked++;
  return CTKN_OK;
}

int ctkn_store_put(ctkn_store_txn *t, const struct ctkn_record *rec,
                   struct ctkn_err *err)
{
  return ctkn__store_put_token(t, &rec->token, rec->version, rec->partition,
                               rec->offset, err);
}

int ctkn__store_put_token(struct ctkn_store_txn *t,
                          const struct ctkn_token *tok, uint64_t version,
                          int32_t partition, int64_t offset,
                          struct ctkn_err *err)
{
  uint8_t buf[CTKN_RECORD_MAX];
  struct brec *e;
  size_t len;
  int rc;

  if ((rc = ctkn__store_need_write(t, err)) != CTKN_OK)
    return rc;
  if (!ctkn__store_has_len(tok->id, CTKN_ID_LEN))
    return ctkn__err_field(err, CTKN_EINVAL, "id", "an ID has %d characters",
                           CTKN_ID_LEN);
  if (!ctkn__store_has_len(tok->token, CTKN_TOKEN_LEN))
    return ctkn__err_field(err, CTKN_EINVAL, "token",
                           "a token string has %d characters", CTKN_TOKEN_LEN);
  if ((rc = ctkn__record_encode_parts(tok, version, partition, offset, buf,
                                      sizeof(buf), &len, err)) != CTKN_OK ||
      (t->batch == NULL && (rc = batch_open(t, false, err)) != CTKN_OK) ||
      (rc = brec_load(t, tok->id, false, &e, err)) != CTKN_OK)
    return rc;
  if (e->exists)
    return put_update(t, tok, e, buf, len, err);
  return put_new(t, tok, e, buf, len, err);
}

/* ---- reads ------------------------------------------------------------- */

int ctkn__store_batch_get(ctkn_store_txn *t, const char *id, bool guess,
                          struct ctkn_record *out, struct ctkn_err *err)
{
  struct brec *e = NULL;
  int rc = brec_load(t, id, guess, &e, err);

  if (rc != CTKN_OK)
    return rc;
  if (!e->exists)
    return ctkn__err(err, CTKN_ENOTFOUND, "no token has this ID");
  MDB_val v = {e->len, t->batch->arena.data + e->off};
  return ctkn__store_decode_record(&v, id, out, err);
}

int ctkn__store_get_new(struct ctkn_store_txn *t, const char *id,
                        struct ctkn_record *out, struct ctkn_err *err)
{
  if (t->batch == NULL || !ctkn__store_has_len(id, CTKN_ID_LEN))
    return ctkn_store_get(t, id, out, err);
  return ctkn__store_batch_get(t, id, true, out, err);
}

int ctkn__store_batch_lookup(ctkn_store_txn *t, const char *token, MDB_val *v)
{
  struct bidx *e = bmap_find(&t->batch->idx, token, CTKN_TOKEN_LEN);

  if (e == NULL)
    return CTKN__STORE_UNSEEN;
  if (!e->exists)
    return MDB_NOTFOUND;
  v->mv_size = e->vlen;
  v->mv_data = e->value;
  return MDB_SUCCESS;
}

/* ---- writing the batch out ---------------------------------------------- */

static int brec_cmp(const void *a, const void *b)
{
  return memcmp(*(const struct brec *const *)a, *(const struct brec *const *)b,
                CTKN_ID_LEN);
}

static int bidx_cmp(const void *a, const void *b)
{
  return memcmp(*(const struct bidx *const *)a, *(const struct bidx *const *)b,
                CTKN_TOKEN_LEN);
}

/* A key taken as absent goes in with MDB_NOOVERWRITE: MDB_KEYEXIST says
 * the guess was wrong. */
static unsigned brec_val(const void *arena, const void *p, MDB_val *v)
{
  const struct brec *e = p;

  v->mv_size = e->len;
  v->mv_data = (uint8_t *)arena + e->off;
  return e->guessed ? MDB_NOOVERWRITE : 0;
}

static unsigned bidx_val(const void *ctx, const void *p, MDB_val *v)
{
  const struct bidx *e = p;

  (void)ctx;
  v->mv_size = INDEX_VALUE_LEN;
  v->mv_data = (void *)e->value;
  return e->guessed ? MDB_NOOVERWRITE : 0;
}

typedef unsigned (*value_fn)(const void *ctx, const void *e, MDB_val *v);

/* Put n entries, sorted by their first klen bytes (the key), through one
 * cursor, appending from the first key past the table's last one. An
 * LMDB code. */
static int put_sorted(ctkn_store_txn *t, int table, void *const *e, size_t n,
                      size_t klen, const void *ctx, value_fn val)
{
  uint8_t last[512];
  size_t llen = 0;
  MDB_cursor *c;
  MDB_val k, v;
  bool append;
  int rc;

  if (n == 0)
    return MDB_SUCCESS;
  if ((rc = mdb_cursor_open(t->txn, t->st->dbi[table], &c)) != MDB_SUCCESS)
    return rc;
  rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  append = rc == MDB_NOTFOUND;
  if (rc == MDB_SUCCESS) {
    llen = k.mv_size < sizeof(last) ? k.mv_size : sizeof(last);
    memcpy(last, k.mv_data, llen);
  } else if (rc != MDB_NOTFOUND) {
    mdb_cursor_close(c);
    return rc;
  }
  rc = MDB_SUCCESS;
  for (size_t i = 0; i < n && rc == MDB_SUCCESS; i++) {
    if (!append) {
      /* LMDB's order: the bytes, then the length. Sorted, so once past
       * the last key every later one is too. */
      int d = memcmp(e[i], last, klen < llen ? klen : llen);
      append = d > 0 || (d == 0 && klen > llen);
    }
    k.mv_size = klen;
    k.mv_data = e[i];
    unsigned flags = val(ctx, e[i], &v);
    rc = mdb_cursor_put(c, &k, &v, append ? MDB_APPEND : flags);
  }
  mdb_cursor_close(c);
  return rc;
}

/* A failed write of the batch; MDB_KEYEXIST: a guess was wrong. */
static int batch_failed(struct ctkn__store_batch *b, int rc,
                        struct ctkn_err *err, const char *what)
{
  if (rc != MDB_KEYEXIST)
    return ctkn__store_lmdb_err(err, rc, what);
  b->wrong = true;
  return ctkn__err(err, CTKN_ECONFLICT,
                   "batch: a key guessed new was there; apply it again "
                   "without guessing");
}

/* Sort n entries by cmp and put them into table; see put_sorted(). */
static int write_sorted(ctkn_store_txn *t, int table, void **e, size_t n,
                        size_t klen, const void *ctx, value_fn val,
                        int (*cmp)(const void *, const void *),
                        struct ctkn_err *err)
{
  char what[64];
  int rc;

  if (n > 1)
    qsort(e, n, sizeof(*e), cmp);
  rc = put_sorted(t, table, e, n, klen, ctx, val);
  if (rc == MDB_SUCCESS)
    return CTKN_OK;
  snprintf(what, sizeof(what), "put %s", ctkn__store_table_names[table]);
  return batch_failed(t->batch, rc, err, what);
}

/* The records to write into e, in *n. An ID read as absent on a guess but
 * never written (say a create that was rejected for another reason) is
 * looked up now. */
static int collect_recs(ctkn_store_txn *t, void **e, size_t *n,
                        struct ctkn_err *err)
{
  struct ctkn__store_batch *b = t->batch;

  *n = 0;
  for (size_t i = 0; i < b->recs.n; i++) {
    struct brec *r = bmap_at(&b->recs, i);
    if (r->dirty) {
      e[(*n)++] = r;
    } else if (r->guessed) {
      MDB_val rk = {CTKN_ID_LEN, r->id}, rv;
      int rc = mdb_get(t->txn, t->st->dbi[T_TOKENS], &rk, &rv);
      if (rc == MDB_SUCCESS)
        rc = MDB_KEYEXIST;
      if (rc != MDB_NOTFOUND)
        return batch_failed(b, rc, err, "get tokens");
    }
  }
  return CTKN_OK;
}

/* Move the revoked count by d (an LMDB code). */
static int add_revoked(ctkn_store_txn *t, int64_t d)
{
  MDB_val k = ctkn__store_revoked_key, v;
  int64_t n = 0;
  int rc = mdb_get(t->txn, t->st->dbi[T_META], &k, &v);

  if (rc == MDB_SUCCESS && v.mv_size == 8)
    n = (int64_t)ctkn__get_be(v.mv_data, 8);
  else if (rc != MDB_NOTFOUND && rc != MDB_SUCCESS)
    return rc;
  return ctkn__store_put_revoked(t->txn, t->st->dbi[T_META], n + d);
}

/* Write the batch into the tables and start it afresh. */
int ctkn__store_batch_flush(ctkn_store_txn *t, struct ctkn_err *err)
{
  struct ctkn__store_batch *b = t->batch;
  size_t n = b->recs.n > b->idx.n ? b->recs.n : b->idx.n, k = 0;
  void **e;
  int rc;

  if (b->wrong)
    return ctkn__err(err, CTKN_ECONFLICT, "batch: a guess was wrong");
  if ((e = n ? malloc(n * sizeof(*e)) : NULL) == NULL && n > 0)
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  rc = collect_recs(t, e, &k, err);
  if (rc == CTKN_OK)
    rc = write_sorted(t, T_TOKENS, e, k, CTKN_ID_LEN, b->arena.data, brec_val,
                      brec_cmp, err);
  k = 0;
  for (size_t i = 0; rc == CTKN_OK && i < b->idx.n; i++) {
    struct bidx *x = bmap_at(&b->idx, i);
    if (x->dirty)
      e[k++] = x;
  }
  if (rc == CTKN_OK)
    rc = write_sorted(t, T_INDEX, e, k, CTKN_TOKEN_LEN, NULL, bidx_val,
                      bidx_cmp, err);
  free(e);
  if (rc != CTKN_OK)
    return rc;
  if (b->revoked != 0 && (rc = add_revoked(t, b->revoked)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "revoked count");
  bmap_clear(&b->recs);
  bmap_clear(&b->idx);
  ctkn__buf_reset(&b->arena);
  b->revoked = 0;
  if ((rc = batch_start(t)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "batch");
  return CTKN_OK;
}

int ctkn__store_batch_sync(ctkn_store_txn *t, struct ctkn_err *err)
{
  if (t->batch == NULL)
    return CTKN_OK;
  return ctkn__store_batch_flush(t, err);
}

int ctkn__store_batch_write(struct ctkn_store_txn *t, bool *wrong,
                            struct ctkn_err *err)
{
  int rc;

  *wrong = false;
  if (t->batch == NULL)
    return CTKN_OK;
  rc = ctkn__store_batch_flush(t, err);
  *wrong = t->batch->wrong;
  return rc;
}
