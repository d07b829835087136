/*
 * settings.c - notification destinations in the store and on the log: the
 * settings projection, the settings topic's follower and one command end
 * to end. The rules they apply are setting.c's.
 *
 * Tables (store.h side tables), all replicated, none in the digest:
 *
 *   destinations       ntfset ID                  -> codec's destination
 *   destination_start  ntfset ID + partition (BE) -> first offset (BE u64)
 *   settings_offsets   partition (BE u32)         -> next offset (BE u64)
 *   settings_log       partition + offset (BE)    -> fate byte + reason
 *
 * A fate is 'a' (applied), 'r' (rejected: the reason follows) or 'q'
 * (quarantined: the reason follows). The settings log is how a command
 * learns whether its event won, as the rejected table is for tokens.
 *
 * Each applied record whose type GET /event-types lists (not api_key.used
 * nor api_key.rotated) is also put, as its webhook envelope, in the
 * store's settings events (store.h) in the transaction that applies it,
 * for GET /events. settings_offsets also holds, under "evix" + partition
 * (BE u32), the next offset those events are filled up to: when it is
 * behind the partition's next offset (a projection from before them, or
 * advanced by a build without them) the follower reads that partition
 * again from there and puts the records the settings log says were
 * applied, applying nothing (backfill()): no manual step.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctkn/codec.h"
#include "ctkn/keylog.h"
#include "ctkn/settings.h"
#include "ctkn/trust.h"
#include "follow_int.h"
#include "internal.h"

#define DEST_KEY_LEN            (CTKN_DEST_ID_LEN + 4)
#define COORD_LEN               12
#define FATE_APPLIED            'a'
#define FATE_REJECTED           'r'
#define FATE_QUARANT            'q'
#define CTKN_SETTINGS_MAX_PARTS CTKN__FOLLOW_MAX_PARTS /* a gate judges */

_Static_assert(CTKN_SETTING_START_MAX == CTKN_STORE_MAX_PARTITIONS,
               "a creation records a start for every partition");

/* ---- the projection -------------------------------------------------------
 */

int ctkn_settings_topic(const char *topic, char *out, size_t outsz,
                        struct ctkn_err *err)
{
  size_t n = strlen(topic), s = strlen(CTKN_SETTINGS_SUFFIX);

  /* Kafka's limit on a topic name is 249 characters. */
  if (n + s > 249 || n + s >= outsz)
    return ctkn__err_field(err, CTKN_EINVAL, "topic",
                           "must be at most %zu characters, so that its "
                           "settings topic (+\"%s\") fits Kafka's 249",
                           249 - s, CTKN_SETTINGS_SUFFIX);
  memcpy(out, topic, n);
  memcpy(out + n, CTKN_SETTINGS_SUFFIX, s + 1);
  return CTKN_OK;
}

int ctkn_settings_get(ctkn_store_txn *txn, const char *id, bool include_deleted,
                      struct ctkn_destination *out, struct ctkn_err *err)
{
  struct ctkn_err derr;
  const void *v;
  size_t vlen;
  int rc;

  if (!ctkn_id_valid("ntfset_", id))
    return ctkn__err(err, CTKN_ENOTFOUND, "no destination %.64s", id);
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_DESTINATIONS, id, CTKN_DEST_ID_LEN, &v,
                         &vlen, err);
  if (rc == CTKN_ENOTFOUND)
    return ctkn__err(err, rc, "no destination %s", id);
  if (rc != CTKN_OK)
    return rc;
  if ((rc = ctkn_destination_decode(v, vlen, out, &derr)) != CTKN_OK)
    return ctkn__err(err, CTKN_ESTORE, "destination %s: %s", id, derr.msg);
  if (out->deleted && !include_deleted)
    return ctkn__err(err, CTKN_ENOTFOUND, "no destination %s (removed)", id);
  return CTKN_OK;
}

struct list_acc {
  struct ctkn__buf d; /* struct ctkn_destination entries */
  int rc;
  struct ctkn_err *err;
};

static int list_one(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
  struct list_acc *a = arg;
  struct ctkn_destination d;
  (void)key;
  (void)klen;

  if ((a->rc = ctkn_destination_decode(val, vlen, &d, a->err)) != CTKN_OK)
    return a->rc = ctkn__err(a->err, CTKN_ESTORE, "destinations: %s",
                             a->err ? a->err->msg : "corrupt");
  if (!d.deleted && ctkn__buf_append(&a->d, &d, sizeof(d)) != CTKN_OK)
    return a->rc = ctkn__err(a->err, CTKN_ENOMEM, "listing destinations");
  return 0;
}

int ctkn_settings_list(ctkn_store_txn *txn, struct ctkn_destination **out,
                       size_t *n, struct ctkn_err *err)
{
  struct list_acc a = {CTKN__BUF_INIT, CTKN_OK, err};
  int rc = ctkn_store_kv_walk(txn, CTKN_TABLE_DESTINATIONS, NULL, 0, 0,
                              list_one, &a, err);

  *out = NULL;
  *n = 0;
  if (rc == CTKN_OK)
    rc = a.rc;
  if (rc != CTKN_OK) {
    ctkn__buf_free(&a.d);
    return rc;
  }
  *n = a.d.len / sizeof(struct ctkn_destination);
  *out = (struct ctkn_destination *)(void *)ctkn__buf_detach(&a.d);
  if (*out == NULL) {
    *n = 0;
    return ctkn__err(err, CTKN_ENOMEM, "listing destinations");
  }
  return CTKN_OK;
}

int64_t ctkn_settings_start(ctkn_store_txn *txn, const char *id,
                            int32_t partition)
{
  uint8_t k[DEST_KEY_LEN];
  const void *v;
  size_t vlen;

  memcpy(k, id, CTKN_DEST_ID_LEN);
  ctkn__put_be32(k + CTKN_DEST_ID_LEN, (uint32_t)partition);
  if (ctkn_store_kv_get(txn, CTKN_TABLE_DEST_START, k, sizeof(k), &v, &vlen,
                        NULL) != CTKN_OK ||
      vlen != 8)
    return 0;
  return (int64_t)ctkn__get_be(v, 8);
}

