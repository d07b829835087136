/*
 * cmd_archive.c - the audit archive: export, audit verify (with a trust
 * root: every record through the gate, audit.h) and import.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ctkn/archive.h"
#include "ctkn/audit.h"
#include "ctkn/codec.h"

/* The summary document of an archive, consuming info. */
static int emit_archive(struct cli *c, int rc, struct ctkn_archive_info *info,
                        struct ctkn_err *err)
{
  char hex[2 * CTKN_SHA256_LEN + 1], *json = NULL;

  if (rc == CTKN_OK) {
    ctkn_hex(info->sha256, CTKN_SHA256_LEN, hex);
    json = ctkn_json_archive(info->topic, info->partitions, info->start_offsets,
                             info->end_offsets, info->records, hex);
    ctkn_archive_info_free(info);
    if (json == NULL)
      rc = cli_oom(err);
  }
  return cli_emit(c, rc, json, err);
}

/* export --out FILE: the whole log, hash-chained. */
int cmd_export(struct cli *c)
{
  const char *out = cli_value(c, "--out");
  struct ctkn_archive_info info;
  struct ctkn_err err;

  if (out == NULL || *out == '\0')
    return cli_usage_error(c, "export needs --out FILE");
  int rc = ctkn_archive_export(&c->log, out, &info, &err);
  return emit_archive(c, rc, &info, &err);
}

/* audit verify FILE --trust-root ROOT [--settings-archive FILE]: the
 * chain, and every record through the trust gate. The report goes to
 * stdout either way; a record that fails is also the error (exit 1). */
static int audit_trust(struct cli *c, const char *file)
{
  struct ctkn_audit_report *r = calloc(1, sizeof(*r));
  char hex[2 * CTKN_SHA256_LEN + 1], *json = NULL;
  struct ctkn_err err;
  int rc;

  if (r == NULL)
    return cli_print_error(c->rid, &(struct ctkn_err){.code = CTKN_ENOMEM});
  rc = ctkn_audit_verify(file, cli_value(c, "--settings-archive"),
                         c->trust_root, r, &err);
  if (rc == CTKN_OK) {
    ctkn_hex(r->info.sha256, CTKN_SHA256_LEN, hex);
    json = ctkn_json_audit(r->info.topic, r->info.partitions,
                           r->info.start_offsets, r->info.end_offsets,
                           r->info.records, hex, &r->trust);
    if (json == NULL)
      rc = cli_oom(&err);
  }
  if (rc == CTKN_OK && (rc = ctkn_audit_result(r, &err)) != CTKN_OK) {
    printf("%s\n", json); /* the whole report, beside the error */
    free(json);
    json = NULL;
  }
  ctkn_audit_report_free(r);
  free(r);
  return cli_emit(c, rc, json, &err);
}

/* audit verify FILE: check an archive's chain, judge every record by the
 * trust root (NEED_ROOT), print its hash, count and what failed. */
int cmd_audit(struct cli *c)
{
  if (strcmp(c->pos[0], "verify") != 0)
    return cli_usage_error(c, "unknown audit command \"%.40s\" (try verify)",
                           c->pos[0]);
  return audit_trust(c, c->pos[1]);
}

/* import --from-file FILE: an archive into a new, empty topic. */
int cmd_import(struct cli *c)
{
  const char *file = cli_value(c, "--from-file");
  const char *rs = cli_value(c, "--replication-factor");
  struct ctkn_archive_info info;
  struct ctkn_err err;
  int rf = 1, ex;

  if (file == NULL || *file == '\0')
    return cli_usage_error(c, "import needs --from-file FILE");
  if (rs && !cli_parse_count(rs, 1000, &rf))
    return cli_usage_error(c, "--replication-factor must be an integer");
  if ((ex = cli_check_replication_factor(c, rf)) != 0)
    return ex;
  int rc = ctkn_archive_import(file, &c->log, rf, &info, &err);
  if (rc == CTKN_OK) /* report the topic written, not the exported one */
    snprintf(info.topic, sizeof(info.topic), "%s", c->log.topic);
  return emit_archive(c, rc, &info, &err);
}
