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

/* The rebuild's projector on st: with root, judging as a fresh follow
 * does, by the keyring as it stands now (a key revoked retroactively is
 * refused from the log's start). */
static int open_projector(ctkn_projector **p, ctkn_store *st,
                          const struct ctkn_log_config *cfg, ctkn_env env,
                          const uint8_t *root, struct ctkn_err *err)
{
  int rc;

  if ((rc = ctkn_projector_open(p, st, cfg, env, err)) != CTKN_OK ||
      root == NULL)
    return rc;
  if ((rc = ctkn_projector_set_trust(*p, root, err)) == CTKN_OK)
    rc = ctkn_projector_refresh_keyring(*p, err);
  return rc;
}

static int build(ctkn_store *st, const struct ctkn_log_config *cfg,
                 ctkn_env env, const uint8_t *root, const int64_t *targets,
                 int32_t n, struct ctkn_projector_stats *stats,
                 struct ctkn_err *err)
{
  ctkn_projector *p = NULL;
  int rc;

  if ((rc = open_projector(&p, st, cfg, env, root, err)) != CTKN_OK) {
    ctkn_projector_close(p);
    return rc;
  }
  rc = ctkn_projector_catch_up(p, targets, n, err);
  if (rc == CTKN_OK) {
    /* The destinations too, where the settings topic exists. */
    ctkn_settings_follower *f = NULL;
    rc = ctkn_settings_follower_open(&f, st, cfg, err);
    if (rc == CTKN_OK)
      rc = ctkn_projector_trust_settings(p, f, err);
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

/* A rebuild in progress: the live projection in dir, the new one built
 * beside it in side, and what each step leaves for the next. */
struct rebuild {
  const char *dir;
  const struct ctkn_log_config *cfg;
  ctkn_env env;
  size_t map_size;
  const uint8_t *root; /* the trust root's public key, or NULL */
  struct ctkn_projector_stats *stats;
  char *side, *prev, *lockpath; /* dir.rebuild, dir.previous, its lock */
  int lockfd;
  ctkn_store *live;     /* NULL when it has a format this build cannot open */
  ctkn_store *fresh;    /* the new projection, in side */
  ctkn_store_txn *lock; /* live's writer lock, held until the swap */
};

/* One rebuild at a time; a leftover side directory is a dead one's. */
static int lock_rebuild(struct rebuild *r, struct ctkn_err *err)
{
  if ((r->lockfd = open(r->lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
      flock(r->lockfd, LOCK_EX | LOCK_NB) != 0)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "%.200s: another rebuild of this projection is running",
                     r->lockpath);
  ctkn_store_remove(r->side);
  return CTKN_OK;
}

/* The live projection, unless it has a format this build cannot open:
 * that is what a rebuild is for, and its writers are old builds, which
 * the operator stops first. A frozen replay is not rebuilt. */
static int open_live(struct rebuild *r, struct ctkn_err *err)
{
  struct ctkn_store_opts opts = {.map_size = r->map_size};
  char *data = ctkn__suffixed(r->dir, "/data.mdb");
  char as_of[CTKN_TIME_BUF];
  struct stat sb;
  bool exists = data != NULL && stat(data, &sb) == 0;
  int rc;

  free(data);
  if (!exists)
    return ctkn__err(err, CTKN_ENOTFOUND,
                     "%.200s holds no projection to rebuild (ctkn project "
                     "builds one)",
                     r->dir);
  rc = ctkn_store_open(&r->live, r->dir, &opts, err);
  if (rc == CTKN_EFORMAT) {
    ctkn__diag(CTKN_DIAG_WARN, "rebuild",
               "%s: %s; rebuilding it in this build's format", r->dir,
               err->msg);
    r->live = NULL;
    return CTKN_OK;
  }
  if (rc != CTKN_OK ||
      (rc = ctkn_store_bind(r->live, r->cfg->topic, r->env, err)) != CTKN_OK ||
      (rc = ctkn_store_frozen(r->live, as_of, err)) != CTKN_OK)
    return rc;
  if (as_of[0] != '\0')
    return ctkn__err(err, CTKN_ECONFLICT,
                     "%.200s is a frozen replay as of %s; replay again "
                     "instead",
                     r->dir, as_of);
  return CTKN_OK;
}

/* Build beside the live projection, from the start of the log, without
 * fsyncs. */
static int build_beside(struct rebuild *r, struct ctkn_err *err)
{
  struct ctkn_store_opts opts = {.map_size = r->map_size, .no_sync = true};
  int rc;

  if ((rc = ctkn_store_open(&r->fresh, r->side, &opts, err)) != CTKN_OK ||
      (rc = ctkn_store_bind(r->fresh, r->cfg->topic, r->env, err)) != CTKN_OK ||
      (rc = build(r->fresh, r->cfg, r->env, r->root, NULL, 0, r->stats, err)) !=
          CTKN_OK ||
      (rc = build(r->fresh, r->cfg, r->env, r->root, NULL, 0, r->stats, err)) !=
          CTKN_OK)
    return rc;
  return CTKN_OK;
}

/* Stop the live projection's writers (LMDB's writer lock, kept in
 * r->lock) and read where it stands: *targets (*n entries, the
 * partitions up to the last one with records). */
static int stop_live(struct rebuild *r, int64_t **targets, int32_t *n,
                     struct ctkn_err *err)
{
  int32_t last = 0;
  int rc;

  if ((rc = ctkn_store_begin(r->live, true, &r->lock, err)) != CTKN_OK)
    return rc;
  if ((*targets = calloc(CTKN_STORE_MAX_PARTITIONS, sizeof(**targets))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "rebuild: out of memory");
  for (int32_t i = 0; i < CTKN_STORE_MAX_PARTITIONS; i++) {
    if ((rc = ctkn_store_offset(r->lock, i, &(*targets)[i], err)) != CTKN_OK)
      return rc;
    if ((*targets)[i] > 0)
      last = i + 1;
  }
  *n = last;
  return CTKN_OK;
}

/* A notifier's delivery state is not in the log: carry it over from the
 * live projection. */
static int carry_local(struct rebuild *r, struct ctkn_err *err)
{
  ctkn_store_txn *to = NULL;
  int rc;

  if ((rc = ctkn_store_begin(r->fresh, true, &to, err)) != CTKN_OK)
    return rc;
  if ((rc = ctkn__store_copy_local(r->lock, to, err)) != CTKN_OK) {
    ctkn_store_abort(to);
    return rc;
  }
  return ctkn_store_commit(to, err);
}

/* Stop the live projection's writers, bring the new one to at least where
 * the live one stands, and carry its local state over. */
static int overtake(struct rebuild *r, struct ctkn_err *err)
{
  int64_t *targets = NULL;
  int32_t n = 0;
  int rc = CTKN_OK;

  if (r->live != NULL)
    rc = stop_live(r, &targets, &n, err);
  if (rc == CTKN_OK)
    rc = build(r->fresh, r->cfg, r->env, r->root, targets, n, r->stats, err);
  free(targets);
  if (rc == CTKN_OK && r->lock != NULL)
    rc = carry_local(r, err);
  return rc;
}

/* Put the new projection in dir's place and release the live one. The
 * old one stays in dir.previous until the next rebuild, for a way back. */
static int swap_in(struct rebuild *r, struct ctkn_err *err)
{
  int rc;

  if ((rc = ctkn_store_sync(r->fresh, err)) != CTKN_OK)
    return rc;
  ctkn_store_close(r->fresh);
  r->fresh = NULL;
  if ((rc = ctkn_store_exchange(r->side, r->dir, err)) != CTKN_OK)
    return rc;
  ctkn_store_abort(r->lock); /* nothing written: the lock was the point */
  r->lock = NULL;
  ctkn_store_close(r->live);
  r->live = NULL;
  ctkn_store_remove(r->prev);
  if (rename(r->side, r->prev) != 0)
    ctkn__diag(CTKN_DIAG_WARN, "rebuild", "the old projection stays in %s: %s",
               r->side, strerror(errno));
  return CTKN_OK;
}

int ctkn_projector_rebuild(const char *dir, const struct ctkn_log_config *cfg,
                           ctkn_env env, size_t map_size,
                           const uint8_t *trust_root,
                           struct ctkn_projector_stats *stats,
                           struct ctkn_err *err)
{
  /* A --db that is a symbolic link is rebuilt where it points: the swap
   * renames directories, and renaming the link would leave its target
   * (and whoever opened it by its real path) on the old projection. */
  char *real = realpath(dir, NULL);
  if (real != NULL)
    dir = real;
  struct rebuild r = {.dir = dir,
                      .cfg = cfg,
                      .env = env,
                      .map_size = map_size,
                      .root = trust_root,
                      .stats = stats,
                      .side = ctkn__suffixed(dir, ".rebuild"),
                      .prev = ctkn__suffixed(dir, ".previous"),
                      .lockpath = ctkn__suffixed(dir, ".rebuild.lock"),
                      .lockfd = -1};
  int rc;

  memset(stats, 0, sizeof(*stats));
  if (r.side == NULL || r.prev == NULL || r.lockpath == NULL)
    rc = ctkn__err(err, CTKN_ENOMEM, "rebuild: out of memory");
  else if ((rc = lock_rebuild(&r, err)) == CTKN_OK &&
           (rc = open_live(&r, err)) == CTKN_OK &&
           (rc = build_beside(&r, err)) == CTKN_OK &&
           (rc = overtake(&r, err)) == CTKN_OK)
    rc = swap_in(&r, err);

  ctkn_store_abort(r.lock);
  ctkn_store_close(r.fresh);
  ctkn_store_close(r.live);
  if (rc != CTKN_OK && r.side != NULL)
    ctkn_store_remove(r.side);
  if (r.lockfd >= 0)
    close(r.lockfd);
  free(r.side);
  free(r.prev);
  free(r.lockpath);
  free(real);
  return rc;
}
