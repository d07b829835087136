/*
 * misc.c - the small helpers every module uses (internal.h): error
 * detail, bounded string copies, side-file names, the monotonic clock.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

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

int ctkn__cond_init_monotonic(pthread_cond_t *cv)
{
  pthread_condattr_t ca;
  int rc;

  if ((rc = pthread_condattr_init(&ca)) != 0)
    return rc;
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  rc = pthread_cond_init(cv, &ca);
  pthread_condattr_destroy(&ca);
  return rc;
}

struct timespec ctkn__monotonic_in(int64_t ms)
{
  return ctkn__monotonic_in_us(ms * 1000);
}

struct timespec ctkn__monotonic_in_us(int64_t us)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t ns = ts.tv_nsec + us * 1000;
  ts.tv_sec += (time_t)(ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  return ts;
}

bool ctkn__transient(int rc)
{
  /* CTKN_ESTALE: from a follower, nothing to judge by yet (a keyring
   * may come). */
  return rc == CTKN_EKAFKA || rc == CTKN_ETIMEOUT || rc == CTKN_ESTALE;
}
