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
  struct ctkn_list_params l;
  int rc;

  ctkn_list_params_init(&l);
  if ((rc = ctkn_list_params_per_page(&l, s, err)) == CTKN_OK)
    p->per_page = l.per_page;
  return rc;
}

int ctkn_ntfs_params_order_by(struct ctkn_ntfs_params *p, const char *s,
                              struct ctkn_err *err)
{
  struct ctkn_list_params l;
  int rc;

  ctkn_list_params_init(&l);
  if ((rc = ctkn_list_params_order_by(&l, s, err)) == CTKN_OK)
    p->desc = l.desc;
  return rc;
}

int ctkn_ntfs_params_after(struct ctkn_ntfs_params *p, const char *s,
                           struct ctkn_err *err)
{
  if (!ctkn_id_valid("ntf_", s))
    return ctkn__err_field(err, CTKN_EINVAL, "after",
                           "must be a notification ID (^ntf_[a-z0-9]{26}$)");
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
  return ctkn__err_field(err, CTKN_EINVAL, "notification_setting_id",
                         "must be a comma-separated list of at most %d "
                         "notification setting IDs (^ntfset_[a-z0-9]{26}$)",
                         CTKN_NTF_DESTS_MAX);
}

static int parse_time(const char *name, const char *s, int64_t *us,
                      struct ctkn_err *err)
{
  struct ctkn_err perr = {0};

  if (ctkn_time_parse(s, us, &perr) != CTKN_OK)
    return ctkn__err_field(err, CTKN_EINVAL, name,
                           "must be an RFC 3339 date-time between 1970 and "
                           "9999, such as 2026-12-05T10:00:00Z: %s",
                           perr.msg);
  return CTKN_OK;
}

int ctkn_ntfs_params_from(struct ctkn_ntfs_params *p, const char *s,
                          struct ctkn_err *err)
{
  int rc = parse_time("from", s, &p->from_us, err);

  p->has_from |= rc == CTKN_OK;
  return rc;
}

int ctkn_ntfs_params_to(struct ctkn_ntfs_params *p, const char *s,
                        struct ctkn_err *err)
{
  int rc = parse_time("to", s, &p->to_us, err);

  p->has_to |= rc == CTKN_OK;
  return rc;
}

/* ---- pages ----------------------------------------------------------------
 */

struct page {
  struct ctkn__buf *b;
  ctkn_store_txn *txn;
  int want, n;
  bool more;
  char last[CTKN_NTFLOG_ID_BUF]; /* an ntf_ or ntflog_ ID */
  const char *ntf_id;            /* logs: whose */
  const char *after;             /* logs: skip up to this log ID */
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
  int rc = CTKN_OK;

  if ((pg->n > 0 && ctkn__buf_puts(pg->b, ",") != CTKN_OK) ||
      ctkn__buf_puts(pg->b, json) != CTKN_OK)
    rc = oom(pg->err);
  free(json);
  ctkn__strlcpy(pg->last, id, sizeof(pg->last));
  pg->n++;
  return rc;
}

static int page_ntf(void *arg, const struct ctkn_notification *n)
{
  struct page *pg = arg;
  char *json;
  int rc;

  if (pg->n == pg->want) {
    pg->more = true;
    return 1; /* stop: this page is full */
  }
  if ((json = render(pg->txn, n, &rc, pg->err)) == NULL)
    return rc;
  return put_item(pg, json, n->id);
}

/* The page's meta after its data. */
static int put_meta(struct ctkn__buf *b, const struct page *pg,
                    const char *next, int64_t total, const char *request_id)
{
  int rc = ctkn__buf_puts(b, "],\"meta\":{\"request_id\":");

  if (rc == CTKN_OK)
    rc = ctkn__buf_json_str(b, request_id, strlen(request_id));
  if (rc == CTKN_OK)
    rc = ctkn__buf_printf(
        b, ",\"pagination\":{\"per_page\":%d,\"next\":", pg->want);
  if (rc == CTKN_OK)
    rc = ctkn__buf_json_str(b, next, strlen(next));
  if (rc == CTKN_OK)
    rc = ctkn__buf_printf(b,
                          ",\"has_more\":%s,\"estimated_total\":%" PRId64 "}}}",
                          pg->more ? "true" : "false", total);
  return rc;
}

