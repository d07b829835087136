/*
 * audit.c - the stored notifications (notify.h's audit and replay), and
 * the notifier's side of a replay: picking queued ones up.
 *
 * A notification is stored by the notifier that handled it, in its own
 * projection; its payload is never stored but rendered again from the
 * event in history, so the bytes sent on a replay are the bytes sent the
 * first time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/delivery.h"
#include "notify_int.h"

#define REPLAYS_PER_SCAN 64 /* queued replays picked up per scan */

int ctkn_notification_get(ctkn_store_txn *txn, const char *id,
                          struct ctkn_notification *out, struct ctkn_err *err)
{
  struct ctkn_err derr;
  const void *v;
  size_t vlen;
  int rc;

  if (!ctkn_id_valid("ntf_", id))
    return ctkn__err_field(err, CTKN_EINVAL, "id", CTKN_ID_RULE("ntf_"));
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_NOTIFICATIONS, id, CTKN_NTF_ID_LEN, &v,
                         &vlen, err);
  if (rc == CTKN_ENOTFOUND)
    return ctkn__err(err, rc,
                     "no notification %s in this projection (notifications "
                     "are kept by the notifier that handled them)",
                     id);
  if (rc != CTKN_OK)
    return rc;
  if ((rc = ctkn_notification_decode(v, vlen, out, &derr)) != CTKN_OK)
    return ctkn__err(err, CTKN_ESTORE, "notification %s: %s", id, derr.msg);
  return CTKN_OK;
}

struct list_walk {
  const char *dest;
  unsigned mask;
  ctkn_ntf_cb cb;
  void *arg;
  struct ctkn_err *err;
};

static int list_one(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
  struct list_walk *w = arg;
  struct ctkn_notification n;
  struct ctkn_err derr;
  (void)key;
  (void)klen;

  if (ctkn_notification_decode(val, vlen, &n, &derr) != CTKN_OK)
    return ctkn__err(w->err, CTKN_ESTORE, "notifications: %s", derr.msg);
  if (w->dest != NULL && strcmp(w->dest, n.dest) != 0)
    return 0;
  if (w->mask != 0 && (w->mask & (1u << n.status)) == 0)
    return 0;
  return w->cb(w->arg, &n);
}

int ctkn_notification_list(ctkn_store_txn *txn, const char *dest,
                           unsigned status_mask, ctkn_ntf_cb cb, void *arg,
                           struct ctkn_err *err)
{
  struct ctkn_err scratch;
  struct list_walk w = {dest, status_mask, cb, arg, err ? err : &scratch};

  return ctkn_store_kv_walk(txn, CTKN_TABLE_NOTIFICATIONS, NULL, 0, 0, list_one,
                            &w, err);
}

struct att_walk {
  ctkn_ntf_attempt_cb cb;
  void *arg;
  struct ctkn_err *err;
};

static int att_one(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
  struct att_walk *w = arg;
  struct ctkn_ntf_attempt a;
  struct ctkn_err derr;
  (void)key;
  (void)klen;

  if (ctkn_attempt_decode(val, vlen, &a, &derr) != CTKN_OK)
    return ctkn__err(w->err, CTKN_ESTORE, "notification_attempts: %s",
                     derr.msg);
  return w->cb(w->arg, &a);
}

int ctkn_notification_attempts(ctkn_store_txn *txn, const char *id,
                               ctkn_ntf_attempt_cb cb, void *arg,
                               struct ctkn_err *err)
{
  struct ctkn_notification n;
  struct ctkn_err scratch;
  struct att_walk w = {cb, arg, err ? err : &scratch};
  int rc;

  if ((rc = ctkn_notification_get(txn, id, &n, err)) != CTKN_OK)
    return rc;
  return ctkn_store_kv_walk(txn, CTKN_TABLE_ATTEMPTS, id, CTKN_NTF_ID_LEN,
                            CTKN_NTF_ID_LEN, att_one, &w, err);
}

int ctkn__ntf_load_event(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                         bool exact, struct ctkn_event *ev,
                         struct ctkn_store_event *at, struct ctkn_err *err)
{
  struct ctkn_err derr;
  int rc = ctkn_store_event_at(txn, partition, offset, exact, at, err);

  if (rc != CTKN_OK)
    return rc;
  if ((rc = ctkn_event_decode(at->value, at->len, ev, &derr)) != CTKN_OK)
    return ctkn__err(err, CTKN_ESTORE,
                     "history of %s v%" PRIu64 " does not decode: %s", at->id,
                     at->version, derr.msg);
  return CTKN_OK;
}

int ctkn_notification_payload(ctkn_store_txn *txn,
                              const struct ctkn_notification *n, char **out,
                              struct ctkn_err *err)
{
  struct ctkn_store_event at;
  struct ctkn_event ev;
  int rc;

