/*
 * cmd_serve.c - serve: Paddle's HTTP API over a replica that follows the
 * topic; apikey: the key file it authenticates against.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "ctkn/apikey.h"
#include "ctkn/codec.h"
#include "ctkn/server.h"

/* --rate-limit: requests per second per key, 0 for none. */
static int rate_limit(struct cli *c, struct ctkn_server_config *cfg)
{
  const char *v =
      cli_env_or(cli_value(c, "--rate-limit"), "CTKN_RATE_LIMIT", NULL);
  char *end;

  if (v == NULL)
    return 0;
  errno = 0;
  cfg->rate_limit = strtod(v, &end);
  if (errno || end == v || *end != '\0' || !(cfg->rate_limit >= 0) ||
      cfg->rate_limit > 1e9)
    return cli_usage_error(c,
                           "--rate-limit must be requests per second per key "
                           "(0: none), not \"%.40s\"",
                           v);
  return 0;
}

/* --threads, --max-lag, --position-wait and --client-timeout. */
static int limits(struct cli *c, struct ctkn_server_config *cfg)
{
  const char *v;
  long long n;
  int ms;

  if ((v = cli_value(c, "--threads"))) {
    if (!cli_parse_int(v, 1, 64, &n))
      return cli_usage_error(c, "--threads must be 1 to 64, not \"%.40s\"", v);
    cfg->threads = (int)n;
  }
  if ((v = cli_value(c, "--max-lag"))) {
    if (!cli_parse_int(v, 0, INT64_MAX, &n))
      return cli_usage_error(c,
                             "--max-lag must be a count of events, not "
                             "\"%.40s\"",
                             v);
    cfg->max_lag = n;
  }
  if ((v = cli_value(c, "--position-wait"))) {
    if (!cli_parse_seconds(v, &ms))
      return cli_usage_error(
          c, "--position-wait must be seconds, not \"%.40s\"", v);
    cfg->position_wait_ms = ms;
  }
  if ((v = cli_value(c, "--key-used-interval"))) {
    if (!cli_parse_seconds(v, &ms))
      return cli_usage_error(c,
                             "--key-used-interval must be seconds (0: "
                             "never), not \"%.40s\"",
                             v);
    cfg->key_used_interval_ms = ms;
  }
  if ((v = cli_value(c, "--key-expiring-lead"))) {
    if (!cli_parse_seconds(v, &ms))
      return cli_usage_error(c,
                             "--key-expiring-lead must be seconds, not "
                             "\"%.40s\"",
                             v);
    cfg->key_expiring_lead_ms = ms;
  }
  if ((v = cli_value(c, "--client-timeout"))) {
    if (!cli_parse_seconds(v, &ms) || ms < 1000)
      return cli_usage_error(c,
                             "--client-timeout must be whole seconds, not "
                             "\"%.40s\"",
                             v);
    cfg->client_timeout_s = ms / 1000;
  }
  return 0;
}

/* Trust: the root, this replica's writer key, its heartbeat (5 s when it
 * signs) and the staleness that fails a partition closed (60 s with a
 * trust root; 0 turns it off). */
static int trust(struct cli *c, struct ctkn_server_config *cfg,
                 ctkn_seckey **usage, ctkn_seckey **expiry)
{
  const char *v;
  int ms;

  if ((v = cli_env_or(cli_value(c, "--expiry-key"), "CTKN_EXPIRY_KEY", NULL)) &&
      *v != '\0') {
    struct ctkn_err err;
    if (ctkn_seckey_load(expiry, v, &err) != CTKN_OK)
      return cli_print_error(c->rid, &err);
    cfg->expiry_key = *expiry;
  }
  if ((v = cli_env_or(cli_value(c, "--usage-key"), "CTKN_USAGE_KEY", NULL)) &&
      *v != '\0') {
    struct ctkn_err err;
    if (ctkn_seckey_load(usage, v, &err) != CTKN_OK)
      return cli_print_error(c->rid, &err);
    cfg->usage_key = *usage;
  }
  cfg->trust_root = c->trust_root;
  cfg->writer_key = c->writer;
  cfg->heartbeat_ms = c->writer != NULL ? 5000 : 0;
  cfg->max_staleness_ms = 60000;
  if ((v = cli_env_or(cli_value(c, "--heartbeat"), "CTKN_HEARTBEAT", NULL))) {
    if (!cli_parse_seconds(v, &ms))
      return cli_usage_error(c, "--heartbeat must be seconds, not \"%.40s\"",
                             v);
    cfg->heartbeat_ms = ms;
  }
  if ((v = cli_env_or(cli_value(c, "--max-staleness"), "CTKN_MAX_STALENESS",
                      NULL))) {
    if (strcmp(v, "0") == 0) /* docs/operations.md: 0 turns it off */
      ms = 0;
    else if (!cli_parse_seconds(v, &ms))
      return cli_usage_error(
          c, "--max-staleness must be seconds (0: off), not \"%.40s\"", v);
    cfg->max_staleness_ms = ms;
  }
  return 0;
}

