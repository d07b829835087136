/*
 * keyset.c - API keys as values (keyset.h): permissions, key names, and
 * a loaded set with its constant-time lookup.
 *
 * The set is a struct ctkn__buf of entries; the key file (apikey.c)
 * fills it through the ctkn__apikeys_* functions of internal.h.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/crypto.h"
#include "ctkn/keyset.h"
#include "internal.h"

#define PERM_READ   "client_token.read"
#define PERM_WRITE  "client_token.write"
#define PERM_SREAD  "notification_setting.read"
#define PERM_SWRITE "notification_setting.write"
#define PERM_KREAD  "api_key.read"
#define PERM_KWRITE "api_key.write"

struct ctkn_apikeys {
  struct ctkn__buf v; /* struct ctkn_apikey entries */
};

/* ---- permissions and names ------------------------------------------ */

/* Every permission, in the order ctkn_perms_names() lists them: its own
 * bit, and the bits it grants (a write's include its read). */
static const struct {
  const char *name;
  unsigned own, bits;
} perms_table[] = {
    {PERM_READ, CTKN_PERM_TOKEN_READ, CTKN_PERM_TOKEN_READ},
    {PERM_WRITE, CTKN_PERM_TOKEN_WRITE,
     CTKN_PERM_TOKEN_READ | CTKN_PERM_TOKEN_WRITE},
    {PERM_SREAD, CTKN_PERM_SETTING_READ, CTKN_PERM_SETTING_READ},
    {PERM_SWRITE, CTKN_PERM_SETTING_WRITE,
     CTKN_PERM_SETTING_READ | CTKN_PERM_SETTING_WRITE},
    {PERM_KREAD, CTKN_PERM_KEY_READ, CTKN_PERM_KEY_READ},
    {PERM_KWRITE, CTKN_PERM_KEY_WRITE,
     CTKN_PERM_KEY_READ | CTKN_PERM_KEY_WRITE},
};
_Static_assert(CTKN__ARRAY_LEN(perms_table) == CTKN_PERMS_MAX,
               "CTKN_PERMS_MAX counts the permissions");

/* perms with every write's read added. */
static unsigned with_reads(unsigned perms)
{
  if (perms & CTKN_PERM_TOKEN_WRITE)
    perms |= CTKN_PERM_TOKEN_READ;
  if (perms & CTKN_PERM_SETTING_WRITE)
    perms |= CTKN_PERM_SETTING_READ;
  if (perms & CTKN_PERM_KEY_WRITE)
    perms |= CTKN_PERM_KEY_READ;
  return perms;
}

/* One permission name to its bits; write implies read. 0 when unknown. */
static unsigned perm_bit(const char *s, size_t len)
{
  for (size_t i = 0; i < CTKN__ARRAY_LEN(perms_table); i++) {
    if (strlen(perms_table[i].name) == len &&
        memcmp(s, perms_table[i].name, len) == 0)
      return perms_table[i].bits;
  }
  return 0;
}

int ctkn_perms_parse(const char *s, unsigned *perms, struct ctkn_err *err)
{
  unsigned bits = 0, named = 0;
  const char *p = s;

  *perms = 0;
  if (s == NULL || *s == '\0')
    return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                           "must list at least one of " CTKN_PERMS_LIST);
  for (;;) {
    size_t len = strcspn(p, ",");
    unsigned bit = perm_bit(p, len);

    if (len == 0)
      return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                             "must not have an empty item");
    if (bit == 0)
      return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                             "unknown permission \"%.*s\" (accepted: "
                             "" CTKN_PERMS_LIST ")",
                             len > 64 ? 64 : (int)len, p);
    /* A name twice is a mistake (as in an API key's JSON body), even
     * though it would change nothing. */
    for (size_t i = 0; i < CTKN__ARRAY_LEN(perms_table); i++) {
      if (perms_table[i].bits != bit)
        continue;
      if (named & (1u << i))
        return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                               "lists \"%.*s\" twice", (int)len, p);
      named |= 1u << i;
    }
    bits |= bit;
    if (p[len] == '\0')
      break;
    p += len + 1;
  }
  *perms = bits;
  return CTKN_OK;
}

size_t ctkn_perms_names(unsigned perms, const char **names, size_t cap)
{
  size_t n = 0;

  /* Write implies read, also for bits a caller set by hand. */
  perms = with_reads(perms);
  for (size_t i = 0; i < CTKN__ARRAY_LEN(perms_table) && n < cap; i++) {
    if (perms & perms_table[i].own)
      names[n++] = perms_table[i].name;
  }
  return n;
}

