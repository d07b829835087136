/*
 * log.c - the log's public functions (log.h), forwarded through the
 * backend table (backend.h) to the implementation the configuration
 * names: Kafka unless a test put another there.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "ctkn/log.h"
#include "internal.h"
#include "log/backend.h"

static const struct ctkn__log_backend *
backend_of(const struct ctkn_log_config *cfg)
{
  return cfg->backend != NULL ? cfg->backend : &ctkn__log_kafka;
}

int ctkn_log_create_topic(const struct ctkn_log_config *cfg, int partitions,
                          int replication_factor, bool *created,
                          int32_t *out_partitions, struct ctkn_err *err)
{
  *created = false;
  if (partitions < 1)
    return ctkn__err(err, CTKN_EUSAGE, "partitions must be at least 1 (%d)",
                     partitions);
  if (replication_factor < 1 && replication_factor != -1)
    return ctkn__err(err, CTKN_EUSAGE,
                     "replication factor must be at least 1, or -1 for the "
                     "broker's default (%d)",
                     replication_factor);
  return backend_of(cfg)->create_topic(cfg, partitions, replication_factor,
                                       created, out_partitions, err);
}

/* ---- producer ---------------------------------------------------------- */

int ctkn_producer_open(ctkn_producer **out, const struct ctkn_log_config *cfg,
                       struct ctkn_err *err)
{
  const struct ctkn__log_backend *be = backend_of(cfg);
  int rc;

  *out = NULL;
  if ((rc = be->producer_open(out, cfg, err)) == CTKN_OK)
    (*out)->be = be;
  return rc;
}

void ctkn_producer_close(ctkn_producer *p)
{
  if (p != NULL)
    p->be->producer_close(p);
}

int ctkn_producer_send_batch(ctkn_producer *p, struct ctkn_log_record *recs,
                             size_t n, struct ctkn_err *err)
{
  return p->be->send_batch(p, recs, n, err);
}

/* A backend without the two halves sends at the start; the finish only
 * tells what happened. */
struct ctkn_produce_ticket {
  void *be_ticket; /* the backend's, when it has send_start */
  int rc;
  struct ctkn_err err;
};

int ctkn_producer_start_batch(ctkn_producer *p, struct ctkn_log_record *recs,
                              size_t n, ctkn_produce_ticket **out,
                              struct ctkn_err *err)
{
  ctkn_produce_ticket *t = calloc(1, sizeof(*t));
  int rc;

  *out = NULL;
  if (t == NULL)
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory producing records");
  else if (p->be->send_start == NULL)
    t->rc = p->be->send_batch(p, recs, n, &t->err);
  else if ((rc = p->be->send_start(p, recs, n, &t->be_ticket, err)) !=
           CTKN_OK) {
    free(t);
    t = NULL;
  }
  if (t == NULL) {
    for (size_t i = 0; i < n; i++) {
      recs[i].rc = CTKN_ENOMEM;
      recs[i].out_partition = -1;
      recs[i].out_offset = -1;
    }
    return CTKN_ENOMEM;
  }
  *out = t;
  return CTKN_OK;
}

int ctkn_producer_finish_batch(ctkn_producer *p, ctkn_produce_ticket *t,
                               struct ctkn_err *err)
{
  int rc;

  if (t->be_ticket != NULL) {
    rc = p->be->send_finish(p, t->be_ticket, err);
  } else {
    rc = t->rc;
    if (rc != CTKN_OK && err != NULL)
      *err = t->err;
  }
  free(t);
  return rc;
}

