/*
 * json_akey.c - API keys on the log in Paddle's shape (akey.h): the
 * entity, one page of them, and the answer that carries a new secret.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_int.h"
#include "ctkn/akey.h"
#include "ctkn/codec.h"
#include "internal.h"

static json_t *time_or_null(int64_t us)
{
  return us > 0 ? ctkn__json_time(us) : json_null();
}

/* {"id", "name", "description", "status", "permissions", "expires_at",
 * "last_used_at", "created_at", "updated_at"} (+ "key" when key). */
static json_t *akey_obj(const struct ctkn_akey *k, int64_t now, const char *key)
{
  const char *names[CTKN_PERMS_MAX];
  size_t n = ctkn_perms_names(k->perms, names, CTKN_PERMS_MAX);
  json_t *o = json_object(), *perms = json_array();
  int rc = o == NULL || perms == NULL;

  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = json_array_append_new(perms, json_string(names[i]));
  if (rc != 0) {
    json_decref(o);
    json_decref(perms);
    return NULL;
  }
  rc |= ctkn__json_set(o, "id", ctkn__json_str(k->id, sizeof(k->id)));
  rc |= ctkn__json_set(o, "name", ctkn__json_str(k->name, sizeof(k->name)));
  rc |=
      ctkn__json_set(o, "description",
                     k->has_description ? ctkn__json_str(k->description,
                                                         sizeof(k->description))
                                        : json_null());
  rc |= ctkn__json_set(
      o, "status",
      ctkn__json_name(ctkn_akey_status_str(ctkn_akey_status_at(k, now))));
  rc |= ctkn__json_set(o, "permissions", perms);
  rc |= ctkn__json_set(o, "expires_at", time_or_null(k->expires_at));
  rc |= ctkn__json_set(o, "last_used_at", time_or_null(k->last_used_at));
  rc |= ctkn__json_set(o, "created_at", ctkn__json_time(k->created_at));
  rc |= ctkn__json_set(o, "updated_at", ctkn__json_time(k->updated_at));
  if (key != NULL && key[0] != '\0')
    rc |= ctkn__json_set(o, "key", json_string(key));
  return ctkn__json_checked(o, rc);
}

char *ctkn_json_akey(const struct ctkn_akey *k, int64_t now, const char *key,
                     const char *request_id)
{
  return ctkn__json_doc(akey_obj(k, now, key), true, request_id);
}

char *ctkn_json_akey_event(const struct ctkn_akey_event *ev)
{
  /* The key as it stood when the event occurred, without its secret. */
  return ctkn__json_envelope(ev->event_id, ctkn_akey_type_str(ev->type),
                             ev->occurred_at,
                             akey_obj(&ev->data, ev->occurred_at, NULL));
}

char *ctkn_json_akeys_page(const struct ctkn_akey *k, size_t n, int64_t now,
                           const struct ctkn_pagination *page,
                           const char *request_id)
{
  json_t *a = json_array(), *pg = NULL;
  int rc = a == NULL;

  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = json_array_append_new(a, akey_obj(&k[i], now, NULL));
  if (rc == 0 && page != NULL) {
    rc = (pg = json_object()) == NULL;
    rc |= ctkn__json_set(pg, "per_page", json_integer(page->per_page));
    rc |= ctkn__json_set(pg, "next",
                         page->next ? ctkn__json_str(page->next, SIZE_MAX)
                                    : json_null());
    rc |= ctkn__json_set(pg, "has_more", json_boolean(page->has_more));
    if (page->estimated_total >= 0)
      rc |= ctkn__json_set(pg, "estimated_total",
                           json_integer(page->estimated_total));
  }
  if (rc != 0) {
    json_decref(a);
    json_decref(pg);
    return NULL;
  }
  return ctkn__json_dump(
      ctkn__json_pair("data", a, "meta", ctkn__json_meta(request_id, pg)));
}

/* ---- request bodies -------------------------------------------------------
 */

#define AKEY_CREATE_FIELDS "name, description, permissions, expires_at"
#define AKEY_UPDATE_FIELDS AKEY_CREATE_FIELDS ", status"

