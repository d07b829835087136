/*
 * test_projector.c - the projector's catch-up and follow loops against the
 * in-memory log: exactly once across restarts, a paused partition, a
 * poison record, a partition added while following, a topic re-created,
 * the two-thread catch-up, and a replay as of an instant.
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

#include "ctkn/projector.h"
#include "ctkn/settings.h"
#include "testkit.h"

#define NPARTS 4

struct fx {
  struct tk t;
  ctkn_projector *p;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  struct ctkn_err err = {0};

  tk_open(&f->t, NPARTS);
  if (ctkn_projector_open(&f->p, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err) !=
      CTKN_OK)
    fail_msg("projector: %s", err.msg);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  ctkn_projector_close(f->p);
  tk_close(&f->t);
  free(f);
  return 0;
}

static int catch_up(struct fx *f, struct ctkn_err *err)
{
  return ctkn_projector_catch_up(f->p, NULL, 0, err);
}

static void must_catch_up(struct fx *f)
{
  struct ctkn_err err = {0};
  int rc = catch_up(f, &err);

  if (rc != CTKN_OK)
    fail_msg("catch up: %s: %s", ctkn_strerror(rc), err.msg);
}

/* Create n tokens through the log; their events in evs (may be NULL). */
static void create_n(struct fx *f, int n, struct ctkn_event *evs)
{
  struct ctkn_event ev;

  for (int i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof(name), "token %d", i);
    tk_plan_create(&f->t, name, NULL, &ev);
    tk_append(&f->t, -1, &ev, CTKN_SCHEMA_VERSION, NULL);
    if (evs != NULL)
      evs[i] = ev;
  }
}

/* n creates dealt round-robin over the partitions. */
static void create_spread(struct fx *f, int n)
{
  struct ctkn_event ev;

  for (int i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof(name), "spread %d", i);
    tk_plan_create(&f->t, name, NULL, &ev);
    tk_append(&f->t, i % NPARTS, &ev, CTKN_SCHEMA_VERSION, NULL);
  }
}

static int64_t total_end(struct fx *f)
{
  int64_t n = 0;

  for (int32_t p = 0; p < NPARTS; p++)
    n += fake_log_end(f->t.log, TK_TOPIC, p);
  return n;
}

/* ---- catch-up ---------------------------------------------------------- */

static void test_catch_up_applies_the_log_and_stores_its_offsets(void **s)
{
  struct fx *f = *s;
  struct ctkn_event evs[20];
  struct ctkn_projector_stats st;
  struct ctkn_record r;

  create_n(f, 20, evs);
  must_catch_up(f);
  ctkn_projector_stats(f->p, &st);
  assert_int_equal(st.applied, 20);
  assert_int_equal(st.rejected + st.quarantined, 0);
  for (int i = 0; i < 20; i++)
    assert_true(tk_get(&f->t, evs[i].data.id, &r));
  for (int32_t p = 0; p < NPARTS; p++)
    assert_int_equal(tk_offset(&f->t, p), fake_log_end(f->t.log, TK_TOPIC, p));
  assert_int_equal(ctkn_projector_partitions(f->p), NPARTS);
}

static void test_a_restart_applies_nothing_twice(void **s)
{
  struct fx *f = *s;
  struct ctkn_projector_stats st;
  struct ctkn_err err = {0};
  char before[65], after[65];

  create_n(f, 10, NULL);
  must_catch_up(f);
  tk_digest(f->t.st, before);
  /* A second projector on the same store (another process, or this one
   * restarted) starts from the stored offsets. */
  ctkn_projector *q;
  assert_int_equal(
      ctkn_projector_open(&q, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err),
      CTKN_OK);
  create_n(f, 5, NULL);
  assert_int_equal(ctkn_projector_catch_up(q, NULL, 0, &err), CTKN_OK);
  ctkn_projector_stats(q, &st);
  assert_int_equal(st.applied, 5);
  /* The first one then moves ahead to where the store is, skipping what
   * the other applied. */
  must_catch_up(f);
  ctkn_projector_stats(f->p, &st);
  assert_int_equal(st.applied, 10);
  tk_digest(f->t.st, after);
  assert_string_not_equal(before, after);
  ctkn_projector_close(q);
}

