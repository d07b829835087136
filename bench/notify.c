/*
 * notify - webhook delivery (`ctkn notify`, notify.h) beside the physical
 * limit measured in the same run, one JSON line per figure, as bench/bench:
 * {"name","value","unit","limit","ratio"}.
 *
 * An in-process receiver (libmicrohttpd, internal epoll thread, on
 * 127.0.0.1 at a port of the kernel's choosing) answers every POST with
 * 200 and an empty body at once, and notes the time of the first and the
 * last request it answers. For D = 1, then 10 destinations:
 *
 *   1. A fresh 6-partition topic and its settings topic; a fresh
 *      projection; D destinations on the receiver subscribed to every
 *      client_token event (ctkn_settings_execute).
 *   2. M creates on the topic through raw librdkafka, then the projection
 *      caught up (ctkn_projector_catch_up), so the timed part is delivery.
 *   3. Figure: ctkn_notify_run (one-shot, its own lease group, default
 *      window 8) delivering the M x D notifications; its attempt log goes to
 *      a file, as in production. It must deliver every one, and the
 *      receiver must have answered exactly that many.
 *   4. Limit: raw libcurl multi POSTing M x D bodies of the notifications'
 *      size (with headers of the same sizes) to the same receiver with the
 *      same concurrency (6 partitions x D destinations x window 8),
 *      keep-alive, each easy handle reused: what the HTTP client and
 *      server give on this machine.
 *
 * Both rates are the receiver's: requests between its first and its last
 * answer, over that time, so neither counts set-up (notify's lease join,
 * connection set-up before the first request goes out).
 *
 * Each D runs in two modes (CTKN_BENCH_NOTIFY_MODES, default
 * "unsigned signed"); in both the notifier appends its delivery records
 * (created, attempted, delivered) to <topic>_notifications, and the round
 * fails unless that topic then holds at least one record per notification:
 *   unsigned  no trust root: the records go out unsigned
 *             (figure notify_deliveries_Ddest);
 *   signed    as a trusted deployment runs (issue #14): a trust root and a
 *             keyring made for the round (a client_token.* key signing the
 *             creates, a notification_setting.* key the destinations, a
 *             notification.* key the notifier, schema version 2 enabled),
 *             the projection judging by the root and the notifier signing
 *             its delivery records (figure notify_deliveries_Ddest_signed).
 *
 * usage: notify BROKERS TOPIC DIR M
 * Env:   CTKN_BENCH_NOTIFY_DESTS (default "1 10"),
 *        CTKN_BENCH_NOTIFY_MODES (default "unsigned signed"),
 *        CTKN_BENCH_NOTIFY_RECEIVER_THREADS (default 1).
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/delivery.h"
#include "ctkn/event.h"
#include "ctkn/keyring.h"
#include "ctkn/log.h"
#include "ctkn/notify.h"
#include "ctkn/projector.h"
#include "ctkn/settings.h"
#include "ctkn/store.h"
#include "ctkn/trust.h"

#define BENCH_NAME "notify bench"
#include "common.h"

#define NPARTS 6
#define WINDOW 8

static void die_err(const char *what, const struct ctkn_err *err)
{
  fprintf(stderr, "notify bench: %s: %s\n", what, err->msg);
  exit(1);
}

/* ---- the receiver ------------------------------------------------------ */

static struct MHD_Response *empty;
static atomic_ulong answered, connections;
static _Atomic double first_at, last_at;
static int marker;

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
  (void)cls;
  (void)url;
  (void)method;
  (void)version;
  (void)upload_data;
  if (*req_cls == NULL) {
    *req_cls = &marker;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  double t = now_s();
  if (atomic_fetch_add(&answered, 1) == 0)
    atomic_store(&first_at, t);
  atomic_store(&last_at, t);
  return MHD_queue_response(conn, MHD_HTTP_OK, empty);
}

static void completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
  (void)cls;
  (void)conn;
  (void)toe;
  *req_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
  (void)cls;
  (void)conn;
  (void)socket_context;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED)
    atomic_fetch_add(&connections, 1);
}

