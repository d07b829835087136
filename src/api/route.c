/*
 * route.c - a request's life, apart from the socket: what arrived, what
 * the path names, who may ask, which handler answers, and the access line
 * once it is done.
 *
 * Nothing here knows libmicrohttpd (http.c feeds a struct req and sends
 * its answer), so tests/unit/test_api.c drives all of it directly. The
 * order of the checks is part of the API: 404 and 405 before
 * authentication, authentication before the body's size, the body's
 * size before its content.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "ctkn/codec.h"

/* ---- what arrived ----------------------------------------------------- */

struct req *ctkn__api_req_new(struct server *s, void *conn, const char *method,
                              const char *url)
{
  struct req *r = calloc(1, sizeof(*r));

  if (r == NULL)
    return NULL;
  atomic_fetch_add(&s->inflight, 1);
  r->srv = s;
  r->conn = conn;
  r->t0_us = ctkn__api_mono_us();
  r->method = method;
  r->url = url;
  r->route = R_OTHER;
  r->query = r->qinline;
  if (ctkn_request_id(r->rid) != CTKN_OK)
    strcpy(r->rid, "00000000-0000-4000-8000-000000000000");
  ctkn__strlcpy(r->path, url, sizeof(r->path));
  return r;
}

/* Note that name held a NUL, unless something did already. */
static void nul_in(struct req *r, const char *name)
{
  if (r->nul_in[0] == '\0')
    ctkn__strlcpy(r->nul_in, name[0] != '\0' ? name : "?", sizeof(r->nul_in));
}

void ctkn__api_req_head(struct req *r, size_t raw_len, bool path_nul,
                        const char *query_nul, size_t head_bytes)
{
  r->target_len = raw_len;
  r->head_bytes = head_bytes;
  if (path_nul)
    nul_in(r, "path");
  if (query_nul != NULL)
    nul_in(r, query_nul);
}

bool ctkn__api_req_param(struct req *r, const char *key, size_t klen,
                         const char *value, size_t vlen)
{
  struct ctkn__api_param *p;

  if (klen != strlen(key) || (value != NULL && vlen != strlen(value)))
    nul_in(r, key);

  if (r->nquery < CTKN__API_QUERY_INLINE) {
    p = &r->qinline[r->nquery];
  } else {
    /* Past the inline ones (rare: a long status list), all move to the
     * heap, so that query stays one array. */
    if (r->qmore.len == 0 &&
        ctkn__buf_append(&r->qmore, r->qinline, sizeof(r->qinline)) != CTKN_OK)
      return false;
    if ((p = ctkn__buf_add(&r->qmore, sizeof(*p))) == NULL)
      return false;
    r->query = (struct ctkn__api_param *)(void *)r->qmore.data;
  }
  p->key = key;
  p->value = value;
  r->nquery++;
  return true;
}

void ctkn__api_req_header(struct req *r, const char *name, const char *value,
                          size_t len)
{
  const char **slot = NULL, *canon = NULL;

  if (len != strlen(value))
    nul_in(r, name);
  /* The first letter picks the one name it can be. */
  switch (name[0] | 0x20) {
  case 'a':
    if (strcasecmp(name, canon = "Authorization") == 0)
      slot = &r->hdr.authorization;
    break;
  case 'c':
    if (strcasecmp(name, "Content-Length") == 0) {
      slot = &r->hdr.content_length;
      r->n_content_length++; /* twice: conflicting framing (head_ok()) */
    }
    break;
  case 'i':
    if (strcasecmp(name, canon = "Idempotency-Key") == 0)
      slot = &r->hdr.idempotency_key;
    break;
  case 's':
    if (strcasecmp(name, canon = "Skip-Count") == 0)
      slot = &r->hdr.skip_count;
    break;
  case 't':
    if (strcasecmp(name, "Transfer-Encoding") == 0) {
      slot = &r->hdr.transfer_encoding;
      r->n_transfer_enc++;
    }
    break;
  case 'x':
    if (strcasecmp(name, canon = "X-Ctkn-Min-Position") == 0)
      slot = &r->hdr.min_position;
    break;
  default:
    break;
  }
  if (slot != NULL && *slot == NULL)
    *slot = value;
  else if (slot != NULL && canon != NULL && r->twice == NULL)
    /* A proxy may keep the last copy where this server would read the
     * first (a retry then carries another idempotency key): refused. */
    r->twice = canon;
}

