/*
 * event.c - commands, planning and the state machine.
 *
 * ctkn_apply() is the only code that decides what the projection holds, in
 * every replica. It must stay a pure function of (state, event, env): no
 * clock, no randomness, no I/O.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ctkn/crypto.h"
#include "ctkn/event.h"
#include "event_int.h"
#include "internal.h"

const char *ctkn_event_type_str(ctkn_event_type t)
{
  switch (t) {
  case CTKN_EVENT_CREATED:
    return "client_token.created";
  case CTKN_EVENT_UPDATED:
    return "client_token.updated";
  case CTKN_EVENT_REVOKED:
    return "client_token.revoked";
  }
  return NULL;
}

ctkn_event_type ctkn_event_type_parse(const char *s)
{
  for (int t = CTKN_EVENT_CREATED; t <= CTKN_EVENT_REVOKED; t++) {
    if (strcmp(s, ctkn_event_type_str((ctkn_event_type)t)) == 0)
      return (ctkn_event_type)t;
  }
  return (ctkn_event_type)0;
}

/* ---- commands ------------------------------------------------------ */

void ctkn_command_init(struct ctkn_command *cmd, ctkn_cmd_kind kind)
{
  memset(cmd, 0, sizeof(*cmd));
  cmd->kind = kind;
}

int ctkn_command_set_id(struct ctkn_command *cmd, const char *id,
                        struct ctkn_err *err)
{
  if (!ctkn_id_valid("ctkn_", id))
    return ctkn__err_field(err, CTKN_EINVAL, "id", CTKN_ID_RULE("ctkn_"));
  ctkn__strlcpy(cmd->id, id, sizeof(cmd->id));
  return CTKN_OK;
}

int ctkn_command_set_name(struct ctkn_command *cmd, const char *s, size_t len,
                          struct ctkn_err *err)
{
  int rc;

  /* Past CTKN_NAME_BYTES the name cannot be 150 code points; still count
   * them, so the message says how long it was. */
  if ((rc = ctkn_validate_name(s, len, err)) != CTKN_OK)
    return rc;
  memcpy(cmd->name, s, len);
  cmd->name[len] = '\0';
  cmd->set_name = true;
  return CTKN_OK;
}

int ctkn_command_set_description(struct ctkn_command *cmd, const char *s,
                                 size_t len, struct ctkn_err *err)
{
  int rc;

  if (s == NULL) {
    cmd->set_description = true;
    cmd->has_description = false;
    cmd->description[0] = '\0';
    return CTKN_OK;
  }
  if ((rc = ctkn_validate_description(s, len, err)) != CTKN_OK)
    return rc;
  memcpy(cmd->description, s, len);
  cmd->description[len] = '\0';
  cmd->set_description = true;
  cmd->has_description = true;
  return CTKN_OK;
}

int ctkn_command_set_status(struct ctkn_command *cmd, const char *s,
                            struct ctkn_err *err)
{
  int rc;

  if ((rc = ctkn_status_parse(s, &cmd->status, err)) != CTKN_OK)
    return rc;
  cmd->set_status = true;
  return CTKN_OK;
}

int ctkn_command_set_idempotency_key(struct ctkn_command *cmd, const char *s,
                                     size_t len, struct ctkn_err *err)
{
  if (len < 1 || len > CTKN_IDEM_KEY_MAX)
    return ctkn__err_field(err, CTKN_EINVAL, "idempotency_key",
                           "must be 1-%d characters long (got %zu)",
                           CTKN_IDEM_KEY_MAX, len);
  for (size_t i = 0; i < len; i++) {
    if (s[i] < 0x21 || s[i] > 0x7e)
      return ctkn__err_field(err, CTKN_EINVAL, "idempotency_key",
                             "must be visible ASCII characters "
                             "(bad byte at offset %zu)",
                             i);
  }
  memcpy(cmd->idempotency_key, s, len);
  cmd->idempotency_key[len] = '\0';
  return CTKN_OK;
}