static struct MHD_Daemon *receiver_start(unsigned threads, unsigned *port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = 0,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct MHD_Daemon *d;
  const union MHD_DaemonInfo *info;

  empty =
      MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (empty == NULL)
    die("receiver: response");
  /* One internal thread, or a pool of more when told (libmicrohttpd
   * warns about a pool of one). */
  struct MHD_OptionItem opts[] = {
      {MHD_OPTION_SOCK_ADDR, 0, &sa},
      {MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL},
      {MHD_OPTION_CONNECTION_LIMIT, 10000, NULL},
      {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, NULL},
      {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, NULL},
      {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
       (intptr_t)threads, NULL},
      {MHD_OPTION_END, 0, NULL}};
  d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0,
                       NULL, NULL, handle, NULL, MHD_OPTION_ARRAY, opts,
                       MHD_OPTION_END);
  if (d == NULL)
    die("receiver: cannot listen on 127.0.0.1");
  info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  if (info == NULL || info->port == 0)
    die("receiver: no port");
  *port = info->port;
  return d;
}

static void receiver_reset(void)
{
  atomic_store(&answered, 0);
  atomic_store(&connections, 0);
  atomic_store(&first_at, 0.0);
  atomic_store(&last_at, 0.0);
}

/* Requests/s between the receiver's first and last answer. */
static double receiver_rate(unsigned long want)
{
  unsigned long n = atomic_load(&answered);
  double dt = atomic_load(&last_at) - atomic_load(&first_at);

  if (n != want) {
    fprintf(stderr, "notify bench: the receiver answered %lu, not %lu\n", n,
            want);
    exit(1);
  }
  return n > 1 && dt > 0 ? (double)(n - 1) / dt : 0;
}

/* ---- the events --------------------------------------------------------- */

#define SIGN_BATCH 256

/* n planned events through the signer as one produce batch: the records,
 * then a checkpoint for each partition they touch. */
static void produce_signed(rd_kafka_t *rk, const char *topic, ctkn_signer *sg,
                           const struct ctkn_event *evs, size_t n)
{
  struct ctkn_log_record in[SIGN_BATCH], *out;
  uint8_t *bufs[SIGN_BATCH];
  size_t len, nout;

  for (size_t i = 0; i < n; i++) {
    const struct ctkn_event *ev = &evs[i];
    if (ctkn_event_encode(ev, &bufs[i], &len, NULL) != CTKN_OK)
      die("encode");
    in[i] =
        (struct ctkn_log_record){.partition = ctkn_log_partition_for(
                                     ev->data.id, strlen(ev->data.id), NPARTS),
                                 .key = ev->data.id,
                                 .klen = strlen(ev->data.id),
                                 .value = bufs[i],
                                 .vlen = len,
                                 .timestamp_ms = ev->occurred_at / 1000,
                                 .event_type = ctkn_event_type_str(ev->type),
                                 .schema_version = CTKN_SCHEMA_WRITTEN};
  }
  if (ctkn_signer_prepare(sg, in, n, 0, ctkn_now_us(), &out, &nout, NULL) !=
      CTKN_OK)
    die("sign");
  for (size_t i = 0; i < nout; i++)
    produce_rec(rk, topic, &out[i]);
  ctkn_signer_done(sg, true, NULL); /* a failed flush ends the bench */
  for (size_t i = 0; i < n; i++)
    free(bufs[i]);
}

/* M creates, each on its token's partition, as a ledger appends them;
 * signed by sg when it is not NULL. */
