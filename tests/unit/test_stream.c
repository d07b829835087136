/*
 * test_stream.c - `ctkn tail` against the in-memory log: the whole log to
 * its end, type filters, records passed over, a newer schema stopping the
 * tail, consumer-group commits that resume where the last line went out,
 * and an output that cannot be written.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctkn/stream.h"
#include "testkit.h"

#define NPARTS 3

struct fx {
  struct tk t;
  char *text; /* what a tail wrote */
  size_t len;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));

  tk_open(&f->t, NPARTS);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  free(f->text);
  tk_close(&f->t);
  free(f);
  return 0;
}

/* Run a tail to its end into f->text. */
static int tail(struct fx *f, const struct ctkn_tail_opts *o,
                struct ctkn_tail_stats *st, struct ctkn_err *err)
{
  free(f->text);
  f->text = NULL;
  FILE *out = open_memstream(&f->text, &f->len);
  int rc = ctkn_tail(&f->t.cfg, o, out, st, err);
  fclose(out);
  return rc;
}

static size_t lines(const struct fx *f)
{
  size_t n = 0;

  for (size_t i = 0; i < f->len; i++)
    n += f->text[i] == '\n';
  return n;
}

/* A token created and revoked, per i; returns its ID in ids[i]. */
static void churn(struct fx *f, int n, char (*ids)[CTKN_ID_BUF])
{
  for (int i = 0; i < n; i++) {
    struct ctkn_event c, r;
    struct ctkn_record cur;
    int32_t p;
    tk_plan_create(&f->t, "streamed", NULL, &c);
    int64_t off = tk_append(&f->t, -1, &c, CTKN_SCHEMA_VERSION, &p);
    tk_record_of(&c, p, off, &cur);
    tk_plan_change(&f->t, &cur, NULL, true, &r);
    tk_append(&f->t, p, &r, CTKN_SCHEMA_VERSION, NULL);
    if (ids != NULL)
      memcpy(ids[i], c.data.id, CTKN_ID_BUF);
  }
}

static void test_tail_writes_every_event_as_webhook_json(void **s)
{
  struct fx *f = *s;
  struct ctkn_tail_opts o = {.start = CTKN_START_BEGINNING,
                             .exit_at_end = true};
  struct ctkn_tail_stats st;
  struct ctkn_err err = {0};
  char ids[5][CTKN_ID_BUF];

  churn(f, 5, ids);
  assert_int_equal(tail(f, &o, &st, &err), CTKN_OK);
  assert_int_equal(st.written, 10);
  assert_int_equal(lines(f), 10);
  /* Every line is one webhook envelope; per token, created first. */
  char *save = NULL;
  int created_seen[5] = {0};
  for (char *line = strtok_r(f->text, "\n", &save); line != NULL;
       line = strtok_r(NULL, "\n", &save)) {
    json_error_t je;
    json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(j);
    const char *type = json_string_value(json_object_get(j, "event_type"));
    const char *id =
        json_string_value(json_object_get(json_object_get(j, "data"), "id"));
    assert_non_null(json_object_get(j, "notification_id"));
    for (int i = 0; i < 5; i++) {
      if (strcmp(id, ids[i]) != 0)
        continue;
      if (strcmp(type, "client_token.created") == 0)
        created_seen[i] = 1;
      else
        assert_int_equal(created_seen[i], 1);
    }
    json_decref(j);
  }
  f->len = 0; /* strtok_r cut the text */
}

static void test_tail_filters_by_type_and_passes_over_poison(void **s)
{
  struct fx *f = *s;
  struct ctkn_tail_opts o = {.start = CTKN_START_BEGINNING,
                             .exit_at_end = true,
                             .type_mask = 1u << CTKN_EVENT_REVOKED};
  struct ctkn_tail_stats st;
  struct ctkn_err err = {0};

  churn(f, 4, NULL);
  tk_append_raw(&f->t, 1, "bad", "\x01", 1, "client_token.created",
                CTKN_SCHEMA_VERSION);
  assert_int_equal(tail(f, &o, &st, &err), CTKN_OK);
  assert_int_equal(st.written, 4);
  assert_int_equal(st.filtered, 4);
  assert_int_equal(st.poison, 1);
  assert_null(strstr(f->text, "client_token.created"));
}

