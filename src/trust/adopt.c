/*
 * adopt.c - a prefix written before signing, vouched for by the root
 * (trust.h, "adoption"): its hash computed from the topic a partition at
 * a time, as a stream (memory stays one poll's records), the root-signed
 * record on the settings topic, and every such record read back.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/token.h"
#include "ctkn/trust.h"
#include "internal.h"

#define ADOPT_BATCH 256

/* Hash p's records [0, end) as they arrive on c (assigned to p alone). */
static int hash_stream(ctkn_consumer *c, const struct ctkn_log_config *cfg,
                       ctkn_sha256 *h, int32_t p, int64_t end,
                       struct ctkn_err *err)
{
  struct ctkn_log_msg *msgs = calloc(ADOPT_BATCH, sizeof(*msgs));
  int64_t pos = 0, deadline = ctkn__now_ms() + cfg->timeout_ms;
  int rc = CTKN_OK;

  if (msgs == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "adopt: out of memory");
  while (pos < end && rc == CTKN_OK) {
    size_t got = 0;
    if ((rc = ctkn_consumer_poll(c, 200, msgs, ADOPT_BATCH, &got, err)) !=
        CTKN_OK)
      break;
    for (size_t i = 0; i < got; i++) {
      if (msgs[i].partition != p || msgs[i].offset != pos)
        continue; /* a record below pos again, or one past a gap */
      ctkn_trust_adopt_add(h, &msgs[i]);
      pos++;
      if (pos == end)
        break;
    }
    if (got > 0)
      deadline = ctkn__now_ms() + cfg->timeout_ms;
    else if (ctkn__now_ms() > deadline)
      rc = ctkn__err(err, CTKN_ETIMEOUT,
                     "adopt: partition %" PRId32 " stalled at offset %" PRId64
                     " of %" PRId64,
                     p, pos, end);
  }
  free(msgs);
  return rc;
}

/* The hash of p's records [0, end) on c's topic of n partitions. */
static int hash_on(ctkn_consumer *c, const struct ctkn_log_config *cfg,
                   int32_t n, const uint8_t log_id[CTKN_LOG_ID_LEN], int32_t p,
                   int64_t end, uint8_t out[CTKN_CHAIN_LEN],
                   struct ctkn_err *err)
{
  int64_t lo = 0, hi = 0, *at;
  ctkn_sha256 *h;
  int rc;

  if ((rc = ctkn_consumer_watermarks(c, p, &lo, &hi, err)) != CTKN_OK)
    return rc;
  if (lo > 0 || hi < end)
    return ctkn__err_field(err, CTKN_EINVAL, "partition",
                           "partition %" PRId32 " holds offsets %" PRId64
                           "..%" PRId64 ", not all of 0..%" PRId64
                           ": its prefix cannot be hashed",
                           p, lo, hi, end);
  if ((h = ctkn_trust_adopt_begin(log_id, p)) == NULL ||
      (at = calloc((size_t)n, sizeof(*at))) == NULL) {
    if (h != NULL)
      ctkn_trust_adopt_end(h, out);
    return ctkn__err(err, CTKN_ENOMEM, "adopt: out of memory");
  }
  for (int32_t q = 0; q < n; q++)
    at[q] = q == p ? 0 : -1;
  rc = end > 0 ? ctkn_consumer_assign(c, at, n, err) : CTKN_OK;
  if (rc == CTKN_OK && end > 0)
    rc = hash_stream(c, cfg, h, p, end, err);
  free(at);
  ctkn_trust_adopt_end(h, out);
  return rc;
}

int ctkn_trust_adopt_hash(const struct ctkn_log_config *cfg,
                          const uint8_t log_id[CTKN_LOG_ID_LEN], int32_t p,
                          int64_t end, uint8_t out[CTKN_CHAIN_LEN],
                          struct ctkn_err *err)
{
  ctkn_consumer *c = NULL;
  int32_t n = 0;
  int rc;

  if ((rc = ctkn_consumer_open(&c, cfg, err)) == CTKN_OK &&
      (rc = ctkn_consumer_partitions(c, &n, err)) == CTKN_OK)
    rc = p >= 0 && p < n
             ? hash_on(c, cfg, n, log_id, p, end, out, err)
             : ctkn__err_field(err, CTKN_EINVAL, "partition",
                               "partition %" PRId32 " is not in the topic", p);
  ctkn_consumer_close(c);
  return rc;
}

int ctkn_trust_adopt_compute(const struct ctkn_log_config *cfg,
                             const struct ctkn_keyring *kr,
                             struct ctkn_adoption *a, struct ctkn_err *err)
{
  ctkn_consumer *c = NULL;
  int32_t n = 0;
  int64_t lo;
  int rc;

  memset(a, 0, sizeof(*a));
  memcpy(a->log_id, kr->log_id, CTKN_LOG_ID_LEN);
  ctkn__strlcpy(a->topic, cfg->topic, sizeof(a->topic));
  a->issued_at = ctkn_now_us();
  if ((rc = ctkn_consumer_open(&c, cfg, err)) != CTKN_OK ||
      (rc = ctkn_consumer_partitions(c, &n, err)) != CTKN_OK)
    goto out;
  if (n > CTKN_ADOPT_PARTS) {
    rc = ctkn__err_field(err, CTKN_EINVAL, "partitions",
                         "at most %d partitions", CTKN_ADOPT_PARTS);
    goto out;
  }
  if ((a->parts = calloc((size_t)n, sizeof(*a->parts))) == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "adopt: out of memory");
    goto out;
  }
  for (int32_t p = 0; p < n && rc == CTKN_OK; p++) {
    struct ctkn_adopted_partition *ap = &a->parts[a->nparts++];
    ap->partition = p;
    if ((rc = ctkn_consumer_watermarks(c, p, &lo, &ap->end_offset, err)) ==
        CTKN_OK)
      rc = hash_on(c, cfg, n, kr->log_id, p, ap->end_offset, ap->records_hash,
                   err);
  }
