/*
 * notify.h - webhook delivery: signed POSTs of client_token.* events to the
 * destinations of settings.h, at least once, never skipped.
 *
 * `ctkn notify` delivers from the projection, not from raw records: the
 * positions table lists the events that were applied, in log order, so a
 * rejected or quarantined record is never notified, and a destination that
 * falls behind reads its backlog from LMDB while the others go on.
 *
 * Work is split by event-topic partition. Notifiers join one consumer
 * group as a lease (log.h): each holds some partitions and delivers only
 * their events, so a deployment delivers each notification once however
 * many notifiers run, and a dead notifier's partitions move to the others
 * after the session timeout. For each destination and held partition (a
 * "lane") a cursor marks the offset below which every notification is
 * settled (delivered, or failed after the maximum age); it advances only
 * past settled ones, and goes to the group as its committed offsets (the
 * lowest cursor) with every destination's cursor in the commit's metadata,
 * so a notifier taking a partition over resumes where the last left off.
 *
 * Within a lane up to `window` notifications are in flight, but never two
 * for one token: a token's notifications reach a destination in log order.
 * A failure (non-2xx, timeout, refused) is retried with exponential
 * backoff and equal jitter until max_age after the first attempt; then the
 * notification is marked failed (replayable) and the lane moves on. A slow
 * or dead destination holds only its own lanes.
 *
 * A notification's ID is derived from its event and destination (a ULID on
 * the event's time and 80 bits of SHA-256), so every retry and every
 * notifier sends the same notification_id. The body is the event's webhook
 * JSON with that ID; the header Paddle-Signature: ts=<now>;h1=<hex
 * HMAC-SHA256(secret, "<ts>:<body>")> is made fresh for each attempt.
 *
 * Delivery state (notifications, attempts, cursors, replays) lives in the
 * notifier's own projection (--db) and is not replicated or digested. The
 * values (a notification, an attempt, the status names, the ID) are in
 * notification.h, which this header includes.
 *
 * Lifetime: ctkn_notify_run() runs to the end; the audit functions read
 *           (replay writes) one store transaction.
 * Errors:   CTKN_EINVAL for options and IDs; CTKN_EBADREQ for a replay of
 *           a pending notification; CTKN_ENOTFOUND for an unknown
 *           notification; the log's (CTKN_EKAFKA, CTKN_ETIMEOUT) and the
 *           store's (CTKN_ESTORE) errors; CTKN_ENOMEM; CTKN_EINTERNAL
 *           when libcurl or a thread does not start.
 * Thread:   ctkn_notify_run() owns its thread (and runs the projector on a
 *           second one in follow mode); the audit functions only use the
 *           transaction they are given.
 * Not here: the values (notification.h), destinations (settings.h), the
 *           encodings (codec.h).
 */
#ifndef CTKN_NOTIFY_H
#define CTKN_NOTIFY_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/log.h"
#include "ctkn/notification.h"
#include "ctkn/settings.h"
#include "ctkn/store.h"

#define CTKN_NOTIFY_GROUP  "ctkn-notify"
#define CTKN_SIGNATURE_BUF 96 /* "ts=" + 20 digits + ";h1=" + 64 hex + NUL */

struct ctkn_notify_opts {
  const char *group;        /* lease group; NULL: CTKN_NOTIFY_GROUP */
  bool follow;              /* false: deliver what is due, then exit */
  int request_timeout_ms;   /* whole request; 0: 5000 (Paddle's) */
  int connect_timeout_ms;   /* 0: the request timeout, at most 3000 */
  int64_t retry_initial_ms; /* first backoff; 0: 60000 */
  int64_t retry_max_ms;     /* backoff cap; 0: 3600000 */
  int64_t max_age_ms;       /* retry window from the first attempt; 0:
                               72 h live, 15 min sandbox (Paddle's) */
  int window;               /* in flight per lane; 0: 8 */
  /* Networks a destination may connect into although not globally
   * reachable (setting.h, netaddr.h); none by default. Borrowed. */
  const struct ctkn_cidr *allow;
  size_t nallow;
  /* The trust root's public key (trust.h), or NULL: the notifier's
   * projection then judges records without it. With it, a record the
   * gate quarantines is never notified. */
  const uint8_t *trust_root;
  /* With trust_root: the key this notifier signs its delivery records
   * with (delivery.h), active in the keyring and scoped to notification.*;
   * NULL: they are not appended. Borrowed. */
  const ctkn_seckey *writer_key;
  volatile sig_atomic_t *stop; /* set by a signal handler; may be NULL */
};

struct ctkn_notify_stats {
  uint64_t attempts;
  uint64_t delivered;
  uint64_t failed;   /* gave up after max_age */
  uint64_t replayed; /* replays delivered */
};

