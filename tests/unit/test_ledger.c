/*
 * test_ledger.c - one command end to end against the in-memory log: plan,
 * append, judge; re-planning after a lost race; the idempotency race; what
 * a command says when its append was not acknowledged; create --batch as
 * a library call (one answer per line, in input order, the worst exit).
 */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctkn/crypto.h"
#include "ctkn/ledger.h"
#include "ctkn/projector.h"
#include "ctkn/query.h"
#include "ctkn/trust.h"
#include "projector/projector_int.h"
#include "store/shared.h"
#include "testkit.h"

#define NPARTS 3

struct fx {
  struct tk t;
  ctkn_ledger *l;
  /* A racing writer's event, appended from inside the ledger's send. */
  struct ctkn_event race;
  int32_t race_p; /* where it goes; -1: the ID's partition */
  bool race_armed;
  char *out; /* what create --batch wrote */
  size_t outlen;
};

static int setup(void **state)
{
  struct fx *f = calloc(1, sizeof(*f));
  struct ctkn_err err = {0};

  tk_open(&f->t, NPARTS);
  f->race_p = -1;
  if (ctkn_ledger_open(&f->l, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err) !=
      CTKN_OK)
    fail_msg("ledger: %s", err.msg);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;

  ctkn_ledger_close(f->l);
  tk_close(&f->t);
  free(f->out);
  free(f);
  return 0;
}

static void create_cmd(struct ctkn_command *cmd, const char *name,
                       const char *idem)
{
  ctkn_command_init(cmd, CTKN_CMD_CREATE);
  assert_int_equal(ctkn_command_set_name(cmd, name, strlen(name), NULL),
                   CTKN_OK);
  if (idem != NULL)
    assert_int_equal(
        ctkn_command_set_idempotency_key(cmd, idem, strlen(idem), NULL),
        CTKN_OK);
}

static void change_cmd(struct ctkn_command *cmd, const char *id,
                       const char *name, bool revoke)
{
  ctkn_command_init(cmd, revoke ? CTKN_CMD_REVOKE : CTKN_CMD_UPDATE);
  assert_int_equal(ctkn_command_set_id(cmd, id, NULL), CTKN_OK);
  if (name != NULL)
    assert_int_equal(ctkn_command_set_name(cmd, name, strlen(name), NULL),
                     CTKN_OK);
  if (revoke)
    assert_int_equal(ctkn_command_set_status(cmd, "revoked", NULL), CTKN_OK);
}

static int run(struct fx *f, const struct ctkn_command *cmd,
               struct ctkn_outcome *out, struct ctkn_err *err)
{
  return ctkn_ledger_execute(f->l, cmd, out, err);
}

static void create(struct fx *f, const char *name, struct ctkn_outcome *out)
{
  struct ctkn_command cmd;
  struct ctkn_err err = {0};

  create_cmd(&cmd, name, NULL);
  if (run(f, &cmd, out, &err) != CTKN_OK)
    fail_msg("create: %s", err.msg);
}

static uint64_t produced(struct fx *f)
{
  struct fake_log_stats s;

  fake_log_stats(f->t.log, &s);
  return s.produced;
}

/* The racing writer appends its event just before the ledger's lands. */
static void race_hook(void *arg)
{
  struct fx *f = arg;

  if (!f->race_armed)
    return;
  f->race_armed = false;
  tk_append(&f->t, f->race_p, &f->race, CTKN_SCHEMA_VERSION, NULL);
}

/* ---- the plain path ---------------------------------------------------- */

static void test_create_appends_one_event_and_answers_after_projecting(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome out;
  struct ctkn_record got;

  create(f, "Pricing page", &out);
  assert_true(out.appended);
  assert_int_equal(out.record.version, 1);
  assert_string_equal(out.record.token.name, "Pricing page");
  assert_int_equal(out.record.token.status, CTKN_STATUS_ACTIVE);
  /* The answer comes after the projection judged the event. */
  assert_true(tk_get(&f->t, out.record.token.id, &got));
  assert_true(ctkn_token_equal(&got.token, &out.record.token));
  assert_true(tk_offset(&f->t, out.partition) > out.offset);
  /* One record, keyed by the token, where the partitioner puts the ID. */
  const struct ctkn_log_msg *m =
      fake_log_record(f->t.log, TK_TOPIC, out.partition, out.offset);
  assert_non_null(m);
  assert_int_equal(m->key_len, strlen(out.record.token.id));
  assert_memory_equal(m->key, out.record.token.id, m->key_len);
  assert_string_equal(m->event_type, "client_token.created");
  assert_int_equal(m->schema_version, CTKN_SCHEMA_WRITTEN);
  assert_int_equal(m->timestamp_ms, out.record.token.created_at / 1000);
  assert_int_equal(out.partition,
                   ctkn_log_partition_for(out.record.token.id,
                                          strlen(out.record.token.id), NPARTS));
  assert_int_equal(produced(f), 1);
}

static void test_changes_go_to_the_token_s_partition(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome c, u, r;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};

  create(f, "a", &c);
  change_cmd(&cmd, c.record.token.id, "b", false);
  assert_int_equal(run(f, &cmd, &u, &err), CTKN_OK);
  assert_int_equal(u.record.version, 2);
  assert_string_equal(u.record.token.name, "b");
  change_cmd(&cmd, c.record.token.id, NULL, true);
  assert_int_equal(run(f, &cmd, &r, &err), CTKN_OK);
  assert_int_equal(r.record.version, 3);
  assert_int_equal(r.record.token.status, CTKN_STATUS_REVOKED);
  assert_int_equal(u.partition, c.partition);
  assert_int_equal(r.partition, c.partition);
  assert_true(r.offset > u.offset && u.offset > c.offset);
}

static void test_noops_append_nothing(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome c, o;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};

  create(f, "same", &c);
  /* An update that changes nothing. */
  change_cmd(&cmd, c.record.token.id, "same", false);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  assert_false(o.appended);
  assert_int_equal(o.record.version, 1);
  change_cmd(&cmd, c.record.token.id, NULL, true);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  assert_int_equal(produced(f), 2);
  /* Revoking a revoked token returns it unchanged. */
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  assert_false(o.appended);
  assert_int_equal(o.record.token.status, CTKN_STATUS_REVOKED);
  assert_int_equal(produced(f), 2);
  /* Any other change to a revoked token is a conflict, appending nothing. */
  change_cmd(&cmd, c.record.token.id, "other", false);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_ECONFLICT);
  assert_int_equal(produced(f), 2);
}

static void test_unknown_token_is_notfound_and_appends_nothing(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome o;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};

  change_cmd(&cmd, "ctkn_01hzzzzzzzzzzzzzzzzzzzzzzz", NULL, true);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_ENOTFOUND);
  assert_int_equal(produced(f), 0);
}

static void test_a_stale_projection_is_caught_up_before_planning(void **s)
{
  struct fx *f = *s;
  struct ctkn_event ev, rv;
  struct ctkn_record cur;
  struct ctkn_outcome o;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};
  int32_t p;

  /* Another writer created and revoked a token; this ledger's projection
   * has not seen either. */
  tk_plan_create(&f->t, "elsewhere", NULL, &ev);
  int64_t off = tk_append(&f->t, -1, &ev, CTKN_SCHEMA_VERSION, &p);
  tk_record_of(&ev, p, off, &cur);
  tk_plan_change(&f->t, &cur, NULL, true, &rv);
  tk_append(&f->t, p, &rv, CTKN_SCHEMA_VERSION, NULL);
  /* Revoking it again finds it revoked: a no-op, not a conflict. */
  change_cmd(&cmd, ev.data.id, NULL, true);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  assert_false(o.appended);
  assert_int_equal(o.record.version, 2);
  assert_int_equal(produced(f), 0);
}

static uint64_t watermarks(struct fx *f)
{
  struct fake_log_stats s;

  fake_log_stats(f->t.log, &s);
  return s.watermarks;
}

/* A create without an idempotency key plans against nothing, so once the
 * projector knows the partitions it skips the round trip for the log's
 * end offsets; it still answers only after projecting its event, past a
 * writer's events it had not seen. An update and a keyed create (a retry
 * must find what an earlier run appended) still catch up first. */
static void test_only_commands_that_read_the_projection_catch_up_first(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome o, first;
  struct ctkn_command cmd;
  struct ctkn_event ev;
  struct ctkn_record got;
  struct ctkn_err err = {0};
  int32_t p;

  create(f, "first", &first); /* the projector learns the partitions */
  uint64_t before = watermarks(f);
  tk_plan_create(&f->t, "elsewhere", NULL, &ev);
  tk_append(&f->t, -1, &ev, CTKN_SCHEMA_VERSION, &p);
  create(f, "second", &o);
  assert_int_equal(watermarks(f), before);
  assert_true(tk_get(&f->t, o.record.token.id, &got));
  assert_true(tk_offset(&f->t, o.partition) > o.offset);

  create_cmd(&cmd, "keyed", "order-7");
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  assert_true(watermarks(f) > before);
  before = watermarks(f);
  change_cmd(&cmd, first.record.token.id, "renamed", false);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  assert_true(watermarks(f) > before);
  /* The catch-ups to the end took in the other writer's token. */
  assert_true(tk_get(&f->t, ev.data.id, &got));
}

static void trust_with(struct fx *f, struct tk_signing *sg, bool writer);

static void sign_with_a_key(struct fx *f, struct tk_signing *sg)
{
  trust_with(f, sg, true);
}

/* A keyring with sg's writer key in it; the ledger judges by its root,
 * and signs with the writer key when writer. */
static void trust_with(struct fx *f, struct tk_signing *sg, bool writer)
{
  struct ctkn_err err = {0};

  tk_keyring_with(&f->t, sg);
  if (ctkn_ledger_set_trust(f->l, sg->root_pub, writer ? sg->writer : NULL,
                            &err) != CTKN_OK)
    fail_msg("set_trust: %s", err.msg);
}

/* A one-shot command's ledger opens its producer, its projector (assigned
 * already) and the keyring read at once: its signed create is applied
 * without a catch-up to the log's end first, and a change still catches
 * up before it plans. */
