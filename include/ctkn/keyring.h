/*
 * keyring.h - the trust records as values: the keyring (which writer keys
 * may append which record types, signed by the offline root key), a
 * writer's checkpoint (a signed chain head), the root's adoption of a log
 * prefix written before signing, and the Signed envelope around each.
 * Their wire form is proto/ctkn_trust.proto (codec.h); what signs and
 * checks them is trust.h.
 *
 * Lifetime: ctkn_keyring_init() -> ctkn_keyring_add_key()... ->
 *           ctkn_keyring_free(). The other structs own no memory.
 * Errors:   CTKN_EINVAL naming the field and the rule; CTKN_ENOMEM.
 * Not here: encodings (codec.h), signing and verifying (trust.h).
 */
#ifndef CTKN_KEYRING_H
#define CTKN_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"
#include "ctkn/error.h"

#define CTKN_LOG_ID_LEN      16
#define CTKN_INSTANCE_LEN    16
#define CTKN_CHAIN_LEN       32
#define CTKN_KEYRING_KEYS    1024 /* keys a keyring may hold */
#define CTKN_KEY_SCOPES      16   /* record-type patterns a key may hold */
#define CTKN_SCOPE_MAX       64   /* bytes of one pattern */
#define CTKN_KEY_NAME_MAX    64   /* bytes of a key's name */
#define CTKN_KEYRING_SCHEMAS 16   /* schema versions a keyring enables */
#define CTKN_ADOPT_PARTS     4096 /* partitions an adoption names */
#define CTKN_SIGNER_BUF      CTKN_KEY_ID_BUF /* a key ID or "root" */

/* What a Signed envelope holds (its signature message says the kind). */
typedef enum ctkn_signed_kind {
  CTKN_SIGNED_KEYRING = 1,
  CTKN_SIGNED_CHECKPOINT = 2,
  CTKN_SIGNED_ADOPTION = 3
} ctkn_signed_kind;

/* "keyring", "checkpoint", "adoption"; NULL for an unknown value. */
const char *ctkn_signed_kind_str(ctkn_signed_kind k);

struct ctkn_writer_key {
  char key_id[CTKN_KEY_ID_BUF];
  uint8_t public_key[CTKN_SIGN_PUB_LEN];
  char name[CTKN_KEY_NAME_MAX + 1];
  bool revoked;
  /* Revoked retroactively (`trust key revoke --retroactive`): its records
   * are refused wherever they stand, not only from the revoke's position;
   * only with revoked. */
  bool retroactive;
  size_t nscopes;
  /* A record type ("client_token.created"), or a family ending in ".*"
   * ("client_token.*"); "ctkn.checkpoint" is implied for every key. */
  char scopes[CTKN_KEY_SCOPES][CTKN_SCOPE_MAX + 1];
};

struct ctkn_keyring {
  uint8_t log_id[CTKN_LOG_ID_LEN];
  uint64_t version; /* >= 1; a reader never goes back to a lower one */
  int64_t issued_at;
  size_t nschemas;
  uint32_t schemas[CTKN_KEYRING_SCHEMAS]; /* enabled event schema versions */
  size_t nkeys;
  struct ctkn_writer_key *keys; /* owned */
};

struct ctkn_checkpoint {
  uint8_t log_id[CTKN_LOG_ID_LEN];
  char key_id[CTKN_KEY_ID_BUF];
  uint8_t instance[CTKN_INSTANCE_LEN];
  int32_t partition;
  /* The instance's last record it covers; 0 for a heartbeat on a
   * partition the instance has not written to. */
  uint64_t sequence;
  uint8_t chain[CTKN_CHAIN_LEN];
  int64_t signed_at; /* µs since the epoch */
  bool closing;
  /* The sequence and chain before the first record it covers in its
   * produce batch (sequence and chain themselves when it covers none);
   * from_set is false in a checkpoint written without them. */
  bool from_set;
  uint64_t from_sequence;
  uint8_t from_chain[CTKN_CHAIN_LEN];
};

