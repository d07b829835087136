/*
 * json_settings.c - notification settings and notifications in JSON
 * (codec.h): Paddle's destination, list and notification shapes, an
 * attempt, and the POST/PATCH /notification-settings bodies. Same
 * conventions as json.c: bodies are parsed strictly and the values go
 * through the ctkn_dest_command_* setters (setting.h).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/notification.h"
#include "ctkn/setting.h"
#include "internal.h"
#include "json_int.h"

/* ---- request parsing: notification settings ------------------------- */

#define DEST_CREATE_FIELDS                                                     \
  "description, type, destination, subscribed_events, active, api_version, "   \
  "include_sensitive_fields, traffic_source"
#define DEST_UPDATE_FIELDS                                                     \
  "description, destination, active, subscribed_events, api_version, "         \
  "include_sensitive_fields, traffic_source"

static int dest_description(struct ctkn_dest_command *cmd, json_t *v,
                            bool update, struct ctkn_err *err)
{
  if (update && json_is_null(v))
    return ctkn_dest_command_set_description(cmd, NULL, 0, err);
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "description",
                           update ? "must be a string or null"
                                  : "must be a string");
  return ctkn_dest_command_set_description(cmd, json_string_value(v),
                                           json_string_length(v), err);
}

static int dest_type(json_t *v, struct ctkn_err *err)
{
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "type", "must be a string");
  if (strcmp(json_string_value(v), "url") != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "type",
                           "must be url: ctkn delivers webhooks to URLs "
                           "only (no email destinations)");
  return CTKN_OK;
}

static int dest_url(struct ctkn_dest_command *cmd, json_t *v,
                    struct ctkn_err *err)
{
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "destination", "must be a string");
  return ctkn_dest_command_set_url(cmd, json_string_value(v), err);
}

/* An array of event type names, at least one, none twice. */
static int dest_events(struct ctkn_dest_command *cmd, json_t *v,
                       struct ctkn_err *err)
{
  unsigned mask = 0;
  size_t i;
  json_t *e;

  if (!json_is_array(v) || json_array_size(v) == 0)
    return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                           "must be a non-empty array of event type names");
  json_array_foreach(v, i, e)
  {
    int t = json_is_string(e) ? ctkn_dest_event_parse(json_string_value(e)) : 0;
    if (t == 0 || (CTKN_DEST_EVENTS_ALL & (1u << t)) == 0) {
      if (!json_is_string(e))
        return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                               "item %zu is not a string", i);
      return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                             "\"%.64s\" is not an event ctkn sends (it "
                             "sends " CTKN_DEST_EVENTS_LIST ")",
                             json_string_value(e));
    }
    if (mask & (1u << t))
      return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                             "\"%s\" is named twice", json_string_value(e));
    mask |= 1u << t;
  }
  return ctkn_dest_command_set_event_mask(cmd, mask, err);
}

static int dest_active(struct ctkn_dest_command *cmd, json_t *v,
                       struct ctkn_err *err)
{
  if (!json_is_boolean(v))
    return ctkn__err_field(err, CTKN_EINVAL, "active", "must be a boolean");
  ctkn_dest_command_set_active(cmd, json_is_true(v));
  return CTKN_OK;
}

/* The fields Paddle takes that have one value in ctkn (api_version,
 * include_sensitive_fields): accepted at that value, which changes
 * nothing; and traffic_source, kept as sent. */
static int dest_fixed(struct ctkn_dest_command *cmd, const char *key, json_t *v,
                      struct ctkn_err *err)
{
  if (strcmp(key, "api_version") == 0) {
    if (!json_is_integer(v) || json_integer_value(v) != 1)
      return ctkn__err_field(err, CTKN_EINVAL, "api_version",
                             "must be 1, the only API version ctkn sends");
    return CTKN_OK;
  }
  if (strcmp(key, "include_sensitive_fields") == 0) {
    if (!json_is_boolean(v))
      return ctkn__err_field(err, CTKN_EINVAL, "include_sensitive_fields",
                             "must be a boolean");
    if (json_is_true(v))
      return ctkn__err_field(err, CTKN_EINVAL, "include_sensitive_fields",
                             "must be false: client_token events have no "
                             "sensitive fields");
    return CTKN_OK;
  }
  /* traffic_source: ctkn has no simulations, so every event is platform
   * traffic and "platform" and "all" deliver the same; a destination for
   * simulated traffic alone would never receive anything. */
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "traffic_source",
                           "must be a string");
  return ctkn_dest_command_set_traffic(cmd, json_string_value(v), err);
}

