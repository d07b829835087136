/*
 * events.c - the events index: every applied event by its event ID, for
 * GET /events.
 *
 * Key: the event ID (30 bytes), then the history key (token ID, version),
 * so two records that claim one event ID (a forgery, a foreign writer)
 * are two entries, and the index holds exactly one entry per history
 * entry. Value: the type (1 byte) and occurred_at (u64 BE µs), so a
 * filter by type or time reads no history. Event IDs are ULIDs, which
 * sort by their millisecond, so new events append (MDB_APPEND) as history
 * and positions do.
 *
 * Every history write (history.c) puts its entry here in the same txn. A
 * writer that opens a projection whose index count is not history's (one
 * from before the index, or advanced by a build without it) fills it from
 * history by a scan, once (ctkn__store_check_events()): no manual step.
 * A history value that does not decode as an event (only a foreign or
 * corrupt writer puts one) is indexed under 30 zero bytes, so the counts
 * still agree, and never listed. The index is derived: not in the digest.
 *
 * Beside it, setting_events holds the settings topic's events (store.h):
 * key the event ID, then the settings partition (BE u32) and offset (BE
 * u64); value the code (1 byte), occurred_at (u64 BE µs) and the webhook
 * envelope, put by the settings projection (settings.c, which also fills
 * it for a projection from before it). A walk merges the two tables by
 * event ID (ties: the index's first), each from its own cursor.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "store/store_int.h"

/* One entry to put: key and value. */
struct evt {
  uint8_t key[EVT_KEY_LEN];
  uint8_t val[EVT_VALUE_LEN];
};

/* The entry of (id, version) for an event ID (NULL: undecodable). */
static void evt_make(struct evt *x, const char *event_id, int type,
                     int64_t occurred_at, const char *id, uint64_t version)
{
  if (event_id != NULL)
    memcpy(x->key, event_id, CTKN_EVT_ID_LEN);
  else
    memset(x->key, 0, CTKN_EVT_ID_LEN);
  memcpy(x->key + CTKN_EVT_ID_LEN, id, CTKN_ID_LEN);
  ctkn__put_be64(x->key + CTKN_EVT_ID_LEN + CTKN_ID_LEN, version);
  x->val[0] = (uint8_t)type;
  ctkn__put_be64(x->val + 1, (uint64_t)occurred_at);
}

/* The entry of a history entry whose value is given: decoded for its event
 * ID, type and time (an entry that does not decode goes under zeros). */
static void evt_decoded(struct evt *x, const char *id, uint64_t version,
                        const void *value, size_t len)
{
  struct ctkn_event *ev = malloc(sizeof(*ev));
  struct ctkn_err derr;

  if (ev != NULL && ctkn_event_decode(value, len, ev, &derr) == CTKN_OK &&
      ctkn_id_valid("evt_", ev->event_id))
    evt_make(x, ev->event_id, (int)ev->type, ev->occurred_at, id, version);
  else
    evt_make(x, NULL, 0, 0, id, version);
  free(ev);
}

static int evt_cmp(const void *a, const void *b)
{
  return memcmp(((const struct evt *)a)->key, ((const struct evt *)b)->key,
                EVT_KEY_LEN);
}

/* Put sorted entries through c, appending past the table's last key. */
static int put_sorted(MDB_cursor *c, struct evt *x, size_t n)
{
  uint8_t last[EVT_KEY_LEN];
  MDB_val lk, lv;
  int rc = mdb_cursor_get(c, &lk, &lv, MDB_LAST);
  bool have = rc == MDB_SUCCESS && lk.mv_size == EVT_KEY_LEN;

  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return rc;
  if (have)
    memcpy(last, lk.mv_data, sizeof(last));
  for (size_t i = 0; i < n; i++) {
    MDB_val k = {EVT_KEY_LEN, x[i].key}, v = {EVT_VALUE_LEN, x[i].val};
    bool append = !have || memcmp(x[i].key, last, EVT_KEY_LEN) > 0;
    rc = mdb_cursor_put(c, &k, &v, append ? MDB_APPEND : 0);
    if (rc != MDB_SUCCESS)
      return rc;
    if (append) {
      memcpy(last, x[i].key, sizeof(last));
      have = true;
    }
  }
  return MDB_SUCCESS;
}

