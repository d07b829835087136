/* test_util.c - the shared primitives: one buffer, one queue, one sink. */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctkn/diag.h"
#include "ctkn/token.h"
#include "internal.h"

/* ---- buffer ------------------------------------------------------------ */

static void test_buf_grows_and_stays_a_c_string(void **state)
{
  struct ctkn__buf b = CTKN__BUF_INIT;
  (void)state;

  for (int i = 0; i < 1000; i++)
    assert_int_equal(ctkn__buf_printf(&b, "%d,", i % 10), CTKN_OK);
  assert_int_equal(b.len, 2000);
  assert_int_equal(strlen(b.data), 2000);
  assert_memory_equal(b.data, "0,1,2,", 6);
  ctkn__buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_string_equal(b.data, "");
  /* A long formatted piece takes the second vsnprintf path. */
  char big[600];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  assert_int_equal(ctkn__buf_printf(&b, "<%s>", big), CTKN_OK);
  assert_int_equal(b.len, sizeof(big) + 1);
  assert_int_equal(b.data[0], '<');
  assert_int_equal(b.data[b.len - 1], '>');
  char *s = ctkn__buf_detach(&b);
  assert_null(b.data);
  assert_int_equal(strlen(s), sizeof(big) + 1);
  free(s);
  /* An empty buffer detaches as "". */
  s = ctkn__buf_detach(&b);
  assert_string_equal(s, "");
  free(s);
  ctkn__buf_free(&b);
}

static void test_buf_holds_arrays_of_structs(void **state)
{
  struct pair {
    int64_t a, b;
  };
  struct ctkn__buf b = CTKN__BUF_INIT;
  (void)state;

  for (int64_t i = 0; i < 5000; i++) {
    struct pair *p = ctkn__buf_add(&b, sizeof(*p));
    assert_non_null(p);
    p->a = i;
    p->b = -i;
  }
  assert_int_equal(b.len / sizeof(struct pair), 5000);
  const struct pair *arr = (const struct pair *)(void *)b.data;
  assert_int_equal(arr[4321].a, 4321);
  assert_int_equal(arr[4321].b, -4321);
  ctkn__buf_free(&b);
  assert_int_equal(b.len, 0);
}

static void test_buf_refuses_a_size_that_overflows(void **state)
{
  struct ctkn__buf b = CTKN__BUF_INIT;
  (void)state;

  assert_int_equal(ctkn__buf_append(&b, "ab", 2), CTKN_OK);
  assert_int_equal(ctkn__buf_reserve(&b, SIZE_MAX - 1), CTKN_ENOMEM);
  assert_null(ctkn__buf_add(&b, SIZE_MAX));
  assert_string_equal(b.data, "ab"); /* unchanged */
  ctkn__buf_free(&b);
}

