/*
 * keycmd.c - one API-key command end to end (keycmd.h), on the settings
 * topic's one path for records beside destinations.
 */
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/keycmd.h"
#include "ctkn/keylog.h"
#include "internal.h"

struct plan_arg {
  const struct ctkn_akey_command *cmd;
  ctkn_env env;
  struct ctkn_akey_event ev;
  struct ctkn_keycmd_outcome *out;
};

/* The key the command is about, as the projection holds it now: by ID,
 * or for an import by the hash it brings. */
static int current(ctkn_store_txn *txn, const struct ctkn_akey_command *cmd,
                   struct ctkn_akey *cur, bool *have, struct ctkn_err *err)
{
  int rc;

  if (cmd->kind == CTKN_AKEY_CMD_CREATE) {
    *have = false;
    return CTKN_OK;
  }
  rc = cmd->kind == CTKN_AKEY_CMD_IMPORT
           ? ctkn_keylog_find_legacy(txn, cmd->sha256, cur, err)
           : ctkn_keylog_get(txn, cmd->id, cur, err);
  if (rc == CTKN_ENOTFOUND && cmd->kind != CTKN_AKEY_CMD_IMPORT)
    rc = ctkn__err(err, rc, "no API key %s", cmd->id);
  *have = rc == CTKN_OK;
  return rc == CTKN_ENOTFOUND && cmd->kind == CTKN_AKEY_CMD_IMPORT ? CTKN_OK
                                                                   : rc;
}

static int plan(void *arg, ctkn_store *st, struct ctkn_log_record *rec,
                uint8_t **buf, struct ctkn_err *err)
{
  struct plan_arg *a = arg;
  struct ctkn_akey cur;
  ctkn_store_txn *txn;
  bool have;
  size_t len;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = current(txn, a->cmd, &cur, &have, err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    return rc;
  if (a->cmd->kind == CTKN_AKEY_CMD_IMPORT && have) {
    a->out->key = cur; /* imported already */
    return CTKN_SETTINGS_NOTHING;
  }
  rc = ctkn_akey_plan(have ? &cur : NULL, a->cmd, a->env, ctkn_now_us(), &a->ev,
                      a->out->secret, err);
  if (rc == CTKN_AKEY_PLAN_NOOP) {
    a->out->key = cur;
    return CTKN_SETTINGS_NOTHING;
  }
  if (rc != CTKN_AKEY_PLAN_APPEND)
    return rc;
  if ((rc = ctkn_akey_event_encode(&a->ev, buf, &len, err)) != CTKN_OK)
    return rc;
  rec->key = a->ev.data.id;
  rec->klen = CTKN_AKEY_ID_LEN;
  rec->value = *buf;
  rec->vlen = len;
  rec->timestamp_ms = a->ev.occurred_at / 1000;
  rec->event_type = ctkn_akey_type_str(a->ev.type);
  return CTKN_OK;
}

static int plan_nothing(void *arg, ctkn_store *st, struct ctkn_log_record *rec,
                        uint8_t **buf, struct ctkn_err *err)
{
  (void)arg;
  (void)st;
  (void)rec;
  (void)buf;
  (void)err;
  return CTKN_SETTINGS_NOTHING;
}

int ctkn_keycmd_refresh(ctkn_store *st, const struct ctkn_log_config *cfg,
                        const struct ctkn_keycmd_trust *trust,
                        struct ctkn_err *err)
{
  struct ctkn_settings_writer w = {.trust_root =
                                       trust != NULL ? trust->trust_root : NULL,
                                   .scope = "api_key.created",
                                   .schema_version = CTKN_SCHEMA_WRITTEN};
  bool appended;

  return ctkn_settings_submit(st, cfg, &w, plan_nothing, NULL, &appended, err);
}

int ctkn_keycmd_execute(ctkn_store *st, const struct ctkn_log_config *cfg,
                        const struct ctkn_keycmd_trust *trust, ctkn_env env,
                        const struct ctkn_akey_command *cmd,
                        struct ctkn_keycmd_outcome *out, struct ctkn_err *err)
{
  struct plan_arg *a;
  struct ctkn_settings_writer w = {
      .trust_root = trust != NULL ? trust->trust_root : NULL,
      .writer_key = trust != NULL ? trust->writer_key : NULL,
      .scope = cmd->kind == CTKN_AKEY_CMD_USED       ? "api_key.used"
               : cmd->kind == CTKN_AKEY_CMD_EXPIRING ? "api_key.expiring"
               : cmd->kind == CTKN_AKEY_CMD_EXPIRE   ? "api_key.expired"
                                                     : "api_key.created",
      .schema_version = CTKN_AKEY_SCHEMA};
  ctkn_store_txn *txn;
  int rc;

  memset(out, 0, sizeof(*out));
  if ((a = calloc(1, sizeof(*a))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "an API-key command");
  a->cmd = cmd;
  a->env = env;
  a->out = out;
  rc = ctkn_settings_submit(st, cfg, &w, plan, a, &out->appended, err);
  if (out->appended)
    memcpy(out->event_id, a->ev.event_id, sizeof(out->event_id));
  if (rc == CTKN_OK && out->appended &&
      (rc = ctkn_store_begin(st, false, &txn, err)) == CTKN_OK) {
    rc = ctkn_keylog_get(txn, a->ev.data.id, &out->key, err);
    ctkn_store_abort(txn);
  }
  if (rc != CTKN_OK)
    ctkn_wipe(out->secret, sizeof(out->secret));
  free(a);
  return rc;
}
