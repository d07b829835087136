/*
 * codec.h - the three encodings: protobuf on the wire, msgpack in the
 * store, JSON at the API.
 *
 * Wraps protobuf-c, msgpack-c and jansson; none of their types cross this
 * header. Every decoder is total: truncated, oversized or garbage input
 * returns an error and never reads out of bounds. Decoders check shape
 * (types, lengths that fit the fixed-size fields); the domain rules are
 * ctkn_event_check()'s job, because protobuf "decodes" much garbage.
 *
 * Ownership: every input is borrowed for the call. An encoder's *out is
 * a new buffer: caller owns it, release with free(); on failure *out is
 * NULL and *len 0. Every JSON renderer returns a new string: caller owns
 * the string; release with free(). A decoder fills the caller's struct,
 * which owns nothing (fixed-size fields), and on failure leaves it zeroed
 * unless it says otherwise.
 *
 * Errors:   CTKN_EDECODE for bytes that do not decode (err->msg says
 *           where); CTKN_EINVAL / CTKN_EBADREQ for API bodies, with
 *           err->field naming the field; CTKN_ENOMEM. A renderer's only
 *           failure is running out of memory: it returns NULL.
 * Not here: validation rules (token.h, event.h, setting.h); the values
 *           encoded (token.h, event.h, setting.h, notification.h,
 *           keyset.h).
 */
#ifndef CTKN_CODEC_H
#define CTKN_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/token.h"

/* Values of other modules that the codec encodes or renders. Only their
 * names are needed here; they are defined in the headers below the codec
 * (setting.h, notification.h, keyset.h), which callers include for the
 * values they fill or read. */
struct ctkn_akey;
struct ctkn_akey_event;
struct ctkn_apikey;
struct ctkn_apikeys;
struct ctkn_dest_command;
struct ctkn_adoption;
struct ctkn_checkpoint;
struct ctkn_destination;
struct ctkn_keyring;
struct ctkn_signed;
struct ctkn_notification;
struct ctkn_ntf_attempt;
struct ctkn_setting_event;

/* ---- protobuf: the event on the wire (proto/ctkn.proto) ------------- */

/* ctkn.v1.Event for ev. Errors: CTKN_EINVAL (field "event_type" or
 * "status": an unknown value; or a string without its NUL);
 * CTKN_ENOMEM; CTKN_EINTERNAL (protobuf-c packed short). */
int ctkn_event_encode(const struct ctkn_event *ev, uint8_t **out, size_t *len,
                      struct ctkn_err *err);
/* Fills *ev from len bytes; unknown fields are ignored.
 * Errors: CTKN_EDECODE (not an Event; a missing field, a string that does
 * not fit or holds a NUL, an unknown event_type or status, a request hash
 * that is not 32 bytes); CTKN_ENOMEM. */
int ctkn_event_decode(const void *buf, size_t len, struct ctkn_event *ev,
                      struct ctkn_err *err);

/* ---- protobuf: the settings topic (proto/ctkn_settings.proto) ---------- */

/* ctkn.v1.SettingEvent for ev. Errors: CTKN_EINVAL (field "event_type":
 * an unknown type); CTKN_ENOMEM. */
int ctkn_setting_event_encode(const struct ctkn_setting_event *ev,
                              uint8_t **out, size_t *len, struct ctkn_err *err);
/* Fills *ev (data.version and data.deleted from the envelope).
 * Errors: CTKN_EDECODE (not a SettingEvent; a missing field, a string
 * that does not fit, an unknown or repeated type, a sealed secret of the
 * wrong size, more than CTKN_SETTING_START_MAX start offsets). */
int ctkn_setting_event_decode(const void *buf, size_t len,
                              struct ctkn_setting_event *ev,
                              struct ctkn_err *err);

/* ---- protobuf: audit archive entries (proto/ctkn_archive.proto) ------ */

#define CTKN_ARCHIVE_ENTRY_MAX   (64u << 20) /* bytes of one entry */
#define CTKN_ARCHIVE_HEADERS_MAX 64          /* Kafka headers per record */

