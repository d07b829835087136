/*
 * replay.c - a frozen projection in a new directory, from the log or from
 * an archive, under one rule: never into a projection, and never a
 * directory left behind by a replay that failed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctkn/archive.h"
#include "ctkn/projector.h"
#include "ctkn/replay.h"
#include "ctkn/store.h"
#include "internal.h"
#include "store/shared.h"

/*
 * Refuse dir when it holds a projection; otherwise tell whether dir
 * exists, so that a failure removes only what the replay created.
 */
static int check_target(const char *dir, bool *existed, struct ctkn_err *err)
{
  char *data = ctkn__suffixed(dir, "/data.mdb");
  struct stat sb;
  bool held;

  if (data == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "replay: out of memory");
  held = stat(data, &sb) == 0;
  free(data);
  if (held)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "%.200s already holds a projection; replay into a new "
                     "--db",
                     dir);
  *existed = stat(dir, &sb) == 0;
  return CTKN_OK;
}

/*
 * The replay is built in a directory of its own inside dir (same file
 * system) and its data.mdb linked into dir only once it is whole and
 * frozen: a replay that fails, or is killed, never leaves a projection
 * (half built, not frozen) where dir's readers would take it for the
 * answer and a retry would be refused. *side is that directory.
 */
static int begin_side(const char *dir, char **side, struct ctkn_err *err)
{
  int rc;

  *side = NULL;
  if ((rc = ctkn__store_mkdir_p(dir, err)) != CTKN_OK)
    return rc;
  if ((*side = ctkn__suffixed(dir, "/.replay-XXXXXX")) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "replay: out of memory");
  if (mkdtemp(*side) == NULL) {
    rc = ctkn__err(err, CTKN_ESTORE, "%.200s: %s", *side, strerror(errno));
    free(*side);
    *side = NULL;
  }
  return rc;
}

/* After the replay into side: on success, its data.mdb into dir (link:
 * never over a replay that finished meanwhile); either way side goes, and
 * on failure dir too when the replay made it. */
static int finish(const char *dir, char *side, bool existed, int rc,
                  struct ctkn_err *err)
{
  char *from = side ? ctkn__suffixed(side, "/data.mdb") : NULL;
  char *to = ctkn__suffixed(dir, "/data.mdb");

  if (rc == CTKN_OK && (from == NULL || to == NULL))
    rc = ctkn__err(err, CTKN_ENOMEM, "replay: out of memory");
  if (rc == CTKN_OK && link(from, to) != 0)
    rc = ctkn__err(err, errno == EEXIST ? CTKN_ECONFLICT : CTKN_ESTORE,
                   "%.200s: %s", to, strerror(errno));
  if (side != NULL)
    ctkn_store_remove(side);
  if (rc != CTKN_OK && !existed)
    rmdir(dir);
  free(from);
  free(to);
  free(side);
  return rc;
}

int ctkn_replay_as_of(const char *dir, const struct ctkn_log_config *cfg,
                      ctkn_env env, size_t map_size, const uint8_t *trust_root,
                      int64_t as_of_us, struct ctkn_err *err)
{
  struct ctkn_store_opts opts = {.map_size = map_size};
  ctkn_projector *p = NULL;
  ctkn_store *st = NULL;
  bool existed = false;
  char *side = NULL;
  int rc;

  /* The state at a time still to come is not known: a replay "as of"
   * it would present today's as then's. */
  if (as_of_us > ctkn_now_us())
    return ctkn__err_field(err, CTKN_EINVAL, "as_of",
                           "must not be in the future: the log does not hold "
                           "the state then yet");
  if ((rc = check_target(dir, &existed, err)) != CTKN_OK)
    return rc;
  if ((rc = begin_side(dir, &side, err)) == CTKN_OK &&
      (rc = ctkn_store_open(&st, side, &opts, err)) == CTKN_OK &&
      (rc = ctkn_store_bind(st, cfg->topic, env, err)) == CTKN_OK &&
      (rc = ctkn_projector_open(&p, st, cfg, env, err)) == CTKN_OK &&
      (trust_root == NULL ||
       (rc = ctkn_projector_set_trust(p, trust_root, err)) == CTKN_OK))
    rc = ctkn_projector_replay(p, as_of_us, err);
  ctkn_projector_close(p);
  ctkn_store_close(st);
  return finish(dir, side, existed, rc, err);
}

int ctkn_replay_archive(const char *dir, const char *path, ctkn_env env,
                        size_t map_size, const uint8_t *trust_root,
                        const char *settings_path, struct ctkn_err *err)
{
  struct ctkn_store_opts opts = {.map_size = map_size};
  struct ctkn_archive_info info;
  ctkn_store *st = NULL;
  bool existed = false;
  char *side = NULL;
  int rc;

  if ((rc = check_target(dir, &existed, err)) != CTKN_OK)
    return rc;
  /* Bound to the archive's topic, not cfg's: no Kafka is involved. */
  if ((rc = begin_side(dir, &side, err)) == CTKN_OK &&
      (rc = ctkn_store_open(&st, side, &opts, err)) == CTKN_OK &&
      (rc = ctkn_archive_replay(path, st, env, trust_root, settings_path, &info,
                                err)) == CTKN_OK)
    ctkn_archive_info_free(&info);
  ctkn_store_close(st);
  return finish(dir, side, existed, rc, err);
}
