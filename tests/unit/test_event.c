/* test_event.c - commands, planning, event checks and the state machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctkn/event.h"

#define T0 1750948574695521LL /* 2025-06-26T14:36:14.695521Z */

static const ctkn_env ENV = CTKN_ENV_SANDBOX;

static void create_cmd(struct ctkn_command *c, const char *name,
                       const char *desc)
{
  ctkn_command_init(c, CTKN_CMD_CREATE);
  assert_int_equal(ctkn_command_set_name(c, name, strlen(name), NULL), 0);
  if (desc)
    assert_int_equal(ctkn_command_set_description(c, desc, strlen(desc), NULL),
                     0);
}

/* A token created at T0 and applied: the state every test starts from. */
static void created(struct ctkn_record *rec, struct ctkn_event *ev)
{
  struct ctkn_command c;

  create_cmd(&c, "Pricing page", "On the pricing page");
  assert_int_equal(ctkn_plan(NULL, &c, ENV, T0, ev, NULL), CTKN_PLAN_APPEND);
  memset(rec, 0, sizeof(*rec));
  assert_int_equal(ctkn_apply(NULL, ev, ENV, &rec->token, NULL, 0),
                   CTKN_APPLIED);
  rec->version = ev->version;
}

static void update_cmd(struct ctkn_command *c, const struct ctkn_record *rec)
{
  ctkn_command_init(c, CTKN_CMD_UPDATE);
  assert_int_equal(ctkn_command_set_id(c, rec->token.id, NULL), 0);
}

/* Plan cmd against rec and apply the event, like a command and the
 * projector together. */
static int plan_apply(struct ctkn_record *rec, const struct ctkn_command *c,
                      int64_t now, struct ctkn_event *ev)
{
  int rc = ctkn_plan(rec, c, ENV, now, ev, NULL);
  if (rc != CTKN_PLAN_APPEND)
    return rc;
  assert_int_equal(ctkn_event_check(ev, NULL), 0);
  assert_int_equal(ctkn_apply(rec, ev, ENV, &rec->token, NULL, 0),
                   CTKN_APPLIED);
  rec->version = ev->version;
  return rc;
}

/* ---- commands ------------------------------------------------------ */

