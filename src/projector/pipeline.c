/*
 * pipeline.c - a long catch-up on two threads (ctkn_projector_catch_up()
 * at least PIPE_MIN_LAG records behind).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "projector/projector_int.h"
#include <pthread.h>
#include <stdatomic.h>

#include "codec/handover.h"
#include "store/shared.h"

/* ---- pipelined catch-up ----------------------------------------------
 *
 * A long catch-up runs on two threads: a reader polls and copies each
 * record (its key, value, headers and timestamp: what the log gave, no
 * more) into a buffer, and hands full buffers over; the calling thread
 * decodes and applies each buffer in one write transaction, exactly as a
 * batch polled on one thread. Buffers carry copies, so librdkafka's
 * messages are released as soon as they are read. Buffers travel on two
 * work queues: empty ones to the reader, filled ones to the applier.
 *
 * Flow control: with every buffer taken the reader stops polling and
 * librdkafka's bounded queue fills. librdkafka 2.0.2 then backs the
 * partitions off for a whole second (librdkafka #2879). So, on such a log
 * (ctkn__consumer_long_backoff()), once the reader has room but nothing
 * has come for PIPE_IDLE_MS after it had to wait for a buffer, it assigns
 * the partitions again at the offsets after its last records (which ends
 * the back-off; the queue is empty then, so nothing is dropped); when it
 * has not waited, it restarts only after PIPE_STUCK_MS without a record.
 * Built against librdkafka 2.2.0 or later, src/log/kafka.c shortens the
 * back-off to 20 ms (fetch.queue.backoff.ms) and there is no restart:
 * measured there, putting it back gave no consistent gain, while on 2.0.2
 * a build without it ran at 0.52-0.85 of the shipped rate
 * (docs/architecture.md, "The pipelined catch-up: librdkafka
 * workarounds, measured"). Memory stays bounded by PIPE_BUFS buffers and
 * librdkafka's queue bounds.
 */
#define PIPE_BUFS     3
#define PIPE_IDLE_MS  20  /* no record this long after a stall: restart */
#define PIPE_STUCK_MS 250 /* no record for this long: restart anyway */

/* What the reader made of a record. */
enum { ITEM_EVENT, ITEM_BAD, ITEM_NEWER };

/* One record in a buffer's arena, followed by its key, its value, its
 * headers (nheaders struct phdr, then their names and values), and then,
 * for ITEM_EVENT, the decoded event in the codec's hand-over form, or for
 * ITEM_BAD the quarantine reason (extra_len bytes either way). */
struct item {
  int64_t offset;
  int64_t timestamp_ms;
  int32_t partition;
  uint32_t klen, vlen, nheaders, extra_len;
  bool key_null, value_null;
  uint8_t kind;
  uint32_t extra_at; /* where the extra bytes start, from the item */
};

struct phdr {
  uint32_t name_len, value_len;
  bool value_null;
};

struct pbuf {
  struct ctkn__qnode node; /* on the free or the ready queue */
  struct ctkn__buf arena;  /* the items, each 8-byte aligned */
  size_t at[BATCH_MAX];    /* each item's place in the arena */
  size_t n;
};

struct pipe {
  struct ctkn__queue ready; /* filled buffers, to the applier */
  struct ctkn__queue free;  /* empty buffers, to the reader */
  struct pbuf *buf[PIPE_BUFS];
  atomic_bool applier_idle; /* the applier waits: hand over what there is */
  /* The reader's error, written before it closes ready. */
  int rc;
  struct ctkn_err err;
  /* The reader's own. */
  ctkn_consumer *consumer;
  struct ctkn_log_msg *msgs;
  int32_t nparts;
  int64_t *next; /* after the last record read, per partition */
  /* The applier's views of the buffer it applies, one per record: the
   * trust gate borrows a record's view until it comes out (trust.h), so
   * each stays put for the whole batch. */
  struct pbuf *cur;
  struct ctkn_log_msg views[BATCH_MAX];
  struct ctkn__buf hview; /* the views' headers */
  /* The reader's: each record is decoded and checked here, on the
   * reader's thread, so that the applier (the catch-up's bottleneck) need
   * only copy it back out. */
  struct ctkn_event *scratch;
};

static void put_bytes(struct ctkn__buf *a, const void *p, size_t n)
{
  /* Room was reserved by pbuf_add(). */
  if (n > 0)
    memcpy(a->data + a->len, p, n);
  a->len += n;
}