int ctkn_producer_send(ctkn_producer *p, int32_t partition, const void *key,
                       size_t klen, const void *value, size_t vlen,
                       int64_t timestamp_ms, const char *event_type,
                       int schema_version, int32_t *out_partition,
                       int64_t *out_offset, struct ctkn_err *err)
{
  struct ctkn_log_record rec = {.partition = partition,
                                .key = key,
                                .klen = klen,
                                .value = value,
                                .vlen = vlen,
                                .timestamp_ms = timestamp_ms,
                                .event_type = event_type,
                                .schema_version = schema_version};
  int rc = p->be->send_batch(p, &rec, 1, err);

  if (rc == CTKN_OK) {
    if (out_partition != NULL)
      *out_partition = rec.out_partition;
    if (out_offset != NULL)
      *out_offset = rec.out_offset;
  }
  return rc;
}

int32_t ctkn_log_partition_for(const void *key, size_t klen, int32_t n)
{
  if (n <= 0)
    return -1;
  /* librdkafka's Java-compatible murmur2: toPositive(murmur2(key)) % n.
   * It does not use the topic handle or the opaques, so every backend
   * partitions as Kafka's clients do. */
  return rd_kafka_msg_partitioner_murmur2(NULL, key, klen, n, NULL, NULL);
}

/* ---- consumer ---------------------------------------------------------- */

static int consumer_open(ctkn_consumer **out, const struct ctkn_log_config *cfg,
                         const struct ctkn__consumer_opts *opts,
                         struct ctkn_err *err)
{
  const struct ctkn__log_backend *be = backend_of(cfg);
  int rc;

  *out = NULL;
  if ((rc = be->consumer_open(out, cfg, opts, err)) == CTKN_OK)
    (*out)->be = be;
  return rc;
}

int ctkn_consumer_open(ctkn_consumer **out, const struct ctkn_log_config *cfg,
                       struct ctkn_err *err)
{
  struct ctkn__consumer_opts o = {.kind = CTKN__CONSUMER_ASSIGNED};

  return consumer_open(out, cfg, &o, err);
}

static int group_name_ok(const char *group, struct ctkn_err *err)
{
  if (group == NULL || group[0] == '\0' || strlen(group) > 249)
    return ctkn__err_field(err, CTKN_EINVAL, "group",
                           "a consumer group name has 1 to 249 characters");
  return CTKN_OK;
}

int ctkn_consumer_open_group(ctkn_consumer **out,
                             const struct ctkn_log_config *cfg,
                             const char *group, enum ctkn_log_start start,
                             int64_t ts_ms, struct ctkn_err *err)
{
  struct ctkn__consumer_opts o = {.kind = CTKN__CONSUMER_GROUP,
                                  .group = group,
                                  .start = start,
                                  .start_ts_ms = ts_ms};
  int rc;

  *out = NULL;
  if ((rc = group_name_ok(group, err)) != CTKN_OK)
    return rc;
  return consumer_open(out, cfg, &o, err);
}

void ctkn_consumer_close(ctkn_consumer *c)
{
  if (c != NULL)
    c->be->consumer_close(c);
}

int ctkn_consumer_partitions(ctkn_consumer *c, int32_t *n, struct ctkn_err *err)
{
  return c->be->partitions(c, n, err);
}

int ctkn_consumer_topic_id(ctkn_consumer *c, char id[CTKN_TOPIC_ID_BUF],
                           struct ctkn_err *err)
{
  id[0] = '\0';
  return c->be->topic_id != NULL ? c->be->topic_id(c, id, err) : CTKN_OK;
}

int ctkn_consumer_watermarks(ctkn_consumer *c, int32_t partition, int64_t *lo,
                             int64_t *hi, struct ctkn_err *err)
{
  return c->be->watermarks(c, partition, 1, lo, hi, err);
}

int ctkn_consumer_watermarks_all(ctkn_consumer *c, int32_t n, int64_t *lo,
                                 int64_t *hi, struct ctkn_err *err)
{
  if (n <= 0)
    return CTKN_OK;
  return c->be->watermarks(c, 0, n, lo, hi, err);
}

int ctkn_consumer_ends(ctkn_consumer *c, int32_t n, int64_t *hi,
                       struct ctkn_err *err)
{
  if (n <= 0)
    return CTKN_OK;
  return c->be->watermarks(c, 0, n, NULL, hi, err);
}