static void test_command_check_requires_name_on_create(void **st)
{
  struct ctkn_command c;
  struct ctkn_err err;
  (void)st;

  ctkn_command_init(&c, CTKN_CMD_CREATE);
  assert_int_equal(ctkn_command_check(&c, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "name");
  assert_string_equal(err.msg, "is required");
  create_cmd(&c, "x", NULL);
  assert_int_equal(ctkn_command_set_status(&c, "revoked", NULL), 0);
  assert_int_equal(ctkn_command_check(&c, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "status");
}

static void test_command_check_rejects_empty_update(void **st)
{
  struct ctkn_command c;
  struct ctkn_err err;
  (void)st;

  ctkn_command_init(&c, CTKN_CMD_UPDATE);
  assert_int_equal(ctkn_command_check(&c, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "id");
  assert_int_equal(
      ctkn_command_set_id(&c, "ctkn_01ghbkd0frb9k95cnhwd1bxpvk", NULL), 0);
  assert_int_equal(ctkn_command_check(&c, &err), CTKN_EBADREQ);
  assert_non_null(strstr(err.msg, "name, description, status"));
  assert_int_equal(ctkn_command_set_idempotency_key(&c, "k", 1, NULL), 0);
  assert_int_equal(ctkn_command_set_status(&c, "active", NULL), 0);
  assert_int_equal(ctkn_command_check(&c, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "idempotency_key");
}

static void test_command_setters_name_field_and_rule(void **st)
{
  struct ctkn_command c;
  struct ctkn_err err;
  char key[300];
  (void)st;

  ctkn_command_init(&c, CTKN_CMD_UPDATE);
  assert_int_equal(ctkn_command_set_id(&c, "ctkn_bad", &err), CTKN_EINVAL);
  assert_string_equal(err.field, "id");
  assert_int_equal(ctkn_command_set_status(&c, "deleted", &err), CTKN_EINVAL);
  assert_string_equal(err.field, "status");
  assert_int_equal(ctkn_command_set_name(&c, "", 0, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "name");
  assert_false(c.set_name);
  assert_int_equal(ctkn_command_set_description(&c, "a\x01", 2, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "description");
  assert_int_equal(ctkn_command_set_idempotency_key(&c, "a b", 3, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "idempotency_key");
  memset(key, 'k', sizeof(key));
  assert_int_equal(ctkn_command_set_idempotency_key(&c, key, 256, &err),
                   CTKN_EINVAL);
  assert_int_equal(ctkn_command_set_idempotency_key(&c, key, 255, &err), 0);
  assert_int_equal(ctkn_command_set_idempotency_key(&c, key, 0, &err),
                   CTKN_EINVAL);
}

static void test_request_hash_tells_requests_apart(void **st)
{
  struct ctkn_command a, b;
  uint8_t ha[CTKN_HASH_LEN], hb[CTKN_HASH_LEN];
  (void)st;

  create_cmd(&a, "ab", "c");
  create_cmd(&b, "ab", "c");
  ctkn_command_request_hash(&a, ha);
  ctkn_command_request_hash(&b, hb);
  assert_memory_equal(ha, hb, sizeof(ha));
  create_cmd(&b, "a", "bc");
  ctkn_command_request_hash(&b, hb);
  assert_memory_not_equal(ha, hb, sizeof(ha));
  create_cmd(&a, "ab", NULL);
  create_cmd(&b, "ab", NULL);
  assert_int_equal(ctkn_command_set_description(&b, NULL, 0, NULL), 0);
  ctkn_command_request_hash(&a, ha);
  ctkn_command_request_hash(&b, hb);
  assert_memory_equal(ha, hb, sizeof(ha)); /* unset == null */
}

/* ---- planning ------------------------------------------------------ */

static void test_plan_create_makes_version_1_active_token(void **st)
{
  struct ctkn_command c;
  struct ctkn_event ev;
  ctkn_env env;
  (void)st;

  create_cmd(&c, "Pricing page", NULL);
  assert_int_equal(ctkn_command_set_idempotency_key(&c, "req-1", 5, NULL), 0);
  assert_int_equal(ctkn_plan(NULL, &c, CTKN_ENV_LIVE, T0, &ev, NULL),
                   CTKN_PLAN_APPEND);
  assert_int_equal(ev.type, CTKN_EVENT_CREATED);
  assert_int_equal(ev.version, 1);
  assert_true(ctkn_id_valid("ctkn_", ev.data.id));
  assert_true(ctkn_id_valid("evt_", ev.event_id));
  assert_true(ctkn_id_valid("ntf_", ev.notification_id));
  assert_true(ctkn_token_valid(ev.data.token, &env));
  assert_int_equal(env, CTKN_ENV_LIVE);
  assert_string_equal(ev.data.name, "Pricing page");
  assert_false(ev.data.has_description);
  assert_int_equal(ev.data.status, CTKN_STATUS_ACTIVE);
  assert_int_equal(ev.data.created_at, T0);
  assert_int_equal(ev.data.updated_at, T0);
  assert_int_equal(ev.occurred_at, T0);
  assert_int_equal(ev.data.revoked_at, 0);
  assert_string_equal(ev.idempotency_key, "req-1");
  assert_true(ev.has_request_hash);
  assert_int_equal(ctkn_event_check(&ev, NULL), 0);
}

static void test_plan_update_bumps_version_and_time(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev;
  struct ctkn_command c;
  (void)st;

  created(&rec, &ev);
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_name(&c, "New", 3, NULL), 0);
  assert_int_equal(plan_apply(&rec, &c, T0 + 10, &ev), CTKN_PLAN_APPEND);
  assert_int_equal(ev.type, CTKN_EVENT_UPDATED);
  assert_int_equal(ev.version, 2);
  assert_string_equal(rec.token.name, "New");
  assert_string_equal(rec.token.description, "On the pricing page");
  assert_int_equal(rec.token.created_at, T0);
  assert_int_equal(rec.token.updated_at, T0 + 10);
  assert_int_equal(ev.occurred_at, T0 + 10);

  /* Description to null. */
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_description(&c, NULL, 0, NULL), 0);
  assert_int_equal(plan_apply(&rec, &c, T0 + 20, &ev), CTKN_PLAN_APPEND);
  assert_false(rec.token.has_description);
  assert_int_equal(rec.version, 3);
}

static void test_plan_updated_at_never_goes_backwards(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev;
  struct ctkn_command c;
  (void)st;

  created(&rec, &ev);
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_name(&c, "Clock behind", 12, NULL), 0);
  assert_int_equal(plan_apply(&rec, &c, T0 - 5000000, &ev), CTKN_PLAN_APPEND);
  assert_int_equal(rec.token.updated_at, T0 + 1);
  assert_int_equal(ev.occurred_at, T0 + 1);
}

static void test_plan_update_that_changes_nothing_is_a_noop(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev;
  struct ctkn_command c;
  (void)st;

  created(&rec, &ev);
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_name(&c, "Pricing page", 12, NULL), 0);
  assert_int_equal(ctkn_command_set_status(&c, "active", NULL), 0);
  assert_int_equal(ctkn_plan(&rec, &c, ENV, T0 + 1, &ev, NULL), CTKN_PLAN_NOOP);
  assert_true(ctkn_token_equal(&ev.data, &rec.token));
  assert_int_equal(ev.version, 1);
}

static void test_plan_status_revoked_plans_revoked_event(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev;
  struct ctkn_command c;
  (void)st;

  created(&rec, &ev);
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_status(&c, "revoked", NULL), 0);
  assert_int_equal(ctkn_command_set_name(&c, "Old", 3, NULL), 0);
  assert_int_equal(plan_apply(&rec, &c, T0 + 7, &ev), CTKN_PLAN_APPEND);
  assert_int_equal(ev.type, CTKN_EVENT_REVOKED);
  assert_int_equal(rec.token.status, CTKN_STATUS_REVOKED);
  assert_string_equal(rec.token.name, "Old");
  assert_int_equal(rec.token.revoked_at, T0 + 7);
  assert_int_equal(rec.token.updated_at, T0 + 7);
  assert_int_equal(ev.occurred_at, T0 + 7);
}

static void test_plan_revoke_then_revoke_again_is_a_noop(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev;
  struct ctkn_command c;
  (void)st;

  created(&rec, &ev);
  ctkn_command_init(&c, CTKN_CMD_REVOKE);
  assert_int_equal(ctkn_command_set_id(&c, rec.token.id, NULL), 0);
  assert_int_equal(plan_apply(&rec, &c, T0 + 1, &ev), CTKN_PLAN_APPEND);
  assert_int_equal(ev.type, CTKN_EVENT_REVOKED);
  assert_int_equal(ev.version, 2);
  assert_int_equal(ctkn_plan(&rec, &c, ENV, T0 + 2, &ev, NULL), CTKN_PLAN_NOOP);
  assert_true(ctkn_token_equal(&ev.data, &rec.token));
  assert_int_equal(rec.token.revoked_at, T0 + 1);
}

static void test_plan_change_to_revoked_token_is_a_conflict(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev;
  struct ctkn_command c;
  struct ctkn_err err;
  (void)st;

  created(&rec, &ev);
  ctkn_command_init(&c, CTKN_CMD_REVOKE);
  assert_int_equal(ctkn_command_set_id(&c, rec.token.id, NULL), 0);
  assert_int_equal(plan_apply(&rec, &c, T0 + 1, &ev), CTKN_PLAN_APPEND);

  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_status(&c, "active", NULL), 0);
  assert_int_equal(ctkn_plan(&rec, &c, ENV, T0 + 2, &ev, &err), CTKN_ECONFLICT);
  assert_non_null(strstr(err.msg, "revoked"));
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_name(&c, "Renamed", 7, NULL), 0);
  assert_int_equal(ctkn_plan(&rec, &c, ENV, T0 + 2, &ev, &err), CTKN_ECONFLICT);
  /* The same values on a revoked token change nothing. */
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_name(&c, "Pricing page", 12, NULL), 0);
  assert_int_equal(ctkn_plan(&rec, &c, ENV, T0 + 2, &ev, &err), CTKN_PLAN_NOOP);
}

