/*
 * backend.h - the seam under the log: what a log implementation provides.
 *
 * Every module above the log (ledger, projector, stream, settings,
 * notify, archive, api) calls the functions of log.h; log.c forwards each
 * call through the table below to the implementation that the
 * configuration names. The real one is Kafka through librdkafka
 * (src/log/kafka*.c, ctkn__log_kafka); the unit tests put an in-memory log
 * with injectable faults in its place (tests/unit/fake_log.c) by setting
 * ctkn_log_config.backend, so the core can be tested without a broker.
 * This is libuv's internal layer in miniature: one interface, one real
 * implementation per platform (here: per log).
 *
 * An implementation allocates its handles with the base struct first and
 * fills nothing of the base: log.c sets `be` after a successful open.
 * Every operation has the contract of the log.h function of the same name
 * (arguments already checked where log.h says so); every wait is bounded.
 *
 * Not installed; shared only by src/log/ and tests/unit/.
 */
#ifndef CTKN_LOG_BACKEND_H
#define CTKN_LOG_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/log.h"

struct ctkn__log_backend;

/* The first member of every producer and consumer handle. */
struct ctkn_producer {
  const struct ctkn__log_backend *be;
};

struct ctkn_consumer {
  const struct ctkn__log_backend *be;
};

/* How a consumer is opened: assigned explicitly, a group member, or a
 * group lease (log.h). */
enum ctkn__consumer_kind {
  CTKN__CONSUMER_ASSIGNED,
  CTKN__CONSUMER_GROUP,
  CTKN__CONSUMER_LEASE
};

struct ctkn__consumer_opts {
  enum ctkn__consumer_kind kind;
  const char *group;         /* GROUP and LEASE: the group's name */
  enum ctkn_log_start start; /* GROUP: where uncommitted partitions start */
  int64_t start_ts_ms;       /* GROUP with CTKN_START_TIME */
};

struct ctkn__log_backend {
  const char *name; /* "kafka", "fake": for messages */

  int (*create_topic)(const struct ctkn_log_config *cfg, int partitions,
                      int replication_factor, bool *created,
                      int32_t *out_partitions, struct ctkn_err *err);

  int (*producer_open)(ctkn_producer **out, const struct ctkn_log_config *cfg,
                       struct ctkn_err *err);
  void (*producer_close)(ctkn_producer *p);
  int (*send_batch)(ctkn_producer *p, struct ctkn_log_record *recs, size_t n,
                    struct ctkn_err *err);
  /* May both be NULL: send_batch in two halves (log.h,
   * ctkn_producer_start_batch()). start fails only out of memory (then
   * nothing was enqueued); every ticket it makes is given to finish,
   * which frees it. */
  int (*send_start)(ctkn_producer *p, struct ctkn_log_record *recs, size_t n,
                    void **ticket, struct ctkn_err *err);
  int (*send_finish)(ctkn_producer *p, void *ticket, struct ctkn_err *err);

  int (*consumer_open)(ctkn_consumer **out, const struct ctkn_log_config *cfg,
                       const struct ctkn__consumer_opts *opts,
                       struct ctkn_err *err);
  void (*consumer_close)(ctkn_consumer *c);
  int (*partitions)(ctkn_consumer *c, int32_t *n, struct ctkn_err *err);
  /* May be NULL: the log has no topic IDs. */
  int (*topic_id)(ctkn_consumer *c, char id[CTKN_TOPIC_ID_BUF],
                  struct ctkn_err *err);
  /* Partitions first..first+n-1 (n >= 1): lo and hi have n entries; lo
   * may be NULL (the high watermarks alone). */
  int (*watermarks)(ctkn_consumer *c, int32_t first, int32_t n, int64_t *lo,
                    int64_t *hi, struct ctkn_err *err);
  int (*offsets_after)(ctkn_consumer *c, int64_t ts_ms, int64_t *offsets,
                       int32_t n, struct ctkn_err *err);
  int (*assign)(ctkn_consumer *c, const int64_t *offsets, int32_t n,
                struct ctkn_err *err);
  int (*seek)(ctkn_consumer *c, const int64_t *offsets, int32_t n,
              struct ctkn_err *err);
  int (*poll)(ctkn_consumer *c, int timeout_ms, struct ctkn_log_msg *msgs,
              size_t max, size_t *n, struct ctkn_err *err);
  /* cs[0..n): non-NULL, of this backend, n <= CTKN_CONSUMER_WAIT_MAX. */
  int (*wait)(ctkn_consumer *const *cs, size_t n, int timeout_ms, size_t *ready,
              struct ctkn_err *err);
  /* The fetch backs off a second when its queue fills (internal.h). */
  bool long_backoff;
  int (*commit)(ctkn_consumer *c, const struct ctkn_log_msg *msgs, size_t n,
                struct ctkn_err *err);
  int (*lease_poll)(ctkn_consumer *c, int timeout_ms, bool *owned, int32_t n,
                    bool *changed, struct ctkn_err *err);
  int (*lease_committed)(ctkn_consumer *c, int32_t partition, int64_t *offset,
                         char *meta, size_t metasz, struct ctkn_err *err);
  int (*lease_commit)(ctkn_consumer *c, int32_t partition, int64_t offset,
                      const char *meta, struct ctkn_err *err);
};

/* Kafka, through librdkafka: the implementation a configuration without a
 * backend uses. */
extern const struct ctkn__log_backend ctkn__log_kafka;

#endif /* CTKN_LOG_BACKEND_H */
