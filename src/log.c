/*
 * log.c - the Kafka log over librdkafka: -X overrides, producer, consumer
 * and admin. This is the only file that includes librdkafka.
 *
 * Every wait is bounded by the configuration's timeout. librdkafka reports
 * most failures asynchronously (delivery reports, logs, error events), so
 * each handle keeps the last broker error it saw and adds it to timeout
 * messages: "no delivery report" alone does not tell an operator that the
 * connection was refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "ctkn/log.h"
#include "internal.h"

#define CLIENT_ID     "ctkn"
/* librdkafka 2.0.2 refuses rd_kafka_assign() without a group.id ("Local:
 * Unknown group"). The consumer never subscribes or commits, so the group
 * is only a name; -X group.id changes it (for clusters with group ACLs). */
#define ASSIGN_GROUP  "ctkn"
#define POLL_SLICE_MS 100 /* longest a waiter sleeps before rechecking */
#define META_RETRY_MS 100 /* pause between metadata retries after create */

/* ---- time ---------------------------------------------------------------- */

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static int clamp(int v, int lo, int hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

/* ---- configuration --------------------------------------------------------
 */

void ctkn_log_config_init(struct ctkn_log_config *cfg)
{
  memset(cfg, 0, sizeof(*cfg));
  ctkn__strlcpy(cfg->brokers, "127.0.0.1:9092", sizeof(cfg->brokers));
  ctkn__strlcpy(cfg->topic, "client_tokens", sizeof(cfg->topic));
  cfg->timeout_ms = 10000;
}

void ctkn_log_config_free(struct ctkn_log_config *cfg)
{
  if (cfg == NULL)
    return;
  for (size_t i = 0; i < cfg->n_overrides; i++) {
    free(cfg->overrides[i][0]);
    free(cfg->overrides[i][1]);
    cfg->overrides[i][0] = cfg->overrides[i][1] = NULL;
  }
  cfg->n_overrides = 0;
}

/*
 * The settings ctkn owns. librdkafka also accepts topic-level properties
 * with a "topic." prefix, so that spelling is refused too.
 */
static int check_owned(const char *key, struct ctkn_err *err)
{
  static const char *const owned[][2] = {
      {"enable.idempotence", "enable.idempotence=true"},
      {"acks", "acks=all"},
      {"request.required.acks", "acks=all"},
      {"partitioner", "partitioner=murmur2_random"},
  };
  const char *name = key;

  if (strncmp(name, "topic.", 6) == 0)
    name += 6;
  for (size_t i = 0; i < CTKN__ARRAY_LEN(owned); i++)
    if (strcmp(name, owned[i][0]) == 0)
      return ctkn__err(err, CTKN_EUSAGE,
                       "-X %s: ctkn requires %s; it cannot be overridden", key,
                       owned[i][1]);
  return CTKN_OK;
}

/* Apply one override to conf; a librdkafka refusal is a usage error. The
 * value is left out of the message: it may be a password. */
static int apply_override(rd_kafka_conf_t *conf, const char *key,
                          const char *value, struct ctkn_err *err)
{
  char errstr[256];
  int rc;

  if ((rc = check_owned(key, err)) != CTKN_OK)
    return rc;
  if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) !=
      RD_KAFKA_CONF_OK)
    return ctkn__err(err, CTKN_EUSAGE, "-X %s: %s", key, errstr);
  return CTKN_OK;
}

int ctkn_log_config_set(struct ctkn_log_config *cfg, const char *kv,
                        struct ctkn_err *err)
{
  const char *eq = strchr(kv, '=');
  char *key, *value;
  size_t i;
  int rc;

  if (eq == NULL || eq == kv)
    return ctkn__err(err, CTKN_EUSAGE,
                     "-X %.200s: expected key=value with a non-empty key", kv);
  key = strndup(kv, (size_t)(eq - kv));
  value = strdup(eq + 1);
  if (key == NULL || value == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory storing -X");
    goto fail;
  }

  /* Validate now, on a scratch configuration, so a typo is reported when
   * the flag is parsed rather than when the first handle opens. */
  rd_kafka_conf_t *scratch = rd_kafka_conf_new();
  rc = apply_override(scratch, key, value, err);
  rd_kafka_conf_destroy(scratch);
  if (rc != CTKN_OK)
    goto fail;

  /* A repeated key replaces the earlier value (the last one wins anyway). */
  for (i = 0; i < cfg->n_overrides; i++)
    if (strcmp(cfg->overrides[i][0], key) == 0)
      break;
  if (i == cfg->n_overrides) {
    if (i == CTKN_LOG_MAX_OVERRIDES) {
      rc = ctkn__err(err, CTKN_EUSAGE, "too many -X settings (at most %d)",
                     CTKN_LOG_MAX_OVERRIDES);
      goto fail;
    }
    cfg->overrides[i][0] = key;
    cfg->n_overrides++;
  } else {
    free(key);
    free(cfg->overrides[i][1]);
  }
  cfg->overrides[i][1] = value;
  return CTKN_OK;
fail:
  free(key);
  free(value);
  return rc;
}

/* ---- what every handle shares -------------------------------------------
 */

/*
 * The first member of every handle, so that librdkafka's opaque (the
 * handle) is also a struct kctx *. The log and error callbacks run on
 * librdkafka's threads; mu guards last_err.
 */
struct kctx {
  pthread_mutex_t mu;
  char last_err[160]; /* last broker-level error, "" when none */
  bool verbose;       /* -X debug=...: forward librdkafka's log to stderr */
  char brokers[256];  /* the effective bootstrap.servers, for messages */
};

static void kctx_init(struct kctx *k)
{
  pthread_mutex_init(&k->mu, NULL);
  k->last_err[0] = '\0';
  k->verbose = false;
  k->brokers[0] = '\0';
}

static void kctx_note(struct kctx *k, const char *text)
{
  /* Connection errors end in " (after 0ms in state CONNECT, 1 identical
   * error(s) suppressed)": noise in a one-line message. */
  const char *cut;
  size_t n;

  /* Log lines start with the thread: "[thrd:127.0.0.1:9092/bootstrap]: ". */
  if (strncmp(text, "[thrd:", 6) == 0 && (cut = strstr(text, "]: ")) != NULL)
    text = cut + 3;
  cut = strstr(text, " (after ");
  n = cut != NULL ? (size_t)(cut - text) : strlen(text);

  if (n >= sizeof(k->last_err))
    n = sizeof(k->last_err) - 1;
  pthread_mutex_lock(&k->mu);
  memcpy(k->last_err, text, n);
  k->last_err[n] = '\0';
  pthread_mutex_unlock(&k->mu);
}

