/*
 * env.c - the projection's LMDB environment (format 1): opening it and its
 * tables, checking the format, following a rebuild's swap, and metadata.
 *
 * Tables (named DBIs), all keys compared as bytes:
 *
 *   meta         name                         -> "format" = "1" (decimal
 *                                                 ASCII), "topic",
 *                                                 "environment", "frozen",
 *                                                 "revoked" (u64 BE: how
 *                                                 many tokens are revoked,
 *                                                 for list counts),
 *                                                 "quarantined" (+ partition,
 *                                                 u32 BE: how many records
 *                                                 are quarantined, u64 BE;
 *                                                 coords.c)
 *   tokens       token ID (31 bytes)          -> ctkn_record_encode()
 *   token_index  token string (32 bytes)      -> token ID + status byte
 *   history      token ID + version (u64 BE)  -> [partition, offset,
 *                                                 bin event]
 *   rejected     partition (u32 BE) +
 *                offset (u64 BE)              -> [token ID | nil,
 *                                                 event ID | nil, reason]
 *   quarantine   partition + offset           -> [reason, bin key | nil,
 *                                                 bin value | nil]
 *   offsets      partition (u32 BE)           -> next offset (u64 BE)
 *   idempotency  idempotency key              -> [token ID, bin hash]
 *   positions    partition (u32 BE), DUPSORT  -> offset (u64 BE) + token ID
 *                                                 + version (u64 BE), one
 *                                                 duplicate per applied event
 *   events       event ID (30 bytes) + token
 *                ID + version (u64 BE)        -> type (1 byte) + occurred_at
 *                                                 (u64 BE µs), one per
 *                                                 history entry (events.c)
 *
 * and the side tables of settings.c and notify.c (ctkn_store_kv_*, kv.c).
 * The tables from positions on are not in the digest (digest.c).
 *
 * Big-endian numbers make LMDB's byte order the numeric order, so a
 * token's history comes out by version and the coordinates by (partition,
 * offset). The bracketed values are msgpack arrays, packed and read by
 * codec/store_values.c; the record is codec/record.c's.
 *
 * Handles: the environment is opened with MDB_NOTLS, so a read txn is not
 * tied to a thread's reader slot and one thread may hold several. The DBI
 * handles are opened once, in ctkn_store_open(), and only read afterwards,
 * which is what lets threads share a ctkn_store.
 */
#define _GNU_SOURCE /* renameat2() */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#include "store/store_int.h"

#define MAX_DBS        32
#define MAX_READERS    254
#define NOT_PROJECTION "not a ctkn projection (run ctkn project first)"

const char *const ctkn__store_table_names[T_COUNT] = {"meta",
                                                      "tokens",
                                                      "token_index",
                                                      "history",
                                                      "rejected",
                                                      "quarantine",
                                                      "offsets",
                                                      "idempotency",
                                                      "positions",
                                                      "destinations",
                                                      "destination_start",
                                                      "settings_offsets",
                                                      "settings_log",
                                                      "notifications",
                                                      "notification_attempts",
                                                      "notify_cursors",
                                                      "notify_queue",
                                                      "trust",
                                                      "api_keys",
                                                      "api_key_hashes",
                                                      "events",
                                                      "deliveries",
                                                      "delivery_attempts",
                                                      "delivery_offsets",
                                                      "delivery_log",
                                                      "setting_events"};

const MDB_val ctkn__store_revoked_key = {7, "revoked"};

/* ---- errors and small helpers --------------------------------------- */

int ctkn__store_lmdb_err(struct ctkn_err *err, int rc, const char *what)
{
  if (rc == MDB_MAP_FULL)
    return ctkn__err(err, CTKN_EMAPFULL, "%s: map full: raise --map-size",
                     what);
  if (rc == ENOMEM)
    return ctkn__err(err, CTKN_ENOMEM, "%s: %s", what, mdb_strerror(rc));
  return ctkn__err(err, CTKN_ESTORE, "%s: %s", what, mdb_strerror(rc));
}

