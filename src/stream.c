/*
 * stream.c - `ctkn tail`: the topic as webhook JSON lines.
 *
 * Alone: assign every partition at the start the caller chose (low
 * watermarks, high watermarks, or offsets-for-times) and read on. In a
 * group: subscribe, and after each poll's lines are written and flushed,
 * commit the offsets after them; only then poll again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctkn/codec.h"
#include "ctkn/projector.h"
#include "ctkn/settings.h"
#include "ctkn/stream.h"
#include "ctkn/trust.h"
#include "internal.h"

#define TAIL_BATCH 512

/* Alone: assign every partition where it starts (*starts) and say where
 * the log ends now (*ends). */
static int assign_alone(ctkn_consumer *c, const struct ctkn_tail_opts *o,
                        int64_t **starts, int64_t **ends, int32_t *nparts,
                        struct ctkn_err *err)
{
  int64_t *start = NULL, *hi = NULL, lo;
  int32_t n;
  int rc;

  if ((rc = ctkn_consumer_partitions(c, &n, err)) != CTKN_OK)
    return rc;
  start = calloc((size_t)n, sizeof(*start));
  hi = calloc((size_t)n, sizeof(*hi));
  if (n > 0 && (start == NULL || hi == NULL)) {
    rc = ctkn__err(err, CTKN_ENOMEM, "tail: partitions");
    goto out;
  }
  for (int32_t p = 0; p < n; p++) {
    if ((rc = ctkn_consumer_watermarks(c, p, &lo, &hi[p], err)) != CTKN_OK)
      goto out;
    start[p] = o->start == CTKN_START_BEGINNING ? lo : hi[p];
  }
  /* offsets_after(t) is the first record with a timestamp > t. */
  if (o->start == CTKN_START_TIME &&
      (rc = ctkn_consumer_offsets_after(c, o->from_ms - 1, start, n, err)) !=
          CTKN_OK)
    goto out;
  if ((rc = ctkn_consumer_assign(c, start, n, err)) != CTKN_OK)
    goto out;
  *nparts = n;
  *starts = start;
  *ends = hi;
  start = hi = NULL;
out:
  free(start);
  free(hi);
  return rc;
}

/* Write one record's line, or report why it has none. */
static int write_one(const struct ctkn_log_msg *m,
                     const struct ctkn_tail_opts *o, struct ctkn_event *ev,
                     FILE *out, struct ctkn_tail_stats *stats,
                     struct ctkn_err *err)
{
  struct ctkn_err derr;

  if (m->schema_version > CTKN_SCHEMA_VERSION)
    return ctkn__err(err, CTKN_EFORMAT,
                     "partition %" PRId32 " offset %" PRId64
                     ": schema version %d is newer than this build's %d; "
                     "upgrade ctkn and resume",
                     m->partition, m->offset, m->schema_version,
                     CTKN_SCHEMA_VERSION);
  if (ctkn_projector_decode(m, ev, &derr) != CTKN_OK) {
    ctkn__diag(CTKN_DIAG_WARN, "tail",
               "partition %" PRId32 " offset %" PRId64 " passed over: %s",
               m->partition, m->offset, derr.msg);
    stats->poison++;
    return CTKN_OK;
  }
  if (o->type_mask != 0 && !(o->type_mask & (1u << ev->type))) {
    stats->filtered++;
    return CTKN_OK;
  }
  char *json = ctkn_json_event(ev);
  if (json == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "tail: rendering an event");
  int w = fprintf(out, "%s\n", json);
  free(json);
  if (w < 0)
    return ctkn__err(err, CTKN_EIO, "tail: writing the output failed");
  stats->written++;
  return CTKN_OK;
}

/* One ctkn_tail(): the consumer, its records and where an exit_at_end
 * tail stops. */
struct tail {
  const struct ctkn_tail_opts *o;
  FILE *out;
  struct ctkn_tail_stats *stats;
  ctkn_consumer *c;
  struct ctkn_log_msg *msgs; /* TAIL_BATCH of them */
  struct ctkn_event *ev;
  int64_t *ends, *pos; /* alone: the log's end, and how far each got */
  int32_t nparts;
  /* trust: the gate and the records it holds, by tag */
  const struct ctkn_log_config *cfg;
  ctkn_pubkey *root;
  struct ctkn_keyring kr;
  int64_t kr_read_ms; /* when the keyring was last read */
  ctkn_gate *gate;
  struct ctkn_log_msg_copy **kept; /* by tag; NULL once released */
  size_t nkept, capkept;
  int64_t *expect; /* per partition: the next offset to feed, -1 none */
  struct ctkn_log_msg *done; /* released records, for the commit */
  size_t ndone;
};

