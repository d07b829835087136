/*
 * http.c - the notifier's requests over libcurl's multi interface, and
 * the only file of ctkn that includes <curl/curl.h>; libcurl is loaded
 * when the first notifier opens (util/dl.c), not linked.
 *
 * Every request is a POST of a webhook body with its signature header,
 * bounded by a connect and a whole-request timeout, its answer's body
 * discarded. The multi handle runs them all on the notifier's thread;
 * ctkn__http_wakeup() (curl_multi_wakeup) is the one call another thread
 * makes, to end a wait when the projection advanced.
 *
 * Where a request goes is the destination policy's (setting.h): its URL
 * is judged before a handle exists (a refused one waits in `early` for
 * the next reap, with its reason), and each address libcurl is about to
 * connect to, after DNS, in open_socket() (CURLOPT_OPENSOCKETFUNCTION):
 * the check sees the address the socket really connects to, so no DNS
 * answer can change between check and use. CURLOPT_NOPROXY "*" keeps
 * that address the destination's, not a proxy's (whatever http_proxy
 * says), and redirects are not followed (CURLOPT_FOLLOWLOCATION 0).
 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "notify_int.h"

/* libcurl, loaded by the first ctkn__http_open() rather than at every
 * process's start-up (util/dl.c): only the notifier sends requests. */
#define CURL_API(X)                                                            \
  X(global_init, curl_global_init)                                             \
  X(multi_init, curl_multi_init)                                               \
  X(multi_remove_handle, curl_multi_remove_handle)                             \
  X(easy_cleanup, curl_easy_cleanup)                                           \
  X(slist_free_all, curl_slist_free_all)                                       \
  X(multi_cleanup, curl_multi_cleanup)                                         \
  X(easy_setopt, curl_easy_setopt)                                             \
  X(easy_init, curl_easy_init)                                                 \
  X(slist_append, curl_slist_append)                                           \
  X(multi_add_handle, curl_multi_add_handle)                                   \
  X(easy_getinfo, curl_easy_getinfo)                                           \
  X(multi_perform, curl_multi_perform)                                         \
  X(multi_info_read, curl_multi_info_read)                                     \
  X(easy_strerror, curl_easy_strerror)                                         \
  X(multi_poll, curl_multi_poll)                                               \
  X(multi_wakeup, curl_multi_wakeup)

static struct {
#define CURL_FIELD(f, sym) __typeof__(sym) *f;
  CURL_API(CURL_FIELD)
#undef CURL_FIELD
} lc;

static const struct ctkn__dl_sym curl_syms[] = {
#define CURL_SYM(f, sym) {#sym, offsetof(__typeof__(lc), f)},
    CURL_API(CURL_SYM)
#undef CURL_SYM
};

static struct ctkn__dl curl_dl = {.soname = CTKN_CURL_SONAME,
                                  .syms = curl_syms,
                                  .nsyms = CTKN__ARRAY_LEN(curl_syms),
                                  .table = &lc};

struct ctkn__http {
  CURLM *multi;
  struct ctkn__http_req *early; /* refused before starting: to report */
};

struct ctkn__http_req {
  CURL *easy; /* NULL when refused before starting */
  struct curl_slist *hdrs;
  const struct ctkn_dest_policy *policy;
  char why[256]; /* "" or why an address (or the URL) was refused */
  struct ctkn__http_req *next; /* in early */
  void *tag;
  size_t blen; /* of body: the response's first bytes */
  char body[CTKN_NTF_BODY_MAX];
};