static int64_t settings_offset(ctkn_store_txn *txn, int32_t partition)
{
  uint8_t k[4];
  const void *v;
  size_t vlen;

  ctkn__put_be32(k, (uint32_t)partition);
  if (ctkn_store_kv_get(txn, CTKN_TABLE_SETTINGS_OFFSETS, k, sizeof(k), &v,
                        &vlen, NULL) != CTKN_OK ||
      vlen != 8)
    return 0;
  return (int64_t)ctkn__get_be(v, 8);
}

/* The settings topic's event types GET /events serves, under the code
 * the store keeps each one's events by (so a code is never reused): the
 * place GET /event-types gives it. */
static const char *const event_codes[] = {
    [3] = "notification_setting.created",
    [4] = "notification_setting.updated",
    [5] = "notification_setting.deleted",
    [6] = "api_key.created",
    [7] = "api_key.updated",
    [8] = "api_key.revoked",
    [9] = "api_key.expiring",
    [10] = "api_key.expired",
};

int ctkn_settings_event_code(const char *name)
{
  for (size_t i = 0; name != NULL && i < CTKN__ARRAY_LEN(event_codes); i++) {
    if (event_codes[i] != NULL && strcmp(event_codes[i], name) == 0)
      return (int)i;
  }
  return -1;
}

#define EVIX "evix" /* + partition: the settings events' next offset */

/* The next offset of partition p the settings events are filled to. */
static int64_t events_next(ctkn_store_txn *txn, int32_t partition)
{
  uint8_t k[8];
  const void *v;
  size_t vlen;

  memcpy(k, EVIX, 4);
  ctkn__put_be32(k + 4, (uint32_t)partition);
  if (ctkn_store_kv_get(txn, CTKN_TABLE_SETTINGS_OFFSETS, k, sizeof(k), &v,
                        &vlen, NULL) != CTKN_OK ||
      vlen != 8)
    return 0;
  return (int64_t)ctkn__get_be(v, 8);
}

#define DSAT "dsat" /* + ntfset ID: past its created record (BE u64) */

static void dsat_key(uint8_t k[4 + CTKN_DEST_ID_LEN], const char *id)
{
  memcpy(k, DSAT, 4);
  memcpy(k + 4, id, CTKN_DEST_ID_LEN);
}

int64_t ctkn_settings_akey_start(ctkn_store_txn *txn, const char *id,
                                 int32_t sp)
{
  uint8_t k[4 + CTKN_DEST_ID_LEN];
  const void *v;
  size_t vlen;

  dsat_key(k, id);
  if (sp == 0 &&
      ctkn_store_kv_get(txn, CTKN_TABLE_SETTINGS_OFFSETS, k, sizeof(k), &v,
                        &vlen, NULL) == CTKN_OK &&
      vlen == 8)
    return (int64_t)ctkn__get_be(v, 8);
  return events_next(txn, sp);
}

/* m passed: the settings events are filled past it. Records reach the
 * projection in log order from where the events were filled to (the
 * follower seeks there), so an offset skipped on the way holds none. */
static int put_events_next(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                           struct ctkn_err *err)
{
  uint8_t k[8], v[8];

  if (events_next(txn, m->partition) > m->offset)
    return CTKN_OK;
  memcpy(k, EVIX, 4);
  ctkn__put_be32(k + 4, (uint32_t)m->partition);
  ctkn__put_be64(v, (uint64_t)(m->offset + 1));
  return ctkn_store_kv_put(txn, CTKN_TABLE_SETTINGS_OFFSETS, k, sizeof(k), v,
                           sizeof(v), err);
}

#define EVAT         "evat" /* + partition + offset: an api_key.* event, log order */
#define EVAT_KEY_LEN 16
#define EVAT_HEAD    (1 + 8 + 8 + CTKN_EVT_ID_LEN + CTKN_AKEY_ID_LEN)

static void evat_key(uint8_t k[EVAT_KEY_LEN], int32_t p, int64_t o)
{
  memcpy(k, EVAT, 4);
  ctkn__put_be32(k + 4, (uint32_t)p);
  ctkn__put_be64(k + 8, (uint64_t)o);
}

/* ev, applied at m, in the api_key.* events in log order (value: type,
 * occurred_at, version, event ID, key ID, envelope). */
static int put_akey_at(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                       const struct ctkn_akey_event *ev, int code,
                       const char *json, struct ctkn_err *err)
{
  uint8_t k[EVAT_KEY_LEN];
  size_t jlen = strlen(json);
  uint8_t *v = malloc(EVAT_HEAD + jlen);
  int rc;

  if (v == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "settings: an event's place");
  evat_key(k, m->partition, m->offset);
  v[0] = (uint8_t)code;
  ctkn__put_be64(v + 1, (uint64_t)ev->occurred_at);
  ctkn__put_be64(v + 9, ev->version);
  memcpy(v + 17, ev->event_id, CTKN_EVT_ID_LEN);
  memcpy(v + 17 + CTKN_EVT_ID_LEN, ev->data.id, CTKN_AKEY_ID_LEN);
  memcpy(v + EVAT_HEAD, json, jlen);
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_SETTINGS_OFFSETS, k, sizeof(k), v,
                         EVAT_HEAD + jlen, err);
  free(v);
  return rc;
}

struct evat_find {
  struct ctkn_settings_akey_event *out;
  bool found;
};

static int evat_one(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
  struct evat_find *f = arg;
  struct ctkn_settings_akey_event *o = f->out;
  const uint8_t *k = key, *v = val;

  if (klen != EVAT_KEY_LEN || vlen < EVAT_HEAD)
    return 0; /* not one of ours: look on */
  o->partition = (int32_t)ctkn__get_be(k + 4, 4);
  o->offset = (int64_t)ctkn__get_be(k + 8, 8);
  o->type = v[0];
  o->occurred_at = (int64_t)ctkn__get_be(v + 1, 8);
  o->version = ctkn__get_be(v + 9, 8);
  memcpy(o->event_id, v + 17, CTKN_EVT_ID_LEN);
  o->event_id[CTKN_EVT_ID_LEN] = '\0';
  memcpy(o->key_id, v + 17 + CTKN_EVT_ID_LEN, CTKN_AKEY_ID_LEN);
  o->key_id[CTKN_AKEY_ID_LEN] = '\0';
  o->json = (const char *)v + EVAT_HEAD;
  o->json_len = vlen - EVAT_HEAD;
  f->found = true;
  return 1;
}

