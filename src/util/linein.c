/*
 * linein.c - the one reader of request lines (internal.h): `ctkn create
 * --batch`'s stdin.
 *
 * A FILE with a descriptor is read through that descriptor with read(2),
 * into a buffer of our own, so the reader can tell whether another line is
 * ready now (buffered, or poll(2) says the descriptor is readable) or the
 * input has stopped for the moment. The caller ends a batch there: a
 * client that sends one line and waits for its answer gets it, instead of
 * waiting for a batch to fill. Only a whole line counts as ready: a
 * client that sent half of one is not waited for while earlier lines go
 * unanswered. A descriptor left non-blocking is waited on with poll(2),
 * not taken for a failure; a line cut by a failed read is not returned.
 * A FILE without a descriptor (a memory stream) is read with getline();
 * all of it is ready.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define LINEIN_READ (64 * 1024) /* room made before each read(2) */

void ctkn__linein_init(struct ctkn__linein *r, FILE *in)
{
  memset(r, 0, sizeof(*r));
  r->in = in;
  r->fd = fileno(in);
}

void ctkn__linein_free(struct ctkn__linein *r)
{
  free(r->buf);
  r->buf = NULL;
  r->cap = r->at = r->end = r->seen = 0;
}

/* The end of the first buffered line, or NULL. Bytes already searched
 * are not searched again (a long line arriving in many reads costs linear
 * time, and next() finds at once the newline ready() found). */
static char *find_nl(struct ctkn__linein *r)
{
  size_t from = r->seen > r->at ? r->seen : r->at;
  char *nl = NULL;

  if (r->end > from)
    nl = memchr(r->buf + from, '\n', r->end - from);
  r->seen = nl != NULL ? (size_t)(nl - r->buf) : r->end;
  return nl;
}

/* Room for LINEIN_READ more bytes and a NUL after them. */
static int make_room(struct ctkn__linein *r)
{
  if (r->at > 0) {
    memmove(r->buf, r->buf + r->at, r->end - r->at);
    r->end -= r->at;
    r->seen = r->seen > r->at ? r->seen - r->at : 0;
    r->at = 0;
  }
  if (r->cap - r->end > LINEIN_READ)
    return 0;
  size_t cap = r->cap < LINEIN_READ ? 2 * LINEIN_READ : 2 * r->cap;
  char *buf = realloc(r->buf, cap);
  if (buf == NULL)
    return ENOMEM;
  r->buf = buf;
  r->cap = cap;
  return 0;
}

/* One read(2) into the buffer. false when it gave nothing without
 * waiting (EINTR, or EAGAIN on a non-blocking descriptor); otherwise
 * bytes came, or r->eof or r->errnum says why not. */
static bool fill(struct ctkn__linein *r)
{
  int e = make_room(r);

  if (e != 0) {
    r->errnum = e;
    return true;
  }
  ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end - 1);
  if (n > 0)
    r->end += (size_t)n;
  else if (n == 0)
    r->eof = true;
  else if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
    return false;
  else
    r->errnum = errno;
  return true;
}

bool ctkn__linein_ready(struct ctkn__linein *r)
{
  struct pollfd p = {.fd = r->fd, .events = POLLIN};

  if (r->fd < 0 || r->eof || r->errnum != 0 || find_nl(r) != NULL)
    return true;
  if (poll(&p, 1, 0) <= 0)
    return false; /* nothing yet (or a signal) */
  /* Something is there: one read takes it without waiting, and only a
   * whole line (or the end) is ready; half a line would block the
   * answers to the lines before it. */
  fill(r);
  return r->eof || r->errnum != 0 || find_nl(r) != NULL;
}

ssize_t ctkn__linein_next(struct ctkn__linein *r, char **line)
{
  if (r->fd < 0) {
    ssize_t len = getline(&r->buf, &r->cap, r->in);
    if (len < 0) {
      if (ferror(r->in))
        r->errnum = errno != 0 ? errno : EIO;
      return -1;
    }
    if (len > 0 && r->buf[len - 1] == '\n')
      r->buf[--len] = '\0';
    *line = r->buf;
    return len;
  }
  for (;;) {
    char *nl = find_nl(r);
    if (nl != NULL) {
      *nl = '\0';
      *line = r->buf + r->at;
      r->at = (size_t)(nl - r->buf) + 1;
      return nl - *line;
    }
    if (r->errnum != 0)
      return -1; /* a line cut by a failed read is not a line */
    if (r->eof) {
      if (r->end == r->at)
        return -1;
      r->buf[r->end] = '\0'; /* the last line, without its newline */
      *line = r->buf + r->at;
      ssize_t len = (ssize_t)(r->end - r->at);
      r->at = r->end;
      return len;
    }
    if (!fill(r)) {
      /* A signal, or a descriptor left non-blocking by whoever started
       * us: wait for input. */
      struct pollfd p = {.fd = r->fd, .events = POLLIN};
      (void)poll(&p, 1, -1);
    }
  }
}
