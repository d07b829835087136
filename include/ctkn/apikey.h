/*
 * apikey.h - API keys: named bearer keys with permissions, kept in a file
 * that holds only their hashes.
 *
 * A key is "ctkn_apikey_" followed by 43 base64url characters (32 random
 * bytes from the OS): high entropy, so an unsalted SHA-256 is a safe
 * digest to store. It is shown once, when created, and never again.
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
 * Permissions: client_token.read, client_token.write (implies
 * client_token.read), notification_setting.read and
 * notification_setting.write (implies notification_setting.read). Each
 * write implies only its own read.
 *
 * Errors:   CTKN_EINVAL naming the field ("name", "permissions", "file")
 *           for a bad argument; CTKN_ECONFLICT for a name already in use;
 *           CTKN_ENOTFOUND for an unknown name; CTKN_EIO for a file that
 *           cannot be read or written; CTKN_EDECODE for a malformed file
 *           (err->msg names the line and the field); CTKN_ENOMEM.
 *           err->msg never holds key material.
 * Thread:   a loaded ctkn_apikeys is immutable, safe to share. Create and
 *           revoke may run at once in any number of threads and processes.
 */
#ifndef CTKN_APIKEY_H
#define CTKN_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"

enum ctkn_perm {
  CTKN_PERM_TOKEN_READ = 1u << 0,
  CTKN_PERM_TOKEN_WRITE = 1u << 1,
  CTKN_PERM_SETTING_READ = 1u << 2,  /* notification_setting.read */
  CTKN_PERM_SETTING_WRITE = 1u << 3, /* notification_setting.write */
};

#define CTKN_PERMS_MAX 4 /* permission names: what ctkn_perms_names fills */

#define CTKN_APIKEY_PREFIX   "ctkn_apikey_"
#define CTKN_APIKEY_BUF      64 /* a key and its NUL */
#define CTKN_APIKEY_NAME_MAX 64 /* [A-Za-z0-9._-], 1..64 bytes */

/* One key as the file holds it (no key material, only its hash). */
struct ctkn_apikey {
  char name[CTKN_APIKEY_NAME_MAX + 1];
  uint8_t sha256[32];
  unsigned perms;      /* enum ctkn_perm bits, write implying read */
  char created_at[32]; /* RFC 3339 */
};

/* "client_token.read,notification_setting.write" -> bits (each write
 * with its read). Unknown names, empty items and an empty list are
 * CTKN_EINVAL on field "permissions". */
int ctkn_perms_parse(const char *s, unsigned *perms, struct ctkn_err *err);

/* The granted permissions as a JSON-ready list of names, in a fixed order
 * (client_token.read, client_token.write, notification_setting.read,
 * notification_setting.write; a write always brings its read): fills at
 * most cap entries (CTKN_PERMS_MAX is enough) of names with static
 * strings and returns how many it filled. */
size_t ctkn_perms_names(unsigned perms, const char **names, size_t cap);

/* Add a key named name with perms to path (created when missing). key
 * receives the new key, the only time it exists in the clear; out (may be
 * NULL) receives the entry as stored, perms with write implying read. On
 * failure key is "" and the file is unchanged. perms of 0 or with unknown
 * bits is CTKN_EINVAL on field "permissions". */
int ctkn_apikey_create(const char *path, const char *name, unsigned perms,
                       char key[CTKN_APIKEY_BUF], struct ctkn_apikey *out,
                       struct ctkn_err *err);

/* Remove the key named name from path. CTKN_ENOTFOUND when no key has
 * that name; a missing file is CTKN_EIO. */
int ctkn_apikey_revoke(const char *path, const char *name,
                       struct ctkn_err *err);

typedef struct ctkn_apikeys ctkn_apikeys;

/* Load path. A missing file is CTKN_EIO (a server must not start keyless
 * by mistake). On success *out is caller-owned: ctkn_apikeys_free(). */
int ctkn_apikeys_load(const char *path, ctkn_apikeys **out,
                      struct ctkn_err *err);
void ctkn_apikeys_free(ctkn_apikeys *ks);

/* The entries, in file order; ctkn_apikeys_at() is NULL past the end and
 * its pointer is valid until ctkn_apikeys_free(). */
size_t ctkn_apikeys_count(const ctkn_apikeys *ks);
const struct ctkn_apikey *ctkn_apikeys_at(const ctkn_apikeys *ks, size_t i);

/*
 * Find the key that key (len bytes, not NUL-terminated) is: hashes it and
 * compares the digest against every entry in constant time, without an
 * early exit. CTKN_EAUTHMALFORMED when key is not shaped like a ctkn key,
 * CTKN_EBADKEY when no entry matches. On success *out points into ks
 * (valid until ctkn_apikeys_free()); otherwise it is NULL.
 */
int ctkn_apikeys_find(const ctkn_apikeys *ks, const char *key, size_t len,
                      const struct ctkn_apikey **out);

#endif /* CTKN_APIKEY_H */
