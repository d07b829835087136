/*
 * wire.c - struct ctkn_event <-> ctkn.v1.Event (protobuf, proto/ctkn.proto).
 *
 * Encoding sets every field the struct holds; description, revoked_at,
 * idempotency_key and request_hash are present only when set, so that
 * presence carries null. Enumerations travel as strings.
 *
 * Decoding is protobuf-c's unpack followed by a copy into the fixed-size
 * struct. The copy checks shape only: each string fits its buffer and has
 * no NUL byte, the fields this build needs are present, and every value
 * can be represented in the struct (a known event_type and status, a
 * 32-byte request_hash). Domain rules are ctkn_event_check()'s job.
 *
 * protobuf-c hands strings back as NUL-terminated char *, which hides a
 * NUL byte inside the string: "client_token.created\0junk" would read as
 * a valid type. Unpacking through a small allocator that records each
 * block's size recovers the length protobuf-c read (it allocates exactly
 * length + 1 for a string), so a string whose strlen() is shorter is
 * rejected. The same allocator reports out-of-memory apart from garbage.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn.pb-c.h"
#include "ctkn/codec.h"
#include "internal.h"

/* ---- size-recording allocator ---------------------------------------- */

/* Each block is preceded by its requested size, padded to keep the block
 * aligned for any type. */
typedef union alloc_hdr {
  max_align_t align;
  size_t size;
} alloc_hdr;

/* Blocks come from a small arena on the decoder's stack while it lasts
 * (one event needs a few hundred bytes), then from malloc. Decoding is on
 * the projector's hot path; this keeps it free of allocator calls. */
struct alloc_state {
  bool oom;
  unsigned char *arena;
  size_t cap, used;
};

static bool in_arena(const struct alloc_state *st, const void *p)
{
  const unsigned char *c = p;
  return c >= st->arena && c < st->arena + st->cap;
}

static void *pb_alloc(void *data, size_t size)
{
  struct alloc_state *st = data;
  alloc_hdr *h;

  if (size > SIZE_MAX - 2 * sizeof(*h)) {
    st->oom = true;
    return NULL;
  }
  /* Round up to whole headers, so every block stays aligned. */
  size_t need = (sizeof(*h) + size + sizeof(*h) - 1) / sizeof(*h) * sizeof(*h);
  if (need <= st->cap - st->used) {
    h = (alloc_hdr *)(st->arena + st->used);
    st->used += need;
  } else if ((h = malloc(sizeof(*h) + size)) == NULL) {
    st->oom = true;
    return NULL;
  }
  h->size = size;
  return h + 1;
}

static void pb_free(void *data, void *ptr)
{
  if (ptr != NULL && !in_arena(data, ptr))
    free((alloc_hdr *)ptr - 1);
}

/* The number of bytes protobuf-c read for a string it unpacked. */
static size_t pb_strlen(const char *s)
{
  return ((const alloc_hdr *)s - 1)->size - 1;
}

/* ---- encoding ------------------------------------------------------- */

/* true when the fixed-size buffer holds a NUL-terminated string. */
static bool terminated(const char *s, size_t bufsz)
{
  return memchr(s, '\0', bufsz) != NULL;
}

#define TERMINATED(s) terminated((s), sizeof(s))

/* true when one of ev's strings runs to the end of its buffer. */
static bool unterminated(const struct ctkn_event *ev)
{
  const struct ctkn_token *t = &ev->data;

  return !TERMINATED(ev->event_id) || !TERMINATED(ev->notification_id) ||
         !TERMINATED(ev->idempotency_key) || !TERMINATED(t->id) ||
         !TERMINATED(t->token) || !TERMINATED(t->name) ||
         (t->has_description && !TERMINATED(t->description));
}

int ctkn_event_encode(const struct ctkn_event *ev, uint8_t **out, size_t *len,
                      struct ctkn_err *err)
{
  Ctkn__V1__Event m = CTKN__V1__EVENT__INIT;
  Ctkn__V1__ClientToken d = CTKN__V1__CLIENT_TOKEN__INIT;
  const struct ctkn_token *t = &ev->data;
  const char *type = ctkn_event_type_str(ev->type);
  const char *status = ctkn_status_str(t->status);
  size_t n, packed;
  uint8_t *buf;

  *out = NULL;
  *len = 0;
  if (type == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "event_type",
                           "unknown event type %d", (int)ev->type);
  if (status == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "status", "unknown status %d",
                           (int)t->status);
  if (unterminated(ev))
    return ctkn__err(err, CTKN_EINVAL, "event has an unterminated string");

