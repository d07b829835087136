/*
 * keyring.c - the trust records' rules (keyring.h).
 */
#include <stdlib.h>
#include <string.h>

#include "ctkn/keyring.h"
#include "internal.h"

const char *ctkn_signed_kind_str(ctkn_signed_kind k)
{
  switch (k) {
  case CTKN_SIGNED_KEYRING:
    return "keyring";
  case CTKN_SIGNED_CHECKPOINT:
    return "checkpoint";
  case CTKN_SIGNED_ADOPTION:
    return "adoption";
  }
  return NULL;
}

void ctkn_keyring_init(struct ctkn_keyring *kr)
{
  memset(kr, 0, sizeof(*kr));
}

void ctkn_keyring_free(struct ctkn_keyring *kr)
{
  if (kr == NULL)
    return;
  free(kr->keys);
  ctkn_keyring_init(kr);
}

int ctkn_keyring_copy(struct ctkn_keyring *dst, const struct ctkn_keyring *src,
                      struct ctkn_err *err)
{
  struct ctkn_writer_key *keys = NULL;

  if (src->nkeys > 0) {
    keys = malloc(src->nkeys * sizeof(*keys));
    if (keys == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "out of memory copying a keyring");
    memcpy(keys, src->keys, src->nkeys * sizeof(*keys));
  }
  free(dst->keys);
  *dst = *src;
  dst->keys = keys;
  return CTKN_OK;
}

const struct ctkn_writer_key *ctkn_keyring_find(const struct ctkn_keyring *kr,
                                                const char *key_id)
{
  for (size_t i = 0; i < kr->nkeys; i++)
    if (strcmp(kr->keys[i].key_id, key_id) == 0)
      return &kr->keys[i];
  return NULL;
}

int ctkn_keyring_add_key(struct ctkn_keyring *kr,
                         const struct ctkn_writer_key *k, struct ctkn_err *err)
{
  if (kr->nkeys >= CTKN_KEYRING_KEYS)
    return ctkn__err_field(err, CTKN_EINVAL, "keys",
                           "a keyring holds at most %d keys",
                           CTKN_KEYRING_KEYS);
  if (ctkn_keyring_find(kr, k->key_id) != NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "keys",
                           "key %s is in the keyring already", k->key_id);
  struct ctkn_writer_key *keys =
      realloc(kr->keys, (kr->nkeys + 1) * sizeof(*keys));
  if (keys == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory adding a key");
  kr->keys = keys;
  kr->keys[kr->nkeys++] = *k;
  return CTKN_OK;
}

bool ctkn_keyring_schema_enabled(const struct ctkn_keyring *kr, uint32_t v)
{
  for (size_t i = 0; i < kr->nschemas; i++)
    if (kr->schemas[i] == v)
      return true;
  return false;
}

/* A record type or family: 1-64 bytes of [a-z0-9_.*-], "*" only as a
 * final ".*". */
static bool scope_ok(const char *s)
{
  size_t n = strlen(s);

  if (n == 0 || n > CTKN_SCOPE_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '*') {
      if (i != n - 1 || i < 2 || s[i - 1] != '.')
        return false;
    } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                 c == '.' || c == '-')) {
      return false;
    }
  }
  return true;
}

static int key_check(const struct ctkn_keyring *kr, size_t i,
                     struct ctkn_err *err)
{
  const struct ctkn_writer_key *k = &kr->keys[i];
  char id[CTKN_KEY_ID_BUF];

  ctkn_key_id(k->public_key, id);
  if (strcmp(id, k->key_id) != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "keys",
                           "key %.16s: its ID is not its public key's (%s)",
                           k->key_id, id);
  for (size_t j = 0; j < i; j++)
    if (strcmp(kr->keys[j].key_id, k->key_id) == 0)
      return ctkn__err_field(err, CTKN_EINVAL, "keys", "key %s appears twice",
                             k->key_id);
  if (k->nscopes == 0 || k->nscopes > CTKN_KEY_SCOPES)
    return ctkn__err_field(err, CTKN_EINVAL, "scopes", "key %s: 1 to %d scopes",
                           k->key_id, CTKN_KEY_SCOPES);
  for (size_t j = 0; j < k->nscopes; j++)
    if (!scope_ok(k->scopes[j]))
      return ctkn__err_field(err, CTKN_EINVAL, "scopes",
                             "key %s: \"%.64s\" is not a record type or a "
                             "family such as client_token.*",
                             k->key_id, k->scopes[j]);
  return CTKN_OK;
}

int ctkn_keyring_check(const struct ctkn_keyring *kr, struct ctkn_err *err)
{
  int rc;

  if (kr->version < 1)
    return ctkn__err_field(err, CTKN_EINVAL, "version", "must be at least 1");
  if (kr->nkeys > CTKN_KEYRING_KEYS)
    return ctkn__err_field(err, CTKN_EINVAL, "keys", "at most %d keys",
                           CTKN_KEYRING_KEYS);
  for (size_t i = 0; i < kr->nkeys; i++)
    if ((rc = key_check(kr, i, err)) != CTKN_OK)
      return rc;
  for (size_t i = 0; i < kr->nschemas; i++) {
    if (kr->schemas[i] < 1)
      return ctkn__err_field(err, CTKN_EINVAL, "schema_versions",
                             "a schema version is at least 1");
    for (size_t j = 0; j < i; j++)
      if (kr->schemas[j] == kr->schemas[i])
        return ctkn__err_field(err, CTKN_EINVAL, "schema_versions",
                               "version %u appears twice",
                               (unsigned)kr->schemas[i]);
  }
  return CTKN_OK;
}

bool ctkn_writer_key_may(const struct ctkn_writer_key *k, const char *type)
{
  if (k->revoked)
    return false;
  if (strcmp(type, "ctkn.checkpoint") == 0)
    return true;
  for (size_t i = 0; i < k->nscopes; i++) {
    const char *s = k->scopes[i];
    size_t n = strlen(s);
    if (n >= 2 && s[n - 1] == '*') {
      /* "client_token.*": the family, not "client_token" itself. */
      if (strncmp(type, s, n - 1) == 0 && type[n - 1] != '\0')
        return true;
    } else if (strcmp(type, s) == 0) {
      return true;
    }
  }
  return false;
}

void ctkn_adoption_free(struct ctkn_adoption *a)
{
  if (a == NULL)
    return;
  free(a->parts);
  a->parts = NULL;
  a->nparts = 0;
}

void ctkn_signed_free(struct ctkn_signed *s)
{
  if (s == NULL)
    return;
  free(s->body);
  s->body = NULL;
  s->body_len = 0;
}
