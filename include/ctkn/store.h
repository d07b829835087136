/*
 * store.h - the LMDB projection: tokens, indexes, history, rejected and
 * quarantined records, partition offsets and metadata.
 *
 * Wraps one LMDB environment in a directory (real files, a large fixed map).
 * The layout ("format") is recorded in the metadata; a build that finds a
 * format it does not know refuses to open the store and names the fix
 * (`ctkn rebuild`). See docs/architecture.md for the tables.
 *
 * One writer at a time (LMDB serialises writers across processes); readers
 * never block. Every read and write happens inside a ctkn_store_txn. A
 * write txn's token puts are buffered in a batch and written, sorted, at
 * commit: the one way into the token tables.
 *
 * Lifetime: ctkn_store_open() -> ctkn_store_begin() -> get/put ->
 *           ctkn_store_commit() or ctkn_store_abort() -> ctkn_store_close().
 * Errors:   0 or negative CTKN_E*: CTKN_ENOTFOUND for a missing key,
 *           CTKN_ESTORE for LMDB failures (err->msg has mdb_strerror) and
 *           corrupt values ("corrupt value in <table>"), CTKN_EFORMAT for
 *           an unknown layout, CTKN_ECONFLICT for a projection bound to
 *           another topic or environment, CTKN_EINVAL (err->field names
 *           the argument), CTKN_EINTERNAL for a misuse (a write in a read
 *           txn), CTKN_ENOMEM.
 * Thread:   a ctkn_store may be shared by threads; a txn belongs to the
 *           thread that began it.
 * Not here: Kafka (log.h), the rules (event.h), encodings (codec.h).
 */
#ifndef CTKN_STORE_H
#define CTKN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/token.h"

#define CTKN_STORE_FORMAT         1
#define CTKN_STORE_MAP_DEFAULT    ((size_t)64 << 30) /* 64 GiB, sparse */
#define CTKN_STORE_MAX_PARTITIONS 4096

typedef struct ctkn_store ctkn_store;
typedef struct ctkn_store_txn ctkn_store_txn;

struct ctkn_store_opts {
  size_t map_size; /* 0: CTKN_STORE_MAP_DEFAULT */
  bool read_only;  /* open for reads only (queries) */
  bool no_sync;    /* MDB_NOSYNC: benchmarks and throwaway replays only */
};

/*
 * Open (creating when missing, unless read_only) the projection in dir;
 * borrows dir and opts for the call. Clears stale reader slots
 * (mdb_reader_check) and opens every table in a write transaction that
 * commits. On success *out is a new handle: caller owns it, release with
 * ctkn_store_close(). On failure *out is NULL.
 * Errors: CTKN_EINVAL (empty dir), CTKN_ESTORE (not a projection, for a
 * reader; a catch-up's marker from a crashed boot; LMDB failed),
 * CTKN_EFORMAT (a format this build does not read), CTKN_ENOMEM.
 */
int ctkn_store_open(ctkn_store **out, const char *dir,
                    const struct ctkn_store_opts *opts, struct ctkn_err *err);

/* Close and free (ending an unsynced catch-up first). NULL is a no-op.
 * All txns must be finished first. */
void ctkn_store_close(ctkn_store *st);

/*
 * If dir now holds another projection than the one st has open (`ctkn
 * rebuild` swapped a new one in), reopen st on it in place and set
 * *reopened; pointers to st stay valid. The caller must hold no txn; while
 * another thread holds one, nothing happens and a later call tries again,
 * so threads may share st with one of them refreshing. A stat() when
 * nothing changed. Errors: those of ctkn_store_open() (st is unchanged).
 */
int ctkn_store_refresh(ctkn_store *st, bool *reopened, struct ctkn_err *err);

/* Remove the projection in dir (its LMDB files, then dir if that leaves
 * it empty), if there. Nothing may have it open. Never fails: what cannot
 * be removed stays. */
