/*
 * setting.h - a notification destination as a value: the entity, the
 * events that change it, the commands that ask for a change, and the pure
 * rules that turn one into the other.
 *
 * This is to settings.h what event.h is to the ledger: nothing here reads
 * the store or the log, so the codec (codec.h) can encode these types and
 * the projection (settings.h) can apply them without either depending on
 * the other.
 *
 * A destination is a URL that receives signed webhook POSTs of the
 * client_token.* events it subscribes to. Its endpoint secret is generated
 * at creation and only ever travels and rests sealed (AES-256-GCM under
 * the deployment key, crypto.h, with the destination ID as associated
 * data); it is shown in the create's answer, and by a server that holds
 * the key on reads (ctkn_destination_secret()).
 *
 * Lifetime: every type is plain data with fixed-size fields: copy it, no
 *           ownership. Build a struct ctkn_dest_command with
 *           ctkn_dest_command_init() and the setters, which validate as
 *           they copy, so the CLI and the API share one set of rules.
 * Errors:   CTKN_EINVAL with err->field naming the field and err->msg the
 *           rule; CTKN_EBADREQ for a command that changes nothing it
 *           could; CTKN_ENOTFOUND from planning against a missing
 *           destination; CTKN_EIO when the kernel's CSPRNG fails.
 * Thread:   all functions are thread-safe.
 * Not here: the projection, the settings topic and running a command
 *           (settings.h); encodings (codec.h); delivering (notify.h).
 */
#ifndef CTKN_SETTING_H
#define CTKN_SETTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/netaddr.h"
#include "ctkn/token.h"

#define CTKN_DEST_ID_LEN        (7 + CTKN_ULID_LEN) /* "ntfset_" + ULID */
#define CTKN_DEST_ID_BUF        (CTKN_DEST_ID_LEN + 1)
#define CTKN_URL_MAX            2048 /* bytes */
/* "pdl_ntfset_" + the ID's ULID + "_" + 32 base62, as Paddle's. */
#define CTKN_SECRET_LEN         (11 + CTKN_ULID_LEN + 1 + 32)
#define CTKN_SECRET_BUF         (CTKN_SECRET_LEN + 1)
#define CTKN_SEALED_LEN         (CTKN_SECRET_LEN + CTKN_SEAL_OVERHEAD)
/* The event types a destination may subscribe to, each a bit (1 << t):
 * t is the ctkn_event_type of client_token.* (1..3), and for api_key.*
 * the code the settings projection keeps its events by
 * (ctkn_settings_event_code(), 6..10). A notification's type is the
 * same t (notification.h). */
#define CTKN_DEST_AKEY_CREATED  6
#define CTKN_DEST_AKEY_UPDATED  7
#define CTKN_DEST_AKEY_REVOKED  8
#define CTKN_DEST_AKEY_EXPIRING 9
#define CTKN_DEST_AKEY_EXPIRED  10
#define CTKN_DEST_TOKEN_EVENTS                                                 \
  ((1u << CTKN_EVENT_CREATED) | (1u << CTKN_EVENT_UPDATED) |                   \
   (1u << CTKN_EVENT_REVOKED))
#define CTKN_DEST_AKEY_EVENTS                                                  \
  ((1u << CTKN_DEST_AKEY_CREATED) | (1u << CTKN_DEST_AKEY_UPDATED) |           \
   (1u << CTKN_DEST_AKEY_REVOKED) | (1u << CTKN_DEST_AKEY_EXPIRING) |          \
   (1u << CTKN_DEST_AKEY_EXPIRED))
#define CTKN_DEST_EVENTS_ALL (CTKN_DEST_TOKEN_EVENTS | CTKN_DEST_AKEY_EVENTS)
/* The names a subscription may list, as a comma-separated string. */
#define CTKN_DEST_EVENTS_LIST                                                  \
  "client_token.created, client_token.updated, client_token.revoked, "         \
  "api_key.created, api_key.updated, api_key.revoked, api_key.expiring, "      \
  "api_key.expired"

/* The name of subscription type t (above), or NULL. */
const char *ctkn_dest_event_str(int t);
/* The subscription type named s, or 0. */
int ctkn_dest_event_parse(const char *s);
/* Event-topic partitions a creation records a start for: the store's
 * CTKN_STORE_MAX_PARTITIONS (settings.c asserts they agree; this header
 * sits below the store and cannot include it). */
#define CTKN_SETTING_START_MAX 4096
/* Active destinations at most, as Paddle allows. */
#define CTKN_DEST_MAX_ACTIVE   10

