/*
 * json_int.h - the jansson helpers that the codec's JSON files share
 * (json.c defines them; json_ops.c, json_settings.c and apikey.c use
 * them). Private to src/codec/: jansson's types never leave it.
 *
 * Every json_t * a helper returns is a new reference that the caller
 * owns (json_decref(), or hand it to ctkn__json_set(), which takes it).
 */
#ifndef CTKN_CODEC_JSON_INT_H
#define CTKN_CODEC_JSON_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"

/* A JSON string of at most max bytes of s, to the first NUL; bytes that
 * are not UTF-8 become U+FFFD. NULL only when out of memory. */
json_t *ctkn__json_str(const char *s, size_t max);
/* The same for exactly n bytes of s, NUL bytes included (as \u0000):
 * what came from outside, such as a receiver's response body. */
json_t *ctkn__json_bytes(const char *s, size_t n);
/* RFC 3339 with 6 fractional digits; null for an instant
 * ctkn_time_format() cannot write. */
json_t *ctkn__json_time(int64_t us);
/* A string from a table (status, event type), or null for NULL. */
json_t *ctkn__json_name(const char *s);
/* json_object_set_new(): takes ownership of value even when it fails, and
 * fails on a NULL value, so a chain of these needs one error check. */
int ctkn__json_set(json_t *obj, const char *key, json_t *value);
/* {"request_id"} plus, when extra is not NULL, "pagination": extra (taken
 * over). A NULL request_id gets a fresh one. */
json_t *ctkn__json_meta(const char *request_id, json_t *extra);
/* Compact text of root, which it releases (NULL passes through, for
 * OOM). Caller owns the string; release with free(). */
char *ctkn__json_dump(json_t *root);
/* {first: a, second: b}; takes ownership of a and b, even on failure. */
json_t *ctkn__json_pair(const char *first, json_t *a, const char *second,
                        json_t *b);
/* {"data": o}, with "meta" when meta; takes ownership of o. Caller owns
 * the string; release with free(). NULL when out of memory. */
char *ctkn__json_doc(json_t *o, bool meta, const char *request_id);
/* A webhook envelope of data (taken, even on failure): {"event_id",
 * "event_type", "occurred_at", "notification_id": null, "data"}, dumped;
 * NULL when out of memory. */
char *ctkn__json_envelope(const char *event_id, const char *event_type,
                          int64_t occurred_at, json_t *data);
/* o, or NULL (o released) when rc says a ctkn__json_set() failed. */
json_t *ctkn__json_checked(json_t *o, int rc);
/* A request body that must be one JSON object: *out is a new reference.
 * CTKN_EBADREQ for anything else, CTKN_ENOMEM. */
int ctkn__json_load_object(const char *body, size_t len, json_t **out,
                           struct ctkn_err *err);
/* Copy the object key src into dst (dstsz > 0), cut at a code point
 * boundary: an unknown key named in err->field. */
void ctkn__json_field_name(char *dst, size_t dstsz, const char *src);

#endif /* CTKN_CODEC_JSON_INT_H */
