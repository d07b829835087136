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
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctkn/codec.h"
#include "ctkn/projector.h"
#include "ctkn/settings.h"
#include "internal.h"

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

/* A batch's history entries, written at its end. */
struct hist {
  struct ctkn_store_history_put *e;
  size_t n, cap;
};

/* Apply one decoded event inside txn. m->value must outlive the batch. */
static int apply_event(ctkn_store_txn *txn, ctkn_env env,
                       const struct ctkn_log_msg *m,
                       const struct ctkn_event *ev, struct hist *hist,
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
  if (hist->n == hist->cap) {
    size_t cap = hist->cap ? 2 * hist->cap : 1024;
    struct ctkn_store_history_put *e = realloc(hist->e, cap * sizeof(*e));
    if (e == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "projector: history");
    hist->e = e;
    hist->cap = cap;
  }
  struct ctkn_store_history_put *h = &hist->e[hist->n++];
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
 * Where a batch's records come from: the caller's ctkn_log_msg array
 * (decoded here), or the pipelined catch-up's buffers (decoded already, on
 * the reader thread).
 */
struct source {
  size_t n;
  /* Record i. The pointer is valid until the next call. */
  const struct ctkn_log_msg *(*msg)(struct source *s, size_t i);
  /* ctkn_projector_decode() of record i, or its stored outcome. */
  int (*decode)(struct source *s, size_t i, struct ctkn_event *ev,
                struct ctkn_err *err);
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
  struct hist hist = {NULL, 0, 0};
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
      fprintf(stderr,
              "ctkn: partition %" PRId32 " paused at offset %" PRId64
              ": schema version %d is newer than this build's %d; "
              "upgrade ctkn\n",
              p, m->offset, m->schema_version, CTKN_SCHEMA_VERSION);
      if (paused == NULL)
        break;
      continue;
    }
    rc = src->decode(src, i, ev, &derr);
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
      (rc = ctkn_store_put_history_batch(txn, hist.e, hist.n, err)) != CTKN_OK)
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
  free(hist.e);
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

static int array_decode(struct source *s, size_t i, struct ctkn_event *ev,
                        struct ctkn_err *err)
{
  return ctkn_projector_decode(array_msg(s, i), ev, err);
}

