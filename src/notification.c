/*
 * notification.c - a notification as a value (notification.h): its status
 * names and its derived ID.
 */
#include <stdio.h>

#include "ctkn/crypto.h"
#include "ctkn/notification.h"
#include "internal.h"

static const char *const ntf_status_names[] = {
    [CTKN_NTF_NOT_ATTEMPTED] = "not_attempted",
    [CTKN_NTF_NEEDS_RETRY] = "needs_retry",
    [CTKN_NTF_DELIVERED] = "delivered",
    [CTKN_NTF_FAILED] = "failed"};

const char *ctkn_ntf_status_str(ctkn_ntf_status s)
{
  return s >= CTKN_NTF_NOT_ATTEMPTED && s <= CTKN_NTF_FAILED
             ? ntf_status_names[s]
             : NULL;
}

void ctkn_notification_id(const char *event_id, const char *dest_id,
                          char out[CTKN_NTF_ID_BUF])
{
  uint8_t h[CTKN_SHA256_LEN];
  char buf[CTKN_EVT_ID_LEN + CTKN_DEST_ID_LEN + 8];
  int64_t ms = ctkn_id_time_ms("evt_", event_id);
  int n = snprintf(buf, sizeof(buf), "ntf|%s|%s", event_id, dest_id);

  ctkn_sha256_once(buf, n > 0 ? (size_t)n : 0, h);
  ctkn_id_derive("ntf_", ms < 0 ? 0 : ms, h, out, CTKN_NTF_ID_BUF);
}