static void test_a_ledger_opened_trusted_signs_and_creates_at_once(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_outcome o, first;
  struct ctkn_command cmd;
  struct ctkn_record got;
  struct ctkn_err err = {0};

  tk_keyring_with(&f->t, &sg);
  ctkn_ledger_close(f->l);
  f->l = NULL;
  if (ctkn_ledger_open_trusted(&f->l, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX,
                               sg.root_pub, sg.writer, &err) != CTKN_OK)
    fail_msg("open: %s", err.msg);
  uint64_t before = watermarks(f);
  create(f, "first", &first); /* signed: the gate passes it */
  assert_int_equal(watermarks(f), before);
  assert_true(tk_get(&f->t, first.record.token.id, &got));
  change_cmd(&cmd, first.record.token.id, NULL, true);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  assert_true(watermarks(f) > before);
  assert_int_equal(o.record.token.status, CTKN_STATUS_REVOKED);
  ctkn_ledger_close(f->l);
  f->l = NULL;
  tk_signing_free(&sg);
}

/* A writer key the keyring does not hold: the open fails naming the
 * field, and leaves no handle open. */
static void
test_a_ledger_opened_trusted_refuses_a_key_not_in_the_keyring(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct fake_log_stats st;
  ctkn_seckey *other;
  struct ctkn_err err = {0};

  tk_keyring_with(&f->t, &sg);
  ctkn_ledger_close(f->l);
  f->l = NULL;
  fake_log_stats(f->t.log, &st);
  uint64_t handles = st.open_handles;
  assert_int_equal(ctkn_seckey_generate(&other, &err), CTKN_OK);
  assert_int_equal(ctkn_ledger_open_trusted(&f->l, f->t.st, &f->t.cfg,
                                            CTKN_ENV_SANDBOX, sg.root_pub,
                                            other, &err),
                   CTKN_EINVAL);
  assert_null(f->l);
  assert_string_equal(err.field, "writer_key");
  assert_non_null(strstr(err.msg, "keyring version 1"));
  fake_log_stats(f->t.log, &st);
  assert_int_equal(st.open_handles, handles);
  ctkn_seckey_free(other);
  tk_signing_free(&sg);
}

/* No topic: the open fails as the producer's would have alone. */
static void test_a_ledger_opened_trusted_without_a_topic_says_init(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_log_config cfg = f->t.cfg;
  ctkn_ledger *l = NULL;
  struct ctkn_err err = {0};

  tk_keyring_with(&f->t, &sg);
  snprintf(cfg.topic, sizeof(cfg.topic), "missing");
  cfg.n_overrides = 0; /* the copy owns nothing */
  assert_int_equal(ctkn_ledger_open_trusted(&l, f->t.st, &cfg, CTKN_ENV_SANDBOX,
                                            sg.root_pub, sg.writer, &err),
                   CTKN_ENOTFOUND);
  assert_null(l);
  assert_non_null(strstr(err.msg, "missing"));
  tk_signing_free(&sg);
}

/* Judged by a root but holding no writer key (ctkn serve read-only): a
 * command is refused as forbidden, and nothing is appended, where it
 * would otherwise append an unsigned record every reader quarantines. */
static void test_a_trusted_ledger_without_a_key_appends_nothing(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_command cmd;
  struct ctkn_outcome o;
  struct ctkn_err err = {0};
  uint64_t before;

  trust_with(f, &sg, false);
  before = produced(f);
  create_cmd(&cmd, "unsigned", NULL);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_EFORBIDDEN);
  assert_non_null(strstr(err.msg, "--writer-key"));
  assert_false(o.acknowledged);
  assert_int_equal(produced(f), before);
  tk_signing_free(&sg);
}

static const struct ctkn_log_msg *msg_of(struct source *src, size_t i)
{
  return ((const struct ctkn_log_msg **)src->arg)[i];
}

/* The server's command thread and its follower race for the same
 * records. The loser's pass finds every record below the stored offsets
 * and skips them all; it commits nothing (a commit would write the
 * gate's state back unchanged, and cost an fsync), and the projection is
 * what the winner left. */
static void test_a_pass_that_only_skips_commits_nothing(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_outcome o;
  struct ctkn__ptrust *t = NULL;
  struct ctkn_projector_stats stats = {0};
  struct ctkn_err err = {0};
  char before[65], after[65];
  const struct ctkn_log_msg *msgs[8];
  size_t n = 0;

  sign_with_a_key(f, &sg);
  create(f, "signed", &o); /* the record and its checkpoint, applied */
  for (int64_t off = 0; off < fake_log_end(f->t.log, TK_TOPIC, o.partition);
       off++) {
    assert_true(n < 8);
    msgs[n++] = fake_log_record(f->t.log, TK_TOPIC, o.partition, off);
  }
  assert_int_equal(n, 2);
  struct source src = {n, msg_of, NULL, msgs};
  assert_int_equal(ctkn__ptrust_open(&t, f->t.st, &f->t.cfg, sg.root_pub, &err),
                   CTKN_OK);
  tk_digest(f->t.st, before);
  uint64_t commit = ctkn__store_last_commit(f->t.st);
  assert_true(commit > 0);
  if (ctkn__projector_apply_source(f->t.st, CTKN_ENV_SANDBOX, t, &src, NULL, 0,
                                   &stats, &err) != CTKN_OK)
    fail_msg("apply: %s", err.msg);
  assert_int_equal(stats.skipped, 2);
  assert_int_equal(ctkn__store_last_commit(f->t.st), commit);
  tk_digest(f->t.st, after);
  assert_string_equal(before, after);
  ctkn__ptrust_free(t);
  ctkn_ledger_close(f->l); /* it signs a closing checkpoint with the key */
  f->l = NULL;
  tk_signing_free(&sg);
}

/* Record p/off's ctkn-writer header ("<key ID>.<instance>"), in out. */
static void writer_of(struct fx *f, int32_t p, int64_t off, char *out,
                      size_t size)
{
  const struct ctkn_log_msg *m = fake_log_record(f->t.log, TK_TOPIC, p, off);

  assert_non_null(m);
  for (size_t i = 0; i < m->nheaders; i++)
    if (strcmp(m->headers[i].name, "ctkn-writer") == 0) {
      assert_true(m->headers[i].size < size);
      memcpy(out, m->headers[i].value, m->headers[i].size);
      out[m->headers[i].size] = '\0';
      return;
    }
  fail_msg("no ctkn-writer header at %d/%lld", (int)p, (long long)off);
}

/* A new replica of the fake log, reading it all under sg's root: its
 * stats, and whether each of ids[0..n) is in it. */
static void new_replica(struct fx *f, const struct tk_signing *sg,
                        struct ctkn_projector_stats *stats, const char **ids,
                        size_t n)
{
  char dir[] = "/tmp/ctkn_unit_replicaXXXXXX";
  char db[64];
  struct ctkn_store_opts o = {.map_size = (size_t)256 << 20, .no_sync = true};
  struct ctkn_err err = {0};
  ctkn_store *st = NULL;
  ctkn_projector *p = NULL;
  ctkn_store_txn *txn;
  struct ctkn_record r;

  assert_non_null(mkdtemp(dir));
  snprintf(db, sizeof(db), "%s/db", dir);
  if (ctkn_store_open(&st, db, &o, &err) != CTKN_OK ||
      ctkn_store_bind(st, TK_TOPIC, CTKN_ENV_SANDBOX, &err) != CTKN_OK ||
      ctkn_projector_open(&p, st, &f->t.cfg, CTKN_ENV_SANDBOX, &err) !=
          CTKN_OK ||
      ctkn_projector_set_trust(p, sg->root_pub, &err) != CTKN_OK ||
      ctkn_projector_catch_up(p, NULL, 0, &err) != CTKN_OK)
    fail_msg("reader: %s", err.msg);
  ctkn_projector_stats(p, stats);
  ctkn_projector_close(p);
  assert_int_equal(ctkn_store_begin(st, false, &txn, &err), CTKN_OK);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(ctkn_store_get(txn, ids[i], &r, &err), CTKN_OK);
  ctkn_store_abort(txn);
  ctkn_store_close(st);
  tk_rm_rf(dir);
}

/* A replica whose trust root signed no keyring on the settings topic (not
 * the deployment's root, or a topic imported without its settings topic)
 * applies and quarantines nothing: the catch-up fails (CTKN_ESTALE, which
 * a follower retries) and the offsets stay, so that once that root's
 * keyring arrives, the same replica applies what the writer signed. */
