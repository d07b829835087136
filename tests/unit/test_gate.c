/*
 * test_gate.c - the writer's signer and the reader's gate together: what
 * a signer appends is applied, and every forgery the trust design names
 * is quarantined (a link with no covering checkpoint, a replay, an edited
 * or duplicated covered header, an unknown, revoked or out-of-scope key,
 * an unsigned record), while the next genuine record is still applied.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/keyring.h"
#include "ctkn/trust.h"

#define NPARTS 3
#define MAXLOG 4096
#define MAXHDR 8

/* An appended record with its own copies of everything. */
struct rec {
  struct ctkn_log_msg m;
  struct ctkn_log_header h[MAXHDR];
  char names[MAXHDR][32];
  char vals[MAXHDR][96];
  char key[64];
  uint8_t value[512];
};

struct fixture {
  struct ctkn_keyring kr;
  ctkn_seckey *sk, *other;
  ctkn_signer *sg;
  ctkn_gate *gate;
  struct rec log[MAXLOG];
  size_t n;
  int64_t next_off[NPARTS];
  int64_t now_us;
};

static void add_key(struct ctkn_keyring *kr, ctkn_seckey *sk, const char *scope)
{
  struct ctkn_writer_key k = {0};

  ctkn_seckey_public(sk, k.public_key);
  ctkn_key_id(k.public_key, k.key_id);
  snprintf(k.name, sizeof(k.name), "w");
  snprintf(k.scopes[0], sizeof(k.scopes[0]), "%s", scope);
  k.nscopes = 1;
  assert_int_equal(ctkn_keyring_add_key(kr, &k, NULL), CTKN_OK);
}

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof(*f));

  assert_non_null(f);
  ctkn_keyring_init(&f->kr);
  f->kr.version = 1;
  memset(f->kr.log_id, 0x5a, CTKN_LOG_ID_LEN);
  assert_int_equal(ctkn_seckey_generate(&f->sk, NULL), CTKN_OK);
  assert_int_equal(ctkn_seckey_generate(&f->other, NULL), CTKN_OK);
  add_key(&f->kr, f->sk, "client_token.*");
  assert_int_equal(ctkn_signer_open(&f->sg, f->sk, f->kr.log_id, NPARTS, NULL),
                   CTKN_OK);
  assert_int_equal(ctkn_gate_open(&f->gate, &f->kr, NPARTS, NULL), CTKN_OK);
  f->now_us = 1700000000000000;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  ctkn_gate_close(f->gate);
  ctkn_signer_close(f->sg);
  ctkn_seckey_free(f->sk);
  ctkn_seckey_free(f->other);
  ctkn_keyring_free(&f->kr);
  free(f);
  return 0;
}

/* A copy of r into x, at offset off. */
static void copy_rec(struct rec *x, const struct ctkn_log_record *r,
                     int64_t off)
{
  assert_true(r->nheaders <= MAXHDR && r->vlen <= sizeof(x->value) &&
              r->klen < sizeof(x->key));
  memset(x, 0, sizeof(*x));
  x->m.partition = r->partition;
  x->m.offset = off;
  x->m.timestamp_ms = r->timestamp_ms;
  if (r->key != NULL) {
    memcpy(x->key, r->key, r->klen);
    x->m.key = x->key;
    x->m.key_len = r->klen;
  }
  memcpy(x->value, r->value, r->vlen);
  x->m.value = x->value;
  x->m.value_len = r->vlen;
  for (size_t i = 0; i < r->nheaders; i++) {
    assert_true(r->headers[i].size < sizeof(x->vals[i]));
    snprintf(x->names[i], sizeof(x->names[i]), "%s", r->headers[i].name);
    memcpy(x->vals[i], r->headers[i].value, r->headers[i].size);
    x->h[i] =
        (struct ctkn_log_header){x->names[i], x->vals[i], r->headers[i].size};
  }
  x->m.headers = x->h;
  x->m.nheaders = r->nheaders;
  ctkn_log_msg_note_headers(&x->m);
}

/* Append a copy of r to the log; returns its index. */
static size_t append(struct fixture *f, const struct ctkn_log_record *r)
{
  assert_true(f->n < MAXLOG);
  copy_rec(&f->log[f->n], r, f->next_off[r->partition]++);
  return f->n++;
}

/* Append x (a record copied before) to the log. */
static void append_rec(struct fixture *f, const struct rec *x)
{
  append(f, &(struct ctkn_log_record){.partition = x->m.partition,
                                      .key = x->m.key,
                                      .klen = x->m.key_len,
                                      .value = x->m.value,
                                      .vlen = x->m.value_len,
                                      .timestamp_ms = x->m.timestamp_ms,
                                      .headers = x->h,
                                      .nheaders = x->m.nheaders});
}

/* A command's records through the signer into the log (acked). */
static void write_batch(struct fixture *f, ctkn_signer *sg,
                        const int32_t *parts, size_t n, const char *type)
{
  struct ctkn_log_record in[16], *out;
  char keys[16][16], vals[16][32];
  size_t nout;

  assert_true(n <= 16);
  for (size_t i = 0; i < n; i++) {
    snprintf(keys[i], sizeof(keys[i]), "ctkn_%zu", f->n + i);
    snprintf(vals[i], sizeof(vals[i]), "value %zu", f->n + i);
    in[i] = (struct ctkn_log_record){.partition = parts[i],
                                     .key = keys[i],
                                     .klen = strlen(keys[i]),
                                     .value = vals[i],
                                     .vlen = strlen(vals[i]),
                                     .timestamp_ms = f->now_us / 1000,
                                     .event_type = type,
                                     .schema_version = 1};
  }
  f->now_us += 1000;
  assert_int_equal(
      ctkn_signer_prepare(sg, in, n, 0, f->now_us, &out, &nout, NULL), CTKN_OK);
  for (size_t i = 0; i < nout; i++)
    append(f, &out[i]);
  assert_int_equal(ctkn_signer_done(sg, true, NULL), CTKN_OK);
}

/* Feed log[from..to) and collect every verdict of partition p. */
static size_t judge(struct fixture *f, size_t from, size_t to, int32_t p,
                    struct ctkn_gate_out *outs, size_t max)
{
  size_t k = 0;

  for (size_t i = from; i < to; i++)
    if (f->log[i].m.partition == p)
      assert_int_equal(ctkn_gate_feed(f->gate, &f->log[i].m, i, NULL), CTKN_OK);
  while (k < max && ctkn_gate_next(f->gate, p, &outs[k]))
    k++;
  return k;
}

static int count(const struct ctkn_gate_out *o, size_t n,
                 enum ctkn_gate_verdict v)
{
  int c = 0;

  for (size_t i = 0; i < n; i++)
    c += o[i].verdict == v;
  return c;
}

/* ---- the genuine path --------------------------------------------------- */

static void test_what_a_writer_appends_is_applied(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[64];
  const int32_t parts[] = {0, 1, 0, 2, 0};
  size_t k;

  write_batch(f, f->sg, parts, 5, "client_token.created");
  assert_int_equal(f->n, 5 + 3); /* one checkpoint per partition touched */
  k = judge(f, 0, f->n, 0, o, 64);
  assert_int_equal(k, 4);
  assert_int_equal(count(o, k, CTKN_GATE_APPLY), 3);
  assert_int_equal(o[3].verdict, CTKN_GATE_CHECKPOINT);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(o[i].offset, (int64_t)i); /* in log order */
  assert_true(ctkn_gate_checkpoint_at(f->gate, 0) == f->now_us);
  k = judge(f, 0, f->n, 1, o, 64);
  assert_int_equal(count(o, k, CTKN_GATE_APPLY), 1);
  /* A second batch links on. */
  write_batch(f, f->sg, parts, 5, "client_token.revoked");
  k = judge(f, 8, f->n, 0, o, 64);
  assert_int_equal(count(o, k, CTKN_GATE_APPLY), 3);
  assert_int_equal(count(o, k, CTKN_GATE_QUARANTINE), 0);
}

static void test_a_record_waits_for_its_checkpoint(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[16];
  const int32_t parts[] = {0, 0};
  int64_t first;

  write_batch(f, f->sg, parts, 2, "client_token.created");
  /* The records alone: held back, nothing released. */
  assert_int_equal(judge(f, 0, 2, 0, o, 16), 0);
  assert_int_equal(ctkn_gate_held(f->gate, 0, &first), 2);
  assert_int_equal(first, 0);
  /* A reset drops them; fed again with the checkpoint, they apply. */
  ctkn_gate_reset(f->gate, 0);
  assert_int_equal(ctkn_gate_held(f->gate, 0, &first), 0);
  assert_int_equal(judge(f, 0, 3, 0, o, 16), 3);
  assert_int_equal(count(o, 3, CTKN_GATE_APPLY), 2);
}

/* One record on partition 0 prepared by the signer (not yet done): the
 * record and its checkpoint copied into recs; returns how many. */
static size_t prepare_one(struct fixture *f, struct rec *recs, size_t max)
{
  struct ctkn_log_record in = {.partition = 0,
                               .key = "k",
                               .klen = 1,
                               .value = "v",
                               .vlen = 1,
                               .event_type = "client_token.created",
                               .schema_version = 1};
  struct ctkn_log_record *out;
  size_t nout;

  f->now_us += 1000;
  in.timestamp_ms = f->now_us / 1000;
  assert_int_equal(
      ctkn_signer_prepare(f->sg, &in, 1, 0, f->now_us, &out, &nout, NULL),
      CTKN_OK);
  assert_true(nout <= max);
  for (size_t i = 0; i < nout; i++)
    copy_rec(&recs[i], &out[i], -1);
  return nout;
}