/* Open the consumer: a group member subscribes, a tail alone assigns. */
static int tail_open(struct tail *t, const struct ctkn_log_config *cfg,
                     struct ctkn_err *err)
{
  const struct ctkn_tail_opts *o = t->o;
  int rc;

  t->msgs = calloc(TAIL_BATCH, sizeof(*t->msgs));
  t->ev = malloc(sizeof(*t->ev));
  if (t->msgs == NULL || t->ev == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "tail");
  if (o->group != NULL)
    return ctkn_consumer_open_group(&t->c, cfg, o->group, o->start, o->from_ms,
                                    err);
  if ((rc = ctkn_consumer_open(&t->c, cfg, err)) != CTKN_OK)
    return rc;
  return assign_alone(t->c, o, &t->pos, &t->ends, &t->nparts, err);
}

/* Whether every partition has reached the end this tail stops at. */
static bool at_end(const struct tail *t)
{
  for (int32_t p = 0; p < t->nparts; p++)
    if (t->pos[p] < t->ends[p])
      return false;
  return true;
}

/* ---- trust ------------------------------------------------------------- */

/* A tail that may read a topic's adopted prefix (trust.h, "adoption")
 * hashes each adopted partition's prefix itself and, where it matches
 * the root's adoption, lets its unsigned records through. */
static int trust_adoptions(struct tail *t, const struct ctkn_log_config *scfg,
                           struct ctkn_err *err)
{
  uint8_t h[CTKN_CHAIN_LEN];
  struct ctkn_adoption a;
  int rc;

  if (t->o->start == CTKN_START_END && t->o->group == NULL)
    return CTKN_OK; /* new records only: none of them is adopted */
  if ((rc = ctkn_trust_adoption_fetch(scfg, t->root, t->kr.log_id, &a, err)) !=
      CTKN_OK)
    return rc;
  for (size_t i = 0; i < a.nparts && rc == CTKN_OK; i++) {
    const struct ctkn_adopted_partition *ap = &a.parts[i];
    if (ap->end_offset <= 0 || ap->partition < 0 ||
        ap->partition >= CTKN_STORE_MAX_PARTITIONS)
      continue;
    rc = ctkn_trust_adopt_hash(t->cfg, t->kr.log_id, ap->partition,
                               ap->end_offset, h, err);
    if (rc == CTKN_OK && memcmp(h, ap->records_hash, CTKN_CHAIN_LEN) == 0)
      ctkn_gate_adopt(t->gate, ap->partition, ap->end_offset);
    else if (rc == CTKN_OK)
      ctkn__diag(CTKN_DIAG_ERROR, "trust",
                 "the adoption of partition %d up to offset %lld does not "
                 "match the log: its unsigned records are passed over",
                 (int)ap->partition, (long long)ap->end_offset);
  }
  ctkn_adoption_free(&a);
  return rc;
}

static int trust_open(struct tail *t, struct ctkn_err *err)
{
  struct ctkn_log_config scfg = *t->cfg; /* shallow: overrides borrowed */
  int rc;

  ctkn_keyring_init(&t->kr);
  t->expect = malloc(CTKN_STORE_MAX_PARTITIONS * sizeof(*t->expect));
  t->done = calloc(TAIL_BATCH, sizeof(*t->done));
  if (t->expect == NULL || t->done == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "tail: trust");
  for (int32_t p = 0; p < CTKN_STORE_MAX_PARTITIONS; p++)
    t->expect[p] = -1;
  if ((rc = ctkn_settings_topic(t->cfg->topic, scfg.topic, sizeof(scfg.topic),
                                err)) != CTKN_OK ||
      (rc = ctkn_pubkey_new(&t->root, t->o->trust_root, err)) != CTKN_OK ||
      (rc = ctkn_trust_keyring_fetch(&scfg, t->root, &t->kr, NULL, NULL,
                                     err)) != CTKN_OK ||
      (rc = ctkn_gate_open(&t->gate, &t->kr, CTKN_STORE_MAX_PARTITIONS, err)) !=
          CTKN_OK)
    return rc;
  ctkn_gate_set_midstream(t->gate);
  ctkn_gate_set_root(t->gate, t->root);
  return t->kr.version > 0 ? trust_adoptions(t, &scfg, err) : CTKN_OK;
}

static void trust_close(struct tail *t)
{
  for (size_t i = 0; i < t->nkept; i++) {
    ctkn_log_msg_copy_free(t->kept[i]);
    free(t->kept[i]);
  }
  free(t->kept);
  free(t->expect);
  free(t->done);
  ctkn_gate_close(t->gate);
  ctkn_keyring_free(&t->kr);
  ctkn_pubkey_free(t->root);
}

/* Whether m names a writer key the keyring lacks (a key added since the
 * tail started). */
