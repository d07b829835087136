/*
 * test_notify.c - webhook delivery's pure parts and the state it keeps:
 * Paddle-Signature, notification IDs, the msgpack delivery state, Paddle's
 * notification JSON, and, over a throwaway LMDB projection, the settings
 * projection, the positions index and notification replay.
 *
 * Store-backed tests get a fresh mkdtemp() directory each; settings
 * records are hand-built struct ctkn_log_msg values, as the consumer
 * would hand them over, so no broker is needed.
 */
#include <jansson.h>
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
#include <lmdb.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/log.h"
#include "ctkn/notify.h"
#include "ctkn/settings.h"
#include "ctkn/store.h"
#include "ctkn/token.h"
#include "json_assert.h"

#define T0       INT64_C(1750948574695521) /* 2025-06-26T14:36:14.695521Z */
#define T0_TEXT  "2025-06-26T14:36:14.695521Z"
#define URL      "https://hooks.example.com/paddle"
#define EVT_ID   "evt_01h04vsbhqbpsdbkn6g5ya2r2k"
#define EVT_ID2  "evt_01h04vsbhqbpsdbkn6g5ya2r2m"
#define DEST_ID  "ntfset_01h04vsbhqbpsdbkn6g5ya2r2k"
#define DEST_ID2 "ntfset_01h04vsbhqbpsdbkn6g5ya2r2m"
#define TOKEN_ID "ctkn_01h04vsbhqbpsdbkn6g5ya2r2k"
#define NTF_ID   "ntf_01h04vsbhqbpsdbkn6g5ya2r2k"
#define NTF_ID2  "ntf_01h04vsbhqbpsdbkn6g5ya2r2m"

#define assert_contains(hay, needle)                                           \
  do {                                                                         \
    if (strstr((hay), (needle)) == NULL)                                       \
      fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));             \
  } while (0)

static uint8_t key[CTKN_KEY_LEN];

/* ---- signature ------------------------------------------------------------
 */

static void test_signature_matches_paddles_vector(void **st)
{
  static const char body[] = "{\"data\": [\"1\", \"2\"]}";
  char sig[CTKN_SIGNATURE_BUF], other[CTKN_SIGNATURE_BUF];
  (void)st;

  ctkn_webhook_signature("VALID_SECRET", 1698796800, body, strlen(body), sig);
  assert_string_equal(sig, "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769"
                           "591ea969c99dea3105d0ec9612cf43f9");

  /* The timestamp, the body and the secret are all signed. */
  ctkn_webhook_signature("VALID_SECRET", 1698796801, body, strlen(body), other);
  /* HMAC-SHA256(secret, "1698796801:" body), from Python's hmac. */
  assert_string_equal(other, "ts=1698796801;h1=d8bd2a18a4edeb259831beaeb57938"
                             "de732cd3c463f3efbd7bbddaa61358040e");
  ctkn_webhook_signature("VALID_SECRET", 1698796800, body, strlen(body) - 1,
                         other);
  assert_string_not_equal(other + 17, sig + 17);
  assert_int_equal(strlen(other), strlen(sig));
  ctkn_webhook_signature("VALID_SECRET2", 1698796800, body, strlen(body),
                         other);
  assert_string_not_equal(other + 17, sig + 17);
  assert_int_equal(strlen(other), strlen(sig));
}

/* ---- notification IDs ---------------------------------------------------- */

static void
test_notification_id_is_derived_from_event_and_destination(void **st)
{
  char a[CTKN_NTF_ID_BUF], b[CTKN_NTF_ID_BUF], c[CTKN_NTF_ID_BUF];
  char d[CTKN_NTF_ID_BUF], evt[CTKN_EVT_ID_LEN + 1];
  (void)st;

  ctkn_notification_id(EVT_ID, DEST_ID, a);
  ctkn_notification_id(EVT_ID, DEST_ID, b);
  assert_string_equal(a, b);
  assert_true(ctkn_id_valid("ntf_", a));
  assert_int_equal(ctkn_id_time_ms("ntf_", a), ctkn_id_time_ms("evt_", EVT_ID));

  ctkn_notification_id(EVT_ID, DEST_ID2, c); /* another destination */
  assert_string_not_equal(c, a);
  assert_true(ctkn_id_valid("ntf_", c));
  ctkn_notification_id(EVT_ID2, DEST_ID, d); /* another event */
  assert_string_not_equal(d, a);
  assert_string_not_equal(d, c);

  /* An event of another time: the notification sorts with it. */
  assert_int_equal(ctkn_id_generate("evt_", T0 / 1000, evt, sizeof(evt)), 0);
  ctkn_notification_id(evt, DEST_ID, d);
  assert_true(ctkn_id_valid("ntf_", d));
  assert_int_equal(ctkn_id_time_ms("ntf_", d), ctkn_id_time_ms("evt_", evt));
  assert_int_not_equal(ctkn_id_time_ms("ntf_", d), ctkn_id_time_ms("ntf_", a));
  ctkn_notification_id(evt, DEST_ID, c);
  assert_string_equal(c, d);
}

/* ---- the delivery state in msgpack ----------------------------------------
 */

static void sample_ntf(struct ctkn_notification *n)
{
  memset(n, 0, sizeof(*n));
  strcpy(n->id, NTF_ID);
  strcpy(n->dest, DEST_ID);
  strcpy(n->event_id, EVT_ID);
  n->type = CTKN_EVENT_REVOKED;
  strcpy(n->token_id, TOKEN_ID);
  n->version = 7;
  n->partition = 3;
  n->offset = INT64_C(123456789012);
  n->occurred_at = T0;
  n->status = CTKN_NTF_NEEDS_RETRY;
  n->attempts = 4;
  n->first_attempt_at = T0 + 1000;
  n->last_attempt_at = T0 + 9000;
  n->delivered_at = 0;
  n->retry_at = T0 + 60000000;
  n->last_status = 503;
}

