/*
 * test_query.c - the read side over a projection (no log at all): get,
 * verify, history, digest, and list with every parameter and page edge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctkn/log.h"
#include "ctkn/projector.h"
#include "ctkn/query.h"
#include "json_assert.h"
#include "query_int.h"
#include "testkit.h"

#define NTOK 23 /* tokens in the fixture; every third one revoked */

struct fx {
  struct tk t;
  struct ctkn_event evs[NTOK]; /* the created events, in ID order */
  bool revoked[NTOK];
  int64_t next_off;
};

/* Apply ev to the store as the projector would, at the next offset. */
static void apply(struct fx *f, const struct ctkn_event *ev)
{
  uint8_t *buf = NULL;
  struct ctkn_log_msg m = tk_msg(ev, 0, f->next_off++, &buf);
  struct ctkn_err err = {0};
  int rc = ctkn_projector_apply(f->t.st, CTKN_ENV_SANDBOX, &m, 1, NULL, 0, NULL,
                                &err);

  free(buf);
  if (rc != CTKN_OK)
    fail_msg("apply: %s", err.msg);
}

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));

  tk_open(&f->t, 1);
  for (int i = 0; i < NTOK; i++) {
    char name[32];
    snprintf(name, sizeof(name), "token %02d", i);
    tk_plan_create(&f->t, name, NULL, &f->evs[i]);
    apply(f, &f->evs[i]);
    if (i % 3 == 2) {
      struct ctkn_record cur;
      struct ctkn_event rv;
      tk_record_of(&f->evs[i], 0, f->next_off - 1, &cur);
      tk_plan_change(&f->t, &cur, NULL, true, &rv);
      apply(f, &rv);
      f->revoked[i] = true;
    }
  }
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

/* ---- get, verify, history ------------------------------------------------ */

static void test_get_answers_the_entity_or_notfound(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};
  char *json = NULL;

  assert_int_equal(
      ctkn_query_get(f->t.st, NULL, f->evs[4].data.id, "rid-1", &json, &err),
      CTKN_OK);
  json_t *j = parse(json);
  json_t *data = json_object_get(j, "data");
  assert_string_equal(jstr(data, "id"), f->evs[4].data.id);
  assert_string_equal(jstr(data, "name"), "token 04");
  assert_string_equal(jstr(data, "status"), "active");
  assert_string_equal(jstr(json_object_get(j, "meta"), "request_id"), "rid-1");
  json_decref(j);

  assert_int_equal(ctkn_query_get(f->t.st, NULL,
                                  "ctkn_01hzzzzzzzzzzzzzzzzzzzzzzz", "r", &json,
                                  &err),
                   CTKN_ENOTFOUND);
  assert_null(json);
  assert_non_null(strstr(err.msg, "not found"));
}

static void test_verify_tells_active_revoked_and_unknown(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};
  char *json = NULL;
  bool active = false;

  assert_int_equal(ctkn_query_verify(f->t.st, NULL, f->evs[0].data.token, "r",
                                     &json, &active, &err),
                   CTKN_OK);
  assert_true(active);
  json_t *j = parse(json);
  json_t *data = json_object_get(j, "data");
  static const char *const keys[] = {"id", "token", "status", "environment"};
  assert_keys(data, keys, 4);
  assert_string_equal(jstr(data, "environment"), "sandbox");
  json_decref(j);

  assert_int_equal(ctkn_query_verify(f->t.st, NULL, f->evs[2].data.token, "r",
                                     &json, &active, &err),
                   CTKN_OK);
  assert_false(active);
  j = parse(json);
  assert_string_equal(jstr(json_object_get(j, "data"), "status"), "revoked");
  json_decref(j);

  /* Well-formed but unknown; then malformed, naming the field. */
  assert_int_equal(ctkn_query_verify(f->t.st, NULL,
                                     "test_000000000000000000000000000", "r",
                                     &json, &active, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(
      ctkn_query_verify(f->t.st, NULL, "nope", "r", &json, &active, &err),
      CTKN_EINVAL);
  assert_string_equal(err.field, "token");
  assert_null(json);
}

static void test_history_is_every_event_oldest_first(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);

  assert_int_equal(ctkn_query_history(f->t.st, f->evs[5].data.id, out, &err),
                   CTKN_OK);
  fclose(out);
  /* Created, then revoked: two webhook-shaped lines. */
  char *nl = strchr(text, '\n');
  assert_non_null(nl);
  *nl = '\0';
  json_t *a = parse(strdup(text));
  json_t *b = parse(strndup(nl + 1, strlen(nl + 1) - 1));
  assert_string_equal(jstr(a, "event_type"), "client_token.created");
  assert_string_equal(jstr(b, "event_type"), "client_token.revoked");
  assert_string_equal(jstr(a, "event_id"), f->evs[5].event_id);
  json_decref(a);
  json_decref(b);
  free(text);

  out = open_memstream(&text, &len);
  assert_int_equal(
      ctkn_query_history(f->t.st, "ctkn_01hzzzzzzzzzzzzzzzzzzzzzzz", out, &err),
      CTKN_ENOTFOUND);
  fclose(out);
  free(text);
}

