/*
 * audit.c - an archive's records through the trust gate (audit.h).
 *
 * Two reads: the keyring archive for the root's newest keyring, then the
 * audited archive, record by record into a gate (every checkpoint's
 * signature verified: an audit is not in a hurry). The gate borrows a
 * record until it comes out judged, and the archive reader lends a batch
 * only for its call, so each record fed is copied into a queue, in feed
 * order, which is the order verdicts come out. An archive holds its
 * partitions one after another, so when the next partition starts the
 * last one's held records are final: no checkpoint in the archive covers
 * them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/audit.h"
#include "ctkn/codec.h"
#include "ctkn/settings.h"
#include "ctkn/store.h"
#include "ctkn/trust.h"
#include "internal.h"

_Static_assert(CTKN_AUDIT_REASON == CTKN_GATE_REASON,
               "an audit's reasons are the gate's");

void ctkn_audit_report_free(struct ctkn_audit_report *r)
{
  if (r != NULL)
    ctkn_archive_info_free(&r->info);
}

/* ---- the keyring ----------------------------------------------------------
 */

/* The root's newest keyring in the archive at path into *kr, and its
 * adoptions for that keyring's log into *ad (archive.h). */
static int read_keyring(const char *path, const ctkn_pubkey *root,
                        struct ctkn_keyring *kr, struct ctkn_adoption *ad,
                        struct ctkn_err *err)
{
  struct ctkn_archive_trust t;
  int rc;

  if ((rc = ctkn_archive_trust_read(path, root, &t, err)) != CTKN_OK)
    return rc;
  *kr = t.kr;
  *ad = t.ad;
  free(t.keyring);
  return CTKN_OK;
}

/* ---- the audited archive ---------------------------------------------- */

struct audit {
  const ctkn_pubkey *root;
  const struct ctkn_archive_info *info; /* filled before the first batch */
  struct ctkn_audit_trust *t;
  ctkn_gate *gate;
  bool started;
  bool settings;    /* the archive is a settings topic's */
  int32_t part;     /* the partition being fed; -1 before the first */
  uint64_t kr_seen; /* the newest keyring version met in the archive */
  /* the records fed and not yet out: q[head..n), tags base.. */
  struct ctkn_log_msg_copy **q; /* each apart: the gate holds &q[i]->m */
  size_t head, n, cap, base;
};

static void drop(struct ctkn_log_msg_copy *c)
{
  ctkn_log_msg_copy_free(c);
  free(c);
}

static void fail(struct ctkn_audit_trust *t, int32_t p, int64_t off,
                 const char *reason, const char *detail)
{
  t->failed++;
  if (t->nfailures == CTKN_AUDIT_FAILURES)
    return;
  struct ctkn_audit_failure *f = &t->failures[t->nfailures++];
  f->partition = p;
  f->offset = off;
  ctkn__strlcpy(f->reason, reason, sizeof(f->reason));
  ctkn__strlcpy(f->detail, detail, sizeof(f->detail));
}

/* A keyring record in the audited archive: signed by the root, newer than
 * the one before it. */
static void judge_keyring(struct audit *a, const struct ctkn_log_msg *m)
{
  struct ctkn_keyring kr;
  char why[CTKN_AUDIT_REASON];

  ctkn_keyring_init(&kr);
  if (ctkn_trust_keyring_open(m->value, m->value_len, a->root, &kr, NULL) !=
      CTKN_OK) {
    fail(a->t, m->partition, m->offset, "keyring: not signed by the trust root",
         "a keyring record the root did not sign");
  } else if (kr.version <= a->kr_seen) {
    snprintf(why, sizeof(why),
             "version %" PRIu64 " is not above %" PRIu64 " before it",
             kr.version, a->kr_seen);
    fail(a->t, m->partition, m->offset,
         "keyring: a lower version (a replay or a rollback)", why);
  } else {
    a->kr_seen = kr.version;
    a->t->root_records++;
  }
  ctkn_keyring_free(&kr);
}

