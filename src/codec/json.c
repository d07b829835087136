/*
 * json.c - the API's JSON: Paddle's entity, webhook, list and error
 * shapes, ctkn's own outputs, and the create/update request bodies. The
 * API-key file's lines are codec/apikey.c's.
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
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/keyset.h"
#include "ctkn/notification.h"
#include "ctkn/setting.h"
#include "ctkn/token.h"
#include "internal.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)
#define DOC_URL    "https://developer.paddle.com/v1/errors/shared/"

/* ---- UTF-8 helpers --------------------------------------------------- */

/*
 * Length (1-4) of the well-formed UTF-8 sequence at s, per RFC 3629 (no
 * overlong forms, no surrogates, nothing past U+10FFFF), or 0 when the
 * bytes at s do not start one. n > 0 bytes are readable.
 */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
  unsigned char lo = 0x80, hi = 0xBF;
  size_t len, i;

  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xC2 && s[0] <= 0xDF)
    len = 2;
  else if (s[0] >= 0xE0 && s[0] <= 0xEF)
    len = 3;
  else if (s[0] >= 0xF0 && s[0] <= 0xF4)
    len = 4;
  else
    return 0;
  if (s[0] == 0xE0)
    lo = 0xA0;
  else if (s[0] == 0xED)
    hi = 0x9F;
  else if (s[0] == 0xF0)
    lo = 0x90;
  else if (s[0] == 0xF4)
    hi = 0x8F;
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xBF)
      return 0;
  return len;
}

/*
 * A JSON string for the text at s: at most max bytes, stopping at the
 * first NUL (the entity's fields are fixed-size arrays that a corrupt
 * record might not terminate). Invalid bytes become U+FFFD. NULL only when
 * out of memory.
 */
static json_t *jstr(const char *s, size_t max)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strnlen(s, max);
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
static void utf8_copy_trunc(char *dst, size_t dstsz, const char *src)
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
static json_t *jtime(int64_t us)
{
  char buf[CTKN_TIME_BUF];

  if (ctkn_time_format(us, buf) != CTKN_OK)
    return json_null();
  return json_stringn_nocheck(buf, strnlen(buf, sizeof(buf)));
}

/* A string from a table (status, event type), or null when unknown. */
static json_t *jname(const char *s)
{
  return s != NULL ? json_string(s) : json_null();
}

/* json_object_set_new() steals value even when it fails, and fails on a
 * NULL value, so a chain of these needs one error check and no cleanup. */
static int set(json_t *obj, const char *key, json_t *value)
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
static json_t *meta_obj(const char *request_id, json_t *extra)
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
static char *dump(json_t *root)
{
  char *s;

  if (root == NULL)
    return NULL;
  s = json_dumps(root, DUMP_FLAGS);
  json_decref(root);
  return s;
}

/* {first: a, second: b}; takes ownership of a and b, even on failure. */
static json_t *pair(const char *first, json_t *a, const char *second, json_t *b)
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
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
           b[11], b[12], b[13], b[14], b[15]);
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

struct sbuf {
  char *p;
  size_t len, cap;
  bool oom;
};

static void sb_put(struct sbuf *b, const void *s, size_t n)
{
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->cap ? b->cap * 2 : 512) + n;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
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

/* Close {"data": ... with "meta" and return the buffer (NULL if OOM). */
static char *sb_meta_end(struct sbuf *b, const char *request_id)
{
  char rid[37];

  if (request_id == NULL && ctkn_request_id(rid) == CTKN_OK)
    request_id = rid;
  SB_LIT(b, ",\"meta\":{\"request_id\":");
  if (request_id != NULL)
    sb_str(b, request_id, SIZE_MAX);
  else
    SB_LIT(b, "null");
  SB_LIT(b, "}}");
  if (b->oom) {
    free(b->p);
    return NULL;
  }
  return b->p;
}

char *ctkn_json_data(const struct ctkn_token *t, const char *request_id)
{
  struct sbuf b = {0};

  SB_LIT(&b, "{\"data\":");
  sb_entity(&b, t);
  return sb_meta_end(&b, request_id);
}

/* Written without jansson, as the data document is: `ctkn notify` renders
 * one per notification and `ctkn tail` one per event. */
