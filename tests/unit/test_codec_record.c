/*
 * test_codec_record.c - the msgpack store record: round trips, the layout
 * tag, and strict rejection of every malformed shape.
 *
 * Malformed records are written with msgpack-c's own packer, one element
 * replaced at a time, so each test states exactly what is wrong.
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
#include <msgpack.h>

#include "ctkn/codec.h"
#include "ctkn/event.h"
#include "ctkn/token.h"

#define T0 INT64_C(1750948574695521) /* 2025-06-26T14:36:14.695521Z */

enum {
  F_LAYOUT,
  F_ID,
  F_TOKEN,
  F_NAME,
  F_DESCRIPTION,
  F_STATUS,
  F_CREATED_AT,
  F_UPDATED_AT,
  F_REVOKED_AT,
  F_VERSION,
  F_PARTITION,
  F_OFFSET,
  F_COUNT
};

static void sample_record(struct ctkn_record *r, bool revoked)
{
  struct ctkn_token *t = &r->token;

  memset(r, 0, sizeof(*r));
  strcpy(t->id, "ctkn_01jyq3v5k8q9r0s1t2v3w4x5y8");
  strcpy(t->token, "live_AbCdEfGh0123456789abcdefghi");
  strcpy(t->name, "Checkout widget");
  t->status = CTKN_STATUS_ACTIVE;
  t->created_at = T0;
  t->updated_at = T0;
  r->version = 1;
  r->partition = 3;
  r->offset = 12345;
  if (revoked) {
    t->has_description = true;
    strcpy(t->description, "Used on the pricing page");
    t->status = CTKN_STATUS_REVOKED;
    t->updated_at = T0 + 5000000;
    t->revoked_at = t->updated_at;
    r->version = 4;
    r->offset = 99999;
  }
}

static void assert_record_equal(const struct ctkn_record *a,
                                const struct ctkn_record *b)
{
  assert_string_equal(a->token.id, b->token.id);
  assert_string_equal(a->token.token, b->token.token);
  assert_string_equal(a->token.name, b->token.name);
  assert_int_equal(a->token.has_description, b->token.has_description);
  if (a->token.has_description)
    assert_string_equal(a->token.description, b->token.description);
  assert_int_equal(a->token.status, b->token.status);
  assert_int_equal(a->token.created_at, b->token.created_at);
  assert_int_equal(a->token.updated_at, b->token.updated_at);
  assert_int_equal(a->token.revoked_at, b->token.revoked_at);
  assert_true(ctkn_token_equal(&a->token, &b->token));
  assert_int_equal(a->version, b->version);
  assert_int_equal(a->partition, b->partition);
  assert_int_equal(a->offset, b->offset);
}

static void encode_ok(const struct ctkn_record *r, uint8_t **buf, size_t *len)
{
  assert_int_equal(ctkn_record_encode(r, buf, len, NULL), CTKN_OK);
  assert_non_null(*buf);
}

static void assert_round_trips(const struct ctkn_record *r)
{
  struct ctkn_record got;
  struct ctkn_err err;
  uint8_t *buf, *again;
  size_t len, len2;

  encode_ok(r, &buf, &len);
  assert_int_equal(ctkn_record_decode(buf, len, &got, &err), CTKN_OK);
  assert_record_equal(r, &got);
  /* Encoding is a function of the record: same record, same bytes. */
  encode_ok(&got, &again, &len2);
  assert_int_equal(len, len2);
  assert_memory_equal(buf, again, len);
  free(again);
  free(buf);
}

/* ---- a record writer with one element replaced ------------------------- */

typedef void (*pack_fn)(msgpack_packer *pk);

struct spec {
  uint32_t count; /* array header; elements past F_COUNT are nil */
  int replace;    /* element to write with `with`, or -1 */
  pack_fn with;
  const void *tail; /* raw bytes after the array */
  size_t tail_len;
};

