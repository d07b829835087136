/*
 * test_akey.c - API keys on the log: the key string, the codec, the
 * apply rule, and the whole path through an in-memory settings topic
 * (keycmd.h -> settings topic -> settings projection -> keylog.h), with
 * authentication from the projection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "ctkn/akey.h"
#include "ctkn/apikey.h"
#include "ctkn/codec.h"
#include "ctkn/events.h"
#include "ctkn/keycmd.h"
#include "ctkn/keylog.h"
#include "ctkn/settings.h"
#include "internal.h"
#include "testkit.h"

#define STOPIC TK_TOPIC "_settings"
#define SEC    INT64_C(1000000)

struct fx {
  struct tk t;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));

  assert_non_null(f);
  tk_open(&f->t, 2);
  fake_log_create(f->t.log, STOPIC, 1);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  tk_close(&f->t);
  free(f);
  return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static void run(struct fx *f, const struct ctkn_akey_command *c,
                struct ctkn_keycmd_outcome *out)
{
  struct ctkn_err err = {0};
  int rc = ctkn_keycmd_execute(f->t.st, &f->t.cfg, NULL, CTKN_ENV_SANDBOX, c,
                               out, &err);
  if (rc != CTKN_OK)
    fail_msg("keycmd: %s: %s %s", ctkn_strerror(rc), err.field, err.msg);
}

static void create(struct fx *f, const char *name, unsigned perms,
                   int64_t expires_at, struct ctkn_keycmd_outcome *out)
{
  struct ctkn_akey_command c;

  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_CREATE);
  assert_int_equal(ctkn_akey_command_set_name(&c, name, strlen(name), NULL),
                   CTKN_OK);
  assert_int_equal(ctkn_akey_command_set_perms(&c, perms, NULL), CTKN_OK);
  if (expires_at != 0)
    assert_int_equal(
        ctkn_akey_command_set_expires(&c, expires_at, ctkn_now_us(), NULL),
        CTKN_OK);
  run(f, &c, out);
  assert_true(out->appended);
  assert_int_equal(strlen(out->secret), CTKN_AKEY_LEN);
}

static void change(struct fx *f, ctkn_akey_cmd_kind kind, const char *id,
                   int64_t grace, struct ctkn_keycmd_outcome *out)
{
  struct ctkn_akey_command c;

  ctkn_akey_command_init(&c, kind);
  assert_int_equal(ctkn_akey_command_set_id(&c, id, NULL), CTKN_OK);
  assert_int_equal(ctkn_akey_command_set_grace(&c, grace, NULL), CTKN_OK);
  run(f, &c, out);
}

/* Authenticate key at now against the projection. */
static int auth(struct fx *f, const char *key, int64_t now,
                struct ctkn_akey *out)
{
  struct ctkn_akey scratch;
  ctkn_store_txn *txn;
  int rc;

  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  rc = ctkn_keylog_authenticate(txn, key, strlen(key), CTKN_ENV_SANDBOX, now,
                                out != NULL ? out : &scratch, NULL);
  ctkn_store_abort(txn);
  return rc;
}

static bool contains(const void *hay, size_t hlen, const void *needle,
                     size_t nlen)
{
  for (size_t i = 0; i + nlen <= hlen; i++)
    if (memcmp((const uint8_t *)hay + i, needle, nlen) == 0)
      return true;
  return false;
}

/* The fate the settings projection gave the record at offset. */
static char fate_of(struct fx *f, int64_t off, char *reason, size_t rsz)
{
  ctkn_store_txn *txn;
  bool applied = false;

  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_settings_fate(txn, 0, off, &applied, reason, rsz, NULL),
                   CTKN_OK);
  ctkn_store_abort(txn);
  return applied ? 'a' : reason[0] ? 'x' : '?';
}

/* Project every settings record from offset from on. */
static void project_from(struct fx *f, int64_t from)
{
  int64_t end = fake_log_end(f->t.log, STOPIC, 0);
  struct ctkn_err err = {0};

  for (int64_t o = from; o < end; o++) {
    const struct ctkn_log_msg *m = fake_log_record(f->t.log, STOPIC, 0, o);
    assert_non_null(m);
    if (ctkn_settings_project(f->t.st, m, 1, &err) != CTKN_OK)
      fail_msg("project: %s", err.msg);
  }
}

/* ---- the key string ------------------------------------------------------ */

static void test_key_carries_its_id_and_malformed_keys_are_refused(void **s)
{
  char key[CTKN_AKEY_BUF], id[CTKN_AKEY_ID_BUF], bad[CTKN_AKEY_BUF + 8];
  const char *good = "apikey_01h04vsbhqbpsdbkn6g5ya2r2k";
  uint8_t sha[32], want[32];
  ctkn_env env = 0;
  (void)s;

  assert_int_equal(ctkn_akey_generate(good, CTKN_ENV_LIVE, key, sha), CTKN_OK);
  assert_int_equal(strlen(key), CTKN_AKEY_LEN);
  assert_int_equal(strncmp(key, "ctkn_live_apikey_01h04vsb", 25), 0);
  ctkn_sha256_once(key, strlen(key), want);
  assert_memory_equal(sha, want, 32);
  assert_int_equal(ctkn_akey_parse(key, strlen(key), id, &env), CTKN_OK);
  assert_string_equal(id, good);
  assert_int_equal(env, CTKN_ENV_LIVE);

  /* One character changed in each part, a length off by one. */
  size_t n = strlen(key);
  const size_t where[] = {0, 6, 12, 17, 17 + 26, n - 1};
  for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
    memcpy(bad, key, n + 1);
    bad[where[i]] = i == 3 ? 'u' : '!'; /* 'u' is not in the ULID alphabet */
    assert_int_equal(ctkn_akey_parse(bad, n, id, &env), CTKN_EAUTHMALFORMED);
  }
  assert_int_equal(ctkn_akey_parse(key, n - 1, id, &env), CTKN_EAUTHMALFORMED);
  memcpy(bad, key, n + 1);
  memcpy(bad + 5, "test", 4);
  assert_int_equal(ctkn_akey_parse(bad, n, id, &env), CTKN_EAUTHMALFORMED);
  assert_int_equal(ctkn_akey_parse("", 0, id, &env), CTKN_EAUTHMALFORMED);
}

