/*
 * import.c - an archive imported into an empty topic, resumable.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"
#include "ctkn/settings.h"

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