static bool unsigned_(const struct ctkn_log_msg *m)
{
  for (size_t i = 0; i < m->nheaders; i++)
    if (strcmp(m->headers[i].name, CTKN_HDR_WRITER) == 0)
      return false;
  return true;
}

/* An adoption record in the audited archive: signed by the root. */
static void judge_adoption(struct audit *a, const struct ctkn_log_msg *m)
{
  struct ctkn_adoption ad;

  if (ctkn_trust_adoption_open(m->value, m->value_len, a->root, &ad, NULL) !=
      CTKN_OK) {
    fail(a->t, m->partition, m->offset,
         "adoption: not signed by the trust root",
         "an adoption record the root did not sign");
    return;
  }
  a->t->root_records++;
  ctkn_adoption_free(&ad);
}

/* Take the judged records of p off the gate and the queue. */
static void drain(struct audit *a, int32_t p)
{
  struct ctkn_gate_out o;

  while (ctkn_gate_next(a->gate, p, &o)) {
    if (o.verdict == CTKN_GATE_APPLY && unsigned_(&a->q[a->head]->m))
      a->t->adopted++;
    else if (o.verdict == CTKN_GATE_APPLY)
      a->t->proven++;
    else if (o.verdict == CTKN_GATE_CHECKPOINT &&
             strcmp(a->q[a->head]->m.event_type, CTKN_TYPE_KEYRING) == 0)
      a->t->root_records++; /* a positional keyring */
    else if (o.verdict == CTKN_GATE_CHECKPOINT)
      a->t->checkpoints++;
    else
      fail(a->t, p, o.offset, o.reason, o.detail);
    /* verdicts come out in feed order: o.tag is the queue's head */
    drop(a->q[a->head++]);
    a->base++;
  }
  if (a->head == a->n)
    a->head = a->n = 0;
}

/* The archive moves past partition p: what the gate still holds of it is
 * covered by no checkpoint in the archive. */
static void finish(struct audit *a, int32_t p)
{
  char why[CTKN_AUDIT_REASON];
  int64_t first = -1;

  if (p < 0)
    return;
  drain(a, p);
  if (a->head < a->n)
    first = a->q[a->head]->m.offset;
  for (size_t i = a->head; i < a->n; i++) {
    const struct ctkn_log_msg *m = &a->q[i]->m;
    if (m->offset == first)
      snprintf(why, sizeof(why), "the archive ends before a checkpoint");
    else
      snprintf(why, sizeof(why), "held back behind offset %" PRId64, first);
    fail(a->t, p, m->offset, "not covered by a checkpoint in the archive", why);
    drop(a->q[i]);
  }
  a->base += a->n - a->head;
  a->head = a->n = 0;
  ctkn_gate_reset(a->gate, p);
}

static int enqueue(struct audit *a, const struct ctkn_log_msg *m,
                   struct ctkn_err *err)
{
  if (a->head > 0 && a->n == a->cap) { /* reuse what was drained */
    memmove(a->q, a->q + a->head, (a->n - a->head) * sizeof(*a->q));
    a->n -= a->head;
    a->head = 0;
  }
  if (a->n == a->cap) {
    size_t cap = a->cap ? 2 * a->cap : 256;
    void *q = realloc(a->q, cap * sizeof(*a->q));
    if (q == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "audit: out of memory");
    a->q = q;
    a->cap = cap;
  }
  struct ctkn_log_msg_copy *c = malloc(sizeof(*c));
  if (c == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "audit: out of memory");
  if (ctkn_log_msg_copy(c, m, err) != CTKN_OK) {
    free(c);
    return CTKN_ENOMEM;
  }
  size_t tag = a->base + (a->n - a->head);
  a->q[a->n++] = c;
  return ctkn_gate_feed(a->gate, &c->m, tag, err);
}

/* An archive that starts past a partition's first record is judged as
 * `ctkn tail` judges: chains anchor on a checkpoint (trust.h). */
