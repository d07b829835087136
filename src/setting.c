/*
 * setting.c - destinations as values (setting.h): the setting types, the
 * commands and their rules, and planning, checking and applying a change.
 *
 * Nothing here touches the store or the log; settings.c projects what
 * these functions decide.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctkn/crypto.h"
#include "ctkn/setting.h"
#include "internal.h"

static const char *const setting_types[] = {
    [CTKN_SETTING_CREATED] = "notification_setting.created",
    [CTKN_SETTING_UPDATED] = "notification_setting.updated",
    [CTKN_SETTING_DELETED] = "notification_setting.deleted"};

const char *ctkn_setting_type_str(ctkn_setting_type t)
{
  return t >= CTKN_SETTING_CREATED && t <= CTKN_SETTING_DELETED
             ? setting_types[t]
             : NULL;
}

ctkn_setting_type ctkn_setting_type_parse(const char *s)
{
  for (int t = CTKN_SETTING_CREATED; t <= CTKN_SETTING_DELETED; t++) {
    if (s != NULL && strcmp(s, setting_types[t]) == 0)
      return (ctkn_setting_type)t;
  }
  return 0;
}

/* ---- commands ------------------------------------------------------------ */

void ctkn_dest_command_init(struct ctkn_dest_command *cmd,
                            ctkn_dest_cmd_kind kind)
{
  memset(cmd, 0, sizeof(*cmd));
  cmd->kind = kind;
}

int ctkn_dest_command_set_id(struct ctkn_dest_command *cmd, const char *id,
                             struct ctkn_err *err)
{
  if (!ctkn_id_valid("ntfset_", id))
    return ctkn__err_field(err, CTKN_EINVAL, "id", CTKN_ID_RULE("ntfset_"));
  memcpy(cmd->id, id, CTKN_DEST_ID_BUF);
  return CTKN_OK;
}

/* An absolute http(s) URL with a host, visible ASCII, bounded. */
static int url_check(const char *url, struct ctkn_err *err)
{
  size_t n = strlen(url), skip;

  if (n > CTKN_URL_MAX)
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           "must be at most %d bytes", CTKN_URL_MAX);
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
      return ctkn__err_field(err, CTKN_EINVAL, "destination",
                             "must be a URL of visible ASCII characters "
                             "(percent-encode the rest)");
  }
  if (strncasecmp(url, "https://", 8) == 0)
    skip = 8;
  else if (strncasecmp(url, "http://", 7) == 0)
    skip = 7;
  else
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           "must be an absolute http:// or https:// URL");
  if (url[skip] == '\0' || strchr("/?#:@", url[skip]) != NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           "must name a host after the scheme");
  return CTKN_OK;
}

/* ---- where a destination may point ---------------------------------------
 */

bool ctkn_dest_addr_allowed(const struct ctkn_ip *a,
                            const struct ctkn_dest_policy *p, char *why,
                            size_t whysz)
{
  const char *range = ctkn_ip_special(a);
  char text[CTKN_IP_STR];

  if (range == NULL)
    return true;
  for (size_t i = 0; p != NULL && i < p->nallow; i++) {
    if (ctkn_cidr_contains(&p->allow[i], a))
      return true;
  }
  ctkn_ip_str(a, text);
  snprintf(why, whysz,
           "destination address %s is not globally reachable (%s); allow it "
           "with --allow-destination-network",
           text, range);
  return false;
}

/* The authority of an http(s) URL that url_check() passed: from after
 * "://" to the first '/', '?' or '#'. */
static void authority(const char *url, const char **a, size_t *n)
{
  const char *s = strstr(url, "://") + 3;

  *a = s;
  *n = strcspn(s, "/?#");
}

/* Whether the n characters at s are a port: 1 to 5 digits, 1-65535. */
static bool port_ok(const char *s, size_t n)
{
  unsigned v = 0;

  if (n == 0 || n > 5)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  return v >= 1 && v <= 65535;
}

int ctkn_dest_url_check(const char *url, const struct ctkn_dest_policy *p,
                        struct ctkn_err *err)
{
  const char *auth, *colon;
  size_t n, hostn;
  struct ctkn_ip ip;
  char why[256];
  int rc;