int ctkn__http_open(struct ctkn__http **out, struct ctkn_err *err)
{
  struct ctkn__http *h = calloc(1, sizeof(*h));

  *out = NULL;
  if (h == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify");
  int rc = ctkn__dl_load(&curl_dl, err);
  if (rc != CTKN_OK) {
    free(h);
    return rc;
  }
  if (lc.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
      (h->multi = lc.multi_init()) == NULL) {
    free(h);
    return ctkn__err(err, CTKN_EINTERNAL, "notify: libcurl does not start");
  }
  *out = h;
  return CTKN_OK;
}

static void req_free(struct ctkn__http *h, struct ctkn__http_req *r)
{
  struct ctkn__http_req **pp = &h->early;

  if (r->easy == NULL) {
    while (*pp != NULL && *pp != r)
      pp = &(*pp)->next;
    if (*pp == r)
      *pp = r->next;
  } else {
    lc.multi_remove_handle(h->multi, r->easy);
    lc.easy_cleanup(r->easy);
  }
  lc.slist_free_all(r->hdrs);
  free(r);
}

void ctkn__http_close(struct ctkn__http *h)
{
  if (h == NULL)
    return;
  while (h->early != NULL)
    req_free(h, h->early);
  lc.multi_cleanup(h->multi);
  free(h);
}

/* CURLOPT_WRITEFUNCTION: keep the body's first bytes, read the rest. */
static size_t keep_prefix(char *p, size_t size, size_t n, void *arg)
{
  struct ctkn__http_req *r = arg;
  size_t len = size * n, room = sizeof(r->body) - r->blen;

  memcpy(r->body + r->blen, p, len < room ? len : room);
  r->blen += len < room ? len : room;
  return len;
}

/* CURLOPT_OPENSOCKETFUNCTION: a socket for a, when the policy lets the
 * request connect there; otherwise the reason in r->why and no socket,
 * which libcurl takes as this address failing (it tries the next). */
static curl_socket_t open_socket(void *arg, curlsocktype purpose,
                                 struct curl_sockaddr *a)
{
  struct ctkn__http_req *r = arg;
  const char *sa = (const char *)&a->addr;
  struct ctkn_ip ip = {0};

  if (purpose == CURLSOCKTYPE_IPCXN && a->family == AF_INET &&
      a->addrlen >= sizeof(struct sockaddr_in)) {
    ip.family = 4;
    memcpy(ip.b, sa + offsetof(struct sockaddr_in, sin_addr), 4);
  } else if (purpose == CURLSOCKTYPE_IPCXN && a->family == AF_INET6 &&
             a->addrlen >= sizeof(struct sockaddr_in6)) {
    ip.family = 6;
    memcpy(ip.b, sa + offsetof(struct sockaddr_in6, sin6_addr), 16);
  } else {
    snprintf(r->why, sizeof(r->why),
             "refused a connection that is not TCP over IPv4 or IPv6");
    return CURL_SOCKET_BAD;
  }
  if (!ctkn_dest_addr_allowed(&ip, r->policy, r->why, sizeof(r->why)))
    return CURL_SOCKET_BAD;
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static void set_options(CURL *c, const struct ctkn__http_post *p,
                        struct ctkn__http_req *r)
{
  lc.easy_setopt(c, CURLOPT_URL, p->url);
  lc.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  lc.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  lc.easy_setopt(c, CURLOPT_NOPROXY, "*");
  lc.easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  lc.easy_setopt(c, CURLOPT_OPENSOCKETDATA, r);
  lc.easy_setopt(c, CURLOPT_POST, 1L);
  lc.easy_setopt(c, CURLOPT_POSTFIELDS, p->body);
  lc.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
  lc.easy_setopt(c, CURLOPT_HTTPHEADER, r->hdrs);
  lc.easy_setopt(c, CURLOPT_USERAGENT, "ctkn-notify/0.1");
  lc.easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)p->timeout_ms);
  lc.easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)p->connect_timeout_ms);
  lc.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  lc.easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_prefix);
  lc.easy_setopt(c, CURLOPT_WRITEDATA, r);
  lc.easy_setopt(c, CURLOPT_PRIVATE, r);
}

int ctkn__http_start(struct ctkn__http *h, const struct ctkn__http_post *p,
                     struct ctkn__http_req **out)
{
  char hdr[CTKN_SIGNATURE_BUF + 20];
  struct ctkn__http_req *r = calloc(1, sizeof(*r));
  struct ctkn_err err;

