/*
 * test_archive.c - the hash-chained audit archive: round trip, the
 * documented framing and hash, determinism, and every kind of tampering.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctkn/archive.h"
#include "ctkn/crypto.h"

#define NREC 5

struct fx {
  char dir[64];
  char path[128];
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  snprintf(f->dir, sizeof(f->dir), "/tmp/ctkn-archive-XXXXXX");
  if (mkdtemp(f->dir) == NULL)
    return -1;
  snprintf(f->path, sizeof(f->path), "%s/a.arc", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
  if (system(cmd) != 0)
    return -1;
  free(f);
  return 0;
}

static const struct ctkn_log_header hdrs[3] = {
    {CTKN_HDR_EVENT_TYPE, "client_token.created", 20},
    {CTKN_HDR_SCHEMA, "1", 1},
    {"x-null", NULL, 0}};

/* Records on partitions 0 and 2 of 3; the one at 2/7 has a null key and
 * no headers. */
static void write_archive(const char *path, struct ctkn_archive_info *info)
{
  static const int32_t part[NREC] = {0, 0, 0, 2, 2};
  static const int64_t off[NREC] = {0, 1, 2, 6, 7};
  const int64_t start[3] = {0, 4, 6}, end[3] = {3, 4, 8};
  ctkn_archive_writer *w;
  struct ctkn_err err;
  char value[32];

  assert_int_equal(
      ctkn_archive_writer_open(&w, path, "audit-topic", 3, start, end, &err),
      CTKN_OK);
  for (int i = 0; i < NREC; i++) {
    snprintf(value, sizeof(value), "value %d", i);
    struct ctkn_log_msg m = {.partition = part[i],
                             .offset = off[i],
                             .timestamp_ms = 1700000000000 + i,
                             .key = i == 4 ? NULL : "key",
                             .key_len = i == 4 ? 0 : 3,
                             .value = value,
                             .value_len = strlen(value)};
    assert_int_equal(ctkn_archive_writer_add(w, &m, i == 4 ? NULL : hdrs,
                                             i == 4 ? 0 : 3, &err),
                     CTKN_OK);
  }
  assert_int_equal(ctkn_archive_writer_finish(w, info, &err), CTKN_OK);
}

struct seen {
  int n;
  struct ctkn_log_msg msgs[NREC];
  char values[NREC][32];
  size_t nh[NREC];
  bool null_third_header;
};

static int collect(void *arg, const struct ctkn_log_msg *msgs,
                   const struct ctkn_archive_headers *h, size_t n,
                   struct ctkn_err *err)
{
  struct seen *s = arg;

  (void)err;
  for (size_t i = 0; i < n && s->n < NREC; i++, s->n++) {
    s->msgs[s->n] = msgs[i];
    snprintf(s->values[s->n], 32, "%.*s", (int)msgs[i].value_len,
             (const char *)msgs[i].value);
    s->nh[s->n] = h[i].n;
    if (h[i].n == 3)
      s->null_third_header = h[i].list[2].value == NULL &&
                             strcmp(h[i].list[2].name, "x-null") == 0;
  }
  return 0;
}

static void test_round_trip_keeps_every_coordinate_and_header(void **state)
{
  struct fx *f = *state;
  struct ctkn_archive_info w, r;
  struct seen s = {0};
  struct ctkn_err err;

  write_archive(f->path, &w);
  assert_int_equal(ctkn_archive_read(f->path, collect, &s, &r, &err), CTKN_OK);
  assert_int_equal(s.n, NREC);
  assert_int_equal(r.records, NREC);
  assert_string_equal(r.topic, "audit-topic");
  assert_int_equal(r.partitions, 3);
  assert_int_equal(r.start_offsets[2], 6);
  assert_int_equal(r.end_offsets[0], 3);
  assert_memory_equal(r.sha256, w.sha256, CTKN_SHA256_LEN);
  assert_int_equal(r.last_timestamp_ms, 1700000000004);
  assert_int_equal(s.msgs[3].partition, 2);
  assert_int_equal(s.msgs[3].offset, 6);
  assert_int_equal(s.msgs[3].timestamp_ms, 1700000000003);
  assert_string_equal(s.values[3], "value 3");
  /* The ctkn headers are read as the consumer reads them. */
  assert_string_equal(s.msgs[0].event_type, "client_token.created");
  assert_int_equal(s.msgs[0].schema_version, 1);
  assert_true(s.null_third_header);
  assert_int_equal(s.nh[4], 0);
  assert_null(s.msgs[4].key);
  assert_int_equal(s.msgs[4].schema_version, -1);
  ctkn_archive_info_free(&w);
  ctkn_archive_info_free(&r);
}

