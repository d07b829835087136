/*
 * auth.c - who may ask: API keys (apikey.h), the permission each route
 * needs, a token bucket per key, and reloading the key file.
 *
 * The keys and their buckets are swapped together under keys_lock, so a
 * bucket's index is always its key's index in the set in force. Readers
 * (every request) take the lock shared; only a reload takes it alone.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"

unsigned ctkn__api_route_perm(enum route rt)
{
  switch (rt) {
  case R_HEALTHZ:
  case R_METRICS:
  case R_UI: /* the page has no data: its calls to the API carry the key */
    return 0;
  case R_CREATE:
  case R_UPDATE:
    return CTKN_PERM_TOKEN_WRITE;
  case R_DEST_CREATE:
  case R_DEST_UPDATE:
  case R_DEST_DELETE:
    return CTKN_PERM_SETTING_WRITE;
  case R_DEST_LIST:
  case R_DEST_GET:
  case R_NTF_LIST:
  case R_NTF_GET:
  case R_NTF_LOGS:
    return CTKN_PERM_SETTING_READ;
  case R_KEY_LIST:
  case R_KEY_GET: /* or the key itself (ctkn__api_authenticate) */
    return CTKN_PERM_KEY_READ;
  case R_KEY_CREATE:
  case R_KEY_UPDATE:
  case R_KEY_ROTATE: /* or the key itself, as Paddle's */
    return CTKN_PERM_KEY_WRITE;
  case R_NTF_REPLAY:
    return CTKN_PERM_SETTING_WRITE;
  default:
    return CTKN_PERM_TOKEN_READ;
  }
}

/* Take one request from b, or say when to come back. Called with
 * bucket_lock held. */
static int take_from(struct server *s, struct req *r, struct bucket *b,
                     struct ctkn_err *err)
{
  double rate = s->cfg->rate_limit, cap = rate < 1 ? 1 : rate;
  int64_t now = ctkn__api_mono_us();
  int rc = CTKN_OK;

  if (b->at_us == 0) {
    b->tokens = cap;
  } else {
    b->tokens += (double)(now - b->at_us) / 1e6 * rate;
    if (b->tokens > cap)
      b->tokens = cap;
  }
  b->at_us = now;
  if (b->tokens >= 1) {
    b->tokens -= 1;
  } else {
    r->retry_after = (int)ceil((1 - b->tokens) / rate);
    if (r->retry_after < 1)
      r->retry_after = 1;
    rc = ctkn__err(err, CTKN_ERATELIMIT,
                   "more than %g requests per second with this key; retry "
                   "after %d s",
                   rate, r->retry_after);
  }
  return rc;
}

/* Take one request from k's bucket. Called with keys_lock held, so k and
 * s->buckets belong together. */
static int take_token(struct server *s, struct req *r,
                      const struct ctkn_apikey *k, struct ctkn_err *err)
{
  size_t idx = 0;
  int rc;

  if (s->cfg->rate_limit <= 0 || s->buckets == NULL)
    return CTKN_OK;
  while (ctkn_apikeys_at(s->keys, idx) != k)
    idx++;
  pthread_mutex_lock(&s->bucket_lock);
  rc = take_from(s, r, &s->buckets[idx], err);
  pthread_mutex_unlock(&s->bucket_lock);
  return rc;
}

/* A key on the log's bucket, by its ID (found or added). */
struct log_bucket {
  char id[CTKN_AKEY_ID_BUF];
  struct bucket b;
};

/* Take one request from the log key id's bucket. */
static int take_log_token(struct server *s, struct req *r, const char *id,
                          struct ctkn_err *err)
{
  struct log_bucket *v, fresh = {{0}, {0, 0}};
  size_t n, i;
  int rc;

  if (s->cfg->rate_limit <= 0)
    return CTKN_OK;
  pthread_mutex_lock(&s->bucket_lock);
  v = (struct log_bucket *)(void *)s->log_buckets.data;
  n = s->log_buckets.len / sizeof(*v);
  for (i = 0; i < n && strcmp(v[i].id, id) != 0; i++)
    ;
  if (i == n) {
    memcpy(fresh.id, id, sizeof(fresh.id));
    if (ctkn__buf_append(&s->log_buckets, &fresh, sizeof(fresh)) != CTKN_OK) {
      pthread_mutex_unlock(&s->bucket_lock);
      return ctkn__err(err, CTKN_ENOMEM, "rate limit");
    }
    v = (struct log_bucket *)(void *)s->log_buckets.data;
  }
  rc = take_from(s, r, &v[i].b, err);
  pthread_mutex_unlock(&s->bucket_lock);
  return rc;
}

/* A key in the key file (--api-keys), with its request taken from its
 * bucket. CTKN_EAUTHMALFORMED for a key not of the file's shape. */
static int file_key(struct server *s, struct req *r, const char *key,
                    unsigned *perms, struct ctkn_err *err)
{
  const struct ctkn_apikey *k = NULL;
  int rc;

  pthread_rwlock_rdlock(&s->keys_lock);
  rc = ctkn_apikeys_find(s->keys, key, strlen(key), &k);
  if (rc == CTKN_OK) {
    ctkn__strlcpy(r->key_name, k->name, sizeof(r->key_name));
    *perms = k->perms;
    rc = take_token(s, r, k, err);
  }
  pthread_rwlock_unlock(&s->keys_lock);
  return rc;
}

