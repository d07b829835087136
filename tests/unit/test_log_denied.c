/*
 * test_log_denied.c - Kafka's authorization failures through the real
 * Kafka backend, against librdkafka's in-process mock cluster (no broker):
 * the mock answers with TOPIC_AUTHORIZATION_FAILED and
 * GROUP_AUTHORIZATION_FAILED where a broker without the ACL would, and
 * ctkn must report CTKN_EKAFKADENIED (exit 1, HTTP 503
 * kafka_authorization_failed, not transient) naming the ACL, never the
 * retryable CTKN_EKAFKA.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "ctkn/error.h"
#include "ctkn/log.h"
#include "internal.h"

#define TOPIC "denied_topic"

struct fx {
  rd_kafka_t *rk; /* owns the mock cluster */
  rd_kafka_mock_cluster_t *mc;
  struct ctkn_log_config cfg;
};

static int setup(void **state)
{
  static struct fx f;
  char errstr[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();

  memset(&f, 0, sizeof(f));
  rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr));
  f.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  assert_non_null(f.rk);
  f.mc = rd_kafka_mock_cluster_new(f.rk, 1);
  assert_non_null(f.mc);
  assert_int_equal(rd_kafka_mock_topic_create(f.mc, TOPIC, 2, 1),
                   RD_KAFKA_RESP_ERR_NO_ERROR);
  ctkn_log_config_init(&f.cfg);
  snprintf(f.cfg.brokers, sizeof(f.cfg.brokers), "%s",
           rd_kafka_mock_cluster_bootstraps(f.mc));
  snprintf(f.cfg.topic, sizeof(f.cfg.topic), "%s", TOPIC);
  f.cfg.timeout_ms = 5000;
  *state = &f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  ctkn_log_config_free(&f->cfg);
  rd_kafka_mock_cluster_destroy(f->mc);
  rd_kafka_destroy(f->rk);
  return 0;
}

/* What every authorization failure must be: its own code, exit 1, a 503
 * with a distinct API code, not retried, and the ACL named. */
static void assert_denied(int rc, const struct ctkn_err *err, const char *acl)
{
  assert_int_equal(rc, CTKN_EKAFKADENIED);
  assert_int_equal(err->code, CTKN_EKAFKADENIED);
  assert_int_equal(ctkn_error_exit(rc), 1);
  assert_int_equal(ctkn_error_http_status(rc), 503);
  assert_string_equal(ctkn_error_code(rc), "kafka_authorization_failed");
  assert_false(ctkn__transient(rc));
  print_message("%s\n", err->msg);
  if (strstr(err->msg, acl) == NULL)
    fail_msg("\"%s\" does not name the ACL \"%s\"", err->msg, acl);
}

/* Metadata for the topic refused: the consumer does not open. */
static void test_topic_denied_on_open(void **state)
{
  struct fx *f = *state;
  struct ctkn_err err = {0};
  ctkn_consumer *c = NULL;

  rd_kafka_mock_topic_set_error(f->mc, TOPIC,
                                RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  int rc = ctkn_consumer_open(&c, &f->cfg, &err);
  assert_null(c);
  assert_denied(rc, &err, "on topic " TOPIC);
}

/* A ListOffsets refused (the end offsets every catch-up asks for). */
static void test_topic_denied_on_offsets(void **state)
{
  struct fx *f = *state;
  struct ctkn_err err = {0};
  ctkn_consumer *c = NULL;
  int64_t lo[2], hi[2];

  assert_int_equal(ctkn_consumer_open(&c, &f->cfg, &err), CTKN_OK);
  rd_kafka_mock_push_request_errors(
      f->mc, 2 /* ListOffsets */, 4,
      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  int rc = ctkn_consumer_watermarks_all(c, 2, lo, hi, &err);
  ctkn_consumer_close(c);
  assert_denied(rc, &err, "Read on topic " TOPIC);
}

/*
 * A group member whose group is refused (no Read on the group): the poll
 * fails with CTKN_EKAFKADENIED naming the group, so `tail --group` stops
 * instead of retrying for ever. Every FindCoordinator, JoinGroup and
 * ConsumerGroupHeartbeat is refused, as a broker without the ACL does.
 */
static void test_group_denied_on_poll(void **state)
{
  struct fx *f = *state;
  struct ctkn_err err = {0};
  ctkn_consumer *c = NULL;
  rd_kafka_resp_err_t denied[64];
  struct ctkn_log_msg msgs[4];
  size_t n = 0;
  int rc = CTKN_OK;

  for (size_t i = 0; i < CTKN__ARRAY_LEN(denied); i++)
    denied[i] = RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED;
  rd_kafka_mock_push_request_errors_array(f->mc, 10 /* FindCoordinator */,
                                          CTKN__ARRAY_LEN(denied), denied);
  rd_kafka_mock_push_request_errors_array(f->mc, 11 /* JoinGroup */,
                                          CTKN__ARRAY_LEN(denied), denied);
  assert_int_equal(ctkn_consumer_open_group(&c, &f->cfg, "feed",
                                            CTKN_START_BEGINNING, 0, &err),
                   CTKN_OK);
  /* Bounded: librdkafka reports the refusal within a few of its retries. */
  for (int i = 0; i < 50 && rc == CTKN_OK; i++)
    rc = ctkn_consumer_poll(c, 200, msgs, 4, &n, &err);
  ctkn_consumer_close(c);
  assert_denied(rc, &err, "Read on group feed");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_topic_denied_on_open, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_topic_denied_on_offsets, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_group_denied_on_poll, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
