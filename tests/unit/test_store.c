/*
 * test_store.c - the LMDB projection: tables, transactions, iteration,
 * digest, formats and recovery from killed readers.
 *
 * Every test gets a fresh mkdtemp() directory; the store lives in a
 * subdirectory that ctkn_store_open() has to create. A few tests reach
 * under the API with raw LMDB to plant what only a foreign build or a
 * corrupt disk could write.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/log.h"
#include "ctkn/projector.h"
#include "ctkn/store.h"
#include "internal.h"
#include "store/shared.h"
#include "testkit.h"

#define ALL_STATUSES ((1u << CTKN_STATUS_ACTIVE) | (1u << CTKN_STATUS_REVOKED))

struct fx {
  char tmp[64]; /* the mkdtemp() directory */
  char db[128]; /* tmp/db: the store, not yet created */
  int64_t ms;   /* a clock for IDs, advanced by make_record() */
  ctkn_store *st;
  pid_t kids[2]; /* child processes still to reap */
};

/* ---- fixture ---------------------------------------------------------- */

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));

  if (f == NULL)
    return -1;
  snprintf(f->tmp, sizeof(f->tmp), "/tmp/ctkn_test_store_XXXXXX");
  if (mkdtemp(f->tmp) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->db, sizeof(f->db), "%s/db", f->tmp);
  f->ms = ctkn_now_us() / 1000;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  for (int i = 0; i < 2; i++) {
    if (f->kids[i] > 0) {
      kill(f->kids[i], SIGKILL);
      waitpid(f->kids[i], NULL, 0);
    }
  }
  ctkn_store_close(f->st);
  tk_rm_rf(f->tmp);
  free(f);
  return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static ctkn_store *open_at(const char *dir)
{
  struct ctkn_err err = {0};
  ctkn_store *st = NULL;
  int rc = ctkn_store_open(&st, dir, NULL, &err);

  if (rc != CTKN_OK)
    fail_msg("open %s: %s: %s", dir, ctkn_strerror(rc), err.msg);
  return st;
}

static ctkn_store *open_fx(struct fx *f)
{
  f->st = open_at(f->db);
  return f->st;
}

static void reopen_fx(struct fx *f)
{
  ctkn_store_close(f->st);
  f->st = NULL;
  open_fx(f);
}

static ctkn_store_txn *begin(ctkn_store *st, bool write)
{
  ctkn_store_txn *t = NULL;

  assert_int_equal(ctkn_store_begin(st, write, &t, NULL), CTKN_OK);
  return t;
}

static void commit(ctkn_store_txn *t)
{
  struct ctkn_err err = {0};
  int rc = ctkn_store_commit(t, &err);

  if (rc != CTKN_OK)
    fail_msg("commit: %s: %s", ctkn_strerror(rc), err.msg);
}

/* A valid active (or revoked) sandbox token, one millisecond after the
 * last one, so IDs increase. */
static void make_record(struct fx *f, struct ctkn_record *r, ctkn_status s)
{
  int64_t ms = ++f->ms;

  memset(r, 0, sizeof(*r));
  assert_int_equal(
      ctkn_id_generate("ctkn_", ms, r->token.id, sizeof(r->token.id)), 0);
  assert_int_equal(
      ctkn_token_generate(CTKN_ENV_SANDBOX, ms * 1000, r->token.token), 0);
  snprintf(r->token.name, sizeof(r->token.name), "token %" PRId64, ms);
  r->token.status = s;
  r->token.created_at = ms * 1000;
  r->token.updated_at = ms * 1000 + (s == CTKN_STATUS_REVOKED ? 5 : 0);
  r->token.revoked_at = s == CTKN_STATUS_REVOKED ? r->token.updated_at : 0;
  r->version = s == CTKN_STATUS_REVOKED ? 2 : 1;
  r->partition = 3;
  r->offset = 1000 + ms % 1000;
}

/* The store's offset of partition p, or fail. */
static int64_t offset_of(ctkn_store_txn *t, int32_t p)
{
  struct ctkn_err err = {0};
  int64_t next = -1;
  int rc = ctkn_store_offset(t, p, &next, &err);

  if (rc != CTKN_OK)
    fail_msg("offset %d: %s: %s", (int)p, ctkn_strerror(rc), err.msg);
  return next;
}

/* The store's token count (with mask: of those statuses), or fail. */
static int64_t count_status_of(ctkn_store_txn *t, unsigned mask)
{
  struct ctkn_err err = {0};
  int64_t n = -1;
  int rc = ctkn_store_count_status(t, mask, &n, &err);

  if (rc != CTKN_OK)
    fail_msg("count: %s: %s", ctkn_strerror(rc), err.msg);
  return n;
}

static int64_t count_of(ctkn_store_txn *t)
{
  struct ctkn_err err = {0};
  int64_t n = -1;
  int rc = ctkn_store_count(t, &n, &err);

  if (rc != CTKN_OK)
    fail_msg("count: %s: %s", ctkn_strerror(rc), err.msg);
  return n;
}

static void put(ctkn_store_txn *t, const struct ctkn_record *r)
{
  struct ctkn_err err = {0};
  int rc = ctkn_store_put(t, r, &err);

  if (rc != CTKN_OK)
    fail_msg("put: %s: %s", ctkn_strerror(rc), err.msg);
}

static void assert_record_equal(const struct ctkn_record *a,
                                const struct ctkn_record *b)
{
  assert_true(ctkn_token_equal(&a->token, &b->token));
  assert_int_equal(a->version, b->version);
  assert_int_equal(a->partition, b->partition);
  assert_int_equal(a->offset, b->offset);
}

/* Write one key/value into a table with raw LMDB, under the API. */
static void raw_put(const char *dir, const char *table, const void *k,
                    size_t kn, const void *v, size_t vn)
{
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_val key = {kn, (void *)k}, val = {vn, (void *)v};

  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
  assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, table, 0, &dbi), 0);
  assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

static void digest_of(ctkn_store *st, uint8_t out[CTKN_HASH_LEN])
{
  ctkn_store_txn *t = begin(st, false);
  struct ctkn_err err = {0};
  int rc = ctkn_store_digest(t, out, &err);

  ctkn_store_abort(t);
  if (rc != CTKN_OK)
    fail_msg("digest: %s: %s", ctkn_strerror(rc), err.msg);
}

/* ---- open, format, bind ----------------------------------------------- */

static void test_open_creates_the_directory_and_records_the_format(void **s)
{
  struct fx *f = *s;
  char nested[192], meta_path[256];
  struct stat sb;
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_val k = {6, "format"}, v;

  snprintf(nested, sizeof(nested), "%s/a/b/db", f->tmp);
  ctkn_store_close(open_at(nested));

  assert_int_equal(stat(nested, &sb), 0);
  assert_true(S_ISDIR(sb.st_mode));
  assert_int_equal(sb.st_mode & 0777, 0700);
  snprintf(meta_path, sizeof(meta_path), "%s/data.mdb", nested);
  assert_int_equal(stat(meta_path, &sb), 0);

  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
  assert_int_equal(mdb_env_open(env, nested, MDB_RDONLY, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
  assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
  assert_int_equal(v.mv_size, 1);
  assert_memory_equal(v.mv_data, "1", 1);
  mdb_txn_abort(txn);
  mdb_env_close(env);
}

static void test_open_on_a_file_fails_with_estore(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};
  ctkn_store *st = NULL;
  FILE *fp = fopen(f->db, "w");

  assert_non_null(fp);
  fclose(fp);
  assert_int_equal(ctkn_store_open(&st, f->db, NULL, &err), CTKN_ESTORE);
  assert_null(st);
  assert_non_null(strstr(err.msg, "not a directory"));
}

static void test_reopen_keeps_data(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r, got;
  ctkn_store_txn *t;

  make_record(f, &r, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &r);
  assert_int_equal(ctkn_store_set_offset(t, 2, 77, NULL), CTKN_OK);
  commit(t);

  reopen_fx(f);
  t = begin(f->st, false);
  assert_int_equal(ctkn_store_get(t, r.token.id, &got, NULL), CTKN_OK);
  assert_record_equal(&got, &r);
  assert_int_equal(offset_of(t, 2), 77);
  ctkn_store_abort(t);
}

/* A writer's commit flushes the disk once: its meta page is left to the
 * next commit's sync (MDB_NOMETASYNC), which keeps LMDB whole and may
 * lose only the last commit in a system crash, derived from the log. A
 * commit that wrote something moves the last commit's ID. */
static void test_a_writer_defers_the_meta_sync(void **s)
{
  struct fx *f = *s;
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_err err = {0};
  ctkn_store *reader = NULL;
  ctkn_store_txn *t;

  t = begin(open_fx(f), true);
  assert_int_equal(ctkn_store_set_offset(t, 0, 5, NULL), CTKN_OK);
  commit(t);
  assert_true(ctkn__store_meta_deferred(f->st));
  uint64_t id = ctkn__store_last_commit(f->st);
  assert_true(id > 0);
  t = begin(f->st, true);
  assert_int_equal(ctkn_store_set_offset(t, 0, 6, NULL), CTKN_OK);
  commit(t);
  assert_int_equal(ctkn__store_last_commit(f->st), id + 1);
  assert_int_equal(ctkn_store_open(&reader, f->db, &ro, &err), CTKN_OK);
  assert_false(ctkn__store_meta_deferred(reader));
  ctkn_store_close(reader);
}

static void test_unknown_format_is_refused_naming_ctkn_rebuild(void **s)
{
  struct fx *f = *s;
  struct format_case {
    const char *value;
    const char *says;
  } cases[] = {{"99", "store format 99 is not supported"},
               {"abc", "unreadable"}};

  ctkn_store_close(open_fx(f));
  f->st = NULL;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct ctkn_store_opts ro = {.read_only = true};
    struct ctkn_err err = {0};
    ctkn_store *st = NULL;

    raw_put(f->db, "meta", "format", 6, cases[i].value, strlen(cases[i].value));
    assert_int_equal(ctkn_store_open(&st, f->db, NULL, &err), CTKN_EFORMAT);
    assert_null(st);
    assert_non_null(strstr(err.msg, cases[i].says));
    assert_non_null(strstr(err.msg, "ctkn rebuild"));
    assert_int_equal(ctkn_store_open(&st, f->db, &ro, &err), CTKN_EFORMAT);
    assert_null(st);
  }
}

static void test_bind_records_then_refuses_another_topic_or_env(void **s)
{
  struct fx *f = *s;
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_err err = {0};
  ctkn_store *rst = NULL;

  open_fx(f);
  assert_int_equal(ctkn_store_bind(f->st, "tokens", CTKN_ENV_SANDBOX, &err),
                   CTKN_OK);
  assert_int_equal(ctkn_store_bind(f->st, "tokens", CTKN_ENV_SANDBOX, &err),
                   CTKN_OK);

  assert_int_equal(ctkn_store_bind(f->st, "other", CTKN_ENV_SANDBOX, &err),
                   CTKN_ECONFLICT);
  assert_non_null(strstr(err.msg, "\"tokens\""));
  assert_non_null(strstr(err.msg, "\"other\""));

  assert_int_equal(ctkn_store_bind(f->st, "tokens", CTKN_ENV_LIVE, &err),
                   CTKN_ECONFLICT);
  assert_non_null(strstr(err.msg, "environment"));
  assert_non_null(strstr(err.msg, "\"sandbox\""));
  assert_non_null(strstr(err.msg, "\"live\""));

  /* The binding survives a reopen, and a reader compares it too. */
  reopen_fx(f);
  assert_int_equal(ctkn_store_bind(f->st, "tokens", CTKN_ENV_LIVE, &err),
                   CTKN_ECONFLICT);
  assert_int_equal(ctkn_store_open(&rst, f->db, &ro, &err), CTKN_OK);
  assert_int_equal(ctkn_store_bind(rst, "tokens", CTKN_ENV_SANDBOX, &err),
                   CTKN_OK);
  assert_int_equal(ctkn_store_bind(rst, "x", CTKN_ENV_SANDBOX, &err),
                   CTKN_ECONFLICT);
  ctkn_store_close(rst);

  assert_int_equal(ctkn_store_bind(f->st, "", CTKN_ENV_SANDBOX, &err),
                   CTKN_EINVAL);
  assert_int_equal(ctkn_store_bind(f->st, "tokens", (ctkn_env)9, &err),
                   CTKN_EINVAL);
}

static void test_conflicting_bind_records_nothing(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};

  open_fx(f);
  raw_put(f->db, "meta", "environment", 11, "live", 4);
  reopen_fx(f);
  /* topic is missing and would be recorded, but the env conflicts. */
  assert_int_equal(ctkn_store_bind(f->st, "a", CTKN_ENV_SANDBOX, &err),
                   CTKN_ECONFLICT);
  assert_int_equal(ctkn_store_bind(f->st, "b", CTKN_ENV_LIVE, &err), CTKN_OK);
  assert_int_equal(ctkn_store_bind(f->st, "a", CTKN_ENV_LIVE, &err),
                   CTKN_ECONFLICT);
}

static void test_read_only_open_of_a_missing_store_fails(void **s)
{
  struct fx *f = *s;
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_err err = {0};
  ctkn_store *st = NULL;
  struct stat sb;

  assert_int_equal(ctkn_store_open(&st, f->db, &ro, &err), CTKN_ESTORE);
  assert_null(st);
  assert_non_null(strstr(err.msg, "ctkn project"));
  assert_int_not_equal(stat(f->db, &sb), 0); /* nothing was created */

  /* An empty directory is not a projection either, and stays empty. */
  assert_int_equal(mkdir(f->db, 0700), 0);
  assert_int_equal(ctkn_store_open(&st, f->db, &ro, &err), CTKN_ESTORE);
  assert_int_equal(rmdir(f->db), 0);
}