static void test_a_failed_batch_starts_a_new_instance(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[16];
  struct rec lost[2];
  const int32_t parts[] = {0};
  char before[CTKN_WRITER_BUF];
  size_t k;

  write_batch(f, f->sg, parts, 1, "client_token.created");
  snprintf(before, sizeof(before), "%s", ctkn_signer_writer(f->sg));
  /* Prepared, never acknowledged (and never in the log). */
  prepare_one(f, lost, 2);
  assert_int_equal(ctkn_signer_done(f->sg, false, NULL), CTKN_OK);
  assert_string_not_equal(before, ctkn_signer_writer(f->sg));
  write_batch(f, f->sg, parts, 1, "client_token.created");
  k = judge(f, 0, f->n, 0, o, 16);
  assert_int_equal(count(o, k, CTKN_GATE_APPLY), 2);
  assert_int_equal(count(o, k, CTKN_GATE_QUARANTINE), 0);
}

/* Two batches in flight at once (the second prepared before the first is
 * done) chain one after the other and both apply. When the first never
 * reaches the log but its checkpoint does, the second links to a record
 * the log lacks: it is quarantined, however the reader's batches fall
 * (all at once, or one record at a time), and the first's failure ends
 * the instance: the next batch starts a new one. */
static void test_batches_in_flight_chain_and_a_gap_never_links(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[16];
  struct rec a[2], b[2], c[2];
  char first[CTKN_WRITER_BUF];
  size_t k;

  snprintf(first, sizeof(first), "%s", ctkn_signer_writer(f->sg));
  assert_int_equal(prepare_one(f, a, 2), 2);
  assert_int_equal(prepare_one(f, b, 2), 2);
  for (int i = 0; i < 2; i++)
    append_rec(f, &a[i]);
  for (int i = 0; i < 2; i++)
    append_rec(f, &b[i]);
  assert_int_equal(ctkn_signer_done(f->sg, true, NULL), CTKN_OK);
  assert_int_equal(ctkn_signer_done(f->sg, true, NULL), CTKN_OK);
  k = judge(f, 0, f->n, 0, o, 16);
  assert_int_equal(count(o, k, CTKN_GATE_APPLY), 2);
  assert_int_equal(count(o, k, CTKN_GATE_QUARANTINE), 0);

  /* Now a is lost but for its checkpoint; b lands whole. */
  size_t from = f->n;
  assert_int_equal(prepare_one(f, a, 2), 2);
  uint64_t gen = ctkn_signer_generation(f->sg);
  assert_int_equal(prepare_one(f, b, 2), 2);
  assert_true(ctkn_signer_generation(f->sg) == gen); /* one instance */
  struct rec *land[] = {&a[1], &b[0], &b[1]};
  for (int i = 0; i < 3; i++)
    append_rec(f, land[i]);
  assert_int_equal(ctkn_signer_done_gen(f->sg, gen, false, NULL), CTKN_OK);
  assert_string_not_equal(first, ctkn_signer_writer(f->sg));
  snprintf(first, sizeof(first), "%s", ctkn_signer_writer(f->sg));
  /* b's outcome changes nothing, even a failure: its instance ended with
   * a's. */
  assert_int_equal(ctkn_signer_done_gen(f->sg, gen, false, NULL), CTKN_OK);
  assert_string_equal(first, ctkn_signer_writer(f->sg));
  assert_int_equal(prepare_one(f, c, 2), 2);
  assert_int_equal(ctkn_signer_done(f->sg, true, NULL), CTKN_OK);
  for (int i = 0; i < 2; i++)
    append_rec(f, &c[i]);
  /* All at once: b's record is refused, c's (a new instance) applied. */
  k = judge(f, from, f->n, 0, o, 16);
  assert_int_equal(k, 5);
  assert_int_equal(o[1].verdict, CTKN_GATE_QUARANTINE); /* b's record */
  assert_int_equal(count(o, k, CTKN_GATE_APPLY), 1);
  assert_int_equal(o[3].verdict, CTKN_GATE_APPLY); /* c's record */
  /* One record at a time, on a reader that read the first two batches:
   * the same verdicts. */
  ctkn_gate_close(f->gate);
  assert_int_equal(ctkn_gate_open(&f->gate, &f->kr, NPARTS, NULL), CTKN_OK);
  struct ctkn_gate_out one[16];
  judge(f, 0, from, 0, one, 16);
  size_t n1 = 0;
  for (size_t i = from; i < f->n; i++)
    n1 += judge(f, i, i + 1, 0, &one[n1], 16 - n1);
  assert_int_equal(n1, k);
  for (size_t i = 0; i < k; i++)
    assert_int_equal(one[i].verdict, o[i].verdict);
  /* All at once as a projector reads, a's checkpoint not verified (only
   * the instance's last one in a read batch is): the same verdicts. */
  ctkn_gate_close(f->gate);
  assert_int_equal(ctkn_gate_open(&f->gate, &f->kr, NPARTS, NULL), CTKN_OK);
  judge(f, 0, from, 0, one, 16);
  assert_int_equal(ctkn_gate_feed_lazy(f->gate, &f->log[from].m, from, NULL),
                   CTKN_OK);
  n1 = judge(f, from + 1, f->n, 0, one, 16);
  assert_int_equal(n1, k);
  for (size_t i = 0; i < k; i++)
    assert_int_equal(one[i].verdict, o[i].verdict);
}

/* The last checkpoint of an instance in a read batch (the one a projector
 * verifies) is refused before it is judged, here as stale (signed more
 * than the replay window before the partition's newest): the instance's
 * earlier checkpoint, read unverified, does not wait for a proof that
 * will never come (holding the partition back); it is verified at once,
 * and the verdicts are those of a reader that verified every checkpoint. */
static void test_a_refused_last_checkpoint_does_not_hold_those_before(void **s)
{
  struct fixture *f = *s;
  struct ctkn_gate_out o[16], lazy[16];
  struct ctkn_log_record *out;
  struct rec a[2];
  const int32_t parts[] = {0};
  size_t nout, k, from;

  write_batch(f, f->sg, parts, 1, "client_token.created");
  assert_int_equal(judge(f, 0, f->n, 0, o, 16), 2);
  from = f->n;
  assert_int_equal(prepare_one(f, a, 2), 2);
  assert_int_equal(ctkn_signer_done(f->sg, true, NULL), CTKN_OK);
  append_rec(f, &a[0]);
  append_rec(f, &a[1]);
  /* The same instance's heartbeat, signed two replay windows ago. */
  assert_int_equal(ctkn_signer_prepare(f->sg, NULL, 0, CTKN_SIGN_HEARTBEAT,
                                       f->now_us - 2 * CTKN_GATE_REPLAY_US,
                                       &out, &nout, NULL),
                   CTKN_OK);
  for (size_t i = 0; i < nout; i++)
    if (out[i].partition == 0)
      append(f, &out[i]);
  assert_int_equal(ctkn_signer_done(f->sg, true, NULL), CTKN_OK);
  assert_int_equal(f->n, from + 3);

  k = judge(f, from, f->n, 0, o, 16); /* every checkpoint verified */
  assert_int_equal(k, 3);
  assert_int_equal(o[0].verdict, CTKN_GATE_APPLY);
  assert_int_equal(o[2].verdict, CTKN_GATE_QUARANTINE);
  /* As a projector reads: a's checkpoint unverified, the stale last. */
  ctkn_gate_close(f->gate);
  assert_int_equal(ctkn_gate_open(&f->gate, &f->kr, NPARTS, NULL), CTKN_OK);
  judge(f, 0, from, 0, lazy, 16);
  assert_int_equal(ctkn_gate_feed(f->gate, &f->log[from].m, from, NULL),
                   CTKN_OK);
  assert_int_equal(
      ctkn_gate_feed_lazy(f->gate, &f->log[from + 1].m, from + 1, NULL),
      CTKN_OK);
  assert_int_equal(judge(f, from + 2, f->n, 0, lazy, 16), k);
  for (size_t i = 0; i < k; i++)
    assert_int_equal(lazy[i].verdict, o[i].verdict);
}

static void test_state_saved_and_loaded_links_the_next_batch(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[16];
  const int32_t parts[] = {1};
  uint8_t *buf;
  size_t len, k;

  write_batch(f, f->sg, parts, 1, "client_token.created");
  assert_int_equal(judge(f, 0, f->n, 1, o, 16), 2);
  assert_int_equal(ctkn_gate_save(f->gate, 1, &buf, &len, NULL), CTKN_OK);
  /* A restarted reader: a new gate from the saved state. */
  ctkn_gate_close(f->gate);
  assert_int_equal(ctkn_gate_open(&f->gate, &f->kr, NPARTS, NULL), CTKN_OK);
  assert_int_equal(ctkn_gate_load(f->gate, 1, buf, len, NULL), CTKN_OK);
  assert_int_equal(ctkn_gate_load(f->gate, 1, buf, len - 1, NULL), CTKN_EINVAL);
  assert_int_equal(ctkn_gate_load(f->gate, 1, buf, len, NULL), CTKN_OK);
  free(buf);
  write_batch(f, f->sg, parts, 1, "client_token.revoked");
  k = judge(f, 2, f->n, 1, o, 16);
  assert_int_equal(k, 2);
  assert_int_equal(o[0].verdict, CTKN_GATE_APPLY);
  /* Without the state the same records do not link. */
  ctkn_gate_close(f->gate);
  assert_int_equal(ctkn_gate_open(&f->gate, &f->kr, NPARTS, NULL), CTKN_OK);
  k = judge(f, 2, f->n, 1, o, 16);
  assert_int_equal(o[0].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[0].detail, "does not link"));
}

