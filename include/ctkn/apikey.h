/*
 * apikey.h - the API-key file: named bearer keys with permissions, kept
 * in a file that holds only their hashes.
 *
 * The values (an entry, the permissions, a loaded set and its
 * constant-time lookup) are in keyset.h, which this header includes; the
 * file's JSON is the codec's (codec.h). A key is shown once, when
 * created, and never again.
 *
 * The key file is one JSON object a line:
 *   {"name":"backend","sha256":"<64 hex>","permissions":["client_token.read"],
 *    "created_at":"2026-11-23T10:00:00.000000Z"}
 * with "sha256" the lowercase hex SHA-256 of the whole key string, prefix
 * included. Every field is required and no other is accepted. It is
 * rewritten atomically (PATH.tmp, fsync, rename, fsync of the directory)
 * with mode 0600 while holding flock(PATH.lock), so concurrent
 * `ctkn apikey` calls never lose an entry. Both companions live in the key
 * file's directory, which must be writable.
 *
 * Errors:   CTKN_EINVAL naming the field ("name", "permissions", "file")
 *           for a bad argument; CTKN_ECONFLICT for a name already in use;
 *           CTKN_ENOTFOUND for an unknown name; CTKN_EIO for a file that
 *           cannot be read or written; CTKN_EDECODE for a malformed file
 *           (err->msg names the line and the field); CTKN_ENOMEM.
 *           err->msg never holds key material.
 * Thread:   create and revoke may run at once in any number of threads
 *           and processes; a loaded set is immutable, safe to share.
 */
#ifndef CTKN_APIKEY_H
#define CTKN_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"
#include "ctkn/keyset.h"

/* The largest key file read, in bytes (some 60,000 keys). A key file must
 * be a regular file no larger than this. */
#define CTKN_APIKEY_FILE_MAX (16 * 1024 * 1024)

/* Add a key named name with perms to path (created when missing). key
 * receives the new key, the only time it exists in the clear; out (may be
 * NULL) receives the entry as stored, perms with write implying read.
 * Borrows path and name for the call. On failure key is "" and the file
 * is unchanged.
 * Errors: CTKN_EINVAL (field "file": no path; "name": not a key name;
 * "permissions": 0 or unknown bits); CTKN_ECONFLICT (the name is in use);
 * CTKN_EDECODE (the file is malformed); CTKN_EIO; CTKN_EINTERNAL (the
 * clock is outside 1970-9999); CTKN_ENOMEM. */
int ctkn_apikey_create(const char *path, const char *name, unsigned perms,
                       char key[CTKN_APIKEY_BUF], struct ctkn_apikey *out,
                       struct ctkn_err *err);

/* Remove the key named name from path. Borrows both for the call.
 * Errors: CTKN_EINVAL (field "file" or "name"); CTKN_ENOTFOUND (no key
 * has that name); CTKN_EIO (also a missing file); CTKN_EDECODE;
 * CTKN_ENOMEM. */
int ctkn_apikey_revoke(const char *path, const char *name,
                       struct ctkn_err *err);

/* Load path. On success *out is a new set: caller owns it, release with
 * ctkn_apikeys_free() (keyset.h). On failure *out is NULL.
 * Errors: CTKN_EINVAL (field "file": no path; or path is not a regular
 * file, or is larger than CTKN_APIKEY_FILE_MAX: refused before it is
 * read); CTKN_EIO (also a missing file: a server must not start keyless
 * by mistake); CTKN_EDECODE (a
 * malformed line, a name or a digest used twice); CTKN_ENOMEM. */
int ctkn_apikeys_load(const char *path, ctkn_apikeys **out,
                      struct ctkn_err *err);

#endif /* CTKN_APIKEY_H */
