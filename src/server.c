/*
 * server.c - `ctkn serve`: Paddle's HTTP API on libmicrohttpd over one
 * replica's projection.
 *
 * Threads:
 *   - libmicrohttpd's workers parse requests, authenticate, and answer
 *     reads straight from LMDB (one read txn each);
 *   - the follower runs ctkn_projector_follow() and, through the
 *     projector's hooks, publishes how far it got and the log's lag;
 *   - the command thread drains the write queue in batches through
 *     ctkn_ledger_execute_batch(), so 64 creates in flight cost one
 *     catch-up, one append and one wait, not 64;
 *   - the settings thread runs notification-setting writes, one at a
 *     time, through ctkn_settings_execute() (see settings_main: they are
 *     slow and rare, and must not hold up token writes);
 *   - the caller's thread watches the stop and reload flags and the
 *     deadlines of suspended reads.
 * A request that waits is suspended (MHD_suspend_connection) and resumed by
 * whichever thread has its answer; the worker that suspended it is free.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "ctkn/apikey.h"
#include "ctkn/codec.h"
#include "ctkn/ledger.h"
#include "ctkn/projector.h"
#include "ctkn/query.h"
#include "ctkn/server.h"
#include "ctkn/settings.h"
#include "internal.h"

#define BATCH_MAX     256 /* commands per ledger batch */
#define DRAIN_MS      15000
#define POSITIONS_MAX 16  /* entries in one X-Ctkn-Min-Position */
#define PATH_ID_BUF   48  /* a path's ID segment (longer ones never match) */
#define DEST_PER_PAGE 200 /* GET /notification-settings: default and max */

/* ---- metrics ---------------------------------------------------------- */

enum route {
  R_CREATE,
  R_UPDATE,
  R_GET,
  R_LIST,
  R_VERIFY,
  R_HEALTHZ,
  R_METRICS,
  R_DEST_CREATE, /* POST /notification-settings */
  R_DEST_LIST,   /* GET /notification-settings */
  R_DEST_GET,    /* GET /notification-settings/{id} */
  R_DEST_UPDATE, /* PATCH /notification-settings/{id} */
  R_DEST_DELETE, /* DELETE /notification-settings/{id} */
  R_OTHER,
  R_COUNT
};

static const char *const route_names[R_COUNT] = {
    "create",       "update",          "get",
    "list",         "verify",          "healthz",
    "metrics",      "settings_create", "settings_list",
    "settings_get", "settings_update", "settings_delete",
    "other"};

static const int statuses[] = {200, 201, 204, 400, 403, 404,
                               405, 409, 413, 429, 500, 503};
#define NSTATUS (CTKN__ARRAY_LEN(statuses) + 1) /* last: any other */

static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                 0.005,  0.01,    0.025,  0.05,  0.1,
                                 0.25,   0.5,     1,      2.5,   5};
#define NBUCKET (CTKN__ARRAY_LEN(buckets) + 1) /* last: +Inf */

struct metrics {
  atomic_uint_fast64_t requests[R_COUNT][NSTATUS];
  atomic_uint_fast64_t hist[R_COUNT][NBUCKET];
  atomic_uint_fast64_t sum_us[R_COUNT];
};

/* ---- the server ------------------------------------------------------- */

struct req;

/* A queue of suspended requests for a worker thread. */
struct wq {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct req *head, *tail;
  bool stop;
};

/* One key's token bucket; rebuilt with the key set on reload. */
struct bucket {
  double tokens;
  int64_t at_us;
};

struct server {
  const struct ctkn_server_config *cfg;
  ctkn_store *st;
  struct MHD_Daemon *mhd;
  char *next_base;      /* public_url + "/client-tokens" */
  char *dest_next_base; /* public_url + "/notification-settings" */
  struct metrics m;

  /* The deployment key, for creating notification settings. */
  bool have_key;
  uint8_t key[CTKN_KEY_LEN];

  /* API keys: swapped whole on reload. */
  pthread_rwlock_t keys_lock;
  ctkn_apikeys *keys;
  pthread_mutex_t bucket_lock;
  struct bucket *buckets;

  /* The follower: what it has applied, and the log's last status. */
  pthread_t follower;
  bool follower_started;
  volatile sig_atomic_t follower_stop;
  pthread_mutex_t pos_lock;
  int64_t *applied; /* next offset per partition (conservative) */
  int32_t napplied;
  struct ctkn_partition_status *status;
  int32_t nstatus;
  int64_t status_at_ms; /* when status was measured; 0: never */
  struct ctkn_projector_stats stats;
  struct req *waiters; /* reads waiting for a position */

  /* The command thread and its queue. */
  pthread_t commander;
  bool commander_started;
  struct wq cmdq;

  /* The settings thread and its queue. */
  pthread_t settler;
  bool settler_started;
  struct wq setq;

  /* Set by a thread that cannot go on; the server then stops. */
  atomic_int fatal;
  struct ctkn_err fatal_err;
  atomic_int inflight; /* requests between start and completion */
  atomic_bool closing; /* no new waits: the threads that end them stop */
};

/* One request's state, from its first header to its completion. */
struct req {
  struct server *srv;
  struct MHD_Connection *conn;
  char rid[37];
  int64_t t0_us;
  enum route route;
  const char *method;
  char path[96]; /* for the access log, truncated */
  char key_name[CTKN_APIKEY_NAME_MAX + 1];

  /* The body, while it arrives. */
  char *body;
  size_t len;
  bool too_large;

  /* Suspended work: a queued command or a position wait. */
  bool suspended;
  bool ready;                     /* the answer below is final */
  struct ctkn_command *cmd;       /* writes only: 3 KiB not to clear per read */
  struct ctkn_dest_command *dcmd; /* notification-setting writes only */
  int64_t want[POSITIONS_MAX][2]; /* partition, offset */
  int nwant;
  int64_t deadline_ms;
  struct req *next;

  /* The answer. */
  int status;
  char *resp; /* malloc'd JSON */
  char position[48];
  const char *allow;
  int retry_after;
};

static int64_t mono_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- logging ---------------------------------------------------------- */

/* One structured line: {"time","level","msg", ...extra}. extra is a JSON
 * fragment of further members, or "". */
__attribute__((format(printf, 3, 4))) static void
log_line(const char *level, const char *msg, const char *fmt, ...)
{
  char when[CTKN_TIME_BUF], extra[1024];
  va_list ap;

  if (ctkn_time_format(ctkn_now_us(), when) != CTKN_OK)
    strcpy(when, "");
  va_start(ap, fmt);
  vsnprintf(extra, sizeof(extra), fmt, ap);
  va_end(ap);
  fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"%s%s}\n",
          when, level, msg, extra[0] ? "," : "", extra);
}

/* A JSON string's inside for the log: quotes, backslashes and controls
 * dropped, never longer than cap - 1. */
static void log_safe(char *dst, size_t cap, const char *src)
{
  size_t j = 0;

  for (size_t i = 0; src != NULL && src[i] != '\0' && j + 1 < cap; i++) {
    unsigned char ch = (unsigned char)src[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\' && ch < 0x7f)
      dst[j++] = (char)ch;
  }
  dst[j] = '\0';
}

__attribute__((format(printf, 2, 0))) static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
  char msg[512], safe[512];
  size_t n;

  (void)cls;
  vsnprintf(msg, sizeof(msg), fmt, ap);
  n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  log_safe(safe, sizeof(safe), msg);
  log_line("warn", "http", "\"detail\":\"%s\"", safe);
}

/* ---- answers ---------------------------------------------------------- */

/* Make err the request's answer. */
static void answer_err(struct req *r, const struct ctkn_err *err)
{
  free(r->resp);
  r->status = ctkn_error_http_status(err->code);
  r->resp = ctkn_json_error(err, r->rid);
}

__attribute__((format(printf, 3, 4))) static void
answer_code(struct req *r, int code, const char *fmt, ...)
{
  struct ctkn_err err = {.code = code};
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
  va_end(ap);
  answer_err(r, &err);
}

static void answer_field(struct req *r, const char *field, const char *msg)
{
  struct ctkn_err err = {.code = CTKN_EINVAL};

  ctkn__strlcpy(err.field, field, sizeof(err.field));
  ctkn__strlcpy(err.msg, msg, sizeof(err.msg));
  answer_err(r, &err);
}

/* The answer of a query that returned rc with json. */
static void answer_query(struct req *r, int rc, char *json,
                         const struct ctkn_err *err)
{
  if (rc != CTKN_OK) {
    free(json);
    answer_err(r, err);
    return;
  }
  free(r->resp);
  r->status = MHD_HTTP_OK;
  r->resp = json;
}

