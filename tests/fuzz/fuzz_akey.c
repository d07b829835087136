/*
 * fuzz_akey.c - libFuzzer target: settings-topic bytes as an API-key
 * record -> check -> apply -> re-encode; the same bytes as a stored key
 * (the api_keys table); and as a presented key string.
 *
 * Whatever the bytes, each decoder returns CTKN_OK or CTKN_EDECODE with a
 * message and never reads out of bounds. What decodes must re-encode and
 * decode to the same value. An event that passes its check must apply to
 * no key exactly when it is a created event. A string that parses as a key
 * must carry an ID that is one. Any broken promise aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/akey.h"
#include "ctkn/codec.h"
#include "ctkn/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const struct ctkn_err *err)
{
  if (err != NULL)
    fprintf(stderr, "fuzz_akey: %s: [%s] %s\n", what, err->field, err->msg);
  else
    fprintf(stderr, "fuzz_akey: %s\n", what);
  abort();
}

static void decoded(int rc, const struct ctkn_err *err)
{
  if (rc != CTKN_OK &&
      (rc != CTKN_EDECODE || err->code != rc || err->msg[0] == '\0'))
    die("decode failed without CTKN_EDECODE and a message", err);
}

static void event(const uint8_t *data, size_t size)
{
  static struct ctkn_akey_event ev, again;
  struct ctkn_akey next;
  struct ctkn_err err;
  char reason[256];
  uint8_t *enc = NULL;
  size_t len;
  int rc = ctkn_akey_event_decode(data, size, &ev, &err);

  decoded(rc, &err);
  if (rc != CTKN_OK)
    return;
  if (ctkn_akey_event_encode(&ev, &enc, &len, &err) != CTKN_OK)
    die("a decoded event does not encode", &err);
  if (ctkn_akey_event_decode(enc, len, &again, &err) != CTKN_OK)
    die("a re-encoded event does not decode", &err);
  free(enc);
  if (memcmp(&ev, &again, sizeof(ev)) != 0)
    die("the event changed through encode and decode", NULL);
  if (ctkn_akey_event_check(&ev, &err) != CTKN_OK)
    return;
  rc = ctkn_akey_apply(NULL, &ev, &next, reason, sizeof(reason));
  if ((rc == CTKN_OK) != (ev.type == CTKN_AKEY_CREATED))
    die("a checked event applies to no key unless it is a create", NULL);
  if (rc == CTKN_OK && ctkn_akey_apply(&next, &ev, &next, reason,
                                       sizeof(reason)) != CTKN_AKEY_REJECTED)
    die("a create applied twice", NULL);
}

static void stored(const uint8_t *data, size_t size)
{
  static struct ctkn_akey k, again;
  struct ctkn_err err;
  uint8_t *enc = NULL;
  size_t len;
  int rc = ctkn_akey_decode(data, size, &k, &err);

  decoded(rc, &err);
  if (rc != CTKN_OK)
    return;
  if (ctkn_akey_encode(&k, &enc, &len, &err) != CTKN_OK)
    die("a decoded key does not encode", &err);
  if (ctkn_akey_decode(enc, len, &again, &err) != CTKN_OK)
    die("a re-encoded key does not decode", &err);
  free(enc);
  if (memcmp(&k, &again, sizeof(k)) != 0)
    die("the key changed through encode and decode", NULL);
}

static void key_string(const uint8_t *data, size_t size)
{
  char id[CTKN_AKEY_ID_BUF];
  ctkn_env env;

  if (ctkn_akey_parse((const char *)data, size, id, &env) == CTKN_OK &&
      !ctkn_id_valid("apikey_", id))
    die("a parsed key's ID is not an apikey_ ID", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  event(data, size);
  stored(data, size);
  key_string(data, size);
  return 0;
}
