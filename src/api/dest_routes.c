/*
 * dest_routes.c - /notification-settings: reads from this replica's
 * projection (settings.h), writes parsed on the worker and run on the
 * settings thread.
 *
 * Notification-setting writes run on a thread of their own, one at a
 * time, not on the command thread. ctkn_settings_execute() opens Kafka
 * clients of its own (a settings follower, a producer and, for a create,
 * a consumer to read the event topic's end offsets) and waits for the
 * settings projection: some hundreds of milliseconds that would stall
 * every token write batched behind it. Setting writes are rare, so one
 * thread serialising them costs nothing, and running them apart keeps
 * token writes as fast as ever. They are not answered on the HTTP worker
 * either: the request is suspended like a token write, so a worker is
 * never parked on Kafka.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "ctkn/codec.h"
#include "ctkn/query.h"

/* ---- reads ------------------------------------------------------------ */

/* Whether id names a notification setting; otherwise r is answered. */
static bool dest_id_ok(struct req *r, const char *id)
{
  if (ctkn_id_valid("ntfset_", id))
    return true;
  ctkn__api_answer_field(r, "notification_setting_id", CTKN_ID_RULE("ntfset_"));
  return false;
}

/*
 * d's endpoint secret, unsealed into secret, when this replica shows it:
 * it holds the deployment key and was not started with
 * --redact-endpoint-secrets. NULL otherwise, and for a secret that does
 * not open with the key (sealed under another deployment's): the answer
 * then omits it, as a replica without the key does. Every route that
 * answers a notification setting needs notification_setting.read (write
 * implies it), the permission Paddle shows the secret to.
 */
static const char *shown_secret(const struct server *s,
                                const struct ctkn_destination *d,
                                char secret[CTKN_SECRET_BUF])
{
  struct ctkn_err err = {0};

  secret[0] = '\0';
  if (!s->have_key || s->cfg->redact_endpoint_secrets ||
      ctkn_destination_secret(d, s->key, secret, &err) != CTKN_OK)
    return NULL;
  return secret;
}

/* One notification setting from this replica's projection, with its
 * endpoint secret when shown_secret() says so. */
static void answer_dest(struct server *s, struct req *r, const char *id)
{
  struct ctkn_destination d;
  struct ctkn_err err = {0};
  ctkn_store_txn *txn;
  char *json = NULL, secret[CTKN_SECRET_BUF];
  int rc;

  if ((rc = ctkn_store_begin(s->st, false, &txn, &err)) == CTKN_OK) {
    rc = ctkn_settings_get(txn, id, false, &d, &err);
    ctkn_store_abort(txn);
  }
  if (rc == CTKN_ENOTFOUND)
    rc = ctkn__err(&err, CTKN_ENOTFOUND, "notification setting %.40s not found",
                   id);
  if (rc == CTKN_OK && (json = ctkn_json_destination(
                            &d, shown_secret(s, &d, secret), r->rid)) == NULL)
    rc = ctkn__err(&err, CTKN_ENOMEM, "out of memory");
  ctkn_wipe(secret, sizeof(secret));
  ctkn__api_answer_query(r, rc, json, &err);
}

/* Paddle's list parameters for notification settings. */
struct dest_query {
  struct ctkn_list_params p; /* per_page and order only */
  const char *after;         /* an ID, or NULL */
  const char *active;        /* "true", "false" or NULL */
  const char *traffic;       /* traffic_source, or NULL */
  ctkn_traffic want;         /* traffic_source's value, when not none */
  bool none;                 /* traffic_source=simulation: nothing matches */
};

