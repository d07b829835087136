/*
 * trust.c - the projector's side of trust (trust.h): every record passes
 * the gate before it is applied, inside the batch's write transaction.
 *
 * The gate's state is the projection's: loaded from the trust table at
 * the start of each pass, saved with the partitions' offsets, so two
 * processes advancing one projection, or a restart, judge alike. Records
 * the gate holds back (linked, not yet covered by a checkpoint) stay below
 * the stored offset; the projector keeps copies of them and feeds them
 * again, before the records polled next, rather than read them again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/settings.h"
#include "ctkn/trust.h"
#include "projector/projector_int.h"

/* The stored keyring, and its version (8 bytes: a cheap check). */
#define KEYRING_KEY "keyring"
#define VERSION_KEY "keyring.version"

struct ctkn__ptrust {
  const struct ctkn_log_config *cfg; /* NULL: offline, learns from off */
  struct ctkn_trust_source off;      /* offline: borrowed contents */
  bool off_read;                     /* offline: off's keyring was taken */
  ctkn_pubkey *root;                 /* owned */
  struct ctkn_keyring kr;
  ctkn_gate *gate;
  int refused;         /* a keyring enabled this unreadable schema version; 0 */
  bool adoptions_read; /* the settings topic's adoptions (once) */
  int64_t *adopted;    /* by partition: the adopted prefix's end, 0: none */
  bool *touched;       /* partitions fed in this pass */
  struct ctkn_log_msg_copy *held;
  size_t nheld, capheld;
  /* this pass */
  struct ctkn_gate_out *outs; /* by combined index */
  bool *judged;
  bool *lazy; /* by combined index: mark_lazy() */
  size_t capj;
};

void ctkn__ptrust_free(struct ctkn__ptrust *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->nheld; i++)
    ctkn_log_msg_copy_free(&t->held[i]);
  free(t->held);
  free(t->outs);
  free(t->judged);
  free(t->lazy);
  free(t->touched);
  free(t->adopted);
  ctkn_gate_close(t->gate);
  ctkn_keyring_free(&t->kr);
  ctkn_pubkey_free(t->root);
  free(t);
}

static int put_version(ctkn_store_txn *txn, uint64_t v, struct ctkn_err *err)
{
  uint8_t b[8];

  ctkn__put_be64(b, v);
  return ctkn_store_kv_put(txn, CTKN_TABLE_TRUST, VERSION_KEY,
                           strlen(VERSION_KEY), b, sizeof(b), err);
}

int ctkn_projector_keyring_version(ctkn_store *st, uint64_t *version,
                                   struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  const void *val;
  size_t len;
  int rc;

  *version = 0;
  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_TRUST, VERSION_KEY,
                         strlen(VERSION_KEY), &val, &len, err);
  if (rc == CTKN_OK && len == 8)
    *version = ctkn__get_be(val, 8);
  ctkn_store_abort(txn);
  return rc == CTKN_ENOTFOUND ? CTKN_OK : rc;
}

/* At the start of a pass: another process sharing the projection may have
 * stored a newer keyring, or refused one (a pause of every partition):
 * judge as it does. */
static int sync_keyring(struct ctkn__ptrust *t, ctkn_store_txn *txn,
                        struct ctkn_err *err)
{
  struct ctkn_keyring kr;
  const void *val;
  size_t len;
  bool all = false;
  int rc;

  if (!t->refused && (rc = ctkn_store_is_paused(txn, CTKN_STORE_PAUSE_ALL, &all,
                                                err)) != CTKN_OK)
    return rc;
  if (all)
    t->refused = CTKN_SCHEMA_VERSION + 1;
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_TRUST, VERSION_KEY,
                         strlen(VERSION_KEY), &val, &len, err);
  if (rc == CTKN_ENOTFOUND)
    return CTKN_OK;
  if (rc != CTKN_OK || len != 8 || ctkn__get_be(val, 8) <= t->kr.version)
    return rc;
  if ((rc = ctkn_store_kv_get(txn, CTKN_TABLE_TRUST, KEYRING_KEY,
                              strlen(KEYRING_KEY), &val, &len, err)) != CTKN_OK)
    return rc;
  ctkn_keyring_init(&kr);
  if ((rc = ctkn_trust_keyring_open(val, len, t->root, &kr, err)) != CTKN_OK)
    return rc;
  ctkn_keyring_free(&t->kr);
  t->kr = kr;
  ctkn_gate_set_keyring(t->gate, &t->kr);
  return CTKN_OK;
}