  /* protobuf-c's structs are not const-correct; pack only reads them. */
  d.id = (char *)t->id;
  d.token = (char *)t->token;
  d.name = (char *)t->name;
  if (t->has_description)
    d.description = (char *)t->description;
  d.status = (char *)status;
  d.has_created_at = true;
  d.created_at = t->created_at;
  d.has_updated_at = true;
  d.updated_at = t->updated_at;
  if (t->revoked_at != 0) {
    d.has_revoked_at = true;
    d.revoked_at = t->revoked_at;
  }

  m.event_id = (char *)ev->event_id;
  m.event_type = (char *)type;
  m.has_occurred_at = true;
  m.occurred_at = ev->occurred_at;
  m.notification_id = (char *)ev->notification_id;
  m.has_version = true;
  m.version = ev->version;
  m.data = &d;
  if (ev->idempotency_key[0] != '\0')
    m.idempotency_key = (char *)ev->idempotency_key;
  if (ev->has_request_hash) {
    m.has_request_hash = true;
    m.request_hash.data = (uint8_t *)ev->request_hash;
    m.request_hash.len = sizeof(ev->request_hash);
  }

  n = ctkn__v1__event__get_packed_size(&m);
  buf = malloc(n > 0 ? n : 1);
  if (buf == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "event encoding: %zu bytes", n);
  packed = ctkn__v1__event__pack(&m, buf);
  if (packed != n) {
    free(buf);
    return ctkn__err(err, CTKN_EINTERNAL, "protobuf-c packed %zu of %zu bytes",
                     packed, n);
  }
  *out = buf;
  *len = n;
  return CTKN_OK;
}

/* ---- decoding ------------------------------------------------------- */

/* Write a short, printable rendering of n bytes of s into out, for error
 * messages about values that came off the wire. */
static void excerpt(const char *s, size_t n, char *out, size_t outsz)
{
  size_t i, o = 0;

  for (i = 0; i < n && o + 8 < outsz; i++) {
    unsigned char c = (unsigned char)s[i];

    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
      out[o++] = (char)c;
    else
      o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
  }
  if (i < n && o + 3 < outsz) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
}

/* Check that an unpacked string has at most maxlen bytes and no NUL byte,
 * and return its length. field names it in the message. */
static int check_str(const char *s, size_t maxlen, const char *field,
                     size_t *lenp, struct ctkn_err *err)
{
  size_t n = pb_strlen(s);
  const char *nul;

  if (n > maxlen)
    return ctkn__err(err, CTKN_EDECODE, "%s: %zu bytes exceeds %zu", field, n,
                     maxlen);
  nul = memchr(s, '\0', n);
  if (nul != NULL)
    return ctkn__err(err, CTKN_EDECODE, "%s: NUL byte at offset %zu", field,
                     (size_t)(nul - s));
  *lenp = n;
  return CTKN_OK;
}

static int copy_str(char *dst, size_t dstsz, const char *s, const char *field,
                    struct ctkn_err *err)
{
  size_t n = 0;
  int rc = check_str(s, dstsz - 1, field, &n, err);

  if (rc != CTKN_OK)
    return rc;
  memcpy(dst, s, n);
  dst[n] = '\0';
  return CTKN_OK;
}

#define COPY_STR(dst, s, field, err)                                           \
  copy_str((dst), sizeof(dst), (s), (field), (err))

static int missing(struct ctkn_err *err, const char *field)
{
  return ctkn__err(err, CTKN_EDECODE, "missing field %s", field);
}

/* Longer than any enumeration value; keeps a huge bogus value out of the
 * error message and the parser. */
#define ENUM_STR_MAX 64

/* The first field of d that the encoder always writes and d lacks, in
 * field order; NULL when none is missing. */
static const char *token_missing(const Ctkn__V1__ClientToken *d)
{
  if (d->id == NULL)
    return "data.id";
  if (d->token == NULL)
    return "data.token";
  if (d->name == NULL)
    return "data.name";
  if (d->status == NULL)
    return "data.status";
  if (!d->has_created_at)
    return "data.created_at";
  if (!d->has_updated_at)
    return "data.updated_at";
  return NULL;
}

static int copy_token(const Ctkn__V1__ClientToken *d, struct ctkn_token *t,
                      struct ctkn_err *err)
{
  const char *absent = token_missing(d);
  char quoted[80];
  size_t n = 0;
  int rc;

  if (absent != NULL)
    return missing(err, absent);

  if ((rc = COPY_STR(t->id, d->id, "data.id", err)) != CTKN_OK ||
      (rc = COPY_STR(t->token, d->token, "data.token", err)) != CTKN_OK ||
      (rc = COPY_STR(t->name, d->name, "data.name", err)) != CTKN_OK)
    return rc;
  if (d->description != NULL) {
    rc = COPY_STR(t->description, d->description, "data.description", err);
    if (rc != CTKN_OK)
      return rc;
    t->has_description = true;
  }

