/*
 * cmd_token.c - create, update, revoke (through the ledger), get, list,
 * verify and history (from the projection).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ctkn/codec.h"
#include "ctkn/ledger.h"
#include "ctkn/query.h"

/* Run one command through the ledger and print the token it leaves. */
static int run_command(struct cli *c, const struct ctkn_command *cmd)
{
  struct ctkn_outcome out;
  struct ctkn_err err;
  ctkn_ledger *l = NULL;
  ctkn_store *st = NULL;
  char *json = NULL;
  int rc, ex;

  if ((ex = cli_open_store(c, true, &st)) != 0)
    return ex;
  rc = cli_ledger_open(c, st, &l, &err);
  if (rc == CTKN_OK) {
    ctkn_ledger_last_batch(l); /* one command, then exit */
    rc = ctkn_ledger_execute(l, cmd, &out, &err);
  }
  if (rc == CTKN_OK &&
      (json = ctkn_json_data(&out.record.token, c->rid)) == NULL)
    rc = cli_oom(&err);
  if (rc == CTKN_OK && cli_may_leave()) {
    /* Judged and committed, every append acknowledged, the instance's
     * closing checkpoints among them: the ledger's close would only
     * destroy librdkafka's handles, joining their threads (1-2.5 ms of a
     * 15 ms create, timed inside), and the exit would free libcrypto's
     * tables. The store is closed (a long catch-up's unsynced commits
     * are flushed there); the rest ends with the process. */
    ctkn_store_close(st);
    cli_leave(c, cli_emit(c, rc, json, &err));
  }
  ctkn_ledger_close(l);
  ctkn_store_close(st);
  return cli_flush_answer(c, cli_emit(c, rc, json, &err));
}

/* Apply a text option through a command setter: 0, or the exit status of
 * the rule it broke. */
static int set_text(struct cli *c, struct ctkn_command *cmd, const char *name,
                    int (*set)(struct ctkn_command *, const char *, size_t,
                               struct ctkn_err *))
{
  const char *v = cli_value(c, name);
  struct ctkn_err err;

