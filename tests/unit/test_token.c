/* test_token.c - IDs, token strings, text rules and time. */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctkn/token.h"

#define N 100000

static int cmp_str(const void *a, const void *b)
{
  return strcmp((const char *)a, (const char *)b);
}

static void assert_all_match(const char *pattern, const char *items,
                             size_t stride, size_t n)
{
  regex_t re;

  assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(regexec(&re, items + i * stride, 0, NULL, 0), 0);
  regfree(&re);
}

static void assert_all_unique(char *items, size_t stride, size_t n)
{
  qsort(items, n, stride, cmp_str);
  for (size_t i = 1; i < n; i++)
    assert_true(strcmp(items + (i - 1) * stride, items + i * stride) < 0);
}

static void test_100k_ids_match_regex_are_unique_and_sort_by_time(void **st)
{
  char(*ids)[CTKN_ID_BUF] = malloc(N * sizeof(*ids));
  int64_t ms = ctkn_now_us() / 1000;
  (void)st;

  assert_non_null(ids);
  for (size_t i = 0; i < N; i++) {
    /* Many IDs per millisecond, and the clock moving on every 1000. */
    assert_int_equal(ctkn_id_generate("ctkn_", ms + (int64_t)i / 1000, ids[i],
                                      sizeof(ids[i])),
                     0);
    if (i > 0)
      assert_true(strcmp(ids[i - 1], ids[i]) < 0);
    assert_true(ctkn_id_valid("ctkn_", ids[i]));
  }
  assert_int_equal(ctkn_id_time_ms("ctkn_", ids[0]), ms);
  assert_int_equal(ctkn_id_time_ms("ctkn_", ids[N - 1]), ms + (N - 1) / 1000);
  assert_all_match("^ctkn_[0-9a-z]{26}$", (char *)ids, sizeof(*ids), N);
  assert_all_unique((char *)ids, sizeof(*ids), N);
  free(ids);
}

static void test_ids_stay_monotonic_when_the_clock_steps_back(void **st)
{
  char a[CTKN_ID_BUF], b[CTKN_ID_BUF], c[CTKN_ID_BUF];
  int64_t ms = ctkn_now_us() / 1000 + 5000;
  (void)st;

  assert_int_equal(ctkn_id_generate("evt_", ms, a, sizeof(a)), 0);
  assert_int_equal(ctkn_id_generate("evt_", ms - 3000, b, sizeof(b)), 0);
  assert_int_equal(ctkn_id_generate("evt_", ms, c, sizeof(c)), 0);
  assert_true(strcmp(a, b) < 0);
  assert_true(strcmp(b, c) < 0);
  assert_int_equal(ctkn_id_time_ms("evt_", b), ms);
}

static void test_ulid_time_encoding_matches_the_ulid_spec(void **st)
{
  char id[CTKN_ID_BUF];
  (void)st;

  /* The ULID spec's example: 1469918176385 ms is "01ARYZ6S41". The
   * generator is monotonic per process, so add bit 47 to stay ahead of
   * the other tests; that bit lands in the top digit, 0 -> 4. */
  int64_t ms = 1469918176385LL + (1LL << 47);
  assert_int_equal(ctkn_id_generate("ntf_", ms, id, sizeof(id)), 0);
  assert_int_equal(ctkn_id_time_ms("ntf_", id), ms);
  assert_memory_equal(id + 4, "41aryz6s41", 10);
}