static void assert_ntf_equal(const struct ctkn_notification *a,
                             const struct ctkn_notification *b)
{
  assert_string_equal(a->id, b->id);
  assert_string_equal(a->dest, b->dest);
  assert_string_equal(a->event_id, b->event_id);
  assert_int_equal(a->type, b->type);
  assert_string_equal(a->token_id, b->token_id);
  assert_int_equal(a->version, b->version);
  assert_int_equal(a->partition, b->partition);
  assert_int_equal(a->offset, b->offset);
  assert_int_equal(a->occurred_at, b->occurred_at);
  assert_int_equal(a->status, b->status);
  assert_int_equal(a->replay, b->replay);
  assert_string_equal(a->replay_of, b->replay_of);
  assert_int_equal(a->attempts, b->attempts);
  assert_int_equal(a->first_attempt_at, b->first_attempt_at);
  assert_int_equal(a->last_attempt_at, b->last_attempt_at);
  assert_int_equal(a->delivered_at, b->delivered_at);
  assert_int_equal(a->retry_at, b->retry_at);
  assert_int_equal(a->last_status, b->last_status);
}

static void ntf_round_trip(const struct ctkn_notification *n)
{
  struct ctkn_notification back;
  struct ctkn_err err = {0};
  uint8_t *buf;
  size_t len;

  assert_int_equal(ctkn_notification_encode(n, &buf, &len, &err), CTKN_OK);
  if (ctkn_notification_decode(buf, len, &back, &err) != CTKN_OK)
    fail_msg("decode: %s", err.msg);
  free(buf);
  assert_ntf_equal(&back, n);
}

static void test_notification_round_trips(void **st)
{
  struct ctkn_notification n;
  (void)st;

  /* An API key's event: its type and its apikey_ ID. */
  sample_ntf(&n);
  n.type = CTKN_DEST_AKEY_EXPIRED;
  strcpy(n.token_id, "apikey_01h00000000000000000000000");
  n.token_id[7 + 26] = '\0';
  assert_true(CTKN_NTF_IS_AKEY(&n));
  ntf_round_trip(&n);

  sample_ntf(&n);
  ntf_round_trip(&n);

  /* A delivered replay of another notification. */
  n.type = CTKN_EVENT_CREATED;
  n.status = CTKN_NTF_DELIVERED;
  n.replay = true;
  strcpy(n.replay_of, NTF_ID2);
  n.attempts = 1;
  n.delivered_at = T0 + 9001;
  n.retry_at = 0;
  n.last_status = 204;
  n.partition = 0;
  n.offset = 0;
  n.version = UINT64_MAX;
  ntf_round_trip(&n);

  /* Never attempted: every time 0, no status. */
  sample_ntf(&n);
  n.type = CTKN_EVENT_UPDATED;
  n.status = CTKN_NTF_NOT_ATTEMPTED;
  n.attempts = 0;
  n.first_attempt_at = n.last_attempt_at = n.retry_at = 0;
  n.last_status = 0;
  ntf_round_trip(&n);

  sample_ntf(&n);
  n.status = CTKN_NTF_FAILED;
  n.attempts = UINT32_MAX;
  ntf_round_trip(&n);
}

static void expect_ntf_undecodable(const void *buf, size_t len)
{
  struct ctkn_notification back;
  struct ctkn_err err = {0};

  if (ctkn_notification_decode(buf, len, &back, &err) != CTKN_EDECODE)
    fail_msg("%zu bytes decoded as a notification", len);
  assert_contains(err.msg, "not a stored notification");
  assert_string_equal(back.id, "");
}

static void expect_bad_ntf(const struct ctkn_notification *n)
{
  uint8_t *buf;
  size_t len;

  assert_int_equal(ctkn_notification_encode(n, &buf, &len, NULL), CTKN_OK);
  expect_ntf_undecodable(buf, len);
  free(buf);
}

static void test_notification_decode_is_strict(void **st)
{
  static const uint8_t junk[] = {0x94, 0x01, 0xa1, 'x', 0xc0, 0xc3};
  struct ctkn_notification n, bad;
  uint8_t *buf, *longer;
  size_t len;
  (void)st;

  expect_ntf_undecodable("", 0);
  expect_ntf_undecodable(junk, sizeof(junk));
  expect_ntf_undecodable("\xff\xff\xff", 3);

  sample_ntf(&n);
  assert_int_equal(ctkn_notification_encode(&n, &buf, &len, NULL), CTKN_OK);
  for (size_t k = 0; k < len; k++)
    expect_ntf_undecodable(buf, k);
  longer = malloc(len + 1);
  assert_non_null(longer);
  memcpy(longer, buf, len);
  longer[len] = 0xc0;
  expect_ntf_undecodable(longer, len + 1);
  memcpy(longer, buf, len);
  /* 20 elements: array 16 (0xdc 0x00 0x14), then the layout number. */
  assert_int_equal(longer[0], 0xdc);
  assert_int_equal(longer[3], 1);
  longer[3] = 2;
  expect_ntf_undecodable(longer, len);
  longer[3] = 1;
  longer[2] = 19; /* one element short */
  expect_ntf_undecodable(longer, len);
  free(longer);
  free(buf);

  /* Values outside their ranges. */
  bad = n;
  bad.status = (ctkn_ntf_status)5;
  expect_bad_ntf(&bad);
  bad = n;
  bad.status = (ctkn_ntf_status)0;
  expect_bad_ntf(&bad);
  bad = n;
  bad.type = (ctkn_event_type)0;
  expect_bad_ntf(&bad);
  bad = n;
  bad.type = (ctkn_event_type)4;
  expect_bad_ntf(&bad);
  bad = n;
  bad.partition = -1;
  expect_bad_ntf(&bad);
  bad = n;
  bad.last_status = 1000;
  expect_bad_ntf(&bad);
}

/* A header that claims billions of elements must be refused from the
 * bytes at hand, never handed to msgpack-c, which would allocate for the
 * count first (under ASan that aborts the test). */
static void test_decoders_refuse_bogus_counts(void **st)
{
  static const uint8_t a32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
  static const uint8_t a16[] = {0xdc, 0x00, 0x14, 0x01, 0xdd,
                                0x40, 0x00, 0x00, 0x01, 0xc0};
  struct ctkn_notification n;
  struct ctkn_ntf_attempt a;
  struct ctkn_destination d;
  struct ctkn_err err;
  (void)st;

  for (int i = 0; i < 2; i++) {
    const uint8_t *b = i ? a16 : a32;
    size_t len = i ? sizeof(a16) : sizeof(a32);
    assert_int_equal(ctkn_notification_decode(b, len, &n, &err), CTKN_EDECODE);
    assert_int_equal(ctkn_attempt_decode(b, len, &a, &err), CTKN_EDECODE);
    assert_int_equal(ctkn_destination_decode(b, len, &d, &err), CTKN_EDECODE);
  }
}

