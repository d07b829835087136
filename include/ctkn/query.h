/*
 * query.h - the read side: get, list, verify, history, digest, quarantine,
 * served from the LMDB projection alone (no Kafka).
 *
 * Each call opens one read transaction, so what it returns is one
 * consistent snapshot of the projection. Results are rendered as Paddle's
 * JSON shapes (codec.h), so the CLI and the HTTP API print the same bytes.
 *
 * Errors:   CTKN_ENOTFOUND for an unknown ID or token; CTKN_EINVAL for a
 *           list parameter that breaks a rule (naming it); CTKN_ESTORE.
 * Destinations (settings.h) and a notifier's delivery records (notify.h)
 * are read the same way, each call in one read transaction.
 *
 * Not here: writes (ledger.h).
 */
#ifndef CTKN_QUERY_H
#define CTKN_QUERY_H

#include <stdbool.h>
#include <stdio.h>

#include "ctkn/error.h"
#include "ctkn/notify.h"
#include "ctkn/settings.h"
#include "ctkn/store.h"
#include "ctkn/token.h"

#define CTKN_PER_PAGE_DEFAULT 50
#define CTKN_PER_PAGE_MAX     200

/* Paddle's list parameters and defaults. */
struct ctkn_list_params {
  char after[CTKN_ID_BUF]; /* "" = from the start */
  int per_page;            /* 1..200 */
  bool desc;               /* order_by id[DESC] */
  unsigned status_mask;    /* bit (1 << status) */
  /* Answer although a partition is paused (the answer's meta then says
   * so in "stale"); without it, CTKN_ESTALE. */
  bool stale_ok;
};

/* per_page 50, id[DESC], status active, no cursor. */
void ctkn_list_params_init(struct ctkn_list_params *p);
/* A positive integer; values above 200 are capped, not rejected.
 * Errors: CTKN_EINVAL (field "per_page"); p is then unchanged. */
int ctkn_list_params_per_page(struct ctkn_list_params *p, const char *s,
                              struct ctkn_err *err);
/* "id[ASC]" or "id[DESC]", the direction in any case ("id[asc]").
 * Errors: CTKN_EINVAL (field "order_by"). */
int ctkn_list_params_order_by(struct ctkn_list_params *p, const char *s,
                              struct ctkn_err *err);
/* Comma-separated statuses: "active", "revoked", "active,revoked".
 * Errors: CTKN_EINVAL (field "status"). */
int ctkn_list_params_status(struct ctkn_list_params *p, const char *s,
                            struct ctkn_err *err);
/* A client-side token ID. Errors: CTKN_EINVAL (field "after"). */
int ctkn_list_params_after(struct ctkn_list_params *p, const char *s,
                           struct ctkn_err *err);

/*
 * Failing closed (docs/architecture.md, "Trust"). A partition paused at a
 * record this build cannot apply, or stale (its newest writer checkpoint
 * older than the reader's --max-staleness), may hide a revoke. An answer
 * about a token on such a partition, "not found" included, is
 * CTKN_ESTALE; tokens on other partitions are answered. A token's
 * partitions are the one its record came from and, when the topic's
 * partition count is known, the one the partitioner gives its ID (the
 * record's next event goes there). A token string the index lacks has no
 * known partition: it fails closed while any partition is bad, as does a
 * list (unless stale_ok). The projection's own pauses (store.h) always
 * count; a caller adds what it knows (a server's staleness) in a guard.
 */
enum ctkn_part_state {
  CTKN_PART_OK = 0,
  CTKN_PART_PAUSED = 1, /* at a record of a newer schema */
  CTKN_PART_STALE = 2   /* no recent enough writer checkpoint */
};
struct ctkn_query_guard {
  int32_t nparts;          /* the topic's partitions; 0 when unknown */
  const uint8_t *state;    /* nparts enum ctkn_part_state values */
  int64_t max_staleness_s; /* for the message */
};

/*
 * In every function below, g (may be NULL: only the projection's pauses,
 * partition count unknown) says which partitions fail closed. On success *json
 * is a new string: caller owns it; release with free(). On failure *json is
 * NULL. Each borrows its arguments for the call.
 */

/* {"data": entity, "meta": ...}.
 * Errors: CTKN_ENOTFOUND (no such token), CTKN_ESTORE, CTKN_ENOMEM. */
int ctkn_query_get(ctkn_store *st, const struct ctkn_query_guard *g,
                   const char *id, const char *request_id, char **json,
                   struct ctkn_err *err);

/*
 * One page, Paddle's list shape. next_base is the URL that a "next" link
 * extends with the query string (e.g. "https://host/client-tokens"); NULL
 * renders next as a bare query string. count: estimate the total.
 * Errors: CTKN_ESTORE, CTKN_ENOMEM.
 */
int ctkn_query_list(ctkn_store *st, const struct ctkn_query_guard *g,
                    const struct ctkn_list_params *p, const char *next_base,
                    bool count, const char *request_id, char **json,
                    struct ctkn_err *err);