static void test_ulid_random_bits_encode_as_the_spec_says(void **st)
{
  /* Big-endian 128 bits (time, then the 80 random bits) as 26 Crockford
   * digits: vectors from an independent encoder (Python's int). The
   * second crosses every digit boundary with a known pattern. */
  static const uint8_t r1[10] = {0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
                                 0xfb, 0xfc, 0xfd, 0xfe, 0xff};
  static const uint8_t r2[10] = {0x01, 0x23, 0x45, 0x67, 0x89,
                                 0xab, 0xcd, 0xef, 0x01, 0x23};
  static const uint8_t ones[10] = {0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff};
  char id[CTKN_ID_BUF];
  (void)st;

  assert_int_equal(ctkn_id_derive("ctkn_", 1469918176385LL, r1, id, sizeof(id)),
                   0);
  assert_string_equal(id, "ctkn_01aryz6s41yvvzhyftzfyfvzqz");
  assert_int_equal(ctkn_id_derive("evt_", 0x123456789abcLL, r2, id, sizeof(id)),
                   0);
  assert_string_equal(id, "evt_0j6hb7h6nw04hmasw9nf6yy093");
  assert_int_equal(
      ctkn_id_derive("ntf_", (1LL << 48) - 1, ones, id, sizeof(id)), 0);
  assert_string_equal(id, "ntf_7zzzzzzzzzzzzzzzzzzzzzzzzz");
}

static void test_id_valid_rejects_bad_shapes(void **st)
{
  (void)st;
  assert_true(ctkn_id_valid("ctkn_", "ctkn_01ghbkd0frb9k95cnhwd1bxpvk"));
  assert_false(ctkn_id_valid("ctkn_", "ctkn_01ghbkd0frb9k95cnhwd1bxpv"));
  assert_false(ctkn_id_valid("ctkn_", "ctkn_01ghbkd0frb9k95cnhwd1bxpvkk"));
  assert_false(ctkn_id_valid("ctkn_", "ctkn_01GHBKD0FRB9K95CNHWD1BXPVK"));
  assert_false(ctkn_id_valid("ctkn_", "ctkn_01ghbkd0frb9k95cnhwd1bxpvu"));
  assert_false(ctkn_id_valid("ctkn_", "ctkn_81ghbkd0frb9k95cnhwd1bxpvk"));
  assert_false(ctkn_id_valid("ctkn_", "evt_01ghbkd0frb9k95cnhwd1bxpvk"));
  assert_false(ctkn_id_valid("ctkn_", ""));
  assert_int_equal(ctkn_id_time_ms("ctkn_", "nope"), -1);
}

static void test_100k_tokens_match_regex_are_unique_and_time_prefixed(void **s)
{
  char(*tok)[CTKN_TOKEN_BUF] = malloc(N * sizeof(*tok));
  static unsigned long freq[256];
  int64_t us = ctkn_now_us();
  (void)s;

  assert_non_null(tok);
  for (size_t i = 0; i < N; i++) {
    ctkn_env env = i % 2 ? CTKN_ENV_LIVE : CTKN_ENV_SANDBOX;
    ctkn_env got;
    assert_int_equal(ctkn_token_generate(env, us + (int64_t)i * 1000, tok[i]),
                     0);
    assert_true(ctkn_token_valid(tok[i], &got));
    assert_int_equal(got, env);
    /* The 8 time characters sort with the creation millisecond. */
    if (i > 0)
      assert_true(memcmp(tok[i - 1] + 5, tok[i] + 5, 8) < 0);
    for (int k = 13; k < CTKN_TOKEN_LEN; k++)
      freq[(unsigned char)tok[i][k]]++;
  }
  assert_all_match("^(test|live)_[a-zA-Z0-9]{27}$", (char *)tok, sizeof(*tok),
                   N);
  assert_all_unique((char *)tok, sizeof(*tok), N);
  free(tok);

  /* 1.9M random characters: each of the 62 expected 30,645 times. A
   * modulo-biased mapping of bytes would put 25% more on the first 8
   * characters; allow 5%. */
  double expect = (double)N * 19 / 62;
  int seen = 0;
  for (int c = 0; c < 256; c++) {
    if (freq[c] == 0)
      continue;
    seen++;
    assert_true(freq[c] > expect * 0.95 && freq[c] < expect * 1.05);
  }
  assert_int_equal(seen, 62);
}

