/*
 * test_api.c - the HTTP API without a socket: routing, authentication,
 * the token and notification-setting reads, /healthz, /metrics, position
 * waits, the body rules, the write path up to the command thread, and the
 * access line, driven through src/api/'s handlers (api_int.h) as http.c
 * drives them.
 *
 * Each test gets a real LMDB projection in a fresh mkdtemp() directory,
 * filled through ctkn_projector_apply() and ctkn_settings_project() with
 * encoded events, and a server over it (ctkn__api_server_new(): keys,
 * links, queues; no thread, no socket) whose transport only notes a
 * resume. The key file is made once for the group.
 *
 * The command path: a write is parsed, checked and queued, and
 * ctkn__api_commands_serve() answers it: without a ledger with the reason,
 * and with a ledger over the in-memory log (fake_log.h) end to end, as the
 * command thread does (the second group of tests).
 */
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/api_int.h"
#include "ctkn/akey.h"
#include "ctkn/apikey.h"
#include "ctkn/codec.h"
#include "ctkn/diag.h"
#include "ctkn/error.h"
#include "ctkn/event.h"
#include "ctkn/keylog.h"
#include "ctkn/log.h"
#include "ctkn/projector.h"
#include "ctkn/query.h"
#include "ctkn/settings.h"
#include "ctkn/store.h"
#include "ctkn/token.h"
#include "json_assert.h"
#include "testkit.h"

#define T0     INT64_C(1750948574695521) /* 2025-06-26T14:36:14.695521Z */
#define NTOK   6                         /* tokens; 1 and 4 are revoked */
#define NDEST  3                         /* destinations; 1 is paused */
#define NEVENT (NTOK + 2)                /* records on partition 0 */
#define BASE   "https://api.example"
#define HOOK   "https://hooks.example.com/paddle"

#define assert_contains(hay, needle)                                           \
  do {                                                                         \
    if (strstr((hay), (needle)) == NULL)                                       \
      fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));             \
  } while (0)

/* ---- the group's key file --------------------------------------------- */

static char keydir[64], keyfile[128];
static char auth_reader[80], auth_writer[80], auth_setread[80],
    auth_setwrite[80], auth_allread[80], auth_keyread[80];
static const uint8_t deploy_key[CTKN_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};

static void make_key(const char *name, unsigned perms, char *auth, size_t cap)
{
  char key[CTKN_APIKEY_BUF];
  struct ctkn_err err = {0};

  if (ctkn_apikey_create(keyfile, name, perms, key, NULL, &err) != CTKN_OK)
    fail_msg("apikey create %s: %s", name, err.msg);
  snprintf(auth, cap, "Bearer %s", key);
}

/* Diagnostics (access lines, "api keys loaded") are not the tests'
 * output; test_access_line_has_its_members_escaped captures them. */
static void drop(void *arg, const char *line, size_t len)
{
  (void)arg;
  (void)line;
  (void)len;
}

static int group_setup(void **state)
{
  (void)state;
  ctkn_diag_set_sink(drop, NULL);
  snprintf(keydir, sizeof(keydir), "/tmp/ctkn_test_api_keys_XXXXXX");
  if (mkdtemp(keydir) == NULL)
    return -1;
  snprintf(keyfile, sizeof(keyfile), "%s/api-keys", keydir);
  make_key("reader", CTKN_PERM_TOKEN_READ, auth_reader, sizeof(auth_reader));
  make_key("writer", CTKN_PERM_TOKEN_WRITE, auth_writer, sizeof(auth_writer));
  make_key("setread", CTKN_PERM_SETTING_READ, auth_setread,
           sizeof(auth_setread));
  make_key("setwrite", CTKN_PERM_SETTING_WRITE, auth_setwrite,
           sizeof(auth_setwrite));
  make_key("allread",
           CTKN_PERM_TOKEN_READ | CTKN_PERM_SETTING_READ | CTKN_PERM_KEY_READ,
           auth_allread, sizeof(auth_allread));
  make_key("keyread", CTKN_PERM_KEY_READ, auth_keyread, sizeof(auth_keyread));
  return 0;
}

/* Remove dir and the plain files in it. */
static void rm_dir(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[512];

  if (d == NULL)
    return;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

static int group_teardown(void **state)
{
  (void)state;
  rm_dir(keydir);
  ctkn_diag_set_sink(NULL, NULL);
  return 0;
}

/* ---- the fixture ------------------------------------------------------- */

#define MAX_TARGETS 64

struct fx {
  char tmp[64], db[128];
  ctkn_store *st;
  struct ctkn_log_config log;
  struct ctkn_server_config cfg;
  struct server *s;
  char id[NTOK][CTKN_ID_BUF]; /* in ID (creation) order */
  char tok[NTOK][CTKN_TOKEN_BUF];
  char dest[NDEST][CTKN_DEST_ID_BUF];  /* in ID order */
  char secret[NDEST][CTKN_SECRET_BUF]; /* their endpoint secrets */
  char *targets[MAX_TARGETS];          /* request lines, kept to the end */
  int ntargets;
  int resumes;
};

static struct fx *current;

static void t_suspend(struct req *r)
{
  (void)r;
}

static void t_resume(struct req *r)
{
  (void)r;
  current->resumes++;
}

static const struct ctkn__api_transport test_io = {t_suspend, t_resume};

static void apply(struct fx *f, const struct ctkn_event *ev, int64_t off)
{
  struct ctkn_log_msg m;
  struct ctkn_err err = {0};
  uint8_t *buf;
  size_t len;

  assert_int_equal(ctkn_event_encode(ev, &buf, &len, &err), CTKN_OK);
  memset(&m, 0, sizeof(m));
  m.offset = off;
  m.timestamp_ms = -1;
  m.key = ev->data.id;
  m.key_len = strlen(ev->data.id);
  m.value = buf;
  m.value_len = len;
  snprintf(m.event_type, sizeof(m.event_type), "%s",
           ctkn_event_type_str(ev->type));
  m.schema_version = 1;
  if (ctkn_projector_apply(f->st, CTKN_ENV_SANDBOX, &m, 1, NULL, 0, NULL,
                           &err) != CTKN_OK)
    fail_msg("apply: %s", err.msg);
  free(buf);
}

/* NTOK creates one second apart at offsets 0..NTOK-1, then revokes of
 * tokens 1 and 4. */
static void fill_tokens(struct fx *f)
{
  static const int revoked[] = {1, 4};
  struct ctkn_command cmd;
  struct ctkn_event ev;
  struct ctkn_record cur;
  ctkn_store_txn *t;

  for (int i = 0; i < NTOK; i++) {
    char name[16];
    snprintf(name, sizeof(name), "token %d", i);
    ctkn_command_init(&cmd, CTKN_CMD_CREATE);
    assert_int_equal(ctkn_command_set_name(&cmd, name, strlen(name), NULL), 0);
    assert_int_equal(ctkn_plan(NULL, &cmd, CTKN_ENV_SANDBOX,
                               T0 + i * INT64_C(1000000), &ev, NULL),
                     CTKN_PLAN_APPEND);
    apply(f, &ev, i);
    strcpy(f->id[i], ev.data.id);
    strcpy(f->tok[i], ev.data.token);
  }
  for (int k = 0; k < 2; k++) {
    int i = revoked[k];
    assert_int_equal(ctkn_store_begin(f->st, false, &t, NULL), CTKN_OK);
    assert_int_equal(ctkn_store_get(t, f->id[i], &cur, NULL), CTKN_OK);
    ctkn_store_abort(t);
    ctkn_command_init(&cmd, CTKN_CMD_UPDATE);
    assert_int_equal(ctkn_command_set_id(&cmd, f->id[i], NULL), 0);
    assert_int_equal(ctkn_command_set_status(&cmd, "revoked", NULL), 0);
    assert_int_equal(
        ctkn_plan(&cur, &cmd, CTKN_ENV_SANDBOX, T0 + 100000000, &ev, NULL),
        CTKN_PLAN_APPEND);
    apply(f, &ev, NTOK + k);
  }
}

static void project_setting(struct fx *f, const struct ctkn_setting_event *ev,
                            int64_t off)
{
  struct ctkn_log_msg m;
  struct ctkn_err err = {0};
  uint8_t *buf;
  size_t len;

  assert_int_equal(ctkn_setting_event_encode(ev, &buf, &len, &err), CTKN_OK);
  memset(&m, 0, sizeof(m));
  m.offset = off;
  m.timestamp_ms = T0 / 1000;
  m.value = buf;
  m.value_len = len;
  m.schema_version = 1;
  if (ctkn_settings_project(f->st, &m, 1, &err) != CTKN_OK)
    fail_msg("project: %s", err.msg);
  free(buf);
}

/* NDEST destinations one second apart, the last for traffic_source all;
 * then destination 1 is paused. */
static void fill_settings(struct fx *f)
{
  struct ctkn_setting_event *ev = calloc(1, sizeof(*ev));
  struct ctkn_destination cur;
  struct ctkn_dest_command c;
  char secret[CTKN_SECRET_BUF];
  ctkn_store_txn *t;
  int64_t start = 0;

  assert_non_null(ev);
  for (int i = 0; i < NDEST; i++) {
    ctkn_dest_command_init(&c, CTKN_DEST_ADD);
    assert_int_equal(ctkn_dest_command_set_url(&c, HOOK, NULL), CTKN_OK);
    assert_int_equal(
        ctkn_dest_command_set_events(&c, "client_token.revoked", NULL), 0);
    if (i == NDEST - 1)
      assert_int_equal(ctkn_dest_command_set_traffic(&c, "all", NULL), 0);
    assert_int_equal(ctkn_settings_plan(NULL, &c, deploy_key, &start, 1,
                                        T0 + i * INT64_C(1000000), ev, secret,
                                        NULL),
                     CTKN_PLAN_APPEND);
    project_setting(f, ev, i);
    strcpy(f->dest[i], ev->data.id);
    strcpy(f->secret[i], secret);
  }
  assert_int_equal(ctkn_store_begin(f->st, false, &t, NULL), CTKN_OK);
  assert_int_equal(ctkn_settings_get(t, f->dest[1], false, &cur, NULL), 0);
  ctkn_store_abort(t);
  ctkn_dest_command_init(&c, CTKN_DEST_UPDATE);
  assert_int_equal(ctkn_dest_command_set_id(&c, f->dest[1], NULL), CTKN_OK);
  ctkn_dest_command_set_active(&c, false);
  assert_int_equal(ctkn_settings_plan(&cur, &c, NULL, NULL, 0, T0 + 90000000,
                                      ev, NULL, NULL),
                   CTKN_PLAN_APPEND);
  project_setting(f, ev, NDEST);
  free(ev);
}

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  struct ctkn_store_opts opts = {.map_size = (size_t)64 << 20};
  struct ctkn_err err = {0};

  if (f == NULL)
    return -1;
  snprintf(f->tmp, sizeof(f->tmp), "/tmp/ctkn_test_api_XXXXXX");
  if (mkdtemp(f->tmp) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->db, sizeof(f->db), "%s/db", f->tmp);
  if (ctkn_store_open(&f->st, f->db, &opts, &err) != CTKN_OK) {
    fprintf(stderr, "open %s: %s\n", f->db, err.msg);
    return -1;
  }
  ctkn_log_config_init(&f->log);
  ctkn_server_config_init(&f->cfg);
  f->cfg.api_keys = keyfile;
  f->cfg.public_url = BASE "/";
  f->cfg.log = &f->log;
  f->cfg.env = CTKN_ENV_SANDBOX;
  if (ctkn__api_server_new(&f->s, f->st, &f->cfg, &err) != CTKN_OK) {
    fprintf(stderr, "server: %s\n", err.msg);
    return -1;
  }
  f->s->io = &test_io;
  current = f;
  fill_tokens(f);
  fill_settings(f);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  ctkn__api_server_free(f->s);
  for (int i = 0; i < f->ntargets; i++)
    free(f->targets[i]);
  ctkn_store_close(f->st);
  ctkn_log_config_free(&f->log);
  ctkn_store_remove(f->db);
  rm_dir(f->tmp);
  free(f);
  current = NULL;
  return 0;
}

/* ---- driving a request ------------------------------------------------ */

/*
 * A request for target ("/path?k=v&k2"), as http.c makes one: the query
 * split off into parameters (no %-decoding: tests write them decoded),
 * then hdrs (name, value, ..., NULL).
 */
static struct req *make_v(struct fx *f, const char *method, const char *target,
                          va_list ap)
{
  char *t = strdup(target), *q, *p;
  struct req *r;
  const char *name;

  assert_non_null(t);
  assert_true(f->ntargets < MAX_TARGETS);
  f->targets[f->ntargets++] = t;
  if ((q = strchr(t, '?')) != NULL)
    *q++ = '\0';
  r = ctkn__api_req_new(f->s, NULL, method, t);
  assert_non_null(r);
  for (p = q; p != NULL && *p != '\0';) {
    char *amp = strchr(p, '&'), *eq;
    if (amp != NULL)
      *amp = '\0';
    if ((eq = strchr(p, '=')) != NULL)
      *eq++ = '\0';
    assert_true(ctkn__api_req_param(r, p, strlen(p), eq, eq ? strlen(eq) : 0));
    p = amp ? amp + 1 : NULL;
  }
  while ((name = va_arg(ap, const char *)) != NULL) {
    const char *value = va_arg(ap, const char *);
    ctkn__api_req_header(r, name, value, strlen(value));
  }
  return r;
}

/* A request as make_v() builds it, not yet begun. */
static struct req *make(struct fx *f, const char *method, const char *target,
                        ...)
{
  va_list ap;
  struct req *r;

  va_start(ap, target);
  r = make_v(f, method, target, ap);
  va_end(ap);
  return r;
}

/* begin, the body (NULL: none), dispatch: a whole request. */
static struct req *call(struct fx *f, const char *method, const char *target,
                        const char *body, ...)
{
  va_list ap;
  struct req *r;

  va_start(ap, body);
  r = make_v(f, method, target, ap);
  va_end(ap);
  ctkn__api_begin(f->s, r);
  if (body != NULL)
    assert_true(ctkn__api_body(r, body, strlen(body)));
  ctkn__api_dispatch(f->s, r);
  return r;
}

static void done(struct fx *f, struct req *r)
{
  ctkn__api_complete(f->s, r, NULL);
}

/* The answer's JSON (r keeps its text). */
static json_t *answer(const struct req *r)
{
  assert_non_null(r->resp);
  return parse(strdup(r->resp));
}

/* An error answer: status, Paddle's code, the field it names (or NULL),
 * and the request ID in meta. Returns the detail's JSON (decref it). */
static json_t *assert_error(const struct req *r, int status, const char *code,
                            const char *field)
{
  json_t *j = answer(r), *e = json_object_get(j, "error");

  assert_int_equal(r->status, status);
  assert_string_equal(jstr(e, "code"), code);
  assert_string_equal(jstr(json_object_get(j, "meta"), "request_id"), r->rid);
  if (field != NULL) {
    json_t *errs = json_object_get(e, "errors");
    assert_int_equal(json_array_size(errs), 1);
    assert_string_equal(jstr(json_array_get(errs, 0), "field"), field);
  } else {
    assert_null(json_object_get(e, "errors"));
  }
  return j;
}

static void check_error(struct fx *f, struct req *r, int status,
                        const char *code, const char *field)
{
  json_decref(assert_error(r, status, code, field));
  done(f, r);
}

/* check_error, and the detail contains detail. */
static void check_detail(struct fx *f, struct req *r, int status,
                         const char *code, const char *field,
                         const char *detail)
{
  json_t *j = assert_error(r, status, code, field);

  assert_contains(jstr(json_object_get(j, "error"), "detail"), detail);
  json_decref(j);
  done(f, r);
}

/* r, queued for the command thread, answered by its loop without a
 * ledger: 503 with the reason. */
static void refuse_queued(struct fx *f, struct req *r)
{
  struct ctkn_err why = {.code = CTKN_EKAFKA, .msg = "no broker"};

  ctkn__queue_close(&f->s->cmdq);
  ctkn__api_commands_serve(f->s, NULL, &why);
  check_detail(f, r, 503, "service_unavailable", NULL, "no broker");
}

/* The IDs of a list answer's data, "a,b,c". */
static void data_ids(json_t *j, char *out, size_t cap)
{
  json_t *data = json_object_get(j, "data");
  size_t i;
  json_t *v;

  out[0] = '\0';
  assert_true(json_is_array(data));
  json_array_foreach(data, i, v)
  {
    size_t n = strlen(out);
    snprintf(out + n, cap - n, "%s%s", i ? "," : "", jstr(v, "id"));
  }
}

/* The IDs of tokens idx[0..n-1], joined as data_ids() joins them. */
static const char *ids_of(struct fx *f, const int *idx, int n)
{
  static char buf[NTOK * CTKN_ID_BUF + NTOK];

  buf[0] = '\0';
  for (int i = 0; i < n; i++) {
    size_t len = strlen(buf);
    snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? "," : "", f->id[idx[i]]);
  }
  return buf;
}

/* A list answer: 200, the IDs in order, and its pagination. */
static void check_page(struct fx *f, struct req *r, const char *want_ids,
                       int per_page, bool has_more, const char *next,
                       int64_t total)
{
  char got[1024];
  json_t *j, *pg;

  assert_int_equal(r->status, 200);
  j = answer(r);
  data_ids(j, got, sizeof(got));
  assert_string_equal(got, want_ids);
  pg = json_object_get(json_object_get(j, "meta"), "pagination");
  assert_int_equal(json_integer_value(json_object_get(pg, "per_page")),
                   per_page);
  assert_true(json_is_true(json_object_get(pg, "has_more")) == has_more);
  /* Paddle's next is always a URL, has_more or not. */
  assert_true(json_is_string(json_object_get(pg, "next")));
  if (next != NULL)
    assert_string_equal(jstr(pg, "next"), next);
  if (total < 0)
    assert_null(json_object_get(pg, "estimated_total"));
  else
    assert_int_equal(json_integer_value(json_object_get(pg, "estimated_total")),
                     total);
  assert_string_equal(jstr(json_object_get(j, "meta"), "request_id"), r->rid);
  json_decref(j);
  done(f, r);
}

/* ---- client tokens: get ------------------------------------------------ */

