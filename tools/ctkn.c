/*
 * ctkn - the command-line tool. It parses arguments and calls libctkn;
 * every behaviour lives in the library, so tests can reach it there.
 *
 * Output: success is JSON on stdout; errors are Paddle's error envelope on
 * stderr. Exit: 0 success, 1 rejected request, 2 usage, 3 unavailable.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctkn/apikey.h"
#include "ctkn/archive.h"
#include "ctkn/codec.h"
#include "ctkn/error.h"
#include "ctkn/ledger.h"
#include "ctkn/log.h"
#include "ctkn/notify.h"
#include "ctkn/projector.h"
#include "ctkn/query.h"
#include "ctkn/server.h"
#include "ctkn/settings.h"
#include "ctkn/store.h"
#include "ctkn/stream.h"

#define CTKN_VERSION "0.1.0"

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
    "       [--order-by 'id[ASC]'|'id[DESC]']\n"
    "  verify TOKEN                exit 0 only for an active token\n"
    "  history ID                  the token's events, one JSON line each\n"
    "  digest                      offsets and SHA-256 of the projection\n"
    "  quarantine                  quarantined records, one JSON line each\n"
    "  status                      log and projection offsets, and lag\n"
    "  snapshot --out DIR          consistent compacted copy of --db, live\n"
    "  replay --as-of RFC3339      the projection as it stood then, frozen,\n"
    "                              into a new --db\n"
    "  replay --from-file FILE     the projection of an export, frozen, into\n"
    "                              a new --db\n"
    "  rebuild                     replay the log beside --db, then swap the\n"
    "                              new projection in atomically\n"
    "  export --out FILE           the whole log as a hash-chained archive\n"
    "  audit verify FILE           check an archive; print its hash, count\n"
    "  import --from-file FILE [--replication-factor N]\n"
    "                              an archive into a new, empty topic\n"
    "  tail [--from-beginning | --from RFC3339] [--type TYPE]...\n"
    "       [--group NAME] [--exit-at-end]\n"
    "                              events as webhook JSON lines; with a\n"
    "                              group, at least once, shared by members\n"
    "  serve --api-keys FILE [--listen ADDR:PORT] [--public-url URL]\n"
    "        [--tls-cert FILE --tls-key FILE] [--rate-limit N]\n"
    "        [--threads N] [--max-lag N] [--position-wait SECONDS]\n"
    "        [--client-timeout SECONDS] [--secret-key-file FILE]\n"
    "                              Paddle's HTTP API over a replica that\n"
    "                              follows the topic; SIGHUP reloads keys;\n"
    "                              the deployment key [$CTKN_SECRET_KEY_FILE]\n"
    "                              lets POST /notification-settings create\n"
    "  apikey create --name NAME\n"
    "         --permissions PERM[,PERM...]  client_token.read,\n"
    "                              client_token.write, notification_setting.\n"
    "                              read, notification_setting.write (a\n"
    "                              write implies its read)\n"
    "  apikey list\n"
    "  apikey revoke NAME\n"
    "                              API keys in --file FILE [$CTKN_API_KEYS];\n"
    "                              create prints the key, once; no Kafka\n"
    "  destination add --url URL --events TYPE[,TYPE...] [--description T]\n"
    "                  [--active false]   a webhook destination; prints its\n"
    "                              endpoint_secret_key, once\n"
    "  destination list | get ID\n"
    "  destination update ID [--url URL] [--events ...] [--active true|false]\n"
    "                     [--description TEXT | --no-description]\n"
    "  destination remove ID\n"
    "                              destinations need --secret-key-file FILE\n"
    "                              [$CTKN_SECRET_KEY_FILE] to add\n"
    "  notify [--follow] [--group NAME] [--request-timeout DUR]\n"
    "         [--max-age DUR] [--retry-initial DUR] [--retry-max DUR]\n"
    "         [--window N]        deliver signed webhooks (at least once)\n"
    "  notification list [--destination ID]\n"
    "                    [--status delivered,failed,pending]\n"
    "  notification get ID | logs ID | replay ID\n"
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
    "  -X key=value          librdkafka property (repeatable)\n"
    "\n"
    "exit: 0 ok, 1 request rejected, 2 usage error, 3 Kafka/LMDB "
    "unavailable\n";

/* ---- options --------------------------------------------------------- */

enum opt_kind { OPT_VALUE, OPT_FLAG, OPT_LIST };

#define LIST_MAX  8
#define LOCAL_MAX 12

struct opt {
  const char *name; /* "--name" */
  enum opt_kind kind;
  const char *value;          /* NULL when absent; "" for a present flag */
  const char *list[LIST_MAX]; /* OPT_LIST: every value, in order */
  int nlist;
};

struct cli {
  const char *command;
  const char *pos[4];
  int npos;
  struct opt global[8];
  struct opt local[LOCAL_MAX];
  struct ctkn_log_config log;
  char db[4096];
  ctkn_env env;
  size_t map_size;
  char rid[37];
};

enum { G_BROKERS, G_TOPIC, G_DB, G_ENV, G_TIMEOUT, G_MAPSIZE, G_HELP, G_COUNT };

static const char *const global_names[G_COUNT] = {
    "--brokers", "--topic",    "--db",  "--environment",
    "--timeout", "--map-size", "--help"};

/* Command-specific options. */
struct command {
  const char *name;
  const char *local[LOCAL_MAX];
  int npos; /* positional arguments required */
  int (*run)(struct cli *c);
  int optpos; /* further positional arguments allowed */
};

static int print_error(const char *rid, const struct ctkn_err *err)
{
  char *json = ctkn_json_error(err, rid);

  if (json != NULL)
    fprintf(stderr, "%s\n", json);
  else
    fprintf(stderr, "ctkn: %s: %s\n", ctkn_strerror(err->code), err->msg);
  free(json);
  return ctkn_error_exit(err->code);
}

__attribute__((format(printf, 2, 3))) static int
usage_error(struct cli *c, const char *fmt, ...)
{
  struct ctkn_err err = {.code = CTKN_EUSAGE};
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
  va_end(ap);
  print_error(c->rid, &err);
  fputs("run `ctkn help` for usage\n", stderr);
  return 2;
}

static struct opt *find_opt(struct opt *tab, int n, const char *arg, size_t len)
{
  for (int i = 0; i < n && tab[i].name; i++) {
    if (strlen(tab[i].name) == len && strncmp(tab[i].name, arg, len) == 0)
      return &tab[i];
  }
  return NULL;
}

static const char *local_value(struct cli *c, const char *name)
{
  struct opt *o = find_opt(c->local, LOCAL_MAX, name, strlen(name));
  return o ? o->value : NULL;
}