enum ctkn_archive_body {
  CTKN_ARCHIVE_OTHER = 0, /* no body, or one this build does not know */
  CTKN_ARCHIVE_HEADER = 1,
  CTKN_ARCHIVE_RECORD = 2,
  CTKN_ARCHIVE_TRAILER = 3
};

/* One Kafka record header: value NULL when it has none. */
struct ctkn_archive_kv {
  const char *name;
  const void *value;
  size_t size;
};

/*
 * One entry of an archive: the hash of the entry before it, then one of
 * the three bodies (the member named by body; the others are unused).
 * Every pointer is a view. An absent optional field is has_* false or a
 * NULL pointer; a present but empty bytes field is a non-NULL pointer
 * with length 0.
 */
struct ctkn_archive_entry {
  enum ctkn_archive_body body;
  const uint8_t *prev_sha256; /* NULL: absent */
  size_t prev_len;
  struct {
    bool has_format, has_partitions;
    uint32_t format;
    const char *topic; /* NULL: absent */
    int32_t partitions;
    size_t n_start, n_end;
    const int64_t *start, *end;
  } header;
  struct {
    bool has_partition, has_offset, has_timestamp_ms;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    const void *key; /* NULL: absent */
    size_t key_len;
    const void *value; /* NULL: absent */
    size_t value_len;
    const struct ctkn_archive_kv *headers;
    size_t nheaders;
  } record;
  struct {
    bool has_records;
    uint64_t records;
  } trailer;
};

/*
 * Encode e (borrowed for the call) into *buf, which the call reuses and
 * grows with realloc() as needed: *buf (NULL or malloc'd) holds *cap
 * bytes; caller owns it, release with free(), also after a failure. *len
 * receives the entry's size (0 on failure).
 * Errors: CTKN_EUSAGE (an entry past CTKN_ARCHIVE_ENTRY_MAX, more than
 * CTKN_ARCHIVE_HEADERS_MAX headers, or no body); CTKN_ENOMEM.
 */
int ctkn_archive_entry_encode(const struct ctkn_archive_entry *e, uint8_t **buf,
                              size_t *cap, size_t *len, struct ctkn_err *err);

/*
 * Decode len bytes (borrowed for the call; the entry copies what it
 * keeps). On success *out is a new entry whose views stay valid until it
 * is freed: caller owns it, release with ctkn_archive_entry_free(). On
 * failure *out is NULL. Shape only: the chain, order and ranges are the
 * archive's to check (archive.h).
 * Errors: CTKN_EDECODE (not an Entry message); CTKN_ENOMEM.
 */
int ctkn_archive_entry_decode(const void *buf, size_t len,
                              struct ctkn_archive_entry **out,
                              struct ctkn_err *err);

/* Free a decoded entry. NULL is a no-op. */
void ctkn_archive_entry_free(struct ctkn_archive_entry *e);

/* ---- msgpack: the stored destination --------------------------------- */

/* Errors: CTKN_ENOMEM. */
int ctkn_destination_encode(const struct ctkn_destination *d, uint8_t **out,
                            size_t *len, struct ctkn_err *err);
/* Errors: CTKN_EDECODE (not a stored destination of this layout). */
int ctkn_destination_decode(const void *buf, size_t len,
                            struct ctkn_destination *d, struct ctkn_err *err);

/* ---- msgpack: a notifier's delivery state ------------------------------ */

/* Errors: CTKN_ENOMEM. */
int ctkn_notification_encode(const struct ctkn_notification *n, uint8_t **out,
                             size_t *len, struct ctkn_err *err);
/* Errors: CTKN_EDECODE (not a stored notification of this layout). */
int ctkn_notification_decode(const void *buf, size_t len,
                             struct ctkn_notification *n, struct ctkn_err *err);
/* Errors: CTKN_ENOMEM. */
int ctkn_attempt_encode(const struct ctkn_ntf_attempt *a, uint8_t **out,
                        size_t *len, struct ctkn_err *err);
/* Errors: CTKN_EDECODE (not a stored attempt of this layout). */
int ctkn_attempt_decode(const void *buf, size_t len, struct ctkn_ntf_attempt *a,
                        struct ctkn_err *err);

/* ---- protobuf: delivery records (the notifications topic) ------------- */

