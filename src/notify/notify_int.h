/*
 * notify_int.h - the notifier's private parts, shared by the files of
 * src/notify/; not installed, not for other modules.
 *
 * The files, and what each one alone does:
 *
 *   run.c    ctkn_notify_run(): options, setup, the loop, the projector
 *            thread, stopping;
 *   lanes.c  destinations, lanes and their windows, retries with backoff,
 *            what to send when, settling finished requests, signatures;
 *   lease.c  the group lease, each lane's cursor, and writing the
 *            delivery state (notifications, attempts, cursors) to LMDB;
 *   audit.c  the stored notifications: get, list, attempts, payload,
 *            and replays (queueing one, and picking queued ones up);
 *   dlog.c   the delivery records each flush appends to the
 *            notifications topic (delivery.h), signed with trust;
 *   http.c   the requests, over libcurl's multi interface: the only file
 *            that includes <curl/curl.h>.
 *
 * One thread owns a struct notifier and everything it points to; only
 * ctkn__http_wakeup() may be called from another thread (the projector's).
 *
 * Tables (store.h side tables; local, not digested):
 *
 *   notifications          ntf ID                  -> codec's notification
 *   notification_attempts  ntf ID + attempt (BE32) -> codec's attempt
 *   notify_cursors         ntfset ID + partition   -> next offset (BE u64)
 *                          (an akey lane's: partition | AKEY_LANE_BIT)
 *   notify_queue           ntf ID                  -> "" (replays to send)
 */
#ifndef CTKN_NOTIFY_INT_H
#define CTKN_NOTIFY_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/notify.h"
#include "ctkn/projector.h"
#include "ctkn/settings.h"
#include "ctkn/trust.h"
#include "internal.h"

#define WINDOW_MAX    64   /* in flight per lane, at most */
#define META_MAX      4000 /* bytes of a group commit's metadata */
#define LANE_KEY_LEN  (CTKN_DEST_ID_LEN + 4)
#define ATT_KEY_LEN   (CTKN_NTF_ID_LEN + 4)
/* The event-topic partition whose holder sends the api_key.* events. */
#define AKEY_HOLDER   0
#define AKEY_LANE_BIT 0x40000000u
/* Finished attempts are written at most every FLUSH_US (one produce batch
 * waited for, then one synced LMDB commit, on the notifier's thread), or as
 * soon as FLUSH_MAX wait, so a crash may repeat what finished meanwhile,
 * never skip it. 100 ms, not 20: the wait stalls the requests, and at 20 ms
 * it cost a quarter of the deliveries/s (docs/architecture.md). */
#define FLUSH_US      100000
#define FLUSH_MAX     4096

/* ---- http.c: requests over libcurl ------------------------------------ */

struct ctkn__http;     /* the requests in flight, and what drives them */
struct ctkn__http_req; /* one request */

/* libcurl started, with no request yet. On success *out is new: caller
 * owns it, release with ctkn__http_close(). CTKN_EINTERNAL when libcurl
 * does not start. */
int ctkn__http_open(struct ctkn__http **out, struct ctkn_err *err);
/* Abandon every request and free. NULL is a no-op. */
void ctkn__http_close(struct ctkn__http *h);

/* One POST to start. body is borrowed until the request finishes or is
 * cancelled; the rest for the call. */
struct ctkn__http_post {
  const char *url;
  const char *body;
  size_t len;
  const char *signature; /* Paddle-Signature's value */
  int timeout_ms;        /* the whole request */
  int connect_timeout_ms;
  /* Where it may go (setting.h): borrowed until it finishes. The URL is
   * checked before it starts, and each address just before connecting. */
  const struct ctkn_dest_policy *policy;
  void *tag; /* handed back when it finishes */
};

/* Start p. On success *out is the request: ctkn__http_reap() reports it
 * once, or ctkn__http_cancel() ends it; either frees it. A URL or an
 * address that p->policy refuses is reported as a failure (status 0,
 * the reason as its error), with nothing sent.
 * CTKN_ENOMEM, or CTKN_EINTERNAL when libcurl refuses it. */
int ctkn__http_start(struct ctkn__http *h, const struct ctkn__http_post *p,
                     struct ctkn__http_req **out);
/* Stop r and free it; it is never reported. NULL is a no-op. */
void ctkn__http_cancel(struct ctkn__http *h, struct ctkn__http_req *r);

/* What became of a request: status is the HTTP status (0 when none came
 * back) and error NULL, or error says why the transfer failed and status
 * is 0. content_type ("" when none) and the body's first body_len bytes
 * (at most CTKN_NTF_BODY_MAX) are the response's. All valid for the
 * callback. */
struct ctkn__http_resp {
  int status;
  const char *error;
  const char *content_type;
  const char *body;
  size_t body_len;
};
typedef void (*ctkn__http_done_cb)(void *arg, void *tag,
                                   const struct ctkn__http_resp *resp);
