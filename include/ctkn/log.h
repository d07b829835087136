/*
 * log.h - the Kafka log: configuration, producer, consumer and admin.
 *
 * Wraps librdkafka; no librdkafka type crosses this header. Every wait is
 * bounded by the configuration's timeout, so an unreachable broker ends in
 * CTKN_EKAFKA or CTKN_ETIMEOUT with a clear message, never a hang.
 *
 * The producer is always idempotent with acks=all and the murmur2_random
 * partitioner (the Java client's), and these cannot be overridden. The
 * consumer never auto-creates topics, uses auto.offset.reset=error and is
 * assigned partitions explicitly at offsets the caller supplies (the store
 * is the source of truth, not consumer-group commits).
 *
 * Lifetime: ctkn_log_config_init() -> ctkn_log_config_set()... ->
 *           ctkn_producer_open() / ctkn_consumer_open() -> ... -> close.
 * Errors:   CTKN_EUSAGE for a bad or forbidden -X override; CTKN_EKAFKA
 *           for broker failures (err->msg has librdkafka's text);
 *           CTKN_ETIMEOUT when a bounded wait runs out; CTKN_ENOTFOUND for
 *           a missing topic.
 * Thread:   a producer may be used from several threads; a consumer from
 *           one thread at a time.
 * Not here: encodings (codec.h), what the records mean (event.h).
 */
#ifndef CTKN_LOG_H
#define CTKN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"

#define CTKN_LOG_MAX_OVERRIDES 64
#define CTKN_HDR_EVENT_TYPE    "ctkn-event-type"
#define CTKN_HDR_SCHEMA        "ctkn-schema-version"
/* The content-type header of an event record (CloudEvents binary mode):
 * the protobuf message its value holds. */
#define CTKN_EVENT_CONTENT_TYPE                                                \
  "application/protobuf; messageType=ctkn.v1.Event"

struct ctkn__log_backend;

struct ctkn_log_config {
  char brokers[512];
  char topic[250];
  int timeout_ms; /* bound on every wait; default 10000 */
  /* How long the broker may hold a fetch that finds nothing new (Kafka's
   * fetch.wait.max.ms); 0 is the default, 100 ms. A partition assigned
   * while such a fetch is out waits for it to end, so a process that
   * lives for one command (the CLI) asks for less. */
  int fetch_wait_ms;
  size_t n_overrides;
  char *overrides[CTKN_LOG_MAX_OVERRIDES][2]; /* -X key=value, owned */
  /* The log implementation: NULL is Kafka, through librdkafka. The unit
   * tests put an in-memory log here (src/log/backend.h), with backend_arg
   * its state; nothing else sets them. */
  const struct ctkn__log_backend *backend;
  void *backend_arg;
};

/* Defaults: brokers 127.0.0.1:9092, topic client_tokens, 10 s. cfg owns
 * its overrides from here on; release them with ctkn_log_config_free(). */
void ctkn_log_config_init(struct ctkn_log_config *cfg);
/* Free the overrides. NULL is a no-op. */
void ctkn_log_config_free(struct ctkn_log_config *cfg);
/*
 * Add one -X key=value (a copy; cfg owns it), checked by librdkafka at
 * once. A repeated key replaces the earlier value. Errors: CTKN_EUSAGE
 * (not key=value, a property librdkafka refuses, or enable.idempotence,
 * acks or partitioner, which ctkn owns; err names it, never the value),
 * CTKN_ENOMEM.
 */
int ctkn_log_config_set(struct ctkn_log_config *cfg, const char *kv,
                        struct ctkn_err *err);

/*
 * Once per process, after the -X settings and before any thread or handle:
 * unless cfg speaks SASL (-X security.protocol=sasl_*) or the environment
 * sets SASL_PATH, point SASL_PATH where Cyrus SASL finds no plugins, so
 * librdkafka's start-up does not load them all (a one-shot command's
 * millisecond). Changes the process environment.
 */
void ctkn_log_process_init(const struct ctkn_log_config *cfg);

/* ---- a record as read or written ------------------------------------- */

/* One record header. value may be NULL (a header with a null value). */
struct ctkn_log_header {
  const char *name;
  const void *value;
  size_t size;
};

