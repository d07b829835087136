/*
 * json.c - the API's JSON for tokens: Paddle's entity, webhook, list and
 * error shapes, verify's answer, and the create/update request bodies;
 * and the helpers every JSON file of the codec shares (json_int.h).
 * Notification settings and notifications are json_settings.c's, ctkn's
 * operational documents json_ops.c's, the API keys' apikey.c's.
 *
 * Output is compact ({"a":1,"b":2}), in Paddle's field order, with UTF-8
 * emitted raw (JSON_ENSURE_ASCII is off) and only what JSON requires
 * escaped. Renderers return NULL only when out of memory: text that is not
 * valid UTF-8 (a truncated err->msg, a corrupt record) is rendered with
 * U+FFFD in place of each bad byte rather than failing, because jansson
 * refuses to build or dump such a string.
 *
 * Request bodies are parsed strictly: duplicate keys, unknown keys, wrong
 * types and "\u0000" are refused, and the values go through the
 * ctkn_command_set_* setters so the CLI and the API share one set of rules.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/token.h"
#include "internal.h"
#include "json_int.h"

/* 15 significant digits: a latency of 5006.408 ms prints so, not as
 * 5006.4080000000004 (the 17 digits of the nearest double). */
#define DUMP_FLAGS                                                             \
  (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))
#define DOC_URL     "https://developer.paddle.com/v1/errors/shared/"
#define DOC_URL_NTF "https://developer.paddle.com/v1/errors/notifications/"

/* This file's short names for the helpers it shares (json_int.h). */
#define jstr            ctkn__json_str
#define jtime           ctkn__json_time
#define jname           ctkn__json_name
#define set             ctkn__json_set
#define meta_obj        ctkn__json_meta
#define dump            ctkn__json_dump
#define pair            ctkn__json_pair
#define data_doc        ctkn__json_doc
#define checked         ctkn__json_checked
#define load_object     ctkn__json_load_object
#define utf8_copy_trunc ctkn__json_field_name

/* ---- UTF-8 helpers --------------------------------------------------- */

/* ctkn__utf8_seq() (util/buf.c), with ASCII answered here: most text is
 * ASCII, and the call is out of line. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
  return s[0] < 0x80 ? 1 : ctkn__utf8_seq(s, n);
}

/*
 * A JSON string for the text at s: at most max bytes, stopping at the
 * first NUL (the entity's fields are fixed-size arrays that a corrupt
 * record might not terminate). Invalid bytes become U+FFFD. NULL only when
 * out of memory.
 */
json_t *ctkn__json_str(const char *s, size_t max)
{
  return ctkn__json_bytes(s, strnlen(s, max));
}

json_t *ctkn__json_bytes(const char *s, size_t n)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t i, k, o = 0;
  char *fixed;
  json_t *j;

  for (i = 0; i < n; i += k)
    if ((k = utf8_seq(u + i, n - i)) == 0)
      break;
  if (i == n)
    return json_stringn_nocheck(s, n);

  /* Each bad byte grows to the 3 bytes of U+FFFD. */
  fixed = malloc(3 * n + 1);
  if (fixed == NULL)
    return NULL;
  for (i = 0; i < n; i += k) {
    k = utf8_seq(u + i, n - i);
    if (k == 0) {
      memcpy(fixed + o, "\xEF\xBF\xBD", 3);
      o += 3;
      k = 1;
    } else {
      memcpy(fixed + o, s + i, k);
      o += k;
    }
  }
  j = json_stringn_nocheck(fixed, o);
  free(fixed);
  return j;
}

/* Copy the key src into dst (dstsz > 0), cut at a code point boundary so a
 * long key never leaves half a character in err->field. src is valid UTF-8
 * (jansson checked it). */
