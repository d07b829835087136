/*
 * run.c - ctkn_notify_run(): webhook delivery (notify.h).
 *
 * One thread runs the loop: serve the lease, reload destinations when the
 * settings projection changes, fill each lane's window from the positions
 * table, start what is ready, let the requests work, settle what
 * finished, persist and commit (lanes.c, lease.c, http.c). In follow mode
 * a second thread runs the projector (which also follows the settings
 * topic) and wakes the loop when it advances.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify_int.h"

#define PARTS_EVERY_MS  30000 /* how often the partition count is re-read */
#define RELOAD_EVERY_MS 250   /* ... the destinations */
#define QUEUE_EVERY_MS  1000  /* ... the replay queue */
#define COMMIT_EVERY_MS 1000  /* how often the group gets the cursors */

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

/* ---- the projector's thread (follow) --------------------------------------
 */

static void on_advanced(void *arg, const int64_t *next, const bool *paused,
                        int32_t n)
{
  struct notifier *nf = arg;
  (void)next;
  (void)paused;
  (void)n;
  ctkn__http_wakeup(nf->http);
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
  ctkn__http_wakeup(nf->http);
  return NULL;
}

/* The projection and the settings before anything is delivered. One pass:
 * both as they stand now. Follow: the destinations as they stand (the
 * projector thread follows them from there), so that a notifier on a new
 * projection never sends to a destination whose pause or removal it has
 * not read yet; then the projector thread. */
static int prepare(struct notifier *nf, struct ctkn_err *err)
{
  ctkn_settings_follower *sf = NULL;
  int rc;

  if (!nf->o.follow &&
      (rc = ctkn_projector_catch_up(nf->proj, NULL, 0, err)) != CTKN_OK)
    return rc;
  /* One pass: the replays asked for on the notifications topic (follow:
   * the projector thread follows it). A missing topic has none. */
  if (!nf->o.follow &&
      (rc = ctkn_projector_catch_up_deliveries(nf->proj, err)) != CTKN_OK &&
      rc != CTKN_ENOTFOUND)
    return rc;
  if ((rc = ctkn_settings_follower_open(&sf, nf->st, nf->cfg, err)) ==
          CTKN_OK &&
      (rc = ctkn_projector_trust_settings(nf->proj, sf, err)) == CTKN_OK)
    rc = ctkn_settings_follower_catch_up(sf, err);
  ctkn_settings_follower_close(sf);
  if (rc != CTKN_OK || !nf->o.follow)
    return rc;
  struct ctkn_projector_hooks h = {.advanced = on_advanced,
                                   .status = on_status,
                                   .arg = nf,
                                   .status_ms = 5000};
  ctkn_projector_set_hooks(nf->proj, &h);
  if (pthread_create(&nf->thread, NULL, follow_main, nf) != 0)
    return ctkn__err(err, CTKN_EINTERNAL, "notify: no projector thread");
  nf->thread_started = true;
  return CTKN_OK;
}

/* Wait for the group to hand out partitions. *none when a one-shot run
 * got none in time (others hold them: nothing to do). */
static int wait_for_partitions(struct notifier *nf, bool *none,
                               struct ctkn_err *err)
{
  int64_t deadline = ctkn__now_ms() + nf->cfg->timeout_ms;
  bool changed;
  int rc;

  *none = false;
  for (;;) {
    bool any = false;
    if ((rc = ctkn__ntf_serve_lease(nf, 100, &changed, err)) != CTKN_OK)
      return rc;
    for (int32_t p = 0; p < nf->nparts && !any; p++)
      any = nf->owned[p];
    if (any || *nf->o.stop)
      return CTKN_OK;
    if (ctkn__now_ms() > deadline) {
      if (!nf->o.follow) {
        ctkn__diag(CTKN_DIAG_INFO, "notify",
                   "group %s gave this notifier no partition (others hold "
                   "them); nothing to do",
                   nf->o.group);
        *none = true;
        return CTKN_OK;
      }
      deadline = INT64_MAX; /* following: wait as long as it takes */
    }
  }
}

