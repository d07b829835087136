/*
 * kafka_int.h - what the Kafka implementation's files share (src/log/
 * kafka*.c): the per-handle error context, configuration building,
 * metadata, and the handles themselves. Only src/log/ includes it.
 *
 * Every wait is bounded by the configuration's timeout. librdkafka
 * reports most failures asynchronously (delivery reports, logs, error
 * events), so each handle keeps the last broker error it saw and adds it
 * to timeout messages: "no delivery report" alone does not tell an
 * operator that the connection was refused.
 */
#ifndef CTKN_LOG_KAFKA_INT_H
#define CTKN_LOG_KAFKA_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "internal.h"
#include "log/backend.h"

#define CTKN__KAFKA_CLIENT_ID    "ctkn"
/* librdkafka 2.0.2 refuses rd_kafka_assign() without a group.id ("Local:
 * Unknown group"). The consumer never subscribes or commits, so the group
 * is only a name; -X group.id changes it (for clusters with group ACLs). */
#define CTKN__KAFKA_ASSIGN_GROUP "ctkn"
#define CTKN__KAFKA_POLL_SLICE_MS                                              \
  100 /* longest a waiter sleeps before rechecking */
#define CTKN__KAFKA_META_RETRY_MS                                              \
  100 /* pause between metadata retries after create */
#define CTKN__KAFKA_LEASE_MAX                                                  \
  4096 /* partitions a lease tracks (the store's bound) */

static inline void ctkn__kafka_sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static inline int ctkn__kafka_clamp(int v, int lo, int hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

/*
 * Each handle's error context. librdkafka's opaque points at it; the log
 * and error callbacks run on librdkafka's threads, and mu guards last_err.
 */
struct ctkn__kctx {
  pthread_mutex_t mu;
  char last_err[160]; /* last broker-level error, "" when none */
  bool verbose;       /* -X debug=...: forward librdkafka's log */
  char brokers[256];  /* the effective bootstrap.servers, for messages */
  void *owner;        /* the handle the context belongs to */
};

void ctkn__kctx_init(struct ctkn__kctx *k, void *owner);
/* "(brokers B; last error: E)" or "(brokers B)" into buf, which it
 * returns. */
const char *ctkn__kctx_context(struct ctkn__kctx *k, char *buf, size_t size);

enum ctkn__kafka_kind {
  CTKN__KAFKA_PRODUCER,
  CTKN__KAFKA_CONSUMER,
  CTKN__KAFKA_GROUP,
  CTKN__KAFKA_ADMIN
};

/*
 * Build the configuration of a handle of this kind: ctkn's settings, then
 * the -X overrides (which win, except for the settings ctkn owns). k
 * becomes librdkafka's opaque. On success the caller owns *out (release
 * with rd_kafka_conf_destroy(), or hand it to ctkn__kafka_new_handle()).
 * Errors: CTKN_EUSAGE (a bad timeout, no brokers or topic, a refused
 * override), CTKN_EINTERNAL.
 */
int ctkn__kafka_build_conf(const struct ctkn_log_config *cfg,
                           enum ctkn__kafka_kind kind, struct ctkn__kctx *k,
                           rd_kafka_conf_t **out, struct ctkn_err *err);
/* Set one of ctkn's own settings. Errors: CTKN_EINTERNAL. */
int ctkn__kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                    struct ctkn_err *err);
/* rd_kafka_new(); takes ownership of conf. Errors: CTKN_EUSAGE. */
int ctkn__kafka_new_handle(rd_kafka_type_t type, rd_kafka_conf_t *conf,
                           rd_kafka_t **out, struct ctkn_err *err);
/*
 * The partition count of topic. *topic_err (may be NULL) receives the
 * topic-level error so callers can retry one that is only being created.
 * Errors: CTKN_ENOTFOUND (no such topic), CTKN_ETIMEOUT, CTKN_EKAFKA.
 */
int ctkn__kafka_topic_partitions(rd_kafka_t *rk, struct ctkn__kctx *k,
                                 const char *topic, int timeout_ms, int32_t *n,
                                 rd_kafka_resp_err_t *topic_err,
                                 struct ctkn_err *err);
/*
 * Learn the topic's metadata in rk now and keep it cached (*rkt holds a
 * reference; destroy it before rk). Otherwise librdkafka finds an unknown
 * topic only on its once-a-second scan: a produce waits that long, and so
 * does an assignment. This also fails early, and clearly, for a missing
 * topic or an unreachable broker. *n (when not NULL) receives the
 * partition count. Errors: as ctkn__kafka_topic_partitions().
 */