static void test_a_closed_instance_writes_no_more(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[16];
  struct ctkn_log_record *out;
  const int32_t parts[] = {2};
  uint8_t *buf;
  size_t nout, len, k;

  write_batch(f, f->sg, parts, 1, "client_token.created");
  assert_int_equal(ctkn_signer_prepare(f->sg, NULL, 0, CTKN_SIGN_CLOSING,
                                       f->now_us + 5, &out, &nout, NULL),
                   CTKN_OK);
  assert_int_equal(nout, 1); /* the one partition it wrote to */
  append(f, &out[0]);
  assert_int_equal(ctkn_signer_done(f->sg, true, NULL), CTKN_OK);
  k = judge(f, 0, f->n, 2, o, 16);
  assert_int_equal(k, 3);
  assert_int_equal(o[2].verdict, CTKN_GATE_CHECKPOINT);
  /* Remembered as closed for the replay window (saved so), then dropped:
   * its record and checkpoint appended again are refused meanwhile. */
  assert_int_equal(ctkn_gate_save(f->gate, 2, &buf, &len, NULL), CTKN_OK);
  assert_int_equal(len, 21 + 81); /* no positional keyring */
  free(buf);
  append(f, &(struct ctkn_log_record){.partition = 2,
                                      .key = f->log[0].m.key,
                                      .klen = f->log[0].m.key_len,
                                      .value = f->log[0].m.value,
                                      .vlen = f->log[0].m.value_len,
                                      .headers = f->log[0].h,
                                      .nheaders = f->log[0].m.nheaders});
  k = judge(f, 3, f->n, 2, o, 16);
  assert_int_equal(k, 1);
  assert_int_equal(o[0].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[0].detail, "closed"));
}

static void test_a_stale_checkpoint_is_refused(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[16];
  const int32_t parts[] = {0};
  ctkn_signer *other;
  size_t k, old;

  write_batch(f, f->sg, parts, 1, "client_token.created"); /* 0, cp 1 */
  assert_int_equal(ctkn_signer_open(&other, f->sk, f->kr.log_id, NPARTS, NULL),
                   CTKN_OK);
  f->now_us += CTKN_GATE_REPLAY_US + 1000000;
  write_batch(f, other, parts, 1, "client_token.created"); /* 2, cp 3 */
  old = append(f, &(struct ctkn_log_record){.partition = 0,
                                            .value = f->log[1].m.value,
                                            .vlen = f->log[1].m.value_len,
                                            .headers = f->log[1].h,
                                            .nheaders = f->log[1].m.nheaders});
  k = judge(f, 0, f->n, 0, o, 16);
  assert_int_equal(k, 5);
  assert_int_equal(o[old].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[old].detail, "stale"));
  ctkn_signer_close(other);
}

/* ---- forgeries ----------------------------------------------------------- */

/* A copy of log[i] with header name's value replaced (or, with dup, a
 * second copy of it added), as an attacker with Write on the topic. */
static size_t forge(struct fixture *f, size_t i, const char *name,
                    const char *value, bool dup)
{
  struct ctkn_log_record r = {.partition = f->log[i].m.partition,
                              .key = f->log[i].m.key,
                              .klen = f->log[i].m.key_len,
                              .value = f->log[i].m.value,
                              .vlen = f->log[i].m.value_len,
                              .timestamp_ms = f->log[i].m.timestamp_ms,
                              .headers = f->log[i].h,
                              .nheaders = f->log[i].m.nheaders};
  size_t j = append(f, &r);
  struct rec *x = &f->log[j];

  for (size_t k = 0; k < x->m.nheaders; k++)
    if (strcmp(x->names[k], name) == 0) {
      if (dup) {
        size_t d = x->m.nheaders++;
        snprintf(x->names[d], sizeof(x->names[d]), "%s", name);
        snprintf(x->vals[d], sizeof(x->vals[d]), "%s", value);
        x->h[d] =
            (struct ctkn_log_header){x->names[d], x->vals[d], strlen(value)};
      } else {
        snprintf(x->vals[k], sizeof(x->vals[k]), "%s", value);
        x->h[k].size = strlen(value);
      }
      break;
    }
  ctkn_log_msg_note_headers(&x->m);
  return j;
}

/* Relink record x after chain prev (the attacker's own computation). */
static void relink_rec(struct fixture *f, struct rec *x, const uint8_t prev[32])
{
  uint8_t d[32], c[32];

  for (size_t k = 0; k < x->m.nheaders; k++)
    if (strcmp(x->names[k], CTKN_HDR_CHAIN) == 0) {
      assert_int_equal(ctkn_trust_record_digest(f->kr.log_id, &x->m, d, NULL),
                       CTKN_OK);
      ctkn_trust_chain_next(prev, d, c);
      ctkn_hex(c, 32, x->vals[k]);
    }
}

/* Relink log[j] after chain prev. */
static void relink(struct fixture *f, size_t j, const uint8_t prev[32])
{
  relink_rec(f, &f->log[j], prev);
}

static void chain_of(const struct rec *x, uint8_t out[32])
{
  for (size_t k = 0; k < x->m.nheaders; k++)
    if (strcmp(x->names[k], CTKN_HDR_CHAIN) == 0)
      for (size_t i = 0; i < 32; i++) {
        unsigned v;
        sscanf(x->vals[k] + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
      }
}

static void set_seq(struct rec *x, const char *seq)
{
  for (size_t k = 0; k < x->m.nheaders; k++)
    if (strcmp(x->names[k], CTKN_HDR_SEQ) == 0) {
      snprintf(x->vals[k], sizeof(x->vals[k]), "%s", seq);
      x->h[k].size = strlen(seq);
    }
}

static void
test_a_linked_forgery_without_a_checkpoint_is_quarantined(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[32];
  const int32_t parts[] = {0};
  uint8_t head[32];
  size_t j, k;

  write_batch(f, f->sg, parts, 1, "client_token.created"); /* 0, cp 1 */
  /* The attacker appends a "revoked" that links correctly after it. */
  j = forge(f, 0, CTKN_HDR_EVENT_TYPE, "client_token.revoked", false);
  set_seq(&f->log[j], "2");
  chain_of(&f->log[0], head);
  relink(f, j, head);
  /* The genuine writer's next record competes at sequence 2. */
  write_batch(f, f->sg, parts, 1, "client_token.updated");
  k = judge(f, 0, f->n, 0, o, 32);
  assert_int_equal(k, 5);
  assert_int_equal(o[0].verdict, CTKN_GATE_APPLY);
  assert_int_equal(o[2].verdict, CTKN_GATE_QUARANTINE);
  assert_int_equal(o[2].tag, j);
  assert_non_null(strstr(o[2].detail, "competing"));
  assert_int_equal(o[3].verdict, CTKN_GATE_APPLY); /* the next genuine one */
  assert_int_equal(o[4].verdict, CTKN_GATE_CHECKPOINT);
}

static void test_a_forgery_never_checkpointed_times_out(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[32];
  const int32_t parts[] = {0};
  uint8_t head[32];
  size_t j, k;
  ctkn_signer *other;

  write_batch(f, f->sg, parts, 1, "client_token.created");
  j = forge(f, 0, CTKN_HDR_EVENT_TYPE, "client_token.revoked", false);
  set_seq(&f->log[j], "2");
  chain_of(&f->log[0], head);
  relink(f, j, head);
  /* Another instance keeps writing; its checkpoints pass the grace. */
  assert_int_equal(ctkn_signer_open(&other, f->sk, f->kr.log_id, NPARTS, NULL),
                   CTKN_OK);
  write_batch(f, other, parts, 1, "client_token.created");
  k = judge(f, 0, f->n, 0, o, 32);
  assert_int_equal(k, 2); /* held behind the forgery */
  f->now_us += CTKN_GATE_GRACE_US + 1000;
  write_batch(f, other, parts, 1, "client_token.created");
  k = judge(f, f->n - 2, f->n, 0, o, 32);
  assert_int_equal(k, 5);
  assert_int_equal(o[0].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[0].detail, "never checkpointed"));
  assert_int_equal(count(o, k, CTKN_GATE_APPLY), 2);
  ctkn_signer_close(other);
}

static void test_a_replayed_record_and_checkpoint_are_quarantined(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[32];
  const int32_t parts[] = {0};
  size_t k, j;

  write_batch(f, f->sg, parts, 1, "client_token.revoked"); /* 0, cp 1 */
  write_batch(f, f->sg, parts, 1, "client_token.updated"); /* 2, cp 3 */
  /* The revoke and its checkpoint appended again. */
  j = forge(f, 0, "none", "", false);
  forge(f, 1, "none", "", false);
  write_batch(f, f->sg, parts, 1, "client_token.updated");
  k = judge(f, 0, f->n, 0, o, 32);
  assert_int_equal(k, 8);
  assert_int_equal(o[j].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[j].detail, "does not link"));
  assert_int_equal(o[j + 1].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[j + 1].detail, "replay"));
  assert_int_equal(o[6].verdict, CTKN_GATE_APPLY);
}

static void
test_edited_or_duplicated_covered_headers_are_quarantined(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[32];
  const int32_t parts[] = {0};
  size_t k, a, b;

  write_batch(f, f->sg, parts, 1, "client_token.created");
  a = forge(f, 0, CTKN_HDR_SCHEMA, "2", false); /* edited */
  b = forge(f, 0, CTKN_HDR_EVENT_TYPE, "client_token.revoked", true);
  /* The edited record would need a relink, and a relink still needs a
   * checkpoint; the duplicate is refused before any link. */
  write_batch(f, f->sg, parts, 1, "client_token.updated");
  k = judge(f, 0, f->n, 0, o, 32);
  assert_int_equal(k, 6);
  assert_int_equal(o[a].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[a].detail, "does not link"));
  assert_int_equal(o[b].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[b].detail, "twice"));
  assert_int_equal(o[4].verdict, CTKN_GATE_APPLY);
}

