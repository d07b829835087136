/*
 * fake_log.c - the in-memory log (fake_log.h).
 *
 * One mutex guards everything; a condition variable wakes pollers when
 * records arrive. Records are allocated one by one and never move, so a
 * polled record stays valid for as long as the log lives (Kafka's
 * borrowed-until-next-poll is the weaker promise). A re-created topic keeps
 * its old partitions' records alive until the fake is freed, so borrowed
 * pointers never dangle.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_log.h"
#include "internal.h"
#include "log/backend.h"

/* Partitions a group or lease keeps offsets for. */
#define CTKN_STORE_MAX_PARTITIONS_FAKE 64

struct frec {
  struct ctkn_log_msg m; /* partition, offset, timestamp, key, value */
  struct ctkn_log_header *h;
};

struct fpart {
  struct frec **recs; /* recs[i] is offset start + i */
  size_t n, cap;
  int64_t start; /* first offset still in the log */
};

struct ftopic {
  char name[250];
  int32_t n;
  struct fpart *parts;
  struct ftopic *next;
  struct ftopic *old; /* generations before a re-creation, kept alive */
  unsigned gen;       /* the topic ID: each creation gets a new one */
};

struct fgroup {
  char name[250];
  char topic[250];
  int64_t committed[CTKN_STORE_MAX_PARTITIONS_FAKE];
  char meta[CTKN_STORE_MAX_PARTITIONS_FAKE][512];
  struct fgroup *next;
};

struct fake_log {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct ftopic *topics;
  unsigned gens;  /* topic IDs handed out */
  bool topic_ids; /* fake_log_topic_ids(): the log tells them */
  struct fgroup *groups;
  int fail_skip; /* records produced as usual before fail_sends start */
  int fail_sends, fail_send_rc;
  bool fail_appended;
  int fail_polls, fail_poll_rc;
  char fail_poll_topic[250]; /* "": any topic's consumers */
  bool hold_polls;           /* polls deliver nothing until released */
  int fail_queries, fail_query_rc;
  int fail_seeks, fail_seek_rc;
  int report_delay_ms;
  void (*on_send)(void *arg);
  void *on_send_arg;
  struct fake_log_stats stats;
};

struct fproducer {
  struct ctkn_producer base;
  struct fake_log *f;
  char topic[250];
};

struct fconsumer {
  struct ctkn_consumer base;
  struct fake_log *f;
  char topic[250];
  struct ctkn__consumer_opts opts;
  char group[250];
  int32_t n;      /* partitions known to pos */
  int64_t *pos;   /* next offset per partition; -1: not assigned */
  int32_t rr;     /* the partition the next poll starts from */
  bool joined;    /* group: the partitions were handed out */
  bool announced; /* lease: the holding was reported */
};

static const struct ctkn__log_backend fake_backend;

/* ---- the log ----------------------------------------------------------- */

struct fake_log *fake_log_new(void)
{
  struct fake_log *f = calloc(1, sizeof(*f));
  pthread_condattr_t ca;

  if (f == NULL)
    return NULL;
  pthread_mutex_init(&f->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->cv, &ca);
  pthread_condattr_destroy(&ca);
  return f;
}

static void free_parts(struct ftopic *t)
{
  for (int32_t p = 0; p < t->n; p++) {
    for (size_t i = 0; i < t->parts[p].n; i++) {
      struct frec *r = t->parts[p].recs[i];
      if (r == NULL)
        continue;
      for (size_t k = 0; k < r->m.nheaders; k++) {
        free((void *)r->h[k].name);
        free((void *)r->h[k].value);
      }
      free(r->h);
      free((void *)r->m.key);
      free((void *)r->m.value);
      free(r);
    }
    free(t->parts[p].recs);
  }
  free(t->parts);
}

static void free_topic(struct ftopic *t)
{
  while (t != NULL) {
    struct ftopic *old = t->old;
    free_parts(t);
    free(t);
    t = old;
  }
}

