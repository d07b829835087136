/*
 * test_codec_wire.c - the protobuf event codec: round trips, presence,
 * and every kind of bad input the wire can bring.
 *
 * Bad inputs are built by hand with a tiny protobuf writer below, so each
 * test controls exactly which bytes reach the decoder. The writer is
 * checked against the real encoder first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/handover.h"
#include "ctkn/codec.h"
#include "ctkn/event.h"
#include "ctkn/token.h"

#define T0 INT64_C(1750948574695521) /* 2025-06-26T14:36:14.695521Z */

/* ---- sample events ---------------------------------------------------- */

static void sample_event(struct ctkn_event *ev, ctkn_event_type type)
{
  struct ctkn_token *t = &ev->data;

  memset(ev, 0, sizeof(*ev));
  strcpy(ev->event_id, "evt_01jyq3v5k8q9r0s1t2v3w4x5y6");
  strcpy(ev->notification_id, "ntf_01jyq3v5k8q9r0s1t2v3w4x5y7");
  strcpy(t->id, "ctkn_01jyq3v5k8q9r0s1t2v3w4x5y8");
  strcpy(t->token, "test_AbCdEfGh0123456789abcdefghi");
  strcpy(t->name, "Checkout widget");
  t->status = CTKN_STATUS_ACTIVE;
  t->created_at = T0;
  t->updated_at = T0;
  ev->type = type;
  ev->version = 1;
  switch (type) {
  case CTKN_EVENT_CREATED:
    break;
  case CTKN_EVENT_UPDATED:
    ev->version = 2;
    t->updated_at = T0 + 1000000;
    t->has_description = true;
    strcpy(t->description, "Used on the pricing page");
    break;
  case CTKN_EVENT_REVOKED:
    ev->version = 3;
    t->updated_at = T0 + 2000000;
    t->status = CTKN_STATUS_REVOKED;
    t->revoked_at = t->updated_at;
    break;
  }
  ev->occurred_at = t->updated_at;
}

static void add_idempotency(struct ctkn_event *ev)
{
  size_t i;

  strcpy(ev->idempotency_key, "order-7f3a9c/attempt-1");
  ev->has_request_hash = true;
  for (i = 0; i < CTKN_HASH_LEN; i++)
    ev->request_hash[i] = (uint8_t)(0xa0 + i);
}

/* name: 150 four-byte code points; description: 500 of them. */
static void make_max_length(struct ctkn_event *ev)
{
  static const char smile[] = "\xf0\x9f\x98\x80"; /* U+1F600 */
  struct ctkn_token *t = &ev->data;
  size_t i;

  for (i = 0; i < CTKN_NAME_MAX; i++)
    memcpy(t->name + 4 * i, smile, 4);
  t->name[4 * CTKN_NAME_MAX] = '\0';
  t->has_description = true;
  for (i = 0; i < CTKN_DESC_MAX; i++)
    memcpy(t->description + 4 * i, smile, 4);
  t->description[4 * CTKN_DESC_MAX] = '\0';
}

static void assert_event_equal(const struct ctkn_event *a,
                               const struct ctkn_event *b)
{
  assert_string_equal(a->event_id, b->event_id);
  assert_int_equal(a->type, b->type);
  assert_int_equal(a->occurred_at, b->occurred_at);
  assert_string_equal(a->notification_id, b->notification_id);
  assert_int_equal(a->version, b->version);
  assert_string_equal(a->data.id, b->data.id);
  assert_string_equal(a->data.token, b->data.token);
  assert_string_equal(a->data.name, b->data.name);
  assert_int_equal(a->data.has_description, b->data.has_description);
  if (a->data.has_description)
    assert_string_equal(a->data.description, b->data.description);
  assert_int_equal(a->data.status, b->data.status);
  assert_int_equal(a->data.created_at, b->data.created_at);
  assert_int_equal(a->data.updated_at, b->data.updated_at);
  assert_int_equal(a->data.revoked_at, b->data.revoked_at);
  assert_true(ctkn_token_equal(&a->data, &b->data));
  assert_string_equal(a->idempotency_key, b->idempotency_key);
  assert_int_equal(a->has_request_hash, b->has_request_hash);
  if (a->has_request_hash)
    assert_memory_equal(a->request_hash, b->request_hash, CTKN_HASH_LEN);
}

static void assert_round_trips(const struct ctkn_event *ev)
{
  struct ctkn_event got;
  struct ctkn_err err;
  uint8_t *buf = NULL;
  size_t len = 0;

  assert_int_equal(ctkn_event_check(ev, &err), CTKN_OK);
  assert_int_equal(ctkn_event_encode(ev, &buf, &len, &err), CTKN_OK);
  assert_non_null(buf);
  assert_true(len > 0);
  assert_int_equal(ctkn_event_decode(buf, len, &got, &err), CTKN_OK);
  assert_event_equal(ev, &got);
  free(buf);
}

/* ---- a hand-written protobuf writer ------------------------------------ */

enum {
  S_EVENT_ID,
  S_EVENT_TYPE,
  S_NOTIFICATION_ID,
  S_IDEMPOTENCY_KEY,
  S_ID,
  S_TOKEN,
  S_NAME,
  S_DESCRIPTION,
  S_STATUS,
  S_COUNT
};

enum {
  I_OCCURRED_AT,
  I_VERSION,
  I_CREATED_AT,
  I_UPDATED_AT,
  I_REVOKED_AT,
  I_COUNT
};

