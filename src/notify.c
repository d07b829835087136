/*
 * notify.c - webhook delivery over libcurl's multi interface (notify.h).
 *
 * One thread runs the loop: serve the lease, reload destinations when the
 * settings projection changes, fill each lane's window from the positions
 * table, start what is ready, let curl work, settle what finished, persist
 * and commit. In follow mode a second thread runs the projector (which
 * also follows the settings topic) and wakes the loop when it advances.
 *
 * Tables (store.h side tables; local, not digested):
 *
 *   notifications          ntf ID                  -> codec's notification
 *   notification_attempts  ntf ID + attempt (BE32) -> codec's attempt
 *   notify_cursors         ntfset ID + partition   -> next offset (BE u64)
 *   notify_queue           ntf ID                  -> "" (replays to send)
 *
 * The group commit of partition p is the lowest cursor of its lanes, with
 * metadata "v1" followed by ";<destination ULID>=<cursor>" for every lane
 * (up to Kafka's 4096 bytes; a destination left out resumes from its own
 * start, so an overflow repeats deliveries but never skips one).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "ctkn/codec.h"
#include "ctkn/notify.h"
#include "ctkn/projector.h"
#include "internal.h"

#define WINDOW_MAX   64
#define META_MAX     4000
#define LANE_KEY_LEN (CTKN_DEST_ID_LEN + 4)
#define ATT_KEY_LEN  (CTKN_NTF_ID_LEN + 4)

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

/* ---- the stored state --------------------------------------------------- */

int ctkn_notification_get(ctkn_store_txn *txn, const char *id,
                          struct ctkn_notification *out, struct ctkn_err *err)
{
  const void *v;
  size_t vlen;
  int rc;

  if (!ctkn_id_valid("ntf_", id))
    return ctkn__err_field(err, CTKN_EINVAL, "id",
                           "must match ^ntf_[a-z0-9]{26}$");
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_NOTIFICATIONS, id, CTKN_NTF_ID_LEN, &v,
                         &vlen, err);
  if (rc == CTKN_ENOTFOUND)
    return ctkn__err(err, rc,
                     "no notification %s in this projection (notifications "
                     "are kept by the notifier that handled them)",
                     id);
  if (rc != CTKN_OK)
    return rc;
  if ((rc = ctkn_notification_decode(v, vlen, out, err)) != CTKN_OK)
    return ctkn__err(err, CTKN_ESTORE, "notification %s: %s", id, err->msg);
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
  (void)key;
  (void)klen;

  if (ctkn_notification_decode(val, vlen, &n, w->err) != CTKN_OK)
    return ctkn__err(w->err, CTKN_ESTORE, "notifications: %s", w->err->msg);
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
  (void)key;
  (void)klen;

  if (ctkn_attempt_decode(val, vlen, &a, w->err) != CTKN_OK)
    return ctkn__err(w->err, CTKN_ESTORE, "notification_attempts: %s",
                     w->err->msg);
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

/* The event at the notification's position, with its notification ID. */
static int load_event(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                      bool exact, struct ctkn_event *ev,
                      struct ctkn_store_event *at, struct ctkn_err *err)
{
  int rc = ctkn_store_event_at(txn, partition, offset, exact, at, err);