static void test_a_root_without_a_keyring_judges_nothing(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_outcome o;
  struct ctkn_log_config scfg = f->t.cfg;
  struct ctkn_keyring kr;
  struct ctkn_projector_stats stats = {0};
  struct ctkn_err err = {0};
  char dir[] = "/tmp/ctkn_unit_otherrootXXXXXX", db[64];
  struct ctkn_store_opts so = {.map_size = (size_t)256 << 20, .no_sync = true};
  ctkn_seckey *other = NULL;
  uint8_t other_pub[CTKN_SIGN_PUB_LEN];
  ctkn_store *st = NULL;
  ctkn_projector *p = NULL;
  ctkn_store_txn *txn;
  struct ctkn_record r;

  sign_with_a_key(f, &sg);
  create(f, "signed", &o);
  assert_int_equal(ctkn_seckey_generate(&other, &err), CTKN_OK);
  ctkn_seckey_public(other, other_pub);
  assert_non_null(mkdtemp(dir));
  snprintf(db, sizeof(db), "%s/db", dir);
  if (ctkn_store_open(&st, db, &so, &err) != CTKN_OK ||
      ctkn_store_bind(st, TK_TOPIC, CTKN_ENV_SANDBOX, &err) != CTKN_OK ||
      ctkn_projector_open(&p, st, &f->t.cfg, CTKN_ENV_SANDBOX, &err) !=
          CTKN_OK ||
      ctkn_projector_set_trust(p, other_pub, &err) != CTKN_OK)
    fail_msg("reader: %s", err.msg);
  assert_int_equal(ctkn_projector_catch_up(p, NULL, 0, &err), CTKN_ESTALE);
  assert_non_null(strstr(err.msg, "no keyring signed by the trust root"));
  ctkn_projector_stats(p, &stats);
  assert_int_equal(stats.applied + stats.quarantined, 0);
  assert_int_equal(ctkn_store_begin(st, false, &txn, &err), CTKN_OK);
  assert_int_equal(ctkn_store_get(txn, o.record.token.id, &r, &err),
                   CTKN_ENOTFOUND);
  ctkn_store_abort(txn);

  /* The other root now vouches for the same writer key and log. */
  tk_writer_keyring(&kr, 1, sg.writer, false);
  snprintf(scfg.topic, sizeof(scfg.topic), "%s_settings", TK_TOPIC);
  scfg.n_overrides = 0;
  assert_int_equal(ctkn_trust_keyring_append(&scfg, other, &kr, &err), CTKN_OK);
  ctkn_keyring_free(&kr);
  if (ctkn_projector_catch_up(p, NULL, 0, &err) != CTKN_OK)
    fail_msg("catch-up under the keyring: %s", err.msg);
  assert_int_equal(ctkn_store_begin(st, false, &txn, &err), CTKN_OK);
  assert_int_equal(ctkn_store_get(txn, o.record.token.id, &r, &err), CTKN_OK);
  ctkn_store_abort(txn);
  ctkn_projector_close(p);
  ctkn_store_close(st);
  tk_rm_rf(dir);
  ctkn_seckey_free(other);
  ctkn_ledger_close(f->l); /* it signs a closing checkpoint with the key */
  f->l = NULL;
  tk_signing_free(&sg);
}

/* A new replica catches up a long log on two threads (the pipelined
 * catch-up) and verifies one checkpoint per instance and read batch,
 * settling the others later from the records it holds. A writer that
 * heartbeats after every batch makes a read batch end in a heartbeat that
 * restates the head an earlier checkpoint set, which has the reader
 * verify the earlier ones there: it must verify those, not whatever
 * record it read last. Nothing is quarantined; every token is applied. */
static void test_a_new_replica_of_a_heartbeating_writer_applies_it_all(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_err err = {0};
  enum { PER = 200 };
  struct ctkn_command cmds[PER];
  struct ctkn_outcome outs[PER];
  int rcs[PER];
  struct ctkn_err errs[PER];
  const char *last[1];
  char last_id[CTKN_ID_BUF];
  size_t creates = 0;
  int64_t records = 0;

  sign_with_a_key(f, &sg);
  while (records < 4 * BATCH_MAX) {
    char name[32];
    for (size_t i = 0; i < PER; i++) {
      snprintf(name, sizeof(name), "t%zu", creates + i);
      create_cmd(&cmds[i], name, NULL);
    }
    assert_int_equal(
        ctkn_ledger_execute_batch(f->l, cmds, PER, outs, rcs, errs), CTKN_OK);
    for (size_t i = 0; i < PER; i++)
      assert_int_equal(rcs[i], CTKN_OK);
    creates += PER;
    if (ctkn_ledger_heartbeat(f->l, &err) != CTKN_OK)
      fail_msg("heartbeat: %s", err.msg);
    records = 0;
    for (int32_t p = 0; p < NPARTS; p++)
      records += fake_log_end(f->t.log, TK_TOPIC, p);
  }
  snprintf(last_id, sizeof(last_id), "%s", outs[PER - 1].record.token.id);
  last[0] = last_id;

  struct ctkn_projector_stats stats;
  new_replica(f, &sg, &stats, last, 1);
  assert_int_equal(stats.quarantined, 0);
  assert_int_equal(stats.applied, creates);
  ctkn_ledger_close(f->l); /* it signs a closing checkpoint with the key */
  f->l = NULL;
  tk_signing_free(&sg);
}

/* A writer that died between a record and its checkpoint leaves, at its
 * partition's end, a record no checkpoint will cover; a checkpoint signed
 * more than a second after it gives it up. A new writer's first
 * heartbeat is such a checkpoint, so it must not wait for the projection
 * to pass that record first (it did, and timed out: every heartbeat and
 * every write after it failed for good). */
static void test_a_heartbeat_gives_up_a_record_never_checkpointed(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_command cmd;
  struct ctkn_outcome o;
  struct ctkn_record got;
  struct ctkn_err err = {0};

  sign_with_a_key(f, &sg);
  create_cmd(&cmd, "orphan", NULL);
  fake_log_fail_sends_after(f->t.log, 1, 1, CTKN_ETIMEOUT, false);
  assert_int_not_equal(ctkn_ledger_execute(f->l, &cmd, &o, &err), CTKN_OK);
  ctkn_ledger_close(f->l);
  f->t.cfg.timeout_ms = 1500; /* a wait for the orphan fails quickly */
  if (ctkn_ledger_open(&f->l, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err) !=
          CTKN_OK ||
      ctkn_ledger_set_trust(f->l, sg.root_pub, sg.writer, &err) != CTKN_OK)
    fail_msg("ledger: %s", err.msg);
  usleep(1100 * 1000); /* past the gate's grace */
  if (ctkn_ledger_heartbeat(f->l, &err) != CTKN_OK)
    fail_msg("heartbeat: %s", err.msg);
  create_cmd(&cmd, "after", NULL);
  if (ctkn_ledger_execute(f->l, &cmd, &o, &err) != CTKN_OK)
    fail_msg("create after the heartbeat: %s", err.msg);
  assert_true(tk_get(&f->t, o.record.token.id, &got));
  ctkn_ledger_close(f->l); /* it signs a closing checkpoint with the key */
  f->l = NULL;
  tk_signing_free(&sg);
}

/* A process that runs one command closes its writer instance with that
 * batch's checkpoints: closing the ledger then appends nothing more (one
 * produce round trip less). A batch after it is a new instance. A reader
 * of the log applies all of it and quarantines nothing. */
static void test_a_last_batch_closes_the_instance_with_its_checkpoints(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_outcome a, b;
  char wa[128], wb[128];

  sign_with_a_key(f, &sg);
  ctkn_ledger_last_batch(f->l);
  create(f, "one", &a);
  /* The event, then its checkpoint, which closes the instance. */
  assert_int_equal(fake_log_end(f->t.log, TK_TOPIC, a.partition), a.offset + 2);
  uint64_t before = produced(f);
  create(f, "two", &b);
  assert_int_equal(produced(f), before + 2);
  writer_of(f, a.partition, a.offset, wa, sizeof(wa));
  writer_of(f, b.partition, b.offset, wb, sizeof(wb));
  assert_string_not_equal(wa, wb);
  before = produced(f);
  ctkn_ledger_close(f->l); /* closes "two"'s instance: one checkpoint */
  f->l = NULL;
  assert_int_equal(produced(f), before + 1);

  struct ctkn_projector_stats stats;
  const char *ids[] = {a.record.token.id, b.record.token.id};

  new_replica(f, &sg, &stats, ids, 2);
  assert_int_equal(stats.quarantined, 0);
  assert_int_equal(stats.applied, 2);
  tk_signing_free(&sg);
}

/* A batch's creates without a key go to one partition (128 at most, then
 * the next), each ID drawn so that the partitioner puts it there: one
 * partition's records under one checkpoint. The next batch goes to the
 * next partition. */
static void test_a_batch_of_creates_without_a_key_is_one_partition_s(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  enum { N = 20, M = 200 };
  struct ctkn_command cmds[M];
  struct ctkn_outcome outs[M], warm;
  struct ctkn_err errs[M];
  int rcs[M];

  sign_with_a_key(f, &sg);
  create(f, "warm", &warm); /* the partitions; a random first one */
  uint64_t before = produced(f);
  for (int i = 0; i < M; i++)
    create_cmd(&cmds[i], "sticky", NULL);
  /* Batches of 20, 100 and 200: 20 on the next partition, 100 on the
   * one after, then 128 and 72. */
  const int sizes[] = {N, 100, M};
  int32_t want = warm.partition;
  for (int k = 0; k < 3; k++) {
    assert_int_equal(ctkn_ledger_execute_batch(f->l, cmds, (size_t)sizes[k],
                                               outs, rcs, errs),
                     CTKN_OK);
    want = (want + 1) % NPARTS;
    for (int i = 0; i < sizes[k]; i++) {
      const char *id = outs[i].record.token.id;
      assert_int_equal(rcs[i], CTKN_OK);
      assert_int_equal(outs[i].partition,
                       ctkn_log_partition_for(id, strlen(id), NPARTS));
      if (i == 128)
        want = (want + 1) % NPARTS;
      assert_int_equal(outs[i].partition, want);
    }
    if (k == 0) /* one checkpoint */
      assert_int_equal(produced(f), before + N + 1);
  }
  ctkn_ledger_close(f->l); /* it signs with the key as it closes */
  f->l = NULL;
  tk_signing_free(&sg);
}

/* A server that only creates without keys never catches up to the log's
 * end before planning; it still takes the partition count again every
 * 5 s, so its creates reach partitions added since. */
static void test_creates_reach_partitions_added_to_the_topic(void **s)
{
  struct fx *f = *s;
  struct ctkn_command cmd;
  struct ctkn_outcome out;
  bool seen[NPARTS + 2] = {false};
  int rc;
  struct ctkn_err err;

  create(f, "warm", &out);
  fake_log_add_partitions(f->t.log, TK_TOPIC, NPARTS + 2);
  create_cmd(&cmd, "pipelined", NULL);
  assert_true(ctkn_ledger_pipelines(f->l, &cmd, 1));
  sleep(5);
  usleep(100 * 1000);
  assert_false(ctkn_ledger_pipelines(f->l, &cmd, 1));
  for (int i = 0; i < 2 * (NPARTS + 2); i++) {
    ctkn_ledger_execute_batch(f->l, &cmd, 1, &out, &rc, &err);
    assert_int_equal(rc, CTKN_OK);
    seen[out.partition] = true;
  }
  for (int p = 0; p < NPARTS + 2; p++)
    assert_true(seen[p]);
}

