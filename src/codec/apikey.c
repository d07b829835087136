/*
 * apikey.c - API keys in JSON: `ctkn apikey`'s answers, and the key
 * file's lines (apikey.h), one entry a line:
 * {"name","sha256","permissions","created_at"}.
 *
 * A line is parsed strictly: duplicate keys, unknown keys and wrong types
 * are refused, and every field is required, so a typo can never silently
 * drop a permission. Messages name the field and the rule; the key file
 * adds the path and the line number. No line holds key material, only
 * its digest.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/keyset.h"
#include "ctkn/token.h"
#include "internal.h"
#include "json_int.h"

#define SHA256_HEX "must be a string of 64 lowercase hex digits"

/* ---- `ctkn apikey` ------------------------------------------------------ */

/* ["client_token.read", ...] for perms. */
static json_t *jperms(unsigned perms)
{
  const char *names[CTKN_PERMS_MAX];
  size_t n = ctkn_perms_names(perms, names, CTKN__ARRAY_LEN(names));
  json_t *arr = json_array();
  int rc = 0;

  if (arr == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++)
    rc |= json_array_append_new(arr, json_string(names[i]));
  return ctkn__json_checked(arr, rc);
}

char *ctkn_json_apikey_created(const struct ctkn_apikey *k, const char *key)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= ctkn__json_set(o, "name", ctkn__json_str(k->name, sizeof(k->name)));
  rc |= ctkn__json_set(o, "key", ctkn__json_str(key, CTKN_APIKEY_BUF));
  rc |= ctkn__json_set(o, "permissions", jperms(k->perms));
  return ctkn__json_doc(ctkn__json_checked(o, rc), false, NULL);
}

char *ctkn_json_apikey_list(const ctkn_apikeys *ks)
{
  json_t *arr = json_array();
  int rc = 0;

  if (arr == NULL)
    return NULL;
  for (size_t i = 0; i < ctkn_apikeys_count(ks); i++) {
    const struct ctkn_apikey *k = ctkn_apikeys_at(ks, i);
    json_t *e = json_object();
    if (e == NULL) {
      rc = -1;
      break;
    }
    rc |= ctkn__json_set(e, "name", ctkn__json_str(k->name, sizeof(k->name)));
    rc |= ctkn__json_set(e, "permissions", jperms(k->perms));
    rc |= ctkn__json_set(e, "created_at",
                         ctkn__json_str(k->created_at, sizeof(k->created_at)));
    rc |= json_array_append_new(arr, e);
  }
  return ctkn__json_doc(ctkn__json_checked(arr, rc), false, NULL);
}

char *ctkn_json_apikey_revoked(const char *name)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |=
      ctkn__json_set(o, "name", ctkn__json_str(name, CTKN_APIKEY_NAME_MAX + 1));
  rc |= ctkn__json_set(o, "revoked", json_true());
  return ctkn__json_doc(ctkn__json_checked(o, rc), false, NULL);
}

/* ---- the key file ---------------------------------------------------------
 */

char *ctkn_json_apikey_line(const struct ctkn_apikey *k)
{
  char hex[2 * sizeof(k->sha256) + 1];
  const char *names[CTKN_PERMS_MAX];
  size_t n = ctkn_perms_names(k->perms, names, CTKN_PERMS_MAX);
  json_t *o = json_object(), *perms = json_array();
  int rc = 0;
  char *s;

  if (o == NULL || perms == NULL) {
    json_decref(o);
    json_decref(perms);
    return NULL;
  }
  ctkn_hex(k->sha256, sizeof(k->sha256), hex);
  for (size_t i = 0; i < n; i++)
    rc |= json_array_append_new(perms, json_string(names[i]));
  rc |= json_object_set_new(o, "name", json_string(k->name));
  rc |= json_object_set_new(o, "sha256", json_string(hex));
  rc |= json_object_set_new(o, "permissions", perms);
  rc |= json_object_set_new(o, "created_at", json_string(k->created_at));
  s = rc == 0 ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  return s;
}

/* ---- parsing ------------------------------------------------------------ */

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1; /* uppercase is refused: the writer emits lowercase only */
}

