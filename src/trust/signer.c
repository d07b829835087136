/*
 * signer.c - a writer instance signing what it appends (trust.h).
 *
 * Each record gets three headers: ctkn-writer names the instance,
 * ctkn-seq its place in the instance's sequence on that partition, and
 * ctkn-chain the chain after it. The chain is unkeyed, so it proves only
 * order; the checkpoint that follows each partition's records in the same
 * produce batch signs the chain head and so everything before it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ctkn/codec.h"
#include "ctkn/trust.h"
#include "internal.h"

#define OWN_HEADERS 3 /* ctkn-writer, ctkn-seq, ctkn-chain */
#define SEQ_BUF     21
#define CHAIN_HEX   (2 * CTKN_CHAIN_LEN + 1)

struct part {
  uint64_t seq; /* the last prepared record's, 0 before the first */
  uint8_t chain[CTKN_CHAIN_LEN];
  uint64_t next_seq; /* as the batch being prepared moves them: kept */
  uint8_t next_chain[CTKN_CHAIN_LEN]; /* when the whole batch is prepared */
  bool touched;                       /* by the batch being prepared */
};

/* One prepared record's own strings. */
struct own {
  char seq[SEQ_BUF];
  char chain[CHAIN_HEX];
  char schema[12];
};

struct ctkn_signer {
  const ctkn_seckey *key;
  char key_id[CTKN_KEY_ID_BUF];
  uint8_t log_id[CTKN_LOG_ID_LEN];
  uint8_t instance[CTKN_INSTANCE_LEN];
  char writer[CTKN_WRITER_BUF];
  bool broken; /* no instance: random bytes failed */
  int32_t nparts;
  struct part *parts;
  uint64_t gen; /* counts the instances: a batch's is its generation */
  /* the prepared batch */
  struct ctkn_log_record *out;
  struct ctkn_log_header *hdrs;
  struct own *own;
  uint8_t **cp_values;
  size_t cap_out, cap_hdrs, cap_own, ncp;
};

static int new_instance(ctkn_signer *s, struct ctkn_err *err)
{
  size_t got = 0;

  while (got < CTKN_INSTANCE_LEN) {
    ssize_t r = getrandom(s->instance + got, CTKN_INSTANCE_LEN - got, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      s->broken = true;
      return ctkn__err(err, CTKN_EIO, "no random bytes for a writer instance");
    }
    got += (size_t)r;
  }
  ctkn_trust_writer_str(s->key_id, s->instance, s->writer);
  for (int32_t p = 0; p < s->nparts; p++)
    s->parts[p].seq = 0;
  s->gen++;
  s->broken = false;
  return CTKN_OK;
}

int ctkn_signer_open(ctkn_signer **out, const ctkn_seckey *key,
                     const uint8_t log_id[CTKN_LOG_ID_LEN], int32_t nparts,
                     struct ctkn_err *err)
{
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  ctkn_signer *s;
  int rc;

  *out = NULL;
  if (nparts < 1)
    return ctkn__err(err, CTKN_EUSAGE, "a signer needs partitions (got %d)",
                     (int)nparts);
  if ((s = calloc(1, sizeof(*s))) == NULL ||
      (s->parts = calloc((size_t)nparts, sizeof(*s->parts))) == NULL) {
    free(s);
    return ctkn__err(err, CTKN_ENOMEM, "out of memory opening a signer");
  }
  s->key = key;
  s->nparts = nparts;
  ctkn_seckey_public(key, pub);
  ctkn_key_id(pub, s->key_id);
  memcpy(s->log_id, log_id, CTKN_LOG_ID_LEN);
  if ((rc = new_instance(s, err)) != CTKN_OK) {
    ctkn_signer_close(s);
    return rc;
  }
  *out = s;
  return CTKN_OK;
}

static void free_cps(ctkn_signer *s)
{
  for (size_t i = 0; i < s->ncp; i++)
    free(s->cp_values[i]);
  s->ncp = 0;
}

void ctkn_signer_close(ctkn_signer *s)
{
  if (s == NULL)
    return;
  free_cps(s);
  free(s->cp_values);
  free(s->out);
  free(s->hdrs);
  free(s->own);
  free(s->parts);
  free(s);
}

const char *ctkn_signer_writer(const ctkn_signer *s)
{
  return s->writer;
}

/* Room for nrec records, nhdr headers and nown own strings. */
static int reserve(ctkn_signer *s, size_t nrec, size_t nhdr, size_t nown,
                   struct ctkn_err *err)
{
  void *p;

