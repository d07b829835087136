/*
 * tokens.c - /client-tokens: reads answered on the worker from this
 * replica's projection (query.h), writes parsed on the worker and run on
 * the command thread.
 *
 * The command thread drains the write queue in batches through
 * ctkn_ledger_execute_batch(), so 64 creates in flight cost one catch-up,
 * one append and one wait, not 64. A batch of creates without an
 * idempotency key, which reads nothing, is only submitted there
 * (planned, appended, acknowledged) and settled (judged by the
 * projection, answered) on a second thread, so the next batch is
 * appended meanwhile. A signing server's heartbeat is appended there
 * too, between batches. When the log fails a write (a batch's or the
 * heartbeat's), the writes queued while it waited are refused, nothing
 * appended: each has waited the timeout once, and would wait it again.
 * Each batch costs an append, a checkpoint signature per partition and a
 * projection commit whatever its size, so a batch of fewer than
 * CTKN__API_GATHER_MIN writes that would take the last free slot waits a
 * little for company (gather()); with a slot to spare it goes at once.
 * The command thread is the only one that appends token events; it gets its
 * ledger in ctkn__api_commands_serve()'s argument, so a test can hand it a
 * ledger over a fake log.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "ctkn/codec.h"
#include "ctkn/query.h"

/* ---- reads ------------------------------------------------------------ */

/* Each status value (comma-separated, or repeated) adds to the filter. */
static int status_filter(const struct req *r, struct ctkn_list_params *p,
                         struct ctkn_err *err)
{
  unsigned mask = 0;

  for (size_t i = 0; i < r->nquery; i++) {
    const char *v = r->query[i].value;
    if (strcmp(r->query[i].key, "status") != 0)
      continue;
    int rc = ctkn_list_params_status(p, v ? v : "", err);
    if (rc != CTKN_OK)
      return rc;
    mask |= p->status_mask;
  }
  p->status_mask = mask;
  return CTKN_OK;
}

static void route_list(struct server *s, struct req *r,
                       const struct ctkn_query_guard *g)
{
  static const char *const allowed[] = {"after", "per_page", "order_by",
                                        "status", NULL};
  struct ctkn_list_params p;
  struct ctkn_err err = {0};
  const char *v, *skip = r->hdr.skip_count;
  char *json = NULL;
  int rc = CTKN_OK;

  if (!ctkn__api_query_ok(r, allowed, "status"))
    return;
  ctkn_list_params_init(&p);
  if ((v = ctkn__api_arg(r, "after")) != NULL)
    rc = ctkn_list_params_after(&p, v, &err);
  if (rc == CTKN_OK && (v = ctkn__api_arg(r, "per_page")) != NULL)
    rc = ctkn_list_params_per_page(&p, v, &err);
  if (rc == CTKN_OK && (v = ctkn__api_arg(r, "order_by")) != NULL)
    rc = ctkn_list_params_order_by(&p, v, &err);
  if (rc == CTKN_OK && ctkn__api_arg(r, "status") != NULL)
    rc = status_filter(r, &p, &err);
  if (rc == CTKN_OK)
    rc = ctkn_query_list(s->st, g, &p, s->next_base,
                         !(skip != NULL && strcasecmp(skip, "true") == 0),
                         r->rid, &json, &err);
  ctkn__api_answer_query(r, rc, json, &err);
}

static void route_verify(struct server *s, struct req *r,
                         const struct ctkn_query_guard *g)
{
  static const char *const allowed[] = {"token", NULL};
  struct ctkn_err err = {0};
  const char *token;
  char *json = NULL;
  bool active;
  int rc;

  if (!ctkn__api_query_ok(r, allowed, NULL))
    return;
  if ((token = ctkn__api_arg(r, "token")) == NULL || *token == '\0') {
    ctkn__api_answer_field(r, "token", "the query parameter token is required");
    return;
  }
  rc = ctkn_query_verify(s->st, g, token, r->rid, &json, &active, &err);
  ctkn__api_answer_query(r, rc, json, &err);
}

