/*
 * follow_int.h - one follower of a side topic (the settings topic, the
 * notifications topic) for the modules that project them. Not installed.
 *
 * A follower is a consumer assigned every partition of its topic at the
 * offsets its side's store says, polled in batches that the side projects
 * in one transaction each; with trust (ctkn__follow_set_trust()) a gate
 * judges each batch first (struct ctkn__judged) and partitions with
 * records held back are read again from the first of them. A record of a
 * newer schema (the side's projection returns CTKN_EFORMAT) stops the
 * follower until an upgrade.
 *
 * Lifetime: ctkn__follow_open() -> poll / catch_up -> ctkn__follow_close().
 * Errors:   0 or negative CTKN_E*; *err gets the detail.
 * Not here: what a record does to the store (the side's project()).
 */
#ifndef CTKN_FOLLOW_INT_H
#define CTKN_FOLLOW_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/log.h"
#include "ctkn/store.h"
#include "ctkn/trust.h"
#include "internal.h"

#define CTKN__FOLLOW_MAX_PARTS 64 /* partitions a gate judges, at most */

/* A batch through the gate: what it made of each record. The side names
 * the verdicts v[] holds; next[] and held[] are reset before each batch. */
struct ctkn__judged {
  ctkn_gate *gate;
  uint8_t *v;                           /* per record */
  char (*why)[CTKN_GATE_REASON];        /* quarantined: the reason */
  int64_t next[CTKN__FOLLOW_MAX_PARTS]; /* fed up to; -1 untouched */
  int64_t held[CTKN__FOLLOW_MAX_PARTS]; /* first held back; -1 none */
};

/* What a follower follows. Static data; the follower borrows it. */
struct ctkn__follow_side {
  const char *kind;    /* "settings": in messages ("the %s topic") */
  const char *diag;    /* the diag component */
  size_t batch;        /* records a poll, at most */
  int32_t max_parts;   /* partitions the topic may have, at most */
  int keyring_verdict; /* v[] value that has the keyring read again
                          once the batch is in; -1: none */
  /* The side topic's name for the event topic's. */
  int (*topic)(const char *topic, char *out, size_t outsz,
               struct ctkn_err *err);
  /* The offset partition p is projected up to. */
  int64_t (*offset)(ctkn_store_txn *txn, int32_t p);
  /* The offset to read partition p from on (re)assignment; NULL: offset. */
  int64_t (*start)(ctkn_store_txn *txn, int32_t p);
  /* Project msgs[0..n) in one transaction; j NULL: not judged. */
  int (*project)(ctkn_store *st, const struct ctkn_log_msg *msgs, size_t n,
                 struct ctkn__judged *j, struct ctkn_err *err);
};

typedef struct ctkn__follower ctkn__follower;

/* On success *out is a new follower: caller owns it, release with
 * ctkn__follow_close(); it borrows st and side until then and copies cfg
 * (its overrides are borrowed). On failure *out is NULL. */
int ctkn__follow_open(ctkn__follower **out,
                      const struct ctkn__follow_side *side, ctkn_store *st,
                      const struct ctkn_log_config *cfg, struct ctkn_err *err);

/* Close and free. NULL is a no-op. */
void ctkn__follow_close(ctkn__follower *f);

/* Judge every batch from here on by kr (borrowed until close); refresh,
 * when not NULL, reads kr again (a record names an unknown writer key, or
 * the side's keyring verdict passed). */
int ctkn__follow_set_trust(ctkn__follower *f, const struct ctkn_keyring *kr,
                           int (*refresh)(void *arg, struct ctkn_err *err),
                           void *arg, struct ctkn_err *err);

/* Poll once and project what came; *applied: records polled. */
int ctkn__follow_poll(ctkn__follower *f, int timeout_ms, size_t *applied,
                      struct ctkn_err *err);

/* The consumer; NULL while stopped. Valid until close. */
ctkn_consumer *ctkn__follow_consumer(ctkn__follower *f);

/* The partitions the consumer is assigned (the topic's, as last seen). */
int32_t ctkn__follow_partitions(const ctkn__follower *f);

/* Poll until the projection reaches the topic's end as it is now. */
int ctkn__follow_catch_up(ctkn__follower *f, struct ctkn_err *err);

#endif /* CTKN_FOLLOW_INT_H */
