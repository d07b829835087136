/*
 * cli.c - options, argument parsing, output, exit statuses and signals for
 * every `ctkn` command (cli.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ctkn/codec.h"
#include "ctkn/diag.h"
#include "ctkn/event.h"
#include "ctkn/ledger.h"

static const char usage_text[] =
    "usage: ctkn <command> [options]\n"
    "\n"
    "commands:\n"
    "  init [--partitions N] [--replication-factor N]   create the topic\n"
    "  create --name NAME [--description TEXT] [--idempotency-key KEY]\n"
    "  create --batch              one JSON request per stdin line\n"
    "  update ID [--name NAME] [--description TEXT | --no-description]\n"
    "            [--status active|revoked]\n"
    "  revoke ID\n"
    "  project [--follow]          advance the LMDB projection from Kafka\n"
    "  get ID\n"
    "  list [--status active,revoked] [--after ID] [--per-page N]\n"
    "       [--order-by 'id[ASC]'|'id[DESC]'] [--stale-ok]\n"
    "                              refused (exit 3) while a partition is\n"
    "                              paused, unless --stale-ok (meta.stale)\n"
    "  verify TOKEN                exit 0 only for an active token\n"
    "  history ID                  the token's events, one JSON line each\n"
    "  digest                      offsets and SHA-256 of the projection\n"
    "  quarantine                  quarantined records, one JSON line each\n"
    "  status                      log and projection offsets, and lag\n"
    "  snapshot --out DIR          consistent compacted copy of --db, live\n"
    "  replay --as-of RFC3339      the projection as it stood then, frozen,\n"
    "                              into a new --db\n"
    "  replay --from-file FILE [--settings-archive FILE]\n"
    "                              the projection of an export, frozen, into\n"
    "                              a new --db, every record judged as\n"
    "                              `project` judges it, by the\n"
    "                              keyring in the settings archive (default:\n"
    "                              the keyring placed in the export)\n"
    "  rebuild                     replay the log beside --db, then swap the\n"
    "                              new projection in atomically\n"
    "  export --out FILE           the whole log as a hash-chained archive\n"
    "  audit verify FILE           check an archive; print its hash, count\n"
    "       [--settings-archive FILE]\n"
    "                              and prove every record by --trust-root:\n"
    "                              its writer's chain and checkpoints, judged\n"
    "                              by the keyring in the settings archive\n"
    "  import --from-file FILE [--replication-factor N]\n"
    "                              an archive into a new, empty topic\n"
    "  tail [--from-beginning | --from RFC3339] [--type TYPE]...\n"
    "       [--group NAME] [--exit-at-end]\n"
    "                              events as webhook JSON lines; with a\n"
    "                              group, at least once, shared by members\n"
    "  serve [--api-keys FILE] [--listen ADDR:PORT] [--public-url URL]\n"
    "        [--key-used-interval SECONDS]   last_used_at (3600)\n"
    "        [--usage-key FILE]    [$CTKN_USAGE_KEY] signs api_key.used\n"
    "        [--key-expiring-lead SECONDS]   api_key.expiring (604800)\n"
    "        [--expiry-key FILE]   [$CTKN_EXPIRY_KEY] signs\n"
    "                              api_key.expiring and api_key.expired\n"
    "        [--tls-cert FILE --tls-key FILE] [--rate-limit N]\n"
    "        [--threads N] [--max-lag N] [--position-wait SECONDS]\n"
    "        [--client-timeout SECONDS] [--secret-key-file FILE]\n"
    "        [--heartbeat SECONDS] [--max-staleness SECONDS]\n"
    "        [--allow-destination-network CIDR]... [--max-active-destinations "
    "N]\n"
    "        [--redact-endpoint-secrets]\n"
    "                              Paddle's HTTP API over a replica that\n"
    "                              follows the topic; SIGHUP reloads keys;\n"
    "                              the deployment key [$CTKN_SECRET_KEY_FILE]\n"
    "                              lets POST /notification-settings create,\n"
    "                              and reads return endpoint secrets unless\n"
    "                              --redact-endpoint-secrets\n"
    "  apikey create --name NAME\n"
    "         --permissions PERM[,PERM...]  client_token.read,\n"
    "                              client_token.write, notification_setting.\n"
    "                              read, notification_setting.write,\n"
    "                              api_key.read, api_key.write (a write\n"
    "                              implies its read)\n"
    "         [--description T] [--expires-at TIME]\n"
    "  apikey list | get ID\n"
    "  apikey update ID [--name N] [--description T | --no-description]\n"
    "         [--permissions P] [--expires-at TIME|never]\n"
    "  apikey rotate ID [--grace-period SECONDS]   (0-86400)\n"
    "  apikey revoke ID\n"
    "                              API keys on the log (the settings\n"
    "                              topic): every serve replica accepts them;\n"
    "                              create and rotate print the key, once\n"
    "  apikey import --file FILE   the key file's keys onto the log\n"
    "  apikey create|list|revoke NAME --file FILE [$CTKN_API_KEYS]\n"
    "                              the key file (offline, bootstrap)\n"
    "  destination add --url URL --events TYPE[,TYPE...] [--description T]\n"
    "                  [--active false] [--allow-destination-network CIDR]...\n"
    "                  [--max-active-destinations N]\n"
    "                              a webhook destination; prints its\n"
    "                              endpoint_secret_key, once\n"
    "  destination list | get ID\n"
    "  destination update ID [--url URL] [--events ...] [--active true|false]\n"
    "                     [--description TEXT | --no-description]\n"
    "  destination remove ID\n"
    "                              destinations need --secret-key-file FILE\n"
    "                              [$CTKN_SECRET_KEY_FILE] to add; https://\n"
    "                              in live; no user:pass@; at most 10 active\n"
    "  notify [--follow] [--group NAME] [--request-timeout DUR]\n"
    "         [--max-age DUR] [--retry-initial DUR] [--retry-max DUR]\n"
    "         [--window N] [--allow-destination-network CIDR]...\n"
    "                              deliver signed webhooks (at least once)\n"
    "  --allow-destination-network CIDR   (destination add/update, serve,\n"
    "                              notify; repeatable) admit a network that\n"
    "                              is not globally reachable (loopback,\n"
    "                              private, link-local, ...), which webhooks\n"
    "                              are otherwise never sent to\n"
    "  notification list [--destination ID]\n"
    "                    [--status delivered,failed,pending]\n"
    "  notification get ID | logs ID | replay ID\n"
    "  trust init --root-key FILE     the offline root key pair (FILE,\n"
    "                              FILE.pub)\n"
    "  trust key add --root-key FILE --name NAME --scope TYPE... --out FILE\n"
    "  trust key revoke KEY_ID --root-key FILE [--retroactive]\n"
    "                              change the keyring (signed by the root)\n"
    "  trust keyring                 the keyring readers judge by\n"
    "  trust keyring place --root-key FILE\n"
    "                              the newest keyring onto every event\n"
    "                              partition (a revocation counts from there)\n"
    "  trust schema enable N --root-key FILE\n"
    "                              let writers emit event schema N (after\n"
    "                              every reader is upgraded)\n"
    "  trust adopt --root-key FILE   the root vouches for every record so far\n"
    "                              (a topic written before signing)\n"
    "  version | help\n"
    "\n"
    "options (before or after the command):\n"
    "  --brokers LIST        Kafka bootstrap servers [$CTKN_BROKERS, "
    "127.0.0.1:9092]\n"
    "  --topic NAME          event topic [$CTKN_TOPIC, client_tokens]\n"
    "  --db DIR              LMDB projection directory [$CTKN_DB, ./ctkn-db]\n"
    "  --environment ENV     sandbox or live [$CTKN_ENVIRONMENT, sandbox]\n"
    "  --timeout SECONDS     bound on every Kafka wait [$CTKN_TIMEOUT, 10]\n"
    "  --map-size BYTES      LMDB map size, K/M/G/T suffixes [64G]\n"
    "  --log-level LEVEL     error, warn, info or debug: the diagnostic\n"
    "                        JSON lines on stderr [$CTKN_LOG_LEVEL, info]\n"
    "  --trust-root FILE     the trust root's public key: every record is\n"
    "                        judged by its keyring; every command that\n"
    "                        reads the log needs it [$CTKN_TRUST_ROOT]\n"
    "  --writer-key FILE     this writer's key: appends are signed; every\n"
    "                        command that appends needs it\n"
    "                        [$CTKN_WRITER_KEY]\n"
    "  -X key=value          librdkafka property (repeatable)\n"
    "\n"
    "exit: 0 ok, 1 request rejected, 2 usage error, 3 Kafka/LMDB\n"
    "      unavailable (not acknowledged: retry), 4 appended but not yet\n"
    "      applied, or applied with its answer lost (look before running\n"
    "      it again)\n";

/* ---- output ------------------------------------------------------------ */

