/*
 * chain.c - what a writer's chain covers and how it links, and what a
 * signature signs (trust.h).
 *
 * Every variable-length part is framed by its length (a u32, big-endian),
 * so no two different records frame to the same bytes: a null key or
 * header value is 0xffffffff, an empty one 0. Numbers are big-endian.
 */
#include <stdlib.h>
#include <string.h>

#include "ctkn/crypto.h"
#include "ctkn/trust.h"
#include "internal.h"

#define NULL_LEN 0xffffffffu

static const char chain_tag[] = "ctkn chain v1";
static const char sign_tag[] = "ctkn trust v1";

bool ctkn_trust_covered(const char *name)
{
  if (strcmp(name, CTKN_HDR_CHAIN) == 0)
    return false;
  return strncmp(name, "ctkn-", 5) == 0 || strncmp(name, "ce_", 3) == 0 ||
         strcmp(name, "content-type") == 0;
}

static void put_len(ctkn_sha256 *h, size_t n, bool null)
{
  uint8_t b[4];

  ctkn__put_be32(b, null ? NULL_LEN : (uint32_t)n);
  ctkn_sha256_update(h, b, sizeof(b));
}

static void put_part(ctkn_sha256 *h, const void *p, size_t n)
{
  put_len(h, n, p == NULL);
  if (p != NULL && n > 0)
    ctkn_sha256_update(h, p, n);
}

/* Append the u32 big-endian length of a part (NULL_LEN for a null one)
 * and its bytes at *w. */
static uint8_t *frame(uint8_t *w, const void *p, size_t n)
{
  ctkn__put_be32(w, p == NULL ? NULL_LEN : (uint32_t)n);
  w += 4;
  if (p != NULL && n > 0)
    memcpy(w, p, n);
  return w + (p != NULL ? n : 0);
}

/* The framed bytes are hashed in one call: from a buffer on the stack when
 * they fit (a signed event's are ~600 bytes), else one on the heap. One
 * SHA-256 call instead of ~30 small updates and a context per record was
 * most of this function's cost on the write path (it runs twice per
 * record there: the signer's and the writer's own projection's). */
#define FRAME_STACK 2048

/* Headers a record may have for its digest to take the quick path (the
 * covered names' lengths kept on the stack). */
#define FRAME_HEADERS 64

