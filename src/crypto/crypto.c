/*
 * crypto.c - SHA-256, HMAC-SHA256, hex, the deployment key file and
 * AES-256-GCM sealing, over OpenSSL 3's libcrypto.
 *
 * Only the EVP digest and cipher APIs, OSSL_PARAM and the one-shot HMAC()
 * are used: all are current in OpenSSL 3 (HMAC_CTX, SHA256_Init and the
 * AES_* functions are deprecated).
 *
 * The functions that return void can only fail when libcrypto cannot
 * allocate its few bytes of context. A digest that silently stayed zero
 * would be worse than stopping (a wrong HMAC could verify or a wrong
 * digest could be stored), so such a failure aborts. Sealing returns its
 * errors instead: a daemon can refuse one secret and keep serving.
 *
 * Key material (the deployment key, plaintext secrets) never reaches
 * err->msg, and every buffer that held some is wiped before it goes out of
 * scope.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "crypto/crypto_int.h"
#include "ctkn/crypto.h"
#include "internal.h"

#define PATH_SHOW    80 /* bytes of a path quoted in err->msg (twice fits) */
#define KEY_HEX      (2 * CTKN_KEY_LEN)
#define KEY_FILE_MAX (KEY_HEX + 2) /* 64 hex digits and "\r\n" */
#define GCM_CHUNK    (1 << 30)     /* EVP_CipherUpdate takes an int length */
#define BAD_SEAL     "wrong key or damaged secret"

struct ctkn_sha256 {
  EVP_MD_CTX *md;
  bool final; /* set by ctkn_sha256_final(); updates are then a bug */
};

static void crypto_fail(const char *what)
{
  ctkn__diag(CTKN_DIAG_ERROR, "crypto", "libcrypto failed in %s", what);
  abort();
}

/* libcrypto's first use in the process, from every entry point that
 * reaches it: without OPENSSL_INIT_NO_ATEXIT libcrypto frees all of its
 * tables in an atexit() handler, 0.4 ms of every one-shot command's exit
 * (perf); the process's exit returns the memory anyway. Keys are wiped
 * by their owners (ctkn_seckey_free()), not by that handler. */
static pthread_once_t start_once = PTHREAD_ONCE_INIT;

static void start(void)
{
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

void ctkn__crypto_start(void)
{
  pthread_once(&start_once, start);
}

/* OpenSSL 3 looks an algorithm up on every use of EVP_sha256(); fetch
 * SHA-256 once (the server hashes every request's API key). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
  ctkn__crypto_start();
  sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
  pthread_once(&sha256_once, sha256_fetch);
  return sha256_md != NULL ? sha256_md : EVP_sha256();
}

void ctkn_sha256_once(const void *data, size_t len,
                      uint8_t out[CTKN_SHA256_LEN])
{
  unsigned int n = 0;

  if (data == NULL)
    data = "";
  if (EVP_Digest(data, len, out, &n, sha256(), NULL) != 1 ||
      n != CTKN_SHA256_LEN)
    crypto_fail("EVP_Digest");
}

ctkn_sha256 *ctkn_sha256_new(void)
{
  ctkn_sha256 *h = malloc(sizeof(*h));

  if (h == NULL)
    return NULL;
  h->final = false;
  h->md = EVP_MD_CTX_new();
  if (h->md == NULL || EVP_DigestInit_ex(h->md, sha256(), NULL) != 1) {
    EVP_MD_CTX_free(h->md);
    free(h);
    return NULL;
  }
  return h;
}

void ctkn_sha256_update(ctkn_sha256 *h, const void *data, size_t len)
{
  if (h->final)
    crypto_fail("ctkn_sha256_update after final");
  if (len == 0)
    return;
  if (EVP_DigestUpdate(h->md, data, len) != 1)
    crypto_fail("EVP_DigestUpdate");
}

void ctkn_sha256_final(ctkn_sha256 *h, uint8_t out[CTKN_SHA256_LEN])
{
  unsigned int n = 0;

  if (h->final)
    crypto_fail("ctkn_sha256_final called twice");
  h->final = true;
  if (EVP_DigestFinal_ex(h->md, out, &n) != 1 || n != CTKN_SHA256_LEN)
    crypto_fail("EVP_DigestFinal_ex");
}

void ctkn_sha256_free(ctkn_sha256 *h)
{
  if (h == NULL)
    return;
  EVP_MD_CTX_free(h->md);
  free(h);
}

void ctkn_hmac_sha256(const void *key, size_t keylen, const void *data,
                      size_t len, uint8_t out[CTKN_SHA256_LEN])
{
  static const unsigned char empty[1];
  uint8_t hashed[CTKN_SHA256_LEN];
  unsigned int n = 0;

  /* HMAC() takes an int key length. RFC 2104 replaces any key longer than
   * the block size by its hash, so hashing a huge key here first gives the
   * same MAC. A NULL key would mean "reuse the previous key" to OpenSSL. */
  if (keylen > INT_MAX) {
    ctkn_sha256_once(key, keylen, hashed);
    key = hashed;
    keylen = sizeof(hashed);
  }
  if (key == NULL)
    key = empty;
  if (data == NULL)
    data = empty;
  ctkn__crypto_start();
  if (HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &n) == NULL ||
      n != CTKN_SHA256_LEN)
    crypto_fail("HMAC");
}