/* The file as docs describe it: varint-framed entries; the archive's hash
 * is SHA-256 of the last entry's bytes; each entry carries the previous
 * entry's hash. Parsed here by hand, independently of the reader. */
static size_t load(const char *path, uint8_t **out)
{
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  rewind(fp);
  *out = malloc((size_t)n);
  assert_int_equal(fread(*out, 1, (size_t)n, fp), (size_t)n);
  fclose(fp);
  return (size_t)n;
}

static void store(const char *path, const uint8_t *b, size_t n)
{
  unlink(path);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(b, 1, n, fp), n);
  fclose(fp);
}

/* Entry boundaries: at[i] where entry i's length starts, body[i] where its
 * message starts, len[i] its message length. */
static int entries(const uint8_t *b, size_t n, size_t *at, size_t *body,
                   size_t *len)
{
  int k = 0;
  for (size_t p = 0; p < n; k++) {
    size_t v = 0;
    int shift = 0;
    at[k] = p;
    do {
      v |= (size_t)(b[p] & 0x7f) << shift;
      shift += 7;
    } while (b[p++] & 0x80);
    body[k] = p;
    len[k] = v;
    p += v;
  }
  return k;
}

static void test_the_hash_is_the_documented_chain(void **state)
{
  struct fx *f = *state;
  struct ctkn_archive_info info;
  size_t at[16], body[16], len[16];
  uint8_t *b, h[CTKN_SHA256_LEN];

  write_archive(f->path, &info);
  size_t n = load(f->path, &b);
  int k = entries(b, n, at, body, len);
  assert_int_equal(k, NREC + 2); /* header, records, trailer */
  ctkn_sha256_once(b + body[k - 1], len[k - 1], h);
  assert_memory_equal(h, info.sha256, CTKN_SHA256_LEN);
  /* Entry 1 starts with field 1 (prev_sha256, 32 bytes) = hash of entry 0. */
  ctkn_sha256_once(b + body[0], len[0], h);
  assert_int_equal(b[body[1]], 0x0a);
  assert_int_equal(b[body[1] + 1], 32);
  assert_memory_equal(b + body[1] + 2, h, CTKN_SHA256_LEN);
  free(b);
  ctkn_archive_info_free(&info);
}

static void test_same_records_same_bytes(void **state)
{
  struct fx *f = *state;
  struct ctkn_archive_info a, b;
  char other[160];

  write_archive(f->path, &a);
  snprintf(other, sizeof(other), "%s/b.arc", f->dir);
  write_archive(other, &b);
  assert_memory_equal(a.sha256, b.sha256, CTKN_SHA256_LEN);
  ctkn_archive_info_free(&a);
  ctkn_archive_info_free(&b);
}

/* Verify the file after `edit`, expecting a CTKN_EDECODE naming `why`. */
static void expect_bad(const char *path, const char *why)
{
  struct ctkn_archive_info info;
  struct ctkn_err err;

  assert_int_equal(ctkn_archive_read(path, NULL, NULL, &info, &err),
                   CTKN_EDECODE);
  if (strstr(err.msg, why) == NULL)
    fail_msg("expected \"%s\" in \"%s\"", why, err.msg);
}

