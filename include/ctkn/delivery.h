/*
 * delivery.h - webhook delivery state on the log: the notifications topic
 * (<topic>_notifications), its projection into the store, the follower
 * that keeps a projection on it, and the reads of what it holds.
 *
 * Every notifier appends one record per fact (notification.h's
 * struct ctkn_delivery: created, attempted, delivered, failed, replay
 * requested), keyed by the notification ID, so one notification's
 * records stay on one partition in the order they were appended,
 * whichever notifier appended them. Every replica projects the topic, so
 * any of them answers "what happened to this webhook", and a notifier
 * that takes a partition over continues the same history.
 *
 * The projection (tables of store.h: deliveries, delivery_attempts,
 * delivery_offsets, delivery_log; replicated, not digested):
 *  - created / replay_requested: the notification, when it is new (a
 *    second created for one ID, as two notifiers around a takeover
 *    append, changes nothing);
 *  - attempted: the attempt, numbered in log order (1, 2, ...) whatever
 *    number its notifier gave it, so attempts by two notifiers never
 *    overwrite one another; times_attempted, last_attempt_at and the
 *    status follow (2xx: delivered; else needs_retry with retry_at);
 *  - delivered: status delivered; failed: status failed unless delivered.
 * A record that does not decode or breaks ctkn_delivery_valid() is
 * quarantined (delivery_log holds why) and the partition moves on. With
 * trust, the records pass trust.h's gate first, as settings records do:
 * a record the gate refuses is quarantined, one not yet checkpointed is
 * held back. A record of a newer schema version stops the follower.
 *
 * Lifetime: ctkn_delivery_follower_open() -> poll / catch_up ->
 *           ctkn_delivery_follower_close(); the rest are one-shot.
 * Errors:   CTKN_EINVAL for names and parameters; the store's
 *           (CTKN_ESTORE), the log's (CTKN_EKAFKA, CTKN_ETIMEOUT,
 *           CTKN_ENOTFOUND for a missing topic); CTKN_ENOMEM.
 * Thread:   the functions hold no state; a follower belongs to one thread.
 * Not here: sending (notify.h), the values and their rules
 *           (notification.h), the encoding (codec.h).
 */
#ifndef CTKN_DELIVERY_H
#define CTKN_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/keyring.h"
#include "ctkn/log.h"
#include "ctkn/notification.h"
#include "ctkn/store.h"

#define CTKN_DELIVERY_SUFFIX    "_notifications"
#define CTKN_DELIVERY_MAX_PARTS 64 /* a notifications topic's, at most */

/* The notifications topic of event topic `topic` into out. Errors:
 * CTKN_EINVAL (field "topic": too long for Kafka's 249 with the
 * suffix). */
int ctkn_delivery_topic(const char *topic, char *out, size_t outsz,
                        struct ctkn_err *err);

/* Create cfg->topic's notifications topic when missing, with as many
 * partitions as the event topic has (at most CTKN_DELIVERY_MAX_PARTS) and
 * the event topic's retention (retention.ms=-1). *created tells whether it
 * was created now; *partitions receives its partition count either way.
 * Errors: those of ctkn_log_create_topic(). */
int ctkn_delivery_create_topic(const struct ctkn_log_config *cfg,
                               int32_t event_partitions, int replication_factor,
                               bool *created, int32_t *partitions,
                               struct ctkn_err *err);

/* The partition of the notifications topic that notification id's
 * records go to, of nparts. Errors: none. */
int32_t ctkn_delivery_partition(const char *ntf_id, int32_t nparts);

/* ---- the projection ------------------------------------------------------ */

/* Apply one valid record in txn (see above). Errors: the store's. */
int ctkn_delivery_apply(ctkn_store_txn *txn, const struct ctkn_delivery *d,
                        struct ctkn_err *err);

/* Project msgs[0..n) of the notifications topic without trust, each from
 * its partition's stored offset on, in one transaction. Errors: the
 * store's; CTKN_EFORMAT (a record of a newer schema version: what came
 * before it is kept). */
int ctkn_delivery_project(ctkn_store *st, const struct ctkn_log_msg *msgs,
                          size_t n, struct ctkn_err *err);

/* Where partition p stands: its next offset (0 when none). */
int64_t ctkn_delivery_offset(ctkn_store_txn *txn, int32_t p);

/* Whether the record at (p, offset) was quarantined, and why (into
 * reason, reasonsz > 0). Errors: CTKN_ENOTFOUND (it was not: applied, or
 * not projected yet); the store's. */
int ctkn_delivery_quarantined(ctkn_store_txn *txn, int32_t p, int64_t offset,
                              char *reason, size_t reasonsz,
                              struct ctkn_err *err);

/* ---- the follower ---------------------------------------------------------
 */

typedef struct ctkn_delivery_follower ctkn_delivery_follower;

/* A consumer of cfg->topic's notifications topic, assigned every partition
 * at the stored offsets. Keeps st; borrows cfg's overrides. Errors:
 * CTKN_ENOTFOUND (no such topic: `ctkn init`), the log's, the store's,
 * CTKN_ENOMEM. */
int ctkn_delivery_follower_open(ctkn_delivery_follower **out, ctkn_store *st,
                                const struct ctkn_log_config *cfg,
                                struct ctkn_err *err);
