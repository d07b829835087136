/*
 * api_int.h - the HTTP API's private header: what the files of src/api/
 * share, and what tests/unit/test_api.c drives.
 *
 * The module, split by what changes together:
 *   http.c        libmicrohttpd: the daemon, the access handler, bodies,
 *                 suspend and resume, answers and their headers. The only
 *                 file that includes <microhttpd.h>;
 *   route.c       a request's life: routing, authentication's place in
 *                 it, the answer helpers, query parameters, completion
 *                 (metrics and the access line);
 *   tokens.c      /client-tokens, and the command thread that batches
 *                 their writes into ctkn_ledger_execute_batch();
 *   dest_routes.c /notification-settings, and the settings thread;
 *   auth.c        API keys, permissions, the rate limit, key reload;
 *   health.c      /healthz, /metrics and the request metrics;
 *   ui.c          /ui/: the dashboard's embedded files (src/ui/), with
 *                 the security headers a page that holds a key needs;
 *   server.c      configuration, run and stop, the follower, and the
 *                 reads that wait for it (X-Ctkn-Min-Position).
 *
 * A request (struct req) does not depend on libmicrohttpd. http.c fills
 * in what arrived (method, path, query parameters, the headers the API
 * reads, the body), suspends and resumes through struct
 * ctkn__api_transport, and sends what the handlers leave in the answer
 * fields. So a test builds a struct req with ctkn__api_req_new(), and
 * drives ctkn__api_begin(), ctkn__api_body() and ctkn__api_dispatch()
 * without a socket.
 *
 * Thread rules are those of server.c's opening comment: handlers run on
 * libmicrohttpd's workers; the command, settings and follower threads
 * answer suspended requests and resume them; s->pos_lock guards what the
 * follower publishes and the waiters; the queues have their own locks.
 */
#ifndef CTKN_API_INT_H
#define CTKN_API_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ctkn/apikey.h"
#include "ctkn/crypto.h"
#include "ctkn/keylog.h"
#include "ctkn/ledger.h"
#include "ctkn/projector.h"
#include "ctkn/server.h"
#include "ctkn/settings.h"
#include "internal.h"

#define CTKN__API_BATCH_MAX     256   /* commands per ledger batch */
#define CTKN__API_GATHER_MIN    16    /* writes a batch waits for under load */
#define CTKN__API_GATHER_US     500   /* ... at most this long (gather_us) */
#define CTKN__API_DRAIN_MS      15000 /* bound on finishing requests at stop */
#define CTKN__API_POSITIONS_MAX 16    /* entries in one X-Ctkn-Min-Position */
#define CTKN__API_ID_BUF        48 /* a path's ID segment (longer never match) */
#define CTKN__API_DEST_PER_PAGE                                                \
  200                             /* GET /notification-settings: default, max */
#define CTKN__API_QUERY_INLINE 16 /* query parameters kept without malloc */
#define CTKN__API_PATH_LOG     96 /* the path in the access line, truncated */

/* What a path names; R_OTHER for nothing (404). */
enum route {
  R_CREATE,      /* POST /client-tokens */
  R_UPDATE,      /* PATCH /client-tokens/{id} */
  R_GET,         /* GET /client-tokens/{id} */
  R_LIST,        /* GET /client-tokens */
  R_VERIFY,      /* GET /client-tokens/verify */
  R_HEALTHZ,     /* GET /healthz */
  R_METRICS,     /* GET /metrics */
  R_DEST_CREATE, /* POST /notification-settings */
  R_DEST_LIST,   /* GET /notification-settings */
  R_DEST_GET,    /* GET /notification-settings/{id} */
  R_DEST_UPDATE, /* PATCH /notification-settings/{id} */
  R_DEST_DELETE, /* DELETE /notification-settings/{id} */
  R_HISTORY,     /* GET /client-tokens/{id}/history */
  R_UI,          /* GET /ui, /ui/, /ui/{file}: the dashboard */
  R_KEY_LIST,    /* GET /api-keys */
  R_KEY_GET,     /* GET /api-keys/{id} */
  R_KEY_CREATE,  /* POST /api-keys */
  R_KEY_UPDATE,  /* PATCH /api-keys/{id} */
  R_KEY_ROTATE,  /* POST /api-keys/{id}/rotations */
  R_EVENTS,      /* GET /events */
  R_EVENT_TYPES, /* GET /event-types */
  R_NTF_LIST,    /* GET /notifications */
  R_NTF_GET,     /* GET /notifications/{id} */
  R_NTF_LOGS,    /* GET /notifications/{id}/logs */
  R_NTF_REPLAY,  /* POST /notifications/{id}/replay */
  R_OTHER,
  R_COUNT /* also: a known path, a method it does not take (405) */
};

