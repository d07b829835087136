/*
 * projector.c - the consuming loop: assign every partition at the stored
 * offsets, catch up to targets or the log's end, follow, report, replay.
 * Batches are applied by apply.c; long catch-ups run in pipeline.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "projector/projector_int.h"

/* A projector without its consumer: allocated, and refused for a frozen
 * replay. */
static int projector_new(ctkn_projector **out, ctkn_store *st,
                         const struct ctkn_log_config *cfg, ctkn_env env,
                         struct ctkn_err *err)
{
  ctkn_projector *p;
  int rc;

  *out = NULL;
  if ((p = calloc(1, sizeof(*p))) == NULL ||
      (p->msgs = calloc(BATCH_MAX, sizeof(*p->msgs))) == NULL) {
    free(p);
    return ctkn__err(err, CTKN_ENOMEM, "projector");
  }
  p->st = st;
  p->cfg = cfg;
  p->env = env;
  /* A replay's projection stands at its instant for good. */
  char as_of[CTKN_TIME_BUF];
  if ((rc = ctkn_store_frozen(st, as_of, err)) == CTKN_OK && as_of[0] != '\0')
    rc = ctkn__err(err, CTKN_ECONFLICT,
                   "this projection is a frozen replay as of %s; nothing "
                   "advances it (replay or project into a new --db)",
                   as_of);
  if (rc != CTKN_OK) {
    ctkn_projector_close(p);
    return rc;
  }
  *out = p;
  return CTKN_OK;
}

int ctkn_projector_open(ctkn_projector **out, ctkn_store *st,
                        const struct ctkn_log_config *cfg, ctkn_env env,
                        struct ctkn_err *err)
{
  ctkn_projector *p;
  int rc;

  if ((rc = projector_new(&p, st, cfg, env, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_consumer_open(&p->consumer, cfg, err)) != CTKN_OK) {
    ctkn_projector_close(p);
    return rc;
  }
  *out = p;
  return CTKN_OK;
}

static int assign_all(ctkn_projector *p, int64_t **his, struct ctkn_err *err);

/* ctkn_projector_open_trusted()'s second thread: the consumer, assigned.
 * It touches only the consumer and the partition state, which the
 * opening thread leaves alone until it has joined. */
struct assigner {
  ctkn_projector *p;
  int rc;
  struct ctkn_err err;
};

static void *open_assigned(void *arg)
{
  struct assigner *a = arg;

  a->rc = ctkn_consumer_open(&a->p->consumer, a->p->cfg, &a->err);
  if (a->rc == CTKN_OK)
    a->rc = assign_all(a->p, NULL, &a->err);
  return NULL;
}

int ctkn_projector_open_trusted(ctkn_projector **out, ctkn_store *st,
                                const struct ctkn_log_config *cfg, ctkn_env env,
                                const uint8_t root[CTKN_SIGN_PUB_LEN],
                                struct ctkn_err *err)
{
  struct assigner a = {0};
  ctkn_projector *p;
  pthread_t t;
  int rc;

