/*
 * bench - ctkn's figures beside the physical limits measured in the same
 * run, one JSON line per figure: {"name","value","unit","limit","ratio"}.
 *
 *   0. Limits: raw librdkafka produce and consume of N unsigned events on
 *      TOPIC (no ctkn reader accepts those).
 *   1. Fill a fresh topic (TOPIC-signed) with N events (creates, updates,
 *      revokes) through raw librdkafka and ctkn's signer, one command per
 *      produce batch (each event chained and followed by its signed
 *      checkpoint), as fast as it goes. There is no unsigned mode: every
 *      ctkn reader judges, so the bench measures what a deployment runs.
 *   2. Limit: raw librdkafka consume of the same records.
 *      Figure: `ctkn project --trust-root` catching up a fresh projection
 *      from it (a child process), and the child's peak RssAnon; beside raw
 *      LMDB writing the same entries, and the 300k events/s target.
 *   3. Limit: raw mdb_get on the projection's token index.
 *      Figure: ctkn_store_get_by_token (verify's lookup), p50 and p99.
 *      A new replica from a snapshot, beside the full catch-up.
 *   4. Signed writes on a topic of their own (a trust root and a writer
 *      key, as a deployment signs): sequential `ctkn create` processes,
 *      p50 and p90, against raw one-shot producer processes; then
 *      `ctkn create --batch` against the raw produce rate of step 1.
 *
 * usage: bench CTKN_BIN BROKERS TOPIC DIR N [scale]
 *
 * With "scale" (bench/scale, the cost curve), only the signed topic: its
 * catch-up and peak RssAnon, LMDB bytes per token (beside raw LMDB's bytes
 * for the same entries, unless N > 3M), the signed records' value bytes,
 * verify's lookup, snapshot-to-ready, and DIR/cursors: the IDs to page
 * from at the start, middle and end of the index.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <lmdb.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctkn/codec.h"
#include "ctkn/event.h"
#include "ctkn/log.h"
#include "ctkn/store.h"
#include "ctkn/trust.h"

#define BENCH_NAME "bench"
#include "common.h"

/* Token strings of the created tokens, for the lookup benchmark. */
static char (*tokens)[CTKN_TOKEN_BUF];
static char (*token_ids)[CTKN_ID_BUF];
static size_t ntokens;
/* The encoded events' bytes, as the signed fill appended them. */
static double fill_value_bytes;

/* N events: every token is created; every 4th is then updated and every
 * 8th revoked, each on the token's partition. */
static double fill_rate;

/* ev as one command's produce batch through the signer: the record and
 * its partition's checkpoint. */
static void produce_signed(rd_kafka_t *rk, const char *topic, int32_t part,
                           const struct ctkn_event *ev, ctkn_signer *sg)
{
  struct ctkn_log_record in, *out;
  uint8_t *buf;
  size_t len, nout;

  if (ctkn_event_encode(ev, &buf, &len, NULL) != CTKN_OK)
    die("encode");
  in = (struct ctkn_log_record){.partition = part,
                                .key = ev->data.id,
                                .klen = strlen(ev->data.id),
                                .value = buf,
                                .vlen = len,
                                .timestamp_ms = ev->occurred_at / 1000,
                                .event_type = ctkn_event_type_str(ev->type),
                                .schema_version = CTKN_SCHEMA_VERSION};
  if (ctkn_signer_prepare(sg, &in, 1, 0, ev->occurred_at, &out, &nout, NULL) !=
      CTKN_OK)
    die("sign");
  for (size_t i = 0; i < nout; i++)
    produce_rec(rk, topic, &out[i]);
  ctkn_signer_done(sg, true, NULL); /* a failed flush ends the bench */
  fill_value_bytes += (double)len;
  free(buf);
}

static void emit(rd_kafka_t *rk, const char *topic, int32_t part,
                 const struct ctkn_event *ev, ctkn_signer *sg)
{
  if (sg != NULL)
    produce_signed(rk, topic, part, ev, sg);
  else
    produce_one(rk, topic, part, ev);
}