struct ctkn_delivery;

/* d as a ctkn.v1.Delivery (its type travels as ctkn-event-type). On
 * success *out is a new buffer: caller owns it, release with free().
 * Errors: CTKN_ENOMEM. */
int ctkn_delivery_encode(const struct ctkn_delivery *d, uint8_t **out,
                         size_t *len, struct ctkn_err *err);
/* A record of type event_type (its ctkn-event-type) into *d, which then
 * keeps ctkn_delivery_valid()'s rules. Errors: CTKN_EDECODE naming the
 * field or rule (an unknown type, not the message, a field missing, too
 * long, or out of range). */
int ctkn_delivery_decode(const char *event_type, const void *buf, size_t len,
                         struct ctkn_delivery *d, struct ctkn_err *err);

/* ---- msgpack: the stored token record -------------------------------- */

/* Errors: CTKN_EINVAL (field "status": an unknown value; or a string
 * without its NUL); CTKN_ENOMEM. */
int ctkn_record_encode(const struct ctkn_record *rec, uint8_t **out,
                       size_t *len, struct ctkn_err *err);
/* Errors: CTKN_EDECODE (not a record: framing, types, lengths, an
 * unknown layout or status, trailing bytes); CTKN_ENOMEM. */
int ctkn_record_decode(const void *buf, size_t len, struct ctkn_record *rec,
                       struct ctkn_err *err);

/* The largest encoded record: every string at its maximum length. */
#define CTKN_RECORD_MAX 4096

/* Encode into buf (cap bytes, the caller's; CTKN_RECORD_MAX always
 * suffices) without allocating; *len receives the size.
 * Errors: CTKN_EINVAL (as ctkn_record_encode(), or it does not fit). */
int ctkn_record_encode_into(const struct ctkn_record *rec, uint8_t *buf,
                            size_t cap, size_t *len, struct ctkn_err *err);

/* ---- JSON: Paddle's shapes, in Paddle's field order ----------------- */

/*
 * Renderers (char *ctkn_json_*) write compact JSON with raw UTF-8: bytes
 * that are not valid UTF-8 are written as U+FFFD. Each returns a new
 * string: caller owns the string; release with free(). NULL only when out
 * of memory. A NULL request_id gets a fresh one from ctkn_request_id().
 */

/* A random UUIDv4 ("1681f87f-9c36-4557-a1da-bbb622afa0cc"), 37 bytes
 * with the NUL, into out. Errors: CTKN_EIO (the kernel's random source
 * failed; out is ""). */
int ctkn_request_id(char out[37]);

/* The entity: {"id","token","name","description","status","created_at",
 * "updated_at","revoked_at"}. Caller owns the string; release with
 * free(). NULL when out of memory. */
char *ctkn_json_token(const struct ctkn_token *t);

/* {"data": <entity>, "meta": {"request_id": ...}}. Caller owns the
 * string; release with free(). NULL when out of memory. */
char *ctkn_json_data(const struct ctkn_token *t, const char *request_id);

/* The webhook envelope: {"event_id","event_type","occurred_at",
 * "notification_id","data"}. Caller owns the string; release with
 * free(). NULL when out of memory. */
char *ctkn_json_event(const struct ctkn_event *ev);

struct ctkn_pagination {
  int per_page;
  const char *next; /* URL of the following page (NULL renders null) */
  bool has_more;
  int64_t estimated_total; /* < 0: omitted (Skip-Count) */
  const char *stale;       /* not NULL: meta.stale, why the page may be stale */
};

/* {"data": [entities], "meta": {"request_id", "pagination": {"per_page",
 * "next", "has_more", "estimated_total"}}}. Caller owns the string;
 * release with free(). NULL when out of memory. */
char *ctkn_json_list(const struct ctkn_token *items, size_t n,
                     const struct ctkn_pagination *page,
                     const char *request_id);

/* Paddle's error envelope for err (err->code picks code and type; an
 * invalid_field error lists err->field in "errors"). Caller owns the
 * string; release with free(). NULL when out of memory. */
char *ctkn_json_error(const struct ctkn_err *err, const char *request_id);

