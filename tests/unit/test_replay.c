/*
 * test_replay.c - replay's rule for its target directory: never into a
 * projection, and no directory left behind by a replay that failed; and
 * an archive replayed into a frozen projection, without Kafka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctkn/archive.h"
#include "ctkn/log.h"
#include "ctkn/query.h"
#include "ctkn/replay.h"
#include "ctkn/store.h"

#define MAP ((size_t)64 << 20)

struct fx {
  char tmp[64];
  char db[96];      /* tmp/db: the replay's target */
  char archive[96]; /* tmp/a.arc */
  struct ctkn_log_config cfg;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));

  if (f == NULL)
    return -1;
  snprintf(f->tmp, sizeof(f->tmp), "/tmp/ctkn_test_replay_XXXXXX");
  if (mkdtemp(f->tmp) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->db, sizeof(f->db), "%s/db", f->tmp);
  snprintf(f->archive, sizeof(f->archive), "%s/a.arc", f->tmp);
  /* Nothing listens there: a replay from the log fails, boundedly. */
  ctkn_log_config_init(&f->cfg);
  snprintf(f->cfg.brokers, sizeof(f->cfg.brokers), "127.0.0.1:1");
  f->cfg.timeout_ms = 300;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  ctkn_store_remove(f->db);
  rmdir(f->db);
  unlink(f->archive);
  rmdir(f->tmp);
  ctkn_log_config_free(&f->cfg);
  free(f);
  return 0;
}

static bool exists(const char *path)
{
  struct stat sb;

  return stat(path, &sb) == 0;
}

static void make_projection(const char *dir)
{
  struct ctkn_store_opts opts = {.map_size = MAP};
  struct ctkn_err err = {0};
  ctkn_store *st;

  assert_int_equal(ctkn_store_open(&st, dir, &opts, &err), CTKN_OK);
  ctkn_store_close(st);
}

/* An archive of an empty topic of two partitions. */
static void write_empty_archive(const char *path)
{
  const int64_t start[2] = {0, 0}, end[2] = {0, 0};
  ctkn_archive_writer *w;
  struct ctkn_err err = {0};

  assert_int_equal(
      ctkn_archive_writer_open(&w, path, "archived-topic", 2, start, end, &err),
      CTKN_OK);
  assert_int_equal(ctkn_archive_writer_finish(w, NULL, &err), CTKN_OK);
}

static void test_replay_refuses_a_directory_that_holds_a_projection(void **st)
{
  struct fx *f = *st;
  struct ctkn_err err = {0};
  char data[128];

  make_projection(f->db);
  write_empty_archive(f->archive);
  assert_int_equal(
      ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX, MAP, &err),
      CTKN_ECONFLICT);
  assert_string_equal(err.field, "");
  assert_true(strstr(err.msg, "already holds a projection; replay into a "
                              "new --db") != NULL);
  assert_int_equal(
      ctkn_replay_as_of(f->db, &f->cfg, CTKN_ENV_SANDBOX, MAP, NULL, 0, &err),
      CTKN_ECONFLICT);
  snprintf(data, sizeof(data), "%s/data.mdb", f->db);
  assert_true(exists(data));
}

static void test_failed_replay_removes_the_directory_it_created(void **st)
{
  struct fx *f = *st;
  struct ctkn_err err = {0};

  assert_int_not_equal(
      ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX, MAP, &err),
      CTKN_OK);
  assert_false(exists(f->db));

  int rc = ctkn_replay_as_of(f->db, &f->cfg, CTKN_ENV_SANDBOX, MAP, NULL,
                             INT64_C(1700000000000000), &err);
  assert_true(rc == CTKN_EKAFKA || rc == CTKN_ETIMEOUT || rc == CTKN_ENOTFOUND);
  assert_false(exists(f->db));
}

static void test_failed_replay_keeps_a_directory_that_existed(void **st)
{
  struct fx *f = *st;
  struct ctkn_err err = {0};

  assert_int_equal(mkdir(f->db, 0700), 0);
  assert_int_not_equal(
      ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX, MAP, &err),
      CTKN_OK);
  assert_true(exists(f->db));
}

static void test_archive_replays_into_a_frozen_projection(void **st)
{
  struct fx *f = *st;
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_err err = {0};
  char as_of[CTKN_TIME_BUF], *json = NULL;
  ctkn_store *s;

  write_empty_archive(f->archive);
  assert_int_equal(
      ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX, MAP, &err),
      CTKN_OK);
  assert_int_equal(ctkn_store_open(&s, f->db, &ro, &err), CTKN_OK);
  assert_int_equal(ctkn_store_frozen(s, as_of, &err), CTKN_OK);
  assert_string_not_equal(as_of, "");
  assert_int_equal(ctkn_query_digest(s, &json, &err), CTKN_OK);
  assert_true(strstr(json, "\"tokens\":0") != NULL);
  free(json);
  ctkn_store_close(s);

  /* Once there, it is a projection: a second replay is refused. */
  assert_int_equal(
      ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX, MAP, &err),
      CTKN_ECONFLICT);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_replay_refuses_a_directory_that_holds_a_projection, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_failed_replay_removes_the_directory_it_created, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_failed_replay_keeps_a_directory_that_existed, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_archive_replays_into_a_frozen_projection, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