static void fill(const char *brokers, const char *topic, int32_t nparts,
                 size_t n, ctkn_signer *sg)
{
  rd_kafka_t *rk = new_handle(RD_KAFKA_PRODUCER, brokers, fill_conf);
  struct ctkn_event *ev = malloc(sizeof(*ev));
  struct ctkn_record *rec = malloc(sizeof(*rec));
  struct ctkn_command cmd;
  int64_t t = ctkn_now_us();
  size_t made = 0;
  double t0 = now_s();

  tokens = malloc(n * sizeof(*tokens));
  token_ids = malloc(n * sizeof(*token_ids));
  if (tokens == NULL || token_ids == NULL)
    die("out of memory for the tokens");
  while (made < n) {
    char name[32];
    snprintf(name, sizeof(name), "token %zu", ntokens);
    ctkn_command_init(&cmd, CTKN_CMD_CREATE);
    ctkn_command_set_name(&cmd, name, strlen(name), NULL);
    if (ctkn_plan(NULL, &cmd, CTKN_ENV_SANDBOX, t++, ev, NULL) != 0)
      die("plan create");
    int32_t part =
        ctkn_log_partition_for(ev->data.id, strlen(ev->data.id), nparts);
    emit(rk, topic, part, ev, sg);
    memcpy(token_ids[ntokens], ev->data.id, CTKN_ID_BUF);
    memcpy(tokens[ntokens++], ev->data.token, CTKN_TOKEN_BUF);
    made++;
    rec->token = ev->data;
    rec->version = ev->version;
    rec->partition = part;
    for (int k = 1; k <= 2 && made < n; k++) {
      if (ntokens % (k == 1 ? 4 : 8) != 0)
        continue;
      ctkn_command_init(&cmd, CTKN_CMD_UPDATE);
      ctkn_command_set_id(&cmd, rec->token.id, NULL);
      if (k == 1)
        ctkn_command_set_description(&cmd, "updated", 7, NULL);
      else
        ctkn_command_set_status(&cmd, "revoked", NULL);
      if (ctkn_plan(rec, &cmd, CTKN_ENV_SANDBOX, t++, ev, NULL) != 0)
        die("plan update");
      emit(rk, topic, part, ev, sg);
      rec->token = ev->data;
      rec->version = ev->version;
      made++;
    }
  }
  while (rd_kafka_flush(rk, 1000) == RD_KAFKA_RESP_ERR__TIMED_OUT)
    ;
  double dt = now_s() - t0;
  fprintf(stderr, "bench: produced %zu events in %.1f s\n", made, dt);
  if (sg == NULL) {
    fill_rate = (double)made / dt;
    figure("raw_librdkafka_produce", fill_rate, "events/s", 0);
  }
  rd_kafka_destroy(rk);
  free(ev);
  free(rec);
}

