/*
 * json_akey.c - API keys on the log in Paddle's shape (akey.h): the
 * entity, one page of them, and the answer that carries a new secret.
 */
#include <stdint.h>
#include <stdlib.h>

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