  *out = NULL;
  if (r == NULL)
    return CTKN_ENOMEM;
  r->tag = p->tag;
  r->policy = p->policy;
  if (ctkn_dest_url_check(p->url, p->policy, &err) != CTKN_OK) {
    /* Reported by the next reap, like any failure: nothing is sent. */
    snprintf(r->why, sizeof(r->why), "%s%.200s",
             strncmp(err.msg, "must", 4) == 0 ? "the destination URL " : "",
             err.msg);
    r->next = h->early;
    h->early = r;
    *out = r;
    return CTKN_OK;
  }
  if ((r->easy = lc.easy_init()) == NULL) {
    free(r);
    return CTKN_ENOMEM;
  }
  snprintf(hdr, sizeof(hdr), "Paddle-Signature: %s", p->signature);
  r->hdrs = lc.slist_append(NULL, "Content-Type: application/json");
  r->hdrs = lc.slist_append(r->hdrs, hdr);
  r->hdrs = lc.slist_append(r->hdrs, "Expect:");
  if (r->hdrs == NULL) {
    lc.easy_cleanup(r->easy);
    free(r);
    return CTKN_ENOMEM;
  }
  set_options(r->easy, p, r);
  if (lc.multi_add_handle(h->multi, r->easy) != CURLM_OK) {
    lc.easy_cleanup(r->easy);
    lc.slist_free_all(r->hdrs);
    free(r);
    return CTKN_EINTERNAL;
  }
  *out = r;
  return CTKN_OK;
}

void ctkn__http_cancel(struct ctkn__http *h, struct ctkn__http_req *r)
{
  if (r != NULL)
    req_free(h, r);
}

/* Hand r's outcome to done (before r is freed: the body is r's). */
static void report(struct ctkn__http_req *r, CURLcode cc, int code,
                   const char *why, ctkn__http_done_cb done, void *arg)
{
  char *ct = NULL;
  struct ctkn__http_resp resp = {cc == CURLE_OK ? code : 0,
                                 cc == CURLE_OK ? NULL : why, "", r->body,
                                 r->blen};

  if (lc.easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK &&
      ct != NULL)
    resp.content_type = ct;
  done(arg, r->tag, &resp);
}

size_t ctkn__http_reap(struct ctkn__http *h, ctkn__http_done_cb done, void *arg)
{
  CURLMsg *m;
  int left, running;
  size_t n = 0;

  while (h->early != NULL) {
    struct ctkn__http_req *r = h->early;
    void *tag = r->tag;
    char why[sizeof(r->why)];
    memcpy(why, r->why, sizeof(why));
    struct ctkn__http_resp resp = {0, why, "", "", 0};
    req_free(h, r);
    done(arg, tag, &resp);
    n++;
  }
  lc.multi_perform(h->multi, &running);
  while ((m = lc.multi_info_read(h->multi, &left)) != NULL) {
    struct ctkn__http_req *r;
    long code = 0;
    if (m->msg != CURLMSG_DONE)
      continue;
    CURLcode cc = m->data.result;
    lc.easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    lc.easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    char why[sizeof(r->why) + 64];
    /* A refused address explains a failure better than libcurl's
     * "Couldn't connect to server"; when another address answered, the
     * refusal is moot, and when another failed otherwise, both count. */
    if (r->why[0] == '\0')
      snprintf(why, sizeof(why), "%s", lc.easy_strerror(cc));
    else if (cc == CURLE_COULDNT_CONNECT)
      snprintf(why, sizeof(why), "%s", r->why);
    else
      snprintf(why, sizeof(why), "%s; %s", lc.easy_strerror(cc), r->why);
    report(r, cc, (int)code, why, done, arg);
    req_free(h, r); /* m is not used past here: it belongs to the handle */
    n++;
  }
  return n;
}

void ctkn__http_wait(struct ctkn__http *h, int timeout_ms)
{
  int numfds;

  lc.multi_poll(h->multi, NULL, 0, h->early != NULL ? 0 : timeout_ms, &numfds);
}

void ctkn__http_wakeup(struct ctkn__http *h)
{
  lc.multi_wakeup(h->multi);
}