static void pack_s(msgpack_packer *pk, const char *s)
{
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

static void pack_element(msgpack_packer *pk, const struct ctkn_record *r, int i)
{
  const struct ctkn_token *t = &r->token;

  switch (i) {
  case F_LAYOUT:
    msgpack_pack_uint64(pk, 1);
    break;
  case F_ID:
    pack_s(pk, t->id);
    break;
  case F_TOKEN:
    pack_s(pk, t->token);
    break;
  case F_NAME:
    pack_s(pk, t->name);
    break;
  case F_DESCRIPTION:
    if (t->has_description)
      pack_s(pk, t->description);
    else
      msgpack_pack_nil(pk);
    break;
  case F_STATUS:
    msgpack_pack_uint64(pk, (uint64_t)t->status);
    break;
  case F_CREATED_AT:
    msgpack_pack_int64(pk, t->created_at);
    break;
  case F_UPDATED_AT:
    msgpack_pack_int64(pk, t->updated_at);
    break;
  case F_REVOKED_AT:
    if (t->revoked_at != 0)
      msgpack_pack_int64(pk, t->revoked_at);
    else
      msgpack_pack_nil(pk);
    break;
  case F_VERSION:
    msgpack_pack_uint64(pk, r->version);
    break;
  case F_PARTITION:
    msgpack_pack_int64(pk, r->partition);
    break;
  case F_OFFSET:
    msgpack_pack_int64(pk, r->offset);
    break;
  default:
    msgpack_pack_nil(pk);
    break;
  }
}

static void build(msgpack_sbuffer *sb, const struct ctkn_record *r,
                  const struct spec *s)
{
  msgpack_packer pk;
  uint32_t i;

  msgpack_sbuffer_init(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, s->count);
  for (i = 0; i < s->count; i++) {
    if ((int)i == s->replace)
      s->with(&pk);
    else
      pack_element(&pk, r, (int)i);
  }
  if (s->tail_len > 0)
    msgpack_sbuffer_write(sb, s->tail, s->tail_len);
}

static const struct spec plain = {F_COUNT, -1, NULL, NULL, 0};

static int decode_spec(const struct ctkn_record *r, const struct spec *s,
                       struct ctkn_record *out, struct ctkn_err *err)
{
  msgpack_sbuffer sb;
  int rc;

  build(&sb, r, s);
  ctkn_err_clear(err);
  rc = ctkn_record_decode(sb.data, sb.size, out, err);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

static void assert_rejected(const struct spec *s, const char *msg)
{
  struct ctkn_record r, out;
  struct ctkn_err err;

  sample_record(&r, true);
  assert_int_equal(decode_spec(&r, s, &out, &err), CTKN_EDECODE);
  assert_int_equal(err.code, CTKN_EDECODE);
  assert_string_equal(err.msg, msg);
}

static void assert_bytes_rejected(const void *buf, size_t len, const char *msg)
{
  struct ctkn_record out;
  struct ctkn_err err;
  void *copy = malloc(len > 0 ? len : 1); /* exact size, for ASan */

  assert_non_null(copy);
  if (len > 0)
    memcpy(copy, buf, len);
  assert_int_equal(ctkn_record_decode(copy, len, &out, &err), CTKN_EDECODE);
  free(copy);
  if (msg != NULL)
    assert_string_equal(err.msg, msg);
}

/* Replacement values, one per wrong type. */
static void put_int5(msgpack_packer *pk)
{
  msgpack_pack_int(pk, 5);
}
static void put_neg5(msgpack_packer *pk)
{
  msgpack_pack_int(pk, -5);
}
static void put_str(msgpack_packer *pk)
{
  pack_s(pk, "x");
}
static void put_true(msgpack_packer *pk)
{
  msgpack_pack_true(pk);
}
static void put_nil(msgpack_packer *pk)
{
  msgpack_pack_nil(pk);
}
static void put_float(msgpack_packer *pk)
{
  msgpack_pack_double(pk, 1.5);
}
static void put_bin(msgpack_packer *pk)
{
  msgpack_pack_bin(pk, 2);
  msgpack_pack_bin_body(pk, "ab", 2);
}
static void put_ext(msgpack_packer *pk)
{
  msgpack_pack_ext(pk, 1, 7);
  msgpack_pack_ext_body(pk, "z", 1);
}
static void put_empty_array(msgpack_packer *pk)
{
  msgpack_pack_array(pk, 0);
}
static void put_empty_map(msgpack_packer *pk)
{
  msgpack_pack_map(pk, 0);
}

/* ---- round trips ------------------------------------------------------- */

static void test_active_record_round_trips(void **state)
{
  struct ctkn_record r;

  (void)state;
  sample_record(&r, false);
  assert_int_equal(ctkn_token_check(&r.token, CTKN_ENV_LIVE, NULL), CTKN_OK);
  assert_round_trips(&r);
}

/* msgpack-c can hand an empty string over as a NULL pointer; decoding must
 * not pass it to memchr/memcpy. These bytes came from fuzz_record under
 * UBSan: an array of 12 whose ID is "" and which is truncated. */
static void
test_empty_string_field_decodes_without_undefined_behaviour(void **state)
{
  static const uint8_t crash[] = {0x9c, 0x01, 0xa0, 0x00, 0x00, 0x00, 0x72,
                                  0x38, 0x04, 0x31, 0x00, 0x00, 0x00};
  struct ctkn_record r;
  struct ctkn_record got;
  (void)state;

  assert_int_equal(ctkn_record_decode(crash, sizeof(crash), &got, NULL),
                   CTKN_EDECODE);
  sample_record(&r, true);
  r.token.name[0] = '\0';
  assert_round_trips(&r);
}

static void test_revoked_record_with_description_round_trips(void **state)
{
  struct ctkn_record r;

  (void)state;
  sample_record(&r, true);
  assert_int_equal(ctkn_token_check(&r.token, CTKN_ENV_LIVE, NULL), CTKN_OK);
  assert_round_trips(&r);
}

static void test_max_length_name_and_description_round_trip(void **state)
{
  static const char smile[] = "\xf0\x9f\x98\x80"; /* U+1F600 */
  struct ctkn_record r;
  size_t i;

  (void)state;
  sample_record(&r, true);
  for (i = 0; i < CTKN_NAME_MAX; i++)
    memcpy(r.token.name + 4 * i, smile, 4);
  r.token.name[CTKN_NAME_BYTES] = '\0';
  for (i = 0; i < CTKN_DESC_MAX; i++)
    memcpy(r.token.description + 4 * i, smile, 4);
  r.token.description[CTKN_DESC_BYTES] = '\0';
  assert_int_equal(ctkn_token_check(&r.token, 0, NULL), CTKN_OK);
  assert_round_trips(&r);
}

static void test_extreme_integers_round_trip(void **state)
{
  struct ctkn_record r;

  (void)state;
  sample_record(&r, true);
  r.version = UINT64_MAX;
  r.partition = INT32_MIN;
  r.offset = INT64_MAX;
  r.token.created_at = INT64_MIN;
  r.token.updated_at = -1;
  r.token.revoked_at = INT64_MAX;
  assert_round_trips(&r);
  r.partition = INT32_MAX;
  r.offset = INT64_MIN;
  r.version = 0;
  assert_round_trips(&r);
}

static void test_encoding_is_layout_1_array_with_nil_for_null(void **state)
{
  struct ctkn_record r;
  msgpack_unpacked u;
  msgpack_object *e;
  uint8_t *buf;
  size_t len, off = 0;

  (void)state;
  sample_record(&r, false);
  encode_ok(&r, &buf, &len);
  assert_int_equal(buf[0], 0x9c); /* fixarray of 12 */
  assert_int_equal(buf[1], 0x01); /* layout 1 */
  msgpack_unpacked_init(&u);
  assert_int_equal(msgpack_unpack_next(&u, (const char *)buf, len, &off),
                   MSGPACK_UNPACK_SUCCESS);
  assert_int_equal(u.data.type, MSGPACK_OBJECT_ARRAY);
  assert_int_equal(u.data.via.array.size, F_COUNT);
  e = u.data.via.array.ptr;
  assert_int_equal(e[F_DESCRIPTION].type, MSGPACK_OBJECT_NIL);
  assert_int_equal(e[F_REVOKED_AT].type, MSGPACK_OBJECT_NIL);
  assert_int_equal(e[F_STATUS].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  assert_int_equal(e[F_STATUS].via.u64, CTKN_STATUS_ACTIVE);
  assert_int_equal(e[F_PARTITION].via.u64, 3);
  msgpack_unpacked_destroy(&u);
  free(buf);
}

static void test_non_minimal_integer_widths_are_accepted(void **state)
{
  static const uint8_t u64_1[] = {0xcf, 0, 0, 0, 0, 0, 0, 0, 1};
  struct ctkn_record r, got;
  uint8_t *buf, *wide;
  size_t len;

  (void)state;
  /* Layout 1 written as a uint64 instead of a fixint: same record. */
  sample_record(&r, false);
  encode_ok(&r, &buf, &len);
  wide = malloc(len + 8);
  assert_non_null(wide);
  wide[0] = buf[0];
  memcpy(wide + 1, u64_1, sizeof(u64_1));
  memcpy(wide + 1 + sizeof(u64_1), buf + 2, len - 2);
  assert_int_equal(ctkn_record_decode(wide, len + 8, &got, NULL), CTKN_OK);
  assert_record_equal(&r, &got);
  free(wide);
  free(buf);
}

static void test_encode_rejects_unknown_status(void **state)
{
  struct ctkn_record r;
  struct ctkn_err err;
  uint8_t *buf = (uint8_t *)&r;
  size_t len = 1;

  (void)state;
  sample_record(&r, false);
  r.token.status = (ctkn_status)3;
  assert_int_equal(ctkn_record_encode(&r, &buf, &len, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "status");
  assert_null(buf);
  assert_int_equal(len, 0);
}

static void test_encode_rejects_unterminated_string(void **state)
{
  struct ctkn_record r;
  uint8_t *buf;
  size_t len;

  (void)state;
  sample_record(&r, false);
  memset(r.token.name, 'x', sizeof(r.token.name));
  assert_int_equal(ctkn_record_encode(&r, &buf, &len, NULL), CTKN_EINVAL);
  assert_null(buf);
}

/* ---- framing ------------------------------------------------------------- */

static void test_every_truncation_is_rejected(void **state)
{
  struct ctkn_record r;
  uint8_t *buf;
  size_t len, p;
  int revoked;

  (void)state;
  for (revoked = 0; revoked <= 1; revoked++) {
    sample_record(&r, revoked);
    encode_ok(&r, &buf, &len);
    for (p = 0; p < len; p++)
      assert_bytes_rejected(buf, p, NULL);
    free(buf);
  }
}

static void test_truncation_names_the_element(void **state)
{
  struct ctkn_record r;
  uint8_t *buf;
  size_t len;

  (void)state;
  sample_record(&r, false);
  encode_ok(&r, &buf, &len);
  /* 0x9c, 0x01, then the id's fixstr header and 31 bytes. */
  assert_bytes_rejected(buf, 20, "truncated in element 1 (id)");
  assert_bytes_rejected(buf, 2 + 32, "truncated before element 2 (token)");
  assert_bytes_rejected(buf, 0, "empty record");
  free(buf);
}

static void test_trailing_bytes_are_rejected(void **state)
{
  struct spec s = plain;

  (void)state;
  s.tail = "\xc0";
  s.tail_len = 1;
  assert_rejected(&s, "1 trailing bytes after the record");
  s.tail = "\x9c\x01\x02";
  s.tail_len = 3;
  assert_rejected(&s, "3 trailing bytes after the record");
}

static void test_unknown_layout_tag_is_rejected(void **state)
{
  struct spec s = plain;
  static const uint8_t layout2[] = {0x92, 0x02, 0xc0};
  static const uint8_t layout0[] = {0x91, 0x00};

  (void)state;
  s.replace = F_LAYOUT;
  s.with = put_int5;
  assert_rejected(&s, "unknown record layout 5 (this build reads 1)");
  /* The tag is read before the count, so a future layout of another
   * length is reported as unknown, not as the wrong length. */
  assert_bytes_rejected(layout2, sizeof(layout2),
                        "unknown record layout 2 (this build reads 1)");
  assert_bytes_rejected(layout0, sizeof(layout0),
                        "unknown record layout 0 (this build reads 1)");
  s.with = put_str;
  assert_rejected(&s, "layout: expected unsigned integer, got string");
}

static void test_wrong_array_length_is_rejected(void **state)
{
  struct spec s = plain;
  static const uint8_t empty[] = {0x90};

  (void)state;
  s.count = F_COUNT - 1;
  assert_rejected(&s, "record layout 1 has 12 elements, got 11");
  s.count = F_COUNT + 1;
  assert_rejected(&s, "record layout 1 has 12 elements, got 13");
  assert_bytes_rejected(empty, sizeof(empty), "empty array: no layout tag");
}

static void test_not_an_array_is_rejected(void **state)
{
  static const uint8_t map[] = {0x80};
  static const uint8_t fixint[] = {0x01};
  static const uint8_t str[] = {0xa1, 'x'};

  (void)state;
  assert_bytes_rejected(map, sizeof(map),
                        "record is not a msgpack array (first byte 0x80)");
  assert_bytes_rejected(fixint, sizeof(fixint),
                        "record is not a msgpack array (first byte 0x01)");
  assert_bytes_rejected(str, sizeof(str),
                        "record is not a msgpack array (first byte 0xa1)");
}

static void test_huge_counts_are_rejected_before_allocating(void **state)
{
  /* Each header alone would make msgpack-c allocate up to 128 GiB. */
  static const uint8_t outer[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
  static const uint8_t nested_array[] = {0x92, 0x01, 0xdd, 0xff,
                                         0xff, 0xff, 0xff};
  static const uint8_t nested_map[] = {0x92, 0x01, 0xdf, 0xff,
                                       0xff, 0xff, 0xff};
  static const uint8_t huge_str[] = {0x92, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff};

  (void)state;
  assert_bytes_rejected(outer, sizeof(outer),
                        "truncated: array of 4294967295 elements in 5 bytes");
  assert_bytes_rejected(nested_array, sizeof(nested_array),
                        "element 1 (id): nested array");
  assert_bytes_rejected(nested_map, sizeof(nested_map),
                        "element 1 (id): nested map");
  assert_bytes_rejected(huge_str, sizeof(huge_str),
                        "truncated in element 1 (id)");
}

static void test_nested_containers_are_rejected(void **state)
{
  struct spec s = plain;

  (void)state;
  s.replace = F_NAME;
  s.with = put_empty_array;
  assert_rejected(&s, "element 3 (name): nested array");
  s.replace = F_OFFSET;
  s.with = put_empty_map;
  assert_rejected(&s, "element 11 (offset): nested map");
}

static void test_invalid_msgpack_byte_is_rejected(void **state)
{
  static const uint8_t c1[] = {0x92, 0x01, 0xc1};

  (void)state;
  assert_bytes_rejected(c1, sizeof(c1), "element 1 (id): invalid byte 0xc1");
}

/* ---- element types and values -------------------------------------------- */

static void test_wrong_type_in_each_position_is_rejected(void **state)
{
  static const struct {
    int at;
    pack_fn with;
    const char *msg;
  } cases[] = {
      {F_ID, put_int5, "id: expected string, got unsigned integer"},
      {F_ID, put_bin, "id: expected string, got binary"},
      {F_TOKEN, put_nil, "token: expected string, got nil"},
      {F_NAME, put_ext, "name: expected string, got ext"},
      {F_DESCRIPTION, put_true, "description: expected string, got boolean"},
      {F_STATUS, put_str, "status: expected unsigned integer, got string"},
      {F_STATUS, put_neg5,
       "status: expected unsigned integer, got negative integer"},
      {F_CREATED_AT, put_float, "created_at: expected integer, got float"},
      {F_CREATED_AT, put_nil, "created_at: expected integer, got nil"},
      {F_UPDATED_AT, put_str, "updated_at: expected integer, got string"},
      {F_REVOKED_AT, put_str, "revoked_at: expected integer, got string"},
      {F_VERSION, put_neg5,
       "version: expected unsigned integer, got negative integer"},
      {F_VERSION, put_nil, "version: expected unsigned integer, got nil"},
      {F_PARTITION, put_str, "partition: expected integer, got string"},
      {F_OFFSET, put_true, "offset: expected integer, got boolean"},
  };
  struct spec s = plain;
  size_t i;

  (void)state;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    s.replace = cases[i].at;
    s.with = cases[i].with;
    assert_rejected(&s, cases[i].msg);
  }
}

static void put_long_id(msgpack_packer *pk)
{
  pack_s(pk, "ctkn_01jyq3v5k8q9r0s1t2v3w4x5y8X"); /* 32 bytes */
}
static void put_long_token(msgpack_packer *pk)
{
  pack_s(pk, "live_AbCdEfGh0123456789abcdefghiX"); /* 33 bytes */
}
static void put_long_name(msgpack_packer *pk)
{
  char s[CTKN_NAME_BYTES + 2];

  memset(s, 'n', sizeof(s) - 1);
  s[sizeof(s) - 1] = '\0';
  pack_s(pk, s);
}
static void put_long_description(msgpack_packer *pk)
{
  char s[CTKN_DESC_BYTES + 2];

  memset(s, 'd', sizeof(s) - 1);
  s[sizeof(s) - 1] = '\0';
  pack_s(pk, s);
}

static void test_oversized_strings_are_rejected(void **state)
{
  struct spec s = plain;

  (void)state;
  s.replace = F_ID;
  s.with = put_long_id;
  assert_rejected(&s, "id: 32 bytes exceeds 31");
  s.replace = F_TOKEN;
  s.with = put_long_token;
  assert_rejected(&s, "token: 33 bytes exceeds 32");
  s.replace = F_NAME;
  s.with = put_long_name;
  assert_rejected(&s, "name: 601 bytes exceeds 600");
  s.replace = F_DESCRIPTION;
  s.with = put_long_description;
  assert_rejected(&s, "description: 2001 bytes exceeds 2000");
}

static void put_nul_name(msgpack_packer *pk)
{
  msgpack_pack_str(pk, 5);
  msgpack_pack_str_body(pk, "ab\0cd", 5);
}
static void put_nul_token(msgpack_packer *pk)
{
  msgpack_pack_str(pk, 1);
  msgpack_pack_str_body(pk, "", 1);
}

static void test_nul_inside_string_is_rejected(void **state)
{
  struct spec s = plain;

  (void)state;
  s.replace = F_NAME;
  s.with = put_nul_name;
  assert_rejected(&s, "name: NUL byte at offset 2");
  s.replace = F_DESCRIPTION;
  assert_rejected(&s, "description: NUL byte at offset 2");
  s.replace = F_TOKEN;
  s.with = put_nul_token;
  assert_rejected(&s, "token: NUL byte at offset 0");
}

static void put_status0(msgpack_packer *pk)
{
  msgpack_pack_uint64(pk, 0);
}
static void put_status3(msgpack_packer *pk)
{
  msgpack_pack_uint64(pk, 3);
}
static void put_zero(msgpack_packer *pk)
{
  msgpack_pack_int64(pk, 0);
}
static void put_above_int32(msgpack_packer *pk)
{
  msgpack_pack_int64(pk, (int64_t)INT32_MAX + 1);
}
static void put_below_int32(msgpack_packer *pk)
{
  msgpack_pack_int64(pk, (int64_t)INT32_MIN - 1);
}
static void put_above_int64(msgpack_packer *pk)
{
  msgpack_pack_uint64(pk, (uint64_t)INT64_MAX + 1);
}

static void test_unknown_status_is_rejected(void **state)
{
  struct spec s = plain;

  (void)state;
  s.replace = F_STATUS;
  s.with = put_status0;
  assert_rejected(&s, "status: unknown value 0");
  s.with = put_status3;
  assert_rejected(&s, "status: unknown value 3");
}

static void test_zero_revoked_at_is_rejected(void **state)
{
  struct spec s = plain;

  (void)state;
  s.replace = F_REVOKED_AT;
  s.with = put_zero;
  assert_rejected(&s, "revoked_at: 0 where null must be nil");
}

static void test_partition_outside_int32_is_rejected(void **state)
{
  struct spec s = plain;

  (void)state;
  s.replace = F_PARTITION;
  s.with = put_above_int32;
  assert_rejected(&s, "partition: 2147483648 is outside int32");
  s.with = put_below_int32;
  assert_rejected(&s, "partition: -2147483649 is outside int32");
}

static void test_integer_above_int64_is_rejected(void **state)
{
  struct spec s = plain;

  (void)state;
  s.replace = F_CREATED_AT;
  s.with = put_above_int64;
  assert_rejected(&s, "created_at: 9223372036854775808 exceeds int64");
  s.replace = F_OFFSET;
  assert_rejected(&s, "offset: 9223372036854775808 exceeds int64");
}

static void test_nil_description_and_revoked_at_decode_as_null(void **state)
{
  struct ctkn_record r, got;
  struct ctkn_err err;

  (void)state;
  sample_record(&r, false);
  assert_int_equal(decode_spec(&r, &plain, &got, &err), CTKN_OK);
  assert_false(got.token.has_description);
  assert_int_equal(got.token.revoked_at, 0);
  assert_record_equal(&r, &got);
}

static void test_decode_failure_leaves_record_zeroed(void **state)
{
  struct ctkn_record r, zero;
  struct spec s = plain;

  (void)state;
  s.replace = F_OFFSET; /* the last element: everything else was copied */
  s.with = put_str;
  memset(&zero, 0, sizeof(zero));
  sample_record(&r, true);
  assert_int_equal(decode_spec(&r, &s, &r, NULL), CTKN_EDECODE);
  assert_memory_equal(&r, &zero, sizeof(r));
}

/* ---- garbage ---------------------------------------------------------------
 */

static uint64_t rng_next(uint64_t *s)
{
  /* splitmix64: deterministic, so a failure reproduces. */
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static void assert_reencodes(const struct ctkn_record *r)
{
  struct ctkn_record again;
  uint8_t *buf;
  size_t len;

  encode_ok(r, &buf, &len);
  assert_int_equal(ctkn_record_decode(buf, len, &again, NULL), CTKN_OK);
  assert_record_equal(r, &again);
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
    struct ctkn_record r;
    int rc;

    assert_non_null(buf);
    /* Half start like a record, so the walk gets past the header. */
    for (j = 0; j < len; j++)
      buf[j] = (uint8_t)rng_next(&seed);
    if (len > 1 && (i & 1)) {
      buf[0] = 0x9c;
      buf[1] = 0x01;
    }
    rc = ctkn_record_decode(buf, len, &r, NULL);
    assert_true(rc == CTKN_OK || rc == CTKN_EDECODE);
    if (rc == CTKN_OK)
      assert_reencodes(&r);
    free(buf);
  }
}

static void test_mutated_encodings_never_crash(void **state)
{
  struct ctkn_record r;
  uint8_t *orig;
  size_t len;
  uint64_t seed = 7;
  int i, decoded = 0;

  (void)state;
  sample_record(&r, true);
  encode_ok(&r, &orig, &len);
  for (i = 0; i < 10000; i++) {
    uint8_t *buf = malloc(len);
    struct ctkn_record got;
    int flips = 1 + (int)(rng_next(&seed) % 4), k, rc;

    assert_non_null(buf);
    memcpy(buf, orig, len);
    for (k = 0; k < flips; k++)
      buf[rng_next(&seed) % len] ^= (uint8_t)(1u << (rng_next(&seed) % 8));
    rc = ctkn_record_decode(buf, len, &got, NULL);
    assert_true(rc == CTKN_OK || rc == CTKN_EDECODE);
    if (rc == CTKN_OK) {
      decoded++;
      assert_reencodes(&got);
    }
    free(buf);
  }
  assert_true(decoded > 0);
  free(orig);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_active_record_round_trips),
      cmocka_unit_test(test_revoked_record_with_description_round_trips),
      cmocka_unit_test(
          test_empty_string_field_decodes_without_undefined_behaviour),
      cmocka_unit_test(test_max_length_name_and_description_round_trip),
      cmocka_unit_test(test_extreme_integers_round_trip),
      cmocka_unit_test(test_encoding_is_layout_1_array_with_nil_for_null),
      cmocka_unit_test(test_non_minimal_integer_widths_are_accepted),
      cmocka_unit_test(test_encode_rejects_unknown_status),
      cmocka_unit_test(test_encode_rejects_unterminated_string),
      cmocka_unit_test(test_every_truncation_is_rejected),
      cmocka_unit_test(test_truncation_names_the_element),
      cmocka_unit_test(test_trailing_bytes_are_rejected),
      cmocka_unit_test(test_unknown_layout_tag_is_rejected),
      cmocka_unit_test(test_wrong_array_length_is_rejected),
      cmocka_unit_test(test_not_an_array_is_rejected),
      cmocka_unit_test(test_huge_counts_are_rejected_before_allocating),
      cmocka_unit_test(test_nested_containers_are_rejected),
      cmocka_unit_test(test_invalid_msgpack_byte_is_rejected),
      cmocka_unit_test(test_wrong_type_in_each_position_is_rejected),
      cmocka_unit_test(test_oversized_strings_are_rejected),
      cmocka_unit_test(test_nul_inside_string_is_rejected),
      cmocka_unit_test(test_unknown_status_is_rejected),
      cmocka_unit_test(test_zero_revoked_at_is_rejected),
      cmocka_unit_test(test_partition_outside_int32_is_rejected),
      cmocka_unit_test(test_integer_above_int64_is_rejected),
      cmocka_unit_test(test_nil_description_and_revoked_at_decode_as_null),
      cmocka_unit_test(test_decode_failure_leaves_record_zeroed),
      cmocka_unit_test(test_random_garbage_never_crashes),
      cmocka_unit_test(test_mutated_encodings_never_crash),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
