/*
 * store.c - the projection's tables over one LMDB environment (format 1).
 *
 * Tables (named DBIs), all keys compared as bytes:
 *
 *   meta         name                         -> "format" = "1" (decimal
 *                                                 ASCII), "topic",
 *                                                 "environment",
 *                                                 "revoked" (u64 BE: how
 *                                                 many tokens are revoked,
 *                                                 for list counts)
 *   tokens       token ID (31 bytes)          -> ctkn_record_encode()
 *   token_index  token string (32 bytes)      -> token ID
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
 *
 * and the side tables of settings.c and notify.c (ctkn_store_kv_*). The
 * tables from positions on are not in the digest.
 *
 * Big-endian numbers make LMDB's byte order the numeric order, so a
 * token's history comes out by version and the coordinates by (partition,
 * offset). The small values are msgpack arrays, packed and read by
 * codec/store_values.c; the record is codec.h's business.
 *
 * The digest covers every table but meta, in the order tokens,
 * token_index, history, rejected, quarantine, idempotency, offsets:
 *
 *   for each table: u64be(len name) name u64be(entries)
 *                   { u64be(len key) key u64be(len value) value } ...
 *
 * with the entries in key order. The entry count after the name keeps the
 * serialisation unambiguous (a table's end cannot pass for a key). meta is
 * excluded as a whole: the format is a property of the build and topic
 * and environment are checked by ctkn_store_bind(), and a replay's
 * recorded cut must not make two projections of the same prefix differ.
 * The digest hashes stored bytes, so it relies on the encoders being
 * canonical: msgpack-c always picks the shortest form.
 *
 * Handles: the environment is opened with MDB_NOTLS, so a read txn is not
 * tied to a thread's reader slot and one thread may hold several. The DBI
 * handles are opened once, in ctkn_store_open(), and only read afterwards,
 * which is what lets threads share a ctkn_store.
 */
#define _GNU_SOURCE /* renameat2() */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <lmdb.h>
#include <pthread.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/store.h"
#include "internal.h"

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
  T_COUNT
};
#define T_FIRST_LATER T_POSITIONS

static const char *const table_names[T_COUNT] = {"meta",
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
                                                 "notify_queue"};

/* ctkn_store_kv_*()'s tables, by enum ctkn_store_table. */
static const int kv_tables[] = {[CTKN_TABLE_POSITIONS] = T_POSITIONS,
                                [CTKN_TABLE_DESTINATIONS] = T_DEST,
                                [CTKN_TABLE_DEST_START] = T_DEST_START,
                                [CTKN_TABLE_SETTINGS_OFFSETS] = T_SET_OFFSETS,
                                [CTKN_TABLE_SETTINGS_LOG] = T_SET_LOG,
                                [CTKN_TABLE_NOTIFICATIONS] = T_NTF,
                                [CTKN_TABLE_ATTEMPTS] = T_ATTEMPTS,
                                [CTKN_TABLE_CURSORS] = T_CURSORS,
                                [CTKN_TABLE_QUEUE] = T_QUEUE};

/* The digest's order, fixed by the format (see the top of this file). */
static const int digest_order[] = {T_TOKENS,     T_INDEX, T_HISTORY, T_REJECTED,
                                   T_QUARANTINE, T_IDEM,  T_OFFSETS};

#define HIST_KEY_LEN    (CTKN_ID_LEN + 8)
#define INDEX_VALUE_LEN (CTKN_ID_LEN + 1) /* token ID, status byte */
#define COORD_KEY_LEN   (4 + 8)
#define MAX_DBS         32
#define POS_VALUE_LEN   (8 + HIST_KEY_LEN) /* offset, token ID, version */
#define MAX_READERS     254
#define NOT_PROJECTION  "not a ctkn projection (run ctkn project first)"

struct ctkn_store {
  MDB_env *env;
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
  int unsynced;              /* ctkn_store_unsynced_begin() depth */
  unsigned unsynced_commits; /* since the last writeback started */
  int unsynced_fd;           /* our marker, flock'ed while it is there */
};

struct batch;

struct ctkn_store_txn {
  ctkn_store *st;
  MDB_txn *txn;
  bool write;
  struct batch *batch; /* ctkn_store_batch(): pending token writes */
};

/* The write batch (ctkn_store_batch()), defined with the writes. */
static int batch_get(ctkn_store_txn *t, const char *id, bool guess,
                     struct ctkn_record *out, struct ctkn_err *err);
static int batch_lookup(ctkn_store_txn *t, const char *token, MDB_val *v);
#define BATCH_UNSEEN (-1) /* batch_lookup(): ask the table; no LMDB code */
static int batch_sync(ctkn_store_txn *t, struct ctkn_err *err);
static int batch_flush(ctkn_store_txn *t, struct ctkn_err *err);
static void batch_free(struct batch *b);

/* ---- errors and small helpers --------------------------------------- */

static int lmdb_err(struct ctkn_err *err, int rc, const char *what)
{
  if (rc == MDB_MAP_FULL)
    return ctkn__err(err, CTKN_ESTORE, "%s: map full: raise --map-size", what);
  if (rc == ENOMEM)
    return ctkn__err(err, CTKN_ENOMEM, "%s: %s", what, mdb_strerror(rc));
  return ctkn__err(err, CTKN_ESTORE, "%s: %s", what, mdb_strerror(rc));
}

static int corrupt(struct ctkn_err *err, int table)
{
  return ctkn__err(err, CTKN_ESTORE, "corrupt value in %s", table_names[table]);
}

/* true when s is a string of exactly n bytes. */
static bool has_len(const char *s, size_t n)
{
  return s != NULL && strnlen(s, n + 1) == n;
}

static bool partition_ok(int32_t partition)
{
  return partition >= 0 && partition < CTKN_STORE_MAX_PARTITIONS;
}

static void coord_key(uint8_t key[COORD_KEY_LEN], int32_t partition,
                      int64_t offset)
{
  ctkn__put_be32(key, (uint32_t)partition);
  ctkn__put_be64(key + 4, (uint64_t)offset);
}

static int check_coord(int32_t partition, int64_t offset, struct ctkn_err *err)
{
  if (!partition_ok(partition))
    return ctkn__err_field(err, CTKN_EINVAL, "partition",
                           "partition %" PRId32 " is outside 0..%d", partition,
                           CTKN_STORE_MAX_PARTITIONS - 1);
  if (offset < 0)
    return ctkn__err_field(err, CTKN_EINVAL, "offset",
                           "offset %" PRId64 " is negative", offset);
  return CTKN_OK;
}

static int need_write(const ctkn_store_txn *t, struct ctkn_err *err)
{
  if (!t->write)
    return ctkn__err(err, CTKN_EINTERNAL, "write in a read transaction");
  return CTKN_OK;
}

/* ---- small values (codec/store_values.c) -------------------------------- */

/* Put a packed value under k, reserving its exact size in the page. */
static int put_gather(ctkn_store_txn *t, int table, MDB_val *k,
                      const struct ctkn__sv_gather *g, unsigned flags,
                      struct ctkn_err *err)
{
  MDB_val v = {g->total, NULL};
  int rc = mdb_put(t->txn, t->st->dbi[table], k, &v, flags | MDB_RESERVE);
  char what[64];

  if (rc != MDB_SUCCESS) {
    snprintf(what, sizeof(what), "put %s", table_names[table]);
    return lmdb_err(err, rc, what);
  }
  ctkn__sv_copy(g, v.mv_data);
  return CTKN_OK;
}

/*
 * A growable buffer for copies that must be NUL-terminated (reasons handed
 * to callbacks as C strings).
 */
struct strbuf {
  char *p;
  size_t cap;
};

static int strbuf_set(struct strbuf *b, const uint8_t *s, size_t n,
                      struct ctkn_err *err)
{
  if (n + 1 > b->cap) {
    size_t cap = n + 1 < 256 ? 256 : n + 1;
    char *q = realloc(b->p, cap);

    if (q == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "copying a %zu-byte reason", n);
    b->p = q;
    b->cap = cap;
  }
  if (n > 0)
    memcpy(b->p, s, n);
  b->p[n] = '\0';
  return CTKN_OK;
}

/* ---- opening --------------------------------------------------------- */

/* mkdir -p with mode 0700 for the directories it creates. */
static int mkdir_p(const char *dir, struct ctkn_err *err)
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

/*
 * Open every DBI once, in a transaction that commits, so that the handles
 * are valid in every later transaction of every thread. The format is
 * checked before any other table is created, so a store of an unknown
 * format is left exactly as it was.
 */
static const MDB_val revoked_key = {7, "revoked"};

/* Count the revoked tokens the slow way: every token_index entry. */
static int64_t scan_revoked(MDB_txn *txn, MDB_dbi index)
{
  MDB_cursor *c;
  MDB_val k, v;
  int64_t n = 0;
  int rc;

  if (mdb_cursor_open(txn, index, &c) != MDB_SUCCESS)
    return CTKN_ESTORE;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (v.mv_size == INDEX_VALUE_LEN &&
        ((const uint8_t *)v.mv_data)[CTKN_ID_LEN] == CTKN_STATUS_REVOKED)
      n++;
  }
  mdb_cursor_close(c);
  return rc == MDB_NOTFOUND ? n : CTKN_ESTORE;
}

static int put_revoked(MDB_txn *txn, MDB_dbi meta, int64_t n)
{
  uint8_t b[8];
  MDB_val k = revoked_key, v = {sizeof(b), b};

  ctkn__put_be64(b, (uint64_t)n);
  return mdb_put(txn, meta, &k, &v, 0);
}

/*
 * positions holds one entry per history entry. A projection from before
 * the table, or one that a build without it advanced, has fewer: rebuild
 * the index from history then (a scan, once).
 */
static int check_positions(MDB_txn *txn, ctkn_store *st, struct ctkn_err *err)
{
  MDB_stat hs, ps;
  MDB_cursor *c;
  MDB_val k, v;
  int rc;

  if ((rc = mdb_stat(txn, st->dbi[T_HISTORY], &hs)) != MDB_SUCCESS ||
      (rc = mdb_stat(txn, st->dbi[T_POSITIONS], &ps)) != MDB_SUCCESS)
    return lmdb_err(err, rc, "stat positions");
  if (hs.ms_entries == ps.ms_entries)
    return CTKN_OK;
  if ((rc = mdb_drop(txn, st->dbi[T_POSITIONS], 0)) != MDB_SUCCESS ||
      (rc = mdb_cursor_open(txn, st->dbi[T_HISTORY], &c)) != MDB_SUCCESS)
    return lmdb_err(err, rc, "rebuild positions");
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    uint8_t pk[4], pval[POS_VALUE_LEN];
    MDB_val pkv = {sizeof(pk), pk}, pv = {sizeof(pval), pval};
    int64_t partition, offset;
    struct ctkn__sv_span body;
    size_t used;

    if (k.mv_size != HIST_KEY_LEN ||
        ctkn__sv_history_read(v.mv_data, v.mv_size, &used, &partition, &offset,
                              &body) != CTKN_OK ||
        partition < 0 || partition >= CTKN_STORE_MAX_PARTITIONS || offset < 0) {
      /* Left out of the index; reading that history says it is corrupt. */
      fprintf(stderr, "ctkn: positions: a corrupt history entry is left "
                      "out of the index\n");
      continue;
    }
    ctkn__put_be32(pk, (uint32_t)partition);
    ctkn__put_be64(pval, (uint64_t)offset);
    memcpy(pval + 8, k.mv_data, HIST_KEY_LEN);
    if ((rc = mdb_put(txn, st->dbi[T_POSITIONS], &pkv, &pv, 0)) != 0)
      break;
  }
  mdb_cursor_close(c);
  return rc == MDB_NOTFOUND ? CTKN_OK : lmdb_err(err, rc, "rebuild positions");
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
    return lmdb_err(err, rc, "begin");
  /* LMDB opens an existing table with its stored flags, whatever the
   * caller asks for: look at them. */
  rc = mdb_dbi_open(txn, table_names[T_POSITIONS], 0, &dbi);
  if (rc == MDB_SUCCESS)
    rc = mdb_dbi_flags(txn, dbi, &fl);
  if (rc != MDB_SUCCESS || (fl & MDB_DUPSORT)) {
    mdb_txn_abort(txn);
    return CTKN_OK; /* none yet (or not a table: open_tables() says so) */
  }
  if ((rc = mdb_drop(txn, dbi, 1)) != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    return lmdb_err(err, rc, "drop positions");
  }
  rc = mdb_txn_commit(txn);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "drop positions");
}

