/*
 * record.c - struct ctkn_record <-> msgpack, the value of the tokens table.
 *
 * A record is one positional msgpack array whose first element names its
 * layout, so the layout can evolve without guessing:
 *
 *   [1, id, token, name, description | nil, status, created_at, updated_at,
 *    revoked_at | nil, version, partition, offset]
 *
 * status is the ctkn_status number (1 active, 2 revoked); times are int64
 * microseconds; nil spells null. A layout this build does not know is a
 * decode error that names it.
 *
 * Decoding is strict: every element's type, every string's length against
 * its fixed buffer, no NUL inside a string, the exact element count and no
 * trailing bytes. Values the struct cannot represent (a status that is
 * neither 1 nor 2, a partition outside int32, a revoked_at of 0, which the
 * struct reads as null) are decode errors too, so that decode and encode
 * are inverse on every input decode accepts.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "codec/store_values.h"
#include "ctkn/codec.h"
#include "internal.h"

#define RECORD_LAYOUT 1

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

static const char *const field_names[F_COUNT] = {
    "layout",      "id",      "token",      "name",
    "description", "status",  "created_at", "updated_at",
    "revoked_at",  "version", "partition",  "offset"};

static const char *field_name(uint32_t i)
{
  return i < F_COUNT ? field_names[i] : "extra element";
}

/* ---- encoding ------------------------------------------------------- */

