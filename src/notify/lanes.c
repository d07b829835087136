/*
 * lanes.c - what the notifier sends, and when (notify_int.h).
 *
 * A lane is one destination on one held partition. Its window holds up
 * to `window` notifications read from the positions table in log order;
 * an entry starts when it is due (never attempted, or its retry time has
 * come) and no earlier unsettled entry of the window is for the same
 * token, so a token's notifications reach a destination in log order.
 * The lane's cursor moves over the settled head of its window only, so
 * nothing below it is ever left unsettled.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "notify_int.h"

/* Keep the first len bytes of b, NUL after them as struct ctkn__buf
 * promises. */
static void buf_keep(struct ctkn__buf *b, size_t len)
{
  b->len = len;
  if (b->data != NULL)
    b->data[len] = '\0';
}

void ctkn_webhook_signature(const char *secret, int64_t ts, const void *body,
                            size_t len, char out[CTKN_SIGNATURE_BUF])
{
  uint8_t mac[CTKN_SHA256_LEN];
  char hex[2 * CTKN_SHA256_LEN + 1];
  char prefix[24];
  int n = snprintf(prefix, sizeof(prefix), "%" PRId64 ":", ts);
  size_t total = (size_t)n + len;
  uint8_t *msg = malloc(total ? total : 1);

  if (msg == NULL) { /* a signature that cannot verify, never a wrong one */
    snprintf(out, CTKN_SIGNATURE_BUF, "ts=%" PRId64 ";h1=", ts);
    return;
  }
  memcpy(msg, prefix, (size_t)n);
  memcpy(msg + n, body, len);
  ctkn_hmac_sha256(secret, strlen(secret), msg, total, mac);
  free(msg);
  ctkn_hex(mac, sizeof(mac), hex);
  snprintf(out, CTKN_SIGNATURE_BUF, "ts=%" PRId64 ";h1=%s", ts, hex);
}

/* ---- destinations, entries, lanes ---------------------------------------- */

struct ntf_dest *ctkn__ntf_find_dest(struct notifier *nf, const char *id)
{
  for (size_t i = 0; i < nf->ndests; i++) {
    if (strcmp(nf->dests[i].d.id, id) == 0)
      return &nf->dests[i];
  }
  return NULL;
}

struct ntf_dest *ctkn__ntf_sendable(struct notifier *nf, const char *id)
{
  struct ntf_dest *d = ctkn__ntf_find_dest(nf, id);
  return d != NULL && d->d.active && d->secret[0] != '\0' ? d : NULL;
}

void ctkn__ntf_entry_free(struct notifier *nf, struct ntf_entry *e)
{
  if (e == NULL)
    return;
  if (e->req != NULL) {
    ctkn__http_cancel(nf->http, e->req);
    nf->inflight--;
  }
  free(e->body);
  free(e);
}

void ctkn__ntf_lane_free(struct notifier *nf, struct ntf_lane *l)
{
  for (int i = 0; i < l->n; i++)
    ctkn__ntf_entry_free(nf, l->win[i]);
  free(l);
}

/* Where a notification's event is, for one that has no stored state. */
struct origin {
  const char *event_id;
  int type;
  const char *entity; /* a token's or an API key's ID */
  uint64_t version;
  int32_t partition;
  int64_t offset;
  int64_t occurred_at;
};

/* An entry for notification ntf_id to dest: its stored state, or from o
 * not yet attempted when it has none. Takes body (NULL: out of memory). */
static struct ntf_entry *entry_new(ctkn_store_txn *txn, const struct origin *o,
                                   const char *dest, const char *ntf_id,
                                   char *body, struct ctkn_err *err)
{
  struct ntf_entry *e;

  if (body == NULL) {
    ctkn__err(err, CTKN_ENOMEM, "notify: body");
    return NULL;
  }
  if ((e = calloc(1, sizeof(*e))) == NULL) {
    free(body);
    ctkn__err(err, CTKN_ENOMEM, "notify: entry");
    return NULL;
  }
  if (ctkn_notification_get(txn, ntf_id, &e->n, NULL) != CTKN_OK) {
    memset(&e->n, 0, sizeof(e->n));
    memcpy(e->n.id, ntf_id, CTKN_NTF_ID_BUF);
    memcpy(e->n.dest, dest, CTKN_DEST_ID_BUF);
    ctkn__strlcpy(e->n.event_id, o->event_id, sizeof(e->n.event_id));
    e->n.type = o->type;
    ctkn__strlcpy(e->n.token_id, o->entity, sizeof(e->n.token_id));
    e->n.version = o->version;
    e->n.partition = o->partition;
    e->n.offset = o->offset;
    e->n.occurred_at = o->occurred_at;
    e->n.status = CTKN_NTF_NOT_ATTEMPTED;
  }
  e->settled =
      e->n.status == CTKN_NTF_DELIVERED || e->n.status == CTKN_NTF_FAILED;
  e->body = body;
  e->blen = strlen(body);
  return e;
}