static int open_tables(ctkn_store *st, const char *dir, struct ctkn_err *err)
{
  char fmt[16];
  unsigned create = st->read_only ? 0 : MDB_CREATE;
  MDB_val k = {6, "format"}, v;
  MDB_txn *txn;
  MDB_stat ms;
  bool fresh = false;
  int rc;

  if (!st->read_only && (rc = drop_old_positions(st->env, err)) != CTKN_OK)
    return rc;
  rc = mdb_txn_begin(st->env, NULL, st->read_only ? MDB_RDONLY : 0, &txn);
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, "begin");
  for (int t = 0; t < T_COUNT; t++) {
    unsigned flags = t == T_POSITIONS ? MDB_DUPSORT : 0, have = 0;
    rc = mdb_dbi_open(txn, table_names[t], create | flags, &st->dbi[t]);
    if (rc == MDB_SUCCESS && t == T_POSITIONS &&
        (mdb_dbi_flags(txn, st->dbi[t], &have) != MDB_SUCCESS ||
         !(have & MDB_DUPSORT))) {
      st->absent[t] = true; /* an earlier layout, read-only: not used */
      continue;
    }
    if (rc == MDB_NOTFOUND && t >= T_FIRST_LATER) {
      st->absent[t] = true; /* read-only, and written before it existed */
      continue;
    }
    if (rc == MDB_NOTFOUND) {
      rc = ctkn__err(err, CTKN_ESTORE, "%s: %s", dir, NOT_PROJECTION);
      goto fail;
    }
    if (rc != MDB_SUCCESS) {
      rc = lmdb_err(err, rc, table_names[t]);
      goto fail;
    }
    if (t != T_META)
      continue;
    rc = mdb_get(txn, st->dbi[T_META], &k, &v);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
      rc = lmdb_err(err, rc, "get meta");
      goto fail;
    }
    fresh = rc == MDB_NOTFOUND;
    if (!fresh && (rc = check_format(&v, err)) != CTKN_OK)
      goto fail;
  }

  if (fresh) {
    if (st->read_only) {
      rc = ctkn__err(err, CTKN_ESTORE, "%s: %s", dir, NOT_PROJECTION);
      goto fail;
    }
    /* A store with tokens but no format was not written by ctkn. */
    rc = mdb_stat(txn, st->dbi[T_TOKENS], &ms);
    if (rc == MDB_SUCCESS && ms.ms_entries > 0) {
      rc = ctkn__err(err, CTKN_EFORMAT,
                     "store has data but no format; rebuild it with "
                     "`ctkn rebuild`");
      goto fail;
    }
    v.mv_size = (size_t)snprintf(fmt, sizeof(fmt), "%d", CTKN_STORE_FORMAT);
    v.mv_data = fmt;
    if (rc == MDB_SUCCESS)
      rc = mdb_put(txn, st->dbi[T_META], &k, &v, 0);
    if (rc != MDB_SUCCESS) {
      rc = lmdb_err(err, rc, "put meta");
      goto fail;
    }
  }
  if (!st->read_only && (rc = check_positions(txn, st, err)) != CTKN_OK)
    goto fail;
  if (!st->read_only) {
    /* Projections from before the count get it once, by a scan. */
    MDB_val rk = revoked_key, rv;
    rc = mdb_get(txn, st->dbi[T_META], &rk, &rv);
    if (rc == MDB_NOTFOUND) {
      int64_t n = scan_revoked(txn, st->dbi[T_INDEX]);
      rc = n < 0 ? EIO : put_revoked(txn, st->dbi[T_META], n);
    }
    if (rc != MDB_SUCCESS) {
      rc = lmdb_err(err, rc, "revoked count");
      goto fail;
    }
  }
  rc = mdb_txn_commit(txn);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "commit");

fail:
  mdb_txn_abort(txn);
  return rc;
}

/* ---- unsynced catch-ups ------------------------------------------------
 *
 * A long catch-up may commit with MDB_NOSYNC and flush once at its end
 * (ctkn_store_unsynced_begin/end). A process that dies meanwhile loses
 * nothing: its commits are in the page cache, which every process shares.
 * A system crash is another matter: without the fsyncs LMDB's pages may
 * reach the disk in any order, so the projection may be damaged, not just
 * behind. So the catch-up first leaves a marker, "unsynced.<pid>" holding
 * the boot ID, made durable before the first unsynced commit, flock'ed
 * while its owner lives, and removed after the final flush. Opening finds
 * markers left behind: one written under another boot ID means the system
 * went down mid-catch-up, and the projection is refused; one of this boot
 * whose owner is gone only needs the flush it missed.
 */
#define UNSYNCED_PREFIX "unsynced."

static int boot_id(char out[64])
{
  int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, out, 63);

  if (fd >= 0)
    close(fd);
  if (n <= 0)
    return -1;
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
    n--;
  out[n] = '\0';
  return 0;
}

static int sync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = fd < 0 ? -1 : fsync(fd);

  if (fd >= 0)
    close(fd);
  return rc;
}

static char *marker_path(const char *dir, const char *name)
{
  size_t n = strlen(dir) + strlen(name) + 2;
  char *path = malloc(n);

  if (path != NULL)
    snprintf(path, n, "%s/%s", dir, name);
  return path;
}

static int check_unsynced(ctkn_store *st, const char *dir, struct ctkn_err *err)
{
  char now[64], then[64];
  struct dirent *de;
  DIR *d = opendir(dir);
  int rc = CTKN_OK;

  if (d == NULL)
    return CTKN_OK;
  while (rc == CTKN_OK && (de = readdir(d)) != NULL) {
    if (strncmp(de->d_name, UNSYNCED_PREFIX, strlen(UNSYNCED_PREFIX)) != 0)
      continue;
    char *path = marker_path(dir, de->d_name);
    int fd = path == NULL ? -1 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      free(path);
      continue;
    }
    /* Held: its owner is catching up right now, in this boot. */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      ssize_t n = read(fd, then, sizeof(then) - 1);
      then[n > 0 ? n : 0] = '\0';
      if (boot_id(now) != 0 || strcmp(now, then) != 0) {
        rc = ctkn__err(err, CTKN_ESTORE,
                       "%.200s: the system went down while a catch-up "
                       "wrote to this projection without syncing (%s); it "
                       "may be damaged: move it away and project into a "
                       "fresh --db",
                       dir, de->d_name);
      } else if (!st->read_only && mdb_env_sync(st->env, 1) == MDB_SUCCESS) {
        /* Its owner died, the page cache did not: flush and forget. */
        unlink(path);
        sync_dir(dir);
      }
    }
    close(fd);
    free(path);
  }
  closedir(d);
  return rc;
}

int ctkn_store_unsynced_begin(ctkn_store *st, struct ctkn_err *err)
{
  char id[64], name[64], tmpname[80];

  if (st->read_only)
    return ctkn__err(err, CTKN_EINTERNAL,
                     "unsynced commits on a read-only store");
  if (st->opts.no_sync || st->unsynced++ > 0)
    return CTKN_OK; /* never synced, or already unsynced */
  /* Written, flushed and locked under another name, then renamed: whoever
   * sees the marker sees it whole and locked. */
  snprintf(name, sizeof(name), UNSYNCED_PREFIX "%ld", (long)getpid());
  snprintf(tmpname, sizeof(tmpname), "." UNSYNCED_PREFIX "%ld.tmp",
           (long)getpid());
  char *path = marker_path(st->dir, name);
  char *tmp = marker_path(st->dir, tmpname);
  int fd = path == NULL || tmp == NULL
               ? -1
               : open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  size_t n = boot_id(id) == 0 ? strlen(id) : 0;
  if (fd < 0 || n == 0 || flock(fd, LOCK_EX) != 0 ||
      write(fd, id, n) != (ssize_t)n || fsync(fd) != 0 ||
      rename(tmp, path) != 0 || sync_dir(st->dir) != 0) {
    int e = errno;
    if (fd >= 0) {
      unlink(tmp);
      unlink(path);
      close(fd);
    }
    free(path);
    free(tmp);
    st->unsynced = 0;
    return ctkn__err(err, CTKN_ESTORE, "%.200s: unsynced catch-up marker: %s",
                     st->dir, strerror(e));
  }
  free(path);
  free(tmp);
  st->unsynced_fd = fd;
  int rc = mdb_env_set_flags(st->env, MDB_NOSYNC, 1);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "set nosync");
}

int ctkn_store_unsynced_end(ctkn_store *st, struct ctkn_err *err)
{
  char name[64];
  int rc;

  if (st->opts.no_sync || st->unsynced == 0 || --st->unsynced > 0)
    return CTKN_OK;
  mdb_env_set_flags(st->env, MDB_NOSYNC, 0);
  if ((rc = mdb_env_sync(st->env, 1)) != MDB_SUCCESS) {
    /* The marker stays: the next open flushes or refuses. */
    close(st->unsynced_fd);
    return lmdb_err(err, rc, "sync");
  }
  snprintf(name, sizeof(name), UNSYNCED_PREFIX "%ld", (long)getpid());
  char *path = marker_path(st->dir, name);
  if (path != NULL)
    unlink(path);
  free(path);
  sync_dir(st->dir);
  close(st->unsynced_fd);
  return CTKN_OK;
}

int ctkn_store_open(ctkn_store **out, const char *dir,
                    const struct ctkn_store_opts *opts, struct ctkn_err *err)
{
  static const struct ctkn_store_opts defaults = {0};
  unsigned flags = MDB_NOTLS;
  ctkn_store *st;
  size_t map;
  int rc, dead;

  *out = NULL;
  if (opts == NULL)
    opts = &defaults;
  if (dir == NULL || dir[0] == '\0')
    return ctkn__err_field(err, CTKN_EINVAL, "db", "empty store directory");
  if (opts->read_only) {
    /* LMDB would create lock.mdb before noticing that data.mdb is missing;
     * a reader leaves no trace in a directory that is not a projection. */
    size_t n = strlen(dir);
    char *data = malloc(n + sizeof("/data.mdb"));
    struct stat sb;
    bool exists;

    if (data == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "%s: out of memory", dir);
    memcpy(data, dir, n);
    memcpy(data + n, "/data.mdb", sizeof("/data.mdb"));
    exists = stat(data, &sb) == 0;
    free(data);
    if (!exists)
      return ctkn__err(err, CTKN_ESTORE, "%s: %s", dir, NOT_PROJECTION);
    flags |= MDB_RDONLY;
  } else if ((rc = mkdir_p(dir, err)) != CTKN_OK) {
    return rc;
  }
  if (opts->no_sync)
    flags |= MDB_NOSYNC;

  st = calloc(1, sizeof(*st));
  if (st == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "%s: out of memory", dir);
  st->read_only = opts->read_only;
  rc = mdb_env_create(&st->env);
  if (rc != MDB_SUCCESS || pthread_rwlock_init(&st->swap, NULL) != 0) {
    if (rc == MDB_SUCCESS) {
      mdb_env_close(st->env);
      rc = ENOMEM;
    }
    free(st);
    return lmdb_err(err, rc, "mdb_env_create");
  }

  /* A reader with no configured size maps what the writer recorded. */
  map = opts->map_size != 0 ? opts->map_size
                            : (opts->read_only ? 0 : CTKN_STORE_MAP_DEFAULT);
  if ((map != 0 && (rc = mdb_env_set_mapsize(st->env, map)) != 0) ||
      (rc = mdb_env_set_maxdbs(st->env, MAX_DBS)) != 0 ||
      (rc = mdb_env_set_maxreaders(st->env, MAX_READERS)) != 0) {
    rc = lmdb_err(err, rc, dir);
    goto fail;
  }
  rc = mdb_env_open(st->env, dir, flags, 0600);
  if (rc != MDB_SUCCESS) {
    rc = lmdb_err(err, rc, dir);
    goto fail;
  }
  /* Free the reader slots of processes that died holding a read txn
   * (SIGKILL, OOM), which would otherwise pin old pages forever. */
  rc = mdb_reader_check(st->env, &dead);
  if (rc != MDB_SUCCESS) {
    rc = lmdb_err(err, rc, "mdb_reader_check");
    goto fail;
  }
  rc = open_tables(st, dir, err);
  if (rc != CTKN_OK)
    goto fail;
  if ((rc = check_unsynced(st, dir, err)) != CTKN_OK)
    goto fail;
  /* Which file this is, so that a projection swapped into dir by
   * `ctkn rebuild` is noticed (ctkn_store_refresh()). */
  mdb_filehandle_t fd;
  struct stat sb;
  if (mdb_env_get_fd(st->env, &fd) == MDB_SUCCESS && fstat(fd, &sb) == 0) {
    st->dev = sb.st_dev;
    st->ino = sb.st_ino;
  }
  st->opts = *opts;
  if ((st->dir = strdup(dir)) == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "%s: out of memory", dir);
    goto fail;
  }
  *out = st;
  return CTKN_OK;

