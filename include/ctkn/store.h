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
 * never block. Every read and write happens inside a ctkn_store_txn.
 *
 * Lifetime: ctkn_store_open() -> ctkn_store_begin() -> get/put ->
 *           ctkn_store_commit() or ctkn_store_abort() -> ctkn_store_close().
 * Errors:   0 or negative CTKN_E*: CTKN_ENOTFOUND for a missing key,
 *           CTKN_ESTORE for LMDB failures (err->msg has mdb_strerror),
 *           CTKN_EFORMAT for an unknown layout, CTKN_ECONFLICT for a
 *           projection bound to another topic or environment.
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
 * Open (creating when missing, unless read_only) the projection in dir.
 * Clears stale reader slots (mdb_reader_check) and opens every table in a
 * write transaction that commits. On success *out is a new handle: caller
 * owns it, release with ctkn_store_close(). On failure *out is NULL.
 */
int ctkn_store_open(ctkn_store **out, const char *dir,
                    const struct ctkn_store_opts *opts, struct ctkn_err *err);

/* Close and free. NULL is a no-op. All txns must be finished first. */
void ctkn_store_close(ctkn_store *st);

/*
 * If dir now holds another projection than the one st has open (`ctkn
 * rebuild` swapped a new one in), reopen st on it in place and set
 * *reopened; pointers to st stay valid. The caller must hold no txn; while
 * another thread holds one, nothing happens and a later call tries again,
 * so threads may share st with one of them refreshing. A stat() when
 * nothing changed.
 */
int ctkn_store_refresh(ctkn_store *st, bool *reopened, struct ctkn_err *err);

/* Remove the projection in dir (its LMDB files, then dir if that leaves
 * it empty), if there. Nothing may have it open. */
void ctkn_store_remove(const char *dir);

/* Flush to disk a store opened with no_sync. */
int ctkn_store_sync(ctkn_store *st, struct ctkn_err *err);

/*
 * A long catch-up's commits: between begin and end, commits through this
 * handle do not wait for the disk (MDB_NOSYNC); end flushes once. A process
 * that dies meanwhile loses nothing (its commits are in the page cache); a
 * system crash may damage the projection, so begin first makes a marker
 * durable, end removes it after the flush, and ctkn_store_open() refuses a
 * projection whose marker a crashed boot left behind (CTKN_ESTORE). Nests;
 * a no-op on a no_sync store. ctkn_store_close() ends it too.
 */
int ctkn_store_unsynced_begin(ctkn_store *st, struct ctkn_err *err);
int ctkn_store_unsynced_end(ctkn_store *st, struct ctkn_err *err);

/* Exchange two directories atomically (renameat2 RENAME_EXCHANGE): a
 * reader that opens either path sees one whole projection or the other. */
int ctkn_store_exchange(const char *a, const char *b, struct ctkn_err *err);

/* ---- metadata ------------------------------------------------------- */

/*
 * Bind the projection to a topic and environment: recorded the first time,
 * compared afterwards (CTKN_ECONFLICT naming both values on a mismatch).
 */
int ctkn_store_bind(ctkn_store *st, const char *topic, ctkn_env env,
                    struct ctkn_err *err);

/*
 * Mark the projection as a frozen replay of the log as of as_of_us
 * (recorded as RFC 3339 in the metadata). Nothing advances a frozen
 * projection afterwards (ctkn_projector_open() refuses it).
 */
int ctkn_store_freeze(ctkn_store *st, int64_t as_of_us, struct ctkn_err *err);

/* The instant a frozen projection stands at, or "" when it is live. */
int ctkn_store_frozen(ctkn_store *st, char as_of[CTKN_TIME_BUF],
                      struct ctkn_err *err);

/* ---- transactions ---------------------------------------------------- */

/* Begin a transaction; write = false for a read-only snapshot. On success
 * *out is a new txn: caller owns it, finish with commit or abort. */
int ctkn_store_begin(ctkn_store *st, bool write, ctkn_store_txn **out,
                     struct ctkn_err *err);
/*
 * Buffer this write txn's token records and index entries until commit,
 * which writes them sorted (appending past each table's last key): a
 * token put several times is written once. Gets and lookups through txn
 * see them; every rule of ctkn_store_put() holds as without. For a txn
 * that puts many tokens (a projector batch).
 *
 * With guess, ctkn_store_get_new() takes an ID the batch has not seen as
 * absent without looking it up, and a put of that token takes its token
 * string as free likewise; ctkn_store_batch_write() then checks every
 * guess as it writes. A wrong guess voids the txn: abort it and apply the
 * same writes again without guessing.
 */