/*
 * Deliver notifications until *stop (follow) or until nothing is due
 * (without follow: the projection is caught up first, every notification
 * up to that point is attempted, and retries due later are left for the
 * next run). key opens the destinations' endpoint secrets. Borrows st,
 * cfg, key and opts for the call; stats (may be NULL) receives the
 * counts, also on failure.
 *
 * Where a request may go is judged twice, by ctkn_dest_url_check() and
 * ctkn_dest_addr_allowed() (setting.h) under env and opts->allow, never
 * by what the destination's creator was allowed: the URL before anything
 * starts (no user info; https:// in live; a literal host), and each
 * address the host resolves to just before connecting to it, so DNS
 * cannot point a name somewhere else in between. No proxy is used, and
 * redirects are not followed. A refusal is a failed attempt whose error
 * says why, retried like any other (DNS may change).
 *
 * Logs through diag.h (component "notify"): one line per attempt, msg
 * "attempt", with "notify":"attempt", "at", "notification_id",
 * "destination", "event_id", "attempt", "response_code", "latency_ms",
 * "outcome" (delivered, retry, failed), "retry_at" and "error"; level
 * info when delivered, warn for a retry, error when it failed for good.
 * Never a secret. Also "partition N acquired" / "released" (info).
 *
 * Errors: CTKN_EINVAL (field "window": more than 64); CTKN_EINTERNAL
 * (libcurl or the projector's thread does not start, or the projector
 * stopped); the projector's errors (follow: those that ended its
 * thread); CTKN_EKAFKA and CTKN_ETIMEOUT (the lease); CTKN_ESTORE;
 * CTKN_ENOMEM.
 */
int ctkn_notify_run(ctkn_store *st, const struct ctkn_log_config *cfg,
                    ctkn_env env, const uint8_t key[CTKN_KEY_LEN],
                    const struct ctkn_notify_opts *opts,
                    struct ctkn_notify_stats *stats, struct ctkn_err *err);

/* Paddle-Signature's value for len bytes of body (borrowed for the call)
 * at unix second ts: "ts=<ts>;h1=<64 lowercase hex>". Out of memory, it
 * writes "ts=<ts>;h1=", which never verifies. Errors: none. */
void ctkn_webhook_signature(const char *secret, int64_t ts, const void *body,
                            size_t len, char out[CTKN_SIGNATURE_BUF]);

/* ---- audit and replay -------------------------------------------------- */

/* The notification id as this projection stores it, into *out.
 * Errors: CTKN_EINVAL (field "id": not an ntf_ ID); CTKN_ENOTFOUND (not
 * handled by a notifier on this projection); CTKN_ESTORE (LMDB failed or
 * the value does not decode). */
int ctkn_notification_get(ctkn_store_txn *txn, const char *id,
                          struct ctkn_notification *out, struct ctkn_err *err);

/* Called per notification, which is borrowed for the call; non-zero
 * stops the walk and is returned by it. */
typedef int (*ctkn_ntf_cb)(void *arg, const struct ctkn_notification *n);
/* Notifications in ID order (so, by event time), those of dest only when
 * dest is not NULL, with a status whose bit (1 << status) is in mask (0:
 * all). Errors: cb's non-zero return; CTKN_ESTORE. */
int ctkn_notification_list(ctkn_store_txn *txn, const char *dest,
                           unsigned status_mask, ctkn_ntf_cb cb, void *arg,
                           struct ctkn_err *err);
/* Called per attempt, which is borrowed for the call; non-zero stops the
 * walk and is returned by it. */
typedef int (*ctkn_ntf_attempt_cb)(void *arg, const struct ctkn_ntf_attempt *a);
/* The attempts of notification id, in order.
 * Errors: those of ctkn_notification_get(); cb's non-zero return;
 * CTKN_ESTORE. */
int ctkn_notification_attempts(ctkn_store_txn *txn, const char *id,
                               ctkn_ntf_attempt_cb cb, void *arg,
                               struct ctkn_err *err);

/*
 * Queue a new notification (origin "replay", a new ID written to new_id)
 * with the same event for the same destination as a delivered or failed
 * one; the notifier running on this projection sends it.
 * Errors: those of ctkn_notification_get() and
 * ctkn_delivery_replayable() (still pending, itself a replay, or its
 * destination removed); CTKN_EIO (randomness failed); CTKN_ESTORE;
 * CTKN_ENOMEM.
 */
int ctkn_notification_replay(ctkn_store *st, const char *id,
                             char new_id[CTKN_NTF_ID_BUF],
                             struct ctkn_err *err);

/* The webhook body notification n sends: the event's JSON with its
 * notification_id. On success *out is a new string: caller owns it,
 * release with free(). On failure *out is NULL.
 * Errors: CTKN_ENOTFOUND (its event is not in history); CTKN_ESTORE
 * (also an event that does not decode); CTKN_ENOMEM. */
int ctkn_notification_payload(ctkn_store_txn *txn,
                              const struct ctkn_notification *n, char **out,
                              struct ctkn_err *err);

#endif /* CTKN_NOTIFY_H */
