/*
 * fuzz_json.c - libFuzzer target: API body -> command -> plan -> check ->
 * apply -> JSON.
 *
 * The same bytes are parsed as a create body and as an update body. Every
 * command the parser accepts must plan into an event that passes
 * ctkn_event_check() and applies to the state it was planned against:
 * the parser and the setters promise that nothing they let through can be
 * quarantined or rejected downstream. Every result, success or error, is
 * rendered, and a rendered event must read back with the same name.
 * Any broken promise aborts.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/token.h"

#define TOKEN_ID "ctkn_01ghbkd0frb9k95cnhwd1bxpvk"
#define ENV      CTKN_ENV_SANDBOX

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const struct ctkn_err *err)
{
  if (err != NULL)
    fprintf(stderr, "fuzz_json: %s: [%s] %s\n", what, err->field, err->msg);
  else
    fprintf(stderr, "fuzz_json: %s\n", what);
  abort();
}

/* The state updates are planned against: one active and one revoked
 * token with the ID every update names. Built once, checked once. */
static struct ctkn_record active_rec, revoked_rec;
static int64_t now_us;

static void init_state(void)
{
  static int done;
  struct ctkn_err err;
  struct ctkn_token *t = &active_rec.token;

  if (done)
    return;
  done = 1;
  memset(&active_rec, 0, sizeof(active_rec));
  strcpy(t->id, TOKEN_ID);
  strcpy(t->token, "test_7d279f61a3499fed520f7cd8c08");
  strcpy(t->name, "Pricing page integration");
  t->has_description = true;
  strcpy(t->description, "Used on the pricing page.");
  t->status = CTKN_STATUS_ACTIVE;
  if (ctkn_time_parse("2025-06-26T14:36:14.695521Z", &t->created_at, &err) !=
      CTKN_OK)
    die("time", &err);
  t->updated_at = t->created_at;
  active_rec.version = 1;
  if (ctkn_token_check(t, ENV, &err) != CTKN_OK)
    die("active record", &err);

  revoked_rec = active_rec;
  revoked_rec.version = 2;
  revoked_rec.token.status = CTKN_STATUS_REVOKED;
  revoked_rec.token.updated_at = t->created_at + 1000000;
  revoked_rec.token.revoked_at = revoked_rec.token.updated_at;
  if (ctkn_token_check(&revoked_rec.token, ENV, &err) != CTKN_OK)
    die("revoked record", &err);

  /* A fixed clock keeps runs reproducible. */
  now_us = revoked_rec.token.updated_at + 1000000;
}

/* A rendered event must be JSON whose data.name is the event's name. */
static void check_rendered(const struct ctkn_event *ev)
{
  char *s = ctkn_json_event(ev);
  json_t *j, *name;

  if (s == NULL)
    die("ctkn_json_event returned NULL", NULL);
  j = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
  if (j == NULL)
    die("rendered event is not JSON", NULL);
  name = json_object_get(json_object_get(j, "data"), "name");
  if (!json_is_string(name) ||
      strcmp(json_string_value(name), ev->data.name) != 0)
    die("rendered name differs", NULL);
  json_decref(j);
  free(s);
}

static void render_error(const struct ctkn_err *err)
{
  char *s = ctkn_json_error(err, "1681f87f-9c36-4557-a1da-bbb622afa0cc");

  if (s == NULL)
    die("ctkn_json_error returned NULL", NULL);
  free(s);
}

/* Plan cmd against cur; whatever is appended must check and apply. */
static void plan_apply(const struct ctkn_record *cur,
                       const struct ctkn_command *cmd)
{
  struct ctkn_event ev;
  struct ctkn_token next;
  struct ctkn_err err;
  char reason[256];
  char *s;
  int rc;

  rc = ctkn_plan(cur, cmd, ENV, now_us, &ev, &err);
  if (rc < 0) {
    /* Only a change to a revoked token may fail once parsing passed. */
    if (rc != CTKN_ECONFLICT || cur == NULL ||
        cur->token.status != CTKN_STATUS_REVOKED)
      die("plan of a parsed command failed", &err);
    render_error(&err);
    return;
  }
  if (rc == CTKN_PLAN_NOOP) {
    if (cur == NULL)
      die("a create planned nothing", NULL);
    return;
  }
  if (ctkn_event_check(&ev, &err) != CTKN_OK)
    die("planned event fails ctkn_event_check", &err);
  if (ctkn_apply(cur, &ev, ENV, &next, reason, sizeof(reason)) !=
      CTKN_APPLIED) {
    fprintf(stderr, "fuzz_json: rejected: %s\n", reason);
    abort();
  }
  if (!ctkn_token_equal(&next, &ev.data))
    die("applied state differs from the event's entity", NULL);
  check_rendered(&ev);
  s = ctkn_json_data(&next, NULL);
  if (s == NULL)
    die("ctkn_json_data returned NULL", NULL);
  free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *body = (const char *)data;
  struct ctkn_command cmd;
  struct ctkn_err err;

  init_state();

  if (ctkn_json_parse_create(body, size, &cmd, &err) == CTKN_OK)
    plan_apply(NULL, &cmd);
  else
    render_error(&err);

  if (ctkn_json_parse_update(body, size, TOKEN_ID, &cmd, &err) == CTKN_OK) {
    plan_apply(&active_rec, &cmd);
    plan_apply(&revoked_rec, &cmd);
  } else {
    render_error(&err);
  }
  return 0;
}
