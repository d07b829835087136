/*
 * fuzz_gate.c - libFuzzer target: bytes as a stream of records on four
 * partitions, each with headers a writer might send (ctkn-writer,
 * ctkn-seq, ctkn-chain, ctkn-event-type, ...) and a value, fed to a trust
 * gate (trust.h) judging by a fixed keyring, lazily or not, in stateful or
 * mid-log mode, with or without an adopted prefix, with the writer's key
 * revoked retroactively in the settings keyring or not; genuine signed records
 * from a writer of that keyring, and root-signed positional keyring records
 * (ctkn.keyring: one revoking the writer's key, one not, versions 3 and 2) are
 * mixed in at points the bytes choose.
 *
 * Whatever the bytes: every record fed comes out once, in its partition's
 * order, or is still held back; a saved state loads again; nothing leaks
 * or reads out of bounds (ASan). Any broken promise aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/crypto.h"
#include "ctkn/keyring.h"
#include "ctkn/trust.h"

#define NPARTS 4
#define MAXREC 64
#define MAXHDR 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {
    CTKN_HDR_WRITER, CTKN_HDR_SEQ, CTKN_HDR_CHAIN, CTKN_HDR_EVENT_TYPE,
    CTKN_HDR_SCHEMA, "ce_id",      "content-type", "other"};

static struct ctkn_keyring kr, kr_retro;
static ctkn_seckey *sk, *root;
static ctkn_pubkey *root_pub;
static char writer_hdr[CTKN_WRITER_BUF];
static uint8_t *ring_val[2]; /* positional keyrings: v2 active, v3 revoked */
static size_t ring_len[2];

/* Root-signed copies of kr, version v, the writer's key revoked or not. */
static void make_ring(int i, uint64_t v, bool revoked)
{
  struct ctkn_keyring c;

  ctkn_keyring_init(&c);
  if (ctkn_keyring_copy(&c, &kr, NULL) != CTKN_OK)
    abort();
  c.version = v;
  c.keys[0].revoked = revoked;
  if (ctkn_trust_keyring_value(root, &c, &ring_val[i], &ring_len[i], NULL) !=
      CTKN_OK)
    abort();
  ctkn_keyring_free(&c);
}

static void init(void)
{
  struct ctkn_writer_key k = {0};

  if (sk != NULL)
    return;
  if (ctkn_seckey_generate(&sk, NULL) != CTKN_OK)
    abort();
  ctkn_keyring_init(&kr);
  kr.version = 1;
  memset(kr.log_id, 0x11, sizeof(kr.log_id));
  ctkn_seckey_public(sk, k.public_key);
  ctkn_key_id(k.public_key, k.key_id);
  snprintf(k.scopes[0], sizeof(k.scopes[0]), "client_token.*");
  k.nscopes = 1;
  if (ctkn_keyring_add_key(&kr, &k, NULL) != CTKN_OK)
    abort();
  uint8_t inst[CTKN_INSTANCE_LEN] = {1};
  ctkn_trust_writer_str(k.key_id, inst, writer_hdr);
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  if (ctkn_seckey_generate(&root, NULL) != CTKN_OK)
    abort();
  ctkn_seckey_public(root, pub);
  if (ctkn_pubkey_new(&root_pub, pub, NULL) != CTKN_OK)
    abort();
  make_ring(0, 2, false);
  make_ring(1, 3, true);
  ctkn_keyring_init(&kr_retro);
  if (ctkn_keyring_copy(&kr_retro, &kr, NULL) != CTKN_OK)
    abort();
  kr_retro.version = 4;
  kr_retro.keys[0].revoked = kr_retro.keys[0].retroactive = true;
}

struct rec {
  struct ctkn_log_msg m;
  struct ctkn_log_header h[MAXHDR + 3];
  char *bytes; /* owned: values and header values */
};

/* A positional keyring record: ring_val[i] on part at off. */
static void keyring_record(struct rec *r, int i, int32_t part, int64_t off)
{
  r->bytes = malloc(ring_len[i]);
  memcpy(r->bytes, ring_val[i], ring_len[i]);
  r->h[0] = (struct ctkn_log_header){CTKN_HDR_EVENT_TYPE, CTKN_TYPE_KEYRING,
                                     strlen(CTKN_TYPE_KEYRING)};
  r->m = (struct ctkn_log_msg){.partition = part,
                               .offset = off,
                               .timestamp_ms = 1700000000000 + off,
                               .key = "keyring",
                               .key_len = 7,
                               .value = r->bytes,
                               .value_len = ring_len[i],
                               .headers = r->h,
                               .nheaders = 1};
  ctkn_log_msg_note_headers(&r->m);
}

/* Take n bytes of input, or fewer at its end. */
static size_t take(const uint8_t **p, size_t *left, size_t n)
{
  if (n > *left)
    n = *left;
  *p += n;
  *left -= n;
  return n;
}

