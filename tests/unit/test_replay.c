/*
 * test_replay.c - replay's rule for its target directory: never into a
 * projection, and no directory left behind by a replay that failed; an
 * archive replayed into a frozen projection, without Kafka; and, with a
 * trust root, an archive's records judged as the live projector judges
 * them: a forgery in it quarantined, a signed log replayed to the live
 * projection's digest (the in-memory log, testkit.h).
 */
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

#include "ctkn/archive.h"
#include "ctkn/crypto.h"
#include "ctkn/ledger.h"
#include "ctkn/log.h"
#include "ctkn/projector.h"
#include "ctkn/query.h"
#include "ctkn/replay.h"
#include "ctkn/store.h"
#include "ctkn/trust.h"
#include "testkit.h"

#define MAP ((size_t)64 << 20)

struct fx {
  char tmp[64];
  char db[96];      /* tmp/db: the replay's target */
  char archive[96]; /* tmp/a.arc */
  struct ctkn_log_config cfg;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));

  if (f == NULL)
    return -1;
  snprintf(f->tmp, sizeof(f->tmp), "/tmp/ctkn_test_replay_XXXXXX");
  if (mkdtemp(f->tmp) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->db, sizeof(f->db), "%s/db", f->tmp);
  snprintf(f->archive, sizeof(f->archive), "%s/a.arc", f->tmp);
  /* Nothing listens there: a replay from the log fails, boundedly. */
  ctkn_log_config_init(&f->cfg);
  snprintf(f->cfg.brokers, sizeof(f->cfg.brokers), "127.0.0.1:1");
  f->cfg.timeout_ms = 300;
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  ctkn_store_remove(f->db);
  rmdir(f->db);
  unlink(f->archive);
  rmdir(f->tmp);
  ctkn_log_config_free(&f->cfg);
  free(f);
  return 0;
}

static bool exists(const char *path)
{
  struct stat sb;

  return stat(path, &sb) == 0;
}

static void make_projection(const char *dir)
{
  struct ctkn_store_opts opts = {.map_size = MAP};
  struct ctkn_err err = {0};
  ctkn_store *st;

  assert_int_equal(ctkn_store_open(&st, dir, &opts, &err), CTKN_OK);
  ctkn_store_close(st);
}

/* An archive of an empty topic of two partitions. */
static void write_empty_archive(const char *path)
{
  const int64_t start[2] = {0, 0}, end[2] = {0, 0};
  ctkn_archive_writer *w;
  struct ctkn_err err = {0};

  assert_int_equal(
      ctkn_archive_writer_open(&w, path, "archived-topic", 2, start, end, &err),
      CTKN_OK);
  assert_int_equal(ctkn_archive_writer_finish(w, NULL, &err), CTKN_OK);
}

static void test_replay_refuses_a_directory_that_holds_a_projection(void **st)
{
  struct fx *f = *st;
  struct ctkn_err err = {0};
  char data[128];

  make_projection(f->db);
  write_empty_archive(f->archive);
  assert_int_equal(ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX, MAP,
                                       NULL, NULL, &err),
                   CTKN_ECONFLICT);
  assert_string_equal(err.field, "");
  assert_true(strstr(err.msg, "already holds a projection; replay into a "
                              "new --db") != NULL);
  assert_int_equal(
      ctkn_replay_as_of(f->db, &f->cfg, CTKN_ENV_SANDBOX, MAP, NULL, 0, &err),
      CTKN_ECONFLICT);
  snprintf(data, sizeof(data), "%s/data.mdb", f->db);
  assert_true(exists(data));
}

