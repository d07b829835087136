/*
 * ledger.h - one command end to end: validate, catch up, plan, append,
 * wait for the projection, report.
 *
 * How a command runs (read-your-writes):
 *   1. ctkn_command_check();
 *   2. bring the projection up to the log's end offsets as they stand now,
 *      so a stale projection never causes a spurious conflict;
 *   3. for a create with an idempotency key, answer from the idempotency
 *      index when the key is known (same request: the first token; another
 *      request: CTKN_ECONFLICT);
 *   4. ctkn_plan() against the projection: a no-op returns the state;
 *   5. produce the event (idempotent producer, acks=all, key = token ID,
 *      to the token's pinned partition) and wait for the delivery report;
 *   6. advance the projection past that offset;
 *   7. applied: return the new state. Rejected (a concurrent writer won):
 *      re-plan once; if the goal is already met, return the state,
 *      otherwise CTKN_ECONFLICT.
 *
 * Errors:   the command's own (CTKN_EINVAL, CTKN_EBADREQ, CTKN_ENOTFOUND,
 *           CTKN_ECONFLICT) and infrastructure ones (CTKN_EKAFKA,
 *           CTKN_ETIMEOUT, CTKN_ESTORE, CTKN_EMAPFULL: the event is not
 *           acknowledged; it may still have reached the log when its
 *           delivery report was lost). CTKN_EAPPENDED: the event was
 *           appended and acknowledged, but the projection has not applied
 *           it (the message says why: a full map, a paused partition, a
 *           timeout); it is durable. After either, a retry with the same
 *           idempotency key is always safe: it catches up first, so it
 *           answers the first token and appends nothing.
 */
#ifndef CTKN_LEDGER_H
#define CTKN_LEDGER_H

#include <stdint.h>
#include <stdio.h>

#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/log.h"
#include "ctkn/store.h"

typedef struct ctkn_ledger ctkn_ledger;

struct ctkn_outcome {
  struct ctkn_record record; /* the state after the command */
  bool appended;             /* false: no-op or idempotent replay */
  /* Kafka acknowledged the command's event (whatever the projection then
   * made of it), or the answer needed none (a no-op, a replay). false:
   * nothing of the command is known to be in the log. */
  bool acknowledged;
  int32_t partition; /* where the event landed, when acknowledged */
  int64_t offset;
};

/*
 * Open a producer and a projector on the log. Keeps st and cfg, which must
 * outlive the ledger. On success *out is a new ledger: caller owns it;
 * release with ctkn_ledger_close(). On failure *out is NULL.
 * Errors: CTKN_ENOTFOUND (no topic: run ctkn init), CTKN_EKAFKA and
 * CTKN_ETIMEOUT (the broker), CTKN_EUSAGE (the configuration),
 * CTKN_ECONFLICT (st is a frozen replay), CTKN_ENOMEM.
 */
int ctkn_ledger_open(ctkn_ledger **out, ctkn_store *st,
                     const struct ctkn_log_config *cfg, ctkn_env env,
                     struct ctkn_err *err);
/* Close and free (a signing ledger first closes its writer instance).
 * NULL is a no-op. */
void ctkn_ledger_close(ctkn_ledger *l);
/*
 * Judge by the trust root whose public key is root (its projector reads
 * the keyring and gates every record: trust.h) and, with key (may be
 * NULL; borrowed for the ledger's life), sign every append from now on:
 * chained, with a checkpoint in the same produce batch. The keyring must
 * hold the key, active, for client_token.* records. Errors: CTKN_EINVAL
 * (field "writer_key"; a bad root key), the log's (reading the keyring),
 * the store's.
 */
int ctkn_ledger_set_trust(ctkn_ledger *l, const uint8_t root[CTKN_SIGN_PUB_LEN],
                          const ctkn_seckey *key, struct ctkn_err *err);
/* A signing ledger's heartbeat: a checkpoint on every partition, so
 * readers know the log's tail is not withheld (trust.h, staleness). A
 * no-op without a writer key. Errors: the log's. */
int ctkn_ledger_heartbeat(ctkn_ledger *l, struct ctkn_err *err);

/*
 * Wait until the projection has applied (or judged) every partition p
 * below n up to targets[p] (next offsets, 0: nothing to wait for); a
 * partition paused behind a newer schema counts as reached. Returns
 * CTKN_OK, or what stopped the wait (CTKN_ETIMEOUT: no progress within
 * the log's timeout; the projection's own failure) detailed in err.
 */
typedef int (*ctkn_ledger_wait_fn)(void *arg, const int64_t *targets, int32_t n,
                                   struct ctkn_err *err);
/*
 * Let a follower in the same process (ctkn serve's) apply what the ledger
 * appends: every catch-up becomes a wait with fn (for the batch's own
 * events, or for the log's end offsets, asked without reading the log),
 * so that each event is fetched and judged once, by the follower. The
 * ledger's projector then reads nothing. Before the first command.
 */
void ctkn_ledger_follow_with(ctkn_ledger *l, ctkn_ledger_wait_fn fn, void *arg);
/*
 * ctkn_ledger_open() then ctkn_ledger_set_trust() (root may be NULL: no
 * trust), for a process that starts to run commands at once: with a key,
 * the producer, the projector's consumer (assigned) and the keyring read
 * run at the same time. Ownership and errors as the two; when several
 * fail, the producer's error wins, then the consumer's.
 */
int ctkn_ledger_open_trusted(ctkn_ledger **out, ctkn_store *st,
                             const struct ctkn_log_config *cfg, ctkn_env env,
                             const uint8_t root[CTKN_SIGN_PUB_LEN],
                             const ctkn_seckey *key, struct ctkn_err *err);

