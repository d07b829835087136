/*
 * sign.c - Ed25519 signatures (crypto.h, "signatures"), over OpenSSL 3's
 * EVP_PKEY with raw keys.
 *
 * A key is held as an EVP_PKEY built once, so signing a checkpoint or
 * verifying one costs the signature alone (about 43-53 µs and 110-126 µs
 * on this machine's cores), not a key parse; a signature this process
 * made or verified before costs a SHA-256 (the known-good digests below).
 * Secret keys live in files of the deployment key's shape (ctkn_key_load(): 64
 * hex digits or 32 raw bytes, mode 0600): the 32-byte Ed25519 seed. They are
 * written to a fresh file of mode 0600 that must not exist yet, and never
 * logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto/crypto_int.h"
#include "ctkn/crypto.h"
#include "internal.h"

struct ctkn_pubkey {
  EVP_PKEY *pk;
  uint8_t raw[CTKN_SIGN_PUB_LEN];
};

struct ctkn_seckey {
  EVP_PKEY *pk;
  uint8_t seed[CTKN_SIGN_SEED_LEN];
  uint8_t pub[CTKN_SIGN_PUB_LEN];
};

int ctkn_pubkey_new(ctkn_pubkey **out, const uint8_t pub[CTKN_SIGN_PUB_LEN],
                    struct ctkn_err *err)
{
  ctkn_pubkey *k = calloc(1, sizeof(*k));

  *out = NULL;
  if (k == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  ctkn__crypto_start();
  k->pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub,
                                      CTKN_SIGN_PUB_LEN);
  if (k->pk == NULL) {
    free(k);
    return ctkn__err(err, CTKN_EINVAL, "not an Ed25519 public key");
  }
  memcpy(k->raw, pub, CTKN_SIGN_PUB_LEN);
  *out = k;
  return CTKN_OK;
}

void ctkn_pubkey_free(ctkn_pubkey *k)
{
  if (k == NULL)
    return;
  EVP_PKEY_free(k->pk);
  free(k);
}

void ctkn_pubkey_raw(const ctkn_pubkey *k, uint8_t pub[CTKN_SIGN_PUB_LEN])
{
  memcpy(pub, k->raw, CTKN_SIGN_PUB_LEN);
}

/*
 * Signatures known good: the SHA-256 of each (public key, signature,
 * message) this process verified, or made itself with the secret key. A
 * writer's own readers (a server's command thread and follower) then
 * check the checkpoints it signed at the cost of a hash, not an Ed25519
 * verification (a hash is ~1 us, a verification ~110), and two readers in
 * one process verify a checkpoint once. Sound as long as SHA-256 is
 * collision resistant: a hit means these very bytes were verified, or
 * signed with the key. Only good signatures are kept; a bad one is
 * checked every time. Direct-mapped: a new digest takes its slot from an
 * older one.
 */
#define KNOWN_SLOTS 4096

static struct {
  pthread_mutex_t mu;
  uint8_t d[KNOWN_SLOTS][CTKN_SHA256_LEN];
  bool used[KNOWN_SLOTS];
  uint64_t verifications; /* run by libcrypto: for tests */
} known = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The digest of (pub, sig, msg); false when out of memory. */
static bool known_digest(const uint8_t pub[CTKN_SIGN_PUB_LEN], const void *msg,
                         size_t len, const uint8_t sig[CTKN_SIG_LEN],
                         uint8_t d[CTKN_SHA256_LEN], size_t *slot)
{
  ctkn_sha256 *h = ctkn_sha256_new();

  if (h == NULL)
    return false;
  ctkn_sha256_update(h, pub, CTKN_SIGN_PUB_LEN);
  ctkn_sha256_update(h, sig, CTKN_SIG_LEN);
  ctkn_sha256_update(h, msg, len);
  ctkn_sha256_final(h, d);
  ctkn_sha256_free(h);
  *slot = ((size_t)d[0] | (size_t)d[1] << 8) % KNOWN_SLOTS;
  return true;
}

