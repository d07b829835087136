/*
 * archive.h - the audit archive: the whole log in one hash-chained file
 * (proto/ctkn_archive.proto), and what is done with one: verify it,
 * replay it into a projection, import it into a new topic.
 *
 * A file holds a Header (topic, partition count, start and end offsets),
 * every record with its Kafka coordinates, timestamp, key, value and
 * headers, partition by partition, then a Trailer. Each entry carries the
 * SHA-256 of the entry before it; the archive's hash is the Trailer's, so
 * it commits to the whole file. Readers check the chain, the order of the
 * coordinates and the count, and refuse a file that fails any of them.
 *
 * Lifetime: ctkn_archive_writer_open() -> add... -> finish (or abandon);
 *           the other calls are one-shot. A ctkn_archive_info filled by
 *           any of them owns its offset arrays: release them with
 *           ctkn_archive_info_free(). A call that fails leaves it empty.
 * Errors:   CTKN_EDECODE for a file that is not a whole, unbroken archive
 *           (err->msg names the entry and the rule); CTKN_EIO for file
 *           errors; CTKN_ECONFLICT for an output that exists or a target
 *           topic that is not empty; the log's and the store's errors.
 * Not here: what the records mean (the projector decides, as ever); the
 *           entries' bytes (codec.h).
 */
#ifndef CTKN_ARCHIVE_H
#define CTKN_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/keyring.h"
#include "ctkn/log.h"
#include "ctkn/store.h"
#include "ctkn/token.h"

#define CTKN_ARCHIVE_FORMAT 1

struct ctkn_archive_info {
  char topic[250];
  int32_t partitions;
  int64_t *start_offsets; /* malloc'd, one per partition */
  int64_t *end_offsets;   /* malloc'd, one per partition (next offsets) */
  uint64_t records;
  uint8_t sha256[CTKN_SHA256_LEN]; /* the archive's hash */
  int64_t last_timestamp_ms;       /* latest record timestamp, -1: none */
};

/* Free info's offset arrays (info itself is the caller's); NULL and an
 * empty info are no-ops. Errors: none. */
void ctkn_archive_info_free(struct ctkn_archive_info *info);

/* ---- writing ----------------------------------------------------------- */

typedef struct ctkn_archive_writer ctkn_archive_writer;

/*
 * Start an archive at path, which must not exist (CTKN_ECONFLICT). It is
 * written as path + ".partial" and renamed into place by finish, so a
 * crash never leaves a file that passes for whole. start and end hold n
 * offsets each; everything is borrowed for the call (the writer copies
 * what it keeps). On success *out is a new writer: caller owns it, end it
 * with ctkn_archive_writer_finish() or ctkn_archive_writer_abandon(). On
 * failure *out is NULL and no file is left behind.
 * Errors: CTKN_ECONFLICT (path exists, or another export writes its
 * partial file); CTKN_EUSAGE (n outside 0..CTKN_STORE_MAX_PARTITIONS);
 * CTKN_EIO; CTKN_ENOMEM.
 */
int ctkn_archive_writer_open(ctkn_archive_writer **out, const char *path,
                             const char *topic, int32_t n, const int64_t *start,
                             const int64_t *end, struct ctkn_err *err);

/* Append one record; records come partition by partition, by offset.
 * Its headers are m's when it has any, else headers (nh entries, may be
 * NULL); both are borrowed for the call.
 * Errors: CTKN_EUSAGE (out of order, outside the partitions, more than
 * 64 headers, or an entry past 64 MiB); CTKN_EIO; CTKN_ENOMEM. */
int ctkn_archive_writer_add(ctkn_archive_writer *w,
                            const struct ctkn_log_msg *m,
                            const struct ctkn_log_header *headers, size_t nh,
                            struct ctkn_err *err);

/* Write the Trailer, fsync, link into place and free w, also on failure
 * (takes ownership of w); info (may be NULL) receives the summary. On
 * failure the partial file is removed.
 * Errors: CTKN_ECONFLICT (a file appeared at path meanwhile); CTKN_EIO;
 * CTKN_ENOMEM. */
int ctkn_archive_writer_finish(ctkn_archive_writer *w,
                               struct ctkn_archive_info *info,
                               struct ctkn_err *err);

/* Remove the partial file and free w. NULL is a no-op. Errors: none. */
void ctkn_archive_writer_abandon(ctkn_archive_writer *w);

/* ---- reading ----------------------------------------------------------- */

struct ctkn_archive_headers {
  const struct ctkn_log_header *list;
  size_t n;
};

/* Called with a batch of records in file order; everything is borrowed
 * for the call. A non-zero return stops the read and is returned. */