int cli_print_error(const char *rid, const struct ctkn_err *err)
{
  char *json = ctkn_json_error(err, rid);

  if (json != NULL)
    fprintf(stderr, "%s\n", json);
  else
    fprintf(stderr, "ctkn: %s: %s\n", ctkn_strerror(err->code), err->msg);
  free(json);
  return ctkn_error_exit(err->code);
}

int cli_usage_error(struct cli *c, const char *fmt, ...)
{
  struct ctkn_err err = {.code = CTKN_EUSAGE};
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
  va_end(ap);
  cli_print_error(c->rid, &err);
  fputs("run `ctkn help` for usage\n", stderr);
  return 2;
}

int cli_oom(struct ctkn_err *err)
{
  *err = (struct ctkn_err){.code = CTKN_ENOMEM};
  snprintf(err->msg, sizeof(err->msg), "out of memory rendering JSON");
  return CTKN_ENOMEM;
}

int cli_emit(struct cli *c, int rc, char *json, const struct ctkn_err *err)
{
  if (rc != CTKN_OK) {
    free(json);
    return cli_print_error(c->rid, err);
  }
  printf("%s\n", json);
  free(json);
  return 0;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CLI_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(CLI_SANITIZED)
#define CLI_SANITIZED 1
#endif

bool cli_may_leave(void)
{
#ifdef CLI_SANITIZED
  return false;
#else
  return true;
#endif
}

/* Whether what was printed to stdout reached it: the last flush, and
 * any failed write before it (a long answer flushes as it goes). */
/* 0 when what was printed to stdout reached it (the last flush, and any
 * failed write before it: a long answer flushes as it goes), else the
 * errno that says why. */
static int stdout_failed(void)
{
  errno = 0;
  if (fflush(stdout) != 0)
    return errno ? errno : EIO;
  return ferror(stdout) ? EIO : 0; /* an earlier write's errno is gone */
}

int cli_flush_answer(struct cli *c, int ex)
{
  struct ctkn_err err = {.code = CTKN_EAPPENDED};
  int e;

  if (ex != 0 || (e = stdout_failed()) == 0)
    return ex;
  snprintf(err.msg, sizeof(err.msg),
           "the command was applied, but its answer could not be written to "
           "stdout (%s): look (`ctkn list`, key or destination list, the "
           "file it made) before running it again; a create without its "
           "idempotency key would make a second token",
           strerror(e));
  return cli_print_error(c->rid, &err);
}

int cli_finish(struct cli *c, unsigned need, int ex)
{
  struct ctkn_err err = {.code = CTKN_EIO};
  int e;

  if (need & CHANGES)
    return cli_flush_answer(c, ex);
  if (ex != 0 || (e = stdout_failed()) == 0)
    return ex;
  snprintf(err.msg, sizeof(err.msg),
           "the answer could not be written to stdout (%s); the command "
           "changed nothing: retry",
           strerror(e));
  return cli_print_error(c->rid, &err);
}

_Noreturn void cli_leave(struct cli *c, int ex)
{
  ex = cli_flush_answer(c, ex);
  cli_free(c);
  fflush(stderr);
  _exit(ex);
}

int cmd_help(struct cli *c)
{
  (void)c;
  fputs(usage_text, stdout);
  return 0;
}

int cmd_version(struct cli *c)
{
  struct ctkn_err err;
  char *json =
      ctkn_json_version(CTKN_VERSION, CTKN_SCHEMA_VERSION, CTKN_STORE_FORMAT);

  return cli_emit(c, json != NULL ? CTKN_OK : cli_oom(&err), json, &err);
}

/* ---- signals ------------------------------------------------------------ */

volatile sig_atomic_t cli_stop;
volatile sig_atomic_t cli_reload;

static void on_stop(int sig)
{
  (void)sig;
  cli_stop = 1;
}

static void on_hup(int sig)
{
  (void)sig;
  cli_reload = 1;
}

void cli_signals(unsigned what)
{
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  if (what & CLI_SIG_STOP) {
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
  }
  if (what & CLI_SIG_RELOAD) {
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
  }
  if (what & CLI_SIG_NOPIPE) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
}

/* ---- parsing ------------------------------------------------------------ */

static const char *const global_names[G_COUNT] = {
    "--brokers",  "--topic",     "--db",         "--environment", "--timeout",
    "--map-size", "--log-level", "--trust-root", "--writer-key",  "--help"};

static struct opt *find_opt(struct opt *tab, int n, const char *arg, size_t len)
{
  for (int i = 0; i < n && tab[i].name; i++) {
    if (strlen(tab[i].name) == len && strncmp(tab[i].name, arg, len) == 0)
      return &tab[i];
  }
  return NULL;
}

const struct opt *cli_opt(struct cli *c, const char *name)
{
  return find_opt(c->local, LOCAL_MAX, name, strlen(name));
}

const char *cli_value(struct cli *c, const char *name)
{
  const struct opt *o = cli_opt(c, name);

  return o ? o->value : NULL;
}

/* A positional argument: the command itself the first time, else one of
 * the command's arguments. */
static int take_positional(struct cli *c, const struct command *cmd, char *a,
                           bool *seen_command)
{
  if (!*seen_command && strcmp(a, c->command) == 0) {
    *seen_command = true;
    return 0;
  }
  if (c->npos >= 4 || cmd == NULL || c->npos >= cmd->npos + cmd->optpos)
    return cli_usage_error(c, "unexpected argument \"%.100s\"", a);
  c->pos[c->npos++] = a;
  return 0;
}

/* -X key=value or -Xkey=value: a librdkafka property. */
static int take_property(struct cli *c, int argc, char **argv, int *i)
{
  const char *a = argv[*i];
  const char *kv = a[2] ? a + 2 : (*i + 1 < argc ? argv[++*i] : NULL);
  struct ctkn_err err;

  if (kv == NULL)
    return cli_usage_error(c, "-X needs a key=value argument");
  if (ctkn_log_config_set(&c->log, kv, &err) != CTKN_OK)
    return cli_usage_error(c, "%s", err.msg);
  return 0;
}

/* --name, --name VALUE or --name=VALUE, global or the command's. */
static int take_option(struct cli *c, const struct command *cmd, int argc,
                       char **argv, int *i)
{
  const char *a = argv[*i];
  const char *eq = strchr(a, '=');
  size_t len = eq ? (size_t)(eq - a) : strlen(a);
  struct opt *o = find_opt(c->global, G_COUNT, a, len);

  if (o == NULL)
    o = find_opt(c->local, LOCAL_MAX, a, len);
  if (o == NULL)
    return cli_usage_error(c, "unknown option \"%.*s\"%s%s", (int)len, a,
                           cmd ? " for " : "", cmd ? cmd->name : "");
  if (o->kind == OPT_FLAG) {
    if (eq)
      return cli_usage_error(c, "%s takes no value", o->name);
    o->value = "";
    return 0;
  }
  if (eq)
    o->value = eq + 1;
  else if (*i + 1 < argc)
    o->value = argv[++*i];
  else
    return cli_usage_error(c, "%s needs a value", o->name);
  if (o->kind == OPT_LIST) {
    if (o->nlist == LIST_MAX)
      return cli_usage_error(c, "%s is given more than %d times", o->name,
                             LIST_MAX);
    o->list[o->nlist++] = o->value;
  }
  return 0;
}

/* Parse argv against the global and the command's options. */
static int parse_args(struct cli *c, const struct command *cmd, int argc,
                      char **argv)
{
  bool seen_command = false;
  int ex = 0;

  for (int i = 1; i < argc && ex == 0; i++) {
    char *a = argv[i];
    if (a[0] != '-' || a[1] == '\0')
      ex = take_positional(c, cmd, a, &seen_command);
    else if (strncmp(a, "-X", 2) == 0)
      ex = take_property(c, argc, argv, &i);
    else
      ex = take_option(c, cmd, argc, argv, &i);
  }
  if (ex != 0)
    return ex;
  if (cmd != NULL && c->npos < cmd->npos)
    return cli_usage_error(c, "%s needs %d argument%s", cmd->name, cmd->npos,
                           cmd->npos == 1 ? "" : "s");
  return 0;
}

const char *cli_env_or(const char *v, const char *var, const char *def)
{
  const char *e;

  if (v != NULL)
    return v;
  e = getenv(var);
  return e && *e ? e : def;
}

/* ---- values ------------------------------------------------------------ */

bool cli_parse_seconds(const char *s, int *ms)
{
  char *end;
  double v;

  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || *end != '\0' || v <= 0 || v > 86400)
    return false;
  *ms = (int)(v * 1000 + 0.5);
  return *ms > 0;
}