/* The limit: consume every record of the topic with plain librdkafka. */
static double raw_consume(const char *brokers, const char *topic,
                          int32_t nparts, size_t n)
{
  static const char *const kv[] = {"group.id",
                                   "ctkn-bench-raw",
                                   "enable.auto.commit",
                                   "false",
                                   "enable.partition.eof",
                                   "false",
                                   "fetch.max.bytes",
                                   "8388608",
                                   "queued.max.messages.kbytes",
                                   "16384",
                                   NULL};
  rd_kafka_t *rk = new_handle(RD_KAFKA_CONSUMER, brokers, kv);
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new(nparts);
  rd_kafka_message_t *batch[8192];
  size_t got = 0;

  for (int32_t p = 0; p < nparts; p++)
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = 0;
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
  double t0 = now_s();
  rd_kafka_assign(rk, l);
  while (got < n) {
    ssize_t k = rd_kafka_consume_batch_queue(q, 1000, batch, 8192);
    for (ssize_t i = 0; i < k; i++) {
      if (batch[i]->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        got++;
      rd_kafka_message_destroy(batch[i]);
    }
    if (now_s() - t0 > 300)
      die("raw consume timed out");
  }
  double rate = (double)got / (now_s() - t0);
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
  return rate;
}

static double projector_rate, projector_seconds;

static long rss_anon_kib(pid_t pid)
{
  char path[64], line[256];
  long kib = -1;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  if ((f = fopen(path, "r")) == NULL)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

/* `ctkn project` as a child: wall time and peak RssAnon (sampled). */
static void projector_catch_up(const char *ctkn, const char *brokers,
                               const char *topic, const char *db, size_t n,
                               double raw_rate, const char *trust_root)
{
  long peak = 0;
  int status;
  double t0 = now_s();
  pid_t pid = fork();

  if (pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    execl(ctkn, ctkn, "project", "--brokers", brokers, "--topic", topic, "--db",
          db, "--timeout", "30", "--trust-root", trust_root, (char *)NULL);
    _exit(127);
  }
  while (waitpid(pid, &status, WNOHANG) == 0) {
    /* Until exec, the child is a copy of this process: skip those samples. */
    char comm[64] = "", path[64];
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *cf = fopen(path, "r");
    if (cf != NULL) {
      if (fgets(comm, sizeof(comm), cf) == NULL)
        comm[0] = '\0';
      fclose(cf);
    }
    if (strncmp(comm, "ctkn", 4) != 0) {
      usleep(1000);
      continue;
    }
    long kib = rss_anon_kib(pid);
    if (kib > peak)
      peak = kib;
    usleep(5000);
  }
  double dt = now_s() - t0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die("ctkn project failed");
  projector_rate = (double)n / dt;
  projector_seconds = dt;
  figure("projector_catch_up_signed", (double)n / dt, "events/s", raw_rate);
  figure("projector_catch_up_vs_target", (double)n / dt, "events/s", 300000);
  figure("projector_signed_peak_rss_anon", (double)peak / 1024, "MiB", 128);
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
  return v[(size_t)(p * (double)(n - 1))];
}

/*
 * The storage limit: raw LMDB writing the same bytes the projector wrote
 * (each event's history entry; each token's record and index entry) into a
 * fresh environment, in key order, 8192 events per fsync'd transaction, as
 * the projector batches. Key order is LMDB's best case, so this bounds what
 * any projector with this layout can do.
 */
static double raw_lmdb_rate(const char *db, const char *dir)
{
  char path[4200];
  MDB_env *src, *dst;
  MDB_txn *rt, *wt;
  MDB_dbi h, tk, d_h, d_tk, d_ix;
  MDB_cursor *c;
  MDB_val k, v;
  size_t n = 0;

  snprintf(path, sizeof(path), "%s/raw-lmdb", dir);
  if (mkdir(path, 0700) != 0)
    die("mkdir raw-lmdb");
  if (mdb_env_create(&src) || mdb_env_set_maxdbs(src, 16) ||
      mdb_env_open(src, db, MDB_RDONLY | MDB_NOTLS, 0600) ||
      mdb_txn_begin(src, NULL, MDB_RDONLY, &rt) ||
      mdb_dbi_open(rt, "history", 0, &h) || mdb_dbi_open(rt, "tokens", 0, &tk))
    die("raw lmdb source");
  if (mdb_env_create(&dst) || mdb_env_set_maxdbs(dst, 16) ||
      mdb_env_set_mapsize(dst, (size_t)64 << 30) ||
      mdb_env_open(dst, path, 0, 0600) || mdb_txn_begin(dst, NULL, 0, &wt) ||
      mdb_dbi_open(wt, "history", MDB_CREATE, &d_h) ||
      mdb_dbi_open(wt, "tokens", MDB_CREATE, &d_tk) ||
      mdb_dbi_open(wt, "token_index", MDB_CREATE, &d_ix) || mdb_txn_commit(wt))
    die("raw lmdb target");
  if (mdb_cursor_open(rt, h, &c))
    die("raw lmdb cursor");
  double t0 = now_s();
  if (mdb_txn_begin(dst, NULL, 0, &wt))
    die("raw lmdb txn");
  for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (mdb_put(wt, d_h, &k, &v, MDB_APPEND))
      die("raw put history");
    const uint8_t *kb = k.mv_data;
    uint64_t version = 0;
    for (int i = 0; i < 8; i++)
      version = version << 8 | kb[CTKN_ID_LEN + i];
    MDB_val id = {CTKN_ID_LEN, k.mv_data}, rec;
    if (version == 1) {
      struct ctkn_record r;
      if (mdb_get(rt, tk, &id, &rec) ||
          ctkn_record_decode(rec.mv_data, rec.mv_size, &r, NULL) != CTKN_OK)
        die("raw get record");
      MDB_val tok = {CTKN_TOKEN_LEN, r.token.token};
      uint8_t entry[CTKN_ID_LEN + 1];
      memcpy(entry, k.mv_data, CTKN_ID_LEN);
      entry[CTKN_ID_LEN] = 1;
      MDB_val ev = {sizeof(entry), entry};
      if (mdb_put(wt, d_tk, &id, &rec, MDB_APPEND) ||
          mdb_put(wt, d_ix, &tok, &ev, 0))
        die("raw put token");
    }
    if (++n % 8192 == 0 &&
        (mdb_txn_commit(wt) || mdb_txn_begin(dst, NULL, 0, &wt)))
      die("raw commit");
  }
  if (mdb_txn_commit(wt))
    die("raw commit");
  double rate = (double)n / (now_s() - t0);
  mdb_cursor_close(c);
  mdb_txn_abort(rt);
  mdb_env_close(src);
  mdb_env_close(dst);
  return rate;
}

/* verify's lookup against a raw mdb_get of the same index. */
static void lookups(const char *db)
{
  enum { L = 200000 };
  double *raw = malloc(L * sizeof(*raw)), *ours = malloc(L * sizeof(*ours));
  char id[CTKN_ID_BUF];
  ctkn_status status;
  ctkn_store *st;
  ctkn_store_txn *txn;
  struct ctkn_store_opts o = {.read_only = true};
  MDB_env *env;
  MDB_txn *mt;
  MDB_dbi idx;
  unsigned seed = 42;

  if (ctkn_store_open(&st, db, &o, NULL) != CTKN_OK)
    die("store open");
  if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16) ||
      mdb_env_open(env, db, MDB_RDONLY | MDB_NOTLS, 0600) ||
      mdb_txn_begin(env, NULL, MDB_RDONLY, &mt) ||
      mdb_dbi_open(mt, "token_index", 0, &idx))
    die("raw lmdb open");
  ctkn_store_begin(st, false, &txn, NULL);
  /* Each reader runs its own loop over the same keys, twice; the second
   * loop is timed, so both start from a warm page cache and neither rides
   * on the other's CPU cache lines. */
  for (int pass = 0; pass < 2; pass++) {
    seed = 42;
    for (int i = 0; i < L; i++) {
      const char *t = tokens[rand_r(&seed) % ntokens];
      MDB_val k = {CTKN_TOKEN_LEN, (void *)t}, v;
      double a = now_s();
      if (mdb_get(mt, idx, &k, &v))
        die("raw get");
      raw[i] = (now_s() - a) * 1e6;
    }
    seed = 42;
    for (int i = 0; i < L; i++) {
      const char *t = tokens[rand_r(&seed) % ntokens];
      double a = now_s();
      if (ctkn_store_lookup_token(txn, t, id, &status, NULL) != CTKN_OK)
        die("lookup_token");
      ours[i] = (now_s() - a) * 1e6;
    }
  }
  ctkn_store_abort(txn);
  mdb_txn_abort(mt);
  mdb_env_close(env);
  ctkn_store_close(st);
  qsort(raw, L, sizeof(*raw), cmp_double);
  qsort(ours, L, sizeof(*ours), cmp_double);
  figure("verify_lookup_p50", pct(ours, L, 0.5), "us", pct(raw, L, 0.5));
  figure("verify_lookup_p99", pct(ours, L, 0.99), "us", pct(raw, L, 0.99));
  figure("verify_lookup_p50_vs_target", pct(ours, L, 0.5), "us", 2.0);
  free(raw);
  free(ours);
}

