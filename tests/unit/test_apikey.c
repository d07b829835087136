/*
 * test_apikey.c - API keys: generation, the key file (hashes only, mode
 * 0600, atomic and locked rewrites, strict parsing) and the lookup.
 *
 * Each test gets a fresh mkdtemp() directory holding the key file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctkn/apikey.h"
#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "internal.h"

#define KEY_LEN 55 /* "ctkn_apikey_" + 43 base64url */
#define R       CTKN_PERM_TOKEN_READ
#define W       CTKN_PERM_TOKEN_WRITE
#define SR      CTKN_PERM_SETTING_READ
#define SW      CTKN_PERM_SETTING_WRITE

struct fx {
  char dir[64];
  char path[128];
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));

  assert_non_null(f);
  strcpy(f->dir, "/tmp/test_apikey.XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof(f->path), "%s/keys", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  static const char *const suffix[] = {"", ".lock", ".tmp"};
  char p[160];

  for (size_t i = 0; i < sizeof(suffix) / sizeof(*suffix); i++) {
    snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
    unlink(p);
  }
  rmdir(f->dir);
  free(f);
  return 0;
}

/* The whole file as a string. Caller frees. */
static char *slurp(const char *path)
{
  FILE *fp = fopen(path, "rb");
  char *buf;
  long n;

  assert_non_null(fp);
  assert_int_equal(fseek(fp, 0, SEEK_END), 0);
  n = ftell(fp);
  assert_true(n >= 0);
  rewind(fp);
  buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
  buf[n] = '\0';
  fclose(fp);
  return buf;
}

static void spill(const char *path, const char *text)
{
  FILE *fp = fopen(path, "wb");

  assert_non_null(fp);
  assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
  assert_int_equal(fclose(fp), 0);
}

static void create_ok(const char *path, const char *name, unsigned perms,
                      char key[CTKN_APIKEY_BUF])
{
  struct ctkn_err err;
  int rc = ctkn_apikey_create(path, name, perms, key, NULL, &err);

  if (rc != CTKN_OK)
    fail_msg("create %s: %s: %s", name, ctkn_strerror(rc), err.msg);
}

static ctkn_apikeys *load_ok(const char *path)
{
  struct ctkn_err err;
  ctkn_apikeys *ks = NULL;
  int rc = ctkn_apikeys_load(path, &ks, &err);

  if (rc != CTKN_OK)
    fail_msg("load: %s: %s", ctkn_strerror(rc), err.msg);
  assert_non_null(ks);
  return ks;
}

/* ---- round trip ------------------------------------------------------ */

static void test_create_load_find_round_trip(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF];
  struct ctkn_apikey out;
  const struct ctkn_apikey *hit;
  struct ctkn_err err;
  ctkn_apikeys *ks;

  assert_int_equal(ctkn_apikey_create(f->path, "backend", R, key, &out, &err),
                   CTKN_OK);
  assert_int_equal(strlen(key), KEY_LEN);
  assert_memory_equal(key, CTKN_APIKEY_PREFIX, strlen(CTKN_APIKEY_PREFIX));
  assert_int_equal(strspn(key + strlen(CTKN_APIKEY_PREFIX),
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789-_"),
                   KEY_LEN - strlen(CTKN_APIKEY_PREFIX));
  assert_string_equal(out.name, "backend");
  assert_int_equal(out.perms, R);
  assert_int_equal(strlen(out.created_at), 27);
  assert_int_equal(out.created_at[26], 'Z');

  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_count(ks), 1);
  assert_null(ctkn_apikeys_at(ks, 1));
  assert_string_equal(ctkn_apikeys_at(ks, 0)->name, "backend");
  assert_string_equal(ctkn_apikeys_at(ks, 0)->created_at, out.created_at);
  assert_memory_equal(ctkn_apikeys_at(ks, 0)->sha256, out.sha256, 32);
  assert_int_equal(ctkn_apikeys_find(ks, key, strlen(key), &hit), CTKN_OK);
  assert_ptr_equal(hit, ctkn_apikeys_at(ks, 0));
  assert_int_equal(hit->perms, R);
  ctkn_apikeys_free(ks);
}

static void test_keys_are_different_each_time(void **state)
{
  struct fx *f = *state;
  char a[CTKN_APIKEY_BUF], b[CTKN_APIKEY_BUF];

  create_ok(f->path, "a", R, a);
  create_ok(f->path, "b", R, b);
  assert_string_not_equal(a, b);
}

/* ---- permissions ------------------------------------------------------ */