static int akey_text(struct ctkn_akey_command *c, const char *key, json_t *v,
                     struct ctkn_err *err)
{
  bool desc = strcmp(key, "description") == 0;

  if (desc && json_is_null(v))
    return ctkn_akey_command_set_description(c, NULL, 0, err);
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, key,
                           desc ? "must be a string or null"
                                : "must be a string");
  return desc ? ctkn_akey_command_set_description(c, json_string_value(v),
                                                  json_string_length(v), err)
              : ctkn_akey_command_set_name(c, json_string_value(v),
                                           json_string_length(v), err);
}

static int akey_perms(struct ctkn_akey_command *c, json_t *v,
                      struct ctkn_err *err)
{
  unsigned bits = 0;
  size_t i;
  json_t *e;

  if (!json_is_array(v) || json_array_size(v) == 0)
    return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                           "must be a non-empty array of " CTKN_PERMS_LIST);
  json_array_foreach(v, i, e)
  {
    unsigned b = json_is_string(e) ? ctkn_perm_bits(json_string_value(e),
                                                    json_string_length(e))
                                   : 0;
    if (b == 0)
      return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                             "item %zu is not one of " CTKN_PERMS_LIST, i);
    for (size_t k = 0; k < i; k++)
      if (json_equal(json_array_get(v, k), e))
        return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                               "\"%s\" is named twice", json_string_value(e));
    bits |= b;
  }
  return ctkn_akey_command_set_perms(c, bits, err);
}

static int akey_expires(struct ctkn_akey_command *c, json_t *v, int64_t now,
                        struct ctkn_err *err)
{
  int64_t at = 0;
  int rc;

  if (!json_is_null(v)) {
    if (!json_is_string(v))
      return ctkn__err_field(err, CTKN_EINVAL, "expires_at",
                             "must be an RFC 3339 date-time or null");
    if ((rc = ctkn_time_parse(json_string_value(v), &at, err)) != CTKN_OK)
      return ctkn__err_field(err, CTKN_EINVAL, "expires_at",
                             "must be an RFC 3339 date-time or null");
  }
  return ctkn_akey_command_set_expires(c, at, now, err);
}

static int akey_status(struct ctkn_akey_command *c, json_t *v,
                       struct ctkn_err *err)
{
  const char *s = json_is_string(v) ? json_string_value(v) : "";

  if (strcmp(s, "revoked") == 0) {
    c->revoke = true;
    return CTKN_OK;
  }
  if (strcmp(s, "active") == 0) /* what it is, or a conflict on apply */
    return CTKN_OK;
  return ctkn__err_field(err, CTKN_EINVAL, "status",
                         "must be revoked (or active, which changes "
                         "nothing)");
}

static int akey_fill(struct ctkn_akey_command *c, json_t *root, bool update,
                     int64_t now, struct ctkn_err *err)
{
  const char *key;
  json_t *v;
  int rc;

  json_object_foreach(root, key, v)
  {
    if (strcmp(key, "name") == 0 || strcmp(key, "description") == 0)
      rc = akey_text(c, key, v, err);
    else if (strcmp(key, "permissions") == 0)
      rc = akey_perms(c, v, err);
    else if (strcmp(key, "expires_at") == 0)
      rc = akey_expires(c, v, now, err);
    else if (update && strcmp(key, "status") == 0)
      rc = akey_status(c, v, err);
    else {
      char field[sizeof(((struct ctkn_err *)0)->field)];
      ctkn__json_field_name(field, sizeof(field), key);
      rc = ctkn__err_field(err, CTKN_EINVAL, field,
                           "unknown field (accepted: %s)",
                           update ? AKEY_UPDATE_FIELDS : AKEY_CREATE_FIELDS);
    }
    if (rc != CTKN_OK)
      return rc;
  }
  return CTKN_OK;
}

int ctkn_json_parse_akey_create(const char *body, size_t len, int64_t now,
                                struct ctkn_akey_command *cmd,
                                struct ctkn_err *err)
{
  json_t *root;
  int rc;