typedef enum ctkn_setting_type {
  CTKN_SETTING_CREATED = 1, /* notification_setting.created */
  CTKN_SETTING_UPDATED = 2, /* notification_setting.updated */
  CTKN_SETTING_DELETED = 3  /* notification_setting.deleted: terminal */
} ctkn_setting_type;

/* "notification_setting.created" ...; NULL for an unknown value. The
 * string is static. Errors: none. */
const char *ctkn_setting_type_str(ctkn_setting_type t);
/* The type named by s (may be NULL), or 0 when s names none. Errors:
 * none. */
ctkn_setting_type ctkn_setting_type_parse(const char *s);

/* Paddle's traffic_source: which traffic a destination receives. ctkn has
 * no simulated traffic, so both deliver every event; the value is kept
 * and read back as it was sent. Paddle's third, "simulation", would
 * receive nothing in ctkn, and is refused. */
typedef enum ctkn_traffic {
  CTKN_TRAFFIC_PLATFORM = 0, /* Paddle's default */
  CTKN_TRAFFIC_ALL = 1
} ctkn_traffic;

/* "platform" or "all"; NULL for an unknown value. The string is static.
 * Errors: none. */
const char *ctkn_traffic_str(ctkn_traffic t);
/* The value named by s (may be NULL): 0 and *out set, or -1 when s names
 * none. Errors: none. */
int ctkn_traffic_parse(const char *s, ctkn_traffic *out);

/* A destination as projected. */
struct ctkn_destination {
  char id[CTKN_DEST_ID_BUF];
  bool has_description;
  char description[CTKN_DESC_BYTES + 1];
  char url[CTKN_URL_MAX + 1];
  bool active;          /* false: paused, receives nothing until resumed */
  unsigned events;      /* subscribed types, bit (1 << ctkn_event_type) */
  ctkn_traffic traffic; /* traffic_source */
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
  int64_t start[CTKN_SETTING_START_MAX];
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
  bool set_traffic;
  ctkn_traffic traffic;
};

/* An empty command of kind. Errors: none. */
void ctkn_dest_command_init(struct ctkn_dest_command *cmd,
                            ctkn_dest_cmd_kind kind);
/* id: ^ntfset_[0-9a-z]{26}$. Borrows id for the call.
 * Errors: CTKN_EINVAL (field "id"). */
int ctkn_dest_command_set_id(struct ctkn_dest_command *cmd, const char *id,
                             struct ctkn_err *err);
/* url: an absolute http:// or https:// URL with a host, at most 2048
 * bytes of visible ASCII. Borrows url for the call.
 * Errors: CTKN_EINVAL (field "destination"). */
int ctkn_dest_command_set_url(struct ctkn_dest_command *cmd, const char *url,
                              struct ctkn_err *err);
/* events: comma-separated names, each in CTKN_DEST_EVENTS_LIST, at
 * least one, no repeats. Borrows csv for the call.
 * Errors: CTKN_EINVAL (field "subscribed_events"). */
int ctkn_dest_command_set_events(struct ctkn_dest_command *cmd, const char *csv,
                                 struct ctkn_err *err);
/* The same, from a mask already parsed: a non-empty subset of
 * CTKN_DEST_EVENTS_ALL. Errors: CTKN_EINVAL (field "subscribed_events"). */
int ctkn_dest_command_set_event_mask(struct ctkn_dest_command *cmd,
                                     unsigned mask, struct ctkn_err *err);
/* description: NULL sets null; otherwise 1-500 code points of len bytes,
 * borrowed for the call. Errors: CTKN_EINVAL (field "description"). */
int ctkn_dest_command_set_description(struct ctkn_dest_command *cmd,
                                      const char *s, size_t len,
                                      struct ctkn_err *err);
/* Pause (false) or resume (true). Errors: none. */
void ctkn_dest_command_set_active(struct ctkn_dest_command *cmd, bool active);
/* traffic_source: "platform" or "all" (Paddle's "simulation" is refused:
 * ctkn has no simulated traffic, so it would receive nothing). Borrows s
 * for the call. Errors: CTKN_EINVAL (field "traffic_source"). */
int ctkn_dest_command_set_traffic(struct ctkn_dest_command *cmd, const char *s,
                                  struct ctkn_err *err);
/* An add has a URL and events; update and remove an ID; an update
 * changes something.
 * Errors: CTKN_EINVAL naming the missing field ("destination",
 * "subscribed_events", "id"); CTKN_EBADREQ (an update that changes
 * nothing); CTKN_EINTERNAL (an unknown kind). */
int ctkn_dest_command_check(const struct ctkn_dest_command *cmd,
                            struct ctkn_err *err);

/* ---- where a destination may point ------------------------------------ */

