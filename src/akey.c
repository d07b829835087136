/*
 * akey.c - API keys on the log as values (akey.h): the key string, the
 * rules every record keeps, applying an event, planning a command.
 */
#include <stdio.h>
#include <string.h>

#include "ctkn/akey.h"
#include "ctkn/crypto.h"
#include "internal.h"

#define KEY_RAW     32
#define KEY_B64_LEN 43
#define ENV_LEN     4 /* "sdbx" or "live" */
#define MID         "_apikey_"
#define MID_LEN     (sizeof(MID) - 1)

static const char *const type_names[] = {
    NULL,
    "api_key.created",
    "api_key.updated",
    "api_key.rotated",
    "api_key.revoked",
    "api_key.expired",
    "api_key.used",
    "api_key.expiring",
};

static const char *const status_names[] = {"active", "expired", "revoked"};

const char *ctkn_akey_type_str(ctkn_akey_type t)
{
  return (unsigned)t < CTKN__ARRAY_LEN(type_names) ? type_names[t] : NULL;
}

ctkn_akey_type ctkn_akey_type_parse(const char *s)
{
  for (size_t i = 1; s != NULL && i < CTKN__ARRAY_LEN(type_names); i++)
    if (strcmp(s, type_names[i]) == 0)
      return (ctkn_akey_type)i;
  return 0;
}

const char *ctkn_akey_status_str(ctkn_akey_status s)
{
  return (unsigned)s < CTKN__ARRAY_LEN(status_names) ? status_names[s] : NULL;
}

int ctkn_akey_status_parse(const char *s, ctkn_akey_status *out)
{
  for (size_t i = 0; s != NULL && i < CTKN__ARRAY_LEN(status_names); i++)
    if (strcmp(s, status_names[i]) == 0) {
      *out = (ctkn_akey_status)i;
      return 0;
    }
  return -1;
}

ctkn_akey_status ctkn_akey_status_at(const struct ctkn_akey *k, int64_t now)
{
  if (k->status != CTKN_AKEY_ACTIVE)
    return k->status;
  if (k->expires_at != 0 && now >= k->expires_at)
    return CTKN_AKEY_ST_EXPIRED;
  return CTKN_AKEY_ACTIVE;
}

/* ---- the key string ------------------------------------------------------ */

static const char *env_tag(ctkn_env env)
{
  return env == CTKN_ENV_SANDBOX ? "sdbx"
         : env == CTKN_ENV_LIVE  ? "live"
                                 : NULL;
}

