/*
 * akey.h - an API key on the log as a value: the entity (Paddle's API key
 * shape, plus the hashes that check a presented key), the events that
 * change it, the commands that ask for a change, and the pure rules that
 * plan and apply them.
 *
 * This is to keylog.h (the projection) and keycmd.h (one command end to
 * end) what setting.h is to settings.h: nothing here reads the store or
 * the log.
 *
 * A key on the log is "ctkn_" + "sdbx" | "live" + "_apikey_" + the key's
 * ULID + "_" + 43 base64url characters (32 bytes from getrandom(2)). Its
 * ID ("apikey_" + the ULID) is read from the key itself, so a server
 * finds the entity with one lookup and compares the SHA-256 of the whole
 * key string with the stored one in constant time. Only that hash ever
 * travels or rests. A key in the key file's format (keyset.h), moved onto
 * the log by `ctkn apikey import`, is "legacy": it holds no ID and is
 * found through a hash index.
 *
 * Lifetime: plain data with fixed-size fields: copy it, no ownership.
 * Errors:   CTKN_EINVAL with err->field naming the field and err->msg the
 *           rule; CTKN_EBADREQ (a change that changes nothing it could);
 *           CTKN_ENOTFOUND (planning against a missing key);
 *           CTKN_ECONFLICT (a change to a revoked or expired key);
 *           CTKN_EIO (no randomness).
 * Thread:   all functions are thread-safe.
 * Not here: the projection (keylog.h), running a command (keycmd.h),
 *           encodings (codec.h).
 */
#ifndef CTKN_AKEY_H
#define CTKN_AKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"
#include "ctkn/keyset.h"
#include "ctkn/token.h"

/* The schema version API-key records are written with (they are new in
 * it; the keyring must enable it first: `ctkn trust schema enable 2`). */
#define CTKN_AKEY_SCHEMA           2
#define CTKN_AKEY_ID_LEN           (7 + CTKN_ULID_LEN) /* "apikey_" + ULID */
#define CTKN_AKEY_ID_BUF           (CTKN_AKEY_ID_LEN + 1)
#define CTKN_AKEY_LEN              (5 + 4 + 8 + CTKN_ULID_LEN + 1 + 43)
#define CTKN_AKEY_BUF              (CTKN_AKEY_LEN + 1)
#define CTKN_AKEY_GRACE_MAX        86400 /* seconds a rotated-out secret may live */
/* How often a replica appends "used" for one key, by default (µs). */
#define CTKN_AKEY_USED_INTERVAL_US (3600 * INT64_C(1000000))

typedef enum ctkn_akey_type {
  CTKN_AKEY_CREATED = 1, /* api_key.created */
  CTKN_AKEY_UPDATED = 2, /* api_key.updated */
  CTKN_AKEY_ROTATED = 3, /* api_key.rotated: a new secret */
  CTKN_AKEY_REVOKED = 4, /* api_key.revoked: terminal */
  CTKN_AKEY_EXPIRED = 5, /* api_key.expired: terminal */
  CTKN_AKEY_USED = 6,    /* api_key.used: moves last_used_at only */
  /* api_key.expiring: the notice ahead of expires_at. Carries the key as
   * the appender read it, at its version (not +1): the first one for an
   * expires_at applies, later ones are rejected (recorded, no event). */
  CTKN_AKEY_EXPIRING = 7
} ctkn_akey_type;

/* How long before expires_at api_key.expiring is due, by default (µs). */
#define CTKN_AKEY_EXPIRING_LEAD_US (7 * 86400 * INT64_C(1000000))

typedef enum ctkn_akey_status {
  CTKN_AKEY_ACTIVE = 0,
  CTKN_AKEY_ST_EXPIRED = 1,
  CTKN_AKEY_ST_REVOKED = 2
} ctkn_akey_status;

/* "api_key.created" ...; NULL for an unknown value (static). */
const char *ctkn_akey_type_str(ctkn_akey_type t);
/* The type s names (may be NULL), or 0. */
ctkn_akey_type ctkn_akey_type_parse(const char *s);
/* "active", "expired", "revoked"; NULL for an unknown value (static). */
const char *ctkn_akey_status_str(ctkn_akey_status s);
/* The status s names: 0 and *out set, or -1. */
int ctkn_akey_status_parse(const char *s, ctkn_akey_status *out);

