/*
 * apikey.c - API keys: generation, the key file (JSON lines of hashes) and
 * the constant-time lookup.
 *
 * The key file is rewritten whole on every change: a temporary file beside
 * it (PATH.tmp), written, fsync'd, renamed over PATH, then the directory
 * fsync'd, so a reader sees the old file or the new one and a crash leaves
 * no half-written key file. Writers serialise on flock(PATH.lock), a
 * separate file: the key file itself is replaced by each rename, so a lock
 * on it would guard an inode that the next writer no longer opens. The
 * lock file is never removed, for the same reason.
 *
 * Only SHA-256 digests are stored. A key carries 256 random bits, so a
 * salted or slow hash would buy nothing: there is no dictionary to attack,
 * and the lookup stays one hash per request.
 *
 * Key material never reaches err->msg or any output of this module other
 * than ctkn_apikey_create()'s key argument.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctkn/apikey.h"
#include "ctkn/crypto.h"
#include "ctkn/token.h"
#include "internal.h"

#define KEY_RAW     32 /* random bytes in a key */
#define KEY_B64_LEN 43 /* base64url of 32 bytes, unpadded */
#define KEY_LEN     (sizeof(CTKN_APIKEY_PREFIX) - 1 + KEY_B64_LEN)
#define PERM_READ   "client_token.read"
#define PERM_WRITE  "client_token.write"
#define PERM_SREAD  "notification_setting.read"
#define PERM_SWRITE "notification_setting.write"
#define PERM_LIST   PERM_READ ", " PERM_WRITE ", " PERM_SREAD ", " PERM_SWRITE
#define PERM_ALL                                                               \
  (CTKN_PERM_TOKEN_READ | CTKN_PERM_TOKEN_WRITE | CTKN_PERM_SETTING_READ |     \
   CTKN_PERM_SETTING_WRITE)
#define PATH_SHOW 120 /* bytes of a path quoted in err->msg */

struct ctkn_apikeys {
  struct ctkn_apikey *v;
  size_t n, cap;
};

/* ---- permissions and names ------------------------------------------ */

/* Every permission, in the order ctkn_perms_names() lists them: its own
 * bit, and the bits it grants (a write's include its read). */
static const struct {
  const char *name;
  unsigned own, bits;
} perms_table[] = {
    {PERM_READ, CTKN_PERM_TOKEN_READ, CTKN_PERM_TOKEN_READ},
    {PERM_WRITE, CTKN_PERM_TOKEN_WRITE,
     CTKN_PERM_TOKEN_READ | CTKN_PERM_TOKEN_WRITE},
    {PERM_SREAD, CTKN_PERM_SETTING_READ, CTKN_PERM_SETTING_READ},
    {PERM_SWRITE, CTKN_PERM_SETTING_WRITE,
     CTKN_PERM_SETTING_READ | CTKN_PERM_SETTING_WRITE},
};
_Static_assert(CTKN__ARRAY_LEN(perms_table) == CTKN_PERMS_MAX,
               "CTKN_PERMS_MAX counts the permissions");

/* perms with every write's read added. */
static unsigned with_reads(unsigned perms)
{
  if (perms & CTKN_PERM_TOKEN_WRITE)
    perms |= CTKN_PERM_TOKEN_READ;
  if (perms & CTKN_PERM_SETTING_WRITE)
    perms |= CTKN_PERM_SETTING_READ;
  return perms;
}

/* One permission name to its bits; write implies read. 0 when unknown. */
static unsigned perm_bit(const char *s, size_t len)
{
  for (size_t i = 0; i < CTKN__ARRAY_LEN(perms_table); i++) {
    if (strlen(perms_table[i].name) == len &&
        memcmp(s, perms_table[i].name, len) == 0)
      return perms_table[i].bits;
  }
  return 0;
}

