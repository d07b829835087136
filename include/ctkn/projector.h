/*
 * projector.h - the log -> apply -> store loop, exactly once in effect.
 *
 * The projector assigns every partition of the topic at the next offsets
 * stored in LMDB, decodes each record, checks it, applies it, and commits
 * the resulting state together with the partitions' next offsets in one
 * LMDB write transaction per batch. Because the offsets travel with the
 * state, a crash at any point loses nothing and applies nothing twice; any
 * number of processes may advance the same projection (LMDB serialises
 * writers, and a writer skips records below the stored offset).
 *
 * What happens to each record:
 *   - schema_version newer than CTKN_SCHEMA_VERSION: its partition pauses
 *     (not quarantined: skipping would make replicas diverge);
 *   - missing headers, undecodable, ctkn_event_check() fails, key or type
 *     header disagree with the payload: quarantined with the reason;
 *   - ctkn_apply() rejects it: recorded as rejected;
 *   - otherwise applied: record, history, token index, idempotency key.
 *
 * Lifetime: ctkn_projector_open() -> catch_up / follow -> close.
 * Errors:   CTKN_EKAFKA / CTKN_ETIMEOUT from the log, CTKN_ESTORE from
 *           LMDB, CTKN_ECONFLICT when the stored offsets do not fit the
 *           log (a topic deleted and re-created under the same name) or
 *           the store is a frozen replay.
 * Thread:   one thread drives a projector.
 */
#ifndef CTKN_PROJECTOR_H
#define CTKN_PROJECTOR_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/keyring.h"
#include "ctkn/log.h"
#include "ctkn/store.h"
#include "ctkn/token.h"

struct ctkn_projector_stats {
  uint64_t applied;
  uint64_t rejected;
  uint64_t quarantined;
  uint64_t skipped;     /* below the stored offset: another writer got there */
  uint64_t checkpoints; /* verified writer checkpoints (trust.h) */
  uint64_t batches;
  int32_t paused; /* partitions paused on a newer schema version */
  /* Side topics not followed now, and that should be (CTKN_PROJECTOR_*
   * bits): a failure being retried, or a record of a newer schema. What
   * their projections answer (API keys, delivery state) may be stale. */
  unsigned unfollowed;
};

#define CTKN_PROJECTOR_SETTINGS      1u /* the settings topic */
#define CTKN_PROJECTOR_NOTIFICATIONS 2u /* the notifications topic */

/*
 * Apply records to the store in one write transaction, as the projector
 * does with each batch it polls. Exposed so that tests, fuzzers and
 * benchmarks can drive the projection without a broker. paused[p] (may be
 * NULL; npaused entries) marks partitions that stop at a newer schema; a
 * record with such a schema sets it. stats accumulates (may be NULL).
 * Borrows msgs for the call. Errors: CTKN_ESTORE (nothing is committed),
 * CTKN_ENOMEM.
 */
int ctkn_projector_apply(ctkn_store *st, ctkn_env env,
                         const struct ctkn_log_msg *msgs, size_t n,
                         bool *paused, int32_t npaused,
                         struct ctkn_projector_stats *stats,
                         struct ctkn_err *err);

/*
 * Decode and check one record as the projector does (headers, payload,
 * ctkn_event_check(), key and type header against the payload), but not
 * its schema version: callers compare that with CTKN_SCHEMA_VERSION first.
 * Errors: CTKN_EDECODE, with the quarantine reason in err->msg.
 */
int ctkn_projector_decode(const struct ctkn_log_msg *m, struct ctkn_event *ev,
                          struct ctkn_err *err);

/*
 * Trust without a broker: what a projector reads from the settings topic
 * and the log, given by the caller instead (an archive's replay,
 * archive.h). keyring is the value of the settings topic's newest
 * ctkn.keyring record (NULL: none; one the root did not sign is skipped,
 * as on the topic); adoption (NULL: none) the root's adoptions, merged,
 * and adopt_hash what ctkn_trust_adopt_hash() computes on the log (trust.h:
 * the hash of partition p's records below end; an error fails the pass).
 */
struct ctkn_trust_source {
  const void *keyring;
  size_t keyring_len;
  const struct ctkn_adoption *adoption;
  int (*adopt_hash)(void *arg, const uint8_t log_id[CTKN_LOG_ID_LEN], int32_t p,
                    int64_t end, uint8_t out[CTKN_CHAIN_LEN],
                    struct ctkn_err *err);
  void *arg;
};

/*
 * A projection advanced by records the caller hands over, each judged by
 * the trust gate exactly as the projector judges the records it polls
 * (the same code: quarantined with the gate's reason, held back while
 * pending, the gate's state kept with the projection), the keyring and
 * adoptions learnt from src. Records must come in log order per
 * partition, as ctkn_projector_apply() takes them; held-back records are
 * kept and fed again before the next call's.
 * Lifetime: ctkn_projector_judged_open() -> apply... -> close. st, and what
 * src points to, are borrowed for its life.
 * Errors: open: CTKN_EINVAL (not a public key), the store's, CTKN_ENOMEM;
 * apply: as ctkn_projector_apply(), and src->adopt_hash's.
 */
