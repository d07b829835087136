/*
 * batch.c - a batch of commands through the log: plan each against the
 * projection (and choose its partition), sign and append the events at
 * once, wait until the projection has judged them and answer each.
 * Whole (ctkn_ledger_execute_batch()) or in two halves on two threads
 * (ctkn_ledger_submit(), ctkn_ledger_settle()). The handle it works on
 * is ledger.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/ledger.h"
#include "ctkn/projector.h"
#include "ctkn/trust.h"
#include "internal.h"
#include "ledger/ledger_int.h"

/*
 * Read what planning needs: the current record (for update and revoke) and,
 * for a create with an idempotency key, the token that key already made.
 * Returns CTKN_OK with *found telling whether cur was filled; for a known
 * idempotency key *replay is set and cur holds the first token.
 */
static int load_state(ctkn_ledger *l, const struct ctkn_command *cmd,
                      struct ctkn_record *cur, bool *found, bool *replay,
                      struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  int rc;

  *found = *replay = false;
  if (cmd->kind == CTKN_CMD_CREATE && cmd->idempotency_key[0] == '\0')
    return CTKN_OK; /* a new token, no key: nothing to read */
  if ((rc = ctkn_store_begin(l->st, false, &txn, err)) != CTKN_OK)
    return rc;
  if (cmd->kind == CTKN_CMD_CREATE && cmd->idempotency_key[0] != '\0') {
    char id[CTKN_ID_BUF];
    uint8_t stored[CTKN_HASH_LEN], mine[CTKN_HASH_LEN];
    rc = ctkn_store_get_idem(txn, cmd->idempotency_key, id, stored, err);
    if (rc == CTKN_OK) {
      ctkn_command_request_hash(cmd, mine);
      if (memcmp(stored, mine, sizeof(mine)) != 0)
        rc = ctkn__err(err, CTKN_ECONFLICT,
                       "idempotency key \"%.100s\" was already used with a "
                       "different request (token %s)",
                       cmd->idempotency_key, id);
      else if ((rc = ctkn_store_get(txn, id, cur, err)) == CTKN_OK)
        *found = *replay = true;
    } else if (rc == CTKN_ENOTFOUND) {
      rc = CTKN_OK;
    }
  } else if (cmd->kind != CTKN_CMD_CREATE) {
    rc = ctkn_store_get(txn, cmd->id, cur, err);
    if (rc == CTKN_OK)
      *found = true;
    else if (rc == CTKN_ENOTFOUND)
      rc = CTKN_OK;
  }
  ctkn_store_abort(txn);
  return rc;
}

/* Plan against the projection. CTKN_PLAN_APPEND leaves the event in *ev;
 * CTKN_PLAN_NOOP leaves the answer in out. */
static int plan(ctkn_ledger *l, const struct ctkn_command *cmd,
                struct ctkn_event *ev, struct ctkn_record *cur,
                struct ctkn_outcome *out, struct ctkn_err *err)
{
  bool found, replay;
  int rc;

  if ((rc = load_state(l, cmd, cur, &found, &replay, err)) != CTKN_OK)
    return rc;
  if (replay) {
    out->record = *cur;
    return CTKN_PLAN_NOOP;
  }
  rc = ctkn_plan(found ? cur : NULL, cmd, l->env, ctkn_now_us(), ev, err);
  if (rc == CTKN_PLAN_NOOP)
    out->record = *cur;
  return rc;
}

/* Creates without an idempotency key stay on one partition for at most
 * this many records, and only while the topic has at most
 * STICKY_MAX_PARTS partitions (an ID is drawn about n times per create on
 * n partitions; at most STICKY_DRAWS * n). */
#define STICKY_RUN       128
#define STICKY_MAX_PARTS 32
#define STICKY_DRAWS     64

/* The first partition from start on (of n) that this projection has not
 * paused (a newer schema), or start when every one is or the store
 * fails: a create sent to a paused partition is appended but never
 * judged here. */
static int32_t open_partition(ctkn_ledger *l, int32_t start, int32_t n)
{
  ctkn_store_txn *txn;
  int32_t p = start;

  if (ctkn_store_begin(l->st, false, &txn, NULL) != CTKN_OK)
    return start;
  for (int32_t i = 0; i < n; i++) {
    bool paused = true;
    p = (start + i) % n;
    if (ctkn_store_is_paused(txn, p, &paused, NULL) != CTKN_OK || !paused)
      break;
  }
  ctkn_store_abort(txn);
  return p;
}