int ctkn__kafka_warm_topic(rd_kafka_t *rk, struct ctkn__kctx *k,
                           const char *topic, int timeout_ms,
                           rd_kafka_topic_t **rkt, int32_t *n,
                           struct ctkn_err *err);

/* Kafka's authorization refusals: the principal lacks an ACL. Never
 * transient: waiting cannot grant it. */
bool ctkn__kafka_denied(rd_kafka_resp_err_t e);
/*
 * The ACLs a refused request needed: topic_op on topic, and group_op on
 * group (either may be NULL when the request has none).
 */
struct ctkn__kafka_acl {
  const char *topic, *topic_op;
  const char *group, *group_op;
};
/*
 * e (ctkn__kafka_denied()) as CTKN_EKAFKADENIED, with a message naming
 * what was refused (doing: "reading client_tokens", ...), the broker's
 * reason and the ACL to grant: on the topic, the group or the cluster, as
 * e says. Returns CTKN_EKAFKADENIED.
 */
int ctkn__kafka_denied_err(struct ctkn_err *err, rd_kafka_resp_err_t e,
                           const char *doing,
                           const struct ctkn__kafka_acl *acl);

/* ---- the handles ------------------------------------------------------- */

struct ctkn__kafka_consumer {
  struct ctkn_consumer base; /* first: the handle log.c hands out */
  struct ctkn__kctx k;
  rd_kafka_t *rk;
  /* Metadata and offset queries go through their own handle: on the
   * consumer's connection they would queue behind a fetch long-poll (up to
   * fetch.wait.max.ms each), stalling lag reports and catch-ups. Before an
   * assigned consumer's first assignment nothing is fetched, and rk
   * answers them; qrk is opened from qconf when first needed after it
   * (ctkn__kafka_query_handle()), so a consumer that queries only before
   * it reads (the keyring's reader) never opens a second handle. A group
   * member fetches from the start: its qrk opens with it. qmu guards qrk,
   * qconf and fetching. */
  rd_kafka_t *qrk;
  rd_kafka_conf_t *qconf;
  bool fetching;
  pthread_mutex_t qmu;
  rd_kafka_topic_t *rkt; /* keeps the topic's metadata cached in rk */
  rd_kafka_queue_t *q;   /* the consumer queue; the main queue forwards to it */
  char topic[250];
  /* The partition count the open learned, and when: the first
   * ctkn_consumer_partitions() right after the open answers with it
   * instead of asking again (0: used, or none). */
  int32_t warm_parts;
  int64_t warm_at_ms;
  /* The effective group.id: the group's, or the name an assigned consumer
   * carries (CTKN__KAFKA_ASSIGN_GROUP or -X group.id), for messages. */
  char group_id[256];
  int timeout_ms;
  /* The last batch from rd_kafka_consume_batch_queue(). batch[0..next)
   * were handed out (borrowed until the next poll) or skipped;
   * batch[next..len) are still to be handed out. */
  rd_kafka_message_t **batch;
  size_t cap, len, next;
  /* The headers of the records handed out by the last poll. */
  struct ctkn__buf headers;
  bool group;  /* joined a consumer group (subscribed) */
  bool lease;  /* a lease: assigned partitions stay paused */
  bool *owned; /* lease: partitions held now, CTKN__KAFKA_LEASE_MAX */
  bool owned_changed;
  enum ctkn_log_start start; /* group: where uncommitted partitions start */
  int64_t start_ts_ms;
  /* group: why the last rebalance's assignment failed, "" when it did
   * not; the next poll reports it (kafka_group.c). */
  char assign_err[512];
  /* ctkn_consumer_wait(): once waited on, librdkafka calls back (from its
   * own threads) when the consumer queue gets something, and the call
   * back writes one byte to wake[1] unless woken was already set. The
   * waiter clears woken before it looks at the queue, so a wake-up is
   * never lost between its look and its sleep. */
  bool waking;
  int wake[2];
  atomic_bool woken;
};

int ctkn__kafka_create_topic(const struct ctkn_log_config *cfg, int partitions,
                             int replication_factor, bool *created,
                             int32_t *out_partitions, struct ctkn_err *err);

int ctkn__kafka_producer_open(ctkn_producer **out,
                              const struct ctkn_log_config *cfg,
                              struct ctkn_err *err);
void ctkn__kafka_producer_close(ctkn_producer *p);
int ctkn__kafka_send_batch(ctkn_producer *p, struct ctkn_log_record *recs,
                           size_t n, struct ctkn_err *err);
int ctkn__kafka_send_start(ctkn_producer *p, struct ctkn_log_record *recs,
                           size_t n, void **ticket, struct ctkn_err *err);