int ctkn_store_batch(ctkn_store_txn *txn, bool guess, struct ctkn_err *err);
/* ctkn_store_get() of an ID that is most likely new (a create's); see
 * ctkn_store_batch(). Outside a guessing batch, ctkn_store_get(). */
int ctkn_store_get_new(ctkn_store_txn *txn, const char *id,
                       struct ctkn_record *out, struct ctkn_err *err);
/* Write the batch out now (commit does it otherwise). *wrong: a guess was
 * wrong (CTKN_ECONFLICT); abort txn and go again without guessing. */
int ctkn_store_batch_write(ctkn_store_txn *txn, bool *wrong,
                           struct ctkn_err *err);
/* Commit and free the txn (also on failure). */
int ctkn_store_commit(ctkn_store_txn *txn, struct ctkn_err *err);
/* Abort and free. NULL is a no-op. */
void ctkn_store_abort(ctkn_store_txn *txn);

/* ---- reads ----------------------------------------------------------- */

int ctkn_store_get(ctkn_store_txn *txn, const char *id, struct ctkn_record *out,
                   struct ctkn_err *err);
int ctkn_store_get_by_token(ctkn_store_txn *txn, const char *token,
                            struct ctkn_record *out, struct ctkn_err *err);
/* Verify's lookup: the ID and status of the token with this token string,
 * from the token index alone (one B-tree lookup). */
int ctkn_store_lookup_token(ctkn_store_txn *txn, const char *token,
                            char id[CTKN_ID_BUF], ctkn_status *status,
                            struct ctkn_err *err);
/* The token ID and request hash stored for an idempotency key. */
int ctkn_store_get_idem(ctkn_store_txn *txn, const char *key,
                        char id[CTKN_ID_BUF], uint8_t hash[CTKN_HASH_LEN],
                        struct ctkn_err *err);
/* The reason recorded for the event rejected at (partition, offset);
 * CTKN_ENOTFOUND when that record was not rejected. */
int ctkn_store_get_rejected(ctkn_store_txn *txn, int32_t partition,
                            int64_t offset, char *reason, size_t reasonsz,
                            struct ctkn_err *err);
/* The next offset to consume on partition; 0 when never consumed. */
int64_t ctkn_store_offset(ctkn_store_txn *txn, int32_t partition);
/* Number of tokens, for list's estimated_total. */
int64_t ctkn_store_count(ctkn_store_txn *txn);
/* Tokens whose status is in status_mask (bit 1 << status), from a count
 * kept beside the tables: what a filtered list's estimated_total says. */
int64_t ctkn_store_count_status(ctkn_store_txn *txn, unsigned status_mask);

/* ---- writes (write txn only) ----------------------------------------- */

/* Store rec under its ID; keep the token-string index in step. */
int ctkn_store_put(ctkn_store_txn *txn, const struct ctkn_record *rec,
                   struct ctkn_err *err);
int ctkn_store_put_history(ctkn_store_txn *txn, const char *id,
                           uint64_t version, int32_t partition, int64_t offset,
                           const void *value, size_t len, struct ctkn_err *err);
/* One history entry for ctkn_store_put_history_batch(). */
struct ctkn_store_history_put {
  char id[CTKN_ID_BUF];
  uint64_t version;
  int32_t partition;
  int64_t offset;
  const void *value; /* borrowed until the batch call returns */
  size_t len;
};

/*
 * ctkn_store_put_history() for n entries at once, with the same result:
 * sorts them (in place) and appends those past the table's last key
 * (MDB_APPEND), which fills pages instead of splitting them. A batch's
 * history is time-ordered within a partition but interleaved across them.
 */
int ctkn_store_put_history_batch(ctkn_store_txn *txn,
                                 struct ctkn_store_history_put *e, size_t n,
                                 struct ctkn_err *err);
int ctkn_store_put_rejected(ctkn_store_txn *txn, int32_t partition,
                            int64_t offset, const char *event_id,
                            const char *token_id, const char *reason,
                            struct ctkn_err *err);
int ctkn_store_put_quarantine(ctkn_store_txn *txn, int32_t partition,
                              int64_t offset, const char *reason,
                              const void *key, size_t klen, const void *value,
                              size_t vlen, struct ctkn_err *err);
int ctkn_store_put_idem(ctkn_store_txn *txn, const char *key, const char *id,
                        const uint8_t hash[CTKN_HASH_LEN],
                        struct ctkn_err *err);
int ctkn_store_set_offset(ctkn_store_txn *txn, int32_t partition, int64_t next,
                          struct ctkn_err *err);

/*
 * Write a consistent, compacted copy of the projection (every table, the
 * offsets and the metadata) into dir, which is created when missing and
 * must not hold a projection yet (CTKN_ECONFLICT). Writers are not
 * stopped: the copy is one read transaction's view. A projector started on
 * the copy resumes from its offsets.
 */