/* ---- codec and rules ---------------------------------------------------- */

static void sample(struct ctkn_akey_event *ev)
{
  memset(ev, 0, sizeof(*ev));
  strcpy(ev->event_id, "evt_01h04vsbhqbpsdbkn6g5ya2r2k");
  ev->type = CTKN_AKEY_CREATED;
  strcpy(ev->data.id, "apikey_01h04vsbhqbpsdbkn6g5ya2r2k");
  strcpy(ev->data.name, "backend");
  ev->data.perms = CTKN_PERM_TOKEN_READ | CTKN_PERM_KEY_READ;
  ev->data.created_at = ev->data.updated_at = ev->occurred_at = 1000 * SEC;
  ev->data.expires_at = 2000 * SEC;
  memset(ev->data.sha256, 0xab, 32);
  ev->version = ev->data.version = 1;
}

static void test_codec_round_trips_and_refuses_garbage(void **s)
{
  struct ctkn_akey_event ev, back;
  struct ctkn_akey k;
  struct ctkn_err err;
  uint8_t *buf;
  size_t len;
  (void)s;

  sample(&ev);
  ev.data.has_previous = true;
  memset(ev.data.previous_sha256, 0xcd, 32);
  ev.data.previous_until = 1500 * SEC;
  assert_int_equal(ctkn_akey_event_check(&ev, &err), CTKN_OK);
  assert_int_equal(ctkn_akey_event_encode(&ev, &buf, &len, NULL), CTKN_OK);
  assert_int_equal(ctkn_akey_event_decode(buf, len, &back, &err), CTKN_OK);
  assert_memory_equal(&back, &ev, sizeof(ev));
  /* Cut anywhere: never a crash, and a cut before data is an error. */
  for (size_t i = 0; i < len; i++)
    (void)ctkn_akey_event_decode(buf, i, &back, NULL);
  assert_int_equal(ctkn_akey_event_decode(buf, 5, &back, NULL), CTKN_EDECODE);
  free(buf);

  assert_int_equal(ctkn_akey_encode(&ev.data, &buf, &len, NULL), CTKN_OK);
  assert_int_equal(ctkn_akey_decode(buf, len, &k, &err), CTKN_OK);
  assert_memory_equal(&k, &ev.data, sizeof(k));
  buf[0] = 9; /* an unknown layout */
  assert_int_equal(ctkn_akey_decode(buf, len, &k, NULL), CTKN_EDECODE);
  free(buf);

  assert_int_equal(ctkn_akey_event_decode("\xff\xff", 2, &back, NULL),
                   CTKN_EDECODE);
}

static void test_apply_versions_terminal_states_and_used(void **s)
{
  struct ctkn_akey_event ev, up, used;
  struct ctkn_akey cur, next;
  char why[128];
  (void)s;

  sample(&ev);
  assert_int_equal(ctkn_akey_apply(NULL, &ev, &cur, why, sizeof(why)), CTKN_OK);
  assert_int_equal(ctkn_akey_apply(&cur, &ev, &next, why, sizeof(why)),
                   CTKN_AKEY_REJECTED); /* created twice */

  /* "used" moves last_used_at forward only, and no version. */
  memset(&used, 0, sizeof(used));
  used.type = CTKN_AKEY_USED;
  strcpy(used.data.id, cur.id);
  used.data.last_used_at = 1100 * SEC;
  assert_int_equal(ctkn_akey_apply(&cur, &used, &next, why, sizeof(why)),
                   CTKN_OK);
  assert_int_equal(next.last_used_at, 1100 * SEC);
  assert_int_equal(next.version, 1);
  cur = next;
  used.data.last_used_at = 1050 * SEC;
  assert_int_equal(ctkn_akey_apply(&cur, &used, &next, why, sizeof(why)),
                   CTKN_OK);
  assert_int_equal(next.last_used_at, 1100 * SEC);

  /* A revoke at version 2 applies and keeps last_used_at; version 2
   * again (a racing writer) is rejected, and so is anything after. */
  up = ev;
  up.type = CTKN_AKEY_REVOKED;
  up.version = up.data.version = 2;
  up.data.status = CTKN_AKEY_ST_REVOKED;
  up.data.updated_at = up.occurred_at = 1200 * SEC;
  assert_int_equal(ctkn_akey_event_check(&up, NULL), CTKN_OK);
  assert_int_equal(ctkn_akey_apply(&cur, &up, &next, why, sizeof(why)),
                   CTKN_OK);
  assert_int_equal(next.last_used_at, 1100 * SEC);
  assert_int_equal(ctkn_akey_apply(&cur, &up, &next, why, sizeof(why)),
                   CTKN_OK);
  cur = next;
  assert_int_equal(ctkn_akey_apply(&cur, &up, &next, why, sizeof(why)),
                   CTKN_AKEY_REJECTED);
  up.version = up.data.version = 3;
  up.type = CTKN_AKEY_UPDATED;
  up.data.status = CTKN_AKEY_ACTIVE;
  up.data.updated_at = up.occurred_at = 1300 * SEC;
  assert_int_equal(ctkn_akey_apply(&cur, &up, &next, why, sizeof(why)),
                   CTKN_AKEY_REJECTED);
  assert_non_null(strstr(why, "revoked"));

  /* Rules a writer keeps: a revoked record with an active status. */
  up.type = CTKN_AKEY_REVOKED;
  assert_int_equal(ctkn_akey_event_check(&up, NULL), CTKN_EINVAL);
}