/* ---- metrics (health.c) ---------------------------------------------- */

#define CTKN__API_NSTATUS 13 /* the statuses counted, and one for any other */
#define CTKN__API_NBUCKET 16 /* the latency buckets, and +Inf */

struct metrics {
  atomic_uint_fast64_t requests[R_COUNT][CTKN__API_NSTATUS];
  atomic_uint_fast64_t hist[R_COUNT][CTKN__API_NBUCKET];
  atomic_uint_fast64_t sum_us[R_COUNT];
};

/* ---- the server ------------------------------------------------------- */

struct req;

/* How handlers park a request and bring it back: http.c's suspends and
 * resumes a libmicrohttpd connection; a test's may do nothing, and read
 * r->ready. resume may run on any thread, also before suspend returned
 * on the worker (libmicrohttpd allows it). */
struct ctkn__api_transport {
  void (*suspend)(struct req *r);
  void (*resume)(struct req *r);
};

/* One key's token bucket; rebuilt with the key set on reload. */
struct bucket {
  double tokens;
  int64_t at_us;
};

struct server {
  const struct ctkn_server_config *cfg; /* kept: outlives the server */
  ctkn_store *st;                       /* kept: outlives the server */
  const struct ctkn__api_transport *io;
  void *http;           /* http.c's state, NULL until it listens */
  char *next_base;      /* public_url + "/client-tokens" */
  char *dest_next_base; /* public_url + "/notification-settings" */
  char *keys_next_base; /* public_url + "/api-keys" */
  struct metrics m;

  /* The deployment key, for creating notification settings. */
  bool have_key;
  uint8_t key[CTKN_KEY_LEN];

  /* API keys (auth.c): swapped whole on reload, buckets with them. */
  pthread_rwlock_t keys_lock;
  ctkn_apikeys *keys;
  pthread_mutex_t bucket_lock;
  struct bucket *buckets;
  struct ctkn__buf log_buckets; /* keys on the log: ID, bucket (auth.c) */

  /* The follower (server.c): what it applied, and the log's last status.
   * pos_lock guards these and waiters. */
  pthread_t follower;
  bool follower_started;
  volatile sig_atomic_t follower_stop;
  pthread_mutex_t pos_lock;
  pthread_cond_t applied_cv; /* applied moved, or fatal (monotonic clock) */
  int64_t *applied;          /* next offset per partition (conservative) */
  bool *paused_here; /* paused by the follower itself (not a stored flag) */
  int32_t napplied;
  struct ctkn_partition_status *status;
  int32_t nstatus;
  int64_t status_at_ms; /* when status was measured; 0: never */
  struct ctkn_projector_stats stats;
  struct req *waiters; /* reads waiting for a position */

  /* The command thread (tokens.c) and its queue of struct req. */
  pthread_t commander;
  bool commander_started;
  struct ctkn__queue cmdq;
  int64_t gather_us; /* CTKN__API_GATHER_US; a test may lengthen it */

  /* The settings thread (dest_routes.c) and its queue of struct req. */
  pthread_t settler;
  bool settler_started;
  struct ctkn__queue setq;

