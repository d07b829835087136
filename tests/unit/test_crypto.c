/*
 * test_crypto.c - SHA-256, HMAC-SHA256, hex and AES-256-GCM against
 * published vectors; sealing's failure modes; the deployment key file.
 */
#include <ctype.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/crypto_int.h"
#include "ctkn/crypto.h"
#include "internal.h"

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

/* ---- sealing ------------------------------------------------------------ */

/* Hex to bytes for the vectors below; n is the byte count. */
static void unhex(const char *hex, uint8_t *out, size_t n)
{
  assert_int_equal(strlen(hex), 2 * n);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
}

static bool all_zero(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      return false;
  return true;
}

static const uint8_t seal_key[CTKN_KEY_LEN] = {
    0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae,
    0xf0, 0x85, 0x7d, 0x77, 0x81, 0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61,
    0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4};
static const char dest_id[] = "dst_01h2xcejqtf2nbrexx3vqjhp41";
static const char secret[] = "pdl_ntfset_01h2xcejqtf2nbrexx3vqjhp41_"
                             "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXU=";

/* Seal secret under seal_key for dest_id into a new buffer of
 * sizeof(secret) - 1 + CTKN_SEAL_OVERHEAD bytes: caller frees it. */
static uint8_t *seal_secret(size_t *len)
{
  size_t n = sizeof(secret) - 1;
  uint8_t *out = malloc(n + CTKN_SEAL_OVERHEAD);
  struct ctkn_err err;

  assert_non_null(out);
  assert_int_equal(
      ctkn_seal(seal_key, dest_id, sizeof(dest_id) - 1, secret, n, out, &err),
      CTKN_OK);
  *len = n + CTKN_SEAL_OVERHEAD;
  return out;
}

/* ctkn_unseal must refuse, with the documented message, and leave out
 * (prefilled with non-zero bytes here) all zeros. */
static void assert_unseal_refused(const uint8_t key[CTKN_KEY_LEN],
                                  const void *aad, size_t aadlen,
                                  const uint8_t *in, size_t len)
{
  uint8_t out[256];
  struct ctkn_err err;
  size_t n = len - CTKN_SEAL_OVERHEAD;

  assert_true(len >= CTKN_SEAL_OVERHEAD && n <= sizeof(out));
  memset(out, 0xa5, sizeof(out));
  memset(&err, 0, sizeof(err));
  assert_int_equal(ctkn_unseal(key, aad, aadlen, in, len, out, &err),
                   CTKN_EINVAL);
  assert_int_equal(err.code, CTKN_EINVAL);
  assert_string_equal(err.msg, "wrong key or damaged secret");
  assert_true(all_zero(out, n));
  /* Nothing past the plaintext's length is touched. */
  assert_int_equal(out[n], 0xa5);
}

static void test_seal_then_unseal_round_trips_every_length(void **state)
{
  static const size_t lens[] = {0, 1, 15, 16, 17, 31, 32, 33, 200};
  uint8_t pt[200], sealed[200 + CTKN_SEAL_OVERHEAD], back[200];
  struct ctkn_err err;

  (void)state;
  for (size_t i = 0; i < sizeof(pt); i++)
    pt[i] = (uint8_t)(i * 7 + 1);
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    size_t n = lens[i];

    memset(back, 0, sizeof(back));
    assert_int_equal(
        ctkn_seal(seal_key, dest_id, sizeof(dest_id) - 1, pt, n, sealed, &err),
        CTKN_OK);
    /* The plaintext does not appear in the clear. */
    if (n >= 4)
      assert_memory_not_equal(sealed + CTKN_SEAL_NONCE, pt, n);
    assert_int_equal(ctkn_unseal(seal_key, dest_id, sizeof(dest_id) - 1, sealed,
                                 n + CTKN_SEAL_OVERHEAD, back, &err),
                     CTKN_OK);
    assert_memory_equal(back, pt, n);
  }

  /* No AAD and no plaintext: NULL is allowed for both. */
  assert_int_equal(ctkn_seal(seal_key, NULL, 0, NULL, 0, sealed, &err),
                   CTKN_OK);
  assert_int_equal(
      ctkn_unseal(seal_key, NULL, 0, sealed, CTKN_SEAL_OVERHEAD, NULL, &err),
      CTKN_OK);
}