static void test_buf_json_str_escapes_everything_that_breaks_json(void **state)
{
  struct ctkn__buf b = CTKN__BUF_INIT;
  static const char in[] = "a\"b\\c\nd\x01\x7f"
                           "\xc3\xa9"     /* é, valid */
                           "\xff"         /* never UTF-8 */
                           "\xed\xa0\x80" /* a surrogate */
                           "\xe2\x82";    /* truncated */
  (void)state;

  assert_int_equal(ctkn__buf_json_str(&b, in, sizeof(in) - 1), CTKN_OK);
  assert_string_equal(b.data, "\"a\\\"b\\\\c\\u000ad\\u0001\\u007f\xc3\xa9"
                              "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
  ctkn__buf_reset(&b);
  /* A NUL inside the bytes is escaped, not a terminator. */
  assert_int_equal(ctkn__buf_json_str(&b, "x\0y", 3), CTKN_OK);
  assert_string_equal(b.data, "\"x\\u0000y\"");
  ctkn__buf_reset(&b);
  assert_int_equal(ctkn__buf_json_member(&b, "k", "v\""), CTKN_OK);
  assert_int_equal(ctkn__buf_json_member(&b, "n", NULL), CTKN_OK);
  assert_string_equal(b.data, "\"k\":\"v\\\"\",\"n\":null");
  ctkn__buf_free(&b);
}

/* ---- queue ------------------------------------------------------------- */

struct item {
  int v;
  struct ctkn__qnode node;
};

static void test_queue_is_fifo_and_pops_in_batches(void **state)
{
  struct ctkn__queue q;
  struct item items[5];
  struct ctkn__qnode *out[3];
  (void)state;

  assert_int_equal(ctkn__queue_init(&q), CTKN_OK);
  for (int i = 0; i < 5; i++) {
    items[i].v = i;
    assert_true(ctkn__queue_push(&q, &items[i].node));
  }
  assert_int_equal(ctkn__queue_len(&q), 5);
  assert_int_equal(ctkn__queue_pop(&q, out, 3, 0), 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(CTKN__CONTAINER_OF(out[i], struct item, node)->v, i);
  assert_int_equal(ctkn__queue_pop(&q, out, 3, 0), 2);
  assert_int_equal(CTKN__CONTAINER_OF(out[1], struct item, node)->v, 4);
  /* Empty: a bounded wait runs out, an unbounded one is not tried. */
  assert_int_equal(ctkn__queue_pop(&q, out, 3, 20), 0);
  assert_int_equal(ctkn__queue_pop(&q, out, 3, 0), 0);
  ctkn__queue_destroy(&q);
}

static void test_closed_queue_refuses_pushes_and_drains(void **state)
{
  struct ctkn__queue q;
  struct item a = {1, {NULL}}, b = {2, {NULL}};
  struct ctkn__qnode *out[2];
  (void)state;

  assert_int_equal(ctkn__queue_init(&q), CTKN_OK);
  assert_true(ctkn__queue_push(&q, &a.node));
  ctkn__queue_close(&q);
  assert_true(ctkn__queue_closed(&q));
  assert_false(ctkn__queue_push(&q, &b.node));
  /* What was queued before the close still comes out, then 0 at once,
   * even for an unbounded wait. */
  assert_int_equal(ctkn__queue_pop(&q, out, 2, -1), 1);
  assert_ptr_equal(out[0], &a.node);
  assert_int_equal(ctkn__queue_pop(&q, out, 2, -1), 0);
  ctkn__queue_destroy(&q);
}

#define NPROD 4
#define NITEM 2000

struct prod {
  struct ctkn__queue *q;
  struct item *items;
};

static void *producer(void *arg)
{
  struct prod *p = arg;
  for (int i = 0; i < NITEM; i++)
    ctkn__queue_push(p->q, &p->items[i].node);
  return NULL;
}

static void test_queue_hands_every_item_over_between_threads(void **state)
{
  static struct item items[NPROD][NITEM];
  struct ctkn__queue q;
  pthread_t t[NPROD];
  struct prod p[NPROD];
  int last[NPROD];
  size_t got = 0;
  (void)state;

  assert_int_equal(ctkn__queue_init(&q), CTKN_OK);
  for (int k = 0; k < NPROD; k++) {
    last[k] = -1;
    for (int i = 0; i < NITEM; i++)
      items[k][i].v = k * NITEM + i;
    p[k] = (struct prod){&q, items[k]};
    assert_int_equal(pthread_create(&t[k], NULL, producer, &p[k]), 0);
  }
  while (got < NPROD * NITEM) {
    struct ctkn__qnode *out[64];
    size_t n = ctkn__queue_pop(&q, out, 64, 1000);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
      int v = CTKN__CONTAINER_OF(out[i], struct item, node)->v;
      int k = v / NITEM;
      /* Each producer's items arrive in its order. */
      assert_true(v % NITEM > last[k]);
      last[k] = v % NITEM;
    }
    got += n;
  }
  for (int k = 0; k < NPROD; k++)
    pthread_join(t[k], NULL);
  assert_int_equal(ctkn__queue_len(&q), 0);
  ctkn__queue_destroy(&q);
}

/* What a second thread does to a queue after a pause. */
struct later {
  struct ctkn__queue *q;
  struct item *items;
  int npush; /* push this many, 5 ms apart */
  bool kick; /* then kick */
};

static void *do_later(void *arg)
{
  struct later *l = arg;

  for (int i = 0; i < l->npush; i++) {
    usleep(5000);
    ctkn__queue_push(l->q, &l->items[i].node);
  }
  if (l->kick) {
    usleep(20000);
    ctkn__queue_kick(l->q);
  }
  return NULL;
}

/* ctkn__queue_pop_min() waits for min nodes, a kick or its timeout,
 * whichever comes first, and then takes what is there. */
static void test_queue_pop_min_waits_for_company_a_kick_or_time(void **state)
{
  struct ctkn__queue q;
  struct item items[8];
  struct ctkn__qnode *out[8];
  pthread_t t;
  (void)state;

  assert_int_equal(ctkn__queue_init(&q), CTKN_OK);
  /* Too few: the timeout ends the wait, and what is there is taken. */
  assert_true(ctkn__queue_push(&q, &items[0].node));
  int64_t t0 = ctkn__now_ms();
  assert_int_equal(
      ctkn__queue_pop_min(&q, out, 8, 3, 30000, ctkn__queue_kicks(&q)), 1);
  assert_true(ctkn__now_ms() - t0 >= 30);
  /* Enough arrive: the wait ends with them, long before its timeout. */
  struct later three = {&q, items, 3, false};
  uint64_t kicks = ctkn__queue_kicks(&q); /* before the other thread runs */
  assert_int_equal(pthread_create(&t, NULL, do_later, &three), 0);
  t0 = ctkn__now_ms();
  assert_int_equal(ctkn__queue_pop_min(&q, out, 8, 3, 10000000, kicks), 3);
  assert_true(ctkn__now_ms() - t0 < 5000);
  pthread_join(t, NULL);
  for (int i = 0; i < 3; i++)
    assert_ptr_equal(out[i], &items[i].node);
  /* A kick ends it with fewer. */
  struct later one_then_kick = {&q, items, 1, true};
  kicks = ctkn__queue_kicks(&q);
  assert_int_equal(pthread_create(&t, NULL, do_later, &one_then_kick), 0);
  t0 = ctkn__now_ms();
  assert_int_equal(ctkn__queue_pop_min(&q, out, 8, 3, 10000000, kicks), 1);
  assert_true(ctkn__now_ms() - t0 < 5000);
  pthread_join(t, NULL);
  /* A kick since the caller looked: no wait at all; nor when closed. */
  uint64_t seen = ctkn__queue_kicks(&q);
  ctkn__queue_kick(&q);
  t0 = ctkn__now_ms();
  assert_int_equal(ctkn__queue_pop_min(&q, out, 8, 3, 10000000, seen), 0);
  ctkn__queue_close(&q);
  assert_int_equal(
      ctkn__queue_pop_min(&q, out, 8, 3, 10000000, ctkn__queue_kicks(&q)), 0);
  assert_true(ctkn__now_ms() - t0 < 5000);
  ctkn__queue_destroy(&q);
}

/* ---- diagnostics ------------------------------------------------------- */

static void capture(void *arg, const char *line, size_t len)
{
  ctkn__buf_append(arg, line, len);
}

static void test_diag_writes_one_escaped_json_line_per_call(void **state)
{
  struct ctkn__buf out = CTKN__BUF_INIT, fields = CTKN__BUF_INIT;
  (void)state;

  ctkn_diag_set_sink(capture, &out);
  ctkn_diag_set_level(CTKN_DIAG_INFO);
  ctkn__diag(CTKN_DIAG_WARN, "projector", "partition %d \"paused\"\n", 3);
  assert_non_null(strstr(out.data, "\"level\":\"warn\","
                                   "\"component\":\"projector\","
                                   "\"msg\":\"partition 3 \\\"paused\\\""
                                   "\\u000a\"}\n"));
  assert_int_equal(strncmp(out.data, "{\"time\":\"", 9), 0);
  /* RFC 3339 UTC with microseconds, the current time. */
  const char *t = out.data + 9;
  for (int i = 0; i < 26; i++) {
    const char *want = i == 4 || i == 7     ? "-"
                       : i == 10            ? "T"
                       : i == 13 || i == 16 ? ":"
                       : i == 19            ? "."
                                            : "0123456789";
    assert_non_null(strchr(want, t[i]));
  }
  assert_int_equal(strncmp(t + 26, "Z\"", 2), 0);
  int64_t when;
  char stamp[28];
  memcpy(stamp, t, 27);
  stamp[27] = '\0';
  assert_int_equal(ctkn_time_parse(stamp, &when, NULL), CTKN_OK);
  assert_true(llabs((long long)(when - ctkn_now_us())) < 60 * 1000000LL);
  /* Exactly one line. */
  assert_ptr_equal(strchr(out.data, '\n'), out.data + out.len - 1);

  ctkn__buf_reset(&out);
  assert_int_equal(ctkn__buf_json_member(&fields, "detail", "a\"b"), CTKN_OK);
  ctkn__diag_fields(CTKN_DIAG_ERROR, "http", "listening", fields.data);
  assert_non_null(
      strstr(out.data, "\"msg\":\"listening\",\"detail\":\"a\\\"b\"}\n"));

  /* Below the level: nothing. */
  ctkn__buf_reset(&out);
  ctkn__diag(CTKN_DIAG_DEBUG, "x", "quiet");
  assert_int_equal(out.len, 0);
  assert_false(ctkn__diag_on(CTKN_DIAG_DEBUG));
  ctkn_diag_set_level(CTKN_DIAG_DEBUG);
  ctkn__diag(CTKN_DIAG_DEBUG, "x", "loud");
  assert_non_null(strstr(out.data, "\"msg\":\"loud\""));
  ctkn_diag_set_level(CTKN_DIAG_INFO);
  ctkn_diag_set_sink(NULL, NULL);
  ctkn__buf_free(&out);
  ctkn__buf_free(&fields);
}

/* The file at fd as a string (fresh; the caller frees it). */
static char *file_text(int fd)
{
  off_t n = lseek(fd, 0, SEEK_END);
  char *s = calloc(1, (size_t)n + 1);

  assert_non_null(s);
  assert_int_equal(pread(fd, s, (size_t)n, 0), n);
  return s;
}

/* Access lines wait to be written together; they are written at exit,
 * before any other line, and within about 50 ms. */
static void test_diag_access_lines_are_written_together(void **state)
{
  char path[] = "/tmp/ctkn-diag-XXXXXX";
  int fd = mkstemp(path), saved = dup(STDERR_FILENO), status;
  char *s;
  (void)state;

  assert_true(fd >= 0 && saved >= 0);
  unlink(path);
  /* Each write at the end, also after the truncations below. */
  assert_int_equal(fcntl(fd, F_SETFL, O_APPEND), 0);
  assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);

  /* A process that exits at once still writes what waited. */
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    ctkn__diag_fields_later(CTKN_DIAG_INFO, "http", "request", "\"n\":0");
    exit(0);
  }
  assert_int_equal(waitpid(child, &status, 0), child);
  s = file_text(fd);
  assert_non_null(strstr(s, "\"n\":0}\n"));
  free(s);
  assert_int_equal(ftruncate(fd, 0), 0);

  ctkn__diag_fields_later(CTKN_DIAG_INFO, "http", "request", "\"n\":1");
  ctkn__diag_fields_later(CTKN_DIAG_INFO, "http", "request", "\"n\":2");
  s = file_text(fd);
  assert_string_equal(s, ""); /* waiting */
  free(s);
  for (int i = 0; i < 200; i++) { /* up to 2 s on a loaded machine */
    s = file_text(fd);
    if (strstr(s, "\"n\":2") != NULL)
      break;
    free(s);
    s = NULL;
    usleep(10000);
  }
  assert_non_null(s);
  assert_non_null(strstr(s, "\"n\":1}\n"));
  assert_true(strstr(s, "\"n\":1}\n") < strstr(s, "\"n\":2}\n"));
  free(s);
  assert_int_equal(ftruncate(fd, 0), 0);

  /* Any other line writes what waited first: the order is kept. Into a
   * regular file, 100 lines (8 KiB, twice PIPE_BUF) wait for one write:
   * nothing is written before that line, unless the flusher's LATER_MS
   * may have passed since the first of them. */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < 100; i++) {
    char f[32];
    snprintf(f, sizeof(f), "\"n\":%d", 100 + i);
    ctkn__diag_fields_later(CTKN_DIAG_INFO, "http", "request", f);
  }
  s = file_text(fd);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 40)
    assert_string_equal(s, "");
  free(s);
  ctkn__diag(CTKN_DIAG_WARN, "x", "now");
  s = file_text(fd);
  const char *at = s;
  for (int i = 0; i < 100; i++) {
    char f[32];
    snprintf(f, sizeof(f), "\"n\":%d}\n", 100 + i);
    const char *next = strstr(at, f);
    assert_non_null(next);
    at = next;
  }
  assert_non_null(strstr(at, "\"msg\":\"now\"}\n"));
  free(s);

  /* A batch waits LATER_MS from its own first line, not from the first
   * line of a batch another line already wrote: "old" starts a batch,
   * "flush" writes it 25 ms later, and "young", right after, must wait
   * its own 50 ms (the flusher still waiting for "old"'s deadline wrote
   * it at 50 ms from "old"). */
  assert_int_equal(ftruncate(fd, 0), 0);
  ctkn__diag_fields_later(CTKN_DIAG_INFO, "http", "request", "\"n\":\"old\"");
  usleep(25000);
  ctkn__diag(CTKN_DIAG_WARN, "x", "flush");
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ctkn__diag_fields_later(CTKN_DIAG_INFO, "http", "request", "\"n\":\"young\"");
  usleep(40000); /* past "old"'s deadline, before "young"'s */
  s = file_text(fd);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 48)
    assert_null(strstr(s, "young"));
  free(s);
  ctkn__diag(CTKN_DIAG_WARN, "x", "flush");

  /* Into a pipe, a write is whole only up to PIPE_BUF: 60 lines (about
   * 5.7 KiB) go out as one write of at most that, and the rest waits. */
  int p[2];
  char got[2 * PIPE_BUF];
  assert_int_equal(pipe(p), 0);
  assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
  assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < 60; i++)
    ctkn__diag_fields_later(CTKN_DIAG_INFO, "http", "request", "\"n\":300");
  ssize_t n = read(p[0], got, sizeof(got));
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_true(n > 0); /* the first PIPE_BUF went out as it filled */
  if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 40)
    assert_true(n <= PIPE_BUF); /* and only that */
  ctkn__diag(CTKN_DIAG_WARN, "x", "now");
  close(p[0]);
  close(p[1]);

  assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
  close(saved);
  close(fd);
}

