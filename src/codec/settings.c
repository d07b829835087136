/*
 * settings.c - destinations and their events: protobuf on the settings
 * topic (proto/ctkn_settings.proto), msgpack in the destinations table.
 *
 * The stored destination is one positional msgpack array whose first
 * element names its layout:
 *
 *   [2, id, description | nil, url, active, events, bin sealed_secret,
 *    created_at, updated_at, version, deleted, traffic]
 *
 * traffic is ctkn_traffic (0 platform, 1 all). Layout 1, written before
 * traffic_source was kept, is the same without it, and reads as platform.
 *
 * events is the subscription mask (bit 1 << ctkn_event_type). Decoding is
 * strict about types, lengths and the element count, like record.c's.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "ctkn/codec.h"
#include "ctkn/notification.h"
#include "ctkn/setting.h"
#include "ctkn_settings.pb-c.h"
#include "internal.h"

#define DEST_LAYOUT    2
#define DEST_FIELDS    12
#define DEST_FIELDS_V1 11 /* layout 1: no traffic */

/* ---- protobuf ---------------------------------------------------------- */

int ctkn_setting_event_encode(const struct ctkn_setting_event *ev,
                              uint8_t **out, size_t *len, struct ctkn_err *err)
{
  Ctkn__V1__SettingEvent m = CTKN__V1__SETTING_EVENT__INIT;
  Ctkn__V1__Destination d = CTKN__V1__DESTINATION__INIT;
  char *names[16];
  size_t nnames = 0;
  const struct ctkn_destination *x = &ev->data;

  *out = NULL;
  *len = 0;
  if (ctkn_setting_type_str(ev->type) == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "event_type", "unknown type %d",
                           (int)ev->type);
  for (int t = 1; t < 16; t++) {
    if ((x->events & (1u << t)) && ctkn_dest_event_str(t) != NULL)
      names[nnames++] = (char *)ctkn_dest_event_str(t);
  }
  d.id = (char *)x->id;
  d.description = x->has_description ? (char *)x->description : NULL;
  d.url = (char *)x->url;
  d.has_active = true;
  d.active = x->active;
  d.n_subscribed_events = nnames;
  d.subscribed_events = names;
  d.has_sealed_secret = true;
  d.sealed_secret.len = sizeof(x->sealed);
  d.sealed_secret.data = (uint8_t *)x->sealed;
  d.has_created_at = d.has_updated_at = true;
  d.created_at = x->created_at;
  d.updated_at = x->updated_at;
  d.traffic_source = (char *)ctkn_traffic_str(x->traffic);

  m.event_id = (char *)ev->event_id;
  m.event_type = (char *)ctkn_setting_type_str(ev->type);
  m.has_occurred_at = m.has_version = true;
  m.occurred_at = ev->occurred_at;
  m.version = ev->version;
  m.data = &d;
  m.n_start_offsets = ev->nstart > 0 ? (size_t)ev->nstart : 0;
  m.start_offsets = (int64_t *)ev->start;

  size_t n = ctkn__v1__setting_event__get_packed_size(&m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "encoding a setting event");
  ctkn__v1__setting_event__pack(&m, buf);
  *out = buf;
  *len = n;
  return CTKN_OK;
}

/* Copy a decoded string into a fixed buffer: present, fits, no NUL. */
static int copy_str(char *dst, size_t dstsz, const char *src, const char *field,
                    bool required, struct ctkn_err *err)
{
  if (src == NULL) {
    dst[0] = '\0';
    return required ? ctkn__err(err, CTKN_EDECODE, "%s: missing", field)
                    : CTKN_OK;
  }
  if (ctkn__strlcpy(dst, src, dstsz) >= dstsz)
    return ctkn__err(err, CTKN_EDECODE, "%s: longer than %zu bytes", field,
                     dstsz - 1);
  return CTKN_OK;
}

static int copy_dest(const Ctkn__V1__Destination *d, struct ctkn_destination *x,
                     struct ctkn_err *err)
{
  int rc;