/* ---- through the settings topic ------------------------------------------ */

static void test_key_created_on_the_log_authenticates(void **state)
{
  struct fx *f = *state;
  struct ctkn_keycmd_outcome out;
  struct ctkn_akey k;
  char wrong[CTKN_AKEY_BUF];
  (void)state;

  create(f, "backend", CTKN_PERM_TOKEN_WRITE, 0, &out);
  assert_int_equal(auth(f, out.secret, ctkn_now_us(), &k), CTKN_OK);
  assert_string_equal(k.id, out.key.id);
  assert_int_equal(k.perms, CTKN_PERM_TOKEN_WRITE | CTKN_PERM_TOKEN_READ);

  /* The record: keyed by the ID, api_key.created, schema 2, and the
   * secret nowhere in it (only its hash). */
  const struct ctkn_log_msg *m = fake_log_record(f->t.log, STOPIC, 0, 0);
  assert_non_null(m);
  assert_string_equal(m->event_type, "api_key.created");
  assert_int_equal(m->schema_version, 2);
  assert_memory_equal(m->key, out.key.id, CTKN_AKEY_ID_LEN);
  const char *secret = strrchr(out.secret, '_') + 1;
  assert_false(contains(m->value, m->value_len, secret, strlen(secret)));
  assert_false(contains(m->value, m->value_len, secret, 16));

  /* Same ID, another secret: refused; not a key at all: malformed. */
  memcpy(wrong, out.secret, sizeof(wrong));
  wrong[CTKN_AKEY_LEN - 1] = wrong[CTKN_AKEY_LEN - 1] == 'A' ? 'B' : 'A';
  assert_int_equal(auth(f, wrong, ctkn_now_us(), NULL), CTKN_EBADKEY);
  assert_int_equal(auth(f, "ctkn_sdbx_apikey_nope", ctkn_now_us(), NULL),
                   CTKN_EAUTHMALFORMED);
  /* A well-formed key of an ID the log never had. */
  char other[CTKN_AKEY_BUF];
  uint8_t sha[32];
  assert_int_equal(ctkn_akey_generate("apikey_01h04vsbhqbpsdbkn6g5ya2r2k",
                                      CTKN_ENV_SANDBOX, other, sha),
                   CTKN_OK);
  assert_int_equal(auth(f, other, ctkn_now_us(), NULL), CTKN_EBADKEY);
  /* A key of the other environment. */
  assert_int_equal(ctkn_akey_generate(out.key.id, CTKN_ENV_LIVE, other, sha),
                   CTKN_OK);
  assert_int_equal(auth(f, other, ctkn_now_us(), NULL), CTKN_EBADKEY);
}

static void test_revoked_key_is_refused_and_revoke_is_idempotent(void **state)
{
  struct fx *f = *state;
  struct ctkn_keycmd_outcome out, rv;

  create(f, "leaked", CTKN_PERM_TOKEN_READ, 0, &out);
  change(f, CTKN_AKEY_CMD_REVOKE, out.key.id, 0, &rv);
  assert_true(rv.appended);
  assert_int_equal(rv.key.status, CTKN_AKEY_ST_REVOKED);
  assert_int_equal(auth(f, out.secret, ctkn_now_us(), NULL), CTKN_EBADKEY);
  change(f, CTKN_AKEY_CMD_REVOKE, out.key.id, 0, &rv);
  assert_false(rv.appended);
  assert_int_equal(fake_log_end(f->t.log, STOPIC, 0), 2);
}

static void test_rotation_keeps_old_secret_for_the_grace_only(void **state)
{
  struct fx *f = *state;
  struct ctkn_keycmd_outcome out, r1, r2;

  create(f, "rotating", CTKN_PERM_TOKEN_READ, 0, &out);
  change(f, CTKN_AKEY_CMD_ROTATE, out.key.id, 60, &r1);
  assert_true(r1.appended);
  assert_string_not_equal(r1.secret, out.secret);
  int64_t t = r1.key.updated_at;
  assert_int_equal(auth(f, r1.secret, t, NULL), CTKN_OK);
  assert_int_equal(auth(f, out.secret, t + 59 * SEC, NULL), CTKN_OK);
  assert_int_equal(auth(f, out.secret, t + 60 * SEC, NULL), CTKN_EBADKEY);
  assert_int_equal(auth(f, r1.secret, t + 61 * SEC, NULL), CTKN_OK);

  /* Grace 0: the previous secret is refused at once. */
  change(f, CTKN_AKEY_CMD_ROTATE, out.key.id, 0, &r2);
  assert_int_equal(auth(f, r1.secret, r2.key.updated_at, NULL), CTKN_EBADKEY);
  assert_int_equal(auth(f, r2.secret, r2.key.updated_at, NULL), CTKN_OK);
  assert_int_equal(r2.key.version, 3);

  struct ctkn_akey_command c;
  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_ROTATE);
  assert_int_equal(ctkn_akey_command_set_grace(&c, 86401, NULL), CTKN_EINVAL);
  assert_int_equal(ctkn_akey_command_set_grace(&c, -1, NULL), CTKN_EINVAL);
}

