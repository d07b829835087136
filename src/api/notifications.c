/*
 * notifications.c - Paddle's notifications routes (notifications.h),
 * answered on the worker from this replica's projection of the
 * notifications topic (delivery.h), so every replica answers them:
 *
 *   GET  /notifications                  notification_setting.read
 *   GET  /notifications/{id}             notification_setting.read
 *   GET  /notifications/{id}/logs        notification_setting.read
 *   POST /notifications/{id}/replay      notification_setting.write
 *
 * A replay is a record on the notifications topic (signed with this
 * replica's writer key under a trust root): 202 with the new
 * notification's ID; the notifier holding the event's partition sends it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "ctkn/codec.h"
#include "ctkn/delivery.h"
#include "ctkn/notifications.h"
#include "ctkn/settings.h"
#include "ctkn/trust.h"

/* Every value of a repeatable parameter (comma-separated, or repeated as
 * Paddle's Go SDK sends a list) through set. */
static int each_value(const struct req *r, const char *name,
                      struct ctkn_ntfs_params *p,
                      int (*set)(struct ctkn_ntfs_params *, const char *,
                                 struct ctkn_err *),
                      struct ctkn_err *err)
{
  int rc = CTKN_OK;

  for (size_t i = 0; rc == CTKN_OK && i < r->nquery; i++)
    if (strcmp(r->query[i].key, name) == 0)
      rc = set(p, r->query[i].value ? r->query[i].value : "", err);
  return rc;
}

static int parse_params(const struct req *r, struct ctkn_ntfs_params *p,
                        struct ctkn_err *err)
{
  static const struct {
    const char *name;
    int (*set)(struct ctkn_ntfs_params *, const char *, struct ctkn_err *);
  } setters[] = {{"after", ctkn_ntfs_params_after},
                 {"per_page", ctkn_ntfs_params_per_page},
                 {"order_by", ctkn_ntfs_params_order_by},
                 {"from", ctkn_ntfs_params_from},
                 {"to", ctkn_ntfs_params_to}};
  int rc = CTKN_OK;

  ctkn_ntfs_params_init(p);
  for (size_t i = 0; rc == CTKN_OK && i < CTKN__ARRAY_LEN(setters); i++) {
    const char *v = ctkn__api_arg(r, setters[i].name);
    if (v != NULL)
      rc = setters[i].set(p, v, err);
  }
  if (rc == CTKN_OK)
    rc = each_value(r, "status", p, ctkn_ntfs_params_status, err);
  if (rc == CTKN_OK)
    rc = each_value(r, "notification_setting_id", p, ctkn_ntfs_params_dests,
                    err);
  return rc;
}

static void route_list(struct server *s, struct req *r)
{
  static const char *const allowed[] = {
      "after", "per_page", "order_by", "status", "notification_setting_id",
      "from",  "to",       NULL};
  struct ctkn_ntfs_params p;
  struct ctkn_err err = {0};
  char *json = NULL, *base;
  int rc;

  if (!ctkn__api_query_ok(r, allowed, "status"))
    return;
  if ((rc = parse_params(r, &p, &err)) != CTKN_OK) {
    ctkn__api_answer_err(r, &err);
    return;
  }
  if ((base = ctkn__api_base_with(s, "/notifications")) == NULL) {
    ctkn__api_answer_code(r, CTKN_ENOMEM, "out of memory");
    return;
  }
  rc = ctkn_ntfs_list(s->st, &p, base, r->rid, &json, &err);
  free(base);
  ctkn__api_answer_query(r, rc, json, &err);
}

static void route_get(struct server *s, struct req *r)
{
  static const char *const none[] = {NULL};
  struct ctkn_err err = {0};
  char *json = NULL;
  int rc;

  if (!ctkn__api_query_ok(r, none, NULL))
    return;
  rc = ctkn_ntfs_get(s->st, r->id, r->rid, &json, &err);
  ctkn__api_answer_query(r, rc, json, &err);
}

