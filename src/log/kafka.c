/*
 * kafka.c - the Kafka log through librdkafka: -X overrides, each handle's
 * configuration and error context, topic metadata and creation, and the
 * backend table (backend.h) that log.c forwards to. The producer and the
 * consumer are in kafka_producer.c and kafka_consumer.c, groups and
 * leases in kafka_group.c; src/log/ is the only place that includes
 * librdkafka.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctkn/diag.h"
#include "log/kafka_int.h"

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

/* Cyrus SASL, which librdkafka starts with its first handle, loads every
 * plugin under SASL_PATH then (1-1.5 ms of a one-shot command). librdkafka
 * asks Cyrus only for GSSAPI over a SASL security protocol; PLAIN, SCRAM
 * and OAUTHBEARER are its own. */
void ctkn_log_process_init(const struct ctkn_log_config *cfg)
{
  for (size_t i = 0; i < cfg->n_overrides; i++)
    if (strcmp(cfg->overrides[i][0], "security.protocol") == 0 &&
        strncasecmp(cfg->overrides[i][1], "sasl", 4) == 0)
      return;
  setenv("SASL_PATH", "/dev/null", 0); /* not a directory: no plugins */
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

void ctkn__kctx_init(struct ctkn__kctx *k, void *owner)
{
  pthread_mutex_init(&k->mu, NULL);
  k->last_err[0] = '\0';
  k->verbose = false;
  k->brokers[0] = '\0';
  k->owner = owner;
}

static void kctx_note(struct ctkn__kctx *k, const char *text)
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

const char *ctkn__kctx_context(struct ctkn__kctx *k, char *buf, size_t size)
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
  struct ctkn__kctx *k = rd_kafka_opaque(rk);

  if (k == NULL)
    return;
  if (k->verbose)
    ctkn__diag(CTKN_DIAG_INFO, "kafka", "%d|%s|%s| %s", level, fac,
               rd_kafka_name(rk), buf);
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

int ctkn__kafka_set(rd_kafka_conf_t *conf, const char *key, const char *value,
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
  return ctkn__kafka_set(conf, key, buf, err);
}

/* The producer's message.timeout.ms. librdkafka scans for timed-out
 * messages about once a second, so the timeout leaves that much of the
 * caller's budget for the delivery report to arrive. */
static int message_timeout(int timeout_ms)
{
  return timeout_ms >= 2000 ? timeout_ms - 1000
                            : ctkn__kafka_clamp(timeout_ms / 2, 1, 1000);
}

/* The settings below go in order and stop at the first that fails. */
#define OWN(key, value)                                                        \
  if (rc == CTKN_OK)                                                           \
  rc = ctkn__kafka_set(conf, key, value, err)
#define OWN_INT(key, value)                                                    \
  if (rc == CTKN_OK)                                                           \
  rc = set_int(conf, key, value, err)

/* What every handle has: the brokers, ctkn's name, no topics created
 * behind the caller's back, and network timeouts within the caller's t. */
static int set_common(rd_kafka_conf_t *conf, const struct ctkn_log_config *cfg,
                      int t, struct ctkn_err *err)
{
  int rc = CTKN_OK;

  OWN("bootstrap.servers", cfg->brokers);
  OWN("client.id", CTKN__KAFKA_CLIENT_ID);
  OWN("allow.auto.create.topics", "false");
  OWN_INT("socket.timeout.ms", ctkn__kafka_clamp(t, 10, 60000));
  OWN_INT("socket.connection.setup.timeout.ms",
          ctkn__kafka_clamp(t, 1000, 30000));
  OWN_INT("api.version.request.timeout.ms", ctkn__kafka_clamp(t, 1, 10000));
  return rc;
}

static int set_producer(rd_kafka_conf_t *conf, int t, struct ctkn_err *err)
{
  int rc = CTKN_OK;

  OWN("enable.idempotence", "true");
  OWN("acks", "all");
  OWN("partitioner", "murmur2_random");
  /* A record waits 0.2 ms for the rest of its batch: a command batch's
   * records are handed over one by one, and with 0 the first went alone
   * in its own produce request (and a follower commit per request).
   * Measured (bench/http writes, 5 paired rounds): POST c64 +5-25%, raw
   * produce with 64 in flight unchanged; 1 ms halved the raw figure.
   * librdkafka reads it with strtod(): ctkn never calls setlocale(), so
   * the decimal point stays a point. */
  OWN("linger.ms", "0.2");
  OWN_INT("message.timeout.ms", message_timeout(t));
  /* A missing topic fails as "unknown topic" before the message times
   * out, so the error can say what to do. */
  OWN_INT("topic.metadata.propagation.max.ms",
          ctkn__kafka_clamp(message_timeout(t) / 2, 1, 30000));
  return rc;
}

static int set_consumer(rd_kafka_conf_t *conf,
                        const struct ctkn_log_config *cfg,
                        enum ctkn__kafka_kind kind, struct ctkn_err *err)
{
  int rc = CTKN_OK;

  /* A group consumer gets its group.id and auto.offset.reset from
   * ctkn_consumer_open_group(). */
  if (kind == CTKN__KAFKA_CONSUMER) {
    OWN("group.id", CTKN__KAFKA_ASSIGN_GROUP);
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
   * read-your-writes and a follower's lag stay low. A one-shot command
   * asks for less (cfg->fetch_wait_ms): its partitions are assigned while
   * the first fetch is out, and 100 ms was its p90 (README, "one ctkn
   * create process"). */
  OWN_INT("fetch.wait.max.ms",
          cfg->fetch_wait_ms > 0 ? cfg->fetch_wait_ms : 100);
#if RD_KAFKA_VERSION >= 0x020200ff
  /* A queue that reached its bound backs its partitions off for this long
   * before fetching again: 1 s by default, settable since librdkafka
   * 2.2.0. 2.0.2 always waits the second (librdkafka #2879), which the
   * pipelined catch-up works around by assigning again
   * (src/projector/pipeline.c); built against a newer librdkafka, the
   * back-off is short enough that the workaround rarely has to. */
  OWN("fetch.queue.backoff.ms", "20");
#endif
  return rc;
}
#undef OWN
#undef OWN_INT

/* The caller's -X settings, last, so they win; -X debug also lets the
 * handle's log through (on_log()). */
static int set_overrides(rd_kafka_conf_t *conf,
                         const struct ctkn_log_config *cfg,
                         struct ctkn__kctx *k, struct ctkn_err *err)
{
  int rc = CTKN_OK;

  for (size_t i = 0; rc == CTKN_OK && i < cfg->n_overrides; i++) {
    rc = apply_override(conf, cfg->overrides[i][0], cfg->overrides[i][1], err);
    if (strcmp(cfg->overrides[i][0], "debug") == 0)
      k->verbose = true;
  }
  return rc;
}

int ctkn__kafka_build_conf(const struct ctkn_log_config *cfg,
                           enum ctkn__kafka_kind kind, struct ctkn__kctx *k,
                           rd_kafka_conf_t **out, struct ctkn_err *err)
{
  int t = cfg->timeout_ms;
  int rc;

  *out = NULL;
  if (t <= 0)
    return ctkn__err(err, CTKN_EUSAGE, "the timeout must be positive (%d ms)",
                     t);
  if (cfg->brokers[0] == '\0')
    return ctkn__err(err, CTKN_EUSAGE, "no Kafka brokers given (--brokers)");
  if (cfg->topic[0] == '\0')
    return ctkn__err(err, CTKN_EUSAGE, "no topic given (--topic)");

  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rc = set_common(conf, cfg, t, err);
  if (rc == CTKN_OK && kind == CTKN__KAFKA_PRODUCER)
    rc = set_producer(conf, t, err);
  if (rc == CTKN_OK &&
      (kind == CTKN__KAFKA_CONSUMER || kind == CTKN__KAFKA_GROUP))
    rc = set_consumer(conf, cfg, kind, err);
  if (rc == CTKN_OK)
    rc = set_overrides(conf, cfg, k, err);
  if (rc != CTKN_OK) {
    rd_kafka_conf_destroy(conf);
    return rc;
  }
  size_t size = sizeof(k->brokers);
  if (rd_kafka_conf_get(conf, "bootstrap.servers", k->brokers, &size) !=
      RD_KAFKA_CONF_OK)
    ctkn__strlcpy(k->brokers, cfg->brokers, sizeof(k->brokers));
  rd_kafka_conf_set_opaque(conf, k);
  rd_kafka_conf_set_log_cb(conf, on_log);
  rd_kafka_conf_set_error_cb(conf, on_error);
  *out = conf;
  return CTKN_OK;
}

/* rd_kafka_new() takes conf on success only; this always does. */
int ctkn__kafka_new_handle(rd_kafka_type_t type, rd_kafka_conf_t *conf,
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

/* A partition without a leader (just created, or a broker is down)
 * answers nothing yet: the first one's error, for callers that can wait;
 * RD_KAFKA_RESP_ERR_NO_ERROR when every partition has a leader. */
static rd_kafka_resp_err_t leaderless(const rd_kafka_metadata_topic_t *mt)
{
  for (int i = 0; i < mt->partition_cnt; i++) {
    const rd_kafka_metadata_partition_t *mp = &mt->partitions[i];
    if (mp->err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return mp->err;
    if (mp->leader < 0)
      return RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
  }
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* A metadata request for topic refused. */
static int meta_denied(rd_kafka_resp_err_t e, const char *topic,
                       struct ctkn_err *err)
{
  char doing[300];
  struct ctkn__kafka_acl acl = {topic, "Describe (Read or Write imply it)",
                                NULL, NULL};

  snprintf(doing, sizeof(doing), "looking up topic %s", topic);
  return ctkn__kafka_denied_err(err, e, doing, &acl);
}

/* The partition count of md's topic, or why it has none. *topic_err (when
 * not NULL) receives what a caller that can wait is waiting for. */
static int partitions_of(const struct rd_kafka_metadata *md, const char *topic,
                         int32_t *n, rd_kafka_resp_err_t *topic_err,
                         struct ctkn_err *err)
{
  const rd_kafka_metadata_topic_t *mt;
  rd_kafka_resp_err_t e;

  if (md->topic_cnt < 1)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: no metadata for topic %s",
                     topic);
  mt = &md->topics[0];
  if ((e = mt->err) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (topic_err != NULL)
      *topic_err = e;
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
      return ctkn__err(err, CTKN_ENOTFOUND,
                       "topic %s does not exist (run ctkn init)", topic);
    if (ctkn__kafka_denied(e))
      return meta_denied(e, topic, err);
    return ctkn__err(err, CTKN_EKAFKA, "kafka: topic %s: %s", topic,
                     rd_kafka_err2str(e));
  }
  if (mt->partition_cnt < 1) {
    if (topic_err != NULL)
      *topic_err = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
    return ctkn__err(err, CTKN_EKAFKA, "kafka: topic %s has no partitions",
                     topic);
  }
  *n = mt->partition_cnt;
  if (topic_err != NULL)
    *topic_err = leaderless(mt);
  return CTKN_OK;
}

int ctkn__kafka_topic_partitions(rd_kafka_t *rk, struct ctkn__kctx *k,
                                 const char *topic, int timeout_ms, int32_t *n,
                                 rd_kafka_resp_err_t *topic_err,
                                 struct ctkn_err *err)
{
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *rkt;
  rd_kafka_resp_err_t e;
  char ctx[448];
  int rc;

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
                     timeout_ms, ctkn__kctx_context(k, ctx, sizeof(ctx)));
  if (ctkn__kafka_denied(e))
    return meta_denied(e, topic, err);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: metadata for topic %s: %s %s",
                     topic, rd_kafka_err2str(e),
                     ctkn__kctx_context(k, ctx, sizeof(ctx)));
  rc = partitions_of(md, topic, n, topic_err, err);
  rd_kafka_metadata_destroy(md);
  return rc;
}

int ctkn__kafka_warm_topic(rd_kafka_t *rk, struct ctkn__kctx *k,
                           const char *topic, int timeout_ms,
                           rd_kafka_topic_t **rkt, int32_t *n,
                           struct ctkn_err *err)
{
  int32_t parts;

  if ((*rkt = rd_kafka_topic_new(rk, topic, NULL)) == NULL)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: topic %s: %s", topic,
                     rd_kafka_err2str(rd_kafka_last_error()));
  return ctkn__kafka_topic_partitions(rk, k, topic, timeout_ms,
                                      n != NULL ? n : &parts, NULL, err);
}

/* ---- authorization ---------------------------------------------------- */

bool ctkn__kafka_denied(rd_kafka_resp_err_t e)
{
  return e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
         e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
         e == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED ||
         e == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
}

int ctkn__kafka_denied_err(struct ctkn_err *err, rd_kafka_resp_err_t e,
                           const char *doing, const struct ctkn__kafka_acl *acl)
{
  char need[200];

  if (e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED && acl->group != NULL)
    snprintf(need, sizeof(need), "%s on group %s", acl->group_op, acl->group);
  else if (e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED &&
           acl->topic != NULL)
    snprintf(need, sizeof(need), "%s on topic %s", acl->topic_op, acl->topic);
  else if (e == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED)
    /* The idempotent producer's InitProducerId. */
    snprintf(need, sizeof(need),
             "Write on topic %s (IdempotentWrite on the cluster before "
             "Kafka 3.0)",
             acl->topic != NULL ? acl->topic : "the topic");
  else
    snprintf(need, sizeof(need), "the ACL it names");
  return ctkn__err(err, CTKN_EKAFKADENIED,
                   "kafka: %s: %s: grant the principal %s (docs/operations.md, "
                   "\"Topic ACLs\"); a retry cannot help until then",
                   doing, rd_kafka_err2str(e), need);
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

/* The log is the source of truth: keep every record, never compact. */
static int set_topic_config(rd_kafka_NewTopic_t *nt, struct ctkn_err *err)
{
  if (rd_kafka_NewTopic_set_config(nt, "retention.ms", "-1") ||
      rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "delete"))
    return ctkn__err(err, CTKN_EINTERNAL, "kafka: topic config rejected");
  return CTKN_OK;
}

/* The request timeout covers finding the controller as well; the broker
 * gets half of it to finish the creation. */
static int set_admin_timeouts(rd_kafka_AdminOptions_t *opts, int t,
                              struct ctkn_err *err)
{
  char errstr[256];

  if (rd_kafka_AdminOptions_set_request_timeout(opts, t, errstr,
                                                sizeof(errstr)) ||
      rd_kafka_AdminOptions_set_operation_timeout(
          opts, ctkn__kafka_clamp(t / 2, 1, t), errstr, sizeof(errstr)))
    return ctkn__err(err, CTKN_EINTERNAL, "kafka: admin options: %s", errstr);
  return CTKN_OK;
}

/* What the CreateTopics result ev says: *created, or that the topic
 * already exists, or the error. */
static int create_result(rd_kafka_event_t *ev, struct ctkn__kctx *k,
                         const char *topic, bool *created, struct ctkn_err *err)
{
  rd_kafka_resp_err_t e;
  char ctx[448];

  if ((e = rd_kafka_event_error(ev)) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(
        err, e == RD_KAFKA_RESP_ERR__TIMED_OUT ? CTKN_ETIMEOUT : CTKN_EKAFKA,
        "kafka: cannot create topic %s: %s %s", topic,
        rd_kafka_event_error_string(ev),
        ctkn__kctx_context(k, ctx, sizeof(ctx)));
  const rd_kafka_CreateTopics_result_t *res =
      rd_kafka_event_CreateTopics_result(ev);
  size_t cnt = 0;
  const rd_kafka_topic_result_t **topics =
      res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
  if (cnt < 1)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: empty CreateTopics result");
  e = rd_kafka_topic_result_error(topics[0]);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    *created = true;
  } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    *created = false;
  } else if (ctkn__kafka_denied(e)) {
    char doing[300];
    struct ctkn__kafka_acl acl = {topic, "Create", NULL, NULL};
    snprintf(doing, sizeof(doing), "creating topic %s", topic);
    return ctkn__kafka_denied_err(err, e, doing, &acl);
  } else {
    const char *detail = rd_kafka_topic_result_error_string(topics[0]);
    return ctkn__err(
        err, create_error_code(e), "kafka: cannot create topic %s: %s%s%s",
        topic, rd_kafka_err2str(e), detail ? ": " : "", detail ? detail : "");
  }
  return CTKN_OK;
}

/* Send CreateTopics and wait for its result; *created on success. */
static int create_once(rd_kafka_t *rk, struct ctkn__kctx *k,
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
  int rc;

  nt = rd_kafka_NewTopic_new(cfg->topic, partitions, replication_factor, errstr,
                             sizeof(errstr));
  if (nt == NULL)
    return ctkn__err(err, CTKN_EUSAGE, "topic %s: %s", cfg->topic, errstr);
  if ((rc = set_topic_config(nt, err)) != CTKN_OK)
    goto out;
  opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  if ((rc = set_admin_timeouts(opts, t, err)) != CTKN_OK)
    goto out;
  q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
  /* The request timeout ends the request; the margin is for its result
   * to reach the queue. */
  if ((ev = rd_kafka_queue_poll(q, t + 1000)) == NULL)
    rc = ctkn__err(err, CTKN_ETIMEOUT,
                   "kafka: cannot create topic %s: no reply within %d ms %s",
                   cfg->topic, t, ctkn__kctx_context(k, ctx, sizeof(ctx)));
  else
    rc = create_result(ev, k, cfg->topic, created, err);
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

/*
 * Whether broker b knows cfg's topic, with a leader for each of its n
 * partitions: asked on a handle bootstrapped to b alone (a fresh one, whose
 * only broker is b, so the question goes there), and counted only if b is
 * the broker that answered. Errors: an authorization failure; anything
 * else is "not yet".
 */
static int broker_knows(const struct ctkn_log_config *cfg,
                        const rd_kafka_metadata_broker_t *b, int32_t n,
                        bool *knows, struct ctkn_err *err)
{
  struct ctkn_log_config one = *cfg; /* the overrides are borrowed */
  const struct rd_kafka_metadata *md = NULL;
  struct ctkn__kctx k;
  rd_kafka_conf_t *conf;
  rd_kafka_t *rk = NULL;
  int rc;

  *knows = false;
  snprintf(one.brokers, sizeof(one.brokers),
           strchr(b->host, ':') ? "[%s]:%d" : "%s:%d", b->host, b->port);
  ctkn__kctx_init(&k, NULL);
  if ((rc = ctkn__kafka_build_conf(&one, CTKN__KAFKA_ADMIN, &k, &conf, err)) ==
          CTKN_OK &&
      (rc = ctkn__kafka_new_handle(RD_KAFKA_PRODUCER, conf, &rk, err)) ==
          CTKN_OK) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, cfg->topic, NULL);
    rd_kafka_resp_err_t e =
        rkt ? rd_kafka_metadata(rk, 0, rkt, &md, cfg->timeout_ms)
            : RD_KAFKA_RESP_ERR__FAIL;
    if (rkt != NULL)
      rd_kafka_topic_destroy(rkt);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->orig_broker_id == b->id) {
      int32_t cnt = 0;
      rd_kafka_resp_err_t te = RD_KAFKA_RESP_ERR_NO_ERROR;
      struct ctkn_err ignored;
      int prc = partitions_of(md, cfg->topic, &cnt, &te, &ignored);
      *knows = prc == CTKN_OK && te == RD_KAFKA_RESP_ERR_NO_ERROR && cnt == n;
      if (ctkn__kafka_denied(te))
        rc = meta_denied(te, cfg->topic, err);
    }
    if (md != NULL)
      rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
  }
  pthread_mutex_destroy(&k.mu);
  return rc;
}