static void test_history_json_holds_the_same_events(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};
  const char *id = f->evs[5].data.id;
  char *text = NULL, *json = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  ctkn_store_txn *t;

  assert_int_equal(ctkn_query_history(f->t.st, id, out, &err), CTKN_OK);
  fclose(out);
  assert_int_equal(
      ctkn_query_history_json(f->t.st, NULL, id, "rid-1", &json, &err),
      CTKN_OK);
  /* {"data": [the lines, in order], "meta": {"request_id"}} */
  json_t *j = parse(json), *data = json_object_get(j, "data");
  assert_int_equal(json_object_size(j), 2);
  assert_string_equal(jstr(json_object_get(j, "meta"), "request_id"), "rid-1");
  assert_int_equal(json_array_size(data), 2);
  char *line = text;
  for (size_t i = 0; i < 2; i++) {
    char *nl = strchr(line, '\n');
    assert_non_null(nl);
    *nl = '\0';
    char *el =
        json_dumps(json_array_get(data, i), JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_t *a = parse(strdup(line)), *b = parse(el);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    line = nl + 1;
  }
  json_decref(j);
  free(text);

  json = (char *)"untouched";
  assert_int_equal(ctkn_query_history_json(f->t.st, NULL,
                                           "ctkn_01hzzzzzzzzzzzzzzzzzzzzzzz",
                                           "r", &json, &err),
                   CTKN_ENOTFOUND);
  assert_null(json);

  /* A paused partition may hide a later event: the API's answer fails
   * closed, as a get does; the CLI's walk (an operator's tool) does not. */
  assert_int_equal(ctkn_store_begin(f->t.st, true, &t, &err), CTKN_OK);
  assert_int_equal(ctkn_store_set_pause(t, 0, 99, 9, &err), CTKN_OK);
  assert_int_equal(ctkn_store_commit(t, &err), CTKN_OK);
  assert_int_equal(ctkn_query_history_json(f->t.st, NULL, id, "r", &json, &err),
                   CTKN_ESTALE);
  assert_null(json);
  assert_non_null(strstr(err.msg, "partition 0 is paused"));
  out = open_memstream(&text, &len);
  assert_int_equal(ctkn_query_history(f->t.st, id, out, &err), CTKN_OK);
  fclose(out);
  free(text);
}

static void test_digest_counts_tokens_and_lists_offsets(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};
  char *json = NULL;
  char hex[65];

  assert_int_equal(ctkn_query_digest(f->t.st, &json, &err), CTKN_OK);
  json_t *j = parse(json);
  json_t *data = json_object_get(j, "data");
  tk_digest(f->t.st, hex);
  assert_string_equal(jstr(data, "sha256"), hex);
  assert_int_equal(json_integer_value(json_object_get(data, "tokens")), NTOK);
  json_t *offs = json_object_get(data, "offsets");
  assert_int_equal(json_array_size(offs), 1);
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(offs, 0), "offset")),
      f->next_off);
  json_decref(j);
}

