/*
 * test_log.c - the Kafka log against librdkafka's in-process mock cluster:
 * -X overrides, the Java-compatible partitioner, produce and consume round
 * trips, headers, offsets, and bounded failures (fault injection, a broker
 * that is down, a bootstrap address nobody listens on).
 *
 * The mock cluster is fine for these; it is never the broker of the
 * integration tests (it drops old messages past 5 MiB per partition).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>

#include "ctkn/log.h"
#include "fake_log.h"
#include "log/kafka_int.h" /* the rebalance callback, called directly */

#define PARTITIONS       3
#define API_PRODUCE      0 /* Kafka protocol ApiKey of ProduceRequest */
#define API_LIST_OFFSETS 2 /* ... of ListOffsetsRequest */

/* One mock cluster for the whole run: destroying one can take a second
 * (its thread notices the request on its next poll timeout). Each test gets
 * a fresh topic instead. */
static rd_kafka_t *mock_rk; /* owns the mock cluster */
static rd_kafka_mock_cluster_t *mock;

struct fx {
  rd_kafka_mock_cluster_t *mc; /* NULL with the in-memory log */
  struct fake_log *fake;       /* NULL with the mock cluster */
  struct ctkn_log_config cfg;
};

static int64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf)
{
  (void)rk;
  (void)level;
  (void)fac;
  (void)buf;
}

static int group_setup(void **state)
{
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char errstr[256];

  (void)state;
  rd_kafka_conf_set_log_cb(conf, quiet_log);
  mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (mock_rk == NULL)
    return -1;
  mock = rd_kafka_mock_cluster_new(mock_rk, 1);
  return mock == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
  (void)state;
  rd_kafka_mock_cluster_destroy(mock);
  rd_kafka_destroy(mock_rk);
  /* Every rd_kafka_t the tests and the library made is gone. */
  return rd_kafka_wait_destroyed(5000) == 0 ? 0 : -1;
}

static int setup(void **state)
{
  static int seq;
  struct fx *f = calloc(1, sizeof(*f));

  assert_non_null(f);
  f->mc = mock;
  rd_kafka_mock_clear_request_errors(mock, API_PRODUCE);
  ctkn_log_config_init(&f->cfg);
  snprintf(f->cfg.brokers, sizeof(f->cfg.brokers), "%s",
           rd_kafka_mock_cluster_bootstraps(mock));
  snprintf(f->cfg.topic, sizeof(f->cfg.topic), "t%d", ++seq);
  assert_int_equal(
      rd_kafka_mock_topic_create(mock, f->cfg.topic, PARTITIONS, 1),
      RD_KAFKA_RESP_ERR_NO_ERROR);
  f->cfg.timeout_ms = 5000;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  ctkn_log_config_free(&f->cfg);
  fake_log_free(f->fake);
  free(f);
  return 0;
}

/* The same fixture over the in-memory log the core's unit tests use, so
 * the contract tests below hold it to librdkafka's behaviour. */
static int fake_setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));

  assert_non_null(f);
  f->fake = fake_log_new();
  ctkn_log_config_init(&f->cfg);
  snprintf(f->cfg.topic, sizeof(f->cfg.topic), "t");
  fake_log_create(f->fake, f->cfg.topic, PARTITIONS);
  fake_log_use(f->fake, &f->cfg);
  f->cfg.timeout_ms = 5000;
  *state = f;
  return 0;
}

static void assert_contains(const char *s, const char *part)
{
  if (strstr(s, part) == NULL)
    fail_msg("\"%s\" does not contain \"%s\"", s, part);
}

/* Produce through ctkn and return where the record landed. */
static void send_one(ctkn_producer *p, int32_t partition, const char *key,
                     const char *value, int64_t ts, int32_t *part, int64_t *off)
{
  struct ctkn_err err;
  int rc =
      ctkn_producer_send(p, partition, key, strlen(key), value, strlen(value),
                         ts, "client_token.created", 1, part, off, &err);
  if (rc != CTKN_OK)
    fail_msg("send: %s: %s", ctkn_strerror(rc), err.msg);
}

/* Poll until want records arrived (or 5 s passed); returns the count. */
static size_t collect(ctkn_consumer *c, struct ctkn_log_msg *out, size_t want,
                      char keys[][32], char values[][64])
{
  struct ctkn_log_msg batch[16];
  int64_t deadline = now_ms() + 5000;
  size_t got = 0;

  while (got < want && now_ms() < deadline) {
    struct ctkn_err err;
    size_t n = 0;
    int rc = ctkn_consumer_poll(c, 100, batch, 16, &n, &err);
    if (rc != CTKN_OK)
      fail_msg("poll: %s: %s", ctkn_strerror(rc), err.msg);
    for (size_t i = 0; i < n && got < want; i++, got++) {
      out[got] = batch[i];
      /* The borrowed bytes die at the next poll: copy them. */
      snprintf(keys[got], 32, "%.*s", (int)batch[i].key_len,
               (const char *)batch[i].key);
      snprintf(values[got], 64, "%.*s", (int)batch[i].value_len,
               (const char *)batch[i].value);
      out[got].key = keys[got];
      out[got].value = values[got];
    }
  }
  return got;
}

static void assign_from_start(ctkn_consumer *c)
{
  int64_t offsets[PARTITIONS] = {0};
  struct ctkn_err err;

  assert_int_equal(ctkn_consumer_assign(c, offsets, PARTITIONS, &err), CTKN_OK);
}

/* ---- configuration -------------------------------------------------- */

static void test_config_init_has_documented_defaults(void **state)
{
  struct ctkn_log_config cfg;

  (void)state;
  ctkn_log_config_init(&cfg);
  assert_string_equal(cfg.brokers, "127.0.0.1:9092");
  assert_string_equal(cfg.topic, "client_tokens");
  assert_int_equal(cfg.timeout_ms, 10000);
  assert_int_equal(cfg.n_overrides, 0);
  ctkn_log_config_free(&cfg);
  ctkn_log_config_free(NULL);
}

static void test_config_set_refuses_settings_ctkn_owns(void **state)
{
  static const char *const owned[][2] = {
      {"acks=1", "-X acks: ctkn requires acks=all; it cannot be overridden"},
      {"acks=all", "ctkn requires acks=all"},
      {"request.required.acks=0", "ctkn requires acks=all"},
      {"topic.acks=0", "-X topic.acks: ctkn requires acks=all"},
      {"enable.idempotence=false", "ctkn requires enable.idempotence=true"},
      {"partitioner=random", "ctkn requires partitioner=murmur2_random"},
      {"topic.partitioner=consistent", "partitioner=murmur2_random"},
  };
  struct ctkn_log_config cfg;

  (void)state;
  ctkn_log_config_init(&cfg);
  for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
    struct ctkn_err err;
    assert_int_equal(ctkn_log_config_set(&cfg, owned[i][0], &err), CTKN_EUSAGE);
    assert_int_equal(err.code, CTKN_EUSAGE);
    assert_contains(err.msg, owned[i][1]);
  }
  assert_int_equal(cfg.n_overrides, 0);
  ctkn_log_config_free(&cfg);
}

static void test_config_set_refuses_malformed_settings(void **state)
{
  static const char *const bad[] = {"linger.ms", "=5", "", "="};
  struct ctkn_log_config cfg;

  (void)state;
  ctkn_log_config_init(&cfg);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct ctkn_err err;
    assert_int_equal(ctkn_log_config_set(&cfg, bad[i], &err), CTKN_EUSAGE);
    assert_contains(err.msg, "expected key=value");
  }
  assert_int_equal(cfg.n_overrides, 0);
  ctkn_log_config_free(&cfg);
}