/* Parse argv against the global and the command's options. */
static int parse_args(struct cli *c, const struct command *cmd, int argc,
                      char **argv)
{
  int seen_command = 0;

  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    if (a[0] != '-' || a[1] == '\0') {
      if (!seen_command && strcmp(a, c->command) == 0) {
        seen_command = 1;
        continue;
      }
      if (c->npos >= 4 || cmd == NULL || c->npos >= cmd->npos + cmd->optpos)
        return usage_error(c, "unexpected argument \"%.100s\"", a);
      c->pos[c->npos++] = a;
      continue;
    }
    if (strncmp(a, "-X", 2) == 0) {
      const char *kv = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
      struct ctkn_err err;
      if (kv == NULL)
        return usage_error(c, "-X needs a key=value argument");
      if (ctkn_log_config_set(&c->log, kv, &err) != CTKN_OK)
        return usage_error(c, "%s", err.msg);
      continue;
    }
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    struct opt *o = find_opt(c->global, 8, a, len);
    if (o == NULL)
      o = find_opt(c->local, LOCAL_MAX, a, len);
    if (o == NULL)
      return usage_error(c, "unknown option \"%.*s\"%s%s", (int)len, a,
                         cmd ? " for " : "", cmd ? cmd->name : "");
    if (o->kind == OPT_FLAG) {
      if (eq)
        return usage_error(c, "%s takes no value", o->name);
      o->value = "";
      continue;
    }
    if (eq)
      o->value = eq + 1;
    else if (i + 1 < argc)
      o->value = argv[++i];
    else
      return usage_error(c, "%s needs a value", o->name);
    if (o->kind == OPT_LIST) {
      if (o->nlist == LIST_MAX)
        return usage_error(c, "%s is given more than %d times", o->name,
                           LIST_MAX);
      o->list[o->nlist++] = o->value;
    }
  }
  if (cmd != NULL && c->npos < cmd->npos)
    return usage_error(c, "%s needs %d argument%s", cmd->name, cmd->npos,
                       cmd->npos == 1 ? "" : "s");
  return 0;
}

static const char *env_or(const char *v, const char *var, const char *def)
{
  const char *e;

  if (v != NULL)
    return v;
  e = getenv(var);
  return e && *e ? e : def;
}

/* Parse a decimal number of seconds ("10", "2.5") into milliseconds. */
static bool parse_seconds(const char *s, int *ms)
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

/* Resolve flags, environment variables and defaults. */
static int resolve_config(struct cli *c)
{
  struct ctkn_err err;
  const char *v;

  snprintf(
      c->log.brokers, sizeof(c->log.brokers), "%s",
      env_or(c->global[G_BROKERS].value, "CTKN_BROKERS", "127.0.0.1:9092"));
  v = env_or(c->global[G_TOPIC].value, "CTKN_TOPIC", "client_tokens");
  if (*v == '\0' || strlen(v) >= sizeof(c->log.topic)) {
    err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "topic"};
    snprintf(err.msg, sizeof(err.msg), "must be 1-249 characters");
    return print_error(c->rid, &err);
  }
  snprintf(c->log.topic, sizeof(c->log.topic), "%s", v);
  v = env_or(c->global[G_DB].value, "CTKN_DB", "ctkn-db");
  if (strlen(v) >= sizeof(c->db))
    return usage_error(c, "--db path is too long");
  snprintf(c->db, sizeof(c->db), "%s", v);
  v = env_or(c->global[G_ENV].value, "CTKN_ENVIRONMENT", "sandbox");
  if (ctkn_env_parse(v, &c->env, &err) != CTKN_OK)
    return print_error(c->rid, &err);
  v = env_or(c->global[G_TIMEOUT].value, "CTKN_TIMEOUT", "10");
  if (!parse_seconds(v, &c->log.timeout_ms))
    return usage_error(c,
                       "--timeout must be a number of seconds, not "
                       "\"%.40s\"",
                       v);
  v = env_or(c->global[G_MAPSIZE].value, "CTKN_MAP_SIZE", NULL);
  if (v != NULL && !parse_size(v, &c->map_size))
    return usage_error(c,
                       "--map-size must be a size like 64G, not "
                       "\"%.40s\"",
                       v);
  return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static int open_store(struct cli *c, bool write, ctkn_store **st)
{
  struct ctkn_store_opts opts = {.map_size = c->map_size, .read_only = !write};
  struct ctkn_err err;
  int rc;

  if ((rc = ctkn_store_open(st, c->db, &opts, &err)) != CTKN_OK)
    return print_error(c->rid, &err);
  if (write &&
      (rc = ctkn_store_bind(*st, c->log.topic, c->env, &err)) != CTKN_OK) {
    ctkn_store_close(*st);
    *st = NULL;
    return print_error(c->rid, &err);
  }
  return 0;
}

static int oom_err(struct ctkn_err *err)
{
  *err = (struct ctkn_err){.code = CTKN_ENOMEM};
  snprintf(err->msg, sizeof(err->msg), "out of memory rendering JSON");
  return CTKN_ENOMEM;
}

static int emit(struct cli *c, int rc, char *json, const struct ctkn_err *err)
{
  if (rc != CTKN_OK) {
    free(json);
    return print_error(c->rid, err);
  }
  printf("%s\n", json);
  free(json);
  return 0;
}

/* ---- commands --------------------------------------------------------- */

static int cmd_version(struct cli *c)
{
  (void)c;
  printf("{\"data\":{\"version\":\"%s\",\"schema_version\":%d,"
         "\"store_format\":%d}}\n",
         CTKN_VERSION, CTKN_SCHEMA_VERSION, CTKN_STORE_FORMAT);
  return 0;
}

static int cmd_help(struct cli *c)
{
  (void)c;
  fputs(usage_text, stdout);
  return 0;
}

static bool parse_count(const char *s, int max, int *out)
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

static int cmd_init(struct cli *c)
{
  const char *ps = local_value(c, "--partitions");
  const char *rs = local_value(c, "--replication-factor");
  int parts = 6, rf = 1;
  struct ctkn_err err;
  bool created;
  int32_t have;

  if (ps && !parse_count(ps, 100000, &parts))
    return usage_error(c, "--partitions must be an integer");
  if (rs && !parse_count(rs, 1000, &rf))
    return usage_error(c, "--replication-factor must be an integer");
  if (parts < 1 || parts > CTKN_STORE_MAX_PARTITIONS) {
    err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "partitions"};
    snprintf(err.msg, sizeof(err.msg), "must be 1-%d",
             CTKN_STORE_MAX_PARTITIONS);
    return print_error(c->rid, &err);
  }
  if (rf < 1 || rf > 32) {
    err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "replication_factor"};
    snprintf(err.msg, sizeof(err.msg), "must be 1-32");
    return print_error(c->rid, &err);
  }
  /* The settings topic (notification destinations) has one partition:
   * its changes are few, and one total order keeps them simple. */
  struct ctkn_log_config scfg = c->log;
  bool screated = false;
  int32_t shave = 0;
  int rc =
      ctkn_settings_topic(c->log.topic, scfg.topic, sizeof(scfg.topic), &err);
  if (rc == CTKN_OK)
    rc = ctkn_log_create_topic(&c->log, parts, rf, &created, &have, &err);
  if (rc == CTKN_OK)
    rc = ctkn_log_create_topic(&scfg, 1, rf, &screated, &shave, &err);
  char *json = rc == CTKN_OK ? ctkn_json_topic(c->log.topic, have, rf, created,
                                               scfg.topic, shave, screated)
                             : NULL;
  if (rc == CTKN_OK && json == NULL)
    rc = oom_err(&err);
  return emit(c, rc, json, &err);
}

static int run_command(struct cli *c, const struct ctkn_command *cmd)
{
  struct ctkn_outcome out;
  struct ctkn_err err;
  ctkn_ledger *l = NULL;
  ctkn_store *st = NULL;
  char *json = NULL;
  int rc, ex;

  if ((ex = open_store(c, true, &st)) != 0)
    return ex;
  rc = ctkn_ledger_open(&l, st, &c->log, c->env, &err);
  if (rc == CTKN_OK)
    rc = ctkn_ledger_execute(l, cmd, &out, &err);
  if (rc == CTKN_OK &&
      (json = ctkn_json_data(&out.record.token, c->rid)) == NULL)
    rc = oom_err(&err);
  ctkn_ledger_close(l);
  ctkn_store_close(st);
  return emit(c, rc, json, &err);
}

