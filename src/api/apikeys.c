/*
 * apikeys.c - API keys on the log as the server sees them: the /api-keys
 * routes (reads from this replica's projection, writes on the settings
 * thread through keycmd.h, as notification settings' are), and
 * last_used_at, appended at most once per key and interval by each
 * replica.
 *
 * A request authenticated by a key on the log (auth.c) calls
 * ctkn__api_key_used(). The first use of a key, and the first after
 * --key-used-interval (1 h) has passed since this replica last reported
 * it, queues one "used" record for the usage thread, which appends it
 * through the settings topic (keycmd.h) with this replica's writer key
 * (scoped api_key.used). Heavy traffic thus costs the log one record per
 * key, replica and interval; the request never waits for it.
 *
 * The same thread sweeps the keys every second for due notices: a key
 * within --key-expiring-lead (7 days) of its expires_at gets
 * api_key.expiring, one past it api_key.expired (CTKN_AKEY_CMD_EXPIRING,
 * CTKN_AKEY_CMD_EXPIRE). Every replica sweeps; the first record in the
 * log applies and the others are rejected there, so each notice is one
 * event, and one notification per destination.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "ctkn/codec.h"
#include "ctkn/keycmd.h"
#include "ctkn/query.h"

struct seen {
  char id[CTKN_AKEY_ID_BUF];
  int64_t at_mono_us; /* when this replica last queued its record */
};

struct used_item {
  struct ctkn__qnode qnode;
  char id[CTKN_AKEY_ID_BUF];
  int64_t used_at; /* µs, wall clock */
};

/* Whether k is due, marking it queued now when it is. */
static bool due(struct server *s, const char *id, int64_t now)
{
  int64_t every = s->cfg->key_used_interval_ms * 1000;
  struct seen *v, fresh;
  bool yes = true;
  size_t n;

  pthread_mutex_lock(&s->used_lock);
  v = (struct seen *)(void *)s->used_seen.data;
  n = s->used_seen.len / sizeof(*v);
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].id, id) == 0) {
      yes = now - v[i].at_mono_us >= every;
      if (yes)
        v[i].at_mono_us = now;
      pthread_mutex_unlock(&s->used_lock);
      return yes;
    }
  memcpy(fresh.id, id, sizeof(fresh.id));
  fresh.at_mono_us = now;
  yes = ctkn__buf_append(&s->used_seen, &fresh, sizeof(fresh)) == CTKN_OK;
  pthread_mutex_unlock(&s->used_lock);
  return yes;
}

void ctkn__api_key_used(struct server *s, const struct ctkn_akey *k)
{
  struct used_item *it;

  /* Read-only on a trusted log: no key to sign with. */
  if (s->cfg->key_used_interval_ms <= 0 ||
      (s->cfg->trust_root != NULL && s->cfg->writer_key == NULL &&
       s->cfg->usage_key == NULL) ||
      !s->used_started || !due(s, k->id, ctkn__api_mono_us()))
    return;
  if ((it = calloc(1, sizeof(*it))) == NULL)
    return;
  memcpy(it->id, k->id, sizeof(it->id));
  it->used_at = ctkn_now_us();
  if (!ctkn__queue_push(&s->usedq, &it->qnode))
    free(it);
}

static void append_used(struct server *s, const struct used_item *it)
{
  struct ctkn_keycmd_trust trust = {
      s->cfg->trust_root,
      s->cfg->usage_key != NULL ? s->cfg->usage_key : s->cfg->writer_key};
  struct ctkn_keycmd_outcome out;
  struct ctkn_akey_command c;
  struct ctkn_err err = {0};
  int rc;

  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_USED);
  memcpy(c.id, it->id, sizeof(c.id));
  c.used_at = it->used_at;
  rc = ctkn_keycmd_execute(s->st, s->cfg->log, &trust, s->cfg->env, &c, &out,
                           &err);
  if (rc != CTKN_OK)
    ctkn__diag(CTKN_DIAG_WARN, "http", "last_used_at of %s not appended: %s",
               it->id, err.msg);
}

#define SWEEP_MS    1000 /* how often the notices are looked for */
#define SWEEP_BATCH 64
#define RETRY_US    (60 * INT64_C(1000000)) /* after a notice failed */