static void test_expired_key_is_refused_and_shows_expired(void **state)
{
  struct fx *f = *state;
  struct ctkn_keycmd_outcome out;
  int64_t now = ctkn_now_us();

  create(f, "short", CTKN_PERM_TOKEN_READ, now + 5 * SEC, &out);
  assert_int_equal(auth(f, out.secret, now, NULL), CTKN_OK);
  assert_int_equal(auth(f, out.secret, now + 5 * SEC, NULL), CTKN_EBADKEY);
  char *json = ctkn_json_akey(&out.key, now + 6 * SEC, NULL, "r");
  assert_non_null(json);
  assert_non_null(strstr(json, "\"status\":\"expired\""));
  assert_null(strstr(json, "sha256"));
  free(json);

  struct ctkn_akey_command c;
  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_CREATE);
  assert_int_equal(ctkn_akey_command_set_expires(&c, now - 1, now, NULL),
                   CTKN_EINVAL);
}

static void test_used_appends_without_a_version(void **state)
{
  struct fx *f = *state;
  struct ctkn_keycmd_outcome out, u;
  struct ctkn_akey_command c;

  create(f, "busy", CTKN_PERM_TOKEN_READ, 0, &out);
  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_USED);
  assert_int_equal(ctkn_akey_command_set_id(&c, out.key.id, NULL), CTKN_OK);
  c.used_at = out.key.created_at + 10;
  run(f, &c, &u);
  assert_true(u.appended);
  assert_int_equal(u.key.last_used_at, c.used_at);
  assert_int_equal(u.key.version, 1);
  /* An earlier use (another replica's, appended late) is appended too,
   * but last_used_at keeps the latest. */
  c.used_at = out.key.created_at + 5;
  run(f, &c, &u);
  assert_true(u.appended);
  assert_int_equal(u.key.last_used_at, out.key.created_at + 10);
  assert_int_equal(fake_log_end(f->t.log, STOPIC, 0), 3);
}

/* GET /events's page over the projection, every type. Not inlined: at
 * -O3, GCC 12 then took the page for its local pointer and warned of a
 * dangling pointer where the test cuts the page short. */
__attribute__((noinline)) static char *events_page(struct fx *f)
{
  struct ctkn_events_params p;
  struct ctkn_err err = {0};
  char *json = NULL;

  ctkn_events_params_init(&p);
  p.per_page = 200;
  if (ctkn_events_list(f->t.st, &p, "/events", "rid", &json, &err) != CTKN_OK)
    fail_msg("events: %s", err.msg);
  return json;
}

/* What a build from before the settings events left: their table empty,
 * and no note of how far they are filled. Raw LMDB, store closed. */
static void forget_setting_events(struct fx *f)
{
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  uint8_t k[8] = {'e', 'v', 'i', 'x', 0, 0, 0, 0};
  MDB_val key = {sizeof(k), k};

  ctkn_store_close(f->t.st);
  f->t.st = NULL;
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
  assert_int_equal(mdb_env_open(env, f->t.dir, MDB_NOTLS, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "setting_events", 0, &dbi), 0);
  assert_int_equal(mdb_drop(txn, dbi, 1), 0);
  assert_int_equal(mdb_dbi_open(txn, "settings_offsets", 0, &dbi), 0);
  assert_int_equal(mdb_del(txn, dbi, &key, NULL), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  tk_reopen(&f->t);
}

static void test_settings_events_are_filled_for_an_older_projection(void **s)
{
  struct fx *f = *s;
  struct ctkn_keycmd_outcome a, b, rv;
  ctkn_settings_follower *sf = NULL;
  struct ctkn_err err = {0};
  struct ctkn_akey k;
  ctkn_store_txn *txn;
  char *before, *after, reason[64] = "";

  create(f, "one", CTKN_PERM_TOKEN_READ, 0, &a);
  create(f, "two", CTKN_PERM_KEY_READ, 0, &b);
  change(f, CTKN_AKEY_CMD_REVOKE, a.key.id, 0, &rv);
  before = events_page(f);
  assert_non_null(strstr(before, "\"api_key.created\""));
  assert_non_null(strstr(before, "\"api_key.revoked\""));
  assert_non_null(strstr(before, b.key.id));

  forget_setting_events(f);
  after = events_page(f);
  assert_null(strstr(after, "api_key."));
  free(after);
  /* The follower reads the partition again from where its events stop
   * and fills them, applying nothing twice. */
  assert_int_equal(ctkn_settings_follower_open(&sf, f->t.st, &f->t.cfg, &err),
                   CTKN_OK);
  assert_int_equal(ctkn_settings_follower_catch_up(sf, &err), CTKN_OK);
  for (int i = 0; i < 20; i++) {
    size_t n = 0;
    assert_int_equal(ctkn_settings_follower_poll(sf, 10, &n, &err), CTKN_OK);
  }
  ctkn_settings_follower_close(sf);
  after = events_page(f);
  /* The same events, byte for byte, but for the request's own meta. */
  *strstr(before, "],\"meta\"") = '\0';
  *strstr(after, "],\"meta\"") = '\0';
  assert_string_equal(after, before);
  free(before);
  free(after);
  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_keylog_get(txn, a.key.id, &k, NULL), CTKN_OK);
  ctkn_store_abort(txn);
  assert_int_equal(k.version, 2);
  assert_int_equal(fate_of(f, 0, reason, sizeof(reason)), 'a');
  /* Filled once: a follower opened again reads nothing below. */
  assert_int_equal(ctkn_settings_follower_open(&sf, f->t.st, &f->t.cfg, &err),
                   CTKN_OK);
  ctkn_settings_follower_close(sf);
}

/* The notifier reads the api_key.* events in log order, and sends the
 * envelope GET /events serves with its notification ID set. */