static void test_config_set_refuses_unknown_property_and_bad_value(void **state)
{
  struct ctkn_log_config cfg;
  struct ctkn_err err;

  (void)state;
  ctkn_log_config_init(&cfg);
  assert_int_equal(ctkn_log_config_set(&cfg, "no.such.property=1", &err),
                   CTKN_EUSAGE);
  assert_contains(err.msg, "-X no.such.property: ");
  assert_contains(err.msg, "No such configuration property");
  assert_int_equal(ctkn_log_config_set(&cfg, "linger.ms=soon", &err),
                   CTKN_EUSAGE);
  assert_contains(err.msg, "-X linger.ms: ");
  assert_int_equal(cfg.n_overrides, 0);
  ctkn_log_config_free(&cfg);
}

static void test_config_set_keeps_last_value_of_a_repeated_key(void **state)
{
  struct ctkn_log_config cfg;
  struct ctkn_err err;

  (void)state;
  ctkn_log_config_init(&cfg);
  assert_int_equal(ctkn_log_config_set(&cfg, "linger.ms=5", &err), CTKN_OK);
  /* Consumer-only and producer-only properties are both accepted. */
  assert_int_equal(ctkn_log_config_set(&cfg, "fetch.wait.max.ms=100", &err),
                   CTKN_OK);
  assert_int_equal(ctkn_log_config_set(&cfg, "linger.ms=7", &err), CTKN_OK);
  /* A value may be empty and may contain '='. */
  assert_int_equal(ctkn_log_config_set(&cfg, "client.id=a=b", &err), CTKN_OK);
  assert_int_equal(cfg.n_overrides, 3);
  assert_string_equal(cfg.overrides[0][0], "linger.ms");
  assert_string_equal(cfg.overrides[0][1], "7");
  assert_string_equal(cfg.overrides[2][1], "a=b");
  ctkn_log_config_free(&cfg);
  assert_int_equal(cfg.n_overrides, 0);
}

/* The process set-up keeps Cyrus SASL's plugins from loading unless the
 * configuration speaks SASL or the environment chose SASL_PATH. */
static void
test_process_init_spares_sasl_plugins_unless_sasl_is_used(void **state)
{
  struct ctkn_log_config cfg;
  struct ctkn_err err;

  (void)state;
  ctkn_log_config_init(&cfg);
  unsetenv("SASL_PATH");
  assert_int_equal(
      ctkn_log_config_set(&cfg, "security.protocol=SASL_SSL", &err), CTKN_OK);
  ctkn_log_process_init(&cfg);
  assert_null(getenv("SASL_PATH"));

  assert_int_equal(
      ctkn_log_config_set(&cfg, "security.protocol=plaintext", &err), CTKN_OK);
  ctkn_log_process_init(&cfg);
  assert_non_null(getenv("SASL_PATH"));
  assert_string_equal(getenv("SASL_PATH"), "/dev/null");

  setenv("SASL_PATH", "/opt/sasl2", 1); /* the operator's choice stays */
  ctkn_log_process_init(&cfg);
  assert_string_equal(getenv("SASL_PATH"), "/opt/sasl2");
  unsetenv("SASL_PATH");
  ctkn_log_config_free(&cfg);
}

static void test_config_set_refuses_more_than_the_maximum(void **state)
{
  struct ctkn_log_config cfg;
  struct ctkn_err err;

  (void)state;
  ctkn_log_config_init(&cfg);
  /* Fill the table directly: librdkafka has too few free-form keys. */
  for (int i = 0; i < CTKN_LOG_MAX_OVERRIDES; i++) {
    char key[16];
    snprintf(key, sizeof(key), "k%d", i);
    cfg.overrides[i][0] = strdup(i == 0 ? "group.id" : key);
    cfg.overrides[i][1] = strdup("x");
  }
  cfg.n_overrides = CTKN_LOG_MAX_OVERRIDES;
  assert_int_equal(ctkn_log_config_set(&cfg, "linger.ms=1", &err), CTKN_EUSAGE);
  assert_contains(err.msg, "too many -X");
  /* Replacing a key already there still works when the table is full. */
  assert_int_equal(ctkn_log_config_set(&cfg, "group.id=g", &err), CTKN_OK);
  assert_string_equal(cfg.overrides[0][1], "g");
  assert_int_equal(cfg.n_overrides, CTKN_LOG_MAX_OVERRIDES);
  ctkn_log_config_free(&cfg);
}

static void add_raw_override(struct ctkn_log_config *cfg, const char *k,
                             const char *v)
{
  cfg->overrides[cfg->n_overrides][0] = strdup(k);
  cfg->overrides[cfg->n_overrides][1] = strdup(v);
  cfg->n_overrides++;
}

static void test_open_refuses_overrides_that_bypassed_config_set(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p = (ctkn_producer *)1;
  ctkn_consumer *c = (ctkn_consumer *)1;
  struct ctkn_err err;

  add_raw_override(&f->cfg, "no.such.property", "1");
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_EUSAGE);
  assert_null(p);
  assert_contains(err.msg, "No such configuration property");
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_EUSAGE);
  assert_null(c);
  ctkn_log_config_free(&f->cfg);

  add_raw_override(&f->cfg, "acks", "0");
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_EUSAGE);
  assert_contains(err.msg, "cannot be overridden");
}

/* A consumer's fetch.wait.max.ms as the handle would get it. */
static void consumer_fetch_wait(const struct ctkn_log_config *cfg, char *out,
                                size_t size)
{
  struct ctkn__kctx k;
  rd_kafka_conf_t *conf;
  struct ctkn_err err;

  ctkn__kctx_init(&k, NULL);
  assert_int_equal(
      ctkn__kafka_build_conf(cfg, CTKN__KAFKA_CONSUMER, &k, &conf, &err),
      CTKN_OK);
  assert_int_equal(rd_kafka_conf_get(conf, "fetch.wait.max.ms", out, &size),
                   RD_KAFKA_CONF_OK);
  rd_kafka_conf_destroy(conf);
  pthread_mutex_destroy(&k.mu);
}

static void test_fetch_wait_is_the_configs_with_overrides_winning(void **state)
{
  struct fx *f = *state;
  struct ctkn_err err;
  char v[32];

  /* Followers: 100 ms. A one-shot command (the CLI) asks for less. */
  consumer_fetch_wait(&f->cfg, v, sizeof(v));
  assert_string_equal(v, "100");
  f->cfg.fetch_wait_ms = 10;
  consumer_fetch_wait(&f->cfg, v, sizeof(v));
  assert_string_equal(v, "10");
  /* -X still wins. */
  assert_int_equal(ctkn_log_config_set(&f->cfg, "fetch.wait.max.ms=250", &err),
                   CTKN_OK);
  consumer_fetch_wait(&f->cfg, v, sizeof(v));
  assert_string_equal(v, "250");
}

static void test_open_refuses_a_configuration_librdkafka_rejects(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  struct ctkn_err err;

  /* Each setting is valid alone; idempotence needs retries > 0. */
  assert_int_equal(ctkn_log_config_set(&f->cfg, "retries=0", &err), CTKN_OK);
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_EUSAGE);
  assert_null(p);
  assert_contains(err.msg, "kafka configuration rejected");
}

