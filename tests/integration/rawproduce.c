/*
 * rawproduce - a test tool: append one raw record to a topic, bypassing
 * every check, so integration tests can feed the projector poison.
 *
 * usage: rawproduce BROKERS TOPIC PARTITION KEY VALUE_HEX TYPE|- SCHEMA|-
 * A "-" leaves that header out. Prints "partition offset".
 *
 * With $CTKN_TRUST_ROOT and $CTKN_WRITER_KEY set (not empty), the record
 * is signed as a genuine writer signs it (trust.h's signer, with its
 * closing checkpoint after it): poison that a writer of the keyring
 * appended, which the trust gate lets through to the decoder. Without
 * them, the record is unsigned, which a trusted reader quarantines.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/crypto.h"
#include "ctkn/keyring.h"
#include "ctkn/log.h"
#include "ctkn/settings.h"
#include "ctkn/token.h"
#include "ctkn/trust.h"

static int unhex(const char *s, unsigned char *out, size_t *n)
{
  size_t len = strlen(s);

  if (len % 2)
    return -1;
  for (size_t i = 0; i < len; i += 2) {
    unsigned v;
    if (sscanf(s + i, "%2x", &v) != 1)
      return -1;
    out[i / 2] = (unsigned char)v;
  }
  *n = len / 2;
  return 0;
}

/* The keyring's log ID on cfg's settings topic, signed by the root in
 * root_file. */
static int log_id_of(const struct ctkn_log_config *cfg, const char *root_file,
                     uint8_t log_id[CTKN_LOG_ID_LEN], struct ctkn_err *err)
{
  struct ctkn_log_config scfg = *cfg; /* shallow: read only */
  uint8_t pub[CTKN_SIGN_PUB_LEN];
  struct ctkn_keyring kr;
  ctkn_pubkey *root = NULL;
  int rc;

  ctkn_keyring_init(&kr);
  if ((rc = ctkn_pubkey_load(root_file, pub, err)) == CTKN_OK &&
      (rc = ctkn_pubkey_new(&root, pub, err)) == CTKN_OK &&
      (rc = ctkn_settings_topic(cfg->topic, scfg.topic, sizeof(scfg.topic),
                                err)) == CTKN_OK &&
      (rc = ctkn_trust_keyring_fetch(&scfg, root, &kr, NULL, NULL, err)) ==
          CTKN_OK) {
    if (kr.version == 0) {
      snprintf(err->msg, sizeof(err->msg), "no keyring on %.200s", scfg.topic);
      rc = err->code = CTKN_ENOTFOUND;
    } else {
      memcpy(log_id, kr.log_id, CTKN_LOG_ID_LEN);
    }
  }
  ctkn_pubkey_free(root);
  ctkn_keyring_free(&kr);
  return rc;
}

/* rec signed by the writer key in key_file, and its closing checkpoint,
 * produced together; rec's out fields filled. */
static int send_signed(ctkn_producer *p, const struct ctkn_log_config *cfg,
                       const char *root_file, const char *key_file,
                       struct ctkn_log_record *rec, struct ctkn_err *err)
{
  uint8_t log_id[CTKN_LOG_ID_LEN];
  struct ctkn_log_record *out = NULL;
  ctkn_seckey *key = NULL;
  ctkn_signer *s = NULL;
  size_t nout = 0;
  int rc;

  if ((rc = log_id_of(cfg, root_file, log_id, err)) == CTKN_OK &&
      (rc = ctkn_seckey_load(&key, key_file, err)) == CTKN_OK &&
      (rc = ctkn_signer_open(&s, key, log_id, rec->partition + 1, err)) ==
          CTKN_OK &&
      (rc = ctkn_signer_prepare(s, rec, 1, CTKN_SIGN_CLOSING, ctkn_now_us(),
                                &out, &nout, err)) == CTKN_OK) {
    rc = ctkn_producer_send_batch(p, out, nout, err);
    if (rc == CTKN_OK) {
      rec->out_partition = out[0].out_partition;
      rec->out_offset = out[0].out_offset;
    }
    (void)ctkn_signer_done(s, rc == CTKN_OK, err);
  }
  ctkn_signer_close(s);
  ctkn_seckey_free(key);
  return rc;
}

int main(int argc, char **argv)
{
  const char *root = getenv("CTKN_TRUST_ROOT");
  const char *wkey = getenv("CTKN_WRITER_KEY");
  struct ctkn_log_record rec = {0};
  struct ctkn_log_config cfg;
  struct ctkn_err err;
  ctkn_producer *p;
  unsigned char *value;
  size_t vlen;
  int32_t part;
  int64_t off;

  if (argc != 8) {
    fprintf(stderr, "usage: rawproduce BROKERS TOPIC PARTITION KEY "
                    "VALUE_HEX TYPE|- SCHEMA|-\n");
    return 2;
  }
  if ((value = malloc(strlen(argv[5]) / 2 + 1)) == NULL ||
      unhex(argv[5], value, &vlen) != 0) {
    fprintf(stderr, "rawproduce: bad hex value\n");
    return 2;
  }
  ctkn_log_config_init(&cfg);
  snprintf(cfg.brokers, sizeof(cfg.brokers), "%s", argv[1]);
  snprintf(cfg.topic, sizeof(cfg.topic), "%s", argv[2]);
  rec = (struct ctkn_log_record){
      .partition = atoi(argv[3]),
      .key = argv[4],
      .klen = strlen(argv[4]),
      .value = value,
      .vlen = vlen,
      .event_type = strcmp(argv[6], "-") ? argv[6] : NULL,
      .schema_version = strcmp(argv[7], "-") ? atoi(argv[7]) : -1};
  if (ctkn_producer_open(&p, &cfg, &err) != CTKN_OK ||
      (root && *root && wkey && *wkey
           ? send_signed(p, &cfg, root, wkey, &rec, &err)
           : ctkn_producer_send(p, rec.partition, rec.key, rec.klen, value,
                                vlen, 0, rec.event_type, rec.schema_version,
                                &rec.out_partition, &rec.out_offset, &err)) !=
          CTKN_OK) {
    fprintf(stderr, "rawproduce: %s: %s\n", ctkn_strerror(err.code), err.msg);
    return 3;
  }
  part = rec.out_partition;
  off = rec.out_offset;
  printf("%" PRId32 " %" PRId64 "\n", part, off);
  ctkn_producer_close(p);
  ctkn_log_config_free(&cfg);
  free(value);
  return 0;
}