static enum MHD_Result send_answer(struct req *r)
{
  static const char oom[] =
      "{\"error\":{\"type\":\"api_error\",\"code\":\"internal_error\","
      "\"detail\":\"out of memory\"}}";
  struct MHD_Response *resp;
  enum MHD_Result ret;
  char retry[16];

  if (r->status == MHD_HTTP_NO_CONTENT) {
    resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  } else if (r->resp != NULL) {
    resp = MHD_create_response_from_buffer(strlen(r->resp), r->resp,
                                           MHD_RESPMEM_MUST_FREE);
    if (resp != NULL)
      r->resp = NULL; /* now MHD's */
  } else {
    r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    resp = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
                                           MHD_RESPMEM_PERSISTENT);
  }
  if (resp == NULL)
    return MHD_NO;
  if (r->status != MHD_HTTP_NO_CONTENT)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->route == R_METRICS && r->status == MHD_HTTP_OK
                                ? "text/plain; version=0.0.4"
                                : "application/json");
  MHD_add_response_header(resp, "X-Request-Id", r->rid);
  if (r->position[0] != '\0')
    MHD_add_response_header(resp, "X-Ctkn-Position", r->position);
  if (r->allow != NULL)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
  if (r->retry_after > 0) {
    snprintf(retry, sizeof(retry), "%d", r->retry_after);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry);
  }
  ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* ---- positions -------------------------------------------------------- */

/* "P:O[,P:O...]" into r->want. */
static bool parse_positions(struct req *r, const char *s)
{
  r->nwant = 0;
  while (*s != '\0') {
    char *end;
    long long p, o;
    if (r->nwant == POSITIONS_MAX)
      return false;
    errno = 0;
    p = strtoll(s, &end, 10);
    if (errno || end == s || *end != ':' || p < 0 ||
        p >= CTKN_STORE_MAX_PARTITIONS || *s == '-' || *s == '+')
      return false;
    s = end + 1;
    o = strtoll(s, &end, 10);
    if (errno || end == s || o < 0 || *s == '-' || *s == '+')
      return false;
    r->want[r->nwant][0] = p;
    r->want[r->nwant][1] = o;
    r->nwant++;
    s = end;
    if (*s == ',' && s[1] != '\0')
      s++;
    else if (*s != '\0')
      return false;
  }
  return r->nwant > 0;
}

/* Whether every wanted position is below next (n entries). */
static bool positions_met(const struct req *r, const int64_t *next, int32_t n)
{
  for (int i = 0; i < r->nwant; i++) {
    int64_t p = r->want[i][0];
    if (p >= n || next[p] <= r->want[i][1])
      return false;
  }
  return true;
}

/* The store's own offsets: what any writer in this process committed. */
static bool positions_met_in_store(struct server *s, const struct req *r)
{
  ctkn_store_txn *txn;
  int64_t next;
  bool met = true;

  if (ctkn_store_begin(s->st, false, &txn, NULL) != CTKN_OK)
    return false;
  for (int i = 0; i < r->nwant && met; i++)
    met = ctkn_store_offset(txn, (int32_t)r->want[i][0], &next, NULL) ==
              CTKN_OK &&
          next > r->want[i][1];
  ctkn_store_abort(txn);
  return met;
}

/* Resume r with its answer (or, for a read, to run it now). */
static void wake(struct req *r)
{
  r->ready = true;
  MHD_resume_connection(r->conn);
}

static void on_advanced(void *arg, const int64_t *next, int32_t n)
{
  struct server *s = arg;
  struct req **pp, *r;

  pthread_mutex_lock(&s->pos_lock);
  if (n > s->napplied) {
    int64_t *a = realloc(s->applied, (size_t)n * sizeof(*a));
    if (a != NULL) {
      s->applied = a;
      s->napplied = n;
    }
  }
  for (int32_t i = 0; i < n && i < s->napplied; i++)
    s->applied[i] = next[i];
  for (pp = &s->waiters; (r = *pp) != NULL;) {
    if (positions_met(r, s->applied, s->napplied)) {
      *pp = r->next;
      wake(r);
    } else {
      pp = &r->next;
    }
  }
  pthread_mutex_unlock(&s->pos_lock);
}

static void on_status(void *arg, const struct ctkn_partition_status *st,
                      int32_t n, const struct ctkn_projector_stats *stats)
{
  struct server *s = arg;
  struct ctkn_partition_status *copy = malloc((size_t)n * sizeof(*copy));

  if (copy == NULL)
    return;
  memcpy(copy, st, (size_t)n * sizeof(*copy));
  pthread_mutex_lock(&s->pos_lock);
  free(s->status);
  s->status = copy;
  s->nstatus = n;
  s->status_at_ms = ctkn__now_ms();
  s->stats = *stats;
  pthread_mutex_unlock(&s->pos_lock);
}

/* Time out the position waits past their deadline. */
static void expire_waiters(struct server *s, bool all)
{
  int64_t now = ctkn__now_ms();
  struct req **pp, *r;

  pthread_mutex_lock(&s->pos_lock);
  for (pp = &s->waiters; (r = *pp) != NULL;) {
    if (all || now >= r->deadline_ms) {
      *pp = r->next;
      r->retry_after = 1;
      answer_code(r, CTKN_ETIMEOUT,
                  "this replica has not reached X-Ctkn-Min-Position within "
                  "%d ms; retry, or read from a replica that has",
                  s->cfg->position_wait_ms);
      wake(r);
    } else {
      pp = &r->next;
    }
  }
  pthread_mutex_unlock(&s->pos_lock);
}

/* ---- the follower ----------------------------------------------------- */

static void set_fatal(struct server *s, const struct ctkn_err *err)
{
  int expected = 0;
  if (atomic_compare_exchange_strong(&s->fatal, &expected, 1))
    s->fatal_err = *err;
}

static void *follower_main(void *arg)
{
  struct server *s = arg;
  struct ctkn_projector_hooks hooks = {.advanced = on_advanced,
                                       .status = on_status,
                                       .arg = s,
                                       .status_ms = s->cfg->status_ms};
  struct ctkn_err err = {0};
  ctkn_projector *p = NULL;
  int rc;

  rc = ctkn_projector_open(&p, s->st, s->cfg->log, s->cfg->env, &err);
  if (rc == CTKN_OK) {
    ctkn_projector_set_hooks(p, &hooks);
    rc = ctkn_projector_follow(p, &s->follower_stop, &err);
  }
  ctkn_projector_close(p);
  if (rc != CTKN_OK) {
    char safe[300];
    log_safe(safe, sizeof(safe), err.msg);
    log_line("error", "projection stopped", "\"code\":\"%s\",\"detail\":\"%s\"",
             ctkn_error_code(rc), safe);
    set_fatal(s, &err);
  }
  return NULL;
}

/* ---- the command thread ---------------------------------------------- */

/* Queue r, suspended, for the thread that drains q; or, once the server
 * is closing, answer it at once. */
static void enqueue(struct server *s, struct wq *q, struct req *r)
{
  pthread_mutex_lock(&q->lock);
  if (atomic_load(&s->closing)) {
    pthread_mutex_unlock(&q->lock);
    r->retry_after = 1;
    answer_code(r, CTKN_EKAFKA, "the server is shutting down; retry");
    wake(r);
    return;
  }
  r->next = NULL;
  if (q->tail != NULL)
    q->tail->next = r;
  else
    q->head = r;
  q->tail = r;
  pthread_cond_signal(&q->cond);
  pthread_mutex_unlock(&q->lock);
}

/* Wait for work on q and take up to max requests into batch. Returns how
 * many; 0 only once q is stopped and empty. */
static size_t dequeue(struct wq *q, struct req **batch, size_t max)
{
  size_t n = 0;

  pthread_mutex_lock(&q->lock);
  while (q->head == NULL && !q->stop)
    pthread_cond_wait(&q->cond, &q->lock);
  while (q->head != NULL && n < max) {
    batch[n++] = q->head;
    q->head = q->head->next;
  }
  if (q->head == NULL)
    q->tail = NULL;
  pthread_mutex_unlock(&q->lock);
  return n;
}

static void wq_init(struct wq *q)
{
  memset(q, 0, sizeof(*q));
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->cond, NULL);
}

static void wq_destroy(struct wq *q)
{
  pthread_mutex_destroy(&q->lock);
  pthread_cond_destroy(&q->cond);
}

/* Stop the thread draining q once it has emptied q, and join it. */
static void wq_stop(struct wq *q, pthread_t thread)
{
  pthread_mutex_lock(&q->lock);
  q->stop = true;
  pthread_cond_broadcast(&q->cond);
  pthread_mutex_unlock(&q->lock);
  pthread_join(thread, NULL);
}

