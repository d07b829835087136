/*
 * json_ops.c - ctkn's own operational documents (codec.h): digests,
 * archive summaries, quarantined records, topics, projection counts,
 * status and health. Same conventions as json.c.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/keyring.h"
#include "internal.h"
#include "json_int.h"

char *ctkn_json_digest(const char *sha256_hex, int64_t tokens,
                       const int32_t *partitions, const int64_t *offsets,
                       size_t n)
{
  json_t *o = json_object();
  json_t *arr = json_array();
  int rc = 0;

  if (o == NULL || arr == NULL) {
    json_decref(o);
    json_decref(arr);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_object();
    if (e == NULL) {
      rc = -1;
      break;
    }
    rc |= ctkn__json_set(e, "partition", json_integer(partitions[i]));
    rc |= ctkn__json_set(e, "offset", json_integer(offsets[i]));
    rc |= json_array_append_new(arr, e);
  }
  rc |= ctkn__json_set(o, "sha256", ctkn__json_str(sha256_hex, SIZE_MAX));
  rc |= ctkn__json_set(o, "tokens", json_integer(tokens));
  rc |= ctkn__json_set(o, "offsets", arr);
  return ctkn__json_doc(ctkn__json_checked(o, rc), false, NULL);
}

/* The archive summary's object (ctkn_json_archive()), or NULL. */
static json_t *archive_obj(const char *topic, int32_t partitions,
                           const int64_t *start, const int64_t *end,
                           uint64_t records, const char *sha256_hex)
{
  json_t *o = json_object();
  json_t *arr = json_array();
  int rc = 0;

  if (o == NULL || arr == NULL) {
    json_decref(o);
    json_decref(arr);
    return NULL;
  }
  for (int32_t i = 0; i < partitions; i++) {
    json_t *e = json_object();
    if (e == NULL) {
      rc = -1;
      break;
    }
    rc |= ctkn__json_set(e, "partition", json_integer(i));
    rc |= ctkn__json_set(e, "start", json_integer(start[i]));
    rc |= ctkn__json_set(e, "end", json_integer(end[i]));
    rc |= json_array_append_new(arr, e);
  }
  rc |= ctkn__json_set(o, "topic", ctkn__json_str(topic, SIZE_MAX));
  rc |= ctkn__json_set(o, "records", json_integer((json_int_t)records));
  rc |= ctkn__json_set(o, "sha256", ctkn__json_str(sha256_hex, SIZE_MAX));
  rc |= ctkn__json_set(o, "partitions", arr);
  return ctkn__json_checked(o, rc);
}

char *ctkn_json_archive(const char *topic, int32_t partitions,
                        const int64_t *start, const int64_t *end,
                        uint64_t records, const char *sha256_hex)
{
  return ctkn__json_doc(
      archive_obj(topic, partitions, start, end, records, sha256_hex), false,
      NULL);
}

static json_t *hex_str(const uint8_t *b, size_t n);

/* An audit's trust findings (ctkn_json_audit()), or NULL. */
static json_t *audit_trust_obj(const struct ctkn_audit_trust *t)
{
  json_t *o = json_object(), *arr = json_array();
  int rc = 0;

  if (o == NULL || arr == NULL) {
    json_decref(o);
    json_decref(arr);
    return NULL;
  }
  for (size_t i = 0; i < t->nfailures; i++) {
    const struct ctkn_audit_failure *f = &t->failures[i];
    json_t *e = json_object();
    if (e == NULL) {
      rc = -1;
      break;
    }
    rc |= ctkn__json_set(e, "partition", json_integer(f->partition));
    rc |= ctkn__json_set(e, "offset", json_integer(f->offset));
    rc |= ctkn__json_set(e, "reason", ctkn__json_str(f->reason, SIZE_MAX));
    rc |= ctkn__json_set(e, "detail", ctkn__json_str(f->detail, SIZE_MAX));
    rc |= json_array_append_new(arr, e);
  }
  rc |= ctkn__json_set(o, "log_id", hex_str(t->log_id, CTKN_LOG_ID_LEN));
  rc |= ctkn__json_set(o, "keyring_version",
                       json_integer((json_int_t)t->keyring_version));
  rc |= ctkn__json_set(o, "proven", json_integer((json_int_t)t->proven));
  rc |= ctkn__json_set(o, "checkpoints",
                       json_integer((json_int_t)t->checkpoints));
  rc |= ctkn__json_set(o, "root_records",
                       json_integer((json_int_t)t->root_records));
  rc |= ctkn__json_set(o, "adopted", json_integer((json_int_t)t->adopted));
  rc |= ctkn__json_set(o, "failed", json_integer((json_int_t)t->failed));
  rc |= ctkn__json_set(o, "failures", arr);
  return ctkn__json_checked(o, rc);
}