int ctkn_trust_record_digest(const uint8_t log_id[CTKN_LOG_ID_LEN],
                             const struct ctkn_log_msg *m,
                             uint8_t out[CTKN_CHAIN_LEN], struct ctkn_err *err)
{
  uint8_t stack[FRAME_STACK], *b = stack, *w;
  size_t lens[FRAME_HEADERS], *len = lens, count = 0, total;

  if (m->nheaders > FRAME_HEADERS &&
      (len = malloc(m->nheaders * sizeof(*len))) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory hashing a record");
  /* Each covered name's length (0: not covered), and a covered name twice
   * refused: a name decides whether it is covered, so only covered ones
   * can repeat one. */
  total = CTKN_LOG_ID_LEN + 4 + 4 + (m->key ? m->key_len : 0) + 4 +
          (m->value ? m->value_len : 0) + 4;
  for (size_t i = 0; i < m->nheaders; i++) {
    const struct ctkn_log_header *x = &m->headers[i];
    len[i] = ctkn_trust_covered(x->name) ? strlen(x->name) : 0;
    if (len[i] == 0)
      continue;
    for (size_t j = 0; j < i; j++) {
      if (len[j] == len[i] &&
          memcmp(m->headers[j].name, x->name, len[i]) == 0) {
        if (len != lens)
          free(len);
        return ctkn__err(err, CTKN_EINVAL, "covered header %.64s appears twice",
                         x->name);
      }
    }
    count++;
    total += 4 + len[i] + 4 + (x->value ? x->size : 0);
  }
  if (total > sizeof(stack) && (b = malloc(total)) == NULL) {
    if (len != lens)
      free(len);
    return ctkn__err(err, CTKN_ENOMEM, "out of memory hashing a record");
  }
  memcpy(b, log_id, CTKN_LOG_ID_LEN);
  w = b + CTKN_LOG_ID_LEN;
  ctkn__put_be32(w, (uint32_t)m->partition);
  w = frame(w + 4, m->key, m->key_len);
  w = frame(w, m->value, m->value_len);
  ctkn__put_be32(w, (uint32_t)count);
  w += 4;
  for (size_t i = 0; i < m->nheaders; i++) {
    if (len[i] == 0)
      continue;
    w = frame(w, m->headers[i].name, len[i]);
    w = frame(w, m->headers[i].value, m->headers[i].size);
  }
  ctkn_sha256_once(b, (size_t)(w - b), out);
  if (b != stack)
    free(b);
  if (len != lens)
    free(len);
  return CTKN_OK;
}

void ctkn_trust_chain_start(const uint8_t log_id[CTKN_LOG_ID_LEN],
                            int32_t partition, const char *key_id,
                            const uint8_t instance[CTKN_INSTANCE_LEN],
                            uint8_t out[CTKN_CHAIN_LEN])
{
  ctkn_sha256 *h = ctkn_sha256_new();
  uint8_t b[4];

  if (h == NULL)
    abort(); /* as every digest here: a silent zero would be worse */
  ctkn_sha256_update(h, chain_tag, sizeof(chain_tag));
  ctkn_sha256_update(h, log_id, CTKN_LOG_ID_LEN);
  ctkn__put_be32(b, (uint32_t)partition);
  ctkn_sha256_update(h, b, sizeof(b));
  put_part(h, key_id, strlen(key_id));
  ctkn_sha256_update(h, instance, CTKN_INSTANCE_LEN);
  ctkn_sha256_final(h, out);
  ctkn_sha256_free(h);
}

void ctkn_trust_chain_next(const uint8_t prev[CTKN_CHAIN_LEN],
                           const uint8_t digest[CTKN_CHAIN_LEN],
                           uint8_t out[CTKN_CHAIN_LEN])
{
  uint8_t both[2 * CTKN_CHAIN_LEN];

  memcpy(both, prev, CTKN_CHAIN_LEN);
  memcpy(both + CTKN_CHAIN_LEN, digest, CTKN_CHAIN_LEN);
  ctkn_sha256_once(both, sizeof(both), out);
}

int ctkn_trust_signing_bytes(ctkn_signed_kind kind, const uint8_t *body,
                             size_t body_len, uint8_t **out, size_t *len,
                             struct ctkn_err *err)
{
  const char *name = ctkn_signed_kind_str(kind);
  size_t n;

  *out = NULL;
  if (name == NULL)
    return ctkn__err(err, CTKN_EINVAL, "unknown signed kind %d", (int)kind);
  n = sizeof(sign_tag) + strlen(name) + 1 + body_len;
  if ((*out = malloc(n)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory signing");
  memcpy(*out, sign_tag, sizeof(sign_tag));
  memcpy(*out + sizeof(sign_tag), name, strlen(name) + 1);
  if (body_len > 0)
    memcpy(*out + sizeof(sign_tag) + strlen(name) + 1, body, body_len);
  *len = n;
  return CTKN_OK;
}

int ctkn_trust_sign(const ctkn_seckey *k, const char *signer,
                    ctkn_signed_kind kind, uint8_t *body, size_t body_len,
                    struct ctkn_signed *s, struct ctkn_err *err)
{
  uint8_t *msg;
  size_t len = 0;
  int rc;

  memset(s, 0, sizeof(*s));
  if ((rc = ctkn_trust_signing_bytes(kind, body, body_len, &msg, &len, err)) !=
      CTKN_OK)
    return rc;
  rc = ctkn_seckey_sign(k, msg, len, s->signature, err);
  free(msg);
  if (rc != CTKN_OK)
    return rc;
  s->body = body;
  s->body_len = body_len;
  ctkn__strlcpy(s->signer, signer, sizeof(s->signer));
  return CTKN_OK;
}

bool ctkn_trust_verify(const ctkn_pubkey *k, ctkn_signed_kind kind,
                       const struct ctkn_signed *s)
{
  uint8_t *msg;
  size_t len = 0;
  bool ok;

  if (ctkn_trust_signing_bytes(kind, s->body, s->body_len, &msg, &len, NULL) !=
      CTKN_OK)
    return false;
  ok = ctkn_pubkey_verify(k, msg, len, s->signature);
  free(msg);
  return ok;
}

void ctkn_trust_writer_str(const char *key_id,
                           const uint8_t instance[CTKN_INSTANCE_LEN],
                           char out[CTKN_WRITER_BUF])
{
  size_t n = strlen(key_id);

  memcpy(out, key_id, n);
  out[n] = '.';
  ctkn_hex(instance, CTKN_INSTANCE_LEN, out + n + 1);
}

static int hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int ctkn_trust_writer_parse(const void *value, size_t len,
                            char key_id[CTKN_KEY_ID_BUF],
                            uint8_t instance[CTKN_INSTANCE_LEN],
                            struct ctkn_err *err)
{
  const char *s = value;
  const size_t idlen = CTKN_KEY_ID_BUF - 1;

  if (s == NULL || len != idlen + 1 + 2 * CTKN_INSTANCE_LEN || s[idlen] != '.')
    return ctkn__err(err, CTKN_EINVAL,
                     "header %s: want <16 hex key ID>.<32 hex instance>",
                     CTKN_HDR_WRITER);
  for (size_t i = 0; i < idlen; i++) {
    if (hexval((unsigned char)s[i]) < 0)
      return ctkn__err(err, CTKN_EINVAL, "header %s: key ID is not hex",
                       CTKN_HDR_WRITER);
    key_id[i] = s[i];
  }
  key_id[idlen] = '\0';
  for (size_t i = 0; i < CTKN_INSTANCE_LEN; i++) {
    int hi = hexval((unsigned char)s[idlen + 1 + 2 * i]);
    int lo = hexval((unsigned char)s[idlen + 2 + 2 * i]);
    if (hi < 0 || lo < 0)
      return ctkn__err(err, CTKN_EINVAL, "header %s: instance is not hex",
                       CTKN_HDR_WRITER);
    instance[i] = (uint8_t)(hi << 4 | lo);
  }
  return CTKN_OK;
}

/* ---- an adopted prefix's hash -------------------------------------------- */

static const char adopt_tag[] = "ctkn adopt v1";

ctkn_sha256 *ctkn_trust_adopt_begin(const uint8_t log_id[CTKN_LOG_ID_LEN],
                                    int32_t partition)
{
  ctkn_sha256 *h = ctkn_sha256_new();
  uint8_t b[4];

  if (h == NULL)
    return NULL;
  ctkn_sha256_update(h, adopt_tag, sizeof(adopt_tag));
  ctkn_sha256_update(h, log_id, CTKN_LOG_ID_LEN);
  ctkn__put_be32(b, (uint32_t)partition);
  ctkn_sha256_update(h, b, sizeof(b));
  return h;
}

void ctkn_trust_adopt_add(ctkn_sha256 *h, const struct ctkn_log_msg *m)
{
  uint8_t b[8];

  ctkn__put_be64(b, (uint64_t)m->offset);
  ctkn_sha256_update(h, b, sizeof(b));
  put_part(h, m->key, m->key_len);
  put_part(h, m->value, m->value_len);
  put_len(h, m->nheaders, false);
  for (size_t i = 0; i < m->nheaders; i++) {
    put_part(h, m->headers[i].name, strlen(m->headers[i].name));
    put_part(h, m->headers[i].value, m->headers[i].size);
  }
}

void ctkn_trust_adopt_end(ctkn_sha256 *h, uint8_t out[CTKN_CHAIN_LEN])
{
  ctkn_sha256_final(h, out);
  ctkn_sha256_free(h);
}
