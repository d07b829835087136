/* testkit.c - the unit tests' shared fixture (testkit.h). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "testkit.h"

#define CHECK(call)                                                            \
  do {                                                                         \
    struct ctkn_err e_ = {0};                                                  \
    int rc_ = (call);                                                          \
    (void)e_;                                                                  \
    if (rc_ != CTKN_OK)                                                        \
      fail_msg("%s: %s", #call, ctkn_strerror(rc_));                           \
  } while (0)

void tk_rm_rf(const char *path)
{
  struct stat sb;
  DIR *d;
  struct dirent *e;
  char sub[512];

  if (lstat(path, &sb) != 0)
    return;
  if (S_ISDIR(sb.st_mode) && (d = opendir(path)) != NULL) {
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
      tk_rm_rf(sub);
    }
    closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

static ctkn_store *open_store(const char *dir)
{
  /* Tests need no durability: no fsync per commit. */
  struct ctkn_store_opts o = {.map_size = (size_t)256 << 20, .no_sync = true};
  struct ctkn_err err = {0};
  ctkn_store *st = NULL;
  int rc = ctkn_store_open(&st, dir, &o, &err);

  if (rc == CTKN_OK)
    rc = ctkn_store_bind(st, TK_TOPIC, CTKN_ENV_SANDBOX, &err);
  if (rc != CTKN_OK)
    fail_msg("store %s: %s: %s", dir, ctkn_strerror(rc), err.msg);
  return st;
}

void tk_open(struct tk *t, int32_t nparts)
{
  memset(t, 0, sizeof(*t));
  snprintf(t->dir, sizeof(t->dir), "/tmp/ctkn_unit_XXXXXX");
  if (mkdtemp(t->dir) == NULL)
    fail_msg("mkdtemp");
  strncat(t->dir, "/db", sizeof(t->dir) - strlen(t->dir) - 1);
  t->st = open_store(t->dir);
  t->log = fake_log_new();
  assert_non_null(t->log);
  fake_log_create(t->log, TK_TOPIC, nparts);
  ctkn_log_config_init(&t->cfg);
  t->cfg.timeout_ms = 3000;
  fake_log_use(t->log, &t->cfg);
  t->clock_us = ctkn_now_us();
}

void tk_close(struct tk *t)
{
  ctkn_store_close(t->st);
  t->st = NULL;
  fake_log_free(t->log);
  ctkn_log_config_free(&t->cfg);
  /* dir is ".../ctkn_unit_XXXXXX/db": remove the parent. */
  char *slash = strrchr(t->dir, '/');
  if (slash != NULL)
    *slash = '\0';
  tk_rm_rf(t->dir);
}

void tk_reopen(struct tk *t)
{
  ctkn_store_close(t->st);
  t->st = open_store(t->dir);
}

int64_t tk_now(struct tk *t)
{
  return t->clock_us += 1000;
}

void tk_plan_create(struct tk *t, const char *name, const char *idem,
                    struct ctkn_event *ev)
{
  struct ctkn_command cmd;
  struct ctkn_err err = {0};
  int rc;

  ctkn_command_init(&cmd, CTKN_CMD_CREATE);
  CHECK(ctkn_command_set_name(&cmd, name, strlen(name), &e_));
  if (idem != NULL)
    CHECK(ctkn_command_set_idempotency_key(&cmd, idem, strlen(idem), &e_));
  rc = ctkn_plan(NULL, &cmd, CTKN_ENV_SANDBOX, tk_now(t), ev, &err);
  if (rc != CTKN_PLAN_APPEND)
    fail_msg("plan create: %s: %s", ctkn_strerror(rc), err.msg);
}

void tk_plan_change(struct tk *t, const struct ctkn_record *cur,
                    const char *name, bool revoke, struct ctkn_event *ev)
{
  struct ctkn_command cmd;
  struct ctkn_err err = {0};
  int rc;

  ctkn_command_init(&cmd, revoke ? CTKN_CMD_REVOKE : CTKN_CMD_UPDATE);
  CHECK(ctkn_command_set_id(&cmd, cur->token.id, &e_));
  if (name != NULL)
    CHECK(ctkn_command_set_name(&cmd, name, strlen(name), &e_));
  if (revoke)
    CHECK(ctkn_command_set_status(&cmd, "revoked", &e_));
  rc = ctkn_plan(cur, &cmd, CTKN_ENV_SANDBOX, tk_now(t), ev, &err);
  if (rc != CTKN_PLAN_APPEND)
    fail_msg("plan change: %s: %s", ctkn_strerror(rc), err.msg);
}

void tk_record_of(const struct ctkn_event *ev, int32_t p, int64_t off,
                  struct ctkn_record *out)
{
  memset(out, 0, sizeof(*out));
  out->token = ev->data;
  out->version = ev->version;
  out->partition = p;
  out->offset = off;
}