static void route_logs(struct server *s, struct req *r)
{
  static const char *const allowed[] = {"after", "per_page", NULL};
  struct ctkn_ntfs_params p;
  struct ctkn_err err = {0};
  const char *after = ctkn__api_arg(r, "after"), *pp;
  char *json = NULL, *base, suffix[CTKN__API_ID_BUF + 24];
  int rc = CTKN_OK;

  if (!ctkn__api_query_ok(r, allowed, NULL))
    return;
  ctkn_ntfs_params_init(&p);
  if ((pp = ctkn__api_arg(r, "per_page")) != NULL &&
      (rc = ctkn_ntfs_params_per_page(&p, pp, &err)) != CTKN_OK) {
    ctkn__api_answer_err(r, &err);
    return;
  }
  snprintf(suffix, sizeof(suffix), "/notifications/%s/logs", r->id);
  if ((base = ctkn__api_base_with(s, suffix)) == NULL) {
    ctkn__api_answer_code(r, CTKN_ENOMEM, "out of memory");
    return;
  }
  rc = ctkn_ntfs_logs(s->st, r->id, after ? after : "", p.per_page, base,
                      r->rid, &json, &err);
  free(base);
  ctkn__api_answer_query(r, rc, json, &err);
}

void ctkn__api_ntfs_read(struct server *s, struct req *r)
{
  struct ctkn_err err = {0};

  if (ctkn__api_side_stale(s, CTKN_PROJECTOR_NOTIFICATIONS, &err)) {
    ctkn__api_answer_err(r, &err);
    return;
  }
  if (r->route == R_NTF_LIST)
    route_list(s, r);
  else if (r->route == R_NTF_GET)
    route_get(s, r);
  else
    route_logs(s, r);
}

/* The keyring as the settings topic has it now (a replay is rare: read
 * it fresh rather than share the follower's). */
static int keyring_now(struct server *s, struct ctkn_keyring *kr,
                       struct ctkn_err *err)
{
  struct ctkn_log_config scfg = *s->cfg->log;
  ctkn_pubkey *root = NULL;
  int rc;

  ctkn_keyring_init(kr);
  if ((rc = ctkn_settings_topic(s->cfg->log->topic, scfg.topic,
                                sizeof(scfg.topic), err)) == CTKN_OK &&
      (rc = ctkn_pubkey_new(&root, s->cfg->trust_root, err)) == CTKN_OK)
    rc = ctkn_trust_keyring_fetch(&scfg, root, kr, NULL, NULL, err);
  ctkn_pubkey_free(root);
  return rc;
}

void ctkn__api_ntfs_replay(struct server *s, struct req *r)
{
  static const char *const none[] = {NULL};
  struct ctkn_keyring *kr = NULL;
  struct ctkn_err err = {0};
  char id[CTKN_NTF_ID_BUF], *json = NULL;
  const ctkn_seckey *key = NULL;
  int rc = CTKN_OK;

  if (!ctkn__api_query_ok(r, none, NULL))
    return;
  if (s->cfg->trust_root != NULL) {
    if ((key = s->cfg->writer_key) == NULL) {
      ctkn__api_answer_code(r, CTKN_EFORBIDDEN,
                            "this replica has no writer key: it is read-only "
                            "on the log, and cannot append a replay");
      return;
    }
    if ((kr = malloc(sizeof(*kr))) == NULL)
      rc = ctkn__err(&err, CTKN_ENOMEM, "out of memory");
    if (rc == CTKN_OK)
      rc = keyring_now(s, kr, &err);
  }
  if (rc == CTKN_OK)
    rc = ctkn_delivery_request_replay(s->st, s->cfg->log, kr, key, r->id, id,
                                      &err);
  if (kr != NULL)
    ctkn_keyring_free(kr);
  free(kr);
  if (rc == CTKN_OK &&
      (json = ctkn_json_notification_replayed(id, r->rid)) == NULL)
    rc = ctkn__err(&err, CTKN_ENOMEM, "out of memory");
  ctkn__api_answer_query(r, rc, json, &err);
  if (rc == CTKN_OK)
    r->status = 202;
}