static void test_get_answers_the_entity_as_the_query_renders_it(void **state)
{
  struct fx *f = *state;
  char target[80], *want = NULL;
  struct req *r;

  snprintf(target, sizeof(target), "/client-tokens/%s", f->id[2]);
  r = call(f, "GET", target, NULL, "Authorization", auth_reader, NULL);
  assert_int_equal(r->status, 200);
  assert_int_equal(ctkn_query_get(f->st, NULL, f->id[2], r->rid, &want, NULL),
                   0);
  assert_string_equal(r->resp, want);
  assert_null(r->ctype);
  assert_null(r->allow);
  assert_string_equal(r->position, "");
  assert_int_equal(r->retry_after, 0);
  assert_string_equal(r->key_name, "reader");
  assert_int_equal(r->route, R_GET);
  free(want);
  done(f, r);

  /* HEAD is a GET; the scheme's case does not matter (Paddle's SDK sends
   * "bearer"); a revoked token is still there to get. */
  auth_reader[0] = 'b';
  snprintf(target, sizeof(target), "/client-tokens/%s", f->id[1]);
  r = call(f, "HEAD", target, NULL, "authorization", auth_reader, NULL);
  auth_reader[0] = 'B';
  assert_int_equal(r->status, 200);
  json_t *j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "data"), "status"), "revoked");
  json_decref(j);
  done(f, r);
}

static void test_get_refuses_unknown_ids_bad_ids_and_parameters(void **state)
{
  struct fx *f = *state;
  char target[96];

  check_detail(f,
               call(f, "GET", "/client-tokens/ctkn_01h04vsbhqbpsdbkn6g5ya2r2k",
                    NULL, "Authorization", auth_reader, NULL),
               404, "not_found", NULL,
               "client-side token ctkn_01h04vsbhqbpsdbkn6g5ya2r2k not found");
  check_detail(f,
               call(f, "GET", "/client-tokens/ctkn_NOPE", NULL, "Authorization",
                    auth_reader, NULL),
               400, "invalid_field", "client_token_id", CTKN_ID_RULE("ctkn_"));
  /* The rule quoted is the one checked: a 'u' (not in the ULID alphabet)
   * or a first character past 7 fails it, and it says so. */
  static const char *const not_ulids[] = {
      "/client-tokens/ctkn_01m987b3jrkajsyfhsqb3n5kyu",
      "/client-tokens/ctkn_81m987b3jrkajsyfhsqb3n5ky4"};
  for (size_t i = 0; i < 2; i++) {
    regex_t re;
    assert_int_equal(regcomp(&re, CTKN_ID_PATTERN("ctkn_"), REG_EXTENDED), 0);
    assert_int_not_equal(regexec(&re, not_ulids[i] + 15, 0, NULL, 0), 0);
    regfree(&re);
    check_detail(
        f,
        call(f, "GET", not_ulids[i], NULL, "Authorization", auth_reader, NULL),
        400, "invalid_field", "client_token_id", CTKN_ID_RULE("ctkn_"));
  }
  snprintf(target, sizeof(target), "/client-tokens/%s?expand=x", f->id[0]);
  check_detail(f,
               call(f, "GET", target, NULL, "Authorization", auth_reader, NULL),
               400, "invalid_field", "expand",
               "unknown or repeated query parameter (allowed: none)");
}

/* ---- client tokens: history -------------------------------------------- */

static void test_history_answers_the_events_oldest_first(void **state)
{
  struct fx *f = *state;
  char target[96], *want = NULL;
  struct req *r;

  snprintf(target, sizeof(target), "/client-tokens/%s/history", f->id[1]);
  r = call(f, "GET", target, NULL, "Authorization", auth_reader, NULL);
  assert_int_equal(r->status, 200);
  assert_int_equal(r->route, R_HISTORY);
  assert_string_equal(r->id, f->id[1]);
  assert_int_equal(
      ctkn_query_history_json(f->st, NULL, f->id[1], r->rid, &want, NULL), 0);
  assert_string_equal(r->resp, want);
  free(want);
  json_t *j = answer(r), *data = json_object_get(j, "data");
  assert_int_equal(json_array_size(data), 2);
  assert_string_equal(jstr(json_array_get(data, 0), "event_type"),
                      "client_token.created");
  assert_string_equal(jstr(json_array_get(data, 1), "event_type"),
                      "client_token.revoked");
  assert_string_equal(jstr(json_object_get(j, "meta"), "request_id"), r->rid);
  json_decref(j);
  done(f, r);

  check_detail(f,
               call(f, "GET",
                    "/client-tokens/ctkn_01h04vsbhqbpsdbkn6g5ya2r2k/history",
                    NULL, "Authorization", auth_reader, NULL),
               404, "not_found", NULL,
               "client-side token ctkn_01h04vsbhqbpsdbkn6g5ya2r2k not found");
  check_detail(f,
               call(f, "GET", "/client-tokens/ctkn_NOPE/history", NULL,
                    "Authorization", auth_reader, NULL),
               400, "invalid_field", "client_token_id", CTKN_ID_RULE("ctkn_"));
  snprintf(target, sizeof(target), "/client-tokens/%s/history?x=1", f->id[1]);
  check_detail(f,
               call(f, "GET", target, NULL, "Authorization", auth_reader, NULL),
               400, "invalid_field", "x",
               "unknown or repeated query parameter (allowed: none)");
  snprintf(target, sizeof(target), "/client-tokens/%s/history", f->id[1]);
  check_error(f, call(f, "GET", target, NULL, NULL), 403,
              "authentication_missing", NULL);
  r = call(f, "PATCH", target, NULL, "Authorization", auth_reader, NULL);
  assert_string_equal(r->allow, "GET, HEAD");
  check_error(f, r, 405, "method_not_allowed", NULL);
  snprintf(target, sizeof(target), "/client-tokens/%s/historyx", f->id[1]);
  check_error(f, call(f, "GET", target, NULL, NULL), 404, "not_found", NULL);
  check_error(f, call(f, "GET", "/client-tokens//history", NULL, NULL), 404,
              "not_found", NULL);
}

/* ---- events ------------------------------------------------------------- */

/* GET target's answer (200 or fail), parsed; the request is completed. */
static json_t *get_json(struct fx *f, const char *target, const char *auth)
{
  struct req *r = call(f, "GET", target, NULL, "Authorization", auth, NULL);
  json_t *j;

  if (r->status != 200)
    fail_msg("GET %s: %d %s", target, r->status, r->resp ? r->resp : "");
  j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "meta"), "request_id"), r->rid);
  done(f, r);
  return j;
}

static json_t *pagination_of(json_t *j)
{
  return json_object_get(json_object_get(j, "meta"), "pagination");
}

static void test_events_page_through_every_applied_event_by_id(void **state)
{
  struct fx *f = *state;
  char target[512], prev[CTKN_EVT_ID_LEN + 1] = "", *hist = NULL;
  json_t *all = json_array(), *j;
  int pages = 0;

  /* Three pages of three, following next as a client would. */
  snprintf(target, sizeof(target), "/events?per_page=3");
  for (;;) {
    j = get_json(f, target, auth_reader);
    json_t *pg = pagination_of(j), *data = json_object_get(j, "data"), *v;
    size_t i;
    pages++;
    assert_int_equal(json_integer_value(json_object_get(pg, "per_page")), 3);
    assert_int_equal(json_integer_value(json_object_get(pg, "estimated_total")),
                     NEVENT);
    json_array_foreach(data, i, v)
    {
      /* Strictly increasing event IDs, each the webhook envelope. */
      assert_true(strcmp(jstr(v, "event_id"), prev) > 0);
      snprintf(prev, sizeof(prev), "%s", jstr(v, "event_id"));
      assert_non_null(json_object_get(v, "notification_id"));
      json_array_append(all, v);
    }
    char want[256];
    snprintf(want, sizeof(want),
             BASE "/events?after=%s&order_by=id%%5BASC%%5D&per_page=3", prev);
    assert_string_equal(jstr(pg, "next"), want);
    bool more = json_is_true(json_object_get(pg, "has_more"));
    assert_true(more == (pages < 3));
    json_decref(j);
    if (!more)
      break;
    snprintf(target, sizeof(target), "/events?per_page=3&after=%s", prev);
  }
  assert_int_equal(json_array_size(all), NEVENT);
  /* Token 1's two events are those its history answers, byte for byte. */
  assert_int_equal(
      ctkn_query_history_json(f->st, NULL, f->id[1], "x", &hist, NULL),
      CTKN_OK);
  json_t *h = parse(hist), *hv;
  size_t i, found = 0;
  json_array_foreach(json_object_get(h, "data"), i, hv)
  {
    size_t k;
    json_t *v;
    json_array_foreach(all, k, v) found += json_equal(v, hv) ? 1 : 0;
  }
  assert_int_equal(found, 2);
  json_decref(h);
  /* Newest first: the same events reversed. */
  j = get_json(f, "/events?order_by=id[desc]&per_page=200", auth_reader);
  json_t *data = json_object_get(j, "data");
  assert_int_equal(json_array_size(data), NEVENT);
  for (size_t k = 0; k < NEVENT; k++)
    assert_true(json_equal(json_array_get(data, k),
                           json_array_get(all, NEVENT - 1 - k)));
  assert_false(json_is_true(json_object_get(pagination_of(j), "has_more")));
  json_decref(j);
  json_decref(all);
}

static void test_events_filter_by_type_and_time(void **state)
{
  struct fx *f = *state;
  char from[CTKN_TIME_BUF], to[CTKN_TIME_BUF], target[256];
  json_t *j, *data, *v;
  size_t i;

  j = get_json(f, "/events?event_type=client_token.revoked", auth_reader);
  data = json_object_get(j, "data");
  assert_int_equal(json_array_size(data), 2);
  /* The whole match on one page: its count, not the token events'. */
  assert_int_equal(
      json_integer_value(json_object_get(pagination_of(j), "estimated_total")),
      2);
  json_array_foreach(data, i, v)
      assert_string_equal(jstr(v, "event_type"), "client_token.revoked");
  assert_contains(jstr(pagination_of(j), "next"),
                  "event_type=client_token.revoked&");
  json_decref(j);
  /* A type the log holds none of selects nothing; the settings topic's
   * beside the tokens'. */
  j = get_json(f, "/events?event_type=api_key.expiring", auth_allread);
  assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
  assert_int_equal(
      json_integer_value(json_object_get(pagination_of(j), "estimated_total")),
      0);
  json_decref(j);
  j = get_json(f,
               "/events?event_type=notification_setting.created,"
               "client_token.created",
               auth_allread);
  assert_int_equal(json_array_size(json_object_get(j, "data")), NTOK + NDEST);
  json_decref(j);
  j = get_json(f, "/events?event_type=notification_setting.updated",
               auth_setread);
  data = json_object_get(j, "data");
  assert_int_equal(json_array_size(data), 1);
  assert_string_equal(
      jstr(json_object_get(json_array_get(data, 0), "data"), "id"), f->dest[1]);
  json_decref(j);
  /* Repeated, as Paddle's Go SDK sends a list: the values add up. */
  j = get_json(f,
               "/events?event_type=client_token.revoked&"
               "event_type=client_token.created",
               auth_reader);
  assert_int_equal(json_array_size(json_object_get(j, "data")), NEVENT);
  assert_contains(jstr(pagination_of(j), "next"),
                  "event_type=client_token.created,client_token.revoked&");
  json_decref(j);
  /* from is inclusive, to exclusive: creates 1 and 2. */
  assert_int_equal(ctkn_time_format(T0 + 1000000, from), 0);
  assert_int_equal(ctkn_time_format(T0 + 3000000, to), 0);
  snprintf(target, sizeof(target), "/events?from=%s&to=%s", from, to);
  j = get_json(f, target, auth_reader);
  data = json_object_get(j, "data");
  assert_int_equal(json_array_size(data), 2);
  assert_int_equal(
      json_integer_value(json_object_get(pagination_of(j), "estimated_total")),
      2);
  assert_string_equal(
      jstr(json_object_get(json_array_get(data, 0), "data"), "id"), f->id[1]);
  assert_string_equal(
      jstr(json_object_get(json_array_get(data, 1), "data"), "id"), f->id[2]);
  json_decref(j);
}

static void test_events_parameters_and_permissions_are_checked(void **state)
{
  struct fx *f = *state;
  struct ctkn_err err = {0};
  ctkn_store_txn *t;

  check_detail(f,
               call(f, "GET", "/events?event_type=client_token.nope", NULL,
                    "Authorization", auth_reader, NULL),
               400, "invalid_field", "event_type", "client_token.nope");
  check_error(f,
              call(f, "GET", "/events?after=ctkn_x", NULL, "Authorization",
                   auth_reader, NULL),
              400, "invalid_field", "after");
  check_error(f,
              call(f, "GET", "/events?per_page=0", NULL, "Authorization",
                   auth_reader, NULL),
              400, "invalid_field", "per_page");
  check_error(f,
              call(f, "GET", "/events?order_by=occurred_at[ASC]", NULL,
                   "Authorization", auth_reader, NULL),
              400, "invalid_field", "order_by");
  check_error(f,
              call(f, "GET", "/events?from=yesterday", NULL, "Authorization",
                   auth_reader, NULL),
              400, "invalid_field", "from");
  check_error(f,
              call(f, "GET", "/events?status=active", NULL, "Authorization",
                   auth_reader, NULL),
              400, "invalid_field", "status");
  /* Each event's entity's read permission: a type the key cannot read,
   * named, is 403 (unnamed, its events are left out). */
  check_detail(f,
               call(f, "GET", "/events?event_type=client_token.created", NULL,
                    "Authorization", auth_setread, NULL),
               403, "forbidden", NULL, "client_token.read");
  check_detail(f,
               call(f, "GET",
                    "/events?event_type=client_token.created,api_key.revoked",
                    NULL, "Authorization", auth_reader, NULL),
               403, "forbidden", NULL, "api_key.read");
  check_error(f, call(f, "GET", "/events", NULL, NULL), 403,
              "authentication_missing", NULL);
  struct req *r =
      call(f, "POST", "/events", NULL, "Authorization", auth_reader, NULL);
  assert_string_equal(r->allow, "GET, HEAD");
  check_error(f, r, 405, "method_not_allowed", NULL);
  check_error(f, call(f, "GET", "/events/x", NULL, NULL), 404, "not_found",
              NULL);
  /* A paused partition may hide events: fail closed. */
  assert_int_equal(ctkn_store_begin(f->st, true, &t, &err), CTKN_OK);
  assert_int_equal(ctkn_store_set_pause(t, 0, 3, 2, &err), CTKN_OK);
  assert_int_equal(ctkn_store_commit(t, &err), CTKN_OK);
  check_detail(
      f, call(f, "GET", "/events", NULL, "Authorization", auth_reader, NULL),
      503, "service_unavailable", NULL, "partition 0 is paused");
}

static void test_event_types_lists_every_type_with_its_group(void **state)
{
  struct fx *f = *state;
  json_t *j = get_json(f, "/event-types", auth_reader), *v;
  json_t *data = json_object_get(j, "data");
  char names[1024] = "";
  size_t i;

  json_array_foreach(data, i, v)
  {
    size_t n = strlen(names);
    snprintf(names + n, sizeof(names) - n, "%s%s", i ? "," : "",
             jstr(v, "name"));
    assert_true(strlen(jstr(v, "description")) > 10);
    assert_true(strlen(jstr(v, "group")) > 0);
    json_t *av = json_object_get(v, "available_versions");
    assert_int_equal(json_array_size(av), 1);
    assert_int_equal(json_integer_value(json_array_get(av, 0)), 1);
  }
  assert_string_equal(names, "client_token.created,client_token.updated,"
                             "client_token.revoked,"
                             "notification_setting.created,"
                             "notification_setting.updated,"
                             "notification_setting.deleted,"
                             "api_key.created,api_key.updated,"
                             "api_key.revoked,api_key.expiring,"
                             "api_key.expired");
  assert_string_equal(jstr(json_array_get(data, 2), "group"), "Client token");
  json_decref(j);
  check_error(f,
              call(f, "GET", "/event-types?per_page=5", NULL, "Authorization",
                   auth_reader, NULL),
              400, "invalid_field", "per_page");
  check_error(f, call(f, "GET", "/event-types", NULL, NULL), 403,
              "authentication_missing", NULL);
  /* Any key that may read some events' entity lists the types. */
  json_decref(get_json(f, "/event-types", auth_keyread));
  json_decref(get_json(f, "/event-types", auth_setread));
}

/* ---- the dashboard ------------------------------------------------------ */

/* The value of header name among r's extra headers, or NULL. */
static const char *extra_header(const struct req *r, const char *name)
{
  for (const char *const *h = r->headers; h != NULL && h[0] != NULL; h += 2)
    if (strcmp(h[0], name) == 0)
      return h[1];
  return NULL;
}

static void check_ui_headers(const struct req *r)
{
  const char *csp = extra_header(r, "Content-Security-Policy");

  assert_non_null(csp);
  assert_non_null(strstr(csp, "script-src 'self'"));
  assert_non_null(strstr(csp, "connect-src 'self'"));
  assert_non_null(strstr(csp, "frame-ancestors 'none'"));
  assert_null(strstr(csp, "unsafe"));
  assert_string_equal(extra_header(r, "X-Frame-Options"), "DENY");
  assert_string_equal(extra_header(r, "Referrer-Policy"), "no-referrer");
  assert_string_equal(extra_header(r, "X-Content-Type-Options"), "nosniff");
}

static void test_ui_files_are_served_with_security_headers(void **state)
{
  static const struct {
    const char *target, *ctype, *starts;
  } ok[] = {
      {"/ui/", "text/html; charset=utf-8", "<!doctype html>"},
      {"/ui", "text/html; charset=utf-8", "<!doctype html>"},
      {"/ui/index.html", "text/html; charset=utf-8", "<!doctype html>"},
      {"/ui/app.js", "text/javascript; charset=utf-8", "/*"},
      {"/ui/app.css", "text/css; charset=utf-8", "/*"},
  };
  struct fx *f = *state;
  struct req *r;

  for (size_t i = 0; i < CTKN__ARRAY_LEN(ok); i++) {
    /* No key: the files hold no data. */
    r = call(f, i % 2 ? "HEAD" : "GET", ok[i].target, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->route, R_UI);
    assert_true(ctkn__api_answered(r));
    assert_null(r->resp);
    assert_non_null(r->body_static);
    assert_int_equal(strlen((const char *)r->body_static), r->body_static_len);
    assert_memory_equal(r->body_static, ok[i].starts, strlen(ok[i].starts));
    assert_string_equal(r->ctype, ok[i].ctype);
    check_ui_headers(r);
    done(f, r);
  }
  r = call(f, "GET", "/ui/nope.js", NULL, NULL);
  check_ui_headers(r);
  check_detail(f, r, 404, "not_found", NULL, "no such dashboard file: nope.js");
  r = call(f, "GET", "/ui/?key=x", NULL, NULL);
  check_ui_headers(r);
  check_error(f, r, 400, "invalid_field", "key");
  check_error(f, call(f, "GET", "/ui/a/b", NULL, NULL), 404, "not_found", NULL);
  check_error(f, call(f, "GET", "/uix", NULL, NULL), 404, "not_found", NULL);
  r = call(f, "POST", "/ui/", NULL, NULL);
  assert_string_equal(r->allow, "GET, HEAD");
  check_error(f, r, 405, "method_not_allowed", NULL);
  /* The API's answers are not the page's. */
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
           NULL);
  assert_int_equal(r->status, 200);
  assert_null(r->headers);
  done(f, r);
}

