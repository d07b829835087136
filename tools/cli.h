/*
 * cli.h - what every `ctkn` command shares: its options, the parsing of
 * argv, the output conventions, exit statuses and signals.
 *
 * Output: success is JSON on stdout; errors are Paddle's error envelope on
 * stderr. Exit: 0 success, 1 rejected request, 2 usage, 3 unavailable
 * (ctkn_error_exit()).
 *
 * Options may come before or after the command. The global ones apply to
 * every command; each command lists its own in the command table
 * (ctkn.c), which is all that main() knows.
 */
#ifndef CTKN_TOOLS_CLI_H
#define CTKN_TOOLS_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/crypto.h"
#include "ctkn/error.h"
#include "ctkn/log.h"
#include "ctkn/setting.h"
#include "ctkn/store.h"
#include "ctkn/token.h"

#define CTKN_VERSION "0.1.0"

/* ---- options ---------------------------------------------------------- */

enum opt_kind {
  OPT_VALUE, /* --name VALUE or --name=VALUE; the last one wins */
  OPT_FLAG,  /* --name, no value */
  OPT_LIST   /* --name VALUE, repeatable: every value, in order */
};

#define LIST_MAX  8
#define LOCAL_MAX 20

/* An option as the command table declares it. */
struct opt_def {
  const char *name; /* "--name" */
  enum opt_kind kind;
};

/* An option as parsed. */
struct opt {
  const char *name;
  enum opt_kind kind;
  const char *value;          /* NULL when absent; "" for a present flag */
  const char *list[LIST_MAX]; /* OPT_LIST: every value, in order */
  int nlist;
};

enum {
  G_BROKERS,
  G_TOPIC,
  G_DB,
  G_ENV,
  G_TIMEOUT,
  G_MAPSIZE,
  G_LOGLEVEL,
  G_TRUSTROOT,
  G_WRITERKEY,
  G_HELP,
  G_COUNT
};

/* One invocation: the command, its arguments and the resolved settings. */
struct cli {
  const char *command;
  const char *pos[4]; /* positional arguments after the command */
  int npos;
  struct opt global[G_COUNT];
  struct opt local[LOCAL_MAX];
  struct ctkn_log_config log; /* brokers, topic, timeout, -X overrides */
  char db[4096];
  ctkn_env env;
  size_t map_size; /* 0: the store's default */
  char rid[37];    /* the request ID of this invocation's answers */
  /* --trust-root: the root's public key; records are judged by it */
  bool trust;
  uint8_t trust_root[CTKN_SIGN_PUB_LEN];
  ctkn_seckey *writer; /* --writer-key, or NULL: this process appends none */
};

/* What a command needs of trust (struct command's need). There is no
 * unsigned mode: a command that reads the log judges it by the root, and
 * one that appends signs. CHANGES, not a need: the command (or one of its
 * subcommands) changes the log, a topic or a key file, so an answer it
 * cannot write is exit 4 ("applied: look before running it again"), where
 * a read's is exit 3 ("retry"). */
enum {
  NEED_NONE = 0,
  NEED_ROOT = 1u << 0,   /* reads the log: --trust-root */
  NEED_WRITER = 1u << 1, /* appends: --writer-key (and so --trust-root) */
  CHANGES = 1u << 2,
};

/* A command of the table: its name, its options, its positional
 * arguments (npos required, optpos more allowed) and what runs it. */
struct command {
  const char *name;
  int (*run)(struct cli *c);
  int npos;
  int optpos;
  struct opt_def local[LOCAL_MAX];
  unsigned need; /* NEED_ROOT, NEED_WRITER, or 0; | CHANGES */
};

/*
 * Find the command in argv among the n of tab, parse every option, and
 * resolve flags, environment variables and defaults. Returns the exit
 * status so far: 0 with *run set to the command to run, or 0 with *run
 * NULL when nothing is left to do (--help was answered), or the status of
 * the usage error or invalid setting already reported. Release c with
 * cli_free() in every case.
 */
int cli_start(struct cli *c, const struct command *tab, size_t n, int argc,
              char **argv, const struct command **run);
void cli_free(struct cli *c);

/* 0 when --trust-root and --writer-key give what need asks (NEED_*), else
 * the exit status of the usage error printed, naming what is missing. For
 * commands whose subcommands differ; cli_start() checks the table's. */
int cli_need(struct cli *c, unsigned need);

/* The value of the command's option name: NULL when absent, "" for a
 * present flag. */
const char *cli_value(struct cli *c, const char *name);
/* The command's option name as parsed (OPT_LIST values), or NULL. */
const struct opt *cli_opt(struct cli *c, const char *name);
/* v, else the environment variable var when set and not empty, else def. */
const char *cli_env_or(const char *v, const char *var, const char *def);

/* ---- values ------------------------------------------------------------ */

