/*
 * rawproduce - a test tool: append one raw record to a topic, bypassing
 * every check, so integration tests can feed the projector poison.
 *
 * usage: rawproduce BROKERS TOPIC PARTITION KEY VALUE_HEX TYPE|- SCHEMA|-
 * A "-" leaves that header out. Prints "partition offset".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/log.h"

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

int main(int argc, char **argv)
{
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
  if (ctkn_producer_open(&p, &cfg, &err) != CTKN_OK ||
      ctkn_producer_send(p, atoi(argv[3]), argv[4], strlen(argv[4]), value,
                         vlen, 0, strcmp(argv[6], "-") ? argv[6] : NULL,
                         strcmp(argv[7], "-") ? atoi(argv[7]) : -1, &part, &off,
                         &err) != CTKN_OK) {
    fprintf(stderr, "rawproduce: %s: %s\n", ctkn_strerror(err.code), err.msg);
    return 3;
  }
  printf("%" PRId32 " %" PRId64 "\n", part, off);
  ctkn_producer_close(p);
  ctkn_log_config_free(&cfg);
  free(value);
  return 0;
}