static void test_akey_events_in_log_order_carry_the_events_envelope(void **s)
{
  struct fx *f = *s;
  struct ctkn_keycmd_outcome a, u, rv;
  struct ctkn_settings_akey_event ae;
  struct ctkn_akey_command c;
  ctkn_store_txn *txn;
  char *page, *body, want[64];
  const char *ntf = "ntf_01h000000000000000000000";

  create(f, "one", CTKN_PERM_TOKEN_READ, 0, &a);
  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_USED);
  assert_int_equal(ctkn_akey_command_set_id(&c, a.key.id, NULL), CTKN_OK);
  c.used_at = a.key.created_at + 10;
  run(f, &c, &u); /* offset 1: not an event */
  change(f, CTKN_AKEY_CMD_REVOKE, a.key.id, 0, &rv); /* offset 2 */
  page = events_page(f);

  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_settings_akey_event_at(txn, 0, 0, false, &ae, NULL),
                   CTKN_OK);
  assert_int_equal(ae.offset, 0);
  assert_int_equal(ae.type, CTKN_DEST_AKEY_CREATED);
  assert_string_equal(ae.key_id, a.key.id);
  assert_int_equal(ae.version, 1);
  /* The used record at 1 is skipped; exact finds nothing there. */
  assert_int_equal(ctkn_settings_akey_event_at(txn, 0, 1, true, &ae, NULL),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_settings_akey_event_at(txn, 0, 1, false, &ae, NULL),
                   CTKN_OK);
  assert_int_equal(ae.offset, 2);
  assert_int_equal(ae.type, CTKN_DEST_AKEY_REVOKED);
  assert_int_equal(ae.version, 2);
  /* The stored envelope is the one GET /events lists, byte for byte. */
  char *stored = strndup(ae.json, ae.json_len);
  assert_non_null(strstr(page, stored));
  assert_non_null(strstr(stored, "\"notification_id\":null"));
  body = ctkn_json_envelope_notified(ae.json, ae.json_len, ntf);
  assert_non_null(body);
  snprintf(want, sizeof(want), "\"notification_id\":\"%s\"", ntf);
  assert_non_null(strstr(body, want));
  /* ... and but for that, the same bytes. */
  char *p = strstr(body, want);
  char *q = strstr(stored, "\"notification_id\":null");
  assert_int_equal(p - body, q - stored);
  assert_memory_equal(body, stored, (size_t)(p - body));
  assert_string_equal(p + strlen(want), q + strlen("\"notification_id\":null"));
  assert_null(strstr(body, "sha256"));
  assert_int_equal(ctkn_settings_akey_event_at(txn, 0, 3, false, &ae, NULL),
                   CTKN_ENOTFOUND);
  ctkn_store_abort(txn);
  assert_null(ctkn_json_envelope_notified("[1]", 3, ntf));
  free(stored);
  free(body);
  free(page);
}

/* Append ev as an appender would (schema 2, its type's header). */
static void append_event(struct fx *f, const struct ctkn_akey_event *ev)
{
  struct ctkn_log_header h[2];
  const char *type = ctkn_akey_type_str(ev->type);
  uint8_t *buf;
  size_t len;

  assert_int_equal(ctkn_akey_event_encode(ev, &buf, &len, NULL), CTKN_OK);
  h[0] = (struct ctkn_log_header){"ctkn-event-type", type, strlen(type)};
  h[1] = (struct ctkn_log_header){"ctkn-schema-version", "2", 1};
  fake_log_append(f->t.log, STOPIC, 0, ev->data.id, CTKN_AKEY_ID_LEN, buf, len,
                  1, h, 2);
  free(buf);
}

/* How many of the key's events of type GET /events lists. */
static int count_events(struct fx *f, const char *type, const char *id)
{
  char *page = events_page(f), *p = page, want[64];
  int n = 0;

  snprintf(want, sizeof(want), "\"event_type\":\"%s\"", type);
  while ((p = strstr(p, want)) != NULL) {
    char *next = strstr(p + 1, "\"event_type\"");
    char *hit = strstr(p, id);
    n += hit != NULL && (next == NULL || hit < next);
    p++;
  }
  free(page);
  return n;
}

/* api_key.expiring and api_key.expired: two appenders plan from the
 * same projection; the first record in the log applies, the second is
 * rejected (recorded, no event); a planner that has read the first
 * appends nothing. */
