/*
 * kafka_producer.c - the Kafka producer: idempotent, acks=all, each
 * record's delivery report awaited within the timeout.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/kafka_int.h"

/*
 * One delivery report, on the heap: the sender may give up (timeout) before
 * librdkafka reports, and the callback must still find it. An abandoned
 * report sits on the producer's list; the callback or close frees it.
 */
struct report {
  bool done;      /* the callback filled it */
  bool abandoned; /* the sender gave up; whoever comes last frees it */
  rd_kafka_resp_err_t err;
  int32_t partition;
  int64_t offset;
  struct report *prev, *next; /* on kproducer.abandoned */
};

struct kproducer {
  struct ctkn_producer base; /* first: the handle log.c hands out */
  struct ctkn__kctx k;       /* librdkafka's opaque; k.owner is this */
  rd_kafka_t *rk;
  rd_kafka_topic_t *rkt; /* keeps the topic's metadata cached */
  char topic[250];
  int timeout_ms;
  /* mu guards everything below and every struct report. At most one
   * sender at a time polls (polling); the others sleep on cv, which is
   * broadcast after each report and after each poll. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool polling;
  struct report *abandoned;
};

/* Runs inside rd_kafka_poll()/rd_kafka_flush(), in whichever thread polls. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
  struct kproducer *p = ((struct ctkn__kctx *)opaque)->owner;
  struct report *r = m->_private;

  (void)rk;
  if (r == NULL)
    return;
  pthread_mutex_lock(&p->mu);
  if (r->abandoned) {
    if (r->prev != NULL)
      r->prev->next = r->next;
    else
      p->abandoned = r->next;
    if (r->next != NULL)
      r->next->prev = r->prev;
    free(r);
  } else {
    r->err = m->err;
    r->partition = m->partition;
    r->offset = m->offset;
    r->done = true;
    pthread_cond_broadcast(&p->cv);
  }
  pthread_mutex_unlock(&p->mu);
}

static void producer_free(struct kproducer *p);

int ctkn__kafka_producer_open(ctkn_producer **out,
                              const struct ctkn_log_config *cfg,
                              struct ctkn_err *err)
{
  rd_kafka_conf_t *conf;
  struct kproducer *p;
  int rc;

  *out = NULL;
  if ((p = calloc(1, sizeof(*p))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory opening the producer");
  ctkn__kctx_init(&p->k, p);
  pthread_mutex_init(&p->mu, NULL);
  ctkn__cond_init_monotonic(&p->cv);
  ctkn__strlcpy(p->topic, cfg->topic, sizeof(p->topic));
  p->timeout_ms = cfg->timeout_ms;

  if ((rc = ctkn__kafka_build_conf(cfg, CTKN__KAFKA_PRODUCER, &p->k, &conf,
                                   err)) != CTKN_OK)
    goto fail;
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  if ((rc = ctkn__kafka_new_handle(RD_KAFKA_PRODUCER, conf, &p->rk, err)) !=
      CTKN_OK)
    goto fail;
  if ((rc = ctkn__kafka_warm_topic(p->rk, &p->k, p->topic, p->timeout_ms,
                                   &p->rkt, NULL, err)) != CTKN_OK)
    goto fail;
  *out = &p->base;
  return CTKN_OK;
fail:
  producer_free(p);
  return rc;
}

void ctkn__kafka_producer_close(ctkn_producer *base)
{
  producer_free((struct kproducer *)base);
}

static void producer_free(struct kproducer *p)
{
  if (p->rk != NULL) {
    /* Every send waits for its report, so what is left belongs to senders
     * that already gave up: drop what was never sent, and give what is on
     * the wire the timeout to be acknowledged. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE);
    rd_kafka_flush(p->rk, p->timeout_ms);
    if (p->rkt != NULL)
      rd_kafka_topic_destroy(p->rkt);
    rd_kafka_destroy(p->rk);
  }
  while (p->abandoned != NULL) {
    struct report *r = p->abandoned;
    p->abandoned = r->next;
    free(r);
  }
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  pthread_mutex_destroy(&p->k.mu);
  free(p);
}

/* A write refused for want of an ACL. */
static int write_denied(struct kproducer *p, rd_kafka_resp_err_t e,
                        struct ctkn_err *err)
{
  char doing[300];
  struct ctkn__kafka_acl acl = {p->topic, "Write", NULL, NULL};