char *ctkn_json_audit(const char *topic, int32_t partitions,
                      const int64_t *start, const int64_t *end,
                      uint64_t records, const char *sha256_hex,
                      const struct ctkn_audit_trust *t)
{
  json_t *o = archive_obj(topic, partitions, start, end, records, sha256_hex);

  if (o != NULL && ctkn__json_set(o, "trust", audit_trust_obj(t)) != 0) {
    json_decref(o);
    o = NULL;
  }
  return ctkn__json_doc(o, false, NULL);
}

static json_t *jbase64(const void *bytes, size_t len)
{
  json_t *v;
  char *buf;

  if (bytes == NULL)
    return json_null();
  if ((buf = malloc(4 * ((len + 2) / 3) + 1)) == NULL)
    return NULL;
  size_t n = ctkn_base64(bytes, len, buf);
  v = json_stringn_nocheck(buf, n);
  free(buf);
  return v;
}

char *ctkn_json_quarantined(int32_t partition, int64_t offset,
                            const char *reason, const void *key, size_t klen,
                            const void *value, size_t vlen)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= ctkn__json_set(o, "partition", json_integer(partition));
  rc |= ctkn__json_set(o, "offset", json_integer(offset));
  rc |= ctkn__json_set(o, "reason",
                       ctkn__json_str(reason ? reason : "", SIZE_MAX));
  rc |= ctkn__json_set(o, "key_base64", jbase64(key, klen));
  rc |= ctkn__json_set(o, "value_base64", jbase64(value, vlen));
  return ctkn__json_dump(ctkn__json_checked(o, rc));
}

static json_t *topic_obj(const char *topic, int32_t partitions,
                         int replication_factor, bool created)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= ctkn__json_set(o, "topic", ctkn__json_str(topic, SIZE_MAX));
  rc |= ctkn__json_set(o, "partitions", json_integer(partitions));
  rc |=
      ctkn__json_set(o, "replication_factor", json_integer(replication_factor));
  rc |= ctkn__json_set(o, "created", json_boolean(created));
  return ctkn__json_checked(o, rc);
}

char *ctkn_json_topic(const char *topic, int32_t partitions,
                      int replication_factor, bool created,
                      const char *settings_topic, int32_t settings_partitions,
                      bool settings_created)
{
  json_t *o = topic_obj(topic, partitions, replication_factor, created);

  if (o != NULL && settings_topic != NULL &&
      ctkn__json_set(o, "settings",
                     topic_obj(settings_topic, settings_partitions,
                               replication_factor, settings_created)) != 0) {
    json_decref(o);
    o = NULL;
  }
  return ctkn__json_doc(o, false, NULL);
}

char *ctkn_json_topics(const char *topic, int32_t partitions,
                       int replication_factor, bool created,
                       const char *settings_topic, int32_t settings_partitions,
                       bool settings_created, const char *ntf_topic,
                       int32_t ntf_partitions, bool ntf_created)
{
  json_t *o = topic_obj(topic, partitions, replication_factor, created);

  if (o != NULL &&
      (ctkn__json_set(o, "settings",
                      topic_obj(settings_topic, settings_partitions,
                                replication_factor, settings_created)) != 0 ||
       ctkn__json_set(o, "notifications",
                      topic_obj(ntf_topic, ntf_partitions, replication_factor,
                                ntf_created)) != 0)) {
    json_decref(o);
    o = NULL;
  }
  return ctkn__json_doc(o, false, NULL);
}

char *ctkn_json_project_stats(uint64_t applied, uint64_t rejected,
                              uint64_t quarantined, uint64_t skipped,
                              int32_t paused)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= ctkn__json_set(o, "applied", json_integer((json_int_t)applied));
  rc |= ctkn__json_set(o, "rejected", json_integer((json_int_t)rejected));
  rc |= ctkn__json_set(o, "quarantined", json_integer((json_int_t)quarantined));
  rc |= ctkn__json_set(o, "skipped", json_integer((json_int_t)skipped));
  rc |= ctkn__json_set(o, "paused", json_integer(paused));
  return ctkn__json_doc(ctkn__json_checked(o, rc), false, NULL);
}

/* The status object: topic, partitions with their lag, total lag; with
 * quarantined (one count per part), each partition's and their total. */