static void test_rejected_events_are_recorded_not_applied(void **s)
{
  struct fx *f = *s;
  struct ctkn_event c, u1, u2;
  struct ctkn_record cur;
  struct ctkn_projector_stats st;
  int32_t p;

  tk_plan_create(&f->t, "t", NULL, &c);
  int64_t off = tk_append(&f->t, -1, &c, CTKN_SCHEMA_VERSION, &p);
  tk_record_of(&c, p, off, &cur);
  /* Two writers both make version 2: the first in the log wins. */
  tk_plan_change(&f->t, &cur, "first", false, &u1);
  tk_plan_change(&f->t, &cur, "second", false, &u2);
  tk_append(&f->t, p, &u1, CTKN_SCHEMA_VERSION, NULL);
  int64_t lost = tk_append(&f->t, p, &u2, CTKN_SCHEMA_VERSION, NULL);
  must_catch_up(f);
  ctkn_projector_stats(f->p, &st);
  assert_int_equal(st.applied, 2);
  assert_int_equal(st.rejected, 1);
  assert_true(tk_get(&f->t, c.data.id, &cur));
  assert_string_equal(cur.token.name, "first");
  ctkn_store_txn *txn;
  char reason[256];
  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(
      ctkn_store_get_rejected(txn, p, lost, reason, sizeof(reason), NULL),
      CTKN_OK);
  ctkn_store_abort(txn);
  assert_non_null(strstr(reason, "version"));
}

/* ---- faults in the log -------------------------------------------------- */

static int count_quarantine(void *arg, int32_t partition, int64_t offset,
                            const char *reason, const void *key, size_t klen,
                            const void *value, size_t vlen)
{
  (void)partition, (void)offset, (void)key, (void)klen, (void)value, (void)vlen;
  char *last = arg;
  snprintf(last, 256, "%s", reason);
  return 0;
}

static void test_a_poison_record_is_quarantined_and_the_rest_applied(void **s)
{
  struct fx *f = *s;
  struct ctkn_event ev;
  struct ctkn_projector_stats st;
  struct ctkn_record r;
  char reason[256] = "";

  tk_append_raw(&f->t, 0, "junk", "\xff\x01\x02", 3, "client_token.created",
                CTKN_SCHEMA_VERSION);
  tk_plan_create(&f->t, "after the poison", NULL, &ev);
  tk_append(&f->t, 0, &ev, CTKN_SCHEMA_VERSION, NULL);
  must_catch_up(f);
  ctkn_projector_stats(f->p, &st);
  assert_int_equal(st.quarantined, 1);
  assert_int_equal(st.applied, 1);
  assert_true(tk_get(&f->t, ev.data.id, &r));
  assert_int_equal(tk_offset(&f->t, 0), 2);
  ctkn_store_txn *txn;
  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_quarantine(txn, count_quarantine, reason, NULL),
                   CTKN_OK);
  ctkn_store_abort(txn);
  assert_non_null(strstr(reason, "does not decode"));
}

static void test_a_newer_schema_pauses_only_its_partition(void **s)
{
  struct fx *f = *s;
  struct ctkn_event a, b;
  struct ctkn_projector_stats st;
  struct ctkn_record r;

  tk_append_raw(&f->t, 1, "k", "v", 1, "client_token.created",
                CTKN_SCHEMA_VERSION + 1);
  tk_plan_create(&f->t, "behind the pause", NULL, &a);
  tk_append(&f->t, 1, &a, CTKN_SCHEMA_VERSION, NULL);
  tk_plan_create(&f->t, "elsewhere", NULL, &b);
  tk_append(&f->t, 2, &b, CTKN_SCHEMA_VERSION, NULL);
  must_catch_up(f);
  ctkn_projector_stats(f->p, &st);
  assert_int_equal(st.paused, 1);
  /* Not quarantined: skipping it would make old and new replicas
   * diverge. The partition's offset stays below the record. */
  assert_int_equal(st.quarantined, 0);
  assert_int_equal(tk_offset(&f->t, 1), 0);
  assert_false(tk_get(&f->t, a.data.id, &r));
  assert_true(tk_get(&f->t, b.data.id, &r));
  assert_int_equal(tk_offset(&f->t, 2), 1);
}

