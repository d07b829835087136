/*
 * roundtrip - the physical limit of revocation propagation: one record
 * produced with raw librdkafka (idempotent, acks=all, linger.ms=0.2, as ctkn's
 * producer) until each of R consumers (one handle each, as R reader
 * replicas; fetch.wait.max.ms as ctkn's consumer) has received it.
 *
 * Records go round-robin over the topic's partitions, one at a time, with
 * a short pause between them, like sequential revokes. Prints one JSON line
 * with the percentiles, in milliseconds, of produce -> every consumer has it
 * ("all") and of produce -> delivery report ("ack").
 *
 * usage: roundtrip BROKERS TOPIC PARTITIONS SAMPLES [REPLICAS]
 */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "roundtrip"
#include "common.h"

#define MAX_REPLICAS 8

static void sleep_us(long us)
{
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};

  nanosleep(&ts, NULL);
}

/* One consumer: the last sample it has seen and when (bits of a double). */
struct replica {
  pthread_t thread;
  rd_kafka_t *rk;
  rd_kafka_queue_t *q;
  atomic_long seen;
  atomic_uint_least64_t at;
};

static atomic_bool stopping;

static void *consume(void *arg)
{
  struct replica *r = arg;

  while (!atomic_load(&stopping)) {
    rd_kafka_message_t *m = rd_kafka_consume_queue(r->q, 100);
    if (m == NULL)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->len == sizeof(long)) {
      double t = now_s();
      uint64_t bits;
      long id;
      memcpy(&id, m->payload, sizeof(id));
      memcpy(&bits, &t, sizeof(bits));
      atomic_store(&r->at, bits);
      atomic_store(&r->seen, id);
    }
    rd_kafka_message_destroy(m);
  }
  return NULL;
}

static void open_replica(struct replica *r, const char *brokers,
                         const char *topic, int32_t nparts, int i)
{
  char group[64];
  snprintf(group, sizeof(group), "ctkn-roundtrip-%d-%ld", i, (long)getpid());
  const char *const kv[] = {"group.id",
                            group,
                            "enable.auto.commit",
                            "false",
                            "enable.partition.eof",
                            "false",
                            "fetch.wait.max.ms",
                            "100",
                            NULL};
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new(nparts);

  r->rk = new_handle(RD_KAFKA_CONSUMER, brokers, kv);
  atomic_init(&r->seen, -1);
  atomic_init(&r->at, 0);
  for (int32_t p = 0; p < nparts; p++)
    rd_kafka_topic_partition_list_add(l, topic, p)->offset =
        RD_KAFKA_OFFSET_END;
  rd_kafka_poll_set_consumer(r->rk);
  r->q = rd_kafka_queue_get_consumer(r->rk);
  if (rd_kafka_assign(r->rk, l) != RD_KAFKA_RESP_ERR_NO_ERROR)
    die("assign");
  rd_kafka_topic_partition_list_destroy(l);
  if (pthread_create(&r->thread, NULL, consume, r) != 0)
    die("pthread_create");
}

/* The highest sample id delivered, or the negated id of a failed one. Each
 * report names its own sample (the message's opaque), so a late report is
 * never taken for the current sample's. */
static volatile long delivered = -1;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
  long id = (long)(intptr_t)m->_private;

  (void)rk;
  (void)opaque;
  delivered = m->err == RD_KAFKA_RESP_ERR_NO_ERROR ? id : -id - 2;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
  return v[(size_t)(p * (double)(n - 1))];
}

/* Produce sample id and wait up to limit seconds for every replica; 0 when
 * they all had it. The receive times are taken by the consumer threads, so
 * this thread's polling interval does not count. */
