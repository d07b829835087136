/*
 * notification.c - a notification as a value (notification.h): its status
 * names and its derived ID.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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

void ctkn_notification_log_id(const char *ntf_id, uint32_t n, int64_t at,
                              char out[CTKN_NTFLOG_ID_BUF])
{
  uint8_t h[CTKN_SHA256_LEN];
  char buf[CTKN_NTF_ID_BUF + 32];
  int len = snprintf(buf, sizeof(buf), "ntflog|%s|%" PRIu32, ntf_id, n);

  ctkn_sha256_once(buf, len > 0 ? (size_t)len : 0, h);
  ctkn_id_derive("ntflog_", at > 0 ? at / 1000 : 0, h, out, CTKN_NTFLOG_ID_BUF);
}

/* ---- delivery records ---------------------------------------------------- */

static const char *const dlv_type_names[] = {
    [CTKN_DLV_CREATED] = "notification.created",
    [CTKN_DLV_ATTEMPTED] = "notification.attempted",
    [CTKN_DLV_DELIVERED] = "notification.delivered",
    [CTKN_DLV_FAILED] = "notification.failed",
    [CTKN_DLV_REPLAY] = "notification.replay_requested"};

const char *ctkn_dlv_type_str(ctkn_dlv_type t)
{
  return t >= CTKN_DLV_CREATED && t <= CTKN_DLV_REPLAY ? dlv_type_names[t]
                                                       : NULL;
}

ctkn_dlv_type ctkn_dlv_type_parse(const char *s)
{
  for (int t = CTKN_DLV_CREATED; s != NULL && t <= CTKN_DLV_REPLAY; t++)
    if (strcmp(s, dlv_type_names[t]) == 0)
      return (ctkn_dlv_type)t;
  return (ctkn_dlv_type)0;
}

static bool why_not(char *why, size_t whysz, const char *msg)
{
  if (whysz > 0)
    snprintf(why, whysz, "%s", msg);
  return false;
}

/* The notification's own fields, as every record carries them. */
static bool ntf_fields_valid(const struct ctkn_notification *n, char *why,
                             size_t whysz)
{
  if (!ctkn_id_valid("ntf_", n->id))
    return why_not(why, whysz, "notification_id: not an ntf_ ID");
  if (!ctkn_id_valid("ntfset_", n->dest))
    return why_not(why, whysz, "destination_id: not an ntfset_ ID");
  if (!ctkn_id_valid("evt_", n->event_id))
    return why_not(why, whysz, "event_id: not an evt_ ID");
  if (ctkn_dest_event_str(n->type) == NULL)
    return why_not(why, whysz, "event_type: unknown");
  if (!ctkn_id_valid(CTKN_NTF_IS_AKEY(n) ? "apikey_" : "ctkn_", n->token_id))
    return why_not(why, whysz,
                   "token_id: not a ctkn_ ID (apikey_ for an api_key event)");
  if (n->partition < 0 || n->offset < 0 || n->version < 1)
    return why_not(why, whysz, "partition, offset, version: out of range");
  if (n->replay_of[0] != '\0' && !ctkn_id_valid("ntf_", n->replay_of))
    return why_not(why, whysz, "replay_of: not an ntf_ ID");
  return true;
}

bool ctkn_delivery_valid(const struct ctkn_delivery *d, char *why, size_t whysz)
{
  bool attempted = d->type == CTKN_DLV_ATTEMPTED;

  if (ctkn_dlv_type_str(d->type) == NULL)
    return why_not(why, whysz, "event_type: not a delivery record type");
  if (!ntf_fields_valid(&d->n, why, whysz))
    return false;
  if (d->at <= 0)
    return why_not(why, whysz, "at: missing");
  if (d->type == CTKN_DLV_REPLAY && d->n.replay_of[0] == '\0')
    return why_not(why, whysz, "replay_of: a replay names its original");
  if (attempted != (d->a.n > 0))
    return why_not(why, whysz, "attempt: with notification.attempted only");
  if (attempted && (d->a.at <= 0 || d->a.status < 0 || d->a.status > 999 ||
                    d->a.latency_us < 0 || d->a.body_len > CTKN_NTF_BODY_MAX))
    return why_not(why, whysz, "attempt: out of range");
  return true;
}