void fake_log_free(struct fake_log *f)
{
  if (f == NULL)
    return;
  while (f->topics != NULL) {
    struct ftopic *t = f->topics;
    f->topics = t->next;
    free_topic(t);
  }
  while (f->groups != NULL) {
    struct fgroup *g = f->groups;
    f->groups = g->next;
    free(g);
  }
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

void fake_log_use(struct fake_log *f, struct ctkn_log_config *cfg)
{
  cfg->backend = &fake_backend;
  cfg->backend_arg = f;
}

/* Locked. */
static struct ftopic *find_topic(struct fake_log *f, const char *name)
{
  for (struct ftopic *t = f->topics; t != NULL; t = t->next)
    if (strcmp(t->name, name) == 0)
      return t;
  return NULL;
}

/* Locked. */
static void grow_parts(struct ftopic *t, int32_t n)
{
  if (n <= t->n)
    return;
  struct fpart *parts = realloc(t->parts, (size_t)n * sizeof(*parts));
  if (parts == NULL)
    abort();
  memset(parts + t->n, 0, (size_t)(n - t->n) * sizeof(*parts));
  t->parts = parts;
  t->n = n;
}

void fake_log_create(struct fake_log *f, const char *topic, int32_t n)
{
  pthread_mutex_lock(&f->mu);
  struct ftopic *t = find_topic(f, topic);
  if (t != NULL) {
    /* Re-created: keep the old generation's records alive. */
    struct ftopic *old = malloc(sizeof(*old));
    if (old == NULL)
      abort();
    *old = *t;
    old->next = NULL;
    t->old = old;
    t->parts = NULL;
    t->n = 0;
  } else {
    if ((t = calloc(1, sizeof(*t))) == NULL)
      abort();
    ctkn__strlcpy(t->name, topic, sizeof(t->name));
    t->next = f->topics;
    f->topics = t;
  }
  t->gen = ++f->gens;
  grow_parts(t, n);
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

void fake_log_topic_ids(struct fake_log *f, bool on)
{
  pthread_mutex_lock(&f->mu);
  f->topic_ids = on;
  pthread_mutex_unlock(&f->mu);
}

void fake_log_add_partitions(struct fake_log *f, const char *topic, int32_t n)
{
  pthread_mutex_lock(&f->mu);
  struct ftopic *t = find_topic(f, topic);
  if (t != NULL)
    grow_parts(t, n);
  pthread_mutex_unlock(&f->mu);
}

void fake_log_delete_before(struct fake_log *f, const char *topic, int32_t p,
                            int64_t offset)
{
  pthread_mutex_lock(&f->mu);
  struct ftopic *t = find_topic(f, topic);
  if (t != NULL && p < t->n && offset > t->parts[p].start) {
    struct fpart *fp = &t->parts[p];
    int64_t end = fp->start + (int64_t)fp->n;
    if (offset > end)
      offset = end;
    /* The records stay allocated (borrowers may hold them); only the
     * log's start moves. */
    size_t drop = (size_t)(offset - fp->start);
    memmove(fp->recs, fp->recs + drop, (fp->n - drop) * sizeof(*fp->recs));
    fp->n -= drop;
    fp->start = offset;
  }
  pthread_mutex_unlock(&f->mu);
}

static void *dup_bytes(const void *p, size_t n)
{
  if (p == NULL)
    return NULL;
  void *d = malloc(n ? n : 1);
  if (d == NULL)
    abort();
  if (n > 0)
    memcpy(d, p, n);
  return d;
}

/* Locked. The offset of the new record, or -1 without that partition. */
static int64_t append(struct ftopic *t, int32_t p, const void *key, size_t klen,
                      const void *value, size_t vlen, int64_t ts_ms,
                      const struct ctkn_log_header *hs, size_t nh)
{
  if (t == NULL || p < 0 || p >= t->n)
    return -1;
  struct fpart *fp = &t->parts[p];
  if (fp->n == fp->cap) {
    size_t cap = fp->cap ? 2 * fp->cap : 64;
    struct frec **recs = realloc(fp->recs, cap * sizeof(*recs));
    if (recs == NULL)
      abort();
    fp->recs = recs;
    fp->cap = cap;
  }
  struct frec *r = calloc(1, sizeof(*r));
  if (r == NULL || (nh > 0 && (r->h = calloc(nh, sizeof(*r->h))) == NULL))
    abort();
  for (size_t i = 0; i < nh; i++) {
    r->h[i].name = strdup(hs[i].name);
    r->h[i].value = dup_bytes(hs[i].value, hs[i].size);
    r->h[i].size = hs[i].value != NULL ? hs[i].size : 0;
  }
  r->m.partition = p;
  r->m.offset = fp->start + (int64_t)fp->n;
  r->m.timestamp_ms = ts_ms;
  r->m.key = dup_bytes(key, klen);
  r->m.key_len = key != NULL ? klen : 0;
  r->m.value = dup_bytes(value, vlen);
  r->m.value_len = value != NULL ? vlen : 0;
  r->m.headers = r->h;
  r->m.nheaders = nh;
  ctkn_log_msg_note_headers(&r->m);
  fp->recs[fp->n++] = r;
  return r->m.offset;
}

int64_t fake_log_append(struct fake_log *f, const char *topic, int32_t p,
                        const void *key, size_t klen, const void *value,
                        size_t vlen, int64_t timestamp_ms,
                        const struct ctkn_log_header *headers, size_t nh)
{
  pthread_mutex_lock(&f->mu);
  int64_t off = append(find_topic(f, topic), p, key, klen, value, vlen,
                       timestamp_ms, headers, nh);
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  return off;
}

int64_t fake_log_end(struct fake_log *f, const char *topic, int32_t p)
{
  pthread_mutex_lock(&f->mu);
  struct ftopic *t = find_topic(f, topic);
  int64_t end = -1;
  if (t != NULL && p >= 0 && p < t->n)
    end = t->parts[p].start + (int64_t)t->parts[p].n;
  pthread_mutex_unlock(&f->mu);
  return end;
}

const struct ctkn_log_msg *
fake_log_record(struct fake_log *f, const char *topic, int32_t p, int64_t off)
{
  const struct ctkn_log_msg *m = NULL;

  pthread_mutex_lock(&f->mu);
  struct ftopic *t = find_topic(f, topic);
  if (t != NULL && p >= 0 && p < t->n && off >= t->parts[p].start &&
      off < t->parts[p].start + (int64_t)t->parts[p].n)
    m = &t->parts[p].recs[off - t->parts[p].start]->m;
  pthread_mutex_unlock(&f->mu);
  return m;
}

void fake_log_fail_sends(struct fake_log *f, int n, int rc, bool appended)
{
  fake_log_fail_sends_after(f, 0, n, rc, appended);
}

void fake_log_fail_sends_after(struct fake_log *f, int ok, int n, int rc,
                               bool appended)
{
  pthread_mutex_lock(&f->mu);
  f->fail_skip = ok;
  f->fail_sends = n;
  f->fail_send_rc = rc;
  f->fail_appended = appended;
  pthread_mutex_unlock(&f->mu);
}

void fake_log_hold_polls(struct fake_log *f, bool hold)
{
  pthread_mutex_lock(&f->mu);
  f->hold_polls = hold;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

void fake_log_fail_polls(struct fake_log *f, int n, int rc)
{
  fake_log_fail_polls_of(f, "", n, rc);
}

void fake_log_fail_polls_of(struct fake_log *f, const char *topic, int n,
                            int rc)
{
  pthread_mutex_lock(&f->mu);
  f->fail_polls = n;
  f->fail_poll_rc = rc;
  snprintf(f->fail_poll_topic, sizeof(f->fail_poll_topic), "%s", topic);
  pthread_mutex_unlock(&f->mu);
}

/* Locked. Whether c's next poll fails by injection. */
static bool poll_fails(const struct fake_log *f, const char *topic)
{
  return f->fail_polls > 0 && (f->fail_poll_topic[0] == '\0' ||
                               strcmp(f->fail_poll_topic, topic) == 0);
}

void fake_log_fail_queries(struct fake_log *f, int n, int rc)
{
  pthread_mutex_lock(&f->mu);
  f->fail_queries = n;
  f->fail_query_rc = rc;
  pthread_mutex_unlock(&f->mu);
}

void fake_log_fail_seeks(struct fake_log *f, int n, int rc)
{
  pthread_mutex_lock(&f->mu);
  f->fail_seeks = n;
  f->fail_seek_rc = rc;
  pthread_mutex_unlock(&f->mu);
}

void fake_log_delay_reports(struct fake_log *f, int ms)
{
  pthread_mutex_lock(&f->mu);
  f->report_delay_ms = ms;
  pthread_mutex_unlock(&f->mu);
}

void fake_log_on_send(struct fake_log *f, void (*fn)(void *arg), void *arg)
{
  pthread_mutex_lock(&f->mu);
  f->on_send = fn;
  f->on_send_arg = arg;
  pthread_mutex_unlock(&f->mu);
}

void fake_log_stats(struct fake_log *f, struct fake_log_stats *out)
{
  pthread_mutex_lock(&f->mu);
  *out = f->stats;
  pthread_mutex_unlock(&f->mu);
}

int64_t fake_log_committed(struct fake_log *f, const char *group,
                           const char *topic, int32_t p)
{
  int64_t off = -1;

  pthread_mutex_lock(&f->mu);
  for (struct fgroup *g = f->groups; g != NULL; g = g->next)
    if (strcmp(g->name, group) == 0 && strcmp(g->topic, topic) == 0 && p >= 0 &&
        p < CTKN_STORE_MAX_PARTITIONS_FAKE)
      off = g->committed[p];
  pthread_mutex_unlock(&f->mu);
  return off;
}

/* ---- the backend: admin and producer ------------------------------------ */

static struct fake_log *fake_of(const struct ctkn_log_config *cfg)
{
  return cfg->backend_arg;
}

static int missing(const char *topic, struct ctkn_err *err)
{
  return ctkn__err(err, CTKN_ENOTFOUND,
                   "topic %s does not exist (run ctkn init)", topic);
}

static int fake_create_topic(const struct ctkn_log_config *cfg, int partitions,
                             int replication_factor, bool *created,
                             int32_t *out_partitions, struct ctkn_err *err)
{
  struct fake_log *f = fake_of(cfg);

  (void)err;
  if (replication_factor > 1)
    return ctkn__err(err, CTKN_EINVAL,
                     "kafka: cannot create topic %s: replication factor %d "
                     "is larger than the 1 broker",
                     cfg->topic, replication_factor);
  pthread_mutex_lock(&f->mu);
  struct ftopic *t = find_topic(f, cfg->topic);
  *created = t == NULL;
  int32_t n = t != NULL ? t->n : partitions;
  pthread_mutex_unlock(&f->mu);
  if (*created)
    fake_log_create(f, cfg->topic, partitions);
  *out_partitions = n;
  return CTKN_OK;
}

static int fake_producer_open(ctkn_producer **out,
                              const struct ctkn_log_config *cfg,
                              struct ctkn_err *err)
{
  struct fake_log *f = fake_of(cfg);
  struct fproducer *p;

  pthread_mutex_lock(&f->mu);
  bool have = find_topic(f, cfg->topic) != NULL;
  if (have)
    f->stats.open_handles++;
  pthread_mutex_unlock(&f->mu);
  if (!have)
    return missing(cfg->topic, err);
  if ((p = calloc(1, sizeof(*p))) == NULL)
    abort();
  p->f = f;
  ctkn__strlcpy(p->topic, cfg->topic, sizeof(p->topic));
  *out = &p->base;
  return CTKN_OK;
}

static void fake_producer_close(ctkn_producer *base)
{
  struct fproducer *p = (struct fproducer *)base;

  pthread_mutex_lock(&p->f->mu);
  p->f->stats.open_handles--;
  pthread_mutex_unlock(&p->f->mu);
  free(p);
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* One record's fate. Locked. */
static int send_one(struct fake_log *f, struct ftopic *t,
                    struct ctkn_log_record *r, struct ctkn_err *e1)
{
  struct ctkn_log_header own[2];
  const struct ctkn_log_header *hs = r->headers;
  size_t nh = r->nheaders;
  char sv[16];
  int32_t p = r->partition;

  if (p < 0)
    p = ctkn_log_partition_for(r->key, r->klen, t->n);
  if (p >= t->n)
    return ctkn__err(e1, CTKN_EKAFKA, "kafka: topic %s has no partition %d",
                     t->name, (int)p);
  if (hs == NULL) {
    nh = 0;
    if (r->event_type != NULL)
      own[nh++] = (struct ctkn_log_header){CTKN_HDR_EVENT_TYPE, r->event_type,
                                           strlen(r->event_type)};
    if (r->schema_version >= 0) {
      snprintf(sv, sizeof(sv), "%d", r->schema_version);
      own[nh++] = (struct ctkn_log_header){CTKN_HDR_SCHEMA, sv, strlen(sv)};
    }
    hs = own;
  }
  bool fail = f->fail_sends > 0 && f->fail_skip == 0;
  if (fail)
    f->fail_sends--;
  else if (f->fail_skip > 0)
    f->fail_skip--;
  if (!fail || f->fail_appended) {
    r->out_offset = append(t, p, r->key, r->klen, r->value, r->vlen,
                           r->timestamp_ms, hs, nh);
    r->out_partition = p;
    f->stats.produced++;
  }
  if (fail) {
    r->out_partition = -1;
    r->out_offset = -1;
    return ctkn__err(e1, f->fail_send_rc, "fake: injected failure%s",
                     f->fail_appended ? " (the record is in "
                                        "the log)"
                                      : "");
  }
  return CTKN_OK;
}

/* The records are appended at the start, as librdkafka may send them
 * at once; the reports come at the finish, the delay after the start. */
struct fticket {
  int rc;
  struct ctkn_err err;
  struct timespec due;
};

static int fake_send_now(ctkn_producer *base, struct ctkn_log_record *recs,
                         size_t n, int *delay, struct ctkn_err *err);

static int fake_send_batch(ctkn_producer *base, struct ctkn_log_record *recs,
                           size_t n, struct ctkn_err *err)
{
  int delay;
  int rc = fake_send_now(base, recs, n, &delay, err);

  if (delay > 0)
    sleep_ms(delay);
  return rc;
}

static int fake_send_start(ctkn_producer *base, struct ctkn_log_record *recs,
                           size_t n, void **out, struct ctkn_err *err)
{
  struct fticket *t = calloc(1, sizeof(*t));
  int delay;

  *out = NULL;
  if (t == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "fake: out of memory");
  t->rc = fake_send_now(base, recs, n, &delay, &t->err);
  clock_gettime(CLOCK_MONOTONIC, &t->due);
  t->due.tv_nsec += (long)delay * 1000000L;
  t->due.tv_sec += t->due.tv_nsec / 1000000000L;
  t->due.tv_nsec %= 1000000000L;
  *out = t;
  return CTKN_OK;
}

static int fake_send_finish(ctkn_producer *base, void *ticket,
                            struct ctkn_err *err)
{
  struct fticket *t = ticket;
  int rc = t->rc;

  (void)base;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t->due, NULL) ==
         EINTR)
    ;
  if (rc != CTKN_OK && err != NULL)
    *err = t->err;
  free(t);
  return rc;
}

static int fake_send_now(ctkn_producer *base, struct ctkn_log_record *recs,
                         size_t n, int *delay_out, struct ctkn_err *err)
{
  struct fproducer *p = (struct fproducer *)base;
  struct fake_log *f = p->f;
  int first = CTKN_OK;

  pthread_mutex_lock(&f->mu);
  void (*hook)(void *) = f->on_send;
  void *hook_arg = f->on_send_arg;
  int delay = f->report_delay_ms;
  f->stats.sends++;
  pthread_mutex_unlock(&f->mu);
  if (hook != NULL)
    hook(hook_arg);

  pthread_mutex_lock(&f->mu);
  struct ftopic *t = find_topic(f, p->topic);
  for (size_t i = 0; i < n; i++) {
    struct ctkn_err e1;
    recs[i].out_partition = -1;
    recs[i].out_offset = -1;
    recs[i].rc =
        t == NULL ? missing(p->topic, &e1) : send_one(f, t, &recs[i], &e1);
    if (recs[i].rc != CTKN_OK && first == CTKN_OK) {
      first = recs[i].rc;
      if (err != NULL)
        *err = e1;
    }
  }
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  *delay_out = delay;
  return first;
}

/* ---- the backend: consumer ---------------------------------------------- */

static struct fconsumer *fc(ctkn_consumer *base)
{
  return (struct fconsumer *)base;
}

/* Locked. A group's state, made on first use. */
static struct fgroup *find_group(struct fake_log *f, const char *name,
                                 const char *topic)
{
  for (struct fgroup *g = f->groups; g != NULL; g = g->next)
    if (strcmp(g->name, name) == 0 && strcmp(g->topic, topic) == 0)
      return g;
  struct fgroup *g = calloc(1, sizeof(*g));
  if (g == NULL)
    abort();
  ctkn__strlcpy(g->name, name, sizeof(g->name));
  ctkn__strlcpy(g->topic, topic, sizeof(g->topic));
  for (int i = 0; i < CTKN_STORE_MAX_PARTITIONS_FAKE; i++)
    g->committed[i] = -1;
  g->next = f->groups;
  f->groups = g;
  return g;
}

/* Locked. Make pos hold n partitions (new ones unassigned). */
static void grow_pos(struct fconsumer *c, int32_t n)
{
  if (n <= c->n)
    return;
  int64_t *pos = realloc(c->pos, (size_t)n * sizeof(*pos));
  if (pos == NULL)
    abort();
  for (int32_t i = c->n; i < n; i++)
    pos[i] = -1;
  c->pos = pos;
  c->n = n;
}

static int fake_consumer_open(ctkn_consumer **out,
                              const struct ctkn_log_config *cfg,
                              const struct ctkn__consumer_opts *opts,
                              struct ctkn_err *err)
{
  struct fake_log *f = fake_of(cfg);
  struct fconsumer *c;

  pthread_mutex_lock(&f->mu);
  bool have = find_topic(f, cfg->topic) != NULL;
  if (have)
    f->stats.open_handles++;
  pthread_mutex_unlock(&f->mu);
  if (!have)
    return missing(cfg->topic, err);
  if ((c = calloc(1, sizeof(*c))) == NULL)
    abort();
  c->f = f;
  ctkn__strlcpy(c->topic, cfg->topic, sizeof(c->topic));
  c->opts = *opts;
  if (opts->group != NULL)
    ctkn__strlcpy(c->group, opts->group, sizeof(c->group));
  c->opts.group = c->group;
  *out = &c->base;
  return CTKN_OK;
}

static void fake_consumer_close(ctkn_consumer *base)
{
  struct fconsumer *c = fc(base);

  pthread_mutex_lock(&c->f->mu);
  c->f->stats.open_handles--;
  pthread_mutex_unlock(&c->f->mu);
  free(c->pos);
  free(c);
}

/* Locked. An injected query failure, if one is due. */
static int query_fault(struct fake_log *f, struct ctkn_err *err)
{
  if (f->fail_queries <= 0)
    return CTKN_OK;
  f->fail_queries--;
  return ctkn__err(err, f->fail_query_rc, "fake: injected query failure");
}

static int fake_topic_id(ctkn_consumer *base, char id[CTKN_TOPIC_ID_BUF],
                         struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);
  int rc;

  pthread_mutex_lock(&c->f->mu);
  struct ftopic *t = find_topic(c->f, c->topic);
  if ((rc = query_fault(c->f, err)) == CTKN_OK) {
    if (t == NULL)
      rc = missing(c->topic, err);
    else if (c->f->topic_ids)
      snprintf(id, CTKN_TOPIC_ID_BUF, "fake-%u", t->gen);
  }
  pthread_mutex_unlock(&c->f->mu);
  return rc;
}

static int fake_partitions(ctkn_consumer *base, int32_t *n,
                           struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);
  int rc;

  pthread_mutex_lock(&c->f->mu);
  struct ftopic *t = find_topic(c->f, c->topic);
  if ((rc = query_fault(c->f, err)) == CTKN_OK) {
    if (t == NULL)
      rc = missing(c->topic, err);
    else
      *n = t->n;
  }
  pthread_mutex_unlock(&c->f->mu);
  return rc;
}