/* ---- the loop ---------------------------------------------------------------
 */

/* The lease, the partition count and the destinations; *lanes when the
 * lanes must be matched to them again. */
static int refresh(struct notifier *nf, int64_t now_ms, bool *lanes,
                   struct ctkn_err *err)
{
  bool changed = false;
  int rc;

  if ((rc = ctkn__ntf_serve_lease(nf, 0, &changed, err)) != CTKN_OK &&
      !ctkn__transient(rc))
    return rc;
  *lanes = changed;
  if (now_ms >= nf->next_parts_ms) {
    int32_t before = nf->nparts;
    nf->next_parts_ms = now_ms + PARTS_EVERY_MS;
    if (ctkn__ntf_refresh_parts(nf, err) == CTKN_OK && nf->nparts != before)
      *lanes = true;
  }
  if (now_ms >= nf->next_reload_ms) {
    bool moved;
    nf->next_reload_ms = now_ms + RELOAD_EVERY_MS;
    if ((rc = ctkn__ntf_reload_dests(nf, &moved, err)) != CTKN_OK)
      return rc;
    *lanes = *lanes || moved;
  }
  return CTKN_OK;
}

/* One round. *done when the loop ends without an error: a one-shot run
 * that has nothing left to do now. */
static int round_once(struct notifier *nf, bool *done, struct ctkn_err *err)
{
  int64_t now_ms = ctkn__now_ms();
  bool lanes;
  int rc;

  if ((rc = refresh(nf, now_ms, &lanes, err)) != CTKN_OK)
    return rc;
  if (lanes && (rc = ctkn__ntf_sync_lanes(nf, err)) != CTKN_OK)
    return rc;
  if (now_ms >= nf->next_queue_ms) {
    nf->next_queue_ms = now_ms + QUEUE_EVERY_MS;
    if ((rc = ctkn__ntf_load_replays(nf, err)) != CTKN_OK)
      return rc;
  }
  if ((rc = ctkn__ntf_fill(nf, err)) != CTKN_OK)
    return rc;
  ctkn__ntf_dispatch(nf, ctkn_now_us());
  if ((rc = ctkn__ntf_reap(nf, err)) != CTKN_OK)
    return rc;
  if (now_ms >= nf->next_commit_ms) {
    nf->next_commit_ms = now_ms + COMMIT_EVERY_MS;
    ctkn__ntf_commit_lease(nf);
  }
  *done = !nf->o.follow && ctkn__ntf_idle(nf, ctkn_now_us());
  return CTKN_OK;
}

static int loop(struct notifier *nf, struct ctkn_err *err)
{
  for (;;) {
    bool done = false;
    int rc;
    if (*nf->o.stop)
      return CTKN_OK;
    if (nf->thread_started && atomic_load(&nf->proj_done)) {
      rc = atomic_load(&nf->proj_rc);
      if (err != NULL)
        *err = nf->proj_err;
      if (rc == CTKN_OK)
        rc = ctkn__err(err, CTKN_EINTERNAL, "notify: the projector stopped");
      return rc;
    }
    if ((rc = round_once(nf, &done, err)) != CTKN_OK || done)
      return rc;
    /* Answers just settled free window slots: fill them at once rather
     * than wait, when nothing may be left in flight to end the wait. */
    ctkn__http_wait(nf->http, nf->reaped > 0 ? 0 : nf->inflight > 0 ? 50 : 100);
  }
}

/* Stopping: start nothing more, but let the requests in flight finish
 * (bounded), so that what was delivered is recorded as delivered. */