static void test_attempt_round_trips_and_decode_is_strict(void **st)
{
  struct ctkn_ntf_attempt a, back;
  struct ctkn_err err = {0};
  uint8_t *buf;
  size_t len;
  (void)st;

  memset(&a, 0, sizeof(a));
  a.n = 3;
  a.at = T0 + 5;
  a.status = 502;
  a.latency_us = 123456;
  assert_int_equal(ctkn_attempt_encode(&a, &buf, &len, &err), CTKN_OK);
  assert_int_equal(ctkn_attempt_decode(buf, len, &back, &err), CTKN_OK);
  assert_int_equal(back.n, 3);
  assert_int_equal(back.at, T0 + 5);
  assert_int_equal(back.status, 502);
  assert_int_equal(back.latency_us, 123456);
  assert_string_equal(back.error, "");
  for (size_t k = 0; k < len; k++)
    assert_int_equal(ctkn_attempt_decode(buf, k, &back, &err), CTKN_EDECODE);
  free(buf);

  /* No response: an error text instead. */
  a.n = 1;
  a.status = 0;
  a.latency_us = 5000000;
  strcpy(a.error, "Connection refused");
  assert_int_equal(ctkn_attempt_encode(&a, &buf, &len, &err), CTKN_OK);
  assert_int_equal(ctkn_attempt_decode(buf, len, &back, &err), CTKN_OK);
  assert_int_equal(back.n, 1);
  assert_int_equal(back.status, 0);
  assert_int_equal(back.latency_us, 5000000);
  assert_string_equal(back.error, "Connection refused");
  free(buf);

  /* Attempts count from 1; a status has three digits. */
  a.n = 0;
  assert_int_equal(ctkn_attempt_encode(&a, &buf, &len, &err), CTKN_OK);
  assert_int_equal(ctkn_attempt_decode(buf, len, &back, &err), CTKN_EDECODE);
  free(buf);
  a.n = 1;
  a.status = 1000;
  assert_int_equal(ctkn_attempt_encode(&a, &buf, &len, &err), CTKN_OK);
  assert_int_equal(ctkn_attempt_decode(buf, len, &back, &err), CTKN_EDECODE);
  free(buf);
  assert_int_equal(ctkn_attempt_decode("\x93\x01\x01\x01", 4, &back, &err),
                   CTKN_EDECODE);
  assert_int_equal(ctkn_attempt_decode("garbage", 7, &back, &err),
                   CTKN_EDECODE);
}

/* ---- JSON ------------------------------------------------------------------
 */

static void assert_time(json_t *o, const char *k, int64_t us)
{
  char want[CTKN_TIME_BUF];

  assert_int_equal(ctkn_time_format(us, want), 0);
  assert_string_equal(jstr(o, k), want);
}

static void assert_jnull(json_t *o, const char *k)
{
  json_t *v = json_object_get(o, k);

  if (v == NULL || !json_is_null(v))
    fail_msg("%s is not null", k);
}

static void test_json_notification_has_paddles_shape(void **st)
{
  static const char *const keys[] = {"id",
                                     "type",
                                     "status",
                                     "payload",
                                     "occurred_at",
                                     "delivered_at",
                                     "replayed_at",
                                     "origin",
                                     "last_attempt_at",
                                     "retry_at",
                                     "times_attempted",
                                     "notification_setting_id"};
  static const char payload[] =
      "{\"event_id\":\"" EVT_ID "\",\"event_type\":\"client_token.revoked\","
      "\"data\":{\"id\":\"" TOKEN_ID "\",\"n\":[1,2]}}";
  struct ctkn_notification n;
  json_t *j, *p, *want;
  (void)st;

  /* Waiting for a retry: retry_at is set, delivered_at null. */
  sample_ntf(&n);
  j = parse(ctkn_json_notification(&n, payload));
  assert_keys(j, keys, sizeof(keys) / sizeof(keys[0]));
  assert_string_equal(jstr(j, "id"), NTF_ID);
  assert_string_equal(jstr(j, "type"), "client_token.revoked");
  assert_string_equal(jstr(j, "status"), "needs_retry");
  p = json_object_get(j, "payload");
  want = json_loads(payload, 0, NULL);
  assert_non_null(want);
  assert_true(json_is_object(p));
  assert_true(json_equal(p, want));
  json_decref(want);
  assert_string_equal(jstr(j, "occurred_at"), T0_TEXT);
  assert_jnull(j, "delivered_at");
  assert_jnull(j, "replayed_at");
  assert_string_equal(jstr(j, "origin"), "event");
  assert_time(j, "last_attempt_at", T0 + 9000);
  assert_time(j, "retry_at", T0 + 60000000);
  assert_true(json_is_integer(json_object_get(j, "times_attempted")));
  assert_int_equal(json_integer_value(json_object_get(j, "times_attempted")),
                   4);
  assert_string_equal(jstr(j, "notification_setting_id"), DEST_ID);
  json_decref(j);

  /* Delivered replay: no retry_at even though one is stored; no payload. */
  n.status = CTKN_NTF_DELIVERED;
  n.delivered_at = T0 + 9001;
  n.replay = true;
  strcpy(n.replay_of, NTF_ID2);
  j = parse(ctkn_json_notification(&n, NULL));
  assert_keys(j, keys, sizeof(keys) / sizeof(keys[0]));
  assert_string_equal(jstr(j, "status"), "delivered");
  assert_jnull(j, "payload");
  assert_time(j, "delivered_at", T0 + 9001);
  assert_jnull(j, "retry_at");
  assert_string_equal(jstr(j, "origin"), "replay");
  assert_time(j, "replayed_at", T0 + 1000);
  json_decref(j);

  /* Not attempted yet: no attempt times. */
  sample_ntf(&n);
  n.status = CTKN_NTF_NOT_ATTEMPTED;
  n.type = CTKN_EVENT_CREATED;
  n.attempts = 0;
  n.first_attempt_at = n.last_attempt_at = n.retry_at = 0;
  j = parse(ctkn_json_notification(&n, "{}"));
  assert_string_equal(jstr(j, "status"), "not_attempted");
  assert_string_equal(jstr(j, "type"), "client_token.created");
  assert_jnull(j, "last_attempt_at");
  assert_jnull(j, "retry_at");
  assert_jnull(j, "delivered_at");
  assert_int_equal(json_integer_value(json_object_get(j, "times_attempted")),
                   0);
  json_decref(j);
}