char *ctkn_json_event(const struct ctkn_event *ev)
{
  struct sbuf b = {0};

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
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
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
  return dump(pair("data", data, "meta", meta_obj(request_id, pg)));

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

char *ctkn_json_error(const struct ctkn_err *err, const char *request_id)
{
  /* A missing or success code cannot be reported as a failure's cause. */
  int code = err != NULL && err->code < 0 ? err->code : CTKN_EINTERNAL;
  const char *api = ctkn_error_code(code);
  bool has_msg = err != NULL && err->msg[0] != '\0';
  char url[sizeof(DOC_URL) + 64];
  json_t *e = json_object();
  int rc = 0;

  if (e == NULL)
    return NULL;
  snprintf(url, sizeof(url), "%s%s", DOC_URL, api);
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
  if (rc != 0) {
    json_decref(e);
    return NULL;
  }
  return dump(pair("error", e, "meta", meta_obj(request_id, NULL)));
}

/* ---- request parsing ------------------------------------------------- */

/*
 * Load a request body that must be one JSON object. Duplicate keys,
 * "\u0000", invalid UTF-8, lone surrogates, trailing bytes and nesting
 * deeper than jansson's limit are all jansson's to refuse.
 */
static int load_object(const char *body, size_t len, json_t **out,
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

static int unknown_field(const char *key, bool update, struct ctkn_err *err)
{
  char field[sizeof(((struct ctkn_err *)0)->field)];

  utf8_copy_trunc(field, sizeof(field), key);
  return ctkn__err_field(err, CTKN_EINVAL, field,
                         "unknown field (accepted: name, description%s)",
                         update ? ", status" : "");
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

/*
 * Copy the members of root into cmd in document order, so the error
 * reported is the first problem in the body. Keys are plain C strings
 * because jansson refuses "\u0000" in keys.
 */
static int fill(struct ctkn_command *cmd, json_t *root, bool update,
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
      rc = update ? set_status(cmd, v, err)
                  : ctkn__err_field(err, CTKN_EINVAL, "status",
                                    "cannot be set when creating; new "
                                    "tokens are active");
    else
      rc = unknown_field(key, update, err);
    if (rc != CTKN_OK)
      return rc;
  }
  return CTKN_OK;
}

int ctkn_json_parse_create(const char *body, size_t len,
                           struct ctkn_command *cmd, struct ctkn_err *err)
{
  json_t *root;
  int rc;

  ctkn_err_clear(err);
  ctkn_command_init(cmd, CTKN_CMD_CREATE);
  rc = load_object(body, len, &root, err);
  if (rc != CTKN_OK)
    return rc;
  rc = fill(cmd, root, false, err);
  json_decref(root);
  if (rc != CTKN_OK)
    return rc;
  /* A missing name is ctkn_command_check()'s to report. */
  return ctkn_command_check(cmd, err);
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
  rc = fill(cmd, root, true, err);
  json_decref(root);
  if (rc != CTKN_OK)
    return rc;
  /* An empty object is ctkn_command_check()'s to report (bad_request). */
  return ctkn_command_check(cmd, err);
}

/* ---- request parsing: notification settings ------------------------- */

#define DEST_CREATE_FIELDS                                                     \
  "description, type, destination, subscribed_events, active, api_version, "   \
  "include_sensitive_fields, traffic_source"
#define DEST_UPDATE_FIELDS                                                     \
  "description, destination, active, subscribed_events, api_version, "         \
  "include_sensitive_fields, traffic_source"

static int dest_description(struct ctkn_dest_command *cmd, json_t *v,
                            bool update, struct ctkn_err *err)
{
  if (update && json_is_null(v))
    return ctkn_dest_command_set_description(cmd, NULL, 0, err);
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "description",
                           update ? "must be a string or null"
                                  : "must be a string");
  return ctkn_dest_command_set_description(cmd, json_string_value(v),
                                           json_string_length(v), err);
}

static int dest_type(json_t *v, struct ctkn_err *err)
{
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "type", "must be a string");
  if (strcmp(json_string_value(v), "url") != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "type",
                           "must be url: ctkn delivers webhooks to URLs "
                           "only (no email destinations)");
  return CTKN_OK;
}

static int dest_url(struct ctkn_dest_command *cmd, json_t *v,
                    struct ctkn_err *err)
{
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "destination", "must be a string");
  return ctkn_dest_command_set_url(cmd, json_string_value(v), err);
}