/* The write figures' own topic, signed as a deployment's writers are: a
 * trust root and a client_token.* writer key made with the CLI, handed to
 * every `ctkn` child through CTKN_TRUST_ROOT and CTKN_WRITER_KEY. The
 * projection db starts empty (a fresh topic). */
static void signed_writes_setup(const char *ctkn, const char *brokers,
                                const char *topic, const char *dir,
                                char *wtopic, size_t wtsz, char *wdb,
                                size_t wdbsz)
{
  char cmd[65536], root[4200], key[4200];

  snprintf(wtopic, wtsz, "%.200s-writes", topic);
  snprintf(wdb, wdbsz, "%s/writes", dir);
  snprintf(root, sizeof(root), "%s/writes-root.key", dir);
  snprintf(key, sizeof(key), "%s/writes-writer.key", dir);
  snprintf(cmd, sizeof(cmd),
           "%s init --brokers %s --topic %s --db %s --partitions 6 "
           ">/dev/null && %s trust init --root-key %s >/dev/null && "
           "%s trust key add --brokers %s --topic %s --db %s --root-key %s "
           "--name bench --scope 'client_token.*' --out %s >/dev/null",
           ctkn, brokers, wtopic, wdb, ctkn, root, ctkn, brokers, wtopic, wdb,
           root, key);
  if (system(cmd) != 0)
    die("the signed writes' topic and keys");
  snprintf(cmd, sizeof(cmd), "%s.pub", root);
  setenv("CTKN_TRUST_ROOT", cmd, 1);
  setenv("CTKN_WRITER_KEY", key, 1);
}