  if ((rc = url_check(url, err)) != CTKN_OK)
    return rc;
  if ((p == NULL || p->env == CTKN_ENV_LIVE) &&
      strncasecmp(url, "https://", 8) != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           "must be an https:// URL in the live environment");
  authority(url, &auth, &n);
  if (memchr(auth, '@', n) != NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           "must not carry user info (user:password@ before "
                           "the host): webhooks are authenticated by their "
                           "signature");
  if (auth[0] == '[') {
    colon = memchr(auth, ']', n);
    hostn = colon ? (size_t)(colon - auth) + 1 : n;
  } else {
    colon = memchr(auth, ':', n);
    hostn = colon ? (size_t)(colon - auth) : n;
  }
  /* Brackets only around an IPv6 address, and only a port after them
   * (RFC 3986: a host name holds neither). */
  if (memchr(auth + (auth[0] == '['), '[', n - (auth[0] == '[')) != NULL ||
      memchr(auth + hostn, ']', n - hostn) != NULL ||
      (auth[0] != '[' && memchr(auth, ']', hostn) != NULL) ||
      (hostn < n && auth[hostn] != ':'))
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           "must name a host: '[' and ']' only enclose an "
                           "IPv6 address, and only :port may follow it");
  if (hostn < n && !port_ok(auth + hostn + 1, n - hostn - 1))
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           "the port after the host must be a number from 1 "
                           "to 65535");
  if (!ctkn_ip_from_host(auth, hostn, &ip)) {
    if (auth[0] == '[')
      return ctkn__err_field(err, CTKN_EINVAL, "destination",
                             "must name a host: [...] holds an IPv6 "
                             "address");
    return CTKN_OK; /* a name: judged at connect time, after DNS */
  }
  if (!ctkn_dest_addr_allowed(&ip, p, why, sizeof(why)))
    return ctkn__err_field(err, CTKN_EINVAL, "destination", "%s", why);
  return CTKN_OK;
}

int ctkn_dest_command_set_url(struct ctkn_dest_command *cmd, const char *url,
                              struct ctkn_err *err)
{
  int rc;

  if ((rc = url_check(url, err)) != CTKN_OK)
    return rc;
  ctkn__strlcpy(cmd->url, url, sizeof(cmd->url));
  cmd->set_url = true;
  return CTKN_OK;
}

static const char *const dest_event_names[] = {
    [CTKN_EVENT_CREATED] = "client_token.created",
    [CTKN_EVENT_UPDATED] = "client_token.updated",
    [CTKN_EVENT_REVOKED] = "client_token.revoked",
    [CTKN_DEST_AKEY_CREATED] = "api_key.created",
    [CTKN_DEST_AKEY_UPDATED] = "api_key.updated",
    [CTKN_DEST_AKEY_REVOKED] = "api_key.revoked",
    [CTKN_DEST_AKEY_EXPIRING] = "api_key.expiring",
    [CTKN_DEST_AKEY_EXPIRED] = "api_key.expired",
};

const char *ctkn_dest_event_str(int t)
{
  return t > 0 && (size_t)t < CTKN__ARRAY_LEN(dest_event_names)
             ? dest_event_names[t]
             : NULL;
}

int ctkn_dest_event_parse(const char *s)
{
  for (size_t i = 1; s != NULL && i < CTKN__ARRAY_LEN(dest_event_names); i++)
    if (dest_event_names[i] != NULL && strcmp(s, dest_event_names[i]) == 0)
      return (int)i;
  return 0;
}

int ctkn_dest_command_set_event_mask(struct ctkn_dest_command *cmd,
                                     unsigned mask, struct ctkn_err *err)
{
  if (mask == 0 || (mask & ~(unsigned)CTKN_DEST_EVENTS_ALL) != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                           "must name at least one of " CTKN_DEST_EVENTS_LIST);
  cmd->events = mask;
  cmd->set_events = true;
  return CTKN_OK;
}

int ctkn_dest_command_set_events(struct ctkn_dest_command *cmd, const char *csv,
                                 struct ctkn_err *err)
{
  unsigned mask = 0;
  const char *p = csv;

  for (;;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char name[64];
    int t = 0;

    if (n > 0 && n < sizeof(name)) {
      memcpy(name, p, n);
      name[n] = '\0';
      t = ctkn_dest_event_parse(name);
    }
    if (t == 0)
      return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                             "\"%.*s\" is not one of " CTKN_DEST_EVENTS_LIST,
                             (int)(n > 64 ? 64 : n), p);
    if (mask & (1u << t))
      return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                             "\"%s\" is named twice", name);
    mask |= 1u << t;
    if (end == NULL)
      break;
    p = end + 1;
  }
  return ctkn_dest_command_set_event_mask(cmd, mask, err);
}

int ctkn_dest_command_set_description(struct ctkn_dest_command *cmd,
                                      const char *s, size_t len,
                                      struct ctkn_err *err)
{
  int rc;

