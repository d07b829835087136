/*
 * internal.h - helpers shared by ctkn's modules; not installed.
 */
#ifndef CTKN_INTERNAL_H
#define CTKN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/event.h"

#define CTKN__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define CTKN__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CTKN__PRINTF(f, a)
#endif

/*
 * Fill *err (when not NULL) with code, no field and a printf-style message,
 * and return code, so that `return ctkn__err(err, CTKN_ESTORE, ...)` reads
 * as one statement.
 */
int ctkn__err(struct ctkn_err *err, int code, const char *fmt, ...)
    CTKN__PRINTF(3, 4);

/* Same, naming the offending field: "name", "description", "status"... */
int ctkn__err_field(struct ctkn_err *err, int code, const char *field,
                    const char *fmt, ...) CTKN__PRINTF(4, 5);

/* Copy at most dstsz - 1 bytes and always NUL-terminate (dstsz > 0).
 * Returns the length of src, so truncation shows as >= dstsz. */
size_t ctkn__strlcpy(char *dst, const char *src, size_t dstsz);

/*
 * Walk the framing of a msgpack value before msgpack-c parses it: it must
 * be one array of scalars (no nesting), its count bounded by the bytes
 * that follow, with nothing truncated or trailing. msgpack-c allocates an
 * array from the count in its header before reading an element, so five
 * bytes can ask it for 128 GiB; what passes here parses in memory
 * proportional to its length. name_of(i) names element i in messages.
 * CTKN_EDECODE with the reason.
 */
int ctkn__check_flat_array(const uint8_t *p, size_t len,
                           const char *(*name_of)(uint32_t),
                           struct ctkn_err *err);

/* Big-endian numbers in keys, so that LMDB's byte order is numeric. */
static inline void ctkn__put_be32(uint8_t *p, uint32_t v)
{
  for (int i = 3; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static inline void ctkn__put_be64(uint8_t *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

/* The n-byte (n <= 8) big-endian number at p. */
static inline uint64_t ctkn__get_be(const uint8_t *p, size_t n)
{
  uint64_t v = 0;

  for (size_t i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* path + suffix, malloc'd (NULL when out of memory): side files such as
 * DIR.rebuild or FILE.lock. */
char *ctkn__suffixed(const char *path, const char *suffix);

/* CLOCK_MONOTONIC in milliseconds: deadlines and progress timers. */
int64_t ctkn__now_ms(void);

/* Errors a follower outlives (CTKN_EKAFKA, CTKN_ETIMEOUT): the broker or
 * the network comes back, and librdkafka reconnects by itself. */
bool ctkn__transient(int rc);

/* ctkn_apply() for an event that already passed ctkn_event_check(): the
 * projector checks each record once, to tell quarantine from rejection. */
int ctkn__apply_checked(const struct ctkn_record *cur,
                        const struct ctkn_event *ev, ctkn_env env,
                        struct ctkn_token *next, char *reason, size_t reasonsz);

/* ctkn_seal() with the nonce given instead of drawn: the seam for the
 * known-answer tests. Two seals under one key with one nonce give away the
 * XOR of their plaintexts and the means to forge tags, so nothing but a
 * test may pass a nonce of its own. */
int ctkn__seal_with_nonce(const uint8_t key[CTKN_KEY_LEN],
                          const uint8_t nonce[CTKN_SEAL_NONCE], const void *aad,
                          size_t aadlen, const void *pt, size_t len,
                          uint8_t *out, struct ctkn_err *err);

#endif /* CTKN_INTERNAL_H */