static void test_json_attempt_shape(void **st)
{
  static const char *const keys[] = {
      "notification_id", "attempt", "attempted_at",          "response_code",
      "latency_ms",      "error",   "response_content_type", "response_body"};
  struct ctkn_ntf_attempt a;
  json_t *j;
  (void)st;

  memset(&a, 0, sizeof(a));
  a.n = 2;
  a.at = T0;
  a.status = 200;
  a.latency_us = 12500;
  j = parse(ctkn_json_attempt(NTF_ID, &a));
  assert_keys(j, keys, sizeof(keys) / sizeof(keys[0]));
  assert_string_equal(jstr(j, "notification_id"), NTF_ID);
  assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 2);
  assert_string_equal(jstr(j, "attempted_at"), T0_TEXT);
  assert_true(json_is_integer(json_object_get(j, "response_code")));
  assert_int_equal(json_integer_value(json_object_get(j, "response_code")),
                   200);
  assert_true(json_is_number(json_object_get(j, "latency_ms")));
  assert_float_equal(json_number_value(json_object_get(j, "latency_ms")), 12.5,
                     1e-9);
  assert_jnull(j, "error");
  json_decref(j);

  /* A latency prints as its microseconds say, not as the nearest double's
   * 17 digits; a body is kept whole, NUL bytes and all. */
  a.latency_us = 5006408;
  memcpy(a.body, "ok\0\xff!", 5);
  a.body_len = 5;
  char *text = ctkn_json_attempt(NTF_ID, &a);
  assert_non_null(text);
  assert_contains(text, "\"latency_ms\":5006.408,");
  assert_contains(text, "\"response_body\":\"ok\\u0000\xef\xbf\xbd!\"");
  free(text);
  a.latency_us = 12500;
  a.body_len = 0;
  a.body[0] = '\0';

  a.status = 0;
  strcpy(a.error, "Operation timed out");
  j = parse(ctkn_json_attempt(NTF_ID, &a));
  assert_keys(j, keys, sizeof(keys) / sizeof(keys[0]));
  assert_jnull(j, "response_code");
  assert_string_equal(jstr(j, "error"), "Operation timed out");
  json_decref(j);
}

static void test_ntf_status_names(void **st)
{
  (void)st;
  assert_string_equal(ctkn_ntf_status_str(CTKN_NTF_NOT_ATTEMPTED),
                      "not_attempted");
  assert_string_equal(ctkn_ntf_status_str(CTKN_NTF_NEEDS_RETRY), "needs_retry");
  assert_string_equal(ctkn_ntf_status_str(CTKN_NTF_DELIVERED), "delivered");
  assert_string_equal(ctkn_ntf_status_str(CTKN_NTF_FAILED), "failed");
  assert_null(ctkn_ntf_status_str((ctkn_ntf_status)0));
  assert_null(ctkn_ntf_status_str((ctkn_ntf_status)5));
  assert_null(ctkn_ntf_status_str((ctkn_ntf_status)-1));
}

/* ---- store-backed ----------------------------------------------------------
 */

struct fx {
  char tmp[64];
  char db[128];
  ctkn_store *st;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  struct ctkn_store_opts opts = {.map_size = (size_t)64 << 20};
  struct ctkn_err err = {0};

  if (f == NULL)
    return -1;
  snprintf(f->tmp, sizeof(f->tmp), "/tmp/ctkn_test_notify_XXXXXX");
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

static ctkn_store_txn *begin(ctkn_store *st, bool write)
{
  ctkn_store_txn *t = NULL;

  assert_int_equal(ctkn_store_begin(st, write, &t, NULL), CTKN_OK);
  return t;
}

static void commit(ctkn_store_txn *t)
{
  struct ctkn_err err = {0};

  if (ctkn_store_commit(t, &err) != CTKN_OK)
    fail_msg("commit: %s", err.msg);
}

/* An encoded settings event: what a record on the settings topic holds. */
struct enc {
  uint8_t *buf;
  size_t len;
};

static struct enc encode(const struct ctkn_setting_event *ev)
{
  struct enc e;
  struct ctkn_err err = {0};

  if (ctkn_setting_event_encode(ev, &e.buf, &e.len, &err) != CTKN_OK)
    fail_msg("encode: %s", err.msg);
  return e;
}

static struct ctkn_log_msg msg(int32_t p, int64_t off, const void *v,
                               size_t len)
{
  struct ctkn_log_msg m;

  memset(&m, 0, sizeof(m));
  m.partition = p;
  m.offset = off;
  m.timestamp_ms = T0 / 1000;
  m.value = v;
  m.value_len = len;
  m.schema_version = 1;
  return m;
}

static struct ctkn_log_msg msg_enc(int32_t p, int64_t off, struct enc e)
{
  return msg(p, off, e.buf, e.len);
}

static void project(struct fx *f, const struct ctkn_log_msg *m, size_t n)
{
  struct ctkn_err err = {0};
  int rc = ctkn_settings_project(f->st, m, n, &err);

  if (rc != CTKN_OK)
    fail_msg("project: %s: %s", ctkn_strerror(rc), err.msg);
}

static struct ctkn_setting_event *plan_add(const int64_t *start, int32_t n,
                                           int64_t now)
{
  struct ctkn_setting_event *ev = calloc(1, sizeof(*ev));
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};
  char secret[CTKN_SECRET_BUF];

  assert_non_null(ev);
  ctkn_dest_command_init(&c, CTKN_DEST_ADD);
  assert_int_equal(ctkn_dest_command_set_url(&c, URL, NULL), CTKN_OK);
  assert_int_equal(
      ctkn_dest_command_set_events(&c, "client_token.revoked", NULL), CTKN_OK);
  if (ctkn_settings_plan(NULL, &c, key, start, n, now, ev, secret, &err) !=
      CTKN_PLAN_APPEND)
    fail_msg("plan add: %s", err.msg);
  return ev;
}

