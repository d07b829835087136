/*
 * trust.c - the trust records' wire form (proto/ctkn_trust.proto) <->
 * keyring.h's structs: the Signed envelope, keyrings, checkpoints and
 * adoptions.
 *
 * Decoders are strict, as the event's are: a required field missing, a
 * byte string of the wrong length, a string too long or holding a NUL, or
 * more repeated elements than the structs hold is CTKN_EDECODE naming the
 * field. protobuf-c sizes repeated arrays from counts the input claims,
 * so every unpack goes through an allocator that refuses large blocks.
 */
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/keyring.h"
#include "ctkn_trust.pb-c.h"
#include "internal.h"

#define PB_BLOCK_MAX ((size_t)1 << 20)

static void *capped_alloc(void *data, size_t size)
{
  (void)data;
  return size <= PB_BLOCK_MAX ? malloc(size ? size : 1) : NULL;
}

static void capped_free(void *data, void *p)
{
  (void)data;
  free(p);
}

static ProtobufCAllocator capped = {capped_alloc, capped_free, NULL};

/* Pack a message of len bytes into a new buffer: *out is the caller's. */
#define PACK(msg, fn, out, len, err)                                           \
  do {                                                                         \
    size_t n_ = fn##__get_packed_size(msg);                                    \
    if ((*(out) = malloc(n_ ? n_ : 1)) == NULL)                                \
      return ctkn__err(err, CTKN_ENOMEM, "out of memory encoding");            \
    *(len) = fn##__pack(msg, *(out));                                          \
  } while (0)

static int bytes_of(const ProtobufCBinaryData *b, bool has, size_t want,
                    uint8_t *dst, const char *field, struct ctkn_err *err)
{
  if (!has || b->len != want)
    return ctkn__err(err, CTKN_EDECODE, "%s: want %zu bytes, got %zu", field,
                     want, has ? b->len : 0);
  memcpy(dst, b->data, want);
  return CTKN_OK;
}

static int str_of(const char *s, char *dst, size_t dstsz, const char *field,
                  bool required, struct ctkn_err *err)
{
  if (s == NULL) {
    dst[0] = '\0';
    return required ? ctkn__err(err, CTKN_EDECODE, "%s: missing", field)
                    : CTKN_OK;
  }
  size_t n = strlen(s);
  if (n >= dstsz)
    return ctkn__err(err, CTKN_EDECODE, "%s: longer than %zu bytes", field,
                     dstsz - 1);
  memcpy(dst, s, n + 1);
  return CTKN_OK;
}

/* ---- the envelope ---------------------------------------------------------
 */

int ctkn_signed_encode(const struct ctkn_signed *s, uint8_t **out, size_t *len,
                       struct ctkn_err *err)
{
  Ctkn__V1__Signed m = CTKN__V1__SIGNED__INIT;

  m.has_body = m.has_signature = true;
  m.body.data = s->body;
  m.body.len = s->body_len;
  m.signature.data = (uint8_t *)s->signature;
  m.signature.len = CTKN_SIG_LEN;
  m.signer = (char *)s->signer;
  PACK(&m, ctkn__v1__signed, out, len, err);
  return CTKN_OK;
}

int ctkn_signed_decode(const void *buf, size_t len, struct ctkn_signed *s,
                       struct ctkn_err *err)
{
  Ctkn__V1__Signed *m;
  int rc;

  memset(s, 0, sizeof(*s));
  m = ctkn__v1__signed__unpack(&capped, len, buf == NULL ? (void *)"" : buf);
  if (m == NULL)
    return ctkn__err(err, CTKN_EDECODE,
                     "not a ctkn.v1.Signed protobuf (%zu bytes)", len);
  if ((rc = bytes_of(&m->signature, m->has_signature, CTKN_SIG_LEN,
                     s->signature, "signature", err)) == CTKN_OK &&
      (rc = str_of(m->signer, s->signer, sizeof(s->signer), "signer", true,
                   err)) == CTKN_OK) {
    if (!m->has_body || m->body.len == 0) {
      rc = ctkn__err(err, CTKN_EDECODE, "body: missing");
    } else if ((s->body = malloc(m->body.len)) == NULL) {
      rc = ctkn__err(err, CTKN_ENOMEM, "out of memory decoding");
    } else {
      memcpy(s->body, m->body.data, m->body.len);
      s->body_len = m->body.len;
    }
  }
  ctkn__v1__signed__free_unpacked(m, &capped);
  if (rc != CTKN_OK)
    ctkn_signed_free(s);
  return rc;
}

/* ---- keyrings ------------------------------------------------------------ */