static int64_t mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Submit n creates without a key as one pipelined batch. */
static struct ctkn_ledger_pending *
submit_creates(struct fx *f, struct ctkn_command *cmds, size_t n,
               struct ctkn_outcome *outs, int *rcs, struct ctkn_err *errs)
{
  struct ctkn_ledger_pending *p = NULL;

  for (size_t i = 0; i < n; i++)
    create_cmd(&cmds[i], "piped", NULL);
  assert_true(ctkn_ledger_pipelines(f->l, cmds, n));
  assert_int_equal(ctkn_ledger_submit(f->l, cmds, n, outs, rcs, errs, &p),
                   CTKN_OK);
  return p;
}

/* A submit does not wait for Kafka's acknowledgements: a second signed
 * batch is signed and sent while the first one's reports are still to
 * come, chained onto it, and a new replica verifies both (the first
 * batch's records, then its checkpoints, then the second's, on each
 * partition). */
static void test_signed_batches_are_in_flight_together(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_command c1[4], c2[4];
  struct ctkn_outcome o1[4], o2[4], warm;
  struct ctkn_err e1[4], e2[4];
  int r1[4], r2[4];
  const char *ids[9];

  sign_with_a_key(f, &sg);
  create(f, "warm", &warm); /* the partitions and the signer */
  fake_log_delay_reports(f->t.log, 1000);
  int64_t t0 = mono_ms();
  struct ctkn_ledger_pending *p1 = submit_creates(f, c1, 4, o1, r1, e1);
  struct ctkn_ledger_pending *p2 = submit_creates(f, c2, 4, o2, r2, e2);
  int64_t submitted = mono_ms() - t0;
  assert_int_equal(ctkn_ledger_settle(f->l, p1), CTKN_OK);
  assert_int_equal(ctkn_ledger_settle(f->l, p2), CTKN_OK);
  fake_log_delay_reports(f->t.log, 0);
  /* Both in flight at once: the two submits took less than one report's
   * delay, the settles about one delay. */
  assert_true(submitted < 500);
  ids[0] = warm.record.token.id;
  for (int i = 0; i < 4; i++) {
    assert_int_equal(r1[i], CTKN_OK);
    assert_int_equal(r2[i], CTKN_OK);
    assert_true(o1[i].appended && o2[i].appended);
    ids[1 + i] = o1[i].record.token.id;
    ids[5 + i] = o2[i].record.token.id;
  }
  ctkn_ledger_close(f->l);
  f->l = NULL;

  struct ctkn_projector_stats stats;

  new_replica(f, &sg, &stats, ids, 9);
  assert_int_equal(stats.quarantined, 0);
  assert_int_equal(stats.applied, 9);
  tk_signing_free(&sg);
}

/* Batch 2 is signed onto batch 1 before batch 1's record is refused: on
 * one partition, batch 2's record then links to a record the log does not
 * have. Batch 1 answers "not acknowledged"; batch 2 is never answered as
 * applied (no reader can verify it: quarantined at once, not held until
 * a deadline); the next batch opens a new writer instance and is
 * applied, here and on a new replica. */
static void test_a_failed_batch_ends_the_instance_of_those_after_it(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_command c1[1], c2[1], c3[1];
  struct ctkn_outcome o1[1], o2[1], o3[1], warm;
  struct ctkn_err e1[1], e2[1], e3[1];
  int r1[1], r2[1], r3[1];
  char w2[128], w3[128];
  struct ctkn_err err = {0};

  /* One partition, so batch 2 follows batch 1 on it. */
  ctkn_ledger_close(f->l);
  tk_close(&f->t);
  tk_open(&f->t, 1);
  f->t.cfg.timeout_ms = 800;
  if (ctkn_ledger_open(&f->l, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err) !=
      CTKN_OK)
    fail_msg("ledger: %s", err.msg);
  sign_with_a_key(f, &sg);
  create(f, "warm", &warm);
  fake_log_delay_reports(f->t.log, 100);
  fake_log_fail_sends(f->t.log, 1, CTKN_EKAFKA, false);
  struct ctkn_ledger_pending *p1 = submit_creates(f, c1, 1, o1, r1, e1);
  struct ctkn_ledger_pending *p2 = submit_creates(f, c2, 1, o2, r2, e2);
  ctkn_ledger_settle(f->l, p1);
  ctkn_ledger_settle(f->l, p2);
  fake_log_delay_reports(f->t.log, 0);
  assert_int_equal(r1[0], CTKN_EKAFKA);
  assert_false(o1[0].acknowledged);
  assert_int_equal(r2[0], CTKN_EAPPENDED);
  /* With the gate's own reason, as `ctkn quarantine` lists it. */
  assert_non_null(
      strstr(e2[0].msg, "quarantined: not proven by its writer's checkpoints"));
  assert_false(o2[0].appended);
  writer_of(f, 0, o2[0].offset, w2, sizeof(w2));

  /* Batch 3 opens a new instance and is applied. */
  struct ctkn_ledger_pending *p3 = submit_creates(f, c3, 1, o3, r3, e3);
  assert_int_equal(ctkn_ledger_settle(f->l, p3), CTKN_OK);
  assert_int_equal(r3[0], CTKN_OK);
  assert_true(o3[0].appended);
  writer_of(f, 0, o3[0].offset, w3, sizeof(w3));
  assert_string_not_equal(w2, w3);
  ctkn_ledger_close(f->l);
  f->l = NULL;

  struct ctkn_projector_stats stats;
  const char *ids[] = {warm.record.token.id, o3[0].record.token.id};

  new_replica(f, &sg, &stats, ids, 2);
  assert_int_equal(stats.applied, 2);
  /* batch 1's checkpoint, batch 2's record and checkpoint */
  assert_int_equal(stats.quarantined, 3);
  tk_signing_free(&sg);
}

/* One read batch holds a writer instance's checkpoint, the revoke's
 * keyring record placed on the partition, and the instance's next
 * checkpoint, which the revoke refuses. The first checkpoint is not the
 * newest of its instance in the batch, but the keyring record is a
 * barrier: it is verified at once and proves the record before it, which
 * would otherwise wait forever for a proof the refused one cannot give. */
static void test_a_revoke_in_one_read_batch_is_a_barrier(void **s)
{
  struct fx *f = *s;
  struct tk_signing sg;
  struct ctkn_outcome o, o2;
  struct ctkn_command cmd;
  struct ctkn__ptrust *t = NULL;
  struct ctkn_projector_stats stats = {0};
  struct ctkn_keyring kr;
  struct ctkn_err err = {0};
  const struct ctkn_log_msg *msgs[16];
  int32_t placed;
  size_t n = 0;

  sign_with_a_key(f, &sg);
  create(f, "before", &o); /* its record and checkpoint */
  /* The revoke, placed on every partition (the settings keyring this
   * reader holds still has the key active). */
  tk_writer_keyring(&kr, 2, sg.writer, true);
  assert_int_equal(
      ctkn_trust_keyring_place(&f->t.cfg, sg.root, &kr, &placed, &err),
      CTKN_OK);
  assert_true(placed > o.partition);
  ctkn_keyring_free(&kr);
  /* The same instance writes on the token's partition after it. */
  change_cmd(&cmd, o.record.token.id, "after", false);
  (void)run(f, &cmd, &o2, &err); /* refused by its own projection */
  ctkn_ledger_close(f->l);
  f->l = NULL;
  for (int64_t off = 0; off < fake_log_end(f->t.log, TK_TOPIC, o.partition);
       off++) {
    assert_true(n < 16);
    msgs[n++] = fake_log_record(f->t.log, TK_TOPIC, o.partition, off);
  }
  assert_true(n >= 5); /* record, checkpoint, keyring, record, checkpoint */
  assert_string_equal(msgs[2]->event_type, CTKN_TYPE_KEYRING);
  /* A new projection reads them in one batch. */
  ctkn_store_close(f->t.st);
  f->t.st = NULL;
  tk_rm_rf(f->t.dir);
  tk_reopen(&f->t);
  struct source src = {n, msg_of, NULL, msgs};
  assert_int_equal(ctkn__ptrust_open(&t, f->t.st, &f->t.cfg, sg.root_pub, &err),
                   CTKN_OK);
  if (ctkn__projector_apply_source(f->t.st, CTKN_ENV_SANDBOX, t, &src, NULL, 0,
                                   &stats, &err) != CTKN_OK)
    fail_msg("apply: %s", err.msg);
  assert_int_equal(stats.applied, 1); /* the record before the revoke */
  assert_int_equal(stats.quarantined, n - 3);
  assert_int_equal(ctkn__ptrust_held_first(t, o.partition), -1);
  struct ctkn_record got;
  assert_true(tk_get(&f->t, o.record.token.id, &got));
  assert_string_equal(got.token.name, "before");
  ctkn__ptrust_free(t);
  tk_signing_free(&sg);
}

/* Another writer (the server's follower) applied records past this
 * ledger's consumer, and the seek that would skip them fails (librdkafka
 * timed out waiting for it under load): the command goes on, reading and
 * skipping them, instead of failing with the event already judged. */
static void test_a_failed_seek_past_another_writer_is_not_an_error(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome o, first;
  struct ctkn_command cmd;
  struct ctkn_event ev;
  struct ctkn_err err = {0};
  int32_t p;

  create(f, "first", &first); /* the ledger's consumer is assigned */
  tk_plan_create(&f->t, "other", NULL, &ev);
  int64_t off = tk_append(&f->t, -1, &ev, CTKN_SCHEMA_VERSION, &p);
  assert_int_equal(
      ctkn_projector_apply(f->t.st, CTKN_ENV_SANDBOX,
                           fake_log_record(f->t.log, TK_TOPIC, p, off), 1, NULL,
                           0, NULL, &err),
      CTKN_OK);
  fake_log_fail_seeks(f->t.log, 1, CTKN_EKAFKA);
  change_cmd(&cmd, ev.data.id, "renamed", false);
  if (run(f, &cmd, &o, &err) != CTKN_OK)
    fail_msg("update: %s", err.msg);
  assert_int_equal(o.record.version, 2);
  assert_string_equal(o.record.token.name, "renamed");
  assert_true(o.appended);
  change_cmd(&cmd, first.record.token.id, "again", false);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
}

