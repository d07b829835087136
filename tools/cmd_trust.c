/*
 * cmd_trust.c - the root of trust and the keyring (trust.h):
 *   trust init --root-key FILE        the offline root key pair
 *   trust key add --root-key FILE --name NAME --scope TYPE... --out FILE
 *   trust key revoke KEY_ID --root-key FILE [--retroactive]
 *   trust keyring                     the keyring this reader judges by
 *   trust keyring place --root-key FILE
 *                                     the newest keyring on every event
 *                                     partition, unchanged
 *   trust adopt --root-key FILE       vouch for the unsigned records so far
 * A keyring change reads the newest keyring on the settings topic, makes
 * the next version and appends it signed by the root, to the settings
 * topic and then to every partition of the event topic, where a
 * revocation takes effect from its position (trust.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cmd.h"
#include "ctkn/codec.h"
#include "ctkn/keyring.h"
#include "ctkn/settings.h"
#include "ctkn/token.h"
#include "ctkn/trust.h"

/* Fill err: code, the field and the rule. Returns code. */
static int field_err(struct ctkn_err *err, int code, const char *field,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int field_err(struct ctkn_err *err, int code, const char *field,
                     const char *fmt, ...)
{
  va_list ap;

  err->code = code;
  snprintf(err->field, sizeof(err->field), "%s", field);
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
  return code;
}

/* The settings topic's log configuration (the keyring lives there). */
static const struct ctkn_log_config *settings_log(struct cli *c)
{
  static struct ctkn_log_config scfg;

  scfg = c->log; /* shallow: the overrides stay c->log's */
  if (ctkn_settings_topic(c->log.topic, scfg.topic, sizeof(scfg.topic), NULL) !=
      CTKN_OK)
    scfg.topic[0] = '\0'; /* refused by the log, naming the topic */
  return &scfg;
}

static int emit_json(struct cli *c, char *json)
{
  struct ctkn_err err;

  return cli_emit(c, json ? CTKN_OK : cli_oom(&err), json, &err);
}

static int write_pub(const char *path, const uint8_t pub[CTKN_SIGN_PUB_LEN],
                     struct ctkn_err *err)
{
  char hex[2 * CTKN_SIGN_PUB_LEN + 1];
  FILE *f = fopen(path, "wx");
  int bad;

  if (f == NULL)
    return field_err(err, CTKN_EIO, "public_key_file",
                     "%.200s: cannot be created (it must not exist)", path);
  ctkn_hex(pub, CTKN_SIGN_PUB_LEN, hex);
  bad = fprintf(f, "%s\n", hex) < 0;
  if (fclose(f) != 0 || bad)
    return field_err(err, CTKN_EIO, "public_key_file",
                     "%.200s: cannot be created (it must not exist)", path);
  return CTKN_OK;
}

/* trust init --root-key FILE: FILE (mode 0600) and FILE.pub. */
static int trust_init(struct cli *c)
{
  const char *file = cli_value(c, "--root-key");
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  char id[CTKN_KEY_ID_BUF], pubfile[4200];
  ctkn_seckey *k = NULL;
  struct ctkn_err err;
  int rc;

  if (file == NULL || *file == '\0')
    return cli_usage_error(c, "trust init needs --root-key FILE (written "
                              "once, mode 0600; keep it offline)");
  snprintf(pubfile, sizeof(pubfile), "%s.pub", file);
  if ((rc = ctkn_seckey_generate(&k, &err)) == CTKN_OK &&
      (rc = ctkn_seckey_save(k, file, &err)) == CTKN_OK) {
    ctkn_seckey_public(k, pub);
    rc = write_pub(pubfile, pub, &err);
  }
  ctkn_seckey_free(k);
  if (rc != CTKN_OK)
    return cli_print_error(c->rid, &err);
  ctkn_key_id(pub, id);
  return emit_json(c, ctkn_json_trust_root(id, pub, file, pubfile));
}

/* The root key from --root-key and the newest keyring it signed. */
static int root_and_keyring(struct cli *c, ctkn_seckey **root,
                            struct ctkn_keyring *kr, struct ctkn_err *err)
{
  const char *file = cli_value(c, "--root-key");
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  ctkn_pubkey *rp = NULL;
  int rc;

  *root = NULL;
  if (file == NULL || *file == '\0')
    return field_err(err, CTKN_EUSAGE, "root_key",
                     "keyring changes need --root-key FILE");
  if ((rc = ctkn_seckey_load(root, file, err)) != CTKN_OK)
    return rc;
  ctkn_seckey_public(*root, pub);
  if ((rc = ctkn_pubkey_new(&rp, pub, err)) == CTKN_OK)
    rc = ctkn_trust_keyring_fetch(settings_log(c), rp, kr, NULL, NULL, err);
  ctkn_pubkey_free(rp);
  return rc;
}

/* kr, signed by root, onto the settings topic, then onto every partition
 * of the event topic (trust.h: ctkn_trust_keyring_place()). */
static int publish(struct cli *c, const ctkn_seckey *root,
                   const struct ctkn_keyring *kr, struct ctkn_err *err)
{
  int32_t placed;
  int rc = ctkn_trust_keyring_append(settings_log(c), root, kr, err);

  if (rc == CTKN_OK && (rc = ctkn_trust_keyring_place(&c->log, root, kr,
                                                      &placed, err)) != CTKN_OK)
    snprintf(err->msg + strnlen(err->msg, sizeof(err->msg) - 1),
             sizeof(err->msg) - strnlen(err->msg, sizeof(err->msg) - 1),
             " (keyring version %" PRIu64 " is on the settings topic; "
             "run `ctkn trust keyring place` to place it on every event "
             "partition)",
             kr->version);
  return rc;
}

/* The next version of kr (the first: a new log ID). */
static int next_version(struct ctkn_keyring *kr, struct ctkn_err *err)
{
  if (kr->version == 0 &&
      getrandom(kr->log_id, CTKN_LOG_ID_LEN, 0) != CTKN_LOG_ID_LEN)
    return field_err(err, CTKN_EIO, "", "no random bytes for a log ID");
  kr->version++;
  kr->issued_at = ctkn_now_us();
  return CTKN_OK;
}

static int fill_key(struct cli *c, struct ctkn_writer_key *wk,
                    const ctkn_seckey *k, struct ctkn_err *err)
{
  const char *name = cli_value(c, "--name");
  const struct opt *scopes = cli_opt(c, "--scope");

  memset(wk, 0, sizeof(*wk));
  if (name == NULL || *name == '\0' || strlen(name) > CTKN_KEY_NAME_MAX)
    return field_err(err, CTKN_EINVAL, "name", "must be 1-%d characters long",
                     CTKN_KEY_NAME_MAX);
  if (scopes == NULL || scopes->nlist == 0)
    return field_err(err, CTKN_EINVAL, "scopes",
                     "at least one --scope TYPE (e.g. client_token.*)");
  snprintf(wk->name, sizeof(wk->name), "%s", name);
  for (int i = 0; i < scopes->nlist && i < CTKN_KEY_SCOPES; i++) {
    if (strlen(scopes->list[i]) > CTKN_SCOPE_MAX)
      return field_err(err, CTKN_EINVAL, "scopes",
                       "a scope is at most %d characters", CTKN_SCOPE_MAX);
    snprintf(wk->scopes[wk->nscopes++], CTKN_SCOPE_MAX + 1, "%s",
             scopes->list[i]);
  }
  ctkn_seckey_public(k, wk->public_key);
  ctkn_key_id(wk->public_key, wk->key_id);
  return CTKN_OK;
}

/* trust key add: a new writer key into --out, and the keyring with it. */
static int key_add(struct cli *c)
{
  const char *out = cli_value(c, "--out");
  struct ctkn_keyring kr;
  struct ctkn_writer_key wk;
  ctkn_seckey *root = NULL, *k = NULL;
  struct ctkn_err err;
  char *json = NULL;
  int rc;

  if (out == NULL || *out == '\0')
    return cli_usage_error(c, "trust key add needs --out FILE for the new "
                              "writer key (written once, mode 0600)");
  ctkn_keyring_init(&kr);
  if ((rc = root_and_keyring(c, &root, &kr, &err)) == CTKN_OK &&
      (rc = ctkn_seckey_generate(&k, &err)) == CTKN_OK &&
      (rc = fill_key(c, &wk, k, &err)) == CTKN_OK &&
      (rc = ctkn_keyring_add_key(&kr, &wk, &err)) == CTKN_OK &&
      (rc = next_version(&kr, &err)) == CTKN_OK &&
      (rc = ctkn_keyring_check(&kr, &err)) == CTKN_OK &&
      (rc = ctkn_seckey_save(k, out, &err)) == CTKN_OK &&
      (rc = publish(c, root, &kr, &err)) == CTKN_OK &&
      (json = ctkn_json_keyring(&kr, wk.key_id, out)) == NULL)
    rc = cli_oom(&err);
  ctkn_seckey_free(root);
  ctkn_seckey_free(k);
  ctkn_keyring_free(&kr);
  return cli_emit(c, rc, json, &err);
}

/* trust key revoke KEY_ID [--retroactive]: from the revoke's position on
 * every event partition, or (retroactive) wherever the key's records
 * stand, for every projection built after it (a rebuild undoes its
 * past). A key revoked may be revoked again, retroactively. */
static int key_revoke(struct cli *c, const char *id)
{
  const char *retro = cli_value(c, "--retroactive");
  struct ctkn_keyring kr;
  struct ctkn_writer_key *k = NULL;
  ctkn_seckey *root = NULL;
  struct ctkn_err err;
  char *json = NULL;
  int rc;

  ctkn_keyring_init(&kr);
  if ((rc = root_and_keyring(c, &root, &kr, &err)) == CTKN_OK) {
    k = (struct ctkn_writer_key *)ctkn_keyring_find(&kr, id);
    if (k == NULL)
      rc = field_err(&err, CTKN_ENOTFOUND, "key_id",
                     "no writer key %.20s in keyring version %" PRIu64, id,
                     kr.version);
  }
  if (rc == CTKN_OK) {
    k->revoked = true;
    k->retroactive = k->retroactive || retro != NULL; /* never undone */
    if ((rc = next_version(&kr, &err)) == CTKN_OK &&
        (rc = publish(c, root, &kr, &err)) == CTKN_OK &&
        (json = ctkn_json_keyring(&kr, id, NULL)) == NULL)
      rc = cli_oom(&err);
  }
  ctkn_seckey_free(root);
  ctkn_keyring_free(&kr);
  return cli_emit(c, rc, json, &err);
}

/* trust schema enable N: the keyring's next version enables event schema
 * version N for writers (readers that cannot read it fail closed). */
static int schema_enable(struct cli *c, const char *arg)
{
  struct ctkn_keyring kr;
  ctkn_seckey *root = NULL;
  struct ctkn_err err;
  char *json = NULL;
  long long v;
  int rc;

  if (!cli_parse_int(arg, 2, 1000000, &v))
    return cli_usage_error(c,
                           "trust schema enable needs a version >= 2, "
                           "not \"%.20s\"",
                           arg);
  ctkn_keyring_init(&kr);
  if ((rc = root_and_keyring(c, &root, &kr, &err)) == CTKN_OK) {
    if (ctkn_keyring_schema_enabled(&kr, (uint32_t)v))
      rc = field_err(&err, CTKN_EBADREQ, "schema_versions",
                     "schema version %lld is enabled already", v);
    else if (kr.nschemas >= CTKN_KEYRING_SCHEMAS)
      rc = field_err(&err, CTKN_EINVAL, "schema_versions",
                     "at most %d schema versions", CTKN_KEYRING_SCHEMAS);
  }
  if (rc == CTKN_OK) {
    kr.schemas[kr.nschemas++] = (uint32_t)v;
    if ((rc = next_version(&kr, &err)) == CTKN_OK &&
        (rc = publish(c, root, &kr, &err)) == CTKN_OK &&
        (json = ctkn_json_keyring(&kr, NULL, NULL)) == NULL)
      rc = cli_oom(&err);
  }
  ctkn_seckey_free(root);
  ctkn_keyring_free(&kr);
  return cli_emit(c, rc, json, &err);
}

/* trust adopt: every partition's records so far hashed (a stream), the
 * root's adoption of them appended to the settings topic. */
static int adopt(struct cli *c)
{
  struct ctkn_adoption a = {0};
  struct ctkn_keyring kr;
  ctkn_seckey *root = NULL;
  struct ctkn_err err;
  char *json = NULL;
  int rc;

  ctkn_keyring_init(&kr);
  if ((rc = root_and_keyring(c, &root, &kr, &err)) == CTKN_OK &&
      kr.version == 0)
    rc = field_err(&err, CTKN_EBADREQ, "keyring",
                   "no keyring yet: add a writer key first (trust key add), "
                   "which fixes the log ID the adoption names");
  if (rc == CTKN_OK &&
      (rc = ctkn_trust_adopt_compute(&c->log, &kr, &a, &err)) == CTKN_OK &&
      (rc = ctkn_trust_adoption_append(settings_log(c), root, &a, &err)) ==
          CTKN_OK &&
      (json = ctkn_json_adoption(&a)) == NULL)
    rc = cli_oom(&err);
  ctkn_adoption_free(&a);
  ctkn_seckey_free(root);
  ctkn_keyring_free(&kr);
  return cli_emit(c, rc, json, &err);
}

/* trust keyring: the newest keyring the --trust-root signed. */
static int show_keyring(struct cli *c)
{
  struct ctkn_keyring kr;
  ctkn_pubkey *root = NULL;
  struct ctkn_err err;
  char *json = NULL;
  int rc;

  if (!c->trust)
    return cli_usage_error(c, "trust keyring needs --trust-root FILE "
                              "[$CTKN_TRUST_ROOT]");
  ctkn_keyring_init(&kr);
  if ((rc = ctkn_pubkey_new(&root, c->trust_root, &err)) == CTKN_OK &&
      (rc = ctkn_trust_keyring_fetch(settings_log(c), root, &kr, NULL, NULL,
                                     &err)) == CTKN_OK &&
      (json = ctkn_json_keyring(&kr, NULL, NULL)) == NULL)
    rc = cli_oom(&err);
  ctkn_pubkey_free(root);
  ctkn_keyring_free(&kr);
  return cli_emit(c, rc, json, &err);
}

/* trust keyring place: the newest keyring, unchanged, onto every event
 * partition (after a change whose placing failed, or once on a log from
 * before positional keyrings, so that its next revocation is positional
 * everywhere). */
static int place_keyring(struct cli *c)
{
  struct ctkn_keyring kr;
  ctkn_seckey *root = NULL;
  struct ctkn_err err;
  char *json = NULL;
  int32_t placed = 0;
  int rc;

  ctkn_keyring_init(&kr);
  if ((rc = root_and_keyring(c, &root, &kr, &err)) == CTKN_OK &&
      kr.version == 0)
    rc = field_err(&err, CTKN_EBADREQ, "keyring",
                   "no keyring yet: add a writer key first (trust key add)");
  if (rc == CTKN_OK &&
      (rc = ctkn_trust_keyring_place(&c->log, root, &kr, &placed, &err)) ==
          CTKN_OK &&
      (json = ctkn_json_keyring(&kr, NULL, NULL)) == NULL)
    rc = cli_oom(&err);
  ctkn_seckey_free(root);
  ctkn_keyring_free(&kr);
  return cli_emit(c, rc, json, &err);
}

int cmd_trust(struct cli *c)
{
  const char *what = c->pos[0];

  if (strcmp(what, "init") == 0 && c->npos == 1)
    return trust_init(c);
  if (strcmp(what, "keyring") == 0 && c->npos == 1)
    return show_keyring(c);
  if (strcmp(what, "keyring") == 0 && c->npos == 2 &&
      strcmp(c->pos[1], "place") == 0)
    return place_keyring(c);
  if (strcmp(what, "adopt") == 0 && c->npos == 1)
    return adopt(c);
  if (strcmp(what, "key") == 0 && c->npos == 2 && strcmp(c->pos[1], "add") == 0)
    return key_add(c);
  if (strcmp(what, "key") == 0 && c->npos == 3 &&
      strcmp(c->pos[1], "revoke") == 0)
    return key_revoke(c, c->pos[2]);
  if (strcmp(what, "schema") == 0 && c->npos == 3 &&
      strcmp(c->pos[1], "enable") == 0)
    return schema_enable(c, c->pos[2]);
  return cli_usage_error(c, "trust init | keyring [place] | key add | key "
                            "revoke KEY_ID | schema enable N | adopt");
}