out:
  ctkn_consumer_close(c);
  if (rc != CTKN_OK)
    ctkn_adoption_free(a);
  return rc;
}

/* ---- the record ------------------------------------------------------------
 */

int ctkn_trust_adoption_value(const ctkn_seckey *root,
                              const struct ctkn_adoption *a, uint8_t **out,
                              size_t *len, struct ctkn_err *err)
{
  struct ctkn_signed s;
  uint8_t *body = NULL;
  size_t blen;
  int rc;

  *out = NULL;
  if ((rc = ctkn_adoption_encode(a, &body, &blen, err)) == CTKN_OK &&
      (rc = ctkn_trust_sign(root, "root", CTKN_SIGNED_ADOPTION, body, blen, &s,
                            err)) == CTKN_OK)
    rc = ctkn_signed_encode(&s, out, len, err);
  free(body);
  return rc;
}

int ctkn_trust_adoption_open(const void *val, size_t len,
                             const ctkn_pubkey *root, struct ctkn_adoption *a,
                             struct ctkn_err *err)
{
  struct ctkn_signed s;
  int rc;

  memset(a, 0, sizeof(*a));
  if ((rc = ctkn_signed_decode(val, len, &s, err)) != CTKN_OK)
    return rc;
  if (strcmp(s.signer, "root") != 0 ||
      !ctkn_trust_verify(root, CTKN_SIGNED_ADOPTION, &s)) {
    ctkn_signed_free(&s);
    return ctkn__err_field(err, CTKN_EINVAL, "adoption",
                           "not signed by the trust root");
  }
  rc = ctkn_adoption_decode(s.body, s.body_len, a, err);
  ctkn_signed_free(&s);
  return rc;
}

int ctkn_trust_adoption_append(const struct ctkn_log_config *cfg,
                               const ctkn_seckey *root,
                               const struct ctkn_adoption *a,
                               struct ctkn_err *err)
{
  ctkn_producer *p = NULL;
  uint8_t *val = NULL;
  size_t vlen;
  int rc;

  if ((rc = ctkn_trust_adoption_value(root, a, &val, &vlen, err)) == CTKN_OK &&
      (rc = ctkn_producer_open(&p, cfg, err)) == CTKN_OK)
    rc = ctkn_producer_send(p, 0, "adoption", 8, val, vlen, a->issued_at / 1000,
                            CTKN_TYPE_ADOPTION, -1, NULL, NULL, err);
  ctkn_producer_close(p);
  free(val);
  return rc;
}

/* ---- reading them back ------------------------------------------------------
 */

int ctkn_adoption_merge(struct ctkn_adoption *a, const struct ctkn_adoption *b,
                        struct ctkn_err *err)
{
  for (size_t i = 0; i < b->nparts; i++) {
    const struct ctkn_adopted_partition *bp = &b->parts[i];
    struct ctkn_adopted_partition *ap = NULL;
    for (size_t k = 0; k < a->nparts && ap == NULL; k++)
      if (a->parts[k].partition == bp->partition)
        ap = &a->parts[k];
    if (ap == NULL) {
      void *grown = realloc(a->parts, (a->nparts + 1) * sizeof(*a->parts));
      if (grown == NULL)
        return ctkn__err(err, CTKN_ENOMEM, "out of memory merging adoptions");
      a->parts = grown;
      ap = &a->parts[a->nparts++];
      *ap = *bp;
    } else if (bp->end_offset > ap->end_offset) {
      *ap = *bp;
    }
  }
  return CTKN_OK;
}

struct adopt_fetch {
  const ctkn_pubkey *root;
  const uint8_t *log_id;
  struct ctkn_adoption *a;
};

static int consider_adoption(void *arg, const struct ctkn_log_msg *m)
{
  struct adopt_fetch *f = arg;
  struct ctkn_adoption b;
  int rc = CTKN_OK;

  if (strcmp(m->event_type, CTKN_TYPE_ADOPTION) != 0 || m->value == NULL)
    return CTKN_OK;
  if (ctkn_trust_adoption_open(m->value, m->value_len, f->root, &b, NULL) !=
      CTKN_OK)
    return CTKN_OK; /* not the root's: ignored, as a keyring would be */
  if (memcmp(b.log_id, f->log_id, CTKN_LOG_ID_LEN) == 0)
    rc = ctkn_adoption_merge(f->a, &b, NULL);
  ctkn_adoption_free(&b);
  return rc;
}

int ctkn_trust_adoption_fetch(const struct ctkn_log_config *cfg,
                              const ctkn_pubkey *root,
                              const uint8_t log_id[CTKN_LOG_ID_LEN],
                              struct ctkn_adoption *a, struct ctkn_err *err)
{
  struct adopt_fetch f = {root, log_id, a};
  int rc;

  memset(a, 0, sizeof(*a));
  memcpy(a->log_id, log_id, CTKN_LOG_ID_LEN);
  if ((rc = ctkn_trust_settings_read(cfg, consider_adoption, &f, err)) !=
      CTKN_OK)
    ctkn_adoption_free(a);
  return rc;
}