/* Let libcurl work without waiting, then report each finished request
 * to done and free it. Returns how many finished. */
size_t ctkn__http_reap(struct ctkn__http *h, ctkn__http_done_cb done,
                       void *arg);
/* Wait up to timeout_ms for network activity or a wakeup. */
void ctkn__http_wait(struct ctkn__http *h, int timeout_ms);
/* End a wait early. The only call that is safe from any thread. */
void ctkn__http_wakeup(struct ctkn__http *h);

/* ---- the engine's state ----------------------------------------------- */

struct ntf_dest {
  struct ctkn_destination d;
  char secret[CTKN_SECRET_BUF]; /* "" when it does not open */
};

struct ntf_lane;

/* One notification in a window (or a replay): its state, its body and
 * its request while one is in flight. */
struct ntf_entry {
  struct ctkn_notification n;
  char *body; /* the webhook JSON: owned */
  size_t blen;
  struct ctkn__http_req *req; /* in flight; NULL otherwise */
  int64_t started_us;
  bool dirty;            /* state to persist */
  bool settled;          /* delivered or failed */
  struct ntf_lane *lane; /* NULL for a replay */
};

/* One destination on one held partition; or, when akey, one destination
 * on the settings topic's partition (its api_key.* events), held by
 * whichever notifier holds event-topic partition 0. */
struct ntf_lane {
  char dest[CTKN_DEST_ID_BUF];
  bool akey;
  int32_t partition;
  int64_t cursor; /* every notification below is settled */
  int64_t scan;   /* the next position to look at */
  bool cursor_dirty;
  bool at_end; /* the last scan found nothing more */
  struct ntf_entry *win[WINDOW_MAX];
  int n;
};

/* A finished attempt waiting to be written. */
struct ntf_pend {
  struct ctkn_notification n;
  struct ctkn_ntf_attempt a;
  bool dequeue; /* a settled replay: leaves notify_queue */
};

/* What the notifier knows of one event-topic partition. */
struct ntf_part {
  bool owned;
  bool fetched; /* committed offset and metadata read since acquired */
  char meta[META_MAX + 1];
  char last_commit[META_MAX + 32]; /* what was committed last */
};

struct notifier {
  ctkn_store *st;                    /* kept: the caller's */
  const struct ctkn_log_config *cfg; /* kept: the caller's */
  ctkn_env env;
  const uint8_t *key; /* kept: the caller's */
  struct ctkn_notify_opts o;
  struct ctkn_dest_policy policy; /* env and o.allow */
  struct ctkn_notify_stats *stats;
  struct ctkn__http *http;
  ctkn_consumer *lease;
  int32_t nparts;
  struct ntf_part *parts; /* nparts */
  bool *owned;            /* nparts */
  struct ntf_dest *dests;
  size_t ndests;
  struct ctkn__buf lanes;   /* struct ntf_lane * */
  struct ctkn__buf replays; /* struct ntf_entry * */
  int inflight;
  size_t reaped;         /* requests the last reap finished */
  struct ctkn__buf pend; /* struct ntf_pend, not yet written */
  int64_t flushed_us;    /* when they last were */
  /* dlog.c: the notifications topic (dlog false: not appended to) */
  bool dlog;
  ctkn_producer *dprod;
  ctkn_signer *signer; /* NULL without trust */
  int32_t dparts;
  int64_t next_commit_ms, next_reload_ms, next_queue_ms, next_parts_ms;
  /* follow: the projector's thread */
  ctkn_projector *proj;
  pthread_t thread;
  bool thread_started;
  volatile sig_atomic_t proj_stop;
  atomic_int proj_rc;
  atomic_bool proj_done;
  struct ctkn_err proj_err;
};

/* The arrays held in the notifier's buffers. */
static inline struct ntf_lane **ntf_lanes(const struct notifier *nf)
{
  return (struct ntf_lane **)(void *)nf->lanes.data;
}

static inline size_t ntf_nlanes(const struct notifier *nf)
{
  return nf->lanes.len / sizeof(struct ntf_lane *);
}

static inline struct ntf_entry **ntf_replays(const struct notifier *nf)
{
  return (struct ntf_entry **)(void *)nf->replays.data;
}

static inline size_t ntf_nreplays(const struct notifier *nf)
{
  return nf->replays.len / sizeof(struct ntf_entry *);
}

/* ---- lanes.c ------------------------------------------------------------ */

struct ntf_dest *ctkn__ntf_find_dest(struct notifier *nf, const char *id);
/* A destination that can be sent to now: live, active, its secret open. */
struct ntf_dest *ctkn__ntf_sendable(struct notifier *nf, const char *id);
/* A new entry for the event ev at at, for dest, as notification ntf_id;
 * its state restored from the store when this projection handled it
 * before. NULL (with err) when out of memory. */