bool ctkn_ct_equal(const void *a, const void *b, size_t len)
{
  return CRYPTO_memcmp(a, b, len) == 0;
}

void ctkn_wipe(void *p, size_t len)
{
  OPENSSL_cleanse(p, len);
}

void ctkn_hex(const uint8_t *bytes, size_t len, char *out)
{
  static const char digits[] = "0123456789abcdef";
  size_t i;

  for (i = 0; i < len; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 0x0f];
  }
  out[2 * len] = '\0';
}

size_t ctkn_base64(const void *bytes, size_t len, char *out)
{
  const unsigned char *p = bytes;
  size_t n = 0;

  /* EVP_EncodeBlock takes an int length: encode in chunks of whole
   * 3-byte groups so no padding appears mid-stream. */
  while (len > 0) {
    size_t chunk = len > 3 * 1024 * 1024 ? 3 * 1024 * 1024 : len;
    n += (size_t)EVP_EncodeBlock((unsigned char *)out + n, p, (int)chunk);
    p += chunk;
    len -= chunk;
  }
  out[n] = '\0';
  return n;
}

/* ---- the deployment key file ------------------------------------------ */

/*
 * Decode 2 * CTKN_KEY_LEN hex digits of either case into key. Returns
 * false when any character is not a hex digit. Branch-free per character
 * (the arithmetic of libsodium's sodium_hex2bin), so the time taken does
 * not depend on the key's digits.
 */
static bool key_from_hex(const uint8_t *s, uint8_t key[CTKN_KEY_LEN])
{
  unsigned bad = 0;

  for (size_t i = 0; i < KEY_HEX; i++) {
    unsigned c = s[i];
    /* num is 0..9 for '0'..'9'; num_ok is 0xff exactly then, else 0. */
    unsigned num = c ^ 0x30u;
    unsigned num_ok = ((num - 10u) >> 8) & 0xffu;
    /* alpha is 10..15 for 'A'..'F' and 'a'..'f'; alpha_ok likewise. */
    unsigned alpha = ((c & ~0x20u) - 55u) & 0xffu;
    unsigned alpha_ok = (((alpha - 10u) ^ (alpha - 16u)) >> 8) & 0xffu;
    unsigned v = (num_ok & num) | (alpha_ok & alpha);

    bad |= ~(num_ok | alpha_ok) & 0xffu;
    if (i % 2 == 0)
      key[i / 2] = (uint8_t)(v << 4);
    else
      key[i / 2] |= (uint8_t)v;
  }
  return bad == 0;
}

