/*
 * settings.c - notification destinations: commands, the version rule, the
 * settings projection and the settings topic's follower.
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
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctkn/codec.h"
#include "ctkn/settings.h"
#include "internal.h"

#define DEST_KEY_LEN  (CTKN_DEST_ID_LEN + 4)
#define COORD_LEN     12
#define FATE_APPLIED  'a'
#define FATE_REJECTED 'r'
#define FATE_QUARANT  'q'

static const char *const setting_types[] = {
    [CTKN_SETTING_CREATED] = "notification_setting.created",
    [CTKN_SETTING_UPDATED] = "notification_setting.updated",
    [CTKN_SETTING_DELETED] = "notification_setting.deleted"};

const char *ctkn_setting_type_str(ctkn_setting_type t)
{
  return t >= CTKN_SETTING_CREATED && t <= CTKN_SETTING_DELETED
             ? setting_types[t]
             : NULL;
}

ctkn_setting_type ctkn_setting_type_parse(const char *s)
{
  for (int t = CTKN_SETTING_CREATED; t <= CTKN_SETTING_DELETED; t++) {
    if (s != NULL && strcmp(s, setting_types[t]) == 0)
      return (ctkn_setting_type)t;
  }
  return 0;
}

/* ---- commands ------------------------------------------------------------ */

void ctkn_dest_command_init(struct ctkn_dest_command *cmd,
                            ctkn_dest_cmd_kind kind)
{
  memset(cmd, 0, sizeof(*cmd));
  cmd->kind = kind;
}

int ctkn_dest_command_set_id(struct ctkn_dest_command *cmd, const char *id,
                             struct ctkn_err *err)
{
  if (!ctkn_id_valid("ntfset_", id))
    return ctkn__err_field(err, CTKN_EINVAL, "id",
                           "must match ^ntfset_[a-z0-9]{26}$");
  memcpy(cmd->id, id, CTKN_DEST_ID_BUF);
  return CTKN_OK;
}

/* An absolute http(s) URL with a host, visible ASCII, bounded. */
static int url_check(const char *url, struct ctkn_err *err)
{
  size_t n = strlen(url), skip;

  if (n > CTKN_URL_MAX)
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           "must be at most %d bytes", CTKN_URL_MAX);
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
      return ctkn__err_field(err, CTKN_EINVAL, "destination",
                             "must be a URL of visible ASCII characters "
                             "(percent-encode the rest)");
  }
  if (strncasecmp(url, "https://", 8) == 0)
    skip = 8;
  else if (strncasecmp(url, "http://", 7) == 0)
    skip = 7;
  else
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           "must be an absolute http:// or https:// URL");
  if (url[skip] == '\0' || strchr("/?#:@", url[skip]) != NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           "must name a host after the scheme");
  return CTKN_OK;
}

int ctkn_dest_command_set_url(struct ctkn_dest_command *cmd, const char *url,
                              struct ctkn_err *err)
{
  int rc;

  if ((rc = url_check(url, err)) != CTKN_OK)
    return rc;
  ctkn__strlcpy(cmd->url, url, sizeof(cmd->url));
  cmd->set_url = true;
  return CTKN_OK;
}

int ctkn_dest_command_set_event_mask(struct ctkn_dest_command *cmd,
                                     unsigned mask, struct ctkn_err *err)
{
  if (mask == 0 || (mask & ~(unsigned)CTKN_DEST_EVENTS_ALL) != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                           "must name at least one of client_token.created, "
                           "client_token.updated, client_token.revoked");
  cmd->events = mask;
  cmd->set_events = true;
  return CTKN_OK;
}

int ctkn_dest_command_set_events(struct ctkn_dest_command *cmd, const char *csv,
                                 struct ctkn_err *err)
{
  unsigned mask = 0;
  const char *p = csv;