/* The keyring stored with the projection, when there is one. */
static int stored_keyring(struct ctkn__ptrust *t, ctkn_store *st,
                          struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  const void *val;
  size_t len;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_get(txn, CTKN_TABLE_TRUST, KEYRING_KEY,
                         strlen(KEYRING_KEY), &val, &len, err);
  if (rc == CTKN_OK)
    rc = ctkn_trust_keyring_open(val, len, t->root, &t->kr, err);
  else if (rc == CTKN_ENOTFOUND)
    rc = CTKN_OK;
  ctkn_store_abort(txn);
  return rc;
}

int ctkn__ptrust_open(struct ctkn__ptrust **out, ctkn_store *st,
                      const struct ctkn_log_config *cfg,
                      const uint8_t root[CTKN_SIGN_PUB_LEN],
                      struct ctkn_err *err)
{
  struct ctkn__ptrust *t;
  int rc;

  *out = NULL;
  if ((t = calloc(1, sizeof(*t))) == NULL ||
      (t->touched = calloc(CTKN_STORE_MAX_PARTITIONS, sizeof(bool))) == NULL ||
      (t->adopted = calloc(CTKN_STORE_MAX_PARTITIONS, sizeof(int64_t))) ==
          NULL) {
    if (t != NULL)
      free(t->touched);
    free(t);
    return ctkn__err(err, CTKN_ENOMEM, "out of memory opening trust");
  }
  t->cfg = cfg;
  ctkn_keyring_init(&t->kr);
  if ((rc = ctkn_pubkey_new(&t->root, root, err)) != CTKN_OK ||
      (rc = stored_keyring(t, st, err)) != CTKN_OK ||
      (rc = ctkn_gate_open(&t->gate, &t->kr, CTKN_STORE_MAX_PARTITIONS, err)) !=
          CTKN_OK) {
    ctkn__ptrust_free(t);
    return rc;
  }
  ctkn_gate_set_root(t->gate, t->root);
  *out = t;
  return CTKN_OK;
}

void ctkn__ptrust_set_source(struct ctkn__ptrust *t,
                             const struct ctkn_trust_source *src)
{
  t->off = *src;
}

const struct ctkn_keyring *ctkn__ptrust_keyring(const struct ctkn__ptrust *t)
{
  return &t->kr;
}

/* ---- the keyring: refreshed when a record names a key it lacks ---------- */

static bool knows_writer(const struct ctkn__ptrust *t,
                         const struct ctkn_log_msg *m)
{
  char key_id[CTKN_KEY_ID_BUF];
  uint8_t inst[CTKN_INSTANCE_LEN];

  for (size_t i = 0; i < m->nheaders; i++) {
    if (strcmp(m->headers[i].name, CTKN_HDR_WRITER) != 0)
      continue;
    if (ctkn_trust_writer_parse(m->headers[i].value, m->headers[i].size, key_id,
                                inst, NULL) != CTKN_OK)
      return true; /* malformed: quarantined whatever the keyring */
    return ctkn_keyring_find(&t->kr, key_id) != NULL;
  }
  return true; /* unsigned: no key to look for */
}

/* The first schema version kr enables that this build cannot read, or 0. */
static int unreadable_schema(const struct ctkn_keyring *kr)
{
  for (size_t i = 0; i < kr->nschemas; i++)
    if (kr->schemas[i] > CTKN_SCHEMA_VERSION)
      return (int)kr->schemas[i];
  return 0;
}