static void test_keys_unknown_revoked_or_out_of_scope(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[32];
  const int32_t parts[] = {0};
  ctkn_signer *stranger, *rogue;
  size_t k;

  /* A key the keyring does not have. */
  assert_int_equal(
      ctkn_signer_open(&stranger, f->other, f->kr.log_id, NPARTS, NULL),
      CTKN_OK);
  write_batch(f, stranger, parts, 1, "client_token.created");
  /* A known key writing outside its scope (another instance: the chain
   * of an instance that did so does not link on). */
  assert_int_equal(ctkn_signer_open(&rogue, f->sk, f->kr.log_id, NPARTS, NULL),
                   CTKN_OK);
  write_batch(f, rogue, parts, 1, "notification.delivered");
  /* An unsigned record. */
  append(f, &(struct ctkn_log_record){.partition = 0,
                                      .key = "k",
                                      .klen = 1,
                                      .value = "v",
                                      .vlen = 1,
                                      .event_type = "client_token.created",
                                      .schema_version = 1});
  write_batch(f, f->sg, parts, 1, "client_token.created");
  k = judge(f, 0, f->n, 0, o, 32);
  assert_int_equal(k, 7);
  assert_non_null(strstr(o[0].detail, "not in the keyring"));
  assert_non_null(strstr(o[1].detail, "checkpoint"));
  assert_non_null(strstr(o[2].detail, "may not write"));
  assert_int_equal(o[3].verdict, CTKN_GATE_QUARANTINE); /* nothing to cover */
  assert_non_null(strstr(o[4].detail, "unsigned"));
  assert_int_equal(o[5].verdict, CTKN_GATE_APPLY);
  assert_int_equal(o[6].verdict, CTKN_GATE_CHECKPOINT);
  /* Revoked: the same key's records are refused from then on. */
  f->kr.keys[0].revoked = true;
  write_batch(f, f->sg, parts, 1, "client_token.created");
  k = judge(f, 7, f->n, 0, o, 32);
  assert_int_equal(count(o, k, CTKN_GATE_QUARANTINE), 2);
  assert_non_null(strstr(o[0].detail, "revoked"));
  ctkn_signer_close(stranger);
  ctkn_signer_close(rogue);
}

static void test_an_instance_too_far_ahead_gives_up_its_pending(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[8];
  struct ctkn_log_record in[16], *out;
  size_t nout, k, nrec = 0;

  /* A writer whose checkpoints never reach the log. */
  for (size_t b = 0; b <= CTKN_GATE_MAX_AHEAD / 16 + 1; b++) {
    for (size_t i = 0; i < 16; i++)
      in[i] = (struct ctkn_log_record){.partition = 1,
                                       .value = "v",
                                       .vlen = 1,
                                       .event_type = "client_token.created",
                                       .schema_version = 1};
    assert_int_equal(
        ctkn_signer_prepare(f->sg, in, 16, 0, f->now_us, &out, &nout, NULL),
        CTKN_OK);
    for (size_t i = 0; i < 16; i++, nrec++)
      append(f, &out[i]);
    assert_int_equal(ctkn_signer_done(f->sg, true, NULL), CTKN_OK);
  }
  k = judge(f, 0, f->n, 1, o, 8);
  assert_true(k >= 1);
  assert_int_equal(o[0].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[0].detail, "never checkpointed"));
}

static const char *writer_of_rec(const struct rec *x)
{
  for (size_t k = 0; k < x->m.nheaders; k++)
    if (strcmp(x->names[k], CTKN_HDR_WRITER) == 0)
      return x->vals[k];
  return "";
}

/* Whether log[i] is a checkpoint with a later one of its instance on its
 * partition: the projector feeds those lazily. */
static bool lazy_at(const struct fixture *f, size_t i)
{
  const struct rec *x = &f->log[i];

  if (strcmp(x->m.event_type, CTKN_TYPE_CHECKPOINT) != 0)
    return false;
  for (size_t j = i + 1; j < f->n; j++)
    if (f->log[j].m.partition == x->m.partition &&
        strcmp(f->log[j].m.event_type, CTKN_TYPE_CHECKPOINT) == 0 &&
        strcmp(writer_of_rec(&f->log[j]), writer_of_rec(x)) == 0)
      return true;
  return false;
}

/* Feed log[from..to) of partition p, each checkpoint but the newest of its
 * ctkn-writer header in that range lazily (a projector's read batch). */
static size_t judge_lazily_range(struct fixture *f, size_t from, size_t to,
                                 int32_t p, struct ctkn_gate_out *outs,
                                 size_t max)
{
  size_t k = 0, n = f->n;

  f->n = to; /* lazy_at() looks no further than the batch */
  for (size_t i = from; i < to; i++) {
    const struct ctkn_log_msg *m = &f->log[i].m;
    if (m->partition != p)
      continue;
    assert_int_equal(lazy_at(f, i) ? ctkn_gate_feed_lazy(f->gate, m, i, NULL)
                                   : ctkn_gate_feed(f->gate, m, i, NULL),
                     CTKN_OK);
  }
  f->n = n;
  while (k < max && ctkn_gate_next(f->gate, p, &outs[k]))
    k++;
  return k;
}

/* Feed log[0..n) of partition p with every checkpoint but the newest of
 * its instance lazy, as the projector does; collect the verdicts. */
static size_t judge_lazily(struct fixture *f, int32_t p,
                           struct ctkn_gate_out *outs, size_t max)
{
  return judge_lazily_range(f, 0, f->n, p, outs, max);
}

/* A copy of checkpoint record i whose signature no longer holds. */
static size_t forge_signature(struct fixture *f, size_t i)
{
  struct ctkn_signed sg;
  uint8_t *val;
  size_t len, j;

  assert_int_equal(
      ctkn_signed_decode(f->log[i].m.value, f->log[i].m.value_len, &sg, NULL),
      CTKN_OK);
  sg.signature[0] ^= 1;
  assert_int_equal(ctkn_signed_encode(&sg, &val, &len, NULL), CTKN_OK);
  j = append(f,
             &(struct ctkn_log_record){.partition = f->log[i].m.partition,
                                       .value = val,
                                       .vlen = len,
                                       .timestamp_ms = f->log[i].m.timestamp_ms,
                                       .headers = f->log[i].h,
                                       .nheaders = f->log[i].m.nheaders});
  free(val);
  ctkn_signed_free(&sg);
  return j;
}

static void reopen(struct fixture *f)
{
  ctkn_gate_close(f->gate);
  assert_int_equal(ctkn_gate_open(&f->gate, &f->kr, NPARTS, NULL), CTKN_OK);
}

static void test_lazy_checkpoints_are_proven_by_the_newest(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out a[32], b[32];
  const int32_t parts[] = {0};
  size_t ka, kb;
  int64_t at;

  for (int i = 0; i < 4; i++)
    write_batch(f, f->sg, parts, 1, "client_token.created");
  ka = judge(f, 0, f->n, 0, a, 32); /* every signature verified */
  at = ctkn_gate_checkpoint_at(f->gate, 0);
  reopen(f);
  kb = judge_lazily(f, 0, b, 32); /* only the newest */
  assert_int_equal(ka, 8);
  assert_int_equal(kb, 8);
  for (size_t i = 0; i < ka; i++)
    assert_int_equal(a[i].verdict, b[i].verdict);
  assert_int_equal(count(b, kb, CTKN_GATE_APPLY), 4);
  assert_true(ctkn_gate_checkpoint_at(f->gate, 0) == at);
}

static void test_a_forged_checkpoint_is_judged_alike_lazily_or_not(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out a[32], b[32];
  const int32_t parts[] = {0};
  size_t ka, kb, forged;

  write_batch(f, f->sg, parts, 1, "client_token.created"); /* 0, cp 1 */
  forged = forge_signature(f, 1);                          /* 2 */
  write_batch(f, f->sg, parts, 1, "client_token.revoked"); /* 3, cp 4 */
  ka = judge(f, 0, f->n, 0, a, 32);
  reopen(f);
  kb = judge_lazily(f, 0, b, 32);
  assert_int_equal(ka, 5);
  assert_int_equal(kb, 5);
  for (size_t i = 0; i < ka; i++) {
    assert_int_equal(a[i].verdict, b[i].verdict);
    assert_string_equal(a[i].reason, b[i].reason);
  }
  assert_int_equal(a[forged].verdict, CTKN_GATE_QUARANTINE);
  assert_int_equal(a[3].verdict, CTKN_GATE_APPLY);
}

static void test_many_lazy_checkpoints_in_one_batch(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[64];
  const int32_t parts[] = {1};
  size_t k, total = 0;
  int quarantined = 0;

  /* More commands than CTKN_GATE_MAX_AHEAD in one read batch, each with
   * its checkpoint: all but the last wait for the last's proof, and none
   * is given up as never checkpointed. */
  for (int i = 0; i < CTKN_GATE_MAX_AHEAD + 200; i++)
    write_batch(f, f->sg, parts, 1, "client_token.created");
  (void)judge_lazily(f, 1, o, 0);
  while ((k = 0, ctkn_gate_next(f->gate, 1, &o[0]))) {
    total++;
    quarantined += o[0].verdict == CTKN_GATE_QUARANTINE;
  }
  assert_int_equal(total, 2 * (CTKN_GATE_MAX_AHEAD + 200));
  assert_int_equal(quarantined, 0);
  (void)k;
}