static void test_any_edit_is_detected(void **state)
{
  struct fx *f = *state;
  struct ctkn_archive_info info;
  size_t at[16], body[16], len[16];
  uint8_t *b, *t;

  write_archive(f->path, &info);
  ctkn_archive_info_free(&info);
  size_t n = load(f->path, &b);
  int k = entries(b, n, at, body, len);
  t = malloc(n + 64);

  /* One byte of a record's value ("value 2" -> "value 3"): the next entry
   * no longer links to it. */
  memcpy(t, b, n);
  uint8_t *v = NULL;
  for (size_t i = 0; i + 7 <= n && v == NULL; i++)
    if (memcmp(t + i, "value 2", 7) == 0)
      v = t + i;
  assert_non_null(v);
  v[6] = '3';
  store(f->path, t, n);
  expect_bad(f->path, "entry 4 (byte");
  expect_bad(f->path, "chain broken");

  /* A record deleted. */
  memcpy(t, b, at[2]);
  memcpy(t + at[2], b + at[3], n - at[3]);
  store(f->path, t, n - (at[3] - at[2]));
  expect_bad(f->path, "chain broken");

  /* Two records swapped. */
  size_t l2 = at[3] - at[2], l3 = at[4] - at[3];
  memcpy(t, b, n);
  memcpy(t + at[2], b + at[3], l3);
  memcpy(t + at[2] + l3, b + at[2], l2);
  store(f->path, t, n);
  expect_bad(f->path, "chain broken");

  /* Cut after a whole record, and in the middle of one. */
  store(f->path, b, at[k - 1]);
  expect_bad(f->path, "ends before its trailer");
  store(f->path, b, at[3] + 5);
  expect_bad(f->path, "truncated");

  /* Something appended after the trailer. */
  memcpy(t, b, n);
  memcpy(t + n, "\x02\x0a\x00", 3);
  store(f->path, t, n + 3);
  expect_bad(f->path, "chain broken");
  memcpy(t, b, n);
  store(f->path, t, n);
  /* ... even a well-linked entry: a second trailer. */
  uint8_t h[CTKN_SHA256_LEN];
  ctkn_sha256_once(b + body[k - 1], len[k - 1], h);
  uint8_t extra[40] = {38, 0x0a, 32};
  memcpy(extra + 3, h, 32);
  extra[35] = 0x22; /* field 4, trailer */
  extra[36] = 2;
  extra[37] = 0x08; /* records */
  extra[38] = NREC;
  memcpy(t + n, extra, 39);
  store(f->path, t, n + 39);
  expect_bad(f->path, "data after the trailer");

  /* Not an archive at all. */
  store(f->path, (const uint8_t *)"", 0);
  expect_bad(f->path, "empty file");
  store(f->path, (const uint8_t *)"\x05hello", 6);
  expect_bad(f->path, "does not decode");
  free(t);
  free(b);
}

static void test_writer_refuses_disorder_and_existing_files(void **state)
{
  struct fx *f = *state;
  const int64_t start[2] = {0, 0}, end[2] = {9, 9};
  struct ctkn_archive_info info;
  ctkn_archive_writer *w;
  struct ctkn_err err;
  struct ctkn_log_msg m = {.partition = 1, .offset = 3, .timestamp_ms = 1};

  assert_int_equal(
      ctkn_archive_writer_open(&w, f->path, "t", 2, start, end, &err), CTKN_OK);
  assert_int_equal(ctkn_archive_writer_add(w, &m, NULL, 0, &err), CTKN_OK);
  m.offset = 3; /* again */
  assert_int_equal(ctkn_archive_writer_add(w, &m, NULL, 0, &err), CTKN_EUSAGE);
  m.partition = 0; /* back to an earlier partition */
  assert_int_equal(ctkn_archive_writer_add(w, &m, NULL, 0, &err), CTKN_EUSAGE);
  m.partition = 2; /* outside */
  assert_int_equal(ctkn_archive_writer_add(w, &m, NULL, 0, &err), CTKN_EUSAGE);
  ctkn_archive_writer_abandon(w);
  /* An abandoned export leaves nothing behind. */
  assert_int_not_equal(access(f->path, F_OK), 0);

  /* A partial file an export left when it died (unlocked) is taken over,
   * not a reason to refuse every retry; one a live export holds (locked)
   * is. */
  char partial[sizeof(f->path) + 16];
  snprintf(partial, sizeof(partial), "%s.partial", f->path);
  FILE *left = fopen(partial, "w");
  assert_non_null(left);
  fputs("half an archive", left);
  fclose(left);
  assert_int_equal(
      ctkn_archive_writer_open(&w, f->path, "t", 2, start, end, &err), CTKN_OK);
  ctkn_archive_writer_abandon(w);
  assert_int_not_equal(access(partial, F_OK), 0);
  int held = open(partial, O_WRONLY | O_CREAT | O_EXCL, 0600);
  assert_true(held >= 0);
  assert_int_equal(flock(held, LOCK_EX), 0);
  assert_int_equal(
      ctkn_archive_writer_open(&w, f->path, "t", 2, start, end, &err),
      CTKN_ECONFLICT);
  assert_null(w);
  assert_non_null(strstr(err.msg, "another export is writing it"));
  assert_int_equal(access(partial, F_OK), 0);
  close(held);
  unlink(partial);

  write_archive(f->path, &info);
  ctkn_archive_info_free(&info);
  assert_int_equal(
      ctkn_archive_writer_open(&w, f->path, "t", 2, start, end, &err),
      CTKN_ECONFLICT);
  assert_null(w);
}

