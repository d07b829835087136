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

/* ---- the writer: signing what it appends -------------------------------- */

/*
 * A writer instance: its key, the log ID, a random 128-bit instance ID
 * chosen at open, and per partition its sequence and chain. A batch is
 * prepared (signed records, then one checkpoint per partition it
 * touches, to be produced together), produced by the caller, and then
 * done, telling whether every record was acknowledged. The next batch may
 * be prepared before that (several produce batches in flight): it chains
 * onto the last one prepared. A batch not acknowledged ends its instance
 * (its generation, ctkn_signer_generation() right after its prepare): a
 * new one starts, and the batches prepared after the failed one on the
 * old instance end with it (their done changes nothing, in whatever order
 * it comes). So a chain holds only records the writer sent in order; one
 * whose predecessor never reached the log links to nothing, and every
 * reader quarantines it.
 *
 * Lifetime: ctkn_signer_open() -> (prepare, produce, done)... ->
 *           ctkn_signer_close(). The key is borrowed for the signer's life.
 * Thread:   one call at a time; callers on several threads serialize.
 */
typedef struct ctkn_signer ctkn_signer;

/* On success *out is a new signer for partitions 0..nparts-1. Errors:
 * CTKN_EUSAGE (nparts < 1), CTKN_EIO (no random bytes), CTKN_ENOMEM. */
int ctkn_signer_open(ctkn_signer **out, const ctkn_seckey *key,
                     const uint8_t log_id[CTKN_LOG_ID_LEN], int32_t nparts,
                     struct ctkn_err *err);
void ctkn_signer_close(ctkn_signer *s);

/* What a batch's checkpoints are besides covering its records. */
enum {
  CTKN_SIGN_CLOSING = 1,  /* closing: every partition the instance wrote to */
  CTKN_SIGN_HEARTBEAT = 2 /* every partition, written to or not */
};

/*
 * Sign in[0..n) (each with partition >= 0; event_type/schema_version or
 * verbatim headers as for the producer) into *out: first the n records in
 * order, each with its ctkn-writer, ctkn-seq and ctkn-chain headers, then
 * a checkpoint for every partition they touch, and more as flags
 * (CTKN_SIGN_*) say; n may be 0 then. A heartbeat on a partition the
 * instance never wrote to names sequence 0 and the chain's start.
 * now_us is the checkpoints' signed time. *out is valid until the next
 * prepare or close. Errors: CTKN_EUSAGE (a partition out of range),
 * CTKN_EINVAL (a covered header twice), CTKN_ENOMEM.
 */
int ctkn_signer_prepare(ctkn_signer *s, const struct ctkn_log_record *in,
                        size_t n, unsigned flags, int64_t now_us,
                        struct ctkn_log_record **out, size_t *nout,
                        struct ctkn_err *err);
/* After producing a batch prepared on the current instance: acked tells
 * whether every record of it was acknowledged (not: a new instance).
 * Errors: CTKN_EIO (no random bytes for a new instance; the signer then
 * refuses to prepare). */
int ctkn_signer_done(ctkn_signer *s, bool acked, struct ctkn_err *err);
/* The current instance's generation: read it right after a prepare to
 * name that batch's. */
uint64_t ctkn_signer_generation(const ctkn_signer *s);
/* ctkn_signer_done() for a batch prepared in generation gen: a failure
 * ends that instance only if it is still the current one. Errors: as
 * ctkn_signer_done(). */
int ctkn_signer_done_gen(ctkn_signer *s, uint64_t gen, bool acked,
                         struct ctkn_err *err);
/* The current "<key ID>.<instance>" (changes after a failed batch). */
const char *ctkn_signer_writer(const ctkn_signer *s);

/* ---- the reader: the gate every record passes -----------------------------
 */