extern char **environ;

/* The p50 and p90 of C runs of argv, a process each, in ms: spawned
 * directly, stdout to /dev/null (through system()'s /bin/sh, each run
 * also timed the shell's start, 0.8 ms here). */
static void process_times(char *const argv[], int c, double *p50, double *p90)
{
  double *t = malloc((size_t)c * sizeof(*t));
  posix_spawn_file_actions_t fa;

  if (t == NULL)
    die("out of memory");
  if (posix_spawn_file_actions_init(&fa) != 0 ||
      posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null",
                                       O_WRONLY, 0) != 0)
    die("posix_spawn_file_actions");
  for (int i = 0; i < c; i++) {
    pid_t pid;
    int status;
    double t0 = now_s();
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0 ||
        waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      die(argv[0]);
    t[i] = (now_s() - t0) * 1e3;
  }
  posix_spawn_file_actions_destroy(&fa);
  qsort(t, (size_t)c, sizeof(*t), cmp_double);
  *p50 = pct(t, (size_t)c, 0.5);
  *p90 = pct(t, (size_t)c, 0.9);
  free(t);
}

/* Sequential `ctkn create` processes (signed), end to end, on a warm
 * broker, against the same number of raw one-shot producer processes
 * (bench/produce with SECONDS 0: start, connect, one acks=all record,
 * exit), alternating so that both see the same load. */
#define CTKN_BENCH_WARM_CREATES 250