static int fake_watermarks(ctkn_consumer *base, int32_t first, int32_t n,
                           int64_t *lo, int64_t *hi, struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);
  int rc;

  pthread_mutex_lock(&c->f->mu);
  c->f->stats.watermarks++;
  struct ftopic *t = find_topic(c->f, c->topic);
  rc = query_fault(c->f, err);
  for (int32_t i = 0; rc == CTKN_OK && i < n; i++) {
    int32_t p = first + i;
    if (t == NULL || p >= t->n) {
      rc = ctkn__err(err, CTKN_ENOTFOUND,
                     "topic %s has no partition %" PRId32 " (run ctkn init?)",
                     c->topic, p);
      break;
    }
    if (lo != NULL)
      lo[i] = t->parts[p].start;
    hi[i] = t->parts[p].start + (int64_t)t->parts[p].n;
  }
  pthread_mutex_unlock(&c->f->mu);
  return rc;
}

static int fake_offsets_after(ctkn_consumer *base, int64_t ts_ms,
                              int64_t *offsets, int32_t n, struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);
  int rc = CTKN_OK;

  pthread_mutex_lock(&c->f->mu);
  struct ftopic *t = find_topic(c->f, c->topic);
  for (int32_t p = 0; p < n; p++) {
    if (t == NULL || p >= t->n) {
      rc = missing(c->topic, err);
      break;
    }
    const struct fpart *fp = &t->parts[p];
    offsets[p] = fp->start + (int64_t)fp->n;
    for (size_t i = 0; i < fp->n; i++) {
      if (fp->recs[i]->m.timestamp_ms > ts_ms) {
        offsets[p] = fp->recs[i]->m.offset;
        break;
      }
    }
  }
  pthread_mutex_unlock(&c->f->mu);
  return rc;
}

