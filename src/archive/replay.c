/*
 * replay.c - an archive replayed into a new projection.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"
#include "ctkn/projector.h"
#include "ctkn/settings.h"
#include "ctkn/trust.h"

struct replay_ctx {
  ctkn_store *st;
  ctkn_env env;
  ctkn_projector_judged *judged; /* with a trust root; else NULL */
  bool *paused;
  int32_t n;
  struct ctkn_projector_stats stats;
};

static int replay_batch(void *arg, const struct ctkn_log_msg *msgs,
                        const struct ctkn_archive_headers *headers, size_t n,
                        struct ctkn_err *err)
{
  struct replay_ctx *x = arg;

  (void)headers;
  if (x->judged != NULL)
    return ctkn_projector_judged_apply(x->judged, msgs, n, x->paused, x->n,
                                       &x->stats, err);
  return ctkn_projector_apply(x->st, x->env, msgs, n, x->paused, x->n,
                              &x->stats, err);
}

/* The hash of partition p's records below end in the archive, as
 * ctkn_trust_adopt_hash() hashes the log's. */
struct prefix_ctx {
  ctkn_sha256 *h;
  int32_t p;
  int64_t end, next; /* the offset the hash expects next */
};

static int prefix_batch(void *arg, const struct ctkn_log_msg *msgs,
                        const struct ctkn_archive_headers *headers, size_t n,
                        struct ctkn_err *err)
{
  struct prefix_ctx *x = arg;

  (void)headers;
  (void)err;
  for (size_t i = 0; i < n; i++)
    if (msgs[i].partition == x->p && msgs[i].offset == x->next &&
        msgs[i].offset < x->end) {
      ctkn_trust_adopt_add(x->h, &msgs[i]);
      x->next++;
    }
  return CTKN_OK;
}