int ctkn_consumer_offsets_after(ctkn_consumer *c, int64_t ts_ms,
                                int64_t *offsets, int32_t n,
                                struct ctkn_err *err)
{
  if (n <= 0)
    return CTKN_OK;
  return c->be->offsets_after(c, ts_ms, offsets, n, err);
}

int ctkn_consumer_assign(ctkn_consumer *c, const int64_t *offsets, int32_t n,
                         struct ctkn_err *err)
{
  if (n < 0)
    return ctkn__err(err, CTKN_EUSAGE, "negative partition count %" PRId32, n);
  return c->be->assign(c, offsets, n, err);
}

int ctkn_consumer_seek(ctkn_consumer *c, const int64_t *offsets, int32_t n,
                       struct ctkn_err *err)
{
  if (n < 0)
    return ctkn__err(err, CTKN_EUSAGE, "negative partition count %" PRId32, n);
  return c->be->seek(c, offsets, n, err);
}

bool ctkn__consumer_long_backoff(ctkn_consumer *c)
{
  return c->be->long_backoff;
}

int ctkn_consumer_poll(ctkn_consumer *c, int timeout_ms,
                       struct ctkn_log_msg *msgs, size_t max, size_t *n,
                       struct ctkn_err *err)
{
  *n = 0;
  return c->be->poll(c, timeout_ms, msgs, max, n, err);
}

int ctkn_consumer_wait(ctkn_consumer *const *cs, size_t n, int timeout_ms,
                       size_t *ready, struct ctkn_err *err)
{
  ctkn_consumer *some[CTKN_CONSUMER_WAIT_MAX];
  size_t idx[CTKN_CONSUMER_WAIT_MAX], m = 0, r;
  int rc;

  *ready = n;
  if (n > CTKN_CONSUMER_WAIT_MAX)
    return ctkn__err(err, CTKN_EUSAGE, "waiting on %zu consumers (at most %d)",
                     n, CTKN_CONSUMER_WAIT_MAX);
  for (size_t i = 0; i < n; i++) {
    if (cs[i] == NULL)
      continue;
    if (m > 0 && cs[i]->be != some[0]->be)
      return ctkn__err(err, CTKN_EUSAGE, "waiting on consumers of two logs");
    idx[m] = i;
    some[m++] = cs[i];
  }
  if (m == 0) {
    /* Nothing to wait on: just the time, as a poll would. */
    if (timeout_ms > 0) {
      struct timespec ts = {timeout_ms / 1000,
                            (long)(timeout_ms % 1000) * 1000000L};
      nanosleep(&ts, NULL);
    }
    return CTKN_OK;
  }
  if ((rc = some[0]->be->wait(some, m, timeout_ms, &r, err)) == CTKN_OK &&
      r < m)
    *ready = idx[r];
  return rc;
}

int ctkn_consumer_commit(ctkn_consumer *c, const struct ctkn_log_msg *msgs,
                         size_t n, struct ctkn_err *err)
{
  if (n == 0)
    return CTKN_OK;
  return c->be->commit(c, msgs, n, err);
}

/* ---- leases ------------------------------------------------------------ */

int ctkn_lease_open(ctkn_consumer **out, const struct ctkn_log_config *cfg,
                    const char *group, struct ctkn_err *err)
{
  struct ctkn__consumer_opts o = {
      .kind = CTKN__CONSUMER_LEASE, .group = group, .start = CTKN_START_END};
  int rc;

  *out = NULL;
  if ((rc = group_name_ok(group, err)) != CTKN_OK)
    return rc;
  return consumer_open(out, cfg, &o, err);
}

int ctkn_lease_poll(ctkn_consumer *c, int timeout_ms, bool *owned, int32_t n,
                    bool *changed, struct ctkn_err *err)
{
  return c->be->lease_poll(c, timeout_ms, owned, n, changed, err);
}