static void test_write_implies_read(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF];
  const struct ctkn_apikey *hit;
  struct ctkn_apikey out;
  const char *names[2];
  unsigned bits = 0;
  ctkn_apikeys *ks;
  char *text;

  assert_int_equal(ctkn_perms_parse("client_token.write", &bits, NULL),
                   CTKN_OK);
  assert_int_equal(bits, R | W);
  assert_int_equal(ctkn_perms_parse("client_token.read", &bits, NULL), CTKN_OK);
  assert_int_equal(bits, R);
  assert_int_equal(
      ctkn_perms_parse("client_token.read,client_token.write", &bits, NULL),
      CTKN_OK);
  assert_int_equal(bits, R | W);

  assert_int_equal(ctkn_perms_names(W, names, 2), 2);
  assert_string_equal(names[0], "client_token.read");
  assert_string_equal(names[1], "client_token.write");
  assert_int_equal(ctkn_perms_names(R, names, 2), 1);
  assert_string_equal(names[0], "client_token.read");
  assert_int_equal(ctkn_perms_names(R | W, names, 1), 1);

  /* A key created with write alone is stored and found with both. */
  assert_int_equal(ctkn_apikey_create(f->path, "w", W, key, &out, NULL),
                   CTKN_OK);
  assert_int_equal(out.perms, R | W);
  text = slurp(f->path);
  assert_non_null(strstr(text, "\"permissions\":[\"client_token.read\","
                               "\"client_token.write\"]"));
  free(text);
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_find(ks, key, strlen(key), &hit), CTKN_OK);
  assert_int_equal(hit->perms, R | W);
  ctkn_apikeys_free(ks);

  /* A hand-written file granting write alone loads with read too. */
  spill(f->path, "{\"name\":\"h\",\"sha256\":\"" /* sha256("") */
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b78"
                 "52b855\",\"permissions\":[\"client_token.write\"],"
                 "\"created_at\":\"2026-11-23T10:00:00.000000Z\"}\n");
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_at(ks, 0)->perms, R | W);
  ctkn_apikeys_free(ks);
}

/* ---- the file --------------------------------------------------------- */

static void test_file_holds_the_hash_never_the_key(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF], hex[65];
  uint8_t d[CTKN_SHA256_LEN];
  char *text, line[512];

  create_ok(f->path, "backend", R | W, key);
  text = slurp(f->path);
  assert_null(strstr(text, key));
  /* Not even the random part without its prefix. */
  assert_null(strstr(text, key + strlen(CTKN_APIKEY_PREFIX)));
  ctkn_sha256_once(key, strlen(key), d);
  ctkn_hex(d, sizeof(d), hex);
  assert_non_null(strstr(text, hex));

  /* Exactly the documented line. */
  const struct ctkn_apikey *k;
  ctkn_apikeys *ks = load_ok(f->path);
  k = ctkn_apikeys_at(ks, 0);
  snprintf(line, sizeof(line),
           "{\"name\":\"backend\",\"sha256\":\"%s\",\"permissions\":"
           "[\"client_token.read\",\"client_token.write\"],"
           "\"created_at\":\"%s\"}\n",
           hex, k->created_at);
  assert_string_equal(text, line);
  ctkn_apikeys_free(ks);
  free(text);
}

static void test_file_mode_is_0600_whatever_the_umask(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF];
  struct stat sb;
  mode_t old = umask(0);

  create_ok(f->path, "a", R, key);
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(sb.st_mode & 07777, 0600);

  /* A file an operator widened is narrowed again by the next rewrite. */
  assert_int_equal(chmod(f->path, 0644), 0);
  create_ok(f->path, "b", R, key);
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(sb.st_mode & 07777, 0600);
  assert_int_equal(chmod(f->path, 0644), 0);
  assert_int_equal(ctkn_apikey_revoke(f->path, "a", NULL), CTKN_OK);
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(sb.st_mode & 07777, 0600);
  umask(old);
}

static void test_rewrite_leaves_no_temporary_file(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF], tmp[160];
  struct stat sb;

  create_ok(f->path, "a", R, key);
  snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
  assert_int_not_equal(stat(tmp, &sb), 0);

  /* One a crash left behind, readable by all and longer than the new
   * file, is truncated and narrowed before it is renamed into place. */
  spill(tmp, "junk junk junk junk junk junk junk junk junk junk junk junk "
             "junk junk junk junk junk junk junk junk junk junk junk junk "
             "junk junk junk junk junk junk junk junk junk junk junk junk "
             "junk junk junk junk junk junk junk junk junk junk junk junk\n");
  assert_int_equal(chmod(tmp, 0644), 0);
  assert_int_equal(ctkn_apikey_revoke(f->path, "a", NULL), CTKN_OK);
  assert_int_not_equal(stat(tmp, &sb), 0);
  assert_int_equal(stat(f->path, &sb), 0);
  assert_int_equal(sb.st_mode & 07777, 0600);
  assert_int_equal(sb.st_size, 0);
}