static void test_failed_replay_removes_the_directory_it_created(void **st)
{
  struct fx *f = *st;
  struct ctkn_err err = {0};

  assert_int_not_equal(ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX,
                                           MAP, NULL, NULL, &err),
                       CTKN_OK);
  assert_false(exists(f->db));

  int rc = ctkn_replay_as_of(f->db, &f->cfg, CTKN_ENV_SANDBOX, MAP, NULL,
                             INT64_C(1700000000000000), &err);
  assert_true(rc == CTKN_EKAFKA || rc == CTKN_ETIMEOUT || rc == CTKN_ENOTFOUND);
  assert_false(exists(f->db));
  /* A time still to come is refused, naming the field; nothing is made. */
  assert_int_equal(ctkn_replay_as_of(f->db, &f->cfg, CTKN_ENV_SANDBOX, MAP,
                                     NULL, ctkn_now_us() + 60000000, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "as_of");
  assert_false(exists(f->db));
}

static void test_failed_replay_keeps_a_directory_that_existed(void **st)
{
  struct fx *f = *st;
  struct ctkn_err err = {0};

  char data[128];

  assert_int_equal(mkdir(f->db, 0700), 0);
  assert_int_not_equal(ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX,
                                           MAP, NULL, NULL, &err),
                       CTKN_OK);
  assert_true(exists(f->db));
  /* ... and nothing in it: not a projection (empty, not frozen) that
   * readers would answer from and that would refuse the retry. */
  snprintf(data, sizeof(data), "%s/data.mdb", f->db);
  assert_false(exists(data));
  assert_int_not_equal(ctkn_replay_as_of(f->db, &f->cfg, CTKN_ENV_SANDBOX, MAP,
                                         NULL, INT64_C(1700000000000000), &err),
                       CTKN_OK);
  assert_false(exists(data));
  write_empty_archive(f->archive);
  assert_int_equal(ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX, MAP,
                                       NULL, NULL, &err),
                   CTKN_OK);
  assert_true(exists(data));
}

static void test_archive_replays_into_a_frozen_projection(void **st)
{
  struct fx *f = *st;
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_err err = {0};
  char as_of[CTKN_TIME_BUF], *json = NULL;
  ctkn_store *s;

  write_empty_archive(f->archive);
  assert_int_equal(ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX, MAP,
                                       NULL, NULL, &err),
                   CTKN_OK);
  assert_int_equal(ctkn_store_open(&s, f->db, &ro, &err), CTKN_OK);
  assert_int_equal(ctkn_store_frozen(s, as_of, &err), CTKN_OK);
  assert_string_not_equal(as_of, "");
  assert_int_equal(ctkn_query_digest(s, &json, &err), CTKN_OK);
  assert_true(strstr(json, "\"tokens\":0") != NULL);
  free(json);
  ctkn_store_close(s);

  /* Once there, it is a projection: a second replay is refused. */
  assert_int_equal(ctkn_replay_archive(f->db, f->archive, CTKN_ENV_SANDBOX, MAP,
                                       NULL, NULL, &err),
                   CTKN_ECONFLICT);
}

/* ---- with a trust root ---------------------------------------------------
 */

#define TPARTS 2

/* A signed log on the in-memory log: a root, a client_token.* writer key in
 * the keyring on the settings topic (and, placed, on every partition), a
 * ledger signing with it. */
struct signed_log {
  struct tk t;
  struct ctkn_log_config scfg; /* the settings topic's (owns nothing) */
  ctkn_seckey *root, *writer;
  uint8_t root_pub[CTKN_SIGN_PUB_LEN];
  ctkn_ledger *l;
  char events[300], settings[300], db[300];
};