static bool b64url(char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int ctkn_akey_parse(const char *key, size_t len, char id[CTKN_AKEY_ID_BUF],
                    ctkn_env *env)
{
  const char *u = key + 5 + ENV_LEN + MID_LEN;

  /* The shape is public: this check need not be constant-time. */
  if (key == NULL || len != CTKN_AKEY_LEN || memcmp(key, "ctkn_", 5) != 0 ||
      memcmp(key + 5 + ENV_LEN, MID, MID_LEN) != 0 || u[CTKN_ULID_LEN] != '_')
    return CTKN_EAUTHMALFORMED;
  if (memcmp(key + 5, "sdbx", ENV_LEN) == 0)
    *env = CTKN_ENV_SANDBOX;
  else if (memcmp(key + 5, "live", ENV_LEN) == 0)
    *env = CTKN_ENV_LIVE;
  else
    return CTKN_EAUTHMALFORMED;
  for (size_t i = 0; i < KEY_B64_LEN; i++)
    if (!b64url(u[CTKN_ULID_LEN + 1 + i]))
      return CTKN_EAUTHMALFORMED;
  memcpy(id, "apikey_", 7);
  memcpy(id + 7, u, CTKN_ULID_LEN);
  id[CTKN_AKEY_ID_LEN] = '\0';
  if (!ctkn_id_valid("apikey_", id)) {
    id[0] = '\0';
    return CTKN_EAUTHMALFORMED;
  }
  return CTKN_OK;
}

int ctkn_akey_generate(const char *id, ctkn_env env, char key[CTKN_AKEY_BUF],
                       uint8_t sha256[32])
{
  uint8_t raw[KEY_RAW];
  char b64[4 * ((KEY_RAW + 2) / 3) + 1];
  const char *tag = env_tag(env);
  int rc;

  key[0] = '\0';
  if (tag == NULL || !ctkn_id_valid("apikey_", id))
    return CTKN_EINVAL;
  if ((rc = ctkn_random(raw, sizeof(raw))) != CTKN_OK)
    return rc;
  ctkn_base64(raw, sizeof(raw), b64);
  for (size_t i = 0; i < KEY_B64_LEN; i++)
    b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
  b64[KEY_B64_LEN] = '\0';
  snprintf(key, CTKN_AKEY_BUF, "ctkn_%s%s%s_%s", tag, MID, id + 7, b64);
  ctkn_sha256_once(key, CTKN_AKEY_LEN, sha256);
  ctkn_wipe(raw, sizeof(raw));
  ctkn_wipe(b64, sizeof(b64));
  return CTKN_OK;
}

bool ctkn_akey_secret_matches(const struct ctkn_akey *k, const char *key,
                              size_t len, int64_t now)
{
  uint8_t d[CTKN_SHA256_LEN];
  bool cur, prev;

  ctkn_sha256_once(key, len, d);
  /* Both compared every time, so the time says nothing of which one. */
  cur = ctkn_ct_equal(d, k->sha256, sizeof(d));
  prev = ctkn_ct_equal(d, k->previous_sha256, sizeof(d));
  ctkn_wipe(d, sizeof(d));
  return cur | (prev & k->has_previous & (now < k->previous_until));
}

/* ---- rules ----------------------------------------------------------------
 */

static int check_text(const struct ctkn_akey *k, struct ctkn_err *err)
{
  int rc;

  if ((rc = ctkn_validate_name(k->name, strlen(k->name), err)) != CTKN_OK)
    return rc;
  if (k->has_description &&
      (rc = ctkn_validate_description(k->description, strlen(k->description),
                                      err)) != CTKN_OK)
    return rc;
  return CTKN_OK;
}

/* The rules of a whole entity (not "used" records, which carry only the
 * ID and the time). */
static int check_entity(const struct ctkn_akey *k, struct ctkn_err *err)
{
  int rc;

  if ((rc = check_text(k, err)) != CTKN_OK)
    return rc;
  if (k->perms == 0 || (k->perms & ~(unsigned)CTKN_PERMS_ALL) != 0 ||
      ctkn_perms_with_reads(k->perms) != k->perms)
    return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                           "must be a non-empty set of " CTKN_PERMS_LIST
                           ", each write with its read");
  if (k->created_at <= 0 || k->updated_at < k->created_at)
    return ctkn__err_field(err, CTKN_EINVAL, "updated_at",
                           "must be at or after created_at, which is set");
  if (k->expires_at < 0 || k->last_used_at < 0)
    return ctkn__err_field(err, CTKN_EINVAL, "expires_at",
                           "must not be negative");
  if (k->has_previous && k->previous_until <= 0)
    return ctkn__err_field(err, CTKN_EINVAL, "previous_until",
                           "must be set with a previous secret");
  if (ctkn_akey_status_str(k->status) == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "status", "unknown status");
  return CTKN_OK;
}

/* The status each type leaves the key in. */
static bool status_fits(ctkn_akey_type t, ctkn_akey_status s)
{
  switch (t) {
  case CTKN_AKEY_REVOKED:
    return s == CTKN_AKEY_ST_REVOKED;
  case CTKN_AKEY_EXPIRED:
    return s == CTKN_AKEY_ST_EXPIRED;
  default:
    return s == CTKN_AKEY_ACTIVE;
  }
}

int ctkn_akey_event_check(const struct ctkn_akey_event *ev,
                          struct ctkn_err *err)
{
  const struct ctkn_akey *k = &ev->data;
  int rc;

