/*
 * rawcopy - a test tool: what an attacker with Write on a topic (and kcat)
 * can do. Reads the record at PARTITION/OFFSET with its headers, edits it
 * and appends the copy to the same partition, bypassing every check.
 *
 * usage: rawcopy BROKERS TOPIC PARTITION OFFSET [EDIT]...
 *   set:NAME=VALUE    replace the first header NAME's value (added if none)
 *   dup:NAME=VALUE    add a second header NAME
 *   drop:NAME         remove every header NAME (drop the ctkn-writer,
 *                     ctkn-seq and ctkn-chain of a signed record and the
 *                     copy is what an unsigned writer would have appended)
 *   to:TOPIC          append the copy to TOPIC (same partition) instead
 *   value:TEXT        replace the record's value with TEXT (garbage under
 *                     a genuine record's headers)
 *   relink:LOGID:OFF  make the copy link after the record at OFF of the
 *                     same partition: ctkn-seq one more than its, ctkn-chain
 *                     recomputed (the chain is unkeyed; LOGID is public, in
 *                     the keyring)
 * Prints "partition offset" of the copy.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/crypto.h"
#include "ctkn/log.h"
#include "ctkn/trust.h"

#define MAXH 32

struct rec {
  int32_t partition;
  char key[512];
  size_t klen;
  bool has_key;
  unsigned char *value;
  size_t vlen;
  int64_t ts;
  size_t nh;
  char names[MAXH][64];
  char vals[MAXH][256];
  size_t sizes[MAXH];
};

static int die(const char *what, const struct ctkn_err *err)
{
  fprintf(stderr, "rawcopy: %s: %s\n", what, err ? err->msg : "");
  exit(3);
}

static void read_at(struct ctkn_log_config *cfg, int32_t part, int64_t off,
                    struct rec *r)
{
  struct ctkn_log_msg msgs[64];
  struct ctkn_err err;
  ctkn_consumer *c;
  int64_t *offs;
  int32_t n = 0;

  if (ctkn_consumer_open(&c, cfg, &err) != CTKN_OK ||
      ctkn_consumer_partitions(c, &n, &err) != CTKN_OK)
    die("open", &err);
  offs = malloc((size_t)n * sizeof(*offs));
  for (int32_t i = 0; i < n; i++)
    offs[i] = i == part ? off : -1;
  if (ctkn_consumer_assign(c, offs, n, &err) != CTKN_OK)
    die("assign", &err);
  for (int tries = 0; tries < 100; tries++) {
    size_t got = 0;
    if (ctkn_consumer_poll(c, 200, msgs, 64, &got, &err) != CTKN_OK)
      die("poll", &err);
    for (size_t i = 0; i < got; i++) {
      const struct ctkn_log_msg *m = &msgs[i];
      if (m->partition != part || m->offset != off)
        continue;
      r->partition = part;
      r->has_key = m->key != NULL;
      r->klen = m->key_len < sizeof(r->key) ? m->key_len : sizeof(r->key);
      if (m->key)
        memcpy(r->key, m->key, r->klen);
      r->vlen = m->value_len;
      r->value = malloc(m->value_len + 1);
      if (m->value)
        memcpy(r->value, m->value, m->value_len);
      r->ts = m->timestamp_ms;
      r->nh = m->nheaders < MAXH ? m->nheaders : MAXH;
      for (size_t h = 0; h < r->nh; h++) {
        snprintf(r->names[h], sizeof(r->names[h]), "%s", m->headers[h].name);
        r->sizes[h] = m->headers[h].size < 255 ? m->headers[h].size : 255;
        memcpy(r->vals[h], m->headers[h].value, r->sizes[h]);
      }
      free(offs);
      ctkn_consumer_close(c);
      return;
    }
  }
  die("no record at that offset", NULL);
}

static struct ctkn_log_msg as_msg(struct rec *r, struct ctkn_log_header *h)
{
  struct ctkn_log_msg m = {.partition = r->partition,
                           .key = r->has_key ? r->key : NULL,
                           .key_len = r->klen,
                           .value = r->value,
                           .value_len = r->vlen,
                           .headers = h,
                           .nheaders = r->nh};

  for (size_t i = 0; i < r->nh; i++)
    h[i] = (struct ctkn_log_header){r->names[i], r->vals[i], r->sizes[i]};
  return m;
}

static int find(const struct rec *r, const char *name)
{
  for (size_t i = 0; i < r->nh; i++)
    if (strcmp(r->names[i], name) == 0)
      return (int)i;
  return -1;
}

static void set(struct rec *r, const char *name, const char *value, bool dup)
{
  int i = dup ? -1 : find(r, name);

  if (i < 0) {
    if (r->nh == MAXH)
      die("too many headers", NULL);
    i = (int)r->nh++;
    snprintf(r->names[i], sizeof(r->names[i]), "%s", name);
  }
  snprintf(r->vals[i], sizeof(r->vals[i]), "%s", value);
  r->sizes[i] = strlen(r->vals[i]);
}

static void drop(struct rec *r, const char *name)
{
  size_t k = 0;

  for (size_t i = 0; i < r->nh; i++) {
    if (strcmp(r->names[i], name) == 0)
      continue;
    if (k != i) {
      memcpy(r->names[k], r->names[i], sizeof(r->names[k]));
      memcpy(r->vals[k], r->vals[i], sizeof(r->vals[k]));
      r->sizes[k] = r->sizes[i];
    }
    k++;
  }
  r->nh = k;
}

static void unhex(const char *s, uint8_t *out, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1)
      die("bad hex", NULL);
    out[i] = (uint8_t)v;
  }
}

static void relink(struct ctkn_log_config *cfg, struct rec *r, const char *arg)
{
  struct ctkn_log_header h[MAXH];
  struct ctkn_log_msg m;
  struct rec prev = {0};
  uint8_t log_id[CTKN_LOG_ID_LEN], chain[32], digest[32];
  char hex[65], seq[24];
  int i, s = -1;

  if (strlen(arg) < 2 * CTKN_LOG_ID_LEN + 2 || arg[32] != ':')
    die("relink:LOGID:OFFSET", NULL);
  unhex(arg, log_id, CTKN_LOG_ID_LEN);
  read_at(cfg, r->partition, atoll(arg + 33), &prev);
  if ((i = find(&prev, CTKN_HDR_CHAIN)) < 0 ||
      (s = find(&prev, CTKN_HDR_SEQ)) < 0)
    die("the record to link after is not signed", NULL);
  unhex(prev.vals[i], chain, 32);
  prev.vals[s][prev.sizes[s]] = '\0';
  snprintf(seq, sizeof(seq), "%lld", atoll(prev.vals[s]) + 1);
  set(r, CTKN_HDR_SEQ, seq, false);
  set(r, CTKN_HDR_CHAIN, "", false);
  m = as_msg(r, h);
  if (ctkn_trust_record_digest(log_id, &m, digest, NULL) != CTKN_OK)
    die("digest", NULL);
  ctkn_trust_chain_next(chain, digest, chain);
  ctkn_hex(chain, 32, hex);
  set(r, CTKN_HDR_CHAIN, hex, false);
  free(prev.value);
}

int main(int argc, char **argv)
{
  struct ctkn_log_header h[MAXH];
  struct ctkn_log_config cfg;
  struct ctkn_log_record out;
  struct ctkn_err err;
  struct ctkn_log_msg m;
  struct rec r = {0};
  ctkn_producer *p;

  if (argc < 5) {
    fprintf(stderr, "usage: rawcopy BROKERS TOPIC PARTITION OFFSET "
                    "[set:N=V | dup:N=V | drop:N | to:T | value:TEXT | "
                    "relink:LOGID:OFF]..."
                    "\n");
    return 2;
  }
  ctkn_log_config_init(&cfg);
  snprintf(cfg.brokers, sizeof(cfg.brokers), "%s", argv[1]);
  snprintf(cfg.topic, sizeof(cfg.topic), "%s", argv[2]);
  read_at(&cfg, atoi(argv[3]), atoll(argv[4]), &r);
  for (int a = 5; a < argc; a++) {
    char *eq = strchr(argv[a], '=');
    if (strncmp(argv[a], "relink:", 7) == 0) {
      relink(&cfg, &r, argv[a] + 7);
      continue;
    }
    if (strncmp(argv[a], "drop:", 5) == 0) {
      drop(&r, argv[a] + 5);
      continue;
    }
    if (strncmp(argv[a], "to:", 3) == 0) {
      snprintf(cfg.topic, sizeof(cfg.topic), "%s", argv[a] + 3);
      continue;
    }
    if (strncmp(argv[a], "value:", 6) == 0) {
      free(r.value);
      r.vlen = strlen(argv[a] + 6);
      if ((r.value = malloc(r.vlen + 1)) == NULL)
        die("out of memory", NULL);
      memcpy(r.value, argv[a] + 6, r.vlen + 1);
      continue;
    }
    if (eq == NULL ||
        (strncmp(argv[a], "set:", 4) && strncmp(argv[a], "dup:", 4)))
      die("an edit is set:N=V, dup:N=V, drop:N, to:TOPIC, value:TEXT or "
          "relink:LOGID:OFF",
          NULL);
    *eq = '\0';
    set(&r, argv[a] + 4, eq + 1, argv[a][0] == 'd');
  }
  m = as_msg(&r, h);
  out = (struct ctkn_log_record){.partition = r.partition,
                                 .key = m.key,
                                 .klen = m.key_len,
                                 .value = m.value,
                                 .vlen = m.value_len,
                                 .timestamp_ms = r.ts,
                                 .headers = h,
                                 .nheaders = r.nh};
  if (ctkn_producer_open(&p, &cfg, &err) != CTKN_OK ||
      ctkn_producer_send_batch(p, &out, 1, &err) != CTKN_OK)
    die("append", &err);
  printf("%" PRId32 " %" PRId64 "\n", out.out_partition, out.out_offset);
  ctkn_producer_close(p);
  ctkn_log_config_free(&cfg);
  free(r.value);
  return 0;
}
