/*
 * test_audit.c - `ctkn audit verify --trust-root` (audit.h): an archive
 * of what a signer appended passes, judged by the root's keyring in a
 * settings archive; each forgery the trust design names (an edited
 * record, a replay, an unsigned record, a record no checkpoint covers, a
 * revoked key, a keyring not signed by the root or of a lower version)
 * fails, naming its partition, offset and rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctkn/audit.h"
#include "ctkn/codec.h"
#include "ctkn/trust.h"

#define NPARTS 3
#define MAXLOG 256
#define MAXHDR 8

struct rec {
  struct ctkn_log_msg m;
  struct ctkn_log_header h[MAXHDR];
  char names[MAXHDR][32];
  char vals[MAXHDR][96];
  char key[64];
  uint8_t value[512];
};

struct fx {
  char dir[64], events[128], settings[128];
  ctkn_seckey *root, *wk, *other;
  uint8_t root_pub[CTKN_SIGN_PUB_LEN];
  struct ctkn_keyring kr;
  ctkn_signer *sg;
  struct rec log[MAXLOG];
  size_t n;
  int64_t next_off[NPARTS];
  int64_t now_us;
  struct ctkn_audit_report r;
  char topic[32]; /* the audited archive's ("" : "t") */
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  struct ctkn_writer_key k = {0};

  assert_non_null(f);
  snprintf(f->dir, sizeof(f->dir), "/tmp/ctkn-audit-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->events, sizeof(f->events), "%s/events.arc", f->dir);
  snprintf(f->settings, sizeof(f->settings), "%s/settings.arc", f->dir);
  assert_int_equal(ctkn_seckey_generate(&f->root, NULL), CTKN_OK);
  assert_int_equal(ctkn_seckey_generate(&f->wk, NULL), CTKN_OK);
  assert_int_equal(ctkn_seckey_generate(&f->other, NULL), CTKN_OK);
  ctkn_seckey_public(f->root, f->root_pub);
  ctkn_keyring_init(&f->kr);
  f->kr.version = 1;
  memset(f->kr.log_id, 0x5a, CTKN_LOG_ID_LEN);
  ctkn_seckey_public(f->wk, k.public_key);
  ctkn_key_id(k.public_key, k.key_id);
  snprintf(k.name, sizeof(k.name), "cli");
  snprintf(k.scopes[0], sizeof(k.scopes[0]), "client_token.*");
  k.nscopes = 1;
  assert_int_equal(ctkn_keyring_add_key(&f->kr, &k, NULL), CTKN_OK);
  assert_int_equal(ctkn_signer_open(&f->sg, f->wk, f->kr.log_id, NPARTS, NULL),
                   CTKN_OK);
  f->now_us = 1700000000000000;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  char cmd[128];

  ctkn_audit_report_free(&f->r);
  ctkn_signer_close(f->sg);
  ctkn_seckey_free(f->root);
  ctkn_seckey_free(f->wk);
  ctkn_seckey_free(f->other);
  ctkn_keyring_free(&f->kr);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

/* Append a copy of r to the log; returns it. */
static struct rec *append(struct fx *f, const struct ctkn_log_record *r)
{
  struct rec *x = &f->log[f->n++];

  assert_true(f->n <= MAXLOG && r->nheaders <= MAXHDR);
  memset(x, 0, sizeof(*x));
  x->m.partition = r->partition;
  x->m.offset = f->next_off[r->partition]++;
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
    snprintf(x->names[i], sizeof(x->names[i]), "%s", r->headers[i].name);
    memcpy(x->vals[i], r->headers[i].value, r->headers[i].size);
    x->h[i] =
        (struct ctkn_log_header){x->names[i], x->vals[i], r->headers[i].size};
  }
  x->m.headers = x->h;
  x->m.nheaders = r->nheaders;
  ctkn_log_msg_note_headers(&x->m);
  return x;
}

/* Append a copy of record x again (the offset is its partition's next). */
static struct rec *again(struct fx *f, const struct rec *x)
{
  struct ctkn_log_record r = {.partition = x->m.partition,
                              .key = x->m.key,
                              .klen = x->m.key_len,
                              .value = x->m.value,
                              .vlen = x->m.value_len,
                              .timestamp_ms = x->m.timestamp_ms,
                              .headers = x->m.headers,
                              .nheaders = x->m.nheaders};
  return append(f, &r);
}