void ctkn_store_remove(const char *dir);

/*
 * A full map explained: fills err with CTKN_EMAPFULL naming st's map size
 * (as --map-size would spell it) and the fix, and returns CTKN_EMAPFULL.
 * For a caller that got CTKN_EMAPFULL from a write to st; the store's own
 * message cannot name the size.
 */
int ctkn_store_map_full(ctkn_store *st, struct ctkn_err *err);

/* Flush to disk a store opened with no_sync. Errors: CTKN_ESTORE. */
int ctkn_store_sync(ctkn_store *st, struct ctkn_err *err);

/* Exchange two directories atomically (renameat2 RENAME_EXCHANGE): a
 * reader that opens either path sees one whole projection or the other.
 * Errors: CTKN_ESTORE (names both paths and the errno text). */
int ctkn_store_exchange(const char *a, const char *b, struct ctkn_err *err);

/* ---- metadata ------------------------------------------------------- */

/*
 * Bind the projection to a topic and environment: recorded the first time,
 * compared afterwards; a read-only store only compares. Borrows topic for
 * the call. Errors: CTKN_EINVAL (field "topic": not 1 to 249 characters;
 * "environment"), CTKN_ECONFLICT (bound to another; names both values),
 * CTKN_ESTORE.
 */
int ctkn_store_bind(ctkn_store *st, const char *topic, ctkn_env env,
                    struct ctkn_err *err);

/*
 * Bind the projection to the topic's ID (Kafka's topic ID: a topic deleted
 * and re-created under the same name gets a new one) as ctkn_store_bind()
 * binds it to the name: recorded the first time, compared afterwards; a
 * read-only store only compares. Borrows id for the call. Errors:
 * CTKN_EINVAL (field "topic_id": not 1 to 64 characters), CTKN_ECONFLICT
 * (bound to another; names both), CTKN_ESTORE.
 */
int ctkn_store_bind_topic_id(ctkn_store *st, const char *id,
                             struct ctkn_err *err);

/*
 * Mark the projection as a frozen replay of the log as of as_of_us
 * (recorded as RFC 3339 in the metadata). Nothing advances a frozen
 * projection afterwards (ctkn_projector_open() refuses it).
 * Errors: CTKN_EINVAL (field "as_of": outside 1970..9999), CTKN_ESTORE.
 */
int ctkn_store_freeze(ctkn_store *st, int64_t as_of_us, struct ctkn_err *err);

/* The instant a frozen projection stands at, or "" when it is live (also
 * on failure). Errors: CTKN_ESTORE. */
int ctkn_store_frozen(ctkn_store *st, char as_of[CTKN_TIME_BUF],
                      struct ctkn_err *err);

/* ---- transactions ---------------------------------------------------- */

/*
 * Begin a transaction; write = false for a read-only snapshot. The txn
 * keeps st, which must outlive it. On success *out is a new txn: caller
 * owns it, release with ctkn_store_commit() or ctkn_store_abort(). On
 * failure *out is NULL. Errors: CTKN_ESTORE (a write txn on a read-only
 * store; another process grew the map; LMDB failed), CTKN_ENOMEM.
 */
int ctkn_store_begin(ctkn_store *st, bool write, ctkn_store_txn **out,
                     struct ctkn_err *err);
/*
 * Write the txn's batch out, then commit; takes ownership of txn, which is
 * freed also on failure (nothing is committed then). Errors:
 * CTKN_ECONFLICT (a guessing batch guessed wrong), CTKN_EMAPFULL (the
 * map is full: raise --map-size), CTKN_ESTORE (LMDB failed), CTKN_ENOMEM.
 */
int ctkn_store_commit(ctkn_store_txn *txn, struct ctkn_err *err);
/* Abort and free, dropping the batch. NULL is a no-op. */
void ctkn_store_abort(ctkn_store_txn *txn);

/* ---- reads ----------------------------------------------------------- */

