/*
 * writer.c - the archive writer and export from a topic.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive_int.h"

struct ctkn_archive_writer {
  FILE *f;
  char *path, *partial;
  uint8_t prev[CTKN_SHA256_LEN];
  int32_t partitions;
  int64_t *start, *end;
  char topic[250];
  uint64_t records;
  int32_t last_partition; /* order check */
  int64_t last_offset;
  int64_t last_ts;
  uint8_t *buf;
  size_t cap;
};

/* Frame and write one entry, chaining it to the one before. */
static int write_entry(ctkn_archive_writer *w, Entry *e, struct ctkn_err *err)
{
  uint8_t len[10];
  size_t n, k = 0;
  int rc;

  e->prev_sha256 = w->prev;
  e->prev_len = sizeof(w->prev);
  if ((rc = ctkn_archive_entry_encode(e, &w->buf, &w->cap, &n, err)) != CTKN_OK)
    return rc;
  for (size_t v = n; k == 0 || v > 0; v >>= 7)
    len[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
  if (fwrite(len, 1, k, w->f) != k || fwrite(w->buf, 1, n, w->f) != n)
    return ctkn__err(err, CTKN_EIO, "%s: write: %s", w->partial,
                     strerror(errno));
  ctkn_sha256_once(w->buf, n, w->prev);
  return CTKN_OK;
}

void ctkn_archive_writer_abandon(ctkn_archive_writer *w)
{
  if (w == NULL)
    return;
  if (w->f != NULL) {
    fclose(w->f);
    unlink(w->partial);
  }
  free(w->path);
  free(w->partial);
  free(w->start);
  free(w->end);
  free(w->buf);
  free(w);
}

/*
 * Create partial for writing, locked (flock) for as long as it is open:
 * made under a temporary name, locked, then linked into place, so that a
 * partial file anyone sees is locked while its export lives. One that is
 * not locked was left by an export that died (a signal, a crash): it is
 * removed and the claim made again, instead of blocking every retry.
 * *f is the open file. Errors: CTKN_ECONFLICT (another export holds it),
 * CTKN_EIO, CTKN_ENOMEM.
 */
static int claim_partial(const char *partial, FILE **f, struct ctkn_err *err)
{
  size_t plen = strlen(partial);
  char *tmp = malloc(plen + sizeof(".XXXXXX"));
  int rc = CTKN_OK;

  *f = NULL;
  if (tmp == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "archive: out of memory");
  for (int tries = 0; tries < 3 && *f == NULL && rc == CTKN_OK; tries++) {
    struct stat a, b;
    memcpy(tmp, partial, plen);
    memcpy(tmp + plen, ".XXXXXX", sizeof(".XXXXXX"));
    int fd = mkstemp(tmp);
    if (fd < 0) {
      rc = ctkn__err(err, CTKN_EIO, "%.200s: %s", tmp, strerror(errno));
      break;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      rc = ctkn__err(err, CTKN_EIO, "%.200s: %s", tmp, strerror(errno));
    } else if (link(tmp, partial) == 0) {
      (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
      if ((*f = fdopen(fd, "wb")) != NULL) {
        fd = -1; /* *f's now */
      } else {
        rc = ctkn__err(err, CTKN_EIO, "%.200s: %s", partial, strerror(errno));
        unlink(partial);
      }
    } else if (errno != EEXIST) {
      rc = ctkn__err(err, CTKN_EIO, "%.200s: %s", partial, strerror(errno));
    } else {
      /* There already: live (locked) or left behind (not). */
      int old = open(partial, O_RDONLY | O_CLOEXEC);
      if (old >= 0 && flock(old, LOCK_EX | LOCK_NB) != 0)
        rc = ctkn__err(err, CTKN_ECONFLICT,
                       "%.200s: another export is writing it", partial);
      else if (old >= 0 && fstat(old, &a) == 0 && stat(partial, &b) == 0 &&
               a.st_ino == b.st_ino && a.st_dev == b.st_dev)
        unlink(partial); /* a dead export's: the same file, unlocked */
      if (old >= 0)
        close(old);
    }
    unlink(tmp);
    if (fd >= 0)
      close(fd);
  }
  if (*f == NULL && rc == CTKN_OK)
    rc = ctkn__err(err, CTKN_ECONFLICT, "%.200s: another export is writing it",
                   partial);
  free(tmp);
  return rc;
}

int ctkn_archive_writer_open(ctkn_archive_writer **out, const char *path,
                             const char *topic, int32_t n, const int64_t *start,
                             const int64_t *end, struct ctkn_err *err)
{
  ctkn_archive_writer *w;
  size_t plen = strlen(path);
  int rc;

  *out = NULL;
  if (n < 0 || n > CTKN_STORE_MAX_PARTITIONS)
    return ctkn__err(err, CTKN_EUSAGE, "archive: %" PRId32 " partitions", n);
  if (access(path, F_OK) == 0)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "%.200s already exists; export into a new file", path);
  if ((w = calloc(1, sizeof(*w))) == NULL || (w->path = strdup(path)) == NULL ||
      (w->partial = malloc(plen + sizeof(".partial"))) == NULL ||
      (w->start = ctkn__archive_dup_offsets(start, (size_t)n)) == NULL ||
      (w->end = ctkn__archive_dup_offsets(end, (size_t)n)) == NULL) {
    ctkn_archive_writer_abandon(w);
    return ctkn__err(err, CTKN_ENOMEM, "archive: out of memory");
  }
  memcpy(w->partial, path, plen);
  memcpy(w->partial + plen, ".partial", sizeof(".partial"));
  ctkn__strlcpy(w->topic, topic, sizeof(w->topic));
  w->partitions = n;
  w->last_partition = -1;
  w->last_ts = -1;
  if ((rc = claim_partial(w->partial, &w->f, err)) != CTKN_OK) {
    ctkn_archive_writer_abandon(w);
    return rc;
  }
  Entry e = {.body = CTKN_ARCHIVE_HEADER};
  e.header.has_format = e.header.has_partitions = true;
  e.header.format = CTKN_ARCHIVE_FORMAT;
  e.header.topic = w->topic;
  e.header.partitions = n;
  e.header.n_start = e.header.n_end = (size_t)n;
  e.header.start = w->start;
  e.header.end = w->end;
  if ((rc = write_entry(w, &e, err)) != CTKN_OK) {
    ctkn_archive_writer_abandon(w);
    return rc;
  }
  *out = w;
  return CTKN_OK;
}

int ctkn_archive_writer_add(ctkn_archive_writer *w,
                            const struct ctkn_log_msg *m,
                            const struct ctkn_log_header *headers, size_t nh,
                            struct ctkn_err *err)
{
  struct ctkn_archive_kv kv[HEADERS_MAX];
  Entry e = {.body = CTKN_ARCHIVE_RECORD};
  int rc;

  if (m->nheaders > 0) {
    nh = m->nheaders;
    headers = m->headers;
  }
  if (nh > HEADERS_MAX)
    return ctkn__err(err, CTKN_EUSAGE,
                     "archive: partition %" PRId32 " offset %" PRId64
                     " has %zu headers; at most %d are kept",
                     m->partition, m->offset, nh, HEADERS_MAX);
  if (m->partition < 0 || m->partition >= w->partitions ||
      m->partition < w->last_partition ||
      (m->partition == w->last_partition && m->offset <= w->last_offset))
    return ctkn__err(err, CTKN_EUSAGE,
                     "archive: record %" PRId32 "/%" PRId64 " is out of order",
                     m->partition, m->offset);
  for (size_t i = 0; i < nh; i++)
    kv[i] = (struct ctkn_archive_kv){headers[i].name, headers[i].value,
                                     headers[i].size};
  e.record.has_partition = e.record.has_offset = true;
  e.record.has_timestamp_ms = true;
  e.record.partition = m->partition;
  e.record.offset = m->offset;
  e.record.timestamp_ms = m->timestamp_ms;
  e.record.key = m->key;
  e.record.key_len = m->key_len;
  e.record.value = m->value;
  e.record.value_len = m->value_len;
  e.record.headers = kv;
  e.record.nheaders = nh;
  if ((rc = write_entry(w, &e, err)) != CTKN_OK)
    return rc;
  w->records++;
  w->last_partition = m->partition;
  w->last_offset = m->offset;
  if (m->timestamp_ms > w->last_ts)
    w->last_ts = m->timestamp_ms;
  return CTKN_OK;
}

int ctkn_archive_writer_finish(ctkn_archive_writer *w,
                               struct ctkn_archive_info *info,
                               struct ctkn_err *err)
{
  Entry e = {.body = CTKN_ARCHIVE_TRAILER};
  int rc;

  e.trailer.has_records = true;
  e.trailer.records = w->records;
  if ((rc = write_entry(w, &e, err)) != CTKN_OK)
    goto fail;
  if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0) {
    rc = ctkn__err(err, CTKN_EIO, "%s: %s", w->partial, strerror(errno));
    goto fail;
  }
  /* Refuse to replace a file that appeared meanwhile. */
  if (link(w->partial, w->path) != 0) {
    rc = ctkn__err(err, errno == EEXIST ? CTKN_ECONFLICT : CTKN_EIO,
                   "%.200s: %s", w->path, strerror(errno));
    goto fail;
  }
  unlink(w->partial);
  fclose(w->f);
  w->f = NULL;
  if (info != NULL) {
    memset(info, 0, sizeof(*info));
    ctkn__strlcpy(info->topic, w->topic, sizeof(info->topic));
    info->partitions = w->partitions;
    info->start_offsets = w->start;
    info->end_offsets = w->end;
    w->start = w->end = NULL;
    info->records = w->records;
    memcpy(info->sha256, w->prev, sizeof(info->sha256));
    info->last_timestamp_ms = w->last_ts;
  }
  ctkn_archive_writer_abandon(w);
  return CTKN_OK;
fail:
  ctkn_archive_writer_abandon(w);
  return rc;
}