/* What to write: each field present or not, with any bytes. */
struct spec {
  const char *str[S_COUNT]; /* NULL: absent */
  size_t len[S_COUNT];
  bool has_int[I_COUNT];
  uint64_t ints[I_COUNT];
  bool has_data;
  const uint8_t *hash; /* NULL: absent */
  size_t hash_len;
  const uint8_t *extra; /* raw bytes appended to the event */
  size_t extra_len;
  const uint8_t *extra_data; /* raw bytes appended inside data */
  size_t extra_data_len;
};

struct pb {
  uint8_t buf[8192];
  size_t len;
};

static void pb_raw(struct pb *pb, const void *p, size_t n)
{
  assert_true(n <= sizeof(pb->buf) - pb->len);
  if (n > 0)
    memcpy(pb->buf + pb->len, p, n);
  pb->len += n;
}

static void pb_varint(struct pb *pb, uint64_t v)
{
  uint8_t b;

  do {
    b = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v != 0)
      b |= 0x80;
    pb_raw(pb, &b, 1);
  } while (v != 0);
}

static void pb_uint(struct pb *pb, unsigned field, uint64_t v)
{
  pb_varint(pb, (uint64_t)field << 3);
  pb_varint(pb, v);
}

static void pb_bytes(struct pb *pb, unsigned field, const void *p, size_t n)
{
  pb_varint(pb, (uint64_t)field << 3 | 2);
  pb_varint(pb, n);
  pb_raw(pb, p, n);
}

static void spec_str(struct spec *s, int i, const char *str)
{
  s->str[i] = str;
  s->len[i] = str ? strlen(str) : 0;
}

static void spec_from_event(struct spec *s, const struct ctkn_event *ev)
{
  const struct ctkn_token *t = &ev->data;

  memset(s, 0, sizeof(*s));
  spec_str(s, S_EVENT_ID, ev->event_id);
  spec_str(s, S_EVENT_TYPE, ctkn_event_type_str(ev->type));
  spec_str(s, S_NOTIFICATION_ID, ev->notification_id);
  if (ev->idempotency_key[0] != '\0')
    spec_str(s, S_IDEMPOTENCY_KEY, ev->idempotency_key);
  spec_str(s, S_ID, t->id);
  spec_str(s, S_TOKEN, t->token);
  spec_str(s, S_NAME, t->name);
  if (t->has_description)
    spec_str(s, S_DESCRIPTION, t->description);
  spec_str(s, S_STATUS, ctkn_status_str(t->status));
  s->has_int[I_OCCURRED_AT] = true;
  s->ints[I_OCCURRED_AT] = (uint64_t)ev->occurred_at;
  s->has_int[I_VERSION] = true;
  s->ints[I_VERSION] = ev->version;
  s->has_int[I_CREATED_AT] = true;
  s->ints[I_CREATED_AT] = (uint64_t)t->created_at;
  s->has_int[I_UPDATED_AT] = true;
  s->ints[I_UPDATED_AT] = (uint64_t)t->updated_at;
  if (t->revoked_at != 0) {
    s->has_int[I_REVOKED_AT] = true;
    s->ints[I_REVOKED_AT] = (uint64_t)t->revoked_at;
  }
  s->has_data = true;
  if (ev->has_request_hash) {
    s->hash = ev->request_hash;
    s->hash_len = CTKN_HASH_LEN;
  }
}

static void opt_str(struct pb *pb, unsigned field, const struct spec *s, int i)
{
  if (s->str[i] != NULL)
    pb_bytes(pb, field, s->str[i], s->len[i]);
}

static void opt_int(struct pb *pb, unsigned field, const struct spec *s, int i)
{
  if (s->has_int[i])
    pb_uint(pb, field, s->ints[i]);
}

/* Write the event in field-number order, as protobuf-c does. */
static void build(struct pb *pb, const struct spec *s)
{
  struct pb data = {{0}, 0};

  pb->len = 0;
  opt_str(&data, 1, s, S_ID);
  opt_str(&data, 2, s, S_TOKEN);
  opt_str(&data, 3, s, S_NAME);
  opt_str(&data, 4, s, S_DESCRIPTION);
  opt_str(&data, 5, s, S_STATUS);
  opt_int(&data, 6, s, I_CREATED_AT);
  opt_int(&data, 7, s, I_UPDATED_AT);
  opt_int(&data, 8, s, I_REVOKED_AT);
  pb_raw(&data, s->extra_data, s->extra_data_len);

  opt_str(pb, 1, s, S_EVENT_ID);
  opt_str(pb, 2, s, S_EVENT_TYPE);
  opt_int(pb, 3, s, I_OCCURRED_AT);
  opt_str(pb, 4, s, S_NOTIFICATION_ID);
  opt_int(pb, 5, s, I_VERSION);
  if (s->has_data)
    pb_bytes(pb, 6, data.buf, data.len);
  opt_str(pb, 7, s, S_IDEMPOTENCY_KEY);
  if (s->hash != NULL)
    pb_bytes(pb, 8, s->hash, s->hash_len);
  pb_raw(pb, s->extra, s->extra_len);
}

/* Decode what the spec describes; expect failure with exactly msg. */
static void assert_spec_rejected(const struct spec *s, int code,
                                 const char *msg)
{
  struct pb pb;
  struct ctkn_event ev;
  struct ctkn_err err;

  build(&pb, s);
  ctkn_err_clear(&err);
  assert_int_equal(ctkn_event_decode(pb.buf, pb.len, &ev, &err), code);
  assert_int_equal(err.code, code);
  assert_string_equal(err.msg, msg);
}