/* ---- revoke ------------------------------------------------------------ */

static void test_revoke_removes_only_that_entry(void **state)
{
  struct fx *f = *state;
  char a[CTKN_APIKEY_BUF], b[CTKN_APIKEY_BUF], c[CTKN_APIKEY_BUF];
  const struct ctkn_apikey *hit;
  struct ctkn_err err;
  ctkn_apikeys *ks;

  create_ok(f->path, "a", R, a);
  create_ok(f->path, "b", R | W, b);
  create_ok(f->path, "c", W, c);
  assert_int_equal(ctkn_apikey_revoke(f->path, "b", &err), CTKN_OK);

  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_count(ks), 2);
  assert_string_equal(ctkn_apikeys_at(ks, 0)->name, "a");
  assert_string_equal(ctkn_apikeys_at(ks, 1)->name, "c");
  assert_int_equal(ctkn_apikeys_find(ks, b, strlen(b), &hit), CTKN_EBADKEY);
  assert_null(hit);
  assert_int_equal(ctkn_apikeys_find(ks, a, strlen(a), &hit), CTKN_OK);
  assert_string_equal(hit->name, "a");
  assert_int_equal(ctkn_apikeys_find(ks, c, strlen(c), &hit), CTKN_OK);
  assert_string_equal(hit->name, "c");
  assert_int_equal(hit->perms, R | W);
  ctkn_apikeys_free(ks);
}

static void test_revoke_unknown_name_is_notfound(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF];
  struct ctkn_err err;
  ctkn_apikeys *ks;

  create_ok(f->path, "a", R, key);
  assert_int_equal(ctkn_apikey_revoke(f->path, "nobody", &err), CTKN_ENOTFOUND);
  assert_int_equal(err.code, CTKN_ENOTFOUND);
  assert_non_null(strstr(err.msg, "nobody"));
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_count(ks), 1);
  ctkn_apikeys_free(ks);
}

/* ---- create's refusals -------------------------------------------------- */

static void test_duplicate_name_is_conflict(void **state)
{
  struct fx *f = *state;
  char first[CTKN_APIKEY_BUF], again[CTKN_APIKEY_BUF];
  const struct ctkn_apikey *hit;
  struct ctkn_err err;
  ctkn_apikeys *ks;

  create_ok(f->path, "backend", R, first);
  strcpy(again, "untouched");
  assert_int_equal(
      ctkn_apikey_create(f->path, "backend", R | W, again, NULL, &err),
      CTKN_ECONFLICT);
  assert_int_equal(err.code, CTKN_ECONFLICT);
  assert_string_equal(again, ""); /* no key escapes a failed create */
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_count(ks), 1);
  assert_int_equal(ctkn_apikeys_find(ks, first, strlen(first), &hit), CTKN_OK);
  assert_int_equal(hit->perms, R);
  ctkn_apikeys_free(ks);
}

static void assert_bad_name(const char *path, const char *name)
{
  char key[CTKN_APIKEY_BUF];
  struct ctkn_err err;
  int rc = ctkn_apikey_create(path, name, R, key, NULL, &err);

  if (rc != CTKN_EINVAL)
    fail_msg("name \"%s\": got %s", name, ctkn_strerror(rc));
  assert_string_equal(err.field, "name");
  assert_true(err.msg[0] != '\0');
  assert_int_equal(ctkn_apikey_revoke(path, name, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "name");
}

static void test_bad_names_name_the_field(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF], max[CTKN_APIKEY_NAME_MAX + 2];
  struct stat sb;

  memset(max, 'n', CTKN_APIKEY_NAME_MAX + 1);
  max[CTKN_APIKEY_NAME_MAX + 1] = '\0';
  assert_bad_name(f->path, max); /* 65 bytes */
  assert_bad_name(f->path, "");
  assert_bad_name(f->path, "has space");
  assert_bad_name(f->path, "slash/y");
  assert_bad_name(f->path, "quote\"");
  assert_bad_name(f->path, "caf\xc3\xa9");
  assert_bad_name(f->path, "tab\t");
  assert_bad_name(f->path, "comma,");
  /* Nothing was written by any of them. */
  assert_int_not_equal(stat(f->path, &sb), 0);

  max[CTKN_APIKEY_NAME_MAX] = '\0'; /* 64 bytes: fine */
  create_ok(f->path, max, R, key);
  create_ok(f->path, "Az09._-", R, key);
}