  for (;;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char name[64];
    ctkn_event_type t = 0;

    if (n > 0 && n < sizeof(name)) {
      memcpy(name, p, n);
      name[n] = '\0';
      t = ctkn_event_type_parse(name);
    }
    if (t == 0)
      return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                             "\"%.*s\" is not client_token.created, "
                             "client_token.updated or client_token.revoked",
                             (int)(n > 64 ? 64 : n), p);
    if (mask & (1u << t))
      return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                             "\"%s\" is named twice", name);
    mask |= 1u << t;
    if (end == NULL)
      break;
    p = end + 1;
  }
  return ctkn_dest_command_set_event_mask(cmd, mask, err);
}

int ctkn_dest_command_set_description(struct ctkn_dest_command *cmd,
                                      const char *s, size_t len,
                                      struct ctkn_err *err)
{
  int rc;

  cmd->set_description = true;
  cmd->has_description = s != NULL;
  cmd->description[0] = '\0';
  if (s == NULL)
    return CTKN_OK;
  if ((rc = ctkn_validate_description(s, len, err)) != CTKN_OK) {
    cmd->set_description = false;
    return rc;
  }
  memcpy(cmd->description, s, len);
  cmd->description[len] = '\0';
  return CTKN_OK;
}

void ctkn_dest_command_set_active(struct ctkn_dest_command *cmd, bool active)
{
  cmd->set_active = true;
  cmd->active = active;
}

int ctkn_dest_command_check(const struct ctkn_dest_command *cmd,
                            struct ctkn_err *err)
{
  switch (cmd->kind) {
  case CTKN_DEST_ADD:
    if (!cmd->set_url)
      return ctkn__err_field(err, CTKN_EINVAL, "destination",
                             "is required (--url)");
    if (!cmd->set_events)
      return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                             "is required (--events)");
    return CTKN_OK;
  case CTKN_DEST_UPDATE:
    if (!ctkn_id_valid("ntfset_", cmd->id))
      return ctkn__err_field(err, CTKN_EINVAL, "id",
                             "must match ^ntfset_[a-z0-9]{26}$");
    if (!cmd->set_url && !cmd->set_events && !cmd->set_description &&
        !cmd->set_active)
      return ctkn__err(err, CTKN_EBADREQ,
                       "nothing to update: give the destination, "
                       "subscribed_events, description or active");
    return CTKN_OK;
  case CTKN_DEST_REMOVE:
    if (!ctkn_id_valid("ntfset_", cmd->id))
      return ctkn__err_field(err, CTKN_EINVAL, "id",
                             "must match ^ntfset_[a-z0-9]{26}$");
    return CTKN_OK;
  }
  return ctkn__err(err, CTKN_EINTERNAL, "unknown destination command");
}

/* ---- the pure functions ------------------------------------------------ */

/* 32 unbiased base62 characters. */
static int base62(char *out, size_t n)
{
  static const char alphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  uint8_t buf[64];
  size_t got = 0;

  while (got < n) {
    int rc = ctkn_random(buf, sizeof(buf));
    if (rc != CTKN_OK)
      return rc;
    for (size_t i = 0; i < sizeof(buf) && got < n; i++) {
      if (buf[i] < 248) /* 4 * 62: keep the draw uniform */
        out[got++] = alphabet[buf[i] % 62];
    }
  }
  ctkn_wipe(buf, sizeof(buf));
  return CTKN_OK;
}

