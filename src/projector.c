/*
 * projector.c - log -> apply -> store, batched, exactly once in effect.
 *
 * Invariant: a partition's stored next offset and the state produced by
 * the records below it are committed in the same LMDB transaction. Every
 * record below the stored offset is skipped, so two processes advancing
 * one projection, or a process restarted after SIGKILL, never apply a
 * record twice.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctkn/codec.h"
#include "ctkn/projector.h"
#include "internal.h"

#define BATCH_MAX 8192 /* records per poll and per write transaction */

/* Per-batch view of the stored offsets, so each record costs no lookup. */
struct cursor {
  int32_t n;
  int64_t *next; /* next offset per partition, -1 until loaded */
  bool *dirty;   /* advanced in this batch: write it back at commit */
};

static int64_t cursor_next(struct cursor *c, ctkn_store_txn *txn, int32_t p)
{
  if (p >= c->n) {
    int32_t n = p + 1;
    int64_t *next = realloc(c->next, (size_t)n * sizeof(*next));
    if (next == NULL)
      return -2;
    c->next = next;
    bool *dirty = realloc(c->dirty, (size_t)n * sizeof(*dirty));
    if (dirty == NULL)
      return -2;
    c->dirty = dirty;
    for (int32_t i = c->n; i < n; i++) {
      next[i] = -1;
      dirty[i] = false;
    }
    c->n = n;
  }
  if (c->next[p] < 0)
    c->next[p] = ctkn_store_offset(txn, p);
  return c->next[p];
}

int ctkn_projector_decode(const struct ctkn_log_msg *m, struct ctkn_event *ev,
                          struct ctkn_err *err)
{
  int rc;

  if (m->schema_version == -1)
    return ctkn__err(err, CTKN_EDECODE, "missing header %s", CTKN_HDR_SCHEMA);
  if (m->schema_version < 1)
    return ctkn__err(err, CTKN_EDECODE, "malformed header %s", CTKN_HDR_SCHEMA);
  if (m->event_type[0] == '\0')
    return ctkn__err(err, CTKN_EDECODE, "missing header %s",
                     CTKN_HDR_EVENT_TYPE);
  if (m->value == NULL || m->value_len == 0)
    return ctkn__err(err, CTKN_EDECODE, "empty record value");
  if ((rc = ctkn_event_decode(m->value, m->value_len, ev, err)) != CTKN_OK) {
    char detail[sizeof(err->msg)];
    memcpy(detail, err->msg, sizeof(detail));
    return ctkn__err(err, CTKN_EDECODE, "does not decode: %.200s", detail);
  }
  if ((rc = ctkn_event_check(ev, err)) != CTKN_OK) {
    /* Copy both: ctkn__err() clears err->field before formatting. */
    char field[sizeof(err->field)], detail[sizeof(err->msg)];
    memcpy(field, err->field, sizeof(field));
    memcpy(detail, err->msg, sizeof(detail));
    return ctkn__err(err, CTKN_EDECODE, "invalid event: %.60s %.180s", field,
                     detail);
  }
  size_t idlen = strlen(ev->data.id);
  if (m->key == NULL || m->key_len != idlen ||
      memcmp(m->key, ev->data.id, idlen) != 0)
    return ctkn__err(err, CTKN_EDECODE, "record key is not data.id (%s)",
                     ev->data.id);
  if (strcmp(m->event_type, ctkn_event_type_str(ev->type)) != 0)
    return ctkn__err(
        err, CTKN_EDECODE, "header %s \"%.60s\" does not match event_type %s",
        CTKN_HDR_EVENT_TYPE, m->event_type, ctkn_event_type_str(ev->type));
  return CTKN_OK;
}

/* Apply one decoded event inside txn. */
static int apply_event(ctkn_store_txn *txn, ctkn_env env,
                       const struct ctkn_log_msg *m,
                       const struct ctkn_event *ev,
                       struct ctkn_projector_stats *stats, struct ctkn_err *err)
{
  struct ctkn_record cur, next;
  char reason[256];
  const struct ctkn_record *curp = NULL;
  int rc;

  rc = ctkn_store_get(txn, ev->data.id, &cur, err);
  if (rc == CTKN_OK)
    curp = &cur;
  else if (rc != CTKN_ENOTFOUND)
    return rc;