typedef struct ctkn_projector_judged ctkn_projector_judged;
int ctkn_projector_judged_open(ctkn_projector_judged **out, ctkn_store *st,
                               ctkn_env env,
                               const uint8_t root[CTKN_SIGN_PUB_LEN],
                               const struct ctkn_trust_source *src,
                               struct ctkn_err *err);
int ctkn_projector_judged_apply(ctkn_projector_judged *j,
                                const struct ctkn_log_msg *msgs, size_t n,
                                bool *paused, int32_t npaused,
                                struct ctkn_projector_stats *stats,
                                struct ctkn_err *err);
/* Close and free; NULL is a no-op. */
void ctkn_projector_judged_close(ctkn_projector_judged *j);

typedef struct ctkn_projector ctkn_projector;

/* Keeps st and cfg, which must outlive the projector. On success *out is
 * a new projector: caller owns it; release with ctkn_projector_close().
 * On failure *out is NULL. Errors: CTKN_ECONFLICT (st is a frozen
 * replay), CTKN_ENOTFOUND (no topic), CTKN_EKAFKA, CTKN_ETIMEOUT,
 * CTKN_EUSAGE, CTKN_ENOMEM. */
int ctkn_projector_open(ctkn_projector **out, ctkn_store *st,
                        const struct ctkn_log_config *cfg, ctkn_env env,
                        struct ctkn_err *err);
/* Close and free. NULL is a no-op. */
void ctkn_projector_close(ctkn_projector *p);
/*
 * ctkn_projector_open(), ctkn_projector_set_trust() and
 * ctkn_projector_refresh_keyring() in one, with every partition assigned
 * at its stored offset as the first catch-up would: the consumer connects
 * and learns the topic's bounds on a second thread while this one reads
 * the keyring (a one-shot command's start-up). Nothing is judged before
 * the keyring is read. Ownership as ctkn_projector_open(). Errors: those
 * of the four, the consumer's first; CTKN_ECONFLICT also when the stored
 * offsets do not fit the log.
 */
int ctkn_projector_open_trusted(ctkn_projector **out, ctkn_store *st,
                                const struct ctkn_log_config *cfg, ctkn_env env,
                                const uint8_t root[CTKN_SIGN_PUB_LEN],
                                struct ctkn_err *err);

/*
 * Advance the projection until every partition has passed targets[p]
 * (next offsets; n entries), or, with targets NULL, the log's end offsets
 * as they stand when the call starts. Bounded by the config's timeout
 * while no progress is made. A partition paused at a newer schema counts
 * as done. Borrows targets for the call. Errors: CTKN_ETIMEOUT (no
 * progress), CTKN_ECONFLICT (the topic was re-created), CTKN_EKAFKA,
 * CTKN_ENOTFOUND, CTKN_ESTORE, CTKN_ENOMEM.
 */
int ctkn_projector_catch_up(ctkn_projector *p, const int64_t *targets,
                            int32_t n, struct ctkn_err *err);

/*
 * Follow the log until *stop becomes non-zero (a signal handler sets it),
 * then finish the current batch and return CTKN_OK. Picks up partitions
 * added later, and logs progress and lag (ctkn__diag) every few seconds.
 * Transient failures (CTKN_EKAFKA, CTKN_ETIMEOUT) are retried. Errors:
 * CTKN_ECONFLICT (the topic was re-created), CTKN_ESTORE, CTKN_ENOMEM.
 */
int ctkn_projector_follow(ctkn_projector *p, volatile sig_atomic_t *stop,
                          struct ctkn_err *err);

/*
 * Build the projection exactly as it stood at as_of_us: for each
 * partition, apply the log prefix before the first record whose timestamp
 * is after that instant (Kafka's offsets-for-times), nothing past it, then
 * freeze the store (ctkn_store_freeze()). Meant for a new, empty store.
 * Errors: as ctkn_projector_catch_up(); CTKN_EKAFKA when a partition
 * stops before the cut (a newer schema version).
 */
int ctkn_projector_replay(ctkn_projector *p, int64_t as_of_us,
                          struct ctkn_err *err);

/*
 * Rebuild the projection in dir from the whole log, beside the live one
 * (in dir.rebuild, created afresh), then swap it in atomically: LMDB's
 * writer lock is held on the live projection while the new one catches up
 * to it and the directories are exchanged, so readers see one whole
 * projection or the other, never a half-built one. A follower running on
 * dir notices the swap and goes on with the new projection
 * (ctkn_store_refresh()). The old one is kept in dir.previous until the
 * next rebuild. A live projection of an unknown store format is rebuilt
 * too (stop its old-build writers first): the way through a format change.
 * With trust_root (the root's public key; NULL: none) every record passes
 * the trust gate as in a fresh follow, judged by the keyring as it stands
 * now: a key revoked since loses what it wrote (the retroactive revoke),
 * and adopted prefixes are checked again.
 * stats (caller's) receives the totals. Errors: CTKN_ENOTFOUND (dir
 * holds no projection), CTKN_ECONFLICT (another rebuild runs, or dir is
 * bound to another topic or is a frozen replay), and those of
 * ctkn_projector_catch_up().
 */