/* ---- list ---------------------------------------------------------------- */

/* One page as parsed JSON. */
static json_t *page(struct fx *f, const struct ctkn_list_params *p, bool count)
{
  struct ctkn_err err = {0};
  char *json = NULL;
  int rc = ctkn_query_list(f->t.st, NULL, p, "https://h/client-tokens", count,
                           "r", &json, &err);

  if (rc != CTKN_OK)
    fail_msg("list: %s", err.msg);
  return parse(json);
}

static const char *nth_id(json_t *pg, size_t i)
{
  return jstr(json_array_get(json_object_get(pg, "data"), i), "id");
}

static json_t *pagination(json_t *pg)
{
  return json_object_get(json_object_get(pg, "meta"), "pagination");
}

static void test_list_defaults_are_active_newest_first(void **s)
{
  struct fx *f = *s;
  struct ctkn_list_params p;

  ctkn_list_params_init(&p);
  json_t *pg = page(f, &p, true);
  json_t *data = json_object_get(pg, "data");
  size_t want = 0;
  for (int i = 0; i < NTOK; i++)
    want += !f->revoked[i];
  assert_int_equal(json_array_size(data), want);
  /* id[DESC]: the newest first, revoked ones left out. */
  assert_string_equal(nth_id(pg, 0), f->evs[NTOK - 1].data.id);
  for (size_t i = 0; i < want; i++)
    assert_string_equal(jstr(json_array_get(data, i), "status"), "active");
  json_t *pag = pagination(pg);
  assert_int_equal(json_integer_value(json_object_get(pag, "per_page")), 50);
  assert_false(json_is_true(json_object_get(pag, "has_more")));
  assert_int_equal(json_integer_value(json_object_get(pag, "estimated_total")),
                   want);
  json_decref(pg);
}

static void test_list_pages_through_every_token_both_ways(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};

  for (int desc = 0; desc < 2; desc++) {
    struct ctkn_list_params p;
    ctkn_list_params_init(&p);
    assert_int_equal(ctkn_list_params_status(&p, "active,revoked", &err),
                     CTKN_OK);
    assert_int_equal(
        ctkn_list_params_order_by(&p, desc ? "id[DESC]" : "id[ASC]", &err),
        CTKN_OK);
    assert_int_equal(ctkn_list_params_per_page(&p, "5", &err), CTKN_OK);
    int seen = 0;
    for (;;) {
      json_t *pg = page(f, &p, false);
      json_t *data = json_object_get(pg, "data");
      for (size_t i = 0; i < json_array_size(data); i++, seen++) {
        int want = desc ? NTOK - 1 - seen : seen;
        assert_string_equal(nth_id(pg, i), f->evs[want].data.id);
      }
      json_t *pag = pagination(pg);
      bool more = json_is_true(json_object_get(pag, "has_more"));
      /* next continues after this page's last ID, with the same
       * parameters, on the last page too (Paddle's: always returned). */
      const char *next = jstr(pag, "next");
      const char *last = nth_id(pg, json_array_size(data) - 1);
      assert_int_equal(strncmp(next, "https://h/client-tokens?after=", 30), 0);
      assert_int_equal(strncmp(next + 30, last, strlen(last)), 0);
      assert_non_null(strstr(next, "per_page=5"));
      assert_non_null(strstr(next, "status=active,revoked"));
      assert_non_null(strstr(next, desc ? "order_by=id%5BDESC%5D"
                                        : "order_by=id%5BASC%5D"));
      assert_int_equal(ctkn_list_params_after(&p, last, &err), CTKN_OK);
      json_decref(pg);
      if (!more)
        break;
    }
    assert_int_equal(seen, NTOK);
  }
}