static void produce_creates(const char *brokers, const char *topic, size_t m,
                            ctkn_signer *sg)
{
  rd_kafka_t *rk = new_handle(RD_KAFKA_PRODUCER, brokers, fill_conf);
  struct ctkn_event *evs = malloc(SIGN_BATCH * sizeof(*evs));
  struct ctkn_command cmd;
  int64_t t = ctkn_now_us();
  double t0 = now_s();
  size_t k = 0;

  if (evs == NULL)
    die("out of memory");
  for (size_t i = 0; i < m; i++) {
    struct ctkn_event *ev = &evs[k];
    char name[32];
    snprintf(name, sizeof(name), "token %zu", i);
    ctkn_command_init(&cmd, CTKN_CMD_CREATE);
    ctkn_command_set_name(&cmd, name, strlen(name), NULL);
    if (ctkn_plan(NULL, &cmd, CTKN_ENV_SANDBOX, t++, ev, NULL) != 0)
      die("plan create");
    if (sg == NULL) {
      produce_one(
          rk, topic,
          ctkn_log_partition_for(ev->data.id, strlen(ev->data.id), NPARTS), ev);
      continue;
    }
    if (++k == SIGN_BATCH || i + 1 == m) {
      produce_signed(rk, topic, sg, evs, k);
      k = 0;
    }
  }
  while (rd_kafka_flush(rk, 1000) == RD_KAFKA_RESP_ERR__TIMED_OUT)
    ;
  rd_kafka_destroy(rk);
  free(evs);
  fprintf(stderr, "notify bench: produced %zu creates%s in %.1f s\n", m,
          sg ? ", signed" : "", now_s() - t0);
}

/* The records on every partition of topic (the sum of its high
 * watermarks). */
static int64_t topic_records(const char *brokers, const char *topic)
{
  rd_kafka_t *rk = new_handle(RD_KAFKA_PRODUCER, brokers, NULL);
  int64_t sum = 0, lo, hi;

  for (int32_t p = 0; p < NPARTS; p++) {
    if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
      die("watermarks of the notifications topic");
    sum += hi;
  }
  rd_kafka_destroy(rk);
  return sum;
}

/* ---- trust: what a deployment with delivery records runs ---------------- */

struct trust {
  ctkn_seckey *root, *tokens, *dests, *notifier;
  uint8_t root_pub[CTKN_SIGN_PUB_LEN];
  ctkn_signer *signer; /* the creates' */
};

static void add_key(struct ctkn_keyring *kr, ctkn_seckey **k, const char *name,
                    const char *scope)
{
  struct ctkn_writer_key wk = {0};

  if (ctkn_seckey_generate(k, NULL) != CTKN_OK)
    die("key");
  ctkn_seckey_public(*k, wk.public_key);
  ctkn_key_id(wk.public_key, wk.key_id);
  snprintf(wk.name, sizeof(wk.name), "%s", name);
  snprintf(wk.scopes[0], sizeof(wk.scopes[0]), "%s", scope);
  wk.nscopes = 1;
  if (ctkn_keyring_add_key(kr, &wk, NULL) != CTKN_OK)
    die("keyring: add key");
}

/* A root, and on the settings topic scfg names its keyring: a writer key
 * for each record family, and schema version 2 (delivery records). */
static void trust_setup(struct trust *t, const struct ctkn_log_config *scfg)
{
  struct ctkn_keyring kr;
  struct ctkn_err err;

  memset(t, 0, sizeof(*t));
  if (ctkn_seckey_generate(&t->root, NULL) != CTKN_OK)
    die("root key");
  ctkn_seckey_public(t->root, t->root_pub);
  ctkn_keyring_init(&kr);
  kr.version = 1;
  if (ctkn_random(kr.log_id, sizeof(kr.log_id)) != 0)
    die("random");
  add_key(&kr, &t->tokens, "bench-tokens", "client_token.*");
  add_key(&kr, &t->dests, "bench-destinations", "notification_setting.*");
  add_key(&kr, &t->notifier, "bench-notifier", "notification.*");
  kr.schemas[kr.nschemas++] = CTKN_SCHEMA_VERSION;
  if (ctkn_trust_keyring_append(scfg, t->root, &kr, &err) != CTKN_OK)
    die_err("keyring append", &err);
  if (ctkn_signer_open(&t->signer, t->tokens, kr.log_id, NPARTS, &err) !=
      CTKN_OK)
    die_err("signer", &err);
  ctkn_keyring_free(&kr);
}

