/*
 * keylog.c - API keys projected from the settings topic (keylog.h).
 *
 * Tables (store.h side tables), replicated, not in the digest:
 *
 *   api_keys        apikey ID           -> codec's stored key
 *   api_key_hashes  SHA-256 (32 bytes)  -> apikey ID   (legacy keys only)
 *
 * A legacy key's hash is indexed when its created record applies; a
 * second key claiming the same hash is rejected, so importing one key
 * file twice (or from two hosts) leaves one key per file entry.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/keylog.h"
#include "internal.h"

bool ctkn_keylog_is_akey(const char *event_type)
{
  return ctkn_akey_type_parse(event_type) != 0;
}

int ctkn_keylog_get(ctkn_store_txn *txn, const char *id, struct ctkn_akey *out,
                    struct ctkn_err *err)
{
  struct ctkn_err derr;
  const void *v;
  size_t vlen;
  int rc;

  if (id == NULL || !ctkn_id_valid("apikey_", id))
    return ctkn__err(err, CTKN_ENOTFOUND, "no API key %.64s",
                     id != NULL ? id : "");
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_API_KEYS, id, CTKN_AKEY_ID_LEN, &v,
                         &vlen, err);
  if (rc == CTKN_ENOTFOUND)
    return ctkn__err(err, rc, "no API key %s", id);
  if (rc != CTKN_OK)
    return rc;
  if (ctkn_akey_decode(v, vlen, out, &derr) != CTKN_OK)
    return ctkn__err(err, CTKN_ESTORE, "API key %s: %s", id, derr.msg);
  return CTKN_OK;
}

struct list_acc {
  struct ctkn_akey *out;
  size_t max, n;
  const char *after;
  bool more;
  int rc;
  struct ctkn_err *err;
};

static int list_one(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
  struct list_acc *a = arg;
  struct ctkn_err derr;

  if (a->after != NULL && klen == CTKN_AKEY_ID_LEN &&
      memcmp(key, a->after, klen) == 0)
    return 0; /* the cursor itself */
  if (a->n == a->max) {
    a->more = true;
    return 1;
  }
  if (ctkn_akey_decode(val, vlen, &a->out[a->n], &derr) != CTKN_OK) {
    a->rc = ctkn__err(a->err, CTKN_ESTORE, "api_keys: %s", derr.msg);
    return 1;
  }
  a->n++;
  return 0;
}

int ctkn_keylog_list(ctkn_store_txn *txn, const char *after,
                     struct ctkn_akey *out, size_t max, size_t *n, bool *more,
                     struct ctkn_err *err)
{
  bool from = after != NULL && after[0] != '\0';
  struct list_acc a = {out, max, 0, from ? after : NULL, false, CTKN_OK, err};
  int rc = ctkn_store_kv_walk(txn, CTKN_TABLE_API_KEYS, from ? after : NULL,
                              from ? strlen(after) : 0, 0, list_one, &a, err);

  *n = 0;
  *more = false;
  if (rc == CTKN_ENOTFOUND) /* a projection from before the table */
    rc = CTKN_OK;
  if (rc == 1)
    rc = CTKN_OK;
  if (rc == CTKN_OK)
    rc = a.rc;
  if (rc != CTKN_OK)
    return rc;
  *n = a.n;
  *more = a.more;
  return CTKN_OK;
}

int ctkn_keylog_find_legacy(ctkn_store_txn *txn, const uint8_t sha256[32],
                            struct ctkn_akey *out, struct ctkn_err *err)
{
  char id[CTKN_AKEY_ID_BUF];
  const void *v;
  size_t vlen;
  int rc;

  rc = ctkn_store_kv_get(txn, CTKN_TABLE_API_KEY_HASHES, sha256, 32, &v, &vlen,
                         err);
  if (rc != CTKN_OK)
    return rc;
  if (vlen != CTKN_AKEY_ID_LEN)
    return ctkn__err(err, CTKN_ESTORE, "api_key_hashes: a bad entry");
  memcpy(id, v, vlen);
  id[vlen] = '\0';
  return ctkn_keylog_get(txn, id, out, err);
}