/*
 * Reads borrow their string arguments for the call and fill caller-owned
 * out-parameters; in a write txn they see the txn's own puts. Corrupt
 * values are CTKN_ESTORE ("corrupt value in <table>").
 */

/* The token with this ID into *out. Errors: CTKN_ENOTFOUND (no such
 * token, or id is not an ID), CTKN_ESTORE, CTKN_ENOMEM. */
int ctkn_store_get(ctkn_store_txn *txn, const char *id, struct ctkn_record *out,
                   struct ctkn_err *err);
/* The token with this token string into *out. Errors: CTKN_ENOTFOUND,
 * CTKN_ESTORE (also an index entry without its record), CTKN_ENOMEM. */
int ctkn_store_get_by_token(ctkn_store_txn *txn, const char *token,
                            struct ctkn_record *out, struct ctkn_err *err);
/* Verify's lookup: the ID and status of the token with this token string,
 * from the token index alone (one B-tree lookup). Errors: CTKN_ENOTFOUND,
 * CTKN_ESTORE. */
int ctkn_store_lookup_token(ctkn_store_txn *txn, const char *token,
                            char id[CTKN_ID_BUF], ctkn_status *status,
                            struct ctkn_err *err);
/* The token ID and request hash stored for an idempotency key. Errors:
 * CTKN_EINVAL (field "idempotency_key": not 1 to CTKN_IDEM_KEY_MAX
 * bytes), CTKN_ENOTFOUND (not used yet), CTKN_ESTORE. */
int ctkn_store_get_idem(ctkn_store_txn *txn, const char *key,
                        char id[CTKN_ID_BUF], uint8_t hash[CTKN_HASH_LEN],
                        struct ctkn_err *err);
/* The reason recorded for the event rejected at (partition, offset),
 * truncated to reasonsz - 1 bytes (reason may be NULL). Errors:
 * CTKN_ENOTFOUND (that record was not rejected), CTKN_EINVAL (field
 * "partition" or "offset" out of range), CTKN_ESTORE. */
int ctkn_store_get_rejected(ctkn_store_txn *txn, int32_t partition,
                            int64_t offset, char *reason, size_t reasonsz,
                            struct ctkn_err *err);
/* The reason the record at (partition, offset) was quarantined, into
 * reason (NUL-terminated, cut to reasonsz - 1 bytes; may be NULL).
 * Errors: CTKN_ENOTFOUND (not quarantined), CTKN_EINVAL (field
 * "partition" or "offset"), CTKN_ESTORE. */
int ctkn_store_get_quarantine(ctkn_store_txn *txn, int32_t partition,
                              int64_t offset, char *reason, size_t reasonsz,
                              struct ctkn_err *err);
/* The next offset to consume on partition into *next: 0 when never
 * consumed (and on failure). Errors: CTKN_EINVAL (field "partition":
 * outside 0..CTKN_STORE_MAX_PARTITIONS-1), CTKN_ESTORE. */
int ctkn_store_offset(ctkn_store_txn *txn, int32_t partition, int64_t *next,
                      struct ctkn_err *err);
/* The number of tokens into *n (0 on failure), for list's
 * estimated_total. In a write txn, writes its batch out first. Errors:
 * CTKN_ESTORE, CTKN_ENOMEM, CTKN_ECONFLICT (a guessing batch guessed
 * wrong: abort the txn). */
int ctkn_store_count(ctkn_store_txn *txn, int64_t *n, struct ctkn_err *err);
/* The tokens whose status is in status_mask (bit 1 << status) into *n (0
 * on failure), from a count kept beside the tables: what a filtered
 * list's estimated_total says. Errors: as ctkn_store_count(). */
int ctkn_store_count_status(ctkn_store_txn *txn, unsigned status_mask,
                            int64_t *n, struct ctkn_err *err);

/* ---- writes (write txn only) ----------------------------------------- */

