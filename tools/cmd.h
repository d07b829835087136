/*
 * cmd.h - the commands of `ctkn`, one function each, grouped by family in
 * cmd_*.c. Each takes the parsed invocation (cli.h) and returns the exit
 * status; ctkn.c's command table maps names and options to them.
 */
#ifndef CTKN_TOOLS_CMD_H
#define CTKN_TOOLS_CMD_H

#include "cli.h"

/* cmd_token.c: tokens, written through the ledger, read from the
 * projection. */
int cmd_create(struct cli *c);
int cmd_update(struct cli *c);
int cmd_revoke(struct cli *c);
int cmd_get(struct cli *c);
int cmd_list(struct cli *c);
int cmd_verify(struct cli *c);
int cmd_history(struct cli *c);

/* cmd_projection.c: the topic and the projection. */
int cmd_init(struct cli *c);
int cmd_project(struct cli *c);
int cmd_status(struct cli *c);
int cmd_digest(struct cli *c);
int cmd_quarantine(struct cli *c);
int cmd_snapshot(struct cli *c);
int cmd_replay(struct cli *c);
int cmd_rebuild(struct cli *c);

/* cmd_archive.c: the audit archive. */
int cmd_export(struct cli *c);
int cmd_audit(struct cli *c);
int cmd_import(struct cli *c);

/* cmd_tail.c: events as webhook JSON lines. */
int cmd_tail(struct cli *c);

/* cmd_serve.c: the HTTP API and its key file (apikey create|list|revoke
 * on file, which cmd_apikey() hands over). */
int cmd_serve(struct cli *c);
int cmd_apikey_file(struct cli *c, const char *file);

/* cmd_apikey.c: API keys on the log, and the key file's import. */
int cmd_apikey(struct cli *c);

/* cmd_notify.c: destinations, delivery and its audit. */
int cmd_destination(struct cli *c);
int cmd_notify(struct cli *c);
int cmd_notification(struct cli *c);

/* cmd_trust.c: the trust root and the keyring. */
int cmd_trust(struct cli *c);

#endif /* CTKN_TOOLS_CMD_H */