static void route_get(struct server *s, struct req *r,
                      const struct ctkn_query_guard *g)
{
  static const char *const none[] = {NULL};
  struct ctkn_err err = {0};
  char *json = NULL;
  int rc;

  if (!ctkn__api_query_ok(r, none, NULL))
    return;
  if (!ctkn_id_valid("ctkn_", r->id)) {
    ctkn__api_answer_field(r, "client_token_id", CTKN_ID_RULE("ctkn_"));
    return;
  }
  rc = ctkn_query_get(s->st, g, r->id, r->rid, &json, &err);
  ctkn__api_answer_query(r, rc, json, &err);
}

static void route_history(struct server *s, struct req *r,
                          const struct ctkn_query_guard *g)
{
  static const char *const none[] = {NULL};
  struct ctkn_err err = {0};
  char *json = NULL;
  int rc;

  if (!ctkn__api_query_ok(r, none, NULL))
    return;
  if (!ctkn_id_valid("ctkn_", r->id)) {
    ctkn__api_answer_field(r, "client_token_id", CTKN_ID_RULE("ctkn_"));
    return;
  }
  rc = ctkn_query_history_json(s->st, g, r->id, r->rid, &json, &err);
  ctkn__api_answer_query(r, rc, json, &err);
}

void ctkn__api_tokens_read(struct server *s, struct req *r)
{
  uint8_t state[CTKN_STORE_MAX_PARTITIONS];
  struct ctkn_query_guard g;

  /* A paused or stale partition may hide a revoke: answers about its
   * tokens (not found included) and lists fail closed (query.h). */
  ctkn__api_guard(s, &g, state);
  if (r->route == R_GET)
    route_get(s, r, &g);
  else if (r->route == R_HISTORY)
    route_history(s, r, &g);
  else if (r->route == R_LIST)
    route_list(s, r, &g);
  else
    route_verify(s, r, &g);
  if (r->status == 503)
    r->retry_after = 5;
}

/* ---- writes ----------------------------------------------------------- */

bool ctkn__api_tokens_begin(struct server *s, struct req *r)
{
  struct ctkn_err err = {0};

  (void)s;
  if ((r->cmd = malloc(sizeof(*r->cmd))) == NULL) {
    ctkn__api_answer_code(r, CTKN_ENOMEM, "out of memory");
    return false;
  }
  ctkn_command_init(r->cmd,
                    r->route == R_CREATE ? CTKN_CMD_CREATE : CTKN_CMD_UPDATE);
  if (r->route == R_UPDATE &&
      ctkn_command_set_id(r->cmd, r->id, &err) != CTKN_OK) {
    ctkn__api_answer_err(r, &err);
    return false;
  }
  return true;
}

void ctkn__api_tokens_write(struct server *s, struct req *r)
{
  const char *body = r->body.data ? r->body.data : "";
  const char *k = r->hdr.idempotency_key;
  struct ctkn_err err = {0};
  int rc;

  if (r->too_large) {
    ctkn__api_answer_code(r, CTKN_ETOOLARGE,
                          "the request body is larger than %d bytes",
                          CTKN_SERVER_MAX_BODY);
    return;
  }
  if (r->route == R_CREATE) {
    rc = ctkn_json_parse_create(body, r->body.len, r->cmd, &err);
    if (rc == CTKN_OK && k != NULL)
      rc = ctkn_command_set_idempotency_key(r->cmd, k, strlen(k), &err);
  } else {
    rc = ctkn_json_parse_update(body, r->body.len, r->id, r->cmd, &err);
  }
  if (rc == CTKN_OK)
    rc = ctkn_command_check(r->cmd, &err);
  if (rc != CTKN_OK) {
    ctkn__api_answer_err(r, &err);
    return;
  }
  ctkn__api_enqueue(s, &s->cmdq, r);
}

