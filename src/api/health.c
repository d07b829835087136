/*
 * health.c - how the replica is doing: /healthz (ready, starting, stale
 * or lagging, from the follower's last status, with each partition's
 * quarantined records counted in the projection), /metrics (Prometheus'
 * text format), and the request counters and latency histograms that
 * every completed request adds to.
 *
 * The counters are atomics, so a request never takes a lock to be
 * counted; /metrics reads them without one (a scrape may see one request
 * counted and not yet in the histogram).
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "ctkn/codec.h"
#include "ctkn/query.h"

/* By route, so the names cannot drift from the enum's order. */
static const char *const route_names[R_COUNT] = {
    [R_CREATE] = "create",
    [R_UPDATE] = "update",
    [R_GET] = "get",
    [R_LIST] = "list",
    [R_VERIFY] = "verify",
    [R_HEALTHZ] = "healthz",
    [R_METRICS] = "metrics",
    [R_DEST_CREATE] = "settings_create",
    [R_DEST_LIST] = "settings_list",
    [R_DEST_GET] = "settings_get",
    [R_DEST_UPDATE] = "settings_update",
    [R_DEST_DELETE] = "settings_delete",
    [R_HISTORY] = "history",
    [R_UI] = "ui",
    [R_KEY_LIST] = "api_keys_list",
    [R_KEY_GET] = "api_keys_get",
    [R_KEY_CREATE] = "api_keys_create",
    [R_KEY_UPDATE] = "api_keys_update",
    [R_KEY_ROTATE] = "api_keys_rotate",
    [R_EVENTS] = "events",
    [R_EVENT_TYPES] = "event_types",
    [R_NTF_LIST] = "notifications_list",
    [R_NTF_GET] = "notifications_get",
    [R_NTF_LOGS] = "notifications_logs",
    [R_NTF_REPLAY] = "notifications_replay",
    [R_OTHER] = "other",
};

static const int statuses[] = {200, 201, 204, 400, 403, 404,
                               405, 409, 413, 429, 500, 503};
static_assert(CTKN__ARRAY_LEN(statuses) + 1 == CTKN__API_NSTATUS,
              "one counter per status, and one for any other");

static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                 0.005,  0.01,    0.025,  0.05,  0.1,
                                 0.25,   0.5,     1,      2.5,   5};
static_assert(CTKN__ARRAY_LEN(buckets) + 1 == CTKN__API_NBUCKET,
              "one counter per bucket, and +Inf");

const char *ctkn__api_route_name(enum route rt)
{
  return rt >= 0 && rt < R_COUNT ? route_names[rt] : "other";
}

void ctkn__api_metrics_add(struct metrics *m, enum route rt, int status,
                           int64_t us)
{
  size_t si = CTKN__API_NSTATUS - 1, bi = CTKN__API_NBUCKET - 1;

  for (size_t i = 0; i < CTKN__API_NSTATUS - 1; i++) {
    if (statuses[i] == status)
      si = i;
  }
  for (size_t i = 0; i < CTKN__API_NBUCKET - 1; i++) {
    if ((double)us / 1e6 <= buckets[i]) {
      bi = i;
      break;
    }
  }
  atomic_fetch_add(&m->requests[rt][si], 1);
  atomic_fetch_add(&m->hist[rt][bi], 1);
  atomic_fetch_add(&m->sum_us[rt], (uint64_t)us);
}

/* Under pos_lock: mark each partition's staleness (now) and say why the
 * first paused or stale one fails closed; "" when none does. */
static const char *untrusted_locked(struct server *s, char *why, size_t n)
{
  int64_t now = ctkn_now_us(), max = s->cfg->max_staleness_ms * 1000;
  const char *state = "";

  why[0] = '\0';
  for (int32_t i = 0; i < s->nstatus; i++) {
    struct ctkn_partition_status *p = &s->status[i];
    p->stale = max > 0 && p->checkpoint_at >= 0 && now - p->checkpoint_at > max;
    if (*state != '\0')
      continue;
    if (p->paused) {
      snprintf(why, n,
               "partition %d is paused at a record of a newer schema "
               "version; upgrade ctkn",
               (int)p->partition);
      state = "paused";
    } else if (p->stale) {
      snprintf(why, n,
               "partition %d: its newest writer checkpoint is %s old "
               "(--max-staleness %lld s); the log's tail may be withheld",
               (int)p->partition, p->checkpoint_at ? "too" : "missing, or",
               (long long)(s->cfg->max_staleness_ms / 1000));
      state = "stale";
    }
  }
  return state;
}