/* A key whose notice failed (no scope, the log down): not tried again
 * before at_mono_us. The usage thread's alone. */
struct held_off {
  char id[CTKN_AKEY_ID_BUF];
  int64_t at_mono_us;
};

static bool held_off(struct server *s, const char *id, int64_t now)
{
  struct held_off *v = (struct held_off *)(void *)s->notice_held.data;
  size_t n = s->notice_held.len / sizeof(*v);

  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].id, id) == 0)
      return now < v[i].at_mono_us;
  return false;
}

static void hold_off(struct server *s, const char *id, int64_t until)
{
  struct held_off *v = (struct held_off *)(void *)s->notice_held.data;
  size_t n = s->notice_held.len / sizeof(*v);
  struct held_off fresh;

  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].id, id) == 0) {
      v[i].at_mono_us = until;
      return;
    }
  memcpy(fresh.id, id, sizeof(fresh.id));
  fresh.at_mono_us = until;
  (void)ctkn__buf_append(&s->notice_held, &fresh, sizeof(fresh));
}

/* Append kind's notice for key k when the plan finds it due (a no-op
 * otherwise). A rejection (another replica's came first) is no error. */
static void append_notice(struct server *s, const struct ctkn_akey *k,
                          ctkn_akey_cmd_kind kind)
{
  struct ctkn_keycmd_trust trust = {
      s->cfg->trust_root,
      s->cfg->expiry_key != NULL ? s->cfg->expiry_key : s->cfg->writer_key};
  struct ctkn_keycmd_outcome out;
  struct ctkn_akey_command c;
  struct ctkn_err err = {0};

  ctkn_akey_command_init(&c, kind);
  memcpy(c.id, k->id, sizeof(c.id));
  c.lead_us = s->cfg->key_expiring_lead_ms * 1000;
  const char *what =
      kind == CTKN_AKEY_CMD_EXPIRE ? "api_key.expired" : "api_key.expiring";
  int rc = ctkn_keycmd_execute(s->st, s->cfg->log, &trust, s->cfg->env, &c,
                               &out, &err);

  if (rc == CTKN_ECONFLICT) {
    /* Another replica's came first: no failure, the projection has it. */
    ctkn__diag(CTKN_DIAG_INFO, "http", "%s of %s: another replica's first",
               what, k->id);
  } else if (rc != CTKN_OK) {
    /* No scope, the log down, ...: tried again after RETRY_US. */
    ctkn__diag(CTKN_DIAG_WARN, "http", "%s of %s not applied: %s", what, k->id,
               err.msg);
    hold_off(s, k->id, ctkn__api_mono_us() + RETRY_US);
  }
}

/* Whether k, as this replica's projection holds it, has a notice due. */
static bool notice_due(const struct server *s, const struct ctkn_akey *k,
                       int64_t now, ctkn_akey_cmd_kind *kind)
{
  if (k->status != CTKN_AKEY_ACTIVE || k->expires_at == 0)
    return false;
  if (now >= k->expires_at) {
    *kind = CTKN_AKEY_CMD_EXPIRE;
    return true;
  }
  *kind = CTKN_AKEY_CMD_EXPIRING;
  return k->expiring_for != k->expires_at &&
         now >= k->expires_at - s->cfg->key_expiring_lead_ms * 1000;
}

/* Look for due notices over every key on the log. */
static void sweep(struct server *s)
{
  struct ctkn_akey *keys = malloc(SWEEP_BATCH * sizeof(*keys));
  char after[CTKN_AKEY_ID_BUF] = "";
  bool more = true;

  while (keys != NULL && more) {
    ctkn_store_txn *txn;
    size_t n = 0;
    int64_t now = ctkn_now_us();
    if (ctkn_store_begin(s->st, false, &txn, NULL) != CTKN_OK)
      break;
    int rc = ctkn_keylog_list(txn, after, keys, SWEEP_BATCH, &n, &more, NULL);
    ctkn_store_abort(txn);
    if (rc != CTKN_OK || n == 0)
      break;
    for (size_t i = 0; i < n && !s->used_stop; i++) {
      ctkn_akey_cmd_kind kind;
      if (notice_due(s, &keys[i], now, &kind) &&
          !held_off(s, keys[i].id, ctkn__api_mono_us()))
        append_notice(s, &keys[i], kind);
    }
    memcpy(after, keys[n - 1].id, sizeof(after));
  }
  free(keys);
}