/* ---- the command thread ---------------------------------------------- */

/* Answer r from its command's outcome. */
static void answer_outcome(struct req *r, int rc, const struct ctkn_outcome *o,
                           const struct ctkn_err *err)
{
  if (rc != CTKN_OK) {
    r->retry_after = ctkn__api_retry_after(rc);
    ctkn__api_answer_err(r, err);
    return;
  }
  int32_t part = o->appended ? o->partition : o->record.partition;
  int64_t off = o->appended ? o->offset : o->record.offset;
  if (part >= 0 && off >= 0)
    snprintf(r->position, sizeof(r->position), "%" PRId32 ":%" PRId64, part,
             off);
  free(r->resp);
  r->status = r->route == R_CREATE ? 201 : 200;
  r->resp = ctkn_json_data(&o->record.token, r->rid);
}

/* One batch taken from the queue and the arrays its commands run in. A
 * batch that reads nothing is submitted on the command thread and
 * settled on the settling thread, while the next one is submitted
 * (ctkn_ledger_submit(): the append of batch k+1 does not wait for the
 * projection to judge batch k). */
struct wslot {
  struct ctkn__qnode qnode; /* in pipe.free or pipe.ready */
  struct req *batch[CTKN__API_BATCH_MAX];
  size_t n;
  struct ctkn_command *cmds;
  struct ctkn_outcome *outs;
  struct ctkn_err *errs;
  int *rcs;
  struct ctkn_ledger_pending *pending;
  int64_t started_us; /* when the batch was handed to the ledger */
};

/* Batches submitted and not yet settled are at most PIPE_DEPTH - 1. */
#define PIPE_DEPTH 3

struct pipe {
  ctkn_ledger *l;
  struct ctkn__queue *in; /* the writes: kicked when a batch settles */
  struct wslot slots[PIPE_DEPTH];
  struct ctkn__queue free, ready;
  pthread_t settler;
  bool started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t unsettled; /* submitted, not yet answered */
  /* The last write the log failed (a batch's or the heartbeat's), under
   * mu: the settling thread notes its batches' failures. */
  struct ctkn__api_outage outage;
  int timeout_ms; /* the log's: how long a failed write may have waited */
};

/* what, started at started_us, failed with rc for why: noted for the
 * writes waiting (ctkn__api_outage_note()). */
static void log_failed(struct pipe *pp, const char *what, int64_t started_us,
                       int rc, const struct ctkn_err *why)
{
  pthread_mutex_lock(&pp->mu);
  ctkn__api_outage_note(&pp->outage, what, started_us, pp->timeout_ms, rc, why);
  pthread_mutex_unlock(&pp->mu);
}

/* Whether w's batch failed waiting on the log: its first command that
 * did (ctkn__api_log_wait()), noted as log_failed(). */
static void note_batch(struct pipe *pp, const struct wslot *w)
{
  for (size_t i = 0; i < w->n; i++) {
    if (ctkn__api_log_wait(w->rcs[i])) {
      log_failed(pp, "a write queued ahead of it", w->started_us, w->rcs[i],
                 &w->errs[i]);
      return;
    }
  }
}

static void answer_all(struct wslot *w)
{
  for (size_t i = 0; i < w->n; i++) {
    answer_outcome(w->batch[i], w->rcs[i], &w->outs[i], &w->errs[i]);
    ctkn__api_wake(w->batch[i]);
  }
}

