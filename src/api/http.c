/*
 * http.c - the HTTP API's libmicrohttpd plumbing, and the only file of
 * ctkn that includes <microhttpd.h> (loaded when serve starts, not
 * linked: util/dl.c): the daemon and its options, the
 * access handler (a struct req from a connection, the body as it
 * arrives, suspend and resume), sending an answer with its headers, the
 * completion callback, and libmicrohttpd's own log.
 *
 * The access handler is called several times per request: once with the
 * headers (route.c routes and authenticates), once per piece of body,
 * once more with none (dispatch), and once after each resume. A request
 * refused before its body arrives is answered at once, so that a client
 * sending a large body learns why before sending it all.
 */
#define _GNU_SOURCE /* memmem() */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api/api_int.h"

/* libmicrohttpd, loaded by ctkn__api_http_load() rather than at every
 * process's start-up (util/dl.c): only `ctkn serve` answers HTTP. */
#define MHD_API(X)                                                             \
  X(get_connection_info, MHD_get_connection_info)                              \
  X(suspend_connection, MHD_suspend_connection)                                \
  X(resume_connection, MHD_resume_connection)                                  \
  X(create_response_from_buffer, MHD_create_response_from_buffer)              \
  X(add_response_header, MHD_add_response_header)                              \
  X(queue_response, MHD_queue_response)                                        \
  X(destroy_response, MHD_destroy_response)                                    \
  X(get_connection_values_n, MHD_get_connection_values_n)                      \
  X(is_feature_supported, MHD_is_feature_supported)                            \
  X(start_daemon, MHD_start_daemon)                                            \
  X(quiesce_daemon, MHD_quiesce_daemon)                                        \
  X(stop_daemon, MHD_stop_daemon)

static struct {
#define MHD_FIELD(f, sym) __typeof__(sym) *f;
  MHD_API(MHD_FIELD)
#undef MHD_FIELD
} mhd;

static const struct ctkn__dl_sym mhd_syms[] = {
#define MHD_SYM(f, sym) {#sym, offsetof(__typeof__(mhd), f)},
    MHD_API(MHD_SYM)
#undef MHD_SYM
};

static struct ctkn__dl mhd_dl = {.soname = CTKN_MHD_SONAME,
                                 .syms = mhd_syms,
                                 .nsyms = CTKN__ARRAY_LEN(mhd_syms),
                                 .table = &mhd};

int ctkn__api_http_load(struct ctkn_err *err)
{
  return ctkn__dl_load(&mhd_dl, err);
}

/*
 * libmicrohttpd 0.9.75 parses the request head in place, in one buffer,
 * and hands values over as C strings measured with strlen(): a raw NUL
 * byte cuts a header value or the request target short, silently. The
 * checks that see past such a NUL read that buffer's layout (the target
 * runs up to the version string; a header value's line ends in "\0\0"
 * or at the next header's name), so they are compiled for the versions
 * whose layout was read and tested (test_api_edges.py). %00 is another
 * matter: the decoded lengths come with the values, on any version.
 */
#if MHD_VERSION >= 0x00097000 && MHD_VERSION <= 0x00097500
#define HEAD_LAYOUT_KNOWN 1
#else
#define HEAD_LAYOUT_KNOWN 0
#endif

/* ---- connections and the header deadline ------------------------------ */

/*
 * One per TCP connection, from libmicrohttpd's connection notification
 * to its close: the socket, the deadline its current request head must
 * meet (0: none, the head is in), and what the URI callback measured of
 * the request target before it was decoded. Linked in http->conns so that
 * the sweep (on the server's watch thread) can cut off a client that
 * sends its head too slowly: libmicrohttpd's own timeout restarts on
 * every byte.
 */
struct conn {
  struct conn *prev, *next;
  int fd;
  atomic_int_fast64_t deadline_ms;
  size_t target_len;  /* strlen() of the raw target: ends at a raw NUL */
  bool path_nul;      /* %00 in the path */
  char query_cut[64]; /* the parameter a raw NUL cut, "" for none */
};