/* An array of event type names, at least one, none twice. */
static int dest_events(struct ctkn_dest_command *cmd, json_t *v,
                       struct ctkn_err *err)
{
  unsigned mask = 0;
  size_t i;
  json_t *e;

  if (!json_is_array(v) || json_array_size(v) == 0)
    return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                           "must be a non-empty array of event type names");
  json_array_foreach(v, i, e)
  {
    ctkn_event_type t =
        json_is_string(e) ? ctkn_event_type_parse(json_string_value(e)) : 0;
    if (t == 0 || (CTKN_DEST_EVENTS_ALL & (1u << t)) == 0) {
      if (!json_is_string(e))
        return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                               "item %zu is not a string", i);
      return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                             "\"%.64s\" is not an event ctkn sends (it "
                             "sends client_token.created, "
                             "client_token.updated and client_token.revoked)",
                             json_string_value(e));
    }
    if (mask & (1u << t))
      return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                             "\"%s\" is named twice", json_string_value(e));
    mask |= 1u << t;
  }
  return ctkn_dest_command_set_event_mask(cmd, mask, err);
}

static int dest_active(struct ctkn_dest_command *cmd, json_t *v,
                       struct ctkn_err *err)
{
  if (!json_is_boolean(v))
    return ctkn__err_field(err, CTKN_EINVAL, "active", "must be a boolean");
  ctkn_dest_command_set_active(cmd, json_is_true(v));
  return CTKN_OK;
}

/* The fields Paddle takes that have one value in ctkn: accepted at that
 * value, which changes nothing. */
static int dest_fixed(const char *key, json_t *v, struct ctkn_err *err)
{
  if (strcmp(key, "api_version") == 0) {
    if (!json_is_integer(v) || json_integer_value(v) != 1)
      return ctkn__err_field(err, CTKN_EINVAL, "api_version",
                             "must be 1, the only API version ctkn sends");
    return CTKN_OK;
  }
  if (strcmp(key, "include_sensitive_fields") == 0) {
    if (!json_is_boolean(v))
      return ctkn__err_field(err, CTKN_EINVAL, "include_sensitive_fields",
                             "must be a boolean");
    if (json_is_true(v))
      return ctkn__err_field(err, CTKN_EINVAL, "include_sensitive_fields",
                             "must be false: client_token events have no "
                             "sensitive fields");
    return CTKN_OK;
  }
  /* traffic_source: ctkn has no simulations, so every event is platform
   * traffic and "platform" and "all" deliver the same; a destination for
   * simulated traffic alone would never receive anything. */
  if (!json_is_string(v))
    return ctkn__err_field(err, CTKN_EINVAL, "traffic_source",
                           "must be a string");
  if (strcmp(json_string_value(v), "platform") != 0 &&
      strcmp(json_string_value(v), "all") != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "traffic_source",
                           "must be platform or all: ctkn has no simulated "
                           "traffic (both deliver every event; the setting "
                           "reads back as all)");
  return CTKN_OK;
}

/* The members of root into cmd, in document order, but for a create's
 * "type" first: the rules for the destination follow from it, so an
 * email destination is refused for its type, not for its address. */
static int dest_fill(struct ctkn_dest_command *cmd, json_t *root, bool update,
                     unsigned *seen, struct ctkn_err *err)
{
  const char *key;
  json_t *v;
  int rc;

  if (!update && (v = json_object_get(root, "type")) != NULL &&
      (rc = dest_type(v, err)) != CTKN_OK)
    return rc;
  json_object_foreach(root, key, v)
  {
    if (strcmp(key, "description") == 0) {
      rc = dest_description(cmd, v, update, err);
      *seen |= 1u;
    } else if (!update && strcmp(key, "type") == 0) {
      rc = dest_type(v, err);
      *seen |= 2u;
    } else if (strcmp(key, "destination") == 0) {
      rc = dest_url(cmd, v, err);
    } else if (strcmp(key, "subscribed_events") == 0) {
      rc = dest_events(cmd, v, err);
    } else if (strcmp(key, "active") == 0) {
      rc = dest_active(cmd, v, err);
    } else if (strcmp(key, "api_version") == 0 ||
               strcmp(key, "include_sensitive_fields") == 0 ||
               strcmp(key, "traffic_source") == 0) {
      rc = dest_fixed(key, v, err);
    } else {
      char field[sizeof(((struct ctkn_err *)0)->field)];
      utf8_copy_trunc(field, sizeof(field), key);
      rc = ctkn__err_field(err, CTKN_EINVAL, field,
                           "unknown field (accepted: %s)",
                           update ? DEST_UPDATE_FIELDS : DEST_CREATE_FIELDS);
    }
    if (rc != CTKN_OK)
      return rc;
  }
  return CTKN_OK;
}

