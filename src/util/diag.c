/*
 * diag.c - the one logging sink (diag.h; ctkn__diag() in internal.h).
 *
 * A line is built whole in a buffer and handed over in one write(2), so
 * lines from several threads never interleave (stderr is unbuffered, and
 * a pipe keeps writes up to PIPE_BUF whole). Messages are escaped as JSON
 * strings here, so no caller can break the framing with a quote or a
 * newline in a broker's error text or a client's header.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctkn/diag.h"
#include "internal.h"

static const char *const names[] = {"error", "warn", "info", "debug"};

static atomic_int max_level = CTKN_DIAG_INFO;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static ctkn_diag_sink sink_fn;
static void *sink_arg;

void ctkn_diag_set_level(enum ctkn_diag_level level)
{
  atomic_store(&max_level, (int)level);
}

int ctkn_diag_level_parse(const char *s, enum ctkn_diag_level *out,
                          struct ctkn_err *err)
{
  for (size_t i = 0; i < CTKN__ARRAY_LEN(names); i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = (enum ctkn_diag_level)i;
      return CTKN_OK;
    }
  }
  return ctkn__err_field(err, CTKN_EINVAL, "log_level",
                         "must be error, warn, info or debug");
}

void ctkn_diag_set_sink(ctkn_diag_sink sink, void *arg)
{
  pthread_mutex_lock(&sink_lock);
  sink_fn = sink;
  sink_arg = arg;
  pthread_mutex_unlock(&sink_lock);
}

bool ctkn__diag_on(enum ctkn_diag_level level)
{
  return (int)level <= atomic_load(&max_level);
}

/* Now as RFC 3339 UTC with microseconds (token.h's format; the sink sits
 * below every module, so it formats its own). */
static void now_rfc3339(char out[64])
{
  struct timespec ts;
  struct tm tm;

  clock_gettime(CLOCK_REALTIME, &ts);
  if (gmtime_r(&ts.tv_sec, &tm) == NULL) {
    out[0] = '\0';
    return;
  }
  snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           ts.tv_nsec / 1000);
}

static void emit(const char *line, size_t len)
{
  pthread_mutex_lock(&sink_lock);
  if (sink_fn != NULL) {
    sink_fn(sink_arg, line, len);
  } else {
    while (len > 0) {
      ssize_t w = write(STDERR_FILENO, line, len);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        break;
      line += w;
      len -= (size_t)w;
    }
  }
  pthread_mutex_unlock(&sink_lock);
}

/* {"time":"...","level":"...",["component":"...",]"msg":"..." into b:
 * in pieces, not with a format, as an access line is written per
 * request. */
static int head(struct ctkn__buf *b, enum ctkn_diag_level level,
                const char *component, const char *msg)
{
  char when[64];
  int rc;

  now_rfc3339(when);
  rc = ctkn__buf_puts(b, "{\"time\":\"");
  rc |= ctkn__buf_puts(b, when);
  rc |= ctkn__buf_puts(b, "\",\"level\":\"");
  rc |= ctkn__buf_puts(b, names[level]);
  rc |= ctkn__buf_puts(b, "\",");
  if (rc == CTKN_OK && component != NULL && component[0] != '\0') {
    rc = ctkn__buf_puts(b, "\"component\":");
    if (rc == CTKN_OK)
      rc = ctkn__buf_json_str(b, component, strlen(component));
    if (rc == CTKN_OK)
      rc = ctkn__buf_puts(b, ",");
  }
  if (rc == CTKN_OK)
    rc = ctkn__buf_puts(b, "\"msg\":");
  if (rc == CTKN_OK)
    rc = ctkn__buf_json_str(b, msg, strlen(msg));
  return rc;
}

void ctkn__diag_fields(enum ctkn_diag_level level, const char *component,
                       const char *msg, const char *fields)
{
  struct ctkn__buf b = CTKN__BUF_INIT;
  int rc;

  if (!ctkn__diag_on(level))
    return;
  /* Room for the whole line at once (escapes aside): growing by doubling
   * from nothing cost an access line four allocations. */
  rc = ctkn__buf_reserve(&b, 96 + strlen(msg) + (fields ? strlen(fields) : 0));
  if (rc == CTKN_OK)
    rc = head(&b, level, component, msg);
  if (rc == CTKN_OK && fields != NULL && fields[0] != '\0') {
    rc = ctkn__buf_puts(&b, ",");
    if (rc == CTKN_OK)
      rc = ctkn__buf_puts(&b, fields);
  }
  if (rc == CTKN_OK)
    rc = ctkn__buf_puts(&b, "}\n");
  if (rc == CTKN_OK)
    emit(b.data, b.len);
  ctkn__buf_free(&b);
}

void ctkn__diag(enum ctkn_diag_level level, const char *component,
                const char *fmt, ...)
{
  struct ctkn__buf msg = CTKN__BUF_INIT;
  va_list ap;

  if (!ctkn__diag_on(level))
    return;
  va_start(ap, fmt);
  int rc = ctkn__buf_vprintf(&msg, fmt, ap);
  va_end(ap);
  if (rc == CTKN_OK)
    ctkn__diag_fields(level, component, msg.data, NULL);
  ctkn__buf_free(&msg);
}