fail:
  mdb_env_close(st->env);
  pthread_rwlock_destroy(&st->swap);
  free(st);
  return rc;
}

void ctkn_store_close(ctkn_store *st)
{
  if (st == NULL)
    return;
  if (st->unsynced > 0) {
    st->unsynced = 1;
    ctkn_store_unsynced_end(st, NULL);
  }
  mdb_env_close(st->env);
  pthread_rwlock_destroy(&st->swap);
  free(st->dir);
  free(st);
}

int ctkn_store_refresh(ctkn_store *st, bool *reopened, struct ctkn_err *err)
{
  size_t n = strlen(st->dir);
  char *data = malloc(n + sizeof("/data.mdb"));
  struct stat sb;
  ctkn_store *fresh;
  int rc;

  *reopened = false;
  if (data == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "%s: out of memory", st->dir);
  memcpy(data, st->dir, n);
  memcpy(data + n, "/data.mdb", sizeof("/data.mdb"));
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
  size_t n = strlen(dir);
  char *path = malloc(n + sizeof("/data.mdb"));

  for (size_t i = 0; path != NULL && i < CTKN__ARRAY_LEN(files); i++) {
    memcpy(path, dir, n);
    memcpy(path + n, files[i], strlen(files[i]) + 1);
    unlink(path);
  }
  free(path);
  rmdir(dir);
}

int ctkn_store_sync(ctkn_store *st, struct ctkn_err *err)
{
  int rc = mdb_env_sync(st->env, 1);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "sync");
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
    return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "put meta");
  }
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, "get meta");
  if (v.mv_size != n || memcmp(v.mv_data, want, n) != 0)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "this projection is bound to %s \"%.*s\", not \"%s\"",
                     name, v.mv_size > 100 ? 100 : (int)v.mv_size,
                     (const char *)v.mv_data, want);
  return CTKN_OK;
}

int ctkn_store_bind(ctkn_store *st, const char *topic, ctkn_env env,
                    struct ctkn_err *err)
{
  const char *envs = ctkn_env_str(env);
  bool missing = false;
  MDB_txn *txn;
  int rc;

  if (topic == NULL || topic[0] == '\0' || strlen(topic) > 249)
    return ctkn__err_field(err, CTKN_EINVAL, "topic",
                           "a topic name has 1 to 249 characters");
  if (envs == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "environment",
                           "unknown environment %d", (int)env);

  /* Most binds only compare: do that in a read txn, so that a query tool
   * never waits for the projector's write lock. */
  for (int pass = 0; pass < 2; pass++) {
    bool record = pass == 1;

    rc = mdb_txn_begin(st->env, NULL, record ? 0 : MDB_RDONLY, &txn);
    if (rc != MDB_SUCCESS)
      return lmdb_err(err, rc, "begin");
    missing = false;
    rc = meta_bind(st, txn, "topic", topic, record, &missing, err);
    if (rc == CTKN_OK)
      rc = meta_bind(st, txn, "environment", envs, record, &missing, err);
    if (rc != CTKN_OK) {
      mdb_txn_abort(txn);
      return rc;
    }
    if (!record) {
      mdb_txn_abort(txn);
      /* A read-only store records nothing; what is there matched. */
      if (!missing || st->read_only)
        return CTKN_OK;
      continue;
    }
    rc = mdb_txn_commit(txn);
    return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "commit");
  }
  return CTKN_OK;
}

/* ---- transactions ---------------------------------------------------- */

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
    return lmdb_err(err, rc, "begin");
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
    rc = batch_flush(t, err);
    batch_free(t->batch);
    t->batch = NULL;
    if (rc != CTKN_OK) {
      ctkn_store_abort(t);
      return rc;
    }
  }
  rc = mdb_txn_commit(t->txn); /* frees the MDB_txn also on failure */
  if (rc == MDB_SUCCESS && t->write && t->st->unsynced > 0)
    writeback(t->st);
  pthread_rwlock_unlock(&t->st->swap);
  free(t);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "commit");
}

void ctkn_store_abort(ctkn_store_txn *t)
{
  if (t == NULL)
    return;
  batch_free(t->batch);
  mdb_txn_abort(t->txn);
  pthread_rwlock_unlock(&t->st->swap);
  free(t);
}

/* ---- reads ----------------------------------------------------------- */

/* Decode a tokens value that must belong to id (31 bytes). */
static int decode_record(const MDB_val *v, const char *id,
                         struct ctkn_record *out, struct ctkn_err *err)
{
  struct ctkn_err derr;

  if (ctkn_record_decode(v->mv_data, v->mv_size, out, &derr) != CTKN_OK)
    return ctkn__err(err, CTKN_ESTORE, "corrupt value in tokens: %s", derr.msg);
  if (memcmp(out->token.id, id, CTKN_ID_LEN) != 0)
    return ctkn__err(err, CTKN_ESTORE,
                     "corrupt value in tokens: record of another ID");
  return CTKN_OK;
}

int ctkn_store_get(ctkn_store_txn *t, const char *id, struct ctkn_record *out,
                   struct ctkn_err *err)
{
  MDB_val k, v;
  int rc;

  if (!has_len(id, CTKN_ID_LEN))
    return ctkn__err(err, CTKN_ENOTFOUND, "no token has this ID");
  if (t->batch != NULL)
    return batch_get(t, id, false, out, err);
  k.mv_size = CTKN_ID_LEN;
  k.mv_data = (void *)id;
  rc = mdb_get(t->txn, t->st->dbi[T_TOKENS], &k, &v);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "no token has this ID");
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, "get tokens");
  return decode_record(&v, id, out, err);
}

int ctkn_store_lookup_token(ctkn_store_txn *t, const char *token,
                            char id[CTKN_ID_BUF], ctkn_status *status,
                            struct ctkn_err *err)
{
  MDB_val k, v;
  int rc;

  if (!has_len(token, CTKN_TOKEN_LEN))
    return ctkn__err(err, CTKN_ENOTFOUND, "no token has this token string");
  k.mv_size = CTKN_TOKEN_LEN;
  k.mv_data = (void *)token;
  rc = t->batch != NULL ? batch_lookup(t, token, &v) : BATCH_UNSEEN;
  if (rc == BATCH_UNSEEN)
    rc = mdb_get(t->txn, t->st->dbi[T_INDEX], &k, &v);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "no token has this token string");
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, "get token_index");
  const uint8_t *e = v.mv_data;
  if (v.mv_size != INDEX_VALUE_LEN || (e[CTKN_ID_LEN] != CTKN_STATUS_ACTIVE &&
                                       e[CTKN_ID_LEN] != CTKN_STATUS_REVOKED))
    return corrupt(err, T_INDEX);
  memcpy(id, e, CTKN_ID_LEN);
  id[CTKN_ID_LEN] = '\0';
  *status = (ctkn_status)e[CTKN_ID_LEN];
  return CTKN_OK;
}

int ctkn_store_get_by_token(ctkn_store_txn *t, const char *token,
                            struct ctkn_record *out, struct ctkn_err *err)
{
  char id[CTKN_ID_BUF];
  ctkn_status status = CTKN_STATUS_ACTIVE;
  int rc;

  if ((rc = ctkn_store_lookup_token(t, token, id, &status, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_get(t, id, out, err);
  if (rc == CTKN_ENOTFOUND)
    return ctkn__err(err, CTKN_ESTORE,
                     "corrupt value in token_index: %s has no record", id);
  if (rc == CTKN_OK &&
      (strcmp(out->token.token, token) != 0 || out->token.status != status))
    return corrupt(err, T_INDEX);
  return rc;
}

static bool idem_key_ok(const char *key)
{
  size_t n = key == NULL ? 0 : strnlen(key, CTKN_IDEM_KEY_MAX + 1);

  return n >= 1 && n <= CTKN_IDEM_KEY_MAX;
}

int ctkn_store_get_idem(ctkn_store_txn *t, const char *key,
                        char id[CTKN_ID_BUF], uint8_t hash[CTKN_HASH_LEN],
                        struct ctkn_err *err)
{
  struct ctkn__sv_span tid, h;
  MDB_val k, v;
  int rc;

  if (!idem_key_ok(key))
    return ctkn__err_field(err, CTKN_EINVAL, "idempotency_key",
                           "an idempotency key has 1 to %d bytes",
                           CTKN_IDEM_KEY_MAX);
  k.mv_size = strlen(key);
  k.mv_data = (void *)key;
  rc = mdb_get(t->txn, t->st->dbi[T_IDEM], &k, &v);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "idempotency key not used yet");
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, "get idempotency");
  if (ctkn__sv_idem_read(v.mv_data, v.mv_size, &tid, &h) != CTKN_OK ||
      tid.n != CTKN_ID_LEN || h.n != CTKN_HASH_LEN)
    return corrupt(err, T_IDEM);
  memcpy(id, tid.p, CTKN_ID_LEN);
  id[CTKN_ID_LEN] = '\0';
  memcpy(hash, h.p, CTKN_HASH_LEN);
  return CTKN_OK;
}

int ctkn_store_get_rejected(ctkn_store_txn *t, int32_t partition,
                            int64_t offset, char *reason, size_t reasonsz,
                            struct ctkn_err *err)
{
  uint8_t key[COORD_KEY_LEN];
  MDB_val k = {sizeof(key), key}, v;
  struct ctkn__sv_span tid, eid, why;
  int rc;

  if ((rc = check_coord(partition, offset, err)) != CTKN_OK)
    return rc;
  coord_key(key, partition, offset);
  rc = mdb_get(t->txn, t->st->dbi[T_REJECTED], &k, &v);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND,
                     "no rejected event at partition %" PRId32
                     " offset %" PRId64,
                     partition, offset);
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, "get rejected");
  if (ctkn__sv_rejected_read(v.mv_data, v.mv_size, &tid, &eid, &why) != CTKN_OK)
    return corrupt(err, T_REJECTED);
  if (reason != NULL && reasonsz > 0) {
    size_t n = why.n < reasonsz - 1 ? why.n : reasonsz - 1;

    if (n > 0)
      memcpy(reason, why.p, n);
    reason[n] = '\0';
  }
  return CTKN_OK;
}

/*
 * Failures come back as negative CTKN_E* codes: CTKN_EINVAL for a
 * partition outside 0..CTKN_STORE_MAX_PARTITIONS-1, CTKN_ESTORE for LMDB
 * errors and corrupt values. Offsets themselves are never negative.
 */
