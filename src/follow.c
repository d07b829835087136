/*
 * follow.c - one follower of a side topic (follow_int.h), for the
 * settings topic (settings.c) and the notifications topic (delivery.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "follow_int.h"

#define MAXP CTKN__FOLLOW_MAX_PARTS

struct ctkn__follower {
  const struct ctkn__follow_side *side;
  ctkn_store *st;
  struct ctkn_log_config cfg; /* a shallow copy: overrides are borrowed */
  ctkn_consumer *c;
  int32_t nparts;
  bool stopped; /* a record of a newer schema: wait for an upgrade */
  struct ctkn_log_msg *msgs; /* side->batch of them */
  /* trust (NULL kr: records are not judged) */
  const struct ctkn_keyring *kr;
  uint64_t kr_version; /* the version the gate judges by */
  int (*refresh)(void *arg, struct ctkn_err *err);
  void *refresh_arg;
  struct ctkn__judged j;
  uint8_t *v;                    /* side->batch verdicts */
  char (*why)[CTKN_GATE_REASON]; /* side->batch reasons */
};

static int assign(ctkn__follower *f, struct ctkn_err *err)
{
  const struct ctkn__follow_side *s = f->side;
  ctkn_store_txn *txn;
  int64_t *next;
  int32_t n;
  int rc;

  if ((rc = ctkn_consumer_partitions(f->c, &n, err)) != CTKN_OK)
    return rc;
  if (n < 1 || n > s->max_parts)
    return ctkn__err(err, CTKN_EKAFKA,
                     "%s: %" PRId32 " partitions; a %s topic has 1 to %" PRId32,
                     f->cfg.topic, n, s->kind, s->max_parts);
  if ((next = calloc((size_t)n, sizeof(*next))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "%s follower", s->diag);
  if ((rc = ctkn_store_begin(f->st, false, &txn, err)) == CTKN_OK) {
    for (int32_t p = 0; p < n; p++)
      next[p] = s->start != NULL ? s->start(txn, p) : s->offset(txn, p);
    ctkn_store_abort(txn);
    rc = ctkn_consumer_assign(f->c, next, n, err);
  }
  free(next);
  if (rc == CTKN_OK)
    f->nparts = n;
  return rc;
}

int ctkn__follow_open(ctkn__follower **out,
                      const struct ctkn__follow_side *side, ctkn_store *st,
                      const struct ctkn_log_config *cfg, struct ctkn_err *err)
{
  ctkn__follower *f;
  int rc;

  *out = NULL;
  if ((f = calloc(1, sizeof(*f))) == NULL ||
      (f->msgs = calloc(side->batch, sizeof(*f->msgs))) == NULL ||
      (f->v = calloc(side->batch, sizeof(*f->v))) == NULL ||
      (f->why = calloc(side->batch, sizeof(*f->why))) == NULL) {
    ctkn__follow_close(f);
    return ctkn__err(err, CTKN_ENOMEM, "%s follower", side->diag);
  }
  f->side = side;
  f->st = st;
  f->cfg = *cfg;
  rc = side->topic(cfg->topic, f->cfg.topic, sizeof(f->cfg.topic), err);
  if (rc == CTKN_OK)
    rc = ctkn_consumer_open(&f->c, &f->cfg, err);
  if (rc == CTKN_ENOTFOUND)
    rc = ctkn__err(err, CTKN_ENOTFOUND,
                   "%s topic %s does not exist: run `ctkn init`", side->kind,
                   f->cfg.topic);
  if (rc == CTKN_OK)
    rc = assign(f, err);
  if (rc != CTKN_OK) {
    ctkn__follow_close(f);
    return rc;
  }
  *out = f;
  return CTKN_OK;
}

void ctkn__follow_close(ctkn__follower *f)
{
  if (f == NULL)
    return;
  ctkn_gate_close(f->j.gate);
  ctkn_consumer_close(f->c);
  free(f->msgs);
  free(f->v);
  free(f->why);
  free(f);
}

int ctkn__follow_set_trust(ctkn__follower *f, const struct ctkn_keyring *kr,
                           int (*refresh)(void *arg, struct ctkn_err *err),
                           void *arg, struct ctkn_err *err)
{
  int rc;

  if (f->j.gate == NULL &&
      (rc = ctkn_gate_open(&f->j.gate, kr, MAXP, err)) != CTKN_OK)
    return rc;
  f->kr = kr;
  f->kr_version = kr->version;
  f->refresh = refresh;
  f->refresh_arg = arg;
  f->j.v = f->v;
  f->j.why = f->why;
  ctkn_gate_set_keyring(f->j.gate, kr);
  return CTKN_OK;
}

/* Whether m names a writer key the keyring lacks. */
static bool unknown_writer(const ctkn__follower *f,
                           const struct ctkn_log_msg *m)
{
  char id[CTKN_KEY_ID_BUF];
  uint8_t inst[CTKN_INSTANCE_LEN];

  for (size_t h = 0; h < m->nheaders; h++)
    if (strcmp(m->headers[h].name, CTKN_HDR_WRITER) == 0 &&
        ctkn_trust_writer_parse(m->headers[h].value, m->headers[h].size, id,
                                inst, NULL) == CTKN_OK &&
        ctkn_keyring_find(f->kr, id) == NULL)
      return true;
  return false;
}

/* Before judging a batch: a record naming a writer key the keyring lacks
 * has the keyring read again (once a batch), and a changed keyring
 * reaches the gate. */
static int keyring_for(ctkn__follower *f, size_t n, struct ctkn_err *err)
{
  int rc;

  for (size_t i = 0; i < n && f->refresh != NULL; i++)
    if (unknown_writer(f, &f->msgs[i])) {
      if ((rc = f->refresh(f->refresh_arg, err)) != CTKN_OK)
        return rc;
      break;
    }
  if (f->kr->version != f->kr_version) {
    ctkn_gate_set_keyring(f->j.gate, f->kr);
    f->kr_version = f->kr->version;
  }
  for (int32_t p = 0; p < MAXP; p++)
    f->j.next[p] = f->j.held[p] = -1;
  return CTKN_OK;
}

/* A keyring record passed: read the keyring again, so that a revoked key
 * is refused from here on (trust.h). A failure is logged; the next keyring
 * record, or a record of an unknown key, tries again. */
static void keyring_passed(ctkn__follower *f, size_t n)
{
  struct ctkn_err err = {0};

  for (size_t i = 0; i < n && f->refresh != NULL; i++)
    if (f->v[i] == f->side->keyring_verdict) {
      if (f->refresh(f->refresh_arg, &err) != CTKN_OK)
        ctkn__diag(CTKN_DIAG_WARN, "trust", "keyring not read again: %s",
                   err.msg);
      return;
    }
}

/* After a judged batch: partitions with records held back are read again
 * from the first of them. */
static int seek_held(ctkn__follower *f, struct ctkn_err *err)
{
  int64_t to[MAXP];
  int32_t n = f->nparts < MAXP ? f->nparts : MAXP;
  bool any = false;

  for (int32_t p = 0; p < n; p++) {
    to[p] = f->j.held[p];
    any = any || to[p] >= 0;
  }
  return any ? ctkn_consumer_seek(f->c, to, n, err) : CTKN_OK;
}

/* Project the n records polled. */
static int project_polled(ctkn__follower *f, size_t n, struct ctkn_err *err)
{
  int rc = CTKN_OK;

  if (f->kr != NULL)
    rc = keyring_for(f, n, err);
  if (rc == CTKN_OK)
    rc = f->side->project(f->st, f->msgs, n, f->kr != NULL ? &f->j : NULL, err);
  if (rc == CTKN_OK && f->kr != NULL)
    rc = seek_held(f, err);
  if (rc == CTKN_OK && f->kr != NULL)
    keyring_passed(f, n);
  return rc;
}

ctkn_consumer *ctkn__follow_consumer(ctkn__follower *f)
{
  return f->stopped ? NULL : f->c;
}

int ctkn__follow_poll(ctkn__follower *f, int timeout_ms, size_t *applied,
                      struct ctkn_err *err)
{
  struct ctkn_err perr;
  size_t n = 0;
  int rc, prc;

  *applied = 0;
  if (f->stopped)
    return CTKN_OK;
  rc = ctkn_consumer_poll(f->c, timeout_ms, f->msgs, f->side->batch, &n, err);
  if (n == 0)
    return rc;
  prc = project_polled(f, n, &perr);
  if (prc == CTKN_EFORMAT) {
    ctkn__diag(CTKN_DIAG_ERROR, f->side->diag,
               "%s; %s are not followed until then", perr.msg, f->side->kind);
    f->stopped = true;
  } else if (prc != CTKN_OK) {
    if (err != NULL)
      *err = perr;
    return prc;
  }
  *applied = n;
  return rc;
}

int32_t ctkn__follow_partitions(const ctkn__follower *f)
{
  return f->nparts;
}

/* Whether the projection has reached hi[0..n). */
static int reached(ctkn__follower *f, const int64_t *hi, int32_t n, bool *done,
                   struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  int rc;

  *done = true;
  if ((rc = ctkn_store_begin(f->st, false, &txn, err)) != CTKN_OK)
    return rc;
  for (int32_t p = 0; p < n; p++)
    *done = *done && f->side->offset(txn, p) >= hi[p];
  ctkn_store_abort(txn);
  return CTKN_OK;
}

int ctkn__follow_catch_up(ctkn__follower *f, struct ctkn_err *err)
{
  int64_t hi[MAXP];
  int64_t deadline = ctkn__now_ms() + f->cfg.timeout_ms;
  bool done;
  size_t got;
  int32_t n;
  int rc;

  if ((rc = ctkn_consumer_partitions(f->c, &n, err)) != CTKN_OK)
    return rc;
  if (n > MAXP)
    return ctkn__err(err, CTKN_EKAFKA,
                     "%s: %" PRId32 " partitions; a %s topic has at most %d",
                     f->cfg.topic, n, f->side->kind, MAXP);
  if (n != f->nparts && (rc = assign(f, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn_consumer_ends(f->c, n, hi, err)) != CTKN_OK)
    return rc;
  for (;;) {
    if ((rc = reached(f, hi, n, &done, err)) != CTKN_OK || done)
      return rc;
    if (f->stopped)
      return ctkn__err(err, CTKN_EFORMAT,
                       "the %s topic holds a newer schema version; "
                       "upgrade ctkn",
                       f->side->kind);
    if (ctkn__now_ms() > deadline)
      return ctkn__err(err, CTKN_ETIMEOUT,
                       "the %s projection did not reach the end of %s "
                       "within %d ms",
                       f->side->kind, f->cfg.topic, f->cfg.timeout_ms);
    if ((rc = ctkn__follow_poll(f, 100, &got, err)) != CTKN_OK)
      return rc;
  }
}