/* Plan a change (kind) of cur: an update sets the URL to url. */
static struct ctkn_setting_event *
plan_change(const struct ctkn_destination *cur, ctkn_dest_cmd_kind kind,
            const char *url, int64_t now)
{
  struct ctkn_setting_event *ev = calloc(1, sizeof(*ev));
  struct ctkn_dest_command c;
  struct ctkn_err err = {0};

  assert_non_null(ev);
  ctkn_dest_command_init(&c, kind);
  assert_int_equal(ctkn_dest_command_set_id(&c, cur->id, NULL), CTKN_OK);
  if (kind == CTKN_DEST_UPDATE)
    assert_int_equal(ctkn_dest_command_set_url(&c, url, NULL), CTKN_OK);
  if (ctkn_settings_plan(cur, &c, NULL, NULL, 0, now, ev, NULL, &err) !=
      CTKN_PLAN_APPEND)
    fail_msg("plan change: %s", err.msg);
  return ev;
}

static struct ctkn_destination get_dest(struct fx *f, const char *id,
                                        bool include_deleted)
{
  struct ctkn_destination d;
  struct ctkn_err err = {0};
  ctkn_store_txn *t = begin(f->st, false);
  int rc = ctkn_settings_get(t, id, include_deleted, &d, &err);

  ctkn_store_abort(t);
  if (rc != CTKN_OK)
    fail_msg("get %s: %s", id, err.msg);
  return d;
}

/* The fate of a settings record: 1 applied, 0 not (reason filled), -1 not
 * projected. */
static int fate(struct fx *f, int32_t p, int64_t off, char *reason,
                size_t reasonsz)
{
  ctkn_store_txn *t = begin(f->st, false);
  bool applied = false;
  int rc = ctkn_settings_fate(t, p, off, &applied, reason, reasonsz, NULL);

  ctkn_store_abort(t);
  if (rc == CTKN_ENOTFOUND)
    return -1;
  assert_int_equal(rc, CTKN_OK);
  return applied ? 1 : 0;
}

static void test_settings_project_applies_rejects_and_quarantines(void **state)
{
  struct fx *f = *state;
  static const int64_t start[2] = {5, 7};
  struct ctkn_setting_event *add = plan_add(start, 2, T0);
  struct ctkn_setting_event *up, *up3, *bad;
  struct ctkn_destination d;
  struct enc e_add = encode(add), e_up, e_up3, e_bad;
  struct ctkn_log_msg m[4];
  char reason[256];

  /* A create then an update. */
  up = plan_change(&add->data, CTKN_DEST_UPDATE, "https://b.example/", T0 + 1);
  e_up = encode(up);
  m[0] = msg_enc(0, 0, e_add);
  m[1] = msg_enc(0, 1, e_up);
  project(f, m, 2);
  d = get_dest(f, add->data.id, false);
  assert_int_equal(d.version, 2);
  assert_string_equal(d.url, "https://b.example/");
  assert_int_equal(d.created_at, T0);
  assert_int_equal(d.updated_at, T0 + 1);
  assert_memory_equal(d.sealed, add->data.sealed, sizeof(d.sealed));
  assert_int_equal(fate(f, 0, 0, reason, sizeof(reason)), 1);
  assert_int_equal(fate(f, 0, 1, reason, sizeof(reason)), 1);
  assert_int_equal(fate(f, 0, 2, reason, sizeof(reason)), -1);

  /* A stale duplicate is rejected, garbage and an impossible event are
   * quarantined, and the projection goes on past them. */
  up3 = plan_change(&d, CTKN_DEST_UPDATE, "https://c.example/", T0 + 2);
  e_up3 = encode(up3);
  bad = plan_change(&d, CTKN_DEST_UPDATE, "https://d.example/", T0 + 3);
  bad->nstart = 1; /* start offsets on an update */
  e_bad = encode(bad);
  struct ctkn_log_msg m2[4] = {msg_enc(0, 2, e_up),
                               msg(0, 3, "\xff\xff\xff garbage", 11),
                               msg_enc(0, 4, e_bad), msg_enc(0, 5, e_up3)};
  project(f, m2, 4);
  reason[0] = '\0';
  assert_int_equal(fate(f, 0, 2, reason, sizeof(reason)), 0);
  assert_contains(reason, "version");
  reason[0] = '\0';
  assert_int_equal(fate(f, 0, 3, reason, sizeof(reason)), 0);
  assert_true(reason[0] != '\0');
  reason[0] = '\0';
  assert_int_equal(fate(f, 0, 4, reason, sizeof(reason)), 0);
  assert_contains(reason, "start_offsets: ");
  assert_contains(reason, "created event");
  assert_int_equal(fate(f, 0, 5, reason, sizeof(reason)), 1);
  d = get_dest(f, add->data.id, false);
  assert_int_equal(d.version, 3);
  assert_string_equal(d.url, "https://c.example/");

  /* Start offsets: recorded ones, 0 beyond them. */
  {
    ctkn_store_txn *t = begin(f->st, false);
    assert_int_equal(ctkn_settings_start(t, add->data.id, 0), 5);
    assert_int_equal(ctkn_settings_start(t, add->data.id, 1), 7);
    assert_int_equal(ctkn_settings_start(t, add->data.id, 2), 0);
    assert_int_equal(ctkn_settings_start(t, DEST_ID, 0), 0);
    ctkn_store_abort(t);
  }

  free(e_add.buf);
  free(e_up.buf);
  free(e_up3.buf);
  free(e_bad.buf);
  free(add);
  free(up);
  free(up3);
  free(bad);
}

static void test_settings_project_skips_records_below_its_offset(void **state)
{
  struct fx *f = *state;
  struct ctkn_setting_event *add = plan_add(NULL, 0, T0);
  struct ctkn_setting_event *up, *up3;
  struct ctkn_destination d;
  struct enc e_add = encode(add), e_up, e_up3;
  struct ctkn_log_msg m[3];
  char reason[256];

  up = plan_change(&add->data, CTKN_DEST_UPDATE, "https://b.example/", T0 + 1);
  e_up = encode(up);
  m[0] = msg_enc(0, 0, e_add);
  m[1] = msg(0, 1, "junk", 4);
  m[2] = msg_enc(0, 2, e_up);
  project(f, m, 3);
  assert_int_equal(get_dest(f, add->data.id, false).version, 2);
  assert_int_equal(fate(f, 0, 1, reason, sizeof(reason)), 0);

  /* A valid next change delivered again at offset 1: below the stored
   * offset, so skipped; the same record at offset 3 applies. */
  d = get_dest(f, add->data.id, false);
  up3 = plan_change(&d, CTKN_DEST_UPDATE, "https://c.example/", T0 + 2);
  e_up3 = encode(up3);
  m[0] = msg_enc(0, 1, e_up3);
  project(f, m, 1);
  d = get_dest(f, add->data.id, false);
  assert_int_equal(d.version, 2);
  assert_string_equal(d.url, "https://b.example/");
  assert_int_equal(fate(f, 0, 1, reason, sizeof(reason)), 0);

  /* Offsets are per partition: the same offset on partition 1 is new. */
  m[0] = msg_enc(1, 1, e_up3);
  project(f, m, 1);
  assert_int_equal(fate(f, 1, 1, reason, sizeof(reason)), 1);
  d = get_dest(f, add->data.id, false);
  assert_int_equal(d.version, 3);
  assert_string_equal(d.url, "https://c.example/");

  m[0] = msg_enc(0, 3, e_up3); /* now a stale duplicate */
  project(f, m, 1);
  assert_int_equal(fate(f, 0, 3, reason, sizeof(reason)), 0);
  assert_contains(reason, "version");
  assert_int_equal(get_dest(f, add->data.id, false).version, 3);

  free(e_add.buf);
  free(e_up.buf);
  free(e_up3.buf);
  free(add);
  free(up);
  free(up3);
}