  /* ctkn_projector_decode() has run ctkn_event_check() already. */
  int verdict =
      ctkn__apply_checked(curp, ev, env, &next.token, reason, sizeof(reason));
  if (verdict == CTKN_APPLIED && curp != NULL &&
      curp->partition != m->partition) {
    /* A token's events must share one partition, or replicas could apply
     * them in different orders. */
    snprintf(reason, sizeof(reason),
             "partition: token lives on partition %" PRId32, curp->partition);
    verdict = CTKN_REJECTED;
  }
  if (verdict == CTKN_APPLIED && ev->idempotency_key[0] != '\0') {
    char other[CTKN_ID_BUF];
    uint8_t hash[CTKN_HASH_LEN];
    rc = ctkn_store_get_idem(txn, ev->idempotency_key, other, hash, err);
    if (rc == CTKN_OK) {
      /* A racing duplicate: the first create with the key won. */
      snprintf(reason, sizeof(reason), "idempotency: key already used by %s",
               other);
      verdict = CTKN_REJECTED;
    } else if (rc != CTKN_ENOTFOUND) {
      return rc;
    }
  }
  if (verdict == CTKN_REJECTED) {
    stats->rejected++;
    return ctkn_store_put_rejected(txn, m->partition, m->offset, ev->event_id,
                                   ev->data.id, reason, err);
  }

  next.version = ev->version;
  next.partition = m->partition;
  next.offset = m->offset;
  rc = ctkn_store_put(txn, &next, err);
  if (rc == CTKN_ECONFLICT) {
    /* Another token already holds this token string (a writer that reused
     * one). The store undid the put; every replica rejects the same way. */
    stats->rejected++;
    return ctkn_store_put_rejected(txn, m->partition, m->offset, ev->event_id,
                                   ev->data.id,
                                   "token: token string already in use", err);
  }
  if (rc != CTKN_OK || (rc = ctkn_store_put_history(
                            txn, ev->data.id, ev->version, m->partition,
                            m->offset, m->value, m->value_len, err)) != CTKN_OK)
    return rc;
  if (ev->idempotency_key[0] != '\0' &&
      (rc = ctkn_store_put_idem(txn, ev->idempotency_key, ev->data.id,
                                ev->request_hash, err)) != CTKN_OK)
    return rc;
  stats->applied++;
  return CTKN_OK;
}

int ctkn_projector_apply(ctkn_store *st, ctkn_env env,
                         const struct ctkn_log_msg *msgs, size_t n,
                         bool *paused, int32_t npaused,
                         struct ctkn_projector_stats *stats,
                         struct ctkn_err *err)
{
  struct ctkn_projector_stats batch = {0};
  struct cursor cur = {0, NULL, NULL};
  ctkn_store_txn *txn = NULL;
  struct ctkn_event *ev = NULL;
  struct ctkn_err derr;
  int rc;

