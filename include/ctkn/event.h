/*
 * event.h - commands, events, planning and the state machine.
 *
 * The domain's two pure functions live here:
 *
 *   ctkn_plan(state, command, now)  -> the one event to append, a no-op,
 *                                      or a typed error;
 *   ctkn_apply(state, event)        -> the next state, or a rejection.
 *
 * ctkn_apply() is deterministic: it reads no clock and no randomness, so
 * every replica that applies the same log prefix reaches the same state.
 * ctkn_plan() reads randomness (new IDs) but takes "now" as an argument.
 *
 * Two kinds of bad event are told apart. An event that no correct writer
 * could have produced (bad IDs, bad text, a "created" event with version
 * 7) fails ctkn_event_check() and is quarantined. A well-formed event that
 * does not fit the current state (a stale version, a change to a revoked
 * token, the other environment's token) is rejected by ctkn_apply().
 *
 * Errors:   0 or negative CTKN_E*; *err names the field and the rule.
 * Not here: encodings (codec.h), the log (log.h), the store (store.h).
 */
#ifndef CTKN_EVENT_H
#define CTKN_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "ctkn/error.h"
#include "ctkn/token.h"

/* The newest event schema this build understands (Kafka header): a
 * record of a newer one pauses its partition. Version 2 adds the API-key
 * records of the settings topic (akey.h); token and destination records
 * are still written as version 1 (CTKN_SCHEMA_WRITTEN), which every
 * build reads, so writers of them need no keyring change. */
#define CTKN_SCHEMA_VERSION 2
/* The schema token and destination records are written with. */
#define CTKN_SCHEMA_WRITTEN 1

#define CTKN_IDEM_KEY_MAX 255 /* bytes of visible ASCII */
#define CTKN_HASH_LEN     32  /* SHA-256 */

typedef enum ctkn_event_type {
  CTKN_EVENT_CREATED = 1,
  CTKN_EVENT_UPDATED = 2,
  CTKN_EVENT_REVOKED = 3
} ctkn_event_type;

/* "client_token.created" ...; NULL for an unknown value. */
const char *ctkn_event_type_str(ctkn_event_type t);
/* The type named by s, or 0 when s names none. */
ctkn_event_type ctkn_event_type_parse(const char *s);

/*
 * One event: Paddle's webhook envelope plus what replication needs (the
 * per-token version and, on creates, the idempotency key and the hash of
 * the request it was made from).
 */
struct ctkn_event {
  char event_id[CTKN_EVT_ID_LEN + 1];
  ctkn_event_type type;
  int64_t occurred_at; /* µs; equals data.updated_at */
  char notification_id[CTKN_EVT_ID_LEN + 1];
  uint64_t version; /* 1 for created, +1 for each change */
  struct ctkn_token data;
  char idempotency_key[CTKN_IDEM_KEY_MAX + 1]; /* "" when none */
  bool has_request_hash;
  uint8_t request_hash[CTKN_HASH_LEN];
};

/*
 * The projected state of one token: the entity, its version, the partition
 * it was created on (later commands produce there) and the offset of the
 * last event applied to it.
 */
struct ctkn_record {
  struct ctkn_token token;
  uint64_t version;
  int32_t partition;
  int64_t offset;
};

/* ---- commands ------------------------------------------------------ */

typedef enum ctkn_cmd_kind {
  CTKN_CMD_CREATE = 1,
  CTKN_CMD_UPDATE = 2,
  CTKN_CMD_REVOKE = 3
} ctkn_cmd_kind;

/*
 * A request to change state. Build it with ctkn_command_init() and the
 * setters, which validate as they copy, so the CLI and the HTTP API share
 * one set of rules and messages.
 */
struct ctkn_command {
  ctkn_cmd_kind kind;
  char id[CTKN_ID_BUF]; /* update and revoke */
  bool set_name;
  char name[CTKN_NAME_BYTES + 1];
  bool set_description;
  bool has_description; /* false with set_description: set to null */
  char description[CTKN_DESC_BYTES + 1];
  bool set_status;
  ctkn_status status;
  char idempotency_key[CTKN_IDEM_KEY_MAX + 1]; /* create; "" when none */
};

void ctkn_command_init(struct ctkn_command *cmd, ctkn_cmd_kind kind);

