/*
 * test_notify_http.c - the notifier's requests (src/notify/http.c) refuse
 * what the destination policy refuses, and say why: a URL before anything
 * starts (user info; http in live), and an address after DNS, in the
 * socket callback, before any connection.
 *
 * No network beyond loopback: the refused requests never connect, the
 * allowed one goes to 127.0.0.1 port 1, where nothing listens, and one
 * goes to a one-answer server of the test's own (the response's content
 * type and body prefix are kept).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctkn/error.h"
#include "ctkn/netaddr.h"
#include "ctkn/setting.h"
#include "notify/notify_int.h"

struct outcome {
  bool done;
  int status;
  char error[256];
  char ctype[256];
  char body[CTKN_NTF_BODY_MAX];
  size_t blen;
};

static void on_done(void *arg, void *tag, const struct ctkn__http_resp *r)
{
  struct outcome *o = tag;
  (void)arg;
  o->done = true;
  o->status = r->status;
  snprintf(o->error, sizeof(o->error), "%s", r->error ? r->error : "");
  snprintf(o->ctype, sizeof(o->ctype), "%s", r->content_type);
  o->blen = r->body_len;
  memcpy(o->body, r->body, r->body_len);
}

/* POST to url under p; what became of it (within 10 s). */
static struct outcome post(const char *url, const struct ctkn_dest_policy *p)
{
  struct outcome o = {0};
  struct ctkn__http *h = NULL;
  struct ctkn__http_req *r = NULL;
  struct ctkn__http_post req = {.url = url,
                                .body = "{}",
                                .len = 2,
                                .signature = "ts=1;h1=00",
                                .timeout_ms = 5000,
                                .connect_timeout_ms = 3000,
                                .policy = p,
                                .tag = &o};
  time_t deadline = time(NULL) + 10;

  assert_int_equal(ctkn__http_open(&h, NULL), CTKN_OK);
  assert_int_equal(ctkn__http_start(h, &req, &r), CTKN_OK);
  assert_non_null(r);
  while (!o.done && time(NULL) < deadline) {
    ctkn__http_reap(h, on_done, NULL);
    if (!o.done)
      ctkn__http_wait(h, 100);
  }
  ctkn__http_close(h);
  assert_true(o.done);
  return o;
}

#define assert_contains(hay, needle)                                           \
  do {                                                                         \
    if (strstr((hay), (needle)) == NULL)                                       \
      fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));             \
  } while (0)

static void test_url_refused_before_starting(void **st)
{
  struct ctkn_dest_policy sandbox = {.env = CTKN_ENV_SANDBOX};
  struct ctkn_dest_policy live = {.env = CTKN_ENV_LIVE};
  struct outcome o;
  (void)st;

  o = post("https://user:pw@hooks.example.com/x", &sandbox);
  assert_int_equal(o.status, 0);
  assert_contains(o.error, "the destination URL must not carry user info");
  o = post("http://hooks.example.com/x", &live);
  assert_int_equal(o.status, 0);
  assert_contains(o.error,
                  "the destination URL must be an https:// URL in the live "
                  "environment");
  o = post("http://0x7f.1:1/x", &sandbox);
  assert_contains(o.error, "destination address 127.0.0.1 is not globally "
                           "reachable (loopback 127.0.0.0/8); allow it with "
                           "--allow-destination-network");
}

static void test_address_refused_after_dns(void **st)
{
  struct ctkn_dest_policy p = {.env = CTKN_ENV_SANDBOX};
  struct outcome o;
  (void)st;

  /* A name: only the socket callback sees where it goes. */
  o = post("http://localhost:1/x", &p);
  assert_int_equal(o.status, 0);
  assert_contains(o.error, "is not globally reachable (loopback");
  assert_contains(o.error, "allow it with --allow-destination-network");
}