/* "(brokers B; last error: E)" or "(brokers B)" into buf. */
static const char *kctx_context(struct kctx *k, char *buf, size_t size)
{
  pthread_mutex_lock(&k->mu);
  if (k->last_err[0] != '\0')
    snprintf(buf, size, "(brokers %s; last error: %s)", k->brokers,
             k->last_err);
  else
    snprintf(buf, size, "(brokers %s)", k->brokers);
  pthread_mutex_unlock(&k->mu);
  return buf;
}

/* librdkafka logs to stderr by default. ctkn's stderr carries its own
 * error envelope, so the log is kept quiet unless -X debug asked for it;
 * errors are remembered for the next timeout message. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
  struct kctx *k = rd_kafka_opaque(rk);

  if (k == NULL)
    return;
  if (k->verbose)
    fprintf(stderr, "%%%d|%s|%s| %s\n", level, fac, rd_kafka_name(rk), buf);
  if (level <= 3)
    kctx_note(k, buf);
}

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
  (void)rk;
  /* "1/1 brokers are down" would hide the reason they are down. */
  if (code != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
    kctx_note(opaque, reason);
}

enum kind { PRODUCER, CONSUMER, GROUP, ADMIN };

static int set_own(rd_kafka_conf_t *conf, const char *key, const char *value,
                   struct ctkn_err *err)
{
  char errstr[256];

  if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) !=
      RD_KAFKA_CONF_OK)
    return ctkn__err(err, CTKN_EINTERNAL, "kafka: setting %s: %s", key, errstr);
  return CTKN_OK;
}

static int set_int(rd_kafka_conf_t *conf, const char *key, int value,
                   struct ctkn_err *err)
{
  char buf[16];

  snprintf(buf, sizeof(buf), "%d", value);
  return set_own(conf, key, buf, err);
}

/* The producer's message.timeout.ms. librdkafka scans for timed-out
 * messages about once a second, so the timeout leaves that much of the
 * caller's budget for the delivery report to arrive. */
static int message_timeout(int timeout_ms)
{
  return timeout_ms >= 2000 ? timeout_ms - 1000
                            : clamp(timeout_ms / 2, 1, 1000);
}

/*
 * Build the configuration of a handle of this kind: ctkn's settings, then
 * the -X overrides (which win, except for the settings ctkn owns). opaque
 * must start with k. On success *out is owned by the caller.
 */
static int build_conf(const struct ctkn_log_config *cfg, enum kind kind,
                      struct kctx *k, void *opaque, rd_kafka_conf_t **out,
                      struct ctkn_err *err)
{
  int t = cfg->timeout_ms;
  int rc = CTKN_OK;

  *out = NULL;
  if (t <= 0)
    return ctkn__err(err, CTKN_EUSAGE, "the timeout must be positive (%d ms)",
                     t);
  if (cfg->brokers[0] == '\0')
    return ctkn__err(err, CTKN_EUSAGE, "no Kafka brokers given (--brokers)");
  if (cfg->topic[0] == '\0')
    return ctkn__err(err, CTKN_EUSAGE, "no topic given (--topic)");

  rd_kafka_conf_t *conf = rd_kafka_conf_new();
#define OWN(key, value)                                                        \
  if (rc == CTKN_OK)                                                           \
  rc = set_own(conf, key, value, err)
#define OWN_INT(key, value)                                                    \
  if (rc == CTKN_OK)                                                           \
  rc = set_int(conf, key, value, err)
  OWN("bootstrap.servers", cfg->brokers);
  OWN("client.id", CLIENT_ID);
  OWN("allow.auto.create.topics", "false");
  OWN_INT("socket.timeout.ms", clamp(t, 10, 60000));
  OWN_INT("socket.connection.setup.timeout.ms", clamp(t, 1000, 30000));
  OWN_INT("api.version.request.timeout.ms", clamp(t, 1, 10000));
  switch (kind) {
  case PRODUCER:
    OWN("enable.idempotence", "true");
    OWN("acks", "all");
    OWN("partitioner", "murmur2_random");
    OWN("linger.ms", "0"); /* one record per command: latency first */
    OWN_INT("message.timeout.ms", message_timeout(t));
    /* A missing topic fails as "unknown topic" before the message times
     * out, so the error can say what to do. */
    OWN_INT("topic.metadata.propagation.max.ms",
            clamp(message_timeout(t) / 2, 1, 30000));
    break;
  case CONSUMER:
  case GROUP:
    /* A group consumer gets its group.id and auto.offset.reset from
     * ctkn_consumer_open_group(). */
    if (kind == CONSUMER) {
      OWN("group.id", ASSIGN_GROUP);
      OWN("auto.offset.reset", "error");
    }
    OWN("enable.auto.commit", "false");
    OWN("enable.auto.offset.store", "false");
    OWN("enable.partition.eof", "false");
    /* Bounded prefetch: memory stays flat however long the log is. The
     * bytes bound is the one that bites. In librdkafka 2.0.2 a queue held
     * at queued.min.messages stalls fetching for up to a second each time
     * it drains (measured: 10000 gave ~200k msgs/s with 1 s gaps), so the
     * count bound stays at librdkafka's 100000. */
    OWN("queued.max.messages.kbytes", "16384");
    OWN("queued.min.messages", "100000");
    OWN("fetch.max.bytes", "8388608");
    /* A partition that joins the fetch session just after a long-poll was
     * sent waits for that poll to end; keep the wait short so a command's
     * read-your-writes and a follower's lag stay low. */
    OWN("fetch.wait.max.ms", "100");
    break;
  case ADMIN:
    break;
  }
#undef OWN
#undef OWN_INT
  for (size_t i = 0; rc == CTKN_OK && i < cfg->n_overrides; i++) {
    rc = apply_override(conf, cfg->overrides[i][0], cfg->overrides[i][1], err);
    if (strcmp(cfg->overrides[i][0], "debug") == 0)
      k->verbose = true;
  }
  if (rc != CTKN_OK) {
    rd_kafka_conf_destroy(conf);
    return rc;
  }
  size_t size = sizeof(k->brokers);
  if (rd_kafka_conf_get(conf, "bootstrap.servers", k->brokers, &size) !=
      RD_KAFKA_CONF_OK)
    ctkn__strlcpy(k->brokers, cfg->brokers, sizeof(k->brokers));
  rd_kafka_conf_set_opaque(conf, opaque);
  rd_kafka_conf_set_log_cb(conf, on_log);
  rd_kafka_conf_set_error_cb(conf, on_error);
  *out = conf;
  return CTKN_OK;
}