  if (rc != CTKN_OK)
    return rc;
  if ((rc = ctkn_event_decode(at->value, at->len, ev, err)) != CTKN_OK)
    return ctkn__err(err, CTKN_ESTORE,
                     "history of %s v%" PRIu64 " does not decode: %s", at->id,
                     at->version, err->msg);
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
  if ((rc = load_event(txn, n->partition, n->offset, true, &ev, &at, err)) !=
      CTKN_OK)
    return rc;
  memcpy(ev.notification_id, n->id, sizeof(ev.notification_id));
  if ((*out = ctkn_json_event(&ev)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "rendering a payload");
  return CTKN_OK;
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
  if ((rc = ctkn_notification_get(txn, id, &n, err)) != CTKN_OK)
    goto out;
  if (n.status != CTKN_NTF_DELIVERED && n.status != CTKN_NTF_FAILED) {
    rc = ctkn__err(err, CTKN_EBADREQ,
                   "notification %s is %s; only a delivered or failed one "
                   "can be replayed",
                   id, ctkn_ntf_status_str(n.status));
    goto out;
  }
  if ((rc = ctkn_id_generate("ntf_", ctkn_now_us() / 1000, new_id,
                             CTKN_NTF_ID_BUF)) != CTKN_OK) {
    rc = ctkn__err(err, rc, "generating an ID");
    goto out;
  }
  memcpy(n.replay_of, n.replay ? n.replay_of : n.id, sizeof(n.replay_of));
  memcpy(n.id, new_id, sizeof(n.id));
  n.replay = true;
  n.status = CTKN_NTF_NOT_ATTEMPTED;
  n.attempts = 0;
  n.first_attempt_at = n.last_attempt_at = n.delivered_at = n.retry_at = 0;
  n.last_status = 0;
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

/* ---- the engine -----------------------------------------------------------
 */

struct dest {
  struct ctkn_destination d;
  char secret[CTKN_SECRET_BUF]; /* "" when it does not open */
};

struct lane;

struct entry {
  struct ctkn_notification n;
  char *body;
  size_t blen;
  CURL *easy;
  struct curl_slist *hdrs;
  int64_t started_us;
  bool dirty;        /* state to persist */
  bool settled;      /* delivered or failed */
  struct lane *lane; /* NULL for a replay */
};

struct lane {
  char dest[CTKN_DEST_ID_BUF];
  int32_t partition;
  int64_t cursor; /* every notification below is settled */
  int64_t scan;   /* the next position to look at */
  bool cursor_dirty;
  bool at_end; /* the last scan found nothing more */
  struct entry *win[WINDOW_MAX];
  int n;
};

/* A finished attempt waiting to be written. */
struct pend {
  struct ctkn_notification n;
  struct ctkn_ntf_attempt a;
  bool dequeue; /* a settled replay: leaves notify_queue */
};

#define FLUSH_US  20000
#define FLUSH_MAX 4096

struct part {
  bool owned;
  bool fetched; /* committed offset and metadata read since acquired */
  char meta[META_MAX + 1];
  char last_commit[META_MAX + 32]; /* what was committed last */
};

struct notifier {
  ctkn_store *st;
  const struct ctkn_log_config *cfg;
  ctkn_env env;
  const uint8_t *key;
  struct ctkn_notify_opts o;
  struct ctkn_notify_stats *stats;
  CURLM *multi;
  ctkn_consumer *lease;
  int32_t nparts;
  struct part *parts;
  bool *owned;
  struct dest *dests;
  size_t ndests;
  struct lane **lanes;
  size_t nlanes;
  struct entry **replays;
  size_t nreplays;
  int inflight;
  size_t reaped; /* requests the last reap() finished */
  /* Finished attempts not yet written, and when the last write was: the
   * state is written at most every FLUSH_US (one synced LMDB commit), so
   * a crash may repeat what finished meanwhile, never skip it. */
  struct pend *pend;
  size_t npend, pcap;
  int64_t flushed_us;
  char *log; /* this round's attempt lines, written at once */
  size_t loglen, logcap;
  int64_t next_commit_ms, next_reload_ms, next_queue_ms, next_parts_ms;
  /* follow: the projector's thread */
  ctkn_projector *proj;
  pthread_t thread;
  bool thread_started;
  volatile sig_atomic_t proj_stop;
  atomic_int proj_rc;
  atomic_bool proj_done;
  struct ctkn_err proj_err;
};

static struct dest *find_dest(struct notifier *nf, const char *id)
{
  for (size_t i = 0; i < nf->ndests; i++) {
    if (strcmp(nf->dests[i].d.id, id) == 0)
      return &nf->dests[i];
  }
  return NULL;
}

/* A destination that can be sent to now: live, active, its secret open. */
static struct dest *sendable(struct notifier *nf, const char *id)
{
  struct dest *d = find_dest(nf, id);
  return d != NULL && d->d.active && d->secret[0] != '\0' ? d : NULL;
}

static void entry_free(struct notifier *nf, struct entry *e)
{
  if (e == NULL)
    return;
  if (e->easy != NULL) {
    curl_multi_remove_handle(nf->multi, e->easy);
    curl_easy_cleanup(e->easy);
    nf->inflight--;
  }
  curl_slist_free_all(e->hdrs);
  free(e->body);
  free(e);
}

static void lane_free(struct notifier *nf, struct lane *l)
{
  for (int i = 0; i < l->n; i++)
    entry_free(nf, l->win[i]);
  free(l);
}

static void lane_key(uint8_t k[LANE_KEY_LEN], const char *dest, int32_t p)
{
  memcpy(k, dest, CTKN_DEST_ID_LEN);
  ctkn__put_be32(k + CTKN_DEST_ID_LEN, (uint32_t)p);
}

/* The cursor a metadata string records for dest, or -1. */
static int64_t meta_cursor(const char *meta, const char *dest)
{
  const char *ulid = dest + 7; /* past "ntfset_" */
  const char *p = meta;

  if (strncmp(meta, "v1", 2) != 0)
    return -1;
  while ((p = strchr(p, ';')) != NULL) {
    p++;
    if (strncmp(p, ulid, CTKN_ULID_LEN) == 0 && p[CTKN_ULID_LEN] == '=')
      return strtoll(p + CTKN_ULID_LEN + 1, NULL, 10);
  }
  return -1;
}

/* Where a new lane starts: the furthest of the destination's start, this
 * projection's cursor and the group's record for it. */
static int64_t lane_start(struct notifier *nf, ctkn_store_txn *txn,
                          const char *dest, int32_t p)
{
  uint8_t k[LANE_KEY_LEN];
  const void *v;
  size_t vlen;
  int64_t at = ctkn_settings_start(txn, dest, p), m;

  lane_key(k, dest, p);
  if (ctkn_store_kv_get(txn, CTKN_TABLE_CURSORS, k, sizeof(k), &v, &vlen,
                        NULL) == CTKN_OK &&
      vlen == 8 && (int64_t)ctkn__get_be(v, 8) > at)
    at = (int64_t)ctkn__get_be(v, 8);
  if (nf->parts[p].fetched && (m = meta_cursor(nf->parts[p].meta, dest)) > at)
    at = m;
  return at;
}

/* Read the group's committed state of a newly held partition. */
static void fetch_commit(struct notifier *nf, int32_t p)
{
  struct ctkn_err err;
  int64_t off;

  if (ctkn_lease_committed(nf->lease, p, &off, nf->parts[p].meta,
                           sizeof(nf->parts[p].meta), &err) != CTKN_OK) {
    fprintf(stderr, "ctkn notify: partition %" PRId32 ": %s\n", p, err.msg);
    nf->parts[p].meta[0] = '\0';
  }
  nf->parts[p].fetched = true;
  nf->parts[p].last_commit[0] = '\0';
}

/* Make the lanes match (held partitions) x (live destinations). */
static int sync_lanes(struct notifier *nf, struct ctkn_err *err)
{
  ctkn_store_txn *txn = NULL;
  size_t keep = 0;
  int rc;

  for (size_t i = 0; i < nf->nlanes; i++) {
    struct lane *l = nf->lanes[i];
    if (l->partition < nf->nparts && nf->owned[l->partition] &&
        find_dest(nf, l->dest) != NULL)
      nf->lanes[keep++] = l;
    else
      lane_free(nf, l);
  }
  nf->nlanes = keep;
  size_t want = (size_t)nf->nparts * nf->ndests;
  struct lane **lanes = realloc(nf->lanes, (want ? want : 1) * sizeof(*lanes));
  if (lanes == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify: lanes");
  nf->lanes = lanes;
  for (int32_t p = 0; p < nf->nparts; p++) {
    if (!nf->owned[p])
      continue;
    for (size_t d = 0; d < nf->ndests; d++) {
      bool have = false;
      for (size_t i = 0; i < nf->nlanes && !have; i++)
        have = nf->lanes[i]->partition == p &&
               strcmp(nf->lanes[i]->dest, nf->dests[d].d.id) == 0;
      if (have)
        continue;
      if (!nf->parts[p].fetched)
        fetch_commit(nf, p);
      if (txn == NULL &&
          (rc = ctkn_store_begin(nf->st, false, &txn, err)) != CTKN_OK)
        return rc;
      struct lane *l = calloc(1, sizeof(*l));
      if (l == NULL) {
        ctkn_store_abort(txn);
        return ctkn__err(err, CTKN_ENOMEM, "notify: lane");
      }
      memcpy(l->dest, nf->dests[d].d.id, sizeof(l->dest));
      l->partition = p;
      l->cursor = l->scan = lane_start(nf, txn, l->dest, p);
      l->cursor_dirty = true;
      nf->lanes[nf->nlanes++] = l;
    }
  }
  ctkn_store_abort(txn);
  return CTKN_OK;
}

/* Reload the destinations; *changed when the set or a version moved. */
static int reload_dests(struct notifier *nf, bool *changed,
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
  struct dest *ds = calloc(n ? n : 1, sizeof(*ds));
  if (ds == NULL) {
    free(list);
    return ctkn__err(err, CTKN_ENOMEM, "notify: destinations");
  }
  for (size_t i = 0; i < n; i++) {
    struct dest *old = find_dest(nf, list[i].id);
    struct ctkn_err serr;
    ds[i].d = list[i];
    if (old != NULL && old->secret[0] != '\0')
      memcpy(ds[i].secret, old->secret, sizeof(ds[i].secret));
    else if (ctkn_destination_secret(&list[i], nf->key, ds[i].secret, &serr) !=
             CTKN_OK)
      fprintf(stderr, "ctkn notify: %s; nothing is sent to it\n", serr.msg);
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

/* A new entry for event ev at (lane or replay), its state restored from
 * the store when this projection handled it before. */
static struct entry *entry_new(ctkn_store_txn *txn, const struct ctkn_event *ev,
                               const struct ctkn_store_event *at,
                               const char *dest, const char *ntf_id,
                               struct ctkn_err *err)
{
  struct entry *e = calloc(1, sizeof(*e));
  struct ctkn_event copy;

  if (e == NULL) {
    ctkn__err(err, CTKN_ENOMEM, "notify: entry");
    return NULL;
  }
  if (ctkn_notification_get(txn, ntf_id, &e->n, NULL) != CTKN_OK) {
    memset(&e->n, 0, sizeof(e->n));
    memcpy(e->n.id, ntf_id, CTKN_NTF_ID_BUF);
    memcpy(e->n.dest, dest, CTKN_DEST_ID_BUF);
    memcpy(e->n.event_id, ev->event_id, sizeof(e->n.event_id));
    e->n.type = ev->type;
    memcpy(e->n.token_id, at->id, sizeof(e->n.token_id));
    e->n.version = at->version;
    e->n.partition = at->partition;
    e->n.offset = at->offset;
    e->n.occurred_at = ev->occurred_at;
    e->n.status = CTKN_NTF_NOT_ATTEMPTED;
  }
  e->settled =
      e->n.status == CTKN_NTF_DELIVERED || e->n.status == CTKN_NTF_FAILED;
  copy = *ev;
  memcpy(copy.notification_id, ntf_id, sizeof(copy.notification_id));
  if ((e->body = ctkn_json_event(&copy)) == NULL) {
    free(e);
    ctkn__err(err, CTKN_ENOMEM, "notify: body");
    return NULL;
  }
  e->blen = strlen(e->body);
  return e;
}

/* Fill the lanes' windows from the positions table. */
static int fill(struct notifier *nf, struct ctkn_err *err)
{
  ctkn_store_txn *txn = NULL;
  struct ctkn_event *ev = NULL;
  int rc = CTKN_OK;

  for (size_t i = 0; i < nf->nlanes && rc == CTKN_OK; i++) {
    struct lane *l = nf->lanes[i];
    struct dest *d = sendable(nf, l->dest);
    if (d == NULL)
      continue;
    l->at_end = false;
    while (l->n < nf->o.window) {
      struct ctkn_store_event at;
      if (txn == NULL) {
        if ((ev = malloc(sizeof(*ev))) == NULL)
          return ctkn__err(err, CTKN_ENOMEM, "notify: event");
        if ((rc = ctkn_store_begin(nf->st, false, &txn, err)) != CTKN_OK)
          break;
      }
      rc = load_event(txn, l->partition, l->scan, false, ev, &at, err);
      if (rc == CTKN_ENOTFOUND) {
        rc = CTKN_OK;
        l->at_end = true;
        break;
      }
      if (rc != CTKN_OK)
        break;
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
      struct entry *e = entry_new(txn, ev, &at, l->dest, id, err);
      if (e == NULL) {
        rc = CTKN_ENOMEM;
        break;
      }
      e->lane = l;
      l->win[l->n++] = e;
    }
  }
  ctkn_store_abort(txn);
  free(ev);
  return rc;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
  (void)p;
  (void)arg;
  return size * n;
}

static int start(struct notifier *nf, struct entry *e, const struct dest *d,
                 int64_t now_us)
{
  char sig[CTKN_SIGNATURE_BUF], hdr[CTKN_SIGNATURE_BUF + 20];
  CURL *c = curl_easy_init();

  if (c == NULL)
    return CTKN_ENOMEM;
  ctkn_webhook_signature(d->secret, now_us / 1000000, e->body, e->blen, sig);
  snprintf(hdr, sizeof(hdr), "Paddle-Signature: %s", sig);
  e->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  e->hdrs = curl_slist_append(e->hdrs, hdr);
  e->hdrs = curl_slist_append(e->hdrs, "Expect:");
  if (e->hdrs == NULL) {
    curl_easy_cleanup(c);
    return CTKN_ENOMEM;
  }
  curl_easy_setopt(c, CURLOPT_URL, d->d.url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, e->body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)e->blen);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->hdrs);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "ctkn-notify/0.1");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)nf->o.request_timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)nf->o.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_PRIVATE, e);
  if (curl_multi_add_handle(nf->multi, c) != CURLM_OK) {
    curl_easy_cleanup(c);
    curl_slist_free_all(e->hdrs);
    e->hdrs = NULL;
    return CTKN_EINTERNAL;
  }
  e->easy = c;
  e->started_us = now_us;
  nf->inflight++;
  return CTKN_OK;
}