/* An archive of 2 partitions whose header says end[p], holding the
 * records at offs (partition 0's first, -1 between the two partitions),
 * well chained and counted: only the offsets can tell what is missing. */
static void write_with(const char *path, const int64_t end[2],
                       const int64_t *offs, size_t n)
{
  const int64_t start[2] = {0, 0};
  struct ctkn_archive_info info;
  ctkn_archive_writer *w;
  struct ctkn_err err;
  int32_t p = 0;

  unlink(path);
  assert_int_equal(ctkn_archive_writer_open(&w, path, "t", 2, start, end, &err),
                   CTKN_OK);
  for (size_t i = 0; i < n; i++) {
    if (offs[i] < 0) {
      p = 1;
      continue;
    }
    struct ctkn_log_msg m = {.partition = p,
                             .offset = offs[i],
                             .timestamp_ms = 1,
                             .value = "v",
                             .value_len = 1};
    assert_int_equal(ctkn_archive_writer_add(w, &m, NULL, 0, &err), CTKN_OK);
  }
  assert_int_equal(ctkn_archive_writer_finish(w, &info, &err), CTKN_OK);
  ctkn_archive_info_free(&info);
}

/* A partition's tail, middle or head left out (the chain rebuilt around
 * the gap, as anyone can) while the header still claims the range: the
 * auditor would be shown end offsets whose records are not there. */
static void test_records_missing_from_a_partition_are_detected(void **state)
{
  struct fx *f = *state;
  const int64_t end[2] = {3, 2};

  const int64_t whole[] = {0, 1, 2, -1, 0, 1};
  write_with(f->path, end, whole, 6);
  struct ctkn_archive_info info;
  struct ctkn_err err;
  assert_int_equal(ctkn_archive_read(f->path, NULL, NULL, &info, &err),
                   CTKN_OK);
  ctkn_archive_info_free(&info);

  const int64_t tail_cut[] = {0, 1, -1, 0, 1};
  write_with(f->path, end, tail_cut, 5);
  expect_bad(f->path, "partition 0 lacks its records from offset 2 to 3");
  const int64_t last_cut[] = {0, 1, 2, -1, 0};
  write_with(f->path, end, last_cut, 5);
  expect_bad(f->path, "partition 1 lacks its records from offset 1 to 2");
  const int64_t last_empty[] = {0, 1, 2};
  write_with(f->path, end, last_empty, 3);
  expect_bad(f->path, "partition 1 lacks its records from offset 0 to 2");
  const int64_t middle[] = {0, 2, -1, 0, 1};
  write_with(f->path, end, middle, 5);
  expect_bad(f->path, "an offset is skipped");
  const int64_t head[] = {1, 2, -1, 0, 1};
  write_with(f->path, end, head, 5);
  expect_bad(f->path, "do not start at the header's start offset");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_round_trip_keeps_every_coordinate_and_header, setup, teardown),
      cmocka_unit_test_setup_teardown(test_the_hash_is_the_documented_chain,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_same_records_same_bytes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_any_edit_is_detected, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_writer_refuses_disorder_and_existing_files, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_records_missing_from_a_partition_are_detected, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