/*
 * The GCM specification's (McGrew and Viega) AES-256 test cases 13, 14 and
 * 16, which use the 96-bit IV that sealing does: the output must be
 * exactly nonce || C || T, and ctkn_unseal() must open it again.
 */
static void assert_gcm_vector(const char *k_hex, const char *iv_hex,
                              const char *a_hex, const char *p_hex,
                              const char *c_hex, const char *t_hex)
{
  uint8_t k[CTKN_KEY_LEN], iv[CTKN_SEAL_NONCE], a[64], p[64];
  uint8_t want[64 + CTKN_SEAL_OVERHEAD], got[64 + CTKN_SEAL_OVERHEAD];
  uint8_t back[64];
  size_t alen = strlen(a_hex) / 2, plen = strlen(p_hex) / 2;
  struct ctkn_err err;

  unhex(k_hex, k, sizeof(k));
  unhex(iv_hex, iv, sizeof(iv));
  unhex(a_hex, a, alen);
  unhex(p_hex, p, plen);
  memcpy(want, iv, CTKN_SEAL_NONCE);
  unhex(c_hex, want + CTKN_SEAL_NONCE, plen);
  unhex(t_hex, want + CTKN_SEAL_NONCE + plen, CTKN_SEAL_TAG);

  memset(got, 0, sizeof(got));
  assert_int_equal(ctkn__seal_with_nonce(k, iv, alen ? a : NULL, alen,
                                         plen ? p : NULL, plen, got, &err),
                   CTKN_OK);
  assert_memory_equal(got, want, plen + CTKN_SEAL_OVERHEAD);

  memset(back, 0xa5, sizeof(back));
  assert_int_equal(ctkn_unseal(k, alen ? a : NULL, alen, want,
                               plen + CTKN_SEAL_OVERHEAD, back, &err),
                   CTKN_OK);
  assert_memory_equal(back, p, plen);
}

static void test_seal_matches_gcm_spec_aes256_vectors(void **state)
{
  static const char zero_key[] =
      "0000000000000000000000000000000000000000000000000000000000000000";
  static const char zero_iv[] = "000000000000000000000000";

  (void)state;
  /* Test case 13: empty plaintext, empty AAD. */
  assert_gcm_vector(zero_key, zero_iv, "", "", "",
                    "530f8afbc74536b9a963b4f1c4cb738b");
  /* Test case 14: one zero block. */
  assert_gcm_vector(zero_key, zero_iv, "", "00000000000000000000000000000000",
                    "cea7403d4d606b6e074ec5d3baf39d18",
                    "d0d1c8a799996bf0265b98b5d48ab919");
  /* Test case 16: 60 bytes of plaintext and 20 of AAD. */
  assert_gcm_vector(
      "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
      "76fc6ece0f4e1768cddf8853bb2d551b");
}

static void test_unseal_refuses_any_changed_byte_and_wipes_out(void **state)
{
  size_t len;
  uint8_t *sealed = seal_secret(&len);

  (void)state;
  /* Every byte: nonce, ciphertext and tag alike; low and high bit. */
  for (size_t i = 0; i < len; i++) {
    for (unsigned bit = 0x01; bit <= 0x80; bit <<= 7) {
      sealed[i] ^= (uint8_t)bit;
      assert_unseal_refused(seal_key, dest_id, sizeof(dest_id) - 1, sealed,
                            len);
      sealed[i] ^= (uint8_t)bit;
    }
  }
  /* A byte dropped from either end. */
  assert_unseal_refused(seal_key, dest_id, sizeof(dest_id) - 1, sealed,
                        len - 1);
  assert_unseal_refused(seal_key, dest_id, sizeof(dest_id) - 1, sealed + 1,
                        len - 1);
  free(sealed);
}