/* [A-Za-z0-9._-], 1..CTKN_APIKEY_NAME_MAX bytes; the rule in words for a
 * message on failure (NULL when the name is good). */
static const char *name_rule(const char *s, size_t len)
{
  if (len < 1 || len > CTKN_APIKEY_NAME_MAX)
    return "must be 1-64 characters long";
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return "may only contain A-Z, a-z, 0-9, '.', '_' and '-'";
  }
  return NULL;
}

unsigned ctkn_perms_with_reads(unsigned perms)
{
  return with_reads(perms);
}

unsigned ctkn_perm_bits(const char *name, size_t len)
{
  return perm_bit(name, len);
}

int ctkn_apikey_name_check(const char *s, size_t len, struct ctkn_err *err)
{
  const char *why = name_rule(s, len);

  if (why != NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "name", "%s", why);
  return CTKN_OK;
}

/* ---- the set ------------------------------------------------------------ */

static const struct ctkn_apikey *entries(const ctkn_apikeys *ks)
{
  return (const struct ctkn_apikey *)(const void *)ks->v.data;
}

ctkn_apikeys *ctkn__apikeys_new(void)
{
  ctkn_apikeys *ks = calloc(1, sizeof(*ks));

  if (ks != NULL)
    ks->v = (struct ctkn__buf)CTKN__BUF_INIT;
  return ks;
}

int ctkn__apikeys_add(ctkn_apikeys *ks, const struct ctkn_apikey *k)
{
  return ctkn__buf_append(&ks->v, k, sizeof(*k));
}

void ctkn__apikeys_remove(ctkn_apikeys *ks, size_t i)
{
  size_t n = ctkn_apikeys_count(ks);
  char *at = ks->v.data + i * sizeof(struct ctkn_apikey);

  if (i >= n)
    return;
  memmove(at, at + sizeof(struct ctkn_apikey),
          (n - i - 1) * sizeof(struct ctkn_apikey));
  ks->v.len -= sizeof(struct ctkn_apikey);
  ks->v.data[ks->v.len] = '\0'; /* the buffer's invariant */
}

void ctkn_apikeys_free(ctkn_apikeys *ks)
{
  if (ks == NULL)
    return;
  ctkn__buf_free(&ks->v);
  free(ks);
}

size_t ctkn_apikeys_count(const ctkn_apikeys *ks)
{
  return ks != NULL ? ks->v.len / sizeof(struct ctkn_apikey) : 0;
}

const struct ctkn_apikey *ctkn_apikeys_at(const ctkn_apikeys *ks, size_t i)
{
  return i < ctkn_apikeys_count(ks) ? &entries(ks)[i] : NULL;
}

/* ---- the lookup --------------------------------------------------------- */

/* Shaped like a key: the prefix, then exactly 43 base64url characters.
 * The shape is public, so this check need not be constant-time. */
static bool well_formed(const char *key, size_t len)
{
  size_t plen = sizeof(CTKN_APIKEY_PREFIX) - 1;

  if (key == NULL || len != CTKN_APIKEY_LEN ||
      memcmp(key, CTKN_APIKEY_PREFIX, plen) != 0)
    return false;
  for (size_t i = plen; i < len; i++) {
    char c = key[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  }
  return true;
}

int ctkn_apikeys_find(const ctkn_apikeys *ks, const char *key, size_t len,
                      const struct ctkn_apikey **out)
{
  uint8_t d[CTKN_SHA256_LEN];
  size_t idx = 0, hit = 0;

  *out = NULL;
  if (!well_formed(key, len))
    return CTKN_EAUTHMALFORMED;
  ctkn_sha256_once(key, len, d);
  /* Every entry is compared and the first match is selected with masks,
   * so the time taken does not depend on where, or whether, the key is in
   * the set. (Comparing digests already hides the key itself; this also
   * hides which entry it is.) */
  for (size_t i = 0; i < ctkn_apikeys_count(ks); i++) {
    size_t eq = (size_t)ctkn_ct_equal(d, entries(ks)[i].sha256, sizeof(d));
    size_t take = (size_t)0 - (eq & (hit ^ 1));
    idx = (idx & ~take) | (i & take);
    hit |= eq;
  }
  ctkn_wipe(d, sizeof(d));
  if (!hit)
    return CTKN_EBADKEY;
  *out = &entries(ks)[idx];
  return CTKN_OK;
}
