/*
 * token.h - the client-side token entity and its value rules.
 *
 * A token is a plain struct with fixed-size fields, so it can be copied,
 * compared and stored without ownership questions. This module also owns
 * the identifiers (ctkn_/evt_/ntf_ lowercase ULIDs), the token strings
 * (test_/live_ + 27 base62), text validation (UTF-8, lengths, control
 * characters) and RFC 3339 time.
 *
 * Time is always int64_t microseconds since the Unix epoch, UTC. Functions
 * that need "now" take it as an argument, so callers read the clock once
 * per command (ctkn_now_us()).
 *
 * Errors:   CTKN_EINVAL with err->field naming the field and err->msg the
 *           rule; CTKN_EIO when the kernel's CSPRNG fails.
 * Thread:   all functions are thread-safe.
 * Not here: state transitions (event.h), encodings (codec.h).
 */
#ifndef CTKN_TOKEN_H
#define CTKN_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"

#define CTKN_ULID_LEN   26                  /* Crockford base32 chars */
#define CTKN_ID_LEN     (5 + CTKN_ULID_LEN) /* "ctkn_" + ULID */
#define CTKN_EVT_ID_LEN (4 + CTKN_ULID_LEN) /* "evt_" + ULID */
#define CTKN_TOKEN_LEN  (5 + 27)            /* "test_" + 27 base62 */
#define CTKN_NAME_MAX   150                 /* code points */
#define CTKN_DESC_MAX   500                 /* code points */
#define CTKN_NAME_BYTES (CTKN_NAME_MAX * 4) /* worst-case UTF-8 */
#define CTKN_DESC_BYTES (CTKN_DESC_MAX * 4) /* worst-case UTF-8 */
#define CTKN_TIME_LEN   27                  /* "2025-06-26T14:36:14.695521Z" */
#define CTKN_ID_BUF     (CTKN_ID_LEN + 1)
#define CTKN_TOKEN_BUF  (CTKN_TOKEN_LEN + 1)
#define CTKN_TIME_BUF   (CTKN_TIME_LEN + 1)

typedef enum ctkn_status {
  CTKN_STATUS_ACTIVE = 1,
  CTKN_STATUS_REVOKED = 2
} ctkn_status;

/* One deployment serves one environment; it decides the token prefix. */
typedef enum ctkn_env { CTKN_ENV_SANDBOX = 1, CTKN_ENV_LIVE = 2 } ctkn_env;

/*
 * The entity, exactly the fields of Paddle's client-side token.
 * Strings are NUL-terminated UTF-8. revoked_at is 0 when null.
 */
struct ctkn_token {
  char id[CTKN_ID_BUF];
  char token[CTKN_TOKEN_BUF];
  char name[CTKN_NAME_BYTES + 1];
  bool has_description; /* false: "description": null */
  char description[CTKN_DESC_BYTES + 1];
  ctkn_status status;
  int64_t created_at; /* µs since epoch */
  int64_t updated_at;
  int64_t revoked_at; /* 0: null */
};

/* "active" / "revoked"; NULL for an unknown value. */
const char *ctkn_status_str(ctkn_status s);
/* Parse "active" / "revoked". Errors: CTKN_EINVAL (field "status"). */
int ctkn_status_parse(const char *s, ctkn_status *out, struct ctkn_err *err);

/* "sandbox" / "live"; NULL for an unknown value. */
const char *ctkn_env_str(ctkn_env e);
/* Parse "sandbox" / "live". Errors: CTKN_EINVAL (field "environment"). */
int ctkn_env_parse(const char *s, ctkn_env *out, struct ctkn_err *err);
/* The token prefix of an environment: "test_" or "live_". */
const char *ctkn_env_token_prefix(ctkn_env e);

/* ---- time ---------------------------------------------------------- */

/* The wall clock, µs since the Unix epoch. */
int64_t ctkn_now_us(void);

/*
 * Write `us` as RFC 3339 UTC with exactly 6 fractional digits into out,
 * which must hold CTKN_TIME_BUF bytes. Errors: CTKN_EINVAL (an instant
 * before 1970 or after 9999).
 */
int ctkn_time_format(int64_t us, char out[CTKN_TIME_BUF]);

/*
 * Parse an RFC 3339 date-time: any number of fractional digits (digits
 * past the sixth are truncated), "Z" or a numeric offset. Errors:
 * CTKN_EINVAL (field "time": a malformed date-time, or leading or
 * trailing junk).
 */
