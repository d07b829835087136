/*
 * lines.c - `ctkn create --batch`: create requests as JSON lines
 * (ctkn_ledger_create_lines() in ledger.h), run in chunks through the
 * ledger's public batch calls, one answer line per input line, in order.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/ledger.h"
#include "internal.h"

/* Lines per batch at most: enough to keep many events in flight, few
 * enough that answers stream out as the input is read. A batch also ends
 * where the input stops for now (ctkn__linein_ready()), so a client that
 * sends a line and waits gets its answer. */
#define LINES_CHUNK 512

/* One chunk's lines as read (cmds, outs, errs, rcs, parsed: by input
 * line) and the parsed ones as run (run, ro, re, rr: compacted). */
struct lines {
  struct ctkn_command *cmds, *run;
  struct ctkn_outcome *outs, *ro;
  struct ctkn_err *errs, *re;
  int *rcs, *rr;
  bool *parsed;
};

static void lines_free(struct lines *b)
{
  free(b->cmds);
  free(b->run);
  free(b->outs);
  free(b->ro);
  free(b->errs);
  free(b->re);
  free(b->rcs);
  free(b->rr);
  free(b->parsed);
}

static int lines_alloc(struct lines *b, struct ctkn_err *err)
{
  memset(b, 0, sizeof(*b));
  b->cmds = calloc(LINES_CHUNK, sizeof(*b->cmds));
  b->run = calloc(LINES_CHUNK, sizeof(*b->run));
  b->outs = calloc(LINES_CHUNK, sizeof(*b->outs));
  b->ro = calloc(LINES_CHUNK, sizeof(*b->ro));
  b->errs = calloc(LINES_CHUNK, sizeof(*b->errs));
  b->re = calloc(LINES_CHUNK, sizeof(*b->re));
  b->rcs = calloc(LINES_CHUNK, sizeof(*b->rcs));
  b->rr = calloc(LINES_CHUNK, sizeof(*b->rr));
  b->parsed = calloc(LINES_CHUNK, sizeof(*b->parsed));
  if (b->cmds == NULL || b->run == NULL || b->outs == NULL || b->ro == NULL ||
      b->errs == NULL || b->re == NULL || b->rcs == NULL || b->rr == NULL ||
      b->parsed == NULL) {
    lines_free(b);
    return ctkn__err(err, CTKN_ENOMEM, "ledger: out of memory");
  }
  return CTKN_OK;
}

/* Read and parse up to LINES_CHUNK lines, fewer if the input stops for
 * now after the first: *n counts them, *todo the ones that parsed. false
 * once in has ended (or failed). */
static bool read_chunk(struct lines *b, struct ctkn__linein *in, size_t *n,
                       size_t *todo)
{
  *n = *todo = 0;
  while (*n < LINES_CHUNK && (*n == 0 || ctkn__linein_ready(in))) {
    char *line;
    ssize_t len = ctkn__linein_next(in, &line);
    if (len < 0)
      return false;
    size_t i = (*n)++;
    memset(&b->outs[i], 0, sizeof(b->outs[i])); /* nothing acknowledged */
    b->parsed[i] = ctkn_json_parse_create_line(line, (size_t)len, &b->cmds[i],
                                               &b->errs[i]) == CTKN_OK;
    b->rcs[i] = b->parsed[i] ? CTKN_OK : b->errs[i].code;
    *todo += b->parsed[i];
  }
  return true;
}

/* The chunk's parsed commands, compacted into b->run. */
static void compact_chunk(struct lines *b, size_t n)
{
  size_t k = 0;

  for (size_t i = 0; i < n; i++)
    if (b->parsed[i])
      b->run[k++] = b->cmds[i];
}

/* Each result of the compacted run back in input order. */
static void restore_chunk(struct lines *b, size_t n)
{
  size_t k = 0;

  for (size_t i = 0; i < n; i++) {
    if (!b->parsed[i])
      continue;
    b->rcs[i] = b->rr[k];
    b->errs[i] = b->re[k];
    b->outs[i] = b->ro[k++];
  }
}

/* How bad an exit status is: 3 (a line to retry) beats 4 (a line
 * appended but not yet applied) beats 2 and 1. */
static int exit_rank(int e)
{
  return e == 3 ? 5 : e;
}

/* One answer line per input line; returns the worst exit status so far. */
static int answer_chunk(const struct lines *b, size_t n, FILE *out, int worst)
{
  for (size_t i = 0; i < n; i++) {
    bool ok = b->rcs[i] == CTKN_OK;
    char *json =
        ctkn_json_line_answer(ok ? &b->outs[i].record.token : NULL, &b->errs[i],
                              b->outs[i].acknowledged, NULL);
    fprintf(out, "%s\n", json ? json : "{}");
    free(json);
    int e = ctkn_error_exit(b->rcs[i]);
    worst = exit_rank(e) > exit_rank(worst) ? e : worst;
  }
  fflush(out);
  return worst;
}

/*
 * Chunks of creates without an idempotency key are pipelined as `ctkn
 * serve`'s batches are (ledger.h): the calling thread reads, parses and
 * submits chunk k+1 while a settling thread waits for the projection's
 * verdicts on chunk k and writes its answers. Two chunk buffers; any
 * other chunk runs on the calling thread once both are free (settled and
 * answered), so answers stay in input order.
 */