/*
 * A reader's gate, per partition, in log order: records are fed as they
 * are read and come out, in the same order, judged:
 *  - APPLY: linked into its writer instance's chain and covered by a
 *    verified checkpoint of that instance;
 *  - CHECKPOINT: a verified checkpoint (nothing to apply);
 *  - QUARANTINE: never applied, with the reason.
 * A record that links but is not yet covered is pending and holds back
 * every record after it on its partition (the stored offset never passes
 * it): ctkn_gate_next() stops there. Feed more records, or reset the
 * partition to read again from the first record held back. A pending
 * record is quarantined as "never checkpointed" once its instance has
 * written CTKN_GATE_MAX_AHEAD more records, or once a verified checkpoint
 * on its partition is signed more than CTKN_GATE_GRACE_US after the
 * record's timestamp (its occurred_at) or after the first verified
 * checkpoint that followed it, whichever is earlier (a timestamp set in
 * the future cannot hold a partition back longer).
 *
 * Replays: a checkpoint signed more than CTKN_GATE_REPLAY_US before the
 * newest one on its partition is stale; a closed instance is remembered
 * for that long after it closed, so its records and checkpoints appended
 * again are refused either way.
 *
 * Revocation is positional. `ctkn trust key revoke` (every keyring change)
 * also appends the root-signed keyring record (ctkn.keyring) to every
 * partition of the event topic. A gate given the root's public key
 * (ctkn_gate_set_root()) verifies such a record in its place and judges
 * the partition's records after it by it: a writer key it holds is
 * judged by its entry there alone, so a record signed before the revoke's
 * record is judged as the keyring before it said, one after as it says,
 * whatever the reader's settings keyring (ctkn_gate_set_keyring()) is at
 * that moment. A key the positional keyring lacks (added after it) is
 * judged by the settings keyring, its revocation there ignored. A
 * partition with no positional keyring yet (a log from before them) is
 * judged by the settings keyring, revocations included. A key revoked
 * retroactively (`trust key revoke --retroactive`) is refused wherever its
 * records stand, by the newest keyring the reader has: a projection built
 * after the revoke (rebuild, a new replica) refuses them all, one that
 * applied them before keeps them until rebuilt. A keyring record
 * comes out as CTKN_GATE_CHECKPOINT (nothing to apply), or quarantined:
 * not signed by the root, for another log, or a lower version than the
 * partition's (the same version again changes nothing).
 *
 * The state that outlives a batch (each instance's released chain head,
 * the positional keyring) is saved with the projection
 * (ctkn_gate_save/_load), so a reader that restarts links the next
 * records and judges by the same keyring.
 *
 * Lifetime: ctkn_gate_open() -> feed/next... -> ctkn_gate_close().
 * Thread:   one thread at a time.
 */
#define CTKN_GATE_MAX_AHEAD 1024
#define CTKN_GATE_GRACE_US  1000000
#define CTKN_GATE_REPLAY_US (60 * 1000000LL)
#define CTKN_GATE_REASON    160
#define CTKN_GATE_UNPROVEN                                                     \
  "not proven by its writer's checkpoints (a replay, a forgery, or never "     \
  "checkpointed)"

typedef struct ctkn_gate ctkn_gate;

enum ctkn_gate_verdict {
  CTKN_GATE_APPLY,
  CTKN_GATE_CHECKPOINT, /* a verified checkpoint or positional keyring */
  CTKN_GATE_QUARANTINE
};

struct ctkn_gate_out {
  size_t tag; /* as fed */
  int64_t offset;
  enum ctkn_gate_verdict verdict;
  char reason[CTKN_GATE_REASON]; /* QUARANTINE: why, the same everywhere */
  char detail[CTKN_GATE_REASON]; /* QUARANTINE: which rule, as this gate saw
                                    it (for logs) */
};

/* On success *out is a new gate for partitions 0..nparts-1 judging by kr
 * (borrowed: keep it alive, or ctkn_gate_set_keyring() a new one). Errors:
 * CTKN_EUSAGE, CTKN_ENOMEM. */
int ctkn_gate_open(ctkn_gate **out, const struct ctkn_keyring *kr,
                   int32_t nparts, struct ctkn_err *err);