/* {"data": {"id", "token", "status", "environment"}, "meta": ...}.
 * *active tells whether the token may be used.
 * Errors: CTKN_EINVAL (field "token": not a token string), CTKN_ENOTFOUND,
 * CTKN_ESTORE, CTKN_ENOMEM. */
int ctkn_query_verify(ctkn_store *st, const struct ctkn_query_guard *g,
                      const char *token, const char *request_id, char **json,
                      bool *active, struct ctkn_err *err);

/* The token's events, oldest first, one webhook-style JSON line each,
 * written to out. Errors: CTKN_ENOTFOUND, CTKN_ESTORE (also for a history
 * entry that does not decode), CTKN_ENOMEM. */
int ctkn_query_history(ctkn_store *st, const char *id, FILE *out,
                       struct ctkn_err *err);

/* The same events as one answer: {"data": [events, oldest first],
 * "meta": {"request_id"}} (GET /client-tokens/{id}/history). A paused
 * partition fails it closed, as ctkn_query_get(). Caller owns *json;
 * release with free(). Errors: ctkn_query_history()'s, CTKN_ESTALE. */
int ctkn_query_history_json(ctkn_store *st, const struct ctkn_query_guard *g,
                            const char *id, const char *request_id, char **json,
                            struct ctkn_err *err);

/* {"data": {"sha256", "tokens", "offsets": [{"partition", "offset"}]}}
 * Errors: CTKN_ESTORE, CTKN_ENOMEM. */
int ctkn_query_digest(ctkn_store *st, char **json, struct ctkn_err *err);

/* Quarantined records, one JSON line each, written to out: partition,
 * offset, reason, key and value in base64. Errors: CTKN_ESTORE,
 * CTKN_ENOMEM. */
int ctkn_query_quarantine(ctkn_store *st, FILE *out, struct ctkn_err *err);

/* ---- destinations and notifications ------------------------------------ */

/* `ctkn notification list`'s filters. */
struct ctkn_ntf_list_params {
  char destination[CTKN_DEST_ID_BUF]; /* "" = every destination */
  unsigned status_mask;               /* bit (1 << status); 0 = every one */
};

/* Every destination, every status. */
void ctkn_ntf_list_params_init(struct ctkn_ntf_list_params *p);
/* A destination ID. Errors: CTKN_EINVAL (field "destination": not
 * ^ntfset_[0-7][0-9a-hjkmnp-tv-z]{25}$). */
int ctkn_ntf_list_params_destination(struct ctkn_ntf_list_params *p,
                                     const char *s, struct ctkn_err *err);
/* Comma-separated statuses: delivered, failed, not_attempted, needs_retry,
 * and pending (not_attempted or needs_retry). "" leaves every status.
 * Errors: CTKN_EINVAL (field "status", quoting the first unknown name);
 * *p is then unchanged. */
int ctkn_ntf_list_params_status(struct ctkn_ntf_list_params *p, const char *s,
                                struct ctkn_err *err);

/* {"data": [destinations], "meta": ...}: every live destination, in ID
 * order, never a secret. On success caller owns *json; release with
 * free(). Errors: CTKN_ESTORE, CTKN_ENOMEM. */
int ctkn_query_destinations(ctkn_store *st, const char *request_id, char **json,
                            struct ctkn_err *err);

/* {"data": destination, "meta": ...}, never its secret. On success caller
 * owns *json; release with free(). Errors: CTKN_ENOTFOUND (no such
 * destination, a removed one, or not a destination ID), CTKN_ESTORE,
 * CTKN_ENOMEM. */
int ctkn_query_destination(ctkn_store *st, const char *id,
                           const char *request_id, char **json,
                           struct ctkn_err *err);

/* The notifications p selects, in ID order, one JSON line each
 * (ctkn_json_notification(), with the webhook body as its payload, or
 * null when the event is no longer in the projection), written to out.
 * Borrows out for the call (as the two below do).
 * Errors: CTKN_ESTORE, CTKN_ENOMEM; lines already written stay. */
int ctkn_query_notifications(ctkn_store *st,
                             const struct ctkn_ntf_list_params *p, FILE *out,
                             struct ctkn_err *err);

/* One notification, as one such line. Errors: CTKN_EINVAL (not a
 * notification ID), CTKN_ENOTFOUND (not in this projection), CTKN_ESTORE,
 * CTKN_ENOMEM. */
int ctkn_query_notification(ctkn_store *st, const char *id, FILE *out,
                            struct ctkn_err *err);

/* A notification's attempts, oldest first, one JSON line each
 * (ctkn_json_attempt()). Errors: as ctkn_query_notification(). */
int ctkn_query_attempts(ctkn_store *st, const char *id, FILE *out,
                        struct ctkn_err *err);

#endif /* CTKN_QUERY_H */