struct ntf_entry *ctkn__ntf_entry_new(ctkn_store_txn *txn,
                                      const struct ctkn_event *ev,
                                      const struct ctkn_store_event *at,
                                      const char *dest, const char *ntf_id,
                                      struct ctkn_err *err);
/* The same for an api_key.* event of the settings topic: the body is
 * its envelope with notification_id set. */
struct ntf_entry *ctkn__ntf_akey_entry_new(
    ctkn_store_txn *txn, const struct ctkn_settings_akey_event *ae,
    const char *dest, const char *ntf_id, struct ctkn_err *err);
/* Cancel its request and free. NULL is a no-op. */
void ctkn__ntf_entry_free(struct notifier *nf, struct ntf_entry *e);
void ctkn__ntf_lane_free(struct notifier *nf, struct ntf_lane *l);
/* Reload the destinations; *changed when the set or a version moved. */
int ctkn__ntf_reload_dests(struct notifier *nf, bool *changed,
                           struct ctkn_err *err);
/* Make the lanes match (held partitions) x (live destinations). */
int ctkn__ntf_sync_lanes(struct notifier *nf, struct ctkn_err *err);
/* Fill the lanes' windows from the positions table. */
int ctkn__ntf_fill(struct notifier *nf, struct ctkn_err *err);
/* Start every ready entry of every sendable destination. */
void ctkn__ntf_dispatch(struct notifier *nf, int64_t now_us);
/* Settle what finished, move the cursors, write the state when due. */
int ctkn__ntf_reap(struct notifier *nf, struct ctkn_err *err);
/* Whether a one-shot run is done: nothing in flight, nothing due now,
 * every lane scanned to the end. */
bool ctkn__ntf_idle(struct notifier *nf, int64_t now_us);

/* ---- lease.c ------------------------------------------------------------ */

/* Where a new lane starts: the furthest of the destination's start, this
 * projection's cursor and the group's record for it. */
int64_t ctkn__ntf_lane_start(struct notifier *nf, ctkn_store_txn *txn,
                             const char *dest, int32_t p);
/* Where a new akey lane starts: the furthest of where the destination's
 * creation was applied on the settings topic (for a destination created
 * before that was kept: where the settings events are filled to), this
 * projection's cursor and the group's record for it (partition
 * AKEY_HOLDER's metadata, ";@<ULID>=<cursor>"). */
int64_t ctkn__ntf_akey_lane_start(struct notifier *nf, ctkn_store_txn *txn,
                                  const char *dest, int32_t sp);
/* Read the group's committed state of a newly held partition. */
void ctkn__ntf_fetch_commit(struct notifier *nf, int32_t p);
/* Write the finished attempts and the moved cursors in one transaction:
 * when forced, FLUSH_US after the last write, or when FLUSH_MAX wait. */
int ctkn__ntf_flush(struct notifier *nf, bool force, struct ctkn_err *err);
/* Commit each held partition's lowest cursor and every lane's cursor. */
void ctkn__ntf_commit_lease(struct notifier *nf);
/* Grow to the topic's partition count when it grew. */
int ctkn__ntf_refresh_parts(struct notifier *nf, struct ctkn_err *err);
/* Serve the lease for up to timeout_ms; *changed when the held
 * partitions changed. */
int ctkn__ntf_serve_lease(struct notifier *nf, int timeout_ms, bool *changed,
                          struct ctkn_err *err);

/* ---- dlog.c ------------------------------------------------------------- */

/* Open the notifications topic for appending (creating it when missing),
 * unless trust says not to: no writer key, or the keyring does not enable
 * the delivery records' schema (each warned about). Errors: CTKN_EINVAL
 * (field "writer_key": not an active notification.* key); the log's. */
int ctkn__ntf_dlog_open(struct notifier *nf, struct ctkn_err *err);
void ctkn__ntf_dlog_close(struct notifier *nf);
/* Append the records of the pending attempts as one (signed) produce
 * batch, acknowledged before returning; closing ends the writer
 * instance. Errors: the log's; CTKN_ENOMEM. */
int ctkn__ntf_dlog_append(struct notifier *nf, bool closing,
                          struct ctkn_err *err);

/* ---- audit.c ------------------------------------------------------------ */

/* The event at (partition, offset) (the first at or after it unless
 * exact), decoded, and where it is. */
int ctkn__ntf_load_event(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                         bool exact, struct ctkn_event *ev,
                         struct ctkn_store_event *at, struct ctkn_err *err);
/* Pick up replays queued by ctkn_notification_replay(). */
int ctkn__ntf_load_replays(struct notifier *nf, struct ctkn_err *err);

#endif /* CTKN_NOTIFY_INT_H */