static int replay_adopt_hash(void *arg, const uint8_t log_id[CTKN_LOG_ID_LEN],
                             int32_t p, int64_t end,
                             uint8_t out[CTKN_CHAIN_LEN], struct ctkn_err *err)
{
  const char *path = arg;
  struct prefix_ctx x = {.p = p, .end = end};
  struct ctkn_archive_info info;
  int rc;

  if ((x.h = ctkn_trust_adopt_begin(log_id, p)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "replay: out of memory");
  rc = ctkn_archive_read(path, prefix_batch, &x, &info, err);
  ctkn_archive_info_free(&info);
  ctkn_trust_adopt_end(x.h, out);
  if (rc == CTKN_OK && x.next != end)
    rc = ctkn__err_field(err, CTKN_EINVAL, "partition",
                         "an adoption covers partition %" PRId32
                         " up to offset %" PRId64
                         ", and the archive lacks its records from offset "
                         "%" PRId64,
                         p, end, x.next);
  return rc;
}

/* CTKN_ECONFLICT unless st holds no token and no offset of the
 * archive's partitions. */
static int check_empty(ctkn_store *st, const struct ctkn_archive_info *info,
                       struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  int64_t any = 0;
  rc = ctkn_store_count(txn, &any, err);
  for (int32_t p = 0; p < info->partitions && any == 0 && rc == CTKN_OK; p++)
    rc = ctkn_store_offset(txn, p, &any, err);
  ctkn_store_abort(txn);
  if (rc != CTKN_OK)
    return rc;
  if (any != 0)
    return ctkn__err(err, CTKN_ECONFLICT,
                     "the projection is not empty; replay into a new --db");
  return CTKN_OK;
}

/* Read the archive again, applying its records: it must not have changed
 * since info was read, and no partition may pause. */
static int replay_records(const char *path, struct replay_ctx *x,
                          const struct ctkn_archive_info *info,
                          struct ctkn_err *err)
{
  struct ctkn_archive_info again;
  int rc;

  if ((x->paused = calloc((size_t)x->n, sizeof(*x->paused))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "replay: out of memory");
  rc = ctkn_archive_read(path, replay_batch, x, &again, err);
  if (rc == CTKN_OK && memcmp(again.sha256, info->sha256, CTKN_SHA256_LEN))
    rc = ctkn__err(err, CTKN_EIO, "%.200s changed while it was replayed", path);
  ctkn_archive_info_free(&again);
  for (int32_t p = 0; rc == CTKN_OK && p < x->n; p++)
    if (x->paused[p])
      rc = ctkn__err(err, CTKN_EFORMAT,
                     "partition %" PRId32 " holds a newer schema version "
                     "than this build's %d; upgrade ctkn to replay it",
                     p, CTKN_SCHEMA_VERSION);
  free(x->paused);
  x->paused = NULL;
  return rc;
}

/* The records, judged by the root's keyring in the settings archive (or
 * the archive itself) when there is a root, else as they are. */
static int replay_judged(const char *path, struct replay_ctx *x,
                         const struct ctkn_archive_info *info,
                         const uint8_t *trust_root, const char *settings_path,
                         struct ctkn_err *err)
{
  struct ctkn_archive_trust at;
  ctkn_pubkey *root = NULL;
  int rc;

  if (trust_root == NULL)
    return replay_records(path, x, info, err);
  if ((rc = ctkn_pubkey_new(&root, trust_root, err)) != CTKN_OK)
    return rc;
  rc = ctkn_archive_trust_read(settings_path ? settings_path : path, root, &at,
                               err);
  ctkn_pubkey_free(root);
  if (rc != CTKN_OK)
    return rc;
  struct ctkn_trust_source src = {.keyring = at.keyring,
                                  .keyring_len = at.keyring_len,
                                  .adoption = &at.ad,
                                  .adopt_hash = replay_adopt_hash,
                                  .arg = (void *)path};
  if ((rc = ctkn_projector_judged_open(&x->judged, x->st, x->env, trust_root,
                                       &src, err)) == CTKN_OK)
    rc = replay_records(path, x, info, err);
  ctkn_projector_judged_close(x->judged);
  x->judged = NULL;
  ctkn_archive_trust_free(&at);
  return rc;
}

/* After a replay: every partition's records were judged (applied or
 * quarantined). Records still held back at the archive's end wait for a
 * proof (a checkpoint) it does not hold: an edited record, a cut chain,
 * or an export taken between a batch and its checkpoint. A live
 * projection would wait, showing its lag; a frozen one cannot, and must
 * not present the state before them as the archive's. */
static int check_judged(ctkn_store *st, const struct ctkn_archive_info *info,
                        struct ctkn_err *err)
{
  ctkn_store_txn *txn;
  int rc;

  if ((rc = ctkn_store_begin(st, false, &txn, err)) != CTKN_OK)
    return rc;
  for (int32_t p = 0; rc == CTKN_OK && p < info->partitions; p++) {
    int64_t at = 0;
    if (info->end_offsets[p] <= info->start_offsets[p])
      continue;
    if ((rc = ctkn_store_offset(txn, p, &at, err)) == CTKN_OK &&
        at < info->end_offsets[p])
      rc = ctkn__err_field(
          err, CTKN_EDECODE, "records",
          "partition %" PRId32 " offset %" PRId64 " to %" PRId64
          ": never proven by a checkpoint in the archive (an edited or cut "
          "record, or an export taken between a batch and its checkpoint; "
          "ctkn audit verify names them), so the replay stops before them",
          p, at < info->start_offsets[p] ? info->start_offsets[p] : at,
          info->end_offsets[p]);
  }
  ctkn_store_abort(txn);
  return rc;
}

int ctkn_archive_replay(const char *path, ctkn_store *st, ctkn_env env,
                        const uint8_t *trust_root, const char *settings_path,
                        struct ctkn_archive_info *info, struct ctkn_err *err)
{
  struct replay_ctx x = {.st = st, .env = env};
  int rc;

  /* Check the whole file first: a projection is never built from a
   * broken archive. */
  if ((rc = ctkn_archive_read(path, NULL, NULL, info, err)) != CTKN_OK)
    return rc;
  x.n = info->partitions;
  if ((rc = check_empty(st, info, err)) == CTKN_OK &&
      (rc = ctkn_store_bind(st, info->topic, env, err)) == CTKN_OK &&
      (rc = replay_judged(path, &x, info, trust_root, settings_path, err)) ==
          CTKN_OK &&
      (rc = check_judged(st, info, err)) == CTKN_OK)
    /* Frozen, as of its latest record: an archive says nothing past it. */
    rc = ctkn_store_freeze(
        st, info->last_timestamp_ms < 0 ? 0 : info->last_timestamp_ms * 1000,
        err);
  if (rc != CTKN_OK)
    ctkn_archive_info_free(info);
  return rc;
}