static void *used_main(void *arg)
{
  struct server *s = arg;
  struct ctkn__qnode *node;
  /* Read-only on a trusted log: no key to sign notices with. */
  bool notices = s->cfg->trust_root == NULL || s->cfg->writer_key != NULL ||
                 s->cfg->expiry_key != NULL;
  int64_t next = ctkn__api_mono_us();

  while (!s->used_stop) {
    int64_t now = ctkn__api_mono_us();
    if (notices && now >= next) {
      sweep(s);
      next = now + SWEEP_MS * 1000;
      now = ctkn__api_mono_us();
    }
    int wait = notices ? (int)((next - now) / 1000) + 1 : -1;
    if (ctkn__queue_pop(&s->usedq, &node, 1, wait) != 1)
      continue;
    struct used_item *it = CTKN__CONTAINER_OF(node, struct used_item, qnode);
    append_used(s, it);
    free(it);
  }
  return NULL;
}

int ctkn__api_used_start(struct server *s, struct ctkn_err *err)
{
  if (pthread_create(&s->used_thread, NULL, used_main, s) != 0)
    return ctkn__err(err, CTKN_ENOMEM, "server: threads");
  s->used_started = true;
  return CTKN_OK;
}

void ctkn__api_used_stop(struct server *s)
{
  struct ctkn__qnode *node;

  s->used_stop = true;
  ctkn__queue_close(&s->usedq);
  if (s->used_started)
    pthread_join(s->used_thread, NULL);
  s->used_started = false;
  while (ctkn__queue_pop(&s->usedq, &node, 1, 0) == 1)
    free(CTKN__CONTAINER_OF(node, struct used_item, qnode));
  ctkn__buf_free(&s->notice_held);
}

/* ---- /api-keys ------------------------------------------------------------
 */

#define KEYS_PER_PAGE 50  /* Paddle's default */
#define KEYS_PAGE_MAX 200 /* and most */

/* Whether id names an API key; otherwise r is answered. */
static bool key_id_ok(struct req *r, const char *id)
{
  if (ctkn_id_valid("apikey_", id))
    return true;
  ctkn__api_answer_field(r, "api_key_id", CTKN_ID_RULE("apikey_"));
  return false;
}

static void answer_key(struct server *s, struct req *r)
{
  struct ctkn_err err = {0};
  struct ctkn_akey k;
  ctkn_store_txn *txn;
  char *json = NULL;
  int rc;

  if ((rc = ctkn_store_begin(s->st, false, &txn, &err)) == CTKN_OK) {
    rc = ctkn_keylog_get(txn, r->id, &k, &err);
    ctkn_store_abort(txn);
  }
  if (rc == CTKN_ENOTFOUND)
    rc = ctkn__err(&err, rc, "API key %.40s not found", r->id);
  if (rc == CTKN_OK &&
      (json = ctkn_json_akey(&k, ctkn_now_us(), NULL, r->rid)) == NULL)
    rc = ctkn__err(&err, CTKN_ENOMEM, "out of memory");
  ctkn__api_answer_query(r, rc, json, &err);
}

struct key_query {
  int per_page;
  bool desc;
  const char *after;
  const char *status; /* as sent, for the next link */
  unsigned mask;      /* bit (1 << ctkn_akey_status); 0: every status */
};

/* status: a comma-separated list of active, expired, revoked. */
static bool status_mask(const char *v, unsigned *mask)
{
  *mask = 0;
  while (v != NULL && *v != '\0') {
    size_t n = strcspn(v, ",");
    char one[16];
    ctkn_akey_status st;
    if (n == 0 || n >= sizeof(one))
      return false;
    memcpy(one, v, n);
    one[n] = '\0';
    if (ctkn_akey_status_parse(one, &st) != 0)
      return false;
    *mask |= 1u << st;
    v += n + (v[n] == ',');
  }
  return *mask != 0;
}