/* ---- races ------------------------------------------------------------- */

static void test_lost_race_replans_and_reports_the_conflict(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome c, o;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};

  create(f, "v1", &c);
  /* Between this ledger's plan and its append, another writer renames the
   * token: both events carry version 2, and the other one is first. */
  tk_plan_change(&f->t, &c.record, "theirs", false, &f->race);
  f->race_armed = true;
  fake_log_on_send(f->t.log, race_hook, f);
  change_cmd(&cmd, c.record.token.id, "mine", false);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_ECONFLICT);
  assert_non_null(strstr(err.msg, "concurrent change"));
  /* Both were appended; the projection holds the first. */
  struct ctkn_record got;
  assert_true(tk_get(&f->t, c.record.token.id, &got));
  assert_string_equal(got.token.name, "theirs");
  assert_int_equal(got.version, 2);
  assert_int_equal(fake_log_end(f->t.log, TK_TOPIC, c.partition), c.offset + 3);
}

static void test_lost_race_whose_goal_is_met_succeeds(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome c, o;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};

  create(f, "doomed", &c);
  /* Two revokes race; the other one lands first. */
  tk_plan_change(&f->t, &c.record, NULL, true, &f->race);
  f->race_armed = true;
  fake_log_on_send(f->t.log, race_hook, f);
  change_cmd(&cmd, c.record.token.id, NULL, true);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  /* The re-plan found the goal met: the answer is the state, revoked by
   * the other writer, and this command's own event was rejected. */
  assert_false(o.appended);
  assert_int_equal(o.record.token.status, CTKN_STATUS_REVOKED);
  assert_int_equal(o.record.token.revoked_at, f->race.data.revoked_at);
}

static void test_idempotency_race_answers_the_first_token(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome o;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};
  int32_t kp = ctkn_log_partition_for("order-42", 8, NPARTS);

  /* A duplicate request with the same key lands between this ledger's
   * plan and its append, on the key's partition (where every writer puts
   * a create with a key, so duplicates are ordered). */
  tk_plan_create(&f->t, "same request", "order-42", &f->race);
  f->race_p = kp;
  f->race_armed = true;
  fake_log_on_send(f->t.log, race_hook, f);
  create_cmd(&cmd, "same request", "order-42");
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  /* Its own create was rejected; the re-plan answers the first token. */
  assert_false(o.appended);
  assert_string_equal(o.record.token.id, f->race.data.id);
  assert_int_equal(fake_log_end(f->t.log, TK_TOPIC, kp), 2);
  ctkn_store_txn *txn;
  char id[CTKN_ID_BUF];
  uint8_t hash[CTKN_HASH_LEN];
  assert_int_equal(ctkn_store_begin(f->t.st, false, &txn, NULL), CTKN_OK);
  assert_int_equal(ctkn_store_get_idem(txn, "order-42", id, hash, NULL),
                   CTKN_OK);
  ctkn_store_abort(txn);
  assert_string_equal(id, f->race.data.id);
}

static void test_same_key_with_another_request_is_a_conflict(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome o;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};

  create_cmd(&cmd, "first", "k-1");
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  assert_true(o.appended);
  create_cmd(&cmd, "first", "k-1");
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  assert_false(o.appended); /* a retry */
  create_cmd(&cmd, "different", "k-1");
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_ECONFLICT);
  assert_non_null(strstr(err.msg, "different request"));
  assert_int_equal(produced(f), 1);
}

/* ---- what the log does not acknowledge --------------------------------- */

static void test_unacknowledged_append_is_exit_3_and_nothing_shows(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome o;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};

  fake_log_fail_sends(f->t.log, 1, CTKN_ETIMEOUT, false);
  create_cmd(&cmd, "lost", NULL);
  int rc = run(f, &cmd, &o, &err);
  assert_int_equal(rc, CTKN_ETIMEOUT);
  assert_int_equal(ctkn_error_exit(rc), 3);
  assert_false(o.appended);
  for (int32_t p = 0; p < NPARTS; p++)
    assert_int_equal(fake_log_end(f->t.log, TK_TOPIC, p), 0);
}

static void test_unknown_outcome_retried_with_the_key_is_one_token(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome o, retry;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};

  /* The record reached the log but its report was lost. */
  fake_log_fail_sends(f->t.log, 1, CTKN_ETIMEOUT, true);
  create_cmd(&cmd, "maybe", "retry-me");
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_ETIMEOUT);
  /* The retry with the same key answers the token the first try made. */
  create_cmd(&cmd, "maybe", "retry-me");
  assert_int_equal(run(f, &cmd, &retry, &err), CTKN_OK);
  assert_false(retry.appended);
  int64_t total = 0;
  for (int32_t p = 0; p < NPARTS; p++)
    total += fake_log_end(f->t.log, TK_TOPIC, p);
  assert_int_equal(total, 1);
  assert_true(tk_get(&f->t, retry.record.token.id, &retry.record));
}

static void test_a_paused_partition_says_the_event_is_not_yet_applied(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome c, o;
  struct ctkn_command cmd;
  struct ctkn_err err = {0};

  create(f, "behind a newer schema", &c);
  /* A record of a schema this build does not know stops the partition. */
  tk_append_raw(&f->t, c.partition, c.record.token.id, "future", 6,
                "client_token.updated", CTKN_SCHEMA_VERSION + 1);
  change_cmd(&cmd, c.record.token.id, NULL, true);
  int rc = run(f, &cmd, &o, &err);
  /* Acknowledged, so not exit 3 (which says "not acknowledged: retry"). */
  assert_int_equal(rc, CTKN_EAPPENDED);
  assert_int_equal(ctkn_error_exit(rc), 4);
  assert_true(o.acknowledged);
  if (strstr(err.msg, "paused") == NULL ||
      strstr(err.msg, "appended (partition") == NULL)
    fail_msg("%s: %s", ctkn_strerror(rc), err.msg);
  /* The revoke is in the log, not in the projection. */
  struct ctkn_record got;
  assert_true(tk_get(&f->t, c.record.token.id, &got));
  assert_int_equal(got.token.status, CTKN_STATUS_ACTIVE);
}

/* A partition paused behind a newer schema would leave a create appended
 * but never judged here: a batch of creates without a key passes it
 * over. */
static void test_creates_without_a_key_pass_a_paused_partition_over(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome c, o, outs[4];
  struct ctkn_command cmd, cmds[4];
  struct ctkn_err err = {0}, errs[4];
  int rcs[4];

  create(f, "warm", &c); /* the first batch's partition */
  int32_t next = (c.partition + 1) % NPARTS;
  tk_append_raw(&f->t, next, "ctkn_x", "future", 6, "client_token.updated",
                CTKN_SCHEMA_VERSION + 1);
  /* A change catches up to the log's end: the projection pauses next. */
  change_cmd(&cmd, c.record.token.id, "renamed", false);
  assert_int_equal(run(f, &cmd, &o, &err), CTKN_OK);
  for (int i = 0; i < 4; i++)
    create_cmd(&cmds[i], "fresh", NULL);
  assert_int_equal(ctkn_ledger_execute_batch(f->l, cmds, 4, outs, rcs, errs),
                   CTKN_OK);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(rcs[i], CTKN_OK);
    assert_int_equal(outs[i].partition, (next + 1) % NPARTS);
  }
}

/* ---- batches ----------------------------------------------------------- */

static void test_changes_to_one_token_in_a_batch_apply_in_order(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome c, d, outs[8];
  struct ctkn_command cmds[8];
  struct ctkn_err errs[8];
  int rcs[8];
  uint64_t v;

  create(f, "shared", &c);
  create(f, "other", &d);
  v = c.record.version;
  change_cmd(&cmds[0], c.record.token.id, "one", false);
  change_cmd(&cmds[1], c.record.token.id, "two", false);
  create_cmd(&cmds[2], "fresh", NULL);
  ctkn_command_init(&cmds[3], CTKN_CMD_CREATE);        /* no name: refused */
  change_cmd(&cmds[4], c.record.token.id, NULL, true); /* revoke */
  change_cmd(&cmds[5], c.record.token.id, NULL, true); /* again: no-op */
  change_cmd(&cmds[6], c.record.token.id, "three", false); /* revoked */
  change_cmd(&cmds[7], d.record.token.id, "other 2", false);
  assert_int_equal(ctkn_ledger_execute_batch(f->l, cmds, 8, outs, rcs, errs),
                   CTKN_OK);
  /* One writer took them in this order: each change to the token is
   * planned after the one before it in the batch, and none conflicts with
   * another (a revoke racing two renames on one server was refused). */
  assert_int_equal(rcs[0], CTKN_OK);
  assert_string_equal(outs[0].record.token.name, "one");
  assert_int_equal(outs[0].record.version, v + 1);
  assert_int_equal(rcs[1], CTKN_OK);
  assert_string_equal(outs[1].record.token.name, "two");
  assert_int_equal(outs[1].record.version, v + 2);
  assert_int_equal(rcs[2], CTKN_OK);
  assert_true(outs[2].appended);
  assert_int_equal(rcs[3], CTKN_EINVAL);
  assert_string_equal(errs[3].field, "name");
  assert_int_equal(rcs[4], CTKN_OK);
  assert_int_equal(outs[4].record.token.status, CTKN_STATUS_REVOKED);
  assert_string_equal(outs[4].record.token.name, "two");
  assert_int_equal(outs[4].record.version, v + 3);
  assert_int_equal(rcs[5], CTKN_OK); /* revoked already, by cmds[4] */
  assert_false(outs[5].appended);
  assert_int_equal(outs[5].record.version, v + 3);
  assert_int_equal(outs[5].record.offset, outs[4].record.offset);
  assert_int_equal(rcs[6], CTKN_ECONFLICT);
  assert_non_null(strstr(errs[6].msg, "is revoked"));
  assert_int_equal(rcs[7], CTKN_OK);
  assert_int_equal(outs[7].record.version, d.record.version + 1);
  assert_int_equal(produced(f), 2 + 5); /* one, two, fresh, revoke, other */
  /* The projection holds what the last applied change made. */
  struct ctkn_outcome g;
  struct ctkn_err err;
  change_cmd(&cmds[0], c.record.token.id, NULL, true);
  assert_int_equal(run(f, &cmds[0], &g, &err), CTKN_OK);
  assert_false(g.appended);
  assert_string_equal(g.record.token.name, "two");
  assert_int_equal(g.record.version, v + 3);
}

