/*
 * fuzz_settings.c - libFuzzer target: settings-topic bytes -> setting
 * event -> check -> apply -> re-encode; and the same bytes as a stored
 * destination and a stored notification.
 *
 * Whatever the bytes, each decoder returns CTKN_OK or CTKN_EDECODE with a
 * message and never reads out of bounds. What decodes must re-encode and
 * decode to the same value. An event that passes its check must apply to
 * an empty projection exactly when it is a created event. Any broken
 * promise aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/error.h"
#include "ctkn/notify.h"
#include "ctkn/settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const struct ctkn_err *err)
{
  if (err != NULL)
    fprintf(stderr, "fuzz_settings: %s: [%s] %s\n", what, err->field, err->msg);
  else
    fprintf(stderr, "fuzz_settings: %s\n", what);
  abort();
}

static void decoded(int rc, const struct ctkn_err *err)
{
  if (rc != CTKN_OK &&
      (rc != CTKN_EDECODE || err->code != rc || err->msg[0] == '\0'))
    die("decode failed without CTKN_EDECODE and a message", err);
}

static bool dest_equal(const struct ctkn_destination *a,
                       const struct ctkn_destination *b)
{
  return strcmp(a->id, b->id) == 0 &&
         a->has_description == b->has_description &&
         strcmp(a->description, b->description) == 0 &&
         strcmp(a->url, b->url) == 0 && a->active == b->active &&
         a->events == b->events &&
         memcmp(a->sealed, b->sealed, sizeof(a->sealed)) == 0 &&
         a->created_at == b->created_at && a->updated_at == b->updated_at &&
         a->version == b->version && a->deleted == b->deleted;
}

static void event(const uint8_t *data, size_t size)
{
  static struct ctkn_setting_event ev, again;
  struct ctkn_destination next;
  struct ctkn_err err;
  char reason[256];
  uint8_t *enc = NULL;
  size_t len = 0;
  int rc;

  ctkn_err_clear(&err);
  rc = ctkn_setting_event_decode(data, size, &ev, &err);
  decoded(rc, &err);
  if (rc != CTKN_OK)
    return;
  if (ctkn_setting_event_encode(&ev, &enc, &len, &err) != CTKN_OK)
    die("a decoded event does not encode", &err);
  if (ctkn_setting_event_decode(enc, len, &again, &err) != CTKN_OK)
    die("a re-encoded event does not decode", &err);
  if (!dest_equal(&ev.data, &again.data) || ev.type != again.type ||
      ev.version != again.version || ev.nstart != again.nstart ||
      memcmp(ev.start, again.start, (size_t)ev.nstart * sizeof(*ev.start)))
    die("re-encoded event decodes differently", NULL);
  free(enc);
  if (ctkn_setting_event_check(&ev, &err) != CTKN_OK)
    return;
  rc = ctkn_settings_apply(NULL, &ev, &next, reason, sizeof(reason));
  if ((rc == CTKN_APPLIED) != (ev.type == CTKN_SETTING_CREATED))
    die("apply to nothing must take exactly the created events", NULL);
}

static void stored(const uint8_t *data, size_t size)
{
  struct ctkn_destination d, d2;
  struct ctkn_notification n, n2;
  struct ctkn_err err;
  uint8_t *enc = NULL;
  size_t len = 0;
  int rc;

  ctkn_err_clear(&err);
  rc = ctkn_destination_decode(data, size, &d, &err);
  decoded(rc, &err);
  if (rc == CTKN_OK) {
    if (ctkn_destination_encode(&d, &enc, &len, &err) != CTKN_OK ||
        ctkn_destination_decode(enc, len, &d2, &err) != CTKN_OK ||
        !dest_equal(&d, &d2))
      die("a destination does not round-trip", &err);
    free(enc);
  }
  ctkn_err_clear(&err);
  rc = ctkn_notification_decode(data, size, &n, &err);
  decoded(rc, &err);
  if (rc == CTKN_OK) {
    if (ctkn_notification_encode(&n, &enc, &len, &err) != CTKN_OK ||
        ctkn_notification_decode(enc, len, &n2, &err) != CTKN_OK ||
        memcmp(&n, &n2, sizeof(n)) != 0)
      die("a notification does not round-trip", &err);
    free(enc);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  event(data, size);
  stored(data, size);
  return 0;
}