static void test_settings_project_stops_at_a_newer_schema(void **state)
{
  struct fx *f = *state;
  struct ctkn_setting_event *a = plan_add(NULL, 0, T0);
  struct ctkn_setting_event *b = plan_add(NULL, 0, T0 + 5);
  struct enc ea = encode(a), eb = encode(b);
  struct ctkn_log_msg m[2] = {msg_enc(0, 0, ea), msg_enc(0, 1, eb)};
  struct ctkn_err err = {0};
  char reason[64];

  m[1].schema_version = CTKN_SCHEMA_VERSION + 1;
  assert_int_equal(ctkn_settings_project(f->st, m, 2, &err), CTKN_EFORMAT);
  assert_contains(err.msg, "upgrade");
  assert_int_equal(fate(f, 0, 0, reason, sizeof(reason)), 1);
  assert_int_equal(fate(f, 0, 1, reason, sizeof(reason)), -1);
  get_dest(f, a->data.id, false);
  free(ea.buf);
  free(eb.buf);
  free(a);
  free(b);
}

static void test_settings_list_omits_deleted(void **state)
{
  struct fx *f = *state;
  struct ctkn_setting_event *a = plan_add(NULL, 0, T0);
  struct ctkn_setting_event *b = plan_add(NULL, 0, T0 + 1000);
  struct ctkn_setting_event *c = plan_add(NULL, 0, T0 + 2000);
  struct ctkn_setting_event *rm =
      plan_change(&b->data, CTKN_DEST_REMOVE, NULL, T0 + 3000);
  struct enc ea = encode(a), eb = encode(b), ec = encode(c), erm = encode(rm);
  struct ctkn_log_msg m[4] = {msg_enc(0, 0, ea), msg_enc(0, 1, eb),
                              msg_enc(0, 2, ec), msg_enc(0, 3, erm)};
  struct ctkn_destination *list = NULL, d;
  struct ctkn_err err = {0};
  ctkn_store_txn *t;
  size_t n = 99;

  project(f, m, 3);
  t = begin(f->st, false);
  assert_int_equal(ctkn_settings_list(t, &list, &n, &err), CTKN_OK);
  ctkn_store_abort(t);
  assert_int_equal(n, 3);
  free(list);

  project(f, m + 3, 1);
  t = begin(f->st, false);
  assert_int_equal(ctkn_settings_list(t, &list, &n, &err), CTKN_OK);
  assert_int_equal(n, 2);
  assert_string_equal(list[0].id, a->data.id);
  assert_string_equal(list[1].id, c->data.id);
  free(list);
  assert_int_equal(ctkn_settings_get(t, b->data.id, false, &d, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_settings_get(t, b->data.id, true, &d, &err), CTKN_OK);
  assert_true(d.deleted);
  assert_int_equal(d.version, 2);
  assert_int_equal(ctkn_settings_get(t, DEST_ID, true, &d, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_settings_get(t, "nonsense", true, &d, &err),
                   CTKN_ENOTFOUND);
  ctkn_store_abort(t);

  free(ea.buf);
  free(eb.buf);
  free(ec.buf);
  free(erm.buf);
  free(a);
  free(b);
  free(c);
  free(rm);
}

/* ---- positions --------------------------------------------------------------
 */

static void test_event_at_finds_applied_events_by_position(void **state)
{
  struct fx *f = *state;
  char ta[CTKN_ID_BUF], tb[CTKN_ID_BUF];
  struct ctkn_store_history_put h[4];
  struct ctkn_store_event at;
  struct ctkn_err err = {0};
  ctkn_store_txn *t;

  assert_int_equal(ctkn_id_generate("ctkn_", T0 / 1000, ta, sizeof(ta)), 0);
  assert_int_equal(ctkn_id_generate("ctkn_", T0 / 1000 + 1, tb, sizeof(tb)), 0);
  memset(h, 0, sizeof(h));
  strcpy(h[0].id, ta);
  h[0].version = 1, h[0].partition = 0, h[0].offset = 3;
  h[0].value = "a1", h[0].len = 2;
  strcpy(h[1].id, tb);
  h[1].version = 1, h[1].partition = 0, h[1].offset = 7;
  h[1].value = "b1", h[1].len = 2;
  strcpy(h[2].id, ta);
  h[2].version = 2, h[2].partition = 0, h[2].offset = 10;
  h[2].value = "a2!", h[2].len = 3;
  strcpy(h[3].id, tb);
  h[3].version = 2, h[3].partition = 1, h[3].offset = 4;
  h[3].value = "b2", h[3].len = 2;
  t = begin(f->st, true);
  if (ctkn_store_put_history_batch(t, h, 4, &err) != CTKN_OK)
    fail_msg("history: %s", err.msg);
  commit(t);

  t = begin(f->st, false);
  /* Exact. */
  assert_int_equal(ctkn_store_event_at(t, 0, 7, true, &at, &err), CTKN_OK);
  assert_string_equal(at.id, tb);
  assert_int_equal(at.version, 1);
  assert_int_equal(at.partition, 0);
  assert_int_equal(at.offset, 7);
  assert_int_equal(at.len, 2);
  assert_memory_equal(at.value, "b1", 2);
  assert_int_equal(ctkn_store_event_at(t, 0, 5, true, &at, &err),
                   CTKN_ENOTFOUND);
  /* At or after. */
  assert_int_equal(ctkn_store_event_at(t, 0, 5, false, &at, &err), CTKN_OK);
  assert_int_equal(at.offset, 7);
  assert_string_equal(at.id, tb);
  assert_int_equal(ctkn_store_event_at(t, 0, 0, false, &at, &err), CTKN_OK);
  assert_int_equal(at.offset, 3);
  assert_string_equal(at.id, ta);
  assert_memory_equal(at.value, "a1", 2);
  assert_int_equal(ctkn_store_event_at(t, 0, 8, false, &at, &err), CTKN_OK);
  assert_int_equal(at.offset, 10);
  assert_int_equal(at.version, 2);
  assert_int_equal(at.len, 3);
  assert_memory_equal(at.value, "a2!", 3);
  /* Past the end of partition 0: not partition 1's event. */
  assert_int_equal(ctkn_store_event_at(t, 0, 11, false, &at, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_event_at(t, 1, 0, false, &at, &err), CTKN_OK);
  assert_int_equal(at.partition, 1);
  assert_int_equal(at.offset, 4);
  assert_string_equal(at.id, tb);
  assert_int_equal(at.version, 2);
  assert_int_equal(ctkn_store_event_at(t, 1, 5, false, &at, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_event_at(t, 1, 3, true, &at, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_event_at(t, 2, 0, false, &at, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_event_at(t, 0, -1, false, &at, &err),
                   CTKN_EINVAL);
  ctkn_store_abort(t);

  /* An offset below the partition's last (a rebuild writes in history
   * order) goes in its place, not at the end. */
  struct ctkn_store_history_put late = h[0];
  late.version = 3, late.offset = 5, late.value = "a3", late.len = 2;
  t = begin(f->st, true);
  if (ctkn_store_put_history_batch(t, &late, 1, &err) != CTKN_OK)
    fail_msg("history: %s", err.msg);
  commit(t);
  t = begin(f->st, false);
  assert_int_equal(ctkn_store_event_at(t, 0, 4, false, &at, &err), CTKN_OK);
  assert_int_equal(at.offset, 5);
  assert_int_equal(at.version, 3);
  assert_int_equal(ctkn_store_event_at(t, 0, 6, false, &at, &err), CTKN_OK);
  assert_int_equal(at.offset, 7);
  ctkn_store_abort(t);

  /* A positions table of another layout (or missing entries) is made
   * again from history when a writer opens the projection. */
  ctkn_store_close(f->st);
  f->st = NULL;
  {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {3, "bad"}, v = {3, "xyz"};
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, f->db, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "positions", 0, &dbi), 0);
    assert_int_equal(mdb_drop(txn, dbi, 1), 0);
    assert_int_equal(mdb_dbi_open(txn, "positions", MDB_CREATE, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }
  struct ctkn_store_opts opts = {.map_size = (size_t)64 << 20};
  if (ctkn_store_open(&f->st, f->db, &opts, &err) != CTKN_OK)
    fail_msg("reopen: %s", err.msg);
  t = begin(f->st, false);
  if (ctkn_store_event_at(t, 0, 6, false, &at, &err) != CTKN_OK)
    fail_msg("event_at: %s", err.msg);
  assert_int_equal(at.offset, 7);
  assert_string_equal(at.id, tb);
  assert_int_equal(ctkn_store_event_at(t, 1, 4, true, &at, &err), CTKN_OK);
  assert_int_equal(at.version, 2);
  ctkn_store_abort(t);
}

/* ---- replay -----------------------------------------------------------------
 */

static void put_ntf(struct fx *f, const struct ctkn_notification *n)
{
  ctkn_store_txn *t = begin(f->st, true);
  uint8_t *buf;
  size_t len;

  assert_int_equal(ctkn_notification_encode(n, &buf, &len, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_kv_put(t, CTKN_TABLE_NOTIFICATIONS, n->id,
                                     CTKN_NTF_ID_LEN, buf, len, NULL),
                   CTKN_OK);
  free(buf);
  commit(t);
}

static struct ctkn_notification get_ntf(struct fx *f, const char *id)
{
  struct ctkn_notification n;
  struct ctkn_err err = {0};
  ctkn_store_txn *t = begin(f->st, false);
  int rc = ctkn_notification_get(t, id, &n, &err);

  ctkn_store_abort(t);
  if (rc != CTKN_OK)
    fail_msg("get %s: %s", id, err.msg);
  return n;
}

static bool queued(struct fx *f, const char *id)
{
  ctkn_store_txn *t = begin(f->st, false);
  const void *v;
  size_t vlen;
  int rc = ctkn_store_kv_get(t, CTKN_TABLE_QUEUE, id, CTKN_NTF_ID_LEN, &v,
                             &vlen, NULL);

  ctkn_store_abort(t);
  assert_true(rc == CTKN_OK || rc == CTKN_ENOTFOUND);
  return rc == CTKN_OK;
}

static int count_cb(void *arg, const struct ctkn_notification *n)
{
  (void)n;
  (*(int *)arg)++;
  return 0;
}

static void test_replay_queues_a_new_notification(void **state)
{
  struct fx *f = *state;
  struct ctkn_notification orig, r, again;
  char new_id[CTKN_NTF_ID_BUF], second[CTKN_NTF_ID_BUF];
  struct ctkn_err err = {0};
  ctkn_store_txn *t;
  int count = 0;

  sample_ntf(&orig);
  orig.status = CTKN_NTF_DELIVERED;
  orig.attempts = 2;
  orig.delivered_at = T0 + 9001;
  orig.retry_at = 0;
  orig.last_status = 200;
  put_ntf(f, &orig);
  assert_false(queued(f, orig.id));

  if (ctkn_notification_replay(f->st, orig.id, new_id, &err) != CTKN_OK)
    fail_msg("replay: %s", err.msg);
  assert_true(ctkn_id_valid("ntf_", new_id));
  assert_string_not_equal(new_id, orig.id);

  r = get_ntf(f, new_id);
  assert_string_equal(r.id, new_id);
  assert_true(r.replay);
  assert_string_equal(r.replay_of, orig.id);
  assert_int_equal(r.status, CTKN_NTF_NOT_ATTEMPTED);
  assert_int_equal(r.attempts, 0);
  assert_int_equal(r.delivered_at, 0);
  assert_int_equal(r.first_attempt_at, 0);
  assert_int_equal(r.last_attempt_at, 0);
  assert_int_equal(r.retry_at, 0);
  assert_int_equal(r.last_status, 0);
  /* The same event for the same destination. */
  assert_string_equal(r.dest, orig.dest);
  assert_string_equal(r.event_id, orig.event_id);
  assert_string_equal(r.token_id, orig.token_id);
  assert_int_equal(r.type, orig.type);
  assert_int_equal(r.version, orig.version);
  assert_int_equal(r.partition, orig.partition);
  assert_int_equal(r.offset, orig.offset);
  assert_int_equal(r.occurred_at, orig.occurred_at);
  assert_true(queued(f, new_id));
  assert_false(queued(f, orig.id));
  /* The original is untouched. */
  again = get_ntf(f, orig.id);
  assert_ntf_equal(&again, &orig);

  t = begin(f->st, false);
  assert_int_equal(ctkn_notification_list(t, NULL, 1u << CTKN_NTF_NOT_ATTEMPTED,
                                          count_cb, &count, &err),
                   CTKN_OK);
  assert_int_equal(count, 1);
  count = 0;
  assert_int_equal(
      ctkn_notification_list(t, DEST_ID, 0, count_cb, &count, &err), CTKN_OK);
  assert_int_equal(count, 2);
  count = 0;
  assert_int_equal(
      ctkn_notification_list(t, DEST_ID2, 0, count_cb, &count, &err), CTKN_OK);
  assert_int_equal(count, 0);
  ctkn_store_abort(t);

  /* As in Paddle, a replay is not replayed (its original is), even once
   * it failed: 400 notification_replay_invalid_origin_type. */
  r.status = CTKN_NTF_FAILED;
  put_ntf(f, &r);
  assert_int_equal(ctkn_notification_replay(f->st, new_id, second, &err),
                   CTKN_EREPLAYORIGIN);
  assert_contains(err.msg, orig.id);
  assert_string_equal(ctkn_error_code(CTKN_EREPLAYORIGIN),
                      "notification_replay_invalid_origin_type");
  assert_int_equal(ctkn_notification_replay(f->st, orig.id, second, &err),
                   CTKN_OK);
  assert_string_equal(get_ntf(f, second).replay_of, orig.id);
}

/* A notification whose destination was removed would stay queued for
 * good (no notifier sends to a removed destination): its replay is
 * refused, naming the destination. One still there, or one this
 * projection does not know, is replayed. */
static void
test_replay_refuses_a_removed_destinations_notifications(void **state)
{
  struct fx *f = *state;
  struct ctkn_setting_event *a = plan_add(NULL, 0, T0);
  struct ctkn_setting_event *rm =
      plan_change(&a->data, CTKN_DEST_REMOVE, NULL, T0 + 3000);
  struct enc ea = encode(a), erm = encode(rm);
  struct ctkn_log_msg m[2] = {msg_enc(0, 0, ea), msg_enc(0, 1, erm)};
  struct ctkn_notification n;
  char new_id[CTKN_NTF_ID_BUF];
  struct ctkn_err err = {0};

  project(f, m, 1);
  sample_ntf(&n);
  strcpy(n.dest, a->data.id);
  n.status = CTKN_NTF_DELIVERED;
  put_ntf(f, &n);
  assert_int_equal(ctkn_notification_replay(f->st, n.id, new_id, &err),
                   CTKN_OK);
  project(f, m + 1, 1);
  assert_int_equal(ctkn_notification_replay(f->st, n.id, new_id, &err),
                   CTKN_ECANNOTREPLAY);
  assert_contains(err.msg, a->data.id);
  assert_contains(err.msg, "was removed");
  free(ea.buf);
  free(erm.buf);
  free(a);
  free(rm);
}

static void test_replay_refuses_pending_and_unknown(void **state)
{
  struct fx *f = *state;
  struct ctkn_notification n;
  char new_id[CTKN_NTF_ID_BUF];
  struct ctkn_err err = {0};
  int count = 0;
  ctkn_store_txn *t;

  sample_ntf(&n); /* needs_retry */
  put_ntf(f, &n);
  assert_int_equal(ctkn_notification_replay(f->st, n.id, new_id, &err),
                   CTKN_ECANNOTREPLAY);
  assert_contains(err.msg, "needs_retry");
  assert_string_equal(ctkn_error_code(CTKN_ECANNOTREPLAY),
                      "notification_cannot_replay");
  assert_int_equal(ctkn_error_http_status(CTKN_ECANNOTREPLAY), 400);
  n.status = CTKN_NTF_NOT_ATTEMPTED;
  put_ntf(f, &n);
  assert_int_equal(ctkn_notification_replay(f->st, n.id, new_id, &err),
                   CTKN_ECANNOTREPLAY);
  assert_int_equal(ctkn_notification_replay(f->st, NTF_ID2, new_id, &err),
                   CTKN_ENOTFOUND);
  /* Nothing was queued or added. */
  t = begin(f->st, false);
  assert_int_equal(ctkn_notification_list(t, NULL, 0, count_cb, &count, &err),
                   CTKN_OK);
  ctkn_store_abort(t);
  assert_int_equal(count, 1);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_signature_matches_paddles_vector),
      cmocka_unit_test(
          test_notification_id_is_derived_from_event_and_destination),
      cmocka_unit_test(test_notification_round_trips),
      cmocka_unit_test(test_notification_decode_is_strict),
      cmocka_unit_test(test_attempt_round_trips_and_decode_is_strict),
      cmocka_unit_test(test_json_notification_has_paddles_shape),
      cmocka_unit_test(test_json_attempt_shape),
      cmocka_unit_test(test_ntf_status_names),
      T(test_decoders_refuse_bogus_counts),
      T(test_settings_project_applies_rejects_and_quarantines),
      T(test_settings_project_skips_records_below_its_offset),
      T(test_settings_project_stops_at_a_newer_schema),
      T(test_settings_list_omits_deleted),
      T(test_event_at_finds_applied_events_by_position),
      T(test_replay_queues_a_new_notification),
      T(test_replay_refuses_a_removed_destinations_notifications),
      T(test_replay_refuses_pending_and_unknown),
  };
#undef T
  for (int i = 0; i < CTKN_KEY_LEN; i++)
    key[i] = (uint8_t)(0xa5 ^ i);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
