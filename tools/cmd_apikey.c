/*
 * cmd_apikey.c - API keys on the log: apikey create|list|get|update|
 * rotate|revoke|import, each through the settings topic (keycmd.h) and
 * read from the projection (keylog.h). With --file FILE or
 * $CTKN_API_KEYS, create, list and revoke work on the key file instead
 * (cmd_serve.c), the offline and bootstrap form; import --file FILE
 * moves that file's keys onto the log.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ctkn/apikey.h"
#include "ctkn/codec.h"
#include "ctkn/keycmd.h"
#include "ctkn/keylog.h"

#define LIST_CHUNK 256 /* keys `apikey list` reads at a time */

/* Every key, in ID order: *out grows by LIST_CHUNK. CTKN_OK or an
 * error. */
static int list_all(ctkn_store_txn *txn, struct ctkn_akey **out, size_t *n,
                    struct ctkn_err *err)
{
  bool more = true;
  int rc = CTKN_OK;

  *out = NULL;
  *n = 0;
  while (rc == CTKN_OK && more) {
    struct ctkn_akey *grown = realloc(*out, (*n + LIST_CHUNK) * sizeof(**out));
    size_t got = 0;
    if (grown == NULL)
      return cli_oom(err);
    *out = grown;
    rc = ctkn_keylog_list(txn, *n > 0 ? (*out)[*n - 1].id : NULL, *out + *n,
                          LIST_CHUNK, &got, &more, err);
    *n += got;
  }
  return rc;
}

/* The setters the options ask for. 0, or the exit status of the error. */
static int setters(struct cli *c, struct ctkn_akey_command *k)
{
  const char *v;
  struct ctkn_err err = {0};
  unsigned bits;
  int rc = CTKN_OK;

  if ((v = cli_value(c, "--name")))
    rc = ctkn_akey_command_set_name(k, v, strlen(v), &err);
  if (rc == CTKN_OK && (v = cli_value(c, "--description")))
    rc = ctkn_akey_command_set_description(k, v, strlen(v), &err);
  if (rc == CTKN_OK && cli_value(c, "--no-description"))
    rc = ctkn_akey_command_set_description(k, NULL, 0, &err);
  if (rc == CTKN_OK && (v = cli_value(c, "--permissions")) &&
      (rc = ctkn_perms_parse(v, &bits, &err)) == CTKN_OK)
    rc = ctkn_akey_command_set_perms(k, bits, &err);
  if (rc == CTKN_OK && (v = cli_value(c, "--expires-at"))) {
    int64_t at = 0;
    if (strcmp(v, "never") != 0 &&
        (rc = ctkn_time_parse(v, &at, &err)) != CTKN_OK)
      snprintf(err.field, sizeof(err.field), "expires_at");
    if (rc == CTKN_OK)
      rc = ctkn_akey_command_set_expires(k, at, ctkn_now_us(), &err);
  }
  if (rc == CTKN_OK && (v = cli_value(c, "--grace-period"))) {
    long long s;
    if (!cli_parse_int(v, INT64_MIN, INT64_MAX, &s))
      return cli_usage_error(c,
                             "--grace-period must be whole seconds, not "
                             "\"%.40s\"",
                             v);
    rc = ctkn_akey_command_set_grace(k, s, &err);
  }
  return rc == CTKN_OK ? 0 : cli_print_error(c->rid, &err);
}

/* Run one command and print the key (with its new secret, once). */
static int run(struct cli *c, const struct ctkn_akey_command *k)
{
  struct ctkn_keycmd_trust trust = {c->trust_root, c->writer};
  struct ctkn_keycmd_outcome *out = malloc(sizeof(*out));
  struct ctkn_err err = {0};
  ctkn_store *st = NULL;
  char *json = NULL;
  int rc, ex;

  if (out == NULL)
    return cli_oom(&err);
  if ((ex = cli_open_store(c, true, &st)) != 0) {
    free(out);
    return ex;
  }
  rc = ctkn_keycmd_execute(st, &c->log, &trust, c->env, k, out, &err);
  if (rc == CTKN_OK && (json = ctkn_json_akey(&out->key, ctkn_now_us(),
                                              out->secret, c->rid)) == NULL)
    rc = cli_oom(&err);
  ctkn_wipe(out->secret, sizeof(out->secret));
  free(out);
  ctkn_store_close(st);
  return cli_emit(c, rc, json, &err);
}

/* get ID | list: from the projection, once it has read the settings
 * topic to its end. */
static int read_keys(struct cli *c, const char *id)
{
  struct ctkn_keycmd_trust trust = {c->trust_root, NULL};
  struct ctkn_err err = {0};
  struct ctkn_akey *ks = NULL;
  ctkn_store_txn *txn = NULL;
  ctkn_store *st = NULL;
  char *json = NULL;
  size_t n = 0;
  int rc = CTKN_OK, ex;

  if ((ex = cli_open_store(c, true, &st)) != 0)
    return ex;
  if (id != NULL && (ks = calloc(1, sizeof(*ks))) == NULL)
    rc = cli_oom(&err);
  else if ((rc = ctkn_keycmd_refresh(st, &c->log, &trust, &err)) == CTKN_OK &&
           (rc = ctkn_store_begin(st, false, &txn, &err)) == CTKN_OK)
    rc = id != NULL ? ctkn_keylog_get(txn, id, ks, &err)
                    : list_all(txn, &ks, &n, &err);
  ctkn_store_abort(txn);
  if (rc == CTKN_OK)
    json = id != NULL
               ? ctkn_json_akey(ks, ctkn_now_us(), NULL, c->rid)
               : ctkn_json_akeys_page(ks, n, ctkn_now_us(), NULL, c->rid);
  if (rc == CTKN_OK && json == NULL)
    rc = cli_oom(&err);
  free(ks);
  ctkn_store_close(st);
  return cli_emit(c, rc, json, &err);
}

