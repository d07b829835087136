/*
 * unsynced.c - a long catch-up's unsynced commits and their markers.
 *
 * A long catch-up may commit with MDB_NOSYNC and flush once at its end
 * (ctkn__store_unsynced_begin/end). A process that dies meanwhile loses
 * nothing: its commits are in the page cache, which every process shares.
 * A system crash is another matter: without the fsyncs LMDB's pages may
 * reach the disk in any order, so the projection may be damaged, not just
 * behind. So the catch-up first leaves a marker, "unsynced.<pid>" holding
 * the boot ID, made durable before the first unsynced commit, flock'ed
 * while its owner lives, and removed after the final flush. Opening finds
 * markers left behind: one written under another boot ID means the system
 * went down mid-catch-up, and the projection is refused; one of this boot
 * whose owner is gone only needs the flush it missed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "store/store_int.h"

#define UNSYNCED_PREFIX "unsynced."

static int boot_id(char out[64])
{
  int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, out, 63);

  if (fd >= 0)
    close(fd);
  if (n <= 0)
    return -1;
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
    n--;
  out[n] = '\0';
  return 0;
}

static int sync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = fd < 0 ? -1 : fsync(fd);

  if (fd >= 0)
    close(fd);
  return rc;
}

static char *marker_path(const char *dir, const char *name)
{
  size_t n = strlen(dir) + strlen(name) + 2;
  char *path = malloc(n);

  if (path != NULL)
    snprintf(path, n, "%s/%s", dir, name);
  return path;
}

/* One marker found at open, at path and open as fd. */
static int check_marker(ctkn_store *st, const char *dir, const char *name,
                        const char *path, int fd, struct ctkn_err *err)
{
  char now[64], then[64];
  ssize_t n;

  /* Held: its owner is catching up right now, in this boot. */
  if (flock(fd, LOCK_EX | LOCK_NB) != 0)
    return CTKN_OK;
  n = read(fd, then, sizeof(then) - 1);
  then[n > 0 ? n : 0] = '\0';
  if (boot_id(now) != 0 || strcmp(now, then) != 0)
    return ctkn__err(err, CTKN_ESTORE,
                     "%.200s: the system went down while a catch-up "
                     "wrote to this projection without syncing (%s); it "
                     "may be damaged: move it away and project into a "
                     "fresh --db",
                     dir, name);
  if (!st->read_only && mdb_env_sync(st->env, 1) == MDB_SUCCESS) {
    /* Its owner died, the page cache did not: flush and forget. */
    unlink(path);
    sync_dir(dir);
  }
  return CTKN_OK;
}

int ctkn__store_check_unsynced(ctkn_store *st, const char *dir,
                               struct ctkn_err *err)
{
  struct dirent *de;
  DIR *d = opendir(dir);
  int rc = CTKN_OK;

  if (d == NULL)
    return CTKN_OK;
  while (rc == CTKN_OK && (de = readdir(d)) != NULL) {
    if (strncmp(de->d_name, UNSYNCED_PREFIX, strlen(UNSYNCED_PREFIX)) != 0)
      continue;
    char *path = marker_path(dir, de->d_name);
    int fd = path == NULL ? -1 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      rc = check_marker(st, dir, de->d_name, path, fd, err);
      close(fd);
    }
    free(path);
  }
  closedir(d);
  return rc;
}

/*
 * Write, flush and lock our marker in dir under another name, then rename
 * it: whoever sees the marker sees it whole and locked. The marker's open
 * descriptor, or -1 with *e set to errno.
 */
static int write_marker(const char *dir, int *e)
{
  char id[64], name[64], tmpname[80];

  snprintf(name, sizeof(name), UNSYNCED_PREFIX "%ld", (long)getpid());
  snprintf(tmpname, sizeof(tmpname), "." UNSYNCED_PREFIX "%ld.tmp",
           (long)getpid());
  char *path = marker_path(dir, name);
  char *tmp = marker_path(dir, tmpname);
  int fd = path == NULL || tmp == NULL
               ? -1
               : open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  size_t n = boot_id(id) == 0 ? strlen(id) : 0;
  if (fd < 0 || n == 0 || flock(fd, LOCK_EX) != 0 ||
      write(fd, id, n) != (ssize_t)n || fsync(fd) != 0 ||
      rename(tmp, path) != 0 || sync_dir(dir) != 0) {
    *e = errno;
    if (fd >= 0) {
      unlink(tmp);
      unlink(path);
      close(fd);
      fd = -1;
    }
  }
  free(path);
  free(tmp);
  return fd;
}

int ctkn__store_unsynced_begin(struct ctkn_store *st, struct ctkn_err *err)
{
  int fd, e = 0, rc;

  if (st->read_only)
    return ctkn__err(err, CTKN_EINTERNAL,
                     "unsynced commits on a read-only store");
  if (st->opts.no_sync || st->unsynced++ > 0)
    return CTKN_OK; /* never synced, or already unsynced */
  if ((fd = write_marker(st->dir, &e)) < 0) {
    st->unsynced = 0;
    return ctkn__err(err, CTKN_ESTORE, "%.200s: unsynced catch-up marker: %s",
                     st->dir, strerror(e));
  }
  st->unsynced_fd = fd;
  rc = mdb_env_set_flags(st->env, MDB_NOSYNC, 1);
  return rc == MDB_SUCCESS ? CTKN_OK
                           : ctkn__store_lmdb_err(err, rc, "set nosync");
}

int ctkn__store_unsynced_end(struct ctkn_store *st, struct ctkn_err *err)
{
  char name[64];
  int rc;

  if (st->opts.no_sync || st->unsynced == 0 || --st->unsynced > 0)
    return CTKN_OK;
  mdb_env_set_flags(st->env, MDB_NOSYNC, 0);
  if ((rc = mdb_env_sync(st->env, 1)) != MDB_SUCCESS) {
    /* The marker stays: the next open flushes or refuses. */
    close(st->unsynced_fd);
    return ctkn__store_write_err(st, err, rc, "sync");
  }
  snprintf(name, sizeof(name), UNSYNCED_PREFIX "%ld", (long)getpid());
  char *path = marker_path(st->dir, name);
  if (path != NULL)
    unlink(path);
  free(path);
  sync_dir(st->dir);
  close(st->unsynced_fd);
  return CTKN_OK;
}