/* ---- client tokens: list ----------------------------------------------- */

static void test_list_defaults_to_active_tokens_newest_first(void **state)
{
  struct fx *f = *state;
  static const int active_desc[] = {5, 3, 2, 0};

  check_page(f,
             call(f, "GET", "/client-tokens", NULL, "Authorization",
                  auth_reader, NULL),
             ids_of(f, active_desc, 4), 50, false, NULL, 4);
  /* A trailing slash names the same list. */
  check_page(f,
             call(f, "GET", "/client-tokens/", NULL, "Authorization",
                  auth_reader, NULL),
             ids_of(f, active_desc, 4), 50, false, NULL, 4);
}

static void test_list_pages_both_ways_with_next_links(void **state)
{
  struct fx *f = *state;
  static const int p1[] = {0, 1}, p2[] = {2, 3}, p3[] = {4, 5}, d1[] = {5, 4},
                   d2[] = {3, 2}, d3[] = {1, 0};
  char target[160], next[200];

  /* Ascending, every status, two a page: three pages, then nothing. */
  snprintf(next, sizeof(next),
           BASE "/client-tokens?after=%s&order_by=id%%5BASC%%5D&per_page=2&"
                "status=active,revoked",
           f->id[1]);
  check_page(f,
             call(f, "GET",
                  "/client-tokens?order_by=id[ASC]&per_page=2&status=active,"
                  "revoked",
                  NULL, "Authorization", auth_reader, NULL),
             ids_of(f, p1, 2), 2, true, next, NTOK);
  snprintf(target, sizeof(target),
           "/client-tokens?after=%s&order_by=id[ASC]&per_page=2&status=active,"
           "revoked",
           f->id[1]);
  check_page(f,
             call(f, "GET", target, NULL, "Authorization", auth_reader, NULL),
             ids_of(f, p2, 2), 2, true, NULL, NTOK);
  snprintf(target, sizeof(target),
           "/client-tokens?after=%s&order_by=id[ASC]&per_page=2&status=active,"
           "revoked",
           f->id[3]);
  /* The last page still links the following one: after its last ID. */
  snprintf(next, sizeof(next),
           BASE "/client-tokens?after=%s&order_by=id%%5BASC%%5D&per_page=2&"
                "status=active,revoked",
           f->id[5]);
  check_page(f,
             call(f, "GET", target, NULL, "Authorization", auth_reader, NULL),
             ids_of(f, p3, 2), 2, false, next, NTOK);
  snprintf(target, sizeof(target),
           "/client-tokens?after=%s&order_by=id[ASC]&status=active,revoked",
           f->id[5]);
  /* An empty page links itself: the same cursor, which new tokens fill. */
  snprintf(next, sizeof(next),
           BASE "/client-tokens?after=%s&order_by=id%%5BASC%%5D&per_page=50&"
                "status=active,revoked",
           f->id[5]);
  check_page(f,
             call(f, "GET", target, NULL, "Authorization", auth_reader, NULL),
             "", 50, false, next, NTOK);

  /* Descending: the same pages backwards; after the first ID, nothing. */
  check_page(f,
             call(f, "GET",
                  "/client-tokens?order_by=id[DESC]&per_page=2&status=revoked,"
                  "active",
                  NULL, "Authorization", auth_reader, NULL),
             ids_of(f, d1, 2), 2, true, NULL, NTOK);
  snprintf(target, sizeof(target),
           "/client-tokens?after=%s&per_page=2&status=revoked,active",
           f->id[4]);
  check_page(f,
             call(f, "GET", target, NULL, "Authorization", auth_reader, NULL),
             ids_of(f, d2, 2), 2, true, NULL, NTOK);
  snprintf(target, sizeof(target),
           "/client-tokens?after=%s&per_page=2&status=revoked,active",
           f->id[2]);
  check_page(f,
             call(f, "GET", target, NULL, "Authorization", auth_reader, NULL),
             ids_of(f, d3, 2), 2, false, NULL, NTOK);
  snprintf(target, sizeof(target), "/client-tokens?after=%s&per_page=2",
           f->id[0]);
  check_page(f,
             call(f, "GET", target, NULL, "Authorization", auth_reader, NULL),
             "", 2, false, NULL, 4);
}

static void test_list_status_filters_repeat_and_combine(void **state)
{
  struct fx *f = *state;
  static const int revoked[] = {4, 1}, all[] = {5, 4, 3, 2, 1, 0};

  check_page(f,
             call(f, "GET", "/client-tokens?status=revoked", NULL,
                  "Authorization", auth_reader, NULL),
             ids_of(f, revoked, 2), 50, false, NULL, 2);
  /* Repeated, as Paddle's Go SDK sends a list. */
  check_page(f,
             call(f, "GET", "/client-tokens?status=active&status=revoked", NULL,
                  "Authorization", auth_reader, NULL),
             ids_of(f, all, NTOK), 50, false, NULL, NTOK);
  /* More parameters than a request keeps without allocating. */
  check_page(f,
             call(f, "GET",
                  "/client-tokens?status=revoked&status=revoked&status=revoked"
                  "&status=revoked&status=revoked&status=revoked&status=revoked"
                  "&status=revoked&status=revoked&status=revoked&status=revoked"
                  "&status=revoked&status=revoked&status=revoked&status=revoked"
                  "&status=revoked&status=revoked&status=active&per_page=3",
                  NULL, "Authorization", auth_reader, NULL),
             ids_of(f, all, 3), 3, true, NULL, NTOK);
}

static void test_list_skip_count_leaves_out_the_estimate(void **state)
{
  struct fx *f = *state;
  static const int active_desc[] = {5, 3, 2, 0};

  check_page(f,
             call(f, "GET", "/client-tokens", NULL, "Authorization",
                  auth_reader, "Skip-Count", "TRUE", NULL),
             ids_of(f, active_desc, 4), 50, false, NULL, -1);
  check_page(f,
             call(f, "GET", "/client-tokens", NULL, "Authorization",
                  auth_reader, "skip-count", "false", NULL),
             ids_of(f, active_desc, 4), 50, false, NULL, 4);
}

static void test_list_parameters_are_checked_naming_the_field(void **state)
{
  struct fx *f = *state;
  static const int active_desc[] = {5, 3, 2, 0};
  static const struct {
    const char *target, *field, *detail;
  } bad[] = {
      {"/client-tokens?per_page=0", "per_page", "must be a positive integer"},
      {"/client-tokens?per_page=abc", "per_page", "must be a positive"},
      {"/client-tokens?per_page=", "per_page", "must be a positive"},
      {"/client-tokens?order_by=id", "order_by", "must be id[ASC] or id[DESC]"},
      {"/client-tokens?status=paused", "status", "comma-separated list"},
      {"/client-tokens?status=", "status", "comma-separated list"},
      {"/client-tokens?status=active,", "status", "comma-separated list"},
      {"/client-tokens?after=ctkn_x", "after", "client-side token ID"},
      {"/client-tokens?per_page=1&per_page=2", "per_page",
       "unknown or repeated query parameter (allowed: after, per_page, "
       "order_by, status)"},
      {"/client-tokens?include=x", "include", "unknown or repeated"},
      /* No '=': refused, not read as the default. */
      {"/client-tokens?per_page", "per_page", "must have a value"},
      {"/client-tokens?status", "status", "must have a value"},
      {"/client-tokens?status&status=revoked", "status", "must have a value"},
      {"/client-tokens?after", "after", "must have a value"},
      {"/client-tokens?order_by", "order_by", "must have a value"},
  };

  for (size_t i = 0; i < CTKN__ARRAY_LEN(bad); i++)
    check_detail(
        f,
        call(f, "GET", bad[i].target, NULL, "Authorization", auth_reader, NULL),
        400, "invalid_field", bad[i].field, bad[i].detail);
  /* Above 200 is capped, not refused. */
  check_page(f,
             call(f, "GET", "/client-tokens?per_page=100000", NULL,
                  "Authorization", auth_reader, NULL),
             ids_of(f, active_desc, 4), 200, false, NULL, 4);
}

/* ---- client tokens: verify --------------------------------------------- */

static void test_verify_answers_active_revoked_and_unknown(void **state)
{
  struct fx *f = *state;
  char target[96], *want = NULL;
  bool active;
  struct req *r;
  json_t *j;

  snprintf(target, sizeof(target), "/client-tokens/verify?token=%s", f->tok[0]);
  r = call(f, "GET", target, NULL, "Authorization", auth_reader, NULL);
  assert_int_equal(r->status, 200);
  assert_int_equal(r->route, R_VERIFY);
  assert_int_equal(
      ctkn_query_verify(f->st, NULL, f->tok[0], r->rid, &want, &active, NULL),
      0);
  assert_string_equal(r->resp, want);
  free(want);
  j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "data"), "status"), "active");
  assert_string_equal(jstr(json_object_get(j, "data"), "id"), f->id[0]);
  json_decref(j);
  done(f, r);

  snprintf(target, sizeof(target), "/client-tokens/verify?token=%s", f->tok[4]);
  r = call(f, "GET", target, NULL, "Authorization", auth_reader, NULL);
  assert_int_equal(r->status, 200);
  j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "data"), "status"), "revoked");
  json_decref(j);
  done(f, r);

  check_detail(f,
               call(f, "GET",
                    "/client-tokens/verify?token="
                    "test_0000000000000000000000000AB",
                    NULL, "Authorization", auth_reader, NULL),
               404, "not_found", NULL, "client-side token not found");
  check_error(f,
              call(f, "GET", "/client-tokens/verify?token=nope", NULL,
                   "Authorization", auth_reader, NULL),
              400, "invalid_field", "token");
  check_detail(f,
               call(f, "GET", "/client-tokens/verify", NULL, "Authorization",
                    auth_reader, NULL),
               400, "invalid_field", "token",
               "the query parameter token is required");
  check_detail(f,
               call(f, "GET", "/client-tokens/verify?token=", NULL,
                    "Authorization", auth_reader, NULL),
               400, "invalid_field", "token", "is required");
  check_detail(f,
               call(f, "GET", "/client-tokens/verify?token", NULL,
                    "Authorization", auth_reader, NULL),
               400, "invalid_field", "token", "must have a value");
  check_detail(f,
               call(f, "GET", "/client-tokens/verify?token=a&token=b", NULL,
                    "Authorization", auth_reader, NULL),
               400, "invalid_field", "token", "(allowed: token)");
}

/* ---- authentication ---------------------------------------------------- */

/* An API-key record projected as the settings follower would, at the
 * settings topic's next offset. */
static void project_akey(struct fx *f, const struct ctkn_akey_event *ev)
{
  static int64_t off = 1000;
  struct ctkn_log_msg m;
  struct ctkn_err err = {0};
  uint8_t *buf;
  size_t len;

  assert_int_equal(ctkn_akey_event_encode(ev, &buf, &len, &err), CTKN_OK);
  memset(&m, 0, sizeof(m));
  m.offset = off++;
  m.timestamp_ms = -1;
  m.key = ev->data.id;
  m.key_len = CTKN_AKEY_ID_LEN;
  m.value = buf;
  m.value_len = len;
  snprintf(m.event_type, sizeof(m.event_type), "%s",
           ctkn_akey_type_str(ev->type));
  m.schema_version = CTKN_AKEY_SCHEMA;
  if (ctkn_settings_project(f->st, &m, 1, &err) != CTKN_OK)
    fail_msg("project: %s", err.msg);
  free(buf);
}

/* A key named name with client_token.read, planned (not projected):
 * its creation event into *ev, its secret into key. */
static void plan_reader_key(const char *name, struct ctkn_akey_event *ev,
                            char key[CTKN_AKEY_BUF])
{
  struct ctkn_akey_command c;

  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_CREATE);
  assert_int_equal(ctkn_akey_command_set_name(&c, name, strlen(name), NULL),
                   CTKN_OK);
  assert_int_equal(ctkn_akey_command_set_perms(&c, CTKN_PERM_TOKEN_READ, NULL),
                   CTKN_OK);
  assert_int_equal(
      ctkn_akey_plan(NULL, &c, CTKN_ENV_SANDBOX, ctkn_now_us(), ev, key, NULL),
      CTKN_AKEY_PLAN_APPEND);
}

static void test_keys_on_the_log_authenticate_until_revoked(void **st)
{
  struct fx *f = *st;
  struct ctkn_akey_command c;
  struct ctkn_akey_event ev, rv;
  char key[CTKN_AKEY_BUF], auth[CTKN_AKEY_BUF + 8], other[CTKN_AKEY_BUF + 8];
  uint8_t sha[32];

  plan_reader_key("fleet", &ev, key);
  snprintf(auth, sizeof(auth), "Bearer %s", key);
  /* Not projected yet: unknown. */
  check_error(
      f, call(f, "GET", "/client-tokens", NULL, "Authorization", auth, NULL),
      403, "invalid_token", NULL);
  project_akey(f, &ev);
  struct req *r =
      call(f, "GET", "/client-tokens", NULL, "Authorization", auth, NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->key_name, ev.data.id); /* logged by ID */
  done(f, r);
  check_detail(f,
               call(f, "GET", "/notification-settings", NULL, "Authorization",
                    auth, NULL),
               403, "forbidden", NULL, "lacks the permission");
  /* Any key reads itself (not others, nor the list) without
   * api_key.read. */
  char self[80];
  snprintf(self, sizeof(self), "/api-keys/%s", ev.data.id);
  r = call(f, "GET", self, NULL, "Authorization", auth, NULL);
  assert_int_equal(r->status, 200);
  assert_contains(r->resp, "\"permissions\":[\"client_token.read\"]");
  assert_null(strstr(r->resp, "\"key\""));
  done(f, r);
  check_detail(f,
               call(f, "GET", "/api-keys", NULL, "Authorization", auth, NULL),
               403, "forbidden", NULL, "api_key.read");
  check_error(f,
              call(f, "GET", "/api-keys/apikey_01h04vsbhqbpsdbkn6g5ya2r2k",
                   NULL, "Authorization", auth, NULL),
              403, "forbidden", NULL);
  /* The same ID with another secret. */
  assert_int_equal(ctkn_akey_generate(ev.data.id, CTKN_ENV_SANDBOX, key, sha),
                   CTKN_OK);
  snprintf(other, sizeof(other), "Bearer %s", key);
  check_error(
      f, call(f, "GET", "/client-tokens", NULL, "Authorization", other, NULL),
      403, "invalid_token", NULL);
  check_error(f,
              call(f, "GET", "/client-tokens", NULL, "Authorization",
                   "Bearer ctkn_sdbx_apikey_0123", NULL),
              403, "authentication_malformed", NULL);

  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_REVOKE);
  assert_int_equal(ctkn_akey_plan(&ev.data, &c, CTKN_ENV_SANDBOX, ctkn_now_us(),
                                  &rv, NULL, NULL),
                   CTKN_AKEY_PLAN_APPEND);
  project_akey(f, &rv);
  check_error(
      f, call(f, "GET", "/client-tokens", NULL, "Authorization", auth, NULL),
      403, "invalid_token", NULL);
  /* The key file's keys still work beside the log's. */
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
           NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
}

/* While the projector does not follow the settings topic (a failure being
 * retried), a key revoked there meanwhile would still pass: keys on the
 * log are refused as stale, /healthz says why, and the key file's keys,
 * which the log does not hold, still work. Likewise the notifications. */