static void test_open_refuses_empty_brokers_topic_or_timeout(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;

  f->cfg.timeout_ms = 0;
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_EUSAGE);
  f->cfg.timeout_ms = 1000;
  f->cfg.topic[0] = '\0';
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_EUSAGE);
  assert_contains(err.msg, "--topic");
  f->cfg.brokers[0] = '\0';
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_EUSAGE);
  assert_contains(err.msg, "--brokers");
  ctkn_producer_close(NULL);
  ctkn_consumer_close(NULL);
}

/* ---- partitioner ------------------------------------------------------ */

/* Kafka's UtilsTest.testMurmur2 vectors (murmur2 as a signed Java int). */
static const struct {
  const char *key;
  int32_t murmur2;
} java_vectors[] = {
    {"21", -973932308},
    {"foobar", -790332482},
    {"a-little-bit-long-string", -985981536},
    {"a-little-bit-longer-string", -1486304829},
    {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
    {"abc", 479470107},
};

static void test_partition_for_matches_the_java_client(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof(java_vectors) / sizeof(java_vectors[0]); i++) {
    const char *k = java_vectors[i].key;
    /* Utils.toPositive(murmur2(key)) % n */
    uint32_t positive = (uint32_t)java_vectors[i].murmur2 & 0x7fffffffu;
    /* Every positive value here is below INT32_MAX, so % INT32_MAX shows
     * the whole hash. */
    assert_int_equal(ctkn_log_partition_for(k, strlen(k), INT32_MAX),
                     (int32_t)positive);
    for (int32_t n = 1; n <= 64; n++)
      assert_int_equal(ctkn_log_partition_for(k, strlen(k), n),
                       (int32_t)(positive % (uint32_t)n));
  }
}

static void test_partition_for_is_stable_and_in_range(void **state)
{
  (void)state;
  /* Pinned values: a change here would move every token's partition. */
  assert_int_equal(ctkn_log_partition_for("21", 2, 12), 1173551340 % 12);
  for (int i = 0; i < 1000; i++) {
    char key[32];
    int len = snprintf(key, sizeof(key), "ctkn_%026d", i);
    int32_t a = ctkn_log_partition_for(key, (size_t)len, 7);
    assert_true(a >= 0 && a < 7);
    assert_int_equal(ctkn_log_partition_for(key, (size_t)len, 7), a);
  }
  assert_int_equal(ctkn_log_partition_for("k", 1, 0), -1);
  assert_int_equal(ctkn_log_partition_for("k", 1, -3), -1);
  assert_int_equal(ctkn_log_partition_for("", 0, 1), 0);
}

/* ---- produce and consume ---------------------------------------------- */

static void test_round_trip_keeps_key_value_timestamp_and_headers(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg got[8];
  char keys[8][32], values[8][64];
  int32_t part[8];
  int64_t off[8];

  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  for (int i = 0; i < 8; i++) {
    char key[32], value[64];
    snprintf(key, sizeof(key), "ctkn_key_%d", i);
    snprintf(value, sizeof(value), "value %d", i);
    send_one(p, -1, key, value, 1700000000000 + i, &part[i], &off[i]);
    /* The partitioner chose what ctkn_log_partition_for says. */
    assert_int_equal(part[i],
                     ctkn_log_partition_for(key, strlen(key), PARTITIONS));
  }
  ctkn_producer_close(p);

  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assign_from_start(c);
  assert_int_equal(collect(c, got, 8, keys, values), 8);
  for (int j = 0; j < 8; j++) {
    int i = atoi(keys[j] + strlen("ctkn_key_"));
    char want[64];
    snprintf(want, sizeof(want), "value %d", i);
    assert_string_equal(values[j], want);
    assert_int_equal(got[j].key_len, strlen(keys[j]));
    assert_int_equal(got[j].partition, part[i]);
    assert_int_equal(got[j].offset, off[i]);
    assert_int_equal(got[j].timestamp_ms, 1700000000000 + i);
    assert_string_equal(got[j].event_type, "client_token.created");
    assert_int_equal(got[j].schema_version, 1);
  }
  ctkn_consumer_close(c);
}

static void test_explicit_partition_is_honoured(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg got[1];
  char keys[1][32], values[1][64];
  int32_t part;
  int64_t off;
  int32_t natural = ctkn_log_partition_for("pinned", 6, PARTITIONS);
  int32_t other = (natural + 1) % PARTITIONS;

  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  send_one(p, other, "pinned", "v", 1, &part, &off);
  assert_int_equal(part, other);
  assert_int_equal(off, 0);
  send_one(p, other, "pinned", "v2", 2, &part, &off);
  assert_int_equal(off, 1);
  ctkn_producer_close(p);

  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assign_from_start(c);
  assert_int_equal(collect(c, got, 1, keys, values), 1);
  assert_int_equal(got[0].partition, other);
  assert_string_equal(keys[0], "pinned");
  ctkn_consumer_close(c);
}

/* Two batches started before either is finished: both in flight, each
 * record reported into its own batch, and on each partition the second
 * batch's records after the first's (finished in either order). */
static void test_batches_in_flight_together_keep_their_order(void **state)
{
  struct fx *f = *state;
  enum { N = 10 };
  struct ctkn_log_record a[N], b[N];
  char keys[2 * N][32];
  ctkn_produce_ticket *ta, *tb;
  ctkn_producer *p;
  struct ctkn_err err;

  for (int i = 0; i < 2 * N; i++) {
    struct ctkn_log_record *r = i < N ? &a[i] : &b[i - N];
    snprintf(keys[i], sizeof(keys[i]), "k%d", i);
    *r = (struct ctkn_log_record){.partition = i % 2,
                                  .key = keys[i],
                                  .klen = strlen(keys[i]),
                                  .value = "v",
                                  .vlen = 1,
                                  .timestamp_ms = 1000 + i,
                                  .schema_version = -1};
  }
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_producer_start_batch(p, a, N, &ta, &err), CTKN_OK);
  assert_int_equal(ctkn_producer_start_batch(p, b, N, &tb, &err), CTKN_OK);
  assert_int_equal(ctkn_producer_finish_batch(p, tb, &err), CTKN_OK);
  assert_int_equal(ctkn_producer_finish_batch(p, ta, &err), CTKN_OK);
  ctkn_producer_close(p);
  for (int i = 0; i < 2 * N; i++) {
    const struct ctkn_log_record *r = i < N ? &a[i] : &b[i - N];
    assert_int_equal(r->rc, CTKN_OK);
    assert_int_equal(r->out_partition, i % 2);
    assert_int_equal(r->out_offset, i / 2);
  }
}

/* A batch finished after its deadline (its finisher was busy: a settling
 * thread judging the batch before) still gets the reports that arrived in
 * time, not a timeout for records Kafka acknowledged. */
static void test_a_late_finish_takes_the_reports_that_came(void **state)
{
  struct fx *f = *state;
  struct ctkn_log_record r = {.partition = 0,
                              .key = "k",
                              .klen = 1,
                              .value = "v",
                              .vlen = 1,
                              .timestamp_ms = 1000,
                              .schema_version = -1};
  struct timespec late = {2, 600 * 1000000L};
  ctkn_produce_ticket *t;
  ctkn_producer *p;
  struct ctkn_err err;

  /* 2.4 s: librdkafka's own message timeout is then 1.4 s, room for the
   * delivery itself; the finish comes 2.6 s after the start. */
  f->cfg.timeout_ms = 2400;
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  /* The producer's ID acquired and the connection up first. */
  assert_int_equal(ctkn_producer_send_batch(p, &r, 1, &err), CTKN_OK);
  assert_int_equal(ctkn_producer_start_batch(p, &r, 1, &t, &err), CTKN_OK);
  nanosleep(&late, NULL);
  assert_int_equal(ctkn_producer_finish_batch(p, t, &err), CTKN_OK);
  assert_int_equal(r.rc, CTKN_OK);
  assert_true(r.out_offset >= 0);
  ctkn_producer_close(p);
}

