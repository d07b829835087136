/*
 * ledger.c - the ledger's handle: its producer and projector opened (at
 * once, with trust), the writer key taken, the writer instance (the
 * signer, its heartbeats and closing checkpoints), closed. A batch of
 * commands through it is batch.c's; `create --batch`'s lines are in
 * lines.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/ledger.h"
#include "ctkn/projector.h"
#include "ctkn/trust.h"
#include "internal.h"
#include "ledger/ledger_int.h"

/* A ledger with nothing open yet; NULL when out of memory. */
static ctkn_ledger *ledger_new(ctkn_store *st,
                               const struct ctkn_log_config *cfg, ctkn_env env)
{
  ctkn_ledger *l = calloc(1, sizeof(*l));

  if (l == NULL)
    return NULL;
  l->st = st;
  l->cfg = cfg;
  l->env = env;
  l->sticky = -1;
  pthread_mutex_init(&l->sign_mu, NULL);
  pthread_mutex_init(&l->spare_mu, NULL);
  snprintf(l->ce_source, sizeof(l->ce_source), "urn:ctkn:topic:%s", cfg->topic);
  return l;
}

int ctkn_ledger_open(ctkn_ledger **out, ctkn_store *st,
                     const struct ctkn_log_config *cfg, ctkn_env env,
                     struct ctkn_err *err)
{
  ctkn_ledger *l;
  int rc;

  *out = NULL;
  if ((l = ledger_new(st, cfg, env)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "ledger");
  if ((rc = ctkn_producer_open(&l->producer, cfg, err)) != CTKN_OK ||
      (rc = ctkn_projector_open(&l->projector, st, cfg, env, err)) != CTKN_OK) {
    ctkn_ledger_close(l);
    return rc;
  }
  *out = l;
  return CTKN_OK;
}

/* Checkpoints alone (CTKN_SIGN_* flags), in one produce batch. */
static int checkpoints(ctkn_ledger *l, unsigned flags, struct ctkn_err *err)
{
  struct ctkn_log_record *out;
  size_t nout = 0;
  int rc;

  if ((rc = ctkn_signer_prepare(l->signer, NULL, 0, flags, ctkn_now_us(), &out,
                                &nout, err)) != CTKN_OK ||
      nout == 0)
    return rc;
  rc = ctkn_producer_send_batch(l->producer, out, nout, err);
  ctkn_signer_done(l->signer, rc == CTKN_OK, NULL);
  return rc;
}

/* A closing checkpoint on every partition the instance wrote to, so
 * readers drop its state. Best effort: an instance left open costs a
 * reader a little memory, nothing else. */
static void close_instance(ctkn_ledger *l)
{
  if (l->signer != NULL)
    checkpoints(l, CTKN_SIGN_CLOSING, NULL);
}

void ctkn_ledger_follow_with(ctkn_ledger *l, ctkn_ledger_wait_fn fn, void *arg)
{
  l->wait = fn;
  l->wait_arg = arg;
}

/* The topic's partitions, from the log's end offsets (and the same-log
 * check that goes with them), without waiting for the projection. */
static int count_parts(ctkn_ledger *l, struct ctkn_err *err)
{
  int64_t *hi = NULL;
  int32_t n = 0;
  int rc = ctkn_projector_log_ends(l->projector, &hi, &n, err);

  free(hi);
  if (rc == CTKN_OK)
    l->parts = n; /* not parts_at_ms: the first command still catches up */
  return rc;
}

int ctkn_ledger_heartbeat(ctkn_ledger *l, struct ctkn_err *err)
{
  int rc;

  if (l->key == NULL)
    return CTKN_OK;
  /* Before the first command the partitions are not known yet. Counted,
   * not caught up to: a record its writer never checkpointed (it died
   * between the two) holds a catch-up back until a checkpoint signed a
   * second later gives it up, and this heartbeat is such a checkpoint
   * (the gate's grace; it waited for itself, and every write after it). */
  if (l->parts <= 0 && (rc = count_parts(l, err)) != CTKN_OK)
    return rc;
  pthread_mutex_lock(&l->sign_mu);
  if ((rc = ctkn__ledger_signer_for(l, NULL, 0, err)) == CTKN_OK)
    rc = checkpoints(l, CTKN_SIGN_HEARTBEAT, err);
  pthread_mutex_unlock(&l->sign_mu);
  return rc;
}

/* Sign with key from now on, once the projector's keyring (read already)
 * holds it, active, for client_token.* records. */
static int use_writer_key(ctkn_ledger *l, const ctkn_seckey *key,
                          struct ctkn_err *err)
{
  const struct ctkn_keyring *kr = ctkn_projector_keyring(l->projector);
  const struct ctkn_writer_key *k;
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  char id[CTKN_KEY_ID_BUF];