static void drain(struct notifier *nf)
{
  struct ctkn_err err;
  int64_t until =
      ctkn__now_ms() +
      (nf->o.request_timeout_ms < 5000 ? nf->o.request_timeout_ms : 5000);

  while (nf->inflight > 0 && ctkn__now_ms() < until &&
         ctkn__ntf_reap(nf, &err) == CTKN_OK)
    ctkn__http_wait(nf->http, 20);
  if (ctkn__ntf_reap(nf, &err) != CTKN_OK ||
      ctkn__ntf_flush(nf, true, &err) != CTKN_OK ||
      ctkn__ntf_dlog_append(nf, true, &err) != CTKN_OK)
    ctkn__diag(CTKN_DIAG_ERROR, "notify",
               "the last results were not written: %s", err.msg);
  ctkn__ntf_commit_lease(nf);
}

static void notifier_free(struct notifier *nf)
{
  if (nf->thread_started) {
    nf->proj_stop = 1;
    pthread_join(nf->thread, NULL);
  }
  for (size_t i = 0; i < ntf_nlanes(nf); i++)
    ctkn__ntf_lane_free(nf, ntf_lanes(nf)[i]);
  for (size_t i = 0; i < ntf_nreplays(nf); i++)
    ctkn__ntf_entry_free(nf, ntf_replays(nf)[i]);
  for (size_t i = 0; i < nf->ndests; i++)
    ctkn_wipe(nf->dests[i].secret, sizeof(nf->dests[i].secret));
  ctkn__buf_free(&nf->pend);
  ctkn__buf_free(&nf->lanes);
  ctkn__buf_free(&nf->replays);
  free(nf->dests);
  free(nf->parts);
  free(nf->owned);
  ctkn_consumer_close(nf->lease);
  ctkn__ntf_dlog_close(nf);
  ctkn_projector_close(nf->proj);
  ctkn__http_close(nf->http);
  free(nf);
}

int ctkn_notify_run(ctkn_store *st, const struct ctkn_log_config *cfg,
                    ctkn_env env, const uint8_t key[CTKN_KEY_LEN],
                    const struct ctkn_notify_opts *opts,
                    struct ctkn_notify_stats *stats, struct ctkn_err *err)
{
  static volatile sig_atomic_t never = 0;
  struct notifier *nf = calloc(1, sizeof(*nf));
  struct ctkn_notify_stats scratch;
  bool none = false;
  int rc;

  if (stats == NULL)
    stats = &scratch;
  memset(stats, 0, sizeof(*stats));
  if (nf == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify");
  *nf = (struct notifier){.st = st, .cfg = cfg, .env = env, .key = key};
  nf->o = *opts;
  nf->policy = (struct ctkn_dest_policy){
      .env = env, .allow = opts->allow, .nallow = opts->nallow};
  nf->stats = stats;
  if (nf->o.stop == NULL)
    nf->o.stop = &never;
  if ((rc = resolve_opts(&nf->o, env, err)) == CTKN_OK &&
      (rc = ctkn__http_open(&nf->http, err)) == CTKN_OK &&
      (rc = ctkn_projector_open(&nf->proj, st, cfg, env, err)) == CTKN_OK &&
      (nf->o.trust_root == NULL ||
       ((rc = ctkn_projector_set_trust(nf->proj, nf->o.trust_root, err)) ==
            CTKN_OK &&
        (rc = ctkn_projector_refresh_keyring(nf->proj, err)) == CTKN_OK)) &&
      (rc = prepare(nf, err)) == CTKN_OK &&
      (rc = ctkn_lease_open(&nf->lease, cfg, nf->o.group, err)) == CTKN_OK &&
      (rc = ctkn__ntf_refresh_parts(nf, err)) == CTKN_OK &&
      (rc = ctkn__ntf_dlog_open(nf, err)) == CTKN_OK &&
      (rc = wait_for_partitions(nf, &none, err)) == CTKN_OK && !none &&
      (rc = loop(nf, err)) == CTKN_OK)
    drain(nf);
  notifier_free(nf);
  return rc;
}