/* Apply a text option through a command setter; 1 on a rule violation. */
static int set_text(struct cli *c, struct ctkn_command *cmd, const char *name,
                    int (*set)(struct ctkn_command *, const char *, size_t,
                               struct ctkn_err *))
{
  const char *v = local_value(c, name);
  struct ctkn_err err;

  if (v != NULL && set(cmd, v, strlen(v), &err) != CTKN_OK)
    return print_error(c->rid, &err);
  return 0;
}

/*
 * create --batch: one POST /client-tokens body per line of stdin, run in
 * chunks whose events are in flight together; one output line per input
 * line, in order: the data document, or the error envelope. Exit: the
 * worst of the lines (3 beats 1 beats 0).
 */
static int create_batch(struct cli *c)
{
  enum { CHUNK = 512 };
  struct ctkn_command *cmds = calloc(CHUNK, sizeof(*cmds));
  struct ctkn_outcome *outs = calloc(CHUNK, sizeof(*outs));
  struct ctkn_err *errs = calloc(CHUNK, sizeof(*errs));
  int *rcs = calloc(CHUNK, sizeof(*rcs));
  bool *parsed = calloc(CHUNK, sizeof(*parsed));
  struct ctkn_err err;
  ctkn_ledger *l = NULL;
  ctkn_store *st = NULL;
  char *line = NULL;
  size_t cap = 0;
  int worst = 0, ex;

  if (cmds == NULL || outs == NULL || errs == NULL || rcs == NULL ||
      parsed == NULL) {
    ex = print_error(c->rid, (oom_err(&err), &err));
    goto out;
  }
  if ((ex = open_store(c, true, &st)) != 0)
    goto out;
  if (ctkn_ledger_open(&l, st, &c->log, c->env, &err) != CTKN_OK) {
    ex = print_error(c->rid, &err);
    goto out;
  }
  for (bool eof = false; !eof;) {
    size_t n = 0, todo = 0;
    while (n < CHUNK) {
      ssize_t len = getline(&line, &cap, stdin);
      if (len < 0) {
        eof = true;
        break;
      }
      if (len > 0 && line[len - 1] == '\n')
        line[--len] = '\0';
      parsed[n] = ctkn_json_parse_create(line, (size_t)len, &cmds[n],
                                         &errs[n]) == CTKN_OK;
      rcs[n] = parsed[n] ? CTKN_OK : errs[n].code;
      todo += parsed[n];
      n++;
    }
    if (n == 0)
      break;
    /* Run the parsed commands as one batch, then put the results back in
     * input order. */
    struct ctkn_command *run = calloc(todo ? todo : 1, sizeof(*run));
    struct ctkn_outcome *ro = calloc(todo ? todo : 1, sizeof(*ro));
    struct ctkn_err *re = calloc(todo ? todo : 1, sizeof(*re));
    int *rr = calloc(todo ? todo : 1, sizeof(*rr));
    if (run == NULL || ro == NULL || re == NULL || rr == NULL) {
      free(run), free(ro), free(re), free(rr);
      ex = print_error(c->rid, (oom_err(&err), &err));
      goto out;
    }
    for (size_t i = 0, k = 0; i < n; i++)
      if (parsed[i])
        run[k++] = cmds[i];
    if (todo > 0)
      ctkn_ledger_execute_batch(l, run, todo, ro, rr, re);
    for (size_t i = 0, k = 0; i < n; i++) {
      char *json;
      if (parsed[i]) {
        rcs[i] = rr[k];
        errs[i] = re[k];
        outs[i] = ro[k++];
      }
      if (rcs[i] == CTKN_OK)
        json = ctkn_json_data(&outs[i].record.token, NULL);
      else
        json = ctkn_json_error(&errs[i], NULL);
      printf("%s\n", json ? json : "{}");
      free(json);
      int e = ctkn_error_exit(rcs[i]);
      worst = e > worst ? e : worst;
    }
    free(run), free(ro), free(re), free(rr);
    fflush(stdout);
  }
  ex = worst;
out:
  free(line);
  ctkn_ledger_close(l);
  ctkn_store_close(st);
  free(cmds), free(outs), free(errs), free(rcs), free(parsed);
  return ex;
}

static int cmd_create(struct cli *c)
{
  struct ctkn_command cmd;
  int ex;

  if (local_value(c, "--batch")) {
    if (local_value(c, "--name") || local_value(c, "--description") ||
        local_value(c, "--idempotency-key"))
      return usage_error(c, "--batch reads its requests from stdin; it "
                            "takes no --name, --description or "
                            "--idempotency-key");
    return create_batch(c);
  }
  ctkn_command_init(&cmd, CTKN_CMD_CREATE);
  if (local_value(c, "--name") == NULL)
    return usage_error(c, "create needs --name");
  if ((ex = set_text(c, &cmd, "--name", ctkn_command_set_name)) ||
      (ex = set_text(c, &cmd, "--description", ctkn_command_set_description)) ||
      (ex = set_text(c, &cmd, "--idempotency-key",
                     ctkn_command_set_idempotency_key)))
    return ex;
  return run_command(c, &cmd);
}

static int with_id(struct cli *c, struct ctkn_command *cmd, ctkn_cmd_kind k)
{
  struct ctkn_err err;

  ctkn_command_init(cmd, k);
  if (ctkn_command_set_id(cmd, c->pos[0], &err) != CTKN_OK)
    return print_error(c->rid, &err);
  return 0;
}

static int cmd_update(struct cli *c)
{
  const char *status = local_value(c, "--status");
  struct ctkn_command cmd;
  struct ctkn_err err;
  int ex;

  if ((ex = with_id(c, &cmd, CTKN_CMD_UPDATE)) ||
      (ex = set_text(c, &cmd, "--name", ctkn_command_set_name)) ||
      (ex = set_text(c, &cmd, "--description", ctkn_command_set_description)))
    return ex;
  if (local_value(c, "--no-description")) {
    if (local_value(c, "--description"))
      return usage_error(c, "--description and --no-description exclude "
                            "each other");
    ctkn_command_set_description(&cmd, NULL, 0, NULL);
  }
  if (status && ctkn_command_set_status(&cmd, status, &err) != CTKN_OK)
    return print_error(c->rid, &err);
  return run_command(c, &cmd);
}

static int cmd_revoke(struct cli *c)
{
  struct ctkn_command cmd;
  int ex;

  if ((ex = with_id(c, &cmd, CTKN_CMD_REVOKE)))
    return ex;
  return run_command(c, &cmd);
}

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
  (void)sig;
  stop_flag = 1;
}