/* CTKN_EDECODE naming field ("" for the line as a whole). */
CTKN__PRINTF(3, 4)
static int bad(struct ctkn_err *err, const char *field, const char *fmt, ...)
{
  char why[sizeof(err->msg)];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  return ctkn__err_field(err, CTKN_EDECODE, field, "%s", why);
}

static int check_members(json_t *root, struct ctkn_err *err)
{
  const char *key;
  json_t *v;

  json_object_foreach(root, key, v)
  {
    if (strcmp(key, "name") != 0 && strcmp(key, "sha256") != 0 &&
        strcmp(key, "permissions") != 0 && strcmp(key, "created_at") != 0)
      return bad(err, "",
                 "unknown field \"%.40s\" (accepted: name, sha256, "
                 "permissions, created_at)",
                 key);
  }
  return CTKN_OK;
}

static int get_name(json_t *root, struct ctkn_apikey *k, struct ctkn_err *err)
{
  json_t *v = json_object_get(root, "name");
  const char *str;
  size_t n;

  if (!json_is_string(v))
    return bad(err, "name", "must be a string");
  str = json_string_value(v);
  n = json_string_length(v);
  if (ctkn_apikey_name_check(str, n, err) != CTKN_OK)
    return bad(err, "name", "%s", err != NULL ? err->msg : "");
  memcpy(k->name, str, n);
  k->name[n] = '\0';
  return CTKN_OK;
}

static int get_sha256(json_t *root, struct ctkn_apikey *k, struct ctkn_err *err)
{
  json_t *v = json_object_get(root, "sha256");
  const char *str;

  if (!json_is_string(v) || json_string_length(v) != 2 * sizeof(k->sha256))
    return bad(err, "sha256", SHA256_HEX);
  str = json_string_value(v);
  for (size_t i = 0; i < sizeof(k->sha256); i++) {
    int hi = hexval(str[2 * i]), lo = hexval(str[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return bad(err, "sha256", SHA256_HEX);
    k->sha256[i] = (uint8_t)(hi << 4 | lo);
  }
  return CTKN_OK;
}

static int get_perms(json_t *root, struct ctkn_apikey *k, struct ctkn_err *err)
{
  json_t *v = json_object_get(root, "permissions");

  if (!json_is_array(v) || json_array_size(v) == 0)
    return bad(err, "permissions",
               "must be a non-empty array of permission names");
  for (size_t i = 0; i < json_array_size(v); i++) {
    json_t *p = json_array_get(v, i);
    unsigned bit = json_is_string(p) ? ctkn_perm_bits(json_string_value(p),
                                                      json_string_length(p))
                                     : 0;
    if (bit == 0)
      return bad(err, "permissions", "item %zu is not one of " CTKN_PERMS_LIST,
                 i);
    k->perms |= bit;
  }
  return CTKN_OK;
}

static int get_created_at(json_t *root, struct ctkn_apikey *k,
                          struct ctkn_err *err)
{
  json_t *v = json_object_get(root, "created_at");
  int64_t us;

  if (!json_is_string(v) || json_string_length(v) >= sizeof(k->created_at) ||
      ctkn_time_parse(json_string_value(v), &us, NULL) != CTKN_OK)
    return bad(err, "created_at", "must be an RFC 3339 date-time string");
  ctkn__strlcpy(k->created_at, json_string_value(v), sizeof(k->created_at));
  return CTKN_OK;
}

int ctkn_json_parse_apikey_line(const char *s, size_t len,
                                struct ctkn_apikey *k, struct ctkn_err *err)
{
  json_error_t je;
  json_t *root;
  int rc;

  memset(k, 0, sizeof(*k));
  if (len == 0)
    return bad(err, "", "empty line");
  root = json_loadb(s, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL)
    return bad(err, "", "invalid JSON at column %d: %s", je.column, je.text);
  if (!json_is_object(root))
    rc = bad(err, "", "must be a JSON object");
  else if ((rc = check_members(root, err)) == CTKN_OK &&
           (rc = get_name(root, k, err)) == CTKN_OK &&
           (rc = get_sha256(root, k, err)) == CTKN_OK &&
           (rc = get_perms(root, k, err)) == CTKN_OK)
    rc = get_created_at(root, k, err);
  json_decref(root);
  if (rc != CTKN_OK)
    memset(k, 0, sizeof(*k));
  return rc;
}