int ctkn_settings_plan(const struct ctkn_destination *cur,
                       const struct ctkn_dest_command *cmd,
                       const uint8_t key[CTKN_KEY_LEN], const int64_t *start,
                       int32_t nstart, int64_t now_us,
                       struct ctkn_setting_event *out,
                       char secret[CTKN_SECRET_BUF], struct ctkn_err *err)
{
  struct ctkn_destination *d = &out->data;
  int rc;

  if ((rc = ctkn_dest_command_check(cmd, err)) != CTKN_OK)
    return rc;
  memset(out, 0, offsetof(struct ctkn_setting_event, start));
  if (secret != NULL)
    secret[0] = '\0';
  if (cmd->kind == CTKN_DEST_ADD) {
    if (key == NULL || secret == NULL)
      return ctkn__err(err, CTKN_EINTERNAL, "an add needs the key");
    if (nstart < 0 || nstart > CTKN_STORE_MAX_PARTITIONS)
      return ctkn__err(err, CTKN_EINTERNAL, "start offsets");
    if ((rc = ctkn_id_generate("ntfset_", now_us / 1000, d->id,
                               sizeof(d->id))) != CTKN_OK)
      return ctkn__err(err, rc, "generating an ID");
    /* pdl_ntfset_<ulid>_<32 base62>, as Paddle's. */
    memcpy(secret, "pdl_ntfset_", 11);
    memcpy(secret + 11, d->id + 7, CTKN_ULID_LEN);
    secret[11 + CTKN_ULID_LEN] = '_';
    if ((rc = base62(secret + 12 + CTKN_ULID_LEN, 32)) != CTKN_OK)
      return ctkn__err(err, rc, "generating a secret");
    secret[CTKN_SECRET_LEN] = '\0';
    if ((rc = ctkn_seal(key, d->id, CTKN_DEST_ID_LEN, secret, CTKN_SECRET_LEN,
                        d->sealed, err)) != CTKN_OK)
      return rc;
    d->has_description = cmd->set_description && cmd->has_description;
    memcpy(d->description, cmd->description, sizeof(d->description));
    memcpy(d->url, cmd->url, sizeof(d->url));
    d->active = cmd->set_active ? cmd->active : true;
    d->events = cmd->events;
    d->created_at = d->updated_at = now_us;
    d->version = 1;
    out->type = CTKN_SETTING_CREATED;
    out->nstart = nstart;
    for (int32_t p = 0; p < nstart; p++)
      out->start[p] = start[p];
  } else {
    if (cur == NULL || cur->deleted)
      return ctkn__err(err, CTKN_ENOTFOUND, "no destination %s", cmd->id);
    *d = *cur;
    if (cmd->kind == CTKN_DEST_UPDATE) {
      if (cmd->set_url)
        memcpy(d->url, cmd->url, sizeof(d->url));
      if (cmd->set_events)
        d->events = cmd->events;
      if (cmd->set_description) {
        d->has_description = cmd->has_description;
        memcpy(d->description, cmd->description, sizeof(d->description));
      }
      if (cmd->set_active)
        d->active = cmd->active;
      if (strcmp(d->url, cur->url) == 0 && d->events == cur->events &&
          d->active == cur->active &&
          d->has_description == cur->has_description &&
          strcmp(d->description, cur->description) == 0)
        return CTKN_PLAN_NOOP;
      out->type = CTKN_SETTING_UPDATED;
    } else {
      d->deleted = true;
      out->type = CTKN_SETTING_DELETED;
    }
    d->version = cur->version + 1;
    d->updated_at = now_us > cur->updated_at ? now_us : cur->updated_at + 1;
  }
  if ((rc = ctkn_id_generate("evt_", d->updated_at / 1000, out->event_id,
                             sizeof(out->event_id))) != CTKN_OK)
    return ctkn__err(err, rc, "generating an event ID");
  out->occurred_at = d->updated_at;
  out->version = d->version;
  return CTKN_PLAN_APPEND;
}

int ctkn_setting_event_check(const struct ctkn_setting_event *ev,
                             struct ctkn_err *err)
{
  const struct ctkn_destination *d = &ev->data;
  int rc;

