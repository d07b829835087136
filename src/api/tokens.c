/*
 * tokens.c - /client-tokens: reads answered on the worker from this
 * replica's projection (query.h), writes parsed on the worker and run on
 * the command thread.
 *
 * The command thread drains the write queue in batches through
 * ctkn_ledger_execute_batch(), so 64 creates in flight cost one catch-up,
 * one append and one wait, not 64. It is the only thread that appends
 * token events; it gets its ledger in ctkn__api_commands_serve()'s
 * argument, so a test can hand it a ledger over a fake log.
 */
#include <inttypes.h>
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

static void route_list(struct server *s, struct req *r)
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
    rc = ctkn_query_list(s->st, &p, s->next_base,
                         !(skip != NULL && strcasecmp(skip, "true") == 0),
                         r->rid, &json, &err);
  ctkn__api_answer_query(r, rc, json, &err);
}

static void route_verify(struct server *s, struct req *r)
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
  rc = ctkn_query_verify(s->st, token, r->rid, &json, &active, &err);
  ctkn__api_answer_query(r, rc, json, &err);
}

static void route_get(struct server *s, struct req *r)
{
  static const char *const none[] = {NULL};
  struct ctkn_err err = {0};
  char *json = NULL;
  int rc;

  if (!ctkn__api_query_ok(r, none, NULL))
    return;
  if (!ctkn_id_valid("ctkn_", r->id)) {
    ctkn__api_answer_field(r, "client_token_id",
                           "must match ^ctkn_[a-z0-9]{26}$");
    return;
  }
  rc = ctkn_query_get(s->st, r->id, r->rid, &json, &err);
  ctkn__api_answer_query(r, rc, json, &err);
}

static void route_history(struct server *s, struct req *r)
{
  static const char *const none[] = {NULL};
  struct ctkn_err err = {0};
  char *json = NULL;
  int rc;

  if (!ctkn__api_query_ok(r, none, NULL))
    return;
  if (!ctkn_id_valid("ctkn_", r->id)) {
    ctkn__api_answer_field(r, "client_token_id",
                           "must match ^ctkn_[a-z0-9]{26}$");
    return;
  }
  rc = ctkn_query_history_json(s->st, r->id, r->rid, &json, &err);
  ctkn__api_answer_query(r, rc, json, &err);
}

void ctkn__api_tokens_read(struct server *s, struct req *r)
{
  char why[256];

  /* A paused or stale partition may hide a revoke: every token answer
   * (not found included) could be stale, so none is given. */
  if (ctkn__api_untrusted(s, why, sizeof(why))) {
    r->retry_after = 5;
    ctkn__api_answer_code(r, CTKN_ESTALE, "%s", why);
    return;
  }
  if (r->route == R_GET)
    route_get(s, r);
  else if (r->route == R_HISTORY)
    route_history(s, r);
  else if (r->route == R_LIST)
    route_list(s, r);
  else
    route_verify(s, r);
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

/* One batch taken from the queue: run, answer, resume. */
static void run_batch(ctkn_ledger *l, struct req **batch, size_t n,
                      struct ctkn_command *cmds, struct ctkn_outcome *outs,
                      int *rcs, struct ctkn_err *errs)
{
  for (size_t i = 0; i < n; i++)
    cmds[i] = *batch[i]->cmd;
  ctkn_ledger_execute_batch(l, cmds, n, outs, rcs, errs);
  for (size_t i = 0; i < n; i++) {
    answer_outcome(batch[i], rcs[i], &outs[i], &errs[i]);
    ctkn__api_wake(batch[i]);
  }
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
 * logged and the next one tried. */
static void heartbeat(ctkn_ledger *l)
{
  struct ctkn_err err = {0};

  if (ctkn_ledger_heartbeat(l, &err) != CTKN_OK)
    ctkn__diag(CTKN_DIAG_WARN, "trust", "heartbeat not appended: %s", err.msg);
}

void ctkn__api_commands_serve(struct server *s, ctkn_ledger *l,
                              const struct ctkn_err *why)
{
  struct ctkn_command *cmds = calloc(CTKN__API_BATCH_MAX, sizeof(*cmds));
  struct ctkn_outcome *outs = calloc(CTKN__API_BATCH_MAX, sizeof(*outs));
  struct ctkn_err *errs = calloc(CTKN__API_BATCH_MAX, sizeof(*errs));
  int *rcs = calloc(CTKN__API_BATCH_MAX, sizeof(*rcs));
  struct ctkn__qnode *nodes[CTKN__API_BATCH_MAX];
  struct req *batch[CTKN__API_BATCH_MAX];
  struct ctkn_err nomem = {0}, none = {.code = CTKN_EKAFKA};

  if (l == NULL && why == NULL)
    why = &none;
  if (cmds == NULL || outs == NULL || errs == NULL || rcs == NULL) {
    ctkn__err(&nomem, CTKN_ENOMEM, "command thread");
    ctkn__api_fatal(s, &nomem);
    l = NULL;
    why = &nomem;
  }
  int64_t beat_at = ctkn__now_ms(); /* the first at once: readers wait */
  for (;;) {
    int wait = -1;
    if (l != NULL && s->cfg->writer_key != NULL && s->cfg->heartbeat_ms > 0) {
      int64_t left = beat_at - ctkn__now_ms();
      wait = left > 0 ? (int)left : 0;
    }
    size_t n = ctkn__queue_pop(&s->cmdq, nodes, CTKN__API_BATCH_MAX, wait);
    if (wait >= 0 && ctkn__now_ms() >= beat_at) {
      heartbeat(l);
      beat_at = ctkn__now_ms() + s->cfg->heartbeat_ms;
    }
    if (n == 0 && ctkn__queue_closed(&s->cmdq))
      break; /* closed and empty */
    if (n == 0)
      continue;
    for (size_t i = 0; i < n; i++)
      batch[i] = CTKN__CONTAINER_OF(nodes[i], struct req, qnode);
    if (l == NULL)
      refuse_batch(batch, n, why);
    else
      run_batch(l, batch, n, cmds, outs, rcs, errs);
  }
  free(cmds);
  free(outs);
  free(errs);
  free(rcs);
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