static int fake_assign(ctkn_consumer *base, const int64_t *offsets, int32_t n,
                       struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);

  (void)err;
  pthread_mutex_lock(&c->f->mu);
  c->f->stats.assigns++;
  grow_pos(c, n);
  for (int32_t i = 0; i < c->n; i++)
    c->pos[i] = i < n && offsets[i] >= 0 ? offsets[i] : -1;
  pthread_mutex_unlock(&c->f->mu);
  return CTKN_OK;
}

static int fake_seek(ctkn_consumer *base, const int64_t *offsets, int32_t n,
                     struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);
  int rc = CTKN_OK;

  pthread_mutex_lock(&c->f->mu);
  if (c->f->fail_seeks > 0) {
    c->f->fail_seeks--;
    rc = ctkn__err(err, c->f->fail_seek_rc,
                   "kafka: seeking %s: Timed out waiting for 1 remaining "
                   "partition seek(s) to finish (fake)",
                   c->topic);
    n = 0;
  }
  for (int32_t i = 0; i < n; i++) {
    if (offsets[i] < 0)
      continue;
    if (i >= c->n || c->pos[i] < 0) {
      rc = ctkn__err(err, CTKN_EKAFKA,
                     "kafka: seeking %s [%" PRId32 "]: not assigned", c->topic,
                     i);
      break;
    }
    c->pos[i] = offsets[i];
  }
  pthread_mutex_unlock(&c->f->mu);
  return rc;
}