static bool key_query_parse(struct req *r, struct key_query *q)
{
  static const char *const allowed[] = {"after", "per_page", "order_by",
                                        "status", NULL};
  struct ctkn_list_params p;
  struct ctkn_err err = {0};
  const char *v;

  if (!ctkn__api_query_ok(r, allowed, NULL))
    return false;
  ctkn_list_params_init(&p);
  p.per_page = KEYS_PER_PAGE;
  p.desc = false;
  if (((v = ctkn__api_arg(r, "per_page")) != NULL &&
       ctkn_list_params_per_page(&p, v, &err) != CTKN_OK) ||
      ((v = ctkn__api_arg(r, "order_by")) != NULL &&
       ctkn_list_params_order_by(&p, v, &err) != CTKN_OK)) {
    ctkn__api_answer_err(r, &err);
    return false;
  }
  q->per_page = p.per_page > KEYS_PAGE_MAX ? KEYS_PAGE_MAX : p.per_page;
  q->desc = p.desc;
  q->after = ctkn__api_arg(r, "after");
  if (q->after != NULL && !ctkn_id_valid("apikey_", q->after)) {
    ctkn__api_answer_field(
        r, "after", "must be an API key ID (" CTKN_ID_PATTERN("apikey_") ")");
    return false;
  }
  q->status = ctkn__api_arg(r, "status");
  q->mask = 0;
  if (q->status != NULL && !status_mask(q->status, &q->mask)) {
    ctkn__api_answer_field(r, "status",
                           "must list active, expired or revoked, "
                           "comma-separated");
    return false;
  }
  return true;
}

static char *keys_next_link(const char *base, const char *after,
                            const struct key_query *q)
{
  struct ctkn__buf u = CTKN__BUF_INIT;

  if (ctkn__buf_printf(&u, "%s?%s%s%sorder_by=id%%5B%s%%5D&per_page=%d%s%s",
                       base, after ? "after=" : "", after ? after : "",
                       after ? "&" : "", q->desc ? "DESC" : "ASC", q->per_page,
                       q->status ? "&status=" : "",
                       q->status ? q->status : "") != CTKN_OK) {
    ctkn__buf_free(&u);
    return NULL;
  }
  return ctkn__buf_detach(&u);
}

/* Keys are few (a deployment's, not its customers'): the page is cut
 * from the whole list, filtered by status as at now. */
