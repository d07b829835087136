/*
 * test_ledger_lines.c - `ctkn create --batch` as a library call
 * (ctkn_ledger_create_lines): one answer per input line, in input order,
 * and the worst exit status, against librdkafka's in-process mock cluster
 * (no broker) and a projection in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "ctkn/ledger.h"
#include "ctkn/query.h"
#include "ctkn/store.h"

#define API_PRODUCE 0 /* Kafka protocol ApiKey of ProduceRequest */
#define PARTITIONS  3

/* One mock cluster for the run (destroying one takes a while); each test
 * gets a fresh topic. */
static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;

struct fx {
  char tmp[64];
  char db[96];
  struct ctkn_log_config cfg;
  ctkn_store *st;
  ctkn_ledger *l;
  char *out; /* what the call wrote */
  size_t outlen;
};

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
  return rd_kafka_wait_destroyed(5000) == 0 ? 0 : -1;
}

static int setup(void **state)
{
  static int seq;
  struct ctkn_store_opts opts = {.map_size = (size_t)64 << 20};
  struct fx *f = calloc(1, sizeof(*f));
  struct ctkn_err err = {0};

  if (f == NULL)
    return -1;
  snprintf(f->tmp, sizeof(f->tmp), "/tmp/ctkn_test_lines_XXXXXX");
  if (mkdtemp(f->tmp) == NULL)
    return -1;
  snprintf(f->db, sizeof(f->db), "%s/db", f->tmp);
  ctkn_log_config_init(&f->cfg);
  snprintf(f->cfg.brokers, sizeof(f->cfg.brokers), "%s",
           rd_kafka_mock_cluster_bootstraps(mock));
  snprintf(f->cfg.topic, sizeof(f->cfg.topic), "lines%d", ++seq);
  f->cfg.timeout_ms = 5000;
  rd_kafka_mock_clear_request_errors(mock, API_PRODUCE);
  if (rd_kafka_mock_topic_create(mock, f->cfg.topic, PARTITIONS, 1) !=
          RD_KAFKA_RESP_ERR_NO_ERROR ||
      ctkn_store_open(&f->st, f->db, &opts, &err) != CTKN_OK ||
      ctkn_store_bind(f->st, f->cfg.topic, CTKN_ENV_SANDBOX, &err) != CTKN_OK ||
      ctkn_ledger_open(&f->l, f->st, &f->cfg, CTKN_ENV_SANDBOX, &err) !=
          CTKN_OK) {
    fprintf(stderr, "setup: %s\n", err.msg);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  rd_kafka_mock_clear_request_errors(mock, API_PRODUCE);
  ctkn_ledger_close(f->l);
  ctkn_store_close(f->st);
  ctkn_store_remove(f->db);
  rmdir(f->tmp);
  ctkn_log_config_free(&f->cfg);
  free(f->out);
  free(f);
  return 0;
}

/* Run the lines of input; returns the call's code, *worst its exit. */
static int run(struct fx *f, const char *input, int *worst)
{
  struct ctkn_err err = {0};
  FILE *in = fmemopen((void *)input, strlen(input), "r");
  FILE *out;
  int rc;

  /* fmemopen refuses a zero-length buffer on some C libraries. */
  if (*input == '\0')
    in = fopen("/dev/null", "r");
  assert_non_null(in);
  free(f->out);
  f->out = NULL;
  out = open_memstream(&f->out, &f->outlen);
  assert_non_null(out);
  rc = ctkn_ledger_create_lines(f->l, in, out, worst, &err);
  fclose(out);
  fclose(in);
  return rc;
}

/* The n-th (0-based) line of f->out, copied into buf. */
static const char *line(const struct fx *f, int n, char *buf, size_t size)
{
  const char *s = f->out;

  for (int i = 0; i < n && s != NULL; i++)
    if ((s = strchr(s, '\n')) != NULL)
      s++;
  assert_non_null(s);
  const char *end = strchr(s, '\n');
  assert_non_null(end);
  snprintf(buf, size, "%.*s", (int)(end - s), s);
  return buf;
}

static size_t count_lines(const char *s)
{
  size_t n = 0;

  for (; s != NULL && *s; s++)
    n += *s == '\n';
  return n;
}

static void assert_has(const char *hay, const char *needle)
{
  if (strstr(hay, needle) == NULL)
    fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void test_each_line_is_answered_in_input_order(void **state)
{
  struct fx *f = *state;
  char buf[2048];
  int worst = -1;

  assert_int_equal(run(f,
                       "{\"name\":\"first\"}\n"
                       "not json\n"
                       "{\"name\":\"\"}\n"
                       "{\"name\":\"second\",\"description\":\"d\"}\n"
                       "{\"name\":\"last, without a newline\"}",
                       &worst),
                   CTKN_OK);
  assert_int_equal(count_lines(f->out), 5);
  assert_has(line(f, 0, buf, sizeof(buf)), "{\"data\":{\"id\":\"ctkn_");
  assert_has(buf, "\"name\":\"first\"");
  assert_has(line(f, 1, buf, sizeof(buf)), "{\"error\":{");
  assert_has(buf, "\"code\":\"bad_request\"");
  assert_has(line(f, 2, buf, sizeof(buf)), "\"code\":\"invalid_field\"");
  assert_has(buf, "\"field\":\"name\"");
  assert_has(line(f, 3, buf, sizeof(buf)), "\"name\":\"second\"");
  assert_has(buf, "\"description\":\"d\"");
  assert_has(line(f, 4, buf, sizeof(buf)), "\"name\":\"last, without");
  assert_int_equal(worst, 1);

  /* The three created tokens are in the projection. */
  struct ctkn_list_params p;
  struct ctkn_err err = {0};
  char *json;
  ctkn_list_params_init(&p);
  assert_int_equal(ctkn_query_list(f->st, &p, NULL, true, NULL, &json, &err),
                   CTKN_OK);
  assert_has(json, "\"estimated_total\":3");
  free(json);
}

static void test_all_created_is_exit_0_and_no_input_no_output(void **state)
{
  struct fx *f = *state;
  int worst = -1;

  assert_int_equal(run(f, "{\"name\":\"a\"}\n{\"name\":\"b\"}\n", &worst),
                   CTKN_OK);
  assert_int_equal(count_lines(f->out), 2);
  assert_int_equal(worst, 0);

  assert_int_equal(run(f, "", &worst), CTKN_OK);
  assert_int_equal(f->outlen, 0);
  assert_int_equal(worst, 0);
}

/* More lines than one chunk: every one answered, in order. */
static void test_many_lines_span_chunks(void **state)
{
  struct fx *f = *state;
  enum { N = 1100 };
  char *input = malloc(N * 32), *p = input, buf[2048], want[64];
  int worst = -1;

  assert_non_null(input);
  for (int i = 0; i < N; i++)
    p += sprintf(p, "{\"name\":\"t%d\"}\n", i);
  assert_int_equal(run(f, input, &worst), CTKN_OK);
  assert_int_equal(worst, 0);
  assert_int_equal(count_lines(f->out), N);
  for (int i = 0; i < N; i += 137) {
    snprintf(want, sizeof(want), "\"name\":\"t%d\"", i);
    assert_has(line(f, i, buf, sizeof(buf)), want);
  }
  free(input);
}

/* A Kafka that does not take the events: those lines answer
 * service_unavailable, and the worst exit is 3. */
static void test_unavailable_kafka_is_exit_3(void **state)
{
  struct fx *f = *state;
  char buf[2048];
  int worst = -1;

  rd_kafka_mock_push_request_errors(
      mock, API_PRODUCE, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  assert_int_equal(run(f, "{\"name\":\"a\"}\nnot json\n", &worst), CTKN_OK);
  assert_int_equal(count_lines(f->out), 2);
  assert_has(line(f, 0, buf, sizeof(buf)), "\"code\":\"service_unavailable\"");
  assert_has(line(f, 1, buf, sizeof(buf)), "\"code\":\"bad_request\"");
  assert_int_equal(worst, 3);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_each_line_is_answered_in_input_order,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_all_created_is_exit_0_and_no_input_no_output, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_lines_span_chunks, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_unavailable_kafka_is_exit_3, setup,
                                      teardown),
  };

  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