static void start(struct audit *a)
{
  size_t n = strlen(a->info->topic), k = strlen(CTKN_SETTINGS_SUFFIX);

  a->started = true;
  /* Root records pass in their place on a settings topic only, as the
   * settings follower passes them; on an event topic they are records
   * like any other (and unsigned ones fail). */
  a->settings =
      n > k && strcmp(a->info->topic + n - k, CTKN_SETTINGS_SUFFIX) == 0;
  for (int32_t p = 0; p < a->info->partitions; p++)
    if (a->info->start_offsets[p] > 0) {
      ctkn_gate_set_midstream(a->gate);
      return;
    }
}

static int audit_batch(void *arg, const struct ctkn_log_msg *msgs,
                       const struct ctkn_archive_headers *headers, size_t n,
                       struct ctkn_err *err)
{
  struct audit *a = arg;
  int rc;

  (void)headers;
  if (!a->started)
    start(a);
  for (size_t i = 0; i < n; i++) {
    const struct ctkn_log_msg *m = &msgs[i];
    if (m->partition != a->part) {
      finish(a, a->part);
      a->part = m->partition;
    }
    if (a->settings && strcmp(m->event_type, CTKN_TYPE_KEYRING) == 0) {
      judge_keyring(a, m);
      continue;
    }
    if (a->settings && strcmp(m->event_type, CTKN_TYPE_ADOPTION) == 0) {
      judge_adoption(a, m);
      continue;
    }
    if ((rc = enqueue(a, m, err)) != CTKN_OK)
      return rc;
    drain(a, m->partition);
  }
  return CTKN_OK;
}

/* ---- adopted prefixes: hashed in a first pass over the archive ---------- */

struct prefix_ctx {
  const struct ctkn_adoption *ad;
  const uint8_t *log_id;
  ctkn_gate *gate;
  struct ctkn_audit_trust *t;
  int32_t part;   /* the partition being hashed, -1: none */
  size_t at;      /* its entry in ad */
  ctkn_sha256 *h; /* its hash so far */
  int64_t next;   /* the offset the hash expects next */
};

/* Close the hash of the current partition: adopted when it matches. */
static void prefix_end(struct prefix_ctx *x)
{
  uint8_t got[CTKN_CHAIN_LEN];
  const struct ctkn_adopted_partition *ap;

  if (x->h == NULL)
    return;
  ap = &x->ad->parts[x->at];
  ctkn_trust_adopt_end(x->h, got);
  x->h = NULL;
  if (x->next == ap->end_offset &&
      memcmp(got, ap->records_hash, CTKN_CHAIN_LEN) == 0)
    ctkn_gate_adopt(x->gate, ap->partition, ap->end_offset);
  else
    fail(x->t, ap->partition, ap->end_offset,
         "adoption: the records below this offset are not the ones the root "
         "adopted",
         "their hash differs, or the archive lacks some");
}

/* Start hashing partition p when an adoption names it. */
static int prefix_start(struct prefix_ctx *x, int32_t p, struct ctkn_err *err)
{
  x->part = p;
  for (size_t i = 0; i < x->ad->nparts; i++)
    if (x->ad->parts[i].partition == p && x->ad->parts[i].end_offset > 0) {
      x->at = i;
      x->next = 0;
      if ((x->h = ctkn_trust_adopt_begin(x->log_id, p)) == NULL)
        return ctkn__err(err, CTKN_ENOMEM, "audit: out of memory");
    }
  return CTKN_OK;
}

static int prefix_batch(void *arg, const struct ctkn_log_msg *msgs,
                        const struct ctkn_archive_headers *headers, size_t n,
                        struct ctkn_err *err)
{
  struct prefix_ctx *x = arg;
  int rc;