/*
 * The partition a new event goes to: a new token's is pinned now (by the
 * idempotency key when there is one, so racing duplicates meet on one
 * partition; else by the ID); a known token's comes from its record.
 *
 * An ID is new, so the ledger may draw it again: a batch's creates without
 * a key go to one partition (up to STICKY_RUN of them, then the next), the
 * next batch's to the next partition, their IDs drawn until the
 * partitioner puts them there. A batch's creates then share one checkpoint
 * signature and one produce batch instead of one per partition, and
 * successive batches still spread over every partition (a notifier's lanes
 * and a group's members share a burst). The partition is still the hash
 * of the ID, as every reader expects. A partition this projection has
 * paused is passed over. l->sticky_left is set to 0 at each batch's start
 * (plan_and_append()).
 */
static int pick_partition(ctkn_ledger *l, const struct ctkn_command *cmd,
                          struct ctkn_event *ev, const struct ctkn_record *cur,
                          int32_t *part, struct ctkn_err *err)
{
  if (ev->type != CTKN_EVENT_CREATED) {
    *part = cur->partition;
    return CTKN_OK;
  }
  int32_t n = l->parts;
  const char *key =
      cmd->idempotency_key[0] ? cmd->idempotency_key : ev->data.id;
  if (n <= 0)
    return ctkn__err(err, CTKN_EKAFKA, "topic %s has no partitions",
                     l->cfg->topic);
  *part = ctkn_log_partition_for(key, strlen(key), n);
  if (cmd->idempotency_key[0] != '\0' || n == 1 || n > STICKY_MAX_PARTS)
    return CTKN_OK;
  if (l->sticky < 0 || l->sticky >= n) {
    l->sticky = open_partition(l, *part, n); /* the first is random */
    l->sticky_left = STICKY_RUN;
  } else if (l->sticky_left <= 0) {
    l->sticky = open_partition(l, (l->sticky + 1) % n, n);
    l->sticky_left = STICKY_RUN;
  }
  l->sticky_left--;
  for (int i = 0; i < STICKY_DRAWS * n && *part != l->sticky; i++) {
    /* Later in the same millisecond: still a new, increasing ID. */
    if (ctkn_id_generate("ctkn_", ev->data.created_at / 1000, ev->data.id,
                         sizeof(ev->data.id)) != CTKN_OK)
      break; /* keep the last one drawn; its own partition is right */
    *part = ctkn_log_partition_for(ev->data.id, strlen(ev->data.id), n);
  }
  return CTKN_OK;
}

/* Scratch space for one command of a batch. */
/* The headers of an event record: ctkn's and CloudEvents' binary mode
 * (docs/consumers.md). */
#define EVENT_HEADERS 8

struct slot {
  struct ctkn_record cur;
  struct ctkn_event ev;
  uint8_t *buf; /* the encoded event */
  size_t len;
  struct ctkn_log_header hdr[EVENT_HEADERS];
  char schema[12];
  char time[CTKN_TIME_BUF];
  bool sent;     /* appended: its fate is decided by the projection */
  size_t dup_of; /* j + 1: a create with command j's idempotency key, which
                    answers for both; 0: none */
};

/* One ctkn_ledger_execute_batch(): the caller's arrays (n entries each)
 * and the scratch space beside them. */
struct batch {
  const struct ctkn_command *cmds;
  size_t n;
  struct ctkn_outcome *outs;
  int *rcs;
  struct ctkn_err *errs;
  struct slot *slots;
  struct ctkn_log_record *recs; /* the events to append, nrec of them */
  size_t *which;                /* recs[k] is command which[k]'s */
  size_t nrec;
  int failed; /* what stopped the batch before planning (each carries it) */
  /* The append in flight: started by append_start(), awaited by
   * append_finish(). */
  ctkn_produce_ticket *ticket;
  struct ctkn_log_record *sent; /* signed: the records, then checkpoints */
  uint64_t signed_by;           /* the signer's epoch (ledger.signer_epoch) */
  uint64_t sign_gen;            /* its instance (ctkn_signer_generation()) */
  ctkn_signer *closing; /* the signer this batch closes, to free after */
  int start_rc;         /* what stopped the start, when it failed */
  struct ctkn_err start_err;
};

/* Advance the projection past every appended event of the batch. */
static int catch_up_to(ctkn_ledger *l, const struct ctkn_outcome *outs,
                       const struct slot *slots, size_t n, struct ctkn_err *err)
{
  int32_t np =
      l->wait != NULL ? l->parts : ctkn_projector_partitions(l->projector);
  int rc;

  for (size_t i = 0; i < n; i++) {
    if (slots[i].sent && outs[i].partition >= np)
      np = outs[i].partition + 1;
  }
  int64_t *targets = calloc((size_t)(np > 0 ? np : 1), sizeof(*targets));
  if (targets == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "ledger");
  for (size_t i = 0; i < n; i++) {
    if (slots[i].sent && outs[i].offset + 1 > targets[outs[i].partition])
      targets[outs[i].partition] = outs[i].offset + 1;
  }
  rc = l->wait != NULL
           ? l->wait(l->wait_arg, targets, np, err)
           : ctkn_projector_catch_up(l->projector, targets, np, err);
  free(targets);
  return rc;
}