/* A key as projected. Times are µs since the epoch, 0 for "none". */
struct ctkn_akey {
  char id[CTKN_AKEY_ID_BUF];
  char name[CTKN_NAME_BYTES + 1];
  bool has_description;
  char description[CTKN_DESC_BYTES + 1];
  ctkn_akey_status status; /* as recorded; see ctkn_akey_status_at() */
  unsigned perms;          /* enum ctkn_perm, write implying read */
  int64_t expires_at;
  int64_t last_used_at;
  int64_t created_at;
  int64_t updated_at;
  uint8_t sha256[32]; /* of the whole key string */
  bool legacy;        /* key-file format: found by its hash */
  bool has_previous;  /* a rotated-out secret, accepted until ... */
  uint8_t previous_sha256[32];
  int64_t previous_until;
  uint64_t version; /* 1 on create, +1 per change ("used" excluded) */
  /* The expires_at an api_key.expiring was applied for; 0: none. */
  int64_t expiring_for;
};

/* One change as it travels on the settings topic. */
struct ctkn_akey_event {
  char event_id[CTKN_EVT_ID_LEN + 1];
  ctkn_akey_type type;
  int64_t occurred_at; /* = data.updated_at; "used": data.last_used_at */
  uint64_t version;    /* 0 for "used" */
  struct ctkn_akey data;
};

/* The status k has at now: revoked, or expired (recorded, or expires_at
 * passed), or active. */
ctkn_akey_status ctkn_akey_status_at(const struct ctkn_akey *k, int64_t now);

/* ---- the key string ---------------------------------------------------- */

/*
 * Read the ID out of a presented key (len bytes, borrowed for the call):
 * for a key of this format, id receives "apikey_<ULID>" and *env its
 * environment. Only the public shape is checked, not the secret.
 * Errors: CTKN_EAUTHMALFORMED (not shaped like a key of this format).
 */
int ctkn_akey_parse(const char *key, size_t len, char id[CTKN_AKEY_ID_BUF],
                    ctkn_env *env);

/* A new key string for id in env into key, and its SHA-256 into sha256.
 * Errors: CTKN_EINVAL (an ID or env that is not one); CTKN_EIO. */
int ctkn_akey_generate(const char *id, ctkn_env env, char key[CTKN_AKEY_BUF],
                       uint8_t sha256[32]);

/*
 * Whether key (len bytes) opens k at now: its SHA-256 equals k's current
 * hash, or the previous one while previous_until is after now; both are
 * compared in constant time, every time. Status and expiry are not
 * checked here (ctkn_akey_status_at()).
 */
bool ctkn_akey_secret_matches(const struct ctkn_akey *k, const char *key,
                              size_t len, int64_t now);

/* ---- rules ------------------------------------------------------------- */

/* Every rule a correct writer keeps (ID, name, description, permissions,
 * times, status against the type, occurred_at, version); failing it means
 * quarantine. Errors: CTKN_EINVAL naming the field. */
int ctkn_akey_event_check(const struct ctkn_akey_event *ev,
                          struct ctkn_err *err);

/*
 * Apply ev to cur (NULL: no such key) into *next: CTKN_OK, or
 * CTKN_AKEY_REJECTED with the reason in reason (reasonsz bytes). A create
 * needs no key; "used" needs one and only moves last_used_at forward;
 * every other event needs version = cur + 1, a key that is neither
 * revoked nor expired, the same ID and created_at, a later updated_at.
 * Errors: none but the verdict.
 */
#define CTKN_AKEY_REJECTED 1
int ctkn_akey_apply(const struct ctkn_akey *cur,
                    const struct ctkn_akey_event *ev, struct ctkn_akey *next,
                    char *reason, size_t reasonsz);

/* ---- commands ---------------------------------------------------------- */