static void test_token_valid_rejects_bad_shapes(void **st)
{
  (void)st;
  assert_true(ctkn_token_valid("live_7d279f61a3499fed520f7cd8c08", NULL));
  assert_false(ctkn_token_valid("live_7d279f61a3499fed520f7cd8c0", NULL));
  assert_false(ctkn_token_valid("live_7d279f61a3499fed520f7cd8c088", NULL));
  assert_false(ctkn_token_valid("prod_7d279f61a3499fed520f7cd8c08", NULL));
  assert_false(ctkn_token_valid("live_7d279f61a3499fed520f7cd8c0_", NULL));
  assert_false(ctkn_token_valid("", NULL));
}

/* ---- text ---------------------------------------------------------- */

static char *repeat(const char *unit, size_t n)
{
  size_t ul = strlen(unit);
  char *s = malloc(ul * n + 1);

  for (size_t i = 0; i < n; i++)
    memcpy(s + i * ul, unit, ul);
  s[ul * n] = '\0';
  return s;
}

static int name_rc(const char *unit, size_t n, struct ctkn_err *err)
{
  char *s = repeat(unit, n);
  int rc = ctkn_validate_name(s, strlen(s), err);
  free(s);
  return rc;
}

static void test_name_length_boundaries_in_code_points(void **st)
{
  static const char *units[] = {"a", "\xc3\xa9", "\xe2\x82\xac",
                                "\xf0\x9f\x98\x80"};
  struct ctkn_err err;
  (void)st;

  for (size_t u = 0; u < 4; u++) {
    assert_int_equal(name_rc(units[u], 0, &err), CTKN_EINVAL);
    assert_string_equal(err.field, "name");
    assert_non_null(strstr(err.msg, "1-150"));
    assert_int_equal(name_rc(units[u], 1, &err), CTKN_OK);
    assert_int_equal(name_rc(units[u], 150, &err), CTKN_OK);
    assert_int_equal(name_rc(units[u], 151, &err), CTKN_EINVAL);
    assert_string_equal(err.field, "name");
    assert_non_null(strstr(err.msg, "got 151"));
  }
}

static void test_description_length_boundaries(void **st)
{
  struct ctkn_err err;
  char *s;
  (void)st;

  assert_int_equal(ctkn_validate_description("", 0, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "description");
  s = repeat("\xe2\x82\xac", 500);
  assert_int_equal(ctkn_validate_description(s, strlen(s), &err), CTKN_OK);
  free(s);
  s = repeat("x", 501);
  assert_int_equal(ctkn_validate_description(s, strlen(s), &err), CTKN_EINVAL);
  assert_string_equal(err.field, "description");
  free(s);
}

static void test_invalid_utf8_is_rejected_with_field_and_rule(void **st)
{
  static const char *bad[] = {
      "\xc0\x80",         /* overlong NUL */
      "\xe0\x80\xaf",     /* overlong '/' */
      "\xed\xa0\x80",     /* surrogate U+D800 */
      "\xf4\x90\x80\x80", /* past U+10FFFF */
      "ab\xe2\x82",       /* truncated at the end */
      "\x80",             /* lone continuation */
      "\xff",             /* never valid */
      "a\xc3(",           /* bad continuation */
  };
  struct ctkn_err err;
  (void)st;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(ctkn_validate_name(bad[i], strlen(bad[i]), &err),
                     CTKN_EINVAL);
    assert_string_equal(err.field, "name");
    assert_non_null(strstr(err.msg, "valid UTF-8"));
  }
}

static void test_control_characters_are_rejected(void **st)
{
  static const char *bad[] = {"a\tb", "a\nb", "\x01", "a\x7f",
                              "a\xc2\x85" /* U+0085 NEL */};
  struct ctkn_err err;
  (void)st;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(ctkn_validate_description(bad[i], strlen(bad[i]), &err),
                     CTKN_EINVAL);
    assert_string_equal(err.field, "description");
    assert_non_null(strstr(err.msg, "control characters"));
  }
  /* An embedded NUL is a control character too. */
  assert_int_equal(ctkn_validate_name("a\0b", 3, &err), CTKN_EINVAL);
  /* U+00A0 (no-break space) is not a control character. */
  assert_int_equal(ctkn_validate_name("a\xc2\xa0", 3, &err), CTKN_OK);
}

