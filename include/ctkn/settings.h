/*
 * settings.h - notification destinations (Paddle's notification settings),
 * event-sourced on a settings topic and projected into every replica.
 *
 * The values (the destination, its events, commands and the pure rules
 * that plan and apply them) are in setting.h, which this header includes.
 * Here is what touches the store and the log: the projection of the
 * settings topic into LMDB, its follower, and one command end to end.
 *
 * A destination's changes are events on the settings topic
 * (`<topic>_settings` unless told otherwise), keyed by the destination ID;
 * every replica's projector applies them to its LMDB with the same version
 * rule as tokens (first in the log wins), so all replicas agree on the
 * destinations without talking to each other.
 *
 * A destination's creation event records where its deliveries start: the
 * event topic's end offsets when it was created. It receives the events
 * from there on, never the history before it.
 *
 * Tables: destinations, destination_start, settings_offsets and
 *         settings_log (store.h's side tables; replicated, not digested).
 * Lifetime: ctkn_settings_follower_open() -> poll / catch_up ->
 *           ctkn_settings_follower_close(); the rest are one-shot.
 * Errors:   CTKN_EINVAL naming the field and the rule; CTKN_EBADREQ for a
 *           command that changes nothing it could; CTKN_ENOTFOUND;
 *           CTKN_ECONFLICT when a concurrent change won; the log's
 *           (CTKN_EKAFKA, CTKN_ETIMEOUT) and the store's (CTKN_ESTORE)
 *           errors; CTKN_ENOMEM.
 * Thread:   the functions hold no state; a settings follower belongs to
 *           one thread.
 * Not here: the values and their rules (setting.h), delivering
 *           (notify.h), encodings (codec.h).
 */
#ifndef CTKN_SETTINGS_H
#define CTKN_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/log.h"
#include "ctkn/setting.h"
#include "ctkn/store.h"

#define CTKN_SETTINGS_SUFFIX "_settings"

/* ---- the projection ----------------------------------------------------- */

/* The settings topic's name for an event topic, topic + "_settings", into
 * out (outsz bytes). Borrows topic for the call.
 * Errors: CTKN_EINVAL (field "topic": the name would pass Kafka's 249
 * characters, or out is too small). */
int ctkn_settings_topic(const char *topic, char *out, size_t outsz,
                        struct ctkn_err *err);

/*
 * Create the settings topic of cfg's event topic (ctkn_settings_topic())
 * when missing, with one partition: destination changes are few, and one
 * total order lets every replica apply them alike. *created tells whether
 * it was created now; *partitions receives its partition count either
 * way. Borrows cfg for the call.
 * Errors: CTKN_EINVAL (field "topic": the name would pass Kafka's 249),
 * and ctkn_log_create_topic()'s: CTKN_EUSAGE, CTKN_EINVAL (the broker
 * refused the values), CTKN_EKAFKA, CTKN_ETIMEOUT.
 */
int ctkn_settings_create_topic(const struct ctkn_log_config *cfg,
                               int replication_factor, bool *created,
                               int32_t *partitions, struct ctkn_err *err);

/* A destination by ID into *out; removed ones only when include_deleted.
 * Borrows txn and id for the call.
 * Errors: CTKN_ENOTFOUND (no such destination, a malformed ID, or a
 * removed one without include_deleted); CTKN_ESTORE (LMDB failed or the
 * stored value does not decode). */
int ctkn_settings_get(ctkn_store_txn *txn, const char *id, bool include_deleted,
                      struct ctkn_destination *out, struct ctkn_err *err);
/* Every live destination in ID order: *out is a new array of *n entries,
 * caller owns it; release with free(). On failure *out is NULL and *n 0.
 * Errors: CTKN_ESTORE (LMDB failed or a value does not decode);
 * CTKN_ENOMEM. */
int ctkn_settings_list(ctkn_store_txn *txn, struct ctkn_destination **out,
                       size_t *n, struct ctkn_err *err);
/* Where destination id's deliveries start on partition: its recorded
 * start; 0 for a partition added after it was created, and when the
 * read fails (the earliest start, so a failure repeats, never skips).
 * Errors: none. */
int64_t ctkn_settings_start(ctkn_store_txn *txn, const char *id,
                            int32_t partition);

/*
 * Apply n records read from the settings topic (borrowed for the call) in
 * one write transaction, skipping those below the stored settings
 * offsets. A record that does not decode or is invalid is quarantined and
 * a rejected one recorded (each is also logged as a warning, diag.h);
 * every record's fate goes in the settings log. A record of a newer
 * schema stops the batch: what came before it is committed.
 * Errors: CTKN_EFORMAT (a newer schema version; upgrade); CTKN_ESTORE;
 * CTKN_ENOMEM.
 */
