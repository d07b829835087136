/*
 * crypto.h - hashing for digests, idempotency and webhook signatures.
 *
 * Wraps OpenSSL's libcrypto; no OpenSSL type crosses this header.
 *
 * Lifetime: ctkn_sha256_new() -> update... -> final -> ctkn_sha256_free().
 * Errors:   CTKN_ENOMEM when libcrypto cannot allocate.
 * Not here: random numbers (token.h, getrandom(2)).
 */
#ifndef CTKN_CRYPTO_H
#define CTKN_CRYPTO_H

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

/* Lowercase hex of len bytes into out, which holds 2 * len + 1 bytes. */
void ctkn_hex(const uint8_t *bytes, size_t len, char *out);

/* Standard base64 (with padding) of len bytes into out, which holds
 * 4 * ((len + 2) / 3) + 1 bytes. Returns the length written. */
size_t ctkn_base64(const void *bytes, size_t len, char *out);

#endif /* CTKN_CRYPTO_H */
