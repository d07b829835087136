/*
 * settings.h - notification destinations (Paddle's notification settings),
 * event-sourced on a settings topic and projected into every replica.
 *
 * A destination is a URL that receives signed webhook POSTs of the
 * client_token.* events it subscribes to. Its changes are events on the
 * settings topic (`<topic>_settings` unless told otherwise), keyed by the
 * destination ID; every replica's projector applies them to its LMDB with
 * the same version rule as tokens (first in the log wins), so all replicas
 * agree on the destinations without talking to each other.
 *
 * The endpoint secret is generated at creation, shown once, and otherwise
 * only ever travels and rests sealed (AES-256-GCM under the deployment
 * key, crypto.h, with the destination ID as associated data).
 *
 * A destination's creation event records where its deliveries start: the
 * event topic's end offsets when it was created. It receives the events
 * from there on, never the history before it.
 *
 * Lifetime: struct ctkn_dest_command is plain data (ctkn_dest_command_init
 *           and the setters); ctkn_settings_execute() runs one end to end.
 * Errors:   CTKN_EINVAL naming the field and the rule; CTKN_EBADREQ for a
 *           command that changes nothing it could; CTKN_ENOTFOUND;
 *           CTKN_ECONFLICT when a concurrent change won; the log's and
 *           the store's errors.
 * Thread:   the functions hold no state; a projector's settings follower
 *           belongs to one thread.
 * Not here: delivering (notify.h), encodings (codec.h).
 */
#ifndef CTKN_SETTINGS_H
#define CTKN_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/log.h"
#include "ctkn/store.h"
#include "ctkn/token.h"

#define CTKN_DEST_ID_LEN (7 + CTKN_ULID_LEN) /* "ntfset_" + ULID */
#define CTKN_DEST_ID_BUF (CTKN_DEST_ID_LEN + 1)
#define CTKN_URL_MAX     2048 /* bytes */
/* "pdl_ntfset_" + the ID's ULID + "_" + 32 base62, as Paddle's. */
#define CTKN_SECRET_LEN  (11 + CTKN_ULID_LEN + 1 + 32)
#define CTKN_SECRET_BUF  (CTKN_SECRET_LEN + 1)
#define CTKN_SEALED_LEN  (CTKN_SECRET_LEN + CTKN_SEAL_OVERHEAD)
/* Every event type a destination may subscribe to: bit (1 << type). */
#define CTKN_DEST_EVENTS_ALL                                                   \
  ((1u << CTKN_EVENT_CREATED) | (1u << CTKN_EVENT_UPDATED) |                   \
   (1u << CTKN_EVENT_REVOKED))
#define CTKN_SETTINGS_SUFFIX "_settings"

typedef enum ctkn_setting_type {
  CTKN_SETTING_CREATED = 1, /* notification_setting.created */
  CTKN_SETTING_UPDATED = 2, /* notification_setting.updated */
  CTKN_SETTING_DELETED = 3  /* notification_setting.deleted: terminal */
} ctkn_setting_type;

/* "notification_setting.created" ...; NULL for an unknown value. */
const char *ctkn_setting_type_str(ctkn_setting_type t);
/* The type named by s, or 0. */
ctkn_setting_type ctkn_setting_type_parse(const char *s);

/* A destination as projected. */
struct ctkn_destination {
  char id[CTKN_DEST_ID_BUF];
  bool has_description;
  char description[CTKN_DESC_BYTES + 1];
  char url[CTKN_URL_MAX + 1];
  bool active;     /* false: paused, receives nothing until resumed */
  unsigned events; /* subscribed types, bit (1 << ctkn_event_type) */
  uint8_t sealed[CTKN_SEALED_LEN]; /* the endpoint secret, sealed */
  int64_t created_at;              /* µs */
  int64_t updated_at;              /* µs */
  uint64_t version;                /* 1 on create, +1 per change */
  bool deleted;                    /* removed: kept so its ID is never reused */
};

/* One change, as it travels on the settings topic. start[] (creates only)
 * is where deliveries begin: the next offset of each event-topic
 * partition 0..nstart-1 when the destination was created; partitions added
 * later start at 0. */
