/*
 * lease.c - the group lease and the cursors (notify_int.h).
 *
 * Notifiers share the event topic's partitions through one consumer
 * group (log.h's lease). Each lane's cursor is written to this
 * projection's notify_cursors table with the attempts that moved it, and
 * to the group: partition p's committed offset is the lowest cursor of
 * its lanes, with metadata "v1" followed by ";<destination ULID>=<cursor>"
 * for every lane (up to Kafka's 4096 bytes; a destination left out
 * resumes from its own start, so an overflow repeats deliveries but never
 * skips one). A notifier that takes a partition over starts each lane at
 * the furthest of the destination's start, its own cursor and the
 * group's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "notify_int.h"

static void lane_key(uint8_t k[LANE_KEY_LEN], const char *dest, int32_t p)
{
  memcpy(k, dest, CTKN_DEST_ID_LEN);
  ctkn__put_be32(k + CTKN_DEST_ID_LEN, (uint32_t)p);
}

/* A lane's key partition in notify_cursors. */
static int32_t lane_kpart(bool akey, int32_t p)
{
  return akey ? (int32_t)(AKEY_LANE_BIT | (uint32_t)p) : p;
}

/* The cursor a metadata string records for dest, or -1: its event-topic
 * lane's (";<ULID>="), or its akey lane's (";@<ULID>="). */
static int64_t meta_cursor(const char *meta, const char *dest, bool akey)
{
  const char *ulid = dest + 7; /* past "ntfset_" */
  const char *p = meta;

  if (strncmp(meta, "v1", 2) != 0)
    return -1;
  while ((p = strchr(p, ';')) != NULL) {
    p++;
    if (akey && *p++ != '@')
      continue;
    if (strncmp(p, ulid, CTKN_ULID_LEN) == 0 && p[CTKN_ULID_LEN] == '=')
      return strtoll(p + CTKN_ULID_LEN + 1, NULL, 10);
  }
  return -1;
}

int64_t ctkn__ntf_akey_lane_start(struct notifier *nf, ctkn_store_txn *txn,
                                  const char *dest, int32_t sp)
{
  uint8_t k[LANE_KEY_LEN];
  const void *v;
  size_t vlen;
  int64_t at = ctkn_settings_akey_start(txn, dest, sp), m;

  lane_key(k, dest, lane_kpart(true, sp));
  if (ctkn_store_kv_get(txn, CTKN_TABLE_CURSORS, k, sizeof(k), &v, &vlen,
                        NULL) == CTKN_OK &&
      vlen == 8 && (int64_t)ctkn__get_be(v, 8) > at)
    at = (int64_t)ctkn__get_be(v, 8);
  if (nf->parts[AKEY_HOLDER].fetched &&
      (m = meta_cursor(nf->parts[AKEY_HOLDER].meta, dest, true)) > at)
    at = m;
  return at;
}

int64_t ctkn__ntf_lane_start(struct notifier *nf, ctkn_store_txn *txn,
                             const char *dest, int32_t p)
{
  uint8_t k[LANE_KEY_LEN];
  const void *v;
  size_t vlen;
  int64_t at = ctkn_settings_start(txn, dest, p), m;

  lane_key(k, dest, p);
  if (ctkn_store_kv_get(txn, CTKN_TABLE_CURSORS, k, sizeof(k), &v, &vlen,
                        NULL) == CTKN_OK &&
      vlen == 8 && (int64_t)ctkn__get_be(v, 8) > at)
    at = (int64_t)ctkn__get_be(v, 8);
  if (nf->parts[p].fetched &&
      (m = meta_cursor(nf->parts[p].meta, dest, false)) > at)
    at = m;
  return at;
}

