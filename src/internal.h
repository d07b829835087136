/*
 * internal.h - helpers shared by ctkn's modules; not installed.
 */
#ifndef CTKN_INTERNAL_H
#define CTKN_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "ctkn/diag.h"
#include "ctkn/error.h"

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
/* A condition variable whose timed waits count on CLOCK_MONOTONIC (as
 * ctkn__now_ms(), which never steps); pthread_cond_init()'s result. */
int ctkn__cond_init_monotonic(pthread_cond_t *cv);
/* The CLOCK_MONOTONIC instant ms milliseconds from now: the deadline of a
 * pthread_cond_timedwait() on such a condition variable. */
struct timespec ctkn__monotonic_in(int64_t ms);
/* The same, us microseconds from now. */
struct timespec ctkn__monotonic_in_us(int64_t us);

/* Errors a follower outlives (CTKN_EKAFKA, CTKN_ETIMEOUT): the broker or
 * the network comes back, and librdkafka reconnects by itself; and
 * CTKN_ESTALE, no keyring signed by the trust root yet to judge by. */
bool ctkn__transient(int rc);

/* ---- libraries loaded when first used (util/dl.c) -------------------- */

/* A symbol of such a library: its name, and where its address goes in the
 * caller's table (a struct of function pointers). */
struct ctkn__dl_sym {
  const char *name;
  size_t offset;
};

/* A library loaded when first used, and the table its symbols fill. The
 * owning module defines one, static, with the first four members set. */
struct ctkn__dl {
  const char *soname; /* "libcurl.so.4" */
  const struct ctkn__dl_sym *syms;
  size_t nsyms;
  void *table;
  bool tried;          /* guarded by util/dl.c's lock */
  struct ctkn_err err; /* the outcome; err.code CTKN_OK when loaded */
};

/*
 * Load dl's library (dlopen, every symbol resolved now) and fill its
 * table, the first time; later calls answer what the first found. For a
 * library that only some commands use, so that the others do not map it
 * at start-up. The library stays loaded. Thread-safe. Errors:
 * CTKN_EINTERNAL naming the library and what was missing.
 */
int ctkn__dl_load(struct ctkn__dl *dl, struct ctkn_err *err);

/* ---- log (src/log/) ----------------------------------------------------- */

typedef struct ctkn_consumer ctkn_consumer;
/*
 * Whether the log's fetcher backs a partition off for a whole second once
 * its queue has filled (librdkafka before 2.2.0, #2879), so that a reader
 * that stopped polling to wait for room should restart the fetch. False
 * where the back-off is short (a build against librdkafka 2.2.0 or later
 * sets fetch.queue.backoff.ms) or absent.
 */
bool ctkn__consumer_long_backoff(ctkn_consumer *c);

/* ---- the one growable buffer (util/buf.c) ----------------------------- */

/*
 * Bytes that grow by doubling. Start from CTKN__BUF_INIT; data is NULL
 * until something is reserved and then always has a NUL at data[len], so
 * a buffer of text is a C string. Arrays of structs use it too: add
 * sizeof(elem) at a time and count len / sizeof(elem). Every function
 * returns CTKN_OK or CTKN_ENOMEM (the buffer is then unchanged) unless it
 * says otherwise. The buffer owns data: release with ctkn__buf_free(), or
 * take it with ctkn__buf_detach().
 */
struct ctkn__buf {
  char *data;
  size_t len; /* bytes in use */
  size_t cap; /* bytes allocated, the NUL's included */
};
#define CTKN__BUF_INIT                                                         \
  {                                                                            \
    NULL, 0, 0                                                                 \
  }

/* Room for more bytes past len (and the NUL), without using them. */
int ctkn__buf_reserve(struct ctkn__buf *b, size_t more);
/* Use n more bytes and return where they start (uninitialised), valid
 * until the next call that grows b; NULL when out of memory. */
void *ctkn__buf_add(struct ctkn__buf *b, size_t n);
int ctkn__buf_append(struct ctkn__buf *b, const void *p, size_t n);
int ctkn__buf_puts(struct ctkn__buf *b, const char *s);
/* CTKN_EINTERNAL for a bad format. */
int ctkn__buf_printf(struct ctkn__buf *b, const char *fmt, ...)
    CTKN__PRINTF(2, 3);