int ctkn__ledger_catch_up_all(ctkn_ledger *l, struct ctkn_err *err)
{
  int64_t *hi = NULL;
  int32_t n = 0;
  int rc;

  if (l->wait == NULL) {
    if ((rc = ctkn_projector_catch_up(l->projector, NULL, 0, err)) != CTKN_OK)
      return rc;
    n = ctkn_projector_partitions(l->projector);
  } else {
    /* The end offsets alone: the follower reads the log. */
    if ((rc = ctkn_projector_log_ends(l->projector, &hi, &n, err)) == CTKN_OK)
      rc = l->wait(l->wait_arg, hi, n, err);
    free(hi);
    if (rc != CTKN_OK)
      return rc;
  }
  l->parts = n;
  l->parts_at_ms = ctkn__now_ms();
  return CTKN_OK;
}

/* What the projection made of an appended event. */
enum verdict { V_APPLIED, V_REJECTED, V_NOT_YET };

/* The verdict on ev, appended at (part, off); V_NOT_YET when the
 * projection has not reached it (its partition is paused, or the catch-up
 * failed). An applied event there that is not ev (another token or
 * version) is an error: the projection holds another log's events at
 * those offsets (the topic deleted and re-created under it). */
static int judge(ctkn_store_txn *txn, int32_t part, int64_t off,
                 const struct ctkn_event *ev, enum verdict *v,
                 struct ctkn_err *err)
{
  char reason[256];
  int64_t next;
  int rc;

  *v = V_NOT_YET;
  if ((rc = ctkn_store_offset(txn, part, &next, err)) != CTKN_OK)
    return rc;
  if (next <= off)
    return CTKN_OK;
  rc = ctkn_store_get_rejected(txn, part, off, reason, sizeof(reason), err);
  if (rc == CTKN_OK) {
    *v = V_REJECTED;
    return CTKN_OK;
  }
  if (rc != CTKN_ENOTFOUND)
    return rc;
  /* Neither applied nor rejected: the trust gate quarantined it, and
   * says why (a revoked key, a broken chain after a failed batch, ...). */
  struct ctkn_store_event at;
  if ((rc = ctkn_store_event_at(txn, part, off, true, &at, err)) ==
      CTKN_ENOTFOUND) {
    if ((rc = ctkn_store_get_quarantine(txn, part, off, reason, sizeof(reason),
                                        err)) == CTKN_ENOTFOUND)
      snprintf(reason, sizeof(reason), "no reason stored");
    else if (rc != CTKN_OK)
      return rc;
    return ctkn__err(err, CTKN_EKAFKA,
                     "the event at %" PRId32 "/%" PRId64
                     " was appended but quarantined: %s (`ctkn quarantine` "
                     "lists it)",
                     part, off, reason);
  }
  if (rc != CTKN_OK)
    return rc;
  if (strcmp(at.id, ev->data.id) != 0 || at.version != ev->version)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "the projection holds another event at %" PRId32
                     "/%" PRId64 " (%s version %" PRIu64
                     "): the topic was deleted or re-created under it. "
                     "Project into a fresh --db",
                     part, off, at.id, at.version);
  *v = V_APPLIED;
  return CTKN_OK;
}

/* 1 + the index of an earlier command of the batch whose event creates
 * with cmd i's idempotency key; 0 when there is none. Two creates with one
 * key in one batch append one event: the first answers for both. */
static size_t earlier_same_key(const struct batch *b, size_t i)
{
  const char *k = b->cmds[i].idempotency_key;

  if (b->cmds[i].kind != CTKN_CMD_CREATE || k[0] == '\0')
    return 0;
  for (size_t j = 0; j < i; j++) {
    if (b->slots[j].sent && b->cmds[j].kind == CTKN_CMD_CREATE &&
        strcmp(b->cmds[j].idempotency_key, k) == 0)
      return j + 1;
  }
  return 0;
}

static struct ctkn_log_header header(const char *name, const char *value)
{
  return (struct ctkn_log_header){name, value, strlen(value)};
}

/* The event record's headers into s->hdr: ctkn's two, then CloudEvents'
 * binary mode (a CloudEvents SDK reads the event without knowing ctkn);
 * every one covered by the writer's chain (trust.h). */