static void test_unseal_refuses_another_aad_and_wipes_out(void **state)
{
  char aad[sizeof(dest_id)];
  size_t len;
  uint8_t *sealed = seal_secret(&len);

  (void)state;
  memcpy(aad, dest_id, sizeof(aad));
  for (size_t i = 0; i < sizeof(dest_id) - 1; i++) {
    aad[i] ^= 0x01;
    assert_unseal_refused(seal_key, aad, sizeof(dest_id) - 1, sealed, len);
    aad[i] ^= 0x01;
  }
  /* A prefix of the ID, a longer one, and none at all. */
  assert_unseal_refused(seal_key, dest_id, sizeof(dest_id) - 2, sealed, len);
  assert_unseal_refused(seal_key, dest_id, sizeof(dest_id), sealed, len);
  assert_unseal_refused(seal_key, NULL, 0, sealed, len);
  free(sealed);
}

static void test_unseal_with_another_key_fails_and_wipes_out(void **state)
{
  uint8_t key[CTKN_KEY_LEN];
  size_t len;
  uint8_t *sealed = seal_secret(&len);

  (void)state;
  memcpy(key, seal_key, sizeof(key));
  for (size_t i = 0; i < sizeof(key); i++) {
    key[i] ^= 0x80;
    assert_unseal_refused(key, dest_id, sizeof(dest_id) - 1, sealed, len);
    key[i] ^= 0x80;
  }
  free(sealed);
}

static void test_unseal_refuses_input_shorter_than_overhead(void **state)
{
  uint8_t in[CTKN_SEAL_OVERHEAD] = {0};
  uint8_t out[1] = {0xa5};
  struct ctkn_err err;

  (void)state;
  for (size_t len = 0; len < CTKN_SEAL_OVERHEAD; len++) {
    memset(&err, 0, sizeof(err));
    assert_int_equal(ctkn_unseal(seal_key, NULL, 0, in, len, out, &err),
                     CTKN_EINVAL);
    assert_non_null(strstr(err.msg, "wrong key or damaged secret"));
  }
  /* err may be NULL. */
  assert_int_equal(ctkn_unseal(seal_key, NULL, 0, in, 3, out, NULL),
                   CTKN_EINVAL);
  assert_int_equal(out[0], 0xa5);
}

static void test_two_seals_of_one_plaintext_differ(void **state)
{
  size_t alen, blen;
  uint8_t *a = seal_secret(&alen);
  uint8_t *b = seal_secret(&blen);
  char back[sizeof(secret)];
  struct ctkn_err err;

  (void)state;
  assert_int_equal(alen, blen);
  assert_memory_not_equal(a, b, CTKN_SEAL_NONCE);
  assert_memory_not_equal(a + CTKN_SEAL_NONCE, b + CTKN_SEAL_NONCE,
                          alen - CTKN_SEAL_NONCE);
  /* Both still open to the same secret. */
  memset(back, 0, sizeof(back));
  assert_int_equal(ctkn_unseal(seal_key, dest_id, sizeof(dest_id) - 1, a, alen,
                               (uint8_t *)back, &err),
                   CTKN_OK);
  assert_string_equal(back, secret);
  memset(back, 0, sizeof(back));
  assert_int_equal(ctkn_unseal(seal_key, dest_id, sizeof(dest_id) - 1, b, blen,
                               (uint8_t *)back, &err),
                   CTKN_OK);
  assert_string_equal(back, secret);
  free(a);
  free(b);
}

/* ---- the deployment key file ------------------------------------------- */