static bool due(const struct entry *e, int64_t now_us)
{
  return !e->settled && e->easy == NULL &&
         (e->n.status == CTKN_NTF_NOT_ATTEMPTED || e->n.retry_at <= now_us);
}

/* Whether the lane's entry k may start now: due, and no earlier unsettled
 * entry for its token in the lane (a token's notifications go in log
 * order). */
static bool ready(const struct lane *l, int k, int64_t now_us)
{
  const struct entry *e = l->win[k];

  if (!due(e, now_us))
    return false;
  for (int j = 0; j < k; j++) {
    if (!l->win[j]->settled &&
        strcmp(l->win[j]->n.token_id, e->n.token_id) == 0)
      return false;
  }
  return true;
}

/* Start every ready entry of every sendable destination. */
static void dispatch(struct notifier *nf, int64_t now_us)
{
  for (size_t i = 0; i < nf->nlanes; i++) {
    struct lane *l = nf->lanes[i];
    struct dest *d = sendable(nf, l->dest);
    for (int k = 0; d != NULL && k < l->n; k++) {
      if (ready(l, k, now_us) && start(nf, l->win[k], d, now_us) != CTKN_OK)
        return; /* out of memory: try again on the next round */
    }
  }
  for (size_t i = 0; i < nf->nreplays; i++) {
    struct entry *e = nf->replays[i];
    struct dest *d = sendable(nf, e->n.dest);
    if (d != NULL && due(e, now_us))
      start(nf, e, d, now_us);
  }
}

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