/* Answer r from its command's outcome. */
static void answer_outcome(struct req *r, int rc, const struct ctkn_outcome *o,
                           const struct ctkn_err *err)
{
  if (rc != CTKN_OK) {
    if (ctkn_error_http_status(rc) == 503)
      r->retry_after = 1;
    answer_err(r, err);
    return;
  }
  int32_t part = o->appended ? o->partition : o->record.partition;
  int64_t off = o->appended ? o->offset : o->record.offset;
  if (part >= 0 && off >= 0)
    snprintf(r->position, sizeof(r->position), "%" PRId32 ":%" PRId64, part,
             off);
  free(r->resp);
  r->status = r->route == R_CREATE ? MHD_HTTP_CREATED : MHD_HTTP_OK;
  r->resp = ctkn_json_data(&o->record.token, r->rid);
}

static void *commander_main(void *arg)
{
  struct server *s = arg;
  struct ctkn_command *cmds = calloc(BATCH_MAX, sizeof(*cmds));
  struct ctkn_outcome *outs = calloc(BATCH_MAX, sizeof(*outs));
  struct ctkn_err *errs = calloc(BATCH_MAX, sizeof(*errs));
  int *rcs = calloc(BATCH_MAX, sizeof(*rcs));
  struct req *batch[BATCH_MAX];
  struct ctkn_err err = {0};
  ctkn_ledger *l = NULL;
  int rc;

  if (cmds == NULL || outs == NULL || errs == NULL || rcs == NULL)
    rc = ctkn__err(&err, CTKN_ENOMEM, "command thread");
  else
    rc = ctkn_ledger_open(&l, s->st, s->cfg->log, s->cfg->env, &err);
  if (rc != CTKN_OK)
    set_fatal(s, &err);

  for (;;) {
    size_t n = dequeue(&s->cmdq, batch, BATCH_MAX);
    if (n == 0)
      break;
    if (l == NULL) {
      for (size_t i = 0; i < n; i++) {
        batch[i]->retry_after = 1;
        answer_err(batch[i], &err);
        wake(batch[i]);
      }
      continue;
    }
    for (size_t i = 0; i < n; i++)
      cmds[i] = *batch[i]->cmd;
    ctkn_ledger_execute_batch(l, cmds, n, outs, rcs, errs);
    for (size_t i = 0; i < n; i++) {
      answer_outcome(batch[i], rcs[i], &outs[i], &errs[i]);
      wake(batch[i]);
    }
  }
  ctkn_ledger_close(l);
  free(cmds);
  free(outs);
  free(errs);
  free(rcs);
  return NULL;
}

/* ---- the settings thread --------------------------------------------- */

/*
 * Notification-setting writes run here, one at a time, not on the command
 * thread. ctkn_settings_execute() opens Kafka clients of its own (a
 * settings follower, a producer and, for a create, a consumer to read the
 * event topic's end offsets) and waits for the settings projection: some
 * hundreds of milliseconds that would stall every token write batched
 * behind it. Setting writes are rare, so one thread serialising them
 * costs nothing, and running them apart keeps token writes as fast as
 * ever. They are not answered on the HTTP worker either: the request is
 * suspended like a token write, so a worker is never parked on Kafka.
 */
static void answer_setting(struct server *s, struct req *r)
{
  struct ctkn_dest_outcome *o = malloc(sizeof(*o));
  struct ctkn_err err = {0};
  int rc;

  if (o == NULL) {
    answer_code(r, CTKN_ENOMEM, "out of memory");
    return;
  }
  rc = ctkn_settings_execute(s->st, s->cfg->log,
                             r->dcmd->kind == CTKN_DEST_ADD ? s->key : NULL,
                             r->dcmd, o, &err);
  if (rc != CTKN_OK) {
    if (ctkn_error_http_status(rc) == 503)
      r->retry_after = 1;
    answer_err(r, &err);
  } else if (r->dcmd->kind == CTKN_DEST_REMOVE) {
    free(r->resp);
    r->resp = NULL;
    r->status = MHD_HTTP_NO_CONTENT;
  } else {
    /* The endpoint secret is shown once: in the answer to its create. */
    free(r->resp);
    r->resp = ctkn_json_destination(
        &o->dest, r->dcmd->kind == CTKN_DEST_ADD ? o->secret : NULL, r->rid);
    r->status = r->dcmd->kind == CTKN_DEST_ADD ? MHD_HTTP_CREATED : MHD_HTTP_OK;
  }
  ctkn_wipe(o->secret, sizeof(o->secret));
  free(o);
}

static void *settings_main(void *arg)
{
  struct server *s = arg;
  struct req *r;

  while (dequeue(&s->setq, &r, 1) == 1) {
    answer_setting(s, r);
    wake(r);
  }
  return NULL;
}

/* ---- authentication --------------------------------------------------- */

/*
 * Check the Authorization header against the key file and the rate limit.
 * Returns CTKN_OK with r->key_name set, or the failure to answer.
 */
static int authenticate(struct server *s, struct req *r, unsigned need,
                        struct ctkn_err *err)
{
  const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_AUTHORIZATION);
  const struct ctkn_apikey *k = NULL;
  size_t idx = 0;
  int rc;

  if (h == NULL || *h == '\0')
    return ctkn__err(err, CTKN_EAUTHMISSING,
                     "send an API key as Authorization: Bearer <key>");
  /* RFC 9110: the scheme is case-insensitive (Paddle's SDK sends
   * "bearer"); one space, then the key. */
  if (strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0')
    return ctkn__err(err, CTKN_EAUTHMALFORMED,
                     "the Authorization header must be \"Bearer <key>\"");
  h += 7;
  pthread_rwlock_rdlock(&s->keys_lock);
  rc = ctkn_apikeys_find(s->keys, h, strlen(h), &k);
  if (rc == CTKN_OK) {
    ctkn__strlcpy(r->key_name, k->name, sizeof(r->key_name));
    for (idx = 0; ctkn_apikeys_at(s->keys, idx) != k; idx++)
      ;
  }
  unsigned perms = rc == CTKN_OK ? k->perms : 0;
  if (rc == CTKN_OK && s->cfg->rate_limit > 0 && s->buckets != NULL) {
    double rate = s->cfg->rate_limit, cap = rate < 1 ? 1 : rate;
    int64_t now = mono_us();
    pthread_mutex_lock(&s->bucket_lock);
    struct bucket *b = &s->buckets[idx];
    if (b->at_us == 0) {
      b->tokens = cap;
    } else {
      b->tokens += (double)(now - b->at_us) / 1e6 * rate;
      if (b->tokens > cap)
        b->tokens = cap;
    }
    b->at_us = now;
    if (b->tokens >= 1) {
      b->tokens -= 1;
    } else {
      r->retry_after = (int)ceil((1 - b->tokens) / rate);
      if (r->retry_after < 1)
        r->retry_after = 1;
      rc = ctkn__err(err, CTKN_ERATELIMIT,
                     "more than %g requests per second with this key; retry "
                     "after %d s",
                     rate, r->retry_after);
    }
    pthread_mutex_unlock(&s->bucket_lock);
  }
  pthread_rwlock_unlock(&s->keys_lock);
  if (rc == CTKN_EAUTHMALFORMED)
    return ctkn__err(err, rc, "the API key is not a ctkn API key");
  if (rc == CTKN_EBADKEY)
    return ctkn__err(err, rc, "the API key is not valid (unknown or revoked)");
  if (rc != CTKN_OK)
    return rc;
  if ((perms & need) != need) {
    /* need is one permission's bit, and its name is the last listed (a
     * write lists its read first). */
    const char *names[CTKN_PERMS_MAX];
    size_t n = ctkn_perms_names(need, names, CTKN_PERMS_MAX);
    return ctkn__err(err, CTKN_EFORBIDDEN,
                     "the API key \"%s\" lacks the permission %s", r->key_name,
                     n > 0 ? names[n - 1] : "?");
  }
  return CTKN_OK;
}

static int load_keys(struct server *s, struct ctkn_err *err)
{
  ctkn_apikeys *ks;
  struct bucket *b;
  int rc;

  if ((rc = ctkn_apikeys_load(s->cfg->api_keys, &ks, err)) != CTKN_OK)
    return rc;
  size_t n = ctkn_apikeys_count(ks);
  if ((b = calloc(n ? n : 1, sizeof(*b))) == NULL) {
    ctkn_apikeys_free(ks);
    return ctkn__err(err, CTKN_ENOMEM, "keys");
  }
  pthread_rwlock_wrlock(&s->keys_lock);
  ctkn_apikeys *old = s->keys;
  struct bucket *oldb = s->buckets;
  s->keys = ks;
  s->buckets = b;
  pthread_rwlock_unlock(&s->keys_lock);
  ctkn_apikeys_free(old);
  free(oldb);
  log_line("info", "api keys loaded", "\"keys\":%zu", n);
  return CTKN_OK;
}

