/*
 * test_follow.c - the side-topic follower (src/follow_int.h) that the
 * settings and notifications topics share, over a toy side on the fake
 * log: where it starts, how far catch-up reads, a newer schema stopping
 * it, and the limits on partitions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "follow_int.h"
#include "testkit.h"

#define SUFFIX "-toy"

/* The toy side's projection: next offset per partition, what it saw. */
static int64_t next[4];
static int64_t from[4];       /* start(): where to read from */
static int seen;              /* records projected */
static int64_t newer_at = -1; /* offset of partition 0 that is "newer" */

static int toy_topic(const char *topic, char *out, size_t outsz,
                     struct ctkn_err *err)
{
  (void)err;
  snprintf(out, outsz, "%s%s", topic, SUFFIX);
  return CTKN_OK;
}

static int64_t toy_offset(ctkn_store_txn *txn, int32_t p)
{
  (void)txn;
  return next[p];
}

static int64_t toy_start(ctkn_store_txn *txn, int32_t p)
{
  (void)txn;
  return from[p];
}

static int toy_project(ctkn_store *st, const struct ctkn_log_msg *msgs,
                       size_t n, struct ctkn__judged *j, struct ctkn_err *err)
{
  (void)st;
  assert_null(j);
  for (size_t i = 0; i < n; i++) {
    if (msgs[i].partition == 0 && msgs[i].offset == newer_at)
      return ctkn__err(err, CTKN_EFORMAT, "toy record is newer");
    seen++;
    next[msgs[i].partition] = msgs[i].offset + 1;
  }
  return CTKN_OK;
}

static struct ctkn__follow_side side = {
    .kind = "toy",
    .diag = "toy",
    .batch = 2, /* several polls a catch-up */
    .max_parts = 4,
    .keyring_verdict = -1,
    .topic = toy_topic,
    .offset = toy_offset,
    .project = toy_project,
};

static void append(struct tk *t, int32_t p, int k)
{
  char key[16];
  int n = snprintf(key, sizeof(key), "k%d", k);

  fake_log_append(t->log, TK_TOPIC SUFFIX, p, key, (size_t)n, "v", 1,
                  1700000000000, NULL, 0);
}

static int setup(void **state)
{
  static struct tk t;

  memset(next, 0, sizeof(next));
  memset(from, 0, sizeof(from));
  seen = 0;
  newer_at = -1;
  side.start = NULL;
  side.max_parts = 4;
  tk_open(&t, 1);
  *state = &t;
  return 0;
}

static int teardown(void **state)
{
  tk_close(*state);
  return 0;
}

static void test_no_topic(void **state)
{
  struct tk *t = *state;
  struct ctkn_err err = {0};
  ctkn__follower *f = (ctkn__follower *)&err; /* set to NULL on failure */

  assert_int_equal(ctkn__follow_open(&f, &side, t->st, &t->cfg, &err),
                   CTKN_ENOTFOUND);
  assert_null(f);
  assert_non_null(
      strstr(err.msg, "toy topic " TK_TOPIC SUFFIX " does not exist"));
}

static void test_catch_up_reads_to_the_end(void **state)
{
  struct tk *t = *state;
  struct ctkn_err err = {0};
  ctkn__follower *f;

  fake_log_create(t->log, TK_TOPIC SUFFIX, 2);
  for (int k = 0; k < 5; k++)
    append(t, k % 2, k);
  assert_int_equal(ctkn__follow_open(&f, &side, t->st, &t->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn__follow_partitions(f), 2);
  assert_int_equal(ctkn__follow_catch_up(f, &err), CTKN_OK);
  assert_int_equal(seen, 5);
  assert_int_equal(next[0], 3);
  assert_int_equal(next[1], 2);
  assert_non_null(ctkn__follow_consumer(f));
  ctkn__follow_close(f);
}

static void test_start_is_where_it_reads_from(void **state)
{
  struct tk *t = *state;
  struct ctkn_err err = {0};
  ctkn__follower *f;

  fake_log_create(t->log, TK_TOPIC SUFFIX, 1);
  for (int k = 0; k < 4; k++)
    append(t, 0, k);
  next[0] = 1; /* projected past offset 0 */
  from[0] = 2; /* but read from 2 */
  side.start = toy_start;
  assert_int_equal(ctkn__follow_open(&f, &side, t->st, &t->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn__follow_catch_up(f, &err), CTKN_OK);
  assert_int_equal(seen, 2); /* offsets 2 and 3 */
  ctkn__follow_close(f);
}

static void test_newer_schema_stops_it(void **state)
{
  struct tk *t = *state;
  struct ctkn_err err = {0};
  ctkn__follower *f;
  size_t got;

  fake_log_create(t->log, TK_TOPIC SUFFIX, 1);
  for (int k = 0; k < 3; k++)
    append(t, 0, k);
  newer_at = 0;
  assert_int_equal(ctkn__follow_open(&f, &side, t->st, &t->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn__follow_catch_up(f, &err), CTKN_EFORMAT);
  assert_non_null(strstr(err.msg, "the toy topic holds a newer schema"));
  assert_null(ctkn__follow_consumer(f));
  assert_int_equal(ctkn__follow_poll(f, 10, &got, &err), CTKN_OK);
  assert_int_equal(got, 0);
  assert_int_equal(seen, 0);
  ctkn__follow_close(f);
}

static void test_too_many_partitions(void **state)
{
  struct tk *t = *state;
  struct ctkn_err err = {0};
  ctkn__follower *f;

  fake_log_create(t->log, TK_TOPIC SUFFIX, 3);
  side.max_parts = 2;
  assert_int_equal(ctkn__follow_open(&f, &side, t->st, &t->cfg, &err),
                   CTKN_EKAFKA);
  assert_null(f);
  assert_non_null(strstr(err.msg, "a toy topic has 1 to 2"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_no_topic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_catch_up_reads_to_the_end, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_start_is_where_it_reads_from, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_newer_schema_stops_it, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_too_many_partitions, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