/* ---- export ------------------------------------------------------------ */

/* Copy partition p (of n) from start to end into w: assigned alone, so
 * that the file's order is the log's (partition, offset) order whatever
 * the fetches interleave. at and msgs are scratch space. */
static int export_partition(ctkn_consumer *c, ctkn_archive_writer *w,
                            const struct ctkn_log_config *cfg, int32_t p,
                            int32_t n, int64_t start, int64_t end, int64_t *at,
                            struct ctkn_log_msg *msgs, struct ctkn_err *err)
{
  int64_t pos = start, deadline;
  int rc;

  if (pos >= end)
    return CTKN_OK;
  for (int32_t q = 0; q < n; q++)
    at[q] = q == p ? start : -1;
  if ((rc = ctkn_consumer_assign(c, at, n, err)) != CTKN_OK)
    return rc;
  deadline = ctkn__now_ms() + cfg->timeout_ms;
  while (pos < end) {
    size_t got = 0;
    if ((rc = ctkn_consumer_poll(c, 200, msgs, READ_BATCH, &got, err)) !=
        CTKN_OK)
      return rc;
    for (size_t i = 0; i < got; i++) {
      if (msgs[i].partition != p || msgs[i].offset < pos ||
          msgs[i].offset >= end)
        continue;
      if ((rc = ctkn_archive_writer_add(w, &msgs[i], NULL, 0, err)) != CTKN_OK)
        return rc;
      pos = msgs[i].offset + 1;
    }
    if (got > 0)
      deadline = ctkn__now_ms() + cfg->timeout_ms;
    else if (ctkn__now_ms() > deadline)
      return ctkn__err(err, CTKN_ETIMEOUT,
                       "export: partition %" PRId32
                       " stalled at offset %" PRId64 " of %" PRId64
                       " for %d ms",
                       p, pos, end, cfg->timeout_ms);
  }
  return CTKN_OK;
}