/* n as --map-size spells it: the largest K/M/G/T unit dividing it. */
static void size_text(char *buf, size_t size, size_t n)
{
  static const char units[] = "KMGT";
  size_t v = n;
  int u = -1;

  while (u < 3 && v >= 1024 && v % 1024 == 0) {
    v /= 1024;
    u++;
  }
  if (u < 0)
    snprintf(buf, size, "%zu", v);
  else
    snprintf(buf, size, "%zu%c", v, units[u]);
}

bool ctkn__store_meta_deferred(ctkn_store *st)
{
  unsigned flags = 0;

  return st != NULL && mdb_env_get_flags(st->env, &flags) == MDB_SUCCESS &&
         (flags & MDB_NOMETASYNC) != 0;
}

uint64_t ctkn__store_last_commit(ctkn_store *st)
{
  MDB_envinfo info;

  if (st == NULL || mdb_env_info(st->env, &info) != MDB_SUCCESS)
    return 0;
  return (uint64_t)info.me_last_txnid;
}

int ctkn_store_map_full(ctkn_store *st, struct ctkn_err *err)
{
  MDB_envinfo info;
  char now[32], twice[32];

  if (st == NULL || mdb_env_info(st->env, &info) != MDB_SUCCESS)
    return ctkn__err(err, CTKN_EMAPFULL,
                     "the projection's LMDB map is full: restart with a "
                     "larger --map-size");
  size_text(now, sizeof(now), info.me_mapsize);
  size_text(twice, sizeof(twice), info.me_mapsize * 2);
  return ctkn__err(err, CTKN_EMAPFULL,
                   "the projection's LMDB map is full (--map-size %s): "
                   "restart with a larger --map-size (e.g. %s; see "
                   "docs/operations.md, \"Retention and sizing\")",
                   now, twice);
}

int ctkn__store_space_err(struct ctkn_err *err, int rc, const char *what,
                          const char *dir, long long avail)
{
  char left[48] = "";

  if (avail >= 0)
    snprintf(left, sizeof(left), " (%lld bytes free)", avail);
  if (rc == ENOSPC || rc == EDQUOT ||
      (rc == EIO && avail >= 0 && avail < CTKN__STORE_FULL_BELOW))
    return ctkn__err(err, CTKN_ESTORE,
                     "%s: no space left on device%s: the file system "
                     "holding %.120s is full%s; free space or move --db, "
                     "then retry",
                     what, rc == EDQUOT ? " (disk quota exceeded)" : "",
                     dir != NULL ? dir : "the projection", left);
  if (rc == EFBIG)
    return ctkn__err(err, CTKN_ESTORE,
                     "%s: file too large: %.120s/data.mdb reached a "
                     "file-size limit (ulimit -f, or the file system's)",
                     what, dir != NULL ? dir : "the projection");
  return ctkn__store_lmdb_err(err, rc, what);
}

/* Free bytes this process may write on dir's file system (root may use
 * the blocks reserved for it), or -1 when unknown. */
static long long free_bytes(const char *dir)
{
  struct statvfs sv;

  if (dir == NULL || statvfs(dir, &sv) != 0)
    return -1;
  return (long long)(geteuid() == 0 ? sv.f_bfree : sv.f_bavail) *
         (long long)sv.f_frsize;
}

int ctkn__store_dir_err(const char *dir, struct ctkn_err *err, int rc,
                        const char *what)
{
  bool space = rc == EIO || rc == ENOSPC || rc == EDQUOT;

  return ctkn__store_space_err(err, rc, what, dir,
                               space ? free_bytes(dir) : -1);
}

int ctkn__store_write_err(const ctkn_store *st, struct ctkn_err *err, int rc,
                          const char *what)
{
  return ctkn__store_dir_err(st->dir, err, rc, what);
}

int ctkn__store_corrupt(struct ctkn_err *err, int table)
{
  return ctkn__err(err, CTKN_ESTORE, "corrupt value in %s",
                   ctkn__store_table_names[table]);
}

int ctkn__store_check_coord(int32_t partition, int64_t offset,
                            struct ctkn_err *err)
{
  if (!ctkn__store_partition_ok(partition))
    return ctkn__err_field(err, CTKN_EINVAL, "partition",
                           "partition %" PRId32 " is outside 0..%d", partition,
                           CTKN_STORE_MAX_PARTITIONS - 1);
  if (offset < 0)
    return ctkn__err_field(err, CTKN_EINVAL, "offset",
                           "offset %" PRId64 " is negative", offset);
  return CTKN_OK;
}

