/*
 * keycmd.h - one API-key command end to end: catch the settings
 * projection up, plan (akey.h), append to the settings topic, wait for
 * the projection's verdict (settings.h's ctkn_settings_submit()). What
 * `ctkn apikey` and the /api-keys routes run.
 *
 * Errors:   those of ctkn_akey_plan() (CTKN_EINVAL, CTKN_ENOTFOUND,
 *           CTKN_ECONFLICT); those of ctkn_settings_submit() (CTKN_EUSAGE
 *           for a schema the keyring does not enable, CTKN_ECONFLICT when
 *           a concurrent change won, CTKN_EKAFKA, CTKN_ETIMEOUT,
 *           CTKN_ESTORE); CTKN_ENOMEM. err->msg never holds a secret.
 * Thread:   the functions hold no state.
 * Not here: the rules (akey.h), the projection and authentication
 *           (keylog.h).
 */
#ifndef CTKN_KEYCMD_H
#define CTKN_KEYCMD_H

#include <stdbool.h>

#include "ctkn/akey.h"
#include "ctkn/error.h"
#include "ctkn/settings.h"

/* Who writes: the trust root (NULL: unsigned) and the writer key (NULL:
 * unsigned), both borrowed for the call. */
struct ctkn_keycmd_trust {
  const uint8_t *trust_root;
  const ctkn_seckey *writer_key;
};

struct ctkn_keycmd_outcome {
  struct ctkn_akey key; /* the key after the command */
  bool appended;        /* false: nothing to change */
  /* A create's or a rotation's new key string, the only time it exists;
   * else "". Wiped on failure. */
  char secret[CTKN_AKEY_BUF];
  /* The appended record's event ID; "" when nothing was appended. */
  char event_id[CTKN_EVT_ID_LEN + 1];
};

/*
 * Run cmd against the settings topic of cfg's event topic, for keys of
 * env, at the clock's now. Borrows everything for the call. A command
 * that changes nothing (revoking a revoked key, an import of a key the
 * log holds) succeeds with out->appended false.
 */
int ctkn_keycmd_execute(ctkn_store *st, const struct ctkn_log_config *cfg,
                        const struct ctkn_keycmd_trust *trust, ctkn_env env,
                        const struct ctkn_akey_command *cmd,
                        struct ctkn_keycmd_outcome *out, struct ctkn_err *err);

/* Bring st's settings projection (API keys included) up to the settings
 * topic's end, judged by trust's root when it has one: what `ctkn apikey
 * get|list` do before they read. Errors: the follower's (CTKN_ENOTFOUND
 * without the topic, CTKN_ETIMEOUT, CTKN_EFORMAT, CTKN_EKAFKA,
 * CTKN_ESTORE); CTKN_ENOMEM. */
int ctkn_keycmd_refresh(ctkn_store *st, const struct ctkn_log_config *cfg,
                        const struct ctkn_keycmd_trust *trust,
                        struct ctkn_err *err);

#endif /* CTKN_KEYCMD_H */