int ctkn_perms_parse(const char *s, unsigned *perms, struct ctkn_err *err)
{
  unsigned bits = 0;
  const char *p = s;

  *perms = 0;
  if (s == NULL || *s == '\0')
    return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                           "must list at least one of " PERM_LIST);
  for (;;) {
    size_t len = strcspn(p, ",");
    unsigned bit = perm_bit(p, len);

    if (len == 0)
      return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                             "must not have an empty item");
    if (bit == 0)
      return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                             "unknown permission \"%.*s\" (accepted: "
                             "" PERM_LIST ")",
                             len > 64 ? 64 : (int)len, p);
    bits |= bit;
    if (p[len] == '\0')
      break;
    p += len + 1;
  }
  *perms = bits;
  return CTKN_OK;
}

size_t ctkn_perms_names(unsigned perms, const char **names, size_t cap)
{
  size_t n = 0;

  /* Write implies read, also for bits a caller set by hand. */
  perms = with_reads(perms);
  for (size_t i = 0; i < CTKN__ARRAY_LEN(perms_table) && n < cap; i++) {
    if (perms & perms_table[i].own)
      names[n++] = perms_table[i].name;
  }
  return n;
}

/* [A-Za-z0-9._-], 1..CTKN_APIKEY_NAME_MAX bytes; the rule in words for a
 * message on failure (NULL when the name is good). */
static const char *name_rule(const char *s, size_t len)
{
  if (len < 1 || len > CTKN_APIKEY_NAME_MAX)
    return "must be 1-64 characters long";
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return "may only contain A-Z, a-z, 0-9, '.', '_' and '-'";
  }
  return NULL;
}

static int check_name(const char *name, struct ctkn_err *err)
{
  const char *why = name_rule(name ? name : "", name ? strlen(name) : 0);

  if (why != NULL)
    return ctkn__err_field(err, CTKN_EINVAL, "name", "%s", why);
  return CTKN_OK;
}

static int check_path(const char *path, struct ctkn_err *err)
{
  if (path == NULL || *path == '\0')
    return ctkn__err_field(err, CTKN_EINVAL, "file",
                           "the key file's path is required");
  return CTKN_OK;
}

/* ---- the key set ------------------------------------------------------ */

void ctkn_apikeys_free(ctkn_apikeys *ks)
{
  if (ks == NULL)
    return;
  free(ks->v);
  free(ks);
}

size_t ctkn_apikeys_count(const ctkn_apikeys *ks)
{
  return ks != NULL ? ks->n : 0;
}

const struct ctkn_apikey *ctkn_apikeys_at(const ctkn_apikeys *ks, size_t i)
{
  return ks != NULL && i < ks->n ? &ks->v[i] : NULL;
}

static int push(ctkn_apikeys *ks, const struct ctkn_apikey *k,
                struct ctkn_err *err)
{
  if (ks->n == ks->cap) {
    size_t cap = ks->cap ? 2 * ks->cap : 16;
    struct ctkn_apikey *v = realloc(ks->v, cap * sizeof(*v));
    if (v == NULL)
      return ctkn__err(err, CTKN_ENOMEM, "out of memory loading API keys");
    ks->v = v;
    ks->cap = cap;
  }
  ks->v[ks->n++] = *k;
  return CTKN_OK;
}

static const struct ctkn_apikey *by_name(const ctkn_apikeys *ks,
                                         const char *name, size_t *at)
{
  for (size_t i = 0; i < ks->n; i++) {
    if (strcmp(ks->v[i].name, name) == 0) {
      if (at != NULL)
        *at = i;
      return &ks->v[i];
    }
  }
  return NULL;
}

/* ---- reading the file ------------------------------------------------- */

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1; /* uppercase is refused: the writer emits lowercase only */
}

CTKN__PRINTF(5, 6)
static int bad_line(struct ctkn_err *err, const char *path, size_t line,
                    const char *field, const char *fmt, ...)
{
  char why[160];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  if (field != NULL)
    return ctkn__err(err, CTKN_EDECODE, "%.*s line %zu: field \"%s\": %s",
                     PATH_SHOW, path, line, field, why);
  return ctkn__err(err, CTKN_EDECODE, "%.*s line %zu: %s", PATH_SHOW, path,
                   line, why);
}

/* One line of the key file into *k. Every field is required, none other is
 * allowed (a typo must not silently drop a permission). */