static void test_diag_level_names_parse(void **state)
{
  enum ctkn_diag_level l;
  struct ctkn_err err;
  (void)state;

  assert_int_equal(ctkn_diag_level_parse("debug", &l, &err), CTKN_OK);
  assert_int_equal(l, CTKN_DIAG_DEBUG);
  assert_int_equal(ctkn_diag_level_parse("warn", &l, &err), CTKN_OK);
  assert_int_equal(l, CTKN_DIAG_WARN);
  assert_int_equal(ctkn_diag_level_parse("loud", &l, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "log_level");
}

/* ---- request lines -------------------------------------------------- */

/* Through a pipe, the reader knows when the input has stopped for now: a
 * line half sent is not ready, the rest of it is, and so is the end. Long
 * lines, a last line without its newline and an empty line come whole. */
static void test_linein_knows_when_the_input_stops(void **state)
{
  struct ctkn__linein r;
  int p[2];
  char *line;
  (void)state;

  assert_int_equal(pipe(p), 0);
  FILE *in = fdopen(p[0], "r");
  assert_non_null(in);
  ctkn__linein_init(&r, in);

  assert_false(ctkn__linein_ready(&r)); /* nothing sent yet */
  assert_int_equal(write(p[1], "one\ntw", 6), 6);
  assert_true(ctkn__linein_ready(&r));
  assert_int_equal(ctkn__linein_next(&r, &line), 3);
  assert_string_equal(line, "one");
  assert_false(ctkn__linein_ready(&r)); /* "tw" is not a line yet */
  assert_int_equal(write(p[1], "o\n\n", 3), 3);
  assert_true(ctkn__linein_ready(&r));
  assert_int_equal(ctkn__linein_next(&r, &line), 3);
  assert_string_equal(line, "two");
  assert_int_equal(ctkn__linein_next(&r, &line), 0); /* an empty line */
  assert_string_equal(line, "");
  /* Half a line waiting in the pipe is not ready either. */
  assert_int_equal(write(p[1], "hal", 3), 3);
  assert_false(ctkn__linein_ready(&r));
  assert_int_equal(write(p[1], "f\n", 2), 2);
  assert_true(ctkn__linein_ready(&r));
  assert_int_equal(ctkn__linein_next(&r, &line), 4);
  assert_string_equal(line, "half");

  /* A line of 200 KiB, more than one read(2), then one without '\n'. */
  size_t big = 200 * 1024;
  char *s = malloc(big + 1);
  assert_non_null(s);
  memset(s, 'x', big);
  s[big] = '\n';
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    close(p[0]);
    _exit(write(p[1], s, big + 1) == (ssize_t)big + 1 &&
                  write(p[1], "last", 4) == 4
              ? 0
              : 1);
  }
  close(p[1]);
  assert_int_equal(ctkn__linein_next(&r, &line), (ssize_t)big);
  assert_int_equal(line[0], 'x');
  assert_int_equal(line[big - 1], 'x');
  assert_int_equal(ctkn__linein_next(&r, &line), 4);
  assert_string_equal(line, "last");
  assert_true(ctkn__linein_ready(&r)); /* the end is there */
  assert_int_equal(ctkn__linein_next(&r, &line), -1);
  assert_int_equal(r.errnum, 0);
  int status;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  free(s);
  ctkn__linein_free(&r);
  fclose(in);

  /* A non-blocking descriptor (as some parents leave stdin) is waited
   * on, not taken for a failure. */
  assert_int_equal(pipe(p), 0);
  assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
  in = fdopen(p[0], "r");
  assert_non_null(in);
  ctkn__linein_init(&r, in);
  child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    close(p[0]);
    usleep(100000);
    _exit(write(p[1], "late\n", 5) == 5 ? 0 : 1);
  }
  close(p[1]);
  assert_int_equal(ctkn__linein_next(&r, &line), 4);
  assert_string_equal(line, "late");
  assert_int_equal(ctkn__linein_next(&r, &line), -1);
  assert_int_equal(r.errnum, 0);
  assert_int_equal(waitpid(child, &status, 0), child);
  ctkn__linein_free(&r);
  fclose(in);

  /* A memory stream has no descriptor: getline(), always ready. */
  static char text[] = "a\nbc";
  in = fmemopen(text, strlen(text), "r");
  assert_non_null(in);
  ctkn__linein_init(&r, in);
  assert_true(ctkn__linein_ready(&r));
  assert_int_equal(ctkn__linein_next(&r, &line), 1);
  assert_string_equal(line, "a");
  assert_int_equal(ctkn__linein_next(&r, &line), 2);
  assert_string_equal(line, "bc");
  assert_int_equal(ctkn__linein_next(&r, &line), -1);
  ctkn__linein_free(&r);
  fclose(in);
}