/* The file's bytes to the key, or CTKN_EINVAL naming the shape rule. */
static int key_parse(const char *path, const uint8_t *buf, size_t n,
                     uint8_t key[CTKN_KEY_LEN], struct ctkn_err *err)
{
  if (n == CTKN_KEY_LEN) {
    memcpy(key, buf, CTKN_KEY_LEN);
    return CTKN_OK;
  }
  if (n == KEY_HEX || (n == KEY_HEX + 1 && buf[KEY_HEX] == '\n') ||
      (n == KEY_HEX + 2 && buf[KEY_HEX] == '\r' && buf[KEY_HEX + 1] == '\n')) {
    if (key_from_hex(buf, key))
      return CTKN_OK;
    return ctkn__err(err, CTKN_EINVAL,
                     "key file %.*s: the first %d characters must all be hex "
                     "digits (0-9, a-f, A-F)",
                     PATH_SHOW, path, KEY_HEX);
  }
  return ctkn__err(err, CTKN_EINVAL,
                   "key file %.*s: %zu bytes; want exactly %d hex digits "
                   "(then at most one newline) or exactly %d raw bytes",
                   PATH_SHOW, path, n, KEY_HEX, CTKN_KEY_LEN);
}

int ctkn_key_load(const char *path, uint8_t key[CTKN_KEY_LEN],
                  struct ctkn_err *err)
{
  static const struct ctkn__file_rules rules = {
      .what = "key file",
      .max = KEY_FILE_MAX,
      .shape = "want exactly 64 hex digits (then at most one newline) or "
               "exactly 32 raw bytes",
      .open_code = CTKN_EINVAL,
      .private_mode = true,
  };
  struct ctkn__buf b = CTKN__BUF_INIT;
  int rc;

  ctkn_wipe(key, CTKN_KEY_LEN);
  rc = ctkn__file_read(path, &rules, &b, err);
  if (rc == CTKN_OK)
    rc = key_parse(path, (const uint8_t *)b.data, b.len, key, err);
  if (b.data != NULL)
    ctkn_wipe(b.data, b.cap);
  ctkn__buf_free(&b);
  if (rc != CTKN_OK)
    ctkn_wipe(key, CTKN_KEY_LEN);
  return rc;
}

/* ---- AES-256-GCM -------------------------------------------------------- */

/* Fetched once, as SHA-256 above: the lookup is per use otherwise. */
static EVP_CIPHER *gcm_cipher;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void gcm_fetch(void)
{
  ctkn__crypto_start();
  gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static const EVP_CIPHER *aes256gcm(void)
{
  pthread_once(&gcm_once, gcm_fetch);
  return gcm_cipher != NULL ? gcm_cipher : EVP_aes_256_gcm();
}

/* CTKN_EINTERNAL with libcrypto's reason, and its error queue emptied. */
static int gcm_fail(struct ctkn_err *err, const char *what)
{
  char why[160] = "";
  unsigned long e = ERR_get_error();

  if (e != 0)
    ERR_error_string_n(e, why, sizeof(why));
  ERR_clear_error();
  return ctkn__err(err, CTKN_EINTERNAL, "AES-256-GCM: %s failed%s%s", what,
                   why[0] != '\0' ? ": " : "", why);
}

/* Feed len bytes through ctx in int-sized pieces: to out when it is not
 * NULL (GCM is a stream mode, so each piece comes out whole), as AAD when
 * out is NULL. */
static bool gcm_update(EVP_CIPHER_CTX *ctx, uint8_t *out, const void *in,
                       size_t len)
{
  const uint8_t *p = in;

  while (len > 0) {
    int piece = len > GCM_CHUNK ? GCM_CHUNK : (int)len;
    int outl = 0;

    if (EVP_CipherUpdate(ctx, out, &outl, p, piece) != 1 ||
        (out != NULL && outl != piece))
      return false;
    if (out != NULL)
      out += piece;
    p += piece;
    len -= (size_t)piece;
  }
  return true;
}

/*
 * One GCM pass. Encrypting (enc 1), tag is written; decrypting (enc 0),
 * tag is checked, and a mismatch is CTKN_EINVAL. out gets len bytes either
 * way; the callers wipe it on failure.
 */
static int gcm_run(int enc, const uint8_t key[CTKN_KEY_LEN],
                   const uint8_t nonce[CTKN_SEAL_NONCE], const void *aad,
                   size_t aadlen, const void *in, size_t len, uint8_t *out,
                   uint8_t tag[CTKN_SEAL_TAG], struct ctkn_err *err)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  OSSL_PARAM params[2];
  uint8_t none[CTKN_SEAL_TAG];
  int outl = 0, rc = CTKN_OK;

  if (ctx == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "AES-256-GCM: out of memory");
  params[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag,
                                                CTKN_SEAL_TAG);
  params[1] = OSSL_PARAM_construct_end();
  /* GCM's default IV length is 12 bytes, the one NIST recommends; checked
   * rather than assumed, since the nonce's length is the format's. */
  if (EVP_CipherInit_ex2(ctx, aes256gcm(), key, nonce, enc, NULL) != 1 ||
      EVP_CIPHER_CTX_get_iv_length(ctx) != CTKN_SEAL_NONCE)
    rc = gcm_fail(err, "init");
  else if (!enc && EVP_CIPHER_CTX_set_params(ctx, params) != 1)
    rc = gcm_fail(err, "setting the tag");
  else if (!gcm_update(ctx, NULL, aad, aadlen) ||
           !gcm_update(ctx, out, in, len))
    rc = gcm_fail(err, enc ? "encrypt" : "decrypt");
  else if (EVP_CipherFinal_ex(ctx, none, &outl) != 1) {
    /* Decrypting, this is the tag check: libcrypto gives no reason. */
    if (enc)
      rc = gcm_fail(err, "final");
    else {
      ERR_clear_error();
      rc = ctkn__err(err, CTKN_EINVAL, BAD_SEAL);
    }
  } else if (enc && EVP_CIPHER_CTX_get_params(ctx, params) != 1)
    rc = gcm_fail(err, "getting the tag");
  EVP_CIPHER_CTX_free(ctx);
  return rc;
}