static void log_attempt(struct notifier *nf, const struct entry *e,
                        const struct ctkn_ntf_attempt *a, const char *outcome)
{
  char at[CTKN_TIME_BUF], retry[CTKN_TIME_BUF + 2] = "null", line[768];
  int n;

  ctkn_time_format(a->at, at);
  if (e->n.status == CTKN_NTF_NEEDS_RETRY) {
    retry[0] = '"';
    ctkn_time_format(e->n.retry_at, retry + 1);
    strcat(retry, "\"");
  }
  n = snprintf(line, sizeof(line),
               "{\"notify\":\"attempt\",\"at\":\"%s\",\"notification_id\":"
               "\"%s\",\"destination\":\"%s\",\"event_id\":\"%s\","
               "\"attempt\":%" PRIu32 ",\"response_code\":%d,"
               "\"latency_ms\":%.3f,\"outcome\":\"%s\",\"retry_at\":%s,"
               "\"error\":\"%s\"}\n",
               at, e->n.id, e->n.dest, e->n.event_id, a->n, a->status,
               (double)a->latency_us / 1000.0, outcome, retry, a->error);
  if (n <= 0 || (size_t)n >= sizeof(line))
    return;
  if (nf->loglen + (size_t)n > nf->logcap) {
    size_t cap = nf->logcap ? 2 * nf->logcap : 16384;
    while (cap < nf->loglen + (size_t)n)
      cap *= 2;
    char *b = realloc(nf->log, cap);
    if (b == NULL) { /* out of memory: the line at least */
      fwrite(line, 1, (size_t)n, stderr);
      return;
    }
    nf->log = b;
    nf->logcap = cap;
  }
  memcpy(nf->log + nf->loglen, line, (size_t)n);
  nf->loglen += (size_t)n;
}

