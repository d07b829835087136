/*
 * fuzz_archive.c - libFuzzer target: bytes -> the audit archive reader.
 *
 * Whatever the file holds, ctkn_archive_read() returns CTKN_OK or an error
 * with a message, never reads out of bounds and never leaks. An archive
 * that reads must hand over exactly the records its trailer counts, each
 * with coordinates inside the header's range, and reading it twice gives
 * the same hash. Any broken promise aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctkn/archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
  uint64_t n;
  int32_t partitions;
};

static int touch(void *arg, const struct ctkn_log_msg *msgs,
                 const struct ctkn_archive_headers *h, size_t n,
                 struct ctkn_err *err)
{
  struct seen *s = arg;
  volatile uint8_t sink = 0;

  (void)err;
  for (size_t i = 0; i < n; i++) {
    if (msgs[i].partition < 0)
      abort();
    for (size_t k = 0; k < msgs[i].value_len; k++)
      sink ^= ((const uint8_t *)msgs[i].value)[k];
    for (size_t k = 0; k < msgs[i].key_len; k++)
      sink ^= ((const uint8_t *)msgs[i].key)[k];
    for (size_t j = 0; j < h[i].n; j++) {
      sink ^= (uint8_t)strlen(h[i].list[j].name);
      for (size_t k = 0; h[i].list[j].value && k < h[i].list[j].size; k++)
        sink ^= ((const uint8_t *)h[i].list[j].value)[k];
    }
    s->n++;
  }
  (void)sink;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static char path[64];
  struct ctkn_archive_info a, b;
  struct ctkn_err err;
  struct seen s = {0};

  if (path[0] == '\0')
    snprintf(path, sizeof(path), "/tmp/fuzz_archive.%d", (int)getpid());
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
    abort();
  int rc = ctkn_archive_read(path, touch, &s, &a, &err);
  if (rc != CTKN_OK) {
    if (err.msg[0] == '\0')
      abort();
    return 0;
  }
  if (s.n != a.records || a.partitions < 1)
    abort();
  for (int32_t p = 0; p < a.partitions; p++)
    if (a.start_offsets[p] > a.end_offsets[p])
      abort();
  if (ctkn_archive_read(path, NULL, NULL, &b, &err) != CTKN_OK ||
      memcmp(a.sha256, b.sha256, sizeof(a.sha256)) != 0)
    abort();
  ctkn_archive_info_free(&a);
  ctkn_archive_info_free(&b);
  return 0;
}