static void commands(const char *ctkn, const char *produce, const char *brokers,
                     const char *topic, const char *db)
{
  enum { C = 50 };
  char rtopic[300];
  double c50, c90, r50, r90, sum50 = 0, sum90 = 0, rs50 = 0, rs90 = 0;

  snprintf(rtopic, sizeof(rtopic), "%.250s-raw", topic);
  char *const cmd[] = {(char *)ctkn, "create",        "--name",  "bench",
                       "--brokers",  (char *)brokers, "--topic", (char *)topic,
                       "--db",       (char *)db,      NULL};
  char *const raw[] = {
      (char *)produce, (char *)brokers, rtopic, "1", "0", NULL};
  /* Warm the broker: a create opens three connections, and the broker's
   * JIT compiles the paths of a new connection (ApiVersions, metadata,
   * the coordinator, offsets) only after some hundreds of them. Measured
   * on a fresh G1 broker, p50 of successive 60-run calls: 24, 19, 17,
   * then 15 ms from about 250 creates on; bench/run warmed with 3. */
  process_times(cmd, CTKN_BENCH_WARM_CREATES, &c50, &c90);
  for (int round = 0; round < 5; round++) {
    process_times(cmd, C / 5, &c50, &c90);
    process_times(raw, C / 5, &r50, &r90);
    sum50 += c50, sum90 += c90, rs50 += r50, rs90 += r90;
  }
  figure("create_command_p50", sum50 / 5, "ms", rs50 / 5);
  figure("create_command_p90", sum90 / 5, "ms", rs90 / 5);
  figure("create_command_p50_vs_target", sum50 / 5, "ms", 15);
}

/* `ctkn create --batch` (signed) with every request of a chunk in flight
 * together, against the raw produce rate of the same run. */
static void batch_commands(const char *ctkn, const char *brokers,
                           const char *topic, const char *db, double limit)
{
  enum { C = 20000 };
  char cmd[16384];
  FILE *f;

  snprintf(cmd, sizeof(cmd),
           "%s create --batch --brokers %s --topic %s --db %s >/dev/null", ctkn,
           brokers, topic, db);
  double t0 = now_s();
  if ((f = popen(cmd, "w")) == NULL)
    die("popen");
  for (int i = 0; i < C; i++)
    fprintf(f, "{\"name\":\"batch %d\",\"description\":\"bench\"}\n", i);
  if (pclose(f) != 0)
    die("ctkn create --batch failed");
  double dt = now_s() - t0;
  figure("create_batch", C / dt, "commands/s", limit);
}

/* A new replica: copy a live projection's snapshot, then catch up from its
 * offsets; against replaying the whole log into a fresh projection
 * (projector_seconds; unknown in scale mode). trust_root: NULL or the root
 * the catch-up judges by. */
static void replica_ready(const char *ctkn, const char *brokers,
                          const char *topic, const char *db, const char *dir,
                          const char *trust_root)
{
  char cmd[16384];

  double t0 = now_s();
  snprintf(cmd, sizeof(cmd),
           "%s snapshot --db %s --out %s/replica --topic %s >/dev/null && "
           "%s project --db %s/replica --brokers %s --topic %s%s%s >/dev/null",
           ctkn, db, dir, topic, ctkn, dir, brokers, topic,
           trust_root ? " --trust-root " : "", trust_root ? trust_root : "");
  if (system(cmd) != 0)
    die("snapshot + catch-up failed");
  figure("replica_ready_from_snapshot", now_s() - t0, "s", projector_seconds);
}

/* A topic of its own (TOPIC-signed), a root and a client_token.* writer in
 * its keyring: what the signed fill needs. rootpub gets the root's public
 * key file; *writer the key the signer holds (freed after it). */
