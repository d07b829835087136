/*
 * notifications.c - GET /notifications, /notifications/{id} and
 * /notifications/{id}/logs over the projection of the notifications topic
 * (notifications.h, delivery.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/delivery.h"
#include "ctkn/notifications.h"
#include "ctkn/notify.h"
#include "ctkn/query.h"
#include "internal.h"
#include "query_int.h"

static int oom(struct ctkn_err *err)
{
  return ctkn__err(err, CTKN_ENOMEM, "rendering JSON");
}

/* ---- parameters --------------------------------------------------------- */

void ctkn_ntfs_params_init(struct ctkn_ntfs_params *p)
{
  memset(p, 0, sizeof(*p));
  p->per_page = CTKN_PER_PAGE_DEFAULT;
  p->desc = true;
}

int ctkn_ntfs_params_per_page(struct ctkn_ntfs_params *p, const char *s,
                              struct ctkn_err *err)
{
  return ctkn__page_per_page(s, &p->per_page, err);
}

int ctkn_ntfs_params_order_by(struct ctkn_ntfs_params *p, const char *s,
                              struct ctkn_err *err)
{
  return ctkn__page_order_by(s, &p->desc, err);
}

int ctkn_ntfs_params_after(struct ctkn_ntfs_params *p, const char *s,
                           struct ctkn_err *err)
{
  if (!ctkn_id_valid("ntf_", s))
    return ctkn__err_field(
        err, CTKN_EINVAL, "after",
        "must be a notification ID (" CTKN_ID_PATTERN("ntf_") ")");
  ctkn__strlcpy(p->after, s, sizeof(p->after));
  return CTKN_OK;
}

int ctkn_ntfs_params_status(struct ctkn_ntfs_params *p, const char *s,
                            struct ctkn_err *err)
{
  unsigned mask = 0;
  const char *c = s;

  for (;;) {
    size_t n = strcspn(c, ",");
    unsigned bit = 0;
    for (int st = CTKN_NTF_NOT_ATTEMPTED; st <= CTKN_NTF_FAILED; st++) {
      const char *name = ctkn_ntf_status_str((ctkn_ntf_status)st);
      if (strlen(name) == n && strncmp(name, c, n) == 0)
        bit = 1u << st;
    }
    if (bit == 0)
      return ctkn__err_field(err, CTKN_EINVAL, "status",
                             "must be a comma-separated list of delivered, "
                             "failed, needs_retry and not_attempted (\"%.*s\" "
                             "is not one)",
                             (int)(n > 64 ? 64 : n), c);
    mask |= bit;
    if (c[n] == '\0')
      break;
    c += n + 1;
  }
  p->status_mask |= mask;
  return CTKN_OK;
}

int ctkn_ntfs_params_dests(struct ctkn_ntfs_params *p, const char *s,
                           struct ctkn_err *err)
{
  char ids[CTKN_NTF_DESTS_MAX][CTKN_DEST_ID_BUF];
  size_t k = p->ndests;
  const char *c = s;

  memcpy(ids, p->dests, sizeof(ids));
  for (;;) {
    size_t n = strcspn(c, ",");
    if (n != CTKN_DEST_ID_LEN || k == CTKN_NTF_DESTS_MAX)
      goto bad;
    memcpy(ids[k], c, n);
    ids[k][n] = '\0';
    if (!ctkn_id_valid("ntfset_", ids[k++]))
      goto bad;
    if (c[n] == '\0')
      break;
    c += n + 1;
  }
  memcpy(p->dests, ids, sizeof(ids));
  p->ndests = k;
  return CTKN_OK;
bad:
  return ctkn__err_field(
      err, CTKN_EINVAL, "notification_setting_id",
      "must be a comma-separated list of at most %d "
      "notification setting IDs (" CTKN_ID_PATTERN("ntfset_") ")",
      CTKN_NTF_DESTS_MAX);
}

int ctkn_ntfs_params_from(struct ctkn_ntfs_params *p, const char *s,
                          struct ctkn_err *err)
{
  int rc = ctkn__page_time("from", s, &p->from_us, err);

  p->has_from |= rc == CTKN_OK;
  return rc;
}

int ctkn_ntfs_params_to(struct ctkn_ntfs_params *p, const char *s,
                        struct ctkn_err *err)
{
  int rc = ctkn__page_time("to", s, &p->to_us, err);

  p->has_to |= rc == CTKN_OK;
  return rc;
}