void ctkn__ntf_fetch_commit(struct notifier *nf, int32_t p)
{
  struct ctkn_err err;
  int64_t off;

  if (ctkn_lease_committed(nf->lease, p, &off, nf->parts[p].meta,
                           sizeof(nf->parts[p].meta), &err) != CTKN_OK) {
    ctkn__diag(CTKN_DIAG_WARN, "notify", "partition %" PRId32 ": %s", p,
               err.msg);
    nf->parts[p].meta[0] = '\0';
  }
  nf->parts[p].fetched = true;
  nf->parts[p].last_commit[0] = '\0';
}

/* ---- writing the delivery state ----------------------------------------- */

static int put_pend(ctkn_store_txn *txn, const struct ntf_pend *p,
                    struct ctkn_err *err)
{
  uint8_t *buf, k[ATT_KEY_LEN];
  size_t len;
  int rc;

  if ((rc = ctkn_notification_encode(&p->n, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_NOTIFICATIONS, p->n.id,
                         CTKN_NTF_ID_LEN, buf, len, err);
  free(buf);
  if (rc != CTKN_OK)
    return rc;
  memcpy(k, p->n.id, CTKN_NTF_ID_LEN);
  ctkn__put_be32(k + CTKN_NTF_ID_LEN, p->a.n);
  if ((rc = ctkn_attempt_encode(&p->a, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_ATTEMPTS, k, sizeof(k), buf, len, err);
  free(buf);
  if (rc == CTKN_OK && p->dequeue) {
    rc =
        ctkn_store_kv_del(txn, CTKN_TABLE_QUEUE, p->n.id, CTKN_NTF_ID_LEN, err);
    if (rc == CTKN_ENOTFOUND)
      rc = CTKN_OK;
  }
  return rc;
}

/* The pending attempts and the moved cursors, into txn. */
static int put_state(struct notifier *nf, ctkn_store_txn *txn,
                     struct ctkn_err *err)
{
  const struct ntf_pend *pend = (const void *)nf->pend.data;
  size_t npend = nf->pend.len / sizeof(*pend);
  int rc = CTKN_OK;

  for (size_t i = 0; i < npend && rc == CTKN_OK; i++)
    rc = put_pend(txn, &pend[i], err);
  for (size_t i = 0; i < ntf_nlanes(nf) && rc == CTKN_OK; i++) {
    struct ntf_lane *l = ntf_lanes(nf)[i];
    uint8_t k[LANE_KEY_LEN], v[8];
    if (!l->cursor_dirty)
      continue;
    lane_key(k, l->dest, lane_kpart(l->akey, l->partition));
    ctkn__put_be64(v, (uint64_t)l->cursor);
    rc = ctkn_store_kv_put(txn, CTKN_TABLE_CURSORS, k, sizeof(k), v, sizeof(v),
                           err);
  }
  return rc;
}

int ctkn__ntf_flush(struct notifier *nf, bool force, struct ctkn_err *err)
{
  ctkn_store_txn *txn = NULL;
  int64_t now = ctkn_now_us();
  size_t npend = nf->pend.len / sizeof(struct ntf_pend);
  bool dirty = npend > 0;
  int rc;

  for (size_t i = 0; i < ntf_nlanes(nf) && !dirty; i++)
    dirty = ntf_lanes(nf)[i]->cursor_dirty;
  if (!dirty ||
      (!force && now - nf->flushed_us < FLUSH_US && npend < FLUSH_MAX))
    return CTKN_OK;
  /* On the log first: the local state never says more than it. */
  if ((rc = ctkn__ntf_dlog_append(nf, false, err)) != CTKN_OK ||
      (rc = ctkn_store_begin(nf->st, true, &txn, err)) != CTKN_OK)
    return rc;
  if ((rc = put_state(nf, txn, err)) != CTKN_OK) {
    ctkn_store_abort(txn);
    return rc;
  }
  if ((rc = ctkn_store_commit(txn, err)) != CTKN_OK)
    return rc;
  for (size_t i = 0; i < ntf_nlanes(nf); i++)
    ntf_lanes(nf)[i]->cursor_dirty = false;
  ctkn__buf_reset(&nf->pend);
  nf->flushed_us = now;
  return CTKN_OK;
}

/* ---- the group ---------------------------------------------------------- */

/* Partition p's metadata into meta; its lowest cursor, or INT64_MAX when
 * it has no lane. */
static int64_t part_meta(struct notifier *nf, int32_t p,
                         char meta[META_MAX + 32])
{
  int64_t low = INT64_MAX;
  size_t len = 2;

  memcpy(meta, "v1", 3);
  /* The lanes of destinations that can be sent to first: when there are
   * more lanes than fit, those left out resume from their destination's
   * start on a takeover, and that must not be an active one behind a
   * crowd of paused ones. */
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < ntf_nlanes(nf); i++) {
      struct ntf_lane *l = ntf_lanes(nf)[i];
      if (l->akey ? p != AKEY_HOLDER : l->partition != p)
        continue;
      if ((ctkn__ntf_sendable(nf, l->dest) != NULL) != (pass == 0))
        continue;
      if (!l->akey && l->cursor < low)
        low = l->cursor;
      if (len + 2 + CTKN_ULID_LEN + 22 < META_MAX)
        len +=
            (size_t)snprintf(meta + len, META_MAX + 32 - len, ";%s%s=%" PRId64,
                             l->akey ? "@" : "", l->dest + 7, l->cursor);
    }
  }
  return low;
}

void ctkn__ntf_commit_lease(struct notifier *nf)
{
  char meta[META_MAX + 32];

  for (int32_t p = 0; p < nf->nparts; p++) {
    struct ctkn_err err;
    int64_t low;
    if (!nf->owned[p])
      continue;
    low = part_meta(nf, p, meta);
    if (low == INT64_MAX || strcmp(meta, nf->parts[p].last_commit) == 0)
      continue;
    if (ctkn_lease_commit(nf->lease, p, low, meta, &err) == CTKN_OK)
      memcpy(nf->parts[p].last_commit, meta, sizeof(meta));
    else
      ctkn__diag(CTKN_DIAG_WARN, "notify", "%s", err.msg);
  }
}

int ctkn__ntf_refresh_parts(struct notifier *nf, struct ctkn_err *err)
{
  int32_t n;
  int rc = ctkn_consumer_partitions(nf->lease, &n, err);

  if (rc != CTKN_OK || n <= nf->nparts)
    return rc;
  if (n > CTKN_STORE_MAX_PARTITIONS)
    n = CTKN_STORE_MAX_PARTITIONS;
  struct ntf_part *parts = realloc(nf->parts, (size_t)n * sizeof(*parts));
  bool *owned = realloc(nf->owned, (size_t)n * sizeof(*owned));
  if (parts != NULL)
    nf->parts = parts;
  if (owned != NULL)
    nf->owned = owned;
  if (parts == NULL || owned == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify: partitions");
  memset(parts + nf->nparts, 0, (size_t)(n - nf->nparts) * sizeof(*parts));
  memset(owned + nf->nparts, 0, (size_t)(n - nf->nparts) * sizeof(*owned));
  nf->nparts = n;
  return CTKN_OK;
}

int ctkn__ntf_serve_lease(struct notifier *nf, int timeout_ms, bool *changed,
                          struct ctkn_err *err)
{
  bool *was = malloc((size_t)(nf->nparts ? nf->nparts : 1));
  int rc;

  if (was == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "notify: lease");
  memcpy(was, nf->owned, (size_t)nf->nparts);
  rc = ctkn_lease_poll(nf->lease, timeout_ms, nf->owned, nf->nparts, changed,
                       err);
  for (int32_t p = 0; p < nf->nparts; p++) {
    if (was[p] != nf->owned[p]) {
      /* Held anew: read the group's state again; lost: forget it. */
      nf->parts[p].fetched = false;
      ctkn__diag(CTKN_DIAG_INFO, "notify", "partition %" PRId32 " %s", p,
                 nf->owned[p] ? "acquired" : "released");
    }
  }
  free(was);
  return rc;
}