/* A decimal number of seconds ("10", "2.5", at most a day) in ms. */
bool cli_parse_seconds(const char *s, int *ms);
/* An integer, clamped to 0..max + 1 so that range checks stay simple. */
bool cli_parse_count(const char *s, int max, int *out);
/* A whole number in [lo, hi]. */
bool cli_parse_int(const char *s, long long lo, long long hi, long long *out);
/* true, false, 1 or 0. */
bool cli_parse_bool(const char *s, bool *out);
/* "30s", "15m", "72h", "2d", "500ms" or plain milliseconds, at most a year. */
bool cli_parse_duration(const char *s, int64_t *ms);
/* A replication factor's range, 1-32: 0, or the exit status of the error
 * reported (invalid field replication_factor). */
int cli_check_replication_factor(struct cli *c, int rf);

/* ---- output ------------------------------------------------------------ */

/* Print err as the error envelope on stderr; returns its exit status. */
int cli_print_error(const char *rid, const struct ctkn_err *err);
/* Report a usage error (exit 2) with a pointer to `ctkn help`. */
int cli_usage_error(struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Fill err for a renderer that ran out of memory; returns CTKN_ENOMEM. */
int cli_oom(struct ctkn_err *err);
/* The end of most commands: json (taken, may be NULL) on stdout when rc is
 * CTKN_OK, else err's envelope on stderr. Returns the exit status. */
int cli_emit(struct cli *c, int rc, char *json, const struct ctkn_err *err);
/* A write's answer flushed to stdout: ex, or when stdout fails (a full
 * disk, a closed pipe) exit 4 with an error saying that the command was
 * applied, so that it is not run again without its idempotency key. */
int cli_flush_answer(struct cli *c, int ex);
/* The end of every command (main()): a successful command whose answer
 * did not reach stdout fails, exit 4 when it changes something (need &
 * CHANGES), else exit 3. */
int cli_finish(struct cli *c, unsigned need, int ex);
/* Whether a one-shot command may end with cli_leave(): false in
 * sanitizer builds, which close everything so that the leak check sees
 * every path. */
bool cli_may_leave(void);
/* A one-shot write whose work is done and whose remaining clean-up would
 * change nothing outside the process: its answer flushed
 * (cli_flush_answer()), the options' keys wiped (cli_free()), then
 * _exit(), without the exit handlers. */
_Noreturn void cli_leave(struct cli *c, int ex);

/* `ctkn help` and --help: the usage text on stdout. */
int cmd_help(struct cli *c);
/* `ctkn version`: the version, schema version and store format. */
int cmd_version(struct cli *c);

/* ---- what commands share ----------------------------------------------- */

/* Open --db (read-only unless write; a writer binds it to the topic and
 * environment). 0, or the exit status of the error reported. */
int cli_open_store(struct cli *c, bool write, ctkn_store **st);
/* The deployment key from --secret-key-file or $CTKN_SECRET_KEY_FILE:
 * *have tells whether one was named. 0, or the exit status of the error
 * reported. The caller wipes key after use. */
int cli_load_key(struct cli *c, uint8_t key[CTKN_KEY_LEN], bool *have);

/* A ledger on st, judging and signing as --trust-root and --writer-key
 * say. CTKN_OK or the error in *err. */
struct ctkn_ledger;
int cli_ledger_open(struct cli *c, ctkn_store *st, struct ctkn_ledger **l,
                    struct ctkn_err *err);
/* A public key file: 64 hex digits (and a newline). 0, or the exit status
 * of the error reported (field names the option). */
int cli_load_pubkey(struct cli *c, const char *path, const char *field,
                    uint8_t pub[CTKN_SIGN_PUB_LEN]);
/* Where destinations may point (setting.h) for c's environment: every
 * --allow-destination-network CIDR into nets (p->allow points there), and
 * --max-active-destinations N (1-10000; default CTKN_DEST_MAX_ACTIVE) for
 * commands that take it. 0, or the exit status of the usage error
 * reported. */
int cli_dest_policy(struct cli *c, struct ctkn_dest_policy *p,
                    struct ctkn_cidr nets[LIST_MAX]);

/* ---- signals ------------------------------------------------------------ */

enum {
  CLI_SIG_STOP = 1,   /* SIGINT and SIGTERM set cli_stop */
  CLI_SIG_RELOAD = 2, /* SIGHUP sets cli_reload */
  CLI_SIG_NOPIPE = 4  /* SIGPIPE is ignored: a closed reader is an error */
};

/* Set by the handlers; the library polls them (ctkn_projector_follow(),
 * ctkn_tail(), ctkn_server_run(), ctkn_notify_run()). */
extern volatile sig_atomic_t cli_stop;
extern volatile sig_atomic_t cli_reload;

/* Install the handlers that what (CLI_SIG_*) names: the one place that
 * does. */
void cli_signals(unsigned what);

#endif /* CTKN_TOOLS_CLI_H */
