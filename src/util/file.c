/*
 * file.c - the one reader of key and secret files (internal.h): API key
 * files, the deployment key and signing keys (ctkn_key_load()), and the
 * TLS certificate and key.
 *
 * Each must be a regular file of bounded size. The file is opened with
 * O_NONBLOCK, so a FIFO planted at its path cannot hang start-up, and
 * checked with fstat() before a byte is read; at most max + 1 bytes are
 * read, so a file that grows meanwhile is still refused rather than read
 * without end. /dev/zero, a FIFO, a socket, a directory or a large file
 * fail at once, with the path and the rule in the message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define PATH_SHOW 120 /* bytes of a path quoted in err->msg */

/* What st_mode is, in words. */
static const char *kind_of(mode_t m)
{
  if (S_ISDIR(m))
    return "a directory";
  if (S_ISCHR(m))
    return "a character device";
  if (S_ISBLK(m))
    return "a block device";
  if (S_ISFIFO(m))
    return "a FIFO";
  if (S_ISSOCK(m))
    return "a socket";
  return "not a regular file";
}

static int too_large(const struct ctkn__file_rules *r, const char *path,
                     struct ctkn_err *err)
{
  return ctkn__err_field(err, CTKN_EINVAL, r->field,
                         "%s %.*s: more than %zu bytes; %s", r->what, PATH_SHOW,
                         path, r->max,
                         r->shape != NULL ? r->shape
                                          : "it must be a regular file of "
                                            "at most that size");
}

/* The checks fstat() allows before reading: kind, size, mode. */
static int check_stat(const struct ctkn__file_rules *r, const char *path,
                      const struct stat *sb, struct ctkn_err *err)
{
  if (!S_ISREG(sb->st_mode))
    return ctkn__err_field(err, CTKN_EINVAL, r->field,
                           "%s %.*s: not a regular file (%s); it must be a "
                           "regular file of at most %zu bytes",
                           r->what, PATH_SHOW, path, kind_of(sb->st_mode),
                           r->max);
  if (sb->st_size < 0 || (unsigned long long)sb->st_size > r->max)
    return too_large(r, path, err);
  if (r->private_mode && (sb->st_mode & 077) != 0)
    /* Checked before reading, so a key that leaked is not used. */
    return ctkn__err_field(
        err, CTKN_EINVAL, r->field,
        "%s %.*s: mode %04o lets group or others read or write it; run "
        "chmod 600 %.*s",
        r->what, PATH_SHOW, path, (unsigned)(sb->st_mode & 07777), PATH_SHOW,
        path);
  return CTKN_OK;
}

/* Up to max + 1 bytes of fd onto b. */
static int read_bounded(int fd, const struct ctkn__file_rules *r,
                        const char *path, struct ctkn__buf *b,
                        struct ctkn_err *err)
{
  size_t start = b->len;

  for (;;) {
    size_t got = b->len - start;
    if (got > r->max)
      return too_large(r, path, err);
    if (ctkn__buf_reserve(b, 4096) != CTKN_OK)
      return ctkn__err(err, CTKN_ENOMEM, "%s %.*s: out of memory", r->what,
                       PATH_SHOW, path);
    size_t room = b->cap - 1 - b->len;
    if (room > r->max + 1 - got)
      room = r->max + 1 - got;
    ssize_t n = read(fd, b->data + b->len, room);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return ctkn__err_field(err, r->open_code, r->field, "%s %.*s: read: %s",
                             r->what, PATH_SHOW, path, strerror(errno));
    if (n == 0)
      return CTKN_OK;
    b->len += (size_t)n;
    b->data[b->len] = '\0';
  }
}

int ctkn__file_read(const char *path, const struct ctkn__file_rules *r,
                    struct ctkn__buf *b, struct ctkn_err *err)
{
  struct stat sb;
  int fd, rc, e;

  /* Symbolic links are followed, as secret stores (Kubernetes volumes,
   * systemd credentials) mount keys that way; what is checked is the
   * target. */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    e = errno;
    if (e == ENOENT && r->missing_ok)
      return CTKN_OK;
    return ctkn__err_field(err, r->open_code, r->field,
                           "%s %.*s: cannot open: %s", r->what, PATH_SHOW, path,
                           strerror(e));
  }
  if (fstat(fd, &sb) != 0) {
    e = errno;
    rc = ctkn__err_field(err, r->open_code, r->field, "%s %.*s: fstat: %s",
                         r->what, PATH_SHOW, path, strerror(e));
  } else if ((rc = check_stat(r, path, &sb, err)) == CTKN_OK) {
    if (ctkn__buf_reserve(b, (size_t)sb.st_size + 1) != CTKN_OK)
      rc = ctkn__err(err, CTKN_ENOMEM, "%s %.*s: out of memory", r->what,
                     PATH_SHOW, path);
    else
      rc = read_bounded(fd, r, path, b, err);
  }
  close(fd);
  return rc;
}