static void signed_log_open(struct signed_log *s, bool place,
                            const char **unsigned_ids, size_t nunsigned)
{
  struct ctkn_writer_key wk = {0};
  struct ctkn_keyring kr;
  struct ctkn_err err = {0};
  int32_t placed = 0;

  memset(s, 0, sizeof(*s));
  tk_open(&s->t, TPARTS);
  /* A log written before signing: unsigned creates (adopted below). */
  static char ids[8][CTKN_ID_BUF];
  assert_true(nunsigned <= 8);
  for (size_t i = 0; i < nunsigned; i++) {
    struct ctkn_event ev;
    char name[16];
    snprintf(name, sizeof(name), "old %zu", i);
    tk_plan_create(&s->t, name, NULL, &ev);
    tk_append(&s->t, -1, &ev, CTKN_SCHEMA_VERSION, NULL);
    snprintf(ids[i], sizeof(ids[i]), "%s", ev.data.id);
    unsigned_ids[i] = ids[i];
  }
  snprintf(s->events, sizeof(s->events), "%s/events.arc", s->t.dir);
  snprintf(s->settings, sizeof(s->settings), "%s/settings.arc", s->t.dir);
  snprintf(s->db, sizeof(s->db), "%s/replayed", s->t.dir);
  assert_int_equal(ctkn_seckey_generate(&s->root, &err), CTKN_OK);
  assert_int_equal(ctkn_seckey_generate(&s->writer, &err), CTKN_OK);
  ctkn_seckey_public(s->root, s->root_pub);
  ctkn_keyring_init(&kr);
  kr.version = 1;
  memset(kr.log_id, 0x42, sizeof(kr.log_id));
  ctkn_seckey_public(s->writer, wk.public_key);
  ctkn_key_id(wk.public_key, wk.key_id);
  snprintf(wk.name, sizeof(wk.name), "test");
  snprintf(wk.scopes[0], sizeof(wk.scopes[0]), "client_token.*");
  wk.nscopes = 1;
  assert_int_equal(ctkn_keyring_add_key(&kr, &wk, &err), CTKN_OK);
  fake_log_create(s->t.log, TK_TOPIC "_settings", 1);
  s->scfg = s->t.cfg;
  snprintf(s->scfg.topic, sizeof(s->scfg.topic), "%s_settings", TK_TOPIC);
  s->scfg.n_overrides = 0; /* the copy owns nothing */
  assert_int_equal(ctkn_trust_keyring_append(&s->scfg, s->root, &kr, &err),
                   CTKN_OK);
  if (place) {
    assert_int_equal(
        ctkn_trust_keyring_place(&s->t.cfg, s->root, &kr, &placed, &err),
        CTKN_OK);
    assert_int_equal(placed, TPARTS);
  }
  if (nunsigned > 0) { /* `ctkn trust adopt`: the whole log as it is */
    struct ctkn_adoption a;
    assert_int_equal(ctkn_trust_adopt_compute(&s->t.cfg, &kr, &a, &err),
                     CTKN_OK);
    assert_int_equal(ctkn_trust_adoption_append(&s->scfg, s->root, &a, &err),
                     CTKN_OK);
    ctkn_adoption_free(&a);
  }
  ctkn_keyring_free(&kr);
  if (ctkn_ledger_open(&s->l, s->t.st, &s->t.cfg, CTKN_ENV_SANDBOX, &err) !=
          CTKN_OK ||
      ctkn_ledger_set_trust(s->l, s->root_pub, s->writer, &err) != CTKN_OK)
    fail_msg("ledger: %s", err.msg);
}

static void signed_log_close(struct signed_log *s)
{
  ctkn_ledger_close(s->l);
  ctkn_seckey_free(s->root);
  ctkn_seckey_free(s->writer);
  tk_close(&s->t);
}

/* One command through the signing ledger: its outcome. */
static struct ctkn_outcome command(struct signed_log *s, int kind,
                                   const char *id, const char *name)
{
  struct ctkn_command cmd;
  struct ctkn_outcome o;
  struct ctkn_err err = {0};

  ctkn_command_init(&cmd, kind);
  if (id != NULL)
    assert_int_equal(ctkn_command_set_id(&cmd, id, NULL), CTKN_OK);
  if (name != NULL)
    assert_int_equal(ctkn_command_set_name(&cmd, name, strlen(name), NULL),
                     CTKN_OK);
  if (kind == CTKN_CMD_REVOKE)
    assert_int_equal(ctkn_command_set_status(&cmd, "revoked", NULL), CTKN_OK);
  if (ctkn_ledger_execute(s->l, &cmd, &o, &err) != CTKN_OK)
    fail_msg("command: %s", err.msg);
  assert_true(o.acknowledged);
  return o;
}