/* The following page's URL: base, then every parameter in force. */
static int next_link(struct ctkn__buf *u, const struct ctkn_ntfs_params *p,
                     const char *base, const char *after)
{
  char t[CTKN_TIME_BUF];
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
  if (rc == CTKN_OK && p->has_from && ctkn_time_format(p->from_us, t) == 0)
    rc = ctkn__buf_printf(u, "from=%s&", t);
  if (rc == CTKN_OK && p->has_to && ctkn_time_format(p->to_us, t) == 0)
    rc = ctkn__buf_printf(u, "to=%s&", t);
  if (rc == CTKN_OK)
    rc = ctkn__buf_printf(u, "order_by=id%%5B%s%%5D&per_page=%d",
                          p->desc ? "DESC" : "ASC", p->per_page);
  return rc;
}

/* Finish b as a page: meta with next (a URL made by the caller). */
static int finish(struct ctkn__buf *b, struct page *pg, struct ctkn__buf *u,
                  int64_t total, const char *request_id, char **json, int rc,
                  struct ctkn_err *err)
{
  if (rc == CTKN_OK && put_meta(b, pg, u->data != NULL ? u->data : "", total,
                                request_id) != CTKN_OK)
    rc = oom(err);
  ctkn__buf_free(u);
  if (rc != CTKN_OK) {
    ctkn__buf_free(b);
    return rc;
  }
  *json = b->data;
  return CTKN_OK;
}

int ctkn_ntfs_list(ctkn_store *st, const struct ctkn_ntfs_params *p,
                   const char *next_base, const char *request_id, char **json,
                   struct ctkn_err *err)
{
  struct ctkn__buf b = CTKN__BUF_INIT, u = CTKN__BUF_INIT;
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
  struct page pg = {.b = &b, .want = p->per_page, .err = err};
  int64_t total = 0;
  int rc;

  *json = NULL;
  for (size_t i = 0; i < p->ndests; i++)
    dests[i] = p->dests[i];
  if (ctkn__buf_puts(&b, "{\"data\":[") != CTKN_OK)
    return oom(err);
  if ((rc = ctkn_store_begin(st, false, &pg.txn, err)) == CTKN_OK) {
    if ((rc = ctkn_delivery_count(pg.txn, &total, err)) == CTKN_OK)
      rc = ctkn_delivery_list(pg.txn, &f, page_ntf, &pg, err);
    if (rc == 1)
      rc = CTKN_OK; /* the page filled */
    ctkn_store_abort(pg.txn);
  }
  if (rc == CTKN_OK &&
      next_link(&u, p, next_base, pg.n > 0 ? pg.last : p->after) != CTKN_OK)
    rc = oom(err);
  return finish(&b, &pg, &u, total, request_id, json, rc, err);
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
    return ctkn__err_field(err, CTKN_EINVAL, "notification_id",
                           "must be a notification ID (^ntf_[a-z0-9]{26}$)");
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
  if (pg->n == pg->want) {
    pg->more = true;
    return 1;
  }
  if ((json = ctkn_json_notification_log(pg->ntf_id, a)) == NULL)
    return oom(pg->err);
  return put_item(pg, json, id);
}

int ctkn_ntfs_logs(ctkn_store *st, const char *id, const char *after,
                   int per_page, const char *next_base, const char *request_id,
                   char **json, struct ctkn_err *err)
{
  struct ctkn__buf b = CTKN__BUF_INIT, u = CTKN__BUF_INIT;
  struct ctkn_notification n;
  struct page pg = {.b = &b, .want = per_page, .ntf_id = id, .err = err};
  int rc;

  *json = NULL;
  if (!ctkn_id_valid("ntf_", id))
    return ctkn__err_field(err, CTKN_EINVAL, "notification_id",
                           "must be a notification ID (^ntf_[a-z0-9]{26}$)");
  if (after[0] != '\0' && !ctkn_id_valid("ntflog_", after))
    return ctkn__err_field(err, CTKN_EINVAL, "after",
                           "must be a notification log ID "
                           "(^ntflog_[a-z0-9]{26}$)");
  pg.after = after[0] != '\0' ? after : NULL;
  if (ctkn__buf_puts(&b, "{\"data\":[") != CTKN_OK)
    return oom(err);
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
                       pg.n > 0 || after[0] ? "after=" : "",
                       pg.n > 0 ? pg.last : after,
                       pg.n > 0 || after[0] ? "&" : "", per_page) != CTKN_OK)
    rc = oom(err);
  if (rc != CTKN_OK) {
    ctkn__buf_free(&u);
    ctkn__buf_free(&b);
    return rc;
  }
  return finish(&b, &pg, &u, n.attempts, request_id, json, rc, err);
}