  /* last_used_at (apikeys.c): the keys this replica reported, when, and
   * the thread that appends their "used" records. */
  pthread_mutex_t used_lock;
  struct ctkn__buf used_seen;
  struct ctkn__queue usedq;
  pthread_t used_thread;
  bool used_started;
  atomic_bool used_stop;        /* the usage thread ends */
  struct ctkn__buf notice_held; /* its held-off notices (apikeys.c) */

  /* Set by a thread that cannot go on; the server then stops. */
  atomic_int fatal;
  struct ctkn_err fatal_err;
  atomic_int inflight; /* requests between start and completion */
  atomic_bool closing; /* no new waits: the threads that end them stop */
};

/* A query parameter as it arrived (decoded). value is NULL for "?key"
 * without "=". */
struct ctkn__api_param {
  const char *key;
  const char *value;
};

/* The request headers the API reads, the first of each name; NULL when
 * absent. */
struct ctkn__api_headers {
  const char *authorization;
  const char *idempotency_key;
  const char *min_position; /* X-Ctkn-Min-Position */
  const char *skip_count;
  const char *content_length;
  const char *transfer_encoding;
};

/* One request's state, from its first header to its completion. */
struct req {
  struct server *srv;
  void *conn; /* the transport's connection; NULL in tests */
  char rid[37];
  int64_t t0_us;
  enum route route;
  char id[CTKN__API_ID_BUF]; /* the path's ID segment, "" when none */
  char path[CTKN__API_PATH_LOG];
  char key_name[CTKN_APIKEY_NAME_MAX + 1];
  char key_id[CTKN_AKEY_ID_BUF]; /* a key on the log: its ID; else "" */
  unsigned perms; /* the key's permissions (enum ctkn_perm), once known */

  /* What arrived. The strings are borrowed from the transport, valid
   * until the request completes. */
  const char *method;
  const char *url;               /* the path, without the query string */
  struct ctkn__api_param *query; /* qinline, or qmore's array past it */
  size_t nquery;
  struct ctkn__api_param qinline[CTKN__API_QUERY_INLINE];
  struct ctkn__buf qmore;
  struct ctkn__api_headers hdr;
  struct ctkn__buf body;
  bool too_large;
  /* What begin() refuses before routing (ctkn__api_req_head() and the
   * lengths given with parameters and headers). */
  size_t target_len;         /* the request target as sent */
  size_t head_bytes;         /* request line and headers */
  unsigned n_content_length; /* Content-Length headers */
  unsigned n_transfer_enc;   /* Transfer-Encoding headers */
  char nul_in[64];           /* what first held a NUL, "" for nothing */
  const char *twice;         /* a header ctkn reads that came twice */
  bool close;                /* answer with Connection: close */

  /* Suspended work: a queued command or a position wait. */
  bool suspended;
  bool ready;                     /* resumed: the answer below is final */
  int64_t queued_us;              /* when it was queued (mono_us) */
  struct ctkn_command *cmd;       /* writes only: 3 KiB not to clear per read */
  struct ctkn_dest_command *dcmd; /* notification-setting writes only */
  struct ctkn_akey_command *kcmd; /* API-key writes only */
  int64_t want[CTKN__API_POSITIONS_MAX][2]; /* partition, offset */
  int nwant;
  int64_t deadline_ms;
  struct req *next;         /* in s->waiters */
  struct ctkn__qnode qnode; /* in s->cmdq or s->setq */

  /* The answer. */
  int status;
  char *resp;        /* malloc'd body */
  const char *ctype; /* Content-Type; NULL: application/json */
  char position[48]; /* X-Ctkn-Position, "" for none */
  const char *allow; /* Allow, for a 405 */
  /* A static body instead of resp (not freed; sent as it is), and more
   * headers: name, value, ..., NULL (static too). */
  const unsigned char *body_static;
  size_t body_static_len;
  const char *const *headers;
  int retry_after; /* Retry-After in seconds, 0 for none */
};

