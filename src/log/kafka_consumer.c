/*
 * kafka_consumer.c - the Kafka consumer: assigned at offsets the caller
 * supplies, polled in batches, with watermarks and offsets-for-times on a
 * second handle.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/kafka_int.h"

static void consumer_free(struct ctkn__kafka_consumer *c);

/* The consumer handle's configuration. A group member's names its group
 * and where the group starts, and rebalances call back into the lease. */
static int consumer_conf(struct ctkn__kafka_consumer *c,
                         const struct ctkn_log_config *cfg, const char *group,
                         rd_kafka_conf_t **conf, struct ctkn_err *err)
{
  int rc;

  if ((rc = ctkn__kafka_build_conf(
           cfg, group ? CTKN__KAFKA_GROUP : CTKN__KAFKA_CONSUMER, &c->k, conf,
           err)) != CTKN_OK)
    return rc;
  if (group == NULL) {
    size_t sz = sizeof(c->group_id);
    if (rd_kafka_conf_get(*conf, "group.id", c->group_id, &sz) !=
        RD_KAFKA_CONF_OK)
      c->group_id[0] = '\0';
    return CTKN_OK;
  }
  ctkn__strlcpy(c->group_id, group, sizeof(c->group_id));
  rc = ctkn__kafka_set(*conf, "group.id", group, err);
  if (rc == CTKN_OK)
    rc = ctkn__kafka_set(
        *conf, "auto.offset.reset",
        c->start == CTKN_START_BEGINNING ? "earliest" : "latest", err);
  if (rc != CTKN_OK) {
    rd_kafka_conf_destroy(*conf);
    *conf = NULL;
    return rc;
  }
  rd_kafka_conf_set_rebalance_cb(*conf, ctkn__kafka_on_rebalance);
  return CTKN_OK;
}

/* Serve error events, logs and rebalances from the consumer queue, which
 * poll reads with the batch call (the fast path). */
static int consumer_queue(struct ctkn__kafka_consumer *c, struct ctkn_err *err)
{
  rd_kafka_resp_err_t e;

  if ((e = rd_kafka_poll_set_consumer(c->rk)) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      (c->q = rd_kafka_queue_get_consumer(c->rk)) == NULL)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: no consumer queue: %s",
                     rd_kafka_err2str(e));
  return CTKN_OK;
}