/*
 * One answer line of `ctkn create --batch`: the data document of t, or
 * (t NULL) the error envelope of err, each with "acknowledged" in its
 * meta: {"data": entity, "meta": {"request_id", "acknowledged": true}}.
 * Caller owns the string; release with free(). NULL when out of memory.
 */
char *ctkn_json_line_answer(const struct ctkn_token *t,
                            const struct ctkn_err *err, bool acknowledged,
                            const char *request_id);

/*
 * Parse a POST /client-tokens body into a create command:
 * {"name": string, "description": string|null}.
 * Errors: CTKN_EBADREQ (malformed JSON, a body that is not an object);
 * CTKN_EINVAL (a missing, mistyped, invalid or unknown field, named in
 * err->field); CTKN_ENOMEM.
 */
int ctkn_json_parse_create(const char *body, size_t len,
                           struct ctkn_command *cmd, struct ctkn_err *err);

/*
 * Parse one `ctkn create --batch` line: a POST /client-tokens body that
 * may also carry "idempotency_key" (a string, under the rules of
 * ctkn_command_set_idempotency_key(), as --idempotency-key and the
 * Idempotency-Key header). Errors: as ctkn_json_parse_create().
 */
int ctkn_json_parse_create_line(const char *line, size_t len,
                                struct ctkn_command *cmd, struct ctkn_err *err);

/*
 * Parse a PATCH /client-tokens/{id} body into an update command for id:
 * any of "name", "description" (string|null) and "status".
 * Errors: CTKN_EINVAL (field "id": not a token ID; or a field as for
 * ctkn_json_parse_create()); CTKN_EBADREQ (as there, or an empty
 * object); CTKN_ENOMEM.
 */
int ctkn_json_parse_update(const char *body, size_t len, const char *id,
                           struct ctkn_command *cmd, struct ctkn_err *err);

/*
 * Parse a POST /notification-settings body into an add command:
 * {"description": string (1-500), "type": "url", "destination": URL,
 *  "subscribed_events": [event type names], "active"?: bool,
 *  "api_version"?: 1, "include_sensitive_fields"?: false,
 *  "traffic_source"?: "platform" | "all"}. The first four are required,
 * as Paddle's; the last three accept only the value ctkn implements
 * (it has no simulated traffic, so "platform" and "all" mean the same and
 * "simulation" is refused).
 * Errors: CTKN_EBADREQ (malformed JSON, a body that is not an object);
 * CTKN_EINVAL naming the field (a missing, mistyped, invalid or unknown
 * one: a bad "type" first, as the other rules follow from it; then the
 * first in document order; then the missing ones in the order above);
 * CTKN_ENOMEM.
 */
int ctkn_json_parse_dest_create(const char *body, size_t len,
                                struct ctkn_dest_command *cmd,
                                struct ctkn_err *err);

/*
 * Parse a PATCH /notification-settings/{id} body into an update command
 * for id (CTKN_EINVAL on field "id" when it is not a destination ID): any
 * of "description" (string or null), "destination", "active",
 * "subscribed_events", and "api_version", "include_sensitive_fields" and
 * "traffic_source" at the values above. An empty object is CTKN_EBADREQ.
 * A body of only the last three changes nothing: it parses to a command
 * with none of set_url, set_events, set_description and set_active, which
 * ctkn_dest_command_check() refuses; the caller answers it as a read.
 * Errors: as ctkn_json_parse_dest_create(), and CTKN_EBADREQ (an empty
 * object, or nothing to change: see above).
 */
int ctkn_json_parse_dest_update(const char *body, size_t len, const char *id,
                                struct ctkn_dest_command *cmd,
                                struct ctkn_err *err);

/* ---- JSON: ctkn's own outputs (CLI and API extensions) -------------- */

/* {"data": {"id", "token", "status", "environment"}, "meta": ...}: what
 * `ctkn verify` and GET /client-tokens/verify answer. Caller owns the string;
 * release with free(). NULL when out of memory. */
char *ctkn_json_verify(const struct ctkn_token *t, ctkn_env env,
                       const char *request_id);

/* {"data": {"sha256", "tokens", "offsets": [{"partition", "offset"}]}}. Caller
 * owns the string; release with free(). NULL when out of memory. */
