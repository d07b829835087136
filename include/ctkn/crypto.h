/*
 * crypto.h - hashing for digests, idempotency, webhook signatures and API
 * keys; sealing of webhook endpoint secrets under the deployment key; and
 * the constant-time helpers secrets need.
 *
 * Wraps OpenSSL 3's libcrypto (EVP digests, HMAC, AES-256-GCM, and
 * RAND_bytes for nonces); no OpenSSL type crosses this header.
 *
 * Lifetime: ctkn_sha256_new() -> update... -> final -> ctkn_sha256_free().
 *           ctkn_key_load() once -> ctkn_seal() / ctkn_unseal() -> the
 *           caller wipes the key with ctkn_wipe() when done.
 * Errors:   CTKN_ENOMEM when libcrypto cannot allocate; CTKN_EINVAL for a
 *           refused key file or a sealed secret that does not verify.
 * Not here: random tokens and API keys (token.h, getrandom(2)); where
 *           sealed secrets are stored.
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

/* ---- sealed secrets ---------------------------------------------------- */

#define CTKN_KEY_LEN       32 /* AES-256 key */
#define CTKN_SEAL_NONCE    12
#define CTKN_SEAL_TAG      16
#define CTKN_SEAL_OVERHEAD (CTKN_SEAL_NONCE + CTKN_SEAL_TAG)

/*
 * Load the deployment key from path into key. The file holds either
 * exactly 64 hex digits (either case), optionally followed by one newline
 * ("\n" or "\r\n"), or exactly 32 raw bytes; nothing else. It must be a
 * regular file of at most 66 bytes that neither group nor others may read
 * or write (mode & 077 == 0), all checked before a byte is read (a FIFO
 * or a device such as /dev/zero is refused at once); symbolic links are
 * followed.
 *
 * CTKN_EINVAL, with a message naming the file and the rule it broke, when
 * the file is missing or unreadable, has another shape, or is open to
 * group or others (the message then gives the fix, `chmod 600 FILE`). The
 * key bytes never appear in a message. On failure key is zeroed. The
 * file's contents are read with read(2) into a buffer that is wiped before
 * return, so no stdio buffer keeps a copy. The caller owns key and wipes
 * it with ctkn_wipe() when done. Thread-safe.
 */
int ctkn_key_load(const char *path, uint8_t key[CTKN_KEY_LEN],
                  struct ctkn_err *err);

/*
 * Seal len bytes of pt with AES-256-GCM under key. out receives
 * len + CTKN_SEAL_OVERHEAD bytes: a fresh random nonce (CTKN_SEAL_NONCE
 * bytes from RAND_bytes), the ciphertext (len bytes), then the tag
 * (CTKN_SEAL_TAG bytes). aadlen bytes of aad are authenticated but neither
 * encrypted nor stored: pass the destination's ID, so that a sealed secret
 * cannot be moved to another record; ctkn_unseal() needs the same bytes.
 * aad may be NULL when aadlen is 0, and pt may be NULL when len is 0. out
 * must not overlap pt. Borrows every argument for the call.
 *
 * CTKN_ENOMEM when libcrypto cannot allocate; CTKN_EINTERNAL when it
 * fails otherwise (no random bytes); out is then wiped. Thread-safe.
 */
int ctkn_seal(const uint8_t key[CTKN_KEY_LEN], const void *aad, size_t aadlen,
              const void *pt, size_t len, uint8_t *out, struct ctkn_err *err);

/*
 * Open what ctkn_seal() made: in holds len >= CTKN_SEAL_OVERHEAD bytes;
 * out receives len - CTKN_SEAL_OVERHEAD bytes of plaintext. aad must be
 * the bytes given to ctkn_seal(). out must not overlap in. Borrows every
 * argument for the call.
 *
 * CTKN_EINVAL ("wrong key or damaged secret") when len is too short or
 * the key, the nonce, the ciphertext, the tag or the aad differ from the
 * seal's; out is then wiped, so no unauthenticated plaintext is left in
 * it. CTKN_ENOMEM and CTKN_EINTERNAL as for ctkn_seal(). Thread-safe.
 */
