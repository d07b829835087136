/*
 * events.c - GET /events and GET /event-types over the projection.
 *
 * /events walks the store's events index (store.h, ctkn_store_events())
 * in event-ID order and renders each applied event as the webhook
 * envelope the notifier and `ctkn tail` send (ctkn_json_event()), so a
 * page's bytes are a tail's lines. /event-types is the table below.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/event.h"
#include "ctkn/events.h"
#include "ctkn/keylog.h"
#include "ctkn/keyset.h"
#include "ctkn/query.h"
#include "ctkn/settings.h"
#include "internal.h"
#include "query_int.h"

/* Every event type of ctkn's entities, as GET /event-types lists them.
 * type: the ctkn_event_type of the event topic's, 0 for the settings
 * topic's (the store keeps those under ctkn_settings_event_code()). perm:
 * the read permission of the event's entity, which GET /events asks
 * for. */
static const struct event_type {
  const char *name, *description, *group;
  int type;
  unsigned perm;
} types[] = {
    {"client_token.created", "Occurs when a client-side token is created.",
     "Client token", CTKN_EVENT_CREATED, CTKN_PERM_TOKEN_READ},
    {"client_token.updated",
     "Occurs when a client-side token is updated (its name or description).",
     "Client token", CTKN_EVENT_UPDATED, CTKN_PERM_TOKEN_READ},
    {"client_token.revoked", "Occurs when a client-side token is revoked.",
     "Client token", CTKN_EVENT_REVOKED, CTKN_PERM_TOKEN_READ},
    {"notification_setting.created",
     "Occurs when a notification setting (a webhook destination) is "
     "created.",
     "Notification setting", 0, CTKN_PERM_SETTING_READ},
    {"notification_setting.updated",
     "Occurs when a notification setting is updated.", "Notification setting",
     0, CTKN_PERM_SETTING_READ},
    {"notification_setting.deleted",
     "Occurs when a notification setting is deleted.", "Notification setting",
     0, CTKN_PERM_SETTING_READ},
    {"api_key.created", "Occurs when an API key is created.", "API key", 0,
     CTKN_PERM_KEY_READ},
    {"api_key.updated", "Occurs when an API key is updated.", "API key", 0,
     CTKN_PERM_KEY_READ},
    {"api_key.revoked", "Occurs when an API key is revoked.", "API key", 0,
     CTKN_PERM_KEY_READ},
    {"api_key.expiring", "Occurs seven days before an API key's expires_at.",
     "API key", 0, CTKN_PERM_KEY_READ},
    {"api_key.expired", "Occurs when an API key expires.", "API key", 0,
     CTKN_PERM_KEY_READ},
};
#define NTYPES (sizeof(types) / sizeof(types[0]))
_Static_assert(NTYPES <= 32, "event_type is a 32-bit mask");

static int oom(struct ctkn_err *err)
{
  return ctkn__err(err, CTKN_ENOMEM, "rendering JSON");
}

/* ---- parameters --------------------------------------------------------- */

void ctkn_events_params_init(struct ctkn_events_params *p)
{
  memset(p, 0, sizeof(*p));
  p->per_page = CTKN_PER_PAGE_DEFAULT;
  p->readable =
      CTKN_PERM_TOKEN_READ | CTKN_PERM_SETTING_READ | CTKN_PERM_KEY_READ;
}

/* The token list's rules, the same words: through its parser. */
int ctkn_events_params_per_page(struct ctkn_events_params *p, const char *s,
                                struct ctkn_err *err)
{
  return ctkn__page_per_page(s, &p->per_page, err);
}

int ctkn_events_params_order_by(struct ctkn_events_params *p, const char *s,
                                struct ctkn_err *err)
{
  return ctkn__page_order_by(s, &p->desc, err);
}

int ctkn_events_params_after(struct ctkn_events_params *p, const char *s,
                             struct ctkn_err *err)
{
  if (!ctkn_id_valid("evt_", s))
    return ctkn__err_field(err, CTKN_EINVAL, "after",
                           "must be an event ID (" CTKN_ID_PATTERN("evt_") ")");
  ctkn__strlcpy(p->after, s, sizeof(p->after));
  return CTKN_OK;
}

/* The table's entry named by the n bytes at s, or NULL. */
static const struct event_type *type_named(const char *s, size_t n)
{
  for (size_t i = 0; i < NTYPES; i++) {
    if (strlen(types[i].name) == n && strncmp(types[i].name, s, n) == 0)
      return &types[i];
  }
  return NULL;
}

int ctkn_events_params_types(struct ctkn_events_params *p, const char *s,
                             struct ctkn_err *err)
{
  unsigned names = 0;
  const char *c = s;

  for (;;) {
    size_t n = strcspn(c, ",");
    const struct event_type *t = type_named(c, n);
    if (t == NULL)
      return ctkn__err_field(err, CTKN_EINVAL, "event_type",
                             "must be a comma-separated list of event types "
                             "that GET /event-types lists (\"%.*s\" is not "
                             "one)",
                             (int)(n > 64 ? 64 : n), c);
    names |= 1u << (t - types);
    if (c[n] == '\0')
      break;
    c += n + 1;
  }
  p->types = names;
  return CTKN_OK;
}