static void test_send_batch_keeps_order_and_reports_each_record(void **state)
{
  struct fx *f = *state;
  enum { N = 40 };
  struct ctkn_log_record recs[N];
  char keys[N][32], values[N][64];
  struct ctkn_log_msg got[N];
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;

  for (int i = 0; i < N; i++) {
    snprintf(keys[i], sizeof(keys[i]), "k%d", i);
    snprintf(values[i], sizeof(values[i]), "v%d", i);
    recs[i] = (struct ctkn_log_record){.partition = i % 2,
                                       .key = keys[i],
                                       .klen = strlen(keys[i]),
                                       .value = values[i],
                                       .vlen = strlen(values[i]),
                                       .timestamp_ms = 1000 + i,
                                       .event_type = "client_token.created",
                                       .schema_version = 1};
  }
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_producer_send_batch(p, recs, N, &err), CTKN_OK);
  ctkn_producer_close(p);
  /* Every record was acknowledged, on its partition, in order. */
  for (int i = 0; i < N; i++) {
    assert_int_equal(recs[i].rc, CTKN_OK);
    assert_int_equal(recs[i].out_partition, i % 2);
    assert_int_equal(recs[i].out_offset, i / 2);
  }
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assign_from_start(c);
  char gk[N][32], gv[N][64];
  assert_int_equal(collect(c, got, N, gk, gv), N);
  for (int i = 0; i < N; i++) {
    int k = atoi(gk[i] + 1);
    assert_int_equal(got[i].partition, k % 2);
    assert_int_equal(got[i].offset, k / 2);
    assert_string_equal(gv[i], values[k]);
  }
  ctkn_consumer_close(c);
}

static void test_poll_timeout_returns_no_records(void **state)
{
  struct fx *f = *state;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg msgs[4];
  size_t n = 99;

  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assign_from_start(c);
  int64_t t0 = now_ms();
  assert_int_equal(ctkn_consumer_poll(c, 300, msgs, 4, &n, &err), CTKN_OK);
  int64_t took = now_ms() - t0;
  assert_int_equal(n, 0);
  assert_true(took >= 250 && took < 2000);
  /* max = 0 is allowed and returns nothing. */
  assert_int_equal(ctkn_consumer_poll(c, 0, msgs, 0, &n, &err), CTKN_OK);
  assert_int_equal(n, 0);
  ctkn_consumer_close(c);
}

/* A poll returns as soon as records are there; it does not wait out its
 * timeout to fill the batch (that would delay every read-your-writes). */
static void test_poll_returns_without_waiting_for_a_full_batch(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg msgs[512];
  int32_t part;
  int64_t off;
  size_t n = 0;

  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assign_from_start(c);
  for (int round = 0; round < 3; round++) {
    send_one(p, 0, "k", "v", 1, &part, &off);
    int64_t t0 = now_ms();
    assert_int_equal(ctkn_consumer_poll(c, 4000, msgs, 512, &n, &err), CTKN_OK);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].offset, off);
    assert_true(now_ms() - t0 < 2000);
  }
  ctkn_producer_close(p);
  ctkn_consumer_close(c);
}

/* A broker that answers "unknown topic or partition" for a partition the
 * metadata lists (one resumed after a pause, its metadata catching up)
 * is asked again within the timeout, as for "not leader": a create was
 * answered 404 "topic has no partition 0" while the broker came back. */
static void test_watermarks_retry_a_partition_unknown_for_a_moment(void **state)
{
  struct fx *f = *state;
  ctkn_consumer *c;
  struct ctkn_err err = {0};
  int64_t lo = -5, hi = -5;

  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  rd_kafka_mock_push_request_errors(f->mc, API_LIST_OFFSETS, 2,
                                    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                                    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  if (ctkn_consumer_watermarks(c, 1, &lo, &hi, &err) != CTKN_OK)
    fail_msg("watermarks: %s", err.msg);
  assert_int_equal(lo, 0);
  assert_int_equal(hi, 0);
  ctkn_consumer_close(c);
}

static void test_watermarks_follow_the_log(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;
  int64_t lo = -5, hi = -5;
  int32_t part;
  int64_t off;

  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  for (int i = 0; i < 5; i++)
    send_one(p, 1, "k", "v", 1, &part, &off);
  ctkn_producer_close(p);

  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_consumer_watermarks(c, 1, &lo, &hi, &err), CTKN_OK);
  assert_int_equal(lo, 0);
  assert_int_equal(hi, 5);
  assert_int_equal(ctkn_consumer_watermarks(c, 0, &lo, &hi, &err), CTKN_OK);
  assert_int_equal(lo, 0);
  assert_int_equal(hi, 0);
  int32_t n = 0;
  assert_int_equal(ctkn_consumer_partitions(c, &n, &err), CTKN_OK);
  assert_int_equal(n, PARTITIONS);
  /* The ends alone, of every partition in one request. */
  int64_t ends[PARTITIONS];
  for (int i = 0; i < PARTITIONS; i++)
    ends[i] = -5;
  assert_int_equal(ctkn_consumer_ends(c, PARTITIONS, ends, &err), CTKN_OK);
  for (int i = 0; i < PARTITIONS; i++)
    assert_int_equal(ends[i], i == 1 ? 5 : 0);
  ctkn_consumer_close(c);
}

static void test_assign_at_an_offset_skips_earlier_records(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg got[2];
  char keys[2][32], values[2][64];
  int32_t part;
  int64_t off;

  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  for (int i = 0; i < 5; i++) {
    char v[8];
    snprintf(v, sizeof(v), "%d", i);
    send_one(p, 0, "k", v, 1, &part, &off);
  }
  ctkn_producer_close(p);

  int64_t offsets[PARTITIONS] = {3, 0, 0};
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_consumer_assign(c, offsets, PARTITIONS, &err), CTKN_OK);
  assert_int_equal(collect(c, got, 2, keys, values), 2);
  assert_int_equal(got[0].offset, 3);
  assert_string_equal(values[0], "3");
  assert_int_equal(got[1].offset, 4);
  assert_string_equal(values[1], "4");

  /* Reassigning rewinds. */
  offsets[0] = 4;
  assert_int_equal(ctkn_consumer_assign(c, offsets, PARTITIONS, &err), CTKN_OK);
  assert_int_equal(collect(c, got, 1, keys, values), 1);
  assert_int_equal(got[0].offset, 4);

  /* A negative offset leaves its partition out. */
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  send_one(p, 1, "k1", "on 1", 1, &part, &off);
  ctkn_producer_close(p);
  int64_t only0[PARTITIONS] = {4, -1, -1};
  assert_int_equal(ctkn_consumer_assign(c, only0, PARTITIONS, &err), CTKN_OK);
  assert_int_equal(collect(c, got, 2, keys, values), 1);
  assert_int_equal(got[0].partition, 0);
  assert_int_equal(got[0].offset, 4);
  ctkn_consumer_close(c);
}

/* Headers given verbatim are written as they are, null values included,
 * and read back in order; the ctkn ones fill event_type and schema. */