/*
 * The next batch the ledger appends is its writer instance's last: its
 * checkpoints close the instance (trust.h, CTKN_SIGN_CLOSING), so
 * ctkn_ledger_close() has no closing checkpoint left to send, one produce
 * round trip less for a process that runs one command. A batch after it
 * opens a new instance. No effect without a writer key.
 */
void ctkn_ledger_last_batch(ctkn_ledger *l);

/*
 * Run one command; see the steps above. Borrows cmd for the call; *out
 * receives the state after it. Errors: those in this header's top
 * comment; CTKN_EAPPENDED also when the token's partition is paused
 * behind a newer schema version.
 */
int ctkn_ledger_execute(ctkn_ledger *l, const struct ctkn_command *cmd,
                        struct ctkn_outcome *out, struct ctkn_err *err);

/*
 * Run n commands with their events in flight together: one catch-up, every
 * command planned against the same projection (so commands of one batch
 * are concurrent with each other: two changes to one token conflict as two
 * writers would), one batch append, one wait for the projection. rcs[i],
 * outs[i] and errs[i] receive each command's result as ctkn_ledger_execute
 * would return it; outs[i].acknowledged says whether Kafka acknowledged
 * it. Creates with one idempotency key in one batch append one event,
 * which answers for each (a different request with the key: conflict).
 * Borrows cmds for the call. Returns CTKN_OK, or the failure that stopped
 * the whole batch: before the append every command still standing
 * carries it; after, each acknowledged event the projection did not
 * reach is CTKN_EAPPENDED naming it, while those it did reach are judged
 * as usual. A command whose rcs[i] is CTKN_OK was acknowledged and
 * judged, whatever the return.
 */
int ctkn_ledger_execute_batch(ctkn_ledger *l, const struct ctkn_command *cmds,
                              size_t n, struct ctkn_outcome *outs, int *rcs,
                              struct ctkn_err *errs);

/*
 * Pipelined batches. A batch whose commands read nothing from the
 * projection (creates without an idempotency key: new IDs, new token
 * strings) needs no catch-up before planning, so its append need not
 * wait for the previous batch's events to be judged:
 *
 *   ctkn_ledger_submit(batch k)   plan, sign, start the append
 *   ctkn_ledger_settle(batch k)   on another thread, while batch k+1 is
 *                                 submitted: wait for Kafka's acks of
 *                                 k's events, catch up past them, judge
 *                                 each, fill its outcome
 *
 * Several batches may be submitted before the first is settled: their
 * produce requests are in flight together, each signed batch chained
 * onto the one before (trust.h). When batch k is not acknowledged, the
 * next batch opens a new writer instance; a record of a batch submitted
 * after k on the old instance that lands after one of k's records missing
 * from the log cannot be verified by any reader: its command answers
 * CTKN_EAPPENDED (quarantined). Heartbeats and ctkn_ledger_close() use
 * the projector: call them with every submitted batch settled.
 *
 * ctkn_ledger_pipelines() says whether a batch qualifies; any other
 * batch runs through ctkn_ledger_execute_batch() once every submitted
 * batch is settled (the caller's job: submit, settle and execute_batch
 * share the ledger's projector). Submits run on one thread at a time,
 * settles on one thread at a time, in the order submitted. The guarantees
 * are execute_batch's: an answer only once the projection judged its
 * event; first in the log wins.
 */
bool ctkn_ledger_pipelines(const ctkn_ledger *l,
                           const struct ctkn_command *cmds, size_t n);
struct ctkn_ledger_pending;
/* Plan and start the append, as ctkn_ledger_execute_batch() but for the
 * waits (for the acknowledgements, then the projection).
 * cmds, outs, rcs and errs must outlive the settle. *out (caller owns;
 * release with ctkn_ledger_settle()) is NULL only when out of memory
 * (then every rcs[i] is CTKN_ENOMEM). Returns CTKN_OK or CTKN_ENOMEM. */
int ctkn_ledger_submit(ctkn_ledger *l, const struct ctkn_command *cmds,
                       size_t n, struct ctkn_outcome *outs, int *rcs,
                       struct ctkn_err *errs, struct ctkn_ledger_pending **out);
/* Wait for the projection, judge and fill the outcomes of a submitted
 * batch (takes ownership of p; NULL is a no-op). Returns as
 * ctkn_ledger_execute_batch(). */
int ctkn_ledger_settle(ctkn_ledger *l, struct ctkn_ledger_pending *p);

/*
 * Answer POST /client-tokens bodies read from in, one per line, as `ctkn
 * create --batch` does: each line is parsed
 * (ctkn_json_parse_create_line(): a body with an optional
 * "idempotency_key"), and the parsed ones run in chunks of up to 512
 * through ctkn_ledger_execute_batch(), their events in flight together;
 * a chunk of creates without a key is submitted while the one before it
 * is settled on a second thread (ctkn_ledger_submit()).
 * For each input line, in input order, one line goes to out
 * (ctkn_json_line_answer()): the data document or the error envelope,
 * each with a fresh request ID and "acknowledged"; out is flushed after
 * each chunk. *worst receives the worst ctkn_error_exit() of the lines:
 * 3 (not acknowledged: retry) beats 4 (acknowledged, not yet applied)
 * beats 1 beats 0; 0 for none.
 * Borrows in and out for the call. A FILE with a descriptor is read
 * through it (so a batch can end where the input pauses): nothing may
 * have been read through the FILE before the call.
 * Errors: CTKN_ENOMEM (nothing read), CTKN_EIO (reading in failed; the
 * lines before are answered and counted in *worst). A line's own failure
 * is its answer, not the call's.
 */
int ctkn_ledger_create_lines(ctkn_ledger *l, FILE *in, FILE *out, int *worst,
                             struct ctkn_err *err);

#endif /* CTKN_LEDGER_H */