static ctkn_signer *signed_topic(const char *ctkn, const char *brokers,
                                 const char *stopic, const char *dir,
                                 int32_t nparts, char rootpub[4200],
                                 ctkn_seckey **writer)
{
  struct ctkn_log_config cfg;
  struct ctkn_keyring kr;
  struct ctkn_writer_key wk = {0};
  ctkn_seckey *root;
  ctkn_signer *sg;
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  char cmd[8192], hex[65];
  FILE *f;

  snprintf(cmd, sizeof(cmd),
           "%s init --brokers %s --topic %s --db %s/init-signed "
           "--partitions %d >/dev/null",
           ctkn, brokers, stopic, dir, (int)nparts);
  if (system(cmd) != 0)
    die("init of the signed topic");
  if (ctkn_seckey_generate(&root, NULL) != CTKN_OK ||
      ctkn_seckey_generate(writer, NULL) != CTKN_OK)
    die("keys");
  ctkn_seckey_public(root, pub);
  ctkn_hex(pub, sizeof(pub), hex);
  snprintf(rootpub, 4200, "%s/root.pub", dir);
  if ((f = fopen(rootpub, "w")) == NULL)
    die("root.pub");
  fprintf(f, "%s\n", hex);
  fclose(f);
  ctkn_keyring_init(&kr);
  kr.version = 1;
  memset(kr.log_id, 0x42, sizeof(kr.log_id));
  ctkn_seckey_public(*writer, wk.public_key);
  ctkn_key_id(wk.public_key, wk.key_id);
  snprintf(wk.name, sizeof(wk.name), "bench");
  snprintf(wk.scopes[0], sizeof(wk.scopes[0]), "client_token.*");
  wk.nscopes = 1;
  ctkn_log_config_init(&cfg);
  snprintf(cfg.brokers, sizeof(cfg.brokers), "%s", brokers);
  snprintf(cfg.topic, sizeof(cfg.topic), "%.230s_settings", stopic);
  if (ctkn_keyring_add_key(&kr, &wk, NULL) != CTKN_OK ||
      ctkn_trust_keyring_append(&cfg, root, &kr, NULL) != CTKN_OK ||
      ctkn_signer_open(&sg, *writer, kr.log_id, nparts, NULL) != CTKN_OK)
    die("keyring");
  ctkn_seckey_free(root);
  ctkn_keyring_free(&kr);
  ctkn_log_config_free(&cfg);
  return sg;
}

/* The signed fill, its raw consume (the limit) and the catch-up. */
static void signed_fill_catch_up(const char *ctkn, const char *brokers,
                                 const char *stopic, const char *db,
                                 const char *rootpub, size_t n, int32_t nparts,
                                 ctkn_signer *sg)
{
  ntokens = 0;
  fill_value_bytes = 0;
  fill(brokers, stopic, nparts, n, sg);
  double raw = raw_consume(brokers, stopic, nparts, 2 * n);
  /* The limit in events/s: the same records (each with its checkpoint). */
  figure("raw_librdkafka_consume_signed_records", raw / 2, "events/s", 0);
  projector_catch_up(ctkn, brokers, stopic, db, n, raw / 2, rootpub);
}

/* The bytes an LMDB environment uses: its pages up to the last one
 * written (the file itself may be longer). */
static double lmdb_used_bytes(const char *path)
{
  MDB_env *env;
  MDB_envinfo info;
  MDB_stat st;

  if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16) ||
      mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS, 0600) ||
      mdb_env_info(env, &info) || mdb_env_stat(env, &st))
    die("lmdb used bytes");
  mdb_env_close(env);
  return (double)(info.me_last_pgno + 1) * st.ms_psize;
}

/* The IDs a page after= starts from at the start, middle and end of the
 * index (the fill creates tokens in ID order). */
static void write_cursors(const char *dir)
{
  char path[4200];
  FILE *f;

  snprintf(path, sizeof(path), "%s/cursors", dir);
  if (ntokens < 200 || (f = fopen(path, "w")) == NULL)
    die("cursors");
  fprintf(f, "%s\n%s\n%s\n", token_ids[0], token_ids[ntokens / 2],
          token_ids[ntokens - 101]);
  fclose(f);
}

/* bench/scale's sizes: the signed topic only, with the figures whose
 * growth the cost curve shows. */