/* The members of root into cmd, in document order, but for a create's
 * "type" first: the rules for the destination follow from it, so an
 * email destination is refused for its type, not for its address. */
static int dest_fill(struct ctkn_dest_command *cmd, json_t *root, bool update,
                     unsigned *seen, struct ctkn_err *err)
{
  const char *key;
  json_t *v;
  int rc;

  if (!update && (v = json_object_get(root, "type")) != NULL &&
      (rc = dest_type(v, err)) != CTKN_OK)
    return rc;
  json_object_foreach(root, key, v)
  {
    if (strcmp(key, "description") == 0) {
      rc = dest_description(cmd, v, update, err);
      *seen |= 1u;
    } else if (!update && strcmp(key, "type") == 0) {
      rc = dest_type(v, err);
      *seen |= 2u;
    } else if (strcmp(key, "destination") == 0) {
      rc = dest_url(cmd, v, err);
    } else if (strcmp(key, "subscribed_events") == 0) {
      rc = dest_events(cmd, v, err);
    } else if (strcmp(key, "active") == 0) {
      rc = dest_active(cmd, v, err);
    } else if (strcmp(key, "api_version") == 0 ||
               strcmp(key, "include_sensitive_fields") == 0 ||
               strcmp(key, "traffic_source") == 0) {
      rc = dest_fixed(cmd, key, v, err);
    } else {
      char field[sizeof(((struct ctkn_err *)0)->field)];
      ctkn__json_field_name(field, sizeof(field), key);
      rc = ctkn__err_field(err, CTKN_EINVAL, field,
                           "unknown field (accepted: %s)",
                           update ? DEST_UPDATE_FIELDS : DEST_CREATE_FIELDS);
    }
    if (rc != CTKN_OK)
      return rc;
  }
  return CTKN_OK;
}

int ctkn_json_parse_dest_create(const char *body, size_t len,
                                struct ctkn_dest_command *cmd,
                                struct ctkn_err *err)
{
  unsigned seen = 0;
  json_t *root;
  int rc;

  ctkn_err_clear(err);
  ctkn_dest_command_init(cmd, CTKN_DEST_ADD);
  if ((rc = ctkn__json_load_object(body, len, &root, err)) != CTKN_OK)
    return rc;
  rc = dest_fill(cmd, root, false, &seen, err);
  json_decref(root);
  if (rc != CTKN_OK)
    return rc;
  if (!(seen & 1u))
    return ctkn__err_field(err, CTKN_EINVAL, "description", "is required");
  if (!(seen & 2u))
    return ctkn__err_field(err, CTKN_EINVAL, "type",
                           "is required (url is the only type)");
  if (!cmd->set_url)
    return ctkn__err_field(err, CTKN_EINVAL, "destination", "is required");
  if (!cmd->set_events)
    return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                           "is required");
  return ctkn_dest_command_check(cmd, err);
}

int ctkn_json_parse_dest_update(const char *body, size_t len, const char *id,
                                struct ctkn_dest_command *cmd,
                                struct ctkn_err *err)
{
  unsigned seen = 0;
  json_t *root;
  int rc;

  ctkn_err_clear(err);
  ctkn_dest_command_init(cmd, CTKN_DEST_UPDATE);
  rc = ctkn_dest_command_set_id(cmd, id != NULL ? id : "", err);
  if (rc != CTKN_OK)
    return rc;
  if ((rc = ctkn__json_load_object(body, len, &root, err)) != CTKN_OK)
    return rc;
  if (json_object_size(root) == 0) {
    json_decref(root);
    return ctkn__err(err, CTKN_EBADREQ,
                     "nothing to update: give description, destination, "
                     "active or subscribed_events");
  }
  rc = dest_fill(cmd, root, true, &seen, err);
  json_decref(root);
  return rc;
}

/* ---- notification settings ------------------------------------------- */