int ctkn_keyring_encode(const struct ctkn_keyring *kr, uint8_t **out,
                        size_t *len, struct ctkn_err *err)
{
  Ctkn__V1__Keyring m = CTKN__V1__KEYRING__INIT;
  Ctkn__V1__WriterKey *keys = calloc(kr->nkeys ? kr->nkeys : 1, sizeof(*keys));
  Ctkn__V1__WriterKey **kp = calloc(kr->nkeys ? kr->nkeys : 1, sizeof(*kp));
  char *(*scopes)[CTKN_KEY_SCOPES] =
      calloc(kr->nkeys ? kr->nkeys : 1, sizeof(*scopes));
  int rc = CTKN_OK;

  *out = NULL;
  if (keys == NULL || kp == NULL || scopes == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory encoding a keyring");
    goto out;
  }
  for (size_t i = 0; i < kr->nkeys; i++) {
    const struct ctkn_writer_key *k = &kr->keys[i];
    ctkn__v1__writer_key__init(&keys[i]);
    keys[i].key_id = (char *)k->key_id;
    keys[i].has_public_key = true;
    keys[i].public_key.data = (uint8_t *)k->public_key;
    keys[i].public_key.len = CTKN_SIGN_PUB_LEN;
    for (size_t j = 0; j < k->nscopes; j++)
      scopes[i][j] = (char *)k->scopes[j];
    keys[i].n_scopes = k->nscopes;
    keys[i].scopes = scopes[i];
    keys[i].status = k->revoked ? "revoked" : "active";
    keys[i].has_retroactive = k->retroactive;
    keys[i].retroactive = k->retroactive;
    keys[i].name = (char *)k->name;
    kp[i] = &keys[i];
  }
  m.has_log_id = m.has_version = m.has_issued_at = true;
  m.log_id.data = (uint8_t *)kr->log_id;
  m.log_id.len = CTKN_LOG_ID_LEN;
  m.version = kr->version;
  m.issued_at = kr->issued_at;
  m.n_keys = kr->nkeys;
  m.keys = kp;
  m.n_schema_versions = kr->nschemas;
  m.schema_versions = (uint32_t *)kr->schemas;
  {
    size_t n = ctkn__v1__keyring__get_packed_size(&m);
    if ((*out = malloc(n ? n : 1)) == NULL)
      rc = ctkn__err(err, CTKN_ENOMEM, "out of memory encoding a keyring");
    else
      *len = ctkn__v1__keyring__pack(&m, *out);
  }
out:
  free(keys);
  free(kp);
  free(scopes);
  return rc;
}

static int key_of(const Ctkn__V1__WriterKey *m, struct ctkn_writer_key *k,
                  struct ctkn_err *err)
{
  int rc;

  memset(k, 0, sizeof(*k));
  if ((rc = str_of(m->key_id, k->key_id, sizeof(k->key_id), "keys.key_id", true,
                   err)) != CTKN_OK ||
      (rc = bytes_of(&m->public_key, m->has_public_key, CTKN_SIGN_PUB_LEN,
                     k->public_key, "keys.public_key", err)) != CTKN_OK ||
      (rc = str_of(m->name, k->name, sizeof(k->name), "keys.name", false,
                   err)) != CTKN_OK)
    return rc;
  if (m->status == NULL ||
      (strcmp(m->status, "active") != 0 && strcmp(m->status, "revoked") != 0))
    return ctkn__err(err, CTKN_EDECODE, "keys.status: active or revoked");
  k->revoked = strcmp(m->status, "revoked") == 0;
  k->retroactive = m->has_retroactive && m->retroactive;
  if (k->retroactive && !k->revoked)
    return ctkn__err(err, CTKN_EDECODE,
                     "keys.retroactive: only for a revoked key");
  if (m->n_scopes > CTKN_KEY_SCOPES)
    return ctkn__err(err, CTKN_EDECODE, "keys.scopes: at most %d",
                     CTKN_KEY_SCOPES);
  for (size_t j = 0; j < m->n_scopes; j++)
    if ((rc = str_of(m->scopes[j], k->scopes[j], sizeof(k->scopes[j]),
                     "keys.scopes", true, err)) != CTKN_OK)
      return rc;
  k->nscopes = m->n_scopes;
  return CTKN_OK;
}

int ctkn_keyring_decode(const void *buf, size_t len, struct ctkn_keyring *kr,
                        struct ctkn_err *err)
{
  Ctkn__V1__Keyring *m;
  int rc;