/* Record what became of a finished request. */
static void complete(struct notifier *nf, struct entry *e, CURLcode cc,
                     int64_t now_us, struct ctkn_ntf_attempt *a)
{
  long code = 0;

  curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_multi_remove_handle(nf->multi, e->easy);
  curl_easy_cleanup(e->easy);
  curl_slist_free_all(e->hdrs);
  e->easy = NULL;
  e->hdrs = NULL;
  nf->inflight--;

  memset(a, 0, sizeof(*a));
  a->n = ++e->n.attempts;
  a->at = e->started_us;
  a->status = cc == CURLE_OK ? (int)code : 0;
  a->latency_us = now_us - e->started_us;
  if (cc != CURLE_OK)
    snprintf(a->error, sizeof(a->error), "%s", curl_easy_strerror(cc));
  else if (code < 200 || code > 299)
    snprintf(a->error, sizeof(a->error), "HTTP %ld", code);
  if (e->n.first_attempt_at == 0)
    e->n.first_attempt_at = e->started_us;
  e->n.last_attempt_at = e->started_us;
  e->n.last_status = a->status;
  nf->stats->attempts++;

  const char *outcome;
  if (cc == CURLE_OK && code >= 200 && code <= 299) {
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
    nf->stats->failed++;
  } else {
    e->n.status = CTKN_NTF_NEEDS_RETRY;
    e->n.retry_at = now_us + backoff_ms(nf, e->n.attempts) * 1000;
    outcome = "retry";
  }
  e->dirty = true;
  log_attempt(nf, e, a, outcome);
}