int ctkn_command_check(const struct ctkn_command *cmd, struct ctkn_err *err)
{
  switch (cmd->kind) {
  case CTKN_CMD_CREATE:
    if (!cmd->set_name)
      return ctkn__err_field(err, CTKN_EINVAL, "name", "is required");
    if (cmd->set_status)
      return ctkn__err_field(err, CTKN_EINVAL, "status",
                             "cannot be set when creating; new tokens are "
                             "active");
    return CTKN_OK;
  case CTKN_CMD_UPDATE:
  case CTKN_CMD_REVOKE:
    if (!ctkn_id_valid("ctkn_", cmd->id))
      return ctkn__err_field(err, CTKN_EINVAL, "id", CTKN_ID_RULE("ctkn_"));
    if (cmd->idempotency_key[0] != '\0')
      return ctkn__err_field(err, CTKN_EINVAL, "idempotency_key",
                             "is only accepted when creating");
    if (cmd->kind == CTKN_CMD_UPDATE && !cmd->set_name &&
        !cmd->set_description && !cmd->set_status)
      return ctkn__err(err, CTKN_EBADREQ,
                       "an update needs at least one of name, description, "
                       "status");
    return CTKN_OK;
  }
  return ctkn__err(err, CTKN_EBADREQ, "unknown command");
}

void ctkn_command_request_hash(const struct ctkn_command *cmd,
                               uint8_t out[CTKN_HASH_LEN])
{
  /* Length-prefixed fields, so ("ab", "c") and ("a", "bc") differ and a
   * null description differs from any string. */
  ctkn_sha256 *h = ctkn_sha256_new();
  uint8_t tag[9];

  if (h == NULL) {
    memset(out, 0, CTKN_HASH_LEN);
    return;
  }
  const char *fields[2] = {cmd->name,
                           cmd->has_description ? cmd->description : NULL};
  ctkn_sha256_update(h, "ctkn.create.v1", 14);
  for (int i = 0; i < 2; i++) {
    uint64_t n = fields[i] ? strlen(fields[i]) : 0;
    tag[0] = fields[i] != NULL;
    for (int k = 0; k < 8; k++)
      tag[1 + k] = (uint8_t)(n >> (56 - 8 * k));
    ctkn_sha256_update(h, tag, sizeof(tag));
    if (fields[i])
      ctkn_sha256_update(h, fields[i], (size_t)n);
  }
  ctkn_sha256_final(h, out);
  ctkn_sha256_free(h);
}

/* ---- planning ------------------------------------------------------ */

static int new_envelope(struct ctkn_event *ev, int64_t at_us)
{
  int rc;

  if ((rc = ctkn_id_generate("evt_", at_us / 1000, ev->event_id,
                             sizeof(ev->event_id))) != CTKN_OK)
    return rc;
  return ctkn_id_generate("ntf_", at_us / 1000, ev->notification_id,
                          sizeof(ev->notification_id));
}

static int plan_create(const struct ctkn_command *cmd, ctkn_env env,
                       int64_t now_us, struct ctkn_event *out,
                       struct ctkn_err *err)
{
  struct ctkn_token *t = &out->data;
  int rc;

  if ((rc = ctkn_id_generate("ctkn_", now_us / 1000, t->id, sizeof(t->id))) !=
          CTKN_OK ||
      (rc = ctkn_token_generate(env, now_us, t->token)) != CTKN_OK ||
      (rc = new_envelope(out, now_us)) != CTKN_OK)
    return ctkn__err(err, rc, "cannot generate identifiers");
  memcpy(t->name, cmd->name, sizeof(t->name));
  t->has_description = cmd->set_description && cmd->has_description;
  if (t->has_description)
    memcpy(t->description, cmd->description, sizeof(t->description));
  t->status = CTKN_STATUS_ACTIVE;
  t->created_at = t->updated_at = now_us;
  t->revoked_at = 0;
  out->type = CTKN_EVENT_CREATED;
  out->version = 1;
  out->occurred_at = now_us;
  if (cmd->idempotency_key[0] != '\0') {
    memcpy(out->idempotency_key, cmd->idempotency_key,
           sizeof(out->idempotency_key));
    out->has_request_hash = true;
    ctkn_command_request_hash(cmd, out->request_hash);
  }
  return CTKN_PLAN_APPEND;
}

/* The target state of an update or a revoke: the current token with the
 * command's fields. */