static json_t *status_obj(const char *topic,
                          const struct ctkn_partition_status *parts, size_t n,
                          const int64_t *quarantined)
{
  json_t *o = json_object();
  json_t *arr = json_array();
  int64_t total = 0, qtotal = 0;
  int rc = 0;

  if (o == NULL || arr == NULL) {
    json_decref(o);
    json_decref(arr);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_object();
    int64_t lag = parts[i].log_end - parts[i].projected;
    if (e == NULL) {
      rc = -1;
      break;
    }
    total += lag > 0 ? lag : 0;
    rc |= ctkn__json_set(e, "partition", json_integer(parts[i].partition));
    rc |= ctkn__json_set(e, "log_start", json_integer(parts[i].log_start));
    rc |= ctkn__json_set(e, "log_end", json_integer(parts[i].log_end));
    rc |= ctkn__json_set(e, "projected", json_integer(parts[i].projected));
    rc |= ctkn__json_set(e, "lag", json_integer(lag > 0 ? lag : 0));
    rc |= ctkn__json_set(e, "paused", json_boolean(parts[i].paused));
    if (parts[i].checkpoint_at >= 0) {
      char t[CTKN_TIME_BUF];
      if (parts[i].checkpoint_at > 0)
        ctkn_time_format(parts[i].checkpoint_at, t);
      rc |= ctkn__json_set(e, "checkpoint_at",
                           parts[i].checkpoint_at > 0 ? json_string(t)
                                                      : json_null());
      rc |= ctkn__json_set(e, "stale", json_boolean(parts[i].stale));
    }
    if (quarantined != NULL) {
      qtotal += quarantined[i];
      rc |= ctkn__json_set(e, "quarantined", json_integer(quarantined[i]));
    }
    rc |= json_array_append_new(arr, e);
  }
  rc |= ctkn__json_set(o, "topic", ctkn__json_str(topic, SIZE_MAX));
  rc |= ctkn__json_set(o, "partitions", arr);
  rc |= ctkn__json_set(o, "lag", json_integer(total));
  if (quarantined != NULL)
    rc |= ctkn__json_set(o, "quarantined", json_integer(qtotal));
  return ctkn__json_checked(o, rc);
}

char *ctkn_json_status(const char *topic,
                       const struct ctkn_partition_status *parts, size_t n)
{
  return ctkn__json_doc(status_obj(topic, parts, n, NULL), false, NULL);
}

char *ctkn_json_health(const char *state, int64_t max_lag, const char *topic,
                       const struct ctkn_partition_status *parts, size_t n,
                       const int64_t *quarantined, const char *request_id)
{
  json_t *o = status_obj(topic, parts, n, quarantined);
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= ctkn__json_set(o, "status", ctkn__json_str(state, SIZE_MAX));
  rc |= ctkn__json_set(o, "max_lag", json_integer(max_lag));
  return ctkn__json_doc(ctkn__json_checked(o, rc), true, request_id);
}

/* ---- the CLI's small documents --------------------------------------- */

char *ctkn_json_version(const char *version, int schema_version,
                        int store_format)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= ctkn__json_set(o, "version", ctkn__json_str(version, SIZE_MAX));
  rc |= ctkn__json_set(o, "schema_version", json_integer(schema_version));
  rc |= ctkn__json_set(o, "store_format", json_integer(store_format));
  return ctkn__json_doc(ctkn__json_checked(o, rc), false, NULL);
}

char *ctkn_json_data_null(void)
{
  return ctkn__json_doc(json_null(), false, NULL);
}

char *ctkn_json_notify_stats(uint64_t attempts, uint64_t delivered,
                             uint64_t failed, uint64_t replayed)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= ctkn__json_set(o, "attempts", json_integer((json_int_t)attempts));
  rc |= ctkn__json_set(o, "delivered", json_integer((json_int_t)delivered));
  rc |= ctkn__json_set(o, "failed", json_integer((json_int_t)failed));
  rc |= ctkn__json_set(o, "replayed", json_integer((json_int_t)replayed));
  return ctkn__json_doc(ctkn__json_checked(o, rc), false, NULL);
}

char *ctkn_json_notification_replayed(const char *ntf_id,
                                      const char *request_id)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= ctkn__json_set(o, "notification_id", ctkn__json_str(ntf_id, SIZE_MAX));
  return ctkn__json_doc(ctkn__json_checked(o, rc), true, request_id);
}

/* ---- trust ----------------------------------------------------------------
 */

