/*
 * shared.h - what the store offers other modules of ctkn (the projector,
 * the rebuild) but not the library's users: the write batch's guessing,
 * unsynced catch-ups, and the copy of process-local tables. Not
 * installed; lmdb.h stays in store_int.h.
 */
#ifndef CTKN_STORE_SHARED_H
#define CTKN_STORE_SHARED_H

#include <stdbool.h>

#include "ctkn/error.h"
#include "ctkn/store.h"

/* ---- a write's failure, in words ---------------------------------------- */

/* Below this many free bytes, an I/O error from a write counts as a full
 * disk: LMDB reports a short write (which a full file system gives) as
 * EIO, and the write that fell short used up what was left. */
#define CTKN__STORE_FULL_BELOW (4 * 1024 * 1024)

/*
 * A failed write or sync of the projection in dir (NULL: unknown) as
 * CTKN_ESTORE, naming what failed: ENOSPC, EDQUOT, and EIO while avail
 * (the file system's free bytes for this process, -1 when unknown) is
 * below CTKN__STORE_FULL_BELOW say "no space left on device" and the
 * file system; EFBIG says which file-size limit; anything else is
 * ctkn__store_lmdb_err()'s (store_int.h). Pure: tests call it with any
 * avail; the store calls it with statvfs()'s.
 */
int ctkn__store_space_err(struct ctkn_err *err, int rc, const char *what,
                          const char *dir, long long avail);

/* mkdir -p with mode 0700 for the directories it creates (the store, a
 * replay's directory). */
int ctkn__store_mkdir_p(const char *dir, struct ctkn_err *err);

/* ---- the store, for the projector (store/) ------------------------------ */

/*
 * A write txn's token puts are buffered in its batch until commit (the
 * batch is the only way into tokens and token_index; a txn's first
 * ctkn_store_put() creates it). Call this before the txn's first put to
 * create it with guess: then ctkn__store_get_new() takes an ID the batch
 * has not seen as absent without looking it up, and a put of that token
 * takes its token string as free likewise; ctkn__store_batch_write()
 * checks every guess as it writes. A wrong guess voids the txn: abort it
 * and apply the same writes again without guessing. On a txn that has a
 * batch already, nothing changes. Errors: CTKN_EINTERNAL (a read txn),
 * CTKN_ENOMEM, CTKN_ESTORE.
 */
int ctkn__store_batch(struct ctkn_store_txn *txn, bool guess,
                      struct ctkn_err *err);
/* ctkn_store_get() of an ID that is most likely new (a create's); see
 * ctkn__store_batch(). Outside a guessing batch, ctkn_store_get(). */
int ctkn__store_get_new(struct ctkn_store_txn *txn, const char *id,
                        struct ctkn_record *out, struct ctkn_err *err);
/* Write the batch out now (commit does it otherwise); a txn without one
 * has nothing to write. *wrong: a guess was wrong (CTKN_ECONFLICT); abort
 * txn and go again without guessing. Errors: CTKN_ECONFLICT, CTKN_ENOMEM,
 * CTKN_ESTORE. */
int ctkn__store_batch_write(struct ctkn_store_txn *txn, bool *wrong,
                            struct ctkn_err *err);

/*
 * A long catch-up's commits: between begin and end, commits through this
 * handle do not wait for the disk (MDB_NOSYNC); end flushes once. A process
 * that dies meanwhile loses nothing (its commits are in the page cache); a
 * system crash may damage the projection, so begin first makes a marker
 * durable, end removes it after the flush, and ctkn_store_open() refuses a
 * projection whose marker a crashed boot left behind (CTKN_ESTORE). Nests;
 * a no-op on a no_sync store. ctkn_store_close() ends it too. Errors:
 * CTKN_EINTERNAL (a read-only store), CTKN_ESTORE (the marker or the
 * flush failed; after a failed flush the marker stays).
 */
int ctkn__store_unsynced_begin(struct ctkn_store *st, struct ctkn_err *err);
int ctkn__store_unsynced_end(struct ctkn_store *st, struct ctkn_err *err);

/* The ID of the environment's last committed write transaction: it moves
 * with every commit that wrote something, by any process. 0 when LMDB
 * cannot say. */
uint64_t ctkn__store_last_commit(struct ctkn_store *st);
/* Whether a commit leaves its meta page to the next commit's sync
 * (MDB_NOMETASYNC: one disk flush per commit, not two); true for every
 * writer. */
bool ctkn__store_meta_deferred(struct ctkn_store *st);

/* Copy the process-local tables (a notifier's delivery state) from one
 * projection into another, as `ctkn rebuild` does before its swap. to is
 * a write txn. Errors: CTKN_EINTERNAL (to is a read txn), CTKN_ESTORE. */
int ctkn__store_copy_local(struct ctkn_store_txn *from,
                           struct ctkn_store_txn *to, struct ctkn_err *err);

/* ctkn_store_put() of a record given in parts (the one write path, the
 * same rules), so that the projector puts the token of a decoded event
 * without copying it into a struct ctkn_record. Errors: as
 * ctkn_store_put(). */
int ctkn__store_put_token(struct ctkn_store_txn *txn,
                          const struct ctkn_token *tok, uint64_t version,
                          int32_t partition, int64_t offset,
                          struct ctkn_err *err);

#endif /* CTKN_STORE_SHARED_H */