struct keyfile {
  char path[64];
  uint8_t key[CTKN_KEY_LEN];      /* the key the tests write */
  char hex[2 * CTKN_KEY_LEN + 1]; /* ... in lowercase hex */
  char HEX[2 * CTKN_KEY_LEN + 1]; /* ... in uppercase hex */
};

static int keyfile_setup(void **state)
{
  struct keyfile *f = calloc(1, sizeof(*f));
  int fd;

  if (f == NULL)
    return -1;
  snprintf(f->path, sizeof(f->path), "/tmp/ctkn-test-key-XXXXXX");
  fd = mkstemp(f->path);
  if (fd < 0) {
    free(f);
    return -1;
  }
  close(fd);
  /* Every byte has a letter digit, so case matters to the decoder. */
  for (size_t i = 0; i < CTKN_KEY_LEN; i++)
    f->key[i] = (uint8_t)((0xa0 + (i * 29) % 0x5f) | 0x0a);
  ctkn_hex(f->key, CTKN_KEY_LEN, f->hex);
  for (size_t i = 0; i < sizeof(f->HEX); i++)
    f->HEX[i] = (char)toupper((unsigned char)f->hex[i]);
  *state = f;
  return 0;
}

static int keyfile_teardown(void **state)
{
  struct keyfile *f = *state;

  unlink(f->path);
  free(f);
  return 0;
}

/* Replace the file's contents with n bytes of b, then set its mode. */
static void put(const char *path, const void *b, size_t n, mode_t mode)
{
  int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT, 0600);

  assert_true(fd >= 0);
  assert_int_equal(write(fd, b, n), (ssize_t)n);
  assert_int_equal(fchmod(fd, mode), 0);
  assert_int_equal(close(fd), 0);
}

static void assert_loads(struct keyfile *f, const void *b, size_t n,
                         mode_t mode)
{
  uint8_t key[CTKN_KEY_LEN];
  struct ctkn_err err;

  put(f->path, b, n, mode);
  memset(key, 0, sizeof(key));
  memset(&err, 0, sizeof(err));
  if (ctkn_key_load(f->path, key, &err) != CTKN_OK)
    fail_msg("refused %zu bytes: %s", n, err.msg);
  assert_memory_equal(key, f->key, CTKN_KEY_LEN);
}

/* Refused with CTKN_EINVAL, a message that names the file and contains
 * want, no trace of the key in it, and key zeroed. */
static void assert_refused(struct keyfile *f, const char *want)
{
  uint8_t key[CTKN_KEY_LEN];
  struct ctkn_err err;
  char head[17];

  memset(key, 0xa5, sizeof(key));
  memset(&err, 0, sizeof(err));
  assert_int_equal(ctkn_key_load(f->path, key, &err), CTKN_EINVAL);
  assert_int_equal(err.code, CTKN_EINVAL);
  if (strstr(err.msg, f->path) == NULL || strstr(err.msg, want) == NULL)
    fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", err.msg, f->path, want);
  memcpy(head, f->hex, 16);
  head[16] = '\0';
  assert_null(strstr(err.msg, head));
  memcpy(head, f->HEX, 16);
  assert_null(strstr(err.msg, head));
  for (size_t i = 0; i + 8 <= strlen(err.msg); i++)
    assert_memory_not_equal(err.msg + i, f->key, 8);
  assert_true(all_zero(key, sizeof(key)));
  /* err may be NULL. */
  assert_int_equal(ctkn_key_load(f->path, key, NULL), CTKN_EINVAL);
}