struct ntf_entry *ctkn__ntf_entry_new(ctkn_store_txn *txn,
                                      const struct ctkn_event *ev,
                                      const struct ctkn_store_event *at,
                                      const char *dest, const char *ntf_id,
                                      struct ctkn_err *err)
{
  const struct origin o = {.event_id = ev->event_id,
                           .type = ev->type,
                           .entity = at->id,
                           .version = at->version,
                           .partition = at->partition,
                           .offset = at->offset,
                           .occurred_at = ev->occurred_at};
  struct ctkn_event copy = *ev;

  memcpy(copy.notification_id, ntf_id, sizeof(copy.notification_id));
  return entry_new(txn, &o, dest, ntf_id, ctkn_json_event(&copy), err);
}

struct ntf_entry *ctkn__ntf_akey_entry_new(
    ctkn_store_txn *txn, const struct ctkn_settings_akey_event *ae,
    const char *dest, const char *ntf_id, struct ctkn_err *err)
{
  const struct origin o = {.event_id = ae->event_id,
                           .type = ae->type,
                           .entity = ae->key_id,
                           .version = ae->version,
                           .partition = ae->partition,
                           .offset = ae->offset,
                           .occurred_at = ae->occurred_at};

  /* The envelope GET /events serves, with this notification's ID. */
  return entry_new(txn, &o, dest, ntf_id,
                   ctkn_json_envelope_notified(ae->json, ae->json_len, ntf_id),
                   err);
}

int ctkn__ntf_reload_dests(struct notifier *nf, bool *changed,
                           struct ctkn_err *err)
{
  struct ctkn_destination *list = NULL;
  ctkn_store_txn *txn;
  size_t n = 0;
  int rc;