int cmd_serve(struct cli *c)
{
  struct ctkn_server_config cfg;
  struct ctkn_dest_policy policy;
  struct ctkn_cidr nets[LIST_MAX];
  struct ctkn_err err;
  ctkn_store *st = NULL;
  ctkn_seckey *usage = NULL, *expiry = NULL;
  int rc, ex;

  ctkn_server_config_init(&cfg);
  cfg.log = &c->log;
  cfg.env = c->env;
  cfg.listen = cli_env_or(cli_value(c, "--listen"), "CTKN_LISTEN", cfg.listen);
  cfg.api_keys = cli_env_or(cli_value(c, "--api-keys"), "CTKN_API_KEYS", NULL);
  cfg.public_url =
      cli_env_or(cli_value(c, "--public-url"), "CTKN_PUBLIC_URL", NULL);
  cfg.tls_cert = cli_value(c, "--tls-cert");
  cfg.tls_key = cli_value(c, "--tls-key");
  cfg.secret_key_file = cli_env_or(cli_value(c, "--secret-key-file"),
                                   "CTKN_SECRET_KEY_FILE", NULL);
  if (cfg.secret_key_file != NULL && *cfg.secret_key_file == '\0')
    cfg.secret_key_file = NULL;
  cfg.redact_endpoint_secrets =
      cli_value(c, "--redact-endpoint-secrets") != NULL;
  if ((ex = rate_limit(c, &cfg)) != 0 || (ex = limits(c, &cfg)) != 0 ||
      (ex = trust(c, &cfg, &usage, &expiry)) != 0 ||
      (ex = cli_dest_policy(c, &policy, nets)) != 0) {
    ctkn_seckey_free(usage);
    ctkn_seckey_free(expiry);
    return ex;
  }
  cfg.allow_destination = policy.allow;
  cfg.nallow_destination = policy.nallow;
  cfg.max_active_destinations = policy.max_active;
  if ((ex = cli_open_store(c, true, &st)) != 0) {
    ctkn_seckey_free(usage);
    ctkn_seckey_free(expiry);
    return ex;
  }
  cli_signals(CLI_SIG_STOP | CLI_SIG_RELOAD | CLI_SIG_NOPIPE);
  rc = ctkn_server_run(st, &cfg, &cli_stop, &cli_reload, &err);
  ctkn_store_close(st);
  ctkn_seckey_free(usage);
  ctkn_seckey_free(expiry);
  if (rc != CTKN_OK)
    return cli_print_error(c->rid, &err);
  return 0;
}

/* ---- apikey ------------------------------------------------------------ */

/* apikey create --name NAME --permissions PERMS: prints the key, once. */
static int apikey_create(struct cli *c, const char *file)
{
  const char *name = cli_value(c, "--name");
  const char *perms = cli_value(c, "--permissions");
  char key[CTKN_APIKEY_BUF], *json = NULL;
  struct ctkn_apikey k;
  struct ctkn_err err;
  unsigned bits;
  int rc;

  if (name == NULL || perms == NULL)
    return cli_usage_error(c, "apikey create needs --name and --permissions");
  if (ctkn_perms_parse(perms, &bits, &err) != CTKN_OK)
    return cli_print_error(c->rid, &err);
  rc = ctkn_apikey_create(file, name, bits, key, &k, &err);
  if (rc == CTKN_OK && (json = ctkn_json_apikey_created(&k, key)) == NULL)
    rc = cli_oom(&err);
  ctkn_wipe(key, sizeof(key));
  return cli_emit(c, rc, json, &err);
}

static int apikey_revoke(struct cli *c, const char *file)
{
  struct ctkn_err err;
  char *json = NULL;
  int rc = ctkn_apikey_revoke(file, c->pos[1], &err);

  if (rc == CTKN_OK && (json = ctkn_json_apikey_revoked(c->pos[1])) == NULL)
    rc = cli_oom(&err);
  return cli_emit(c, rc, json, &err);
}

static int apikey_list(struct cli *c, const char *file)
{
  struct ctkn_err err;
  ctkn_apikeys *ks = NULL;
  char *json = NULL;
  int rc = ctkn_apikeys_load(file, &ks, &err);

  if (rc == CTKN_OK && (json = ctkn_json_apikey_list(ks)) == NULL)
    rc = cli_oom(&err);
  ctkn_apikeys_free(ks);
  return cli_emit(c, rc, json, &err);
}

/* apikey create|list|revoke: the key file named by --file or
 * $CTKN_API_KEYS. No Kafka and no projection are involved. */
int cmd_apikey_file(struct cli *c, const char *file)
{
  const char *sub = c->pos[0];
  bool create = strcmp(sub, "create") == 0;
  bool revoke = strcmp(sub, "revoke") == 0;

  if (!create && !revoke && strcmp(sub, "list") != 0)
    return cli_usage_error(c,
                           "unknown apikey command \"%.40s\" (try create, "
                           "list or revoke)",
                           sub);
  if (c->npos != (revoke ? 2 : 1))
    return revoke
               ? cli_usage_error(c, "apikey revoke needs a NAME")
               : cli_usage_error(c, "apikey %s takes no NAME; use --name", sub);
  if (!create &&
      (cli_value(c, "--name") != NULL || cli_value(c, "--permissions") != NULL))
    return cli_usage_error(c, "--name and --permissions are for apikey create");
  if (create)
    return apikey_create(c, file);
  return revoke ? apikey_revoke(c, file) : apikey_list(c, file);
}
