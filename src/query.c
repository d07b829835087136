/*
 * query.c - reads over one LMDB snapshot, rendered as Paddle's JSON.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/delivery.h"
#include "ctkn/log.h"
#include "ctkn/query.h"
#include "internal.h"
#include "query_int.h"

void ctkn_list_params_init(struct ctkn_list_params *p)
{
  memset(p, 0, sizeof(*p));
  p->per_page = CTKN_PER_PAGE_DEFAULT;
  p->desc = true;
  p->status_mask = 1u << CTKN_STATUS_ACTIVE;
}

int ctkn_list_params_per_page(struct ctkn_list_params *p, const char *s,
                              struct ctkn_err *err)
{
  long v = 0;

  if (*s == '\0')
    goto bad;
  for (const char *c = s; *c; c++) {
    if (*c < '0' || *c > '9')
      goto bad;
    if (v <= CTKN_PER_PAGE_MAX)
      v = v * 10 + (*c - '0');
  }
  if (v < 1)
    goto bad;
  p->per_page = v > CTKN_PER_PAGE_MAX ? CTKN_PER_PAGE_MAX : (int)v;
  return CTKN_OK;
bad:
  return ctkn__err_field(err, CTKN_EINVAL, "per_page",
                         "must be a positive integer (values above %d are "
                         "capped)",
                         CTKN_PER_PAGE_MAX);
}

/* Whether s is upper (an ASCII upper-case word) in any case, whatever the
 * locale. */
static bool ascii_iequal(const char *s, size_t n, const char *upper)
{
  if (strlen(upper) != n)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
    if (c != upper[i])
      return false;
  }
  return true;
}

/* The direction may be in any case: Paddle's Python SDK sends "id[asc]"
 * with every list it pages through (its Pager always sets order_by). */
int ctkn_list_params_order_by(struct ctkn_list_params *p, const char *s,
                              struct ctkn_err *err)
{
  size_t n = strlen(s);

  if (n > 4 && strncmp(s, "id[", 3) == 0 && s[n - 1] == ']') {
    if (ascii_iequal(s + 3, n - 4, "ASC")) {
      p->desc = false;
      return CTKN_OK;
    }
    if (ascii_iequal(s + 3, n - 4, "DESC")) {
      p->desc = true;
      return CTKN_OK;
    }
  }
  return ctkn__err_field(err, CTKN_EINVAL, "order_by",
                         "must be id[ASC] or id[DESC]");
}

int ctkn_list_params_status(struct ctkn_list_params *p, const char *s,
                            struct ctkn_err *err)
{
  unsigned mask = 0;
  const char *c = s;

  for (;;) {
    size_t n = strcspn(c, ",");
    if (n == 6 && strncmp(c, "active", 6) == 0)
      mask |= 1u << CTKN_STATUS_ACTIVE;
    else if (n == 7 && strncmp(c, "revoked", 7) == 0)
      mask |= 1u << CTKN_STATUS_REVOKED;
    else
      return ctkn__err_field(err, CTKN_EINVAL, "status",
                             "must be a comma-separated list of active, "
                             "revoked");
    if (c[n] == '\0')
      break;
    c += n + 1;
  }
  p->status_mask = mask;
  return CTKN_OK;
}

int ctkn_list_params_after(struct ctkn_list_params *p, const char *s,
                           struct ctkn_err *err)
{
  if (!ctkn_id_valid("ctkn_", s))
    return ctkn__err_field(err, CTKN_EINVAL, "after",
                           "must be a client-side token ID "
                           "(" CTKN_ID_PATTERN("ctkn_") ")");
  ctkn__strlcpy(p->after, s, sizeof(p->after));
  return CTKN_OK;
}

static int oom(struct ctkn_err *err)
{
  return ctkn__err(err, CTKN_ENOMEM, "rendering JSON");
}

/* ---- one page of a list (query_int.h) ---------------------------------- */

_Static_assert(CTKN__PAGE_ID_BUF >= CTKN_NTFLOG_ID_BUF &&
                   CTKN__PAGE_ID_BUF > CTKN_EVT_ID_LEN,
               "a page ends on a notification, log or event ID");