/* Copy record m into b, with what decoding it gave: the event in the
 * codec's hand-over form, or why it does not decode. CTKN_ENOMEM when it
 * does not fit in memory. */
static int pbuf_add(struct pipe *pp, struct pbuf *b,
                    const struct ctkn_log_msg *m)
{
  struct item it = {.offset = m->offset,
                    .timestamp_ms = m->timestamp_ms,
                    .partition = m->partition,
                    .klen = (uint32_t)m->key_len,
                    .vlen = (uint32_t)m->value_len,
                    .nheaders = (uint32_t)m->nheaders,
                    .key_null = m->key == NULL,
                    .value_null = m->value == NULL,
                    .kind = ITEM_EVENT};
  struct ctkn_err derr;
  size_t need = 8 + sizeof(it) + m->key_len + m->value_len +
                m->nheaders * sizeof(struct phdr);

  if (m->schema_version > CTKN_SCHEMA_VERSION) {
    it.kind = ITEM_NEWER; /* the applier pauses there */
  } else if (ctkn_projector_decode(m, pp->scratch, &derr) != CTKN_OK) {
    it.kind = ITEM_BAD;
    it.extra_len = (uint32_t)strlen(derr.msg);
  } else {
    it.extra_len = (uint32_t)ctkn__event_packed_size(pp->scratch);
  }
  for (size_t i = 0; i < m->nheaders; i++)
    need += strlen(m->headers[i].name) + 1 + m->headers[i].size;
  need += it.extra_len;
  if (ctkn__buf_reserve(&b->arena, need) != CTKN_OK)
    return CTKN_ENOMEM;
  b->arena.len = (b->arena.len + 7) & ~(size_t)7; /* items stay aligned */
  size_t start = b->arena.len;
  b->at[b->n++] = start;
  put_bytes(&b->arena, &it, sizeof(it));
  put_bytes(&b->arena, m->key, m->key_len);
  put_bytes(&b->arena, m->value, m->value_len);
  for (size_t i = 0; i < m->nheaders; i++) {
    const struct ctkn_log_header *h = &m->headers[i];
    struct phdr ph = {(uint32_t)strlen(h->name), (uint32_t)h->size,
                      h->value == NULL};
    put_bytes(&b->arena, &ph, sizeof(ph));
  }
  for (size_t i = 0; i < m->nheaders; i++) {
    const struct ctkn_log_header *h = &m->headers[i];
    put_bytes(&b->arena, h->name, strlen(h->name) + 1); /* with its NUL */
    put_bytes(&b->arena, h->value, h->value ? h->size : 0);
  }
  /* The item is written already: note where its extra bytes go. */
  ((struct item *)(void *)(b->arena.data + start))->extra_at =
      (uint32_t)(b->arena.len - start);
  if (it.kind == ITEM_EVENT)
    ctkn__event_pack(pp->scratch, (uint8_t *)b->arena.data + b->arena.len);
  else if (it.kind == ITEM_BAD)
    memcpy(b->arena.data + b->arena.len, derr.msg, it.extra_len);
  b->arena.len += it.extra_len;
  return CTKN_OK;
}

/* What the reader's decode of record i gave, as ctkn_projector_decode()
 * would give it. */
static int pipe_decode(struct source *s, size_t i, struct ctkn_event *ev,
                       struct ctkn_err *err)
{
  struct pipe *pp = s->arg;
  const uint8_t *p = (const uint8_t *)pp->cur->arena.data + pp->cur->at[i];
  const struct item *it = (const struct item *)(const void *)p;
  const uint8_t *extra = p + it->extra_at;

  if (it->kind == ITEM_EVENT) {
    ctkn__event_unpack(extra, ev);
    return CTKN_OK;
  }
  size_t n =
      it->extra_len < sizeof(err->msg) ? it->extra_len : sizeof(err->msg) - 1;
  err->code = CTKN_EDECODE;
  err->field[0] = '\0';
  memcpy(err->msg, extra, n);
  err->msg[n] = '\0';
  return CTKN_EDECODE;
}

/* Record i of the buffer being applied, as the log gave it (its view,
 * made by pipe_views()). */
static const struct ctkn_log_msg *pipe_msg(struct source *s, size_t i)
{
  struct pipe *pp = s->arg;

  return &pp->views[i];
}

/* A view of every record of b, in pp->views, its headers in pp->hview.
 * CTKN_ENOMEM when they do not fit in memory. */