/*
 * Wait until every broker of rk's cluster knows the topic just created
 * (n partitions, each with a leader), or the deadline passes. A topic is
 * created through the controller; each broker learns of it from the
 * metadata log a moment later, and a client that asks a broker that has
 * not yet is told the topic does not exist: a command right after `init`
 * could answer not_found. Errors: CTKN_ETIMEOUT naming the broker.
 */
static int wait_every_broker(rd_kafka_t *rk, struct ctkn__kctx *k,
                             const struct ctkn_log_config *cfg, int32_t n,
                             int64_t deadline, struct ctkn_err *err)
{
  const struct rd_kafka_metadata *md = NULL;
  char ctx[448];
  int left = (int)ctkn__kafka_clamp((int)(deadline - ctkn__now_ms()), 1,
                                    cfg->timeout_ms);
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, left);
  int rc = CTKN_OK;

  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_ETIMEOUT, "kafka: no broker list: %s %s",
                     rd_kafka_err2str(e),
                     ctkn__kctx_context(k, ctx, sizeof(ctx)));
  for (int i = 0; rc == CTKN_OK && i < md->broker_cnt; i++) {
    const rd_kafka_metadata_broker_t *b = &md->brokers[i];
    bool knows = false;
    while ((rc = broker_knows(cfg, b, n, &knows, err)) == CTKN_OK && !knows) {
      if (ctkn__now_ms() + CTKN__KAFKA_META_RETRY_MS >= deadline) {
        rc = ctkn__err(err, CTKN_ETIMEOUT,
                       "kafka: topic %s was created, but broker %" PRId32
                       " (%s:%d) did not know it within %d ms; run ctkn init "
                       "again to wait for it",
                       cfg->topic, b->id, b->host, b->port, cfg->timeout_ms);
        break;
      }
      ctkn__kafka_sleep_ms(CTKN__KAFKA_META_RETRY_MS);
    }
  }
  rd_kafka_metadata_destroy(md);
  return rc;
}