int ctkn__page_begin(struct ctkn__page *pg, int want, struct ctkn_err *err)
{
  memset(pg, 0, sizeof(*pg));
  pg->want = want;
  if (ctkn__buf_puts(&pg->b, "{\"data\":[") != CTKN_OK) {
    ctkn__buf_free(&pg->b);
    return oom(err);
  }
  return CTKN_OK;
}

bool ctkn__page_full(struct ctkn__page *pg)
{
  if (pg->n == pg->want)
    pg->more = true;
  return pg->more;
}

int ctkn__page_put(struct ctkn__page *pg, const char *json, size_t len,
                   const char *id, struct ctkn_err *err)
{
  if ((pg->n > 0 && ctkn__buf_puts(&pg->b, ",") != CTKN_OK) ||
      ctkn__buf_append(&pg->b, json, len) != CTKN_OK)
    return oom(err);
  ctkn__strlcpy(pg->last, id, sizeof(pg->last));
  pg->n++;
  return CTKN_OK;
}

/* The page's meta after its data. */
static int put_meta(struct ctkn__page *pg, const char *next, int64_t total,
                    const char *request_id)
{
  struct ctkn__buf *b = &pg->b;
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

int ctkn__page_end(struct ctkn__page *pg, int rc, const char *next,
                   int64_t total, const char *request_id, char **json,
                   struct ctkn_err *err)
{
  *json = NULL;
  if (rc == CTKN_OK &&
      put_meta(pg, next != NULL ? next : "", total, request_id) != CTKN_OK)
    rc = oom(err);
  if (rc != CTKN_OK) {
    ctkn__buf_free(&pg->b);
    return rc;
  }
  *json = pg->b.data;
  return CTKN_OK;
}

int ctkn__page_link_tail(struct ctkn__buf *u, bool has_from, int64_t from_us,
                         bool has_to, int64_t to_us, bool desc, int per_page)
{
  char t[CTKN_TIME_BUF];
  int rc = CTKN_OK;

  if (has_from && ctkn_time_format(from_us, t) == 0)
    rc = ctkn__buf_printf(u, "from=%s&", t);
  if (rc == CTKN_OK && has_to && ctkn_time_format(to_us, t) == 0)
    rc = ctkn__buf_printf(u, "to=%s&", t);
  if (rc == CTKN_OK)
    rc = ctkn__buf_printf(u, "order_by=id%%5B%s%%5D&per_page=%d",
                          desc ? "DESC" : "ASC", per_page);
  return rc;
}

int ctkn__page_per_page(const char *s, int *out, struct ctkn_err *err)
{
  struct ctkn_list_params l;
  int rc;

  ctkn_list_params_init(&l);
  if ((rc = ctkn_list_params_per_page(&l, s, err)) == CTKN_OK)
    *out = l.per_page;
  return rc;
}

int ctkn__page_order_by(const char *s, bool *desc, struct ctkn_err *err)
{
  struct ctkn_list_params l;
  int rc;

  ctkn_list_params_init(&l);
  if ((rc = ctkn_list_params_order_by(&l, s, err)) == CTKN_OK)
    *desc = l.desc;
  return rc;
}

int ctkn__page_time(const char *name, const char *s, int64_t *us,
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

/* ---- failing closed (query.h) ------------------------------------------ */

/* Why partition p (CTKN_STORE_PAUSE_ALL: any) of the projection is paused
 * into why; "" when it is not. */
static int stored_pause_why(ctkn_store_txn *txn, int32_t p, char *why, size_t n,
                            struct ctkn_err *err)
{
  struct ctkn_store_pause pz;
  bool paused = false;
  int rc;

  why[0] = '\0';
  if ((rc = ctkn_store_get_pause(txn, CTKN_STORE_PAUSE_ALL, &paused, &pz,
                                 err)) != CTKN_OK)
    return rc;
  if (paused) {
    snprintf(why, n,
             "every partition is paused: the keyring enables event schema "
             "version %d (this build reads %d): answers may be stale; "
             "upgrade ctkn",
             pz.schema, CTKN_SCHEMA_VERSION);
    return CTKN_OK;
  }
  if (p == CTKN_STORE_PAUSE_ALL) {
    rc = ctkn_store_first_pause(txn, &pz, err);
    paused = pz.partition >= 0;
  } else {
    rc = ctkn_store_get_pause(txn, p, &paused, &pz, err);
  }
  if (rc != CTKN_OK || !paused)
    return rc;
  snprintf(why, n,
           "partition %d is paused at offset %lld, a record of schema "
           "version %d (this build reads %d): answers may be stale; "
           "upgrade ctkn",
           (int)pz.partition, (long long)pz.offset, pz.schema,
           CTKN_SCHEMA_VERSION);
  return CTKN_OK;
}

/* The guard's word on partition p into why ("" when it has none). */
static void guard_why(const struct ctkn_query_guard *g, int32_t p, char *why,
                      size_t n)
{
  why[0] = '\0';
  if (g == NULL || g->state == NULL || p < 0 || p >= g->nparts)
    return;
  if (g->state[p] == CTKN_PART_PAUSED)
    snprintf(why, n,
             "partition %d is paused at a record of a newer schema version; "
             "upgrade ctkn",
             (int)p);
  else if (g->state[p] == CTKN_PART_STALE)
    snprintf(why, n,
             "partition %d: its newest writer checkpoint is missing or older "
             "than --max-staleness (%lld s); the log's tail may be withheld",
             (int)p, (long long)g->max_staleness_s);
}

/* Why any partition fails closed into why; "" when none does. */
static int any_bad(ctkn_store_txn *txn, const struct ctkn_query_guard *g,
                   char *why, size_t n, struct ctkn_err *err)
{
  int rc = stored_pause_why(txn, CTKN_STORE_PAUSE_ALL, why, n, err);

  for (int32_t p = 0;
       rc == CTKN_OK && why[0] == '\0' && g != NULL && p < g->nparts; p++)
    guard_why(g, p, why, n);
  return rc;
}

/* Why partition p fails closed into why; "" when it does not. */
static int part_bad(ctkn_store_txn *txn, const struct ctkn_query_guard *g,
                    int32_t p, char *why, size_t n, struct ctkn_err *err)
{
  int rc = stored_pause_why(txn, p, why, n, err);

  if (rc == CTKN_OK && why[0] == '\0')
    guard_why(g, p, why, n);
  return rc;
}

/*
 * Whether an answer about token id may be given while some partition is
 * bad (why holds one reason on entry). rec is the token's record, NULL
 * when there is none. On CTKN_ESTALE err says why. The record's own
 * partition and, when the partition count is known, the partitioner's
 * choice for id must both be good; with neither known (no record, count
 * unknown), nothing is.
 */
static int token_closed(ctkn_store_txn *txn, const struct ctkn_query_guard *g,
                        const char *id, const struct ctkn_record *rec,
                        const char *why, struct ctkn_err *err)
{
  int32_t parts[2];
  size_t np = 0;
  char w[256];
  int rc;

  if (rec != NULL)
    parts[np++] = rec->partition;
  if (g != NULL && g->nparts > 0)
    parts[np++] = ctkn_log_partition_for(id, strlen(id), g->nparts);
  if (np == 0)
    return ctkn__err(err, CTKN_ESTALE, "%s", why);
  for (size_t i = 0; i < np; i++) {
    if ((rc = part_bad(txn, g, parts[i], w, sizeof(w), err)) != CTKN_OK)
      return rc;
    if (w[0] != '\0')
      return ctkn__err(err, CTKN_ESTALE, "%s", w);
  }
  return CTKN_OK;
}

/* For list: CTKN_ESTALE while any partition is bad; with why (whysz
 * bytes) given, the reason goes there instead and CTKN_OK is returned. */
static int fail_closed(ctkn_store_txn *txn, const struct ctkn_query_guard *g,
                       char *why, size_t whysz, struct ctkn_err *err)
{
  char msg[256];
  int rc;

  if ((rc = any_bad(txn, g, msg, sizeof(msg), err)) != CTKN_OK ||
      msg[0] == '\0')
    return rc;
  if (why != NULL) {
    snprintf(why, whysz, "%s", msg);
    return CTKN_OK;
  }
  return ctkn__err(err, CTKN_ESTALE, "%s", msg);
}

/* The token id's record into *rec, failing closed (query.h). */
static int get_guarded(ctkn_store_txn *txn, const struct ctkn_query_guard *g,
                       const char *id, struct ctkn_record *rec,
                       struct ctkn_err *err)
{
  char why[256];
  int rc, got;

  if ((rc = any_bad(txn, g, why, sizeof(why), err)) != CTKN_OK)
    return rc;
  got = ctkn_store_get(txn, id, rec, err);
  if (why[0] == '\0' || (got != CTKN_OK && got != CTKN_ENOTFOUND))
    return got;
  if ((rc = token_closed(txn, g, id, got == CTKN_OK ? rec : NULL, why, err)) !=
      CTKN_OK)
    return rc;
  return got;
}

int ctkn_query_get(ctkn_store *st, const struct ctkn_query_guard *g,
                   const char *id, const char *request_id, char **json,
                   struct ctkn_err *err)
{
  struct ctkn_record *rec = malloc(sizeof(*rec));
  ctkn_store_txn *txn;
  int rc;

  *json = NULL;
  if (rec == NULL)
    return oom(err);
  if ((rc = ctkn_store_begin(st, false, &txn, err)) == CTKN_OK) {
    rc = get_guarded(txn, g, id, rec, err);
    ctkn_store_abort(txn);
  }
  if (rc == CTKN_ENOTFOUND)
    rc =
        ctkn__err(err, CTKN_ENOTFOUND, "client-side token %.40s not found", id);
  if (rc == CTKN_OK &&
      (*json = ctkn_json_data(&rec->token, request_id)) == NULL)
    rc = oom(err);
  free(rec);
  return rc;
}

/* Append the query string of the next page to base: every parameter in
 * force, and after=last_id unless last_id is "" (an empty first page). */
static char *next_link(const struct ctkn_list_params *p, const char *base,
                       const char *last_id)
{
  char status[32] = "";
  size_t len;
  char *s;

  if (p->status_mask & (1u << CTKN_STATUS_ACTIVE))
    strcat(status, "active");
  if (p->status_mask & (1u << CTKN_STATUS_REVOKED))
    strcat(status, status[0] ? ",revoked" : "revoked");
  len = (base ? strlen(base) : 0) + 128;
  if ((s = malloc(len)) == NULL)
    return NULL;
  snprintf(s, len, "%s?%s%s%sorder_by=id%%5B%s%%5D&per_page=%d&status=%s",
           base ? base : "", last_id[0] ? "after=" : "", last_id,
           last_id[0] ? "&" : "", p->desc ? "DESC" : "ASC", p->per_page,
           status);
  return s;
}

int ctkn_query_list(ctkn_store *st, const struct ctkn_query_guard *g,
                    const struct ctkn_list_params *p, const char *next_base,
                    bool count, const char *request_id, char **json,
                    struct ctkn_err *err)
{
  struct ctkn_record *recs = calloc((size_t)p->per_page, sizeof(*recs));
  struct ctkn_token *toks = calloc((size_t)p->per_page, sizeof(*toks));
  struct ctkn_pagination page = {.per_page = p->per_page,
                                 .estimated_total = -1};
  char *next = NULL, stale[256] = "";
  ctkn_store_txn *txn = NULL;
  size_t n = 0;
  int rc;

  *json = NULL;
  if (recs == NULL || toks == NULL) {
    rc = oom(err);
    goto out;
  }
  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    goto out;
  rc = fail_closed(txn, g, p->stale_ok ? stale : NULL, sizeof(stale), err);
  if (stale[0] != '\0')
    page.stale = stale;
  if (rc == CTKN_OK)
    rc = ctkn_store_list(txn, p->after, p->desc, p->status_mask,
                         (size_t)p->per_page, recs, &n, &page.has_more, err);
  if (rc == CTKN_OK && count)
    rc = ctkn_store_count_status(txn, p->status_mask, &page.estimated_total,
                                 err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    goto out;
  for (size_t i = 0; i < n; i++)
    toks[i] = recs[i].token;
  /* Paddle's next is always there, has_more or not: the page after this
   * one's last ID, or on an empty page the request's own cursor (the same
   * page again, which new tokens may fill). */
  if ((next = next_link(p, next_base, n > 0 ? toks[n - 1].id : p->after)) ==
      NULL) {
    rc = oom(err);
    goto out;
  }
  page.next = next;
  if ((*json = ctkn_json_list(toks, n, &page, request_id)) == NULL)
    rc = oom(err);
out:
  free(next);
  free(recs);
  free(toks);
  return rc;
}

/* Verify's lookup, failing closed (query.h): a token the index lacks has
 * no known partition; a known one is judged by its ID's partitions. */
static int lookup_guarded(ctkn_store_txn *txn, const struct ctkn_query_guard *g,
                          const char *token, char id[CTKN_ID_BUF],
                          ctkn_status *status, struct ctkn_err *err)
{
  struct ctkn_record *rec;
  char why[256];
  int rc;

  if ((rc = any_bad(txn, g, why, sizeof(why), err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_lookup_token(txn, token, id, status, err);
  if (why[0] == '\0' || (rc != CTKN_OK && rc != CTKN_ENOTFOUND))
    return rc;
  if (rc == CTKN_ENOTFOUND)
    return ctkn__err(err, CTKN_ESTALE, "%s", why);
  if ((rec = malloc(sizeof(*rec))) == NULL)
    return oom(err);
  rc = get_guarded(txn, g, id, rec, err);
  free(rec);
  return rc;
}

int ctkn_query_verify(ctkn_store *st, const struct ctkn_query_guard *g,
                      const char *token, const char *request_id, char **json,
                      bool *active, struct ctkn_err *err)
{
  struct ctkn_token t;
  ctkn_store_txn *txn;
  ctkn_status status;
  ctkn_env env;
  int rc;

  *json = NULL;
  *active = false;
  if (!ctkn_token_valid(token, &env))
    return ctkn__err_field(err, CTKN_EINVAL, "token",
                           "must match ^(test|live)_[a-zA-Z0-9]{27}$");
  /* The index holds the ID and status: one lookup, no record decode. */
  memset(&t, 0, sizeof(t));
  if ((rc = ctkn_store_begin(st, false, &txn, err)) == CTKN_OK) {
    rc = lookup_guarded(txn, g, token, t.id, &status, err);
    ctkn_store_abort(txn);
  }
  if (rc == CTKN_ENOTFOUND)
    return ctkn__err(err, CTKN_ENOTFOUND, "client-side token not found");
  if (rc != CTKN_OK)
    return rc;
  ctkn__strlcpy(t.token, token, sizeof(t.token));
  t.status = status;
  *active = status == CTKN_STATUS_ACTIVE;
  if ((*json = ctkn_json_verify(&t, env, request_id)) == NULL)
    return oom(err);
  return CTKN_OK;
}

/* One walk of a token's history: each event as a JSON line to out, or
 * (out NULL) as an element of buf's array. */
struct history_ctx {
  FILE *out;
  struct ctkn__buf *buf;
  size_t n; /* events written */
  struct ctkn_event ev;
  struct ctkn_err *err;
};

static int history_line(void *arg, uint64_t version, int32_t partition,
                        int64_t offset, const void *value, size_t len)
{
  struct history_ctx *h = arg;
  char *line;
  int rc = CTKN_OK;

  (void)version;
  if ((rc = ctkn_event_decode(value, len, &h->ev, h->err)) != CTKN_OK)
    return ctkn__err(h->err, CTKN_ESTORE,
                     "corrupt history at partition %" PRId32 " offset %" PRId64,
                     partition, offset);
  if ((line = ctkn_json_event(&h->ev)) == NULL)
    return oom(h->err);
  if (h->out != NULL)
    fprintf(h->out, "%s\n", line);
  else if ((h->n > 0 && ctkn__buf_puts(h->buf, ",") != CTKN_OK) ||
           ctkn__buf_puts(h->buf, line) != CTKN_OK)
    rc = oom(h->err);
  h->n++;
  free(line);
  return rc;
}

/* Walk id's history into h; with check, it fails closed as a get does
 * (query.h). */
static int history_walk(ctkn_store *st, const struct ctkn_query_guard *g,
                        const char *id, struct history_ctx *h, bool check,
                        struct ctkn_err *err)
{
  struct ctkn_record *rec = malloc(sizeof(*rec));
  ctkn_store_txn *txn;
  int rc;

  if (rec == NULL)
    return oom(err);
  if ((rc = ctkn_store_begin(st, false, &txn, err)) == CTKN_OK) {
    if (check)
      rc = get_guarded(txn, g, id, rec, err);
    if (rc == CTKN_OK)
      rc = ctkn_store_history(txn, id, history_line, h, err);
    ctkn_store_abort(txn);
  }
  free(rec);
  if (rc == CTKN_ENOTFOUND)
    rc =
        ctkn__err(err, CTKN_ENOTFOUND, "client-side token %.40s not found", id);
  return rc;
}

int ctkn_query_history(ctkn_store *st, const char *id, FILE *out,
                       struct ctkn_err *err)
{
  struct history_ctx *h = calloc(1, sizeof(*h));
  int rc;

  if (h == NULL)
    return oom(err);
  h->out = out;
  h->err = err;
  rc = history_walk(st, NULL, id, h, false, err);
  free(h);
  return rc;
}

int ctkn_query_history_json(ctkn_store *st, const struct ctkn_query_guard *g,
                            const char *id, const char *request_id, char **json,
                            struct ctkn_err *err)
{
  struct ctkn__buf b = CTKN__BUF_INIT;
  struct history_ctx *h = calloc(1, sizeof(*h));
  int rc = CTKN_OK;

  *json = NULL;
  if (h == NULL || ctkn__buf_puts(&b, "{\"data\":[") != CTKN_OK)
    rc = oom(err);
  if (rc == CTKN_OK) {
    h->buf = &b;
    h->err = err;
    rc = history_walk(st, g, id, h, true, err);
  }
  if (rc == CTKN_OK &&
      (ctkn__buf_puts(&b, "],\"meta\":{\"request_id\":") != CTKN_OK ||
       ctkn__buf_json_str(&b, request_id, strlen(request_id)) != CTKN_OK ||
       ctkn__buf_puts(&b, "}}") != CTKN_OK))
    rc = oom(err);
  free(h);
  if (rc != CTKN_OK) {
    ctkn__buf_free(&b);
    return rc;
  }
  *json = b.data;
  return CTKN_OK;
}

/* The stored offsets, as two arrays in the one growable buffer each. */
struct offsets_ctx {
  struct ctkn__buf parts;   /* int32_t */
  struct ctkn__buf offsets; /* int64_t */
};

static int collect_offset(void *arg, int32_t partition, int64_t next)
{
  struct offsets_ctx *o = arg;

  if (ctkn__buf_append(&o->parts, &partition, sizeof(partition)) != CTKN_OK ||
      ctkn__buf_append(&o->offsets, &next, sizeof(next)) != CTKN_OK)
    return CTKN_ENOMEM;
  return CTKN_OK;
}

int ctkn_query_digest(ctkn_store *st, char **json, struct ctkn_err *err)
{
  struct offsets_ctx o = {CTKN__BUF_INIT, CTKN__BUF_INIT};
  uint8_t sum[CTKN_HASH_LEN];
  char hex[2 * CTKN_HASH_LEN + 1];
  ctkn_store_txn *txn;
  int64_t tokens = 0;
  int rc;

  *json = NULL;
  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_digest(txn, sum, err);
  if (rc == CTKN_OK)
    rc = ctkn_store_offsets(txn, collect_offset, &o, err);
  if (rc == CTKN_ENOMEM)
    rc = oom(err);
  if (rc == CTKN_OK)
    rc = ctkn_store_count(txn, &tokens, err);
  ctkn_store_abort(txn);
  if (rc == CTKN_OK) {
    ctkn_hex(sum, sizeof(sum), hex);
    size_t n = o.parts.len / sizeof(int32_t);
    if ((*json = ctkn_json_digest(
             hex, tokens, (const int32_t *)(void *)o.parts.data,
             (const int64_t *)(void *)o.offsets.data, n)) == NULL)
      rc = oom(err);
  }
  ctkn__buf_free(&o.parts);
  ctkn__buf_free(&o.offsets);
  return rc;
}

struct quarantine_ctx {
  FILE *out;
};

static int quarantine_line(void *arg, int32_t partition, int64_t offset,
                           const char *reason, const void *key, size_t klen,
                           const void *value, size_t vlen)
{
  struct quarantine_ctx *q = arg;
  char *line =
      ctkn_json_quarantined(partition, offset, reason, key, klen, value, vlen);

  if (line == NULL)
    return CTKN_ENOMEM;
  fprintf(q->out, "%s\n", line);
  free(line);
  return CTKN_OK;
}

int ctkn_query_quarantine(ctkn_store *st, FILE *out, struct ctkn_err *err)
{
  struct quarantine_ctx q = {out};
  ctkn_store_txn *txn;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_quarantine(txn, quarantine_line, &q, err);
  ctkn_store_abort(txn);
  if (rc == CTKN_ENOMEM)
    rc = oom(err);
  return rc;
}

/* ---- destinations and notifications ------------------------------------ */

void ctkn_ntf_list_params_init(struct ctkn_ntf_list_params *p)
{
  memset(p, 0, sizeof(*p));
}

int ctkn_ntf_list_params_destination(struct ctkn_ntf_list_params *p,
                                     const char *s, struct ctkn_err *err)
{
  if (!ctkn_id_valid("ntfset_", s))
    return ctkn__err_field(err, CTKN_EINVAL, "destination",
                           CTKN_ID_RULE("ntfset_"));
  ctkn__strlcpy(p->destination, s, sizeof(p->destination));
  return CTKN_OK;
}

/* The status bits one name stands for, or 0 for an unknown name. */
static unsigned ntf_status_bits(const char *name, size_t n)
{
  unsigned bits = 0;

  for (int s = CTKN_NTF_NOT_ATTEMPTED; s <= CTKN_NTF_FAILED; s++) {
    const char *str = ctkn_ntf_status_str((ctkn_ntf_status)s);
    if (strlen(str) == n && strncmp(name, str, n) == 0)
      bits = 1u << s;
  }
  if (n == 7 && strncmp(name, "pending", 7) == 0)
    bits = 1u << CTKN_NTF_NOT_ATTEMPTED | 1u << CTKN_NTF_NEEDS_RETRY;
  return bits;
}

int ctkn_ntf_list_params_status(struct ctkn_ntf_list_params *p, const char *s,
                                struct ctkn_err *err)
{
  unsigned mask = 0;

  /* "" and a trailing comma end the list; an empty name inside it does
   * not pass. */
  for (const char *c = s; *c;) {
    const char *end = strchr(c, ',');
    size_t n = end ? (size_t)(end - c) : strlen(c);
    unsigned bits = ntf_status_bits(c, n);
    if (bits == 0)
      return ctkn__err_field(err, CTKN_EINVAL, "status",
                             "\"%.*s\" is not delivered, failed, pending, "
                             "not_attempted or needs_retry",
                             (int)(n > 40 ? 40 : n), c);
    mask |= bits;
    c = end ? end + 1 : c + n;
  }
  p->status_mask = mask;
  return CTKN_OK;
}

int ctkn_query_destinations(ctkn_store *st, const char *request_id, char **json,
                            struct ctkn_err *err)
{
  struct ctkn_destination *ds = NULL;
  ctkn_store_txn *txn;
  size_t n = 0;
  int rc;

  *json = NULL;
  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_settings_list(txn, &ds, &n, err);
  ctkn_store_abort(txn);
  if (rc == CTKN_OK &&
      (*json = ctkn_json_destinations(ds, n, request_id)) == NULL)
    rc = oom(err);
  free(ds);
  return rc;
}

int ctkn_query_destination(ctkn_store *st, const char *id,
                           const char *request_id, char **json,
                           struct ctkn_err *err)
{
  struct ctkn_destination *d = malloc(sizeof(*d));
  ctkn_store_txn *txn;
  int rc;

  *json = NULL;
  if (d == NULL)
    return oom(err);
  if ((rc = ctkn_store_begin(st, false, &txn, err)) == CTKN_OK) {
    rc = ctkn_settings_get(txn, id, false, d, err);
    ctkn_store_abort(txn);
  }
  if (rc == CTKN_OK &&
      (*json = ctkn_json_destination(d, NULL, request_id)) == NULL)
    rc = oom(err);
  free(d);
  return rc;
}

struct ntf_lines {
  ctkn_store_txn *txn;
  FILE *out;
  struct ctkn_err *err;
};

/* One notification's line, its payload rebuilt from the projection. */
static int ntf_line(void *arg, const struct ctkn_notification *n)
{
  struct ntf_lines *w = arg;
  char *payload = NULL, *line;
  int rc = ctkn_notification_payload(w->txn, n, &payload, w->err);

  if (rc != CTKN_OK && rc != CTKN_ENOTFOUND)
    return rc;
  line = ctkn_json_notification(n, payload);
  free(payload);
  if (line == NULL)
    return oom(w->err);
  fprintf(w->out, "%s\n", line);
  free(line);
  return CTKN_OK;
}

int ctkn_query_notifications(ctkn_store *st,
                             const struct ctkn_ntf_list_params *p, FILE *out,
                             struct ctkn_err *err)
{
  struct ntf_lines w = {NULL, out, err};
  int rc;

  if ((rc = ctkn_store_begin(st, false, &w.txn, err)) != CTKN_OK)
    return rc;
  const char *dest = p->destination;
  struct ctkn_delivery_filter f = {.status_mask = p->status_mask,
                                   .dests = &dest,
                                   .ndests = p->destination[0] ? 1 : 0};
  rc = ctkn_delivery_list(w.txn, &f, ntf_line, &w, err);
  ctkn_store_abort(w.txn);
  return rc;
}

int ctkn_query_notification(ctkn_store *st, const char *id, FILE *out,
                            struct ctkn_err *err)
{
  struct ntf_lines w = {NULL, out, err};
  struct ctkn_notification *n = malloc(sizeof(*n));
  int rc;

  if (n == NULL)
    return oom(err);
  if ((rc = ctkn_store_begin(st, false, &w.txn, err)) == CTKN_OK) {
    if ((rc = ctkn_delivery_get(w.txn, id, n, err)) == CTKN_OK)
      rc = ntf_line(&w, n);
    ctkn_store_abort(w.txn);
  }
  free(n);
  return rc;
}

struct attempt_lines {
  const char *id;
  FILE *out;
  struct ctkn_err *err;
};

static int attempt_line(void *arg, const struct ctkn_ntf_attempt *a)
{
  struct attempt_lines *w = arg;
  char *line = ctkn_json_attempt(w->id, a);

  if (line == NULL)
    return oom(w->err);
  fprintf(w->out, "%s\n", line);
  free(line);
  return CTKN_OK;
}

int ctkn_query_attempts(ctkn_store *st, const char *id, FILE *out,
                        struct ctkn_err *err)
{
  struct attempt_lines w = {id, out, err};
  ctkn_store_txn *txn;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  rc = ctkn_delivery_attempts(txn, id, 0, attempt_line, &w, err);
  ctkn_store_abort(txn);
  return rc;
}