int ctkn_settings_akey_event_at(ctkn_store_txn *txn, int32_t partition,
                                int64_t offset, bool exact,
                                struct ctkn_settings_akey_event *out,
                                struct ctkn_err *err)
{
  uint8_t k[EVAT_KEY_LEN];
  struct evat_find f = {out, false};
  int rc;

  evat_key(k, partition, offset < 0 ? 0 : offset);
  rc = ctkn_store_kv_walk(txn, CTKN_TABLE_SETTINGS_OFFSETS, k, sizeof(k), 8,
                          evat_one, &f, err);
  if (rc < 0)
    return rc;
  if (!f.found || (exact && out->offset != offset))
    return CTKN_ENOTFOUND;
  return CTKN_OK;
}

/* Put json (NULL: it could not be made), the envelope of the event
 * event_id (borrowed for the call) at occurred_at, in the settings events
 * under e's place and code. */
static int put_envelope(ctkn_store_txn *txn, struct ctkn_store_setting_event *e,
                        const char *event_id, int64_t occurred_at,
                        const char *json, struct ctkn_err *err)
{
  if (json == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "settings: an event's JSON");
  e->occurred_at = occurred_at;
  e->event_id = event_id;
  e->json = json;
  e->len = strlen(json);
  return ctkn_store_put_setting_event(txn, e, err);
}

/* Put the envelope of m, an applied record, in the settings events when
 * its type is one GET /events serves. A record that does not decode (it
 * was applied, so only a foreign writer's) is left out. */
static int put_event(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                     struct ctkn_err *err)
{
  struct ctkn_store_setting_event e = {.partition = m->partition,
                                       .offset = m->offset};
  struct ctkn_err derr;
  char *json = NULL;
  int rc = CTKN_OK;

  if (ctkn_keylog_is_akey(m->event_type)) {
    struct ctkn_akey_event *ev = malloc(sizeof(*ev));
    if (ev == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "settings: event buffer");
    if (ctkn_akey_event_decode(m->value, m->value_len, ev, &derr) == CTKN_OK &&
        (e.code = ctkn_settings_event_code(ctkn_akey_type_str(ev->type))) >=
            0) {
      json = ctkn_json_akey_event(ev);
      rc = put_envelope(txn, &e, ev->event_id, ev->occurred_at, json, err);
      if (rc == CTKN_OK)
        rc = put_akey_at(txn, m, ev, e.code, json, err);
    }
    free(ev);
  } else {
    struct ctkn_setting_event *ev = malloc(sizeof(*ev));
    if (ev == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "settings: event buffer");
    if (ctkn_setting_event_decode(m->value, m->value_len, ev, &derr) ==
            CTKN_OK &&
        (e.code = ctkn_settings_event_code(ctkn_setting_type_str(ev->type))) >=
            0) {
      json = ctkn_json_setting_event(ev);
      rc = put_envelope(txn, &e, ev->event_id, ev->occurred_at, json, err);
    }
    free(ev);
  }
  free(json);
  /* An event ID that is not one (a foreign writer's) is left out too. */
  return rc == CTKN_EINVAL ? CTKN_OK : rc;
}

/* m was projected: its event in the settings events when the settings log
 * says it was applied. */
static int put_event_if_applied(ctkn_store_txn *txn,
                                const struct ctkn_log_msg *m,
                                struct ctkn_err *err);

static int put_fate(ctkn_store_txn *txn, int32_t p, int64_t o, char fate,
                    const char *reason, struct ctkn_err *err)
{
  uint8_t k[COORD_LEN];
  char v[300];
  size_t n = 1;

  ctkn__put_be32(k, (uint32_t)p);
  ctkn__put_be64(k + 4, (uint64_t)o);
  v[0] = fate;
  if (reason != NULL)
    n += ctkn__strlcpy(v + 1, reason, sizeof(v) - 1) >= sizeof(v) - 1
             ? sizeof(v) - 2
             : strlen(reason);
  return ctkn_store_kv_put(txn, CTKN_TABLE_SETTINGS_LOG, k, sizeof(k), v, n,
                           err);
}

int ctkn_settings_fate(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                       bool *applied, char *reason, size_t reasonsz,
                       struct ctkn_err *err)
{
  uint8_t k[COORD_LEN];
  const char *v;
  size_t vlen;
  int rc;

  ctkn__put_be32(k, (uint32_t)partition);
  ctkn__put_be64(k + 4, (uint64_t)offset);
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_SETTINGS_LOG, k, sizeof(k),
                         (const void **)&v, &vlen, err);
  if (rc != CTKN_OK)
    return rc;
  if (vlen < 1)
    return ctkn__err(err, CTKN_ESTORE, "settings_log: empty fate");
  *applied = v[0] == FATE_APPLIED;
  if (reasonsz > 0) {
    size_t n = vlen - 1 < reasonsz - 1 ? vlen - 1 : reasonsz - 1;
    memcpy(reason, v + 1, n);
    reason[n] = '\0';
  }
  return CTKN_OK;
}

static int put_event_if_applied(ctkn_store_txn *txn,
                                const struct ctkn_log_msg *m,
                                struct ctkn_err *err)
{
  bool applied = false;
  int rc =
      ctkn_settings_fate(txn, m->partition, m->offset, &applied, NULL, 0, NULL);

  if (rc == CTKN_ENOTFOUND || (rc == CTKN_OK && !applied))
    return CTKN_OK; /* a trust record, or one that did not apply */
  if (rc != CTKN_OK)
    return ctkn__err(err, rc, "settings_log at %" PRId32 "/%" PRId64,
                     m->partition, m->offset);
  return put_event(txn, m, err);
}

