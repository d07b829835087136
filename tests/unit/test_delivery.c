/*
 * test_delivery.c - delivery records (notification.h, codec.h) and the
 * notifications topic's projection and reads (delivery.h), against a
 * temporary LMDB store; no broker.
 *
 * What it pins: each record type round-trips and decoding is strict; the
 * projection numbers attempts in log order whoever appended them (two
 * notifiers around a takeover never overwrite one another's attempts), a
 * second "created" changes nothing, a settled notification stays settled,
 * malformed records are quarantined with a reason and the partition goes
 * on, a record of a newer schema stops it; the list's filters and both
 * orders.
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

#include "ctkn/codec.h"
#include "ctkn/delivery.h"
#include "ctkn/store.h"

#define T0     1764900000000000LL /* 2025-12-05T02:00:00Z, µs */
#define NTF_1  "ntf_01kbp9s2c0a6r7k2ge1mj1ntf1"
#define NTF_2  "ntf_01kbp9s2c0a6r7k2ge1mj1ntf2"
#define NTF_3  "ntf_01kbp9s2c0a6r7k2ge1mj1ntf3"
#define DEST_A "ntfset_01kbp9s2c0a6r7k2ge1mj1dsta"
#define DEST_B "ntfset_01kbp9s2c0a6r7k2ge1mj1dstb"

struct fx {
  char tmp[64], db[96];
  ctkn_store *st;
  int64_t next[CTKN_DELIVERY_MAX_PARTS];
  /* the encoded values of the records fed so far (freed at teardown) */
  uint8_t *bufs[64];
  size_t nbufs;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  struct ctkn_store_opts opts = {.map_size = (size_t)64 << 20};

  if (f == NULL)
    return -1;
  snprintf(f->tmp, sizeof(f->tmp), "/tmp/ctkn_test_delivery_XXXXXX");
  if (mkdtemp(f->tmp) == NULL)
    return -1;
  snprintf(f->db, sizeof(f->db), "%s/db", f->tmp);
  if (ctkn_store_open(&f->st, f->db, &opts, NULL) != CTKN_OK)
    return -1;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  for (size_t i = 0; i < f->nbufs; i++)
    free(f->bufs[i]);
  ctkn_store_close(f->st);
  ctkn_store_remove(f->db);
  rmdir(f->tmp);
  free(f);
  return 0;
}

/* A record of type t about notification id for dest. */
static struct ctkn_delivery rec(ctkn_dlv_type t, const char *id,
                                const char *dest, int64_t at)
{
  struct ctkn_delivery d;

  memset(&d, 0, sizeof(d));
  d.type = t;
  snprintf(d.n.id, sizeof(d.n.id), "%s", id);
  snprintf(d.n.dest, sizeof(d.n.dest), "%s", dest);
  snprintf(d.n.event_id, sizeof(d.n.event_id),
           "evt_01kbp9s2c0a6r7k2ge1mj1evt1");
  snprintf(d.n.token_id, sizeof(d.n.token_id),
           "ctkn_01kbp9s2c0a6r7k2ge1mj1tkn1");
  d.n.type = CTKN_EVENT_CREATED;
  d.n.version = 1;
  d.n.partition = 2;
  d.n.offset = 40;
  d.n.occurred_at = T0;
  d.at = at;
  return d;
}

static struct ctkn_delivery attempt(const char *id, uint32_t n, int status,
                                    int64_t at)
{
  struct ctkn_delivery d = rec(CTKN_DLV_ATTEMPTED, id, DEST_A, at);

  d.a.n = n;
  d.a.at = at;
  d.a.status = status;
  d.a.latency_us = 1500;
  snprintf(d.a.content_type, sizeof(d.a.content_type), "text/plain");
  d.a.body_len =
      (size_t)snprintf(d.a.body, sizeof(d.a.body), "said %d", status);
  if (status == 0)
    snprintf(d.a.error, sizeof(d.a.error), "Timeout was reached");
  d.retry_at = status >= 200 && status < 300 ? 0 : at + 60000000;
  return d;
}