int ctkn__store_mkdir_p(const char *dir, struct ctkn_err *err)
{
  size_t len = strlen(dir);
  char *path = malloc(len + 1);
  struct stat sb;
  int rc = CTKN_OK;

  if (path == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "%s: out of memory", dir);
  memcpy(path, dir, len + 1);
  for (size_t i = 1; i <= len && rc == CTKN_OK; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    if (path[i - 1] == '/')
      continue; /* "a//b" or a trailing slash */
    path[i] = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
      rc = ctkn__err(err, CTKN_ESTORE, "%s: mkdir: %s", path, strerror(errno));
    path[i] = i < len ? '/' : '\0';
  }
  free(path);
  if (rc == CTKN_OK && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
    rc = ctkn__err(err, CTKN_ESTORE, "%s: not a directory", dir);
  return rc;
}

/* ---- the format ------------------------------------------------------ */

/* The stored format, strictly decimal. -1 for anything else. */
static long parse_format(const MDB_val *v)
{
  const char *s = v->mv_data;
  long n = 0;

  if (v->mv_size == 0 || v->mv_size > 9)
    return -1;
  for (size_t i = 0; i < v->mv_size; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    n = n * 10 + (s[i] - '0');
  }
  return n;
}

static int check_format(const MDB_val *v, struct ctkn_err *err)
{
  long f = parse_format(v);

  if (f == CTKN_STORE_FORMAT)
    return CTKN_OK;
  if (f < 0)
    return ctkn__err(err, CTKN_EFORMAT,
                     "store format is unreadable (this build reads format "
                     "%d); rebuild it with `ctkn rebuild`",
                     CTKN_STORE_FORMAT);
  return ctkn__err(err, CTKN_EFORMAT,
                   "store format %ld is not supported by this build (format "
                   "%d); rebuild it with `ctkn rebuild`",
                   f, CTKN_STORE_FORMAT);
}

/* meta's "format": *fresh when there is none yet, else it must be ours. */
static int read_format(ctkn_store *st, MDB_txn *txn, bool *fresh,
                       struct ctkn_err *err)
{
  MDB_val k = {6, "format"}, v;
  int rc = mdb_get(txn, st->dbi[T_META], &k, &v);

  *fresh = rc == MDB_NOTFOUND;
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, "get meta");
  return *fresh ? CTKN_OK : check_format(&v, err);
}

/* Record our format in a fresh store (a writer's). */
static int record_format(ctkn_store *st, MDB_txn *txn, const char *dir,
                         struct ctkn_err *err)
{
  char fmt[16];
  MDB_val k = {6, "format"}, v;
  MDB_stat ms;
  int rc;

  if (st->read_only)
    return ctkn__err(err, CTKN_ESTORE, "%s: %s", dir, NOT_PROJECTION);
  /* A store with tokens but no format was not written by ctkn. */
  rc = mdb_stat(txn, st->dbi[T_TOKENS], &ms);
  if (rc == MDB_SUCCESS && ms.ms_entries > 0)
    return ctkn__err(err, CTKN_EFORMAT,
                     "store has data but no format; rebuild it with "
                     "`ctkn rebuild`");
  v.mv_size = (size_t)snprintf(fmt, sizeof(fmt), "%d", CTKN_STORE_FORMAT);
  v.mv_data = fmt;
  if (rc == MDB_SUCCESS)
    rc = mdb_put(txn, st->dbi[T_META], &k, &v, 0);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "put meta");
}

/* ---- tables derived at open ---------------------------------------------- */

int ctkn__store_scan_revoked(MDB_txn *txn, MDB_dbi index, int64_t *n)
{
  MDB_cursor *c;
  MDB_val k, v;
  int rc;

  *n = 0;
  if ((rc = mdb_cursor_open(txn, index, &c)) != MDB_SUCCESS)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (v.mv_size == INDEX_VALUE_LEN &&
        ((const uint8_t *)v.mv_data)[CTKN_ID_LEN] == CTKN_STATUS_REVOKED)
      (*n)++;
  }
  mdb_cursor_close(c);
  if (rc == MDB_NOTFOUND)
    return MDB_SUCCESS;
  *n = 0;
  return rc;
}