static void test_list_status_filters(void **s)
{
  struct fx *f = *s;
  struct ctkn_list_params p;
  struct ctkn_err err = {0};

  ctkn_list_params_init(&p);
  assert_int_equal(ctkn_list_params_status(&p, "revoked", &err), CTKN_OK);
  json_t *pg = page(f, &p, true);
  json_t *data = json_object_get(pg, "data");
  int want = 0;
  for (int i = 0; i < NTOK; i++)
    want += f->revoked[i];
  assert_int_equal(json_array_size(data), want);
  for (size_t i = 0; i < json_array_size(data); i++)
    assert_string_equal(jstr(json_array_get(data, i), "status"), "revoked");
  assert_int_equal(
      json_integer_value(json_object_get(pagination(pg), "estimated_total")),
      want);
  json_decref(pg);
}

static void test_list_edges(void **s)
{
  struct fx *f = *s;
  struct ctkn_list_params p;
  struct ctkn_err err = {0};

  /* After the last ID in the order: an empty page, no more. */
  ctkn_list_params_init(&p);
  assert_int_equal(ctkn_list_params_order_by(&p, "id[ASC]", &err), CTKN_OK);
  assert_int_equal(ctkn_list_params_after(&p, f->evs[NTOK - 1].data.id, &err),
                   CTKN_OK);
  json_t *pg = page(f, &p, false);
  assert_int_equal(json_array_size(json_object_get(pg, "data")), 0);
  assert_false(json_is_true(json_object_get(pagination(pg), "has_more")));
  /* Still a next: the same cursor again, which later tokens fill. */
  char want[200];
  snprintf(want, sizeof(want),
           "https://h/client-tokens?after=%s&order_by=id%%5BASC%%5D&"
           "per_page=50&status=active",
           f->evs[NTOK - 1].data.id);
  assert_string_equal(jstr(pagination(pg), "next"), want);
  json_decref(pg);

  /* A page exactly as long as what is left: no more after it. */
  ctkn_list_params_init(&p);
  assert_int_equal(ctkn_list_params_status(&p, "active,revoked", &err),
                   CTKN_OK);
  char pp[8];
  snprintf(pp, sizeof(pp), "%d", NTOK);
  assert_int_equal(ctkn_list_params_per_page(&p, pp, &err), CTKN_OK);
  pg = page(f, &p, false);
  assert_int_equal(json_array_size(json_object_get(pg, "data")), NTOK);
  assert_false(json_is_true(json_object_get(pagination(pg), "has_more")));
  json_decref(pg);
  /* One fewer: one more page. */
  snprintf(pp, sizeof(pp), "%d", NTOK - 1);
  assert_int_equal(ctkn_list_params_per_page(&p, pp, &err), CTKN_OK);
  pg = page(f, &p, false);
  assert_true(json_is_true(json_object_get(pagination(pg), "has_more")));
  json_decref(pg);

  /* An ID cursor that names no token still orders: everything after it. */
  ctkn_list_params_init(&p);
  assert_int_equal(ctkn_list_params_order_by(&p, "id[ASC]", &err), CTKN_OK);
  assert_int_equal(ctkn_list_params_status(&p, "active,revoked", &err),
                   CTKN_OK);
  assert_int_equal(
      ctkn_list_params_after(&p, "ctkn_00000000000000000000000000", &err),
      CTKN_OK);
  pg = page(f, &p, false);
  assert_int_equal(json_array_size(json_object_get(pg, "data")), NTOK);
  json_decref(pg);
}

