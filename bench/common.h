/*
 * common.h - what every benchmark program shares: a monotonic clock, the
 * figure line ({"name","value","unit","limit","ratio"}, limit null for a
 * figure that is itself a limit) and dying with the program's name.
 * Define BENCH_NAME before including it.
 */
#ifndef CTKN_BENCH_COMMON_H
#define CTKN_BENCH_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench/common.h"
#endif

static inline double now_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void figure(const char *name, double value, const char *unit,
                          double limit)
{
  printf("{\"name\":\"%s\",\"value\":%.3f,\"unit\":\"%s\",", name, value, unit);
  if (limit > 0)
    printf("\"limit\":%.3f,\"ratio\":%.3f}\n", limit, value / limit);
  else
    printf("\"limit\":null,\"ratio\":null}\n");
  fflush(stdout);
}

static inline _Noreturn void die(const char *what)
{
  fprintf(stderr, BENCH_NAME ": %s\n", what);
  exit(1);
}

#ifdef RD_KAFKA_VERSION
/* A librdkafka handle of type on brokers with the key/value pairs of kv
 * (NULL-terminated), or death. */
static inline rd_kafka_t *new_handle(rd_kafka_type_t type, const char *brokers,
                                     const char *const *kv)
{
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char errstr[256];

  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                        sizeof(errstr)) != RD_KAFKA_CONF_OK)
    die(errstr);
  for (; kv && kv[0]; kv += 2)
    if (rd_kafka_conf_set(conf, kv[0], kv[1], errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK)
      die(errstr);
  rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
  if (rk == NULL)
    die(errstr);
  return rk;
}

/* The producer that fills a benchmark's topic: idempotent, acks=all,
 * large batches. */
static const char *const fill_conf[] = {"enable.idempotence",
                                        "true",
                                        "acks",
                                        "all",
                                        "linger.ms",
                                        "20",
                                        "batch.size",
                                        "1000000",
                                        "queue.buffering.max.messages",
                                        "1000000",
                                        NULL};
#endif

#if defined(RD_KAFKA_VERSION) && defined(CTKN_CODEC_H)
/* Produce ev (encoded as ctkn writes it, with its headers) to a
 * partition, waiting while librdkafka's queue is full. For programs that
 * include librdkafka and ctkn/codec.h before this header. */
static inline void produce_one(rd_kafka_t *rk, const char *topic, int32_t part,
                               const struct ctkn_event *ev)
{
  uint8_t *buf;
  size_t len;

  if (ctkn_event_encode(ev, &buf, &len, NULL) != CTKN_OK)
    die("encode");
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
        RD_KAFKA_V_KEY(ev->data.id, strlen(ev->data.id)),
        RD_KAFKA_V_VALUE(buf, len),
        RD_KAFKA_V_TIMESTAMP(ev->occurred_at / 1000),
        RD_KAFKA_V_HEADER(CTKN_HDR_EVENT_TYPE, ctkn_event_type_str(ev->type),
                          -1),
        RD_KAFKA_V_HEADER(CTKN_HDR_SCHEMA, "1", 1), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
      return;
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      die(rd_kafka_err2str(e));
    rd_kafka_poll(rk, 10);
  }
}
#endif

#if defined(RD_KAFKA_VERSION) && defined(CTKN_LOG_H)
/* Produce r, a record as ctkn's signer prepared it, with its headers, to
 * its partition, waiting while librdkafka's queue is full. */
static inline void produce_rec(rd_kafka_t *rk, const char *topic,
                               const struct ctkn_log_record *r)
{
  rd_kafka_headers_t *h = rd_kafka_headers_new(r->nheaders);

  for (size_t i = 0; i < r->nheaders; i++)
    rd_kafka_header_add(h, r->headers[i].name, -1, r->headers[i].value,
                        (ssize_t)r->headers[i].size);
  for (;;) {
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(r->partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(r->key, r->klen),
        RD_KAFKA_V_VALUE((void *)r->value, r->vlen),
        RD_KAFKA_V_TIMESTAMP(r->timestamp_ms), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
      return; /* the headers are the message's now */
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      die(rd_kafka_err2str(e));
    rd_kafka_poll(rk, 10);
  }
}
#endif

#endif /* CTKN_BENCH_COMMON_H */