  if (!ctkn_id_valid("evt_", ev->event_id))
    return ctkn__err_field(err, CTKN_EINVAL, "event_id",
                           "must match ^evt_[a-z0-9]{26}$");
  if (!ctkn_id_valid("ntfset_", d->id))
    return ctkn__err_field(err, CTKN_EINVAL, "data.id",
                           "must match ^ntfset_[a-z0-9]{26}$");
  if ((rc = url_check(d->url, err)) != CTKN_OK)
    return rc;
  if (d->events == 0 || (d->events & ~(unsigned)CTKN_DEST_EVENTS_ALL))
    return ctkn__err_field(err, CTKN_EINVAL, "data.subscribed_events",
                           "must name at least one client_token event");
  if (d->has_description &&
      (rc = ctkn_validate_description(d->description, strlen(d->description),
                                      err)) != CTKN_OK)
    return rc;
  if (ev->version < 1 ||
      (ev->type == CTKN_SETTING_CREATED) != (ev->version == 1))
    return ctkn__err_field(err, CTKN_EINVAL, "version",
                           "must be 1 exactly for a created event");
  if (d->created_at <= 0 || d->updated_at < d->created_at ||
      ev->occurred_at != d->updated_at ||
      (ev->type == CTKN_SETTING_CREATED && d->created_at != d->updated_at))
    return ctkn__err_field(err, CTKN_EINVAL, "occurred_at",
                           "must equal data.updated_at, on or after "
                           "data.created_at (equal on create)");
  if (ev->type != CTKN_SETTING_CREATED && ev->nstart != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "start_offsets",
                           "only a created event records them");
  for (int32_t p = 0; p < ev->nstart; p++) {
    if (ev->start[p] < 0)
      return ctkn__err_field(err, CTKN_EINVAL, "start_offsets",
                             "must not be negative");
  }
  return CTKN_OK;
}

int ctkn_settings_apply(const struct ctkn_destination *cur,
                        const struct ctkn_setting_event *ev,
                        struct ctkn_destination *next, char *reason,
                        size_t reasonsz)
{
  if (ev->type == CTKN_SETTING_CREATED) {
    if (cur != NULL) {
      snprintf(reason, reasonsz, "id: destination %s exists already", cur->id);
      return CTKN_REJECTED;
    }
  } else if (cur == NULL) {
    snprintf(reason, reasonsz, "id: no destination %s", ev->data.id);
    return CTKN_REJECTED;
  } else if (cur->deleted) {
    snprintf(reason, reasonsz, "id: destination %s was removed", cur->id);
    return CTKN_REJECTED;
  } else if (ev->version != cur->version + 1) {
    snprintf(reason, reasonsz, "version: %" PRIu64 " does not follow %" PRIu64,
             ev->version, cur->version);
    return CTKN_REJECTED;
  } else if (ev->data.created_at != cur->created_at ||
             memcmp(ev->data.sealed, cur->sealed, sizeof(cur->sealed)) != 0) {
    snprintf(reason, reasonsz,
             "data: created_at and the endpoint secret never change");
    return CTKN_REJECTED;
  } else if (ev->data.updated_at <= cur->updated_at) {
    snprintf(reason, reasonsz, "updated_at: must move forwards");
    return CTKN_REJECTED;
  }
  *next = ev->data;
  next->version = ev->version;
  next->deleted = ev->type == CTKN_SETTING_DELETED;
  return CTKN_APPLIED;
}

int ctkn_destination_secret(const struct ctkn_destination *d,
                            const uint8_t key[CTKN_KEY_LEN],
                            char secret[CTKN_SECRET_BUF], struct ctkn_err *err)
{
  int rc = ctkn_unseal(key, d->id, CTKN_DEST_ID_LEN, d->sealed,
                       sizeof(d->sealed), (uint8_t *)secret, err);

  secret[rc == CTKN_OK ? CTKN_SECRET_LEN : 0] = '\0';
  if (rc != CTKN_OK)
    return ctkn__err(err, rc,
                     "destination %s: its endpoint secret does not open "
                     "with this deployment key (--secret-key-file)",
                     d->id);
  return CTKN_OK;
}

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
  if ((rc = ctkn_destination_decode(v, vlen, out, err)) != CTKN_OK)
    return ctkn__err(err, CTKN_ESTORE, "destination %s: %s", id, err->msg);
  if (out->deleted && !include_deleted)
    return ctkn__err(err, CTKN_ENOTFOUND, "no destination %s (removed)", id);
  return CTKN_OK;
}

