/*
 * ledger.c - one command end to end: plan against a fresh projection,
 * append, and wait until the projection has judged the event.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/ledger.h"
#include "ctkn/projector.h"
#include "internal.h"

struct ctkn_ledger {
  ctkn_store *st;
  const struct ctkn_log_config *cfg;
  ctkn_env env;
  ctkn_producer *producer;
  ctkn_projector *projector;
};

int ctkn_ledger_open(ctkn_ledger **out, ctkn_store *st,
                     const struct ctkn_log_config *cfg, ctkn_env env,
                     struct ctkn_err *err)
{
  ctkn_ledger *l;
  int rc;

  *out = NULL;
  if ((l = calloc(1, sizeof(*l))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "ledger");
  l->st = st;
  l->cfg = cfg;
  l->env = env;
  if ((rc = ctkn_producer_open(&l->producer, cfg, err)) != CTKN_OK ||
      (rc = ctkn_projector_open(&l->projector, st, cfg, env, err)) != CTKN_OK) {
    ctkn_ledger_close(l);
    return rc;
  }
  *out = l;
  return CTKN_OK;
}

void ctkn_ledger_close(ctkn_ledger *l)
{
  if (l == NULL)
    return;
  ctkn_projector_close(l->projector);
  ctkn_producer_close(l->producer);
  free(l);
}

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

static int append(ctkn_ledger *l, const struct ctkn_command *cmd,
                  const struct ctkn_event *ev, const struct ctkn_record *cur,
                  int32_t *part, int64_t *off, struct ctkn_err *err)
{
  uint8_t *buf;
  size_t len;
  int rc;

  if (ev->type == CTKN_EVENT_CREATED) {
    /* Pin the token's partition now: by the idempotency key when there is
     * one, so racing duplicates meet on one partition; else by the ID. */
    int32_t n = ctkn_projector_partitions(l->projector);
    const char *key =
        cmd->idempotency_key[0] ? cmd->idempotency_key : ev->data.id;
    if (n <= 0)
      return ctkn__err(err, CTKN_EKAFKA, "topic %s has no partitions",
                       l->cfg->topic);
    *part = ctkn_log_partition_for(key, strlen(key), n);
  } else {
    *part = cur->partition;
  }
  if ((rc = ctkn_event_encode(ev, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_producer_send(l->producer, *part, ev->data.id, strlen(ev->data.id),
                          buf, len, ev->occurred_at / 1000,
                          ctkn_event_type_str(ev->type), CTKN_SCHEMA_VERSION,
                          part, off, err);
  free(buf);
  return rc;
}

/* Advance the projection past (part, off) and tell whether the event was
 * rejected there. */
static int judge(ctkn_ledger *l, int32_t part, int64_t off, bool *rejected,
                 struct ctkn_err *err)
{
  int32_t n = ctkn_projector_partitions(l->projector);
  ctkn_store_txn *txn;
  char reason[256];
  int rc;

  if (part >= n)
    n = part + 1;
  int64_t *targets = calloc((size_t)n, sizeof(*targets));
  if (targets == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "ledger");
  targets[part] = off + 1;
  rc = ctkn_projector_catch_up(l->projector, targets, n, err);
  free(targets);
  if (rc != CTKN_OK)
    return rc;
  if ((rc = ctkn_store_begin(l->st, false, &txn, err)) != CTKN_OK)
    return rc;
  if (ctkn_store_offset(txn, part) <= off) {
    ctkn_store_abort(txn);
    return ctkn__err(err, CTKN_EKAFKA,
                     "partition %" PRId32 " is paused (a newer schema "
                     "version); the event at offset %" PRId64
                     " is appended but not yet applied",
                     part, off);
  }
  rc = ctkn_store_get_rejected(txn, part, off, reason, sizeof(reason), err);
  ctkn_store_abort(txn);
  if (rc == CTKN_OK) {
    *rejected = true;
    return CTKN_OK;
  }
  *rejected = false;
  return rc == CTKN_ENOTFOUND ? CTKN_OK : rc;
}

int ctkn_ledger_execute(ctkn_ledger *l, const struct ctkn_command *cmd,
                        struct ctkn_outcome *out, struct ctkn_err *err)
{
  struct ctkn_record *cur = NULL;
  struct ctkn_event *ev = NULL;
  bool rejected;
  int rc;

  memset(out, 0, sizeof(*out));
  out->partition = -1;
  out->offset = -1;
  if ((rc = ctkn_command_check(cmd, err)) != CTKN_OK)
    return rc;
  if ((cur = calloc(1, sizeof(*cur))) == NULL ||
      (ev = malloc(sizeof(*ev))) == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "ledger");
    goto out;
  }
  /* A stale projection must never cause a spurious conflict. */
  if ((rc = ctkn_projector_catch_up(l->projector, NULL, 0, err)) != CTKN_OK)
    goto out;
  rc = plan(l, cmd, ev, cur, out, err);
  if (rc != CTKN_PLAN_APPEND) {
    if (rc == CTKN_PLAN_NOOP)
      rc = CTKN_OK;
    goto out;
  }
  if ((rc = append(l, cmd, ev, cur, &out->partition, &out->offset, err)) !=
          CTKN_OK ||
      (rc = judge(l, out->partition, out->offset, &rejected, err)) != CTKN_OK)
    goto out;
  if (!rejected) {
    out->appended = true;
    out->record.token = ev->data;
    out->record.version = ev->version;
    out->record.partition = out->partition;
    out->record.offset = out->offset;
    goto out;
  }
  /* A concurrent writer won. Re-plan once: if the goal is already met
   * (revoking a token that is now revoked, a racing duplicate create with
   * the same key), succeed; otherwise report the conflict. */
  struct ctkn_event *again = ev;
  rc = plan(l, cmd, again, cur, out, err);
  if (rc == CTKN_PLAN_NOOP) {
    rc = CTKN_OK;
  } else if (rc == CTKN_PLAN_APPEND) {
    rc = ctkn__err(err, CTKN_ECONFLICT,
                   "a concurrent change to %s won (now version %" PRIu64
                   "); re-read it and retry",
                   cur->token.id[0] ? cur->token.id : cmd->id, cur->version);
  }
out:
  free(cur);
  free(ev);
  return rc;
}