static void test_key_load_accepts_hex_either_case_or_raw(void **state)
{
  struct keyfile *f = *state;
  char text[2 * CTKN_KEY_LEN + 3];
  size_t n = 2 * CTKN_KEY_LEN;

  memcpy(text, f->hex, n);
  assert_loads(f, text, n, 0600);
  text[n] = '\n';
  assert_loads(f, text, n + 1, 0600);
  text[n] = '\r';
  text[n + 1] = '\n';
  assert_loads(f, text, n + 2, 0600);
  memcpy(text, f->HEX, n);
  assert_loads(f, text, n + 2, 0600);
  text[n] = '\n';
  assert_loads(f, text, n + 1, 0600);
  /* Mixed case too. */
  for (size_t i = 0; i < n; i += 2)
    text[i] = f->hex[i];
  assert_loads(f, text, n, 0600);
  assert_loads(f, f->key, CTKN_KEY_LEN, 0600);
  /* Read-only for the owner is fine. */
  assert_loads(f, f->hex, n, 0400);
}

static void test_key_load_refuses_other_lengths(void **state)
{
  struct keyfile *f = *state;
  char text[200];
  size_t n = 2 * CTKN_KEY_LEN;

  memset(text, 'a', sizeof(text));
  memcpy(text, f->hex, n);

  put(f->path, "", 0, 0600);
  assert_refused(f, "0 bytes");
  put(f->path, text, n - 1, 0600);
  assert_refused(f, "63 bytes");
  put(f->path, f->key, CTKN_KEY_LEN - 1, 0600);
  assert_refused(f, "31 bytes");
  put(f->path, f->key, CTKN_KEY_LEN + 1, 0600);
  assert_refused(f, "33 bytes");
  /* 65 hex digits; two newlines; a lone carriage return; a space. */
  put(f->path, text, n + 1, 0600);
  assert_refused(f, "64 hex digits");
  text[n] = '\n';
  text[n + 1] = '\n';
  put(f->path, text, n + 2, 0600);
  assert_refused(f, "64 hex digits");
  text[n] = '\r';
  put(f->path, text, n + 1, 0600);
  assert_refused(f, "64 hex digits");
  text[n] = ' ';
  text[n + 1] = '\n';
  put(f->path, text, n + 2, 0600);
  assert_refused(f, "64 hex digits");
  /* Far too long: the key and then anything. */
  put(f->path, text, sizeof(text), 0600);
  assert_refused(f, "more than 66 bytes");
}

static void test_key_load_refuses_non_hex(void **state)
{
  /* Includes each neighbour of a digit range: '/', ':', '@', 'G', '`',
   * 'g', and a byte that is a hex letter with its high bit set. */
  static const char bad[] = {'/', ':',  '@', 'G', '`',       'g',
                             ' ', '\0', 'x', '-', (char)0xc1};
  static const size_t at[] = {0, 1, 31, 62, 63};
  struct keyfile *f = *state;
  char text[2 * CTKN_KEY_LEN + 1];

  for (size_t i = 0; i < sizeof(bad); i++) {
    for (size_t j = 0; j < sizeof(at) / sizeof(at[0]); j++) {
      memcpy(text, f->hex, 2 * CTKN_KEY_LEN);
      text[at[j]] = bad[i];
      text[2 * CTKN_KEY_LEN] = '\n';
      put(f->path, text, sizeof(text), 0600);
      assert_refused(f, "hex digits");
    }
  }
}

static void test_key_load_refuses_group_or_other_access(void **state)
{
  static const mode_t modes[] = {0644, 0640, 0604, 0660, 0666,
                                 0610, 0601, 0620, 0602, 0700 | 004};
  struct keyfile *f = *state;
  char fix[128];

  snprintf(fix, sizeof(fix), "chmod 600 %s", f->path);
  for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
    /* A valid key: only the mode is wrong. */
    put(f->path, f->hex, 2 * CTKN_KEY_LEN, modes[i]);
    assert_refused(f, fix);
  }
}

static void test_key_load_refuses_missing_file(void **state)
{
  struct keyfile *f = *state;

  assert_int_equal(unlink(f->path), 0);
  assert_refused(f, "cannot open");
}

