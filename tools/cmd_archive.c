/*
 * cmd_archive.c - the audit archive: export, audit verify and import.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "ctkn/archive.h"
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

/* audit verify FILE: check an archive's chain; print its hash and count. */
int cmd_audit(struct cli *c)
{
  struct ctkn_archive_info info;
  struct ctkn_err err;

  if (strcmp(c->pos[0], "verify") != 0)
    return cli_usage_error(c, "unknown audit command \"%.40s\" (try verify)",
                           c->pos[0]);
  int rc = ctkn_archive_read(c->pos[1], NULL, NULL, &info, &err);
  return emit_archive(c, rc, &info, &err);
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