int ctkn__kafka_create_topic(const struct ctkn_log_config *cfg, int partitions,
                             int replication_factor, bool *created,
                             int32_t *out_partitions, struct ctkn_err *err)
{
  struct ctkn__kctx k;
  rd_kafka_conf_t *conf;
  rd_kafka_t *rk;
  int rc;

  ctkn__kctx_init(&k, NULL);
  if ((rc = ctkn__kafka_build_conf(cfg, CTKN__KAFKA_ADMIN, &k, &conf, err)) !=
      CTKN_OK)
    goto done;
  if ((rc = ctkn__kafka_new_handle(RD_KAFKA_PRODUCER, conf, &rk, err)) !=
      CTKN_OK)
    goto done;
  rc = create_once(rk, &k, cfg, partitions, replication_factor, created, err);

  /* A new topic takes a moment to show in metadata and to get a leader for
   * every partition; wait for both (bounded), so that the next command's
   * offset queries do not hit "not leader". */
  int64_t deadline = ctkn__now_ms() + cfg->timeout_ms;
  while (rc == CTKN_OK) {
    rd_kafka_resp_err_t te;
    int64_t left = deadline - ctkn__now_ms();
    rc = ctkn__kafka_topic_partitions(
        rk, &k, cfg->topic, (int)ctkn__kafka_clamp((int)left, 1, 60000),
        out_partitions, &te, err);
    if ((rc == CTKN_OK && te == RD_KAFKA_RESP_ERR_NO_ERROR) ||
        (rc != CTKN_OK && te == RD_KAFKA_RESP_ERR_NO_ERROR) ||
        ctkn__now_ms() + CTKN__KAFKA_META_RETRY_MS >= deadline)
      break;
    ctkn__kafka_sleep_ms(CTKN__KAFKA_META_RETRY_MS);
    rc = CTKN_OK;
  }
  /* One broker knows it now; the others may not yet. */
  if (rc == CTKN_OK)
    rc = wait_every_broker(rk, &k, cfg, *out_partitions, deadline, err);
  rd_kafka_destroy(rk);
done:
  pthread_mutex_destroy(&k.mu);
  return rc;
}