static int parse_line(const char *path, size_t lineno, const char *s,
                      size_t len, struct ctkn_apikey *k, struct ctkn_err *err)
{
  json_error_t je;
  json_t *root, *v;
  const char *key, *str;
  size_t n;
  int rc = CTKN_OK;

  memset(k, 0, sizeof(*k));
  if (len == 0)
    return bad_line(err, path, lineno, NULL, "empty line");
  root = json_loadb(s, len, JSON_REJECT_DUPLICATES, &je);
  if (root == NULL)
    return bad_line(err, path, lineno, NULL, "invalid JSON at column %d: %s",
                    je.column, je.text);
  if (!json_is_object(root)) {
    json_decref(root);
    return bad_line(err, path, lineno, NULL, "must be a JSON object");
  }
  json_object_foreach(root, key, v)
  {
    if (strcmp(key, "name") != 0 && strcmp(key, "sha256") != 0 &&
        strcmp(key, "permissions") != 0 && strcmp(key, "created_at") != 0) {
      rc = bad_line(err, path, lineno, NULL,
                    "unknown field \"%.40s\" (accepted: name, sha256, "
                    "permissions, created_at)",
                    key);
      goto out;
    }
  }

  v = json_object_get(root, "name");
  if (!json_is_string(v)) {
    rc = bad_line(err, path, lineno, "name", "must be a string");
    goto out;
  }
  str = json_string_value(v);
  n = json_string_length(v);
  const char *why = name_rule(str, n);
  if (why != NULL) {
    rc = bad_line(err, path, lineno, "name", "%s", why);
    goto out;
  }
  memcpy(k->name, str, n);
  k->name[n] = '\0';

  v = json_object_get(root, "sha256");
  if (!json_is_string(v) || json_string_length(v) != 2 * sizeof(k->sha256)) {
    rc = bad_line(err, path, lineno, "sha256",
                  "must be a string of 64 lowercase hex digits");
    goto out;
  }
  str = json_string_value(v);
  for (size_t i = 0; i < sizeof(k->sha256); i++) {
    int hi = hexval(str[2 * i]), lo = hexval(str[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      rc = bad_line(err, path, lineno, "sha256",
                    "must be a string of 64 lowercase hex digits");
      goto out;
    }
    k->sha256[i] = (uint8_t)(hi << 4 | lo);
  }

  v = json_object_get(root, "permissions");
  if (!json_is_array(v) || json_array_size(v) == 0) {
    rc = bad_line(err, path, lineno, "permissions",
                  "must be a non-empty array of permission names");
    goto out;
  }
  for (size_t i = 0; i < json_array_size(v); i++) {
    json_t *p = json_array_get(v, i);
    unsigned bit = json_is_string(p)
                       ? perm_bit(json_string_value(p), json_string_length(p))
                       : 0;
    if (bit == 0) {
      rc = bad_line(err, path, lineno, "permissions",
                    "item %zu is not one of " PERM_LIST, i);
      goto out;
    }
    k->perms |= bit;
  }

  v = json_object_get(root, "created_at");
  int64_t us;
  if (!json_is_string(v) || json_string_length(v) >= sizeof(k->created_at) ||
      ctkn_time_parse(json_string_value(v), &us, NULL) != CTKN_OK) {
    rc = bad_line(err, path, lineno, "created_at",
                  "must be an RFC 3339 date-time string");
    goto out;
  }
  ctkn__strlcpy(k->created_at, json_string_value(v), sizeof(k->created_at));

out:
  json_decref(root);
  return rc;
}

/* The whole of fd into a new NUL-terminated buffer. */
static int slurp(int fd, const char *path, char **out, size_t *len,
                 struct ctkn_err *err)
{
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);

  if (buf == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory reading API keys");
  for (;;) {
    if (n + 1 == cap) {
      char *b = realloc(buf, cap * 2);
      if (b == NULL) {
        free(buf);
        return ctkn__err(err, CTKN_ENOMEM, "out of memory reading API keys");
      }
      buf = b;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - 1 - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      return ctkn__err(err, CTKN_EIO, "%.*s: read: %s", PATH_SHOW, path,
                       strerror(e));
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return CTKN_OK;
}

/*
 * Read path into a new set. A missing file is an empty set when
 * missing_ok (the writers create it), CTKN_EIO otherwise.
 */
static int load(const char *path, bool missing_ok, ctkn_apikeys **out,
                struct ctkn_err *err)
{
  ctkn_apikeys *ks = calloc(1, sizeof(*ks));
  char *buf = NULL;
  size_t len = 0, lineno = 0;
  int fd, rc;

  *out = NULL;
  if (ks == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory loading API keys");
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT && missing_ok) {
      *out = ks;
      return CTKN_OK;
    }
    free(ks);
    return ctkn__err(err, CTKN_EIO, "%.*s: %s", PATH_SHOW, path, strerror(e));
  }
  rc = slurp(fd, path, &buf, &len, err);
  close(fd);
  if (rc != CTKN_OK) {
    free(ks);
    return rc;
  }
  for (size_t at = 0; at < len;) {
    const char *nl = memchr(buf + at, '\n', len - at);
    size_t end = nl != NULL ? (size_t)(nl - buf) : len;
    struct ctkn_apikey k;

    lineno++;
    rc = parse_line(path, lineno, buf + at, end - at, &k, err);
    if (rc == CTKN_OK && by_name(ks, k.name, NULL) != NULL)
      rc = bad_line(err, path, lineno, "name", "\"%s\" is used twice", k.name);
    for (size_t i = 0; rc == CTKN_OK && i < ks->n; i++)
      if (memcmp(ks->v[i].sha256, k.sha256, sizeof(k.sha256)) == 0)
        rc = bad_line(err, path, lineno, "sha256",
                      "same digest as the key named \"%s\"", ks->v[i].name);
    if (rc == CTKN_OK)
      rc = push(ks, &k, err);
    if (rc != CTKN_OK) {
      free(buf);
      ctkn_apikeys_free(ks);
      return rc;
    }
    at = end + 1;
  }
  free(buf);
  *out = ks;
  return CTKN_OK;
}

int ctkn_apikeys_load(const char *path, ctkn_apikeys **out,
                      struct ctkn_err *err)
{
  int rc;

  *out = NULL;
  if ((rc = check_path(path, err)) != CTKN_OK)
    return rc;
  return load(path, false, out, err);
}

/* ---- writing the file ------------------------------------------------- */

/* One entry as its line, without the newline. NULL when out of memory. */
static char *render_line(const struct ctkn_apikey *k)
{
  char hex[2 * sizeof(k->sha256) + 1];
  const char *names[CTKN_PERMS_MAX];
  size_t n = ctkn_perms_names(k->perms, names, CTKN_PERMS_MAX);
  json_t *o = json_object(), *perms = json_array();
  int rc = 0;
  char *s;

  if (o == NULL || perms == NULL) {
    json_decref(o);
    json_decref(perms);
    return NULL;
  }
  ctkn_hex(k->sha256, sizeof(k->sha256), hex);
  for (size_t i = 0; i < n; i++)
    rc |= json_array_append_new(perms, json_string(names[i]));
  rc |= json_object_set_new(o, "name", json_string(k->name));
  rc |= json_object_set_new(o, "sha256", json_string(hex));
  rc |= json_object_set_new(o, "permissions", perms);
  rc |= json_object_set_new(o, "created_at", json_string(k->created_at));
  s = rc == 0 ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  return s;
}

static int write_all(int fd, const char *s, size_t len)
{
  while (len > 0) {
    ssize_t w = write(fd, s, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    s += w;
    len -= (size_t)w;
  }
  return 0;
}

/* The directory holding path ("." for a bare name), opened for fsync. */
static int open_dir_of(const char *path)
{
  const char *slash = strrchr(path, '/');
  char *dir;
  int fd;

  if (slash == NULL)
    return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (slash == path)
    return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if ((dir = strndup(path, (size_t)(slash - path))) == NULL) {
    errno = ENOMEM;
    return -1;
  }
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  return fd;
}

/* Replace path with the set, atomically, mode 0600. Called under the
 * lock, which is why a fixed temporary name is safe. */
static int store(const char *path, const ctkn_apikeys *ks, struct ctkn_err *err)
{
  char *tmp = ctkn__suffixed(path, ".tmp");
  const char *what = "open";
  int fd = -1, dfd = -1, e = 0, rc = CTKN_OK;

  if (tmp == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory writing API keys");
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    goto fail;
  /* A leftover temporary file keeps its old mode through O_CREAT. */
  what = "fchmod";
  if (fchmod(fd, 0600) != 0)
    goto fail;
  what = "write";
  for (size_t i = 0; i < ks->n; i++) {
    char *line = render_line(&ks->v[i]);
    if (line == NULL) {
      rc = ctkn__err(err, CTKN_ENOMEM, "out of memory writing API keys");
      goto out;
    }
    int w = write_all(fd, line, strlen(line));
    if (w == 0)
      w = write_all(fd, "\n", 1);
    e = errno; /* free() may not keep it */
    free(line);
    errno = e;
    if (w != 0)
      goto fail;
  }
  what = "fsync";
  if (fsync(fd) != 0)
    goto fail;
  what = "close";
  e = close(fd);
  fd = -1;
  if (e != 0)
    goto fail;
  what = "rename";
  if (rename(tmp, path) != 0)
    goto fail;
  /* The rename is durable once the directory entry is. If that fsync
   * fails the new file is in place but may not survive a crash: report it,
   * and a create's caller never sees the key (its entry is then unusable
   * until revoked). */
  if ((dfd = open_dir_of(path)) < 0 || fsync(dfd) != 0) {
    e = errno;
    rc = ctkn__err(err, CTKN_EIO, "%.*s: fsync of its directory: %s", PATH_SHOW,
                   path, strerror(e));
  }
  goto out_renamed;

fail:
  e = errno;
  rc = ctkn__err(err, CTKN_EIO, "%.*s: %s: %s", PATH_SHOW, tmp, what,
                 strerror(e));
out:
  if (fd >= 0)
    close(fd);
  unlink(tmp);
out_renamed:
  if (dfd >= 0)
    close(dfd);
  free(tmp);
  return rc;
}

/* flock(PATH.lock), exclusive, blocking: one writer at a time. Returns the
 * descriptor to close (which unlocks) or a negative CTKN_E* code. */
static int lock(const char *path, struct ctkn_err *err)
{
  char *lk = ctkn__suffixed(path, ".lock");
  int fd, e;

  if (lk == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory locking API keys");
  fd = open(lk, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    e = errno;
    ctkn__err(err, CTKN_EIO, "%.*s: %s", PATH_SHOW, lk, strerror(e));
    free(lk);
    return CTKN_EIO;
  }
  while (flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR)
      continue;
    e = errno;
    close(fd);
    ctkn__err(err, CTKN_EIO, "%.*s: flock: %s", PATH_SHOW, lk, strerror(e));
    free(lk);
    return CTKN_EIO;
  }
  free(lk);
  return fd;
}

/* ---- create, revoke, find --------------------------------------------- */

/* 32 random bytes as prefix + unpadded base64url: 55 characters. */
static int generate(char key[CTKN_APIKEY_BUF])
{
  uint8_t raw[KEY_RAW];
  char b64[4 * ((KEY_RAW + 2) / 3) + 1];
  size_t plen = sizeof(CTKN_APIKEY_PREFIX) - 1;
  int rc;

  _Static_assert(KEY_LEN < CTKN_APIKEY_BUF, "a key fits CTKN_APIKEY_BUF");
  if ((rc = ctkn_random(raw, sizeof(raw))) != CTKN_OK)
    return rc;
  ctkn_base64(raw, sizeof(raw), b64);
  for (size_t i = 0; i < KEY_B64_LEN; i++)
    b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
  memcpy(key, CTKN_APIKEY_PREFIX, plen);
  memcpy(key + plen, b64, KEY_B64_LEN);
  key[KEY_LEN] = '\0';
  ctkn_wipe(raw, sizeof(raw));
  ctkn_wipe(b64, sizeof(b64));
  return CTKN_OK;
}

int ctkn_apikey_create(const char *path, const char *name, unsigned perms,
                       char key[CTKN_APIKEY_BUF], struct ctkn_apikey *out,
                       struct ctkn_err *err)
{
  struct ctkn_apikey k;
  ctkn_apikeys *ks = NULL;
  int lfd, rc;

  key[0] = '\0';
  if ((rc = check_path(path, err)) != CTKN_OK ||
      (rc = check_name(name, err)) != CTKN_OK)
    return rc;
  if (perms == 0 || (perms & ~(unsigned)PERM_ALL) != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                           "must grant one or more of " PERM_LIST
                           ", and nothing else");
  if ((lfd = lock(path, err)) < 0)
    return lfd;
  if ((rc = load(path, true, &ks, err)) != CTKN_OK)
    goto out;
  if (by_name(ks, name, NULL) != NULL) {
    rc = ctkn__err(err, CTKN_ECONFLICT,
                   "an API key named \"%s\" already exists", name);
    goto out;
  }
  memset(&k, 0, sizeof(k));
  ctkn__strlcpy(k.name, name, sizeof(k.name));
  k.perms = with_reads(perms);
  if ((rc = ctkn_time_format(ctkn_now_us(), k.created_at)) != CTKN_OK) {
    rc = ctkn__err(err, CTKN_EINTERNAL, "the clock is outside 1970-9999");
    goto out;
  }
  if ((rc = generate(key)) != CTKN_OK) {
    rc = ctkn__err(err, rc, "the kernel's random source failed");
    goto out;
  }
  ctkn_sha256_once(key, KEY_LEN, k.sha256);
  if ((rc = push(ks, &k, err)) != CTKN_OK ||
      (rc = store(path, ks, err)) != CTKN_OK)
    goto out;
  if (out != NULL)
    *out = k;
out:
  if (rc != CTKN_OK)
    ctkn_wipe(key, CTKN_APIKEY_BUF);
  ctkn_apikeys_free(ks);
  close(lfd);
  return rc;
}

int ctkn_apikey_revoke(const char *path, const char *name, struct ctkn_err *err)
{
  ctkn_apikeys *ks = NULL;
  size_t at;
  int lfd, rc;

  if ((rc = check_path(path, err)) != CTKN_OK ||
      (rc = check_name(name, err)) != CTKN_OK)
    return rc;
  if ((lfd = lock(path, err)) < 0)
    return lfd;
  if ((rc = load(path, false, &ks, err)) != CTKN_OK)
    goto out;
  if (by_name(ks, name, &at) == NULL) {
    rc = ctkn__err(err, CTKN_ENOTFOUND, "no API key is named \"%s\"", name);
    goto out;
  }
  memmove(&ks->v[at], &ks->v[at + 1], (ks->n - at - 1) * sizeof(*ks->v));
  ks->n--;
  rc = store(path, ks, err);
out:
  ctkn_apikeys_free(ks);
  close(lfd);
  return rc;
}

/* Shaped like a key: the prefix, then exactly 43 base64url characters.
 * The shape is public, so this check need not be constant-time. */
static bool well_formed(const char *key, size_t len)
{
  size_t plen = sizeof(CTKN_APIKEY_PREFIX) - 1;

  if (key == NULL || len != KEY_LEN ||
      memcmp(key, CTKN_APIKEY_PREFIX, plen) != 0)
    return false;
  for (size_t i = plen; i < len; i++) {
    char c = key[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  }
  return true;
}

int ctkn_apikeys_find(const ctkn_apikeys *ks, const char *key, size_t len,
                      const struct ctkn_apikey **out)
{
  uint8_t d[CTKN_SHA256_LEN];
  size_t idx = 0, hit = 0;

  *out = NULL;
  if (!well_formed(key, len))
    return CTKN_EAUTHMALFORMED;
  ctkn_sha256_once(key, len, d);
  /* Every entry is compared and the first match is selected with masks,
   * so the time taken does not depend on where, or whether, the key is in
   * the set. (Comparing digests already hides the key itself; this also
   * hides which entry it is.) */
  for (size_t i = 0; ks != NULL && i < ks->n; i++) {
    size_t eq = (size_t)ctkn_ct_equal(d, ks->v[i].sha256, sizeof(d));
    size_t take = (size_t)0 - (eq & (hit ^ 1));
    idx = (idx & ~take) | (i & take);
    hit |= eq;
  }
  ctkn_wipe(d, sizeof(d));
  if (!hit)
    return CTKN_EBADKEY;
  *out = &ks->v[idx];
  return CTKN_OK;
}