  if (n == 0)
    return CTKN_OK;
  if ((ev = malloc(sizeof(*ev))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: event buffer");
  if ((rc = ctkn_store_begin(st, true, &txn, err)) != CTKN_OK)
    goto out;

  for (size_t i = 0; i < n; i++) {
    const struct ctkn_log_msg *m = &msgs[i];
    int32_t p = m->partition;
    int64_t next = cursor_next(&cur, txn, p);

    if (next == -2) {
      rc = ctkn__err(err, CTKN_ENOMEM, "projector: offsets");
      goto out;
    }
    if (m->offset < next) {
      batch.skipped++;
      continue;
    }
    if (paused != NULL && p < npaused && paused[p])
      continue;
    if (m->schema_version > CTKN_SCHEMA_VERSION) {
      /* Stop this partition here; its offset stays below the record. */
      if (paused != NULL && p < npaused && !paused[p]) {
        paused[p] = true;
        batch.paused++;
      }
      fprintf(stderr,
              "ctkn: partition %" PRId32 " paused at offset %" PRId64
              ": schema version %d is newer than this build's %d; "
              "upgrade ctkn\n",
              p, m->offset, m->schema_version, CTKN_SCHEMA_VERSION);
      if (paused == NULL)
        break;
      continue;
    }
    rc = ctkn_projector_decode(m, ev, &derr);
    if (rc != CTKN_OK) {
      batch.quarantined++;
      rc = ctkn_store_put_quarantine(txn, p, m->offset, derr.msg, m->key,
                                     m->key_len, m->value, m->value_len, err);
    } else {
      rc = apply_event(txn, env, m, ev, &batch, err);
    }
    if (rc != CTKN_OK)
      goto out;
    cur.next[p] = m->offset + 1;
    cur.dirty[p] = true;
  }
  for (int32_t p = 0; p < cur.n; p++) {
    if (cur.dirty[p] &&
        (rc = ctkn_store_set_offset(txn, p, cur.next[p], err)) != CTKN_OK)
      goto out;
  }
  rc = ctkn_store_commit(txn, err);
  txn = NULL;
  if (rc == CTKN_OK && stats != NULL) {
    stats->applied += batch.applied;
    stats->rejected += batch.rejected;
    stats->quarantined += batch.quarantined;
    stats->skipped += batch.skipped;
    stats->paused += batch.paused;
    stats->batches++;
  }
out:
  ctkn_store_abort(txn);
  free(cur.next);
  free(cur.dirty);
  free(ev);
  return rc;
}

/* ---- the consuming loop --------------------------------------------- */

struct ctkn_projector {
  ctkn_store *st;
  const struct ctkn_log_config *cfg;
  ctkn_env env;
  ctkn_consumer *consumer;
  int32_t nparts;
  bool assigned;  /* the consumer holds every partition at pos */
  int64_t *pos;   /* next offset per partition, as consumed */
  bool *paused;   /* partitions stopped at a newer schema */
  int64_t *limit; /* replay: apply nothing at or past these offsets */
  int32_t nlimit;
  struct ctkn_log_msg *msgs;
  struct ctkn_projector_stats stats;
  struct ctkn_projector_hooks hooks;
};

int ctkn_projector_open(ctkn_projector **out, ctkn_store *st,
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
  if ((rc = ctkn_consumer_open(&p->consumer, cfg, err)) != CTKN_OK) {
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

static void advanced(const ctkn_projector *p)
{
  if (p->hooks.advanced != NULL)
    p->hooks.advanced(p->hooks.arg, p->pos, p->nparts);
}

void ctkn_projector_stats(const ctkn_projector *p,
                          struct ctkn_projector_stats *out)
{
  *out = p->stats;
}

/*
 * Learn the partition count, check the stored offsets against the log and
 * assign every partition at its stored offset. his (n entries, may be
 * NULL) receives the high watermarks.
 */
static int assign_all(ctkn_projector *p, int64_t **his, struct ctkn_err *err)
{
  int64_t *los = NULL;
  ctkn_store_txn *txn = NULL;
  int32_t n;
  int rc;

  if ((rc = ctkn_consumer_partitions(p->consumer, &n, err)) != CTKN_OK)
    return rc;
  if (n > CTKN_STORE_MAX_PARTITIONS)
    return ctkn__err(err, CTKN_EKAFKA,
                     "topic has %" PRId32 " partitions; "
                     "at most %d are supported",
                     n, CTKN_STORE_MAX_PARTITIONS);
  int64_t *pos = realloc(p->pos, (size_t)n * sizeof(*pos));
  if (pos != NULL)
    p->pos = pos;
  bool *paused = realloc(p->paused, (size_t)n * sizeof(*paused));
  if (paused != NULL)
    p->paused = paused;
  int64_t *hi = calloc((size_t)n, sizeof(*hi));
  if (pos == NULL || paused == NULL || hi == NULL) {
    free(hi);
    return ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
  }
  for (int32_t i = p->nparts; i < n; i++)
    paused[i] = false;
  p->nparts = n;

  if ((rc = ctkn_store_begin(p->st, false, &txn, err)) != CTKN_OK)
    goto fail;
  for (int32_t i = 0; i < n; i++)
    pos[i] = ctkn_store_offset(txn, i);
  ctkn_store_abort(txn);

  if ((los = calloc((size_t)n, sizeof(*los))) == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
    goto fail;
  }
  if ((rc = ctkn_consumer_watermarks_all(p->consumer, n, los, hi, err)) !=
      CTKN_OK)
    goto fail;
  for (int32_t i = 0; i < n; i++) {
    int64_t lo = los[i];
    /* A topic deleted and re-created under the same name shows as stored
     * offsets outside the log. librdkafka 2.0.2 has no topic IDs. */
    if (pos[i] > hi[i] || pos[i] < lo) {
      rc = ctkn__err(err, CTKN_ECONFLICT,
                     "partition %" PRId32 ": the projection stopped at offset "
                     "%" PRId64 " but the log holds %" PRId64 "..%" PRId64
                     "; the topic was deleted or re-created. Project into a "
                     "fresh --db",
                     i, pos[i], lo, hi[i]);
      goto fail;
    }
  }
  if ((rc = ctkn_consumer_assign(p->consumer, pos, n, err)) != CTKN_OK)
    goto fail;
  p->assigned = true;
  advanced(p);
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
  if ((rc = ctkn_projector_apply(p->st, p->env, p->msgs, n, p->paused,
                                 p->nparts, &p->stats, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < n; i++) {
    int32_t part = p->msgs[i].partition;
    if (part < p->nparts && !p->paused[part] &&
        p->msgs[i].offset + 1 > p->pos[part])
      p->pos[part] = p->msgs[i].offset + 1;
  }
  advanced(p);
  return CTKN_OK;
}

/*
 * Where another writer (a follower in the same process, another command)
 * has applied past this projector, move ahead to the stored offsets rather
 * than read and skip those records. *moved tells whether anything did.
 */
static int follow_store(ctkn_projector *p, bool *moved, struct ctkn_err *err)
{
  int64_t *ahead =
      calloc((size_t)(p->nparts > 0 ? p->nparts : 1), sizeof(*ahead));
  ctkn_store_txn *txn;
  int rc;

  *moved = false;
  if (ahead == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
  if ((rc = ctkn_store_begin(p->st, false, &txn, err)) != CTKN_OK) {
    free(ahead);
    return rc;
  }
  for (int32_t i = 0; i < p->nparts; i++) {
    int64_t at = ctkn_store_offset(txn, i);
    ahead[i] = -1;
    if (!p->paused[i] && at > p->pos[i]) {
      ahead[i] = p->pos[i] = at;
      *moved = true;
    }
  }
  ctkn_store_abort(txn);
  if (*moved)
    rc = ctkn_consumer_seek(p->consumer, ahead, p->nparts, err);
  free(ahead);
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
  ctkn_store_txn *txn;
  int64_t *hi, *ahead;
  int32_t n;
  bool moved = false;
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
  if ((rc = ctkn_store_begin(p->st, false, &txn, err)) != CTKN_OK)
    goto out;
  for (int32_t i = 0; i < n; i++)
    ahead[i] = ctkn_store_offset(txn, i);
  ctkn_store_abort(txn);
  int64_t *lo = calloc((size_t)n, sizeof(*lo));
  if (lo == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
    goto out;
  }
  rc = ctkn_consumer_watermarks_all(p->consumer, n, lo, hi, err);
  for (int32_t i = 0; i < n && rc == CTKN_OK; i++) {
    if (ahead[i] > hi[i] || ahead[i] < lo[i]) {
      free(lo);
      free(hi);
      free(ahead);
      return assign_all(p, his, err);
    }
  }
  free(lo);
  if (rc == CTKN_OK)
    rc = follow_store(p, &moved, err);
out:
  free(ahead);
  if (rc == CTKN_OK)
    *his = hi;
  else
    free(hi);
  return rc;
}

int ctkn_projector_catch_up(ctkn_projector *p, const int64_t *targets,
                            int32_t n, struct ctkn_err *err)
{
  int64_t *hi = NULL;
  int rc;

  /* Assign once: a reassignment restarts fetching, and the offset queries
   * that go with it wait behind the fetch in flight (and librdkafka 2.0.2
   * can trip over assignments in quick succession: #5573). Later calls
   * with explicit targets just consume on; later calls to the log's end
   * read its offsets and move ahead to where another writer got. */
  if (!p->assigned) {
    if ((rc = assign_all(p, &hi, err)) != CTKN_OK)
      return rc;
  } else if (targets == NULL) {
    if ((rc = end_targets(p, &hi, err)) != CTKN_OK)
      return rc;
  }
  int64_t deadline = ctkn__now_ms() + p->cfg->timeout_ms;
  for (;;) {
    bool done = true;
    for (int32_t i = 0; i < p->nparts && done; i++) {
      int64_t want = targets ? (i < n ? targets[i] : 0) : hi[i];
      if (!p->paused[i] && p->pos[i] < want)
        done = false;
    }
    if (done)
      break;
    if (ctkn__now_ms() > deadline) {
      rc =
          ctkn__err(err, CTKN_ETIMEOUT, "projection made no progress for %d ms",
                    p->cfg->timeout_ms);
      break;
    }
    bool moved = false;
    if (p->limit == NULL && (rc = follow_store(p, &moved, err)) != CTKN_OK)
      break;
    if (moved)
      continue; /* another writer got there: check again */
    size_t got;
    if ((rc = step(p, 20, &got, err)) != CTKN_OK)
      break;
    if (got > 0)
      deadline = ctkn__now_ms() + p->cfg->timeout_ms;
  }
  free(hi);
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
    fprintf(stderr,
            "ctkn project: topic now has %" PRId32 " partitions (was %" PRId32
            "); reassigning\n",
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
  if (p->hooks.status != NULL) {
    p->hooks.status(p->hooks.arg, s, p->nparts, &p->stats);
    free(s);
    return CTKN_OK;
  }
  free(s);
  fprintf(stderr,
          "ctkn project: applied=%" PRIu64 " rejected=%" PRIu64
          " quarantined=%" PRIu64 " lag=%" PRId64 " paused=%" PRId32 "\n",
          p->stats.applied, p->stats.rejected, p->stats.quarantined, lag,
          p->stats.paused);
  return CTKN_OK;
}

int ctkn_projector_follow(ctkn_projector *p, volatile sig_atomic_t *stop,
                          struct ctkn_err *err)
{
  int64_t next_report = 0;
  int rc;

  if ((rc = assign_all(p, NULL, err)) != CTKN_OK)
    return rc;
  while (!*stop) {
    size_t got;
    bool swapped;
    /* `ctkn rebuild` swapped a new projection in: go on from its
     * offsets (what this process wrote meanwhile went to the old one). */
    if ((rc = ctkn_store_refresh(p->st, &swapped, err)) == CTKN_OK && swapped) {
      fprintf(stderr, "ctkn project: the projection was rebuilt; following "
                      "the new one\n");
      rc = assign_all(p, NULL, err);
    }
    if (rc == CTKN_OK)
      rc = step(p, 200, &got, err);
    if (rc == CTKN_OK && ctkn__now_ms() >= next_report) {
      next_report =
          ctkn__now_ms() + (p->hooks.status_ms > 0 ? p->hooks.status_ms : 5000);
      rc = report(p, err);
    }
    if (rc == CTKN_OK)
      continue;
    if (!ctkn__transient(rc))
      return rc;
    /* Keep going: say so, back off, and start again from the offsets the
     * store holds, which is always safe. */
    fprintf(stderr, "ctkn project: %s: %s; retrying in 1 s\n",
            ctkn_strerror(rc), err ? err->msg : "");
    for (int i = 0; i < 10 && !*stop; i++) {
      struct timespec ts = {0, 100 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
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
  for (int32_t i = 0; i < np; i++) {
    s[i].partition = i;
    s[i].projected = ctkn_store_offset(txn, i);
  }
  ctkn_store_abort(txn);
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

/* path + suffix, malloc'd. */
static char *suffixed(const char *path, const char *suffix)
{
  size_t a = strlen(path), b = strlen(suffix);
  char *s = malloc(a + b + 1);
  if (s != NULL) {
    memcpy(s, path, a);
    memcpy(s + a, suffix, b + 1);
  }
  return s;
}

/* Catch the projection in st up: to targets, or (NULL) the log's end. */
static int build(ctkn_store *st, const struct ctkn_log_config *cfg,
                 ctkn_env env, const int64_t *targets, int32_t n,
                 struct ctkn_projector_stats *stats, struct ctkn_err *err)
{
  ctkn_projector *p;
  int rc;

  if ((rc = ctkn_projector_open(&p, st, cfg, env, err)) != CTKN_OK)
    return rc;
  rc = ctkn_projector_catch_up(p, targets, n, err);
  if (rc == CTKN_OK && stats != NULL) {
    struct ctkn_projector_stats s;
    ctkn_projector_stats(p, &s);
    stats->applied += s.applied;
    stats->rejected += s.rejected;
    stats->quarantined += s.quarantined;
    stats->batches += s.batches;
  }
  ctkn_projector_close(p);
  return rc;
}

int ctkn_projector_rebuild(const char *dir, const struct ctkn_log_config *cfg,
                           ctkn_env env, size_t map_size,
                           struct ctkn_projector_stats *stats,
                           struct ctkn_err *err)
{
  char *side = suffixed(dir, ".rebuild"), *prev = suffixed(dir, ".previous");
  char *lockpath = suffixed(dir, ".rebuild.lock");
  struct ctkn_store_opts live_opts = {.map_size = map_size};
  struct ctkn_store_opts side_opts = {.map_size = map_size, .no_sync = true};
  ctkn_store *live = NULL, *fresh = NULL;
  ctkn_store_txn *lock = NULL;
  int64_t *targets = NULL;
  int32_t n = 0;
  int lockfd = -1, rc;

  memset(stats, 0, sizeof(*stats));
  if (side == NULL || prev == NULL || lockpath == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "rebuild: out of memory");
    goto out;
  }
  /* One rebuild at a time; a leftover side directory is a dead one's. */
  if ((lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
      flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
    rc = ctkn__err(err, CTKN_ECONFLICT,
                   "%.200s: another rebuild of this projection is running",
                   lockpath);
    goto out;
  }
  ctkn_store_remove(side);

  /* The live projection, unless it has a format this build cannot open:
   * that is what a rebuild is for, and its writers are old builds, which
   * the operator stops first. */
  char *data = suffixed(dir, "/data.mdb");
  struct stat sb;
  bool exists = data != NULL && stat(data, &sb) == 0;
  free(data);
  if (!exists) {
    rc = ctkn__err(err, CTKN_ENOTFOUND,
                   "%.200s holds no projection to rebuild (ctkn project "
                   "builds one)",
                   dir);
    goto out;
  }
  rc = ctkn_store_open(&live, dir, &live_opts, err);
  if (rc == CTKN_EFORMAT) {
    fprintf(stderr,
            "ctkn rebuild: %s: %s; rebuilding it in this build's "
            "format\n",
            dir, err->msg);
    live = NULL;
  } else if (rc != CTKN_OK) {
    goto out;
  } else {
    char as_of[CTKN_TIME_BUF];
    if ((rc = ctkn_store_bind(live, cfg->topic, env, err)) != CTKN_OK ||
        (rc = ctkn_store_frozen(live, as_of, err)) != CTKN_OK)
      goto out;
    if (as_of[0] != '\0') {
      rc = ctkn__err(err, CTKN_ECONFLICT,
                     "%.200s is a frozen replay as of %s; replay again "
                     "instead",
                     dir, as_of);
      goto out;
    }
  }

  /* Build beside it, from the start of the log, without fsyncs. */
  if ((rc = ctkn_store_open(&fresh, side, &side_opts, err)) != CTKN_OK ||
      (rc = ctkn_store_bind(fresh, cfg->topic, env, err)) != CTKN_OK ||
      (rc = build(fresh, cfg, env, NULL, 0, stats, err)) != CTKN_OK ||
      (rc = build(fresh, cfg, env, NULL, 0, stats, err)) != CTKN_OK)
    goto out;

  /* Stop the live projection's writers (LMDB's writer lock), bring the
   * new one to at least where the live one stands, and swap. */
  if (live != NULL) {
    if ((rc = ctkn_store_begin(live, true, &lock, err)) != CTKN_OK)
      goto out;
    n = CTKN_STORE_MAX_PARTITIONS;
    if ((targets = calloc((size_t)n, sizeof(*targets))) == NULL) {
      rc = ctkn__err(err, CTKN_ENOMEM, "rebuild: out of memory");
      goto out;
    }
    int32_t last = 0;
    for (int32_t i = 0; i < n; i++)
      if ((targets[i] = ctkn_store_offset(lock, i)) > 0)
        last = i + 1;
    n = last;
  }
  if ((rc = build(fresh, cfg, env, targets, n, stats, err)) != CTKN_OK ||
      (rc = ctkn_store_sync(fresh, err)) != CTKN_OK)
    goto out;
  ctkn_store_close(fresh);
  fresh = NULL;
  if ((rc = ctkn_store_exchange(side, dir, err)) != CTKN_OK)
    goto out;
  ctkn_store_abort(lock); /* nothing written: the lock was the point */
  lock = NULL;
  ctkn_store_close(live);
  live = NULL;
  /* Keep the old one until the next rebuild, for a way back. */
  ctkn_store_remove(prev);
  if (rename(side, prev) != 0)
    fprintf(stderr, "ctkn rebuild: the old projection stays in %s: %s\n", side,
            strerror(errno));
  rc = CTKN_OK;
out:
  ctkn_store_abort(lock);
  ctkn_store_close(fresh);
  ctkn_store_close(live);
  if (rc != CTKN_OK && side != NULL)
    ctkn_store_remove(side);
  if (lockfd >= 0)
    close(lockfd);
  free(targets);
  free(side);
  free(prev);
  free(lockpath);
  return rc;
}