int64_t ctkn_store_offset(ctkn_store_txn *t, int32_t partition)
{
  uint8_t key[4];
  MDB_val k = {sizeof(key), key}, v;
  uint64_t next;
  int rc;

  if (!partition_ok(partition))
    return CTKN_EINVAL;
  ctkn__put_be32(key, (uint32_t)partition);
  rc = mdb_get(t->txn, t->st->dbi[T_OFFSETS], &k, &v);
  if (rc == MDB_NOTFOUND)
    return 0;
  if (rc != MDB_SUCCESS || v.mv_size != 8)
    return CTKN_ESTORE;
  next = ctkn__get_be(v.mv_data, 8);
  return next > INT64_MAX ? CTKN_ESTORE : (int64_t)next;
}

/* Negative CTKN_ESTORE when LMDB fails. */
int64_t ctkn_store_count(ctkn_store_txn *t)
{
  MDB_stat ms;

  if (batch_sync(t, NULL) != CTKN_OK ||
      mdb_stat(t->txn, t->st->dbi[T_TOKENS], &ms) != MDB_SUCCESS)
    return CTKN_ESTORE;
  return (int64_t)ms.ms_entries;
}

/* The "revoked" count in meta, or a scan where a read-only open meets a
 * projection from before it. */
static int64_t count_revoked(ctkn_store_txn *t)
{
  MDB_val k = revoked_key, v;
  int rc;

  if (batch_sync(t, NULL) != CTKN_OK)
    return CTKN_ESTORE;
  rc = mdb_get(t->txn, t->st->dbi[T_META], &k, &v);
  if (rc == MDB_NOTFOUND)
    return scan_revoked(t->txn, t->st->dbi[T_INDEX]);
  if (rc != MDB_SUCCESS || v.mv_size != 8)
    return CTKN_ESTORE;
  return (int64_t)ctkn__get_be(v.mv_data, 8);
}

int64_t ctkn_store_count_status(ctkn_store_txn *t, unsigned status_mask)
{
  const unsigned active = 1u << CTKN_STATUS_ACTIVE;
  const unsigned revoked = 1u << CTKN_STATUS_REVOKED;
  int64_t all = ctkn_store_count(t), r;

  if (all < 0 || (status_mask & (active | revoked)) == (active | revoked))
    return all;
  if ((status_mask & (active | revoked)) == 0)
    return 0;
  if ((r = count_revoked(t)) < 0)
    return r;
  return status_mask & revoked ? r : all - r;
}

/* ---- writes ---------------------------------------------------------- */

/*
 * A record goes in with MDB_NOOVERWRITE first: for a new token that is the
 * only descent of the tokens tree, and it tells us the token is new, which
 * is the only time the index needs a write (a token string never changes).
 * An update costs a second put into the page the first one just touched.
 */
/* Move the revoked count by d (an LMDB code). */
static int add_revoked(ctkn_store_txn *t, int64_t d)
{
  MDB_val k = revoked_key, v;
  int64_t n = 0;
  int rc = mdb_get(t->txn, t->st->dbi[T_META], &k, &v);

  if (rc == MDB_SUCCESS && v.mv_size == 8)
    n = (int64_t)ctkn__get_be(v.mv_data, 8);
  else if (rc != MDB_NOTFOUND && rc != MDB_SUCCESS)
    return rc;
  return put_revoked(t->txn, t->st->dbi[T_META], n + d);
}

/* ---- a write batch's token records and index entries ------------------
 *
 * ctkn_store_batch() buffers a write txn's tokens and token_index changes
 * in two small hash maps until commit, which writes each table's entries
 * sorted, through one cursor, appending (MDB_APPEND) past the table's last
 * key. A catch-up's tokens are new and time-ordered (ULIDs; token strings
 * lead with the creation time), so most entries append; a token touched
 * several times in one batch (created, updated, revoked) is written once;
 * the revoked count moves once. Reads through the txn (get, lookup) see
 * the maps first, then the tables; a key past the table's last key at the
 * batch's start is known absent without a lookup. Every rule of
 * ctkn_store_put() holds unchanged (see batch_put()).
 */
struct brec { /* a token's record as the batch sees it */
  char id[CTKN_ID_LEN];
  bool exists;  /* false: the token has no record (a cached miss) */
  bool dirty;   /* to write at commit */
  bool guessed; /* taken as absent without a lookup: checked at commit */
  uint32_t off, len, cap; /* the encoded record in the arena */
};

struct bidx { /* a token string's index entry as the batch sees it */
  char token[CTKN_TOKEN_LEN];
  bool exists;
  bool dirty;
  bool guessed;
  uint8_t vlen; /* the stored value's size (INDEX_VALUE_LEN when sound) */
  uint8_t value[INDEX_VALUE_LEN];
};

struct bmap {          /* open addressing over an entry array */
  uint32_t *slot;      /* entry index + 1; 0: empty */
  size_t nslot;        /* a power of two, at least twice n */
  size_t n, cap, size; /* entries, capacity, entry size */
  void *e;
};

struct batch {
  struct bmap recs, idx;
  uint8_t *arena;
  size_t alen, acap;
  int64_t revoked; /* the count's change */
  bool guess;      /* ctkn_store_get_new() may guess (ctkn_store_batch()) */
  bool wrong;      /* a guess was wrong: the batch is void */
  /* Each table's last key when the batch (re)started: keys past it are
   * not in the table. */
  bool have_last_id, have_last_token;
  char last_id[CTKN_ID_LEN];
  char last_token[CTKN_TOKEN_LEN];
};

/* IDs and token strings end in random characters (one generator counts
 * up within a millisecond, so the last ones change most): mix the last 16
 * bytes so that every bit reaches the low ones (splitmix64's finalizer). */
static size_t bmap_hash(const char *key, size_t klen)
{
  uint64_t a, b;

  memcpy(&a, key + klen - 16, 8);
  memcpy(&b, key + klen - 8, 8);
  uint64_t h = a ^ (b << 32 | b >> 32);
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
  return (size_t)(h ^ (h >> 31));
}

/* The entry for key (klen bytes at the start of each entry), or NULL. */
static void *bmap_find(const struct bmap *m, const char *key, size_t klen)
{
  if (m->nslot == 0)
    return NULL;
  for (size_t i = bmap_hash(key, klen) & (m->nslot - 1);;
       i = (i + 1) & (m->nslot - 1)) {
    uint32_t s = m->slot[i];
    if (s == 0)
      return NULL;
    char *e = (char *)m->e + (size_t)(s - 1) * m->size;
    if (memcmp(e, key, klen) == 0)
      return e;
  }
}

/* A new zeroed entry with key (not present), or NULL when out of memory. */
static void *bmap_add(struct bmap *m, const char *key, size_t klen)
{
  if (m->n == m->cap) {
    size_t cap = m->cap ? 2 * m->cap : 1024;
    void *e = realloc(m->e, cap * m->size);
    if (e == NULL)
      return NULL;
    m->e = e;
    m->cap = cap;
  }
  if (2 * (m->n + 1) > m->nslot) {
    size_t nslot = m->nslot ? 2 * m->nslot : 2048;
    uint32_t *slot = calloc(nslot, sizeof(*slot));
    if (slot == NULL)
      return NULL;
    free(m->slot);
    m->slot = slot;
    m->nslot = nslot;
    for (size_t j = 0; j < m->n; j++) {
      const char *k = (const char *)m->e + j * m->size;
      size_t i = bmap_hash(k, klen) & (nslot - 1);
      while (slot[i] != 0)
        i = (i + 1) & (nslot - 1);
      slot[i] = (uint32_t)(j + 1);
    }
  }
  size_t i = bmap_hash(key, klen) & (m->nslot - 1);
  while (m->slot[i] != 0)
    i = (i + 1) & (m->nslot - 1);
  char *e = (char *)m->e + m->n * m->size;
  memset(e, 0, m->size);
  memcpy(e, key, klen);
  m->slot[i] = (uint32_t)(++m->n);
  return e;
}

static void bmap_clear(struct bmap *m)
{
  if (m->n > 0)
    memset(m->slot, 0, m->nslot * sizeof(*m->slot));
  m->n = 0;
}

static void bmap_free(struct bmap *m)
{
  free(m->slot);
  free(m->e);
}

static void batch_free(struct batch *b)
{
  if (b == NULL)
    return;
  bmap_free(&b->recs);
  bmap_free(&b->idx);
  free(b->arena);
  free(b);
}

/* The last key of table into last, when it has klen bytes (*have);
 * otherwise *have is false and nothing is known absent. */
static int table_last(ctkn_store_txn *t, int table, char *last, size_t klen,
                      bool *have)
{
  MDB_cursor *c;
  MDB_val k, v;
  int rc = mdb_cursor_open(t->txn, t->st->dbi[table], &c);

  *have = false;
  if (rc != MDB_SUCCESS)
    return rc;
  rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  mdb_cursor_close(c);
  if (rc == MDB_NOTFOUND)
    return MDB_SUCCESS;
  if (rc == MDB_SUCCESS && k.mv_size == klen) {
    memcpy(last, k.mv_data, klen);
    *have = true;
  }
  return rc;
}

static int batch_start(ctkn_store_txn *t)
{
  struct batch *b = t->batch;
  int rc = table_last(t, T_TOKENS, b->last_id, CTKN_ID_LEN, &b->have_last_id);

  if (rc == MDB_SUCCESS)
    rc = table_last(t, T_INDEX, b->last_token, CTKN_TOKEN_LEN,
                    &b->have_last_token);
  return rc;
}