static void test_verbatim_headers_round_trip(void **state)
{
  struct fx *f = *state;
  const struct ctkn_log_header hs[3] = {
      {CTKN_HDR_EVENT_TYPE, "client_token.updated", 20},
      {"x-null", NULL, 0},
      {CTKN_HDR_SCHEMA, "7", 1}};
  struct ctkn_log_record rec = {.partition = 2,
                                .key = "kh",
                                .klen = 2,
                                .value = "vh",
                                .vlen = 2,
                                .timestamp_ms = 1700000000123,
                                .event_type = "ignored",
                                .schema_version = 1,
                                .headers = hs,
                                .nheaders = 3};
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;

  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_producer_send_batch(p, &rec, 1, &err), CTKN_OK);
  ctkn_producer_close(p);

  int64_t at[PARTITIONS] = {-1, -1, rec.out_offset};
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_consumer_assign(c, at, PARTITIONS, &err), CTKN_OK);
  struct ctkn_log_msg batch[4];
  size_t n = 0;
  for (int i = 0; i < 50 && n == 0; i++)
    assert_int_equal(ctkn_consumer_poll(c, 100, batch, 4, &n, &err), CTKN_OK);
  assert_int_equal(n, 1);
  assert_string_equal(batch[0].event_type, "client_token.updated");
  assert_int_equal(batch[0].schema_version, 7);
  assert_int_equal(batch[0].timestamp_ms, 1700000000123);
  const struct ctkn_log_header *back = batch[0].headers;
  assert_int_equal(batch[0].nheaders, 3);
  assert_string_equal(back[0].name, CTKN_HDR_EVENT_TYPE);
  assert_int_equal(back[0].size, 20);
  assert_memory_equal(back[0].value, "client_token.updated", 20);
  assert_string_equal(back[1].name, "x-null");
  assert_null(back[1].value);
  assert_string_equal(back[2].name, CTKN_HDR_SCHEMA);
  ctkn_consumer_close(c);
}

static void test_note_header_keeps_the_last_and_ignores_others(void **state)
{
  struct ctkn_log_msg m = {.schema_version = -1};

  (void)state;
  ctkn_log_msg_note_header(&m, "other", "x", 1);
  assert_string_equal(m.event_type, "");
  assert_int_equal(m.schema_version, -1);
  ctkn_log_msg_note_header(&m, CTKN_HDR_SCHEMA, "12", 2);
  ctkn_log_msg_note_header(&m, CTKN_HDR_SCHEMA, "1x", 2);
  assert_int_equal(m.schema_version, -2); /* the last one, malformed */
  ctkn_log_msg_note_header(&m, CTKN_HDR_EVENT_TYPE, "client_token.created", 20);
  ctkn_log_msg_note_header(&m, CTKN_HDR_EVENT_TYPE, NULL, 0);
  assert_string_equal(m.event_type, "");
}

static void test_note_headers_reads_the_record_headers_in_order(void **state)
{
  const struct ctkn_log_header hs[4] = {
      {CTKN_HDR_SCHEMA, "3", 1},
      {CTKN_HDR_EVENT_TYPE, "client_token.created", 20},
      {"ce_type", "x", 1},
      {CTKN_HDR_SCHEMA, "4", 1}};
  struct ctkn_log_msg m = {.headers = hs, .nheaders = 4};

  (void)state;
  strcpy(m.event_type, "stale");
  ctkn_log_msg_note_headers(&m);
  assert_string_equal(m.event_type, "client_token.created");
  assert_int_equal(m.schema_version, 4); /* the last of its name */
  m.nheaders = 0;
  ctkn_log_msg_note_headers(&m);
  assert_string_equal(m.event_type, "");
  assert_int_equal(m.schema_version, -1);
}