void ctkn_delivery_follower_close(ctkn_delivery_follower *f);
/* Judge records by kr (borrowed) through a gate; refresh (may be NULL) is
 * called to read the keyring again when a record names a key kr lacks.
 * Errors: CTKN_ENOMEM. */
int ctkn_delivery_follower_set_trust(ctkn_delivery_follower *f,
                                     const struct ctkn_keyring *kr,
                                     int (*refresh)(void *arg,
                                                    struct ctkn_err *err),
                                     void *arg, struct ctkn_err *err);
/* Project what arrives within timeout_ms; *applied is how many records
 * were read. A record of a newer schema is logged and stops the
 * follower. Errors: the log's, the store's. */
int ctkn_delivery_follower_poll(ctkn_delivery_follower *f, int timeout_ms,
                                size_t *applied, struct ctkn_err *err);
/* The follower's consumer, for ctkn_consumer_wait(), as
 * ctkn_settings_follower_consumer(); NULL while stopped. Valid until the
 * follower is closed; poll it only through ctkn_delivery_follower_poll(). */
ctkn_consumer *ctkn_delivery_follower_consumer(ctkn_delivery_follower *f);
/* Poll until the projection reaches the topic's end as it is now.
 * Errors: CTKN_ETIMEOUT (not within cfg->timeout_ms), CTKN_EFORMAT (a
 * newer schema stopped the follower), those of poll. */
int ctkn_delivery_follower_catch_up(ctkn_delivery_follower *f,
                                    struct ctkn_err *err);

/* ---- reads -----------------------------------------------------------------
 */

/* Notification id as projected. Errors: CTKN_EINVAL (field "id": not an
 * ntf_ ID); CTKN_ENOTFOUND; CTKN_ESTORE (also a value that does not
 * decode). */
int ctkn_delivery_get(ctkn_store_txn *txn, const char *id,
                      struct ctkn_notification *out, struct ctkn_err *err);

/* Which notifications a walk visits. */
struct ctkn_delivery_filter {
  unsigned status_mask;     /* bit 1 << ctkn_ntf_status; 0: every status */
  const char *const *dests; /* ntfset IDs, ndests of them; none: all */
  size_t ndests;
  bool has_from, has_to;
  int64_t from_us, to_us; /* occurred_at >= from, < to */
  const char *after;      /* an ntf ID: strictly after it in the order */
  bool desc;              /* ID order, newest first */
};
/* Called per notification (borrowed for the call); non-zero stops the
 * walk and is returned by it. */
typedef int (*ctkn_delivery_cb)(void *arg, const struct ctkn_notification *n);
/* The notifications f selects in ID order (so by event time). Errors:
 * cb's non-zero return; CTKN_ESTORE. */
int ctkn_delivery_list(ctkn_store_txn *txn,
                       const struct ctkn_delivery_filter *f,
                       ctkn_delivery_cb cb, void *arg, struct ctkn_err *err);
/* How many notifications the projection holds. Errors: CTKN_ESTORE. */
int ctkn_delivery_count(ctkn_store_txn *txn, int64_t *n, struct ctkn_err *err);

typedef int (*ctkn_delivery_attempt_cb)(void *arg,
                                        const struct ctkn_ntf_attempt *a);
/* The attempts of notification id in log order, those numbered above
 * after. Errors: those of ctkn_delivery_get(); cb's; CTKN_ESTORE. */
int ctkn_delivery_attempts(ctkn_store_txn *txn, const char *id, uint32_t after,
                           ctkn_delivery_attempt_cb cb, void *arg,
                           struct ctkn_err *err);

/* ---- replays ------------------------------------------------------------- */

/*
 * Whether n may be replayed, by Paddle's rules: it is delivered or failed
 * (else CTKN_ECANNOTREPLAY), of origin event, not a replay itself (else
 * CTKN_EREPLAYORIGIN), and its destination was not removed (as txn's
 * settings have it; CTKN_ECANNOTREPLAY), since a removed one never takes
 * it. Borrows txn and n for the call. Errors: those, and CTKN_ESTORE.
 */
int ctkn_delivery_replayable(ctkn_store_txn *txn,
                             const struct ctkn_notification *n,
                             struct ctkn_err *err);

/*
 * Ask for a replay of notification id (delivered or failed, as this
 * projection has it): append a notification.replay_requested record for a
 * new notification (new_id, written) of the same event and destination to
 * the notifications topic, signed with key under kr's log ID when key is
 * not NULL (one closed writer instance: the record and its checkpoint).
 * The notifier holding the event's partition sends it once it has
 * projected the record. Borrows everything for the call.
 * Errors: those of ctkn_delivery_get() and ctkn_delivery_replayable();
 * CTKN_EINVAL (field "writer_key": the keyring does not enable the
 * records' schema); the log's; CTKN_EIO (randomness); CTKN_ENOMEM.
 */
int ctkn_delivery_request_replay(ctkn_store *st,
                                 const struct ctkn_log_config *cfg,
                                 const struct ctkn_keyring *kr,
                                 const ctkn_seckey *key, const char *id,
                                 char new_id[CTKN_NTF_ID_BUF],
                                 struct ctkn_err *err);

#endif /* CTKN_DELIVERY_H */