/* A key on the log, from this replica's projection (keylog.h): the
 * access log names it by its ID, never its name or material. */
static int log_key(struct server *s, struct req *r, const char *key,
                   unsigned *perms, struct ctkn_err *err)
{
  struct ctkn_akey k;
  ctkn_store_txn *txn;
  int rc;

  /* Fail closed: a key revoked on the log meanwhile would still pass, on
   * a replica whose settings follower failed or that is cut off from the
   * log (stale: no writer checkpoint for --max-staleness). */
  if (ctkn__api_keys_stale(s, err))
    return CTKN_ESTALE;
  if ((rc = ctkn_store_begin(s->st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_keylog_authenticate(txn, key, strlen(key), s->cfg->env,
                                ctkn_now_us(), &k, err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    return rc;
  ctkn__strlcpy(r->key_name, k.id, sizeof(r->key_name));
  ctkn__strlcpy(r->key_id, k.id, sizeof(r->key_id));
  *perms = k.perms;
  if ((rc = take_log_token(s, r, k.id, err)) != CTKN_OK)
    return rc;
  ctkn__api_key_used(s, &k);
  return CTKN_OK;
}

/* The key the bearer token is, with r->key_name and *perms set: the key
 * file first (its keys stay valid while a fleet moves onto the log), then
 * the log's keys, by ID or, for a key of the file's shape, by hash. */
static int find_key(struct server *s, struct req *r, const char *key,
                    unsigned *perms, struct ctkn_err *err)
{
  int rc = file_key(s, r, key, perms, err);

  if (rc != CTKN_EBADKEY && rc != CTKN_EAUTHMALFORMED)
    return rc;
  int lrc = log_key(s, r, key, perms, err);
  /* A key of the file's shape that neither knows is unknown, not
   * malformed. */
  return lrc == CTKN_EAUTHMALFORMED && rc == CTKN_EBADKEY ? rc : lrc;
}

int ctkn__api_authenticate(struct server *s, struct req *r, unsigned need,
                           struct ctkn_err *err)
{
  const char *h = r->hdr.authorization;
  unsigned perms = 0;
  int rc;

  if (h == NULL || *h == '\0')
    return ctkn__err(err, CTKN_EAUTHMISSING,
                     "send an API key as Authorization: Bearer <key>");
  /* RFC 9110: the scheme is case-insensitive (Paddle's SDK sends
   * "bearer"); one space, then the key. */
  if (strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0')
    return ctkn__err(err, CTKN_EAUTHMALFORMED,
                     "the Authorization header must be \"Bearer <key>\"");
  rc = find_key(s, r, h + 7, &perms, err);
  if (rc == CTKN_EAUTHMALFORMED)
    return ctkn__err(err, rc, "the API key is not a ctkn API key");
  if (rc == CTKN_EBADKEY)
    return ctkn__err(err, rc, "the API key is not valid (unknown or revoked)");
  if (rc != CTKN_OK)
    return rc;
  /* Any key may read itself, so a client (the dashboard) can learn its
   * permissions, and rotate itself, as Paddle's keys do. */
  bool self = (r->route == R_KEY_GET || r->route == R_KEY_ROTATE) &&
              r->key_id[0] != '\0' && strcmp(r->key_id, r->id) == 0;
  /* GET /events lists the events of each entity whose read permission
   * the key holds (events.h): any one of the three will do, and so for
   * the event types it takes. */
  if ((r->route == R_EVENTS || r->route == R_EVENT_TYPES) &&
      (perms & (CTKN_PERM_TOKEN_READ | CTKN_PERM_SETTING_READ |
                CTKN_PERM_KEY_READ)) != 0)
    self = true;
  r->perms = perms;
  if ((perms & need) != need && !self) {
    /* need is one permission's bit, and its name is the last listed (a
     * write lists its read first). */
    const char *names[CTKN_PERMS_MAX];
    size_t n = ctkn_perms_names(need, names, CTKN_PERMS_MAX);
    return ctkn__err(err, CTKN_EFORBIDDEN,
                     "the API key \"%s\" lacks the permission %s", r->key_name,
                     n > 0 ? names[n - 1] : "?");
  }
  return CTKN_OK;
}

int ctkn__api_load_keys(struct server *s, struct ctkn_err *err)
{
  ctkn_apikeys *ks;
  struct bucket *b;
  int rc;

  if (s->cfg->api_keys == NULL) /* keys on the log only */
    return CTKN_OK;
  if ((rc = ctkn_apikeys_load(s->cfg->api_keys, &ks, err)) != CTKN_OK)
    return rc;
  size_t n = ctkn_apikeys_count(ks);
  if ((b = calloc(n ? n : 1, sizeof(*b))) == NULL) {
    ctkn_apikeys_free(ks);
    return ctkn__err(err, CTKN_ENOMEM, "keys");
  }
  pthread_rwlock_wrlock(&s->keys_lock);
  ctkn_apikeys *old = s->keys;
  struct bucket *oldb = s->buckets;
  s->keys = ks;
  s->buckets = b;
  pthread_rwlock_unlock(&s->keys_lock);
  ctkn_apikeys_free(old);
  free(oldb);

  char fields[32];
  snprintf(fields, sizeof(fields), "\"keys\":%zu", n);
  ctkn__diag_fields(CTKN_DIAG_INFO, "http", "api keys loaded", fields);
  return CTKN_OK;
}