void ctkn__json_field_name(char *dst, size_t dstsz, const char *src)
{
  size_t n = strlen(src);

  if (n >= dstsz) {
    n = dstsz - 1;
    while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
      n--;
  }
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* ---- rendering ------------------------------------------------------- */

/* A time as RFC 3339 with 6 fractional digits. An instant ctkn_time_format
 * cannot write (before 1970, after 9999) becomes null rather than failing
 * the whole document; ctkn_token_check() never lets one through. */
json_t *ctkn__json_time(int64_t us)
{
  char buf[CTKN_TIME_BUF];

  if (ctkn_time_format(us, buf) != CTKN_OK)
    return json_null();
  return json_stringn_nocheck(buf, strnlen(buf, sizeof(buf)));
}

/* A string from a table (status, event type), or null when unknown. */
json_t *ctkn__json_name(const char *s)
{
  return s != NULL ? json_string(s) : json_null();
}

/* json_object_set_new() steals value even when it fails, and fails on a
 * NULL value, so a chain of these needs one error check and no cleanup. */
int ctkn__json_set(json_t *obj, const char *key, json_t *value)
{
  return json_object_set_new(obj, key, value);
}

static json_t *token_obj(const struct ctkn_token *t)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= set(o, "id", jstr(t->id, sizeof(t->id)));
  rc |= set(o, "token", jstr(t->token, sizeof(t->token)));
  rc |= set(o, "name", jstr(t->name, sizeof(t->name)));
  rc |= set(o, "description",
            t->has_description ? jstr(t->description, sizeof(t->description))
                               : json_null());
  rc |= set(o, "status", jname(ctkn_status_str(t->status)));
  rc |= set(o, "created_at", jtime(t->created_at));
  rc |= set(o, "updated_at", jtime(t->updated_at));
  rc |= set(o, "revoked_at",
            t->revoked_at != 0 ? jtime(t->revoked_at) : json_null());
  if (rc != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/*
 * {"request_id": ...} plus, when extra is not NULL, one more member
 * (the list's "pagination"); takes ownership of extra. A NULL request_id
 * gets a fresh one, so that no response goes out without an ID to quote.
 */
json_t *ctkn__json_meta(const char *request_id, json_t *extra)
{
  json_t *o = json_object();
  char rid[37];
  int rc = 0;

  if (o == NULL) {
    json_decref(extra);
    return NULL;
  }
  if (request_id == NULL && ctkn_request_id(rid) == CTKN_OK)
    request_id = rid;
  rc |= set(o, "request_id",
            request_id != NULL ? jstr(request_id, SIZE_MAX) : json_null());
  if (extra != NULL)
    rc |= set(o, "pagination", extra);
  if (rc != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* Dump and release root (NULL passes through, for OOM). */
char *ctkn__json_dump(json_t *root)
{
  char *s;

  if (root == NULL)
    return NULL;
  s = json_dumps(root, DUMP_FLAGS);
  json_decref(root);
  return s;
}

char *ctkn__json_envelope(const char *event_id, const char *event_type,
                          int64_t occurred_at, json_t *data)
{
  json_t *o = data != NULL ? json_object() : NULL;
  int rc = 0;

  if (o == NULL) {
    json_decref(data);
    return NULL;
  }
  rc |= ctkn__json_set(o, "event_id", ctkn__json_str(event_id, SIZE_MAX));
  rc |= ctkn__json_set(o, "event_type", ctkn__json_name(event_type));
  rc |= ctkn__json_set(o, "occurred_at", ctkn__json_time(occurred_at));
  rc |= ctkn__json_set(o, "notification_id", json_null());
  rc |= ctkn__json_set(o, "data", data);
  return ctkn__json_dump(ctkn__json_checked(o, rc));
}

char *ctkn_json_envelope_notified(const char *envelope, size_t len,
                                  const char *notification_id)
{
  json_t *o = json_loadb(envelope, len, 0, NULL);

  if (!json_is_object(o) || json_object_get(o, "notification_id") == NULL ||
      ctkn__json_set(o, "notification_id",
                     ctkn__json_str(notification_id, SIZE_MAX)) != 0) {
    json_decref(o);
    return NULL;
  }
  return ctkn__json_dump(o);
}

/* {first: a, second: b}; takes ownership of a and b, even on failure. */
json_t *ctkn__json_pair(const char *first, json_t *a, const char *second,
                        json_t *b)
{
  json_t *o = json_object();
  int rc;

  if (o == NULL) {
    json_decref(a);
    json_decref(b);
    return NULL;
  }
  rc = set(o, first, a);
  rc |= set(o, second, b);
  if (rc != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

int ctkn_request_id(char out[37])
{
  /* A request ID is unique, not secret: draw the OS's random bytes a
   * page at a time per thread rather than one syscall per ID. */
  static _Thread_local uint8_t pool[4096];
  static _Thread_local size_t left;
  uint8_t b[16];

  if (left < sizeof(b)) {
    int rc = ctkn_random(pool, sizeof(pool));
    if (rc != CTKN_OK) {
      out[0] = '\0';
      return rc;
    }
    left = sizeof(pool);
  }
  memcpy(b, pool + sizeof(pool) - left, sizeof(b));
  left -= sizeof(b);
  b[6] = (uint8_t)((b[6] & 0x0F) | 0x40); /* version 4 */
  b[8] = (uint8_t)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant: 10xx */
  /* 8-4-4-4-12 hex digits, by hand: snprintf was 3% of a GET's time. */
  static const char hex[] = "0123456789abcdef";
  char *p = out;
  for (size_t i = 0; i < sizeof(b); i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *p++ = '-';
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 15];
  }
  *p = '\0';
  return CTKN_OK;
}

char *ctkn_json_token(const struct ctkn_token *t)
{
  return dump(token_obj(t));
}

/* ---- the hot shapes, written straight into a buffer -------------------
 *
 * A GET answers {"data": entity, "meta": ...} tens of thousands of times a
 * second; building a jansson tree for it cost a fifth of the server's time.
 * These write the same bytes jansson would (JSON_COMPACT, members in
 * order, jansson's escapes, invalid UTF-8 as U+FFFD, as jstr()); the unit
 * tests compare the two on hostile input.
 */

/* A document being written into the one growable buffer. After a failed
 * append the rest are skipped and the document is lost, so the writers
 * need no error checks of their own. */
struct sbuf {
  struct ctkn__buf b;
  bool oom;
};

/* An empty document with room for the usual answer: one allocation. */
static void sb_init(struct sbuf *b)
{
  *b = (struct sbuf){CTKN__BUF_INIT, false};
  b->oom = ctkn__buf_reserve(&b->b, 511) != CTKN_OK;
}

/* ctkn__buf_append() with its common case inline: a GET's answer is some
 * forty appends, and three calls into util/buf.c for each cost a quarter
 * of the rendering. The buffer's invariant (a NUL at data[len]) holds. */
static void sb_put(struct sbuf *b, const void *s, size_t n)
{
  struct ctkn__buf *x = &b->b;

  if (b->oom)
    return;
  if (n + 1 > x->cap - x->len && ctkn__buf_reserve(x, n) != CTKN_OK) {
    b->oom = true;
    return;
  }
  memcpy(x->data + x->len, s, n);
  x->len += n;
  x->data[x->len] = '\0';
}

/* The document: caller owns it, release with free(). NULL after a failed
 * append. */
static char *sb_done(struct sbuf *b)
{
  if (b->oom) {
    ctkn__buf_free(&b->b);
    return NULL;
  }
  return ctkn__buf_detach(&b->b);
}

#define SB_LIT(b, lit) sb_put((b), (lit), sizeof(lit) - 1)

/* A JSON string: at most max bytes of s, to the first NUL. */
static void sb_str(struct sbuf *b, const char *s, size_t max)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strnlen(s, max), i = 0, run = 0, k;

  SB_LIT(b, "\"");
  while (i < n) {
    unsigned char c = u[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      i++;
      run++;
      continue;
    }
    if (c >= 0x80 && (k = utf8_seq(u + i, n - i)) != 0) {
      i += k;
      run += k;
      continue;
    }
    sb_put(b, s + i - run, run);
    run = 0;
    char esc[8];
    switch (c) {
    case '"':
      SB_LIT(b, "\\\"");
      break;
    case '\\':
      SB_LIT(b, "\\\\");
      break;
    case '\b':
      SB_LIT(b, "\\b");
      break;
    case '\f':
      SB_LIT(b, "\\f");
      break;
    case '\n':
      SB_LIT(b, "\\n");
      break;
    case '\r':
      SB_LIT(b, "\\r");
      break;
    case '\t':
      SB_LIT(b, "\\t");
      break;
    default:
      if (c < 0x20) {
        snprintf(esc, sizeof(esc), "\\u%04X", c);
        sb_put(b, esc, 6);
      } else {
        SB_LIT(b, "\xEF\xBF\xBD"); /* not UTF-8: U+FFFD */
      }
    }
    i++;
  }
  sb_put(b, s + i - run, run);
  SB_LIT(b, "\"");
}

static void sb_time(struct sbuf *b, int64_t us)
{
  char buf[CTKN_TIME_BUF];

  if (ctkn_time_format(us, buf) != CTKN_OK) {
    SB_LIT(b, "null");
    return;
  }
  sb_str(b, buf, sizeof(buf));
}

static void sb_name(struct sbuf *b, const char *s)
{
  if (s == NULL)
    SB_LIT(b, "null");
  else
    sb_str(b, s, SIZE_MAX);
}

static void sb_entity(struct sbuf *b, const struct ctkn_token *t)
{
  SB_LIT(b, "{\"id\":");
  sb_str(b, t->id, sizeof(t->id));
  SB_LIT(b, ",\"token\":");
  sb_str(b, t->token, sizeof(t->token));
  SB_LIT(b, ",\"name\":");
  sb_str(b, t->name, sizeof(t->name));
  SB_LIT(b, ",\"description\":");
  if (t->has_description)
    sb_str(b, t->description, sizeof(t->description));
  else
    SB_LIT(b, "null");
  SB_LIT(b, ",\"status\":");
  sb_name(b, ctkn_status_str(t->status));
  SB_LIT(b, ",\"created_at\":");
  sb_time(b, t->created_at);
  SB_LIT(b, ",\"updated_at\":");
  sb_time(b, t->updated_at);
  SB_LIT(b, ",\"revoked_at\":");
  if (t->revoked_at != 0)
    sb_time(b, t->revoked_at);
  else
    SB_LIT(b, "null");
  SB_LIT(b, "}");
}

/* Close {"data": ... with "meta" and return the buffer (NULL if OOM);
 * with ack >= 0, meta also says "acknowledged" (a create --batch line). */
static char *sb_meta_end_ack(struct sbuf *b, const char *request_id, int ack)
{
  char rid[37];

  if (request_id == NULL && ctkn_request_id(rid) == CTKN_OK)
    request_id = rid;
  SB_LIT(b, ",\"meta\":{\"request_id\":");
  if (request_id != NULL)
    sb_str(b, request_id, SIZE_MAX);
  else
    SB_LIT(b, "null");
  if (ack > 0)
    SB_LIT(b, ",\"acknowledged\":true");
  else if (ack == 0)
    SB_LIT(b, ",\"acknowledged\":false");
  SB_LIT(b, "}}");
  return sb_done(b);
}

static char *sb_meta_end(struct sbuf *b, const char *request_id)
{
  return sb_meta_end_ack(b, request_id, -1);
}

char *ctkn_json_data(const struct ctkn_token *t, const char *request_id)
{
  struct sbuf b;

  sb_init(&b);
  SB_LIT(&b, "{\"data\":");
  sb_entity(&b, t);
  return sb_meta_end(&b, request_id);
}

/* Written without jansson, as the data document is: `ctkn notify` renders
 * one per notification and `ctkn tail` one per event. */
char *ctkn_json_event(const struct ctkn_event *ev)
{
  struct sbuf b;

  sb_init(&b);
  SB_LIT(&b, "{\"event_id\":");
  sb_str(&b, ev->event_id, sizeof(ev->event_id));
  SB_LIT(&b, ",\"event_type\":");
  sb_name(&b, ctkn_event_type_str(ev->type));
  SB_LIT(&b, ",\"occurred_at\":");
  sb_time(&b, ev->occurred_at);
  SB_LIT(&b, ",\"notification_id\":");
  sb_str(&b, ev->notification_id, sizeof(ev->notification_id));
  SB_LIT(&b, ",\"data\":");
  sb_entity(&b, &ev->data);
  SB_LIT(&b, "}");
  return sb_done(&b);
}

char *ctkn_json_list(const struct ctkn_token *items, size_t n,
                     const struct ctkn_pagination *page, const char *request_id)
{
  json_t *data = json_array();
  json_t *pg = json_object();
  size_t i;
  int rc = 0;

  if (data == NULL || pg == NULL)
    goto oom;
  for (i = 0; items != NULL && i < n; i++)
    if (json_array_append_new(data, token_obj(&items[i])) != 0)
      goto oom;

  /* Without a page description, the list is one whole page. */
  rc |= set(pg, "per_page", json_integer(page ? page->per_page : (int)n));
  rc |= set(pg, "next",
            page && page->next ? jstr(page->next, SIZE_MAX) : json_null());
  rc |= set(pg, "has_more", json_boolean(page && page->has_more));
  if (page != NULL && page->estimated_total >= 0)
    rc |= set(pg, "estimated_total", json_integer(page->estimated_total));
  if (rc != 0)
    goto oom;
  json_t *meta = meta_obj(request_id, pg);
  if (meta != NULL && page != NULL && page->stale != NULL &&
      set(meta, "stale", jstr(page->stale, SIZE_MAX)) != 0) {
    json_decref(meta);
    meta = NULL;
  }
  return dump(pair("data", data, "meta", meta));

oom:
  json_decref(data);
  json_decref(pg);
  return NULL;
}

/* [{"field": ..., "message": ...}]: Paddle's per-field list. */
static json_t *field_errors(const struct ctkn_err *err, json_t *message)
{
  json_t *list = json_array();
  json_t *item =
      pair("field", jstr(err->field, sizeof(err->field)), "message", message);

  if (list == NULL) {
    json_decref(item);
    return NULL;
  }
  /* append_new() releases item even when it fails (item NULL included). */
  if (json_array_append_new(list, item) != 0) {
    json_decref(list);
    return NULL;
  }
  return list;
}

/* The error envelope; with ack >= 0, meta also says "acknowledged". */
static char *error_doc(const struct ctkn_err *err, const char *request_id,
                       int ack)
{
  /* A missing or success code cannot be reported as a failure's cause. */
  int code = err != NULL && err->code < 0 ? err->code : CTKN_EINTERNAL;
  const char *api = ctkn_error_code(code);
  bool has_msg = err != NULL && err->msg[0] != '\0';
  char url[sizeof(DOC_URL_NTF) + 64];
  json_t *e = json_object();
  int rc = 0;

  if (e == NULL)
    return NULL;
  /* Paddle files its notification errors apart from the shared ones. */
  snprintf(url, sizeof(url), "%s%s",
           code == CTKN_EMAXACTIVE || code == CTKN_ECANNOTREPLAY ||
                   code == CTKN_EREPLAYORIGIN
               ? DOC_URL_NTF
               : DOC_URL,
           api);
  rc |= set(
      e, "type",
      json_string(ctkn_error_http_status(code) >= 500 || code == CTKN_ERATELIMIT
                      ? "api_error" /* as Paddle types a 429 */
                      : "request_error"));
  rc |= set(e, "code", json_string(api));
  rc |= set(e, "detail",
            has_msg ? jstr(err->msg, sizeof(err->msg))
                    : json_string(ctkn_strerror(code)));
  rc |= set(e, "documentation_url", json_string(url));
  if (err != NULL && (err->field[0] != '\0' || code == CTKN_EINVAL))
    rc |= set(e, "errors",
              field_errors(err, has_msg ? jstr(err->msg, sizeof(err->msg))
                                        : json_string(ctkn_strerror(code))));
  json_t *meta = rc == 0 ? meta_obj(request_id, NULL) : NULL;
  if (meta != NULL && ack >= 0 && set(meta, "acknowledged", json_boolean(ack)))
    rc = -1;
  if (rc != 0 || meta == NULL) {
    json_decref(e);
    json_decref(meta);
    return NULL;
  }
  return dump(pair("error", e, "meta", meta));
}

char *ctkn_json_error(const struct ctkn_err *err, const char *request_id)
{
  return error_doc(err, request_id, -1);
}

char *ctkn_json_line_answer(const struct ctkn_token *t,
                            const struct ctkn_err *err, bool acknowledged,
                            const char *request_id)
{
  struct sbuf b;

  if (t == NULL)
    return error_doc(err, request_id, acknowledged);
  sb_init(&b);
  SB_LIT(&b, "{\"data\":");
  sb_entity(&b, t);
  return sb_meta_end_ack(&b, request_id, acknowledged);
}

/* ---- request parsing ------------------------------------------------- */

/*
 * The top-level member whose value holds byte `at` of s, into field
 * (fieldsz > 0; "" when at is not inside a member's value). s is a JSON
 * text that jansson has lexed without fault up to `at`, so a small scan
 * suffices: strings (with their escapes), nesting, and at depth 1 the
 * string that follows '{' or ',' is the key. The key is copied as it is
 * written, escapes included, and cut at a code point boundary.
 */
static void member_at(const char *s, size_t at, char *field, size_t fieldsz)
{
  size_t key = 0, keylen = 0, start = 0;
  bool in_str = false, want_key = false, have = false;
  int depth = 0;

  for (size_t i = 0; i < at; i++) {
    char c = s[i];
    if (in_str && c == '\\') {
      i++; /* the escaped character */
    } else if (in_str && c == '"') {
      in_str = false;
      if (depth == 1 && want_key) {
        key = start;
        keylen = i - start;
        have = true;
        want_key = false;
      }
    } else if (in_str) {
      continue;
    } else if (c == '"') {
      in_str = true;
      start = i + 1;
    } else if (c == '{' || c == '[') {
      want_key = ++depth == 1 && c == '{';
    } else if (c == '}' || c == ']') {
      depth--;
    } else if (c == ',' && depth == 1) {
      want_key = true;
    }
  }
  field[0] = '\0';
  if (!have || depth < 1 || keylen >= 256)
    return;
  char tmp[256];
  memcpy(tmp, s + key, keylen);
  tmp[keylen] = '\0';
  utf8_copy_trunc(field, fieldsz, tmp);
}

/*
 * jansson refuses a number past int64 (an integer) or past a double (a
 * real) as a syntax error. It is a value out of range: name the member
 * and the range. The error's position is the end of the number.
 */
static int out_of_range(const char *s, size_t end, struct ctkn_err *err)
{
  size_t start = end;
  char field[sizeof(((struct ctkn_err *)0)->field)];

  while (start > 0 && s[start - 1] != '\0' &&
         strchr("0123456789+-.eE", s[start - 1]) != NULL)
    start--;
  member_at(s, start, field, sizeof(field));
  if (field[0] == '\0')
    return ctkn__err(err, CTKN_EBADREQ, "request body must be a JSON object");
  return ctkn__err_field(err, CTKN_EINVAL, field,
                         "%.*s%s is out of range: a number in a request body "
                         "must be an integer from %" PRId64 " to %" PRId64,
                         (int)(end - start > 40 ? 40 : end - start), s + start,
                         end - start > 40 ? "..." : "", INT64_MIN, INT64_MAX);
}

/*
 * Load a request body that must be one JSON object. Duplicate keys,
 * "\u0000", invalid UTF-8, lone surrogates, trailing bytes and nesting
 * deeper than jansson's limit are all jansson's to refuse; a number out
 * of range is invalid_field, naming its member.
 */
int ctkn__json_load_object(const char *body, size_t len, json_t **out,
                           struct ctkn_err *err)
{
  json_error_t je;
  json_t *root;

  *out = NULL;
  root = json_loadb(body != NULL ? body : "", body != NULL ? len : 0,
                    JSON_REJECT_DUPLICATES, &je);
  if (root == NULL) {
    if (json_error_code(&je) == json_error_out_of_memory)
      return ctkn__err(err, CTKN_ENOMEM, "out of memory parsing JSON");
    if (json_error_code(&je) == json_error_numeric_overflow &&
        je.position > 0 && (size_t)je.position <= len)
      return out_of_range(body, (size_t)je.position, err);
    return ctkn__err(err, CTKN_EBADREQ,
                     "invalid JSON at line %d, column %d: %s", je.line,
                     je.column, je.text);
  }
  if (!json_is_object(root)) {
    json_decref(root);
    return ctkn__err(err, CTKN_EBADREQ, "request body must be a JSON object");
  }
  *out = root;
  return CTKN_OK;
}

/* Which body fill() reads: what each accepts beside name and
 * description. */
enum body { BODY_CREATE, BODY_UPDATE, BODY_LINE };

static int unknown_field(const char *key, enum body kind, struct ctkn_err *err)
{
  char field[sizeof(((struct ctkn_err *)0)->field)];

  utf8_copy_trunc(field, sizeof(field), key);
  return ctkn__err_field(err, CTKN_EINVAL, field,
                         "unknown field (accepted: name, description%s)",
                         kind == BODY_UPDATE ? ", status"
                         : kind == BODY_LINE ? ", idempotency_key"
                                             : "");
}

static int set_name(struct ctkn_command *cmd, json_t *v, struct ctkn_err *err)
{
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "name", "must be a string");
  return ctkn_command_set_name(cmd, json_string_value(v), json_string_length(v),
                               err);
}

static int set_description(struct ctkn_command *cmd, json_t *v,
                           struct ctkn_err *err)
{
  if (json_is_null(v))
    return ctkn_command_set_description(cmd, NULL, 0, err);
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "description",
                           "must be a string or null");
  return ctkn_command_set_description(cmd, json_string_value(v),
                                      json_string_length(v), err);
}

static int set_status(struct ctkn_command *cmd, json_t *v, struct ctkn_err *err)
{
  /* The setter takes a C string: "\u0000" was refused by the loader, so
   * the value holds no NUL that could cut "revoked\0junk" short. */
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "status", "must be a string");
  return ctkn_command_set_status(cmd, json_string_value(v), err);
}

/* The same rules as --idempotency-key and the Idempotency-Key header
 * (ctkn_command_set_idempotency_key()). */
static int set_idem(struct ctkn_command *cmd, json_t *v, struct ctkn_err *err)
{
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "idempotency_key",
                           "must be a string");
  return ctkn_command_set_idempotency_key(cmd, json_string_value(v),
                                          json_string_length(v), err);
}