/* Locked. A group member's start on partition p where nothing is
 * committed. */
static int64_t group_start(const struct fconsumer *c, const struct fpart *fp)
{
  int64_t end = fp->start + (int64_t)fp->n;

  switch (c->opts.start) {
  case CTKN_START_BEGINNING:
    return fp->start;
  case CTKN_START_TIME:
    for (size_t i = 0; i < fp->n; i++)
      if (fp->recs[i]->m.timestamp_ms >= c->opts.start_ts_ms)
        return fp->recs[i]->m.offset;
    return end;
  case CTKN_START_END:
  default:
    return end;
  }
}

/* Locked. A group member (the only one) takes every partition. */
static void join(struct fconsumer *c, struct ftopic *t)
{
  struct fgroup *g = find_group(c->f, c->group, c->topic);

  grow_pos(c, t->n);
  for (int32_t p = 0; p < t->n; p++) {
    if (c->pos[p] >= 0)
      continue;
    int64_t committed =
        p < CTKN_STORE_MAX_PARTITIONS_FAKE ? g->committed[p] : -1;
    c->pos[p] = committed >= 0 ? committed : group_start(c, &t->parts[p]);
  }
  c->joined = true;
}

/* Where a consumer stands on one of its partitions, as a poll sees it. */
enum stand {
  ST_UNASSIGNED, /* not assigned: passed over */
  ST_UNKNOWN,    /* past the topic's partitions */
  ST_OUTSIDE,    /* an offset outside the log (retention, re-creation) */
  ST_RECORDS,    /* records to take */
  ST_AT_END      /* at the partition's end */
};