  if (!ctkn_id_valid("evt_", ev->event_id))
    return ctkn__err_field(err, CTKN_EINVAL, "event_id", "must be evt_ + ULID");
  if (ctkn_akey_type_str(ev->type) == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "event_type", "unknown type");
  if (!ctkn_id_valid("apikey_", k->id))
    return ctkn__err_field(err, CTKN_EINVAL, "data.id",
                           "must be apikey_ + ULID");
  if (ev->type == CTKN_AKEY_USED) {
    if (ev->version != 0 || k->last_used_at <= 0 ||
        ev->occurred_at != k->last_used_at)
      return ctkn__err_field(err, CTKN_EINVAL, "version",
                             "a used record has no version and occurs at "
                             "data.last_used_at");
    return CTKN_OK;
  }
  if ((rc = check_entity(k, err)) != CTKN_OK)
    return rc;
  if (ev->type == CTKN_AKEY_EXPIRING) {
    /* The key as read at its version; occurs when appended, before the
     * key expires. */
    if (k->status != CTKN_AKEY_ACTIVE || k->expires_at == 0 ||
        ev->version < 1 || ev->occurred_at <= 0 ||
        ev->occurred_at >= k->expires_at)
      return ctkn__err_field(err, CTKN_EINVAL, "data.expires_at",
                             "an expiring notice is for an active key that "
                             "expires after the notice occurs");
    return CTKN_OK;
  }
  if (!status_fits(ev->type, k->status))
    return ctkn__err_field(err, CTKN_EINVAL, "data.status",
                           "does not match the event type");
  if (ev->version < 1 || (ev->type == CTKN_AKEY_CREATED) != (ev->version == 1))
    return ctkn__err_field(err, CTKN_EINVAL, "version",
                           "is 1 exactly for a create");
  if (ev->occurred_at != k->updated_at)
    return ctkn__err_field(err, CTKN_EINVAL, "occurred_at",
                           "must equal data.updated_at");
  return CTKN_OK;
}

static int reject(char *reason, size_t reasonsz, const char *why)
{
  if (reasonsz > 0)
    ctkn__strlcpy(reason, why, reasonsz);
  return CTKN_AKEY_REJECTED;
}

int ctkn_akey_apply(const struct ctkn_akey *cur,
                    const struct ctkn_akey_event *ev, struct ctkn_akey *next,
                    char *reason, size_t reasonsz)
{
  if (reasonsz > 0)
    reason[0] = '\0';
  if (ev->type == CTKN_AKEY_CREATED) {
    if (cur != NULL)
      return reject(reason, reasonsz, "the key exists already");
    *next = ev->data;
    return CTKN_OK;
  }
  if (cur == NULL)
    return reject(reason, reasonsz, "no such key");
  if (ev->type == CTKN_AKEY_USED) {
    *next = *cur;
    if (ev->data.last_used_at > next->last_used_at)
      next->last_used_at = ev->data.last_used_at;
    return CTKN_OK;
  }
  if (ev->type == CTKN_AKEY_EXPIRING) {
    /* First in the log wins: a second notice for the same expires_at,
     * or one read from another version, changes nothing. */
    if (ev->version != cur->version)
      return reject(reason, reasonsz, "not the key's current version");
    if (cur->status != CTKN_AKEY_ACTIVE)
      return reject(reason, reasonsz, "the key is revoked or expired");
    if (cur->expires_at == 0 || ev->data.expires_at != cur->expires_at)
      return reject(reason, reasonsz, "not the key's expires_at");
    if (cur->expiring_for == cur->expires_at)
      return reject(reason, reasonsz,
                    "an expiring notice for this expires_at applied already");
    *next = *cur;
    next->expiring_for = cur->expires_at;
    return CTKN_OK;
  }
  if (ev->version != cur->version + 1)
    return reject(reason, reasonsz, "not the next version of the key");
  if (cur->status != CTKN_AKEY_ACTIVE)
    return reject(reason, reasonsz, "the key is revoked or expired");
  if (strcmp(ev->data.id, cur->id) != 0 ||
      ev->data.created_at != cur->created_at ||
      ev->data.updated_at <= cur->updated_at)
    return reject(reason, reasonsz,
                  "changes the ID or created_at, or is not later");
  *next = ev->data;
  /* last_used_at is the "used" records' alone, expiring_for the expiring
   * notices'. */
  next->last_used_at = cur->last_used_at;
  next->expiring_for = cur->expiring_for;
  return CTKN_OK;
}