static void test_a_newer_schema_stops_the_tail(void **s)
{
  struct fx *f = *s;
  struct ctkn_tail_opts o = {.start = CTKN_START_BEGINNING,
                             .exit_at_end = true};
  struct ctkn_tail_stats st;
  struct ctkn_err err = {0};

  tk_append_raw(&f->t, 0, "k", "v", 1, "client_token.created",
                CTKN_SCHEMA_VERSION + 1);
  assert_int_equal(tail(f, &o, &st, &err), CTKN_EFORMAT);
  assert_non_null(strstr(err.msg, "upgrade ctkn"));
  assert_int_equal(st.written, 0);
}

struct run {
  struct fx *f;
  struct ctkn_tail_opts o;
  volatile sig_atomic_t stop;
  FILE *out;
  struct ctkn_tail_stats st;
  struct ctkn_err err;
  int rc;
};

static void *tail_main(void *arg)
{
  struct run *r = arg;

  r->rc = ctkn_tail(&r->f->t.cfg, &r->o, r->out, &r->st, &r->err);
  return NULL;
}

static int64_t committed(struct fx *f, const char *group)
{
  int64_t n = 0;

  for (int32_t p = 0; p < NPARTS; p++) {
    int64_t c = fake_log_committed(f->t.log, group, TK_TOPIC, p);
    n += c > 0 ? c : 0;
  }
  return n;
}

/* Follow as group member until the group has committed `want` records. */
static void follow_until(struct fx *f, const char *group, int64_t want,
                         struct run *r)
{
  pthread_t th;

  memset(r, 0, sizeof(*r));
  r->f = f;
  r->o = (struct ctkn_tail_opts){
      .start = CTKN_START_BEGINNING, .group = group, .stop = &r->stop};
  r->out = open_memstream(&f->text, &f->len);
  assert_int_equal(pthread_create(&th, NULL, tail_main, r), 0);
  for (int i = 0; i < 500 && committed(f, group) < want; i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  r->stop = 1;
  pthread_join(th, NULL);
  fclose(r->out);
  assert_int_equal(r->rc, CTKN_OK);
}

static void test_a_group_resumes_after_its_last_committed_line(void **s)
{
  struct fx *f = *s;
  struct run r;

  churn(f, 3, NULL);
  follow_until(f, "g1", 6, &r);
  assert_int_equal(r.st.written, 6);
  assert_int_equal(committed(f, "g1"), 6);
  free(f->text);
  f->text = NULL;

  /* The next member of the group starts where the last one committed:
   * only the new events. */
  churn(f, 1, NULL);
  follow_until(f, "g1", 8, &r);
  assert_int_equal(r.st.written, 2);
  assert_int_equal(lines(f), 2);
}

static void test_an_unwritable_output_is_an_io_error(void **s)
{
  struct fx *f = *s;
  struct ctkn_tail_opts o = {.start = CTKN_START_BEGINNING,
                             .exit_at_end = true};
  struct ctkn_tail_stats st;
  struct ctkn_err err = {0};

  churn(f, 2, NULL);
  FILE *out = fopen("/dev/full", "w");
  assert_non_null(out);
  setvbuf(out, NULL, _IONBF, 0);
  int rc = ctkn_tail(&f->t.cfg, &o, out, &st, &err);
  fclose(out);
  assert_int_equal(rc, CTKN_EIO);
}

static void test_group_and_exit_at_end_do_not_mix(void **s)
{
  struct fx *f = *s;
  struct ctkn_tail_opts o = {.group = "g", .exit_at_end = true};
  struct ctkn_tail_stats st;
  struct ctkn_err err = {0};

  assert_int_equal(tail(f, &o, &st, &err), CTKN_EUSAGE);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_tail_writes_every_event_as_webhook_json),
      T(test_tail_filters_by_type_and_passes_over_poison),
      T(test_a_newer_schema_stops_the_tail),
      T(test_a_group_resumes_after_its_last_committed_line),
      T(test_an_unwritable_output_is_an_io_error),
      T(test_group_and_exit_at_end_do_not_mix),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