  if ((rc = copy_str(x->id, sizeof(x->id), d->id, "data.id", true, err)) ||
      (rc = copy_str(x->description, sizeof(x->description), d->description,
                     "data.description", false, err)) ||
      (rc = copy_str(x->url, sizeof(x->url), d->url, "data.url", true, err)))
    return rc;
  x->has_description = d->description != NULL;
  if (!d->has_active)
    return ctkn__err(err, CTKN_EDECODE, "data.active: missing");
  x->active = d->active;
  for (size_t i = 0; i < d->n_subscribed_events; i++) {
    int t = ctkn_dest_event_parse(d->subscribed_events[i]);
    if (t == 0)
      return ctkn__err(err, CTKN_EDECODE,
                       "data.subscribed_events: unknown event type \"%.64s\"",
                       d->subscribed_events[i]);
    if (x->events & (1u << t))
      return ctkn__err(err, CTKN_EDECODE,
                       "data.subscribed_events: \"%s\" twice",
                       d->subscribed_events[i]);
    x->events |= 1u << t;
  }
  if (!d->has_sealed_secret || d->sealed_secret.len != sizeof(x->sealed))
    return ctkn__err(
        err, CTKN_EDECODE, "data.sealed_secret: want %zu bytes, got %zu",
        sizeof(x->sealed), d->has_sealed_secret ? d->sealed_secret.len : 0);
  memcpy(x->sealed, d->sealed_secret.data, sizeof(x->sealed));
  if (!d->has_created_at || !d->has_updated_at)
    return ctkn__err(err, CTKN_EDECODE, "data.created_at/updated_at: missing");
  x->created_at = d->created_at;
  x->updated_at = d->updated_at;
  x->traffic = CTKN_TRAFFIC_PLATFORM;
  if (d->traffic_source != NULL &&
      ctkn_traffic_parse(d->traffic_source, &x->traffic) != 0)
    return ctkn__err(err, CTKN_EDECODE,
                     "data.traffic_source: unknown \"%.64s\"",
                     d->traffic_source);
  return CTKN_OK;
}

/*
 * protobuf-c sizes a repeated field's array from counts the input claims;
 * a few bytes can claim gigabytes (the fuzzer found 32 GiB). No settings
 * event needs more than a few KiB per block, so larger requests fail, and
 * the unpack with them: a decode error, not an allocation.
 */
#define PB_BLOCK_MAX ((size_t)1 << 20)

static void *capped_alloc(void *data, size_t size)
{
  (void)data;
  return size <= PB_BLOCK_MAX ? malloc(size ? size : 1) : NULL;
}

static void capped_free(void *data, void *p)
{
  (void)data;
  free(p);
}

static ProtobufCAllocator capped = {capped_alloc, capped_free, NULL};

int ctkn_setting_event_decode(const void *buf, size_t len,
                              struct ctkn_setting_event *ev,
                              struct ctkn_err *err)
{
  Ctkn__V1__SettingEvent *m;
  int rc = CTKN_OK;

  memset(ev, 0, sizeof(*ev));
  m = ctkn__v1__setting_event__unpack(&capped, len,
                                      buf == NULL ? (void *)"" : buf);
  if (m == NULL)
    return ctkn__err(err, CTKN_EDECODE,
                     "not a ctkn.v1.SettingEvent protobuf (%zu bytes)", len);
  if ((rc = copy_str(ev->event_id, sizeof(ev->event_id), m->event_id,
                     "event_id", true, err)) != CTKN_OK)
    goto out;
  if (m->event_type == NULL ||
      (ev->type = ctkn_setting_type_parse(m->event_type)) == 0) {
    rc = ctkn__err(err, CTKN_EDECODE, "event_type: unknown \"%.64s\"",
                   m->event_type ? m->event_type : "");
    goto out;
  }
  if (!m->has_occurred_at || !m->has_version || m->data == NULL) {
    rc = ctkn__err(err, CTKN_EDECODE, "%s: missing",
                   !m->has_occurred_at ? "occurred_at"
                   : !m->has_version   ? "version"
                                       : "data");
    goto out;
  }
  ev->occurred_at = m->occurred_at;
  ev->version = m->version;
  if ((rc = copy_dest(m->data, &ev->data, err)) != CTKN_OK)
    goto out;
  ev->data.version = ev->version;
  ev->data.deleted = ev->type == CTKN_SETTING_DELETED;
  if (m->n_start_offsets > CTKN_SETTING_START_MAX) {
    rc = ctkn__err(err, CTKN_EDECODE, "start_offsets: %zu, at most %d",
                   m->n_start_offsets, CTKN_SETTING_START_MAX);
    goto out;
  }
  ev->nstart = (int32_t)m->n_start_offsets;
  for (size_t i = 0; i < m->n_start_offsets; i++)
    ev->start[i] = m->start_offsets[i];
out:
  ctkn__v1__setting_event__free_unpacked(m, &capped);
  return rc;
}

/* ---- msgpack ------------------------------------------------------------- */