/*
 * Copy the members of root into cmd in document order, so the error
 * reported is the first problem in the body. Keys are plain C strings
 * because jansson refuses "\u0000" in keys.
 */
static int fill(struct ctkn_command *cmd, json_t *root, enum body kind,
                struct ctkn_err *err)
{
  const char *key;
  json_t *v;
  int rc;

  json_object_foreach(root, key, v)
  {
    if (strcmp(key, "name") == 0)
      rc = set_name(cmd, v, err);
    else if (strcmp(key, "description") == 0)
      rc = set_description(cmd, v, err);
    else if (strcmp(key, "status") == 0)
      rc = kind == BODY_UPDATE
               ? set_status(cmd, v, err)
               : ctkn__err_field(err, CTKN_EINVAL, "status",
                                 "cannot be set when creating; new "
                                 "tokens are active");
    else if (kind == BODY_LINE && strcmp(key, "idempotency_key") == 0)
      rc = set_idem(cmd, v, err);
    else
      rc = unknown_field(key, kind, err);
    if (rc != CTKN_OK)
      return rc;
  }
  return CTKN_OK;
}

static int parse_create(const char *body, size_t len, enum body kind,
                        struct ctkn_command *cmd, struct ctkn_err *err)
{
  json_t *root;
  int rc;

