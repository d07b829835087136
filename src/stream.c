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
#include "ctkn/stream.h"
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
    if ((rc = write_one(m, o, t->ev, t->out, t->stats, err)) != CTKN_OK)
      break;
  }
  *done = i;
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

  if (frc == CTKN_OK && t->o->group != NULL &&
      ctkn_consumer_commit(t->c, t->msgs, done, &ferr) != CTKN_OK)
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
  struct tail t = {.o = o, .out = out, .stats = stats};
  int rc;

  *stats = (struct ctkn_tail_stats){0};
  if (o->group != NULL && o->exit_at_end)
    return ctkn__err(err, CTKN_EUSAGE,
                     "a group member cannot stop at the end: its share of "
                     "the partitions can change");
  if ((rc = tail_open(&t, cfg, err)) != CTKN_OK)
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
  ctkn_consumer_close(t.c);
  free(t.msgs);
  free(t.ev);
  free(t.ends);
  free(t.pos);
  return rc;
}
