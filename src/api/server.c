/*
 * server.c - `ctkn serve`: Paddle's HTTP API over one replica's
 * projection. Configuration, run and stop; the follower, and the reads
 * that wait for it.
 *
 * Threads:
 *   - libmicrohttpd's workers (http.c) parse requests, authenticate, and
 *     answer reads straight from LMDB (one read txn each);
 *   - the follower runs ctkn_projector_follow() and, through the
 *     projector's hooks, publishes how far it got and the log's lag;
 *   - the command thread (tokens.c) drains the write queue in batches
 *     through ctkn_ledger_execute_batch();
 *   - the settings thread (dest_routes.c) runs notification-setting
 *     writes, one at a time, through ctkn_settings_execute();
 *   - the caller's thread watches the stop and reload flags and the
 *     deadlines of suspended reads.
 * A request that waits is suspended and resumed by whichever thread has
 * its answer; the worker that suspended it is free. Both the command
 * thread (through its ledger) and the follower write the projection;
 * the store serialises their write transactions.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "api/api_int.h"

/* ---- the follower ----------------------------------------------------- */

void ctkn__api_fatal(struct server *s, const struct ctkn_err *err)
{
  int expected = 0;

  if (atomic_compare_exchange_strong(&s->fatal, &expected, 1))
    s->fatal_err = *err;
  pthread_cond_broadcast(&s->applied_cv); /* a ledger's wait ends */
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

/*
 * Answer r invalid_field when a partition it waits for is not one of the
 * topic's n (as the follower last assigned them): that position will
 * never be reached, so a wait would only end in a 503. true when r was
 * answered. n == 0: not known yet, nothing said.
 */
static bool refuse_unknown_partition(struct req *r, int32_t n)
{
  char msg[160];

  for (int i = 0; i < r->nwant && n > 0; i++) {
    if (r->want[i][0] < n)
      continue;
    snprintf(msg, sizeof(msg),
             "partition %" PRId64 " does not exist: the topic has %" PRId32
             " (0..%" PRId32 ")",
             r->want[i][0], n, n - 1);
    ctkn__api_answer_field(r, "X-Ctkn-Min-Position", msg);
    return true;
  }
  return false;
}

void ctkn__api_advanced(void *arg, const int64_t *next, const bool *paused,
                        int32_t n)
{
  struct server *s = arg;
  struct req **pp, *r;

  pthread_mutex_lock(&s->pos_lock);
  if (n > s->napplied) {
    int64_t *a = realloc(s->applied, (size_t)n * sizeof(*a));
    if (a != NULL)
      s->applied = a;
    bool *b = realloc(s->paused_here, (size_t)n * sizeof(*b));
    if (b != NULL)
      s->paused_here = b;
    if (a != NULL && b != NULL)
      s->napplied = n;
  }
  for (int32_t i = 0; i < n && i < s->napplied; i++) {
    s->applied[i] = next[i];
    s->paused_here[i] = paused != NULL && paused[i];
  }
  pthread_cond_broadcast(&s->applied_cv);
  for (pp = &s->waiters; (r = *pp) != NULL;) {
    /* A wait that began before the partition count was known. */
    if (positions_met(r, s->applied, s->napplied) ||
        refuse_unknown_partition(r, s->napplied)) {
      *pp = r->next;
      ctkn__api_wake(r);
    } else {
      pp = &r->next;
    }
  }
  pthread_mutex_unlock(&s->pos_lock);
}

void ctkn__api_status(void *arg, const struct ctkn_partition_status *st,
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

/* Under pos_lock: whether the follower has applied every partition below
 * n up to targets (a partition it has paused itself counts: not a pause
 * stored by an earlier build, which this one may read past); *sum: the
 * applied offsets added up, which move whenever it makes progress. */
static bool applied_to(const struct server *s, const int64_t *targets,
                       int32_t n, int64_t *sum)
{
  bool met = true;

  *sum = 0;
  for (int32_t p = 0; p < n; p++) {
    int64_t at = p < s->napplied ? s->applied[p] : 0;
    bool paused = p < s->napplied && s->paused_here[p];
    *sum += at;
    if (targets[p] > 0 && at < targets[p] && !paused)
      met = false;
  }
  return met;
}

int ctkn__api_applied_wait(void *arg, const int64_t *targets, int32_t n,
                           struct ctkn_err *err)
{
  struct server *s = arg;
  int timeout = s->cfg->log->timeout_ms > 0 ? s->cfg->log->timeout_ms : 10000;
  int64_t sum, last = -1, deadline = 0;
  int rc = CTKN_OK;

  pthread_mutex_lock(&s->pos_lock);
  while (!applied_to(s, targets, n, &sum)) {
    int64_t now = ctkn__now_ms();
    if (atomic_load(&s->fatal)) {
      rc = ctkn__err(err, CTKN_EKAFKA,
                     "this server's projection stopped (its log says why)");
      break;
    }
    if (sum != last) { /* progress: the timeout starts again */
      last = sum;
      deadline = now + timeout;
    } else if (now >= deadline) {
      rc = ctkn__err(err, CTKN_ETIMEOUT,
                     "the projection applied nothing for %d ms (the "
                     "follower is stalled or far behind)",
                     timeout);
      break;
    }
    /* At most 100 ms between looks: a fatal stop does not signal. */
    int64_t until = deadline < now + 100 ? deadline : now + 100;
    struct timespec ts = ctkn__monotonic_in(until - now);
    pthread_cond_timedwait(&s->applied_cv, &s->pos_lock, &ts);
  }
  pthread_mutex_unlock(&s->pos_lock);
  return rc;
}

void ctkn__api_expire_waiters(struct server *s, bool all)
{
  int64_t now = ctkn__now_ms();
  struct req **pp, *r;

  pthread_mutex_lock(&s->pos_lock);
  for (pp = &s->waiters; (r = *pp) != NULL;) {
    if (all || now >= r->deadline_ms) {
      *pp = r->next;
      r->retry_after = 1;
      ctkn__api_answer_code(
          r, CTKN_ETIMEOUT,
          "this replica has not reached X-Ctkn-Min-Position within "
          "%d ms; retry, or read from a replica that has",
          s->cfg->position_wait_ms);
      ctkn__api_wake(r);
    } else {
      pp = &r->next;
    }
  }
  pthread_mutex_unlock(&s->pos_lock);
}

static void *follower_main(void *arg)
{
  struct server *s = arg;
  struct ctkn_projector_hooks hooks = {.advanced = ctkn__api_advanced,
                                       .status = ctkn__api_status,
                                       .arg = s,
                                       .status_ms = s->cfg->status_ms};
  struct ctkn_err err = {0};
  ctkn_projector *p = NULL;
  int rc;

  rc = ctkn_projector_open(&p, s->st, s->cfg->log, s->cfg->env, &err);
  if (rc == CTKN_OK && s->cfg->trust_root != NULL)
    rc = ctkn_projector_set_trust(p, s->cfg->trust_root, &err);
  if (rc == CTKN_OK) {
    ctkn_projector_set_hooks(p, &hooks);
    rc = ctkn_projector_follow(p, &s->follower_stop, &err);
  }
  ctkn_projector_close(p);
  if (rc != CTKN_OK) {
    struct ctkn__buf f = CTKN__BUF_INIT;
    if (ctkn__buf_json_member(&f, "code", ctkn_error_code(rc)) == CTKN_OK &&
        ctkn__buf_json_member(&f, "detail", err.msg) == CTKN_OK)
      ctkn__diag_fields(CTKN_DIAG_ERROR, "http", "projection stopped", f.data);
    ctkn__buf_free(&f);
    ctkn__api_fatal(s, &err);
  }
  return NULL;
}

/* ---- reads that wait for a position ----------------------------------- */

/* One "P:O" at *sp into want; *sp moves past it. */
static bool parse_position(const char **sp, int64_t want[2])
{
  const char *s = *sp;
  char *end;
  long long p, o;

  errno = 0;
  p = strtoll(s, &end, 10);
  if (errno || end == s || *end != ':' || p < 0 ||
      p >= CTKN_STORE_MAX_PARTITIONS || *s == '-' || *s == '+')
    return false;
  s = end + 1;
  o = strtoll(s, &end, 10);
  if (errno || end == s || o < 0 || *s == '-' || *s == '+')
    return false;
  want[0] = p;
  want[1] = o;
  *sp = end;
  return true;
}

/* "P:O[,P:O...]" into r->want. */
static bool parse_positions(struct req *r, const char *s)
{
  r->nwant = 0;
  while (*s != '\0') {
    if (r->nwant == CTKN__API_POSITIONS_MAX ||
        !parse_position(&s, r->want[r->nwant]))
      return false;
    r->nwant++;
    if (*s == ',' && s[1] != '\0')
      s++;
    else if (*s != '\0')
      return false;
  }
  return r->nwant > 0;
}

/* The store's own offsets: what any writer in this process committed. */
static bool positions_met_in_store(struct server *s, const struct req *r)
{
  ctkn_store_txn *txn;
  int64_t next;
  bool met = true;

  if (ctkn_store_begin(s->st, false, &txn, NULL) != CTKN_OK)
    return false;
  /* An error counts as not met: the wait goes on or times out. */
  for (int i = 0; i < r->nwant && met; i++)
    met = ctkn_store_offset(txn, (int32_t)r->want[i][0], &next, NULL) ==
              CTKN_OK &&
          next > r->want[i][1];
  ctkn_store_abort(txn);
  return met;
}

bool ctkn__api_position_wait(struct server *s, struct req *r)
{
  const char *min = r->hdr.min_position;

  if (min == NULL || r->nwant != 0)
    return false; /* none, or resumed: the wait is over */
  if (!parse_positions(r, min)) {
    ctkn__api_answer_field(r, "X-Ctkn-Min-Position",
                           "must be PARTITION:OFFSET[,PARTITION:OFFSET...], "
                           "as X-Ctkn-Position gives them");
    return true;
  }
  if (positions_met_in_store(s, r))
    return false;
  pthread_mutex_lock(&s->pos_lock);
  if (refuse_unknown_partition(r, s->napplied)) {
    pthread_mutex_unlock(&s->pos_lock);
    return true;
  }
  if (atomic_load(&s->closing)) {
    pthread_mutex_unlock(&s->pos_lock);
    r->retry_after = 1;
    ctkn__api_answer_code(r, CTKN_ETIMEOUT, "the server is shutting down");
    return true;
  }
  if (positions_met(r, s->applied, s->napplied)) {
    pthread_mutex_unlock(&s->pos_lock);
    return false;
  }
  r->deadline_ms = ctkn__now_ms() + s->cfg->position_wait_ms;
  ctkn__api_suspend(r);
  r->next = s->waiters;
  s->waiters = r;
  pthread_mutex_unlock(&s->pos_lock);
  return true;
}

/* ---- configuration ---------------------------------------------------- */

void ctkn_server_config_init(struct ctkn_server_config *cfg)
{
  memset(cfg, 0, sizeof(*cfg));
  cfg->listen = "127.0.0.1:8080";
  cfg->threads = 2;
  cfg->max_lag = 1000;
  cfg->position_wait_ms = 5000;
  cfg->client_timeout_s = 30;
  cfg->status_ms = 1000;
  cfg->key_used_interval_ms = CTKN_AKEY_USED_INTERVAL_US / 1000;
  cfg->key_expiring_lead_ms = CTKN_AKEY_EXPIRING_LEAD_US / 1000;
}

/* "HOST:PORT" or "[V6]:PORT" into host (hostsz bytes) and *port. */
static bool split_listen(const char *listen, char *host, size_t hostsz,
                         const char **port)
{
  const char *colon;

  if (listen[0] == '[') {
    const char *close = strchr(listen, ']');
    if (close == NULL || close[1] != ':' ||
        (size_t)(close - listen - 1) >= hostsz)
      return false;
    memcpy(host, listen + 1, (size_t)(close - listen - 1));
    host[close - listen - 1] = '\0';
    *port = close + 2;
    return true;
  }
  if ((colon = strrchr(listen, ':')) == NULL ||
      (size_t)(colon - listen) >= hostsz)
    return false;
  memcpy(host, listen, (size_t)(colon - listen));
  host[colon - listen] = '\0';
  *port = colon + 1;
  return true;
}

/* "HOST:PORT" or "[V6]:PORT" into an address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss,
                        socklen_t *sslen, struct ctkn_err *err)
{
  char host[256];
  const char *port;
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                           .ai_socktype = SOCK_STREAM},
                  *ai = NULL;

  if (!split_listen(listen, host, sizeof(host), &port) || *port == '\0' ||
      strspn(port, "0123456789") != strlen(port) ||
      getaddrinfo(host, port, &hints, &ai) != 0)
    return ctkn__err_field(err, CTKN_EUSAGE, "listen",
                           "must be ADDRESS:PORT with a numeric address, such "
                           "as 127.0.0.1:8080 or [::1]:8080, not \"%.100s\"",
                           listen);
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  *sslen = ai->ai_addrlen;
  freeaddrinfo(ai);
  return CTKN_OK;
}

/* A TLS certificate or key file's text; NULL with err filled on failure.
 * Caller owns the text: release with free(). */
static char *read_pem(const char *path, const char *what, const char *field,
                      struct ctkn_err *err)
{
  const struct ctkn__file_rules rules = {.what = what,
                                         .field = field,
                                         .max = CTKN_SERVER_MAX_TLS_FILE,
                                         .open_code = CTKN_EIO};
  struct ctkn__buf b = CTKN__BUF_INIT;

  if (ctkn__file_read(path, &rules, &b, err) != CTKN_OK) {
    ctkn__buf_free(&b);
    return NULL;
  }
  if (b.data == NULL && ctkn__buf_reserve(&b, 1) != CTKN_OK) {
    ctkn__err(err, CTKN_ENOMEM, "%.200s", path);
    return NULL;
  }
  return ctkn__buf_detach(&b);
}

/* Bounds and the public URL. */
static int check_limits(const struct ctkn_server_config *c,
                        struct ctkn_err *err)
{
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

/* The configuration's rules, naming the option that breaks one. */
static int check_config(const struct ctkn_server_config *c,
                        struct ctkn_err *err)
{
  if (c->api_keys != NULL && *c->api_keys == '\0')
    return ctkn__err_field(err, CTKN_EUSAGE, "api-keys",
                           "names no file (leave it out: keys on the log "
                           "are enough)");
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
  return check_limits(c, err);
}

/* ---- the server ------------------------------------------------------- */

/* Links are absolute on the public URL, or on the listen address. */
static int make_links(struct server *s, struct ctkn_err *err)
{
  const struct ctkn_server_config *cfg = s->cfg;
  const char *base = cfg->public_url;
  struct ctkn__buf a = CTKN__BUF_INIT, b = CTKN__BUF_INIT, k = CTKN__BUF_INIT;
  char fallback[300];

  if (base == NULL) {
    snprintf(fallback, sizeof(fallback), "%s://%s",
             cfg->tls_cert ? "https" : "http", cfg->listen);
    base = fallback;
  }
  int blen = (int)strlen(base);
  while (blen > 0 && base[blen - 1] == '/')
    blen--;
  if (ctkn__buf_printf(&a, "%.*s/client-tokens", blen, base) != CTKN_OK ||
      ctkn__buf_printf(&b, "%.*s/notification-settings", blen, base) !=
          CTKN_OK ||
      ctkn__buf_printf(&k, "%.*s/api-keys", blen, base) != CTKN_OK) {
    ctkn__buf_free(&a);
    ctkn__buf_free(&b);
    ctkn__buf_free(&k);
    return ctkn__err(err, CTKN_ENOMEM, "server");
  }
  s->next_base = ctkn__buf_detach(&a);
  s->dest_next_base = ctkn__buf_detach(&b);
  s->keys_next_base = ctkn__buf_detach(&k);
  return CTKN_OK;
}

void ctkn__api_server_free(struct server *s)
{
  if (s == NULL)
    return;
  ctkn_apikeys_free(s->keys);
  free(s->buckets);
  ctkn__buf_free(&s->log_buckets);
  free(s->applied);
  free(s->paused_here);
  free(s->status);
  free(s->next_base);
  free(s->dest_next_base);
  free(s->keys_next_base);
  ctkn_wipe(s->key, sizeof(s->key));
  pthread_rwlock_destroy(&s->keys_lock);
  pthread_mutex_destroy(&s->bucket_lock);
  pthread_mutex_destroy(&s->pos_lock);
  pthread_cond_destroy(&s->applied_cv);
  ctkn__queue_destroy(&s->cmdq);
  ctkn__queue_destroy(&s->setq);
  ctkn__queue_destroy(&s->usedq);
  pthread_mutex_destroy(&s->used_lock);
  ctkn__buf_free(&s->used_seen);
  free(s);
}

int ctkn__api_server_new(struct server **out, ctkn_store *st,
                         const struct ctkn_server_config *cfg,
                         struct ctkn_err *err)
{
  struct server *s;
  int rc;

  *out = NULL;
  if ((s = calloc(1, sizeof(*s))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "server");
  s->cfg = cfg;
  s->st = st;
  pthread_rwlock_init(&s->keys_lock, NULL);
  pthread_mutex_init(&s->bucket_lock, NULL);
  s->log_buckets = (struct ctkn__buf)CTKN__BUF_INIT;
  pthread_mutex_init(&s->pos_lock, NULL);
  ctkn__cond_init_monotonic(&s->applied_cv);
  s->gather_us = CTKN__API_GATHER_US;
  if (ctkn__queue_init(&s->cmdq) != CTKN_OK) {
    free(s);
    return ctkn__err(err, CTKN_ENOMEM, "server");
  }
  if (ctkn__queue_init(&s->setq) != CTKN_OK) {
    ctkn__queue_destroy(&s->cmdq);
    free(s);
    return ctkn__err(err, CTKN_ENOMEM, "server");
  }
  pthread_mutex_init(&s->used_lock, NULL);
  s->used_seen = (struct ctkn__buf)CTKN__BUF_INIT;
  s->notice_held = (struct ctkn__buf)CTKN__BUF_INIT;
  if (ctkn__queue_init(&s->usedq) != CTKN_OK) {
    ctkn__queue_destroy(&s->cmdq);
    ctkn__queue_destroy(&s->setq);
    pthread_mutex_destroy(&s->used_lock);
    free(s);
    return ctkn__err(err, CTKN_ENOMEM, "server");
  }
  rc = make_links(s, err);
  /* A key that is named but does not load stops the server: it must not
   * come up unable to create what its operator meant it to. */
  if (rc == CTKN_OK && cfg->secret_key_file != NULL &&
      (rc = ctkn_key_load(cfg->secret_key_file, s->key, err)) == CTKN_OK)
    s->have_key = true;
  if (rc == CTKN_OK)
    rc = ctkn__api_load_keys(s, err);
  if (rc != CTKN_OK) {
    ctkn__api_server_free(s);
    return rc;
  }
  *out = s;
  return CTKN_OK;
}

/* ---- run and stop ----------------------------------------------------- */

/* The PEM files, when TLS is asked for. */
static int load_tls(const struct ctkn_server_config *cfg, char **cert,
                    char **key, struct ctkn_err *err)
{
  if (cfg->tls_cert == NULL)
    return CTKN_OK;
  if (!ctkn__api_http_tls())
    return ctkn__err(err, CTKN_EUSAGE,
                     "this libmicrohttpd was built without TLS");
  if ((*cert = read_pem(cfg->tls_cert, "TLS certificate", "tls-cert", err)) ==
          NULL ||
      (*key = read_pem(cfg->tls_key, "TLS key", "tls-key", err)) == NULL)
    return err ? err->code : CTKN_EIO;
  return CTKN_OK;
}

/* Writers and the follower first: a request may need them at once. */
static int start_threads(struct server *s, struct ctkn_err *err)
{
  int rc;

  if (pthread_create(&s->follower, NULL, follower_main, s) != 0)
    return ctkn__err(err, CTKN_ENOMEM, "server: threads");
  s->follower_started = true;
  if ((rc = ctkn__api_commands_start(s, err)) != CTKN_OK ||
      (rc = ctkn__api_used_start(s, err)) != CTKN_OK)
    return rc;
  return ctkn__api_settings_start(s, err);
}

static void log_listening(struct server *s, bool tls)
{
  struct ctkn__buf f = CTKN__BUF_INIT;
  int rc = ctkn__buf_json_member(&f, "listen", s->cfg->listen);

  if (rc == CTKN_OK)
    rc = ctkn__buf_json_member(&f, "public_url", s->next_base);
  if (rc == CTKN_OK)
    rc = ctkn__buf_printf(&f, ",\"tls\":%s", tls ? "true" : "false");
  if (rc == CTKN_OK)
    rc = ctkn__buf_json_member(&f, "topic", s->cfg->log->topic);
  if (rc == CTKN_OK)
    rc = ctkn__buf_printf(&f, ",\"secret_key\":%s",
                          s->have_key ? "true" : "false");
  if (rc == CTKN_OK)
    ctkn__diag_fields(CTKN_DIAG_INFO, "http", "listening", f.data);
  ctkn__buf_free(&f);
}

static void sleep_10ms(void)
{
  struct timespec ts = {0, 10 * 1000 * 1000};

  nanosleep(&ts, NULL);
}

/* Until *stop or a fatal error: expire waits, reload keys on *reload. */
static void watch(struct server *s, volatile sig_atomic_t *stop,
                  volatile sig_atomic_t *reload)
{
  for (unsigned tick = 0; !*stop && !atomic_load(&s->fatal); tick++) {
    sleep_10ms();
    ctkn__api_expire_waiters(s, false);
    if (tick % 20 == 0) /* 200 ms: the header deadline's resolution */
      ctkn__api_http_sweep(s, ctkn__now_ms());
    if (*reload) {
      struct ctkn_err kerr = {0};
      *reload = 0;
      if (ctkn__api_load_keys(s, &kerr) != CTKN_OK) {
        struct ctkn__buf f = CTKN__BUF_INIT;
        if (ctkn__buf_json_member(&f, "detail", kerr.msg) == CTKN_OK)
          ctkn__diag_fields(CTKN_DIAG_ERROR, "http",
                            "api keys not reloaded; the old ones stay", f.data);
        ctkn__buf_free(&f);
      }
    }
  }
  char fields[32];
  snprintf(fields, sizeof(fields), "\"inflight\":%d",
           atomic_load(&s->inflight));
  ctkn__diag_fields(CTKN_DIAG_INFO, "http", "stopping", fields);
}

/* Stop accepting; let what is in flight finish (writes run on, reads
 * waiting for a position get their answer or their timeout). */
static void drain(struct server *s)
{
  ctkn__api_http_quiesce(s);
  for (int64_t until = ctkn__now_ms() + CTKN__API_DRAIN_MS;
       atomic_load(&s->inflight) > 0 && ctkn__now_ms() < until;) {
    sleep_10ms();
    ctkn__api_expire_waiters(s, atomic_load(&s->fatal) != 0);
  }
}

/* Whatever still arrives on open connections is answered at once; the
 * threads finish what they hold and end. */
static void shut_down(struct server *s)
{
  pthread_mutex_lock(&s->pos_lock);
  atomic_store(&s->closing, true);
  pthread_mutex_unlock(&s->pos_lock);
  ctkn__api_commands_stop(s);
  ctkn__api_settings_stop(s);
  ctkn__api_used_stop(s);
  ctkn__api_expire_waiters(s, true);
  if (s->follower_started) {
    s->follower_stop = 1;
    pthread_join(s->follower, NULL);
  }
  ctkn__api_http_stop(s);
}

int ctkn_server_run(ctkn_store *st, const struct ctkn_server_config *cfg,
                    volatile sig_atomic_t *stop, volatile sig_atomic_t *reload,
                    struct ctkn_err *err)
{
  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  char *cert = NULL, *key = NULL;
  struct server *s;
  int rc;

  if ((rc = check_config(cfg, err)) != CTKN_OK ||
      (rc = parse_listen(cfg->listen, &ss, &sslen, err)) != CTKN_OK ||
      (rc = ctkn__api_server_new(&s, st, cfg, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn__api_http_load(err)) == CTKN_OK)
    rc = load_tls(cfg, &cert, &key, err);
  if (rc == CTKN_OK)
    rc = start_threads(s, err);
  if (rc == CTKN_OK)
    rc = ctkn__api_http_start(s, &ss, cert, key, err);
  if (rc == CTKN_OK) {
    log_listening(s, cert != NULL);
    watch(s, stop, reload);
    drain(s);
  }
  shut_down(s);
  if (rc == CTKN_OK && atomic_load(&s->fatal)) {
    rc = s->fatal_err.code ? s->fatal_err.code : CTKN_EINTERNAL;
    if (err != NULL)
      *err = s->fatal_err;
  }
  if (rc == CTKN_OK)
    ctkn__diag_fields(CTKN_DIAG_INFO, "http", "stopped", NULL);
  free(cert);
  free(key);
  ctkn__api_server_free(s);
  return rc;
}
