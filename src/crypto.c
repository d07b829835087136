/*
 * crypto.c - SHA-256, HMAC-SHA256 and hex over OpenSSL 3's libcrypto.
 *
 * Only the EVP digest API and the one-shot HMAC() are used: both are
 * current in OpenSSL 3 (HMAC_CTX and SHA256_Init are deprecated).
 *
 * The functions that return void can only fail when libcrypto cannot
 * allocate its few bytes of context. A digest that silently stayed zero
 * would be worse than stopping (a wrong HMAC could verify or a wrong
 * digest could be stored), so such a failure aborts.
 */
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ctkn/crypto.h"

struct ctkn_sha256 {
  EVP_MD_CTX *md;
  bool final; /* set by ctkn_sha256_final(); updates are then a bug */
};

static void crypto_fail(const char *what)
{
  fprintf(stderr, "ctkn: libcrypto failed in %s\n", what);
  abort();
}

/* OpenSSL 3 looks an algorithm up on every use of EVP_sha256(); fetch
 * SHA-256 once (the server hashes every request's API key). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
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
