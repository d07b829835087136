/*
 * error.c - the CTKN_ERRNO_MAP tables and error-detail helpers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctkn/error.h"
#include "internal.h"

const char *ctkn_strerror(int code)
{
  switch (code) {
  case CTKN_OK:
    return "success";
#define CTKN__CASE(name, val, api, http, ex, text)                             \
  case CTKN_E##name:                                                           \
    return text;
    CTKN_ERRNO_MAP(CTKN__CASE)
#undef CTKN__CASE
  }
  return "unknown error";
}

const char *ctkn_error_code(int code)
{
  switch (code) {
#define CTKN__CASE(name, val, api, http, ex, text)                             \
  case CTKN_E##name:                                                           \
    return api;
    CTKN_ERRNO_MAP(CTKN__CASE)
#undef CTKN__CASE
  }
  return "internal_error";
}

int ctkn_error_http_status(int code)
{
  switch (code) {
  case CTKN_OK:
    return 200;
#define CTKN__CASE(name, val, api, http, ex, text)                             \
  case CTKN_E##name:                                                           \
    return http;
    CTKN_ERRNO_MAP(CTKN__CASE)
#undef CTKN__CASE
  }
  return 500;
}

int ctkn_error_exit(int code)
{
  switch (code) {
  case CTKN_OK:
    return 0;
#define CTKN__CASE(name, val, api, http, ex, text)                             \
  case CTKN_E##name:                                                           \
    return ex;
    CTKN_ERRNO_MAP(CTKN__CASE)
#undef CTKN__CASE
  }
  return 3;
}

void ctkn_err_clear(struct ctkn_err *err)
{
  if (err == NULL)
    return;
  err->code = CTKN_OK;
  err->field[0] = '\0';
  err->msg[0] = '\0';
}

CTKN__PRINTF(4, 0)
static int err_vset(struct ctkn_err *err, int code, const char *field,
                    const char *fmt, va_list ap)
{
  if (err == NULL)
    return code;
  err->code = code;
  ctkn__strlcpy(err->field, field ? field : "", sizeof(err->field));
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  return code;
}

int ctkn__err(struct ctkn_err *err, int code, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  err_vset(err, code, NULL, fmt, ap);
  va_end(ap);
  return code;
}

int ctkn__err_field(struct ctkn_err *err, int code, const char *field,
                    const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  err_vset(err, code, field, fmt, ap);
  va_end(ap);
  return code;
}

size_t ctkn__strlcpy(char *dst, const char *src, size_t dstsz)
{
  size_t n = strlen(src);
  size_t m = n < dstsz - 1 ? n : dstsz - 1;

  memcpy(dst, src, m);
  dst[m] = '\0';
  return n;
}

char *ctkn__suffixed(const char *path, const char *suffix)
{
  size_t a = strlen(path), b = strlen(suffix);
  char *s = malloc(a + b + 1);

  if (s != NULL) {
    memcpy(s, path, a);
    memcpy(s + a, suffix, b + 1);
  }
  return s;
}

int64_t ctkn__now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool ctkn__transient(int rc)
{
  return rc == CTKN_EKAFKA || rc == CTKN_ETIMEOUT;
}