int ctkn_store_batch(ctkn_store_txn *t, bool guess, struct ctkn_err *err)
{
  struct batch *b;
  int rc;

  if ((rc = need_write(t, err)) != CTKN_OK)
    return rc;
  if (t->batch != NULL)
    return CTKN_OK;
  if ((b = calloc(1, sizeof(*b))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  b->recs.size = sizeof(struct brec);
  b->idx.size = sizeof(struct bidx);
  b->guess = guess;
  t->batch = b;
  if ((rc = batch_start(t)) != MDB_SUCCESS) {
    t->batch = NULL;
    batch_free(b);
    return lmdb_err(err, rc, "batch");
  }
  return CTKN_OK;
}

/* Store len bytes as e's record, in place when they fit. */
static int brec_set(struct batch *b, struct brec *e, const void *p, size_t len)
{
  if (e->cap < len) {
    if (b->alen + len > b->acap) {
      size_t cap = b->acap ? 2 * b->acap : (size_t)1 << 20;
      while (cap < b->alen + len)
        cap *= 2;
      uint8_t *a = realloc(b->arena, cap);
      if (a == NULL)
        return -1;
      b->arena = a;
      b->acap = cap;
    }
    e->off = (uint32_t)b->alen;
    e->cap = (uint32_t)len;
    b->alen += len;
  }
  memcpy(b->arena + e->off, p, len);
  e->len = (uint32_t)len;
  return 0;
}

/* id's entry, loaded from the table when the batch has not seen it. */
static int brec_load(ctkn_store_txn *t, const char *id, bool guess,
                     struct brec **out, struct ctkn_err *err)
{
  struct batch *b = t->batch;
  struct brec *e = bmap_find(&b->recs, id, CTKN_ID_LEN);
  MDB_val k = {CTKN_ID_LEN, (void *)id}, v;
  int rc = MDB_NOTFOUND;
  bool guessed = false;

  if (e != NULL) {
    *out = e;
    return CTKN_OK;
  }
  if (!b->have_last_id || memcmp(id, b->last_id, CTKN_ID_LEN) <= 0) {
    if (guess && b->guess)
      guessed = true;
    else
      rc = mdb_get(t->txn, t->st->dbi[T_TOKENS], &k, &v);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return lmdb_err(err, rc, "get tokens");
  if ((e = bmap_add(&b->recs, id, CTKN_ID_LEN)) == NULL ||
      (rc == MDB_SUCCESS && brec_set(b, e, v.mv_data, v.mv_size) != 0))
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  e->exists = rc == MDB_SUCCESS;
  e->guessed = guessed;
  *out = e;
  return CTKN_OK;
}

/* token's index entry, loaded from the table when not seen. */
static int bidx_load(ctkn_store_txn *t, const char *token, bool guess,
                     struct bidx **out, struct ctkn_err *err)
{
  struct batch *b = t->batch;
  struct bidx *e = bmap_find(&b->idx, token, CTKN_TOKEN_LEN);
  MDB_val k = {CTKN_TOKEN_LEN, (void *)token}, v;
  int rc = MDB_NOTFOUND;
  bool guessed = false;

  if (e != NULL) {
    *out = e;
    return CTKN_OK;
  }
  if (!b->have_last_token ||
      memcmp(token, b->last_token, CTKN_TOKEN_LEN) <= 0) {
    if (guess)
      guessed = true;
    else
      rc = mdb_get(t->txn, t->st->dbi[T_INDEX], &k, &v);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return lmdb_err(err, rc, "get token_index");
  if ((e = bmap_add(&b->idx, token, CTKN_TOKEN_LEN)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  e->guessed = guessed;
  if (rc == MDB_SUCCESS) {
    e->exists = true;
    /* A value of another size is corrupt; keep what tells it apart. */
    e->vlen = (uint8_t)(v.mv_size < INDEX_VALUE_LEN   ? v.mv_size
                        : v.mv_size > INDEX_VALUE_LEN ? INDEX_VALUE_LEN + 1
                                                      : INDEX_VALUE_LEN);
    memcpy(e->value, v.mv_data,
           v.mv_size < INDEX_VALUE_LEN ? v.mv_size : INDEX_VALUE_LEN);
  }
  *out = e;
  return CTKN_OK;
}

static void bidx_set(struct bidx *e, const char *id, ctkn_status status)
{
  e->exists = true;
  e->dirty = true;
  e->vlen = INDEX_VALUE_LEN;
  memcpy(e->value, id, CTKN_ID_LEN);
  e->value[CTKN_ID_LEN] = (uint8_t)status;
}

/* ctkn_store_put() into the batch: the same outcomes, rule for rule. */
static int batch_put(ctkn_store_txn *t, const struct ctkn_record *rec,
                     const uint8_t *buf, size_t len, struct ctkn_err *err)
{
  struct batch *b = t->batch;
  const char *id = rec->token.id;
  struct brec *e;
  struct bidx *x;
  int rc;

  if ((rc = brec_load(t, id, false, &e, err)) != CTKN_OK)
    return rc;
  if (e->exists) {
    if (brec_set(b, e, buf, len) != 0)
      return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
    e->dirty = true;
    if (rec->token.status != CTKN_STATUS_REVOKED)
      return CTKN_OK;
    /* Revoked is terminal: count the token once, when its entry turns. */
    if ((rc = bidx_load(t, rec->token.token, false, &x, err)) != CTKN_OK)
      return rc;
    bool turned = !x->exists || x->vlen != INDEX_VALUE_LEN ||
                  x->value[CTKN_ID_LEN] != CTKN_STATUS_REVOKED;
    bidx_set(x, id, rec->token.status);
    if (turned)
      b->revoked++;
    return CTKN_OK;
  }
  /* A token guessed new claims its string on a guess too. */
  if ((rc = bidx_load(t, rec->token.token, e->guessed, &x, err)) != CTKN_OK)
    return rc;
  if (x->exists) {
    char other[CTKN_ID_BUF];

    if (x->vlen == INDEX_VALUE_LEN && memcmp(x->value, id, CTKN_ID_LEN) == 0) {
      if (brec_set(b, e, buf, len) != 0)
        return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
      e->exists = e->dirty = true;
      return CTKN_OK;
    }
    snprintf(other, sizeof(other), "%.*s",
             x->vlen < CTKN_ID_LEN ? (int)x->vlen : CTKN_ID_LEN,
             (const char *)x->value);
    return ctkn__err_field(err, CTKN_ECONFLICT, "token",
                           "token string already belongs to %s", other);
  }
  if (brec_set(b, e, buf, len) != 0)
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  e->exists = e->dirty = true;
  bidx_set(x, id, rec->token.status);
  if (rec->token.status == CTKN_STATUS_REVOKED)
    b->revoked++;
  return CTKN_OK;
}

static int batch_get(ctkn_store_txn *t, const char *id, bool guess,
                     struct ctkn_record *out, struct ctkn_err *err)
{
  struct brec *e;
  int rc = brec_load(t, id, guess, &e, err);

  if (rc != CTKN_OK)
    return rc;
  if (!e->exists)
    return ctkn__err(err, CTKN_ENOTFOUND, "no token has this ID");
  MDB_val v = {e->len, t->batch->arena + e->off};
  return decode_record(&v, id, out, err);
}

int ctkn_store_get_new(ctkn_store_txn *t, const char *id,
                       struct ctkn_record *out, struct ctkn_err *err)
{
  if (t->batch == NULL || !has_len(id, CTKN_ID_LEN))
    return ctkn_store_get(t, id, out, err);
  return batch_get(t, id, true, out, err);
}

int ctkn_store_batch_write(ctkn_store_txn *t, bool *wrong, struct ctkn_err *err)
{
  int rc;

  *wrong = false;
  if (t->batch == NULL)
    return CTKN_OK;
  rc = batch_flush(t, err);
  *wrong = t->batch->wrong;
  return rc;
}

/* token's index value as the batch sees it: MDB_SUCCESS, MDB_NOTFOUND, or
 * BATCH_UNSEEN when the batch has not seen it (ask the table). */
static int batch_lookup(ctkn_store_txn *t, const char *token, MDB_val *v)
{
  struct bidx *e = bmap_find(&t->batch->idx, token, CTKN_TOKEN_LEN);

  if (e == NULL)
    return BATCH_UNSEEN;
  if (!e->exists)
    return MDB_NOTFOUND;
  v->mv_size = e->vlen;
  v->mv_data = e->value;
  return MDB_SUCCESS;
}

static int brec_cmp(const void *a, const void *b)
{
  return memcmp(*(const struct brec *const *)a, *(const struct brec *const *)b,
                CTKN_ID_LEN);
}

static int bidx_cmp(const void *a, const void *b)
{
  return memcmp(*(const struct bidx *const *)a, *(const struct bidx *const *)b,
                CTKN_TOKEN_LEN);
}

/* Put n entries, sorted by their first klen bytes (the key), through one
 * cursor, appending from the first key past the table's last one. */
static int put_sorted(ctkn_store_txn *t, int table, void *const *e, size_t n,
                      size_t klen, const void *ctx,
                      unsigned (*val)(const void *ctx, const void *e,
                                      MDB_val *v))
{
  uint8_t last[512];
  size_t llen = 0;
  MDB_cursor *c;
  MDB_val k, v;
  bool append;
  int rc;

  if (n == 0)
    return MDB_SUCCESS;
  if ((rc = mdb_cursor_open(t->txn, t->st->dbi[table], &c)) != MDB_SUCCESS)
    return rc;
  rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
  append = rc == MDB_NOTFOUND;
  if (rc == MDB_SUCCESS) {
    llen = k.mv_size < sizeof(last) ? k.mv_size : sizeof(last);
    memcpy(last, k.mv_data, llen);
  } else if (rc != MDB_NOTFOUND) {
    mdb_cursor_close(c);
    return rc;
  }
  rc = MDB_SUCCESS;
  for (size_t i = 0; i < n && rc == MDB_SUCCESS; i++) {
    if (!append) {
      /* LMDB's order: the bytes, then the length. Sorted, so once past
       * the last key every later one is too. */
      int d = memcmp(e[i], last, klen < llen ? klen : llen);
      append = d > 0 || (d == 0 && klen > llen);
    }
    k.mv_size = klen;
    k.mv_data = e[i];
    unsigned flags = val(ctx, e[i], &v);
    rc = mdb_cursor_put(c, &k, &v, append ? MDB_APPEND : flags);
  }
  mdb_cursor_close(c);
  return rc;
}

/* A key taken as absent goes in with MDB_NOOVERWRITE: MDB_KEYEXIST says
 * the guess was wrong. */
static unsigned brec_val(const void *arena, const void *p, MDB_val *v)
{
  const struct brec *e = p;

  v->mv_size = e->len;
  v->mv_data = (uint8_t *)arena + e->off;
  return e->guessed ? MDB_NOOVERWRITE : 0;
}

static unsigned bidx_val(const void *ctx, const void *p, MDB_val *v)
{
  const struct bidx *e = p;

  (void)ctx;
  v->mv_size = INDEX_VALUE_LEN;
  v->mv_data = (void *)e->value;
  return e->guessed ? MDB_NOOVERWRITE : 0;
}

/* A failed write of the batch; MDB_KEYEXIST: a guess was wrong. */
static int batch_failed(struct batch *b, int rc, struct ctkn_err *err,
                        const char *what)
{
  if (rc != MDB_KEYEXIST)
    return lmdb_err(err, rc, what);
  b->wrong = true;
  return ctkn__err(err, CTKN_ECONFLICT,
                   "batch: a key guessed new was there; apply it again "
                   "without guessing");
}

/* Write the batch into the tables and start it afresh. */
static int batch_flush(ctkn_store_txn *t, struct ctkn_err *err)
{
  struct batch *b = t->batch;
  size_t n = b->recs.n > b->idx.n ? b->recs.n : b->idx.n, k = 0;
  void **e = n ? malloc(n * sizeof(*e)) : NULL;
  int rc;

  if (b->wrong) {
    free(e);
    return ctkn__err(err, CTKN_ECONFLICT, "batch: a guess was wrong");
  }
  if (n > 0 && e == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "batch: out of memory");
  for (size_t i = 0; i < b->recs.n; i++) {
    struct brec *r = (struct brec *)b->recs.e + i;
    if (r->dirty) {
      e[k++] = r;
    } else if (r->guessed) {
      /* Read as absent, never written (say a create that was rejected
       * for another reason): look now. */
      MDB_val rk = {CTKN_ID_LEN, r->id}, rv;
      rc = mdb_get(t->txn, t->st->dbi[T_TOKENS], &rk, &rv);
      if (rc == MDB_SUCCESS)
        rc = MDB_KEYEXIST;
      if (rc != MDB_NOTFOUND) {
        free(e);
        return batch_failed(b, rc, err, "get tokens");
      }
    }
  }
  if (k > 1)
    qsort(e, k, sizeof(*e), brec_cmp);
  rc = put_sorted(t, T_TOKENS, e, k, CTKN_ID_LEN, b->arena, brec_val);
  if (rc != MDB_SUCCESS) {
    free(e);
    return batch_failed(b, rc, err, "put tokens");
  }
  k = 0;
  for (size_t i = 0; i < b->idx.n; i++) {
    struct bidx *x = (struct bidx *)b->idx.e + i;
    if (x->dirty)
      e[k++] = x;
  }
  if (k > 1)
    qsort(e, k, sizeof(*e), bidx_cmp);
  rc = put_sorted(t, T_INDEX, e, k, CTKN_TOKEN_LEN, NULL, bidx_val);
  free(e);
  if (rc != MDB_SUCCESS)
    return batch_failed(b, rc, err, "put token_index");
  if (b->revoked != 0 && (rc = add_revoked(t, b->revoked)) != MDB_SUCCESS)
    return lmdb_err(err, rc, "revoked count");
  bmap_clear(&b->recs);
  bmap_clear(&b->idx);
  b->alen = 0;
  b->revoked = 0;
  if ((rc = batch_start(t)) != MDB_SUCCESS)
    return lmdb_err(err, rc, "batch");
  return CTKN_OK;
}

/* Before a read that walks or counts the tables: write the batch out. */
static int batch_sync(ctkn_store_txn *t, struct ctkn_err *err)
{
  if (t->batch == NULL)
    return CTKN_OK;
  return batch_flush(t, err);
}

int ctkn_store_put(ctkn_store_txn *t, const struct ctkn_record *rec,
                   struct ctkn_err *err)
{
  const char *id = rec->token.id;
  const char *token = rec->token.token;
  MDB_dbi tokens = t->st->dbi[T_TOKENS];
  uint8_t buf[CTKN_RECORD_MAX];
  size_t len;
  MDB_val k, v, ik, iv;
  int rc;

  if ((rc = need_write(t, err)) != CTKN_OK)
    return rc;
  if (!has_len(id, CTKN_ID_LEN))
    return ctkn__err_field(err, CTKN_EINVAL, "id", "an ID has %d characters",
                           CTKN_ID_LEN);
  if (!has_len(token, CTKN_TOKEN_LEN))
    return ctkn__err_field(err, CTKN_EINVAL, "token",
                           "a token string has %d characters", CTKN_TOKEN_LEN);
  if ((rc = ctkn_record_encode_into(rec, buf, sizeof(buf), &len, err)) !=
      CTKN_OK)
    return rc;
  if (t->batch != NULL)
    return batch_put(t, rec, buf, len, err);

  k.mv_size = CTKN_ID_LEN;
  k.mv_data = (void *)id;
  v.mv_size = len;
  v.mv_data = buf;
  /* The index value is the ID and the status, so that verify answers from
   * one lookup. A token string never changes and revoked is terminal, so
   * the entry is written when the token is new and once more on revoke. */
  uint8_t entry[INDEX_VALUE_LEN];
  memcpy(entry, id, CTKN_ID_LEN);
  entry[CTKN_ID_LEN] = (uint8_t)rec->token.status;
  ik.mv_size = CTKN_TOKEN_LEN;
  ik.mv_data = (void *)token;
  iv.mv_size = sizeof(entry);
  iv.mv_data = entry;

  rc = mdb_put(t->txn, tokens, &k, &v, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) {
    v.mv_size = len; /* KEYEXIST pointed v at the stored value */
    v.mv_data = buf;
    rc = mdb_put(t->txn, tokens, &k, &v, 0);
    if (rc != MDB_SUCCESS)
      return lmdb_err(err, rc, "put tokens");
    if (rec->token.status != CTKN_STATUS_REVOKED)
      return CTKN_OK;
    /* Revoked is terminal: count the token once, when its entry turns. */
    MDB_val ok = ik, old;
    rc = mdb_get(t->txn, t->st->dbi[T_INDEX], &ok, &old);
    bool turned =
        rc != MDB_SUCCESS || old.mv_size != INDEX_VALUE_LEN ||
        ((const uint8_t *)old.mv_data)[CTKN_ID_LEN] != CTKN_STATUS_REVOKED;
    rc = mdb_put(t->txn, t->st->dbi[T_INDEX], &ik, &iv, 0);
    if (rc == MDB_SUCCESS && turned)
      rc = add_revoked(t, 1);
    return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "put token_index");
  }
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, "put tokens");

  rc = mdb_put(t->txn, t->st->dbi[T_INDEX], &ik, &iv, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) {
    char other[CTKN_ID_BUF];

    if (iv.mv_size == INDEX_VALUE_LEN &&
        memcmp(iv.mv_data, id, CTKN_ID_LEN) == 0)
      return CTKN_OK;
    /* The string belongs to another token: take the new record back out,
     * so the txn stays consistent and the caller may reject the event. */
    snprintf(other, sizeof(other), "%.*s",
             iv.mv_size < CTKN_ID_LEN ? (int)iv.mv_size : CTKN_ID_LEN,
             (const char *)iv.mv_data);
    rc = mdb_del(t->txn, tokens, &k, NULL);
    if (rc != MDB_SUCCESS)
      return lmdb_err(err, rc, "del tokens");
    return ctkn__err_field(err, CTKN_ECONFLICT, "token",
                           "token string already belongs to %s", other);
  }
  if (rc == MDB_SUCCESS && rec->token.status == CTKN_STATUS_REVOKED)
    rc = add_revoked(t, 1);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "put token_index");
}

/*
 * Put one positions entry through c: the key is the partition, the value
 * the offset and then the history key, so a partition's entries are its
 * duplicates in offset order. Offsets only grow, so the value appends to
 * them (MDB_APPENDDUP: no descent through the partition's entries); one
 * that does not goes in its place.
 */
static int put_pos(MDB_cursor *c, int32_t partition, int64_t offset,
                   const uint8_t hkey[HIST_KEY_LEN])
{
  uint8_t pk[4], pv[POS_VALUE_LEN];
  MDB_val k = {sizeof(pk), pk}, v = {sizeof(pv), pv};
  int rc;

  ctkn__put_be32(pk, (uint32_t)partition);
  ctkn__put_be64(pv, (uint64_t)offset);
  memcpy(pv + 8, hkey, HIST_KEY_LEN);
  rc = mdb_cursor_put(c, &k, &v, MDB_APPENDDUP);
  if (rc == MDB_KEYEXIST) {
    v.mv_size = sizeof(pv);
    v.mv_data = pv;
    rc = mdb_cursor_put(c, &k, &v, 0);
  }
  return rc;
}

/* The positions entry of the history entry whose key is hkey. */
static int put_position(ctkn_store_txn *t, int32_t partition, int64_t offset,
                        const uint8_t hkey[HIST_KEY_LEN], struct ctkn_err *err)
{
  MDB_cursor *c;
  int rc = mdb_cursor_open(t->txn, t->st->dbi[T_POSITIONS], &c);

  if (rc == MDB_SUCCESS) {
    rc = put_pos(c, partition, offset, hkey);
    mdb_cursor_close(c);
  }
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "put positions");
}

int ctkn_store_put_history(ctkn_store_txn *t, const char *id, uint64_t version,
                           int32_t partition, int64_t offset, const void *value,
                           size_t len, struct ctkn_err *err)
{
  uint8_t key[HIST_KEY_LEN];
  MDB_val k = {sizeof(key), key};
  struct ctkn__sv_gather g;
  int rc;

  if ((rc = need_write(t, err)) != CTKN_OK)
    return rc;
  if (!has_len(id, CTKN_ID_LEN))
    return ctkn__err_field(err, CTKN_EINVAL, "id", "an ID has %d characters",
                           CTKN_ID_LEN);
  if ((rc = check_coord(partition, offset, err)) != CTKN_OK)
    return rc;
  if (value == NULL && len > 0)
    return ctkn__err(err, CTKN_EINVAL, "history value is NULL");
  memcpy(key, id, CTKN_ID_LEN);
  ctkn__put_be64(key + CTKN_ID_LEN, version);
  if (ctkn__sv_history_pack(&g, partition, offset, value, len) != CTKN_OK)
    return ctkn__err(err, CTKN_EINTERNAL, "history value does not pack");
  if ((rc = put_gather(t, T_HISTORY, &k, &g, 0, err)) != CTKN_OK)
    return rc;
  return put_position(t, partition, offset, key, err);
}

static int history_cmp(const void *a, const void *b)
{
  const struct ctkn_store_history_put *x = a, *y = b;
  int c = memcmp(x->id, y->id, CTKN_ID_LEN);

  if (c != 0)
    return c;
  return x->version < y->version ? -1 : x->version > y->version;
}

/* A positions entry of a batch: the key, then the value. */
struct pos {
  uint8_t key[COORD_KEY_LEN];
  uint8_t hkey[HIST_KEY_LEN];
};

static int pos_cmp(const void *a, const void *b)
{
  return memcmp(*(const struct pos *const *)a, *(const struct pos *const *)b,
                COORD_KEY_LEN);
}

/* The positions entries of n sorted history entries, sorted in turn and
 * put through one cursor: each partition's offsets only grow, so they
 * append, or land beside the previous batch's. */
static int put_positions(ctkn_store_txn *t,
                         const struct ctkn_store_history_put *e, size_t n,
                         struct ctkn_err *err)
{
  struct pos *p = malloc(n * sizeof(*p));
  void **o = malloc(n * sizeof(*o));
  int rc;

  if (p == NULL || o == NULL) {
    free(p);
    free(o);
    return ctkn__err(err, CTKN_ENOMEM, "positions: out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    coord_key(p[i].key, e[i].partition, e[i].offset);
    memcpy(p[i].hkey, e[i].id, CTKN_ID_LEN);
    ctkn__put_be64(p[i].hkey + CTKN_ID_LEN, e[i].version);
    o[i] = &p[i];
  }
  if (n > 1)
    qsort(o, n, sizeof(*o), pos_cmp);
  MDB_cursor *c = NULL;
  rc = mdb_cursor_open(t->txn, t->st->dbi[T_POSITIONS], &c);
  for (size_t i = 0; rc == MDB_SUCCESS && i < n; i++) {
    const struct pos *q = o[i];
    rc = put_pos(c, (int32_t)ctkn__get_be(q->key, 4),
                 (int64_t)ctkn__get_be(q->key + 4, 8), q->hkey);
  }
  if (c != NULL)
    mdb_cursor_close(c);
  free(p);
  free(o);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "put positions");
}

int ctkn_store_put_history_batch(ctkn_store_txn *t,
                                 struct ctkn_store_history_put *e, size_t n,
                                 struct ctkn_err *err)
{
  uint8_t key[HIST_KEY_LEN], last[HIST_KEY_LEN];
  MDB_val k = {sizeof(key), key}, lk, lv;
  MDB_cursor *c;
  bool have_last;
  int rc;

  if ((rc = need_write(t, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < n; i++) {
    if (!has_len(e[i].id, CTKN_ID_LEN))
      return ctkn__err_field(err, CTKN_EINVAL, "id", "an ID has %d characters",
                             CTKN_ID_LEN);
    if ((rc = check_coord(e[i].partition, e[i].offset, err)) != CTKN_OK)
      return rc;
    if (e[i].value == NULL && e[i].len > 0)
      return ctkn__err(err, CTKN_EINVAL, "history value is NULL");
  }
  if (n == 0)
    return CTKN_OK;
  qsort(e, n, sizeof(*e), history_cmp);
  if ((rc = mdb_cursor_open(t->txn, t->st->dbi[T_HISTORY], &c)) != 0)
    return lmdb_err(err, rc, "cursor history");
  rc = mdb_cursor_get(c, &lk, &lv, MDB_LAST);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
    mdb_cursor_close(c);
    return lmdb_err(err, rc, "last history");
  }
  have_last = rc == MDB_SUCCESS && lk.mv_size == sizeof(last);
  if (have_last)
    memcpy(last, lk.mv_data, sizeof(last));
  for (size_t i = 0; i < n; i++) {
    struct ctkn__sv_gather g;

    memcpy(key, e[i].id, CTKN_ID_LEN);
    ctkn__put_be64(key + CTKN_ID_LEN, e[i].version);
    if (ctkn__sv_history_pack(&g, e[i].partition, e[i].offset, e[i].value,
                              e[i].len) != CTKN_OK) {
      mdb_cursor_close(c);
      return ctkn__err(err, CTKN_EINTERNAL, "history value does not pack");
    }
    /* Past the last key: append. Sorted, so the rest follow. */
    bool append = !have_last || memcmp(key, last, sizeof(key)) > 0;
    MDB_val v = {g.total, NULL};
    rc = mdb_cursor_put(c, &k, &v, MDB_RESERVE | (append ? MDB_APPEND : 0));
    if (rc != MDB_SUCCESS) {
      mdb_cursor_close(c);
      return lmdb_err(err, rc, "put history");
    }
    ctkn__sv_copy(&g, v.mv_data);
    if (append) {
      memcpy(last, key, sizeof(last));
      have_last = true;
    }
  }
  mdb_cursor_close(c);
  return put_positions(t, e, n, err);
}

int ctkn_store_put_rejected(ctkn_store_txn *t, int32_t partition,
                            int64_t offset, const char *event_id,
                            const char *token_id, const char *reason,
                            struct ctkn_err *err)
{
  uint8_t key[COORD_KEY_LEN];
  MDB_val k = {sizeof(key), key};
  struct ctkn__sv_gather g;
  int rc;

  if ((rc = need_write(t, err)) != CTKN_OK)
    return rc;
  if ((rc = check_coord(partition, offset, err)) != CTKN_OK)
    return rc;
  if (reason == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "reason", "reason is NULL");
  coord_key(key, partition, offset);
  if (ctkn__sv_rejected_pack(&g, token_id, event_id, reason) != CTKN_OK)
    return ctkn__err(err, CTKN_EINTERNAL, "rejected value does not pack");
  return put_gather(t, T_REJECTED, &k, &g, 0, err);
}

int ctkn_store_put_quarantine(ctkn_store_txn *t, int32_t partition,
                              int64_t offset, const char *reason,
                              const void *key, size_t klen, const void *value,
                              size_t vlen, struct ctkn_err *err)
{
  uint8_t kb[COORD_KEY_LEN];
  MDB_val k = {sizeof(kb), kb};
  struct ctkn__sv_gather g;
  int rc;

  if ((rc = need_write(t, err)) != CTKN_OK)
    return rc;
  if ((rc = check_coord(partition, offset, err)) != CTKN_OK)
    return rc;
  if (reason == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "reason", "reason is NULL");
  if ((key == NULL && klen > 0) || (value == NULL && vlen > 0))
    return ctkn__err(err, CTKN_EINVAL, "quarantined bytes are NULL");
  coord_key(kb, partition, offset);
  if (ctkn__sv_quarantine_pack(&g, reason, key, klen, value, vlen) != CTKN_OK)
    return ctkn__err(err, CTKN_EINTERNAL, "quarantine value does not pack");
  return put_gather(t, T_QUARANTINE, &k, &g, 0, err);
}

/*
 * First writer wins: a key already stored with the same token and hash is
 * a no-op, with anything else CTKN_ECONFLICT (the projector should have
 * asked ctkn_store_get_idem() first; this keeps the invariant anyway).
 */
int ctkn_store_put_idem(ctkn_store_txn *t, const char *key, const char *id,
                        const uint8_t hash[CTKN_HASH_LEN], struct ctkn_err *err)
{
  MDB_val k, v;
  struct ctkn__sv_gather g;
  uint8_t packed[128];
  int rc;

  if ((rc = need_write(t, err)) != CTKN_OK)
    return rc;
  if (!idem_key_ok(key))
    return ctkn__err_field(err, CTKN_EINVAL, "idempotency_key",
                           "an idempotency key has 1 to %d bytes",
                           CTKN_IDEM_KEY_MAX);
  if (!has_len(id, CTKN_ID_LEN))
    return ctkn__err_field(err, CTKN_EINVAL, "id", "an ID has %d characters",
                           CTKN_ID_LEN);
  k.mv_size = strlen(key);
  k.mv_data = (void *)key;

  if (ctkn__sv_idem_pack(&g, id, hash) != CTKN_OK || g.total > sizeof(packed))
    return ctkn__err(err, CTKN_EINTERNAL, "idempotency value does not pack");
  ctkn__sv_copy(&g, packed);

  v.mv_size = g.total;
  v.mv_data = packed;
  rc = mdb_put(t->txn, t->st->dbi[T_IDEM], &k, &v, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) {
    if (v.mv_size == g.total && memcmp(v.mv_data, packed, g.total) == 0)
      return CTKN_OK;
    return ctkn__err_field(err, CTKN_ECONFLICT, "idempotency_key",
                           "idempotency key already used for another "
                           "request");
  }
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "put idempotency");
}

int ctkn_store_set_offset(ctkn_store_txn *t, int32_t partition, int64_t next,
                          struct ctkn_err *err)
{
  uint8_t key[4], val[8];
  MDB_val k = {sizeof(key), key}, v = {sizeof(val), val};
  int rc;

  if ((rc = need_write(t, err)) != CTKN_OK)
    return rc;
  if ((rc = check_coord(partition, next, err)) != CTKN_OK)
    return rc;
  ctkn__put_be32(key, (uint32_t)partition);
  ctkn__put_be64(val, (uint64_t)next);
  rc = mdb_put(t->txn, t->st->dbi[T_OFFSETS], &k, &v, 0);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "put offsets");
}

/* ---- iteration ------------------------------------------------------- */

static int open_cursor(ctkn_store_txn *t, int table, MDB_cursor **c,
                       struct ctkn_err *err)
{
  int rc = mdb_cursor_open(t->txn, t->st->dbi[table], c);

  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "mdb_cursor_open");
}