static void assert_spec_decodes_to(const struct spec *s,
                                   const struct ctkn_event *want)
{
  struct pb pb;
  struct ctkn_event ev;
  struct ctkn_err err;

  build(&pb, s);
  assert_int_equal(ctkn_event_decode(pb.buf, pb.len, &ev, &err), CTKN_OK);
  assert_event_equal(want, &ev);
}

/* ---- round trips ------------------------------------------------------- */

static void test_created_event_round_trips(void **state)
{
  struct ctkn_event ev;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  assert_round_trips(&ev);
}

static void test_created_event_with_description_round_trips(void **state)
{
  struct ctkn_event ev;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  ev.data.has_description = true;
  strcpy(ev.data.description, "Ünïcödé description ✓");
  assert_round_trips(&ev);
}

static void test_updated_event_with_description_round_trips(void **state)
{
  struct ctkn_event ev;

  (void)state;
  sample_event(&ev, CTKN_EVENT_UPDATED);
  assert_round_trips(&ev);
}

static void test_updated_event_without_description_round_trips(void **state)
{
  struct ctkn_event ev;

  (void)state;
  sample_event(&ev, CTKN_EVENT_UPDATED);
  ev.data.has_description = false;
  ev.data.description[0] = '\0';
  assert_round_trips(&ev);
}

static void test_revoked_event_with_revoked_at_round_trips(void **state)
{
  struct ctkn_event ev;

  (void)state;
  sample_event(&ev, CTKN_EVENT_REVOKED);
  assert_round_trips(&ev);
  ev.data.has_description = true;
  strcpy(ev.data.description, "revoked with a description");
  assert_round_trips(&ev);
}

static void
test_created_event_with_idempotency_key_and_hash_round_trips(void **state)
{
  struct ctkn_event ev;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  add_idempotency(&ev);
  assert_round_trips(&ev);
}

static void test_max_length_name_and_description_round_trip(void **state)
{
  struct ctkn_event ev;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  make_max_length(&ev);
  assert_int_equal(strlen(ev.data.name), CTKN_NAME_BYTES);
  assert_int_equal(strlen(ev.data.description), CTKN_DESC_BYTES);
  add_idempotency(&ev);
  memset(ev.idempotency_key, 'k', CTKN_IDEM_KEY_MAX);
  ev.idempotency_key[CTKN_IDEM_KEY_MAX] = '\0';
  assert_round_trips(&ev);
}

static void test_extreme_integers_round_trip(void **state)
{
  struct ctkn_event ev, got;
  uint8_t *buf;
  size_t len;

  (void)state;
  sample_event(&ev, CTKN_EVENT_REVOKED);
  ev.version = UINT64_MAX;
  ev.occurred_at = INT64_MIN;
  ev.data.created_at = -1;
  ev.data.updated_at = INT64_MAX;
  ev.data.revoked_at = INT64_MIN;
  assert_int_equal(ctkn_event_encode(&ev, &buf, &len, NULL), CTKN_OK);
  assert_int_equal(ctkn_event_decode(buf, len, &got, NULL), CTKN_OK);
  assert_event_equal(&ev, &got);
  free(buf);
}

static void test_hand_written_encoding_matches_encoder(void **state)
{
  struct ctkn_event ev;
  struct spec s;
  struct pb pb;
  uint8_t *buf;
  size_t len;
  int type;

  (void)state;
  for (type = CTKN_EVENT_CREATED; type <= CTKN_EVENT_REVOKED; type++) {
    sample_event(&ev, (ctkn_event_type)type);
    if (type == CTKN_EVENT_CREATED)
      add_idempotency(&ev);
    assert_int_equal(ctkn_event_encode(&ev, &buf, &len, NULL), CTKN_OK);
    spec_from_event(&s, &ev);
    build(&pb, &s);
    assert_int_equal(pb.len, len);
    assert_memory_equal(pb.buf, buf, len);
    free(buf);
  }
}

static void test_null_fields_are_absent_on_the_wire(void **state)
{
  struct ctkn_event ev;
  struct spec s;
  struct pb pb;
  uint8_t *buf;
  size_t len;

  (void)state;
  /* The writer omits absent fields; equal bytes show the encoder does. */
  sample_event(&ev, CTKN_EVENT_CREATED);
  assert_false(ev.data.has_description);
  assert_int_equal(ev.data.revoked_at, 0);
  assert_int_equal(ctkn_event_encode(&ev, &buf, &len, NULL), CTKN_OK);
  spec_from_event(&s, &ev);
  assert_null(s.str[S_DESCRIPTION]);
  assert_null(s.str[S_IDEMPOTENCY_KEY]);
  assert_null(s.hash);
  assert_false(s.has_int[I_REVOKED_AT]);
  build(&pb, &s);
  assert_int_equal(pb.len, len);
  assert_memory_equal(pb.buf, buf, len);
  free(buf);
}

/* ---- encoding errors --------------------------------------------------- */