/* An attacker with Write on the topic appends a copy of the genuine signed
 * record at p/off, edited: its value is a revoke of the same token, its
 * event type header says so (client_token.revoked); every other header
 * (writer, sequence, chain) is the genuine one's. Returns the copy's offset. */
static int64_t forge_revoke(struct signed_log *s, int32_t p, int64_t off,
                            const struct ctkn_record *cur)
{
  const struct ctkn_log_msg *m = fake_log_record(s->t.log, TK_TOPIC, p, off);
  struct ctkn_log_header h[16];
  struct ctkn_event ev;
  uint8_t *buf = NULL;
  size_t len = 0;
  struct ctkn_err err = {0};

  assert_non_null(m);
  assert_true(m->nheaders <= 16);
  tk_plan_change(&s->t, cur, NULL, true, &ev);
  const char *type = ctkn_event_type_str(ev.type);
  assert_int_equal(ctkn_event_encode(&ev, &buf, &len, &err), CTKN_OK);
  for (size_t i = 0; i < m->nheaders; i++) {
    h[i] = m->headers[i];
    if (strcmp(h[i].name, CTKN_HDR_EVENT_TYPE) == 0)
      h[i] = (struct ctkn_log_header){h[i].name, type, strlen(type)};
  }
  int64_t at = fake_log_append(s->t.log, TK_TOPIC, p, m->key, m->key_len, buf,
                               len, m->timestamp_ms, h, m->nheaders);
  free(buf);
  return at;
}

/* A new projection of the whole log by the live projector under the root:
 * its digest into hex, and whether id is active in it. */
static bool live_projection(struct signed_log *s, const char *id, char hex[65])
{
  struct ctkn_store_opts o = {.map_size = MAP, .no_sync = true};
  struct ctkn_err err = {0};
  ctkn_store *st = NULL;
  ctkn_projector *p = NULL;
  ctkn_store_txn *txn;
  struct ctkn_record r;
  char dir[300];

  snprintf(dir, sizeof(dir), "%s/live", s->t.dir);
  if (ctkn_store_open(&st, dir, &o, &err) != CTKN_OK ||
      ctkn_store_bind(st, TK_TOPIC, CTKN_ENV_SANDBOX, &err) != CTKN_OK ||
      ctkn_projector_open(&p, st, &s->t.cfg, CTKN_ENV_SANDBOX, &err) !=
          CTKN_OK ||
      ctkn_projector_set_trust(p, s->root_pub, &err) != CTKN_OK ||
      ctkn_projector_catch_up(p, NULL, 0, &err) != CTKN_OK)
    fail_msg("live: %s", err.msg);
  ctkn_projector_close(p);
  tk_digest(st, hex);
  assert_int_equal(ctkn_store_begin(st, false, &txn, &err), CTKN_OK);
  assert_int_equal(ctkn_store_get(txn, id, &r, &err), CTKN_OK);
  ctkn_store_abort(txn);
  ctkn_store_close(st);
  return r.token.status == CTKN_STATUS_ACTIVE;
}

struct quarantined {
  int32_t p[8];
  int64_t off[8];
  char reason[8][200];
  size_t n;
};

static int note_quarantined(void *arg, int32_t partition, int64_t offset,
                            const char *reason, const void *key, size_t klen,
                            const void *value, size_t vlen)
{
  struct quarantined *q = arg;

  (void)key, (void)klen, (void)value, (void)vlen;
  if (q->n < 8) {
    q->p[q->n] = partition;
    q->off[q->n] = offset;
    snprintf(q->reason[q->n], sizeof(q->reason[q->n]), "%s", reason);
  }
  q->n++;
  return 0;
}