/* The message that carries d on partition 0 at the next offset. */
static struct ctkn_log_msg msg_of(struct fx *f, const struct ctkn_delivery *d)
{
  struct ctkn_log_msg m = {0};
  uint8_t *buf;
  size_t len;

  assert_int_equal(ctkn_delivery_encode(d, &buf, &len, NULL), CTKN_OK);
  f->bufs[f->nbufs++] = buf;
  m.partition = 0;
  m.offset = f->next[0]++;
  m.key = d->n.id;
  m.key_len = CTKN_NTF_ID_LEN;
  m.value = buf;
  m.value_len = len;
  snprintf(m.event_type, sizeof(m.event_type), "%s",
           ctkn_dlv_type_str(d->type));
  m.schema_version = CTKN_SCHEMA_DELIVERY;
  return m;
}

static void feed(struct fx *f, const struct ctkn_delivery *ds, size_t n)
{
  struct ctkn_log_msg m[16];
  struct ctkn_err err = {0};

  for (size_t i = 0; i < n; i++)
    m[i] = msg_of(f, &ds[i]);
  if (ctkn_delivery_project(f->st, m, n, &err) != CTKN_OK)
    fail_msg("project: %s", err.msg);
}

static struct ctkn_notification get(struct fx *f, const char *id)
{
  struct ctkn_notification n;
  struct ctkn_err err = {0};
  ctkn_store_txn *txn;

  assert_int_equal(ctkn_store_begin(f->st, false, &txn, NULL), CTKN_OK);
  if (ctkn_delivery_get(txn, id, &n, &err) != CTKN_OK)
    fail_msg("get %s: %s", id, err.msg);
  ctkn_store_abort(txn);
  return n;
}

struct atts {
  struct ctkn_ntf_attempt a[8];
  size_t n;
};

static int take_attempt(void *arg, const struct ctkn_ntf_attempt *a)
{
  struct atts *x = arg;
  x->a[x->n++] = *a;
  return 0;
}

static struct atts attempts_of(struct fx *f, const char *id, uint32_t after)
{
  struct atts x = {0};
  ctkn_store_txn *txn;