/* ---- time ---------------------------------------------------------- */

static void test_time_formats_with_six_fraction_digits(void **st)
{
  char buf[CTKN_TIME_BUF];
  int64_t us;
  (void)st;

  assert_int_equal(ctkn_time_parse("2025-06-26T14:36:14.695521Z", &us, NULL),
                   0);
  assert_int_equal(ctkn_time_format(us, buf), 0);
  assert_string_equal(buf, "2025-06-26T14:36:14.695521Z");
  assert_int_equal(ctkn_time_format(0, buf), 0);
  assert_string_equal(buf, "1970-01-01T00:00:00.000000Z");
  assert_int_equal(ctkn_time_format(951782400000001LL, buf), 0);
  assert_string_equal(buf, "2000-02-29T00:00:00.000001Z");
  assert_int_equal(ctkn_time_format(-1, buf), CTKN_EINVAL);
}

static void test_time_parse_accepts_any_precision_and_offsets(void **st)
{
  int64_t a, b;
  (void)st;

  assert_int_equal(ctkn_time_parse("2025-06-26T14:36:14.695Z", &a, NULL), 0);
  assert_int_equal(ctkn_time_parse("2025-06-26T14:36:14.695000Z", &b, NULL), 0);
  assert_int_equal(a, b);
  assert_int_equal(ctkn_time_parse("2025-06-26T14:36:14.695000999Z", &b, NULL),
                   0);
  assert_int_equal(a, b);
  assert_int_equal(ctkn_time_parse("2025-06-26T16:36:14.695+02:00", &b, NULL),
                   0);
  assert_int_equal(a, b);
  assert_int_equal(ctkn_time_parse("2025-06-26T14:36:14Z", &b, NULL), 0);
  assert_int_equal(a - b, 695000);
  assert_int_equal(ctkn_time_parse("2024-10-12T07:20:50.52Z", &b, NULL), 0);
  assert_int_equal(b % 1000000, 520000);
}

static void test_time_parse_rejects_junk_and_impossible_dates(void **st)
{
  static const char *bad[] = {
      "",
      "2025-06-26",
      "2025-06-26T14:36:14",      /* no zone */
      "2025-06-26 14:36:14Z",     /* space */
      "2025-06-26T14:36:14.Z",    /* empty fraction */
      "2025-06-26T14:36:14Zjunk", /* trailing */
      "2025-02-29T00:00:00Z",     /* not a leap year */
      "2025-13-01T00:00:00Z",
      "2025-06-26T24:00:00Z",
      "1969-12-31T23:59:59Z", /* before the epoch */
      "2025-06-26T14:36:14+0200",
  };
  struct ctkn_err err;
  int64_t us;
  (void)st;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(ctkn_time_parse(bad[i], &us, &err), CTKN_EINVAL);
    assert_string_equal(err.field, "time");
  }
  assert_int_equal(ctkn_time_parse("2024-02-29T00:00:00Z", &us, &err), 0);
}

static void test_time_round_trips_across_a_wide_range(void **st)
{
  char buf[CTKN_TIME_BUF];
  int64_t back;
  (void)st;

  for (int64_t us = 0; us < 253402300799999999LL;
       us += 7777777777777LL + 123457) {
    assert_int_equal(ctkn_time_format(us, buf), 0);
    assert_int_equal(ctkn_time_parse(buf, &back, NULL), 0);
    assert_int_equal(back, us);
  }
}

/* ---- entity -------------------------------------------------------- */

