/*
 * events.h - Paddle's events API over the projection: GET /events (every
 * applied event as its webhook envelope, paged by event ID) and
 * GET /event-types (the event types a deployment can send, static).
 *
 * Reads only LMDB, in one read transaction per call, so every replica
 * answers alike once it has projected the same log. The events are those
 * of the event topic that the projector applied and those of the settings
 * topic that the settings projection applied (notification_setting.*,
 * api_key.*, not api_key.used), in one event-ID order: rejected and
 * quarantined records are never listed, nor are trust records.
 *
 * Errors:   CTKN_EINVAL for a parameter that breaks a rule (naming it);
 *           CTKN_EFORBIDDEN for an event_type the key cannot read;
 *           CTKN_ESTALE while a partition (or the settings topic) is
 *           paused; CTKN_ESTORE.
 * Not here: the HTTP routes (src/api/events.c), the index (store.h).
 */
#ifndef CTKN_EVENTS_H
#define CTKN_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "ctkn/error.h"
#include "ctkn/store.h"
#include "ctkn/token.h"

/* GET /events's parameters. */
struct ctkn_events_params {
  char after[CTKN_EVT_ID_LEN + 1]; /* "" = from the start */
  int per_page;                    /* 1..200 */
  bool desc;                       /* order_by id[DESC] */
  /* event_type: bit i for the i-th type GET /event-types lists; 0 for
   * every type. A type the log never holds (api_key.expiring) selects
   * nothing. */
  unsigned types;
  /* The read permissions (enum ctkn_perm) of the asking key: only the
   * events of the entities they cover are listed, and an event_type
   * naming another is CTKN_EFORBIDDEN. Every read by default. */
  unsigned readable;
  bool has_from, has_to;
  int64_t from_us; /* occurred_at >= from */
  int64_t to_us;   /* occurred_at < to */
};

/* per_page 50, id[ASC] (a log is read oldest first), every type, no
 * cursor, no time bounds. */
void ctkn_events_params_init(struct ctkn_events_params *p);

/*
 * Each setter parses one query parameter's value into p, leaving p as it
 * was on failure. Errors: CTKN_EINVAL naming the parameter:
 *   per_page  a positive integer (above 200 is capped);
 *   order_by  id[ASC] or id[DESC], the direction in any case;
 *   after     an event ID (^evt_[0-7][0-9a-hjkmnp-tv-z]{25}$);
 *   event_type a comma-separated list of names GET /event-types lists;
 *   from, to  RFC 3339 date-times.
 */
int ctkn_events_params_per_page(struct ctkn_events_params *p, const char *s,
                                struct ctkn_err *err);
int ctkn_events_params_order_by(struct ctkn_events_params *p, const char *s,
                                struct ctkn_err *err);
int ctkn_events_params_after(struct ctkn_events_params *p, const char *s,
                             struct ctkn_err *err);
int ctkn_events_params_types(struct ctkn_events_params *p, const char *s,
                             struct ctkn_err *err);
int ctkn_events_params_from(struct ctkn_events_params *p, const char *s,
                            struct ctkn_err *err);
int ctkn_events_params_to(struct ctkn_events_params *p, const char *s,
                          struct ctkn_err *err);

/*
 * One page of events, Paddle's list shape: {"data": [webhook envelopes],
 * "meta": {"request_id", "pagination": {"per_page", "next", "has_more",
 * "estimated_total"}}}. next is always the URL of the following page
 * (next_base, e.g. "https://host/events", then every parameter in force
 * and after = this page's last event ID; on an empty page the request's
 * own cursor). estimated_total is the number of events the projection
 * holds (an upper bound when filtered). Borrows its arguments for the
 * call; on success caller owns *json; release with free(). On failure
 * *json is NULL. Errors: CTKN_EFORBIDDEN (p->types names a type whose
 * entity p->readable cannot read), CTKN_ESTALE (a partition is paused: an event
 * may be behind it), CTKN_ENOTFOUND (no index yet: see
 * ctkn_store_events()), CTKN_ESTORE (also an event that does not decode),
 * CTKN_ENOMEM.
 */
int ctkn_events_list(ctkn_store *st, const struct ctkn_events_params *p,
                     const char *next_base, const char *request_id, char **json,
                     struct ctkn_err *err);

/*
 * {"data": [{"name", "description", "group", "available_versions"}],
 * "meta": {"request_id"}}: the event types of ctkn's entities
 * (client_token.*, notification_setting.*, api_key.*), from a table in
 * the binary. On success caller owns *json; release with free(). Errors:
 * CTKN_ENOMEM.
 */
int ctkn_event_types_json(const char *request_id, char **json,
                          struct ctkn_err *err);

#endif /* CTKN_EVENTS_H */