/*
 * What a deployment allows destinations to be, given by its operator to
 * whatever creates destinations (`ctkn destination`, `ctkn serve`) and to
 * whatever delivers to them (`ctkn notify`): each process is told for
 * itself, so a notifier never trusts a creator's allowances.
 */
struct ctkn_dest_policy {
  ctkn_env env;                  /* live: https:// only */
  const struct ctkn_cidr *allow; /* networks admitted although special */
  size_t nallow;
  int max_active; /* active destinations at most; 0: CTKN_DEST_MAX_ACTIVE */
  /* Trust (trust.h; used by settings.h's command): the root's public key
   * (32 bytes) to judge by, or NULL; the writer key that signs the
   * command's record (a ctkn_seckey), or NULL. */
  const uint8_t *trust_root;
  const void *writer_key;
};

/*
 * Whether url may be a destination under p (NULL: live, nothing allowed),
 * as far as the URL alone tells: an http:// or https:// URL (https:// in
 * live) without user info ("user:pass@"), whose host, when it is an IP
 * literal in any form (netaddr.h), is globally reachable or in an allowed
 * network. A host name is judged when a notifier connects, address by
 * address (ctkn_dest_addr_allowed()). Borrows everything for the call.
 * Errors: CTKN_EINVAL (field "destination", the rule in err->msg).
 */
int ctkn_dest_url_check(const char *url, const struct ctkn_dest_policy *p,
                        struct ctkn_err *err);

/*
 * Whether a connection to a may be made under p (NULL: nothing allowed):
 * a is globally reachable, or in one of p's allowed networks. When not,
 * why (whysz bytes, NUL-terminated) says so, naming the address and its
 * range, e.g. "destination address 127.0.0.1 is not globally reachable
 * (loopback 127.0.0.0/8); allow it with --allow-destination-network".
 * Errors: none.
 */
bool ctkn_dest_addr_allowed(const struct ctkn_ip *a,
                            const struct ctkn_dest_policy *p, char *why,
                            size_t whysz);

/* ---- planning, checking, applying --------------------------------------- */

/*
 * Plan the event for cmd against cur (NULL when the destination does not
 * exist; always for an add). An add generates the ID and the endpoint
 * secret (written to secret, which the caller wipes after showing it once)
 * and seals it under key; start/nstart are the event topic's end offsets
 * (nstart at most CTKN_SETTING_START_MAX). Everything is borrowed for the
 * call. Returns CTKN_PLAN_APPEND with *out filled, CTKN_PLAN_NOOP when
 * nothing would change, or an error.
 * Errors: those of ctkn_dest_command_check(); CTKN_ENOTFOUND (a missing
 * or removed destination); CTKN_EIO (randomness failed); CTKN_ENOMEM and
 * CTKN_EINTERNAL as for ctkn_seal(); CTKN_EINTERNAL (an add without key
 * or secret, or with a bad nstart).
 */
int ctkn_settings_plan(const struct ctkn_destination *cur,
                       const struct ctkn_dest_command *cmd,
                       const uint8_t key[CTKN_KEY_LEN], const int64_t *start,
                       int32_t nstart, int64_t now_us,
                       struct ctkn_setting_event *out,
                       char secret[CTKN_SECRET_BUF], struct ctkn_err *err);

/* What every correct writer's event satisfies; failing it is quarantine.
 * Errors: CTKN_EINVAL naming the field ("event_id", "data.id",
 * "destination", "data.subscribed_events", "data.traffic_source",
 * "description", "version",
 * "occurred_at", "start_offsets"). */
int ctkn_setting_event_check(const struct ctkn_setting_event *ev,
                             struct ctkn_err *err);

/* Apply ev to cur (NULL: none). Returns CTKN_APPLIED with *next, or
 * CTKN_REJECTED with the reason written to reason (reasonsz bytes, always
 * NUL-terminated): a stale version, a change to a removed destination.
 * Deterministic: no clock, no randomness. Errors: none. */
int ctkn_settings_apply(const struct ctkn_destination *cur,
                        const struct ctkn_setting_event *ev,
                        struct ctkn_destination *next, char *reason,
                        size_t reasonsz);

/* Unseal a destination's endpoint secret into secret ("" on failure).
 * Errors: CTKN_EINVAL (key is not the key it was sealed under);
 * CTKN_ENOMEM and CTKN_EINTERNAL as for ctkn_unseal(). */
int ctkn_destination_secret(const struct ctkn_destination *d,
                            const uint8_t key[CTKN_KEY_LEN],
                            char secret[CTKN_SECRET_BUF], struct ctkn_err *err);

#endif /* CTKN_SETTING_H */