  rc = check_str(d->status, ENUM_STR_MAX, "data.status", &n, err);
  if (rc != CTKN_OK)
    return rc;
  if (ctkn_status_parse(d->status, &t->status, NULL) != CTKN_OK) {
    excerpt(d->status, n, quoted, sizeof(quoted));
    return ctkn__err(err, CTKN_EDECODE, "unknown status \"%s\"", quoted);
  }

  t->created_at = d->created_at;
  t->updated_at = d->updated_at;
  if (d->has_revoked_at) {
    /* The struct spells null as 0, so a present 0 has no representation. */
    if (d->revoked_at == 0)
      return ctkn__err(err, CTKN_EDECODE,
                       "data.revoked_at: present but 0 (null is absent)");
    t->revoked_at = d->revoked_at;
  }
  return CTKN_OK;
}

/* As token_missing(), for the event around the token. */
static const char *event_missing(const Ctkn__V1__Event *m)
{
  if (m->event_id == NULL)
    return "event_id";
  if (m->event_type == NULL)
    return "event_type";
  if (!m->has_occurred_at)
    return "occurred_at";
  if (m->notification_id == NULL)
    return "notification_id";
  if (!m->has_version)
    return "version";
  if (m->data == NULL)
    return "data";
  return NULL;
}

static int copy_event(const Ctkn__V1__Event *m, struct ctkn_event *ev,
                      struct ctkn_err *err)
{
  /* Every field the encoder always writes is required, in field order. */
  const char *absent = event_missing(m);
  char quoted[80];
  size_t n = 0;
  int rc;

  if (absent != NULL)
    return missing(err, absent);

  rc = COPY_STR(ev->event_id, m->event_id, "event_id", err);
  if (rc != CTKN_OK)
    return rc;
  rc = check_str(m->event_type, ENUM_STR_MAX, "event_type", &n, err);
  if (rc != CTKN_OK)
    return rc;
  ev->type = ctkn_event_type_parse(m->event_type);
  if (ev->type == 0) {
    excerpt(m->event_type, n, quoted, sizeof(quoted));
    return ctkn__err(err, CTKN_EDECODE, "unknown event_type \"%s\"", quoted);
  }
  ev->occurred_at = m->occurred_at;
  rc =
      COPY_STR(ev->notification_id, m->notification_id, "notification_id", err);
  if (rc != CTKN_OK)
    return rc;
  ev->version = m->version;

  rc = copy_token(m->data, &ev->data, err);
  if (rc != CTKN_OK)
    return rc;

  if (m->idempotency_key != NULL) {
    rc = COPY_STR(ev->idempotency_key, m->idempotency_key, "idempotency_key",
                  err);
    if (rc != CTKN_OK)
      return rc;
    /* "" is how the struct says "none". */
    if (ev->idempotency_key[0] == '\0')
      return ctkn__err(err, CTKN_EDECODE,
                       "idempotency_key: present but empty (none is absent)");
  }
  if (m->has_request_hash) {
    if (m->request_hash.len != CTKN_HASH_LEN)
      return ctkn__err(err, CTKN_EDECODE, "request_hash: %zu bytes, want %d",
                       m->request_hash.len, CTKN_HASH_LEN);
    memcpy(ev->request_hash, m->request_hash.data, CTKN_HASH_LEN);
    ev->has_request_hash = true;
  }
  return CTKN_OK;
}

int ctkn_event_decode(const void *buf, size_t len, struct ctkn_event *ev,
                      struct ctkn_err *err)
{
  alloc_hdr arena[4096 / sizeof(alloc_hdr)];
  struct alloc_state st = {false, (unsigned char *)arena, sizeof(arena), 0};
  ProtobufCAllocator alloc = {pb_alloc, pb_free, &st};
  Ctkn__V1__Event *m;
  int rc;

  /* Not a memset of the whole struct (3 KiB of fixed-size strings, most of
   * it unused, on the projector's path for every record): copy_event()
   * sets every required field, and these are the optional ones. */
  ev->data.has_description = false;
  ev->data.description[0] = '\0';
  ev->data.revoked_at = 0;
  ev->idempotency_key[0] = '\0';
  ev->has_request_hash = false;
  memset(ev->request_hash, 0, sizeof(ev->request_hash));
  if (buf == NULL)
    buf = "";
  m = ctkn__v1__event__unpack(&alloc, len, buf);
  if (m == NULL) {
    memset(ev, 0, sizeof(*ev));
    if (st.oom)
      return ctkn__err(err, CTKN_ENOMEM, "unpacking a %zu-byte event", len);
    return ctkn__err(err, CTKN_EDECODE,
                     "not a ctkn.v1.Event protobuf (%zu bytes)", len);
  }
  rc = copy_event(m, ev, err);
  ctkn__v1__event__free_unpacked(m, &alloc);
  if (rc != CTKN_OK)
    memset(ev, 0, sizeof(*ev));
  return rc;
}