struct http {
  struct MHD_Daemon *d;
  pthread_mutex_t lock; /* conns, and closing a socket through it */
  struct conn *conns;
  int64_t line_ms; /* for the request line: idle time and head time */
};

static int64_t head_ms(void)
{
  return (int64_t)CTKN_SERVER_HEADER_TIMEOUT_S * 1000;
}

static struct conn *conn_of(struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *i =
      mhd.get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

  return i != NULL ? i->socket_context : NULL;
}

static void notify_conn(void *cls, struct MHD_Connection *c, void **sock_ctx,
                        enum MHD_ConnectionNotificationCode code)
{
  struct http *h = ((struct server *)cls)->http;
  struct conn *k = *sock_ctx;

  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *i =
        mhd.get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (i == NULL || (k = calloc(1, sizeof(*k))) == NULL)
      return; /* no deadline for this one; it still times out when idle */
    k->fd = i->connect_fd;
    atomic_store(&k->deadline_ms, ctkn__now_ms() + h->line_ms);
    pthread_mutex_lock(&h->lock);
    k->next = h->conns;
    if (h->conns != NULL)
      h->conns->prev = k;
    h->conns = k;
    pthread_mutex_unlock(&h->lock);
    *sock_ctx = k;
    return;
  }
  if (k == NULL)
    return;
  /* Unlinked before libmicrohttpd closes the socket, under the lock the
   * sweep holds while it shuts one down: never a reused descriptor. */
  pthread_mutex_lock(&h->lock);
  if (k->prev != NULL)
    k->prev->next = k->next;
  else
    h->conns = k->next;
  if (k->next != NULL)
    k->next->prev = k->prev;
  pthread_mutex_unlock(&h->lock);
  free(k);
  *sock_ctx = NULL;
}

/* The parameter a raw NUL cut in uri (which ends at that NUL): the name
 * of the last parameter begun, as sent. */
static void name_cut_param(const char *uri, char *out, size_t cap)
{
  const char *q = strchr(uri, '?'), *p, *amp;
  size_t n;

  if (q == NULL)
    return;
  for (p = q + 1; (amp = strchr(p, '&')) != NULL;)
    p = amp + 1;
  n = strcspn(p, "=");
  if (n >= cap)
    n = cap - 1;
  memcpy(out, p, n);
  out[n] = '\0';
  if (n == 0)
    ctkn__strlcpy(out, "query", cap);
}

/* Called with the request target as sent, before it is decoded: the head
 * has CTKN_SERVER_HEADER_TIMEOUT_S from here. */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
  struct conn *k = conn_of(c);
  int64_t dl;

  (void)cls;
  if (k == NULL)
    return NULL;
  dl = ctkn__now_ms() + head_ms();
  if (atomic_load(&k->deadline_ms) > dl)
    atomic_store(&k->deadline_ms, dl);
  k->target_len = strlen(uri);
  k->path_nul = memmem(uri, strcspn(uri, "?"), "%00", 3) != NULL;
  k->query_cut[0] = '\0';
  name_cut_param(uri, k->query_cut, sizeof(k->query_cut));
  return NULL; /* *req_cls stays NULL until the first call */
}

bool ctkn__api_http_sweep(struct server *s, int64_t now_ms)
{
  struct http *h = s->http;
  bool cut = false;

  if (h == NULL)
    return false;
  pthread_mutex_lock(&h->lock);
  for (struct conn *k = h->conns; k != NULL; k = k->next) {
    int64_t dl = atomic_load(&k->deadline_ms);
    if (dl != 0 && now_ms >= dl) {
      /* libmicrohttpd sees the end of the stream and closes it. */
      shutdown(k->fd, SHUT_RDWR);
      atomic_store(&k->deadline_ms, 0);
      cut = true;
    }
  }
  pthread_mutex_unlock(&h->lock);
  if (cut)
    ctkn__diag(CTKN_DIAG_WARN, "http",
               "a client did not send its request head in time; cut off");
  return cut;
}