static void test_key_load_refuses_a_directory(void **state)
{
  struct keyfile *f = *state;

  assert_int_equal(unlink(f->path), 0);
  assert_int_equal(mkdir(f->path, 0700), 0);
  assert_refused(f, "not a regular file");
  assert_int_equal(rmdir(f->path), 0);
}

/* /dev/zero and a FIFO as the deployment key: refused at once, not read
 * without end or waited on. */
static void test_key_load_refuses_devices_and_fifos(void **state)
{
  struct keyfile *f = *state;
  uint8_t key[CTKN_KEY_LEN];
  struct ctkn_err err;

  assert_int_equal(ctkn_key_load("/dev/zero", key, &err), CTKN_EINVAL);
  assert_non_null(strstr(err.msg, "/dev/zero: not a regular file"));
  assert_int_equal(unlink(f->path), 0);
  assert_int_equal(mkfifo(f->path, 0600), 0);
  assert_refused(f, "not a regular file (a FIFO)");
}

/* A public key file (--trust-root): 64 hex digits, a regular file of at
 * most 66 bytes, checked like every key file. */
static void test_pubkey_load_reads_hex_and_refuses_the_rest(void **state)
{
  struct keyfile *f = *state;
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  struct ctkn_err err;
  char text[2 * CTKN_SIGN_PUB_LEN + 8];

  put(f->path, f->HEX, 2 * CTKN_KEY_LEN, 0644);
  assert_int_equal(ctkn_pubkey_load(f->path, pub, &err), CTKN_OK);
  assert_memory_equal(pub, f->key, CTKN_SIGN_PUB_LEN);
  snprintf(text, sizeof(text), "%s\r\n", f->hex);
  put(f->path, text, strlen(text), 0644);
  assert_int_equal(ctkn_pubkey_load(f->path, pub, &err), CTKN_OK);
  assert_memory_equal(pub, f->key, CTKN_SIGN_PUB_LEN);
  /* The wrong length, a non-hex digit, too long. */
  put(f->path, f->hex, 2 * CTKN_KEY_LEN - 1, 0644);
  assert_int_equal(ctkn_pubkey_load(f->path, pub, &err), CTKN_EINVAL);
  assert_non_null(strstr(err.msg, "want exactly 64 hex digits"));
  memcpy(text, f->hex, 2 * CTKN_KEY_LEN);
  text[5] = 'g';
  put(f->path, text, 2 * CTKN_KEY_LEN, 0644);
  assert_int_equal(ctkn_pubkey_load(f->path, pub, &err), CTKN_EINVAL);
  snprintf(text, sizeof(text), "%s\n\n\n", f->hex);
  put(f->path, text, strlen(text), 0644);
  assert_int_equal(ctkn_pubkey_load(f->path, pub, &err), CTKN_EINVAL);
  assert_non_null(strstr(err.msg, "more than 66 bytes"));
  /* Not a regular file. */
  assert_int_equal(ctkn_pubkey_load("/dev/zero", pub, &err), CTKN_EINVAL);
  assert_non_null(strstr(err.msg, "not a regular file"));
  assert_int_equal(unlink(f->path), 0);
  assert_int_equal(mkfifo(f->path, 0600), 0);
  assert_int_equal(ctkn_pubkey_load(f->path, pub, &err), CTKN_EINVAL);
  assert_non_null(strstr(err.msg, "not a regular file (a FIFO)"));
}

/* ---- signatures ---------------------------------------------------------- */