  if ((rc = projector_new(&p, st, cfg, env, err)) != CTKN_OK)
    return rc;
  /* Each a connection and a few round trips: the consumer connects and
   * asks for the topic's bounds while this thread reads the keyring. The
   * consumer may start fetching, but nothing it fetches is judged before
   * the keyring is in place: the first catch-up comes after the join. */
  a.p = p;
  bool started = pthread_create(&t, NULL, open_assigned, &a) == 0;
  if (!started)
    open_assigned(&a);
  if ((rc = ctkn_projector_set_trust(p, root, err)) == CTKN_OK)
    rc = ctkn_projector_refresh_keyring(p, err);
  if (started)
    pthread_join(t, NULL);
  /* The consumer's failure first, as when it opened before the keyring
   * was read. */
  if (a.rc != CTKN_OK) {
    rc = a.rc;
    if (err != NULL)
      *err = a.err;
  }
  if (rc != CTKN_OK) {
    ctkn_projector_close(p);
    return rc;
  }
  *out = p;
  return CTKN_OK;
}

void ctkn_projector_close(ctkn_projector *p)
{
  if (p == NULL)
    return;
  ctkn_settings_follower_close(p->settings);
  ctkn_delivery_follower_close(p->deliveries);
  ctkn__ptrust_free(p->trust);
  ctkn_consumer_close(p->consumer);
  free(p->msgs);
  free(p->pos);
  free(p->paused);
  free(p->limit);
  free(p);
}

void ctkn_projector_set_hooks(ctkn_projector *p,
                              const struct ctkn_projector_hooks *h)
{
  if (h != NULL)
    p->hooks = *h;
  else
    memset(&p->hooks, 0, sizeof(p->hooks));
}

void ctkn__projector_advanced(const ctkn_projector *p)
{
  if (p->hooks.advanced != NULL)
    p->hooks.advanced(p->hooks.arg, p->pos, p->paused, p->nparts);
}

void ctkn_projector_stats(const ctkn_projector *p,
                          struct ctkn_projector_stats *out)
{
  *out = p->stats;
}

/* Read the stored next offsets of partitions [0, n) into pos, in one read
 * transaction. */
static int stored_offsets(ctkn_store *st, int64_t *pos, int32_t n,
                          struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  for (int32_t i = 0; i < n && rc == CTKN_OK; i++)
    rc = ctkn_store_offset(txn, i, &pos[i], err);
  ctkn_store_abort(txn);
  return rc;
}

/* The first partition whose stored offset pos[i] lies outside the log's
 * [lo[i], hi[i]], or -1. A topic deleted and re-created under the same
 * name shows so, unless the new one has grown as long as the old one was:
 * the topic ID (same_topic()) tells exactly, where the log knows it. */
static int32_t outside_log(const int64_t *pos, const int64_t *lo,
                           const int64_t *hi, int32_t n)
{
  for (int32_t i = 0; i < n; i++)
    if (pos[i] > hi[i] || pos[i] < lo[i])
      return i;
  return -1;
}

/*
 * The projection is of the topic the log holds now: its topic ID matches
 * the one recorded when the projection was first made (recorded now if
 * none was). Kafka gives a topic deleted and re-created under the same
 * name a new ID, however many records it has. A log without topic IDs
 * (librdkafka before 2.3.0: Debian 12's 2.0.2) answers "", and only the
 * offsets judge (outside_log()). Errors: CTKN_ECONFLICT, the log's.
 */
static int same_topic(ctkn_projector *p, struct ctkn_err *err)
{
  char id[CTKN_TOPIC_ID_BUF];
  int rc;

  if ((rc = ctkn_consumer_topic_id(p->consumer, id, err)) != CTKN_OK ||
      id[0] == '\0')
    return rc;
  struct ctkn_err why = {0};
  rc = ctkn_store_bind_topic_id(p->st, id, &why);
  if (rc == CTKN_ECONFLICT)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "the topic was deleted and re-created (%s). Project into "
                     "a fresh --db",
                     why.msg);
  if (rc != CTKN_OK && err != NULL)
    *err = why;
  return rc;
}

/* Size p's per-partition arrays for n partitions. The count itself, and
 * the new partitions' state, are the caller's to set. */
static int resize_partitions(ctkn_projector *p, int32_t n, struct ctkn_err *err)
{
  int64_t *pos = realloc(p->pos, (size_t)n * sizeof(*pos));
  if (pos != NULL)
    p->pos = pos;
  bool *paused = realloc(p->paused, (size_t)n * sizeof(*paused));
  if (paused != NULL)
    p->paused = paused;
  if (pos == NULL || paused == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
  return CTKN_OK;
}

/*
 * Learn the partition count, check the stored offsets against the log and
 * assign every partition at its stored offset. his (n entries, may be
 * NULL) receives the high watermarks.
 */
/* The log's bounds of partitions [0, n) into lo and hi, refusing a log
 * that is not the one the projection at pos (stored offsets) was built
 * from: a topic ID that changed, or a stored offset outside the bounds
 * (the topic deleted or re-created). */
static int same_log(ctkn_projector *p, const int64_t *pos, int32_t n,
                    int64_t *lo, int64_t *hi, struct ctkn_err *err)
{
  int32_t bad;
  int rc;

  if ((rc = ctkn_consumer_watermarks_all(p->consumer, n, lo, hi, err)) !=
          CTKN_OK ||
      (rc = same_topic(p, err)) != CTKN_OK)
    return rc;
  if ((bad = outside_log(pos, lo, hi, n)) >= 0)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "partition %" PRId32 ": the projection stopped at offset "
                     "%" PRId64 " but the log holds %" PRId64 "..%" PRId64
                     "; the topic was deleted or re-created. Project into a "
                     "fresh --db",
                     bad, pos[bad], lo[bad], hi[bad]);
  return CTKN_OK;
}