int ctkn__store_put_revoked(MDB_txn *txn, MDB_dbi meta, int64_t n)
{
  uint8_t b[8];
  MDB_val k = ctkn__store_revoked_key, v = {sizeof(b), b};

  ctkn__put_be64(b, (uint64_t)n);
  return mdb_put(txn, meta, &k, &v, 0);
}

/* Projections from before the revoked count get it once, by a scan. */
static int check_revoked(ctkn_store *st, MDB_txn *txn, struct ctkn_err *err)
{
  MDB_val k = ctkn__store_revoked_key, v;
  int64_t n;
  int rc = mdb_get(txn, st->dbi[T_META], &k, &v);

  if (rc == MDB_NOTFOUND) {
    rc = ctkn__store_scan_revoked(txn, st->dbi[T_INDEX], &n);
    if (rc == MDB_SUCCESS)
      rc = ctkn__store_put_revoked(txn, st->dbi[T_META], n);
  }
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "revoked count");
}

/* The positions entry of one history entry, or false (and a warning) when
 * the history value is corrupt: left out of the index, it is still
 * reported corrupt by whatever reads it. */
static bool position_of(const MDB_val *k, const MDB_val *v, int64_t *partition,
                        int64_t *offset)
{
  struct ctkn__sv_span body;
  size_t used;

  if (k->mv_size == HIST_KEY_LEN &&
      ctkn__sv_history_read(v->mv_data, v->mv_size, &used, partition, offset,
                            &body) == CTKN_OK &&
      *partition >= 0 && *partition < CTKN_STORE_MAX_PARTITIONS && *offset >= 0)
    return true;
  ctkn__diag(CTKN_DIAG_WARN, "store",
             "positions: a corrupt history entry is left out of the index");
  return false;
}

/*
 * positions holds one entry per history entry. A projection from before
 * the table, or one that a build without it advanced, has fewer: rebuild
 * the index from history then (a scan, once).
 */
static int check_positions(MDB_txn *txn, ctkn_store *st, struct ctkn_err *err)
{
  MDB_stat hs, ps;
  MDB_cursor *c, *pc;
  MDB_val k, v;
  int64_t partition, offset;
  int rc;

  if ((rc = mdb_stat(txn, st->dbi[T_HISTORY], &hs)) != MDB_SUCCESS ||
      (rc = mdb_stat(txn, st->dbi[T_POSITIONS], &ps)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "stat positions");
  if (hs.ms_entries == ps.ms_entries)
    return CTKN_OK;
  if ((rc = mdb_drop(txn, st->dbi[T_POSITIONS], 0)) != MDB_SUCCESS ||
      (rc = mdb_cursor_open(txn, st->dbi[T_POSITIONS], &pc)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "rebuild positions");
  if ((rc = mdb_cursor_open(txn, st->dbi[T_HISTORY], &c)) != MDB_SUCCESS) {
    mdb_cursor_close(pc);
    return ctkn__store_lmdb_err(err, rc, "rebuild positions");
  }
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (position_of(&k, &v, &partition, &offset) &&
        (rc = ctkn__store_put_pos(pc, (int32_t)partition, offset, k.mv_data)) !=
            MDB_SUCCESS)
      break;
  }
  mdb_cursor_close(c);
  mdb_cursor_close(pc);
  return rc == MDB_NOTFOUND
             ? CTKN_OK
             : ctkn__store_lmdb_err(err, rc, "rebuild positions");
}

/*
 * A positions table of an earlier layout (not MDB_DUPSORT) is dropped, in
 * a transaction of its own, before the tables are opened: it is derived,
 * so check_positions() fills the new one from history.
 */
static int drop_old_positions(MDB_env *env, struct ctkn_err *err)
{
  MDB_txn *txn;
  MDB_dbi dbi;
  unsigned fl = 0;
  int rc;

  if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "begin");
  /* LMDB opens an existing table with its stored flags, whatever the
   * caller asks for: look at them. */
  rc = mdb_dbi_open(txn, ctkn__store_table_names[T_POSITIONS], 0, &dbi);
  if (rc == MDB_SUCCESS)
    rc = mdb_dbi_flags(txn, dbi, &fl);
  if (rc != MDB_SUCCESS || (fl & MDB_DUPSORT)) {
    mdb_txn_abort(txn);
    return CTKN_OK; /* none yet (or not a table: open_tables() says so) */
  }
  if ((rc = mdb_drop(txn, dbi, 1)) != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    return ctkn__store_lmdb_err(err, rc, "drop positions");
  }
  rc = mdb_txn_commit(txn);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "drop positions");
}