typedef int (*ctkn_archive_cb)(void *arg, const struct ctkn_log_msg *msgs,
                               const struct ctkn_archive_headers *headers,
                               size_t n, struct ctkn_err *err);

/*
 * Read and check the archive at path, handing its records to cb in
 * batches (cb NULL: check only, as `ctkn audit verify` does). Records
 * reach cb before the whole file is checked: callers that must not act on
 * a bad file check it first. info receives the summary (see Lifetime).
 * Errors: CTKN_EDECODE (not a whole, unbroken archive); CTKN_EIO;
 * CTKN_ENOMEM; cb's non-zero return.
 */
int ctkn_archive_read(const char *path, ctkn_archive_cb cb, void *arg,
                      struct ctkn_archive_info *info, struct ctkn_err *err);

/* ---- whole-log operations ---------------------------------------------- */

/* Export the topic, from each partition's start to its end as they stand
 * when the export begins, into path (as ctkn_archive_writer_open()); info
 * receives the summary. Borrows cfg and path for the call.
 * Errors: those of the writer; CTKN_ETIMEOUT (a partition stalled for
 * cfg's timeout); CTKN_EKAFKA; CTKN_ENOMEM. */
int ctkn_archive_export(const struct ctkn_log_config *cfg, const char *path,
                        struct ctkn_archive_info *info, struct ctkn_err *err);

/*
 * Check the archive, then build the projection of its records in st (a
 * new, empty store), bound to the archive's topic, and freeze it as of
 * its latest record. Same log prefix, same digest as a projection of the
 * topic. With trust_root (the root's public key; NULL: none) every record
 * passes the projector's trust gate exactly as a fresh follow of the
 * topic judges it (ctkn_projector_judged_open()): a forged, replayed,
 * unsigned or out-of-scope record is quarantined with its reason, a
 * pending one holds its partition back, and one still held at the
 * archive's end fails the replay (never proven). The keyring a follower
 * reads from the settings topic, and its adoptions, are read from
 * settings_path (an export of the settings topic; NULL: the archive
 * itself, which holds the keyring placed on every partition but no
 * adoption): the newest one the root signed. An adopted prefix is hashed
 * from the archive. Borrows everything for the call; info receives the
 * summary.
 * Errors: those of ctkn_archive_read(), also for settings_path;
 * CTKN_ECONFLICT (st is not empty); CTKN_EFORMAT (a record of a newer
 * schema version); CTKN_EINVAL (field "keyring": no keyring signed by the
 * root; field "partition": the archive lacks an adopted prefix's
 * records); CTKN_EDECODE (field "records": a record never proven);
 * CTKN_EIO (the file changed meanwhile); CTKN_ESTORE; CTKN_ENOMEM.
 */
int ctkn_archive_replay(const char *path, ctkn_store *st, ctkn_env env,
                        const uint8_t *trust_root, const char *settings_path,
                        struct ctkn_archive_info *info, struct ctkn_err *err);

/* What trust reads of the settings topic, from an archive of it (or of an
 * event topic, which holds the placed keyrings): the newest keyring record
 * root signed (its value and decoded), and every adoption root signed for
 * that keyring's log, merged. Release with ctkn_archive_trust_free(). */
struct ctkn_archive_trust {
  uint8_t *keyring; /* the record's value, keyring_len bytes */
  size_t keyring_len;
  struct ctkn_keyring kr;
  struct ctkn_adoption ad;
};

/* Read them from the archive at path into *t. On failure *t is empty.
 * Errors: those of ctkn_archive_read(); CTKN_EINVAL (field "keyring":
 * none signed by root); CTKN_ENOMEM. */
int ctkn_archive_trust_read(const char *path, const ctkn_pubkey *root,
                            struct ctkn_archive_trust *t, struct ctkn_err *err);
/* Free what t owns; NULL and an empty t are no-ops. */
void ctkn_archive_trust_free(struct ctkn_archive_trust *t);

/*
 * Check the archive, then write its records into cfg's topic, created
 * with the archive's partition count when missing; an existing topic must
 * have that count and be empty. Every record keeps its partition, key,
 * value, headers and timestamp, and, when the export started at offset 0,
 * its offset (checked): a projection of the new topic has the same
 * digest. Borrows cfg for the call; info receives the summary.
 * Errors: those of ctkn_archive_read(); CTKN_ECONFLICT (the topic has
 * another partition count or is not empty); CTKN_EKAFKA (also a record
 * that landed elsewhere); CTKN_EIO (the file changed meanwhile);
 * CTKN_ENOMEM.
 */
int ctkn_archive_import(const char *path, const struct ctkn_log_config *cfg,
                        int replication_factor, struct ctkn_archive_info *info,
                        struct ctkn_err *err);

#endif /* CTKN_ARCHIVE_H */