int ctkn__seal_with_nonce(const uint8_t key[CTKN_KEY_LEN],
                          const uint8_t nonce[CTKN_SEAL_NONCE], const void *aad,
                          size_t aadlen, const void *pt, size_t len,
                          uint8_t *out, struct ctkn_err *err)
{
  int rc;

  memmove(out, nonce, CTKN_SEAL_NONCE);
  rc = gcm_run(1, key, out, aad, aadlen, pt, len, out + CTKN_SEAL_NONCE,
               out + CTKN_SEAL_NONCE + len, err);
  if (rc != CTKN_OK)
    ctkn_wipe(out, len + CTKN_SEAL_OVERHEAD);
  return rc;
}

int ctkn_seal(const uint8_t key[CTKN_KEY_LEN], const void *aad, size_t aadlen,
              const void *pt, size_t len, uint8_t *out, struct ctkn_err *err)
{
  /* A random 96-bit nonce per seal: the number of secrets sealed under one
   * deployment key stays far below the 2^32 that NIST SP 800-38D allows
   * for random nonces. */
  ctkn__crypto_start();
  if (RAND_bytes(out, CTKN_SEAL_NONCE) != 1) {
    ctkn_wipe(out, len + CTKN_SEAL_OVERHEAD);
    return gcm_fail(err, "RAND_bytes for the nonce");
  }
  return ctkn__seal_with_nonce(key, out, aad, aadlen, pt, len, out, err);
}

int ctkn_unseal(const uint8_t key[CTKN_KEY_LEN], const void *aad, size_t aadlen,
                const void *in, size_t len, uint8_t *out, struct ctkn_err *err)
{
  const uint8_t *p = in;
  uint8_t tag[CTKN_SEAL_TAG];
  size_t n;
  int rc;

  if (len < CTKN_SEAL_OVERHEAD)
    return ctkn__err(err, CTKN_EINVAL,
                     BAD_SEAL ": %zu bytes, shorter than any sealed secret",
                     len);
  n = len - CTKN_SEAL_OVERHEAD;
  /* OSSL_PARAM wants a mutable buffer for the tag, even when setting it. */
  memcpy(tag, p + CTKN_SEAL_NONCE + n, CTKN_SEAL_TAG);
  rc = gcm_run(0, key, p, aad, aadlen, p + CTKN_SEAL_NONCE, n, out, tag, err);
  if (rc != CTKN_OK && n > 0)
    ctkn_wipe(out, n);
  return rc;
}