static void test_plan_update_of_unknown_token_is_not_found(void **st)
{
  struct ctkn_command c;
  struct ctkn_event ev;
  struct ctkn_err err;
  (void)st;

  ctkn_command_init(&c, CTKN_CMD_REVOKE);
  assert_int_equal(
      ctkn_command_set_id(&c, "ctkn_01ghbkd0frb9k95cnhwd1bxpvk", NULL), 0);
  assert_int_equal(ctkn_plan(NULL, &c, ENV, T0, &ev, &err), CTKN_ENOTFOUND);
  assert_non_null(strstr(err.msg, "ctkn_01ghbkd0frb9k95cnhwd1bxpvk"));
}

/* ---- apply --------------------------------------------------------- */

static void test_apply_created_on_existing_token_is_rejected(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev;
  struct ctkn_token next;
  char reason[256];
  (void)st;

  created(&rec, &ev);
  assert_int_equal(ctkn_apply(&rec, &ev, ENV, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_non_null(strstr(reason, "exists"));
}

static void test_apply_enforces_the_version_rule(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev, upd;
  struct ctkn_command c;
  struct ctkn_token next;
  char reason[256];
  (void)st;

  created(&rec, &ev);
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_name(&c, "v2", 2, NULL), 0);
  assert_int_equal(ctkn_plan(&rec, &c, ENV, T0 + 1, &upd, NULL), 0);

  upd.version = 3; /* a gap */
  assert_int_equal(ctkn_apply(&rec, &upd, ENV, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_non_null(strstr(reason, "version: expected 2, got 3"));
  upd.version = 2;
  assert_int_equal(ctkn_apply(&rec, &upd, ENV, &next, reason, sizeof(reason)),
                   CTKN_APPLIED);
  rec.token = next;
  rec.version = 2;
  /* The same event again is stale. */
  assert_int_equal(ctkn_apply(&rec, &upd, ENV, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_non_null(strstr(reason, "version"));
}

static void test_apply_change_to_unknown_token_is_rejected(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev;
  struct ctkn_command c;
  struct ctkn_token next;
  char reason[256];
  (void)st;

  created(&rec, &ev);
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_name(&c, "v2", 2, NULL), 0);
  assert_int_equal(ctkn_plan(&rec, &c, ENV, T0 + 1, &ev, NULL), 0);
  assert_int_equal(ctkn_apply(NULL, &ev, ENV, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_non_null(strstr(reason, "missing"));
}

static void test_apply_after_revoked_is_rejected(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev, late;
  struct ctkn_command c;
  struct ctkn_token next;
  char reason[256];
  (void)st;

  created(&rec, &ev);
  /* A writer plans an update against version 1 ... */
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_name(&c, "late", 4, NULL), 0);
  assert_int_equal(ctkn_plan(&rec, &c, ENV, T0 + 5, &late, NULL), 0);
  /* ... but a revoke lands first. */
  ctkn_command_init(&c, CTKN_CMD_REVOKE);
  assert_int_equal(ctkn_command_set_id(&c, rec.token.id, NULL), 0);
  assert_int_equal(plan_apply(&rec, &c, T0 + 1, &ev), 0);
  assert_int_equal(ctkn_apply(&rec, &late, ENV, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  /* A later version after revocation is still refused: terminal. */
  late.version = 3;
  late.data.updated_at = late.occurred_at = T0 + 50;
  assert_int_equal(ctkn_apply(&rec, &late, ENV, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_non_null(strstr(reason, "revoked"));
}

static void test_apply_rejects_other_environment_tokens(void **st)
{
  struct ctkn_command c;
  struct ctkn_event ev;
  struct ctkn_token next;
  char reason[256];
  (void)st;

  create_cmd(&c, "live one", NULL);
  assert_int_equal(ctkn_plan(NULL, &c, CTKN_ENV_LIVE, T0, &ev, NULL), 0);
  assert_int_equal(
      ctkn_apply(NULL, &ev, CTKN_ENV_SANDBOX, &next, reason, sizeof(reason)),
      CTKN_REJECTED);
  assert_non_null(strstr(reason, "environment"));
  assert_int_equal(
      ctkn_apply(NULL, &ev, CTKN_ENV_LIVE, &next, reason, sizeof(reason)),
      CTKN_APPLIED);
}

static void test_apply_rejects_immutable_and_time_changes(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev, upd;
  struct ctkn_command c;
  struct ctkn_token next;
  char reason[256];
  (void)st;

  created(&rec, &ev);
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_name(&c, "v2", 2, NULL), 0);
  assert_int_equal(ctkn_plan(&rec, &c, ENV, T0 + 9, &upd, NULL), 0);

  ev = upd;
  ev.data.token[10] = ev.data.token[10] == 'a' ? 'b' : 'a';
  assert_int_equal(ctkn_apply(&rec, &ev, ENV, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_non_null(strstr(reason, "immutable"));

  ev = upd;
  ev.data.created_at -= 1;
  assert_int_equal(ctkn_apply(&rec, &ev, ENV, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_non_null(strstr(reason, "immutable"));

  ev = upd;
  ev.data.updated_at = ev.occurred_at = T0;
  assert_int_equal(ctkn_apply(&rec, &ev, ENV, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_non_null(strstr(reason, "time"));
}

static void test_apply_is_deterministic(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event ev;
  struct ctkn_command c;
  struct ctkn_token a, b;
  (void)st;

  created(&rec, &ev);
  update_cmd(&c, &rec);
  assert_int_equal(ctkn_command_set_status(&c, "revoked", NULL), 0);
  assert_int_equal(ctkn_plan(&rec, &c, ENV, T0 + 3, &ev, NULL), 0);
  for (int i = 0; i < 100; i++) {
    assert_int_equal(ctkn_apply(&rec, &ev, ENV, &a, NULL, 0), CTKN_APPLIED);
    assert_int_equal(ctkn_apply(&rec, &ev, ENV, &b, NULL, 0), CTKN_APPLIED);
    assert_true(ctkn_token_equal(&a, &b));
    assert_true(ctkn_token_equal(&a, &ev.data));
  }
}

/* ---- event_check: what gets quarantined ----------------------------- */

static void test_event_check_rejects_impossible_events(void **st)
{
  struct ctkn_record rec;
  struct ctkn_event good, ev;
  struct ctkn_err err;
  char reason[256];
  struct ctkn_token next;
  (void)st;

  created(&rec, &good);

  ev = good;
  ev.type = (ctkn_event_type)9;
  assert_int_equal(ctkn_event_check(&ev, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "event_type");

  ev = good;
  ev.event_id[0] = 'x';
  assert_int_equal(ctkn_event_check(&ev, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "event_id");

  ev = good;
  ev.notification_id[3] = '-';
  assert_int_equal(ctkn_event_check(&ev, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "notification_id");

  ev = good;
  ev.version = 2;
  assert_int_equal(ctkn_event_check(&ev, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "version");

  ev = good;
  ev.version = 0;
  assert_int_equal(ctkn_event_check(&ev, &err), CTKN_EINVAL);

  ev = good;
  ev.data.name[0] = '\0';
  assert_int_equal(ctkn_event_check(&ev, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "data.name");

  ev = good;
  ev.occurred_at += 1;
  assert_int_equal(ctkn_event_check(&ev, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "occurred_at");

  ev = good;
  ev.type = CTKN_EVENT_REVOKED; /* but data says active */
  ev.version = 2;
  assert_int_equal(ctkn_event_check(&ev, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "data.status");

  ev = good;
  ev.type = CTKN_EVENT_UPDATED;
  ev.version = 2;
  strcpy(ev.idempotency_key, "k");
  assert_int_equal(ctkn_event_check(&ev, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "idempotency_key");

  /* apply() refuses what event_check() refuses. */
  ev = good;
  ev.data.name[0] = '\0';
  assert_int_equal(ctkn_apply(NULL, &ev, ENV, &next, reason, sizeof(reason)),
                   CTKN_REJECTED);
  assert_non_null(strstr(reason, "invalid"));
}

static void test_event_type_names_round_trip(void **st)
{
  (void)st;
  for (int t = CTKN_EVENT_CREATED; t <= CTKN_EVENT_REVOKED; t++)
    assert_int_equal(
        ctkn_event_type_parse(ctkn_event_type_str((ctkn_event_type)t)), t);
  assert_string_equal(ctkn_event_type_str(CTKN_EVENT_REVOKED),
                      "client_token.revoked");
  assert_int_equal(ctkn_event_type_parse("client_token.deleted"), 0);
  assert_null(ctkn_event_type_str((ctkn_event_type)0));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_command_check_requires_name_on_create),
      cmocka_unit_test(test_command_check_rejects_empty_update),
      cmocka_unit_test(test_command_setters_name_field_and_rule),
      cmocka_unit_test(test_request_hash_tells_requests_apart),
      cmocka_unit_test(test_plan_create_makes_version_1_active_token),
      cmocka_unit_test(test_plan_update_bumps_version_and_time),
      cmocka_unit_test(test_plan_updated_at_never_goes_backwards),
      cmocka_unit_test(test_plan_update_that_changes_nothing_is_a_noop),
      cmocka_unit_test(test_plan_status_revoked_plans_revoked_event),
      cmocka_unit_test(test_plan_revoke_then_revoke_again_is_a_noop),
      cmocka_unit_test(test_plan_change_to_revoked_token_is_a_conflict),
      cmocka_unit_test(test_plan_update_of_unknown_token_is_not_found),
      cmocka_unit_test(test_apply_created_on_existing_token_is_rejected),
      cmocka_unit_test(test_apply_enforces_the_version_rule),
      cmocka_unit_test(test_apply_change_to_unknown_token_is_rejected),
      cmocka_unit_test(test_apply_after_revoked_is_rejected),
      cmocka_unit_test(test_apply_rejects_other_environment_tokens),
      cmocka_unit_test(test_apply_rejects_immutable_and_time_changes),
      cmocka_unit_test(test_apply_is_deterministic),
      cmocka_unit_test(test_event_check_rejects_impossible_events),
      cmocka_unit_test(test_event_type_names_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
