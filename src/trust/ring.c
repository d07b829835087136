/*
 * ring.c - the keyring on the log (trust.h): root-signed records of type
 * ctkn.keyring on the settings topic, read from its start, the newest
 * valid one kept.
 */
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/trust.h"
#include "internal.h"

#define FETCH_BATCH 256

int ctkn_trust_keyring_open(const void *val, size_t len,
                            const ctkn_pubkey *root, struct ctkn_keyring *kr,
                            struct ctkn_err *err)
{
  struct ctkn_signed s;
  int rc;

  if ((rc = ctkn_signed_decode(val, len, &s, err)) != CTKN_OK)
    return rc;
  if (strcmp(s.signer, "root") != 0 ||
      !ctkn_trust_verify(root, CTKN_SIGNED_KEYRING, &s)) {
    ctkn_signed_free(&s);
    return ctkn__err_field(err, CTKN_EINVAL, "keyring",
                           "not signed by the trust root");
  }
  rc = ctkn_keyring_decode(s.body, s.body_len, kr, err);
  ctkn_signed_free(&s);
  if (rc == CTKN_OK && (rc = ctkn_keyring_check(kr, err)) != CTKN_OK)
    ctkn_keyring_free(kr);
  return rc;
}

struct ring_fetch {
  const ctkn_pubkey *root;
  struct ctkn_keyring *kr;
  uint8_t **raw;
  size_t *rawlen;
};

/* Keep m's keyring in *kr when it is valid and newer. */
static int consider(void *arg, const struct ctkn_log_msg *m)
{
  struct ring_fetch *f = arg;
  const ctkn_pubkey *root = f->root;
  struct ctkn_keyring *kr = f->kr;
  uint8_t **raw = f->raw;
  size_t *rawlen = f->rawlen;

  struct ctkn_keyring cand;
  uint8_t *copy;

  if (strcmp(m->event_type, CTKN_TYPE_KEYRING) != 0 || m->value == NULL)
    return CTKN_OK;
  ctkn_keyring_init(&cand);
  if (ctkn_trust_keyring_open(m->value, m->value_len, root, &cand, NULL) !=
          CTKN_OK ||
      cand.version <= kr->version) {
    ctkn_keyring_free(&cand);
    return CTKN_OK;
  }
  if (raw != NULL) {
    if ((copy = malloc(m->value_len)) == NULL) {
      ctkn_keyring_free(&cand);
      return CTKN_ENOMEM;
    }
    memcpy(copy, m->value, m->value_len);
    free(*raw);
    *raw = copy;
    *rawlen = m->value_len;
  }
  ctkn_keyring_free(kr);
  *kr = cand;
  return CTKN_OK;
}