/* ---- key and secret files ------------------------------------------- */

static const struct ctkn__file_rules small = {
    .what = "test key file", .max = 64, .open_code = CTKN_EIO};

/* path refused with code, the message naming path and holding words; in
 * well under a second, and with nothing read past the bound. */
static void assert_file_refused(const struct ctkn__file_rules *r,
                                const char *path, int code, const char *words)
{
  struct ctkn__buf b = CTKN__BUF_INIT;
  struct ctkn_err err = {0};
  int64_t t0 = ctkn__now_ms();

  assert_int_equal(ctkn__file_read(path, r, &b, &err), code);
  assert_true(ctkn__now_ms() - t0 < 1000);
  assert_int_equal(err.code, code);
  assert_non_null(strstr(err.msg, path));
  assert_non_null(strstr(err.msg, r->what));
  if (strstr(err.msg, words) == NULL)
    fail_msg("\"%s\" lacks \"%s\"", err.msg, words);
  assert_true(b.len <= r->max + 1);
  ctkn__buf_free(&b);
}

static void test_file_read_takes_a_regular_file_up_to_its_bound(void **state)
{
  char dir[] = "/tmp/ctkn-file-XXXXXX", path[64];
  char text[65];
  struct ctkn__buf b = CTKN__BUF_INIT;
  FILE *f;

  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/k", dir);
  memset(text, 'k', 64);
  text[64] = '\0';
  assert_non_null(f = fopen(path, "w"));
  fputs(text, f);
  fclose(f);
  assert_int_equal(ctkn__file_read(path, &small, &b, NULL), CTKN_OK);
  assert_int_equal(b.len, 64);
  assert_string_equal(b.data, text);
  ctkn__buf_free(&b);
  /* One byte more is refused, by its size before it is read. */
  assert_non_null(f = fopen(path, "a"));
  fputc('k', f);
  fclose(f);
  assert_file_refused(&small, path, CTKN_EINVAL, "more than 64 bytes");
  /* Far larger (sparse: nothing is written) fails as fast. */
  assert_int_equal(truncate(path, (off_t)1 << 40), 0);
  assert_file_refused(&small, path, CTKN_EINVAL, "more than 64 bytes");
  /* Missing: the open code, or empty when the rules allow it. */
  assert_int_equal(unlink(path), 0);
  assert_file_refused(&small, path, CTKN_EIO, "cannot open");
  struct ctkn__file_rules maybe = small;
  maybe.missing_ok = true;
  assert_int_equal(ctkn__file_read(path, &maybe, &b, NULL), CTKN_OK);
  assert_int_equal(b.len, 0);
  ctkn__buf_free(&b);
  assert_int_equal(rmdir(dir), 0);
}