static int pipe_views(struct pipe *pp, struct pbuf *b)
{
  struct ctkn_log_header *hs;
  size_t total = 0;

  for (size_t i = 0; i < b->n; i++)
    total += ((const struct item *)(const void *)(b->arena.data + b->at[i]))
                 ->nheaders;
  ctkn__buf_reset(&pp->hview);
  if ((hs = ctkn__buf_add(&pp->hview, (total ? total : 1) * sizeof(*hs))) ==
      NULL)
    return CTKN_ENOMEM;
  for (size_t i = 0; i < b->n; i++) {
    const uint8_t *p = (const uint8_t *)b->arena.data + b->at[i];
    const struct item *it = (const struct item *)(const void *)p;
    struct ctkn_log_msg *m = &pp->views[i];

    memset(m, 0, sizeof(*m));
    p += sizeof(*it);
    m->partition = it->partition;
    m->offset = it->offset;
    m->timestamp_ms = it->timestamp_ms;
    m->key = it->key_null ? NULL : p;
    m->key_len = it->klen;
    m->value = it->value_null ? NULL : p + it->klen;
    m->value_len = it->vlen;
    p += it->klen + it->vlen;
    /* The header descriptors follow the bytes of the key and value, so
     * they are not aligned: copy each out. */
    const char *bytes = (const char *)p + it->nheaders * sizeof(struct phdr);
    for (uint32_t k = 0; k < it->nheaders; k++) {
      struct phdr ph;
      memcpy(&ph, p + k * sizeof(ph), sizeof(ph));
      hs[k].name = bytes; /* kept with its NUL */
      bytes += ph.name_len + 1;
      hs[k].value = ph.value_null ? NULL : bytes;
      hs[k].size = ph.value_len;
      bytes += ph.value_len;
    }
    m->headers = hs;
    m->nheaders = it->nheaders;
    hs += it->nheaders;
    ctkn_log_msg_note_headers(m);
  }
  return CTKN_OK;
}

/* Hand b to the applier. */
static void pipe_hand_over(struct pipe *pp, struct pbuf **b)
{
  ctkn__queue_push(&pp->ready, &(*b)->node);
  *b = NULL;
}

/* Take an empty buffer, waiting while the applier holds them all.
 * *stalled: had to wait (librdkafka's queue fills meanwhile). NULL once
 * the applier stops the pipeline. */
static struct pbuf *pipe_take_free(struct pipe *pp, bool *stalled)
{
  struct ctkn__qnode *node;

  if (ctkn__queue_len(&pp->free) == 0)
    *stalled = true;
  while (ctkn__queue_pop(&pp->free, &node, 1, 100) == 0) {
    if (ctkn__queue_closed(&pp->free))
      return NULL;
  }
  return CTKN__CONTAINER_OF(node, struct pbuf, node);
}

/* Copy a poll's records into b and note how far each partition got. */
static int pipe_fill(struct pipe *pp, struct pbuf *b, size_t got,
                     struct ctkn_err *err)
{
  for (size_t i = 0; i < got; i++) {
    const struct ctkn_log_msg *m = &pp->msgs[i];
    if (pbuf_add(pp, b, m) != CTKN_OK)
      return ctkn__err(err, CTKN_ENOMEM, "projector: record buffer");
    if (m->partition >= 0 && m->partition < pp->nparts &&
        m->offset + 1 > pp->next[m->partition])
      pp->next[m->partition] = m->offset + 1;
  }
  return CTKN_OK;
}

/* The reader's timers across polls. */
struct pipe_clock {
  int64_t idle_since; /* the last record, or restart */
  bool stalled;       /* waited for a buffer: librdkafka's queue filled */
};

/* Measurement builds only: -DCTKN_PIPE_NO_RESTART leaves the restart
 * below out, to measure what it buys (figures and commands in
 * docs/architecture.md, "The pipelined catch-up: librdkafka workarounds,
 * measured"); -DCTKN_PIPE_FORCE_WORKAROUNDS puts it back in a build
 * against librdkafka 2.2.0 or later (src/log/kafka_int.h). */
#ifdef CTKN_PIPE_NO_RESTART
#define PIPE_RESTART 0
#else
#define PIPE_RESTART 1
#endif

/* Nothing came: restart the fetch if it is backing off (above). */
static int pipe_unstick(struct pipe *pp, struct pipe_clock *k,
                        struct ctkn_err *err)
{
  int64_t now = ctkn__now_ms(), idle = now - k->idle_since;