int ctkn_settings_project(ctkn_store *st, const struct ctkn_log_msg *msgs,
                          size_t n, struct ctkn_err *err);

/* Where destination id receives the settings topic's api_key.* events
 * from on settings partition sp: past its created record; for one
 * created before that was kept, where the settings events are filled to
 * now (so nothing before this build is sent). */
int64_t ctkn_settings_akey_start(ctkn_store_txn *txn, const char *id,
                                 int32_t sp);

/* The fate of the settings record at (partition, offset): *applied, and
 * the reason (reasonsz bytes, NUL-terminated; "" when applied).
 * Errors: CTKN_ENOTFOUND (not projected yet); CTKN_ESTORE. */
int ctkn_settings_fate(ctkn_store_txn *txn, int32_t partition, int64_t offset,
                       bool *applied, char *reason, size_t reasonsz,
                       struct ctkn_err *err);

/* The code under which the store keeps the events of the settings
 * topic's event type name (store.h, ctkn_store_put_setting_event()), for
 * GET /events: 0..31; -1 for a type that is no such event
 * (api_key.used, api_key.rotated, or not the settings topic's). */
int ctkn_settings_event_code(const char *name);

/* An applied api_key.* event of the settings topic, as the notifier
 * reads it in log order. Valid until the txn ends or writes. */
struct ctkn_settings_akey_event {
  int32_t partition; /* of the settings topic */
  int64_t offset;
  int type; /* CTKN_DEST_AKEY_* (setting.h): its subscription type */
  int64_t occurred_at;
  uint64_t version;
  char event_id[CTKN_EVT_ID_LEN + 1];
  char key_id[7 + CTKN_ULID_LEN + 1]; /* apikey_ + ULID */
  const char *json; /* the envelope GET /events serves, json_len bytes */
  size_t json_len;
};

/* The first applied api_key.* event (not used or rotated) at or after
 * (partition, offset) in log order, or exactly there when exact. The
 * settings projection keeps them in this order as it applies them (a
 * projection from before it has none before its upgrade).
 * Errors: CTKN_ENOTFOUND (none); CTKN_ESTORE. */
int ctkn_settings_akey_event_at(ctkn_store_txn *txn, int32_t partition,
                                int64_t offset, bool exact,
                                struct ctkn_settings_akey_event *out,
                                struct ctkn_err *err);

/* ---- following the settings topic ------------------------------------ */

typedef struct ctkn_settings_follower ctkn_settings_follower;

/* A consumer of the settings topic (cfg's topic + "_settings"), assigned
 * at the stored offsets. On success *out is a new follower: caller owns
 * it, release with ctkn_settings_follower_close(); it keeps st, which
 * must outlive it, and copies cfg. On failure *out is NULL.
 * Errors: CTKN_ENOTFOUND (the topic does not exist: run `ctkn init`);
 * CTKN_EINVAL (field "topic"); CTKN_EKAFKA; CTKN_ESTORE; CTKN_ENOMEM. */
int ctkn_settings_follower_open(ctkn_settings_follower **out, ctkn_store *st,
                                const struct ctkn_log_config *cfg,
                                struct ctkn_err *err);
/* Close and free. NULL is a no-op. */
void ctkn_settings_follower_close(ctkn_settings_follower *f);
/*
 * Judge every record by kr (borrowed; its contents may change, as a
 * projector refreshes it) through a gate, as the projector does for
 * events (trust.h): what fails is quarantined with its reason, what is
 * held back is read again. refresh (may be NULL) is called, with arg,
 * when a record names a writer key kr lacks. Errors: CTKN_ENOMEM.
 */
struct ctkn_keyring;
int ctkn_settings_follower_set_trust(ctkn_settings_follower *f,
                                     const struct ctkn_keyring *kr,
                                     int (*refresh)(void *arg,
                                                    struct ctkn_err *err),
                                     void *arg, struct ctkn_err *err);
/* Apply what has arrived, waiting up to timeout_ms for a first record;
 * *applied counts the records projected. A record of a newer schema is
 * logged (diag.h) and stops the follower, which then applies nothing
 * until an upgrade; the call still succeeds.
 * Errors: CTKN_EKAFKA; CTKN_ESTORE; CTKN_ENOMEM. */
int ctkn_settings_follower_poll(ctkn_settings_follower *f, int timeout_ms,
                                size_t *applied, struct ctkn_err *err);