/* Move each lane's cursor over its settled head. */
static void advance(struct notifier *nf, struct entry **gone, size_t *ngone)
{
  for (size_t i = 0; i < nf->nlanes; i++) {
    struct lane *l = nf->lanes[i];
    int k = 0;
    while (k < l->n && l->win[k]->settled && l->win[k]->easy == NULL)
      gone[(*ngone)++] = l->win[k++];
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

static int put_pend(ctkn_store_txn *txn, const struct pend *p,
                    struct ctkn_err *err)
{
  uint8_t *buf, k[ATT_KEY_LEN];
  size_t len;
  int rc;

  if ((rc = ctkn_notification_encode(&p->n, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_NOTIFICATIONS, p->n.id,
                         CTKN_NTF_ID_LEN, buf, len, err);
  free(buf);
  if (rc != CTKN_OK)
    return rc;
  memcpy(k, p->n.id, CTKN_NTF_ID_LEN);
  ctkn__put_be32(k + CTKN_NTF_ID_LEN, p->a.n);
  if ((rc = ctkn_attempt_encode(&p->a, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_ATTEMPTS, k, sizeof(k), buf, len, err);
  free(buf);
  if (rc == CTKN_OK && p->dequeue) {
    rc =
        ctkn_store_kv_del(txn, CTKN_TABLE_QUEUE, p->n.id, CTKN_NTF_ID_LEN, err);
    if (rc == CTKN_ENOTFOUND)
      rc = CTKN_OK;
  }
  return rc;
}

/* Write the finished attempts and the moved cursors in one transaction:
 * when forced, FLUSH_US after the last write, or when many wait. */
static int flush(struct notifier *nf, bool force, struct ctkn_err *err)
{
  ctkn_store_txn *txn = NULL;
  int64_t now = ctkn_now_us();
  bool dirty = nf->npend > 0;
  int rc;

  for (size_t i = 0; i < nf->nlanes && !dirty; i++)
    dirty = nf->lanes[i]->cursor_dirty;
  if (!dirty ||
      (!force && now - nf->flushed_us < FLUSH_US && nf->npend < FLUSH_MAX))
    return CTKN_OK;
  if ((rc = ctkn_store_begin(nf->st, true, &txn, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < nf->npend && rc == CTKN_OK; i++)
    rc = put_pend(txn, &nf->pend[i], err);
  for (size_t i = 0; i < nf->nlanes && rc == CTKN_OK; i++) {
    struct lane *l = nf->lanes[i];
    uint8_t k[LANE_KEY_LEN], v[8];
    if (!l->cursor_dirty)
      continue;
    lane_key(k, l->dest, l->partition);
    ctkn__put_be64(v, (uint64_t)l->cursor);
    rc = ctkn_store_kv_put(txn, CTKN_TABLE_CURSORS, k, sizeof(k), v, sizeof(v),
                           err);
  }
  if (rc != CTKN_OK) {
    ctkn_store_abort(txn);
    return rc;
  }
  if ((rc = ctkn_store_commit(txn, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < nf->nlanes; i++)
    nf->lanes[i]->cursor_dirty = false;
  nf->npend = 0;
  nf->flushed_us = now;
  return CTKN_OK;
}

/* One round of curl: settle what finished, move the cursors, and write
 * the state when it is time (flush). */
static int reap(struct notifier *nf, struct ctkn_err *err)
{
  size_t ndone = 0, ngone = 0;
  struct entry **gone = NULL;
  CURLMsg *m;
  int left, running, rc;
  int64_t now = ctkn_now_us();

  curl_multi_perform(nf->multi, &running);
  while ((m = curl_multi_info_read(nf->multi, &left)) != NULL) {
    struct entry *e;
    if (m->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&e);
    if (nf->npend == nf->pcap) {
      size_t nc = nf->pcap ? 2 * nf->pcap : 256;
      struct pend *p = realloc(nf->pend, nc * sizeof(*p));
      if (p == NULL)
        return ctkn__err(err, CTKN_ENOMEM, "notify: results");
      nf->pend = p;
      nf->pcap = nc;
    }
    struct pend *p = &nf->pend[nf->npend++];
    complete(nf, e, m->data.result, now, &p->a);
    p->n = e->n;
    p->dequeue = e->lane == NULL && e->settled;
    ndone++;
  }
  nf->reaped = ndone;
  if (nf->loglen > 0) {
    fwrite(nf->log, 1, nf->loglen, stderr);
    nf->loglen = 0;
  }
  size_t total = 0;
  for (size_t i = 0; i < nf->nlanes; i++)
    total += (size_t)nf->lanes[i]->n;
  if ((gone = calloc(total ? total : 1, sizeof(*gone))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify: settled");
  advance(nf, gone, &ngone);
  rc = flush(nf, false, err);
  for (size_t i = 0; i < ngone; i++)
    entry_free(nf, gone[i]);
  /* Settled replays leave the list. */
  size_t keep = 0;
  for (size_t i = 0; i < nf->nreplays; i++) {
    if (nf->replays[i]->settled && nf->replays[i]->easy == NULL)
      entry_free(nf, nf->replays[i]);
    else
      nf->replays[keep++] = nf->replays[i];
  }
  nf->nreplays = keep;
  free(gone);
  return rc;
}

/* Commit each held partition's lowest cursor and every lane's cursor. */
static void commit_lease(struct notifier *nf)
{
  char meta[META_MAX + 32];

  for (int32_t p = 0; p < nf->nparts; p++) {
    int64_t low = INT64_MAX;
    size_t len = 2;
    if (!nf->owned[p])
      continue;
    memcpy(meta, "v1", 3);
    for (size_t i = 0; i < nf->nlanes; i++) {
      struct lane *l = nf->lanes[i];
      if (l->partition != p)
        continue;
      if (l->cursor < low)
        low = l->cursor;
      if (len + 1 + CTKN_ULID_LEN + 22 < META_MAX)
        len += (size_t)snprintf(meta + len, sizeof(meta) - len, ";%s=%" PRId64,
                                l->dest + 7, l->cursor);
    }
    if (low == INT64_MAX || strcmp(meta, nf->parts[p].last_commit) == 0)
      continue;
    struct ctkn_err err;
    if (ctkn_lease_commit(nf->lease, p, low, meta, &err) == CTKN_OK)
      memcpy(nf->parts[p].last_commit, meta, sizeof(meta));
    else
      fprintf(stderr, "ctkn notify: %s\n", err.msg);
  }
}

struct queue_scan {
  struct notifier *nf;
  char (*ids)[CTKN_NTF_ID_BUF];
  size_t n, cap;
};

static int queue_one(void *arg, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
  struct queue_scan *q = arg;
  (void)val;
  (void)vlen;

  if (klen != CTKN_NTF_ID_LEN || q->n == q->cap)
    return 0;
  memcpy(q->ids[q->n], key, CTKN_NTF_ID_LEN);
  q->ids[q->n++][CTKN_NTF_ID_LEN] = '\0';
  return 0;
}

/* Pick up replays queued by `ctkn notification replay`. */
static int load_replays(struct notifier *nf, struct ctkn_err *err)
{
  char ids[64][CTKN_NTF_ID_BUF];
  struct queue_scan q = {nf, ids, 0, 64};
  ctkn_store_txn *txn;
  struct ctkn_event *ev;
  int rc;

  /* A settled replay leaves the queue in the write that records it. */
  if ((rc = flush(nf, true, err)) != CTKN_OK)
    return rc;
  if ((ev = malloc(sizeof(*ev))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify: replay");
  if ((rc = ctkn_store_begin(nf->st, false, &txn, err)) != CTKN_OK) {
    free(ev);
    return rc;
  }
  rc =
      ctkn_store_kv_walk(txn, CTKN_TABLE_QUEUE, NULL, 0, 0, queue_one, &q, err);
  for (size_t i = 0; rc == CTKN_OK && i < q.n; i++) {
    struct ctkn_notification n;
    struct ctkn_store_event at;
    bool have = false;
    for (size_t j = 0; j < nf->nreplays && !have; j++)
      have = strcmp(nf->replays[j]->n.id, ids[i]) == 0;
    if (have || ctkn_notification_get(txn, ids[i], &n, NULL) != CTKN_OK ||
        load_event(txn, n.partition, n.offset, true, ev, &at, NULL) != CTKN_OK)
      continue;
    struct entry **r =
        realloc(nf->replays, (nf->nreplays + 1) * sizeof(*nf->replays));
    if (r == NULL) {
      rc = ctkn__err(err, CTKN_ENOMEM, "notify: replays");
      break;
    }
    nf->replays = r;
    struct entry *e = entry_new(txn, ev, &at, n.dest, n.id, err);
    if (e == NULL) {
      rc = CTKN_ENOMEM;
      break;
    }
    nf->replays[nf->nreplays++] = e;
  }
  ctkn_store_abort(txn);
  free(ev);
  return rc;
}

static void on_advanced(void *arg, const int64_t *next, int32_t n)
{
  struct notifier *nf = arg;
  (void)next;
  (void)n;
  curl_multi_wakeup(nf->multi);
}

static void on_status(void *arg, const struct ctkn_partition_status *s,
                      int32_t n, const struct ctkn_projector_stats *stats)
{
  (void)arg;
  (void)s;
  (void)n;
  (void)stats;
}

static void *follow_main(void *arg)
{
  struct notifier *nf = arg;
  int rc = ctkn_projector_follow(nf->proj, &nf->proj_stop, &nf->proj_err);

  atomic_store(&nf->proj_rc, rc);
  atomic_store(&nf->proj_done, true);
  curl_multi_wakeup(nf->multi);
  return NULL;
}

/* Whether a one-shot run is done: nothing in flight, nothing due now,
 * every lane scanned to the end. */
static bool idle(struct notifier *nf, int64_t now_us)
{
  if (nf->inflight > 0)
    return false;
  for (size_t i = 0; i < nf->nlanes; i++) {
    const struct lane *l = nf->lanes[i];
    if (sendable(nf, l->dest) == NULL)
      continue;
    /* More to read, unless the window is full of waiting entries. */
    if (!l->at_end && l->n < nf->o.window)
      return false;
    for (int k = 0; k < l->n; k++) {
      if (ready(l, k, now_us))
        return false;
    }
  }
  for (size_t i = 0; i < nf->nreplays; i++) {
    if (sendable(nf, nf->replays[i]->n.dest) != NULL &&
        due(nf->replays[i], now_us))
      return false;
  }
  return true;
}

static int resolve_opts(struct ctkn_notify_opts *o, ctkn_env env,
                        struct ctkn_err *err)
{
  if (o->group == NULL || o->group[0] == '\0')
    o->group = CTKN_NOTIFY_GROUP;
  if (o->request_timeout_ms <= 0)
    o->request_timeout_ms = 5000;
  if (o->connect_timeout_ms <= 0)
    o->connect_timeout_ms =
        o->request_timeout_ms < 3000 ? o->request_timeout_ms : 3000;
  if (o->retry_initial_ms <= 0)
    o->retry_initial_ms = 60000;
  if (o->retry_max_ms <= 0)
    o->retry_max_ms = 3600000;
  if (o->retry_max_ms < o->retry_initial_ms)
    o->retry_max_ms = o->retry_initial_ms;
  if (o->max_age_ms <= 0)
    o->max_age_ms = env == CTKN_ENV_LIVE ? 72LL * 3600000 : 15LL * 60000;
  if (o->window <= 0)
    o->window = 8;
  if (o->window > WINDOW_MAX)
    return ctkn__err_field(err, CTKN_EINVAL, "window", "must be 1-%d",
                           WINDOW_MAX);
  return CTKN_OK;
}

static int refresh_parts(struct notifier *nf, struct ctkn_err *err)
{
  int32_t n;
  int rc = ctkn_consumer_partitions(nf->lease, &n, err);

  if (rc != CTKN_OK || n <= nf->nparts)
    return rc;
  if (n > CTKN_STORE_MAX_PARTITIONS)
    n = CTKN_STORE_MAX_PARTITIONS;
  struct part *parts = realloc(nf->parts, (size_t)n * sizeof(*parts));
  bool *owned = realloc(nf->owned, (size_t)n * sizeof(*owned));
  if (parts != NULL)
    nf->parts = parts;
  if (owned != NULL)
    nf->owned = owned;
  if (parts == NULL || owned == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify: partitions");
  memset(parts + nf->nparts, 0, (size_t)(n - nf->nparts) * sizeof(*parts));
  memset(owned + nf->nparts, 0, (size_t)(n - nf->nparts) * sizeof(*owned));
  nf->nparts = n;
  return CTKN_OK;
}

static int serve_lease(struct notifier *nf, int timeout_ms, bool *changed,
                       struct ctkn_err *err)
{
  bool *was = malloc((size_t)(nf->nparts ? nf->nparts : 1));
  int rc;

  if (was == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify: lease");
  memcpy(was, nf->owned, (size_t)nf->nparts);
  rc = ctkn_lease_poll(nf->lease, timeout_ms, nf->owned, nf->nparts, changed,
                       err);
  for (int32_t p = 0; p < nf->nparts; p++) {
    if (was[p] != nf->owned[p]) {
      /* Held anew: read the group's state again; lost: forget it. */
      nf->parts[p].fetched = false;
      fprintf(stderr, "ctkn notify: partition %" PRId32 " %s\n", p,
              nf->owned[p] ? "acquired" : "released");
    }
  }
  free(was);
  return rc;
}

int ctkn_notify_run(ctkn_store *st, const struct ctkn_log_config *cfg,
                    ctkn_env env, const uint8_t key[CTKN_KEY_LEN],
                    const struct ctkn_notify_opts *opts,
                    struct ctkn_notify_stats *stats, struct ctkn_err *err)
{
  struct notifier *nf = calloc(1, sizeof(*nf));
  struct ctkn_notify_stats scratch;
  ctkn_settings_follower *sf = NULL;
  volatile sig_atomic_t never = 0;
  bool changed;
  int rc;

  if (stats == NULL)
    stats = &scratch;
  memset(stats, 0, sizeof(*stats));
  if (nf == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify");
  nf->st = st;
  nf->cfg = cfg;
  nf->env = env;
  nf->key = key;
  nf->o = *opts;
  nf->stats = stats;
  if (nf->o.stop == NULL)
    nf->o.stop = &never;
  if ((rc = resolve_opts(&nf->o, env, err)) != CTKN_OK)
    goto out;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
      (nf->multi = curl_multi_init()) == NULL) {
    rc = ctkn__err(err, CTKN_EINTERNAL, "notify: libcurl does not start");
    goto out;
  }
  if ((rc = ctkn_projector_open(&nf->proj, st, cfg, env, err)) != CTKN_OK)
    goto out;
  if (!nf->o.follow) {
    /* One pass: the projection and the settings as they stand now. */
    if ((rc = ctkn_projector_catch_up(nf->proj, NULL, 0, err)) != CTKN_OK ||
        (rc = ctkn_settings_follower_open(&sf, st, cfg, err)) != CTKN_OK ||
        (rc = ctkn_settings_follower_catch_up(sf, err)) != CTKN_OK)
      goto out;
  } else {
    /* The destinations as they stand before anything is delivered (the
     * projector thread follows them from there): a notifier on a new
     * projection must not send to a destination whose pause or removal
     * it has not read yet. */
    if ((rc = ctkn_settings_follower_open(&sf, st, cfg, err)) != CTKN_OK ||
        (rc = ctkn_settings_follower_catch_up(sf, err)) != CTKN_OK)
      goto out;
    ctkn_settings_follower_close(sf);
    sf = NULL;
    struct ctkn_projector_hooks h = {on_advanced, on_status, nf, 5000};
    ctkn_projector_set_hooks(nf->proj, &h);
    if (pthread_create(&nf->thread, NULL, follow_main, nf) != 0) {
      rc = ctkn__err(err, CTKN_EINTERNAL, "notify: no projector thread");
      goto out;
    }
    nf->thread_started = true;
  }
  if ((rc = ctkn_lease_open(&nf->lease, cfg, nf->o.group, err)) != CTKN_OK ||
      (rc = refresh_parts(nf, err)) != CTKN_OK)
    goto out;

  /* Wait for the group to hand out partitions. */
  int64_t deadline = ctkn__now_ms() + cfg->timeout_ms;
  for (;;) {
    bool any = false;
    if ((rc = serve_lease(nf, 100, &changed, err)) != CTKN_OK)
      goto out;
    for (int32_t p = 0; p < nf->nparts && !any; p++)
      any = nf->owned[p];
    if (any || *nf->o.stop)
      break;
    if (ctkn__now_ms() > deadline) {
      if (!nf->o.follow) {
        fprintf(stderr,
                "ctkn notify: group %s gave this notifier no "
                "partition (others hold them); nothing to do\n",
                nf->o.group);
        goto out;
      }
      deadline = INT64_MAX; /* following: wait as long as it takes */
    }
  }

  for (;;) {
    int64_t now_ms = ctkn__now_ms();
    if (*nf->o.stop)
      break;
    if (nf->thread_started && atomic_load(&nf->proj_done)) {
      rc = atomic_load(&nf->proj_rc);
      if (err != NULL)
        *err = nf->proj_err;
      if (rc == CTKN_OK)
        rc = ctkn__err(err, CTKN_EINTERNAL, "notify: the projector stopped");
      break;
    }
    if ((rc = serve_lease(nf, 0, &changed, err)) != CTKN_OK &&
        !ctkn__transient(rc))
      break;
    bool lanes = changed;
    if (now_ms >= nf->next_parts_ms) {
      int32_t before = nf->nparts;
      nf->next_parts_ms = now_ms + 30000;
      if (refresh_parts(nf, err) == CTKN_OK && nf->nparts != before)
        lanes = true;
    }
    if (now_ms >= nf->next_reload_ms) {
      bool moved;
      nf->next_reload_ms = now_ms + 250;
      if ((rc = reload_dests(nf, &moved, err)) != CTKN_OK)
        break;
      lanes = lanes || moved;
    }
    if (lanes && (rc = sync_lanes(nf, err)) != CTKN_OK)
      break;
    if (now_ms >= nf->next_queue_ms) {
      nf->next_queue_ms = now_ms + 1000;
      if ((rc = load_replays(nf, err)) != CTKN_OK)
        break;
    }
    if ((rc = fill(nf, err)) != CTKN_OK)
      break;
    dispatch(nf, ctkn_now_us());
    if ((rc = reap(nf, err)) != CTKN_OK)
      break;
    if (now_ms >= nf->next_commit_ms) {
      nf->next_commit_ms = now_ms + 1000;
      commit_lease(nf);
    }
    if (!nf->o.follow && idle(nf, ctkn_now_us()))
      break;
    /* Answers just settled free window slots: fill them at once rather
     * than wait for curl, which may have nothing left in flight to wake
     * the poll. */
    int numfds;
    curl_multi_poll(nf->multi, NULL, 0,
                    nf->reaped > 0     ? 0
                    : nf->inflight > 0 ? 50
                                       : 100,
                    &numfds);
  }
  if (rc == CTKN_OK) {
    struct ctkn_err rerr;
    /* Stopping: start nothing more, but let the requests in flight finish
     * (bounded), so that what was delivered is recorded as delivered. */
    int64_t until =
        ctkn__now_ms() +
        (nf->o.request_timeout_ms < 5000 ? nf->o.request_timeout_ms : 5000);
    while (nf->inflight > 0 && ctkn__now_ms() < until &&
           reap(nf, &rerr) == CTKN_OK) {
      int numfds;
      curl_multi_poll(nf->multi, NULL, 0, 20, &numfds);
    }
    if (reap(nf, &rerr) != CTKN_OK || flush(nf, true, &rerr) != CTKN_OK)
      fprintf(stderr, "ctkn notify: the last results were not written: %s\n",
              rerr.msg);
    commit_lease(nf);
  }
out:
  if (nf->thread_started) {
    nf->proj_stop = 1;
    pthread_join(nf->thread, NULL);
  }
  for (size_t i = 0; i < nf->nlanes; i++)
    lane_free(nf, nf->lanes[i]);
  for (size_t i = 0; i < nf->nreplays; i++)
    entry_free(nf, nf->replays[i]);
  for (size_t i = 0; i < nf->ndests; i++)
    ctkn_wipe(nf->dests[i].secret, sizeof(nf->dests[i].secret));
  free(nf->pend);
  free(nf->log);
  free(nf->lanes);
  free(nf->replays);
  free(nf->dests);
  free(nf->parts);
  free(nf->owned);
  ctkn_consumer_close(nf->lease);
  ctkn_settings_follower_close(sf);
  ctkn_projector_close(nf->proj);
  if (nf->multi != NULL)
    curl_multi_cleanup(nf->multi);
  free(nf);
  return rc;
}