void ctkn_gate_close(ctkn_gate *g);
/* For a reader that starts mid-log with no saved state (`ctkn tail`): an
 * instance first met mid-chain waits for a verified checkpoint of its
 * produce batch, whose from_sequence and from_chain (signed) anchor its
 * chain. Records of a batch that began before the reader's first record
 * cannot be anchored and are quarantined. Set before the first feed. */
void ctkn_gate_set_midstream(ctkn_gate *g);
/* Apply partition p's unsigned records below end (an adopted prefix whose
 * hash the caller has checked: ctkn_trust_adopt_hash()); 0 stops. Kept
 * across ctkn_gate_clear() and ctkn_gate_load(). */
void ctkn_gate_adopt(ctkn_gate *g, int32_t p, int64_t end);
/* Judge from now on by kr (a newer settings keyring; borrowed). */
void ctkn_gate_set_keyring(ctkn_gate *g, const struct ctkn_keyring *kr);
/* The root's public key (borrowed for the gate's life), which verifies
 * positional keyring records; without it they are quarantined. */
void ctkn_gate_set_root(ctkn_gate *g, const ctkn_pubkey *root);
/* The version of partition p's released positional keyring (0: none). */
uint64_t ctkn_gate_keyring_version(const ctkn_gate *g, int32_t p);
/* Feed record m (borrowed until it comes out or the partition is reset),
 * the next one of its partition. Errors: CTKN_EUSAGE (a partition out of
 * range), CTKN_ENOMEM. */
int ctkn_gate_feed(ctkn_gate *g, const struct ctkn_log_msg *m, size_t tag,
                   struct ctkn_err *err);
/* As ctkn_gate_feed(), but a checkpoint's signature is not checked yet:
 * it waits until a verified checkpoint of its instance (fed with
 * ctkn_gate_feed()) proves its claims, or until its deadline. A reader
 * feeds all but the newest checkpoint of each instance in a read batch
 * so, and so verifies one signature per instance and batch. Verdicts do
 * not depend on which checkpoints were verified: one whose signature was
 * never checked stands only on a verified one's proof, and its time and
 * closing then count for nothing. */
int ctkn_gate_feed_lazy(ctkn_gate *g, const struct ctkn_log_msg *m, size_t tag,
                        struct ctkn_err *err);
/* The next judged record of partition p into *o; false when none is (the
 * queue is empty or its head is pending). */
bool ctkn_gate_next(ctkn_gate *g, int32_t p, struct ctkn_gate_out *o);
/* As ctkn_gate_next() without taking the record (its state unchanged). */
bool ctkn_gate_peek(const ctkn_gate *g, int32_t p, struct ctkn_gate_out *o);
/* How many records of p are held back, and the offset of the first
 * (-1 when none). */
size_t ctkn_gate_held(const ctkn_gate *g, int32_t p, int64_t *first);
/* Drop what is held back on p and the judgments about it: the records will
 * be fed again. */
void ctkn_gate_reset(ctkn_gate *g, int32_t p);
/* The signed time of p's newest released checkpoint (µs; 0 when none). */
int64_t ctkn_gate_checkpoint_at(const ctkn_gate *g, int32_t p);

/* The released state of partition p as bytes (*out malloc'd, caller frees)
 * and back; a state saved before positional keyrings loads as one with
 * none yet. Errors: CTKN_ENOMEM; load: CTKN_EINVAL (not a saved state). */
int ctkn_gate_save(const ctkn_gate *g, int32_t p, uint8_t **out, size_t *len,
                   struct ctkn_err *err);
int ctkn_gate_load(ctkn_gate *g, int32_t p, const void *buf, size_t len,
                   struct ctkn_err *err);
/* Forget partition p's state (its positional keyring too), as a gate that
 * has read nothing of it. */
void ctkn_gate_clear(ctkn_gate *g, int32_t p);

/* Partition p's state kept with a projection (store.h's trust table,
 * under prefix, at most 8 bytes, and the partition), inside txn: loaded
 * (none kept: cleared) and saved. Errors: the store's; load: CTKN_EINVAL
 * (not a saved state). */