/* A size in bytes with an optional K, M, G or T suffix, at least 1 MiB. */
static bool parse_size(const char *s, size_t *out)
{
  char *end;
  unsigned long long v;

  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || end == s || s[0] == '-')
    return false;
  switch (*end) {
  case 'T':
    v <<= 10; /* fall through */
  case 'G':
    v <<= 10; /* fall through */
  case 'M':
    v <<= 10; /* fall through */
  case 'K':
    v <<= 10;
    end++;
    break;
  case '\0':
    break;
  default:
    return false;
  }
  if (*end != '\0' || v < (1u << 20))
    return false;
  *out = (size_t)v;
  return true;
}

bool cli_parse_count(const char *s, int max, int *out)
{
  char *end;
  long v;

  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0')
    return false;
  *out = v < 0 ? 0 : v > max ? max + 1 : (int)v;
  return true;
}

bool cli_parse_int(const char *s, long long lo, long long hi, long long *out)
{
  char *end;

  errno = 0;
  *out = strtoll(s, &end, 10);
  return errno == 0 && end != s && *end == '\0' && *out >= lo && *out <= hi;
}

bool cli_parse_bool(const char *s, bool *out)
{
  if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
    *out = true;
    return true;
  }
  if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
    *out = false;
    return true;
  }
  return false;
}