static int assign_all(ctkn_projector *p, int64_t **his, struct ctkn_err *err)
{
  int64_t *los = NULL, *hi;
  int32_t n;
  int rc;

  if ((rc = ctkn_consumer_partitions(p->consumer, &n, err)) != CTKN_OK)
    return rc;
  if (n > CTKN_STORE_MAX_PARTITIONS)
    return ctkn__err(err, CTKN_EKAFKA,
                     "topic has %" PRId32 " partitions; "
                     "at most %d are supported",
                     n, CTKN_STORE_MAX_PARTITIONS);
  if ((rc = resize_partitions(p, n, err)) != CTKN_OK)
    return rc;
  if ((hi = calloc((size_t)n, sizeof(*hi))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
  for (int32_t i = p->nparts; i < n; i++)
    p->paused[i] = false;
  p->nparts = n;

  if ((rc = stored_offsets(p->st, p->pos, n, err)) != CTKN_OK)
    goto fail;
  if ((los = calloc((size_t)n, sizeof(*los))) == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
    goto fail;
  }
  if ((rc = same_log(p, p->pos, n, los, hi, err)) != CTKN_OK)
    goto fail;
  if ((rc = ctkn_consumer_assign(p->consumer, p->pos, n, err)) != CTKN_OK)
    goto fail;
  p->assigned = true;
  ctkn__projector_advanced(p);
  free(los);
  if (his != NULL)
    *his = hi;
  else
    free(hi);
  return CTKN_OK;
fail:
  free(los);
  free(hi);
  return rc;
}

/* Each partition's pause and, with trust, its newest checkpoint's time
 * (-1 without trust), read in txn. */
static int trust_status(const ctkn_projector *p, ctkn_store_txn *txn,
                        struct ctkn_partition_status *s, int32_t n,
                        struct ctkn_err *err)
{
  int rc = CTKN_OK;

  for (int32_t i = 0; i < n && rc == CTKN_OK; i++) {
    bool stored = false;
    rc = ctkn_store_is_paused(txn, i, &stored, err);
    s[i].paused = stored || (i < p->nparts && p->paused[i]);
    s[i].checkpoint_at = -1;
    if (p->trust != NULL)
      rc = ctkn__ptrust_checkpoint_at(txn, i, &s[i].checkpoint_at, err);
  }
  return rc;
}

static const struct ctkn_log_msg *step_msg(struct source *s, size_t i)
{
  return (const struct ctkn_log_msg *)s->arg + i;
}

void ctkn__projector_clamp_held(ctkn_projector *p)
{
  if (p->trust == NULL)
    return;
  for (int32_t i = 0; i < p->nparts; i++) {
    int64_t first = ctkn__ptrust_held_first(p->trust, i);
    if (first >= 0 && first < p->pos[i])
      p->pos[i] = first;
  }
}

int ctkn_projector_set_trust(ctkn_projector *p,
                             const uint8_t root[CTKN_SIGN_PUB_LEN],
                             struct ctkn_err *err)
{
  struct ctkn__ptrust *t;
  int rc;

  if ((rc = ctkn__ptrust_open(&t, p->st, p->cfg, root, err)) != CTKN_OK)
    return rc;
  ctkn__ptrust_free(p->trust);
  p->trust = t;
  return CTKN_OK;
}

static int refresh_cb(void *arg, struct ctkn_err *err)
{
  return ctkn_projector_refresh_keyring(arg, err);
}

int ctkn_projector_trust_settings(ctkn_projector *p,
                                  struct ctkn_settings_follower *f,
                                  struct ctkn_err *err)
{
  if (p->trust == NULL)
    return CTKN_OK;
  return ctkn_settings_follower_set_trust(f, ctkn__ptrust_keyring(p->trust),
                                          refresh_cb, p, err);
}

int ctkn_projector_catch_up_deliveries(ctkn_projector *p, struct ctkn_err *err)
{
  ctkn_delivery_follower *f = NULL;
  int rc = ctkn_delivery_follower_open(&f, p->st, p->cfg, err);

  if (rc == CTKN_OK && p->trust != NULL)
    rc = ctkn_delivery_follower_set_trust(f, ctkn__ptrust_keyring(p->trust),
                                          refresh_cb, p, err);
  if (rc == CTKN_OK)
    rc = ctkn_delivery_follower_catch_up(f, err);
  ctkn_delivery_follower_close(f);
  return rc;
}

int ctkn_projector_refresh_keyring(ctkn_projector *p, struct ctkn_err *err)
{
  if (p->trust == NULL)
    return CTKN_OK;
  return ctkn__ptrust_refresh(p->trust, p->st, NULL, err);
}

const struct ctkn_keyring *ctkn_projector_keyring(const ctkn_projector *p)
{
  return p->trust ? ctkn__ptrust_keyring(p->trust) : NULL;
}

/* Poll once and apply what arrived. *got receives the record count. */
static int step(ctkn_projector *p, int timeout_ms, size_t *got,
                struct ctkn_err *err)
{
  size_t n = 0;
  int rc;

  if ((rc = ctkn_consumer_poll(p->consumer, timeout_ms, p->msgs, BATCH_MAX, &n,
                               err)) != CTKN_OK)
    return rc;
  if (p->limit != NULL) {
    /* A replay applies nothing at or past its cut. */
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) {
      int32_t part = p->msgs[i].partition;
      if (part < p->nlimit && p->msgs[i].offset < p->limit[part])
        p->msgs[keep++] = p->msgs[i];
    }
    n = keep;
  }
  *got = n;
  if (n == 0)
    return CTKN_OK;
  struct source src = {n, step_msg, NULL, p->msgs};
  if ((rc = ctkn__projector_apply_source(p->st, p->env, p->trust, &src,
                                         p->paused, p->nparts, &p->stats,
                                         err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < n; i++) {
    int32_t part = p->msgs[i].partition;
    if (part < p->nparts && !p->paused[part] &&
        p->msgs[i].offset + 1 > p->pos[part])
      p->pos[part] = p->msgs[i].offset + 1;
  }
  ctkn__projector_clamp_held(p);
  ctkn__projector_advanced(p);
  return CTKN_OK;
}

/*
 * Where another writer (a follower in the same process, another command)
 * has applied past this projector, move ahead to the stored offsets rather
 * than read and skip those records. stored (nparts entries) holds the
 * store's offsets when the caller has just read them, and is overwritten;
 * NULL reads them here. *moved tells whether anything did.
 */
static int follow_store(ctkn_projector *p, int64_t *stored, bool *moved,
                        struct ctkn_err *err)
{
  int64_t *ahead = stored;
  struct ctkn_err serr;
  int rc = CTKN_OK;

  *moved = false;
  if (ahead == NULL) {
    ahead = calloc((size_t)(p->nparts > 0 ? p->nparts : 1), sizeof(*ahead));
    if (ahead == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
    if ((rc = stored_offsets(p->st, ahead, p->nparts, err)) != CTKN_OK) {
      free(ahead);
      return rc;
    }
  }
  for (int32_t i = 0; i < p->nparts; i++) {
    if (!p->paused[i] && ahead[i] > p->pos[i]) {
      p->pos[i] = ahead[i];
      *moved = true;
    } else {
      ahead[i] = -1; /* not to be moved */
    }
  }
  if (*moved &&
      ctkn_consumer_seek(p->consumer, ahead, p->nparts, &serr) != CTKN_OK) {
    /* The seek only spares reading records the store has: under load
     * librdkafka 2.0.2 can time out waiting for it. The position stands
     * with the store, so the catch-up goes on: the consumer reads on
     * from where it was (or from where the late seek lands), and what
     * lies below the stored offsets is skipped. Failing here answered a
     * command whose event the store had already judged "not yet
     * applied"; assigning again would restart the fetch. */
    ctkn__diag(CTKN_DIAG_DEBUG, "projector", "%s; reading on instead",
               serr.msg);
  }
  if (ahead != stored)
    free(ahead);
  return rc;
}

/* Whether the stored offsets ahead (n entries) lie inside the log; *hi
 * receives the log's end offsets. */
static int inside_log(ctkn_projector *p, const int64_t *ahead, int64_t *hi,
                      int32_t n, bool *inside, struct ctkn_err *err)
{
  int64_t *lo = calloc((size_t)n, sizeof(*lo));
  int rc;

  if (lo == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
  rc = ctkn_consumer_watermarks_all(p->consumer, n, lo, hi, err);
  *inside = rc == CTKN_OK && outside_log(ahead, lo, hi, n) < 0;
  free(lo);
  return rc;
}

/*
 * The log's end offsets for an assigned projector, in *his. Partitions
 * that the store has passed (another writer applied them) are moved ahead
 * to the stored offset rather than read again. A changed partition count,
 * or stored offsets outside the log, go through assign_all(), which
 * reassigns or reports the re-created topic.
 */
static int end_targets(ctkn_projector *p, int64_t **his, struct ctkn_err *err)
{
  int64_t *hi, *ahead;
  int32_t n;
  bool moved = false, inside = false;
  int rc;

  if ((rc = ctkn_consumer_partitions(p->consumer, &n, err)) != CTKN_OK)
    return rc;
  if (n != p->nparts)
    return assign_all(p, his, err);
  hi = calloc((size_t)n, sizeof(*hi));
  ahead = calloc((size_t)n, sizeof(*ahead));
  if (hi == NULL || ahead == NULL) {
    free(hi);
    free(ahead);
    return ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
  }
  if ((rc = stored_offsets(p->st, ahead, n, err)) == CTKN_OK &&
      (rc = inside_log(p, ahead, hi, n, &inside, err)) == CTKN_OK) {
    if (!inside) {
      free(hi);
      free(ahead);
      return assign_all(p, his, err);
    }
    rc = follow_store(p, ahead, &moved, err);
  }
  free(ahead);
  if (rc == CTKN_OK)
    *his = hi;
  else
    free(hi);
  return rc;
}

/* Whether every partition that is not paused has reached its target:
 * targets[i] (n entries, 0 past them), or with targets NULL hi[i]. */
static bool at_targets(const ctkn_projector *p, const int64_t *targets,
                       int32_t n, const int64_t *hi)
{
  for (int32_t i = 0; i < p->nparts; i++) {
    int64_t want = targets ? (i < n ? targets[i] : 0) : hi[i];
    if (!p->paused[i] && p->pos[i] < want)
      return false;
  }
  return true;
}

/* How many records the partitions that are not paused have to go to hi. */
static int64_t lag_to(const ctkn_projector *p, const int64_t *hi)
{
  int64_t lag = 0;

  for (int32_t i = 0; i < p->nparts; i++)
    if (!p->paused[i] && hi[i] > p->pos[i])
      lag += hi[i] - p->pos[i];
  return lag;
}

/* Poll and apply on this thread until at_targets(), giving up after
 * cfg->timeout_ms without progress. */
static int consume_to(ctkn_projector *p, const int64_t *targets, int32_t n,
                      const int64_t *hi, struct ctkn_err *err)
{
  int64_t deadline = ctkn__now_ms() + p->cfg->timeout_ms;
  int rc;

  while (!at_targets(p, targets, n, hi)) {
    if (ctkn__now_ms() > deadline)
      return ctkn__err(err, CTKN_ETIMEOUT,
                       "projection made no progress for %d ms",
                       p->cfg->timeout_ms);
    bool moved = false;
    if (p->limit == NULL &&
        (rc = follow_store(p, NULL, &moved, err)) != CTKN_OK)
      return rc;
    if (moved)
      continue; /* another writer got there: check again */
    size_t got;
    if ((rc = step(p, 20, &got, err)) != CTKN_OK)
      return rc;
    if (got > 0)
      deadline = ctkn__now_ms() + p->cfg->timeout_ms;
  }
  return CTKN_OK;
}

int ctkn_projector_catch_up(ctkn_projector *p, const int64_t *targets,
                            int32_t n, struct ctkn_err *err)
{
  int64_t *hi = NULL;
  int rc = CTKN_OK; /* a target already reached returns at once */

  /* Assign once: a reassignment restarts fetching, and the offset queries
   * that go with it wait behind the fetch in flight (and librdkafka 2.0.2
   * can trip over assignments in quick succession: #5573). Later calls
   * with explicit targets just consume on; later calls to the log's end
   * read its offsets and move ahead to where another writer got. */
  if (!p->assigned)
    rc = assign_all(p, &hi, err);
  else if (targets == NULL)
    rc = end_targets(p, &hi, err);
  if (rc != CTKN_OK)
    return rc;
  /* A long way to go: read and decode on a second thread. */
  if (targets == NULL && p->limit == NULL && lag_to(p, hi) >= PIPE_MIN_LAG)
    rc = ctkn__projector_catch_up_pipelined(p, hi, err);
  else
    rc = consume_to(p, targets, n, hi, err);
  free(hi);
  /* A failed catch-up may have consumed records it did not commit (an
   * apply that failed: a full map, a full disk). The next one assigns
   * again from the stored offsets, as a follower does after an error, or
   * it would wait for records the consumer has already passed. */
  if (rc != CTKN_OK)
    p->assigned = false;
  return rc;
}

/* Fill s[0..n)'s partition, log_start and log_end. */
static int status_bounds(ctkn_projector *p, struct ctkn_partition_status *s,
                         int32_t n, struct ctkn_err *err)
{
  int64_t *lo = calloc((size_t)(n > 0 ? n : 1), 2 * sizeof(*lo));
  int rc;

  if (lo == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: status");
  rc = ctkn_consumer_watermarks_all(p->consumer, n, lo, lo + n, err);
  for (int32_t i = 0; rc == CTKN_OK && i < n; i++) {
    s[i].partition = i;
    s[i].log_start = lo[i];
    s[i].log_end = lo[n + i];
  }
  free(lo);
  return rc;
}

/* Every few seconds: pick up added partitions, report lag. */
static int report(ctkn_projector *p, struct ctkn_err *err)
{
  int32_t n;
  int rc;

  if ((rc = ctkn_consumer_partitions(p->consumer, &n, err)) != CTKN_OK)
    return rc;
  if (n != p->nparts) {
    ctkn__diag(CTKN_DIAG_INFO, "projector",
               "topic now has %" PRId32 " partitions (was %" PRId32
               "); reassigning",
               n, p->nparts);
    if ((rc = assign_all(p, NULL, err)) != CTKN_OK)
      return rc;
  }
  struct ctkn_partition_status *s = calloc((size_t)p->nparts, sizeof(*s));
  int64_t lag = 0;
  if (s == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: status");
  if ((rc = status_bounds(p, s, p->nparts, err)) != CTKN_OK) {
    free(s);
    return rc;
  }
  for (int32_t i = 0; i < p->nparts; i++) {
    s[i].projected = p->pos[i];
    if (s[i].log_end > p->pos[i])
      lag += s[i].log_end - p->pos[i];
  }
  ctkn_store_txn *txn;
  if ((rc = ctkn_store_begin(p->st, false, &txn, err)) == CTKN_OK) {
    rc = trust_status(p, txn, s, p->nparts, err);
    ctkn_store_abort(txn);
  }
  if (rc != CTKN_OK) {
    free(s);
    return rc;
  }
  if (p->hooks.status != NULL) {
    p->hooks.status(p->hooks.arg, s, p->nparts, &p->stats);
    free(s);
    return CTKN_OK;
  }
  free(s);
  char fields[256];
  snprintf(fields, sizeof(fields),
           "\"applied\":%" PRIu64 ",\"rejected\":%" PRIu64
           ",\"quarantined\":%" PRIu64 ",\"lag\":%" PRId64
           ",\"paused\":%" PRId32 ",\"unfollowed\":%u",
           p->stats.applied, p->stats.rejected, p->stats.quarantined, lag,
           p->stats.paused, p->stats.unfollowed);
  ctkn__diag_fields(CTKN_DIAG_INFO, "projector", "progress", fields);
  return CTKN_OK;
}

/* A side went down or came back: the stats say so, and the status is
 * reported before the next wait, so that readers learn it at once. */
static void side_changed(ctkn_projector *p)
{
  p->stats.unfollowed =
      (p->settings_side.down ? CTKN_PROJECTOR_SETTINGS : 0) |
      (p->deliveries_side.down ? CTKN_PROJECTOR_NOTIFICATIONS : 0);
  p->report_now = true;
}

/*
 * A side topic's follower failed with rc: it is closed by the caller, and
 * opened again after the side's backoff. A topic that was never found is
 * looked for every SIDE_BACKOFF_MAX_MS, quietly after the first time (a
 * deployment initialized before it existed: the first writer of this
 * version creates it), and is not down: there is nothing to be behind.
 */
static void side_failed(ctkn_projector *p, struct side *sd, const char *what,
                        int rc, const struct ctkn_err *err)
{
  bool missing = rc == CTKN_ENOTFOUND && !sd->opened;
  int wait = missing          ? SIDE_BACKOFF_MAX_MS
             : sd->backoff_ms ? sd->backoff_ms
                              : SIDE_BACKOFF_MIN_MS;

  if (!missing || sd->retry_ms == 0)
    ctkn__diag(CTKN_DIAG_WARN, "projector",
               "%s not followed: %s; retrying in %d ms", what, err->msg, wait);
  sd->retry_ms = ctkn__now_ms() + wait;
  sd->backoff_ms =
      wait * 2 < SIDE_BACKOFF_MAX_MS ? wait * 2 : SIDE_BACKOFF_MAX_MS;
  if (!missing && !sd->down) {
    sd->down = true;
    side_changed(p);
  }
}

/* A side's follower polled without error: it is up (unless it stopped at
 * a record it cannot read: stopped). */
static void side_ok(ctkn_projector *p, struct side *sd, bool stopped)
{
  sd->backoff_ms = 0;
  sd->opened = true;
  if (sd->down != stopped) {
    sd->down = stopped;
    side_changed(p);
  }
}

/* Whether sd is due to be opened again. */
static bool side_due(const struct side *sd)
{
  return ctkn__now_ms() >= sd->retry_ms;
}

/*
 * Project the settings topic beside the events (destinations, API keys,
 * the keyring; settings.h), so that every replica has them. Its failures
 * are reported and retried here (side_failed()); they never stop the token
 * projection, and the status says the settings are not followed meanwhile.
 * open_settings() opens the follower when it is due, so the wait covers
 * its topic too.
 */
static void open_settings(ctkn_projector *p)
{
  struct ctkn_err err = {0};
  int rc;

  if (p->settings != NULL || !side_due(&p->settings_side))
    return;
  rc = ctkn_settings_follower_open(&p->settings, p->st, p->cfg, &err);
  if (rc == CTKN_OK && p->trust != NULL)
    rc = ctkn_projector_trust_settings(p, p->settings, &err);
  if (rc != CTKN_OK) {
    ctkn_settings_follower_close(p->settings);
    p->settings = NULL;
    side_failed(p, &p->settings_side, "settings", rc, &err);
  }
}

/* Apply what the settings topic has; *got counts it. */
static void follow_settings(ctkn_projector *p, size_t *got)
{
  struct ctkn_err err = {0};
  int rc;

  *got = 0;
  if (p->settings == NULL)
    return;
  rc = ctkn_settings_follower_poll(p->settings, 0, got, &err);
  if (rc != CTKN_OK) {
    ctkn_settings_follower_close(p->settings);
    p->settings = NULL;
    side_failed(p, &p->settings_side, "settings", rc, &err);
    return;
  }
  side_ok(p, &p->settings_side,
          ctkn_settings_follower_consumer(p->settings) == NULL);
}

/* Project the notifications topic beside the events (delivery state,
 * delivery.h), as the settings. */
static void open_deliveries(ctkn_projector *p)
{
  struct ctkn_err err = {0};
  int rc;

  if (p->deliveries != NULL || !side_due(&p->deliveries_side))
    return;
  rc = ctkn_delivery_follower_open(&p->deliveries, p->st, p->cfg, &err);
  if (rc == CTKN_OK && p->trust != NULL)
    rc = ctkn_delivery_follower_set_trust(
        p->deliveries, ctkn__ptrust_keyring(p->trust), refresh_cb, p, &err);
  if (rc != CTKN_OK) {
    ctkn_delivery_follower_close(p->deliveries);
    p->deliveries = NULL;
    side_failed(p, &p->deliveries_side, "notifications", rc, &err);
  }
}

static void follow_deliveries(ctkn_projector *p, size_t *got)
{
  struct ctkn_err err = {0};
  int rc;

  *got = 0;
  if (p->deliveries == NULL)
    return;
  rc = ctkn_delivery_follower_poll(p->deliveries, 0, got, &err);
  if (rc != CTKN_OK) {
    ctkn_delivery_follower_close(p->deliveries);
    p->deliveries = NULL;
    side_failed(p, &p->deliveries_side, "notifications", rc, &err);
    return;
  }
  side_ok(p, &p->deliveries_side,
          ctkn_delivery_follower_consumer(p->deliveries) == NULL);
}

/* `ctkn rebuild` swapped a new projection in: go on from its offsets
 * (what this process wrote meanwhile went to the old one). */
static int follow_rebuilt(ctkn_projector *p, struct ctkn_err *err)
{
  bool swapped;
  int rc;

  if ((rc = ctkn_store_refresh(p->st, &swapped, err)) != CTKN_OK || !swapped)
    return rc;
  ctkn__diag(CTKN_DIAG_INFO, "projector",
             "the projection was rebuilt; following the new one");
  rc = assign_all(p, NULL, err);
  /* The new projection's settings start again from its offsets. */
  ctkn_settings_follower_close(p->settings);
  p->settings = NULL;
  p->settings_side.retry_ms = 0;
  ctkn_delivery_follower_close(p->deliveries);
  p->deliveries = NULL;
  p->deliveries_side.retry_ms = 0;
  return rc;
}

/*
 * Wait until the event, settings or notifications topic has something, up
 * to the idle wait. Waiting on all three at once (rather than on the
 * events, reading the others in between) keeps a settings record's
 * latency (an API key revoked, a keyring record) independent of how idle
 * the events are, without waking more often when nothing comes. This
 * changes no order the projection depends on: a keyring record takes
 * effect from its position on each event partition (trust), not from when
 * it is read. *ready is the consumer that has something (3: none).
 */
static int wait_any(ctkn_projector *p, size_t *ready, struct ctkn_err *err)
{
  ctkn_consumer *cs[3] = {p->consumer, NULL, NULL};
  int ms = p->hooks.idle_ms > 0 ? p->hooks.idle_ms : 200;

  if (p->settings != NULL)
    cs[1] = ctkn_settings_follower_consumer(p->settings);
  if (p->deliveries != NULL)
    cs[2] = ctkn_delivery_follower_consumer(p->deliveries);
  if (p->quiet >= 0) {
    cs[p->quiet] = NULL;
    ms = ms < 50 ? ms : 50;
  }
  return ctkn_consumer_wait(cs, 3, ms, ready, err);
}

/* One round of following: wait, apply what came on any topic, and report
 * when *next_report is due. */
static int follow_once(ctkn_projector *p, int64_t *next_report,
                       struct ctkn_err *err)
{
  size_t got[3] = {0, 0, 0}, ready = 3;
  int rc = follow_rebuilt(p, err);

  if (rc == CTKN_OK) {
    open_settings(p);
    open_deliveries(p);
    rc = wait_any(p, &ready, err);
  }
  if (rc == CTKN_OK)
    rc = step(p, 0, &got[0], err);
  if (rc == CTKN_OK) {
    follow_settings(p, &got[1]);
    follow_deliveries(p, &got[2]);
    p->quiet = ready < 3 && got[ready] == 0 ? (int)ready : -1;
  }
  if (rc == CTKN_OK && (p->report_now || ctkn__now_ms() >= *next_report)) {
    p->report_now = false;
    *next_report =
        ctkn__now_ms() + (p->hooks.status_ms > 0 ? p->hooks.status_ms : 5000);
    rc = report(p, err);
  }
  return rc;
}

/* Sleep about a second, waking early when *stop is set. */
static void back_off(volatile sig_atomic_t *stop)
{
  for (int i = 0; i < 10 && !*stop; i++) {
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

int ctkn_projector_follow(ctkn_projector *p, volatile sig_atomic_t *stop,
                          struct ctkn_err *err)
{
  int64_t next_report = 0;
  int rc;

  p->quiet = -1;
  if ((rc = assign_all(p, NULL, err)) != CTKN_OK)
    return rc;
  while (!*stop) {
    if ((rc = follow_once(p, &next_report, err)) == CTKN_OK)
      continue;
    if (!ctkn__transient(rc))
      return rc;
    /* Keep going: say so, back off, and start again from the offsets the
     * store holds, which is always safe. */
    ctkn__diag(CTKN_DIAG_WARN, "projector", "%s: %s; retrying in 1 s",
               ctkn_strerror(rc), err ? err->msg : "");
    back_off(stop);
    if (!*stop && (rc = assign_all(p, NULL, err)) != CTKN_OK &&
        !ctkn__transient(rc))
      return rc;
    next_report = 0;
  }
  return CTKN_OK;
}

int32_t ctkn_projector_partitions(const ctkn_projector *p)
{
  return p->nparts;
}

int ctkn_projector_log_ends(ctkn_projector *p, int64_t **hi, int32_t *n,
                            struct ctkn_err *err)
{
  int rc;

  *hi = NULL;
  if ((rc = ctkn_consumer_partitions(p->consumer, n, err)) != CTKN_OK)
    return rc;
  if (*n > CTKN_STORE_MAX_PARTITIONS)
    return ctkn__err(err, CTKN_EKAFKA,
                     "topic has %" PRId32 " partitions; at most %d are "
                     "supported",
                     *n, CTKN_STORE_MAX_PARTITIONS);
  /* As a catch-up to the log's end would: a log that is not the one the
   * stored offsets came from is refused, not waited on. */
  size_t sz = (size_t)(*n > 0 ? *n : 1) * sizeof(int64_t);
  int64_t *lo = malloc(sz), *pos = malloc(sz);
  if ((*hi = malloc(sz)) == NULL || lo == NULL || pos == NULL)
    rc = ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
  else if ((rc = stored_offsets(p->st, pos, *n, err)) == CTKN_OK)
    rc = same_log(p, pos, *n, lo, *hi, err);
  free(lo);
  free(pos);
  if (rc != CTKN_OK) {
    free(*hi);
    *hi = NULL;
  }
  return rc;
}

int ctkn_projector_status(ctkn_projector *p, struct ctkn_partition_status **out,
                          int32_t *n, struct ctkn_err *err)
{
  struct ctkn_partition_status *s;
  ctkn_store_txn *txn;
  int32_t np;
  int rc;

  *out = NULL;
  *n = 0;
  if ((rc = ctkn_consumer_partitions(p->consumer, &np, err)) != CTKN_OK)
    return rc;
  if ((s = calloc((size_t)np, sizeof(*s))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "status");
  if ((rc = ctkn_store_begin(p->st, false, &txn, err)) != CTKN_OK) {
    free(s);
    return rc;
  }
  for (int32_t i = 0; i < np && rc == CTKN_OK; i++) {
    s[i].partition = i;
    rc = ctkn_store_offset(txn, i, &s[i].projected, err);
  }
  if (rc == CTKN_OK)
    rc = trust_status(p, txn, s, np, err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK) {
    free(s);
    return rc;
  }
  if ((rc = status_bounds(p, s, np, err)) != CTKN_OK) {
    free(s);
    return rc;
  }
  *out = s;
  *n = np;
  return CTKN_OK;
}

int ctkn_projector_replay(ctkn_projector *p, int64_t as_of_us,
                          struct ctkn_err *err)
{
  int32_t n;
  int rc;

  if ((rc = ctkn_consumer_partitions(p->consumer, &n, err)) != CTKN_OK)
    return rc;
  free(p->limit);
  if ((p->limit = calloc((size_t)n, sizeof(*p->limit))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "replay");
  p->nlimit = n;
  /* "As of T": per partition, the prefix before the first record whose
   * timestamp (occurred_at, in ms) is after T. */
  int64_t ms = as_of_us / 1000;
  if ((rc = ctkn_consumer_offsets_after(p->consumer, ms, p->limit, n, err)) !=
          CTKN_OK ||
      (rc = ctkn_projector_catch_up(p, p->limit, n, err)) != CTKN_OK)
    return rc;
  for (int32_t i = 0; i < n && i < p->nparts; i++) {
    if (p->pos[i] < p->limit[i])
      return ctkn__err(err, CTKN_EKAFKA,
                       "partition %" PRId32 " stopped at %" PRId64
                       " before the cut at %" PRId64
                       " (a newer schema version?)",
                       i, p->pos[i], p->limit[i]);
  }
  return ctkn_store_freeze(p->st, as_of_us, err);
}

/* Catch the projection in st up: to targets, or (NULL) the log's end. */
