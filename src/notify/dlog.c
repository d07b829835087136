/*
 * dlog.c - the notifier's records on the notifications topic
 * (notify_int.h, delivery.h).
 *
 * Each flush of finished attempts (lease.c, every FLUSH_US) becomes one
 * produce batch: per attempt a notification.created (before a
 * notification's first attempt), a notification.attempted and, when it
 * settled, notification.delivered or .failed; keyed by the notification
 * ID. With trust the batch is signed by the notifier's writer key and
 * ends with the checkpoints that cover it (trust.h), so a reader applies
 * it at once; the last one (stopping) closes the instance. The batch is
 * acknowledged before the flush commits the local state, so what the
 * local state says was recorded is on the log; a batch that fails stops
 * the notifier (its partitions move on, and its last attempts are sent
 * again: at least once, as always).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/delivery.h"
#include "ctkn/trust.h"
#include "notify_int.h"

/* Whether the keyring lets this notifier append: its key is active and
 * scoped to delivery records, and schema CTKN_SCHEMA_DELIVERY is
 * enabled. *skip (with a warning) when there is nothing to sign with or
 * the schema is not enabled yet. */
static int dlog_trust(struct notifier *nf, const struct ctkn_keyring *kr,
                      bool *skip, struct ctkn_err *err)
{
  const struct ctkn_writer_key *wk;
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  char id[CTKN_KEY_ID_BUF];

  *skip = true;
  if (nf->o.writer_key == NULL) {
    ctkn__diag(CTKN_DIAG_WARN, "notify",
               "no --writer-key: delivery state is not appended to the "
               "notifications topic (kept in this --db only)");
    return CTKN_OK;
  }
  if (!ctkn_keyring_schema_enabled(kr, CTKN_SCHEMA_DELIVERY)) {
    ctkn__diag(CTKN_DIAG_WARN, "notify",
               "the keyring does not enable event schema version %d yet "
               "(ctkn trust schema enable %d): delivery state is not "
               "appended to the notifications topic",
               CTKN_SCHEMA_DELIVERY, CTKN_SCHEMA_DELIVERY);
    return CTKN_OK;
  }
  ctkn_seckey_public(nf->o.writer_key, pub);
  ctkn_key_id(pub, id);
  if ((wk = ctkn_keyring_find(kr, id)) == NULL || wk->revoked ||
      !ctkn_writer_key_may(wk, "notification.attempted"))
    return ctkn__err_field(err, CTKN_EINVAL, "writer_key",
                           "writer key %s is not an active notification.* "
                           "key of keyring version %" PRIu64
                           " (ctkn trust key add --scope 'notification.*')",
                           id, kr->version);
  *skip = false;
  return CTKN_OK;
}

/* The notifications topic's partition count, creating the topic when an
 * older `ctkn init` left it out. */
static int dlog_parts(struct notifier *nf, const struct ctkn_log_config *dcfg,
                      struct ctkn_err *err)
{
  ctkn_consumer *c = NULL;
  bool created;
  int rc = ctkn_consumer_open(&c, dcfg, err);

  if (rc == CTKN_ENOTFOUND) {
    rc = ctkn_delivery_create_topic(nf->cfg, nf->nparts, -1, &created,
                                    &nf->dparts, err);
    if (rc == CTKN_OK && created)
      ctkn__diag(CTKN_DIAG_INFO, "notify",
                 "created %s (%" PRId32 " partitions)", dcfg->topic,
                 nf->dparts);
    return rc;
  }
  if (rc == CTKN_OK)
    rc = ctkn_consumer_partitions(c, &nf->dparts, err);
  ctkn_consumer_close(c);
  if (rc == CTKN_OK && (nf->dparts < 1 || nf->dparts > CTKN_DELIVERY_MAX_PARTS))
    rc = ctkn__err(err, CTKN_EKAFKA,
                   "%s: %" PRId32 " partitions; a notifications topic has 1 "
                   "to %d",
                   dcfg->topic, nf->dparts, CTKN_DELIVERY_MAX_PARTS);
  return rc;
}

int ctkn__ntf_dlog_open(struct notifier *nf, struct ctkn_err *err)
{
  const struct ctkn_keyring *kr =
      nf->o.trust_root != NULL ? ctkn_projector_keyring(nf->proj) : NULL;
  struct ctkn_log_config dcfg = *nf->cfg;
  bool skip = false;
  int rc;

  if (kr != NULL && ((rc = dlog_trust(nf, kr, &skip, err)) != CTKN_OK || skip))
    return rc;
  if ((rc = ctkn_delivery_topic(nf->cfg->topic, dcfg.topic, sizeof(dcfg.topic),
                                err)) != CTKN_OK ||
      (rc = dlog_parts(nf, &dcfg, err)) != CTKN_OK ||
      (rc = ctkn_producer_open(&nf->dprod, &dcfg, err)) != CTKN_OK)
    return rc;
  if (kr != NULL &&
      (rc = ctkn_signer_open(&nf->signer, nf->o.writer_key, kr->log_id,
                             nf->dparts, err)) != CTKN_OK)
    return rc;
  nf->dlog = true;
  return CTKN_OK;
}