bool ctkn__api_untrusted(struct server *s, char *why, size_t n)
{
  bool bad;

  pthread_mutex_lock(&s->pos_lock);
  bad = *untrusted_locked(s, why, n) != '\0';
  pthread_mutex_unlock(&s->pos_lock);
  return bad;
}

bool ctkn__api_side_stale(struct server *s, unsigned side, struct ctkn_err *err)
{
  bool down;

  pthread_mutex_lock(&s->pos_lock);
  down = (s->stats.unfollowed & side) != 0;
  pthread_mutex_unlock(&s->pos_lock);
  if (down)
    ctkn__err(err, CTKN_ESTALE,
              "this replica is not following the %s topic now (see "
              "/healthz), so what it holds of it may be stale; retry",
              side == CTKN_PROJECTOR_SETTINGS ? "settings" : "notifications");
  return down;
}

bool ctkn__api_keys_stale(struct server *s, struct ctkn_err *err)
{
  char why[256];
  int32_t part = -1;

  if (ctkn__api_side_stale(s, CTKN_PROJECTOR_SETTINGS, err))
    return true;
  pthread_mutex_lock(&s->pos_lock);
  (void)untrusted_locked(s, why, sizeof(why)); /* staleness as of now */
  for (int32_t i = 0; i < s->nstatus && part < 0; i++)
    if (s->status[i].stale)
      part = s->status[i].partition;
  pthread_mutex_unlock(&s->pos_lock);
  if (part < 0)
    return false;
  ctkn__err(err, CTKN_ESTALE,
            "this replica is stale (partition %d: its newest writer "
            "checkpoint is older than --max-staleness %lld s), so it may be "
            "cut off from the log and miss an API key's revocation: keys on "
            "the log are not accepted here until it is current; retry",
            (int)part, (long long)(s->cfg->max_staleness_ms / 1000));
  return true;
}

bool ctkn__api_guard(struct server *s, struct ctkn_query_guard *g,
                     uint8_t state[CTKN_STORE_MAX_PARTITIONS])
{
  char why[256];
  bool bad;

  pthread_mutex_lock(&s->pos_lock);
  bad = *untrusted_locked(s, why, sizeof(why)) != '\0';
  g->nparts = s->nstatus < CTKN_STORE_MAX_PARTITIONS
                  ? s->nstatus
                  : CTKN_STORE_MAX_PARTITIONS;
  for (int32_t i = 0; i < g->nparts; i++) {
    const struct ctkn_partition_status *p = &s->status[i];
    state[i] = p->paused  ? CTKN_PART_PAUSED
               : p->stale ? CTKN_PART_STALE
                          : CTKN_PART_OK;
  }
  pthread_mutex_unlock(&s->pos_lock);
  g->state = state;
  g->max_staleness_s = s->cfg->max_staleness_ms / 1000;
  return bad;
}

/* Each partition's quarantined records: the counts the store keeps in
 * meta (store.h), one entry a partition that has any. NULL when the store does
 * not answer or memory is short: the counts are then left out of /healthz,
 * which still answers. */
static int64_t *quarantine_counts(struct server *s)
{
  int64_t *all = malloc(CTKN_STORE_MAX_PARTITIONS * sizeof(*all));
  struct ctkn_err err = {0};
  ctkn_store_txn *txn;
  int rc;

  if (all == NULL)
    return NULL;
  if ((rc = ctkn_store_begin(s->st, false, &txn, &err)) == CTKN_OK) {
    rc =
        ctkn_store_quarantine_counts(txn, all, CTKN_STORE_MAX_PARTITIONS, &err);
    ctkn_store_abort(txn);
  }
  if (rc != CTKN_OK) {
    free(all);
    return NULL;
  }
  return all;
}