static void target_of(const struct ctkn_token *cur,
                      const struct ctkn_command *cmd, struct ctkn_token *next)
{
  *next = *cur;
  if (cmd->set_name)
    memcpy(next->name, cmd->name, sizeof(next->name));
  if (cmd->set_description) {
    next->has_description = cmd->has_description;
    memcpy(next->description, cmd->description, sizeof(next->description));
    if (!next->has_description)
      next->description[0] = '\0';
  }
  if (cmd->kind == CTKN_CMD_REVOKE)
    next->status = CTKN_STATUS_REVOKED;
  else if (cmd->set_status)
    next->status = cmd->status;
}

/* Whether next differs from cur in what a command can change: the name,
 * the description, the status. */
static bool changes(const struct ctkn_token *next, const struct ctkn_token *cur)
{
  bool same_desc = next->has_description == cur->has_description &&
                   (!next->has_description ||
                    strcmp(next->description, cur->description) == 0);

  return strcmp(next->name, cur->name) != 0 || !same_desc ||
         next->status != cur->status;
}

int ctkn_plan(const struct ctkn_record *cur, const struct ctkn_command *cmd,
              ctkn_env env, int64_t now_us, struct ctkn_event *out,
              struct ctkn_err *err)
{
  int rc;

  memset(out, 0, sizeof(*out));
  if ((rc = ctkn_command_check(cmd, err)) != CTKN_OK)
    return rc;
  if (cmd->kind == CTKN_CMD_CREATE)
    return plan_create(cmd, env, now_us, out, err);
  if (cur == NULL || strcmp(cur->token.id, cmd->id) != 0)
    return ctkn__err(err, CTKN_ENOTFOUND, "client-side token %s not found",
                     cmd->id);

  struct ctkn_token next;
  target_of(&cur->token, cmd, &next);
  if (!changes(&next, &cur->token)) {
    /* Revoking a revoked token, or an update that changes nothing. */
    out->data = cur->token;
    out->version = cur->version;
    return CTKN_PLAN_NOOP;
  }
  if (cur->token.status == CTKN_STATUS_REVOKED)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "client-side token %s is revoked; revoked tokens cannot "
                     "be changed",
                     cmd->id);

  /* updated_at never goes backwards, even if this clock is behind. */
  int64_t at =
      now_us > cur->token.updated_at ? now_us : cur->token.updated_at + 1;
  next.updated_at = at;
  if (next.status == CTKN_STATUS_REVOKED) {
    next.revoked_at = at;
    out->type = CTKN_EVENT_REVOKED;
  } else {
    out->type = CTKN_EVENT_UPDATED;
  }
  if ((rc = new_envelope(out, at)) != CTKN_OK)
    return ctkn__err(err, rc, "cannot generate identifiers");
  out->data = next;
  out->version = cur->version + 1;
  out->occurred_at = at;
  return CTKN_PLAN_APPEND;
}

/* ---- checking and applying ------------------------------------------ */

/* One rule per condition, each with its own message, in the order the
 * fields are read: kept as one list, above CCN 15, so that the rules an
 * event obeys read in one place. */