/* rd_kafka_new() takes conf on success only. */
static int new_handle(rd_kafka_type_t type, rd_kafka_conf_t *conf,
                      rd_kafka_t **out, struct ctkn_err *err)
{
  char errstr[256];

  *out = rd_kafka_new(type, conf, errstr, sizeof(errstr));
  if (*out == NULL) {
    rd_kafka_conf_destroy(conf);
    return ctkn__err(err, CTKN_EUSAGE, "kafka configuration rejected: %s",
                     errstr);
  }
  return CTKN_OK;
}

/*
 * The partition count of topic. CTKN_ENOTFOUND when the broker does not
 * know it; *topic_err (may be NULL) receives the topic-level error so
 * callers can retry one that is only being created.
 */
static int topic_partitions(rd_kafka_t *rk, struct kctx *k, const char *topic,
                            int timeout_ms, int32_t *n,
                            rd_kafka_resp_err_t *topic_err,
                            struct ctkn_err *err)
{
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *rkt;
  rd_kafka_resp_err_t e;
  char ctx[448];
  int rc = CTKN_OK;

  if (topic_err != NULL)
    *topic_err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if ((rkt = rd_kafka_topic_new(rk, topic, NULL)) == NULL)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: topic %s: %s", topic,
                     rd_kafka_err2str(rd_kafka_last_error()));
  e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
  rd_kafka_topic_destroy(rkt);
  if (e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR__TRANSPORT)
    return ctkn__err(err, CTKN_ETIMEOUT,
                     "kafka: no metadata for topic %s within %d ms %s", topic,
                     timeout_ms, kctx_context(k, ctx, sizeof(ctx)));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: metadata for topic %s: %s %s",
                     topic, rd_kafka_err2str(e),
                     kctx_context(k, ctx, sizeof(ctx)));
  if (md->topic_cnt < 1) {
    rc = ctkn__err(err, CTKN_EKAFKA, "kafka: no metadata for topic %s", topic);
  } else if ((e = md->topics[0].err) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (topic_err != NULL)
      *topic_err = e;
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
      rc = ctkn__err(err, CTKN_ENOTFOUND,
                     "topic %s does not exist (run ctkn init)", topic);
    else
      rc = ctkn__err(err, CTKN_EKAFKA, "kafka: topic %s: %s", topic,
                     rd_kafka_err2str(e));
  } else if (md->topics[0].partition_cnt < 1) {
    if (topic_err != NULL)
      *topic_err = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
    rc =
        ctkn__err(err, CTKN_EKAFKA, "kafka: topic %s has no partitions", topic);
  } else {
    *n = md->topics[0].partition_cnt;
    /* A partition without a leader (just created, or a broker is down)
     * answers nothing yet; tell callers that can wait. */
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
      const rd_kafka_metadata_partition_t *mp = &md->topics[0].partitions[i];
      if (mp->leader < 0 || mp->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (topic_err != NULL)
          *topic_err = mp->err != RD_KAFKA_RESP_ERR_NO_ERROR
                           ? mp->err
                           : RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
        break;
      }
    }
  }
  rd_kafka_metadata_destroy(md);
  return rc;
}

/*
 * Learn the topic's metadata in rk now and keep it cached (*rkt holds a
 * reference; destroy it before rk). Otherwise librdkafka finds an unknown
 * topic only on its once-a-second scan: a produce waits that long, and so
 * does an assignment. This also fails early, and clearly, for a missing
 * topic or an unreachable broker.
 */
static int warm_topic(rd_kafka_t *rk, struct kctx *k, const char *topic,
                      int timeout_ms, rd_kafka_topic_t **rkt,
                      struct ctkn_err *err)
{
  int32_t n;

  if ((*rkt = rd_kafka_topic_new(rk, topic, NULL)) == NULL)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: topic %s: %s", topic,
                     rd_kafka_err2str(rd_kafka_last_error()));
  return topic_partitions(rk, k, topic, timeout_ms, &n, NULL, err);
}

/* ---- admin -------------------------------------------------------------- */

/* Broker refusals caused by the request's own values. */
static int create_error_code(rd_kafka_resp_err_t e)
{
  switch (e) {
  case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
  case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
  case RD_KAFKA_RESP_ERR_INVALID_REPLICA_ASSIGNMENT:
  case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
  case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
  case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    return CTKN_EINVAL;
  default:
    return CTKN_EKAFKA;
  }
}

/* Send CreateTopics and wait for its result; *created on success. */
static int create_once(rd_kafka_t *rk, struct kctx *k,
                       const struct ctkn_log_config *cfg, int partitions,
                       int replication_factor, bool *created,
                       struct ctkn_err *err)
{
  int t = cfg->timeout_ms;
  rd_kafka_NewTopic_t *nt = NULL;
  rd_kafka_AdminOptions_t *opts = NULL;
  rd_kafka_queue_t *q = NULL;
  rd_kafka_event_t *ev = NULL;
  char errstr[256], ctx[448];
  rd_kafka_resp_err_t e;
  int rc = CTKN_OK;

  nt = rd_kafka_NewTopic_new(cfg->topic, partitions, replication_factor, errstr,
                             sizeof(errstr));
  if (nt == NULL)
    return ctkn__err(err, CTKN_EUSAGE, "topic %s: %s", cfg->topic, errstr);
  /* The log is the source of truth: keep every record, never compact. */
  if (rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1") ||
      rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "delete")) {
    rc = ctkn__err(err, CTKN_EINTERNAL, "kafka: topic config rejected");
    goto out;
  }
  opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  /* The request timeout covers finding the controller as well; the broker
   * gets half of it to finish the creation. */
  if (rd_kafka_AdminOptions_set_request_timeout(opts, t, errstr,
                                                sizeof(errstr)) ||
      rd_kafka_AdminOptions_set_operation_timeout(opts, clamp(t / 2, 1, t),
                                                  errstr, sizeof(errstr))) {
    rc = ctkn__err(err, CTKN_EINTERNAL, "kafka: admin options: %s", errstr);
    goto out;
  }
  q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
  /* The request timeout ends the request; the margin is for its result
   * to reach the queue. */
  if ((ev = rd_kafka_queue_poll(q, t + 1000)) == NULL) {
    rc = ctkn__err(err, CTKN_ETIMEOUT,
                   "kafka: cannot create topic %s: no reply within %d ms %s",
                   cfg->topic, t, kctx_context(k, ctx, sizeof(ctx)));
    goto out;
  }
  if ((e = rd_kafka_event_error(ev)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rc = ctkn__err(
        err, e == RD_KAFKA_RESP_ERR__TIMED_OUT ? CTKN_ETIMEOUT : CTKN_EKAFKA,
        "kafka: cannot create topic %s: %s %s", cfg->topic,
        rd_kafka_event_error_string(ev), kctx_context(k, ctx, sizeof(ctx)));
    goto out;
  }
  const rd_kafka_CreateTopics_result_t *res =
      rd_kafka_event_CreateTopics_result(ev);
  size_t cnt = 0;
  const rd_kafka_topic_result_t **topics =
      res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
  if (cnt < 1) {
    rc = ctkn__err(err, CTKN_EKAFKA, "kafka: empty CreateTopics result");
    goto out;
  }
  e = rd_kafka_topic_result_error(topics[0]);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    *created = true;
  } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    *created = false;
  } else {
    const char *detail = rd_kafka_topic_result_error_string(topics[0]);
    rc = ctkn__err(err, create_error_code(e),
                   "kafka: cannot create topic %s: %s%s%s", cfg->topic,
                   rd_kafka_err2str(e), detail ? ": " : "",
                   detail ? detail : "");
  }