/*
 * Listing is a scan of the tokens table in ID order from the cursor. With
 * a status filter that most tokens fail (revoked tokens among millions of
 * active ones), it reads and decodes every skipped token: cost grows with
 * the tokens between `after` and the page's end, not with the page. A
 * status index would make it proportional to the page; format 1 has none.
 */
int ctkn_store_list(ctkn_store_txn *t, const char *after, bool desc,
                    unsigned status_mask, size_t limit, struct ctkn_record *out,
                    size_t *n, bool *has_more, struct ctkn_err *err)
{
  const unsigned all = (1u << CTKN_STATUS_ACTIVE) | (1u << CTKN_STATUS_REVOKED);
  MDB_cursor_op step = desc ? MDB_PREV : MDB_NEXT;
  struct ctkn_record spare;
  MDB_cursor *c;
  MDB_val k, v;
  size_t alen = after == NULL ? 0 : strlen(after);
  int rc;

  *n = 0;
  *has_more = false;
  if (alen > (size_t)mdb_env_get_maxkeysize(t->st->env))
    return ctkn__err_field(err, CTKN_EINVAL, "after",
                           "after is not a token ID");
  if ((status_mask & all) == 0)
    return CTKN_OK;
  if ((rc = batch_sync(t, err)) != CTKN_OK ||
      (rc = open_cursor(t, T_TOKENS, &c, err)) != CTKN_OK)
    return rc;

  /* Position on the first key strictly beyond `after` in list order. */
  if (alen == 0) {
    rc = mdb_cursor_get(c, &k, &v, desc ? MDB_LAST : MDB_FIRST);
  } else {
    k.mv_size = alen;
    k.mv_data = (void *)after;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); /* first key >= after */
    if (desc && (rc == MDB_SUCCESS || rc == MDB_NOTFOUND))
      rc = mdb_cursor_get(c, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
    else if (rc == MDB_SUCCESS && k.mv_size == alen &&
             memcmp(k.mv_data, after, alen) == 0)
      rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  }

  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(c, &k, &v, step)) {
    struct ctkn_record *r = *n < limit ? &out[*n] : &spare;
    char id[CTKN_ID_BUF];

    if (k.mv_size != CTKN_ID_LEN) {
      rc = ctkn__err(err, CTKN_ESTORE, "corrupt key in tokens");
      goto done;
    }
    memcpy(id, k.mv_data, CTKN_ID_LEN);
    id[CTKN_ID_LEN] = '\0';
    if ((rc = decode_record(&v, id, r, err)) != CTKN_OK)
      goto done;
    if ((status_mask & (1u << r->token.status)) == 0)
      continue;
    if (r == &spare) {
      *has_more = true;
      break;
    }
    (*n)++;
  }
  if (rc == MDB_SUCCESS || rc == MDB_NOTFOUND)
    rc = CTKN_OK;
  else
    rc = lmdb_err(err, rc, "list tokens");