/* Another writer's rename lands between this ledger's plan and its append
 * of a batch holding a rename and then a revoke of the token. The rename
 * loses (conflict, re-planned once); the revoke is planned only after it
 * was judged, against the state the other writer made, and applies on top
 * of it: the other writer's rename stays. (Planned on top of the lost
 * rename's event instead, with chained versions, the revoke applied over
 * the other writer's change with the lost rename's name.) */
static void
test_a_change_after_a_lost_one_in_its_batch_keeps_the_winner(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome c, outs[3];
  struct ctkn_command cmds[3];
  struct ctkn_err errs[3];
  int rcs[3];

  create(f, "raced", &c);
  tk_plan_change(&f->t, &c.record, "theirs", false, &f->race);
  usleep(20000); /* this ledger plans later than the other writer did */
  f->race_armed = true;
  fake_log_on_send(f->t.log, race_hook, f);
  change_cmd(&cmds[0], c.record.token.id, "mine", false);
  change_cmd(&cmds[1], c.record.token.id, NULL, true); /* after "mine" */
  change_cmd(&cmds[2], c.record.token.id, NULL, true); /* a no-op after it */
  assert_int_equal(ctkn_ledger_execute_batch(f->l, cmds, 3, outs, rcs, errs),
                   CTKN_OK);
  assert_int_equal(rcs[0], CTKN_ECONFLICT);
  assert_non_null(strstr(errs[0].msg, "concurrent change"));
  assert_int_equal(rcs[1], CTKN_OK);
  assert_string_equal(outs[1].record.token.name, "theirs");
  assert_int_equal(outs[1].record.token.status, CTKN_STATUS_REVOKED);
  assert_int_equal(rcs[2], CTKN_OK);
  assert_false(outs[2].appended);
  struct ctkn_record got;
  assert_true(tk_get(&f->t, c.record.token.id, &got));
  assert_string_equal(got.token.name, "theirs");
  assert_int_equal(got.token.status, CTKN_STATUS_REVOKED);
  assert_int_equal(got.version, c.record.version + 2);
}

static void test_batch_failure_marks_only_the_unacknowledged(void **s)
{
  struct fx *f = *s;
  struct ctkn_outcome outs[3];
  struct ctkn_command cmds[3];
  struct ctkn_err errs[3];
  int rcs[3];

  for (int i = 0; i < 3; i++)
    create_cmd(&cmds[i], "batch", NULL);
  /* The first record fails before reaching the log; the others land. */
  fake_log_fail_sends(f->t.log, 1, CTKN_EKAFKA, false);
  ctkn_ledger_execute_batch(f->l, cmds, 3, outs, rcs, errs);
  assert_int_equal(rcs[0], CTKN_EKAFKA);
  assert_false(outs[0].appended);
  assert_int_equal(rcs[1], CTKN_OK);
  assert_int_equal(rcs[2], CTKN_OK);
  assert_true(outs[1].appended && outs[2].appended);
}

/* ---- create --batch (ctkn_ledger_create_lines) ------------------------- */

/* Run the lines of input; returns the call's code, *worst its exit. */
static int run_lines(struct fx *f, const char *input, int *worst)
{
  struct ctkn_err err = {0};
  FILE *in = fmemopen((void *)input, strlen(input), "r");
  FILE *out;
  int rc;

  /* fmemopen refuses a zero-length buffer on some C libraries. */
  if (*input == '\0')
    in = fopen("/dev/null", "r");
  assert_non_null(in);
  free(f->out);
  f->out = NULL;
  out = open_memstream(&f->out, &f->outlen);
  assert_non_null(out);
  rc = ctkn_ledger_create_lines(f->l, in, out, worst, &err);
  fclose(out);
  fclose(in);
  return rc;
}

/* The n-th (0-based) line of f->out, copied into buf. */
static const char *line(const struct fx *f, int n, char *buf, size_t size)
{
  const char *s = f->out;

  for (int i = 0; i < n && s != NULL; i++)
    if ((s = strchr(s, '\n')) != NULL)
      s++;
  assert_non_null(s);
  const char *end = strchr(s, '\n');
  assert_non_null(end);
  snprintf(buf, size, "%.*s", (int)(end - s), s);
  return buf;
}

static size_t count_lines(const char *s)
{
  size_t n = 0;

  for (; s != NULL && *s; s++)
    n += *s == '\n';
  return n;
}

static void assert_has(const char *hay, const char *needle)
{
  if (strstr(hay, needle) == NULL)
    fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void test_each_line_is_answered_in_input_order(void **state)
{
  struct fx *f = *state;
  char buf[2048];
  int worst = -1;

  assert_int_equal(run_lines(f,
                             "{\"name\":\"first\"}\n"
                             "not json\n"
                             "{\"name\":\"\"}\n"
                             "{\"name\":\"second\",\"description\":\"d\"}\n"
                             "{\"name\":\"last, without a newline\"}",
                             &worst),
                   CTKN_OK);
  assert_int_equal(count_lines(f->out), 5);
  assert_has(line(f, 0, buf, sizeof(buf)), "{\"data\":{\"id\":\"ctkn_");
  assert_has(buf, "\"name\":\"first\"");
  assert_has(line(f, 1, buf, sizeof(buf)), "{\"error\":{");
  assert_has(buf, "\"code\":\"bad_request\"");
  assert_has(line(f, 2, buf, sizeof(buf)), "\"code\":\"invalid_field\"");
  assert_has(buf, "\"field\":\"name\"");
  assert_has(line(f, 3, buf, sizeof(buf)), "\"name\":\"second\"");
  assert_has(buf, "\"description\":\"d\"");
  assert_has(line(f, 4, buf, sizeof(buf)), "\"name\":\"last, without");
  assert_int_equal(worst, 1);

  /* The three created tokens are in the projection. */
  struct ctkn_list_params p;
  struct ctkn_err err = {0};
  char *json;
  ctkn_list_params_init(&p);
  assert_int_equal(
      ctkn_query_list(f->t.st, NULL, &p, NULL, true, NULL, &json, &err),
      CTKN_OK);
  assert_has(json, "\"estimated_total\":3");
  free(json);
}

static void test_all_created_is_exit_0_and_no_input_no_output(void **state)
{
  struct fx *f = *state;
  int worst = -1;

  assert_int_equal(run_lines(f, "{\"name\":\"a\"}\n{\"name\":\"b\"}\n", &worst),
                   CTKN_OK);
  assert_int_equal(count_lines(f->out), 2);
  assert_int_equal(worst, 0);

  assert_int_equal(run_lines(f, "", &worst), CTKN_OK);
  assert_int_equal(f->outlen, 0);
  assert_int_equal(worst, 0);
}

struct piped_lines {
  struct fx *f;
  FILE *in, *out;
  int rc, worst;
};

static void *piped_lines_run(void *arg)
{
  struct piped_lines *pl = arg;
  struct ctkn_err err = {0};

  pl->rc =
      ctkn_ledger_create_lines(pl->f->l, pl->in, pl->out, &pl->worst, &err);
  fclose(pl->out); /* the end of the answers */
  return NULL;
}

/* One answer line from fd within 10 s, into buf; false if none came. */
static bool answer_within(int fd, char *buf, size_t size)
{
  size_t n = 0;

  while (n + 1 < size) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1)
      return false;
    ssize_t got = read(fd, buf + n, 1);
    if (got != 1)
      return false;
    if (buf[n++] == '\n')
      break;
  }
  buf[n] = '\0';
  return true;
}

/* A client that sends a line and waits for its answer gets it, while its
 * input is still open, even with half of the next line sent: a batch
 * ends where the input stops for now. */
static void test_a_line_is_answered_before_the_input_ends(void **state)
{
  struct fx *f = *state;
  struct piped_lines pl = {.f = f, .rc = -1, .worst = -1};
  int in[2], out[2];
  char first[2048], second[2048];
  pthread_t t;

  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  pl.in = fdopen(in[0], "r");
  pl.out = fdopen(out[1], "w");
  assert_true(pl.in != NULL && pl.out != NULL);
  assert_int_equal(pthread_create(&t, NULL, piped_lines_run, &pl), 0);

  const char *one = "{\"name\":\"one\"}\n{\"name\":\"tw", *rest = "o\"}\n";
  bool got1 = write(in[1], one, strlen(one)) == (ssize_t)strlen(one) &&
              answer_within(out[0], first, sizeof(first));
  bool got2 = write(in[1], rest, strlen(rest)) == (ssize_t)strlen(rest) &&
              answer_within(out[0], second, sizeof(second));
  close(in[1]); /* the end: the call returns, even after a failure above */
  assert_int_equal(pthread_join(t, NULL), 0);

  assert_true(got1);
  assert_has(first, "\"name\":\"one\"");
  assert_true(got2);
  assert_has(second, "\"name\":\"two\"");
  assert_int_equal(pl.rc, CTKN_OK);
  assert_int_equal(pl.worst, 0);
  assert_int_equal(read(out[0], first, sizeof(first)), 0); /* nothing more */
  fclose(pl.in);
  close(out[0]);
}

/* More lines than one chunk: every one answered, in order. */
static void test_many_lines_span_chunks(void **state)
{
  struct fx *f = *state;
  enum { N = 1100 };
  char *input = malloc(N * 32), *p = input, buf[2048], want[64];
  int worst = -1;

  assert_non_null(input);
  for (int i = 0; i < N; i++)
    p += sprintf(p, "{\"name\":\"t%d\"}\n", i);
  assert_int_equal(run_lines(f, input, &worst), CTKN_OK);
  assert_int_equal(worst, 0);
  assert_int_equal(count_lines(f->out), N);
  for (int i = 0; i < N; i += 137) {
    snprintf(want, sizeof(want), "\"name\":\"t%d\"", i);
    assert_has(line(f, i, buf, sizeof(buf)), want);
  }
  free(input);
}