/* ---- opening ------------------------------------------------------------ */

/* Open table t into st->dbi[t] (creating it in a writer); a later table
 * that is missing, or of an earlier layout in a reader, is absent. */
static int open_table(ctkn_store *st, MDB_txn *txn, int t, const char *dir,
                      struct ctkn_err *err)
{
  unsigned flags = (st->read_only ? 0 : MDB_CREATE) |
                   (t == T_POSITIONS ? MDB_DUPSORT : 0),
           have = 0;
  int rc = mdb_dbi_open(txn, ctkn__store_table_names[t], flags, &st->dbi[t]);

  if (rc == MDB_SUCCESS && t == T_POSITIONS &&
      (mdb_dbi_flags(txn, st->dbi[t], &have) != MDB_SUCCESS ||
       !(have & MDB_DUPSORT))) {
    st->absent[t] = true; /* an earlier layout, read-only: not used */
    return CTKN_OK;
  }
  if (rc == MDB_NOTFOUND && t >= T_FIRST_LATER) {
    st->absent[t] = true; /* read-only, and written before it existed */
    return CTKN_OK;
  }
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ESTORE, "%s: %s", dir, NOT_PROJECTION);
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, ctkn__store_table_names[t]);
  return CTKN_OK;
}

/*
 * Open every DBI once, in a transaction that commits, so that the handles
 * are valid in every later transaction of every thread. The format is
 * checked before any other table is created, so a store of an unknown
 * format is left exactly as it was.
 */
static int open_tables(ctkn_store *st, const char *dir, struct ctkn_err *err)
{
  MDB_txn *txn;
  bool fresh = false;
  int rc;

  if (!st->read_only && (rc = drop_old_positions(st->env, err)) != CTKN_OK)
    return rc;
  rc = mdb_txn_begin(st->env, NULL, st->read_only ? MDB_RDONLY : 0, &txn);
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "begin");
  rc = open_table(st, txn, T_META, dir, err);
  if (rc == CTKN_OK)
    rc = read_format(st, txn, &fresh, err);
  for (int t = T_META + 1; t < T_COUNT && rc == CTKN_OK; t++)
    rc = open_table(st, txn, t, dir, err);
  if (rc == CTKN_OK && fresh)
    rc = record_format(st, txn, dir, err);
  if (rc == CTKN_OK && !st->read_only)
    rc = check_positions(txn, st, err);
  if (rc == CTKN_OK && !st->read_only)
    rc = ctkn__store_check_events(txn, st, err);
  if (rc == CTKN_OK && !st->read_only)
    rc = check_revoked(st, txn, err);
  if (rc == CTKN_OK && !st->read_only &&
      (rc = ctkn__store_count_quarantine(txn, st->dbi[T_META],
                                         st->dbi[T_QUARANTINE])) != MDB_SUCCESS)
    rc = ctkn__store_lmdb_err(err, rc, "quarantine counts");
  if (rc != CTKN_OK) {
    mdb_txn_abort(txn);
    return rc;
  }
  rc = mdb_txn_commit(txn);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_write_err(st, err, rc, "commit");
}

/* A writer creates dir; a reader needs a projection there already. */
static int prepare_dir(const char *dir, const struct ctkn_store_opts *opts,
                       struct ctkn_err *err)
{
  struct stat sb;
  char *data;
  bool exists;

  if (!opts->read_only)
    return ctkn__store_mkdir_p(dir, err);
  /* LMDB would create lock.mdb before noticing that data.mdb is missing;
   * a reader leaves no trace in a directory that is not a projection. */
  if ((data = ctkn__suffixed(dir, "/data.mdb")) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "%s: out of memory", dir);
  exists = stat(data, &sb) == 0;
  free(data);
  if (!exists)
    return ctkn__err(err, CTKN_ESTORE, "%s: %s", dir, NOT_PROJECTION);
  return CTKN_OK;
}