/* Paddle's event-type object, as its /event-types lists it. */
static json_t *event_type_obj(int t)
{
  static const char *const what[] = {
      [CTKN_EVENT_CREATED] = "Occurs when a client-side token is created.",
      [CTKN_EVENT_UPDATED] = "Occurs when a client-side token is updated.",
      [CTKN_EVENT_REVOKED] = "Occurs when a client-side token is revoked.",
      [CTKN_DEST_AKEY_CREATED] = "Occurs when an API key is created.",
      [CTKN_DEST_AKEY_UPDATED] = "Occurs when an API key is updated.",
      [CTKN_DEST_AKEY_REVOKED] = "Occurs when an API key is revoked.",
      [CTKN_DEST_AKEY_EXPIRING] =
          "Occurs seven days before an API key's expires_at.",
      [CTKN_DEST_AKEY_EXPIRED] = "Occurs when an API key expires."};
  json_t *o = json_object(), *v = json_array();
  int rc = 0;

  if (o == NULL || v == NULL) {
    json_decref(o);
    json_decref(v);
    return NULL;
  }
  rc |= json_array_append_new(v, json_integer(1));
  rc |= ctkn__json_set(o, "name", ctkn__json_name(ctkn_dest_event_str(t)));
  rc |= ctkn__json_set(o, "description", ctkn__json_name(what[t]));
  rc |= ctkn__json_set(o, "group",
                       ctkn__json_name(t >= CTKN_DEST_AKEY_CREATED
                                           ? "API key"
                                           : "Client token"));
  rc |= ctkn__json_set(o, "available_versions", v);
  return ctkn__json_checked(o, rc);
}

static json_t *destination_obj(const struct ctkn_destination *d,
                               const char *secret)
{
  json_t *o = json_object(), *ev = json_array();
  int rc = 0;

  if (o == NULL || ev == NULL) {
    json_decref(o);
    json_decref(ev);
    return NULL;
  }
  for (int t = 1; t <= CTKN_DEST_AKEY_EXPIRED; t++) {
    if ((d->events & (1u << t)) && ctkn_dest_event_str(t) != NULL)
      rc |= json_array_append_new(ev, event_type_obj(t));
  }
  rc |= ctkn__json_set(o, "id", ctkn__json_str(d->id, sizeof(d->id)));
  rc |=
      ctkn__json_set(o, "description",
                     d->has_description ? ctkn__json_str(d->description,
                                                         sizeof(d->description))
                                        : json_null());
  rc |= ctkn__json_set(o, "type", ctkn__json_name("url"));
  rc |=
      ctkn__json_set(o, "destination", ctkn__json_str(d->url, sizeof(d->url)));
  rc |= ctkn__json_set(o, "active", json_boolean(d->active));
  rc |= ctkn__json_set(o, "api_version", json_integer(1));
  rc |= ctkn__json_set(o, "include_sensitive_fields", json_false());
  rc |= ctkn__json_set(o, "subscribed_events", ev);
  if (secret != NULL)
    rc |= ctkn__json_set(o, "endpoint_secret_key",
                         ctkn__json_str(secret, SIZE_MAX));
  rc |= ctkn__json_set(o, "traffic_source",
                       ctkn__json_name(ctkn_traffic_str(d->traffic)));
  return ctkn__json_checked(o, rc);
}

char *ctkn_json_destination(const struct ctkn_destination *d,
                            const char *secret, const char *request_id)
{
  return ctkn__json_doc(destination_obj(d, secret), true, request_id);
}

char *ctkn_json_setting_event(const struct ctkn_setting_event *ev)
{
  return ctkn__json_envelope(ev->event_id, ctkn_setting_type_str(ev->type),
                             ev->occurred_at, destination_obj(&ev->data, NULL));
}

char *ctkn_json_destinations(const struct ctkn_destination *d, size_t n,
                             const char *request_id)
{
  json_t *a = json_array();
  int rc = a == NULL;

  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = json_array_append_new(a, destination_obj(&d[i], NULL));
  return ctkn__json_doc(ctkn__json_checked(a, rc), true, request_id);
}

char *ctkn_json_destinations_page(const struct ctkn_destination *d,
                                  const char *const *secrets, size_t n,
                                  const struct ctkn_pagination *page,
                                  const char *request_id)
{
  json_t *a = json_array(), *pg = json_object();
  int rc = a == NULL || pg == NULL;

  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = json_array_append_new(
        a, destination_obj(&d[i], secrets != NULL ? secrets[i] : NULL));
  if (rc == 0) {
    rc |= ctkn__json_set(pg, "per_page", json_integer(page->per_page));
    rc |= ctkn__json_set(pg, "next",
                         page->next ? ctkn__json_str(page->next, SIZE_MAX)
                                    : json_null());
    rc |= ctkn__json_set(pg, "has_more", json_boolean(page->has_more));
    if (page->estimated_total >= 0)
      rc |= ctkn__json_set(pg, "estimated_total",
                           json_integer(page->estimated_total));
  }
  if (rc != 0) {
    json_decref(a);
    json_decref(pg);
    return NULL;
  }
  return ctkn__json_dump(
      ctkn__json_pair("data", a, "meta", ctkn__json_meta(request_id, pg)));
}

