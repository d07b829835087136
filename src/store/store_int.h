/*
 * store_int.h - what the files of src/store/ share: the handles, the
 * tables and the helpers. Private to the store: nothing outside
 * src/store/ includes it, and only the files there include <lmdb.h>.
 *
 * The store's files, by what changes together:
 *
 *   env.c       the environment and the format: open, close, refresh,
 *               remove, sync, exchange; opening the tables; metadata
 *   unsynced.c  a long catch-up's unsynced commits and their markers
 *   txn.c       transactions: begin, commit, abort, writeback
 *   tokens.c    token reads: get, lookups, idempotency, rejected,
 *               offsets, counts, list
 *   batch.c     the write batch: the one way into tokens and token_index
 *   history.c   history and positions: writes, the walk, event_at
 *   coords.c    rejected, quarantine, idempotency and offset writes and
 *               the coordinate walks
 *   digest.c    the digest
 *   kv.c        the side tables, snapshots and copying local tables
 *
 * The tables and their layouts are described at the top of env.c; the
 * small values' msgpack layouts at the top of codec/store_values.c.
 */
#ifndef CTKN_STORE_INT_H
#define CTKN_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <lmdb.h>
#include <pthread.h>

#include "codec/store_values.h"
#include "ctkn/store.h"
#include "internal.h"
#include "store/shared.h"

/* The named DBIs, in the order they are opened. */
enum {
  T_META,
  T_TOKENS,
  T_INDEX,
  T_HISTORY,
  T_REJECTED,
  T_QUARANTINE,
  T_OFFSETS,
  T_IDEM,
  /* Tables added after format 1's first release: created when missing by
   * a writer (positions backfilled from history), read as empty by a
   * reader that finds them absent. None is in the digest. */
  T_POSITIONS,
  T_DEST,
  T_DEST_START,
  T_SET_OFFSETS,
  T_SET_LOG,
  T_NTF,
  T_ATTEMPTS,
  T_CURSORS,
  T_QUEUE,
  T_TRUST,
  T_AKEYS,
  T_AKEY_HASH,
  T_EVENTS,
  T_DLV,
  T_DLV_ATT,
  T_DLV_OFFSETS,
  T_DLV_LOG,
  T_SEVENTS,
  T_COUNT
};
#define T_FIRST_LATER T_POSITIONS

/* Each table's DBI name, by T_*. */
extern const char *const ctkn__store_table_names[T_COUNT];

#define HIST_KEY_LEN    (CTKN_ID_LEN + 8)
#define INDEX_VALUE_LEN (CTKN_ID_LEN + 1) /* token ID, status byte */
#define COORD_KEY_LEN   (4 + 8)
#define POS_VALUE_LEN   (8 + HIST_KEY_LEN) /* offset, token ID, version */
#define EVT_KEY_LEN     (CTKN_EVT_ID_LEN + HIST_KEY_LEN) /* event ID, hkey */
#define EVT_VALUE_LEN   (1 + 8) /* type, occurred_at (u64 BE) */
#define SEVT_TAIL_LEN   (4 + 8) /* settings partition, offset (BE) */
#define SEVT_KEY_LEN    (CTKN_EVT_ID_LEN + SEVT_TAIL_LEN)

struct ctkn_store {
  MDB_env *env;
  /* Opened once, in ctkn_store_open() (or swapped in whole by
   * ctkn_store_refresh() under the swap lock), and only read afterwards:
   * that is what lets threads share a ctkn_store. */
  MDB_dbi dbi[T_COUNT];
  bool absent[T_COUNT]; /* a later table a read-only open did not find */
  bool read_only;
  char *dir;                   /* for ctkn_store_refresh() */
  struct ctkn_store_opts opts; /* as opened */
  dev_t dev;                   /* the data file this env has open */
  ino_t ino;
  /* Held shared by every txn, exclusively by ctkn_store_refresh(), so a
   * process whose threads share st can follow a rebuild safely. */
  pthread_rwlock_t swap;
  int unsynced;              /* ctkn__store_unsynced_begin() depth */
  unsigned unsynced_commits; /* since the last writeback started */
  int unsynced_fd;           /* our marker, flock'ed while it is there */
};

struct ctkn__store_batch;

struct ctkn_store_txn {
  ctkn_store *st;
  MDB_txn *txn;
  bool write;
  /* The pending token records and index entries (batch.c). NULL until a
   * write txn's first put (or ctkn__store_batch()); only batch.c writes
   * through it, and every read of those two tables looks here first. */
  struct ctkn__store_batch *batch;
};

/* ---- errors and checks (env.c) ----------------------------------------- */

/* An LMDB failure as CTKN_ESTORE (CTKN_ENOMEM for ENOMEM, CTKN_EMAPFULL
 * for MDB_MAP_FULL), naming what failed; a full map says how to raise it. */
int ctkn__store_lmdb_err(struct ctkn_err *err, int rc, const char *what);
/* A failed commit or sync of st: ctkn__store_space_err() (shared.h) with
 * the free space of st's file system, so a full disk says so. */
int ctkn__store_write_err(const ctkn_store *st, struct ctkn_err *err, int rc,
                          const char *what);
/* The same for the directory dir, before a store has it. */
int ctkn__store_dir_err(const char *dir, struct ctkn_err *err, int rc,
                        const char *what);
/* CTKN_ESTORE "corrupt value in <table>". */
int ctkn__store_corrupt(struct ctkn_err *err, int table);
/* CTKN_EINVAL naming the field unless partition and offset are in range. */
int ctkn__store_check_coord(int32_t partition, int64_t offset,
                            struct ctkn_err *err);