static void scale(const char *ctkn, const char *brokers, const char *topic,
                  const char *dir, size_t n, int32_t nparts)
{
  char stopic[300], rootpub[4200], db[4200], raw[4200];

  snprintf(stopic, sizeof(stopic), "%s-signed", topic);
  snprintf(db, sizeof(db), "%s/projection-signed", dir);
  ctkn_seckey *writer;
  ctkn_signer *sg =
      signed_topic(ctkn, brokers, stopic, dir, nparts, rootpub, &writer);
  signed_fill_catch_up(ctkn, brokers, stopic, db, rootpub, n, nparts, sg);
  ctkn_signer_close(sg);
  ctkn_seckey_free(writer);
  figure("tokens", (double)ntokens, "tokens", 0);
  figure("event_value_bytes", fill_value_bytes / (double)n, "B", 0);
  double used = lmdb_used_bytes(db), raw_used = 0;
  if (n <= 3000000) { /* 10M skips the raw-LMDB comparator */
    raw_lmdb_rate(db, dir);
    snprintf(raw, sizeof(raw), "%s/raw-lmdb", dir);
    raw_used = lmdb_used_bytes(raw);
  }
  figure("lmdb_bytes_per_token", used / (double)ntokens, "B",
         raw_used / (double)ntokens);
  lookups(db);
  replica_ready(ctkn, brokers, stopic, db, dir, rootpub);
  write_cursors(dir);
  free(tokens);
  free(token_ids);
}

int main(int argc, char **argv)
{
  if (argc != 6 && !(argc == 7 && strcmp(argv[6], "scale") == 0)) {
    fprintf(stderr, "usage: bench CTKN_BIN BROKERS TOPIC DIR N [scale]\n");
    return 2;
  }
  const char *ctkn = argv[1], *brokers = argv[2], *topic = argv[3];
  size_t n = strtoul(argv[5], NULL, 10);
  char db[4096], wtopic[256], wdb[4200], produce[4200], cmd[16384];
  const char *slash = strrchr(argv[0], '/');

  /* bench/produce lives beside this program. */
  snprintf(produce, sizeof(produce), "%.*s/produce",
           slash ? (int)(slash - argv[0]) : 1, slash ? argv[0] : ".");
  int32_t nparts = 6;

  if (argc == 7) {
    scale(ctkn, brokers, topic, argv[4], n, nparts);
    return 0;
  }
  char stopic[300], rootpub[4200];
  ctkn_seckey *writer;
  /* The physical limits: raw produce and consume of unsigned records,
   * which no ctkn reader would accept, on TOPIC itself. */
  fill(brokers, topic, nparts, n, NULL);
  figure("raw_librdkafka_consume", raw_consume(brokers, topic, nparts, n),
         "events/s", 0);
  free(tokens);
  free(token_ids);
  ntokens = 0;
  snprintf(stopic, sizeof(stopic), "%s-signed", topic);
  snprintf(db, sizeof(db), "%s/projection-signed", argv[4]);
  ctkn_signer *sg =
      signed_topic(ctkn, brokers, stopic, argv[4], nparts, rootpub, &writer);
  signed_fill_catch_up(ctkn, brokers, stopic, db, rootpub, n, nparts, sg);
  ctkn_signer_close(sg);
  ctkn_seckey_free(writer);
  double lmdb = raw_lmdb_rate(db, argv[4]);
  figure("raw_lmdb_same_writes", lmdb, "events/s", 0);
  figure("projector_catch_up_vs_lmdb", projector_rate, "events/s", lmdb);
  lookups(db);
  replica_ready(ctkn, brokers, stopic, db, argv[4], rootpub);
  signed_writes_setup(ctkn, brokers, topic, argv[4], wtopic, sizeof(wtopic),
                      wdb, sizeof(wdb));
  snprintf(cmd, sizeof(cmd),
           "%s init --brokers %s --topic %s-raw --db %s/raw-once "
           "--partitions 6 >/dev/null",
           ctkn, brokers, wtopic, argv[4]);
  if (system(cmd) != 0)
    die("the raw one-shot topic");
  commands(ctkn, produce, brokers, wtopic, wdb);
  batch_commands(ctkn, brokers, wtopic, wdb, fill_rate);
  free(tokens);
  free(token_ids);
  return 0;
}
