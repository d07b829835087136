/*
 * delivery.c - the notifications topic: its name and creation, its
 * projection (delivery.h), its follower, and the reads of what it holds.
 *
 * Tables (store.h side tables), all replicated, none in the digest:
 *
 *   deliveries         ntf ID                    -> codec's notification
 *   delivery_attempts  ntf ID + seq (BE32)       -> codec's attempt
 *   delivery_offsets   partition (BE32)          -> next offset (BE u64)
 *   delivery_log       partition + offset (BE)   -> why it was quarantined
 *
 * The follower is follow_int.h's, the settings topic's too: a consumer
 * assigned every partition at the stored offsets, and with trust a gate
 * whose state rests in the trust table under "dgate" + partition.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/delivery.h"
#include "ctkn/settings.h"
#include "ctkn/trust.h"
#include "follow_int.h"
#include "internal.h"

#define COORD_LEN   12
#define ATT_KEY_LEN (CTKN_NTF_ID_LEN + 4)
#define NPARTS      CTKN_DELIVERY_MAX_PARTS

_Static_assert(NPARTS <= CTKN__FOLLOW_MAX_PARTS,
               "the gate judges each partition");

/* ---- the topic ------------------------------------------------------------
 */

int ctkn_delivery_topic(const char *topic, char *out, size_t outsz,
                        struct ctkn_err *err)
{
  size_t n = strlen(topic), s = strlen(CTKN_DELIVERY_SUFFIX);

  if (n + s > 249 || n + s >= outsz)
    return ctkn__err_field(err, CTKN_EINVAL, "topic",
                           "must be at most %zu characters, so that its "
                           "notifications topic (+\"%s\") fits Kafka's 249",
                           249 - s, CTKN_DELIVERY_SUFFIX);
  memcpy(out, topic, n);
  memcpy(out + n, CTKN_DELIVERY_SUFFIX, s + 1);
  return CTKN_OK;
}

int ctkn_delivery_create_topic(const struct ctkn_log_config *cfg,
                               int32_t event_partitions, int replication_factor,
                               bool *created, int32_t *partitions,
                               struct ctkn_err *err)
{
  struct ctkn_log_config dcfg = *cfg; /* overrides borrowed, as cfg's */
  int32_t n = event_partitions < 1 ? 1 : event_partitions;
  int rc;

  *created = false;
  *partitions = 0;
  if (n > NPARTS)
    n = NPARTS;
  rc = ctkn_delivery_topic(cfg->topic, dcfg.topic, sizeof(dcfg.topic), err);
  if (rc == CTKN_OK)
    rc = ctkn_log_create_topic(&dcfg, n, replication_factor, created,
                               partitions, err);
  return rc;
}

int32_t ctkn_delivery_partition(const char *ntf_id, int32_t nparts)
{
  return ctkn_log_partition_for(ntf_id, CTKN_NTF_ID_LEN, nparts);
}

/* ---- the projection --------------------------------------------------------
 */

int64_t ctkn_delivery_offset(ctkn_store_txn *txn, int32_t p)
{
  uint8_t k[4];
  const void *v;
  size_t vlen;

  ctkn__put_be32(k, (uint32_t)p);
  if (ctkn_store_kv_get(txn, CTKN_TABLE_DELIVERY_OFFSETS, k, sizeof(k), &v,
                        &vlen, NULL) != CTKN_OK ||
      vlen != 8)
    return 0;
  return (int64_t)ctkn__get_be(v, 8);
}

static int put_next(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                    struct ctkn_err *err)
{
  uint8_t k[4], v[8];

  ctkn__put_be32(k, (uint32_t)m->partition);
  ctkn__put_be64(v, (uint64_t)(m->offset + 1));
  return ctkn_store_kv_put(txn, CTKN_TABLE_DELIVERY_OFFSETS, k, sizeof(k), v,
                           sizeof(v), err);
}

static void coord_key(uint8_t k[COORD_LEN], int32_t p, int64_t o)
{
  ctkn__put_be32(k, (uint32_t)p);
  ctkn__put_be64(k + 4, (uint64_t)o);
}