int ctkn__kafka_send_finish(ctkn_producer *p, void *ticket,
                            struct ctkn_err *err);

int ctkn__kafka_consumer_open(ctkn_consumer **out,
                              const struct ctkn_log_config *cfg,
                              const struct ctkn__consumer_opts *opts,
                              struct ctkn_err *err);
void ctkn__kafka_consumer_close(ctkn_consumer *c);
int ctkn__kafka_partitions(ctkn_consumer *c, int32_t *n, struct ctkn_err *err);
int ctkn__kafka_topic_id(ctkn_consumer *c, char id[CTKN_TOPIC_ID_BUF],
                         struct ctkn_err *err);
int ctkn__kafka_watermarks(ctkn_consumer *c, int32_t first, int32_t n,
                           int64_t *lo, int64_t *hi, struct ctkn_err *err);
int ctkn__kafka_offsets_after(ctkn_consumer *c, int64_t ts_ms, int64_t *offsets,
                              int32_t n, struct ctkn_err *err);
int ctkn__kafka_assign(ctkn_consumer *c, const int64_t *offsets, int32_t n,
                       struct ctkn_err *err);
int ctkn__kafka_seek(ctkn_consumer *c, const int64_t *offsets, int32_t n,
                     struct ctkn_err *err);
int ctkn__kafka_poll(ctkn_consumer *c, int timeout_ms,
                     struct ctkn_log_msg *msgs, size_t max, size_t *n,
                     struct ctkn_err *err);
/*
 * Whether the pipelined catch-up gets the fetch restart (src/log/kafka.c):
 * built against librdkafka before 2.2.0 only. A measurement build
 * (bench/catchup-variants) turns it on in a newer one with
 * -DCTKN_PIPE_FORCE_WORKAROUNDS.
 */
#if RD_KAFKA_VERSION < 0x020200ff || defined(CTKN_PIPE_FORCE_WORKAROUNDS)
#define CTKN_KAFKA_PIPE_WORKAROUNDS 1
#else
#define CTKN_KAFKA_PIPE_WORKAROUNDS 0
#endif
int ctkn__kafka_wait(ctkn_consumer *const *cs, size_t n, int timeout_ms,
                     size_t *ready, struct ctkn_err *err);
/* In *rk, the handle c's metadata and offset queries go through (see
 * qrk). Errors: those of ctkn__kafka_new_handle(), CTKN_ENOMEM. */
int ctkn__kafka_query_handle(struct ctkn__kafka_consumer *c, rd_kafka_t **rk,
                             struct ctkn_err *err);
/* A consumer error record as a CTKN_E* code with its detail. */
int ctkn__kafka_consumer_error(struct ctkn__kafka_consumer *c,
                               const rd_kafka_message_t *m,
                               struct ctkn_err *err);
/* Forget records not handed out yet (after a reassignment they are
 * stale): those of the revoked partitions, or all when revoked is NULL. */
void ctkn__kafka_drop_pending(struct ctkn__kafka_consumer *c,
                              const rd_kafka_topic_partition_list_t *revoked);
/* e (ctkn__kafka_denied()) refused c's doing, as CTKN_EKAFKADENIED naming
 * the ACL: Read on the topic, and Read on its group (a member) or
 * Describe (an assigned consumer, which only names one). */
int ctkn__kafka_consumer_denied(struct ctkn__kafka_consumer *c,
                                rd_kafka_resp_err_t e, const char *doing,
                                struct ctkn_err *err);
/* The failure of the last rebalance's assignment, if any, as
 * CTKN_EINTERNAL (cleared); else CTKN_OK. */
int ctkn__kafka_assign_failed(struct ctkn__kafka_consumer *c,
                              struct ctkn_err *err);

/* Groups and leases (kafka_group.c). */
void ctkn__kafka_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                              rd_kafka_topic_partition_list_t *parts,
                              void *opaque);
int ctkn__kafka_commit(ctkn_consumer *c, const struct ctkn_log_msg *msgs,
                       size_t n, struct ctkn_err *err);
int ctkn__kafka_lease_poll(ctkn_consumer *c, int timeout_ms, bool *owned,
                           int32_t n, bool *changed, struct ctkn_err *err);
int ctkn__kafka_lease_committed(ctkn_consumer *c, int32_t partition,
                                int64_t *offset, char *meta, size_t metasz,
                                struct ctkn_err *err);
int ctkn__kafka_lease_commit(ctkn_consumer *c, int32_t partition,
                             int64_t offset, const char *meta,
                             struct ctkn_err *err);

#endif /* CTKN_LOG_KAFKA_INT_H */