/* ---- the backend -------------------------------------------------------- */

const struct ctkn__log_backend ctkn__log_kafka = {
    .name = "kafka",
    .create_topic = ctkn__kafka_create_topic,
    .producer_open = ctkn__kafka_producer_open,
    .producer_close = ctkn__kafka_producer_close,
    .send_batch = ctkn__kafka_send_batch,
    .send_start = ctkn__kafka_send_start,
    .send_finish = ctkn__kafka_send_finish,
    .consumer_open = ctkn__kafka_consumer_open,
    .consumer_close = ctkn__kafka_consumer_close,
    .partitions = ctkn__kafka_partitions,
    .topic_id = ctkn__kafka_topic_id,
    .watermarks = ctkn__kafka_watermarks,
    .offsets_after = ctkn__kafka_offsets_after,
    .assign = ctkn__kafka_assign,
    .seek = ctkn__kafka_seek,
    .poll = ctkn__kafka_poll,
#if CTKN_KAFKA_PIPE_WORKAROUNDS
    /* librdkafka 2.0.2 backs the fetch off a second (#2879): the
     * pipelined catch-up restarts it. Measured on 2.0.2, without it the
     * catch-up was slower (0.52-0.85 of shipped); on 2.14.2, where
     * fetch.queue.backoff.ms keeps the back-off short, putting it back
     * gave no consistent gain (docs/architecture.md, "The pipelined
     * catch-up: librdkafka workarounds, measured"). */
    .long_backoff = true,
#else
    .long_backoff = false,
#endif
    .wait = ctkn__kafka_wait,
    .commit = ctkn__kafka_commit,
    .lease_poll = ctkn__kafka_lease_poll,
    .lease_committed = ctkn__kafka_lease_committed,
    .lease_commit = ctkn__kafka_lease_commit,
};