static size_t event_headers(const ctkn_ledger *l, struct slot *s)
{
  size_t n = 0;

  snprintf(s->schema, sizeof(s->schema), "%d", CTKN_SCHEMA_WRITTEN);
  if (ctkn_time_format(s->ev.occurred_at, s->time) != CTKN_OK)
    s->time[0] = '\0';
  s->hdr[n++] = header(CTKN_HDR_EVENT_TYPE, ctkn_event_type_str(s->ev.type));
  s->hdr[n++] = header(CTKN_HDR_SCHEMA, s->schema);
  s->hdr[n++] = header("ce_specversion", "1.0");
  s->hdr[n++] = header("ce_id", s->ev.event_id);
  s->hdr[n++] = header("ce_source", l->ce_source);
  s->hdr[n++] = header("ce_type", ctkn_event_type_str(s->ev.type));
  s->hdr[n++] = header("ce_time", s->time);
  s->hdr[n++] = header("content-type", CTKN_EVENT_CONTENT_TYPE);
  return n;
}

/* Plan command i and, when it needs an event, encode it and queue it for
 * the append. */
static void plan_one(ctkn_ledger *l, struct batch *b, size_t i)
{
  struct slot *s = &b->slots[i];
  int32_t part = -1;

  b->rcs[i] = plan(l, &b->cmds[i], &s->ev, &s->cur, &b->outs[i], &b->errs[i]);
  if (b->rcs[i] != CTKN_PLAN_APPEND)
    return;
  if ((s->dup_of = earlier_same_key(b, i)) != 0)
    return;
  if ((b->rcs[i] = pick_partition(l, &b->cmds[i], &s->ev, &s->cur, &part,
                                  &b->errs[i])) != CTKN_OK ||
      (b->rcs[i] = ctkn_event_encode(&s->ev, &s->buf, &s->len, &b->errs[i])) !=
          CTKN_OK)
    return;
  s->sent = true;
  b->recs[b->nrec] =
      (struct ctkn_log_record){.partition = part,
                               .key = s->ev.data.id,
                               .klen = strlen(s->ev.data.id),
                               .value = s->buf,
                               .vlen = s->len,
                               .timestamp_ms = s->ev.occurred_at / 1000,
                               .event_type = ctkn_event_type_str(s->ev.type),
                               .schema_version = CTKN_SCHEMA_WRITTEN,
                               .headers = s->hdr,
                               .nheaders = event_headers(l, s)};
  b->which[b->nrec++] = i;
}

/* Sign b's records (then checkpoints, in one produce batch) into b->sent
 * and start their produce. Holds l->sign_mu: the signer chains this batch
 * onto the last one started, acknowledged or not. */
static int start_signed(ctkn_ledger *l, struct batch *b, struct ctkn_err *err)
{
  struct ctkn_log_record *out;
  size_t nout;
  int rc;

  pthread_mutex_lock(&l->sign_mu);
  unsigned flags = l->last_batch ? CTKN_SIGN_CLOSING : 0;
  if ((rc = ctkn__ledger_signer_for(l, b->recs, b->nrec, err)) != CTKN_OK ||
      (rc = ctkn_signer_prepare(l->signer, b->recs, b->nrec, flags,
                                ctkn_now_us(), &out, &nout, err)) != CTKN_OK)
    goto out;
  b->signed_by = l->signer_epoch;
  b->sign_gen = ctkn_signer_generation(l->signer);
  if (flags != 0) {
    /* Closing: this batch ends the instance; a later one opens another. */
    b->closing = l->signer;
    l->signer = NULL;
    l->last_batch = false;
  }
  /* The signer's buffers are its until the next prepare; the producer
   * copies what it sends, the outputs come back into b->sent. */
  if ((b->sent = malloc(nout * sizeof(*b->sent))) == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "ledger");
  } else {
    memcpy(b->sent, out, nout * sizeof(*b->sent));
    rc = ctkn_producer_start_batch(l->producer, b->sent, nout, &b->ticket, err);
  }
  if (rc != CTKN_OK) /* nothing sent: the signer moves on all the same */
    ctkn_signer_done_gen(b->closing ? b->closing : l->signer, b->sign_gen,
                         false, NULL);
out:
  pthread_mutex_unlock(&l->sign_mu);
  return rc;
}

/* Start the produce of the queued events at once. */
static void append_start(ctkn_ledger *l, struct batch *b, struct ctkn_err *err)
{
  int rc;

  if (l->key != NULL)
    rc = start_signed(l, b, err);
  else
    rc = ctkn_producer_start_batch(l->producer, b->recs, b->nrec, &b->ticket,
                                   err);
  if (rc != CTKN_OK) {
    b->start_rc = rc;
    b->start_err = *err;
  }
}

/* Wait for the delivery reports of b's records and note where each went;
 * a failed one is no longer sent, and each carries the first failure's
 * detail. A signed batch then tells its signer the outcome, naming its
 * instance (a failure ends that instance only if it is still current). */