/* ---- routes ----------------------------------------------------------- */

struct query_check {
  struct req *r;
  const char *const *allowed;
  const char *list; /* the one parameter that may repeat, or NULL */
  const char *bad;  /* first unknown or repeated parameter */
  const char *seen[8];
  int nseen;
};

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
  struct query_check *q = cls;
  bool known = false;

  (void)kind;
  (void)value;
  for (int i = 0; q->allowed[i] != NULL; i++)
    known |= strcmp(q->allowed[i], key) == 0;
  if (known && q->list != NULL && strcmp(q->list, key) == 0)
    return MHD_YES; /* status=active&status=revoked, as Paddle's Go SDK sends */
  for (int i = 0; i < q->nseen; i++) {
    if (strcmp(q->seen[i], key) == 0)
      known = false; /* repeated */
  }
  if (!known || q->nseen == 8) {
    q->bad = key;
    return MHD_NO;
  }
  q->seen[q->nseen++] = key;
  return MHD_YES;
}

/* Refuse unknown and repeated query parameters (but list), naming them. */
static bool query_ok(struct req *r, const char *const *allowed,
                     const char *list)
{
  struct query_check q = {.r = r, .allowed = allowed, .list = list};
  char msg[200];
  int n;

  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_arg, &q);
  if (q.bad == NULL)
    return true;
  n = snprintf(msg, sizeof(msg),
               "unknown or repeated query parameter "
               "(allowed: ");
  for (int i = 0; allowed[i] != NULL && n > 0 && (size_t)n < sizeof(msg); i++)
    n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%s%s", i ? ", " : "",
                  allowed[i]);
  if (n > 0 && (size_t)n < sizeof(msg))
    snprintf(msg + n, sizeof(msg) - (size_t)n, "%s)",
             allowed[0] == NULL ? "none" : "");
  answer_field(r, q.bad, msg);
  return false;
}

struct status_args {
  struct ctkn_list_params *p;
  unsigned mask;
  int rc;
  struct ctkn_err *err;
};

/* Each status value (comma-separated, or repeated) adds to the filter. */
static enum MHD_Result status_arg(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value)
{
  struct status_args *a = cls;

  (void)kind;
  if (strcmp(key, "status") != 0)
    return MHD_YES;
  a->rc = ctkn_list_params_status(a->p, value ? value : "", a->err);
  a->mask |= a->p->status_mask;
  return a->rc == CTKN_OK ? MHD_YES : MHD_NO;
}

static const char *arg(struct req *r, const char *name)
{
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static void route_list(struct server *s, struct req *r)
{
  static const char *const allowed[] = {"after", "per_page", "order_by",
                                        "status", NULL};
  struct ctkn_list_params p;
  struct ctkn_err err = {0};
  const char *v, *skip;
  char *json = NULL;
  int rc = CTKN_OK;

  if (!query_ok(r, allowed, "status"))
    return;
  ctkn_list_params_init(&p);
  if ((v = arg(r, "after")) != NULL)
    rc = ctkn_list_params_after(&p, v, &err);
  if (rc == CTKN_OK && (v = arg(r, "per_page")) != NULL)
    rc = ctkn_list_params_per_page(&p, v, &err);
  if (rc == CTKN_OK && (v = arg(r, "order_by")) != NULL)
    rc = ctkn_list_params_order_by(&p, v, &err);
  if (rc == CTKN_OK && arg(r, "status") != NULL) {
    struct status_args sa = {.p = &p, .err = &err};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, status_arg, &sa);
    if ((rc = sa.rc) == CTKN_OK)
      p.status_mask = sa.mask;
  }
  skip = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Skip-Count");
  if (rc == CTKN_OK)
    rc = ctkn_query_list(s->st, &p, s->next_base,
                         !(skip != NULL && strcasecmp(skip, "true") == 0),
                         r->rid, &json, &err);
  answer_query(r, rc, json, &err);
}

static void route_verify(struct server *s, struct req *r)
{
  static const char *const allowed[] = {"token", NULL};
  struct ctkn_err err = {0};
  const char *token;
  char *json = NULL;
  bool active;
  int rc;

  if (!query_ok(r, allowed, NULL))
    return;
  if ((token = arg(r, "token")) == NULL || *token == '\0') {
    answer_field(r, "token", "the query parameter token is required");
    return;
  }
  rc = ctkn_query_verify(s->st, token, r->rid, &json, &active, &err);
  answer_query(r, rc, json, &err);
}

static void route_get(struct server *s, struct req *r, const char *id)
{
  static const char *const none[] = {NULL};
  struct ctkn_err err = {0};
  char *json = NULL;
  int rc;

  if (!query_ok(r, none, NULL))
    return;
  if (!ctkn_id_valid("ctkn_", id)) {
    answer_field(r, "client_token_id", "must match ^ctkn_[a-z0-9]{26}$");
    return;
  }
  rc = ctkn_query_get(s->st, id, r->rid, &json, &err);
  answer_query(r, rc, json, &err);
}

/* ---- notification settings: reads ------------------------------------- */

/* Whether id names a notification setting; otherwise r is answered. */
static bool dest_id_ok(struct req *r, const char *id)
{
  if (ctkn_id_valid("ntfset_", id))
    return true;
  answer_field(r, "notification_setting_id",
               "must match ^ntfset_[a-z0-9]{26}$");
  return false;
}

/* One notification setting from this replica's projection, never its
 * endpoint secret. */
static void answer_dest(struct server *s, struct req *r, const char *id)
{
  struct ctkn_destination d;
  struct ctkn_err err = {0};
  ctkn_store_txn *txn;
  char *json = NULL;
  int rc;

  if ((rc = ctkn_store_begin(s->st, false, &txn, &err)) == CTKN_OK) {
    rc = ctkn_settings_get(txn, id, false, &d, &err);
    ctkn_store_abort(txn);
  }
  if (rc == CTKN_ENOTFOUND)
    rc = ctkn__err(&err, CTKN_ENOTFOUND, "notification setting %.40s not found",
                   id);
  if (rc == CTKN_OK && (json = ctkn_json_destination(&d, NULL, r->rid)) == NULL)
    rc = ctkn__err(&err, CTKN_ENOMEM, "out of memory");
  answer_query(r, rc, json, &err);
}

static void route_dest_get(struct server *s, struct req *r, const char *id)
{
  static const char *const none[] = {NULL};

  if (query_ok(r, none, NULL) && dest_id_ok(r, id))
    answer_dest(s, r, id);
}

/* The next page's URL: base and every parameter in force. */
static char *dest_next_link(const char *base, const char *after, bool desc,
                            int per_page, const char *active,
                            const char *traffic)
{
  size_t len = strlen(base) + 160;
  char *u = malloc(len);

  if (u != NULL)
    snprintf(u, len, "%s?after=%s&order_by=id%%5B%s%%5D&per_page=%d%s%s%s%s",
             base, after, desc ? "DESC" : "ASC", per_page,
             active ? "&active=" : "", active ? active : "",
             traffic ? "&traffic_source=" : "", traffic ? traffic : "");
  return u;
}

/*
 * Paddle's list: after, per_page (default and most 200), order_by
 * (id[ASC] or id[DESC], default id[DESC]), active and traffic_source. ctkn
 * has no simulated traffic, so every destination receives platform
 * traffic: traffic_source=platform and =all match them all, =simulation
 * none. Destinations are few, so the page is cut from the whole list.
 */