  if (PIPE_RESTART && ctkn__consumer_long_backoff(pp->consumer) &&
      ((k->stalled && idle >= PIPE_IDLE_MS) || idle >= PIPE_STUCK_MS)) {
    /* Room, nothing queued, and librdkafka's queue filled up earlier (or
     * nothing came for long): it is backing off. Restarting the fetch at
     * the next offsets ends that. Not sooner, which would only throw away
     * fetches in flight. */
    k->stalled = false;
    k->idle_since = now;
    return ctkn_consumer_assign(pp->consumer, pp->next, pp->nparts, err);
  }
  return CTKN_OK;
}

/* Poll once into b. A record restarts the idle clock; nothing at all may
 * unstick the fetch. *got: the records polled. */
static int pipe_read(struct pipe *pp, struct pbuf *b, struct pipe_clock *k,
                     size_t *got, struct ctkn_err *err)
{
  int rc = ctkn_consumer_poll(pp->consumer, b->n > 0 ? 5 : 20, pp->msgs,
                              BATCH_MAX - b->n, got, err);

  if (rc == CTKN_OK)
    rc = pipe_fill(pp, b, *got, err);
  if (rc == CTKN_OK && *got > 0)
    k->idle_since = ctkn__now_ms();
  else if (rc == CTKN_OK)
    rc = pipe_unstick(pp, k, err);
  return rc;
}

static void *pipe_reader(void *arg)
{
  struct pipe *pp = arg;
  struct pipe_clock k = {ctkn__now_ms(), false};
  struct ctkn_err err = {0};
  struct pbuf *b = NULL;
  int rc = CTKN_OK;

  /* The applier closes the free queue to stop the reader. */
  while (!ctkn__queue_closed(&pp->free)) {
    if (b == NULL && (b = pipe_take_free(pp, &k.stalled)) == NULL)
      break;
    if (b->n > 0 && atomic_load(&pp->applier_idle)) {
      pipe_hand_over(pp, &b);
      continue;
    }
    size_t got = 0;
    if ((rc = pipe_read(pp, b, &k, &got, &err)) != CTKN_OK)
      break;
    /* Full, or nothing more to read for now: the applier may have it. */
    if (b->n == BATCH_MAX || (got == 0 && b->n > 0))
      pipe_hand_over(pp, &b);
  }
  if (b != NULL && b->n > 0)
    pipe_hand_over(pp, &b);
  pp->rc = rc;
  pp->err = err;
  /* The close publishes rc to the applier (the queue's lock orders it). */
  ctkn__queue_close(&pp->ready);
  return NULL;
}

static void pipe_free(struct pipe *pp)
{
  for (int i = 0; i < PIPE_BUFS; i++) {
    if (pp->buf[i] != NULL)
      ctkn__buf_free(&pp->buf[i]->arena);
    free(pp->buf[i]);
  }
  ctkn__buf_free(&pp->hview);
  free(pp->next);
  free(pp->scratch);
  ctkn__queue_destroy(&pp->ready);
  ctkn__queue_destroy(&pp->free);
  free(pp);
}

static struct pipe *pipe_new(ctkn_projector *p)
{
  struct pipe *pp = calloc(1, sizeof(*pp));

  if (pp == NULL)
    return NULL;
  if (ctkn__queue_init(&pp->ready) != CTKN_OK) {
    free(pp);
    return NULL;
  }
  if (ctkn__queue_init(&pp->free) != CTKN_OK) {
    ctkn__queue_destroy(&pp->ready);
    free(pp);
    return NULL;
  }
  pp->consumer = p->consumer;
  pp->msgs = p->msgs;
  pp->nparts = p->nparts;
  bool ok =
      (pp->next = malloc((size_t)p->nparts * sizeof(*pp->next))) != NULL &&
      (pp->scratch = malloc(sizeof(*pp->scratch))) != NULL;
  for (int i = 0; ok && i < PIPE_BUFS; i++) {
    ok = (pp->buf[i] = calloc(1, sizeof(*pp->buf[i]))) != NULL;
    if (ok)
      ctkn__queue_push(&pp->free, &pp->buf[i]->node);
  }
  if (!ok) {
    pipe_free(pp);
    return NULL;
  }
  memcpy(pp->next, p->pos, (size_t)p->nparts * sizeof(*pp->next));
  return pp;
}