static void trust_free(struct trust *t)
{
  ctkn_signer_close(t->signer);
  ctkn_seckey_free(t->root);
  ctkn_seckey_free(t->tokens);
  ctkn_seckey_free(t->dests);
  ctkn_seckey_free(t->notifier);
}

/* The size of a real notification body: a create's webhook JSON with its
 * notification ID. */
static size_t body_size(void)
{
  struct ctkn_event ev;
  struct ctkn_command cmd;
  char *json;

  ctkn_command_init(&cmd, CTKN_CMD_CREATE);
  ctkn_command_set_name(&cmd, "token 10000", 11, NULL);
  if (ctkn_plan(NULL, &cmd, CTKN_ENV_SANDBOX, ctkn_now_us(), &ev, NULL) != 0)
    die("plan create");
  ctkn_notification_id(ev.event_id, "ntfset_01hzzzzzzzzzzzzzzzzzzzzzzz",
                       ev.notification_id);
  if ((json = ctkn_json_event(&ev)) == NULL)
    die("out of memory");
  size_t n = strlen(json);
  free(json);
  return n;
}

/* ---- the limit: raw libcurl multi --------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
  (void)p;
  (void)arg;
  return size * n;
}

/* total POSTs of a size-byte body, conc in flight, each easy handle reused
 * for the next request once its answer is in. */
static void raw_posts(const char *url, size_t size, int conc,
                      unsigned long total)
{
  CURLM *multi = curl_multi_init();
  CURL **easy = calloc((size_t)conc, sizeof(*easy));
  char *body = malloc(size), sig[CTKN_SIGNATURE_BUF + 20];
  struct curl_slist *hdrs = NULL;
  unsigned long started = 0, done = 0;
  int running;

  if (multi == NULL || easy == NULL || body == NULL)
    die("out of memory");
  memset(body, 'x', size);
  /* A signature header of the real one's length. */
  snprintf(sig, sizeof(sig), "Paddle-Signature: ts=%" PRId64 ";h1=%064d",
           (int64_t)time(NULL), 0);
  hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  hdrs = curl_slist_append(hdrs, sig);
  hdrs = curl_slist_append(hdrs, "Expect:");
  for (int i = 0; i < conc; i++) {
    CURL *c = easy[i] = curl_easy_init();
    if (c == NULL)
      die("curl_easy_init");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ctkn-notify/0.1");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if ((unsigned long)i < total) {
      curl_multi_add_handle(multi, c);
      started++;
    }
  }
  while (done < total) {
    CURLMsg *msg;
    int left;
    curl_multi_perform(multi, &running);
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
      long code = 0;
      if (msg->msg != CURLMSG_DONE)
        continue;
      CURL *c = msg->easy_handle;
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
      if (msg->data.result != CURLE_OK || code != 200)
        die("raw POST failed");
      done++;
      curl_multi_remove_handle(multi, c);
      if (started < total) {
        curl_multi_add_handle(multi, c);
        started++;
      }
    }
    if (done < total)
      curl_multi_poll(multi, NULL, 0, 100, NULL);
  }
  for (int i = 0; i < conc; i++)
    curl_easy_cleanup(easy[i]);
  curl_multi_cleanup(multi);
  curl_slist_free_all(hdrs);
  free(easy);
  free(body);
}

/* ---- one round ---------------------------------------------------------- */