static void assert_bad_perms(const char *s)
{
  struct ctkn_err err;
  unsigned bits = 99;

  if (ctkn_perms_parse(s, &bits, &err) != CTKN_EINVAL)
    fail_msg("permissions \"%s\" accepted", s ? s : "(null)");
  assert_string_equal(err.field, "permissions");
  assert_int_equal(bits, 0);
}

static void test_bad_permissions_name_the_field(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF];
  struct ctkn_err err;

  assert_bad_perms("");
  assert_bad_perms(",");
  assert_bad_perms("client_token.read,");
  assert_bad_perms(",client_token.read");
  assert_bad_perms("client_token.read,,client_token.write");
  assert_bad_perms("client_token.admin");
  assert_bad_perms("client_token.READ");
  assert_bad_perms("client_token.read ");
  assert_bad_perms("client_token.reads");
  assert_bad_perms("client_token.rea");
  assert_bad_perms(NULL);
  /* A name twice is refused, as in a JSON body; write with read is not a
   * repeat. */
  assert_bad_perms("client_token.read,client_token.read");
  assert_bad_perms("api_key.write,client_token.read,api_key.write");
  assert_int_equal(ctkn_perms_parse("client_token.read,client_token.twice",
                                    &(unsigned){0}, &err),
                   CTKN_EINVAL);
  assert_int_equal(ctkn_perms_parse("client_token.write,client_token.write",
                                    &(unsigned){0}, &err),
                   CTKN_EINVAL);
  assert_non_null(strstr(err.msg, "lists \"client_token.write\" twice"));
  unsigned both = 0;
  assert_int_equal(
      ctkn_perms_parse("client_token.write,client_token.read", &both, NULL),
      CTKN_OK);

  assert_int_equal(ctkn_apikey_create(f->path, "a", 0, key, NULL, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "permissions");
  assert_int_equal(ctkn_apikey_create(f->path, "a", R | 256u, key, NULL, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "permissions");
  /* The message lists every accepted name. */
  assert_int_equal(
      ctkn_perms_parse("notification_setting.admin", &(unsigned){0}, &err),
      CTKN_EINVAL);
  assert_non_null(strstr(err.msg, "client_token.read"));
  assert_non_null(strstr(err.msg, "client_token.write"));
  assert_non_null(strstr(err.msg, "notification_setting.read"));
  assert_non_null(strstr(err.msg, "notification_setting.write"));
  assert_bad_perms("notification_setting");
  assert_bad_perms("notification_setting.read,");
  assert_bad_perms("notification_settings.read");
  assert_bad_perms("notification-setting.write");
}

/* ---- find --------------------------------------------------------------- */

static void test_malformed_keys_are_authmalformed(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF], bad[CTKN_APIKEY_BUF + 8];
  const struct ctkn_apikey *hit = (const void *)&hit;
  ctkn_apikeys *ks;

  create_ok(f->path, "a", R, key);
  ks = load_ok(f->path);

#define MALFORMED(s, n)                                                        \
  do {                                                                         \
    hit = (const void *)&hit;                                                  \
    assert_int_equal(ctkn_apikeys_find(ks, (s), (n), &hit),                    \
                     CTKN_EAUTHMALFORMED);                                     \
    assert_null(hit);                                                          \
  } while (0)

  MALFORMED("", 0);
  MALFORMED(NULL, 0);
  MALFORMED(CTKN_APIKEY_PREFIX, strlen(CTKN_APIKEY_PREFIX));
  /* The real key, one byte short and one byte long. */
  MALFORMED(key, KEY_LEN - 1);
  strcpy(bad, key);
  strcat(bad, "A");
  MALFORMED(bad, KEY_LEN + 1);
  /* The right length behind the wrong prefix. */
  strcpy(bad, key);
  memcpy(bad, "ctkn_apikeY_", 12);
  MALFORMED(bad, KEY_LEN);
  strcpy(bad, key);
  memcpy(bad, "test_", 5);
  MALFORMED(bad, KEY_LEN);
  /* Characters outside base64url: standard base64, padding, NUL, space. */
  static const char outside[] = {'+', '/', '=', '\0', ' ', '.', '\x80'};
  for (size_t i = 0; i < sizeof(outside); i++) {
    strcpy(bad, key);
    bad[KEY_LEN - 1] = outside[i];
    MALFORMED(bad, KEY_LEN);
    strcpy(bad, key);
    bad[strlen(CTKN_APIKEY_PREFIX)] = outside[i];
    MALFORMED(bad, KEY_LEN);
  }
#undef MALFORMED

  /* len is what counts, not a NUL: the key followed by junk bytes. */
  strcpy(bad, key);
  strcat(bad, "junk");
  assert_int_equal(ctkn_apikeys_find(ks, bad, KEY_LEN, &hit), CTKN_OK);
  ctkn_apikeys_free(ks);
}

