/*
 * http.c - the HTTP API's libmicrohttpd plumbing, and the only file of
 * ctkn that includes <microhttpd.h>: the daemon and its options, the
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api/api_int.h"

static void suspend_conn(struct req *r)
{
  MHD_suspend_connection(r->conn);
}

static void resume_conn(struct req *r)
{
  MHD_resume_connection(r->conn);
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
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  } else if (r->resp != NULL) {
    resp = MHD_create_response_from_buffer(strlen(r->resp), r->resp,
                                           MHD_RESPMEM_MUST_FREE);
    if (resp != NULL)
      r->resp = NULL; /* now MHD's */
  } else {
    r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    r->ctype = NULL;
    resp = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
                                           MHD_RESPMEM_PERSISTENT);
  }
  if (resp == NULL)
    return MHD_NO;
  if (r->status != MHD_HTTP_NO_CONTENT)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->ctype != NULL ? r->ctype : "application/json");
  /* Paddle names Request-Id; X-Request-Id is ctkn's first spelling. */
  MHD_add_response_header(resp, "Request-Id", r->rid);
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

/* ---- the access handler ---------------------------------------------- */

static enum MHD_Result add_param(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
  (void)kind;
  return ctkn__api_req_param(cls, key, value) ? MHD_YES : MHD_NO;
}

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value)
{
  (void)kind;
  ctkn__api_req_header(cls, key, value);
  return MHD_YES;
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
                                  void **req_cls)
{
  struct req *r = ctkn__api_req_new(s, conn, method, url);
  int seen;

  if (r == NULL)
    return MHD_NO;
  *req_cls = r;
  MHD_get_connection_values(conn, MHD_HEADER_KIND, add_header, r);
  /* A parameter that could not be kept stops the walk, counted but not
   * in r->query. */
  seen = MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, add_param, r);
  if (seen < 0 || (size_t)seen != r->nquery)
    ctkn__api_answer_code(r, CTKN_ENOMEM, "out of memory");
  else
    ctkn__api_begin(s, r);
  /* Refused already: say so before a body is sent (libmicrohttpd then
   * closes the connection); without a body, answer on the next call and
   * keep the connection. */
  if (ctkn__api_answered(r) && has_body(r))
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

  (void)version;
  if (r == NULL)
    return first_call(s, conn, url, method, req_cls);
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
  struct req *r = *req_cls;

  (void)conn;
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
  return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

int ctkn__api_http_start(struct server *s, const void *addr, const char *cert,
                         const char *key, struct ctkn_err *err)
{
  const struct ctkn_server_config *cfg = s->cfg;
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG;

  if (((const struct sockaddr *)addr)->sa_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  if (cert != NULL)
    flags |= MHD_USE_TLS;
  struct MHD_OptionItem tls[] = {
      {cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *)cert},
      {cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, (void *)key},
      {MHD_OPTION_END, 0, NULL}};
  s->io = &mhd_transport;
  s->http = MHD_start_daemon(
      flags, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR,
      (const struct sockaddr *)addr, MHD_OPTION_THREAD_POOL_SIZE,
      (unsigned)cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)cfg->client_timeout_s, MHD_OPTION_CONNECTION_LIMIT, 10000u,
      MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_EXTERNAL_LOGGER,
      mhd_log, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_ARRAY, tls,
      MHD_OPTION_END);
  if (s->http == NULL)
    return ctkn__err_field(err, CTKN_EIO, "listen",
                           "cannot listen on %.100s (in use, or not this "
                           "host's address)",
                           cfg->listen);
  return CTKN_OK;
}

void ctkn__api_http_quiesce(struct server *s)
{
  MHD_socket lsock = MHD_quiesce_daemon(s->http);

  if (lsock != MHD_INVALID_SOCKET)
    close(lsock);
}

void ctkn__api_http_stop(struct server *s)
{
  if (s->http != NULL)
    MHD_stop_daemon(s->http);
  s->http = NULL;
}