struct list_acc {
  struct ctkn_destination *d;
  size_t n, cap;
  int rc;
  struct ctkn_err *err;
};

static int list_one(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
  struct list_acc *a = arg;
  (void)key;
  (void)klen;

  if (a->n == a->cap) {
    size_t cap = a->cap ? 2 * a->cap : 16;
    struct ctkn_destination *d = realloc(a->d, cap * sizeof(*d));
    if (d == NULL)
      return a->rc = ctkn__err(a->err, CTKN_ENOMEM, "listing destinations");
    a->d = d;
    a->cap = cap;
  }
  if ((a->rc = ctkn_destination_decode(val, vlen, &a->d[a->n], a->err)) !=
      CTKN_OK)
    return a->rc = ctkn__err(a->err, CTKN_ESTORE, "destinations: %s",
                             a->err ? a->err->msg : "corrupt");
  if (!a->d[a->n].deleted)
    a->n++;
  return 0;
}

int ctkn_settings_list(ctkn_store_txn *txn, struct ctkn_destination **out,
                       size_t *n, struct ctkn_err *err)
{
  struct list_acc a = {NULL, 0, 0, CTKN_OK, err};
  int rc = ctkn_store_kv_walk(txn, CTKN_TABLE_DESTINATIONS, NULL, 0, 0,
                              list_one, &a, err);

  if (rc == CTKN_OK)
    rc = a.rc;
  if (rc != CTKN_OK) {
    free(a.d);
    *out = NULL;
    *n = 0;
    return rc;
  }
  *out = a.d;
  *n = a.n;
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
    fprintf(stderr,
            "ctkn: settings record at %" PRId32 "/%" PRId64 " rejected: %s\n",
            m->partition, m->offset, reason);
    return put_fate(txn, m->partition, m->offset, FATE_REJECTED, reason, err);
  }
  if ((rc = ctkn_destination_encode(&next, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_DESTINATIONS, next.id,
                         CTKN_DEST_ID_LEN, buf, len, err);
  free(buf);
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

int ctkn_settings_project(ctkn_store *st, const struct ctkn_log_msg *msgs,
                          size_t n, struct ctkn_err *err)
{
  struct ctkn_setting_event *ev = NULL;
  ctkn_store_txn *txn = NULL;
  int rc;

  if (n == 0)
    return CTKN_OK;
  if ((ev = malloc(sizeof(*ev))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "settings: event buffer");
  if ((rc = ctkn_store_begin(st, true, &txn, err)) != CTKN_OK)
    goto out;
  for (size_t i = 0; i < n; i++) {
    const struct ctkn_log_msg *m = &msgs[i];
    struct ctkn_err derr;
    uint8_t k[4], v[8];

    if (m->partition < 0 || m->partition >= CTKN_STORE_MAX_PARTITIONS ||
        m->offset < settings_offset(txn, m->partition))
      continue;
    if (m->schema_version > CTKN_SCHEMA_VERSION) {
      rc = ctkn__err(err, CTKN_EFORMAT,
                     "settings record at %" PRId32 "/%" PRId64
                     " has schema version %d, newer than this build's %d; "
                     "upgrade ctkn",
                     m->partition, m->offset, m->schema_version,
                     CTKN_SCHEMA_VERSION);
      break; /* commit what came before; stop here */
    }
    if (ctkn_setting_event_decode(m->value, m->value_len, ev, &derr) !=
            CTKN_OK ||
        ctkn_setting_event_check(ev, &derr) != CTKN_OK) {
      fprintf(stderr,
              "ctkn: settings record at %" PRId32 "/%" PRId64
              " quarantined: %s%s%s\n",
              m->partition, m->offset, derr.field, derr.field[0] ? ": " : "",
              derr.msg);
      char why[sizeof(derr.field) + sizeof(derr.msg) + 2];
      snprintf(why, sizeof(why), "%s%s%s", derr.field,
               derr.field[0] ? ": " : "", derr.msg);
      rc = put_fate(txn, m->partition, m->offset, FATE_QUARANT, why, err);
    } else {
      rc = apply_one(txn, m, ev, err);
    }
    if (rc != CTKN_OK)
      goto out;
    ctkn__put_be32(k, (uint32_t)m->partition);
    ctkn__put_be64(v, (uint64_t)(m->offset + 1));
    if ((rc = ctkn_store_kv_put(txn, CTKN_TABLE_SETTINGS_OFFSETS, k, sizeof(k),
                                v, sizeof(v), err)) != CTKN_OK)
      goto out;
  }
  {
    struct ctkn_err cerr;
    int crc = ctkn_store_commit(txn, &cerr);
    txn = NULL;
    if (crc != CTKN_OK) {
      if (err != NULL)
        *err = cerr;
      rc = crc;
    }
  }
out:
  ctkn_store_abort(txn);
  free(ev);
  return rc;
}

/* ---- following the settings topic --------------------------------------- */

#define FOLLOW_BATCH 256

struct ctkn_settings_follower {
  ctkn_store *st;
  struct ctkn_log_config cfg; /* a shallow copy: overrides are borrowed */
  ctkn_consumer *c;
  int32_t nparts;
  bool stopped; /* a record of a newer schema: wait for an upgrade */
  struct ctkn_log_msg msgs[FOLLOW_BATCH];
};

static int follower_assign(ctkn_settings_follower *f, struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  int64_t *next;
  int32_t n;
  int rc;

  if ((rc = ctkn_consumer_partitions(f->c, &n, err)) != CTKN_OK)
    return rc;
  if (n < 1 || n > CTKN_STORE_MAX_PARTITIONS)
    return ctkn__err(err, CTKN_EKAFKA, "%s: %" PRId32 " partitions",
                     f->cfg.topic, n);
  if ((next = calloc((size_t)n, sizeof(*next))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "settings follower");
  if ((rc = ctkn_store_begin(f->st, false, &txn, err)) == CTKN_OK) {
    for (int32_t p = 0; p < n; p++)
      next[p] = settings_offset(txn, p);
    ctkn_store_abort(txn);
    rc = ctkn_consumer_assign(f->c, next, n, err);
  }
  free(next);
  if (rc == CTKN_OK)
    f->nparts = n;
  return rc;
}

int ctkn_settings_follower_open(ctkn_settings_follower **out, ctkn_store *st,
                                const struct ctkn_log_config *cfg,
                                struct ctkn_err *err)
{
  ctkn_settings_follower *f;
  int rc;

  *out = NULL;
  if ((f = calloc(1, sizeof(*f))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "settings follower");
  f->st = st;
  f->cfg = *cfg;
  rc = ctkn_settings_topic(cfg->topic, f->cfg.topic, sizeof(f->cfg.topic), err);
  if (rc == CTKN_OK)
    rc = ctkn_consumer_open(&f->c, &f->cfg, err);
  if (rc == CTKN_ENOTFOUND)
    rc = ctkn__err(err, CTKN_ENOTFOUND,
                   "settings topic %s does not exist: run `ctkn init`",
                   f->cfg.topic);
  if (rc == CTKN_OK)
    rc = follower_assign(f, err);
  if (rc != CTKN_OK) {
    ctkn_settings_follower_close(f);
    return rc;
  }
  *out = f;
  return CTKN_OK;
}

void ctkn_settings_follower_close(ctkn_settings_follower *f)
{
  if (f == NULL)
    return;
  ctkn_consumer_close(f->c);
  free(f);
}

int ctkn_settings_follower_poll(ctkn_settings_follower *f, int timeout_ms,
                                size_t *applied, struct ctkn_err *err)
{
  size_t n = 0;
  int rc;

  *applied = 0;
  if (f->stopped)
    return CTKN_OK;
  rc = ctkn_consumer_poll(f->c, timeout_ms, f->msgs, FOLLOW_BATCH, &n, err);
  if (n > 0) {
    struct ctkn_err perr;
    int prc = ctkn_settings_project(f->st, f->msgs, n, &perr);
    if (prc == CTKN_EFORMAT) {
      fprintf(stderr, "ctkn: %s; settings are not followed until then\n",
              perr.msg);
      f->stopped = true;
    } else if (prc != CTKN_OK) {
      if (err != NULL)
        *err = perr;
      return prc;
    }
    *applied = n;
  }
  return rc;
}

int ctkn_settings_follower_catch_up(ctkn_settings_follower *f,
                                    struct ctkn_err *err)
{
  int64_t lo[64], hi[64];
  int64_t deadline = ctkn__now_ms() + f->cfg.timeout_ms;
  int32_t n;
  int rc;

  if ((rc = ctkn_consumer_partitions(f->c, &n, err)) != CTKN_OK)
    return rc;
  if (n > 64)
    return ctkn__err(err, CTKN_EKAFKA,
                     "%s: %" PRId32 " partitions; a settings topic has at "
                     "most 64",
                     f->cfg.topic, n);
  if (n != f->nparts && (rc = follower_assign(f, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_consumer_watermarks_all(f->c, n, lo, hi, err)) != CTKN_OK)
    return rc;
  for (;;) {
    ctkn_store_txn *txn;
    bool done = true;
    size_t got;

    if ((rc = ctkn_store_begin(f->st, false, &txn, err)) != CTKN_OK)
      return rc;
    for (int32_t p = 0; p < n; p++)
      done = done && settings_offset(txn, p) >= hi[p];
    ctkn_store_abort(txn);
    if (done)
      return CTKN_OK;
    if (f->stopped)
      return ctkn__err(err, CTKN_EFORMAT,
                       "the settings topic holds a newer schema version; "
                       "upgrade ctkn");
    if (ctkn__now_ms() > deadline)
      return ctkn__err(err, CTKN_ETIMEOUT,
                       "settings projection did not reach the end of %s "
                       "within %d ms",
                       f->cfg.topic, f->cfg.timeout_ms);
    if ((rc = ctkn_settings_follower_poll(f, 100, &got, err)) != CTKN_OK)
      return rc;
  }
}

/* ---- one command end to end ------------------------------------------- */

/* The event topic's end offsets: where a new destination starts. */
static int event_topic_ends(const struct ctkn_log_config *cfg, int64_t **ends,
                            int32_t *n, struct ctkn_err *err)
{
  ctkn_consumer *c;
  int64_t *lo = NULL;
  int rc;

  *ends = NULL;
  if ((rc = ctkn_consumer_open(&c, cfg, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_consumer_partitions(c, n, err)) == CTKN_OK) {
    lo = calloc((size_t)(*n > 0 ? *n : 1), sizeof(*lo));
    *ends = calloc((size_t)(*n > 0 ? *n : 1), sizeof(**ends));
    if (lo == NULL || *ends == NULL)
      rc = ctkn__err(err, CTKN_ENOMEM, "end offsets");
    else if (*n > CTKN_STORE_MAX_PARTITIONS)
      rc = ctkn__err(err, CTKN_EKAFKA, "too many partitions");
    else
      rc = ctkn_consumer_watermarks_all(c, *n, lo, *ends, err);
  }
  ctkn_consumer_close(c);
  free(lo);
  if (rc != CTKN_OK) {
    free(*ends);
    *ends = NULL;
  }
  return rc;
}

int ctkn_settings_execute(ctkn_store *st, const struct ctkn_log_config *cfg,
                          const uint8_t *key,
                          const struct ctkn_dest_command *cmd,
                          struct ctkn_dest_outcome *out, struct ctkn_err *err)
{
  struct ctkn_setting_event *ev = NULL;
  ctkn_settings_follower *f = NULL;
  ctkn_producer *prod = NULL;
  struct ctkn_destination cur;
  int64_t *ends = NULL;
  int32_t nends = 0, part;
  int64_t off;
  ctkn_store_txn *txn;
  uint8_t *buf = NULL;
  size_t len;
  bool have = false, applied;
  char reason[256];
  int rc;

  memset(out, 0, sizeof(*out));
  if ((rc = ctkn_dest_command_check(cmd, err)) != CTKN_OK)
    return rc;
  if (cmd->kind == CTKN_DEST_ADD && key == NULL)
    return ctkn__err(err, CTKN_EUSAGE,
                     "adding a destination needs the deployment key "
                     "(--secret-key-file or CTKN_SECRET_KEY_FILE)");
  if ((ev = malloc(sizeof(*ev))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "settings command");
  /* A stale projection must never cause a spurious not_found. */
  if ((rc = ctkn_settings_follower_open(&f, st, cfg, err)) != CTKN_OK ||
      (rc = ctkn_settings_follower_catch_up(f, err)) != CTKN_OK)
    goto out;
  if (cmd->kind == CTKN_DEST_ADD &&
      (rc = event_topic_ends(cfg, &ends, &nends, err)) != CTKN_OK)
    goto out;
  if (cmd->kind != CTKN_DEST_ADD) {
    if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
      goto out;
    rc = ctkn_settings_get(txn, cmd->id, true, &cur, err);
    ctkn_store_abort(txn);
    if (rc != CTKN_OK && rc != CTKN_ENOTFOUND)
      goto out;
    have = rc == CTKN_OK;
  }
  rc = ctkn_settings_plan(have ? &cur : NULL, cmd, key, ends, nends,
                          ctkn_now_us(), ev, out->secret, err);
  if (rc == CTKN_PLAN_NOOP) {
    out->dest = cur;
    rc = CTKN_OK;
    goto out;
  }
  if (rc != CTKN_PLAN_APPEND)
    goto out;
  if ((rc = ctkn_setting_event_encode(ev, &buf, &len, err)) != CTKN_OK)
    goto out;
  {
    struct ctkn_log_config scfg = *cfg;
    if ((rc = ctkn_settings_topic(cfg->topic, scfg.topic, sizeof(scfg.topic),
                                  err)) != CTKN_OK ||
        (rc = ctkn_producer_open(&prod, &scfg, err)) != CTKN_OK)
      goto out;
  }
  rc = ctkn_producer_send(
      prod, -1, ev->data.id, CTKN_DEST_ID_LEN, buf, len, ev->occurred_at / 1000,
      ctkn_setting_type_str(ev->type), CTKN_SCHEMA_VERSION, &part, &off, err);
  if (rc != CTKN_OK ||
      (rc = ctkn_settings_follower_catch_up(f, err)) != CTKN_OK)
    goto out;
  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    goto out;
  rc =
      ctkn_settings_fate(txn, part, off, &applied, reason, sizeof(reason), err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    goto out;
  if (!applied) {
    rc = ctkn__err(err, CTKN_ECONFLICT,
                   "a concurrent change to %s won (%s); re-read it and retry",
                   ev->data.id, reason);
    goto out;
  }
  out->dest = ev->data;
  out->appended = true;
out:
  if (rc != CTKN_OK)
    ctkn_wipe(out->secret, sizeof(out->secret));
  ctkn_producer_close(prod);
  ctkn_settings_follower_close(f);
  free(buf);
  free(ends);
  free(ev);
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