static void test_expiry_notices_first_in_the_log_wins(void **state)
{
  struct fx *f = *state;
  struct ctkn_keycmd_outcome k, out;
  struct ctkn_akey_event e1, e2;
  struct ctkn_akey_command c;
  ctkn_store_txn *txn;
  struct ctkn_akey cur;
  char why[256] = "";
  int64_t now = ctkn_now_us(), exp = now + 3 * SEC;

  create(f, "short", CTKN_PERM_TOKEN_READ, exp, &k);
  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_keylog_get(txn, k.key.id, &cur, NULL), CTKN_OK);
  ctkn_store_abort(txn);

  /* Not due yet with a 1 s lead: nothing to append. */
  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_EXPIRING);
  assert_int_equal(ctkn_akey_command_set_id(&c, k.key.id, NULL), CTKN_OK);
  c.lead_us = 1 * SEC;
  assert_int_equal(
      ctkn_akey_plan(&cur, &c, CTKN_ENV_SANDBOX, now, &e1, NULL, NULL),
      CTKN_AKEY_PLAN_NOOP);
  /* Due with the default lead (7 days): two appenders, one state. */
  c.lead_us = CTKN_AKEY_EXPIRING_LEAD_US;
  assert_int_equal(
      ctkn_akey_plan(&cur, &c, CTKN_ENV_SANDBOX, now, &e1, NULL, NULL),
      CTKN_AKEY_PLAN_APPEND);
  assert_int_equal(
      ctkn_akey_plan(&cur, &c, CTKN_ENV_SANDBOX, now + 1, &e2, NULL, NULL),
      CTKN_AKEY_PLAN_APPEND);
  assert_int_equal(e1.type, CTKN_AKEY_EXPIRING);
  assert_int_equal(e1.version, cur.version); /* no new version */
  assert_int_equal(ctkn_akey_event_check(&e1, NULL), CTKN_OK);
  append_event(f, &e1); /* offset 1 */
  append_event(f, &e2); /* offset 2 */
  project_from(f, 1);
  assert_int_equal(fate_of(f, 1, why, sizeof(why)), 'a');
  assert_int_equal(fate_of(f, 2, why, sizeof(why)), 'x');
  assert_non_null(strstr(why, "applied already"));
  assert_int_equal(count_events(f, "api_key.expiring", k.key.id), 1);
  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_keylog_get(txn, k.key.id, &cur, NULL), CTKN_OK);
  ctkn_store_abort(txn);
  assert_int_equal(cur.expiring_for, exp);
  assert_int_equal(cur.version, 1);
  assert_int_equal(cur.status, CTKN_AKEY_ACTIVE);
  /* A planner that has read it: nothing more, through the command. */
  run(f, &c, &out);
  assert_false(out.appended);
  assert_int_equal(fake_log_end(f->t.log, STOPIC, 0), 3);

  /* Not expired before expires_at: nothing. */
  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_EXPIRE);
  assert_int_equal(ctkn_akey_command_set_id(&c, k.key.id, NULL), CTKN_OK);
  assert_int_equal(
      ctkn_akey_plan(&cur, &c, CTKN_ENV_SANDBOX, exp - 1, &e1, NULL, NULL),
      CTKN_AKEY_PLAN_NOOP);
  /* Past it: two appenders at different times plan the same change,
   * occurring at expires_at; the first applies, the second is rejected. */
  assert_int_equal(
      ctkn_akey_plan(&cur, &c, CTKN_ENV_SANDBOX, exp + 5, &e1, NULL, NULL),
      CTKN_AKEY_PLAN_APPEND);
  assert_int_equal(
      ctkn_akey_plan(&cur, &c, CTKN_ENV_SANDBOX, exp + 9, &e2, NULL, NULL),
      CTKN_AKEY_PLAN_APPEND);
  assert_int_equal(e1.type, CTKN_AKEY_EXPIRED);
  assert_int_equal(e1.occurred_at, exp);
  assert_int_equal(e2.occurred_at, exp);
  assert_int_equal(e1.version, 2);
  assert_int_equal(e1.data.status, CTKN_AKEY_ST_EXPIRED);
  append_event(f, &e1); /* offset 3 */
  append_event(f, &e2); /* offset 4 */
  project_from(f, 3);
  assert_int_equal(fate_of(f, 3, why, sizeof(why)), 'a');
  assert_int_equal(fate_of(f, 4, why, sizeof(why)), 'x');
  assert_int_equal(count_events(f, "api_key.expired", k.key.id), 1);
  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_keylog_get(txn, k.key.id, &cur, NULL), CTKN_OK);
  ctkn_store_abort(txn);
  assert_int_equal(cur.status, CTKN_AKEY_ST_EXPIRED);
  /* Expired: no notice is due any more. */
  assert_int_equal(
      ctkn_akey_plan(&cur, &c, CTKN_ENV_SANDBOX, exp + 20, &e1, NULL, NULL),
      CTKN_AKEY_PLAN_NOOP);
  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_EXPIRING);
  assert_int_equal(ctkn_akey_command_set_id(&c, k.key.id, NULL), CTKN_OK);
  c.lead_us = CTKN_AKEY_EXPIRING_LEAD_US;
  assert_int_equal(
      ctkn_akey_plan(&cur, &c, CTKN_ENV_SANDBOX, exp + 20, &e1, NULL, NULL),
      CTKN_AKEY_PLAN_NOOP);
}

/* A changed expires_at may have a notice of its own; an expiring notice
 * read from an older version is rejected. */
static void test_expiring_follows_the_current_expires_at(void **s)
{
  struct ctkn_akey_event ev, up, ex;
  struct ctkn_akey cur, next;
  char why[128];
  (void)s;

  sample(&ev);
  ev.data.expires_at = 5000 * SEC;
  assert_int_equal(ctkn_akey_apply(NULL, &ev, &cur, why, sizeof(why)), CTKN_OK);
  ex = ev;
  ex.type = CTKN_AKEY_EXPIRING;
  ex.occurred_at = 4000 * SEC;
  assert_int_equal(ctkn_akey_event_check(&ex, NULL), CTKN_OK);
  assert_int_equal(ctkn_akey_apply(&cur, &ex, &next, why, sizeof(why)),
                   CTKN_OK);
  cur = next;
  assert_int_equal(cur.expiring_for, 5000 * SEC);
  /* Moved later: an update carries the marker, which no longer matches. */
  up = ev;
  up.type = CTKN_AKEY_UPDATED;
  up.version = up.data.version = 2;
  up.data.expires_at = 9000 * SEC;
  up.data.updated_at = up.occurred_at = 4100 * SEC;
  assert_int_equal(ctkn_akey_apply(&cur, &up, &next, why, sizeof(why)),
                   CTKN_OK);
  assert_int_equal(next.expiring_for, 5000 * SEC);
  cur = next;
  /* The old notice again: another version, rejected. */
  assert_int_equal(ctkn_akey_apply(&cur, &ex, &next, why, sizeof(why)),
                   CTKN_AKEY_REJECTED);
  ex = up;
  ex.type = CTKN_AKEY_EXPIRING;
  ex.occurred_at = 8000 * SEC;
  assert_int_equal(ctkn_akey_apply(&cur, &ex, &next, why, sizeof(why)),
                   CTKN_OK);
  assert_int_equal(next.expiring_for, 9000 * SEC);
  /* A notice that occurs at or after expires_at is no notice. */
  ex.occurred_at = 9000 * SEC;
  assert_int_equal(ctkn_akey_event_check(&ex, NULL), CTKN_EINVAL);
}

