/*
 * queue.c - the one work queue (struct ctkn__queue, internal.h): a FIFO
 * of intrusive nodes that threads hand each other, guarded by one mutex.
 *
 * Invariant: head is NULL exactly when tail is NULL and n is 0. A closed
 * queue refuses pushes but still gives out what it holds, so a consumer
 * that drains until a pop returns 0 sees every item pushed before close.
 */
#include <pthread.h>
#include <time.h>

#include "internal.h"

int ctkn__queue_init(struct ctkn__queue *q)
{
  q->head = q->tail = NULL;
  q->n = 0;
  q->want = 1;
  q->kicks = 0;
  q->closed = false;
  if (pthread_mutex_init(&q->mu, NULL) != 0)
    return CTKN_ENOMEM;
  if (ctkn__cond_init_monotonic(&q->cv) != 0) {
    pthread_mutex_destroy(&q->mu);
    return CTKN_ENOMEM;
  }
  return CTKN_OK;
}

void ctkn__queue_destroy(struct ctkn__queue *q)
{
  pthread_cond_destroy(&q->cv);
  pthread_mutex_destroy(&q->mu);
}

bool ctkn__queue_push(struct ctkn__queue *q, struct ctkn__qnode *node)
{
  pthread_mutex_lock(&q->mu);
  if (q->closed) {
    pthread_mutex_unlock(&q->mu);
    return false;
  }
  node->next = NULL;
  if (q->tail != NULL)
    q->tail->next = node;
  else
    q->head = node;
  q->tail = node;
  q->n++;
  if (q->n >= q->want)
    pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return true;
}

/* Under q->mu: take up to max nodes into out. */
static size_t take(struct ctkn__queue *q, struct ctkn__qnode **out, size_t max)
{
  size_t n = 0;

  while (q->head != NULL && n < max) {
    out[n++] = q->head;
    q->head = q->head->next;
    q->n--;
  }
  if (q->head == NULL)
    q->tail = NULL;
  return n;
}

size_t ctkn__queue_pop(struct ctkn__queue *q, struct ctkn__qnode **out,
                       size_t max, int timeout_ms)
{
  struct timespec until = {0};

  if (timeout_ms > 0)
    until = ctkn__monotonic_in(timeout_ms);
  pthread_mutex_lock(&q->mu);
  while (q->head == NULL && !q->closed && timeout_ms != 0) {
    if (timeout_ms < 0)
      pthread_cond_wait(&q->cv, &q->mu);
    else if (pthread_cond_timedwait(&q->cv, &q->mu, &until) != 0)
      break; /* timed out (or failed: the caller polls again) */
  }
  size_t n = take(q, out, max);
  pthread_mutex_unlock(&q->mu);
  return n;
}

size_t ctkn__queue_pop_min(struct ctkn__queue *q, struct ctkn__qnode **out,
                           size_t max, size_t min, int64_t timeout_us,
                           uint64_t kicks)
{
  struct timespec until = ctkn__monotonic_in_us(timeout_us);

  pthread_mutex_lock(&q->mu);
  q->want = min > 0 ? min : 1;
  while (q->n < min && !q->closed && q->kicks == kicks && timeout_us > 0) {
    if (pthread_cond_timedwait(&q->cv, &q->mu, &until) != 0)
      break; /* timed out */
  }
  q->want = 1;
  size_t n = take(q, out, max);
  pthread_mutex_unlock(&q->mu);
  return n;
}

void ctkn__queue_kick(struct ctkn__queue *q)
{
  pthread_mutex_lock(&q->mu);
  q->kicks++;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

uint64_t ctkn__queue_kicks(struct ctkn__queue *q)
{
  pthread_mutex_lock(&q->mu);
  uint64_t k = q->kicks;
  pthread_mutex_unlock(&q->mu);
  return k;
}

size_t ctkn__queue_len(struct ctkn__queue *q)
{
  pthread_mutex_lock(&q->mu);
  size_t n = q->n;
  pthread_mutex_unlock(&q->mu);
  return n;
}

void ctkn__queue_close(struct ctkn__queue *q)
{
  pthread_mutex_lock(&q->mu);
  q->closed = true;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

bool ctkn__queue_closed(struct ctkn__queue *q)
{
  pthread_mutex_lock(&q->mu);
  bool closed = q->closed;
  pthread_mutex_unlock(&q->mu);
  return closed;
}