static void make_token(struct ctkn_token *t)
{
  memset(t, 0, sizeof(*t));
  strcpy(t->id, "ctkn_01ghbkd0frb9k95cnhwd1bxpvk");
  strcpy(t->token, "live_7d279f61a3499fed520f7cd8c08");
  strcpy(t->name, "Pricing page integration");
  t->status = CTKN_STATUS_ACTIVE;
  t->created_at = t->updated_at = 1750948574695521LL;
}

static void test_token_check_enforces_entity_rules(void **st)
{
  struct ctkn_token t;
  struct ctkn_err err;
  (void)st;

  make_token(&t);
  assert_int_equal(ctkn_token_check(&t, CTKN_ENV_LIVE, &err), 0);
  assert_int_equal(ctkn_token_check(&t, 0, &err), 0);
  assert_int_equal(ctkn_token_check(&t, CTKN_ENV_SANDBOX, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "token");

  make_token(&t);
  t.id[0] = 'x';
  assert_int_equal(ctkn_token_check(&t, 0, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "id");

  make_token(&t);
  t.name[0] = '\0';
  assert_int_equal(ctkn_token_check(&t, 0, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "name");

  make_token(&t);
  t.has_description = true;
  assert_int_equal(ctkn_token_check(&t, 0, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "description");

  make_token(&t);
  t.status = CTKN_STATUS_REVOKED;
  assert_int_equal(ctkn_token_check(&t, 0, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "revoked_at");
  t.revoked_at = t.updated_at;
  assert_int_equal(ctkn_token_check(&t, 0, &err), 0);

  make_token(&t);
  t.revoked_at = t.updated_at;
  assert_int_equal(ctkn_token_check(&t, 0, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "revoked_at");

  make_token(&t);
  t.updated_at = t.created_at - 1;
  assert_int_equal(ctkn_token_check(&t, 0, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "updated_at");

  make_token(&t);
  t.status = (ctkn_status)7;
  assert_int_equal(ctkn_token_check(&t, 0, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "status");
}

static void test_status_and_environment_parse(void **st)
{
  struct ctkn_err err;
  ctkn_status s;
  ctkn_env e;
  (void)st;

  assert_int_equal(ctkn_status_parse("revoked", &s, &err), 0);
  assert_int_equal(s, CTKN_STATUS_REVOKED);
  assert_int_equal(ctkn_status_parse("Active", &s, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "status");
  assert_int_equal(ctkn_env_parse("live", &e, &err), 0);
  assert_int_equal(e, CTKN_ENV_LIVE);
  assert_string_equal(ctkn_env_token_prefix(e), "live_");
  assert_int_equal(ctkn_env_parse("production", &e, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "environment");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_100k_ids_match_regex_are_unique_and_sort_by_time),
      cmocka_unit_test(test_ids_stay_monotonic_when_the_clock_steps_back),
      cmocka_unit_test(test_ulid_time_encoding_matches_the_ulid_spec),
      cmocka_unit_test(test_ulid_random_bits_encode_as_the_spec_says),
      cmocka_unit_test(test_id_valid_rejects_bad_shapes),
      cmocka_unit_test(
          test_100k_tokens_match_regex_are_unique_and_time_prefixed),
      cmocka_unit_test(test_token_valid_rejects_bad_shapes),
      cmocka_unit_test(test_name_length_boundaries_in_code_points),
      cmocka_unit_test(test_description_length_boundaries),
      cmocka_unit_test(test_invalid_utf8_is_rejected_with_field_and_rule),
      cmocka_unit_test(test_control_characters_are_rejected),
      cmocka_unit_test(test_time_formats_with_six_fraction_digits),
      cmocka_unit_test(test_time_parse_accepts_any_precision_and_offsets),
      cmocka_unit_test(test_time_parse_rejects_junk_and_impossible_dates),
      cmocka_unit_test(test_time_round_trips_across_a_wide_range),
      cmocka_unit_test(test_token_check_enforces_entity_rules),
      cmocka_unit_test(test_status_and_environment_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
