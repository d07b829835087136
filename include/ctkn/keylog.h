/*
 * keylog.h - API keys projected from the settings topic into the store,
 * and authentication from that projection.
 *
 * The settings projection (settings.h) hands every api_key.* record to
 * ctkn_keylog_apply(), in log order and in its own write transaction, so
 * every replica holds the same keys. A server authenticates a presented
 * key with ctkn_keylog_authenticate(): the ID read from the key, one
 * lookup, a constant-time hash compare; a legacy (key-file format) key
 * goes through the hash index instead.
 *
 * Tables: api_keys (apikey ID -> codec's stored key) and api_key_hashes
 *         (SHA-256 of a legacy key -> apikey ID), replicated, not in the
 *         digest (like the destinations).
 * Errors:  CTKN_ENOTFOUND; CTKN_EAUTHMALFORMED, CTKN_EBADKEY from
 *          authentication; CTKN_ESTORE (LMDB, or a stored value that does
 *          not decode); CTKN_ENOMEM.
 * Thread:  the functions hold no state; a txn belongs to one thread.
 * Not here: the values and rules (akey.h), commands (keycmd.h).
 */
#ifndef CTKN_KEYLOG_H
#define CTKN_KEYLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/akey.h"
#include "ctkn/error.h"
#include "ctkn/log.h"
#include "ctkn/store.h"

/* Whether a settings record of this event type (may be NULL) is an API
 * key's. */
bool ctkn_keylog_is_akey(const char *event_type);

/* The key id into *out. Borrows txn and id for the call.
 * Errors: CTKN_ENOTFOUND (no such key, or a malformed ID); CTKN_ESTORE. */
int ctkn_keylog_get(ctkn_store_txn *txn, const char *id, struct ctkn_akey *out,
                    struct ctkn_err *err);

/* Up to max keys with IDs after `after` ("" or NULL: from the first), in
 * ID order (creation order) into out (max entries); *n how many, *more
 * whether more follow. Errors: CTKN_ESTORE. */
int ctkn_keylog_list(ctkn_store_txn *txn, const char *after,
                     struct ctkn_akey *out, size_t max, size_t *n, bool *more,
                     struct ctkn_err *err);

/* The key holding legacy hash sha256 into *out. Errors: CTKN_ENOTFOUND;
 * CTKN_ESTORE. */
int ctkn_keylog_find_legacy(ctkn_store_txn *txn, const uint8_t sha256[32],
                            struct ctkn_akey *out, struct ctkn_err *err);

/*
 * Which key the presented key (len bytes, borrowed) is, at now, in env
 * (0: any): on success *out is it, active. A key of the log's format is
 * looked up by the ID it carries; one of the key file's format
 * ("ctkn_apikey_...") by its hash; anything else is refused before any
 * lookup. Errors: CTKN_EAUTHMALFORMED (neither shape); CTKN_EBADKEY (no
 * such key, another environment's, a secret that does not match, or a key
 * revoked or expired at now); CTKN_ESTALE (the settings topic is stopped
 * at a record of a newer schema: ctkn_keylog_pause()); CTKN_ESTORE.
 */
int ctkn_keylog_authenticate(ctkn_store_txn *txn, const char *key, size_t len,
                             ctkn_env env, int64_t now, struct ctkn_akey *out,
                             struct ctkn_err *err);

/* The settings topic stopped at (partition, offset), a record of a newer
 * schema: until the projection's settings offset of that partition passes
 * it (a newer build applied it), ctkn_keylog_authenticate() fails closed,
 * since the record may revoke a key. Kept in the trust table with the
 * projection, so every reader of it fails alike. Errors: CTKN_ESTORE. */
int ctkn_keylog_pause(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                      struct ctkn_err *err);

/* CTKN_ESTALE while the settings topic is stopped as
 * ctkn_keylog_pause() says (its message says where), else CTKN_OK: what
 * authentication checks first, and GET /events before it lists the
 * settings topic's events. */
int ctkn_keylog_paused(ctkn_store_txn *txn, struct ctkn_err *err);

/* What became of a record. */
enum ctkn_keylog_fate {
  CTKN_KEYLOG_APPLIED = 0,
  CTKN_KEYLOG_REJECTED = 1,   /* a valid record that lost (version, ...) */
  CTKN_KEYLOG_QUARANTINED = 2 /* does not decode or breaks a rule */
};

/*
 * Apply the api_key.* record m (borrowed) in txn: *fate says what became
 * of it and reason (reasonsz bytes) why, "" when applied. A record whose
 * schema version header is below CTKN_AKEY_SCHEMA, or whose key is not
 * data.id, is quarantined. Errors: CTKN_ESTORE; CTKN_ENOMEM (the verdict
 * is then meaningless).
 */
int ctkn_keylog_apply(ctkn_store_txn *txn, const struct ctkn_log_msg *m,
                      enum ctkn_keylog_fate *fate, char *reason,
                      size_t reasonsz, struct ctkn_err *err);

#endif /* CTKN_KEYLOG_H */