static void append_finish(ctkn_ledger *l, struct batch *b)
{
  struct ctkn_err err = b->start_err;
  int rc = b->start_rc;

  if (b->ticket != NULL) {
    rc = ctkn_producer_finish_batch(l->producer, b->ticket, &err);
    b->ticket = NULL;
    if (b->sent != NULL) {
      for (size_t k = 0; k < b->nrec; k++) {
        b->recs[k].rc = b->sent[k].rc;
        b->recs[k].out_partition = b->sent[k].out_partition;
        b->recs[k].out_offset = b->sent[k].out_offset;
      }
      pthread_mutex_lock(&l->sign_mu);
      if (b->closing == NULL && l->signer != NULL &&
          b->signed_by == l->signer_epoch)
        ctkn_signer_done_gen(l->signer, b->sign_gen, rc == CTKN_OK, NULL);
      pthread_mutex_unlock(&l->sign_mu);
    }
  } else {
    for (size_t k = 0; k < b->nrec; k++) /* nothing was sent */
      b->recs[k].rc = rc;
  }
  ctkn_signer_close(b->closing); /* the instance it closed: done with */
  b->closing = NULL;
  for (size_t k = 0; k < b->nrec; k++) {
    size_t i = b->which[k];
    if (b->recs[k].rc != CTKN_OK) {
      b->slots[i].sent = false;
      b->rcs[i] = b->recs[k].rc;
      b->errs[i] = err; /* the first failure's detail */
      b->errs[i].code = b->recs[k].rc;
    } else {
      b->outs[i].partition = b->recs[k].out_partition;
      b->outs[i].offset = b->recs[k].out_offset;
      b->outs[i].acknowledged = true;
    }
  }
}

/* Command i's event is in the log, acknowledged by Kafka, but the
 * projection has not judged it: CTKN_EAPPENDED, saying why (what stopped
 * the projection) and where the event is. */
static void not_yet_applied(struct batch *b, size_t i,
                            const struct ctkn_err *why)
{
  const struct slot *s = &b->slots[i];
  const struct ctkn_outcome *out = &b->outs[i];
  char reason[sizeof(why->msg)];

  snprintf(reason, sizeof(reason), "%s", why->msg);
  b->rcs[i] = ctkn__err(&b->errs[i], CTKN_EAPPENDED,
                        "%s; %s is appended (partition %" PRId32
                        ", offset %" PRId64 ") but not yet applied",
                        reason, s->ev.data.id, out->partition, out->offset);
}

/* Command i's event was applied: the answer is the state it made. */
static void applied(struct batch *b, size_t i)
{
  const struct slot *s = &b->slots[i];
  struct ctkn_outcome *out = &b->outs[i];

  out->appended = true;
  out->record.token = s->ev.data;
  out->record.version = s->ev.version;
  out->record.partition = out->partition;
  out->record.offset = out->offset;
}

/* A rejected event lost to a concurrent writer: re-plan once; if the goal
 * is already met (revoking a token that is now revoked, a racing duplicate
 * create with the same key), succeed; otherwise report the conflict. */
static void replan(ctkn_ledger *l, struct batch *b, size_t i)
{
  struct slot *s = &b->slots[i];

  b->rcs[i] = plan(l, &b->cmds[i], &s->ev, &s->cur, &b->outs[i], &b->errs[i]);
  if (b->rcs[i] == CTKN_PLAN_NOOP) {
    b->rcs[i] = CTKN_OK;
  } else if (b->rcs[i] == CTKN_PLAN_APPEND) {
    b->rcs[i] = ctkn__err(&b->errs[i], CTKN_ECONFLICT,
                          "a concurrent change to %s won (now version %" PRIu64
                          "); re-read it and retry",
                          s->cur.token.id[0] ? s->cur.token.id : b->cmds[i].id,
                          s->cur.version);
  }
}

/* A create with the idempotency key of command j, earlier in the batch:
 * j's answer, when the requests are the same. */
static void answer_dup(struct batch *b, size_t i, size_t j)
{
  uint8_t mine[CTKN_HASH_LEN], first[CTKN_HASH_LEN];

  ctkn_command_request_hash(&b->cmds[i], mine);
  ctkn_command_request_hash(&b->cmds[j], first);
  if (memcmp(mine, first, sizeof(mine)) != 0) {
    b->rcs[i] = ctkn__err(&b->errs[i], CTKN_ECONFLICT,
                          "idempotency key \"%.100s\" was already used with "
                          "a different request (earlier in this batch)",
                          b->cmds[i].idempotency_key);
    return;
  }
  b->rcs[i] = b->rcs[j];
  b->errs[i] = b->errs[j];
  b->outs[i] = b->outs[j];
  b->outs[i].appended = false;
}

/* Command i's answer, once the projection has judged its event (txn
 * reads the projection; NULL when it cannot be read). why: what stopped
 * the catch-up to the batch's events, or NULL. */
