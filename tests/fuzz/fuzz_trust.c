/*
 * fuzz_trust.c - libFuzzer target: bytes as a Signed envelope, a keyring,
 * a checkpoint and an adoption; the same bytes as a record's value and
 * headers for the chain's digest and as a ctkn-writer header.
 *
 * Whatever the bytes, each decoder returns CTKN_OK or CTKN_EDECODE with a
 * message, and what decodes re-encodes and decodes to the same value (the
 * envelope's body and signature, the checkpoint whole). A keyring that
 * decodes either passes its rules or fails them naming a field. Any
 * broken promise aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/error.h"
#include "ctkn/keyring.h"
#include "ctkn/trust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const struct ctkn_err *err)
{
  fprintf(stderr, "fuzz_trust: %s: %s\n", what, err ? err->msg : "");
  abort();
}

static void decoded(int rc, const struct ctkn_err *err)
{
  if (rc != CTKN_OK &&
      (rc != CTKN_EDECODE || err->code != rc || err->msg[0] == '\0'))
    die("decode failed without CTKN_EDECODE and a message", err);
}

static void signed_envelope(const uint8_t *data, size_t size)
{
  struct ctkn_signed s, back;
  struct ctkn_err err = {0};
  uint8_t *buf;
  size_t len;
  int rc = ctkn_signed_decode(data, size, &s, &err);

  decoded(rc, &err);
  if (rc != CTKN_OK)
    return;
  if (ctkn_signed_encode(&s, &buf, &len, &err) != CTKN_OK ||
      ctkn_signed_decode(buf, len, &back, &err) != CTKN_OK)
    die("a decoded envelope does not round-trip", &err);
  if (back.body_len != s.body_len ||
      memcmp(back.body, s.body, s.body_len) != 0 ||
      memcmp(back.signature, s.signature, CTKN_SIG_LEN) != 0 ||
      strcmp(back.signer, s.signer) != 0)
    die("the envelope changed in a round trip", NULL);
  free(buf);
  ctkn_signed_free(&back);
  ctkn_signed_free(&s);
}

static void keyring(const uint8_t *data, size_t size)
{
  struct ctkn_keyring kr;
  struct ctkn_err err = {0};
  int rc = ctkn_keyring_decode(data, size, &kr, &err);

  decoded(rc, &err);
  if (rc != CTKN_OK)
    return;
  rc = ctkn_keyring_check(&kr, &err);
  if (rc != CTKN_OK && (rc != CTKN_EINVAL || err.field[0] == '\0'))
    die("a keyring's rules failed without naming a field", &err);
  uint8_t *buf;
  size_t len;
  struct ctkn_keyring back;
  if (ctkn_keyring_encode(&kr, &buf, &len, &err) != CTKN_OK ||
      ctkn_keyring_decode(buf, len, &back, &err) != CTKN_OK)
    die("a decoded keyring does not round-trip", &err);
  if (back.nkeys != kr.nkeys || back.version != kr.version)
    die("the keyring changed in a round trip", NULL);
  free(buf);
  ctkn_keyring_free(&back);
  ctkn_keyring_free(&kr);
}

static void checkpoint_and_adoption(const uint8_t *data, size_t size)
{
  struct ctkn_checkpoint c, cb;
  struct ctkn_adoption a;
  struct ctkn_err err = {0};
  int rc = ctkn_checkpoint_decode(data, size, &c, &err);

  decoded(rc, &err);
  if (rc == CTKN_OK) {
    uint8_t *buf;
    size_t len;
    if (ctkn_checkpoint_encode(&c, &buf, &len, &err) != CTKN_OK ||
        ctkn_checkpoint_decode(buf, len, &cb, &err) != CTKN_OK ||
        memcmp(&c, &cb, sizeof(c)) != 0)
      die("a checkpoint does not round-trip", &err);
    free(buf);
  }
  rc = ctkn_adoption_decode(data, size, &a, &err);
  decoded(rc, &err);
  ctkn_adoption_free(&a);
}

/* The bytes split into a key, a value and headers, for the digest. */
static void record_digest(const uint8_t *data, size_t size)
{
  static const char *const names[] = {"ctkn-seq", "ce_id",      "content-type",
                                      "x-other",  "ctkn-chain", "ctkn-writer"};
  struct ctkn_log_header h[6];
  uint8_t log_id[CTKN_LOG_ID_LEN] = {0}, out[CTKN_CHAIN_LEN];
  char id[CTKN_KEY_ID_BUF];
  uint8_t inst[CTKN_INSTANCE_LEN];
  struct ctkn_err err = {0};
  size_t nh = size > 0 ? data[0] % 7 : 0;

  for (size_t i = 0; i < nh; i++)
    h[i] = (struct ctkn_log_header){names[(size > i + 1 ? data[i + 1] : 0) % 6],
                                    data, size / 2};
  struct ctkn_log_msg m = {.key = size % 2 ? data : NULL,
                           .key_len = size / 3,
                           .value = data,
                           .value_len = size,
                           .headers = h,
                           .nheaders = nh};
  int rc = ctkn_trust_record_digest(log_id, &m, out, &err);
  if (rc != CTKN_OK && rc != CTKN_EINVAL)
    die("the digest failed otherwise than for a repeated header", &err);
  rc = ctkn_trust_writer_parse(data, size, id, inst, &err);
  if (rc != CTKN_OK && rc != CTKN_EINVAL)
    die("a writer header failed otherwise than invalid", &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  signed_envelope(data, size);
  keyring(data, size);
  checkpoint_and_adoption(data, size);
  record_digest(data, size);
  return 0;
}