static int quarantine(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                      const char *why, struct ctkn_err *err)
{
  uint8_t k[COORD_LEN];
  size_t n = strlen(why);

  ctkn__diag(CTKN_DIAG_WARN, "delivery",
             "notifications record at %" PRId32 "/%" PRId64 " quarantined: %s",
             m->partition, m->offset, why);
  coord_key(k, m->partition, m->offset);
  return ctkn_store_kv_put(txn, CTKN_TABLE_DELIVERY_LOG, k, sizeof(k), why,
                           n > 255 ? 255 : n, err);
}

int ctkn_delivery_quarantined(ctkn_store_txn *txn, int32_t p, int64_t offset,
                              char *reason, size_t reasonsz,
                              struct ctkn_err *err)
{
  uint8_t k[COORD_LEN];
  const void *v;
  size_t vlen;
  int rc;

  coord_key(k, p, offset);
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_DELIVERY_LOG, k, sizeof(k), &v, &vlen,
                         err);
  if (rc == CTKN_OK && reasonsz > 0) {
    size_t n = vlen < reasonsz - 1 ? vlen : reasonsz - 1;
    memcpy(reason, v, n);
    reason[n] = '\0';
  }
  return rc;
}

/* The stored notification id into *n; *found says whether there was one. */
static int load_row(ctkn_store_txn *txn, const char *id,
                    struct ctkn_notification *n, bool *found,
                    struct ctkn_err *err)
{
  const void *v;
  size_t vlen;
  int rc = ctkn_store_kv_get(txn, CTKN_TABLE_DELIVERIES, id, CTKN_NTF_ID_LEN,
                             &v, &vlen, err);

  *found = rc == CTKN_OK;
  if (rc == CTKN_ENOTFOUND)
    return CTKN_OK;
  if (rc != CTKN_OK)
    return rc;
  if (ctkn_notification_decode(v, vlen, n, NULL) != CTKN_OK)
    return ctkn__err(err, CTKN_ESTORE, "deliveries: %s does not decode", id);
  return CTKN_OK;
}

static int put_row(ctkn_store_txn *txn, const struct ctkn_notification *n,
                   struct ctkn_err *err)
{
  uint8_t *buf;
  size_t len;
  int rc;

