/*
 * produce - the physical limit beside `ctkn serve`'s POST /client-tokens
 * with C requests in flight (bench/http): raw librdkafka with ctkn's
 * producer settings (idempotent, acks=all, linger.ms=0.2, murmur2_random),
 * closed loop with C records in flight: each delivery report releases the
 * next record, as each 201 lets a wrk connection send its next POST.
 *
 * Why not the bench's raw_librdkafka_produce: that one has a million
 * records in flight with linger.ms=20 and 1 MB batches, a throughput no
 * client that waits for its answer can reach; with C in flight, the broker
 * round trip of an acks=all append bounds any writer. ctkn adds to it only
 * its own work (the HTTP request, planning, waiting for its projection).
 *
 * Records carry a 31-byte key (a token ID's length) and a 160-byte value
 * (about a client_token.created event), on TOPIC, which should be a topic
 * of its own (ctkn init) so that no projection sees them.
 *
 * Prints one JSON line: {"rate":records/s,"p50_ms","p99_ms"} (produce ->
 * delivery report).
 *
 * With SECONDS 0 it is the limit beside one `ctkn create` process
 * (bench/bench): a process that starts, connects, produces one record
 * with the same settings, waits for its delivery report and exits,
 * printing nothing. The caller times the process.
 *
 * usage: produce BROKERS TOPIC INFLIGHT SECONDS
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "produce"
#include "common.h"

static double *lat;
static size_t nlat, caplat;
static int inflight;
static int failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
  (void)rk;
  (void)opaque;
  inflight--;
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failed = 1;
    return;
  }
  double *t0 = m->_private;
  if (nlat == caplat) {
    caplat = caplat ? caplat * 2 : 65536;
    if ((lat = realloc(lat, caplat * sizeof(*lat))) == NULL)
      die("out of memory");
  }
  lat[nlat++] = (now_s() - *t0) * 1e3;
  free(t0);
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* One record, its delivery report, and out (SECONDS 0). */
static int once(rd_kafka_t *rk, const char *topic, char *value, size_t len)
{
  char key[32];
  double *ts = malloc(sizeof(*ts));

  if (ts == NULL)
    die("out of memory");
  *ts = now_s();
  snprintf(key, sizeof(key), "ctkn_%026u", (unsigned)getpid());
  if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, 31),
                        RD_KAFKA_V_VALUE(value, len),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_OPAQUE(ts),
                        RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR)
    die("produce");
  inflight = 1;
  while (inflight > 0 && !failed)
    rd_kafka_poll(rk, 10);
  if (failed)
    die("the record was not delivered");
  rd_kafka_destroy(rk);
  free(lat);
  return 0;
}

int main(int argc, char **argv)
{
  if (argc != 5) {
    fprintf(stderr, "usage: produce BROKERS TOPIC INFLIGHT SECONDS\n");
    return 2;
  }
  const char *topic = argv[2];
  int want = atoi(argv[3]);
  double seconds = atof(argv[4]);
  static const char *const kv[] = {
      "enable.idempotence", "true",      "acks", "all", "partitioner",
      "murmur2_random",     "linger.ms", "0.2",  NULL};
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  char errstr[256], value[160];
  unsigned seed = 42;

  if (want < 1 || seconds < 0)
    die("bad arguments");
  if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr,
                        sizeof(errstr)) != RD_KAFKA_CONF_OK)
    die(errstr);
  for (const char *const *p = kv; *p; p += 2)
    if (rd_kafka_conf_set(conf, p[0], p[1], errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK)
      die(errstr);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t *rk =
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == NULL)
    die(errstr);
  memset(value, 'v', sizeof(value));
  if (seconds == 0)
    return once(rk, topic, value, sizeof(value));

  /* A second of warm-up (connections, metadata, the broker's JIT), not
   * counted. */
  double start = now_s(), t0 = 0;
  size_t warm = 0;
  while (!failed) {
    double now = now_s();
    if (t0 == 0 && now - start >= 1) {
      t0 = now;
      warm = nlat;
    }
    if (t0 != 0 && now - t0 >= seconds)
      break;
    while (inflight < want) {
      char key[32];
      double *ts = malloc(sizeof(*ts));
      if (ts == NULL)
        die("out of memory");
      snprintf(key, sizeof(key), "ctkn_%026u", (unsigned)rand_r(&seed));
      *ts = now_s();
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, 31),
          RD_KAFKA_V_VALUE(value, sizeof(value)),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(ts),
          RD_KAFKA_V_END);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        die(rd_kafka_err2str(e));
      inflight++;
    }
    rd_kafka_poll(rk, 1);
  }
  double dt = now_s() - t0;
  size_t n = nlat - warm;
  rd_kafka_flush(rk, 10000);
  if (failed)
    die("a record was not delivered");
  if (n == 0)
    die("nothing delivered");
  qsort(lat + warm, n, sizeof(*lat), cmp_double);
  printf("{\"rate\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f}\n", (double)n / dt,
         lat[warm + n / 2], lat[warm + (size_t)(0.99 * (double)(n - 1))]);
  rd_kafka_destroy(rk);
  free(lat);
  return 0;
}
