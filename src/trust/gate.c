/*
 * gate.c - the reader's gate (trust.h): every record of a partition, in
 * log order, linked into its writer instance's chain, held back until a
 * verified checkpoint covers it, and released judged.
 *
 * Per partition the gate keeps the instances it knows, each with two
 * heads: the released one (what the projection has applied; saved with
 * it) and the verified one (what the records fed so far have reached; a
 * reset goes back to the released head), and a queue of the records fed
 * and not yet released. Records still pending are also listed apart, so
 * that a checkpoint looks only at them.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/trust.h"
#include "internal.h"

#define MAX_INSTANCES 4096 /* open instances a partition may have */
#define SAVE_MAGIC_1  0x63 /* 'c': a saved state before positional keyrings */
#define SAVE_MAGIC    0x64 /* 'd': the first byte of a saved state */
#define SAVED_INST    (16 + CTKN_INSTANCE_LEN + 8 + CTKN_CHAIN_LEN + 8 + 1)

/* CP_PROV: a checkpoint not verified yet (its signature was not checked,
 * or failed): it waits, like a pending record, for a verified checkpoint
 * of its instance to prove its claims, or for its deadline. */
enum state { PENDING, APPLY, CHECKPOINT, QUARANTINE, CP_PROV };

struct inst {
  char key_id[CTKN_KEY_ID_BUF];
  uint8_t id[CTKN_INSTANCE_LEN];
  uint64_t seq; /* released */
  uint8_t chain[CTKN_CHAIN_LEN];
  int64_t cp_at;
  bool closed;
  uint64_t vseq; /* verified */
  uint8_t vchain[CTKN_CHAIN_LEN];
  int64_t vcp_at;
  bool vclosed;
  uint64_t top;     /* the highest sequence fed */
  long tip;         /* queue index of the last record fed that links, or -1 */
  uint64_t low;     /* at most the lowest pending sequence (0: none pending) */
  uint64_t claimed; /* the highest sequence an unverified checkpoint of
                       this instance claims (they await its proof) */
  bool unanchored;  /* mid-log reader: met before its chain's start is
                       known; a verified checkpoint's from_* anchors it */
};

struct qrec {
  size_t tag;
  int64_t offset;
  enum state st;
  int inst; /* -1 for a record quarantined before it named one */
  uint64_t seq;
  uint8_t chain[CTKN_CHAIN_LEN];
  long prev; /* queue index it follows; -1: the verified head; -3:
                not known yet (a mid-log reader's first record of an
                instance) */
  uint8_t digest[CTKN_CHAIN_LEN]; /* what the chain covers of it */
  int64_t ref_at; /* first verified checkpoint after it (pending only) */
  int64_t ts_us;  /* its timestamp (occurred_at), or -1 */
  int64_t signed_at;
  bool closing;
  bool tried;      /* CP_PROV: its signature was checked and fails */
  bool unverified; /* a checkpoint accepted on a later one's proof: its
                      time and closing are claims, not facts */
  const struct ctkn_log_msg *m;  /* CP_PROV: to verify it later */
  struct ctkn_keyring *ring;     /* a positional keyring record's (owned until
                                    released, then the partition's) */
  char reason[CTKN_GATE_REASON]; /* replicated: the same on every reader */
  char detail[CTKN_GATE_REASON]; /* this reader's view, for its log */
};

struct partq {
  struct inst *insts;
  size_t ninst, capinst;
  struct qrec *q;
  size_t head, n, cap;
  long *pend; /* queue indexes of pending records */
  size_t npend, cappend;
  int64_t cp_at;       /* newest released checkpoint */
  int64_t vcp_at;      /* newest verified checkpoint */
  int64_t adopted_end; /* unsigned records below it are applied */
  /* The positional keyring: the newest root-signed ctkn.keyring record
   * on this partition. rring is the released one (owned, saved; NULL:
   * none yet); ring what records fed now are judged by (rring or the
   * newest fed keyring record's). */
  struct ctkn_keyring *rring;
  const struct ctkn_keyring *ring;
};

struct pubc {
  char key_id[CTKN_KEY_ID_BUF];
  ctkn_pubkey *pub;
};

struct ctkn_gate {
  bool midstream; /* ctkn_gate_set_midstream() */
  const struct ctkn_keyring *kr;
  const ctkn_pubkey *root; /* ctkn_gate_set_root(); NULL: none */
  struct pubc *pubs; /* writer keys' public keys by ID, made on first use */
  size_t npubs, cappubs;
  int32_t nparts;
  struct partq *parts;
};

static void drop_pubs(ctkn_gate *g)
{
  for (size_t i = 0; i < g->npubs; i++)
    ctkn_pubkey_free(g->pubs[i].pub);
  free(g->pubs);
  g->pubs = NULL;
  g->npubs = g->cappubs = 0;
}

static void ring_free(struct ctkn_keyring *kr)
{
  ctkn_keyring_free(kr);
  free(kr);
}

void ctkn_gate_set_midstream(ctkn_gate *g)
{
  g->midstream = true;
}

void ctkn_gate_adopt(ctkn_gate *g, int32_t p, int64_t end)
{
  if (p >= 0 && p < g->nparts)
    g->parts[p].adopted_end = end;
}

void ctkn_gate_set_keyring(ctkn_gate *g, const struct ctkn_keyring *kr)
{
  g->kr = kr; /* the public keys cached stay: a key ID names one key */
}

void ctkn_gate_set_root(ctkn_gate *g, const ctkn_pubkey *root)
{
  g->root = root;
}

uint64_t ctkn_gate_keyring_version(const ctkn_gate *g, int32_t p)
{
  return g->parts[p].rring != NULL ? g->parts[p].rring->version : 0;
}

int ctkn_gate_open(ctkn_gate **out, const struct ctkn_keyring *kr,
                   int32_t nparts, struct ctkn_err *err)
{
  ctkn_gate *g;

  *out = NULL;
  if (nparts < 1)
    return ctkn__err(err, CTKN_EUSAGE, "a gate needs partitions (got %d)",
                     (int)nparts);
  if ((g = calloc(1, sizeof(*g))) == NULL ||
      (g->parts = calloc((size_t)nparts, sizeof(*g->parts))) == NULL) {
    free(g);
    return ctkn__err(err, CTKN_ENOMEM, "out of memory opening a gate");
  }
  g->nparts = nparts;
  ctkn_gate_set_keyring(g, kr);
  *out = g;
  return CTKN_OK;
}

void ctkn_gate_close(ctkn_gate *g)
{
  if (g == NULL)
    return;
  for (int32_t p = 0; p < g->nparts; p++) {
    struct partq *pq = &g->parts[p];
    for (size_t i = pq->head; i < pq->n; i++)
      if (pq->q[i].ring != NULL)
        ring_free(pq->q[i].ring);
    if (pq->rring != NULL)
      ring_free(pq->rring);
    free(g->parts[p].insts);
    free(g->parts[p].q);
    free(g->parts[p].pend);
  }
  free(g->parts);
  drop_pubs(g);
  free(g);
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem,
                struct ctkn_err *err)
{
  size_t c = *cap ? *cap : 16;
  void *p;