/* Every partition stopped: recorded with the projection, so every read
 * fails closed (query.h) until a build that reads the version runs. */
static int refuse_keyring(struct ctkn__ptrust *t, ctkn_store *st, int version,
                          struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  int rc;

  ctkn__diag(CTKN_DIAG_ERROR, "trust",
             "the keyring enables event schema version %d, newer than this "
             "build's %d: every partition stops; upgrade ctkn",
             version, CTKN_SCHEMA_VERSION);
  t->refused = version;
  if ((rc = ctkn_store_begin(st, true, &txn, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_store_set_pause(txn, CTKN_STORE_PAUSE_ALL, -1, version,
                                 err)) != CTKN_OK) {
    ctkn_store_abort(txn);
    return rc;
  }
  return ctkn_store_commit(txn, err);
}

/* The settings topic's newest keyring signed by the root (live). */
static int fetch_keyring(struct ctkn__ptrust *t, struct ctkn_keyring *kr,
                         uint8_t **raw, size_t *rawlen, struct ctkn_err *err)
{
  struct ctkn_log_config scfg = *t->cfg; /* shallow: overrides borrowed */
  int rc =
      ctkn_settings_topic(t->cfg->topic, scfg.topic, sizeof(scfg.topic), err);

  if (rc == CTKN_OK)
    rc = ctkn_trust_keyring_fetch(&scfg, t->root, kr, raw, rawlen, err);
  return rc;
}

/* Offline, the same from the caller's source: taken once, as a settings
 * topic that does not change. */
static int offline_keyring(struct ctkn__ptrust *t, struct ctkn_keyring *kr,
                           uint8_t **raw, size_t *rawlen, struct ctkn_err *err)
{
  int rc;

  if (t->off_read || t->off.keyring == NULL || t->off.keyring_len == 0)
    return CTKN_OK;
  t->off_read = true;
  if ((*raw = malloc(t->off.keyring_len)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory reading the keyring");
  memcpy(*raw, t->off.keyring, t->off.keyring_len);
  *rawlen = t->off.keyring_len;
  rc = ctkn_trust_keyring_open(*raw, *rawlen, t->root, kr, err);
  if (rc != CTKN_ENOMEM)
    rc = CTKN_OK; /* not the root's: skipped, as the settings topic's are */
  return rc;
}

static int refresh_keyring(struct ctkn__ptrust *t, ctkn_store *st,
                           struct source *src, struct ctkn_err *err)
{
  struct ctkn_keyring kr;
  ctkn_store_txn *txn;
  uint8_t *raw = NULL;
  size_t rawlen = 0, i;
  int rc;

  for (i = 0; src != NULL && i < src->n; i++)
    if (!knows_writer(t, src->msg(src, i)))
      break;
  if (src != NULL && i == src->n && t->kr.version > 0)
    return CTKN_OK;
  ctkn_keyring_init(&kr);
  if (t->cfg == NULL)
    rc = offline_keyring(t, &kr, &raw, &rawlen, err);
  else
    rc = fetch_keyring(t, &kr, &raw, &rawlen, err);
  if (rc == CTKN_ENOTFOUND)
    rc = CTKN_OK; /* no settings topic: no keyring yet */
  if (rc != CTKN_OK || kr.version <= t->kr.version) {
    ctkn_keyring_free(&kr);
    free(raw);
    return rc;
  }
  if ((rc = unreadable_schema(&kr)) != 0) {
    /* Writers may now emit a version this build cannot read: refuse the
     * keyring and fail closed from here (brief: upgrade readers first). */
    ctkn_keyring_free(&kr);
    free(raw);
    return refuse_keyring(t, st, rc, err);
  }
  if ((rc = ctkn_store_begin(st, true, &txn, err)) == CTKN_OK &&
      (rc = ctkn_store_kv_put(txn, CTKN_TABLE_TRUST, KEYRING_KEY,
                              strlen(KEYRING_KEY), raw, rawlen, err)) ==
          CTKN_OK &&
      (rc = put_version(txn, kr.version, err)) == CTKN_OK &&
      (rc = ctkn_store_clear_pause(txn, CTKN_STORE_PAUSE_ALL, INT64_MAX,
                                   err)) == CTKN_OK)
    rc = ctkn_store_commit(txn, err);
  else
    ctkn_store_abort(txn);
  free(raw);
  if (rc != CTKN_OK) {
    ctkn_keyring_free(&kr);
    return rc;
  }
  /* A change is news; the first keyring a replica reads is not. */
  ctkn__diag(t->kr.version > 0 ? CTKN_DIAG_INFO : CTKN_DIAG_DEBUG, "trust",
             "keyring version %" PRIu64 " (%zu keys)", kr.version, kr.nkeys);
  ctkn_keyring_free(&t->kr);
  t->kr = kr;
  ctkn_gate_set_keyring(t->gate, &t->kr);
  return CTKN_OK;
}

/* ---- adopted prefixes (trust.h, "adoption") ------------------------------ */

#define ADOPT_PREFIX "adopt" /* + partition (be32): end (be64), hash */

static int note_adopted(void *arg, const void *key, size_t klen,
                        const void *val, size_t vlen)
{
  struct ctkn__ptrust *t = arg;
  int64_t p;

  if (klen != 9 || vlen != 8 + CTKN_CHAIN_LEN)
    return 0;
  p = (int64_t)ctkn__get_be((const uint8_t *)key + 5, 4);
  if (p >= 0 && p < CTKN_STORE_MAX_PARTITIONS) {
    t->adopted[p] = (int64_t)ctkn__get_be(val, 8);
    ctkn_gate_adopt(t->gate, (int32_t)p, t->adopted[p]);
  }
  return 0;
}

/* The prefixes this projection has checked already (any process). */
static int stored_adoptions(struct ctkn__ptrust *t, ctkn_store *st,
                            struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_walk(txn, CTKN_TABLE_TRUST, ADOPT_PREFIX, 5, 5,
                          note_adopted, t, err);
  ctkn_store_abort(txn);
  return rc == CTKN_ENOTFOUND ? CTKN_OK : rc;
}

/* Check ap against the log (its prefix hashed here, a stream) and, when
 * it matches, keep it with the projection and open the gate to it. */
static int check_adoption(struct ctkn__ptrust *t, ctkn_store *st,
                          const struct ctkn_adopted_partition *ap,
                          struct ctkn_err *err)
{
  uint8_t h[CTKN_CHAIN_LEN], key[9], val[8 + CTKN_CHAIN_LEN];
  ctkn_store_txn *txn;
  int rc;

  if (t->cfg != NULL)
    rc = ctkn_trust_adopt_hash(t->cfg, t->kr.log_id, ap->partition,
                               ap->end_offset, h, err);
  else
    rc = t->off.adopt_hash(t->off.arg, t->kr.log_id, ap->partition,
                           ap->end_offset, h, err);
  if (rc != CTKN_OK)
    return rc;
  if (memcmp(h, ap->records_hash, CTKN_CHAIN_LEN) != 0) {
    ctkn__diag(CTKN_DIAG_ERROR, "trust",
               "the adoption of partition %d up to offset %lld does not match "
               "the log: its unsigned records stay quarantined",
               (int)ap->partition, (long long)ap->end_offset);
    return CTKN_OK;
  }
  memcpy(key, ADOPT_PREFIX, 5);
  ctkn__put_be32(key + 5, (uint32_t)ap->partition);
  ctkn__put_be64(val, (uint64_t)ap->end_offset);
  memcpy(val + 8, h, CTKN_CHAIN_LEN);
  if ((rc = ctkn_store_begin(st, true, &txn, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_store_kv_put(txn, CTKN_TABLE_TRUST, key, sizeof(key), val,
                              sizeof(val), err)) != CTKN_OK) {
    ctkn_store_abort(txn);
    return rc;
  }
  if ((rc = ctkn_store_commit(txn, err)) != CTKN_OK)
    return rc;
  t->adopted[ap->partition] = ap->end_offset;
  ctkn_gate_adopt(t->gate, ap->partition, ap->end_offset);
  ctkn__diag(CTKN_DIAG_INFO, "trust",
             "partition %d: the adopted prefix up to offset %lld matches",
             (int)ap->partition, (long long)ap->end_offset);
  return CTKN_OK;
}

/* Whether src holds an unsigned record outside every adopted prefix. */
static bool meets_unadopted(const struct ctkn__ptrust *t, struct source *src)
{
  for (size_t i = 0; src != NULL && i < src->n; i++) {
    const struct ctkn_log_msg *m = src->msg(src, i);
    bool signed_ = false;
    for (size_t k = 0; k < m->nheaders && !signed_; k++)
      signed_ = strcmp(m->headers[k].name, CTKN_HDR_WRITER) == 0;
    if (!signed_ && m->partition >= 0 &&
        m->partition < CTKN_STORE_MAX_PARTITIONS &&
        m->offset >= t->adopted[m->partition])
      return true;
  }
  return false;
}

/* Every adoption the root signed for the keyring's log, from the settings
 * topic (live). */
static int fetch_adoptions(struct ctkn__ptrust *t, struct ctkn_adoption *a,
                           struct ctkn_err *err)
{
  struct ctkn_log_config scfg = *t->cfg; /* shallow: overrides borrowed */
  int rc =
      ctkn_settings_topic(t->cfg->topic, scfg.topic, sizeof(scfg.topic), err);

  return rc == CTKN_OK
             ? ctkn_trust_adoption_fetch(&scfg, t->root, t->kr.log_id, a, err)
             : rc;
}

/* Offline, the same from the caller's source: a copy of its adoptions when
 * they are for the keyring's log, else none. */
static int offline_adoptions(struct ctkn__ptrust *t, struct ctkn_adoption *a,
                             struct ctkn_err *err)
{
  memset(a, 0, sizeof(*a));
  memcpy(a->log_id, t->kr.log_id, CTKN_LOG_ID_LEN);
  if (t->off.adoption == NULL || t->off.adopt_hash == NULL ||
      memcmp(t->off.adoption->log_id, t->kr.log_id, CTKN_LOG_ID_LEN) != 0)
    return CTKN_OK;
  int rc = ctkn_adoption_merge(a, t->off.adoption, err);
  if (rc != CTKN_OK)
    ctkn_adoption_free(a);
  return rc;
}

/* The first unsigned record outside what is adopted: the prefixes checked
 * already, then (once per process) the settings topic's adoptions, each
 * checked against the log. */
static int refresh_adoptions(struct ctkn__ptrust *t, ctkn_store *st,
                             struct source *src, struct ctkn_err *err)
{
  struct ctkn_adoption a;
  int rc;

  if (t->adoptions_read || t->kr.version == 0 || !meets_unadopted(t, src))
    return CTKN_OK;
  if ((rc = stored_adoptions(t, st, err)) != CTKN_OK ||
      !meets_unadopted(t, src))
    return rc;
  t->adoptions_read = true;
  if (t->cfg == NULL)
    rc = offline_adoptions(t, &a, err);
  else
    rc = fetch_adoptions(t, &a, err);
  if (rc != CTKN_OK)
    return rc == CTKN_ENOTFOUND ? CTKN_OK : rc;
  for (size_t i = 0; i < a.nparts && rc == CTKN_OK; i++)
    if (a.parts[i].partition >= 0 &&
        a.parts[i].partition < CTKN_STORE_MAX_PARTITIONS &&
        a.parts[i].end_offset > t->adopted[a.parts[i].partition])
      rc = check_adoption(t, st, &a.parts[i], err);
  ctkn_adoption_free(&a);
  return rc;
}

int ctkn__ptrust_refresh(struct ctkn__ptrust *t, ctkn_store *st,
                         struct source *src, struct ctkn_err *err)
{
  int rc = refresh_keyring(t, st, src, err);

  return rc == CTKN_OK ? refresh_adoptions(t, st, src, err) : rc;
}

/* ---- a pass: load, feed, judge, save ------------------------------------ */

#define GATE_PREFIX "gate" /* + partition: the gate's state (trust.h) */

int ctkn__ptrust_checkpoint_at(ctkn_store_txn *txn, int32_t p, int64_t *at,
                               struct ctkn_err *err)
{
  return ctkn_gate_stored_checkpoint_at(txn, GATE_PREFIX, p, at, err);
}

static int load_partition(struct ctkn__ptrust *t, ctkn_store_txn *txn,
                          int32_t p, struct ctkn_err *err)
{
  t->touched[p] = true;
  return ctkn_gate_load_stored(t->gate, txn, GATE_PREFIX, p, err);
}

static int room(struct ctkn__ptrust *t, size_t n, struct ctkn_err *err)
{
  void *a, *b;

  if (n <= t->capj)
    return CTKN_OK;
  a = realloc(t->outs, n * sizeof(*t->outs));
  if (a != NULL)
    t->outs = a;
  b = realloc(t->judged, n * sizeof(*t->judged));
  if (b != NULL)
    t->judged = b;
  void *c = realloc(t->lazy, n * sizeof(*t->lazy));
  if (c != NULL)
    t->lazy = c;
  if (a == NULL || b == NULL || c == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory judging a batch");
  t->capj = n;
  return CTKN_OK;
}

size_t ctkn__ptrust_carried(const struct ctkn__ptrust *t)
{
  return t->nheld;
}

const struct ctkn_log_msg *
ctkn__ptrust_carried_msg(const struct ctkn__ptrust *t, size_t i)
{
  return &t->held[i].m;
}

/* A checkpoint's writer instance: its ctkn-writer header, or NULL. */
static const struct ctkn_log_header *writer_hdr(const struct ctkn_log_msg *m)
{
  if (strcmp(m->event_type, CTKN_TYPE_CHECKPOINT) != 0)
    return NULL;
  for (size_t i = 0; i < m->nheaders; i++)
    if (strcmp(m->headers[i].name, CTKN_HDR_WRITER) == 0)
      return &m->headers[i];
  return NULL;
}

static uint64_t writer_hash(int32_t p, const struct ctkn_log_header *h)
{
  uint64_t x = 1469598103934665603ull ^ (uint32_t)p;

  for (size_t i = 0; i < h->size; i++)
    x = (x ^ ((const uint8_t *)h->value)[i]) * 1099511628211ull;
  return x;
}

/* lazy[k]: record k is a checkpoint and not the newest of its instance on
 * its partition in this batch, so its signature waits for the newest's
 * (ctkn_gate_feed_lazy()). One verification per instance and batch. A
 * positional keyring record is a barrier: the newest checkpoint before it
 * is verified too, since the keyring may revoke the key of every one after
 * it, which would then prove nothing before it. */
static int mark_lazy(struct ctkn__judge *j, bool *lazy, struct ctkn_err *err)
{
  size_t ncp = 0, cap = 16;
  long *set;

  for (size_t k = 0; k < j->n; k++) {
    lazy[k] = false;
    ncp += writer_hdr(j->msg(j, k)) != NULL;
  }
  if (ncp < 2)
    return CTKN_OK;
  while (cap < 2 * ncp)
    cap *= 2;
  if ((set = malloc(cap * sizeof(*set))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory judging a batch");
  for (size_t i = 0; i < cap; i++)
    set[i] = -1;
  for (size_t k = j->n; k-- > 0;) {
    const struct ctkn_log_msg *m = j->msg(j, k);
    const struct ctkn_log_header *h = writer_hdr(m);
    if (strcmp(m->event_type, CTKN_TYPE_KEYRING) == 0)
      for (size_t i = 0; i < cap; i++)
        set[i] = -1; /* rare: the barrier holds on every partition */
    if (h == NULL || h->value == NULL)
      continue;
    for (size_t i = writer_hash(m->partition, h) & (cap - 1);;
         i = (i + 1) & (cap - 1)) {
      if (set[i] < 0) {
        set[i] = (long)k; /* the newest of its instance: verified */
        break;
      }
      const struct ctkn_log_msg *o = j->msg(j, (size_t)set[i]);
      const struct ctkn_log_header *oh = writer_hdr(o);
      if (o->partition == m->partition && oh->size == h->size &&
          memcmp(oh->value, h->value, h->size) == 0) {
        lazy[k] = true;
        break;
      }
    }
  }
  free(set);
  return CTKN_OK;
}

/* Feed record k (m) when it is the next its partition's gate should see;
 * next[] follows what was fed. */
static int feed_one(struct ctkn__ptrust *t, ctkn_store_txn *txn,
                    const struct ctkn_log_msg *m, size_t k, bool lazy,
                    struct ctkn__judge *j, struct ctkn_err *err)
{
  int32_t p = m->partition;
  int rc;

  j->verdict[k] = JV_SKIP;
  if (p < 0 || p >= CTKN_STORE_MAX_PARTITIONS)
    return CTKN_OK;
  if (j->next[p] < 0) {
    if ((rc = ctkn_store_offset(txn, p, &j->next[p], err)) != CTKN_OK ||
        (rc = load_partition(t, txn, p, err)) != CTKN_OK)
      return rc;
  }
  if (m->offset < j->next[p] || (j->paused != NULL && j->paused[p]))
    return CTKN_OK;
  j->next[p] = m->offset + 1;
  j->verdict[k] = JV_HELD;
  return lazy ? ctkn_gate_feed_lazy(t->gate, m, k, err)
              : ctkn_gate_feed(t->gate, m, k, err);
}

/* Take p's judged records; a record to apply whose schema is newer than
 * this build's stops the partition there (JV_PAUSE), the rest held. */
static void drain(struct ctkn__ptrust *t, int32_t p, struct ctkn__judge *j)
{
  struct ctkn_gate_out o;

  while (ctkn_gate_peek(t->gate, p, &o)) {
    const struct ctkn_log_msg *m = j->msg(j, o.tag);
    if (o.verdict == CTKN_GATE_APPLY &&
        m->schema_version > CTKN_SCHEMA_VERSION) {
      j->verdict[o.tag] = JV_PAUSE;
      ctkn_gate_reset(t->gate, p);
      return;
    }
    ctkn_gate_next(t->gate, p, &o);
    t->outs[o.tag] = o;
    j->verdict[o.tag] = o.verdict == CTKN_GATE_APPLY        ? JV_APPLY
                        : o.verdict == CTKN_GATE_CHECKPOINT ? JV_CHECKPOINT
                                                            : JV_QUARANTINE;
  }
}

int ctkn__ptrust_refused(const struct ctkn__ptrust *t)
{
  return t->refused;
}

int ctkn__ptrust_judge(struct ctkn__ptrust *t, ctkn_store_txn *txn,
                       struct ctkn__judge *j, struct ctkn_err *err)
{
  int rc;

  if ((rc = sync_keyring(t, txn, err)) != CTKN_OK)
    return rc;
  /* Nothing the root signed to judge by (a root that is not the
   * deployment's, or a topic imported without its settings topic): apply
   * and quarantine nothing, which a keyring arriving later could not
   * undo; the pass fails, and a follower tries again (transient). */
  if (t->kr.version == 0 && j->n > 0)
    return ctkn__err(err, CTKN_ESTALE,
                     "no keyring signed by the trust root: nothing on the "
                     "topic can be judged (is --trust-root the "
                     "deployment's root? after `ctkn import`, import the "
                     "settings topic's archive too)");
  if (t->refused) { /* every partition stops at its first record here */
    for (size_t k = 0; k < j->n; k++)
      j->verdict[k] = JV_PAUSE;
    return CTKN_OK;
  }

  if ((rc = room(t, j->n, err)) != CTKN_OK ||
      (rc = mark_lazy(j, t->lazy, err)) != CTKN_OK)
    return rc;
  for (int32_t p = 0; p < CTKN_STORE_MAX_PARTITIONS; p++)
    t->touched[p] = false;
  for (size_t k = 0; k < j->n; k++)
    if ((rc = feed_one(t, txn, j->msg(j, k), k, t->lazy[k], j, err)) != CTKN_OK)
      return rc;
  for (int32_t p = 0; p < CTKN_STORE_MAX_PARTITIONS; p++)
    if (t->touched[p])
      drain(t, p, j);
  return CTKN_OK;
}

const char *ctkn__ptrust_reason(const struct ctkn__ptrust *t, size_t k)
{
  return t->outs[k].reason;
}

void ctkn__ptrust_log(const struct ctkn__ptrust *t, size_t k,
                      const struct ctkn_log_msg *m)
{
  struct ctkn__buf f = CTKN__BUF_INIT;
  char coords[64];

  snprintf(coords, sizeof(coords), "\"partition\":%d,\"offset\":%lld",
           (int)m->partition, (long long)m->offset);
  if (ctkn__buf_puts(&f, coords) == CTKN_OK &&
      ctkn__buf_json_member(&f, "reason", t->outs[k].reason) == CTKN_OK &&
      ctkn__buf_json_member(&f, "detail", t->outs[k].detail) == CTKN_OK)
    ctkn__diag_fields(CTKN_DIAG_WARN, "trust", "record quarantined", f.data);
  ctkn__buf_free(&f);
}

int ctkn__ptrust_save(struct ctkn__ptrust *t, ctkn_store_txn *txn,
                      struct ctkn_err *err)
{
  int rc = CTKN_OK;

  for (int32_t p = 0; p < CTKN_STORE_MAX_PARTITIONS && rc == CTKN_OK; p++)
    if (t->touched[p])
      rc = ctkn_gate_save_stored(t->gate, txn, GATE_PREFIX, p, err);
  return rc;
}

/* ---- held-back records, carried to the next pass ------------------------- */

int ctkn__ptrust_carry(struct ctkn__ptrust *t, struct ctkn__judge *j,
                       struct ctkn_err *err)
{
  struct ctkn_log_msg_copy *keep = NULL;
  size_t n = 0;

  for (size_t k = 0; k < j->n; k++)
    n += j->verdict[k] == JV_HELD &&
         !(j->paused && j->paused[j->msg(j, k)->partition]);
  if (n > 0 && (keep = calloc(n, sizeof(*keep))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory holding records back");
  n = 0;
  for (size_t k = 0; k < j->n; k++) {
    const struct ctkn_log_msg *m = j->msg(j, k);
    if (j->verdict[k] != JV_HELD || (j->paused && j->paused[m->partition]))
      continue;
    if (ctkn_log_msg_copy(&keep[n], m, NULL) != CTKN_OK) {
      for (size_t i = 0; i < n; i++)
        ctkn_log_msg_copy_free(&keep[i]);
      free(keep);
      return ctkn__err(err, CTKN_ENOMEM, "out of memory holding records back");
    }
    n++;
  }
  for (size_t i = 0; i < t->nheld; i++)
    ctkn_log_msg_copy_free(&t->held[i]);
  free(t->held);
  t->held = keep;
  t->nheld = n;
  return CTKN_OK;
}

int64_t ctkn__ptrust_held_first(const struct ctkn__ptrust *t, int32_t p)
{
  for (size_t i = 0; i < t->nheld; i++)
    if (t->held[i].m.partition == p)
      return t->held[i].m.offset;
  return -1;
}