/* ---- commands ------------------------------------------------------------ */

void ctkn_akey_command_init(struct ctkn_akey_command *cmd,
                            ctkn_akey_cmd_kind kind)
{
  memset(cmd, 0, sizeof(*cmd));
  cmd->kind = kind;
}

int ctkn_akey_command_set_id(struct ctkn_akey_command *cmd, const char *id,
                             struct ctkn_err *err)
{
  if (id == NULL || !ctkn_id_valid("apikey_", id))
    return ctkn__err_field(err, CTKN_EINVAL, "id",
                           "must be apikey_ followed by 26 lowercase ULID "
                           "characters");
  memcpy(cmd->id, id, CTKN_AKEY_ID_BUF);
  return CTKN_OK;
}

int ctkn_akey_command_set_name(struct ctkn_akey_command *cmd, const char *s,
                               size_t len, struct ctkn_err *err)
{
  int rc;

  if (s == NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "name", "must not be null");
  if ((rc = ctkn_validate_name(s, len, err)) != CTKN_OK)
    return rc;
  memcpy(cmd->name, s, len);
  cmd->name[len] = '\0';
  cmd->set_name = true;
  return CTKN_OK;
}

int ctkn_akey_command_set_description(struct ctkn_akey_command *cmd,
                                      const char *s, size_t len,
                                      struct ctkn_err *err)
{
  int rc;

  cmd->set_description = true;
  cmd->has_description = s != NULL;
  cmd->description[0] = '\0';
  if (s == NULL)
    return CTKN_OK;
  if ((rc = ctkn_validate_description(s, len, err)) != CTKN_OK)
    return rc;
  memcpy(cmd->description, s, len);
  cmd->description[len] = '\0';
  return CTKN_OK;
}

int ctkn_akey_command_set_perms(struct ctkn_akey_command *cmd, unsigned perms,
                                struct ctkn_err *err)
{
  if (perms == 0 || (perms & ~(unsigned)CTKN_PERMS_ALL) != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                           "must list at least one of " CTKN_PERMS_LIST);
  cmd->perms = ctkn_perms_with_reads(perms);
  cmd->set_perms = true;
  return CTKN_OK;
}

int ctkn_akey_command_set_expires(struct ctkn_akey_command *cmd, int64_t at,
                                  int64_t now, struct ctkn_err *err)
{
  if (at != 0 && at <= now)
    return ctkn__err_field(err, CTKN_EINVAL, "expires_at",
                           "must be in the future, or null for never");
  cmd->expires_at = at;
  cmd->set_expires = true;
  return CTKN_OK;
}

int ctkn_akey_command_set_grace(struct ctkn_akey_command *cmd, int64_t s,
                                struct ctkn_err *err)
{
  if (s < 0 || s > CTKN_AKEY_GRACE_MAX)
    return ctkn__err_field(err, CTKN_EINVAL, "grace_period_seconds",
                           "must be between 0 and 86400");
  cmd->grace_s = s;
  return CTKN_OK;
}

/* A new key from a create or an import. */
static int plan_new(const struct ctkn_akey_command *cmd, ctkn_env env,
                    int64_t now, struct ctkn_akey_event *ev, char *key,
                    struct ctkn_err *err)
{
  struct ctkn_akey *k = &ev->data;
  int rc;