const char *ctkn__api_arg(const struct req *r, const char *name)
{
  for (size_t i = 0; i < r->nquery; i++) {
    if (strcmp(r->query[i].key, name) == 0)
      return r->query[i].value;
  }
  return NULL;
}

char *ctkn__api_base_with(const struct server *s, const char *suffix)
{
  static const char tokens[] = "/client-tokens";
  size_t n = s->next_base != NULL ? strlen(s->next_base) : 0;
  char *b;

  if (n >= sizeof(tokens) - 1 &&
      strcmp(s->next_base + n - (sizeof(tokens) - 1), tokens) == 0)
    n -= sizeof(tokens) - 1;
  if ((b = malloc(n + strlen(suffix) + 1)) == NULL)
    return NULL;
  memcpy(b, s->next_base, n);
  strcpy(b + n, suffix);
  return b;
}

/* ---- answers ---------------------------------------------------------- */

void ctkn__api_answer_err(struct req *r, const struct ctkn_err *err)
{
  free(r->resp);
  r->status = ctkn_error_http_status(err->code);
  r->resp = ctkn_json_error(err, r->rid);
}

void ctkn__api_answer_code(struct req *r, int code, const char *fmt, ...)
{
  struct ctkn_err err = {.code = code};
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
  va_end(ap);
  ctkn__api_answer_err(r, &err);
}

void ctkn__api_answer_field(struct req *r, const char *field, const char *msg)
{
  struct ctkn_err err = {.code = CTKN_EINVAL};

  ctkn__strlcpy(err.field, field, sizeof(err.field));
  ctkn__strlcpy(err.msg, msg, sizeof(err.msg));
  ctkn__api_answer_err(r, &err);
}

void ctkn__api_answer_query(struct req *r, int rc, char *json,
                            const struct ctkn_err *err)
{
  if (rc != CTKN_OK) {
    free(json);
    ctkn__api_answer_err(r, err);
    return;
  }
  free(r->resp);
  r->status = 200;
  r->resp = json;
}

bool ctkn__api_answered(const struct req *r)
{
  return r->resp != NULL || r->status == 204 || r->body_static != NULL;
}

/* ---- query parameters ------------------------------------------------- */

/* The first parameter that is unknown, or repeated but not list; NULL
 * when every one is allowed. Past 8 distinct names, the next is refused
 * (allowed lists are shorter). */
static const char *bad_param(const struct req *r, const char *const *allowed,
                             const char *list)
{
  const char *seen[8];
  int nseen = 0;

  for (size_t k = 0; k < r->nquery; k++) {
    const char *key = r->query[k].key;
    bool known = false;
    for (int i = 0; allowed[i] != NULL; i++)
      known |= strcmp(allowed[i], key) == 0;
    if (known && list != NULL && strcmp(list, key) == 0)
      continue; /* status=active&status=revoked, as Paddle's Go SDK sends */
    for (int i = 0; i < nseen; i++) {
      if (strcmp(seen[i], key) == 0)
        known = false; /* repeated */
    }
    if (!known || nseen == 8)
      return key;
    seen[nseen++] = key;
  }
  return NULL;
}

bool ctkn__api_query_ok(struct req *r, const char *const *allowed,
                        const char *list)
{
  const char *bad = bad_param(r, allowed, list);
  char msg[200];
  int n;

  if (bad == NULL) {
    /* "?per_page" (no '='): not left to mean the default. */
    for (size_t k = 0; k < r->nquery; k++) {
      if (r->query[k].value == NULL) {
        ctkn__api_answer_field(r, r->query[k].key,
                               "must have a value (name=value)");
        return false;
      }
    }
    return true;
  }
  n = snprintf(msg, sizeof(msg),
               "unknown or repeated query parameter "
               "(allowed: ");
  for (int i = 0; allowed[i] != NULL && n > 0 && (size_t)n < sizeof(msg); i++)
    n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%s%s", i ? ", " : "",
                  allowed[i]);
  if (n > 0 && (size_t)n < sizeof(msg))
    snprintf(msg + n, sizeof(msg) - (size_t)n, "%s)",
             allowed[0] == NULL ? "none" : "");
  ctkn__api_answer_field(r, bad, msg);
  return false;
}