/*
 * Writes borrow their arguments for the call: what they store is copied
 * (a put into the batch copies the encoded record). Each fails with
 * CTKN_EINTERNAL in a read txn, with CTKN_EMAPFULL when the map is full
 * (raise --map-size), and with CTKN_ESTORE when LMDB fails otherwise.
 */

/*
 * Store rec under its ID and keep the token-string index in step, through
 * the txn's batch (created by the txn's first put): written at commit,
 * seen by this txn's reads at once. A new token claims its token string;
 * an update writes the record only, but a revoke also its index entry
 * (which holds the status), and the revoked count moves once per token.
 * Errors: CTKN_ECONFLICT (field "token": the token string belongs to
 * another token, in the store or in this batch; names it; nothing of rec
 * is stored and txn stays usable), CTKN_EINVAL (field "id" or "token": a
 * wrong length; an unencodable record), CTKN_EINTERNAL, CTKN_ESTORE,
 * CTKN_ENOMEM.
 */
int ctkn_store_put(ctkn_store_txn *txn, const struct ctkn_record *rec,
                   struct ctkn_err *err);
/* The event (value, len bytes) of version version of token id, at
 * (partition, offset), and its positions entry. Errors: CTKN_EINVAL
 * (field "id", "partition" or "offset"; value NULL with len > 0). */
int ctkn_store_put_history(ctkn_store_txn *txn, const char *id,
                           uint64_t version, int32_t partition, int64_t offset,
                           const void *value, size_t len, struct ctkn_err *err);
/* One history entry for ctkn_store_put_history_batch(). */
struct ctkn_store_history_put {
  char id[CTKN_ID_BUF];
  uint64_t version;
  int32_t partition;
  int64_t offset;
  const void *value; /* borrowed for the call */
  size_t len;
  /* The event's ID, type and occurred_at, for the events index; with
   * event_id "" they are decoded from value (an entry whose value does
   * not decode is indexed apart, and never listed). */
  char event_id[CTKN_EVT_ID_LEN + 1];
  int type;            /* ctkn_event_type */
  int64_t occurred_at; /* µs */
};

/*
 * ctkn_store_put_history() for n entries at once, with the same result:
 * sorts them (in place) and appends those past the table's last key
 * (MDB_APPEND), which fills pages instead of splitting them. A batch's
 * history is time-ordered within a partition but interleaved across them.
 * Errors: those of ctkn_store_put_history(), for any entry (then nothing
 * is written), and CTKN_ENOMEM.
 */
int ctkn_store_put_history_batch(ctkn_store_txn *txn,
                                 struct ctkn_store_history_put *e, size_t n,
                                 struct ctkn_err *err);
/* Record the event at (partition, offset) as rejected for reason; the IDs
 * may be NULL. Errors: CTKN_EINVAL (field "partition", "offset" or
 * "reason": NULL). */
int ctkn_store_put_rejected(ctkn_store_txn *txn, int32_t partition,
                            int64_t offset, const char *event_id,
                            const char *token_id, const char *reason,
                            struct ctkn_err *err);
/* Quarantine the record at (partition, offset) with its key and value
 * bytes (NULL, 0 for none) and the reason. Errors: CTKN_EINVAL (field
 * "partition", "offset" or "reason"; bytes NULL with a length). Moves the
 * partition's quarantine count in the same txn, once a coordinate. */
int ctkn_store_put_quarantine(ctkn_store_txn *txn, int32_t partition,
                              int64_t offset, const char *reason,
                              const void *key, size_t klen, const void *value,
                              size_t vlen, struct ctkn_err *err);
/* Record an idempotency key's token and request hash. First writer wins:
 * the same again is a no-op. Errors: CTKN_ECONFLICT (field
 * "idempotency_key": used with another token or hash), CTKN_EINVAL (field
 * "idempotency_key" or "id"). */
