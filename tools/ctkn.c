/*
 * ctkn - the command-line tool. It parses arguments and calls libctkn;
 * every behaviour lives in the library, so tests can reach it there.
 *
 * Output: success is JSON on stdout; errors are Paddle's error envelope on
 * stderr. Exit: 0 success, 1 rejected request, 2 usage, 3 unavailable.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctkn/codec.h"
#include "ctkn/error.h"

#define CTKN_VERSION "0.1.0"

static const char usage[] =
    "usage: ctkn <command> [options]\n"
    "\n"
    "commands:\n"
    "  version          print the version as JSON\n"
    "  help             this text\n"
    "\n"
    "The pipeline commands (init, create, update, revoke, project, get,\n"
    "list, verify, history, digest, quarantine) arrive with the Kafka\n"
    "pipeline; see README.md.\n";

/* Print the error envelope on stderr and return the exit status. */
static int fail(const struct ctkn_err *err)
{
  char rid[37];
  char *json;

  if (ctkn_request_id(rid) != CTKN_OK)
    strcpy(rid, "00000000-0000-4000-8000-000000000000");
  json = ctkn_json_error(err, rid);
  if (json != NULL)
    fprintf(stderr, "%s\n", json);
  else
    fprintf(stderr, "ctkn: %s: %s\n", ctkn_strerror(err->code), err->msg);
  free(json);
  return ctkn_error_exit(err->code);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt,
                                                             ...)
{
  struct ctkn_err err = {.code = CTKN_EUSAGE};
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(err.msg, sizeof(err.msg), fmt, ap);
  va_end(ap);
  fail(&err);
  fputs(usage, stderr);
  return 2;
}

int main(int argc, char **argv)
{
  if (argc < 2)
    return usage_error("%s", "a command is required");
  const char *cmd = argv[1];
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "-h") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    if (argc > 2)
      return usage_error("unexpected argument \"%s\"", argv[2]);
    printf("{\"data\":{\"version\":\"%s\",\"schema_version\":%d}}\n",
           CTKN_VERSION, CTKN_SCHEMA_VERSION);
    return 0;
  }
  return usage_error("unknown command \"%s\"", cmd);
}
