/*
 * apikeys.c - API keys on the log as the server sees them: last_used_at,
 * appended at most once per key and interval by each replica.
 *
 * A request authenticated by a key on the log (auth.c) calls
 * ctkn__api_key_used(). The first use of a key, and the first after
 * --key-used-interval (1 h) has passed since this replica last reported
 * it, queues one "used" record for the usage thread, which appends it
 * through the settings topic (keycmd.h) with this replica's writer key
 * (scoped api_key.used). Heavy traffic thus costs the log one record per
 * key, replica and interval; the request never waits for it.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "ctkn/keycmd.h"

struct seen {
  char id[CTKN_AKEY_ID_BUF];
  int64_t at_mono_us; /* when this replica last queued its record */
};

struct used_item {
  struct ctkn__qnode qnode;
  char id[CTKN_AKEY_ID_BUF];
  int64_t used_at; /* µs, wall clock */
};

/* Whether k is due, marking it queued now when it is. */
static bool due(struct server *s, const char *id, int64_t now)
{
  int64_t every = s->cfg->key_used_interval_ms * 1000;
  struct seen *v, fresh;
  bool yes = true;
  size_t n;

  pthread_mutex_lock(&s->used_lock);
  v = (struct seen *)(void *)s->used_seen.data;
  n = s->used_seen.len / sizeof(*v);
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i].id, id) == 0) {
      yes = now - v[i].at_mono_us >= every;
      if (yes)
        v[i].at_mono_us = now;
      pthread_mutex_unlock(&s->used_lock);
      return yes;
    }
  memcpy(fresh.id, id, sizeof(fresh.id));
  fresh.at_mono_us = now;
  yes = ctkn__buf_append(&s->used_seen, &fresh, sizeof(fresh)) == CTKN_OK;
  pthread_mutex_unlock(&s->used_lock);
  return yes;
}

void ctkn__api_key_used(struct server *s, const struct ctkn_akey *k)
{
  struct used_item *it;

  /* Read-only on a trusted log: no key to sign with. */
  if (s->cfg->key_used_interval_ms <= 0 ||
      (s->cfg->trust_root != NULL && s->cfg->writer_key == NULL &&
       s->cfg->usage_key == NULL) ||
      !s->used_started || !due(s, k->id, ctkn__api_mono_us()))
    return;
  if ((it = calloc(1, sizeof(*it))) == NULL)
    return;
  memcpy(it->id, k->id, sizeof(it->id));
  it->used_at = ctkn_now_us();
  if (!ctkn__queue_push(&s->usedq, &it->qnode))
    free(it);
}

static void append_used(struct server *s, const struct used_item *it)
{
  struct ctkn_keycmd_trust trust = {
      s->cfg->trust_root,
      s->cfg->usage_key != NULL ? s->cfg->usage_key : s->cfg->writer_key};
  struct ctkn_keycmd_outcome out;
  struct ctkn_akey_command c;
  struct ctkn_err err = {0};
  int rc;

  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_USED);
  memcpy(c.id, it->id, sizeof(c.id));
  c.used_at = it->used_at;
  rc = ctkn_keycmd_execute(s->st, s->cfg->log, &trust, s->cfg->env, &c, &out,
                           &err);
  if (rc != CTKN_OK)
    ctkn__diag(CTKN_DIAG_WARN, "http", "last_used_at of %s not appended: %s",
               it->id, err.msg);
}

static void *used_main(void *arg)
{
  struct server *s = arg;
  struct ctkn__qnode *node;

  while (ctkn__queue_pop(&s->usedq, &node, 1, -1) == 1) {
    struct used_item *it = CTKN__CONTAINER_OF(node, struct used_item, qnode);
    append_used(s, it);
    free(it);
  }
  return NULL;
}

int ctkn__api_used_start(struct server *s, struct ctkn_err *err)
{
  if (pthread_create(&s->used_thread, NULL, used_main, s) != 0)
    return ctkn__err(err, CTKN_ENOMEM, "server: threads");
  s->used_started = true;
  return CTKN_OK;
}

void ctkn__api_used_stop(struct server *s)
{
  struct ctkn__qnode *node;

  ctkn__queue_close(&s->usedq);
  if (s->used_started)
    pthread_join(s->used_thread, NULL);
  s->used_started = false;
  while (ctkn__queue_pop(&s->usedq, &node, 1, 0) == 1)
    free(CTKN__CONTAINER_OF(node, struct used_item, qnode));
}