static void test_encode_rejects_unknown_type_and_status(void **state)
{
  struct ctkn_event ev;
  struct ctkn_err err;
  uint8_t *buf = (uint8_t *)&ev;
  size_t len = 1;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  ev.type = (ctkn_event_type)9;
  assert_int_equal(ctkn_event_encode(&ev, &buf, &len, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "event_type");
  assert_null(buf);
  assert_int_equal(len, 0);

  sample_event(&ev, CTKN_EVENT_CREATED);
  ev.data.status = (ctkn_status)0;
  assert_int_equal(ctkn_event_encode(&ev, &buf, &len, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "status");
  assert_null(buf);
}

static void test_encode_rejects_unterminated_string(void **state)
{
  struct ctkn_event ev;
  uint8_t *buf;
  size_t len;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  memset(ev.data.token, 'x', sizeof(ev.data.token));
  assert_int_equal(ctkn_event_encode(&ev, &buf, &len, NULL), CTKN_EINVAL);
  assert_null(buf);
}

/* ---- truncation and garbage -------------------------------------------- */

static void encode_ok(const struct ctkn_event *ev, uint8_t **buf, size_t *len)
{
  assert_int_equal(ctkn_event_encode(ev, buf, len, NULL), CTKN_OK);
}

/*
 * A prefix that ends inside a field never parses. A prefix that ends
 * between fields parses only when every required field is in it: then the
 * optional trailing fields (idempotency_key, request_hash) are simply
 * absent, and the result must be exactly the original without them.
 */
static void test_truncations_that_cut_a_field_are_rejected(void **state)
{
  struct ctkn_event ev, no_hash, neither, got;
  uint8_t *full, *b1, *b0;
  size_t len, l1, l0, p;
  size_t accepted = 0;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  ev.data.has_description = true;
  strcpy(ev.data.description, "a description");
  add_idempotency(&ev);
  no_hash = ev;
  no_hash.has_request_hash = false;
  memset(no_hash.request_hash, 0, CTKN_HASH_LEN);
  neither = no_hash;
  memset(neither.idempotency_key, 0, sizeof(neither.idempotency_key));

  encode_ok(&ev, &full, &len);
  encode_ok(&no_hash, &b1, &l1);
  encode_ok(&neither, &b0, &l0);
  /* Fields go out in number order, so the shorter events are prefixes. */
  assert_memory_equal(full, b1, l1);
  assert_memory_equal(full, b0, l0);

  for (p = 0; p < len; p++) {
    struct ctkn_err err;
    uint8_t *copy = malloc(p > 0 ? p : 1); /* exact size, for ASan */
    int rc;

    assert_non_null(copy);
    memcpy(copy, full, p);
    rc = ctkn_event_decode(copy, p, &got, &err);
    free(copy);
    if (rc != CTKN_OK) {
      assert_int_equal(rc, CTKN_EDECODE);
      continue;
    }
    accepted++;
    if (p == l1) {
      assert_event_equal(&no_hash, &got);
    } else if (p == l0) {
      assert_event_equal(&neither, &got);
    } else {
      fail_msg("prefix of %zu bytes (of %zu) decoded", p, len);
    }
  }
  assert_int_equal(accepted, 2);
  free(full);
  free(b1);
  free(b0);
}

static void test_every_truncation_of_a_plain_event_is_rejected(void **state)
{
  struct ctkn_event ev, got;
  uint8_t *full;
  size_t len, p;
  int type;

  (void)state;
  for (type = CTKN_EVENT_CREATED; type <= CTKN_EVENT_REVOKED; type++) {
    sample_event(&ev, (ctkn_event_type)type);
    encode_ok(&ev, &full, &len);
    for (p = 0; p < len; p++) {
      uint8_t *copy = malloc(p > 0 ? p : 1);

      assert_non_null(copy);
      memcpy(copy, full, p);
      assert_int_equal(ctkn_event_decode(copy, p, &got, NULL), CTKN_EDECODE);
      free(copy);
    }
    free(full);
  }
}

static uint64_t rng_next(uint64_t *s)
{
  /* splitmix64: deterministic, so a failure reproduces. */
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* A decoded event must survive encode + decode unchanged. */
static void assert_reencodes(const struct ctkn_event *ev)
{
  struct ctkn_event again;
  uint8_t *buf;
  size_t len;

  assert_int_equal(ctkn_event_encode(ev, &buf, &len, NULL), CTKN_OK);
  assert_int_equal(ctkn_event_decode(buf, len, &again, NULL), CTKN_OK);
  assert_event_equal(ev, &again);
  free(buf);
}

static void test_random_garbage_never_crashes(void **state)
{
  uint64_t seed = 42;
  int i;

  (void)state;
  for (i = 0; i < 10000; i++) {
    size_t len = (size_t)(rng_next(&seed) % 512), j;
    uint8_t *buf = malloc(len > 0 ? len : 1);
    struct ctkn_event ev;
    int rc;

    assert_non_null(buf);
    for (j = 0; j < len; j++)
      buf[j] = (uint8_t)rng_next(&seed);
    rc = ctkn_event_decode(buf, len, &ev, NULL);
    assert_true(rc == CTKN_OK || rc == CTKN_EDECODE);
    if (rc == CTKN_OK)
      assert_reencodes(&ev);
    free(buf);
  }
}

static void test_mutated_encodings_never_crash(void **state)
{
  struct ctkn_event ev;
  uint8_t *orig;
  size_t len;
  uint64_t seed = 7;
  int i, decoded = 0;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  add_idempotency(&ev);
  encode_ok(&ev, &orig, &len);
  for (i = 0; i < 10000; i++) {
    uint8_t *buf = malloc(len);
    struct ctkn_event got;
    int flips = 1 + (int)(rng_next(&seed) % 4), k, rc;

    assert_non_null(buf);
    memcpy(buf, orig, len);
    for (k = 0; k < flips; k++)
      buf[rng_next(&seed) % len] ^= (uint8_t)(1u << (rng_next(&seed) % 8));
    rc = ctkn_event_decode(buf, len, &got, NULL);
    assert_true(rc == CTKN_OK || rc == CTKN_EDECODE);
    if (rc == CTKN_OK) {
      decoded++;
      assert_reencodes(&got);
    }
    free(buf);
  }
  /* Flips inside string bytes keep the framing: some must decode. */
  assert_true(decoded > 0);
  free(orig);
}

static void test_empty_input_is_missing_event_id(void **state)
{
  struct ctkn_event ev;
  struct ctkn_err err;

  (void)state;
  assert_int_equal(ctkn_event_decode("", 0, &ev, &err), CTKN_EDECODE);
  assert_string_equal(err.msg, "missing field event_id");
  assert_int_equal(ctkn_event_decode(NULL, 0, &ev, &err), CTKN_EDECODE);
}

static void test_malformed_protobuf_is_rejected(void **state)
{
  /* A varint that never ends, a length past the end, an end-group tag. */
  static const uint8_t bad[][4] = {
      {0x18, 0xff, 0xff, 0xff}, {0x0a, 0x7f, 'a', 'b'}, {0x0c, 0, 0, 0}};
  static const size_t lens[] = {4, 4, 1};
  struct ctkn_event ev;
  struct ctkn_err err;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    assert_int_equal(ctkn_event_decode(bad[i], lens[i], &ev, &err),
                     CTKN_EDECODE);
    assert_non_null(strstr(err.msg, "not a ctkn.v1.Event protobuf"));
  }
}

static void test_string_field_sent_as_varint_is_rejected(void **state)
{
  static const uint8_t b[] = {0x08, 0x01}; /* field 1, wire type 0 */
  struct ctkn_event ev;

  (void)state;
  assert_int_equal(ctkn_event_decode(b, sizeof(b), &ev, NULL), CTKN_EDECODE);
}

static void test_decode_failure_leaves_event_zeroed(void **state)
{
  struct ctkn_event ev, zero;
  struct spec s;
  struct pb pb;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  spec_from_event(&s, &ev);
  spec_str(&s, S_STATUS, "paused"); /* fails after most fields are copied */
  build(&pb, &s);
  memset(&zero, 0, sizeof(zero));
  assert_int_equal(ctkn_event_decode(pb.buf, pb.len, &ev, NULL), CTKN_EDECODE);
  assert_memory_equal(&ev, &zero, sizeof(ev));
}

/* ---- shape errors -------------------------------------------------------- */

static void test_oversized_strings_are_rejected_naming_the_field(void **state)
{
  static const struct {
    int field;
    size_t max;
    const char *name;
  } cases[] = {
      {S_EVENT_ID, CTKN_EVT_ID_LEN, "event_id"},
      {S_NOTIFICATION_ID, CTKN_EVT_ID_LEN, "notification_id"},
      {S_IDEMPOTENCY_KEY, CTKN_IDEM_KEY_MAX, "idempotency_key"},
      {S_ID, CTKN_ID_LEN, "data.id"},
      {S_TOKEN, CTKN_TOKEN_LEN, "data.token"},
      {S_NAME, CTKN_NAME_BYTES, "data.name"},
      {S_DESCRIPTION, CTKN_DESC_BYTES, "data.description"},
  };
  static char big[4096];
  struct ctkn_event ev, want;
  struct spec s;
  char msg[128];
  size_t i;

  (void)state;
  memset(big, 'a', sizeof(big));
  sample_event(&ev, CTKN_EVENT_CREATED);
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    /* At the limit it decodes, one byte over it does not. */
    spec_from_event(&s, &ev);
    s.str[cases[i].field] = big;
    s.len[cases[i].field] = cases[i].max;
    want = ev;
    switch (cases[i].field) {
    case S_EVENT_ID:
      memcpy(want.event_id, big, cases[i].max);
      break;
    case S_NOTIFICATION_ID:
      memcpy(want.notification_id, big, cases[i].max);
      break;
    case S_IDEMPOTENCY_KEY:
      memcpy(want.idempotency_key, big, cases[i].max);
      break;
    case S_ID:
      memcpy(want.data.id, big, cases[i].max);
      break;
    case S_TOKEN:
      memcpy(want.data.token, big, cases[i].max);
      break;
    case S_NAME:
      memcpy(want.data.name, big, cases[i].max);
      want.data.name[cases[i].max] = '\0';
      break;
    case S_DESCRIPTION:
      want.data.has_description = true;
      memcpy(want.data.description, big, cases[i].max);
      want.data.description[cases[i].max] = '\0';
      break;
    }
    assert_spec_decodes_to(&s, &want);

    s.len[cases[i].field] = cases[i].max + 1;
    snprintf(msg, sizeof(msg), "%s: %zu bytes exceeds %zu", cases[i].name,
             cases[i].max + 1, cases[i].max);
    assert_spec_rejected(&s, CTKN_EDECODE, msg);
  }
}

static void test_name_of_700_bytes_is_rejected(void **state)
{
  static char big[700];
  struct ctkn_event ev;
  struct spec s;

  (void)state;
  memset(big, 'n', sizeof(big));
  sample_event(&ev, CTKN_EVENT_CREATED);
  spec_from_event(&s, &ev);
  s.str[S_NAME] = big;
  s.len[S_NAME] = sizeof(big);
  assert_spec_rejected(&s, CTKN_EDECODE, "data.name: 700 bytes exceeds 600");
}

static void test_nul_inside_any_string_is_rejected(void **state)
{
  static const struct {
    int field;
    const char *value;
    size_t len;
    const char *msg;
  } cases[] = {
      {S_EVENT_ID, "evt_01jyq3v5k8q9r0s1t2v3w\0x5y6", 30,
       "event_id: NUL byte at offset 25"},
      {S_EVENT_TYPE, "client_token.created\0junk", 25,
       "event_type: NUL byte at offset 20"},
      {S_NOTIFICATION_ID, "\0", 1, "notification_id: NUL byte at offset 0"},
      {S_IDEMPOTENCY_KEY, "key\0", 4, "idempotency_key: NUL byte at offset 3"},
      {S_ID, "ctkn_\0", 6, "data.id: NUL byte at offset 5"},
      {S_TOKEN, "test_\0", 6, "data.token: NUL byte at offset 5"},
      {S_NAME, "Check\0out", 9, "data.name: NUL byte at offset 5"},
      {S_DESCRIPTION, "d\0", 2, "data.description: NUL byte at offset 1"},
      {S_STATUS, "active\0", 7, "data.status: NUL byte at offset 6"},
  };
  struct ctkn_event ev;
  struct spec s;
  size_t i;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    spec_from_event(&s, &ev);
    s.str[cases[i].field] = cases[i].value;
    s.len[cases[i].field] = cases[i].len;
    assert_spec_rejected(&s, CTKN_EDECODE, cases[i].msg);
  }
}