#define PAUSE_KEY "akey_pause" /* trust table: partition (BE32) + offset */

int ctkn_keylog_pause(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                      struct ctkn_err *err)
{
  uint8_t v[12];

  ctkn__put_be32(v, (uint32_t)partition);
  ctkn__put_be64(v + 4, (uint64_t)offset);
  return ctkn_store_kv_put(txn, CTKN_TABLE_TRUST, PAUSE_KEY,
                           sizeof(PAUSE_KEY) - 1, v, sizeof(v), err);
}

/* CTKN_ESTALE while the settings topic is stopped behind a record of a
 * newer schema that this projection has not passed. */
int ctkn_keylog_paused(ctkn_store_txn *txn, struct ctkn_err *err)
{
  const uint8_t *v, *o;
  size_t n, on;
  uint8_t k[4];

  if (ctkn_store_kv_get(txn, CTKN_TABLE_TRUST, PAUSE_KEY, sizeof(PAUSE_KEY) - 1,
                        (const void **)&v, &n, NULL) != CTKN_OK ||
      n != 12)
    return CTKN_OK;
  memcpy(k, v, 4);
  int64_t at = (int64_t)ctkn__get_be(v + 4, 8);
  int64_t next = 0;
  if (ctkn_store_kv_get(txn, CTKN_TABLE_SETTINGS_OFFSETS, k, 4,
                        (const void **)&o, &on, NULL) == CTKN_OK &&
      on == 8)
    next = (int64_t)ctkn__get_be(o, 8);
  if (next > at)
    return CTKN_OK;
  return ctkn__err(err, CTKN_ESTALE,
                   "API keys on the log may be stale: the settings topic "
                   "holds a record of a newer schema at %" PRIu32 "/%" PRId64
                   " (upgrade ctkn)",
                   (uint32_t)ctkn__get_be(v, 4), at);
}

/* The legacy key the presented one is, by its hash. */
static int legacy_lookup(ctkn_store_txn *txn, const char *key, size_t len,
                         struct ctkn_akey *out, struct ctkn_err *err)
{
  uint8_t d[CTKN_SHA256_LEN];
  int rc;

  ctkn_sha256_once(key, len, d);
  rc = ctkn_keylog_find_legacy(txn, d, out, err);
  ctkn_wipe(d, sizeof(d));
  if (rc == CTKN_OK && !out->legacy)
    rc = CTKN_ENOTFOUND;
  return rc;
}

int ctkn_keylog_authenticate(ctkn_store_txn *txn, const char *key, size_t len,
                             ctkn_env env, int64_t now, struct ctkn_akey *out,
                             struct ctkn_err *err)
{
  char id[CTKN_AKEY_ID_BUF];
  ctkn_env kenv;
  int rc;

  if (ctkn_akey_parse(key, len, id, &kenv) == CTKN_OK) {
    if (env != 0 && kenv != env)
      return ctkn__err(err, CTKN_EBADKEY, "a key of the other environment");
    rc = ctkn_keylog_get(txn, id, out, NULL);
    if (rc == CTKN_OK && out->legacy)
      rc = CTKN_ENOTFOUND;
  } else if (len == CTKN_APIKEY_LEN &&
             memcmp(key, CTKN_APIKEY_PREFIX, strlen(CTKN_APIKEY_PREFIX)) == 0) {
    rc = legacy_lookup(txn, key, len, out, NULL);
  } else {
    return CTKN_EAUTHMALFORMED;
  }
  if ((rc == CTKN_OK || rc == CTKN_ENOTFOUND) &&
      ctkn_keylog_paused(txn, err) != CTKN_OK)
    return CTKN_ESTALE;
  if (rc == CTKN_ENOTFOUND)
    return CTKN_EBADKEY;
  if (rc != CTKN_OK)
    return ctkn__err(err, rc, "reading API keys");
  if (!ctkn_akey_secret_matches(out, key, len, now) ||
      ctkn_akey_status_at(out, now) != CTKN_AKEY_ACTIVE)
    return CTKN_EBADKEY;
  return CTKN_OK;
}

/* ---- applying records ---------------------------------------------------- */