static void fuzz_record(struct rec *r, int32_t part, int64_t off,
                        const uint8_t **p, size_t *left)
{
  size_t nh = *left ? (**p % (MAXHDR + 1)) : 0, at = 0;

  take(p, left, 1);
  r->bytes = malloc(600 * (MAXHDR + 1));
  memset(&r->m, 0, sizeof(r->m));
  for (size_t i = 0; i < nh; i++) {
    size_t name = *left ? **p % 8 : 0, len;
    take(p, left, 1);
    len = *left ? **p : 0;
    take(p, left, 1);
    if (i == 0 && name == 0) { /* often a writer header of the keyring */
      memcpy(r->bytes + at, writer_hdr, strlen(writer_hdr));
      len = strlen(writer_hdr);
    } else {
      const uint8_t *src = *p;
      len = take(p, left, len);
      memcpy(r->bytes + at, src, len);
    }
    r->h[i] = (struct ctkn_log_header){names[name], r->bytes + at, len};
    at += len;
  }
  size_t vlen = *left ? **p : 0;
  take(p, left, 1);
  const uint8_t *src = *p;
  vlen = take(p, left, vlen);
  memcpy(r->bytes + at, src, vlen);
  r->m.partition = part;
  r->m.offset = off;
  r->m.timestamp_ms = 1700000000000 + off;
  r->m.value = r->bytes + at;
  r->m.value_len = vlen;
  r->m.key = "k";
  r->m.key_len = 1;
  r->m.headers = r->h;
  r->m.nheaders = nh;
  ctkn_log_msg_note_headers(&r->m);
}

/* A genuine batch of the keyring's writer: its first record's copy. */
static void genuine(struct rec *r, ctkn_signer *sg, int32_t part, int64_t off,
                    bool checkpoint_only)
{
  struct ctkn_log_record in = {.partition = part,
                               .key = "k",
                               .klen = 1,
                               .value = "v",
                               .vlen = 1,
                               .event_type = "client_token.created",
                               .schema_version = 1},
                         *out;
  size_t nout, at = 0;
  const struct ctkn_log_record *o;

  if (ctkn_signer_prepare(sg, &in, checkpoint_only ? 0 : 1,
                          checkpoint_only ? CTKN_SIGN_HEARTBEAT : 0,
                          1700000000000000 + off, &out, &nout,
                          NULL) != CTKN_OK ||
      nout == 0)
    abort();
  o = &out[0];
  for (size_t i = 0; i < nout && checkpoint_only; i++)
    if (out[i].partition == part)
      o = &out[i];
  r->bytes = malloc(4096);
  memset(&r->m, 0, sizeof(r->m));
  for (size_t i = 0; i < o->nheaders && i < MAXHDR + 3; i++) {
    memcpy(r->bytes + at, o->headers[i].value, o->headers[i].size);
    r->h[i] = (struct ctkn_log_header){o->headers[i].name, r->bytes + at,
                                       o->headers[i].size};
    at += o->headers[i].size;
  }
  memcpy(r->bytes + at, o->value, o->vlen);
  r->m = (struct ctkn_log_msg){.partition = part,
                               .offset = off,
                               .timestamp_ms = 1700000000000 + off,
                               .key = o->key ? "k" : NULL,
                               .key_len = o->key ? 1 : 0,
                               .value = r->bytes + at,
                               .value_len = o->vlen,
                               .headers = r->h,
                               .nheaders = o->nheaders};
  ctkn_log_msg_note_headers(&r->m);
  ctkn_signer_done(sg, true, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct rec recs[MAXREC];
  int64_t next[NPARTS] = {0};
  size_t n = 0, out = 0, held = 0;
  ctkn_signer *sg;
  ctkn_gate *g;
  struct ctkn_gate_out o;
  uint8_t mode = size ? data[0] : 0;

  init();
  take(&data, &size, 1);
  if (ctkn_gate_open(&g, &kr, NPARTS, NULL) != CTKN_OK ||
      ctkn_signer_open(&sg, sk, kr.log_id, NPARTS, NULL) != CTKN_OK)
    abort();
  ctkn_gate_set_root(g, root_pub);
  if (mode & 1)
    ctkn_gate_set_midstream(g);
  if ((mode & 0x82) == 0x80) /* the key revoked retroactively since */
    ctkn_gate_set_keyring(g, &kr_retro);
  if (mode & 2) /* an adopted prefix on one partition */
    ctkn_gate_adopt(g, (mode >> 2) % NPARTS, mode >> 4);
  while (size > 0 && n < MAXREC) {
    uint8_t op = data[0];
    int32_t part = op % NPARTS;
    take(&data, &size, 1);
    if ((op >> 2) % 4 == 0)
      genuine(&recs[n], sg, part, next[part]++, (op >> 4) & 1);
    else if ((op >> 2) % 4 == 1 && (op >> 6) & 1)
      keyring_record(&recs[n], (op >> 7) & 1, part, next[part]++);
    else
      fuzz_record(&recs[n], part, next[part]++, &data, &size);
    if ((op >> 5) & 1)
      ctkn_gate_feed_lazy(g, &recs[n].m, n, NULL);
    else
      ctkn_gate_feed(g, &recs[n].m, n, NULL);
    n++;
  }
  for (int32_t p = 0; p < NPARTS; p++) {
    int64_t last = -1, first;
    while (ctkn_gate_next(g, p, &o)) {
      if (o.tag >= n || recs[o.tag].m.partition != p ||
          recs[o.tag].m.offset <= last)
        abort(); /* out of order, or not fed */
      last = recs[o.tag].m.offset;
      out++;
    }
    held += ctkn_gate_held(g, p, &first);
    uint8_t *buf;
    size_t len;
    uint64_t ring = ctkn_gate_keyring_version(g, p);
    if (ctkn_gate_save(g, p, &buf, &len, NULL) != CTKN_OK ||
        ctkn_gate_load(g, p, buf, len, NULL) != CTKN_OK ||
        ctkn_gate_keyring_version(g, p) != ring)
      abort(); /* the positional keyring is part of the saved state */
    free(buf);
  }
  if (out + held != n)
    abort(); /* a record lost or doubled */
  for (size_t i = 0; i < n; i++)
    free(recs[i].bytes);
  ctkn_gate_close(g);
  ctkn_signer_close(sg);
  return 0;
}
