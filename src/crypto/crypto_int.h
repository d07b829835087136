/*
 * crypto_int.h - the crypto module's seam for its tests. Not installed;
 * nothing but the crypto module and tests/unit/test_crypto.c include it.
 */
#ifndef CTKN_CRYPTO_INT_H
#define CTKN_CRYPTO_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"

/* ctkn_seal() with the nonce given instead of drawn. Two seals under one
 * key with one nonce give away the XOR of their plaintexts and the means
 * to forge tags, so nothing but a test may pass a nonce of its own.
 * Errors: as ctkn_seal(). */
int ctkn__seal_with_nonce(const uint8_t key[CTKN_KEY_LEN],
                          const uint8_t nonce[CTKN_SEAL_NONCE], const void *aad,
                          size_t aadlen, const void *pt, size_t len,
                          uint8_t *out, struct ctkn_err *err);

/* Ed25519 verifications libcrypto has run in this process (a signature
 * known good is not verified again: sign.c). */
uint64_t ctkn__sign_verifications(void);
/* Forget the signatures known good. */
void ctkn__sign_forget_known(void);

/* libcrypto started once for the process, without its atexit() clean-up
 * (crypto.c); every entry point that reaches libcrypto calls it first. */
void ctkn__crypto_start(void);

#endif /* CTKN_CRYPTO_INT_H */
