/*
 * archive.c - the hash-chained audit archive (proto/ctkn_archive.proto):
 * writer, checking reader, and export, replay and import on top of them.
 *
 * Framing: varint length, then the Entry message (its bytes are the
 * codec's, codec/archive.c). Chain: an entry's prev_sha256 is
 * SHA-256(previous entry's message bytes); the archive's hash is
 * SHA-256(the Trailer's message bytes).
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
#include <time.h>
#include <unistd.h>

#include "ctkn/archive.h"
#include "ctkn/codec.h"
#include "ctkn/projector.h"
#include "ctkn/settings.h"
#include "ctkn/trust.h"
#include "internal.h"

#define ENTRY_MAX   CTKN_ARCHIVE_ENTRY_MAX /* no Kafka record comes near it */
#define READ_BATCH  1024                   /* records per callback */
#define HEADERS_MAX CTKN_ARCHIVE_HEADERS_MAX

typedef struct ctkn_archive_entry Entry;

void ctkn_archive_info_free(struct ctkn_archive_info *info)
{
  if (info == NULL)
    return;
  free(info->start_offsets);
  free(info->end_offsets);
  info->start_offsets = info->end_offsets = NULL;
}

/* Copy n offsets into a fresh malloc'd array (NULL when n is 0). */
static int64_t *dup_offsets(const int64_t *v, size_t n)
{
  int64_t *c = malloc(n > 0 ? n * sizeof(*c) : 1);
  if (c != NULL && n > 0)
    memcpy(c, v, n * sizeof(*c));
  return c;
}