int ctkn_json_parse_dest_create(const char *body, size_t len,
                                struct ctkn_dest_command *cmd,
                                struct ctkn_err *err)
{
  unsigned seen = 0;
  json_t *root;
  int rc;

  ctkn_err_clear(err);
  ctkn_dest_command_init(cmd, CTKN_DEST_ADD);
  if ((rc = load_object(body, len, &root, err)) != CTKN_OK)
    return rc;
  rc = dest_fill(cmd, root, false, &seen, err);
  json_decref(root);
  if (rc != CTKN_OK)
    return rc;
  if (!(seen & 1u))
    return ctkn__err_field(err, CTKN_EINVAL, "description", "is required");
  if (!(seen & 2u))
    return ctkn__err_field(err, CTKN_EINVAL, "type",
                           "is required (url is the only type)");
  if (!cmd->set_url)
    return ctkn__err_field(err, CTKN_EINVAL, "destination", "is required");
  if (!cmd->set_events)
    return ctkn__err_field(err, CTKN_EINVAL, "subscribed_events",
                           "is required");
  return ctkn_dest_command_check(cmd, err);
}

int ctkn_json_parse_dest_update(const char *body, size_t len, const char *id,
                                struct ctkn_dest_command *cmd,
                                struct ctkn_err *err)
{
  unsigned seen = 0;
  json_t *root;
  int rc;

  ctkn_err_clear(err);
  ctkn_dest_command_init(cmd, CTKN_DEST_UPDATE);
  rc = ctkn_dest_command_set_id(cmd, id != NULL ? id : "", err);
  if (rc != CTKN_OK)
    return rc;
  if ((rc = load_object(body, len, &root, err)) != CTKN_OK)
    return rc;
  if (json_object_size(root) == 0) {
    json_decref(root);
    return ctkn__err(err, CTKN_EBADREQ,
                     "nothing to update: give description, destination, "
                     "active or subscribed_events");
  }
  rc = dest_fill(cmd, root, true, &seen, err);
  json_decref(root);
  return rc;
}

/* ---- ctkn's own outputs ------------------------------------------------ */

/* {"data": o} with an optional meta; takes ownership of o. */
static char *data_doc(json_t *o, bool meta, const char *request_id)
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

static json_t *checked(json_t *o, int rc)
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
  struct sbuf b = {0};

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

char *ctkn_json_digest(const char *sha256_hex, int64_t tokens,
                       const int32_t *partitions, const int64_t *offsets,
                       size_t n)
{
  json_t *o = json_object();
  json_t *arr = json_array();
  int rc = 0;

  if (o == NULL || arr == NULL) {
    json_decref(o);
    json_decref(arr);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_object();
    if (e == NULL) {
      rc = -1;
      break;
    }
    rc |= set(e, "partition", json_integer(partitions[i]));
    rc |= set(e, "offset", json_integer(offsets[i]));
    rc |= json_array_append_new(arr, e);
  }
  rc |= set(o, "sha256", jstr(sha256_hex, SIZE_MAX));
  rc |= set(o, "tokens", json_integer(tokens));
  rc |= set(o, "offsets", arr);
  return data_doc(checked(o, rc), false, NULL);
}

char *ctkn_json_archive(const char *topic, int32_t partitions,
                        const int64_t *start, const int64_t *end,
                        uint64_t records, const char *sha256_hex)
{
  json_t *o = json_object();
  json_t *arr = json_array();
  int rc = 0;

  if (o == NULL || arr == NULL) {
    json_decref(o);
    json_decref(arr);
    return NULL;
  }
  for (int32_t i = 0; i < partitions; i++) {
    json_t *e = json_object();
    if (e == NULL) {
      rc = -1;
      break;
    }
    rc |= set(e, "partition", json_integer(i));
    rc |= set(e, "start", json_integer(start[i]));
    rc |= set(e, "end", json_integer(end[i]));
    rc |= json_array_append_new(arr, e);
  }
  rc |= set(o, "topic", jstr(topic, SIZE_MAX));
  rc |= set(o, "records", json_integer((json_int_t)records));
  rc |= set(o, "sha256", jstr(sha256_hex, SIZE_MAX));
  rc |= set(o, "partitions", arr);
  return data_doc(checked(o, rc), false, NULL);
}