static void test_a_recreated_topic_is_refused(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};

  create_n(f, 8, NULL);
  must_catch_up(f);
  /* Deleted and created again under the same name, with fewer records. */
  fake_log_create(f->t.log, TK_TOPIC, NPARTS);
  create_n(f, 1, NULL);
  ctkn_projector *q;
  assert_int_equal(
      ctkn_projector_open(&q, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err),
      CTKN_OK);
  int rc = ctkn_projector_catch_up(q, NULL, 0, &err);
  assert_int_equal(rc, CTKN_ECONFLICT);
  assert_non_null(strstr(err.msg, "re-created"));
  ctkn_projector_close(q);
  /* The running projector notices too. */
  assert_int_equal(catch_up(f, &err), CTKN_ECONFLICT);
}

/* A topic re-created and grown past where the projection stopped: its
 * offsets look like the old topic's. Offsets alone (a log without topic
 * IDs) cannot tell; the topic ID, where the log has it, refuses it. */
static void recreated_and_grown(struct fx *f, bool ids, int want)
{
  struct ctkn_err err = {0};
  ctkn_projector *q;

  fake_log_topic_ids(f->t.log, ids);
  create_spread(f, 4);
  must_catch_up(f);
  fake_log_create(f->t.log, TK_TOPIC, NPARTS);
  /* Every partition grows past its old end. Left to the key partitioner,
   * one partition could stay shorter and be refused by its offsets. */
  create_spread(f, 40);
  assert_int_equal(
      ctkn_projector_open(&q, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err),
      CTKN_OK);
  int rc = ctkn_projector_catch_up(q, NULL, 0, &err);
  ctkn_projector_close(q);
  assert_int_equal(rc, want);
  if (want == CTKN_ECONFLICT) {
    assert_non_null(strstr(err.msg, "re-created"));
    assert_non_null(strstr(err.msg, "topic_id"));
  }
}

static void test_a_recreated_topic_is_refused_by_its_id(void **s)
{
  recreated_and_grown(*s, true, CTKN_ECONFLICT);
}

static void test_without_ids_a_grown_recreated_topic_passes(void **s)
{
  /* What the offsets check cannot see (Debian 12's librdkafka 2.0.2). */
  recreated_and_grown(*s, false, CTKN_OK);
}

static void test_an_unreachable_log_fails_within_the_timeout(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};

  create_n(f, 3, NULL);
  fake_log_fail_queries(f->t.log, 1, CTKN_ETIMEOUT);
  assert_int_equal(catch_up(f, &err), CTKN_ETIMEOUT);
  /* It comes back; nothing was lost or applied twice. */
  must_catch_up(f);
  struct ctkn_projector_stats st;
  ctkn_projector_stats(f->p, &st);
  assert_int_equal(st.applied, 3);
}

static void test_catch_up_to_targets_stops_there(void **s)
{
  struct fx *f = *s;
  struct ctkn_err err = {0};
  int64_t targets[NPARTS] = {0};

  create_n(f, 12, NULL);
  /* Reach partition 0's end only. */
  targets[0] = fake_log_end(f->t.log, TK_TOPIC, 0);
  assert_int_equal(ctkn_projector_catch_up(f->p, targets, NPARTS, &err),
                   CTKN_OK);
  assert_true(tk_offset(&f->t, 0) >= targets[0]);
}

/* ---- the two-thread catch-up -------------------------------------------- */