  if ((rc = ctkn_notification_encode(n, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_DELIVERIES, n->id, CTKN_NTF_ID_LEN,
                         buf, len, err);
  free(buf);
  return rc;
}

/* A new row from a record's notification fields: not attempted yet. */
static void new_row(const struct ctkn_delivery *d, struct ctkn_notification *n)
{
  *n = d->n;
  n->status = CTKN_NTF_NOT_ATTEMPTED;
  n->replay = n->replay_of[0] != '\0';
  n->attempts = 0;
  n->first_attempt_at = n->last_attempt_at = 0;
  n->delivered_at = n->retry_at = 0;
  n->last_status = 0;
}

/* An attempt: numbered after the row's last one, in log order. */
static int apply_attempt(ctkn_store_txn *txn, const struct ctkn_delivery *d,
                         struct ctkn_notification *n, struct ctkn_err *err)
{
  struct ctkn_ntf_attempt a = d->a;
  uint8_t k[ATT_KEY_LEN], *buf;
  size_t len;
  int rc;

  a.n = n->attempts + 1;
  memcpy(k, n->id, CTKN_NTF_ID_LEN);
  ctkn__put_be32(k + CTKN_NTF_ID_LEN, a.n);
  if ((rc = ctkn_attempt_encode(&a, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_DELIVERY_ATTEMPTS, k, sizeof(k), buf,
                         len, err);
  free(buf);
  n->attempts = a.n;
  if (n->first_attempt_at == 0)
    n->first_attempt_at = a.at;
  n->last_attempt_at = a.at;
  n->last_status = a.status;
  if (a.status >= 200 && a.status < 300) {
    n->status = CTKN_NTF_DELIVERED;
    if (n->delivered_at == 0)
      n->delivered_at = a.at;
    n->retry_at = 0;
  } else if (n->status != CTKN_NTF_DELIVERED && n->status != CTKN_NTF_FAILED) {
    n->status = CTKN_NTF_NEEDS_RETRY;
    n->retry_at = d->retry_at;
  }
  return rc;
}

/* A replay waits in the queue table (notify.h's) until it settles: the
 * notifier holding its event's partition takes it from there. */
static int queue_replay(ctkn_store_txn *txn, const struct ctkn_notification *n,
                        bool settled, struct ctkn_err *err)
{
  int rc;

  if (!n->replay)
    return CTKN_OK;
  if (!settled)
    return ctkn_store_kv_put(txn, CTKN_TABLE_QUEUE, n->id, CTKN_NTF_ID_LEN, "",
                             0, err);
  rc = ctkn_store_kv_del(txn, CTKN_TABLE_QUEUE, n->id, CTKN_NTF_ID_LEN, err);
  return rc == CTKN_ENOTFOUND ? CTKN_OK : rc;
}

int ctkn_delivery_apply(ctkn_store_txn *txn, const struct ctkn_delivery *d,
                        struct ctkn_err *err)
{
  struct ctkn_notification n;
  bool found;
  int rc = load_row(txn, d->n.id, &n, &found, err);

  if (rc != CTKN_OK)
    return rc;
  if (!found)
    new_row(d, &n);
  else if (d->type == CTKN_DLV_CREATED || d->type == CTKN_DLV_REPLAY)
    return CTKN_OK; /* the first in the log made it */
  if (d->type == CTKN_DLV_REPLAY &&
      (rc = queue_replay(txn, &n, false, err)) != CTKN_OK)
    return rc;
  switch (d->type) {
  case CTKN_DLV_ATTEMPTED:
    rc = apply_attempt(txn, d, &n, err);
    break;
  case CTKN_DLV_DELIVERED:
    n.status = CTKN_NTF_DELIVERED;
    if (n.delivered_at == 0)
      n.delivered_at = d->at;
    n.retry_at = 0;
    break;
  case CTKN_DLV_FAILED:
    if (n.status != CTKN_NTF_DELIVERED)
      n.status = CTKN_NTF_FAILED;
    n.retry_at = 0;
    break;
  default:
    break;
  }
  if (rc == CTKN_OK &&
      (n.status == CTKN_NTF_DELIVERED || n.status == CTKN_NTF_FAILED))
    rc = queue_replay(txn, &n, true, err);
  return rc != CTKN_OK ? rc : put_row(txn, &n, err);
}

/* One record, past the gate if any: applied or quarantined; then its
 * partition's next offset. */
static int project_one(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                       struct ctkn_delivery *d, struct ctkn_err *err)
{
  struct ctkn_err derr;
  int rc;

  if (strncmp(m->event_type, "ctkn.", 5) == 0)
    rc = CTKN_OK; /* a trust record: the gate has judged it */
  else if (ctkn_delivery_decode(m->event_type, m->value, m->value_len, d,
                                &derr) != CTKN_OK)
    rc = quarantine(txn, m, derr.msg, err);
  else if (m->key_len != CTKN_NTF_ID_LEN ||
           memcmp(m->key, d->n.id, CTKN_NTF_ID_LEN) != 0)
    rc = quarantine(txn, m, "key: not the record's notification_id", err);
  else
    rc = ctkn_delivery_apply(txn, d, err);
  return rc != CTKN_OK ? rc : put_next(txn, m, err);
}

/* ---- trust: the records through a gate (trust.h) --------------------------
 */

enum { V_OUT, V_HELD, V_APPLY, V_CHECKPOINT, V_QUARANTINE };

#define DGATE_PREFIX "dgate"

/* Feed the batch to the gate, each partition from its stored offset on and
 * without gaps, and take its verdicts. */
static int judge(struct ctkn__judged *j, ctkn_store_txn *txn,
                 const struct ctkn_log_msg *msgs, size_t n,
                 struct ctkn_err *err)
{
  struct ctkn_gate_out o;
  int rc;

  for (size_t i = 0; i < n; i++) {
    const struct ctkn_log_msg *m = &msgs[i];
    int32_t p = m->partition;
    j->v[i] = V_OUT;
    if (p < 0 || p >= NPARTS)
      continue;
    if (j->next[p] < 0) {
      j->next[p] = ctkn_delivery_offset(txn, p);
      if ((rc = ctkn_gate_load_stored(j->gate, txn, DGATE_PREFIX, p, err)) !=
          CTKN_OK)
        return rc;
    }
    if (m->offset != j->next[p])
      continue; /* below the stored offset, or past a gap */
    j->next[p]++;
    j->v[i] = V_HELD;
    if ((rc = ctkn_gate_feed(j->gate, m, i, err)) != CTKN_OK)
      return rc;
  }
  for (int32_t p = 0; p < NPARTS; p++)
    while (j->next[p] >= 0 && ctkn_gate_next(j->gate, p, &o)) {
      j->v[o.tag] = o.verdict == CTKN_GATE_APPLY        ? V_APPLY
                    : o.verdict == CTKN_GATE_CHECKPOINT ? V_CHECKPOINT
                                                        : V_QUARANTINE;
      memcpy(j->why[o.tag], o.reason, sizeof(j->why[o.tag]));
    }
  return CTKN_OK;
}

static int gate_save(struct ctkn__judged *j, ctkn_store_txn *txn,
                     struct ctkn_err *err)
{
  int rc = CTKN_OK;

  for (int32_t p = 0; p < NPARTS && rc == CTKN_OK; p++)
    if (j->next[p] >= 0)
      rc = ctkn_gate_save_stored(j->gate, txn, DGATE_PREFIX, p, err);
  return rc;
}

/* Record i of a judged batch; held back records stop their partition. */
static int project_judged(struct ctkn__judged *j, ctkn_store_txn *txn,
                          const struct ctkn_log_msg *m, size_t i,
                          struct ctkn_delivery *d, struct ctkn_err *err)
{
  int32_t p = m->partition;
  int rc;

  if (j->held[p] >= 0 || j->v[i] == V_HELD) {
    if (j->held[p] < 0)
      j->held[p] = m->offset;
    return CTKN_OK;
  }
  if (j->v[i] == V_CHECKPOINT)
    return put_next(txn, m, err);
  if (j->v[i] == V_QUARANTINE) {
    rc = quarantine(txn, m, j->why[i], err);
    return rc != CTKN_OK ? rc : put_next(txn, m, err);
  }
  return project_one(txn, m, d, err);
}

static int newer(const struct ctkn_log_msg *m, struct ctkn_err *err)
{
  return ctkn__err(err, CTKN_EFORMAT,
                   "notifications record at %" PRId32 "/%" PRId64
                   " has schema version %d, newer than this build's %d; "
                   "upgrade ctkn",
                   m->partition, m->offset, m->schema_version,
                   CTKN_SCHEMA_VERSION);
}

/* Every record of msgs in one transaction (j: through the gate). */
static int project_txn(ctkn_store_txn *txn, const struct ctkn_log_msg *msgs,
                       size_t n, struct ctkn__judged *j,
                       struct ctkn_delivery *d, struct ctkn_err *err)
{
  int rc = CTKN_OK;

  if (j != NULL && (rc = judge(j, txn, msgs, n, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < n && rc == CTKN_OK; i++) {
    const struct ctkn_log_msg *m = &msgs[i];
    if (j != NULL && j->v[i] == V_OUT)
      continue;
    if (j == NULL && (m->partition < 0 || m->partition >= NPARTS ||
                      m->offset < ctkn_delivery_offset(txn, m->partition)))
      continue;
    if ((j == NULL || j->v[i] == V_APPLY) &&
        m->schema_version > CTKN_SCHEMA_VERSION)
      return newer(m, err); /* keep what came before; stop here */
    rc = j != NULL ? project_judged(j, txn, m, i, d, err)
                   : project_one(txn, m, d, err);
  }
  if (rc == CTKN_OK && j != NULL)
    rc = gate_save(j, txn, err);
  return rc;
}

static int project(ctkn_store *st, const struct ctkn_log_msg *msgs, size_t n,
                   struct ctkn__judged *j, struct ctkn_err *err)
{
  struct ctkn_delivery *d;
  ctkn_store_txn *txn = NULL;
  struct ctkn_err cerr;
  int rc, crc;

  if (n == 0)
    return CTKN_OK;
  if ((d = malloc(sizeof(*d))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "delivery: record buffer");
  if ((rc = ctkn_store_begin(st, true, &txn, err)) != CTKN_OK) {
    free(d);
    return rc;
  }
  rc = project_txn(txn, msgs, n, j, d, err);
  free(d);
  if (rc != CTKN_OK && rc != CTKN_EFORMAT) {
    ctkn_store_abort(txn);
    return rc;
  }
  if ((crc = ctkn_store_commit(txn, &cerr)) != CTKN_OK) {
    if (err != NULL)
      *err = cerr;
    return crc;
  }
  return rc;
}

int ctkn_delivery_project(ctkn_store *st, const struct ctkn_log_msg *msgs,
                          size_t n, struct ctkn_err *err)
{
  return project(st, msgs, n, NULL, err);
}

/* ---- following the topic (follow_int.h) ---------------------------------- */

static const struct ctkn__follow_side side = {
    .kind = "notifications",
    .diag = "delivery",
    .batch = 512,
    .max_parts = NPARTS,
    .keyring_verdict = -1,
    .topic = ctkn_delivery_topic,
    .offset = ctkn_delivery_offset,
    .project = project,
};

#define FOLLOWER(f) ((ctkn__follower *)(void *)(f))

int ctkn_delivery_follower_open(ctkn_delivery_follower **out, ctkn_store *st,
                                const struct ctkn_log_config *cfg,
                                struct ctkn_err *err)
{
  ctkn__follower *f;
  int rc = ctkn__follow_open(&f, &side, st, cfg, err);

  *out = (ctkn_delivery_follower *)(void *)f;
  return rc;
}

void ctkn_delivery_follower_close(ctkn_delivery_follower *f)
{
  ctkn__follow_close(FOLLOWER(f));
}

int ctkn_delivery_follower_set_trust(ctkn_delivery_follower *f,
                                     const struct ctkn_keyring *kr,
                                     int (*refresh)(void *arg,
                                                    struct ctkn_err *err),
                                     void *arg, struct ctkn_err *err)
{
  return ctkn__follow_set_trust(FOLLOWER(f), kr, refresh, arg, err);
}

ctkn_consumer *ctkn_delivery_follower_consumer(ctkn_delivery_follower *f)
{
  return ctkn__follow_consumer(FOLLOWER(f));
}

int ctkn_delivery_follower_poll(ctkn_delivery_follower *f, int timeout_ms,
                                size_t *applied, struct ctkn_err *err)
{
  return ctkn__follow_poll(FOLLOWER(f), timeout_ms, applied, err);
}

int ctkn_delivery_follower_catch_up(ctkn_delivery_follower *f,
                                    struct ctkn_err *err)
{
  return ctkn__follow_catch_up(FOLLOWER(f), err);
}

/* ---- reads --------------------------------------------------------------- */

int ctkn_delivery_get(ctkn_store_txn *txn, const char *id,
                      struct ctkn_notification *out, struct ctkn_err *err)
{
  bool found;
  int rc;

  if (!ctkn_id_valid("ntf_", id))
    return ctkn__err_field(
        err, CTKN_EINVAL, "id",
        "must be a notification ID (" CTKN_ID_PATTERN("ntf_") ")");
  if ((rc = load_row(txn, id, out, &found, err)) != CTKN_OK)
    return rc;
  return found
             ? CTKN_OK
             : ctkn__err(err, CTKN_ENOTFOUND, "notification %s not found", id);
}

struct walk {
  const struct ctkn_delivery_filter *f;
  ctkn_delivery_cb cb;
  void *arg;
  struct ctkn_notification n;
  int rc; /* CTKN_ESTORE when a value did not decode */
};

static bool selected(const struct ctkn_delivery_filter *f,
                     const struct ctkn_notification *n)
{
  bool dest = f->ndests == 0;

  if (f->status_mask != 0 && !(f->status_mask & (1u << n->status)))
    return false;
  if ((f->has_from && n->occurred_at < f->from_us) ||
      (f->has_to && n->occurred_at >= f->to_us))
    return false;
  for (size_t i = 0; i < f->ndests && !dest; i++)
    dest = strcmp(f->dests[i], n->dest) == 0;
  return dest;
}

static int walk_one(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
  struct walk *w = arg;

  (void)key;
  if (klen != CTKN_NTF_ID_LEN ||
      ctkn_notification_decode(val, vlen, &w->n, NULL) != CTKN_OK) {
    w->rc = CTKN_ESTORE;
    return CTKN_ESTORE;
  }
  if (w->f->after != NULL && w->f->after[0] != '\0' && !w->f->desc &&
      memcmp(key, w->f->after, CTKN_NTF_ID_LEN) == 0)
    return 0; /* the cursor itself: strictly after it */
  return selected(w->f, &w->n) ? w->cb(w->arg, &w->n) : 0;
}

int ctkn_delivery_list(ctkn_store_txn *txn,
                       const struct ctkn_delivery_filter *f,
                       ctkn_delivery_cb cb, void *arg, struct ctkn_err *err)
{
  struct walk w = {.f = f, .cb = cb, .arg = arg};
  const char *after = f->after != NULL ? f->after : "";
  size_t alen = strlen(after);
  int rc;

  if (f->desc)
    rc = ctkn_store_kv_walk_back(txn, CTKN_TABLE_DELIVERIES, after, alen,
                                 walk_one, &w, err);
  else
    rc = ctkn_store_kv_walk(txn, CTKN_TABLE_DELIVERIES, after, alen, 0,
                            walk_one, &w, err);
  if (w.rc == CTKN_ESTORE && rc == CTKN_ESTORE)
    return ctkn__err(err, CTKN_ESTORE, "deliveries: a value does not decode");
  return rc;
}

int ctkn_delivery_count(ctkn_store_txn *txn, int64_t *n, struct ctkn_err *err)
{
  return ctkn_store_kv_count(txn, CTKN_TABLE_DELIVERIES, n, err);
}

struct att_walk {
  ctkn_delivery_attempt_cb cb;
  void *arg;
  struct ctkn_ntf_attempt a;
  bool bad;
};

static int att_one(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
  struct att_walk *w = arg;

  (void)key;
  (void)klen;
  if (ctkn_attempt_decode(val, vlen, &w->a, NULL) != CTKN_OK) {
    w->bad = true;
    return CTKN_ESTORE;
  }
  return w->cb(w->arg, &w->a);
}

int ctkn_delivery_attempts(ctkn_store_txn *txn, const char *id, uint32_t after,
                           ctkn_delivery_attempt_cb cb, void *arg,
                           struct ctkn_err *err)
{
  struct ctkn_notification n;
  struct att_walk w = {.cb = cb, .arg = arg};
  uint8_t k[ATT_KEY_LEN];
  int rc;

  if ((rc = ctkn_delivery_get(txn, id, &n, err)) != CTKN_OK)
    return rc;
  memcpy(k, id, CTKN_NTF_ID_LEN);
  ctkn__put_be32(k + CTKN_NTF_ID_LEN, after + 1);
  rc = ctkn_store_kv_walk(txn, CTKN_TABLE_DELIVERY_ATTEMPTS, k, sizeof(k),
                          CTKN_NTF_ID_LEN, att_one, &w, err);
  if (w.bad && rc == CTKN_ESTORE)
    return ctkn__err(err, CTKN_ESTORE, "delivery_attempts: %s does not decode",
                     id);
  return rc;
}

/* ---- replays ---------------------------------------------------------------
 */

int ctkn_delivery_replayable(ctkn_store_txn *txn,
                             const struct ctkn_notification *n,
                             struct ctkn_err *err)
{
  struct ctkn_destination d;
  struct ctkn_err e;
  int rc;

  if (n->status != CTKN_NTF_DELIVERED && n->status != CTKN_NTF_FAILED)
    return ctkn__err(err, CTKN_ECANNOTREPLAY,
                     "notification %s can't be replayed because it's not "
                     "`delivered` or `failed` (it is %s)",
                     n->id, ctkn_ntf_status_str(n->status));
  if (n->replay)
    return ctkn__err(err, CTKN_EREPLAYORIGIN,
                     "only notifications with the origin `event` can be "
                     "replayed: %s is a replay of %s (replay that one)",
                     n->id, n->replay_of);
  rc = ctkn_settings_get(txn, n->dest, true, &d, &e);
  if (rc == CTKN_OK && d.deleted)
    return ctkn__err(err, CTKN_ECANNOTREPLAY,
                     "notification %s can't be replayed: its notification "
                     "setting %s was removed",
                     n->id, n->dest);
  if (rc != CTKN_OK && rc != CTKN_ENOTFOUND) {
    *err = e;
    return rc;
  }
  return CTKN_OK; /* unknown here yet: the notifier judges it */
}

/* The replay record of the projected notification id, as new_id. */
static int replay_record(ctkn_store *st, const char *id,
                         struct ctkn_delivery *d, char new_id[CTKN_NTF_ID_BUF],
                         struct ctkn_err *err)
{
  struct ctkn_notification n;
  ctkn_store_txn *txn;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_delivery_get(txn, id, &n, err);
  if (rc == CTKN_OK)
    rc = ctkn_delivery_replayable(txn, &n, err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    return rc;
  if ((rc = ctkn_id_generate("ntf_", ctkn_now_us() / 1000, new_id,
                             CTKN_NTF_ID_BUF)) != CTKN_OK)
    return ctkn__err(err, rc, "generating an ID");
  memset(d, 0, sizeof(*d));
  d->type = CTKN_DLV_REPLAY;
  d->n = n;
  memcpy(d->n.replay_of, n.id, sizeof(n.replay_of));
  memcpy(d->n.id, new_id, CTKN_NTF_ID_BUF);
  d->n.replay = true;
  d->at = ctkn_now_us();
  return CTKN_OK;
}

/* Produce rec to cfg's notifications topic, signed when key is set. */
static int send_replay(const struct ctkn_log_config *cfg,
                       const struct ctkn_keyring *kr, const ctkn_seckey *key,
                       struct ctkn_log_record *rec, struct ctkn_err *err)
{
  struct ctkn_log_config dcfg = *cfg;
  struct ctkn_log_record *out = rec;
  ctkn_producer *prod = NULL;
  ctkn_consumer *c = NULL;
  ctkn_signer *sg = NULL;
  size_t nout = 1;
  int32_t nparts = 0;
  int rc = ctkn_delivery_topic(cfg->topic, dcfg.topic, sizeof(dcfg.topic), err);

  if (rc == CTKN_OK && (rc = ctkn_consumer_open(&c, &dcfg, err)) == CTKN_OK)
    rc = ctkn_consumer_partitions(c, &nparts, err);
  ctkn_consumer_close(c);
  if (rc == CTKN_OK) {
    rec->partition = ctkn_delivery_partition(rec->key, nparts);
    rc = ctkn_producer_open(&prod, &dcfg, err);
  }
  if (rc == CTKN_OK && key != NULL &&
      (rc = ctkn_signer_open(&sg, key, kr->log_id, nparts, err)) == CTKN_OK)
    rc = ctkn_signer_prepare(sg, rec, 1, CTKN_SIGN_CLOSING, ctkn_now_us(), &out,
                             &nout, err);
  if (rc == CTKN_OK)
    rc = ctkn_producer_send_batch(prod, out, nout, err);
  ctkn_signer_close(sg);
  ctkn_producer_close(prod);
  return rc;
}

int ctkn_delivery_request_replay(ctkn_store *st,
                                 const struct ctkn_log_config *cfg,
                                 const struct ctkn_keyring *kr,
                                 const ctkn_seckey *key, const char *id,
                                 char new_id[CTKN_NTF_ID_BUF],
                                 struct ctkn_err *err)
{
  struct ctkn_delivery d;
  uint8_t *buf = NULL;
  size_t len;
  int rc;

  if (key != NULL &&
      (kr == NULL || !ctkn_keyring_schema_enabled(kr, CTKN_SCHEMA_DELIVERY)))
    return ctkn__err_field(err, CTKN_EINVAL, "writer_key",
                           "the keyring does not enable event schema version "
                           "%d (ctkn trust schema enable %d): replays cannot "
                           "be appended yet",
                           CTKN_SCHEMA_DELIVERY, CTKN_SCHEMA_DELIVERY);
  if ((rc = replay_record(st, id, &d, new_id, err)) != CTKN_OK ||
      (rc = ctkn_delivery_encode(&d, &buf, &len, err)) != CTKN_OK)
    return rc;
  struct ctkn_log_record rec = {.key = d.n.id,
                                .klen = CTKN_NTF_ID_LEN,
                                .value = buf,
                                .vlen = len,
                                .timestamp_ms = d.at / 1000,
                                .event_type = ctkn_dlv_type_str(d.type),
                                .schema_version = CTKN_SCHEMA_DELIVERY};
  rc = send_replay(cfg, kr, key, &rec, err);
  free(buf);
  return rc;
}