int ctkn_time_parse(const char *s, int64_t *us, struct ctkn_err *err);

/* ---- identifiers and token strings --------------------------------- */

/* Fill buf with len bytes from getrandom(2). Errors: CTKN_EIO. */
int ctkn_random(void *buf, size_t len);

/*
 * Write prefix + a lowercase ULID for the millisecond `ms` into out (NUL
 * terminated; out must hold strlen(prefix) + 27 bytes). IDs generated in
 * one process are strictly increasing: within one millisecond the random
 * part is incremented, and a clock step backwards reuses the last
 * millisecond. Prefixes in use: "ctkn_", "evt_", "ntf_",
 * "ntfset_". Errors: CTKN_EINVAL (out too short, ms outside 48 bits),
 * CTKN_EIO (no randomness).
 */
int ctkn_id_generate(const char *prefix, int64_t ms, char *out, size_t outsz);

/*
 * prefix + the ULID of `ms` and the 80 bits in r (10 bytes), with no
 * randomness and no ordering state: for IDs that must come out the same
 * wherever they are computed (a notification's ID from its event and
 * destination). Errors: CTKN_EINVAL (a short out, an ms outside 48
 * bits).
 */
int ctkn_id_derive(const char *prefix, int64_t ms, const uint8_t r[10],
                   char *out, size_t outsz);

/* true when s is prefix + 26 chars of [0-9a-hjkmnp-tv-z] (ULID alphabet). */
bool ctkn_id_valid(const char *prefix, const char *s);
/* The pattern ctkn_id_valid() checks, for error messages: a ULID in
 * lowercase Crockford base32 (no i, l, o or u; the first character holds
 * the top 3 bits). CTKN_ID_RULE("ctkn_") is "must match ^ctkn_[0-7]...". */
#define CTKN_ID_PATTERN(prefix) "^" prefix "[0-7][0-9a-hjkmnp-tv-z]{25}$"
#define CTKN_ID_RULE(prefix)    "must match " CTKN_ID_PATTERN(prefix)

/* The ULID's millisecond timestamp, or -1 when s is not a valid ID. */
int64_t ctkn_id_time_ms(const char *prefix, const char *s);

/*
 * Write a token string for env into out: the prefix, then 8 base62
 * characters of the creation millisecond (so the token index stays
 * append-mostly), then 19 unbiased base62 characters from getrandom(2).
 * Errors: CTKN_EINVAL (an unknown env), CTKN_EIO (no randomness).
 */
int ctkn_token_generate(ctkn_env env, int64_t now_us, char out[CTKN_TOKEN_BUF]);

/*
 * true when s matches ^(test|live)_[a-zA-Z0-9]{27}$. When env is not NULL
 * it receives the environment the prefix names.
 */
bool ctkn_token_valid(const char *s, ctkn_env *env);

/* ---- text rules ---------------------------------------------------- */

/*
 * Count the code points of len bytes of UTF-8. Returns CTKN_EINVAL for
 * invalid UTF-8 (overlong forms, surrogates, > U+10FFFF, truncation) or a
 * control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F).
 * Errors: CTKN_EINVAL, err->field being `field` and err->msg the rule.
 */
int ctkn_text_check(const char *field, const char *s, size_t len,
                    size_t *codepoints, struct ctkn_err *err);

/* name: valid text of 1-150 code points. Errors: CTKN_EINVAL (field
 * "name"). */
int ctkn_validate_name(const char *s, size_t len, struct ctkn_err *err);

/* description: valid text of 1-500 code points (null is the caller's).
 * Errors: CTKN_EINVAL (field "description"). */
int ctkn_validate_description(const char *s, size_t len, struct ctkn_err *err);

/*
 * Check every rule of a whole entity: ID and token formats, text, status,
 * timestamps (created <= updated, revoked_at set exactly when revoked and
 * then equal to updated_at). If env is not 0, the token prefix must match.
 * Errors: CTKN_EINVAL, naming the first field that breaks a rule.
 */
int ctkn_token_check(const struct ctkn_token *t, ctkn_env env,
                     struct ctkn_err *err);

/* true when every field of a and b is equal. */
bool ctkn_token_equal(const struct ctkn_token *a, const struct ctkn_token *b);

#endif /* CTKN_TOKEN_H */
