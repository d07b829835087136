/*
 * ui.c - /ui/: the operator's dashboard, a static page and its script
 * and style, embedded at build time (src/ui/assets.h).
 *
 * The page holds an API key (in sessionStorage) and calls this same
 * server's API with it, so every /ui/ answer carries headers that keep it
 * to itself: a Content-Security-Policy that runs only this server's
 * script (no inline script, no eval), lets it talk only to this origin
 * (connect-src 'self') and submit no form anywhere; no framing (against
 * clickjacking a revoke); no Referer leaving the page; no MIME sniffing.
 * The files need no key: the data comes from the API, which checks it.
 */
#include <string.h>

#include "api/api_int.h"
#include "ui/assets.h"

const char *const ctkn__api_ui_headers[] = {
    "Content-Security-Policy",
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Frame-Options",
    "DENY",
    "Referrer-Policy",
    "no-referrer",
    "X-Content-Type-Options",
    "nosniff",
    "Cross-Origin-Opener-Policy",
    "same-origin",
    "Cache-Control",
    "no-store",
    NULL};

void ctkn__api_ui(struct server *s, struct req *r)
{
  static const char *const none[] = {NULL};
  const struct ctkn__ui_file *f;
  const char *ctype = NULL;

  (void)s;
  r->headers = ctkn__api_ui_headers;
  if (!ctkn__api_query_ok(r, none, NULL))
    return;
  f = ctkn__ui_file(r->id[0] != '\0' ? r->id : "index.html", &ctype);
  if (f == NULL) {
    ctkn__api_answer_code(r, CTKN_ENOTFOUND, "no such dashboard file: %.40s",
                          r->id);
    return;
  }
  r->status = 200;
  r->ctype = ctype;
  r->body_static = f->data;
  r->body_static_len = f->len;
}