/* Locked. Where c stands on partition p (p < c->n) of t. The one walk
 * take() and pending() share. */
static enum stand standing(const struct fconsumer *c, const struct ftopic *t,
                           int32_t p)
{
  if (c->pos[p] < 0)
    return ST_UNASSIGNED;
  if (p >= t->n)
    return ST_UNKNOWN;
  const struct fpart *fp = &t->parts[p];
  int64_t end = fp->start + (int64_t)fp->n;
  if (c->pos[p] < fp->start || c->pos[p] > end)
    return ST_OUTSIDE;
  return c->pos[p] < end ? ST_RECORDS : ST_AT_END;
}

/* Locked. Take ready records into msgs, round robin over partitions. */
static int take(struct fconsumer *c, struct ftopic *t,
                struct ctkn_log_msg *msgs, size_t max, size_t *n,
                struct ctkn_err *err)
{
  for (int32_t k = 0; k < c->n && *n < max; k++) {
    int32_t p = (c->rr + k) % c->n;
    enum stand s = standing(c, t, p);
    if (s == ST_UNASSIGNED)
      continue;
    if (s == ST_UNKNOWN)
      return ctkn__err(err, CTKN_EKAFKA,
                       "kafka: consuming %s/%" PRId32 ": unknown partition",
                       c->topic, p);
    const struct fpart *fp = &t->parts[p];
    int64_t end = fp->start + (int64_t)fp->n;
    if (s == ST_OUTSIDE) {
      if (*n > 0)
        return CTKN_OK; /* the records first, the error next time */
      int64_t at = c->pos[p];
      c->pos[p] = -1;
      return ctkn__err(err, CTKN_EKAFKA,
                       "kafka: %s/%" PRId32 ": the stored offset %" PRId64
                       " is outside the log (the topic may have been "
                       "deleted and re-created): Broker: Offset out of range",
                       c->topic, p, at);
    }
    /* A few records per partition per turn, as fetches interleave. */
    for (int i = 0; i < 64 && c->pos[p] < end && *n < max; i++)
      msgs[(*n)++] = fp->recs[c->pos[p]++ - fp->start]->m;
  }
  if (c->n > 0)
    c->rr = (c->rr + 1) % c->n;
  return CTKN_OK;
}

