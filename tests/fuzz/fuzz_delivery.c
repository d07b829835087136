/*
 * fuzz_delivery.c - libFuzzer target: notifications-topic bytes ->
 * delivery record (every type) -> its rules -> re-encode; and the same
 * bytes as a stored attempt (the projection's delivery_attempts value).
 *
 * The first byte picks the record's type (its ctkn-event-type header,
 * including types that are not delivery records); the rest is the value.
 * Whatever the bytes, each decoder returns CTKN_OK or CTKN_EDECODE with a
 * message and never reads out of bounds. What decodes keeps
 * ctkn_delivery_valid()'s rules (the projection applies it without
 * looking further) and re-encodes to a record that decodes to the same
 * value. Any broken promise aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/error.h"
#include "ctkn/notification.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const struct ctkn_err *err)
{
  if (err != NULL)
    fprintf(stderr, "fuzz_delivery: %s: [%s] %s\n", what, err->field, err->msg);
  else
    fprintf(stderr, "fuzz_delivery: %s\n", what);
  abort();
}

static void decoded(int rc, const struct ctkn_err *err)
{
  if (rc != CTKN_OK &&
      (rc != CTKN_EDECODE || err->code != rc || err->msg[0] == '\0'))
    die("decode failed without CTKN_EDECODE and a message", err);
}

static const char *const types[] = {"notification.created",
                                    "notification.attempted",
                                    "notification.delivered",
                                    "notification.failed",
                                    "notification.replay_requested",
                                    "client_token.created",
                                    ""};

static bool same(const struct ctkn_delivery *a, const struct ctkn_delivery *b)
{
  return a->type == b->type && memcmp(&a->n, &b->n, sizeof(a->n)) == 0 &&
         a->at == b->at && a->retry_at == b->retry_at && a->a.n == b->a.n &&
         a->a.at == b->a.at && a->a.status == b->a.status &&
         a->a.latency_us == b->a.latency_us &&
         strcmp(a->a.error, b->a.error) == 0 &&
         strcmp(a->a.content_type, b->a.content_type) == 0 &&
         a->a.body_len == b->a.body_len &&
         memcmp(a->a.body, b->a.body, a->a.body_len) == 0;
}

static void record(const char *type, const uint8_t *data, size_t size)
{
  static struct ctkn_delivery d, again;
  struct ctkn_err err;
  char why[160];
  uint8_t *enc = NULL;
  size_t len;
  int rc = ctkn_delivery_decode(type, data, size, &d, &err);

  decoded(rc, &err);
  if (rc != CTKN_OK)
    return;
  if (!ctkn_delivery_valid(&d, why, sizeof(why)))
    die(why, NULL);
  if (ctkn_delivery_encode(&d, &enc, &len, &err) != CTKN_OK)
    die("re-encode", &err);
  rc = ctkn_delivery_decode(type, enc, len, &again, &err);
  free(enc);
  if (rc != CTKN_OK)
    die("re-encoded record does not decode", &err);
  if (!same(&d, &again))
    die("re-encoded record decodes to another value", NULL);
}

static void stored_attempt(const uint8_t *data, size_t size)
{
  static struct ctkn_ntf_attempt a, again;
  struct ctkn_err err;
  uint8_t *enc = NULL;
  size_t len;
  int rc = ctkn_attempt_decode(data, size, &a, &err);

  decoded(rc, &err);
  if (rc != CTKN_OK)
    return;
  if (ctkn_attempt_encode(&a, &enc, &len, &err) != CTKN_OK)
    die("re-encode attempt", &err);
  rc = ctkn_attempt_decode(enc, len, &again, &err);
  free(enc);
  if (rc != CTKN_OK || again.n != a.n || again.body_len != a.body_len ||
      memcmp(again.body, a.body, a.body_len) != 0 ||
      strcmp(again.content_type, a.content_type) != 0)
    die("re-encoded attempt differs", rc != CTKN_OK ? &err : NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  record(types[data[0] % (sizeof(types) / sizeof(types[0]))], data + 1,
         size - 1);
  stored_attempt(data, size);
  return 0;
}