bool cli_parse_duration(const char *s, int64_t *ms)
{
  static const struct {
    const char *suffix;
    double ms;
  } units[] = {{"", 1},      {"ms", 1},      {"s", 1000},
               {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  char *end;
  double v;
  size_t u;

  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || v <= 0)
    return false;
  for (u = 0; u < sizeof(units) / sizeof(*units); u++)
    if (strcmp(end, units[u].suffix) == 0)
      break;
  if (u == sizeof(units) / sizeof(*units))
    return false;
  v *= units[u].ms;
  if (v < 1 || v > 365.0 * 86400000)
    return false;
  *ms = (int64_t)v;
  return true;
}

int cli_check_replication_factor(struct cli *c, int rf)
{
  struct ctkn_err err;

  if (rf >= 1 && rf <= 32)
    return 0;
  err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "replication_factor"};
  snprintf(err.msg, sizeof(err.msg), "must be 1-32");
  return cli_print_error(c->rid, &err);
}

/* ---- settings ------------------------------------------------------------ */

/* An invalid setting that is not a usage error: its own envelope. */
static int invalid(struct cli *c, const char *field, const char *msg)
{
  struct ctkn_err err = {.code = CTKN_EINVAL};

  snprintf(err.field, sizeof(err.field), "%s", field);
  snprintf(err.msg, sizeof(err.msg), "%s", msg);
  return cli_print_error(c->rid, &err);
}