  cmd->set_description = true;
  cmd->has_description = s != NULL;
  cmd->description[0] = '\0';
  if (s == NULL)
    return CTKN_OK;
  if ((rc = ctkn_validate_description(s, len, err)) != CTKN_OK) {
    cmd->set_description = false;
    return rc;
  }
  memcpy(cmd->description, s, len);
  cmd->description[len] = '\0';
  return CTKN_OK;
}

void ctkn_dest_command_set_active(struct ctkn_dest_command *cmd, bool active)
{
  cmd->set_active = true;
  cmd->active = active;
}

const char *ctkn_traffic_str(ctkn_traffic t)
{
  switch (t) {
  case CTKN_TRAFFIC_PLATFORM:
    return "platform";
  case CTKN_TRAFFIC_ALL:
    return "all";
  }
  return NULL;
}

int ctkn_traffic_parse(const char *s, ctkn_traffic *out)
{
  if (s != NULL && strcmp(s, "platform") == 0)
    *out = CTKN_TRAFFIC_PLATFORM;
  else if (s != NULL && strcmp(s, "all") == 0)
    *out = CTKN_TRAFFIC_ALL;
  else
    return -1;
  return 0;
}

int ctkn_dest_command_set_traffic(struct ctkn_dest_command *cmd, const char *s,
                                  struct ctkn_err *err)
{
  if (ctkn_traffic_parse(s, &cmd->traffic) != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "traffic_source",
                           "must be platform or all: ctkn has no simulated "
                           "traffic, so a destination for simulation alone "
                           "would receive nothing");
  cmd->set_traffic = true;
  return CTKN_OK;
}

int ctkn_dest_command_check(const struct ctkn_dest_command *cmd,
                            struct ctkn_err *err)
{
  switch (cmd->kind) {
  case CTKN_DEST_ADD:
    if (!cmd->set_url)
      return ctkn__err_field(err, CTKN_EINVAL, "destination",
                             "is required (--url)");
    if (!cmd->set_events)
      return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                             "is required (--events)");
    return CTKN_OK;
  case CTKN_DEST_UPDATE:
    if (!ctkn_id_valid("ntfset_", cmd->id))
      return ctkn__err_field(err, CTKN_EINVAL, "id", CTKN_ID_RULE("ntfset_"));
    if (!cmd->set_url && !cmd->set_events && !cmd->set_description &&
        !cmd->set_active && !cmd->set_traffic)
      return ctkn__err(err, CTKN_EBADREQ,
                       "nothing to update: give the destination, "
                       "subscribed_events, description, active or "
                       "traffic_source");
    return CTKN_OK;
  case CTKN_DEST_REMOVE:
    if (!ctkn_id_valid("ntfset_", cmd->id))
      return ctkn__err_field(err, CTKN_EINVAL, "id", CTKN_ID_RULE("ntfset_"));
    return CTKN_OK;
  }
  return ctkn__err(err, CTKN_EINTERNAL, "unknown destination command");
}

/* ---- the pure functions ------------------------------------------------ */

/* 32 unbiased base62 characters. */
static int base62(char *out, size_t n)
{
  static const char alphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  uint8_t buf[64];
  size_t got = 0;

  while (got < n) {
    int rc = ctkn_random(buf, sizeof(buf));
    if (rc != CTKN_OK)
      return rc;
    for (size_t i = 0; i < sizeof(buf) && got < n; i++) {
      if (buf[i] < 248) /* 4 * 62: keep the draw uniform */
        out[got++] = alphabet[buf[i] % 62];
    }
  }
  ctkn_wipe(buf, sizeof(buf));
  return CTKN_OK;
}

/* An add: a new ID and endpoint secret, sealed under key, and where its
 * deliveries start. */
