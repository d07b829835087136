/*
 * crypto.h - hashing for digests, idempotency, webhook signatures and API
 * keys, and the constant-time helpers secrets need.
 *
 * Wraps OpenSSL's libcrypto; no OpenSSL type crosses this header.
 *
 * Lifetime: ctkn_sha256_new() -> update... -> final -> ctkn_sha256_free().
 * Errors:   CTKN_ENOMEM when libcrypto cannot allocate.
 * Not here: random numbers (token.h, getrandom(2)).
 */
#ifndef CTKN_CRYPTO_H
#define CTKN_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"

#define CTKN_SHA256_LEN 32

typedef struct ctkn_sha256 ctkn_sha256;

/* One-shot SHA-256 of len bytes. */
void ctkn_sha256_once(const void *data, size_t len,
                      uint8_t out[CTKN_SHA256_LEN]);

/* On success returns a new context: caller owns it, release with
 * ctkn_sha256_free(). Returns NULL when out of memory. */
ctkn_sha256 *ctkn_sha256_new(void);
void ctkn_sha256_update(ctkn_sha256 *h, const void *data, size_t len);
/* Write the digest. The context may not be updated afterwards. */
void ctkn_sha256_final(ctkn_sha256 *h, uint8_t out[CTKN_SHA256_LEN]);
/* Free. NULL is a no-op. */
void ctkn_sha256_free(ctkn_sha256 *h);

/* HMAC-SHA256 of data under key. */
void ctkn_hmac_sha256(const void *key, size_t keylen, const void *data,
                      size_t len, uint8_t out[CTKN_SHA256_LEN]);

/* true when the len bytes at a and b are equal, in a time that depends on
 * len only (CRYPTO_memcmp): for comparing secrets and their digests. */
bool ctkn_ct_equal(const void *a, const void *b, size_t len);

/* Overwrite len bytes at p with zeros in a way the compiler cannot drop
 * (OPENSSL_cleanse): for secrets about to go out of scope. */
void ctkn_wipe(void *p, size_t len);

/* Lowercase hex of len bytes into out, which holds 2 * len + 1 bytes. */
void ctkn_hex(const uint8_t *bytes, size_t len, char *out);

/* Standard base64 (with padding) of len bytes into out, which holds
 * 4 * ((len + 2) / 3) + 1 bytes. Returns the length written. */
size_t ctkn_base64(const void *bytes, size_t len, char *out);

#endif /* CTKN_CRYPTO_H */