void ctkn__api_healthz(struct server *s, struct req *r)
{
  const char *state = "ready", *bad;
  char why[256];
  int64_t lag = 0;
  int64_t *all = quarantine_counts(s), *q = NULL;

  pthread_mutex_lock(&s->pos_lock);
  if (all != NULL && s->nstatus > 0 &&
      (q = calloc((size_t)s->nstatus, sizeof(*q))) != NULL) {
    for (int32_t i = 0; i < s->nstatus; i++) {
      int32_t p = s->status[i].partition;
      q[i] = p >= 0 && p < CTKN_STORE_MAX_PARTITIONS ? all[p] : 0;
    }
  }
  bad = untrusted_locked(s, why, sizeof(why));
  for (int32_t i = 0; i < s->nstatus; i++) {
    int64_t d = s->status[i].log_end - s->status[i].projected;
    lag += d > 0 ? d : 0;
  }
  if (s->status_at_ms == 0)
    state = "starting";
  else if (ctkn__now_ms() - s->status_at_ms >
           3 * (int64_t)s->cfg->status_ms + 2 * s->cfg->log->timeout_ms)
    state = "stale"; /* the log has not answered for a while */
  else if (*bad != '\0')
    state = bad; /* a paused or stale partition: fail closed */
  else if (s->stats.unfollowed & CTKN_PROJECTOR_SETTINGS)
    state = "settings_not_followed"; /* API keys may be stale */
  else if (s->stats.unfollowed & CTKN_PROJECTOR_NOTIFICATIONS)
    state = "notifications_not_followed";
  else if (lag > s->cfg->max_lag)
    state = "lagging";
  free(r->resp);
  r->resp = ctkn_json_health(state, s->cfg->max_lag, s->cfg->log->topic,
                             s->status, (size_t)s->nstatus, q, r->rid);
  pthread_mutex_unlock(&s->pos_lock);
  free(q);
  free(all);
  r->status = strcmp(state, "ready") == 0 ? 200 : 503;
}

/* ctkn_http_requests_total, by route and status. */
static int requests_total(struct ctkn__buf *t, struct metrics *m)
{
  int rc = ctkn__buf_puts(t, "# HELP ctkn_http_requests_total HTTP requests "
                             "by route and status.\n# TYPE "
                             "ctkn_http_requests_total counter\n");

  for (int rt = 0; rt < R_COUNT && rc == CTKN_OK; rt++) {
    for (size_t i = 0; i < CTKN__API_NSTATUS && rc == CTKN_OK; i++) {
      uint64_t v = atomic_load(&m->requests[rt][i]);
      if (v == 0)
        continue;
      if (i < CTKN__API_NSTATUS - 1)
        rc = ctkn__buf_printf(t,
                              "ctkn_http_requests_total{route=\"%s\","
                              "status=\"%d\"} %" PRIu64 "\n",
                              route_names[rt], statuses[i], v);
      else
        rc = ctkn__buf_printf(t,
                              "ctkn_http_requests_total{route=\"%s\","
                              "status=\"other\"} %" PRIu64 "\n",
                              route_names[rt], v);
    }
  }
  return rc;
}

/* ctkn_http_request_duration_seconds, a histogram per route. */
static int durations(struct ctkn__buf *t, struct metrics *m)
{
  int rc = ctkn__buf_puts(
      t, "# HELP ctkn_http_request_duration_seconds Time from a request's "
         "first byte to its answer.\n"
         "# TYPE ctkn_http_request_duration_seconds histogram\n");

  for (int rt = 0; rt < R_COUNT && rc == CTKN_OK; rt++) {
    uint64_t cum = 0;
    for (size_t b = 0; b < CTKN__API_NBUCKET && rc == CTKN_OK; b++) {
      cum += atomic_load(&m->hist[rt][b]);
      if (b < CTKN__API_NBUCKET - 1)
        rc = ctkn__buf_printf(
            t,
            "ctkn_http_request_duration_seconds_bucket{route=\"%s\","
            "le=\"%g\"} %" PRIu64 "\n",
            route_names[rt], buckets[b], cum);
      else
        rc = ctkn__buf_printf(
            t,
            "ctkn_http_request_duration_seconds_bucket{route=\"%s\","
            "le=\"+Inf\"} %" PRIu64 "\n",
            route_names[rt], cum);
    }
    if (rc == CTKN_OK)
      rc = ctkn__buf_printf(
          t,
          "ctkn_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
          "ctkn_http_request_duration_seconds_count{route=\"%s\"} "
          "%" PRIu64 "\n",
          route_names[rt], (double)atomic_load(&m->sum_us[rt]) / 1e6,
          route_names[rt], cum);
  }
  return rc;
}

/* With a trust root: each partition's newest writer checkpoint's age and
 * whether it is stale (past --max-staleness). Called with pos_lock held. */