  ctkn_seckey_public(key, pub);
  ctkn_key_id(pub, id);
  if ((k = ctkn_keyring_find(kr, id)) == NULL || k->revoked ||
      !ctkn_writer_key_may(k, "client_token.created"))
    return ctkn__err_field(
        err, CTKN_EINVAL, "writer_key",
        "writer key %s is not an active client_token.* key of keyring "
        "version %" PRIu64 " (ctkn trust key add)",
        id, kr->version);
  l->key = key;
  memcpy(l->log_id, kr->log_id, CTKN_LOG_ID_LEN);
  return CTKN_OK;
}

int ctkn_ledger_set_trust(ctkn_ledger *l, const uint8_t root[CTKN_SIGN_PUB_LEN],
                          const ctkn_seckey *key, struct ctkn_err *err)
{
  int rc;

  if ((rc = ctkn_projector_set_trust(l->projector, root, err)) != CTKN_OK)
    return rc;
  l->trusted = true;
  if (key == NULL)
    return CTKN_OK;
  if ((rc = ctkn_projector_refresh_keyring(l->projector, err)) != CTKN_OK)
    return rc;
  return use_writer_key(l, key, err);
}

/* ctkn_ledger_open_trusted()'s producer, opened on a thread of its own. */
struct opener {
  ctkn_ledger *l;
  int rc;
  struct ctkn_err err;
};

static void *open_producer(void *arg)
{
  struct opener *o = arg;

  o->rc = ctkn_producer_open(&o->l->producer, o->l->cfg, &o->err);
  return NULL;
}

int ctkn_ledger_open_trusted(ctkn_ledger **out, ctkn_store *st,
                             const struct ctkn_log_config *cfg, ctkn_env env,
                             const uint8_t root[CTKN_SIGN_PUB_LEN],
                             const ctkn_seckey *key, struct ctkn_err *err)
{
  struct opener o = {0};
  ctkn_ledger *l;
  pthread_t t;
  int rc;

  *out = NULL;
  if (root == NULL || key == NULL) {
    if ((rc = ctkn_ledger_open(&l, st, cfg, env, err)) == CTKN_OK &&
        root != NULL)
      rc = ctkn_ledger_set_trust(l, root, NULL, err);
    if (rc == CTKN_OK)
      *out = l;
    else
      ctkn_ledger_close(l);
    return rc;
  }
  if ((l = ledger_new(st, cfg, env)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "ledger");
  /* The producer, the projector's consumer and the keyring reader are
   * independent handles, each a connection and a few round trips: open
   * them at once (the projector runs two threads of its own). */
  o.l = l;
  bool started = pthread_create(&t, NULL, open_producer, &o) == 0;
  if (!started)
    open_producer(&o);
  rc = ctkn_projector_open_trusted(&l->projector, st, cfg, env, root, err);
  if (started)
    pthread_join(t, NULL);
  /* The producer's failure first, as when it opened first. */
  if (o.rc != CTKN_OK) {
    rc = o.rc;
    if (err != NULL)
      *err = o.err;
  }
  if (rc == CTKN_OK) {
    l->trusted = true;
    rc = use_writer_key(l, key, err);
  }
  if (rc != CTKN_OK) {
    ctkn_ledger_close(l);
    return rc;
  }
  /* Assigned already: a create without an idempotency key appends at
   * once (reads_projection()). */
  l->parts = ctkn_projector_partitions(l->projector);
  l->parts_at_ms = ctkn__now_ms();
  *out = l;
  return CTKN_OK;
}

void ctkn_ledger_last_batch(ctkn_ledger *l)
{
  pthread_mutex_lock(&l->sign_mu);
  l->last_batch = true;
  pthread_mutex_unlock(&l->sign_mu);
}

static void *close_producer(void *arg)
{
  ctkn_producer_close(arg);
  return NULL;
}

void ctkn_ledger_close(ctkn_ledger *l)
{
  pthread_t t;

  if (l == NULL)
    return;
  pthread_mutex_lock(&l->sign_mu);
  close_instance(l);
  ctkn_signer_close(l->signer);
  l->signer = NULL;
  pthread_mutex_unlock(&l->sign_mu);
  /* Every append was awaited (the caller settles what it submitted), so
   * nothing acknowledged depends on the order: the producer (which still
   * flushes what a sender gave up on) and the projector's consumer are
   * destroyed at once, each joining its librdkafka threads. */
  bool started = l->producer != NULL && l->projector != NULL &&
                 pthread_create(&t, NULL, close_producer, l->producer) == 0;
  ctkn_projector_close(l->projector);
  if (started)
    pthread_join(t, NULL);
  else
    ctkn_producer_close(l->producer);
  pthread_mutex_destroy(&l->sign_mu);
  ctkn__ledger_spare_free(l);
  pthread_mutex_destroy(&l->spare_mu);
  free(l);
}

/* ledger_int.h */
int ctkn__ledger_signer_for(ctkn_ledger *l, const struct ctkn_log_record *recs,
                            size_t n, struct ctkn_err *err)
{
  int32_t np = l->parts;

  for (size_t k = 0; k < n; k++)
    if (recs[k].partition >= np)
      np = recs[k].partition + 1;
  if (l->signer != NULL && np <= l->signer_parts)
    return CTKN_OK;
  /* The log ID as the key was taken (a submitting thread must not read
   * the projector's keyring: a settling thread may be refreshing it). */
  close_instance(l);
  ctkn_signer_close(l->signer);
  l->signer = NULL;
  l->signer_parts = np;
  l->signer_epoch++;
  return ctkn_signer_open(&l->signer, l->key, l->log_id, np, err);
}