static void test_a_long_catch_up_equals_applying_record_by_record(void **s)
{
  struct fx *f = *s;
  enum { N = 40000 }; /* past the pipelining threshold */
  struct ctkn_event ev;
  struct ctkn_record cur;
  struct ctkn_projector_stats st;
  char piped[65], plain[65];

  /* Creates, some updates and revokes, a poison record and a rejected
   * event among them. */
  for (int i = 0; i < N; i++) {
    int32_t p;
    tk_plan_create(&f->t, "bulk", i % 7 == 0 ? NULL : NULL, &ev);
    int64_t off = tk_append(&f->t, -1, &ev, CTKN_SCHEMA_VERSION, &p);
    if (i % 100 == 0) {
      tk_record_of(&ev, p, off, &cur);
      struct ctkn_event rv;
      tk_plan_change(&f->t, &cur, NULL, true, &rv);
      tk_append(&f->t, p, &rv, CTKN_SCHEMA_VERSION, NULL);
      tk_append(&f->t, p, &rv, CTKN_SCHEMA_VERSION, NULL); /* stale */
    }
    if (i % 5000 == 0)
      tk_append_raw(&f->t, i % NPARTS, "bad", "?", 1, "client_token.created",
                    CTKN_SCHEMA_VERSION);
  }
  must_catch_up(f);
  ctkn_projector_stats(f->p, &st);
  assert_int_equal(st.applied + st.rejected + st.quarantined, total_end(f));
  assert_int_equal(st.quarantined, N / 5000);
  assert_int_equal(st.rejected, N / 100);
  tk_digest(f->t.st, piped);

  /* The same records applied one at a time, in each partition's order,
   * into a second store. */
  struct tk other;
  tk_open(&other, NPARTS);
  for (int32_t p = 0; p < NPARTS; p++) {
    int64_t end = fake_log_end(f->t.log, TK_TOPIC, p);
    for (int64_t off = 0; off < end; off++) {
      const struct ctkn_log_msg *m =
          fake_log_record(f->t.log, TK_TOPIC, p, off);
      struct ctkn_err err = {0};
      assert_int_equal(ctkn_projector_apply(other.st, CTKN_ENV_SANDBOX, m, 1,
                                            NULL, 0, NULL, &err),
                       CTKN_OK);
    }
  }
  tk_digest(other.st, plain);
  tk_close(&other);
  assert_string_equal(piped, plain);
}

/* ---- follow ------------------------------------------------------------- */

struct follower {
  ctkn_projector *p;
  volatile sig_atomic_t stop;
  int rc;
  struct ctkn_err err;
};

static void *follow_main(void *arg)
{
  struct follower *fl = arg;

  fl->rc = ctkn_projector_follow(fl->p, &fl->stop, &fl->err);
  return NULL;
}