static void answer(ctkn_ledger *l, ctkn_store_txn *txn, struct batch *b,
                   size_t i, const struct ctkn_err *why)
{
  struct slot *s = &b->slots[i];
  struct ctkn_outcome *out = &b->outs[i];
  enum verdict v = V_NOT_YET;
  struct ctkn_err paused;
  int rc;

  if (s->dup_of != 0) {
    answer_dup(b, i, s->dup_of - 1);
  } else if (b->rcs[i] == CTKN_PLAN_NOOP) {
    b->rcs[i] = CTKN_OK;
  } else if (s->sent) {
    rc = txn != NULL
             ? judge(txn, out->partition, out->offset, &s->ev, &v, &b->errs[i])
             : CTKN_OK;
    if (rc != CTKN_OK) /* the store failed; the log has the event */
      not_yet_applied(b, i, &b->errs[i]);
    else if (v == V_APPLIED)
      applied(b, i);
    else if (v == V_REJECTED)
      replan(l, b, i);
    else if (why != NULL)
      not_yet_applied(b, i, why);
    else {
      ctkn__err(&paused, CTKN_EKAFKA,
                "partition %" PRId32 " is paused (a newer schema version)",
                out->partition);
      not_yet_applied(b, i, &paused);
    }
  }
  /* An answer from the log (a no-op, a replay, an applied or judged
   * event) stands on what Kafka acknowledged. */
  if (b->rcs[i] == CTKN_OK)
    out->acknowledged = true;
}

/* Before anything was appended: every command still standing fails with
 * rc and err. */
static void fail_all(struct batch *b, int rc, const struct ctkn_err *err)
{
  for (size_t i = 0; i < b->n; i++) {
    if (b->rcs[i] == CTKN_OK) {
      b->rcs[i] = rc;
      b->errs[i] = *err;
    }
  }
}

/* Scratch slots for n commands: a spare one large enough, else new.
 * Only what is read before it is written is cleared: planning fills cur
 * and ev. */
static struct slot *slots_take(ctkn_ledger *l, size_t n)
{
  struct slot *sl = NULL;

  pthread_mutex_lock(&l->spare_mu);
  for (int k = 0; k < CTKN__LEDGER_SPARE && sl == NULL; k++) {
    if (l->spare[k] != NULL && l->spare_cap[k] >= n) {
      sl = l->spare[k];
      l->spare[k] = NULL;
    }
  }
  pthread_mutex_unlock(&l->spare_mu);
  if (sl == NULL && (sl = malloc(n * sizeof(*sl))) == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    sl[i].buf = NULL;
    sl[i].len = 0;
    sl[i].sent = false;
    sl[i].dup_of = 0;
  }
  return sl;
}

/* Keep sl (capacity n) for a later batch, or free it. */
static void slots_give(ctkn_ledger *l, struct slot *sl, size_t n)
{
  int free_at = -1, smallest = -1;

  if (sl == NULL)
    return;
  pthread_mutex_lock(&l->spare_mu);
  for (int k = 0; k < CTKN__LEDGER_SPARE; k++) {
    if (l->spare[k] == NULL && free_at < 0)
      free_at = k;
    else if (l->spare[k] != NULL &&
             (smallest < 0 || l->spare_cap[k] < l->spare_cap[smallest]))
      smallest = k;
  }
  if (free_at < 0 && l->spare_cap[smallest] < n) { /* keep the larger */
    free(l->spare[smallest]);
    l->spare[smallest] = NULL;
    free_at = smallest;
  }
  if (free_at >= 0) {
    l->spare[free_at] = sl;
    l->spare_cap[free_at] = n;
    sl = NULL;
  }
  pthread_mutex_unlock(&l->spare_mu);
  free(sl);
}

void ctkn__ledger_spare_free(ctkn_ledger *l)
{
  for (int k = 0; k < CTKN__LEDGER_SPARE; k++) {
    free(l->spare[k]);
    l->spare[k] = NULL;
  }
}

/* Empty every outcome, check every command, and allocate the scratch
 * space; false when out of memory. */
static bool batch_start(ctkn_ledger *l, struct batch *b)
{
  size_t n = b->n ? b->n : 1;

  b->slots = slots_take(l, n);
  b->recs = calloc(n, sizeof(*b->recs));
  b->which = calloc(n, sizeof(*b->which));
  for (size_t i = 0; i < b->n; i++) {
    memset(&b->outs[i], 0, sizeof(b->outs[i]));
    b->outs[i].partition = -1;
    b->outs[i].offset = -1;
    ctkn_err_clear(&b->errs[i]);
    b->rcs[i] = ctkn_command_check(&b->cmds[i], &b->errs[i]);
  }
  return b->slots != NULL && b->recs != NULL && b->which != NULL;
}