static int pack_str(msgpack_packer *pk, const char *s)
{
  size_t n = strlen(s);
  return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

int ctkn_destination_encode(const struct ctkn_destination *d, uint8_t **out,
                            size_t *len, struct ctkn_err *err)
{
  msgpack_sbuffer sb;
  msgpack_packer pk;
  int rc;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  rc = msgpack_pack_array(&pk, DEST_FIELDS) |
       msgpack_pack_uint8(&pk, DEST_LAYOUT) | pack_str(&pk, d->id) |
       (d->has_description ? pack_str(&pk, d->description)
                           : msgpack_pack_nil(&pk)) |
       pack_str(&pk, d->url) |
       (d->active ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) |
       msgpack_pack_unsigned_int(&pk, d->events) |
       msgpack_pack_bin(&pk, sizeof(d->sealed)) |
       msgpack_pack_bin_body(&pk, d->sealed, sizeof(d->sealed)) |
       msgpack_pack_int64(&pk, d->created_at) |
       msgpack_pack_int64(&pk, d->updated_at) |
       msgpack_pack_uint64(&pk, d->version) |
       (d->deleted ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) |
       msgpack_pack_uint8(&pk, (uint8_t)d->traffic);
  if (rc != 0 || sb.data == NULL) {
    msgpack_sbuffer_destroy(&sb);
    return ctkn__err(err, CTKN_ENOMEM, "encoding a destination");
  }
  *out = (uint8_t *)sb.data;
  *len = sb.size;
  return CTKN_OK;
}

static const char *element(uint32_t i)
{
  (void)i;
  return "element";
}

/* msgpack_unpack_next() of a flat array whose framing was checked first,
 * so that a bogus count cannot make msgpack-c allocate from it. */
static bool unpack_flat(msgpack_unpacked *u, const void *buf, size_t len)
{
  size_t off = 0;

  return buf != NULL && ctkn__check_flat_array(buf, len, element, NULL) == 0 &&
         msgpack_unpack_next(u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
         off == len;
}

static bool obj_str(const msgpack_object *o, char *dst, size_t dstsz)
{
  if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= dstsz)
    return false;
  if (o->via.str.size == 0) { /* msgpack-c gives no pointer for "" */
    dst[0] = '\0';
    return true;
  }
  if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
    return false;
  memcpy(dst, o->via.str.ptr, o->via.str.size);
  dst[o->via.str.size] = '\0';
  return true;
}

static bool obj_int(const msgpack_object *o, int64_t *v)
{
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
      o->via.u64 <= (uint64_t)INT64_MAX)
    *v = (int64_t)o->via.u64;
  else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
    *v = o->via.i64;
  else
    return false;
  return true;
}

/* One condition per element of the layout, in order (hence a CCN above
 * 15): the layout reads as the list it checks. */
int ctkn_destination_decode(const void *buf, size_t len,
                            struct ctkn_destination *d, struct ctkn_err *err)
{
  msgpack_unpacked u;
  int rc = CTKN_EDECODE;

  memset(d, 0, sizeof(*d));
  msgpack_unpacked_init(&u);
  if (!unpack_flat(&u, buf, len) || u.data.type != MSGPACK_OBJECT_ARRAY ||
      u.data.via.array.size < DEST_FIELDS_V1)
    goto out;
  const msgpack_object *a = u.data.via.array.ptr;
  uint32_t nfields = u.data.via.array.size;
  int64_t created, updated;
  if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      !((a[0].via.u64 == 1 && nfields == DEST_FIELDS_V1) ||
        (a[0].via.u64 == DEST_LAYOUT && nfields == DEST_FIELDS &&
         a[11].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
         a[11].via.u64 <= CTKN_TRAFFIC_ALL)) ||
      !obj_str(&a[1], d->id, sizeof(d->id)) ||
      !(a[2].type == MSGPACK_OBJECT_NIL ||
        obj_str(&a[2], d->description, sizeof(d->description))) ||
      !obj_str(&a[3], d->url, sizeof(d->url)) ||
      a[4].type != MSGPACK_OBJECT_BOOLEAN ||
      a[5].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      a[5].via.u64 & ~(uint64_t)CTKN_DEST_EVENTS_ALL ||
      a[6].type != MSGPACK_OBJECT_BIN ||
      a[6].via.bin.size != sizeof(d->sealed) || !obj_int(&a[7], &created) ||
      !obj_int(&a[8], &updated) ||
      a[9].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      a[10].type != MSGPACK_OBJECT_BOOLEAN)
    goto out;
  d->has_description = a[2].type != MSGPACK_OBJECT_NIL;
  d->active = a[4].via.boolean;
  d->events = (unsigned)a[5].via.u64;
  memcpy(d->sealed, a[6].via.bin.ptr, sizeof(d->sealed));
  d->created_at = created;
  d->updated_at = updated;
  d->version = a[9].via.u64;
  d->deleted = a[10].via.boolean;
  d->traffic = nfields == DEST_FIELDS ? (ctkn_traffic)a[11].via.u64
                                      : CTKN_TRAFFIC_PLATFORM;
  rc = CTKN_OK;