static int open_env(ctkn_store *st, const char *dir,
                    const struct ctkn_store_opts *opts, struct ctkn_err *err)
{
  /* MDB_NOMETASYNC: a commit syncs its data pages, and its meta page
   * goes out with the next commit's sync (or mdb_env_sync) instead of
   * through a second, O_DSYNC write of its own. LMDB keeps the
   * environment whole; a system crash may undo the last commit, whose
   * state is the log's and is applied again from the offsets committed
   * with the state before it. */
  unsigned flags = MDB_NOTLS | (opts->read_only ? MDB_RDONLY : MDB_NOMETASYNC) |
                   (opts->no_sync ? MDB_NOSYNC : 0);
  /* A reader with no configured size maps what the writer recorded. */
  size_t map = opts->map_size != 0
                   ? opts->map_size
                   : (opts->read_only ? 0 : CTKN_STORE_MAP_DEFAULT);
  int rc = MDB_SUCCESS, dead;

  if ((map != 0 && (rc = mdb_env_set_mapsize(st->env, map)) != 0) ||
      (rc = mdb_env_set_maxdbs(st->env, MAX_DBS)) != 0 ||
      (rc = mdb_env_set_maxreaders(st->env, MAX_READERS)) != 0 ||
      (rc = mdb_env_open(st->env, dir, flags, 0600)) != 0)
    return ctkn__store_dir_err(dir, err, rc, dir);
  /* Free the reader slots of processes that died holding a read txn
   * (SIGKILL, OOM), which would otherwise pin old pages forever. */
  rc = mdb_reader_check(st->env, &dead);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "mdb_reader_check");
}

/* Which file this is, so that a projection swapped into dir by `ctkn
 * rebuild` is noticed (ctkn_store_refresh()). */
static void note_file(ctkn_store *st)
{
  mdb_filehandle_t fd;
  struct stat sb;

  if (mdb_env_get_fd(st->env, &fd) == MDB_SUCCESS && fstat(fd, &sb) == 0) {
    st->dev = sb.st_dev;
    st->ino = sb.st_ino;
  }
}

