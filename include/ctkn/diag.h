/*
 * diag.h - the library's diagnostics: one JSON object per line.
 *
 * Everything ctkn reports while it runs (a paused partition, a retry, a
 * request served) is one line {"time","level","component","msg",...} on
 * stderr, or wherever ctkn_diag_set_sink() points, so a long-running
 * command's output can be shipped and queried as JSON lines. Command
 * results are not diagnostics: they go to stdout (the CLI) or the HTTP
 * answer.
 *
 * Errors:   none; a line that cannot be written is dropped.
 * Thread:   safe from any thread; each line is written whole.
 */
#ifndef CTKN_DIAG_H
#define CTKN_DIAG_H

#include <stddef.h>

#include "ctkn/error.h"

enum ctkn_diag_level {
  CTKN_DIAG_ERROR,
  CTKN_DIAG_WARN,
  CTKN_DIAG_INFO, /* the default */
  CTKN_DIAG_DEBUG
};

/* Keep lines at level or more severe; drop the rest. */
void ctkn_diag_set_level(enum ctkn_diag_level level);

/* "error", "warn", "info" or "debug"; CTKN_EINVAL (field "log_level")
 * otherwise. */
int ctkn_diag_level_parse(const char *s, enum ctkn_diag_level *out,
                          struct ctkn_err *err);

/* Where lines go. line is one JSON object and a newline, len bytes,
 * borrowed for the call; the sink may run on any thread, one line at a
 * time. NULL restores stderr. */
typedef void (*ctkn_diag_sink)(void *arg, const char *line, size_t len);
void ctkn_diag_set_sink(ctkn_diag_sink sink, void *arg);

#endif /* CTKN_DIAG_H */
