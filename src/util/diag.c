/*
 * diag.c - the one logging sink (diag.h; ctkn__diag() in internal.h).
 *
 * A line is built whole in a buffer and handed over in one write(2), so
 * lines from several threads never interleave (stderr is unbuffered, and
 * a pipe keeps writes up to PIPE_BUF whole). Messages are escaped as JSON
 * strings here, so no caller can break the framing with a quote or a
 * newline in a broker's error text or a client's header.
 *
 * Access lines (ctkn__diag_fields_later()) are many: one write(2) each
 * cost a GET a sixth of its time. They gather in one buffer and go out
 * together, at most LATER_MS after the first of them, as soon as the next
 * would not fit, before any other line (order is kept) and at exit. A
 * process killed outright loses at most LATER_MS of them. What fits is
 * PIPE_BUF, so a write still lands whole in a pipe or socket that other
 * processes share, unless stderr is a regular file: there an append is
 * whole at any size and LATER_MAX bytes go in one write (at PIPE_BUF the
 * write(2)s were a thirtieth of a GET's time on `ctkn serve`).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctkn/diag.h"
#include "internal.h"

static const char *const names[] = {"error", "warn", "info", "debug"};

static atomic_int max_level = CTKN_DIAG_INFO;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static ctkn_diag_sink sink_fn;
static void *sink_arg;

static void flush_later(void);

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
  flush_later(); /* what gathered was stderr's */
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
static void now_rfc3339(char out[96])
{
  /* The date and time to the second change once a second: each thread
   * keeps its last (formatting them was a twentieth of a GET's time). */
  static _Thread_local time_t sec = -1;
  static _Thread_local char head[64];
  struct timespec ts;
  struct tm tm;

  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != sec) {
    if (gmtime_r(&ts.tv_sec, &tm) == NULL) {
      out[0] = '\0';
      return;
    }
    snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
    sec = ts.tv_sec;
  }
  char *p = stpcpy(out, head);
  long us = ts.tv_nsec / 1000;
  *p++ = '.';
  for (int i = 5; i >= 0; i--, us /= 10)
    p[i] = (char)('0' + us % 10);
  p[6] = 'Z';
  p[7] = '\0';
}

#define LATER_MS  50
#define LATER_MAX (64 * 1024)

/* Lines written later, under sink_lock; the flusher waits on later_cv.
 * later_cap is PIPE_BUF or LATER_MAX, as stderr is (later_fit()). */
static char later[LATER_MAX];
static size_t later_len, later_cap = PIPE_BUF;
/* When the batch's first line came, and how many batches were written:
 * the flusher's deadline is the batch's own, not a stale one. */
static struct timespec later_first;
static unsigned long later_written;
static pthread_cond_t later_cv = PTHREAD_COND_INITIALIZER;
static bool flusher_tried, flusher_running;
static bool flusher_idle; /* waiting for a first line, not for its time */

static void write_all(const char *line, size_t len)
{
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

/* Under sink_lock: how much may gather before one write(2), looked up
 * as each batch starts (stderr may be redirected while the process
 * runs). */
static void later_fit(void)
{
  struct stat st;

  later_cap = fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode) ? LATER_MAX
                                                                    : PIPE_BUF;
}

/* Under sink_lock. */
static void flush_later(void)
{
  if (later_len > 0) {
    write_all(later, later_len);
    later_written++;
  }
  later_len = 0;
}

static void flush_at_exit(void)
{
  pthread_mutex_lock(&sink_lock);
  flush_later();
  pthread_mutex_unlock(&sink_lock);
}

/* Writes what gathered LATER_MS after the first of it. */
static void *flusher(void *arg)
{
  (void)arg;
  pthread_mutex_lock(&sink_lock);
  for (;;) {
    while (later_len == 0) {
      flusher_idle = true;
      pthread_cond_wait(&later_cv, &sink_lock);
      flusher_idle = false;
    }
    /* LATER_MS after this batch's first line. Another thread may write
     * the batch first (it filled, or another line came) and start the
     * next without waking us: then the next has a deadline of its own. */
    unsigned long batch = later_written;
    struct timespec until = later_first;
    until.tv_nsec += LATER_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while (later_len > 0 && later_written == batch &&
           pthread_cond_timedwait(&later_cv, &sink_lock, &until) != ETIMEDOUT)
      ;
    if (later_written == batch)
      flush_later();
  }
  return NULL;
}

/* Under sink_lock: whether lines may wait for the flusher (started on
 * the first such line; without it, every line is written at once). */
static bool flusher_up(void)
{
  pthread_t t;
  pthread_attr_t a;

  if (flusher_tried)
    return flusher_running;
  flusher_tried = true;
  if (pthread_attr_init(&a) != 0)
    return false;
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  flusher_running =
      atexit(flush_at_exit) == 0 && pthread_create(&t, &a, flusher, NULL) == 0;
  pthread_attr_destroy(&a);
  return flusher_running;
}

static void emit(const char *line, size_t len, bool may_wait)
{
  pthread_mutex_lock(&sink_lock);
  if (sink_fn != NULL) {
    sink_fn(sink_arg, line, len);
  } else if (may_wait && flusher_up()) {
    if (later_len + len > later_cap)
      flush_later();
    if (later_len == 0) {
      later_fit();
      clock_gettime(CLOCK_REALTIME, &later_first);
    }
    if (len <= later_cap) {
      memcpy(later + later_len, line, len);
      if (flusher_idle)
        pthread_cond_signal(&later_cv);
      later_len += len;
    } else {
      write_all(line, len);
    }
  } else {
    flush_later();
    write_all(line, len);
  }
  pthread_mutex_unlock(&sink_lock);
}

/* {"time":"...","level":"...",["component":"...",]"msg":"..." into b:
 * in pieces, not with a format, as an access line is written per
 * request. */
static int head(struct ctkn__buf *b, enum ctkn_diag_level level,
                const char *component, const char *msg)
{
  char when[96];
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

static void fields_line(enum ctkn_diag_level level, const char *component,
                        const char *msg, const char *fields, bool may_wait)
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
    emit(b.data, b.len, may_wait);
  ctkn__buf_free(&b);
}

void ctkn__diag_fields(enum ctkn_diag_level level, const char *component,
                       const char *msg, const char *fields)
{
  fields_line(level, component, msg, fields, false);
}

void ctkn__diag_fields_later(enum ctkn_diag_level level, const char *component,
                             const char *msg, const char *fields)
{
  fields_line(level, component, msg, fields, true);
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