  ctkn_err_clear(err);
  ctkn_command_init(cmd, CTKN_CMD_CREATE);
  rc = load_object(body, len, &root, err);
  if (rc != CTKN_OK)
    return rc;
  rc = fill(cmd, root, kind, err);
  json_decref(root);
  if (rc != CTKN_OK)
    return rc;
  /* A missing name is ctkn_command_check()'s to report. */
  return ctkn_command_check(cmd, err);
}

int ctkn_json_parse_create(const char *body, size_t len,
                           struct ctkn_command *cmd, struct ctkn_err *err)
{
  return parse_create(body, len, BODY_CREATE, cmd, err);
}

int ctkn_json_parse_create_line(const char *line, size_t len,
                                struct ctkn_command *cmd, struct ctkn_err *err)
{
  return parse_create(line, len, BODY_LINE, cmd, err);
}

int ctkn_json_parse_update(const char *body, size_t len, const char *id,
                           struct ctkn_command *cmd, struct ctkn_err *err)
{
  json_t *root;
  int rc;

  ctkn_err_clear(err);
  ctkn_command_init(cmd, CTKN_CMD_UPDATE);
  rc = ctkn_command_set_id(cmd, id != NULL ? id : "", err);
  if (rc != CTKN_OK)
    return rc;
  rc = load_object(body, len, &root, err);
  if (rc != CTKN_OK)
    return rc;
  rc = fill(cmd, root, BODY_UPDATE, err);
  json_decref(root);
  if (rc != CTKN_OK)
    return rc;
  /* An empty object is ctkn_command_check()'s to report (bad_request). */
  return ctkn_command_check(cmd, err);
}

