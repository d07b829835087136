/*
 * rebuild.c - a new projection built beside the live one and swapped in
 * (ctkn_projector_rebuild()).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "projector/projector_int.h"
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/shared.h"

static int build(ctkn_store *st, const struct ctkn_log_config *cfg,
                 ctkn_env env, const int64_t *targets, int32_t n,
                 struct ctkn_projector_stats *stats, struct ctkn_err *err)
{
  ctkn_projector *p;
  int rc;

  if ((rc = ctkn_projector_open(&p, st, cfg, env, err)) != CTKN_OK)
    return rc;
  rc = ctkn_projector_catch_up(p, targets, n, err);
  if (rc == CTKN_OK) {
    /* The destinations too, where the settings topic exists. */
    ctkn_settings_follower *f = NULL;
    rc = ctkn_settings_follower_open(&f, st, cfg, err);
    if (rc == CTKN_OK)
      rc = ctkn_settings_follower_catch_up(f, err);
    else if (rc == CTKN_ENOTFOUND)
      rc = CTKN_OK;
    ctkn_settings_follower_close(f);
  }
  if (rc == CTKN_OK && stats != NULL) {
    struct ctkn_projector_stats s;
    ctkn_projector_stats(p, &s);
    stats->applied += s.applied;
    stats->rejected += s.rejected;
    stats->quarantined += s.quarantined;
    stats->batches += s.batches;
  }
  ctkn_projector_close(p);
  return rc;
}

int ctkn_projector_rebuild(const char *dir, const struct ctkn_log_config *cfg,
                           ctkn_env env, size_t map_size,
                           struct ctkn_projector_stats *stats,
                           struct ctkn_err *err)
{
  char *side = ctkn__suffixed(dir, ".rebuild"),
       *prev = ctkn__suffixed(dir, ".previous");
  char *lockpath = ctkn__suffixed(dir, ".rebuild.lock");
  struct ctkn_store_opts live_opts = {.map_size = map_size};
  struct ctkn_store_opts side_opts = {.map_size = map_size, .no_sync = true};
  ctkn_store *live = NULL, *fresh = NULL;
  ctkn_store_txn *lock = NULL;
  int64_t *targets = NULL;
  int32_t n = 0;
  int lockfd = -1, rc;

  memset(stats, 0, sizeof(*stats));
  if (side == NULL || prev == NULL || lockpath == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "rebuild: out of memory");
    goto out;
  }
  /* One rebuild at a time; a leftover side directory is a dead one's. */
  if ((lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
      flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
    rc = ctkn__err(err, CTKN_ECONFLICT,
                   "%.200s: another rebuild of this projection is running",
                   lockpath);
    goto out;
  }
  ctkn_store_remove(side);

  /* The live projection, unless it has a format this build cannot open:
   * that is what a rebuild is for, and its writers are old builds, which
   * the operator stops first. */
  char *data = ctkn__suffixed(dir, "/data.mdb");
  struct stat sb;
  bool exists = data != NULL && stat(data, &sb) == 0;
  free(data);
  if (!exists) {
    rc = ctkn__err(err, CTKN_ENOTFOUND,
                   "%.200s holds no projection to rebuild (ctkn project "
                   "builds one)",
                   dir);
    goto out;
  }
  rc = ctkn_store_open(&live, dir, &live_opts, err);
  if (rc == CTKN_EFORMAT) {
    ctkn__diag(CTKN_DIAG_WARN, "rebuild",
               "%s: %s; rebuilding it in this build's format", dir, err->msg);
    live = NULL;
  } else if (rc != CTKN_OK) {
    goto out;
  } else {
    char as_of[CTKN_TIME_BUF];
    if ((rc = ctkn_store_bind(live, cfg->topic, env, err)) != CTKN_OK ||
        (rc = ctkn_store_frozen(live, as_of, err)) != CTKN_OK)
      goto out;
    if (as_of[0] != '\0') {
      rc = ctkn__err(err, CTKN_ECONFLICT,
                     "%.200s is a frozen replay as of %s; replay again "
                     "instead",
                     dir, as_of);
      goto out;
    }
  }

  /* Build beside it, from the start of the log, without fsyncs. */
  if ((rc = ctkn_store_open(&fresh, side, &side_opts, err)) != CTKN_OK ||
      (rc = ctkn_store_bind(fresh, cfg->topic, env, err)) != CTKN_OK ||
      (rc = build(fresh, cfg, env, NULL, 0, stats, err)) != CTKN_OK ||
      (rc = build(fresh, cfg, env, NULL, 0, stats, err)) != CTKN_OK)
    goto out;

  /* Stop the live projection's writers (LMDB's writer lock), bring the
   * new one to at least where the live one stands, and swap. */
  if (live != NULL) {
    if ((rc = ctkn_store_begin(live, true, &lock, err)) != CTKN_OK)
      goto out;
    n = CTKN_STORE_MAX_PARTITIONS;
    if ((targets = calloc((size_t)n, sizeof(*targets))) == NULL) {
      rc = ctkn__err(err, CTKN_ENOMEM, "rebuild: out of memory");
      goto out;
    }
    int32_t last = 0;
    for (int32_t i = 0; i < n; i++) {
      if ((rc = ctkn_store_offset(lock, i, &targets[i], err)) != CTKN_OK)
        goto out;
      if (targets[i] > 0)
        last = i + 1;
    }
    n = last;
  }
  if ((rc = build(fresh, cfg, env, targets, n, stats, err)) != CTKN_OK)
    goto out;
  if (lock != NULL) {
    /* A notifier's delivery state is not in the log: carry it over. */
    ctkn_store_txn *to = NULL;
    if ((rc = ctkn_store_begin(fresh, true, &to, err)) != CTKN_OK)
      goto out;
    if ((rc = ctkn__store_copy_local(lock, to, err)) != CTKN_OK) {
      ctkn_store_abort(to);
      goto out;
    }
    if ((rc = ctkn_store_commit(to, err)) != CTKN_OK)
      goto out;
  }
  if ((rc = ctkn_store_sync(fresh, err)) != CTKN_OK)
    goto out;
  ctkn_store_close(fresh);
  fresh = NULL;
  if ((rc = ctkn_store_exchange(side, dir, err)) != CTKN_OK)
    goto out;
  ctkn_store_abort(lock); /* nothing written: the lock was the point */
  lock = NULL;
  ctkn_store_close(live);
  live = NULL;
  /* Keep the old one until the next rebuild, for a way back. */
  ctkn_store_remove(prev);
  if (rename(side, prev) != 0)
    ctkn__diag(CTKN_DIAG_WARN, "rebuild", "the old projection stays in %s: %s",
               side, strerror(errno));
  rc = CTKN_OK;
out:
  ctkn_store_abort(lock);
  ctkn_store_close(fresh);
  ctkn_store_close(live);
  if (rc != CTKN_OK && side != NULL)
    ctkn_store_remove(side);
  if (lockfd >= 0)
    close(lockfd);
  free(targets);
  free(side);
  free(prev);
  free(lockpath);
  return rc;
}