static void test_side_topics_not_followed_fail_closed(void **st)
{
  struct fx *f = *st;
  struct ctkn_partition_status ps[1] = {
      {.partition = 0, .log_end = 1, .projected = 1}};
  struct ctkn_projector_stats stats = {0};
  struct ctkn_akey_event ev;
  char key[CTKN_AKEY_BUF], auth[CTKN_AKEY_BUF + 8];
  struct req *r;
  json_t *j;

  plan_reader_key("fleet", &ev, key);
  snprintf(auth, sizeof(auth), "Bearer %s", key);
  project_akey(f, &ev);
  ctkn__api_status(f->s, ps, 1, &stats);
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth, NULL);
  assert_int_equal(r->status, 200);
  done(f, r);

  stats.unfollowed = CTKN_PROJECTOR_SETTINGS;
  ctkn__api_status(f->s, ps, 1, &stats);
  check_detail(
      f, call(f, "GET", "/client-tokens", NULL, "Authorization", auth, NULL),
      503, "service_unavailable", NULL, "not following the settings topic");
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
           NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
  r = call(f, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 503);
  j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "data"), "status"),
                      "settings_not_followed");
  json_decref(j);
  done(f, r);

  stats.unfollowed = CTKN_PROJECTOR_NOTIFICATIONS;
  ctkn__api_status(f->s, ps, 1, &stats);
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth, NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
  check_detail(f,
               call(f, "GET", "/notifications", NULL, "Authorization",
                    auth_setread, NULL),
               503, "service_unavailable", NULL,
               "not following the notifications topic");
  r = call(f, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 503);
  j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "data"), "status"),
                      "notifications_not_followed");
  json_decref(j);
  done(f, r);

  stats.unfollowed = 0;
  ctkn__api_status(f->s, ps, 1, &stats);
  r = call(f, "GET", "/notifications", NULL, "Authorization", auth_setread,
           NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
  r = call(f, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 200);
  done(f, r);

  /* Cut off from the log: no writer checkpoint for --max-staleness. The
   * settings follower has not failed (it retries a broker it cannot
   * reach), yet a revocation appended meanwhile never arrives: keys on
   * the log are refused, even for a route that reads no partition; a key
   * from the file still works. */
  f->cfg.max_staleness_ms = 60000; /* the server reads its config */
  ps[0].checkpoint_at = ctkn_now_us() - 61 * 1000000LL;
  ctkn__api_status(f->s, ps, 1, &stats);
  check_detail(
      f, call(f, "GET", "/event-types", NULL, "Authorization", auth, NULL), 503,
      "service_unavailable", NULL, "miss an API key's revocation");
  r = call(f, "GET", "/event-types", NULL, "Authorization", auth_reader, NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
  ps[0].checkpoint_at = ctkn_now_us();
  ctkn__api_status(f->s, ps, 1, &stats);
  r = call(f, "GET", "/event-types", NULL, "Authorization", auth, NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
}

/* The event types of a page, "a,b,c", and its event IDs strictly
 * ascending (or fail). */
static void page_types(json_t *j, char *out, size_t cap)
{
  char prev[CTKN_EVT_ID_LEN + 1] = "";
  size_t i, n = 0;
  json_t *v;

  out[0] = '\0';
  json_array_foreach(json_object_get(j, "data"), i, v)
  {
    assert_true(strcmp(jstr(v, "event_id"), prev) > 0);
    snprintf(prev, sizeof(prev), "%s", jstr(v, "event_id"));
    n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "," : "",
                          jstr(v, "event_type"));
    assert_true(n < cap);
  }
}

static void test_events_serve_the_settings_topics_events(void **st)
{
  struct fx *f = *st;
  struct ctkn_akey_command c;
  struct ctkn_akey_event ev, used, rv;
  char key[CTKN_AKEY_BUF], types[1024];
  json_t *j, *v;
  size_t i;

  /* A key created, used and revoked on the settings topic. */
  plan_reader_key("fleet", &ev, key);
  project_akey(f, &ev);
  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_USED);
  c.used_at = ctkn_now_us() + 1000;
  assert_int_equal(ctkn_akey_plan(&ev.data, &c, CTKN_ENV_SANDBOX,
                                  ctkn_now_us() + 1000, &used, NULL, NULL),
                   CTKN_AKEY_PLAN_APPEND);
  project_akey(f, &used);
  ctkn_akey_command_init(&c, CTKN_AKEY_CMD_REVOKE);
  assert_int_equal(ctkn_akey_plan(&ev.data, &c, CTKN_ENV_SANDBOX,
                                  ctkn_now_us() + 2000, &rv, NULL, NULL),
                   CTKN_AKEY_PLAN_APPEND);
  project_akey(f, &rv);

  /* Every read: both topics in one event-ID order, the used record no
   * event; the estimate counts both. */
  j = get_json(f, "/events?per_page=200", auth_allread);
  page_types(j, types, sizeof(types));
  assert_int_equal(json_array_size(json_object_get(j, "data")),
                   NEVENT + NDEST + 1 + 2);
  assert_contains(types, "notification_setting.created");
  assert_contains(types, "notification_setting.updated");
  assert_contains(types, "api_key.created");
  assert_contains(types, "api_key.revoked");
  assert_null(strstr(types, "api_key.used"));
  assert_int_equal(
      json_integer_value(json_object_get(pagination_of(j), "estimated_total")),
      NEVENT + NDEST + 1 + 2);
  /* Envelopes as webhooks carry them, never a secret or a hash. */
  json_array_foreach(json_object_get(j, "data"), i, v)
  {
    const char *t = jstr(v, "event_type");
    json_t *d = json_object_get(v, "data");
    if (strncmp(t, "client_token.", 13) == 0)
      continue;
    assert_true(json_is_null(json_object_get(v, "notification_id")));
    assert_non_null(jstr(v, "occurred_at"));
    if (strcmp(t, "notification_setting.created") == 0 &&
        strcmp(jstr(d, "id"), f->dest[0]) == 0) {
      assert_string_equal(jstr(d, "destination"), HOOK);
      assert_null(json_object_get(d, "endpoint_secret_key"));
    }
    if (strncmp(t, "api_key.", 8) == 0) {
      static const char *const fields[] = {
          "id",           "name",        "description",
          "status",       "permissions", "expires_at",
          "last_used_at", "created_at",  "updated_at"};
      assert_string_equal(jstr(d, "id"), ev.data.id);
      assert_int_equal(json_object_size(d), CTKN__ARRAY_LEN(fields));
      for (size_t k = 0; k < CTKN__ARRAY_LEN(fields); k++)
        assert_non_null(json_object_get(d, fields[k]));
      assert_string_equal(jstr(d, "status"), strcmp(t, "api_key.revoked") == 0
                                                 ? "revoked"
                                                 : "active");
    }
  }
  char *dump = json_dumps(j, 0);
  for (int k = 0; k < NDEST; k++)
    assert_null(strstr(dump, f->secret[k]));
  assert_null(strstr(dump, key));
  free(dump);
  /* The same page walked two at a time, both ways, is the same events. */
  char walked[1024] = "", target[256], after[CTKN_EVT_ID_LEN + 1] = "";
  for (int pages = 0;; pages++) {
    snprintf(target, sizeof(target), "/events?per_page=2%s%s",
             after[0] ? "&after=" : "", after);
    json_t *p = get_json(f, target, auth_allread);
    char part[256];
    page_types(p, part, sizeof(part));
    size_t n = strlen(walked);
    snprintf(walked + n, sizeof(walked) - n, "%s%s", n && part[0] ? "," : "",
             part);
    json_t *data = json_object_get(p, "data");
    if (json_array_size(data) > 0)
      snprintf(
          after, sizeof(after), "%s",
          jstr(json_array_get(data, json_array_size(data) - 1), "event_id"));
    bool more = json_is_true(json_object_get(pagination_of(p), "has_more"));
    json_decref(p);
    assert_true(pages < 20);
    if (!more)
      break;
  }
  assert_string_equal(walked, types);
  json_t *d =
      get_json(f, "/events?per_page=200&order_by=id[DESC]", auth_allread);
  for (i = 0; i < json_array_size(json_object_get(j, "data")); i++)
    assert_true(json_equal(
        json_array_get(json_object_get(j, "data"), i),
        json_array_get(json_object_get(d, "data"),
                       json_array_size(json_object_get(j, "data")) - 1 - i)));
  json_decref(d);
  json_decref(j);

  /* Each key sees its entities' events only. */
  j = get_json(f, "/events?per_page=200", auth_reader);
  page_types(j, types, sizeof(types));
  assert_null(strstr(types, "notification_setting."));
  assert_null(strstr(types, "api_key."));
  assert_int_equal(json_array_size(json_object_get(j, "data")), NEVENT);
  json_decref(j);
  j = get_json(f, "/events?per_page=200", auth_keyread);
  page_types(j, types, sizeof(types));
  assert_string_equal(types, "api_key.created,api_key.revoked");
  json_decref(j);
  j = get_json(f, "/events?per_page=200", auth_setread);
  page_types(j, types, sizeof(types));
  assert_string_equal(types, "notification_setting.created,"
                             "notification_setting.created,"
                             "notification_setting.created,"
                             "notification_setting.updated");
  json_decref(j);
  j = get_json(f, "/events?event_type=api_key.revoked", auth_keyread);
  assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
  json_decref(j);

  /* The settings topic stopped behind a newer record: its events may be
   * behind it, so a page that would list them fails closed; the tokens'
   * alone do not wait for it. */
  struct ctkn_err err = {0};
  ctkn_store_txn *t;
  assert_int_equal(ctkn_store_begin(f->st, true, &t, &err), CTKN_OK);
  assert_int_equal(ctkn_keylog_pause(t, 0, 5000, &err), CTKN_OK);
  assert_int_equal(ctkn_store_commit(t, &err), CTKN_OK);
  check_detail(
      f, call(f, "GET", "/events", NULL, "Authorization", auth_allread, NULL),
      503, "service_unavailable", NULL, "newer schema");
  j = get_json(f, "/events?per_page=200", auth_reader);
  assert_int_equal(json_array_size(json_object_get(j, "data")), NEVENT);
  json_decref(j);
}

static void test_rate_limit_covers_keys_on_the_log(void **st)
{
  struct fx *f = *st;
  struct ctkn_akey_event ev;
  char key[CTKN_AKEY_BUF], auth[CTKN_AKEY_BUF + 8];

  plan_reader_key("limited", &ev, key);
  project_akey(f, &ev);
  snprintf(auth, sizeof(auth), "Bearer %s", key);
  f->cfg.rate_limit = 1; /* one a second, bursts of one */
  struct req *r =
      call(f, "GET", "/client-tokens", NULL, "Authorization", auth, NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth, NULL);
  assert_int_equal(r->status, 429);
  assert_true(r->retry_after >= 1);
  done(f, r);
  f->cfg.rate_limit = 0;
}

static void test_authentication_failures_are_403_with_paddles_codes(void **st)
{
  struct fx *f = *st;
  char unknown[80];

  check_detail(f, call(f, "GET", "/client-tokens", NULL, NULL), 403,
               "authentication_missing", NULL, "Authorization: Bearer <key>");
  check_error(f,
              call(f, "GET", "/client-tokens", NULL, "Authorization", "", NULL),
              403, "authentication_missing", NULL);
  check_detail(f,
               call(f, "GET", "/client-tokens", NULL, "Authorization",
                    "Basic dXNlcjpwYXNz", NULL),
               403, "authentication_malformed", NULL,
               "must be \"Bearer <key>\"");
  check_error(
      f,
      call(f, "GET", "/client-tokens", NULL, "Authorization", "Bearer ", NULL),
      403, "authentication_malformed", NULL);
  check_detail(f,
               call(f, "GET", "/client-tokens", NULL, "Authorization",
                    "Bearer pdl_live_apikey_x", NULL),
               403, "authentication_malformed", NULL,
               "the API key is not a ctkn API key");
  /* Shaped like a key, but no key: one character changed. */
  snprintf(unknown, sizeof(unknown), "%s", auth_reader);
  unknown[strlen(unknown) - 2] =
      unknown[strlen(unknown) - 2] == 'A' ? 'B' : 'A';
  check_detail(
      f, call(f, "GET", "/client-tokens", NULL, "Authorization", unknown, NULL),
      403, "invalid_token", NULL, "unknown or revoked");

  /* A known key without the permission: forbidden, naming it. */
  check_detail(f,
               call(f, "GET", "/client-tokens", NULL, "Authorization",
                    auth_setread, NULL),
               403, "forbidden", NULL,
               "the API key \"setread\" lacks the permission "
               "client_token.read");
  check_detail(f,
               call(f, "POST", "/client-tokens", "{\"name\":\"n\"}",
                    "Authorization", auth_reader, NULL),
               403, "forbidden", NULL,
               "lacks the permission client_token.write");
  check_detail(f,
               call(f, "GET", "/notification-settings", NULL, "Authorization",
                    auth_writer, NULL),
               403, "forbidden", NULL,
               "lacks the permission notification_setting.read");
  check_detail(f,
               call(f, "DELETE", "/notification-settings/x", NULL,
                    "Authorization", auth_setread, NULL),
               403, "forbidden", NULL,
               "lacks the permission notification_setting.write");

  /* A write key reads; /healthz and /metrics need no key. */
  struct req *r = call(f, "GET", "/client-tokens", NULL, "Authorization",
                       auth_writer, NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
  r = call(f, "GET", "/metrics", NULL, NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
}

static void test_rate_limit_answers_429_with_retry_after(void **state)
{
  struct fx *f = *state;
  struct req *r;

  f->cfg.rate_limit = 2;
  for (int i = 0; i < 2; i++) {
    r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
             NULL);
    assert_int_equal(r->status, 200);
    done(f, r);
  }
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
           NULL);
  assert_true(r->retry_after >= 1);
  check_detail(f, r, 429, "too_many_requests", NULL,
               "more than 2 requests per second with this key");
  /* Per key: another still has its budget. */
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_writer,
           NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
  f->cfg.rate_limit = 0;
}

/* ---- 404 and 405 ------------------------------------------------------- */

static void test_unknown_paths_are_404_and_other_methods_405(void **state)
{
  struct fx *f = *state;
  static const struct {
    const char *method, *target, *allow;
  } not_allowed[] = {
      {"DELETE", "/client-tokens", "GET, HEAD, POST"},
      {"PUT", "/client-tokens/verify", "GET, HEAD"},
      {"DELETE", "/client-tokens/ctkn_01h04vsbhqbpsdbkn6g5ya2r2k",
       "GET, HEAD, PATCH"},
      {"POST", "/healthz", "GET, HEAD"},
      {"DELETE", "/metrics", "GET, HEAD"},
      {"PATCH", "/notification-settings", "GET, HEAD, POST"},
      {"PUT", "/notification-settings/ntfset_x", "GET, HEAD, PATCH, DELETE"},
  };
  char detail[120];
  struct req *r;

  /* Before authentication: no key is needed to learn either. */
  check_detail(f, call(f, "GET", "/nope", NULL, NULL), 404, "not_found", NULL,
               "no such resource: /nope");
  check_error(f, call(f, "GET", "/client-tokens/a/b", NULL, NULL), 404,
              "not_found", NULL);
  check_error(f, call(f, "GET", "/client-tokensX", NULL, NULL), 404,
              "not_found", NULL);
  check_error(f, call(f, "GET", "/notification-settings/", NULL, NULL), 403,
              "authentication_missing", NULL);
  check_error(f, call(f, "GET", "/notification-settings/a/b", NULL, NULL), 404,
              "not_found", NULL);
  /* The 404 names the path in printable ASCII, quotes left out. */
  r = call(f, "GET", "/a\"b\\c\x01\xc3\xa9", NULL, NULL);
  json_t *j = assert_error(r, 404, "not_found", NULL);
  assert_string_equal(jstr(json_object_get(j, "error"), "detail"),
                      "no such resource: /abc");
  json_decref(j);
  done(f, r);

  for (size_t i = 0; i < CTKN__ARRAY_LEN(not_allowed); i++) {
    r = call(f, not_allowed[i].method, not_allowed[i].target, NULL, NULL);
    assert_string_equal(r->allow, not_allowed[i].allow);
    assert_int_equal(r->route, R_OTHER);
    snprintf(detail, sizeof(detail), "%s is not allowed here; allowed: %s",
             not_allowed[i].method, not_allowed[i].allow);
    check_detail(f, r, 405, "method_not_allowed", NULL, detail);
  }
}

/* ---- bodies ------------------------------------------------------------ */

static void test_bodies_too_large_or_unwanted_are_refused(void **state)
{
  struct fx *f = *state;
  static char big[CTKN_SERVER_MAX_BODY + 2];
  struct req *r;

  /* Announced too large: refused at once, before the body. */
  r = call(f, "POST", "/client-tokens", NULL, "Authorization", auth_writer,
           "Content-Length", "65537", NULL);
  check_detail(f, r, 413, "request_body_too_large", NULL,
               "larger than 65536 bytes");
  /* Announced, but the key is checked first. */
  check_error(
      f,
      call(f, "POST", "/client-tokens", NULL, "Content-Length", "65537", NULL),
      403, "authentication_missing", NULL);

  /* Sent too large in pieces: refused once it is all in. */
  memset(big, ' ', sizeof(big) - 1);
  r = ctkn__api_req_new(f->s, NULL, "POST", "/client-tokens");
  ctkn__api_req_header(r, "Authorization", auth_writer, strlen(auth_writer));
  ctkn__api_begin(f->s, r);
  assert_false(ctkn__api_answered(r));
  assert_true(ctkn__api_body(r, big, CTKN_SERVER_MAX_BODY));
  assert_false(r->too_large);
  assert_true(ctkn__api_body(r, "x", 1));
  assert_true(r->too_large);
  assert_true(ctkn__api_body(r, "y", 1)); /* drained */
  ctkn__api_dispatch(f->s, r);
  check_error(f, r, 413, "request_body_too_large", NULL);

  /* A body where none belongs. */
  r = ctkn__api_req_new(f->s, NULL, "GET", "/client-tokens");
  ctkn__api_req_header(r, "Authorization", auth_reader, strlen(auth_reader));
  ctkn__api_begin(f->s, r);
  assert_true(ctkn__api_body(r, "{}", 2));
  ctkn__api_dispatch(f->s, r);
  check_detail(f, r, 400, "bad_request", NULL, "this request takes no body");
}

/* ---- the request head: NULs, framing, sizes ------------------------------ */

/* A NUL cuts a C string short: /client-tokens/ID%00zzz would name ID,
 * per_page=10%00abc would read as 10, and a key followed by a NUL and
 * anything would authenticate. Each is a 400 naming where it was. */
