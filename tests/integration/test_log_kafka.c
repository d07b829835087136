/*
 * test_log_kafka.c - the Kafka log against a real Apache Kafka broker.
 *
 * The broker's address comes from CTKN_TEST_BROKERS (ctest sets it and
 * starts deploy/kafka as a fixture); without it every test is skipped.
 * Each test makes its own topic, named after the process and the clock, so
 * reruns against the same broker never collide.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctkn/log.h"

#define RECORDS    1000
#define PARTITIONS 4

struct fx {
  struct ctkn_log_config cfg;
};

static int64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
  static int seq;
  const char *brokers = getenv("CTKN_TEST_BROKERS");
  struct fx *f;

  *state = NULL;
  if (brokers == NULL || brokers[0] == '\0')
    return 0; /* each test skips (cmocka counts a skip in setup as an error) */
  f = calloc(1, sizeof(*f));
  assert_non_null(f);
  ctkn_log_config_init(&f->cfg);
  snprintf(f->cfg.brokers, sizeof(f->cfg.brokers), "%s", brokers);
  snprintf(f->cfg.topic, sizeof(f->cfg.topic), "ctkn_it_%ld_%lld_%d",
           (long)getpid(), (long long)time(NULL), ++seq);
  f->cfg.timeout_ms = 15000;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  if (f != NULL) {
    ctkn_log_config_free(&f->cfg);
    free(f);
  }
  return 0;
}

/* The fixture, or a skip when there is no broker to talk to. */
static struct fx *broker(void **state)
{
  if (*state == NULL) {
    print_message("CTKN_TEST_BROKERS is not set: skipped (`ctest -L "
                  "integration` starts deploy/kafka and sets it)\n");
    skip();
  }
  return *state;
}

static void assert_contains(const char *s, const char *part)
{
  if (strstr(s, part) == NULL)
    fail_msg("\"%s\" does not contain \"%s\"", s, part);
}

static void create(struct fx *f, int partitions)
{
  struct ctkn_err err;
  bool created = false;
  int32_t n = 0;
  int rc = ctkn_log_create_topic(&f->cfg, partitions, 1, &created, &n, &err);

  if (rc != CTKN_OK)
    fail_msg("create_topic: %s: %s", ctkn_strerror(rc), err.msg);
  assert_true(created);
  assert_int_equal(n, partitions);
}

static void test_create_topic_then_again_is_idempotent(void **state)
{
  struct fx *f = broker(state);
  struct ctkn_err err;
  bool created = true;
  int32_t n = 0;

  create(f, 6);
  /* A second init finds the topic and reports its real partition count,
   * whatever count it asked for. */
  assert_int_equal(ctkn_log_create_topic(&f->cfg, 3, 1, &created, &n, &err),
                   CTKN_OK);
  assert_false(created);
  assert_int_equal(n, 6);

  ctkn_consumer *c;
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  n = 0;
  assert_int_equal(ctkn_consumer_partitions(c, &n, &err), CTKN_OK);
  assert_int_equal(n, 6);
  ctkn_consumer_close(c);
}

static void
test_create_topic_refuses_an_impossible_replication_factor(void **state)
{
  struct fx *f = broker(state);
  struct ctkn_err err;
  bool created = true;
  int32_t n = -1;

  /* The test broker is a single node. */
  assert_int_equal(ctkn_log_create_topic(&f->cfg, 1, 3, &created, &n, &err),
                   CTKN_EINVAL);
  assert_false(created);
  assert_contains(err.msg, "cannot create topic");
  assert_contains(err.msg, "eplication factor");
}

static void record(int i, char *key, size_t ksz, char *value, size_t vsz,
                   const char **etype)
{
  static const char *const types[] = {
      "client_token.created", "client_token.updated", "client_token.revoked"};

  snprintf(key, ksz, "ctkn_%026d", i);
  /* Values of varying length, some with NUL bytes. */
  int n = snprintf(value, vsz, "value-%d-", i);
  for (int j = 0; j < i % 200; j++)
    value[n + j] = (char)(j % 7 == 0 ? 0 : 'a' + j % 26);
  value[n + i % 200] = '\0';
  *etype = types[i % 3];
}