int ctkn__buf_vprintf(struct ctkn__buf *b, const char *fmt, va_list ap)
    CTKN__PRINTF(2, 0);
/* n bytes as one quoted JSON string: quotes, backslashes and control
 * characters escaped; bytes that are not UTF-8 become U+FFFD. */
int ctkn__buf_json_str(struct ctkn__buf *b, const void *p, size_t n);
/* Length (1-4) of the well-formed UTF-8 sequence at s, per RFC 3629 (no
 * overlong forms, no surrogates, nothing past U+10FFFF), or 0 when the
 * bytes at s do not start one. n > 0 bytes are readable. */
size_t ctkn__utf8_seq(const unsigned char *s, size_t n);
/* A JSON object member "key":"val" (null when val is NULL), preceded by a
 * comma unless b is empty: diagnostic fields (ctkn__diag_fields()). */
int ctkn__buf_json_member(struct ctkn__buf *b, const char *key,
                          const char *val);
/* Forget the contents, keep the memory. */
static inline void ctkn__buf_reset(struct ctkn__buf *b)
{
  b->len = 0;
  if (b->data != NULL)
    b->data[0] = '\0';
}
/* The contents as a NUL-terminated string that the caller owns (free());
 * b is left empty. "" for an empty buffer; NULL when out of memory. */
char *ctkn__buf_detach(struct ctkn__buf *b);
/* Release the memory; b is left empty and may be used again. */
void ctkn__buf_free(struct ctkn__buf *b);

/* ---- key and secret files (util/file.c) -------------------------------- */

/* The rules one kind of key or secret file is read under. */
struct ctkn__file_rules {
  const char *what;  /* names it in errors: "API key file", "key file" */
  const char *field; /* err->field, or NULL */
  size_t max;        /* the largest size accepted, in bytes */
  const char *shape; /* what a too-large error says it must be, or NULL */
  int open_code;     /* the code when it cannot be opened or read */
  bool private_mode; /* refuse any group or other permission bit */
  bool missing_ok;   /* a missing file reads as empty */
};

/*
 * Append the whole of path to b (b->data stays NUL-terminated), under
 * rules r: a regular file (not a directory, FIFO, socket or device) of at
 * most r->max bytes. The kind, size and mode are checked with fstat()
 * before a byte is read, at most r->max + 1 bytes are read, and a FIFO
 * does not block; so /dev/zero or a huge file fail at once. Errors name
 * the file and the rule: CTKN_EINVAL (kind, size, mode), r->open_code
 * (cannot open or read), CTKN_ENOMEM. On failure b may hold part of the
 * file: a caller reading a secret wipes b before freeing it.
 */
int ctkn__file_read(const char *path, const struct ctkn__file_rules *r,
                    struct ctkn__buf *b, struct ctkn_err *err);

/* ---- the one reader of request lines (util/linein.c) ----------------- */

/*
 * Lines of a FILE, read through its descriptor when it has one (so
 * nothing of it may have been read through the FILE before), with
 * getline() when it has none (a memory stream). ctkn__linein_ready() says
 * whether ctkn__linein_next() would return without waiting for more input.
 */
struct ctkn__linein {
  FILE *in;
  int fd;    /* -1: getline() on in */
  char *buf; /* unread input: buf[at, end) */
  size_t cap, at, end;
  size_t seen; /* buf[at, seen) holds no newline */
  bool eof;
  int errnum; /* reading failed: its errno */
};

void ctkn__linein_init(struct ctkn__linein *r, FILE *in);
void ctkn__linein_free(struct ctkn__linein *r);
/* The next line without its newline, NUL-terminated, in *line (valid
 * until the next call): its length; -1 at the end of the input or when
 * reading failed (r->errnum; the line it cut is dropped). The last line
 * before the end may lack its newline. */
ssize_t ctkn__linein_next(struct ctkn__linein *r, char **line);
/* A whole line, the end or a failure is there to be read now (taking
 * what the descriptor holds, without waiting). Always true without a
 * descriptor. */
bool ctkn__linein_ready(struct ctkn__linein *r);

/* ---- the one work queue (util/queue.c) -------------------------------- */

/*
 * A FIFO of intrusive nodes handed between threads: embed a struct
 * ctkn__qnode in the item and push its address. The queue never owns an
 * item: whoever pops it does.
 */
struct ctkn__qnode {
  struct ctkn__qnode *next;
};