/* ---- notifications --------------------------------------------------- */

static json_t *jtime_or_null(int64_t us)
{
  return us > 0 ? ctkn__json_time(us) : json_null();
}

char *ctkn_json_notification(const struct ctkn_notification *n,
                             const char *payload)
{
  json_t *o = json_object(), *p = json_null();
  int rc = 0;

  if (payload != NULL) {
    /* Text that is not JSON (it always is: ctkn_json_event made it)
     * shows as null rather than failing the whole document. */
    json_t *parsed = json_loads(payload, 0, NULL);
    if (parsed != NULL) {
      json_decref(p);
      p = parsed;
    }
  }
  if (o == NULL || p == NULL) {
    json_decref(o);
    json_decref(p);
    return NULL;
  }
  rc |= ctkn__json_set(o, "id", ctkn__json_str(n->id, sizeof(n->id)));
  rc |=
      ctkn__json_set(o, "type", ctkn__json_name(ctkn_dest_event_str(n->type)));
  rc |= ctkn__json_set(o, "status",
                       ctkn__json_name(ctkn_ntf_status_str(n->status)));
  rc |= ctkn__json_set(o, "payload", p);
  rc |= ctkn__json_set(o, "occurred_at", jtime_or_null(n->occurred_at));
  rc |= ctkn__json_set(o, "delivered_at", jtime_or_null(n->delivered_at));
  rc |= ctkn__json_set(o, "replayed_at",
                       n->replay ? jtime_or_null(n->first_attempt_at)
                                 : json_null());
  rc |= ctkn__json_set(o, "origin",
                       ctkn__json_name(n->replay ? "replay" : "event"));
  rc |= ctkn__json_set(o, "last_attempt_at", jtime_or_null(n->last_attempt_at));
  rc |= ctkn__json_set(o, "retry_at",
                       n->status == CTKN_NTF_NEEDS_RETRY
                           ? jtime_or_null(n->retry_at)
                           : json_null());
  rc |= ctkn__json_set(o, "times_attempted", json_integer(n->attempts));
  rc |= ctkn__json_set(o, "notification_setting_id",
                       ctkn__json_str(n->dest, sizeof(n->dest)));
  return ctkn__json_dump(ctkn__json_checked(o, rc));
}

char *ctkn_json_attempt(const char *ntf_id, const struct ctkn_ntf_attempt *a)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= ctkn__json_set(o, "notification_id", ctkn__json_str(ntf_id, SIZE_MAX));
  rc |= ctkn__json_set(o, "attempt", json_integer(a->n));
  rc |= ctkn__json_set(o, "attempted_at", ctkn__json_time(a->at));
  rc |= ctkn__json_set(o, "response_code",
                       a->status > 0 ? json_integer(a->status) : json_null());
  rc |= ctkn__json_set(o, "latency_ms",
                       json_real((double)a->latency_us / 1000.0));
  rc |= ctkn__json_set(o, "error",
                       a->error[0] ? ctkn__json_str(a->error, sizeof(a->error))
                                   : json_null());
  rc |= ctkn__json_set(
      o, "response_content_type",
      a->content_type[0]
          ? ctkn__json_str(a->content_type, sizeof(a->content_type))
          : json_null());
  rc |= ctkn__json_set(o, "response_body",
                       ctkn__json_bytes(a->body, a->body_len));
  return ctkn__json_dump(ctkn__json_checked(o, rc));
}

/* Paddle's notification log: {"id", "response_code",
 * "response_content_type", "response_body", "attempted_at"}. */
static json_t *ntf_log(const char *ntf_id, const struct ctkn_ntf_attempt *a)
{
  char id[CTKN_NTFLOG_ID_BUF];
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  ctkn_notification_log_id(ntf_id, a->n, a->at, id);
  rc |= ctkn__json_set(o, "id", ctkn__json_str(id, sizeof(id)));
  rc |= ctkn__json_set(o, "response_code", json_integer(a->status));
  rc |= ctkn__json_set(
      o, "response_content_type",
      a->content_type[0]
          ? ctkn__json_str(a->content_type, sizeof(a->content_type))
          : json_null());
  rc |= ctkn__json_set(o, "response_body",
                       ctkn__json_bytes(a->body, a->body_len));
  rc |= ctkn__json_set(o, "attempted_at", ctkn__json_time(a->at));
  return ctkn__json_checked(o, rc);
}

char *ctkn_json_notification_log(const char *ntf_id,
                                 const struct ctkn_ntf_attempt *a)
{
  return ctkn__json_dump(ntf_log(ntf_id, a));
}