int ctkn_store_put_idem(ctkn_store_txn *txn, const char *key, const char *id,
                        const uint8_t hash[CTKN_HASH_LEN],
                        struct ctkn_err *err);
/* The next offset to consume on partition. Errors: CTKN_EINVAL (field
 * "partition" or "offset"). */
int ctkn_store_set_offset(ctkn_store_txn *txn, int32_t partition, int64_t next,
                          struct ctkn_err *err);

/*
 * Write a consistent, compacted copy of the projection (every table, the
 * offsets and the metadata) into dir, which is created when missing and
 * must not hold a projection yet (CTKN_ECONFLICT). Writers are not
 * stopped: the copy is one read transaction's view. A projector started on
 * the copy resumes from its offsets. Borrows dir for the call. Errors:
 * CTKN_ECONFLICT (dir holds a projection), CTKN_ESTORE.
 */
int ctkn_store_snapshot(ctkn_store *st, const char *dir, struct ctkn_err *err);

/* ---- iteration ------------------------------------------------------- */

/*
 * One page of tokens in ID order (ascending, or descending when desc),
 * starting strictly after `after` (NULL or "": from the start), keeping
 * only statuses whose bit (1 << status) is in status_mask. Writes up to
 * limit records to out (caller-owned, limit long) and their number to *n;
 * *has_more tells whether another matching token follows. In a write txn,
 * writes its batch out first. Errors: CTKN_EINVAL (field "after": longer
 * than any key), CTKN_ESTORE, CTKN_ENOMEM; *n is 0 on failure.
 */
int ctkn_store_list(ctkn_store_txn *txn, const char *after, bool desc,
                    unsigned status_mask, size_t limit, struct ctkn_record *out,
                    size_t *n, bool *has_more, struct ctkn_err *err);

/* Called for each stored item; a non-zero return stops the walk and is
 * returned by the walker. Pointers are valid until the callback returns.
 * Every walker below also fails with CTKN_ESTORE (LMDB, or a corrupt
 * entry: the walk stops there). */
typedef int (*ctkn_store_history_cb)(void *arg, uint64_t version,
                                     int32_t partition, int64_t offset,
                                     const void *value, size_t len);
typedef int (*ctkn_store_coord_cb)(void *arg, int32_t partition, int64_t offset,
                                   const char *reason, const void *key,
                                   size_t klen, const void *value, size_t vlen);
typedef int (*ctkn_store_offset_cb)(void *arg, int32_t partition, int64_t next);

/* The token's events, oldest first. Errors: CTKN_ENOTFOUND (none). */
int ctkn_store_history(ctkn_store_txn *txn, const char *id,
                       ctkn_store_history_cb cb, void *arg,
                       struct ctkn_err *err);
/* Quarantined records in (partition, offset) order; key and value are
 * NULL when there were none. Errors: CTKN_ENOMEM. */
int ctkn_store_quarantine(ctkn_store_txn *txn, ctkn_store_coord_cb cb,
                          void *arg, struct ctkn_err *err);
/* How many records are quarantined in each partition: counts[p] for p
 * below n (all set; partitions at n or past it are not counted). Reads
 * the counts ctkn_store_put_quarantine() keeps, one entry a partition
 * that has any (a read-only open of a projection from before them counts
 * the table's keys). Errors: CTKN_ESTORE. */
int ctkn_store_quarantine_counts(ctkn_store_txn *txn, int64_t *counts,
                                 int32_t n, struct ctkn_err *err);
/* Rejected events in (partition, offset) order; key is the token ID,
 * value the event ID (each NULL when unknown), neither NUL-terminated.
 * Errors: CTKN_ENOMEM. */
int ctkn_store_rejected(ctkn_store_txn *txn, ctkn_store_coord_cb cb, void *arg,
                        struct ctkn_err *err);