  snprintf(doing, sizeof(doing), "writing to %s", p->topic);
  return ctkn__kafka_denied_err(err, e, doing, &acl);
}

static int delivery_error(struct kproducer *p, rd_kafka_resp_err_t e,
                          int32_t partition, struct ctkn_err *err)
{
  char ctx[448], why[256];
  /* The idempotent producer's InitProducerId refused is fatal: 2.0.2
   * reports its records as __FATAL, 2.14 as purged from the queue. */
  rd_kafka_resp_err_t fe = rd_kafka_fatal_error(p->rk, why, sizeof(why));

  if (ctkn__kafka_denied(e) || ctkn__kafka_denied(fe))
    return write_denied(p, ctkn__kafka_denied(e) ? e : fe, err);
  switch (e) {
  case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
    return ctkn__err(err, CTKN_ETIMEOUT,
                     "kafka: no delivery report within %d ms: %s %s",
                     p->timeout_ms, rd_kafka_err2str(e),
                     ctkn__kctx_context(&p->k, ctx, sizeof(ctx)));
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    return ctkn__err(err, CTKN_ENOTFOUND,
                     "topic %s does not exist (run ctkn init)", p->topic);
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    return ctkn__err(err, CTKN_EKAFKA,
                     "kafka: topic %s has no partition %" PRId32, p->topic,
                     partition);
  case RD_KAFKA_RESP_ERR__FATAL: {
    return ctkn__err(err, CTKN_EKAFKA,
                     "kafka: the producer failed and must be reopened: %s",
                     why);
  }
  default:
    return ctkn__err(err, CTKN_EKAFKA, "kafka: delivery failed: %s %s",
                     rd_kafka_err2str(e),
                     ctkn__kctx_context(&p->k, ctx, sizeof(ctx)));
  }
}

/* Wait, holding p->mu, until r is done or the deadline passes. One waiter
 * at a time serves librdkafka's queue; its callbacks fill any waiter's
 * report. A waiter that comes after its deadline (a batch finished late:
 * the settling thread was busy with the batch before) still takes one
 * look at the reports that arrived meanwhile, so a record Kafka
 * acknowledged in time is not reported as timed out. */
static void wait_report(struct kproducer *p, struct report *r, int64_t deadline)
{
  bool last = false; /* past the deadline: one look without waiting */

  for (;;) {
    int64_t now = ctkn__now_ms();
    if (r->done || last)
      return;
    if (now >= deadline)
      last = true;
    int slice = last ? 0
                     : (int)(deadline - now < CTKN__KAFKA_POLL_SLICE_MS
                                 ? deadline - now
                                 : CTKN__KAFKA_POLL_SLICE_MS);
    if (!p->polling) {
      p->polling = true;
      pthread_mutex_unlock(&p->mu);
      rd_kafka_poll(p->rk, slice);
      pthread_mutex_lock(&p->mu);
      p->polling = false;
      pthread_cond_broadcast(&p->cv); /* let another waiter take over */
    } else {
      /* Another waiter serves the queue: wait for its slice (past the
       * deadline, one whole slice, so what it serves counts). */
      if (last)
        slice = CTKN__KAFKA_POLL_SLICE_MS;
      struct timespec ts = ctkn__monotonic_in(slice);
      pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
  }
}

/*
 * Hand one record to librdkafka with r as its report. On failure nothing
 * was enqueued and r is untouched.
 */
static int enqueue(struct kproducer *p, const struct ctkn_log_record *rec,
                   struct report *r, int64_t deadline, struct ctkn_err *err)
{
  rd_kafka_headers_t *hdrs =
      rd_kafka_headers_new(rec->headers ? rec->nheaders + 1 : 2);
  rd_kafka_resp_err_t e;
  char ctx[448];

  if (hdrs == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory producing a record");
  if (rec->headers != NULL) {
    /* Verbatim (a record copied from an archive): a header with a null
     * value keeps its null. */
    for (size_t i = 0; i < rec->nheaders; i++)
      rd_kafka_header_add(hdrs, rec->headers[i].name, -1, rec->headers[i].value,
                          rec->headers[i].value ? (ssize_t)rec->headers[i].size
                                                : 0);
  } else {
    if (rec->event_type != NULL)
      rd_kafka_header_add(hdrs, CTKN_HDR_EVENT_TYPE, -1, rec->event_type, -1);
    if (rec->schema_version >= 0) {
      char sv[16];
      snprintf(sv, sizeof(sv), "%d", rec->schema_version);
      rd_kafka_header_add(hdrs, CTKN_HDR_SCHEMA, -1, sv, -1);
    }
  }
  for (;;) {
    /* The headers become the message's on success only. */
    e = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(p->topic),
        RD_KAFKA_V_PARTITION(rec->partition < 0 ? RD_KAFKA_PARTITION_UA
                                                : rec->partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY((void *)rec->key, rec->klen),
        RD_KAFKA_V_VALUE((void *)rec->value, rec->vlen),
        RD_KAFKA_V_TIMESTAMP(rec->timestamp_ms), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE(r), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || ctkn__now_ms() >= deadline)
      break;
    /* Queue full: serve reports to make room, then retry. */
    pthread_mutex_lock(&p->mu);
    wait_report(p, r, ctkn__now_ms() + 10);
    pthread_mutex_unlock(&p->mu);
  }
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
    return CTKN_OK;
  rd_kafka_headers_destroy(hdrs);
  if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
    return ctkn__err(err, CTKN_ETIMEOUT,
                     "kafka: the producer queue stayed full for %d ms %s",
                     p->timeout_ms,
                     ctkn__kctx_context(&p->k, ctx, sizeof(ctx)));
  return delivery_error(p, e, rec->partition, err);
}

/* A batch handed to librdkafka, its reports still to come. */
struct kticket {
  struct ctkn_log_record *recs;
  size_t n;
  int64_t deadline;
  int first; /* the first failure's code; its detail in err */
  struct ctkn_err err;
  struct report *rs[]; /* n: NULL where the record was not enqueued */
};

/* Keep the first failure's detail in t->err; later ones only in rc. */
static void ticket_fail(struct kticket *t, size_t i, int rc,
                        const struct ctkn_err *e1)
{
  t->recs[i].rc = rc;
  if (t->first == CTKN_OK) {
    t->first = rc;
    t->err = *e1;
  }
}

int ctkn__kafka_send_start(ctkn_producer *base, struct ctkn_log_record *recs,
                           size_t n, void **out, struct ctkn_err *err)
{
  struct kproducer *p = (struct kproducer *)base;
  struct kticket *t = calloc(1, sizeof(*t) + n * sizeof(t->rs[0]));
  struct ctkn_err e1;

  *out = NULL;
  if (t == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory producing records");
  t->recs = recs;
  t->n = n;
  t->deadline = ctkn__now_ms() + p->timeout_ms;
  for (size_t i = 0; i < n; i++) {
    recs[i].rc = CTKN_OK;
    recs[i].out_partition = -1;
    recs[i].out_offset = -1;
    if ((t->rs[i] = calloc(1, sizeof(*t->rs[i]))) == NULL) {
      ticket_fail(
          t, i, ctkn__err(&e1, CTKN_ENOMEM, "out of memory producing a record"),
          &e1);
      continue;
    }
    int rc = enqueue(p, &recs[i], t->rs[i], t->deadline, &e1);
    if (rc != CTKN_OK) {
      free(t->rs[i]);
      t->rs[i] = NULL;
      ticket_fail(t, i, rc, &e1);
    }
  }
  *out = t;
  return CTKN_OK;
}

int ctkn__kafka_send_finish(ctkn_producer *base, void *ticket,
                            struct ctkn_err *err)
{
  struct kproducer *p = (struct kproducer *)base;
  struct kticket *t = ticket;
  struct ctkn_err e1;
  char ctx[448];
  int rc;

  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < t->n; i++) {
    if (t->rs[i] != NULL)
      wait_report(p, t->rs[i], t->deadline);
  }
  for (size_t i = 0; i < t->n; i++) {
    struct report *r = t->rs[i];
    if (r == NULL)
      continue;
    if (!r->done) {
      /* The record may still be delivered; a retry with the same
       * idempotency key is safe. Whoever comes last frees the report. */
      r->abandoned = true;
      r->prev = NULL;
      r->next = p->abandoned;
      if (p->abandoned != NULL)
        p->abandoned->prev = r;
      p->abandoned = r;
      ctkn__err(&e1, CTKN_ETIMEOUT,
                "kafka: no delivery report within %d ms; the record "
                "may still be written %s",
                p->timeout_ms, ctkn__kctx_context(&p->k, ctx, sizeof(ctx)));
      ticket_fail(t, i, CTKN_ETIMEOUT, &e1);
      continue;
    }
    if (r->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      t->recs[i].out_partition = r->partition;
      t->recs[i].out_offset = r->offset;
    } else {
      ticket_fail(t, i, delivery_error(p, r->err, t->recs[i].partition, &e1),
                  &e1);
    }
    free(r);
  }
  pthread_mutex_unlock(&p->mu);
  rc = t->first;
  if (rc != CTKN_OK && err != NULL)
    *err = t->err;
  free(t);
  return rc;
}

int ctkn__kafka_send_batch(ctkn_producer *base, struct ctkn_log_record *recs,
                           size_t n, struct ctkn_err *err)
{
  void *t;
  int rc = ctkn__kafka_send_start(base, recs, n, &t, err);

  return rc != CTKN_OK ? rc : ctkn__kafka_send_finish(base, t, err);
}