static int plan_add(const struct ctkn_dest_command *cmd,
                    const uint8_t key[CTKN_KEY_LEN], const int64_t *start,
                    int32_t nstart, int64_t now_us,
                    struct ctkn_setting_event *out,
                    char secret[CTKN_SECRET_BUF], struct ctkn_err *err)
{
  struct ctkn_destination *d = &out->data;
  int rc;

  if (key == NULL || secret == NULL)
    return ctkn__err(err, CTKN_EINTERNAL, "an add needs the key");
  if (nstart < 0 || nstart > CTKN_SETTING_START_MAX)
    return ctkn__err(err, CTKN_EINTERNAL, "start offsets");
  if ((rc = ctkn_id_generate("ntfset_", now_us / 1000, d->id, sizeof(d->id))) !=
      CTKN_OK)
    return ctkn__err(err, rc, "generating an ID");
  /* pdl_ntfset_<ulid>_<32 base62>, as Paddle's. */
  memcpy(secret, "pdl_ntfset_", 11);
  memcpy(secret + 11, d->id + 7, CTKN_ULID_LEN);
  secret[11 + CTKN_ULID_LEN] = '_';
  if ((rc = base62(secret + 12 + CTKN_ULID_LEN, 32)) != CTKN_OK)
    return ctkn__err(err, rc, "generating a secret");
  secret[CTKN_SECRET_LEN] = '\0';
  if ((rc = ctkn_seal(key, d->id, CTKN_DEST_ID_LEN, secret, CTKN_SECRET_LEN,
                      d->sealed, err)) != CTKN_OK)
    return rc;
  d->has_description = cmd->set_description && cmd->has_description;
  memcpy(d->description, cmd->description, sizeof(d->description));
  memcpy(d->url, cmd->url, sizeof(d->url));
  d->active = cmd->set_active ? cmd->active : true;
  d->events = cmd->events;
  d->traffic = cmd->set_traffic ? cmd->traffic : CTKN_TRAFFIC_PLATFORM;
  d->created_at = d->updated_at = now_us;
  d->version = 1;
  out->type = CTKN_SETTING_CREATED;
  out->nstart = nstart;
  for (int32_t p = 0; p < nstart; p++)
    out->start[p] = start[p];
  return CTKN_PLAN_APPEND;
}

/* An update or a removal of cur: CTKN_PLAN_NOOP when an update changes
 * nothing. */
static int plan_change(const struct ctkn_destination *cur,
                       const struct ctkn_dest_command *cmd, int64_t now_us,
                       struct ctkn_setting_event *out, struct ctkn_err *err)
{
  struct ctkn_destination *d = &out->data;

  if (cur == NULL || cur->deleted)
    return ctkn__err(err, CTKN_ENOTFOUND, "no destination %s", cmd->id);
  *d = *cur;
  if (cmd->kind == CTKN_DEST_UPDATE) {
    if (cmd->set_url)
      memcpy(d->url, cmd->url, sizeof(d->url));
    if (cmd->set_events)
      d->events = cmd->events;
    if (cmd->set_description) {
      d->has_description = cmd->has_description;
      memcpy(d->description, cmd->description, sizeof(d->description));
    }
    if (cmd->set_active)
      d->active = cmd->active;
    if (cmd->set_traffic)
      d->traffic = cmd->traffic;
    if (strcmp(d->url, cur->url) == 0 && d->events == cur->events &&
        d->active == cur->active && d->traffic == cur->traffic &&
        d->has_description == cur->has_description &&
        strcmp(d->description, cur->description) == 0)
      return CTKN_PLAN_NOOP;
    out->type = CTKN_SETTING_UPDATED;
  } else {
    d->deleted = true;
    out->type = CTKN_SETTING_DELETED;
  }
  d->version = cur->version + 1;
  d->updated_at = now_us > cur->updated_at ? now_us : cur->updated_at + 1;
  return CTKN_PLAN_APPEND;
}

int ctkn_settings_plan(const struct ctkn_destination *cur,
                       const struct ctkn_dest_command *cmd,
                       const uint8_t key[CTKN_KEY_LEN], const int64_t *start,
                       int32_t nstart, int64_t now_us,
                       struct ctkn_setting_event *out,
                       char secret[CTKN_SECRET_BUF], struct ctkn_err *err)
{
  struct ctkn_destination *d = &out->data;
  int rc;

  if ((rc = ctkn_dest_command_check(cmd, err)) != CTKN_OK)
    return rc;
  memset(out, 0, offsetof(struct ctkn_setting_event, start));
  if (secret != NULL)
    secret[0] = '\0';
  if (cmd->kind == CTKN_DEST_ADD)
    rc = plan_add(cmd, key, start, nstart, now_us, out, secret, err);
  else
    rc = plan_change(cur, cmd, now_us, out, err);
  if (rc != CTKN_PLAN_APPEND)
    return rc;
  if ((rc = ctkn_id_generate("evt_", d->updated_at / 1000, out->event_id,
                             sizeof(out->event_id))) != CTKN_OK)
    return ctkn__err(err, rc, "generating an event ID");
  out->occurred_at = d->updated_at;
  out->version = d->version;
  return CTKN_PLAN_APPEND;
}