  if (!cmd->set_name || !cmd->set_perms)
    return ctkn__err_field(err, CTKN_EINVAL,
                           cmd->set_name ? "permissions" : "name",
                           "is required to create a key");
  if ((rc = ctkn_id_generate("apikey_", now / 1000, k->id, sizeof(k->id))) !=
      CTKN_OK)
    return ctkn__err(err, rc, "no randomness for a key ID");
  memcpy(k->name, cmd->name, sizeof(k->name));
  k->has_description = cmd->set_description && cmd->has_description;
  memcpy(k->description, cmd->description, sizeof(k->description));
  k->perms = cmd->perms;
  k->expires_at = cmd->set_expires ? cmd->expires_at : 0;
  k->created_at = cmd->kind == CTKN_AKEY_CMD_IMPORT && cmd->created_at > 0 &&
                          cmd->created_at <= now
                      ? cmd->created_at
                      : now;
  k->updated_at = now;
  k->version = 1;
  if (cmd->kind == CTKN_AKEY_CMD_IMPORT) {
    memcpy(k->sha256, cmd->sha256, sizeof(k->sha256));
    k->legacy = true;
  } else if ((rc = ctkn_akey_generate(k->id, env, key, k->sha256)) != CTKN_OK) {
    return ctkn__err(err, rc, "no randomness for a key");
  }
  ev->type = CTKN_AKEY_CREATED;
  return CTKN_OK;
}

/* What an update changes; false when nothing. */
static bool apply_update(const struct ctkn_akey_command *cmd,
                         struct ctkn_akey *k)
{
  bool changed = false;

  if (cmd->set_name && strcmp(k->name, cmd->name) != 0) {
    memcpy(k->name, cmd->name, sizeof(k->name));
    changed = true;
  }
  if (cmd->set_description && (k->has_description != cmd->has_description ||
                               strcmp(k->description, cmd->description) != 0)) {
    k->has_description = cmd->has_description;
    memcpy(k->description, cmd->description, sizeof(k->description));
    changed = true;
  }
  if (cmd->set_perms && k->perms != cmd->perms) {
    k->perms = cmd->perms;
    changed = true;
  }
  if (cmd->set_expires && k->expires_at != cmd->expires_at) {
    k->expires_at = cmd->expires_at;
    changed = true;
  }
  return changed;
}

/* A change to cur: update, rotate, revoke, used. */
static int plan_change(const struct ctkn_akey *cur,
                       const struct ctkn_akey_command *cmd, ctkn_env env,
                       int64_t now, struct ctkn_akey_event *ev, char *key,
                       struct ctkn_err *err)
{
  struct ctkn_akey *k = &ev->data;
  bool revoke = cmd->kind == CTKN_AKEY_CMD_REVOKE || cmd->revoke;
  int rc;