char *ctkn_json_digest(const char *sha256_hex, int64_t tokens,
                       const int32_t *partitions, const int64_t *offsets,
                       size_t n);

/* {"data": {"topic", "records", "sha256", "partitions": [{"partition",
 * "start", "end"}]}}: an audit archive's summary. Caller owns the string;
 * release with free(). NULL when out of memory. */
char *ctkn_json_archive(const char *topic, int32_t partitions,
                        const int64_t *start, const int64_t *end,
                        uint64_t records, const char *sha256_hex);

/* The archive summary above plus "trust": {"log_id", "keyring_version",
 * "proven", "checkpoints", "root_records", "adopted", "failed",
 * "failures": [{"partition", "offset", "reason", "detail"}]}: what `ctkn
 * audit verify --trust-root` found. Caller owns the string; release with
 * free(). NULL when out of memory. */
struct ctkn_audit_trust;
char *ctkn_json_audit(const char *topic, int32_t partitions,
                      const int64_t *start, const int64_t *end,
                      uint64_t records, const char *sha256_hex,
                      const struct ctkn_audit_trust *t);

/* One quarantined record: {"partition", "offset", "reason", "key_base64",
 * "value_base64"} (null for absent bytes). Caller owns the string; release with
 * free(). NULL when out of memory. */
char *ctkn_json_quarantined(int32_t partition, int64_t offset,
                            const char *reason, const void *key, size_t klen,
                            const void *value, size_t vlen);

/* {"data": {"topic", "partitions", "replication_factor", "created",
 * "settings": {the same for the settings topic}}}; settings_topic NULL
 * leaves "settings" out. Caller owns the string; release with free(). NULL when
 * out of memory. */
char *ctkn_json_topic(const char *topic, int32_t partitions,
                      int replication_factor, bool created,
                      const char *settings_topic, int32_t settings_partitions,
                      bool settings_created);
/* As ctkn_json_topic(), with "notifications": {the same for the
 * notifications topic} (delivery.h). */
char *ctkn_json_topics(const char *topic, int32_t partitions,
                       int replication_factor, bool created,
                       const char *settings_topic, int32_t settings_partitions,
                       bool settings_created, const char *ntf_topic,
                       int32_t ntf_partitions, bool ntf_created);

/* Where the log and a projection stand on one partition. */
struct ctkn_partition_status {
  int32_t partition;
  int64_t log_start; /* first offset still in the log */
  int64_t log_end;   /* next offset the log will write */
  int64_t projected; /* next offset the projection will apply */
  bool paused;       /* stopped at a record of a newer schema */
  /* The signed time (µs) of the newest writer checkpoint applied: -1
   * where trust is off, 0 before the first. */
  int64_t checkpoint_at;
  bool stale; /* checkpoint_at older than the reader's --max-staleness */
};

/* {"data": {"topic", "partitions": [{"partition", "log_start", "log_end",
 * "projected", "lag", "paused", and with trust "checkpoint_at" (RFC 3339)
 * and "stale"}], "lag"}}. Caller owns the string; release with free().
 * NULL when out of memory. */
char *ctkn_json_status(const char *topic,
                       const struct ctkn_partition_status *parts, size_t n);

/* GET /healthz: the status object above plus "status" (state) and
 * "max_lag", with meta.request_id; with quarantined (n counts, one per
 * part), each partition's "quarantined" and their total as "quarantined".
 * Caller owns the string; release with free(). NULL when out of memory. */
char *ctkn_json_health(const char *state, int64_t max_lag, const char *topic,
                       const struct ctkn_partition_status *parts, size_t n,
                       const int64_t *quarantined, const char *request_id);

/* {"data": the keyring: log_id, version, keys (key_id, name, public_key,
 * scopes, status), schema_versions; with key_id and file when given (a
 * key just added, and the file it went to)}. Caller owns the string;
 * release with free(). NULL when out of memory. */
char *ctkn_json_keyring(const struct ctkn_keyring *kr, const char *key_id,
                        const char *file);
/* {"data": {"log_id", "topic", "partitions": [{"partition",
 * "end_offset", "records_hash"}]}}: an adoption (`ctkn trust adopt`).
 * As above. */