static void suspend_conn(struct req *r)
{
  mhd.suspend_connection(r->conn);
}

static void resume_conn(struct req *r)
{
  mhd.resume_connection(r->conn);
}

static const struct ctkn__api_transport mhd_transport = {
    .suspend = suspend_conn,
    .resume = resume_conn,
};

CTKN__PRINTF(2, 0)
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  struct ctkn__buf f = CTKN__BUF_INIT;
  char msg[512];
  size_t n;

  (void)cls;
  vsnprintf(msg, sizeof(msg), fmt, ap);
  n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  if (ctkn__buf_json_member(&f, "detail", msg) == CTKN_OK)
    ctkn__diag_fields(CTKN_DIAG_WARN, "http", "http", f.data);
  ctkn__buf_free(&f);
}

/* ---- answers ---------------------------------------------------------- */

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
        mhd.create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  } else if (r->body_static != NULL) {
    resp = mhd.create_response_from_buffer(
        r->body_static_len, (void *)r->body_static, MHD_RESPMEM_PERSISTENT);
  } else if (r->resp != NULL) {
    resp = mhd.create_response_from_buffer(strlen(r->resp), r->resp,
                                           MHD_RESPMEM_MUST_FREE);
    if (resp != NULL)
      r->resp = NULL; /* now MHD's */
  } else {
    r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    r->ctype = NULL;
    resp = mhd.create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
                                           MHD_RESPMEM_PERSISTENT);
  }
  if (resp == NULL)
    return MHD_NO;
  if (r->status != MHD_HTTP_NO_CONTENT)
    mhd.add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->ctype != NULL ? r->ctype : "application/json");
  /* Paddle names Request-Id; X-Request-Id is ctkn's first spelling. */
  mhd.add_response_header(resp, "Request-Id", r->rid);
  mhd.add_response_header(resp, "X-Request-Id", r->rid);
  if (r->position[0] != '\0')
    mhd.add_response_header(resp, "X-Ctkn-Position", r->position);
  if (r->allow != NULL)
    mhd.add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
  if (r->retry_after > 0) {
    snprintf(retry, sizeof(retry), "%d", r->retry_after);
    mhd.add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry);
  }
  if (r->close)
    mhd.add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  for (const char *const *h = r->headers; h != NULL && h[0] != NULL; h += 2)
    mhd.add_response_header(resp, h[0], h[1]);
  ret = mhd.queue_response(r->conn, (unsigned)r->status, resp);
  mhd.destroy_response(resp);
  return ret;
}

/* ---- the access handler ---------------------------------------------- */

static enum MHD_Result add_param(void *cls, enum MHD_ValueKind kind,
                                 const char *key, size_t klen,
                                 const char *value, size_t vlen)
{
  (void)kind;
  return ctkn__api_req_param(cls, key, klen, value, vlen) ? MHD_YES : MHD_NO;
}

/* The headers in arrival order, each value's length as it arrived. */
struct head_walk {
  struct req *r;
  const char *key, *value; /* the previous header, not yet noted */
  size_t vlen;
  bool in_buffer; /* value points into the request buffer */
};

/*
 * The length of the previous header's value as it arrived, given the
 * next header's name (NULL after the last). In 0.9.75's buffer a value
 * whose line ended in CRLF is followed by a second NUL (the LF's); one
 * that ended in a bare LF, by the next header's name. Anything else after
 * its NUL is the rest of a value a raw NUL cut: it counts one byte more.
 */
static size_t arrived_len(const struct head_walk *w, const char *next_key)
{
#if HEAD_LAYOUT_KNOWN
  const char *after = w->value + w->vlen + 1;

  if (w->in_buffer && *after != '\0' && after != next_key)
    return w->vlen + 1;
#else
  (void)next_key;
#endif
  return w->vlen;
}

