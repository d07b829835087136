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
#include "ctkn/delivery.h"
#include "ctkn/projector.h"
#include "ctkn/settings.h"
#include "internal.h"

#define BATCH_MAX    8192 /* records per poll and per write transaction */
/* Catch-ups this far behind run on two threads (pipeline.c). */
#define PIPE_MIN_LAG (2 * BATCH_MAX)

/*
 * How a side topic's follower (settings, notifications) is doing. A failed
 * open or poll closes it; it is opened again after backoff_ms, which
 * doubles from SIDE_BACKOFF_MIN_MS to SIDE_BACKOFF_MAX_MS while it keeps
 * failing. While down, what its projection answers may be stale (a
 * revoked API key): the status hook says so (stats.unfollowed).
 */
struct side {
  int64_t retry_ms; /* when to open it again; 0: now */
  int backoff_ms;   /* the next failure's wait; 0: SIDE_BACKOFF_MIN_MS */
  bool opened;      /* it was followed once: a topic now missing is down */
  bool down;        /* not followed now, and it should be */
};

#define SIDE_BACKOFF_MIN_MS 200
#define SIDE_BACKOFF_MAX_MS 30000

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
  struct ctkn__ptrust *trust; /* NULL: trust is off */
  struct side settings_side;
  /* follow: the notifications topic's (delivery.h), likewise */
  ctkn_delivery_follower *deliveries;
  struct side deliveries_side;
  bool report_now; /* a side's state changed: report before the next wait */
  /* The consumer (0 events, 1 settings, 2 notifications) whose wake-up
   * last applied nothing (a record held back is read again and again),
   * or -1: the next wait leaves it out and lasts at most 50 ms, so such a
   * record cannot make the loop spin, and the others still wake it. */
  int quiet;
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
 * ctkn_projector_apply(). With trust, every record passes its gate first
 * (trust.c). Errors: CTKN_ESTORE, CTKN_ENOMEM, and with trust the log's
 * (reading the keyring).
 */
int ctkn__projector_apply_source(ctkn_store *st, ctkn_env env,
                                 struct ctkn__ptrust *trust, struct source *src,
                                 bool *paused, int32_t npaused,
                                 struct ctkn_projector_stats *stats,
                                 struct ctkn_err *err);

/* With trust, keep each partition's position at its first held-back
 * record: the catch-up is not there yet. */
void ctkn__projector_clamp_held(ctkn_projector *p);

/* Tell the hooks how far each partition got. */
void ctkn__projector_advanced(const ctkn_projector *p);

/* ctkn_projector_catch_up() to hi[] (p->nparts entries), on two threads.
 * The partitions are assigned at p->pos; afterwards the consumer stands
 * past them and p->assigned is false. Errors: as ctkn_projector_catch_up().
 */
int ctkn__projector_catch_up_pipelined(ctkn_projector *p, const int64_t *hi,
                                       struct ctkn_err *err);

/* ---- trust (trust.c) ------------------------------------------------------
 */

/* The projector's trust: the root key, the keyring, the gate and the
 * records it holds back. NULL where trust is off. */
struct ctkn__ptrust;

/* What a pass does with record k of a judged batch. */
enum { JV_SKIP, JV_HELD, JV_APPLY, JV_CHECKPOINT, JV_QUARANTINE, JV_PAUSE };

/* A batch as the gate sees it: the records held back from the last pass
 * (ncarried of them), then the source's. */
struct ctkn__judge {
  size_t n, ncarried;
  struct source *src;
  const struct ctkn__ptrust *t;
  uint8_t *verdict; /* JV_*, n entries */
  int64_t *next;    /* per partition: the next offset to feed, -1 unread */
  bool *paused;     /* the pass's paused partitions, or NULL */
  const struct ctkn_log_msg *(*msg)(struct ctkn__judge *j, size_t k);
};

/* Open trust for a projection: the root's public key, the keyring stored
 * with the projection. Errors: CTKN_EINVAL (a bad root key), the store's,
 * CTKN_ENOMEM. */
int ctkn__ptrust_open(struct ctkn__ptrust **out, ctkn_store *st,
                      const struct ctkn_log_config *cfg,
                      const uint8_t root[CTKN_SIGN_PUB_LEN],
                      struct ctkn_err *err);
void ctkn__ptrust_free(struct ctkn__ptrust *t);
/* Offline (opened with cfg NULL): learn the keyring and the adoptions
 * from src (copied; what it points to is borrowed for t's life) instead
 * of the settings topic and the log. */
void ctkn__ptrust_set_source(struct ctkn__ptrust *t,
                             const struct ctkn_trust_source *src);
const struct ctkn_keyring *ctkn__ptrust_keyring(const struct ctkn__ptrust *t);
/* Before a pass: when a record of src names a writer key the keyring
 * lacks (or there is no keyring yet), read the keyring from the settings
 * topic and store a newer one with the projection; src NULL: read it
 * anyway. Errors: the log's and the store's. */
int ctkn__ptrust_refresh(struct ctkn__ptrust *t, ctkn_store *st,
                         struct source *src, struct ctkn_err *err);
size_t ctkn__ptrust_carried(const struct ctkn__ptrust *t);
const struct ctkn_log_msg *
ctkn__ptrust_carried_msg(const struct ctkn__ptrust *t, size_t i);
/* Judge j's records inside txn: j->verdict filled. */
int ctkn__ptrust_judge(struct ctkn__ptrust *t, ctkn_store_txn *txn,
                       struct ctkn__judge *j, struct ctkn_err *err);
/* The schema version a refused keyring enables (every partition stops),
 * or 0. */
int ctkn__ptrust_refused(const struct ctkn__ptrust *t);
/* Why record k was quarantined (the same on every replica). */
const char *ctkn__ptrust_reason(const struct ctkn__ptrust *t, size_t k);
/* A JSON log line for quarantined record k (m): its reason and the detail
 * this reader saw. */
void ctkn__ptrust_log(const struct ctkn__ptrust *t, size_t k,
                      const struct ctkn_log_msg *m);
/* Save the gate's state of the partitions judged, inside txn. */
int ctkn__ptrust_save(struct ctkn__ptrust *t, ctkn_store_txn *txn,
                      struct ctkn_err *err);
/* After the pass committed: keep copies of the records held back. */
int ctkn__ptrust_carry(struct ctkn__ptrust *t, struct ctkn__judge *j,
                       struct ctkn_err *err);
/* The signed time of partition p's newest applied checkpoint (0: none),
 * from the state saved in txn. Errors: the store's. */
int ctkn__ptrust_checkpoint_at(ctkn_store_txn *txn, int32_t p, int64_t *at,
                               struct ctkn_err *err);
/* The offset of p's first held-back record, or -1. */
int64_t ctkn__ptrust_held_first(const struct ctkn__ptrust *t, int32_t p);

#endif /* CTKN_PROJECTOR_INT_H */