static json_t *jbase64(const void *bytes, size_t len)
{
  json_t *v;
  char *buf;

  if (bytes == NULL)
    return json_null();
  if ((buf = malloc(4 * ((len + 2) / 3) + 1)) == NULL)
    return NULL;
  size_t n = ctkn_base64(bytes, len, buf);
  v = json_stringn_nocheck(buf, n);
  free(buf);
  return v;
}

char *ctkn_json_quarantined(int32_t partition, int64_t offset,
                            const char *reason, const void *key, size_t klen,
                            const void *value, size_t vlen)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= set(o, "partition", json_integer(partition));
  rc |= set(o, "offset", json_integer(offset));
  rc |= set(o, "reason", jstr(reason ? reason : "", SIZE_MAX));
  rc |= set(o, "key_base64", jbase64(key, klen));
  rc |= set(o, "value_base64", jbase64(value, vlen));
  return dump(checked(o, rc));
}

static json_t *topic_obj(const char *topic, int32_t partitions,
                         int replication_factor, bool created)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= set(o, "topic", jstr(topic, SIZE_MAX));
  rc |= set(o, "partitions", json_integer(partitions));
  rc |= set(o, "replication_factor", json_integer(replication_factor));
  rc |= set(o, "created", json_boolean(created));
  return checked(o, rc);
}

char *ctkn_json_topic(const char *topic, int32_t partitions,
                      int replication_factor, bool created,
                      const char *settings_topic, int32_t settings_partitions,
                      bool settings_created)
{
  json_t *o = topic_obj(topic, partitions, replication_factor, created);

  if (o != NULL && settings_topic != NULL &&
      set(o, "settings",
          topic_obj(settings_topic, settings_partitions, replication_factor,
                    settings_created)) != 0) {
    json_decref(o);
    o = NULL;
  }
  return data_doc(o, false, NULL);
}

char *ctkn_json_project_stats(uint64_t applied, uint64_t rejected,
                              uint64_t quarantined, uint64_t skipped,
                              int32_t paused)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= set(o, "applied", json_integer((json_int_t)applied));
  rc |= set(o, "rejected", json_integer((json_int_t)rejected));
  rc |= set(o, "quarantined", json_integer((json_int_t)quarantined));
  rc |= set(o, "skipped", json_integer((json_int_t)skipped));
  rc |= set(o, "paused", json_integer(paused));
  return data_doc(checked(o, rc), false, NULL);
}

/* The status object: topic, partitions with their lag, total lag. */
static json_t *status_obj(const char *topic,
                          const struct ctkn_partition_status *parts, size_t n)
{
  json_t *o = json_object();
  json_t *arr = json_array();
  int64_t total = 0;
  int rc = 0;

  if (o == NULL || arr == NULL) {
    json_decref(o);
    json_decref(arr);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_object();
    int64_t lag = parts[i].log_end - parts[i].projected;
    if (e == NULL) {
      rc = -1;
      break;
    }
    total += lag > 0 ? lag : 0;
    rc |= set(e, "partition", json_integer(parts[i].partition));
    rc |= set(e, "log_start", json_integer(parts[i].log_start));
    rc |= set(e, "log_end", json_integer(parts[i].log_end));
    rc |= set(e, "projected", json_integer(parts[i].projected));
    rc |= set(e, "lag", json_integer(lag > 0 ? lag : 0));
    rc |= json_array_append_new(arr, e);
  }
  rc |= set(o, "topic", jstr(topic, SIZE_MAX));
  rc |= set(o, "partitions", arr);
  rc |= set(o, "lag", json_integer(total));
  return checked(o, rc);
}

char *ctkn_json_status(const char *topic,
                       const struct ctkn_partition_status *parts, size_t n)
{
  return data_doc(status_obj(topic, parts, n), false, NULL);
}

