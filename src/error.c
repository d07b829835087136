/*
 * error.c - the CTKN_ERRNO_MAP tables: text, API code, HTTP status and
 * CLI exit of every code. (The helpers that fill struct ctkn_err are in
 * util/misc.c.)
 */
#include <stddef.h>

#include "ctkn/error.h"

const char *ctkn_strerror(int code)
{
  switch (code) {
  case CTKN_OK:
    return "success";
#define CTKN__CASE(name, val, api, http, ex, text)                             \
  case CTKN_E##name:                                                           \
    return text;
    CTKN_ERRNO_MAP(CTKN__CASE)
#undef CTKN__CASE
  }
  return "unknown error";
}

const char *ctkn_error_code(int code)
{
  switch (code) {
#define CTKN__CASE(name, val, api, http, ex, text)                             \
  case CTKN_E##name:                                                           \
    return api;
    CTKN_ERRNO_MAP(CTKN__CASE)
#undef CTKN__CASE
  }
  return "internal_error";
}

int ctkn_error_http_status(int code)
{
  switch (code) {
  case CTKN_OK:
    return 200;
#define CTKN__CASE(name, val, api, http, ex, text)                             \
  case CTKN_E##name:                                                           \
    return http;
    CTKN_ERRNO_MAP(CTKN__CASE)
#undef CTKN__CASE
  }
  return 500;
}

int ctkn_error_exit(int code)
{
  switch (code) {
  case CTKN_OK:
    return 0;
#define CTKN__CASE(name, val, api, http, ex, text)                             \
  case CTKN_E##name:                                                           \
    return ex;
    CTKN_ERRNO_MAP(CTKN__CASE)
#undef CTKN__CASE
  }
  return 3;
}

void ctkn_err_clear(struct ctkn_err *err)
{
  if (err == NULL)
    return;
  err->code = CTKN_OK;
  err->field[0] = '\0';
  err->msg[0] = '\0';
}
