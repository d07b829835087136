/*
 * apply.c - a batch of records into the projection, in one write
 * transaction: decode each record with the codec, check it, apply it or
 * record why not, and commit the state with every partition's next
 * offset.
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

#include "event_int.h"
#include "projector/projector_int.h"
#include "store/shared.h"

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

/* Record why the event at m was rejected. */
static int reject(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                  const struct ctkn_event *ev, const char *reason,
                  struct ctkn_projector_stats *stats, struct ctkn_err *err)
{
  stats->rejected++;
  return ctkn_store_put_rejected(txn, m->partition, m->offset, ev->event_id,
                                 ev->data.id, reason, err);
}

/* Whether ev's idempotency key was used by a create before it: a racing
 * duplicate, which loses to the first create with the key (*used, with
 * the reason). */
static int idem_used(ctkn_store_txn *txn, const struct ctkn_event *ev,
                     bool *used, char *reason, size_t reasonsz,
                     struct ctkn_err *err)
{
  char other[CTKN_ID_BUF];
  uint8_t hash[CTKN_HASH_LEN];
  int rc;

  *used = false;
  rc = ctkn_store_get_idem(txn, ev->idempotency_key, other, hash, err);
  if (rc == CTKN_ENOTFOUND)
    return CTKN_OK;
  if (rc != CTKN_OK)
    return rc;
  snprintf(reason, reasonsz, "idempotency: key already used by %s", other);
  *used = true;
  return CTKN_OK;
}

/* History is written at the batch's end, sorted (nothing reads it
 * meanwhile): note the entry for the event at m. */