int ctkn__store_put_events(ctkn_store_txn *t,
                           const struct ctkn_store_history_put *e, size_t n,
                           struct ctkn_err *err)
{
  struct evt one, *x = n == 1 ? &one : malloc(n * sizeof(*x));
  MDB_cursor *c;
  int rc;

  if (n == 0)
    return CTKN_OK;
  if (x == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "events index: out of memory");
  for (size_t i = 0; i < n; i++) {
    if (e[i].event_id[0] != '\0')
      evt_make(&x[i], e[i].event_id, e[i].type, e[i].occurred_at, e[i].id,
               e[i].version);
    else
      evt_decoded(&x[i], e[i].id, e[i].version, e[i].value, e[i].len);
  }
  if (n > 1)
    qsort(x, n, sizeof(*x), evt_cmp);
  rc = mdb_cursor_open(t->txn, t->st->dbi[T_EVENTS], &c);
  if (rc == MDB_SUCCESS) {
    rc = put_sorted(c, x, n);
    mdb_cursor_close(c);
  }
  if (x != &one)
    free(x);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "put events");
}

/* Fill the (empty) index from every history entry, through c. */
static int fill_from_history(MDB_txn *txn, ctkn_store *st, MDB_cursor *ec)
{
  struct ctkn__sv_span body;
  int64_t partition, offset;
  MDB_cursor *c;
  MDB_val k, v;
  size_t used;
  struct evt x;
  int rc = mdb_cursor_open(txn, st->dbi[T_HISTORY], &c);

  if (rc != MDB_SUCCESS)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    char id[CTKN_ID_BUF] = "";
    if (k.mv_size == HIST_KEY_LEN)
      memcpy(id, k.mv_data, CTKN_ID_LEN);
    uint64_t version =
        k.mv_size == HIST_KEY_LEN
            ? ctkn__get_be((const uint8_t *)k.mv_data + CTKN_ID_LEN, 8)
            : 0;
    if (ctkn__sv_history_read(v.mv_data, v.mv_size, &used, &partition, &offset,
                              &body) == CTKN_OK)
      evt_decoded(&x, id, version, body.p, body.n);
    else
      evt_make(&x, NULL, 0, 0, id, version);
    MDB_val xk = {EVT_KEY_LEN, x.key}, xv = {EVT_VALUE_LEN, x.val};
    if ((rc = mdb_cursor_put(ec, &xk, &xv, 0)) != MDB_SUCCESS)
      break;
  }
  mdb_cursor_close(c);
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int ctkn__store_check_events(MDB_txn *txn, ctkn_store *st, struct ctkn_err *err)
{
  MDB_stat hs, es;
  MDB_cursor *ec;
  int rc;

  if ((rc = mdb_stat(txn, st->dbi[T_HISTORY], &hs)) != MDB_SUCCESS ||
      (rc = mdb_stat(txn, st->dbi[T_EVENTS], &es)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "stat events");
  if (hs.ms_entries == es.ms_entries)
    return CTKN_OK;
  ctkn__diag(CTKN_DIAG_INFO, "store",
             "events index: building it from %zu history entries (once)",
             (size_t)hs.ms_entries);
  if ((rc = mdb_drop(txn, st->dbi[T_EVENTS], 0)) != MDB_SUCCESS ||
      (rc = mdb_cursor_open(txn, st->dbi[T_EVENTS], &ec)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "rebuild events");
  rc = fill_from_history(txn, st, ec);
  mdb_cursor_close(ec);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "rebuild events");
}

/* ---- reads -------------------------------------------------------------- */

int ctkn_store_events_count(ctkn_store_txn *t, int64_t *n, struct ctkn_err *err)
{
  MDB_stat s;
  int rc;

  *n = 0;
  if (t->st->absent[T_EVENTS])
    return CTKN_OK;
  if ((rc = mdb_stat(t->txn, t->st->dbi[T_EVENTS], &s)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "stat events");
  *n = (int64_t)s.ms_entries;
  return CTKN_OK;
}

/* Whether an entry of type and time passes f's type mask (over mask,
 * 0: every type, unless none) and time bounds. */
static bool in_bounds(const struct ctkn_store_events_filter *f, int type,
                      int64_t at, unsigned mask)
{
  if (mask != 0 && (type < 0 || type >= 32 || !(mask & (1u << type))))
    return false;
  if (f->has_from && at < f->from_us)
    return false;
  return !(f->has_to && at >= f->to_us);
}

/* Whether the event-topic entry at (k, v) passes f (false also for an
 * undecodable one's zeros); its type and time into *e. */
static bool selected(const struct ctkn_store_events_filter *f, const MDB_val *k,
                     const MDB_val *v, struct ctkn_store_indexed_event *e)
{
  const uint8_t *kb = k->mv_data, *vb = v->mv_data;

  if (kb[0] == 0)
    return false;
  e->type = vb[0];
  e->occurred_at = (int64_t)ctkn__get_be(vb + 1, 8);
  return in_bounds(f, e->type, e->occurred_at, f->type_mask);
}

/* The history entry an index entry names, into e. */
static int load_event(ctkn_store_txn *t, const MDB_val *k,
                      struct ctkn_store_indexed_event *e, struct ctkn_err *err)
{
  const uint8_t *kb = k->mv_data;
  MDB_val hk = {HIST_KEY_LEN, (void *)(kb + CTKN_EVT_ID_LEN)}, hv;
  struct ctkn__sv_span body;
  int64_t p, o;
  int rc = mdb_get(t->txn, t->st->dbi[T_HISTORY], &hk, &hv);

  if (rc == MDB_NOTFOUND)
    return ctkn__store_corrupt(err, T_EVENTS);
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "history");
  if (ctkn__sv_history_read(hv.mv_data, hv.mv_size, NULL, &p, &o, &body) !=
      CTKN_OK)
    return ctkn__store_corrupt(err, T_HISTORY);
  memcpy(e->event_id, kb, CTKN_EVT_ID_LEN);
  e->event_id[CTKN_EVT_ID_LEN] = '\0';
  memcpy(e->ev.id, hk.mv_data, CTKN_ID_LEN);
  e->ev.id[CTKN_ID_LEN] = '\0';
  e->ev.version = ctkn__get_be(kb + CTKN_EVT_ID_LEN + CTKN_ID_LEN, 8);
  e->ev.partition = (int32_t)p;
  e->ev.offset = o;
  e->ev.value = body.p;
  e->ev.len = body.n;
  e->json = NULL;
  e->json_len = 0;
  return CTKN_OK;
}

/* A settings event's entry (k, v) into e, when it passes f. */
static bool setting_selected(const struct ctkn_store_events_filter *f,
                             const MDB_val *k, const MDB_val *v,
                             struct ctkn_store_indexed_event *e)
{
  const uint8_t *kb = k->mv_data, *vb = v->mv_data;

  e->type = vb[0];
  e->occurred_at = (int64_t)ctkn__get_be(vb + 1, 8);
  if (!in_bounds(f, e->type, e->occurred_at, f->setting_mask))
    return false;
  memset(&e->ev, 0, sizeof(e->ev));
  memcpy(e->event_id, kb, CTKN_EVT_ID_LEN);
  e->event_id[CTKN_EVT_ID_LEN] = '\0';
  e->ev.partition = (int32_t)ctkn__get_be(kb + CTKN_EVT_ID_LEN, 4);
  e->ev.offset = (int64_t)ctkn__get_be(kb + CTKN_EVT_ID_LEN + 4, 8);
  e->json = (const char *)vb + EVT_VALUE_LEN;
  e->json_len = v->mv_size - EVT_VALUE_LEN;
  return true;
}

/* One table a walk reads: its cursor and where it stands. */
struct source {
  MDB_cursor *c;
  MDB_val k, v;
  int rc;      /* MDB_SUCCESS while (k, v) is its next entry */
  size_t tail; /* key bytes after the event ID */
  int table;   /* T_EVENTS or T_SEVENTS */
};

/* Position s at the walk's first entry (an LMDB code). */
static int walk_start(struct source *s,
                      const struct ctkn_store_events_filter *f)
{
  uint8_t from[CTKN_EVT_ID_LEN + HIST_KEY_LEN];
  bool after = f->after != NULL && f->after[0] != '\0';
  int rc;

  if (!after)
    return mdb_cursor_get(s->c, &s->k, &s->v, f->desc ? MDB_LAST : MDB_FIRST);
  /* Past every entry of the after ID: its 30 bytes, then 0xff (asc); or
   * before its first (desc). */
  memcpy(from, f->after, CTKN_EVT_ID_LEN);
  memset(from + CTKN_EVT_ID_LEN, f->desc ? 0x00 : 0xff, s->tail);
  s->k.mv_size = CTKN_EVT_ID_LEN + s->tail;
  s->k.mv_data = from;
  rc = mdb_cursor_get(s->c, &s->k, &s->v, MDB_SET_RANGE);
  if (!f->desc)
    return rc;
  if (rc == MDB_NOTFOUND)
    return mdb_cursor_get(s->c, &s->k, &s->v, MDB_LAST);
  return rc == MDB_SUCCESS ? mdb_cursor_get(s->c, &s->k, &s->v, MDB_PREV) : rc;
}

/* The source whose entry comes next in f's order; NULL when both are
 * done. On a tie of event IDs the event topic's comes first ascending
 * (and so last descending). */
static struct source *next_source(struct source *s, int n, bool desc)
{
  struct source *best = NULL;

  for (int i = 0; i < n; i++) {
    if (s[i].rc != MDB_SUCCESS)
      continue;
    if (best == NULL) {
      best = &s[i];
      continue;
    }
    int c = memcmp(s[i].k.mv_data, best->k.mv_data, CTKN_EVT_ID_LEN);
    if (desc ? c >= 0 : c < 0)
      best = &s[i];
  }
  return best;
}

/* Whether s's entry is well formed. */
static bool entry_ok(const struct source *s)
{
  if (s->k.mv_size != CTKN_EVT_ID_LEN + s->tail)
    return false;
  return s->table == T_EVENTS ? s->v.mv_size == EVT_VALUE_LEN
                              : s->v.mv_size >= EVT_VALUE_LEN;
}

int ctkn_store_events(ctkn_store_txn *t,
                      const struct ctkn_store_events_filter *f,
                      ctkn_store_events_cb cb, void *arg, struct ctkn_err *err)
{
  struct ctkn_store_indexed_event e;
  struct source src[2], *s;
  int n = 0, rc = CTKN_OK;
  bool stopped = false;

  if (f->after != NULL && f->after[0] != '\0' &&
      !ctkn_id_valid("evt_", f->after))
    return ctkn__err_field(err, CTKN_EINVAL, "after",
                           "must be an event ID (" CTKN_ID_PATTERN("evt_") ")");
  if (!f->skip_tokens && t->st->absent[T_EVENTS])
    return ctkn__err(err, CTKN_ENOTFOUND,
                     "this projection has no events index yet: open it once "
                     "with a writer (ctkn project)");
  memset(src, 0, sizeof(src));
  if (!f->skip_tokens)
    src[n++] = (struct source){.tail = HIST_KEY_LEN, .table = T_EVENTS};
  if (f->setting_mask != 0 && !t->st->absent[T_SEVENTS])
    src[n++] = (struct source){.tail = SEVT_TAIL_LEN, .table = T_SEVENTS};
  for (int i = 0; i < n && rc == CTKN_OK; i++) {
    if ((rc = ctkn__store_cursor(t, src[i].table, &src[i].c, err)) == CTKN_OK)
      src[i].rc = walk_start(&src[i], f);
    else
      n = i;
  }
  while (rc == CTKN_OK && (s = next_source(src, n, f->desc)) != NULL) {
    bool take;
    if (!entry_ok(s)) {
      rc = ctkn__store_corrupt(err, s->table);
      break;
    }
    if (s->table == T_EVENTS) {
      take = selected(f, &s->k, &s->v, &e);
      if (take)
        rc = load_event(t, &s->k, &e, err);
    } else {
      take = setting_selected(f, &s->k, &s->v, &e);
    }
    if (rc == CTKN_OK && take && (rc = cb(arg, &e)) != 0) {
      stopped = rc > 0; /* a full page, not an error */
      break;
    }
    s->rc = mdb_cursor_get(s->c, &s->k, &s->v, f->desc ? MDB_PREV : MDB_NEXT);
  }
  for (int i = 0; i < n; i++) {
    if (rc == CTKN_OK && src[i].rc != MDB_SUCCESS && src[i].rc != MDB_NOTFOUND)
      rc = ctkn__store_lmdb_err(err, src[i].rc, "walk events");
    mdb_cursor_close(src[i].c);
  }
  return stopped ? CTKN_OK : rc;
}

/* ---- the settings topic's events ---------------------------------------- */

int ctkn_store_put_setting_event(ctkn_store_txn *t,
                                 const struct ctkn_store_setting_event *e,
                                 struct ctkn_err *err)
{
  uint8_t key[SEVT_KEY_LEN], *val;
  MDB_val k = {sizeof(key), key}, v;
  int rc;

  if (e->event_id == NULL || !ctkn_id_valid("evt_", e->event_id))
    return ctkn__err_field(err, CTKN_EINVAL, "event_id",
                           "must be an event ID (" CTKN_ID_PATTERN("evt_") ")");
  if (e->code < 0 || e->code >= 32 || e->partition < 0 || e->offset < 0)
    return ctkn__err_field(err, CTKN_EINVAL, "code",
                           "must be 0..31, at a log position");
  if (!t->write || t->st->absent[T_SEVENTS])
    return ctkn__err(err, CTKN_EINTERNAL, "setting events: not writable");
  memcpy(key, e->event_id, CTKN_EVT_ID_LEN);
  ctkn__put_be32(key + CTKN_EVT_ID_LEN, (uint32_t)e->partition);
  ctkn__put_be64(key + CTKN_EVT_ID_LEN + 4, (uint64_t)e->offset);
  if ((val = malloc(EVT_VALUE_LEN + e->len)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "setting events: out of memory");
  val[0] = (uint8_t)e->code;
  ctkn__put_be64(val + 1, (uint64_t)e->occurred_at);
  if (e->len > 0)
    memcpy(val + EVT_VALUE_LEN, e->json, e->len);
  v.mv_size = EVT_VALUE_LEN + e->len;
  v.mv_data = val;
  rc = mdb_put(t->txn, t->st->dbi[T_SEVENTS], &k, &v, 0);
  free(val);
  return rc == MDB_SUCCESS
             ? CTKN_OK
             : ctkn__store_write_err(t->st, err, rc, "put setting events");
}

int ctkn_store_setting_events_count(ctkn_store_txn *t, int64_t *n,
                                    struct ctkn_err *err)
{
  MDB_stat s;
  int rc;

  *n = 0;
  if (t->st->absent[T_SEVENTS])
    return CTKN_OK;
  if ((rc = mdb_stat(t->txn, t->st->dbi[T_SEVENTS], &s)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "stat setting events");
  *n = (int64_t)s.ms_entries;
  return CTKN_OK;
}