struct ctkn__queue {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct ctkn__qnode *head, *tail;
  size_t n;
  size_t want;    /* a push wakes the waiters once n reaches it (1) */
  uint64_t kicks; /* ctkn__queue_kick() calls */
  bool closed;
};

/* CTKN_OK or CTKN_ENOMEM. Release with ctkn__queue_destroy(). */
int ctkn__queue_init(struct ctkn__queue *q);
/* Only once no thread uses q; items still queued are not touched. */
void ctkn__queue_destroy(struct ctkn__queue *q);
/* Append node and wake the waiters (once n reaches what a waiting
 * ctkn__queue_pop_min() wants, else at once). false once q is closed:
 * nothing was queued and the caller still owns the item. */
bool ctkn__queue_push(struct ctkn__queue *q, struct ctkn__qnode *node);
/* Take up to max nodes, oldest first, into out, waiting up to timeout_ms
 * (< 0: without bound; 0: not at all) for the first. Returns how many;
 * 0 when the wait ran out, or when q is closed and empty. */
size_t ctkn__queue_pop(struct ctkn__queue *q, struct ctkn__qnode **out,
                       size_t max, int timeout_ms);
/* As ctkn__queue_pop(), for a queue with one consumer (a plain pop
 * waiting beside it would miss wake-ups) when it would rather take more
 * at once: wait until q holds at least min nodes, is closed, or
 * was kicked since ctkn__queue_kicks() returned kicks, or timeout_us
 * passes; then take up to max (perhaps none). Pushes wake it only once
 * min are queued. */
size_t ctkn__queue_pop_min(struct ctkn__queue *q, struct ctkn__qnode **out,
                           size_t max, size_t min, int64_t timeout_us,
                           uint64_t kicks);
/* Wake a ctkn__queue_pop_min() without a node: what it waited for changed. */
void ctkn__queue_kick(struct ctkn__queue *q);
uint64_t ctkn__queue_kicks(struct ctkn__queue *q);
/* Nodes queued now. */
size_t ctkn__queue_len(struct ctkn__queue *q);
/* Refuse further pushes and wake every waiter; what is queued can still
 * be popped. */
void ctkn__queue_close(struct ctkn__queue *q);
bool ctkn__queue_closed(struct ctkn__queue *q);

/* The item that holds node n as its member `field`. */
#define CTKN__CONTAINER_OF(n, type, field)                                     \
  ((type *)(void *)((char *)(n)-offsetof(type, field)))

/* ---- the one logging sink (util/diag.c, diag.h) ---------------------- */

/* Whether a line of this level would be written. */
bool ctkn__diag_on(enum ctkn_diag_level level);
/* One line {"time","level","component","msg"}: msg is printf-formatted and
 * escaped. component names the subsystem ("projector", "http", ...). */
void ctkn__diag(enum ctkn_diag_level level, const char *component,
                const char *fmt, ...) CTKN__PRINTF(3, 4);
/* The same with further members: fields is a JSON fragment of members
 * without the braces ("\"keys\":3"), built with ctkn__buf_json_member()
 * where a value is not known to be safe; NULL or "" for none. */
void ctkn__diag_fields(enum ctkn_diag_level level, const char *component,
                       const char *msg, const char *fields);
/* The same, for lines that may wait up to 50 ms to be written with
 * others in one write(2): one per request (serve's access line) or per
 * delivery (notify's); any other line, a sink, and the process's exit
 * write them first. */
void ctkn__diag_fields_later(enum ctkn_diag_level level, const char *component,
                             const char *msg, const char *fields);

/* ---- the API-key set (keyset.c), filled by the key file (apikey.c) ---- */

struct ctkn_apikey;
struct ctkn_apikeys;

/* A new empty set: caller owns it, release with ctkn_apikeys_free().
 * NULL when out of memory. */
struct ctkn_apikeys *ctkn__apikeys_new(void);
/* Append a copy of *k. CTKN_OK or CTKN_ENOMEM (ks is then unchanged). */
int ctkn__apikeys_add(struct ctkn_apikeys *ks, const struct ctkn_apikey *k);
/* Remove entry i, keeping the others in order; i past the end is a no-op. */
void ctkn__apikeys_remove(struct ctkn_apikeys *ks, size_t i);

#endif /* CTKN_INTERNAL_H */