static void
test_a_claimed_record_outlives_other_writers_checkpoints(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out a[32], b[32];
  const int32_t parts[] = {0};
  ctkn_signer *other;
  size_t ka, kb;

  assert_int_equal(ctkn_signer_open(&other, f->sk, f->kr.log_id, NPARTS, NULL),
                   CTKN_OK);
  write_batch(f, f->sg, parts, 1, "client_token.created"); /* 0, cp 1 */
  f->now_us += 2 * CTKN_GATE_GRACE_US; /* another writer, 2 s later */
  write_batch(f, other, parts, 1, "client_token.created"); /* 2, cp 3 */
  write_batch(f, f->sg, parts, 1, "client_token.revoked"); /* 4, cp 5 */
  ka = judge(f, 0, f->n, 0, a, 32);
  reopen(f);
  kb = judge_lazily(f, 0, b, 32); /* cp 1 waits for cp 5's proof */
  assert_int_equal(ka, 6);
  assert_int_equal(kb, 6);
  for (size_t i = 0; i < ka; i++)
    assert_int_equal(a[i].verdict, b[i].verdict);
  assert_int_equal(b[0].verdict, CTKN_GATE_APPLY);
  ctkn_signer_close(other);
}

static void test_a_forged_newest_checkpoint_hides_nothing(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[32];
  const int32_t parts[] = {0};
  size_t k;

  write_batch(f, f->sg, parts, 1, "client_token.revoked"); /* 0, cp 1 */
  forge_signature(f, 1); /* 2: appended to be the newest of its batch */
  k = judge_lazily(f, 0, o, 32);
  /* The genuine one, lazy, is verified when the newest fails. */
  assert_int_equal(k, 2);
  assert_int_equal(o[0].verdict, CTKN_GATE_APPLY);
  assert_int_equal(o[1].verdict, CTKN_GATE_CHECKPOINT);
}

/* A record appended under checkpoint i's headers (so the projector makes
 * it the newest of i's instance, the one verified, and i lazy) whose value
 * is v. */
static size_t append_as_checkpoint(struct fixture *f, size_t i, const void *v,
                                   size_t len)
{
  return append(
      f, &(struct ctkn_log_record){.partition = f->log[i].m.partition,
                                   .value = v,
                                   .vlen = len,
                                   .timestamp_ms = f->log[i].m.timestamp_ms,
                                   .headers = f->log[i].h,
                                   .nheaders = f->log[i].m.nheaders});
}

static void
test_a_newest_checkpoint_that_is_no_checkpoint_hides_nothing(void **state)
{
  struct fixture *f = *state;
  struct ctkn_signed sg;
  uint8_t *val;
  size_t len;

  /* Three forms of a newest checkpoint that cannot prove anything: not a
   * signed record at all, one by a signer the keyring does not know, and
   * one whose body is no checkpoint. Each is refused before its instance
   * is known; the genuine one before it, lazy, must still be verified, or
   * its record holds the partition back for good (a dead writer writes no
   * other checkpoint). */
  for (int32_t form = 0; form < 3; form++) {
    const int32_t parts[] = {form}; /* a partition each */
    size_t rec0 = f->n;
    write_batch(f, f->sg, parts, 1, "client_token.revoked");
    if (form == 0) {
      append_as_checkpoint(f, rec0 + 1, "garbage", 7);
    } else {
      assert_int_equal(ctkn_signed_decode(f->log[rec0 + 1].m.value,
                                          f->log[rec0 + 1].m.value_len, &sg,
                                          NULL),
                       CTKN_OK);
      if (form == 1)
        snprintf(sg.signer, sizeof(sg.signer), "%s", "k_nobody");
      else
        sg.body_len = 1; /* a truncated body */
      assert_int_equal(ctkn_signed_encode(&sg, &val, &len, NULL), CTKN_OK);
      append_as_checkpoint(f, rec0 + 1, val, len);
      free(val);
      ctkn_signed_free(&sg);
    }
  }
  for (int32_t form = 0; form < 3; form++) {
    struct ctkn_gate_out o[8];
    assert_int_equal(judge_lazily(f, form, o, 8), 3);
    assert_int_equal(o[0].verdict, CTKN_GATE_APPLY);
    assert_int_equal(o[1].verdict, CTKN_GATE_CHECKPOINT);
    assert_int_equal(o[2].verdict, CTKN_GATE_QUARANTINE);
  }
}

static void test_a_mid_log_reader_anchors_at_a_batch(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[32];
  const int32_t parts[] = {2};
  size_t k;

  for (int i = 0; i < 3; i++) /* r 0, cp 1; r 2, cp 3; r 4, cp 5 */
    write_batch(f, f->sg, parts, 1, "client_token.created");
  /* From its second batch on: all of it verifies. */
  reopen(f);
  ctkn_gate_set_midstream(f->gate);
  k = judge(f, 2, f->n, 2, o, 32);
  assert_int_equal(k, 4);
  assert_int_equal(count(o, k, CTKN_GATE_APPLY), 2);
  assert_int_equal(count(o, k, CTKN_GATE_QUARANTINE), 0);
  /* From inside its first batch (its checkpoint, not its record): that
   * checkpoint cannot be anchored; the next batches can. */
  reopen(f);
  ctkn_gate_set_midstream(f->gate);
  k = judge(f, 1, f->n, 2, o, 32);
  assert_int_equal(k, 5);
  assert_int_equal(o[0].verdict, CTKN_GATE_QUARANTINE);
  assert_int_equal(count(o, k, CTKN_GATE_APPLY), 2);
  /* A stateful reader does not anchor mid-log: the same records do not
   * link. */
  reopen(f);
  k = judge(f, 2, f->n, 2, o, 32);
  assert_int_equal(o[0].verdict, CTKN_GATE_QUARANTINE);
}

/* ---- an adopted prefix (trust.h, "adoption") ------------------------------
 */

/* An unsigned record on partition p, as a writer before signing made it. */
static size_t append_unsigned(struct fixture *f, int32_t p, const char *value)
{
  static const struct ctkn_log_header h[2] = {
      {CTKN_HDR_EVENT_TYPE, "client_token.created", 20},
      {CTKN_HDR_SCHEMA, "1", 1}};
  struct ctkn_log_record r = {.partition = p,
                              .key = "ctkn_old",
                              .klen = 8,
                              .value = value,
                              .vlen = strlen(value),
                              .timestamp_ms = 1,
                              .headers = h,
                              .nheaders = 2};
  return append(f, &r);
}

static void test_an_adopted_prefix_is_applied_and_only_it(void **state)
{
  struct fixture *f = *state;
  struct ctkn_gate_out o[16];
  const int32_t zero[] = {0};
  size_t k;

  append_unsigned(f, 0, "old 0");
  append_unsigned(f, 0, "old 1");
  append_unsigned(f, 0, "after the adoption");
  write_batch(f, f->sg, zero, 1, "client_token.created");
  ctkn_gate_adopt(f->gate, 0, 2);
  k = judge(f, 0, f->n, 0, o, 16);
  assert_int_equal(k, 5);
  assert_int_equal(o[0].verdict, CTKN_GATE_APPLY);
  assert_int_equal(o[1].verdict, CTKN_GATE_APPLY);
  assert_int_equal(o[2].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[2].reason, "unsigned"));
  assert_int_equal(o[3].verdict, CTKN_GATE_APPLY); /* signed, as ever */
  assert_int_equal(o[4].verdict, CTKN_GATE_CHECKPOINT);
  /* Only the partition named: partition 1's unsigned record is refused. */
  size_t one = append_unsigned(f, 1, "old on 1");
  k = judge(f, one, f->n, 1, o, 16);
  assert_int_equal(k, 1);
  assert_int_equal(o[0].verdict, CTKN_GATE_QUARANTINE);
  /* Kept across a clear (a reload of the partition's state). */
  ctkn_gate_clear(f->gate, 0);
  assert_int_equal(ctkn_gate_feed(f->gate, &f->log[0].m, 0, NULL), CTKN_OK);
  assert_true(ctkn_gate_next(f->gate, 0, &o[0]));
  assert_int_equal(o[0].verdict, CTKN_GATE_APPLY);
}

/* The adoption hash of log[from..to) under log_id on partition 0. */
static void prefix_hash(struct fixture *f, size_t from, size_t to,
                        const uint8_t *log_id, uint8_t out[CTKN_CHAIN_LEN])
{
  ctkn_sha256 *h = ctkn_trust_adopt_begin(log_id, 0);

  assert_non_null(h);
  for (size_t i = from; i < to; i++)
    ctkn_trust_adopt_add(h, &f->log[i].m);
  ctkn_trust_adopt_end(h, out);
}

static void test_the_adoption_hash_covers_every_byte(void **state)
{
  struct fixture *f = *state;
  uint8_t a[CTKN_CHAIN_LEN], b[CTKN_CHAIN_LEN], other[CTKN_LOG_ID_LEN];

  append_unsigned(f, 0, "one");
  append_unsigned(f, 0, "two");
  prefix_hash(f, 0, 2, f->kr.log_id, a);
  prefix_hash(f, 0, 2, f->kr.log_id, b);
  assert_memory_equal(a, b, CTKN_CHAIN_LEN); /* a function of the records */
  memset(other, 1, sizeof(other));
  prefix_hash(f, 0, 2, other, b); /* another log */
  assert_memory_not_equal(a, b, CTKN_CHAIN_LEN);
  prefix_hash(f, 0, 1, f->kr.log_id, b); /* one record fewer */
  assert_memory_not_equal(a, b, CTKN_CHAIN_LEN);
  f->log[1].value[0] ^= 1; /* a value */
  prefix_hash(f, 0, 2, f->kr.log_id, b);
  assert_memory_not_equal(a, b, CTKN_CHAIN_LEN);
  f->log[1].value[0] ^= 1;
  f->log[1].vals[1][0] = '2'; /* a header (schema version) */
  prefix_hash(f, 0, 2, f->kr.log_id, b);
  assert_memory_not_equal(a, b, CTKN_CHAIN_LEN);
  f->log[1].vals[1][0] = '1';
  f->log[1].m.offset = 7; /* the position */
  prefix_hash(f, 0, 2, f->kr.log_id, b);
  assert_memory_not_equal(a, b, CTKN_CHAIN_LEN);
}