  *changed = false;
  if ((rc = ctkn_store_begin(nf->st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_settings_list(txn, &list, &n, err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    return rc;
  bool same = n == nf->ndests;
  for (size_t i = 0; same && i < n; i++)
    same = strcmp(list[i].id, nf->dests[i].d.id) == 0 &&
           list[i].version == nf->dests[i].d.version;
  if (same) {
    free(list);
    return CTKN_OK;
  }
  struct ntf_dest *ds = calloc(n ? n : 1, sizeof(*ds));
  if (ds == NULL) {
    free(list);
    return ctkn__err(err, CTKN_ENOMEM, "notify: destinations");
  }
  for (size_t i = 0; i < n; i++) {
    struct ntf_dest *old = ctkn__ntf_find_dest(nf, list[i].id);
    struct ctkn_err serr;
    ds[i].d = list[i];
    if (old != NULL && old->secret[0] != '\0')
      memcpy(ds[i].secret, old->secret, sizeof(ds[i].secret));
    else if (ctkn_destination_secret(&list[i], nf->key, ds[i].secret, &serr) !=
             CTKN_OK)
      ctkn__diag(CTKN_DIAG_WARN, "notify", "%s; nothing is sent to it",
                 serr.msg);
  }
  for (size_t i = 0; i < nf->ndests; i++)
    ctkn_wipe(nf->dests[i].secret, sizeof(nf->dests[i].secret));
  free(nf->dests);
  free(list);
  nf->dests = ds;
  nf->ndests = n;
  *changed = true;
  return CTKN_OK;
}

/* Free the lanes of partitions no longer held and of destinations no
 * longer live. */
static void drop_lanes(struct notifier *nf)
{
  struct ntf_lane **lanes = ntf_lanes(nf);
  size_t keep = 0, n = ntf_nlanes(nf);

  for (size_t i = 0; i < n; i++) {
    struct ntf_lane *l = lanes[i];
    int32_t held = l->akey ? AKEY_HOLDER : l->partition;
    if (held < nf->nparts && nf->owned[held] &&
        ctkn__ntf_find_dest(nf, l->dest) != NULL)
      lanes[keep++] = l;
    else
      ctkn__ntf_lane_free(nf, l);
  }
  buf_keep(&nf->lanes, keep * sizeof(*lanes));
}

static bool have_lane(const struct notifier *nf, bool akey, int32_t p,
                      const char *dest)
{
  struct ntf_lane **lanes = ntf_lanes(nf);

  for (size_t i = 0; i < ntf_nlanes(nf); i++) {
    if (lanes[i]->akey == akey && lanes[i]->partition == p &&
        strcmp(lanes[i]->dest, dest) == 0)
      return true;
  }
  return false;
}

/* A new lane for dest on p, starting where lease.c says; *txn is begun
 * on first use (the caller aborts it). */
static int add_lane(struct notifier *nf, ctkn_store_txn **txn, bool akey,
                    int32_t p, const char *dest, struct ctkn_err *err)
{
  struct ntf_lane *l;
  int32_t held = akey ? AKEY_HOLDER : p;
  int rc;

  if (!nf->parts[held].fetched)
    ctkn__ntf_fetch_commit(nf, held);
  if (*txn == NULL &&
      (rc = ctkn_store_begin(nf->st, false, txn, err)) != CTKN_OK)
    return rc;
  if ((l = calloc(1, sizeof(*l))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify: lane");
  memcpy(l->dest, dest, sizeof(l->dest));
  l->akey = akey;
  l->partition = p;
  l->cursor = l->scan = akey ? ctkn__ntf_akey_lane_start(nf, *txn, dest, p)
                             : ctkn__ntf_lane_start(nf, *txn, l->dest, p);
  l->cursor_dirty = true;
  if (ctkn__buf_append(&nf->lanes, &l, sizeof(l)) != CTKN_OK) {
    free(l);
    return ctkn__err(err, CTKN_ENOMEM, "notify: lanes");
  }
  return CTKN_OK;
}

int ctkn__ntf_sync_lanes(struct notifier *nf, struct ctkn_err *err)
{
  ctkn_store_txn *txn = NULL;
  int rc = CTKN_OK;

  drop_lanes(nf);
  for (int32_t p = 0; p < nf->nparts && rc == CTKN_OK; p++) {
    if (!nf->owned[p])
      continue;
    for (size_t d = 0; d < nf->ndests && rc == CTKN_OK; d++) {
      const char *id = nf->dests[d].d.id;
      if (!have_lane(nf, false, p, id))
        rc = add_lane(nf, &txn, false, p, id, err);
      /* The settings topic's one partition goes with partition 0. */
      if (rc == CTKN_OK && p == AKEY_HOLDER && !have_lane(nf, true, 0, id))
        rc = add_lane(nf, &txn, true, 0, id, err);
    }
  }
  ctkn_store_abort(txn);
  return rc;
}

/* ---- filling and starting ----------------------------------------------- */

/* Read akey lane l's next api_key.* events into its window. */
static int fill_akey_lane(struct notifier *nf, struct ntf_lane *l,
                          const struct ntf_dest *d, ctkn_store_txn *txn,
                          struct ctkn_err *err)
{
  l->at_end = false;
  while (l->n < nf->o.window) {
    struct ctkn_settings_akey_event ae;
    int rc = ctkn_settings_akey_event_at(txn, l->partition, l->scan, false, &ae,
                                         err);
    if (rc == CTKN_ENOTFOUND) {
      l->at_end = true;
      return CTKN_OK;
    }
    if (rc != CTKN_OK)
      return rc;
    l->scan = ae.offset + 1;
    if ((d->d.events & (1u << ae.type)) == 0) {
      if (l->n == 0) {
        l->cursor = l->scan;
        l->cursor_dirty = true;
      }
      continue;
    }
    char id[CTKN_NTF_ID_BUF];
    ctkn_notification_id(ae.event_id, l->dest, id);
    struct ntf_entry *e = ctkn__ntf_akey_entry_new(txn, &ae, l->dest, id, err);
    if (e == NULL)
      return CTKN_ENOMEM;
    e->lane = l;
    l->win[l->n++] = e;
  }
  return CTKN_OK;
}

/* Read lane l's next events into its window. */
static int fill_lane(struct notifier *nf, struct ntf_lane *l,
                     const struct ntf_dest *d, ctkn_store_txn *txn,
                     struct ctkn_event *ev, struct ctkn_err *err)
{
  if (l->akey)
    return fill_akey_lane(nf, l, d, txn, err);
  l->at_end = false;
  while (l->n < nf->o.window) {
    struct ctkn_store_event at;
    int rc =
        ctkn__ntf_load_event(txn, l->partition, l->scan, false, ev, &at, err);
    if (rc == CTKN_ENOTFOUND) {
      l->at_end = true;
      return CTKN_OK;
    }
    if (rc != CTKN_OK)
      return rc;
    l->scan = at.offset + 1;
    if ((d->d.events & (1u << ev->type)) == 0) {
      if (l->n == 0) {
        l->cursor = l->scan;
        l->cursor_dirty = true;
      }
      continue;
    }
    char id[CTKN_NTF_ID_BUF];
    ctkn_notification_id(ev->event_id, l->dest, id);
    struct ntf_entry *e = ctkn__ntf_entry_new(txn, ev, &at, l->dest, id, err);
    if (e == NULL)
      return CTKN_ENOMEM;
    e->lane = l;
    l->win[l->n++] = e;
  }
  return CTKN_OK;
}

int ctkn__ntf_fill(struct notifier *nf, struct ctkn_err *err)
{
  ctkn_store_txn *txn = NULL;
  struct ctkn_event *ev = NULL;
  int rc = CTKN_OK;

  for (size_t i = 0; i < ntf_nlanes(nf) && rc == CTKN_OK; i++) {
    struct ntf_lane *l = ntf_lanes(nf)[i];
    struct ntf_dest *d = ctkn__ntf_sendable(nf, l->dest);
    if (d == NULL || l->n >= nf->o.window) {
      if (d != NULL)
        l->at_end = false;
      continue;
    }
    if (txn == NULL) {
      if ((ev = malloc(sizeof(*ev))) == NULL)
        return ctkn__err(err, CTKN_ENOMEM, "notify: event");
      if ((rc = ctkn_store_begin(nf->st, false, &txn, err)) != CTKN_OK)
        break;
    }
    rc = fill_lane(nf, l, d, txn, ev, err);
  }
  ctkn_store_abort(txn);
  free(ev);
  return rc;
}

static int start(struct notifier *nf, struct ntf_entry *e,
                 const struct ntf_dest *d, int64_t now_us)
{
  char sig[CTKN_SIGNATURE_BUF];
  struct ctkn__http_post p = {
      .url = d->d.url,
      .body = e->body,
      .len = e->blen,
      .signature = sig,
      .timeout_ms = nf->o.request_timeout_ms,
      .connect_timeout_ms = nf->o.connect_timeout_ms,
      .policy = &nf->policy,
      .tag = e,
  };
  int rc;

  ctkn_webhook_signature(d->secret, now_us / 1000000, e->body, e->blen, sig);
  if ((rc = ctkn__http_start(nf->http, &p, &e->req)) != CTKN_OK)
    return rc;
  e->started_us = now_us;
  nf->inflight++;
  return CTKN_OK;
}

static bool due(const struct ntf_entry *e, int64_t now_us)
{
  return !e->settled && e->req == NULL &&
         (e->n.status == CTKN_NTF_NOT_ATTEMPTED || e->n.retry_at <= now_us);
}

/* Whether the lane's entry k may start now: due, and no earlier unsettled
 * entry for its token in the lane (a token's notifications go in log
 * order). */
static bool ready(const struct ntf_lane *l, int k, int64_t now_us)
{
  const struct ntf_entry *e = l->win[k];

  if (!due(e, now_us))
    return false;
  for (int j = 0; j < k; j++) {
    if (!l->win[j]->settled &&
        strcmp(l->win[j]->n.token_id, e->n.token_id) == 0)
      return false;
  }
  return true;
}

void ctkn__ntf_dispatch(struct notifier *nf, int64_t now_us)
{
  for (size_t i = 0; i < ntf_nlanes(nf); i++) {
    struct ntf_lane *l = ntf_lanes(nf)[i];
    struct ntf_dest *d = ctkn__ntf_sendable(nf, l->dest);
    for (int k = 0; d != NULL && k < l->n; k++) {
      if (ready(l, k, now_us) && start(nf, l->win[k], d, now_us) != CTKN_OK)
        return; /* out of memory: try again on the next round */
    }
  }
  for (size_t i = 0; i < ntf_nreplays(nf); i++) {
    struct ntf_entry *e = ntf_replays(nf)[i];
    struct ntf_dest *d = ctkn__ntf_sendable(nf, e->n.dest);
    if (d != NULL && due(e, now_us))
      start(nf, e, d, now_us);
  }
}

/* ---- settling ------------------------------------------------------------ */

/* Exponential backoff with equal jitter: in [b/2, b], b doubling from the
 * initial delay up to the cap. */
static int64_t backoff_ms(const struct notifier *nf, uint32_t attempts)
{
  int64_t b = nf->o.retry_initial_ms;
  uint32_t r = 0;

  for (uint32_t i = 1; i < attempts && b < nf->o.retry_max_ms; i++)
    b *= 2;
  if (b > nf->o.retry_max_ms)
    b = nf->o.retry_max_ms;
  ctkn_random(&r, sizeof(r));
  return b / 2 + (int64_t)(r % (uint32_t)(b / 2 + 1));
}

/* One diagnostic line per attempt: info when delivered, warn when it will
 * be retried, error when it failed for good. Never a secret. */
static void log_attempt(const struct ntf_entry *e,
                        const struct ctkn_ntf_attempt *a, const char *outcome,
                        enum ctkn_diag_level level)
{
  struct ctkn__buf f = CTKN__BUF_INIT;
  char at[CTKN_TIME_BUF] = "", retry[CTKN_TIME_BUF] = "";
  int rc;

  if (!ctkn__diag_on(level))
    return;
  ctkn_time_format(a->at, at);
  if (e->n.status == CTKN_NTF_NEEDS_RETRY)
    ctkn_time_format(e->n.retry_at, retry);
  rc = ctkn__buf_json_member(&f, "notify", "attempt");
  rc |= ctkn__buf_json_member(&f, "at", at);
  rc |= ctkn__buf_json_member(&f, "notification_id", e->n.id);
  rc |= ctkn__buf_json_member(&f, "destination", e->n.dest);
  rc |= ctkn__buf_json_member(&f, "event_id", e->n.event_id);
  /* As `notification logs` shows them: no status, no error is null. */
  rc |= ctkn__buf_printf(&f, ",\"attempt\":%" PRIu32, a->n);
  rc |= a->status > 0 ? ctkn__buf_printf(&f, ",\"response_code\":%d", a->status)
                      : ctkn__buf_puts(&f, ",\"response_code\":null");
  rc |= ctkn__buf_printf(&f, ",\"latency_ms\":%.3f",
                         (double)a->latency_us / 1000.0);
  rc |= ctkn__buf_json_member(&f, "outcome", outcome);
  rc |= ctkn__buf_json_member(
      &f, "retry_at", e->n.status == CTKN_NTF_NEEDS_RETRY ? retry : NULL);
  rc |= ctkn__buf_json_member(&f, "error", a->error[0] ? a->error : NULL);
  /* A delivery's line may wait to be written with others; a retry or a
   * failure is written at once. */
  if (rc == CTKN_OK && level == CTKN_DIAG_INFO)
    ctkn__diag_fields_later(level, "notify", "attempt", f.data);
  else if (rc == CTKN_OK)
    ctkn__diag_fields(level, "notify", "attempt", f.data);
  ctkn__buf_free(&f);
}

/* Record what became of e's request, into e and the attempt a. */
static void complete(struct notifier *nf, struct ntf_entry *e,
                     const struct ctkn__http_resp *resp, int64_t now_us,
                     struct ctkn_ntf_attempt *a)
{
  int status = resp->status;
  const char *error = resp->error;
  bool ok = error == NULL && status >= 200 && status <= 299;
  enum ctkn_diag_level level = CTKN_DIAG_INFO;
  const char *outcome;

  e->req = NULL;
  nf->inflight--;
  memset(a, 0, sizeof(*a));
  a->n = ++e->n.attempts;
  a->at = e->started_us;
  a->status = status;
  a->latency_us = now_us - e->started_us;
  if (error != NULL)
    snprintf(a->error, sizeof(a->error), "%s", error);
  else if (!ok)
    snprintf(a->error, sizeof(a->error), "HTTP %d", status);
  ctkn__strlcpy(a->content_type, resp->content_type, sizeof(a->content_type));
  a->body_len =
      resp->body_len < CTKN_NTF_BODY_MAX ? resp->body_len : CTKN_NTF_BODY_MAX;
  if (a->body_len > 0)
    memcpy(a->body, resp->body, a->body_len);
  if (e->n.first_attempt_at == 0)
    e->n.first_attempt_at = e->started_us;
  e->n.last_attempt_at = e->started_us;
  e->n.last_status = a->status;
  nf->stats->attempts++;

  if (ok) {
    e->n.status = CTKN_NTF_DELIVERED;
    e->n.delivered_at = now_us;
    e->settled = true;
    outcome = "delivered";
    if (e->lane == NULL)
      nf->stats->replayed++;
    else
      nf->stats->delivered++;
  } else if (now_us - e->n.first_attempt_at >= nf->o.max_age_ms * 1000) {
    e->n.status = CTKN_NTF_FAILED;
    e->settled = true;
    outcome = "failed";
    level = CTKN_DIAG_ERROR;
    nf->stats->failed++;
  } else {
    e->n.status = CTKN_NTF_NEEDS_RETRY;
    e->n.retry_at = now_us + backoff_ms(nf, e->n.attempts) * 1000;
    outcome = "retry";
    level = CTKN_DIAG_WARN;
  }
  e->dirty = true;
  log_attempt(e, a, outcome, level);
}

struct reap_ctx {
  struct notifier *nf;
  int64_t now_us;
  int rc;
};

/* ctkn__http_reap()'s callback: settle the entry, queue its state. */
static void on_done(void *arg, void *tag, const struct ctkn__http_resp *resp)
{
  struct reap_ctx *x = arg;
  struct ntf_entry *e = tag;
  struct ntf_pend *p = ctkn__buf_add(&x->nf->pend, sizeof(*p));

  if (p == NULL) { /* out of memory: the run ends; forget the request */
    e->req = NULL;
    x->nf->inflight--;
    x->rc = CTKN_ENOMEM;
    return;
  }
  complete(x->nf, e, resp, x->now_us, &p->a);
  p->n = e->n;
  p->dequeue = e->lane == NULL && e->settled;
}

/* Move each lane's cursor over its settled head, freeing those entries. */
static void advance(struct notifier *nf)
{
  for (size_t i = 0; i < ntf_nlanes(nf); i++) {
    struct ntf_lane *l = ntf_lanes(nf)[i];
    int k = 0;
    while (k < l->n && l->win[k]->settled && l->win[k]->req == NULL)
      ctkn__ntf_entry_free(nf, l->win[k++]);
    if (k > 0) {
      memmove(l->win, l->win + k, (size_t)(l->n - k) * sizeof(*l->win));
      l->n -= k;
    }
    int64_t c = l->n > 0 ? l->win[0]->n.offset : l->scan;
    if (c != l->cursor) {
      l->cursor = c;
      l->cursor_dirty = true;
    }
  }
}

int ctkn__ntf_reap(struct notifier *nf, struct ctkn_err *err)
{
  struct reap_ctx x = {nf, ctkn_now_us(), CTKN_OK};
  struct ntf_entry **r = ntf_replays(nf);
  size_t keep = 0;
  int rc;

  nf->reaped = ctkn__http_reap(nf->http, on_done, &x);
  if (x.rc != CTKN_OK)
    return ctkn__err(err, x.rc, "notify: results");
  advance(nf);
  rc = ctkn__ntf_flush(nf, false, err);
  /* Settled replays leave the list. */
  for (size_t i = 0; i < ntf_nreplays(nf); i++) {
    if (r[i]->settled && r[i]->req == NULL)
      ctkn__ntf_entry_free(nf, r[i]);
    else
      r[keep++] = r[i];
  }
  buf_keep(&nf->replays, keep * sizeof(*r));
  return rc;
}

bool ctkn__ntf_idle(struct notifier *nf, int64_t now_us)
{
  if (nf->inflight > 0)
    return false;
  for (size_t i = 0; i < ntf_nlanes(nf); i++) {
    const struct ntf_lane *l = ntf_lanes(nf)[i];
    if (ctkn__ntf_sendable(nf, l->dest) == NULL)
      continue;
    /* More to read, unless the window is full of waiting entries. */
    if (!l->at_end && l->n < nf->o.window)
      return false;
    for (int k = 0; k < l->n; k++) {
      if (ready(l, k, now_us))
        return false;
    }
  }
  for (size_t i = 0; i < ntf_nreplays(nf); i++) {
    struct ntf_entry *e = ntf_replays(nf)[i];
    if (ctkn__ntf_sendable(nf, e->n.dest) != NULL && due(e, now_us))
      return false;
  }
  return true;
}