static void test_round_trip_of_many_records_across_partitions(void **state)
{
  struct fx *f = broker(state);
  static int32_t part[RECORDS];
  static int64_t off[RECORDS];
  static bool seen[RECORDS];
  int64_t count[PARTITIONS] = {0};
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;
  char key[64], value[512];
  const char *etype;

  create(f, PARTITIONS);
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  for (int i = 0; i < RECORDS; i++) {
    record(i, key, sizeof(key), value, sizeof(value), &etype);
    size_t vlen = strlen("value-") + (size_t)snprintf(NULL, 0, "%d-", i) +
                  (size_t)(i % 200);
    /* Every tenth record is pinned to a partition, as later commands are. */
    int32_t want = i % 10 == 0 ? i % PARTITIONS : -1;
    int rc = ctkn_producer_send(p, want, key, strlen(key), value, vlen,
                                1700000000000 + i, etype, 1 + i % 2, &part[i],
                                &off[i], &err);
    if (rc != CTKN_OK)
      fail_msg("send %d: %s: %s", i, ctkn_strerror(rc), err.msg);
    if (want >= 0)
      assert_int_equal(part[i], want);
    else
      assert_int_equal(part[i],
                       ctkn_log_partition_for(key, strlen(key), PARTITIONS));
    assert_int_equal(off[i], count[part[i]]++);
  }
  ctkn_producer_close(p);

  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  for (int32_t i = 0; i < PARTITIONS; i++) {
    int64_t lo = -1, hi = -1;
    assert_int_equal(ctkn_consumer_watermarks(c, i, &lo, &hi, &err), CTKN_OK);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, count[i]);
  }
  int64_t start[PARTITIONS] = {0};
  assert_int_equal(ctkn_consumer_assign(c, start, PARTITIONS, &err), CTKN_OK);

  struct ctkn_log_msg msgs[64];
  int got = 0;
  int64_t deadline = now_ms() + 30000;
  while (got < RECORDS && now_ms() < deadline) {
    size_t n;
    int rc = ctkn_consumer_poll(c, 500, msgs, 64, &n, &err);
    if (rc != CTKN_OK)
      fail_msg("poll: %s: %s", ctkn_strerror(rc), err.msg);
    for (size_t j = 0; j < n; j++) {
      const struct ctkn_log_msg *m = &msgs[j];
      char kbuf[32];
      int i;
      assert_int_equal(m->key_len, 31);
      memcpy(kbuf, m->key, 31);
      kbuf[31] = '\0';
      assert_int_equal(sscanf(kbuf + 5, "%26d", &i), 1);
      assert_true(i >= 0 && i < RECORDS);
      assert_false(seen[i]);
      seen[i] = true;
      got++;
      record(i, key, sizeof(key), value, sizeof(value), &etype);
      size_t vlen = strlen("value-") + (size_t)snprintf(NULL, 0, "%d-", i) +
                    (size_t)(i % 200);
      assert_memory_equal(m->key, key, 31);
      assert_int_equal(m->value_len, vlen);
      assert_memory_equal(m->value, value, vlen);
      assert_int_equal(m->partition, part[i]);
      assert_int_equal(m->offset, off[i]);
      assert_int_equal(m->timestamp_ms, 1700000000000 + i);
      assert_string_equal(m->event_type, etype);
      assert_int_equal(m->schema_version, 1 + i % 2);
    }
  }
  assert_int_equal(got, RECORDS);
  /* Nothing more: the log holds exactly what was produced. */
  size_t n = 1;
  assert_int_equal(ctkn_consumer_poll(c, 300, msgs, 64, &n, &err), CTKN_OK);
  assert_int_equal(n, 0);
  ctkn_consumer_close(c);
}

static void test_offset_past_the_end_is_reported(void **state)
{
  struct fx *f = broker(state);
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg msgs[8];
  int32_t part;
  int64_t off;
  int rc = CTKN_OK;
  size_t n;

  create(f, 1);
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  for (int i = 0; i < 3; i++)
    assert_int_equal(
        ctkn_producer_send(p, 0, "k", 1, "v", 1, 1, "e", 1, &part, &off, &err),
        CTKN_OK);
  ctkn_producer_close(p);

  /* As a projection of a deleted and re-created topic would ask. */
  int64_t start[1] = {10};
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_consumer_assign(c, start, 1, &err), CTKN_OK);
  int64_t deadline = now_ms() + 10000;
  while (rc == CTKN_OK && now_ms() < deadline)
    rc = ctkn_consumer_poll(c, 200, msgs, 8, &n, &err);
  assert_int_equal(rc, CTKN_EKAFKA);
  assert_contains(err.msg, "the stored offset 10 is outside the log");
  ctkn_consumer_close(c);
}

struct late_send {
  struct ctkn_log_config *cfg;
  int rc;
};