/* Read and check the list's parameters; false when r was answered. */
static bool dest_query_parse(struct req *r, struct dest_query *q)
{
  static const char *const allowed[] = {"after",  "per_page",       "order_by",
                                        "active", "traffic_source", NULL};
  struct ctkn_err err = {0};
  const char *v;
  int rc = CTKN_OK;

  if (!ctkn__api_query_ok(r, allowed, NULL))
    return false;
  ctkn_list_params_init(&q->p);
  q->p.per_page = CTKN__API_DEST_PER_PAGE;
  q->after = ctkn__api_arg(r, "after");
  if (q->after != NULL && !ctkn_id_valid("ntfset_", q->after)) {
    ctkn__api_answer_field(
        r, "after",
        "must be a notification setting ID (" CTKN_ID_PATTERN("ntfset_") ")");
    return false;
  }
  if ((v = ctkn__api_arg(r, "per_page")) != NULL)
    rc = ctkn_list_params_per_page(&q->p, v, &err);
  if (rc == CTKN_OK && (v = ctkn__api_arg(r, "order_by")) != NULL)
    rc = ctkn_list_params_order_by(&q->p, v, &err);
  if (rc != CTKN_OK) {
    ctkn__api_answer_err(r, &err);
    return false;
  }
  q->active = ctkn__api_arg(r, "active");
  if (q->active != NULL && strcmp(q->active, "true") != 0 &&
      strcmp(q->active, "false") != 0) {
    ctkn__api_answer_field(r, "active", "must be true or false");
    return false;
  }
  q->traffic = ctkn__api_arg(r, "traffic_source");
  q->none = q->traffic != NULL && strcmp(q->traffic, "simulation") == 0;
  if (q->traffic != NULL && !q->none &&
      ctkn_traffic_parse(q->traffic, &q->want) != 0) {
    ctkn__api_answer_field(r, "traffic_source",
                           "must be platform, simulation or all");
    return false;
  }
  return true;
}

/* The next page's URL: base and every parameter in force, after=after
 * unless after is NULL (an empty first page). */
static char *dest_next_link(const char *base, const char *after,
                            const struct dest_query *q)
{
  struct ctkn__buf u = CTKN__BUF_INIT;

  if (ctkn__buf_printf(&u, "%s?%s%s%sorder_by=id%%5B%s%%5D&per_page=%d%s%s%s%s",
                       base, after ? "after=" : "", after ? after : "",
                       after ? "&" : "", q->p.desc ? "DESC" : "ASC",
                       q->p.per_page, q->active ? "&active=" : "",
                       q->active ? q->active : "",
                       q->traffic ? "&traffic_source=" : "",
                       q->traffic ? q->traffic : "") != CTKN_OK) {
    ctkn__buf_free(&u);
    return NULL;
  }
  return ctkn__buf_detach(&u);
}

/* Render the page of n destinations, each with its secret when
 * shown_secret() says so. */
static char *dest_page_json(struct server *s,
                            const struct ctkn_destination *out, size_t n,
                            const struct ctkn_pagination *page, const char *rid)
{
  char(*buf)[CTKN_SECRET_BUF] = calloc(n ? n : 1, sizeof(*buf));
  const char **secrets = calloc(n ? n : 1, sizeof(*secrets));
  char *json = NULL;

  if (buf != NULL && secrets != NULL) {
    for (size_t i = 0; i < n; i++)
      secrets[i] = shown_secret(s, &out[i], buf[i]);
    json = ctkn_json_destinations_page(out, secrets, n, page, rid);
  }
  if (buf != NULL)
    ctkn_wipe(buf, (n ? n : 1) * sizeof(*buf));
  free(buf);
  free(secrets);
  return json;
}

/* Cut the page from ds (n in ID order, filtered in place) into out, and
 * render it. */
static int dest_page(struct server *s, const struct dest_query *q,
                     struct ctkn_destination *ds, size_t n,
                     struct ctkn_destination *out, const char *rid, char **json,
                     struct ctkn_err *err)
{
  struct ctkn_pagination page = {.per_page = q->p.per_page};
  size_t kept = 0, taken = 0;
  char *next = NULL;