int ctkn_store_open(ctkn_store **out, const char *dir,
                    const struct ctkn_store_opts *opts, struct ctkn_err *err)
{
  static const struct ctkn_store_opts defaults = {0};
  ctkn_store *st;
  int rc;

  *out = NULL;
  if (opts == NULL)
    opts = &defaults;
  if (dir == NULL || dir[0] == '\0')
    return ctkn__err_field(err, CTKN_EINVAL, "db", "empty store directory");
  if ((rc = prepare_dir(dir, opts, err)) != CTKN_OK)
    return rc;
  if ((st = calloc(1, sizeof(*st))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "%s: out of memory", dir);
  st->read_only = opts->read_only;
  if ((rc = mdb_env_create(&st->env)) != MDB_SUCCESS) {
    free(st);
    return ctkn__store_lmdb_err(err, rc, "mdb_env_create");
  }
  if (pthread_rwlock_init(&st->swap, NULL) != 0) {
    mdb_env_close(st->env);
    free(st);
    return ctkn__store_lmdb_err(err, ENOMEM, "mdb_env_create");
  }
  if ((rc = open_env(st, dir, opts, err)) == CTKN_OK &&
      (rc = open_tables(st, dir, err)) == CTKN_OK &&
      (rc = ctkn__store_check_unsynced(st, dir, err)) == CTKN_OK) {
    note_file(st);
    st->opts = *opts;
    if ((st->dir = strdup(dir)) == NULL)
      rc = ctkn__err(err, CTKN_ENOMEM, "%s: out of memory", dir);
  }
  if (rc != CTKN_OK) {
    mdb_env_close(st->env);
    pthread_rwlock_destroy(&st->swap);
    free(st);
    return rc;
  }
  *out = st;
  return CTKN_OK;
}

void ctkn_store_close(ctkn_store *st)
{
  if (st == NULL)
    return;
  if (st->unsynced > 0) {
    st->unsynced = 1;
    ctkn__store_unsynced_end(st, NULL);
  }
  mdb_env_close(st->env);
  pthread_rwlock_destroy(&st->swap);
  free(st->dir);
  free(st);
}

int ctkn_store_refresh(ctkn_store *st, bool *reopened, struct ctkn_err *err)
{
  char *data = ctkn__suffixed(st->dir, "/data.mdb");
  struct stat sb;
  ctkn_store *fresh;
  int rc;

  *reopened = false;
  if (data == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "%s: out of memory", st->dir);
  rc = stat(data, &sb);
  free(data);
  /* The exchange is atomic: dir always holds one projection or the
   * other. Anything else (removed by hand) is not ours to follow. */
  if (rc != 0 || (sb.st_dev == st->dev && sb.st_ino == st->ino))
    return CTKN_OK;
  /* Another thread's txn is open on the old environment: try again on
   * the next call rather than wait (a reader may hold two txns). */
  if (pthread_rwlock_trywrlock(&st->swap) != 0)
    return CTKN_OK;
  if ((rc = ctkn_store_open(&fresh, st->dir, &st->opts, err)) != CTKN_OK) {
    pthread_rwlock_unlock(&st->swap);
    return rc;
  }
  /* Same handle, new environment: borrowers keep their pointer. */
  mdb_env_close(st->env);
  st->env = fresh->env;
  memcpy(st->dbi, fresh->dbi, sizeof(st->dbi));
  st->dev = fresh->dev;
  st->ino = fresh->ino;
  pthread_rwlock_unlock(&st->swap);
  pthread_rwlock_destroy(&fresh->swap);
  free(fresh->dir);
  free(fresh);
  *reopened = true;
  return CTKN_OK;
}

void ctkn_store_remove(const char *dir)
{
  static const char *const files[] = {"/data.mdb", "/lock.mdb"};

  for (size_t i = 0; i < CTKN__ARRAY_LEN(files); i++) {
    char *path = ctkn__suffixed(dir, files[i]);
    if (path != NULL)
      unlink(path);
    free(path);
  }
  rmdir(dir);
}

int ctkn_store_sync(ctkn_store *st, struct ctkn_err *err)
{
  int rc = mdb_env_sync(st->env, 1);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_write_err(st, err, rc, "sync");
}

int ctkn_store_exchange(const char *a, const char *b, struct ctkn_err *err)
{
  if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0)
    return ctkn__err(err, CTKN_ESTORE, "exchanging %.200s and %.200s: %s", a, b,
                     strerror(errno));
  return CTKN_OK;
}

/* ---- metadata ------------------------------------------------------- */

/*
 * Compare meta[name] with want. When it is missing: record it if `record`,
 * else set *missing.
 */
static int meta_bind(ctkn_store *st, MDB_txn *txn, const char *name,
                     const char *want, bool record, bool *missing,
                     struct ctkn_err *err)
{
  MDB_val k = {strlen(name), (void *)name}, v;
  size_t n = strlen(want);
  int rc;

  rc = mdb_get(txn, st->dbi[T_META], &k, &v);
  if (rc == MDB_NOTFOUND) {
    *missing = true;
    if (!record)
      return CTKN_OK;
    v.mv_size = n;
    v.mv_data = (void *)want;
    rc = mdb_put(txn, st->dbi[T_META], &k, &v, 0);
    return rc == MDB_SUCCESS ? CTKN_OK
                             : ctkn__store_lmdb_err(err, rc, "put meta");
  }
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "get meta");
  if (v.mv_size != n || memcmp(v.mv_data, want, n) != 0)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "this projection is bound to %s \"%.*s\", not \"%s\"",
                     name, v.mv_size > 100 ? 100 : (int)v.mv_size,
                     (const char *)v.mv_data, want);
  return CTKN_OK;
}

/* One pass of ctkn_store_bind(): compare (record false, in a read txn)
 * or record what is missing. */
static int bind_pass(ctkn_store *st, const char *topic, const char *envs,
                     bool record, bool *missing, struct ctkn_err *err)
{
  MDB_txn *txn;
  int rc = mdb_txn_begin(st->env, NULL, record ? 0 : MDB_RDONLY, &txn);

  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "begin");
  *missing = false;
  rc = meta_bind(st, txn, "topic", topic, record, missing, err);
  if (rc == CTKN_OK)
    rc = meta_bind(st, txn, "environment", envs, record, missing, err);
  if (rc != CTKN_OK || !record) {
    mdb_txn_abort(txn);
    return rc;
  }
  rc = mdb_txn_commit(txn);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_write_err(st, err, rc, "commit");
}