static void note_prev_header(struct head_walk *w, const char *next_key)
{
  if (w->key != NULL)
    ctkn__api_req_header(w->r, w->key, w->value, arrived_len(w, next_key));
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind,
                                  const char *key, size_t klen,
                                  const char *value, size_t vlen)
{
  struct head_walk *w = cls;

  (void)kind;
  (void)klen;
  note_prev_header(w, key);
  w->key = key;
  w->in_buffer = value != NULL;
  w->value = value != NULL ? value : "";
  w->vlen = value != NULL ? vlen : 0;
  return MHD_YES;
}

/*
 * The request target's length as sent, and whether a raw NUL cut it: the
 * URI callback measured it with strlen(), while in 0.9.75's buffer it
 * runs up to the version string, whatever it holds.
 */
static void note_target(struct req *r, struct conn *k, const char *url,
                        const char *version, size_t head_bytes)
{
  size_t len = k->target_len;
  bool path_nul = k->path_nul;
  const char *cut = NULL;

#if HEAD_LAYOUT_KNOWN
  if (version > url && version[0] != '\0' && version[-1] == '\0' &&
      (size_t)(version - url) <= CTKN_SERVER_MAX_HEAD) {
    size_t sent = (size_t)(version - url) - 1;
    if (sent > len) {
      /* The raw target ended at a NUL: in the path, or in a parameter. */
      if (k->query_cut[0] != '\0')
        cut = k->query_cut;
      else
        path_nul = true;
      len = sent;
    }
  }
#else
  (void)url;
  (void)version;
#endif
  ctkn__api_req_head(r, len, path_nul, cut, head_bytes);
}

/* What the head holds beyond the struct req's strings: its size, the
 * target as sent, each header's length as it arrived. */
static void read_head(struct MHD_Connection *conn, struct req *r,
                      const char *url, const char *version)
{
  const union MHD_ConnectionInfo *i =
      mhd.get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
  struct head_walk w = {.r = r};
  struct conn *k = conn_of(conn);

  mhd.get_connection_values_n(conn, MHD_HEADER_KIND, add_header, &w);
  note_prev_header(&w, NULL);
  if (k != NULL) {
    atomic_store(&k->deadline_ms, 0); /* the head is in */
    note_target(r, k, url, version, i != NULL ? i->header_size : 0);
  } else {
    ctkn__api_req_head(r, strlen(url), false, NULL,
                       i != NULL ? i->header_size : 0);
  }
}

static bool has_body(const struct req *r)
{
  const char *cl = r->hdr.content_length;

  return (cl != NULL && strcmp(cl, "0") != 0) ||
         r->hdr.transfer_encoding != NULL;
}

/* The first call: a struct req from what arrived, routed. */
static enum MHD_Result first_call(struct server *s, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, void **req_cls)
{
  struct req *r = ctkn__api_req_new(s, conn, method, url);
  int seen;

  if (r == NULL)
    return MHD_NO;
  *req_cls = r;
  read_head(conn, r, url, version);
  /* A parameter that could not be kept stops the walk, counted but not
   * in r->query. */
  seen = mhd.get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, add_param, r);
  if (seen < 0 || (size_t)seen != r->nquery)
    ctkn__api_answer_code(r, CTKN_ENOMEM, "out of memory");
  else
    ctkn__api_begin(s, r);
  /* Refused already: say so before a body is sent (libmicrohttpd then
   * closes the connection); without a body, answer on the next call and
   * keep the connection, unless the answer closes it. */
  if (ctkn__api_answered(r) && (has_body(r) || r->close))
    return send_answer(r);
  return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
  struct server *s = cls;
  struct req *r = *req_cls;

  if (r == NULL)
    return first_call(s, conn, url, method, version, req_cls);
  if (!r->suspended && *upload_data_size != 0) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    return ctkn__api_body(r, upload_data, n) ? MHD_YES : MHD_NO;
  }
  /* The body is in, or r was resumed: its answer is final, or a read may
   * run now. */
  r->suspended = false;
  ctkn__api_dispatch(s, r);
  return r->suspended ? MHD_YES : send_answer(r);
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
  struct server *s = cls;
  struct req *r = *req_cls;
  struct conn *k = conn_of(conn);

  /* The next request on this connection: its line, then its head. */
  if (k != NULL)
    atomic_store(&k->deadline_ms,
                 ctkn__now_ms() + ((struct http *)s->http)->line_ms);
  if (r == NULL)
    return;
  ctkn__api_complete(cls, r,
                     toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? NULL
                     : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED
                         ? "timeout"
                         : "connection");
  *req_cls = NULL;
}