/* ---- suspend and resume ----------------------------------------------- */

void ctkn__api_suspend(struct req *r)
{
  r->suspended = true;
  r->srv->io->suspend(r);
}

void ctkn__api_wake(struct req *r)
{
  r->ready = true;
  r->srv->io->resume(r);
}

void ctkn__api_enqueue(struct server *s, struct ctkn__queue *q, struct req *r)
{
  ctkn__api_suspend(r);
  r->queued_us = ctkn__api_mono_us();
  if (atomic_load(&s->closing) || !ctkn__queue_push(q, &r->qnode)) {
    r->retry_after = 1;
    ctkn__api_answer_code(r, CTKN_EKAFKA, "the server is shutting down; retry");
    ctkn__api_wake(r);
  }
}

void ctkn__api_outage_init(struct ctkn__api_outage *o)
{
  memset(o, 0, sizeof(*o));
  o->failed_us = INT64_MIN;
}

bool ctkn__api_log_wait(int rc)
{
  return rc == CTKN_EKAFKA || rc == CTKN_ETIMEOUT || rc == CTKN_EAPPENDED;
}

bool ctkn__api_outage_note(struct ctkn__api_outage *o, const char *what,
                           int64_t started_us, int timeout_ms, int rc,
                           const struct ctkn_err *cause)
{
  int64_t now = ctkn__api_mono_us();

  if (timeout_ms <= 0)
    timeout_ms = 10000; /* the log's own default */
  if (!ctkn__api_log_wait(rc) || now - started_us < (int64_t)timeout_ms * 500)
    return false;
  o->failed_us = now;
  /* The fact a client acts on first: a retry is safe. The cause is cut
   * to fit. */
  ctkn__err(&o->why, rc == CTKN_EAPPENDED ? CTKN_EKAFKA : rc,
            "nothing was appended: %s failed after waiting on the log while "
            "this request waited behind it (%.150s)",
            what, cause->msg);
  return true;
}

bool ctkn__api_outage_refuses(const struct ctkn__api_outage *o, struct req *r)
{
  if (o->failed_us == INT64_MIN || r->queued_us > o->failed_us)
    return false;
  r->retry_after = ctkn__api_retry_after(o->why.code);
  ctkn__api_answer_err(r, &o->why);
  return true;
}

/* ---- routing ---------------------------------------------------------- */