  ctkn_keyring_init(kr);
  m = ctkn__v1__keyring__unpack(&capped, len, buf == NULL ? (void *)"" : buf);
  if (m == NULL)
    return ctkn__err(err, CTKN_EDECODE,
                     "not a ctkn.v1.Keyring protobuf (%zu bytes)", len);
  rc = bytes_of(&m->log_id, m->has_log_id, CTKN_LOG_ID_LEN, kr->log_id,
                "log_id", err);
  if (rc == CTKN_OK && (!m->has_version || !m->has_issued_at))
    rc = ctkn__err(err, CTKN_EDECODE, "%s: missing",
                   m->has_version ? "issued_at" : "version");
  if (rc == CTKN_OK && (m->n_keys > CTKN_KEYRING_KEYS ||
                        m->n_schema_versions > CTKN_KEYRING_SCHEMAS))
    rc = ctkn__err(err, CTKN_EDECODE, "%s: too many",
                   m->n_keys > CTKN_KEYRING_KEYS ? "keys" : "schema_versions");
  if (rc == CTKN_OK && m->n_keys > 0 &&
      (kr->keys = calloc(m->n_keys, sizeof(*kr->keys))) == NULL)
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory decoding a keyring");
  for (size_t i = 0; rc == CTKN_OK && i < m->n_keys; i++)
    if ((rc = key_of(m->keys[i], &kr->keys[i], err)) == CTKN_OK)
      kr->nkeys = i + 1;
  if (rc == CTKN_OK) {
    kr->version = m->version;
    kr->issued_at = m->issued_at;
    kr->nschemas = m->n_schema_versions;
    for (size_t i = 0; i < m->n_schema_versions; i++)
      kr->schemas[i] = m->schema_versions[i];
  }
  ctkn__v1__keyring__free_unpacked(m, &capped);
  if (rc != CTKN_OK)
    ctkn_keyring_free(kr);
  return rc;
}

/* ---- checkpoints --------------------------------------------------------- */

int ctkn_checkpoint_encode(const struct ctkn_checkpoint *c, uint8_t **out,
                           size_t *len, struct ctkn_err *err)
{
  Ctkn__V1__Checkpoint m = CTKN__V1__CHECKPOINT__INIT;

  m.has_log_id = m.has_instance = m.has_partition = m.has_sequence = true;
  m.has_chain = m.has_signed_at = m.has_closing = true;
  m.log_id.data = (uint8_t *)c->log_id;
  m.log_id.len = CTKN_LOG_ID_LEN;
  m.key_id = (char *)c->key_id;
  m.instance.data = (uint8_t *)c->instance;
  m.instance.len = CTKN_INSTANCE_LEN;
  m.partition = c->partition;
  m.sequence = c->sequence;
  m.chain.data = (uint8_t *)c->chain;
  m.chain.len = CTKN_CHAIN_LEN;
  m.signed_at = c->signed_at;
  m.closing = c->closing;
  if (c->from_set) {
    m.has_from_sequence = m.has_from_chain = true;
    m.from_sequence = c->from_sequence;
    m.from_chain.data = (uint8_t *)c->from_chain;
    m.from_chain.len = CTKN_CHAIN_LEN;
  }
  PACK(&m, ctkn__v1__checkpoint, out, len, err);
  return CTKN_OK;
}

int ctkn_checkpoint_decode(const void *buf, size_t len,
                           struct ctkn_checkpoint *c, struct ctkn_err *err)
{
  Ctkn__V1__Checkpoint *m;
  int rc;

  memset(c, 0, sizeof(*c));
  m = ctkn__v1__checkpoint__unpack(&capped, len,
                                   buf == NULL ? (void *)"" : buf);
  if (m == NULL)
    return ctkn__err(err, CTKN_EDECODE,
                     "not a ctkn.v1.Checkpoint protobuf (%zu bytes)", len);
  if ((rc = bytes_of(&m->log_id, m->has_log_id, CTKN_LOG_ID_LEN, c->log_id,
                     "log_id", err)) == CTKN_OK &&
      (rc = str_of(m->key_id, c->key_id, sizeof(c->key_id), "key_id", true,
                   err)) == CTKN_OK &&
      (rc = bytes_of(&m->instance, m->has_instance, CTKN_INSTANCE_LEN,
                     c->instance, "instance", err)) == CTKN_OK &&
      (rc = bytes_of(&m->chain, m->has_chain, CTKN_CHAIN_LEN, c->chain, "chain",
                     err)) == CTKN_OK) {
    if (!m->has_partition || m->partition < 0 || !m->has_sequence ||
        !m->has_signed_at)
      rc = ctkn__err(err, CTKN_EDECODE, "%s: missing or out of range",
                     !m->has_partition || m->partition < 0 ? "partition"
                     : !m->has_sequence                    ? "sequence"
                                                           : "signed_at");
  }
  if (rc == CTKN_OK && (m->has_from_sequence || m->has_from_chain)) {
    if (!m->has_from_sequence || m->from_sequence > m->sequence)
      rc = ctkn__err(err, CTKN_EDECODE,
                     "from_sequence: missing or past sequence");
    else if ((rc = bytes_of(&m->from_chain, m->has_from_chain, CTKN_CHAIN_LEN,
                            c->from_chain, "from_chain", err)) == CTKN_OK) {
      c->from_set = true;
      c->from_sequence = m->from_sequence;
    }
  }
  if (rc == CTKN_OK) {
    c->partition = m->partition;
    c->sequence = m->sequence;
    c->signed_at = m->signed_at;
    c->closing = m->has_closing && m->closing;
  }
  ctkn__v1__checkpoint__free_unpacked(m, &capped);
  return rc;
}