char *ctkn_json_adoption(const struct ctkn_adoption *a);
/* {"data": {key_id, public_key, secret_key_file, public_key_file}}: a
 * new trust root (pub: its 32 bytes). As above. */
char *ctkn_json_trust_root(const char *key_id, const uint8_t *pub,
                           const char *secret_file, const char *public_file);

/* {"data": {"applied", "rejected", "quarantined", "skipped", "paused"}}. Caller
 * owns the string; release with free(). NULL when out of memory. */
char *ctkn_json_project_stats(uint64_t applied, uint64_t rejected,
                              uint64_t quarantined, uint64_t skipped,
                              int32_t paused);

/* ---- JSON: notification settings (Paddle's shape) ---------------------- */

/* {"id", "description", "type": "url", "destination", "active",
 * "api_version": 1, "include_sensitive_fields": false, "subscribed_events":
 * [{"name", "description", "group", "available_versions"}],
 * "endpoint_secret_key" (only when secret is not NULL: at creation, and on
 * the reads of a server that shows secrets), "traffic_source": "platform"
 * or "all"} wrapped in {"data", "meta"}. Caller owns the string; release
 * with free(). NULL when out of memory. */
/* A notification setting's event as its webhook envelope (GET /events):
 * {"event_id", "event_type", "occurred_at", "notification_id": null,
 * "data": the destination as the reads show it, never its secret}, one
 * line. Caller owns the string; release with free(). NULL when out of
 * memory. */
char *ctkn_json_setting_event(const struct ctkn_setting_event *ev);
char *ctkn_json_destination(const struct ctkn_destination *d,
                            const char *secret, const char *request_id);
/* {"data": [destinations], "meta": {"request_id"}}. Caller owns the string;
 * release with free(). NULL when out of memory. */
char *ctkn_json_destinations(const struct ctkn_destination *d, size_t n,
                             const char *request_id);
/* One page of them, as GET /notification-settings answers: {"data":
 * [destinations], "meta": {"request_id", "pagination": {"per_page",
 * "next", "has_more", "estimated_total" (left out when negative)}}}.
 * secrets: NULL, or n entries, each d[i]'s endpoint secret or NULL to
 * leave it out. Caller owns the string; release with free(). NULL when
 * out of memory. */
char *ctkn_json_destinations_page(const struct ctkn_destination *d,
                                  const char *const *secrets, size_t n,
                                  const struct ctkn_pagination *page,
                                  const char *request_id);

/* Paddle's notification: {"id", "type", "status", "payload" (payload is
 * JSON text spliced in; NULL: null), "occurred_at", "delivered_at",
 * "replayed_at", "origin", "last_attempt_at", "retry_at",
 * "times_attempted", "notification_setting_id"}, one compact line. Caller owns
 * the string; release with free(). NULL when out of memory. */
char *ctkn_json_notification(const struct ctkn_notification *n,
                             const char *payload);
/* One attempt: {"notification_id", "attempt", "attempted_at",
 * "response_code" (null when none), "latency_ms", "error"}. Caller owns the
 * string; release with free(). NULL when out of memory. */
char *ctkn_json_attempt(const char *ntf_id, const struct ctkn_ntf_attempt *a);
/* Paddle's notification log entity for attempt a of ntf_id: {"id"
 * (ntflog_, derived from the notification and the attempt's number),
 * "response_code" (0 when none came back), "response_content_type" (null
 * when none), "response_body" (the first bytes kept, "" when none),
 * "attempted_at"}, one compact object. Caller owns the string; release
 * with free(). NULL when out of memory. */
char *ctkn_json_notification_log(const char *ntf_id,
                                 const struct ctkn_ntf_attempt *a);

/* ---- API keys on the log (akey.h) -------------------------------------- */

/* ctkn.v1.ApiKeyEvent for ev ("used": the ID and last_used_at only).
 * Errors: CTKN_EINVAL (field "event_type"); CTKN_ENOMEM. */
int ctkn_akey_event_encode(const struct ctkn_akey_event *ev, uint8_t **out,
                           size_t *len, struct ctkn_err *err);