out:
  msgpack_unpacked_destroy(&u);
  if (rc != CTKN_OK) {
    memset(d, 0, sizeof(*d));
    return ctkn__err(err, CTKN_EDECODE,
                     "not a stored destination (layout %d, %zu bytes)",
                     DEST_LAYOUT, len);
  }
  return CTKN_OK;
}

/* ---- msgpack: notifications -------------------------------------------- */

#define NTF_LAYOUT    1
#define NTF_FIELDS    20
#define ATT_LAYOUT    2
#define ATT_FIELDS    8
#define ATT_FIELDS_V1 6 /* layout 1: no content type, no body */

static int pack_str_nil(msgpack_packer *pk, const char *s)
{
  return s[0] ? pack_str(pk, s) : msgpack_pack_nil(pk);
}

static int finish(msgpack_sbuffer *sb, int rc, uint8_t **out, size_t *len,
                  struct ctkn_err *err, const char *what)
{
  if (rc != 0 || sb->data == NULL) {
    msgpack_sbuffer_destroy(sb);
    return ctkn__err(err, CTKN_ENOMEM, "encoding %s", what);
  }
  *out = (uint8_t *)sb->data;
  *len = sb->size;
  return CTKN_OK;
}

int ctkn_notification_encode(const struct ctkn_notification *n, uint8_t **out,
                             size_t *len, struct ctkn_err *err)
{
  msgpack_sbuffer sb;
  msgpack_packer pk;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  int rc = msgpack_pack_array(&pk, NTF_FIELDS) |
           msgpack_pack_uint8(&pk, NTF_LAYOUT) | pack_str(&pk, n->id) |
           pack_str(&pk, n->dest) | pack_str(&pk, n->event_id) |
           msgpack_pack_int(&pk, (int)n->type) | pack_str(&pk, n->token_id) |
           msgpack_pack_uint64(&pk, n->version) |
           msgpack_pack_int32(&pk, n->partition) |
           msgpack_pack_int64(&pk, n->offset) |
           msgpack_pack_int64(&pk, n->occurred_at) |
           msgpack_pack_int(&pk, (int)n->status) |
           (n->replay ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) |
           pack_str_nil(&pk, n->replay_of) |
           msgpack_pack_uint32(&pk, n->attempts) |
           msgpack_pack_int64(&pk, n->first_attempt_at) |
           msgpack_pack_int64(&pk, n->last_attempt_at) |
           msgpack_pack_int64(&pk, n->delivered_at) |
           msgpack_pack_int64(&pk, n->retry_at) |
           msgpack_pack_int(&pk, n->last_status) |
           msgpack_pack_nil(&pk); /* reserved */
  return finish(&sb, rc, out, len, err, "a notification");
}

static bool obj_small(const msgpack_object *o, int64_t lo, int64_t hi,
                      int64_t *v)
{
  return obj_int(o, v) && *v >= lo && *v <= hi;
}

/* As ctkn_destination_decode(): one condition per element, in order (so
 * above CCN 15), which reads as the layout it checks. */
int ctkn_notification_decode(const void *buf, size_t len,
                             struct ctkn_notification *n, struct ctkn_err *err)
{
  msgpack_unpacked u;
  int64_t type, part, status, attempts, code;
  bool ok = false;