static int pack_str(msgpack_packer *pk, const char *s)
{
  size_t n = strlen(s);

  return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

static bool terminated(const char *s, size_t bufsz)
{
  return memchr(s, '\0', bufsz) != NULL;
}

#define TERMINATED(s) terminated((s), sizeof(s))

/* A msgpack writer into a caller's fixed buffer. */
struct fixed {
  uint8_t *buf;
  size_t cap, len;
};

static int fixed_write(void *data, const char *p, size_t n)
{
  struct fixed *f = data;

  if (n > f->cap - f->len)
    return -1;
  memcpy(f->buf + f->len, p, n);
  f->len += n;
  return 0;
}

int ctkn_record_encode_into(const struct ctkn_record *rec, uint8_t *buf,
                            size_t cap, size_t *len, struct ctkn_err *err)
{
  return ctkn__record_encode_parts(&rec->token, rec->version, rec->partition,
                                   rec->offset, buf, cap, len, err);
}

int ctkn__record_encode_parts(const struct ctkn_token *t, uint64_t version,
                              int32_t partition, int64_t offset, uint8_t *buf,
                              size_t cap, size_t *len, struct ctkn_err *err)
{
  struct fixed f = {buf, cap, 0};
  msgpack_packer pk;
  int rc = 0;

  *len = 0;
  if (t->status != CTKN_STATUS_ACTIVE && t->status != CTKN_STATUS_REVOKED)
    return ctkn__err_field(err, CTKN_EINVAL, "status", "unknown status %d",
                           (int)t->status);
  if (!TERMINATED(t->id) || !TERMINATED(t->token) || !TERMINATED(t->name) ||
      (t->has_description && !TERMINATED(t->description)))
    return ctkn__err(err, CTKN_EINVAL, "record has an unterminated string");

  msgpack_packer_init(&pk, &f, fixed_write);
  rc |= msgpack_pack_array(&pk, F_COUNT);
  rc |= msgpack_pack_uint64(&pk, RECORD_LAYOUT);
  rc |= pack_str(&pk, t->id);
  rc |= pack_str(&pk, t->token);
  rc |= pack_str(&pk, t->name);
  rc |= t->has_description ? pack_str(&pk, t->description)
                           : msgpack_pack_nil(&pk);
  rc |= msgpack_pack_uint64(&pk, (uint64_t)t->status);
  rc |= msgpack_pack_int64(&pk, t->created_at);
  rc |= msgpack_pack_int64(&pk, t->updated_at);
  rc |= t->revoked_at != 0 ? msgpack_pack_int64(&pk, t->revoked_at)
                           : msgpack_pack_nil(&pk);
  rc |= msgpack_pack_uint64(&pk, version);
  rc |= msgpack_pack_int64(&pk, partition);
  rc |= msgpack_pack_int64(&pk, offset);
  if (rc != 0)
    return ctkn__err(err, CTKN_EINVAL, "record does not fit %zu bytes", cap);
  *len = f.len;
  return CTKN_OK;
}

int ctkn_record_encode(const struct ctkn_record *rec, uint8_t **out,
                       size_t *len, struct ctkn_err *err)
{
  uint8_t buf[CTKN_RECORD_MAX];
  int rc;

  *out = NULL;
  if ((rc = ctkn_record_encode_into(rec, buf, sizeof(buf), len, err)) !=
      CTKN_OK)
    return rc;
  if ((*out = malloc(*len)) == NULL) {
    *len = 0;
    return ctkn__err(err, CTKN_ENOMEM, "record encoding");
  }
  memcpy(*out, buf, *len);
  return CTKN_OK;
}

/* ---- decoding ------------------------------------------------------- */

static uint64_t be(const uint8_t *p, size_t n)
{
  uint64_t v = 0;
  size_t i;

  for (i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* The outer array's header at p: its element count and its own size.
 * The count is bounded by the bytes that follow (each element takes at
 * least one). */
static int array_header(const uint8_t *p, size_t len, uint64_t *count,
                        size_t *hdr, struct ctkn_err *err)
{
  if (len == 0)
    return ctkn__err(err, CTKN_EDECODE, "empty record");
  if (p[0] >= 0x90 && p[0] <= 0x9f) {
    *count = p[0] & 0x0f;
    *hdr = 1;
  } else if (p[0] == 0xdc || p[0] == 0xdd) {
    *hdr = p[0] == 0xdc ? 3 : 5;
    if (len < *hdr)
      return ctkn__err(err, CTKN_EDECODE, "truncated array header");
    *count = be(p + 1, *hdr - 1);
  } else {
    return ctkn__err(err, CTKN_EDECODE,
                     "record is not a msgpack array (first byte 0x%02x)", p[0]);
  }
  if (*count > len - *hdr)
    return ctkn__err(err, CTKN_EDECODE,
                     "truncated: array of %" PRIu64 " elements in %zu bytes",
                     *count, len);
  return CTKN_OK;
}

/* Whether type byte b starts a scalar with no length field (fixint, nil,
 * bool, fixstr, int, uint, float, fixext); *body is its payload size. */
static bool fixed_size(uint8_t b, uint64_t *body)
{
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
    *body = 0;
  else if (b >= 0xa0 && b <= 0xbf)
    *body = b & 0x1f;
  else if (b >= 0xcc && b <= 0xd3)
    *body = (uint64_t)1 << ((b - 0xcc) & 3);
  else if (b == 0xca || b == 0xcb)
    *body = b == 0xca ? 4 : 8;
  else if (b >= 0xd4 && b <= 0xd8)
    *body = 1 + ((uint64_t)1 << (b - 0xd4));
  else
    return false;
  return true;
}

/* The size of the length field after type byte b: 1, 2 or 4 for bin8/16/32,
 * ext8/16/32 and str8/16/32; 0 for any other type. */
static size_t length_field(uint8_t b)
{
  static const uint8_t lenlen[] = {1, 2, 4, 1, 2, 4};

  if (b >= 0xc4 && b <= 0xc9)
    return lenlen[b - 0xc4];
  if (b >= 0xd9 && b <= 0xdb)
    return lenlen[b - 0xd9];
  return 0;
}

/* Element i at p + pos (pos < len): the size of its head (type byte and
 * length field) and of its payload, which may still overrun len. */
static int element_size(const uint8_t *p, size_t pos, size_t len, uint32_t i,
                        const char *(*name_of)(uint32_t), size_t *head,
                        uint64_t *body, struct ctkn_err *err)
{
  uint8_t b = p[pos];
  size_t ll;

  *head = 1;
  if (fixed_size(b, body))
    return CTKN_OK;
  if ((ll = length_field(b)) > 0) {
    /* A length field, then (ext) one type byte, then the payload. */
    *head = 1 + ll;
    if (len - pos < *head)
      return ctkn__err(err, CTKN_EDECODE,
                       "truncated in element %" PRIu32 " (%s)", i, name_of(i));
    *body = be(p + pos + 1, ll) + (b >= 0xc7 && b <= 0xc9 ? 1 : 0);
    return CTKN_OK;
  }
  if (b == 0xc1)
    return ctkn__err(err, CTKN_EDECODE,
                     "element %" PRIu32 " (%s): invalid byte 0xc1", i,
                     name_of(i));
  /* 0x80-0x9f, 0xdc-0xdf: fixmap, fixarray, array16/32, map16/32. */
  return ctkn__err(
      err, CTKN_EDECODE, "element %" PRIu32 " (%s): nested %s", i, name_of(i),
      (b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd ? "array" : "map");
}

/*
 * Walk the framing of the bytes before msgpack-c sees them.
 *
 * msgpack-c allocates an array's or map's storage from the count in its
 * header, before it reads a single element, so five bytes (dd ff ff ff ff)
 * ask it for 128 GiB. A record is one array of scalars: this walk bounds
 * the outer count by the bytes that follow, refuses nested arrays and
 * maps, and reports truncation and trailing bytes by element. What passes
 * is a complete, flat array that msgpack-c parses in memory proportional
 * to its length.
 */
int ctkn__check_flat_array(const uint8_t *p, size_t len,
                           const char *(*name_of)(uint32_t),
                           struct ctkn_err *err)
{
  size_t pos = 0;
  uint64_t count = 0;
  uint32_t i;
  int rc;

  if ((rc = array_header(p, len, &count, &pos, err)) != CTKN_OK)
    return rc;
  for (i = 0; i < count; i++) {
    size_t head;
    uint64_t body = 0;

    if (pos >= len)
      return ctkn__err(err, CTKN_EDECODE,
                       "truncated before element %" PRIu32 " (%s)", i,
                       name_of(i));
    if ((rc = element_size(p, pos, len, i, name_of, &head, &body, err)) !=
        CTKN_OK)
      return rc;
    if (len - pos < head || body > len - pos - head)
      return ctkn__err(err, CTKN_EDECODE,
                       "truncated in element %" PRIu32 " (%s)", i, name_of(i));
    pos += head + (size_t)body;
  }
  if (pos != len)
    return ctkn__err(err, CTKN_EDECODE, "%zu trailing bytes after the record",
                     len - pos);
  return CTKN_OK;
}

static const char *type_name(msgpack_object_type t)
{
  switch (t) {
  case MSGPACK_OBJECT_NIL:
    return "nil";
  case MSGPACK_OBJECT_BOOLEAN:
    return "boolean";
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    return "unsigned integer";
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    return "negative integer";
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    return "float";
  case MSGPACK_OBJECT_STR:
    return "string";
  case MSGPACK_OBJECT_ARRAY:
    return "array";
  case MSGPACK_OBJECT_MAP:
    return "map";
  case MSGPACK_OBJECT_BIN:
    return "binary";
  case MSGPACK_OBJECT_EXT:
    return "ext";
  }
  return "unknown type";
}

static int wrong_type(const msgpack_object *o, int f, const char *want,
                      struct ctkn_err *err)
{
  return ctkn__err(err, CTKN_EDECODE, "%s: expected %s, got %s", field_names[f],
                   want, type_name(o->type));
}

static int get_str(const msgpack_object *o, int f, char *dst, size_t dstsz,
                   struct ctkn_err *err)
{
  const char *nul;
  uint32_t n;

  if (o->type != MSGPACK_OBJECT_STR)
    return wrong_type(o, f, "string", err);
  n = o->via.str.size;
  if (n > dstsz - 1)
    return ctkn__err(err, CTKN_EDECODE, "%s: %" PRIu32 " bytes exceeds %zu",
                     field_names[f], n, dstsz - 1);
  /* msgpack-c gives an empty string a NULL pointer. */
  nul = n > 0 ? memchr(o->via.str.ptr, '\0', n) : NULL;
  if (nul != NULL)
    return ctkn__err(err, CTKN_EDECODE, "%s: NUL byte at offset %zu",
                     field_names[f], (size_t)(nul - o->via.str.ptr));
  if (n > 0)
    memcpy(dst, o->via.str.ptr, n);
  dst[n] = '\0';
  return CTKN_OK;
}

#define GET_STR(o, f, dst, err) get_str((o), (f), (dst), sizeof(dst), (err))

static int get_u64(const msgpack_object *o, int f, uint64_t *v,
                   struct ctkn_err *err)
{
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return wrong_type(o, f, "unsigned integer", err);
  *v = o->via.u64;
  return CTKN_OK;
}

static int get_i64(const msgpack_object *o, int f, int64_t *v,
                   struct ctkn_err *err)
{
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *v = o->via.i64;
    return CTKN_OK;
  }
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return wrong_type(o, f, "integer", err);
  if (o->via.u64 > INT64_MAX)
    return ctkn__err(err, CTKN_EDECODE, "%s: %" PRIu64 " exceeds int64",
                     field_names[f], o->via.u64);
  *v = (int64_t)o->via.u64;
  return CTKN_OK;
}

/* Check that root is an array of this build's layout, with its element
 * count. The layout decides the rest, so it is checked before the count. */
static int check_layout(const msgpack_object *root, struct ctkn_err *err)
{
  uint64_t u = 0;
  int rc;

  if (root->type != MSGPACK_OBJECT_ARRAY)
    return ctkn__err(err, CTKN_EDECODE, "record is a %s, not an array",
                     type_name(root->type));
  if (root->via.array.size == 0)
    return ctkn__err(err, CTKN_EDECODE, "empty array: no layout tag");
  if ((rc = get_u64(&root->via.array.ptr[F_LAYOUT], F_LAYOUT, &u, err)) !=
      CTKN_OK)
    return rc;
  if (u != RECORD_LAYOUT)
    return ctkn__err(err, CTKN_EDECODE,
                     "unknown record layout %" PRIu64 " (this build reads %d)",
                     u, RECORD_LAYOUT);
  if (root->via.array.size != F_COUNT)
    return ctkn__err(err, CTKN_EDECODE,
                     "record layout %d has %d elements, got %" PRIu32,
                     RECORD_LAYOUT, F_COUNT, root->via.array.size);
  return CTKN_OK;
}

/* The token's times: revoked_at is nil for null, never 0. */
static int get_times(const msgpack_object *e, struct ctkn_token *t,
                     struct ctkn_err *err)
{
  int rc;

  if ((rc = get_i64(&e[F_CREATED_AT], F_CREATED_AT, &t->created_at, err)) !=
          CTKN_OK ||
      (rc = get_i64(&e[F_UPDATED_AT], F_UPDATED_AT, &t->updated_at, err)) !=
          CTKN_OK)
    return rc;
  if (e[F_REVOKED_AT].type != MSGPACK_OBJECT_NIL) {
    rc = get_i64(&e[F_REVOKED_AT], F_REVOKED_AT, &t->revoked_at, err);
    if (rc != CTKN_OK)
      return rc;
    if (t->revoked_at == 0)
      return ctkn__err(err, CTKN_EDECODE,
                       "revoked_at: 0 where null must be nil");
  }
  return CTKN_OK;
}

/* Layout 1's elements, in order. */
static int from_object(const msgpack_object *root, struct ctkn_record *rec,
                       struct ctkn_err *err)
{
  const msgpack_object *e;
  struct ctkn_token *t = &rec->token;
  uint64_t u = 0;
  int64_t i = 0;
  int rc;

  if ((rc = check_layout(root, err)) != CTKN_OK)
    return rc;
  e = root->via.array.ptr;
  if ((rc = GET_STR(&e[F_ID], F_ID, t->id, err)) != CTKN_OK ||
      (rc = GET_STR(&e[F_TOKEN], F_TOKEN, t->token, err)) != CTKN_OK ||
      (rc = GET_STR(&e[F_NAME], F_NAME, t->name, err)) != CTKN_OK)
    return rc;
  if (e[F_DESCRIPTION].type != MSGPACK_OBJECT_NIL) {
    rc = GET_STR(&e[F_DESCRIPTION], F_DESCRIPTION, t->description, err);
    if (rc != CTKN_OK)
      return rc;
    t->has_description = true;
  }

  if ((rc = get_u64(&e[F_STATUS], F_STATUS, &u, err)) != CTKN_OK)
    return rc;
  if (u != CTKN_STATUS_ACTIVE && u != CTKN_STATUS_REVOKED)
    return ctkn__err(err, CTKN_EDECODE, "status: unknown value %" PRIu64, u);
  t->status = (ctkn_status)u;
  if ((rc = get_times(e, t, err)) != CTKN_OK)
    return rc;

  if ((rc = get_u64(&e[F_VERSION], F_VERSION, &rec->version, err)) != CTKN_OK)
    return rc;
  if ((rc = get_i64(&e[F_PARTITION], F_PARTITION, &i, err)) != CTKN_OK)
    return rc;
  if (i < INT32_MIN || i > INT32_MAX)
    return ctkn__err(err, CTKN_EDECODE,
                     "partition: %" PRId64 " is outside int32", i);
  rec->partition = (int32_t)i;
  return get_i64(&e[F_OFFSET], F_OFFSET, &rec->offset, err);
}

int ctkn_record_decode(const void *buf, size_t len, struct ctkn_record *rec,
                       struct ctkn_err *err)
{
  msgpack_unpacked u;
  msgpack_unpack_return r;
  size_t off = 0;
  int rc;

  memset(rec, 0, sizeof(*rec));
  if (buf == NULL)
    buf = "";
  rc = ctkn__check_flat_array(buf, len, field_name, err);
  if (rc != CTKN_OK)
    return rc;

  msgpack_unpacked_init(&u);
  r = msgpack_unpack_next(&u, buf, len, &off);
  if (r == MSGPACK_UNPACK_NOMEM_ERROR)
    rc = ctkn__err(err, CTKN_ENOMEM, "unpacking a %zu-byte record", len);
  else if (r != MSGPACK_UNPACK_SUCCESS || off != len)
    /* ctkn__check_flat_array() accepted it, so msgpack-c should too. */
    rc = ctkn__err(err, CTKN_EDECODE, "msgpack: parse error (%d) at %zu",
                   (int)r, off);
  else
    rc = from_object(&u.data, rec, err);
  msgpack_unpacked_destroy(&u);
  if (rc != CTKN_OK)
    memset(rec, 0, sizeof(*rec));
  return rc;
}