static void test_missing_required_field_is_rejected_naming_it(void **state)
{
  struct ctkn_event ev;
  struct spec s;

  (void)state;
  sample_event(&ev, CTKN_EVENT_REVOKED);

#define MISSING_STR(f, name)                                                   \
  spec_from_event(&s, &ev);                                                    \
  s.str[f] = NULL;                                                             \
  assert_spec_rejected(&s, CTKN_EDECODE, "missing field " name)
#define MISSING_INT(f, name)                                                   \
  spec_from_event(&s, &ev);                                                    \
  s.has_int[f] = false;                                                        \
  assert_spec_rejected(&s, CTKN_EDECODE, "missing field " name)

  MISSING_STR(S_EVENT_ID, "event_id");
  MISSING_STR(S_EVENT_TYPE, "event_type");
  MISSING_INT(I_OCCURRED_AT, "occurred_at");
  MISSING_STR(S_NOTIFICATION_ID, "notification_id");
  MISSING_INT(I_VERSION, "version");
  MISSING_STR(S_ID, "data.id");
  MISSING_STR(S_TOKEN, "data.token");
  MISSING_STR(S_NAME, "data.name");
  MISSING_STR(S_STATUS, "data.status");
  MISSING_INT(I_CREATED_AT, "data.created_at");
  MISSING_INT(I_UPDATED_AT, "data.updated_at");
#undef MISSING_STR
#undef MISSING_INT

  spec_from_event(&s, &ev);
  s.has_data = false;
  assert_spec_rejected(&s, CTKN_EDECODE, "missing field data");
}