  (void)headers;
  for (size_t i = 0; i < n; i++) {
    const struct ctkn_log_msg *m = &msgs[i];
    if (m->partition != x->part) {
      prefix_end(x);
      if ((rc = prefix_start(x, m->partition, err)) != CTKN_OK)
        return rc;
    }
    if (x->h != NULL && m->offset == x->next &&
        m->offset < x->ad->parts[x->at].end_offset) {
      ctkn_trust_adopt_add(x->h, m);
      x->next++;
    }
  }
  return CTKN_OK;
}

/* Open the gate to every adopted prefix the archive holds unchanged. */
static int check_prefixes(const char *path, const struct ctkn_adoption *ad,
                          const uint8_t *log_id, ctkn_gate *gate,
                          struct ctkn_audit_trust *t, struct ctkn_err *err)
{
  struct prefix_ctx x = {ad, log_id, gate, t, -1, 0, NULL, 0};
  struct ctkn_archive_info info;
  int rc;

  if (ad->nparts == 0)
    return CTKN_OK;
  rc = ctkn_archive_read(path, prefix_batch, &x, &info, err);
  ctkn_archive_info_free(&info);
  if (rc == CTKN_OK) {
    prefix_end(&x);
  } else if (x.h != NULL) {
    uint8_t sink[CTKN_CHAIN_LEN];
    ctkn_trust_adopt_end(x.h, sink);
  }
  return rc;
}

static int judge_archive(const char *path, const ctkn_pubkey *root,
                         const struct ctkn_keyring *kr,
                         const struct ctkn_adoption *ad,
                         struct ctkn_audit_report *r, struct ctkn_err *err)
{
  struct audit a = {.root = root, .info = &r->info, .t = &r->trust, .part = -1};
  int rc;

  if ((rc = ctkn_gate_open(&a.gate, kr, CTKN_STORE_MAX_PARTITIONS, err)) !=
      CTKN_OK)
    return rc;
  ctkn_gate_set_root(a.gate, root);
  if ((rc = check_prefixes(path, ad, kr->log_id, a.gate, &r->trust, err)) ==
      CTKN_OK)
    rc = ctkn_archive_read(path, audit_batch, &a, &r->info, err);
  if (rc == CTKN_OK)
    finish(&a, a.part);
  for (size_t i = a.head; i < a.n; i++)
    drop(a.q[i]);
  free(a.q);
  ctkn_gate_close(a.gate);
  return rc;
}

int ctkn_audit_verify(const char *path, const char *keyring_path,
                      const uint8_t root[CTKN_SIGN_PUB_LEN],
                      struct ctkn_audit_report *r, struct ctkn_err *err)
{
  struct ctkn_adoption ad = {0};
  struct ctkn_keyring kr;
  ctkn_pubkey *rp = NULL;
  int rc;

  memset(r, 0, sizeof(*r));
  ctkn_keyring_init(&kr);
  if ((rc = ctkn_pubkey_new(&rp, root, err)) == CTKN_OK &&
      (rc = read_keyring(keyring_path ? keyring_path : path, rp, &kr, &ad,
                         err)) == CTKN_OK) {
    memcpy(r->trust.log_id, kr.log_id, CTKN_LOG_ID_LEN);
    r->trust.keyring_version = kr.version;
    rc = judge_archive(path, rp, &kr, &ad, r, err);
  }
  ctkn_adoption_free(&ad);
  ctkn_keyring_free(&kr);
  ctkn_pubkey_free(rp);
  if (rc != CTKN_OK) {
    ctkn_audit_report_free(r);
    memset(r, 0, sizeof(*r));
  }
  return rc;
}

int ctkn_audit_result(const struct ctkn_audit_report *r, struct ctkn_err *err)
{
  const struct ctkn_audit_failure *f = &r->trust.failures[0];

  if (r->trust.failed == 0)
    return CTKN_OK;
  return ctkn__err_field(err, CTKN_EDECODE, "records",
                         "partition %" PRId32 " offset %" PRId64
                         ": %s (%s); %" PRIu64 " record(s) fail",
                         f->partition, f->offset, f->reason, f->detail,
                         r->trust.failed);
}