static int read_to_end(ctkn_consumer *c, int32_t n, const int64_t *hi,
                       int (*cb)(void *, const struct ctkn_log_msg *),
                       void *arg, struct ctkn_err *err)
{
  struct ctkn_log_msg msgs[FETCH_BATCH];
  int64_t *pos = calloc((size_t)n, sizeof(*pos));
  int64_t deadline = ctkn__now_ms() + 30000;
  int rc = CTKN_OK;
  bool done = false;

  if (pos == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory reading the keyring");
  if ((rc = ctkn_consumer_assign(c, pos, n, err)) != CTKN_OK)
    goto out;
  while (!done) {
    size_t got = 0;
    if (ctkn__now_ms() > deadline) {
      rc = ctkn__err(err, CTKN_ETIMEOUT, "reading the keyring timed out");
      break;
    }
    if ((rc = ctkn_consumer_poll(c, 200, msgs, FETCH_BATCH, &got, err)) !=
        CTKN_OK)
      break;
    for (size_t i = 0; i < got; i++) {
      if (cb(arg, &msgs[i]) != CTKN_OK) {
        rc = ctkn__err(err, CTKN_ENOMEM,
                       "out of memory reading the settings "
                       "topic");
        goto out;
      }
      if (msgs[i].partition >= 0 && msgs[i].partition < n)
        pos[msgs[i].partition] = msgs[i].offset + 1;
    }
    done = true;
    for (int32_t p = 0; p < n; p++)
      done = done && pos[p] >= hi[p];
  }
out:
  free(pos);
  return rc;
}

int ctkn_trust_settings_read(const struct ctkn_log_config *cfg,
                             int (*cb)(void *, const struct ctkn_log_msg *),
                             void *arg, struct ctkn_err *err)
{
  ctkn_consumer *c = NULL;
  int64_t *hi = NULL;
  int32_t n = 0;
  int rc;

  if ((rc = ctkn_consumer_open(&c, cfg, err)) != CTKN_OK ||
      (rc = ctkn_consumer_partitions(c, &n, err)) != CTKN_OK)
    goto out;
  if ((hi = calloc((size_t)(n > 0 ? n : 1), sizeof(*hi))) == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory reading the keyring");
    goto out;
  }
  /* The ends alone: the read starts at offset 0 (the settings topic
   * keeps every record, docs/operations.md), one ListOffsets request
   * fewer on every command's way to the keyring. */
  if ((rc = ctkn_consumer_ends(c, n, hi, err)) == CTKN_OK)
    rc = read_to_end(c, n, hi, cb, arg, err);
out:
  free(hi);
  ctkn_consumer_close(c);
  return rc;
}

int ctkn_trust_keyring_fetch(const struct ctkn_log_config *cfg,
                             const ctkn_pubkey *root, struct ctkn_keyring *kr,
                             uint8_t **raw, size_t *rawlen,
                             struct ctkn_err *err)
{
  struct ring_fetch f = {root, kr, raw, rawlen};

  if (raw != NULL) {
    *raw = NULL;
    *rawlen = 0;
  }
  return ctkn_trust_settings_read(cfg, consider, &f, err);
}

int ctkn_trust_keyring_value(const ctkn_seckey *root,
                             const struct ctkn_keyring *kr, uint8_t **out,
                             size_t *len, struct ctkn_err *err)
{
  struct ctkn_signed s;
  uint8_t *body = NULL;
  size_t blen;
  int rc;

  *out = NULL;
  if ((rc = ctkn_keyring_check(kr, err)) == CTKN_OK &&
      (rc = ctkn_keyring_encode(kr, &body, &blen, err)) == CTKN_OK &&
      (rc = ctkn_trust_sign(root, "root", CTKN_SIGNED_KEYRING, body, blen, &s,
                            err)) == CTKN_OK)
    rc = ctkn_signed_encode(&s, out, len, err);
  free(body);
  return rc;
}

int ctkn_trust_keyring_append(const struct ctkn_log_config *cfg,
                              const ctkn_seckey *root,
                              const struct ctkn_keyring *kr,
                              struct ctkn_err *err)
{
  ctkn_producer *p = NULL;
  uint8_t *val = NULL;
  size_t vlen;
  int rc;

  if ((rc = ctkn_trust_keyring_value(root, kr, &val, &vlen, err)) == CTKN_OK &&
      (rc = ctkn_producer_open(&p, cfg, err)) == CTKN_OK)
    rc = ctkn_producer_send(p, 0, "keyring", 7, val, vlen, kr->issued_at / 1000,
                            CTKN_TYPE_KEYRING, -1, NULL, NULL, err);
  ctkn_producer_close(p);
  free(val);
  return rc;
}

int ctkn_trust_keyring_place(const struct ctkn_log_config *cfg,
                             const ctkn_seckey *root,
                             const struct ctkn_keyring *kr, int32_t *placed,
                             struct ctkn_err *err)
{
  struct ctkn_log_record *recs = NULL;
  ctkn_consumer *c = NULL;
  ctkn_producer *p = NULL;
  uint8_t *val = NULL;
  size_t vlen;
  int32_t n = 0;
  int rc;

  *placed = 0;
  if ((rc = ctkn_consumer_open(&c, cfg, err)) == CTKN_OK)
    rc = ctkn_consumer_partitions(c, &n, err);
  ctkn_consumer_close(c);
  if (rc == CTKN_ENOTFOUND)
    return CTKN_OK; /* no event topic yet: no record to judge */
  if (rc != CTKN_OK)
    return rc;
  if ((rc = ctkn_trust_keyring_value(root, kr, &val, &vlen, err)) != CTKN_OK)
    return rc;
  if (n < 1 || (recs = calloc((size_t)n, sizeof(*recs))) == NULL) {
    free(val);
    return n < 1 ? CTKN_OK
                 : ctkn__err(err, CTKN_ENOMEM,
                             "out of memory placing the "
                             "keyring");
  }
  for (int32_t i = 0; i < n; i++)
    recs[i] = (struct ctkn_log_record){.partition = i,
                                       .key = "keyring",
                                       .klen = 7,
                                       .value = val,
                                       .vlen = vlen,
                                       .timestamp_ms = kr->issued_at / 1000,
                                       .event_type = CTKN_TYPE_KEYRING,
                                       .schema_version = -1};
  if ((rc = ctkn_producer_open(&p, cfg, err)) == CTKN_OK &&
      (rc = ctkn_producer_send_batch(p, recs, (size_t)n, err)) == CTKN_OK)
    *placed = n;
  ctkn_producer_close(p);
  free(recs);
  free(val);
  return rc;
}