  if (nrec > s->cap_out) {
    if ((p = realloc(s->out, nrec * sizeof(*s->out))) == NULL)
      goto nomem;
    s->out = p;
    if ((p = realloc(s->cp_values, nrec * sizeof(*s->cp_values))) == NULL)
      goto nomem;
    s->cp_values = p;
    s->cap_out = nrec;
  }
  if (nhdr > s->cap_hdrs) {
    if ((p = realloc(s->hdrs, nhdr * sizeof(*s->hdrs))) == NULL)
      goto nomem;
    s->hdrs = p;
    s->cap_hdrs = nhdr;
  }
  if (nown > s->cap_own) {
    if ((p = realloc(s->own, nown * sizeof(*s->own))) == NULL)
      goto nomem;
    s->own = p;
    s->cap_own = nown;
  }
  return CTKN_OK;
nomem:
  return ctkn__err(err, CTKN_ENOMEM, "out of memory signing a batch");
}

static size_t given_headers(const struct ctkn_log_record *r)
{
  if (r->headers != NULL)
    return r->nheaders;
  return (r->event_type != NULL) + (r->schema_version >= 0);
}

static struct ctkn_log_header hdr(const char *name, const char *value)
{
  return (struct ctkn_log_header){name, value, strlen(value)};
}

/* Record r's headers into h, its own three last; returns how many. */
static size_t put_headers(ctkn_signer *s, const struct ctkn_log_record *r,
                          struct own *o, uint64_t seq,
                          struct ctkn_log_header *h)
{
  size_t k = 0;

  if (r->headers != NULL) {
    memcpy(h, r->headers, r->nheaders * sizeof(*h));
    k = r->nheaders;
  } else {
    if (r->event_type != NULL)
      h[k++] = hdr(CTKN_HDR_EVENT_TYPE, r->event_type);
    if (r->schema_version >= 0) {
      snprintf(o->schema, sizeof(o->schema), "%d", r->schema_version);
      h[k++] = hdr(CTKN_HDR_SCHEMA, o->schema);
    }
  }
  snprintf(o->seq, sizeof(o->seq), "%" PRIu64, seq);
  h[k++] = hdr(CTKN_HDR_WRITER, s->writer);
  h[k++] = hdr(CTKN_HDR_SEQ, o->seq);
  h[k] = (struct ctkn_log_header){CTKN_HDR_CHAIN, o->chain, CHAIN_HEX - 1};
  return k + 1;
}

/* Link record i (its headers at h, nh of them) into its partition's
 * chain. */
static int link_one(ctkn_signer *s, struct ctkn_log_record *r,
                    struct ctkn_log_header *h, size_t nh, struct own *o,
                    struct ctkn_err *err)
{
  struct part *pt = &s->parts[r->partition];
  struct ctkn_log_msg m = {.partition = r->partition,
                           .key = r->key,
                           .key_len = r->klen,
                           .value = r->value,
                           .value_len = r->vlen,
                           .headers = h,
                           .nheaders = nh};
  uint8_t digest[CTKN_CHAIN_LEN];
  int rc;

  if ((rc = ctkn_trust_record_digest(s->log_id, &m, digest, err)) != CTKN_OK)
    return rc;
  ctkn_trust_chain_next(pt->next_chain, digest, pt->next_chain);
  ctkn_hex(pt->next_chain, CTKN_CHAIN_LEN, o->chain);
  return CTKN_OK;
}

static int sign_records(ctkn_signer *s, const struct ctkn_log_record *in,
                        size_t n, size_t *nhdr, struct ctkn_err *err)
{
  size_t k = 0;
  int rc;

  for (size_t i = 0; i < n; i++) {
    struct ctkn_log_record *r = &s->out[i];
    struct part *pt = &s->parts[in[i].partition];
    struct ctkn_log_header *h = &s->hdrs[k];
    size_t nh;

    if (!pt->touched) {
      pt->touched = true;
      pt->next_seq = pt->seq;
      if (pt->seq == 0)
        ctkn_trust_chain_start(s->log_id, in[i].partition, s->key_id,
                               s->instance, pt->chain);
      memcpy(pt->next_chain, pt->chain, CTKN_CHAIN_LEN);
    }
    *r = in[i];
    nh = put_headers(s, &in[i], &s->own[i], ++pt->next_seq, h);
    if ((rc = link_one(s, r, h, nh, &s->own[i], err)) != CTKN_OK)
      return rc;
    r->headers = h;
    r->nheaders = nh;
    k += nh;
  }
  *nhdr = k;
  return CTKN_OK;
}

/* The checkpoint of partition p as a record into s->out[at]. */
static int checkpoint(ctkn_signer *s, int32_t p, bool closing, int64_t now_us,
                      size_t at, struct ctkn_log_header *h,
                      struct ctkn_err *err)
{
  struct part *pt = &s->parts[p];
  struct ctkn_checkpoint c = {.partition = p,
                              .sequence = pt->next_seq,
                              .signed_at = now_us,
                              .closing = closing};
  struct ctkn_signed sg;
  uint8_t *body = NULL, *val = NULL;
  size_t blen, vlen;
  int rc;