/* Stored partition offsets in partition order. Errors: CTKN_ESTORE. */
int ctkn_store_offsets(ctkn_store_txn *txn, ctkn_store_offset_cb cb, void *arg,
                       struct ctkn_err *err);

/* ---- applied events by log position ------------------------------------ */

/* One applied event, found by where it sits in the log. */
struct ctkn_store_event {
  char id[CTKN_ID_BUF]; /* the token */
  uint64_t version;
  int32_t partition;
  int64_t offset;
  const void *value; /* the event as read from the log (protobuf); valid */
  size_t len;        /* until the txn ends */
};

/*
 * The applied event at (partition, offset), or with exact false the first
 * one at or after it on that partition: rejected and quarantined records
 * are not there. Backed by the positions table, which every history
 * write keeps in step. *out's value is valid until the txn ends. Errors:
 * CTKN_ENOTFOUND (none there, yet), CTKN_EINVAL (field "partition" or
 * "offset"), CTKN_ESTORE.
 */
int ctkn_store_event_at(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                        bool exact, struct ctkn_store_event *out,
                        struct ctkn_err *err);

/* ---- applied events by event ID (GET /events) --------------------------- */

/* Which indexed events a walk visits. */
struct ctkn_store_events_filter {
  const char *after;  /* an event ID: start past it; NULL or "" from the end
                         the walk starts at */
  bool desc;          /* newest event ID first */
  unsigned type_mask; /* bit (1 << ctkn_event_type); 0: every type */
  bool skip_tokens;   /* none of the event topic's events */
  /* The settings topic's events (ctkn_store_put_setting_event()): bit
   * (1 << code); 0: none of them. */
  unsigned setting_mask;
  bool has_from, has_to;
  int64_t from_us; /* occurred_at >= from_us, when has_from */
  int64_t to_us;   /* occurred_at < to_us, when has_to */
};

/* One event of the index: its history entry (ev) and what the index
 * keeps beside it. Valid for the callback's call. */
struct ctkn_store_indexed_event {
  char event_id[CTKN_EVT_ID_LEN + 1];
  int type;                   /* ctkn_event_type; a settings event's code */
  int64_t occurred_at;        /* µs */
  struct ctkn_store_event ev; /* the event topic's events only */
  /* A settings topic's event: its envelope as put (JSON, json_len bytes,
   * not NUL-terminated); NULL for the event topic's. */
  const char *json;
  size_t json_len;
};

/* Return 0 to go on; anything else stops the walk and is returned (a
 * positive value is not an error: ctkn_store_events() then gives
 * CTKN_OK). */
typedef int (*ctkn_store_events_cb)(void *arg,
                                    const struct ctkn_store_indexed_event *e);

/*
 * Every applied event that f selects, in event-ID order (ULIDs: the order
 * of their creation time, to the millisecond). Backed by the events
 * table, which every history write keeps in step (a writer that opens a
 * projection from before it builds it once, by a scan). Errors:
 * CTKN_EINVAL (field "after": not an event ID), CTKN_ENOTFOUND (a
 * read-only open of a projection that no writer has opened since the
 * index came: run ctkn project once), CTKN_ESTORE.
 */
int ctkn_store_events(ctkn_store_txn *txn,
                      const struct ctkn_store_events_filter *f,
                      ctkn_store_events_cb cb, void *arg, struct ctkn_err *err);
/* How many events the index holds (0 when it is absent). Errors:
 * CTKN_ESTORE. */
int ctkn_store_events_count(ctkn_store_txn *txn, int64_t *n,
                            struct ctkn_err *err);

/*
 * The settings topic's events (notification_setting.*, api_key.*) sit in
 * a table of their own beside the events index, keyed by event ID then
 * log position, and ctkn_store_events() walks both as one, in event-ID
 * order (on a tie the event topic's first). The settings projection puts
 * each applied record's envelope in the transaction that applies it.
 * code is the caller's (settings.h: ctkn_settings_event_code()), 0..31.
 */
