/*
 * apikey.c - the API-key file (apikey.h): generating keys, and reading and
 * rewriting the file of their hashes. The entries and the lookup are
 * keyset.c's; each line's JSON is the codec's (codec/apikey.c).
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
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctkn/apikey.h"
#include "ctkn/codec.h"
#include "ctkn/crypto.h"
#include "ctkn/token.h"
#include "internal.h"

#define KEY_RAW     32 /* random bytes in a key */
#define KEY_B64_LEN 43 /* base64url of 32 bytes, unpadded */
#define KEY_LEN     CTKN_APIKEY_LEN
#define PATH_SHOW   120 /* bytes of a path quoted in err->msg */

/* ---- arguments -------------------------------------------------------- */

static int check_name(const char *name, struct ctkn_err *err)
{
  return ctkn_apikey_name_check(name ? name : "", name ? strlen(name) : 0, err);
}

static int check_path(const char *path, struct ctkn_err *err)
{
  if (path == NULL || *path == '\0')
    return ctkn__err_field(err, CTKN_EINVAL, "file",
                           "the key file's path is required");
  return CTKN_OK;
}

/* The entry named name in ks, and its index in *at (may be NULL). */
static const struct ctkn_apikey *by_name(const ctkn_apikeys *ks,
                                         const char *name, size_t *at)
{
  for (size_t i = 0; i < ctkn_apikeys_count(ks); i++) {
    const struct ctkn_apikey *k = ctkn_apikeys_at(ks, i);
    if (strcmp(k->name, name) == 0) {
      if (at != NULL)
        *at = i;
      return k;
    }
  }
  return NULL;
}

/* ---- reading the file ------------------------------------------------- */

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

/* One line of the key file into *k (the codec's rules), its errors
 * placed at path:line. */
static int parse_line(const char *path, size_t lineno, const char *s,
                      size_t len, struct ctkn_apikey *k, struct ctkn_err *err)
{
  struct ctkn_err e;

  if (ctkn_json_parse_apikey_line(s, len, k, &e) == CTKN_OK)
    return CTKN_OK;
  return bad_line(err, path, lineno, e.field[0] != '\0' ? e.field : NULL, "%s",
                  e.msg);
}

/* Add line lineno (len bytes at s) of path to ks: it parses, and neither
 * its name nor its digest is in ks already. */
static int add_line(ctkn_apikeys *ks, const char *path, size_t lineno,
                    const char *s, size_t len, struct ctkn_err *err)
{
  struct ctkn_apikey k;
  int rc = parse_line(path, lineno, s, len, &k, err);

  if (rc == CTKN_OK && by_name(ks, k.name, NULL) != NULL)
    rc = bad_line(err, path, lineno, "name", "\"%s\" is used twice", k.name);
  for (size_t i = 0; rc == CTKN_OK && i < ctkn_apikeys_count(ks); i++) {
    const struct ctkn_apikey *o = ctkn_apikeys_at(ks, i);
    if (memcmp(o->sha256, k.sha256, sizeof(k.sha256)) == 0)
      rc = bad_line(err, path, lineno, "sha256",
                    "same digest as the key named \"%s\"", o->name);
  }
  if (rc == CTKN_OK && ctkn__apikeys_add(ks, &k) != CTKN_OK)
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory loading API keys");
  return rc;
}

/*
 * Read path into a new set. A missing file is an empty set when
 * missing_ok (the writers create it), CTKN_EIO otherwise.
 */
static int load(const char *path, bool missing_ok, ctkn_apikeys **out,
                struct ctkn_err *err)
{
  ctkn_apikeys *ks = ctkn__apikeys_new();
  struct ctkn__buf buf = CTKN__BUF_INIT;
  struct ctkn__file_rules rules = {.what = "API key file",
                                   .field = "file",
                                   .max = CTKN_APIKEY_FILE_MAX,
                                   .open_code = CTKN_EIO};
  size_t lineno = 0;
  int rc;

  *out = NULL;
  if (ks == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory loading API keys");
  rules.missing_ok = missing_ok;
  rc = ctkn__file_read(path, &rules, &buf, err);
  for (size_t at = 0; rc == CTKN_OK && at < buf.len; lineno++) {
    const char *nl = memchr(buf.data + at, '\n', buf.len - at);
    size_t end = nl != NULL ? (size_t)(nl - buf.data) : buf.len;

    rc = add_line(ks, path, lineno + 1, buf.data + at, end - at, err);
    at = end + 1;
  }
  ctkn__buf_free(&buf);
  if (rc != CTKN_OK) {
    ctkn_apikeys_free(ks);
    return rc;
  }
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
  for (size_t i = 0; i < ctkn_apikeys_count(ks); i++) {
    char *line = ctkn_json_apikey_line(ctkn_apikeys_at(ks, i));
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
  if (perms == 0 || (perms & ~(unsigned)CTKN_PERMS_ALL) != 0)
    return ctkn__err_field(err, CTKN_EINVAL, "permissions",
                           "must grant one or more of " CTKN_PERMS_LIST
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
  k.perms = ctkn_perms_with_reads(perms);
  if ((rc = ctkn_time_format(ctkn_now_us(), k.created_at)) != CTKN_OK) {
    rc = ctkn__err(err, CTKN_EINTERNAL, "the clock is outside 1970-9999");
    goto out;
  }
  if ((rc = generate(key)) != CTKN_OK) {
    rc = ctkn__err(err, rc, "the kernel's random source failed");
    goto out;
  }
  ctkn_sha256_once(key, KEY_LEN, k.sha256);
  if (ctkn__apikeys_add(ks, &k) != CTKN_OK) {
    rc = ctkn__err(err, CTKN_ENOMEM, "out of memory loading API keys");
    goto out;
  }
  if ((rc = store(path, ks, err)) != CTKN_OK)
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
  ctkn__apikeys_remove(ks, at);
  rc = store(path, ks, err);
out:
  ctkn_apikeys_free(ks);
  close(lfd);
  return rc;
}
