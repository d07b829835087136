/*
 * txn.c - transactions: begin, commit (writing the batch out first),
 * abort, and the writeback of unsynced commits.
 *
 * Every txn holds the store's swap lock shared from begin to its end, so
 * ctkn_store_refresh() never swaps the environment under it.
 */
#define _GNU_SOURCE /* sync_file_range() */
#include <fcntl.h>
#include <stdlib.h>

#include "store/store_int.h"

int ctkn_store_begin(ctkn_store *st, bool write, ctkn_store_txn **out,
                     struct ctkn_err *err)
{
  ctkn_store_txn *t;
  int rc;

  *out = NULL;
  if (write && st->read_only)
    return ctkn__err(err, CTKN_ESTORE,
                     "write transaction on a store opened read-only");
  t = malloc(sizeof(*t));
  if (t == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "begin: out of memory");
  t->st = st;
  t->write = write;
  t->batch = NULL;
  pthread_rwlock_rdlock(&st->swap);
  rc = mdb_txn_begin(st->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
  if (rc != MDB_SUCCESS) {
    pthread_rwlock_unlock(&st->swap);
    free(t);
    if (rc == MDB_MAP_RESIZED)
      return ctkn__err(err, CTKN_ESTORE,
                       "begin: another process grew the map; reopen the "
                       "store");
    return ctkn__store_lmdb_err(err, rc, "begin");
  }
  *out = t;
  return CTKN_OK;
}

/*
 * Unsynced commits leave their pages dirty in the page cache, and a catch-up
 * of a million events leaves most of a gigabyte for the final flush, which
 * the catch-up then waits for. So every WRITEBACK_COMMITS commits start
 * the writeback of what is dirty (sync_file_range without waiting): the
 * disk works while the catch-up goes on, and the final flush finds little
 * left. Durability is unchanged: nothing is promised before that flush.
 */
#define WRITEBACK_COMMITS 8

static void writeback(ctkn_store *st)
{
  int fd;

  if (st->opts.no_sync || ++st->unsynced_commits < WRITEBACK_COMMITS)
    return;
  st->unsynced_commits = 0;
  if (mdb_env_get_fd(st->env, &fd) == MDB_SUCCESS)
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

int ctkn_store_commit(ctkn_store_txn *t, struct ctkn_err *err)
{
  int rc;

  if (t->batch != NULL) {
    rc = ctkn__store_batch_flush(t, err);
    ctkn__store_batch_free(t->batch);
    t->batch = NULL;
    if (rc != CTKN_OK) {
      ctkn_store_abort(t);
      return rc;
    }
  }
  ctkn_store *st = t->st;
  rc = mdb_txn_commit(t->txn); /* frees the MDB_txn also on failure */
  if (rc == MDB_SUCCESS && t->write && st->unsynced > 0)
    writeback(st);
  pthread_rwlock_unlock(&st->swap);
  free(t);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_write_err(st, err, rc, "commit");
}

void ctkn_store_abort(ctkn_store_txn *t)
{
  if (t == NULL)
    return;
  ctkn__store_batch_free(t->batch);
  mdb_txn_abort(t->txn);
  pthread_rwlock_unlock(&t->st->swap);
  free(t);
}
