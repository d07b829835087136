/*
 * fake_log.h - an in-memory log behind the log seam (src/log/backend.h),
 * for unit tests of the modules above the log: partitions, offsets,
 * timestamps, headers, consumer groups and leases, with injectable faults
 * and delays. test_log_contract.c holds it to the same behaviour as
 * librdkafka against Kafka's mock cluster.
 *
 * Lifetime: fake_log_new() -> fake_log_use(cfg) ... -> fake_log_free(),
 * after every handle opened through it is closed.
 * Thread:   every function may be called from any thread.
 */
#ifndef CTKN_FAKE_LOG_H
#define CTKN_FAKE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/log.h"

struct fake_log;

/* Caller owns the fake; release with fake_log_free(). */
struct fake_log *fake_log_new(void);
void fake_log_free(struct fake_log *f);

/* Make every handle opened with cfg use f (cfg keeps a pointer to f). */
void fake_log_use(struct fake_log *f, struct ctkn_log_config *cfg);

/* Create topic with n partitions, or re-create it empty (deleted and
 * created again under the same name: offsets start over at 0). */
void fake_log_create(struct fake_log *f, const char *topic, int32_t n);
/* Whether the log tells topic IDs (as Kafka does through librdkafka 2.3.0
 * and later; off by default, as through Debian 12's 2.0.2): a topic's ID
 * changes each time fake_log_create() creates it. */
void fake_log_topic_ids(struct fake_log *f, bool on);
/* Grow topic to n partitions (Kafka never shrinks one). */
void fake_log_add_partitions(struct fake_log *f, const char *topic, int32_t n);
/* Retention: records of partition p below offset are gone. */
void fake_log_delete_before(struct fake_log *f, const char *topic, int32_t p,
                            int64_t offset);

/* Append a record as any client could (another writer, a forger, a
 * record of a newer schema) and return its offset. */
int64_t fake_log_append(struct fake_log *f, const char *topic, int32_t p,
                        const void *key, size_t klen, const void *value,
                        size_t vlen, int64_t timestamp_ms,
                        const struct ctkn_log_header *headers, size_t nh);
/* The next offset of partition p (-1 without the topic or partition). */
int64_t fake_log_end(struct fake_log *f, const char *topic, int32_t p);
/* Record off of partition p, borrowed until fake_log_free(); NULL when
 * there is none. */
const struct ctkn_log_msg *
fake_log_record(struct fake_log *f, const char *topic, int32_t p, int64_t off);

/* A consumer group's committed next offset of partition p; -1 when none. */
int64_t fake_log_committed(struct fake_log *f, const char *group,
                           const char *topic, int32_t p);

/* ---- faults ------------------------------------------------------------ */

/* The next n records produced fail with rc. With appended they are in
 * the log anyway (an unknown outcome: the report was lost), else not. */
void fake_log_fail_sends(struct fake_log *f, int n, int rc, bool appended);
/* As fake_log_fail_sends(), after the next ok records are produced as
 * usual: a batch whose failure comes after some records were
 * acknowledged. */
void fake_log_fail_sends_after(struct fake_log *f, int ok, int n, int rc,
                               bool appended);
/* While hold is true, polls deliver nothing (they wait out their
 * timeout): a reader that cannot get ahead. */
void fake_log_hold_polls(struct fake_log *f, bool hold);
/* The next n polls fail with rc. */
void fake_log_fail_polls(struct fake_log *f, int n, int rc);
/* As fake_log_fail_polls(), only for the consumers of topic. */
void fake_log_fail_polls_of(struct fake_log *f, const char *topic, int n,
                            int rc);
/* The next n metadata or offset queries (partitions, watermarks) fail with
 * rc. */
void fake_log_fail_queries(struct fake_log *f, int n, int rc);
/* The next n seeks fail with rc and move nothing. */
void fake_log_fail_seeks(struct fake_log *f, int n, int rc);
/* Each batch's delivery reports come ms late. */
void fake_log_delay_reports(struct fake_log *f, int ms);
/* fn runs inside every send, before its records are appended, without the
 * fake's lock: a writer that races the sender appends there. */
void fake_log_on_send(struct fake_log *f, void (*fn)(void *arg), void *arg);

/* Counters, for assertions. */
struct fake_log_stats {
  uint64_t sends;      /* send_batch calls */
  uint64_t produced;   /* records appended by producers */
  uint64_t polls;      /* poll calls */
  uint64_t waits;      /* wait calls */
  uint64_t assigns;    /* assign calls */
  uint64_t watermarks; /* watermark queries */
  uint64_t open_handles;
};
void fake_log_stats(struct fake_log *f, struct fake_log_stats *out);

#endif /* CTKN_FAKE_LOG_H */