int ctkn_store_bind(ctkn_store *st, const char *topic, ctkn_env env,
                    struct ctkn_err *err)
{
  const char *envs = ctkn_env_str(env);
  bool missing = false;
  int rc;

  if (topic == NULL || topic[0] == '\0' || strlen(topic) > 249)
    return ctkn__err_field(err, CTKN_EINVAL, "topic",
                           "a topic name has 1 to 249 characters");
  if (envs == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "environment",
                           "unknown environment %d", (int)env);
  /* Most binds only compare: do that in a read txn, so that a query tool
   * never waits for the projector's write lock. A read-only store records
   * nothing; what is there matched. */
  if ((rc = bind_pass(st, topic, envs, false, &missing, err)) != CTKN_OK ||
      !missing || st->read_only)
    return rc;
  return bind_pass(st, topic, envs, true, &missing, err);
}

int ctkn_store_bind_topic_id(ctkn_store *st, const char *id,
                             struct ctkn_err *err)
{
  bool missing = false;
  MDB_txn *txn;
  int rc;

  if (id == NULL || id[0] == '\0' || strlen(id) > 64)
    return ctkn__err_field(err, CTKN_EINVAL, "topic_id",
                           "a topic ID has 1 to 64 characters");
  /* Compare in a read txn; record only what is missing (as above). */
  for (int pass = 0; pass < 2; pass++) {
    bool record = pass == 1;
    if ((rc = mdb_txn_begin(st->env, NULL, record ? 0 : MDB_RDONLY, &txn)) !=
        MDB_SUCCESS)
      return ctkn__store_lmdb_err(err, rc, "begin");
    rc = meta_bind(st, txn, "topic_id", id, record, &missing, err);
    if (rc != CTKN_OK || !record) {
      mdb_txn_abort(txn);
      if (rc != CTKN_OK || !missing || st->read_only)
        return rc;
      continue;
    }
    rc = mdb_txn_commit(txn);
    return rc == MDB_SUCCESS ? CTKN_OK
                             : ctkn__store_write_err(st, err, rc, "commit");
  }
  return CTKN_OK;
}

int ctkn_store_freeze(ctkn_store *st, int64_t as_of_us, struct ctkn_err *err)
{
  char when[CTKN_TIME_BUF];
  MDB_val k = {6, "frozen"}, v;
  MDB_txn *txn;
  int rc;

  if (ctkn_time_format(as_of_us, when) != CTKN_OK)
    return ctkn__err_field(err, CTKN_EINVAL, "as_of",
                           "must be between 1970 and 9999");
  v.mv_size = strlen(when);
  v.mv_data = when;
  if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "begin");
  if ((rc = mdb_put(txn, st->dbi[T_META], &k, &v, 0)) != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    return ctkn__store_lmdb_err(err, rc, "put meta");
  }
  rc = mdb_txn_commit(txn);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_write_err(st, err, rc, "commit");
}

int ctkn_store_frozen(ctkn_store *st, char as_of[CTKN_TIME_BUF],
                      struct ctkn_err *err)
{
  MDB_val k = {6, "frozen"}, v;
  MDB_txn *txn;
  int rc;

  as_of[0] = '\0';
  pthread_rwlock_rdlock(&st->swap);
  if ((rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) != MDB_SUCCESS) {
    pthread_rwlock_unlock(&st->swap);
    return ctkn__store_lmdb_err(err, rc, "begin");
  }
  rc = mdb_get(txn, st->dbi[T_META], &k, &v);
  if (rc == MDB_SUCCESS) {
    size_t n = v.mv_size < CTKN_TIME_LEN ? v.mv_size : CTKN_TIME_LEN;
    memcpy(as_of, v.mv_data, n);
    as_of[n] = '\0';
  }
  mdb_txn_abort(txn);
  pthread_rwlock_unlock(&st->swap);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, "get meta");
  return CTKN_OK;
}
