/*
 * httpraw - the physical limit beside `ctkn serve`'s reads (bench/http): a
 * bare libmicrohttpd server with the daemon flags and options of
 * src/api/http.c (internal thread pool, suspend/resume allowed, the same
 * timeouts, connection limit, memory limit per connection and completion
 * callback), answering every request with a fixed JSON body of BYTES
 * bytes and the same headers a ctkn read carries (Content-Type, a
 * 36-character X-Request-Id). No
 * routing, no authentication, no LMDB, no JSON, no access log: what wrk
 * gets from it is what the HTTP stack gives on this machine.
 *
 * Like ctkn's handler it answers on the access handler's second call (the
 * first only attaches per-request state), so libmicrohttpd walks the same
 * states for both.
 *
 * usage: httpraw PORT THREADS BYTES    (runs until SIGTERM/SIGINT)
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctkn/server.h" /* CTKN_SERVER_MAX_HEAD: the same memory limit */

static char *body;
static size_t body_len;
static int marker; /* the per-request state: its address is enough */
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
  (void)sig;
  stop = 1;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
  struct MHD_Response *resp;
  enum MHD_Result ret;

  (void)cls;
  (void)url;
  (void)method;
  (void)version;
  (void)upload_data;
  if (*req_cls == NULL) {
    *req_cls = &marker;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  resp =
      MHD_create_response_from_buffer(body_len, body, MHD_RESPMEM_PERSISTENT);
  if (resp == NULL)
    return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "application/json");
  MHD_add_response_header(resp, "X-Request-Id",
                          "8a505747-4932-4dbf-8e47-7c0e6b5e3d2d");
  ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
  (void)cls;
  (void)conn;
  (void)toe;
  *req_cls = NULL;
}

int main(int argc, char **argv)
{
  if (argc != 4) {
    fprintf(stderr, "usage: httpraw PORT THREADS BYTES\n");
    return 2;
  }
  unsigned port = (unsigned)strtoul(argv[1], NULL, 10);
  unsigned threads = (unsigned)strtoul(argv[2], NULL, 10);
  body_len = strtoul(argv[3], NULL, 10);
  if (port == 0 || port > 65535 || threads < 1 || threads > 64 ||
      body_len < 2 || (body = malloc(body_len)) == NULL) {
    fprintf(stderr, "httpraw: bad arguments\n");
    return 2;
  }
  /* {"data":"xxx...x"}: valid JSON of exactly body_len bytes. */
  memset(body, 'x', body_len);
  if (body_len >= 12) {
    memcpy(body, "{\"data\":\"", 9);
    memcpy(body + body_len - 2, "\"}", 2);
  } else {
    body[0] = '{';
    body[body_len - 1] = '}';
    memset(body + 1, ' ', body_len - 2);
  }

  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  /* The flags and options of ctkn_server_run(), without TLS. */
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME |
          MHD_USE_ERROR_LOG,
      0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
      MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
      MHD_OPTION_CONNECTION_LIMIT, 10000u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      (size_t)CTKN_SERVER_MAX_HEAD, MHD_OPTION_NOTIFY_COMPLETED, completed,
      NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "httpraw: cannot listen on 127.0.0.1:%u\n", port);
    return 1;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  fprintf(stderr, "httpraw: listening on 127.0.0.1:%u, %u threads, %zu B\n",
          port, threads, body_len);
  while (!stop)
    pause();
  MHD_stop_daemon(d);
  free(body);
  return 0;
}