int ctkn_projector_apply(ctkn_store *st, ctkn_env env,
                         const struct ctkn_log_msg *msgs, size_t n,
                         bool *paused, int32_t npaused,
                         struct ctkn_projector_stats *stats,
                         struct ctkn_err *err)
{
  struct source src = {n, array_msg, array_decode, (void *)msgs};

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
 * A long catch-up runs on two threads: a reader polls, copies each record
 * into a buffer's arena, decodes and checks it (ctkn_projector_decode()),
 * and hands full buffers over; the calling thread applies each buffer in
 * one write transaction. Buffers carry copies, so librdkafka's messages
 * are released as soon as they are read.
 *
 * Flow control: with every buffer taken the reader stops polling and
 * librdkafka's bounded queue fills. librdkafka 2.0.2 then backs the
 * partitions off for a whole second (librdkafka #2879), and its broker
 * thread may sleep a second before fetching partitions assigned while it
 * fetched nothing (ctkn_consumer_nudge()). So once the reader has room but
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

enum { ITEM_EVENT, ITEM_BAD, ITEM_NEWER };

/* One record in an arena, followed by its key, its value and then, for
 * ITEM_EVENT, the event's name, description and idempotency key, or, for
 * ITEM_BAD, the quarantine reason. */
struct item {
  int64_t offset;
  int32_t partition;
  int32_t schema_version;
  uint32_t klen, vlen, name_len, desc_len, idem_len, reason_len;
  uint8_t kind;
  bool key_null, value_null;
  /* The event without its variable-length strings. */
  struct {
    char event_id[CTKN_EVT_ID_LEN + 1];
    char notification_id[CTKN_EVT_ID_LEN + 1];
    ctkn_event_type type;
    int64_t occurred_at;
    uint64_t version;
    bool has_request_hash;
    uint8_t request_hash[CTKN_HASH_LEN];
    char id[CTKN_ID_BUF];
    char token[CTKN_TOKEN_BUF];
    bool has_description;
    ctkn_status status;
    int64_t created_at, updated_at, revoked_at;
  } ev;
};

struct pbuf {
  uint8_t *arena;
  size_t len, cap;
  size_t *at; /* each item's place in the arena */
  size_t n;
};

struct pipe {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct pbuf buf[PIPE_BUFS];
  int ready[PIPE_BUFS]; /* FIFO of filled buffers */
  int rhead, nready;
  int freel[PIPE_BUFS];
  int nfree;
  bool stop;         /* set by the applier */
  bool ended;        /* the reader stopped on an error */
  bool applier_idle; /* the applier waits: hand over what there is */
  int rc;            /* the reader's error */
  struct ctkn_err err;
  /* The reader's own. */
  ctkn_consumer *consumer;
  struct ctkn_log_msg *msgs;
  struct ctkn_event ev;
  int32_t nparts;
  int64_t *next; /* after the last record read, per partition */
  /* The applier's view of the buffer it applies. */
  struct pbuf *cur;
  struct ctkn_log_msg view;
};

static int pbuf_reserve(struct pbuf *b, size_t more)
{
  if (b->len + more <= b->cap)
    return 0;
  size_t step = (size_t)1 << 20, cap = b->cap;
  while (cap < b->len + more)
    cap += step;
  uint8_t *a = realloc(b->arena, cap);
  if (a == NULL)
    return -1;
  b->arena = a;
  b->cap = cap;
  return 0;
}

static void put_bytes(struct pbuf *b, const void *p, size_t n)
{
  if (n > 0)
    memcpy(b->arena + b->len, p, n);
  b->len += n;
}

/* Copy record m into b, decoded (or with the reason it does not decode). */
static int pbuf_add(struct pipe *pp, struct pbuf *b,
                    const struct ctkn_log_msg *m)
{
  struct ctkn_event *ev = &pp->ev;
  struct ctkn_err derr;
  struct item it;
  size_t reason_len = 0;

  memset(&it, 0, sizeof(it));
  it.offset = m->offset;
  it.partition = m->partition;
  it.schema_version = m->schema_version;
  it.key_null = m->key == NULL;
  it.value_null = m->value == NULL;
  it.klen = (uint32_t)m->key_len;
  it.vlen = (uint32_t)m->value_len;
  if (m->schema_version > CTKN_SCHEMA_VERSION) {
    it.kind = ITEM_NEWER;
  } else if (ctkn_projector_decode(m, ev, &derr) != CTKN_OK) {
    it.kind = ITEM_BAD;
    reason_len = strlen(derr.msg);
  } else {
    it.kind = ITEM_EVENT;
    memcpy(it.ev.event_id, ev->event_id, sizeof(it.ev.event_id));
    memcpy(it.ev.notification_id, ev->notification_id,
           sizeof(it.ev.notification_id));
    it.ev.type = ev->type;
    it.ev.occurred_at = ev->occurred_at;
    it.ev.version = ev->version;
    it.ev.has_request_hash = ev->has_request_hash;
    memcpy(it.ev.request_hash, ev->request_hash, sizeof(it.ev.request_hash));
    memcpy(it.ev.id, ev->data.id, sizeof(it.ev.id));
    memcpy(it.ev.token, ev->data.token, sizeof(it.ev.token));
    it.ev.has_description = ev->data.has_description;
    it.ev.status = ev->data.status;
    it.ev.created_at = ev->data.created_at;
    it.ev.updated_at = ev->data.updated_at;
    it.ev.revoked_at = ev->data.revoked_at;
    it.name_len = (uint32_t)strlen(ev->data.name);
    it.desc_len = (uint32_t)strlen(ev->data.description);
    it.idem_len = (uint32_t)strlen(ev->idempotency_key);
  }
  it.reason_len = (uint32_t)reason_len;
  size_t need = sizeof(it) + m->key_len + m->value_len + it.name_len +
                it.desc_len + it.idem_len + reason_len + 8;
  if (pbuf_reserve(b, need) != 0)
    return -1;
  b->len = (b->len + 7) & ~(size_t)7; /* items stay aligned */
  b->at[b->n++] = b->len;
  put_bytes(b, &it, sizeof(it));
  put_bytes(b, m->key, m->key_len);
  put_bytes(b, m->value, m->value_len);
  if (it.kind == ITEM_EVENT) {
    put_bytes(b, ev->data.name, it.name_len);
    put_bytes(b, ev->data.description, it.desc_len);
    put_bytes(b, ev->idempotency_key, it.idem_len);
  } else if (it.kind == ITEM_BAD) {
    put_bytes(b, derr.msg, reason_len);
  }
  return 0;
}

static const struct item *pbuf_item(const struct pbuf *b, size_t i,
                                    const uint8_t **bytes)
{
  const struct item *it = (const struct item *)(b->arena + b->at[i]);
  *bytes = (const uint8_t *)(it + 1);
  return it;
}

static const struct ctkn_log_msg *pipe_msg(struct source *s, size_t i)
{
  struct pipe *pp = s->arg;
  const uint8_t *bytes;
  const struct item *it = pbuf_item(pp->cur, i, &bytes);
  struct ctkn_log_msg *m = &pp->view;

  memset(m, 0, sizeof(*m));
  m->partition = it->partition;
  m->offset = it->offset;
  m->timestamp_ms = -1;
  m->key = it->key_null ? NULL : bytes;
  m->key_len = it->klen;
  m->value = it->value_null ? NULL : bytes + it->klen;
  m->value_len = it->vlen;
  m->schema_version = it->schema_version;
  return m;
}

static void copy_str(char *dst, const uint8_t *src, size_t n)
{
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static int pipe_decode(struct source *s, size_t i, struct ctkn_event *ev,
                       struct ctkn_err *err)
{
  struct pipe *pp = s->arg;
  const uint8_t *bytes;
  const struct item *it = pbuf_item(pp->cur, i, &bytes);

  bytes += it->klen + it->vlen;
  if (it->kind != ITEM_EVENT) {
    err->code = CTKN_EDECODE;
    err->field[0] = '\0';
    copy_str(err->msg, bytes,
             it->reason_len < sizeof(err->msg) ? it->reason_len
                                               : sizeof(err->msg) - 1);
    return CTKN_EDECODE;
  }
  memcpy(ev->event_id, it->ev.event_id, sizeof(ev->event_id));
  memcpy(ev->notification_id, it->ev.notification_id,
         sizeof(ev->notification_id));
  ev->type = it->ev.type;
  ev->occurred_at = it->ev.occurred_at;
  ev->version = it->ev.version;
  ev->has_request_hash = it->ev.has_request_hash;
  memcpy(ev->request_hash, it->ev.request_hash, sizeof(ev->request_hash));
  memcpy(ev->data.id, it->ev.id, sizeof(ev->data.id));
  memcpy(ev->data.token, it->ev.token, sizeof(ev->data.token));
  ev->data.has_description = it->ev.has_description;
  ev->data.status = it->ev.status;
  ev->data.created_at = it->ev.created_at;
  ev->data.updated_at = it->ev.updated_at;
  ev->data.revoked_at = it->ev.revoked_at;
  copy_str(ev->data.name, bytes, it->name_len);
  bytes += it->name_len;
  copy_str(ev->data.description, bytes, it->desc_len);
  bytes += it->desc_len;
  copy_str(ev->idempotency_key, bytes, it->idem_len);
  return CTKN_OK;
}

/* Hand the buffer being filled to the applier. Locked. */
static void pipe_hand_over(struct pipe *pp, int *fill)
{
  pp->ready[(pp->rhead + pp->nready) % PIPE_BUFS] = *fill;
  pp->nready++;
  *fill = -1;
  pthread_cond_broadcast(&pp->cv);
}

static void *pipe_reader(void *arg)
{
  struct pipe *pp = arg;
  struct ctkn_err err;
  int64_t idle_since = ctkn__now_ms(); /* the last record, or restart */
  int64_t nudged = 0;
  bool stalled = false; /* waited for a buffer: librdkafka's queue filled */
  int fill = -1, rc = CTKN_OK;

  pthread_mutex_lock(&pp->mu);
  for (;;) {
    if (pp->stop)
      break;
    if (fill >= 0 && pp->buf[fill].n > 0 && pp->applier_idle) {
      pipe_hand_over(pp, &fill);
      continue;
    }
    if (fill < 0) {
      /* Every buffer taken: librdkafka's queue fills meanwhile. */
      if (pp->nfree == 0)
        stalled = true;
      while (!pp->stop && pp->nfree == 0)
        pthread_cond_wait(&pp->cv, &pp->mu);
      if (pp->stop)
        break;
      fill = pp->freel[--pp->nfree];
    }
    struct pbuf *b = &pp->buf[fill];
    pthread_mutex_unlock(&pp->mu);

    size_t got = 0;
    rc = ctkn_consumer_poll(pp->consumer, b->n > 0 ? 5 : 20, pp->msgs,
                            BATCH_MAX - b->n, &got, &err);
    for (size_t i = 0; rc == CTKN_OK && i < got; i++) {
      const struct ctkn_log_msg *m = &pp->msgs[i];
      if (pbuf_add(pp, b, m) != 0)
        rc = ctkn__err(&err, CTKN_ENOMEM, "projector: record buffer");
      else if (m->partition >= 0 && m->partition < pp->nparts &&
               m->offset + 1 > pp->next[m->partition])
        pp->next[m->partition] = m->offset + 1;
    }
    int64_t now = ctkn__now_ms(), idle = now - idle_since;
    if (got > 0) {
      idle_since = now;
    } else if (rc == CTKN_OK &&
               ((stalled && idle >= PIPE_IDLE_MS) || idle >= PIPE_STUCK_MS)) {
      /* Room, nothing queued, and librdkafka's queue filled up earlier
       * (or nothing came for long): it is backing off. Restarting the
       * fetch at the next offsets ends that. Not sooner, which would
       * only throw away fetches in flight. */
      rc = ctkn_consumer_assign(pp->consumer, pp->next, pp->nparts, &err);
      stalled = false;
      idle_since = now;
    } else if (rc == CTKN_OK && idle >= PIPE_IDLE_MS &&
               now - nudged >= PIPE_IDLE_MS) {
      /* The fetcher may be asleep (see above): wake it. */
      ctkn_consumer_nudge(pp->consumer, pp->nparts);
      nudged = ctkn__now_ms();
    }
    pthread_mutex_lock(&pp->mu);
    if (rc != CTKN_OK)
      break;
    /* Full, or nothing more to read for now: the applier may have it. */
    if (b->n == BATCH_MAX || (got == 0 && b->n > 0))
      pipe_hand_over(pp, &fill);
  }
  if (fill >= 0 && pp->buf[fill].n > 0)
    pipe_hand_over(pp, &fill);
  if (rc != CTKN_OK) {
    pp->rc = rc;
    pp->err = err;
  }
  pp->ended = true;
  pthread_cond_broadcast(&pp->cv);
  pthread_mutex_unlock(&pp->mu);
  return NULL;
}

static void pipe_free(struct pipe *pp)
{
  for (int i = 0; i < PIPE_BUFS; i++) {
    free(pp->buf[i].arena);
    free(pp->buf[i].at);
  }
  free(pp->next);
}

/* Apply one buffer and advance the consumed positions. */
static int pipe_apply(ctkn_projector *p, struct pipe *pp, struct pbuf *b,
                      struct ctkn_err *err)
{
  struct source src = {b->n, pipe_msg, pipe_decode, pp};
  int rc;

  pp->cur = b;
  if ((rc = apply_source(p->st, p->env, &src, p->paused, p->nparts, &p->stats,
                         err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < b->n; i++) {
    const uint8_t *bytes;
    const struct item *it = pbuf_item(b, i, &bytes);
    int32_t part = it->partition;
    if (part < p->nparts && !p->paused[part] && it->offset + 1 > p->pos[part])
      p->pos[part] = it->offset + 1;
  }
  advanced(p);
  return CTKN_OK;
}

/* ctkn_projector_catch_up() to hi[], on two threads. The partitions are
 * assigned at p->pos; afterwards the consumer stands past them. */
static int catch_up_pipelined(ctkn_projector *p, const int64_t *hi,
                              struct ctkn_err *err)
{
  struct pipe *pp = calloc(1, sizeof(*pp));
  pthread_t reader;
  int rc = CTKN_OK;

  if (pp == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: pipeline");
  pp->consumer = p->consumer;
  pp->msgs = p->msgs;
  pp->nparts = p->nparts;
  pp->next = malloc((size_t)p->nparts * sizeof(*pp->next));
  bool ok = pp->next != NULL;
  for (int i = 0; ok && i < PIPE_BUFS; i++) {
    ok = (pp->buf[i].at = malloc(BATCH_MAX * sizeof(size_t))) != NULL;
    pp->freel[pp->nfree++] = i;
  }
  if (!ok) {
    pipe_free(pp);
    free(pp);
    return ctkn__err(err, CTKN_ENOMEM, "projector: pipeline");
  }
  memcpy(pp->next, p->pos, (size_t)p->nparts * sizeof(*pp->next));
  pthread_mutex_init(&pp->mu, NULL);
  pthread_cond_init(&pp->cv, NULL);
  /* The reader owns the consumer until it is joined. */
  p->assigned = false;
  /* Commit without waiting for the disk, flush once at the end. */
  if ((rc = ctkn__store_unsynced_begin(p->st, err)) != CTKN_OK)
    goto out;
  if (pthread_create(&reader, NULL, pipe_reader, pp) != 0) {
    ctkn__store_unsynced_end(p->st, NULL);
    rc = ctkn__err(err, CTKN_EINTERNAL, "projector: no reader thread");
    goto out;
  }

  int64_t deadline = ctkn__now_ms() + p->cfg->timeout_ms;
  for (;;) {
    bool done = true;
    for (int32_t i = 0; i < p->nparts && done; i++)
      if (!p->paused[i] && p->pos[i] < hi[i])
        done = false;
    if (done)
      break;
    pthread_mutex_lock(&pp->mu);
    pp->applier_idle = true;
    pthread_cond_broadcast(&pp->cv);
    while (pp->nready == 0 && !pp->ended) {
      int64_t left = deadline - ctkn__now_ms();
      if (left <= 0)
        break;
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t ns = ts.tv_nsec + (left < 100 ? left : 100) * 1000000;
      ts.tv_sec += ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&pp->cv, &pp->mu, &ts);
    }
    pp->applier_idle = false;
    if (pp->nready == 0) {
      if (pp->ended) {
        rc = pp->rc;
        if (err != NULL)
          *err = pp->err;
      } else {
        rc = ctkn__err(err, CTKN_ETIMEOUT,
                       "projection made no progress for %d ms",
                       p->cfg->timeout_ms);
      }
      pthread_mutex_unlock(&pp->mu);
      if (rc == CTKN_OK)
        rc = ctkn__err(err, CTKN_EINTERNAL, "projector: the reader stopped");
      break;
    }
    int bi = pp->ready[pp->rhead];
    pp->rhead = (pp->rhead + 1) % PIPE_BUFS;
    pp->nready--;
    pthread_mutex_unlock(&pp->mu);

    rc = pipe_apply(p, pp, &pp->buf[bi], err);
    pthread_mutex_lock(&pp->mu);
    pp->buf[bi].n = 0;
    pp->buf[bi].len = 0;
    pp->freel[pp->nfree++] = bi;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
    if (rc != CTKN_OK)
      break;
    deadline = ctkn__now_ms() + p->cfg->timeout_ms;
  }

  pthread_mutex_lock(&pp->mu);
  pp->stop = true;
  pthread_cond_broadcast(&pp->cv);
  pthread_mutex_unlock(&pp->mu);
  pthread_join(reader, NULL);
  int src = ctkn__store_unsynced_end(p->st, rc == CTKN_OK ? err : NULL);
  if (rc == CTKN_OK)
    rc = src;
out:
  pthread_mutex_destroy(&pp->mu);
  pthread_cond_destroy(&pp->cv);
  pipe_free(pp);
  free(pp);
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
        fprintf(stderr, "ctkn project: settings not followed: %s\n", err.msg);
      p->settings_retry_ms = ctkn__now_ms() + 30000;
      return;
    }
  }
  rc = ctkn_settings_follower_poll(p->settings, 0, &got, &err);
  if (rc != CTKN_OK) {
    fprintf(stderr, "ctkn project: settings: %s; retrying in 30 s\n", err.msg);
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
      fprintf(stderr, "ctkn project: the projection was rebuilt; following "
                      "the new one\n");
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
