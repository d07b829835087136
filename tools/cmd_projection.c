/*
 * cmd_projection.c - the topic and the projection: init, project, status,
 * digest, quarantine, snapshot, replay and rebuild.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ctkn/codec.h"
#include "ctkn/delivery.h"
#include "ctkn/projector.h"
#include "ctkn/query.h"
#include "ctkn/replay.h"
#include "ctkn/settings.h"

/* init: the event topic, and its settings topic beside it. */
int cmd_init(struct cli *c)
{
  const char *ps = cli_value(c, "--partitions");
  const char *rs = cli_value(c, "--replication-factor");
  char stopic[sizeof(c->log.topic)], ntopic[sizeof(c->log.topic)];
  char *json = NULL;
  int parts = 6, rf = 1, ex;
  bool created, screated = false, ncreated = false;
  int32_t have, shave = 0, nhave = 0;
  struct ctkn_err err;

  if (ps && !cli_parse_count(ps, 100000, &parts))
    return cli_usage_error(c, "--partitions must be an integer");
  if (rs && !cli_parse_count(rs, 1000, &rf))
    return cli_usage_error(c, "--replication-factor must be an integer");
  if (parts < 1 || parts > CTKN_STORE_MAX_PARTITIONS) {
    err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "partitions"};
    snprintf(err.msg, sizeof(err.msg), "must be 1-%d",
             CTKN_STORE_MAX_PARTITIONS);
    return cli_print_error(c->rid, &err);
  }
  if ((ex = cli_check_replication_factor(c, rf)) != 0)
    return ex;
  /* The other topics' names are checked before anything is created. Run
   * again on a deployment initialized before, init creates what is
   * missing (the notifications topic) and leaves the rest. */
  int rc = ctkn_settings_topic(c->log.topic, stopic, sizeof(stopic), &err);
  if (rc == CTKN_OK)
    rc = ctkn_delivery_topic(c->log.topic, ntopic, sizeof(ntopic), &err);
  if (rc == CTKN_OK)
    rc = ctkn_log_create_topic(&c->log, parts, rf, &created, &have, &err);
  if (rc == CTKN_OK)
    rc = ctkn_settings_create_topic(&c->log, rf, &screated, &shave, &err);
  if (rc == CTKN_OK)
    rc = ctkn_delivery_create_topic(&c->log, have, rf, &ncreated, &nhave, &err);
  if (rc == CTKN_OK &&
      (json = ctkn_json_topics(c->log.topic, have, rf, created, stopic, shave,
                               screated, ntopic, nhave, ncreated)) == NULL)
    rc = cli_oom(&err);
  return cli_emit(c, rc, json, &err);
}

/* project [--follow]: advance the projection; print the totals. */
int cmd_project(struct cli *c)
{
  struct ctkn_projector_stats stats;
  struct ctkn_err err;
  ctkn_projector *p = NULL;
  ctkn_store *st = NULL;
  char *json = NULL;
  int rc, ex;

  if ((ex = cli_open_store(c, true, &st)) != 0)
    return ex;
  rc = ctkn_projector_open(&p, st, &c->log, c->env, &err);
  if (rc == CTKN_OK)
    rc = ctkn_projector_set_trust(p, c->trust_root, &err);
  /* The keyring as it stands now: a revocation since the last read. */
  if (rc == CTKN_OK)
    rc = ctkn_projector_refresh_keyring(p, &err);
  if (rc == CTKN_OK && cli_value(c, "--follow")) {
    cli_signals(CLI_SIG_STOP);
    rc = ctkn_projector_follow(p, &cli_stop, &err);
  } else if (rc == CTKN_OK) {
    rc = ctkn_projector_catch_up(p, NULL, 0, &err);
  }
  if (rc == CTKN_OK) {
    ctkn_projector_stats(p, &stats);
    if ((json = ctkn_json_project_stats(stats.applied, stats.rejected,
                                        stats.quarantined, stats.skipped,
                                        stats.paused)) == NULL)
      rc = cli_oom(&err);
  }
  ctkn_projector_close(p);
  ctkn_store_close(st);
  return cli_emit(c, rc, json, &err);
}

