/*
 * delivery.c - delivery records: protobuf on the notifications topic
 * (proto/ctkn_delivery.proto), one fact about one notification each.
 *
 * Decoding is strict: every field a type needs is present, strings fit
 * their buffers and hold no NUL, and the result keeps
 * ctkn_delivery_valid()'s rules, so the projection quarantines what does
 * not decode without looking further.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/notification.h"
#include "ctkn_delivery.pb-c.h"
#include "internal.h"

static char *opt_str(const char *s)
{
  return s[0] != '\0' ? (char *)s : NULL;
}

int ctkn_delivery_encode(const struct ctkn_delivery *d, uint8_t **out,
                         size_t *len, struct ctkn_err *err)
{
  Ctkn__V1__Delivery m = CTKN__V1__DELIVERY__INIT;
  Ctkn__V1__Attempt a = CTKN__V1__ATTEMPT__INIT;
  const struct ctkn_notification *n = &d->n;

  *out = NULL;
  *len = 0;
  m.notification_id = (char *)n->id;
  m.destination_id = (char *)n->dest;
  m.event_id = (char *)n->event_id;
  m.event_type = (char *)ctkn_dest_event_str(n->type);
  m.token_id = (char *)n->token_id;
  m.has_version = m.has_partition = m.has_offset = true;
  m.version = n->version;
  m.partition = n->partition;
  m.offset = n->offset;
  m.has_occurred_at = m.has_at = true;
  m.occurred_at = n->occurred_at;
  m.at = d->at;
  m.replay_of = opt_str(n->replay_of);
  m.has_retry_at = d->retry_at != 0;
  m.retry_at = d->retry_at;
  if (d->type == CTKN_DLV_ATTEMPTED) {
    a.has_number = a.has_attempted_at = a.has_response_code = true;
    a.number = d->a.n;
    a.attempted_at = d->a.at;
    a.response_code = d->a.status;
    a.content_type = opt_str(d->a.content_type);
    a.has_response_body = d->a.body_len > 0;
    a.response_body.len = d->a.body_len;
    a.response_body.data = (uint8_t *)d->a.body;
    a.has_latency_us = true;
    a.latency_us = d->a.latency_us;
    a.error = opt_str(d->a.error);
    m.attempt = &a;
  }
  *len = ctkn__v1__delivery__get_packed_size(&m);
  if ((*out = malloc(*len ? *len : 1)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "encoding a delivery record");
  ctkn__v1__delivery__pack(&m, *out);
  return CTKN_OK;
}

/* A string field into dst: missing is "" unless required. */
static bool take(char *dst, size_t dstsz, const char *src, bool required)
{
  if (src == NULL) {
    dst[0] = '\0';
    return !required;
  }
  return ctkn__strlcpy(dst, src, dstsz) < dstsz;
}

static bool copy_attempt(const Ctkn__V1__Attempt *a, struct ctkn_ntf_attempt *o)
{
  if (!a->has_number || a->number < 1 || !a->has_attempted_at ||
      !a->has_response_code || !a->has_latency_us ||
      !take(o->content_type, sizeof(o->content_type), a->content_type, false) ||
      !take(o->error, sizeof(o->error), a->error, false) ||
      (a->has_response_body && a->response_body.len > CTKN_NTF_BODY_MAX))
    return false;
  o->n = a->number;
  o->at = a->attempted_at;
  o->status = a->response_code;
  o->latency_us = a->latency_us;
  if (a->has_response_body && a->response_body.len > 0) {
    memcpy(o->body, a->response_body.data, a->response_body.len);
    o->body_len = a->response_body.len;
  }
  o->body[o->body_len] = '\0';
  return true;
}

static bool copy_delivery(const Ctkn__V1__Delivery *m, struct ctkn_delivery *d)
{
  struct ctkn_notification *n = &d->n;

  if (!take(n->id, sizeof(n->id), m->notification_id, true) ||
      !take(n->dest, sizeof(n->dest), m->destination_id, true) ||
      !take(n->event_id, sizeof(n->event_id), m->event_id, true) ||
      !take(n->token_id, sizeof(n->token_id), m->token_id, true) ||
      !take(n->replay_of, sizeof(n->replay_of), m->replay_of, false) ||
      m->event_type == NULL ||
      (n->type = ctkn_dest_event_parse(m->event_type)) == 0 ||
      !m->has_version || !m->has_partition || !m->has_offset ||
      !m->has_occurred_at || !m->has_at)
    return false;
  n->version = m->version;
  n->partition = m->partition;
  n->offset = m->offset;
  n->occurred_at = m->occurred_at;
  n->replay = n->replay_of[0] != '\0';
  d->at = m->at;
  d->retry_at = m->has_retry_at ? m->retry_at : 0;
  return m->attempt == NULL || copy_attempt(m->attempt, &d->a);
}

/* protobuf-c sizes blocks from counts the input claims: cap them (as the
 * settings codec does), so a few bytes cannot ask for gigabytes. */
#define PB_BLOCK_MAX ((size_t)1 << 16)

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

int ctkn_delivery_decode(const char *event_type, const void *buf, size_t len,
                         struct ctkn_delivery *d, struct ctkn_err *err)
{
  Ctkn__V1__Delivery *m;
  char why[160] = "";
  bool ok;

  memset(d, 0, sizeof(*d));
  if ((d->type = ctkn_dlv_type_parse(event_type)) == 0)
    return ctkn__err(err, CTKN_EDECODE,
                     "ctkn-event-type: not a delivery record type \"%.64s\"",
                     event_type != NULL ? event_type : "");
  m = ctkn__v1__delivery__unpack(&capped, len, buf == NULL ? (void *)"" : buf);
  if (m == NULL)
    return ctkn__err(err, CTKN_EDECODE,
                     "not a ctkn.v1.Delivery protobuf (%zu bytes)", len);
  ok = copy_delivery(m, d);
  ctkn__v1__delivery__free_unpacked(m, &capped);
  if (!ok)
    snprintf(why, sizeof(why), "a field is missing, too long or unknown");
  if (ok && !ctkn_delivery_valid(d, why, sizeof(why)))
    ok = false;
  if (!ok) {
    ctkn_dlv_type t = d->type;
    memset(d, 0, sizeof(*d));
    d->type = t;
    return ctkn__err(err, CTKN_EDECODE, "%s record: %s", ctkn_dlv_type_str(t),
                     why);
  }
  return CTKN_OK;
}