static int fake_poll(ctkn_consumer *base, int timeout_ms,
                     struct ctkn_log_msg *msgs, size_t max, size_t *n,
                     struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);
  struct fake_log *f = c->f;
  struct timespec until;
  int rc = CTKN_OK;

  clock_gettime(CLOCK_MONOTONIC, &until);
  int64_t ns =
      until.tv_nsec + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
  until.tv_sec += (time_t)(ns / 1000000000);
  until.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&f->mu);
  f->stats.polls++;
  if (poll_fails(f, c->topic)) {
    f->fail_polls--;
    rc = ctkn__err(err, f->fail_poll_rc, "fake: injected poll failure");
    pthread_mutex_unlock(&f->mu);
    return rc;
  }
  for (;;) {
    struct ftopic *t = find_topic(f, c->topic);
    if (t == NULL) {
      rc = missing(c->topic, err);
      break;
    }
    if (c->opts.kind == CTKN__CONSUMER_GROUP && !c->joined)
      join(c, t);
    if (!f->hold_polls &&
        ((rc = take(c, t, msgs, max, n, err)) != CTKN_OK || *n > 0))
      break;
    if (pthread_cond_timedwait(&f->cv, &f->mu, &until) != 0)
      break;
  }
  pthread_mutex_unlock(&f->mu);
  return rc;
}

/* Locked. Whether c's next poll has something: a record, an error (an
 * offset outside its partition, a missing topic, an injected failure). */
static bool pending(struct fconsumer *c)
{
  struct ftopic *t = find_topic(c->f, c->topic);

  if (poll_fails(c->f, c->topic) || t == NULL)
    return true;
  if (c->f->hold_polls)
    return false;
  if (c->opts.kind == CTKN__CONSUMER_GROUP && !c->joined)
    join(c, t);
  for (int32_t p = 0; p < c->n; p++) {
    enum stand s = standing(c, t, p);
    if (s != ST_UNASSIGNED && s != ST_AT_END)
      return true; /* records, or an error to report */
  }
  return false;
}

