/*
 * testkit.h - what the unit tests of the core share: a temporary
 * directory, a store in it, an in-memory log (fake_log.h), and events
 * planned, encoded and appended as ctkn's own writer would.
 */
#ifndef CTKN_TESTKIT_H
#define CTKN_TESTKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"
#include "ctkn/event.h"
#include "ctkn/keyring.h"
#include "ctkn/log.h"
#include "ctkn/store.h"
#include "ctkn/trust.h"
#include "fake_log.h"

#define TK_TOPIC "client_tokens"

/* A fresh projection in a temporary directory, a fake log with topic
 * TK_TOPIC of nparts partitions, and a configuration pointing at it. */
struct tk {
  char dir[256];
  ctkn_store *st;
  struct fake_log *log;
  struct ctkn_log_config cfg;
  int64_t clock_us; /* tk_now(): strictly increasing */
};

/* Fails the test on any error. Release with tk_close(). */
void tk_open(struct tk *t, int32_t nparts);
void tk_close(struct tk *t);
/* Close and reopen the store (as a new process would). */
void tk_reopen(struct tk *t);

/* An instant later than the last one. */
int64_t tk_now(struct tk *t);

/* Plan a command as the ledger would (fails the test on an error). */
void tk_plan_create(struct tk *t, const char *name, const char *idem,
                    struct ctkn_event *ev);
void tk_plan_change(struct tk *t, const struct ctkn_record *cur,
                    const char *name, bool revoke, struct ctkn_event *ev);

/* The state an applied event leaves (version, partition, offset set). */
void tk_record_of(const struct ctkn_event *ev, int32_t p, int64_t off,
                  struct ctkn_record *out);

/* Encode ev and append it to partition p (< 0: by key) with ctkn's headers
 * and schema_version (1 today); returns its offset, *out_p its partition. */
int64_t tk_append(struct tk *t, int32_t p, const struct ctkn_event *ev,
                  int schema_version, int32_t *out_p);
/* Append bytes that are no event at all. */
int64_t tk_append_raw(struct tk *t, int32_t p, const char *key,
                      const void *value, size_t len, const char *event_type,
                      int schema_version);

/* Build a ctkn_log_msg of ev (encoded into *buf, which the caller frees)
 * for ctkn_projector_apply(). */
struct ctkn_log_msg tk_msg(const struct ctkn_event *ev, int32_t p, int64_t off,
                           uint8_t **buf);

/* The token as the store has it; false when it is not there. */
bool tk_get(struct tk *t, const char *id, struct ctkn_record *out);
/* The store's next offset of partition p. */
int64_t tk_offset(struct tk *t, int32_t p);
/* The store's digest as hex (65 bytes). */
void tk_digest(ctkn_store *st, char hex[65]);

/* A trust root and a client_token.* writer key; release with
 * tk_signing_free(). */
struct tk_signing {
  ctkn_seckey *root, *writer;
  uint8_t root_pub[CTKN_SIGN_PUB_LEN];
};
void tk_signing_free(struct tk_signing *sg);
/* kr: keyring version v of the test log (ID 0x42...) holding writer's
 * public key, scoped client_token.*, revoked or not. */
void tk_writer_keyring(struct ctkn_keyring *kr, uint64_t v,
                       const ctkn_seckey *writer, bool revoked);
/* New keys in sg, and keyring version 1 signed by its root with its
 * writer key in it, on t's settings topic (TK_TOPIC "_settings"). */
void tk_keyring_with(struct tk *t, struct tk_signing *sg);

/* Remove a directory tree. */
void tk_rm_rf(const char *path);

#endif /* CTKN_TESTKIT_H */