int ctkn_unseal(const uint8_t key[CTKN_KEY_LEN], const void *aad, size_t aadlen,
                const void *in, size_t len, uint8_t *out, struct ctkn_err *err);

/* ---- signatures (Ed25519) ------------------------------------------- */

#define CTKN_SIGN_PUB_LEN  32
#define CTKN_SIGN_SEED_LEN 32
#define CTKN_SIG_LEN       64
#define CTKN_KEY_ID_BUF    17 /* 16 hex digits and the NUL */

typedef struct ctkn_pubkey ctkn_pubkey;
typedef struct ctkn_seckey ctkn_seckey;

/* A public key from its 32 raw bytes. On success *out is a new key:
 * caller owns it; release with ctkn_pubkey_free(). Errors: CTKN_EINVAL
 * (not a key), CTKN_ENOMEM. */
int ctkn_pubkey_new(ctkn_pubkey **out, const uint8_t pub[CTKN_SIGN_PUB_LEN],
                    struct ctkn_err *err);
/* Free. NULL is a no-op. */
void ctkn_pubkey_free(ctkn_pubkey *k);
/* The key's 32 raw bytes. */
void ctkn_pubkey_raw(const ctkn_pubkey *k, uint8_t pub[CTKN_SIGN_PUB_LEN]);
/* Whether sig is k's signature of the len bytes at msg. Any failure to
 * verify, libcrypto's included, is false. Thread-safe. */
bool ctkn_pubkey_verify(const ctkn_pubkey *k, const void *msg, size_t len,
                        const uint8_t sig[CTKN_SIG_LEN]);

/* Read a public key file (ctkn trust init's FILE.pub: 64 hex digits, then
 * at most one newline) into pub. Like every key file it must be a regular
 * file of bounded size (66 bytes here), checked before a byte is read.
 * Borrows path for the call. Errors: CTKN_EINVAL naming the file and the
 * rule (also when it cannot be opened), CTKN_ENOMEM. */
int ctkn_pubkey_load(const char *path, uint8_t pub[CTKN_SIGN_PUB_LEN],
                     struct ctkn_err *err);

/* A new secret key from the CSPRNG, or one loaded from a key file of the
 * deployment key's shape (ctkn_key_load(): the 32-byte seed as 64 hex
 * digits, mode 0600). On success *out is a new key: caller owns it;
 * release with ctkn_seckey_free(), which wipes it. Errors: those of
 * ctkn_key_load(), CTKN_EINTERNAL, CTKN_ENOMEM. */
int ctkn_seckey_generate(ctkn_seckey **out, struct ctkn_err *err);
int ctkn_seckey_load(ctkn_seckey **out, const char *path, struct ctkn_err *err);
/* Write k's seed to a new file at path (mode 0600; an existing file is
 * never replaced). Errors: CTKN_EIO (exists, or cannot be written; err
 * names the path, never the key). */
int ctkn_seckey_save(const ctkn_seckey *k, const char *path,
                     struct ctkn_err *err);
/* Free and wipe. NULL is a no-op. */
void ctkn_seckey_free(ctkn_seckey *k);
/* k's public key. */
void ctkn_seckey_public(const ctkn_seckey *k, uint8_t pub[CTKN_SIGN_PUB_LEN]);
/* k's signature of the len bytes at msg. Thread-safe. Errors:
 * CTKN_ENOMEM, CTKN_EINTERNAL. */
int ctkn_seckey_sign(const ctkn_seckey *k, const void *msg, size_t len,
                     uint8_t sig[CTKN_SIG_LEN], struct ctkn_err *err);

/* A key's ID: the first 8 bytes of the SHA-256 of its public key, as 16
 * lowercase hex digits. */
void ctkn_key_id(const uint8_t pub[CTKN_SIGN_PUB_LEN],
                 char out[CTKN_KEY_ID_BUF]);

#endif /* CTKN_CRYPTO_H */