char *ctkn_json_health(const char *state, int64_t max_lag, const char *topic,
                       const struct ctkn_partition_status *parts, size_t n,
                       const char *request_id)
{
  json_t *o = status_obj(topic, parts, n);
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= set(o, "status", jstr(state, SIZE_MAX));
  rc |= set(o, "max_lag", json_integer(max_lag));
  return data_doc(checked(o, rc), true, request_id);
}

/* ---- API keys ----------------------------------------------------------- */

/* ["client_token.read", ...] for perms. */
static json_t *jperms(unsigned perms)
{
  const char *names[CTKN_PERMS_MAX];
  size_t n = ctkn_perms_names(perms, names, CTKN__ARRAY_LEN(names));
  json_t *arr = json_array();
  int rc = 0;

  if (arr == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++)
    rc |= json_array_append_new(arr, json_string(names[i]));
  return checked(arr, rc);
}

char *ctkn_json_apikey_created(const struct ctkn_apikey *k, const char *key)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= set(o, "name", jstr(k->name, sizeof(k->name)));
  rc |= set(o, "key", jstr(key, CTKN_APIKEY_BUF));
  rc |= set(o, "permissions", jperms(k->perms));
  return data_doc(checked(o, rc), false, NULL);
}

char *ctkn_json_apikey_list(const ctkn_apikeys *ks)
{
  json_t *arr = json_array();
  int rc = 0;

  if (arr == NULL)
    return NULL;
  for (size_t i = 0; i < ctkn_apikeys_count(ks); i++) {
    const struct ctkn_apikey *k = ctkn_apikeys_at(ks, i);
    json_t *e = json_object();
    if (e == NULL) {
      rc = -1;
      break;
    }
    rc |= set(e, "name", jstr(k->name, sizeof(k->name)));
    rc |= set(e, "permissions", jperms(k->perms));
    rc |= set(e, "created_at", jstr(k->created_at, sizeof(k->created_at)));
    rc |= json_array_append_new(arr, e);
  }
  return data_doc(checked(arr, rc), false, NULL);
}

char *ctkn_json_apikey_revoked(const char *name)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= set(o, "name", jstr(name, CTKN_APIKEY_NAME_MAX + 1));
  rc |= set(o, "revoked", json_true());
  return data_doc(checked(o, rc), false, NULL);
}

/* ---- notification settings ------------------------------------------- */

/* Paddle's event-type object, as its /event-types lists it. */
static json_t *event_type_obj(ctkn_event_type t)
{
  static const char *const what[] = {
      [CTKN_EVENT_CREATED] = "Occurs when a client-side token is created.",
      [CTKN_EVENT_UPDATED] = "Occurs when a client-side token is updated.",
      [CTKN_EVENT_REVOKED] = "Occurs when a client-side token is revoked."};
  json_t *o = json_object(), *v = json_array();
  int rc = 0;

  if (o == NULL || v == NULL) {
    json_decref(o);
    json_decref(v);
    return NULL;
  }
  rc |= json_array_append_new(v, json_integer(1));
  rc |= set(o, "name", jname(ctkn_event_type_str(t)));
  rc |= set(o, "description", jname(what[t]));
  rc |= set(o, "group", jname("Client token"));
  rc |= set(o, "available_versions", v);
  return checked(o, rc);
}

static json_t *destination_obj(const struct ctkn_destination *d,
                               const char *secret)
{
  json_t *o = json_object(), *ev = json_array();
  int rc = 0;

  if (o == NULL || ev == NULL) {
    json_decref(o);
    json_decref(ev);
    return NULL;
  }
  for (int t = CTKN_EVENT_CREATED; t <= CTKN_EVENT_REVOKED; t++) {
    if (d->events & (1u << t))
      rc |= json_array_append_new(ev, event_type_obj((ctkn_event_type)t));
  }
  rc |= set(o, "id", jstr(d->id, sizeof(d->id)));
  rc |= set(o, "description",
            d->has_description ? jstr(d->description, sizeof(d->description))
                               : json_null());
  rc |= set(o, "type", jname("url"));
  rc |= set(o, "destination", jstr(d->url, sizeof(d->url)));
  rc |= set(o, "active", json_boolean(d->active));
  rc |= set(o, "api_version", json_integer(1));
  rc |= set(o, "include_sensitive_fields", json_false());
  rc |= set(o, "subscribed_events", ev);
  if (secret != NULL)
    rc |= set(o, "endpoint_secret_key", jstr(secret, SIZE_MAX));
  rc |= set(o, "traffic_source", jname("all"));
  return checked(o, rc);
}