static void test_import_moves_file_keys_through_a_hash_index(void **state)
{
  struct fx *f = *state;
  char path[300], key[CTKN_APIKEY_BUF];
  struct ctkn_apikey entry;
  struct ctkn_akey_command c;
  struct ctkn_keycmd_outcome out, again, rv;
  struct ctkn_akey k;

  snprintf(path, sizeof(path), "%s.keys", f->t.dir);
  assert_int_equal(ctkn_apikey_create(path, "old", CTKN_PERM_SETTING_WRITE, key,
                                      &entry, NULL),
                   CTKN_OK);
  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_IMPORT);
  assert_int_equal(ctkn_akey_command_set_name(&c, "old", 3, NULL), CTKN_OK);
  assert_int_equal(ctkn_akey_command_set_perms(&c, entry.perms, NULL), CTKN_OK);
  memcpy(c.sha256, entry.sha256, 32);
  run(f, &c, &out);
  assert_true(out.appended);
  assert_string_equal(out.secret, "");
  assert_true(out.key.legacy);
  assert_int_equal(auth(f, key, ctkn_now_us(), &k), CTKN_OK);
  assert_string_equal(k.id, out.key.id);
  run(f, &c, &again); /* imported twice: one key */
  assert_false(again.appended);
  assert_string_equal(again.key.id, out.key.id);

  change(f, CTKN_AKEY_CMD_REVOKE, out.key.id, 0, &rv);
  assert_int_equal(auth(f, key, ctkn_now_us(), NULL), CTKN_EBADKEY);
  unlink(path);
  snprintf(path, sizeof(path), "%s.keys.lock", f->t.dir);
  unlink(path);
}

static void test_a_newer_settings_record_fails_log_keys_closed(void **state)
{
  struct fx *f = *state;
  struct ctkn_keycmd_outcome out;
  struct ctkn_log_header h[2] = {{"ctkn-event-type", "api_key.revoked", 15},
                                 {"ctkn-schema-version", "3", 1}};
  struct ctkn_err err = {0};
  ctkn_store_txn *txn;
  uint8_t k[4] = {0}, v[8];

  create(f, "behind", CTKN_PERM_TOKEN_READ, 0, &out);
  int64_t at = fake_log_append(f->t.log, STOPIC, 0, out.key.id,
                               CTKN_AKEY_ID_LEN, "x", 1, 1, h, 2);
  const struct ctkn_log_msg *m = fake_log_record(f->t.log, STOPIC, 0, at);
  /* The settings projection stops there: it may be this key's revocation. */
  assert_int_equal(ctkn_settings_project(f->t.st, m, 1, &err), CTKN_EFORMAT);
  assert_int_equal(auth(f, out.secret, ctkn_now_us(), NULL), CTKN_ESTALE);
  /* A build that reads it moves the offset past it: keys answer again. */
  assert_int_equal(ctkn_store_begin(f->t.st, true, &txn, NULL), CTKN_OK);
  ctkn__put_be64(v, (uint64_t)(at + 1));
  assert_int_equal(ctkn_store_kv_put(txn, CTKN_TABLE_SETTINGS_OFFSETS, k,
                                     sizeof(k), v, sizeof(v), NULL),
                   CTKN_OK);
  assert_int_equal(ctkn_store_commit(txn, NULL), CTKN_OK);
  assert_int_equal(auth(f, out.secret, ctkn_now_us(), NULL), CTKN_OK);
}

static void test_bad_records_are_quarantined(void **state)
{
  struct fx *f = *state;
  struct ctkn_akey_event ev;
  struct ctkn_log_header h[2];
  char why[256];
  uint8_t *buf;
  size_t len;

  sample(&ev);
  assert_int_equal(ctkn_akey_event_encode(&ev, &buf, &len, NULL), CTKN_OK);
  h[0] = (struct ctkn_log_header){"ctkn-event-type", "api_key.created", 15};
  /* Schema version 1 cannot hold API-key records. */
  h[1] = (struct ctkn_log_header){"ctkn-schema-version", "1", 1};
  fake_log_append(f->t.log, STOPIC, 0, ev.data.id, CTKN_AKEY_ID_LEN, buf, len,
                  1, h, 2);
  /* Keyed by another ID. */
  h[1] = (struct ctkn_log_header){"ctkn-schema-version", "2", 1};
  fake_log_append(f->t.log, STOPIC, 0, "apikey_01h04vsbhqbpsdbkn6g5ya2r2m",
                  CTKN_AKEY_ID_LEN, buf, len, 1, h, 2);
  /* Not a record at all. */
  fake_log_append(f->t.log, STOPIC, 0, ev.data.id, CTKN_AKEY_ID_LEN, "\xff", 1,
                  1, h, 2);
  /* The good one, then the same create again: rejected. */
  fake_log_append(f->t.log, STOPIC, 0, ev.data.id, CTKN_AKEY_ID_LEN, buf, len,
                  1, h, 2);
  fake_log_append(f->t.log, STOPIC, 0, ev.data.id, CTKN_AKEY_ID_LEN, buf, len,
                  1, h, 2);
  free(buf);
  project_from(f, 0);
  assert_int_equal(fate_of(f, 0, why, sizeof(why)), 'x');
  assert_non_null(strstr(why, "schema"));
  assert_int_equal(fate_of(f, 1, why, sizeof(why)), 'x');
  assert_non_null(strstr(why, "data.id"));
  assert_int_equal(fate_of(f, 2, why, sizeof(why)), 'x');
  assert_int_equal(fate_of(f, 3, why, sizeof(why)), 'a');
  assert_int_equal(fate_of(f, 4, why, sizeof(why)), 'x');
  assert_non_null(strstr(why, "exists"));
}