  ctkn_err_clear(err);
  ctkn_akey_command_init(cmd, CTKN_AKEY_CMD_CREATE);
  if ((rc = ctkn__json_load_object(body, len, &root, err)) != CTKN_OK)
    return rc;
  rc = akey_fill(cmd, root, false, now, err);
  json_decref(root);
  if (rc == CTKN_OK && (!cmd->set_name || !cmd->set_perms))
    rc = ctkn__err_field(err, CTKN_EINVAL,
                         cmd->set_name ? "permissions" : "name", "is required");
  return rc;
}

int ctkn_json_parse_akey_update(const char *body, size_t len, const char *id,
                                int64_t now, struct ctkn_akey_command *cmd,
                                struct ctkn_err *err)
{
  json_t *root;
  int rc;

  ctkn_err_clear(err);
  ctkn_akey_command_init(cmd, CTKN_AKEY_CMD_UPDATE);
  if ((rc = ctkn_akey_command_set_id(cmd, id, err)) != CTKN_OK ||
      (rc = ctkn__json_load_object(body, len, &root, err)) != CTKN_OK)
    return rc;
  if (json_object_size(root) == 0) {
    json_decref(root);
    return ctkn__err(err, CTKN_EBADREQ,
                     "nothing to update: give " AKEY_UPDATE_FIELDS);
  }
  rc = akey_fill(cmd, root, true, now, err);
  json_decref(root);
  return rc;
}

int ctkn_json_parse_akey_rotation(const char *body, size_t len, const char *id,
                                  struct ctkn_akey_command *cmd,
                                  struct ctkn_err *err)
{
  const char *key;
  json_t *root, *v;
  bool seen = false;
  int rc;

  ctkn_err_clear(err);
  ctkn_akey_command_init(cmd, CTKN_AKEY_CMD_ROTATE);
  if ((rc = ctkn_akey_command_set_id(cmd, id, err)) != CTKN_OK ||
      (rc = ctkn__json_load_object(body, len, &root, err)) != CTKN_OK)
    return rc;
  json_object_foreach(root, key, v)
  {
    if (strcmp(key, "grace_period_seconds") != 0) {
      char field[sizeof(((struct ctkn_err *)0)->field)];
      ctkn__json_field_name(field, sizeof(field), key);
      rc = ctkn__err_field(err, CTKN_EINVAL, field,
                           "unknown field (accepted: grace_period_seconds)");
    } else if (!json_is_integer(v)) {
      rc = ctkn__err_field(err, CTKN_EINVAL, key,
                           "must be an integer from 0 to 86400");
    } else {
      rc = ctkn_akey_command_set_grace(cmd, json_integer_value(v), err);
      seen = true;
    }
    if (rc != CTKN_OK)
      break;
  }
  json_decref(root);
  if (rc == CTKN_OK && !seen)
    rc = ctkn__err_field(err, CTKN_EINVAL, "grace_period_seconds",
                         "is required (0 to 86400)");
  return rc;
}

char *ctkn_json_akey_rotation(const struct ctkn_akey *k, const char *event_id,
                              int64_t grace_s, const char *new_key,
                              const char *request_id)
{
  json_t *o = json_object();
  char id[CTKN_EVT_ID_LEN + 4];
  int rc = o == NULL;

  /* The rotation's ID is its record's: apkrot_ + the event's ULID. */
  snprintf(id, sizeof(id), "apkrot_%s", event_id + 4);
  rc |= ctkn__json_set(o, "id", json_string(id));
  rc |= ctkn__json_set(o, "api_key_id", ctkn__json_str(k->id, sizeof(k->id)));
  rc |= ctkn__json_set(o, "new_key", json_string(new_key));
  rc |= ctkn__json_set(o, "grace_period_seconds", json_integer(grace_s));
  rc |= ctkn__json_set(o, "status", json_string("completed"));
  rc |= ctkn__json_set(
      o, "expires_at",
      time_or_null(k->has_previous ? k->previous_until : k->updated_at));
  rc |= ctkn__json_set(o, "created_at", ctkn__json_time(k->updated_at));
  return ctkn__json_doc(ctkn__json_checked(o, rc), true, request_id);
}