static void route_dest_list(struct server *s, struct req *r)
{
  static const char *const allowed[] = {"after",  "per_page",       "order_by",
                                        "active", "traffic_source", NULL};
  struct ctkn_list_params p;
  struct ctkn_pagination page = {.estimated_total = 0};
  struct ctkn_destination *ds = NULL, *out = NULL;
  struct ctkn_err err = {0};
  ctkn_store_txn *txn;
  const char *after, *active, *traffic, *v;
  char *json = NULL, *next = NULL;
  bool none = false;
  size_t n = 0, kept = 0, taken = 0;
  int rc = CTKN_OK;

  if (!query_ok(r, allowed, NULL))
    return;
  ctkn_list_params_init(&p);
  p.per_page = DEST_PER_PAGE;
  after = arg(r, "after");
  if (after != NULL && !ctkn_id_valid("ntfset_", after)) {
    answer_field(r, "after",
                 "must be a notification setting ID (^ntfset_[a-z0-9]{26}$)");
    return;
  }
  if ((v = arg(r, "per_page")) != NULL)
    rc = ctkn_list_params_per_page(&p, v, &err);
  if (rc == CTKN_OK && (v = arg(r, "order_by")) != NULL)
    rc = ctkn_list_params_order_by(&p, v, &err);
  if (rc != CTKN_OK) {
    answer_err(r, &err);
    return;
  }
  active = arg(r, "active");
  if (active != NULL && strcmp(active, "true") != 0 &&
      strcmp(active, "false") != 0) {
    answer_field(r, "active", "must be true or false");
    return;
  }
  traffic = arg(r, "traffic_source");
  if (traffic != NULL) {
    if (strcmp(traffic, "simulation") == 0)
      none = true;
    else if (strcmp(traffic, "platform") != 0 && strcmp(traffic, "all") != 0) {
      answer_field(r, "traffic_source", "must be platform, simulation or all");
      return;
    }
  }

  if ((rc = ctkn_store_begin(s->st, false, &txn, &err)) == CTKN_OK) {
    rc = ctkn_settings_list(txn, &ds, &n, &err);
    ctkn_store_abort(txn);
  }
  if (rc == CTKN_OK && (out = malloc((n ? n : 1) * sizeof(*out))) == NULL)
    rc = ctkn__err(&err, CTKN_ENOMEM, "out of memory");
  /* ds is in ID order: filter it in place, then walk it either way. */
  for (size_t i = 0; rc == CTKN_OK && !none && i < n; i++) {
    if (active == NULL || ds[i].active == (active[0] == 't'))
      ds[kept++] = ds[i];
  }
  page.per_page = p.per_page;
  page.estimated_total = (int64_t)kept;
  for (size_t k = 0; rc == CTKN_OK && k < kept; k++) {
    const struct ctkn_destination *d = &ds[p.desc ? kept - 1 - k : k];
    int cmp = after != NULL ? strcmp(d->id, after) : 0;
    if (after != NULL && (p.desc ? cmp >= 0 : cmp <= 0))
      continue;
    if (taken == (size_t)p.per_page) {
      page.has_more = true;
      break;
    }
    out[taken++] = *d;
  }
  if (rc == CTKN_OK && page.has_more &&
      (next = dest_next_link(s->dest_next_base, out[taken - 1].id, p.desc,
                             p.per_page, active, traffic)) == NULL)
    rc = ctkn__err(&err, CTKN_ENOMEM, "out of memory");
  page.next = next;
  if (rc == CTKN_OK &&
      (json = ctkn_json_destinations_page(out, taken, &page, r->rid)) == NULL)
    rc = ctkn__err(&err, CTKN_ENOMEM, "out of memory");
  answer_query(r, rc, json, &err);
  free(next);
  free(out);
  free(ds);
}

static void route_healthz(struct server *s, struct req *r)
{
  const char *state = "ready";
  int64_t lag = 0;

  pthread_mutex_lock(&s->pos_lock);
  for (int32_t i = 0; i < s->nstatus; i++) {
    int64_t d = s->status[i].log_end - s->status[i].projected;
    lag += d > 0 ? d : 0;
  }
  if (s->status_at_ms == 0)
    state = "starting";
  else if (ctkn__now_ms() - s->status_at_ms >
           3 * (int64_t)s->cfg->status_ms + 2 * s->cfg->log->timeout_ms)
    state = "stale"; /* the log has not answered for a while */
  else if (lag > s->cfg->max_lag)
    state = "lagging";
  free(r->resp);
  r->resp = ctkn_json_health(state, s->cfg->max_lag, s->cfg->log->topic,
                             s->status, (size_t)s->nstatus, r->rid);
  pthread_mutex_unlock(&s->pos_lock);
  r->status =
      strcmp(state, "ready") == 0 ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
}

/* Prometheus' text format, into a growing buffer. */
struct text {
  char *buf;
  size_t len, cap;
  bool oom;
};

__attribute__((format(printf, 2, 3))) static void text_add(struct text *t,
                                                           const char *fmt, ...)
{
  va_list ap;
  int n;

  if (t->oom)
    return;
  for (;;) {
    va_start(ap, fmt);
    n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->oom = true;
      return;
    }
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap * 2 + (size_t)n;
    char *b = realloc(t->buf, cap);
    if (b == NULL) {
      t->oom = true;
      return;
    }
    t->buf = b;
    t->cap = cap;
  }
}

static void route_metrics(struct server *s, struct req *r)
{
  struct text t = {.cap = 16384};
  struct metrics *m = &s->m;

  if ((t.buf = malloc(t.cap)) == NULL)
    return;
  t.buf[0] = '\0';
  text_add(&t, "# HELP ctkn_http_requests_total HTTP requests by route and "
               "status.\n# TYPE ctkn_http_requests_total counter\n");
  for (int rt = 0; rt < R_COUNT; rt++) {
    for (size_t i = 0; i < NSTATUS; i++) {
      uint64_t v = atomic_load(&m->requests[rt][i]);
      if (v == 0)
        continue;
      if (i < NSTATUS - 1)
        text_add(&t,
                 "ctkn_http_requests_total{route=\"%s\",status=\"%d\"} "
                 "%" PRIu64 "\n",
                 route_names[rt], statuses[i], v);
      else
        text_add(&t,
                 "ctkn_http_requests_total{route=\"%s\",status=\"other\"} "
                 "%" PRIu64 "\n",
                 route_names[rt], v);
    }
  }
  text_add(&t, "# HELP ctkn_http_request_duration_seconds Time from a "
               "request's first byte to its answer.\n"
               "# TYPE ctkn_http_request_duration_seconds histogram\n");
  for (int rt = 0; rt < R_COUNT; rt++) {
    uint64_t cum = 0;
    for (size_t b = 0; b < NBUCKET; b++) {
      cum += atomic_load(&m->hist[rt][b]);
      if (b < NBUCKET - 1)
        text_add(&t,
                 "ctkn_http_request_duration_seconds_bucket{route=\"%s\","
                 "le=\"%g\"} %" PRIu64 "\n",
                 route_names[rt], buckets[b], cum);
      else
        text_add(&t,
                 "ctkn_http_request_duration_seconds_bucket{route=\"%s\","
                 "le=\"+Inf\"} %" PRIu64 "\n",
                 route_names[rt], cum);
    }
    text_add(&t,
             "ctkn_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
             "ctkn_http_request_duration_seconds_count{route=\"%s\"} "
             "%" PRIu64 "\n",
             route_names[rt], (double)atomic_load(&m->sum_us[rt]) / 1e6,
             route_names[rt], cum);
  }
  pthread_mutex_lock(&s->pos_lock);
  struct ctkn_projector_stats st = s->stats;
  text_add(&t,
           "# HELP ctkn_projector_events_total Records the follower passed, "
           "by outcome (skipped: already applied by this server's writes).\n"
           "# TYPE ctkn_projector_events_total counter\n"
           "ctkn_projector_events_total{outcome=\"applied\"} %" PRIu64 "\n"
           "ctkn_projector_events_total{outcome=\"rejected\"} %" PRIu64 "\n"
           "ctkn_projector_events_total{outcome=\"quarantined\"} %" PRIu64 "\n"
           "ctkn_projector_events_total{outcome=\"skipped\"} %" PRIu64 "\n"
           "# HELP ctkn_projector_paused_partitions Partitions stopped at a "
           "newer schema version.\n"
           "# TYPE ctkn_projector_paused_partitions gauge\n"
           "ctkn_projector_paused_partitions %" PRId32 "\n",
           st.applied, st.rejected, st.quarantined, st.skipped, st.paused);
  text_add(&t, "# HELP ctkn_projection_lag Records in the log not yet "
               "applied, per partition.\n"
               "# TYPE ctkn_projection_lag gauge\n");
  for (int32_t i = 0; i < s->nstatus; i++) {
    int64_t d = s->status[i].log_end - s->status[i].projected;
    text_add(&t, "ctkn_projection_lag{partition=\"%" PRId32 "\"} %" PRId64 "\n",
             s->status[i].partition, d > 0 ? d : 0);
  }
  text_add(&t,
           "# HELP ctkn_projection_lag_age_seconds Age of the last lag "
           "measurement.\n# TYPE ctkn_projection_lag_age_seconds gauge\n"
           "ctkn_projection_lag_age_seconds %.3f\n",
           s->status_at_ms ? (double)(ctkn__now_ms() - s->status_at_ms) / 1000
                           : -1.0);
  pthread_mutex_unlock(&s->pos_lock);
  if (t.oom) {
    free(t.buf);
    return;
  }
  free(r->resp);
  r->resp = t.buf;
  r->status = MHD_HTTP_OK;
}

/* /notification-settings[/{id}]: what it names, and which methods it
 * takes. url is what follows the base. */