struct lines_probe {
  struct fx *f;
  int sends;
  size_t out_at_second; /* answer bytes written when chunk 2 was sent */
};

/* Chunk 1's produce holds the log's readers back, so its events cannot be
 * judged; chunk 2's notes what was answered meanwhile and lets them go. */
static void lines_on_send(void *arg)
{
  struct lines_probe *p = arg;

  if (++p->sends == 1) {
    fake_log_hold_polls(p->f->t.log, true);
  } else if (p->sends == 2) {
    p->out_at_second = __atomic_load_n(&p->f->outlen, __ATOMIC_SEQ_CST);
    fake_log_hold_polls(p->f->t.log, false);
  }
}

/* Chunks of creates without a key read nothing: chunk 2 is appended while
 * the projection is still to judge chunk 1, whose answers come once it
 * has, in input order. */
static void
test_chunks_of_creates_are_appended_while_the_last_settles(void **state)
{
  struct fx *f = *state;
  enum { N = 1024 };
  char *input = malloc(N * 32), *p = input, buf[2048], want[64];
  struct lines_probe probe = {.f = f};
  struct ctkn_outcome o;
  int worst = -1;

  assert_non_null(input);
  create(f, "warm", &o); /* the partitions */
  for (int i = 0; i < N; i++)
    p += sprintf(p, "{\"name\":\"t%d\"}\n", i);
  fake_log_on_send(f->t.log, lines_on_send, &probe);
  assert_int_equal(run_lines(f, input, &worst), CTKN_OK);
  fake_log_on_send(f->t.log, NULL, NULL);
  assert_int_equal(probe.sends, 2);
  assert_int_equal(probe.out_at_second, 0);
  assert_int_equal(worst, 0);
  assert_int_equal(count_lines(f->out), N);
  for (int i = 0; i < N; i += 101) {
    snprintf(want, sizeof(want), "\"name\":\"t%d\"", i);
    assert_has(line(f, i, buf, sizeof(buf)), want);
    assert_has(buf, "\"acknowledged\":true");
  }
  assert_int_equal(produced(f), N + 1);
  free(input);
}

/* A Kafka that does not take the events: those lines answer
 * service_unavailable, and the worst exit is 3. */
static void test_unavailable_kafka_is_exit_3(void **state)
{
  struct fx *f = *state;
  char buf[2048];
  int worst = -1;

  fake_log_fail_sends(f->t.log, 1, CTKN_EKAFKA, false);
  assert_int_equal(run_lines(f, "{\"name\":\"a\"}\nnot json\n", &worst),
                   CTKN_OK);
  assert_int_equal(count_lines(f->out), 2);
  assert_has(line(f, 0, buf, sizeof(buf)), "\"code\":\"service_unavailable\"");
  assert_has(line(f, 1, buf, sizeof(buf)), "\"code\":\"bad_request\"");
  assert_int_equal(worst, 3);
}

/* ---- a follower applies for the ledger (ctkn serve) --------------------- */

struct follower {
  ctkn_projector *p; /* the follower's own projector */
  int calls;
  int64_t last[NPARTS]; /* the last wait's targets */
  int32_t lastn;
  bool fail; /* the wait fails: a stalled follower */
};

static int follower_wait(void *arg, const int64_t *targets, int32_t n,
                         struct ctkn_err *err)
{
  struct follower *fw = arg;

  fw->calls++;
  fw->lastn = n;
  for (int32_t i = 0; i < n && i < NPARTS; i++)
    fw->last[i] = targets[i];
  if (fw->fail) {
    *err = (struct ctkn_err){.code = CTKN_ETIMEOUT};
    snprintf(err->msg, sizeof(err->msg), "the follower is stalled");
    return CTKN_ETIMEOUT;
  }
  return ctkn_projector_catch_up(fw->p, targets, n, err);
}

/* With a follower, the ledger reads nothing itself: it waits, for the
 * log's end before a plan that reads, then for its own events, and
 * answers from what the follower applied. A failed wait leaves the
 * event acknowledged and not yet applied, saying why. */
static void test_a_following_ledger_waits_for_its_follower(void **s)
{
  struct fx *f = *s;
  struct follower fw = {0};
  struct fake_log_stats st0, st1;
  struct ctkn_command cmd;
  struct ctkn_outcome o1, o2, o3;
  struct ctkn_err err = {0};

  assert_int_equal(
      ctkn_projector_open(&fw.p, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err),
      CTKN_OK);
  ctkn_ledger_follow_with(f->l, follower_wait, &fw);
  fake_log_stats(f->t.log, &st0);

  create(f, "a", &o1); /* the partitions unknown: the log's end first */
  assert_true(o1.appended && o1.acknowledged);
  assert_int_equal(fw.calls, 2);
  assert_int_equal(fw.lastn, NPARTS);
  assert_int_equal(fw.last[o1.partition], o1.offset + 1);

  change_cmd(&cmd, o1.record.token.id, "b", false); /* reads: end, then own */
  assert_int_equal(run(f, &cmd, &o2, &err), CTKN_OK);
  assert_string_equal(o2.record.token.name, "b");
  assert_int_equal(o2.record.version, 2);
  assert_int_equal(fw.calls, 4);
  assert_int_equal(fw.last[o2.partition], o2.offset + 1);

  /* One assignment in all: the follower's; the ledger's projector has
   * fetched nothing. */
  fake_log_stats(f->t.log, &st1);
  assert_int_equal(st1.assigns - st0.assigns, 1);

  fw.fail = true;
  create_cmd(&cmd, "c", NULL);
  assert_int_equal(run(f, &cmd, &o3, &err), CTKN_EAPPENDED);
  assert_true(o3.acknowledged);
  assert_false(o3.appended);
  assert_non_null(strstr(err.msg, "the follower is stalled"));

  /* The topic deleted and re-created under the projection. A plan that
   * reads is refused before it appends (its stored offsets lie past the
   * new log's end), as its own catch-up would refuse it. */
  fw.fail = false;
  fake_log_create(f->t.log, TK_TOPIC, NPARTS);
  uint64_t before = produced(f);
  change_cmd(&cmd, o1.record.token.id, "d", false);
  assert_int_equal(run(f, &cmd, &o3, &err), CTKN_ECONFLICT);
  assert_non_null(strstr(err.msg, "re-created"));
  assert_int_equal(produced(f), before);
  /* A create reads nothing: on a partition the old topic never reached
   * it is applied as on any new log; where the projection already holds
   * another event at its offset it is never answered as applied. */
  int refused = 0;
  for (int i = 0; i < 2 * NPARTS; i++) {
    struct ctkn_record r;
    create_cmd(&cmd, "e", NULL);
    if (run(f, &cmd, &o3, &err) == CTKN_OK) {
      assert_true(o3.appended);
      assert_true(tk_get(&f->t, o3.record.token.id, &r));
      assert_string_equal(r.token.name, "e");
      assert_int_equal(r.offset, o3.offset);
      continue;
    }
    assert_false(o3.appended);
    assert_non_null(strstr(err.msg, "re-created"));
    refused++;
  }
  assert_true(refused > 0);
  ctkn_ledger_close(f->l);
  f->l = NULL;
  ctkn_projector_close(fw.p);
}

/* ---- create --batch retries (issue #13) --------------------------------- */

#include "ctkn/codec.h"

/* n keyed create lines: {"name":"<prefix><i>","idempotency_key":"k<i>"}. */
static char *keyed_lines(int n, const char *prefix)
{
  char *input = malloc((size_t)n * 80 + 1), *p = input;

  assert_non_null(input);
  *p = '\0';
  for (int i = 0; i < n; i++)
    p += sprintf(p, "{\"name\":\"%s%d\",\"idempotency_key\":\"k%d\"}\n", prefix,
                 i, i);
  return input;
}

/* How many client_token.created records in the log carry key. */
static int created_with_key(struct fake_log *log, const char *key)
{
  int count = 0;

  for (int32_t p = 0; p < NPARTS; p++) {
    for (int64_t off = 0; off < fake_log_end(log, TK_TOPIC, p); off++) {
      const struct ctkn_log_msg *m = fake_log_record(log, TK_TOPIC, p, off);
      struct ctkn_event ev;
      assert_non_null(m);
      if (ctkn_event_decode(m->value, m->value_len, &ev, NULL) == CTKN_OK &&
          ev.type == CTKN_EVENT_CREATED && strcmp(ev.idempotency_key, key) == 0)
        count++;
    }
  }
  return count;
}

/* The token ID of an answer line ("" for an error envelope). */
static void answer_id(const char *answer, char id[CTKN_ID_BUF])
{
  const char *s = strstr(answer, "{\"data\":{\"id\":\"");

  id[0] = '\0';
  if (s != NULL)
    snprintf(id, CTKN_ID_BUF, "%.*s", CTKN_ID_LEN, s + 15);
}

static void test_batch_lines_take_idempotency_keys(void **state)
{
  struct fx *f = *state;
  char buf[2048], first[CTKN_ID_BUF], again[CTKN_ID_BUF];
  int worst = -1;
  const char *input = "{\"name\":\"a\",\"idempotency_key\":\"order-1\"}\n"
                      "{\"name\":\"b\",\"idempotency_key\":\"has space\"}\n"
                      "{\"name\":\"c\",\"idempotency_key\":7}\n"
                      "{\"name\":\"other\",\"idempotency_key\":\"order-1\"}\n";

  assert_int_equal(run_lines(f, input, &worst), CTKN_OK);
  assert_int_equal(worst, 1);
  assert_has(line(f, 0, buf, sizeof(buf)), "\"acknowledged\":true");
  answer_id(buf, first);
  assert_true(first[0] != '\0');
  /* The key's rules are --idempotency-key's and the header's. */
  assert_has(line(f, 1, buf, sizeof(buf)), "\"field\":\"idempotency_key\"");
  assert_has(buf, "visible ASCII");
  assert_has(buf, "\"acknowledged\":false");
  assert_has(line(f, 2, buf, sizeof(buf)), "\"field\":\"idempotency_key\"");
  /* The same key with another request, in the same batch: a conflict,
   * and one event for the key. */
  assert_has(line(f, 3, buf, sizeof(buf)), "\"code\":\"conflict\"");
  assert_has(buf, "\"acknowledged\":false");
  assert_int_equal(produced(f), 1);

  /* The same line again: the first token, nothing appended. */
  assert_int_equal(
      run_lines(f, "{\"name\":\"a\",\"idempotency_key\":\"order-1\"}\n",
                &worst),
      CTKN_OK);
  assert_int_equal(worst, 0);
  answer_id(line(f, 0, buf, sizeof(buf)), again);
  assert_string_equal(again, first);
  assert_has(buf, "\"acknowledged\":true");
  assert_int_equal(produced(f), 1);
  assert_int_equal(created_with_key(f->t.log, "order-1"), 1);
}