/* Apply one buffer and advance the consumed positions. */
static int pipe_apply(ctkn_projector *p, struct pipe *pp, struct pbuf *b,
                      struct ctkn_err *err)
{
  struct source src = {b->n, pipe_msg, pipe_decode, pp};
  int rc;

  pp->cur = b;
  if (pipe_views(pp, b) != CTKN_OK)
    return ctkn__err(err, CTKN_ENOMEM, "projector: out of memory reading");
  if ((rc = ctkn__projector_apply_source(p->st, p->env, p->trust, &src,
                                         p->paused, p->nparts, &p->stats,
                                         err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < b->n; i++) {
    const struct item *it =
        (const struct item *)(const void *)(b->arena.data + b->at[i]);
    int32_t part = it->partition;
    if (part < p->nparts && !p->paused[part] && it->offset + 1 > p->pos[part])
      p->pos[part] = it->offset + 1;
  }
  ctkn__projector_clamp_held(p);
  ctkn__projector_advanced(p);
  return CTKN_OK;
}

/* Whether every partition that is not paused has reached hi. */
static bool reached(const ctkn_projector *p, const int64_t *hi)
{
  for (int32_t i = 0; i < p->nparts; i++)
    if (!p->paused[i] && p->pos[i] < hi[i])
      return false;
  return true;
}

/* The applier's side: apply what the reader hands over until hi. */
static int pipe_drive(ctkn_projector *p, struct pipe *pp, const int64_t *hi,
                      struct ctkn_err *err)
{
  int64_t deadline = ctkn__now_ms() + p->cfg->timeout_ms;

  while (!reached(p, hi)) {
    struct ctkn__qnode *node;
    int64_t left = deadline - ctkn__now_ms();
    atomic_store(&pp->applier_idle, true);
    size_t got = ctkn__queue_pop(&pp->ready, &node, 1,
                                 left <= 0    ? 0
                                 : left < 100 ? (int)left
                                              : 100);
    atomic_store(&pp->applier_idle, false);
    if (got == 0) {
      if (ctkn__queue_closed(&pp->ready)) {
        if (pp->rc != CTKN_OK) {
          if (err != NULL)
            *err = pp->err;
          return pp->rc;
        }
        return ctkn__err(err, CTKN_EINTERNAL, "projector: the reader stopped");
      }
      if (ctkn__now_ms() >= deadline)
        return ctkn__err(err, CTKN_ETIMEOUT,
                         "projection made no progress for %d ms",
                         p->cfg->timeout_ms);
      continue;
    }
    struct pbuf *b = CTKN__CONTAINER_OF(node, struct pbuf, node);
    int rc = pipe_apply(p, pp, b, err);
    b->n = 0;
    ctkn__buf_reset(&b->arena);
    ctkn__queue_push(&pp->free, &b->node);
    if (rc != CTKN_OK)
      return rc;
    deadline = ctkn__now_ms() + p->cfg->timeout_ms;
  }
  return CTKN_OK;
}

/* ctkn_projector_catch_up() to hi[], on two threads. The partitions are
 * assigned at p->pos; afterwards the consumer stands past them. */
int ctkn__projector_catch_up_pipelined(ctkn_projector *p, const int64_t *hi,
                                       struct ctkn_err *err)
{
  struct pipe *pp = pipe_new(p);
  pthread_t reader;
  int rc;

  if (pp == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "projector: pipeline");
  /* The reader owns the consumer until it is joined. */
  p->assigned = false;
  /* Commit without waiting for the disk, flush once at the end. */
  if ((rc = ctkn__store_unsynced_begin(p->st, err)) != CTKN_OK) {
    pipe_free(pp);
    return rc;
  }
  if (pthread_create(&reader, NULL, pipe_reader, pp) != 0) {
    ctkn__store_unsynced_end(p->st, NULL);
    pipe_free(pp);
    return ctkn__err(err, CTKN_EINTERNAL, "projector: no reader thread");
  }
  rc = pipe_drive(p, pp, hi, err);
  /* Stop the reader: it takes no more buffers, hands over what it has. */
  ctkn__queue_close(&pp->free);
  pthread_join(reader, NULL);
  int src = ctkn__store_unsynced_end(p->st, rc == CTKN_OK ? err : NULL);
  if (rc == CTKN_OK)
    rc = src;
  pipe_free(pp);
  return rc;
}
