/*
 * events.c - GET /events and GET /event-types (events.h), answered on the
 * worker from this replica's projection, as token reads are.
 *
 * Permission: the read permission of each event's entity
 * (client_token.read, notification_setting.read, api_key.read). The route
 * takes a key holding any of them (auth.c) and lists only the events
 * those cover, so a page is the same for every key alike; an event_type
 * naming a type the key cannot read is 403 (events.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "ctkn/events.h"

/* Each event_type value (comma-separated, or repeated as Paddle's Go SDK
 * sends a list) adds to the filter. */
static int type_filter(const struct req *r, struct ctkn_events_params *p,
                       struct ctkn_err *err)
{
  unsigned types = 0;

  for (size_t i = 0; i < r->nquery; i++) {
    const char *v = r->query[i].value;
    if (strcmp(r->query[i].key, "event_type") != 0)
      continue;
    int rc = ctkn_events_params_types(p, v ? v : "", err);
    if (rc != CTKN_OK)
      return rc;
    types |= p->types;
  }
  p->types = types;
  return CTKN_OK;
}

/* Each query parameter into p, in the order the setters name. */
static int parse_params(const struct req *r, struct ctkn_events_params *p,
                        struct ctkn_err *err)
{
  static const struct {
    const char *name;
    int (*set)(struct ctkn_events_params *, const char *, struct ctkn_err *);
  } setters[] = {{"after", ctkn_events_params_after},
                 {"per_page", ctkn_events_params_per_page},
                 {"order_by", ctkn_events_params_order_by},
                 {"from", ctkn_events_params_from},
                 {"to", ctkn_events_params_to}};
  int rc = CTKN_OK;

  ctkn_events_params_init(p);
  for (size_t i = 0; rc == CTKN_OK && i < CTKN__ARRAY_LEN(setters); i++) {
    const char *v = ctkn__api_arg(r, setters[i].name);
    if (v != NULL)
      rc = setters[i].set(p, v, err);
  }
  return rc == CTKN_OK ? type_filter(r, p, err) : rc;
}

static void route_events(struct server *s, struct req *r)
{
  static const char *const allowed[] = {
      "after", "per_page", "order_by", "event_type", "from", "to", NULL};
  struct ctkn_events_params p;
  struct ctkn_err err = {0};
  char *json = NULL, *base;
  int rc;

  if (!ctkn__api_query_ok(r, allowed, "event_type"))
    return;
  if ((rc = parse_params(r, &p, &err)) != CTKN_OK) {
    ctkn__api_answer_err(r, &err);
    return;
  }
  p.readable = r->perms;
  if ((base = ctkn__api_base_with(s, "/events")) == NULL) {
    ctkn__api_answer_code(r, CTKN_ENOMEM, "out of memory");
    return;
  }
  rc = ctkn_events_list(s->st, &p, base, r->rid, &json, &err);
  free(base);
  ctkn__api_answer_query(r, rc, json, &err);
}

static void route_event_types(struct req *r)
{
  static const char *const none[] = {NULL};
  struct ctkn_err err = {0};
  char *json = NULL;
  int rc;

  if (!ctkn__api_query_ok(r, none, NULL))
    return;
  rc = ctkn_event_types_json(r->rid, &json, &err);
  ctkn__api_answer_query(r, rc, json, &err);
}

void ctkn__api_events_read(struct server *s, struct req *r)
{
  char why[256];

  if (r->route == R_EVENT_TYPES) {
    route_event_types(r);
    return;
  }
  /* A paused or stale partition may hide events: fail closed, as token
   * reads do. */
  if (ctkn__api_untrusted(s, why, sizeof(why))) {
    r->retry_after = 5;
    ctkn__api_answer_code(r, CTKN_ESTALE, "%s", why);
    return;
  }
  route_events(s, r);
}