/* Two lines with one key in one batch: one event, one token for both. */
static void test_one_key_twice_in_a_batch_appends_once(void **state)
{
  struct fx *f = *state;
  char buf[2048], a[CTKN_ID_BUF], b[CTKN_ID_BUF];
  int worst = -1;

  assert_int_equal(run_lines(f,
                             "{\"name\":\"x\",\"idempotency_key\":\"dup\"}\n"
                             "{\"name\":\"y\"}\n"
                             "{\"name\":\"x\",\"idempotency_key\":\"dup\"}\n",
                             &worst),
                   CTKN_OK);
  assert_int_equal(worst, 0);
  answer_id(line(f, 0, buf, sizeof(buf)), a);
  answer_id(line(f, 2, buf, sizeof(buf)), b);
  assert_true(a[0] != '\0');
  assert_string_equal(a, b);
  assert_int_equal(produced(f), 2);
  assert_int_equal(created_with_key(f->t.log, "dup"), 1);
}

/* The log fails after acknowledging some of a batch's records: those
 * lines say so (exit 0), the rest are not acknowledged (exit 3). The
 * retry with the same keys leaves one created record per key and answers
 * the acknowledged lines with their first tokens. */
static void test_failure_after_some_acks_then_retry_is_one_per_key(void **state)
{
  struct fx *f = *state;
  enum { N = 8, OK = 3 };
  char *input = keyed_lines(N, "t");
  char buf[2048], ids[N][CTKN_ID_BUF], key[16];
  int worst = -1;

  fake_log_fail_sends_after(f->t.log, OK, N - OK, CTKN_EKAFKA, false);
  assert_int_equal(run_lines(f, input, &worst), CTKN_OK);
  assert_int_equal(worst, 3);
  assert_int_equal(produced(f), OK);
  for (int i = 0; i < N; i++) {
    line(f, i, buf, sizeof(buf));
    answer_id(buf, ids[i]);
    if (i < OK) {
      assert_true(ids[i][0] != '\0');
      assert_has(buf, "\"acknowledged\":true");
    } else {
      assert_has(buf, "\"code\":\"service_unavailable\"");
      assert_has(buf, "\"acknowledged\":false");
    }
  }

  assert_int_equal(run_lines(f, input, &worst), CTKN_OK);
  assert_int_equal(worst, 0);
  assert_int_equal(produced(f), N);
  for (int i = 0; i < N; i++) {
    char id[CTKN_ID_BUF];
    answer_id(line(f, i, buf, sizeof(buf)), id);
    assert_has(buf, "\"acknowledged\":true");
    if (i < OK)
      assert_string_equal(id, ids[i]);
    snprintf(key, sizeof(key), "k%d", i);
    assert_int_equal(created_with_key(f->t.log, key), 1);
  }
  free(input);
}

/* A projection whose map fills mid-batch: every acknowledged line the
 * projection did not reach says it is appended (exit 4, not 3), every
 * line after says the map is full (exit 3), the chunks after the failure
 * too (a catch-up after a failed one starts from the stored offsets
 * rather than wait for records its consumer has passed); each names the
 * map size and --map-size. With a larger map, the retry answers every
 * acknowledged line with its first token and appends only what was never
 * appended. */
static void test_map_full_mid_batch_then_retry_is_one_per_key(void **state)
{
  struct fx *f = *state;
  enum { N = 1600 }; /* four chunks: the later ones must not stall */
  struct ctkn_store_opts small = {.map_size = 256 << 10};
  struct ctkn_store_opts large = {.map_size = 64 << 20};
  struct ctkn_err err = {0};
  char *input = keyed_lines(N, "a fairly long token name to fill pages ");
  char buf[2048], key[16];
  static char ids[N][CTKN_ID_BUF];
  int worst = -1, applied = 0, pending = 0, refused = 0;

  /* The fixture's projection, swapped for a small one. */
  ctkn_ledger_close(f->l);
  ctkn_store_close(f->t.st);
  tk_rm_rf(f->t.dir);
  assert_int_equal(ctkn_store_open(&f->t.st, f->t.dir, &small, &err), CTKN_OK);
  assert_int_equal(
      ctkn_ledger_open(&f->l, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err),
      CTKN_OK);

  assert_int_equal(run_lines(f, input, &worst), CTKN_OK);
  assert_int_equal(count_lines(f->out), N);
  uint64_t first_run = produced(f);
  for (int i = 0; i < N; i++) {
    line(f, i, buf, sizeof(buf));
    answer_id(buf, ids[i]);
    if (ids[i][0] != '\0') {
      applied++;
      assert_has(buf, "\"acknowledged\":true");
      continue;
    }
    assert_has(buf, "the projection's LMDB map is full (--map-size 256K)");
    assert_has(buf, "restart with a larger --map-size");
    if (strstr(buf, "\"acknowledged\":true") != NULL) {
      pending++;
      assert_has(buf, "is appended (partition");
      assert_has(buf, "but not yet applied");
    } else {
      refused++;
      assert_has(buf, "\"acknowledged\":false");
    }
  }
  print_message("map full: %d applied, %d appended only, %d refused\n", applied,
                pending, refused);
  assert_true(applied > 0 && pending > 0 && refused > 0);
  assert_int_equal((uint64_t)(applied + pending), first_run);
  assert_int_equal(worst, 3);

  /* The same lines, with a map large enough. */
  ctkn_ledger_close(f->l);
  ctkn_store_close(f->t.st);
  assert_int_equal(ctkn_store_open(&f->t.st, f->t.dir, &large, &err), CTKN_OK);
  assert_int_equal(
      ctkn_ledger_open(&f->l, f->t.st, &f->t.cfg, CTKN_ENV_SANDBOX, &err),
      CTKN_OK);
  assert_int_equal(run_lines(f, input, &worst), CTKN_OK);
  assert_int_equal(worst, 0);
  assert_int_equal(produced(f), N);
  for (int i = 0; i < N; i++) {
    char id[CTKN_ID_BUF];
    answer_id(line(f, i, buf, sizeof(buf)), id);
    if (ids[i][0] != '\0')
      assert_string_equal(id, ids[i]);
    snprintf(key, sizeof(key), "k%d", i);
    assert_int_equal(created_with_key(f->t.log, key), 1);
  }
  free(input);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_create_appends_one_event_and_answers_after_projecting),
      T(test_changes_go_to_the_token_s_partition),
      T(test_noops_append_nothing),
      T(test_unknown_token_is_notfound_and_appends_nothing),
      T(test_a_stale_projection_is_caught_up_before_planning),
      T(test_only_commands_that_read_the_projection_catch_up_first),
      T(test_a_pass_that_only_skips_commits_nothing),
      T(test_a_trusted_ledger_without_a_key_appends_nothing),
      T(test_a_ledger_opened_trusted_signs_and_creates_at_once),
      T(test_a_ledger_opened_trusted_refuses_a_key_not_in_the_keyring),
      T(test_a_ledger_opened_trusted_without_a_topic_says_init),
      T(test_a_root_without_a_keyring_judges_nothing),
      T(test_a_last_batch_closes_the_instance_with_its_checkpoints),
      T(test_a_new_replica_of_a_heartbeating_writer_applies_it_all),
      T(test_a_heartbeat_gives_up_a_record_never_checkpointed),
      T(test_a_revoke_in_one_read_batch_is_a_barrier),
      T(test_a_failed_seek_past_another_writer_is_not_an_error),
      T(test_lost_race_replans_and_reports_the_conflict),
      T(test_lost_race_whose_goal_is_met_succeeds),
      T(test_idempotency_race_answers_the_first_token),
      T(test_same_key_with_another_request_is_a_conflict),
      T(test_unacknowledged_append_is_exit_3_and_nothing_shows),
      T(test_unknown_outcome_retried_with_the_key_is_one_token),
      T(test_a_paused_partition_says_the_event_is_not_yet_applied),
      T(test_creates_without_a_key_pass_a_paused_partition_over),
      T(test_a_following_ledger_waits_for_its_follower),
      T(test_changes_to_one_token_in_a_batch_apply_in_order),
      T(test_a_change_after_a_lost_one_in_its_batch_keeps_the_winner),
      T(test_batch_failure_marks_only_the_unacknowledged),
      T(test_each_line_is_answered_in_input_order),
      T(test_all_created_is_exit_0_and_no_input_no_output),
      T(test_many_lines_span_chunks),
      T(test_a_line_is_answered_before_the_input_ends),
      T(test_chunks_of_creates_are_appended_while_the_last_settles),
      T(test_a_batch_of_creates_without_a_key_is_one_partition_s),
      T(test_creates_reach_partitions_added_to_the_topic),
      T(test_signed_batches_are_in_flight_together),
      T(test_a_failed_batch_ends_the_instance_of_those_after_it),
      T(test_unavailable_kafka_is_exit_3),
      T(test_batch_lines_take_idempotency_keys),
      T(test_one_key_twice_in_a_batch_appends_once),
      T(test_failure_after_some_acks_then_retry_is_one_per_key),
      T(test_map_full_mid_batch_then_retry_is_one_per_key),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