struct ctkn_log_msg {
  int32_t partition;
  int64_t offset;
  int64_t timestamp_ms; /* -1 when the broker gave none */
  const void *key;
  size_t key_len;
  const void *value;
  size_t value_len;
  /* Every header, in record order, duplicates included; valid like the
   * record. */
  const struct ctkn_log_header *headers;
  size_t nheaders;
  char event_type[64]; /* header ctkn-event-type, "" when absent */
  int schema_version;  /* header ctkn-schema-version, -1 absent, -2 bad */
};

/*
 * Note one header of m: ctkn-event-type and ctkn-schema-version set
 * event_type and schema_version (so, in record order, the last of each
 * wins); other headers are ignored. Clears nothing: start from event_type
 * "" and schema_version -1.
 */
void ctkn_log_msg_note_header(struct ctkn_log_msg *m, const char *name,
                              const void *value, size_t size);

/* Set event_type and schema_version from m->headers, as the consumer does
 * for every record it returns; records read from elsewhere (an archive)
 * get the same view. */
void ctkn_log_msg_note_headers(struct ctkn_log_msg *m);

/* A record kept past its poll: m points into h and blob, which it owns. */
struct ctkn_log_msg_copy {
  struct ctkn_log_msg m;
  struct ctkn_log_header *h;
  char *blob;
};
/* Copy m with its key, value and headers into *dst (release with
 * ctkn_log_msg_copy_free()). Errors: CTKN_ENOMEM (dst then owns nothing). */
int ctkn_log_msg_copy(struct ctkn_log_msg_copy *dst,
                      const struct ctkn_log_msg *m, struct ctkn_err *err);
/* Free what c owns. NULL is a no-op. */
void ctkn_log_msg_copy_free(struct ctkn_log_msg_copy *c);

/* ---- admin ------------------------------------------------------------ */

/*
 * Create the topic when missing (retention.ms=-1, cleanup.policy=delete).
 * *created tells whether it was created now; *partitions receives the
 * topic's partition count either way. replication_factor -1 takes the
 * broker's default. Borrows cfg for the call. Errors: CTKN_EUSAGE
 * (partitions < 1, a replication factor below -1 or 0), CTKN_EINVAL (the
 * broker refuses the values: a replication factor above its broker
 * count), CTKN_ETIMEOUT, CTKN_EKAFKA.
 */
int ctkn_log_create_topic(const struct ctkn_log_config *cfg, int partitions,
                          int replication_factor, bool *created,
                          int32_t *out_partitions, struct ctkn_err *err);

/* ---- producer --------------------------------------------------------- */

typedef struct ctkn_producer ctkn_producer;

/* On success *out is a new producer: caller owns it; release with
 * ctkn_producer_close(). On failure *out is NULL. Borrows cfg for the
 * call. message.timeout.ms is set within the timeout. Opening asks for
 * the topic's metadata (so the first send is not held back). Errors:
 * CTKN_ENOTFOUND (no such topic), CTKN_ETIMEOUT or CTKN_EKAFKA (an
 * unreachable broker, within the timeout), CTKN_EUSAGE (the
 * configuration), CTKN_ENOMEM. */
int ctkn_producer_open(ctkn_producer **out, const struct ctkn_log_config *cfg,
                       struct ctkn_err *err);
/* Flush (bounded by the timeout) and free. NULL is a no-op. */
void ctkn_producer_close(ctkn_producer *p);

/*
 * Produce one record and wait for its delivery report. partition < 0 lets
 * the partitioner choose by key. On success *out_partition and *out_offset
 * say where it landed. timestamp_ms is the record's timestamp. A NULL
 * event_type or a negative schema_version leaves that header out.
 * Borrows key, value and event_type for the call (they are copied).
 * Errors: CTKN_ETIMEOUT (no report within the timeout: the record may
 * still be written, so retry with the same idempotency key),
 * CTKN_ENOTFOUND (no such topic), CTKN_EKAFKA (refused, or no such
 * partition), CTKN_ENOMEM.
 */
int ctkn_producer_send(ctkn_producer *p, int32_t partition, const void *key,
                       size_t klen, const void *value, size_t vlen,
                       int64_t timestamp_ms, const char *event_type,
                       int schema_version, int32_t *out_partition,
                       int64_t *out_offset, struct ctkn_err *err);

