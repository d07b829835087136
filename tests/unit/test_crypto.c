/*
 * test_crypto.c - SHA-256, HMAC-SHA256 and hex against published vectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctkn/crypto.h"

static void hex_of(const uint8_t d[CTKN_SHA256_LEN],
                   char out[2 * CTKN_SHA256_LEN + 1])
{
  ctkn_hex(d, CTKN_SHA256_LEN, out);
}

static void assert_sha256(const void *data, size_t len, const char *want)
{
  uint8_t d[CTKN_SHA256_LEN];
  char hex[2 * CTKN_SHA256_LEN + 1];

  ctkn_sha256_once(data, len, d);
  hex_of(d, hex);
  assert_string_equal(hex, want);
}

static void assert_hmac(const void *key, size_t keylen, const void *data,
                        size_t len, const char *want)
{
  uint8_t d[CTKN_SHA256_LEN];
  char hex[2 * CTKN_SHA256_LEN + 1];

  ctkn_hmac_sha256(key, keylen, data, len, d);
  hex_of(d, hex);
  assert_string_equal(hex, want);
}

static void test_sha256_empty_string_matches_fips_vector(void **state)
{
  (void)state;
  assert_sha256(
      "", 0,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert_sha256(
      NULL, 0,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_sha256_abc_matches_fips_vector(void **state)
{
  (void)state;
  assert_sha256(
      "abc", 3,
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sha256_two_block_message_matches_fips_vector(void **state)
{
  static const char m[] =
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

  (void)state;
  assert_sha256(
      m, sizeof(m) - 1,
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_incremental_equals_one_shot_at_every_split(void **state)
{
  static const char m[] =
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
      "and some more bytes so that the message crosses a block boundary";
  size_t n = sizeof(m) - 1;
  uint8_t once[CTKN_SHA256_LEN], inc[CTKN_SHA256_LEN];
  size_t split;

  (void)state;
  ctkn_sha256_once(m, n, once);
  for (split = 0; split <= n; split++) {
    ctkn_sha256 *h = ctkn_sha256_new();

    assert_non_null(h);
    ctkn_sha256_update(h, m, split);
    ctkn_sha256_update(h, m + split, n - split);
    ctkn_sha256_final(h, inc);
    ctkn_sha256_free(h);
    assert_memory_equal(once, inc, CTKN_SHA256_LEN);
  }
}

static void test_sha256_million_a_incremental_matches_fips_vector(void **state)
{
  char chunk[1000];
  uint8_t d[CTKN_SHA256_LEN];
  char hex[2 * CTKN_SHA256_LEN + 1];
  ctkn_sha256 *h = ctkn_sha256_new();
  int i;

  (void)state;
  assert_non_null(h);
  memset(chunk, 'a', sizeof(chunk));
  for (i = 0; i < 1000; i++)
    ctkn_sha256_update(h, chunk, sizeof(chunk));
  ctkn_sha256_final(h, d);
  ctkn_sha256_free(h);
  hex_of(d, hex);
  assert_string_equal(
      hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_sha256_free_null_is_noop(void **state)
{
  (void)state;
  ctkn_sha256_free(NULL);
}

static void test_hmac_paddle_signature_vector_from_brief(void **state)
{
  static const char key[] = "VALID_SECRET";
  static const char msg[] = "1698796800:{\"data\": [\"1\", \"2\"]}";

  (void)state;
  assert_hmac(
      key, sizeof(key) - 1, msg, sizeof(msg) - 1,
      "a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9");
}

static void test_hmac_rfc4231_case1(void **state)
{
  uint8_t key[20];

  (void)state;
  memset(key, 0x0b, sizeof(key));
  assert_hmac(
      key, sizeof(key), "Hi There", 8,
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

static void test_hmac_rfc4231_case2_short_key(void **state)
{
  static const char msg[] = "what do ya want for nothing?";

  (void)state;
  assert_hmac(
      "Jefe", 4, msg, sizeof(msg) - 1,
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_hmac_rfc4231_case6_key_longer_than_block(void **state)
{
  static const char msg[] =
      "Test Using Larger Than Block-Size Key - Hash Key First";
  uint8_t key[131];

  (void)state;
  memset(key, 0xaa, sizeof(key));
  assert_hmac(
      key, sizeof(key), msg, sizeof(msg) - 1,
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_hmac_empty_key_and_message(void **state)
{
  static const char want[] =
      "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad";

  (void)state;
  assert_hmac("", 0, "", 0, want);
  assert_hmac(NULL, 0, NULL, 0, want);
}

static void test_hex_is_lowercase_and_nul_terminated(void **state)
{
  static const uint8_t b[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff};
  char out[2 * sizeof(b) + 2];

  (void)state;
  memset(out, 'X', sizeof(out));
  ctkn_hex(b, sizeof(b), out);
  assert_string_equal(out, "00017f80abcdefff");
  assert_int_equal(out[sizeof(out) - 1], 'X');
}

static void test_hex_of_nothing_is_empty_string(void **state)
{
  char out[1] = {'X'};

  (void)state;
  ctkn_hex(NULL, 0, out);
  assert_string_equal(out, "");
}

static void test_ct_equal_compares_every_byte(void **state)
{
  uint8_t a[32], b[32];

  (void)state;
  memset(a, 0x5a, sizeof(a));
  memcpy(b, a, sizeof(b));
  assert_true(ctkn_ct_equal(a, b, sizeof(a)));
  assert_true(ctkn_ct_equal(a, b, 0));
  for (size_t i = 0; i < sizeof(a); i++) {
    b[i] ^= 0x01;
    assert_false(ctkn_ct_equal(a, b, sizeof(a)));
    b[i] ^= 0x01;
  }
}

static void test_wipe_zeroes(void **state)
{
  char secret[16] = "hunter2hunter2!";
  char zero[16] = {0};

  (void)state;
  ctkn_wipe(secret, sizeof(secret));
  assert_memory_equal(secret, zero, sizeof(zero));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ct_equal_compares_every_byte),
      cmocka_unit_test(test_wipe_zeroes),
      cmocka_unit_test(test_sha256_empty_string_matches_fips_vector),
      cmocka_unit_test(test_sha256_abc_matches_fips_vector),
      cmocka_unit_test(test_sha256_two_block_message_matches_fips_vector),
      cmocka_unit_test(test_sha256_incremental_equals_one_shot_at_every_split),
      cmocka_unit_test(test_sha256_million_a_incremental_matches_fips_vector),
      cmocka_unit_test(test_sha256_free_null_is_noop),
      cmocka_unit_test(test_hmac_paddle_signature_vector_from_brief),
      cmocka_unit_test(test_hmac_rfc4231_case1),
      cmocka_unit_test(test_hmac_rfc4231_case2_short_key),
      cmocka_unit_test(test_hmac_rfc4231_case6_key_longer_than_block),
      cmocka_unit_test(test_hmac_empty_key_and_message),
      cmocka_unit_test(test_hex_is_lowercase_and_nul_terminated),
      cmocka_unit_test(test_hex_of_nothing_is_empty_string),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