static void test_a_nul_anywhere_in_the_head_is_refused(void **state)
{
  struct fx *f = *state;
  static const char id[] = "ctkn_01h0000000000000000000000a";
  struct req *r;

  /* In a parameter's value, and in its name (%00 decoded: the lengths
   * say more than strlen). */
  r = make(f, "GET", "/client-tokens", "Authorization", auth_reader, NULL);
  assert_true(ctkn__api_req_param(r, "per_page", 8, "10\0abc", 6));
  ctkn__api_begin(f->s, r);
  ctkn__api_dispatch(f->s, r);
  check_detail(f, r, 400, "invalid_field", "per_page", "NUL");
  r = make(f, "GET", "/client-tokens", "Authorization", auth_reader, NULL);
  assert_true(ctkn__api_req_param(r, "status", 9, "active", 6));
  ctkn__api_begin(f->s, r);
  ctkn__api_dispatch(f->s, r);
  check_detail(f, r, 400, "invalid_field", "status", "NUL");
  /* In the path: the route would see only what is before it. */
  r = make(f, "PATCH", "/client-tokens/ctkn_01h0000000000000000000000a",
           "Authorization", auth_writer, NULL);
  ctkn__api_req_head(r, sizeof(id) + 17, true, NULL, 200);
  ctkn__api_begin(f->s, r);
  assert_true(ctkn__api_answered(r));
  assert_null(r->cmd);
  check_detail(f, r, 400, "invalid_field", "path", "NUL");
  /* A raw NUL that cut a parameter, named as the transport found it. */
  r = make(f, "GET", "/client-tokens", "Authorization", auth_reader, NULL);
  ctkn__api_req_head(r, 40, false, "per_page", 200);
  ctkn__api_begin(f->s, r);
  check_detail(f, r, 400, "invalid_field", "per_page", "NUL");
  /* In a header's value: a valid key, then a NUL and more. */
  r = ctkn__api_req_new(f->s, NULL, "GET", "/client-tokens");
  ctkn__api_req_header(r, "Authorization", auth_reader,
                       strlen(auth_reader) + 4);
  ctkn__api_begin(f->s, r);
  assert_string_equal(r->key_name, "");
  check_detail(f, r, 400, "invalid_field", "Authorization", "NUL");
  /* Also in a header the API does not read. */
  r = make(f, "GET", "/client-tokens", "Authorization", auth_reader, NULL);
  ctkn__api_req_header(r, "X-Anything", "a", 3);
  ctkn__api_begin(f->s, r);
  check_detail(f, r, 400, "invalid_field", "X-Anything", "NUL");
  /* The same requests without the NUL are served. */
  r = call(f, "GET", "/client-tokens?per_page=10", NULL, "Authorization",
           auth_reader, NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
}

/* Content-Length with Transfer-Encoding (or either twice) frames the body
 * two ways: a proxy and this server could split the stream differently,
 * and a request smuggled behind would be answered. 400, and the
 * connection closes. Checked before authentication: a smuggled request
 * needs no key. */
static void test_conflicting_framing_is_refused_and_closes(void **state)
{
  struct fx *f = *state;
  static const char *const pairs[][4] = {
      {"Content-Length", "5", "Transfer-Encoding", "chunked"},
      {"Transfer-Encoding", "chunked", "Content-Length", "0"},
      {"Content-Length", "5", "Content-Length", "6"},
      {"Transfer-Encoding", "chunked", "Transfer-Encoding", "chunked"},
  };
  struct req *r;

  for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
    r = call(f, "POST", "/client-tokens", NULL, pairs[i][0], pairs[i][1],
             pairs[i][2], pairs[i][3], NULL);
    assert_true(r->close);
    check_detail(f, r, 400, "bad_request", NULL, "conflicting framing");
  }
  r = call(f, "POST", "/client-tokens", "{\"name\":\"x\"}", "Content-Length",
           "12", "Authorization", auth_writer, NULL);
  assert_false(r->close);
  /* Queued: answered by the command thread's loop before it is freed (a
   * request freed in the queue left it pointing at freed memory). */
  refuse_queued(f, r);
}

/* A transfer coding other than chunked: libmicrohttpd would wait for a
 * body it cannot frame, and the client for an answer, until the idle
 * timeout. Refused at once, closing. */
static void test_only_the_chunked_transfer_coding_is_read(void **state)
{
  struct fx *f = *state;
  struct req *r;

  static const char *const te[] = {"gzip, chunked", "identity", "chunked ",
                                   "gzip"};
  for (size_t i = 0; i < sizeof(te) / sizeof(*te); i++) {
    r = call(f, "POST", "/client-tokens", NULL, "Transfer-Encoding", te[i],
             "Authorization", auth_writer, NULL);
    assert_true(r->close);
    check_detail(f, r, 400, "bad_request", NULL,
                 "Transfer-Encoding must be chunked");
  }
  r = call(f, "POST", "/client-tokens", "{\"name\":\"x\"}", "Transfer-Encoding",
           "Chunked", "Authorization", auth_writer, NULL);
  assert_false(r->close);
  assert_true(r->suspended); /* queued for the command thread */
  refuse_queued(f, r);
}

/* A header ctkn reads sent twice is refused naming it: a proxy that keeps
 * the last copy would see another idempotency key, key or position than
 * this server, which reads the first. */
static void test_a_header_ctkn_reads_twice_is_refused(void **state)
{
  struct fx *f = *state;
  static const char *const names[] = {"Idempotency-Key", "Authorization",
                                      "X-Ctkn-Min-Position", "Skip-Count"};
  struct req *r;

  for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
    const char *v = strcmp(names[i], "Authorization") == 0         ? auth_writer
                    : strcmp(names[i], "X-Ctkn-Min-Position") == 0 ? "0:0"
                    : strcmp(names[i], "Skip-Count") == 0          ? "true"
                                                                   : "k1";
    r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
             names[i], v, names[i], v, NULL);
    check_error(f, r, 400, "invalid_field", names[i]);
  }
  /* Other headers may repeat. */
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
           "Accept", "a", "Accept", "b", NULL);
  assert_int_equal(r->status, 200);
  done(f, r);
}

/* Below libmicrohttpd's memory limit, an oversized target or head gets
 * Paddle's envelope (414, 431) and the connection closes. */
static void test_oversized_heads_get_414_and_431(void **state)
{
  struct fx *f = *state;
  struct req *r;

  r = make(f, "GET", "/client-tokens", "Authorization", auth_reader, NULL);
  ctkn__api_req_head(r, CTKN_SERVER_MAX_URI + 1, false, NULL,
                     CTKN_SERVER_MAX_URI + 100);
  ctkn__api_begin(f->s, r);
  assert_true(r->close);
  check_detail(f, r, 414, "uri_too_long", NULL, "longer than 8192 bytes");
  r = make(f, "GET", "/client-tokens", "Authorization", auth_reader, NULL);
  ctkn__api_req_head(r, 20, false, NULL, CTKN_SERVER_MAX_HEADERS + 1);
  ctkn__api_begin(f->s, r);
  assert_true(r->close);
  check_detail(f, r, 431, "request_header_fields_too_large", NULL,
               "larger than 16384 bytes");
  /* At the bounds: served. */
  r = make(f, "GET", "/client-tokens", "Authorization", auth_reader, NULL);
  ctkn__api_req_head(r, CTKN_SERVER_MAX_URI, false, NULL,
                     CTKN_SERVER_MAX_HEADERS);
  ctkn__api_begin(f->s, r);
  ctkn__api_dispatch(f->s, r);
  assert_int_equal(r->status, 200);
  done(f, r);
}

/* ---- token writes up to the command thread ------------------------------ */

static void test_token_writes_are_checked_before_they_are_queued(void **state)
{
  struct fx *f = *state;
  char target[96], longkey[300];

  check_error(f,
              call(f, "POST", "/client-tokens", "{", "Authorization",
                   auth_writer, NULL),
              400, "bad_request", NULL);
  check_error(f,
              call(f, "POST", "/client-tokens", NULL, "Authorization",
                   auth_writer, NULL),
              400, "bad_request", NULL);
  check_error(f,
              call(f, "POST", "/client-tokens", "{\"name\":\"\"}",
                   "Authorization", auth_writer, NULL),
              400, "invalid_field", "name");
  check_error(f,
              call(f, "POST", "/client-tokens", "{\"name\":\"n\",\"x\":1}",
                   "Authorization", auth_writer, NULL),
              400, "invalid_field", "x");
  memset(longkey, 'k', sizeof(longkey) - 1);
  longkey[sizeof(longkey) - 1] = '\0';
  check_error(f,
              call(f, "POST", "/client-tokens", "{\"name\":\"n\"}",
                   "Authorization", auth_writer, "Idempotency-Key", longkey,
                   NULL),
              400, "invalid_field", "idempotency_key");
  check_error(f,
              call(f, "PATCH", "/client-tokens/ctkn_nope", "{\"name\":\"n\"}",
                   "Authorization", auth_writer, NULL),
              400, "invalid_field", "id");
  snprintf(target, sizeof(target), "/client-tokens/%s", f->id[0]);
  check_error(f,
              call(f, "PATCH", target, "{\"status\":\"paused\"}",
                   "Authorization", auth_writer, NULL),
              400, "invalid_field", "status");
  assert_int_equal(ctkn__queue_len(&f->s->cmdq), 0);
}

static void test_queued_writes_are_answered_by_the_command_thread(void **state)
{
  struct fx *f = *state;
  struct ctkn_err why = {.code = CTKN_EKAFKA, .msg = "no broker"};
  struct req *a, *b, *c;
  char target[96];

  a = call(f, "POST", "/client-tokens", "{\"name\":\"one\"}", "Authorization",
           auth_writer, "Idempotency-Key", "k1", NULL);
  snprintf(target, sizeof(target), "/client-tokens/%s", f->id[0]);
  b = call(f, "PATCH", target, "{\"name\":\"two\"}", "Authorization",
           auth_writer, NULL);
  assert_true(a->suspended && b->suspended);
  assert_false(ctkn__api_answered(a) || ctkn__api_answered(b));
  assert_int_equal(ctkn__queue_len(&f->s->cmdq), 2);
  assert_string_equal(a->cmd->idempotency_key, "k1");
  assert_string_equal(b->cmd->id, f->id[0]);

  /* The command thread's loop, here without a ledger: every command is
   * answered with the reason, and resumed. */
  ctkn__queue_close(&f->s->cmdq);
  ctkn__api_commands_serve(f->s, NULL, &why);
  assert_int_equal(f->resumes, 2);
  assert_true(a->ready && b->ready);
  assert_int_equal(a->retry_after, 1);
  check_detail(f, a, 503, "service_unavailable", NULL, "no broker");
  check_detail(f, b, 503, "service_unavailable", NULL, "no broker");

  /* Once the queue is closed, a write is answered at once. */
  c = call(f, "POST", "/client-tokens", "{\"name\":\"late\"}", "Authorization",
           auth_writer, NULL);
  assert_int_equal(c->retry_after, 1);
  check_detail(f, c, 503, "service_unavailable", NULL,
               "the server is shutting down; retry");
}

/* ---- position waits ---------------------------------------------------- */

/* The follower moves on 50 ms after the waiter starts. */
static void *advance_later(void *arg)
{
  struct fx *f = arg;
  int64_t next[2] = {3, 1};
  struct timespec ts = {0, 50 * 1000 * 1000};

  nanosleep(&ts, NULL);
  ctkn__api_advanced(f->s, next, NULL, 2);
  return NULL;
}

/* The command thread's ledger waits for the follower
 * (ctkn__api_applied_wait()): woken as it passes the targets; a
 * partition the follower paused counts as reached (a pause stored by an
 * earlier build does not); no progress for the log's timeout, or a
 * stopped projection, ends it with the reason. */
static void test_the_ledger_s_wait_ends_when_the_follower_passes(void **state)
{
  struct fx *f = *state;
  struct ctkn_partition_status ps[2] = {{.partition = 0}, {.partition = 1}};
  struct ctkn_projector_stats stats = {0};
  int64_t targets[2] = {3, 1}, next[2] = {3, 0};
  struct ctkn_err err = {0};
  pthread_t t;

  f->log.timeout_ms = 300;
  assert_int_equal(pthread_create(&t, NULL, advance_later, f), 0);
  assert_int_equal(ctkn__api_applied_wait(f->s, targets, 2, &err), CTKN_OK);
  pthread_join(t, NULL);

  /* Partition 0 paused in the store (by an earlier build), which this
   * follower has not reached yet: no reason to stop waiting. */
  targets[0] = 9;
  ps[0].paused = true;
  ctkn__api_status(f->s, ps, 2, &stats);
  int64_t t0 = ctkn__now_ms();
  assert_int_equal(ctkn__api_applied_wait(f->s, targets, 2, &err),
                   CTKN_ETIMEOUT);
  assert_true(ctkn__now_ms() - t0 >= 290);
  assert_non_null(strstr(err.msg, "applied nothing for 300 ms"));

  /* Paused by the follower itself, behind a newer schema: reached. */
  bool paused[2] = {true, false};
  next[1] = 1;
  ctkn__api_advanced(f->s, next, paused, 2);
  assert_int_equal(ctkn__api_applied_wait(f->s, targets, 2, &err), CTKN_OK);
  ctkn__api_advanced(f->s, next, NULL, 2);
  err = (struct ctkn_err){.code = CTKN_ESTORE};
  ctkn__api_fatal(f->s, &err);
  assert_int_equal(ctkn__api_applied_wait(f->s, targets, 2, &err), CTKN_EKAFKA);
  assert_non_null(strstr(err.msg, "projection stopped"));
}

static void test_min_position_waits_for_the_follower(void **state)
{
  struct fx *f = *state;
  static const char *const bad[] = {"x",     "0",        "0:",   "0:1,",
                                    "-1:0",  "0:-1",     "+0:1", "4096:0",
                                    "0:1;2", "0:1,,1:2", ""};
  char target[80], many[200] = "";
  int64_t next[2] = {NEVENT, 0};
  struct req *r;

  snprintf(target, sizeof(target), "/client-tokens/%s", f->id[0]);
  for (size_t i = 0; i < CTKN__ARRAY_LEN(bad); i++)
    check_detail(f,
                 call(f, "GET", target, NULL, "Authorization", auth_reader,
                      "X-Ctkn-Min-Position", bad[i], NULL),
                 400, "invalid_field", "X-Ctkn-Min-Position",
                 "must be PARTITION:OFFSET");
  for (int i = 0; i <= CTKN__API_POSITIONS_MAX; i++)
    snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s0:%d",
             i ? "," : "", i);
  check_error(f,
              call(f, "GET", target, NULL, "Authorization", auth_reader,
                   "X-Ctkn-Min-Position", many, NULL),
              400, "invalid_field", "X-Ctkn-Min-Position");

  /* Reached in the store: answered at once. */
  r = call(f, "GET", target, NULL, "Authorization", auth_reader,
           "X-Ctkn-Min-Position", "0:0,0:7", NULL);
  assert_int_equal(r->status, 200);
  done(f, r);

  /* Not reached: suspended until the follower passes it, then run. */
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
           "X-Ctkn-Min-Position", "0:8,1:0", NULL);
  assert_true(r->suspended);
  assert_false(ctkn__api_answered(r));
  ctkn__api_advanced(f->s, next, NULL, 2); /* 0:8 yes, 1:0 not yet */
  assert_false(r->ready);
  next[0] = 9;
  next[1] = 1;
  ctkn__api_advanced(f->s, next, NULL, 2);
  assert_true(r->ready);
  assert_false(ctkn__api_answered(r));
  r->suspended = false; /* as http.c does on resume */
  ctkn__api_dispatch(f->s, r);
  assert_int_equal(r->status, 200);
  done(f, r);

  /* Its deadline passes: 503, retry. */
  r = call(f, "GET", "/client-tokens/verify?token=x", NULL, "Authorization",
           auth_reader, "X-Ctkn-Min-Position", "1:5", NULL);
  assert_true(r->suspended);
  ctkn__api_expire_waiters(f->s, false);
  assert_false(r->ready);
  ctkn__api_expire_waiters(f->s, true);
  assert_true(r->ready);
  assert_int_equal(r->retry_after, 1);
  r->suspended = false;
  ctkn__api_dispatch(f->s, r);
  check_detail(f, r, 503, "service_unavailable", NULL,
               "has not reached X-Ctkn-Min-Position within 5000 ms");

  /* Closing: no new waits. */
  atomic_store(&f->s->closing, true);
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
           "X-Ctkn-Min-Position", "1:50", NULL);
  check_detail(f, r, 503, "service_unavailable", NULL,
               "the server is shutting down");
}

/* A partition the topic does not have is never reached: 400 at once, not
 * a wait that ends in 503. */
static void test_min_position_on_an_unknown_partition_is_refused(void **state)
{
  struct fx *f = *state;
  int64_t next[3] = {NEVENT, 0, 0};
  struct req *r, *early;

  /* Before the follower has said how many partitions there are, a wait
   * begins; once it says, the wait ends in the same 400. */
  early = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
               "X-Ctkn-Min-Position", "0:1,3:0", NULL);
  assert_true(early->suspended);
  ctkn__api_advanced(f->s, next, NULL, 3);
  assert_true(early->ready);
  early->suspended = false;
  ctkn__api_dispatch(f->s, early);
  check_detail(f, early, 400, "invalid_field", "X-Ctkn-Min-Position",
               "partition 3 does not exist: the topic has 3 (0..2)");

  /* Known: refused at once, whichever entry names it. */
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
           "X-Ctkn-Min-Position", "0:0,7:1", NULL);
  assert_false(r->suspended);
  check_detail(f, r, 400, "invalid_field", "X-Ctkn-Min-Position",
               "partition 7 does not exist");
  /* The last partition there is still waits. */
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
           "X-Ctkn-Min-Position", "2:0", NULL);
  assert_true(r->suspended);
  ctkn__api_expire_waiters(f->s, true);
  r->suspended = false;
  ctkn__api_dispatch(f->s, r);
  check_error(f, r, 503, "service_unavailable", NULL);
}

/* ---- health and metrics ------------------------------------------------ */

static void test_healthz_reports_starting_ready_and_lagging(void **state)
{
  struct fx *f = *state;
  struct ctkn_partition_status ps[2] = {{.partition = 0}, {.partition = 1}};
  struct ctkn_projector_stats stats = {.applied = 3};
  struct req *r;
  json_t *j;

  r = call(f, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 503);
  j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "data"), "status"), "starting");
  json_decref(j);
  done(f, r);

  ps[0].projected = ps[0].log_end = 8;
  ps[1].projected = ps[1].log_end = 2;
  ctkn__api_status(f->s, ps, 2, &stats);
  r = call(f, "HEAD", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 200);
  j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "data"), "status"), "ready");
  json_decref(j);
  done(f, r);

  ps[1].log_end = 2 + f->cfg.max_lag + 1;
  ctkn__api_status(f->s, ps, 2, &stats);
  r = call(f, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 503);
  j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "data"), "status"), "lagging");
  json_decref(j);
  done(f, r);
}

/* Each partition's quarantined records, counted in the projection, and
 * their total: 0 until the projector quarantines one. */
