/*
 * akey.c - API keys on the log (akey.h): ApiKeyEvent on the settings
 * topic and ApiKey in the api_keys table, both protobuf
 * (proto/ctkn_settings.proto).
 *
 * The stored value is a layout byte (1, so the table can change encoding
 * later), the ApiKey message, then the key's version as 8 big-endian
 * bytes (on the wire the version is the event's). Decoding is strict:
 * fixed-size fields that do not fit, unknown permission or status names, hashes
 * that are not 32 bytes are errors.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/akey.h"
#include "ctkn/codec.h"
#include "ctkn_settings.pb-c.h"
#include "internal.h"

#define STORE_LAYOUT 1
#define PB_BLOCK_MAX ((size_t)1 << 16) /* no key needs more per block */

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

/* k as an ApiKey message; names[] receives the permission names (the
 * message borrows every string of k). */
static void to_pb(const struct ctkn_akey *k, Ctkn__V1__ApiKey *d,
                  const char **names, bool whole)
{
  d->id = (char *)k->id;
  if (k->last_used_at != 0) {
    d->has_last_used_at = true;
    d->last_used_at = k->last_used_at;
  }
  if (!whole)
    return;
  d->name = (char *)k->name;
  d->description = k->has_description ? (char *)k->description : NULL;
  d->status = (char *)ctkn_akey_status_str(k->status);
  d->n_permissions = ctkn_perms_names(k->perms, names, CTKN_PERMS_MAX);
  d->permissions = (char **)names;
  d->has_expires_at = k->expires_at != 0;
  d->expires_at = k->expires_at;
  d->has_created_at = d->has_updated_at = true;
  d->created_at = k->created_at;
  d->updated_at = k->updated_at;
  d->has_secret_sha256 = true;
  d->secret_sha256.len = sizeof(k->sha256);
  d->secret_sha256.data = (uint8_t *)k->sha256;
  d->has_legacy = k->legacy;
  d->legacy = k->legacy;
  d->has_expiring_for = k->expiring_for != 0;
  d->expiring_for = k->expiring_for;
  if (k->has_previous) {
    d->has_previous_sha256 = d->has_previous_until = true;
    d->previous_sha256.len = sizeof(k->previous_sha256);
    d->previous_sha256.data = (uint8_t *)k->previous_sha256;
    d->previous_until = k->previous_until;
  }
}

static int pack(const ProtobufCMessage *m, size_t lead, size_t trail,
                uint8_t **out, size_t *len, struct ctkn_err *err)
{
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(lead + n + trail);

  if (buf == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "encoding an API key");
  protobuf_c_message_pack(m, buf + lead);
  *out = buf;
  *len = lead + n + trail;
  return CTKN_OK;
}

int ctkn_akey_event_encode(const struct ctkn_akey_event *ev, uint8_t **out,
                           size_t *len, struct ctkn_err *err)
{
  Ctkn__V1__ApiKeyEvent m = CTKN__V1__API_KEY_EVENT__INIT;
  Ctkn__V1__ApiKey d = CTKN__V1__API_KEY__INIT;
  const char *names[CTKN_PERMS_MAX];

  *out = NULL;
  *len = 0;
  if (ctkn_akey_type_str(ev->type) == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "event_type", "unknown type %d",
                           (int)ev->type);
  to_pb(&ev->data, &d, names, ev->type != CTKN_AKEY_USED);
  m.event_id = (char *)ev->event_id;
  m.event_type = (char *)ctkn_akey_type_str(ev->type);
  m.has_occurred_at = true;
  m.occurred_at = ev->occurred_at;
  m.has_version = ev->type != CTKN_AKEY_USED;
  m.version = ev->version;
  m.data = &d;
  return pack(&m.base, 0, 0, out, len, err);
}

static int copy_str(char *dst, size_t dstsz, const char *src, const char *field,
                    struct ctkn_err *err)
{
  dst[0] = '\0';
  if (src == NULL)
    return ctkn__err(err, CTKN_EDECODE, "%s: missing", field);
  if (ctkn__strlcpy(dst, src, dstsz) >= dstsz)
    return ctkn__err(err, CTKN_EDECODE, "%s: longer than %zu bytes", field,
                     dstsz - 1);
  return CTKN_OK;
}

static int copy_hash(uint8_t *dst, protobuf_c_boolean has,
                     ProtobufCBinaryData b, const char *field,
                     struct ctkn_err *err)
{
  if (!has || b.len != 32)
    return ctkn__err(err, CTKN_EDECODE, "%s: want 32 bytes", field);
  memcpy(dst, b.data, 32);
  return CTKN_OK;
}

static int copy_perms(const Ctkn__V1__ApiKey *d, struct ctkn_akey *k,
                      struct ctkn_err *err)
{
  for (size_t i = 0; i < d->n_permissions; i++) {
    const char *s = d->permissions[i];
    unsigned b = ctkn_perm_bits(s, strlen(s));
    if (b == 0)
      return ctkn__err(err, CTKN_EDECODE, "data.permissions: unknown \"%.64s\"",
                       s);
    k->perms |= b;
  }
  return CTKN_OK;
}

/* The whole entity (not a "used" record's two fields). */
static int from_pb(const Ctkn__V1__ApiKey *d, struct ctkn_akey *k,
                   struct ctkn_err *err)
{
  int rc;

