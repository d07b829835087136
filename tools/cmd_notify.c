/*
 * cmd_notify.c - notification destinations (destination), delivery
 * (notify) and its audit (notification).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ctkn/codec.h"
#include "ctkn/delivery.h"
#include "ctkn/notify.h"
#include "ctkn/projector.h"
#include "ctkn/query.h"
#include "ctkn/settings.h"

/* ---- destination ------------------------------------------------------- */

/* --url, --events, --description, --no-description and --active into
 * cmd. 0, or the exit status of the error reported. */
static int dest_setters(struct cli *c, struct ctkn_dest_command *cmd)
{
  const char *url = cli_value(c, "--url");
  const char *events = cli_value(c, "--events");
  const char *desc = cli_value(c, "--description");
  const char *active = cli_value(c, "--active");
  struct ctkn_err err;
  bool on;

  if (url && ctkn_dest_command_set_url(cmd, url, &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  if (events && ctkn_dest_command_set_events(cmd, events, &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  if (desc && ctkn_dest_command_set_description(cmd, desc, strlen(desc),
                                                &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  if (cli_value(c, "--no-description")) {
    if (desc)
      return cli_usage_error(c, "--description and --no-description exclude "
                                "each other");
    ctkn_dest_command_set_description(cmd, NULL, 0, NULL);
  }
  if (active) {
    if (!cli_parse_bool(active, &on))
      return cli_usage_error(c, "--active must be true or false, not \"%.20s\"",
                             active);
    ctkn_dest_command_set_active(cmd, on);
  }
  return 0;
}

/* destination list | get ID: from the projection. */
static int dest_read(struct cli *c, bool list)
{
  struct ctkn_err err;
  ctkn_store *st = NULL;
  char *json = NULL;
  int rc, ex;

  if ((ex = cli_open_store(c, false, &st)) != 0)
    return ex;
  if (list)
    rc = ctkn_query_destinations(st, c->rid, &json, &err);
  else
    rc = ctkn_query_destination(st, c->pos[1], c->rid, &json, &err);
  ctkn_store_close(st);
  return cli_emit(c, rc, json, &err);
}

/* Run cmd (its key NULL but for an add) and print what it leaves: the
 * destination, with its endpoint secret once after an add; null after a
 * remove. */
static int dest_execute(struct cli *c, const struct ctkn_dest_command *cmd,
                        const uint8_t *key,
                        const struct ctkn_dest_policy *policy)
{
  struct ctkn_dest_outcome out;
  struct ctkn_err err;
  ctkn_store *st = NULL;
  char *json = NULL;
  int rc, ex;

  if ((ex = cli_open_store(c, true, &st)) != 0)
    return ex;
  rc = ctkn_settings_execute(st, &c->log, key, cmd, policy, &out, &err);
  if (rc == CTKN_OK) {
    if (cmd->kind == CTKN_DEST_REMOVE)
      json = ctkn_json_data_null();
    else
      json = ctkn_json_destination(
          &out.dest, cmd->kind == CTKN_DEST_ADD ? out.secret : NULL, c->rid);
    if (json == NULL)
      rc = cli_oom(&err);
  }
  ctkn_wipe(out.secret, sizeof(out.secret));
  ctkn_store_close(st);
  return cli_emit(c, rc, json, &err);
}

/* destination add | update ID | remove ID: through the settings topic. */
static int dest_write(struct cli *c, ctkn_dest_cmd_kind kind)
{
  struct ctkn_dest_command cmd;
  struct ctkn_dest_policy policy;
  struct ctkn_cidr nets[LIST_MAX];
  uint8_t key[CTKN_KEY_LEN];
  struct ctkn_err err;
  bool add = kind == CTKN_DEST_ADD, have_key;
  int ex;

  ctkn_dest_command_init(&cmd, kind);
  if ((ex = cli_dest_policy(c, &policy, nets)) != 0)
    return ex;
  if (!add && ctkn_dest_command_set_id(&cmd, c->pos[1], &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  if ((ex = dest_setters(c, &cmd)) != 0)
    return ex;
  if (add && (!cmd.set_url || !cmd.set_events))
    return cli_usage_error(c, "destination add needs --url and --events");
  if ((ex = cli_load_key(c, key, &have_key)) != 0)
    return ex;
  if (add && !have_key)
    return cli_usage_error(c, "destination add needs --secret-key-file FILE "
                              "or $CTKN_SECRET_KEY_FILE (32 random bytes, or "
                              "64 hex characters, mode 0600)");
  ex = dest_execute(c, &cmd, have_key ? key : NULL, &policy);
  ctkn_wipe(key, sizeof(key));
  return ex;
}

/* Whether an option that only add and update take is given. */
static bool any_setter(struct cli *c)
{
  static const char *const names[] = {
      "--url",         "--events",
      "--description", "--no-description",
      "--active",      "--max-active-destinations"};

  for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
    if (cli_value(c, names[i]) != NULL)
      return true;
  return false;
}

int cmd_destination(struct cli *c)
{
  /* In this order: the writes first, then the reads. */
  static const char *const subs[] = {"add", "update", "remove", "get", "list"};
  static const ctkn_dest_cmd_kind kinds[] = {CTKN_DEST_ADD, CTKN_DEST_UPDATE,
                                             CTKN_DEST_REMOVE};
  const size_t nsubs = sizeof(subs) / sizeof(*subs);
  const char *sub = c->pos[0];
  size_t k = 0;

  while (k < nsubs && strcmp(sub, subs[k]) != 0)
    k++;
  if (k == nsubs)
    return cli_usage_error(c,
                           "unknown destination command \"%.40s\" (try add, "
                           "list, get, update or remove)",
                           sub);
  bool takes_id = k >= 1 && k <= 3;
  if (!takes_id && c->npos != 1)
    return cli_usage_error(c, "destination %s takes no ID", sub);
  if (takes_id && c->npos != 2)
    return cli_usage_error(c, "destination %s needs an ID", sub);
  if (k >= 2 &&
      (any_setter(c) || cli_opt(c, "--allow-destination-network")->nlist > 0))
    return cli_usage_error(c,
                           "destination %s takes no --url, --events, "
                           "--description, --active, "
                           "--allow-destination-network or "
                           "--max-active-destinations",
                           sub);
  int ex = cli_need(c, k >= 3 ? 0 : NEED_WRITER); /* reads: the --db */
  if (ex != 0)
    return ex;
  if (k >= 3)
    return dest_read(c, k == 4);
  return dest_write(c, kinds[k]);
}

/* ---- notify ------------------------------------------------------------ */

/* The durations and --window into o. 0, or the exit status of the error
 * reported. */
static int notify_opts(struct cli *c, struct ctkn_notify_opts *o)
{
  static const char *const durations[] = {"--request-timeout", "--max-age",
                                          "--retry-initial", "--retry-max"};
  int64_t d[4] = {0, 0, 0, 0};

  for (int i = 0; i < 4; i++) {
    const char *v = cli_value(c, durations[i]);
    if (v != NULL && !cli_parse_duration(v, &d[i]))
      return cli_usage_error(c,
                             "%s must be a duration like 500ms, 30s, 15m or "
                             "72h, not \"%.40s\"",
                             durations[i], v);
  }
  if (d[0] > INT32_MAX)
    return cli_usage_error(c, "--request-timeout is too long");
  o->request_timeout_ms = (int)d[0];
  o->max_age_ms = d[1];
  o->retry_initial_ms = d[2];
  o->retry_max_ms = d[3];
  const char *w = cli_value(c, "--window");
  if (w != NULL && (!cli_parse_count(w, 1000, &o->window) || o->window < 1 ||
                    o->window > 64))
    return cli_usage_error(c, "--window must be an integer 1-64");
  o->group = cli_value(c, "--group");
  o->follow = cli_value(c, "--follow") != NULL;
  return 0;
}

int cmd_notify(struct cli *c)
{
  struct ctkn_notify_opts o = {0};
  struct ctkn_notify_stats stats;
  struct ctkn_dest_policy policy;
  struct ctkn_cidr nets[LIST_MAX];
  uint8_t key[CTKN_KEY_LEN];
  struct ctkn_err err;
  ctkn_store *st = NULL;
  char *json = NULL;
  bool have_key;
  int rc, ex;

  if ((ex = notify_opts(c, &o)) != 0 ||
      (ex = cli_dest_policy(c, &policy, nets)) != 0 ||
      (ex = cli_load_key(c, key, &have_key)) != 0)
    return ex;
  o.allow = policy.allow;
  o.nallow = policy.nallow;
  if (!have_key)
    return cli_usage_error(c, "notify needs --secret-key-file FILE or "
                              "$CTKN_SECRET_KEY_FILE to open endpoint "
                              "secrets");
  if ((ex = cli_open_store(c, true, &st)) != 0) {
    ctkn_wipe(key, sizeof(key));
    return ex;
  }
  cli_signals(CLI_SIG_STOP);
  o.stop = &cli_stop;
  o.trust_root = c->trust_root;
  o.writer_key = c->writer;
  rc = ctkn_notify_run(st, &c->log, c->env, key, &o, &stats, &err);
  ctkn_wipe(key, sizeof(key));
  ctkn_store_close(st);
  if (rc == CTKN_OK &&
      (json = ctkn_json_notify_stats(stats.attempts, stats.delivered,
                                     stats.failed, stats.replayed)) == NULL)
    rc = cli_oom(&err);
  return cli_emit(c, rc, json, &err);
}

/* ---- notification ------------------------------------------------------ */

/* The notifications topic projected up to its end, judged by the trust
 * root's keyring; *p is the projector (its keyring signs a replay). */
static int ntf_project(struct cli *c, ctkn_store *st, ctkn_projector **p,
                       struct ctkn_err *err)
{
  int rc = ctkn_projector_open(p, st, &c->log, c->env, err);

  if (rc == CTKN_OK &&
      (rc = ctkn_projector_set_trust(*p, c->trust_root, err)) == CTKN_OK)
    rc = ctkn_projector_refresh_keyring(*p, err);
  if (rc == CTKN_OK)
    rc = ctkn_projector_catch_up_deliveries(*p, err);
  return rc;
}

/* notification replay ID: ask for a new notification like it, on the
 * notifications topic (signed with --writer-key under a trust root). */
static int ntf_replay(struct cli *c)
{
  char id[CTKN_NTF_ID_BUF], *json = NULL;
  ctkn_projector *p = NULL;
  struct ctkn_err err;
  ctkn_store *st = NULL;
  int rc, ex;

  if ((ex = cli_open_store(c, true, &st)) != 0)
    return ex;
  if ((rc = ntf_project(c, st, &p, &err)) == CTKN_OK)
    rc = ctkn_delivery_request_replay(st, &c->log, ctkn_projector_keyring(p),
                                      c->writer, c->pos[1], id, &err);
  ctkn_projector_close(p);
  ctkn_store_close(st);
  if (rc == CTKN_OK &&
      (json = ctkn_json_notification_replayed(id, c->rid)) == NULL)
    rc = cli_oom(&err);
  return cli_emit(c, rc, json, &err);
}

/* The notifications topic projected up to its end, when the log can be
 * reached; otherwise (warned) the projection as it stands. */
static void ntf_catch_up(struct cli *c, ctkn_store *st)
{
  ctkn_projector *p = NULL;
  struct ctkn_err err;
  int rc = ntf_project(c, st, &p, &err);

  ctkn_projector_close(p);
  if (rc != CTKN_OK)
    fprintf(stderr,
            "ctkn notification: the notifications topic was not read (%s); "
            "reading the projection as it stands\n",
            err.msg);
}

/* notification list | get ID | logs ID: JSON lines from the projection of
 * the notifications topic, caught up first. */
static int ntf_read(struct cli *c, const char *sub,
                    const struct ctkn_ntf_list_params *p)
{
  struct ctkn_err err;
  ctkn_store *st = NULL;
  int rc, ex;

  if ((ex = cli_open_store(c, true, &st)) != 0)
    return ex;
  ntf_catch_up(c, st);
  if (strcmp(sub, "list") == 0)
    rc = ctkn_query_notifications(st, p, stdout, &err);
  else if (strcmp(sub, "get") == 0)
    rc = ctkn_query_notification(st, c->pos[1], stdout, &err);
  else
    rc = ctkn_query_attempts(st, c->pos[1], stdout, &err);
  ctkn_store_close(st);
  return rc == CTKN_OK ? 0 : cli_print_error(c->rid, &err);
}

/* --destination and --status, for list only. 0, or the exit status of
 * the error reported. */
static int ntf_filters(struct cli *c, bool list, struct ctkn_ntf_list_params *p)
{
  const char *dest = cli_value(c, "--destination");
  const char *status = cli_value(c, "--status");
  struct ctkn_err err;

  if (!list && (dest || status))
    return cli_usage_error(c, "--destination and --status are for "
                              "notification list");
  ctkn_ntf_list_params_init(p);
  if ((dest && ctkn_ntf_list_params_destination(p, dest, &err) != CTKN_OK) ||
      (status && ctkn_ntf_list_params_status(p, status, &err) != CTKN_OK))
    return cli_print_error(c->rid, &err);
  return 0;
}

int cmd_notification(struct cli *c)
{
  const char *sub = c->pos[0];
  bool list = strcmp(sub, "list") == 0, replay = strcmp(sub, "replay") == 0;
  struct ctkn_ntf_list_params p;
  int ex;

  if (!list && !replay && strcmp(sub, "logs") != 0 && strcmp(sub, "get") != 0)
    return cli_usage_error(c,
                           "unknown notification command \"%.40s\" (try "
                           "list, get, logs or replay)",
                           sub);
  if (c->npos != (list ? 1 : 2))
    return list ? cli_usage_error(c, "notification list takes no ID")
                : cli_usage_error(c, "notification %s needs an ID", sub);
  if ((ex = cli_need(c, replay ? NEED_WRITER : NEED_ROOT)) != 0 ||
      (ex = ntf_filters(c, list, &p)) != 0)
    return ex;
  return replay ? ntf_replay(c) : ntf_read(c, sub, &p);
}