int ctkn_store_snapshot(ctkn_store *st, const char *dir, struct ctkn_err *err);

/* ---- iteration ------------------------------------------------------- */

/*
 * One page of tokens in ID order (ascending, or descending when desc),
 * starting strictly after `after` (NULL or "": from the start), keeping
 * only statuses whose bit (1 << status) is in status_mask. Writes up to
 * limit records to out and their number to *n; *has_more tells whether
 * another matching token follows.
 */
int ctkn_store_list(ctkn_store_txn *txn, const char *after, bool desc,
                    unsigned status_mask, size_t limit, struct ctkn_record *out,
                    size_t *n, bool *has_more, struct ctkn_err *err);

/* Called for each stored item; a non-zero return stops the walk and is
 * returned by the walker. Pointers are valid until the callback returns. */
typedef int (*ctkn_store_history_cb)(void *arg, uint64_t version,
                                     int32_t partition, int64_t offset,
                                     const void *value, size_t len);
typedef int (*ctkn_store_coord_cb)(void *arg, int32_t partition, int64_t offset,
                                   const char *reason, const void *key,
                                   size_t klen, const void *value, size_t vlen);
typedef int (*ctkn_store_offset_cb)(void *arg, int32_t partition, int64_t next);

/* The token's events, oldest first. CTKN_ENOTFOUND when it has none. */
int ctkn_store_history(ctkn_store_txn *txn, const char *id,
                       ctkn_store_history_cb cb, void *arg,
                       struct ctkn_err *err);
/* Quarantined records in (partition, offset) order. */
int ctkn_store_quarantine(ctkn_store_txn *txn, ctkn_store_coord_cb cb,
                          void *arg, struct ctkn_err *err);
/* Rejected events in (partition, offset) order; key is the token ID,
 * value the event ID. */
int ctkn_store_rejected(ctkn_store_txn *txn, ctkn_store_coord_cb cb, void *arg,
                        struct ctkn_err *err);
/* Stored partition offsets in partition order. */
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
 * are not there. CTKN_ENOTFOUND when there is none (yet). Backed by the
 * positions table, which every history write keeps in step.
 */
int ctkn_store_event_at(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                        bool exact, struct ctkn_store_event *out,
                        struct ctkn_err *err);

/* ---- side tables: settings and webhook delivery ------------------------- */

/*
 * Tables whose keys and values other modules define (settings.h,
 * notify.h); keys compare as bytes. Replicated: destinations, their start
 * offsets, the settings topic's offsets and the fate of each settings
 * record. Local to one process's projection: the notifier's delivery
 * state. None is covered by the digest. positions is read-only here.
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
  CTKN_TABLE_QUEUE             /* ntf ID -> "": replays to send */
};

/* Values are borrowed until the txn ends or writes to the table. */
int ctkn_store_kv_get(ctkn_store_txn *txn, enum ctkn_store_table table,
                      const void *key, size_t klen, const void **val,
                      size_t *vlen, struct ctkn_err *err);
int ctkn_store_kv_put(ctkn_store_txn *txn, enum ctkn_store_table table,
                      const void *key, size_t klen, const void *val,
                      size_t vlen, struct ctkn_err *err);
int ctkn_store_kv_del(ctkn_store_txn *txn, enum ctkn_store_table table,
                      const void *key, size_t klen, struct ctkn_err *err);
/* A non-zero return stops a walk and is returned by it. */
typedef int (*ctkn_store_kv_cb)(void *arg, const void *key, size_t klen,
                                const void *val, size_t vlen);
/* Entries with keys >= from (flen 0: all) in key order, while their first
 * plen bytes equal from's. */
int ctkn_store_kv_walk(ctkn_store_txn *txn, enum ctkn_store_table table,
                       const void *from, size_t flen, size_t plen,
                       ctkn_store_kv_cb cb, void *arg, struct ctkn_err *err);

/* Copy the process-local tables (a notifier's delivery state) from one
 * projection into another, as `ctkn rebuild` does before its swap. */
int ctkn_store_copy_local(ctkn_store_txn *from, ctkn_store_txn *to,
                          struct ctkn_err *err);

/*
 * SHA-256 over a canonical serialisation of the replicated tables (tokens,
 * token index, history, rejected, quarantine, idempotency, offsets), in
 * that order, every key and value length-prefixed. Two projections of the
 * same log prefix have the same digest.
 */
int ctkn_store_digest(ctkn_store_txn *txn, uint8_t out[CTKN_HASH_LEN],
                      struct ctkn_err *err);

#endif /* CTKN_STORE_H */