/* Produce with raw librdkafka so headers can be anything. */
static void raw_send(struct fx *f, const char *schema, size_t schema_len,
                     const char *etype)
{
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_headers_t *h = rd_kafka_headers_new(2);
  char errstr[256];

  rd_kafka_conf_set_log_cb(conf, quiet_log);
  assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->cfg.brokers,
                                     errstr, sizeof(errstr)),
                   RD_KAFKA_CONF_OK);
  rd_kafka_t *rk =
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  assert_non_null(rk);
  if (schema != NULL)
    rd_kafka_header_add(h, CTKN_HDR_SCHEMA, -1, schema, (ssize_t)schema_len);
  if (etype != NULL)
    rd_kafka_header_add(h, CTKN_HDR_EVENT_TYPE, -1, etype, -1);
  assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(f->cfg.topic),
                                     RD_KAFKA_V_PARTITION(0),
                                     RD_KAFKA_V_VALUE("x", 1),
                                     RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
  assert_int_equal(rd_kafka_flush(rk, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

static void test_headers_absent_or_malformed_are_flagged(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg got[7];
  char keys[7][32], values[7][64];
  char long_type[100];
  int32_t part;
  int64_t off;

  memset(long_type, 'a', sizeof(long_type) - 1);
  long_type[sizeof(long_type) - 1] = '\0';
  /* ctkn leaves the headers out when given none. */
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  assert_int_equal(
      ctkn_producer_send(p, 0, "k", 1, "v", 1, 5, NULL, -1, &part, &off, &err),
      CTKN_OK);
  ctkn_producer_close(p);
  raw_send(f, "1x", 2, NULL);                   /* not digits */
  raw_send(f, "", 0, NULL);                     /* empty */
  raw_send(f, "12345678901", 11, "x");          /* too many digits */
  raw_send(f, "-1", 2, NULL);                   /* a sign is not a digit */
  raw_send(f, "42", 2, long_type);              /* a future version */
  raw_send(f, NULL, 0, "client_token.revoked"); /* no schema header */

  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assign_from_start(c);
  assert_int_equal(collect(c, got, 7, keys, values), 7);
  assert_string_equal(got[0].event_type, "");
  assert_int_equal(got[0].schema_version, -1);
  assert_int_equal(got[0].timestamp_ms, 5);
  assert_int_equal(got[1].schema_version, -2);
  assert_int_equal(got[2].schema_version, -2);
  assert_int_equal(got[3].schema_version, -2);
  assert_string_equal(got[3].event_type, "x");
  assert_int_equal(got[4].schema_version, -2);
  assert_int_equal(got[5].schema_version, 42);
  /* An oversized event type is cut to fit (and so matches no type). */
  assert_int_equal(strlen(got[5].event_type), sizeof(got[5].event_type) - 1);
  assert_int_equal(got[6].schema_version, -1);
  assert_string_equal(got[6].event_type, "client_token.revoked");
  assert_int_equal(got[1].key_len, 0);
  ctkn_consumer_close(c);
}

static void test_offset_outside_the_log_is_an_error(void **state)
{
  struct fx *f = *state;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg msgs[4];
  int64_t offsets[PARTITIONS] = {0, 100, 0};
  int64_t deadline = now_ms() + 5000;
  int rc = CTKN_OK;
  size_t n;

  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_consumer_assign(c, offsets, PARTITIONS, &err), CTKN_OK);
  while (rc == CTKN_OK && now_ms() < deadline)
    rc = ctkn_consumer_poll(c, 100, msgs, 4, &n, &err);
  assert_int_equal(rc, CTKN_EKAFKA);
  assert_int_equal(n, 0);
  char want[320];
  snprintf(want, sizeof(want), "%s/1: the stored offset 100 is outside",
           f->cfg.topic);
  assert_contains(err.msg, want);
  assert_contains(err.msg, "deleted and re-created");
  ctkn_consumer_close(c);
}

/* Records before an error in the same batch are handed out first, and
 * none is lost. */
static void test_records_before_an_error_are_not_lost(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg msgs[64];
  int64_t offsets[PARTITIONS] = {0, 100, 0};
  int32_t part;
  int64_t off, next = 0;
  int errors = 0;

  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  for (int i = 0; i < 20; i++)
    send_one(p, 0, "k", "v", 1, &part, &off);
  ctkn_producer_close(p);

  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  assert_int_equal(ctkn_consumer_assign(c, offsets, PARTITIONS, &err), CTKN_OK);
  int64_t deadline = now_ms() + 5000;
  while ((next < 20 || errors == 0) && now_ms() < deadline) {
    size_t n;
    int rc = ctkn_consumer_poll(c, 100, msgs, 3, &n, &err);
    if (rc != CTKN_OK) {
      assert_int_equal(rc, CTKN_EKAFKA);
      errors++;
      continue;
    }
    for (size_t i = 0; i < n; i++)
      assert_int_equal(msgs[i].offset, next++);
  }
  assert_int_equal(next, 20);
  assert_true(errors >= 1);
  ctkn_consumer_close(c);
}

/* The mock creates any topic it is asked about (its Metadata ignores
 * allow.auto.create.topics); make it answer as Kafka does for a missing
 * one. */
static void missing_topic(struct fx *f)
{
  snprintf(f->cfg.topic, sizeof(f->cfg.topic), "missing");
  if (f->mc != NULL)
    rd_kafka_mock_topic_set_error(f->mc, "missing",
                                  RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
}

static void test_partitions_of_a_missing_topic_is_notfound(void **state)
{
  struct fx *f = *state;
  ctkn_consumer *c;
  struct ctkn_err err;
  int32_t n = -1;

  /* The consumer learns the topic's metadata when it opens, so a missing
   * topic is reported there, before any assignment. */
  missing_topic(f);
  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_ENOTFOUND);
  assert_null(c);
  assert_string_equal(err.msg, "topic missing does not exist (run ctkn init)");
  assert_int_equal(n, -1);
}

/* ---- bounded failures -------------------------------------------------- */

static void expect_bounded_failure(ctkn_producer *p, int timeout_ms, int want1,
                                   int want2, const char *text)
{
  struct ctkn_err err;
  int32_t part = -7;
  int64_t off = -7;
  int64_t t0 = now_ms();
  int rc =
      ctkn_producer_send(p, -1, "k", 1, "v", 1, 1, "e", 1, &part, &off, &err);
  int64_t took = now_ms() - t0;

  if (rc != want1 && rc != want2)
    fail_msg("send returned %s (%s)", ctkn_strerror(rc), err.msg);
  assert_int_equal(err.code, rc);
  assert_true(took <= timeout_ms + 500);
  assert_int_equal(part, -7); /* untouched on failure */
  if (text != NULL)
    assert_contains(err.msg, text);
  if (rc == CTKN_ETIMEOUT) {
    /* Says which brokers were tried and, when known, why they failed. */
    assert_contains(err.msg, "(brokers ");
  }
  if (strstr(err.msg, "127.0.0.1:1;") != NULL)
    assert_contains(err.msg, "Connection refused)");
}

/* A first record with a short timeout, so that a failure after it is the
 * test's, not the producer's start: the idempotent start can take longer
 * than the timeout on a busy machine (measured with librdkafka 2.14.2 under
 * load; 2.0.2 starts sooner). A timed-out record may still be written, so
 * it is tried again. */
static void send_warm(ctkn_producer *p, int32_t *part, int64_t *off)
{
  struct ctkn_err err;
  int rc = CTKN_ETIMEOUT;

  for (int i = 0; i < 20 && rc == CTKN_ETIMEOUT; i++)
    rc = ctkn_producer_send(p, -1, "k", 1, "v", 1, 1, "client_token.created", 1,
                            part, off, &err);
  if (rc != CTKN_OK)
    fail_msg("send: %s: %s", ctkn_strerror(rc), err.msg);
}

static void
test_send_fails_within_the_timeout_when_the_broker_is_down(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  struct ctkn_err err;
  int32_t part;
  int64_t off;

  f->cfg.timeout_ms = 1000;
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  send_warm(p, &part, &off); /* connected and working */
  /* Stays down for the rest of the run: this test must be the last. */
  rd_kafka_mock_broker_set_down(f->mc, -1);
  expect_bounded_failure(p, 1000, CTKN_ETIMEOUT, CTKN_EKAFKA, "within 1000 ms");
  int64_t t0 = now_ms();
  ctkn_producer_close(p);
  assert_true(now_ms() - t0 <= 1500);
}

static void test_send_to_an_unreachable_bootstrap_fails_not_hangs(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  struct ctkn_err err;

  snprintf(f->cfg.brokers, sizeof(f->cfg.brokers), "127.0.0.1:1");
  f->cfg.timeout_ms = 500;
  /* The producer asks for the topic's metadata when it opens, so an
   * unreachable broker fails there, within the timeout. */
  int64_t t0 = now_ms();
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_ETIMEOUT);
  assert_null(p);
  assert_non_null(strstr(err.msg, "within 500 ms"));
  assert_true(now_ms() - t0 <= 1500);
}

static void test_retriable_produce_errors_end_in_a_timeout(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  struct ctkn_err err;
  int32_t part;
  int64_t off;
  rd_kafka_resp_err_t errs[200];

  for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
    errs[i] = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
  f->cfg.timeout_ms = 500;
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  send_warm(p, &part, &off);
  rd_kafka_mock_push_request_errors_array(f->mc, API_PRODUCE,
                                          sizeof(errs) / sizeof(errs[0]), errs);
  expect_bounded_failure(p, 500, CTKN_ETIMEOUT, CTKN_EKAFKA, NULL);
  rd_kafka_mock_clear_request_errors(f->mc, API_PRODUCE);
  ctkn_producer_close(p);
}

static void test_permanent_produce_error_is_reported(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  struct ctkn_err err;
  int32_t part;
  int64_t off;

  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  send_one(p, -1, "k", "v", 1, &part, &off);
  rd_kafka_mock_push_request_errors(
      f->mc, API_PRODUCE, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  /* An authorization failure: its own code, naming the ACL (more in
   * test_log_denied.c). */
  expect_bounded_failure(p, 5000, CTKN_EKAFKADENIED, CTKN_EKAFKADENIED,
                         "Topic authorization failed: grant the principal "
                         "Write on topic");
  ctkn_producer_close(p);
}

static void test_send_to_a_missing_topic_is_notfound(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  struct ctkn_err err;

  /* The producer asks for the topic's metadata when it opens. */
  missing_topic(f);
  f->cfg.timeout_ms = 2000;
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_ENOTFOUND);
  assert_null(p);
  assert_string_equal(err.msg, "topic missing does not exist (run ctkn init)");
}

static void test_explicit_partition_beyond_the_topic_fails(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  struct ctkn_err err;
  int32_t part;
  int64_t off;

  f->cfg.timeout_ms = 2000;
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  send_one(p, -1, "k", "v", 1, &part, &off); /* metadata is known now */
  assert_int_equal(
      ctkn_producer_send(p, 7, "k", 1, "v", 1, 1, "e", 1, &part, &off, &err),
      CTKN_EKAFKA);
  assert_contains(err.msg, "has no partition 7");
  ctkn_producer_close(p);
}

/* The mock cluster has no CreateTopics (rdkafka_mock.h says so): the call
 * still ends in an error, not a hang. The real path is covered by
 * tests/integration/test_log_kafka.c. */