int ctkn_lease_committed(ctkn_consumer *c, int32_t partition, int64_t *offset,
                         char *meta, size_t metasz, struct ctkn_err *err)
{
  *offset = -1;
  if (metasz > 0)
    meta[0] = '\0';
  return c->be->lease_committed(c, partition, offset, meta, metasz, err);
}

int ctkn_lease_commit(ctkn_consumer *c, int32_t partition, int64_t offset,
                      const char *meta, struct ctkn_err *err)
{
  return c->be->lease_commit(c, partition, offset, meta, err);
}

/* ---- records ----------------------------------------------------------- */

/* A decimal header value: digits only, at most 9 of them; else -2. */
static int parse_schema(const void *v, size_t n)
{
  const unsigned char *s = v;
  int x = 0;

  if (s == NULL || n == 0 || n > 9)
    return -2;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -2;
    x = x * 10 + (s[i] - '0');
  }
  return x;
}

void ctkn_log_msg_note_header(struct ctkn_log_msg *m, const char *name,
                              const void *value, size_t size)
{
  if (strcmp(name, CTKN_HDR_EVENT_TYPE) == 0) {
    size_t n = value == NULL                      ? 0
               : size < sizeof(m->event_type) - 1 ? size
                                                  : sizeof(m->event_type) - 1;
    if (n > 0)
      memcpy(m->event_type, value, n);
    m->event_type[n] = '\0';
  } else if (strcmp(name, CTKN_HDR_SCHEMA) == 0) {
    m->schema_version = parse_schema(value, size);
  }
}

void ctkn_log_msg_note_headers(struct ctkn_log_msg *m)
{
  m->event_type[0] = '\0';
  m->schema_version = -1;
  for (size_t i = 0; i < m->nheaders; i++)
    ctkn_log_msg_note_header(m, m->headers[i].name, m->headers[i].value,
                             m->headers[i].size);
}

/* ---- a record kept past its poll ---------------------------------------- */

int ctkn_log_msg_copy(struct ctkn_log_msg_copy *dst,
                      const struct ctkn_log_msg *m, struct ctkn_err *err)
{
  size_t need = m->key_len + m->value_len, at = 0;

  memset(dst, 0, sizeof(*dst));
  for (size_t i = 0; i < m->nheaders; i++)
    need += strlen(m->headers[i].name) + 1 + m->headers[i].size;
  dst->m = *m;
  dst->h = calloc(m->nheaders ? m->nheaders : 1, sizeof(*dst->h));
  dst->blob = malloc(need ? need : 1);
  if (dst->h == NULL || dst->blob == NULL) {
    ctkn_log_msg_copy_free(dst);
    return ctkn__err(err, CTKN_ENOMEM, "out of memory keeping a record");
  }
  if (m->key != NULL) {
    memcpy(dst->blob, m->key, m->key_len);
    dst->m.key = dst->blob;
    at = m->key_len;
  }
  if (m->value != NULL) {
    memcpy(dst->blob + at, m->value, m->value_len);
    dst->m.value = dst->blob + at;
    at += m->value_len;
  }
  for (size_t i = 0; i < m->nheaders; i++) {
    size_t nl = strlen(m->headers[i].name) + 1;
    memcpy(dst->blob + at, m->headers[i].name, nl);
    dst->h[i].name = dst->blob + at;
    at += nl;
    dst->h[i].size = m->headers[i].size;
    dst->h[i].value = NULL;
    if (m->headers[i].value != NULL) {
      memcpy(dst->blob + at, m->headers[i].value, m->headers[i].size);
      dst->h[i].value = dst->blob + at;
      at += m->headers[i].size;
    }
  }
  dst->m.headers = dst->h;
  return CTKN_OK;
}

void ctkn_log_msg_copy_free(struct ctkn_log_msg_copy *c)
{
  if (c == NULL)
    return;
  free(c->h);
  free(c->blob);
  c->h = NULL;
  c->blob = NULL;
}