static int cmd_project(struct cli *c)
{
  struct ctkn_projector_stats stats;
  struct ctkn_err err;
  ctkn_projector *p = NULL;
  ctkn_store *st = NULL;
  int rc, ex;

  if ((ex = open_store(c, true, &st)) != 0)
    return ex;
  rc = ctkn_projector_open(&p, st, &c->log, c->env, &err);
  if (rc == CTKN_OK && local_value(c, "--follow")) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = ctkn_projector_follow(p, &stop_flag, &err);
  } else if (rc == CTKN_OK) {
    rc = ctkn_projector_catch_up(p, NULL, 0, &err);
  }
  char *json = NULL;
  if (rc == CTKN_OK) {
    ctkn_projector_stats(p, &stats);
    if ((json = ctkn_json_project_stats(stats.applied, stats.rejected,
                                        stats.quarantined, stats.skipped,
                                        stats.paused)) == NULL)
      rc = oom_err(&err);
  }
  ctkn_projector_close(p);
  ctkn_store_close(st);
  return emit(c, rc, json, &err);
}

static int cmd_get(struct cli *c)
{
  struct ctkn_err err;
  ctkn_store *st;
  char *json = NULL;
  int rc, ex;

  if (!ctkn_id_valid("ctkn_", c->pos[0])) {
    err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "id"};
    snprintf(err.msg, sizeof(err.msg), "must match ^ctkn_[a-z0-9]{26}$");
    return print_error(c->rid, &err);
  }
  if ((ex = open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_get(st, c->pos[0], c->rid, &json, &err);
  ctkn_store_close(st);
  return emit(c, rc, json, &err);
}

static int cmd_list(struct cli *c)
{
  struct ctkn_list_params p;
  struct ctkn_err err;
  const char *v;
  ctkn_store *st;
  char *json = NULL;
  int rc, ex;

  ctkn_list_params_init(&p);
  if ((v = local_value(c, "--per-page")) != NULL) {
    if (v[0] < '0' || v[0] > '9' || strspn(v, "0123456789") != strlen(v))
      return usage_error(c, "--per-page must be an integer, not \"%.40s\"", v);
    if (ctkn_list_params_per_page(&p, v, &err) != CTKN_OK)
      return print_error(c->rid, &err);
  }
  if (((v = local_value(c, "--status")) &&
       ctkn_list_params_status(&p, v, &err) != CTKN_OK) ||
      ((v = local_value(c, "--after")) &&
       ctkn_list_params_after(&p, v, &err) != CTKN_OK) ||
      ((v = local_value(c, "--order-by")) &&
       ctkn_list_params_order_by(&p, v, &err) != CTKN_OK))
    return print_error(c->rid, &err);
  if ((ex = open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_list(st, &p, NULL, true, c->rid, &json, &err);
  ctkn_store_close(st);
  return emit(c, rc, json, &err);
}

static int cmd_verify(struct cli *c)
{
  struct ctkn_err err;
  ctkn_store *st;
  char *json = NULL;
  bool active = false;
  int rc, ex;

  if ((ex = open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_verify(st, c->pos[0], c->rid, &json, &active, &err);
  ctkn_store_close(st);
  ex = emit(c, rc, json, &err);
  /* Known but revoked: the JSON says so, and the exit status too. */
  return ex == 0 && !active ? 1 : ex;
}

static int cmd_history(struct cli *c)
{
  struct ctkn_err err;
  ctkn_store *st;
  int rc, ex;

  if ((ex = open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_history(st, c->pos[0], stdout, &err);
  ctkn_store_close(st);
  return rc == CTKN_OK ? 0 : print_error(c->rid, &err);
}

static int cmd_digest(struct cli *c)
{
  struct ctkn_err err;
  ctkn_store *st;
  char *json = NULL;
  int rc, ex;

  if ((ex = open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_digest(st, &json, &err);
  ctkn_store_close(st);
  return emit(c, rc, json, &err);
}

static int cmd_quarantine(struct cli *c)
{
  struct ctkn_err err;
  ctkn_store *st;
  int rc, ex;

  if ((ex = open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_query_quarantine(st, stdout, &err);
  ctkn_store_close(st);
  return rc == CTKN_OK ? 0 : print_error(c->rid, &err);
}

static int cmd_status(struct cli *c)
{
  struct ctkn_partition_status *parts = NULL;
  struct ctkn_err err;
  ctkn_projector *p = NULL;
  ctkn_store *st = NULL;
  char *json = NULL;
  int32_t n = 0;
  int rc, ex;

  if ((ex = open_store(c, true, &st)) != 0)
    return ex;
  rc = ctkn_projector_open(&p, st, &c->log, c->env, &err);
  if (rc == CTKN_OK)
    rc = ctkn_projector_status(p, &parts, &n, &err);
  if (rc == CTKN_OK &&
      (json = ctkn_json_status(c->log.topic, parts, (size_t)n)) == NULL)
    rc = oom_err(&err);
  free(parts);
  ctkn_projector_close(p);
  ctkn_store_close(st);
  return emit(c, rc, json, &err);
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
static int cmd_snapshot(struct cli *c)
{
  const char *out = local_value(c, "--out");
  struct ctkn_err err;
  ctkn_store *st = NULL;
  char *json = NULL;
  int rc, ex;

  if (out == NULL || *out == '\0')
    return usage_error(c, "snapshot needs --out DIR");
  if ((ex = open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_store_snapshot(st, out, &err);
  ctkn_store_close(st);
  if (rc == CTKN_OK)
    rc = digest_of(out, &json, &err);
  return emit(c, rc, json, &err);
}

/* replay --as-of T: the projection exactly as it stood at T, frozen, in a
 * new --db; --from-file: the projection of an archive. Prints its digest.
 * A failed replay leaves no directory it created. */
static int cmd_replay(struct cli *c)
{
  const char *as_of = local_value(c, "--as-of");
  struct ctkn_err err;
  ctkn_projector *p = NULL;
  ctkn_store *st = NULL;
  char path[4200], *json = NULL;
  struct stat sb;
  int64_t us;
  int rc, ex;

  const char *file = local_value(c, "--from-file");

  if ((as_of == NULL) == (file == NULL))
    return usage_error(c, "replay needs --as-of RFC3339 or --from-file FILE");
  if (file == NULL && ctkn_time_parse(as_of, &us, &err) != CTKN_OK) {
    snprintf(err.field, sizeof(err.field), "as_of");
    return print_error(c->rid, &err);
  }
  snprintf(path, sizeof(path), "%s/data.mdb", c->db);
  if (stat(path, &sb) == 0) {
    err = (struct ctkn_err){.code = CTKN_ECONFLICT};
    snprintf(err.msg, sizeof(err.msg),
             "%.200s already holds a projection; replay into a new --db",
             c->db);
    return print_error(c->rid, &err);
  }
  if (file != NULL) {
    /* Bound to the archive's topic, not --topic: no Kafka is involved. */
    struct ctkn_store_opts opts = {.map_size = c->map_size};
    struct ctkn_archive_info info;
    bool existed = stat(c->db, &sb) == 0;
    if ((rc = ctkn_store_open(&st, c->db, &opts, &err)) == CTKN_OK &&
        (rc = ctkn_archive_replay(file, st, c->env, &info, &err)) == CTKN_OK)
      ctkn_archive_info_free(&info);
    ctkn_store_close(st);
    if (rc == CTKN_OK)
      rc = digest_of(c->db, &json, &err);
    else if (!existed)
      ctkn_store_remove(c->db);
    return emit(c, rc, json, &err);
  }
  bool existed = stat(c->db, &sb) == 0;
  if ((ex = open_store(c, true, &st)) != 0)
    return ex;
  rc = ctkn_projector_open(&p, st, &c->log, c->env, &err);
  if (rc == CTKN_OK)
    rc = ctkn_projector_replay(p, us, &err);
  ctkn_projector_close(p);
  ctkn_store_close(st);
  if (rc == CTKN_OK)
    rc = digest_of(c->db, &json, &err);
  else if (!existed)
    ctkn_store_remove(c->db);
  return emit(c, rc, json, &err);
}

/* rebuild: the projection in --db replayed afresh beside it and swapped
 * in atomically; prints the new projection's digest. */
static int cmd_rebuild(struct cli *c)
{
  struct ctkn_projector_stats stats;
  struct ctkn_err err;
  char *json = NULL;

  int rc =
      ctkn_projector_rebuild(c->db, &c->log, c->env, c->map_size, &stats, &err);
  if (rc == CTKN_OK) {
    fprintf(stderr,
            "ctkn rebuild: %s rebuilt (%" PRIu64 " applied, %" PRIu64
            " rejected, %" PRIu64 " quarantined); the old projection is in "
            "%s.previous\n",
            c->db, stats.applied, stats.rejected, stats.quarantined, c->db);
    rc = digest_of(c->db, &json, &err);
  }
  return emit(c, rc, json, &err);
}

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
      rc = oom_err(err);
  }
  return emit(c, rc, json, err);
}

/* export --out FILE: the whole log, hash-chained. */
static int cmd_export(struct cli *c)
{
  const char *out = local_value(c, "--out");
  struct ctkn_archive_info info;
  struct ctkn_err err;

  if (out == NULL || *out == '\0')
    return usage_error(c, "export needs --out FILE");
  int rc = ctkn_archive_export(&c->log, out, &info, &err);
  return emit_archive(c, rc, &info, &err);
}

/* audit verify FILE: check an archive's chain; print its hash and count. */
static int cmd_audit(struct cli *c)
{
  struct ctkn_archive_info info;
  struct ctkn_err err;

  if (strcmp(c->pos[0], "verify") != 0)
    return usage_error(c, "unknown audit command \"%.40s\" (try verify)",
                       c->pos[0]);
  int rc = ctkn_archive_read(c->pos[1], NULL, NULL, &info, &err);
  return emit_archive(c, rc, &info, &err);
}

/* import --from-file FILE: an archive into a new, empty topic. */
static int cmd_import(struct cli *c)
{
  const char *file = local_value(c, "--from-file");
  const char *rs = local_value(c, "--replication-factor");
  struct ctkn_archive_info info;
  struct ctkn_err err;
  int rf = 1;

  if (file == NULL || *file == '\0')
    return usage_error(c, "import needs --from-file FILE");
  if (rs && !parse_count(rs, 1000, &rf))
    return usage_error(c, "--replication-factor must be an integer");
  if (rf < 1 || rf > 32) {
    err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "replication_factor"};
    snprintf(err.msg, sizeof(err.msg), "must be 1-32");
    return print_error(c->rid, &err);
  }
  int rc = ctkn_archive_import(file, &c->log, rf, &info, &err);
  if (rc == CTKN_OK) /* report the topic written, not the exported one */
    snprintf(info.topic, sizeof(info.topic), "%s", c->log.topic);
  return emit_archive(c, rc, &info, &err);
}

/*
 * tail: events as webhook JSON lines, following the topic until SIGINT or
 * SIGTERM (or, with --exit-at-end, the end as it stood at the start).
 */
static int cmd_tail(struct cli *c)
{
  struct ctkn_tail_opts o = {.start = CTKN_START_END, .stop = &stop_flag};
  struct ctkn_tail_stats stats;
  const struct opt *types = find_opt(c->local, LOCAL_MAX, "--type", 6);
  const char *from = local_value(c, "--from");
  struct ctkn_err err;
  struct sigaction sa;

  if (from != NULL && local_value(c, "--from-beginning"))
    return usage_error(c, "--from and --from-beginning exclude each other");
  if (local_value(c, "--from-beginning"))
    o.start = CTKN_START_BEGINNING;
  if (from != NULL) {
    int64_t us;
    if (ctkn_time_parse(from, &us, &err) != CTKN_OK) {
      snprintf(err.field, sizeof(err.field), "from");
      return print_error(c->rid, &err);
    }
    o.start = CTKN_START_TIME;
    o.from_ms = us / 1000;
  }
  for (int i = 0; types != NULL && i < types->nlist; i++) {
    ctkn_event_type t = ctkn_event_type_parse(types->list[i]);
    if (t == 0) {
      err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "type"};
      snprintf(err.msg, sizeof(err.msg),
               "must be client_token.created, client_token.updated or "
               "client_token.revoked, not \"%.60s\"",
               types->list[i]);
      return print_error(c->rid, &err);
    }
    o.type_mask |= 1u << t;
  }
  o.group = local_value(c, "--group");
  o.exit_at_end = local_value(c, "--exit-at-end") != NULL;
  if (o.group != NULL && o.exit_at_end)
    return usage_error(c, "--exit-at-end cannot be used with --group");
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN); /* a closed reader is an error, not a death */
  if (ctkn_tail(&c->log, &o, stdout, &stats, &err) != CTKN_OK)
    return print_error(c->rid, &err);
  return 0;
}

static volatile sig_atomic_t reload_flag;

static void on_hup(int sig)
{
  (void)sig;
  reload_flag = 1;
}

/* A whole number in [lo, hi] from a flag, or false. */
static bool parse_int(const char *s, long long lo, long long hi, long long *out)
{
  char *end;

  errno = 0;
  *out = strtoll(s, &end, 10);
  return errno == 0 && end != s && *end == '\0' && *out >= lo && *out <= hi;
}

static int cmd_serve(struct cli *c)
{
  struct ctkn_server_config cfg;
  struct ctkn_err err;
  struct sigaction sa;
  ctkn_store *st = NULL;
  const char *v;
  long long n;
  int ms, rc, ex;

  ctkn_server_config_init(&cfg);
  cfg.log = &c->log;
  cfg.env = c->env;
  cfg.listen = env_or(local_value(c, "--listen"), "CTKN_LISTEN", cfg.listen);
  cfg.api_keys = env_or(local_value(c, "--api-keys"), "CTKN_API_KEYS", NULL);
  cfg.public_url =
      env_or(local_value(c, "--public-url"), "CTKN_PUBLIC_URL", NULL);
  cfg.tls_cert = local_value(c, "--tls-cert");
  cfg.tls_key = local_value(c, "--tls-key");
  cfg.secret_key_file =
      env_or(local_value(c, "--secret-key-file"), "CTKN_SECRET_KEY_FILE", NULL);
  if (cfg.secret_key_file != NULL && *cfg.secret_key_file == '\0')
    cfg.secret_key_file = NULL;
  if (cfg.api_keys == NULL)
    return usage_error(c, "serve needs --api-keys FILE (or $CTKN_API_KEYS); "
                          "make one with `ctkn apikey create`");
  if ((v = env_or(local_value(c, "--rate-limit"), "CTKN_RATE_LIMIT", NULL))) {
    char *end;
    errno = 0;
    cfg.rate_limit = strtod(v, &end);
    if (errno || end == v || *end != '\0' || !(cfg.rate_limit >= 0) ||
        cfg.rate_limit > 1e9)
      return usage_error(c,
                         "--rate-limit must be requests per second per key "
                         "(0: none), not \"%.40s\"",
                         v);
  }
  if ((v = local_value(c, "--threads"))) {
    if (!parse_int(v, 1, 64, &n))
      return usage_error(c, "--threads must be 1 to 64, not \"%.40s\"", v);
    cfg.threads = (int)n;
  }
  if ((v = local_value(c, "--max-lag"))) {
    if (!parse_int(v, 0, INT64_MAX, &n))
      return usage_error(c,
                         "--max-lag must be a count of events, not "
                         "\"%.40s\"",
                         v);
    cfg.max_lag = n;
  }
  if ((v = local_value(c, "--position-wait"))) {
    if (!parse_seconds(v, &ms))
      return usage_error(c, "--position-wait must be seconds, not \"%.40s\"",
                         v);
    cfg.position_wait_ms = ms;
  }
  if ((v = local_value(c, "--client-timeout"))) {
    if (!parse_seconds(v, &ms) || ms < 1000)
      return usage_error(c,
                         "--client-timeout must be whole seconds, not "
                         "\"%.40s\"",
                         v);
    cfg.client_timeout_s = ms / 1000;
  }
  if ((ex = open_store(c, true, &st)) != 0)
    return ex;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
  rc = ctkn_server_run(st, &cfg, &stop_flag, &reload_flag, &err);
  ctkn_store_close(st);
  if (rc != CTKN_OK)
    return print_error(c->rid, &err);
  return 0;
}

/* ---- apikey ------------------------------------------------------------ */

/* apikey create|list|revoke: the key file named by --file or
 * $CTKN_API_KEYS. No Kafka and no projection are involved. */
static int cmd_apikey(struct cli *c)
{
  const char *sub = c->pos[0];
  const char *file = env_or(local_value(c, "--file"), "CTKN_API_KEYS", NULL);
  const char *name = local_value(c, "--name");
  const char *perms = local_value(c, "--permissions");
  bool create = strcmp(sub, "create") == 0;
  bool revoke = strcmp(sub, "revoke") == 0;
  struct ctkn_err err;
  char *json = NULL;
  int rc;

  if (!create && !revoke && strcmp(sub, "list") != 0)
    return usage_error(c,
                       "unknown apikey command \"%.40s\" (try create, list "
                       "or revoke)",
                       sub);
  if (c->npos != (revoke ? 2 : 1))
    return revoke ? usage_error(c, "apikey revoke needs a NAME")
                  : usage_error(c, "apikey %s takes no NAME; use --name", sub);
  if (!create && (name != NULL || perms != NULL))
    return usage_error(c, "--name and --permissions are for apikey create");
  if (file == NULL || *file == '\0')
    return usage_error(c, "apikey needs --file FILE or $CTKN_API_KEYS");

  if (create) {
    char key[CTKN_APIKEY_BUF];
    struct ctkn_apikey k;
    unsigned bits;

    if (name == NULL || perms == NULL)
      return usage_error(c, "apikey create needs --name and --permissions");
    if (ctkn_perms_parse(perms, &bits, &err) != CTKN_OK)
      return print_error(c->rid, &err);
    rc = ctkn_apikey_create(file, name, bits, key, &k, &err);
    if (rc == CTKN_OK && (json = ctkn_json_apikey_created(&k, key)) == NULL)
      rc = oom_err(&err);
    ctkn_wipe(key, sizeof(key));
    rc = emit(c, rc, json, &err);
    return rc;
  }
  if (revoke) {
    rc = ctkn_apikey_revoke(file, c->pos[1], &err);
    if (rc == CTKN_OK && (json = ctkn_json_apikey_revoked(c->pos[1])) == NULL)
      rc = oom_err(&err);
    return emit(c, rc, json, &err);
  }
  ctkn_apikeys *ks = NULL;
  rc = ctkn_apikeys_load(file, &ks, &err);
  if (rc == CTKN_OK && (json = ctkn_json_apikey_list(ks)) == NULL)
    rc = oom_err(&err);
  ctkn_apikeys_free(ks);
  return emit(c, rc, json, &err);
}

/* ---- notification destinations and delivery ------------------------ */

/* The deployment key from --secret-key-file or $CTKN_SECRET_KEY_FILE. */
static int load_key(struct cli *c, uint8_t key[CTKN_KEY_LEN], bool *have)
{
  const char *file =
      env_or(local_value(c, "--secret-key-file"), "CTKN_SECRET_KEY_FILE", NULL);
  struct ctkn_err err;

  *have = false;
  if (file == NULL || *file == '\0')
    return 0;
  if (ctkn_key_load(file, key, &err) != CTKN_OK) {
    if (err.code == CTKN_EINVAL && err.field[0] == '\0')
      snprintf(err.field, sizeof(err.field), "secret_key_file");
    return print_error(c->rid, &err);
  }
  *have = true;
  return 0;
}

static bool parse_bool(const char *s, bool *out)
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

static int dest_setters(struct cli *c, struct ctkn_dest_command *cmd)
{
  const char *url = local_value(c, "--url");
  const char *events = local_value(c, "--events");
  const char *desc = local_value(c, "--description");
  const char *active = local_value(c, "--active");
  struct ctkn_err err;
  bool on;

  if (url && ctkn_dest_command_set_url(cmd, url, &err) != CTKN_OK)
    return print_error(c->rid, &err);
  if (events && ctkn_dest_command_set_events(cmd, events, &err) != CTKN_OK)
    return print_error(c->rid, &err);
  if (desc && ctkn_dest_command_set_description(cmd, desc, strlen(desc),
                                                &err) != CTKN_OK)
    return print_error(c->rid, &err);
  if (local_value(c, "--no-description")) {
    if (desc)
      return usage_error(c, "--description and --no-description exclude "
                            "each other");
    ctkn_dest_command_set_description(cmd, NULL, 0, NULL);
  }
  if (active) {
    if (!parse_bool(active, &on))
      return usage_error(c, "--active must be true or false, not \"%.20s\"",
                         active);
    ctkn_dest_command_set_active(cmd, on);
  }
  return 0;
}

static int cmd_destination(struct cli *c)
{
  const char *sub = c->pos[0];
  bool add = strcmp(sub, "add") == 0, update = strcmp(sub, "update") == 0;
  bool remove = strcmp(sub, "remove") == 0, get = strcmp(sub, "get") == 0;
  bool list = strcmp(sub, "list") == 0;
  struct ctkn_dest_command cmd;
  struct ctkn_dest_outcome out;
  uint8_t key[CTKN_KEY_LEN];
  struct ctkn_err err;
  ctkn_store *st = NULL;
  char *json = NULL;
  bool have_key;
  int rc, ex;

  if (!add && !update && !remove && !get && !list)
    return usage_error(c,
                       "unknown destination command \"%.40s\" (try add, "
                       "list, get, update or remove)",
                       sub);
  if (c->npos != (add || list ? 1 : 2))
    return add || list ? usage_error(c, "destination %s takes no ID", sub)
                       : usage_error(c, "destination %s needs an ID", sub);
  if (!add && !update &&
      (local_value(c, "--url") || local_value(c, "--events") ||
       local_value(c, "--description") || local_value(c, "--no-description") ||
       local_value(c, "--active")))
    return usage_error(c,
                       "destination %s takes no --url, --events, "
                       "--description or --active",
                       sub);
  if (list || get) {
    ctkn_store_txn *txn = NULL;
    if ((ex = open_store(c, false, &st)) != 0)
      return ex;
    rc = ctkn_store_begin(st, false, &txn, &err);
    if (rc == CTKN_OK && list) {
      struct ctkn_destination *ds = NULL;
      size_t n = 0;
      rc = ctkn_settings_list(txn, &ds, &n, &err);
      if (rc == CTKN_OK &&
          (json = ctkn_json_destinations(ds, n, c->rid)) == NULL)
        rc = oom_err(&err);
      free(ds);
    } else if (rc == CTKN_OK) {
      struct ctkn_destination d;
      rc = ctkn_settings_get(txn, c->pos[1], false, &d, &err);
      if (rc == CTKN_OK &&
          (json = ctkn_json_destination(&d, NULL, c->rid)) == NULL)
        rc = oom_err(&err);
    }
    ctkn_store_abort(txn);
    ctkn_store_close(st);
    return emit(c, rc, json, &err);
  }

  ctkn_dest_command_init(&cmd, add      ? CTKN_DEST_ADD
                               : update ? CTKN_DEST_UPDATE
                                        : CTKN_DEST_REMOVE);
  if (!add && ctkn_dest_command_set_id(&cmd, c->pos[1], &err) != CTKN_OK)
    return print_error(c->rid, &err);
  if ((ex = dest_setters(c, &cmd)) != 0)
    return ex;
  if (add && (!cmd.set_url || !cmd.set_events))
    return usage_error(c, "destination add needs --url and --events");
  if ((ex = load_key(c, key, &have_key)) != 0)
    return ex;
  if (add && !have_key)
    return usage_error(c, "destination add needs --secret-key-file FILE or "
                          "$CTKN_SECRET_KEY_FILE (32 random bytes, or 64 hex "
                          "characters, mode 0600)");
  if ((ex = open_store(c, true, &st)) != 0) {
    ctkn_wipe(key, sizeof(key));
    return ex;
  }
  rc = ctkn_settings_execute(st, &c->log, have_key ? key : NULL, &cmd, &out,
                             &err);
  ctkn_wipe(key, sizeof(key));
  if (rc == CTKN_OK) {
    if (remove) {
      if ((json = strdup("{\"data\":null}")) == NULL)
        rc = oom_err(&err);
    } else if ((json = ctkn_json_destination(&out.dest, add ? out.secret : NULL,
                                             c->rid)) == NULL) {
      rc = oom_err(&err);
    }
  }
  ctkn_wipe(out.secret, sizeof(out.secret));
  ctkn_store_close(st);
  ex = emit(c, rc, json, &err);
  return ex;
}

/* "30s", "15m", "72h", "500ms" or plain milliseconds. */
static bool parse_duration(const char *s, int64_t *ms)
{
  char *end;
  double v;

  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || v <= 0)
    return false;
  if (strcmp(end, "ms") == 0 || *end == '\0')
    ;
  else if (strcmp(end, "s") == 0)
    v *= 1000;
  else if (strcmp(end, "m") == 0)
    v *= 60000;
  else if (strcmp(end, "h") == 0)
    v *= 3600000;
  else if (strcmp(end, "d") == 0)
    v *= 86400000;
  else
    return false;
  if (v < 1 || v > 365.0 * 86400000)
    return false;
  *ms = (int64_t)v;
  return true;
}

static int cmd_notify(struct cli *c)
{
  static const char *const durations[] = {"--request-timeout", "--max-age",
                                          "--retry-initial", "--retry-max"};
  int64_t d[4] = {0, 0, 0, 0};
  struct ctkn_notify_opts o = {0};
  struct ctkn_notify_stats stats;
  uint8_t key[CTKN_KEY_LEN];
  struct ctkn_err err;
  ctkn_store *st = NULL;
  bool have_key;
  int rc, ex;

  for (int i = 0; i < 4; i++) {
    const char *v = local_value(c, durations[i]);
    if (v != NULL && !parse_duration(v, &d[i]))
      return usage_error(c,
                         "%s must be a duration like 500ms, 30s, 15m or 72h, "
                         "not \"%.40s\"",
                         durations[i], v);
  }
  if (d[0] > INT32_MAX)
    return usage_error(c, "--request-timeout is too long");
  o.request_timeout_ms = (int)d[0];
  o.max_age_ms = d[1];
  o.retry_initial_ms = d[2];
  o.retry_max_ms = d[3];
  const char *w = local_value(c, "--window");
  if (w != NULL &&
      (!parse_count(w, 1000, &o.window) || o.window < 1 || o.window > 64))
    return usage_error(c, "--window must be an integer 1-64");
  o.group = local_value(c, "--group");
  o.follow = local_value(c, "--follow") != NULL;
  if ((ex = load_key(c, key, &have_key)) != 0)
    return ex;
  if (!have_key)
    return usage_error(c, "notify needs --secret-key-file FILE or "
                          "$CTKN_SECRET_KEY_FILE to open endpoint secrets");
  if ((ex = open_store(c, true, &st)) != 0) {
    ctkn_wipe(key, sizeof(key));
    return ex;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  o.stop = &stop_flag;
  rc = ctkn_notify_run(st, &c->log, c->env, key, &o, &stats, &err);
  ctkn_wipe(key, sizeof(key));
  ctkn_store_close(st);
  if (rc != CTKN_OK)
    return print_error(c->rid, &err);
  printf("{\"data\":{\"attempts\":%" PRIu64 ",\"delivered\":%" PRIu64
         ",\"failed\":%" PRIu64 ",\"replayed\":%" PRIu64 "}}\n",
         stats.attempts, stats.delivered, stats.failed, stats.replayed);
  return 0;
}

struct ntf_print {
  ctkn_store_txn *txn;
  struct ctkn_err *err;
};

static int print_ntf(void *arg, const struct ctkn_notification *n)
{
  struct ntf_print *pr = arg;
  char *payload = NULL, *json;
  int rc = ctkn_notification_payload(pr->txn, n, &payload, pr->err);

  if (rc != CTKN_OK && rc != CTKN_ENOTFOUND)
    return rc;
  json = ctkn_json_notification(n, payload);
  free(payload);
  if (json == NULL)
    return oom_err(pr->err);
  printf("%s\n", json);
  free(json);
  return 0;
}

static int print_attempt(void *arg, const struct ctkn_ntf_attempt *a)
{
  const char *id = arg;
  char *json = ctkn_json_attempt(id, a);

  if (json == NULL)
    return CTKN_ENOMEM;
  printf("%s\n", json);
  free(json);
  return 0;
}

static int cmd_notification(struct cli *c)
{
  const char *sub = c->pos[0];
  bool list = strcmp(sub, "list") == 0, replay = strcmp(sub, "replay") == 0;
  bool logs = strcmp(sub, "logs") == 0, get = strcmp(sub, "get") == 0;
  const char *dest = local_value(c, "--destination");
  const char *status = local_value(c, "--status");
  unsigned mask = 0;
  struct ctkn_err err;
  ctkn_store *st = NULL;
  ctkn_store_txn *txn = NULL;
  int rc, ex;

  if (!list && !replay && !logs && !get)
    return usage_error(c,
                       "unknown notification command \"%.40s\" (try list, "
                       "get, logs or replay)",
                       sub);
  if (c->npos != (list ? 1 : 2))
    return list ? usage_error(c, "notification list takes no ID")
                : usage_error(c, "notification %s needs an ID", sub);
  if (!list && (dest || status))
    return usage_error(c, "--destination and --status are for notification "
                          "list");
  if (dest && !ctkn_id_valid("ntfset_", dest)) {
    err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "destination"};
    snprintf(err.msg, sizeof(err.msg), "must match ^ntfset_[a-z0-9]{26}$");
    return print_error(c->rid, &err);
  }
  for (const char *p = status; p != NULL && *p;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    unsigned bit = 0;
    for (int s = CTKN_NTF_NOT_ATTEMPTED; s <= CTKN_NTF_FAILED; s++) {
      if (strlen(ctkn_ntf_status_str(s)) == n &&
          strncmp(p, ctkn_ntf_status_str(s), n) == 0)
        bit = 1u << s;
    }
    if (n == 7 && strncmp(p, "pending", 7) == 0)
      bit = 1u << CTKN_NTF_NOT_ATTEMPTED | 1u << CTKN_NTF_NEEDS_RETRY;
    if (bit == 0) {
      err = (struct ctkn_err){.code = CTKN_EINVAL, .field = "status"};
      snprintf(err.msg, sizeof(err.msg),
               "\"%.*s\" is not delivered, failed, pending, not_attempted "
               "or needs_retry",
               (int)(n > 40 ? 40 : n), p);
      return print_error(c->rid, &err);
    }
    mask |= bit;
    p = end ? end + 1 : p + n;
  }
  if (replay) {
    char id[CTKN_NTF_ID_BUF];
    if ((ex = open_store(c, true, &st)) != 0)
      return ex;
    rc = ctkn_notification_replay(st, c->pos[1], id, &err);
    ctkn_store_close(st);
    if (rc != CTKN_OK)
      return print_error(c->rid, &err);
    printf("{\"data\":{\"notification_id\":\"%s\"},\"meta\":{\"request_id\":"
           "\"%s\"}}\n",
           id, c->rid);
    return 0;
  }
  if ((ex = open_store(c, false, &st)) != 0)
    return ex;
  rc = ctkn_store_begin(st, false, &txn, &err);
  if (rc == CTKN_OK && list) {
    struct ntf_print pr = {txn, &err};
    rc = ctkn_notification_list(txn, dest, mask, print_ntf, &pr, &err);
  } else if (rc == CTKN_OK && get) {
    struct ctkn_notification n;
    struct ntf_print pr = {txn, &err};
    rc = ctkn_notification_get(txn, c->pos[1], &n, &err);
    if (rc == CTKN_OK)
      rc = print_ntf(&pr, &n);
  } else if (rc == CTKN_OK) {
    rc = ctkn_notification_attempts(txn, c->pos[1], print_attempt,
                                    (void *)c->pos[1], &err);
  }
  ctkn_store_abort(txn);
  ctkn_store_close(st);
  if (rc != CTKN_OK)
    return print_error(c->rid, &err);
  return 0;
}

static const struct command commands[] = {
    {"init", {"--partitions", "--replication-factor"}, 0, cmd_init, 0},
    {"create",
     {"--name", "--description", "--idempotency-key", "--batch"},
     0,
     cmd_create,
     0},
    {"update",
     {"--name", "--description", "--no-description", "--status"},
     1,
     cmd_update,
     0},
    {"revoke", {NULL}, 1, cmd_revoke, 0},
    {"project", {"--follow"}, 0, cmd_project, 0},
    {"get", {NULL}, 1, cmd_get, 0},
    {"list",
     {"--status", "--after", "--per-page", "--order-by"},
     0,
     cmd_list,
     0},
    {"verify", {NULL}, 1, cmd_verify, 0},
    {"history", {NULL}, 1, cmd_history, 0},
    {"digest", {NULL}, 0, cmd_digest, 0},
    {"quarantine", {NULL}, 0, cmd_quarantine, 0},
    {"status", {NULL}, 0, cmd_status, 0},
    {"snapshot", {"--out"}, 0, cmd_snapshot, 0},
    {"replay", {"--as-of", "--from-file"}, 0, cmd_replay, 0},
    {"export", {"--out"}, 0, cmd_export, 0},
    {"rebuild", {NULL}, 0, cmd_rebuild, 0},
    {"audit", {NULL}, 2, cmd_audit, 0},
    {"import", {"--from-file", "--replication-factor"}, 0, cmd_import, 0},
    {"tail",
     {"--from-beginning", "--from", "--type", "--group", "--exit-at-end"},
     0,
     cmd_tail,
     0},
    {"serve",
     {"--listen", "--api-keys", "--public-url", "--tls-cert", "--tls-key",
      "--rate-limit", "--threads", "--max-lag", "--position-wait",
      "--client-timeout", "--secret-key-file"},
     0,
     cmd_serve,
     0},
    {"apikey", {"--file", "--name", "--permissions"}, 1, cmd_apikey, 1},
    {"destination",
     {"--url", "--events", "--description", "--no-description", "--active",
      "--secret-key-file"},
     1,
     cmd_destination,
     1},
    {"notify",
     {"--follow", "--group", "--secret-key-file", "--request-timeout",
      "--max-age", "--retry-initial", "--retry-max", "--window"},
     0,
     cmd_notify,
     0},
    {"notification", {"--destination", "--status"}, 1, cmd_notification, 1},
    {"version", {NULL}, 0, cmd_version, 0},
    {"help", {NULL}, 0, cmd_help, 0},
};

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

int main(int argc, char **argv)
{
  static struct cli c;
  const struct command *cmd = NULL;
  int ex;

  if (ctkn_request_id(c.rid) != CTKN_OK)
    strcpy(c.rid, "00000000-0000-4000-8000-000000000000");
  ctkn_log_config_init(&c.log);
  for (int g = 0; g < G_COUNT; g++)
    c.global[g] = (struct opt){.name = global_names[g],
                               .kind = g == G_HELP ? OPT_FLAG : OPT_VALUE};
  c.command = find_command(argc, argv);
  for (size_t i = 0; c.command && i < sizeof(commands) / sizeof(*commands);
       i++) {
    if (strcmp(commands[i].name, c.command) == 0)
      cmd = &commands[i];
  }
  if (cmd != NULL) {
    for (int i = 0; i < LOCAL_MAX && cmd->local[i]; i++) {
      static const char *const flags[] = {"--follow", "--no-description",
                                          "--batch", "--from-beginning",
                                          "--exit-at-end"};
      enum opt_kind kind =
          strcmp(cmd->local[i], "--type") == 0 ? OPT_LIST : OPT_VALUE;
      for (size_t f = 0; f < sizeof(flags) / sizeof(*flags); f++)
        if (strcmp(cmd->local[i], flags[f]) == 0)
          kind = OPT_FLAG;
      c.local[i] = (struct opt){.name = cmd->local[i], .kind = kind};
    }
  }
  if (c.command == NULL)
    c.command = "";
  if ((ex = parse_args(&c, cmd, argc, argv)) != 0)
    goto out;
  if (c.global[G_HELP].value != NULL) {
    ex = cmd_help(&c);
    goto out;
  }
  if (cmd == NULL) {
    ex = *c.command ? usage_error(&c, "unknown command \"%.60s\"", c.command)
                    : usage_error(&c, "a command is required");
    goto out;
  }
  if ((ex = resolve_config(&c)) != 0)
    goto out;
  ex = cmd->run(&c);
out:
  ctkn_log_config_free(&c.log);
  return ex;
}
