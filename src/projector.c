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
#include <pthread.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctkn/codec.h"
#include "ctkn/projector.h"
#include "ctkn/settings.h"
#include "event_int.h"
#include "internal.h"
#include "store/shared.h"

#define BATCH_MAX 8192 /* records per poll and per write transaction */

/* Per-batch view of the stored offsets, so each record costs no lookup. */
struct cursor {
  int32_t n;
  int64_t *next; /* next offset per partition, -1 until loaded */
  bool *dirty;   /* advanced in this batch: write it back at commit */
};

static int cursor_next(struct cursor *c, ctkn_store_txn *txn, int32_t p,
                       int64_t *out, struct ctkn_err *err)
{
  int rc;

  if (p >= c->n) {
    int32_t n = p + 1;
    int64_t *next = realloc(c->next, (size_t)n * sizeof(*next));
    if (next == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "projector: offsets");
    c->next = next;
    bool *dirty = realloc(c->dirty, (size_t)n * sizeof(*dirty));
    if (dirty == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "projector: offsets");
    c->dirty = dirty;
    for (int32_t i = c->n; i < n; i++) {
      next[i] = -1;
      dirty[i] = false;
    }
    c->n = n;
  }
  if (c->next[p] < 0 &&
      (rc = ctkn_store_offset(txn, p, &c->next[p], err)) != CTKN_OK) {
    c->next[p] = -1;
    return rc;
  }
  *out = c->next[p];
  return CTKN_OK;
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

/* Apply one decoded event inside txn. m->value must outlive the batch. */
static int apply_event(ctkn_store_txn *txn, ctkn_env env,
                       const struct ctkn_log_msg *m,
                       const struct ctkn_event *ev, struct ctkn__buf *hist,
                       struct ctkn_projector_stats *stats, struct ctkn_err *err)
{
  struct ctkn_record cur, next;
  char reason[256];
  const struct ctkn_record *curp = NULL;
  int rc;

  /* A create's ID is new but for a duplicate: the batch may guess so and
   * check at its end (apply_source() goes again if it guessed wrong). */
  rc = ev->type == CTKN_EVENT_CREATED
           ? ctkn__store_get_new(txn, ev->data.id, &cur, err)
           : ctkn_store_get(txn, ev->data.id, &cur, err);
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
  if (rc != CTKN_OK)
    return rc;
  /* History is written at the batch's end, sorted (nothing reads it
   * meanwhile). */
  struct ctkn_store_history_put *h = ctkn__buf_add(hist, sizeof(*h));
  if (h == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: history");
  memcpy(h->id, ev->data.id, sizeof(h->id));
  h->version = ev->version;
  h->partition = m->partition;
  h->offset = m->offset;
  h->value = m->value;
  h->len = m->value_len;
  if (ev->idempotency_key[0] != '\0' &&
      (rc = ctkn_store_put_idem(txn, ev->idempotency_key, ev->data.id,
                                ev->request_hash, err)) != CTKN_OK)
    return rc;
  stats->applied++;
  return CTKN_OK;
}

/*
 * Where a batch's records come from: the caller's ctkn_log_msg array, or
 * the pipelined catch-up's buffers. Either way each record is its wire
 * bytes, headers and timestamp, decoded here by the codec.
 */
struct source {
  size_t n;
  /* Record i. The pointer is valid until the next call. */
  const struct ctkn_log_msg *(*msg)(struct source *s, size_t i);
  void *arg;
};

/* Apply a source's records in one write transaction; with guess, let
 * the store guess that creates are new (ctkn__store_batch()). *wrong: a
 * guess was wrong, nothing is committed. */
static int apply_once(ctkn_store *st, ctkn_env env, struct source *src,
                      bool *paused, int32_t npaused, bool guess, bool *wrong,
                      struct ctkn_projector_stats *stats, struct ctkn_err *err)
{
  struct ctkn_projector_stats batch = {0};
  struct cursor cur = {0, NULL, NULL};
  /* The batch's history entries (struct ctkn_store_history_put), written
   * at its end. */
  struct ctkn__buf hist = CTKN__BUF_INIT;
  ctkn_store_txn *txn = NULL;
  struct ctkn_event *ev = NULL;
  struct ctkn_err derr;
  int rc;

  *wrong = false;
  if (src->n == 0)
    return CTKN_OK;
  if ((ev = malloc(sizeof(*ev))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: event buffer");
  if ((rc = ctkn_store_begin(st, true, &txn, err)) != CTKN_OK ||
      (rc = ctkn__store_batch(txn, guess, err)) != CTKN_OK)
    goto out;

  for (size_t i = 0; i < src->n; i++) {
    const struct ctkn_log_msg *m = src->msg(src, i);
    int32_t p = m->partition;
    int64_t next = 0;

    if ((rc = cursor_next(&cur, txn, p, &next, err)) != CTKN_OK)
      goto out;
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
      ctkn__diag(CTKN_DIAG_ERROR, "projector",
                 "partition %" PRId32 " paused at offset %" PRId64
                 ": schema version %d is newer than this build's %d; "
                 "upgrade ctkn",
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
      rc = apply_event(txn, env, m, ev, &hist, &batch, err);
    }
    if (rc != CTKN_OK)
      goto out;
    cur.next[p] = m->offset + 1;
    cur.dirty[p] = true;
  }
  if ((rc = ctkn__store_batch_write(txn, wrong, err)) != CTKN_OK ||
      (rc = ctkn_store_put_history_batch(
           txn, (struct ctkn_store_history_put *)(void *)hist.data,
           hist.len / sizeof(struct ctkn_store_history_put), err)) != CTKN_OK)
    goto out;
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
  ctkn__buf_free(&hist);
  free(ev);
  return rc;
}

/*
 * Apply a source's records in one write transaction. Creates are guessed
 * new (no lookup of the ID or token string) and checked as the batch is
 * written; when a guess was wrong (a duplicate create, a reused token
 * string) the transaction is aborted and the batch applied again without
 * guessing, from the same paused partitions.
 */
static int apply_source(ctkn_store *st, ctkn_env env, struct source *src,
                        bool *paused, int32_t npaused,
                        struct ctkn_projector_stats *stats,
                        struct ctkn_err *err)
{
  bool *was = NULL, wrong = false;
  int rc;

  if (paused != NULL && npaused > 0) {
    if ((was = malloc((size_t)npaused * sizeof(*was))) == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "projector: paused partitions");
    memcpy(was, paused, (size_t)npaused * sizeof(*was));
  }
  rc = apply_once(st, env, src, paused, npaused, true, &wrong, stats, err);
  if (rc != CTKN_OK && wrong) {
    if (was != NULL)
      memcpy(paused, was, (size_t)npaused * sizeof(*was));
    rc = apply_once(st, env, src, paused, npaused, false, &wrong, stats, err);
  }
  free(was);
  return rc;
}

static const struct ctkn_log_msg *array_msg(struct source *s, size_t i)
{
  return (const struct ctkn_log_msg *)s->arg + i;
}

int ctkn_projector_apply(ctkn_store *st, ctkn_env env,
                         const struct ctkn_log_msg *msgs, size_t n,
                         bool *paused, int32_t npaused,
                         struct ctkn_projector_stats *stats,
                         struct ctkn_err *err)
{
  struct source src = {n, array_msg, (void *)msgs};

  return apply_source(st, env, &src, paused, npaused, stats, err);
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
  /* follow: the settings topic's follower, opened when the topic exists */
  ctkn_settings_follower *settings;
  int64_t settings_retry_ms; /* when to look for the topic again */
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
  ctkn_settings_follower_close(p->settings);
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
  for (int32_t i = 0; i < n && rc == CTKN_OK; i++)
    rc = ctkn_store_offset(txn, i, &pos[i], err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    goto fail;

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
 * than read and skip those records. stored (nparts entries) holds the
 * store's offsets when the caller has just read them, and is overwritten;
 * NULL reads them here. *moved tells whether anything did.
 */
static int follow_store(ctkn_projector *p, int64_t *stored, bool *moved,
                        struct ctkn_err *err)
{
  int64_t *ahead = stored;
  int rc = CTKN_OK;

  *moved = false;
  if (ahead == NULL) {
    ctkn_store_txn *txn;
    ahead = calloc((size_t)(p->nparts > 0 ? p->nparts : 1), sizeof(*ahead));
    if (ahead == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "projector: partitions");
    if ((rc = ctkn_store_begin(p->st, false, &txn, err)) != CTKN_OK) {
      free(ahead);
      return rc;
    }
    for (int32_t i = 0; i < p->nparts && rc == CTKN_OK; i++)
      rc = ctkn_store_offset(txn, i, &ahead[i], err);
    ctkn_store_abort(txn);
    if (rc != CTKN_OK) {
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
  if (*moved)
    rc = ctkn_consumer_seek(p->consumer, ahead, p->nparts, err);
  if (ahead != stored)
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
  for (int32_t i = 0; i < n && rc == CTKN_OK; i++)
    rc = ctkn_store_offset(txn, i, &ahead[i], err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    goto out;
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
    rc = follow_store(p, ahead, &moved, err);
out:
  free(ahead);
  if (rc == CTKN_OK)
    *his = hi;
  else
    free(hi);
  return rc;
}

/* ---- pipelined catch-up ----------------------------------------------
 *
 * A long catch-up runs on two threads: a reader polls and copies each
 * record (its key, value, headers and timestamp: what the log gave, no
 * more) into a buffer, and hands full buffers over; the calling thread
 * decodes and applies each buffer in one write transaction, exactly as a
 * batch polled on one thread. Buffers carry copies, so librdkafka's
 * messages are released as soon as they are read. Buffers travel on two
 * work queues: empty ones to the reader, filled ones to the applier.
 *
 * Flow control: with every buffer taken the reader stops polling and
 * librdkafka's bounded queue fills. librdkafka 2.0.2 then backs the
 * partitions off for a whole second (librdkafka #2879), and its broker
 * thread may sleep a second before fetching partitions assigned while it
 * fetched nothing (ctkn__consumer_nudge()). So once the reader has room but
 * nothing has come for PIPE_IDLE_MS after it had to wait for a buffer, it
 * assigns the partitions again at the offsets after its last records
 * (which ends a back-off; the queue is empty then, so nothing is dropped);
 * otherwise it nudges the fetchers while nothing comes, and restarts only
 * after PIPE_STUCK_MS. Memory stays bounded by PIPE_BUFS buffers and
 * librdkafka's queue bounds.
 */
#define PIPE_BUFS     3
#define PIPE_IDLE_MS  20  /* no record for this long: nudge, or restart */
#define PIPE_STUCK_MS 250 /* no record for this long: restart anyway */
/* Smaller catch-ups stay on one thread. */
#define PIPE_MIN_LAG  (2 * BATCH_MAX)

/* One record in a buffer's arena, followed by its key, its value, and its
 * headers: nheaders struct phdr, then their names and values. */
struct item {
  int64_t offset;
  int64_t timestamp_ms;
  int32_t partition;
  uint32_t klen, vlen, nheaders;
  bool key_null, value_null;
};

struct phdr {
  uint32_t name_len, value_len;
  bool value_null;
};

struct pbuf {
  struct ctkn__qnode node; /* on the free or the ready queue */
  struct ctkn__buf arena;  /* the items, each 8-byte aligned */
  size_t at[BATCH_MAX];    /* each item's place in the arena */
  size_t n;
};

struct pipe {
  struct ctkn__queue ready; /* filled buffers, to the applier */
  struct ctkn__queue free;  /* empty buffers, to the reader */
  struct pbuf *buf[PIPE_BUFS];
  atomic_bool applier_idle; /* the applier waits: hand over what there is */
  /* The reader's error, written before it closes ready. */
  int rc;
  struct ctkn_err err;
  /* The reader's own. */
  ctkn_consumer *consumer;
  struct ctkn_log_msg *msgs;
  int32_t nparts;
  int64_t *next; /* after the last record read, per partition */
  /* The applier's view of the record it reads. */
  struct pbuf *cur;
  struct ctkn_log_msg view;
  struct ctkn__buf hview; /* view's headers */
};

static void put_bytes(struct ctkn__buf *a, const void *p, size_t n)
{
  /* Room was reserved by pbuf_add(). */
  if (n > 0)
    memcpy(a->data + a->len, p, n);
  a->len += n;
}

/* Copy record m into b. CTKN_ENOMEM when it does not fit in memory. */
static int pbuf_add(struct pbuf *b, const struct ctkn_log_msg *m)
{
  struct item it = {.offset = m->offset,
                    .timestamp_ms = m->timestamp_ms,
                    .partition = m->partition,
                    .klen = (uint32_t)m->key_len,
                    .vlen = (uint32_t)m->value_len,
                    .nheaders = (uint32_t)m->nheaders,
                    .key_null = m->key == NULL,
                    .value_null = m->value == NULL};
  size_t need = 8 + sizeof(it) + m->key_len + m->value_len +
                m->nheaders * sizeof(struct phdr);

  for (size_t i = 0; i < m->nheaders; i++)
    need += strlen(m->headers[i].name) + 1 + m->headers[i].size;
  if (ctkn__buf_reserve(&b->arena, need) != CTKN_OK)
    return CTKN_ENOMEM;
  b->arena.len = (b->arena.len + 7) & ~(size_t)7; /* items stay aligned */
  b->at[b->n++] = b->arena.len;
  put_bytes(&b->arena, &it, sizeof(it));
  put_bytes(&b->arena, m->key, m->key_len);
  put_bytes(&b->arena, m->value, m->value_len);
  for (size_t i = 0; i < m->nheaders; i++) {
    const struct ctkn_log_header *h = &m->headers[i];
    struct phdr ph = {(uint32_t)strlen(h->name), (uint32_t)h->size,
                      h->value == NULL};
    put_bytes(&b->arena, &ph, sizeof(ph));
  }
  for (size_t i = 0; i < m->nheaders; i++) {
    const struct ctkn_log_header *h = &m->headers[i];
    put_bytes(&b->arena, h->name, strlen(h->name) + 1); /* with its NUL */
    put_bytes(&b->arena, h->value, h->value ? h->size : 0);
  }
  return CTKN_OK;
}

/* Record i of the buffer being applied, as the log gave it. */
static const struct ctkn_log_msg *pipe_msg(struct source *s, size_t i)
{
  struct pipe *pp = s->arg;
  const uint8_t *p = (const uint8_t *)pp->cur->arena.data + pp->cur->at[i];
  const struct item *it = (const struct item *)(const void *)p;
  struct ctkn_log_msg *m = &pp->view;
  struct ctkn_log_header *hs;

  memset(m, 0, sizeof(*m));
  p += sizeof(*it);
  m->partition = it->partition;
  m->offset = it->offset;
  m->timestamp_ms = it->timestamp_ms;
  m->key = it->key_null ? NULL : p;
  m->key_len = it->klen;
  m->value = it->value_null ? NULL : p + it->klen;
  m->value_len = it->vlen;
  p += it->klen + it->vlen;
  ctkn__buf_reset(&pp->hview);
  hs = ctkn__buf_add(&pp->hview, it->nheaders * sizeof(*hs));
  if (hs == NULL) {
    /* Out of memory: the record reads as one without headers, which the
     * decoder quarantines (never applies). */
    ctkn_log_msg_note_headers(m);
    return m;
  }
  /* The header descriptors follow the bytes of the key and value, so
   * they are not aligned: copy each out. */
  const char *bytes = (const char *)p + it->nheaders * sizeof(struct phdr);
  for (uint32_t k = 0; k < it->nheaders; k++) {
    struct phdr ph;
    memcpy(&ph, p + k * sizeof(ph), sizeof(ph));
    hs[k].name = bytes; /* kept with its NUL */
    bytes += ph.name_len + 1;
    hs[k].value = ph.value_null ? NULL : bytes;
    hs[k].size = ph.value_len;
    bytes += ph.value_len;
  }
  m->headers = hs;
  m->nheaders = it->nheaders;
  ctkn_log_msg_note_headers(m);
  return m;
}

/* Hand b to the applier. */
static void pipe_hand_over(struct pipe *pp, struct pbuf **b)
{
  ctkn__queue_push(&pp->ready, &(*b)->node);
  *b = NULL;
}

/* Take an empty buffer, waiting while the applier holds them all.
 * *stalled: had to wait (librdkafka's queue fills meanwhile). NULL once
 * the applier stops the pipeline. */
static struct pbuf *pipe_take_free(struct pipe *pp, bool *stalled)
{
  struct ctkn__qnode *node;

  if (ctkn__queue_len(&pp->free) == 0)
    *stalled = true;
  while (ctkn__queue_pop(&pp->free, &node, 1, 100) == 0) {
    if (ctkn__queue_closed(&pp->free))
      return NULL;
  }
  return CTKN__CONTAINER_OF(node, struct pbuf, node);
}

/* Copy a poll's records into b and note how far each partition got. */
static int pipe_fill(struct pipe *pp, struct pbuf *b, size_t got,
                     struct ctkn_err *err)
{
  for (size_t i = 0; i < got; i++) {
    const struct ctkn_log_msg *m = &pp->msgs[i];
    if (pbuf_add(b, m) != CTKN_OK)
      return ctkn__err(err, CTKN_ENOMEM, "projector: record buffer");
    if (m->partition >= 0 && m->partition < pp->nparts &&
        m->offset + 1 > pp->next[m->partition])
      pp->next[m->partition] = m->offset + 1;
  }
  return CTKN_OK;
}

/* The reader's timers across polls. */
struct pipe_clock {
  int64_t idle_since; /* the last record, or restart */
  int64_t nudged;
  bool stalled; /* waited for a buffer: librdkafka's queue filled */
};

/* Nothing came: restart the fetch, or wake the fetchers (above). */
static int pipe_unstick(struct pipe *pp, struct pipe_clock *k,
                        struct ctkn_err *err)
{
  int64_t now = ctkn__now_ms(), idle = now - k->idle_since;

  if ((k->stalled && idle >= PIPE_IDLE_MS) || idle >= PIPE_STUCK_MS) {
    /* Room, nothing queued, and librdkafka's queue filled up earlier (or
     * nothing came for long): it is backing off. Restarting the fetch at
     * the next offsets ends that. Not sooner, which would only throw away
     * fetches in flight. */
    k->stalled = false;
    k->idle_since = now;
    return ctkn_consumer_assign(pp->consumer, pp->next, pp->nparts, err);
  }
  if (idle >= PIPE_IDLE_MS && now - k->nudged >= PIPE_IDLE_MS) {
    /* The fetcher may be asleep (see above): wake it. */
    ctkn__consumer_nudge(pp->consumer, pp->nparts);
    k->nudged = ctkn__now_ms();
  }
  return CTKN_OK;
}

static void *pipe_reader(void *arg)
{
  struct pipe *pp = arg;
  struct pipe_clock k = {ctkn__now_ms(), 0, false};
  struct ctkn_err err = {0};
  struct pbuf *b = NULL;
  int rc = CTKN_OK;

  /* The applier closes the free queue to stop the reader. */
  while (!ctkn__queue_closed(&pp->free)) {
    if (b == NULL && (b = pipe_take_free(pp, &k.stalled)) == NULL)
      break;
    if (b->n > 0 && atomic_load(&pp->applier_idle)) {
      pipe_hand_over(pp, &b);
      continue;
    }
    size_t got = 0;
    rc = ctkn_consumer_poll(pp->consumer, b->n > 0 ? 5 : 20, pp->msgs,
                            BATCH_MAX - b->n, &got, &err);
    if (rc == CTKN_OK)
      rc = pipe_fill(pp, b, got, &err);
    if (rc == CTKN_OK && got > 0)
      k.idle_since = ctkn__now_ms();
    else if (rc == CTKN_OK)
      rc = pipe_unstick(pp, &k, &err);
    if (rc != CTKN_OK)
      break;
    /* Full, or nothing more to read for now: the applier may have it. */
    if (b->n == BATCH_MAX || (got == 0 && b->n > 0))
      pipe_hand_over(pp, &b);
  }
  if (b != NULL && b->n > 0)
    pipe_hand_over(pp, &b);
  pp->rc = rc;
  pp->err = err;
  /* The close publishes rc to the applier (the queue's lock orders it). */
  ctkn__queue_close(&pp->ready);
  return NULL;
}

static void pipe_free(struct pipe *pp)
{
  for (int i = 0; i < PIPE_BUFS; i++) {
    if (pp->buf[i] != NULL)
      ctkn__buf_free(&pp->buf[i]->arena);
    free(pp->buf[i]);
  }
  ctkn__buf_free(&pp->hview);
  free(pp->next);
  ctkn__queue_destroy(&pp->ready);
  ctkn__queue_destroy(&pp->free);
  free(pp);
}

static struct pipe *pipe_new(ctkn_projector *p)
{
  struct pipe *pp = calloc(1, sizeof(*pp));

  if (pp == NULL)
    return NULL;
  if (ctkn__queue_init(&pp->ready) != CTKN_OK) {
    free(pp);
    return NULL;
  }
  if (ctkn__queue_init(&pp->free) != CTKN_OK) {
    ctkn__queue_destroy(&pp->ready);
    free(pp);
    return NULL;
  }
  pp->consumer = p->consumer;
  pp->msgs = p->msgs;
  pp->nparts = p->nparts;
  bool ok = (pp->next = malloc((size_t)p->nparts * sizeof(*pp->next))) != NULL;
  for (int i = 0; ok && i < PIPE_BUFS; i++) {
    ok = (pp->buf[i] = calloc(1, sizeof(*pp->buf[i]))) != NULL;
    if (ok)
      ctkn__queue_push(&pp->free, &pp->buf[i]->node);
  }
  if (!ok) {
    pipe_free(pp);
    return NULL;
  }
  memcpy(pp->next, p->pos, (size_t)p->nparts * sizeof(*pp->next));
  return pp;
}

/* Apply one buffer and advance the consumed positions. */
static int pipe_apply(ctkn_projector *p, struct pipe *pp, struct pbuf *b,
                      struct ctkn_err *err)
{
  struct source src = {b->n, pipe_msg, pp};
  int rc;

  pp->cur = b;
  if ((rc = apply_source(p->st, p->env, &src, p->paused, p->nparts, &p->stats,
                         err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < b->n; i++) {
    const struct item *it =
        (const struct item *)(const void *)(b->arena.data + b->at[i]);
    int32_t part = it->partition;
    if (part < p->nparts && !p->paused[part] && it->offset + 1 > p->pos[part])
      p->pos[part] = it->offset + 1;
  }
  advanced(p);
  return CTKN_OK;
}

/* Whether every partition that is not paused has reached hi. */
static bool reached(const ctkn_projector *p, const int64_t *hi)
{
  for (int32_t i = 0; i < p->nparts; i++)
    if (!p->paused[i] && p->pos[i] < hi[i])
      return false;
  return true;
}

/* The applier's side: apply what the reader hands over until hi. */
static int pipe_drive(ctkn_projector *p, struct pipe *pp, const int64_t *hi,
                      struct ctkn_err *err)
{
  int64_t deadline = ctkn__now_ms() + p->cfg->timeout_ms;

  while (!reached(p, hi)) {
    struct ctkn__qnode *node;
    int64_t left = deadline - ctkn__now_ms();
    atomic_store(&pp->applier_idle, true);
    size_t got = ctkn__queue_pop(&pp->ready, &node, 1,
                                 left <= 0    ? 0
                                 : left < 100 ? (int)left
                                              : 100);
    atomic_store(&pp->applier_idle, false);
    if (got == 0) {
      if (ctkn__queue_closed(&pp->ready)) {
        if (pp->rc != CTKN_OK) {
          if (err != NULL)
            *err = pp->err;
          return pp->rc;
        }
        return ctkn__err(err, CTKN_EINTERNAL, "projector: the reader stopped");
      }
      if (ctkn__now_ms() >= deadline)
        return ctkn__err(err, CTKN_ETIMEOUT,
                         "projection made no progress for %d ms",
                         p->cfg->timeout_ms);
      continue;
    }
    struct pbuf *b = CTKN__CONTAINER_OF(node, struct pbuf, node);
    int rc = pipe_apply(p, pp, b, err);
    b->n = 0;
    ctkn__buf_reset(&b->arena);
    ctkn__queue_push(&pp->free, &b->node);
    if (rc != CTKN_OK)
      return rc;
    deadline = ctkn__now_ms() + p->cfg->timeout_ms;
  }
  return CTKN_OK;
}

/* ctkn_projector_catch_up() to hi[], on two threads. The partitions are
 * assigned at p->pos; afterwards the consumer stands past them. */
static int catch_up_pipelined(ctkn_projector *p, const int64_t *hi,
                              struct ctkn_err *err)
{
  struct pipe *pp = pipe_new(p);
  pthread_t reader;
  int rc;

  if (pp == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: pipeline");
  /* The reader owns the consumer until it is joined. */
  p->assigned = false;
  /* Commit without waiting for the disk, flush once at the end. */
  if ((rc = ctkn__store_unsynced_begin(p->st, err)) != CTKN_OK) {
    pipe_free(pp);
    return rc;
  }
  if (pthread_create(&reader, NULL, pipe_reader, pp) != 0) {
    ctkn__store_unsynced_end(p->st, NULL);
    pipe_free(pp);
    return ctkn__err(err, CTKN_EINTERNAL, "projector: no reader thread");
  }
  rc = pipe_drive(p, pp, hi, err);
  /* Stop the reader: it takes no more buffers, hands over what it has. */
  ctkn__queue_close(&pp->free);
  pthread_join(reader, NULL);
  int src = ctkn__store_unsynced_end(p->st, rc == CTKN_OK ? err : NULL);
  if (rc == CTKN_OK)
    rc = src;
  pipe_free(pp);
  return rc;
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
  if (!p->assigned) {
    if ((rc = assign_all(p, &hi, err)) != CTKN_OK)
      return rc;
  } else if (targets == NULL) {
    if ((rc = end_targets(p, &hi, err)) != CTKN_OK)
      return rc;
  }
  if (targets == NULL && p->limit == NULL) {
    /* A long way to go: read and decode on a second thread. */
    int64_t lag = 0;
    for (int32_t i = 0; i < p->nparts; i++)
      if (!p->paused[i] && hi[i] > p->pos[i])
        lag += hi[i] - p->pos[i];
    if (lag >= PIPE_MIN_LAG) {
      rc = catch_up_pipelined(p, hi, err);
      free(hi);
      return rc;
    }
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
    if (p->limit == NULL &&
        (rc = follow_store(p, NULL, &moved, err)) != CTKN_OK)
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
           ",\"paused\":%" PRId32,
           p->stats.applied, p->stats.rejected, p->stats.quarantined, lag,
           p->stats.paused);
  ctkn__diag_fields(CTKN_DIAG_INFO, "projector", "progress", fields);
  return CTKN_OK;
}

/*
 * Project the settings topic beside the events (destinations, settings.h),
 * so that every replica has them. Its failures are reported and retried
 * here; they never stop the token projection.
 */
static void follow_settings(ctkn_projector *p)
{
  struct ctkn_err err;
  size_t got;
  int rc;

  if (p->settings == NULL) {
    if (ctkn__now_ms() < p->settings_retry_ms)
      return;
    rc = ctkn_settings_follower_open(&p->settings, p->st, p->cfg, &err);
    if (rc != CTKN_OK) {
      if (p->settings_retry_ms == 0 || rc != CTKN_ENOTFOUND)
        ctkn__diag(CTKN_DIAG_WARN, "projector", "settings not followed: %s",
                   err.msg);
      p->settings_retry_ms = ctkn__now_ms() + 30000;
      return;
    }
  }
  rc = ctkn_settings_follower_poll(p->settings, 0, &got, &err);
  if (rc != CTKN_OK) {
    ctkn__diag(CTKN_DIAG_WARN, "projector", "settings: %s; retrying in 30 s",
               err.msg);
    ctkn_settings_follower_close(p->settings);
    p->settings = NULL;
    p->settings_retry_ms = ctkn__now_ms() + 30000;
  }
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
      ctkn__diag(CTKN_DIAG_INFO, "projector",
                 "the projection was rebuilt; following the new one");
      rc = assign_all(p, NULL, err);
      /* The new projection's settings start again from its offsets. */
      ctkn_settings_follower_close(p->settings);
      p->settings = NULL;
      p->settings_retry_ms = 0;
    }
    if (rc == CTKN_OK)
      rc = step(p, 200, &got, err);
    if (rc == CTKN_OK)
      follow_settings(p);
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
    ctkn__diag(CTKN_DIAG_WARN, "projector", "%s: %s; retrying in 1 s",
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
  for (int32_t i = 0; i < np && rc == CTKN_OK; i++) {
    s[i].partition = i;
    rc = ctkn_store_offset(txn, i, &s[i].projected, err);
  }
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
static int build(ctkn_store *st, const struct ctkn_log_config *cfg,
                 ctkn_env env, const int64_t *targets, int32_t n,
                 struct ctkn_projector_stats *stats, struct ctkn_err *err)
{
  ctkn_projector *p;
  int rc;

  if ((rc = ctkn_projector_open(&p, st, cfg, env, err)) != CTKN_OK)
    return rc;
  rc = ctkn_projector_catch_up(p, targets, n, err);
  if (rc == CTKN_OK) {
    /* The destinations too, where the settings topic exists. */
    ctkn_settings_follower *f = NULL;
    rc = ctkn_settings_follower_open(&f, st, cfg, err);
    if (rc == CTKN_OK)
      rc = ctkn_settings_follower_catch_up(f, err);
    else if (rc == CTKN_ENOTFOUND)
      rc = CTKN_OK;
    ctkn_settings_follower_close(f);
  }
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
  char *side = ctkn__suffixed(dir, ".rebuild"),
       *prev = ctkn__suffixed(dir, ".previous");
  char *lockpath = ctkn__suffixed(dir, ".rebuild.lock");
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
  char *data = ctkn__suffixed(dir, "/data.mdb");
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
    ctkn__diag(CTKN_DIAG_WARN, "rebuild",
               "%s: %s; rebuilding it in this build's format", dir, err->msg);
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
    for (int32_t i = 0; i < n; i++) {
      if ((rc = ctkn_store_offset(lock, i, &targets[i], err)) != CTKN_OK)
        goto out;
      if (targets[i] > 0)
        last = i + 1;
    }
    n = last;
  }
  if ((rc = build(fresh, cfg, env, targets, n, stats, err)) != CTKN_OK)
    goto out;
  if (lock != NULL) {
    /* A notifier's delivery state is not in the log: carry it over. */
    ctkn_store_txn *to = NULL;
    if ((rc = ctkn_store_begin(fresh, true, &to, err)) != CTKN_OK)
      goto out;
    if ((rc = ctkn__store_copy_local(lock, to, err)) != CTKN_OK) {
      ctkn_store_abort(to);
      goto out;
    }
    if ((rc = ctkn_store_commit(to, err)) != CTKN_OK)
      goto out;
  }
  if ((rc = ctkn_store_sync(fresh, err)) != CTKN_OK)
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
    ctkn__diag(CTKN_DIAG_WARN, "rebuild", "the old projection stays in %s: %s",
               side, strerror(errno));
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