static int trust_metrics(struct ctkn__buf *t, const struct server *s)
{
  int64_t now = ctkn_now_us(), max = s->cfg->max_staleness_ms * 1000;
  int32_t stale = 0;
  int rc;

  if (s->cfg->trust_root == NULL)
    return CTKN_OK;
  rc = ctkn__buf_puts(
      t, "# HELP ctkn_trust_checkpoint_age_seconds Age (signed time) of the "
         "newest verified writer checkpoint, per partition; -1: none yet.\n"
         "# TYPE ctkn_trust_checkpoint_age_seconds gauge\n");
  for (int32_t i = 0; i < s->nstatus && rc == CTKN_OK; i++) {
    int64_t at = s->status[i].checkpoint_at;
    stale += max > 0 && at >= 0 && now - at > max;
    rc = ctkn__buf_printf(
        t,
        "ctkn_trust_checkpoint_age_seconds{partition=\"%" PRId32 "\"} %.3f\n",
        s->status[i].partition, at > 0 ? (double)(now - at) / 1e6 : -1.0);
  }
  if (rc == CTKN_OK)
    rc = ctkn__buf_printf(
        t,
        "# HELP ctkn_trust_stale_partitions Partitions whose newest "
        "checkpoint is older than --max-staleness (answers fail closed).\n"
        "# TYPE ctkn_trust_stale_partitions gauge\n"
        "ctkn_trust_stale_partitions %" PRId32 "\n",
        stale);
  /* Whether this replica has read a keyring change (a revoke) yet. */
  uint64_t version = 0;
  if (rc == CTKN_OK &&
      ctkn_projector_keyring_version(s->st, &version, NULL) == CTKN_OK)
    rc = ctkn__buf_printf(
        t,
        "# HELP ctkn_trust_keyring_version The keyring version the "
        "projection judges by (0: none yet).\n"
        "# TYPE ctkn_trust_keyring_version gauge\n"
        "ctkn_trust_keyring_version %" PRIu64 "\n",
        version);
  return rc;
}

/* The follower's figures: events by outcome, paused partitions, the lag
 * and its age. Called with pos_lock held. */
static int projection(struct ctkn__buf *t, const struct server *s)
{
  const struct ctkn_projector_stats *st = &s->stats;
  int rc = ctkn__buf_printf(
      t,
      "# HELP ctkn_projector_events_total Records the follower passed, "
      "by outcome (skipped: already applied by this server's writes).\n"
      "# TYPE ctkn_projector_events_total counter\n"
      "ctkn_projector_events_total{outcome=\"applied\"} %" PRIu64 "\n"
      "ctkn_projector_events_total{outcome=\"rejected\"} %" PRIu64 "\n"
      "ctkn_projector_events_total{outcome=\"quarantined\"} %" PRIu64 "\n"
      "ctkn_projector_events_total{outcome=\"skipped\"} %" PRIu64 "\n"
      "ctkn_projector_events_total{outcome=\"checkpoint\"} %" PRIu64 "\n"
      "# HELP ctkn_projector_paused_partitions Partitions stopped at a "
      "newer schema version.\n"
      "# TYPE ctkn_projector_paused_partitions gauge\n"
      "ctkn_projector_paused_partitions %" PRId32 "\n",
      st->applied, st->rejected, st->quarantined, st->skipped, st->checkpoints,
      st->paused);

  if (rc == CTKN_OK)
    rc = trust_metrics(t, s);

  if (rc == CTKN_OK)
    rc = ctkn__buf_puts(t, "# HELP ctkn_projection_lag Records in the log not "
                           "yet applied, per partition.\n"
                           "# TYPE ctkn_projection_lag gauge\n");
  for (int32_t i = 0; i < s->nstatus && rc == CTKN_OK; i++) {
    int64_t d = s->status[i].log_end - s->status[i].projected;
    rc = ctkn__buf_printf(
        t, "ctkn_projection_lag{partition=\"%" PRId32 "\"} %" PRId64 "\n",
        s->status[i].partition, d > 0 ? d : 0);
  }
  if (rc == CTKN_OK)
    rc = ctkn__buf_printf(
        t,
        "# HELP ctkn_projection_lag_age_seconds Age of the last lag "
        "measurement.\n# TYPE ctkn_projection_lag_age_seconds gauge\n"
        "ctkn_projection_lag_age_seconds %.3f\n",
        s->status_at_ms ? (double)(ctkn__now_ms() - s->status_at_ms) / 1000
                        : -1.0);
  return rc;
}

void ctkn__api_metrics(struct server *s, struct req *r)
{
  struct ctkn__buf t = CTKN__BUF_INIT;
  int rc = ctkn__buf_reserve(&t, 16384);

  if (rc == CTKN_OK)
    rc = requests_total(&t, &s->m);
  if (rc == CTKN_OK)
    rc = durations(&t, &s->m);
  if (rc == CTKN_OK) {
    pthread_mutex_lock(&s->pos_lock);
    rc = projection(&t, s);
    pthread_mutex_unlock(&s->pos_lock);
  }
  if (rc != CTKN_OK) {
    ctkn__buf_free(&t); /* no answer: a 500 */
    return;
  }
  free(r->resp);
  r->resp = ctkn__buf_detach(&t);
  r->status = 200;
  r->ctype = "text/plain; version=0.0.4";
}
