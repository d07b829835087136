/*
 * replay.h - a frozen projection in a new directory: the log as it stood
 * at an instant (ctkn_projector_replay()), or the log an archive holds
 * (ctkn_archive_replay()).
 *
 * Both refuse a directory that already holds a projection, so a replay
 * never lands on a live one, and a replay that fails leaves no directory
 * it created; a directory that existed before is left in place.
 *
 * Errors:   CTKN_ECONFLICT when dir already holds a projection; otherwise
 *           those of the replay (below).
 * Not here: reading the result (query.h: ctkn_query_digest()).
 */
#ifndef CTKN_REPLAY_H
#define CTKN_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "ctkn/error.h"
#include "ctkn/log.h"
#include "ctkn/token.h"

/*
 * Project cfg's topic into a new projection in dir exactly as it stood at
 * as_of_us, bound to cfg's topic and env, and freeze it, judging every
 * record by trust_root's keyring as a follower does (trust.h; NULL only
 * for the unit tests' unsigned logs). map_size 0 takes the store's
 * default. Borrows cfg and trust_root for the call.
 * Errors: CTKN_EINVAL (field "as_of": in the future), CTKN_ECONFLICT
 * (dir holds a projection), the store's
 * (CTKN_ESTORE, CTKN_ENOMEM) and the log's (CTKN_ENOTFOUND for a missing
 * topic, CTKN_EKAFKA, CTKN_ETIMEOUT).
 */
int ctkn_replay_as_of(const char *dir, const struct ctkn_log_config *cfg,
                      ctkn_env env, size_t map_size, const uint8_t *trust_root,
                      int64_t as_of_us, struct ctkn_err *err);

/*
 * Check the archive at path, then build the projection of its records in
 * a new projection in dir, bound to the archive's topic and env, frozen as
 * of its latest record. No Kafka is involved. With trust_root every
 * record is judged as a follower judges it, by the keyring in the
 * settings archive at settings_path (NULL: the archive's own placed
 * keyrings): ctkn_archive_replay(). Borrows everything for the call.
 * Errors: CTKN_ECONFLICT (dir holds a projection), CTKN_EDECODE (not a
 * whole, unbroken archive), CTKN_EINVAL (no keyring signed by the root),
 * CTKN_EIO, CTKN_EFORMAT (a newer schema version), CTKN_ESTORE,
 * CTKN_ENOMEM.
 */
int ctkn_replay_archive(const char *dir, const char *path, ctkn_env env,
                        size_t map_size, const uint8_t *trust_root,
                        const char *settings_path, struct ctkn_err *err);

#endif /* CTKN_REPLAY_H */
