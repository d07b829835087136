/*
 * stored.c - a gate's state kept with the projection (trust.h): each
 * partition's released state under a key of the caller's prefix in the
 * store's trust table, written in the same transaction as the offsets.
 */
#include <stdlib.h>
#include <string.h>

#include "ctkn/store.h"
#include "ctkn/trust.h"
#include "internal.h"

#define PREFIX_MAX 8

/* prefix + partition (be32) into k; returns its length. */
static size_t key_of(const char *prefix, int32_t p, uint8_t k[PREFIX_MAX + 4])
{
  size_t n = strlen(prefix);

  memcpy(k, prefix, n);
  ctkn__put_be32(k + n, (uint32_t)p);
  return n + 4;
}

int ctkn_gate_load_stored(ctkn_gate *g, ctkn_store_txn *txn, const char *prefix,
                          int32_t p, struct ctkn_err *err)
{
  uint8_t k[PREFIX_MAX + 4];
  const void *val;
  size_t len, kn = key_of(prefix, p, k);
  int rc = ctkn_store_kv_get(txn, CTKN_TABLE_TRUST, k, kn, &val, &len, err);

  if (rc == CTKN_ENOTFOUND) {
    ctkn_gate_clear(g, p);
    return CTKN_OK;
  }
  return rc != CTKN_OK ? rc : ctkn_gate_load(g, p, val, len, err);
}

int ctkn_gate_save_stored(const ctkn_gate *g, ctkn_store_txn *txn,
                          const char *prefix, int32_t p, struct ctkn_err *err)
{
  uint8_t k[PREFIX_MAX + 4], *buf;
  size_t len, kn = key_of(prefix, p, k);
  int rc;

  if ((rc = ctkn_gate_save(g, p, &buf, &len, err)) != CTKN_OK)
    return rc;
  rc = ctkn_store_kv_put(txn, CTKN_TABLE_TRUST, k, kn, buf, len, err);
  free(buf);
  return rc;
}

int ctkn_gate_stored_checkpoint_at(ctkn_store_txn *txn, const char *prefix,
                                   int32_t p, int64_t *at, struct ctkn_err *err)
{
  uint8_t k[PREFIX_MAX + 4];
  const void *val;
  size_t len, kn = key_of(prefix, p, k);
  int rc = ctkn_store_kv_get(txn, CTKN_TABLE_TRUST, k, kn, &val, &len, err);

  *at = 0;
  if (rc == CTKN_ENOTFOUND)
    return CTKN_OK;
  if (rc == CTKN_OK)
    *at = ctkn_gate_saved_checkpoint_at(val, len);
  return rc;
}