static void test_healthz_counts_quarantined_records_per_partition(void **state)
{
  struct fx *f = *state;
  struct ctkn_partition_status ps[3] = {
      {.partition = 0, .log_end = 9, .projected = 9},
      {.partition = 1, .log_end = 4, .projected = 4},
      {.partition = 2, .log_end = 1, .projected = 1}};
  struct ctkn_projector_stats stats = {0};
  struct ctkn_err err = {0};
  ctkn_store_txn *t;
  struct req *r;
  json_t *j, *d, *parts;

  ctkn__api_status(f->s, ps, 3, &stats);
  r = call(f, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 200);
  j = answer(r);
  d = json_object_get(j, "data");
  assert_int_equal(json_integer_value(json_object_get(d, "quarantined")), 0);
  parts = json_object_get(d, "partitions");
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(parts, i), "quarantined")),
                     0);
  json_decref(j);
  done(f, r);

  /* Two in partition 1, one in partition 2, one past the partitions
   * served (not counted in any). */
  assert_int_equal(ctkn_store_begin(f->st, true, &t, &err), CTKN_OK);
  assert_int_equal(
      ctkn_store_put_quarantine(t, 1, 0, "bad", "k", 1, "v", 1, &err), CTKN_OK);
  assert_int_equal(
      ctkn_store_put_quarantine(t, 1, 3, "bad", NULL, 0, "v", 1, &err),
      CTKN_OK);
  assert_int_equal(
      ctkn_store_put_quarantine(t, 2, 0, "bad", NULL, 0, NULL, 0, &err),
      CTKN_OK);
  assert_int_equal(
      ctkn_store_put_quarantine(t, 7, 5, "bad", NULL, 0, NULL, 0, &err),
      CTKN_OK);
  assert_int_equal(ctkn_store_commit(t, &err), CTKN_OK);
  r = call(f, "GET", "/healthz", NULL, NULL);
  assert_int_equal(r->status, 200); /* quarantine alone is not unready */
  j = answer(r);
  d = json_object_get(j, "data");
  parts = json_object_get(d, "partitions");
  const json_int_t want[3] = {0, 2, 1};
  for (size_t i = 0; i < 3; i++) {
    json_t *p = json_array_get(parts, i);
    assert_int_equal(json_integer_value(json_object_get(p, "partition")),
                     (json_int_t)i);
    assert_int_equal(json_integer_value(json_object_get(p, "quarantined")),
                     want[i]);
  }
  assert_int_equal(json_integer_value(json_object_get(d, "quarantined")), 3);
  json_decref(j);
  done(f, r);
}

static void test_metrics_count_requests_by_route_and_status(void **state)
{
  struct fx *f = *state;
  struct ctkn_partition_status ps = {
      .partition = 0, .log_end = 9, .projected = 7};
  struct ctkn_projector_stats stats = {.applied = 7, .rejected = 1};
  char target[80];
  struct req *r;

  snprintf(target, sizeof(target), "/client-tokens/%s", f->id[0]);
  done(f, call(f, "GET", target, NULL, "Authorization", auth_reader, NULL));
  done(f, call(f, "GET", target, NULL, "Authorization", auth_reader, NULL));
  done(f, call(f, "GET", "/nope", NULL, NULL));
  done(f, call(f, "PUT", "/healthz", NULL, NULL));
  ctkn__api_status(f->s, &ps, 1, &stats);

  r = call(f, "GET", "/metrics", NULL, NULL);
  assert_int_equal(r->status, 200);
  assert_string_equal(r->ctype, "text/plain; version=0.0.4");
  assert_contains(r->resp,
                  "# TYPE ctkn_http_requests_total counter\n"
                  "ctkn_http_requests_total{route=\"get\",status=\"200\"} 2\n"
                  "ctkn_http_requests_total{route=\"other\",status=\"404\"} 1\n"
                  "ctkn_http_requests_total{route=\"other\",status=\"405\"} "
                  "1\n# HELP");
  assert_contains(r->resp, "ctkn_http_request_duration_seconds_count{route="
                           "\"get\"} 2\n");
  assert_contains(r->resp, "ctkn_http_request_duration_seconds_bucket{route="
                           "\"list\",le=\"+Inf\"} 0\n");
  assert_contains(r->resp,
                  "ctkn_projector_events_total{outcome=\"applied\"} 7\n"
                  "ctkn_projector_events_total{outcome=\"rejected\"} 1\n");
  assert_contains(r->resp, "ctkn_projection_lag{partition=\"0\"} 2\n");
  assert_contains(r->resp, "ctkn_projection_lag_age_seconds ");
  done(f, r);
}

/* ---- the access line --------------------------------------------------- */

struct lines {
  char text[4096];
  size_t len;
};

static void capture(void *arg, const char *line, size_t len)
{
  struct lines *l = arg;

  if (l->len + len < sizeof(l->text)) {
    memcpy(l->text + l->len, line, len);
    l->len += len;
    l->text[l->len] = '\0';
  }
}

static void test_access_line_has_its_members_escaped(void **state)
{
  struct fx *f = *state;
  static const char *const keys[] = {
      "time", "level", "component", "msg",         "request_id", "method",
      "path", "route", "status",    "duration_ms", "key"};
  struct lines out = {.len = 0};
  char rid[37];
  struct req *r;
  json_t *j;

  ctkn_diag_set_sink(capture, &out);
  r = call(f, "GET", "/x\"y\\\n", NULL, "Authorization", auth_reader, NULL);
  strcpy(rid, r->rid);
  done(f, r);
  r = call(f, "GET", "/client-tokens", NULL, "Authorization", auth_reader,
           NULL);
  ctkn__api_complete(f->s, r, "timeout");
  ctkn_diag_set_sink(drop, NULL);

  char *nl = strchr(out.text, '\n');
  assert_non_null(nl);
  j = parse(strndup(out.text, (size_t)(nl - out.text)));
  assert_keys(j, keys, CTKN__ARRAY_LEN(keys));
  assert_string_equal(jstr(j, "level"), "info");
  assert_string_equal(jstr(j, "component"), "http");
  assert_string_equal(jstr(j, "msg"), "request");
  assert_string_equal(jstr(j, "request_id"), rid);
  assert_string_equal(jstr(j, "method"), "GET");
  assert_string_equal(jstr(j, "path"), "/x\"y\\\n");
  assert_string_equal(jstr(j, "route"), "other");
  assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
  assert_true(json_is_real(json_object_get(j, "duration_ms")));
  assert_string_equal(jstr(j, "key"), ""); /* 404 before authentication */
  json_decref(j);

  j = parse(strndup(nl + 1, strcspn(nl + 1, "\n")));
  assert_string_equal(jstr(j, "route"), "list");
  assert_string_equal(jstr(j, "key"), "reader");
  assert_string_equal(jstr(j, "aborted"), "timeout");
  json_decref(j);
}

/* ---- notification settings --------------------------------------------- */

static void check_dests(struct fx *f, struct req *r, const char *want,
                        int per_page, bool has_more, const char *next,
                        int64_t total)
{
  check_page(f, r, want, per_page, has_more, next, total);
}

static void test_settings_list_filters_and_pages(void **state)
{
  struct fx *f = *state;
  char all_desc[200], active[200], target[200], next[300];

  snprintf(all_desc, sizeof(all_desc), "%s,%s,%s", f->dest[2], f->dest[1],
           f->dest[0]);
  snprintf(active, sizeof(active), "%s,%s", f->dest[2], f->dest[0]);
  check_dests(f,
              call(f, "GET", "/notification-settings", NULL, "Authorization",
                   auth_setread, NULL),
              all_desc, 200, false, NULL, 3);
  check_dests(f,
              call(f, "GET", "/notification-settings?active=true", NULL,
                   "Authorization", auth_setwrite, NULL),
              active, 200, false, NULL, 2);
  check_dests(f,
              call(f, "GET", "/notification-settings?active=false", NULL,
                   "Authorization", auth_setread, NULL),
              f->dest[1], 200, false, NULL, 1);
  /* An empty first page links itself, without a cursor. */
  check_dests(f,
              call(f, "GET", "/notification-settings?traffic_source=simulation",
                   NULL, "Authorization", auth_setread, NULL),
              "", 200, false,
              BASE "/notification-settings?order_by=id%5BDESC%5D&per_page=200&"
                   "traffic_source=simulation",
              0);
  /* traffic_source matches what each was given: 2 all, the rest
   * platform (the default). */
  check_dests(f,
              call(f, "GET", "/notification-settings?traffic_source=all", NULL,
                   "Authorization", auth_setread, NULL),
              f->dest[2], 200, false, NULL, 1);
  snprintf(target, sizeof(target), "%s,%s", f->dest[1], f->dest[0]);
  check_dests(f,
              call(f, "GET", "/notification-settings?traffic_source=platform",
                   NULL, "Authorization", auth_setread, NULL),
              target, 200, false, NULL, 2);
  check_dests(f,
              call(f, "GET",
                   "/notification-settings?active=true&traffic_source=platform",
                   NULL, "Authorization", auth_setread, NULL),
              f->dest[0], 200, false, NULL, 1);

  /* One a page, ascending: the next link keeps every parameter. */
  snprintf(next, sizeof(next),
           BASE "/notification-settings?after=%s&order_by=id%%5BASC%%5D&"
                "per_page=1&traffic_source=platform",
           f->dest[0]);
  check_dests(f,
              call(f, "GET",
                   "/notification-settings?per_page=1&order_by=id[ASC]&"
                   "traffic_source=platform",
                   NULL, "Authorization", auth_setread, NULL),
              f->dest[0], 1, true, next, 2);
  snprintf(target, sizeof(target),
           "/notification-settings?after=%s&per_page=1&order_by=id[ASC]&"
           "active=true",
           f->dest[0]);
  snprintf(next, sizeof(next),
           BASE "/notification-settings?after=%s&order_by=id%%5BASC%%5D&"
                "per_page=1&active=true",
           f->dest[2]);
  check_dests(f,
              call(f, "GET", target, NULL, "Authorization", auth_setread, NULL),
              f->dest[2], 1, false, next, 2);
  snprintf(target, sizeof(target), "/notification-settings?after=%s",
           f->dest[1]);
  check_dests(f,
              call(f, "GET", target, NULL, "Authorization", auth_setread, NULL),
              f->dest[0], 200, false, NULL, 3);
}

static void test_settings_list_parameters_name_the_field(void **state)
{
  struct fx *f = *state;
  static const struct {
    const char *target, *field;
  } bad[] = {
      {"/notification-settings?after=ctkn_x", "after"},
      {"/notification-settings?per_page=x", "per_page"},
      {"/notification-settings?order_by=name", "order_by"},
      {"/notification-settings?active=yes", "active"},
      {"/notification-settings?traffic_source=web", "traffic_source"},
      {"/notification-settings?status=active", "status"},
      {"/notification-settings?active=true&active=false", "active"},
  };

  for (size_t i = 0; i < CTKN__ARRAY_LEN(bad); i++)
    check_error(f,
                call(f, "GET", bad[i].target, NULL, "Authorization",
                     auth_setread, NULL),
                400, "invalid_field", bad[i].field);
}

static void test_settings_get_answers_one_without_its_secret(void **state)
{
  struct fx *f = *state;
  char target[96];
  struct req *r;
  json_t *j, *d;

  snprintf(target, sizeof(target), "/notification-settings/%s", f->dest[1]);
  r = call(f, "GET", target, NULL, "Authorization", auth_setread, NULL);
  assert_int_equal(r->status, 200);
  j = answer(r);
  d = json_object_get(j, "data");
  assert_string_equal(jstr(d, "id"), f->dest[1]);
  assert_true(json_is_false(json_object_get(d, "active")));
  assert_null(json_object_get(d, "endpoint_secret_key"));
  json_decref(j);
  done(f, r);

  check_detail(f,
               call(f, "GET",
                    "/notification-settings/ntfset_01h04vsbhqbpsdbkn6g5ya2r2k",
                    NULL, "Authorization", auth_setread, NULL),
               404, "not_found", NULL,
               "notification setting ntfset_01h04vsbhqbpsdbkn6g5ya2r2k not "
               "found");
  check_error(f,
              call(f, "GET", "/notification-settings/ntfset_x", NULL,
                   "Authorization", auth_setread, NULL),
              400, "invalid_field", "notification_setting_id");
  snprintf(target, sizeof(target), "/notification-settings/%s?x=1", f->dest[0]);
  check_error(f,
              call(f, "GET", target, NULL, "Authorization", auth_setread, NULL),
              400, "invalid_field", "x");
}

/* The endpoint secret of f->dest[i] in r's answer (a GET, a PATCH or the
 * list), or NULL when it is left out; r is released. */
static bool answer_has_secret(struct fx *f, struct req *r, int i)
{
  json_t *j, *d;
  bool found = false;

  assert_int_equal(r->status, 200);
  j = answer(r);
  d = json_object_get(j, "data");
  for (size_t k = 0; json_is_array(d) && k < json_array_size(d); k++) {
    if (strcmp(jstr(json_array_get(d, k), "id"), f->dest[i]) == 0)
      d = json_array_get(d, k);
  }
  assert_string_equal(jstr(d, "id"), f->dest[i]);
  json_t *v = json_object_get(d, "endpoint_secret_key");
  if (v != NULL) {
    assert_string_equal(json_string_value(v), f->secret[i]);
    found = true;
  }
  json_decref(j);
  done(f, r);
  return found;
}

/* Paddle returns endpoint_secret_key on reads: a server with the
 * deployment key does, unless told --redact-endpoint-secrets; one
 * without the key (or with another deployment's) leaves it out. */
static void test_settings_reads_show_secrets_with_the_key(void **st)
{
  struct fx *f = *st;
  static const uint8_t other[CTKN_KEY_LEN] = {9};
  char target[96];

  snprintf(target, sizeof(target), "/notification-settings/%s", f->dest[2]);
  for (int mode = 0; mode < 4; mode++) {
    /* 0: no key; 1: the key; 2: the key, redacted; 3: another key. */
    f->s->have_key = mode != 0;
    memcpy(f->s->key, mode == 3 ? other : deploy_key, CTKN_KEY_LEN);
    f->cfg.redact_endpoint_secrets = mode == 2;
    bool want = mode == 1;
    assert_true(answer_has_secret(f,
                                  call(f, "GET", target, NULL, "Authorization",
                                       auth_setread, NULL),
                                  2) == want);
    assert_true(answer_has_secret(f,
                                  call(f, "GET", "/notification-settings", NULL,
                                       "Authorization", auth_setread, NULL),
                                  2) == want);
    assert_true(answer_has_secret(f,
                                  call(f, "GET", "/notification-settings", NULL,
                                       "Authorization", auth_setwrite, NULL),
                                  0) == want);
    /* A PATCH that changes nothing is answered as a read. */
    assert_true(
        answer_has_secret(f,
                          call(f, "PATCH", target, "{\"api_version\":1}",
                               "Authorization", auth_setwrite, NULL),
                          2) == want);
  }
  f->s->have_key = false;
  f->cfg.redact_endpoint_secrets = false;
}

static void test_settings_writes_are_checked_before_they_are_queued(void **st)
{
  struct fx *f = *st;
  static const char create[] =
      "{\"description\":\"d\",\"type\":\"url\",\"destination\":\"" HOOK
      "\",\"subscribed_events\":[\"client_token.revoked\"]}";
  char target[96];
  struct req *r;
  json_t *j;

  /* Without the deployment key no create can be sealed: 503, no retry. */
  r = call(f, "POST", "/notification-settings", create, "Authorization",
           auth_setwrite, NULL);
  assert_int_equal(r->retry_after, 0);
  check_detail(f, r, 503, "service_unavailable", NULL,
               "started without the deployment key");
  check_error(f,
              call(f, "POST", "/notification-settings", "{\"type\":\"email\"}",
                   "Authorization", auth_setwrite, NULL),
              400, "invalid_field", "type");
  check_error(f,
              call(f, "PATCH", "/notification-settings/ntfset_x",
                   "{\"active\":true}", "Authorization", auth_setwrite, NULL),
              400, "invalid_field", "notification_setting_id");
  check_error(f,
              call(f, "DELETE", "/notification-settings/ctkn_x", NULL,
                   "Authorization", auth_setwrite, NULL),
              400, "invalid_field", "notification_setting_id");

  /* A PATCH of only fields at ctkn's one value changes nothing: a read. */
  snprintf(target, sizeof(target), "/notification-settings/%s", f->dest[0]);
  r = call(f, "PATCH", target,
           "{\"api_version\":1,\"include_sensitive_fields\":false}",
           "Authorization", auth_setwrite, NULL);
  assert_int_equal(r->status, 200);
  j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "data"), "id"), f->dest[0]);
  json_decref(j);
  done(f, r);

  /* A real change is queued for the settings thread. */
  r = call(f, "PATCH", target, "{\"active\":false}", "Authorization",
           auth_setwrite, NULL);
  assert_true(r->suspended);
  assert_false(ctkn__api_answered(r));
  assert_int_equal(ctkn__queue_len(&f->s->setq), 1);
  assert_int_equal(r->dcmd->kind, CTKN_DEST_UPDATE);
  assert_true(r->dcmd->set_active && !r->dcmd->active);
  /* Taken off the queue without running (that needs Kafka). */
  struct ctkn__qnode *node;
  assert_int_equal(ctkn__queue_pop(&f->s->setq, &node, 1, 0), 1);
  assert_ptr_equal(CTKN__CONTAINER_OF(node, struct req, qnode), r);
  done(f, r);

  /* Once the queue is closed, a write is answered at once. */
  ctkn__queue_close(&f->s->setq);
  r = call(f, "DELETE", target, NULL, "Authorization", auth_setwrite, NULL);
  assert_int_equal(r->retry_after, 1);
  check_detail(f, r, 503, "service_unavailable", NULL, "shutting down");
}

/* ---- configuration ----------------------------------------------------- */

static void test_server_refuses_a_bad_configuration_naming_it(void **state)
{
  struct fx *f = *state;
  volatile sig_atomic_t stop = 1, reload = 0;
  struct ctkn_server_config c;
  struct ctkn_err err;

  static const struct {
    const char *field;
  } fields[] = {{"api-keys"}, {"tls-key"},    {"threads"}, {"rate-limit"},
                {"max-lag"},  {"public-url"}, {"listen"}};
  for (size_t i = 0; i < CTKN__ARRAY_LEN(fields); i++) {
    c = f->cfg;
    switch (i) {
    case 0:
      c.api_keys = ""; /* NULL is fine: keys on the log only */
      break;
    case 1:
      c.tls_cert = "cert.pem";
      break;
    case 2:
      c.threads = 0;
      break;
    case 3:
      c.rate_limit = -1;
      break;
    case 4:
      c.max_lag = -1;
      break;
    case 5:
      c.public_url = "ftp://x";
      break;
    default:
      c.listen = "localhost:80";
      break;
    }
    memset(&err, 0, sizeof(err));
    assert_int_equal(ctkn_server_run(f->st, &c, &stop, &reload, &err),
                     CTKN_EUSAGE);
    assert_string_equal(err.field, fields[i].field);
  }
  c = f->cfg;
  c.position_wait_ms = 0;
  assert_int_equal(ctkn_server_run(f->st, &c, &stop, &reload, &err),
                   CTKN_EUSAGE);
}