static int add_history(struct ctkn__buf *hist, const struct ctkn_log_msg *m,
                       const struct ctkn_event *ev, struct ctkn_err *err)
{
  struct ctkn_store_history_put *h = ctkn__buf_add(hist, sizeof(*h));

  if (h == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: history");
  memcpy(h->id, ev->data.id, sizeof(h->id));
  h->version = ev->version;
  h->partition = m->partition;
  h->offset = m->offset;
  h->value = m->value;
  h->len = m->value_len;
  memcpy(h->event_id, ev->event_id, sizeof(h->event_id));
  h->type = (int)ev->type;
  h->occurred_at = ev->occurred_at;
  return CTKN_OK;
}

/* The token's current record into *cur; *found is false for a new token.
 * A create's ID is new but for a duplicate: the batch may guess so and
 * check at its end (apply_source() goes again if it guessed wrong). */
static int load_current(ctkn_store_txn *txn, const struct ctkn_event *ev,
                        struct ctkn_record *cur, bool *found,
                        struct ctkn_err *err)
{
  int rc = ev->type == CTKN_EVENT_CREATED
               ? ctkn__store_get_new(txn, ev->data.id, cur, err)
               : ctkn_store_get(txn, ev->data.id, cur, err);

  *found = rc == CTKN_OK;
  return rc == CTKN_ENOTFOUND ? CTKN_OK : rc;
}

/* Apply one decoded event inside txn. m->value must outlive the batch. */
static int apply_event(ctkn_store_txn *txn, ctkn_env env,
                       const struct ctkn_log_msg *m,
                       const struct ctkn_event *ev, struct ctkn__buf *hist,
                       struct ctkn_projector_stats *stats, struct ctkn_err *err)
{
  struct ctkn_record cur;
  char reason[256];
  bool found;
  int rc;

  if ((rc = load_current(txn, ev, &cur, &found, err)) != CTKN_OK)
    return rc;
  const struct ctkn_record *curp = found ? &cur : NULL;

  /* ctkn_projector_decode() has run ctkn_event_check() already. */
  int verdict = ctkn__apply_checked(curp, ev, env, reason, sizeof(reason));
  if (verdict == CTKN_APPLIED && curp != NULL &&
      curp->partition != m->partition) {
    /* A token's events must share one partition, or replicas could apply
     * them in different orders. */
    snprintf(reason, sizeof(reason),
             "partition: token lives on partition %" PRId32, curp->partition);
    verdict = CTKN_REJECTED;
  }
  if (verdict == CTKN_APPLIED && ev->idempotency_key[0] != '\0') {
    bool used;
    if ((rc = idem_used(txn, ev, &used, reason, sizeof(reason), err)) !=
        CTKN_OK)
      return rc;
    if (used)
      verdict = CTKN_REJECTED;
  }
  if (verdict == CTKN_REJECTED)
    return reject(txn, m, ev, reason, stats, err);

  /* The next state is the event's entity: put it as it is, uncopied. */
  rc = ctkn__store_put_token(txn, &ev->data, ev->version, m->partition,
                             m->offset, err);
  if (rc == CTKN_ECONFLICT) {
    /* Another token already holds this token string (a writer that reused
     * one). The store undid the put; every replica rejects the same way. */
    return reject(txn, m, ev, "token: token string already in use", stats, err);
  }
  if (rc != CTKN_OK || (rc = add_history(hist, m, ev, err)) != CTKN_OK)
    return rc;
  if (ev->idempotency_key[0] != '\0' &&
      (rc = ctkn_store_put_idem(txn, ev->idempotency_key, ev->data.id,
                                ev->request_hash, err)) != CTKN_OK)
    return rc;
  stats->applied++;
  return CTKN_OK;
}

/* One attempt at applying a source: its write transaction and what it
 * gathers until the commit. */
struct pass {
  ctkn_store_txn *txn;
  ctkn_env env;
  bool *paused; /* npaused entries, or NULL: stop at a newer schema */
  int32_t npaused;
  struct cursor cur;
  /* The history entries (struct ctkn_store_history_put), written at the
   * end. */
  struct ctkn__buf hist;
  struct ctkn_event *ev; /* the record being applied, decoded */
  struct ctkn_projector_stats stats;
  struct ctkn__ptrust *trust; /* NULL: trust is off */
  int pause_rc; /* recording a pause failed: the pass fails with it */
  struct ctkn_err pause_err;
  struct ctkn__judge *judge; /* with trust: the batch as judged */
  size_t news; /* records not skipped: 0 leaves nothing to commit */
};

static bool is_paused(const struct pass *ps, int32_t p)
{
  return ps->paused != NULL && p < ps->npaused && ps->paused[p];
}

/* Stop partition m->partition at m, whose schema is newer than this
 * build's: its offset stays below the record. true when the whole batch
 * must stop there, having nowhere to note the pause. */
static bool pause_at(struct pass *ps, const struct ctkn_log_msg *m)
{
  int32_t p = m->partition;

  int refused = ps->trust != NULL ? ctkn__ptrust_refused(ps->trust) : 0;

  /* Recorded with the projection, so that its readers fail closed too;
   * committed with the records before it. */
  if (ps->pause_rc == CTKN_OK)
    ps->pause_rc = ctkn_store_set_pause(ps->txn, p, m->offset,
                                        refused ? refused : m->schema_version,
                                        &ps->pause_err);
  if (ps->paused != NULL && p < ps->npaused && !ps->paused[p]) {
    ps->paused[p] = true;
    ps->stats.paused++;
  }
  ctkn__diag(CTKN_DIAG_ERROR, "projector",
             "partition %" PRId32 " paused at offset %" PRId64
             ": schema version %d is newer than this build's %d; "
             "upgrade ctkn",
             p, m->offset, refused ? refused : m->schema_version,
             CTKN_SCHEMA_VERSION);
  return ps->paused == NULL;
}

/* Decode the record at m and apply it, or quarantine it with the reason
 * it does not decode. */
static int apply_record(struct pass *ps, struct source *src, size_t i,
                        const struct ctkn_log_msg *m, struct ctkn_err *err)
{
  struct ctkn_err derr;
  int rc = src->decode != NULL ? src->decode(src, i, ps->ev, &derr)
                               : ctkn_projector_decode(m, ps->ev, &derr);

  if (rc != CTKN_OK) {
    ps->stats.quarantined++;
    return ctkn_store_put_quarantine(ps->txn, m->partition, m->offset, derr.msg,
                                     m->key, m->key_len, m->value, m->value_len,
                                     err);
  }
  return apply_event(ps->txn, ps->env, m, ps->ev, &ps->hist, &ps->stats, err);
}

/* Every record of src in order: skip what the store has, hold back the
 * paused partitions, apply the rest. */
static int apply_records(struct pass *ps, struct source *src,
                         struct ctkn_err *err)
{
  int rc;

  for (size_t i = 0; i < src->n; i++) {
    const struct ctkn_log_msg *m = src->msg(src, i);
    int32_t p = m->partition;
    int64_t next = 0;

    if ((rc = cursor_next(&ps->cur, ps->txn, p, &next, err)) != CTKN_OK)
      return rc;
    if (m->offset < next) {
      ps->stats.skipped++;
      continue;
    }
    ps->news++;
    if (is_paused(ps, p))
      continue;
    if (m->schema_version > CTKN_SCHEMA_VERSION) {
      if (pause_at(ps, m))
        break;
      continue;
    }
    if ((rc = apply_record(ps, src, i, m, err)) != CTKN_OK)
      return rc;
    ps->cur.next[p] = m->offset + 1;
    ps->cur.dirty[p] = true;
  }
  return CTKN_OK;
}

/* Decode record k of a judged batch and apply it: a carried record is
 * decoded here, the source's as the source does. */
static int apply_judged_record(struct pass *ps, struct source *src, size_t k,
                               const struct ctkn_log_msg *m,
                               struct ctkn_err *err)
{
  if (k >= ps->judge->ncarried)
    return apply_record(ps, src, k - ps->judge->ncarried, m, err);
  struct source none = {0, NULL, NULL, NULL};
  return apply_record(ps, &none, 0, m, err);
}

/* What the gate let through, in order: apply it, quarantine it with the
 * gate's reason, or note a checkpoint; held-back records stay below the
 * stored offset. */
static int apply_judged(struct pass *ps, struct source *src,
                        struct ctkn_err *err)
{
  struct ctkn__judge *j = ps->judge;
  int rc;

  if ((rc = ctkn__ptrust_judge(ps->trust, ps->txn, j, err)) != CTKN_OK)
    return rc;
  for (size_t k = 0; k < j->n; k++) {
    const struct ctkn_log_msg *m = j->msg(j, k);
    int32_t p = m->partition;
    int64_t next = 0;

    ps->news += j->verdict[k] != JV_SKIP;
    switch (j->verdict[k]) {
    case JV_SKIP:
      ps->stats.skipped += k >= j->ncarried;
      continue;
    case JV_HELD:
      continue;
    case JV_PAUSE:
      if (pause_at(ps, m))
        return CTKN_OK;
      continue;
    case JV_CHECKPOINT:
      ps->stats.checkpoints++;
      break;
    case JV_QUARANTINE:
      ps->stats.quarantined++;
      ctkn__ptrust_log(ps->trust, k, m);
      rc = ctkn_store_put_quarantine(ps->txn, p, m->offset,
                                     ctkn__ptrust_reason(ps->trust, k), m->key,
                                     m->key_len, m->value, m->value_len, err);
      break;
    default:
      rc = apply_judged_record(ps, src, k, m, err);
    }
    if (rc != CTKN_OK ||
        (rc = cursor_next(&ps->cur, ps->txn, p, &next, err)) != CTKN_OK)
      return rc;
    ps->cur.next[p] = m->offset + 1;
    ps->cur.dirty[p] = true;
  }
  return ctkn__ptrust_save(ps->trust, ps->txn, err);
}

/* Write what the pass gathered (the token puts, the history, every
 * partition's next offset) and commit. *wrong as apply_once(). A pass
 * that skipped every record (another writer applied them first: the
 * server's follower and its command thread race for the same records)
 * has nothing to write and is not committed: a commit would cost an
 * fsync for nothing, with the other writer's fsync just before it. */
static int commit_pass(struct pass *ps, bool *wrong, struct ctkn_err *err)
{
  int rc;

  if (ps->news == 0)
    return CTKN_OK; /* apply_once() aborts the transaction */

  if ((rc = ctkn__store_batch_write(ps->txn, wrong, err)) != CTKN_OK ||
      (rc = ctkn_store_put_history_batch(
           ps->txn, (struct ctkn_store_history_put *)(void *)ps->hist.data,
           ps->hist.len / sizeof(struct ctkn_store_history_put), err)) !=
          CTKN_OK)
    return rc;
  if (ps->pause_rc != CTKN_OK) {
    if (err != NULL)
      *err = ps->pause_err;
    return ps->pause_rc;
  }
  for (int32_t p = 0; p < ps->cur.n; p++) {
    if (ps->cur.dirty[p] &&
        ((rc = ctkn_store_set_offset(ps->txn, p, ps->cur.next[p], err)) !=
             CTKN_OK ||
         (rc = ctkn_store_clear_pause(ps->txn, p, ps->cur.next[p], err)) !=
             CTKN_OK))
      return rc;
  }
  rc = ctkn_store_commit(ps->txn, err);
  ps->txn = NULL;
  return rc;
}

static void add_stats(struct ctkn_projector_stats *to,
                      const struct ctkn_projector_stats *batch)
{
  if (to == NULL)
    return;
  to->applied += batch->applied;
  to->rejected += batch->rejected;
  to->quarantined += batch->quarantined;
  to->skipped += batch->skipped;
  to->checkpoints += batch->checkpoints;
  to->paused += batch->paused;
  to->batches++;
}

/* Apply a source's records in one write transaction; with guess, let
 * the store guess that creates are new (ctkn__store_batch()). *wrong: a
 * guess was wrong, nothing is committed. */
static int apply_once(ctkn_store *st, ctkn_env env, struct ctkn__judge *j,
                      struct source *src, bool *paused, int32_t npaused,
                      bool guess, bool *wrong,
                      struct ctkn_projector_stats *stats, struct ctkn_err *err)
{
  struct pass ps = {.env = env,
                    .paused = paused,
                    .npaused = npaused,
                    .trust = j ? (struct ctkn__ptrust *)j->t : NULL,
                    .judge = j,
                    .cur = {0, NULL, NULL},
                    .hist = CTKN__BUF_INIT};
  int rc;

  *wrong = false;
  if (src->n == 0 && (j == NULL || j->n == 0))
    return CTKN_OK;
  if ((ps.ev = malloc(sizeof(*ps.ev))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: event buffer");
  if ((rc = ctkn_store_begin(st, true, &ps.txn, err)) == CTKN_OK &&
      (rc = ctkn__store_batch(ps.txn, guess, err)) == CTKN_OK &&
      (rc = j ? apply_judged(&ps, src, err) : apply_records(&ps, src, err)) ==
          CTKN_OK &&
      (rc = commit_pass(&ps, wrong, err)) == CTKN_OK)
    add_stats(stats, &ps.stats);
  else if (rc == CTKN_EMAPFULL) /* say how full and what to do */
    rc = ctkn_store_map_full(st, err);
  ctkn_store_abort(ps.txn);
  free(ps.cur.next);
  free(ps.cur.dirty);
  ctkn__buf_free(&ps.hist);
  free(ps.ev);
  return rc;
}

/*
 * Apply a source's records in one write transaction. Creates are guessed
 * new (no lookup of the ID or token string) and checked as the batch is
 * written; when a guess was wrong (a duplicate create, a reused token
 * string) the transaction is aborted and the batch applied again without
 * guessing, from the same paused partitions.
 */
static const struct ctkn_log_msg *judge_msg(struct ctkn__judge *j, size_t k)
{
  if (k < j->ncarried)
    return ctkn__ptrust_carried_msg(j->t, k);
  return j->src->msg(j->src, k - j->ncarried);
}

/* The judged view of src: the carried records, then src's. */
static int judge_init(struct ctkn__judge *j, struct ctkn__ptrust *t,
                      struct source *src, bool *paused, struct ctkn_err *err)
{
  memset(j, 0, sizeof(*j));
  j->t = t;
  j->src = src;
  j->paused = paused;
  j->msg = judge_msg;
  j->ncarried = ctkn__ptrust_carried(t);
  j->n = j->ncarried + src->n;
  j->verdict = malloc(j->n ? j->n : 1);
  j->next = malloc(CTKN_STORE_MAX_PARTITIONS * sizeof(*j->next));
  if (j->verdict == NULL || j->next == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: judging a batch");
  return CTKN_OK;
}

static void judge_reset(struct ctkn__judge *j)
{
  for (int32_t p = 0; p < CTKN_STORE_MAX_PARTITIONS; p++)
    j->next[p] = -1;
}

int ctkn__projector_apply_source(ctkn_store *st, ctkn_env env,
                                 struct ctkn__ptrust *trust, struct source *src,
                                 bool *paused, int32_t npaused,
                                 struct ctkn_projector_stats *stats,
                                 struct ctkn_err *err)
{
  struct ctkn__judge judge, *j = NULL;
  bool *was = NULL, wrong = false;
  int rc;

  if (trust != NULL) {
    j = &judge;
    if ((rc = ctkn__ptrust_refresh(trust, st, src, err)) != CTKN_OK ||
        (rc = judge_init(j, trust, src, paused, err)) != CTKN_OK) {
      if (trust != NULL && j != NULL) {
        free(judge.verdict);
        free(judge.next);
      }
      return rc;
    }
    judge_reset(j);
  }

  if (paused != NULL && npaused > 0) {
    if ((was = malloc((size_t)npaused * sizeof(*was))) == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "projector: paused partitions");
    memcpy(was, paused, (size_t)npaused * sizeof(*was));
  }
  rc = apply_once(st, env, j, src, paused, npaused, true, &wrong, stats, err);
  if (rc != CTKN_OK && wrong) {
    if (was != NULL)
      memcpy(paused, was, (size_t)npaused * sizeof(*was));
    if (j != NULL)
      judge_reset(j);
    rc =
        apply_once(st, env, j, src, paused, npaused, false, &wrong, stats, err);
  }
  if (rc == CTKN_OK && j != NULL)
    rc = ctkn__ptrust_carry(trust, j, err);
  if (j != NULL) {
    free(judge.verdict);
    free(judge.next);
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
  struct source src = {n, array_msg, NULL, (void *)msgs};

  return ctkn__projector_apply_source(st, env, NULL, &src, paused, npaused,
                                      stats, err);
}

/* ---- records handed over, judged (projector.h) -------------------------- */

struct ctkn_projector_judged {
  ctkn_store *st;
  ctkn_env env;
  struct ctkn__ptrust *trust;
};

int ctkn_projector_judged_open(ctkn_projector_judged **out, ctkn_store *st,
                               ctkn_env env,
                               const uint8_t root[CTKN_SIGN_PUB_LEN],
                               const struct ctkn_trust_source *src,
                               struct ctkn_err *err)
{
  ctkn_projector_judged *j;
  int rc;

  *out = NULL;
  if ((j = calloc(1, sizeof(*j))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: out of memory");
  j->st = st;
  j->env = env;
  if ((rc = ctkn__ptrust_open(&j->trust, st, NULL, root, err)) != CTKN_OK) {
    free(j);
    return rc;
  }
  ctkn__ptrust_set_source(j->trust, src);
  *out = j;
  return CTKN_OK;
}

int ctkn_projector_judged_apply(ctkn_projector_judged *j,
                                const struct ctkn_log_msg *msgs, size_t n,
                                bool *paused, int32_t npaused,
                                struct ctkn_projector_stats *stats,
                                struct ctkn_err *err)
{
  struct source src = {n, array_msg, NULL, (void *)msgs};

  return ctkn__projector_apply_source(j->st, j->env, j->trust, &src, paused,
                                      npaused, stats, err);
}

void ctkn_projector_judged_close(ctkn_projector_judged *j)
{
  if (j == NULL)
    return;
  ctkn__ptrust_free(j->trust);
  free(j);
}