struct ctkn_setting_event {
  char event_id[CTKN_EVT_ID_LEN + 1];
  ctkn_setting_type type;
  int64_t occurred_at; /* µs; equals data.updated_at */
  uint64_t version;
  struct ctkn_destination data;
  int32_t nstart;
  int64_t start[CTKN_STORE_MAX_PARTITIONS];
};

/* ---- commands --------------------------------------------------------- */

typedef enum ctkn_dest_cmd_kind {
  CTKN_DEST_ADD = 1,
  CTKN_DEST_UPDATE = 2,
  CTKN_DEST_REMOVE = 3
} ctkn_dest_cmd_kind;

struct ctkn_dest_command {
  ctkn_dest_cmd_kind kind;
  char id[CTKN_DEST_ID_BUF]; /* update and remove */
  bool set_url;
  char url[CTKN_URL_MAX + 1];
  bool set_events;
  unsigned events;
  bool set_description;
  bool has_description; /* false with set_description: set to null */
  char description[CTKN_DESC_BYTES + 1];
  bool set_active;
  bool active;
};

void ctkn_dest_command_init(struct ctkn_dest_command *cmd,
                            ctkn_dest_cmd_kind kind);
/* id: ^ntfset_[0-9a-z]{26}$ (field "id"). */
int ctkn_dest_command_set_id(struct ctkn_dest_command *cmd, const char *id,
                             struct ctkn_err *err);
/* url: an absolute http:// or https:// URL with a host, at most 2048
 * bytes of visible ASCII (field "destination"). */
int ctkn_dest_command_set_url(struct ctkn_dest_command *cmd, const char *url,
                              struct ctkn_err *err);
/* events: comma-separated names, each a client_token.* event type, at
 * least one, no repeats (field "subscribed_events"). */
int ctkn_dest_command_set_events(struct ctkn_dest_command *cmd, const char *csv,
                                 struct ctkn_err *err);
/* The same, from a mask already parsed. */
int ctkn_dest_command_set_event_mask(struct ctkn_dest_command *cmd,
                                     unsigned mask, struct ctkn_err *err);
/* description: NULL sets null; otherwise 1-500 code points. */
int ctkn_dest_command_set_description(struct ctkn_dest_command *cmd,
                                      const char *s, size_t len,
                                      struct ctkn_err *err);
void ctkn_dest_command_set_active(struct ctkn_dest_command *cmd, bool active);
/* An add has a URL and events; update and remove an ID; an update
 * changes something (CTKN_EBADREQ). */
int ctkn_dest_command_check(const struct ctkn_dest_command *cmd,
                            struct ctkn_err *err);

/* ---- the pure functions ------------------------------------------------ */

/*
 * Plan the event for cmd against cur (NULL when the destination does not
 * exist; always for an add). An add generates the ID and the endpoint
 * secret (written to secret, which the caller wipes after showing it once)
 * and seals it under key; start/nstart are the event topic's end offsets.
 * Returns CTKN_PLAN_APPEND with *out filled, CTKN_PLAN_NOOP when nothing
 * would change, or an error: CTKN_ENOTFOUND for a missing or removed
 * destination.
 */
int ctkn_settings_plan(const struct ctkn_destination *cur,
                       const struct ctkn_dest_command *cmd,
                       const uint8_t key[CTKN_KEY_LEN], const int64_t *start,
                       int32_t nstart, int64_t now_us,
                       struct ctkn_setting_event *out,
                       char secret[CTKN_SECRET_BUF], struct ctkn_err *err);

/* What every correct writer's event satisfies; failing it is quarantine. */
int ctkn_setting_event_check(const struct ctkn_setting_event *ev,
                             struct ctkn_err *err);

/* Apply ev to cur (NULL: none): CTKN_APPLIED with *next, or CTKN_REJECTED
 * with the reason (a stale version, a change to a removed destination). */
int ctkn_settings_apply(const struct ctkn_destination *cur,
                        const struct ctkn_setting_event *ev,
                        struct ctkn_destination *next, char *reason,
                        size_t reasonsz);

/* Unseal a destination's endpoint secret. CTKN_EINVAL when key is not
 * the key it was sealed under. */
int ctkn_destination_secret(const struct ctkn_destination *d,
                            const uint8_t key[CTKN_KEY_LEN],
                            char secret[CTKN_SECRET_BUF], struct ctkn_err *err);

