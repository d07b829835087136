/*
 * linein.c - the one reader of request lines (internal.h): `ctkn create
 * --batch`'s stdin.
 *
 * A FILE with a descriptor is read through that descriptor with read(2),
 * into a buffer of our own, so the reader can tell whether another line is
 * ready now (buffered, or poll(2) says the descriptor is readable) or the
 * input has stopped for the moment. The caller ends a batch there: a
 * client that sends one line and waits for its answer gets it, instead of
 * waiting for a batch to fill. A descriptor left non-blocking is waited
 * on with poll(2), not taken for a failure. A FILE without a descriptor
 * (a memory stream) is read with getline(); all of it is ready.
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
  r->cap = r->at = r->end = 0;
}

/* A complete line is buffered. */
static bool have_line(const struct ctkn__linein *r)
{
  return r->end > r->at && memchr(r->buf + r->at, '\n', r->end - r->at);
}

bool ctkn__linein_ready(struct ctkn__linein *r)
{
  struct pollfd p = {.fd = r->fd, .events = POLLIN};

  if (r->fd < 0 || r->eof || r->errnum != 0 || have_line(r))
    return true;
  /* Readable, at its end or failed: the next call will not wait long. */
  return poll(&p, 1, 0) != 0;
}

/* Room for LINEIN_READ more bytes and a NUL after them. */
static int make_room(struct ctkn__linein *r)
{
  if (r->at > 0) {
    memmove(r->buf, r->buf + r->at, r->end - r->at);
    r->end -= r->at;
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
    char *nl = NULL;
    if (r->end > r->at &&
        (nl = memchr(r->buf + r->at, '\n', r->end - r->at)) != NULL) {
      *nl = '\0';
      *line = r->buf + r->at;
      r->at = (size_t)(nl - r->buf) + 1;
      return nl - *line;
    }
    if (r->eof || r->errnum != 0) {
      if (r->end == r->at)
        return -1;
      r->buf[r->end] = '\0'; /* the last line, without its newline */
      *line = r->buf + r->at;
      ssize_t len = (ssize_t)(r->end - r->at);
      r->at = r->end;
      return len;
    }
    if ((r->errnum = make_room(r)) != 0)
      continue;
    ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end - 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      /* A descriptor left non-blocking by whoever started us: wait. */
      struct pollfd p = {.fd = r->fd, .events = POLLIN};
      if (poll(&p, 1, -1) >= 0 || errno == EINTR)
        continue;
    }
    if (n < 0)
      r->errnum = errno;
    else if (n == 0)
      r->eof = true;
    else
      r->end += (size_t)n;
  }
}