/* One record of a batch: inputs as for ctkn_producer_send(), outputs
 * filled by ctkn_producer_send_batch(). */
struct ctkn_log_record {
  int32_t partition; /* < 0: the partitioner chooses by key */
  const void *key;
  size_t klen;
  const void *value;
  size_t vlen;
  int64_t timestamp_ms;
  const char *event_type; /* header, or NULL for none */
  int schema_version;     /* header, or < 0 for none */
  /* When headers is not NULL, these nheaders are written verbatim instead
   * of event_type and schema_version (a record copied from an archive). */
  const struct ctkn_log_header *headers;
  size_t nheaders;
  int rc;                /* out: CTKN_OK or why this record failed */
  int32_t out_partition; /* out: where it landed */
  int64_t out_offset;
};

/*
 * Produce n records at once and wait (bounded by the timeout) for every
 * delivery report, so many records are in flight together. Each record's
 * rc tells its fate; returns CTKN_OK when all were acknowledged, else the
 * first failure's code with its detail in *err. Records on one partition
 * keep their order (idempotent producer). Borrows recs' inputs for the
 * call. Errors: as ctkn_producer_send(), per record.
 */
int ctkn_producer_send_batch(ctkn_producer *p, struct ctkn_log_record *recs,
                             size_t n, struct ctkn_err *err);

/*
 * ctkn_producer_send_batch() in two halves, so that a caller can prepare
 * and start the next batch while this one is in flight. Start hands the
 * n records to the producer and returns at once; finish waits for every
 * delivery report (bounded by the timeout, counted from the start), fills
 * each record's outputs and returns as ctkn_producer_send_batch(). Records
 * on one partition keep their order, also across batches started in
 * order. Start borrows the records' inputs for the call only (they are
 * copied); recs itself must live until the finish, which writes its
 * outputs. On success *out is a ticket to give to
 * ctkn_producer_finish_batch() exactly once (it frees it); on failure
 * (CTKN_ENOMEM: nothing was sent, every rc says so) *out is NULL.
 */
typedef struct ctkn_produce_ticket ctkn_produce_ticket;
int ctkn_producer_start_batch(ctkn_producer *p, struct ctkn_log_record *recs,
                              size_t n, ctkn_produce_ticket **out,
                              struct ctkn_err *err);
int ctkn_producer_finish_batch(ctkn_producer *p, ctkn_produce_ticket *t,
                               struct ctkn_err *err);

/* The partition the partitioner would choose for key among n partitions
 * (murmur2, as the Java client); -1 when n < 1. */
int32_t ctkn_log_partition_for(const void *key, size_t klen, int32_t n);

/* ---- consumer --------------------------------------------------------- */

typedef struct ctkn_consumer ctkn_consumer;

/* On success *out is a new consumer: caller owns it; release with
 * ctkn_consumer_close(). On failure *out is NULL. Borrows cfg for the
 * call. Prefetch is bounded so memory stays flat. Opening asks for the
 * topic's metadata. Metadata and offset queries use a second handle, so
 * they never wait behind a fetch in flight. Errors: as
 * ctkn_producer_open(). */
int ctkn_consumer_open(ctkn_consumer **out, const struct ctkn_log_config *cfg,
                       struct ctkn_err *err);
/* Close and free (a group member leaves its group). NULL is a no-op. */
void ctkn_consumer_close(ctkn_consumer *c);

/* The topic's current partition count (metadata, bounded). Errors:
 * CTKN_ENOTFOUND (the topic is gone), CTKN_ETIMEOUT, CTKN_EKAFKA. */
int ctkn_consumer_partitions(ctkn_consumer *c, int32_t *n,
                             struct ctkn_err *err);

/* The topic's ID, as base64 (Kafka's topic ID: a topic deleted and
 * re-created under the same name gets a new one), into id; "" when the log
 * cannot tell (librdkafka before 2.3.0 has no API for it). Errors:
 * CTKN_ENOTFOUND, CTKN_ETIMEOUT, CTKN_EKAFKA, CTKN_EKAFKADENIED. */
