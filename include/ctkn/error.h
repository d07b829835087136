/*
 * error.h - error codes and error detail shared by every ctkn module.
 *
 * Every fallible function returns CTKN_OK (0) or a negative CTKN_E* code.
 * When a code alone cannot explain a failure, the function takes a trailing
 * struct ctkn_err *, which may be NULL. The codes map one to one onto the
 * API's error codes (ctkn_error_code()) and the CLI's exit statuses
 * (ctkn_error_exit()), so the three can never drift apart.
 *
 * Errors:   this module has none of its own.
 * Not here: formatting the error envelope as JSON (codec.h).
 */
#ifndef CTKN_ERROR_H
#define CTKN_ERROR_H

#include <stddef.h>

/* X(NAME, value, api code, HTTP status, CLI exit, text) */
#define CTKN_ERRNO_MAP(X)                                                      \
  X(INVAL, -1, "invalid_field", 400, 1, "invalid field")                       \
  X(BADREQ, -2, "bad_request", 400, 1, "bad request")                          \
  X(NOTFOUND, -3, "not_found", 404, 1, "not found")                            \
  X(CONFLICT, -4, "conflict", 409, 1, "conflict")                              \
  X(NOMEM, -5, "service_unavailable", 503, 3, "out of memory")                 \
  X(STORE, -6, "service_unavailable", 503, 3, "storage error")                 \
  X(KAFKA, -7, "service_unavailable", 503, 3, "kafka unavailable")             \
  X(TIMEOUT, -8, "service_unavailable", 503, 3, "timed out")                   \
  X(DECODE, -9, "bad_request", 400, 1, "malformed record")                     \
  X(FORMAT, -10, "service_unavailable", 503, 3, "unknown store format")        \
  X(USAGE, -11, "bad_request", 400, 2, "usage error")                          \
  X(IO, -12, "service_unavailable", 503, 3, "i/o error")                       \
  X(INTERNAL, -13, "internal_error", 500, 3, "internal error")                 \
  X(AUTHMISSING, -14, "authentication_missing", 403, 1,                        \
    "authentication missing")                                                  \
  X(AUTHMALFORMED, -15, "authentication_malformed", 403, 1,                    \
    "authentication malformed")                                                \
  X(BADKEY, -16, "invalid_token", 403, 1, "invalid API key")                   \
  X(FORBIDDEN, -17, "forbidden", 403, 1, "forbidden")                          \
  X(RATELIMIT, -18, "too_many_requests", 429, 1, "too many requests")          \
  X(TOOLARGE, -19, "request_body_too_large", 413, 1, "request body too large") \
  X(METHOD, -20, "method_not_allowed", 405, 1, "method not allowed")           \
  X(APPENDED, -21, "service_unavailable", 503, 4, "appended, not yet applied") \
  X(MAPFULL, -22, "service_unavailable", 503, 3, "projection map full")        \
  X(STALE, -23, "service_unavailable", 503, 3, "answer may be stale")          \
  X(MAXACTIVE, -24, "notification_maximum_active_settings_reached", 400, 1,    \
    "too many active notification settings")                                   \
  X(URITOOLONG, -25, "uri_too_long", 414, 1, "URI too long")                   \
  X(HEADERSTOOLARGE, -26, "request_header_fields_too_large", 431, 1,           \
    "request header fields too large")                                         \
  X(KAFKADENIED, -27, "kafka_authorization_failed", 503, 1,                    \
    "kafka authorization failed")                                              \
  X(CANNOTREPLAY, -28, "notification_cannot_replay", 400, 1,                   \
    "notification cannot be replayed")                                         \
  X(REPLAYORIGIN, -29, "notification_replay_invalid_origin_type", 400, 1,      \
    "only an event's notification can be replayed")

enum {
  CTKN_OK = 0,
#define CTKN__ERRNO_ENUM(name, val, api, http, ex, text) CTKN_E##name = (val),
  CTKN_ERRNO_MAP(CTKN__ERRNO_ENUM)
#undef CTKN__ERRNO_ENUM
};

/*
 * Detail for a failure. `field` names the offending input field for
 * CTKN_EINVAL ("name", "description", "status", ...), and is "" otherwise.
 * `msg` states the rule that was broken, in words a user can act on.
 */
struct ctkn_err {
  int code;       /* same value the function returned */
  char field[64]; /* offending field, or "" */
  char msg[256];  /* detail; may be "" */
};

/* Human text for a code. Never NULL; unknown codes get "unknown error". */
const char *ctkn_strerror(int code);

/* Paddle's error code for a CTKN_E* code ("invalid_field", "conflict", ...). */
const char *ctkn_error_code(int code);

/* HTTP status for a CTKN_E* code (400, 404, 409, 503...). */
int ctkn_error_http_status(int code);

/* CLI exit status for a CTKN_E* code: 0 for CTKN_OK, then 1, 2, 3 or 4.
 * 3 is "not acknowledged: retry"; 4 (CTKN_EAPPENDED) is "acknowledged by
 * Kafka, not yet applied by the projection: do not re-run it without its
 * idempotency key". CTKN_EKAFKADENIED (Kafka refused the principal: an
 * ACL is missing) is 1 and HTTP 503 kafka_authorization_failed: the
 * service is unavailable, but retrying cannot help until an operator
 * grants the ACL its message names. */
int ctkn_error_exit(int code);

/* Reset *err to "no error". NULL is a no-op. */
void ctkn_err_clear(struct ctkn_err *err);

#endif /* CTKN_ERROR_H */