static void test_http_bodies_name_the_field_and_the_rule(void **s)
{
  struct ctkn_akey_command c;
  struct ctkn_err err;
  int64_t now = ctkn_now_us();
  const char *id = "apikey_01h04vsbhqbpsdbkn6g5ya2r2k";
  static const struct {
    const char *body, *field;
  } bad[] = {
      {"{\"permissions\":[\"client_token.read\"]}", "name"},
      {"{\"name\":\"x\"}", "permissions"},
      {"{\"name\":\"x\",\"permissions\":[]}", "permissions"},
      {"{\"name\":\"x\",\"permissions\":[\"admin\"]}", "permissions"},
      {"{\"name\":\"x\",\"permissions\":[\"api_key.read\",\"api_key.read\"]}",
       "permissions"},
      {"{\"name\":\"\",\"permissions\":[\"api_key.read\"]}", "name"},
      {"{\"name\":\"x\",\"permissions\":[\"api_key.read\"],"
       "\"expires_at\":\"2001-01-01T00:00:00Z\"}",
       "expires_at"},
      {"{\"name\":\"x\",\"permissions\":[\"api_key.read\"],"
       "\"expires_at\":5}",
       "expires_at"},
      {"{\"name\":\"x\",\"permissions\":[\"api_key.read\"],\"key\":\"k\"}",
       "key"},
  };
  (void)s;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    memset(&err, 0, sizeof(err));
    assert_int_equal(ctkn_json_parse_akey_create(
                         bad[i].body, strlen(bad[i].body), now, &c, &err),
                     CTKN_EINVAL);
    assert_string_equal(err.field, bad[i].field);
  }
  const char *ok = "{\"name\":\"ci\",\"description\":null,"
                   "\"permissions\":[\"api_key.write\"],"
                   "\"expires_at\":\"2099-01-01T00:00:00Z\"}";
  assert_int_equal(ctkn_json_parse_akey_create(ok, strlen(ok), now, &c, &err),
                   CTKN_OK);
  assert_int_equal(c.perms, CTKN_PERM_KEY_READ | CTKN_PERM_KEY_WRITE);
  assert_true(c.set_expires && c.expires_at > now);

  assert_int_equal(ctkn_json_parse_akey_update("{}", 2, id, now, &c, &err),
                   CTKN_EBADREQ);
  assert_int_equal(ctkn_json_parse_akey_update("{\"status\":\"expired\"}", 20,
                                               id, now, &c, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "status");
  assert_int_equal(ctkn_json_parse_akey_update("{\"status\":\"revoked\"}", 20,
                                               id, now, &c, &err),
                   CTKN_OK);
  assert_true(c.revoke);
  assert_int_equal(ctkn_json_parse_akey_update("{\"name\":\"n\"}", 12,
                                               "apikey_x", now, &c, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "id");

  static const char *const rot[] = {
      "{}", "{\"grace_period_seconds\":86401}", "{\"grace_period_seconds\":-1}",
      "{\"grace_period_seconds\":\"5\"}", "{\"grace_period_seconds\":1.5}"};
  for (size_t i = 0; i < sizeof(rot) / sizeof(rot[0]); i++) {
    assert_int_equal(
        ctkn_json_parse_akey_rotation(rot[i], strlen(rot[i]), id, &c, &err),
        CTKN_EINVAL);
    assert_string_equal(err.field, "grace_period_seconds");
  }
  assert_int_equal(ctkn_json_parse_akey_rotation("[]", 2, id, &c, &err),
                   CTKN_EBADREQ);
  const char *g = "{\"grace_period_seconds\":86400}";
  assert_int_equal(ctkn_json_parse_akey_rotation(g, strlen(g), id, &c, &err),
                   CTKN_OK);
  assert_int_equal(c.grace_s, 86400);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_key_carries_its_id_and_malformed_keys_are_refused),
      cmocka_unit_test(test_codec_round_trips_and_refuses_garbage),
      cmocka_unit_test(test_apply_versions_terminal_states_and_used),
      cmocka_unit_test(test_http_bodies_name_the_field_and_the_rule),
      cmocka_unit_test_setup_teardown(test_key_created_on_the_log_authenticates,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_revoked_key_is_refused_and_revoke_is_idempotent, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_rotation_keeps_old_secret_for_the_grace_only, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_expired_key_is_refused_and_shows_expired, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_akey_events_in_log_order_carry_the_events_envelope, setup,
          teardown),
      cmocka_unit_test_setup_teardown(test_expiry_notices_first_in_the_log_wins,
                                      setup, teardown),
      cmocka_unit_test(test_expiring_follows_the_current_expires_at),
      cmocka_unit_test_setup_teardown(test_used_appends_without_a_version,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_settings_events_are_filled_for_an_older_projection, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_import_moves_file_keys_through_a_hash_index, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_records_are_quarantined, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_a_newer_settings_record_fails_log_keys_closed, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