  memset(n, 0, sizeof(*n));
  msgpack_unpacked_init(&u);
  if (unpack_flat(&u, buf, len) && u.data.type == MSGPACK_OBJECT_ARRAY &&
      u.data.via.array.size == NTF_FIELDS) {
    const msgpack_object *a = u.data.via.array.ptr;
    ok = a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
         a[0].via.u64 == NTF_LAYOUT && obj_str(&a[1], n->id, sizeof(n->id)) &&
         obj_str(&a[2], n->dest, sizeof(n->dest)) &&
         obj_str(&a[3], n->event_id, sizeof(n->event_id)) &&
         obj_small(&a[4], CTKN_EVENT_CREATED, CTKN_DEST_AKEY_EXPIRED, &type) &&
         ctkn_dest_event_str((int)type) != NULL &&
         obj_str(&a[5], n->token_id, sizeof(n->token_id)) &&
         a[6].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
         obj_small(&a[7], 0, INT32_MAX, &part) && obj_int(&a[8], &n->offset) &&
         obj_int(&a[9], &n->occurred_at) &&
         obj_small(&a[10], CTKN_NTF_NOT_ATTEMPTED, CTKN_NTF_FAILED, &status) &&
         a[11].type == MSGPACK_OBJECT_BOOLEAN &&
         (a[12].type == MSGPACK_OBJECT_NIL ||
          obj_str(&a[12], n->replay_of, sizeof(n->replay_of))) &&
         obj_small(&a[13], 0, UINT32_MAX, &attempts) &&
         obj_int(&a[14], &n->first_attempt_at) &&
         obj_int(&a[15], &n->last_attempt_at) &&
         obj_int(&a[16], &n->delivered_at) && obj_int(&a[17], &n->retry_at) &&
         obj_small(&a[18], 0, 999, &code);
    if (ok) {
      n->type = (int)type;
      n->version = a[6].via.u64;
      n->partition = (int32_t)part;
      n->status = (ctkn_ntf_status)status;
      n->replay = a[11].via.boolean;
      n->attempts = (uint32_t)attempts;
      n->last_status = (int)code;
    }
  }
  msgpack_unpacked_destroy(&u);
  if (!ok) {
    memset(n, 0, sizeof(*n));
    return ctkn__err(err, CTKN_EDECODE,
                     "not a stored notification (layout %d, %zu bytes)",
                     NTF_LAYOUT, len);
  }
  return CTKN_OK;
}

int ctkn_attempt_encode(const struct ctkn_ntf_attempt *a, uint8_t **out,
                        size_t *len, struct ctkn_err *err)
{
  msgpack_sbuffer sb;
  msgpack_packer pk;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  int rc =
      msgpack_pack_array(&pk, ATT_FIELDS) |
      msgpack_pack_uint8(&pk, ATT_LAYOUT) | msgpack_pack_uint32(&pk, a->n) |
      msgpack_pack_int64(&pk, a->at) | msgpack_pack_int(&pk, a->status) |
      msgpack_pack_int64(&pk, a->latency_us) | pack_str_nil(&pk, a->error) |
      pack_str_nil(&pk, a->content_type) | msgpack_pack_bin(&pk, a->body_len) |
      msgpack_pack_bin_body(&pk, a->body, a->body_len);
  return finish(&sb, rc, out, len, err, "an attempt");
}

/* Layout 2's content type and body prefix, o[0] and o[1]. */
static bool att_response(const msgpack_object *o, struct ctkn_ntf_attempt *a)
{
  if (!(o[0].type == MSGPACK_OBJECT_NIL ||
        obj_str(&o[0], a->content_type, sizeof(a->content_type))) ||
      o[1].type != MSGPACK_OBJECT_BIN || o[1].via.bin.size > CTKN_NTF_BODY_MAX)
    return false;
  if (o[1].via.bin.size > 0)
    memcpy(a->body, o[1].via.bin.ptr, o[1].via.bin.size);
  a->body_len = o[1].via.bin.size;
  a->body[a->body_len] = '\0';
  return true;
}

int ctkn_attempt_decode(const void *buf, size_t len, struct ctkn_ntf_attempt *a,
                        struct ctkn_err *err)
{
  msgpack_unpacked u;
  int64_t n, code;
  bool ok = false;

  memset(a, 0, sizeof(*a));
  msgpack_unpacked_init(&u);
  if (unpack_flat(&u, buf, len) && u.data.type == MSGPACK_OBJECT_ARRAY &&
      u.data.via.array.size >= ATT_FIELDS_V1) {
    const msgpack_object *o = u.data.via.array.ptr;
    uint32_t size = u.data.via.array.size;
    ok = o[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
         (o[0].via.u64 == 1
              ? size == ATT_FIELDS_V1
              : o[0].via.u64 == ATT_LAYOUT && size == ATT_FIELDS) &&
         obj_small(&o[1], 1, UINT32_MAX, &n) && obj_int(&o[2], &a->at) &&
         obj_small(&o[3], 0, 999, &code) && obj_int(&o[4], &a->latency_us) &&
         (o[5].type == MSGPACK_OBJECT_NIL ||
          obj_str(&o[5], a->error, sizeof(a->error))) &&
         (size == ATT_FIELDS_V1 || att_response(&o[6], a));
    if (ok) {
      a->n = (uint32_t)n;
      a->status = (int)code;
    }
  }
  msgpack_unpacked_destroy(&u);
  if (!ok) {
    memset(a, 0, sizeof(*a));
    return ctkn__err(err, CTKN_EDECODE, "not a stored attempt (%zu bytes)",
                     len);
  }
  return CTKN_OK;
}