  if ((rc = copy_str(k->name, sizeof(k->name), d->name, "data.name", err)))
    return rc;
  if (d->description != NULL &&
      (rc = copy_str(k->description, sizeof(k->description), d->description,
                     "data.description", err)))
    return rc;
  k->has_description = d->description != NULL;
  if (d->status == NULL || ctkn_akey_status_parse(d->status, &k->status) != 0)
    return ctkn__err(err, CTKN_EDECODE, "data.status: unknown \"%.32s\"",
                     d->status ? d->status : "");
  if ((rc = copy_perms(d, k, err)) != CTKN_OK)
    return rc;
  if (!d->has_created_at || !d->has_updated_at)
    return ctkn__err(err, CTKN_EDECODE, "data.created_at/updated_at: missing");
  k->created_at = d->created_at;
  k->updated_at = d->updated_at;
  k->expires_at = d->has_expires_at ? d->expires_at : 0;
  k->expiring_for = d->has_expiring_for ? d->expiring_for : 0;
  if ((rc = copy_hash(k->sha256, d->has_secret_sha256, d->secret_sha256,
                      "data.secret_sha256", err)))
    return rc;
  k->legacy = d->has_legacy && d->legacy;
  if (d->has_previous_sha256 != d->has_previous_until)
    return ctkn__err(err, CTKN_EDECODE,
                     "data.previous_sha256 and previous_until go together");
  if (d->has_previous_sha256) {
    if ((rc = copy_hash(k->previous_sha256, true, d->previous_sha256,
                        "data.previous_sha256", err)))
      return rc;
    k->has_previous = true;
    k->previous_until = d->previous_until;
  }
  return CTKN_OK;
}

static int from_pb_id(const Ctkn__V1__ApiKey *d, struct ctkn_akey *k,
                      bool whole, struct ctkn_err *err)
{
  int rc;

  if ((rc = copy_str(k->id, sizeof(k->id), d->id, "data.id", err)))
    return rc;
  k->last_used_at = d->has_last_used_at ? d->last_used_at : 0;
  return whole ? from_pb(d, k, err) : CTKN_OK;
}

int ctkn_akey_event_decode(const void *buf, size_t len,
                           struct ctkn_akey_event *ev, struct ctkn_err *err)
{
  Ctkn__V1__ApiKeyEvent *m;
  int rc;

  memset(ev, 0, sizeof(*ev));
  m = ctkn__v1__api_key_event__unpack(&capped, len,
                                      buf == NULL ? (const uint8_t *)"" : buf);
  if (m == NULL)
    return ctkn__err(err, CTKN_EDECODE,
                     "not a ctkn.v1.ApiKeyEvent protobuf (%zu bytes)", len);
  if ((rc = copy_str(ev->event_id, sizeof(ev->event_id), m->event_id,
                     "event_id", err)) != CTKN_OK)
    goto out;
  if ((ev->type = ctkn_akey_type_parse(m->event_type)) == 0) {
    rc = ctkn__err(err, CTKN_EDECODE, "event_type: unknown \"%.64s\"",
                   m->event_type ? m->event_type : "");
    goto out;
  }
  if (!m->has_occurred_at || m->data == NULL ||
      (ev->type != CTKN_AKEY_USED) != m->has_version) {
    rc = ctkn__err(err, CTKN_EDECODE,
                   "occurred_at and data are required, and version on all "
                   "but used records");
    goto out;
  }
  ev->occurred_at = m->occurred_at;
  ev->version = m->has_version ? m->version : 0;
  rc = from_pb_id(m->data, &ev->data, ev->type != CTKN_AKEY_USED, err);
  ev->data.version = ev->version;
out:
  ctkn__v1__api_key_event__free_unpacked(m, &capped);
  if (rc != CTKN_OK)
    memset(ev, 0, sizeof(*ev));
  return rc;
}

int ctkn_akey_encode(const struct ctkn_akey *k, uint8_t **out, size_t *len,
                     struct ctkn_err *err)
{
  Ctkn__V1__ApiKey d = CTKN__V1__API_KEY__INIT;
  const char *names[CTKN_PERMS_MAX];
  int rc;

  *out = NULL;
  *len = 0;
  to_pb(k, &d, names, true);
  if ((rc = pack(&d.base, 1, 8, out, len, err)) != CTKN_OK)
    return rc;
  (*out)[0] = STORE_LAYOUT;
  ctkn__put_be64(*out + *len - 8, k->version);
  return CTKN_OK;
}

int ctkn_akey_decode(const void *buf, size_t len, struct ctkn_akey *k,
                     struct ctkn_err *err)
{
  const uint8_t *b = buf;
  Ctkn__V1__ApiKey *d;
  int rc;

  memset(k, 0, sizeof(*k));
  if (b == NULL || len < 9 || b[0] != STORE_LAYOUT)
    return ctkn__err(err, CTKN_EDECODE, "not a stored API key (%zu bytes)",
                     len);
  if ((d = ctkn__v1__api_key__unpack(&capped, len - 9, b + 1)) == NULL)
    return ctkn__err(err, CTKN_EDECODE, "stored API key: not an ApiKey");
  rc = from_pb_id(d, k, true, err);
  ctkn__v1__api_key__free_unpacked(d, &capped);
  if (rc != CTKN_OK) {
    memset(k, 0, sizeof(*k));
    return rc;
  }
  k->version = ctkn__get_be(b + len - 8, 8);
  return CTKN_OK;
}
