/*
 * cmd_tail.c - tail: events as webhook JSON lines, following the topic
 * until SIGINT or SIGTERM (or, with --exit-at-end, the end as it stood at
 * the start).
 */
#include <stdio.h>

#include "cmd.h"
#include "ctkn/stream.h"

/* --type, repeatable: the event types to keep, as a mask. 0, or the exit
 * status of the error reported. */
static int type_mask(struct cli *c, unsigned *mask)
{
  const struct opt *types = cli_opt(c, "--type");
  struct ctkn_err err;

  for (int i = 0; types != NULL && i < types->nlist; i++) {
    ctkn_event_type t = ctkn_event_type_parse(types->list[i]);
    if (t == 0) {
      err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "type"};
      snprintf(err.msg, sizeof(err.msg),
               "must be client_token.created, client_token.updated or "
               "client_token.revoked, not \"%.60s\"",
               types->list[i]);
      return cli_print_error(c->rid, &err);
    }
    *mask |= 1u << t;
  }
  return 0;
}

int cmd_tail(struct cli *c)
{
  struct ctkn_tail_opts o = {.start = CTKN_START_END, .stop = &cli_stop};
  struct ctkn_tail_stats stats;
  const char *from = cli_value(c, "--from");
  struct ctkn_err err;
  int ex;

  if (from != NULL && cli_value(c, "--from-beginning"))
    return cli_usage_error(c, "--from and --from-beginning exclude each other");
  if (cli_value(c, "--from-beginning"))
    o.start = CTKN_START_BEGINNING;
  if (from != NULL) {
    int64_t us;
    if (ctkn_time_parse(from, &us, &err) != CTKN_OK) {
      snprintf(err.field, sizeof(err.field), "from");
      return cli_print_error(c->rid, &err);
    }
    o.start = CTKN_START_TIME;
    o.from_ms = us / 1000;
  }
  if ((ex = type_mask(c, &o.type_mask)) != 0)
    return ex;
  o.group = cli_value(c, "--group");
  o.trust_root = c->trust_root;
  o.exit_at_end = cli_value(c, "--exit-at-end") != NULL;
  if (o.group != NULL && o.exit_at_end)
    return cli_usage_error(c, "--exit-at-end cannot be used with --group");
  cli_signals(CLI_SIG_STOP | CLI_SIG_NOPIPE);
  if (ctkn_tail(&c->log, &o, stdout, &stats, &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  return 0;
}