done:
  mdb_cursor_close(c);
  return rc;
}

int ctkn_store_history(ctkn_store_txn *t, const char *id,
                       ctkn_store_history_cb cb, void *arg,
                       struct ctkn_err *err)
{
  uint8_t key[HIST_KEY_LEN];
  MDB_val k = {sizeof(key), key}, v;
  MDB_cursor *c;
  bool found = false;
  int rc;

  if (!has_len(id, CTKN_ID_LEN))
    return ctkn__err(err, CTKN_ENOTFOUND, "no history for this ID");
  memcpy(key, id, CTKN_ID_LEN);
  memset(key + CTKN_ID_LEN, 0, 8);
  if ((rc = open_cursor(t, T_HISTORY, &c, err)) != CTKN_OK)
    return rc;

  for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    struct ctkn__sv_span body;
    int64_t partition, offset;

    if (k.mv_size < CTKN_ID_LEN || memcmp(k.mv_data, id, CTKN_ID_LEN) != 0)
      break;
    if (k.mv_size != HIST_KEY_LEN ||
        ctkn__sv_history_read(v.mv_data, v.mv_size, NULL, &partition, &offset,
                              &body) != CTKN_OK ||
        partition < 0 || partition >= CTKN_STORE_MAX_PARTITIONS || offset < 0) {
      rc = corrupt(err, T_HISTORY);
      goto done;
    }
    found = true;
    rc = cb(arg, ctkn__get_be((const uint8_t *)k.mv_data + CTKN_ID_LEN, 8),
            (int32_t)partition, offset, body.p, body.n);
    if (rc != 0)
      goto done;
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    rc = lmdb_err(err, rc, "walk history");
  else if (!found)
    rc = ctkn__err(err, CTKN_ENOTFOUND, "no history for this ID");
  else
    rc = CTKN_OK;
done:
  mdb_cursor_close(c);
  return rc;
}

/* Decoded (partition, offset) of a coordinate key; false when corrupt. */
static bool read_coord(const MDB_val *k, int32_t *partition, int64_t *offset)
{
  uint64_t p, o;

  if (k->mv_size != COORD_KEY_LEN)
    return false;
  p = ctkn__get_be(k->mv_data, 4);
  o = ctkn__get_be((const uint8_t *)k->mv_data + 4, 8);
  if (p >= CTKN_STORE_MAX_PARTITIONS || o > INT64_MAX)
    return false;
  *partition = (int32_t)p;
  *offset = (int64_t)o;
  return true;
}

/*
 * Walk rejected or quarantine, whose values are both a 3-array: rejected
 * [token ID, event ID, reason], quarantine [reason, key, value].
 */
static int walk_coords(ctkn_store_txn *t, int table, ctkn_store_coord_cb cb,
                       void *arg, struct ctkn_err *err)
{
  bool rej = table == T_REJECTED;
  struct strbuf reason = {NULL, 0};
  MDB_cursor *c;
  MDB_val k, v;
  int rc;

  if ((rc = open_cursor(t, table, &c, err)) != CTKN_OK)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    struct ctkn__sv_span a, b, why;
    int32_t partition;
    int64_t offset;
    bool ok;

    ok = read_coord(&k, &partition, &offset) &&
         (rej ? ctkn__sv_rejected_read(v.mv_data, v.mv_size, &a, &b, &why)
              : ctkn__sv_quarantine_read(v.mv_data, v.mv_size, &why, &a, &b)) ==
             CTKN_OK;
    if (!ok || memchr(why.p, '\0', why.n) != NULL) {
      rc = corrupt(err, table);
      goto done;
    }
    if ((rc = strbuf_set(&reason, why.p, why.n, err)) != CTKN_OK)
      goto done;
    rc = cb(arg, partition, offset, reason.p, a.p, a.n, b.p, b.n);
    if (rc != 0)
      goto done;
  }
  if (rc == MDB_NOTFOUND)
    rc = CTKN_OK;
  else
    rc = lmdb_err(err, rc, "walk");
done:
  mdb_cursor_close(c);
  free(reason.p);
  return rc;
}

int ctkn_store_quarantine(ctkn_store_txn *t, ctkn_store_coord_cb cb, void *arg,
                          struct ctkn_err *err)
{
  return walk_coords(t, T_QUARANTINE, cb, arg, err);
}

int ctkn_store_rejected(ctkn_store_txn *t, ctkn_store_coord_cb cb, void *arg,
                        struct ctkn_err *err)
{
  return walk_coords(t, T_REJECTED, cb, arg, err);
}

int ctkn_store_offsets(ctkn_store_txn *t, ctkn_store_offset_cb cb, void *arg,
                       struct ctkn_err *err)
{
  MDB_cursor *c;
  MDB_val k, v;
  int rc;

  if ((rc = open_cursor(t, T_OFFSETS, &c, err)) != CTKN_OK)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    uint64_t p, next;

    if (k.mv_size != 4 || v.mv_size != 8 ||
        (p = ctkn__get_be(k.mv_data, 4)) >= CTKN_STORE_MAX_PARTITIONS ||
        (next = ctkn__get_be(v.mv_data, 8)) > INT64_MAX) {
      rc = corrupt(err, T_OFFSETS);
      goto done;
    }
    rc = cb(arg, (int32_t)p, (int64_t)next);
    if (rc != 0)
      goto done;
  }
  rc = rc == MDB_NOTFOUND ? CTKN_OK : lmdb_err(err, rc, "walk offsets");
done:
  mdb_cursor_close(c);
  return rc;
}

/* ---- digest ---------------------------------------------------------- */