  *out = NULL;
  if (CTKN_NTF_IS_AKEY(n)) {
    struct ctkn_settings_akey_event ae;
    if ((rc = ctkn_settings_akey_event_at(txn, n->partition, n->offset, true,
                                          &ae, err)) != CTKN_OK)
      return rc;
    if ((*out = ctkn_json_envelope_notified(ae.json, ae.json_len, n->id)) ==
        NULL)
      return ctkn__err(err, CTKN_ENOMEM, "rendering a payload");
    return CTKN_OK;
  }
  if ((rc = ctkn__ntf_load_event(txn, n->partition, n->offset, true, &ev, &at,
                                 err)) != CTKN_OK)
    return rc;
  memcpy(ev.notification_id, n->id, sizeof(ev.notification_id));
  if ((*out = ctkn_json_event(&ev)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "rendering a payload");
  return CTKN_OK;
}

/* n, made into a new replay of itself with the ID new_id. */
static void as_replay(struct ctkn_notification *n, const char *new_id)
{
  memcpy(n->replay_of, n->id, sizeof(n->replay_of));
  memcpy(n->id, new_id, sizeof(n->id));
  n->replay = true;
  n->status = CTKN_NTF_NOT_ATTEMPTED;
  n->attempts = 0;
  n->first_attempt_at = n->last_attempt_at = n->delivered_at = n->retry_at = 0;
  n->last_status = 0;
}

int ctkn_notification_replay(ctkn_store *st, const char *id,
                             char new_id[CTKN_NTF_ID_BUF], struct ctkn_err *err)
{
  struct ctkn_notification n;
  ctkn_store_txn *txn;
  uint8_t *buf = NULL;
  size_t len;
  int rc;

  if ((rc = ctkn_store_begin(st, true, &txn, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_notification_get(txn, id, &n, err)) != CTKN_OK ||
      (rc = ctkn_delivery_replayable(txn, &n, err)) != CTKN_OK)
    goto out;
  if ((rc = ctkn_id_generate("ntf_", ctkn_now_us() / 1000, new_id,
                             CTKN_NTF_ID_BUF)) != CTKN_OK) {
    rc = ctkn__err(err, rc, "generating an ID");
    goto out;
  }
  as_replay(&n, new_id);
  if ((rc = ctkn_notification_encode(&n, &buf, &len, err)) != CTKN_OK ||
      (rc = ctkn_store_kv_put(txn, CTKN_TABLE_NOTIFICATIONS, n.id,
                              CTKN_NTF_ID_LEN, buf, len, err)) != CTKN_OK ||
      (rc = ctkn_store_kv_put(txn, CTKN_TABLE_QUEUE, n.id, CTKN_NTF_ID_LEN, "",
                              0, err)) != CTKN_OK)
    goto out;
  rc = ctkn_store_commit(txn, err);
  txn = NULL;
out:
  ctkn_store_abort(txn);
  free(buf);
  return rc;
}

/* ---- the notifier's side ------------------------------------------------ */

struct queue_scan {
  const struct notifier *nf;
  char (*ids)[CTKN_NTF_ID_BUF];
  size_t n, cap;
  const char *from;           /* resume after this ID ("" from the start) */
  char last[CTKN_NTF_ID_BUF]; /* the last ID the walk looked at */
};

static bool have_replay(const struct notifier *nf, const char *id)
{
  for (size_t j = 0; j < ntf_nreplays(nf); j++) {
    if (strcmp(ntf_replays(nf)[j]->n.id, id) == 0)
      return true;
  }
  return false;
}

/* Collect queued IDs this notifier does not hold yet, up to cap; the ones
 * it holds already (waiting for a retry, or for a destination that no
 * longer takes them) must not fill the scan, or a few dozen stuck replays
 * would keep every later one from ever being picked up. */
static int queue_one(void *arg, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
  struct queue_scan *q = arg;
  char id[CTKN_NTF_ID_BUF];
  (void)val;
  (void)vlen;

  if (klen != CTKN_NTF_ID_LEN)
    return 0;
  if (q->from[0] != '\0' && memcmp(key, q->from, CTKN_NTF_ID_LEN) == 0)
    return 0;
  if (q->n == q->cap)
    return 1; /* full: the next walk resumes after q->last */
  memcpy(id, key, CTKN_NTF_ID_LEN);
  id[CTKN_NTF_ID_LEN] = '\0';
  memcpy(q->last, id, sizeof(q->last));
  if (have_replay(q->nf, id))
    return 0;
  memcpy(q->ids[q->n++], id, sizeof(id));
  return 0;
}

/* Add the queued replay id to the notifier's replays, unless it is there
 * already or no longer loads. */
static int take_replay(struct notifier *nf, ctkn_store_txn *txn, const char *id,
                       struct ctkn_event *ev, struct ctkn_err *err)
{
  struct ctkn_notification n;
  struct ctkn_store_event at;
  struct ntf_entry *e;

  if (have_replay(nf, id))
    return CTKN_OK;
  /* This notifier's own state first (a replay it settled, whose records
   * the projection may not show yet, is not sent again); else the
   * notifications topic's projection, where replays are asked for. */
  if (ctkn_notification_get(txn, id, &n, NULL) == CTKN_OK) {
    if (n.status == CTKN_NTF_DELIVERED || n.status == CTKN_NTF_FAILED)
      return CTKN_OK;
  } else if (ctkn_delivery_get(txn, id, &n, NULL) != CTKN_OK) {
    return CTKN_OK;
  }
  /* A destination removed or paused takes nothing: it stays queued (a
   * resumed one gets it on a later scan) without filling the scan. */
  if (ctkn__ntf_sendable(nf, n.dest) == NULL)
    return CTKN_OK;
  if (CTKN_NTF_IS_AKEY(&n)) {
    /* An API key's event: the holder of AKEY_HOLDER sends it. */
    struct ctkn_settings_akey_event ae;
    if (AKEY_HOLDER >= nf->nparts || !nf->owned[AKEY_HOLDER] ||
        ctkn_settings_akey_event_at(txn, n.partition, n.offset, true, &ae,
                                    NULL) != CTKN_OK)
      return CTKN_OK;
    if (ctkn__buf_reserve(&nf->replays, sizeof(e)) != CTKN_OK)
      return ctkn__err(err, CTKN_ENOMEM, "notify: replays");
    if ((e = ctkn__ntf_akey_entry_new(txn, &ae, n.dest, n.id, err)) == NULL)
      return CTKN_ENOMEM;
    return ctkn__buf_append(&nf->replays, &e, sizeof(e)); /* reserved */
  }
  /* Whichever notifier holds the event's partition sends it. */
  if (n.partition < 0 || n.partition >= nf->nparts || !nf->owned[n.partition] ||
      ctkn__ntf_load_event(txn, n.partition, n.offset, true, ev, &at, NULL) !=
          CTKN_OK)
    return CTKN_OK;
  if (ctkn__buf_reserve(&nf->replays, sizeof(e)) != CTKN_OK)
    return ctkn__err(err, CTKN_ENOMEM, "notify: replays");
  if ((e = ctkn__ntf_entry_new(txn, ev, &at, n.dest, n.id, err)) == NULL)
    return CTKN_ENOMEM;
  return ctkn__buf_append(&nf->replays, &e, sizeof(e)); /* reserved */
}

int ctkn__ntf_load_replays(struct notifier *nf, struct ctkn_err *err)
{
  char ids[REPLAYS_PER_SCAN][CTKN_NTF_ID_BUF], from[CTKN_NTF_ID_BUF] = "";
  struct queue_scan q = {nf, ids, 0, REPLAYS_PER_SCAN, from, ""};
  ctkn_store_txn *txn;
  struct ctkn_event *ev;
  size_t added = 0;
  int64_t now = ctkn_now_us();
  int rc;

  /* A settled replay leaves the queue in the write that records it. */
  if ((rc = ctkn__ntf_flush(nf, true, err)) != CTKN_OK)
    return rc;
  if ((ev = malloc(sizeof(*ev))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify: replay");
  if ((rc = ctkn_store_begin(nf->st, false, &txn, err)) != CTKN_OK) {
    free(ev);
    return rc;
  }
  /* Page through the queue until REPLAYS_PER_SCAN new replays are taken
   * or it ends: queued replays this notifier cannot take (another
   * notifier's partition) must not hide the ones it can. */
  for (;;) {
    bool full;
    q.n = 0;
    rc = ctkn_store_kv_walk(txn, CTKN_TABLE_QUEUE, from, strlen(from), 0,
                            queue_one, &q, err);
    full = rc == 1;
    if (full)
      rc = CTKN_OK;
    for (size_t i = 0; rc == CTKN_OK && i < q.n; i++) {
      size_t before = ntf_nreplays(nf);
      rc = take_replay(nf, txn, ids[i], ev, err);
      /* Only what is due now counts: a replay waiting for its retry is
       * held, and must not keep the ones behind it from being taken. */
      if (rc == CTKN_OK && ntf_nreplays(nf) > before) {
        const struct ntf_entry *e = ntf_replays(nf)[before];
        added += e->n.status == CTKN_NTF_NOT_ATTEMPTED || e->n.retry_at <= now;
      }
    }
    if (rc != CTKN_OK || !full || added >= REPLAYS_PER_SCAN)
      break;
    memcpy(from, q.last, sizeof(from));
  }
  ctkn_store_abort(txn);
  free(ev);
  return rc;
}