out:
  if (ev != NULL)
    rd_kafka_event_destroy(ev);
  if (q != NULL)
    rd_kafka_queue_destroy(q);
  if (opts != NULL)
    rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_NewTopic_destroy(nt);
  return rc;
}

int ctkn_log_create_topic(const struct ctkn_log_config *cfg, int partitions,
                          int replication_factor, bool *created,
                          int32_t *out_partitions, struct ctkn_err *err)
{
  struct kctx k;
  rd_kafka_conf_t *conf;
  rd_kafka_t *rk;
  int rc;

  *created = false;
  if (partitions < 1)
    return ctkn__err(err, CTKN_EUSAGE, "partitions must be at least 1 (%d)",
                     partitions);
  if (replication_factor < 1 && replication_factor != -1)
    return ctkn__err(err, CTKN_EUSAGE,
                     "replication factor must be at least 1, or -1 for the "
                     "broker's default (%d)",
                     replication_factor);
  kctx_init(&k);
  if ((rc = build_conf(cfg, ADMIN, &k, &k, &conf, err)) != CTKN_OK)
    goto done;
  if ((rc = new_handle(RD_KAFKA_PRODUCER, conf, &rk, err)) != CTKN_OK)
    goto done;
  rc = create_once(rk, &k, cfg, partitions, replication_factor, created, err);

  /* A new topic takes a moment to show in metadata and to get a leader for
   * every partition; wait for both (bounded), so that the next command's
   * offset queries do not hit "not leader". */
  int64_t deadline = ctkn__now_ms() + cfg->timeout_ms;
  while (rc == CTKN_OK) {
    rd_kafka_resp_err_t te;
    int64_t left = deadline - ctkn__now_ms();
    rc = topic_partitions(rk, &k, cfg->topic, (int)clamp((int)left, 1, 60000),
                          out_partitions, &te, err);
    if ((rc == CTKN_OK && te == RD_KAFKA_RESP_ERR_NO_ERROR) ||
        (rc != CTKN_OK && te == RD_KAFKA_RESP_ERR_NO_ERROR) ||
        ctkn__now_ms() + META_RETRY_MS >= deadline)
      break;
    sleep_ms(META_RETRY_MS);
    rc = CTKN_OK;
  }
  rd_kafka_destroy(rk);
done:
  pthread_mutex_destroy(&k.mu);
  return rc;
}

/* ---- producer ------------------------------------------------------------
 */

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
  struct report *prev, *next; /* on ctkn_producer.abandoned */
};

struct ctkn_producer {
  struct kctx k; /* first: librdkafka's opaque is the producer */
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
  ctkn_producer *p = opaque;
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

int ctkn_producer_open(ctkn_producer **out, const struct ctkn_log_config *cfg,
                       struct ctkn_err *err)
{
  pthread_condattr_t ca;
  rd_kafka_conf_t *conf;
  ctkn_producer *p;
  int rc;