static void test_optional_fields_may_be_absent(void **state)
{
  struct ctkn_event ev;
  struct spec s;

  (void)state;
  /* An updated event with no description, revoked_at, key or hash. */
  sample_event(&ev, CTKN_EVENT_UPDATED);
  ev.data.has_description = false;
  ev.data.description[0] = '\0';
  spec_from_event(&s, &ev);
  assert_spec_decodes_to(&s, &ev);
}

static void test_empty_data_message_reports_first_missing_field(void **state)
{
  struct ctkn_event ev;
  struct spec s;
  int i;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  spec_from_event(&s, &ev);
  for (i = S_ID; i < S_COUNT; i++)
    s.str[i] = NULL;
  for (i = I_CREATED_AT; i < I_COUNT; i++)
    s.has_int[i] = false;
  assert_spec_rejected(&s, CTKN_EDECODE, "missing field data.id");
}

static void test_unknown_event_type_is_rejected(void **state)
{
  static char huge[300];
  struct ctkn_event ev;
  struct spec s;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  spec_from_event(&s, &ev);
  spec_str(&s, S_EVENT_TYPE, "client_token.deleted");
  assert_spec_rejected(&s, CTKN_EDECODE,
                       "unknown event_type \"client_token.deleted\"");
  spec_str(&s, S_EVENT_TYPE, "");
  assert_spec_rejected(&s, CTKN_EDECODE, "unknown event_type \"\"");
  spec_str(&s, S_EVENT_TYPE, "bad\x01\"type");
  assert_spec_rejected(&s, CTKN_EDECODE,
                       "unknown event_type \"bad\\x01\\x22type\"");
  /* A huge bogus value is cut by the length check, not echoed. */
  memset(huge, 'x', sizeof(huge));
  s.str[S_EVENT_TYPE] = huge;
  s.len[S_EVENT_TYPE] = sizeof(huge);
  assert_spec_rejected(&s, CTKN_EDECODE, "event_type: 300 bytes exceeds 64");
}

static void test_unknown_status_is_rejected(void **state)
{
  struct ctkn_event ev;
  struct spec s;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  spec_from_event(&s, &ev);
  spec_str(&s, S_STATUS, "paused");
  assert_spec_rejected(&s, CTKN_EDECODE, "unknown status \"paused\"");
  spec_str(&s, S_STATUS, "Active");
  assert_spec_rejected(&s, CTKN_EDECODE, "unknown status \"Active\"");
}

static void test_request_hash_must_be_32_bytes(void **state)
{
  static const uint8_t h[40];
  static const size_t lens[] = {0, 1, 31, 33, 40};
  struct ctkn_event ev;
  struct spec s;
  char msg[64];
  size_t i;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  add_idempotency(&ev);
  spec_from_event(&s, &ev);
  for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    s.hash = h;
    s.hash_len = lens[i];
    snprintf(msg, sizeof(msg), "request_hash: %zu bytes, want 32", lens[i]);
    assert_spec_rejected(&s, CTKN_EDECODE, msg);
  }
}

