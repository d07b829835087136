/*
 * notification.h - one webhook notification as a value: what a notifier
 * records about sending one event to one destination, and its attempts.
 *
 * This is to notify.h what token.h is to the ledger: plain data, so the
 * codec (codec.h) can encode and render it and the notifier (notify.h)
 * can keep it without either depending on the other.
 *
 * A notification's ID is derived from its event and destination (a ULID
 * on the event's time and 80 bits of SHA-256), so every retry and every
 * notifier sends the same notification_id.
 *
 * Lifetime: the structs have fixed-size fields: copy them, no ownership.
 * Errors:   none; nothing here can fail.
 * Thread:   all functions are thread-safe.
 * Not here: delivering, the stored state, audit and replay (notify.h);
 *           encodings (codec.h).
 */
#ifndef CTKN_NOTIFICATION_H
#define CTKN_NOTIFICATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/event.h"
#include "ctkn/setting.h"
#include "ctkn/token.h"

#define CTKN_NTF_ID_LEN (4 + CTKN_ULID_LEN) /* "ntf_" + ULID */
#define CTKN_NTF_ID_BUF (CTKN_NTF_ID_LEN + 1)

typedef enum ctkn_ntf_status {
  CTKN_NTF_NOT_ATTEMPTED = 1,
  CTKN_NTF_NEEDS_RETRY = 2,
  CTKN_NTF_DELIVERED = 3,
  CTKN_NTF_FAILED = 4
} ctkn_ntf_status;

/* "not_attempted", "needs_retry", "delivered" or "failed" (static
 * strings); NULL for an unknown value. Errors: none. */
const char *ctkn_ntf_status_str(ctkn_ntf_status s);

/* One notification, as stored by the notifier that handled it. */
/* Whether n's event is an API key's, on the settings topic. */
#define CTKN_NTF_IS_AKEY(n) ((n)->type >= CTKN_DEST_AKEY_CREATED)

struct ctkn_notification {
  char id[CTKN_NTF_ID_BUF];
  char dest[CTKN_DEST_ID_BUF];
  char event_id[CTKN_EVT_ID_LEN + 1];
  /* Its event's type as a subscription names it (setting.h): a
   * client_token.* ctkn_event_type, or an api_key.* type
   * (CTKN_DEST_AKEY_*), whose event is on the settings topic. */
  int type;
  /* The entity: a token's ctkn_ ID, or an API key's apikey_ ID. */
  char token_id[7 + CTKN_ULID_LEN + 1];
  uint64_t version;  /* the entity's version in the event */
  int32_t partition; /* the event's place: event topic, or settings topic */
  int64_t offset;
  int64_t occurred_at; /* the event's, µs */
  ctkn_ntf_status status;
  bool replay;                     /* origin: "replay" rather than "event" */
  char replay_of[CTKN_NTF_ID_BUF]; /* a replay's original, else "" */
  uint32_t attempts;
  int64_t first_attempt_at; /* µs; 0: none yet */
  int64_t last_attempt_at;
  int64_t delivered_at;
  int64_t retry_at; /* next attempt, while needs_retry */
  int last_status;  /* HTTP status of the last attempt; 0: none */
};

#define CTKN_NTF_CTYPE_MAX 255  /* bytes of a response's content type kept */
#define CTKN_NTF_BODY_MAX  1024 /* bytes of a response's body kept */

/* One attempt. */
struct ctkn_ntf_attempt {
  uint32_t n; /* 1, 2, ... */
  int64_t at; /* µs */
  int status; /* HTTP status; 0 when none came back */
  int64_t latency_us;
  char error[256];                           /* "" or why no status came back */
  char content_type[CTKN_NTF_CTYPE_MAX + 1]; /* the response's, or "" */
  char body[CTKN_NTF_BODY_MAX + 1]; /* its first body_len bytes, or "" */
  size_t body_len;
};

/* ---- delivery records: the notifications topic ------------------------- */

/* The schema version delivery records are written with (event.h's
 * CTKN_SCHEMA_VERSION reads it): a notifier appends them only once the
 * keyring enables it. */
#define CTKN_SCHEMA_DELIVERY 2

/* One fact about one notification, as a notifier appends it to
 * <topic>_notifications (proto/ctkn_delivery.proto), keyed by its ID. */
typedef enum ctkn_dlv_type {
  CTKN_DLV_CREATED = 1, /* notification.created: the event x destination */
  CTKN_DLV_ATTEMPTED,   /* notification.attempted: one attempt's outcome */
  CTKN_DLV_DELIVERED,   /* notification.delivered: a 2xx came back */
  CTKN_DLV_FAILED,      /* notification.failed: gave up after max age */
  CTKN_DLV_REPLAY       /* notification.replay_requested: a new ID queued */
} ctkn_dlv_type;

/* "notification.created", ... (static strings); NULL for an unknown
 * value. Errors: none. */
const char *ctkn_dlv_type_str(ctkn_dlv_type t);
/* The type a ctkn-event-type names; 0 when none. Errors: none. */
ctkn_dlv_type ctkn_dlv_type_parse(const char *s);

struct ctkn_delivery {
  ctkn_dlv_type type;
  /* The notification: id, dest, event_id, type, token_id, version,
   * partition, offset, occurred_at, replay and replay_of are its own;
   * for REPLAY, id is the new notification and replay_of the original.
   * status and the attempt counters are not carried (the projection
   * counts them). */
  struct ctkn_notification n;
  int64_t at;                /* when this fact happened, µs */
  int64_t retry_at;          /* ATTEMPTED: the next try, or 0 */
  struct ctkn_ntf_attempt a; /* ATTEMPTED only */
};

/* Whether d keeps the rules every delivery record keeps (IDs in their
 * forms, an attempt with ATTEMPTED only, times set); why not into why.
 * Errors: none. */
bool ctkn_delivery_valid(const struct ctkn_delivery *d, char *why,
                         size_t whysz);

#define CTKN_NTFLOG_ID_BUF (7 + CTKN_ULID_LEN + 1) /* "ntflog_" + ULID */

/* The ID of attempt n (made at µs at) of notification ntf_id, as Paddle's
 * notification log names it: ntflog_ + a ULID on the attempt's time and
 * 80 bits of SHA-256("ntflog|<ntf_id>|<n>"), the same on every replica.
 * Errors: none. */
void ctkn_notification_log_id(const char *ntf_id, uint32_t n, int64_t at,
                              char out[CTKN_NTFLOG_ID_BUF]);

/* The notification ID of event event_id for destination dest_id, into
 * out. Borrows both for the call. Errors: none. */
void ctkn_notification_id(const char *event_id, const char *dest_id,
                          char out[CTKN_NTF_ID_BUF]);

#endif /* CTKN_NOTIFICATION_H */