struct ctkn_store_txn;
int ctkn_gate_load_stored(ctkn_gate *g, struct ctkn_store_txn *txn,
                          const char *prefix, int32_t p, struct ctkn_err *err);
int ctkn_gate_save_stored(const ctkn_gate *g, struct ctkn_store_txn *txn,
                          const char *prefix, int32_t p, struct ctkn_err *err);
/* ctkn_gate_checkpoint_at() of the state kept for p (0: none). */
int ctkn_gate_stored_checkpoint_at(struct ctkn_store_txn *txn,
                                   const char *prefix, int32_t p, int64_t *at,
                                   struct ctkn_err *err);
/* ctkn_gate_checkpoint_at() of a saved state; 0 when it is not one. */
int64_t ctkn_gate_saved_checkpoint_at(const void *buf, size_t len);

/* ---- the keyring on the log ------------------------------------------------
 */

/*
 * The keyring lives on the settings topic (settings.h) as root-signed
 * records of type ctkn.keyring, whose versions only increase. Readers
 * learn the root's public key from a file (--trust-root), never from the
 * topic.
 */

/* Verify a ctkn.keyring record's value with root and decode it into *kr
 * (ctkn_keyring_init()ed; caller frees). Errors: CTKN_EINVAL (not signed by
 * the root, or breaks keyring.h's rules), CTKN_EDECODE, CTKN_ENOMEM. */
int ctkn_trust_keyring_open(const void *val, size_t len,
                            const ctkn_pubkey *root, struct ctkn_keyring *kr,
                            struct ctkn_err *err);

/*
 * Read the settings topic (cfg names it: settings.h, ctkn_settings_topic())
 * from its start to its end
 * and keep the newest keyring signed by root (records not signed by it
 * are skipped). *kr (ctkn_keyring_init()ed) is left at version 0 when
 * there is none; *raw (may be NULL) receives the newest record's value
 * (malloc'd; caller frees) for ctkn_trust_keyring_open() later. Errors:
 * the log's (CTKN_ENOTFOUND: no settings topic), CTKN_ENOMEM.
 */
int ctkn_trust_keyring_fetch(const struct ctkn_log_config *cfg,
                             const ctkn_pubkey *root, struct ctkn_keyring *kr,
                             uint8_t **raw, size_t *rawlen,
                             struct ctkn_err *err);

/* A ctkn.keyring record's value: kr signed by root. On success *out is a
 * new buffer of *len bytes: caller frees. Errors: CTKN_EINVAL (kr breaks
 * the rules), CTKN_ENOMEM. */
int ctkn_trust_keyring_value(const ctkn_seckey *root,
                             const struct ctkn_keyring *kr, uint8_t **out,
                             size_t *len, struct ctkn_err *err);

/* Sign kr with root and append it to the settings topic cfg names.
 * Errors: CTKN_EINVAL (kr breaks the rules), the log's. */
int ctkn_trust_keyring_append(const struct ctkn_log_config *cfg,
                              const ctkn_seckey *root,
                              const struct ctkn_keyring *kr,
                              struct ctkn_err *err);

/* Sign kr with root and append it to every partition of the event topic
 * cfg names (a positional keyring: the gate judges each partition's
 * records after it by it); *placed receives the number of partitions
 * (0 when the topic does not exist yet). Errors: CTKN_EINVAL (kr breaks
 * the rules), CTKN_ENOMEM, the log's (some partitions may then have it:
 * placing it again is harmless, the same version changes nothing). */
int ctkn_trust_keyring_place(const struct ctkn_log_config *cfg,
                             const ctkn_seckey *root,
                             const struct ctkn_keyring *kr, int32_t *placed,
                             struct ctkn_err *err);

/* Read the settings topic cfg names from its start to its end, handing
 * each record to cb (a non-zero return stops: CTKN_ENOMEM). Errors: the
 * log's, CTKN_ETIMEOUT, CTKN_ENOMEM. */
