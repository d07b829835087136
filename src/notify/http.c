/*
 * http.c - the notifier's requests over libcurl's multi interface, and
 * the only file of ctkn that includes <curl/curl.h>.
 *
 * Every request is a POST of a webhook body with its signature header,
 * bounded by a connect and a whole-request timeout, its answer's body
 * discarded. The multi handle runs them all on the notifier's thread;
 * ctkn__http_wakeup() (curl_multi_wakeup) is the one call another thread
 * makes, to end a wait when the projection advanced.
 */
#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "notify_int.h"

struct ctkn__http {
  CURLM *multi;
};

struct ctkn__http_req {
  CURL *easy;
  struct curl_slist *hdrs;
  void *tag;
};

int ctkn__http_open(struct ctkn__http **out, struct ctkn_err *err)
{
  struct ctkn__http *h = calloc(1, sizeof(*h));

  *out = NULL;
  if (h == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify");
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
      (h->multi = curl_multi_init()) == NULL) {
    free(h);
    return ctkn__err(err, CTKN_EINTERNAL, "notify: libcurl does not start");
  }
  *out = h;
  return CTKN_OK;
}

void ctkn__http_close(struct ctkn__http *h)
{
  if (h == NULL)
    return;
  curl_multi_cleanup(h->multi);
  free(h);
}

static void req_free(struct ctkn__http *h, struct ctkn__http_req *r)
{
  curl_multi_remove_handle(h->multi, r->easy);
  curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->hdrs);
  free(r);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
  (void)p;
  (void)arg;
  return size * n;
}

static void set_options(CURL *c, const struct ctkn__http_post *p,
                        struct ctkn__http_req *r)
{
  curl_easy_setopt(c, CURLOPT_URL, p->url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, p->body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->len);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->hdrs);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "ctkn-notify/0.1");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)p->timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)p->connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_PRIVATE, r);
}

int ctkn__http_start(struct ctkn__http *h, const struct ctkn__http_post *p,
                     struct ctkn__http_req **out)
{
  char hdr[CTKN_SIGNATURE_BUF + 20];
  struct ctkn__http_req *r = calloc(1, sizeof(*r));

  *out = NULL;
  if (r == NULL)
    return CTKN_ENOMEM;
  if ((r->easy = curl_easy_init()) == NULL) {
    free(r);
    return CTKN_ENOMEM;
  }
  snprintf(hdr, sizeof(hdr), "Paddle-Signature: %s", p->signature);
  r->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  r->hdrs = curl_slist_append(r->hdrs, hdr);
  r->hdrs = curl_slist_append(r->hdrs, "Expect:");
  if (r->hdrs == NULL) {
    curl_easy_cleanup(r->easy);
    free(r);
    return CTKN_ENOMEM;
  }
  r->tag = p->tag;
  set_options(r->easy, p, r);
  if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
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

size_t ctkn__http_reap(struct ctkn__http *h, ctkn__http_done_cb done, void *arg)
{
  CURLMsg *m;
  int left, running;
  size_t n = 0;

  curl_multi_perform(h->multi, &running);
  while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
    struct ctkn__http_req *r;
    long code = 0;
    if (m->msg != CURLMSG_DONE)
      continue;
    CURLcode cc = m->data.result;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    void *tag = r->tag;
    req_free(h, r); /* m is not used past here: it belongs to the handle */
    done(arg, tag, cc == CURLE_OK ? (int)code : 0,
         cc == CURLE_OK ? NULL : curl_easy_strerror(cc));
    n++;
  }
  return n;
}

void ctkn__http_wait(struct ctkn__http *h, int timeout_ms)
{
  int numfds;

  curl_multi_poll(h->multi, NULL, 0, timeout_ms, &numfds);
}

void ctkn__http_wakeup(struct ctkn__http *h)
{
  curl_multi_wakeup(h->multi);
}