#define CTKN_TOPIC_ID_BUF 64
int ctkn_consumer_topic_id(ctkn_consumer *c, char id[CTKN_TOPIC_ID_BUF],
                           struct ctkn_err *err);

/* Low and high watermarks of partitions 0..n-1 at once (lo and hi have n
 * entries, the caller's): one ListOffsets request per end, not 2n; and of
 * one partition. Leadership moves are retried within the timeout. Errors:
 * CTKN_ENOTFOUND (no such partition), CTKN_ETIMEOUT, CTKN_EKAFKA,
 * CTKN_ENOMEM. */
int ctkn_consumer_watermarks_all(ctkn_consumer *c, int32_t n, int64_t *lo,
                                 int64_t *hi, struct ctkn_err *err);
int ctkn_consumer_watermarks(ctkn_consumer *c, int32_t partition, int64_t *lo,
                             int64_t *hi, struct ctkn_err *err);
/* The high watermarks alone of partitions 0..n-1 (hi, n entries; left
 * untouched when n <= 0): what a read to the end needs, in one request
 * instead of two. Errors: as ctkn_consumer_watermarks_all(). */
int ctkn_consumer_ends(ctkn_consumer *c, int32_t n, int64_t *hi,
                       struct ctkn_err *err);

/*
 * For partitions 0..n-1, the first offset whose record timestamp is after
 * ts_ms, or the log's end when none is: the end of the prefix "as of"
 * ts_ms. Uses Kafka's offsets-for-times. offsets has n entries, the
 * caller's. Errors: CTKN_ETIMEOUT, CTKN_EKAFKA, CTKN_ENOTFOUND,
 * CTKN_ENOMEM.
 */
int ctkn_consumer_offsets_after(ctkn_consumer *c, int64_t ts_ms,
                                int64_t *offsets, int32_t n,
                                struct ctkn_err *err);

/* (Re)assign partitions 0..n-1 at the given next offsets; a partition
 * whose offset is negative is left unassigned. Records fetched but not yet
 * polled are dropped. Borrows offsets for the call. Errors: CTKN_EUSAGE
 * (n < 0), CTKN_EKAFKA, CTKN_ENOMEM. */
int ctkn_consumer_assign(ctkn_consumer *c, const int64_t *offsets, int32_t n,
                         struct ctkn_err *err);

/*
 * Move assigned partitions to new next offsets without reassigning (a
 * partition whose offset is negative stays where it is). Records already
 * fetched from before the move may still come first. Borrows offsets for
 * the call. Errors: CTKN_EUSAGE (n < 0), CTKN_EKAFKA (a partition not
 * assigned, or the seek refused), CTKN_ENOMEM.
 */
int ctkn_consumer_seek(ctkn_consumer *c, const int64_t *offsets, int32_t n,
                       struct ctkn_err *err);

/*
 * Wait up to timeout_ms for a first record, then fill up to max entries of
 * msgs with what is already there (it never waits to fill the batch) and
 * set *n. The records, their bytes and their headers are valid until the
 * next poll or close. *n = 0 on a timeout (not an error). Records that
 * came before an error are returned first, the error by the next poll.
 * Errors: CTKN_EKAFKA (an assigned offset outside the log says so, naming
 * a deleted and re-created topic), CTKN_ENOTFOUND (the topic is gone),
 * CTKN_ENOMEM; a group member: CTKN_EINTERNAL when librdkafka refused a
 * rebalance's assignment (not transient: the member reads nothing).
 */
int ctkn_consumer_poll(ctkn_consumer *c, int timeout_ms,
                       struct ctkn_log_msg *msgs, size_t max, size_t *n,
                       struct ctkn_err *err);

/*
 * Wait up to timeout_ms until one of the n consumers (NULL entries are
 * skipped; at most CTKN_CONSUMER_WAIT_MAX) has something for its next
 * poll: a record or an error. *ready is that consumer's index, or n when
 * the time ran out. Takes nothing, so a poll with timeout 0 follows. It
 * wakes as soon as any of them has data, without polling in slices, so a
 * loop over several topics waits on all of them at once. A wake may be
 * spurious (the poll then returns nothing). Borrows cs for the call. All
 * consumers must be of one log (configuration backend). Thread: the
 * consumers' thread. Errors: CTKN_EUSAGE (n too large, mixed logs),
 * CTKN_EKAFKA (no wake-up channel), CTKN_ENOMEM.
 */