struct ctkn_store_setting_event {
  const char *event_id; /* ^evt_[0-7][0-9a-hjkmnp-tv-z]{25}$ */
  int code;
  int64_t occurred_at; /* µs */
  int32_t partition;   /* of the settings topic */
  int64_t offset;
  const char *json; /* the webhook envelope, len bytes */
  size_t len;
};
/* Put e (replacing an entry of the same event ID and position). Errors:
 * CTKN_EINVAL (an invalid event ID or code), CTKN_ESTORE. */
int ctkn_store_put_setting_event(ctkn_store_txn *txn,
                                 const struct ctkn_store_setting_event *e,
                                 struct ctkn_err *err);
/* How many settings events the table holds (0 when it is absent). Errors:
 * CTKN_ESTORE. */
int ctkn_store_setting_events_count(ctkn_store_txn *txn, int64_t *n,
                                    struct ctkn_err *err);

/* ---- side tables: settings and webhook delivery ------------------------- */

/*
 * Tables whose keys and values other modules define (settings.h,
 * notify.h); keys compare as bytes. Replicated: destinations, their start
 * offsets, the settings topic's offsets and the fate of each settings
 * record, and the notifications topic's projection. Local to one
 * process's projection: the notifier's working delivery state. None is covered
 * by the digest. positions is read-only here.
 */
enum ctkn_store_table {
  CTKN_TABLE_POSITIONS,        /* partition + offset -> token ID + version */
  CTKN_TABLE_DESTINATIONS,     /* ntfset ID -> destination */
  CTKN_TABLE_DEST_START,       /* ntfset ID + partition -> first offset */
  CTKN_TABLE_SETTINGS_OFFSETS, /* partition -> next offset */
  CTKN_TABLE_SETTINGS_LOG,     /* partition + offset -> fate */
  CTKN_TABLE_NOTIFICATIONS,    /* ntf ID -> delivery state */
  CTKN_TABLE_ATTEMPTS,         /* ntf ID + attempt -> one attempt */
  CTKN_TABLE_CURSORS,          /* ntfset ID + partition -> next offset */
  CTKN_TABLE_QUEUE,            /* ntf ID -> "": replays to send */
  CTKN_TABLE_TRUST,            /* "keyring", "gate" + partition -> state */
  CTKN_TABLE_API_KEYS,         /* apikey ID -> API key (keylog.h) */
  CTKN_TABLE_API_KEY_HASHES,   /* SHA-256 of a legacy key -> apikey ID */
  /* The notifications topic's projection (delivery.h): replicated. */
  CTKN_TABLE_DELIVERIES,        /* ntf ID -> notification as projected */
  CTKN_TABLE_DELIVERY_ATTEMPTS, /* ntf ID + seq (BE32) -> one attempt */
  CTKN_TABLE_DELIVERY_OFFSETS,  /* partition -> next offset */
  CTKN_TABLE_DELIVERY_LOG       /* partition + offset -> quarantine reason */
};

/*
 * Keys are 1 byte to LMDB's maximum key size (CTKN_EINTERNAL otherwise);
 * keys and values are borrowed for the call and copied. A table absent
 * from an older projection opened read-only reads as empty. Every call
 * also fails with CTKN_ESTORE (LMDB) and CTKN_EINTERNAL (a misuse:
 * CTKN_TABLE_POSITIONS, or a write in a read txn).
 */

/* The value stored under key: *val is valid until the txn ends or writes
 * to the table. Errors: CTKN_ENOTFOUND. */
int ctkn_store_kv_get(ctkn_store_txn *txn, enum ctkn_store_table table,
                      const void *key, size_t klen, const void **val,
                      size_t *vlen, struct ctkn_err *err);
/* Store val under key, replacing what was there. Errors: those above. */
int ctkn_store_kv_put(ctkn_store_txn *txn, enum ctkn_store_table table,
                      const void *key, size_t klen, const void *val,
                      size_t vlen, struct ctkn_err *err);