  assert_int_equal(ctkn_store_begin(f->st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(
      ctkn_delivery_attempts(txn, id, after, take_attempt, &x, NULL), CTKN_OK);
  ctkn_store_abort(txn);
  return x;
}

/* ---- the records ----------------------------------------------------------
 */

static void test_records_round_trip(void **st)
{
  struct ctkn_delivery in[5], out;
  (void)st;

  in[0] = rec(CTKN_DLV_CREATED, NTF_1, DEST_A, T0 + 1);
  in[1] = attempt(NTF_1, 1, 503, T0 + 2);
  in[2] = rec(CTKN_DLV_DELIVERED, NTF_1, DEST_A, T0 + 3);
  in[3] = rec(CTKN_DLV_FAILED, NTF_1, DEST_A, T0 + 4);
  in[4] = rec(CTKN_DLV_REPLAY, NTF_2, DEST_A, T0 + 5);
  snprintf(in[4].n.replay_of, sizeof(in[4].n.replay_of), "%s", NTF_1);
  in[4].n.replay = true;
  for (size_t i = 0; i < 5; i++) {
    uint8_t *buf;
    size_t len;
    struct ctkn_err err = {0};
    assert_int_equal(ctkn_delivery_encode(&in[i], &buf, &len, NULL), CTKN_OK);
    if (ctkn_delivery_decode(ctkn_dlv_type_str(in[i].type), buf, len, &out,
                             &err) != CTKN_OK)
      fail_msg("%s: %s", ctkn_dlv_type_str(in[i].type), err.msg);
    free(buf);
    assert_memory_equal(&out.n, &in[i].n, sizeof(out.n));
    assert_int_equal(out.type, in[i].type);
    assert_int_equal(out.at, in[i].at);
    assert_int_equal(out.retry_at, in[i].retry_at);
    assert_int_equal(out.a.n, in[i].a.n);
    assert_int_equal(out.a.status, in[i].a.status);
    assert_int_equal(out.a.body_len, in[i].a.body_len);
    assert_string_equal(out.a.body, in[i].a.body);
    assert_string_equal(out.a.content_type, in[i].a.content_type);
  }
}

/* Encoded d, decoded as type: the error's text, or "" when it decoded. */
static const char *decode_as(const char *type, const struct ctkn_delivery *d)
{
  static struct ctkn_err err;
  struct ctkn_delivery out;
  uint8_t *buf;
  size_t len;
  int rc;

  memset(&err, 0, sizeof(err));
  assert_int_equal(ctkn_delivery_encode(d, &buf, &len, NULL), CTKN_OK);
  rc = ctkn_delivery_decode(type, buf, len, &out, &err);
  free(buf);
  if (rc == CTKN_OK)
    return "";
  assert_int_equal(rc, CTKN_EDECODE);
  return err.msg;
}

static void test_decoding_is_strict(void **st)
{
  struct ctkn_delivery d = attempt(NTF_1, 1, 500, T0);
  struct ctkn_delivery c = rec(CTKN_DLV_CREATED, NTF_1, DEST_A, T0);
  struct ctkn_delivery out;
  (void)st;

  assert_string_equal(decode_as("notification.attempted", &d), "");
  /* The type travels in the header: an attempt is only an attempt's. */
  assert_non_null(strstr(decode_as("notification.created", &d), "attempt"));
  assert_non_null(strstr(decode_as("notification.attempted", &c), "attempt"));
  assert_non_null(strstr(decode_as("client_token.created", &c),
                         "not a delivery record type"));
  c.n.dest[3] = 'X';
  assert_non_null(
      strstr(decode_as("notification.created", &c), "destination_id"));
  c = rec(CTKN_DLV_REPLAY, NTF_2, DEST_A, T0); /* no replay_of */
  assert_non_null(
      strstr(decode_as("notification.replay_requested", &c), "replay_of"));
  c = rec(CTKN_DLV_CREATED, NTF_1, DEST_A, 0);
  assert_non_null(strstr(decode_as("notification.created", &c), "at"));
  assert_int_equal(ctkn_delivery_decode("notification.created", "\xff\xff\xff",
                                        3, &out, NULL),
                   CTKN_EDECODE);
  assert_int_equal(
      ctkn_delivery_decode("notification.created", NULL, 0, &out, NULL),
      CTKN_EDECODE);
}

/* ---- the projection -------------------------------------------------------
 */

static void test_attempts_from_two_notifiers_stay_in_log_order(void **state)
{
  struct fx *f = *state;
  struct ctkn_delivery ds[6];
  struct ctkn_notification n;
  struct atts x;

  /* The first notifier: created, two failures; then it dies. The second
   * numbers its attempts from 1 again (it never saw the first's), and
   * appends created once more. */
  ds[0] = rec(CTKN_DLV_CREATED, NTF_1, DEST_A, T0 + 1);
  ds[1] = attempt(NTF_1, 1, 500, T0 + 2);
  ds[2] = attempt(NTF_1, 2, 0, T0 + 3);
  ds[3] = rec(CTKN_DLV_CREATED, NTF_1, DEST_A, T0 + 4);
  ds[4] = attempt(NTF_1, 1, 204, T0 + 5);
  ds[5] = rec(CTKN_DLV_DELIVERED, NTF_1, DEST_A, T0 + 6);
  feed(f, ds, 3);
  n = get(f, NTF_1);
  assert_int_equal(n.status, CTKN_NTF_NEEDS_RETRY);
  assert_int_equal(n.attempts, 2);
  assert_int_equal(n.retry_at, T0 + 3 + 60000000);
  feed(f, ds + 3, 3);
  n = get(f, NTF_1);
  assert_int_equal(n.status, CTKN_NTF_DELIVERED);
  assert_int_equal(n.attempts, 3);
  assert_int_equal(n.first_attempt_at, T0 + 2);
  assert_int_equal(n.last_attempt_at, T0 + 5);
  assert_int_equal(n.delivered_at, T0 + 5);
  assert_int_equal(n.last_status, 204);
  assert_string_equal(n.dest, DEST_A);
  x = attempts_of(f, NTF_1, 0);
  assert_int_equal(x.n, 3);
  assert_int_equal(x.a[0].n, 1);
  assert_int_equal(x.a[0].status, 500);
  assert_int_equal(x.a[1].n, 2);
  assert_int_equal(x.a[1].status, 0);
  assert_string_equal(x.a[1].error, "Timeout was reached");
  assert_int_equal(x.a[2].n, 3);
  assert_int_equal(x.a[2].status, 204);
  assert_string_equal(x.a[2].content_type, "text/plain");
  assert_string_equal(x.a[2].body, "said 204");
  /* A page of them after the first. */
  x = attempts_of(f, NTF_1, 1);
  assert_int_equal(x.n, 2);
  assert_int_equal(x.a[0].n, 2);
}

static void test_settled_stays_settled(void **state)
{
  struct fx *f = *state;
  struct ctkn_delivery ds[4];

  ds[0] = attempt(NTF_1, 1, 200, T0 + 1);
  ds[1] = rec(CTKN_DLV_FAILED, NTF_1, DEST_A, T0 + 2); /* a stale notifier */
  ds[2] = attempt(NTF_2, 1, 500, T0 + 3);              /* no created first */
  ds[3] = rec(CTKN_DLV_FAILED, NTF_2, DEST_A, T0 + 4);
  feed(f, ds, 4);
  assert_int_equal(get(f, NTF_1).status, CTKN_NTF_DELIVERED);
  assert_int_equal(get(f, NTF_2).status, CTKN_NTF_FAILED);
  assert_int_equal(get(f, NTF_2).retry_at, 0);
}

static void test_malformed_records_are_quarantined(void **state)
{
  struct fx *f = *state;
  struct ctkn_delivery good = rec(CTKN_DLV_CREATED, NTF_3, DEST_B, T0);
  struct ctkn_delivery other = rec(CTKN_DLV_CREATED, NTF_1, DEST_A, T0);
  struct ctkn_log_msg m[3];
  struct ctkn_err err = {0};
  ctkn_store_txn *txn;
  char reason[256];

  m[0] = msg_of(f, &good);
  m[0].value = "\x0a\xff garbage";
  m[0].value_len = 10;
  m[1] = msg_of(f, &other);
  m[1].key = NTF_2; /* keyed apart from its notification */
  m[2] = msg_of(f, &good);
  assert_int_equal(ctkn_delivery_project(f->st, m, 3, &err), CTKN_OK);
  assert_int_equal(ctkn_store_begin(f->st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_delivery_offset(txn, 0), 3);
  assert_int_equal(
      ctkn_delivery_quarantined(txn, 0, 0, reason, sizeof(reason), NULL),
      CTKN_OK);
  assert_non_null(strstr(reason, "not a ctkn.v1.Delivery"));
  assert_int_equal(
      ctkn_delivery_quarantined(txn, 0, 1, reason, sizeof(reason), NULL),
      CTKN_OK);
  assert_non_null(strstr(reason, "key"));
  assert_int_equal(
      ctkn_delivery_quarantined(txn, 0, 2, reason, sizeof(reason), NULL),
      CTKN_ENOTFOUND);
  struct ctkn_notification n;
  assert_int_equal(ctkn_delivery_get(txn, NTF_1, &n, NULL), CTKN_ENOTFOUND);
  assert_int_equal(ctkn_delivery_get(txn, NTF_3, &n, NULL), CTKN_OK);
  ctkn_store_abort(txn);
}

static void test_a_newer_schema_stops_the_partition(void **state)
{
  struct fx *f = *state;
  struct ctkn_delivery a = rec(CTKN_DLV_CREATED, NTF_1, DEST_A, T0);
  struct ctkn_delivery b = rec(CTKN_DLV_CREATED, NTF_2, DEST_A, T0);
  struct ctkn_log_msg m[2];
  struct ctkn_err err = {0};
  struct ctkn_notification n;
  ctkn_store_txn *txn;

  m[0] = msg_of(f, &a);
  m[1] = msg_of(f, &b);
  m[1].schema_version = CTKN_SCHEMA_VERSION + 1;
  assert_int_equal(ctkn_delivery_project(f->st, m, 2, &err), CTKN_EFORMAT);
  assert_non_null(strstr(err.msg, "upgrade ctkn"));
  assert_int_equal(ctkn_store_begin(f->st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_delivery_offset(txn, 0), 1);
  assert_int_equal(ctkn_delivery_get(txn, NTF_1, &n, NULL), CTKN_OK);
  assert_int_equal(ctkn_delivery_get(txn, NTF_2, &n, NULL), CTKN_ENOTFOUND);
  ctkn_store_abort(txn);
}

/* ---- the list --------------------------------------------------------------
 */

struct ids {
  char id[8][CTKN_NTF_ID_BUF];
  size_t n;
};

static int take_id(void *arg, const struct ctkn_notification *n)
{
  struct ids *x = arg;
  memcpy(x->id[x->n++], n->id, CTKN_NTF_ID_BUF);
  return 0;
}

static struct ids list(struct fx *f, const struct ctkn_delivery_filter *flt)
{
  struct ids x = {0};
  ctkn_store_txn *txn;

  assert_int_equal(ctkn_store_begin(f->st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_delivery_list(txn, flt, take_id, &x, NULL), CTKN_OK);
  ctkn_store_abort(txn);
  return x;
}

static void test_list_filters_and_orders(void **state)
{
  struct fx *f = *state;
  struct ctkn_delivery ds[3];
  const char *b[] = {DEST_B};
  struct ctkn_delivery_filter flt = {0};
  struct ids x;

  ds[0] = attempt(NTF_1, 1, 200, T0 + 1);
  ds[1] = attempt(NTF_2, 1, 500, T0 + 2);
  ds[2] = rec(CTKN_DLV_CREATED, NTF_3, DEST_B, T0 + 3);
  ds[2].n.occurred_at = T0 + 1000000;
  feed(f, ds, 3);
  x = list(f, &flt);
  assert_int_equal(x.n, 3);
  assert_string_equal(x.id[0], NTF_1);
  assert_string_equal(x.id[2], NTF_3);
  flt.desc = true;
  x = list(f, &flt);
  assert_int_equal(x.n, 3);
  assert_string_equal(x.id[0], NTF_3);
  flt.after = NTF_3; /* newest first: those older than the cursor */
  x = list(f, &flt);
  assert_int_equal(x.n, 2);
  assert_string_equal(x.id[0], NTF_2);
  flt = (struct ctkn_delivery_filter){.after = NTF_1};
  x = list(f, &flt);
  assert_int_equal(x.n, 2);
  assert_string_equal(x.id[0], NTF_2);
  flt =
      (struct ctkn_delivery_filter){.status_mask = 1u << CTKN_NTF_NEEDS_RETRY};
  x = list(f, &flt);
  assert_int_equal(x.n, 1);
  assert_string_equal(x.id[0], NTF_2);
  flt = (struct ctkn_delivery_filter){.dests = b, .ndests = 1};
  x = list(f, &flt);
  assert_int_equal(x.n, 1);
  assert_string_equal(x.id[0], NTF_3);
  flt = (struct ctkn_delivery_filter){.has_from = true,
                                      .from_us = T0 + 1,
                                      .has_to = true,
                                      .to_us = T0 + 2000000};
  x = list(f, &flt);
  assert_int_equal(x.n, 1);
  assert_string_equal(x.id[0], NTF_3);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_records_round_trip),
      cmocka_unit_test(test_decoding_is_strict),
      T(test_attempts_from_two_notifiers_stay_in_log_order),
      T(test_settled_stays_settled),
      T(test_malformed_records_are_quarantined),
      T(test_a_newer_schema_stops_the_partition),
      T(test_list_filters_and_orders),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