static int sample(rd_kafka_t *prod, const char *topic, int32_t part, long id,
                  struct replica *reps, int nreps, double limit, double *all,
                  double *ack)
{
  double t0 = now_s(), deadline = t0 + limit;

  if (rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic),
                        RD_KAFKA_V_PARTITION(part),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_VALUE(&id, sizeof(id)),
                        RD_KAFKA_V_OPAQUE((void *)(intptr_t)id),
                        RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR)
    die("produce");
  while (delivered != id && delivered != -id - 2 && now_s() < deadline)
    rd_kafka_poll(prod, 1);
  if (delivered != id)
    return -1;
  *ack = now_s() - t0;
  for (int i = 0; i < nreps; i++) {
    while (atomic_load(&reps[i].seen) < id) {
      if (now_s() > deadline)
        return -1;
      sleep_us(100);
    }
  }
  double last = 0;
  for (int i = 0; i < nreps; i++) {
    uint64_t bits = atomic_load(&reps[i].at);
    double t;
    memcpy(&t, &bits, sizeof(t));
    if (t > last)
      last = t;
  }
  *all = last - t0;
  return 0;
}

int main(int argc, char **argv)
{
  if (argc != 5 && argc != 6) {
    fprintf(stderr,
            "usage: roundtrip BROKERS TOPIC PARTITIONS SAMPLES [REPLICAS]\n");
    return 2;
  }
  const char *brokers = argv[1], *topic = argv[2];
  int32_t nparts = (int32_t)atoi(argv[3]);
  int n = atoi(argv[4]), nreps = argc == 6 ? atoi(argv[5]) : 3;
  static const char *const pkv[] = {"enable.idempotence", "true", "acks", "all",
                                    "linger.ms",          "0.2",  NULL};
  struct replica reps[MAX_REPLICAS];

  if (nparts < 1 || n < 1 || nreps < 1 || nreps > MAX_REPLICAS)
    die("bad arguments");
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char errstr[256];
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr,
                        sizeof(errstr)) != RD_KAFKA_CONF_OK)
    die(errstr);
  for (const char *const *kv = pkv; kv[0]; kv += 2)
    if (rd_kafka_conf_set(conf, kv[0], kv[1], errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK)
      die(errstr);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t *prod =
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (prod == NULL)
    die(errstr);
  for (int i = 0; i < nreps; i++)
    open_replica(&reps[i], brokers, topic, nparts, i);

  /* Warm up: connections, fetch sessions, the JIT; until every replica has
   * seen a record of every partition, then 50 more. */
  double all, ack;
  long id = 0;
  double until = now_s() + 60;
  for (int ok = 0; ok < nparts + 50;) {
    if (now_s() > until)
      die("replicas never caught up");
    if (sample(prod, topic, (int32_t)(id % nparts), id, reps, nreps, 1, &all,
               &ack) == 0)
      ok++;
    else
      ok = 0;
    id++;
  }

  double *alls = malloc((size_t)n * sizeof(*alls));
  double *acks = malloc((size_t)n * sizeof(*acks));
  int got = 0;
  while (got < n) {
    sleep_us(20000);
    if (sample(prod, topic, (int32_t)(id % nparts), id, reps, nreps, 10, &all,
               &ack) != 0)
      die("a record did not reach every replica within 10 s");
    alls[got] = all * 1e3;
    acks[got] = ack * 1e3;
    got++;
    id++;
  }
  qsort(alls, (size_t)n, sizeof(*alls), cmp_double);
  qsort(acks, (size_t)n, sizeof(*acks), cmp_double);
  printf("{\"samples\":%d,\"replicas\":%d,\"all_p50\":%.3f,\"all_p99\":%.3f,"
         "\"all_max\":%.3f,\"ack_p50\":%.3f,\"ack_p99\":%.3f}\n",
         n, nreps, pct(alls, (size_t)n, 0.5), pct(alls, (size_t)n, 0.99),
         alls[n - 1], pct(acks, (size_t)n, 0.5), pct(acks, (size_t)n, 0.99));

  atomic_store(&stopping, true);
  for (int i = 0; i < nreps; i++) {
    pthread_join(reps[i].thread, NULL);
    rd_kafka_queue_destroy(reps[i].q);
    rd_kafka_destroy_flags(reps[i].rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  }
  rd_kafka_flush(prod, 5000);
  rd_kafka_destroy(prod);
  free(alls);
  free(acks);
  return 0;
}