/* Fills *ev from len bytes; unknown fields are ignored; ev->data.version
 * is the event's. Errors: CTKN_EDECODE (not an ApiKeyEvent, a missing
 * field, an unknown type, status or permission, a hash not 32 bytes, a
 * string too long). */
int ctkn_akey_event_decode(const void *buf, size_t len,
                           struct ctkn_akey_event *ev, struct ctkn_err *err);
/* The api_keys table's value for k. Errors: CTKN_ENOMEM. */
int ctkn_akey_encode(const struct ctkn_akey *k, uint8_t **out, size_t *len,
                     struct ctkn_err *err);
/* Errors: CTKN_EDECODE. */
int ctkn_akey_decode(const void *buf, size_t len, struct ctkn_akey *k,
                     struct ctkn_err *err);
/* {"data": {"id", "name", "description", "status" (as at now),
 * "permissions", "expires_at", "last_used_at", "created_at",
 * "updated_at"} (+ "key" when key is not NULL or ""), "meta"}: Paddle's
 * API key. Caller owns the string; release with free(). NULL when out of
 * memory. */
char *ctkn_json_akey(const struct ctkn_akey *k, int64_t now, const char *key,
                     const char *request_id);
/* {"data": [keys], "meta": {"request_id"} (+ "pagination" when page)}.
 * Caller owns the string; release with free(). NULL when out of
 * memory. */
char *ctkn_json_akeys_page(const struct ctkn_akey *k, size_t n, int64_t now,
                           const struct ctkn_pagination *page,
                           const char *request_id);

/* POST /api-keys: {"name" (required), "description" (string or null),
 * "permissions" (required, names), "expires_at" (RFC 3339 after now, or
 * null)} into cmd. Errors: CTKN_EBADREQ (not one JSON object);
 * CTKN_EINVAL naming the field (also an unknown one). */
struct ctkn_akey_command;
int ctkn_json_parse_akey_create(const char *body, size_t len, int64_t now,
                                struct ctkn_akey_command *cmd,
                                struct ctkn_err *err);
/* PATCH /api-keys/{id}: the same fields, each optional, and "status":
 * "revoked". Errors: as above; CTKN_EBADREQ for an empty object. */
int ctkn_json_parse_akey_update(const char *body, size_t len, const char *id,
                                int64_t now, struct ctkn_akey_command *cmd,
                                struct ctkn_err *err);
/* POST /api-keys/{id}/rotations: {"grace_period_seconds": 0..86400}.
 * Errors: as above. */
int ctkn_json_parse_akey_rotation(const char *body, size_t len, const char *id,
                                  struct ctkn_akey_command *cmd,
                                  struct ctkn_err *err);
/* An API key's event as its webhook envelope (GET /events): {"event_id",
 * "event_type", "occurred_at", "notification_id": null, "data": the key in
 * Paddle's shape, status as at occurred_at, never a secret or a hash},
 * one line. Caller owns the string; release with free(). NULL when out of
 * memory. */
char *ctkn_json_akey_event(const struct ctkn_akey_event *ev);
/* The webhook body of a settings-topic event: its envelope as
 * ctkn_json_akey_event() made it (and GET /events serves it, len bytes),
 * with notification_id set. NULL when out of memory or the envelope is
 * not one. Caller frees. */
char *ctkn_json_envelope_notified(const char *envelope, size_t len,
                                  const char *notification_id);
/* Paddle's API key rotation: {"data": {"id" (apkrot_ + the rotation
 * record's ULID), "api_key_id", "new_key", "grace_period_seconds",
 * "status": "completed", "expires_at" (when the old secret stops
 * working), "created_at"}, "meta"}. Caller owns the string; release with
 * free(). NULL when out of memory. */
char *ctkn_json_akey_rotation(const struct ctkn_akey *k, const char *event_id,
                              int64_t grace_s, const char *new_key,
                              const char *request_id);

/* ---- JSON: `ctkn apikey` --------------------------------------------- */

/* {"data": {"name", "key", "permissions": [names]}}: the answer to
 * creating an API key, the one document that ever holds the key. Caller owns
 * the string; release with free(). NULL when out of memory. */