static void *settler_main(void *arg)
{
  struct pipe *pp = arg;
  struct ctkn__qnode *node;

  while (ctkn__queue_pop(&pp->ready, &node, 1, -1) == 1) {
    struct wslot *w = CTKN__CONTAINER_OF(node, struct wslot, qnode);
    ctkn_ledger_settle(pp->l, w->pending);
    w->pending = NULL;
    note_batch(pp, w);
    answer_all(w);
    ctkn__queue_push(&pp->free, &w->qnode);
    pthread_mutex_lock(&pp->mu);
    pp->unsettled--;
    pthread_cond_broadcast(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
    if (pp->in != NULL)
      ctkn__queue_kick(pp->in); /* a slot is free: gather() waits no longer */
  }
  return NULL;
}

/* Wait until every submitted batch is settled: the ledger's projector is
 * then the command thread's. */
static void drain(struct pipe *pp)
{
  pthread_mutex_lock(&pp->mu);
  while (pp->unsettled > 0)
    pthread_cond_wait(&pp->cv, &pp->mu);
  pthread_mutex_unlock(&pp->mu);
}

static void pipe_free(struct pipe *pp)
{
  if (pp->started) {
    ctkn__queue_close(&pp->ready);
    pthread_join(pp->settler, NULL);
  }
  for (int i = 0; i < PIPE_DEPTH; i++) {
    free(pp->slots[i].cmds);
    free(pp->slots[i].outs);
    free(pp->slots[i].errs);
    free(pp->slots[i].rcs);
  }
  ctkn__queue_destroy(&pp->free);
  ctkn__queue_destroy(&pp->ready);
  pthread_cond_destroy(&pp->cv);
  pthread_mutex_destroy(&pp->mu);
}

/* The slots, both queues and, with a ledger, the settling thread. false
 * when out of memory (pipe_free() still releases what was made). */
static bool pipe_start(struct pipe *pp, ctkn_ledger *l, struct ctkn__queue *in)
{
  bool ok = true;

  memset(pp, 0, sizeof(*pp));
  pp->l = l;
  pp->in = in;
  ctkn__api_outage_init(&pp->outage);
  pthread_mutex_init(&pp->mu, NULL);
  pthread_cond_init(&pp->cv, NULL);
  if (ctkn__queue_init(&pp->free) != CTKN_OK ||
      ctkn__queue_init(&pp->ready) != CTKN_OK)
    return false;
  for (int i = 0; i < PIPE_DEPTH; i++) {
    struct wslot *w = &pp->slots[i];
    w->cmds = calloc(CTKN__API_BATCH_MAX, sizeof(*w->cmds));
    w->outs = calloc(CTKN__API_BATCH_MAX, sizeof(*w->outs));
    w->errs = calloc(CTKN__API_BATCH_MAX, sizeof(*w->errs));
    w->rcs = calloc(CTKN__API_BATCH_MAX, sizeof(*w->rcs));
    ok = ok && w->cmds && w->outs && w->errs && w->rcs;
    ctkn__queue_push(&pp->free, &w->qnode);
  }
  if (ok && l != NULL)
    ok = pp->started =
        pthread_create(&pp->settler, NULL, settler_main, pp) == 0;
  return ok;
}

/* Run the batch in w: pipelined when it reads nothing, else once every
 * submitted batch is settled. Gives w back when it is answered. */
static void run_batch(struct pipe *pp, struct wslot *w)
{
  ctkn_ledger *l = pp->l;

  for (size_t i = 0; i < w->n; i++)
    w->cmds[i] = *w->batch[i]->cmd;
  w->started_us = ctkn__api_mono_us();
  if (pp->started && ctkn_ledger_pipelines(l, w->cmds, w->n)) {
    if (ctkn_ledger_submit(l, w->cmds, w->n, w->outs, w->rcs, w->errs,
                           &w->pending) == CTKN_OK) {
      pthread_mutex_lock(&pp->mu);
      pp->unsettled++;
      pthread_mutex_unlock(&pp->mu);
      ctkn__queue_push(&pp->ready, &w->qnode);
      return;
    }
    /* Out of memory: every command carries it. */
  } else {
    drain(pp);
    ctkn_ledger_execute_batch(l, w->cmds, w->n, w->outs, w->rcs, w->errs);
    note_batch(pp, w);
  }
  answer_all(w);
  ctkn__queue_push(&pp->free, &w->qnode);
}

/* Without a ledger, every command gets the reason there is none. */
static void refuse_batch(struct req **batch, size_t n,
                         const struct ctkn_err *why)
{
  for (size_t i = 0; i < n; i++) {
    batch[i]->retry_after = ctkn__api_retry_after(why->code);
    ctkn__api_answer_err(batch[i], why);
    ctkn__api_wake(batch[i]);
  }
}

/* A signing replica's heartbeat (trust.h: staleness); a failure is
 * logged and the next one tried. When the log did not take it, the
 * writes waiting are told (log_failed()). */
static void heartbeat(struct pipe *pp)
{
  struct ctkn_err err = {0};
  int64_t started_us = ctkn__api_mono_us();
  int rc = ctkn_ledger_heartbeat(pp->l, &err);

  if (rc == CTKN_OK)
    return;
  ctkn__diag(CTKN_DIAG_WARN, "trust", "heartbeat not appended: %s", err.msg);
  log_failed(pp, "this server's heartbeat", started_us, rc, &err);
}

/* Add the n requests of nodes to w's batch. */
static void take(struct wslot *w, struct ctkn__qnode **nodes, size_t n)
{
  for (size_t i = 0; i < n; i++)
    w->batch[w->n++] = CTKN__CONTAINER_OF(nodes[i], struct req, qnode);
}

/* have writes taken for the last free slot (the batches in flight hold
 * every other one): more from the queue, up to room, once
 * CTKN__API_GATHER_MIN are there in all, or once a batch settles, or
 * after s->gather_us. Writes queued meanwhile would have waited for a
 * slot anyway; under load batches are then fewer and larger (bench/http:
 * http_create_c64). With a slot to spare (a few clients: one batch in
 * flight, rarely two) a write goes at once, pipelined. */
static size_t gather(struct pipe *pp, struct server *s,
                     struct ctkn__qnode **more, size_t room, size_t have)
{
  uint64_t kicks = ctkn__queue_kicks(&s->cmdq); /* before unsettled */

  if (have >= CTKN__API_GATHER_MIN || s->gather_us <= 0)
    return 0;
  pthread_mutex_lock(&pp->mu);
  size_t busy = pp->unsettled;
  pthread_mutex_unlock(&pp->mu);
  if (busy < PIPE_DEPTH - 1)
    return 0;
  return ctkn__queue_pop_min(&s->cmdq, more, room, CTKN__API_GATHER_MIN - have,
                             s->gather_us, kicks);
}

/* Refuse the writes in w queued before the log last failed a write
 * (ctkn__api_outage_refuses()). The rest stay in w, in order. */
static void refuse_waited(struct pipe *pp, struct wslot *w)
{
  struct ctkn__api_outage o;
  size_t kept = 0;

  pthread_mutex_lock(&pp->mu);
  o = pp->outage;
  pthread_mutex_unlock(&pp->mu);
  for (size_t i = 0; i < w->n; i++) {
    if (ctkn__api_outage_refuses(&o, w->batch[i]))
      ctkn__api_wake(w->batch[i]);
    else
      w->batch[kept++] = w->batch[i];
  }
  w->n = kept;
}

void ctkn__api_commands_serve(struct server *s, ctkn_ledger *l,
                              const struct ctkn_err *why)
{
  struct ctkn__qnode *nodes[CTKN__API_BATCH_MAX], *slot;
  struct ctkn_err nomem = {0}, none = {.code = CTKN_EKAFKA}, stopped = {0};
  struct pipe pp;

  if (l == NULL && why == NULL)
    why = &none;
  ctkn__err(&stopped, CTKN_EKAFKA,
            "this server's projection stopped (its log says why); nothing "
            "was appended");
  if (!pipe_start(&pp, l, &s->cmdq)) {
    ctkn__err(&nomem, CTKN_ENOMEM, "command thread");
    ctkn__api_fatal(s, &nomem);
    l = NULL;
    why = &nomem;
  }
  pp.timeout_ms = s->cfg->log->timeout_ms;
  int64_t beat_at = ctkn__now_ms(); /* the first at once: readers wait */
  while (ctkn__queue_pop(&pp.free, &slot, 1, -1) == 1) {
    struct wslot *w = CTKN__CONTAINER_OF(slot, struct wslot, qnode);
    int wait = -1;
    if (l != NULL && s->cfg->writer_key != NULL && s->cfg->heartbeat_ms > 0) {
      int64_t left = beat_at - ctkn__now_ms();
      wait = left > 0 ? (int)left : 0;
    }
    size_t n = ctkn__queue_pop(&s->cmdq, nodes, CTKN__API_BATCH_MAX, wait);
    w->n = 0;
    take(w, nodes, n);
    if (wait >= 0 && ctkn__now_ms() >= beat_at) {
      drain(&pp); /* the heartbeat's signer and projector are ours */
      /* Writes that waited behind a batch the log just failed are
       * answered first: the heartbeat would make them wait once more.
       * A stopping server sends none: its drain would wait for it. */
      refuse_waited(&pp, w);
      if (!atomic_load(&s->closing))
        heartbeat(&pp);
      beat_at = ctkn__now_ms() + s->cfg->heartbeat_ms;
    }
    if (n == 0) {
      ctkn__queue_push(&pp.free, &w->qnode);
      if (ctkn__queue_closed(&s->cmdq))
        break; /* closed and empty */
      continue;
    }
    if (l != NULL && w->n > 0)
      take(w, nodes, gather(&pp, s, nodes, CTKN__API_BATCH_MAX - w->n, w->n));
    refuse_waited(&pp, w);
    if (w->n == 0) {
      ctkn__queue_push(&pp.free, &w->qnode);
    } else if (l == NULL) {
      refuse_batch(w->batch, w->n, why);
      ctkn__queue_push(&pp.free, &w->qnode);
    } else if (atomic_load(&s->fatal)) {
      /* The projection stopped: nothing it could judge is appended, so
       * a retry (on another replica) never makes a second token. */
      refuse_batch(w->batch, w->n, &stopped);
      ctkn__queue_push(&pp.free, &w->qnode);
    } else {
      run_batch(&pp, w);
    }
  }
  drain(&pp);
  pipe_free(&pp);
}

static void *commander_main(void *arg)
{
  struct server *s = arg;
  struct ctkn_err err = {0};
  ctkn_ledger *l = NULL;

  if (ctkn_ledger_open(&l, s->st, s->cfg->log, s->cfg->env, &err) != CTKN_OK ||
      (s->cfg->trust_root != NULL &&
       ctkn_ledger_set_trust(l, s->cfg->trust_root, s->cfg->writer_key, &err) !=
           CTKN_OK)) {
    ctkn_ledger_close(l);
    l = NULL;
    ctkn__api_fatal(s, &err);
  }
  /* The follower applies every event anyway: the ledger waits for it
   * rather than fetching and judging each event a second time. */
  if (l != NULL)
    ctkn_ledger_follow_with(l, ctkn__api_applied_wait, s);
  ctkn__api_commands_serve(s, l, &err);
  ctkn_ledger_close(l);
  return NULL;
}

int ctkn__api_commands_start(struct server *s, struct ctkn_err *err)
{
  if (pthread_create(&s->commander, NULL, commander_main, s) != 0)
    return ctkn__err(err, CTKN_ENOMEM, "server: threads");
  s->commander_started = true;
  return CTKN_OK;
}

void ctkn__api_commands_stop(struct server *s)
{
  ctkn__queue_close(&s->cmdq);
  if (s->commander_started)
    pthread_join(s->commander, NULL);
  s->commander_started = false;
}