static bool known_has(const uint8_t d[CTKN_SHA256_LEN], size_t slot)
{
  bool hit;

  pthread_mutex_lock(&known.mu);
  hit = known.used[slot] && memcmp(known.d[slot], d, CTKN_SHA256_LEN) == 0;
  pthread_mutex_unlock(&known.mu);
  return hit;
}

static void known_add(const uint8_t d[CTKN_SHA256_LEN], size_t slot)
{
  pthread_mutex_lock(&known.mu);
  memcpy(known.d[slot], d, CTKN_SHA256_LEN);
  known.used[slot] = true;
  pthread_mutex_unlock(&known.mu);
}

uint64_t ctkn__sign_verifications(void)
{
  uint64_t n;

  pthread_mutex_lock(&known.mu);
  n = known.verifications;
  pthread_mutex_unlock(&known.mu);
  return n;
}

void ctkn__sign_forget_known(void)
{
  pthread_mutex_lock(&known.mu);
  memset(known.used, 0, sizeof(known.used));
  pthread_mutex_unlock(&known.mu);
}

bool ctkn_pubkey_verify(const ctkn_pubkey *k, const void *msg, size_t len,
                        const uint8_t sig[CTKN_SIG_LEN])
{
  uint8_t d[CTKN_SHA256_LEN];
  size_t slot = 0;
  bool hashed = known_digest(k->raw, msg, len, sig, d, &slot);
  EVP_MD_CTX *md;
  bool ok = false;

  if (hashed && known_has(d, slot))
    return true;
  if ((md = EVP_MD_CTX_new()) == NULL)
    return false; /* fail closed: an unverified signature is no signature */
  if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, k->pk) == 1)
    ok = EVP_DigestVerify(md, sig, CTKN_SIG_LEN, msg, len) == 1;
  EVP_MD_CTX_free(md);
  pthread_mutex_lock(&known.mu);
  known.verifications++;
  pthread_mutex_unlock(&known.mu);
  if (ok && hashed)
    known_add(d, slot);
  return ok;
}

static int seckey_from_seed(ctkn_seckey **out, const uint8_t *seed,
                            struct ctkn_err *err)
{
  ctkn_seckey *k = calloc(1, sizeof(*k));
  size_t publen = CTKN_SIGN_PUB_LEN;

  *out = NULL;
  if (k == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  ctkn__crypto_start();
  k->pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
                                       CTKN_SIGN_SEED_LEN);
  if (k->pk == NULL ||
      EVP_PKEY_get_raw_public_key(k->pk, k->pub, &publen) != 1) {
    ctkn_seckey_free(k);
    return ctkn__err(err, CTKN_EINTERNAL, "libcrypto refused an Ed25519 key");
  }
  memcpy(k->seed, seed, CTKN_SIGN_SEED_LEN);
  *out = k;
  return CTKN_OK;
}

int ctkn_seckey_generate(ctkn_seckey **out, struct ctkn_err *err)
{
  uint8_t seed[CTKN_SIGN_SEED_LEN];
  int rc;

  *out = NULL;
  ctkn__crypto_start();
  if (RAND_priv_bytes(seed, sizeof(seed)) != 1)
    return ctkn__err(err, CTKN_EINTERNAL, "no random bytes for a key");
  rc = seckey_from_seed(out, seed, err);
  ctkn_wipe(seed, sizeof(seed));
  return rc;
}

int ctkn_seckey_load(ctkn_seckey **out, const char *path, struct ctkn_err *err)
{
  uint8_t seed[CTKN_KEY_LEN];
  int rc;

  _Static_assert(CTKN_KEY_LEN == CTKN_SIGN_SEED_LEN, "one key-file shape");
  *out = NULL;
  if ((rc = ctkn_key_load(path, seed, err)) == CTKN_OK)
    rc = seckey_from_seed(out, seed, err);
  ctkn_wipe(seed, sizeof(seed));
  return rc;
}