/* ---- writer ------------------------------------------------------------ */

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
      (w->start = dup_offsets(start, (size_t)n)) == NULL ||
      (w->end = dup_offsets(end, (size_t)n)) == NULL) {
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

/* ---- reader ------------------------------------------------------------ */

struct reader {
  FILE *f;
  const char *path;
  uint64_t entry;       /* index of the entry being read */
  uint64_t at;          /* its byte offset */
  uint64_t pos;         /* bytes consumed */
  struct ctkn__buf buf; /* the entry being read */
  uint8_t prev[CTKN_SHA256_LEN];
  int32_t last_p; /* the last record's coordinates: the order check */
  int64_t last_o;
  bool trailer; /* read */
};

static int bad(struct reader *r, struct ctkn_err *err, const char *why)
{
  return ctkn__err(err, CTKN_EDECODE,
                   "%.200s: entry %" PRIu64 " (byte %" PRIu64 "): %s", r->path,
                   r->entry, r->at, why);
}

/* The varint length of the next entry into *len; *eof at a clean end of
 * the file. */
static int read_length(struct reader *r, uint64_t *len, bool *eof,
                       struct ctkn_err *err)
{
  int c, shift = 0;

  *len = 0;
  *eof = false;
  for (;;) {
    if ((c = getc(r->f)) == EOF) {
      if (ferror(r->f))
        return ctkn__err(err, CTKN_EIO, "%s: read: %s", r->path,
                         strerror(errno));
      if (shift == 0) {
        *eof = true;
        return CTKN_OK;
      }
      return bad(r, err, "truncated in its length");
    }
    r->pos++;
    if (shift > 63)
      return bad(r, err, "malformed length");
    *len |= (uint64_t)(c & 0x7f) << shift;
    shift += 7;
    if (!(c & 0x80))
      return CTKN_OK;
  }
}

/* Read one framed entry and check its link. *e NULL at a clean EOF. */
static int next_entry(struct reader *r, Entry **e, struct ctkn_err *err)
{
  uint64_t len;
  uint8_t *p;
  bool eof;
  int rc;

  *e = NULL;
  r->at = r->pos;
  if ((rc = read_length(r, &len, &eof, err)) != CTKN_OK || eof)
    return rc;
  if (len > ENTRY_MAX)
    return bad(r, err, "length beyond any record");
  ctkn__buf_reset(&r->buf);
  if ((p = ctkn__buf_add(&r->buf, (size_t)len)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "archive: out of memory");
  if (fread(p, 1, (size_t)len, r->f) != len)
    return bad(r, err, "truncated");
  r->pos += len;
  rc = ctkn_archive_entry_decode(p, (size_t)len, e, err);
  if (rc == CTKN_ENOMEM)
    return rc;
  if (rc != CTKN_OK)
    return bad(r, err, "does not decode");
  if ((*e)->prev_sha256 == NULL || (*e)->prev_len != CTKN_SHA256_LEN ||
      memcmp((*e)->prev_sha256, r->prev, CTKN_SHA256_LEN) != 0) {
    ctkn_archive_entry_free(*e);
    *e = NULL;
    return bad(r, err,
               "chain broken: prev_sha256 is not the hash of the entry "
               "before it (an entry was edited, removed or moved)");
  }
  ctkn_sha256_once(p, (size_t)len, r->prev);
  return CTKN_OK;
}

/* Why the header entry e is not one this build reads, or NULL. */
static const char *header_fault(const Entry *e)
{
  int32_t n = e->header.partitions;

  if (e->body != CTKN_ARCHIVE_HEADER)
    return "the first entry is not a header";
  if (!e->header.has_format || e->header.format != CTKN_ARCHIVE_FORMAT)
    return "unknown archive format (this build reads 1)";
  if (e->header.topic == NULL || e->header.topic[0] == '\0' ||
      strlen(e->header.topic) > 249)
    return "header: topic must have 1 to 249 characters";
  if (!e->header.has_partitions || n < 1 || n > CTKN_STORE_MAX_PARTITIONS ||
      e->header.n_start != (size_t)n || e->header.n_end != (size_t)n)
    return "header: partitions and offsets disagree";
  for (int32_t p = 0; p < n; p++)
    if (e->header.start[p] < 0 || e->header.end[p] < e->header.start[p])
      return "header: a start offset is past its end";
  return NULL;
}

static int check_header(struct reader *r, const Entry *e,
                        struct ctkn_archive_info *info, struct ctkn_err *err)
{
  const char *fault = header_fault(e);
  int32_t n = e->header.partitions;

  if (fault != NULL)
    return bad(r, err, fault);
  ctkn__strlcpy(info->topic, e->header.topic, sizeof(info->topic));
  info->partitions = n;
  info->start_offsets = dup_offsets(e->header.start, (size_t)n);
  info->end_offsets = dup_offsets(e->header.end, (size_t)n);
  if (info->start_offsets == NULL || info->end_offsets == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "archive: out of memory");
  return CTKN_OK;
}

/* The partitions the reader has left behind before partition p (the one
 * it read records from last, and any it skipped) hold every offset of
 * the header's range: a log that is never compacted has no gaps, so a
 * partition cut short (its tail left out, the header unchanged) is not
 * an archive of that log. */
static int check_complete(struct reader *r,
                          const struct ctkn_archive_info *info, int32_t p,
                          struct ctkn_err *err)
{
  char why[200];

  for (int32_t q = r->last_p < 0 ? 0 : r->last_p; q < p; q++) {
    int64_t next = q == r->last_p ? r->last_o + 1 : info->start_offsets[q];
    if (next != info->end_offsets[q]) {
      snprintf(why, sizeof(why),
               "partition %" PRId32 " lacks its records from offset %" PRId64
               " to %" PRId64 ", where the header says it ends",
               q, next, info->end_offsets[q]);
      return bad(r, err, why);
    }
  }
  return CTKN_OK;
}

/* A pending batch: the unpacked entries and the views of them. */
struct batch {
  Entry *entries[READ_BATCH];
  struct ctkn_log_msg msgs[READ_BATCH];
  struct ctkn_archive_headers hdrs[READ_BATCH];
  struct ctkn_log_header *hlist[READ_BATCH];
  size_t n;
};

static void batch_clear(struct batch *b)
{
  for (size_t i = 0; i < b->n; i++) {
    ctkn_archive_entry_free(b->entries[i]);
    free(b->hlist[i]);
  }
  b->n = 0;
}

/* Check a record entry against the ones before it and add it to b,
 * which then owns e. */
static int take_record(struct reader *r, Entry *e, struct batch *b,
                       struct ctkn_archive_info *info, struct ctkn_err *err)
{
  struct ctkn_log_msg *m = &b->msgs[b->n];
  struct ctkn_log_header *h = NULL;
  int32_t p = e->record.partition;
  int64_t o = e->record.offset;
  size_t nh = e->record.nheaders;

  if (!e->record.has_partition || !e->record.has_offset || p < 0 ||
      p >= info->partitions)
    return bad(r, err, "record: partition outside the header's");
  if (o < info->start_offsets[p] || o >= info->end_offsets[p])
    return bad(r, err, "record: offset outside the header's range");
  if (p < r->last_p || (p == r->last_p && o <= r->last_o))
    return bad(r, err, "record: out of (partition, offset) order");
  if (p != r->last_p) {
    int rc = check_complete(r, info, p, err);
    if (rc != CTKN_OK)
      return rc;
    if (o != info->start_offsets[p])
      return bad(r, err,
                 "record: its partition's records do not start at the "
                 "header's start offset (records are missing)");
  } else if (o != r->last_o + 1) {
    return bad(r, err, "record: an offset is skipped (records are missing)");
  }
  if (nh > HEADERS_MAX)
    return bad(r, err, "record: too many headers");
  if (nh > 0 && (h = calloc(nh, sizeof(*h))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "archive: out of memory");
  *m = (struct ctkn_log_msg){.schema_version = -1};
  for (size_t i = 0; i < nh; i++) {
    const struct ctkn_archive_kv *kv = &e->record.headers[i];
    h[i] = (struct ctkn_log_header){kv->name, kv->value, kv->size};
    ctkn_log_msg_note_header(m, h[i].name, h[i].value, h[i].size);
  }
  m->partition = p;
  m->offset = o;
  m->timestamp_ms = e->record.has_timestamp_ms ? e->record.timestamp_ms : -1;
  m->key = e->record.key;
  m->key_len = e->record.key_len;
  m->value = e->record.value;
  m->value_len = e->record.value_len;
  b->entries[b->n] = e;
  b->hlist[b->n] = h;
  b->hdrs[b->n] = (struct ctkn_archive_headers){h, nh};
  m->headers = h;
  m->nheaders = nh;
  b->n++;
  r->last_p = p;
  r->last_o = o;
  info->records++;
  if (m->timestamp_ms > info->last_timestamp_ms)
    info->last_timestamp_ms = m->timestamp_ms;
  return CTKN_OK;
}

/* One entry after the header: a record for b, or the trailer. Takes
 * ownership of e. */
static int take_entry(struct reader *r, Entry *e, struct batch *b,
                      struct ctkn_archive_info *info, struct ctkn_err *err)
{
  int rc;

  if (r->trailer) {
    rc = bad(r, err, "data after the trailer");
  } else if (e->body == CTKN_ARCHIVE_TRAILER) {
    rc = bad(r, err, "trailer: the record count does not match");
    if (e->trailer.has_records && e->trailer.records == info->records &&
        (rc = check_complete(r, info, info->partitions, err)) == CTKN_OK) {
      memcpy(info->sha256, r->prev, sizeof(info->sha256));
      r->trailer = true;
      rc = CTKN_OK;
    }
  } else if (e->body != CTKN_ARCHIVE_RECORD) {
    rc = bad(r, err, "neither a record nor the trailer");
  } else if ((rc = take_record(r, e, b, info, err)) == CTKN_OK) {
    return CTKN_OK;
  }
  ctkn_archive_entry_free(e);
  return rc;
}

/* The entries after the header, handed to cb a batch at a time. */
static int read_body(struct reader *r, struct batch *b, ctkn_archive_cb cb,
                     void *arg, struct ctkn_archive_info *info,
                     struct ctkn_err *err)
{
  Entry *e;
  int rc;

  for (r->entry = 1;; r->entry++) {
    if ((rc = next_entry(r, &e, err)) != CTKN_OK)
      return rc;
    if (e == NULL)
      return r->trailer
                 ? CTKN_OK
                 : bad(r, err, "truncated: the file ends before its trailer");
    if ((rc = take_entry(r, e, b, info, err)) != CTKN_OK)
      return rc;
    if (b->n == READ_BATCH) {
      if (cb != NULL && (rc = cb(arg, b->msgs, b->hdrs, b->n, err)) != 0)
        return rc;
      batch_clear(b);
    }
  }
}

int ctkn_archive_read(const char *path, ctkn_archive_cb cb, void *arg,
                      struct ctkn_archive_info *info, struct ctkn_err *err)
{
  struct reader r = {
      .path = path, .buf = CTKN__BUF_INIT, .last_p = -1, .last_o = -1};
  struct batch *b = calloc(1, sizeof(*b));
  Entry *e = NULL;
  int rc;

  memset(info, 0, sizeof(*info));
  info->last_timestamp_ms = -1;
  if (b == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "archive: out of memory");
  if ((r.f = fopen(path, "rb")) == NULL) {
    free(b);
    return ctkn__err(err, CTKN_EIO, "%.200s: %s", path, strerror(errno));
  }
  if ((rc = next_entry(&r, &e, err)) == CTKN_OK) {
    if (e == NULL) {
      rc = bad(&r, err, "empty file: not an archive");
    } else {
      rc = check_header(&r, e, info, err);
      ctkn_archive_entry_free(e);
    }
  }
  if (rc == CTKN_OK)
    rc = read_body(&r, b, cb, arg, info, err);
  if (rc == CTKN_OK && b->n > 0 && cb != NULL)
    rc = cb(arg, b->msgs, b->hdrs, b->n, err);
  batch_clear(b);
  free(b);
  ctkn__buf_free(&r.buf);
  fclose(r.f);
  if (rc != CTKN_OK)
    ctkn_archive_info_free(info);
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

/* ---- what trust needs, from an archive ---------------------------------- */

void ctkn_archive_trust_free(struct ctkn_archive_trust *t)
{
  if (t == NULL)
    return;
  free(t->keyring);
  ctkn_keyring_free(&t->kr);
  ctkn_adoption_free(&t->ad);
  t->keyring = NULL;
  t->keyring_len = 0;
}

struct ring_ctx {
  const ctkn_pubkey *root;
  struct ctkn_archive_trust *t;
};

/* Merge m's adoption into the adoptions when the root signed it for the
 * log of the keyring before it (`trust adopt` needs a keyring: it comes
 * first; the log ID never changes). */
static int ring_adoption(struct ring_ctx *x, const struct ctkn_log_msg *m)
{
  struct ctkn_archive_trust *t = x->t;
  struct ctkn_adoption b;
  int rc = CTKN_OK;

  if (t->kr.version == 0 ||
      ctkn_trust_adoption_open(m->value, m->value_len, x->root, &b, NULL) !=
          CTKN_OK)
    return CTKN_OK;
  memcpy(t->ad.log_id, t->kr.log_id, CTKN_LOG_ID_LEN);
  if (memcmp(t->kr.log_id, b.log_id, CTKN_LOG_ID_LEN) == 0)
    rc = ctkn_adoption_merge(&t->ad, &b, NULL);
  ctkn_adoption_free(&b);
  return rc;
}

/* A keyring record: kept when the root signed it and it is the newest. */
static int ring_keyring(struct ring_ctx *x, const struct ctkn_log_msg *m)
{
  struct ctkn_archive_trust *t = x->t;
  struct ctkn_keyring cand;
  uint8_t *raw;

  ctkn_keyring_init(&cand);
  if (ctkn_trust_keyring_open(m->value, m->value_len, x->root, &cand, NULL) !=
          CTKN_OK ||
      cand.version <= t->kr.version) {
    ctkn_keyring_free(&cand);
    return CTKN_OK;
  }
  if ((raw = malloc(m->value_len ? m->value_len : 1)) == NULL) {
    ctkn_keyring_free(&cand);
    return CTKN_ENOMEM;
  }
  memcpy(raw, m->value, m->value_len);
  free(t->keyring);
  t->keyring = raw;
  t->keyring_len = m->value_len;
  ctkn_keyring_free(&t->kr);
  t->kr = cand;
  return CTKN_OK;
}

static int ring_batch(void *arg, const struct ctkn_log_msg *msgs,
                      const struct ctkn_archive_headers *headers, size_t n,
                      struct ctkn_err *err)
{
  struct ring_ctx *x = arg;
  int rc = CTKN_OK;

  (void)headers;
  for (size_t i = 0; i < n && rc == CTKN_OK; i++) {
    if (strcmp(msgs[i].event_type, CTKN_TYPE_ADOPTION) == 0)
      rc = ring_adoption(x, &msgs[i]);
    else if (strcmp(msgs[i].event_type, CTKN_TYPE_KEYRING) == 0)
      rc = ring_keyring(x, &msgs[i]);
  }
  return rc == CTKN_OK ? CTKN_OK
                       : ctkn__err(err, CTKN_ENOMEM, "archive: out of memory");
}

int ctkn_archive_trust_read(const char *path, const ctkn_pubkey *root,
                            struct ctkn_archive_trust *t, struct ctkn_err *err)
{
  struct ring_ctx x = {.root = root, .t = t};
  struct ctkn_archive_info info;
  int rc;

  memset(t, 0, sizeof(*t));
  ctkn_keyring_init(&t->kr);
  rc = ctkn_archive_read(path, ring_batch, &x, &info, err);
  ctkn_archive_info_free(&info);
  if (rc == CTKN_OK && t->kr.version == 0)
    rc = ctkn__err_field(err, CTKN_EINVAL, "keyring",
                         "%.200s holds no keyring signed by the trust root "
                         "(give the settings topic's archive)",
                         path);
  if (rc != CTKN_OK)
    ctkn_archive_trust_free(t);
  return rc;
}

/* ---- replay ------------------------------------------------------------ */

struct replay_ctx {
  ctkn_store *st;
  ctkn_env env;
  ctkn_projector_judged *judged; /* with a trust root; else NULL */
  bool *paused;
  int32_t n;
  struct ctkn_projector_stats stats;
};

static int replay_batch(void *arg, const struct ctkn_log_msg *msgs,
                        const struct ctkn_archive_headers *headers, size_t n,
                        struct ctkn_err *err)
{
  struct replay_ctx *x = arg;

  (void)headers;
  if (x->judged != NULL)
    return ctkn_projector_judged_apply(x->judged, msgs, n, x->paused, x->n,
                                       &x->stats, err);
  return ctkn_projector_apply(x->st, x->env, msgs, n, x->paused, x->n,
                              &x->stats, err);
}

/* The hash of partition p's records below end in the archive, as
 * ctkn_trust_adopt_hash() hashes the log's. */
struct prefix_ctx {
  ctkn_sha256 *h;
  int32_t p;
  int64_t end, next; /* the offset the hash expects next */
};

static int prefix_batch(void *arg, const struct ctkn_log_msg *msgs,
                        const struct ctkn_archive_headers *headers, size_t n,
                        struct ctkn_err *err)
{
  struct prefix_ctx *x = arg;

  (void)headers;
  (void)err;
  for (size_t i = 0; i < n; i++)
    if (msgs[i].partition == x->p && msgs[i].offset == x->next &&
        msgs[i].offset < x->end) {
      ctkn_trust_adopt_add(x->h, &msgs[i]);
      x->next++;
    }
  return CTKN_OK;
}

static int replay_adopt_hash(void *arg, const uint8_t log_id[CTKN_LOG_ID_LEN],
                             int32_t p, int64_t end,
                             uint8_t out[CTKN_CHAIN_LEN], struct ctkn_err *err)
{
  const char *path = arg;
  struct prefix_ctx x = {.p = p, .end = end};
  struct ctkn_archive_info info;
  int rc;

  if ((x.h = ctkn_trust_adopt_begin(log_id, p)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "replay: out of memory");
  rc = ctkn_archive_read(path, prefix_batch, &x, &info, err);
  ctkn_archive_info_free(&info);
  ctkn_trust_adopt_end(x.h, out);
  if (rc == CTKN_OK && x.next != end)
    rc = ctkn__err_field(err, CTKN_EINVAL, "partition",
                         "an adoption covers partition %" PRId32
                         " up to offset %" PRId64
                         ", and the archive lacks its records from offset "
                         "%" PRId64,
                         p, end, x.next);
  return rc;
}

/* CTKN_ECONFLICT unless st holds no token and no offset of the
 * archive's partitions. */
static int check_empty(ctkn_store *st, const struct ctkn_archive_info *info,
                       struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  int64_t any = 0;
  rc = ctkn_store_count(txn, &any, err);
  for (int32_t p = 0; p < info->partitions && any == 0 && rc == CTKN_OK; p++)
    rc = ctkn_store_offset(txn, p, &any, err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    return rc;
  if (any != 0)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "the projection is not empty; replay into a new --db");
  return CTKN_OK;
}

/* Read the archive again, applying its records: it must not have changed
 * since info was read, and no partition may pause. */
static int replay_records(const char *path, struct replay_ctx *x,
                          const struct ctkn_archive_info *info,
                          struct ctkn_err *err)
{
  struct ctkn_archive_info again;
  int rc;

  if ((x->paused = calloc((size_t)x->n, sizeof(*x->paused))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "replay: out of memory");
  rc = ctkn_archive_read(path, replay_batch, x, &again, err);
  if (rc == CTKN_OK && memcmp(again.sha256, info->sha256, CTKN_SHA256_LEN))
    rc = ctkn__err(err, CTKN_EIO, "%.200s changed while it was replayed", path);
  ctkn_archive_info_free(&again);
  for (int32_t p = 0; rc == CTKN_OK && p < x->n; p++)
    if (x->paused[p])
      rc = ctkn__err(err, CTKN_EFORMAT,
                     "partition %" PRId32 " holds a newer schema version "
                     "than this build's %d; upgrade ctkn to replay it",
                     p, CTKN_SCHEMA_VERSION);
  free(x->paused);
  x->paused = NULL;
  return rc;
}

/* The records, judged by the root's keyring in the settings archive (or
 * the archive itself) when there is a root, else as they are. */
static int replay_judged(const char *path, struct replay_ctx *x,
                         const struct ctkn_archive_info *info,
                         const uint8_t *trust_root, const char *settings_path,
                         struct ctkn_err *err)
{
  struct ctkn_archive_trust at;
  ctkn_pubkey *root = NULL;
  int rc;

  if (trust_root == NULL)
    return replay_records(path, x, info, err);
  if ((rc = ctkn_pubkey_new(&root, trust_root, err)) != CTKN_OK)
    return rc;
  rc = ctkn_archive_trust_read(settings_path ? settings_path : path, root, &at,
                               err);
  ctkn_pubkey_free(root);
  if (rc != CTKN_OK)
    return rc;
  struct ctkn_trust_source src = {.keyring = at.keyring,
                                  .keyring_len = at.keyring_len,
                                  .adoption = &at.ad,
                                  .adopt_hash = replay_adopt_hash,
                                  .arg = (void *)path};
  if ((rc = ctkn_projector_judged_open(&x->judged, x->st, x->env, trust_root,
                                       &src, err)) == CTKN_OK)
    rc = replay_records(path, x, info, err);
  ctkn_projector_judged_close(x->judged);
  x->judged = NULL;
  ctkn_archive_trust_free(&at);
  return rc;
}

/* After a replay: every partition's records were judged (applied or
 * quarantined). Records still held back at the archive's end wait for a
 * proof (a checkpoint) it does not hold: an edited record, a cut chain,
 * or an export taken between a batch and its checkpoint. A live
 * projection would wait, showing its lag; a frozen one cannot, and must
 * not present the state before them as the archive's. */
static int check_judged(ctkn_store *st, const struct ctkn_archive_info *info,
                        struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  for (int32_t p = 0; rc == CTKN_OK && p < info->partitions; p++) {
    int64_t at = 0;
    if (info->end_offsets[p] <= info->start_offsets[p])
      continue;
    if ((rc = ctkn_store_offset(txn, p, &at, err)) == CTKN_OK &&
        at < info->end_offsets[p])
      rc = ctkn__err_field(
          err, CTKN_EDECODE, "records",
          "partition %" PRId32 " offset %" PRId64 " to %" PRId64
          ": never proven by a checkpoint in the archive (an edited or cut "
          "record, or an export taken between a batch and its checkpoint; "
          "ctkn audit verify names them), so the replay stops before them",
          p, at < info->start_offsets[p] ? info->start_offsets[p] : at,
          info->end_offsets[p]);
  }
  ctkn_store_abort(txn);
  return rc;
}

int ctkn_archive_replay(const char *path, ctkn_store *st, ctkn_env env,
                        const uint8_t *trust_root, const char *settings_path,
                        struct ctkn_archive_info *info, struct ctkn_err *err)
{
  struct replay_ctx x = {.st = st, .env = env};
  int rc;

  /* Check the whole file first: a projection is never built from a
   * broken archive. */
  if ((rc = ctkn_archive_read(path, NULL, NULL, info, err)) != CTKN_OK)
    return rc;
  x.n = info->partitions;
  if ((rc = check_empty(st, info, err)) == CTKN_OK &&
      (rc = ctkn_store_bind(st, info->topic, env, err)) == CTKN_OK &&
      (rc = replay_judged(path, &x, info, trust_root, settings_path, err)) ==
          CTKN_OK &&
      (rc = check_judged(st, info, err)) == CTKN_OK)
    /* Frozen, as of its latest record: an archive says nothing past it. */
    rc = ctkn_store_freeze(
        st, info->last_timestamp_ms < 0 ? 0 : info->last_timestamp_ms * 1000,
        err);
  if (rc != CTKN_OK)
    ctkn_archive_info_free(info);
  return rc;
}

/* ---- import ------------------------------------------------------------ */

/*
 * An import appends the archive's records to an empty topic, each
 * partition's at offsets from 0. One cut short (a signal, a lost broker)
 * is resumed: the records already in a partition (have[p]) must be the
 * archive's first ones, byte for byte, read back in order (c, the
 * partition cur assigned, buf/nbuf/at the last poll); the rest are
 * appended.
 */
struct import_ctx {
  ctkn_producer *p;
  const int64_t *start;
  struct ctkn_log_record *recs;
  const struct ctkn_log_config *cfg;
  ctkn_consumer *c;
  int32_t nparts;
  int64_t *have; /* records already in each partition */
  int32_t cur;   /* the partition being read back, or -1 */
  struct ctkn_log_msg *buf;
  size_t nbuf, at;
  uint64_t kept; /* records found already there */
};

static bool same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Whether the topic's record t is the archive's m (with headers h), as an
 * import appends it. */
static bool same_record(const struct ctkn_log_msg *t,
                        const struct ctkn_log_msg *m,
                        const struct ctkn_archive_headers *h)
{
  if (!same_bytes(t->key, t->key_len, m->key, m->key_len) ||
      !same_bytes(t->value, t->value_len, m->value, m->value_len) ||
      t->timestamp_ms != (m->timestamp_ms < 0 ? 0 : m->timestamp_ms) ||
      t->nheaders != h->n)
    return false;
  for (size_t i = 0; i < h->n; i++) {
    const struct ctkn_log_header *a = &t->headers[i], *b = &h->list[i];
    if (strcmp(a->name, b->name) != 0 ||
        !same_bytes(a->value, a->size, b->value, b->size))
      return false;
  }
  return true;
}

/* The topic's next record of partition p, read back in order; NULL with
 * *rc set when it does not come within the timeout. */
static const struct ctkn_log_msg *read_back(struct import_ctx *x, int32_t p,
                                            int *rc, struct ctkn_err *err)
{
  *rc = CTKN_OK;
  if (x->cur != p) {
    int64_t *offs = malloc((size_t)x->nparts * sizeof(*offs));
    if (offs == NULL) {
      *rc = ctkn__err(err, CTKN_ENOMEM, "import: out of memory");
      return NULL;
    }
    for (int32_t q = 0; q < x->nparts; q++)
      offs[q] = q == p ? 0 : -1;
    *rc = ctkn_consumer_assign(x->c, offs, x->nparts, err);
    free(offs);
    if (*rc != CTKN_OK)
      return NULL;
    x->cur = p;
    x->nbuf = x->at = 0;
  }
  int64_t deadline = ctkn__now_ms() + x->cfg->timeout_ms;
  while (x->at == x->nbuf) {
    int left = (int)(deadline - ctkn__now_ms());
    if (left <= 0) {
      *rc = ctkn__err(err, CTKN_ETIMEOUT,
                      "import: partition %" PRId32
                      " could not be read back within %d ms",
                      p, x->cfg->timeout_ms);
      return NULL;
    }
    x->at = 0;
    if ((*rc = ctkn_consumer_poll(x->c, left, x->buf, READ_BATCH, &x->nbuf,
                                  err)) != CTKN_OK)
      return NULL;
  }
  return &x->buf[x->at++];
}

static const struct ctkn_log_header no_headers[1];

static int import_batch(void *arg, const struct ctkn_log_msg *msgs,
                        const struct ctkn_archive_headers *headers, size_t n,
                        struct ctkn_err *err)
{
  struct import_ctx *x = arg;
  size_t k = 0;
  int rc;

  /* What an earlier import appended already: the same, or a conflict. */
  while (k < n && msgs[k].offset - x->start[msgs[k].partition] <
                      x->have[msgs[k].partition]) {
    const struct ctkn_log_msg *t = read_back(x, msgs[k].partition, &rc, err);
    if (t == NULL)
      return rc;
    if (t->offset != msgs[k].offset - x->start[msgs[k].partition] ||
        !same_record(t, &msgs[k], &headers[k]))
      return ctkn__err(err, CTKN_ECONFLICT,
                       "import: topic %s holds another record at %" PRId32
                       "/%" PRId64 " than the archive's %" PRId32 "/%" PRId64
                       "; import into a new topic",
                       x->cfg->topic, t->partition, t->offset,
                       msgs[k].partition, msgs[k].offset);
    x->kept++;
    k++;
  }
  msgs += k, headers += k, n -= k;
  for (size_t i = 0; i < n; i++) {
    if (msgs[i].offset - x->start[msgs[i].partition] <
        x->have[msgs[i].partition])
      return ctkn__err(err, CTKN_EINTERNAL, "import: records out of order");
    x->recs[i] = (struct ctkn_log_record){
        .partition = msgs[i].partition,
        .key = msgs[i].key,
        .klen = msgs[i].key_len,
        .value = msgs[i].value,
        .vlen = msgs[i].value_len,
        .timestamp_ms = msgs[i].timestamp_ms < 0 ? 0 : msgs[i].timestamp_ms,
        .schema_version = -1,
        /* Verbatim, even none: never headers of the importer's own. */
        .headers = headers[i].list ? headers[i].list : no_headers,
        .nheaders = headers[i].n};
  }
  if (n == 0)
    return CTKN_OK;
  if ((rc = ctkn_producer_send_batch(x->p, x->recs, n, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < n; i++) {
    int32_t p = msgs[i].partition;
    if (x->recs[i].out_partition != p ||
        x->recs[i].out_offset != msgs[i].offset - x->start[p])
      /* Appended, but not where the archive's order puts it: another
       * client appends to the topic too. */
      return ctkn__err(
          err, CTKN_ECONFLICT,
          "import: record %" PRId32 "/%" PRId64 " landed at %" PRId32
          "/%" PRId64 ": another client appends to the topic; delete it and "
          "import again, alone",
          p, msgs[i].offset, x->recs[i].out_partition, x->recs[i].out_offset);
  }
  return CTKN_OK;
}

/* After an import into cfg's topic: warn when its settings topic holds no
 * record, since every reader judges the events by the keyring there and
 * refuses them until it is imported too. Not for a settings topic's own
 * import. */
static void warn_without_settings(const struct ctkn_log_config *cfg)
{
  static const char suffix[] = "_settings";
  struct ctkn_log_config scfg = *cfg; /* shallow: overrides borrowed */
  size_t len = strlen(cfg->topic);
  ctkn_consumer *c = NULL;
  struct ctkn_err e;
  int64_t lo, hi, held = 0;
  int32_t n = 0;

  if ((len >= sizeof(suffix) - 1 &&
       strcmp(cfg->topic + len - (sizeof(suffix) - 1), suffix) == 0) ||
      ctkn_settings_topic(cfg->topic, scfg.topic, sizeof(scfg.topic), &e) !=
          CTKN_OK)
    return;
  if (ctkn_consumer_open(&c, &scfg, &e) == CTKN_OK &&
      ctkn_consumer_partitions(c, &n, &e) == CTKN_OK)
    for (int32_t p = 0; p < n; p++)
      if (ctkn_consumer_watermarks(c, p, &lo, &hi, &e) == CTKN_OK)
        held += hi - lo;
  ctkn_consumer_close(c);
  if (held == 0)
    ctkn__diag(CTKN_DIAG_WARN, "import",
               "%s holds no records: every reader of %s judges it by the "
               "keyring there, and refuses it until that is imported too "
               "(ctkn import --topic %s --from-file SETTINGS-ARCHIVE, an "
               "export of the old settings topic)",
               scfg.topic, cfg->topic, scfg.topic);
}

int ctkn_archive_import(const char *path, const struct ctkn_log_config *cfg,
                        int replication_factor, struct ctkn_archive_info *info,
                        struct ctkn_err *err)
{
  struct import_ctx x = {.cfg = cfg, .cur = -1};
  ctkn_consumer *c = NULL;
  bool created;
  int32_t have;
  int rc;

  if ((rc = ctkn_archive_read(path, NULL, NULL, info, err)) != CTKN_OK)
    return rc;
  x.start = info->start_offsets;
  if ((rc = ctkn_log_create_topic(cfg, info->partitions, replication_factor,
                                  &created, &have, err)) != CTKN_OK)
    goto out;
  if (have != info->partitions) {
    rc = ctkn__err(err, CTKN_ECONFLICT,
                   "topic %s has %" PRId32 " partitions, the archive %" PRId32
                   "; import into a new topic",
                   cfg->topic, have, info->partitions);
    goto out;
  }
  if ((rc = ctkn_consumer_open(&c, cfg, err)) != CTKN_OK)
    goto out;
  x.c = c;
  x.nparts = have;
  if ((x.have = calloc((size_t)have, sizeof(*x.have))) == NULL ||
      (x.buf = calloc(READ_BATCH, sizeof(*x.buf))) == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "import: out of memory");
    goto out;
  }
  /* A topic that holds anything must hold a prefix of the archive's
   * partitions: an import cut short, resumed (checked record by record as
   * they are read back). Anything else is another log. */
  for (int32_t p = 0; p < have; p++) {
    int64_t lo, hi, want = info->end_offsets[p] - info->start_offsets[p];
    if ((rc = ctkn_consumer_watermarks(c, p, &lo, &hi, err)) != CTKN_OK)
      goto out;
    if (lo != 0 || hi > want) {
      rc = ctkn__err(err, CTKN_ECONFLICT,
                     "topic %s is not empty (partition %" PRId32
                     " holds offsets %" PRId64 " to %" PRId64
                     ", more than the archive's %" PRId64
                     " records could have put there); import into a new topic",
                     cfg->topic, p, lo, hi, want);
      goto out;
    }
    x.have[p] = hi;
  }
  if ((x.recs = calloc(READ_BATCH, sizeof(*x.recs))) == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "import: out of memory");
    goto out;
  }
  if ((rc = ctkn_producer_open(&x.p, cfg, err)) != CTKN_OK)
    goto out;
  struct ctkn_archive_info again;
  rc = ctkn_archive_read(path, import_batch, &x, &again, err);
  if (rc == CTKN_OK && memcmp(again.sha256, info->sha256, CTKN_SHA256_LEN))
    rc = ctkn__err(err, CTKN_EIO, "%.200s changed while it was imported", path);
  ctkn_archive_info_free(&again);
  if (rc == CTKN_OK && x.kept > 0)
    ctkn__diag(CTKN_DIAG_INFO, "archive",
               "import resumed: %" PRIu64 " record(s) were in %s already, "
               "the same as the archive's",
               x.kept, cfg->topic);
  if (rc == CTKN_OK)
    warn_without_settings(cfg);
out:
  ctkn_producer_close(x.p);
  ctkn_consumer_close(c);
  free(x.recs);
  free(x.have);
  free(x.buf);
  if (rc != CTKN_OK)
    ctkn_archive_info_free(info);
  return rc;
}