static enum route classify_dest(const char *url, const char *method, char *id,
                                const char **allow)
{
  bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

  if (*url == '\0' || strcmp(url, "/") == 0) {
    *allow = "GET, HEAD, POST";
    if (get)
      return R_DEST_LIST;
    return strcmp(method, "POST") == 0 ? R_DEST_CREATE : R_COUNT;
  }
  if (*url != '/' || url[1] == '\0' || strchr(url + 1, '/') != NULL)
    return R_OTHER;
  ctkn__strlcpy(id, url + 1, PATH_ID_BUF);
  *allow = "GET, HEAD, PATCH, DELETE";
  if (get)
    return R_DEST_GET;
  if (strcmp(method, "PATCH") == 0)
    return R_DEST_UPDATE;
  return strcmp(method, "DELETE") == 0 ? R_DEST_DELETE : R_COUNT;
}

/* What the path names, and which methods it takes. */
static enum route classify(const char *url, const char *method, char *id,
                           const char **allow)
{
  static const char base[] = "/client-tokens";
  static const char dest[] = "/notification-settings";
  bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

  *allow = NULL;
  if (strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0) {
    *allow = "GET, HEAD";
    if (!get)
      return R_COUNT;
    return url[1] == 'h' ? R_HEALTHZ : R_METRICS;
  }
  if (strncmp(url, dest, sizeof(dest) - 1) == 0)
    return classify_dest(url + sizeof(dest) - 1, method, id, allow);
  if (strncmp(url, base, sizeof(base) - 1) != 0)
    return R_OTHER;
  url += sizeof(base) - 1;
  if (*url == '\0' || strcmp(url, "/") == 0) {
    *allow = "GET, HEAD, POST";
    if (get)
      return R_LIST;
    return strcmp(method, "POST") == 0 ? R_CREATE : R_COUNT;
  }
  if (*url != '/' || strchr(url + 1, '/') != NULL)
    return R_OTHER;
  url++;
  if (strcmp(url, "verify") == 0) {
    *allow = "GET, HEAD";
    return get ? R_VERIFY : R_COUNT;
  }
  ctkn__strlcpy(id, url, PATH_ID_BUF);
  *allow = "GET, HEAD, PATCH";
  if (get)
    return R_GET;
  return strcmp(method, "PATCH") == 0 ? R_UPDATE : R_COUNT;
}

/* ---- the access handler ---------------------------------------------- */

/* A notification-setting write: parse it here, run it on the settings
 * thread. */
static void dispatch_dest_write(struct server *s, struct req *r, const char *id)
{
  struct ctkn_dest_command *c = r->dcmd;
  struct ctkn_err err = {0};
  int rc;

  if (r->too_large) {
    answer_code(r, CTKN_ETOOLARGE, "the request body is larger than %d bytes",
                CTKN_SERVER_MAX_BODY);
    return;
  }
  if (r->route == R_DEST_CREATE) {
    rc = ctkn_json_parse_dest_create(r->body ? r->body : "", r->len, c, &err);
  } else if (r->route == R_DEST_UPDATE) {
    rc = ctkn_json_parse_dest_update(r->body ? r->body : "", r->len, id, c,
                                     &err);
    /* Only fields at ctkn's one value: nothing to change, so a read. */
    if (rc == CTKN_OK && !c->set_url && !c->set_events && !c->set_description &&
        !c->set_active) {
      answer_dest(s, r, id);
      return;
    }
  } else {
    ctkn_dest_command_init(c, CTKN_DEST_REMOVE);
    rc = ctkn_dest_command_set_id(c, id, &err);
  }
  if (rc == CTKN_OK)
    rc = ctkn_dest_command_check(c, &err);
  if (rc != CTKN_OK) {
    answer_err(r, &err);
    return;
  }
  /* Endpoint secrets are sealed under the deployment key: without it this
   * server cannot create a destination, whatever the client does, until
   * its operator restarts it with one. 503 says the service is not there,
   * and no Retry-After, as a retry soon will not help. */
  if (r->route == R_DEST_CREATE && !s->have_key) {
    answer_code(r, CTKN_EIO,
                "this server cannot create notification settings: it was "
                "started without the deployment key (ctkn serve "
                "--secret-key-file FILE, or $CTKN_SECRET_KEY_FILE)");
    return;
  }
  r->suspended = true;
  MHD_suspend_connection(r->conn);
  enqueue(s, &s->setq, r);
}

/* Everything is known: answer now, or suspend until the answer is. */
static void dispatch(struct server *s, struct req *r, const char *id)
{
  struct ctkn_err err = {0};
  int rc = CTKN_OK;

  switch (r->route) {
  case R_CREATE:
  case R_UPDATE:
    if (r->too_large) {
      answer_code(r, CTKN_ETOOLARGE, "the request body is larger than %d bytes",
                  CTKN_SERVER_MAX_BODY);
      return;
    }
    if (r->route == R_CREATE) {
      const char *k = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                  "Idempotency-Key");
      rc = ctkn_json_parse_create(r->body ? r->body : "", r->len, r->cmd, &err);
      if (rc == CTKN_OK && k != NULL)
        rc = ctkn_command_set_idempotency_key(r->cmd, k, strlen(k), &err);
    } else {
      rc = ctkn_json_parse_update(r->body ? r->body : "", r->len, id, r->cmd,
                                  &err);
    }
    if (rc == CTKN_OK)
      rc = ctkn_command_check(r->cmd, &err);
    if (rc != CTKN_OK) {
      answer_err(r, &err);
      return;
    }
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    enqueue(s, &s->cmdq, r);
    return;
  case R_GET:
  case R_LIST:
  case R_VERIFY: {
    const char *min = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                  "X-Ctkn-Min-Position");
    if (min != NULL && r->nwant == 0) {
      if (!parse_positions(r, min)) {
        answer_field(r, "X-Ctkn-Min-Position",
                     "must be PARTITION:OFFSET[,PARTITION:OFFSET...], as "
                     "X-Ctkn-Position gives them");
        return;
      }
      if (!positions_met_in_store(s, r)) {
        pthread_mutex_lock(&s->pos_lock);
        if (atomic_load(&s->closing)) {
          pthread_mutex_unlock(&s->pos_lock);
          r->retry_after = 1;
          answer_code(r, CTKN_ETIMEOUT, "the server is shutting down");
          return;
        }
        if (!positions_met(r, s->applied, s->napplied)) {
          r->deadline_ms = ctkn__now_ms() + s->cfg->position_wait_ms;
          r->suspended = true;
          MHD_suspend_connection(r->conn);
          r->next = s->waiters;
          s->waiters = r;
          pthread_mutex_unlock(&s->pos_lock);
          return;
        }
        pthread_mutex_unlock(&s->pos_lock);
      }
    }
    if (r->route == R_GET)
      route_get(s, r, id);
    else if (r->route == R_LIST)
      route_list(s, r);
    else
      route_verify(s, r);
    return;
  }
  case R_DEST_CREATE:
  case R_DEST_UPDATE:
  case R_DEST_DELETE:
    dispatch_dest_write(s, r, id);
    return;
  case R_DEST_LIST:
    route_dest_list(s, r);
    return;
  case R_DEST_GET:
    route_dest_get(s, r, id);
    return;
  case R_HEALTHZ:
    route_healthz(s, r);
    return;
  case R_METRICS:
    route_metrics(s, r);
    return;
  default:
    answer_code(r, CTKN_EINTERNAL, "unrouted request");
    return;
  }
}

/* First call: route, authenticate, size the body. Leaves r->resp set
 * when the request is answered already. */
