/*
 * ctkn - the command-line tool: main() and the command table. Parsing,
 * output and signals are cli.c's; the commands are cmd_*.c's; every
 * behaviour lives in the library, so tests can reach it there.
 *
 * Output: success is JSON on stdout; errors are Paddle's error envelope on
 * stderr. Exit: 0 success, 1 rejected request, 2 usage, 3 unavailable
 * (retry), 4 appended or applied but not answered (README: "Exit codes").
 */
#include <stddef.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"

/* clang-format off */
#define VAL(name)  {(name), OPT_VALUE}
#define FLAG(name) {(name), OPT_FLAG}
#define LIST(name) {(name), OPT_LIST}
#define NO_OPTIONS {{NULL, OPT_VALUE}}
/* clang-format on */

/* name, run, positional arguments required and further allowed, options
 * (VAL: one value; FLAG: none; LIST: repeatable), and what it needs of
 * trust (NEED_ROOT: it reads the log; NEED_WRITER: it appends). Commands
 * that only read the local projection (get, list, verify, history, digest,
 * quarantine, status, snapshot) need neither: what is in it was judged.
 * apikey, destination and notification check per subcommand. CHANGES:
 * it changes the log, a topic or a key file, or makes a file or a
 * directory (an answer lost is exit 4). */
static const struct command commands[] = {
    {"init",
     cmd_init,
     0,
     0,
     {VAL("--partitions"), VAL("--replication-factor")},
     NEED_NONE | CHANGES},
    {"create",
     cmd_create,
     0,
     0,
     {VAL("--name"), VAL("--description"), VAL("--idempotency-key"),
      FLAG("--batch")},
     NEED_WRITER | CHANGES},
    {"update",
     cmd_update,
     1,
     0,
     {VAL("--name"), VAL("--description"), FLAG("--no-description"),
      VAL("--status")},
     NEED_WRITER | CHANGES},
    {"revoke", cmd_revoke, 1, 0, NO_OPTIONS, NEED_WRITER | CHANGES},
    {"project", cmd_project, 0, 0, {FLAG("--follow")}, NEED_ROOT},
    {"get", cmd_get, 1, 0, NO_OPTIONS, NEED_NONE},
    {"list",
     cmd_list,
     0,
     0,
     {VAL("--status"), VAL("--after"), VAL("--per-page"), VAL("--order-by"),
      FLAG("--stale-ok")},
     NEED_NONE},
    {"verify", cmd_verify, 1, 0, NO_OPTIONS, NEED_NONE},
    {"history", cmd_history, 1, 0, NO_OPTIONS, NEED_NONE},
    {"digest", cmd_digest, 0, 0, NO_OPTIONS, NEED_NONE},
    {"quarantine", cmd_quarantine, 0, 0, NO_OPTIONS, NEED_NONE},
    {"status", cmd_status, 0, 0, NO_OPTIONS, NEED_NONE},
    {"snapshot", cmd_snapshot, 0, 0, {VAL("--out")}, NEED_NONE | CHANGES},
    {"replay",
     cmd_replay,
     0,
     0,
     {VAL("--as-of"), VAL("--from-file"), VAL("--settings-archive")},
     NEED_ROOT | CHANGES},
    {"export", cmd_export, 0, 0, {VAL("--out")}, NEED_NONE | CHANGES},
    {"rebuild", cmd_rebuild, 0, 0, NO_OPTIONS, NEED_ROOT},
    {"audit", cmd_audit, 2, 0, {VAL("--settings-archive")}, NEED_ROOT},
    {"import",
     cmd_import,
     0,
     0,
     {VAL("--from-file"), VAL("--replication-factor")},
     NEED_NONE | CHANGES},
    {"tail",
     cmd_tail,
     0,
     0,
     {FLAG("--from-beginning"), VAL("--from"), LIST("--type"), VAL("--group"),
      FLAG("--exit-at-end")},
     NEED_ROOT},
    {"serve",
     cmd_serve,
     0,
     0,
     {VAL("--listen"),
      VAL("--api-keys"),
      VAL("--public-url"),
      VAL("--tls-cert"),
      VAL("--tls-key"),
      VAL("--rate-limit"),
      VAL("--threads"),
      VAL("--max-lag"),
      VAL("--position-wait"),
      VAL("--client-timeout"),
      VAL("--secret-key-file"),
      VAL("--heartbeat"),
      VAL("--max-staleness"),
      LIST("--allow-destination-network"),
      VAL("--max-active-destinations"),
      FLAG("--redact-endpoint-secrets"),
      VAL("--key-used-interval"),
      VAL("--usage-key"),
      VAL("--key-expiring-lead"),
      VAL("--expiry-key")},
     NEED_ROOT},
    {"apikey",
     cmd_apikey,
     1,
     1,
     {VAL("--file"), VAL("--name"), VAL("--permissions"), VAL("--description"),
      FLAG("--no-description"), VAL("--expires-at"), VAL("--grace-period")},
     NEED_NONE | CHANGES},
    {"destination",
     cmd_destination,
     1,
     1,
     {VAL("--url"), VAL("--events"), VAL("--description"),
      FLAG("--no-description"), VAL("--active"), VAL("--secret-key-file"),
      LIST("--allow-destination-network"), VAL("--max-active-destinations")},
     NEED_NONE | CHANGES},
    {"notify",
     cmd_notify,
     0,
     0,
     {FLAG("--follow"), VAL("--group"), VAL("--secret-key-file"),
      VAL("--request-timeout"), VAL("--max-age"), VAL("--retry-initial"),
      VAL("--retry-max"), VAL("--window"), LIST("--allow-destination-network")},
     NEED_WRITER | CHANGES},
    {"notification",
     cmd_notification,
     1,
     1,
     {VAL("--destination"), VAL("--status")},
     NEED_NONE | CHANGES},
    {"trust",
     cmd_trust,
     1,
     2,
     {VAL("--root-key"), VAL("--name"), LIST("--scope"), VAL("--out"),
      FLAG("--retroactive")},
     NEED_NONE | CHANGES},
    {"version", cmd_version, 0, 0, NO_OPTIONS, NEED_NONE},
    {"help", cmd_help, 0, 0, NO_OPTIONS, NEED_NONE},
};

/* Whether this run of cmd only reads: a read subcommand of a command that
 * CHANGES things otherwise (its lost answer is then exit 3, not 4). */
static bool only_reads(const struct command *cmd, const struct cli *c)
{
  static const char *const reads[] = {"list", "get", "logs"};
  const char *sub = c->npos > 0 ? c->pos[0] : "";

  if (strcmp(cmd->name, "trust") == 0)
    return strcmp(sub, "keyring") == 0 && c->npos == 1; /* show it */
  if (strcmp(cmd->name, "apikey") != 0 &&
      strcmp(cmd->name, "destination") != 0 &&
      strcmp(cmd->name, "notification") != 0)
    return false;
  for (size_t i = 0; i < sizeof(reads) / sizeof(*reads); i++)
    if (strcmp(sub, reads[i]) == 0)
      return true;
  return false;
}

int main(int argc, char **argv)
{
  static struct cli c;
  const struct command *cmd;
  int ex;

  ex = cli_start(&c, commands, sizeof(commands) / sizeof(*commands), argc, argv,
                 &cmd);
  if (ex == 0 && cmd != NULL) {
    unsigned need = only_reads(cmd, &c) ? cmd->need & ~CHANGES : cmd->need;
    ex = cli_finish(&c, need, cmd->run(&c));
  }
  cli_free(&c);
  return ex;
}