struct ctkn_adopted_partition {
  int32_t partition;
  int64_t end_offset;
  uint8_t records_hash[CTKN_CHAIN_LEN];
};

struct ctkn_adoption {
  uint8_t log_id[CTKN_LOG_ID_LEN];
  char topic[250];
  int64_t issued_at;
  size_t nparts;
  struct ctkn_adopted_partition *parts; /* owned; release with
                                           ctkn_adoption_free() */
};

/* The envelope. A decoded one owns its body: release with
 * ctkn_signed_free(). To encode one, body may be borrowed. */
struct ctkn_signed {
  uint8_t *body;
  size_t body_len;
  uint8_t signature[CTKN_SIG_LEN];
  char signer[CTKN_SIGNER_BUF]; /* "root" or a writer key's ID */
};

/* What an audit of an archive's records found (audit.h): how many were
 * proven and, for each that failed, where and by which rule. */
#define CTKN_AUDIT_REASON 160 /* trust.h's CTKN_GATE_REASON */
#define CTKN_AUDIT_FAILURES                                                    \
  100 /* failures an audit lists (all are counted)                             \
       */

struct ctkn_audit_failure {
  int32_t partition;
  int64_t offset;
  char reason[CTKN_AUDIT_REASON]; /* the rule, as every reader records it */
  char detail[CTKN_AUDIT_REASON]; /* which check caught it */
};

struct ctkn_audit_trust {
  uint8_t log_id[CTKN_LOG_ID_LEN];
  uint64_t keyring_version; /* the keyring the records were judged by */
  uint64_t proven;          /* linked and covered by a verified checkpoint */
  uint64_t checkpoints;     /* checkpoints verified */
  uint64_t root_records;    /* keyring and adoption records the root signed */
  uint64_t adopted;         /* unsigned records an adoption vouches for */
  uint64_t failed;          /* records that fail; the first ones are listed */
  size_t nfailures;
  struct ctkn_audit_failure failures[CTKN_AUDIT_FAILURES];
};

/* Free a decoded envelope's body. NULL is a no-op. */
void ctkn_signed_free(struct ctkn_signed *s);

/* An empty keyring: version 0, no keys; release with ctkn_keyring_free(). */
void ctkn_keyring_init(struct ctkn_keyring *kr);
/* Free what kr owns and empty it. NULL is a no-op. */
void ctkn_keyring_free(struct ctkn_keyring *kr);
/* A deep copy into *dst (empty it first or init it); caller owns dst's
 * keys. Errors: CTKN_ENOMEM. */
int ctkn_keyring_copy(struct ctkn_keyring *dst, const struct ctkn_keyring *src,
                      struct ctkn_err *err);
/* Append a copy of k. Errors: CTKN_EINVAL (field "keys": too many, or a
 * key ID already there), CTKN_ENOMEM. */
int ctkn_keyring_add_key(struct ctkn_keyring *kr,
                         const struct ctkn_writer_key *k, struct ctkn_err *err);
/* The key with this ID, or NULL. */
const struct ctkn_writer_key *ctkn_keyring_find(const struct ctkn_keyring *kr,
                                                const char *key_id);
/* Whether kr enables event schema version v. */
bool ctkn_keyring_schema_enabled(const struct ctkn_keyring *kr, uint32_t v);

/*
 * The rules every keyring keeps: version >= 1; key IDs are the SHA-256
 * prefix of their public keys, unique; scopes are record types or
 * families ("x.*") of visible ASCII; schema versions >= 1, unique.
 * Errors: CTKN_EINVAL naming the field ("version", "keys", "scopes",
 * "schema_versions") and the rule.
 */
int ctkn_keyring_check(const struct ctkn_keyring *kr, struct ctkn_err *err);

/* Whether k may append a record of this type ("ctkn.checkpoint" always). */
bool ctkn_writer_key_may(const struct ctkn_writer_key *k, const char *type);

/* Free what a decoded adoption owns. NULL is a no-op. */
void ctkn_adoption_free(struct ctkn_adoption *a);

#endif /* CTKN_KEYRING_H */