/* ---- the projection ----------------------------------------------------- */

/* The settings topic's name for an event topic: topic + "_settings".
 * CTKN_EINVAL (field "topic") when that would pass Kafka's 249. */
int ctkn_settings_topic(const char *topic, char *out, size_t outsz,
                        struct ctkn_err *err);

/*
 * Create the settings topic of cfg's event topic (ctkn_settings_topic())
 * when missing, with one partition: destination changes are few, and one
 * total order lets every replica apply them alike. *created tells whether
 * it was created now; *partitions receives its partition count either
 * way. Borrows cfg for the call.
 * Errors: CTKN_EINVAL (field "topic": the name would pass Kafka's 249),
 * and ctkn_log_create_topic()'s: CTKN_EUSAGE, CTKN_EINVAL (the broker
 * refused the values), CTKN_EKAFKA, CTKN_ETIMEOUT.
 */
int ctkn_settings_create_topic(const struct ctkn_log_config *cfg,
                               int replication_factor, bool *created,
                               int32_t *partitions, struct ctkn_err *err);

/* A destination by ID (removed ones are CTKN_ENOTFOUND unless
 * include_deleted). */
int ctkn_settings_get(ctkn_store_txn *txn, const char *id, bool include_deleted,
                      struct ctkn_destination *out, struct ctkn_err *err);
/* Every live destination in ID order; *out is malloc'd (caller frees). */
int ctkn_settings_list(ctkn_store_txn *txn, struct ctkn_destination **out,
                       size_t *n, struct ctkn_err *err);
/* Where destination id's deliveries start on partition: its recorded
 * start, 0 for a partition added after it was created. */
int64_t ctkn_settings_start(ctkn_store_txn *txn, const char *id,
                            int32_t partition);

/*
 * Apply records read from the settings topic in one write transaction,
 * skipping those below the stored settings offsets; records that do not
 * decode or are invalid are quarantined (reported on stderr and recorded
 * with their fate). Each record's fate goes in the settings log.
 */
int ctkn_settings_project(ctkn_store *st, const struct ctkn_log_msg *msgs,
                          size_t n, struct ctkn_err *err);

/* The fate of the settings record at (partition, offset): CTKN_OK with
 * *applied, or CTKN_ENOTFOUND when not projected yet. */
int ctkn_settings_fate(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                       bool *applied, char *reason, size_t reasonsz,
                       struct ctkn_err *err);

/* ---- following the settings topic ------------------------------------ */

typedef struct ctkn_settings_follower ctkn_settings_follower;

/* A consumer of the settings topic (cfg's topic + "_settings"),
 * assigned at the stored offsets.
 * CTKN_ENOTFOUND when the topic does not exist (run `ctkn init`). */
int ctkn_settings_follower_open(ctkn_settings_follower **out, ctkn_store *st,
                                const struct ctkn_log_config *cfg,
                                struct ctkn_err *err);
void ctkn_settings_follower_close(ctkn_settings_follower *f);
/* Apply what has arrived, waiting up to timeout_ms for a first record;
 * *applied counts the records projected. */
int ctkn_settings_follower_poll(ctkn_settings_follower *f, int timeout_ms,
                                size_t *applied, struct ctkn_err *err);
/* Project the settings topic up to its end as it stands now. */
int ctkn_settings_follower_catch_up(ctkn_settings_follower *f,
                                    struct ctkn_err *err);

/* ---- one command end to end ------------------------------------------- */

struct ctkn_dest_outcome {
  struct ctkn_destination dest; /* the state after the command */
  bool appended;
  char secret[CTKN_SECRET_BUF]; /* an add's endpoint secret, else "" */
};

/*
 * Catch the settings projection up, plan, append to the settings topic
 * and wait until the projection has judged the event (CTKN_ECONFLICT when
 * a concurrent change won). An add reads the event topic's end offsets
 * for its start and needs key; the others pass key NULL.
 */
int ctkn_settings_execute(ctkn_store *st, const struct ctkn_log_config *cfg,
                          const uint8_t *key,
                          const struct ctkn_dest_command *cmd,
                          struct ctkn_dest_outcome *out, struct ctkn_err *err);

#endif /* CTKN_SETTINGS_H */