typedef enum ctkn_akey_cmd_kind {
  CTKN_AKEY_CMD_CREATE = 1,
  CTKN_AKEY_CMD_UPDATE = 2, /* name, description, permissions, expiry,
                               or status revoked */
  CTKN_AKEY_CMD_ROTATE = 3,
  CTKN_AKEY_CMD_REVOKE = 4,
  CTKN_AKEY_CMD_IMPORT = 5, /* a key-file entry: its hash, legacy */
  CTKN_AKEY_CMD_USED = 6,
  /* Due notices (ctkn serve's sweep): expiring appends api_key.expiring
   * when now is within lead_us of expires_at and none was applied for it;
   * expire appends api_key.expired once expires_at passed. Otherwise a
   * no-op, never an error, so several appenders may race. */
  CTKN_AKEY_CMD_EXPIRING = 7,
  CTKN_AKEY_CMD_EXPIRE = 8
} ctkn_akey_cmd_kind;

struct ctkn_akey_command {
  ctkn_akey_cmd_kind kind;
  char id[CTKN_AKEY_ID_BUF]; /* all but create and import */
  bool set_name;
  char name[CTKN_NAME_BYTES + 1];
  bool set_description;
  bool has_description; /* false with set_description: null */
  char description[CTKN_DESC_BYTES + 1];
  bool set_perms;
  unsigned perms;
  bool set_expires;
  int64_t expires_at; /* 0: never */
  bool revoke;        /* an update that sets status revoked */
  int64_t grace_s;    /* rotate: 0..86400 */
  uint8_t sha256[32]; /* import */
  int64_t created_at; /* import: the file's; 0: now */
  int64_t used_at;    /* used */
  int64_t lead_us;    /* expiring: how long before expires_at */
};

/* An empty command of kind. */
void ctkn_akey_command_init(struct ctkn_akey_command *cmd,
                            ctkn_akey_cmd_kind kind);
/* id: ^apikey_[0-9a-z]{26}$. Errors: CTKN_EINVAL (field "id"). */
int ctkn_akey_command_set_id(struct ctkn_akey_command *cmd, const char *id,
                             struct ctkn_err *err);
/* name: 1-150 code points. Errors: CTKN_EINVAL (field "name"). */
int ctkn_akey_command_set_name(struct ctkn_akey_command *cmd, const char *s,
                               size_t len, struct ctkn_err *err);
/* description: NULL sets null; else 1-500 code points.
 * Errors: CTKN_EINVAL (field "description"). */
int ctkn_akey_command_set_description(struct ctkn_akey_command *cmd,
                                      const char *s, size_t len,
                                      struct ctkn_err *err);
/* permissions: a non-empty set of enum ctkn_perm bits.
 * Errors: CTKN_EINVAL (field "permissions"). */
int ctkn_akey_command_set_perms(struct ctkn_akey_command *cmd, unsigned perms,
                                struct ctkn_err *err);
/* expires_at: 0 for never, else a time (µs) after now.
 * Errors: CTKN_EINVAL (field "expires_at": not in the future). */
int ctkn_akey_command_set_expires(struct ctkn_akey_command *cmd, int64_t at,
                                  int64_t now, struct ctkn_err *err);
/* grace_period_seconds: 0..86400. Errors: CTKN_EINVAL (field
 * "grace_period_seconds"). */
int ctkn_akey_command_set_grace(struct ctkn_akey_command *cmd, int64_t s,
                                struct ctkn_err *err);

/* Plan outcomes: an event to append, or nothing to do. */
#define CTKN_AKEY_PLAN_APPEND 1
#define CTKN_AKEY_PLAN_NOOP   2

/*
 * Plan cmd against cur (NULL: no such key) at now in env: fills *ev and
 * returns CTKN_AKEY_PLAN_APPEND, or CTKN_AKEY_PLAN_NOOP (revoking a
 * revoked key, a change that changes nothing), or an error. A create and
 * a rotation write the new key string into key (the only time it
 * exists); otherwise key is "". key may be NULL for other kinds.
 * Errors: CTKN_EINVAL (a create without name or permissions; field named);
 * CTKN_ENOTFOUND; CTKN_ECONFLICT (a change to a revoked or expired key);
 * CTKN_EIO.
 */
int ctkn_akey_plan(const struct ctkn_akey *cur,
                   const struct ctkn_akey_command *cmd, ctkn_env env,
                   int64_t now, struct ctkn_akey_event *ev,
                   char key[CTKN_AKEY_BUF], struct ctkn_err *err);

#endif /* CTKN_AKEY_H */