/* A command batch through the signer: its records, then its checkpoints
 * unless with_checkpoints is false. Returns the first record appended. */
static struct rec *write_batch(struct fx *f, const int32_t *parts, size_t n,
                               bool with_checkpoints)
{
  struct ctkn_log_record in[8], *out;
  char keys[8][16], vals[8][32];
  struct rec *first = NULL;
  size_t nout;

  for (size_t i = 0; i < n; i++) {
    snprintf(keys[i], sizeof(keys[i]), "ctkn_%zu", f->n + i);
    snprintf(vals[i], sizeof(vals[i]), "value %zu", f->n + i);
    in[i] = (struct ctkn_log_record){.partition = parts[i],
                                     .key = keys[i],
                                     .klen = strlen(keys[i]),
                                     .value = vals[i],
                                     .vlen = strlen(vals[i]),
                                     .timestamp_ms = f->now_us / 1000,
                                     .event_type = "client_token.created",
                                     .schema_version = 1};
  }
  f->now_us += 1000;
  assert_int_equal(
      ctkn_signer_prepare(f->sg, in, n, 0, f->now_us, &out, &nout, NULL),
      CTKN_OK);
  for (size_t i = 0; i < (with_checkpoints ? nout : n); i++) {
    struct rec *x = append(f, &out[i]);
    if (first == NULL)
      first = x;
  }
  assert_int_equal(ctkn_signer_done(f->sg, true, NULL), CTKN_OK);
  return first;
}

/* The log as an archive at path, partition by partition, by offset. */
static void write_archive(struct fx *f, const char *path, const char *topic)
{
  const int64_t start[NPARTS] = {0};
  ctkn_archive_writer *w;
  struct ctkn_archive_info info;

  assert_int_equal(ctkn_archive_writer_open(&w, path, topic, NPARTS, start,
                                            f->next_off, NULL),
                   CTKN_OK);
  for (int32_t p = 0; p < NPARTS; p++)
    for (int64_t o = 0; o < f->next_off[p]; o++)
      for (size_t i = 0; i < f->n; i++)
        if (f->log[i].m.partition == p && f->log[i].m.offset == o)
          assert_int_equal(
              ctkn_archive_writer_add(w, &f->log[i].m, NULL, 0, NULL), CTKN_OK);
  assert_int_equal(ctkn_archive_writer_finish(w, &info, NULL), CTKN_OK);
  ctkn_archive_info_free(&info);
}

/* A keyring record: kr signed by key (the root, or not). */
static struct ctkn_log_record keyring_record(const ctkn_seckey *key,
                                             const struct ctkn_keyring *kr,
                                             uint8_t **val)
{
  static const struct ctkn_log_header h[1] = {
      {CTKN_HDR_EVENT_TYPE, CTKN_TYPE_KEYRING, sizeof(CTKN_TYPE_KEYRING) - 1}};
  size_t len;

  assert_int_equal(ctkn_trust_keyring_value(key, kr, val, &len, NULL), CTKN_OK);
  return (struct ctkn_log_record){.partition = 0,
                                  .key = "keyring",
                                  .klen = 7,
                                  .value = *val,
                                  .vlen = len,
                                  .headers = h,
                                  .nheaders = 1};
}

/* The settings archive: the keyrings given, in order (moves f's log
 * aside: it is written first). */
static void write_settings(struct fx *f, const struct ctkn_keyring *const *krs,
                           size_t n)
{
  struct fx *s = calloc(1, sizeof(*s));
  uint8_t *val;

  assert_non_null(s);
  for (size_t i = 0; i < n; i++) {
    struct ctkn_log_record r = keyring_record(f->root, krs[i], &val);
    append(s, &r);
    free(val);
  }
  write_archive(s, f->settings, "t_settings");
  free(s);
}

static int audit(struct fx *f, const char *keyring_path)
{
  ctkn_audit_report_free(&f->r);
  unlink(f->events);
  write_archive(f, f->events, f->topic[0] ? f->topic : "t");
  return ctkn_audit_verify(f->events, keyring_path, f->root_pub, &f->r, NULL);
}

/* The failure at p/off, or NULL. */
static const struct ctkn_audit_failure *failure_at(const struct fx *f,
                                                   int32_t p, int64_t off)
{
  for (size_t i = 0; i < f->r.trust.nfailures; i++)
    if (f->r.trust.failures[i].partition == p &&
        f->r.trust.failures[i].offset == off)
      return &f->r.trust.failures[i];
  return NULL;
}