/* Delete key. Errors: CTKN_ENOTFOUND (no such key). */
int ctkn_store_kv_del(ctkn_store_txn *txn, enum ctkn_store_table table,
                      const void *key, size_t klen, struct ctkn_err *err);
/* A non-zero return stops a walk and is returned by it. */
typedef int (*ctkn_store_kv_cb)(void *arg, const void *key, size_t klen,
                                const void *val, size_t vlen);
/* Entries with keys >= from (flen 0: all) in key order, while their first
 * plen bytes equal from's. Errors: CTKN_EINTERNAL (also plen > flen). */
int ctkn_store_kv_walk(ctkn_store_txn *txn, enum ctkn_store_table table,
                       const void *from, size_t flen, size_t plen,
                       ctkn_store_kv_cb cb, void *arg, struct ctkn_err *err);
/* Entries with keys < before (blen 0: all) in descending key order.
 * Errors: as ctkn_store_kv_walk(). */
int ctkn_store_kv_walk_back(ctkn_store_txn *txn, enum ctkn_store_table table,
                            const void *before, size_t blen,
                            ctkn_store_kv_cb cb, void *arg,
                            struct ctkn_err *err);
/* How many entries the table holds (0 when it is absent). Errors:
 * CTKN_ESTORE. */
int ctkn_store_kv_count(ctkn_store_txn *txn, enum ctkn_store_table table,
                        int64_t *n, struct ctkn_err *err);

/* ---- pauses ------------------------------------------------------------- */

/* A partition the projector stopped at a record of a newer schema than
 * this build's: recorded with the projection, so that every reader of it
 * (not only the process that met the record) fails closed. */
struct ctkn_store_pause {
  int32_t partition; /* -1: none */
  int64_t offset;    /* the record it stopped at */
  int schema;        /* that record's schema version */
};
/* A pause of every partition (a keyring enables an unreadable schema). */
#define CTKN_STORE_PAUSE_ALL (-1)
/* Record that partition (or CTKN_STORE_PAUSE_ALL) stopped at offset.
 * Errors: the store's. */
int ctkn_store_set_pause(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                         int schema, struct ctkn_err *err);
/* Forget partition's pause once its next offset has passed the record
 * (a newer build applied it); a no-op otherwise. Errors: the store's. */
int ctkn_store_clear_pause(ctkn_store_txn *txn, int32_t partition, int64_t next,
                           struct ctkn_err *err);
/* Whether partition is paused (or every partition is). Errors: the
 * store's. */
int ctkn_store_is_paused(ctkn_store_txn *txn, int32_t partition, bool *paused,
                         struct ctkn_err *err);
/* Whether partition (or CTKN_STORE_PAUSE_ALL, alone) is paused, and then
 * its pause into *out. Errors: the store's. */
int ctkn_store_get_pause(ctkn_store_txn *txn, int32_t partition, bool *paused,
                         struct ctkn_store_pause *out, struct ctkn_err *err);
/* The first paused partition into *out (partition -1: none; a pause of
 * every partition is not reported here: ctkn_store_get_pause()). Errors:
 * the store's. */
int ctkn_store_first_pause(ctkn_store_txn *txn, struct ctkn_store_pause *out,
                           struct ctkn_err *err);

/*
 * SHA-256 over a canonical serialisation of the replicated tables (tokens,
 * token index, history, rejected, quarantine, idempotency, offsets), in
 * that order, every key and value length-prefixed. Two projections of the
 * same log prefix have the same digest. In a write txn, writes its batch
 * out first. Errors: CTKN_ESTORE, CTKN_ENOMEM.
 */
int ctkn_store_digest(ctkn_store_txn *txn, uint8_t out[CTKN_HASH_LEN],
                      struct ctkn_err *err);

#endif /* CTKN_STORE_H */