static void test_present_but_empty_idempotency_key_is_rejected(void **state)
{
  struct ctkn_event ev;
  struct spec s;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  spec_from_event(&s, &ev);
  spec_str(&s, S_IDEMPOTENCY_KEY, "");
  assert_spec_rejected(&s, CTKN_EDECODE,
                       "idempotency_key: present but empty (none is absent)");
}

static void test_present_but_zero_revoked_at_is_rejected(void **state)
{
  struct ctkn_event ev;
  struct spec s;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  spec_from_event(&s, &ev);
  s.has_int[I_REVOKED_AT] = true;
  s.ints[I_REVOKED_AT] = 0;
  assert_spec_rejected(&s, CTKN_EDECODE,
                       "data.revoked_at: present but 0 (null is absent)");
}

static void test_empty_description_is_present_not_null(void **state)
{
  struct ctkn_event ev, want;
  struct spec s;

  (void)state;
  /* Shape allows it; ctkn_event_check() is what rejects it. */
  sample_event(&ev, CTKN_EVENT_CREATED);
  spec_from_event(&s, &ev);
  spec_str(&s, S_DESCRIPTION, "");
  want = ev;
  want.data.has_description = true;
  want.data.description[0] = '\0';
  assert_spec_decodes_to(&s, &want);
  assert_int_equal(ctkn_event_check(&want, NULL), CTKN_EINVAL);
}

static void test_semantically_invalid_event_still_decodes(void **state)
{
  struct ctkn_event ev, got;
  struct ctkn_err err;
  uint8_t *buf;
  size_t len;

  (void)state;
  /* Shape is the decoder's job, rules are ctkn_event_check()'s. */
  sample_event(&ev, CTKN_EVENT_CREATED);
  ev.version = 7;
  strcpy(ev.data.token, "nope");
  encode_ok(&ev, &buf, &len);
  assert_int_equal(ctkn_event_decode(buf, len, &got, NULL), CTKN_OK);
  assert_event_equal(&ev, &got);
  free(buf);
  assert_int_equal(ctkn_event_check(&got, &err), CTKN_EINVAL);
}

/* ---- compatibility ------------------------------------------------------- */

static void test_unknown_fields_are_ignored(void **state)
{
  /* Field 99 as a varint, as bytes, as fixed64 and as fixed32. */
  static const uint8_t extra[] = {
      0x98, 0x06, 0x01,                            /* 99: varint 1 */
      0x9a, 0x06, 0x03, 'a', 'b', 'c',             /* 99: "abc" */
      0x99, 0x06, 1,    2,   3,   4,   5, 6, 7, 8, /* 99: fixed64 */
      0x9d, 0x06, 1,    2,   3,   4,               /* 99: fixed32 */
  };
  struct ctkn_event ev;
  struct spec s;
  int type;

  (void)state;
  for (type = CTKN_EVENT_CREATED; type <= CTKN_EVENT_REVOKED; type++) {
    sample_event(&ev, (ctkn_event_type)type);
    spec_from_event(&s, &ev);
    s.extra = extra;
    s.extra_len = sizeof(extra);
    assert_spec_decodes_to(&s, &ev);
    s.extra_data = extra; /* inside ClientToken too */
    s.extra_data_len = sizeof(extra);
    assert_spec_decodes_to(&s, &ev);
  }
}

static void test_unknown_field_appended_to_encoding_decodes_equal(void **state)
{
  struct ctkn_event ev, got;
  uint8_t *buf, *longer;
  size_t len;

  (void)state;
  sample_event(&ev, CTKN_EVENT_CREATED);
  add_idempotency(&ev);
  encode_ok(&ev, &buf, &len);
  longer = malloc(len + 3);
  assert_non_null(longer);
  memcpy(longer, buf, len);
  memcpy(longer + len, "\x98\x06\x2a", 3); /* field 99 = 42 */
  assert_int_equal(ctkn_event_decode(longer, len + 3, &got, NULL), CTKN_OK);
  assert_event_equal(&ev, &got);
  free(longer);
  free(buf);
}

static void test_repeated_field_takes_the_last_value(void **state)
{
  /* protobuf's rule for a repeated optional scalar: last one wins. */
  static const uint8_t extra[] = {0x28, 0x09}; /* version = 9 */
  struct ctkn_event ev, want;
  struct spec s;

  (void)state;
  sample_event(&ev, CTKN_EVENT_UPDATED);
  spec_from_event(&s, &ev);
  s.extra = extra;
  s.extra_len = sizeof(extra);
  want = ev;
  want.version = 9;
  assert_spec_decodes_to(&s, &want);
}

static void test_repeated_data_message_is_merged(void **state)
{
  /* protobuf merges a repeated embedded message field by field, so a
   * second `data` holding only a name renames and keeps the rest. */
  static const uint8_t extra[] = {
      0x32, 0x07, 0x1a, 0x05, 'O',
      't',  'h',  'e',  'r'}; /* data { name: "Other" } */
  struct ctkn_event ev, want;
  struct spec s;

  (void)state;
  sample_event(&ev, CTKN_EVENT_UPDATED);
  spec_from_event(&s, &ev);
  s.extra = extra;
  s.extra_len = sizeof(extra);
  want = ev;
  strcpy(want.data.name, "Other");
  assert_spec_decodes_to(&s, &want);
}

