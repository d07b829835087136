/*
 * projector_int.h - what the projector's files share (src/projector/):
 * the handle, a batch's source of records, and the pieces each file
 * offers the others. Not installed.
 */
#ifndef CTKN_PROJECTOR_INT_H
#define CTKN_PROJECTOR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/codec.h"
#include "ctkn/projector.h"
#include "ctkn/settings.h"
#include "internal.h"

#define BATCH_MAX    8192 /* records per poll and per write transaction */
/* Catch-ups this far behind run on two threads (pipeline.c). */
#define PIPE_MIN_LAG (2 * BATCH_MAX)

struct ctkn_projector {
  ctkn_store *st;
  const struct ctkn_log_config *cfg;
  ctkn_env env;
  ctkn_consumer *consumer;
  int32_t nparts;
  bool assigned;  /* the consumer holds every partition at pos */
  int64_t *pos;   /* next offset per partition, as consumed */
  bool *paused;   /* partitions stopped at a newer schema */
  int64_t *limit; /* replay: apply nothing at or past these offsets */
  int32_t nlimit;
  struct ctkn_log_msg *msgs;
  struct ctkn_projector_stats stats;
  struct ctkn_projector_hooks hooks;
  /* follow: the settings topic's follower, opened when the topic exists */
  ctkn_settings_follower *settings;
  int64_t settings_retry_ms; /* when to look for the topic again */
};

/*
 * Where a batch's records come from: the caller's ctkn_log_msg array, or
 * the pipelined catch-up's buffers. Either way each record is its wire
 * bytes, headers and timestamp, decoded here by the codec.
 */
struct source {
  size_t n;
  /* Record i. The pointer is valid until the next call. */
  const struct ctkn_log_msg *(*msg)(struct source *s, size_t i);
  /* ctkn_projector_decode() of record i, done already by whoever read it
   * (the pipeline's reader); NULL: decode here. */
  int (*decode)(struct source *s, size_t i, struct ctkn_event *ev,
                struct ctkn_err *err);
  void *arg;
};

/*
 * Apply a source's records in one write transaction. Creates are guessed
 * new (no lookup of the ID or token string) and checked as the batch is
 * written; when a guess was wrong (a duplicate create, a reused token
 * string) the transaction is aborted and the batch applied again without
 * guessing, from the same paused partitions. paused, npaused and stats as
 * ctkn_projector_apply(). Errors: CTKN_ESTORE, CTKN_ENOMEM.
 */
int ctkn__projector_apply_source(ctkn_store *st, ctkn_env env,
                                 struct source *src, bool *paused,
                                 int32_t npaused,
                                 struct ctkn_projector_stats *stats,
                                 struct ctkn_err *err);

/* Tell the hooks how far each partition got. */
void ctkn__projector_advanced(const ctkn_projector *p);

/* ctkn_projector_catch_up() to hi[] (p->nparts entries), on two threads.
 * The partitions are assigned at p->pos; afterwards the consumer stands
 * past them and p->assigned is false. Errors: as ctkn_projector_catch_up().
 */
int ctkn__projector_catch_up_pipelined(ctkn_projector *p, const int64_t *hi,
                                       struct ctkn_err *err);

#endif /* CTKN_PROJECTOR_INT_H */