static bool names_unknown_writer(const struct tail *t,
                                 const struct ctkn_log_msg *m)
{
  char id[CTKN_KEY_ID_BUF];
  uint8_t inst[CTKN_INSTANCE_LEN];

  for (size_t i = 0; i < m->nheaders; i++) {
    if (strcmp(m->headers[i].name, CTKN_HDR_WRITER) == 0)
      return ctkn_trust_writer_parse(m->headers[i].value, m->headers[i].size,
                                     id, inst, NULL) == CTKN_OK &&
             ctkn_keyring_find(&t->kr, id) == NULL;
  }
  return false;
}

/* Read the keyring again, at most once a second, when there is none yet
 * or m names a writer key it lacks. */
static int trust_keyring(struct tail *t, const struct ctkn_log_msg *m,
                         struct ctkn_err *err)
{
  struct ctkn_log_config scfg = *t->cfg;
  struct ctkn_keyring kr;
  int rc;

  if ((t->kr.version > 0 && !names_unknown_writer(t, m)) ||
      ctkn__now_ms() - t->kr_read_ms < 1000)
    return CTKN_OK;
  t->kr_read_ms = ctkn__now_ms();
  ctkn_keyring_init(&kr);
  if ((rc = ctkn_settings_topic(t->cfg->topic, scfg.topic, sizeof(scfg.topic),
                                err)) != CTKN_OK ||
      (rc = ctkn_trust_keyring_fetch(&scfg, t->root, &kr, NULL, NULL, err)) !=
          CTKN_OK ||
      kr.version <= t->kr.version) {
    ctkn_keyring_free(&kr);
    return rc;
  }
  bool first = t->kr.version == 0;
  ctkn_keyring_free(&t->kr);
  t->kr = kr;
  ctkn_gate_set_keyring(t->gate, &t->kr);
  /* The first keyring: the adoptions the root made come with it. */
  return first ? trust_adoptions(t, &scfg, err) : CTKN_OK;
}

/* Keep a copy of m (the gate borrows it until it comes out) and feed it;
 * a record that does not follow its partition's last is a new start (a
 * rebalance moved the partition): the gate forgets that partition. */
static int trust_feed(struct tail *t, const struct ctkn_log_msg *m,
                      struct ctkn_err *err)
{
  int32_t p = m->partition;
  struct ctkn_log_msg_copy *c;
  int rc;

  if (p < 0 || p >= CTKN_STORE_MAX_PARTITIONS)
    return CTKN_OK;
  if (t->expect[p] >= 0 && m->offset < t->expect[p])
    return CTKN_OK; /* seen already */
  if (t->expect[p] >= 0 && m->offset > t->expect[p])
    ctkn_gate_reset(t->gate, p);
  t->expect[p] = m->offset + 1;
  if ((rc = trust_keyring(t, m, err)) != CTKN_OK)
    return rc;
  /* Nothing the root signed to judge by: say so and stop, as a projector
   * does, rather than pass over every record in silence. */
  if (t->kr.version == 0)
    return ctkn__err(err, CTKN_ESTALE,
                     "no keyring signed by the trust root: nothing on the "
                     "topic can be judged (is --trust-root the "
                     "deployment's root? after `ctkn import`, import the "
                     "settings topic's archive too)");
  if (t->nkept == t->capkept) {
    size_t cap = t->capkept ? 2 * t->capkept : 1024;
    void *k = realloc(t->kept, cap * sizeof(*t->kept));
    if (k == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "tail: holding records");
    t->kept = k;
    t->capkept = cap;
  }
  if ((c = malloc(sizeof(*c))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "tail: holding records");
  if ((rc = ctkn_log_msg_copy(c, m, err)) != CTKN_OK) {
    free(c);
    return rc;
  }
  t->kept[t->nkept] = c;
  return ctkn_gate_feed(t->gate, &c->m, t->nkept++, err);
}

/* Write what the gate let through, in order; report what it refused. */
static int trust_release(struct tail *t, struct ctkn_err *err)
{
  struct ctkn_gate_out o;
  bool any = false;
  int rc = CTKN_OK;

  t->ndone = 0;
  for (int32_t p = 0; p < CTKN_STORE_MAX_PARTITIONS && rc == CTKN_OK; p++) {
    if (t->expect[p] < 0)
      continue;
    while (rc == CTKN_OK && ctkn_gate_next(t->gate, p, &o)) {
      struct ctkn_log_msg_copy *c = t->kept[o.tag];
      if (o.verdict == CTKN_GATE_APPLY)
        rc = write_one(&c->m, t->o, t->ev, t->out, t->stats, err);
      else if (o.verdict == CTKN_GATE_QUARANTINE) {
        ctkn__diag(CTKN_DIAG_WARN, "tail",
                   "partition %" PRId32 " offset %" PRId64
                   " passed over: %s (%s)",
                   c->m.partition, c->m.offset, o.reason, o.detail);
        t->stats->poison++;
      }
      if (t->ndone < TAIL_BATCH) /* for the commit: its coordinates */
        t->done[t->ndone++] = (struct ctkn_log_msg){.partition = c->m.partition,
                                                    .offset = c->m.offset};
      ctkn_log_msg_copy_free(c);
      free(c);
      t->kept[o.tag] = NULL;
      any = true;
    }
  }
  for (size_t i = 0; any && i < t->nkept; i++)
    if (t->kept[i] != NULL)
      return rc;
  if (any)
    t->nkept = 0; /* everything released: tags start again */
  return rc;
}

/* Write the lines of a poll's n records; *done: the records dealt with
 * (written, passed over, filtered), up to the one that failed. */
static int write_lines(struct tail *t, size_t n, size_t *done,
                       struct ctkn_err *err)
{
  const struct ctkn_tail_opts *o = t->o;
  int rc = CTKN_OK;
  size_t i;

