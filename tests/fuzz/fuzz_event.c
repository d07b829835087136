/*
 * fuzz_event.c - libFuzzer target: wire bytes -> event -> check -> apply
 * -> re-encode.
 *
 * Whatever the bytes, decoding returns CTKN_OK or CTKN_EDECODE with a
 * message, and never reads out of bounds. An event that decodes is checked
 * and applied to no state and to a fixed active token; an applied event
 * must leave a token that passes ctkn_token_check(), and apply must never
 * accept what ctkn_event_check() refuses. Every decoded event must
 * re-encode and decode to the same event, and encoding must be a function
 * of the event (same event, same bytes). Any broken promise aborts.
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

/* The seed corpus's events name this token; see corpus/event/. */
#define TOKEN_ID  "ctkn_01jyq3v5k8q9r0s1t2v3w4x5y8"
#define TOKEN_STR "test_AbCdEfGh0123456789abcdefghi"
#define T0        INT64_C(1750948574695521) /* 2025-06-26T14:36:14.695521Z */
#define ENV       CTKN_ENV_SANDBOX

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const struct ctkn_err *err)
{
  if (err != NULL)
    fprintf(stderr, "fuzz_event: %s: [%s] %s\n", what, err->field, err->msg);
  else
    fprintf(stderr, "fuzz_event: %s\n", what);
  abort();
}

/* Version 1 of the token, as its created event left it. */
static const struct ctkn_record *fixed_record(void)
{
  static struct ctkn_record rec;
  static bool done;
  struct ctkn_err err;

  if (done)
    return &rec;
  done = true;
  strcpy(rec.token.id, TOKEN_ID);
  strcpy(rec.token.token, TOKEN_STR);
  strcpy(rec.token.name, "Checkout widget");
  rec.token.status = CTKN_STATUS_ACTIVE;
  rec.token.created_at = T0;
  rec.token.updated_at = T0;
  rec.version = 1;
  rec.partition = 0;
  rec.offset = 0;
  if (ctkn_token_check(&rec.token, ENV, &err) != CTKN_OK)
    die("fixed record is invalid", &err);
  return &rec;
}

static bool event_equal(const struct ctkn_event *a, const struct ctkn_event *b)
{
  return strcmp(a->event_id, b->event_id) == 0 && a->type == b->type &&
         a->occurred_at == b->occurred_at &&
         strcmp(a->notification_id, b->notification_id) == 0 &&
         a->version == b->version && ctkn_token_equal(&a->data, &b->data) &&
         strcmp(a->idempotency_key, b->idempotency_key) == 0 &&
         a->has_request_hash == b->has_request_hash &&
         (!a->has_request_hash ||
          memcmp(a->request_hash, b->request_hash, CTKN_HASH_LEN) == 0);
}

static void apply_to(const struct ctkn_record *cur, const struct ctkn_event *ev,
                     bool valid)
{
  struct ctkn_token next;
  struct ctkn_err err;
  char reason[256];
  int rc;

  memset(reason, 'x', sizeof(reason));
  rc = ctkn_apply(cur, ev, ENV, &next, reason, sizeof(reason));
  if (rc == CTKN_APPLIED) {
    if (!valid)
      die("apply accepted an event that ctkn_event_check refuses", NULL);
    if (ctkn_token_check(&next, ENV, &err) != CTKN_OK)
      die("apply produced an invalid token", &err);
  } else if (rc == CTKN_REJECTED) {
    if (memchr(reason, '\0', sizeof(reason)) == NULL || reason[0] == '\0')
      die("rejection without a terminated reason", NULL);
  } else {
    die("apply returned neither APPLIED nor REJECTED", NULL);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct ctkn_event ev, again;
  struct ctkn_err err;
  uint8_t *enc1 = NULL, *enc2 = NULL;
  size_t len1 = 0, len2 = 0;
  bool valid;
  int rc;

  ctkn_err_clear(&err);
  rc = ctkn_event_decode(data, size, &ev, &err);
  if (rc != CTKN_OK) {
    if (rc != CTKN_EDECODE || err.code != rc || err.msg[0] == '\0')
      die("decode failed without CTKN_EDECODE and a message", &err);
    return 0;
  }

  valid = ctkn_event_check(&ev, &err) == CTKN_OK;
  apply_to(NULL, &ev, valid);
  apply_to(fixed_record(), &ev, valid);

  if (ctkn_event_encode(&ev, &enc1, &len1, &err) != CTKN_OK)
    die("a decoded event does not encode", &err);
  if (ctkn_event_decode(enc1, len1, &again, &err) != CTKN_OK)
    die("a re-encoded event does not decode", &err);
  if (!event_equal(&ev, &again))
    die("re-encoded event decodes differently", NULL);
  if (ctkn_event_encode(&again, &enc2, &len2, &err) != CTKN_OK)
    die("second encode failed", &err);
  if (len1 != len2 || memcmp(enc1, enc2, len1) != 0)
    die("encoding is not a function of the event", NULL);
  free(enc1);
  free(enc2);
  return 0;
}