/* ---- positional revocation ------------------------------------------------
 */

/* The root-signed keyring kr as a ctkn.keyring record on partition p. */
static size_t append_keyring(struct fixture *f, const ctkn_seckey *root,
                             const struct ctkn_keyring *kr, int32_t p)
{
  struct ctkn_log_header h = {CTKN_HDR_EVENT_TYPE, CTKN_TYPE_KEYRING,
                              strlen(CTKN_TYPE_KEYRING)};
  uint8_t *val;
  size_t len, i;

  assert_int_equal(ctkn_trust_keyring_value(root, kr, &val, &len, NULL),
                   CTKN_OK);
  i = append(f, &(struct ctkn_log_record){.partition = p,
                                          .key = "keyring",
                                          .klen = 7,
                                          .value = val,
                                          .vlen = len,
                                          .timestamp_ms = f->now_us / 1000,
                                          .headers = &h,
                                          .nheaders = 1});
  free(val);
  return i;
}

/* One replica: a gate judging partition 0 of log[0..f->n) with the
 * settings keyring it holds switched from before to after once it has
 * fed `switch_at` records (its read timing), read in batches of `batch`
 * records, saved and loaded (a restart) after each batch. */
static size_t replica(struct fixture *f, const ctkn_pubkey *root,
                      const struct ctkn_keyring *before,
                      const struct ctkn_keyring *after, size_t switch_at,
                      size_t batch, struct ctkn_gate_out *o, size_t max)
{
  ctkn_gate *g;
  size_t k = 0;

  assert_int_equal(ctkn_gate_open(&g, before, NPARTS, NULL), CTKN_OK);
  ctkn_gate_set_root(g, root);
  for (size_t i = 0; i < f->n; i++) {
    if (i == switch_at)
      ctkn_gate_set_keyring(g, after);
    if (f->log[i].m.partition == 0)
      assert_int_equal(ctkn_gate_feed(g, &f->log[i].m, i, NULL), CTKN_OK);
    if ((i + 1) % batch == 0 || i + 1 == f->n) {
      uint8_t *buf;
      size_t len;
      ctkn_gate *g2;
      while (k < max && ctkn_gate_next(g, 0, &o[k]))
        k++;
      if (ctkn_gate_held(g, 0, &(int64_t){0}) > 0)
        continue; /* a restart re-reads what is held: keep it simple */
      assert_int_equal(ctkn_gate_save(g, 0, &buf, &len, NULL), CTKN_OK);
      assert_int_equal(
          ctkn_gate_open(&g2, i + 1 > switch_at ? after : before, NPARTS, NULL),
          CTKN_OK);
      ctkn_gate_set_root(g2, root);
      assert_int_equal(ctkn_gate_load(g2, 0, buf, len, NULL), CTKN_OK);
      assert_int_equal(ctkn_gate_keyring_version(g2, 0),
                       ctkn_gate_keyring_version(g, 0));
      free(buf);
      ctkn_gate_close(g);
      g = g2;
    }
  }
  ctkn_gate_close(g);
  return k;
}

static void test_a_revocation_counts_from_its_position(void **state)
{
  struct fixture *f = *state;
  struct ctkn_keyring revoked;
  struct ctkn_gate_out o[32], ref[32];
  const int32_t parts[] = {0, 0};
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  ctkn_seckey *root;
  ctkn_pubkey *rp;
  size_t k, kref, kr_at;

  assert_int_equal(ctkn_seckey_generate(&root, NULL), CTKN_OK);
  ctkn_seckey_public(root, pub);
  assert_int_equal(ctkn_pubkey_new(&rp, pub, NULL), CTKN_OK);
  ctkn_keyring_init(&revoked);
  assert_int_equal(ctkn_keyring_copy(&revoked, &f->kr, NULL), CTKN_OK);
  revoked.version = 2;
  revoked.keys[0].revoked = true;
  /* Version 1 placed, the key writes, the revoke is placed while it is
   * still writing (its next batch lands after it), and it writes on. */
  append_keyring(f, root, &f->kr, 0);                      /* 0 */
  write_batch(f, f->sg, parts, 2, "client_token.created"); /* 1, 2, cp 3 */
  kr_at = append_keyring(f, root, &revoked, 0);            /* 4 */
  write_batch(f, f->sg, parts, 2, "client_token.updated"); /* 5, 6, cp 7 */
  /* The replica that read the settings revoke last. */
  kref = replica(f, rp, &f->kr, &revoked, f->n, f->n, ref, 32);
  assert_int_equal(kref, 8);
  assert_int_equal(ref[0].verdict, CTKN_GATE_CHECKPOINT);
  for (size_t i = 1; i < 3; i++) /* signed before the revoke's position */
    assert_int_equal(ref[i].verdict, CTKN_GATE_APPLY);
  assert_int_equal(ref[3].verdict, CTKN_GATE_CHECKPOINT);
  assert_int_equal(ref[kr_at].verdict, CTKN_GATE_CHECKPOINT);
  for (size_t i = 5; i < 8; i++) { /* after it */
    assert_int_equal(ref[i].verdict, CTKN_GATE_QUARANTINE);
    assert_non_null(strstr(ref[i].reason, "not signed by an active key") ||
                            strstr(ref[i].reason, "revoked")
                        ? ref[i].reason
                        : NULL);
  }
  /* Every other read timing: the settings revoke read at each record,
   * in batches of each size, with restarts between them. */
  for (size_t sw = 0; sw <= f->n; sw++)
    for (size_t batch = 1; batch <= f->n; batch++) {
      k = replica(f, rp, &f->kr, &revoked, sw, batch, o, 32);
      assert_int_equal(k, kref);
      for (size_t i = 0; i < k; i++) {
        assert_int_equal(o[i].verdict, ref[i].verdict);
        assert_int_equal(o[i].offset, ref[i].offset);
        assert_string_equal(o[i].reason, ref[i].reason);
      }
    }
  /* Revoked retroactively (a newer settings keyring): a projection built
   * after it (a rebuild, a new replica) refuses what the key signed
   * before the revoke's position too. */
  revoked.version = 3;
  revoked.keys[0].retroactive = true;
  ctkn_gate_set_keyring(f->gate, &revoked);
  ctkn_gate_set_root(f->gate, rp);
  k = judge(f, 0, f->n, 0, o, 32);
  assert_int_equal(k, kref);
  for (size_t i = 1; i < 3; i++)
    assert_int_equal(o[i].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[1].reason, "revoked"));
  ctkn_gate_set_keyring(f->gate, &f->kr);
  ctkn_keyring_free(&revoked);
  ctkn_pubkey_free(rp);
  ctkn_seckey_free(root);
}

/* A writer's records land before the revoke's position and the checkpoint
 * that would cover them after it: no checkpoint of the key can count from
 * there on, so the revoke gives them up at once (never checkpointed), the
 * same on every reader, instead of holding the partition back for good. */
static void test_a_revocation_gives_up_what_its_key_never_covered(void **state)
{
  struct fixture *f = *state;
  struct ctkn_keyring revoked;
  struct ctkn_gate_out o[16];
  struct ctkn_log_record in[2], *out;
  char vals[2][16];
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  ctkn_seckey *root;
  ctkn_pubkey *rp;
  size_t nout, k;
  int64_t first;

  assert_int_equal(ctkn_seckey_generate(&root, NULL), CTKN_OK);
  ctkn_seckey_public(root, pub);
  assert_int_equal(ctkn_pubkey_new(&rp, pub, NULL), CTKN_OK);
  ctkn_keyring_init(&revoked);
  assert_int_equal(ctkn_keyring_copy(&revoked, &f->kr, NULL), CTKN_OK);
  revoked.version = 2;
  revoked.keys[0].revoked = true;
  append_keyring(f, root, &f->kr, 0); /* 0 */
  for (size_t i = 0; i < 2; i++) {
    snprintf(vals[i], sizeof(vals[i]), "value %zu", i);
    in[i] = (struct ctkn_log_record){.partition = 0,
                                     .key = "ctkn_x",
                                     .klen = 6,
                                     .value = vals[i],
                                     .vlen = strlen(vals[i]),
                                     .timestamp_ms = f->now_us / 1000,
                                     .event_type = "client_token.created",
                                     .schema_version = 1};
  }
  f->now_us += 1000;
  assert_int_equal(
      ctkn_signer_prepare(f->sg, in, 2, 0, f->now_us, &out, &nout, NULL),
      CTKN_OK);
  assert_int_equal(nout, 3);
  append(f, &out[0]);                   /* 1 */
  append(f, &out[1]);                   /* 2 */
  append_keyring(f, root, &revoked, 0); /* 3: the revoke lands between */
  append(f, &out[2]);                   /* 4: the checkpoint, too late */
  assert_int_equal(ctkn_signer_done(f->sg, true, NULL), CTKN_OK);
  for (size_t batch = 1; batch <= f->n; batch++) {
    k = replica(f, rp, &f->kr, &f->kr, f->n, batch, o, 16);
    assert_int_equal(k, 5);
    assert_int_equal(o[0].verdict, CTKN_GATE_CHECKPOINT);
    assert_int_equal(o[1].verdict, CTKN_GATE_QUARANTINE);
    assert_int_equal(o[2].verdict, CTKN_GATE_QUARANTINE);
    assert_string_equal(o[1].reason, CTKN_GATE_UNPROVEN);
    assert_int_equal(o[3].verdict, CTKN_GATE_CHECKPOINT);
    assert_int_equal(o[4].verdict, CTKN_GATE_QUARANTINE);
  }
  /* Fed at once: nothing is held back either. */
  ctkn_gate_set_root(f->gate, rp);
  assert_int_equal(judge(f, 0, f->n, 0, o, 16), 5);
  assert_int_equal(ctkn_gate_held(f->gate, 0, &first), 0);
  ctkn_keyring_free(&revoked);
  ctkn_pubkey_free(rp);
  ctkn_seckey_free(root);
}