static void genuine(struct fx *f)
{
  const int32_t parts[] = {0, 1, 0};

  write_batch(f, parts, 3, true);
  write_batch(f, parts, 2, true);
}

/* ---- tests ----------------------------------------------------------------
 */

static void test_what_a_signer_appended_passes(void **state)
{
  struct fx *f = *state;
  const struct ctkn_keyring *krs[] = {&f->kr};
  struct ctkn_err err;

  write_settings(f, krs, 1);
  genuine(f);
  assert_int_equal(audit(f, f->settings), CTKN_OK);
  assert_int_equal(f->r.trust.failed, 0);
  assert_int_equal(f->r.trust.proven, 5);
  assert_int_equal(f->r.trust.checkpoints, 4); /* {0,1} twice */
  assert_int_equal(f->r.trust.keyring_version, 1);
  assert_memory_equal(f->r.trust.log_id, f->kr.log_id, CTKN_LOG_ID_LEN);
  assert_int_equal(f->r.info.records, f->n);
  assert_int_equal(ctkn_audit_result(&f->r, &err), CTKN_OK);
  char *json = ctkn_json_audit(f->r.info.topic, f->r.info.partitions,
                               f->r.info.start_offsets, f->r.info.end_offsets,
                               f->r.info.records, "00", &f->r.trust);
  assert_non_null(strstr(json, "\"proven\":5"));
  assert_non_null(strstr(json, "\"failures\":[]"));
  free(json);
}

static void test_an_edited_record_fails_naming_where_and_why(void **state)
{
  struct fx *f = *state;
  const struct ctkn_keyring *krs[] = {&f->kr};
  struct ctkn_err err;

  write_settings(f, krs, 1);
  genuine(f);
  f->log[0].value[0] ^= 1; /* partition 0, offset 0 */
  assert_int_equal(audit(f, f->settings), CTKN_OK);
  assert_true(f->r.trust.failed >= 1);
  assert_int_equal(f->r.trust.failures[0].partition, 0);
  assert_int_equal(f->r.trust.failures[0].offset, 0);
  assert_string_equal(f->r.trust.failures[0].reason, CTKN_GATE_UNPROVEN);
  assert_non_null(strstr(f->r.trust.failures[0].detail, "link"));
  assert_int_equal(ctkn_audit_result(&f->r, &err), CTKN_EDECODE);
  assert_string_equal(err.field, "records");
  assert_non_null(strstr(err.msg, "partition 0 offset 0: not proven"));
  /* partition 1 is untouched */
  for (size_t i = 0; i < f->r.trust.nfailures; i++)
    assert_int_not_equal(f->r.trust.failures[i].partition, 1);
}

static void test_a_replayed_record_and_checkpoint_fail(void **state)
{
  struct fx *f = *state;
  const struct ctkn_keyring *krs[] = {&f->kr};
  const int32_t one[] = {2};

  write_settings(f, krs, 1);
  struct rec *x = write_batch(f, one, 1, true);
  struct rec *r1 = again(f, x);     /* the record again */
  struct rec *r2 = again(f, x + 1); /* its checkpoint again */
  int64_t o1 = r1->m.offset, o2 = r2->m.offset;
  write_batch(f, one, 1, true); /* the next genuine one */
  assert_int_equal(audit(f, f->settings), CTKN_OK);
  assert_int_equal(f->r.trust.failed, 2);
  assert_non_null(failure_at(f, 2, o1));
  assert_non_null(failure_at(f, 2, o2));
  assert_int_equal(f->r.trust.proven, 2);
}

static void test_an_unsigned_record_fails(void **state)
{
  struct fx *f = *state;
  const struct ctkn_keyring *krs[] = {&f->kr};
  struct ctkn_log_record raw = {.partition = 1,
                                .key = "k",
                                .klen = 1,
                                .value = "v",
                                .vlen = 1,
                                .event_type = "client_token.revoked",
                                .schema_version = 1};
  static const struct ctkn_log_header h[2] = {
      {CTKN_HDR_EVENT_TYPE, "client_token.revoked", 20},
      {CTKN_HDR_SCHEMA, "1", 1}};

  write_settings(f, krs, 1);
  genuine(f);
  raw.headers = h;
  raw.nheaders = 2;
  int64_t off = append(f, &raw)->m.offset;
  assert_int_equal(audit(f, f->settings), CTKN_OK);
  assert_int_equal(f->r.trust.failed, 1);
  assert_non_null(strstr(failure_at(f, 1, off)->reason, "unsigned"));
}