/* The projection in dir: its digest, its quarantine, whether id is
 * active. */
static bool read_projection(const char *dir, const char *id, char hex[65],
                            struct quarantined *q)
{
  struct ctkn_store_opts ro = {.read_only = true};
  struct ctkn_err err = {0};
  ctkn_store *st = NULL;
  ctkn_store_txn *txn;
  struct ctkn_record r;

  assert_int_equal(ctkn_store_open(&st, dir, &ro, &err), CTKN_OK);
  tk_digest(st, hex);
  memset(q, 0, sizeof(*q));
  assert_int_equal(ctkn_store_begin(st, false, &txn, &err), CTKN_OK);
  assert_int_equal(ctkn_store_quarantine(txn, note_quarantined, q, &err),
                   CTKN_OK);
  assert_int_equal(ctkn_store_get(txn, id, &r, &err), CTKN_OK);
  ctkn_store_abort(txn);
  ctkn_store_close(st);
  return r.token.status == CTKN_STATUS_ACTIVE;
}

static void export(struct signed_log *s)
{
  struct ctkn_archive_info info;
  struct ctkn_err err = {0};

  if (ctkn_archive_export(&s->t.cfg, s->events, &info, &err) != CTKN_OK)
    fail_msg("export: %s", err.msg);
  ctkn_archive_info_free(&info);
  if (ctkn_archive_export(&s->scfg, s->settings, &info, &err) != CTKN_OK)
    fail_msg("export settings: %s", err.msg);
  ctkn_archive_info_free(&info);
}

/* Issue 13: a signed log with two forgeries in it (an unsigned revoke
 * after signing began, and a genuine signed record copied and edited into
 * a revoke), exported. Replayed with the trust root, each forgery is
 * quarantined with the gate's reason, never applied, and the projection
 * is the live projector's, digest for digest; by the settings archive's
 * keyring or by the one placed in the export itself. Replayed without a
 * root the forgeries are applied: that is what trust is for. */
static void test_a_forged_record_in_an_archive_is_quarantined(void **st)
{
  struct signed_log s;
  struct ctkn_outcome a, b;
  struct ctkn_record cur;
  struct quarantined q;
  struct ctkn_err err = {0};
  char live[65], got[65];
  int64_t unsigned_at, copy_at;
  int32_t pa;

  (void)st;
  signed_log_open(&s, true, NULL, 0);
  a = command(&s, CTKN_CMD_CREATE, NULL, "alpha");
  b = command(&s, CTKN_CMD_CREATE, NULL, "beta");
  command(&s, CTKN_CMD_CREATE, NULL, "gamma");
  b = command(&s, CTKN_CMD_UPDATE, b.record.token.id, "beta renamed");
  /* An unsigned revoke of alpha, as any client with Write could append. */
  assert_true(tk_get(&s.t, a.record.token.id, &cur));
  struct ctkn_event ev;
  tk_plan_change(&s.t, &cur, NULL, true, &ev);
  unsigned_at = tk_append(&s.t, a.partition, &ev, CTKN_SCHEMA_VERSION, &pa);
  /* beta's signed update, copied and edited into a revoke. */
  assert_true(tk_get(&s.t, b.record.token.id, &cur));
  copy_at = forge_revoke(&s, b.partition, b.offset, &cur);
  ctkn_ledger_close(s.l); /* its closing checkpoints */
  s.l = NULL;

  assert_true(live_projection(&s, a.record.token.id, live));
  export(&s);

  /* By the settings archive's keyring. */
  if (ctkn_replay_archive(s.db, s.events, CTKN_ENV_SANDBOX, MAP, s.root_pub,
                          s.settings, &err) != CTKN_OK)
    fail_msg("replay: %s", err.msg);
  assert_true(read_projection(s.db, a.record.token.id, got, &q));
  assert_string_equal(got, live);
  assert_int_equal(q.n, 2);
  for (size_t i = 0; i < q.n; i++) {
    bool is_unsigned = q.p[i] == pa && q.off[i] == unsigned_at;
    bool is_copy = q.p[i] == b.partition && q.off[i] == copy_at;
    assert_true(is_unsigned || is_copy);
    assert_true(strlen(q.reason[i]) > 0);
  }
  assert_true(read_projection(s.db, b.record.token.id, got, &q));

  /* By the keyring placed on every partition, in the export itself. */
  ctkn_store_remove(s.db);
  if (ctkn_replay_archive(s.db, s.events, CTKN_ENV_SANDBOX, MAP, s.root_pub,
                          NULL, &err) != CTKN_OK)
    fail_msg("replay: %s", err.msg);
  assert_true(read_projection(s.db, b.record.token.id, got, &q));
  assert_string_equal(got, live);
  assert_int_equal(q.n, 2);

  /* Without a root: the forgeries are applied, and the digest differs. */
  ctkn_store_remove(s.db);
  assert_int_equal(ctkn_replay_archive(s.db, s.events, CTKN_ENV_SANDBOX, MAP,
                                       NULL, NULL, &err),
                   CTKN_OK);
  assert_false(read_projection(s.db, a.record.token.id, got, &q));
  assert_false(read_projection(s.db, b.record.token.id, got, &q));
  assert_string_not_equal(got, live);
  signed_log_close(&s);
}

