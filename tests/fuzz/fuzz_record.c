/*
 * fuzz_record.c - libFuzzer target: store bytes -> record -> check ->
 * re-encode.
 *
 * Whatever the bytes, decoding returns CTKN_OK or CTKN_EDECODE with a
 * message, never reads out of bounds, and never lets msgpack-c allocate
 * from a bogus count. A record that decodes is checked, and must
 * re-encode and decode to the same record; re-encoding that record must
 * give the same bytes again. Any broken promise aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const struct ctkn_err *err)
{
  if (err != NULL)
    fprintf(stderr, "fuzz_record: %s: [%s] %s\n", what, err->field, err->msg);
  else
    fprintf(stderr, "fuzz_record: %s\n", what);
  abort();
}

static bool record_equal(const struct ctkn_record *a,
                         const struct ctkn_record *b)
{
  return ctkn_token_equal(&a->token, &b->token) && a->version == b->version &&
         a->partition == b->partition && a->offset == b->offset;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct ctkn_record rec, again;
  struct ctkn_err err;
  uint8_t *enc1 = NULL, *enc2 = NULL;
  size_t len1 = 0, len2 = 0;
  int rc;

  ctkn_err_clear(&err);
  rc = ctkn_record_decode(data, size, &rec, &err);
  if (rc != CTKN_OK) {
    if (rc != CTKN_EDECODE || err.code != rc || err.msg[0] == '\0')
      die("decode failed without CTKN_EDECODE and a message", &err);
    return 0;
  }

  /* Exercised for its own bounds; any answer is acceptable here. */
  (void)ctkn_token_check(&rec.token, 0, &err);

  if (ctkn_record_encode(&rec, &enc1, &len1, &err) != CTKN_OK)
    die("a decoded record does not encode", &err);
  if (ctkn_record_decode(enc1, len1, &again, &err) != CTKN_OK)
    die("a re-encoded record does not decode", &err);
  if (!record_equal(&rec, &again))
    die("re-encoded record decodes differently", NULL);
  if (ctkn_record_encode(&again, &enc2, &len2, &err) != CTKN_OK)
    die("second encode failed", &err);
  if (len1 != len2 || memcmp(enc1, enc2, len1) != 0)
    die("encoding is not a function of the record", NULL);
  free(enc1);
  free(enc2);
  return 0;
}