static void test_records_no_checkpoint_covers_fail(void **state)
{
  struct fx *f = *state;
  const struct ctkn_keyring *krs[] = {&f->kr};
  const int32_t parts[] = {0, 0};

  write_settings(f, krs, 1);
  genuine(f);
  int64_t off = write_batch(f, parts, 2, false)->m.offset;
  assert_int_equal(audit(f, f->settings), CTKN_OK);
  assert_int_equal(f->r.trust.failed, 2);
  assert_non_null(
      strstr(failure_at(f, 0, off)->reason, "not covered by a checkpoint"));
  assert_non_null(strstr(failure_at(f, 0, off + 1)->detail, "behind offset"));
}

static void test_a_revoked_key_fails_what_it_signed(void **state)
{
  struct fx *f = *state;
  struct ctkn_keyring kr2;

  ctkn_keyring_init(&kr2);
  assert_int_equal(ctkn_keyring_copy(&kr2, &f->kr, NULL), CTKN_OK);
  kr2.version = 2;
  kr2.keys[0].revoked = true;
  const struct ctkn_keyring *krs[] = {&f->kr, &kr2};
  write_settings(f, krs, 2);
  genuine(f);
  assert_int_equal(audit(f, f->settings), CTKN_OK);
  assert_int_equal(f->r.trust.keyring_version, 2);
  assert_int_equal(f->r.trust.proven, 0);
  assert_int_equal(f->r.trust.failed, f->n);
  assert_non_null(strstr(f->r.trust.failures[0].reason, "revoked"));
  ctkn_keyring_free(&kr2);
}

static void test_keyring_records_must_be_the_roots_and_newer(void **state)
{
  struct fx *f = *state;
  struct ctkn_keyring kr2;
  uint8_t *v1, *v2, *forged;

  ctkn_keyring_init(&kr2);
  assert_int_equal(ctkn_keyring_copy(&kr2, &f->kr, NULL), CTKN_OK);
  kr2.version = 2;
  struct ctkn_log_record r1 = keyring_record(f->root, &f->kr, &v1);
  struct ctkn_log_record r2 = keyring_record(f->root, &kr2, &v2);
  struct ctkn_log_record rf = keyring_record(f->other, &kr2, &forged);
  append(f, &r1);
  append(f, &r2);
  int64_t replay = append(f, &r1)->m.offset; /* version 1 again */
  int64_t bad = append(f, &rf)->m.offset;    /* not the root's */
  /* A settings archive judged by its own keyrings (NULL). */
  snprintf(f->topic, sizeof(f->topic), "t_settings");
  assert_int_equal(audit(f, NULL), CTKN_OK);
  assert_int_equal(f->r.trust.keyring_version, 2);
  assert_int_equal(f->r.trust.root_records, 2);
  assert_int_equal(f->r.trust.failed, 2);
  assert_non_null(strstr(failure_at(f, 0, replay)->reason, "lower version"));
  assert_non_null(strstr(failure_at(f, 0, bad)->reason, "not signed"));
  /* On an event topic a keyring record is positional (trust.h): judged
   * in its place as the projector's gate judges it, a lower version and
   * one the root did not sign failing there too. */
  snprintf(f->topic, sizeof(f->topic), "t");
  write_settings(f, (const struct ctkn_keyring *const[]){&kr2}, 1);
  assert_int_equal(audit(f, f->settings), CTKN_OK);
  assert_int_equal(f->r.trust.root_records, 2);
  assert_int_equal(f->r.trust.checkpoints, 0);
  assert_int_equal(f->r.trust.failed, 2);
  assert_non_null(strstr(failure_at(f, 0, replay)->reason, "older"));
  assert_non_null(strstr(failure_at(f, 0, bad)->reason, "not signed"));
  free(v1);
  free(v2);
  free(forged);
  ctkn_keyring_free(&kr2);
}