/* import --file F: every entry of the key file onto the log, once. */
static int import(struct cli *c, const char *file)
{
  struct ctkn_keycmd_trust trust = {c->trust_root, c->writer};
  struct ctkn_keycmd_outcome out;
  struct ctkn_err err = {0};
  struct ctkn_akey *done = NULL;
  ctkn_apikeys *ks = NULL;
  ctkn_store *st = NULL;
  char *json = NULL;
  size_t n = 0;
  int rc, ex;

  if ((rc = ctkn_apikeys_load(file, &ks, &err)) != CTKN_OK)
    return cli_emit(c, rc, NULL, &err);
  if ((ex = cli_open_store(c, true, &st)) != 0) {
    ctkn_apikeys_free(ks);
    return ex;
  }
  n = ctkn_apikeys_count(ks);
  if ((done = calloc(n ? n : 1, sizeof(*done))) == NULL)
    rc = cli_oom(&err);
  for (size_t i = 0; rc == CTKN_OK && i < n; i++) {
    const struct ctkn_apikey *e = ctkn_apikeys_at(ks, i);
    struct ctkn_akey_command k;
    ctkn_akey_command_init(&k, CTKN_AKEY_CMD_IMPORT);
    if ((rc = ctkn_akey_command_set_name(&k, e->name, strlen(e->name), &err)) !=
            CTKN_OK ||
        (rc = ctkn_akey_command_set_perms(&k, e->perms, &err)) != CTKN_OK)
      break;
    memcpy(k.sha256, e->sha256, sizeof(k.sha256));
    if (ctkn_time_parse(e->created_at, &k.created_at, NULL) != CTKN_OK)
      k.created_at = 0;
    rc = ctkn_keycmd_execute(st, &c->log, &trust, c->env, &k, &out, &err);
    done[i] = out.key;
  }
  if (rc == CTKN_OK && (json = ctkn_json_akeys_page(done, n, ctkn_now_us(),
                                                    NULL, c->rid)) == NULL)
    rc = cli_oom(&err);
  free(done);
  ctkn_apikeys_free(ks);
  ctkn_store_close(st);
  return cli_emit(c, rc, json, &err);
}

static const char *const needs_id[] = {"get", "update", "rotate", "revoke"};

static bool takes_id(const char *sub)
{
  for (size_t i = 0; i < sizeof(needs_id) / sizeof(needs_id[0]); i++)
    if (strcmp(sub, needs_id[i]) == 0)
      return true;
  return false;
}

/* One command on the log: its kind, its ID, its setters. */
static int on_log(struct cli *c, const char *sub)
{
  struct ctkn_akey_command k;
  struct ctkn_err err = {0};
  ctkn_akey_cmd_kind kind = strcmp(sub, "create") == 0   ? CTKN_AKEY_CMD_CREATE
                            : strcmp(sub, "rotate") == 0 ? CTKN_AKEY_CMD_ROTATE
                            : strcmp(sub, "revoke") == 0 ? CTKN_AKEY_CMD_REVOKE
                                                         : CTKN_AKEY_CMD_UPDATE;
  int ex;

  ctkn_akey_command_init(&k, kind);
  if (takes_id(sub) && ctkn_akey_command_set_id(&k, c->pos[1], &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  if ((ex = setters(c, &k)) != 0)
    return ex;
  if (kind == CTKN_AKEY_CMD_CREATE && (!k.set_name || !k.set_perms))
    return cli_usage_error(c, "apikey create needs --name and --permissions");
  return run(c, &k);
}

int cmd_apikey(struct cli *c)
{
  const char *sub = c->pos[0];
  const char *file = cli_env_or(cli_value(c, "--file"), "CTKN_API_KEYS", NULL);
  bool import_cmd = strcmp(sub, "import") == 0;

  if (file != NULL && *file == '\0')
    file = NULL;
  if (import_cmd) {
    if (c->npos != 1 || file == NULL)
      return cli_usage_error(c, "apikey import takes --file FILE");
    int ex = cli_need(c, NEED_WRITER);
    return ex != 0 ? ex : import(c, file);
  }
  if (file != NULL && strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 &&
      strcmp(sub, "revoke") != 0)
    return cli_usage_error(c,
                           "apikey %.40s works on the log: leave out --file "
                           "and $CTKN_API_KEYS",
                           sub);
  if (file != NULL)
    return cmd_apikey_file(c, file);
  if (strcmp(sub, "list") != 0 && strcmp(sub, "create") != 0 && !takes_id(sub))
    return cli_usage_error(c,
                           "unknown apikey command \"%.40s\" (try create, "
                           "list, get, update, rotate, revoke or import)",
                           sub);
  if (c->npos != (takes_id(sub) ? 2 : 1))
    return takes_id(sub) ? cli_usage_error(c, "apikey %s needs an ID", sub)
                         : cli_usage_error(c, "apikey %s takes no ID", sub);
  bool read = strcmp(sub, "list") == 0 || strcmp(sub, "get") == 0;
  int ex = cli_need(c, read ? NEED_ROOT : NEED_WRITER);
  if (ex != 0)
    return ex;
  if (read)
    return read_keys(c, strcmp(sub, "get") == 0 ? c->pos[1] : NULL);
  return on_log(c, sub);
}