  *k = *cur;
  if (cmd->kind == CTKN_AKEY_CMD_EXPIRING) {
    if (cur->status != CTKN_AKEY_ACTIVE || cur->expires_at == 0 ||
        cur->expiring_for == cur->expires_at || now >= cur->expires_at ||
        now < cur->expires_at - cmd->lead_us)
      return CTKN_AKEY_PLAN_NOOP; /* not due, or done */
    ev->type = CTKN_AKEY_EXPIRING;
    ev->occurred_at = now;
    ev->version = cur->version;
    return CTKN_AKEY_PLAN_APPEND;
  }
  if (cmd->kind == CTKN_AKEY_CMD_EXPIRE) {
    if (cur->status != CTKN_AKEY_ACTIVE || cur->expires_at == 0 ||
        now < cur->expires_at)
      return CTKN_AKEY_PLAN_NOOP;
    /* It occurs at expires_at, whoever appends it and when. */
    k->status = CTKN_AKEY_ST_EXPIRED;
    ev->type = CTKN_AKEY_EXPIRED;
    k->updated_at = cur->expires_at > cur->updated_at ? cur->expires_at
                                                      : cur->updated_at + 1;
    k->version = cur->version + 1;
    return CTKN_OK;
  }
  if (cmd->kind == CTKN_AKEY_CMD_USED) {
    /* Appended even when another replica's later use is in already: each
     * replica reports its own uses, and applying keeps the latest. */
    if (cmd->used_at <= 0)
      return ctkn__err_field(err, CTKN_EINVAL, "last_used_at", "must be set");
    memset(k, 0, sizeof(*k));
    memcpy(k->id, cur->id, sizeof(k->id));
    k->last_used_at = cmd->used_at;
    ev->type = CTKN_AKEY_USED;
    ev->occurred_at = cmd->used_at;
    return CTKN_AKEY_PLAN_APPEND;
  }
  if (revoke && cur->status == CTKN_AKEY_ST_REVOKED)
    return CTKN_AKEY_PLAN_NOOP;
  if (ctkn_akey_status_at(cur, now) != CTKN_AKEY_ACTIVE)
    return ctkn__err(err, CTKN_ECONFLICT, "API key %s is %s: it cannot change",
                     cur->id,
                     ctkn_akey_status_str(ctkn_akey_status_at(cur, now)));
  bool changed = apply_update(cmd, k);
  if (revoke) {
    k->status = CTKN_AKEY_ST_REVOKED;
    ev->type = CTKN_AKEY_REVOKED;
  } else if (cmd->kind == CTKN_AKEY_CMD_ROTATE) {
    if (k->legacy)
      return ctkn__err_field(err, CTKN_EINVAL, "id",
                             "an imported key-file key cannot be rotated: "
                             "create a new key and revoke this one");
    memcpy(k->previous_sha256, cur->sha256, sizeof(k->sha256));
    k->has_previous = cmd->grace_s > 0;
    k->previous_until = cmd->grace_s > 0 ? now + cmd->grace_s * 1000000 : 0;
    if (!k->has_previous)
      memset(k->previous_sha256, 0, sizeof(k->previous_sha256));
    if ((rc = ctkn_akey_generate(k->id, env, key, k->sha256)) != CTKN_OK)
      return ctkn__err(err, rc, "no randomness for a key");
    ev->type = CTKN_AKEY_ROTATED;
  } else if (!changed) {
    return CTKN_AKEY_PLAN_NOOP;
  } else {
    ev->type = CTKN_AKEY_UPDATED;
  }
  k->updated_at = now > cur->updated_at ? now : cur->updated_at + 1;
  k->version = cur->version + 1;
  return CTKN_OK;
}

int ctkn_akey_plan(const struct ctkn_akey *cur,
                   const struct ctkn_akey_command *cmd, ctkn_env env,
                   int64_t now, struct ctkn_akey_event *ev,
                   char key[CTKN_AKEY_BUF], struct ctkn_err *err)
{
  char scratch[CTKN_AKEY_BUF];
  char *kout = key != NULL ? key : scratch;
  int rc;

  memset(ev, 0, sizeof(*ev));
  kout[0] = '\0';
  if (cmd->kind == CTKN_AKEY_CMD_CREATE || cmd->kind == CTKN_AKEY_CMD_IMPORT)
    rc = plan_new(cmd, env, now, ev, kout, err);
  else if (cur == NULL)
    return ctkn__err(err, CTKN_ENOTFOUND, "no API key %s", cmd->id);
  else
    rc = plan_change(cur, cmd, env, now, ev, kout, err);
  if (rc == CTKN_AKEY_PLAN_APPEND &&
      (cmd->kind == CTKN_AKEY_CMD_USED || cmd->kind == CTKN_AKEY_CMD_EXPIRING))
    goto id;
  if (rc != CTKN_OK) {
    ctkn_wipe(scratch, sizeof(scratch));
    if (rc != CTKN_AKEY_PLAN_NOOP && key != NULL)
      ctkn_wipe(key, CTKN_AKEY_BUF);
    return rc;
  }
  ev->version = ev->data.version;
  ev->occurred_at = ev->data.updated_at;
id:
  ctkn_wipe(scratch, sizeof(scratch));
  if ((rc = ctkn_id_generate("evt_", ev->occurred_at / 1000, ev->event_id,
                             sizeof(ev->event_id))) != CTKN_OK) {
    if (key != NULL)
      ctkn_wipe(key, CTKN_AKEY_BUF);
    return ctkn__err(err, rc, "no randomness for an event ID");
  }
  return CTKN_AKEY_PLAN_APPEND;
}