static void test_no_keyring_is_an_error(void **state)
{
  struct fx *f = *state;
  struct ctkn_err err;

  genuine(f);
  write_archive(f, f->events, "t");
  assert_int_equal(ctkn_audit_verify(f->events, NULL, f->root_pub, &f->r, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "keyring");
  assert_null(f->r.info.start_offsets);
}

/* ---- an adopted prefix -----------------------------------------------------
 */

static struct rec *append_unsigned(struct fx *f, int32_t p, const char *v)
{
  static const struct ctkn_log_header h[2] = {
      {CTKN_HDR_EVENT_TYPE, "client_token.created", 20},
      {CTKN_HDR_SCHEMA, "1", 1}};
  struct ctkn_log_record r = {.partition = p,
                              .key = "ctkn_old",
                              .klen = 8,
                              .value = v,
                              .vlen = strlen(v),
                              .timestamp_ms = 1,
                              .headers = h,
                              .nheaders = 2};
  return append(f, &r);
}

/* The settings archive: the keyring, then the root's adoption of every
 * partition of f's log as it stands. */
static void write_settings_adopting(struct fx *f)
{
  struct ctkn_adopted_partition ap[NPARTS];
  struct ctkn_adoption a = {.nparts = NPARTS, .parts = ap};
  static const struct ctkn_log_header h[1] = {{CTKN_HDR_EVENT_TYPE,
                                               CTKN_TYPE_ADOPTION,
                                               sizeof(CTKN_TYPE_ADOPTION) - 1}};
  struct fx *s = calloc(1, sizeof(*s));
  uint8_t *val;
  size_t len;

  memcpy(a.log_id, f->kr.log_id, CTKN_LOG_ID_LEN);
  snprintf(a.topic, sizeof(a.topic), "t");
  for (int32_t p = 0; p < NPARTS; p++) {
    ctkn_sha256 *hh = ctkn_trust_adopt_begin(f->kr.log_id, p);
    for (size_t i = 0; i < f->n; i++)
      if (f->log[i].m.partition == p)
        ctkn_trust_adopt_add(hh, &f->log[i].m);
    ap[p] = (struct ctkn_adopted_partition){p, f->next_off[p], {0}};
    ctkn_trust_adopt_end(hh, ap[p].records_hash);
  }
  struct ctkn_log_record kr = keyring_record(f->root, &f->kr, &val);
  append(s, &kr);
  free(val);
  assert_int_equal(ctkn_trust_adoption_value(f->root, &a, &val, &len, NULL),
                   CTKN_OK);
  struct ctkn_log_record ar = {.partition = 0,
                               .key = "adoption",
                               .klen = 8,
                               .value = val,
                               .vlen = len,
                               .headers = h,
                               .nheaders = 1};
  append(s, &ar);
  free(val);
  write_archive(s, f->settings, "t_settings");
  free(s);
}

static void test_an_adopted_prefix_passes_and_only_unchanged(void **state)
{
  struct fx *f = *state;
  const int32_t parts[] = {0, 2};

  append_unsigned(f, 0, "old 0");
  append_unsigned(f, 0, "old 1");
  append_unsigned(f, 1, "old 2");
  write_settings_adopting(f);
  write_batch(f, parts, 2, true);
  int64_t late = append_unsigned(f, 2, "after the adoption")->m.offset;
  assert_int_equal(audit(f, f->settings), CTKN_OK);
  assert_int_equal(f->r.trust.adopted, 3);
  assert_int_equal(f->r.trust.proven, 2);
  assert_int_equal(f->r.trust.failed, 1);
  assert_non_null(strstr(failure_at(f, 2, late)->reason, "unsigned"));
  /* A prefix record edited: the adoption no longer holds for partition 0,
   * whose unsigned records then fail; partition 1's still pass. */
  f->log[1].value[0] ^= 1;
  assert_int_equal(audit(f, f->settings), CTKN_OK);
  assert_int_equal(f->r.trust.adopted, 1);
  assert_non_null(strstr(failure_at(f, 0, 2)->reason, "adoption"));
  assert_non_null(strstr(failure_at(f, 0, 0)->reason, "unsigned"));
  assert_non_null(strstr(failure_at(f, 0, 1)->reason, "unsigned"));
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_what_a_signer_appended_passes),
      T(test_an_edited_record_fails_naming_where_and_why),
      T(test_a_replayed_record_and_checkpoint_fail),
      T(test_an_unsigned_record_fails),
      T(test_records_no_checkpoint_covers_fail),
      T(test_a_revoked_key_fails_what_it_signed),
      T(test_keyring_records_must_be_the_roots_and_newer),
      T(test_no_keyring_is_an_error),
      T(test_an_adopted_prefix_passes_and_only_unchanged),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