char *ctkn_json_apikey_created(const struct ctkn_apikey *k, const char *key);

/* {"data": [{"name", "permissions", "created_at"}]}, in file order: never
 * a key, nor its hash. Caller owns the string; release with free(). NULL when
 * out of memory. */
char *ctkn_json_apikey_list(const struct ctkn_apikeys *ks);

/* {"data": {"name", "revoked": true}}. Caller owns the string; release with
 * free(). NULL when out of memory. */
char *ctkn_json_apikey_revoked(const char *name);

/* ---- JSON: the CLI's small documents ---------------------------------- */

/* {"data": {"version", "schema_version", "store_format"}}: `ctkn
 * version`. */
char *ctkn_json_version(const char *version, int schema_version,
                        int store_format);

/* {"data": null}: what a removal answers. */
char *ctkn_json_data_null(void);

/* {"data": {"attempts", "delivered", "failed", "replayed"}}: what a
 * `ctkn notify` run did. */
char *ctkn_json_notify_stats(uint64_t attempts, uint64_t delivered,
                             uint64_t failed, uint64_t replayed);

/* {"data": {"notification_id"}, "meta": {"request_id"}}: the new
 * notification a replay queued. */
char *ctkn_json_notification_replayed(const char *ntf_id,
                                      const char *request_id);

/* ---- JSON: the API-key file (apikey.h) -------------------------------- */

/* One line of the key file for k, without the newline:
 * {"name","sha256" (lowercase hex),"permissions" (ctkn_perms_names()),
 * "created_at"}. Caller owns the string; release with free(). NULL when
 * out of memory or when a string in k is not UTF-8. */
char *ctkn_json_apikey_line(const struct ctkn_apikey *k);

/* Parse one line of the key file (len bytes, no newline) into *k: every
 * field required, none other accepted, no duplicate keys; the name, the
 * permission names and created_at obey keyset.h's and token.h's rules.
 * On failure *k is zeroed.
 * Errors: CTKN_EDECODE, err->field naming the field ("name", "sha256",
 * "permissions", "created_at"; "" for the line as a whole) and err->msg
 * the rule. */
int ctkn_json_parse_apikey_line(const char *s, size_t len,
                                struct ctkn_apikey *k, struct ctkn_err *err);

/* ---- trust records (proto/ctkn_trust.proto, keyring.h) ---------------- */

/*
 * Encoders: on success *out is a new buffer of *len bytes: caller owns it;
 * release with free(). Borrows the struct for the call. Errors:
 * CTKN_ENOMEM.
 *
 * Decoders: strict, as the event decoder is: a required field missing, a
 * byte string of the wrong length, a string that does not fit or more
 * repeated elements than the struct holds is CTKN_EDECODE naming the
 * field. A decoded envelope, keyring or adoption owns memory: release it
 * with ctkn_signed_free(), ctkn_keyring_free() or ctkn_adoption_free();
 * on failure it owns none. Semantic rules are keyring.h's and trust.h's.
 */
int ctkn_signed_encode(const struct ctkn_signed *s, uint8_t **out, size_t *len,
                       struct ctkn_err *err);
int ctkn_signed_decode(const void *buf, size_t len, struct ctkn_signed *s,
                       struct ctkn_err *err);
int ctkn_keyring_encode(const struct ctkn_keyring *kr, uint8_t **out,
                        size_t *len, struct ctkn_err *err);
int ctkn_keyring_decode(const void *buf, size_t len, struct ctkn_keyring *kr,
                        struct ctkn_err *err);
int ctkn_checkpoint_encode(const struct ctkn_checkpoint *c, uint8_t **out,
                           size_t *len, struct ctkn_err *err);
int ctkn_checkpoint_decode(const void *buf, size_t len,
                           struct ctkn_checkpoint *c, struct ctkn_err *err);
int ctkn_adoption_encode(const struct ctkn_adoption *a, uint8_t **out,
                         size_t *len, struct ctkn_err *err);
int ctkn_adoption_decode(const void *buf, size_t len, struct ctkn_adoption *a,
                         struct ctkn_err *err);

#endif /* CTKN_CODEC_H */
