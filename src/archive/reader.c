/*
 * reader.c - the checking reader, and what trust needs from an
 * archive.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"
#include "ctkn/trust.h"

void ctkn_archive_info_free(struct ctkn_archive_info *info)
{
  if (info == NULL)
    return;
  free(info->start_offsets);
  free(info->end_offsets);
  info->start_offsets = info->end_offsets = NULL;
}

int64_t *ctkn__archive_dup_offsets(const int64_t *v, size_t n)
{
  int64_t *c = malloc(n > 0 ? n * sizeof(*c) : 1);
  if (c != NULL && n > 0)
    memcpy(c, v, n * sizeof(*c));
  return c;
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
  info->start_offsets = ctkn__archive_dup_offsets(e->header.start, (size_t)n);
  info->end_offsets = ctkn__archive_dup_offsets(e->header.end, (size_t)n);
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