static void test_well_formed_unknown_key_is_badkey(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF], other[CTKN_APIKEY_BUF];
  const struct ctkn_apikey *hit;
  ctkn_apikeys *ks;

  create_ok(f->path, "a", R, key);
  ks = load_ok(f->path);
  snprintf(other, sizeof(other), "%s%s", CTKN_APIKEY_PREFIX,
           "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  assert_int_equal(strlen(other), KEY_LEN);
  assert_int_equal(ctkn_apikeys_find(ks, other, KEY_LEN, &hit), CTKN_EBADKEY);
  assert_null(hit);
  /* The real key with one character changed. */
  strcpy(other, key);
  other[KEY_LEN - 1] = other[KEY_LEN - 1] == 'A' ? 'B' : 'A';
  assert_int_equal(ctkn_apikeys_find(ks, other, KEY_LEN, &hit), CTKN_EBADKEY);
  /* An empty set knows no key. */
  assert_int_equal(ctkn_apikey_revoke(f->path, "a", NULL), CTKN_OK);
  ctkn_apikeys_free(ks);
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_count(ks), 0);
  assert_int_equal(ctkn_apikeys_find(ks, key, KEY_LEN, &hit), CTKN_EBADKEY);
  ctkn_apikeys_free(ks);
}

static void test_many_entries_all_found(void **state)
{
  enum { N = 64 };
  struct fx *f = *state;
  static char keys[N][CTKN_APIKEY_BUF];
  const struct ctkn_apikey *hit;
  char name[16];
  ctkn_apikeys *ks;

  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "k%d", i);
    create_ok(f->path, name, i % 2 ? R : R | W, keys[i]);
  }
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_count(ks), N);
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "k%d", i);
    assert_int_equal(ctkn_apikeys_find(ks, keys[i], KEY_LEN, &hit), CTKN_OK);
    assert_string_equal(hit->name, name);
    assert_int_equal(hit->perms, i % 2 ? R : R | W);
  }
  ctkn_apikeys_free(ks);
}

static void test_concurrent_creates_lose_nothing(void **state)
{
  enum { PROCS = 6, EACH = 8 };
  struct fx *f = *state;
  pid_t pids[PROCS];
  ctkn_apikeys *ks;

  for (int p = 0; p < PROCS; p++) {
    pids[p] = fork();
    assert_true(pids[p] >= 0);
    if (pids[p] == 0) {
      char key[CTKN_APIKEY_BUF], name[16];
      for (int i = 0; i < EACH; i++) {
        snprintf(name, sizeof(name), "p%d-%d", p, i);
        if (ctkn_apikey_create(f->path, name, R, key, NULL, NULL) != CTKN_OK)
          _exit(1);
      }
      _exit(0);
    }
  }
  for (int p = 0; p < PROCS; p++) {
    int st;
    assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_count(ks), PROCS * EACH);
  ctkn_apikeys_free(ks);
}

/* ---- load's refusals ---------------------------------------------------- */

static void test_missing_file_is_eio(void **state)
{
  struct fx *f = *state;
  ctkn_apikeys *ks = (void *)&ks;
  struct ctkn_err err;

  assert_int_equal(ctkn_apikeys_load(f->path, &ks, &err), CTKN_EIO);
  assert_null(ks);
  assert_non_null(strstr(err.msg, f->path));
  assert_int_equal(ctkn_apikey_revoke(f->path, "a", &err), CTKN_EIO);
  assert_int_equal(ctkn_apikeys_load("", &ks, &err), CTKN_EINVAL);
  assert_string_equal(err.field, "file");
}

/* A key file must be a regular file of at most CTKN_APIKEY_FILE_MAX
 * bytes: a directory, /dev/zero (once read for 23 GB, then the OOM
 * killer) or a huge file is refused at once, naming the file and the
 * rule. */
static void test_key_file_must_be_a_bounded_regular_file(void **state)
{
  struct fx *f = *state;
  const char *bad[] = {f->dir, "/dev/zero", f->path};
  ctkn_apikeys *ks = (void *)&ks;
  struct ctkn_err err;
  FILE *fp;

  assert_non_null(fp = fopen(f->path, "w"));
  fclose(fp);
  assert_int_equal(truncate(f->path, (off_t)CTKN_APIKEY_FILE_MAX + 1), 0);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int64_t t0 = ctkn__now_ms();
    assert_int_equal(ctkn_apikeys_load(bad[i], &ks, &err), CTKN_EINVAL);
    assert_true(ctkn__now_ms() - t0 < 1000);
    assert_null(ks);
    assert_non_null(strstr(err.msg, bad[i]));
    assert_non_null(strstr(err.msg, i < 2 ? "not a regular file"
                                          : "more than 16777216 bytes"));
  }
  assert_int_equal(unlink(f->path), 0);
}