/* The follower's consumer, for ctkn_consumer_wait() beside others (a
 * projector waits on the events and the settings at once); NULL while the
 * follower is stopped (it would apply nothing). Valid until the follower
 * is closed; poll it only through ctkn_settings_follower_poll(). */
ctkn_consumer *ctkn_settings_follower_consumer(ctkn_settings_follower *f);
/* Project the settings topic up to its end as it stands now.
 * Errors: CTKN_ETIMEOUT (not there within cfg's timeout); CTKN_EFORMAT
 * (a newer schema version stopped the follower); CTKN_EKAFKA (also a
 * settings topic of more than 64 partitions); CTKN_ESTORE; CTKN_ENOMEM. */
int ctkn_settings_follower_catch_up(ctkn_settings_follower *f,
                                    struct ctkn_err *err);

/* ---- one command end to end ------------------------------------------- */

struct ctkn_dest_outcome {
  struct ctkn_destination dest; /* the state after the command */
  bool appended;
  char secret[CTKN_SECRET_BUF]; /* an add's endpoint secret, else "" */
};

/*
 * Catch the settings projection up, plan, append to the settings topic
 * and wait until the projection has judged the event. An add reads the
 * event topic's end offsets for its start and needs key; the others pass
 * key NULL. Borrows everything for the call. A command that changes
 * nothing succeeds with out->appended false. On failure out->secret is
 * wiped. policy (NULL: live, nothing allowed, the default limit) judges a
 * new URL first (ctkn_dest_url_check(), before any Kafka client opens)
 * and bounds the active destinations: an add of an active one, or a
 * resume, beyond policy->max_active is refused. Nothing is appended on a
 * refusal.
 * Errors: those of ctkn_settings_plan(); those of ctkn_dest_url_check()
 * (CTKN_EINVAL, field "destination"); CTKN_EMAXACTIVE (Paddle's
 * notification_maximum_active_settings_reached); CTKN_EUSAGE (an add
 * without key); CTKN_ECONFLICT (a concurrent change won); those of the
 * follower; CTKN_EKAFKA; CTKN_ESTORE; CTKN_ENOMEM.
 */
int ctkn_settings_execute(ctkn_store *st, const struct ctkn_log_config *cfg,
                          const uint8_t *key,
                          const struct ctkn_dest_command *cmd,
                          const struct ctkn_dest_policy *policy,
                          struct ctkn_dest_outcome *out, struct ctkn_err *err);

/* ---- other records of the settings topic ------------------------------ */

/* Who appends, and what: trust_root (NULL: unsigned), the writer key
 * that signs (a ctkn_seckey, or NULL), the record type its scope must
 * allow, and the schema version the records are written with (a keyring
 * must enable it when it is past CTKN_SCHEMA_WRITTEN). */
struct ctkn_settings_writer {
  const uint8_t *trust_root;
  const ctkn_seckey *writer_key;
  const char *scope;
  int schema_version;
};

/* A plan's "nothing to append". */
#define CTKN_SETTINGS_NOTHING 1

/* Called once the settings projection is caught up: fill *rec (key,
 * value, timestamp, event type; the partition is chosen by the key) and
 * return CTKN_OK, with *buf (released by the caller with free()) holding
 * whatever rec points into; or CTKN_SETTINGS_NOTHING; or an error. */
typedef int (*ctkn_settings_plan_fn)(void *arg, ctkn_store *st,
                                     struct ctkn_log_record *rec, uint8_t **buf,
                                     struct ctkn_err *err);

/*
 * One record end to end, for record types that live on the settings
 * topic beside destinations (API keys, keycmd.h): catch the settings
 * projection up, plan (plan(arg, ...)), append (signed by w's key when a
 * keyring is in force, with a closing checkpoint in the same batch) and
 * wait for the projection's verdict. *appended tells whether a record
 * went out. Borrows everything for the call.
 * Errors: the plan's; CTKN_EUSAGE (field "schema_versions": the keyring
 * does not enable w->schema_version); CTKN_EINVAL (field "writer_key": a
 * key the keyring does not allow w->scope); CTKN_ECONFLICT (the
 * projection rejected the record); the follower's; CTKN_EKAFKA;
 * CTKN_ESTORE; CTKN_ENOMEM.
 */
int ctkn_settings_submit(ctkn_store *st, const struct ctkn_log_config *cfg,
                         const struct ctkn_settings_writer *w,
                         ctkn_settings_plan_fn plan, void *arg, bool *appended,
                         struct ctkn_err *err);

#endif /* CTKN_SETTINGS_H */