static int fake_wait(ctkn_consumer *const *cs, size_t n, int timeout_ms,
                     size_t *ready, struct ctkn_err *err)
{
  struct fake_log *f = fc(cs[0])->f;
  struct timespec until;

  (void)err;
  *ready = n;
  clock_gettime(CLOCK_MONOTONIC, &until);
  int64_t ns =
      until.tv_nsec + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
  until.tv_sec += (time_t)(ns / 1000000000);
  until.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&f->mu);
  f->stats.waits++;
  for (;;) {
    for (size_t i = 0; i < n && *ready == n; i++)
      if (pending(fc(cs[i])))
        *ready = i;
    if (*ready < n || pthread_cond_timedwait(&f->cv, &f->mu, &until) != 0)
      break;
  }
  pthread_mutex_unlock(&f->mu);
  return CTKN_OK;
}

static int fake_commit(ctkn_consumer *base, const struct ctkn_log_msg *msgs,
                       size_t n, struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);

  if (c->opts.kind != CTKN__CONSUMER_GROUP)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: not a group member");
  pthread_mutex_lock(&c->f->mu);
  struct fgroup *g = find_group(c->f, c->group, c->topic);
  for (size_t i = 0; i < n; i++) {
    int32_t p = msgs[i].partition;
    if (p >= 0 && p < CTKN_STORE_MAX_PARTITIONS_FAKE &&
        msgs[i].offset + 1 > g->committed[p])
      g->committed[p] = msgs[i].offset + 1;
  }
  pthread_mutex_unlock(&c->f->mu);
  return CTKN_OK;
}

/* ---- the backend: leases ------------------------------------------------- */

static int fake_lease_poll(ctkn_consumer *base, int timeout_ms, bool *owned,
                           int32_t n, bool *changed, struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);
  int rc = CTKN_OK;

  (void)timeout_ms;
  pthread_mutex_lock(&c->f->mu);
  struct ftopic *t = find_topic(c->f, c->topic);
  if (t == NULL)
    rc = missing(c->topic, err);
  /* The only member holds every partition. */
  *changed = rc == CTKN_OK && !c->announced;
  c->announced = rc == CTKN_OK;
  for (int32_t p = 0; p < n; p++)
    owned[p] = rc == CTKN_OK && p < t->n;
  pthread_mutex_unlock(&c->f->mu);
  return rc;
}

static int fake_lease_committed(ctkn_consumer *base, int32_t partition,
                                int64_t *offset, char *meta, size_t metasz,
                                struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);

  (void)err;
  pthread_mutex_lock(&c->f->mu);
  struct fgroup *g = find_group(c->f, c->group, c->topic);
  if (partition >= 0 && partition < CTKN_STORE_MAX_PARTITIONS_FAKE) {
    *offset = g->committed[partition];
    if (metasz > 0)
      ctkn__strlcpy(meta, g->meta[partition], metasz);
  }
  pthread_mutex_unlock(&c->f->mu);
  return CTKN_OK;
}

static int fake_lease_commit(ctkn_consumer *base, int32_t partition,
                             int64_t offset, const char *meta,
                             struct ctkn_err *err)
{
  struct fconsumer *c = fc(base);

  if (partition < 0 || partition >= CTKN_STORE_MAX_PARTITIONS_FAKE)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: partition %d not held",
                     (int)partition);
  pthread_mutex_lock(&c->f->mu);
  struct fgroup *g = find_group(c->f, c->group, c->topic);
  g->committed[partition] = offset;
  ctkn__strlcpy(g->meta[partition], meta != NULL ? meta : "",
                sizeof(g->meta[partition]));
  pthread_mutex_unlock(&c->f->mu);
  return CTKN_OK;
}

static const struct ctkn__log_backend fake_backend = {
    .name = "fake",
    .create_topic = fake_create_topic,
    .producer_open = fake_producer_open,
    .producer_close = fake_producer_close,
    .send_batch = fake_send_batch,
    .send_start = fake_send_start,
    .send_finish = fake_send_finish,
    .consumer_open = fake_consumer_open,
    .consumer_close = fake_consumer_close,
    .partitions = fake_partitions,
    .topic_id = fake_topic_id,
    .watermarks = fake_watermarks,
    .offsets_after = fake_offsets_after,
    .assign = fake_assign,
    .seek = fake_seek,
    .poll = fake_poll,
    .wait = fake_wait,
    /* As librdkafka 2.0.2 says: the pipelined catch-up's restart path runs
     * in the unit tests too (harmless here: nothing backs off). */
    .long_backoff = true,
    .commit = fake_commit,
    .lease_poll = fake_lease_poll,
    .lease_committed = fake_lease_committed,
    .lease_commit = fake_lease_commit,
};