static void test_file_read_refuses_devices_fifos_and_directories(void **state)
{
  char dir[] = "/tmp/ctkn-file-XXXXXX", fifo[64];

  (void)state;
  assert_non_null(mkdtemp(dir));
  /* /dev/zero never ends: refused before a byte is read. */
  assert_file_refused(&small, "/dev/zero", CTKN_EINVAL,
                      "not a regular file (a character device)");
  assert_file_refused(&small, dir, CTKN_EINVAL,
                      "not a regular file (a directory)");
  /* A FIFO with no writer would block a plain open(). */
  snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  assert_file_refused(&small, fifo, CTKN_EINVAL, "not a regular file (a FIFO)");
  assert_int_equal(unlink(fifo), 0);
  assert_int_equal(rmdir(dir), 0);
}

static void test_file_read_refuses_a_shared_secret(void **state)
{
  char dir[] = "/tmp/ctkn-file-XXXXXX", path[64];
  struct ctkn__file_rules secret = small;
  struct ctkn__buf b = CTKN__BUF_INIT;
  int fd;

  (void)state;
  secret.private_mode = true;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/k", dir);
  assert_true((fd = open(path, O_WRONLY | O_CREAT, 0640)) >= 0);
  close(fd);
  assert_int_equal(chmod(path, 0640), 0);
  assert_file_refused(&secret, path, CTKN_EINVAL, "chmod 600");
  assert_int_equal(chmod(path, 0600), 0);
  assert_int_equal(ctkn__file_read(path, &secret, &b, NULL), CTKN_OK);
  assert_int_equal(b.len, 0);
  ctkn__buf_free(&b);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buf_grows_and_stays_a_c_string),
      cmocka_unit_test(test_buf_holds_arrays_of_structs),
      cmocka_unit_test(test_buf_refuses_a_size_that_overflows),
      cmocka_unit_test(test_buf_json_str_escapes_everything_that_breaks_json),
      cmocka_unit_test(test_queue_is_fifo_and_pops_in_batches),
      cmocka_unit_test(test_closed_queue_refuses_pushes_and_drains),
      cmocka_unit_test(test_queue_hands_every_item_over_between_threads),
      cmocka_unit_test(test_queue_pop_min_waits_for_company_a_kick_or_time),
      cmocka_unit_test(test_diag_writes_one_escaped_json_line_per_call),
      cmocka_unit_test(test_diag_level_names_parse),
      cmocka_unit_test(test_diag_access_lines_are_written_together),
      cmocka_unit_test(test_linein_knows_when_the_input_stops),
      cmocka_unit_test(test_file_read_takes_a_regular_file_up_to_its_bound),
      cmocka_unit_test(test_file_read_refuses_devices_fifos_and_directories),
      cmocka_unit_test(test_file_read_refuses_a_shared_secret),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