/* What p selects of each source, into f: the event topic's types (none:
 * skip_tokens) and the settings topic's codes, each only when p->readable
 * holds its permission. */
static void select_sources(const struct ctkn_events_params *p,
                           struct ctkn_store_events_filter *f)
{
  unsigned mask = 0;
  bool tokens = false;

  f->setting_mask = 0;
  for (size_t i = 0; i < NTYPES; i++) {
    if ((p->types != 0 && !(p->types & (1u << i))) ||
        !(p->readable & types[i].perm))
      continue;
    if (types[i].type != 0) {
      tokens = true;
      mask |= 1u << types[i].type;
    } else {
      int code = ctkn_settings_event_code(types[i].name);
      if (code >= 0)
        f->setting_mask |= 1u << code;
    }
  }
  f->skip_tokens = !tokens;
  f->type_mask = p->types != 0 ? mask : 0;
}

/* CTKN_EFORBIDDEN when event_type names a type whose entity's read
 * permission p->readable lacks. */
static int check_readable(const struct ctkn_events_params *p,
                          struct ctkn_err *err)
{
  for (size_t i = 0; i < NTYPES; i++) {
    if ((p->types & (1u << i)) && !(p->readable & types[i].perm)) {
      const char *names[CTKN_PERMS_MAX];
      size_t n = ctkn_perms_names(types[i].perm, names, CTKN_PERMS_MAX);
      return ctkn__err(err, CTKN_EFORBIDDEN,
                       "event_type %s needs the permission %s", types[i].name,
                       n > 0 ? names[n - 1] : "?");
    }
  }
  return CTKN_OK;
}

int ctkn_events_params_from(struct ctkn_events_params *p, const char *s,
                            struct ctkn_err *err)
{
  int rc = ctkn__page_time("from", s, &p->from_us, err);

  p->has_from |= rc == CTKN_OK;
  return rc;
}

int ctkn_events_params_to(struct ctkn_events_params *p, const char *s,
                          struct ctkn_err *err)
{
  int rc = ctkn__page_time("to", s, &p->to_us, err);

  p->has_to |= rc == CTKN_OK;
  return rc;
}

/* ---- GET /events -------------------------------------------------------- */

/* One page's walk: the events rendered so far, and one more seen. */
struct page {
  struct ctkn__page pg;
  struct ctkn_event ev;
  struct ctkn_err *err;
};

static int page_event(void *arg, const struct ctkn_store_indexed_event *e)
{
  struct page *pg = arg;
  char id[CTKN_EVT_ID_LEN + 1], *json;
  int rc;

  if (ctkn__page_full(&pg->pg))
    return 1; /* stop: this page is full */
  memcpy(id, e->event_id, CTKN_EVT_ID_LEN);
  id[CTKN_EVT_ID_LEN] = '\0';
  if (e->json != NULL) /* a settings event: its envelope as indexed */
    return ctkn__page_put(&pg->pg, e->json, e->json_len, id, pg->err);
  if (ctkn_event_decode(e->ev.value, e->ev.len, &pg->ev, pg->err) != CTKN_OK)
    return ctkn__err(pg->err, CTKN_ESTORE,
                     "corrupt history at partition %" PRId32 " offset %" PRId64,
                     e->ev.partition, e->ev.offset);
  if ((json = ctkn_json_event(&pg->ev)) == NULL)
    return oom(pg->err);
  rc = ctkn__page_put(&pg->pg, json, strlen(json), id, pg->err);
  free(json);
  return rc;
}

/* CTKN_ESTALE when a partition is paused: an event may wait behind it. */
static int fail_closed(ctkn_store_txn *txn, struct ctkn_err *err)
{
  struct ctkn_store_pause pz;
  int rc = ctkn_store_first_pause(txn, &pz, err);

  if (rc != CTKN_OK || pz.partition == -1)
    return rc;
  if (pz.partition == CTKN_STORE_PAUSE_ALL)
    return ctkn__err(err, CTKN_ESTALE,
                     "every partition is paused (the keyring enables event "
                     "schema version %d; this build reads %d): upgrade ctkn",
                     pz.schema, CTKN_SCHEMA_VERSION);
  return ctkn__err(err, CTKN_ESTALE,
                   "partition %d is paused at offset %lld, a record of schema "
                   "version %d (this build reads %d): upgrade ctkn",
                   (int)pz.partition, (long long)pz.offset, pz.schema,
                   CTKN_SCHEMA_VERSION);
}

/* The walk of one page into pg; *total the events of the sources it
 * walks (tokens: the index; the settings topic's: their table). */
static int walk_page(ctkn_store *st, const struct ctkn_events_params *p,
                     struct page *pg, int64_t *total, struct ctkn_err *err)
{
  struct ctkn_store_events_filter f = {.after = p->after,
                                       .desc = p->desc,
                                       .has_from = p->has_from,
                                       .has_to = p->has_to,
                                       .from_us = p->from_us,
                                       .to_us = p->to_us};
  ctkn_store_txn *txn;
  int64_t n = 0;
  int rc;