struct linepipe {
  ctkn_ledger *l;
  FILE *out;
  struct lines b[2];
  size_t n[2];
  struct ctkn_ledger_pending *pending[2];
  bool busy[2]; /* submitted, not yet answered */
  int handoff;  /* a submitted buffer for the settler, or -1 */
  bool stop;
  int worst;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

static void *settle_lines(void *arg)
{
  struct linepipe *lp = arg;

  pthread_mutex_lock(&lp->mu);
  for (;;) {
    while (lp->handoff < 0 && !lp->stop)
      pthread_cond_wait(&lp->cv, &lp->mu);
    if (lp->handoff < 0)
      break;
    int i = lp->handoff;
    lp->handoff = -1;
    pthread_cond_broadcast(&lp->cv);
    pthread_mutex_unlock(&lp->mu);
    ctkn_ledger_settle(lp->l, lp->pending[i]);
    lp->pending[i] = NULL;
    restore_chunk(&lp->b[i], lp->n[i]);
    int w = answer_chunk(&lp->b[i], lp->n[i], lp->out, lp->worst);
    pthread_mutex_lock(&lp->mu);
    lp->worst = w;
    lp->busy[i] = false;
    pthread_cond_broadcast(&lp->cv);
  }
  pthread_mutex_unlock(&lp->mu);
  return NULL;
}

/* Wait until buffer i is free (which == -1: both). */
static void lines_wait(struct linepipe *lp, int which)
{
  pthread_mutex_lock(&lp->mu);
  while (which < 0 ? (lp->busy[0] || lp->busy[1]) : lp->busy[which])
    pthread_cond_wait(&lp->cv, &lp->mu);
  pthread_mutex_unlock(&lp->mu);
}

/* Run chunk i on this thread, once the settler has answered every chunk
 * before it. */
static void lines_run_here(struct linepipe *lp, int i, size_t todo,
                           bool submitted)
{
  struct lines *b = &lp->b[i];

  lines_wait(lp, -1);
  if (todo > 0 && !submitted)
    ctkn_ledger_execute_batch(lp->l, b->run, todo, b->ro, b->rr, b->re);
  restore_chunk(b, lp->n[i]);
  lp->worst = answer_chunk(b, lp->n[i], lp->out, lp->worst);
}

/* Run chunk i: submitted and handed to the settler when it reads
 * nothing, else here. */
static void lines_run(struct linepipe *lp, int i, size_t todo, bool piped)
{
  struct lines *b = &lp->b[i];

  compact_chunk(b, lp->n[i]);
  if (!piped || todo == 0 || !ctkn_ledger_pipelines(lp->l, b->run, todo)) {
    lines_run_here(lp, i, todo, false);
    return;
  }
  if (ctkn_ledger_submit(lp->l, b->run, todo, b->ro, b->rr, b->re,
                         &lp->pending[i]) != CTKN_OK) {
    lines_run_here(lp, i, todo, true); /* each carries CTKN_ENOMEM */
    return;
  }
  pthread_mutex_lock(&lp->mu);
  while (lp->handoff >= 0)
    pthread_cond_wait(&lp->cv, &lp->mu);
  lp->busy[i] = true;
  lp->handoff = i;
  pthread_cond_broadcast(&lp->cv);
  pthread_mutex_unlock(&lp->mu);
}

int ctkn_ledger_create_lines(ctkn_ledger *l, FILE *in, FILE *out, int *worst,
                             struct ctkn_err *err)
{
  struct linepipe lp = {.l = l, .out = out, .handoff = -1};
  struct ctkn__linein r;
  pthread_t t;
  bool more = true, started = false;
  int rc = CTKN_OK, i = 0;

  *worst = 0;
  if ((rc = lines_alloc(&lp.b[0], err)) != CTKN_OK)
    return rc;
  if ((rc = lines_alloc(&lp.b[1], err)) != CTKN_OK) {
    lines_free(&lp.b[0]);
    return rc;
  }
  ctkn__linein_init(&r, in);
  pthread_mutex_init(&lp.mu, NULL);
  pthread_cond_init(&lp.cv, NULL);
  started = pthread_create(&t, NULL, settle_lines, &lp) == 0;
  while (more) {
    size_t todo;
    lines_wait(&lp, i);
    more = read_chunk(&lp.b[i], &r, &lp.n[i], &todo);
    if (lp.n[i] == 0)
      break;
    lines_run(&lp, i, todo, started);
    i ^= 1;
  }
  lines_wait(&lp, -1);
  if (started) {
    pthread_mutex_lock(&lp.mu);
    lp.stop = true;
    pthread_cond_broadcast(&lp.cv);
    pthread_mutex_unlock(&lp.mu);
    pthread_join(t, NULL);
  }
  *worst = lp.worst;
  if (r.errnum != 0)
    rc = ctkn__err(err, CTKN_EIO, "reading the requests: %s",
                   strerror(r.errnum));
  ctkn__linein_free(&r);
  pthread_cond_destroy(&lp.cv);
  pthread_mutex_destroy(&lp.mu);
  lines_free(&lp.b[0]);
  lines_free(&lp.b[1]);
  return rc;
}