static int keys_page(struct server *s, const struct key_query *q,
                     struct ctkn_akey *ks, size_t n, const char *rid,
                     char **json, struct ctkn_err *err)
{
  struct ctkn_pagination page = {.per_page = q->per_page};
  int64_t now = ctkn_now_us();
  size_t kept = 0, taken = 0, first = 0;
  char *next;

  for (size_t i = 0; i < n; i++)
    if (q->mask == 0 || (q->mask & (1u << ctkn_akey_status_at(&ks[i], now))))
      ks[kept++] = ks[i];
  page.estimated_total = (int64_t)kept;
  if (q->desc) /* reverse in place: the page is then a slice */
    for (size_t i = 0; i < kept / 2; i++) {
      struct ctkn_akey t = ks[i];
      ks[i] = ks[kept - 1 - i];
      ks[kept - 1 - i] = t;
    }
  while (q->after != NULL && first < kept) {
    int cmp = strcmp(ks[first].id, q->after);
    if (q->desc ? cmp < 0 : cmp > 0)
      break;
    first++;
  }
  taken =
      kept - first < (size_t)q->per_page ? kept - first : (size_t)q->per_page;
  page.has_more = first + taken < kept;
  next = keys_next_link(s->keys_next_base,
                        taken > 0 ? ks[first + taken - 1].id : q->after, q);
  if (next == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  page.next = next;
  *json = ctkn_json_akeys_page(ks + first, taken, now, &page, rid);
  free(next);
  return *json == NULL ? ctkn__err(err, CTKN_ENOMEM, "out of memory") : CTKN_OK;
}

static void list_keys(struct server *s, struct req *r)
{
  struct ctkn_akey *ks = NULL;
  struct ctkn_err err = {0};
  struct key_query q;
  ctkn_store_txn *txn;
  char *json = NULL;
  size_t n = 0, cap = 0;
  bool more = true;
  int rc;

  if (!key_query_parse(r, &q))
    return;
  if ((rc = ctkn_store_begin(s->st, false, &txn, &err)) != CTKN_OK) {
    ctkn__api_answer_query(r, rc, NULL, &err);
    return;
  }
  while (rc == CTKN_OK && more) {
    struct ctkn_akey *grown = realloc(ks, (cap + 64) * sizeof(*ks));
    size_t got = 0;
    if (grown == NULL) {
      rc = ctkn__err(&err, CTKN_ENOMEM, "out of memory");
      break;
    }
    ks = grown;
    cap += 64;
    rc = ctkn_keylog_list(txn, n > 0 ? ks[n - 1].id : NULL, ks + n, 64, &got,
                          &more, &err);
    n += got;
  }
  ctkn_store_abort(txn);
  if (rc == CTKN_OK)
    rc = keys_page(s, &q, ks, n, r->rid, &json, &err);
  ctkn__api_answer_query(r, rc, json, &err);
  free(ks);
}

void ctkn__api_keys_read(struct server *s, struct req *r)
{
  static const char *const none[] = {NULL};

  if (r->route == R_KEY_LIST)
    list_keys(s, r);
  else if (ctkn__api_query_ok(r, none, NULL) && key_id_ok(r, r->id))
    answer_key(s, r);
}

bool ctkn__api_keys_begin(struct server *s, struct req *r)
{
  (void)s;
  if (r->route != R_KEY_CREATE && !key_id_ok(r, r->id))
    return false;
  if ((r->kcmd = malloc(sizeof(*r->kcmd))) == NULL) {
    ctkn__api_answer_code(r, CTKN_ENOMEM, "out of memory");
    return false;
  }
  ctkn_akey_command_init(r->kcmd, CTKN_AKEY_CMD_CREATE);
  return true;
}

void ctkn__api_keys_write(struct server *s, struct req *r)
{
  const char *body = r->body.data ? r->body.data : "";
  struct ctkn_err err = {0};
  int rc;

  if (r->too_large) {
    ctkn__api_answer_code(r, CTKN_ETOOLARGE,
                          "the request body is larger than %d bytes",
                          CTKN_SERVER_MAX_BODY);
    return;
  }
  if (r->route == R_KEY_CREATE)
    rc = ctkn_json_parse_akey_create(body, r->body.len, ctkn_now_us(), r->kcmd,
                                     &err);
  else if (r->route == R_KEY_UPDATE)
    rc = ctkn_json_parse_akey_update(body, r->body.len, r->id, ctkn_now_us(),
                                     r->kcmd, &err);
  else
    rc = ctkn_json_parse_akey_rotation(body, r->body.len, r->id, r->kcmd, &err);
  if (rc != CTKN_OK) {
    ctkn__api_answer_err(r, &err);
    return;
  }
  ctkn__api_enqueue(s, &s->setq, r);
}

int ctkn__api_keys_answer(struct server *s, struct req *r, struct ctkn_err *err)
{
  struct ctkn_keycmd_trust trust = {s->cfg->trust_root, s->cfg->writer_key};
  struct ctkn_keycmd_outcome *o = malloc(sizeof(*o));
  int rc;

  if (o == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory");
    ctkn__api_answer_err(r, err);
    return rc;
  }
  rc = ctkn_keycmd_execute(s->st, s->cfg->log, &trust, s->cfg->env, r->kcmd, o,
                           err);
  if (rc != CTKN_OK) {
    if (ctkn_error_http_status(rc) == 503)
      r->retry_after = 1;
    ctkn__api_answer_err(r, err);
  } else {
    free(r->resp);
    r->resp = r->route == R_KEY_ROTATE
                  ? ctkn_json_akey_rotation(&o->key, o->event_id,
                                            r->kcmd->grace_s, o->secret, r->rid)
                  : ctkn_json_akey(&o->key, ctkn_now_us(), o->secret, r->rid);
    r->status = r->route == R_KEY_UPDATE ? 200 : 201;
    if (r->resp == NULL)
      ctkn__api_answer_code(r, CTKN_ENOMEM, "out of memory");
  }
  ctkn_wipe(o->secret, sizeof(o->secret));
  free(o);
  return rc;
}