  for (i = 0; i < n; i++) {
    const struct ctkn_log_msg *m = &t->msgs[i];
    if (o->exit_at_end && m->partition < t->nparts) {
      if (m->offset >= t->ends[m->partition])
        continue; /* past the end this tail stops at */
      t->pos[m->partition] = m->offset + 1;
    }
    if (t->gate != NULL)
      rc = trust_feed(t, m, err);
    else
      rc = write_one(m, o, t->ev, t->out, t->stats, err);
    if (rc != CTKN_OK)
      break;
  }
  *done = i;
  if (rc == CTKN_OK && t->gate != NULL)
    rc = trust_release(t, err);
  return rc;
}

/* Flush the output and, in a group, commit the first done records: only
 * lines that reached the output, and the records passed over among them;
 * never the one that stopped the tail. Returns rc, or the flush's error
 * when rc is CTKN_OK. */
static int flush_commit(struct tail *t, size_t done, int rc,
                        struct ctkn_err *err)
{
  struct ctkn_err ferr;
  int frc = fflush(t->out) == 0
                ? CTKN_OK
                : ctkn__err(&ferr, CTKN_EIO, "tail: writing the output failed");

  /* With trust, only what the gate released: never past a record that
   * still waits for its checkpoint. */
  const struct ctkn_log_msg *commit = t->gate != NULL ? t->done : t->msgs;
  if (t->gate != NULL)
    done = t->ndone;
  if (frc == CTKN_OK && t->o->group != NULL && done > 0 &&
      ctkn_consumer_commit(t->c, commit, done, &ferr) != CTKN_OK)
    ctkn__diag(CTKN_DIAG_WARN, "tail", "%s (those events will come again)",
               ferr.msg);
  if (rc == CTKN_OK && frc != CTKN_OK) {
    *err = ferr;
    rc = frc;
  }
  return rc;
}

int ctkn_tail(const struct ctkn_log_config *cfg, const struct ctkn_tail_opts *o,
              FILE *out, struct ctkn_tail_stats *stats, struct ctkn_err *err)
{
  struct tail t = {.o = o, .out = out, .stats = stats, .cfg = cfg};
  int rc;

  *stats = (struct ctkn_tail_stats){0};
  if (o->group != NULL && o->exit_at_end)
    return ctkn__err(err, CTKN_EUSAGE,
                     "a group member cannot stop at the end: its share of "
                     "the partitions can change");
  if ((rc = tail_open(&t, cfg, err)) != CTKN_OK ||
      (o->trust_root != NULL && (rc = trust_open(&t, err)) != CTKN_OK))
    goto out;
  while (o->stop == NULL || !*o->stop) {
    if (o->exit_at_end && at_end(&t))
      break;
    size_t n = 0, done;
    rc = ctkn_consumer_poll(t.c, 200, t.msgs, TAIL_BATCH, &n, err);
    if (rc != CTKN_OK) {
      if (!ctkn__transient(rc) || o->exit_at_end)
        goto out;
      ctkn__diag(CTKN_DIAG_WARN, "tail", "%s: %s; retrying", ctkn_strerror(rc),
                 err->msg);
      struct timespec ts = {1, 0};
      nanosleep(&ts, NULL);
      continue;
    }
    rc = write_lines(&t, n, &done, err);
    if ((rc = flush_commit(&t, done, rc, err)) != CTKN_OK)
      goto out;
  }
  rc = CTKN_OK;
out:
  if (o->trust_root != NULL)
    trust_close(&t);
  ctkn_consumer_close(t.c);
  free(t.msgs);
  free(t.ev);
  free(t.ends);
  free(t.pos);
  return rc;
}