/* A signed event whose checkpoint never reached the log (its produce
 * failed after the event went in) is never proven: in an archive, it is
 * still held back at the end. A live projection waits there, showing its
 * lag; a replay, which cannot wait, fails naming the partition and the
 * offsets, and leaves nothing (it used to exit 0 with the state before
 * them, as if the archive ended there). */
static void test_a_record_never_proven_fails_its_replay(void **st)
{
  struct signed_log s;
  struct ctkn_command cmd;
  struct ctkn_outcome o;
  struct ctkn_err err = {0};
  char data[320];

  (void)st;
  signed_log_open(&s, false, NULL, 0);
  command(&s, CTKN_CMD_CREATE, NULL, "proven");
  ctkn_command_init(&cmd, CTKN_CMD_CREATE);
  assert_int_equal(ctkn_command_set_name(&cmd, "unproven", 8, NULL), CTKN_OK);
  fake_log_fail_sends_after(s.t.log, 1, 1, CTKN_ETIMEOUT, false);
  assert_int_not_equal(ctkn_ledger_execute(s.l, &cmd, &o, &err), CTKN_OK);
  ctkn_ledger_close(s.l);
  s.l = NULL;
  export(&s);
  assert_int_equal(ctkn_replay_archive(s.db, s.events, CTKN_ENV_SANDBOX, MAP,
                                       s.root_pub, s.settings, &err),
                   CTKN_EDECODE);
  assert_string_equal(err.field, "records");
  assert_non_null(strstr(err.msg, "never proven by a checkpoint"));
  snprintf(data, sizeof(data), "%s/data.mdb", s.db);
  assert_false(exists(data));
  signed_log_close(&s);
}

/* Every record of topic from and topic to, partition by partition, the
 * same bytes at the same offsets (to's offsets count from 0). */
static void assert_same_topics(struct fake_log *f, const char *from,
                               const char *to)
{
  for (int32_t p = 0; p < TPARTS; p++) {
    int64_t end = fake_log_end(f, from, p);
    assert_int_equal(fake_log_end(f, to, p), end);
    for (int64_t o = 0; o < end; o++) {
      const struct ctkn_log_msg *a = fake_log_record(f, from, p, o);
      const struct ctkn_log_msg *b = fake_log_record(f, to, p, o);
      assert_non_null(a);
      assert_non_null(b);
      assert_int_equal(a->value_len, b->value_len);
      assert_memory_equal(a->value, b->value, a->value_len);
      assert_int_equal(a->nheaders, b->nheaders);
    }
  }
}