  *out = NULL;
  if ((p = calloc(1, sizeof(*p))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory opening the producer");
  kctx_init(&p->k);
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  ctkn__strlcpy(p->topic, cfg->topic, sizeof(p->topic));
  p->timeout_ms = cfg->timeout_ms;

  if ((rc = build_conf(cfg, PRODUCER, &p->k, p, &conf, err)) != CTKN_OK)
    goto fail;
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  if ((rc = new_handle(RD_KAFKA_PRODUCER, conf, &p->rk, err)) != CTKN_OK)
    goto fail;
  if ((rc = warm_topic(p->rk, &p->k, p->topic, p->timeout_ms, &p->rkt, err)) !=
      CTKN_OK)
    goto fail;
  *out = p;
  return CTKN_OK;
fail:
  ctkn_producer_close(p);
  return rc;
}

void ctkn_producer_close(ctkn_producer *p)
{
  if (p == NULL)
    return;
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

int32_t ctkn_log_partition_for(const void *key, size_t klen, int32_t n)
{
  if (n <= 0)
    return -1;
  /* librdkafka's Java-compatible murmur2: toPositive(murmur2(key)) % n.
   * It does not use the topic handle or the opaques. */
  return rd_kafka_msg_partitioner_murmur2(NULL, key, klen, n, NULL, NULL);
}

static int delivery_error(ctkn_producer *p, rd_kafka_resp_err_t e,
                          int32_t partition, struct ctkn_err *err)
{
  char ctx[448];

  switch (e) {
  case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
    return ctkn__err(err, CTKN_ETIMEOUT,
                     "kafka: no delivery report within %d ms: %s %s",
                     p->timeout_ms, rd_kafka_err2str(e),
                     kctx_context(&p->k, ctx, sizeof(ctx)));
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    return ctkn__err(err, CTKN_ENOTFOUND,
                     "topic %s does not exist (run ctkn init)", p->topic);
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    return ctkn__err(err, CTKN_EKAFKA,
                     "kafka: topic %s has no partition %" PRId32, p->topic,
                     partition);
  case RD_KAFKA_RESP_ERR__FATAL: {
    char why[256];
    rd_kafka_fatal_error(p->rk, why, sizeof(why));
    return ctkn__err(err, CTKN_EKAFKA,
                     "kafka: the producer failed and must be reopened: %s",
                     why);
  }
  default:
    return ctkn__err(err, CTKN_EKAFKA, "kafka: delivery failed: %s %s",
                     rd_kafka_err2str(e),
                     kctx_context(&p->k, ctx, sizeof(ctx)));
  }
}

/* Wait, holding p->mu, until r is done or the deadline passes. One waiter
 * at a time serves librdkafka's queue; its callbacks fill any waiter's
 * report. */
static void wait_report(ctkn_producer *p, struct report *r, int64_t deadline)
{
  for (;;) {
    int64_t now = ctkn__now_ms();
    if (r->done || now >= deadline)
      return;
    int slice =
        (int)(deadline - now < POLL_SLICE_MS ? deadline - now : POLL_SLICE_MS);
    if (!p->polling) {
      p->polling = true;
      pthread_mutex_unlock(&p->mu);
      rd_kafka_poll(p->rk, slice);
      pthread_mutex_lock(&p->mu);
      p->polling = false;
      pthread_cond_broadcast(&p->cv); /* let another waiter take over */
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += (long)slice * 1000000L;
      ts.tv_sec += ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
  }
}

/*
 * Hand one record to librdkafka with r as its report. On failure nothing
 * was enqueued and r is untouched.
 */
static int enqueue(ctkn_producer *p, const struct ctkn_log_record *rec,
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
                     p->timeout_ms, kctx_context(&p->k, ctx, sizeof(ctx)));
  return delivery_error(p, e, rec->partition, err);
}

int ctkn_producer_send_batch(ctkn_producer *p, struct ctkn_log_record *recs,
                             size_t n, struct ctkn_err *err)
{
  int64_t deadline = ctkn__now_ms() + p->timeout_ms;
  struct report **rs = calloc(n ? n : 1, sizeof(*rs));
  struct ctkn_err e1;
  int first = CTKN_OK;
  char ctx[448];

  if (rs == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory producing records");
    /* Keep the first failure's detail in *err; later ones only in rc. */
#define FAIL(i, rc_)                                                           \
  do {                                                                         \
    recs[i].rc = (rc_);                                                        \
    if (first == CTKN_OK) {                                                    \
      first = recs[i].rc;                                                      \
      if (err != NULL)                                                         \
        *err = e1;                                                             \
    }                                                                          \
  } while (0)
  for (size_t i = 0; i < n; i++) {
    recs[i].rc = CTKN_OK;
    recs[i].out_partition = -1;
    recs[i].out_offset = -1;
    if ((rs[i] = calloc(1, sizeof(**rs))) == NULL) {
      FAIL(i, ctkn__err(&e1, CTKN_ENOMEM, "out of memory producing a record"));
      continue;
    }
    int rc = enqueue(p, &recs[i], rs[i], deadline, &e1);
    if (rc != CTKN_OK) {
      free(rs[i]);
      rs[i] = NULL;
      FAIL(i, rc);
    }
  }

  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < n; i++) {
    if (rs[i] != NULL)
      wait_report(p, rs[i], deadline);
  }
  for (size_t i = 0; i < n; i++) {
    struct report *r = rs[i];
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
      FAIL(i, ctkn__err(&e1, CTKN_ETIMEOUT,
                        "kafka: no delivery report within %d ms; the record "
                        "may still be written %s",
                        p->timeout_ms, kctx_context(&p->k, ctx, sizeof(ctx))));
      continue;
    }
    if (r->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      recs[i].out_partition = r->partition;
      recs[i].out_offset = r->offset;
    } else {
      FAIL(i, delivery_error(p, r->err, recs[i].partition, &e1));
    }
    free(r);
  }
  pthread_mutex_unlock(&p->mu);
#undef FAIL
  free(rs);
  return first;
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
  int rc = ctkn_producer_send_batch(p, &rec, 1, err);

  if (rc == CTKN_OK) {
    if (out_partition != NULL)
      *out_partition = rec.out_partition;
    if (out_offset != NULL)
      *out_offset = rec.out_offset;
  }
  return rc;
}

/* ---- consumer ------------------------------------------------------------
 */

struct ctkn_consumer {
  struct kctx k; /* first: librdkafka's opaque is the consumer */
  rd_kafka_t *rk;
  /* Metadata and offset queries go through their own handle: on the
   * consumer's connection they would queue behind a fetch long-poll (up to
   * fetch.wait.max.ms each), stalling lag reports and catch-ups. */
  rd_kafka_t *qrk;
  rd_kafka_topic_t *rkt; /* keeps the topic's metadata cached in rk */
  rd_kafka_queue_t *q;   /* the consumer queue; the main queue forwards to it */
  char topic[250];
  int timeout_ms;
  /* The last batch from rd_kafka_consume_batch_queue(). batch[0..next)
   * were handed out (borrowed until the next poll) or skipped;
   * batch[next..len) are still to be handed out. */
  rd_kafka_message_t **batch;
  size_t cap, len, next;
  bool group;  /* joined a consumer group (subscribed) */
  bool lease;  /* a lease: assigned partitions stay paused */
  bool *owned; /* lease: partitions held now, CTKN_STORE.. */
  bool owned_changed;
  enum ctkn_log_start start; /* group: where uncommitted partitions start */
  int64_t start_ts_ms;
};

static void drop_pending(ctkn_consumer *c);

#define LEASE_MAX 4096 /* partitions a lease tracks (the store's bound) */

/*
 * Group rebalance (eager protocol, librdkafka's default range,roundrobin):
 * take the assignment, placing partitions the group has committed nothing
 * for at the member's start; drop records of revoked partitions that were
 * not handed out yet. Runs inside a poll, on the polling thread.
 */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
  ctkn_consumer *c = opaque;

  if (e != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    drop_pending(c);
    rd_kafka_assign(rk, NULL);
    if (c->lease) {
      memset(c->owned, 0, LEASE_MAX * sizeof(*c->owned));
      c->owned_changed = true;
    }
    return;
  }
  if (c->lease) {
    /* Hold the partitions without reading them. */
    rd_kafka_assign(rk, parts);
    rd_kafka_pause_partitions(rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
      if (parts->elems[i].partition >= 0 &&
          parts->elems[i].partition < LEASE_MAX)
        c->owned[parts->elems[i].partition] = true;
    }
    c->owned_changed = true;
    return;
  }
  if (c->start == CTKN_START_TIME &&
      rd_kafka_committed(rk, parts, c->timeout_ms) ==
          RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_topic_partition_list_t *t =
        rd_kafka_topic_partition_list_copy(parts);
    for (int i = 0; i < t->cnt; i++)
      t->elems[i].offset = c->start_ts_ms;
    if (rd_kafka_offsets_for_times(c->qrk, t, c->timeout_ms) ==
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < parts->cnt; i++) {
        /* Nothing committed: the first record at or after the instant;
         * RD_KAFKA_OFFSET_END (-1) when every record is older. */
        if (parts->elems[i].offset < 0 && t->elems[i].err == 0)
          parts->elems[i].offset = t->elems[i].offset;
      }
    }
    rd_kafka_topic_partition_list_destroy(t);
  }
  rd_kafka_assign(rk, parts);
}

static int consumer_new(ctkn_consumer **out, const struct ctkn_log_config *cfg,
                        const char *group, enum ctkn_log_start start,
                        int64_t ts_ms, struct ctkn_err *err)
{
  rd_kafka_conf_t *conf;
  ctkn_consumer *c;
  rd_kafka_resp_err_t e;
  int rc;

  *out = NULL;
  if ((c = calloc(1, sizeof(*c))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory opening the consumer");
  kctx_init(&c->k);
  ctkn__strlcpy(c->topic, cfg->topic, sizeof(c->topic));
  c->timeout_ms = cfg->timeout_ms;
  c->group = group != NULL;
  c->start = start;
  c->start_ts_ms = ts_ms;
  if ((rc = build_conf(cfg, group ? GROUP : CONSUMER, &c->k, c, &conf, err)) !=
      CTKN_OK)
    goto fail;
  if (group != NULL) {
    rc = set_own(conf, "group.id", group, err);
    if (rc == CTKN_OK)
      rc = set_own(conf, "auto.offset.reset",
                   start == CTKN_START_BEGINNING ? "earliest" : "latest", err);
    if (rc != CTKN_OK) {
      rd_kafka_conf_destroy(conf);
      goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
  }
  if ((rc = new_handle(RD_KAFKA_CONSUMER, conf, &c->rk, err)) != CTKN_OK)
    goto fail;
  if ((rc = build_conf(cfg, ADMIN, &c->k, c, &conf, err)) != CTKN_OK ||
      (rc = new_handle(RD_KAFKA_PRODUCER, conf, &c->qrk, err)) != CTKN_OK)
    goto fail;
  /* No fetch is in flight yet, so this query does not queue behind one. */
  if ((rc = warm_topic(c->rk, &c->k, c->topic, c->timeout_ms, &c->rkt, err)) !=
      CTKN_OK)
    goto fail;
  /* Serve error events, logs and rebalances from the consumer queue, which
   * poll reads with the batch call (the fast path). */
  if ((e = rd_kafka_poll_set_consumer(c->rk)) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      (c->q = rd_kafka_queue_get_consumer(c->rk)) == NULL) {
    rc = ctkn__err(err, CTKN_EKAFKA, "kafka: no consumer queue: %s",
                   rd_kafka_err2str(e));
    goto fail;
  }
  if (group != NULL) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (l == NULL) {
      rc = ctkn__err(err, CTKN_ENOMEM, "out of memory subscribing");
      goto fail;
    }
    rd_kafka_topic_partition_list_add(l, c->topic, RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rc = ctkn__err(err, CTKN_EKAFKA, "kafka: subscribing to %s: %s", c->topic,
                     rd_kafka_err2str(e));
      goto fail;
    }
  }
  *out = c;
  return CTKN_OK;
fail:
  ctkn_consumer_close(c);
  return rc;
}

int ctkn_consumer_open(ctkn_consumer **out, const struct ctkn_log_config *cfg,
                       struct ctkn_err *err)
{
  return consumer_new(out, cfg, NULL, CTKN_START_END, 0, err);
}

int ctkn_consumer_open_group(ctkn_consumer **out,
                             const struct ctkn_log_config *cfg,
                             const char *group, enum ctkn_log_start start,
                             int64_t ts_ms, struct ctkn_err *err)
{
  if (group == NULL || group[0] == '\0' || strlen(group) > 249) {
    *out = NULL;
    return ctkn__err_field(err, CTKN_EINVAL, "group",
                           "a consumer group name has 1 to 249 characters");
  }
  return consumer_new(out, cfg, group, start, ts_ms, err);
}

int ctkn_consumer_commit(ctkn_consumer *c, const struct ctkn_log_msg *msgs,
                         size_t n, struct ctkn_err *err)
{
  rd_kafka_topic_partition_list_t *l;
  rd_kafka_resp_err_t e;

  if (n == 0)
    return CTKN_OK;
  if ((l = rd_kafka_topic_partition_list_new(8)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory committing");
  for (size_t i = 0; i < n; i++) {
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_find(l, c->topic, msgs[i].partition);
    if (tp == NULL)
      tp = rd_kafka_topic_partition_list_add(l, c->topic, msgs[i].partition);
    if (msgs[i].offset + 1 > tp->offset)
      tp->offset = msgs[i].offset + 1;
  }
  e = rd_kafka_commit(c->rk, l, 0);
  rd_kafka_topic_partition_list_destroy(l);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: committing offsets of %s: %s",
                     c->topic, rd_kafka_err2str(e));
  return CTKN_OK;
}

/* Destroy the handed-out part of the batch and keep the rest in front. */
static void release_returned(ctkn_consumer *c)
{
  if (c->next == 0)
    return;
  for (size_t i = 0; i < c->next; i++)
    rd_kafka_message_destroy(c->batch[i]);
  memmove(c->batch, c->batch + c->next, (c->len - c->next) * sizeof(*c->batch));
  c->len -= c->next;
  c->next = 0;
}

/* Forget records not handed out yet (after a reassignment they are stale). */
static void drop_pending(ctkn_consumer *c)
{
  for (size_t i = c->next; i < c->len; i++)
    rd_kafka_message_destroy(c->batch[i]);
  c->len = c->next;
}

void ctkn_consumer_close(ctkn_consumer *c)
{
  if (c == NULL)
    return;
  c->next = c->len;
  release_returned(c);
  free(c->batch);
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
  pthread_mutex_destroy(&c->k.mu);
  free(c->owned);
  free(c);
}

int ctkn_consumer_partitions(ctkn_consumer *c, int32_t *n, struct ctkn_err *err)
{
  return topic_partitions(c->qrk, &c->k, c->topic, c->timeout_ms, n, NULL, err);
}

/*
 * A partition's low and high watermarks. Not rd_kafka_query_watermark_offsets:
 * before librdkafka 2.3.0 it retries on a dead leader forever, whatever its
 * timeout (librdkafka #2588, fixed by #4460), so one SIGKILLed broker hangs
 * every catch-up until it comes back. offsets_for_times with the logical
 * timestamps BEGINNING (-2) and END (-1) sends the same ListOffsets request,
 * keeps its timeout, and finds the new leader once the old one is fenced.
 */
/*
 * Partitions first..first+n-1's earliest and next offsets (lo/hi, n
 * entries each), in one ListOffsets request per end. *failed receives the
 * partition that an error is about.
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
  for (int i = 0; i < 2; i++) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    if (l == NULL)
      return RD_KAFKA_RESP_ERR__NOENT;
    for (int32_t p = first; p < first + n; p++)
      rd_kafka_topic_partition_list_add(l, topic, p)->offset = which[i];
    int left = (int)clamp((int)(deadline - ctkn__now_ms()), 1, timeout_ms);
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

static int watermarks(ctkn_consumer *c, int32_t first, int32_t n, int64_t *lo,
                      int64_t *hi, struct ctkn_err *err)
{
  rd_kafka_resp_err_t e;
  int32_t failed;
  char ctx[448];

  if (n <= 0)
    return CTKN_OK;
  /* Leadership moves (a new topic, a broker restart) answer "not leader"
   * for a moment: retry those within the timeout. */
  int64_t deadline = ctkn__now_ms() + c->timeout_ms;
  for (;;) {
    int left = (int)clamp((int)(deadline - ctkn__now_ms()), 1, c->timeout_ms);
    e = query_watermarks(c->qrk, c->topic, first, n, lo, hi, left, &failed);
    if ((e != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
         e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
         e != RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH) ||
        ctkn__now_ms() + META_RETRY_MS >= deadline)
      break;
    sleep_ms(META_RETRY_MS);
  }
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
                     kctx_context(&c->k, ctx, sizeof(ctx)));
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

int ctkn_consumer_watermarks(ctkn_consumer *c, int32_t partition, int64_t *lo,
                             int64_t *hi, struct ctkn_err *err)
{
  return watermarks(c, partition, 1, lo, hi, err);
}

int ctkn_consumer_watermarks_all(ctkn_consumer *c, int32_t n, int64_t *lo,
                                 int64_t *hi, struct ctkn_err *err)
{
  return watermarks(c, 0, n, lo, hi, err);
}

int ctkn_consumer_offsets_after(ctkn_consumer *c, int64_t ts_ms,
                                int64_t *offsets, int32_t n,
                                struct ctkn_err *err)
{
  rd_kafka_topic_partition_list_t *l;
  rd_kafka_resp_err_t e;
  int rc = CTKN_OK;
  char ctx[448];

  if (n <= 0)
    return CTKN_OK;
  if ((l = rd_kafka_topic_partition_list_new(n)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  /* ListOffsets by timestamp answers the earliest offset whose timestamp
   * is >= the one asked; after ts_ms means >= ts_ms + 1. */
  for (int32_t p = 0; p < n; p++)
    rd_kafka_topic_partition_list_add(l, c->topic, p)->offset = ts_ms + 1;
  e = rd_kafka_offsets_for_times(c->qrk, l, c->timeout_ms);
  if (e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR__TRANSPORT)
    rc = ctkn__err(err, CTKN_ETIMEOUT,
                   "kafka: no offsets by time for %s within %d ms %s", c->topic,
                   c->timeout_ms, kctx_context(&c->k, ctx, sizeof(ctx)));
  else if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    rc = ctkn__err(err, CTKN_EKAFKA, "kafka: offsets by time for %s: %s",
                   c->topic, rd_kafka_err2str(e));
  for (int i = 0; rc == CTKN_OK && i < l->cnt; i++) {
    rd_kafka_topic_partition_t *tp = &l->elems[i];
    if (tp->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rc = ctkn__err(err, CTKN_EKAFKA, "kafka: offsets by time for %s/%d: %s",
                     c->topic, (int)tp->partition, rd_kafka_err2str(tp->err));
      break;
    }
    offsets[tp->partition] = tp->offset;
    if (tp->offset < 0) {
      /* Nothing after ts_ms: the whole partition is before it. */
      int64_t lo;
      rc = ctkn_consumer_watermarks(c, tp->partition, &lo,
                                    &offsets[tp->partition], err);
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  return rc;
}

int ctkn_consumer_assign(ctkn_consumer *c, const int64_t *offsets, int32_t n,
                         struct ctkn_err *err)
{
  rd_kafka_topic_partition_list_t *list;
  rd_kafka_resp_err_t e;

  if (n < 0)
    return ctkn__err(err, CTKN_EUSAGE, "negative partition count %" PRId32, n);
  if ((list = rd_kafka_topic_partition_list_new(n > 0 ? n : 1)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory assigning partitions");
  for (int32_t i = 0; i < n; i++)
    if (offsets[i] >= 0)
      rd_kafka_topic_partition_list_add(list, c->topic, i)->offset = offsets[i];
  drop_pending(c);
  e = rd_kafka_assign(c->rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: assigning %s: %s", c->topic,
                     rd_kafka_err2str(e));
  return CTKN_OK;
}

int ctkn_consumer_seek(ctkn_consumer *c, const int64_t *offsets, int32_t n,
                       struct ctkn_err *err)
{
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

/*
 * librdkafka 2.0.2's broker thread decides what to fetch before it serves
 * the ops that woke it, then sleeps up to a second: partitions assigned
 * while nothing was being fetched can wait that long for their first
 * fetch. Any request to the leaders wakes their threads again; ask for the
 * end offsets on the consumer's own handle (no fetch is in flight then, so
 * nothing waits behind one) and ignore the answer.
 */
void ctkn_consumer_nudge(ctkn_consumer *c, int32_t n)
{
  rd_kafka_topic_partition_list_t *l;

  if (n <= 0 || (l = rd_kafka_topic_partition_list_new(n)) == NULL)
    return;
  for (int32_t i = 0; i < n; i++)
    rd_kafka_topic_partition_list_add(l, c->topic, i)->offset =
        RD_KAFKA_OFFSET_END;
  (void)rd_kafka_offsets_for_times(c->rk, l, clamp(c->timeout_ms, 1, 1000));
  rd_kafka_topic_partition_list_destroy(l);
}

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

size_t ctkn_log_msg_headers(const struct ctkn_log_msg *m,
                            struct ctkn_log_header *out, size_t max)
{
  rd_kafka_headers_t *hdrs = NULL;
  size_t n;

  /* rd_kafka_message_headers() takes a non-const message: it parses the
   * headers lazily into the message it belongs to. */
  if (m->handle == NULL ||
      rd_kafka_message_headers((rd_kafka_message_t *)m->handle, &hdrs) !=
          RD_KAFKA_RESP_ERR_NO_ERROR)
    return 0;
  n = rd_kafka_header_cnt(hdrs);
  for (size_t i = 0; i < n && i < max; i++) {
    if (rd_kafka_header_get_all(hdrs, i, &out[i].name, &out[i].value,
                                &out[i].size) != RD_KAFKA_RESP_ERR_NO_ERROR)
      out[i] = (struct ctkn_log_header){"", NULL, 0};
  }
  return n;
}

static void fill(struct ctkn_log_msg *out, const rd_kafka_message_t *m)
{
  struct ctkn_log_header h[8];
  rd_kafka_timestamp_type_t tstype;

  out->partition = m->partition;
  out->offset = m->offset;
  out->timestamp_ms = rd_kafka_message_timestamp(m, &tstype); /* -1: none */
  out->key = m->key;
  out->key_len = m->key_len;
  out->value = m->payload;
  out->value_len = m->len;
  out->event_type[0] = '\0';
  out->schema_version = -1;
  out->handle = m;
  size_t n = ctkn_log_msg_headers(out, h, 8);
  if (n > 8) {
    /* Rare: walk them all, so that the last of each name wins. */
    struct ctkn_log_header *all = malloc(n * sizeof(*all));
    if (all != NULL) {
      ctkn_log_msg_headers(out, all, n);
      for (size_t i = 0; i < n; i++)
        ctkn_log_msg_note_header(out, all[i].name, all[i].value, all[i].size);
      free(all);
      return;
    }
    n = 8;
  }
  for (size_t i = 0; i < n; i++)
    ctkn_log_msg_note_header(out, h[i].name, h[i].value, h[i].size);
}

static int consumer_error(ctkn_consumer *c, const rd_kafka_message_t *m,
                          struct ctkn_err *err)
{
  const char *why = rd_kafka_message_errstr(m);

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

int ctkn_consumer_poll(ctkn_consumer *c, int timeout_ms,
                       struct ctkn_log_msg *msgs, size_t max, size_t *n,
                       struct ctkn_err *err)
{
  size_t k = 0;

  *n = 0;
  release_returned(c);
  if (max == 0)
    return CTKN_OK;
  if (c->len == 0) {
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
      ssize_t more =
          rd_kafka_consume_batch_queue(c->q, 0, c->batch + 1, max - 1);
      if (more > 0)
        got += more;
    }
    if (got < 0)
      return ctkn__err(err, CTKN_EKAFKA, "kafka: consuming %s: %s", c->topic,
                       rd_kafka_err2str(rd_kafka_last_error()));
    c->len = (size_t)got;
  }
  while (c->next < c->len && k < max) {
    const rd_kafka_message_t *m = c->batch[c->next];
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      c->next++;
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      /* Hand out the records before the error first; report it next. */
      if (k > 0)
        break;
      c->next++;
      return consumer_error(c, m, err);
    }
    fill(&msgs[k++], m);
    c->next++;
  }
  *n = k;
  return CTKN_OK;
}

/* ---- leases --------------------------------------------------------------
 */

int ctkn_lease_open(ctkn_consumer **out, const struct ctkn_log_config *cfg,
                    const char *group, struct ctkn_err *err)
{
  bool *owned = calloc(LEASE_MAX, sizeof(*owned));
  int rc;

  *out = NULL;
  if (owned == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory opening a lease");
  /* The rebalance callback may run from the first poll on, so the lease
   * fields are set before the group is joined: consumer_new() subscribes,
   * but callbacks only run inside a poll, which comes after. */
  rc = ctkn_consumer_open_group(out, cfg, group, CTKN_START_END, 0, err);
  if (rc != CTKN_OK) {
    free(owned);
    return rc;
  }
  (*out)->lease = true;
  (*out)->owned = owned;
  return CTKN_OK;
}

int ctkn_lease_poll(ctkn_consumer *c, int timeout_ms, bool *owned, int32_t n,
                    bool *changed, struct ctkn_err *err)
{
  rd_kafka_message_t *m;
  int rc = CTKN_OK;

  if (!c->lease)
    return ctkn__err(err, CTKN_EINTERNAL, "not a lease");
  /* Serves the group protocol and the rebalance callback. A record can
   * only arrive if one was fetched before the pause took hold; it is
   * dropped (a lease reads nothing). */
  m = rd_kafka_consumer_poll(c->rk, timeout_ms < 0 ? 0 : timeout_ms);
  if (m != NULL) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR &&
        m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      rc = consumer_error(c, m, err);
    rd_kafka_message_destroy(m);
  }
  *changed = c->owned_changed;
  c->owned_changed = false;
  for (int32_t p = 0; p < n; p++)
    owned[p] = p < LEASE_MAX && c->owned[p];
  return rc;
}

int ctkn_lease_committed(ctkn_consumer *c, int32_t partition, int64_t *offset,
                         char *meta, size_t metasz, struct ctkn_err *err)
{
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_resp_err_t e;

  *offset = -1;
  if (metasz > 0)
    meta[0] = '\0';
  if (l == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  rd_kafka_topic_partition_list_add(l, c->topic, partition);
  e = rd_kafka_committed(c->rk, l, c->timeout_ms);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
    e = l->elems[0].err;
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const rd_kafka_topic_partition_t *tp = &l->elems[0];
    *offset = tp->offset >= 0 ? tp->offset : -1;
    if (metasz > 0 && tp->metadata != NULL) {
      size_t n =
          tp->metadata_size < metasz - 1 ? tp->metadata_size : metasz - 1;
      memcpy(meta, tp->metadata, n);
      meta[n] = '\0';
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: committed offset of %s/%d: %s",
                     c->topic, (int)partition, rd_kafka_err2str(e));
  return CTKN_OK;
}

int ctkn_lease_commit(ctkn_consumer *c, int32_t partition, int64_t offset,
                      const char *meta, struct ctkn_err *err)
{
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_t *tp;
  rd_kafka_resp_err_t e;

  if (l == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  tp = rd_kafka_topic_partition_list_add(l, c->topic, partition);
  tp->offset = offset;
  if (meta != NULL && meta[0] != '\0') {
    /* The list frees it with the element. */
    size_t n = strlen(meta);
    if ((tp->metadata = malloc(n)) != NULL) {
      memcpy(tp->metadata, meta, n);
      tp->metadata_size = n;
    }
  }
  e = rd_kafka_commit(c->rk, l, 0);
  rd_kafka_topic_partition_list_destroy(l);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: committing %s/%d: %s", c->topic,
                     (int)partition, rd_kafka_err2str(e));
  return CTKN_OK;
}