#define CTKN_CONSUMER_WAIT_MAX 8
int ctkn_consumer_wait(ctkn_consumer *const *cs, size_t n, int timeout_ms,
                       size_t *ready, struct ctkn_err *err);

/* ---- consumer groups (event streams for other services) ------------- */

/* Where a group member starts on a partition the group has no committed
 * offset for. */
enum ctkn_log_start {
  CTKN_START_END,       /* only records produced from now on */
  CTKN_START_BEGINNING, /* the whole log */
  CTKN_START_TIME       /* the first record with a timestamp >= ts_ms */
};

/*
 * Open a consumer that joins consumer group `group` and subscribes to the
 * topic, so that the group's members share the partitions. Where the group
 * has committed an offset a member resumes there; elsewhere it starts at
 * `start`. Offsets are committed only by ctkn_consumer_commit(), never
 * automatically. Poll as usual; ctkn_consumer_assign() is not for groups.
 * Close leaves the group. Ownership as ctkn_consumer_open(). Errors:
 * CTKN_EINVAL (field "group": 1 to 249 characters), and those of
 * ctkn_consumer_open().
 */
int ctkn_consumer_open_group(ctkn_consumer **out,
                             const struct ctkn_log_config *cfg,
                             const char *group, enum ctkn_log_start start,
                             int64_t ts_ms, struct ctkn_err *err);

/*
 * Commit, synchronously, the offsets after the given records (for each
 * partition, the highest offset + 1): call it once they are processed and
 * before the next poll. Borrows msgs for the call. Errors: CTKN_EKAFKA
 * when the broker refuses, as it does for partitions the member lost in a
 * rebalance (those records will be delivered again to their new owner: at
 * least once), CTKN_ENOMEM.
 */
int ctkn_consumer_commit(ctkn_consumer *c, const struct ctkn_log_msg *msgs,
                         size_t n, struct ctkn_err *err);

/* ---- leases: partitions shared by a group, without reading them -------- */

/*
 * Join consumer group `group` on the topic to share its partitions with
 * the group's other members, as a lease: the member holds the partitions
 * the group assigns it but reads nothing from them (they stay paused);
 * the holder works on them from elsewhere (the notifier, from its
 * projection) and keeps its progress as the group's committed offsets.
 * A member that dies loses its partitions after session.timeout.ms
 * (-X session.timeout.ms=...). On success *out is a new lease: caller
 * owns it; release with ctkn_consumer_close(), which leaves the group so
 * the partitions move at once. Errors: as ctkn_consumer_open_group().
 */
int ctkn_lease_open(ctkn_consumer **out, const struct ctkn_log_config *cfg,
                    const char *group, struct ctkn_err *err);
/* Serve the group for up to timeout_ms, then fill owned[0..n) with the
 * partitions held now; *changed tells whether that changed since the
 * last call. Call it often: a member that stops polling loses its lease.
 * A partition counts as held only once its assignment took. Errors:
 * CTKN_EKAFKA, CTKN_ENOTFOUND (the topic is gone), CTKN_EINTERNAL (librdkafka
 * refused a rebalance's assignment; not transient). */
int ctkn_lease_poll(ctkn_consumer *c, int timeout_ms, bool *owned, int32_t n,
                    bool *changed, struct ctkn_err *err);
/* The group's committed offset of partition (-1 when none) and the
 * metadata string committed with it ("" when none) into meta (metasz
 * bytes, the caller's). Errors: CTKN_EKAFKA, CTKN_ENOMEM. */
int ctkn_lease_committed(ctkn_consumer *c, int32_t partition, int64_t *offset,
                         char *meta, size_t metasz, struct ctkn_err *err);
/* Commit offset and a metadata string (Kafka keeps up to
 * offset.metadata.max.bytes, 4096 by default) for a held partition.
 * Borrows meta for the call. Errors: CTKN_EKAFKA (the member no longer
 * holds it), CTKN_ENOMEM. */
int ctkn_lease_commit(ctkn_consumer *c, int32_t partition, int64_t offset,
                      const char *meta, struct ctkn_err *err);

#endif /* CTKN_LOG_H */