static void round_of(const char *brokers, const char *base, const char *dir,
                     size_t m, int ndest, bool records, unsigned port,
                     size_t size)
{
  const char *sfx = records ? "_signed" : "";
  struct ctkn_log_config cfg, scfg;
  struct ctkn_store_opts so = {0};
  struct ctkn_notify_opts o = {0};
  struct ctkn_notify_stats stats;
  struct ctkn_err err;
  /* The receiver is on loopback, which destinations must be allowed into
   * explicitly, when created and when delivered to. */
  struct ctkn_cidr loopback;
  struct ctkn_dest_policy policy = {.env = CTKN_ENV_SANDBOX,
                                    .allow = &loopback,
                                    .nallow = 1,
                                    .max_active = ndest};
  ctkn_store *st;
  ctkn_projector *pj;
  struct trust t;
  uint8_t key[CTKN_KEY_LEN];
  char path[4096], group[300], url[128], name[64], ntopic[300];
  bool created;
  int32_t have;

  if (ctkn_cidr_parse("127.0.0.0/8", &loopback, &err) != CTKN_OK)
    die_err("cidr", &err);
  o.allow = &loopback;
  o.nallow = 1;
  ctkn_log_config_init(&cfg);
  snprintf(cfg.brokers, sizeof(cfg.brokers), "%s", brokers);
  snprintf(cfg.topic, sizeof(cfg.topic), "%s-notify-%d%s", base, ndest,
           records ? "-signed" : "");
  cfg.timeout_ms = 30000;
  scfg = cfg;
  scfg.n_overrides = 0;
  if (ctkn_settings_topic(cfg.topic, scfg.topic, sizeof(scfg.topic), &err) !=
          CTKN_OK ||
      ctkn_log_create_topic(&cfg, NPARTS, 1, &created, &have, &err) !=
          CTKN_OK ||
      ctkn_log_create_topic(&scfg, 1, 1, &created, &have, &err) != CTKN_OK ||
      ctkn_delivery_create_topic(&cfg, NPARTS, 1, &created, &have, &err) !=
          CTKN_OK ||
      ctkn_delivery_topic(cfg.topic, ntopic, sizeof(ntopic), &err) != CTKN_OK)
    die_err("topics", &err);
  if (records) {
    trust_setup(&t, &scfg);
    policy.trust_root = t.root_pub;
    policy.writer_key = t.dests;
    o.trust_root = t.root_pub;
    o.writer_key = t.notifier;
  }

  snprintf(path, sizeof(path), "%s/notify-%d%s", dir, ndest, sfx);
  if (mkdir(path, 0700) != 0)
    die("mkdir");
  if (ctkn_store_open(&st, path, &so, &err) != CTKN_OK ||
      ctkn_store_bind(st, cfg.topic, CTKN_ENV_SANDBOX, &err) != CTKN_OK)
    die_err("store", &err);
  if (ctkn_random(key, sizeof(key)) != 0)
    die("random");
  for (int i = 0; i < ndest; i++) {
    struct ctkn_dest_command cmd;
    struct ctkn_dest_outcome out;
    ctkn_dest_command_init(&cmd, CTKN_DEST_ADD);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook/%d", port, i);
    if (ctkn_dest_command_set_url(&cmd, url, &err) != CTKN_OK ||
        ctkn_dest_command_set_event_mask(&cmd, CTKN_DEST_EVENTS_ALL, &err) !=
            CTKN_OK ||
        ctkn_settings_execute(st, &cfg, key, &cmd, &policy, &out, &err) !=
            CTKN_OK)
      die_err("destination add", &err);
  }

  produce_creates(brokers, cfg.topic, m, records ? t.signer : NULL);
  double t0 = now_s();
  if (ctkn_projector_open(&pj, st, &cfg, CTKN_ENV_SANDBOX, &err) != CTKN_OK ||
      (records && ctkn_projector_set_trust(pj, t.root_pub, &err) != CTKN_OK) ||
      ctkn_projector_catch_up(pj, NULL, 0, &err) != CTKN_OK)
    die_err("projector", &err);
  ctkn_projector_close(pj);
  fprintf(stderr, "notify bench: projected in %.1f s\n", now_s() - t0);

  /* The attempt log (a line per attempt on stderr) goes to a file. */
  snprintf(group, sizeof(group), "ctkn-bench-%s", cfg.topic);
  o.group = group;
  o.follow = false;
  snprintf(path, sizeof(path), "%s/notify-%d%s.log", dir, ndest, sfx);
  int logfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int saved = dup(2);
  if (logfd < 0 || saved < 0)
    die("log file");
  fflush(stderr);
  dup2(logfd, 2);
  receiver_reset();
  t0 = now_s();
  int rc = ctkn_notify_run(st, &cfg, CTKN_ENV_SANDBOX, key, &o, &stats, &err);
  double wall = now_s() - t0;
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(logfd);
  if (rc != CTKN_OK)
    die_err("ctkn_notify_run", &err);
  unsigned long want = (unsigned long)m * (unsigned long)ndest;
  if (stats.delivered != want || stats.attempts != want)
    die("notify did not deliver every notification at the first attempt");
  double ours = receiver_rate(want);
  int64_t nrec = topic_records(brokers, ntopic);
  fprintf(stderr,
          "notify bench: %d dest%s: %lu delivered, %.1f s in ctkn_notify_run "
          "(%.0f/s with set-up), %.0f/s at the receiver, %lu connections, "
          "%" PRId64 " records on %s\n",
          ndest, records ? ", signed" : "", want, wall, (double)want / wall,
          ours, atomic_load(&connections), nrec, ntopic);
  /* Unsigned, or signed by the notification.* key: on the log either
   * way, at least one record per notification. */
  if (nrec < (int64_t)want)
    die("fewer delivery records than notifications");

  int conc = NPARTS * ndest * WINDOW;
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook/0", port);
  receiver_reset();
  t0 = now_s();
  raw_posts(url, size, conc, want);
  double rwall = now_s() - t0;
  double raw = receiver_rate(want);
  fprintf(stderr,
          "notify bench: raw: %lu POSTs of %zu B, %d in flight, %.1f s, "
          "%.0f/s at the receiver, %lu connections\n",
          want, size, conc, rwall, raw, atomic_load(&connections));

  snprintf(name, sizeof(name), "raw_http_post_c%d%s", conc, sfx);
  figure(name, raw, "requests/s", 0);
  snprintf(name, sizeof(name), "notify_deliveries_%ddest%s", ndest, sfx);
  figure(name, ours, "deliveries/s", raw);

  if (records)
    trust_free(&t);
  ctkn_wipe(key, sizeof(key));
  ctkn_store_close(st);
  ctkn_log_config_free(&cfg);
}

