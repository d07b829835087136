/*
 * setformat - a test tool: overwrite the store format recorded in a
 * projection's metadata, bypassing ctkn, to stand for a projection written
 * by another build. Usage: setformat DIR FORMAT
 */
#include <stdio.h>
#include <string.h>

#include <lmdb.h>

int main(int argc, char **argv)
{
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_val k = {6, "format"}, v;
  int rc;

  if (argc != 3) {
    fprintf(stderr, "usage: setformat DIR FORMAT\n");
    return 2;
  }
  v.mv_size = strlen(argv[2]);
  v.mv_data = argv[2];
  if ((rc = mdb_env_create(&env)) != 0 ||
      (rc = mdb_env_set_maxdbs(env, 16)) != 0 ||
      (rc = mdb_env_open(env, argv[1], 0, 0600)) != 0 ||
      (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
      (rc = mdb_dbi_open(txn, "meta", 0, &dbi)) != 0 ||
      (rc = mdb_put(txn, dbi, &k, &v, 0)) != 0 ||
      (rc = mdb_txn_commit(txn)) != 0) {
    fprintf(stderr, "setformat: %s\n", mdb_strerror(rc));
    return 1;
  }
  mdb_env_close(env);
  return 0;
}