static void test_read_only_store_reads_but_refuses_writes(void **s)
{
  struct fx *f = *s;
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_record r, got;
  struct ctkn_err err = {0};
  ctkn_store *st = NULL;
  ctkn_store_txn *t = NULL;

  make_record(f, &r, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &r);
  commit(t);

  assert_int_equal(ctkn_store_open(&st, f->db, &ro, &err), CTKN_OK);
  t = begin(st, false);
  assert_int_equal(ctkn_store_get(t, r.token.id, &got, &err), CTKN_OK);
  ctkn_store_abort(t);
  t = NULL;
  assert_int_equal(ctkn_store_begin(st, true, &t, &err), CTKN_ESTORE);
  assert_null(t);
  ctkn_store_close(st);
}

/* ---- records, index, idempotency, offsets ----------------------------- */

static void test_put_get_round_trip_and_get_by_token(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r, r2, got;
  ctkn_store_txn *t;

  make_record(f, &r, CTKN_STATUS_ACTIVE);
  make_record(f, &r2, CTKN_STATUS_REVOKED);
  r2.token.has_description = true;
  snprintf(r2.token.description, sizeof(r2.token.description), "déjà vu");
  t = begin(open_fx(f), true);
  put(t, &r);
  put(t, &r2);
  /* Visible inside the writing txn already. */
  assert_int_equal(ctkn_store_get(t, r.token.id, &got, NULL), CTKN_OK);
  commit(t);

  t = begin(f->st, false);
  assert_int_equal(ctkn_store_get(t, r.token.id, &got, NULL), CTKN_OK);
  assert_record_equal(&got, &r);
  assert_int_equal(ctkn_store_get(t, r2.token.id, &got, NULL), CTKN_OK);
  assert_record_equal(&got, &r2);
  assert_int_equal(ctkn_store_get_by_token(t, r2.token.token, &got, NULL),
                   CTKN_OK);
  assert_record_equal(&got, &r2);
  assert_int_equal(count_of(t), 2);
  ctkn_store_abort(t);
}

static void test_lookup_token_follows_the_status_through_revoke(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r;
  char id[CTKN_ID_BUF];
  ctkn_status status = 0;
  ctkn_store_txn *t;

  make_record(f, &r, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &r);
  commit(t);
  t = begin(f->st, false);
  assert_int_equal(ctkn_store_lookup_token(t, r.token.token, id, &status, NULL),
                   CTKN_OK);
  assert_string_equal(id, r.token.id);
  assert_int_equal(status, CTKN_STATUS_ACTIVE);
  ctkn_store_abort(t);

  /* An update that keeps it active, then the revoke. */
  t = begin(f->st, true);
  snprintf(r.token.name, sizeof(r.token.name), "renamed");
  r.token.updated_at += 1;
  r.version++;
  put(t, &r);
  commit(t);
  t = begin(f->st, false);
  assert_int_equal(ctkn_store_lookup_token(t, r.token.token, id, &status, NULL),
                   CTKN_OK);
  assert_int_equal(status, CTKN_STATUS_ACTIVE);
  ctkn_store_abort(t);

  t = begin(f->st, true);
  r.token.status = CTKN_STATUS_REVOKED;
  r.token.updated_at += 1;
  r.token.revoked_at = r.token.updated_at;
  r.version++;
  put(t, &r);
  commit(t);
  t = begin(f->st, false);
  assert_int_equal(ctkn_store_lookup_token(t, r.token.token, id, &status, NULL),
                   CTKN_OK);
  assert_string_equal(id, r.token.id);
  assert_int_equal(status, CTKN_STATUS_REVOKED);
  assert_int_equal(ctkn_store_lookup_token(t,
                                           "test_000000000000000000000000000",
                                           id, &status, NULL),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_lookup_token(t, "short", id, &status, NULL),
                   CTKN_ENOTFOUND);
  ctkn_store_abort(t);
}

static void test_snapshot_is_a_consistent_copy_with_the_same_digest(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r;
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_err err;
  uint8_t before[CTKN_HASH_LEN], copied[CTKN_HASH_LEN];
  char dir[256];
  ctkn_store *copy;
  ctkn_store_txn *t;

  t = begin(open_fx(f), true);
  for (int i = 0; i < 50; i++) {
    make_record(f, &r, i % 3 ? CTKN_STATUS_ACTIVE : CTKN_STATUS_REVOKED);
    put(t, &r);
  }
  assert_int_equal(ctkn_store_set_offset(t, 2, 77, NULL), CTKN_OK);
  commit(t);
  t = begin(f->st, false);
  assert_int_equal(ctkn_store_digest(t, before, NULL), CTKN_OK);
  ctkn_store_abort(t);

  snprintf(dir, sizeof(dir), "%s/snap/a", f->tmp);
  assert_int_equal(ctkn_store_snapshot(f->st, dir, &err), CTKN_OK);
  /* The source moves on; the copy keeps the moment it was taken. */
  t = begin(f->st, true);
  assert_int_equal(ctkn_store_set_offset(t, 2, 78, NULL), CTKN_OK);
  commit(t);

  assert_int_equal(ctkn_store_open(&copy, dir, &ro, &err), CTKN_OK);
  t = begin(copy, false);
  assert_int_equal(offset_of(t, 2), 77);
  assert_int_equal(count_of(t), 50);
  assert_int_equal(ctkn_store_digest(t, copied, NULL), CTKN_OK);
  ctkn_store_abort(t);
  ctkn_store_close(copy);
  assert_memory_equal(before, copied, CTKN_HASH_LEN);

  /* Never over an existing projection. */
  assert_int_equal(ctkn_store_snapshot(f->st, dir, &err), CTKN_ECONFLICT);
  assert_non_null(strstr(err.msg, "already holds a projection"));
}

/* A snapshot that cannot be finished (here the file size limit, as a full
 * disk would) leaves nothing at --out: not a cut-short data.mdb that
 * every later command would open as a projection. */
static void test_a_failed_snapshot_leaves_no_projection_behind(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r;
  struct ctkn_err err;
  struct rlimit was, small;
  struct stat sb;
  char dir[256], data[300];
  ctkn_store_txn *t;

  t = begin(open_fx(f), true);
  for (int i = 0; i < 200; i++) {
    make_record(f, &r, CTKN_STATUS_ACTIVE);
    put(t, &r);
  }
  commit(t);
  snprintf(dir, sizeof(dir), "%s/snap-full", f->tmp);
  snprintf(data, sizeof(data), "%s/data.mdb", dir);

  signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &was), 0);
  small = was;
  small.rlim_cur = 16384;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  int rc = ctkn_store_snapshot(f->st, dir, &err);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &was), 0);
  signal(SIGXFSZ, SIG_DFL);

  assert_int_not_equal(rc, CTKN_OK);
  assert_int_not_equal(stat(data, &sb), 0);
  assert_int_not_equal(stat(dir, &sb), 0); /* it made dir: it removed it */
  /* With room again, the same --out works. */
  assert_int_equal(ctkn_store_snapshot(f->st, dir, &err), CTKN_OK);
  assert_int_equal(stat(data, &sb), 0);
}

/* A rebuild swaps a new projection into dir: refresh reopens st on it, but
 * never under a txn that another thread still holds on the old one. */
static void test_refresh_follows_a_swap_but_not_under_an_open_txn(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err;
  char other[256];
  bool reopened;
  ctkn_store *side;
  ctkn_store_txn *t;

  t = begin(open_fx(f), true);
  assert_int_equal(ctkn_store_set_offset(t, 0, 5, NULL), CTKN_OK);
  commit(t);
  snprintf(other, sizeof(other), "%s/other", f->tmp);
  side = open_at(other);
  t = begin(side, true);
  assert_int_equal(ctkn_store_set_offset(t, 0, 9, NULL), CTKN_OK);
  commit(t);
  ctkn_store_close(side);

  assert_int_equal(ctkn_store_refresh(f->st, &reopened, &err), CTKN_OK);
  assert_false(reopened); /* nothing changed yet */
  assert_int_equal(ctkn_store_exchange(f->db, other, &err), CTKN_OK);

  t = begin(f->st, false); /* a reader still on the old projection */
  assert_int_equal(ctkn_store_refresh(f->st, &reopened, &err), CTKN_OK);
  assert_false(reopened);
  assert_int_equal(offset_of(t, 0), 5);
  ctkn_store_abort(t);

  assert_int_equal(ctkn_store_refresh(f->st, &reopened, &err), CTKN_OK);
  assert_true(reopened);
  t = begin(f->st, false);
  assert_int_equal(offset_of(t, 0), 9);
  ctkn_store_abort(t);
}

/* A filtered list's estimated_total comes from a revoked count kept in
 * meta: a revoke counts once, and a projection from before the count gets
 * it by a scan (writers store it; read-only opens scan). */
static void test_counts_by_status(void **s)
{
  const unsigned A = 1u << CTKN_STATUS_ACTIVE, R = 1u << CTKN_STATUS_REVOKED;
  struct fx *f = *s;
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_record r[6];
  ctkn_store *rst;
  ctkn_store_txn *t;

  t = begin(open_fx(f), true);
  for (int i = 0; i < 6; i++) {
    make_record(f, &r[i], i == 5 ? CTKN_STATUS_REVOKED : CTKN_STATUS_ACTIVE);
    put(t, &r[i]);
  }
  commit(t);
  t = begin(f->st, true);
  for (int i = 0; i < 2; i++) {
    r[i].token.status = CTKN_STATUS_REVOKED;
    r[i].token.revoked_at = r[i].token.updated_at + 1;
    r[i].version++;
    put(t, &r[i]);
  }
  r[0].version++; /* a revoked record written again: still one */
  put(t, &r[0]);
  commit(t);
  t = begin(f->st, false);
  assert_int_equal(count_status_of(t, A | R), 6);
  assert_int_equal(count_status_of(t, R), 3);
  assert_int_equal(count_status_of(t, A), 3);
  assert_int_equal(count_status_of(t, 0), 0);
  ctkn_store_abort(t);

  /* Drop the count, as a projection made before it would be. */
  ctkn_store_close(f->st);
  f->st = NULL;
  {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    MDB_val k = {7, "revoked"};
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->db, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }
  assert_int_equal(ctkn_store_open(&rst, f->db, &ro, NULL), CTKN_OK);
  t = begin(rst, false); /* read-only: counted by a scan */
  assert_int_equal(count_status_of(t, R), 3);
  ctkn_store_abort(t);
  ctkn_store_close(rst);
  t = begin(open_fx(f), true); /* a writer stores the count again */
  make_record(f, &r[0], CTKN_STATUS_ACTIVE);
  put(t, &r[0]);
  r[0].token.status = CTKN_STATUS_REVOKED;
  r[0].version++;
  put(t, &r[0]);
  commit(t);
  t = begin(f->st, false);
  assert_int_equal(count_status_of(t, R), 4);
  assert_int_equal(count_status_of(t, A), 3);
  ctkn_store_abort(t);
}