static void begin(struct server *s, struct req *r, const char *url,
                  const char *method, char *id)
{
  struct ctkn_err err = {0};
  const char *allow;

  r->route = classify(url, method, id, &allow);
  if (r->route == R_OTHER) {
    answer_code(r, CTKN_ENOTFOUND, "no such resource: %.60s", r->path);
    return;
  }
  if (r->route == R_COUNT) {
    r->route = R_OTHER;
    r->allow = allow;
    answer_code(r, CTKN_EMETHOD, "%.16s is not allowed here; allowed: %s",
                method, allow);
    return;
  }
  if (r->route == R_HEALTHZ || r->route == R_METRICS)
    return;
  unsigned need;
  switch (r->route) {
  case R_CREATE:
  case R_UPDATE:
    need = CTKN_PERM_TOKEN_WRITE;
    break;
  case R_DEST_CREATE:
  case R_DEST_UPDATE:
  case R_DEST_DELETE:
    need = CTKN_PERM_SETTING_WRITE;
    break;
  case R_DEST_LIST:
  case R_DEST_GET:
    need = CTKN_PERM_SETTING_READ;
    break;
  default:
    need = CTKN_PERM_TOKEN_READ;
    break;
  }
  if (authenticate(s, r, need, &err) != CTKN_OK) {
    answer_err(r, &err);
    return;
  }
  if (need == CTKN_PERM_SETTING_WRITE) {
    if ((r->route == R_DEST_UPDATE || r->route == R_DEST_DELETE) &&
        !dest_id_ok(r, id))
      return;
    if ((r->dcmd = malloc(sizeof(*r->dcmd))) == NULL) {
      answer_code(r, CTKN_ENOMEM, "out of memory");
      return;
    }
    ctkn_dest_command_init(r->dcmd, CTKN_DEST_ADD);
  }
  if (need == CTKN_PERM_TOKEN_WRITE &&
      (r->cmd = malloc(sizeof(*r->cmd))) == NULL) {
    answer_code(r, CTKN_ENOMEM, "out of memory");
    return;
  }
  if (r->cmd != NULL)
    ctkn_command_init(r->cmd,
                      r->route == R_CREATE ? CTKN_CMD_CREATE : CTKN_CMD_UPDATE);
  if (r->route == R_UPDATE &&
      ctkn_command_set_id(r->cmd, id, &err) != CTKN_OK) {
    answer_err(r, &err);
    return;
  }
  const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl != NULL && strtoull(cl, NULL, 10) > CTKN_SERVER_MAX_BODY)
    answer_code(r, CTKN_ETOOLARGE, "the request body is larger than %d bytes",
                CTKN_SERVER_MAX_BODY);
}

/* Whether r has its final answer: a body, or 204's none. */
static bool answered(const struct req *r)
{
  return r->resp != NULL || r->status == MHD_HTTP_NO_CONTENT;
}

static bool has_body(struct MHD_Connection *conn)
{
  const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  return (cl != NULL && strcmp(cl, "0") != 0) ||
         MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
  struct server *s = cls;
  struct req *r = *req_cls;
  char id[PATH_ID_BUF] = "";

  (void)version;
  if (r == NULL) {
    if ((r = calloc(1, sizeof(*r))) == NULL)
      return MHD_NO;
    atomic_fetch_add(&s->inflight, 1);
    r->srv = s;
    r->conn = conn;
    r->t0_us = mono_us();
    r->method = method;
    r->route = R_OTHER;
    if (ctkn_request_id(r->rid) != CTKN_OK)
      strcpy(r->rid, "00000000-0000-4000-8000-000000000000");
    log_safe(r->path, sizeof(r->path), url);
    *req_cls = r;
    begin(s, r, url, method, id);
    /* Refused already: say so before a body is sent (libmicrohttpd then
     * closes the connection); without a body, answer on the next call
     * and keep the connection. */
    if (answered(r) && has_body(conn))
      return send_answer(r);
    return MHD_YES;
  }
  if (r->suspended) {
    /* Resumed: the answer is final, or a read may run now. */
    r->suspended = false;
    if (answered(r))
      return send_answer(r);
    classify(url, method, id, &(const char *){NULL});
    dispatch(s, r, id);
    return r->suspended ? MHD_YES : send_answer(r);
  }
  if (*upload_data_size != 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (answered(r) || r->too_large)
      return MHD_YES; /* answered or refused: drain the rest */
    if (r->route != R_CREATE && r->route != R_UPDATE &&
        r->route != R_DEST_CREATE && r->route != R_DEST_UPDATE) {
      answer_code(r, CTKN_EBADREQ, "this request takes no body");
      return MHD_YES;
    }
    if (r->len + n > CTKN_SERVER_MAX_BODY) {
      r->too_large = true;
      return MHD_YES;
    }
    char *b = realloc(r->body, r->len + n + 1);
    if (b == NULL)
      return MHD_NO;
    memcpy(b + r->len, upload_data, n);
    r->body = b;
    r->len += n;
    r->body[r->len] = '\0';
    return MHD_YES;
  }
  if (answered(r))
    return send_answer(r);
  classify(url, method, id, &(const char *){NULL});
  dispatch(s, r, id);
  return r->suspended ? MHD_YES : send_answer(r);
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
  struct server *s = cls;
  struct req *r = *req_cls;

  (void)conn;
  if (r == NULL)
    return;
  int64_t us = mono_us() - r->t0_us;
  int status = r->status ? r->status : 0;
  size_t si = NSTATUS - 1, bi = NBUCKET - 1;
  for (size_t i = 0; i < NSTATUS - 1; i++) {
    if (statuses[i] == status)
      si = i;
  }
  for (size_t i = 0; i < NBUCKET - 1; i++) {
    if ((double)us / 1e6 <= buckets[i]) {
      bi = i;
      break;
    }
  }
  atomic_fetch_add(&s->m.requests[r->route][si], 1);
  atomic_fetch_add(&s->m.hist[r->route][bi], 1);
  atomic_fetch_add(&s->m.sum_us[r->route], (uint64_t)us);
  /* The access line, formatted once and written whole (no floating
   * point: it was a tenth of a read's time). */
  char when[CTKN_TIME_BUF], line[768];
  if (ctkn_time_format(ctkn_now_us(), when) != CTKN_OK)
    when[0] = '\0';
  int n = snprintf(line, sizeof(line),
                   "{\"time\":\"%s\",\"level\":\"info\",\"msg\":\"request\","
                   "\"request_id\":\"%s\",\"method\":\"%.10s\",\"path\":\"%s\","
                   "\"route\":\"%s\",\"status\":%d,\"duration_ms\":%" PRId64
                   ".%03d,"
                   "\"key\":\"%s\"%s}\n",
                   when, r->rid, r->method, r->path, route_names[r->route],
                   status, us / 1000, (int)(us % 1000), r->key_name,
                   toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
                   : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED
                       ? ",\"aborted\":\"timeout\""
                       : ",\"aborted\":\"connection\"");
  if (n > 0)
    fwrite(line, 1, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1,
           stderr);
  free(r->cmd);
  free(r->dcmd);
  free(r->body);
  free(r->resp);
  free(r);
  *req_cls = NULL;
  atomic_fetch_sub(&s->inflight, 1);
}

/* ---- start and stop --------------------------------------------------- */

void ctkn_server_config_init(struct ctkn_server_config *cfg)
{
  memset(cfg, 0, sizeof(*cfg));
  cfg->listen = "127.0.0.1:8080";
  cfg->threads = 2;
  cfg->max_lag = 1000;
  cfg->position_wait_ms = 5000;
  cfg->client_timeout_s = 30;
  cfg->status_ms = 1000;
}

