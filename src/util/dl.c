/*
 * dl.c - libraries loaded when first used (internal.h, ctkn__dl_load()).
 *
 * libcurl (notify) and libmicrohttpd (serve) bring about 25 shared
 * libraries with them (GnuTLS, Kerberos, LDAP, ...). Linked normally,
 * the dynamic loader maps and relocates every one of them at the start
 * of every process, including each one-shot `ctkn create`: 2.4 ms of its
 * start-up here, where one linked without them starts in 1.8 ms. Loaded
 * with dlopen(), only the commands that use them pay.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "internal.h"

static pthread_mutex_t dl_lock = PTHREAD_MUTEX_INITIALIZER;

int ctkn__dl_load(struct ctkn__dl *dl, struct ctkn_err *err)
{
  void *h;
  int rc = CTKN_OK;

  pthread_mutex_lock(&dl_lock);
  if (dl->tried) {
    rc = dl->err.code;
    goto out;
  }
  dl->tried = true;
  if ((h = dlopen(dl->soname, RTLD_NOW | RTLD_LOCAL)) == NULL) {
    rc = ctkn__err(&dl->err, CTKN_EINTERNAL, "cannot load %s: %s", dl->soname,
                   dlerror());
    goto out;
  }
  for (size_t i = 0; i < dl->nsyms; i++) {
    void *f = dlsym(h, dl->syms[i].name);
    if (f == NULL) {
      rc = ctkn__err(&dl->err, CTKN_EINTERNAL, "%s has no %s", dl->soname,
                     dl->syms[i].name);
      goto out;
    }
    /* POSIX lets a data pointer from dlsym() hold a function's address. */
    memcpy((char *)dl->table + dl->syms[i].offset, &f, sizeof(f));
  }
  dl->err.code = CTKN_OK;
out:
  if (rc != CTKN_OK && err != NULL)
    *err = dl->err;
  pthread_mutex_unlock(&dl_lock);
  return rc;
}