/* 300 ms from now, one record on cfg's topic. */
static void *send_late(void *arg)
{
  struct late_send *ls = arg;
  struct timespec ts = {0, 300 * 1000 * 1000};
  struct ctkn_err err;
  ctkn_producer *p;
  int32_t part;
  int64_t off;

  nanosleep(&ts, NULL);
  if ((ls->rc = ctkn_producer_open(&p, ls->cfg, &err)) != CTKN_OK)
    return NULL;
  ls->rc =
      ctkn_producer_send(p, 0, "k", 1, "v", 1, 1, "e", 1, &part, &off, &err);
  ctkn_producer_close(p);
  return NULL;
}

/* Wait on cs for ms, polling whatever wakes the wait (a consumer's queue
 * may hold something other than records, which its poll serves); the
 * wake-ups that brought no record. */
static int idle_wakes(ctkn_consumer **cs, size_t n, int ms)
{
  struct ctkn_log_msg msgs[8];
  struct ctkn_err err;
  int64_t until = now_ms() + ms;
  int wakes = 0;
  size_t ready, got;

  while (now_ms() < until) {
    assert_int_equal(
        ctkn_consumer_wait(cs, n, (int)(until - now_ms()), &ready, &err),
        CTKN_OK);
    if (ready == n)
      continue;
    assert_int_equal(ctkn_consumer_poll(cs[ready], 0, msgs, 8, &got, &err),
                     CTKN_OK);
    assert_int_equal(got, 0);
    wakes++;
  }
  return wakes;
}

static void test_wait_wakes_for_whichever_consumer_has_a_record(void **state)
{
  struct fx *f = broker(state);
  struct ctkn_log_config other;
  ctkn_consumer *cs[3] = {NULL, NULL, NULL};
  struct ctkn_log_msg msgs[8];
  struct ctkn_err err;
  int64_t zero[1] = {0};
  size_t ready, n;

  create(f, 1);
  other = f->cfg;
  other.n_overrides = 0;
  snprintf(other.topic, sizeof(other.topic), "%.200s_b", f->cfg.topic);
  bool created;
  int32_t np;
  assert_int_equal(ctkn_log_create_topic(&other, 1, 1, &created, &np, &err),
                   CTKN_OK);
  assert_int_equal(ctkn_consumer_open(&cs[0], &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_consumer_open(&cs[2], &other, &err), CTKN_OK);
  assert_int_equal(ctkn_consumer_assign(cs[0], zero, 1, &err), CTKN_OK);
  assert_int_equal(ctkn_consumer_assign(cs[2], zero, 1, &err), CTKN_OK);

  /* Both idle: a few wake-ups at most (the assignments' own work), not a
   * loop. */
  int wakes = idle_wakes(cs, 3, 1500);
  print_message("idle wake-ups in 1.5 s: %d\n", wakes);
  assert_true(wakes <= 4);

  /* A record on the second topic while sleeping on both wakes the wait
   * long before its timeout, naming that consumer (NULL is skipped). */
  struct late_send ls = {&other, -1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, send_late, &ls), 0);
  int64_t t0 = now_ms();
  assert_int_equal(ctkn_consumer_wait(cs, 3, 20000, &ready, &err), CTKN_OK);
  int64_t took = now_ms() - t0;
  pthread_join(th, NULL);
  assert_int_equal(ls.rc, CTKN_OK);
  assert_int_equal(ready, 2);
  assert_true(took < 10000);
  assert_int_equal(ctkn_consumer_poll(cs[2], 0, msgs, 8, &n, &err), CTKN_OK);
  assert_int_equal(n, 1);

  /* Taken: idle again. */
  assert_true(idle_wakes(cs, 3, 500) <= 2);
  ctkn_consumer_close(cs[0]);
  ctkn_consumer_close(cs[2]);
}

static void test_missing_topic_is_notfound(void **state)
{
  struct fx *f = broker(state);
  ctkn_consumer *c = (ctkn_consumer *)1;
  ctkn_producer *p = (ctkn_producer *)1;
  struct ctkn_err err;

  /* Both ends learn the topic's metadata when they open. */
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_ENOTFOUND);
  assert_null(c);
  assert_contains(err.msg, "does not exist (run ctkn init)");
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_ENOTFOUND);
  assert_null(p);
  assert_contains(err.msg, "does not exist (run ctkn init)");

  /* Neither created it: the broker still does not know it. */
  bool created = true;
  int32_t n = -1;
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_ENOTFOUND);
  assert_int_equal(ctkn_log_create_topic(&f->cfg, 2, 1, &created, &n, &err),
                   CTKN_OK);
  assert_true(created);
  assert_int_equal(n, 2);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_create_topic_then_again_is_idempotent, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_create_topic_refuses_an_impossible_replication_factor, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_round_trip_of_many_records_across_partitions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_offset_past_the_end_is_reported,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_topic_is_notfound, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_wait_wakes_for_whichever_consumer_has_a_record, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