/* The destination an event carries, as every correct writer makes it. */
static int check_data(const struct ctkn_setting_event *ev, struct ctkn_err *err)
{
  const struct ctkn_destination *d = &ev->data;
  int rc;

  if (!ctkn_id_valid("evt_", ev->event_id))
    return ctkn__err_field(err, CTKN_EINVAL, "event_id", CTKN_ID_RULE("evt_"));
  if (!ctkn_id_valid("ntfset_", d->id))
    return ctkn__err_field(err, CTKN_EINVAL, "data.id",
                           CTKN_ID_RULE("ntfset_"));
  if ((rc = url_check(d->url, err)) != CTKN_OK)
    return rc;
  if (d->events == 0 || (d->events & ~(unsigned)CTKN_DEST_EVENTS_ALL))
    return ctkn__err_field(err, CTKN_EINVAL, "data.subscribed_events",
                           "must name at least one of " CTKN_DEST_EVENTS_LIST);
  if (ctkn_traffic_str(d->traffic) == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "data.traffic_source",
                           "must be platform or all");
  if (d->has_description)
    return ctkn_validate_description(d->description, strlen(d->description),
                                     err);
  return CTKN_OK;
}

int ctkn_setting_event_check(const struct ctkn_setting_event *ev,
                             struct ctkn_err *err)
{
  const struct ctkn_destination *d = &ev->data;
  bool created = ev->type == CTKN_SETTING_CREATED;
  int rc;

  if ((rc = check_data(ev, err)) != CTKN_OK)
    return rc;
  if (ev->version < 1 || created != (ev->version == 1))
    return ctkn__err_field(err, CTKN_EINVAL, "version",
                           "must be 1 exactly for a created event");
  if (d->created_at <= 0 || d->updated_at < d->created_at ||
      ev->occurred_at != d->updated_at ||
      (created && d->created_at != d->updated_at))
    return ctkn__err_field(err, CTKN_EINVAL, "occurred_at",
                           "must equal data.updated_at, on or after "
                           "data.created_at (equal on create)");
  if (!created && ev->nstart != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "start_offsets",
                           "only a created event records them");
  for (int32_t p = 0; p < ev->nstart; p++) {
    if (ev->start[p] < 0)
      return ctkn__err_field(err, CTKN_EINVAL, "start_offsets",
                             "must not be negative");
  }
  return CTKN_OK;
}

int ctkn_settings_apply(const struct ctkn_destination *cur,
                        const struct ctkn_setting_event *ev,
                        struct ctkn_destination *next, char *reason,
                        size_t reasonsz)
{
  if (ev->type == CTKN_SETTING_CREATED) {
    if (cur != NULL) {
      snprintf(reason, reasonsz, "id: destination %s exists already", cur->id);
      return CTKN_REJECTED;
    }
  } else if (cur == NULL) {
    snprintf(reason, reasonsz, "id: no destination %s", ev->data.id);
    return CTKN_REJECTED;
  } else if (cur->deleted) {
    snprintf(reason, reasonsz, "id: destination %s was removed", cur->id);
    return CTKN_REJECTED;
  } else if (ev->version != cur->version + 1) {
    snprintf(reason, reasonsz, "version: %" PRIu64 " does not follow %" PRIu64,
             ev->version, cur->version);
    return CTKN_REJECTED;
  } else if (ev->data.created_at != cur->created_at ||
             memcmp(ev->data.sealed, cur->sealed, sizeof(cur->sealed)) != 0) {
    snprintf(reason, reasonsz,
             "data: created_at and the endpoint secret never change");
    return CTKN_REJECTED;
  } else if (ev->data.updated_at <= cur->updated_at) {
    snprintf(reason, reasonsz, "updated_at: must move forwards");
    return CTKN_REJECTED;
  }
  *next = ev->data;
  next->version = ev->version;
  next->deleted = ev->type == CTKN_SETTING_DELETED;
  return CTKN_APPLIED;
}

int ctkn_destination_secret(const struct ctkn_destination *d,
                            const uint8_t key[CTKN_KEY_LEN],
                            char secret[CTKN_SECRET_BUF], struct ctkn_err *err)
{
  int rc = ctkn_unseal(key, d->id, CTKN_DEST_ID_LEN, d->sealed,
                       sizeof(d->sealed), (uint8_t *)secret, err);

  secret[rc == CTKN_OK ? CTKN_SECRET_LEN : 0] = '\0';
  if (rc != CTKN_OK)
    return ctkn__err(err, rc,
                     "destination %s: its endpoint secret does not open "
                     "with this deployment key (--secret-key-file)",
                     d->id);
  return CTKN_OK;
}