/* RFC 8032, section 7.1, TEST 1 and TEST 2. */
static void test_ed25519_matches_rfc8032_vectors(void **state)
{
  static const char *const v[2][4] = {
      {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
       "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
       "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8"
       "821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
      {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
       "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
       "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085a"
       "c1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
  };
  char dir[] = "/tmp/ctkn_test_sign_XXXXXX", path[64];
  (void)state;

  assert_non_null(mkdtemp(dir));
  for (int t = 0; t < 2; t++) {
    uint8_t seed[32], pub[32], want[64], sig[64], got[32], msg[1];
    size_t mlen = strlen(v[t][2]) / 2;
    ctkn_seckey *k;
    ctkn_pubkey *p;
    unhex(v[t][0], seed, 32);
    unhex(v[t][1], pub, 32);
    unhex(v[t][3], want, 64);
    if (mlen)
      unhex(v[t][2], msg, mlen);
    /* The seed travels through a key file, as writers keep it. */
    snprintf(path, sizeof(path), "%s/k%d", dir, t);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", v[t][0]);
    fclose(f);
    chmod(path, 0600);
    assert_int_equal(ctkn_seckey_load(&k, path, NULL), CTKN_OK);
    ctkn_seckey_public(k, got);
    assert_memory_equal(got, pub, 32);
    assert_int_equal(ctkn_seckey_sign(k, msg, mlen, sig, NULL), CTKN_OK);
    assert_memory_equal(sig, want, 64);
    assert_int_equal(ctkn_pubkey_new(&p, pub, NULL), CTKN_OK);
    assert_true(ctkn_pubkey_verify(p, msg, mlen, sig));
    sig[10] ^= 1;
    assert_false(ctkn_pubkey_verify(p, msg, mlen, sig));
    sig[10] ^= 1;
    assert_false(ctkn_pubkey_verify(p, "x", 1, sig));
    ctkn_pubkey_free(p);
    ctkn_seckey_free(k);
    unlink(path);
  }
  rmdir(dir);
}

static void test_seckeys_save_once_and_load_back(void **state)
{
  char dir[] = "/tmp/ctkn_test_sign_XXXXXX", path[64];
  uint8_t a[32], b[32], sig[64];
  char id[CTKN_KEY_ID_BUF];
  struct ctkn_err err = {0};
  ctkn_seckey *k, *back;
  ctkn_pubkey *other;
  struct stat sb;
  (void)state;

  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/writer.key", dir);
  assert_int_equal(ctkn_seckey_generate(&k, NULL), CTKN_OK);
  assert_int_equal(ctkn_seckey_save(k, path, &err), CTKN_OK);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  /* Never over another key. */
  assert_int_equal(ctkn_seckey_save(k, path, &err), CTKN_EIO);
  assert_non_null(strstr(err.msg, "exists already"));
  assert_int_equal(ctkn_seckey_load(&back, path, NULL), CTKN_OK);
  ctkn_seckey_public(k, a);
  ctkn_seckey_public(back, b);
  assert_memory_equal(a, b, 32);
  ctkn_key_id(a, id);
  assert_int_equal(strlen(id), 16);
  /* Another key's signature does not verify under this one. */
  assert_int_equal(ctkn_seckey_sign(back, "m", 1, sig, NULL), CTKN_OK);
  ctkn_seckey_free(back);
  assert_int_equal(ctkn_seckey_generate(&back, NULL), CTKN_OK);
  ctkn_seckey_public(back, b);
  assert_int_equal(ctkn_pubkey_new(&other, b, NULL), CTKN_OK);
  assert_false(ctkn_pubkey_verify(other, "m", 1, sig));
  ctkn_pubkey_free(other);
  ctkn_seckey_free(back);
  ctkn_seckey_free(k);
  unlink(path);
  rmdir(dir);
}

/* A signature this process made, or verified once, is known good and not
 * verified again; any other (a bad one, another key's, another message)
 * is verified every time, and a bad one is never taken for good. */
static void test_a_known_good_signature_is_not_verified_again(void **state)
{
  uint8_t pub[32], other_pub[32], sig[64], sig2[64];
  ctkn_seckey *k, *other;
  ctkn_pubkey *p, *q;
  (void)state;

  assert_int_equal(ctkn_seckey_generate(&k, NULL), CTKN_OK);
  assert_int_equal(ctkn_seckey_generate(&other, NULL), CTKN_OK);
  ctkn_seckey_public(k, pub);
  ctkn_seckey_public(other, other_pub);
  assert_int_equal(ctkn_pubkey_new(&p, pub, NULL), CTKN_OK);
  assert_int_equal(ctkn_pubkey_new(&q, other_pub, NULL), CTKN_OK);

  /* Signed here: good at once, without libcrypto's verification. */
  assert_int_equal(ctkn_seckey_sign(k, "checkpoint", 10, sig, NULL), CTKN_OK);
  uint64_t n = ctkn__sign_verifications();
  assert_true(ctkn_pubkey_verify(p, "checkpoint", 10, sig));
  assert_int_equal(ctkn__sign_verifications(), n);
  /* Under another key, or for another message: verified, and refused. */
  assert_false(ctkn_pubkey_verify(q, "checkpoint", 10, sig));
  assert_false(ctkn_pubkey_verify(p, "checkpoinT", 10, sig));
  assert_int_equal(ctkn__sign_verifications(), n + 2);
  /* A bad signature is verified each time, never remembered. */
  memcpy(sig2, sig, 64);
  sig2[5] ^= 1;
  assert_false(ctkn_pubkey_verify(p, "checkpoint", 10, sig2));
  assert_false(ctkn_pubkey_verify(p, "checkpoint", 10, sig2));
  assert_int_equal(ctkn__sign_verifications(), n + 4);
  /* Forgotten (another process, say): verified once, then known. */
  ctkn__sign_forget_known();
  assert_true(ctkn_pubkey_verify(p, "checkpoint", 10, sig));
  assert_true(ctkn_pubkey_verify(p, "checkpoint", 10, sig));
  assert_int_equal(ctkn__sign_verifications(), n + 5);
  ctkn_pubkey_free(p);
  ctkn_pubkey_free(q);
  ctkn_seckey_free(k);
  ctkn_seckey_free(other);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ct_equal_compares_every_byte),
      cmocka_unit_test(test_ed25519_matches_rfc8032_vectors),
      cmocka_unit_test(test_seckeys_save_once_and_load_back),
      cmocka_unit_test(test_a_known_good_signature_is_not_verified_again),
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
      cmocka_unit_test(test_seal_then_unseal_round_trips_every_length),
      cmocka_unit_test(test_seal_matches_gcm_spec_aes256_vectors),
      cmocka_unit_test(test_unseal_refuses_any_changed_byte_and_wipes_out),
      cmocka_unit_test(test_unseal_refuses_another_aad_and_wipes_out),
      cmocka_unit_test(test_unseal_with_another_key_fails_and_wipes_out),
      cmocka_unit_test(test_unseal_refuses_input_shorter_than_overhead),
      cmocka_unit_test(test_two_seals_of_one_plaintext_differ),
      cmocka_unit_test_setup_teardown(
          test_key_load_accepts_hex_either_case_or_raw, keyfile_setup,
          keyfile_teardown),
      cmocka_unit_test_setup_teardown(test_key_load_refuses_other_lengths,
                                      keyfile_setup, keyfile_teardown),
      cmocka_unit_test_setup_teardown(test_key_load_refuses_non_hex,
                                      keyfile_setup, keyfile_teardown),
      cmocka_unit_test_setup_teardown(
          test_key_load_refuses_group_or_other_access, keyfile_setup,
          keyfile_teardown),
      cmocka_unit_test_setup_teardown(test_key_load_refuses_missing_file,
                                      keyfile_setup, keyfile_teardown),
      cmocka_unit_test_setup_teardown(test_key_load_refuses_a_directory,
                                      keyfile_setup, keyfile_teardown),
      cmocka_unit_test_setup_teardown(test_key_load_refuses_devices_and_fifos,
                                      keyfile_setup, keyfile_teardown),
      cmocka_unit_test_setup_teardown(
          test_pubkey_load_reads_hex_and_refuses_the_rest, keyfile_setup,
          keyfile_teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