static void test_server_loads_its_keys_and_links_on_listen(void **state)
{
  struct fx *f = *state;
  struct ctkn_server_config c;
  struct ctkn_err err;
  struct server *s;
  char path[160];
  FILE *kf;

  /* Keys or a deployment key that do not load: nothing starts. */
  c = f->cfg;
  snprintf(path, sizeof(path), "%s/missing", f->tmp);
  c.api_keys = path;
  assert_int_equal(ctkn__api_server_new(&s, f->st, &c, &err), CTKN_EIO);
  assert_null(s);
  c = f->cfg;
  c.secret_key_file = path;
  assert_int_equal(ctkn__api_server_new(&s, f->st, &c, &err), CTKN_EINVAL);
  assert_null(s);

  /* With the deployment key, creates are taken; links use the listen
   * address without a public URL. */
  snprintf(path, sizeof(path), "%s/deploy.key", f->tmp);
  kf = fopen(path, "w");
  assert_non_null(kf);
  fputs("000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f\n",
        kf);
  fclose(kf);
  chmod(path, 0600);
  c = f->cfg;
  c.secret_key_file = path;
  c.public_url = NULL;
  c.listen = "127.0.0.1:1";
  assert_int_equal(ctkn__api_server_new(&s, f->st, &c, &err), CTKN_OK);
  assert_true(s->have_key);
  assert_string_equal(s->next_base, "http://127.0.0.1:1/client-tokens");
  assert_string_equal(s->dest_next_base,
                      "http://127.0.0.1:1/notification-settings");
  ctkn__api_server_free(s);
  unlink(path);
}

/* ---- the command path over the in-memory log ---------------------------- */

/* A server over an empty projection and an in-memory log whose topic has
 * three partitions, with a ledger on them as the command thread opens. */
struct cfx {
  struct tk t;
  struct ctkn_server_config cfg;
  struct server *s;
  ctkn_ledger *l;
  struct fx f; /* what call() and the checks use */
};

static int cmd_setup(void **state)
{
  struct cfx *c = calloc(1, sizeof(*c));
  struct ctkn_err err = {0};

  if (c == NULL)
    return -1;
  tk_open(&c->t, 3);
  ctkn_server_config_init(&c->cfg);
  c->cfg.api_keys = keyfile;
  c->cfg.public_url = BASE "/";
  c->cfg.log = &c->t.cfg;
  c->cfg.env = CTKN_ENV_SANDBOX;
  if (ctkn__api_server_new(&c->s, c->t.st, &c->cfg, &err) != CTKN_OK ||
      ctkn_ledger_open(&c->l, c->t.st, &c->t.cfg, CTKN_ENV_SANDBOX, &err) !=
          CTKN_OK) {
    fprintf(stderr, "command fixture: %s\n", err.msg);
    return -1;
  }
  c->s->io = &test_io;
  c->f.s = c->s;
  c->f.st = c->t.st;
  current = &c->f;
  *state = c;
  return 0;
}

static int cmd_teardown(void **state)
{
  struct cfx *c = *state;

  ctkn_ledger_close(c->l);
  ctkn__api_server_free(c->s);
  for (int i = 0; i < c->f.ntargets; i++)
    free(c->f.targets[i]);
  tk_close(&c->t);
  free(c);
  current = NULL;
  return 0;
}

/* Run what is queued as the command thread does, then open the queue
 * again for the next writes. */
static void serve(struct cfx *c)
{
  ctkn__queue_close(&c->s->cmdq);
  ctkn__api_commands_serve(c->s, c->l, NULL);
  ctkn__queue_destroy(&c->s->cmdq);
  assert_int_equal(ctkn__queue_init(&c->s->cmdq), CTKN_OK);
}

static uint64_t produced(struct cfx *c)
{
  struct fake_log_stats st;

  fake_log_stats(c->t.log, &st);
  return st.produced;
}

/* POST /client-tokens, served; returns the request (done() it). */
static struct req *post(struct cfx *c, const char *body, const char *idem)
{
  struct req *r =
      idem ? call(&c->f, "POST", "/client-tokens", body, "Authorization",
                  auth_writer, "Idempotency-Key", idem, NULL)
           : call(&c->f, "POST", "/client-tokens", body, "Authorization",
                  auth_writer, NULL);
  assert_true(r->suspended);
  serve(c);
  assert_true(r->ready);
  return r;
}

static void test_a_create_answers_201_after_the_projection_has_it(void **st)
{
  struct cfx *c = *st;
  struct req *r = post(c, "{\"name\":\"Pricing page\"}", NULL);
  char target[96];

  assert_int_equal(r->status, 201);
  json_t *j = answer(r);
  json_t *data = json_object_get(j, "data");
  assert_string_equal(jstr(data, "name"), "Pricing page");
  assert_string_equal(jstr(data, "status"), "active");
  snprintf(target, sizeof(target), "/client-tokens/%s", jstr(data, "id"));
  /* X-Ctkn-Position names where the event landed in the log. */
  int part;
  long long off;
  assert_int_equal(sscanf(r->position, "%d:%lld", &part, &off), 2);
  const struct ctkn_log_msg *m = fake_log_record(c->t.log, TK_TOPIC, part, off);
  assert_non_null(m);
  assert_memory_equal(m->key, jstr(data, "id"), m->key_len);
  done(&c->f, r);
  /* Read your write: a GET right after sees it. */
  r = call(&c->f, "GET", target, NULL, "Authorization", auth_reader, NULL);
  assert_int_equal(r->status, 200);
  json_t *g = answer(r);
  assert_true(json_equal(json_object_get(g, "data"), data));
  json_decref(g);
  json_decref(j);
  done(&c->f, r);
}

static void test_an_idempotent_retry_answers_the_first_token(void **st)
{
  struct cfx *c = *st;
  struct req *a = post(c, "{\"name\":\"once\"}", "order-7");
  json_t *ja = answer(a);
  done(&c->f, a);
  struct req *b = post(c, "{\"name\":\"once\"}", "order-7");
  json_t *jb = answer(b);
  assert_string_equal(jstr(json_object_get(ja, "data"), "id"),
                      jstr(json_object_get(jb, "data"), "id"));
  assert_int_equal(produced(c), 1);
  done(&c->f, b);
  /* The same key with another request is a conflict. */
  struct req *x = post(c, "{\"name\":\"other\"}", "order-7");
  check_error(&c->f, x, 409, "conflict", NULL);
  assert_int_equal(produced(c), 1);
  json_decref(ja);
  json_decref(jb);
}

static void test_revoke_then_change_is_a_conflict(void **st)
{
  struct cfx *c = *st;
  struct req *r = post(c, "{\"name\":\"soon gone\"}", NULL);
  json_t *j = answer(r);
  char target[96];

  snprintf(target, sizeof(target), "/client-tokens/%s",
           jstr(json_object_get(j, "data"), "id"));
  json_decref(j);
  done(&c->f, r);
  r = call(&c->f, "PATCH", target, "{\"status\":\"revoked\"}", "Authorization",
           auth_writer, NULL);
  serve(c);
  assert_int_equal(r->status, 200);
  j = answer(r);
  assert_string_equal(jstr(json_object_get(j, "data"), "status"), "revoked");
  json_decref(j);
  done(&c->f, r);
  r = call(&c->f, "PATCH", target, "{\"name\":\"again\"}", "Authorization",
           auth_writer, NULL);
  serve(c);
  check_error(&c->f, r, 409, "conflict", NULL);
}

static void test_an_unacknowledged_write_is_503_retryable(void **st)
{
  struct cfx *c = *st;

  fake_log_fail_sends(c->t.log, 1, CTKN_ETIMEOUT, false);
  struct req *r = post(c, "{\"name\":\"lost\"}", "try-1");
  assert_int_equal(r->retry_after, 1);
  check_error(&c->f, r, 503, "service_unavailable", NULL);
  /* Nothing is in the log; the retry with the key makes one token. */
  assert_int_equal(produced(c), 0);
  r = post(c, "{\"name\":\"lost\"}", "try-1");
  assert_int_equal(r->status, 201);
  done(&c->f, r);
  assert_int_equal(produced(c), 1);
}

/* Once the server's projection has stopped, a queued write is refused
 * before it is appended: its answer could only be 503, and a client's
 * retry elsewhere would make a second token. */
static void test_no_write_is_appended_after_the_projection_stops(void **st)
{
  struct cfx *c = *st;
  struct ctkn_err err = {.code = CTKN_ESTORE, .msg = "disk full"};

  ctkn__api_fatal(c->s, &err);
  struct req *r = post(c, "{\"name\":\"late\"}", NULL);
  assert_int_equal(r->retry_after, 1);
  check_detail(&c->f, r, 503, "service_unavailable", NULL,
               "this server's projection stopped (its log says why); nothing "
               "was appended");
  assert_int_equal(produced(c), 0);
}

/* The next produce fails as a broker that never answers does: after
 * waiting most of the log's timeout (made short here). */
static void waits_out_the_timeout(struct cfx *c)
{
  c->t.cfg.timeout_ms = 400; /* the server's view; the ledger keeps its own */
  fake_log_delay_reports(c->t.log, 300);
  fake_log_fail_sends(c->t.log, 1, CTKN_ETIMEOUT, false);
}

/* The server signs with sg's writer key (a keyring with it on the log):
 * it heartbeats. */
static void sign_as_writer(struct cfx *c, struct tk_signing *sg)
{
  struct ctkn_err err = {0};

  tk_keyring_with(&c->t, sg);
  assert_int_equal(ctkn_ledger_set_trust(c->l, sg->root_pub, sg->writer, &err),
                   CTKN_OK);
  c->cfg.writer_key = sg->writer;
}

/* ... and no more: the ledger closed (it signs its closing checkpoints
 * with sg's key), the fixture's next test opens another. */
static void stop_signing(struct cfx *c, struct tk_signing *sg)
{
  c->cfg.writer_key = NULL;
  ctkn_ledger_close(c->l);
  c->l = NULL;
  tk_signing_free(sg);
}

/* A write queued while the log failed to take the server's heartbeat
 * has waited the log's timeout once already: it is refused at once,
 * nothing appended, rather than waiting that long again for its own
 * append (a client's --timeout of 10 s got its 503 after 17 s). A write
 * queued after a heartbeat the log took is served. */
static void test_a_write_that_waited_on_a_failed_heartbeat_is_refused(void **st)
{
  struct cfx *c = *st;
  struct tk_signing sg;

  sign_as_writer(c, &sg);
  c->cfg.heartbeat_ms = 60000; /* one per serve(): its first is at once */
  waits_out_the_timeout(c);
  struct req *r = post(c, "{\"name\":\"waited\"}", NULL);
  fake_log_delay_reports(c->t.log, 0);
  assert_int_equal(r->retry_after, 1);
  json_t *j = assert_error(r, 503, "service_unavailable", NULL);
  const char *detail = jstr(json_object_get(j, "error"), "detail");
  assert_contains(detail, "nothing was appended: this server's heartbeat "
                          "failed after waiting on the log while this request "
                          "waited behind it");
  json_decref(j);
  done(&c->f, r);

  r = post(c, "{\"name\":\"after\"}", NULL);
  assert_int_equal(r->status, 201);
  done(&c->f, r);
  /* Only the second is in the log. */
  r = call(&c->f, "GET", "/client-tokens?status=active,revoked", NULL,
           "Authorization", auth_reader, NULL);
  assert_int_equal(r->status, 200);
  j = answer(r);
  assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
  assert_string_equal(
      jstr(json_array_get(json_object_get(j, "data"), 0), "name"), "after");
  json_decref(j);
  done(&c->f, r);
  stop_signing(c, &sg);
}

/* A stopping server appends no heartbeat: its drain would wait for it,
 * as long as the log takes (a broker away: the timeout), and the writes
 * still queued behind it too. */
static void test_a_stopping_server_appends_no_heartbeat(void **st)
{
  struct cfx *c = *st;
  struct tk_signing sg;

  sign_as_writer(c, &sg);
  c->cfg.heartbeat_ms = 60000; /* one per serve(): its first is at once */
  uint64_t before = produced(c);
  atomic_store(&c->s->closing, true);
  serve(c);
  assert_int_equal(produced(c), before);
  atomic_store(&c->s->closing, false);
  serve(c);
  assert_true(produced(c) > before); /* not stopping: it does */
  stop_signing(c, &sg);
}

/* The command thread on a thread of its own, its queue open. */
static void *commands_main(void *arg)
{
  struct cfx *c = arg;

  ctkn__api_commands_serve(c->s, c->l, NULL);
  return NULL;
}

static bool wait_ready(struct req *r)
{
  for (int i = 0; i < 5000; i++) {
    if (__atomic_load_n(&r->ready, __ATOMIC_SEQ_CST))
      return true;
    usleep(1000);
  }
  return false;
}

struct behind_probe {
  struct cfx *c;
  struct req *behind; /* queued while the first write was being sent */
};

/* Inside the first produce: a create arrives meanwhile. */
static void queue_behind(void *arg)
{
  struct behind_probe *p = arg;

  if (p->behind == NULL)
    p->behind =
        call(&p->c->f, "POST", "/client-tokens", "{\"name\":\"behind\"}",
             "Authorization", auth_writer, NULL);
}

/* The command thread started, a keyed create (run on the command thread
 * itself) answered, and the create probe queued while it was being sent
 * answered too. Returns the keyed one. */
static struct req *one_behind_another(struct cfx *c, struct behind_probe *probe,
                                      pthread_t *t, const char *idem)
{
  fake_log_on_send(c->t.log, queue_behind, probe);
  assert_int_equal(pthread_create(t, NULL, commands_main, c), 0);
  struct req *first =
      call(&c->f, "POST", "/client-tokens", "{\"name\":\"first\"}",
           "Authorization", auth_writer, "Idempotency-Key", idem, NULL);
  assert_true(wait_ready(first));
  for (int i = 0; i < 5000 && probe->behind == NULL; i++)
    usleep(1000);
  assert_non_null(probe->behind);
  assert_true(wait_ready(probe->behind));
  fake_log_on_send(c->t.log, NULL, NULL);
  return first;
}

/* Stop the command thread t, and open the queue again. */
static void stop_commands(struct cfx *c, pthread_t t)
{
  ctkn__queue_close(&c->s->cmdq);
  pthread_join(t, NULL);
}

static void reopen_commands(struct cfx *c)
{
  ctkn__queue_destroy(&c->s->cmdq);
  assert_int_equal(ctkn__queue_init(&c->s->cmdq), CTKN_OK);
}

struct beat_probe {
  struct cfx *c;
  struct req *behind; /* queued during the keyed create's send */
  int sends;          /* produce calls seen (atomic) */
  bool ready_at_beat; /* behind was answered when the heartbeat went */
};

/* Send 1: the first heartbeat; 2: the keyed create's, a create queued
 * behind it; 3: the heartbeat after it, which notes whether that create
 * was answered already. */
static void beat_on_send(void *arg)
{
  struct beat_probe *p = arg;
  int k = __atomic_add_fetch(&p->sends, 1, __ATOMIC_SEQ_CST);

  if (k == 2)
    p->behind =
        call(&p->c->f, "POST", "/client-tokens", "{\"name\":\"behind\"}",
             "Authorization", auth_writer, NULL);
  else if (k == 3)
    p->ready_at_beat = __atomic_load_n(&p->behind->ready, __ATOMIC_SEQ_CST);
}

/* A write that waited behind one the log failed is refused before the
 * heartbeat that falls due meanwhile, not after it: a heartbeat waits on
 * the same log, and 503s came at about twice --timeout. */
static void
test_a_write_behind_a_failed_one_is_refused_before_the_heartbeat(void **st)
{
  struct cfx *c = *st;
  struct tk_signing sg;
  struct beat_probe probe = {.c = c};
  pthread_t t;

  sign_as_writer(c, &sg);
  c->cfg.heartbeat_ms = 250; /* due again once the first create failed */
  c->t.cfg.timeout_ms = 400; /* read once the thread starts */
  fake_log_on_send(c->t.log, beat_on_send, &probe);
  assert_int_equal(pthread_create(&t, NULL, commands_main, c), 0);
  for (int i = 0;
       i < 5000 && __atomic_load_n(&probe.sends, __ATOMIC_SEQ_CST) < 1; i++)
    usleep(1000);
  usleep(20000); /* the first heartbeat done */
  waits_out_the_timeout(c);
  struct req *first =
      call(&c->f, "POST", "/client-tokens", "{\"name\":\"first\"}",
           "Authorization", auth_writer, "Idempotency-Key", "k-beat", NULL);
  assert_true(wait_ready(first));
  for (int i = 0;
       i < 5000 && __atomic_load_n(&probe.sends, __ATOMIC_SEQ_CST) < 3; i++)
    usleep(1000);
  assert_true(__atomic_load_n(&probe.sends, __ATOMIC_SEQ_CST) >= 3);
  assert_non_null(probe.behind);
  assert_true(wait_ready(probe.behind));
  fake_log_on_send(c->t.log, NULL, NULL);
  fake_log_delay_reports(c->t.log, 0);
  stop_commands(c, t);
  assert_int_equal(first->status, 503);
  check_detail(&c->f, probe.behind, 503, "service_unavailable", NULL,
               "nothing was appended: a write queued ahead of it failed "
               "after waiting on the log");
  assert_true(probe.ready_at_beat);
  done(&c->f, first);
  reopen_commands(c);
  c->t.cfg.timeout_ms = 3000; /* testkit's */
  stop_signing(c, &sg);
}

/* A write queued while the log failed the write ahead of it is refused
 * at once, nothing appended: it has waited the log's timeout once, and
 * its own append would wait that long again (under an outage, each
 * queued request waited about twice --timeout). A write queued after
 * the failure is tried. */
static void test_a_write_queued_behind_a_failed_one_is_refused(void **st)
{
  struct cfx *c = *st;
  struct behind_probe probe = {.c = c};
  pthread_t t;

  waits_out_the_timeout(c);
  struct req *first = one_behind_another(c, &probe, &t, "k-1");
  fake_log_delay_reports(c->t.log, 0);
  struct req *after =
      call(&c->f, "POST", "/client-tokens", "{\"name\":\"after\"}",
           "Authorization", auth_writer, NULL);
  assert_true(wait_ready(after));
  stop_commands(c, t);
  check_error(&c->f, first, 503, "service_unavailable", NULL);
  assert_int_equal(probe.behind->retry_after, 1);
  check_detail(&c->f, probe.behind, 503, "service_unavailable", NULL,
               "nothing was appended: a write queued ahead of it failed "
               "after waiting on the log");
  assert_int_equal(after->status, 201);
  done(&c->f, after);
  assert_int_equal(produced(c), 1); /* "after" alone */
  reopen_commands(c);
}

/* A write the log refuses at once (not a wait: an error the broker
 * answered) makes nobody wait, so the writes queued behind it are tried. */