static void test_empty_file_is_an_empty_set(void **state)
{
  struct fx *f = *state;
  ctkn_apikeys *ks;

  spill(f->path, "");
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_count(ks), 0);
  ctkn_apikeys_free(ks);
}

#define GOOD_HEX "e3b0" GOOD_HEX_TAIL
#define GOOD_HEX_TAIL                                                          \
  "c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define TIME "\"created_at\":\"2026-11-23T10:00:00.000000Z\""
#define GOOD                                                                   \
  "{\"name\":\"good\",\"sha256\":\"" GOOD_HEX "\",\"permissions\":"            \
  "[\"client_token.read\"]," TIME "}\n"
#define PERMS "\"permissions\":[\"client_token.read\"]"

static void test_malformed_lines_are_edecode_with_line_and_field(void **state)
{
  static const struct {
    const char *line;  /* line 2, after a good line 1 */
    const char *field; /* named in err->msg, or NULL */
  } cases[] = {
      {"not json", NULL},
      {"[1,2]", NULL},
      {"\"a string\"", NULL},
      {"", NULL}, /* an empty line */
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX "\"," PERMS "," TIME
       ",\"extra\":1}",
       "extra"},
      {"{\"name\":\"x\",\"name\":\"y\",\"sha256\":\"" GOOD_HEX "\"," PERMS
       "," TIME "}",
       NULL}, /* duplicate key */
      {"{\"sha256\":\"" GOOD_HEX "\"," PERMS "," TIME "}", "name"},
      {"{\"name\":7,\"sha256\":\"" GOOD_HEX "\"," PERMS "," TIME "}", "name"},
      {"{\"name\":\"a b\",\"sha256\":\"" GOOD_HEX "\"," PERMS "," TIME "}",
       "name"},
      {"{\"name\":\"good\",\"sha256\":\"" GOOD_HEX "\"," PERMS "," TIME "}",
       "name"}, /* used twice */
      {"{\"name\":\"x\"," PERMS "," TIME "}", "sha256"},
      {"{\"name\":\"x\",\"sha256\":\"abc\"," PERMS "," TIME "}", "sha256"},
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX "0\"," PERMS "," TIME "}",
       "sha256"},
      {"{\"name\":\"x\",\"sha256\":"
       "\"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\""
       "," PERMS "," TIME "}",
       "sha256"},
      {"{\"name\":\"x\",\"sha256\":"
       "\"g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""
       "," PERMS "," TIME "}",
       "sha256"},
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX "\"," PERMS "," TIME "}",
       "sha256"}, /* same digest as line 1 */
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX "\"," TIME "}", "permissions"},
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX "\",\"permissions\":[]," TIME
       "}",
       "permissions"},
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX
       "\",\"permissions\":\"client_token.read\"," TIME "}",
       "permissions"},
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX
       "\",\"permissions\":[\"client_token.admin\"]," TIME "}",
       "permissions"},
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX
       "\",\"permissions\":[\"client_token.read\",1]," TIME "}",
       "permissions"},
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX "\"," PERMS "}", "created_at"},
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX "\"," PERMS
       ",\"created_at\":\"yesterday\"}",
       "created_at"},
      {"{\"name\":\"x\",\"sha256\":\"" GOOD_HEX "\"," PERMS
       ",\"created_at\":12}",
       "created_at"},
  };
  struct fx *f = *state;
  char text[1024], field[64];

  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    ctkn_apikeys *ks = (void *)&ks;
    struct ctkn_err err;
    int rc;

    snprintf(text, sizeof(text), GOOD "%s\n", cases[i].line);
    spill(f->path, text);
    rc = ctkn_apikeys_load(f->path, &ks, &err);
    if (rc != CTKN_EDECODE)
      fail_msg("case %zu: got %s", i, ctkn_strerror(rc));
    assert_null(ks);
    if (strstr(err.msg, "line 2") == NULL)
      fail_msg("case %zu: no line number in \"%s\"", i, err.msg);
    if (cases[i].field != NULL) {
      snprintf(field, sizeof(field), "\"%s\"", cases[i].field);
      if (strstr(err.msg, field) == NULL)
        fail_msg("case %zu: field %s not in \"%s\"", i, field, err.msg);
    }
    /* create and revoke refuse to rewrite a file they cannot read. */
    char key[CTKN_APIKEY_BUF];
    assert_int_equal(ctkn_apikey_create(f->path, "new", R, key, NULL, NULL),
                     CTKN_EDECODE);
    assert_int_equal(ctkn_apikey_revoke(f->path, "good", NULL), CTKN_EDECODE);
    char *after = slurp(f->path);
    assert_string_equal(after, text);
    free(after);
  }
}