/* ---- pages ----------------------------------------------------------------
 */

struct page {
  struct ctkn__page pg;
  ctkn_store_txn *txn;
  const char *ntf_id; /* logs: whose */
  const char *after;  /* logs: skip up to this log ID */
  struct ctkn_err *err;
};

/* One notification as Paddle's entity, its payload rebuilt. */
static char *render(ctkn_store_txn *txn, const struct ctkn_notification *n,
                    int *rc, struct ctkn_err *err)
{
  char *payload = NULL, *json;

  *rc = ctkn_notification_payload(txn, n, &payload, err);
  if (*rc != CTKN_OK && *rc != CTKN_ENOTFOUND)
    return NULL;
  *rc = CTKN_OK;
  json = ctkn_json_notification(n, payload);
  free(payload);
  if (json == NULL)
    *rc = oom(err);
  return json;
}

static int put_item(struct page *pg, char *json, const char *id)
{
  int rc = ctkn__page_put(&pg->pg, json, strlen(json), id, pg->err);

  free(json);
  return rc;
}

static int page_ntf(void *arg, const struct ctkn_notification *n)
{
  struct page *pg = arg;
  char *json;
  int rc;

  if (ctkn__page_full(&pg->pg))
    return 1; /* stop: this page is full */
  if ((json = render(pg->txn, n, &rc, pg->err)) == NULL)
    return rc;
  return put_item(pg, json, n->id);
}

/* The following page's URL: base, then every parameter in force. */
static int next_link(struct ctkn__buf *u, const struct ctkn_ntfs_params *p,
                     const char *base, const char *after)
{
  int rc = ctkn__buf_printf(u, "%s?", base != NULL ? base : "");

  if (rc == CTKN_OK && after[0] != '\0')
    rc = ctkn__buf_printf(u, "after=%s&", after);
  for (size_t i = 0; rc == CTKN_OK && i < p->ndests; i++)
    rc =
        ctkn__buf_printf(u, "%s%s%s", i == 0 ? "notification_setting_id=" : ",",
                         p->dests[i], i + 1 == p->ndests ? "&" : "");
  for (int s = CTKN_NTF_NOT_ATTEMPTED, k = 0;
       rc == CTKN_OK && s <= CTKN_NTF_FAILED; s++)
    if (p->status_mask & (1u << s))
      rc = ctkn__buf_printf(u, "%s%s", k++ ? "," : "status=",
                            ctkn_ntf_status_str((ctkn_ntf_status)s));
  if (rc == CTKN_OK && p->status_mask != 0)
    rc = ctkn__buf_puts(u, "&");
  if (rc == CTKN_OK)
    rc = ctkn__page_link_tail(u, p->has_from, p->from_us, p->has_to, p->to_us,
                              p->desc, p->per_page);
  return rc;
}

/* Finish pg: meta with next (a URL made by the caller, freed here). */
static int finish(struct page *pg, struct ctkn__buf *u, int64_t total,
                  const char *request_id, char **json, int rc,
                  struct ctkn_err *err)
{
  rc = ctkn__page_end(&pg->pg, rc, u->data, total, request_id, json, err);
  ctkn__buf_free(u);
  return rc;
}

int ctkn_ntfs_list(ctkn_store *st, const struct ctkn_ntfs_params *p,
                   const char *next_base, const char *request_id, char **json,
                   struct ctkn_err *err)
{
  struct ctkn__buf u = CTKN__BUF_INIT;
  const char *dests[CTKN_NTF_DESTS_MAX];
  struct ctkn_delivery_filter f = {.status_mask = p->status_mask,
                                   .dests = dests,
                                   .ndests = p->ndests,
                                   .has_from = p->has_from,
                                   .has_to = p->has_to,
                                   .from_us = p->from_us,
                                   .to_us = p->to_us,
                                   .after = p->after,
                                   .desc = p->desc};
  struct page pg = {.err = err};
  int64_t total = 0;
  int rc;