/* Resolve flags, environment variables and defaults. */
/* --trust-root and --writer-key (a writer also judges: it reads its own
 * writes through the gate). */
static int resolve_trust(struct cli *c)
{
  const char *root =
      cli_env_or(c->global[G_TRUSTROOT].value, "CTKN_TRUST_ROOT", NULL);
  const char *wk =
      cli_env_or(c->global[G_WRITERKEY].value, "CTKN_WRITER_KEY", NULL);
  struct ctkn_err err;
  int ex;

  if (root != NULL && *root != '\0') {
    if ((ex = cli_load_pubkey(c, root, "trust_root", c->trust_root)) != 0)
      return ex;
    c->trust = true;
  }
  if (wk == NULL || *wk == '\0')
    return 0;
  if (!c->trust)
    return cli_usage_error(c, "--writer-key needs --trust-root FILE "
                              "[$CTKN_TRUST_ROOT]: a writer reads its own "
                              "writes through the trust gate");
  if (ctkn_seckey_load(&c->writer, wk, &err) != CTKN_OK) {
    if (err.field[0] == '\0')
      snprintf(err.field, sizeof(err.field), "writer_key");
    return cli_print_error(c->rid, &err);
  }
  return 0;
}

static int resolve_config(struct cli *c)
{
  struct ctkn_err err;
  const char *v;

  snprintf(
      c->log.brokers, sizeof(c->log.brokers), "%s",
      cli_env_or(c->global[G_BROKERS].value, "CTKN_BROKERS", "127.0.0.1:9092"));
  v = cli_env_or(c->global[G_TOPIC].value, "CTKN_TOPIC", "client_tokens");
  if (*v == '\0' || strlen(v) >= sizeof(c->log.topic))
    return invalid(c, "topic", "must be 1-249 characters");
  snprintf(c->log.topic, sizeof(c->log.topic), "%s", v);
  v = cli_env_or(c->global[G_DB].value, "CTKN_DB", "ctkn-db");
  if (strlen(v) >= sizeof(c->db))
    return cli_usage_error(c, "--db path is too long");
  snprintf(c->db, sizeof(c->db), "%s", v);
  v = cli_env_or(c->global[G_ENV].value, "CTKN_ENVIRONMENT", "sandbox");
  if (ctkn_env_parse(v, &c->env, &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  v = cli_env_or(c->global[G_TIMEOUT].value, "CTKN_TIMEOUT", "10");
  if (!cli_parse_seconds(v, &c->log.timeout_ms))
    return cli_usage_error(c,
                           "--timeout must be a number of seconds, not "
                           "\"%.40s\"",
                           v);
  v = cli_env_or(c->global[G_MAPSIZE].value, "CTKN_MAP_SIZE", NULL);
  if (v != NULL && !parse_size(v, &c->map_size))
    return cli_usage_error(c,
                           "--map-size must be a size like 64G, at least "
                           "1M, not \"%.40s\"",
                           v);
  enum ctkn_diag_level level;
  v = cli_env_or(c->global[G_LOGLEVEL].value, "CTKN_LOG_LEVEL", "info");
  if (ctkn_diag_level_parse(v, &level, &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  ctkn_diag_set_level(level);
  return resolve_trust(c);
}

/* The first argument that is neither an option nor an option's value. */
static const char *find_command(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == '\0')
      return a;
    if (strcmp(a, "-X") == 0) {
      i++;
      continue;
    }
    for (int g = 0; g < G_COUNT; g++) {
      if (g != G_HELP && strcmp(a, global_names[g]) == 0) {
        i++;
        break;
      }
    }
  }
  return NULL;
}

#define CLI_FETCH_WAIT_MS 10 /* ms; see cli_start() */

/* serve, --follow, and tail until --exit-at-end run until stopped. */
static bool long_running(struct cli *c, const struct command *cmd)
{
  if (strcmp(cmd->name, "serve") == 0 || cli_value(c, "--follow") != NULL)
    return true;
  return strcmp(cmd->name, "tail") == 0 &&
         cli_value(c, "--exit-at-end") == NULL;
}

/* Point c's option slots at the global options and cmd's (NULL: none). */
static void declare_options(struct cli *c, const struct command *cmd)
{
  for (int g = 0; g < G_COUNT; g++)
    c->global[g] = (struct opt){.name = global_names[g],
                                .kind = g == G_HELP ? OPT_FLAG : OPT_VALUE};
  for (int i = 0; cmd != NULL && i < LOCAL_MAX && cmd->local[i].name; i++)
    c->local[i] =
        (struct opt){.name = cmd->local[i].name, .kind = cmd->local[i].kind};
}

int cli_start(struct cli *c, const struct command *tab, size_t n, int argc,
              char **argv, const struct command **run)
{
  const struct command *cmd = NULL;
  int ex;

  *run = NULL;
  if (ctkn_request_id(c->rid) != CTKN_OK)
    strcpy(c->rid, "00000000-0000-4000-8000-000000000000");
  ctkn_log_config_init(&c->log);
  c->command = find_command(argc, argv);
  for (size_t i = 0; c->command && i < n; i++)
    if (strcmp(tab[i].name, c->command) == 0)
      cmd = &tab[i];
  declare_options(c, cmd);
  if (c->command == NULL)
    c->command = "";
  if ((ex = parse_args(c, cmd, argc, argv)) != 0)
    return ex;
  if (c->global[G_HELP].value != NULL)
    return cmd_help(c);
  if (cmd == NULL)
    return *c->command
               ? cli_usage_error(c, "unknown command \"%.60s\"", c->command)
               : cli_usage_error(c, "a command is required");
  if ((ex = resolve_config(c)) != 0 || (ex = cli_need(c, cmd->need)) != 0)
    return ex;
  /* A process that lives for one command waits less for an empty fetch:
   * its partitions are assigned while the first one is out (fetch_wait_ms
   * in ctkn/log.h). Followers keep the default: fewer idle fetches. */
  if (!long_running(c, cmd))
    c->log.fetch_wait_ms = CLI_FETCH_WAIT_MS;
  ctkn_log_process_init(&c->log); /* one thread so far */
  *run = cmd;
  return 0;
}

int cli_need(struct cli *c, unsigned need)
{
  if ((need & NEED_WRITER) && (!c->trust || c->writer == NULL))
    return cli_usage_error(c,
                           "%s appends to the log and needs --trust-root "
                           "FILE [$CTKN_TRUST_ROOT] and --writer-key FILE "
                           "[$CTKN_WRITER_KEY]: every appender signs, there "
                           "is no unsigned mode (ctkn trust key add)",
                           c->command);
  if ((need & NEED_ROOT) && !c->trust)
    return cli_usage_error(c,
                           "%s reads the log and needs --trust-root FILE "
                           "[$CTKN_TRUST_ROOT]: every record is judged by "
                           "the trust root, there is no unsigned mode (ctkn "
                           "trust init)",
                           c->command);
  return 0;
}

void cli_free(struct cli *c)
{
  ctkn_seckey_free(c->writer);
  c->writer = NULL;
  ctkn_log_config_free(&c->log);
}

/* ---- what commands share ----------------------------------------------- */

int cli_open_store(struct cli *c, bool write, ctkn_store **st)
{
  struct ctkn_store_opts opts = {.map_size = c->map_size, .read_only = !write};
  struct ctkn_err err;

  if (ctkn_store_open(st, c->db, &opts, &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  if (write && ctkn_store_bind(*st, c->log.topic, c->env, &err) != CTKN_OK) {
    ctkn_store_close(*st);
    *st = NULL;
    return cli_print_error(c->rid, &err);
  }
  return 0;
}

int cli_ledger_open(struct cli *c, ctkn_store *st, struct ctkn_ledger **l,
                    struct ctkn_err *err)
{
  /* NEED_WRITER: trusted, with a writer key */
  return ctkn_ledger_open_trusted(l, st, &c->log, c->env, c->trust_root,
                                  c->writer, err);
}

int cli_load_pubkey(struct cli *c, const char *path, const char *field,
                    uint8_t pub[CTKN_SIGN_PUB_LEN])
{
  struct ctkn_err err;

  if (ctkn_pubkey_load(path, pub, &err) == CTKN_OK)
    return 0;
  return invalid(c, field, err.msg);
}

int cli_dest_policy(struct cli *c, struct ctkn_dest_policy *p,
                    struct ctkn_cidr nets[LIST_MAX])
{
  const struct opt *o = cli_opt(c, "--allow-destination-network");
  const char *v = cli_value(c, "--max-active-destinations");
  struct ctkn_err err;
  long long n;

  *p = (struct ctkn_dest_policy){.env = c->env,
                                 .allow = nets,
                                 .trust_root = c->trust ? c->trust_root : NULL,
                                 .writer_key = c->writer};
  for (int i = 0; o != NULL && i < o->nlist; i++) {
    if (ctkn_cidr_parse(o->list[i], &nets[p->nallow], &err) != CTKN_OK)
      return cli_usage_error(c, "--allow-destination-network: %s", err.msg);
    p->nallow++;
  }
  if (v != NULL) {
    if (!cli_parse_int(v, 1, 10000, &n))
      return cli_usage_error(c,
                             "--max-active-destinations must be 1 to 10000, "
                             "not \"%.40s\"",
                             v);
    p->max_active = (int)n;
  }
  return 0;
}

int cli_load_key(struct cli *c, uint8_t key[CTKN_KEY_LEN], bool *have)
{
  const char *file = cli_env_or(cli_value(c, "--secret-key-file"),
                                "CTKN_SECRET_KEY_FILE", NULL);
  struct ctkn_err err;

  *have = false;
  if (file == NULL || *file == '\0')
    return 0;
  if (ctkn_key_load(file, key, &err) != CTKN_OK) {
    if (err.code == CTKN_EINVAL && err.field[0] == '\0')
      snprintf(err.field, sizeof(err.field), "secret_key_file");
    return cli_print_error(c->rid, &err);
  }
  *have = true;
  return 0;
}