static int hex_value(unsigned char ch)
{
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  ch |= 0x20;
  return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* The 64 hex digits (then at most one newline) of len bytes at s. */
static bool pub_from_hex(const char *s, size_t len,
                         uint8_t pub[CTKN_SIGN_PUB_LEN])
{
  while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
    len--;
  if (len != 2 * CTKN_SIGN_PUB_LEN)
    return false;
  for (size_t i = 0; i < CTKN_SIGN_PUB_LEN; i++) {
    int hi = hex_value((unsigned char)s[2 * i]);
    int lo = hex_value((unsigned char)s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    pub[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}

int ctkn_pubkey_load(const char *path, uint8_t pub[CTKN_SIGN_PUB_LEN],
                     struct ctkn_err *err)
{
  static const struct ctkn__file_rules rules = {
      .what = "public key file",
      .max = 2 * CTKN_SIGN_PUB_LEN + 2,
      .shape = "want exactly 64 hex digits (then at most one newline)",
      .open_code = CTKN_EINVAL,
  };
  struct ctkn__buf b = CTKN__BUF_INIT;
  int rc = ctkn__file_read(path, &rules, &b, err);

  if (rc == CTKN_OK && !pub_from_hex(b.data, b.len, pub))
    rc = ctkn__err(err, CTKN_EINVAL,
                   "public key file %.150s: want exactly 64 hex digits "
                   "(then at most one newline)",
                   path);
  ctkn__buf_free(&b);
  return rc;
}

int ctkn_seckey_save(const ctkn_seckey *k, const char *path,
                     struct ctkn_err *err)
{
  char hex[2 * CTKN_SIGN_SEED_LEN + 2];
  size_t n = 2 * CTKN_SIGN_SEED_LEN + 1;
  int fd, e;

  /* O_EXCL: a key is never written over another. */
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    e = errno;
    return ctkn__err(err, CTKN_EIO, "key file %.200s: %s", path,
                     e == EEXIST ? "exists already; a key is never written "
                                   "over another"
                                 : strerror(e));
  }
  ctkn_hex(k->seed, CTKN_SIGN_SEED_LEN, hex);
  hex[2 * CTKN_SIGN_SEED_LEN] = '\n';
  const char *p = hex;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    p += w;
    n -= (size_t)w;
  }
  e = n == 0 && fsync(fd) == 0 ? 0 : errno;
  ctkn_wipe(hex, sizeof(hex));
  close(fd);
  if (e != 0 || n != 0) {
    unlink(path);
    return ctkn__err(err, CTKN_EIO, "key file %.200s: write: %s", path,
                     strerror(e ? e : EIO));
  }
  return CTKN_OK;
}

void ctkn_seckey_free(ctkn_seckey *k)
{
  if (k == NULL)
    return;
  EVP_PKEY_free(k->pk);
  ctkn_wipe(k->seed, sizeof(k->seed));
  free(k);
}

void ctkn_seckey_public(const ctkn_seckey *k, uint8_t pub[CTKN_SIGN_PUB_LEN])
{
  memcpy(pub, k->pub, CTKN_SIGN_PUB_LEN);
}

int ctkn_seckey_sign(const ctkn_seckey *k, const void *msg, size_t len,
                     uint8_t sig[CTKN_SIG_LEN], struct ctkn_err *err)
{
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  size_t siglen = CTKN_SIG_LEN;
  int ok = 0;

  if (md == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory signing");
  if (EVP_DigestSignInit(md, NULL, NULL, NULL, k->pk) == 1)
    ok = EVP_DigestSign(md, sig, &siglen, msg, len) == 1 &&
         siglen == CTKN_SIG_LEN;
  EVP_MD_CTX_free(md);
  if (!ok)
    return ctkn__err(err, CTKN_EINTERNAL, "libcrypto could not sign");
  /* Its own signature: good by construction (Ed25519 is deterministic). */
  uint8_t d[CTKN_SHA256_LEN];
  size_t slot;
  if (known_digest(k->pub, msg, len, sig, d, &slot))
    known_add(d, slot);
  return CTKN_OK;
}

void ctkn_key_id(const uint8_t pub[CTKN_SIGN_PUB_LEN],
                 char out[CTKN_KEY_ID_BUF])
{
  uint8_t d[CTKN_SHA256_LEN];

  ctkn_sha256_once(pub, CTKN_SIGN_PUB_LEN, d);
  ctkn_hex(d, (CTKN_KEY_ID_BUF - 1) / 2, out);
}
