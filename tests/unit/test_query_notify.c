/*
 * test_query_notify.c - the read side without Kafka: notification list filters,
 * destinations and a notifier's delivery records read from a projection
 * in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/query.h"
#include "ctkn/settings.h"
#include "internal.h"

#define assert_contains(hay, needle)                                           \
  do {                                                                         \
    if (strstr((hay), (needle)) == NULL)                                       \
      fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));             \
  } while (0)

#define REQUEST_ID "1681f87f-9c36-4557-a1da-bbb622afa0cc"
#define DEST_A     "ntfset_01ghbkd0frb9k95cnhwd1bxpva"
#define DEST_B     "ntfset_01ghbkd0frb9k95cnhwd1bxpvb"
#define NTF_1      "ntf_01ghbkd0frb9k95cnhwd1bxp01"
#define NTF_2      "ntf_01ghbkd0frb9k95cnhwd1bxp02"
#define NTF_3      "ntf_01ghbkd0frb9k95cnhwd1bxp03"
#define T0         INT64_C(1700000000000000)

struct fx {
  char tmp[64];
  char db[96];
  ctkn_store *st;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  struct ctkn_store_opts opts = {.map_size = (size_t)64 << 20};
  struct ctkn_err err = {0};

  if (f == NULL)
    return -1;
  snprintf(f->tmp, sizeof(f->tmp), "/tmp/ctkn_test_query_XXXXXX");
  if (mkdtemp(f->tmp) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->db, sizeof(f->db), "%s/db", f->tmp);
  if (ctkn_store_open(&f->st, f->db, &opts, &err) != CTKN_OK) {
    fprintf(stderr, "open %s: %s\n", f->db, err.msg);
    rmdir(f->tmp);
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  ctkn_store_close(f->st);
  ctkn_store_remove(f->db);
  rmdir(f->tmp);
  free(f);
  return 0;
}

/* What a FILE * received, as one string. */
struct capture {
  char *text;
  size_t len;
  FILE *f;
};

static void capture_open(struct capture *c)
{
  c->text = NULL;
  c->len = 0;
  c->f = open_memstream(&c->text, &c->len);
  assert_non_null(c->f);
}

static const char *capture_text(struct capture *c)
{
  fflush(c->f);
  return c->text;
}

static void capture_close(struct capture *c)
{
  fclose(c->f);
  free(c->text);
}

static size_t count_lines(const char *s)
{
  size_t n = 0;

  for (; *s; s++)
    n += *s == '\n';
  return n;
}

/* ---- notification list filters --------------------------------------- */

static void test_ntf_status_names_and_pending(void **state)
{
  struct ctkn_ntf_list_params p;
  struct ctkn_err err = {0};

  (void)state;
  ctkn_ntf_list_params_init(&p);
  assert_int_equal(p.status_mask, 0);
  assert_string_equal(p.destination, "");
  assert_int_equal(ctkn_ntf_list_params_status(&p, "delivered", &err), CTKN_OK);
  assert_int_equal(p.status_mask, 1u << CTKN_NTF_DELIVERED);
  assert_int_equal(ctkn_ntf_list_params_status(&p, "failed,pending", &err),
                   CTKN_OK);
  assert_int_equal(p.status_mask, 1u << CTKN_NTF_FAILED |
                                      1u << CTKN_NTF_NOT_ATTEMPTED |
                                      1u << CTKN_NTF_NEEDS_RETRY);
  assert_int_equal(
      ctkn_ntf_list_params_status(&p, "not_attempted,needs_retry,", &err),
      CTKN_OK);
  assert_int_equal(p.status_mask,
                   1u << CTKN_NTF_NOT_ATTEMPTED | 1u << CTKN_NTF_NEEDS_RETRY);
  /* An empty list selects every status again. */
  assert_int_equal(ctkn_ntf_list_params_status(&p, "", &err), CTKN_OK);
  assert_int_equal(p.status_mask, 0);
}