/* Apply one decoded, checked event. */
static int apply_one(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                     const struct ctkn_setting_event *ev, struct ctkn_err *err)
{
  struct ctkn_destination cur, next;
  char reason[256];
  uint8_t *buf;
  size_t len;
  int rc;

  rc = ctkn_settings_get(txn, ev->data.id, true, &cur, err);
  if (rc != CTKN_OK && rc != CTKN_ENOTFOUND)
    return rc;
  if (ctkn_settings_apply(rc == CTKN_OK ? &cur : NULL, ev, &next, reason,
                          sizeof(reason)) == CTKN_REJECTED) {
    ctkn__diag(CTKN_DIAG_WARN, "settings",
               "settings record at %" PRId32 "/%" PRId64 " rejected: %s",
               m->partition, m->offset, reason);
    return put_fate(txn, m->partition, m->offset, FATE_REJECTED, reason, err);
  }
  if ((rc = ctkn_destination_encode(&next, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_DESTINATIONS, next.id,
                         CTKN_DEST_ID_LEN, buf, len, err);
  free(buf);
  if (rc == CTKN_OK && ev->type == CTKN_SETTING_CREATED && m->partition == 0) {
    uint8_t k[4 + CTKN_DEST_ID_LEN], v[8];
    dsat_key(k, next.id);
    ctkn__put_be64(v, (uint64_t)(m->offset + 1));
    rc = ctkn_store_kv_put(txn, CTKN_TABLE_SETTINGS_OFFSETS, k, sizeof(k), v,
                           sizeof(v), err);
  }
  for (int32_t p = 0;
       rc == CTKN_OK && ev->type == CTKN_SETTING_CREATED && p < ev->nstart;
       p++) {
    uint8_t k[DEST_KEY_LEN], v[8];
    memcpy(k, next.id, CTKN_DEST_ID_LEN);
    ctkn__put_be32(k + CTKN_DEST_ID_LEN, (uint32_t)p);
    ctkn__put_be64(v, (uint64_t)ev->start[p]);
    rc = ctkn_store_kv_put(txn, CTKN_TABLE_DEST_START, k, sizeof(k), v,
                           sizeof(v), err);
  }
  if (rc != CTKN_OK)
    return rc;
  return put_fate(txn, m->partition, m->offset, FATE_APPLIED, NULL, err);
}

/* An API key's record (keylog.h), its fate in the settings log. */
static int project_akey(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                        struct ctkn_err *err)
{
  static const char fates[] = {FATE_APPLIED, FATE_REJECTED, FATE_QUARANT};
  enum ctkn_keylog_fate fate;
  char reason[256];
  int rc = ctkn_keylog_apply(txn, m, &fate, reason, sizeof(reason), err);

  if (rc != CTKN_OK)
    return rc;
  if (fate != CTKN_KEYLOG_APPLIED)
    ctkn__diag(CTKN_DIAG_WARN, "settings",
               "API-key record at %" PRId32 "/%" PRId64 " %s: %s", m->partition,
               m->offset,
               fate == CTKN_KEYLOG_REJECTED ? "rejected" : "quarantined",
               reason);
  return put_fate(txn, m->partition, m->offset, fates[fate],
                  fate == CTKN_KEYLOG_APPLIED ? NULL : reason, err);
}

/* m's partition's next offset: past m. */
static int put_next(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                    struct ctkn_err *err)
{
  uint8_t k[4], v[8];

  ctkn__put_be32(k, (uint32_t)m->partition);
  ctkn__put_be64(v, (uint64_t)(m->offset + 1));
  int rc = ctkn_store_kv_put(txn, CTKN_TABLE_SETTINGS_OFFSETS, k, sizeof(k), v,
                             sizeof(v), err);
  return rc == CTKN_OK ? put_events_next(txn, m, err) : rc;
}

/* A record below its partition's next offset (read again): when the
 * settings events lack it, its event if the settings log says it was
 * applied, and the settings events past it. Nothing is applied. */
static int backfill(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                    struct ctkn_err *err)
{
  int rc;

  if (events_next(txn, m->partition) > m->offset)
    return CTKN_OK; /* filled already */
  if ((rc = put_event_if_applied(txn, m, err)) != CTKN_OK)
    return rc;
  return put_events_next(txn, m, err);
}

/* Project one record of the settings topic: quarantined when it does not
 * decode or is invalid, else applied or rejected; then its partition's
 * next offset. ev is scratch space. */
static int project_one(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                       struct ctkn_setting_event *ev, struct ctkn_err *err)
{
  struct ctkn_err derr;
  int rc;

  if (strncmp(m->event_type, "ctkn.", 5) == 0) {
    /* A trust record (the keyring: trust.h reads it), not a setting. */
    rc = CTKN_OK;
  } else if (ctkn_keylog_is_akey(m->event_type)) {
    rc = project_akey(txn, m, err);
  } else if (ctkn_setting_event_decode(m->value, m->value_len, ev, &derr) !=
                 CTKN_OK ||
             ctkn_setting_event_check(ev, &derr) != CTKN_OK) {
    char why[sizeof(derr.field) + sizeof(derr.msg) + 2];
    snprintf(why, sizeof(why), "%s%s%s", derr.field, derr.field[0] ? ": " : "",
             derr.msg);
    ctkn__diag(CTKN_DIAG_WARN, "settings",
               "settings record at %" PRId32 "/%" PRId64 " quarantined: %s",
               m->partition, m->offset, why);
    rc = put_fate(txn, m->partition, m->offset, FATE_QUARANT, why, err);
  } else {
    rc = apply_one(txn, m, ev, err);
  }
  if (rc == CTKN_OK && strncmp(m->event_type, "ctkn.", 5) != 0)
    rc = put_event_if_applied(txn, m, err);
  if (rc != CTKN_OK)
    return rc;
  return put_next(txn, m, err);
}

/* ---- trust: the settings topic's records through a gate (trust.h) ----- */

/* What the gate made of each record of a batch. */
enum { V_OUT, V_HELD, V_KEYRING, V_APPLY, V_CHECKPOINT, V_QUARANTINE };

#define SGATE_PREFIX "sgate" /* + partition: the gate's state (trust.h) */

static int sgate_save(struct ctkn__judged *j, ctkn_store_txn *txn,
                      struct ctkn_err *err)
{
  int rc = CTKN_OK;

  for (int32_t p = 0; p < CTKN_SETTINGS_MAX_PARTS && rc == CTKN_OK; p++)
    if (j->next[p] >= 0)
      rc = ctkn_gate_save_stored(j->gate, txn, SGATE_PREFIX, p, err);
  return rc;
}

/* Feed the batch to the gate, each partition from its stored offset on
 * and without gaps (records fetched before a seek back come again), and
 * take its verdicts. Keyring records are root-signed, read by trust.h
 * from the topic: they pass in their place without the gate. */
static int judge_settings(struct ctkn__judged *j, ctkn_store_txn *txn,
                          const struct ctkn_log_msg *msgs, size_t n,
                          struct ctkn_err *err)
{
  struct ctkn_gate_out o;
  int rc;

  for (size_t i = 0; i < n; i++) {
    const struct ctkn_log_msg *m = &msgs[i];
    int32_t p = m->partition;
    j->v[i] = V_OUT;
    if (p < 0 || p >= CTKN_SETTINGS_MAX_PARTS)
      continue;
    if (j->next[p] < 0) {
      j->next[p] = settings_offset(txn, p);
      if ((rc = ctkn_gate_load_stored(j->gate, txn, SGATE_PREFIX, p, err)) !=
          CTKN_OK)
        return rc;
    }
    if (m->offset != j->next[p])
      continue; /* below the stored offset, or past a gap */
    j->next[p]++;
    j->v[i] = V_HELD;
    if (strcmp(m->event_type, CTKN_TYPE_KEYRING) == 0 ||
        strcmp(m->event_type, CTKN_TYPE_ADOPTION) == 0)
      j->v[i] = V_KEYRING; /* root-signed: trust.h reads them */
    else if ((rc = ctkn_gate_feed(j->gate, m, i, err)) != CTKN_OK)
      return rc;
  }
  for (int32_t p = 0; p < CTKN_SETTINGS_MAX_PARTS; p++)
    while (j->next[p] >= 0 && ctkn_gate_next(j->gate, p, &o)) {
      j->v[o.tag] = o.verdict == CTKN_GATE_APPLY        ? V_APPLY
                    : o.verdict == CTKN_GATE_CHECKPOINT ? V_CHECKPOINT
                                                        : V_QUARANTINE;
      memcpy(j->why[o.tag], o.reason, sizeof(j->why[o.tag]));
    }
  return CTKN_OK;
}

/* Record i of a judged batch: applied, quarantined, or passed over; false
 * when it is held back (its partition stops there). */
static int project_judged(struct ctkn__judged *j, ctkn_store_txn *txn,
                          const struct ctkn_log_msg *m, size_t i,
                          struct ctkn_setting_event *ev, bool *held,
                          struct ctkn_err *err)
{
  int32_t p = m->partition;

  *held = false;
  if (j->held[p] >= 0 || j->v[i] == V_HELD) {
    if (j->held[p] < 0)
      j->held[p] = m->offset;
    *held = true;
    return CTKN_OK;
  }
  if (j->v[i] == V_CHECKPOINT || j->v[i] == V_KEYRING)
    return put_next(txn, m, err);
  if (j->v[i] == V_QUARANTINE) {
    int rc = put_fate(txn, p, m->offset, FATE_QUARANT, j->why[i], err);
    ctkn__diag(CTKN_DIAG_WARN, "trust",
               "settings record at %" PRId32 "/%" PRId64 " quarantined: %s", p,
               m->offset, j->why[i]);
    return rc != CTKN_OK ? rc : put_next(txn, m, err);
  }
  return project_one(txn, m, ev, err);
}

static int project(ctkn_store *st, const struct ctkn_log_msg *msgs, size_t n,
                   struct ctkn__judged *j, struct ctkn_err *err)
{
  struct ctkn_setting_event *ev = NULL;
  ctkn_store_txn *txn = NULL;
  struct ctkn_err cerr;
  int rc, crc;

  if (n == 0)
    return CTKN_OK;
  if ((ev = malloc(sizeof(*ev))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "settings: event buffer");
  if ((rc = ctkn_store_begin(st, true, &txn, err)) != CTKN_OK ||
      (j != NULL && (rc = judge_settings(j, txn, msgs, n, err)) != CTKN_OK))
    goto out;
  for (size_t i = 0; i < n; i++) {
    const struct ctkn_log_msg *m = &msgs[i];
    bool held;
    if (m->partition >= 0 && m->partition < CTKN_STORE_MAX_PARTITIONS &&
        m->offset < settings_offset(txn, m->partition)) {
      /* Read again for the settings events only; the gate passed it by. */
      if ((rc = backfill(txn, m, err)) != CTKN_OK)
        goto out;
      continue;
    }
    if (j != NULL) {
      if (j->v[i] == V_OUT)
        continue;
      if (j->v[i] == V_APPLY && m->schema_version > CTKN_SCHEMA_VERSION)
        goto newer;
      if ((rc = project_judged(j, txn, m, i, ev, &held, err)) != CTKN_OK)
        goto out;
      continue;
    }
    if (m->partition < 0 || m->partition >= CTKN_STORE_MAX_PARTITIONS ||
        m->offset < settings_offset(txn, m->partition))
      continue;
    if (m->schema_version > CTKN_SCHEMA_VERSION) {
    newer:
      /* Keys on the log fail closed behind it (keylog.h): it may be a
       * revocation this build cannot read. */
      if ((rc = ctkn_keylog_pause(txn, m->partition, m->offset, err)) !=
          CTKN_OK)
        goto out;
      rc = ctkn__err(err, CTKN_EFORMAT,
                     "settings record at %" PRId32 "/%" PRId64
                     " has schema version %d, newer than this build's %d; "
                     "upgrade ctkn",
                     m->partition, m->offset, m->schema_version,
                     CTKN_SCHEMA_VERSION);
      break; /* commit what came before; stop here */
    }
    if ((rc = project_one(txn, m, ev, err)) != CTKN_OK)
      goto out;
  }
  if (j != NULL && (crc = sgate_save(j, txn, &cerr)) != CTKN_OK) {
    if (err != NULL)
      *err = cerr;
    rc = crc;
    goto out;
  }
  crc = ctkn_store_commit(txn, &cerr);
  txn = NULL;
  if (crc != CTKN_OK) {
    if (err != NULL)
      *err = cerr;
    rc = crc;
  }
out:
  ctkn_store_abort(txn);
  free(ev);
  return rc;
}

int ctkn_settings_project(ctkn_store *st, const struct ctkn_log_msg *msgs,
                          size_t n, struct ctkn_err *err)
{
  return project(st, msgs, n, NULL, err);
}

/* ---- following the settings topic (follow_int.h) ----------------------- */

/* Where partition p is read from: the settings events' next offset when
 * they are behind the projection (backfill()). */
static int64_t follow_start(ctkn_store_txn *txn, int32_t p)
{
  int64_t e = events_next(txn, p), next = settings_offset(txn, p);

  if (e >= next)
    return next;
  ctkn__diag(CTKN_DIAG_INFO, "settings",
             "settings events: filling partition %" PRId32
             " from offset %" PRId64 " to %" PRId64 " (once)",
             p, e, next);
  return e;
}

static const struct ctkn__follow_side side = {
    .kind = "settings",
    .diag = "settings",
    .batch = 256,
    .max_parts = CTKN_STORE_MAX_PARTITIONS,
    .keyring_verdict = V_KEYRING,
    .topic = ctkn_settings_topic,
    .offset = settings_offset,
    .start = follow_start,
    .project = project,
};

#define FOLLOWER(f) ((ctkn__follower *)(void *)(f))

int ctkn_settings_follower_open(ctkn_settings_follower **out, ctkn_store *st,
                                const struct ctkn_log_config *cfg,
                                struct ctkn_err *err)
{
  ctkn__follower *f;
  int rc = ctkn__follow_open(&f, &side, st, cfg, err);

  *out = (ctkn_settings_follower *)(void *)f;
  return rc;
}

void ctkn_settings_follower_close(ctkn_settings_follower *f)
{
  ctkn__follow_close(FOLLOWER(f));
}

int ctkn_settings_follower_set_trust(ctkn_settings_follower *f,
                                     const struct ctkn_keyring *kr,
                                     int (*refresh)(void *arg,
                                                    struct ctkn_err *err),
                                     void *arg, struct ctkn_err *err)
{
  return ctkn__follow_set_trust(FOLLOWER(f), kr, refresh, arg, err);
}

ctkn_consumer *ctkn_settings_follower_consumer(ctkn_settings_follower *f)
{
  return ctkn__follow_consumer(FOLLOWER(f));
}

int ctkn_settings_follower_poll(ctkn_settings_follower *f, int timeout_ms,
                                size_t *applied, struct ctkn_err *err)
{
  return ctkn__follow_poll(FOLLOWER(f), timeout_ms, applied, err);
}

int ctkn_settings_follower_catch_up(ctkn_settings_follower *f,
                                    struct ctkn_err *err)
{
  return ctkn__follow_catch_up(FOLLOWER(f), err);
}

/* ---- one command end to end ------------------------------------------- */

/* The event topic's end offsets: where a new destination starts. */
static int event_topic_ends(const struct ctkn_log_config *cfg, int64_t **ends,
                            int32_t *n, struct ctkn_err *err)
{
  ctkn_consumer *c;
  int rc;

  *ends = NULL;
  if ((rc = ctkn_consumer_open(&c, cfg, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_consumer_partitions(c, n, err)) == CTKN_OK) {
    *ends = calloc((size_t)(*n > 0 ? *n : 1), sizeof(**ends));
    if (*ends == NULL)
      rc = ctkn__err(err, CTKN_ENOMEM, "end offsets");
    else if (*n > CTKN_STORE_MAX_PARTITIONS)
      rc = ctkn__err(err, CTKN_EKAFKA, "too many partitions");
    else
      rc = ctkn_consumer_ends(c, *n, *ends, err);
  }
  ctkn_consumer_close(c);
  if (rc != CTKN_OK) {
    free(*ends);
    *ends = NULL;
  }
  return rc;
}

/* The current state of cmd's destination (an add: the event topic's
 * ends instead), and the plan against it: CTKN_PLAN_APPEND with *ev,
 * CTKN_PLAN_NOOP with out->dest, or an error. */
static int plan_command(ctkn_store *st, const struct ctkn_log_config *cfg,
                        const uint8_t *key, const struct ctkn_dest_command *cmd,
                        struct ctkn_setting_event *ev,
                        struct ctkn_dest_outcome *out, struct ctkn_err *err)
{
  struct ctkn_destination cur;
  int64_t *ends = NULL;
  int32_t nends = 0;
  ctkn_store_txn *txn;
  bool have = false;
  int rc;

  if (cmd->kind == CTKN_DEST_ADD) {
    if ((rc = event_topic_ends(cfg, &ends, &nends, err)) != CTKN_OK)
      return rc;
  } else {
    if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
      return rc;
    rc = ctkn_settings_get(txn, cmd->id, true, &cur, err);
    ctkn_store_abort(txn);
    if (rc != CTKN_OK && rc != CTKN_ENOTFOUND)
      return rc;
    have = rc == CTKN_OK;
  }
  rc = ctkn_settings_plan(have ? &cur : NULL, cmd, key, ends, nends,
                          ctkn_now_us(), ev, out->secret, err);
  free(ends);
  if (rc == CTKN_PLAN_NOOP)
    out->dest = cur;
  return rc;
}

/* CTKN_EMAXACTIVE when ev makes a destination active (an add of an
 * active one, or a resume) and the policy's limit of active ones is
 * reached. The count is this replica's projection, caught up just before:
 * two creators racing may pass it together (the settings log does not
 * enforce it). */
static int active_limit(ctkn_store *st, const struct ctkn_dest_policy *p,
                        const struct ctkn_setting_event *ev,
                        struct ctkn_err *err)
{
  int max =
      p != NULL && p->max_active > 0 ? p->max_active : CTKN_DEST_MAX_ACTIVE;
  struct ctkn_destination *ds = NULL;
  size_t n = 0, others = 0;
  bool was_active = false;
  ctkn_store_txn *txn;
  int rc;

  if (!ev->data.active)
    return CTKN_OK;
  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_settings_list(txn, &ds, &n, err);
  ctkn_store_abort(txn);
  for (size_t i = 0; rc == CTKN_OK && i < n; i++) {
    if (strcmp(ds[i].id, ev->data.id) == 0)
      was_active = ds[i].active;
    else if (ds[i].active)
      others++;
  }
  free(ds);
  if (rc == CTKN_OK && !was_active && others >= (size_t)max)
    rc = ctkn__err(err, CTKN_EMAXACTIVE,
                   "at most %d notification settings may be active at once "
                   "and %zu are: pause or remove one first",
                   max, others);
  return rc;
}

/* Append ev to the settings topic, catch f up past it, and read its fate:
 * CTKN_ECONFLICT when the projection rejected it. */
/* The command's record as a closed writer instance's one batch: the
 * record and its closing checkpoint (trust.h). *part and *off say where
 * the record landed. */
static int send_signed(ctkn_producer *prod, const struct ctkn_keyring *kr,
                       const ctkn_seckey *key, int32_t nparts,
                       const struct ctkn_log_record *rec, int32_t *part,
                       int64_t *off, struct ctkn_err *err)
{
  struct ctkn_log_record *out;
  ctkn_signer *sg = NULL;
  size_t nout;
  int rc;

  if ((rc = ctkn_signer_open(&sg, key, kr->log_id, nparts, err)) == CTKN_OK &&
      (rc = ctkn_signer_prepare(sg, rec, 1, CTKN_SIGN_CLOSING, ctkn_now_us(),
                                &out, &nout, err)) == CTKN_OK &&
      (rc = ctkn_producer_send_batch(prod, out, nout, err)) == CTKN_OK) {
    *part = out[0].out_partition;
    *off = out[0].out_offset;
  }
  ctkn_signer_close(sg);
  return rc;
}

/* Append rec (its partition chosen here, by its key) to the settings
 * topic, catch f up past it, and read its fate: CTKN_ECONFLICT when the
 * projection rejected it. */
static int append_record(ctkn_store *st, const struct ctkn_log_config *cfg,
                         ctkn_settings_follower *f,
                         const struct ctkn_keyring *kr, const ctkn_seckey *key,
                         struct ctkn_log_record *rec, struct ctkn_err *err)
{
  struct ctkn_log_config scfg = *cfg;
  ctkn_producer *prod = NULL;
  ctkn_store_txn *txn;
  int32_t part;
  int64_t off;
  bool applied;
  char reason[256];
  int rc;

  rec->partition = ctkn_log_partition_for(rec->key, rec->klen,
                                          ctkn__follow_partitions(FOLLOWER(f)));
  if ((rc = ctkn_settings_topic(cfg->topic, scfg.topic, sizeof(scfg.topic),
                                err)) == CTKN_OK &&
      (rc = ctkn_producer_open(&prod, &scfg, err)) == CTKN_OK) {
    if (key != NULL)
      rc = send_signed(prod, kr, key, ctkn__follow_partitions(FOLLOWER(f)), rec,
                       &part, &off, err);
    else
      rc = ctkn_producer_send(prod, rec->partition, rec->key, rec->klen,
                              rec->value, rec->vlen, rec->timestamp_ms,
                              rec->event_type, rec->schema_version, &part, &off,
                              err);
  }
  ctkn_producer_close(prod);
  if (rc != CTKN_OK ||
      (rc = ctkn_settings_follower_catch_up(f, err)) != CTKN_OK ||
      (rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc =
      ctkn_settings_fate(txn, part, off, &applied, reason, sizeof(reason), err);
  ctkn_store_abort(txn);
  if (rc == CTKN_OK && !applied && key != NULL &&
      strcmp(reason, CTKN_GATE_UNPROVEN) == 0)
    rc = ctkn__err(err, CTKN_EKAFKA,
                   "the record of %.*s was appended but quarantined (%s)",
                   (int)rec->klen, (const char *)rec->key, reason);
  else if (rc == CTKN_OK && !applied)
    rc = ctkn__err(err, CTKN_ECONFLICT,
                   "a concurrent change to %.*s won (%s); re-read it and "
                   "retry",
                   (int)rec->klen, (const char *)rec->key, reason);
  return rc;
}

static int append(ctkn_store *st, const struct ctkn_log_config *cfg,
                  ctkn_settings_follower *f, const struct ctkn_keyring *kr,
                  const ctkn_seckey *key, const struct ctkn_setting_event *ev,
                  struct ctkn_err *err)
{
  uint8_t *buf = NULL;
  size_t len;
  int rc;

  if ((rc = ctkn_setting_event_encode(ev, &buf, &len, err)) != CTKN_OK)
    return rc;
  struct ctkn_log_record rec = {.key = ev->data.id,
                                .klen = CTKN_DEST_ID_LEN,
                                .value = buf,
                                .vlen = len,
                                .timestamp_ms = ev->occurred_at / 1000,
                                .event_type = ctkn_setting_type_str(ev->type),
                                .schema_version = CTKN_SCHEMA_WRITTEN};
  rc = append_record(st, cfg, f, kr, key, &rec, err);
  free(buf);
  return rc;
}

/* With a trust root: the keyring, read from the settings topic, judges the
 * follower's records, and a writer key must be an active one allowed
 * scope's records. */
static int trust_for(ctkn_settings_follower *f,
                     const struct ctkn_log_config *cfg,
                     const uint8_t *trust_root, const ctkn_seckey *writer_key,
                     const char *scope, struct ctkn_keyring *kr,
                     struct ctkn_err *err)
{
  const struct ctkn_writer_key *wk;
  struct ctkn_log_config scfg = *cfg;
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  char id[CTKN_KEY_ID_BUF];
  ctkn_pubkey *root = NULL;
  int rc;

  if (trust_root == NULL)
    return CTKN_OK;
  if ((rc = ctkn_settings_topic(cfg->topic, scfg.topic, sizeof(scfg.topic),
                                err)) != CTKN_OK ||
      (rc = ctkn_pubkey_new(&root, trust_root, err)) != CTKN_OK ||
      (rc = ctkn_trust_keyring_fetch(&scfg, root, kr, NULL, NULL, err)) !=
          CTKN_OK ||
      (rc = ctkn_settings_follower_set_trust(f, kr, NULL, NULL, err)) !=
          CTKN_OK) {
    ctkn_pubkey_free(root);
    return rc;
  }
  ctkn_pubkey_free(root);
  if (writer_key == NULL) /* a reader */
    return CTKN_OK;
  ctkn_seckey_public(writer_key, pub);
  ctkn_key_id(pub, id);
  if ((wk = ctkn_keyring_find(kr, id)) == NULL || wk->revoked ||
      !ctkn_writer_key_may(wk, scope))
    return ctkn__err_field(err, CTKN_EINVAL, "writer_key",
                           "writer key %s is not an active key allowed %s "
                           "records in keyring version %" PRIu64
                           " (ctkn trust key add)",
                           id, scope, kr->version);
  return CTKN_OK;
}

/* With a trust root, a policy's trust. */
/* No unsigned appends on a trusted log: every reader would quarantine
 * them. */
static int may_append(const struct ctkn_log_config *cfg,
                      const uint8_t *trust_root, const ctkn_seckey *writer_key,
                      struct ctkn_err *err)
{
  if (trust_root == NULL || writer_key != NULL)
    return CTKN_OK;
  return ctkn__err(err, CTKN_EFORBIDDEN,
                   "read-only: this process has no writer key (--writer-key) "
                   "and appends nothing to %s_settings; send the change to one "
                   "that has",
                   cfg->topic);
}

static int command_trust(ctkn_settings_follower *f,
                         const struct ctkn_log_config *cfg,
                         const struct ctkn_dest_policy *policy,
                         struct ctkn_keyring *kr, struct ctkn_err *err)
{
  int rc;

  if (policy == NULL)
    return CTKN_OK;
  if ((rc = may_append(cfg, policy->trust_root, policy->writer_key, err)) !=
      CTKN_OK)
    return rc;
  return trust_for(f, cfg, policy->trust_root, policy->writer_key,
                   "notification_setting.created", kr, err);
}

int ctkn_settings_execute(ctkn_store *st, const struct ctkn_log_config *cfg,
                          const uint8_t *key,
                          const struct ctkn_dest_command *cmd,
                          const struct ctkn_dest_policy *policy,
                          struct ctkn_dest_outcome *out, struct ctkn_err *err)
{
  struct ctkn_setting_event *ev = NULL;
  ctkn_settings_follower *f = NULL;
  struct ctkn_keyring kr;
  int rc;

  memset(out, 0, sizeof(*out));
  ctkn_keyring_init(&kr);
  if ((rc = ctkn_dest_command_check(cmd, err)) != CTKN_OK)
    return rc;
  if (cmd->set_url &&
      (rc = ctkn_dest_url_check(cmd->url, policy, err)) != CTKN_OK)
    return rc;
  if (cmd->kind == CTKN_DEST_ADD && key == NULL)
    return ctkn__err(err, CTKN_EUSAGE,
                     "adding a destination needs the deployment key "
                     "(--secret-key-file or CTKN_SECRET_KEY_FILE)");
  if ((ev = malloc(sizeof(*ev))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "settings command");
  /* A stale projection must never cause a spurious not_found. */
  if ((rc = ctkn_settings_follower_open(&f, st, cfg, err)) == CTKN_OK &&
      (rc = command_trust(f, cfg, policy, &kr, err)) == CTKN_OK &&
      (rc = ctkn_settings_follower_catch_up(f, err)) == CTKN_OK &&
      (rc = plan_command(st, cfg, key, cmd, ev, out, err)) ==
          CTKN_PLAN_APPEND &&
      (rc = active_limit(st, policy, ev, err)) == CTKN_OK &&
      (rc = append(st, cfg, f, &kr,
                   policy != NULL && kr.version > 0 ? policy->writer_key : NULL,
                   ev, err)) == CTKN_OK) {
    out->dest = ev->data;
    out->appended = true;
  }
  if (rc == CTKN_PLAN_NOOP)
    rc = CTKN_OK;
  if (rc != CTKN_OK)
    ctkn_wipe(out->secret, sizeof(out->secret));
  ctkn_settings_follower_close(f);
  ctkn_keyring_free(&kr);
  free(ev);
  return rc;
}

/* ---- other records of the settings topic ------------------------------- */

int ctkn_settings_submit(ctkn_store *st, const struct ctkn_log_config *cfg,
                         const struct ctkn_settings_writer *w,
                         ctkn_settings_plan_fn plan, void *arg, bool *appended,
                         struct ctkn_err *err)
{
  ctkn_settings_follower *f = NULL;
  struct ctkn_log_record rec;
  struct ctkn_keyring kr;
  uint8_t *buf = NULL;
  int rc;

  *appended = false;
  ctkn_keyring_init(&kr);
  memset(&rec, 0, sizeof(rec));
  /* A stale projection must never cause a spurious not_found. */
  if ((rc = ctkn_settings_follower_open(&f, st, cfg, err)) == CTKN_OK &&
      (rc = trust_for(f, cfg, w->trust_root, w->writer_key, w->scope, &kr,
                      err)) == CTKN_OK &&
      (rc = ctkn_settings_follower_catch_up(f, err)) == CTKN_OK &&
      kr.version > 0 && w->schema_version > CTKN_SCHEMA_WRITTEN &&
      !ctkn_keyring_schema_enabled(&kr, (uint32_t)w->schema_version))
    rc = ctkn__err_field(err, CTKN_EUSAGE, "schema_versions",
                         "these records are schema version %d, which keyring "
                         "version %" PRIu64 " does not enable yet: upgrade "
                         "every reader, then `ctkn trust schema enable %d`",
                         w->schema_version, kr.version, w->schema_version);
  if (rc == CTKN_OK && (rc = plan(arg, st, &rec, &buf, err)) == CTKN_OK &&
      (rc = may_append(cfg, w->trust_root, w->writer_key, err)) == CTKN_OK) {
    rec.schema_version = w->schema_version;
    rc = append_record(st, cfg, f, &kr, kr.version > 0 ? w->writer_key : NULL,
                       &rec, err);
    *appended = rc == CTKN_OK;
  }
  if (rc == CTKN_SETTINGS_NOTHING)
    rc = CTKN_OK;
  free(buf);
  ctkn_settings_follower_close(f);
  ctkn_keyring_free(&kr);
  return rc;
}

/* ---- creating the topic ------------------------------------------------ */

int ctkn_settings_create_topic(const struct ctkn_log_config *cfg,
                               int replication_factor, bool *created,
                               int32_t *partitions, struct ctkn_err *err)
{
  /* A shallow copy: the overrides stay cfg's, borrowed for the call. */
  struct ctkn_log_config scfg = *cfg;
  int rc;

  *created = false;
  *partitions = 0;
  rc = ctkn_settings_topic(cfg->topic, scfg.topic, sizeof(scfg.topic), err);
  /* One partition: the changes are few, and one total order keeps them
   * simple: every replica applies them in the same order. */
  if (rc == CTKN_OK)
    rc = ctkn_log_create_topic(&scfg, 1, replication_factor, created,
                               partitions, err);
  return rc;
}