static void test_good_hand_written_file_loads(void **state)
{
  struct fx *f = *state;
  ctkn_apikeys *ks;

  /* Any field order, a repeated permission, a time without fraction, a
   * CRLF line end and no newline at the end are all fine. */
  spill(f->path,
        "{\"name\":\"first\",\"sha256\":\"" GOOD_HEX "\"," PERMS "," TIME
        "}\r\n"
        "{\"created_at\":\"2026-11-23T10:00:00Z\",\"permissions\":"
        "[\"client_token.read\",\"client_token.read\"],\"name\":\"second\","
        "\"sha256\":\"0000" GOOD_HEX_TAIL "\"}");
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_count(ks), 2);
  assert_string_equal(ctkn_apikeys_at(ks, 0)->name, "first");
  assert_string_equal(ctkn_apikeys_at(ks, 1)->name, "second");
  assert_int_equal(ctkn_apikeys_at(ks, 1)->perms, R);
  assert_int_equal(ctkn_apikeys_at(ks, 1)->sha256[0], 0);
  assert_int_equal(ctkn_apikeys_at(ks, 1)->sha256[2], 0xc4);
  assert_string_equal(ctkn_apikeys_at(ks, 1)->created_at,
                      "2026-11-23T10:00:00Z");
  ctkn_apikeys_free(ks);
}

/* notification_setting.*: a write implies its own read, and nothing of
 * client_token.*; both families combine. */
static void test_setting_permissions(void **state)
{
  struct fx *f = *state;
  char key[CTKN_APIKEY_BUF], key2[CTKN_APIKEY_BUF];
  const struct ctkn_apikey *hit;
  struct ctkn_apikey out;
  const char *names[CTKN_PERMS_MAX];
  unsigned bits = 0;
  ctkn_apikeys *ks;
  char *text;

  assert_int_equal(ctkn_perms_parse("notification_setting.read", &bits, NULL),
                   CTKN_OK);
  assert_int_equal(bits, SR);
  assert_int_equal(ctkn_perms_parse("notification_setting.write", &bits, NULL),
                   CTKN_OK);
  assert_int_equal(bits, SR | SW);
  assert_int_equal(ctkn_perms_parse("client_token.read,notification_setting."
                                    "write",
                                    &bits, NULL),
                   CTKN_OK);
  assert_int_equal(bits, R | SR | SW);
  assert_int_equal(ctkn_perms_parse("notification_setting.read,client_token."
                                    "write",
                                    &bits, NULL),
                   CTKN_OK);
  assert_int_equal(bits, R | W | SR);
  /* A name given twice is refused (test_bad_permissions_name_the_field). */
  assert_int_equal(ctkn_perms_parse("notification_setting.read,client_token."
                                    "write,notification_setting.read",
                                    &bits, NULL),
                   CTKN_EINVAL);

  /* Names in a fixed order, each write with its read. */
  assert_int_equal(ctkn_perms_names(R | W | SR | SW, names, CTKN_PERMS_MAX), 4);
  assert_string_equal(names[0], "client_token.read");
  assert_string_equal(names[1], "client_token.write");
  assert_string_equal(names[2], "notification_setting.read");
  assert_string_equal(names[3], "notification_setting.write");
  assert_int_equal(ctkn_perms_names(SW, names, CTKN_PERMS_MAX), 2);
  assert_string_equal(names[0], "notification_setting.read");
  assert_string_equal(names[1], "notification_setting.write");
  assert_int_equal(ctkn_perms_names(R | SR, names, CTKN_PERMS_MAX), 2);
  assert_string_equal(names[0], "client_token.read");
  assert_string_equal(names[1], "notification_setting.read");
  assert_int_equal(ctkn_perms_names(R | W | SR | SW, names, 3), 3);

  /* Created, stored and loaded with the read implied. */
  assert_int_equal(ctkn_apikey_create(f->path, "s", SW, key, &out, NULL),
                   CTKN_OK);
  assert_int_equal(out.perms, SR | SW);
  assert_int_equal(
      ctkn_apikey_create(f->path, "both", R | SW, key2, &out, NULL), CTKN_OK);
  assert_int_equal(out.perms, R | SR | SW);
  text = slurp(f->path);
  assert_non_null(strstr(text, "\"permissions\":[\"notification_setting.read\","
                               "\"notification_setting.write\"]"));
  assert_non_null(strstr(text, "\"permissions\":[\"client_token.read\","
                               "\"notification_setting.read\","
                               "\"notification_setting.write\"]"));
  free(text);
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_find(ks, key, strlen(key), &hit), CTKN_OK);
  assert_int_equal(hit->perms, SR | SW);
  assert_int_equal(ctkn_apikeys_find(ks, key2, strlen(key2), &hit), CTKN_OK);
  assert_int_equal(hit->perms, R | SR | SW);
  ctkn_apikeys_free(ks);

  /* A hand-written line granting a setting write alone loads with its
   * read; an older file with only client_token.* still loads as it was. */
  spill(f->path, "{\"name\":\"h\",\"sha256\":\"" GOOD_HEX "\","
                 "\"permissions\":[\"notification_setting.write\"],"
                 "\"created_at\":\"2026-11-23T10:00:00.000000Z\"}\n"
                 "{\"name\":\"old\",\"sha256\":\"0000" GOOD_HEX_TAIL "\","
                 "\"permissions\":[\"client_token.read\","
                 "\"client_token.write\"],"
                 "\"created_at\":\"2026-11-23T10:00:00.000000Z\"}\n");
  ks = load_ok(f->path);
  assert_int_equal(ctkn_apikeys_at(ks, 0)->perms, SR | SW);
  assert_int_equal(ctkn_apikeys_at(ks, 1)->perms, R | W);
  ctkn_apikeys_free(ks);
}