/* ---- documents with "data" ------------------------------------------- */

/* {"data": o} with an optional meta; takes ownership of o. */
char *ctkn__json_doc(json_t *o, bool meta, const char *request_id)
{
  if (o == NULL)
    return NULL;
  if (!meta) {
    json_t *root = json_object();
    if (root == NULL || set(root, "data", o) != 0) {
      json_decref(root);
      return NULL;
    }
    return dump(root);
  }
  return dump(pair("data", o, "meta", meta_obj(request_id, NULL)));
}

json_t *ctkn__json_checked(json_t *o, int rc)
{
  if (rc != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

char *ctkn_json_verify(const struct ctkn_token *t, ctkn_env env,
                       const char *request_id)
{
  struct sbuf b;

  sb_init(&b);
  SB_LIT(&b, "{\"data\":{\"id\":");
  sb_str(&b, t->id, sizeof(t->id));
  SB_LIT(&b, ",\"token\":");
  sb_str(&b, t->token, sizeof(t->token));
  SB_LIT(&b, ",\"status\":");
  sb_name(&b, ctkn_status_str(t->status));
  SB_LIT(&b, ",\"environment\":");
  sb_name(&b, ctkn_env_str(env));
  SB_LIT(&b, "}");
  return sb_meta_end(&b, request_id);
}