/* ---- the daemon ------------------------------------------------------- */

bool ctkn__api_http_tls(void)
{
  return mhd.is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

/* The daemon's options beyond TLS: a memory limit above ctkn's own
 * bounds on the head (so those get Paddle's envelope, not libmicrohttpd's
 * HTML) but no larger, since 0.9.75 zeroes the whole pool between
 * keep-alive requests; the timeouts, and the callbacks. */
static struct MHD_Daemon *start_daemon(struct server *s, unsigned flags,
                                       const void *addr,
                                       struct MHD_OptionItem *tls)
{
  const struct ctkn_server_config *cfg = s->cfg;

  return mhd.start_daemon(
      flags, 0, NULL, NULL, handle, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
      MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
      MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->client_timeout_s,
      MHD_OPTION_CONNECTION_LIMIT, 10000u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)CTKN_SERVER_MAX_HEAD, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
      MHD_OPTION_NOTIFY_CONNECTION, notify_conn, s, MHD_OPTION_URI_LOG_CALLBACK,
      uri_seen, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_ARRAY,
      tls, MHD_OPTION_END);
}

int ctkn__api_http_start(struct server *s, const void *addr, const char *cert,
                         const char *key, struct ctkn_err *err)
{
  const struct ctkn_server_config *cfg = s->cfg;
  /* poll(2), not epoll: libmicrohttpd 0.9.75's mhd.quiesce_daemon() removes
   * the listen socket from a running epoll loop's set without a lock and
   * aborts when the loop won the race ("Failed to remove listen FD from
   * epoll set", seen on SIGTERM with requests in flight). Under poll the
   * loop itself stops watching the socket; ITC wakes it. */
  unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  struct http *h = calloc(1, sizeof(*h));

  if (h == NULL || pthread_mutex_init(&h->lock, NULL) != 0) {
    free(h);
    return ctkn__err(err, CTKN_ENOMEM, "server: connections");
  }
  h->line_ms = (int64_t)cfg->client_timeout_s * 1000 + head_ms();
  s->http = h;
  if (((const struct sockaddr *)addr)->sa_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  if (cert != NULL)
    flags |= MHD_USE_TLS;
  struct MHD_OptionItem tls[] = {
      {cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *)cert},
      {cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, (void *)key},
      {MHD_OPTION_END, 0, NULL}};
  s->io = &mhd_transport;
  h->d = start_daemon(s, flags, addr, tls);
  if (h->d == NULL)
    return ctkn__err_field(err, CTKN_EIO, "listen",
                           "cannot listen on %.100s (in use, or not this "
                           "host's address)",
                           cfg->listen);
  return CTKN_OK;
}

void ctkn__api_http_quiesce(struct server *s)
{
  struct http *h = s->http;
  MHD_socket lsock = mhd.quiesce_daemon(h->d);

  if (lsock != MHD_INVALID_SOCKET)
    close(lsock);
}

void ctkn__api_http_stop(struct server *s)
{
  struct http *h = s->http;

  if (h == NULL)
    return;
  if (h->d != NULL)
    mhd.stop_daemon(h->d); /* every connection closed and notified */
  pthread_mutex_destroy(&h->lock);
  free(h);
  s->http = NULL;
}