static void test_a_fast_failure_refuses_nothing_behind_it(void **st)
{
  struct cfx *c = *st;
  struct behind_probe probe = {.c = c};
  pthread_t t;

  fake_log_fail_sends(c->t.log, 1, CTKN_EKAFKA, false);
  struct req *first = one_behind_another(c, &probe, &t, "k-2");
  stop_commands(c, t);
  check_error(&c->f, first, 503, "service_unavailable", NULL);
  assert_int_equal(probe.behind->status, 201);
  done(&c->f, probe.behind);
  reopen_commands(c);
}

/* Inside each of the first three produces, the next create arrives. */
struct chain_probe {
  struct cfx *c;
  struct req *r[3]; /* queued during the first, second, third produce */
  int sends;
};

static void queue_next(void *arg)
{
  struct chain_probe *p = arg;
  char body[32];

  if (p->sends >= 3)
    return;
  snprintf(body, sizeof(body), "{\"name\":\"next %d\"}", p->sends);
  p->r[p->sends] = call(&p->c->f, "POST", "/client-tokens", body,
                        "Authorization", auth_writer, NULL);
  p->sends++;
}

/* Pipelined creates (no idempotency key) acknowledged but never judged by
 * the projection (its reads held) end 503 appended-not-applied after the
 * timeout; a create that waited meanwhile for a free slot (two batches in
 * flight) is then refused, nothing appended, rather than appended to wait
 * as long again. */
static void test_a_write_behind_an_unapplied_batch_is_refused(void **st)
{
  struct cfx *c = *st;
  struct chain_probe probe = {.c = c};
  pthread_t t;

  done(&c->f, post(c, "{\"name\":\"warm\"}", NULL)); /* the partitions */
  uint64_t before = produced(c);
  c->t.cfg.timeout_ms = 400;
  fake_log_hold_polls(c->t.log, true);
  fake_log_on_send(c->t.log, queue_next, &probe);
  assert_int_equal(pthread_create(&t, NULL, commands_main, c), 0);
  struct req *first =
      call(&c->f, "POST", "/client-tokens", "{\"name\":\"first\"}",
           "Authorization", auth_writer, NULL);
  assert_true(wait_ready(first));
  for (int i = 0; i < 5000 && probe.sends < 3; i++)
    usleep(1000);
  assert_int_equal(probe.sends, 3);
  for (int i = 0; i < 3; i++)
    assert_true(wait_ready(probe.r[i]));
  fake_log_on_send(c->t.log, NULL, NULL);
  fake_log_hold_polls(c->t.log, false);
  stop_commands(c, t);
  /* The first three were appended and not applied in time... */
  assert_int_equal(first->status, 503);
  done(&c->f, first);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(probe.r[i]->status, 503);
    done(&c->f, probe.r[i]);
  }
  /* ... the fourth waited for a slot behind them and was refused. */
  check_detail(&c->f, probe.r[2], 503, "service_unavailable", NULL,
               "nothing was appended: a write queued ahead of it failed "
               "after waiting on the log");
  assert_int_equal(produced(c) - before, 3);
  reopen_commands(c);
}

struct pipe_probe {
  struct cfx *c;
  struct req *first;
  volatile int sends;       /* produce calls seen */
  volatile bool first_sent; /* the first batch is being appended */
  bool first_ready_then;    /* the first was answered when the second went */
};

/* Inside each produce: the first batch's holds the log's readers back, so
 * its events cannot be judged; the second's notes whether the first was
 * answered meanwhile, and lets the readers go. */
static void pipe_on_send(void *arg)
{
  struct pipe_probe *p = arg;

  if (++p->sends == 1) {
    fake_log_hold_polls(p->c->t.log, true);
    p->first_sent = true;
  } else if (p->sends == 2) {
    p->first_ready_then = __atomic_load_n(&p->first->ready, __ATOMIC_SEQ_CST);
    fake_log_hold_polls(p->c->t.log, false);
  }
}

/* Creates without an idempotency key read nothing, so a batch of them is
 * appended while the projection is still to judge the batch before it
 * (submitted on the command thread, settled on a second one); each is
 * answered only once the projection has judged its event. */
static void test_creates_are_appended_while_the_last_batch_settles(void **st)
{
  struct cfx *c = *st;
  struct pipe_probe probe = {.c = c};
  pthread_t t;

  done(&c->f, post(c, "{\"name\":\"warm\"}", NULL)); /* the partitions */
  fake_log_on_send(c->t.log, pipe_on_send, &probe);
  assert_int_equal(pthread_create(&t, NULL, commands_main, c), 0);
  probe.first = call(&c->f, "POST", "/client-tokens", "{\"name\":\"first\"}",
                     "Authorization", auth_writer, NULL);
  for (int i = 0; i < 5000 && !probe.first_sent; i++)
    usleep(1000);
  assert_true(probe.first_sent);
  struct req *second =
      call(&c->f, "POST", "/client-tokens", "{\"name\":\"second\"}",
           "Authorization", auth_writer, NULL);
  assert_true(wait_ready(probe.first));
  assert_true(wait_ready(second));
  ctkn__queue_close(&c->s->cmdq);
  pthread_join(t, NULL);
  fake_log_on_send(c->t.log, NULL, NULL);
  assert_int_equal(probe.sends, 2);
  assert_false(probe.first_ready_then);
  assert_int_equal(probe.first->status, 201);
  assert_int_equal(second->status, 201);
  /* Read your write: each is in the projection. */
  struct req *both[2] = {probe.first, second};
  for (int i = 0; i < 2; i++) {
    json_t *j = answer(both[i]);
    char target[96];
    snprintf(target, sizeof(target), "/client-tokens/%s",
             jstr(json_object_get(j, "data"), "id"));
    json_decref(j);
    done(&c->f, both[i]);
    struct req *g =
        call(&c->f, "GET", target, NULL, "Authorization", auth_reader, NULL);
    assert_int_equal(g->status, 200);
    done(&c->f, g);
  }
  ctkn__queue_destroy(&c->s->cmdq);
  assert_int_equal(ctkn__queue_init(&c->s->cmdq), CTKN_OK);
}

struct gather_probe {
  struct cfx *c;
  int sends;       /* produce calls seen (atomic) */
  bool first_sent; /* the first batch is being appended (atomic) */
};

/* Inside the first produce: hold the log's readers back, so that batch
 * stays in flight until the test lets them go. */
static void gather_on_send(void *arg)
{
  struct gather_probe *p = arg;

  if (__atomic_add_fetch(&p->sends, 1, __ATOMIC_SEQ_CST) == 1) {
    fake_log_hold_polls(p->c->t.log, true);
    __atomic_store_n(&p->first_sent, true, __ATOMIC_SEQ_CST);
  }
}

static int sends_of(struct gather_probe *p)
{
  return __atomic_load_n(&p->sends, __ATOMIC_SEQ_CST);
}

/* Creates queued one at a time while a slot is to spare go at once,
 * however long the command thread may gather: the first with nothing in
 * flight, the second beside it (both held in flight). A third, which
 * would take the last free slot, is taken and held (s->gather_us,
 * lengthened here, is its bound); returns it. */
static struct req *one_waiting_for_company(struct cfx *c,
                                           struct gather_probe *probe,
                                           pthread_t *t, struct req *first[2])
{
  done(&c->f, post(c, "{\"name\":\"warm\"}", NULL)); /* the partitions */
  c->s->gather_us = INT64_C(10000000);
  c->t.cfg.timeout_ms = 60000; /* the held batches must not time out */
  fake_log_on_send(c->t.log, gather_on_send, probe);
  assert_int_equal(pthread_create(t, NULL, commands_main, c), 0);
  first[0] = call(&c->f, "POST", "/client-tokens", "{\"name\":\"first\"}",
                  "Authorization", auth_writer, NULL);
  for (int i = 0;
       i < 5000 && !__atomic_load_n(&probe->first_sent, __ATOMIC_SEQ_CST); i++)
    usleep(1000);
  assert_true(__atomic_load_n(&probe->first_sent, __ATOMIC_SEQ_CST));
  first[1] = call(&c->f, "POST", "/client-tokens", "{\"name\":\"second\"}",
                  "Authorization", auth_writer, NULL);
  for (int i = 0; i < 5000 && sends_of(probe) < 2; i++)
    usleep(1000);
  assert_int_equal(sends_of(probe), 2);
  struct req *r = call(&c->f, "POST", "/client-tokens", "{\"name\":\"third\"}",
                       "Authorization", auth_writer, NULL);
  for (int i = 0; i < 5000 && ctkn__queue_len(&c->s->cmdq) > 0; i++)
    usleep(1000);
  assert_int_equal(ctkn__queue_len(&c->s->cmdq), 0);
  usleep(50000);
  assert_int_equal(sends_of(probe), 2); /* taken, not appended */
  return r;
}

static void end_gathering(struct cfx *c, pthread_t t)
{
  fake_log_on_send(c->t.log, NULL, NULL);
  fake_log_hold_polls(c->t.log, false);
  stop_commands(c, t);
  reopen_commands(c);
  c->s->gather_us = CTKN__API_GATHER_US;
  c->t.cfg.timeout_ms = 3000; /* testkit's */
}

/* Under load a batch of a few waits for company: one that would take
 * the last free slot goes with the ones queued after it, in one produce,
 * once CTKN__API_GATHER_MIN are there. */
static void test_a_write_while_a_batch_is_in_flight_waits_for_company(void **st)
{
  struct cfx *c = *st;
  struct gather_probe probe = {.c = c};
  struct req *first[2], *w[CTKN__API_GATHER_MIN];
  pthread_t t;

  w[0] = one_waiting_for_company(c, &probe, &t, first);
  for (int i = 1; i < CTKN__API_GATHER_MIN; i++) {
    char body[32];
    snprintf(body, sizeof(body), "{\"name\":\"w %d\"}", i);
    w[i] = call(&c->f, "POST", "/client-tokens", body, "Authorization",
                auth_writer, NULL);
  }
  for (int i = 0; i < 5000 && sends_of(&probe) < 3; i++)
    usleep(1000);
  usleep(20000);
  assert_int_equal(sends_of(&probe), 3); /* all of them in one */
  fake_log_hold_polls(c->t.log, false);
  for (int i = 0; i < 2; i++) {
    assert_true(wait_ready(first[i]));
    assert_int_equal(first[i]->status, 201);
    done(&c->f, first[i]);
  }
  for (int i = 0; i < CTKN__API_GATHER_MIN; i++) {
    assert_true(wait_ready(w[i]));
    assert_int_equal(w[i]->status, 201);
    done(&c->f, w[i]);
  }
  end_gathering(c, t);
}

/* The wait for company ends when a batch ahead settles: a slot is free
 * again. */
static void test_a_waiting_write_goes_when_the_batch_ahead_settles(void **st)
{
  struct cfx *c = *st;
  struct gather_probe probe = {.c = c};
  struct req *first[2];
  pthread_t t;

  struct req *third = one_waiting_for_company(c, &probe, &t, first);
  fake_log_hold_polls(c->t.log, false); /* the first two are judged */
  for (int i = 0; i < 2; i++)
    assert_true(wait_ready(first[i]));
  assert_true(wait_ready(third)); /* long before gather_us */
  assert_int_equal(sends_of(&probe), 3);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(first[i]->status, 201);
    done(&c->f, first[i]);
  }
  assert_int_equal(third->status, 201);
  done(&c->f, third);
  end_gathering(c, t);
}

static void test_writes_queued_together_run_as_one_batch(void **st)
{
  struct cfx *c = *st;
  struct req *r = post(c, "{\"name\":\"shared\"}", NULL);
  json_t *j = answer(r);
  char target[96];
  struct req *w[4];

  snprintf(target, sizeof(target), "/client-tokens/%s",
           jstr(json_object_get(j, "data"), "id"));
  json_decref(j);
  done(&c->f, r);
  struct fake_log_stats before;
  fake_log_stats(c->t.log, &before);
  w[0] = call(&c->f, "PATCH", target, "{\"name\":\"a\"}", "Authorization",
              auth_writer, NULL);
  w[1] = call(&c->f, "PATCH", target, "{\"name\":\"b\"}", "Authorization",
              auth_writer, NULL);
  w[2] = call(&c->f, "POST", "/client-tokens", "{\"name\":\"x\"}",
              "Authorization", auth_writer, NULL);
  w[3] = call(&c->f, "POST", "/client-tokens", "{\"name\":\"y\"}",
              "Authorization", auth_writer, NULL);
  assert_int_equal(ctkn__queue_len(&c->s->cmdq), 4);
  serve(c);
  struct fake_log_stats after;
  fake_log_stats(c->t.log, &after);
  /* Two produces: the first change and the creates in flight together,
   * then the second change to the token, planned once the first was
   * judged. */
  assert_int_equal(after.sends - before.sends, 2);
  /* Two changes to one token, taken in this order: both apply, the
   * second after the first (neither conflicts with the other). */
  assert_int_equal(w[0]->status, 200);
  assert_int_equal(w[1]->status, 200);
  json_t *b = answer(w[1]);
  assert_string_equal(jstr(json_object_get(b, "data"), "name"), "b");
  json_decref(b);
  done(&c->f, w[1]);
  assert_int_equal(w[2]->status, 201);
  assert_int_equal(w[3]->status, 201);
  done(&c->f, w[0]);
  done(&c->f, w[2]);
  done(&c->f, w[3]);
}

/* Two POSTs with one Idempotency-Key queued together (a client retrying
 * before the first answer): one event in the log, the same token for
 * both; the same key with another body is a conflict. */
static void test_one_key_queued_twice_appends_once(void **st)
{
  struct cfx *c = *st;
  struct req *w[3];

  for (int i = 0; i < 3; i++)
    w[i] =
        call(&c->f, "POST", "/client-tokens",
             i < 2 ? "{\"name\":\"twice\"}" : "{\"name\":\"other\"}",
             "Authorization", auth_writer, "Idempotency-Key", "order-9", NULL);
  assert_int_equal(ctkn__queue_len(&c->s->cmdq), 3);
  serve(c);
  assert_int_equal(produced(c), 1);
  assert_int_equal(w[0]->status, 201);
  assert_int_equal(w[1]->status, 201);
  json_t *a = answer(w[0]), *b = answer(w[1]);
  assert_string_equal(jstr(json_object_get(a, "data"), "id"),
                      jstr(json_object_get(b, "data"), "id"));
  assert_string_equal(w[0]->position, w[1]->position);
  json_decref(a);
  json_decref(b);
  done(&c->f, w[0]);
  done(&c->f, w[1]);
  check_error(&c->f, w[2], 409, "conflict", NULL);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_get_answers_the_entity_as_the_query_renders_it),
      T(test_get_refuses_unknown_ids_bad_ids_and_parameters),
      T(test_history_answers_the_events_oldest_first),
      T(test_events_page_through_every_applied_event_by_id),
      T(test_events_filter_by_type_and_time),
      T(test_events_parameters_and_permissions_are_checked),
      T(test_event_types_lists_every_type_with_its_group),
      T(test_ui_files_are_served_with_security_headers),
      T(test_list_defaults_to_active_tokens_newest_first),
      T(test_list_pages_both_ways_with_next_links),
      T(test_list_status_filters_repeat_and_combine),
      T(test_list_skip_count_leaves_out_the_estimate),
      T(test_list_parameters_are_checked_naming_the_field),
      T(test_verify_answers_active_revoked_and_unknown),
      T(test_authentication_failures_are_403_with_paddles_codes),
      T(test_keys_on_the_log_authenticate_until_revoked),
      T(test_side_topics_not_followed_fail_closed),
      T(test_events_serve_the_settings_topics_events),
      T(test_rate_limit_covers_keys_on_the_log),
      T(test_rate_limit_answers_429_with_retry_after),
      T(test_unknown_paths_are_404_and_other_methods_405),
      T(test_bodies_too_large_or_unwanted_are_refused),
      T(test_a_nul_anywhere_in_the_head_is_refused),
      T(test_conflicting_framing_is_refused_and_closes),
      T(test_only_the_chunked_transfer_coding_is_read),
      T(test_a_header_ctkn_reads_twice_is_refused),
      T(test_oversized_heads_get_414_and_431),
      T(test_token_writes_are_checked_before_they_are_queued),
      T(test_queued_writes_are_answered_by_the_command_thread),
      T(test_min_position_waits_for_the_follower),
      T(test_the_ledger_s_wait_ends_when_the_follower_passes),
      T(test_min_position_on_an_unknown_partition_is_refused),
      T(test_healthz_reports_starting_ready_and_lagging),
      T(test_healthz_counts_quarantined_records_per_partition),
      T(test_metrics_count_requests_by_route_and_status),
      T(test_access_line_has_its_members_escaped),
      T(test_settings_list_filters_and_pages),
      T(test_settings_list_parameters_name_the_field),
      T(test_settings_reads_show_secrets_with_the_key),
      T(test_settings_get_answers_one_without_its_secret),
      T(test_settings_writes_are_checked_before_they_are_queued),
      T(test_server_refuses_a_bad_configuration_naming_it),
      T(test_server_loads_its_keys_and_links_on_listen),
  };
#undef T
#define C(name) cmocka_unit_test_setup_teardown(name, cmd_setup, cmd_teardown)
  const struct CMUnitTest commands[] = {
      C(test_a_create_answers_201_after_the_projection_has_it),
      C(test_an_idempotent_retry_answers_the_first_token),
      C(test_revoke_then_change_is_a_conflict),
      C(test_an_unacknowledged_write_is_503_retryable),
      C(test_no_write_is_appended_after_the_projection_stops),
      C(test_a_write_that_waited_on_a_failed_heartbeat_is_refused),
      C(test_a_write_queued_behind_a_failed_one_is_refused),
      C(test_a_fast_failure_refuses_nothing_behind_it),
      C(test_a_write_behind_an_unapplied_batch_is_refused),
      C(test_writes_queued_together_run_as_one_batch),
      C(test_creates_are_appended_while_the_last_batch_settles),
      C(test_a_write_while_a_batch_is_in_flight_waits_for_company),
      C(test_a_stopping_server_appends_no_heartbeat),
      C(test_a_write_behind_a_failed_one_is_refused_before_the_heartbeat),
      C(test_a_waiting_write_goes_when_the_batch_ahead_settles),
      C(test_one_key_queued_twice_appends_once),
  };
#undef C
  int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
  return failed + cmocka_run_group_tests_name("command path", commands,
                                              group_setup, group_teardown);
}