int ctkn_trust_settings_read(const struct ctkn_log_config *cfg,
                             int (*cb)(void *, const struct ctkn_log_msg *),
                             void *arg, struct ctkn_err *err);

/* ---- adoption: a prefix written before signing ------------------------------
 */

/*
 * `ctkn trust adopt` vouches, with the root key, for the records a topic
 * held before its writers signed: per partition, the offset N it ends at
 * and a hash of every record below N (offset, key, value, every header),
 * computed as a stream so memory stays bounded. It lives on the settings
 * topic as a root-signed ctkn.adopt record. A reader that has hashed a
 * partition's prefix itself and found the adoption's hash applies its
 * unsigned records below N (ctkn_gate_adopt()); an unsigned record at or
 * after N is quarantined as ever. Several adoptions: per partition, the
 * one that reaches furthest.
 */

/* The prefix hash of a partition, record by record in offset order:
 * begin (NULL when out of memory), add..., end (which frees h). */
ctkn_sha256 *ctkn_trust_adopt_begin(const uint8_t log_id[CTKN_LOG_ID_LEN],
                                    int32_t partition);
void ctkn_trust_adopt_add(ctkn_sha256 *h, const struct ctkn_log_msg *m);
void ctkn_trust_adopt_end(ctkn_sha256 *h, uint8_t out[CTKN_CHAIN_LEN]);

/* The hash of partition p's records below end on the topic cfg names,
 * read from offset 0. Errors: CTKN_EINVAL (field "partition": its log
 * starts past 0, or ends before end), the log's, CTKN_ETIMEOUT,
 * CTKN_ENOMEM. */
int ctkn_trust_adopt_hash(const struct ctkn_log_config *cfg,
                          const uint8_t log_id[CTKN_LOG_ID_LEN], int32_t p,
                          int64_t end, uint8_t out[CTKN_CHAIN_LEN],
                          struct ctkn_err *err);
/* An adoption of every partition of the topic cfg names, each up to its
 * end now, under kr's log ID, into *a (caller frees with
 * ctkn_adoption_free()). Errors: those of ctkn_trust_adopt_hash(). */
int ctkn_trust_adopt_compute(const struct ctkn_log_config *cfg,
                             const struct ctkn_keyring *kr,
                             struct ctkn_adoption *a, struct ctkn_err *err);
/* A ctkn.adopt record's value: a signed by root (*out malloc'd, caller
 * frees); and one opened: verified with root and decoded into *a (caller
 * frees). Errors: CTKN_EINVAL (field "adoption": not signed by the root),
 * CTKN_EDECODE, CTKN_ENOMEM. */
int ctkn_trust_adoption_value(const ctkn_seckey *root,
                              const struct ctkn_adoption *a, uint8_t **out,
                              size_t *len, struct ctkn_err *err);
int ctkn_trust_adoption_open(const void *val, size_t len,
                             const ctkn_pubkey *root, struct ctkn_adoption *a,
                             struct ctkn_err *err);
/* Append a, signed by root, to the settings topic cfg names. Errors: the
 * log's, CTKN_ENOMEM. */
int ctkn_trust_adoption_append(const struct ctkn_log_config *cfg,
                               const ctkn_seckey *root,
                               const struct ctkn_adoption *a,
                               struct ctkn_err *err);
/* Every adoption root signed for log_id on the settings topic cfg names,
 * merged into *a (per partition the furthest; nparts 0 when none; caller
 * frees). Errors: those of ctkn_trust_settings_read(). */
int ctkn_trust_adoption_fetch(const struct ctkn_log_config *cfg,
                              const ctkn_pubkey *root,
                              const uint8_t log_id[CTKN_LOG_ID_LEN],
                              struct ctkn_adoption *a, struct ctkn_err *err);
/* Merge b into a: per partition, the one that reaches further. Errors:
 * CTKN_ENOMEM. */
int ctkn_adoption_merge(struct ctkn_adoption *a, const struct ctkn_adoption *b,
                        struct ctkn_err *err);

#endif /* CTKN_TRUST_H */
