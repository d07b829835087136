/*
 * digest.c - SHA-256 over the replicated tables, so two projections of the
 * same log prefix can be compared.
 *
 * The digest covers every table but meta, in the order tokens,
 * token_index, history, rejected, quarantine, idempotency, offsets:
 *
 *   for each table: u64be(len name) name u64be(entries)
 *                   { u64be(len key) key u64be(len value) value } ...
 *
 * with the entries in key order. The entry count after the name keeps the
 * serialisation unambiguous (a table's end cannot pass for a key). meta is
 * excluded as a whole: the format is a property of the build and topic
 * and environment are checked by ctkn_store_bind(), and a replay's
 * recorded cut must not make two projections of the same prefix differ.
 * The tables from positions on are not covered either. The digest hashes
 * stored bytes, so it relies on the encoders being canonical (msgpack-c
 * always picks the shortest form; codec/store_values.c and
 * codec/record.c never change a format's bytes).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/crypto.h"
#include "store/store_int.h"

/* The digest's order, fixed by the format. */
static const int digest_order[] = {T_TOKENS,     T_INDEX, T_HISTORY, T_REJECTED,
                                   T_QUARANTINE, T_IDEM,  T_OFFSETS};

/*
 * SHA-256 input goes through a 64 KiB buffer: the tables are millions of
 * short keys and values, and one EVP update per length prefix would cost
 * more than the hashing.
 */
#define HBUF_SIZE (64 * 1024)

struct hbuf {
  ctkn_sha256 *h;
  struct ctkn__buf b; /* HBUF_SIZE bytes reserved at the start */
};

static void hbuf_add(struct hbuf *hb, const void *p, size_t n)
{
  if (n > HBUF_SIZE - hb->b.len) {
    ctkn_sha256_update(hb->h, hb->b.data, hb->b.len);
    ctkn__buf_reset(&hb->b);
  }
  if (n >= HBUF_SIZE) {
    ctkn_sha256_update(hb->h, p, n);
    return;
  }
  (void)ctkn__buf_append(&hb->b, p, n); /* within the reserve: no failure */
}

static void hbuf_bytes(struct hbuf *hb, const void *p, size_t n)
{
  uint8_t len[8];

  ctkn__put_be64(len, n);
  hbuf_add(hb, len, sizeof(len));
  hbuf_add(hb, p, n);
}

static int digest_table(ctkn_store_txn *t, int table, struct hbuf *hb,
                        struct ctkn_err *err)
{
  const char *name = ctkn__store_table_names[table];
  uint8_t count[8];
  uint64_t seen = 0;
  MDB_cursor *c;
  MDB_stat ms;
  MDB_val k, v;
  int rc;

  rc = mdb_stat(t->txn, t->st->dbi[table], &ms);
  if (rc != MDB_SUCCESS)
    return ctkn__store_lmdb_err(err, rc, "mdb_stat");
  hbuf_bytes(hb, name, strlen(name));
  ctkn__put_be64(count, ms.ms_entries);
  hbuf_add(hb, count, sizeof(count));

  if ((rc = ctkn__store_cursor(t, table, &c, err)) != CTKN_OK)
    return rc;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    hbuf_bytes(hb, k.mv_data, k.mv_size);
    hbuf_bytes(hb, v.mv_data, v.mv_size);
    seen++;
  }
  mdb_cursor_close(c);
  if (rc != MDB_NOTFOUND)
    return ctkn__store_lmdb_err(err, rc, "digest");
  if (seen != ms.ms_entries)
    return ctkn__err(err, CTKN_ESTORE, "%s: %" PRIu64 " entries, counted %zu",
                     name, seen, (size_t)ms.ms_entries);
  return CTKN_OK;
}

int ctkn_store_digest(ctkn_store_txn *t, uint8_t out[CTKN_HASH_LEN],
                      struct ctkn_err *err)
{
  struct hbuf hb = {NULL, CTKN__BUF_INIT};
  int rc;

  if ((hb.h = ctkn_sha256_new()) == NULL ||
      ctkn__buf_reserve(&hb.b, HBUF_SIZE) != CTKN_OK) {
    ctkn_sha256_free(hb.h);
    return ctkn__err(err, CTKN_ENOMEM, "digest: out of memory");
  }
  rc = ctkn__store_batch_sync(t, err);
  for (size_t i = 0; i < CTKN__ARRAY_LEN(digest_order) && rc == CTKN_OK; i++)
    rc = digest_table(t, digest_order[i], &hb, err);
  if (rc == CTKN_OK) {
    ctkn_sha256_update(hb.h, hb.b.data, hb.b.len);
    ctkn_sha256_final(hb.h, out);
  }
  ctkn_sha256_free(hb.h);
  ctkn__buf_free(&hb.b);
  return rc;
}