int64_t tk_append(struct tk *t, int32_t p, const struct ctkn_event *ev,
                  int schema_version, int32_t *out_p)
{
  uint8_t *buf = NULL;
  size_t len = 0;
  char sv[16];
  const char *type = ctkn_event_type_str(ev->type);

  CHECK(ctkn_event_encode(ev, &buf, &len, &e_));
  snprintf(sv, sizeof(sv), "%d", schema_version);
  struct ctkn_log_header h[2] = {{CTKN_HDR_EVENT_TYPE, type, strlen(type)},
                                 {CTKN_HDR_SCHEMA, sv, strlen(sv)}};
  if (p < 0) {
    int32_t n = 0;
    while (fake_log_end(t->log, TK_TOPIC, n) >= 0)
      n++;
    p = ctkn_log_partition_for(ev->data.id, strlen(ev->data.id), n);
  }
  int64_t off =
      fake_log_append(t->log, TK_TOPIC, p, ev->data.id, strlen(ev->data.id),
                      buf, len, ev->occurred_at / 1000, h, 2);
  free(buf);
  assert_true(off >= 0);
  if (out_p != NULL)
    *out_p = p;
  return off;
}

int64_t tk_append_raw(struct tk *t, int32_t p, const char *key,
                      const void *value, size_t len, const char *event_type,
                      int schema_version)
{
  struct ctkn_log_header h[2];
  size_t nh = 0;
  char sv[16];

  if (event_type != NULL)
    h[nh++] = (struct ctkn_log_header){CTKN_HDR_EVENT_TYPE, event_type,
                                       strlen(event_type)};
  if (schema_version >= 0) {
    snprintf(sv, sizeof(sv), "%d", schema_version);
    h[nh++] = (struct ctkn_log_header){CTKN_HDR_SCHEMA, sv, strlen(sv)};
  }
  return fake_log_append(t->log, TK_TOPIC, p, key, key ? strlen(key) : 0, value,
                         len, tk_now(t) / 1000, h, nh);
}

struct ctkn_log_msg tk_msg(const struct ctkn_event *ev, int32_t p, int64_t off,
                           uint8_t **buf)
{
  struct ctkn_log_msg m = {0};
  size_t len = 0;

  CHECK(ctkn_event_encode(ev, buf, &len, &e_));
  m.partition = p;
  m.offset = off;
  m.timestamp_ms = ev->occurred_at / 1000;
  m.key = ev->data.id;
  m.key_len = strlen(ev->data.id);
  m.value = *buf;
  m.value_len = len;
  snprintf(m.event_type, sizeof(m.event_type), "%s",
           ctkn_event_type_str(ev->type));
  m.schema_version = CTKN_SCHEMA_VERSION;
  return m;
}

bool tk_get(struct tk *t, const char *id, struct ctkn_record *out)
{
  ctkn_store_txn *txn = NULL;
  int rc;

  CHECK(ctkn_store_begin(t->st, false, &txn, &e_));
  rc = ctkn_store_get(txn, id, out, NULL);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK && rc != CTKN_ENOTFOUND)
    fail_msg("get %s: %s", id, ctkn_strerror(rc));
  return rc == CTKN_OK;
}

int64_t tk_offset(struct tk *t, int32_t p)
{
  ctkn_store_txn *txn = NULL;

  int64_t off = -1;

  CHECK(ctkn_store_begin(t->st, false, &txn, &e_));
  int rc = ctkn_store_offset(txn, p, &off, NULL);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    fail_msg("offset of %d: %s", (int)p, ctkn_strerror(rc));
  return off;
}

void tk_digest(ctkn_store *st, char hex[65])
{
  ctkn_store_txn *txn = NULL;
  uint8_t d[CTKN_HASH_LEN];

  CHECK(ctkn_store_begin(st, false, &txn, &e_));
  CHECK(ctkn_store_digest(txn, d, &e_));
  ctkn_store_abort(txn);
  ctkn_hex(d, sizeof(d), hex);
}

void tk_signing_free(struct tk_signing *sg)
{
  ctkn_seckey_free(sg->root);
  ctkn_seckey_free(sg->writer);
}

void tk_writer_keyring(struct ctkn_keyring *kr, uint64_t v,
                       const ctkn_seckey *writer, bool revoked)
{
  struct ctkn_writer_key wk = {0};

  ctkn_keyring_init(kr);
  kr->version = v;
  memset(kr->log_id, 0x42, sizeof(kr->log_id));
  ctkn_seckey_public(writer, wk.public_key);
  ctkn_key_id(wk.public_key, wk.key_id);
  snprintf(wk.name, sizeof(wk.name), "test");
  snprintf(wk.scopes[0], sizeof(wk.scopes[0]), "client_token.*");
  wk.nscopes = 1;
  wk.revoked = revoked;
  CHECK(ctkn_keyring_add_key(kr, &wk, &e_));
}

void tk_keyring_with(struct tk *t, struct tk_signing *sg)
{
  struct ctkn_log_config scfg = t->cfg;
  struct ctkn_keyring kr;

  CHECK(ctkn_seckey_generate(&sg->root, &e_));
  CHECK(ctkn_seckey_generate(&sg->writer, &e_));
  ctkn_seckey_public(sg->root, sg->root_pub);
  tk_writer_keyring(&kr, 1, sg->writer, false);
  fake_log_create(t->log, TK_TOPIC "_settings", 1);
  snprintf(scfg.topic, sizeof(scfg.topic), "%s_settings", TK_TOPIC);
  scfg.n_overrides = 0; /* the copy owns nothing */
  CHECK(ctkn_trust_keyring_append(&scfg, sg->root, &kr, &e_));
  ctkn_keyring_free(&kr);
}