static void test_create_topic_without_broker_support_fails_cleanly(void **state)
{
  struct fx *f = *state;
  struct ctkn_err err;
  bool created = true;
  int32_t n = -1;

  f->cfg.timeout_ms = 500;
  snprintf(f->cfg.topic, sizeof(f->cfg.topic), "fresh");
  int64_t t0 = now_ms();
  int rc = ctkn_log_create_topic(&f->cfg, 3, 1, &created, &n, &err);
  assert_true(rc == CTKN_EKAFKA || rc == CTKN_ETIMEOUT);
  assert_false(created);
  assert_true(now_ms() - t0 <= 1500);
  assert_contains(err.msg, "cannot create topic fresh");
  assert_int_equal(ctkn_log_create_topic(&f->cfg, 0, 1, &created, &n, &err),
                   CTKN_EUSAGE);
  assert_int_equal(ctkn_log_create_topic(&f->cfg, 1, 0, &created, &n, &err),
                   CTKN_EUSAGE);
}

/* ---- consumer groups under the cooperative protocol ------------------ */

/* librdkafka 2.0.2 has the COOPERATIVE rebalance protocol through the
 * cooperative-sticky assignor; KIP-848's group.protocol=consumer (newer
 * librdkafka) is COOPERATIVE too. Both refuse an eager rd_kafka_assign(). */
static void set_cooperative(struct fx *f)
{
  struct ctkn_err err;

  assert_int_equal(
      ctkn_log_config_set(
          &f->cfg, "partition.assignment.strategy=cooperative-sticky", &err),
      CTKN_OK);
}

/* A group member under COOPERATIVE reads what is on the topic: its
 * assignment takes (an eager assign would be refused, leaving it reading
 * nothing and saying nothing). */
static void test_group_reads_under_the_cooperative_protocol(void **state)
{
  struct fx *f = *state;
  ctkn_producer *p;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg msgs[16];
  int32_t part;
  int64_t off;
  size_t got = 0, n;

  set_cooperative(f);
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  for (int32_t i = 0; i < PARTITIONS; i++)
    send_one(p, i, "k", "v", 1, &part, &off);
  ctkn_producer_close(p);
  assert_int_equal(ctkn_consumer_open_group(&c, &f->cfg, "g-coop",
                                            CTKN_START_BEGINNING, 0, &err),
                   CTKN_OK);
  for (int64_t deadline = now_ms() + 20000;
       got < PARTITIONS && now_ms() < deadline; got += n) {
    int rc = ctkn_consumer_poll(c, 200, msgs, 16, &n, &err);
    if (rc != CTKN_OK)
      fail_msg("poll: %s: %s", ctkn_strerror(rc), err.msg);
  }
  assert_int_equal(got, PARTITIONS);
  ctkn_consumer_close(c);
}

/* Poll the lease until it holds every partition (or 20 s passed). */
static void lease_until_all_held(ctkn_consumer *c)
{
  bool owned[PARTITIONS] = {false}, changed, all = false;
  struct ctkn_err err;

  for (int64_t deadline = now_ms() + 20000; !all && now_ms() < deadline;) {
    int rc = ctkn_lease_poll(c, 200, owned, PARTITIONS, &changed, &err);
    if (rc != CTKN_OK)
      fail_msg("lease poll: %s: %s", ctkn_strerror(rc), err.msg);
    all = true;
    for (int i = 0; i < PARTITIONS; i++)
      all = all && owned[i];
  }
  assert_true(all);
}

static rd_kafka_topic_partition_list_t *parts_of(const char *topic, int from,
                                                 int to)
{
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);

  for (int i = from; i <= to; i++)
    rd_kafka_topic_partition_list_add(l, topic, i);
  return l;
}

/* A lease under COOPERATIVE: revocations and assignments are incremental
 * and change only the partitions they name; an assignment librdkafka
 * refuses records no ownership, and the next poll reports it as an error
 * (notify would otherwise deliver for partitions it does not hold). The
 * rebalances are driven by calling the callback as librdkafka would. */
static void test_lease_assign_failure_is_an_error_and_owns_nothing(void **state)
{
  struct fx *f = *state;
  ctkn_consumer *c;
  struct ctkn_err err;
  bool owned[PARTITIONS], changed;

  set_cooperative(f);
  assert_int_equal(ctkn_lease_open(&c, &f->cfg, "g-lease", &err), CTKN_OK);
  lease_until_all_held(c);
  struct ctkn__kafka_consumer *kc = (struct ctkn__kafka_consumer *)c;
  assert_string_equal(rd_kafka_rebalance_protocol(kc->rk), "COOPERATIVE");

  /* Revoke 0 and 1: 2 stays held. */
  rd_kafka_topic_partition_list_t *l = parts_of(f->cfg.topic, 0, 1);
  ctkn__kafka_on_rebalance(kc->rk, RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS, l,
                           &kc->k);
  rd_kafka_topic_partition_list_destroy(l);
  assert_int_equal(ctkn_lease_poll(c, 0, owned, PARTITIONS, &changed, &err),
                   CTKN_OK);
  assert_false(owned[0] || owned[1]);
  assert_true(owned[2]);

  /* Assign 0: it takes. */
  l = parts_of(f->cfg.topic, 0, 0);
  ctkn__kafka_on_rebalance(kc->rk, RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, l,
                           &kc->k);
  rd_kafka_topic_partition_list_destroy(l);
  assert_int_equal(ctkn_lease_poll(c, 0, owned, PARTITIONS, &changed, &err),
                   CTKN_OK);
  assert_true(owned[0] && !owned[1] && owned[2]);

  /* Assign 0 and 1: refused (0 is already assigned), so 1 is not held and
   * the poll says why. */
  l = parts_of(f->cfg.topic, 0, 1);
  ctkn__kafka_on_rebalance(kc->rk, RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, l,
                           &kc->k);
  rd_kafka_topic_partition_list_destroy(l);
  assert_int_equal(ctkn_lease_poll(c, 0, owned, PARTITIONS, &changed, &err),
                   CTKN_EINTERNAL);
  assert_contains(err.msg, "assigning the partitions of");
  assert_contains(err.msg, "cooperative");
  assert_false(owned[1]);
  /* Reported once. */
  assert_int_equal(ctkn_lease_poll(c, 0, owned, PARTITIONS, &changed, &err),
                   CTKN_OK);
  ctkn_consumer_close(c);
}

/* A group member's poll reports a refused assignment instead of reading
 * nothing, silently. */
static void test_group_assign_failure_is_an_error(void **state)
{
  struct fx *f = *state;
  ctkn_consumer *c;
  struct ctkn_err err;
  struct ctkn_log_msg msgs[4];
  size_t n;

  set_cooperative(f);
  assert_int_equal(ctkn_consumer_open_group(&c, &f->cfg, "g-fail",
                                            CTKN_START_BEGINNING, 0, &err),
                   CTKN_OK);
  struct ctkn__kafka_consumer *kc = (struct ctkn__kafka_consumer *)c;
  /* Wait until the group assigned every partition (reading none: the topic
   * is empty). */
  rd_kafka_topic_partition_list_t *a = NULL;
  for (int64_t deadline = now_ms() + 20000; now_ms() < deadline;) {
    assert_int_equal(ctkn_consumer_poll(c, 200, msgs, 4, &n, &err), CTKN_OK);
    if (a != NULL)
      rd_kafka_topic_partition_list_destroy(a);
    assert_int_equal(rd_kafka_assignment(kc->rk, &a), 0);
    if (a->cnt == PARTITIONS)
      break;
  }
  assert_int_equal(a->cnt, PARTITIONS);
  rd_kafka_topic_partition_list_destroy(a);
  rd_kafka_topic_partition_list_t *l = parts_of(f->cfg.topic, 0, 0);
  ctkn__kafka_on_rebalance(kc->rk, RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, l,
                           &kc->k);
  rd_kafka_topic_partition_list_destroy(l);
  assert_int_equal(ctkn_consumer_poll(c, 100, msgs, 4, &n, &err),
                   CTKN_EINTERNAL);
  assert_contains(err.msg, "assigning the partitions of");
  ctkn_consumer_close(c);
}