/* "HOST:PORT" or "[V6]:PORT" into an address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss,
                        socklen_t *sslen, struct ctkn_err *err)
{
  char host[256];
  const char *colon, *port;
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                           .ai_socktype = SOCK_STREAM},
                  *ai = NULL;

  if (listen[0] == '[') {
    const char *close = strchr(listen, ']');
    if (close == NULL || close[1] != ':')
      goto bad;
    if ((size_t)(close - listen - 1) >= sizeof(host))
      goto bad;
    memcpy(host, listen + 1, (size_t)(close - listen - 1));
    host[close - listen - 1] = '\0';
    port = close + 2;
  } else {
    if ((colon = strrchr(listen, ':')) == NULL ||
        (size_t)(colon - listen) >= sizeof(host))
      goto bad;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = colon + 1;
  }
  if (*port == '\0' || strspn(port, "0123456789") != strlen(port) ||
      getaddrinfo(host, port, &hints, &ai) != 0)
    goto bad;
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  *sslen = ai->ai_addrlen;
  freeaddrinfo(ai);
  return CTKN_OK;
bad:
  return ctkn__err_field(err, CTKN_EUSAGE, "listen",
                         "must be ADDRESS:PORT with a numeric address, such as "
                         "127.0.0.1:8080 or [::1]:8080, not \"%.100s\"",
                         listen);
}

static char *slurp(const char *path, struct ctkn_err *err)
{
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t len = 0, cap = 0;

  if (f == NULL) {
    ctkn__err(err, CTKN_EIO, "%.200s: %s", path, strerror(errno));
    return NULL;
  }
  for (;;) {
    if (len + 4096 + 1 > cap) {
      char *b = realloc(buf, cap = cap * 2 + 8192);
      if (b == NULL) {
        free(buf);
        fclose(f);
        ctkn__err(err, CTKN_ENOMEM, "%.200s", path);
        return NULL;
      }
      buf = b;
    }
    size_t n = fread(buf + len, 1, 4096, f);
    len += n;
    if (n < 4096)
      break;
  }
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    ctkn__err(err, CTKN_EIO, "%.200s: read error", path);
    return NULL;
  }
  buf[len] = '\0';
  return buf;
}

static int check_config(const struct ctkn_server_config *c,
                        struct ctkn_err *err)
{
  if (c->api_keys == NULL || *c->api_keys == '\0')
    return ctkn__err_field(err, CTKN_EUSAGE, "api-keys",
                           "an API key file is required (ctkn apikey create)");
  if ((c->tls_cert == NULL) != (c->tls_key == NULL))
    return ctkn__err_field(err, CTKN_EUSAGE,
                           c->tls_cert == NULL ? "tls-cert" : "tls-key",
                           "--tls-cert and --tls-key go together");
  if (c->threads < 1 || c->threads > 64)
    return ctkn__err_field(err, CTKN_EUSAGE, "threads", "must be 1 to 64");
  if (c->rate_limit < 0 || !isfinite(c->rate_limit))
    return ctkn__err_field(err, CTKN_EUSAGE, "rate-limit",
                           "must be a number of requests per second, 0 for "
                           "none");
  if (c->max_lag < 0)
    return ctkn__err_field(err, CTKN_EUSAGE, "max-lag", "must be 0 or more");
  if (c->position_wait_ms <= 0 || c->client_timeout_s <= 0 || c->status_ms <= 0)
    return ctkn__err(err, CTKN_EUSAGE, "timeouts must be positive");
  const char *u = c->public_url;
  if (u != NULL && strncmp(u, "http://", 7) != 0 &&
      strncmp(u, "https://", 8) != 0)
    return ctkn__err_field(err, CTKN_EUSAGE, "public-url",
                           "must start with http:// or https://");
  return CTKN_OK;
}

static void server_free(struct server *s)
{
  ctkn_apikeys_free(s->keys);
  free(s->buckets);
  free(s->applied);
  free(s->status);
  free(s->next_base);
  free(s->dest_next_base);
  ctkn_wipe(s->key, sizeof(s->key));
  pthread_rwlock_destroy(&s->keys_lock);
  pthread_mutex_destroy(&s->bucket_lock);
  pthread_mutex_destroy(&s->pos_lock);
  wq_destroy(&s->cmdq);
  wq_destroy(&s->setq);
  free(s);
}

int ctkn_server_run(ctkn_store *st, const struct ctkn_server_config *cfg,
                    volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
                    struct ctkn_err *err)
{
  struct sockaddr_storage ss;
  socklen_t sslen;
  char *cert = NULL, *key = NULL;
  struct server *s;
  int rc;

  if ((rc = check_config(cfg, err)) != CTKN_OK ||
      (rc = parse_listen(cfg->listen, &ss, &sslen, err)) != CTKN_OK)
    return rc;
  if ((s = calloc(1, sizeof(*s))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "server");
  s->cfg = cfg;
  s->st = st;
  pthread_rwlock_init(&s->keys_lock, NULL);
  pthread_mutex_init(&s->bucket_lock, NULL);
  pthread_mutex_init(&s->pos_lock, NULL);
  wq_init(&s->cmdq);
  wq_init(&s->setq);

  /* Links are absolute on the public URL, or on the listen address. */
  const char *base = cfg->public_url;
  char fallback[300];
  if (base == NULL) {
    snprintf(fallback, sizeof(fallback), "%s://%s",
             cfg->tls_cert ? "https" : "http", cfg->listen);
    base = fallback;
  }
  size_t blen = strlen(base);
  while (blen > 0 && base[blen - 1] == '/')
    blen--;
  if ((s->next_base = malloc(blen + sizeof("/client-tokens"))) == NULL ||
      (s->dest_next_base = malloc(blen + sizeof("/notification-settings"))) ==
          NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "server");
    goto out;
  }
  memcpy(s->next_base, base, blen);
  memcpy(s->next_base + blen, "/client-tokens", sizeof("/client-tokens"));
  memcpy(s->dest_next_base, base, blen);
  memcpy(s->dest_next_base + blen, "/notification-settings",
         sizeof("/notification-settings"));

  /* A key that is named but does not load stops the server: it must not
   * come up unable to create what its operator meant it to. */
  if (cfg->secret_key_file != NULL) {
    if ((rc = ctkn_key_load(cfg->secret_key_file, s->key, err)) != CTKN_OK)
      goto out;
    s->have_key = true;
  }

  if ((rc = load_keys(s, err)) != CTKN_OK)
    goto out;
  if (cfg->tls_cert != NULL) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      rc = ctkn__err(err, CTKN_EUSAGE,
                     "this libmicrohttpd was built without TLS");
      goto out;
    }
    if ((cert = slurp(cfg->tls_cert, err)) == NULL ||
        (key = slurp(cfg->tls_key, err)) == NULL) {
      rc = err ? err->code : CTKN_EIO;
      goto out;
    }
  }

  /* Writers and the follower first: a request may need them at once. */
  if (pthread_create(&s->follower, NULL, follower_main, s) != 0 ||
      !(s->follower_started = true) ||
      pthread_create(&s->commander, NULL, commander_main, s) != 0 ||
      !(s->commander_started = true) ||
      pthread_create(&s->settler, NULL, settings_main, s) != 0) {
    rc = ctkn__err(err, CTKN_ENOMEM, "server: threads");
    goto out;
  }
  s->settler_started = true;

  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  if (cert != NULL)
    flags |= MHD_USE_TLS;
  struct MHD_OptionItem tls[] = {
      {cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert},
      {cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, key},
      {MHD_OPTION_END, 0, NULL}};
  s->mhd = MHD_start_daemon(
      flags, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
      (unsigned)cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)cfg->client_timeout_s, MHD_OPTION_CONNECTION_LIMIT, 10000u,
      MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_EXTERNAL_LOGGER,
      mhd_log, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_ARRAY, tls,
      MHD_OPTION_END);
  if (s->mhd == NULL) {
    rc = ctkn__err_field(err, CTKN_EIO, "listen",
                         "cannot listen on %.100s (in use, or not this "
                         "host's address)",
                         cfg->listen);
    goto out;
  }
  {
    char safe[300];
    log_safe(safe, sizeof(safe), s->next_base);
    log_line("info", "listening",
             "\"listen\":\"%s\",\"public_url\":\"%s\",\"tls\":%s,\"topic\":"
             "\"%s\",\"secret_key\":%s",
             cfg->listen, safe, cert ? "true" : "false", cfg->log->topic,
             s->have_key ? "true" : "false");
  }

  while (!*stop && !atomic_load(&s->fatal)) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    expire_waiters(s, false);
    if (*reload) {
      struct ctkn_err kerr = {0};
      *reload = 0;
      if (load_keys(s, &kerr) != CTKN_OK) {
        char safe[300];
        log_safe(safe, sizeof(safe), kerr.msg);
        log_line("error", "api keys not reloaded; the old ones stay",
                 "\"detail\":\"%s\"", safe);
      }
    }
  }
  log_line("info", "stopping", "\"inflight\":%d", atomic_load(&s->inflight));

  /* Stop accepting; let what is in flight finish (writes run on, reads
   * waiting for a position get their answer or their timeout). */
  MHD_socket lsock = MHD_quiesce_daemon(s->mhd);
  if (lsock != MHD_INVALID_SOCKET)
    close(lsock);
  for (int64_t until = ctkn__now_ms() + DRAIN_MS;
       atomic_load(&s->inflight) > 0 && ctkn__now_ms() < until;) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    expire_waiters(s, atomic_load(&s->fatal) != 0);
  }
  rc = CTKN_OK;

out:
  /* Whatever still arrives on open connections is answered at once. */
  pthread_mutex_lock(&s->pos_lock);
  pthread_mutex_lock(&s->cmdq.lock);
  pthread_mutex_lock(&s->setq.lock);
  atomic_store(&s->closing, true);
  pthread_mutex_unlock(&s->setq.lock);
  pthread_mutex_unlock(&s->cmdq.lock);
  pthread_mutex_unlock(&s->pos_lock);
  if (s->commander_started)
    wq_stop(&s->cmdq, s->commander);
  if (s->settler_started)
    wq_stop(&s->setq, s->settler);
  expire_waiters(s, true);
  if (s->follower_started) {
    s->follower_stop = 1;
    pthread_join(s->follower, NULL);
  }
  if (s->mhd != NULL)
    MHD_stop_daemon(s->mhd);
  if (rc == CTKN_OK && atomic_load(&s->fatal)) {
    rc = s->fatal_err.code ? s->fatal_err.code : CTKN_EINTERNAL;
    if (err != NULL)
      *err = s->fatal_err;
  }
  if (rc == CTKN_OK)
    log_line("info", "stopped", "%s", "");
  free(cert);
  free(key);
  server_free(s);
  return rc;
}