/* id must match ^ctkn_[0-9a-z]{26}$. Errors: CTKN_EINVAL (field "id"). */
int ctkn_command_set_id(struct ctkn_command *cmd, const char *id,
                        struct ctkn_err *err);
/* name: 1-150 code points of valid UTF-8 without control characters.
 * Errors: CTKN_EINVAL (field "name"). */
int ctkn_command_set_name(struct ctkn_command *cmd, const char *s, size_t len,
                          struct ctkn_err *err);
/* description: s == NULL sets null; otherwise 1-500 code points.
 * Errors: CTKN_EINVAL (field "description"). */
int ctkn_command_set_description(struct ctkn_command *cmd, const char *s,
                                 size_t len, struct ctkn_err *err);
/* status: "active" or "revoked". Errors: CTKN_EINVAL (field "status"). */
int ctkn_command_set_status(struct ctkn_command *cmd, const char *s,
                            struct ctkn_err *err);
/* idempotency key: 1-255 visible ASCII characters (create only).
 * Errors: CTKN_EINVAL (field "idempotency_key"). */
int ctkn_command_set_idempotency_key(struct ctkn_command *cmd, const char *s,
                                     size_t len, struct ctkn_err *err);

/*
 * Check that a command is complete: a create has a name; an update or
 * revoke has an ID; an update changes at least one field; only creates
 * carry an idempotency key. Errors: CTKN_EINVAL naming the field ("name"
 * missing, "status" on a create, "id", "idempotency_key" on a change),
 * CTKN_EBADREQ (an update that changes nothing, an unknown kind).
 */
int ctkn_command_check(const struct ctkn_command *cmd, struct ctkn_err *err);

/*
 * SHA-256 of a canonical encoding of what a create asks for (name and
 * description). Stored with the idempotency key, so that the same key sent
 * with a different request is told apart from a retry.
 */
void ctkn_command_request_hash(const struct ctkn_command *cmd,
                               uint8_t out[CTKN_HASH_LEN]);

/* ---- planning and applying ------------------------------------------ */

enum {
  CTKN_PLAN_APPEND = 0, /* *out is the event to append */
  CTKN_PLAN_NOOP = 1    /* nothing to append; out->data is the state */
};

/*
 * Plan the one event that carries out cmd against the current state.
 * cur is NULL when the token does not exist (always, for a create).
 *
 * On CTKN_PLAN_APPEND the event has new event and notification IDs, the
 * version cur->version + 1 (1 for a create), occurred_at = updated_at =
 * max(now_us, cur updated_at + 1 µs), and for a create a new ID and token
 * string for env. A command that sets status to revoked plans a revoked
 * event; any other change plans an updated event.
 *
 * Errors: CTKN_EINVAL / CTKN_EBADREQ for a bad command, CTKN_ENOTFOUND
 * when an update or revoke finds no token, CTKN_ECONFLICT for a change to
 * a revoked token, CTKN_EIO when randomness fails.
 */
int ctkn_plan(const struct ctkn_record *cur, const struct ctkn_command *cmd,
              ctkn_env env, int64_t now_us, struct ctkn_event *out,
              struct ctkn_err *err);

/*
 * Stateless validity: the rules any event from a correct writer keeps.
 * Failing it means quarantine. Checks the IDs, the entity (token_check),
 * the type against status/version/timestamps and occurred_at. Errors:
 * CTKN_EINVAL, naming the field and the rule.
 */
int ctkn_event_check(const struct ctkn_event *ev, struct ctkn_err *err);

enum { CTKN_APPLIED = 0, CTKN_REJECTED = 1 };

/*
 * Apply ev to the current state (cur NULL when the token is unknown).
 * Returns CTKN_APPLIED with *next set, or CTKN_REJECTED with the reason
 * written to reason (always NUL terminated; reason may be NULL).
 *
 * Rules: ctkn_event_check() holds; the token prefix matches env; a created
 * event needs no current state and version 1; any other event needs
 * version = cur->version + 1, a current state that is not revoked, the
 * same ID, token string and created_at, and updated_at later than the
 * current one. Deterministic: no clock, no randomness.
 */
int ctkn_apply(const struct ctkn_record *cur, const struct ctkn_event *ev,
               ctkn_env env, struct ctkn_token *next, char *reason,
               size_t reasonsz);

#endif /* CTKN_EVENT_H */