/* ---- threads ------------------------------------------------------------- */

#define THREADS    4
#define PER_THREAD 50

struct sender {
  ctkn_producer *p;
  int id;
  int failures;
  int32_t part[PER_THREAD];
  int64_t off[PER_THREAD];
};

static void *send_many(void *arg)
{
  struct sender *s = arg;

  for (int i = 0; i < PER_THREAD; i++) {
    char key[32];
    struct ctkn_err err;
    snprintf(key, sizeof(key), "t%d-%d", s->id, i);
    if (ctkn_producer_send(s->p, -1, key, strlen(key), "v", 1, 1, "e", 1,
                           &s->part[i], &s->off[i], &err) != CTKN_OK)
      s->failures++;
  }
  return NULL;
}

static void test_concurrent_senders_each_get_their_own_report(void **state)
{
  struct fx *f = *state;
  struct sender s[THREADS];
  pthread_t th[THREADS];
  ctkn_producer *p;
  struct ctkn_err err;
  static unsigned char seen[PARTITIONS][THREADS * PER_THREAD];

  memset(seen, 0, sizeof(seen));
  assert_int_equal(ctkn_producer_open(&p, &f->cfg, &err), CTKN_OK);
  for (int t = 0; t < THREADS; t++) {
    s[t].p = p;
    s[t].id = t;
    s[t].failures = 0;
    assert_int_equal(pthread_create(&th[t], NULL, send_many, &s[t]), 0);
  }
  for (int t = 0; t < THREADS; t++)
    pthread_join(th[t], NULL);
  ctkn_producer_close(p);
  for (int t = 0; t < THREADS; t++) {
    assert_int_equal(s[t].failures, 0);
    for (int i = 0; i < PER_THREAD; i++) {
      char key[32];
      snprintf(key, sizeof(key), "t%d-%d", t, i);
      assert_int_equal(s[t].part[i],
                       ctkn_log_partition_for(key, strlen(key), PARTITIONS));
      assert_true(s[t].off[i] >= 0 && s[t].off[i] < THREADS * PER_THREAD);
      /* Each (partition, offset) was reported to exactly one sender. */
      assert_int_equal(seen[s[t].part[i]][s[t].off[i]]++, 0);
    }
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_init_has_documented_defaults),
      cmocka_unit_test_setup_teardown(
          test_group_reads_under_the_cooperative_protocol, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_lease_assign_failure_is_an_error_and_owns_nothing, setup,
          teardown),
      cmocka_unit_test_setup_teardown(test_group_assign_failure_is_an_error,
                                      setup, teardown),
      cmocka_unit_test(test_config_set_refuses_settings_ctkn_owns),
      cmocka_unit_test(test_config_set_refuses_malformed_settings),
      cmocka_unit_test(test_config_set_refuses_unknown_property_and_bad_value),
      cmocka_unit_test(test_config_set_keeps_last_value_of_a_repeated_key),
      cmocka_unit_test(
          test_process_init_spares_sasl_plugins_unless_sasl_is_used),
      cmocka_unit_test(test_config_set_refuses_more_than_the_maximum),
      cmocka_unit_test_setup_teardown(
          test_open_refuses_overrides_that_bypassed_config_set, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_fetch_wait_is_the_configs_with_overrides_winning, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_open_refuses_a_configuration_librdkafka_rejects, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_open_refuses_empty_brokers_topic_or_timeout, setup, teardown),
      cmocka_unit_test(test_partition_for_matches_the_java_client),
      cmocka_unit_test(test_partition_for_is_stable_and_in_range),
      cmocka_unit_test_setup_teardown(
          test_round_trip_keeps_key_value_timestamp_and_headers, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_send_batch_keeps_order_and_reports_each_record, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_batches_in_flight_together_keep_their_order, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_a_late_finish_takes_the_reports_that_came, setup, teardown),
      cmocka_unit_test_setup_teardown(test_explicit_partition_is_honoured,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll_timeout_returns_no_records,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_poll_returns_without_waiting_for_a_full_batch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watermarks_follow_the_log, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_watermarks_retry_a_partition_unknown_for_a_moment, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_assign_at_an_offset_skips_earlier_records, setup, teardown),
      cmocka_unit_test_setup_teardown(test_verbatim_headers_round_trip, setup,
                                      teardown),
      cmocka_unit_test(test_note_header_keeps_the_last_and_ignores_others),
      cmocka_unit_test(test_note_headers_reads_the_record_headers_in_order),
      cmocka_unit_test_setup_teardown(
          test_headers_absent_or_malformed_are_flagged, setup, teardown),
      cmocka_unit_test_setup_teardown(test_offset_outside_the_log_is_an_error,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_records_before_an_error_are_not_lost,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_partitions_of_a_missing_topic_is_notfound, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_send_to_an_unreachable_bootstrap_fails_not_hangs, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_retriable_produce_errors_end_in_a_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_permanent_produce_error_is_reported,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_send_to_a_missing_topic_is_notfound,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_explicit_partition_beyond_the_topic_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_create_topic_without_broker_support_fails_cleanly, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_concurrent_senders_each_get_their_own_report, setup, teardown),
      /* Last: it leaves the mock broker down (bringing a mock broker back
       * up can stall for a second in librdkafka 2.0.2). */
      cmocka_unit_test_setup_teardown(
          test_send_fails_within_the_timeout_when_the_broker_is_down, setup,
          teardown),
  };
  /* CTKN_TEST_FILTER=pattern runs only the matching tests. */
  if (getenv("CTKN_TEST_FILTER") != NULL)
    cmocka_set_test_filter(getenv("CTKN_TEST_FILTER"));
    /* The contract: what the core relies on, held against both logs. */
#define C(fn) cmocka_unit_test_setup_teardown(fn, fake_setup, teardown)
  const struct CMUnitTest contract[] = {
      C(test_round_trip_keeps_key_value_timestamp_and_headers),
      C(test_send_batch_keeps_order_and_reports_each_record),
      C(test_batches_in_flight_together_keep_their_order),
      C(test_explicit_partition_is_honoured),
      C(test_poll_timeout_returns_no_records),
      C(test_poll_returns_without_waiting_for_a_full_batch),
      C(test_watermarks_follow_the_log),
      C(test_assign_at_an_offset_skips_earlier_records),
      C(test_verbatim_headers_round_trip),
      C(test_offset_outside_the_log_is_an_error),
      C(test_records_before_an_error_are_not_lost),
      C(test_partitions_of_a_missing_topic_is_notfound),
      C(test_send_to_a_missing_topic_is_notfound),
      C(test_explicit_partition_beyond_the_topic_fails),
      C(test_concurrent_senders_each_get_their_own_report),
  };
#undef C
  int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
  return failed +
         cmocka_run_group_tests_name("in-memory log", contract, NULL, NULL);
}