/* true when s is a string of exactly n bytes. */
static inline bool ctkn__store_has_len(const char *s, size_t n)
{
  return s != NULL && strnlen(s, n + 1) == n;
}

static inline bool ctkn__store_partition_ok(int32_t partition)
{
  return partition >= 0 && partition < CTKN_STORE_MAX_PARTITIONS;
}

/* rejected's and quarantine's key: partition (u32 BE), offset (u64 BE). */
static inline void ctkn__store_coord_key(uint8_t key[COORD_KEY_LEN],
                                         int32_t partition, int64_t offset)
{
  ctkn__put_be32(key, (uint32_t)partition);
  ctkn__put_be64(key + 4, (uint64_t)offset);
}

/* An idempotency key has 1 to CTKN_IDEM_KEY_MAX bytes. */
static inline bool ctkn__store_idem_key_ok(const char *key)
{
  size_t n = key == NULL ? 0 : strnlen(key, CTKN_IDEM_KEY_MAX + 1);

  return n >= 1 && n <= CTKN_IDEM_KEY_MAX;
}

static inline int ctkn__store_need_write(const ctkn_store_txn *t,
                                         struct ctkn_err *err)
{
  if (!t->write)
    return ctkn__err(err, CTKN_EINTERNAL, "write in a read transaction");
  return CTKN_OK;
}

static inline int ctkn__store_cursor(ctkn_store_txn *t, int table,
                                     MDB_cursor **c, struct ctkn_err *err)
{
  int rc = mdb_cursor_open(t->txn, t->st->dbi[table], c);

  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "mdb_cursor_open");
}

/* ---- the revoked count in meta (env.c) ---------------------------------- */

extern const MDB_val ctkn__store_revoked_key;
/* Count the revoked tokens the slow way: every token_index entry. An LMDB
 * code; *n is 0 on failure. */
int ctkn__store_scan_revoked(MDB_txn *txn, MDB_dbi index, int64_t *n);
/* Store the count (an LMDB code). */
int ctkn__store_put_revoked(MDB_txn *txn, MDB_dbi meta, int64_t n);

/* ---- the quarantine counts in meta (coords.c) --------------------------- */

/* meta: "quarantined" -> "1" once the counts hold; "quarantined" +
 * partition (u32 BE) -> how many records of that partition are
 * quarantined (u64 BE), moved in the write txn that puts the record. A
 * writer's open counts a projection from before them once (env.c). An
 * LMDB code. */
int ctkn__store_count_quarantine(MDB_txn *txn, MDB_dbi meta, MDB_dbi q);

/* ---- tokens (tokens.c) ------------------------------------------------- */

/* Decode a tokens value that must belong to id (31 bytes). */
int ctkn__store_decode_record(const MDB_val *v, const char *id,
                              struct ctkn_record *out, struct ctkn_err *err);

/* ---- the write batch (batch.c) ----------------------------------------- */

/* A token's record through t's batch (guess: see ctkn__store_batch()). */
int ctkn__store_batch_get(ctkn_store_txn *t, const char *id, bool guess,
                          struct ctkn_record *out, struct ctkn_err *err);
/* token's index value as the batch sees it: MDB_SUCCESS (*v valid until the
 * batch changes), MDB_NOTFOUND, or CTKN__STORE_UNSEEN when the batch has
 * not seen it (ask the table). */
#define CTKN__STORE_UNSEEN (-1) /* not an LMDB code */
int ctkn__store_batch_lookup(ctkn_store_txn *t, const char *token, MDB_val *v);
/* Before a read that walks or counts the token tables: write t's batch
 * out, if it has one. */
int ctkn__store_batch_sync(ctkn_store_txn *t, struct ctkn_err *err);
/* Write the batch at commit; CTKN_ECONFLICT when a guess was wrong. */
int ctkn__store_batch_flush(ctkn_store_txn *t, struct ctkn_err *err);
/* Free the batch. NULL is a no-op. */
void ctkn__store_batch_free(struct ctkn__store_batch *b);

/* ---- history and positions (history.c) --------------------------------- */

/* Put one positions entry through c (an LMDB code); see history.c. */
int ctkn__store_put_pos(MDB_cursor *c, int32_t partition, int64_t offset,
                        const uint8_t hkey[HIST_KEY_LEN]);

/* Put a packed value under k into table, reserving its exact size. */
int ctkn__store_put_value(ctkn_store_txn *t, int table, MDB_val *k,
                          const struct ctkn__sv_gather *g, unsigned flags,
                          struct ctkn_err *err);

/* ---- the events index (events.c) -------------------------------------- */

/* The events entries of n history entries (any order; their event IDs
 * decoded from the value where not given). */
int ctkn__store_put_events(ctkn_store_txn *t,
                           const struct ctkn_store_history_put *e, size_t n,
                           struct ctkn_err *err);
/* In the open's write txn: fill the index from history when its count is
 * not history's (a projection from before it, or advanced by a build
 * without it). */
int ctkn__store_check_events(MDB_txn *txn, ctkn_store *st,
                             struct ctkn_err *err);

/* ---- unsynced commits (unsynced.c) ------------------------------------- */

/* Refuse or finish the markers a crashed or dead catch-up left in dir. */
int ctkn__store_check_unsynced(ctkn_store *st, const char *dir,
                               struct ctkn_err *err);

#endif /* CTKN_STORE_INT_H */