char *ctkn_json_destination(const struct ctkn_destination *d,
                            const char *secret, const char *request_id)
{
  return data_doc(destination_obj(d, secret), true, request_id);
}

char *ctkn_json_destinations(const struct ctkn_destination *d, size_t n,
                             const char *request_id)
{
  json_t *a = json_array();
  int rc = a == NULL;

  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = json_array_append_new(a, destination_obj(&d[i], NULL));
  return data_doc(checked(a, rc), true, request_id);
}

char *ctkn_json_destinations_page(const struct ctkn_destination *d, size_t n,
                                  const struct ctkn_pagination *page,
                                  const char *request_id)
{
  json_t *a = json_array(), *pg = json_object();
  int rc = a == NULL || pg == NULL;

  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = json_array_append_new(a, destination_obj(&d[i], NULL));
  if (rc == 0) {
    rc |= set(pg, "per_page", json_integer(page->per_page));
    rc |=
        set(pg, "next", page->next ? jstr(page->next, SIZE_MAX) : json_null());
    rc |= set(pg, "has_more", json_boolean(page->has_more));
    if (page->estimated_total >= 0)
      rc |= set(pg, "estimated_total", json_integer(page->estimated_total));
  }
  if (rc != 0) {
    json_decref(a);
    json_decref(pg);
    return NULL;
  }
  return dump(pair("data", a, "meta", meta_obj(request_id, pg)));
}

/* ---- notifications --------------------------------------------------- */

static json_t *jtime_or_null(int64_t us)
{
  return us > 0 ? jtime(us) : json_null();
}

char *ctkn_json_notification(const struct ctkn_notification *n,
                             const char *payload)
{
  json_t *o = json_object(), *p = json_null();
  int rc = 0;

  if (payload != NULL) {
    /* Text that is not JSON (it always is: ctkn_json_event made it)
     * shows as null rather than failing the whole document. */
    json_t *parsed = json_loads(payload, 0, NULL);
    if (parsed != NULL) {
      json_decref(p);
      p = parsed;
    }
  }
  if (o == NULL || p == NULL) {
    json_decref(o);
    json_decref(p);
    return NULL;
  }
  rc |= set(o, "id", jstr(n->id, sizeof(n->id)));
  rc |= set(o, "type", jname(ctkn_event_type_str(n->type)));
  rc |= set(o, "status", jname(ctkn_ntf_status_str(n->status)));
  rc |= set(o, "payload", p);
  rc |= set(o, "occurred_at", jtime_or_null(n->occurred_at));
  rc |= set(o, "delivered_at", jtime_or_null(n->delivered_at));
  rc |= set(o, "replayed_at",
            n->replay ? jtime_or_null(n->first_attempt_at) : json_null());
  rc |= set(o, "origin", jname(n->replay ? "replay" : "event"));
  rc |= set(o, "last_attempt_at", jtime_or_null(n->last_attempt_at));
  rc |= set(o, "retry_at",
            n->status == CTKN_NTF_NEEDS_RETRY ? jtime_or_null(n->retry_at)
                                              : json_null());
  rc |= set(o, "times_attempted", json_integer(n->attempts));
  rc |= set(o, "notification_setting_id", jstr(n->dest, sizeof(n->dest)));
  return dump(checked(o, rc));
}

char *ctkn_json_attempt(const char *ntf_id, const struct ctkn_ntf_attempt *a)
{
  json_t *o = json_object();
  int rc = 0;

  if (o == NULL)
    return NULL;
  rc |= set(o, "notification_id", jstr(ntf_id, SIZE_MAX));
  rc |= set(o, "attempt", json_integer(a->n));
  rc |= set(o, "attempted_at", jtime(a->at));
  rc |= set(o, "response_code",
            a->status > 0 ? json_integer(a->status) : json_null());
  rc |= set(o, "latency_ms", json_real((double)a->latency_us / 1000.0));
  rc |= set(o, "error",
            a->error[0] ? jstr(a->error, sizeof(a->error)) : json_null());
  return dump(checked(o, rc));
}
