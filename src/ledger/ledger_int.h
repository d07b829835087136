/*
 * ledger_int.h - the ledger's handle, shared by its two halves: ledger.c
 * (opening, trust, the writer instance, closing) and batch.c (a batch of
 * commands end to end). Not installed; nothing outside src/ledger/
 * includes it.
 */
#ifndef CTKN_LEDGER_INT_H
#define CTKN_LEDGER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctkn/ledger.h"
#include "ctkn/trust.h"

/* Scratch arrays kept: one per batch in flight (serve keeps 3). */
#define CTKN__LEDGER_SPARE 4

struct ctkn_ledger {
  ctkn_store *st;
  const struct ctkn_log_config *cfg;
  ctkn_env env;
  ctkn_producer *producer;
  ctkn_projector *projector;
  char ce_source[300];    /* CloudEvents' source: the deployment's topic */
  const ctkn_seckey *key; /* the writer key, or NULL */
  uint8_t log_id[CTKN_LOG_ID_LEN]; /* the keyring's, as the key was taken */
  bool trusted; /* judged by a root: without a key, it appends nothing */
  /* sign_mu guards the signer and the three fields after it: a
   * pipelined batch is signed and started on the submitting thread and
   * done (its acknowledgement told to the signer) on the settling one. */
  pthread_mutex_t sign_mu;
  ctkn_signer *signer; /* opened at the first append */
  int32_t signer_parts;
  uint64_t signer_epoch; /* counts the signers opened */
  bool last_batch;       /* the next signed batch closes the instance */
  /* The topic's partitions as the projector knew them after the caller's
   * last catch-up. Submitting reads this, never the projector, which a
   * settling thread may be using (ctkn_ledger_settle()). */
  int32_t parts;
  int64_t parts_at_ms; /* when a catch-up to the log's end last set parts */
  /* Creates without a key go to one partition per batch (pick_partition());
   * both are the submitting thread's. */
  int32_t sticky;
  int sticky_left;
  /* A follower applies for the ledger (ctkn_ledger_follow_with()). */
  ctkn_ledger_wait_fn wait;
  void *wait_arg;
  /* Finished batches' per-command scratch, kept for the next ones
   * (batch.c; ~6 KB a command: a chunk of 512 took 3 MB that calloc
   * zeroed, often fresh from the kernel, every time). Submitting and
   * settling threads both reach it: spare_mu. */
  pthread_mutex_t spare_mu;
  void *spare[CTKN__LEDGER_SPARE];
  size_t spare_cap[CTKN__LEDGER_SPARE]; /* each one's capacity, commands */
};

/* Free the spare scratch (ledger close). */
void ctkn__ledger_spare_free(ctkn_ledger *l);

/* A signer for at least the partitions recs[0..n) name, under sign_mu:
 * the one open, or (more partitions than it covers, or none open) a new
 * instance after closing the old one. Errors: as ctkn_signer_open(). */
int ctkn__ledger_signer_for(ctkn_ledger *l, const struct ctkn_log_record *recs,
                            size_t n, struct ctkn_err *err);

/* Bring the projection to the log's end offsets as they stand (the
 * ledger's projector, or the follower's wait) and take the partition
 * count into l->parts. Errors: the projector's, or the wait's. */
int ctkn__ledger_catch_up_all(ctkn_ledger *l, struct ctkn_err *err);

#endif /* CTKN_LEDGER_INT_H */