/* ---- adoptions ----------------------------------------------------------- */

int ctkn_adoption_encode(const struct ctkn_adoption *a, uint8_t **out,
                         size_t *len, struct ctkn_err *err)
{
  Ctkn__V1__Adoption m = CTKN__V1__ADOPTION__INIT;
  size_t n = a->nparts ? a->nparts : 1;
  Ctkn__V1__AdoptedPartition *parts = calloc(n, sizeof(*parts));
  Ctkn__V1__AdoptedPartition **pp = calloc(n, sizeof(*pp));
  int rc = CTKN_OK;

  *out = NULL;
  if (parts == NULL || pp == NULL) {
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory encoding an adoption");
    goto out;
  }
  for (size_t i = 0; i < a->nparts; i++) {
    ctkn__v1__adopted_partition__init(&parts[i]);
    parts[i].has_partition = parts[i].has_end_offset = true;
    parts[i].has_records_hash = true;
    parts[i].partition = a->parts[i].partition;
    parts[i].end_offset = a->parts[i].end_offset;
    parts[i].records_hash.data = (uint8_t *)a->parts[i].records_hash;
    parts[i].records_hash.len = CTKN_CHAIN_LEN;
    pp[i] = &parts[i];
  }
  m.has_log_id = m.has_issued_at = true;
  m.log_id.data = (uint8_t *)a->log_id;
  m.log_id.len = CTKN_LOG_ID_LEN;
  m.topic = (char *)a->topic;
  m.issued_at = a->issued_at;
  m.n_partitions = a->nparts;
  m.partitions = pp;
  n = ctkn__v1__adoption__get_packed_size(&m);
  if ((*out = malloc(n ? n : 1)) == NULL)
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory encoding an adoption");
  else
    *len = ctkn__v1__adoption__pack(&m, *out);
out:
  free(parts);
  free(pp);
  return rc;
}

int ctkn_adoption_decode(const void *buf, size_t len, struct ctkn_adoption *a,
                         struct ctkn_err *err)
{
  Ctkn__V1__Adoption *m;
  int rc;

  memset(a, 0, sizeof(*a));
  m = ctkn__v1__adoption__unpack(&capped, len, buf == NULL ? (void *)"" : buf);
  if (m == NULL)
    return ctkn__err(err, CTKN_EDECODE,
                     "not a ctkn.v1.Adoption protobuf (%zu bytes)", len);
  rc = bytes_of(&m->log_id, m->has_log_id, CTKN_LOG_ID_LEN, a->log_id, "log_id",
                err);
  if (rc == CTKN_OK)
    rc = str_of(m->topic, a->topic, sizeof(a->topic), "topic", true, err);
  if (rc == CTKN_OK && m->n_partitions > CTKN_ADOPT_PARTS)
    rc = ctkn__err(err, CTKN_EDECODE, "partitions: at most %d",
                   CTKN_ADOPT_PARTS);
  if (rc == CTKN_OK && m->n_partitions > 0 &&
      (a->parts = calloc(m->n_partitions, sizeof(*a->parts))) == NULL)
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory decoding an adoption");
  for (size_t i = 0; rc == CTKN_OK && i < m->n_partitions; i++) {
    const Ctkn__V1__AdoptedPartition *p = m->partitions[i];
    struct ctkn_adopted_partition *d = &a->parts[i];
    if (!p->has_partition || p->partition < 0 || !p->has_end_offset ||
        p->end_offset < 0)
      rc = ctkn__err(err, CTKN_EDECODE, "partitions: missing or negative");
    else
      rc = bytes_of(&p->records_hash, p->has_records_hash, CTKN_CHAIN_LEN,
                    d->records_hash, "partitions.records_hash", err);
    d->partition = p->partition;
    d->end_offset = p->end_offset;
    a->nparts = i + 1;
  }
  a->issued_at = m->issued_at;
  ctkn__v1__adoption__free_unpacked(m, &capped);
  if (rc != CTKN_OK)
    ctkn_adoption_free(a);
  return rc;
}
