/*
 * handover.c - struct ctkn_event's in-process form (handover.h).
 *
 * Layout: struct fixed (every field but the three long strings), then the
 * name, the description and the idempotency key, each without its NUL,
 * their lengths in the fixed part. Copied with memcpy at both ends, so no
 * alignment is assumed.
 */
#include <stdint.h>
#include <string.h>

#include "codec/handover.h"
#include "internal.h"

/* Adding a field to either struct changes its size: teach pack and unpack
 * the field, then update the size here (the sizes of LP64 targets). */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct ctkn_token) == 2696,
               "struct ctkn_token changed: update codec/handover.c");
_Static_assert(sizeof(struct ctkn_event) == 3080,
               "struct ctkn_event changed: update codec/handover.c");
#endif

struct fixed {
  char event_id[CTKN_EVT_ID_LEN + 1];
  char notification_id[CTKN_EVT_ID_LEN + 1];
  ctkn_event_type type;
  int64_t occurred_at;
  uint64_t version;
  bool has_request_hash;
  uint8_t request_hash[CTKN_HASH_LEN];
  /* data, but for its name and description */
  char id[CTKN_ID_BUF];
  char token[CTKN_TOKEN_BUF];
  bool has_description;
  ctkn_status status;
  int64_t created_at, updated_at, revoked_at;
  /* the lengths of the strings that follow */
  uint32_t name_len, desc_len, idem_len;
};

size_t ctkn__event_packed_size(const struct ctkn_event *ev)
{
  return sizeof(struct fixed) + strlen(ev->data.name) +
         strlen(ev->data.description) + strlen(ev->idempotency_key);
}

void ctkn__event_pack(const struct ctkn_event *ev, uint8_t *dst)
{
  struct fixed f;

  memset(&f, 0, sizeof(f));
  memcpy(f.event_id, ev->event_id, sizeof(f.event_id));
  memcpy(f.notification_id, ev->notification_id, sizeof(f.notification_id));
  f.type = ev->type;
  f.occurred_at = ev->occurred_at;
  f.version = ev->version;
  f.has_request_hash = ev->has_request_hash;
  memcpy(f.request_hash, ev->request_hash, sizeof(f.request_hash));
  memcpy(f.id, ev->data.id, sizeof(f.id));
  memcpy(f.token, ev->data.token, sizeof(f.token));
  f.has_description = ev->data.has_description;
  f.status = ev->data.status;
  f.created_at = ev->data.created_at;
  f.updated_at = ev->data.updated_at;
  f.revoked_at = ev->data.revoked_at;
  f.name_len = (uint32_t)strlen(ev->data.name);
  f.desc_len = (uint32_t)strlen(ev->data.description);
  f.idem_len = (uint32_t)strlen(ev->idempotency_key);
  memcpy(dst, &f, sizeof(f));
  dst += sizeof(f);
  memcpy(dst, ev->data.name, f.name_len);
  dst += f.name_len;
  memcpy(dst, ev->data.description, f.desc_len);
  dst += f.desc_len;
  memcpy(dst, ev->idempotency_key, f.idem_len);
}

/* n bytes of src as a C string in dst. */
static void take(char *dst, const uint8_t *src, uint32_t n)
{
  memcpy(dst, src, n);
  dst[n] = '\0';
}

void ctkn__event_unpack(const uint8_t *src, struct ctkn_event *ev)
{
  struct fixed f;

  memcpy(&f, src, sizeof(f));
  src += sizeof(f);
  memcpy(ev->event_id, f.event_id, sizeof(ev->event_id));
  memcpy(ev->notification_id, f.notification_id, sizeof(ev->notification_id));
  ev->type = f.type;
  ev->occurred_at = f.occurred_at;
  ev->version = f.version;
  ev->has_request_hash = f.has_request_hash;
  memcpy(ev->request_hash, f.request_hash, sizeof(ev->request_hash));
  memcpy(ev->data.id, f.id, sizeof(ev->data.id));
  memcpy(ev->data.token, f.token, sizeof(ev->data.token));
  ev->data.has_description = f.has_description;
  ev->data.status = f.status;
  ev->data.created_at = f.created_at;
  ev->data.updated_at = f.updated_at;
  ev->data.revoked_at = f.revoked_at;
  take(ev->data.name, src, f.name_len);
  src += f.name_len;
  take(ev->data.description, src, f.desc_len);
  src += f.desc_len;
  take(ev->idempotency_key, src, f.idem_len);
}