  for (size_t i = 0; !q->none && i < n; i++) {
    if ((q->active == NULL || ds[i].active == (q->active[0] == 't')) &&
        (q->traffic == NULL || ds[i].traffic == q->want))
      ds[kept++] = ds[i];
  }
  page.estimated_total = (int64_t)kept;
  for (size_t k = 0; k < kept; k++) {
    const struct ctkn_destination *d = &ds[q->p.desc ? kept - 1 - k : k];
    int cmp = q->after != NULL ? strcmp(d->id, q->after) : 0;
    if (q->after != NULL && (q->p.desc ? cmp >= 0 : cmp <= 0))
      continue;
    if (taken == (size_t)q->p.per_page) {
      page.has_more = true;
      break;
    }
    out[taken++] = *d;
  }
  /* Always a next, as Paddle's: after this page's last ID, or on an empty
   * page the request's own cursor (the same page again). */
  next = dest_next_link(s->dest_next_base,
                        taken > 0 ? out[taken - 1].id : q->after, q);
  if (next == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  page.next = next;
  *json = dest_page_json(s, out, taken, &page, rid);
  free(next);
  if (*json == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  return CTKN_OK;
}

/*
 * Paddle's list: after, per_page (default and most 200), order_by
 * (id[ASC] or id[DESC], default id[DESC]), active and traffic_source.
 * traffic_source matches the value each destination was given (platform
 * or all); ctkn has no simulated traffic, so =simulation matches none.
 * Destinations are few, so the page is cut from the whole list.
 */
static void route_dest_list(struct server *s, struct req *r)
{
  struct dest_query q;
  struct ctkn_destination *ds = NULL, *out = NULL;
  struct ctkn_err err = {0};
  ctkn_store_txn *txn;
  char *json = NULL;
  size_t n = 0;
  int rc;

  if (!dest_query_parse(r, &q))
    return;
  if ((rc = ctkn_store_begin(s->st, false, &txn, &err)) == CTKN_OK) {
    rc = ctkn_settings_list(txn, &ds, &n, &err);
    ctkn_store_abort(txn);
  }
  if (rc == CTKN_OK && (out = malloc((n ? n : 1) * sizeof(*out))) == NULL)
    rc = ctkn__err(&err, CTKN_ENOMEM, "out of memory");
  if (rc == CTKN_OK)
    rc = dest_page(s, &q, ds, n, out, r->rid, &json, &err);
  ctkn__api_answer_query(r, rc, json, &err);
  free(out);
  free(ds);
}

void ctkn__api_dest_read(struct server *s, struct req *r)
{
  static const char *const none[] = {NULL};

  if (r->route == R_DEST_LIST)
    route_dest_list(s, r);
  else if (ctkn__api_query_ok(r, none, NULL) && dest_id_ok(r, r->id))
    answer_dest(s, r, r->id);
}

/* ---- writes ----------------------------------------------------------- */

bool ctkn__api_dest_begin(struct server *s, struct req *r)
{
  (void)s;
  if ((r->route == R_DEST_UPDATE || r->route == R_DEST_DELETE) &&
      !dest_id_ok(r, r->id))
    return false;
  if ((r->dcmd = malloc(sizeof(*r->dcmd))) == NULL) {
    ctkn__api_answer_code(r, CTKN_ENOMEM, "out of memory");
    return false;
  }
  ctkn_dest_command_init(r->dcmd, CTKN_DEST_ADD);
  return true;
}

/* The command the body asks for. *noop: a PATCH that changes nothing
 * (only fields at ctkn's one value), which is a read. */
static int dest_command(struct req *r, bool *noop, struct ctkn_err *err)
{
  struct ctkn_dest_command *c = r->dcmd;
  const char *body = r->body.data ? r->body.data : "";
  int rc;

  *noop = false;
  if (r->route == R_DEST_CREATE) {
    rc = ctkn_json_parse_dest_create(body, r->body.len, c, err);
  } else if (r->route == R_DEST_UPDATE) {
    rc = ctkn_json_parse_dest_update(body, r->body.len, r->id, c, err);
    if (rc == CTKN_OK && !c->set_url && !c->set_events && !c->set_description &&
        !c->set_active && !c->set_traffic) {
      *noop = true;
      return CTKN_OK;
    }
  } else {
    ctkn_dest_command_init(c, CTKN_DEST_REMOVE);
    rc = ctkn_dest_command_set_id(c, r->id, err);
  }
  if (rc == CTKN_OK)
    rc = ctkn_dest_command_check(c, err);
  return rc;
}

void ctkn__api_dest_write(struct server *s, struct req *r)
{
  struct ctkn_err err = {0};
  bool noop;

  if (r->too_large) {
    ctkn__api_answer_code(r, CTKN_ETOOLARGE,
                          "the request body is larger than %d bytes",
                          CTKN_SERVER_MAX_BODY);
    return;
  }
  if (dest_command(r, &noop, &err) != CTKN_OK) {
    ctkn__api_answer_err(r, &err);
    return;
  }
  if (noop) {
    answer_dest(s, r, r->id);
    return;
  }
  /* Endpoint secrets are sealed under the deployment key: without it this
   * server cannot create a destination, whatever the client does, until
   * its operator restarts it with one. 503 says the service is not there,
   * and no Retry-After, as a retry soon will not help. */
  if (r->route == R_DEST_CREATE && !s->have_key) {
    ctkn__api_answer_code(r, CTKN_EIO,
                          "this server cannot create notification settings: "
                          "it was started without the deployment key (ctkn "
                          "serve --secret-key-file FILE, or "
                          "$CTKN_SECRET_KEY_FILE)");
    return;
  }
  ctkn__api_enqueue(s, &s->setq, r);
}

/* ---- the settings thread --------------------------------------------- */

static int answer_setting(struct server *s, struct req *r, struct ctkn_err *err)
{
  struct ctkn_dest_outcome *o = malloc(sizeof(*o));
  bool add = r->dcmd->kind == CTKN_DEST_ADD;
  int rc;

  if (o == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory");
    ctkn__api_answer_err(r, err);
    return rc;
  }
  struct ctkn_dest_policy policy = {.env = s->cfg->env,
                                    .allow = s->cfg->allow_destination,
                                    .nallow = s->cfg->nallow_destination,
                                    .max_active =
                                        s->cfg->max_active_destinations,
                                    .trust_root = s->cfg->trust_root,
                                    .writer_key = s->cfg->writer_key};
  rc = ctkn_settings_execute(s->st, s->cfg->log, add ? s->key : NULL, r->dcmd,
                             &policy, o, err);
  if (rc != CTKN_OK) {
    r->retry_after = ctkn__api_retry_after(rc);
    ctkn__api_answer_err(r, err);
  } else if (r->dcmd->kind == CTKN_DEST_REMOVE) {
    free(r->resp);
    r->resp = NULL;
    r->status = 204;
  } else {
    /* A create's answer always shows the new secret; a change's as a
     * read would (shown_secret()). */
    char secret[CTKN_SECRET_BUF];
    free(r->resp);
    r->resp = ctkn_json_destination(
        &o->dest, add ? o->secret : shown_secret(s, &o->dest, secret), r->rid);
    r->status = add ? 201 : 200;
    ctkn_wipe(secret, sizeof(secret));
  }
  ctkn_wipe(o->secret, sizeof(o->secret));
  free(o);
  return rc;
}

/* One write at a time: a write queued while the log failed the one
 * before it is refused (ctkn__api_outage_refuses()), so that N writes
 * queued in an outage do not take N timeouts. */
void ctkn__api_settings_serve(struct server *s)
{
  struct ctkn__qnode *node;
  struct ctkn__api_outage outage;

  ctkn__api_outage_init(&outage);
  while (ctkn__queue_pop(&s->setq, &node, 1, -1) == 1) {
    struct req *r = CTKN__CONTAINER_OF(node, struct req, qnode);
    struct ctkn_err err = {0};
    if (!ctkn__api_outage_refuses(&outage, r)) {
      int64_t started_us = ctkn__api_mono_us();
      int rc = r->kcmd != NULL ? ctkn__api_keys_answer(s, r, &err)
                               : answer_setting(s, r, &err);
      ctkn__api_outage_note(&outage, "a settings write queued ahead of it",
                            started_us, s->cfg->log->timeout_ms, rc, &err);
    }
    ctkn__api_wake(r);
  }
}

static void *settings_main(void *arg)
{
  ctkn__api_settings_serve(arg);
  return NULL;
}

int ctkn__api_settings_start(struct server *s, struct ctkn_err *err)
{
  if (pthread_create(&s->settler, NULL, settings_main, s) != 0)
    return ctkn__err(err, CTKN_ENOMEM, "server: threads");
  s->settler_started = true;
  return CTKN_OK;
}

void ctkn__api_settings_stop(struct server *s)
{
  ctkn__queue_close(&s->setq);
  if (s->settler_started)
    pthread_join(s->settler, NULL);
  s->settler_started = false;
}