static void batch_free(ctkn_ledger *l, struct batch *b)
{
  for (size_t i = 0; b->slots != NULL && i < b->n; i++)
    free(b->slots[i].buf);
  slots_give(l, b->slots, b->n ? b->n : 1);
  b->slots = NULL;
  free(b->recs);
  free(b->which);
  free(b->sent);
}

/* Catch up past the appended events of b and open *txn on the
 * projection. Returns CTKN_OK, or what stopped the catch-up (or the
 * store), detailed in why; *txn is then NULL when the store failed. */
static int wait_for(ctkn_ledger *l, struct batch *b, ctkn_store_txn **txn,
                    struct ctkn_err *why)
{
  struct ctkn_err err;
  int rc, brc;

  rc = catch_up_to(l, b->outs, b->slots, b->n, why);
  /* Even after a failed catch-up, what the projection did commit tells
   * which events were applied. */
  brc = ctkn_store_begin(l->st, false, txn, rc == CTKN_OK ? why : &err);
  return rc != CTKN_OK ? rc : brc;
}

/* How long the partition count stands before a batch catches up to the
 * log's end again (the follower's re-check is as often). */
#define PARTS_MAX_AGE_MS 5000

/*
 * Whether planning the batch reads the projection, so that it must first
 * catch up to the log's end: an update or a revoke plans against the
 * token's state, and a create with an idempotency key looks the key up
 * (a retry must find what an earlier run appended). A create without a
 * key reads nothing: its ID and token string are new, so it needs no
 * round trip for the end offsets, only the partition count, known once
 * the projector has caught up once. What the projection then makes of
 * its event is judged after the append, as always. The count is taken
 * again (by a catch-up to the log's end) when it is PARTS_MAX_AGE_MS old,
 * so that creates reach partitions added to the topic since.
 */
static bool plans_read(const ctkn_ledger *l, const struct ctkn_command *cmds,
                       size_t n)
{
  if (l->parts <= 0)
    return true;
  for (size_t i = 0; i < n; i++) {
    if (cmds[i].kind != CTKN_CMD_CREATE || cmds[i].idempotency_key[0] != '\0')
      return true;
  }
  return false;
}

static bool reads_projection(const ctkn_ledger *l,
                             const struct ctkn_command *cmds, size_t n)
{
  return plans_read(l, cmds, n) ||
         ctkn__now_ms() - l->parts_at_ms >= PARTS_MAX_AGE_MS;
}

bool ctkn_ledger_pipelines(const ctkn_ledger *l,
                           const struct ctkn_command *cmds, size_t n)
{
  return !reads_projection(l, cmds, n);
}

/* Plan every command of b against the same projection, then append all
 * the events at once: commands in one batch are concurrent with each
 * other (ctkn_ledger_execute_batch() never gives it two changes to one
 * token). With catch_up, first bring the projection to the log's end. */
static int plan_and_append(ctkn_ledger *l, struct batch *b, bool catch_up)
{
  struct ctkn_err err;
  int rc = CTKN_OK;

  l->sticky_left = 0; /* this batch's creates: the next partition */
  if (!batch_start(l, b))
    rc = ctkn__err(&err, CTKN_ENOMEM, "ledger");
  else if (l->trusted && l->key == NULL)
    /* No unsigned appends on a trusted log: every reader would
     * quarantine them. */
    rc = ctkn__err(&err, CTKN_EFORBIDDEN,
                   "read-only: this process has no writer key (--writer-key) "
                   "and appends nothing; send writes to one that has");
  else if (catch_up)
    rc = ctkn__ledger_catch_up_all(l, &err);
  if (rc != CTKN_OK) {
    fail_all(b, rc, &err);
    b->failed = rc;
    return rc;
  }
  for (size_t i = 0; i < b->n; i++) {
    if (b->rcs[i] == CTKN_OK)
      plan_one(l, b, i);
  }
  if (b->nrec > 0)
    append_start(l, b, &err);
  return CTKN_OK;
}

/* Wait for the projection to judge b's events and answer each command;
 * frees b's scratch space. */
static int settle(ctkn_ledger *l, struct batch *b)
{
  struct ctkn_err err;
  ctkn_store_txn *txn = NULL;
  int rc = b->failed;

  if (rc != CTKN_OK) { /* nothing was planned: each carries rc */
    batch_free(l, b);
    return rc;
  }
  if (b->nrec > 0)
    append_finish(l, b);
  if (b->nrec > 0)
    rc = wait_for(l, b, &txn, &err);
  for (size_t i = 0; i < b->n; i++)
    answer(l, txn, b, i, rc != CTKN_OK ? &err : NULL);
  ctkn_store_abort(txn);
  batch_free(l, b);
  return rc;
}