static int quarantine(enum ctkn_keylog_fate *fate, char *reason,
                      size_t reasonsz, const char *field, const char *msg)
{
  *fate = CTKN_KEYLOG_QUARANTINED;
  snprintf(reason, reasonsz, "%s%s%s", field, field[0] ? ": " : "", msg);
  return CTKN_OK;
}

/* A legacy create claims its hash; false when another key holds it. */
static int claim_hash(ctkn_store_txn *txn, const struct ctkn_akey *k,
                      bool *taken, struct ctkn_err *err)
{
  const void *v;
  size_t vlen;
  int rc;

  *taken = false;
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_API_KEY_HASHES, k->sha256, 32, &v,
                         &vlen, err);
  if (rc == CTKN_OK) {
    *taken = true;
    return CTKN_OK;
  }
  if (rc != CTKN_ENOTFOUND)
    return rc;
  return ctkn_store_kv_put(txn, CTKN_TABLE_API_KEY_HASHES, k->sha256, 32, k->id,
                           CTKN_AKEY_ID_LEN, err);
}

static int store_key(ctkn_store_txn *txn, const struct ctkn_akey *k,
                     struct ctkn_err *err)
{
  uint8_t *buf;
  size_t len;
  int rc;

  if ((rc = ctkn_akey_encode(k, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_API_KEYS, k->id, CTKN_AKEY_ID_LEN, buf,
                         len, err);
  free(buf);
  return rc;
}

/* A decoded, checked event against the stored key. */
static int apply_checked(ctkn_store_txn *txn, const struct ctkn_akey_event *ev,
                         enum ctkn_keylog_fate *fate, char *reason,
                         size_t reasonsz, struct ctkn_err *err)
{
  struct ctkn_akey cur, next;
  bool taken = false;
  int rc;

  rc = ctkn_keylog_get(txn, ev->data.id, &cur, err);
  if (rc != CTKN_OK && rc != CTKN_ENOTFOUND)
    return rc;
  if (ctkn_akey_apply(rc == CTKN_OK ? &cur : NULL, ev, &next, reason,
                      reasonsz) == CTKN_AKEY_REJECTED) {
    *fate = CTKN_KEYLOG_REJECTED;
    return CTKN_OK;
  }
  if (ev->type == CTKN_AKEY_CREATED && next.legacy &&
      (rc = claim_hash(txn, &next, &taken, err)) != CTKN_OK)
    return rc;
  if (taken) {
    *fate = CTKN_KEYLOG_REJECTED;
    snprintf(reason, reasonsz, "another key holds this key's hash");
    return CTKN_OK;
  }
  *fate = CTKN_KEYLOG_APPLIED;
  return store_key(txn, &next, err);
}

int ctkn_keylog_apply(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                      enum ctkn_keylog_fate *fate, char *reason,
                      size_t reasonsz, struct ctkn_err *err)
{
  struct ctkn_akey_event *ev;
  struct ctkn_err derr = {0};
  int rc = CTKN_OK;

  reason[0] = '\0';
  if (m->schema_version < CTKN_AKEY_SCHEMA)
    return quarantine(fate, reason, reasonsz, "ctkn-schema-version",
                      "API-key records are schema version 2 or later");
  if ((ev = malloc(sizeof(*ev))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "an API-key record");
  if (ctkn_akey_event_decode(m->value, m->value_len, ev, &derr) != CTKN_OK ||
      ctkn_akey_event_check(ev, &derr) != CTKN_OK)
    rc = quarantine(fate, reason, reasonsz, derr.field, derr.msg);
  else if (strcmp(m->event_type, ctkn_akey_type_str(ev->type)) != 0)
    rc = quarantine(fate, reason, reasonsz, "ctkn-event-type",
                    "does not match the record's event_type");
  else if (m->key_len != CTKN_AKEY_ID_LEN ||
           memcmp(m->key, ev->data.id, CTKN_AKEY_ID_LEN) != 0)
    rc = quarantine(fate, reason, reasonsz, "key", "is not data.id");
  else
    rc = apply_checked(txn, ev, fate, reason, reasonsz, err);
  free(ev);
  return rc;
}