void ctkn__ntf_dlog_close(struct notifier *nf)
{
  ctkn_signer_close(nf->signer);
  ctkn_producer_close(nf->dprod);
  nf->signer = NULL;
  nf->dprod = NULL;
  nf->dlog = false;
}

/* ---- one flush's batch --------------------------------------------------- */

struct batch {
  struct ctkn_log_record *recs;
  uint8_t **bufs;
  size_t n, cap;
};

static void batch_free(struct batch *b)
{
  for (size_t i = 0; i < b->n; i++)
    free(b->bufs[i]);
  free(b->recs);
  free(b->bufs);
}

/* Append record d (its type, the notification's partition), keyed by key
 * (its ID, kept alive until the batch is produced). */
static int batch_add(struct notifier *nf, struct batch *b,
                     const struct ctkn_delivery *d, const char *key,
                     struct ctkn_err *err)
{
  struct ctkn_log_record *r;
  uint8_t *buf;
  size_t len;
  int rc;

  if ((rc = ctkn_delivery_encode(d, &buf, &len, err)) != CTKN_OK)
    return rc;
  r = &b->recs[b->n];
  b->bufs[b->n++] = buf;
  *r = (struct ctkn_log_record){
      .partition = ctkn_delivery_partition(d->n.id, nf->dparts),
      .key = key,
      .klen = CTKN_NTF_ID_LEN,
      .value = buf,
      .vlen = len,
      .timestamp_ms = d->at / 1000,
      .event_type = ctkn_dlv_type_str(d->type),
      .schema_version = CTKN_SCHEMA_DELIVERY};
  return CTKN_OK;
}

/* The records of one finished attempt: created before the first, the
 * attempt, and its outcome when it settled. */
static int pend_records(struct notifier *nf, struct batch *b,
                        struct ntf_pend *p, struct ctkn_err *err)
{
  struct ctkn_delivery d = {.n = p->n, .at = p->a.at, .a = {0}};
  int rc = CTKN_OK;

  if (p->a.n == 1) {
    d.type = CTKN_DLV_CREATED;
    rc = batch_add(nf, b, &d, p->n.id, err);
  }
  d.type = CTKN_DLV_ATTEMPTED;
  d.a = p->a;
  d.retry_at = p->n.status == CTKN_NTF_NEEDS_RETRY ? p->n.retry_at : 0;
  if (rc == CTKN_OK)
    rc = batch_add(nf, b, &d, p->n.id, err);
  memset(&d.a, 0, sizeof(d.a));
  d.retry_at = 0;
  d.at = p->a.at + p->a.latency_us;
  if (p->n.status == CTKN_NTF_DELIVERED || p->n.status == CTKN_NTF_FAILED) {
    d.type = p->n.status == CTKN_NTF_DELIVERED ? CTKN_DLV_DELIVERED
                                               : CTKN_DLV_FAILED;
    if (rc == CTKN_OK)
      rc = batch_add(nf, b, &d, p->n.id, err);
  }
  return rc;
}

/* Produce b, signed when trust is on (closing: the instance ends). */
static int produce(struct notifier *nf, struct batch *b, bool closing,
                   struct ctkn_err *err)
{
  struct ctkn_log_record *out = b->recs;
  size_t nout = b->n;
  int rc;

  if (nf->signer == NULL)
    return ctkn_producer_send_batch(nf->dprod, out, nout, err);
  if ((rc = ctkn_signer_prepare(nf->signer, b->recs, b->n,
                                closing ? CTKN_SIGN_CLOSING : 0, ctkn_now_us(),
                                &out, &nout, err)) != CTKN_OK)
    return rc;
  rc = ctkn_producer_send_batch(nf->dprod, out, nout, err);
  ctkn_signer_done(nf->signer, rc == CTKN_OK, NULL);
  return rc;
}

int ctkn__ntf_dlog_append(struct notifier *nf, bool closing,
                          struct ctkn_err *err)
{
  struct ntf_pend *pend = (void *)nf->pend.data;
  size_t npend = nf->pend.len / sizeof(*pend);
  struct batch b = {0};
  int rc = CTKN_OK;

  if (!nf->dlog || (npend == 0 && !(closing && nf->signer != NULL)))
    return CTKN_OK;
  b.cap = 3 * npend;
  b.recs = calloc(b.cap ? b.cap : 1, sizeof(*b.recs));
  b.bufs = calloc(b.cap ? b.cap : 1, sizeof(*b.bufs));
  if (b.recs == NULL || b.bufs == NULL)
    rc = ctkn__err(err, CTKN_ENOMEM, "notify: delivery records");
  for (size_t i = 0; i < npend && rc == CTKN_OK; i++)
    rc = pend_records(nf, &b, &pend[i], err);
  if (rc == CTKN_OK)
    rc = produce(nf, &b, closing, err);
  batch_free(&b);
  if (rc != CTKN_OK)
    ctkn__diag(CTKN_DIAG_ERROR, "notify",
               "delivery records not appended (%s): stopping, so that what "
               "was sent is sent again by the partition's next holder",
               err != NULL ? err->msg : "");
  return rc;
}