int ctkn_archive_export(const struct ctkn_log_config *cfg, const char *path,
                        struct ctkn_archive_info *info, struct ctkn_err *err)
{
  ctkn_archive_writer *w = NULL;
  ctkn_consumer *c = NULL;
  struct ctkn_log_msg *msgs = NULL;
  int64_t *start = NULL, *end = NULL, *at = NULL;
  int32_t n = 0;
  int rc;

  if ((rc = ctkn_consumer_open(&c, cfg, err)) != CTKN_OK ||
      (rc = ctkn_consumer_partitions(c, &n, err)) != CTKN_OK)
    goto out;
  start = calloc((size_t)n, sizeof(*start));
  end = calloc((size_t)n, sizeof(*end));
  at = calloc((size_t)n, sizeof(*at));
  msgs = calloc(READ_BATCH, sizeof(*msgs));
  if (start == NULL || end == NULL || at == NULL || msgs == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "export: out of memory");
    goto out;
  }
  for (int32_t p = 0; p < n && rc == CTKN_OK; p++)
    rc = ctkn_consumer_watermarks(c, p, &start[p], &end[p], err);
  if (rc == CTKN_OK)
    rc = ctkn_archive_writer_open(&w, path, cfg->topic, n, start, end, err);
  for (int32_t p = 0; p < n && rc == CTKN_OK; p++)
    rc = export_partition(c, w, cfg, p, n, start[p], end[p], at, msgs, err);
  if (rc == CTKN_OK) {
    rc = ctkn_archive_writer_finish(w, info, err);
    w = NULL;
  }
out:
  ctkn_archive_writer_abandon(w);
  ctkn_consumer_close(c);
  free(start);
  free(end);
  free(at);
  free(msgs);
  return rc;
}