  *json = NULL;
  for (size_t i = 0; i < p->ndests; i++)
    dests[i] = p->dests[i];
  if ((rc = ctkn__page_begin(&pg.pg, p->per_page, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_store_begin(st, false, &pg.txn, err)) == CTKN_OK) {
    if ((rc = ctkn_delivery_count(pg.txn, &total, err)) == CTKN_OK)
      rc = ctkn_delivery_list(pg.txn, &f, page_ntf, &pg, err);
    if (rc == 1)
      rc = CTKN_OK; /* the page filled */
    ctkn_store_abort(pg.txn);
  }
  if (rc == CTKN_OK &&
      next_link(&u, p, next_base, pg.pg.n > 0 ? pg.pg.last : p->after) !=
          CTKN_OK)
    rc = oom(err);
  return finish(&pg, &u, total, request_id, json, rc, err);
}

int ctkn_ntfs_get(ctkn_store *st, const char *id, const char *request_id,
                  char **json, struct ctkn_err *err)
{
  struct ctkn_notification n;
  struct ctkn__buf b = CTKN__BUF_INIT;
  ctkn_store_txn *txn;
  char *one = NULL;
  int rc;

  *json = NULL;
  if (!ctkn_id_valid("ntf_", id))
    return ctkn__err_field(
        err, CTKN_EINVAL, "notification_id",
        "must be a notification ID (" CTKN_ID_PATTERN("ntf_") ")");
  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_delivery_get(txn, id, &n, err)) == CTKN_OK)
    one = render(txn, &n, &rc, err);
  ctkn_store_abort(txn);
  if (one == NULL)
    return rc;
  if (ctkn__buf_printf(&b, "{\"data\":%s,\"meta\":{\"request_id\":", one) !=
          CTKN_OK ||
      ctkn__buf_json_str(&b, request_id, strlen(request_id)) != CTKN_OK ||
      ctkn__buf_puts(&b, "}}") != CTKN_OK)
    rc = oom(err);
  free(one);
  if (rc != CTKN_OK) {
    ctkn__buf_free(&b);
    return rc;
  }
  *json = b.data;
  return CTKN_OK;
}

/* ---- logs -----------------------------------------------------------------
 */

static int page_log(void *arg, const struct ctkn_ntf_attempt *a)
{
  struct page *pg = arg;
  char id[CTKN_NTFLOG_ID_BUF], *json;

  ctkn_notification_log_id(pg->ntf_id, a->n, a->at, id);
  if (pg->after != NULL) {
    if (strcmp(id, pg->after) == 0)
      pg->after = NULL; /* the cursor: the page starts after it */
    return 0;
  }
  if (ctkn__page_full(&pg->pg))
    return 1;
  if ((json = ctkn_json_notification_log(pg->ntf_id, a)) == NULL)
    return oom(pg->err);
  return put_item(pg, json, id);
}

int ctkn_ntfs_logs(ctkn_store *st, const char *id, const char *after,
                   int per_page, const char *next_base, const char *request_id,
                   char **json, struct ctkn_err *err)
{
  struct ctkn__buf u = CTKN__BUF_INIT;
  struct ctkn_notification n;
  struct page pg = {.ntf_id = id, .err = err};
  int rc;

  *json = NULL;
  if (!ctkn_id_valid("ntf_", id))
    return ctkn__err_field(
        err, CTKN_EINVAL, "notification_id",
        "must be a notification ID (" CTKN_ID_PATTERN("ntf_") ")");
  if (after[0] != '\0' && !ctkn_id_valid("ntflog_", after))
    return ctkn__err_field(err, CTKN_EINVAL, "after",
                           "must be a notification log ID "
                           "(" CTKN_ID_PATTERN("ntflog_") ")");
  pg.after = after[0] != '\0' ? after : NULL;
  if ((rc = ctkn__page_begin(&pg.pg, per_page, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_store_begin(st, false, &pg.txn, err)) == CTKN_OK) {
    if ((rc = ctkn_delivery_get(pg.txn, id, &n, err)) == CTKN_OK)
      rc = ctkn_delivery_attempts(pg.txn, id, 0, page_log, &pg, err);
    if (rc == 1)
      rc = CTKN_OK;
    ctkn_store_abort(pg.txn);
  }
  if (rc == CTKN_OK && pg.after != NULL)
    rc = ctkn__err_field(err, CTKN_EINVAL, "after",
                         "%s is not a log of notification %s", after, id);
  if (rc == CTKN_OK &&
      ctkn__buf_printf(&u, "%s?%s%s%sper_page=%d", next_base ? next_base : "",
                       pg.pg.n > 0 || after[0] ? "after=" : "",
                       pg.pg.n > 0 ? pg.pg.last : after,
                       pg.pg.n > 0 || after[0] ? "&" : "", per_page) != CTKN_OK)
    rc = oom(err);
  return finish(&pg, &u, rc == CTKN_OK ? n.attempts : 0, request_id, json, rc,
                err);
}