int ctkn_event_check(const struct ctkn_event *ev, struct ctkn_err *err)
{
  const struct ctkn_token *t = &ev->data;
  int rc;

  if (ctkn_event_type_str(ev->type) == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "event_type",
                           "must be client_token.created, "
                           "client_token.updated or client_token.revoked");
  if (!ctkn_id_valid("evt_", ev->event_id))
    return ctkn__err_field(err, CTKN_EINVAL, "event_id", CTKN_ID_RULE("evt_"));
  if (!ctkn_id_valid("ntf_", ev->notification_id))
    return ctkn__err_field(err, CTKN_EINVAL, "notification_id",
                           CTKN_ID_RULE("ntf_"));
  if (ev->version < 1)
    return ctkn__err_field(err, CTKN_EINVAL, "version", "must be at least 1");
  if ((rc = ctkn_token_check(t, 0, err)) != CTKN_OK) {
    /* Say where the field is: "data.name". */
    if (err) {
      char field[sizeof(err->field)];
      memcpy(field, err->field, sizeof(field));
      snprintf(err->field, sizeof(err->field), "data.%.50s", field);
    }
    return rc;
  }
  if (ev->occurred_at != t->updated_at)
    return ctkn__err_field(err, CTKN_EINVAL, "occurred_at",
                           "must equal data.updated_at");
  switch (ev->type) {
  case CTKN_EVENT_CREATED:
    if (ev->version != 1)
      return ctkn__err_field(err, CTKN_EINVAL, "version",
                             "must be 1 on client_token.created");
    if (t->status != CTKN_STATUS_ACTIVE || t->created_at != t->updated_at)
      return ctkn__err_field(err, CTKN_EINVAL, "data",
                             "a created token is active and has "
                             "created_at = updated_at");
    break;
  case CTKN_EVENT_UPDATED:
    if (ev->version < 2 || t->status != CTKN_STATUS_ACTIVE)
      return ctkn__err_field(err, CTKN_EINVAL, "data.status",
                             "must be active on client_token.updated "
                             "(version >= 2)");
    break;
  case CTKN_EVENT_REVOKED:
    if (ev->version < 2 || t->status != CTKN_STATUS_REVOKED)
      return ctkn__err_field(err, CTKN_EINVAL, "data.status",
                             "must be revoked on client_token.revoked "
                             "(version >= 2)");
    break;
  }
  if (ev->type != CTKN_EVENT_CREATED &&
      (ev->idempotency_key[0] != '\0' || ev->has_request_hash))
    return ctkn__err_field(err, CTKN_EINVAL, "idempotency_key",
                           "only client_token.created carries one");
  if (ev->has_request_hash && ev->idempotency_key[0] == '\0')
    return ctkn__err_field(err, CTKN_EINVAL, "request_hash",
                           "needs an idempotency_key");
  return CTKN_OK;
}

CTKN__PRINTF(3, 4)
static int reject(char *reason, size_t reasonsz, const char *fmt, ...)
{
  va_list ap;

  if (reason != NULL && reasonsz > 0) {
    va_start(ap, fmt);
    vsnprintf(reason, reasonsz, fmt, ap);
    va_end(ap);
  }
  return CTKN_REJECTED;
}

int ctkn_apply(const struct ctkn_record *cur, const struct ctkn_event *ev,
               ctkn_env env, struct ctkn_token *next, char *reason,
               size_t reasonsz)
{
  struct ctkn_err err;

  if (reason != NULL && reasonsz > 0)
    reason[0] = '\0';
  if (ctkn_event_check(ev, &err) != CTKN_OK)
    return reject(reason, reasonsz, "invalid: %s %s", err.field, err.msg);
  int rc = ctkn__apply_checked(cur, ev, env, reason, reasonsz);
  if (rc == CTKN_APPLIED)
    *next = ev->data;
  return rc;
}

int ctkn__apply_checked(const struct ctkn_record *cur,
                        const struct ctkn_event *ev, ctkn_env env, char *reason,
                        size_t reasonsz)
{
  const struct ctkn_token *t = &ev->data;
  ctkn_env tenv;

  if (reason != NULL && reasonsz > 0)
    reason[0] = '\0';
  if (ctkn_token_valid(t->token, &tenv) && tenv != env)
    return reject(reason, reasonsz,
                  "environment: token %.5s does not belong to %s", t->token,
                  ctkn_env_str(env));
  if (ev->type == CTKN_EVENT_CREATED) {
    if (cur != NULL)
      return reject(reason, reasonsz, "exists: token %s already exists", t->id);
    return CTKN_APPLIED;
  }
  if (cur == NULL)
    return reject(reason, reasonsz, "missing: token %s does not exist", t->id);
  if (ev->version != cur->version + 1)
    return reject(reason, reasonsz,
                  "version: expected %" PRIu64 ", got %" PRIu64,
                  cur->version + 1, ev->version);
  if (cur->token.status == CTKN_STATUS_REVOKED)
    return reject(reason, reasonsz, "revoked: token %s is revoked", t->id);
  if (strcmp(t->id, cur->token.id) != 0 ||
      strcmp(t->token, cur->token.token) != 0 ||
      t->created_at != cur->token.created_at)
    return reject(reason, reasonsz,
                  "immutable: id, token and created_at cannot change");
  if (t->updated_at <= cur->token.updated_at)
    return reject(reason, reasonsz,
                  "time: updated_at must be later than the current one");
  return CTKN_APPLIED;
}