static void test_get_missing_returns_notfound(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r, got;
  struct ctkn_err err = {0};
  ctkn_store_txn *t;

  make_record(f, &r, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), false);
  assert_int_equal(ctkn_store_get(t, r.token.id, &got, &err), CTKN_ENOTFOUND);
  assert_int_equal(err.code, CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_get_by_token(t, r.token.token, &got, &err),
                   CTKN_ENOTFOUND);
  /* A lookup of garbage simply finds nothing. */
  assert_int_equal(ctkn_store_get(t, "ctkn_short", &got, &err), CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_get(t, "", &got, &err), CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_get(t, NULL, &got, &err), CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_get_by_token(t, "test_x", &got, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(count_of(t), 0);
  ctkn_store_abort(t);
}

static void test_update_overwrites_and_keeps_one_index_entry(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r, got;
  ctkn_store_txn *t;

  make_record(f, &r, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &r);
  commit(t);

  r.version = 2;
  r.offset += 10;
  r.token.updated_at += 1;
  snprintf(r.token.name, sizeof(r.token.name), "renamed");
  t = begin(f->st, true);
  put(t, &r);
  commit(t);

  t = begin(f->st, false);
  assert_int_equal(ctkn_store_get(t, r.token.id, &got, NULL), CTKN_OK);
  assert_record_equal(&got, &r);
  assert_int_equal(ctkn_store_get_by_token(t, r.token.token, &got, NULL),
                   CTKN_OK);
  assert_string_equal(got.token.name, "renamed");
  assert_int_equal(count_of(t), 1);
  ctkn_store_abort(t);
}

/* A token string held by another token, in this txn's batch or in the
 * store, is a conflict that names the holder; nothing of the put stays
 * and the txn still commits. */
static void test_token_string_of_another_token_is_a_conflict(void **s)
{
  struct fx *f = *s;
  struct ctkn_record a, b, c, got;
  struct ctkn_err err = {0};
  ctkn_store_txn *t;

  make_record(f, &a, CTKN_STATUS_ACTIVE);
  make_record(f, &b, CTKN_STATUS_ACTIVE);
  make_record(f, &c, CTKN_STATUS_ACTIVE);
  memcpy(b.token.token, a.token.token, sizeof(a.token.token));
  memcpy(c.token.token, a.token.token, sizeof(a.token.token));
  t = begin(open_fx(f), true);
  put(t, &a); /* held in the batch */
  assert_int_equal(ctkn_store_put(t, &b, &err), CTKN_ECONFLICT);
  assert_string_equal(err.field, "token");
  assert_non_null(strstr(err.msg, a.token.id));
  assert_int_equal(ctkn_store_get(t, b.token.id, &got, NULL), CTKN_ENOTFOUND);
  commit(t);

  t = begin(f->st, true);
  memset(&err, 0, sizeof(err));
  assert_int_equal(ctkn_store_put(t, &c, &err), CTKN_ECONFLICT); /* stored */
  assert_string_equal(err.field, "token");
  assert_non_null(strstr(err.msg, a.token.id));
  assert_int_equal(ctkn_store_get(t, c.token.id, &got, NULL), CTKN_ENOTFOUND);
  commit(t);

  t = begin(f->st, false);
  assert_int_equal(count_of(t), 1);
  assert_int_equal(ctkn_store_get(t, c.token.id, &got, NULL), CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_get_by_token(t, a.token.token, &got, NULL),
                   CTKN_OK);
  assert_string_equal(got.token.id, a.token.id);
  ctkn_store_abort(t);
}

static void test_writes_check_their_arguments(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r;
  struct ctkn_err err = {0};
  uint8_t hash[CTKN_HASH_LEN] = {0};
  char longkey[CTKN_IDEM_KEY_MAX + 2];
  ctkn_store_txn *t;

  make_record(f, &r, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), false);
  assert_int_equal(ctkn_store_put(t, &r, &err), CTKN_EINTERNAL);
  assert_int_equal(ctkn_store_set_offset(t, 0, 1, &err), CTKN_EINTERNAL);
  ctkn_store_abort(t);

  t = begin(f->st, true);
  r.token.id[10] = '\0';
  assert_int_equal(ctkn_store_put(t, &r, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "id");
  make_record(f, &r, CTKN_STATUS_ACTIVE);
  r.token.token[5] = '\0';
  assert_int_equal(ctkn_store_put(t, &r, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "token");

  assert_int_equal(ctkn_store_put_history(t, "ctkn_x", 1, 0, 0, "e", 1, &err),
                   CTKN_EINVAL);
  make_record(f, &r, CTKN_STATUS_ACTIVE);
  assert_int_equal(
      ctkn_store_put_history(t, r.token.id, 1, -1, 0, "e", 1, &err),
      CTKN_EINVAL);
  assert_string_equal(err.field, "partition");
  assert_int_equal(ctkn_store_put_history(t, r.token.id, 1,
                                          CTKN_STORE_MAX_PARTITIONS, 0, "e", 1,
                                          &err),
                   CTKN_EINVAL);
  assert_int_equal(
      ctkn_store_put_history(t, r.token.id, 1, 0, -5, "e", 1, &err),
      CTKN_EINVAL);
  assert_string_equal(err.field, "offset");
  assert_int_equal(ctkn_store_set_offset(t, -1, 0, &err), CTKN_EINVAL);
  assert_int_equal(ctkn_store_set_offset(t, 0, -1, &err), CTKN_EINVAL);
  assert_int_equal(ctkn_store_put_rejected(t, 0, 0, NULL, NULL, NULL, &err),
                   CTKN_EINVAL);
  assert_int_equal(
      ctkn_store_put_quarantine(t, 0, 0, "r", NULL, 3, NULL, 0, &err),
      CTKN_EINVAL);

  memset(longkey, 'k', sizeof(longkey) - 1);
  longkey[sizeof(longkey) - 1] = '\0';
  assert_int_equal(ctkn_store_put_idem(t, longkey, r.token.id, hash, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "idempotency_key");
  assert_int_equal(ctkn_store_put_idem(t, "", r.token.id, hash, &err),
                   CTKN_EINVAL);
  assert_int_equal(ctkn_store_put_idem(t, "k", "ctkn_x", hash, &err),
                   CTKN_EINVAL);
  {
    int64_t next = 5;
    assert_int_equal(ctkn_store_offset(t, -1, &next, &err), CTKN_EINVAL);
    assert_string_equal(err.field, "partition");
    assert_int_equal(next, 0);
  }
  ctkn_store_abort(t);
}

static void test_idempotency_round_trip_and_first_writer_wins(void **s)
{
  struct fx *f = *s;
  struct ctkn_record a, b;
  struct ctkn_err err = {0};
  uint8_t h1[CTKN_HASH_LEN], h2[CTKN_HASH_LEN], got[CTKN_HASH_LEN];
  char id[CTKN_ID_BUF];
  ctkn_store_txn *t;

  make_record(f, &a, CTKN_STATUS_ACTIVE);
  make_record(f, &b, CTKN_STATUS_ACTIVE);
  for (int i = 0; i < CTKN_HASH_LEN; i++) {
    h1[i] = (uint8_t)i;
    h2[i] = (uint8_t)(255 - i);
  }
  t = begin(open_fx(f), true);
  assert_int_equal(ctkn_store_get_idem(t, "key-1", id, got, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_put_idem(t, "key-1", a.token.id, h1, &err),
                   CTKN_OK);
  /* The same again is a no-op; anything else is a conflict. */
  assert_int_equal(ctkn_store_put_idem(t, "key-1", a.token.id, h1, &err),
                   CTKN_OK);
  assert_int_equal(ctkn_store_put_idem(t, "key-1", a.token.id, h2, &err),
                   CTKN_ECONFLICT);
  assert_int_equal(ctkn_store_put_idem(t, "key-1", b.token.id, h1, &err),
                   CTKN_ECONFLICT);
  assert_int_equal(ctkn_store_put_idem(t, "key-2", b.token.id, h2, &err),
                   CTKN_OK);
  commit(t);

  t = begin(f->st, false);
  assert_int_equal(ctkn_store_get_idem(t, "key-1", id, got, &err), CTKN_OK);
  assert_string_equal(id, a.token.id);
  assert_memory_equal(got, h1, CTKN_HASH_LEN);
  assert_int_equal(ctkn_store_get_idem(t, "key-2", id, got, &err), CTKN_OK);
  assert_string_equal(id, b.token.id);
  assert_memory_equal(got, h2, CTKN_HASH_LEN);
  assert_int_equal(ctkn_store_get_idem(t, "key-3", id, got, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_get_idem(t, "", id, got, &err), CTKN_EINVAL);
  ctkn_store_abort(t);
}

struct offsets_seen {
  int n;
  int32_t partition[8];
  int64_t next[8];
};

static int collect_offset(void *arg, int32_t partition, int64_t next)
{
  struct offsets_seen *o = arg;

  if (o->n == 8)
    return -99;
  o->partition[o->n] = partition;
  o->next[o->n++] = next;
  return 0;
}

static void test_offsets_default_to_zero_and_walk_in_partition_order(void **s)
{
  struct fx *f = *s;
  struct offsets_seen o = {0};
  const int32_t want[] = {0, 1, 10, 256, 4095};
  ctkn_store_txn *t;

  t = begin(open_fx(f), true);
  assert_int_equal(offset_of(t, 0), 0);
  assert_int_equal(offset_of(t, 4095), 0);
  /* Inserted out of order; 256 would sort before 10 as little-endian. */
  assert_int_equal(ctkn_store_set_offset(t, 256, 2560, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_set_offset(t, 10, 100, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_set_offset(t, 4095, 40950, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_set_offset(t, 1, 10, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_set_offset(t, 0, 5, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_set_offset(t, 0, 0, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_set_offset(t, 1, INT64_MAX, NULL), CTKN_OK);
  commit(t);

  t = begin(f->st, false);
  assert_int_equal(offset_of(t, 0), 0);
  assert_int_equal(offset_of(t, 1), INT64_MAX);
  assert_int_equal(offset_of(t, 10), 100);
  assert_int_equal(offset_of(t, 2), 0);
  assert_int_equal(ctkn_store_offsets(t, collect_offset, &o, NULL), CTKN_OK);
  assert_int_equal(o.n, 5);
  for (int i = 0; i < 5; i++)
    assert_int_equal(o.partition[i], want[i]);
  assert_int_equal(o.next[3], 2560);
  ctkn_store_abort(t);
}

/* ---- history, rejected, quarantine ------------------------------------ */

struct history_seen {
  int n;
  int stop_after;
  uint64_t version[400];
  int32_t partition[400];
  int64_t offset[400];
  char value[400][32];
};

static int collect_history(void *arg, uint64_t version, int32_t partition,
                           int64_t offset, const void *value, size_t len)
{
  struct history_seen *h = arg;

  if (h->n == 400 || len >= sizeof(h->value[0]))
    return -99;
  h->version[h->n] = version;
  h->partition[h->n] = partition;
  h->offset[h->n] = offset;
  memcpy(h->value[h->n], value, len);
  h->value[h->n][len] = '\0';
  h->n++;
  return h->stop_after != 0 && h->n == h->stop_after ? 42 : 0;
}

static void test_history_comes_out_by_version_past_255(void **s)
{
  struct fx *f = *s;
  struct ctkn_record a, b, c;
  struct history_seen *h = calloc(1, sizeof(*h));
  struct ctkn_err err = {0};
  char value[32];
  ctkn_store_txn *t;

  assert_non_null(h);
  make_record(f, &a, CTKN_STATUS_ACTIVE);
  make_record(f, &b, CTKN_STATUS_ACTIVE);
  make_record(f, &c, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  /* Versions in descending order, b's around a's on both sides. */
  assert_int_equal(ctkn_store_put_history(t, c.token.id, 1, 0, 1, "c", 1, &err),
                   CTKN_OK);
  for (uint64_t v = 300; v >= 1; v--) {
    snprintf(value, sizeof(value), "event-%" PRIu64, v);
    assert_int_equal(ctkn_store_put_history(t, b.token.id, v, 7,
                                            (int64_t)(v * 1000), value,
                                            strlen(value), &err),
                     CTKN_OK);
  }
  assert_int_equal(ctkn_store_put_history(t, a.token.id, 1, 0, 0, "a", 1, &err),
                   CTKN_OK);
  /* An empty event body is stored as such. */
  assert_int_equal(
      ctkn_store_put_history(t, c.token.id, 2, 0, 2, NULL, 0, &err), CTKN_OK);
  commit(t);

  t = begin(f->st, false);
  assert_int_equal(ctkn_store_history(t, b.token.id, collect_history, h, &err),
                   CTKN_OK);
  assert_int_equal(h->n, 300);
  for (int i = 0; i < 300; i++) {
    snprintf(value, sizeof(value), "event-%d", i + 1);
    assert_int_equal(h->version[i], (uint64_t)(i + 1));
    assert_int_equal(h->partition[i], 7);
    assert_int_equal(h->offset[i], (int64_t)(i + 1) * 1000);
    assert_string_equal(h->value[i], value);
  }

  memset(h, 0, sizeof(*h));
  assert_int_equal(ctkn_store_history(t, c.token.id, collect_history, h, &err),
                   CTKN_OK);
  assert_int_equal(h->n, 2);
  assert_string_equal(h->value[1], "");

  /* A callback's non-zero return stops the walk and comes back. */
  memset(h, 0, sizeof(*h));
  h->stop_after = 5;
  assert_int_equal(ctkn_store_history(t, b.token.id, collect_history, h, &err),
                   42);
  assert_int_equal(h->n, 5);

  make_record(f, &a, CTKN_STATUS_ACTIVE);
  assert_int_equal(ctkn_store_history(t, a.token.id, collect_history, h, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_history(t, "junk", collect_history, h, &err),
                   CTKN_ENOTFOUND);
  ctkn_store_abort(t);
  free(h);
}

struct coords_seen {
  int n;
  int32_t partition[16];
  int64_t offset[16];
  char reason[16][64];
  char key[16][64];
  size_t klen[16];
  bool key_null[16];
  char value[16][64];
  size_t vlen[16];
  bool value_null[16];
};

static int collect_coord(void *arg, int32_t partition, int64_t offset,
                         const char *reason, const void *key, size_t klen,
                         const void *value, size_t vlen)
{
  struct coords_seen *c = arg;
  int i = c->n;

  if (i == 16 || klen >= 64 || vlen >= 64)
    return -99;
  c->partition[i] = partition;
  c->offset[i] = offset;
  snprintf(c->reason[i], sizeof(c->reason[i]), "%s", reason);
  c->key_null[i] = key == NULL;
  c->value_null[i] = value == NULL;
  if (key != NULL)
    memcpy(c->key[i], key, klen);
  if (value != NULL)
    memcpy(c->value[i], value, vlen);
  c->klen[i] = klen;
  c->vlen[i] = vlen;
  c->n++;
  return 0;
}

/* Set meta's "quarantined" + partition p to n, or with p < 0 delete the
 * marker and the counts of partitions 0..3 (a projection from before
 * them), straight through LMDB. */
static void meta_qcount(const char *db, int32_t p, uint64_t n)
{
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta;
  uint8_t kb[11 + 4], vb[8];
  MDB_val k = {sizeof(kb), kb}, v = {sizeof(vb), vb};

  memcpy(kb, "quarantined", 11);
  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
  assert_int_equal(mdb_env_open(env, db, 0, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
  if (p >= 0) {
    ctkn__put_be32(kb + 11, (uint32_t)p);
    ctkn__put_be64(vb, n);
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
  } else {
    MDB_val marker = {11, kb};
    assert_int_equal(mdb_del(txn, meta, &marker, NULL), 0);
    for (uint32_t q = 0; q < 4; q++) {
      ctkn__put_be32(kb + 11, q);
      int rc = mdb_del(txn, meta, &k, NULL);
      assert_true(rc == 0 || rc == MDB_NOTFOUND);
    }
  }
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

static void assert_qcounts(ctkn_store *st, int64_t c0, int64_t c3)
{
  struct ctkn_err err = {0};
  int64_t counts[4];
  ctkn_store_txn *t = begin(st, false);

  assert_int_equal(ctkn_store_quarantine_counts(t, counts, 4, &err), CTKN_OK);
  ctkn_store_abort(t);
  assert_int_equal(counts[0], c0);
  assert_int_equal(counts[1], 0);
  assert_int_equal(counts[2], 0);
  assert_int_equal(counts[3], c3);
}

/* /healthz's quarantine counts are kept in meta, moved in the txn that
 * quarantines (a record put again counts once), read without a scan; a
 * projection from before them is counted once by a writer's open, and a
 * read-only open scans. */
static void test_quarantine_counts_are_kept_per_partition(void **s)
{
  struct fx *f = *s;
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_err err = {0};
  ctkn_store *rst;
  ctkn_store_txn *t = begin(open_fx(f), true);

  assert_int_equal(
      ctkn_store_put_quarantine(t, 0, 1, "a", NULL, 0, NULL, 0, &err), CTKN_OK);
  assert_int_equal(
      ctkn_store_put_quarantine(t, 0, 2, "b", NULL, 0, NULL, 0, &err), CTKN_OK);
  assert_int_equal(
      ctkn_store_put_quarantine(t, 3, 5, "c", NULL, 0, NULL, 0, &err), CTKN_OK);
  assert_int_equal(
      ctkn_store_put_quarantine(t, 0, 1, "again", NULL, 0, NULL, 0, &err),
      CTKN_OK);
  commit(t);
  assert_qcounts(f->st, 2, 1);
  /* One record's reason, by its coordinate: the last put wins. */
  char why[8];
  t = begin(f->st, false);
  assert_int_equal(ctkn_store_get_quarantine(t, 0, 1, why, sizeof(why), &err),
                   CTKN_OK);
  assert_string_equal(why, "again");
  assert_int_equal(ctkn_store_get_quarantine(t, 3, 5, why, 2, &err), CTKN_OK);
  assert_string_equal(why, "c");
  assert_int_equal(ctkn_store_get_quarantine(t, 3, 4, why, sizeof(why), &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_get_quarantine(t, -1, 4, why, sizeof(why), &err),
                   CTKN_EINVAL);
  ctkn_store_abort(t);

  /* Read from meta, not counted: a count set there is what comes back. */
  ctkn_store_close(f->st);
  f->st = NULL;
  meta_qcount(f->db, 3, 7);
  assert_qcounts(open_fx(f), 2, 7);

  /* A projection from before the counts. */
  ctkn_store_close(f->st);
  f->st = NULL;
  meta_qcount(f->db, -1, 0);
  assert_int_equal(ctkn_store_open(&rst, f->db, &ro, NULL), CTKN_OK);
  assert_qcounts(rst, 2, 1); /* read-only: a scan */
  ctkn_store_close(rst);
  t = begin(open_fx(f), true); /* a writer counts once, then keeps them */
  assert_int_equal(
      ctkn_store_put_quarantine(t, 3, 6, "d", NULL, 0, NULL, 0, &err), CTKN_OK);
  commit(t);
  assert_qcounts(f->st, 2, 2);
  ctkn_store_close(f->st);
  f->st = NULL;
  meta_qcount(f->db, 0, 9);
  assert_qcounts(open_fx(f), 9, 2); /* the marker is back: no recount */
}

static void test_rejected_and_quarantine_walk_in_coordinate_order(void **s)
{
  struct fx *f = *s;
  static const struct {
    int32_t p;
    int64_t o;
  } in[] = {{256, 1}, {1, 70000}, {0, 256}, {1, 255}, {0, 1}, {10, 0}};
  static const int order[] = {4, 2, 3, 1, 5, 0}; /* indexes into in[] */
  struct coords_seen *c = calloc(1, sizeof(*c));
  struct ctkn_err err = {0};
  char why[32];
  ctkn_store_txn *t;

  assert_non_null(c);
  t = begin(open_fx(f), true);
  for (int i = 0; i < 6; i++) {
    snprintf(why, sizeof(why), "reason %d", i);
    assert_int_equal(ctkn_store_put_rejected(t, in[i].p, in[i].o,
                                             i == 1 ? NULL : "evt_e", "ctkn_t",
                                             why, &err),
                     CTKN_OK);
    assert_int_equal(
        ctkn_store_put_quarantine(t, in[i].p, in[i].o, why, i == 2 ? NULL : "k",
                                  i == 2 ? 0 : 1, i == 3 ? NULL : "val\0ue",
                                  i == 3 ? 0 : 6, &err),
        CTKN_OK);
  }
  /* Empty but present bytes differ from absent ones. */
  assert_int_equal(ctkn_store_put_quarantine(t, 2, 0, "", "", 0, "", 0, &err),
                   CTKN_OK);
  commit(t);

  t = begin(f->st, false);
  assert_int_equal(ctkn_store_rejected(t, collect_coord, c, &err), CTKN_OK);
  assert_int_equal(c->n, 6);
  for (int i = 0; i < 6; i++) {
    int j = order[i];

    snprintf(why, sizeof(why), "reason %d", j);
    assert_int_equal(c->partition[i], in[j].p);
    assert_int_equal(c->offset[i], in[j].o);
    assert_string_equal(c->reason[i], why);
    assert_int_equal(c->klen[i], 6);
    assert_memory_equal(c->key[i], "ctkn_t", 6);
    assert_int_equal(c->value_null[i], j == 1);
  }

  /* One rejected event's reason, by its coordinates. */
  assert_int_equal(ctkn_store_get_rejected(t, 0, 256, why, sizeof(why), &err),
                   CTKN_OK);
  assert_string_equal(why, "reason 2");
  assert_int_equal(ctkn_store_get_rejected(t, 1, 70000, why, 4, &err), CTKN_OK);
  assert_string_equal(why, "rea"); /* truncated, terminated */
  assert_int_equal(ctkn_store_get_rejected(t, 1, 70001, why, 4, &err),
                   CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_get_rejected(t, -1, 0, why, 4, &err),
                   CTKN_EINVAL);

  memset(c, 0, sizeof(*c));
  assert_int_equal(ctkn_store_quarantine(t, collect_coord, c, &err), CTKN_OK);
  assert_int_equal(c->n, 7);
  for (int i = 0, k = 0; i < 7; i++) {
    int j;

    if (c->partition[i] == 2) { /* (2, 0) sorts between 1 and 10 */
      assert_int_equal(i, 4);
      assert_false(c->key_null[i]);
      assert_false(c->value_null[i]);
      assert_int_equal(c->klen[i], 0);
      assert_string_equal(c->reason[i], "");
      continue;
    }
    j = order[k++];
    assert_int_equal(c->partition[i], in[j].p);
    assert_int_equal(c->offset[i], in[j].o);
    assert_int_equal(c->key_null[i], j == 2);
    assert_int_equal(c->value_null[i], j == 3);
    if (j != 3) {
      assert_int_equal(c->vlen[i], 6);
      assert_memory_equal(c->value[i], "val\0ue", 6);
    }
  }

  /* Counted per partition below n; partition 256 lies past 11. */
  int64_t counts[11];
  const int64_t want[11] = {2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 1};
  memset(counts, 0xff, sizeof(counts));
  assert_int_equal(ctkn_store_quarantine_counts(t, counts, 11, &err), CTKN_OK);
  assert_memory_equal(counts, want, sizeof(want));
  assert_int_equal(ctkn_store_quarantine_counts(t, counts, 2, &err), CTKN_OK);
  assert_int_equal(counts[0], 2);
  assert_int_equal(counts[1], 2);
  ctkn_store_abort(t);
  free(c);
}

/* ---- list --------------------------------------------------------------- */

#define LIST_N 25

static void put_list_fixture(struct fx *f, struct ctkn_record *recs)
{
  ctkn_store_txn *t;

  for (int i = 0; i < LIST_N; i++)
    make_record(f, &recs[i],
                i % 3 == 1 ? CTKN_STATUS_REVOKED : CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  for (int i = LIST_N - 1; i >= 0; i--)
    put(t, &recs[i]);
  commit(t);
}

/* Page through with limit `page`, checking every page against the IDs of
 * recs that pass mask, in the given direction. */
static void check_pages(ctkn_store *st, const struct ctkn_record *recs,
                        bool desc, unsigned mask, size_t page)
{
  const char *want[LIST_N];
  struct ctkn_record *out = calloc(page + 1, sizeof(*out));
  char after[CTKN_ID_BUF] = "";
  size_t nwant = 0, seen = 0, n;
  bool more = true;
  ctkn_store_txn *t = begin(st, false);

  assert_non_null(out);
  for (int i = 0; i < LIST_N; i++) {
    const struct ctkn_record *r = &recs[desc ? LIST_N - 1 - i : i];

    if (mask & (1u << r->token.status))
      want[nwant++] = r->token.id;
  }
  while (more) {
    struct ctkn_err err = {0};

    assert_int_equal(
        ctkn_store_list(t, after, desc, mask, page, out, &n, &more, &err),
        CTKN_OK);
    assert_true(n <= page);
    for (size_t i = 0; i < n; i++) {
      assert_true(seen < nwant);
      assert_string_equal(out[i].token.id, want[seen]);
      assert_true(mask & (1u << out[i].token.status));
      seen++;
    }
    assert_int_equal(more, seen < nwant);
    if (more)
      assert_int_equal(n, page);
    if (n > 0)
      snprintf(after, sizeof(after), "%s", out[n - 1].token.id);
  }
  assert_int_equal(seen, nwant);
  ctkn_store_abort(t);
  free(out);
}

static void test_list_pages_through_25_tokens_in_both_directions(void **s)
{
  struct fx *f = *s;
  struct ctkn_record recs[LIST_N];
  const unsigned active = 1u << CTKN_STATUS_ACTIVE;
  const unsigned revoked = 1u << CTKN_STATUS_REVOKED;

  put_list_fixture(f, recs);
  for (int d = 0; d < 2; d++) {
    check_pages(f->st, recs, d == 1, ALL_STATUSES, 10);
    check_pages(f->st, recs, d == 1, active, 10);
    check_pages(f->st, recs, d == 1, revoked, 3);
    check_pages(f->st, recs, d == 1, revoked, 8); /* exactly one full page */
    check_pages(f->st, recs, d == 1, ALL_STATUSES, 25);
    check_pages(f->st, recs, d == 1, ALL_STATUSES, 200);
    check_pages(f->st, recs, d == 1, ALL_STATUSES, 1);
  }
}

static void test_list_after_cursor_status_mask_and_limits(void **s)
{
  struct fx *f = *s;
  struct ctkn_record recs[LIST_N], out[LIST_N];
  char between[CTKN_ID_BUF + 1];
  size_t n;
  bool more;
  ctkn_store_txn *t;

  put_list_fixture(f, recs);
  t = begin(f->st, false);

  /* A cursor that is not a stored ID still positions by ID order. */
  snprintf(between, sizeof(between), "%s0", recs[11].token.id);
  assert_true(strcmp(between, recs[11].token.id) > 0);
  assert_true(strcmp(between, recs[12].token.id) < 0);
  assert_int_equal(
      ctkn_store_list(t, between, false, ALL_STATUSES, 2, out, &n, &more, NULL),
      CTKN_OK);
  assert_int_equal(n, 2);
  assert_string_equal(out[0].token.id, recs[12].token.id);
  assert_true(more);
  assert_int_equal(
      ctkn_store_list(t, between, true, ALL_STATUSES, 2, out, &n, &more, NULL),
      CTKN_OK);
  assert_string_equal(out[0].token.id, recs[11].token.id);
  assert_string_equal(out[1].token.id, recs[10].token.id);

  /* Past either end. */
  assert_int_equal(ctkn_store_list(t, recs[LIST_N - 1].token.id, false,
                                   ALL_STATUSES, 10, out, &n, &more, NULL),
                   CTKN_OK);
  assert_int_equal(n, 0);
  assert_false(more);
  assert_int_equal(ctkn_store_list(t, "ctkn_zzzzzzzzzzzzzzzzzzzzzzzzzz", true,
                                   ALL_STATUSES, 1, out, &n, &more, NULL),
                   CTKN_OK);
  assert_string_equal(out[0].token.id, recs[LIST_N - 1].token.id);
  assert_int_equal(ctkn_store_list(t, recs[0].token.id, true, ALL_STATUSES, 10,
                                   out, &n, &more, NULL),
                   CTKN_OK);
  assert_int_equal(n, 0);
  assert_false(more);
  assert_int_equal(
      ctkn_store_list(t, "d", false, ALL_STATUSES, 1, out, &n, &more, NULL),
      CTKN_OK);
  assert_int_equal(n, 0); /* "d" > "ctkn_..." */

  /* limit 0 still answers has_more; an empty mask matches nothing. */
  assert_int_equal(
      ctkn_store_list(t, NULL, false, ALL_STATUSES, 0, out, &n, &more, NULL),
      CTKN_OK);
  assert_int_equal(n, 0);
  assert_true(more);
  assert_int_equal(ctkn_store_list(t, NULL, false, 0, 10, out, &n, &more, NULL),
                   CTKN_OK);
  assert_int_equal(n, 0);
  assert_false(more);
  ctkn_store_abort(t);
}

/* ---- digest ------------------------------------------------------------- */

enum variant {
  V_BASE,
  V_OFFSET,
  V_HISTORY_BYTE,
  V_REJECTED_REASON,
  V_QUARANTINE_VALUE,
  V_IDEM_HASH,
  V_TOKEN_NAME,
  V_EXTRA_OFFSET,
  V_COUNT
};

/* One fixed dataset, with one single difference per variant. grouped:
 * everything in one txn; otherwise one txn per write, in another order. */
static void build(ctkn_store *st, const struct ctkn_record *recs, int nrec,
                  enum variant var, bool grouped)
{
  uint8_t hash[CTKN_HASH_LEN];
  ctkn_store_txn *t = NULL;
  char ev[16];
  int ops = nrec * 3 + 4;

  memset(hash, 0xab, sizeof(hash));
  if (var == V_IDEM_HASH)
    hash[31] ^= 1;
  for (int step = 0; step < ops; step++) {
    /* Ungrouped runs the steps backwards: the final state is the same. */
    int i = grouped ? step : ops - 1 - step;

    if (t == NULL)
      t = begin(st, true);
    if (i < nrec) {
      struct ctkn_record r = recs[i];

      if (var == V_TOKEN_NAME && i == 1)
        r.token.name[0] = 'T';
      put(t, &r);
    } else if (i < 2 * nrec) {
      int j = i - nrec;

      snprintf(ev, sizeof(ev), "event %d", j);
      if (var == V_HISTORY_BYTE && j == 2)
        ev[0] = 'E';
      assert_int_equal(ctkn_store_put_history(t, recs[j].token.id, 1, 0, j, ev,
                                              strlen(ev), NULL),
                       CTKN_OK);
    } else if (i < 3 * nrec) {
      int j = i - 2 * nrec;

      assert_int_equal(ctkn_store_put_idem(t, recs[j].token.name,
                                           recs[j].token.id, hash, NULL),
                       CTKN_OK);
    } else if (i == 3 * nrec) {
      assert_int_equal(
          ctkn_store_set_offset(t, 0, var == V_OFFSET ? 101 : 100, NULL),
          CTKN_OK);
      if (var == V_EXTRA_OFFSET)
        assert_int_equal(ctkn_store_set_offset(t, 5, 0, NULL), CTKN_OK);
    } else if (i == 3 * nrec + 1) {
      assert_int_equal(
          ctkn_store_put_rejected(t, 0, 50, "evt_1", recs[0].token.id,
                                  var == V_REJECTED_REASON ? "stale version"
                                                           : "stale versioN",
                                  NULL),
          CTKN_OK);
    } else if (i == 3 * nrec + 2) {
      assert_int_equal(
          ctkn_store_put_quarantine(t, 0, 60, "bad", "k", 1,
                                    var == V_QUARANTINE_VALUE ? "\x01" : "\x00",
                                    1, NULL),
          CTKN_OK);
    } else {
      assert_int_equal(ctkn_store_set_offset(t, 1, 7, NULL), CTKN_OK);
    }
    if (!grouped) {
      commit(t);
      t = NULL;
    }
  }
  if (t != NULL)
    commit(t);
}

static void test_digest_ignores_transaction_grouping(void **s)
{
  struct fx *f = *s;
  struct ctkn_record recs[6];
  uint8_t a[CTKN_HASH_LEN], b[CTKN_HASH_LEN], empty[CTKN_HASH_LEN];
  char dir2[192];
  ctkn_store *st2;

  for (int i = 0; i < 6; i++)
    make_record(f, &recs[i], CTKN_STATUS_ACTIVE);
  snprintf(dir2, sizeof(dir2), "%s/db2", f->tmp);
  open_fx(f);
  st2 = open_at(dir2);
  digest_of(f->st, empty);

  build(f->st, recs, 6, V_BASE, true);
  build(st2, recs, 6, V_BASE, false);
  digest_of(f->st, a);
  digest_of(st2, b);
  assert_memory_equal(a, b, CTKN_HASH_LEN);
  assert_memory_not_equal(a, empty, CTKN_HASH_LEN);

  /* meta is not covered: binding changes nothing. */
  assert_int_equal(ctkn_store_bind(st2, "topic", CTKN_ENV_SANDBOX, NULL),
                   CTKN_OK);
  digest_of(st2, b);
  assert_memory_equal(a, b, CTKN_HASH_LEN);

  /* And a write that is aborted leaves no trace. */
  {
    ctkn_store_txn *t = begin(st2, true);

    assert_int_equal(ctkn_store_set_offset(t, 9, 9, NULL), CTKN_OK);
    ctkn_store_abort(t);
  }
  digest_of(st2, b);
  assert_memory_equal(a, b, CTKN_HASH_LEN);
  ctkn_store_close(st2);
}

/* The batch writer stores exactly what one put per entry stores, whether
 * its entries land among existing keys or past the last one. */
static void test_history_batch_equals_single_puts(void **s)
{
  struct fx *f = *s;
  struct ctkn_record recs[8];
  struct ctkn_store_history_put e[12];
  uint8_t a[CTKN_HASH_LEN], b[CTKN_HASH_LEN];
  struct ctkn_err err = {0};
  char dir2[192];
  ctkn_store *st2;
  size_t n = 0;

  for (int i = 0; i < 8; i++)
    make_record(f, &recs[i], CTKN_STATUS_ACTIVE);
  snprintf(dir2, sizeof(dir2), "%s/db2", f->tmp);
  open_fx(f);
  st2 = open_at(dir2);
  /* Both hold the same first events of tokens 2 and 5. */
  for (int k = 0; k < 2; k++) {
    ctkn_store_txn *t = begin(k ? st2 : f->st, true);
    assert_int_equal(
        ctkn_store_put_history(t, recs[2].token.id, 1, 0, 1, "x", 1, &err),
        CTKN_OK);
    assert_int_equal(
        ctkn_store_put_history(t, recs[5].token.id, 1, 1, 1, "y", 1, &err),
        CTKN_OK);
    commit(t);
  }
  /* Then, out of order: before, between and past them; an empty body. */
  static const int order[] = {7, 0, 5, 3, 6, 1, 2, 4};
  for (int i = 0; i < 8; i++) {
    struct ctkn_store_history_put *h = &e[n++];
    int r = order[i];
    memcpy(h->id, recs[r].token.id, sizeof(h->id));
    h->version = (r == 2 || r == 5) ? 2 : 1;
    h->partition = r % 3;
    h->offset = 10 + i;
    h->value = r == 4 ? NULL : "event";
    h->len = r == 4 ? 0 : 5;
  }
  {
    ctkn_store_txn *t = begin(f->st, true);
    for (size_t i = 0; i < n; i++)
      assert_int_equal(ctkn_store_put_history(t, e[i].id, e[i].version,
                                              e[i].partition, e[i].offset,
                                              e[i].value, e[i].len, &err),
                       CTKN_OK);
    commit(t);
    t = begin(st2, true);
    assert_int_equal(ctkn_store_put_history_batch(t, e, n, &err), CTKN_OK);
    commit(t);
  }
  digest_of(f->st, a);
  digest_of(st2, b);
  assert_memory_equal(a, b, CTKN_HASH_LEN);
  ctkn_store_close(st2);
}

/* r as revoked, one version later. */
static void revoke_record(struct ctkn_record *r)
{
  r->token.status = CTKN_STATUS_REVOKED;
  r->token.updated_at += 1;
  r->token.revoked_at = r->token.updated_at;
  r->version++;
}

/* The revoked count moves once per token, when its index entry turns to
 * revoked: a token created revoked, an active one revoked; not a revoked
 * one written again, in the same batch or a later txn. */
static void test_revoked_count_moves_when_an_index_entry_turns(void **s)
{
  const unsigned A = 1u << CTKN_STATUS_ACTIVE, R = 1u << CTKN_STATUS_REVOKED;
  struct fx *f = *s;
  struct ctkn_record a, b, c;
  char id[CTKN_ID_BUF];
  ctkn_status status;
  ctkn_store_txn *t;

  make_record(f, &a, CTKN_STATUS_ACTIVE);
  make_record(f, &b, CTKN_STATUS_REVOKED);
  make_record(f, &c, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &a);
  put(t, &b); /* new and revoked: turns */
  put(t, &c);
  assert_int_equal(count_status_of(t, R), 1);
  commit(t);

  t = begin(f->st, true);
  revoke_record(&a); /* turns */
  put(t, &a);
  a.version++; /* revoked again in the same batch */
  put(t, &a);
  c.version++; /* an update that keeps it active */
  put(t, &c);
  commit(t);
  t = begin(f->st, false);
  assert_int_equal(count_status_of(t, R), 2);
  assert_int_equal(count_status_of(t, A), 1);
  assert_int_equal(ctkn_store_lookup_token(t, a.token.token, id, &status, NULL),
                   CTKN_OK);
  assert_int_equal(status, CTKN_STATUS_REVOKED);
  ctkn_store_abort(t);

  t = begin(f->st, true); /* revoked in the store, written again */
  a.version++;
  put(t, &a);
  b.version++;
  put(t, &b);
  commit(t);
  t = begin(f->st, false);
  assert_int_equal(count_status_of(t, R), 2);
  assert_int_equal(count_status_of(t, A), 1);
  ctkn_store_abort(t);
}

/* A token created, updated and revoked in one batch is written once, as
 * its last put left it: past the table's last key every key appends, and
 * a key appended twice would fail the commit. */
static void test_a_token_put_several_times_in_a_batch_is_written_once(void **s)
{
  struct fx *f = *s;
  struct ctkn_record x, got;
  char id[CTKN_ID_BUF];
  ctkn_status status;
  ctkn_store_txn *t;

  make_record(f, &x, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &x);
  snprintf(x.token.name, sizeof(x.token.name), "renamed");
  x.version++;
  put(t, &x);
  revoke_record(&x);
  put(t, &x);
  commit(t);

  t = begin(f->st, false);
  assert_int_equal(count_of(t), 1);
  assert_int_equal(ctkn_store_get(t, x.token.id, &got, NULL), CTKN_OK);
  assert_record_equal(&got, &x);
  assert_int_equal(ctkn_store_lookup_token(t, x.token.token, id, &status, NULL),
                   CTKN_OK);
  assert_int_equal(status, CTKN_STATUS_REVOKED);
  assert_int_equal(count_status_of(t, 1u << CTKN_STATUS_REVOKED), 1);
  ctkn_store_abort(t);
}

/* Reads through a write txn see its puts before they are written; other
 * txns do not, and an abort drops them. */
static void test_reads_in_the_txn_see_its_buffered_puts(void **s)
{
  struct fx *f = *s;
  struct ctkn_record x, got;
  char id[CTKN_ID_BUF];
  ctkn_status status;
  ctkn_store_txn *t, *reader;

  make_record(f, &x, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &x);
  assert_int_equal(ctkn_store_get(t, x.token.id, &got, NULL), CTKN_OK);
  assert_record_equal(&got, &x);
  assert_int_equal(ctkn_store_get_by_token(t, x.token.token, &got, NULL),
                   CTKN_OK);
  assert_int_equal(ctkn_store_lookup_token(t, x.token.token, id, &status, NULL),
                   CTKN_OK);
  assert_string_equal(id, x.token.id);
  assert_int_equal(status, CTKN_STATUS_ACTIVE);
  revoke_record(&x);
  put(t, &x);
  assert_int_equal(ctkn_store_get(t, x.token.id, &got, NULL), CTKN_OK);
  assert_int_equal(got.version, x.version);
  assert_int_equal(ctkn_store_lookup_token(t, x.token.token, id, &status, NULL),
                   CTKN_OK);
  assert_int_equal(status, CTKN_STATUS_REVOKED);

  reader = begin(f->st, false);
  assert_int_equal(ctkn_store_get(reader, x.token.id, &got, NULL),
                   CTKN_ENOTFOUND);
  ctkn_store_abort(reader);
  ctkn_store_abort(t);
  t = begin(f->st, false);
  assert_int_equal(ctkn_store_get(t, x.token.id, &got, NULL), CTKN_ENOTFOUND);
  assert_int_equal(count_of(t), 0);
  ctkn_store_abort(t);
}

/* A read that counts writes the batch out; the batch goes on afterwards,
 * reads still find what was written, and later puts land too. */
static void test_the_batch_goes_on_after_a_count_writes_it_out(void **s)
{
  struct fx *f = *s;
  struct ctkn_record w, x, y, got;
  ctkn_store_txn *t;

  make_record(f, &w, CTKN_STATUS_ACTIVE);
  make_record(f, &x, CTKN_STATUS_ACTIVE);
  make_record(f, &y, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &w); /* the last key when the next batch starts; x is past it */
  commit(t);
  t = begin(f->st, true);
  put(t, &x);
  assert_int_equal(count_of(t), 2);
  assert_int_equal(ctkn_store_get(t, x.token.id, &got, NULL), CTKN_OK);
  put(t, &y);
  x.version++;
  put(t, &x);
  assert_int_equal(count_of(t), 3);
  commit(t);

  t = begin(f->st, false);
  assert_int_equal(count_of(t), 3);
  assert_int_equal(ctkn_store_get(t, x.token.id, &got, NULL), CTKN_OK);
  assert_int_equal(got.version, x.version);
  assert_int_equal(ctkn_store_get(t, y.token.id, &got, NULL), CTKN_OK);
  ctkn_store_abort(t);
}

/* New tokens before, between and past the stored ones all land: only keys
 * past the table's last one may append. */
static void test_new_tokens_land_before_between_and_past_stored_ones(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r[7], out[7];
  size_t n = 0;
  bool more = true;
  ctkn_store_txn *t;

  for (int i = 0; i < 7; i++)
    make_record(f, &r[i], CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  for (int i = 1; i < 7; i += 2)
    put(t, &r[i]);
  commit(t);
  t = begin(f->st, true);
  for (int i = 0; i < 7; i += 2)
    put(t, &r[i]);
  commit(t);

  t = begin(f->st, false);
  assert_int_equal(
      ctkn_store_list(t, NULL, false, ALL_STATUSES, 7, out, &n, &more, NULL),
      CTKN_OK);
  assert_int_equal(n, 7);
  assert_false(more);
  for (int i = 0; i < 7; i++)
    assert_record_equal(&out[i], &r[i]);
  ctkn_store_abort(t);
}

/* A guessing batch: each wrong guess (an ID that was there, read or
 * written; a token string that was taken) voids the batch, and its txn
 * commits nothing; right ones commit what the same puts commit without
 * guessing. */
static void test_batch_guesses_are_checked_as_it_is_written(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r[4], x, z, got;
  struct ctkn_err err = {0};
  uint8_t a[CTKN_HASH_LEN], b[CTKN_HASH_LEN];
  char dir2[192];
  ctkn_store *st2;
  ctkn_store_txn *t;
  bool wrong;

  for (int i = 0; i < 4; i++)
    make_record(f, &r[i], CTKN_STATUS_ACTIVE);
  make_record(f, &z, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &r[1]);
  put(t, &r[3]); /* the last key: r[0], r[1], r[2] are guessed */
  commit(t);

  /* k: 0 a stored ID, put; 1 a new ID with a stored token string; 2 a
   * stored ID read but not put; 3 a stored ID put with a new string. */
  for (int k = 0; k < 4; k++) {
    t = begin(f->st, true);
    assert_int_equal(ctkn__store_batch(t, true, NULL), CTKN_OK);
    x = r[k == 1 ? 0 : 1];
    assert_int_equal(ctkn__store_get_new(t, x.token.id, &got, NULL),
                     CTKN_ENOTFOUND); /* guessed */
    if (k == 1)
      memcpy(x.token.token, r[1].token.token, sizeof(x.token.token));
    if (k == 3)
      memcpy(x.token.token, r[0].token.token, sizeof(x.token.token));
    if (k != 2)
      assert_int_equal(ctkn_store_put(t, &x, &err), CTKN_OK);
    assert_int_equal(ctkn__store_batch_write(t, &wrong, &err), CTKN_ECONFLICT);
    assert_true(wrong);
    /* Void: it writes nothing more, and the txn does not commit. */
    assert_int_equal(ctkn__store_batch_write(t, &wrong, &err), CTKN_ECONFLICT);
    if (k != 2) {
      ctkn_store_abort(t);
      continue;
    }
    put(t, &z);
    assert_int_equal(ctkn_store_commit(t, &err), CTKN_ECONFLICT);
    t = begin(f->st, false);
    assert_int_equal(ctkn_store_get(t, z.token.id, &got, NULL), CTKN_ENOTFOUND);
    assert_int_equal(count_of(t), 2);
    ctkn_store_abort(t);
  }

  /* Right guesses: the same as without. */
  snprintf(dir2, sizeof(dir2), "%s/db2", f->tmp);
  st2 = open_at(dir2);
  for (int k = 0; k < 2; k++) {
    t = begin(k ? st2 : f->st, true);
    if (k == 0) {
      assert_int_equal(ctkn__store_batch(t, true, NULL), CTKN_OK);
    } else {
      put(t, &r[1]);
      put(t, &r[3]);
    }
    for (int i = 0; i < 3; i += 2) {
      assert_int_equal(ctkn__store_get_new(t, r[i].token.id, &got, NULL),
                       CTKN_ENOTFOUND);
      put(t, &r[i]);
      assert_int_equal(ctkn__store_get_new(t, r[i].token.id, &got, NULL),
                       CTKN_OK);
    }
    if (k == 0) {
      assert_int_equal(ctkn__store_batch_write(t, &wrong, &err), CTKN_OK);
      assert_false(wrong);
    }
    commit(t);
  }
  digest_of(f->st, a);
  digest_of(st2, b);
  assert_memory_equal(a, b, CTKN_HASH_LEN);
  ctkn_store_close(st2);
}

/* One record of a create (tok: its token string, or NULL for its own). */
struct rec {
  struct ctkn_event ev;
  uint8_t *buf;
  size_t len;
};

static void plan_create(struct rec *c, int64_t now, const char *tok)
{
  struct ctkn_command cmd;

  ctkn_command_init(&cmd, CTKN_CMD_CREATE);
  assert_int_equal(ctkn_command_set_name(&cmd, "n", 1, NULL), CTKN_OK);
  assert_int_equal(ctkn_plan(NULL, &cmd, CTKN_ENV_SANDBOX, now, &c->ev, NULL),
                   0);
  if (tok != NULL)
    memcpy(c->ev.data.token, tok, sizeof(c->ev.data.token));
  assert_int_equal(ctkn_event_encode(&c->ev, &c->buf, &c->len, NULL), CTKN_OK);
}

static void msg_of(struct ctkn_log_msg *m, const struct rec *c, int64_t off)
{
  memset(m, 0, sizeof(*m));
  m->partition = 0;
  m->offset = off;
  m->timestamp_ms = -1;
  m->key = c->ev.data.id;
  m->key_len = strlen(c->ev.data.id);
  m->value = c->buf;
  m->value_len = c->len;
  snprintf(m->event_type, sizeof(m->event_type), "%s",
           ctkn_event_type_str(c->ev.type));
  m->schema_version = 1;
}

/* The projector guesses that creates are new, and when a batch holds a
 * duplicate create or a reused token string it applies the batch again
 * without guessing: the same rejections, reasons and digest as one record
 * per batch. */
static void test_projector_goes_again_when_a_guess_was_wrong(void **s)
{
  struct fx *f = *s;
  struct rec c, a, z, d;
  struct ctkn_log_msg m[5];
  struct ctkn_projector_stats st1 = {0}, st2 = {0};
  uint8_t h1[CTKN_HASH_LEN], h2[CTKN_HASH_LEN];
  char reason[256], dir2[192];
  ctkn_store *other;
  ctkn_store_txn *t;

  /* IDs in time order c < a < d < z; c reuses a's token string. */
  plan_create(&a, 2000000, NULL);
  plan_create(&c, 1000000, a.ev.data.token);
  plan_create(&d, 3000000, NULL);
  plan_create(&z, 4000000, NULL);
  msg_of(&m[0], &a, 0);
  msg_of(&m[1], &z, 1);
  msg_of(&m[2], &a, 2); /* a duplicate create */
  msg_of(&m[3], &c, 3);
  msg_of(&m[4], &d, 4);
  snprintf(dir2, sizeof(dir2), "%s/db2", f->tmp);
  open_fx(f);
  other = open_at(dir2);
  assert_int_equal(
      ctkn_projector_apply(f->st, CTKN_ENV_SANDBOX, m, 2, NULL, 0, &st1, NULL),
      CTKN_OK);
  assert_int_equal(ctkn_projector_apply(f->st, CTKN_ENV_SANDBOX, m + 2, 3, NULL,
                                        0, &st1, NULL),
                   CTKN_OK);
  for (int i = 0; i < 5; i++)
    assert_int_equal(ctkn_projector_apply(other, CTKN_ENV_SANDBOX, m + i, 1,
                                          NULL, 0, &st2, NULL),
                     CTKN_OK);
  assert_int_equal(st1.applied, 3);
  assert_int_equal(st1.rejected, 2);
  assert_int_equal(st2.applied, 3);
  assert_int_equal(st2.rejected, 2);
  t = begin(f->st, false);
  assert_int_equal(
      ctkn_store_get_rejected(t, 0, 3, reason, sizeof(reason), NULL), CTKN_OK);
  assert_string_equal(reason, "token: token string already in use");
  assert_int_equal(
      ctkn_store_get_rejected(t, 0, 2, reason, sizeof(reason), NULL), CTKN_OK);
  ctkn_store_abort(t);
  digest_of(f->st, h1);
  digest_of(other, h2);
  assert_memory_equal(h1, h2, CTKN_HASH_LEN);
  ctkn_store_close(other);
  free(a.buf);
  free(c.buf);
  free(d.buf);
  free(z.buf);
}

static void test_digest_changes_with_any_single_difference(void **s)
{
  struct fx *f = *s;
  struct ctkn_record recs[4];
  uint8_t d[V_COUNT][CTKN_HASH_LEN];
  char dir[192];

  for (int i = 0; i < 4; i++)
    make_record(f, &recs[i], CTKN_STATUS_ACTIVE);
  for (int v = 0; v < V_COUNT; v++) {
    ctkn_store *st;

    snprintf(dir, sizeof(dir), "%s/v%d", f->tmp, v);
    st = open_at(dir);
    build(st, recs, 4, (enum variant)v, true);
    digest_of(st, d[v]);
    ctkn_store_close(st);
  }
  for (int v = 0; v < V_COUNT; v++)
    for (int w = v + 1; w < V_COUNT; w++)
      assert_memory_not_equal(d[v], d[w], CTKN_HASH_LEN);
}

/* A fixed record: every byte of it chosen here, so its encoding is too. */
static void fixed_record(struct ctkn_record *r, int i, ctkn_status s)
{
  memset(r, 0, sizeof(*r));
  snprintf(r->token.id, sizeof(r->token.id), "ctkn_01hzzzzzzzzzzzzzzzzzzzz%03d",
           i);
  snprintf(r->token.token, sizeof(r->token.token),
           "test_0000000000000000000000%05d", i);
  snprintf(r->token.name, sizeof(r->token.name), "fixed %d", i);
  r->token.has_description = i % 2 == 0;
  if (r->token.has_description)
    snprintf(r->token.description, sizeof(r->token.description), "d%d", i);
  r->token.status = s;
  r->token.created_at = 1700000000000000 + i;
  r->token.updated_at = r->token.created_at + 7;
  r->token.revoked_at = s == CTKN_STATUS_REVOKED ? r->token.updated_at : 0;
  r->version = s == CTKN_STATUS_REVOKED ? 2 : 1;
  r->partition = i % 3;
  r->offset = (int64_t)i * 100000;
}

/*
 * The digest hashes stored bytes, so it pins every table's encoding: a
 * projection written through each writer, with values of every length
 * class (fixstr, str8, str16, bin8, bin16, bin32, nil) and integers of
 * every width, has exactly this digest. A change here changes the format.
 */
static void test_digest_of_a_fixed_projection_is_pinned(void **s)
{
  static const char want[] =
      "1f765121615ae8705e445d05e0c4ddedd7ea2343a8ee951166c690a76201db60";
  static char big[70000];
  struct fx *f = *s;
  struct ctkn_record r[5];
  struct ctkn_store_history_put h[3];
  uint8_t hash[CTKN_HASH_LEN], sum[CTKN_HASH_LEN];
  char hex[2 * CTKN_HASH_LEN + 1], reason[300];
  ctkn_store_txn *t;

  for (size_t i = 0; i < sizeof(big); i++)
    big[i] = (char)(i * 7);
  for (int i = 0; i < CTKN_HASH_LEN; i++)
    hash[i] = (uint8_t)(i * 13);
  memset(reason, 'r', sizeof(reason) - 1);
  reason[sizeof(reason) - 1] = '\0';
  t = begin(open_fx(f), true);
  for (int i = 0; i < 5; i++) {
    fixed_record(&r[i], i, i == 3 ? CTKN_STATUS_REVOKED : CTKN_STATUS_ACTIVE);
    put(t, &r[i]);
  }
  assert_int_equal(
      ctkn_store_put_history(t, r[0].token.id, 1, 0, 0, "e", 1, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_put_history(t, r[1].token.id, 1, 4095, INT64_MAX,
                                          big, 300, NULL),
                   CTKN_OK);
  assert_int_equal(ctkn_store_put_history(t, r[1].token.id, 2, 200, 70000, big,
                                          sizeof(big), NULL),
                   CTKN_OK);
  for (int i = 0; i < 3; i++) {
    memset(&h[i], 0, sizeof(h[i]));
    memcpy(h[i].id, r[2 + i].token.id, sizeof(h[i].id));
    h[i].version = (uint64_t)(1 + i) << (20 * i);
    h[i].partition = 2;
    h[i].offset = (int64_t)1 << (15 * i);
    h[i].value = i == 1 ? NULL : big;
    h[i].len = i == 1 ? 0 : 40 + (size_t)i;
  }
  assert_int_equal(ctkn_store_put_history_batch(t, h, 3, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_put_rejected(t, 0, 5, "evt_1", r[0].token.id,
                                           "stale version", NULL),
                   CTKN_OK);
  assert_int_equal(ctkn_store_put_rejected(t, 1, 300, NULL, NULL, reason, NULL),
                   CTKN_OK);
  assert_int_equal(
      ctkn_store_put_quarantine(t, 0, 6, "bad", "k", 1, "\x00", 1, NULL),
      CTKN_OK);
  assert_int_equal(ctkn_store_put_quarantine(t, 2, 1 << 20, reason + 260, NULL,
                                             0, big, sizeof(big), NULL),
                   CTKN_OK);
  assert_int_equal(ctkn_store_put_idem(t, "key-1", r[0].token.id, hash, NULL),
                   CTKN_OK);
  assert_int_equal(
      ctkn_store_put_idem(t, reason + 45, r[4].token.id, hash, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_set_offset(t, 0, 7, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_set_offset(t, 4095, INT64_MAX, NULL), CTKN_OK);
  commit(t);
  digest_of(f->st, sum);
  ctkn_hex(sum, sizeof(sum), hex);
  assert_string_equal(hex, want);
}

/* ---- transactions ------------------------------------------------------- */

static void test_abort_discards_writes(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r, got;
  ctkn_store_txn *t;

  make_record(f, &r, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &r);
  assert_int_equal(ctkn_store_set_offset(t, 0, 10, NULL), CTKN_OK);
  ctkn_store_abort(t);
  ctkn_store_abort(NULL);

  t = begin(f->st, false);
  assert_int_equal(ctkn_store_get(t, r.token.id, &got, NULL), CTKN_ENOTFOUND);
  assert_int_equal(ctkn_store_get_by_token(t, r.token.token, &got, NULL),
                   CTKN_ENOTFOUND);
  assert_int_equal(offset_of(t, 0), 0);
  assert_int_equal(count_of(t), 0);
  ctkn_store_abort(t);
}

static void test_reader_does_not_see_uncommitted_writes(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r, got;
  ctkn_store_txn *reader, *writer, *later;

  make_record(f, &r, CTKN_STATUS_ACTIVE);
  open_fx(f);
  /* MDB_NOTLS: one thread holds a reader and the writer at once. */
  reader = begin(f->st, false);
  writer = begin(f->st, true);
  put(writer, &r);
  assert_int_equal(ctkn_store_set_offset(writer, 0, 10, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_get(reader, r.token.id, &got, NULL),
                   CTKN_ENOTFOUND);
  assert_int_equal(offset_of(reader, 0), 0);
  commit(writer);

  /* The old snapshot stays as it was; a new one sees the commit. */
  assert_int_equal(ctkn_store_get(reader, r.token.id, &got, NULL),
                   CTKN_ENOTFOUND);
  later = begin(f->st, false);
  assert_int_equal(ctkn_store_get(later, r.token.id, &got, NULL), CTKN_OK);
  assert_int_equal(offset_of(later, 0), 10);
  assert_int_equal(ctkn_store_commit(later, NULL), CTKN_OK); /* read commit */
  ctkn_store_abort(reader);
}

/* ---- failures ------------------------------------------------------------ */

static void test_corrupt_values_are_store_errors(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r, got;
  struct history_seen *h = calloc(1, sizeof(*h));
  struct ctkn_err err = {0};
  uint8_t hkey[CTKN_ID_LEN + 8] = {0};
  char id[CTKN_ID_BUF];
  uint8_t hash[CTKN_HASH_LEN];
  ctkn_store_txn *t;

  assert_non_null(h);
  make_record(f, &r, CTKN_STATUS_ACTIVE);
  ctkn_store_close(open_fx(f));
  f->st = NULL;
  raw_put(f->db, "tokens", r.token.id, CTKN_ID_LEN, "\x93\x01\x02", 3);
  raw_put(f->db, "token_index", r.token.token, CTKN_TOKEN_LEN, "short", 5);
  memcpy(hkey, r.token.id, CTKN_ID_LEN);
  hkey[sizeof(hkey) - 1] = 1;
  /* An array that claims 2^32-1 elements must not be believed. */
  raw_put(f->db, "history", hkey, sizeof(hkey), "\xdd\xff\xff\xff\xff", 5);
  raw_put(f->db, "idempotency", "k", 1, "\x92\xa1x\xc4\x01y", 6);
  raw_put(f->db, "offsets", "\0\0\0\1", 4, "\1\2\3", 3);
  open_fx(f);

  t = begin(f->st, false);
  assert_int_equal(ctkn_store_get(t, r.token.id, &got, &err), CTKN_ESTORE);
  assert_non_null(strstr(err.msg, "corrupt value in tokens"));
  assert_int_equal(ctkn_store_get_by_token(t, r.token.token, &got, &err),
                   CTKN_ESTORE);
  assert_non_null(strstr(err.msg, "corrupt value in token_index"));
  assert_int_equal(ctkn_store_history(t, r.token.id, collect_history, h, &err),
                   CTKN_ESTORE);
  assert_non_null(strstr(err.msg, "corrupt value in history"));
  assert_int_equal(ctkn_store_get_idem(t, "k", id, hash, &err), CTKN_ESTORE);
  assert_non_null(strstr(err.msg, "corrupt value in idempotency"));
  {
    int64_t next = 5;
    assert_int_equal(ctkn_store_offset(t, 1, &next, &err), CTKN_ESTORE);
    assert_non_null(strstr(err.msg, "corrupt value in offsets"));
    assert_int_equal(next, 0);
  }
  ctkn_store_abort(t);
  free(h);
}

static void test_map_full_says_raise_map_size(void **s)
{
  struct fx *f = *s;
  struct ctkn_store_opts opts = {.map_size = 1 << 20};
  struct ctkn_err err = {0};
  ctkn_store_txn *t;
  static char big[64 * 1024];
  int rc = CTKN_OK;

  assert_int_equal(ctkn_store_open(&f->st, f->db, &opts, &err), CTKN_OK);
  t = begin(f->st, true);
  for (int i = 0; i < 64 && rc == CTKN_OK; i++)
    rc = ctkn_store_put_quarantine(t, 0, i, "big", NULL, 0, big, sizeof(big),
                                   &err);
  assert_int_equal(rc, CTKN_EMAPFULL);
  assert_non_null(strstr(err.msg, "map full: raise --map-size"));
  /* Explained with the store at hand: the size, as --map-size spells it. */
  assert_int_equal(ctkn_store_map_full(f->st, &err), CTKN_EMAPFULL);
  assert_non_null(strstr(err.msg, "(--map-size 1M)"));
  assert_non_null(strstr(err.msg, "e.g. 2M"));
  ctkn_store_abort(t);
}

/* A full disk says so. LMDB reports a write that fell short (what a full
 * file system gives) as EIO, "Input/output error", which told an operator
 * nothing; with the file system's free space known, it is named. */
static void test_a_full_disk_says_no_space_left(void **s)
{
  static const struct {
    int rc;
    long long avail;
    const char *want;
  } cases[] = {
      {ENOSPC, -1,
       "commit: no space left on device: the file system "
       "holding /srv/db is full; free space or move --db"},
      {ENOSPC, 0, "is full (0 bytes free)"},
      {EDQUOT, 5, "no space left on device (disk quota exceeded)"},
      {EIO, 0,
       "commit: no space left on device: the file system holding "
       "/srv/db is full (0 bytes free)"},
      {EIO, CTKN__STORE_FULL_BELOW - 1, "no space left on device"},
      /* Space to spare, or unknown: a real I/O error stays one. */
      {EIO, CTKN__STORE_FULL_BELOW, "commit: Input/output error"},
      {EIO, -1, "commit: Input/output error"},
      {EFBIG, -1,
       "file too large: /srv/db/data.mdb reached a file-size "
       "limit (ulimit -f"},
  };
  struct ctkn_err err;

  (void)s;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    memset(&err, 0, sizeof(err));
    assert_int_equal(ctkn__store_space_err(&err, cases[i].rc, "commit",
                                           "/srv/db", cases[i].avail),
                     CTKN_ESTORE);
    if (strstr(err.msg, cases[i].want) == NULL)
      fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].want);
  }
}

/* Read one byte from fd, or fail. */
static void wait_byte(int fd)
{
  char c;

  assert_int_equal(read(fd, &c, 1), 1);
}

/* Does mdb_reader_list() show a live reader slot for pid? */
struct reader_scan {
  pid_t pid;
  bool found;
};

static int scan_reader(const char *msg, void *ctx)
{
  struct reader_scan *r = ctx;
  int pid;

  if (sscanf(msg, "%d", &pid) == 1 && pid == (int)r->pid)
    r->found = true;
  return 0;
}

static bool has_reader(const char *dir, pid_t pid)
{
  struct reader_scan r = {pid, false};
  MDB_env *env;

  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
  assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS | MDB_RDONLY, 0600), 0);
  assert_true(mdb_reader_list(env, scan_reader, &r) >= 0);
  mdb_env_close(env);
  return r.found;
}

/*
 * A child that opens the store, optionally begins a read txn, says so on
 * ready[1] and then waits to be killed. It also leaves when the parent
 * goes away (EOF on life[0]), so a failed test leaves no process behind.
 */
static pid_t spawn_holder(const char *dir, bool read_txn, const int ready[2],
                          const int life[2])
{
  pid_t pid = fork();

  assert_true(pid >= 0);
  if (pid == 0) {
    ctkn_store *st = NULL;
    ctkn_store_txn *t = NULL;
    char c;

    close(life[1]);
    close(ready[0]);
    if (ctkn_store_open(&st, dir, NULL, NULL) != CTKN_OK ||
        (read_txn && ctkn_store_begin(st, false, &t, NULL) != CTKN_OK) ||
        write(ready[1], "x", 1) != 1)
      _exit(1);
    while (read(life[0], &c, 1) != 0)
      ;
    _exit(0);
  }
  return pid;
}

static void test_stale_reader_of_a_killed_process_is_cleared_at_open(void **s)
{
  struct fx *f = *s;
  struct ctkn_record r, got;
  pid_t holder, reader;
  ctkn_store_txn *t;
  int ready[2], life[2], status;

  ctkn_store_close(open_fx(f));
  f->st = NULL;
  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(life), 0);
  /* The holder keeps the environment open, so no later open is the
   * only one and gets to reset the lock table: only mdb_reader_check()
   * can free the killed reader's slot. */
  holder = f->kids[0] = spawn_holder(f->db, false, ready, life);
  wait_byte(ready[0]);
  reader = f->kids[1] = spawn_holder(f->db, true, ready, life);
  wait_byte(ready[0]);
  assert_int_equal(kill(reader, SIGKILL), 0);
  assert_int_equal(waitpid(reader, &status, 0), reader);
  f->kids[1] = 0;
  assert_true(WIFSIGNALED(status));
  assert_true(has_reader(f->db, reader));

  make_record(f, &r, CTKN_STATUS_ACTIVE);
  t = begin(open_fx(f), true);
  put(t, &r);
  commit(t);
  t = begin(f->st, false);
  assert_int_equal(ctkn_store_get(t, r.token.id, &got, NULL), CTKN_OK);
  ctkn_store_abort(t);
  ctkn_store_close(f->st);
  f->st = NULL;
  assert_false(has_reader(f->db, reader));

  close(life[1]); /* the holder sees EOF and leaves */
  assert_int_equal(waitpid(holder, &status, 0), holder);
  f->kids[0] = 0;
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(life[0]);
  close(ready[0]);
  close(ready[1]);
}

/* ---- the events index (GET /events) ------------------------------------ */

struct events_seen {
  int n, stop_after; /* stop_after 0: never */
  char event_id[16][CTKN_EVT_ID_LEN + 1];
  char id[16][CTKN_ID_BUF];
  uint64_t version[16];
  int type[16];
  int64_t occurred_at[16];
  size_t len[16];
};

static int collect_events(void *arg, const struct ctkn_store_indexed_event *e)
{
  struct events_seen *h = arg;

  if (h->n >= 16)
    return CTKN_EINTERNAL;
  strcpy(h->event_id[h->n], e->event_id);
  strcpy(h->id[h->n], e->ev.id);
  h->version[h->n] = e->ev.version;
  h->type[h->n] = e->type;
  h->occurred_at[h->n] = e->occurred_at;
  h->len[h->n] = e->ev.len;
  h->n++;
  return h->stop_after != 0 && h->n == h->stop_after ? 1 : 0;
}

/* Walk the index with f into a fresh *h, or fail. */
static void walk_events(ctkn_store *st,
                        const struct ctkn_store_events_filter *f,
                        struct events_seen *h)
{
  ctkn_store_txn *t = begin(st, false);
  struct ctkn_err err = {0};
  int stop = h->stop_after;
  int rc;

  memset(h, 0, sizeof(*h));
  h->stop_after = stop;
  rc = ctkn_store_events(t, f, collect_events, h, &err);
  ctkn_store_abort(t);
  if (rc != CTKN_OK)
    fail_msg("events: %s: %s", ctkn_strerror(rc), err.msg);
}

/* Five events of two tokens, put as one batch in a shuffled order, and
 * one history entry whose value is no event (put singly). */
static void put_five_events_as(struct fx *f, char ids[5][CTKN_EVT_ID_LEN + 1],
                               bool given, struct ctkn_record *a,
                               struct ctkn_record *b);

static void put_five_events(struct fx *f, char ids[5][CTKN_EVT_ID_LEN + 1],
                            struct ctkn_record *a, struct ctkn_record *b)
{
  put_five_events_as(f, ids, false, a, b);
}

/* put_five_events(), with the event IDs given (ascending) when given. */
static void put_five_events_as(struct fx *f, char ids[5][CTKN_EVT_ID_LEN + 1],
                               bool given, struct ctkn_record *a,
                               struct ctkn_record *b)
{
  static const int order[5] = {3, 0, 4, 1, 2};
  static const int types[5] = {CTKN_EVENT_CREATED, CTKN_EVENT_CREATED,
                               CTKN_EVENT_UPDATED, CTKN_EVENT_REVOKED,
                               CTKN_EVENT_UPDATED};
  struct ctkn_store_history_put e[5];
  struct ctkn_err err = {0};
  ctkn_store_txn *t;

  make_record(f, a, CTKN_STATUS_ACTIVE);
  make_record(f, b, CTKN_STATUS_ACTIVE);
  for (int i = 0; i < 5 && !given; i++)
    assert_int_equal(ctkn_id_generate("evt_", f->ms + 10 * (i + 1), ids[i],
                                      CTKN_EVT_ID_LEN + 1),
                     0);
  uint8_t *bufs[5] = {0};
  memset(e, 0, sizeof(e));
  for (int j = 0; j < 5; j++) {
    int i = order[j];
    struct ctkn_store_history_put *h = &e[j];
    struct ctkn_event ev;
    /* A real event, so that a rebuild from history finds it again. */
    memset(&ev, 0, sizeof(ev));
    strcpy(ev.event_id, ids[i]);
    ev.type = (ctkn_event_type)types[i];
    ev.version = (uint64_t)(i / 2 + 1);
    ev.data = i % 2 == 0 ? a->token : b->token;
    ev.occurred_at = ev.data.updated_at = (f->ms + 10 * (i + 1)) * 1000;
    assert_int_equal(ctkn_event_encode(&ev, &bufs[j], &h->len, &err), CTKN_OK);
    strcpy(h->id, ev.data.id);
    h->version = ev.version;
    h->partition = i % 2;
    h->offset = i;
    h->value = bufs[j];
    strcpy(h->event_id, ids[i]);
    h->type = types[i];
    h->occurred_at = ev.occurred_at;
  }
  t = begin(open_fx(f), true);
  assert_int_equal(ctkn_store_put_history_batch(t, e, 5, &err), CTKN_OK);
  assert_int_equal(
      ctkn_store_put_history(t, b->token.id, 9, 0, 9, "junk", 4, &err),
      CTKN_OK);
  commit(t);
  for (int j = 0; j < 5; j++)
    free(bufs[j]);
}

static void test_events_index_walks_by_event_id_with_filters(void **s)
{
  struct fx *f = *s;
  char ids[5][CTKN_EVT_ID_LEN + 1];
  struct ctkn_record a, b;
  struct events_seen *h = calloc(1, sizeof(*h));
  struct ctkn_store_events_filter fl = {0};
  struct ctkn_err err = {0};
  ctkn_store_txn *t;
  int64_t n = -1;

  assert_non_null(h);
  put_five_events(f, ids, &a, &b);
  /* Every event in event-ID order, the one that is no event left out. */
  walk_events(f->st, &fl, h);
  assert_int_equal(h->n, 5);
  for (int i = 0; i < 5; i++) {
    assert_string_equal(h->event_id[i], ids[i]);
    assert_string_equal(h->id[i], i % 2 == 0 ? a.token.id : b.token.id);
    assert_int_equal(h->version[i], (uint64_t)(i / 2 + 1));
    assert_true(h->len[i] > 0);
  }
  assert_int_equal(h->type[3], CTKN_EVENT_REVOKED);
  /* Newest first; after is exclusive both ways. */
  fl.desc = true;
  walk_events(f->st, &fl, h);
  assert_int_equal(h->n, 5);
  assert_string_equal(h->event_id[0], ids[4]);
  fl.after = ids[3];
  walk_events(f->st, &fl, h);
  assert_int_equal(h->n, 3);
  assert_string_equal(h->event_id[0], ids[2]);
  fl.desc = false;
  fl.after = ids[1];
  walk_events(f->st, &fl, h);
  assert_int_equal(h->n, 3);
  assert_string_equal(h->event_id[0], ids[2]);
  /* By type, and by time: from inclusive, to exclusive. */
  fl.after = NULL;
  fl.type_mask = (1u << CTKN_EVENT_UPDATED) | (1u << CTKN_EVENT_REVOKED);
  walk_events(f->st, &fl, h);
  assert_int_equal(h->n, 3);
  assert_string_equal(h->event_id[0], ids[2]);
  assert_string_equal(h->event_id[2], ids[4]);
  fl.type_mask = 0;
  fl.has_from = fl.has_to = true;
  fl.from_us = (f->ms + 20) * 1000;
  fl.to_us = (f->ms + 40) * 1000;
  walk_events(f->st, &fl, h);
  assert_int_equal(h->n, 2);
  assert_string_equal(h->event_id[0], ids[1]);
  assert_string_equal(h->event_id[1], ids[2]);
  /* A callback's positive return stops the walk, without an error. */
  memset(&fl, 0, sizeof(fl));
  h->stop_after = 2;
  walk_events(f->st, &fl, h);
  assert_int_equal(h->n, 2);
  /* The count is the index's: one entry per history entry. */
  t = begin(f->st, false);
  assert_int_equal(ctkn_store_events_count(t, &n, &err), CTKN_OK);
  assert_int_equal(n, 6);
  fl.after = "evt_nope";
  assert_int_equal(ctkn_store_events(t, &fl, collect_events, h, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "after");
  ctkn_store_abort(t);
  free(h);
}

/* Put the settings event id (at ms), code, at (partition 0, offset off),
 * its JSON "{\"n\":off}". */
static void put_setting_event(struct fx *f, int64_t ms, int code, int64_t off,
                              const char *id)
{
  char json[32];
  struct ctkn_err err = {0};
  ctkn_store_txn *t = begin(f->st, true);

  snprintf(json, sizeof(json), "{\"n\":%d}", (int)off);
  struct ctkn_store_setting_event e = {.event_id = id,
                                       .code = code,
                                       .occurred_at = ms * 1000,
                                       .partition = 0,
                                       .offset = off,
                                       .json = json,
                                       .len = strlen(json)};
  assert_int_equal(ctkn_store_put_setting_event(t, &e, &err), CTKN_OK);
  commit(t);
}

/* The JSON a walk hands over for settings events, kept by the callback. */
struct json_seen {
  int n;
  char id[16][CTKN_EVT_ID_LEN + 1];
  char json[16][32];
  int type[16];
};

static int collect_json(void *arg, const struct ctkn_store_indexed_event *e)
{
  struct json_seen *h = arg;

  if (h->n >= 16)
    return CTKN_EINTERNAL;
  strcpy(h->id[h->n], e->event_id);
  h->type[h->n] = e->type;
  snprintf(h->json[h->n], sizeof(h->json[0]), "%.*s", (int)e->json_len,
           e->json != NULL ? e->json : "");
  h->n++;
  return 0;
}

static void walk_json(ctkn_store *st, const struct ctkn_store_events_filter *fl,
                      struct json_seen *h)
{
  ctkn_store_txn *t = begin(st, false);
  struct ctkn_err err = {0};

  memset(h, 0, sizeof(*h));
  if (ctkn_store_events(t, fl, collect_json, h, &err) != CTKN_OK)
    fail_msg("events: %s", err.msg);
  ctkn_store_abort(t);
}

static void test_setting_events_walk_with_the_index_in_event_id_order(void **s)
{
  struct fx *f = *s;
  char ids[5][CTKN_EVT_ID_LEN + 1], sid[3][CTKN_EVT_ID_LEN + 1];
  struct ctkn_record a, b;
  struct json_seen *h = calloc(1, sizeof(*h));
  struct ctkn_store_events_filter fl = {0};
  struct ctkn_err err = {0};
  ctkn_store_txn *t;
  int64_t n = -1;

  assert_non_null(h);
  /* Eight ascending IDs (a process's ULIDs only grow), dealt out so
   * that the two tables interleave. */
  char u[8][CTKN_EVT_ID_LEN + 1];
  for (int i = 0; i < 8; i++)
    assert_int_equal(
        ctkn_id_generate("evt_", f->ms + i, u[i], CTKN_EVT_ID_LEN + 1), 0);
  static const int tok_at[5] = {1, 2, 3, 5, 6}, set_at[3] = {0, 4, 7};
  for (int i = 0; i < 5; i++)
    strcpy(ids[i], u[tok_at[i]]);
  for (int i = 0; i < 3; i++)
    strcpy(sid[i], u[set_at[i]]);
  put_five_events_as(f, ids, true, &a, &b); /* at ms + 10, 20, ..., 50 */
  put_setting_event(f, f->ms + 5, 3, 0, sid[0]);
  put_setting_event(f, f->ms + 35, 6, 1, sid[1]);
  put_setting_event(f, f->ms + 60, 3, 2, sid[2]);
  /* Without a settings mask, the index alone, as before. */
  walk_json(f->st, &fl, h);
  assert_int_equal(h->n, 5);
  /* Both, one event-ID order: settings events with their JSON. */
  fl.setting_mask = (1u << 3) | (1u << 6);
  walk_json(f->st, &fl, h);
  assert_int_equal(h->n, 8);
  const char *want[8] = {sid[0], ids[0], ids[1], ids[2],
                         sid[1], ids[3], ids[4], sid[2]};
  for (int i = 0; i < 8; i++)
    assert_string_equal(h->id[i], want[i]);
  assert_string_equal(h->json[0], "{\"n\":0}");
  assert_string_equal(h->json[4], "{\"n\":1}");
  assert_int_equal(h->type[4], 6);
  assert_string_equal(h->json[1], ""); /* the index's: no JSON */
  /* Newest first is the reverse; after crosses from one table to the
   * other both ways. */
  fl.desc = true;
  walk_json(f->st, &fl, h);
  assert_int_equal(h->n, 8);
  for (int i = 0; i < 8; i++)
    assert_string_equal(h->id[i], want[7 - i]);
  fl.after = sid[1];
  walk_json(f->st, &fl, h);
  assert_int_equal(h->n, 4);
  assert_string_equal(h->id[0], ids[2]);
  fl.desc = false;
  fl.after = ids[2];
  walk_json(f->st, &fl, h);
  assert_int_equal(h->n, 4);
  assert_string_equal(h->id[0], sid[1]);
  /* A code mask, the tokens left out, and time bounds apply to both. */
  fl.after = NULL;
  fl.skip_tokens = true;
  fl.setting_mask = 1u << 3;
  walk_json(f->st, &fl, h);
  assert_int_equal(h->n, 2);
  assert_string_equal(h->id[1], sid[2]);
  fl.skip_tokens = false;
  fl.setting_mask = ~0u;
  fl.has_from = fl.has_to = true;
  fl.from_us = (f->ms + 30) * 1000;
  fl.to_us = (f->ms + 60) * 1000;
  walk_json(f->st, &fl, h);
  assert_int_equal(h->n, 4);
  assert_string_equal(h->id[0], ids[2]);
  assert_string_equal(h->id[1], sid[1]);
  /* Counted apart from the index; a bad ID or code is refused. */
  t = begin(f->st, true);
  assert_int_equal(ctkn_store_setting_events_count(t, &n, &err), CTKN_OK);
  assert_int_equal(n, 3);
  struct ctkn_store_setting_event bad = {.event_id = "evt_nope", .json = ""};
  assert_int_equal(ctkn_store_put_setting_event(t, &bad, &err), CTKN_EINVAL);
  bad.event_id = sid[0];
  bad.code = 32;
  assert_int_equal(ctkn_store_put_setting_event(t, &bad, &err), CTKN_EINVAL);
  ctkn_store_abort(t);
  free(h);
}

/* Drop a table with raw LMDB, as a build from before it left the store. */
static void raw_drop(const char *dir, const char *table)
{
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;

  assert_int_equal(mdb_env_create(&env), 0);
  assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
  assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
  assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, table, 0, &dbi), 0);
  assert_int_equal(mdb_drop(txn, dbi, 1), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

static void test_events_index_is_built_for_a_projection_from_before_it(void **s)
{
  struct fx *f = *s;
  char ids[5][CTKN_EVT_ID_LEN + 1];
  struct ctkn_record a, b;
  struct events_seen *h = calloc(1, sizeof(*h));
  struct ctkn_store_events_filter fl = {0};
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_event ev;
  struct ctkn_err err = {0};
  ctkn_store *rst = NULL;
  ctkn_store_txn *t;
  uint8_t *buf = NULL;
  size_t len = 0;

  assert_non_null(h);
  put_five_events(f, ids, &a, &b);
  /* An encoded event put singly: its ID, type and time come from it. */
  memset(&ev, 0, sizeof(ev));
  assert_int_equal(
      ctkn_id_generate("evt_", f->ms + 100, ev.event_id, sizeof(ev.event_id)),
      0);
  ev.type = CTKN_EVENT_REVOKED;
  ev.version = 2;
  ev.data = a.token;
  ev.occurred_at = ev.data.updated_at = (f->ms + 100) * 1000;
  ev.data.status = CTKN_STATUS_REVOKED;
  ev.data.revoked_at = ev.occurred_at;
  assert_int_equal(ctkn_event_encode(&ev, &buf, &len, &err), CTKN_OK);
  t = begin(f->st, true);
  assert_int_equal(
      ctkn_store_put_history(t, a.token.id, 7, 1, 50, buf, len, &err), CTKN_OK);
  commit(t);
  free(buf);
  ctkn_store_close(f->st);
  f->st = NULL;

  /* A projection from before the index: a reader says so; the first
   * writer to open it builds the index from history. */
  raw_drop(f->db, "events");
  assert_int_equal(ctkn_store_open(&rst, f->db, &ro, &err), CTKN_OK);
  t = begin(rst, false);
  assert_int_equal(ctkn_store_events(t, &fl, collect_events, h, &err),
                   CTKN_ENOTFOUND);
  assert_non_null(strstr(err.msg, "ctkn project"));
  ctkn_store_abort(t);
  ctkn_store_close(rst);
  open_fx(f);
  walk_events(f->st, &fl, h);
  assert_int_equal(h->n, 6);
  for (int i = 0; i < 5; i++)
    assert_string_equal(h->event_id[i], ids[i]);
  assert_string_equal(h->event_id[5], ev.event_id);
  assert_int_equal(h->type[5], CTKN_EVENT_REVOKED);
  assert_int_equal(h->occurred_at[5], ev.occurred_at);
  assert_int_equal(h->version[5], 7);
  /* Rebuilt once: the counts agree now, so reopening keeps it. */
  reopen_fx(f);
  walk_events(f->st, &fl, h);
  assert_int_equal(h->n, 6);
  free(h);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      T(test_open_creates_the_directory_and_records_the_format),
      T(test_open_on_a_file_fails_with_estore),
      T(test_reopen_keeps_data),
      T(test_a_writer_defers_the_meta_sync),
      T(test_refresh_follows_a_swap_but_not_under_an_open_txn),
      T(test_counts_by_status),
      T(test_unknown_format_is_refused_naming_ctkn_rebuild),
      T(test_bind_records_then_refuses_another_topic_or_env),
      T(test_conflicting_bind_records_nothing),
      T(test_read_only_open_of_a_missing_store_fails),
      T(test_read_only_store_reads_but_refuses_writes),
      T(test_put_get_round_trip_and_get_by_token),
      T(test_lookup_token_follows_the_status_through_revoke),
      T(test_snapshot_is_a_consistent_copy_with_the_same_digest),
      T(test_a_failed_snapshot_leaves_no_projection_behind),
      T(test_get_missing_returns_notfound),
      T(test_update_overwrites_and_keeps_one_index_entry),
      T(test_token_string_of_another_token_is_a_conflict),
      T(test_writes_check_their_arguments),
      T(test_idempotency_round_trip_and_first_writer_wins),
      T(test_offsets_default_to_zero_and_walk_in_partition_order),
      T(test_history_comes_out_by_version_past_255),
      T(test_rejected_and_quarantine_walk_in_coordinate_order),
      T(test_quarantine_counts_are_kept_per_partition),
      T(test_list_pages_through_25_tokens_in_both_directions),
      T(test_list_after_cursor_status_mask_and_limits),
      T(test_digest_ignores_transaction_grouping),
      T(test_history_batch_equals_single_puts),
      T(test_events_index_walks_by_event_id_with_filters),
      T(test_events_index_is_built_for_a_projection_from_before_it),
      T(test_setting_events_walk_with_the_index_in_event_id_order),
      T(test_revoked_count_moves_when_an_index_entry_turns),
      T(test_a_token_put_several_times_in_a_batch_is_written_once),
      T(test_reads_in_the_txn_see_its_buffered_puts),
      T(test_the_batch_goes_on_after_a_count_writes_it_out),
      T(test_new_tokens_land_before_between_and_past_stored_ones),
      T(test_batch_guesses_are_checked_as_it_is_written),
      T(test_projector_goes_again_when_a_guess_was_wrong),
      T(test_digest_changes_with_any_single_difference),
      T(test_digest_of_a_fixed_projection_is_pinned),
      T(test_abort_discards_writes),
      T(test_reader_does_not_see_uncommitted_writes),
      T(test_corrupt_values_are_store_errors),
      T(test_map_full_says_raise_map_size),
      T(test_a_full_disk_says_no_space_left),
      T(test_stale_reader_of_a_killed_process_is_cleared_at_open),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
