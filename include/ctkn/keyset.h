/*
 * keyset.h - API keys as values: one key's entry (name, digest,
 * permissions), the permission names, and a loaded set of entries with
 * its constant-time lookup.
 *
 * This is to apikey.h (the key file) what token.h is to the ledger: the
 * codec (codec.h) reads and writes these values and the key file keeps
 * them, without either depending on the other.
 *
 * A key is "ctkn_apikey_" followed by 43 base64url characters (32 random
 * bytes from the OS): high entropy, so an unsalted SHA-256 is a safe
 * digest to store, and it is the only thing an entry holds of the key.
 *
 * Permissions: client_token.read, client_token.write (implies
 * client_token.read), notification_setting.read and
 * notification_setting.write (implies notification_setting.read),
 * api_key.read and api_key.write (implies api_key.read; the routes and
 * commands that manage keys on the log, keylog.h). Each write implies
 * only its own read.
 *
 * Lifetime: a ctkn_apikeys comes from ctkn_apikeys_load() (apikey.h):
 *           caller owns it, release with ctkn_apikeys_free().
 * Errors:   CTKN_EINVAL naming the field ("name", "permissions");
 *           CTKN_EAUTHMALFORMED and CTKN_EBADKEY from the lookup.
 * Thread:   a set is immutable once loaded, safe to share; the functions
 *           hold no state.
 * Not here: the key file, creating and revoking keys (apikey.h); the
 *           file's JSON (codec.h).
 */
#ifndef CTKN_KEYSET_H
#define CTKN_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"

enum ctkn_perm {
  CTKN_PERM_TOKEN_READ = 1u << 0,
  CTKN_PERM_TOKEN_WRITE = 1u << 1,
  CTKN_PERM_SETTING_READ = 1u << 2,  /* notification_setting.read */
  CTKN_PERM_SETTING_WRITE = 1u << 3, /* notification_setting.write */
  CTKN_PERM_KEY_READ = 1u << 4,      /* api_key.read */
  CTKN_PERM_KEY_WRITE = 1u << 5,     /* api_key.write */
};

#define CTKN_PERMS_MAX 6 /* permission names: what ctkn_perms_names fills */
#define CTKN_PERMS_ALL                                                         \
  (CTKN_PERM_TOKEN_READ | CTKN_PERM_TOKEN_WRITE | CTKN_PERM_SETTING_READ |     \
   CTKN_PERM_SETTING_WRITE | CTKN_PERM_KEY_READ | CTKN_PERM_KEY_WRITE)
/* The names, for messages that list what is accepted. */
#define CTKN_PERMS_LIST                                                        \
  "client_token.read, client_token.write, notification_setting.read, "         \
  "notification_setting.write, api_key.read, api_key.write"

#define CTKN_APIKEY_PREFIX   "ctkn_apikey_"
#define CTKN_APIKEY_LEN      (sizeof(CTKN_APIKEY_PREFIX) - 1 + 43)
#define CTKN_APIKEY_BUF      64 /* a key and its NUL */
#define CTKN_APIKEY_NAME_MAX 64 /* [A-Za-z0-9._-], 1..64 bytes */

/* One key as the file holds it (no key material, only its hash). */
struct ctkn_apikey {
  char name[CTKN_APIKEY_NAME_MAX + 1];
  uint8_t sha256[32];
  unsigned perms;      /* enum ctkn_perm bits, write implying read */
  char created_at[32]; /* RFC 3339 */
};

/* "client_token.read,notification_setting.write" -> *perms (each write
 * with its read; 0 on failure). Borrows s for the call.
 * Errors: CTKN_EINVAL (field "permissions": an unknown name, an empty
 * item or an empty list). */
int ctkn_perms_parse(const char *s, unsigned *perms, struct ctkn_err *err);

/* The bits one permission name (len bytes, borrowed for the call)
 * grants, a write with its read; 0 for a name that is not one. Errors:
 * none. */
unsigned ctkn_perm_bits(const char *name, size_t len);

/* perms with every write's read added. Errors: none. */
unsigned ctkn_perms_with_reads(unsigned perms);

/* The granted permissions as a JSON-ready list of names, in a fixed order
 * (client_token.read, client_token.write, notification_setting.read,
 * notification_setting.write, api_key.read, api_key.write; a write always
 * brings its read): fills at
 * most cap entries (CTKN_PERMS_MAX is enough) of names with static
 * strings and returns how many it filled. Errors: none. */
size_t ctkn_perms_names(unsigned perms, const char **names, size_t cap);

/* Whether s (len bytes, borrowed for the call) is a key name:
 * [A-Za-z0-9._-], 1 to 64 bytes.
 * Errors: CTKN_EINVAL (field "name", the rule in words). */
int ctkn_apikey_name_check(const char *s, size_t len, struct ctkn_err *err);

/* ---- a loaded set ---------------------------------------------------- */

typedef struct ctkn_apikeys ctkn_apikeys;

/* Free a set. NULL is a no-op. Errors: none. */
void ctkn_apikeys_free(ctkn_apikeys *ks);

/* The entries, in file order: how many (0 for NULL), and entry i, NULL
 * past the end; the pointer is valid until ctkn_apikeys_free(). Errors:
 * none. */
size_t ctkn_apikeys_count(const ctkn_apikeys *ks);
const struct ctkn_apikey *ctkn_apikeys_at(const ctkn_apikeys *ks, size_t i);

/*
 * Find the key that key (len bytes, not NUL-terminated, borrowed for the
 * call) is: hashes it and compares the digest against every entry in
 * constant time, without an early exit. On success *out points into ks
 * (valid until ctkn_apikeys_free()); otherwise it is NULL.
 * Errors: CTKN_EAUTHMALFORMED (key is not shaped like a ctkn key);
 * CTKN_EBADKEY (no entry matches).
 */
int ctkn_apikeys_find(const ctkn_apikeys *ks, const char *key, size_t len,
                      const struct ctkn_apikey **out);

#endif /* CTKN_KEYSET_H */