/* ---- the CLI's documents (codec.h) -------------------------------------- */

static void test_json_created_holds_name_key_and_permissions(void **state)
{
  struct ctkn_apikey k = {.name = "backend", .perms = R | W};
  char *s;

  (void)state;
  s = ctkn_json_apikey_created(&k, "ctkn_apikey_xyz");
  assert_non_null(s);
  assert_string_equal(s, "{\"data\":{\"name\":\"backend\",\"key\":"
                         "\"ctkn_apikey_xyz\",\"permissions\":"
                         "[\"client_token.read\",\"client_token.write\"]}}");
  free(s);
}

static void test_json_list_never_holds_keys_or_hashes(void **state)
{
  struct fx *f = *state;
  char a[CTKN_APIKEY_BUF], b[CTKN_APIKEY_BUF], want[512], hex[65];
  ctkn_apikeys *ks;
  char *s;

  create_ok(f->path, "a", R, a);
  create_ok(f->path, "b", W, b);
  ks = load_ok(f->path);
  s = ctkn_json_apikey_list(ks);
  assert_non_null(s);
  snprintf(want, sizeof(want),
           "{\"data\":[{\"name\":\"a\",\"permissions\":[\"client_token.read\"],"
           "\"created_at\":\"%s\"},{\"name\":\"b\",\"permissions\":"
           "[\"client_token.read\",\"client_token.write\"],"
           "\"created_at\":\"%s\"}]}",
           ctkn_apikeys_at(ks, 0)->created_at,
           ctkn_apikeys_at(ks, 1)->created_at);
  assert_string_equal(s, want);
  assert_null(strstr(s, a));
  ctkn_hex(ctkn_apikeys_at(ks, 0)->sha256, 32, hex);
  assert_null(strstr(s, hex));
  free(s);
  ctkn_apikeys_free(ks);

  /* An empty set is an empty list. */
  s = ctkn_json_apikey_list(NULL);
  assert_string_equal(s, "{\"data\":[]}");
  free(s);
}

static void test_json_revoked(void **state)
{
  char *s;

  (void)state;
  s = ctkn_json_apikey_revoked("backend");
  assert_string_equal(s, "{\"data\":{\"name\":\"backend\",\"revoked\":true}}");
  free(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
      T(test_create_load_find_round_trip),
      T(test_keys_are_different_each_time),
      T(test_write_implies_read),
      T(test_file_holds_the_hash_never_the_key),
      T(test_file_mode_is_0600_whatever_the_umask),
      T(test_rewrite_leaves_no_temporary_file),
      T(test_revoke_removes_only_that_entry),
      T(test_revoke_unknown_name_is_notfound),
      T(test_duplicate_name_is_conflict),
      T(test_bad_names_name_the_field),
      T(test_bad_permissions_name_the_field),
      T(test_setting_permissions),
      T(test_malformed_keys_are_authmalformed),
      T(test_well_formed_unknown_key_is_badkey),
      T(test_many_entries_all_found),
      T(test_concurrent_creates_lose_nothing),
      T(test_missing_file_is_eio),
      T(test_key_file_must_be_a_bounded_regular_file),
      T(test_empty_file_is_an_empty_set),
      T(test_malformed_lines_are_edecode_with_line_and_field),
      T(test_good_hand_written_file_loads),
      T(test_json_created_holds_name_key_and_permissions),
      T(test_json_list_never_holds_keys_or_hashes),
      T(test_json_revoked),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