int cmd_status(struct cli *c)
{
  struct ctkn_partition_status *parts = NULL;
  struct ctkn_err err;
  ctkn_projector *p = NULL;
  ctkn_store *st = NULL;
  char *json = NULL;
  int32_t n = 0;
  int rc, ex;

  /* A read never creates --db: a read-only open refuses a missing or
   * foreign one, as get does. The projector then opens it for writing. */
  if ((ex = cli_open_store(c, false, &st)) != 0)
    return ex;
  ctkn_store_close(st);
  if ((ex = cli_open_store(c, true, &st)) != 0)
    return ex;
  rc = ctkn_projector_open(&p, st, &c->log, c->env, &err);
  if (rc == CTKN_OK && c->trust)
    rc = ctkn_projector_set_trust(p, c->trust_root, &err);
  if (rc == CTKN_OK)
    rc = ctkn_projector_status(p, &parts, &n, &err);
  if (rc == CTKN_OK &&
      (json = ctkn_json_status(c->log.topic, parts, (size_t)n)) == NULL)
    rc = cli_oom(&err);
  free(parts);
  ctkn_projector_close(p);
  ctkn_store_close(st);
  return cli_emit(c, rc, json, &err);
}

int cmd_digest(struct cli *c)
{
  struct ctkn_err err;
  ctkn_store *st;
  char *json = NULL;
  int rc, ex;

  if ((ex = cli_open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_digest(st, &json, &err);
  ctkn_store_close(st);
  return cli_emit(c, rc, json, &err);
}

int cmd_quarantine(struct cli *c)
{
  struct ctkn_err err;
  ctkn_store *st;
  int rc, ex;

  if ((ex = cli_open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_quarantine(st, stdout, &err);
  ctkn_store_close(st);
  return rc == CTKN_OK ? 0 : cli_print_error(c->rid, &err);
}

/* The digest document of the projection in dir, opened read-only. */
static int digest_of(const char *dir, char **json, struct ctkn_err *err)
{
  struct ctkn_store_opts ro = {.read_only = true};
  ctkn_store *st = NULL;
  int rc;

  if ((rc = ctkn_store_open(&st, dir, &ro, err)) == CTKN_OK)
    rc = ctkn_query_digest(st, json, err);
  ctkn_store_close(st);
  return rc;
}

/* snapshot --out DIR: a consistent, compacted copy of the projection;
 * prints the copy's digest. */
int cmd_snapshot(struct cli *c)
{
  const char *out = cli_value(c, "--out");
  struct ctkn_err err;
  ctkn_store *st = NULL;
  char *json = NULL;
  int rc, ex;

  if (out == NULL || *out == '\0')
    return cli_usage_error(c, "snapshot needs --out DIR");
  if ((ex = cli_open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_store_snapshot(st, out, &err);
  ctkn_store_close(st);
  if (rc == CTKN_OK)
    rc = digest_of(out, &json, &err);
  return cli_emit(c, rc, json, &err);
}

/* replay --as-of T: the projection exactly as it stood at T, frozen, in a
 * new --db; --from-file: the projection of an archive (replay.h), judged
 * with --trust-root by the keyring in --settings-archive (or the archive's
 * own). Prints its digest. */
int cmd_replay(struct cli *c)
{
  const char *as_of = cli_value(c, "--as-of");
  const char *file = cli_value(c, "--from-file");
  const char *settings = cli_value(c, "--settings-archive");
  struct ctkn_err err;
  char *json = NULL;
  int64_t us = 0;
  int rc;

  if ((as_of == NULL) == (file == NULL))
    return cli_usage_error(c,
                           "replay needs --as-of RFC3339 or --from-file FILE");
  if (file == NULL && ctkn_time_parse(as_of, &us, &err) != CTKN_OK) {
    snprintf(err.field, sizeof(err.field), "as_of");
    return cli_print_error(c->rid, &err);
  }
  if (settings != NULL && file == NULL)
    return cli_usage_error(c, "--settings-archive needs --from-file FILE");
  if (file != NULL)
    rc = ctkn_replay_archive(c->db, file, c->env, c->map_size, c->trust_root,
                             settings, &err);
  else
    rc = ctkn_replay_as_of(c->db, &c->log, c->env, c->map_size, c->trust_root,
                           us, &err);
  if (rc == CTKN_OK)
    rc = digest_of(c->db, &json, &err);
  return cli_emit(c, rc, json, &err);
}

/* rebuild: the projection in --db replayed afresh beside it and swapped
 * in atomically; prints the new projection's digest. */
int cmd_rebuild(struct cli *c)
{
  struct ctkn_projector_stats stats;
  struct ctkn_err err;
  char *json = NULL;

  int rc = ctkn_projector_rebuild(c->db, &c->log, c->env, c->map_size,
                                  c->trust_root, &stats, &err);
  if (rc == CTKN_OK) {
    fprintf(stderr,
            "ctkn rebuild: %s rebuilt (%" PRIu64 " applied, %" PRIu64
            " rejected, %" PRIu64 " quarantined); the old projection is in "
            "%s.previous\n",
            c->db, stats.applied, stats.rejected, stats.quarantined, c->db);
    rc = digest_of(c->db, &json, &err);
  }
  return cli_emit(c, rc, json, &err);
}