/* An import cut short (the broker stopped taking records part way) is
 * resumed by running it again: the records already in the topic are
 * checked, byte for byte, against the archive's first ones, and the rest
 * are appended (a retry was refused as "not empty", and the half topic
 * projected a revoked token as active). A topic holding anything else is
 * still refused. */
static void test_an_import_cut_short_is_resumed(void **st)
{
  struct signed_log s;
  struct ctkn_log_config to;
  struct ctkn_archive_info info;
  struct ctkn_err err = {0};

  (void)st;
  signed_log_open(&s, true, NULL, 0);
  for (int i = 0; i < 12; i++) {
    char name[16];
    snprintf(name, sizeof(name), "t%d", i);
    command(&s, CTKN_CMD_CREATE, NULL, name);
  }
  ctkn_ledger_close(s.l);
  s.l = NULL;
  export(&s);

  to = s.t.cfg;
  to.n_overrides = 0;
  snprintf(to.topic, sizeof(to.topic), "%s", "copy");
  fake_log_fail_sends_after(s.t.log, 7, 1000000, CTKN_ETIMEOUT, false);
  assert_int_not_equal(ctkn_archive_import(s.events, &to, 1, &info, &err),
                       CTKN_OK);
  fake_log_fail_sends(s.t.log, 0, CTKN_OK, false);
  int64_t part = 0;
  for (int32_t p = 0; p < TPARTS; p++)
    part += fake_log_end(s.t.log, "copy", p);
  assert_int_equal(part, 7); /* cut short */
  if (ctkn_archive_import(s.events, &to, 1, &info, &err) != CTKN_OK)
    fail_msg("resumed import: %s", err.msg);
  ctkn_archive_info_free(&info);
  assert_same_topics(s.t.log, TK_TOPIC, "copy");
  /* Once whole, a third run finds it all there and appends nothing. */
  if (ctkn_archive_import(s.events, &to, 1, &info, &err) != CTKN_OK)
    fail_msg("import again: %s", err.msg);
  ctkn_archive_info_free(&info);
  assert_same_topics(s.t.log, TK_TOPIC, "copy");

  /* A topic holding another record is no import of this archive. */
  snprintf(to.topic, sizeof(to.topic), "%s", "other");
  fake_log_create(s.t.log, "other", TPARTS);
  fake_log_append(s.t.log, "other", 0, "k", 1, "not the archive's", 17, 1, NULL,
                  0);
  assert_int_equal(ctkn_archive_import(s.events, &to, 1, &info, &err),
                   CTKN_ECONFLICT);
  assert_non_null(strstr(err.msg, "holds another record"));
  assert_int_equal(fake_log_end(s.t.log, "other", 0), 1);
  signed_log_close(&s);
}

/* A genuine signed log, exported with its settings topic: its replay
 * under the root has the live projection's digest, nothing quarantined.
 * A keyring the root did not sign is no keyring: a replay whose archives
 * hold none is refused, naming the field. */