int main(int argc, char **argv)
{
  if (argc != 5) {
    fprintf(stderr, "usage: notify BROKERS TOPIC DIR M\n");
    return 2;
  }
  const char *brokers = argv[1], *topic = argv[2], *dir = argv[3];
  size_t m = strtoul(argv[4], NULL, 10);
  const char *ds = getenv("CTKN_BENCH_NOTIFY_DESTS");
  const char *ts = getenv("CTKN_BENCH_NOTIFY_RECEIVER_THREADS");
  const char *ms = getenv("CTKN_BENCH_NOTIFY_MODES");
  unsigned threads = ts ? (unsigned)atoi(ts) : 1, port;
  struct rlimit rl;

  if (m < 2 || threads < 1)
    die("bad arguments");
  /* Hundreds of connections, both ends in this process. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    die("curl_global_init");
  struct MHD_Daemon *d = receiver_start(threads, &port);
  size_t size = body_size();
  fprintf(stderr,
          "notify bench: receiver on 127.0.0.1:%u (%u threads), %zu B "
          "bodies\n",
          port, threads, size);
  char *list = strdup(ds ? ds : "1 10"), *save = NULL;
  for (char *t = strtok_r(list, " ,", &save); t;
       t = strtok_r(NULL, " ,", &save)) {
    char *modes = strdup(ms ? ms : "unsigned signed"), *msave = NULL;
    for (char *mode = strtok_r(modes, " ,", &msave); mode;
         mode = strtok_r(NULL, " ,", &msave)) {
      if (strcmp(mode, "unsigned") != 0 && strcmp(mode, "signed") != 0)
        die("CTKN_BENCH_NOTIFY_MODES: unsigned, signed");
      round_of(brokers, topic, dir, m, atoi(t), strcmp(mode, "signed") == 0,
               port, size);
    }
    free(modes);
  }
  free(list);
  MHD_stop_daemon(d);
  MHD_destroy_response(empty);
  curl_global_cleanup();
  return 0;
}