int ctkn_projector_rebuild(const char *dir, const struct ctkn_log_config *cfg,
                           ctkn_env env, size_t map_size,
                           const uint8_t *trust_root,
                           struct ctkn_projector_stats *stats,
                           struct ctkn_err *err);

/*
 * What a follower tells the process it runs in (`ctkn serve`): every
 * callback is optional and runs on the projector's thread, so it must be
 * quick and must not call back into the projector.
 */
struct ctkn_projector_hooks {
  /* After assignment and after each applied batch: the next offset per
   * partition as this projector consumed it (never ahead of the store),
   * and whether it has paused the partition (a newer schema) itself. */
  void (*advanced)(void *arg, const int64_t *next, const bool *paused,
                   int32_t n);
  /* Every status_ms: where the log and the projection stand, and the
   * totals. With this hook set, follow prints no progress line. */
  void (*status)(void *arg, const struct ctkn_partition_status *s, int32_t n,
                 const struct ctkn_projector_stats *stats);
  void *arg;
  int status_ms; /* 0: every 5 s */
  /* The longest wait for a record while following, on the event, settings
   * and notifications topics at once; 0: 200 ms. */
  int idle_ms;
};

/* Install hooks (copied); NULL removes them. */
/*
 * Judge every record from now on by the trust root whose public key is
 * root (trust.h): the keyring comes from the settings topic and is kept
 * with the projection; records pass the gate before they are applied.
 * Errors: CTKN_EINVAL (not a public key), CTKN_ESTORE, CTKN_ENOMEM.
 */
int ctkn_projector_set_trust(ctkn_projector *p,
                             const uint8_t root[CTKN_SIGN_PUB_LEN],
                             struct ctkn_err *err);
/* Have settings follower f (settings.h) judge by this projector's keyring,
 * read again as records need (no-op without trust). f must not outlive
 * p. Errors: CTKN_ENOMEM. */
struct ctkn_settings_follower;
int ctkn_projector_trust_settings(ctkn_projector *p,
                                  struct ctkn_settings_follower *f,
                                  struct ctkn_err *err);
/* Catch the projection of the notifications topic (delivery.h) up to its
 * end as it is now, judged by this projector's keyring. Errors: those of
 * ctkn_delivery_follower_open() and _catch_up(). */
int ctkn_projector_catch_up_deliveries(ctkn_projector *p, struct ctkn_err *err);
/* Read the keyring from the settings topic now (no-op without trust).
 * Errors: the log's and the store's. */
int ctkn_projector_refresh_keyring(ctkn_projector *p, struct ctkn_err *err);
/* The keyring judged by (version 0: none yet), or NULL when trust is off. */
const struct ctkn_keyring *ctkn_projector_keyring(const ctkn_projector *p);
/* The keyring version stored with the projection in st (0: none), the one
 * the next pass of any process sharing it judges by. Errors: the store's. */
int ctkn_projector_keyring_version(ctkn_store *st, uint64_t *version,
                                   struct ctkn_err *err);

void ctkn_projector_set_hooks(ctkn_projector *p,
                              const struct ctkn_projector_hooks *h);

/* The topic's partition count as of the last catch_up or follow. */
int32_t ctkn_projector_partitions(const ctkn_projector *p);

/* The topic's partition count (*n) and end offsets (*hi, n entries, the
 * caller's to free) as they stand, asked of the broker without reading
 * or assigning anything: for a process whose follower applies the log
 * (ctkn_ledger_follow_with()). Errors: CTKN_ECONFLICT (the stored offsets
 * lie outside the log, or its topic ID changed: the topic was deleted or
 * re-created), CTKN_EKAFKA (more partitions than a projection holds), the
 * log's. */
int ctkn_projector_log_ends(ctkn_projector *p, int64_t **hi, int32_t *n,
                            struct ctkn_err *err);

/*
 * Where the log and the projection stand, per partition: the log's start
 * and end offsets (asked of the broker) and the projection's next offset.
 * On success *out is a new array of *n entries: caller owns it; release
 * with free(). On failure *out is NULL and *n 0. Errors: CTKN_EKAFKA,
 * CTKN_ETIMEOUT, CTKN_ESTORE, CTKN_ENOMEM.
 */
int ctkn_projector_status(ctkn_projector *p, struct ctkn_partition_status **out,
                          int32_t *n, struct ctkn_err *err);

/* Totals so far. */
void ctkn_projector_stats(const ctkn_projector *p,
                          struct ctkn_projector_stats *out);

#endif /* CTKN_PROJECTOR_H */
