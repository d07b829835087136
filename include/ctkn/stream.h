/*
 * stream.h - event streams for other services: `ctkn tail`.
 *
 * Reads the topic and writes each event as one line of Paddle's webhook
 * JSON ({"event_id", "event_type", "occurred_at", "notification_id",
 * "data"}). Alone, a tail reads every partition from where it is told to
 * start; with a consumer group, the group's members share the partitions
 * and each batch's offsets are committed only after its lines are written
 * and flushed, so a line may be written twice (after a crash or a
 * rebalance) but never skipped: at least once.
 *
 * Records the projector would quarantine are reported (ctkn__diag) with
 * their coordinates and passed over. A record with a newer schema version
 * stops the tail (CTKN_EFORMAT) before anything past it is committed:
 * upgrade, then resume.
 *
 * Errors:   CTKN_EINVAL / CTKN_EUSAGE for options; CTKN_EKAFKA,
 *           CTKN_ETIMEOUT, CTKN_ENOTFOUND from the log; CTKN_EIO when the
 *           output cannot be written (a closed pipe).
 * Thread:   one thread drives a tail.
 */
#ifndef CTKN_STREAM_H
#define CTKN_STREAM_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/log.h"

struct ctkn_tail_opts {
  enum ctkn_log_start start;   /* default CTKN_START_END: new events only */
  int64_t from_ms;             /* CTKN_START_TIME: record timestamp >= this */
  const char *group;           /* NULL: read every partition, commit nothing */
  unsigned type_mask;          /* bit (1 << ctkn_event_type); 0: every type */
  bool exit_at_end;            /* stop at the log's end as it stood at the start
                                  (not with a group, whose share can change) */
  volatile sig_atomic_t *stop; /* set by a signal handler; may be NULL */
  /* The trust root's public key (trust.h), or NULL. With it, only records
   * that a verified checkpoint of their writer proves are written: the
   * tail reads from mid-log, so a writer's chain is anchored where a
   * checkpoint's produce batch starts (ctkn_gate_set_midstream()); what
   * fails is reported and passed over, and in a group the offsets
   * committed never pass a record still waiting for its checkpoint. */
  const uint8_t *trust_root;
};

struct ctkn_tail_stats {
  uint64_t written;  /* lines written */
  uint64_t filtered; /* events of other types */
  uint64_t poison;   /* records passed over */
};

/* Tail the topic into out until *stop, the end (exit_at_end), or an
 * error. Transient broker failures are retried while following. Borrows
 * cfg, opts and out for the call; stats (caller's) accumulates. Errors:
 * those in this header's top comment. */
int ctkn_tail(const struct ctkn_log_config *cfg,
              const struct ctkn_tail_opts *opts, FILE *out,
              struct ctkn_tail_stats *stats, struct ctkn_err *err);

#endif /* CTKN_STREAM_H */