/* Wait until cond(f) holds, up to 5 s. */
static bool eventually(struct fx *f, bool (*cond)(struct fx *))
{
  for (int i = 0; i < 500; i++) {
    if (cond(f))
      return true;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return false;
}

static const char *want_id;
static bool has_want(struct fx *f)
{
  struct ctkn_record r;
  return tk_get(&f->t, want_id, &r);
}

static void test_follow_applies_new_records_and_added_partitions(void **s)
{
  struct fx *f = *s;
  struct follower fl = {.p = f->p};
  struct ctkn_projector_hooks hooks = {.status_ms = 20};
  struct ctkn_event ev;
  pthread_t th;

  ctkn_projector_set_hooks(f->p, &hooks);
  assert_int_equal(pthread_create(&th, NULL, follow_main, &fl), 0);
  tk_plan_create(&f->t, "live", NULL, &ev);
  tk_append(&f->t, -1, &ev, CTKN_SCHEMA_VERSION, NULL);
  want_id = ev.data.id;
  assert_true(eventually(f, has_want));

  /* Partitions added while following are picked up. */
  fake_log_add_partitions(f->t.log, TK_TOPIC, NPARTS + 2);
  tk_plan_create(&f->t, "on a new partition", NULL, &ev);
  tk_append(&f->t, NPARTS + 1, &ev, CTKN_SCHEMA_VERSION, NULL);
  want_id = ev.data.id;
  assert_true(eventually(f, has_want));
  assert_int_equal(tk_offset(&f->t, NPARTS + 1), 1);

  fl.stop = 1;
  pthread_join(th, NULL);
  assert_int_equal(fl.rc, CTKN_OK);
}

static void test_follow_outlives_a_log_outage(void **s)
{
  struct fx *f = *s;
  struct follower fl = {.p = f->p};
  struct ctkn_event ev;
  pthread_t th;

  assert_int_equal(pthread_create(&th, NULL, follow_main, &fl), 0);
  /* Polls fail for a while; the follower backs off and goes on from the
   * stored offsets. */
  fake_log_fail_polls(f->t.log, 3, CTKN_EKAFKA);
  tk_plan_create(&f->t, "after the outage", NULL, &ev);
  tk_append(&f->t, -1, &ev, CTKN_SCHEMA_VERSION, NULL);
  want_id = ev.data.id;
  assert_true(eventually(f, has_want));
  fl.stop = 1;
  pthread_join(th, NULL);
  assert_int_equal(fl.rc, CTKN_OK);
}

static int64_t settings_off;
static bool settings_judged(struct fx *f)
{
  ctkn_store_txn *txn;
  bool applied = false;
  char reason[256];
  int rc;

  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  rc = ctkn_settings_fate(txn, 0, settings_off, &applied, reason,
                          sizeof(reason), NULL);
  ctkn_store_abort(txn);
  return rc == CTKN_OK;
}

static struct fake_log_stats stats_of(struct fx *f)
{
  struct fake_log_stats st;

  fake_log_stats(f->t.log, &st);
  return st;
}

static bool has_waited(struct fx *f)
{
  return stats_of(f).waits > 0;
}

/* While following, the loop sleeps on the event and settings topics at
 * once: nothing is polled while both are idle, and a settings record is
 * read at once, however long the events would have been waited for. */
static void test_follow_wakes_for_the_settings_while_the_events_idle(void **s)
{
  struct fx *f = *s;
  struct follower fl = {.p = f->p};
  struct ctkn_projector_hooks hooks = {.status_ms = 600000, .idle_ms = 60000};
  struct ctkn_log_header h = {CTKN_HDR_EVENT_TYPE, "destination.created", 19};
  struct ctkn_event ev;
  pthread_t th;

  fake_log_create(f->t.log, TK_TOPIC "_settings", 1);
  ctkn_projector_set_hooks(f->p, &hooks);
  assert_int_equal(pthread_create(&th, NULL, follow_main, &fl), 0);
  assert_true(eventually(f, has_waited));
  uint64_t polls = stats_of(f).polls;
  struct timespec idle = {0, 300 * 1000 * 1000};
  nanosleep(&idle, NULL);
  assert_int_equal(stats_of(f).polls, polls);

  settings_off = fake_log_append(f->t.log, TK_TOPIC "_settings", 0, "k", 1,
                                 "not a settings event", 20, 1, &h, 1);
  assert_true(eventually(f, settings_judged));

  fl.stop = 1;
  /* An event wakes the wait, which would otherwise last the minute. */
  tk_plan_create(&f->t, "wake", NULL, &ev);
  tk_append(&f->t, -1, &ev, CTKN_SCHEMA_VERSION, NULL);
  pthread_join(th, NULL);
  assert_int_equal(fl.rc, CTKN_OK);
}

/* What the status hook said of the side topics last. */
static pthread_mutex_t side_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned side_unfollowed;
static int side_reports;

static void side_status(void *arg, const struct ctkn_partition_status *s,
                        int32_t n, const struct ctkn_projector_stats *stats)
{
  (void)arg, (void)s, (void)n;
  pthread_mutex_lock(&side_mu);
  side_unfollowed = stats->unfollowed;
  side_reports++;
  pthread_mutex_unlock(&side_mu);
}

static unsigned unfollowed_now(void)
{
  pthread_mutex_lock(&side_mu);
  unsigned u = side_reports > 0 ? side_unfollowed : ~0u;
  pthread_mutex_unlock(&side_mu);
  return u;
}

static bool settings_down(struct fx *f)
{
  (void)f;
  return unfollowed_now() == CTKN_PROJECTOR_SETTINGS;
}

static bool sides_up(struct fx *f)
{
  (void)f;
  return unfollowed_now() == 0;
}

/* A failing settings follower is retried within a second, not the 30 s a
 * missing topic waits, and the status says at once (without waiting for
 * the next report) that the settings are not followed meanwhile: an API
 * key revoked there would still pass, so readers fail closed. */
static void test_follow_retries_the_settings_and_says_they_lag(void **s)
{
  struct fx *f = *s;
  struct follower fl = {.p = f->p};
  struct ctkn_projector_hooks hooks = {
      .status = side_status, .status_ms = 600000, .idle_ms = 50};
  struct ctkn_log_header h = {CTKN_HDR_EVENT_TYPE, "destination.created", 19};
  pthread_t th;

  side_reports = 0;
  fake_log_create(f->t.log, TK_TOPIC "_settings", 1);
  ctkn_projector_set_hooks(f->p, &hooks);
  assert_int_equal(pthread_create(&th, NULL, follow_main, &fl), 0);
  assert_true(eventually(f, sides_up));

  fake_log_fail_polls_of(f->t.log, TK_TOPIC "_settings", 1000000, CTKN_EKAFKA);
  assert_true(eventually(f, settings_down));
  fake_log_fail_polls_of(f->t.log, TK_TOPIC "_settings", 0, CTKN_OK);
  settings_off = fake_log_append(f->t.log, TK_TOPIC "_settings", 0, "k", 1,
                                 "not a settings event", 20, 1, &h, 1);
  assert_true(eventually(f, settings_judged));
  assert_true(eventually(f, sides_up));

  /* A record of a newer schema stops the settings: down until upgraded. */
  struct ctkn_log_header newer[2] = {h, {CTKN_HDR_SCHEMA, "99", 2}};
  fake_log_append(f->t.log, TK_TOPIC "_settings", 0, "k", 1, "newer", 5, 1,
                  newer, 2);
  assert_true(eventually(f, settings_down));
  fl.stop = 1;
  pthread_join(th, NULL);
  assert_int_equal(fl.rc, CTKN_OK);
}

/* ---- replay ------------------------------------------------------------- */

static void test_replay_stops_at_the_instant_and_freezes(void **s)
{
  struct fx *f = *s;
  struct ctkn_event evs[6];
  struct ctkn_record r;
  struct ctkn_err err = {0};

  create_n(f, 6, evs);
  /* As of the third event's instant: the first three only. */
  int64_t as_of = evs[2].occurred_at;
  assert_int_equal(ctkn_projector_replay(f->p, as_of, &err), CTKN_OK);
  for (int i = 0; i < 6; i++)
    assert_int_equal(tk_get(&f->t, evs[i].data.id, &r), i < 3);
  char frozen[CTKN_TIME_BUF];
  assert_int_equal(ctkn_store_frozen(f->t.st, frozen, &err), CTKN_OK);
  assert_string_not_equal(frozen, "");
  /* Nothing advances a frozen projection. */
  ctkn_projector *q;
  assert_int_equal(
      ctkn_projector_open(&q, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err),
      CTKN_ECONFLICT);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_catch_up_applies_the_log_and_stores_its_offsets),
      T(test_a_restart_applies_nothing_twice),
      T(test_rejected_events_are_recorded_not_applied),
      T(test_a_poison_record_is_quarantined_and_the_rest_applied),
      T(test_a_newer_schema_pauses_only_its_partition),
      T(test_a_recreated_topic_is_refused),
      T(test_a_recreated_topic_is_refused_by_its_id),
      T(test_without_ids_a_grown_recreated_topic_passes),
      T(test_an_unreachable_log_fails_within_the_timeout),
      T(test_catch_up_to_targets_stops_there),
      T(test_a_long_catch_up_equals_applying_record_by_record),
      T(test_follow_applies_new_records_and_added_partitions),
      T(test_follow_outlives_a_log_outage),
      T(test_follow_wakes_for_the_settings_while_the_events_idle),
      T(test_follow_retries_the_settings_and_says_they_lag),
      T(test_replay_stops_at_the_instant_and_freezes),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