  if (v != NULL && set(cmd, v, strlen(v), &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  return 0;
}

/*
 * create --batch: one POST /client-tokens body per line of stdin, one
 * answer per line on stdout, in order (ctkn_ledger_create_lines()). Exit:
 * the worst of the lines.
 */
static int create_batch(struct cli *c)
{
  struct ctkn_err err;
  ctkn_ledger *l = NULL;
  ctkn_store *st = NULL;
  int worst = 0, rc, ex;

  if ((ex = cli_open_store(c, true, &st)) != 0)
    return ex;
  rc = cli_ledger_open(c, st, &l, &err);
  if (rc == CTKN_OK)
    rc = ctkn_ledger_create_lines(l, stdin, stdout, &worst, &err);
  ctkn_ledger_close(l);
  ctkn_store_close(st);
  return rc == CTKN_OK ? worst : cli_print_error(c->rid, &err);
}

int cmd_create(struct cli *c)
{
  struct ctkn_command cmd;
  int ex;

  if (cli_value(c, "--batch")) {
    if (cli_value(c, "--name") || cli_value(c, "--description") ||
        cli_value(c, "--idempotency-key"))
      return cli_usage_error(c, "--batch reads its requests from stdin; it "
                                "takes no --name, --description or "
                                "--idempotency-key");
    return create_batch(c);
  }
  ctkn_command_init(&cmd, CTKN_CMD_CREATE);
  if (cli_value(c, "--name") == NULL)
    return cli_usage_error(c, "create needs --name");
  if ((ex = set_text(c, &cmd, "--name", ctkn_command_set_name)) ||
      (ex = set_text(c, &cmd, "--description", ctkn_command_set_description)) ||
      (ex = set_text(c, &cmd, "--idempotency-key",
                     ctkn_command_set_idempotency_key)))
    return ex;
  return run_command(c, &cmd);
}

/* A command of kind k on the token named by the first argument. */
static int with_id(struct cli *c, struct ctkn_command *cmd, ctkn_cmd_kind k)
{
  struct ctkn_err err;

  ctkn_command_init(cmd, k);
  if (ctkn_command_set_id(cmd, c->pos[0], &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  return 0;
}

int cmd_update(struct cli *c)
{
  const char *status = cli_value(c, "--status");
  struct ctkn_command cmd;
  struct ctkn_err err;
  int ex;

  if ((ex = with_id(c, &cmd, CTKN_CMD_UPDATE)) ||
      (ex = set_text(c, &cmd, "--name", ctkn_command_set_name)) ||
      (ex = set_text(c, &cmd, "--description", ctkn_command_set_description)))
    return ex;
  if (cli_value(c, "--no-description")) {
    if (cli_value(c, "--description"))
      return cli_usage_error(c, "--description and --no-description exclude "
                                "each other");
    ctkn_command_set_description(&cmd, NULL, 0, NULL);
  }
  if (status && ctkn_command_set_status(&cmd, status, &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  return run_command(c, &cmd);
}

int cmd_revoke(struct cli *c)
{
  struct ctkn_command cmd;
  int ex;

  if ((ex = with_id(c, &cmd, CTKN_CMD_REVOKE)))
    return ex;
  return run_command(c, &cmd);
}

int cmd_get(struct cli *c)
{
  struct ctkn_err err;
  ctkn_store *st;
  char *json = NULL;
  int rc, ex;

  if (!ctkn_id_valid("ctkn_", c->pos[0])) {
    err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "id"};
    snprintf(err.msg, sizeof(err.msg), "must match ^ctkn_[a-z0-9]{26}$");
    return cli_print_error(c->rid, &err);
  }
  if ((ex = cli_open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_get(st, NULL, c->pos[0], c->rid, &json, &err);
  ctkn_store_close(st);
  return cli_emit(c, rc, json, &err);
}

int cmd_list(struct cli *c)
{
  struct ctkn_list_params p;
  struct ctkn_err err;
  const char *v;
  ctkn_store *st;
  char *json = NULL;
  int rc, ex;

  ctkn_list_params_init(&p);
  p.stale_ok = cli_value(c, "--stale-ok") != NULL;
  if ((v = cli_value(c, "--per-page")) != NULL) {
    /* Not a number at all is a usage error; a number out of range is the
     * API's invalid field. */
    if (v[0] < '0' || v[0] > '9' || strspn(v, "0123456789") != strlen(v))
      return cli_usage_error(c, "--per-page must be an integer, not \"%.40s\"",
                             v);
    if (ctkn_list_params_per_page(&p, v, &err) != CTKN_OK)
      return cli_print_error(c->rid, &err);
  }
  if (((v = cli_value(c, "--status")) &&
       ctkn_list_params_status(&p, v, &err) != CTKN_OK) ||
      ((v = cli_value(c, "--after")) &&
       ctkn_list_params_after(&p, v, &err) != CTKN_OK) ||
      ((v = cli_value(c, "--order-by")) &&
       ctkn_list_params_order_by(&p, v, &err) != CTKN_OK))
    return cli_print_error(c->rid, &err);
  if ((ex = cli_open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_list(st, NULL, &p, NULL, true, c->rid, &json, &err);
  ctkn_store_close(st);
  return cli_emit(c, rc, json, &err);
}

int cmd_verify(struct cli *c)
{
  struct ctkn_err err;
  ctkn_store *st;
  char *json = NULL;
  bool active = false;
  int rc, ex;

  if ((ex = cli_open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_verify(st, NULL, c->pos[0], c->rid, &json, &active, &err);
  ctkn_store_close(st);
  ex = cli_emit(c, rc, json, &err);
  /* Known but revoked: the JSON says so, and the exit status too. */
  return ex == 0 && !active ? 1 : ex;
}

int cmd_history(struct cli *c)
{
  struct ctkn_err err;
  ctkn_store *st;
  int rc, ex;

  if ((ex = cli_open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_history(st, c->pos[0], stdout, &err);
  ctkn_store_close(st);
  return rc == CTKN_OK ? 0 : cli_print_error(c->rid, &err);
}
