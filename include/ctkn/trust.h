/*
 * trust.h - what makes a record trustworthy: what a writer's chain covers,
 * how a chain links, and what a signature signs (docs/architecture.md,
 * "Trust"). The writer that signs as it appends and the reader that
 * verifies build on these.
 *
 * A record is covered by: the log ID (fixed by the first keyring, so an
 * import into another topic keeps every signature valid), its partition,
 * its key, its value, and every header whose name starts with "ctkn-" or
 * "ce_", or is "content-type", in record order, duplicates included, but
 * for "ctkn-chain" (the chain value itself, which the reader recomputes).
 * A covered header that appears twice makes the record invalid.
 *
 * Thread:   every function is pure and thread-safe.
 * Errors:   CTKN_EINVAL naming the rule.
 */
#ifndef CTKN_TRUST_H
#define CTKN_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"
#include "ctkn/keyring.h"
#include "ctkn/log.h"

#define CTKN_HDR_WRITER      "ctkn-writer" /* "<key ID>.<instance, 32 hex>" */
#define CTKN_HDR_SEQ         "ctkn-seq" /* decimal, 1 for an instance's first */
#define CTKN_HDR_CHAIN       "ctkn-chain" /* 64 hex: the chain after the record */
#define CTKN_TYPE_CHECKPOINT "ctkn.checkpoint"
#define CTKN_TYPE_KEYRING    "ctkn.keyring"
#define CTKN_TYPE_ADOPTION   "ctkn.adopt"

/* Whether a header of this name is covered by the chain. */
bool ctkn_trust_covered(const char *name);

/*
 * The digest of what a chain covers of record m on its partition, under
 * log_id: SHA-256 over a length-prefixed framing of the log ID, the
 * partition, the key (null apart from empty), the value, and the covered
 * headers in order. Errors: CTKN_EINVAL when a covered header appears
 * twice (the record is then quarantined).
 */
int ctkn_trust_record_digest(const uint8_t log_id[CTKN_LOG_ID_LEN],
                             const struct ctkn_log_msg *m,
                             uint8_t out[CTKN_CHAIN_LEN], struct ctkn_err *err);

/* An instance's chain before its first record on a partition. */
void ctkn_trust_chain_start(const uint8_t log_id[CTKN_LOG_ID_LEN],
                            int32_t partition, const char *key_id,
                            const uint8_t instance[CTKN_INSTANCE_LEN],
                            uint8_t out[CTKN_CHAIN_LEN]);
/* The chain after a record: SHA-256(prev || record digest). out may be
 * prev. */
void ctkn_trust_chain_next(const uint8_t prev[CTKN_CHAIN_LEN],
                           const uint8_t digest[CTKN_CHAIN_LEN],
                           uint8_t out[CTKN_CHAIN_LEN]);

/*
 * The bytes a signature of kind signs: "ctkn trust v1", a NUL, the kind's
 * name, a NUL, then the body. On success *out is a new buffer of *len
 * bytes: caller owns it; release with free(). Errors: CTKN_ENOMEM.
 */
int ctkn_trust_signing_bytes(ctkn_signed_kind kind, const uint8_t *body,
                             size_t body_len, uint8_t **out, size_t *len,
                             struct ctkn_err *err);

/* Sign body as kind with k into s (s->body borrows body; s->signer is
 * signer). Errors: CTKN_ENOMEM, CTKN_EINTERNAL. */
int ctkn_trust_sign(const ctkn_seckey *k, const char *signer,
                    ctkn_signed_kind kind, uint8_t *body, size_t body_len,
                    struct ctkn_signed *s, struct ctkn_err *err);
/* Whether s is a valid signature of kind by k. */
bool ctkn_trust_verify(const ctkn_pubkey *k, ctkn_signed_kind kind,
                       const struct ctkn_signed *s);

/* "<key ID>.<instance as 32 hex>" into out (CTKN_KEY_ID_BUF + 33 bytes). */
#define CTKN_WRITER_BUF (CTKN_KEY_ID_BUF + 2 * CTKN_INSTANCE_LEN + 1)
void ctkn_trust_writer_str(const char *key_id,
                           const uint8_t instance[CTKN_INSTANCE_LEN],
                           char out[CTKN_WRITER_BUF]);
/* Parse a ctkn-writer header value. Errors: CTKN_EINVAL. */
int ctkn_trust_writer_parse(const void *value, size_t len,
                            char key_id[CTKN_KEY_ID_BUF],
                            uint8_t instance[CTKN_INSTANCE_LEN],
                            struct ctkn_err *err);

#endif /* CTKN_TRUST_H */