/* The Retry-After of a failed command's 503 answer: 1 s, but none for
 * Kafka's refusal of the principal (CTKN_EKAFKADENIED), which no retry
 * cures until an operator grants the ACL; 0 for any other status. */
static inline int ctkn__api_retry_after(int code)
{
  return ctkn_error_http_status(code) == 503 && code != CTKN_EKAFKADENIED;
}

static inline int64_t ctkn__api_mono_us(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- server.c: the server, the follower, position waits -------------- */

/*
 * A server over st with cfg, not yet serving: links, the deployment key,
 * the API keys, locks and queues; no thread, no socket. Keeps st and cfg,
 * which must outlive it; io is NULL until http.c (or a test) sets it. On
 * success *out is a new server: caller owns it, release with
 * ctkn__api_server_free() once no thread uses it. Errors: ctkn_key_load()'s,
 * ctkn_apikeys_load()'s, CTKN_ENOMEM.
 */
int ctkn__api_server_new(struct server **out, ctkn_store *st,
                         const struct ctkn_server_config *cfg,
                         struct ctkn_err *err);
/* NULL is a no-op. */
void ctkn__api_server_free(struct server *s);

/* Record the failure that stops the server (the first one wins). */
void ctkn__api_fatal(struct server *s, const struct ctkn_err *err);
/* The command thread's ledger waits here for the follower
 * (ctkn_ledger_follow_with(), a ctkn_ledger_wait_fn; arg: the server). */
int ctkn__api_applied_wait(void *arg, const int64_t *targets, int32_t n,
                           struct ctkn_err *err);

/* The projector's hooks (projector.h): the follower publishes how far it
 * got, which resumes the reads waiting for it, and the log's status. */
void ctkn__api_advanced(void *arg, const int64_t *next, const bool *paused,
                        int32_t n);
void ctkn__api_status(void *arg, const struct ctkn_partition_status *st,
                      int32_t n, const struct ctkn_projector_stats *stats);

/* Answer with a timeout the position waits past their deadline (all:
 * every one) and resume them. */
void ctkn__api_expire_waiters(struct server *s, bool all);

/*
 * A read with X-Ctkn-Min-Position: true when r was answered (a bad
 * header, the server closing) or suspended until the follower passes the
 * positions or the wait times out; false when the read may run now.
 */
bool ctkn__api_position_wait(struct server *s, struct req *r);

/* ---- route.c: a request's life ---------------------------------------- */

/*
 * A new request for method and url (both borrowed until it completes) on
 * the transport's connection conn, counted in flight. Caller owns it:
 * release with ctkn__api_complete(). NULL when out of memory.
 */
struct req *ctkn__api_req_new(struct server *s, void *conn, const char *method,
                              const char *url);
/* Note one query parameter, in arrival order (key and value borrowed as
 * above; value may be NULL). klen and vlen are their lengths as decoded:
 * longer than strlen() when a NUL (%00) is inside, which begin() refuses
 * naming the parameter. false when out of memory. */
bool ctkn__api_req_param(struct req *r, const char *key, size_t klen,
                         const char *value, size_t vlen);
/* Note one header (name in any case), len being its value's length as it
 * arrived: longer than strlen(value) when a NUL is inside, which begin()
 * refuses naming the header. Those the API does not read are ignored but
 * for that and the framing headers' count. */
void ctkn__api_req_header(struct req *r, const char *name, const char *value,
                          size_t len);
/* Note what the transport measured of the request's head: the request
 * target's length as sent (raw_len), whether its path held a NUL (raw or
 * %00), the query parameter a raw NUL cut (NULL: none), and the head's
 * size in bytes (request line and headers). begin() answers 414, 431 or
 * 400 from these. */
void ctkn__api_req_head(struct req *r, size_t raw_len, bool path_nul,
                        const char *query_nul, size_t head_bytes);

/* First step, with every header in: route, authenticate, size the body.
 * Leaves the answer set when the request is refused. */
void ctkn__api_begin(struct server *s, struct req *r);
/* n more bytes of the body (borrowed for the call). false when out of
 * memory; otherwise a body that is too large or not wanted is noted. */
bool ctkn__api_body(struct req *r, const char *data, size_t n);
/* The body is in, or r was resumed: answer r, or suspend it until its
 * answer is known. Does nothing once r is answered. */
void ctkn__api_dispatch(struct server *s, struct req *r);
/* Whether r has its final answer: a body, or 204's none. */
bool ctkn__api_answered(const struct req *r);
/* Count r in the metrics, write its access line and free it. aborted:
 * NULL, or why the connection ended early ("timeout", "connection"). */
void ctkn__api_complete(struct server *s, struct req *r, const char *aborted);

/* Park r (before handing it to another thread), and bring it back with
 * its answer or to run now. */
void ctkn__api_suspend(struct req *r);
void ctkn__api_wake(struct req *r);
/* Suspend r and queue it for the thread that drains q; once the server
 * is closing, answer it at once (503, Retry-After: 1). */
void ctkn__api_enqueue(struct server *s, struct ctkn__queue *q, struct req *r);

/* When a write fails after waiting on the log (not taken, or not
 * applied, within the timeout), the writes queued behind it have waited
 * that long once: they are refused, nothing appended, rather than sent to
 * wait it again. An outage says since when and why; each writing thread
 * keeps its own. */
struct ctkn__api_outage {
  int64_t failed_us; /* mono_us of the last failure; INT64_MIN: none */
  struct ctkn_err why;
};
void ctkn__api_outage_init(struct ctkn__api_outage *o);
/* Whether a write that failed with rc may have waited on the log:
 * CTKN_EKAFKA, CTKN_ETIMEOUT, or CTKN_EAPPENDED (taken, not applied in
 * time: the writes behind it would wait as long). */
bool ctkn__api_log_wait(int rc);
/* Note that what (a phrase: "the heartbeat"), started at started_us
 * (mono_us), failed with rc for cause, when rc is a wait on the log
 * (ctkn__api_log_wait()) that took at least half of timeout_ms: a failure
 * that came at once (a refusal) makes nobody wait. True when noted. */
bool ctkn__api_outage_note(struct ctkn__api_outage *o, const char *what,
                           int64_t started_us, int timeout_ms, int rc,
                           const struct ctkn_err *cause);
/* Whether r was queued before o's failure: then it is answered (503,
 * Retry-After: 1) but not woken, and must not run. */
bool ctkn__api_outage_refuses(const struct ctkn__api_outage *o, struct req *r);

/* Answers: an error, a code with a formatted message, an invalid field,
 * and a query's outcome (takes ownership of json). */
void ctkn__api_answer_err(struct req *r, const struct ctkn_err *err);
void ctkn__api_answer_code(struct req *r, int code, const char *fmt, ...)
    CTKN__PRINTF(3, 4);
void ctkn__api_answer_field(struct req *r, const char *field, const char *msg);
void ctkn__api_answer_query(struct req *r, int rc, char *json,
                            const struct ctkn_err *err);

/* Refuse unknown and repeated query parameters (list may repeat; NULL:
 * none), naming the first in a 400. allowed ends with NULL. */
bool ctkn__api_query_ok(struct req *r, const char *const *allowed,
                        const char *list);
/* The value of the first query parameter called name, or NULL. */
const char *ctkn__api_arg(const struct req *r, const char *name);
/* public_url + suffix ("/events"): the token list's next base with its
 * last segment swapped, the base of a list's next links. Caller owns it,
 * release with free(); NULL when out of memory. */
char *ctkn__api_base_with(const struct server *s, const char *suffix);

/* ---- auth.c ----------------------------------------------------------- */

/* The permission a route needs; 0 for none (/healthz, /metrics). */
unsigned ctkn__api_route_perm(enum route rt);
/*
 * Check the Authorization header against the keys and the rate limit.
 * CTKN_OK with r->key_name set, or the failure to answer:
 * CTKN_EAUTHMISSING, CTKN_EAUTHMALFORMED, CTKN_EBADKEY, CTKN_EFORBIDDEN
 * (403) and CTKN_ERATELIMIT (429, r->retry_after set).
 */
int ctkn__api_authenticate(struct server *s, struct req *r, unsigned need,
                           struct ctkn_err *err);
/* Read the key file again and swap it in; on failure the old keys stay.
 * Errors: ctkn_apikeys_load()'s, CTKN_ENOMEM. */
int ctkn__api_load_keys(struct server *s, struct ctkn_err *err);

/* ---- health.c --------------------------------------------------------- */

const char *ctkn__api_route_name(enum route rt);
void ctkn__api_metrics_add(struct metrics *m, enum route rt, int status,
                           int64_t us);
void ctkn__api_healthz(struct server *s, struct req *r);
/* Which partitions are paused or have a newest writer checkpoint older
 * than --max-staleness, into g (state: its storage): token answers about
 * them fail closed (query.h). Returns whether any is. */
struct ctkn_query_guard;
/* Whether any partition is paused or stale, and why (into why[n]): answers
 * that span every partition (/events) fail closed then. */
bool ctkn__api_untrusted(struct server *s, char *why, size_t n);
bool ctkn__api_guard(struct server *s, struct ctkn_query_guard *g,
                     uint8_t state[CTKN_STORE_MAX_PARTITIONS]);
/* Whether keys on the log may miss a revocation here: the settings topic
 * is not followed now, or a partition is stale (--max-staleness: the
 * replica may be cut off from the log). err says which (CTKN_ESTALE). */
bool ctkn__api_keys_stale(struct server *s, struct ctkn_err *err);
/* Whether side's projection (CTKN_PROJECTOR_SETTINGS or _NOTIFICATIONS)
 * may be stale, its topic not followed now: err says so (CTKN_ESTALE). */
bool ctkn__api_side_stale(struct server *s, unsigned side,
                          struct ctkn_err *err);
void ctkn__api_metrics(struct server *s, struct req *r);

/* ---- ui.c ------------------------------------------------------------- */

/* The headers of every /ui/ answer: name, value, ..., NULL. */
extern const char *const ctkn__api_ui_headers[];
/* GET /ui/{file}: the embedded file r->id names ("" for index.html),
 * with ctkn__api_ui_headers; 404 for none. */
void ctkn__api_ui(struct server *s, struct req *r);

/* ---- events.c --------------------------------------------------------- */

/* GET /events and GET /event-types, from this replica's projection. */
void ctkn__api_events_read(struct server *s, struct req *r);

/* ---- notifications.c ---------------------------------------------------- */

/* GET /notifications[/{id}[/logs]], from this replica's projection. */
void ctkn__api_ntfs_read(struct server *s, struct req *r);
/* POST /notifications/{id}/replay: a record on the notifications topic. */
void ctkn__api_ntfs_replay(struct server *s, struct req *r);

/* ---- tokens.c --------------------------------------------------------- */

/* A token write's command, once authenticated. false when r was
 * answered (out of memory, a bad ID). */
bool ctkn__api_tokens_begin(struct server *s, struct req *r);
/* GET /client-tokens[/{id}[/history]|/verify], from this replica's
 * projection. */
void ctkn__api_tokens_read(struct server *s, struct req *r);
/* POST and PATCH: parse and check, then queue for the command thread. */
void ctkn__api_tokens_write(struct server *s, struct req *r);

/*
 * The command thread's loop: take up to CTKN__API_BATCH_MAX requests at a
 * time from s->cmdq, run their commands through
 * ctkn_ledger_execute_batch(l, ...), answer and resume each, until the
 * queue is closed and empty. Borrows l and why for the call; l NULL means
 * no ledger could be opened, and every command is answered with *why
 * and Retry-After: 1 (why NULL: a bare CTKN_EKAFKA, 503). This is the seam for
 * tests of the command path: queue writes with ctkn__api_dispatch(), close
 * s->cmdq, and call this with a ledger over a fake log; on return every queued
 * request is answered.
 */
void ctkn__api_commands_serve(struct server *s, ctkn_ledger *l,
                              const struct ctkn_err *why);
/* Start the command thread: it opens its own ledger (a failure is fatal
 * to the server) and runs ctkn__api_commands_serve(). CTKN_ENOMEM. */
int ctkn__api_commands_start(struct server *s, struct ctkn_err *err);
/* Close s->cmdq and join the thread once it has answered what was
 * queued. */
void ctkn__api_commands_stop(struct server *s);

/* ---- dest_routes.c ---------------------------------------------------- */

/* A notification-setting write's command, once authenticated. false when
 * r was answered (a bad ID, out of memory). */
bool ctkn__api_dest_begin(struct server *s, struct req *r);
/* GET /notification-settings[/{id}]. */
void ctkn__api_dest_read(struct server *s, struct req *r);
/* POST, PATCH and DELETE: parse and check, then queue for the settings
 * thread. */
void ctkn__api_dest_write(struct server *s, struct req *r);
/* The settings thread's loop: answer s->setq's requests one at a time
 * through ctkn_settings_execute(), until the queue is closed and empty. */
void ctkn__api_settings_serve(struct server *s);
int ctkn__api_settings_start(struct server *s, struct ctkn_err *err);
void ctkn__api_settings_stop(struct server *s);

/* ---- apikeys.c: API keys on the log ------------------------------------ */

/* A request was authenticated by k: queue its "used" record when this
 * replica has not reported k for the interval. Never blocks on the log. */
void ctkn__api_key_used(struct server *s, const struct ctkn_akey *k);
/* GET /api-keys[/{id}], from this replica's projection. */
void ctkn__api_keys_read(struct server *s, struct req *r);
/* Before the body of a write: the ID checked, the command allocated;
 * false when r was answered. */
bool ctkn__api_keys_begin(struct server *s, struct req *r);
/* POST, PATCH, rotations: parse, then queue for the settings thread. */
void ctkn__api_keys_write(struct server *s, struct req *r);
/* On the settings thread: run r->kcmd (keycmd.h) and answer; returns
 * what it ran into, detailed in err. */
int ctkn__api_keys_answer(struct server *s, struct req *r,
                          struct ctkn_err *err);
int ctkn__api_used_start(struct server *s, struct ctkn_err *err);
/* Appends what is queued, then ends the thread. */
void ctkn__api_used_stop(struct server *s);

/* ---- http.c: libmicrohttpd -------------------------------------------- */

/* Load libmicrohttpd (once), before any other ctkn__api_http_*() call.
 * Errors: CTKN_EINTERNAL (it cannot be loaded). */
int ctkn__api_http_load(struct ctkn_err *err);

/* Whether this libmicrohttpd speaks TLS. */
bool ctkn__api_http_tls(void);
/* Listen on addr (a struct sockaddr_in or sockaddr_in6, borrowed for the
 * call) and serve with cfg->threads workers; cert and key are PEM text
 * (both NULL: no TLS), borrowed until ctkn__api_http_stop(). Sets s->io.
 * CTKN_EIO naming "listen" when the address cannot be bound. */
int ctkn__api_http_start(struct server *s, const void *addr, const char *cert,
                         const char *key, struct ctkn_err *err);
/* Cut off each connection whose request head is past its deadline
 * (CTKN_SERVER_HEADER_TIMEOUT_S; server.h); true when one was. Called by
 * the server's watch thread a few times a second. */
bool ctkn__api_http_sweep(struct server *s, int64_t now_ms);
/* Stop accepting; connections open now are still served. */
void ctkn__api_http_quiesce(struct server *s);
/* Close every connection and stop the workers. No-op before start. */
void ctkn__api_http_stop(struct server *s);

#endif /* CTKN_API_INT_H */