static void test_a_signed_archive_replays_to_the_live_digest(void **st)
{
  struct signed_log s;
  struct ctkn_outcome a;
  struct quarantined q;
  struct ctkn_err err = {0};
  char live[65], got[65];
  uint8_t stranger[CTKN_SIGN_PUB_LEN];
  ctkn_seckey *k = NULL;

  (void)st;
  signed_log_open(&s, false, NULL, 0);
  a = command(&s, CTKN_CMD_CREATE, NULL, "one");
  for (int i = 0; i < 20; i++) {
    char name[16];
    snprintf(name, sizeof(name), "n%d", i);
    command(&s, CTKN_CMD_CREATE, NULL, name);
  }
  command(&s, CTKN_CMD_UPDATE, a.record.token.id, "one renamed");
  ctkn_ledger_close(s.l);
  s.l = NULL;
  assert_true(live_projection(&s, a.record.token.id, live));
  export(&s);
  if (ctkn_replay_archive(s.db, s.events, CTKN_ENV_SANDBOX, MAP, s.root_pub,
                          s.settings, &err) != CTKN_OK)
    fail_msg("replay: %s", err.msg);
  assert_true(read_projection(s.db, a.record.token.id, got, &q));
  assert_string_equal(got, live);
  assert_int_equal(q.n, 0);

  /* No keyring placed in the export, and another root's settings. */
  ctkn_store_remove(s.db);
  assert_int_equal(ctkn_replay_archive(s.db, s.events, CTKN_ENV_SANDBOX, MAP,
                                       s.root_pub, NULL, &err),
                   CTKN_EINVAL);
  assert_string_equal(err.field, "keyring");
  assert_int_equal(ctkn_seckey_generate(&k, &err), CTKN_OK);
  ctkn_seckey_public(k, stranger);
  ctkn_seckey_free(k);
  assert_int_equal(ctkn_replay_archive(s.db, s.events, CTKN_ENV_SANDBOX, MAP,
                                       stranger, s.settings, &err),
                   CTKN_EINVAL);
  signed_log_close(&s);
}

/* A topic written before signing, adopted (`ctkn trust adopt`), then
 * signed. Replayed with the settings archive (where the adoption lives),
 * the unsigned prefix is hashed from the archive and applied, an unsigned
 * record after it quarantined: the live projection's digest. Replayed
 * from the event archive alone there is no adoption, so the prefix is
 * quarantined, as for a follower whose settings topic holds none. */
static void test_an_adopted_prefix_replays_as_it_projects(void **st)
{
  struct signed_log s;
  const char *old[3];
  struct ctkn_outcome a;
  struct ctkn_record cur;
  struct ctkn_event ev;
  struct quarantined q;
  struct ctkn_err err = {0};
  char live[65], got[65];

  (void)st;
  signed_log_open(&s, true, old, 3);
  a = command(&s, CTKN_CMD_CREATE, NULL, "signed");
  assert_true(tk_get(&s.t, old[0], &cur));
  tk_plan_change(&s.t, &cur, NULL, true, &ev);
  tk_append(&s.t, -1, &ev, CTKN_SCHEMA_VERSION, NULL); /* after: refused */
  ctkn_ledger_close(s.l);
  s.l = NULL;
  assert_true(live_projection(&s, old[0], live));
  export(&s);

  if (ctkn_replay_archive(s.db, s.events, CTKN_ENV_SANDBOX, MAP, s.root_pub,
                          s.settings, &err) != CTKN_OK)
    fail_msg("replay: %s", err.msg);
  for (size_t i = 0; i < 3; i++)
    assert_true(read_projection(s.db, old[i], got, &q));
  assert_true(read_projection(s.db, a.record.token.id, got, &q));
  assert_string_equal(got, live);
  assert_int_equal(q.n, 1);

  ctkn_store_remove(s.db);
  assert_int_equal(ctkn_replay_archive(s.db, s.events, CTKN_ENV_SANDBOX, MAP,
                                       s.root_pub, NULL, &err),
                   CTKN_OK);
  assert_true(read_projection(s.db, a.record.token.id, got, &q));
  assert_string_not_equal(got, live);
  assert_int_equal(q.n, 4);
  signed_log_close(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_replay_refuses_a_directory_that_holds_a_projection, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_failed_replay_removes_the_directory_it_created, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_failed_replay_keeps_a_directory_that_existed, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_archive_replays_into_a_frozen_projection, setup, teardown),
      cmocka_unit_test(test_a_forged_record_in_an_archive_is_quarantined),
      cmocka_unit_test(test_a_signed_archive_replays_to_the_live_digest),
      cmocka_unit_test(test_a_record_never_proven_fails_its_replay),
      cmocka_unit_test(test_an_import_cut_short_is_resumed),
      cmocka_unit_test(test_an_adopted_prefix_replays_as_it_projects),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
