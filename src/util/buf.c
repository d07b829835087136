/*
 * buf.c - the one growable buffer (struct ctkn__buf, internal.h).
 *
 * Invariant: once anything was reserved, data[len] is a NUL byte, so a
 * buffer of text is a C string at every step and ctkn__buf_detach() needs
 * no copy. Growth doubles, so n appends cost O(n) copies in all.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int ctkn__buf_reserve(struct ctkn__buf *b, size_t more)
{
  if (more > SIZE_MAX - 1 - b->len)
    return CTKN_ENOMEM;
  size_t need = b->len + more + 1; /* + the NUL */
  if (need <= b->cap)
    return CTKN_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = realloc(b->data, cap);
  if (p == NULL)
    return CTKN_ENOMEM;
  b->data = p;
  b->cap = cap;
  b->data[b->len] = '\0';
  return CTKN_OK;
}

void *ctkn__buf_add(struct ctkn__buf *b, size_t n)
{
  if (ctkn__buf_reserve(b, n) != CTKN_OK)
    return NULL;
  void *p = b->data + b->len;
  b->len += n;
  b->data[b->len] = '\0';
  return p;
}

int ctkn__buf_append(struct ctkn__buf *b, const void *p, size_t n)
{
  void *dst = ctkn__buf_add(b, n);

  if (dst == NULL)
    return CTKN_ENOMEM;
  if (n > 0)
    memcpy(dst, p, n);
  return CTKN_OK;
}

/* ctkn__buf_append() without its calls when the bytes fit: the JSON
 * escapers below append a few bytes at a time, once per request's access
 * line and more. */
static inline int put(struct ctkn__buf *b, const void *p, size_t n)
{
  if (n > 0 && b->data != NULL && n < b->cap - b->len) {
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return CTKN_OK;
  }
  return ctkn__buf_append(b, p, n);
}

int ctkn__buf_puts(struct ctkn__buf *b, const char *s)
{
  return put(b, s, strlen(s));
}

int ctkn__buf_vprintf(struct ctkn__buf *b, const char *fmt, va_list ap)
{
  va_list again;
  char probe[256];
  int n;

  va_copy(again, ap);
  n = vsnprintf(probe, sizeof(probe), fmt, ap);
  if (n < 0) {
    va_end(again);
    return CTKN_EINTERNAL;
  }
  if ((size_t)n < sizeof(probe)) {
    va_end(again);
    return ctkn__buf_append(b, probe, (size_t)n);
  }
  if (ctkn__buf_reserve(b, (size_t)n) != CTKN_OK) {
    va_end(again);
    return CTKN_ENOMEM;
  }
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
  va_end(again);
  b->len += (size_t)n;
  return CTKN_OK;
}

int ctkn__buf_printf(struct ctkn__buf *b, const char *fmt, ...)
{
  va_list ap;
  int rc;

  va_start(ap, fmt);
  rc = ctkn__buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

/* The one UTF-8 check (internal.h). Above CCN 15: one branch per row of
 * RFC 3629's table of well-formed sequences, which reads best as the
 * table. */
size_t ctkn__utf8_seq(const unsigned char *s, size_t n)
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

/* Bit c of plain: byte c goes into a JSON string as it is, and alone:
 * printable ASCII (0x20-0x7e) but the quote (0x22) and the backslash
 * (0x5c). A bitmap, as four tests per byte were most of the cost of an
 * access line. */
static const uint64_t plain[4] = {UINT64_C(0xfffffffb00000000),
                                  UINT64_C(0x7fffffffefffffff), 0, 0};

static bool is_plain(unsigned char c)
{
  return (plain[c >> 6] >> (c & 63)) & 1;
}

int ctkn__buf_json_str(struct ctkn__buf *b, const void *p, size_t n)
{
  const unsigned char *s = p;
  int rc = put(b, "\"", 1);

  for (size_t i = 0; i < n && rc == CTKN_OK;) {
    unsigned char c = s[i];
    size_t len, run = i;
    /* Runs of plain bytes, most of any text, go in one copy: per byte,
     * escaping cost a request's access line a microsecond. */
    while (run < n && is_plain(s[run]))
      run++;
    if (run > i) {
      rc = put(b, s + i, run - i);
      i = run;
      continue;
    }
    len = ctkn__utf8_seq(s + i, n - i);
    if (len == 0) {
      rc = ctkn__buf_puts(b, "\\ufffd"); /* not UTF-8: the replacement */
      i++;
    } else if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      rc = put(b, esc, 2);
      i++;
    } else if (c < 0x20 || c == 0x7f) {
      rc = ctkn__buf_printf(b, "\\u%04x", c);
      i++;
    } else {
      rc = put(b, s + i, len);
      i += len;
    }
  }
  return rc == CTKN_OK ? put(b, "\"", 1) : rc;
}

char *ctkn__buf_detach(struct ctkn__buf *b)
{
  char *s = b->data;

  if (s == NULL)
    s = calloc(1, 1);
  b->data = NULL;
  b->len = b->cap = 0;
  return s;
}

void ctkn__buf_free(struct ctkn__buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int ctkn__buf_json_member(struct ctkn__buf *b, const char *key, const char *val)
{
  int rc = CTKN_OK;

  if (b->len > 0)
    rc = put(b, ",", 1);
  if (rc == CTKN_OK)
    rc = ctkn__buf_json_str(b, key, strlen(key));
  if (rc == CTKN_OK)
    rc = put(b, ":", 1);
  if (rc != CTKN_OK)
    return rc;
  if (val == NULL)
    return ctkn__buf_puts(b, "null");
  return ctkn__buf_json_str(b, val, strlen(val));
}