static void test_list_parameters_are_checked_naming_the_field(void **s)
{
  struct ctkn_list_params p;
  struct ctkn_err err = {0};

  (void)s;
  ctkn_list_params_init(&p);
  static const char *const bad_pp[] = {"", "0", "-1", "abc", "1.5", "5x"};
  for (size_t i = 0; i < sizeof(bad_pp) / sizeof(*bad_pp); i++) {
    assert_int_equal(ctkn_list_params_per_page(&p, bad_pp[i], &err),
                     CTKN_EINVAL);
    assert_string_equal(err.field, "per_page");
  }
  /* Larger values are capped, not rejected, however large. */
  assert_int_equal(ctkn_list_params_per_page(&p, "201", &err), CTKN_OK);
  assert_int_equal(p.per_page, CTKN_PER_PAGE_MAX);
  assert_int_equal(
      ctkn_list_params_per_page(&p, "99999999999999999999999", &err), CTKN_OK);
  assert_int_equal(p.per_page, CTKN_PER_PAGE_MAX);
  assert_int_equal(ctkn_list_params_per_page(&p, "1", &err), CTKN_OK);
  assert_int_equal(p.per_page, 1);

  /* The direction in any case (Paddle's Python SDK sends id[asc]); the
   * field, the brackets and the word itself exactly. */
  static const struct {
    const char *s;
    bool desc;
  } good_ob[] = {{"id[ASC]", false}, {"id[asc]", false}, {"id[Asc]", false},
                 {"id[DESC]", true}, {"id[desc]", true}, {"id[dEsC]", true}};
  for (size_t i = 0; i < sizeof(good_ob) / sizeof(*good_ob); i++) {
    p.desc = !good_ob[i].desc;
    assert_int_equal(ctkn_list_params_order_by(&p, good_ob[i].s, &err),
                     CTKN_OK);
    assert_int_equal(p.desc, good_ob[i].desc);
  }
  static const char *const bad_ob[] = {
      "name[ASC]", "ID[ASC]", "id[AS]",  "id[ASCX]", "id[]", "id[ASC",
      "id ASC",    "id",      "id[DES]", "[ASC]",    "",     "id[ASC] "};
  for (size_t i = 0; i < sizeof(bad_ob) / sizeof(*bad_ob); i++) {
    assert_int_equal(ctkn_list_params_order_by(&p, bad_ob[i], &err),
                     CTKN_EINVAL);
    assert_string_equal(err.field, "order_by");
  }
  static const char *const bad_status[] = {"", "active,", ",active", "gone",
                                           "active,,revoked"};
  for (size_t i = 0; i < sizeof(bad_status) / sizeof(*bad_status); i++) {
    assert_int_equal(ctkn_list_params_status(&p, bad_status[i], &err),
                     CTKN_EINVAL);
    assert_string_equal(err.field, "status");
  }
  assert_int_equal(ctkn_list_params_after(&p, "ctkn_short", &err), CTKN_EINVAL);
  assert_string_equal(err.field, "after");
  assert_int_equal(
      ctkn_list_params_after(&p, "ctkn_0000000000000000000000000A", &err),
      CTKN_EINVAL);
}

/* ---- failing closed, partition by partition (query.h) ------------------ */