/* The length of the longest prefix of cmds[0..n) (at least 1 when n is)
 * that changes no token twice. */
static size_t distinct_prefix(const struct ctkn_command *cmds, size_t n)
{
  for (size_t i = 1; i < n; i++) {
    if (cmds[i].kind == CTKN_CMD_CREATE)
      continue;
    for (size_t j = 0; j < i; j++)
      if (cmds[j].kind != CTKN_CMD_CREATE &&
          strcmp(cmds[j].id, cmds[i].id) == 0)
        return i;
  }
  return n;
}

/* One batch of commands that change no token twice. */
static int execute_distinct(ctkn_ledger *l, const struct ctkn_command *cmds,
                            size_t n, struct ctkn_outcome *outs, int *rcs,
                            struct ctkn_err *errs)
{
  struct batch b = {
      .cmds = cmds, .n = n, .outs = outs, .rcs = rcs, .errs = errs};
  int rc;

  /* A stale projection must never cause a spurious conflict. */
  plan_and_append(l, &b, reads_projection(l, cmds, n));
  rc = settle(l, &b);
  if (b.nrec > 0 && l->wait == NULL)
    l->parts = ctkn_projector_partitions(l->projector);
  return rc;
}

/*
 * Commands in one batch are planned against the same projection, so two
 * changes to one token in it would race each other as two writers do
 * (one got conflict: a revoke that one server took with two renames of
 * the token was refused 17 times in 20). A batch runs as its longest
 * prefixes that change no token twice, one after another: a change to a
 * token is planned once the one before it has been judged, as one writer
 * takes requests in order. Planning it on top of the earlier event, in
 * the same append, would be wrong: the two events' versions would chain,
 * and when another writer's change landed between them and the earlier
 * was rejected, the later one would apply over it with the earlier's
 * snapshot (review).
 */
int ctkn_ledger_execute_batch(ctkn_ledger *l, const struct ctkn_command *cmds,
                              size_t n, struct ctkn_outcome *outs, int *rcs,
                              struct ctkn_err *errs)
{
  int rc = CTKN_OK;

  if (n == 0)
    return execute_distinct(l, cmds, n, outs, rcs, errs);
  for (size_t at = 0; at < n;) {
    size_t k = distinct_prefix(cmds + at, n - at);
    int r = execute_distinct(l, cmds + at, k, outs + at, rcs + at, errs + at);
    if (rc == CTKN_OK)
      rc = r;
    at += k;
  }
  return rc;
}

/* A submitted batch: its scratch space, until ctkn_ledger_settle(). */
struct ctkn_ledger_pending {
  struct batch b;
};

int ctkn_ledger_submit(ctkn_ledger *l, const struct ctkn_command *cmds,
                       size_t n, struct ctkn_outcome *outs, int *rcs,
                       struct ctkn_err *errs, struct ctkn_ledger_pending **out)
{
  struct ctkn_ledger_pending *p = calloc(1, sizeof(*p));
  struct ctkn_err err;

  *out = NULL;
  if (p == NULL) {
    ctkn__err(&err, CTKN_ENOMEM, "ledger");
    for (size_t i = 0; i < n; i++) {
      memset(&outs[i], 0, sizeof(outs[i]));
      rcs[i] = CTKN_ENOMEM;
      errs[i] = err;
    }
    return CTKN_ENOMEM;
  }
  p->b = (struct batch){
      .cmds = cmds, .n = n, .outs = outs, .rcs = rcs, .errs = errs};
  if (plans_read(l, cmds, n)) {
    /* The caller should have run it with ctkn_ledger_execute_batch(). An
     * old partition count is no reason to refuse: it is taken again with
     * the next batch that is executed. */
    ctkn__err(&err, CTKN_EINTERNAL,
              "ledger: a batch that reads the projection was submitted");
    batch_start(l, &p->b);
    fail_all(&p->b, CTKN_EINTERNAL, &err);
    p->b.failed = CTKN_EINTERNAL;
  } else {
    plan_and_append(l, &p->b, false);
  }
  *out = p;
  return CTKN_OK;
}

int ctkn_ledger_settle(ctkn_ledger *l, struct ctkn_ledger_pending *p)
{
  int rc;

  if (p == NULL)
    return CTKN_OK;
  rc = settle(l, &p->b);
  free(p);
  return rc;
}

int ctkn_ledger_execute(ctkn_ledger *l, const struct ctkn_command *cmd,
                        struct ctkn_outcome *out, struct ctkn_err *err)
{
  struct ctkn_err e;
  int rc;

  ctkn_ledger_execute_batch(l, cmd, 1, out, &rc, &e);
  if (rc != CTKN_OK && err != NULL)
    *err = e;
  return rc;
}