/* The hand-over form gives back every field as decoded: unpack(pack(ev))
 * encodes to the same protobuf bytes, and the structs compare equal field
 * by field, over events of every shape and the longest strings. */
static void test_handover_form_keeps_every_field(void **state)
{
  static const ctkn_event_type types[] = {
      CTKN_EVENT_CREATED, CTKN_EVENT_UPDATED, CTKN_EVENT_REVOKED};
  (void)state;

  for (size_t t = 0; t < 3; t++) {
    for (int shape = 0; shape < 4; shape++) {
      struct ctkn_event *ev = calloc(1, sizeof(*ev)), *back = NULL;
      uint8_t *a = NULL, *b = NULL, *packed;
      size_t alen, blen, n;
      assert_non_null(ev);
      sample_event(ev, types[t]);
      if (shape & 1) {
        ev->data.has_description = true;
        memset(ev->data.description, 'd', CTKN_DESC_MAX);
        ev->data.description[CTKN_DESC_MAX] = '\0';
        memset(ev->data.name, 'n', CTKN_NAME_MAX);
        ev->data.name[CTKN_NAME_MAX] = '\0';
      }
      if (shape & 2 && types[t] == CTKN_EVENT_CREATED) {
        snprintf(ev->idempotency_key, sizeof(ev->idempotency_key), "key-%d",
                 shape);
        ev->has_request_hash = true;
        memset(ev->request_hash, 0xa5, sizeof(ev->request_hash));
      }
      n = ctkn__event_packed_size(ev);
      assert_true(n < sizeof(*ev));
      packed = malloc(n + 1);
      assert_non_null(packed);
      ctkn__event_pack(ev, packed + 1); /* unaligned on purpose */
      back = malloc(sizeof(*back));
      assert_non_null(back);
      memset(back, 0x5a, sizeof(*back)); /* nothing may be left unset */
      ctkn__event_unpack(packed + 1, back);
      assert_int_equal(ctkn_event_encode(ev, &a, &alen, NULL), CTKN_OK);
      assert_int_equal(ctkn_event_encode(back, &b, &blen, NULL), CTKN_OK);
      assert_int_equal(alen, blen);
      assert_memory_equal(a, b, alen);
      assert_true(ctkn_token_equal(&ev->data, &back->data));
      assert_string_equal(ev->event_id, back->event_id);
      assert_string_equal(ev->notification_id, back->notification_id);
      assert_string_equal(ev->idempotency_key, back->idempotency_key);
      assert_int_equal(ev->has_request_hash, back->has_request_hash);
      assert_memory_equal(ev->request_hash, back->request_hash,
                          sizeof(ev->request_hash));
      free(a);
      free(b);
      free(packed);
      free(back);
      free(ev);
    }
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_created_event_round_trips),
      cmocka_unit_test(test_handover_form_keeps_every_field),
      cmocka_unit_test(test_created_event_with_description_round_trips),
      cmocka_unit_test(test_updated_event_with_description_round_trips),
      cmocka_unit_test(test_updated_event_without_description_round_trips),
      cmocka_unit_test(test_revoked_event_with_revoked_at_round_trips),
      cmocka_unit_test(
          test_created_event_with_idempotency_key_and_hash_round_trips),
      cmocka_unit_test(test_max_length_name_and_description_round_trip),
      cmocka_unit_test(test_extreme_integers_round_trip),
      cmocka_unit_test(test_hand_written_encoding_matches_encoder),
      cmocka_unit_test(test_null_fields_are_absent_on_the_wire),
      cmocka_unit_test(test_encode_rejects_unknown_type_and_status),
      cmocka_unit_test(test_encode_rejects_unterminated_string),
      cmocka_unit_test(test_truncations_that_cut_a_field_are_rejected),
      cmocka_unit_test(test_every_truncation_of_a_plain_event_is_rejected),
      cmocka_unit_test(test_random_garbage_never_crashes),
      cmocka_unit_test(test_mutated_encodings_never_crash),
      cmocka_unit_test(test_empty_input_is_missing_event_id),
      cmocka_unit_test(test_malformed_protobuf_is_rejected),
      cmocka_unit_test(test_string_field_sent_as_varint_is_rejected),
      cmocka_unit_test(test_decode_failure_leaves_event_zeroed),
      cmocka_unit_test(test_oversized_strings_are_rejected_naming_the_field),
      cmocka_unit_test(test_name_of_700_bytes_is_rejected),
      cmocka_unit_test(test_nul_inside_any_string_is_rejected),
      cmocka_unit_test(test_missing_required_field_is_rejected_naming_it),
      cmocka_unit_test(test_optional_fields_may_be_absent),
      cmocka_unit_test(test_empty_data_message_reports_first_missing_field),
      cmocka_unit_test(test_unknown_event_type_is_rejected),
      cmocka_unit_test(test_unknown_status_is_rejected),
      cmocka_unit_test(test_request_hash_must_be_32_bytes),
      cmocka_unit_test(test_present_but_empty_idempotency_key_is_rejected),
      cmocka_unit_test(test_present_but_zero_revoked_at_is_rejected),
      cmocka_unit_test(test_empty_description_is_present_not_null),
      cmocka_unit_test(test_semantically_invalid_event_still_decodes),
      cmocka_unit_test(test_unknown_fields_are_ignored),
      cmocka_unit_test(test_unknown_field_appended_to_encoding_decodes_equal),
      cmocka_unit_test(test_repeated_field_takes_the_last_value),
      cmocka_unit_test(test_repeated_data_message_is_merged),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