  if (need <= *cap)
    return CTKN_OK;
  while (c < need)
    c *= 2;
  if ((p = realloc(*arr, c * elem)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory in the trust gate");
  *arr = p;
  *cap = c;
  return CTKN_OK;
}

/* ---- instances ---------------------------------------------------------- */

static int find_inst(const struct partq *pq, const char *key_id,
                     const uint8_t id[CTKN_INSTANCE_LEN])
{
  for (size_t i = 0; i < pq->ninst; i++)
    if (memcmp(pq->insts[i].id, id, CTKN_INSTANCE_LEN) == 0 &&
        strcmp(pq->insts[i].key_id, key_id) == 0)
      return (int)i;
  return -1;
}

static int add_inst(struct partq *pq, const char *key_id,
                    const uint8_t id[CTKN_INSTANCE_LEN], struct ctkn_err *err)
{
  struct inst *x;
  int rc;

  if (pq->ninst >= MAX_INSTANCES)
    return ctkn__err(err, CTKN_EINVAL,
                     "more than %d writer instances open on the partition",
                     MAX_INSTANCES);
  if ((rc = grow((void **)&pq->insts, &pq->capinst, pq->ninst + 1,
                 sizeof(*pq->insts), err)) != CTKN_OK)
    return rc;
  x = &pq->insts[pq->ninst];
  memset(x, 0, sizeof(*x));
  ctkn__strlcpy(x->key_id, key_id, sizeof(x->key_id));
  memcpy(x->id, id, CTKN_INSTANCE_LEN);
  x->tip = -1;
  return (int)pq->ninst++;
}

/* Whether instance x is forgotten (not kept, not saved) on partition pq:
 * it holds nothing released, or it closed (or has no record: a heartbeat
 * instance) and the partition's newest checkpoint is past the replay
 * window after its last, so that a copy of its checkpoints is stale. A
 * heartbeat instance (sequence 0, a verified checkpoint) is kept until
 * then: forgotten at once, a copy of its heartbeat verified again as new,
 * and whether it was a replay depended on where a read batch ended. */
static bool forgotten(const struct partq *pq, const struct inst *x)
{
  /* A mid-log reader anchored it at a heartbeat (its head, vseq, is the
   * checkpoint's, not a released record's): kept, compact() would set its
   * head back to the chain's start and its next batch would not link.
   * Forgotten, that batch's checkpoint anchors it again (review). */
  if (x->seq == 0 && (x->cp_at == 0 || x->vseq != 0))
    return true;
  return (x->closed || x->seq == 0) &&
         pq->cp_at > x->cp_at + CTKN_GATE_REPLAY_US;
}

/* Drop instances forgotten(); only while the queue is empty (queue records
 * name instances by index). */
static void compact(struct partq *pq)
{
  size_t k = 0;

  for (size_t i = pq->head; i < pq->n; i++) /* dropped: fed again */
    if (pq->q[i].ring != NULL) {
      ring_free(pq->q[i].ring);
      pq->q[i].ring = NULL;
    }
  pq->ring = pq->rring;
  for (size_t i = 0; i < pq->ninst; i++) {
    struct inst *x = &pq->insts[i];
    if (forgotten(pq, x))
      continue;
    x->vseq = x->seq;
    memcpy(x->vchain, x->chain, CTKN_CHAIN_LEN);
    x->vcp_at = x->cp_at;
    x->vclosed = x->closed;
    x->top = x->seq;
    x->tip = -1;
    x->low = 0;
    x->claimed = 0;
    pq->insts[k++] = *x;
  }
  pq->ninst = k;
  pq->head = pq->n = pq->npend = 0;
  pq->vcp_at = pq->cp_at;
}

/* ---- the queue ----------------------------------------------------------- */

static struct qrec *enqueue(struct partq *pq, const struct ctkn_log_msg *m,
                            size_t tag, struct ctkn_err *err)
{
  struct qrec *r;

  if (grow((void **)&pq->q, &pq->cap, pq->n + 1, sizeof(*pq->q), err) !=
      CTKN_OK)
    return NULL;
  r = &pq->q[pq->n++];
  memset(r, 0, sizeof(*r));
  r->tag = tag;
  r->offset = m->offset;
  r->inst = -1;
  r->prev = -1;
  r->ts_us = m->timestamp_ms >= 0 ? m->timestamp_ms * 1000 : -1;
  return r;
}

static void quarantine(struct qrec *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void quarantine(struct qrec *r, const char *fmt, ...)
{
  va_list ap;

  r->st = QUARANTINE;
  va_start(ap, fmt);
  vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
  va_end(ap);
  memcpy(r->detail, r->reason, sizeof(r->detail));
}

/* Quarantine r as not proven by its writer's chain and checkpoints. Which
 * rule caught it (no link, a replay, a competing record, a closed
 * instance, never checkpointed) can depend on where a reader's batches
 * ended, so only the detail says; the reason every replica records is
 * CTKN_GATE_UNPROVEN, and digests agree. */
static void unproven(struct qrec *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void unproven(struct qrec *r, const char *fmt, ...)
{
  va_list ap;

  r->st = QUARANTINE;
  snprintf(r->reason, sizeof(r->reason), "%s", CTKN_GATE_UNPROVEN);
  va_start(ap, fmt);
  vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
  va_end(ap);
}

static int add_pending(struct partq *pq, long qi, struct ctkn_err *err)
{
  int rc;

  if ((rc = grow((void **)&pq->pend, &pq->cappend, pq->npend + 1,
                 sizeof(*pq->pend), err)) != CTKN_OK)
    return rc;
  pq->pend[pq->npend++] = qi;
  return CTKN_OK;
}

/* Keep only the pending records still pending. */
static void prune_pending(struct partq *pq)
{
  size_t k = 0;

  for (size_t i = 0; i < pq->npend; i++)
    if (pq->q[pq->pend[i]].st == PENDING || pq->q[pq->pend[i]].st == CP_PROV)
      pq->pend[k++] = pq->pend[i];
  pq->npend = k;
}

/* Each instance's claimed: the highest sequence an unverified checkpoint
 * of it claims, not yet found wanting. A pending record so claimed waits
 * for the proof (its instance's newest checkpoint in the read batch is
 * always verified), so no deadline gives it up: a reader that verified
 * that checkpoint at once would have applied it. */
static void refresh_claims(struct partq *pq)
{
  for (size_t i = 0; i < pq->ninst; i++)
    pq->insts[i].claimed = 0;
  for (size_t i = 0; i < pq->npend; i++) {
    const struct qrec *e = &pq->q[pq->pend[i]];
    if (e->st == CP_PROV && !e->tried && e->inst >= 0 &&
        e->seq > pq->insts[e->inst].claimed)
      pq->insts[e->inst].claimed = e->seq;
  }
}

/* Whether pending record r waits for a claimed proof. */
static bool claimed(const struct partq *pq, const struct qrec *r)
{
  return r->st == PENDING && r->seq <= pq->insts[r->inst].claimed;
}

/* ---- a record of a writer ------------------------------------------------ */

static const struct ctkn_log_header *header(const struct ctkn_log_msg *m,
                                            const char *name)
{
  for (size_t i = 0; i < m->nheaders; i++)
    if (strcmp(m->headers[i].name, name) == 0)
      return &m->headers[i];
  return NULL;
}

static bool parse_seq(const struct ctkn_log_header *h, uint64_t *seq)
{
  const char *s = h ? h->value : NULL;
  uint64_t v = 0;

  if (s == NULL || h->size == 0 || h->size > 19 || s[0] == '0')
    return false;
  for (size_t i = 0; i < h->size; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  *seq = v;
  return true;
}

static int hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1; /* uppercase too: the chain is written lowercase */
}

static bool parse_chain(const struct ctkn_log_header *h,
                        uint8_t out[CTKN_CHAIN_LEN])
{
  const unsigned char *s = h ? h->value : NULL;

  if (s == NULL || h->size != 2 * CTKN_CHAIN_LEN)
    return false;
  for (size_t i = 0; i < CTKN_CHAIN_LEN; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}

/*
 * Key key_id as partition pq judges it at the record being fed, or NULL
 * when no keyring has it. *revoked tells whether it is revoked there. A
 * key the partition's positional keyring holds is judged by that entry
 * alone: a revocation takes effect from its keyring record's position. A
 * key it lacks (added on the settings topic after the partition's last
 * keyring record) is judged by the settings keyring, whose revocations do
 * not count: they count from their position, and the settings keyring a
 * reader holds depends on when it read it. A partition with no positional
 * keyring yet (a log from before them) is judged by the settings keyring.
 * A key revoked retroactively (in either keyring; the settings keyring's
 * is the newest this reader has) is refused wherever its record stands:
 * a projection built after the revoke (a rebuild, a new replica) refuses
 * all its records, one already past them keeps them until rebuilt.
 */
static const struct ctkn_writer_key *key_of(const ctkn_gate *g,
                                            const struct partq *pq,
                                            const char *key_id, bool *revoked)
{
  const struct ctkn_writer_key *k = NULL, *s = ctkn_keyring_find(g->kr, key_id);
  bool retro = s != NULL && s->retroactive;

  if (pq->ring != NULL && (k = ctkn_keyring_find(pq->ring, key_id)) != NULL) {
    *revoked = k->revoked || k->retroactive || retro;
    return k;
  }
  if (s == NULL)
    return NULL;
  *revoked = (pq->ring == NULL && s->revoked) || retro;
  return s;
}

/* The writer key of m, checked against the keyring, or NULL with r
 * quarantined. */
static const struct ctkn_writer_key *
writer_of(const ctkn_gate *g, const struct ctkn_log_msg *m, struct qrec *r,
          char key_id[CTKN_KEY_ID_BUF], uint8_t id[CTKN_INSTANCE_LEN])
{
  const struct ctkn_log_header *h = header(m, CTKN_HDR_WRITER);
  const struct ctkn_writer_key *k;
  bool revoked = false;

  if (h == NULL) {
    quarantine(r, "unsigned: no %s header", CTKN_HDR_WRITER);
    return NULL;
  }
  if (ctkn_trust_writer_parse(h->value, h->size, key_id, id, NULL) != CTKN_OK) {
    quarantine(r, "header %s is not <key ID>.<instance>", CTKN_HDR_WRITER);
    return NULL;
  }
  if ((k = key_of(g, &g->parts[m->partition], key_id, &revoked)) == NULL) {
    quarantine(r, "writer key %s is not in the keyring", key_id);
    return NULL;
  }
  if (revoked) {
    quarantine(r, "writer key %s is revoked", key_id);
    return NULL;
  }
  return k;
}

/* Quarantine x's pending records more than CTKN_GATE_MAX_AHEAD behind
 * seq. x->low bounds the lowest pending sequence from below, so the scan
 * runs only when one may be that far behind. */
static void too_far_behind(struct partq *pq, int xi, uint64_t seq)
{
  struct inst *x = &pq->insts[xi];
  uint64_t low = 0;
  bool any = false;

  if (x->low == 0 || x->low + CTKN_GATE_MAX_AHEAD >= seq)
    return;
  refresh_claims(pq);
  for (size_t i = 0; i < pq->npend; i++) {
    struct qrec *r = &pq->q[pq->pend[i]];
    /* One an unverified checkpoint claims waits for its proof. */
    if (r->inst != xi || r->st != PENDING || r->seq <= x->claimed)
      continue;
    if (r->seq + CTKN_GATE_MAX_AHEAD < seq) {
      unproven(r, "never checkpointed: its instance wrote %d more records",
               CTKN_GATE_MAX_AHEAD);
      any = true;
    } else if (low == 0 || r->seq < low) {
      low = r->seq;
    }
  }
  x->low = low;
  if (any)
    prune_pending(pq);
}

/* The queue index r links to (-1: the verified head), or -2 when none. */
static long find_prev(const struct partq *pq, const struct inst *x,
                      uint64_t seq, const uint8_t digest[CTKN_CHAIN_LEN],
                      const uint8_t claimed[CTKN_CHAIN_LEN])
{
  uint8_t c[CTKN_CHAIN_LEN];

  if (x->tip >= 0 && pq->q[x->tip].st != QUARANTINE &&
      pq->q[x->tip].seq + 1 == seq) {
    ctkn_trust_chain_next(pq->q[x->tip].chain, digest, c);
    if (memcmp(c, claimed, CTKN_CHAIN_LEN) == 0)
      return x->tip;
  }
  if (seq == x->vseq + 1) {
    ctkn_trust_chain_next(x->vchain, digest, c);
    if (memcmp(c, claimed, CTKN_CHAIN_LEN) == 0)
      return -1;
  }
  for (size_t i = 0; i < pq->npend; i++) {
    const struct qrec *p = &pq->q[pq->pend[i]];
    /* A record, never an unverified checkpoint: a record may only follow
     * a record, and a checkpoint whose record the log lacks must not
     * carry the chain over the gap (it would, read lazily, and not when
     * the checkpoint was verified: readers would differ). */
    if (p->st != PENDING || &pq->insts[p->inst] != x || p->seq + 1 != seq)
      continue;
    ctkn_trust_chain_next(p->chain, digest, c);
    if (memcmp(c, claimed, CTKN_CHAIN_LEN) == 0)
      return pq->pend[i];
  }
  return -2;
}

/* At MAX_INSTANCES: a slot for a new instance, or -1. Anyone who can
 * append can open instances (a record under a key ID in the keyring and a
 * made-up instance, linked to its chain's start, waits for a checkpoint),
 * so a full table must not refuse a genuine writer's new instance. One
 * with nothing released, no verified checkpoint and nothing in the queue
 * but quarantined records, or records pending that no checkpoint claims
 * (a genuine writer's records are checkpointed in their produce batch),
 * gives its slot up: those first (nothing to see), else the one whose
 * first pending record comes first in the log, its pending records given
 * up as never checkpointed (unproven, as a deadline would). */
static int reclaim(struct partq *pq)
{
  bool *busy = calloc(pq->ninst, sizeof(*busy));
  int64_t *first = malloc(pq->ninst * sizeof(*first));
  int64_t best_at = INT64_MAX;
  int best = -1;

  if (busy == NULL || first == NULL) {
    free(busy);
    free(first);
    return -1;
  }
  for (size_t i = 0; i < pq->ninst; i++)
    first[i] = -1;
  for (size_t i = pq->head; i < pq->n; i++) {
    const struct qrec *r = &pq->q[i];
    if (r->inst < 0 || r->st == QUARANTINE)
      continue;
    if (r->st != PENDING)
      busy[r->inst] = true; /* applied, a checkpoint, or one unverified */
    else if (first[r->inst] < 0)
      first[r->inst] = r->offset;
  }
  for (size_t i = 0; i < pq->ninst; i++) {
    const struct inst *x = &pq->insts[i];
    if (busy[i] || x->seq != 0 || x->cp_at != 0 || x->vseq != 0 ||
        x->vcp_at != 0)
      continue;
    if (first[i] < best_at) {
      best = (int)i;
      best_at = first[i];
    }
  }
  free(busy);
  free(first);
  if (best < 0)
    return -1;
  for (size_t i = 0; i < pq->npend; i++) {
    struct qrec *r = &pq->q[pq->pend[i]];
    if (r->st == PENDING && r->inst == best)
      unproven(r,
               "never checkpointed: its instance gave its place up to a "
               "newer one (more than %d open on the partition)",
               MAX_INSTANCES);
  }
  prune_pending(pq);
  /* Every record left of it is quarantined: none names the slot now. */
  for (size_t i = pq->head; i < pq->n; i++)
    if (pq->q[i].inst == best)
      pq->q[i].inst = -1;
  return best;
}

/* The instance of m on pq (added when new), or -1 with r quarantined. */
static int instance_of(const ctkn_gate *g, struct partq *pq,
                       const struct ctkn_keyring *kr, int32_t part,
                       const char *key_id, const uint8_t id[CTKN_INSTANCE_LEN],
                       struct qrec *r)
{
  struct ctkn_err e = {0};
  int xi = find_inst(pq, key_id, id);

  if (xi >= 0)
    return xi;
  if ((xi = add_inst(pq, key_id, id, &e)) < 0) {
    struct inst *x;
    if (pq->ninst < MAX_INSTANCES || (xi = reclaim(pq)) < 0) {
      quarantine(r, "%s", e.msg);
      return -1;
    }
    x = &pq->insts[xi]; /* a slot given up: the new instance's */
    memset(x, 0, sizeof(*x));
    ctkn__strlcpy(x->key_id, key_id, sizeof(x->key_id));
    memcpy(x->id, id, CTKN_INSTANCE_LEN);
    x->tip = -1;
  }
  ctkn_trust_chain_start(kr->log_id, part, key_id, id, pq->insts[xi].vchain);
  memcpy(pq->insts[xi].chain, pq->insts[xi].vchain, CTKN_CHAIN_LEN);
  pq->insts[xi].unanchored = g->midstream;
  return xi;
}

/* Whether a record (seq, digest, claimed chain) is the first of a new
 * instance: sequence 1, linked to the instance's chain start. */
static bool starts_chain(const ctkn_gate *g, int32_t part, const char *key_id,
                         const uint8_t id[CTKN_INSTANCE_LEN], uint64_t seq,
                         const uint8_t digest[CTKN_CHAIN_LEN],
                         const uint8_t claimed[CTKN_CHAIN_LEN])
{
  uint8_t start[CTKN_CHAIN_LEN], c[CTKN_CHAIN_LEN];

  if (seq != 1)
    return false;
  ctkn_trust_chain_start(g->kr->log_id, part, key_id, id, start);
  ctkn_trust_chain_next(start, digest, c);
  return memcmp(c, claimed, CTKN_CHAIN_LEN) == 0;
}

static int feed_record(ctkn_gate *g, struct partq *pq,
                       const struct ctkn_log_msg *m, struct qrec *r,
                       struct ctkn_err *err)
{
  char key_id[CTKN_KEY_ID_BUF];
  uint8_t id[CTKN_INSTANCE_LEN], digest[CTKN_CHAIN_LEN],
      claimed[CTKN_CHAIN_LEN];
  const struct ctkn_writer_key *k;
  struct ctkn_err e = {0};
  struct inst *x;
  int xi;
  long prev;

  if ((k = writer_of(g, m, r, key_id, id)) == NULL)
    return CTKN_OK;
  if (!ctkn_writer_key_may(k, m->event_type)) {
    quarantine(r, "writer key %s may not write %.64s records", key_id,
               m->event_type[0] ? m->event_type : "untyped");
    return CTKN_OK;
  }
  if (!parse_seq(header(m, CTKN_HDR_SEQ), &r->seq) ||
      !parse_chain(header(m, CTKN_HDR_CHAIN), claimed)) {
    quarantine(r, "headers %s and %s must be a sequence >= 1 and 64 hex",
               CTKN_HDR_SEQ, CTKN_HDR_CHAIN);
    return CTKN_OK;
  }
  if (ctkn_trust_record_digest(g->kr->log_id, m, digest, &e) != CTKN_OK) {
    quarantine(r, "%s", e.msg);
    return CTKN_OK;
  }
  if (!g->midstream && find_inst(pq, key_id, id) < 0 &&
      !starts_chain(g, m->partition, key_id, id, r->seq, digest, claimed)) {
    /* No instance for it: made-up instances would fill the partition's
     * (MAX_INSTANCES) and refuse a genuine new writer after them. */
    unproven(r, "does not link to its instance's chain (sequence %" PRIu64 ")",
             r->seq);
    return CTKN_OK;
  }
  if ((xi = instance_of(g, pq, g->kr, m->partition, key_id, id, r)) < 0)
    return CTKN_OK;
  x = &pq->insts[xi];
  if (x->vclosed) {
    unproven(r, "its writer instance was closed by a checkpoint");
    return CTKN_OK;
  }
  if ((prev = find_prev(pq, x, r->seq, digest, claimed)) == -2 && x->unanchored)
    prev = -3; /* where its chain starts, a checkpoint will say */
  if (prev == -2) {
    unproven(r, "does not link to its instance's chain (sequence %" PRIu64 ")",
             r->seq);
    return CTKN_OK;
  }
  r->st = PENDING;
  r->inst = xi;
  r->prev = prev;
  memcpy(r->chain, claimed, CTKN_CHAIN_LEN);
  memcpy(r->digest, digest, CTKN_CHAIN_LEN);
  x->tip = (long)(r - pq->q);
  if (r->seq > x->top)
    x->top = r->seq;
  if (x->low == 0 || r->seq < x->low)
    x->low = r->seq;
  too_far_behind(pq, xi, r->seq);
  return add_pending(pq, x->tip, err);
}

/* ---- a checkpoint -------------------------------------------------------- */

/* k's public key, cached by key ID (an ID is its public key's hash, so
 * every keyring that names it holds the same key); NULL: out of memory. */
static const ctkn_pubkey *pub_of(ctkn_gate *g, const struct ctkn_writer_key *k)
{
  struct pubc *c;

  for (size_t i = 0; i < g->npubs; i++)
    if (strcmp(g->pubs[i].key_id, k->key_id) == 0)
      return g->pubs[i].pub;
  if (grow((void **)&g->pubs, &g->cappubs, g->npubs + 1, sizeof(*g->pubs),
           NULL) != CTKN_OK)
    return NULL;
  c = &g->pubs[g->npubs];
  if (ctkn_pubkey_new(&c->pub, k->public_key, NULL) != CTKN_OK)
    return NULL;
  ctkn__strlcpy(c->key_id, k->key_id, sizeof(c->key_id));
  g->npubs++;
  return c->pub;
}

/* Decode the checkpoint in m into c, from a key of the keyring that is
 * not revoked, for this log, partition and key; with verify, *sig_ok
 * tells whether its signature holds. false with r quarantined when it
 * cannot be a checkpoint of this keyring at all. again: a checkpoint fed
 * earlier, verified now; its key was judged active where it stands, and a
 * keyring record fed since does not change that. */
static bool checkpoint_of(ctkn_gate *g, const struct ctkn_log_msg *m,
                          struct qrec *r, struct ctkn_checkpoint *c,
                          bool verify, bool again, bool *sig_ok)
{
  const struct ctkn_writer_key *k;
  const ctkn_pubkey *pub;
  struct ctkn_signed s;
  struct ctkn_err e = {0};
  bool revoked = false;
  int rc;

  *sig_ok = false;
  if (ctkn_signed_decode(m->value, m->value_len, &s, &e) != CTKN_OK) {
    quarantine(r, "checkpoint: %s", e.msg);
    return false;
  }
  k = key_of(g, &g->parts[m->partition], s.signer, &revoked);
  if (k == NULL || (revoked && !again)) {
    ctkn_signed_free(&s);
    quarantine(r, "checkpoint: not signed by an active key of the keyring");
    return false;
  }
  rc = ctkn_checkpoint_decode(s.body, s.body_len, c, &e);
  if (rc == CTKN_OK && verify)
    *sig_ok = (pub = pub_of(g, k)) != NULL &&
              ctkn_trust_verify(pub, CTKN_SIGNED_CHECKPOINT, &s);
  ctkn_signed_free(&s);
  if (rc != CTKN_OK) {
    quarantine(r, "checkpoint: %s", e.msg);
    return false;
  }
  if (memcmp(c->log_id, g->kr->log_id, CTKN_LOG_ID_LEN) != 0 ||
      c->partition != m->partition || strcmp(c->key_id, k->key_id) != 0) {
    quarantine(r, "checkpoint: signed for another log, partition or key");
    return false;
  }
  return true;
}

/* The records a verified checkpoint covers: from the one at queue index
 * from back along its links; pending records of the instance up to upto
 * that it does not cover lose. */
static void cover(struct partq *pq, int xi, long from, uint64_t upto, long qi)
{
  /* A record already given up stays so: verdicts are final. */
  for (long i = from; i >= 0; i = pq->q[i].prev)
    if (pq->q[i].st == PENDING)
      pq->q[i].st = APPLY;
  for (size_t i = 0; i < pq->npend; i++) {
    struct qrec *r = &pq->q[pq->pend[i]];
    if (r->st == PENDING && r->inst == xi && r->seq <= upto && pq->pend[i] < qi)
      unproven(r, "a competing record: its instance's checkpoint covers "
                  "another at its sequence");
  }
}

/* Pending records and unverified checkpoints whose grace ran out by a
 * verified checkpoint signed at t. */
static void deadlines(struct partq *pq, int64_t t, long qi)
{
  refresh_claims(pq);
  for (size_t i = 0; i < pq->npend; i++) {
    struct qrec *r = &pq->q[pq->pend[i]];
    int64_t since;
    /* Untried checkpoints, and the records they claim, await their proof
     * (resolved within the read batch). */
    if (pq->pend[i] > qi || (r->st != PENDING && r->st != CP_PROV) ||
        (r->st == CP_PROV && !r->tried) || claimed(pq, r))
      continue;
    if (r->ref_at == 0)
      r->ref_at = t;
    since = r->ts_us >= 0 && r->ts_us < r->ref_at ? r->ts_us : r->ref_at;
    if (t > since + CTKN_GATE_GRACE_US)
      unproven(r, "%s",
               r->st == PENDING
                   ? "never checkpointed: later checkpoints do not cover it"
                   : "checkpoint: its signature does not hold and no later "
                     "checkpoint proves it");
  }
}

/* Whether the verified checkpoint c (queue record r) moves its instance
 * on from its verified head, covering records; r quarantined when it
 * cannot. */
static bool judge_checkpoint(struct partq *pq, int xi,
                             const struct ctkn_checkpoint *c, struct qrec *r)
{
  struct inst *x = &pq->insts[xi];
  long qi = (long)(r - pq->q), at = -2;

  if (c->sequence == x->vseq &&
      memcmp(c->chain, x->vchain, CTKN_CHAIN_LEN) == 0) {
    if (c->signed_at > x->vcp_at)
      return true; /* a heartbeat, or a second look at the same head */
    unproven(r, "checkpoint: replayed or stale");
    return false;
  }
  if (c->sequence <= x->vseq) {
    unproven(r, "checkpoint: replayed or stale");
    return false;
  }
  /* Only records before it: a checkpoint verified late (an unverified
   * one, once a later one failed) must not cover records after it. */
  if (x->tip >= 0 && x->tip < qi && pq->q[x->tip].st == PENDING &&
      pq->q[x->tip].seq == c->sequence &&
      memcmp(pq->q[x->tip].chain, c->chain, CTKN_CHAIN_LEN) == 0)
    at = x->tip;
  for (size_t i = 0; at == -2 && i < pq->npend; i++) {
    struct qrec *p = &pq->q[pq->pend[i]];
    if (p->inst == xi && p->st == PENDING && pq->pend[i] < qi &&
        p->seq == c->sequence &&
        memcmp(p->chain, c->chain, CTKN_CHAIN_LEN) == 0)
      at = pq->pend[i];
  }
  if (at == -2) {
    unproven(r, "checkpoint: covers records that are not in the log");
    return false;
  }
  cover(pq, xi, at, c->sequence, qi);
  x->vseq = c->sequence;
  memcpy(x->vchain, c->chain, CTKN_CHAIN_LEN);
  return true;
}

/* After a verified checkpoint of instance xi at queue index qi moved its
 * head from (seq0, chain0, signed t0) up to upto: settle the instance's
 * unverified checkpoints before qi, in log order, as a reader verifying
 * each would have. One whose claims lie on the proven chain and move the
 * head on (or restate it, signed later) stands, unverified; any other is
 * a replay or a forgery. */
static void resolve_prov(struct partq *pq, int xi, long qi, uint64_t seq0,
                         const uint8_t chain0[CTKN_CHAIN_LEN], int64_t t0,
                         uint64_t upto)
{
  size_t n = (size_t)(upto - seq0) + 1, nprov = 0;
  const uint8_t **path;
  uint64_t last = seq0;
  int64_t last_t = t0;

  for (size_t i = 0; i < pq->npend; i++)
    nprov += pq->q[pq->pend[i]].st == CP_PROV &&
             pq->q[pq->pend[i]].inst == xi && pq->pend[i] < qi;
  if (nprov == 0 || (path = calloc(n, sizeof(*path))) == NULL)
    return; /* none; or no memory: they wait for their deadline */
  path[0] = chain0;
  for (long i = (long)pq->head; i < qi; i++) {
    const struct qrec *a = &pq->q[i];
    if (a->st == APPLY && a->inst == xi && a->seq > seq0 && a->seq <= upto)
      path[a->seq - seq0] = a->chain;
  }
  for (size_t i = 0; i < pq->npend; i++) {
    struct qrec *e = &pq->q[pq->pend[i]];
    bool on;
    if (e->st != CP_PROV || e->inst != xi || pq->pend[i] > qi || e->seq > upto)
      continue;
    on = e->seq >= seq0 && path[e->seq - seq0] != NULL &&
         memcmp(path[e->seq - seq0], e->chain, CTKN_CHAIN_LEN) == 0;
    if (on && (e->seq > last || (e->seq == last && e->signed_at > last_t))) {
      e->st = CHECKPOINT;
      e->unverified = true;
      last = e->seq;
      last_t = e->signed_at;
    } else {
      unproven(e, "checkpoint: replayed or stale");
    }
  }
  free(path);
}

/* A mid-log reader's instance, anchored where verified checkpoint c's
 * produce batch starts: its first record there must link to c's
 * from_chain. false with r quarantined when the batch starts before what
 * this reader has read. */
static bool anchor(struct partq *pq, int xi, long qi,
                   const struct ctkn_checkpoint *c, struct qrec *r)
{
  struct inst *x = &pq->insts[xi];
  uint8_t next[CTKN_CHAIN_LEN];

  if (c->from_set && c->from_sequence == c->sequence) {
    x->unanchored = false; /* it covers no record: anchored at its head */
    x->vseq = c->sequence;
    memcpy(x->vchain, c->chain, CTKN_CHAIN_LEN);
    return true;
  }
  for (size_t i = 0; c->from_set && i < pq->npend; i++) {
    struct qrec *p = &pq->q[pq->pend[i]];
    /* Its first record here: unlinked, or linked to the chain's start. */
    if (p->st != PENDING || p->inst != xi || (p->prev != -3 && p->prev != -1) ||
        pq->pend[i] > qi || p->seq != c->from_sequence + 1)
      continue;
    ctkn_trust_chain_next(c->from_chain, p->digest, next);
    if (memcmp(next, p->chain, CTKN_CHAIN_LEN) != 0)
      continue;
    p->prev = -1;
    x->unanchored = false;
    x->vseq = c->from_sequence;
    memcpy(x->vchain, c->from_chain, CTKN_CHAIN_LEN);
    return true;
  }
  unproven(r, "checkpoint: its batch starts before this reader's first "
              "record");
  return false;
}

/* The verified checkpoint c at queue index qi: its coverage and effects. */
static void apply_verified(struct partq *pq, int xi, long qi,
                           const struct ctkn_checkpoint *c)
{
  struct inst *x = &pq->insts[xi];
  struct qrec *r = &pq->q[qi];

  if (x->unanchored && !anchor(pq, xi, qi, c, r))
    return;
  uint64_t seq0 = x->vseq;
  uint8_t chain0[CTKN_CHAIN_LEN];
  int64_t t0 = x->vcp_at;

  memcpy(chain0, x->vchain, CTKN_CHAIN_LEN);
  if (!judge_checkpoint(pq, xi, c, r))
    return;
  r->st = CHECKPOINT;
  r->unverified = false;
  x->vcp_at = c->signed_at;
  x->vclosed = c->closing;
  if (c->signed_at > pq->vcp_at)
    pq->vcp_at = c->signed_at;
  resolve_prov(pq, xi, qi, seq0, chain0, t0, c->sequence);
  deadlines(pq, c->signed_at, qi);
  prune_pending(pq);
}

/* Before a verified checkpoint of instance xi at queue index qi claiming
 * seq: when an unverified one before it claims as far, verify those now,
 * in order, so that it is judged against the head they would have moved.
 * xi < 0: of every instance. */
static void verify_earlier(ctkn_gate *g, struct partq *pq, int xi, long qi,
                           uint64_t seq)
{
  bool again = true;

  while (again) {
    long ei = -1;
    again = false;
    for (size_t i = 0; i < pq->npend && ei < 0; i++) {
      const struct qrec *e = &pq->q[pq->pend[i]];
      if (e->st == CP_PROV && (xi < 0 || e->inst == xi) && pq->pend[i] < qi &&
          e->seq >= seq && !e->tried)
        ei = pq->pend[i];
    }
    if (ei < 0)
      return;
    /* The earliest unverified checkpoint of xi before qi, then on. */
    for (size_t i = 0; i < pq->npend; i++) {
      long k = pq->pend[i];
      struct qrec *e = &pq->q[k], scratch;
      struct ctkn_checkpoint c;
      bool ok;
      if (e->st != CP_PROV || (xi >= 0 && e->inst != xi) || k >= qi || e->tried)
        continue;
      scratch = *e;
      if (checkpoint_of(g, e->m, &scratch, &c, true, true, &ok) && ok) {
        apply_verified(pq, e->inst, k, &c);
        again = true; /* the list may have been pruned */
        break;
      }
      e->tried = true; /* its signature fails: not tried again */
    }
  }
}

/* Checkpoint qi, fed to be verified, proves nothing (it is no checkpoint
 * of this keyring, it covers a record the log lacks, it is stale, its
 * instance closed, its signature fails). The projector feeds a checkpoint
 * lazily when a newer one with its writer header follows in its read
 * batch, and qi may be that one whatever instance its body names: so the
 * unverified ones before it, of every instance, wait for no proof from it
 * and are verified now, as a reader that verified each would have judged
 * them (else they and the records they claim hold the partition back
 * until their instance writes another verified checkpoint, which a dead
 * instance never does, and one forged record would stall the partition). */
static void judge_earlier(ctkn_gate *g, struct partq *pq, long qi)
{
  verify_earlier(g, pq, -1, qi, 0);
}

/* Whether checkpoint m's ctkn-writer header (when it has one) names the
 * instance its signed body does; r quarantined when not. The header is not
 * signed, yet the projector groups checkpoints by it (mark_lazy(): the
 * newest of a header is verified, the ones before it wait for its proof),
 * so a checkpoint of one instance under another's header, verified and
 * standing, would leave the other's lazy checkpoints unproven for good. A
 * rule of the record alone: every reader, lazy or not, judges it alike. */
static bool writer_is(const struct ctkn_log_msg *m,
                      const struct ctkn_checkpoint *c, struct qrec *r)
{
  const struct ctkn_log_header *h = header(m, CTKN_HDR_WRITER);
  char key_id[CTKN_KEY_ID_BUF];
  uint8_t id[CTKN_INSTANCE_LEN];

  if (h == NULL)
    return true; /* never lazy: always verified, it hides nothing */
  if (ctkn_trust_writer_parse(h->value, h->size, key_id, id, NULL) != CTKN_OK ||
      strcmp(key_id, c->key_id) != 0 ||
      memcmp(id, c->instance, CTKN_INSTANCE_LEN) != 0) {
    quarantine(r,
               "checkpoint: header %s names another writer instance "
               "than its body",
               CTKN_HDR_WRITER);
    return false;
  }
  return true;
}

static void feed_checkpoint(ctkn_gate *g, struct partq *pq,
                            const struct ctkn_log_msg *m, struct qrec *r,
                            bool verify)
{
  struct ctkn_checkpoint c;
  long qi = (long)(r - pq->q);
  bool sig_ok;
  int xi;

  if (!checkpoint_of(g, m, r, &c, verify, false, &sig_ok) ||
      !writer_is(m, &c, r)) {
    if (verify)
      judge_earlier(g, pq, qi);
    return;
  }
  if (c.signed_at < pq->vcp_at - CTKN_GATE_REPLAY_US) {
    unproven(r, "checkpoint: replayed or stale");
    if (verify)
      judge_earlier(g, pq, qi);
    return;
  }
  if ((xi = find_inst(pq, c.key_id, c.instance)) < 0 &&
      (c.sequence == 0 || g->midstream))
    xi = instance_of(g, pq, g->kr, m->partition, c.key_id, c.instance, r);
  if (xi < 0) {
    if (r->st != QUARANTINE)
      unproven(r, "checkpoint: of an instance with no records here");
    if (verify)
      judge_earlier(g, pq, qi);
    return;
  }
  if (pq->insts[xi].vclosed) {
    unproven(r, "checkpoint: its instance was closed");
    if (verify)
      judge_earlier(g, pq, qi);
    return;
  }
  r->inst = xi;
  r->seq = c.sequence;
  memcpy(r->chain, c.chain, CTKN_CHAIN_LEN);
  r->signed_at = c.signed_at;
  r->closing = c.closing;
  r->m = m;
  if (!sig_ok) {
    r->st = CP_PROV;
    r->tried = verify;
    if (c.sequence > pq->insts[xi].claimed)
      pq->insts[xi].claimed = c.sequence;
    if (add_pending(pq, qi, NULL) != CTKN_OK)
      quarantine(r, "checkpoint: out of memory holding it");
    else if (verify)
      /* The one meant to prove the others does not hold: verify those,
       * so that a forged checkpoint appended after every genuine one
       * cannot keep them from being proven. */
      judge_earlier(g, pq, qi);
    return;
  }
  verify_earlier(g, pq, xi, qi, c.sequence);
  if (pq->insts[xi].vclosed) {
    unproven(r, "checkpoint: its instance was closed");
    judge_earlier(g, pq, qi);
    return;
  }
  apply_verified(pq, xi, qi, &c);
  if (r->st == QUARANTINE)
    judge_earlier(g, pq, qi);
}

/* The pending records of keys partition pq's keyring (just changed) no
 * longer accepts, given up: a checkpoint of such a key from here on is
 * refused, so none can ever cover them, and a partition with no other
 * writer would be held back by them for good. A record an unverified
 * checkpoint before here claims waits for that proof, as elsewhere. Every
 * reader gives up the same records at the same position. */
static void give_up_revoked(const ctkn_gate *g, struct partq *pq)
{
  bool any = false;

  refresh_claims(pq);
  for (size_t i = 0; i < pq->npend; i++) {
    struct qrec *r = &pq->q[pq->pend[i]];
    bool revoked = false;
    if (r->st != PENDING || r->inst < 0 || claimed(pq, r))
      continue;
    if (key_of(g, pq, pq->insts[r->inst].key_id, &revoked) != NULL && !revoked)
      continue;
    unproven(r, "never checkpointed: its writer key %s was revoked first",
             pq->insts[r->inst].key_id);
    any = true;
  }
  if (any)
    prune_pending(pq);
}

/* A root-signed keyring record on the partition (a positional keyring):
 * from here on the partition judges writer keys by it. One that is not
 * the root's, is for another log, or is older than the partition's is
 * quarantined; the same version again changes nothing. */
static void feed_keyring(ctkn_gate *g, struct partq *pq,
                         const struct ctkn_log_msg *m, struct qrec *r)
{
  struct ctkn_keyring *kr;
  struct ctkn_err e = {0};

  if (g->root == NULL) {
    quarantine(r, "keyring: this reader has no trust root to verify it");
    return;
  }
  if ((kr = malloc(sizeof(*kr))) == NULL) {
    quarantine(r, "keyring: out of memory holding it");
    return;
  }
  ctkn_keyring_init(kr);
  if (m->value == NULL || ctkn_trust_keyring_open(m->value, m->value_len,
                                                  g->root, kr, &e) != CTKN_OK) {
    quarantine(r, "keyring: %s", m->value == NULL ? "no value" : e.msg);
  } else if (memcmp(kr->log_id, g->kr->log_id, CTKN_LOG_ID_LEN) != 0) {
    quarantine(r, "keyring: signed for another log");
  } else if (pq->ring != NULL && kr->version < pq->ring->version) {
    quarantine(r,
               "keyring: version %" PRIu64 " is older than version %" PRIu64
               " before it on its partition",
               kr->version, pq->ring->version);
  } else {
    r->st = CHECKPOINT;
    if (pq->ring == NULL || kr->version > pq->ring->version) {
      r->ring = kr;
      pq->ring = kr;
      give_up_revoked(g, pq);
      return;
    }
  }
  ring_free(kr);
}

static int feed(ctkn_gate *g, const struct ctkn_log_msg *m, size_t tag,
                bool verify, struct ctkn_err *err);

int ctkn_gate_feed(ctkn_gate *g, const struct ctkn_log_msg *m, size_t tag,
                   struct ctkn_err *err)
{
  return feed(g, m, tag, true, err);
}

int ctkn_gate_feed_lazy(ctkn_gate *g, const struct ctkn_log_msg *m, size_t tag,
                        struct ctkn_err *err)
{
  return feed(g, m, tag, false, err);
}

static int feed(ctkn_gate *g, const struct ctkn_log_msg *m, size_t tag,
                bool verify, struct ctkn_err *err)
{
  struct partq *pq;
  struct qrec *r;

  if (m->partition < 0 || m->partition >= g->nparts)
    return ctkn__err(err, CTKN_EUSAGE, "partition %d outside 0..%d",
                     (int)m->partition, (int)g->nparts - 1);
  pq = &g->parts[m->partition];
  if ((r = enqueue(pq, m, tag, err)) == NULL)
    return CTKN_ENOMEM;
  if (g->kr == NULL || g->kr->version == 0) {
    quarantine(r, "no keyring to judge it by");
    return CTKN_OK;
  }
  if (strcmp(m->event_type, CTKN_TYPE_KEYRING) == 0) {
    feed_keyring(g, pq, m, r);
    return CTKN_OK;
  }
  if (m->offset < pq->adopted_end && header(m, CTKN_HDR_WRITER) == NULL) {
    r->st = APPLY; /* an adopted prefix: the root vouched for its bytes */
    return CTKN_OK;
  }
  if (strcmp(m->event_type, CTKN_TYPE_CHECKPOINT) == 0) {
    feed_checkpoint(g, pq, m, r, verify);
    return CTKN_OK;
  }
  return feed_record(g, pq, m, r, err);
}

/* ---- out ------------------------------------------------------------------
 */

static void release(struct partq *pq, struct qrec *r)
{
  struct inst *x = r->inst >= 0 ? &pq->insts[r->inst] : NULL;

  if (r->ring != NULL) { /* a positional keyring: the partition's now */
    if (pq->rring != NULL)
      ring_free(pq->rring);
    pq->rring = r->ring;
    r->ring = NULL;
  }
  if (x == NULL) /* quarantined before it named one, or adopted */
    return;
  if (r->st == APPLY) {
    x->seq = r->seq;
    memcpy(x->chain, r->chain, CTKN_CHAIN_LEN);
  } else if (r->st == CHECKPOINT && !r->unverified) {
    x->cp_at = r->signed_at;
    x->closed = r->closing;
    if (r->signed_at > pq->cp_at)
      pq->cp_at = r->signed_at;
  }
}

static void out_of(const struct qrec *r, struct ctkn_gate_out *o)
{
  o->tag = r->tag;
  o->offset = r->offset;
  o->verdict = r->st == APPLY        ? CTKN_GATE_APPLY
               : r->st == CHECKPOINT ? CTKN_GATE_CHECKPOINT
                                     : CTKN_GATE_QUARANTINE;
  ctkn__strlcpy(o->reason, r->st == QUARANTINE ? r->reason : "",
                sizeof(o->reason));
  ctkn__strlcpy(o->detail, r->st == QUARANTINE ? r->detail : "",
                sizeof(o->detail));
}

bool ctkn_gate_peek(const ctkn_gate *g, int32_t p, struct ctkn_gate_out *o)
{
  const struct partq *pq = &g->parts[p];

  if (pq->head == pq->n || pq->q[pq->head].st == PENDING ||
      pq->q[pq->head].st == CP_PROV)
    return false;
  out_of(&pq->q[pq->head], o);
  return true;
}

bool ctkn_gate_next(ctkn_gate *g, int32_t p, struct ctkn_gate_out *o)
{
  struct partq *pq = &g->parts[p];

  if (pq->head == pq->n || pq->q[pq->head].st == PENDING ||
      pq->q[pq->head].st == CP_PROV)
    return false;
  struct qrec *r = &pq->q[pq->head++];

  release(pq, r);
  out_of(r, o);
  if (pq->head == pq->n)
    compact(pq);
  return true;
}

size_t ctkn_gate_held(const ctkn_gate *g, int32_t p, int64_t *first)
{
  const struct partq *pq = &g->parts[p];

  *first = pq->head < pq->n ? pq->q[pq->head].offset : -1;
  return pq->n - pq->head;
}

void ctkn_gate_reset(ctkn_gate *g, int32_t p)
{
  compact(&g->parts[p]);
}

void ctkn_gate_clear(ctkn_gate *g, int32_t p)
{
  struct partq *pq = &g->parts[p];

  pq->ninst = 0;
  pq->cp_at = 0;
  compact(pq);
  if (pq->rring != NULL)
    ring_free(pq->rring);
  pq->rring = NULL;
  pq->ring = NULL;
}

int64_t ctkn_gate_checkpoint_at(const ctkn_gate *g, int32_t p)
{
  return g->parts[p].cp_at;
}

/* ---- saved state --------------------------------------------------------- */

/*
 * A saved state: SAVE_MAGIC, the number of instances (8 bytes), the newest
 * released checkpoint's time (8), the length of the positional keyring
 * (4; 0: none) and its encoding (codec.h), then each instance
 * (SAVED_INST bytes). A state saved before positional keyrings
 * (SAVE_MAGIC_1) has no keyring length or keyring: it loads as a
 * partition with no positional keyring yet, and is saved anew.
 */
int ctkn_gate_save(const ctkn_gate *g, int32_t p, uint8_t **out, size_t *len,
                   struct ctkn_err *err)
{
  const struct partq *pq = &g->parts[p];
  uint8_t *ring = NULL, *b;
  size_t n = 0, rlen = 0, k;
  int rc;

  if (pq->rring != NULL &&
      (rc = ctkn_keyring_encode(pq->rring, &ring, &rlen, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < pq->ninst; i++)
    n += !forgotten(pq, &pq->insts[i]);
  k = 21 + rlen;
  if (rlen > UINT32_MAX || (b = malloc(k + n * SAVED_INST)) == NULL) {
    free(ring);
    return ctkn__err(err, CTKN_ENOMEM, "out of memory saving trust state");
  }
  b[0] = SAVE_MAGIC;
  ctkn__put_be64(b + 1, n);
  ctkn__put_be64(b + 9, (uint64_t)pq->cp_at);
  ctkn__put_be32(b + 17, (uint32_t)rlen);
  if (rlen > 0)
    memcpy(b + 21, ring, rlen);
  free(ring);
  for (size_t i = 0; i < pq->ninst; i++) {
    const struct inst *x = &pq->insts[i];
    if (forgotten(pq, x))
      continue;
    memcpy(b + k, x->key_id, 16);
    memcpy(b + k + 16, x->id, CTKN_INSTANCE_LEN);
    ctkn__put_be64(b + k + 32, x->seq);
    memcpy(b + k + 40, x->chain, CTKN_CHAIN_LEN);
    ctkn__put_be64(b + k + 72, (uint64_t)x->cp_at);
    b[k + 80] = x->closed;
    k += SAVED_INST;
  }
  *out = b;
  *len = k;
  return CTKN_OK;
}

int64_t ctkn_gate_saved_checkpoint_at(const void *buf, size_t len)
{
  const uint8_t *b = buf;

  if (len < 17 || (b[0] != SAVE_MAGIC && b[0] != SAVE_MAGIC_1))
    return 0;
  return (int64_t)ctkn__get_be(b + 9, 8);
}

/* The positional keyring saved in b[0..len) into a new *out (NULL when
 * len is 0). */
static int load_ring(const uint8_t *b, size_t len, struct ctkn_keyring **out,
                     struct ctkn_err *err)
{
  struct ctkn_keyring *kr;

  *out = NULL;
  if (len == 0)
    return CTKN_OK;
  if ((kr = malloc(sizeof(*kr))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory loading trust state");
  ctkn_keyring_init(kr);
  if (ctkn_keyring_decode(b, len, kr, NULL) != CTKN_OK ||
      ctkn_keyring_check(kr, NULL) != CTKN_OK) {
    ring_free(kr);
    return ctkn__err(err, CTKN_EINVAL, "not a saved trust state");
  }
  *out = kr;
  return CTKN_OK;
}

int ctkn_gate_load(ctkn_gate *g, int32_t p, const void *buf, size_t len,
                   struct ctkn_err *err)
{
  struct partq *pq = &g->parts[p];
  struct ctkn_keyring *ring = NULL;
  const uint8_t *b = buf;
  size_t base = 17, rlen = 0;
  uint64_t n;
  int rc;

  if (len < 17 || (b[0] != SAVE_MAGIC && b[0] != SAVE_MAGIC_1) ||
      (n = ctkn__get_be(b + 1, 8)) > MAX_INSTANCES)
    return ctkn__err(err, CTKN_EINVAL, "not a saved trust state");
  if (b[0] == SAVE_MAGIC) {
    if (len < 21 || (rlen = ctkn__get_be(b + 17, 4)) > len - 21)
      return ctkn__err(err, CTKN_EINVAL, "not a saved trust state");
    base = 21 + rlen;
  }
  if (len != base + n * SAVED_INST)
    return ctkn__err(err, CTKN_EINVAL, "not a saved trust state");
  if ((rc = load_ring(b + 21, rlen, &ring, err)) != CTKN_OK)
    return rc;
  pq->ninst = 0;
  if ((rc = grow((void **)&pq->insts, &pq->capinst, n, sizeof(*pq->insts),
                 err)) != CTKN_OK) {
    if (ring != NULL)
      ring_free(ring);
    return rc;
  }
  pq->cp_at = (int64_t)ctkn__get_be(b + 9, 8);
  for (size_t i = 0, k = base; i < n; i++, k += SAVED_INST) {
    struct inst *x = &pq->insts[i];
    memset(x, 0, sizeof(*x));
    memcpy(x->key_id, b + k, 16);
    memcpy(x->id, b + k + 16, CTKN_INSTANCE_LEN);
    x->seq = ctkn__get_be(b + k + 32, 8);
    memcpy(x->chain, b + k + 40, CTKN_CHAIN_LEN);
    x->cp_at = (int64_t)ctkn__get_be(b + k + 72, 8);
    x->closed = b[k + 80] == 1;
    if ((x->seq == 0 && x->cp_at == 0) || b[k + 80] > 1) {
      pq->ninst = 0;
      if (ring != NULL)
        ring_free(ring);
      return ctkn__err(err, CTKN_EINVAL, "not a saved trust state");
    }
  }
  pq->ninst = n;
  if (pq->rring != NULL)
    ring_free(pq->rring);
  pq->rring = ring;
  compact(pq);
  return CTKN_OK;
}