static void test_ntf_status_refuses_unknown_and_empty_names(void **state)
{
  struct ctkn_ntf_list_params p;
  struct ctkn_err err = {0};

  (void)state;
  ctkn_ntf_list_params_init(&p);
  assert_int_equal(ctkn_ntf_list_params_status(&p, "delivered", &err), CTKN_OK);
  assert_int_equal(ctkn_ntf_list_params_status(&p, "delivered,sent", &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "status");
  assert_string_equal(err.msg, "\"sent\" is not delivered, failed, pending, "
                               "not_attempted or needs_retry");
  assert_int_equal(p.status_mask, 1u << CTKN_NTF_DELIVERED);
  assert_int_equal(ctkn_ntf_list_params_status(&p, ",failed", &err),
                   CTKN_EINVAL);
  assert_contains(err.msg, "\"\" is not");
  assert_int_equal(ctkn_ntf_list_params_status(&p, "Delivered", &err),
                   CTKN_EINVAL);
}

static void test_ntf_destination_must_be_a_destination_id(void **state)
{
  struct ctkn_ntf_list_params p;
  struct ctkn_err err = {0};

  (void)state;
  ctkn_ntf_list_params_init(&p);
  assert_int_equal(ctkn_ntf_list_params_destination(&p, DEST_A, &err), CTKN_OK);
  assert_string_equal(p.destination, DEST_A);
  assert_int_equal(ctkn_ntf_list_params_destination(
                       &p, "ctkn_01ghbkd0frb9k95cnhwd1bxpva", &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "destination");
  assert_string_equal(err.msg, CTKN_ID_RULE("ntfset_"));
}

/* ---- destinations ----------------------------------------------------- */

/* Project one destination, created by a planned add, and return its ID. */
static void add_destination(struct fx *f, char id[CTKN_DEST_ID_BUF])
{
  static const uint8_t key[CTKN_KEY_LEN] = {1, 2, 3};
  struct ctkn_setting_event *ev = calloc(1, sizeof(*ev));
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  char secret[CTKN_SECRET_BUF];
  struct ctkn_log_msg m;
  uint8_t *buf;
  size_t len;

  assert_non_null(ev);
  ctkn_dest_command_init(&c, CTKN_DEST_ADD);
  assert_int_equal(
      ctkn_dest_command_set_url(&c, "https://example.com/hook", NULL), CTKN_OK);
  assert_int_equal(
      ctkn_dest_command_set_events(&c, "client_token.created", NULL), CTKN_OK);
  assert_int_equal(
      ctkn_settings_plan(NULL, &c, key, NULL, 0, T0, ev, secret, &err),
      CTKN_PLAN_APPEND);
  assert_int_equal(ctkn_setting_event_encode(ev, &buf, &len, &err), CTKN_OK);
  memset(&m, 0, sizeof(m));
  m.value = buf;
  m.value_len = len;
  m.timestamp_ms = T0 / 1000;
  m.schema_version = 1;
  assert_int_equal(ctkn_settings_project(f->st, &m, 1, &err), CTKN_OK);
  memcpy(id, ev->data.id, CTKN_DEST_ID_BUF);
  free(buf);
  free(ev);
}

static void test_destinations_read_without_secrets(void **state)
{
  struct fx *f = *state;
  struct ctkn_err err = {0};
  char id[CTKN_DEST_ID_BUF], *json;

  assert_int_equal(ctkn_query_destinations(f->st, REQUEST_ID, &json, &err),
                   CTKN_OK);
  assert_string_equal(
      json, "{\"data\":[],\"meta\":{\"request_id\":\"" REQUEST_ID "\"}}");
  free(json);

  add_destination(f, id);
  assert_int_equal(ctkn_query_destinations(f->st, REQUEST_ID, &json, &err),
                   CTKN_OK);
  assert_contains(json, id);
  assert_contains(json, "https://example.com/hook");
  assert_null(strstr(json, "endpoint_secret_key"));
  free(json);

  assert_int_equal(ctkn_query_destination(f->st, id, REQUEST_ID, &json, &err),
                   CTKN_OK);
  assert_contains(json, "{\"data\":{\"id\":\"");
  assert_contains(json, id);
  assert_null(strstr(json, "endpoint_secret_key"));
  free(json);

  json = (char *)"untouched";
  assert_int_equal(
      ctkn_query_destination(f->st, DEST_B, REQUEST_ID, &json, &err),
      CTKN_ENOTFOUND);
  assert_null(json);
  assert_int_equal(
      ctkn_query_destination(f->st, "nonsense", REQUEST_ID, &json, &err),
      CTKN_ENOTFOUND);
}

/* ---- the notifications topic's projection (delivery.h) ---------------- */

static void put_notification(struct fx *f, const char *id, const char *dest,
                             ctkn_ntf_status status, uint32_t attempts)
{
  struct ctkn_notification n;
  struct ctkn_err err = {0};
  ctkn_store_txn *txn;
  uint8_t *buf, k[CTKN_NTF_ID_LEN + 4];
  size_t len;

  memset(&n, 0, sizeof(n));
  snprintf(n.id, sizeof(n.id), "%s", id);
  snprintf(n.dest, sizeof(n.dest), "%s", dest);
  snprintf(n.event_id, sizeof(n.event_id), "evt_01ghbkd0frb9k95cnhwd1bxpvk");
  snprintf(n.token_id, sizeof(n.token_id), "ctkn_01ghbkd0frb9k95cnhwd1bxpvk");
  n.type = CTKN_EVENT_CREATED;
  n.version = 1;
  n.occurred_at = T0;
  n.status = status;
  n.attempts = attempts;
  assert_int_equal(ctkn_store_begin(f->st, true, &txn, &err), CTKN_OK);
  assert_int_equal(ctkn_notification_encode(&n, &buf, &len, &err), CTKN_OK);
  assert_int_equal(ctkn_store_kv_put(txn, CTKN_TABLE_DELIVERIES, id,
                                     CTKN_NTF_ID_LEN, buf, len, &err),
                   CTKN_OK);
  free(buf);
  for (uint32_t a = 1; a <= attempts; a++) {
    struct ctkn_ntf_attempt at = {.n = a, .at = T0 + a, .status = 500};
    memcpy(k, id, CTKN_NTF_ID_LEN);
    ctkn__put_be32(k + CTKN_NTF_ID_LEN, a);
    assert_int_equal(ctkn_attempt_encode(&at, &buf, &len, &err), CTKN_OK);
    assert_int_equal(ctkn_store_kv_put(txn, CTKN_TABLE_DELIVERY_ATTEMPTS, k,
                                       sizeof(k), buf, len, &err),
                     CTKN_OK);
    free(buf);
  }
  assert_int_equal(ctkn_store_commit(txn, &err), CTKN_OK);
}

static void test_notifications_filter_by_destination_and_status(void **state)
{
  struct fx *f = *state;
  struct ctkn_ntf_list_params p;
  struct ctkn_err err = {0};
  struct capture c;

  put_notification(f, NTF_1, DEST_A, CTKN_NTF_DELIVERED, 1);
  put_notification(f, NTF_2, DEST_A, CTKN_NTF_NEEDS_RETRY, 2);
  put_notification(f, NTF_3, DEST_B, CTKN_NTF_FAILED, 0);

  ctkn_ntf_list_params_init(&p);
  capture_open(&c);
  assert_int_equal(ctkn_query_notifications(f->st, &p, c.f, &err), CTKN_OK);
  assert_int_equal(count_lines(capture_text(&c)), 3);
  /* ID order, and no payload: the event is not in this projection. */
  assert_true(strstr(c.text, NTF_1) < strstr(c.text, NTF_2));
  assert_true(strstr(c.text, NTF_2) < strstr(c.text, NTF_3));
  assert_contains(c.text, "\"payload\":null");
  capture_close(&c);

  assert_int_equal(ctkn_ntf_list_params_destination(&p, DEST_A, &err), CTKN_OK);
  assert_int_equal(ctkn_ntf_list_params_status(&p, "pending", &err), CTKN_OK);
  capture_open(&c);
  assert_int_equal(ctkn_query_notifications(f->st, &p, c.f, &err), CTKN_OK);
  assert_int_equal(count_lines(capture_text(&c)), 1);
  assert_contains(c.text, NTF_2);
  assert_contains(c.text, "\"status\":\"needs_retry\"");
  capture_close(&c);
}

static void test_notification_and_its_attempts(void **state)
{
  struct fx *f = *state;
  struct ctkn_err err = {0};
  struct capture c;

  put_notification(f, NTF_2, DEST_A, CTKN_NTF_NEEDS_RETRY, 2);
  capture_open(&c);
  assert_int_equal(ctkn_query_notification(f->st, NTF_2, c.f, &err), CTKN_OK);
  assert_int_equal(count_lines(capture_text(&c)), 1);
  assert_contains(c.text, "{\"id\":\"" NTF_2 "\"");
  assert_contains(c.text, "\"times_attempted\":2");
  capture_close(&c);

  capture_open(&c);
  assert_int_equal(ctkn_query_attempts(f->st, NTF_2, c.f, &err), CTKN_OK);
  assert_int_equal(count_lines(capture_text(&c)), 2);
  assert_true(strstr(c.text, "\"attempt\":1") <
              strstr(c.text, "\"attempt\":2"));
  assert_contains(c.text, "\"response_code\":500");
  capture_close(&c);

  capture_open(&c);
  assert_int_equal(ctkn_query_notification(f->st, NTF_1, c.f, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_query_attempts(f->st, NTF_1, c.f, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_query_notification(f->st, "ntf_bad", c.f, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "id");
  assert_int_equal(ctkn_query_attempts(f->st, "ntf_bad", c.f, &err),
                   CTKN_EINVAL);
  assert_string_equal(capture_text(&c), "");
  capture_close(&c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ntf_status_names_and_pending),
      cmocka_unit_test(test_ntf_status_refuses_unknown_and_empty_names),
      cmocka_unit_test(test_ntf_destination_must_be_a_destination_id),
      cmocka_unit_test_setup_teardown(test_destinations_read_without_secrets,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_notifications_filter_by_destination_and_status, setup, teardown),
      cmocka_unit_test_setup_teardown(test_notification_and_its_attempts, setup,
                                      teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