static void test_a_positional_keyring_must_be_the_roots_and_newer(void **state)
{
  struct fixture *f = *state;
  struct ctkn_keyring v2, other_log;
  struct ctkn_gate_out o[32];
  const int32_t parts[] = {0};
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  ctkn_seckey *root;
  ctkn_pubkey *rp;
  size_t k;

  assert_int_equal(ctkn_seckey_generate(&root, NULL), CTKN_OK);
  ctkn_seckey_public(root, pub);
  assert_int_equal(ctkn_pubkey_new(&rp, pub, NULL), CTKN_OK);
  ctkn_keyring_init(&v2);
  ctkn_keyring_init(&other_log);
  assert_int_equal(ctkn_keyring_copy(&v2, &f->kr, NULL), CTKN_OK);
  assert_int_equal(ctkn_keyring_copy(&other_log, &f->kr, NULL), CTKN_OK);
  v2.version = 2;
  other_log.version = 9;
  other_log.keys[0].revoked = true;
  memset(other_log.log_id, 0x11, CTKN_LOG_ID_LEN);
  append_keyring(f, root, &v2, 0);            /* 0: applied */
  append_keyring(f, root, &f->kr, 0);         /* 1: version 1 after 2 */
  append_keyring(f, f->other, &other_log, 0); /* 2: not the root's */
  append_keyring(f, root, &other_log, 0);     /* 3: another log's */
  append_keyring(f, root, &v2, 0);            /* 4: the same again */
  write_batch(f, f->sg, parts, 1, "client_token.created"); /* 5, cp 6 */
  /* Without the root the gate cannot verify one. */
  k = judge(f, 0, 1, 0, o, 32);
  assert_int_equal(k, 1);
  assert_int_equal(o[0].verdict, CTKN_GATE_QUARANTINE);
  assert_non_null(strstr(o[0].reason, "no trust root"));
  ctkn_gate_clear(f->gate, 0);
  ctkn_gate_set_root(f->gate, rp);
  k = judge(f, 0, f->n, 0, o, 32);
  assert_int_equal(k, 7);
  assert_int_equal(o[0].verdict, CTKN_GATE_CHECKPOINT);
  assert_non_null(strstr(o[1].reason, "older than version 2"));
  assert_non_null(strstr(o[2].reason, "not signed by the trust root"));
  assert_non_null(strstr(o[3].reason, "another log"));
  assert_int_equal(o[4].verdict, CTKN_GATE_CHECKPOINT);
  assert_int_equal(o[5].verdict, CTKN_GATE_APPLY);
  assert_int_equal(o[6].verdict, CTKN_GATE_CHECKPOINT);
  assert_int_equal(ctkn_gate_keyring_version(f->gate, 0), 2);
  assert_int_equal(ctkn_gate_keyring_version(f->gate, 1), 0);
  ctkn_gate_clear(f->gate, 0); /* rebuild: back to none */
  assert_int_equal(ctkn_gate_keyring_version(f->gate, 0), 0);
  ctkn_keyring_free(&v2);
  ctkn_keyring_free(&other_log);
  ctkn_pubkey_free(rp);
  ctkn_seckey_free(root);
}

static void test_a_state_saved_before_positional_keyrings_loads(void **state)
{
  struct fixture *f = *state;
  /* The old form: magic 'c', no instances, a checkpoint time. */
  uint8_t old[17] = {0x63};
  uint8_t *buf;
  size_t len;

  old[16] = 42;
  assert_int_equal(ctkn_gate_load(f->gate, 1, old, sizeof(old), NULL), CTKN_OK);
  assert_int_equal(ctkn_gate_checkpoint_at(f->gate, 1), 42);
  assert_int_equal(ctkn_gate_keyring_version(f->gate, 1), 0);
  assert_int_equal(ctkn_gate_saved_checkpoint_at(old, sizeof(old)), 42);
  /* Saved again in the new form. */
  assert_int_equal(ctkn_gate_save(f->gate, 1, &buf, &len, NULL), CTKN_OK);
  assert_int_equal(len, 21);
  assert_int_equal(buf[0], 0x64);
  free(buf);
}

/* ---- attacks by appending copies (review) -------------------------------- */

/* A heartbeat (sequence 0, nothing written) of a new instance on partition
 * 0, appended; returns its index. *sg gets the instance (close it). */
static size_t append_heartbeat(struct fixture *f, ctkn_signer **sg)
{
  struct ctkn_log_record *out;
  size_t nout, at = (size_t)-1;

  assert_int_equal(ctkn_signer_open(sg, f->sk, f->kr.log_id, NPARTS, NULL),
                   CTKN_OK);
  f->now_us += 1000;
  assert_int_equal(ctkn_signer_prepare(*sg, NULL, 0, CTKN_SIGN_HEARTBEAT,
                                       f->now_us, &out, &nout, NULL),
                   CTKN_OK);
  for (size_t i = 0; i < nout; i++)
    if (out[i].partition == 0)
      at = append(f, &out[i]);
  assert_int_equal(ctkn_signer_done(*sg, true, NULL), CTKN_OK);
  assert_true(at != (size_t)-1);
  return at;
}

/* A projector pass: the state saved, a new gate loaded from it (as every
 * pass of ctkn__ptrust_judge() does). */
static void next_pass(struct fixture *f, int32_t p)
{
  uint8_t *buf;
  size_t len;

  assert_int_equal(ctkn_gate_save(f->gate, p, &buf, &len, NULL), CTKN_OK);
  reopen(f);
  assert_int_equal(ctkn_gate_load(f->gate, p, buf, len, NULL), CTKN_OK);
  free(buf);
}

/* A copy of another instance's heartbeat (sequence 0: an instance the gate
 * forgets once its queue empties, so its copy verifies and stands) appended
 * under a one-shot writer's ctkn-writer header: the projector makes it the
 * newest checkpoint of that writer and feeds the writer's genuine checkpoint
 * lazily. The copy is a valid checkpoint of the other instance, so nothing
 * verifies the lazy one: the writer's record was held for good and the
 * partition stalled, while a reader verifying every checkpoint applied it. */
static void test_a_heartbeat_copied_under_another_writer_hides_nothing(void **s)
{
  struct fixture *f = *s;
  struct ctkn_gate_out a[8], b[8];
  const int32_t parts[] = {0};
  ctkn_signer *hb;
  size_t h, rec, ka, kb;
  int64_t first;

  h = append_heartbeat(f, &hb);                     /* 0 */
  assert_int_equal(judge(f, 0, h + 1, 0, a, 8), 1); /* an earlier pass */
  assert_int_equal(a[0].verdict, CTKN_GATE_CHECKPOINT);
  next_pass(f, 0);
  rec = f->n;
  write_batch(f, f->sg, parts, 1, "client_token.revoked"); /* 1, cp 2 */
  append_as_checkpoint(f, rec + 1, f->log[h].m.value, f->log[h].m.value_len);
  /* Every checkpoint verified. */
  ka = judge(f, rec, f->n, 0, a, 8);
  assert_int_equal(ka, 3);
  assert_int_equal(a[0].verdict, CTKN_GATE_APPLY);
  assert_int_equal(a[1].verdict, CTKN_GATE_CHECKPOINT);
  /* As a projector reads, pass after pass. */
  reopen(f);
  assert_int_equal(judge(f, 0, h + 1, 0, b, 8), 1);
  for (int pass = 0; pass < 3; pass++) {
    next_pass(f, 0);
    kb = judge_lazily_range(f, rec, f->n, 0, b, 8);
    if (kb == ka)
      break;
    assert_int_equal(kb, 0);
    assert_int_equal(ctkn_gate_held(f->gate, 0, &first), 3);
  }
  assert_int_equal(kb, ka);
  for (size_t i = 0; i < ka; i++) {
    assert_int_equal(a[i].verdict, b[i].verdict);
    assert_string_equal(a[i].reason, b[i].reason);
  }
  ctkn_signer_close(hb);
}

/* The same heartbeat appended again: whether it is a replay must not depend
 * on where a reader's read batches (its passes) ended. */
static void test_a_replayed_heartbeat_is_judged_alike_across_passes(void **s)
{
  struct fixture *f = *s;
  struct ctkn_gate_out a[8], b[8];
  ctkn_signer *hb;
  size_t h, ka, kb;

  h = append_heartbeat(f, &hb);    /* 0 */
  forge(f, h, "none", "", false);  /* 1: the same bytes again */
  ka = judge(f, 0, f->n, 0, a, 8); /* one pass */
  assert_int_equal(ka, 2);
  assert_int_equal(a[0].verdict, CTKN_GATE_CHECKPOINT);
  assert_int_equal(a[1].verdict, CTKN_GATE_QUARANTINE);
  reopen(f); /* a pass ends between them */
  kb = judge(f, 0, 1, 0, b, 8);
  next_pass(f, 0);
  kb += judge(f, 1, f->n, 0, b + kb, 8 - kb);
  assert_int_equal(kb, ka);
  for (size_t i = 0; i < ka; i++) {
    assert_int_equal(a[i].verdict, b[i].verdict);
    assert_string_equal(a[i].reason, b[i].reason);
  }
  ctkn_signer_close(hb);
}

/* The attacker's template: a copy of record 0 (the genuine writer's
 * first, judged), ready to be fed under made-up instances; *key_id its
 * key ID (public). The copy is not left in the log. */