static void set_pause(struct fx *f, int32_t p)
{
  ctkn_store_txn *t;

  assert_int_equal(ctkn_store_begin(f->t.st, true, &t, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_set_pause(t, p, 99, 2, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_commit(t, NULL), CTKN_OK);
}

/* An ID no token has whose partition among 2 is want. */
static void unknown_id_on(int32_t want, char id[CTKN_ID_BUF])
{
  for (int c = 0;; c++) {
    snprintf(id, CTKN_ID_BUF, "ctkn_01hzzzzzzzzzzzzzzzzzzzzz%c%c", 'a' + c % 26,
             'a' + c / 26);
    if (ctkn_log_partition_for(id, strlen(id), 2) == want)
      return;
  }
}

static int get_rc(struct fx *f, const struct ctkn_query_guard *g,
                  const char *id, struct ctkn_err *err)
{
  char *json = NULL;
  int rc = ctkn_query_get(f->t.st, g, id, "r", &json, err);

  free(json);
  return rc;
}

static int verify_rc(struct fx *f, const struct ctkn_query_guard *g,
                     const char *token, struct ctkn_err *err)
{
  char *json = NULL;
  bool active;
  int rc = ctkn_query_verify(f->t.st, g, token, "r", &json, &active, err);

  free(json);
  return rc;
}

static void test_a_paused_partition_fails_only_its_tokens_closed(void **s)
{
  struct fx *f = *s;
  const uint8_t ok[2] = {CTKN_PART_OK, CTKN_PART_OK};
  const struct ctkn_query_guard g = {.nparts = 2, .state = ok};
  struct ctkn_list_params lp;
  struct ctkn_event on1;
  struct ctkn_err err;
  char id[CTKN_ID_BUF], *json = NULL;
  uint8_t *buf = NULL;

  /* A token whose record is on partition 1, then partition 1 pauses. */
  tk_plan_create(&f->t, "on one", NULL, &on1);
  struct ctkn_log_msg m = tk_msg(&on1, 1, 0, &buf);
  assert_int_equal(ctkn_projector_apply(f->t.st, CTKN_ENV_SANDBOX, &m, 1, NULL,
                                        0, NULL, NULL),
                   CTKN_OK);
  free(buf);
  set_pause(f, 1);
  const char *id0 = f->evs[0].data.id, *tok0 = f->evs[0].data.token;
  /* Partition 0's token is answered, if the partitioner agrees. */
  if (ctkn_log_partition_for(id0, strlen(id0), 2) == 0) {
    assert_int_equal(get_rc(f, &g, id0, &err), CTKN_OK);
    assert_int_equal(verify_rc(f, &g, tok0, &err), CTKN_OK);
  }
  assert_int_equal(get_rc(f, NULL, id0, &err), CTKN_OK); /* its record's */
  assert_int_equal(verify_rc(f, NULL, tok0, &err), CTKN_OK);
  /* Partition 1's is not, by its record's partition. */
  assert_int_equal(get_rc(f, NULL, on1.data.id, &err), CTKN_ESTALE);
  assert_non_null(strstr(err.msg, "partition 1 is paused"));
  assert_int_equal(verify_rc(f, &g, on1.data.token, &err), CTKN_ESTALE);
  /* "Not found" by ID: its partition decides; unknown count: closed. */
  unknown_id_on(0, id);
  assert_int_equal(get_rc(f, &g, id, &err), CTKN_ENOTFOUND);
  assert_int_equal(get_rc(f, NULL, id, &err), CTKN_ESTALE);
  unknown_id_on(1, id);
  assert_int_equal(get_rc(f, &g, id, &err), CTKN_ESTALE);
  assert_int_equal(ctkn_query_history_json(f->t.st, &g, id, "r", &json, &err),
                   CTKN_ESTALE);
  /* A token string the index lacks has no known partition. */
  assert_int_equal(verify_rc(f, &g,
                             "test_"
                             "bbbbbbbbbbbbbbbbbbbbbbbbbbb",
                             &err),
                   CTKN_ESTALE);
  /* A list may hold any partition's tokens. */
  ctkn_list_params_init(&lp);
  assert_int_equal(
      ctkn_query_list(f->t.st, &g, &lp, NULL, false, "r", &json, &err),
      CTKN_ESTALE);
  lp.stale_ok = true;
  assert_int_equal(
      ctkn_query_list(f->t.st, &g, &lp, NULL, false, "r", &json, &err),
      CTKN_OK);
  assert_non_null(strstr(json, "partition 1 is paused"));
  free(json);
}

static void test_a_stale_partition_from_the_guard_fails_closed(void **s)
{
  struct fx *f = *s;
  uint8_t st[2] = {CTKN_PART_OK, CTKN_PART_OK};
  const struct ctkn_query_guard g = {
      .nparts = 2, .state = st, .max_staleness_s = 60};
  const char *id0 = f->evs[0].data.id, *tok0 = f->evs[0].data.token;
  int32_t mine = ctkn_log_partition_for(id0, strlen(id0), 2);
  struct ctkn_err err;

  st[1 - mine] = CTKN_PART_STALE; /* not this token's */
  /* its record is on 0: answered only when 0 is its partitioner's too */
  assert_int_equal(get_rc(f, &g, id0, &err), mine == 0 ? CTKN_OK : CTKN_ESTALE);
  st[1 - mine] = CTKN_PART_OK;
  st[mine] = CTKN_PART_STALE;
  assert_int_equal(get_rc(f, &g, id0, &err), CTKN_ESTALE);
  assert_non_null(strstr(err.msg, "checkpoint"));
  assert_int_equal(verify_rc(f, &g, tok0, &err), CTKN_ESTALE);
}

static void test_a_pause_of_every_partition_fails_every_answer(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err;

  set_pause(f, CTKN_STORE_PAUSE_ALL);
  assert_int_equal(get_rc(f, NULL, f->evs[0].data.id, &err), CTKN_ESTALE);
  assert_non_null(strstr(err.msg, "every partition is paused"));
  assert_non_null(strstr(err.msg, "schema version 2"));
  assert_int_equal(verify_rc(f, NULL, f->evs[0].data.token, &err), CTKN_ESTALE);
}

/* The page every list of Paddle's shape shares (query_int.h). */
static void test_page_renders_items_meta_and_more(void **state)
{
  struct ctkn__page pg;
  struct ctkn__buf u = CTKN__BUF_INIT;
  struct ctkn_err err = {0};
  char *json;
  bool desc = true;
  int per = 0;
  int64_t us;

  (void)state;
  assert_int_equal(ctkn__page_begin(&pg, 2, &err), CTKN_OK);
  assert_false(ctkn__page_full(&pg));
  assert_int_equal(ctkn__page_put(&pg, "{\"a\":1}", 7, "evt_1", &err), CTKN_OK);
  assert_false(ctkn__page_full(&pg));
  assert_int_equal(ctkn__page_put(&pg, "{\"b\":2}xx", 7, "evt_2", &err),
                   CTKN_OK);
  assert_true(ctkn__page_full(&pg)); /* a third was seen: has_more */
  assert_string_equal(pg.last, "evt_2");
  assert_int_equal(ctkn__page_end(&pg, CTKN_OK, "http://x/events?after=evt_2",
                                  9, "rid", &json, &err),
                   CTKN_OK);
  assert_string_equal(json, "{\"data\":[{\"a\":1},{\"b\":2}],\"meta\":{"
                            "\"request_id\":\"rid\",\"pagination\":{"
                            "\"per_page\":2,\"next\":\"http://x/events?"
                            "after=evt_2\",\"has_more\":true,"
                            "\"estimated_total\":9}}}");
  free(json);

  /* A failure frees the page and hands out nothing. */
  assert_int_equal(ctkn__page_begin(&pg, 5, &err), CTKN_OK);
  assert_int_equal(ctkn__page_put(&pg, "1", 1, "x", &err), CTKN_OK);
  json = (char *)&err;
  assert_int_equal(
      ctkn__page_end(&pg, CTKN_ESTORE, NULL, 0, "rid", &json, &err),
      CTKN_ESTORE);
  assert_null(json);

  /* The link's tail and the shared parameters. */
  assert_int_equal(ctkn__page_link_tail(&u, true, 0, false, 0, false, 7),
                   CTKN_OK);
  assert_string_equal(u.data,
                      "from=1970-01-01T00:00:00.000000Z&order_by=id%5BASC%5D&"
                      "per_page=7");
  ctkn__buf_free(&u);
  assert_int_equal(ctkn__page_per_page("20", &per, &err), CTKN_OK);
  assert_int_equal(per, 20);
  assert_int_equal(ctkn__page_per_page("0", &per, &err), CTKN_EINVAL);
  assert_int_equal(per, 20);
  assert_int_equal(ctkn__page_order_by("id[ASC]", &desc, &err), CTKN_OK);
  assert_false(desc);
  assert_int_equal(ctkn__page_time("to", "yesterday", &us, &err), CTKN_EINVAL);
  assert_non_null(strstr(err.msg, "RFC 3339"));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_get_answers_the_entity_or_notfound),
      T(test_verify_tells_active_revoked_and_unknown),
      T(test_history_is_every_event_oldest_first),
      T(test_history_json_holds_the_same_events),
      T(test_digest_counts_tokens_and_lists_offsets),
      T(test_list_defaults_are_active_newest_first),
      T(test_list_pages_through_every_token_both_ways),
      T(test_list_status_filters),
      T(test_list_edges),
      cmocka_unit_test(test_list_parameters_are_checked_naming_the_field),
      cmocka_unit_test(test_page_renders_items_meta_and_more),
      T(test_a_paused_partition_fails_only_its_tokens_closed),
      T(test_a_stale_partition_from_the_guard_fails_closed),
      T(test_a_pause_of_every_partition_fails_every_answer),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