  select_sources(p, &f);
  *total = 0;
  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = fail_closed(txn, err);
  /* The settings topic stopped behind a newer record: an event may wait
   * behind it too. */
  if (rc == CTKN_OK && f.setting_mask != 0)
    rc = ctkn_keylog_paused(txn, err);
  if (rc == CTKN_OK && !f.skip_tokens &&
      (rc = ctkn_store_events_count(txn, &n, err)) == CTKN_OK)
    *total += n;
  if (rc == CTKN_OK && f.setting_mask != 0 &&
      (rc = ctkn_store_setting_events_count(txn, &n, err)) == CTKN_OK)
    *total += n;
  if (rc == CTKN_OK && (!f.skip_tokens || f.setting_mask != 0))
    rc = ctkn_store_events(txn, &f, page_event, pg, err);
  ctkn_store_abort(txn);
  return rc;
}

/* The following page's URL: base, then every parameter in force. */
static int next_link(struct ctkn__buf *u, const struct ctkn_events_params *p,
                     const char *base, const char *after)
{
  int rc = ctkn__buf_printf(u, "%s?", base != NULL ? base : "");

  if (rc == CTKN_OK && after[0] != '\0')
    rc = ctkn__buf_printf(u, "after=%s&", after);
  for (size_t i = 0, k = 0; rc == CTKN_OK && i < NTYPES; i++) {
    if (p->types & (1u << i))
      rc =
          ctkn__buf_printf(u, "%s%s", k++ ? "," : "event_type=", types[i].name);
    if (rc == CTKN_OK && k > 0 && (p->types >> (i + 1)) == 0) {
      rc = ctkn__buf_puts(u, "&");
      break;
    }
  }
  if (rc == CTKN_OK)
    rc = ctkn__page_link_tail(u, p->has_from, p->from_us, p->has_to, p->to_us,
                              p->desc, p->per_page);
  return rc;
}

int ctkn_events_list(ctkn_store *st, const struct ctkn_events_params *p,
                     const char *next_base, const char *request_id, char **json,
                     struct ctkn_err *err)
{
  struct ctkn__buf u = CTKN__BUF_INIT;
  struct page *pg;
  int64_t total = 0;
  int rc;

  *json = NULL;
  if ((rc = check_readable(p, err)) != CTKN_OK)
    return rc;
  if ((pg = calloc(1, sizeof(*pg))) == NULL)
    return oom(err);
  if ((rc = ctkn__page_begin(&pg->pg, p->per_page, err)) != CTKN_OK) {
    free(pg);
    return rc;
  }
  pg->err = err;
  rc = walk_page(st, p, pg, &total, err);
  /* The sources' counts overstate a narrower filter (a time range, some
   * of a source's types): a first page that holds every match is exact. A
   * later page, or a narrower filter with more pages, keeps the sources'
   * count, an upper bound. */
  if (rc == CTKN_OK && !pg->pg.more && p->after[0] == '\0')
    total = pg->pg.n;
  /* Paddle's next is always there: after this page's last event, or on
   * an empty page the request's own cursor (which new events may fill). */
  if (rc == CTKN_OK &&
      next_link(&u, p, next_base, pg->pg.n > 0 ? pg->pg.last : p->after) !=
          CTKN_OK)
    rc = oom(err);
  rc = ctkn__page_end(&pg->pg, rc, u.data, total, request_id, json, err);
  free(pg);
  ctkn__buf_free(&u);
  return rc;
}

/* ---- GET /event-types --------------------------------------------------- */

int ctkn_event_types_json(const char *request_id, char **json,
                          struct ctkn_err *err)
{
  struct ctkn__buf b = CTKN__BUF_INIT;
  int rc = ctkn__buf_puts(&b, "{\"data\":[");

  for (size_t i = 0; rc == CTKN_OK && i < NTYPES; i++) {
    rc = ctkn__buf_printf(&b, "%s{\"name\":", i ? "," : "");
    if (rc == CTKN_OK)
      rc = ctkn__buf_json_str(&b, types[i].name, strlen(types[i].name));
    if (rc == CTKN_OK)
      rc = ctkn__buf_puts(&b, ",\"description\":");
    if (rc == CTKN_OK)
      rc = ctkn__buf_json_str(&b, types[i].description,
                              strlen(types[i].description));
    if (rc == CTKN_OK)
      rc = ctkn__buf_puts(&b, ",\"group\":");
    if (rc == CTKN_OK)
      rc = ctkn__buf_json_str(&b, types[i].group, strlen(types[i].group));
    if (rc == CTKN_OK)
      rc = ctkn__buf_puts(&b, ",\"available_versions\":[1]}");
  }
  if (rc == CTKN_OK)
    rc = ctkn__buf_puts(&b, "],\"meta\":{\"request_id\":");
  if (rc == CTKN_OK)
    rc = ctkn__buf_json_str(&b, request_id, strlen(request_id));
  if (rc == CTKN_OK)
    rc = ctkn__buf_puts(&b, "}}");
  if (rc != CTKN_OK) {
    ctkn__buf_free(&b);
    *json = NULL;
    return oom(err);
  }
  *json = b.data;
  return CTKN_OK;
}