/*
 * SHA-256 input goes through a 64 KiB buffer: the tables are millions of
 * short keys and values, and one EVP update per length prefix would cost
 * more than the hashing.
 */
struct hbuf {
  ctkn_sha256 *h;
  size_t len;
  uint8_t buf[64 * 1024];
};

static void hbuf_add(struct hbuf *b, const void *p, size_t n)
{
  if (n > sizeof(b->buf) - b->len) {
    ctkn_sha256_update(b->h, b->buf, b->len);
    b->len = 0;
  }
  if (n >= sizeof(b->buf)) {
    ctkn_sha256_update(b->h, p, n);
    return;
  }
  memcpy(b->buf + b->len, p, n);
  b->len += n;
}

static void hbuf_bytes(struct hbuf *b, const void *p, size_t n)
{
  uint8_t len[8];

  ctkn__put_be64(len, n);
  hbuf_add(b, len, sizeof(len));
  hbuf_add(b, p, n);
}

static int digest_table(ctkn_store_txn *t, int table, struct hbuf *b,
                        struct ctkn_err *err)
{
  const char *name = table_names[table];
  uint8_t count[8];
  uint64_t seen = 0;
  MDB_cursor *c;
  MDB_stat ms;
  MDB_val k, v;
  int rc;

  rc = mdb_stat(t->txn, t->st->dbi[table], &ms);
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, "mdb_stat");
  hbuf_bytes(b, name, strlen(name));
  ctkn__put_be64(count, ms.ms_entries);
  hbuf_add(b, count, sizeof(count));

  if ((rc = open_cursor(t, table, &c, err)) != CTKN_OK)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    hbuf_bytes(b, k.mv_data, k.mv_size);
    hbuf_bytes(b, v.mv_data, v.mv_size);
    seen++;
  }
  mdb_cursor_close(c);
  if (rc != MDB_NOTFOUND)
    return lmdb_err(err, rc, "digest");
  if (seen != ms.ms_entries)
    return ctkn__err(err, CTKN_ESTORE, "%s: %" PRIu64 " entries, counted %zu",
                     name, seen, (size_t)ms.ms_entries);
  return CTKN_OK;
}

int ctkn_store_digest(ctkn_store_txn *t, uint8_t out[CTKN_HASH_LEN],
                      struct ctkn_err *err)
{
  struct hbuf *b = malloc(sizeof(*b));
  int rc = CTKN_OK;

  if (b == NULL || (b->h = ctkn_sha256_new()) == NULL) {
    free(b);
    return ctkn__err(err, CTKN_ENOMEM, "digest: out of memory");
  }
  b->len = 0;
  rc = batch_sync(t, err);
  for (size_t i = 0; i < CTKN__ARRAY_LEN(digest_order) && rc == CTKN_OK; i++)
    rc = digest_table(t, digest_order[i], b, err);
  if (rc == CTKN_OK) {
    ctkn_sha256_update(b->h, b->buf, b->len);
    ctkn_sha256_final(b->h, out);
  }
  ctkn_sha256_free(b->h);
  free(b);
  return rc;
}

int ctkn_store_snapshot(ctkn_store *st, const char *dir, struct ctkn_err *err)
{
  char path[4200];
  struct stat sb;
  int rc;

  if ((rc = mkdir_p(dir, err)) != CTKN_OK)
    return rc;
  snprintf(path, sizeof(path), "%s/data.mdb", dir);
  if (stat(path, &sb) == 0)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "%s already holds a projection; snapshot into a new "
                     "directory",
                     dir);
  /* mdb_env_copy2 copies from one read transaction: a consistent state
   * with the offsets that produced it, while writers go on. Compacting
   * leaves out free pages. */
  rc = mdb_env_copy2(st->env, dir, MDB_CP_COMPACT);
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, "snapshot");
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
    return lmdb_err(err, rc, "begin");
  if ((rc = mdb_put(txn, st->dbi[T_META], &k, &v, 0)) != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    return lmdb_err(err, rc, "put meta");
  }
  rc = mdb_txn_commit(txn);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, "commit");
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
    return lmdb_err(err, rc, "begin");
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
    return lmdb_err(err, rc, "get meta");
  return CTKN_OK;
}

/* ---- side tables ------------------------------------------------------- */

static int kv_table(ctkn_store_txn *t, enum ctkn_store_table table, int *out,
                    struct ctkn_err *err)
{
  if (table == CTKN_TABLE_POSITIONS) /* its own layout: event_at() */
    return ctkn__err(err, CTKN_EINTERNAL, "positions: use ctkn_store_event_at");
  if ((unsigned)table >= CTKN__ARRAY_LEN(kv_tables))
    return ctkn__err(err, CTKN_EINTERNAL, "no table %d", (int)table);
  *out = kv_tables[table];
  return t->st->absent[*out] ? CTKN_ENOTFOUND : CTKN_OK;
}

static int kv_key(ctkn_store_txn *t, size_t klen, struct ctkn_err *err)
{
  if (klen == 0 || klen > (size_t)mdb_env_get_maxkeysize(t->st->env))
    return ctkn__err(err, CTKN_EINTERNAL, "key of %zu bytes", klen);
  return CTKN_OK;
}

int ctkn_store_kv_get(ctkn_store_txn *t, enum ctkn_store_table table,
                      const void *key, size_t klen, const void **val,
                      size_t *vlen, struct ctkn_err *err)
{
  MDB_val k = {klen, (void *)key}, v;
  int tb = 0, rc;

  if ((rc = kv_table(t, table, &tb, err)) != CTKN_OK)
    return rc == CTKN_ENOTFOUND ? ctkn__err(err, rc, "not found") : rc;
  if ((rc = kv_key(t, klen, err)) != CTKN_OK)
    return rc;
  rc = mdb_get(t->txn, t->st->dbi[tb], &k, &v);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "not found in %s", table_names[tb]);
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, table_names[tb]);
  *val = v.mv_data;
  *vlen = v.mv_size;
  return CTKN_OK;
}

int ctkn_store_kv_put(ctkn_store_txn *t, enum ctkn_store_table table,
                      const void *key, size_t klen, const void *val,
                      size_t vlen, struct ctkn_err *err)
{
  MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
  int tb = 0, rc;

  if ((rc = need_write(t, err)) != CTKN_OK ||
      (rc = kv_table(t, table, &tb, err)) != CTKN_OK ||
      (rc = kv_key(t, klen, err)) != CTKN_OK)
    return rc;
  if (table == CTKN_TABLE_POSITIONS)
    return ctkn__err(err, CTKN_EINTERNAL, "positions follow history");
  rc = mdb_put(t->txn, t->st->dbi[tb], &k, &v, 0);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, table_names[tb]);
}

int ctkn_store_kv_del(ctkn_store_txn *t, enum ctkn_store_table table,
                      const void *key, size_t klen, struct ctkn_err *err)
{
  MDB_val k = {klen, (void *)key};
  int tb = 0, rc;

  if ((rc = need_write(t, err)) != CTKN_OK ||
      (rc = kv_table(t, table, &tb, err)) != CTKN_OK ||
      (rc = kv_key(t, klen, err)) != CTKN_OK)
    return rc;
  rc = mdb_del(t->txn, t->st->dbi[tb], &k, NULL);
  if (rc == MDB_NOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "not found in %s", table_names[tb]);
  return rc == MDB_SUCCESS ? CTKN_OK : lmdb_err(err, rc, table_names[tb]);
}

int ctkn_store_kv_walk(ctkn_store_txn *t, enum ctkn_store_table table,
                       const void *from, size_t flen, size_t plen,
                       ctkn_store_kv_cb cb, void *arg, struct ctkn_err *err)
{
  MDB_val k = {flen, (void *)from}, v;
  MDB_cursor *c;
  int tb = 0, rc;

  if (plen > flen)
    return ctkn__err(err, CTKN_EINTERNAL, "prefix longer than the key");
  if ((rc = kv_table(t, table, &tb, err)) == CTKN_ENOTFOUND)
    return CTKN_OK; /* an absent table is empty */
  if (rc != CTKN_OK || (flen > 0 && (rc = kv_key(t, flen, err)) != CTKN_OK))
    return rc;
  if ((rc = open_cursor(t, tb, &c, err)) != CTKN_OK)
    return rc;
  rc = mdb_cursor_get(c, &k, &v, flen > 0 ? MDB_SET_RANGE : MDB_FIRST);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (plen > 0 && (k.mv_size < plen || memcmp(k.mv_data, from, plen) != 0))
      break;
    if ((rc = cb(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) != 0) {
      mdb_cursor_close(c);
      return rc;
    }
  }
  mdb_cursor_close(c);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
    return lmdb_err(err, rc, table_names[tb]);
  return CTKN_OK;
}

int ctkn_store_event_at(ctkn_store_txn *t, int32_t partition, int64_t offset,
                        bool exact, struct ctkn_store_event *out,
                        struct ctkn_err *err)
{
  uint8_t pk[4], po[8];
  MDB_val k = {sizeof(pk), pk}, v = {sizeof(po), po}, hk, hv;
  MDB_cursor *c;
  int64_t p, o;
  struct ctkn__sv_span body;
  int rc;

  if ((rc = check_coord(partition, offset, err)) != CTKN_OK)
    return rc;
  if (t->st->absent[T_POSITIONS])
    return ctkn__err(err, CTKN_ENOTFOUND, "no positions index");
  ctkn__put_be32(pk, (uint32_t)partition);
  ctkn__put_be64(po, (uint64_t)offset);
  if ((rc = open_cursor(t, T_POSITIONS, &c, err)) != CTKN_OK)
    return rc;
  /* The partition's first entry whose value (offset first) is >= po. */
  rc = mdb_cursor_get(c, &k, &v, MDB_GET_BOTH_RANGE);
  mdb_cursor_close(c);
  if (rc == MDB_SUCCESS && v.mv_size != POS_VALUE_LEN)
    return corrupt(err, T_POSITIONS);
  if (rc == MDB_NOTFOUND ||
      (rc == MDB_SUCCESS && exact && memcmp(v.mv_data, po, sizeof(po)) != 0))
    return ctkn__err(err, CTKN_ENOTFOUND, "no applied event there");
  if (rc != MDB_SUCCESS)
    return lmdb_err(err, rc, "positions");
  hk.mv_size = HIST_KEY_LEN;
  hk.mv_data = (uint8_t *)v.mv_data + 8;
  rc = mdb_get(t->txn, t->st->dbi[T_HISTORY], &hk, &hv);
  if (rc != MDB_SUCCESS)
    return rc == MDB_NOTFOUND ? corrupt(err, T_POSITIONS)
                              : lmdb_err(err, rc, "history");
  if (ctkn__sv_history_read(hv.mv_data, hv.mv_size, NULL, &p, &o, &body) !=
          CTKN_OK ||
      p != partition || o != (int64_t)ctkn__get_be(v.mv_data, 8))
    return corrupt(err, T_HISTORY);
  memcpy(out->id, hk.mv_data, CTKN_ID_LEN);
  out->id[CTKN_ID_LEN] = '\0';
  out->version = ctkn__get_be((const uint8_t *)hk.mv_data + CTKN_ID_LEN, 8);
  out->partition = partition;
  out->offset = o;
  out->value = body.p;
  out->len = body.n;
  return CTKN_OK;
}

int ctkn_store_copy_local(ctkn_store_txn *from, ctkn_store_txn *to,
                          struct ctkn_err *err)
{
  static const int local[] = {T_NTF, T_ATTEMPTS, T_CURSORS, T_QUEUE};
  int rc;

  if ((rc = need_write(to, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < CTKN__ARRAY_LEN(local); i++) {
    int t = local[i];
    MDB_cursor *c;
    MDB_val k, v;
    if (from->st->absent[t] || to->st->absent[t])
      continue;
    if ((rc = open_cursor(from, t, &c, err)) != CTKN_OK)
      return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
      if ((rc = mdb_put(to->txn, to->st->dbi[t], &k, &v, 0)) != MDB_SUCCESS)
        break;
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
      return lmdb_err(err, rc, table_names[t]);
  }
  return CTKN_OK;
}