static void made_up_template(struct fixture *f, struct rec *x,
                             char key_id[CTKN_KEY_ID_BUF])
{
  const int32_t parts[] = {0};
  struct ctkn_gate_out a[8];
  size_t g;

  write_batch(f, f->sg, parts, 1, "client_token.created"); /* 0, cp 1 */
  assert_int_equal(judge(f, 0, f->n, 0, a, 8), 2);
  g = forge(f, 0, "none", "", false);
  *x = f->log[g];
  for (size_t j = 0; j < x->m.nheaders; j++)
    x->h[j] = (struct ctkn_log_header){x->names[j], x->vals[j], x->h[j].size};
  x->m.headers = x->h;
  x->m.key = x->key;
  x->m.value = x->value;
  f->n--;
  f->next_off[0]--;
  snprintf(key_id, CTKN_KEY_ID_BUF, "%.*s", 16, writer_of_rec(x));
}

/* x's ctkn-writer header set to "KEY_ID.HEX(id)". */
static void set_writer(struct rec *x, const char *key_id,
                       const uint8_t id[CTKN_INSTANCE_LEN])
{
  char hdr[96];

  snprintf(hdr, sizeof(hdr), "%s.", key_id);
  ctkn_hex(id, CTKN_INSTANCE_LEN, hdr + strlen(hdr));
  for (size_t j = 0; j < x->m.nheaders; j++)
    if (strcmp(x->names[j], CTKN_HDR_WRITER) == 0) {
      snprintf(x->vals[j], sizeof(x->vals[j]), "%s", hdr);
      x->h[j].size = strlen(hdr);
    }
  ctkn_log_msg_note_headers(&x->m);
}

/* A batch of sg's on partition 0, appended and fed to the gate. */
static void feed_batch(struct fixture *f, ctkn_signer *sg)
{
  const int32_t parts[] = {0};
  size_t g = f->n;

  write_batch(f, sg, parts, 1, "client_token.created");
  for (size_t i = g; i < f->n; i++)
    assert_int_equal(ctkn_gate_feed(f->gate, &f->log[i].m, i, NULL), CTKN_OK);
}

/* Partition 0's verdicts: the made-up records' (tags from 100000) are
 * counted in *quarantined, the others kept in out; returns their count. */
static size_t genuine_verdicts(struct fixture *f, struct ctkn_gate_out *out,
                               size_t max, size_t *quarantined)
{
  struct ctkn_gate_out o;
  size_t k = 0;

  *quarantined = 0;
  while (ctkn_gate_next(f->gate, 0, &o)) {
    if (o.tag >= 100000)
      *quarantined += o.verdict == CTKN_GATE_QUARANTINE;
    else if (k < max)
      out[k++] = o;
  }
  return k;
}

/* 4096 records under the genuine key ID and made-up instances (linked:
 * each links to its instance's chain start, and is dated so that the new
 * writer's checkpoint does not yet give it up), then a new writer's batch
 * in the same read batch (linked: then a later one of the genuine writer,
 * by which the made-up ones time out). The genuine records must apply. */
static void made_up_instances(struct fixture *f, bool linked)
{
  struct ctkn_gate_out a[8];
  char key_id[CTKN_KEY_ID_BUF];
  uint8_t id[CTKN_INSTANCE_LEN] = {0}, start[32];
  ctkn_signer *w;
  size_t k, quarantined;
  struct rec x;

  made_up_template(f, &x, key_id);
  if (linked)
    x.m.timestamp_ms = (f->now_us + 10 * CTKN_GATE_GRACE_US) / 1000;
  for (int i = 0; i < 4096; i++) {
    id[14] = (uint8_t)((i + 1) >> 8);
    id[15] = (uint8_t)(i + 1);
    set_writer(&x, key_id, id);
    if (linked) {
      ctkn_trust_chain_start(f->kr.log_id, 0, key_id, id, start);
      relink_rec(f, &x, start);
    }
    x.m.offset = 2 + i;
    assert_int_equal(ctkn_gate_feed(f->gate, &x.m, 100000 + (size_t)i, NULL),
                     CTKN_OK);
  }
  f->next_off[0] = 2 + 4096;
  /* A new writer (a one-shot command) in the same read batch. */
  assert_int_equal(ctkn_signer_open(&w, f->sk, f->kr.log_id, NPARTS, NULL),
                   CTKN_OK);
  feed_batch(f, w);
  if (linked) {
    f->now_us += 20 * CTKN_GATE_GRACE_US; /* later: the forgeries time out */
    feed_batch(f, f->sg);
  }
  k = genuine_verdicts(f, a, 8, &quarantined);
  assert_int_equal(quarantined, 4096);
  assert_int_equal(k, linked ? 4 : 2);
  assert_string_equal(a[0].detail, "");
  assert_int_equal(a[0].verdict, CTKN_GATE_APPLY);
  assert_int_equal(a[1].verdict, CTKN_GATE_CHECKPOINT);
  if (linked)
    assert_int_equal(a[2].verdict, CTKN_GATE_APPLY);
  ctkn_signer_close(w);
}

/* Made-up instances whose records link to nothing filled the partition's
 * instance table (MAX_INSTANCES, 4096) for as long as the gate's queue did
 * not empty: a genuine new instance's record in the same read batch was
 * quarantined ("more than 4096 writer instances"), and applied by a reader
 * whose batch ended before it. */
static void test_made_up_instances_do_not_crowd_out_a_writer(void **s)
{
  made_up_instances(*s, false);
}

/* Made-up instances whose records link to their chains' starts (anyone can
 * compute one: the key ID, the instance and the record's bytes are public)
 * each wait for a checkpoint that never comes: the new writer's record was
 * quarantined on every reader. */
static void test_made_up_linked_instances_do_not_crowd_out_a_writer(void **s)
{
  made_up_instances(*s, true);
}

/* A mid-log reader meets an idle writer at its heartbeat (it anchors the
 * instance at the heartbeat's sequence), then the writer's next batch. The
 * verdicts must not depend on whether the queue emptied between them: a
 * kept heartbeat instance had its anchored head set back to the chain's
 * start, and the batch did not link (review). */
static void test_a_mid_log_reader_anchored_at_a_heartbeat_links_on(void **st)
{
  struct fixture *f = *st;
  struct ctkn_gate_out a[16], b[16];
  struct ctkn_log_record *out;
  const int32_t parts[] = {0};
  size_t nout, hb, ka, kb;

  write_batch(f, f->sg, parts, 1, "client_token.created"); /* r, cp */
  hb = f->n;
  f->now_us += 1000;
  assert_int_equal(ctkn_signer_prepare(f->sg, NULL, 0, CTKN_SIGN_HEARTBEAT,
                                       f->now_us, &out, &nout, NULL),
                   CTKN_OK);
  for (size_t i = 0; i < nout; i++)
    append(f, &out[i]);
  assert_int_equal(ctkn_signer_done(f->sg, true, NULL), CTKN_OK);
  write_batch(f, f->sg, parts, 1, "client_token.revoked"); /* r, cp */
  reopen(f);                                               /* one read batch */
  ctkn_gate_set_midstream(f->gate);
  ka = judge(f, hb, f->n, 0, a, 16);
  assert_int_equal(ka, 3);
  assert_int_equal(a[1].verdict, CTKN_GATE_APPLY);
  reopen(f); /* the queue empties after the heartbeat */
  ctkn_gate_set_midstream(f->gate);
  kb = judge(f, hb, hb + nout, 0, b, 16);
  assert_int_equal(kb, 1);
  kb += judge(f, hb + nout, f->n, 0, b + kb, 16 - kb);
  assert_int_equal(kb, ka);
  for (size_t i = 0; i < ka; i++) {
    assert_int_equal(b[i].verdict, a[i].verdict);
    assert_string_equal(b[i].detail, a[i].detail);
  }
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_what_a_writer_appends_is_applied),
      T(test_a_record_waits_for_its_checkpoint),
      T(test_batches_in_flight_chain_and_a_gap_never_links),
      T(test_a_refused_last_checkpoint_does_not_hold_those_before),
      T(test_a_failed_batch_starts_a_new_instance),
      T(test_state_saved_and_loaded_links_the_next_batch),
      T(test_a_closed_instance_writes_no_more),
      T(test_a_stale_checkpoint_is_refused),
      T(test_a_linked_forgery_without_a_checkpoint_is_quarantined),
      T(test_a_forgery_never_checkpointed_times_out),
      T(test_a_replayed_record_and_checkpoint_are_quarantined),
      T(test_edited_or_duplicated_covered_headers_are_quarantined),
      T(test_keys_unknown_revoked_or_out_of_scope),
      T(test_an_instance_too_far_ahead_gives_up_its_pending),
      T(test_lazy_checkpoints_are_proven_by_the_newest),
      T(test_a_forged_checkpoint_is_judged_alike_lazily_or_not),
      T(test_a_forged_newest_checkpoint_hides_nothing),
      T(test_a_newest_checkpoint_that_is_no_checkpoint_hides_nothing),
      T(test_many_lazy_checkpoints_in_one_batch),
      T(test_a_claimed_record_outlives_other_writers_checkpoints),
      T(test_a_mid_log_reader_anchors_at_a_batch),
      T(test_a_mid_log_reader_anchored_at_a_heartbeat_links_on),
      T(test_an_adopted_prefix_is_applied_and_only_it),
      T(test_the_adoption_hash_covers_every_byte),
      T(test_a_revocation_counts_from_its_position),
      T(test_a_revocation_gives_up_what_its_key_never_covered),
      T(test_a_positional_keyring_must_be_the_roots_and_newer),
      T(test_a_state_saved_before_positional_keyrings_loads),
      T(test_a_heartbeat_copied_under_another_writer_hides_nothing),
      T(test_a_replayed_heartbeat_is_judged_alike_across_passes),
      T(test_made_up_instances_do_not_crowd_out_a_writer),
      T(test_made_up_linked_instances_do_not_crowd_out_a_writer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