  memcpy(c.log_id, s->log_id, CTKN_LOG_ID_LEN);
  memcpy(c.key_id, s->key_id, CTKN_KEY_ID_BUF);
  memcpy(c.instance, s->instance, CTKN_INSTANCE_LEN);
  memcpy(c.chain, pt->next_chain, CTKN_CHAIN_LEN);
  /* Where this batch's records start: pt->seq and pt->chain are the head
   * before it (moved on once the whole batch is prepared). */
  c.from_set = true;
  c.from_sequence = pt->seq;
  memcpy(c.from_chain, pt->chain, CTKN_CHAIN_LEN);
  if ((rc = ctkn_checkpoint_encode(&c, &body, &blen, err)) == CTKN_OK &&
      (rc = ctkn_trust_sign(s->key, s->key_id, CTKN_SIGNED_CHECKPOINT, body,
                            blen, &sg, err)) == CTKN_OK)
    rc = ctkn_signed_encode(&sg, &val, &vlen, err);
  free(body);
  if (rc != CTKN_OK)
    return rc;
  s->cp_values[s->ncp++] = val;
  h[0] = hdr(CTKN_HDR_EVENT_TYPE, CTKN_TYPE_CHECKPOINT);
  h[1] = hdr(CTKN_HDR_WRITER, s->writer);
  s->out[at] = (struct ctkn_log_record){.partition = p,
                                        .value = val,
                                        .vlen = vlen,
                                        .timestamp_ms = now_us / 1000,
                                        .schema_version = -1,
                                        .headers = h,
                                        .nheaders = 2};
  return CTKN_OK;
}

static int check_input(const ctkn_signer *s, const struct ctkn_log_record *in,
                       size_t n, size_t *nhdr, struct ctkn_err *err)
{
  if (s->broken)
    return ctkn__err(err, CTKN_EIO, "the signer has no writer instance");
  *nhdr = 0;
  for (size_t i = 0; i < n; i++) {
    if (in[i].partition < 0 || in[i].partition >= s->nparts)
      return ctkn__err(err, CTKN_EUSAGE,
                       "record %zu: partition %d outside 0..%d", i,
                       (int)in[i].partition, (int)s->nparts - 1);
    *nhdr += given_headers(&in[i]) + OWN_HEADERS;
  }
  return CTKN_OK;
}

int ctkn_signer_prepare(ctkn_signer *s, const struct ctkn_log_record *in,
                        size_t n, unsigned flags, int64_t now_us,
                        struct ctkn_log_record **out, size_t *nout,
                        struct ctkn_err *err)
{
  size_t nhdr = 0, k = 0, at = n;
  int rc;

  *out = NULL;
  *nout = 0;
  free_cps(s);
  if ((rc = check_input(s, in, n, &nhdr, err)) != CTKN_OK ||
      (rc = reserve(s, n + (size_t)s->nparts, nhdr + 2 * (size_t)s->nparts,
                    n ? n : 1, err)) != CTKN_OK)
    return rc;
  for (int32_t p = 0; p < s->nparts; p++)
    s->parts[p].touched = false;
  if ((rc = sign_records(s, in, n, &k, err)) != CTKN_OK)
    return rc;
  for (int32_t p = 0; p < s->nparts; p++) {
    struct part *pt = &s->parts[p];
    if (!pt->touched && ((flags & CTKN_SIGN_HEARTBEAT) ||
                         ((flags & CTKN_SIGN_CLOSING) && pt->seq > 0))) {
      pt->touched = true;
      pt->next_seq = pt->seq;
      if (pt->seq == 0)
        ctkn_trust_chain_start(s->log_id, p, s->key_id, s->instance, pt->chain);
      memcpy(pt->next_chain, pt->chain, CTKN_CHAIN_LEN);
    }
    if (!pt->touched)
      continue;
    if ((rc = checkpoint(s, p, (flags & CTKN_SIGN_CLOSING) != 0, now_us, at++,
                         &s->hdrs[k], err)) != CTKN_OK)
      return rc;
    k += 2;
  }
  /* Prepared: the next batch chains onto this one. */
  for (int32_t p = 0; p < s->nparts; p++) {
    struct part *pt = &s->parts[p];
    if (!pt->touched)
      continue;
    pt->seq = pt->next_seq;
    memcpy(pt->chain, pt->next_chain, CTKN_CHAIN_LEN);
    pt->touched = false;
  }
  *out = s->out;
  *nout = at;
  return CTKN_OK;
}

int ctkn_signer_done(ctkn_signer *s, bool acked, struct ctkn_err *err)
{
  return ctkn_signer_done_gen(s, s->gen, acked, err);
}

uint64_t ctkn_signer_generation(const ctkn_signer *s)
{
  return s->gen;
}

int ctkn_signer_done_gen(ctkn_signer *s, uint64_t gen, bool acked,
                         struct ctkn_err *err)
{
  /* Acknowledged, or of an instance that already ended: nothing to do. */
  if (acked || gen != s->gen)
    return CTKN_OK;
  /* Its records may be missing from the log, and the batches prepared
   * after it chain onto them: they end with the instance. */
  return new_instance(s, err);
}