/* A group member's subscription to the topic. */
static int subscribe(struct ctkn__kafka_consumer *c, struct ctkn_err *err)
{
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_resp_err_t e;

  if (l == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory subscribing");
  rd_kafka_topic_partition_list_add(l, c->topic, RD_KAFKA_PARTITION_UA);
  e = rd_kafka_subscribe(c->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: subscribing to %s: %s", c->topic,
                     rd_kafka_err2str(e));
  return CTKN_OK;
}

int ctkn__kafka_consumer_open(ctkn_consumer **out,
                              const struct ctkn_log_config *cfg,
                              const struct ctkn__consumer_opts *opts,
                              struct ctkn_err *err)
{
  const char *group =
      opts->kind == CTKN__CONSUMER_ASSIGNED ? NULL : opts->group;
  rd_kafka_conf_t *conf;
  struct ctkn__kafka_consumer *c;
  rd_kafka_t *q;
  int rc;

  *out = NULL;
  if ((c = calloc(1, sizeof(*c))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory opening the consumer");
  ctkn__kctx_init(&c->k, c);
  pthread_mutex_init(&c->qmu, NULL);
  ctkn__strlcpy(c->topic, cfg->topic, sizeof(c->topic));
  c->timeout_ms = cfg->timeout_ms;
  c->group = group != NULL;
  c->fetching = c->group;
  c->start = opts->start;
  c->start_ts_ms = opts->start_ts_ms;
  /* The rebalance callback may run from the first poll on, so the lease
   * fields are set before the group is joined (callbacks only run inside
   * a poll, which comes after). */
  if (opts->kind == CTKN__CONSUMER_LEASE) {
    c->lease = true;
    if ((c->owned = calloc(CTKN__KAFKA_LEASE_MAX, sizeof(*c->owned))) == NULL) {
      rc = ctkn__err(err, CTKN_ENOMEM, "out of memory opening a lease");
      goto fail;
    }
  }
  if ((rc = consumer_conf(c, cfg, group, &conf, err)) != CTKN_OK ||
      (rc = ctkn__kafka_new_handle(RD_KAFKA_CONSUMER, conf, &c->rk, err)) !=
          CTKN_OK)
    goto fail;
  if ((rc = ctkn__kafka_build_conf(cfg, CTKN__KAFKA_ADMIN, &c->k, &c->qconf,
                                   err)) != CTKN_OK ||
      (c->group && (rc = ctkn__kafka_query_handle(c, &q, err)) != CTKN_OK))
    goto fail;
  /* No fetch is in flight yet, so this query does not queue behind one. */
  c->warm_at_ms = ctkn__now_ms();
  if ((rc = ctkn__kafka_warm_topic(c->rk, &c->k, c->topic, c->timeout_ms,
                                   &c->rkt, &c->warm_parts, err)) != CTKN_OK ||
      (rc = consumer_queue(c, err)) != CTKN_OK)
    goto fail;
  if (group != NULL && (rc = subscribe(c, err)) != CTKN_OK)
    goto fail;
  *out = &c->base;
  return CTKN_OK;
fail:
  consumer_free(c);
  return rc;
}

/* Destroy the handed-out part of the batch and keep the rest in front. */
static void release_returned(struct ctkn__kafka_consumer *c)
{
  if (c->next == 0)
    return;
  for (size_t i = 0; i < c->next; i++)
    rd_kafka_message_destroy(c->batch[i]);
  memmove(c->batch, c->batch + c->next, (c->len - c->next) * sizeof(*c->batch));
  c->len -= c->next;
  c->next = 0;
}

void ctkn__kafka_drop_pending(struct ctkn__kafka_consumer *c,
                              const rd_kafka_topic_partition_list_t *revoked)
{
  size_t kept = c->next;

  for (size_t i = c->next; i < c->len; i++) {
    rd_kafka_message_t *m = c->batch[i];
    if (revoked == NULL ||
        rd_kafka_topic_partition_list_find(revoked, c->topic, m->partition))
      rd_kafka_message_destroy(m);
    else
      c->batch[kept++] = m;
  }
  c->len = kept;
}

int ctkn__kafka_assign_failed(struct ctkn__kafka_consumer *c,
                              struct ctkn_err *err)
{
  int rc;

  if (c->assign_err[0] == '\0')
    return CTKN_OK;
  /* Not transient: waiting does not mend it, and a member that holds
   * partitions it cannot read must leave (tail and notify exit). */
  rc = ctkn__err(err, CTKN_EINTERNAL, "kafka: consumer group: %s",
                 c->assign_err);
  c->assign_err[0] = '\0';
  return rc;
}

void ctkn__kafka_consumer_close(ctkn_consumer *base)
{
  consumer_free((struct ctkn__kafka_consumer *)base);
}

static void consumer_free(struct ctkn__kafka_consumer *c)
{
  c->next = c->len;
  release_returned(c);
  free(c->batch);
  if (c->waking) {
    /* No call back may run once the pipe is closed. */
    rd_kafka_queue_cb_event_enable(c->q, NULL, NULL);
    close(c->wake[0]);
    close(c->wake[1]);
  }
  if (c->q != NULL)
    rd_kafka_queue_destroy(c->q);
  if (c->rkt != NULL)
    rd_kafka_topic_destroy(c->rkt);
  /* Assigned: nothing to commit and no group membership to leave, so skip
   * the consumer close handshake, which would wait on a coordinator. A
   * group member leaves its group, so its partitions move at once. */
  if (c->rk != NULL && c->group)
    rd_kafka_consumer_close(c->rk);
  if (c->rk != NULL)
    rd_kafka_destroy_flags(c->rk,
                           c->group ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  if (c->qrk != NULL)
    rd_kafka_destroy(c->qrk);
  if (c->qconf != NULL)
    rd_kafka_conf_destroy(c->qconf);
  pthread_mutex_destroy(&c->qmu);
  pthread_mutex_destroy(&c->k.mu);
  ctkn__buf_free(&c->headers);
  free(c->owned);
  free(c);
}

/* The backend's handle behind log.c's. */
static struct ctkn__kafka_consumer *kc(ctkn_consumer *base)
{
  return (struct ctkn__kafka_consumer *)base;
}

int ctkn__kafka_query_handle(struct ctkn__kafka_consumer *c, rd_kafka_t **rk,
                             struct ctkn_err *err)
{
  rd_kafka_conf_t *conf;
  int rc = CTKN_OK;

  pthread_mutex_lock(&c->qmu);
  if (c->fetching && c->qrk == NULL) {
    /* A copy: a handle that failed to open may be tried again. */
    if ((conf = rd_kafka_conf_dup(c->qconf)) == NULL)
      rc = ctkn__err(err, CTKN_ENOMEM, "out of memory opening a query handle");
    else
      rc = ctkn__kafka_new_handle(RD_KAFKA_PRODUCER, conf, &c->qrk, err);
  }
  *rk = c->fetching ? c->qrk : c->rk;
  pthread_mutex_unlock(&c->qmu);
  return rc;
}

/* How long the open's partition count stands in for a new query. */
#define WARM_FRESH_MS 1000

int ctkn__kafka_partitions(ctkn_consumer *base, int32_t *n,
                           struct ctkn_err *err)
{
  struct ctkn__kafka_consumer *c = kc(base);
  rd_kafka_t *q;
  int rc;

  /* Opened a moment ago: the open's answer is as fresh as a new one (a
   * one-shot command asks right after opening; a round trip saved). */
  if (c->warm_parts > 0 && ctkn__now_ms() - c->warm_at_ms < WARM_FRESH_MS) {
    *n = c->warm_parts;
    c->warm_parts = 0;
    return CTKN_OK;
  }
  c->warm_parts = 0;
  if ((rc = ctkn__kafka_query_handle(c, &q, err)) != CTKN_OK)
    return rc;
  return ctkn__kafka_topic_partitions(q, &c->k, c->topic, c->timeout_ms, n,
                                      NULL, err);
}

#if RD_KAFKA_VERSION >= 0x020300ff
/* The topic's ID from one DescribeTopics result ev. */
static int describe_result(struct ctkn__kafka_consumer *c, rd_kafka_event_t *ev,
                           char id[CTKN_TOPIC_ID_BUF], struct ctkn_err *err)
{
  rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
  const rd_kafka_DescribeTopics_result_t *res =
      rd_kafka_event_DescribeTopics_result(ev);
  size_t cnt = 0;
  const rd_kafka_TopicDescription_t **d =
      res ? rd_kafka_DescribeTopics_result_topics(res, &cnt) : NULL;
  const rd_kafka_error_t *te =
      cnt == 1 ? rd_kafka_TopicDescription_error(d[0]) : NULL;

  if (e == RD_KAFKA_RESP_ERR_NO_ERROR && te != NULL)
    e = rd_kafka_error_code(te);
  if (ctkn__kafka_denied(e))
    return ctkn__kafka_consumer_denied(c, e, "describing", err);
  if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    return ctkn__err(err, CTKN_ENOTFOUND,
                     "topic %s does not exist (run ctkn init)", c->topic);
  if (e == RD_KAFKA_RESP_ERR__TIMED_OUT)
    return ctkn__err(err, CTKN_ETIMEOUT,
                     "kafka: no description of %s within %d ms", c->topic,
                     c->timeout_ms);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR || cnt != 1)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: describing %s: %s", c->topic,
                     rd_kafka_err2str(e));
  const rd_kafka_Uuid_t *u = rd_kafka_TopicDescription_topic_id(d[0]);
  const char *s = u != NULL ? rd_kafka_Uuid_base64str(u) : NULL;
  ctkn__strlcpy(id, s != NULL ? s : "", CTKN_TOPIC_ID_BUF);
  return CTKN_OK;
}
#endif

/*
 * The topic's ID (Kafka's, KIP-516), through DescribeTopics on the query
 * handle: librdkafka 2.3.0 and later. Built against an older one (Debian
 * 12's 2.0.2) there is none, and a re-created topic is judged by its
 * offsets alone (src/projector/projector.c).
 */
int ctkn__kafka_topic_id(ctkn_consumer *base, char id[CTKN_TOPIC_ID_BUF],
                         struct ctkn_err *err)
{
  id[0] = '\0';
#if RD_KAFKA_VERSION >= 0x020300ff
  struct ctkn__kafka_consumer *c = kc(base);
  rd_kafka_t *qrk;
  const char *names[1] = {c->topic};
  int rc = ctkn__kafka_query_handle(c, &qrk, err);

  if (rc != CTKN_OK)
    return rc;
  rd_kafka_TopicCollection_t *tc =
      rd_kafka_TopicCollection_of_topic_names(names, 1);
  rd_kafka_AdminOptions_t *o =
      rd_kafka_AdminOptions_new(qrk, RD_KAFKA_ADMIN_OP_DESCRIBETOPICS);
  rd_kafka_queue_t *q = rd_kafka_queue_new(qrk);
  char errstr[256];

  if (rd_kafka_AdminOptions_set_request_timeout(o, c->timeout_ms, errstr,
                                                sizeof(errstr)))
    rc = ctkn__err(err, CTKN_EINTERNAL, "kafka: admin options: %s", errstr);
  if (rc == CTKN_OK) {
    rd_kafka_DescribeTopics(qrk, tc, o, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, c->timeout_ms + 1000);
    rc = ev != NULL ? describe_result(c, ev, id, err)
                    : ctkn__err(err, CTKN_ETIMEOUT,
                                "kafka: no description of %s within %d ms",
                                c->topic, c->timeout_ms);
    if (ev != NULL)
      rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_TopicCollection_destroy(tc);
  return rc;
#else
  (void)base;
  (void)err;
  return CTKN_OK;
#endif
}

/*
 * A partition's low and high watermarks. Not rd_kafka_query_watermark_offsets:
 * before librdkafka 2.3.0 it retries on a dead leader forever, whatever its
 * timeout (librdkafka #2588, fixed by #4460), so one SIGKILLed broker hangs
 * every catch-up until it comes back. offsets_for_times with the logical
 * timestamps BEGINNING (-2) and END (-1) sends the same ListOffsets request,
 * keeps its timeout, and finds the new leader once the old one is fenced.
 * Built against 2.3.0 or later the hang is fixed, but the fixed call still
 * asks one partition per request, two requests per partition, where this
 * asks every partition in one request per end; so both builds keep it.
 */
/*
 * Partitions first..first+n-1's earliest and next offsets (lo/hi, n
 * entries each; lo NULL: the next alone), in one ListOffsets request per
 * end. *failed receives the partition that an error is about.
 */
static rd_kafka_resp_err_t query_watermarks(rd_kafka_t *rk, const char *topic,
                                            int32_t first, int32_t n,
                                            int64_t *lo, int64_t *hi,
                                            int timeout_ms, int32_t *failed)
{
  int64_t deadline = ctkn__now_ms() + timeout_ms;
  int64_t *out[2] = {lo, hi};
  const int64_t which[2] = {RD_KAFKA_OFFSET_BEGINNING, RD_KAFKA_OFFSET_END};

  *failed = first;
  for (int i = lo == NULL ? 1 : 0; i < 2; i++) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    if (l == NULL)
      return RD_KAFKA_RESP_ERR__NOENT;
    for (int32_t p = first; p < first + n; p++)
      rd_kafka_topic_partition_list_add(l, topic, p)->offset = which[i];
    int left =
        (int)ctkn__kafka_clamp((int)(deadline - ctkn__now_ms()), 1, timeout_ms);
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, left);
    for (int k = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && k < l->cnt; k++) {
      rd_kafka_topic_partition_t *tp = &l->elems[k];
      if ((e = tp->err) != RD_KAFKA_RESP_ERR_NO_ERROR)
        *failed = tp->partition;
      else if (tp->partition >= first && tp->partition < first + n)
        out[i][tp->partition - first] = tp->offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
      return e;
  }
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}

int ctkn__kafka_watermarks(ctkn_consumer *base, int32_t first, int32_t n,
                           int64_t *lo, int64_t *hi, struct ctkn_err *err)
{
  struct ctkn__kafka_consumer *c = kc(base);
  rd_kafka_resp_err_t e;
  int32_t failed;
  char ctx[448];

  if (n <= 0)
    return CTKN_OK;
  rd_kafka_t *qrk;
  int rc = ctkn__kafka_query_handle(c, &qrk, err);
  if (rc != CTKN_OK)
    return rc;
  /* Leadership moves (a new topic, a broker restart) answer "not leader"
   * for a moment, and a broker resumed after a pause "unknown topic or
   * partition" for partitions the metadata lists (its own metadata is
   * catching up): retry those within the timeout. A topic that is not
   * there fails earlier, at its metadata. */
  int64_t deadline = ctkn__now_ms() + c->timeout_ms;
  for (;;) {
    int left = (int)ctkn__kafka_clamp((int)(deadline - ctkn__now_ms()), 1,
                                      c->timeout_ms);
    e = query_watermarks(qrk, c->topic, first, n, lo, hi, left, &failed);
    if ((e != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
         e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
         e != RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH &&
         /* 2.14 sends the leader epoch it knows: a restarted broker that
          * has not caught up on the metadata answers this. */
         e != RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH &&
         e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) ||
        ctkn__now_ms() + CTKN__KAFKA_META_RETRY_MS >= deadline)
      break;
    ctkn__kafka_sleep_ms(CTKN__KAFKA_META_RETRY_MS);
  }
  if (ctkn__kafka_denied(e))
    return ctkn__kafka_consumer_denied(c, e, "the offsets of", err);
  switch (e) {
  case RD_KAFKA_RESP_ERR_NO_ERROR:
    return CTKN_OK;
  case RD_KAFKA_RESP_ERR__NOENT:
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TRANSPORT:
    return ctkn__err(err, CTKN_ETIMEOUT,
                     "kafka: no offsets for %s/%" PRId32 " within %d ms %s",
                     c->topic, failed, c->timeout_ms,
                     ctkn__kctx_context(&c->k, ctx, sizeof(ctx)));
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    return ctkn__err(err, CTKN_ENOTFOUND,
                     "topic %s has no partition %" PRId32 " (run ctkn init?)",
                     c->topic, failed);
  default:
    return ctkn__err(err, CTKN_EKAFKA, "kafka: offsets of %s/%" PRId32 ": %s",
                     c->topic, failed, rd_kafka_err2str(e));
  }
}

int ctkn__kafka_offsets_after(ctkn_consumer *base, int64_t ts_ms,
                              int64_t *offsets, int32_t n, struct ctkn_err *err)
{
  struct ctkn__kafka_consumer *c = kc(base);
  rd_kafka_topic_partition_list_t *l;
  rd_kafka_resp_err_t e;
  int rc = CTKN_OK;
  char ctx[448];

  if (n <= 0)
    return CTKN_OK;
  rd_kafka_t *qrk;
  if ((rc = ctkn__kafka_query_handle(c, &qrk, err)) != CTKN_OK)
    return rc;
  if ((l = rd_kafka_topic_partition_list_new(n)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  /* ListOffsets by timestamp answers the earliest offset whose timestamp
   * is >= the one asked; after ts_ms means >= ts_ms + 1. */
  for (int32_t p = 0; p < n; p++)
    rd_kafka_topic_partition_list_add(l, c->topic, p)->offset = ts_ms + 1;
  e = rd_kafka_offsets_for_times(qrk, l, c->timeout_ms);
  if (e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR__TRANSPORT)
    rc = ctkn__err(err, CTKN_ETIMEOUT,
                   "kafka: no offsets by time for %s within %d ms %s", c->topic,
                   c->timeout_ms, ctkn__kctx_context(&c->k, ctx, sizeof(ctx)));
  else if (ctkn__kafka_denied(e))
    rc = ctkn__kafka_consumer_denied(c, e, "offsets by time of", err);
  else if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    rc = ctkn__err(err, CTKN_EKAFKA, "kafka: offsets by time for %s: %s",
                   c->topic, rd_kafka_err2str(e));
  for (int i = 0; rc == CTKN_OK && i < l->cnt; i++) {
    rd_kafka_topic_partition_t *tp = &l->elems[i];
    if (ctkn__kafka_denied(tp->err)) {
      rc = ctkn__kafka_consumer_denied(c, tp->err, "offsets by time of", err);
      break;
    }
    if (tp->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rc = ctkn__err(err, CTKN_EKAFKA, "kafka: offsets by time for %s/%d: %s",
                     c->topic, (int)tp->partition, rd_kafka_err2str(tp->err));
      break;
    }
    offsets[tp->partition] = tp->offset;
    if (tp->offset < 0) {
      /* Nothing after ts_ms: the whole partition is before it. */
      int64_t lo;
      rc = ctkn__kafka_watermarks(base, tp->partition, 1, &lo,
                                  &offsets[tp->partition], err);
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  return rc;
}

int ctkn__kafka_assign(ctkn_consumer *base, const int64_t *offsets, int32_t n,
                       struct ctkn_err *err)
{
  struct ctkn__kafka_consumer *c = kc(base);
  rd_kafka_topic_partition_list_t *list;
  rd_kafka_resp_err_t e;

  if ((list = rd_kafka_topic_partition_list_new(n > 0 ? n : 1)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory assigning partitions");
  for (int32_t i = 0; i < n; i++)
    if (offsets[i] >= 0)
      rd_kafka_topic_partition_list_add(list, c->topic, i)->offset = offsets[i];
  ctkn__kafka_drop_pending(c, NULL);
  pthread_mutex_lock(&c->qmu);
  c->fetching = true; /* queries go to the query handle from now on */
  pthread_mutex_unlock(&c->qmu);
  e = rd_kafka_assign(c->rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: assigning %s: %s", c->topic,
                     rd_kafka_err2str(e));
  return CTKN_OK;
}

int ctkn__kafka_seek(ctkn_consumer *base, const int64_t *offsets, int32_t n,
                     struct ctkn_err *err)
{
  struct ctkn__kafka_consumer *c = kc(base);
  rd_kafka_topic_partition_list_t *list;
  rd_kafka_error_t *e;
  int rc = CTKN_OK;

  if ((list = rd_kafka_topic_partition_list_new(n > 0 ? n : 1)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory seeking partitions");
  for (int32_t i = 0; i < n; i++)
    if (offsets[i] >= 0)
      rd_kafka_topic_partition_list_add(list, c->topic, i)->offset = offsets[i];
  if (list->cnt > 0 &&
      (e = rd_kafka_seek_partitions(c->rk, list, c->timeout_ms)) != NULL) {
    rc = ctkn__err(err, CTKN_EKAFKA, "kafka: seeking %s: %s", c->topic,
                   rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  for (int i = 0; rc == CTKN_OK && i < list->cnt; i++) {
    if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
      rc = ctkn__err(err, CTKN_EKAFKA, "kafka: seeking %s [%" PRId32 "]: %s",
                     c->topic, list->elems[i].partition,
                     rd_kafka_err2str(list->elems[i].err));
  }
  rd_kafka_topic_partition_list_destroy(list);
  return rc;
}

/* librdkafka's threads, when the consumer queue gets something: wake the
 * waiter, once until it looks again. Calls no librdkafka function (the
 * call back may not). */
static void on_queue(rd_kafka_t *rk, void *arg)
{
  struct ctkn__kafka_consumer *c = arg;
  ssize_t w;

  (void)rk;
  if (!atomic_exchange(&c->woken, true))
    do
      w = write(c->wake[1], "", 1);
    while (w < 0 && errno == EINTR);
}

/* The first wait on c: its wake-up pipe and the queue's call back. */
static int start_waking(struct ctkn__kafka_consumer *c, struct ctkn_err *err)
{
  if (c->waking)
    return CTKN_OK;
  if (pipe(c->wake) != 0)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: wake-up pipe: %s",
                     strerror(errno));
  for (int i = 0; i < 2; i++) {
    (void)fcntl(c->wake[i], F_SETFL, fcntl(c->wake[i], F_GETFL) | O_NONBLOCK);
    (void)fcntl(c->wake[i], F_SETFD, FD_CLOEXEC);
  }
  atomic_store(&c->woken, false);
  c->waking = true;
  rd_kafka_queue_cb_event_enable(c->q, on_queue, c);
  return CTKN_OK;
}

/* Whether c's next poll has something: a record or an error left from
 * the last batch, or anything in the consumer queue. Clears woken first
 * and empties the pipe, so a call back from here on wakes the sleep. */
static bool has_pending(struct ctkn__kafka_consumer *c)
{
  char drain[64];

  atomic_store(&c->woken, false);
  while (read(c->wake[0], drain, sizeof(drain)) > 0)
    ;
  return c->next < c->len || rd_kafka_queue_length(c->q) > 0;
}

int ctkn__kafka_wait(ctkn_consumer *const *cs, size_t n, int timeout_ms,
                     size_t *ready, struct ctkn_err *err)
{
  struct pollfd pfd[CTKN_CONSUMER_WAIT_MAX];
  int64_t until = ctkn__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  int rc;

  *ready = n;
  for (size_t i = 0; i < n; i++) {
    if ((rc = start_waking(kc(cs[i]), err)) != CTKN_OK)
      return rc;
    pfd[i] = (struct pollfd){.fd = kc(cs[i])->wake[0], .events = POLLIN};
  }
  for (;;) {
    for (size_t i = 0; i < n; i++) {
      if (has_pending(kc(cs[i]))) {
        *ready = i;
        return CTKN_OK;
      }
    }
    int64_t left = until - ctkn__now_ms();
    if (left <= 0)
      return CTKN_OK;
    if (poll(pfd, (nfds_t)n, (int)left) < 0 && errno != EINTR)
      return ctkn__err(err, CTKN_EKAFKA, "kafka: waiting: %s", strerror(errno));
  }
}

/*
 * Fill out from m; its headers go to the end of c->headers (their
 * pointers are set once the whole batch is there, as the buffer may move
 * meanwhile). Returns CTKN_ENOMEM when the headers do not fit.
 */
static int fill(struct ctkn__kafka_consumer *c, struct ctkn_log_msg *out,
                rd_kafka_message_t *m)
{
  rd_kafka_headers_t *hdrs = NULL;
  rd_kafka_timestamp_type_t tstype;

  out->partition = m->partition;
  out->offset = m->offset;
  out->timestamp_ms = rd_kafka_message_timestamp(m, &tstype); /* -1: none */
  out->key = m->key;
  out->key_len = m->key_len;
  out->value = m->payload;
  out->value_len = m->len;
  out->headers = NULL;
  out->nheaders = 0;
  /* librdkafka parses the headers lazily into the message. */
  if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return CTKN_OK;
  size_t n = rd_kafka_header_cnt(hdrs);
  struct ctkn_log_header *h = ctkn__buf_add(&c->headers, n * sizeof(*h));
  if (h == NULL)
    return CTKN_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (rd_kafka_header_get_all(hdrs, i, &h[i].name, &h[i].value, &h[i].size) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
      h[i] = (struct ctkn_log_header){"", NULL, 0};
  }
  out->nheaders = n;
  return CTKN_OK;
}

/* Point each record at its headers and note the ones ctkn reads. */
static void link_headers(struct ctkn__kafka_consumer *c,
                         struct ctkn_log_msg *msgs, size_t n)
{
  const struct ctkn_log_header *h =
      (const struct ctkn_log_header *)(void *)c->headers.data;

  for (size_t i = 0; i < n; i++) {
    msgs[i].headers = NULL;
    if (msgs[i].nheaders > 0) {
      msgs[i].headers = h;
      h += msgs[i].nheaders;
    }
    ctkn_log_msg_note_headers(&msgs[i]);
  }
}

int ctkn__kafka_consumer_denied(struct ctkn__kafka_consumer *c,
                                rd_kafka_resp_err_t e, const char *doing,
                                struct ctkn_err *err)
{
  char what[400];
  struct ctkn__kafka_acl acl = {c->topic, "Read",
                                c->group_id[0] ? c->group_id : NULL,
                                c->group ? "Read" : "Describe"};

  snprintf(what, sizeof(what), "%s %s", doing, c->topic);
  return ctkn__kafka_denied_err(err, e, what, &acl);
}

int ctkn__kafka_consumer_error(struct ctkn__kafka_consumer *c,
                               const rd_kafka_message_t *m,
                               struct ctkn_err *err)
{
  const char *why = rd_kafka_message_errstr(m);

  if (ctkn__kafka_denied(m->err))
    return ctkn__kafka_consumer_denied(c, m->err, "reading", err);
  switch (m->err) {
  case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
  case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
    return ctkn__err(err, CTKN_EKAFKA,
                     "kafka: %s/%" PRId32 ": the stored offset %" PRId64
                     " is outside the log (the topic may have been deleted "
                     "and re-created): %s",
                     c->topic, m->partition, m->offset, why);
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    return ctkn__err(err, CTKN_ENOTFOUND,
                     "topic %s does not exist (run ctkn init): %s", c->topic,
                     why);
  default:
    return ctkn__err(err, CTKN_EKAFKA, "kafka: consuming %s/%" PRId32 ": %s",
                     c->topic, m->partition, why);
  }
}

/* Fill the empty batch with up to max messages from the queue. */
static int refill(struct ctkn__kafka_consumer *c, int timeout_ms, size_t max,
                  struct ctkn_err *err)
{
  if (max > c->cap) {
    rd_kafka_message_t **b = realloc(c->batch, max * sizeof(*b));
    if (b == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "out of memory polling");
    c->batch = b;
    c->cap = max;
  }
  /* Wait for the first record only, then take what is already queued.
   * A batch call waits until the whole batch is full or the timeout
   * ends, which would add the timeout to every record under light load
   * (a command waiting to read its own write). */
  ssize_t got = rd_kafka_consume_batch_queue(
      c->q, timeout_ms < 0 ? 0 : timeout_ms, c->batch, 1);
  if (got == 1 && max > 1) {
    ssize_t more = rd_kafka_consume_batch_queue(c->q, 0, c->batch + 1, max - 1);
    if (more > 0)
      got += more;
  }
  if (got < 0)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: consuming %s: %s", c->topic,
                     rd_kafka_err2str(rd_kafka_last_error()));
  c->len = (size_t)got;
  return CTKN_OK;
}

int ctkn__kafka_poll(ctkn_consumer *base, int timeout_ms,
                     struct ctkn_log_msg *msgs, size_t max, size_t *n,
                     struct ctkn_err *err)
{
  struct ctkn__kafka_consumer *c = kc(base);
  size_t k = 0;
  int rc = CTKN_OK;

  *n = 0;
  release_returned(c);
  ctkn__buf_reset(&c->headers);
  if (max == 0)
    return CTKN_OK;
  if (c->len == 0 && (rc = refill(c, timeout_ms, max, err)) != CTKN_OK)
    return rc;
  /* A rebalance inside the refill that could not take its assignment. */
  if ((rc = ctkn__kafka_assign_failed(c, err)) != CTKN_OK)
    return rc;
  while (c->next < c->len && k < max) {
    rd_kafka_message_t *m = c->batch[c->next];
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      c->next++;
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      /* Hand out the records before the error first; report it next. */
      if (k > 0)
        break;
      c->next++;
      return ctkn__kafka_consumer_error(c, m, err);
    }
    if (fill(c, &msgs[k], m) != CTKN_OK) {
      /* Hand out what fits; m comes first next time. */
      rc = k > 0 ? CTKN_OK
                 : ctkn__err(err, CTKN_ENOMEM, "out of memory polling");
      break;
    }
    k++;
    c->next++;
  }
  link_headers(c, msgs, k);
  *n = k;
  return rc;
}