static json_t *hex_str(const uint8_t *b, size_t n)
{
  char hex[2 * 64 + 1];

  ctkn_hex(b, n > 64 ? 64 : n, hex);
  return json_string(hex);
}

static json_t *writer_key_obj(const struct ctkn_writer_key *k)
{
  json_t *o = json_object(), *scopes = json_array();
  int rc = 0;

  if (o == NULL || scopes == NULL) {
    json_decref(o);
    json_decref(scopes);
    return NULL;
  }
  for (size_t i = 0; i < k->nscopes; i++)
    rc |= json_array_append_new(scopes, json_string(k->scopes[i]));
  rc |= ctkn__json_set(o, "key_id", json_string(k->key_id));
  rc |= ctkn__json_set(o, "name", ctkn__json_str(k->name, CTKN_KEY_NAME_MAX));
  rc |= ctkn__json_set(o, "public_key",
                       hex_str(k->public_key, CTKN_SIGN_PUB_LEN));
  rc |= ctkn__json_set(o, "scopes", scopes);
  rc |= ctkn__json_set(o, "status",
                       json_string(k->revoked ? "revoked" : "active"));
  if (k->retroactive)
    rc |= ctkn__json_set(o, "retroactive", json_true());
  return ctkn__json_checked(o, rc);
}

char *ctkn_json_keyring(const struct ctkn_keyring *kr, const char *key_id,
                        const char *file)
{
  json_t *o = json_object(), *keys = json_array(), *schemas = json_array();
  int rc = 0;

  if (o == NULL || keys == NULL || schemas == NULL) {
    json_decref(o);
    json_decref(keys);
    json_decref(schemas);
    return NULL;
  }
  for (size_t i = 0; i < kr->nkeys; i++)
    rc |= json_array_append_new(keys, writer_key_obj(&kr->keys[i]));
  for (size_t i = 0; i < kr->nschemas; i++)
    rc |= json_array_append_new(schemas, json_integer(kr->schemas[i]));
  if (key_id != NULL)
    rc |= ctkn__json_set(o, "key_id", json_string(key_id));
  if (file != NULL)
    rc |= ctkn__json_set(o, "file", ctkn__json_str(file, 4096));
  rc |= ctkn__json_set(o, "log_id", hex_str(kr->log_id, CTKN_LOG_ID_LEN));
  rc |= ctkn__json_set(o, "version", json_integer((json_int_t)kr->version));
  rc |= ctkn__json_set(o, "keys", keys);
  rc |= ctkn__json_set(o, "schema_versions", schemas);
  return ctkn__json_doc(ctkn__json_checked(o, rc), false, NULL);
}

char *ctkn_json_trust_root(const char *key_id, const uint8_t *pub,
                           const char *secret_file, const char *public_file)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= ctkn__json_set(o, "key_id", json_string(key_id));
  rc |= ctkn__json_set(o, "public_key", hex_str(pub, CTKN_SIGN_PUB_LEN));
  rc |= ctkn__json_set(o, "secret_key_file", ctkn__json_str(secret_file, 4096));
  rc |= ctkn__json_set(o, "public_key_file", ctkn__json_str(public_file, 4096));
  return ctkn__json_doc(ctkn__json_checked(o, rc), false, NULL);
}

char *ctkn_json_adoption(const struct ctkn_adoption *a)
{
  json_t *o = json_object(), *arr = json_array();
  int rc = 0;

  if (o == NULL || arr == NULL) {
    json_decref(o);
    json_decref(arr);
    return NULL;
  }
  for (size_t i = 0; i < a->nparts; i++) {
    json_t *e = json_object();
    if (e == NULL) {
      rc = -1;
      break;
    }
    rc |= ctkn__json_set(e, "partition", json_integer(a->parts[i].partition));
    rc |= ctkn__json_set(e, "end_offset",
                         json_integer((json_int_t)a->parts[i].end_offset));
    rc |= ctkn__json_set(e, "records_hash",
                         hex_str(a->parts[i].records_hash, CTKN_CHAIN_LEN));
    rc |= json_array_append_new(arr, e);
  }
  rc |= ctkn__json_set(o, "log_id", hex_str(a->log_id, CTKN_LOG_ID_LEN));
  rc |= ctkn__json_set(o, "topic", ctkn__json_str(a->topic, sizeof(a->topic)));
  rc |= ctkn__json_set(o, "partitions", arr);
  return ctkn__json_doc(ctkn__json_checked(o, rc), false, NULL);
}