static void test_allowed_address_is_connected_to(void **st)
{
  struct ctkn_cidr lo;
  struct ctkn_dest_policy p = {.env = CTKN_ENV_SANDBOX, .nallow = 1};
  struct outcome o;
  (void)st;

  assert_int_equal(ctkn_cidr_parse("127.0.0.0/8", &lo, NULL), CTKN_OK);
  p.allow = &lo;
  /* Nothing listens on port 1: libcurl's own failure, not a refusal. */
  o = post("http://127.0.0.1:1/x", &p);
  assert_int_equal(o.status, 0);
  assert_non_null(strstr(o.error, "onnect"));
  assert_null(strstr(o.error, "not globally reachable"));
}

static void test_cancel_of_a_refused_request(void **st)
{
  struct ctkn_dest_policy p = {.env = CTKN_ENV_LIVE};
  struct ctkn__http *h = NULL;
  struct ctkn__http_req *a = NULL, *b = NULL;
  struct outcome oa = {0}, ob = {0};
  struct ctkn__http_post req = {.url = "http://hooks.example.com/",
                                .body = "{}",
                                .len = 2,
                                .signature = "ts=1;h1=00",
                                .timeout_ms = 1000,
                                .connect_timeout_ms = 1000,
                                .policy = &p};
  (void)st;

  assert_int_equal(ctkn__http_open(&h, NULL), CTKN_OK);
  req.tag = &oa;
  assert_int_equal(ctkn__http_start(h, &req, &a), CTKN_OK);
  req.tag = &ob;
  assert_int_equal(ctkn__http_start(h, &req, &b), CTKN_OK);
  ctkn__http_cancel(h, a); /* never reported */
  assert_int_equal(ctkn__http_reap(h, on_done, NULL), 1);
  assert_false(oa.done);
  assert_true(ob.done);
  assert_int_equal(ctkn__http_reap(h, on_done, NULL), 0);
  ctkn__http_close(h);
}

/* A one-answer HTTP server on 127.0.0.1: a 418 with a text/plain body
 * longer than the prefix kept. */
struct one_answer {
  int fd;
  int port;
  pthread_t t;
};

static void *answer_once(void *arg)
{
  struct one_answer *s = arg;
  char req[4096], body[3000];
  int c = accept(s->fd, NULL, NULL);

  if (c < 0)
    return NULL;
  ssize_t got = recv(c, req, sizeof(req), 0); /* the request: "{}" is short */
  (void)got;
  memset(body, 'x', sizeof(body));
  body[0] = '<';
  dprintf(c,
          "HTTP/1.1 418 I'm a teapot\r\nContent-Type: text/plain; "
          "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
          sizeof(body));
  ssize_t sent = send(c, body, sizeof(body), 0);
  (void)sent;
  close(c);
  return NULL;
}

static void test_response_prefix_is_kept(void **st)
{
  struct ctkn_cidr lo;
  struct ctkn_dest_policy p = {.env = CTKN_ENV_SANDBOX, .nallow = 1};
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t alen = sizeof(a);
  struct one_answer s;
  struct outcome o;
  char url[64];
  (void)st;

  assert_int_equal(ctkn_cidr_parse("127.0.0.0/8", &lo, NULL), CTKN_OK);
  p.allow = &lo;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s.fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s.fd >= 0);
  assert_int_equal(bind(s.fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(s.fd, 1), 0);
  assert_int_equal(getsockname(s.fd, (struct sockaddr *)&a, &alen), 0);
  s.port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&s.t, NULL, answer_once, &s), 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", s.port);
  o = post(url, &p);
  pthread_join(s.t, NULL);
  close(s.fd);
  assert_int_equal(o.status, 418);
  assert_string_equal(o.error, "");
  assert_string_equal(o.ctype, "text/plain; charset=utf-8");
  assert_int_equal(o.blen, CTKN_NTF_BODY_MAX);
  assert_int_equal(o.body[0], '<');
  assert_int_equal(o.body[CTKN_NTF_BODY_MAX - 1], 'x');
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_url_refused_before_starting),
      cmocka_unit_test(test_address_refused_after_dns),
      cmocka_unit_test(test_allowed_address_is_connected_to),
      cmocka_unit_test(test_cancel_of_a_refused_request),
      cmocka_unit_test(test_response_prefix_is_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