static bool is_get(const char *method)
{
  return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* /notification-settings[/{id}]: what it names, and which methods it
 * takes. url is what follows the base. */
static enum route classify_dest(const char *url, const char *method, char *id,
                                const char **allow)
{
  bool get = is_get(method);

  if (*url == '\0' || strcmp(url, "/") == 0) {
    *allow = "GET, HEAD, POST";
    if (get)
      return R_DEST_LIST;
    return strcmp(method, "POST") == 0 ? R_DEST_CREATE : R_COUNT;
  }
  if (*url != '/' || url[1] == '\0' || strchr(url + 1, '/') != NULL)
    return R_OTHER;
  ctkn__strlcpy(id, url + 1, CTKN__API_ID_BUF);
  *allow = "GET, HEAD, PATCH, DELETE";
  if (get)
    return R_DEST_GET;
  if (strcmp(method, "PATCH") == 0)
    return R_DEST_UPDATE;
  return strcmp(method, "DELETE") == 0 ? R_DEST_DELETE : R_COUNT;
}

/* /api-keys[/{id}[/rotations]]; url is what follows the base. */
static enum route classify_keys(const char *url, const char *method, char *id,
                                const char **allow)
{
  const char *slash;

  if (*url == '\0' || strcmp(url, "/") == 0) {
    *allow = "GET, HEAD, POST";
    if (is_get(method))
      return R_KEY_LIST;
    return strcmp(method, "POST") == 0 ? R_KEY_CREATE : R_COUNT;
  }
  if (*url != '/' || url[1] == '\0')
    return R_OTHER;
  url++;
  if ((slash = strchr(url, '/')) != NULL) {
    if (strcmp(slash, "/rotations") != 0 || slash == url ||
        slash - url >= CTKN__API_ID_BUF)
      return R_OTHER;
    memcpy(id, url, (size_t)(slash - url));
    id[slash - url] = '\0';
    *allow = "POST";
    return strcmp(method, "POST") == 0 ? R_KEY_ROTATE : R_COUNT;
  }
  ctkn__strlcpy(id, url, CTKN__API_ID_BUF);
  *allow = "GET, HEAD, PATCH";
  if (is_get(method))
    return R_KEY_GET;
  return strcmp(method, "PATCH") == 0 ? R_KEY_UPDATE : R_COUNT;
}

/* /notifications[/{id}[/logs|/replay]]; url is what follows the base. */
static enum route classify_ntf(const char *url, const char *method, char *id,
                               const char **allow)
{
  const char *slash;
  bool get = is_get(method);

  if (*url == '\0' || strcmp(url, "/") == 0) {
    *allow = "GET, HEAD";
    return get ? R_NTF_LIST : R_COUNT;
  }
  if (*url != '/' || url[1] == '\0')
    return R_OTHER;
  url++;
  slash = strchr(url, '/');
  if ((size_t)(slash != NULL ? slash - url : (ptrdiff_t)strlen(url)) >=
      CTKN__API_ID_BUF)
    return R_OTHER;
  ctkn__strlcpy(id, url,
                slash != NULL ? (size_t)(slash - url) + 1 : CTKN__API_ID_BUF);
  if (slash == NULL) {
    *allow = "GET, HEAD";
    return get ? R_NTF_GET : R_COUNT;
  }
  if (slash == url)
    return R_OTHER;
  if (strcmp(slash, "/logs") == 0) {
    *allow = "GET, HEAD";
    return get ? R_NTF_LOGS : R_COUNT;
  }
  if (strcmp(slash, "/replay") == 0) {
    *allow = "POST";
    return strcmp(method, "POST") == 0 ? R_NTF_REPLAY : R_COUNT;
  }
  return R_OTHER;
}

/* /client-tokens[/{id}|/verify]; url is what follows the base. */
static enum route classify_tokens(const char *url, const char *method, char *id,
                                  const char **allow)
{
  bool get = is_get(method);

  if (*url == '\0' || strcmp(url, "/") == 0) {
    *allow = "GET, HEAD, POST";
    if (get)
      return R_LIST;
    return strcmp(method, "POST") == 0 ? R_CREATE : R_COUNT;
  }
  if (*url != '/')
    return R_OTHER;
  url++;
  const char *slash = strchr(url, '/');
  if (slash != NULL) {
    /* {id}/history, the only route two segments deep */
    if (strcmp(slash, "/history") != 0 || slash == url ||
        slash - url >= CTKN__API_ID_BUF)
      return R_OTHER;
    memcpy(id, url, (size_t)(slash - url));
    id[slash - url] = '\0';
    *allow = "GET, HEAD";
    return get ? R_HISTORY : R_COUNT;
  }
  if (strcmp(url, "verify") == 0) {
    *allow = "GET, HEAD";
    return get ? R_VERIFY : R_COUNT;
  }
  ctkn__strlcpy(id, url, CTKN__API_ID_BUF);
  *allow = "GET, HEAD, PATCH";
  if (get)
    return R_GET;
  return strcmp(method, "PATCH") == 0 ? R_UPDATE : R_COUNT;
}

/* /ui, /ui/ and /ui/{file}: one segment at most, its name in id ("" for
 * the page itself). */
static enum route classify_ui(const char *url, const char *method, char *id,
                              const char **allow)
{
  const char *name = url[3] == '\0' ? "" : url + 4;

  if (strchr(name, '/') != NULL || strlen(name) >= CTKN__API_ID_BUF)
    return R_OTHER;
  *allow = "GET, HEAD";
  if (!is_get(method))
    return R_COUNT;
  strcpy(id, name);
  return R_UI;
}

/* What the path names (R_OTHER: nothing; R_COUNT: not with this method),
 * its ID segment, and which methods it takes. */
static enum route classify(const char *url, const char *method, char *id,
                           const char **allow)
{
  static const char base[] = "/client-tokens";
  static const char dest[] = "/notification-settings";
  static const char keys[] = "/api-keys";
  static const char ntf[] = "/notifications";

  *allow = NULL;
  if (strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0) {
    *allow = "GET, HEAD";
    if (!is_get(method))
      return R_COUNT;
    return url[1] == 'h' ? R_HEALTHZ : R_METRICS;
  }
  if (strcmp(url, "/ui") == 0 || strncmp(url, "/ui/", 4) == 0)
    return classify_ui(url, method, id, allow);
  if (strcmp(url, "/events") == 0 || strcmp(url, "/event-types") == 0) {
    *allow = "GET, HEAD";
    if (!is_get(method))
      return R_COUNT;
    return url[6] == 's' ? R_EVENTS : R_EVENT_TYPES;
  }
  if (strncmp(url, dest, sizeof(dest) - 1) == 0)
    return classify_dest(url + sizeof(dest) - 1, method, id, allow);
  if (strncmp(url, keys, sizeof(keys) - 1) == 0 &&
      (url[sizeof(keys) - 1] == '\0' || url[sizeof(keys) - 1] == '/'))
    return classify_keys(url + sizeof(keys) - 1, method, id, allow);
  if (strncmp(url, ntf, sizeof(ntf) - 1) == 0 &&
      (url[sizeof(ntf) - 1] == '\0' || url[sizeof(ntf) - 1] == '/'))
    return classify_ntf(url + sizeof(ntf) - 1, method, id, allow);
  if (strncmp(url, base, sizeof(base) - 1) != 0)
    return R_OTHER;
  return classify_tokens(url + sizeof(base) - 1, method, id, allow);
}

/* The path as a 404 names it: printable ASCII but quotes and backslashes
 * (what the answer has always said; the access line escapes instead). */
static void printable(char *dst, size_t cap, const char *src)
{
  size_t j = 0;

  for (size_t i = 0; src[i] != '\0' && j + 1 < cap; i++) {
    unsigned char ch = (unsigned char)src[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\' && ch < 0x7f)
      dst[j++] = (char)ch;
  }
  dst[j] = '\0';
}

/* Route r; false when it was answered (404, 405). */
static bool route(struct req *r)
{
  const char *allow;

  r->route = classify(r->url, r->method, r->id, &allow);
  if (r->route == R_OTHER) {
    char path[CTKN__API_PATH_LOG];
    printable(path, sizeof(path), r->url);
    ctkn__api_answer_code(r, CTKN_ENOTFOUND, "no such resource: %.60s", path);
    return false;
  }
  if (r->route == R_COUNT) {
    r->route = R_OTHER;
    r->allow = allow;
    ctkn__api_answer_code(r, CTKN_EMETHOD,
                          "%.16s is not allowed here; allowed: %s", r->method,
                          allow);
    return false;
  }
  return true;
}

/*
 * What no route may see, refused before routing: a head over the bounds
 * (414, 431), framing two ways at once (400; the request smuggled behind
 * it must never be read, so the connection closes), and a NUL byte in the
 * path, a parameter or a header (400 naming it: C strings would cut the
 * value there, so /client-tokens/ID%00zzz would name ID). false when r
 * was answered.
 */
static bool head_ok(struct req *r)
{
  if (r->target_len > CTKN_SERVER_MAX_URI) {
    r->close = true;
    ctkn__api_answer_code(r, CTKN_EURITOOLONG,
                          "the request target is longer than %d bytes",
                          CTKN_SERVER_MAX_URI);
    return false;
  }
  if (r->head_bytes > CTKN_SERVER_MAX_HEADERS) {
    r->close = true;
    ctkn__api_answer_code(r, CTKN_EHEADERSTOOLARGE,
                          "the request line and headers are larger than %d "
                          "bytes",
                          CTKN_SERVER_MAX_HEADERS);
    return false;
  }
  if (r->n_content_length > 1 || r->n_transfer_enc > 1 ||
      (r->n_content_length > 0 && r->n_transfer_enc > 0)) {
    r->close = true;
    ctkn__api_answer_code(r, CTKN_EBADREQ,
                          "conflicting framing: send one Content-Length or "
                          "one Transfer-Encoding, not both or several");
    return false;
  }
  /* Only chunked is a transfer coding libmicrohttpd reads; with any
   * other it would wait for a body it cannot frame (RFC 9112 6.1). */
  if (r->hdr.transfer_encoding != NULL &&
      strcasecmp(r->hdr.transfer_encoding, "chunked") != 0) {
    r->close = true;
    ctkn__api_answer_code(r, CTKN_EBADREQ,
                          "Transfer-Encoding must be chunked (or send a "
                          "Content-Length): no other transfer coding is "
                          "supported");
    return false;
  }
  if (r->twice != NULL) {
    ctkn__api_answer_field(r, r->twice, "must be sent once, not twice");
    return false;
  }
  if (r->nul_in[0] != '\0') {
    ctkn__api_answer_field(r, r->nul_in,
                           "must not contain a NUL byte (raw or %00)");
    return false;
  }
  return true;
}

void ctkn__api_begin(struct server *s, struct req *r)
{
  struct ctkn_err err = {0};
  unsigned need;

  if (!head_ok(r) || !route(r) || (need = ctkn__api_route_perm(r->route)) == 0)
    return;
  if (ctkn__api_authenticate(s, r, need, &err) != CTKN_OK) {
    ctkn__api_answer_err(r, &err);
    return;
  }
  if (need == CTKN_PERM_SETTING_WRITE && r->route != R_NTF_REPLAY &&
      !ctkn__api_dest_begin(s, r))
    return;
  if ((r->route == R_KEY_CREATE || r->route == R_KEY_UPDATE ||
       r->route == R_KEY_ROTATE) &&
      !ctkn__api_keys_begin(s, r))
    return;
  if (need == CTKN_PERM_TOKEN_WRITE && !ctkn__api_tokens_begin(s, r))
    return;
  const char *cl = r->hdr.content_length;
  if (cl != NULL && strtoull(cl, NULL, 10) > CTKN_SERVER_MAX_BODY)
    ctkn__api_answer_code(r, CTKN_ETOOLARGE,
                          "the request body is larger than %d bytes",
                          CTKN_SERVER_MAX_BODY);
}

bool ctkn__api_body(struct req *r, const char *data, size_t n)
{
  if (ctkn__api_answered(r) || r->too_large)
    return true; /* answered or refused: drain the rest */
  if (r->route != R_CREATE && r->route != R_UPDATE &&
      r->route != R_DEST_CREATE && r->route != R_DEST_UPDATE &&
      r->route != R_KEY_CREATE && r->route != R_KEY_UPDATE &&
      r->route != R_KEY_ROTATE) {
    ctkn__api_answer_code(r, CTKN_EBADREQ, "this request takes no body");
    return true;
  }
  if (r->body.len + n > CTKN_SERVER_MAX_BODY) {
    r->too_large = true;
    return true;
  }
  return ctkn__buf_append(&r->body, data, n) == CTKN_OK;
}

void ctkn__api_dispatch(struct server *s, struct req *r)
{
  if (ctkn__api_answered(r))
    return;
  switch (r->route) {
  case R_CREATE:
  case R_UPDATE:
    ctkn__api_tokens_write(s, r);
    return;
  case R_GET:
  case R_LIST:
  case R_VERIFY:
  case R_HISTORY:
    if (!ctkn__api_position_wait(s, r))
      ctkn__api_tokens_read(s, r);
    return;
  case R_DEST_CREATE:
  case R_DEST_UPDATE:
  case R_DEST_DELETE:
    ctkn__api_dest_write(s, r);
    return;
  case R_DEST_LIST:
  case R_DEST_GET:
    ctkn__api_dest_read(s, r);
    return;
  case R_KEY_LIST:
  case R_KEY_GET:
    ctkn__api_keys_read(s, r);
    return;
  case R_KEY_CREATE:
  case R_KEY_UPDATE:
  case R_KEY_ROTATE:
    ctkn__api_keys_write(s, r);
    return;
  case R_HEALTHZ:
    ctkn__api_healthz(s, r);
    return;
  case R_METRICS:
    ctkn__api_metrics(s, r);
    return;
  case R_UI:
    ctkn__api_ui(s, r);
    return;
  case R_EVENTS:
  case R_EVENT_TYPES:
    if (!ctkn__api_position_wait(s, r))
      ctkn__api_events_read(s, r);
    return;
  case R_NTF_LIST:
  case R_NTF_GET:
  case R_NTF_LOGS:
    ctkn__api_ntfs_read(s, r);
    return;
  case R_NTF_REPLAY:
    ctkn__api_ntfs_replay(s, r);
    return;
  default:
    ctkn__api_answer_code(r, CTKN_EINTERNAL, "unrouted request");
    return;
  }
}

/* ---- completion ------------------------------------------------------- */

/* v in decimal at p, at least width digits (zeros in front); returns
 * the end. By hand: printf cost the access line more than all the rest. */
static char *put_decimal(char *p, uint64_t v, int width)
{
  char d[20];
  int n = 0;

  do {
    d[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0 || n < width);
  while (n > 0)
    *p++ = d[--n];
  return p;
}

/* ,"status":S,"duration_ms":MS.UUU (no floating point: it was a tenth of
 * a read's time). */
static int put_timing(struct ctkn__buf *f, int status, int64_t us)
{
  char t[80], *p = t;

  p = stpcpy(p, ",\"status\":");
  p = put_decimal(p, (uint64_t)(status > 0 ? status : 0), 1);
  p = stpcpy(p, ",\"duration_ms\":");
  p = put_decimal(p, (uint64_t)us / 1000, 1);
  *p++ = '.';
  p = put_decimal(p, (uint64_t)us % 1000, 3);
  return ctkn__buf_append(f, t, (size_t)(p - t));
}

/* The access line: {"time","level","component","msg":"request",
 * "request_id","method","path","route","status","duration_ms","key"} and
 * "aborted" when the connection ended early. Every string is escaped. */
static void access_line(const struct req *r, int64_t us, const char *aborted)
{
  struct ctkn__buf f = CTKN__BUF_INIT;
  char method[11];
  int rc;

  if (!ctkn__diag_on(CTKN_DIAG_INFO))
    return;
  ctkn__strlcpy(method, r->method, sizeof(method));
  rc = ctkn__buf_reserve(&f, 320);
  if (rc == CTKN_OK)
    rc = ctkn__buf_json_member(&f, "request_id", r->rid);
  if (rc == CTKN_OK)
    rc = ctkn__buf_json_member(&f, "method", method);
  if (rc == CTKN_OK)
    rc = ctkn__buf_json_member(&f, "path", r->path);
  if (rc == CTKN_OK)
    rc = ctkn__buf_json_member(&f, "route", ctkn__api_route_name(r->route));
  if (rc == CTKN_OK)
    rc = put_timing(&f, r->status, us);
  if (rc == CTKN_OK)
    rc = ctkn__buf_json_member(&f, "key", r->key_name);
  if (rc == CTKN_OK && aborted != NULL)
    rc = ctkn__buf_json_member(&f, "aborted", aborted);
  /* A success's line may wait to be written with others; an error's is
   * written at once, as the request ID a client was shown is looked up. */
  if (rc == CTKN_OK && r->status >= 200 && r->status < 400)
    ctkn__diag_fields_later(CTKN_DIAG_INFO, "http", "request", f.data);
  else if (rc == CTKN_OK)
    ctkn__diag_fields(CTKN_DIAG_INFO, "http", "request", f.data);
  ctkn__buf_free(&f);
}

void ctkn__api_complete(struct server *s, struct req *r, const char *aborted)
{
  int64_t us = ctkn__api_mono_us() - r->t0_us;

  ctkn__api_metrics_add(&s->m, r->route, r->status, us);
  access_line(r, us, aborted);
  free(r->cmd);
  free(r->dcmd);
  free(r->kcmd);
  free(r->resp);
  ctkn__buf_free(&r->body);
  ctkn__buf_free(&r->qmore);
  free(r);
  atomic_fetch_sub(&s->inflight, 1);
}
