/*
 * query_int.h - what the query module offers the other list readers of
 * ctkn (events.c, notifications.c) but not the library's users: one page
 * of Paddle's list shape, and the parameters every list takes. Not
 * installed.
 *
 * A page: ctkn__page_begin() -> (ctkn__page_full() / ctkn__page_put())
 * per item -> ctkn__page_end(), which hands out the JSON or frees it.
 * Errors: 0 or negative CTKN_E*; *err gets the detail.
 */
#ifndef CTKN_QUERY_INT_H
#define CTKN_QUERY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctkn/query.h"
#include "internal.h"

#define CTKN__PAGE_ID_BUF 48 /* the longest ID a page ends on, NUL too */

/* {"data":[items...],"meta":{request_id, pagination}} being written. */
struct ctkn__page {
  struct ctkn__buf b; /* the page so far; owned until ctkn__page_end() */
  int want, n;        /* per_page; items put */
  bool more;          /* an item past the page was seen */
  char last[CTKN__PAGE_ID_BUF]; /* the last item's ID */
};

/* Start pg for want items. CTKN_ENOMEM; pg holds nothing then. */
int ctkn__page_begin(struct ctkn__page *pg, int want, struct ctkn_err *err);

/* Whether pg is full; when it is, it has more (the walk may stop). */
bool ctkn__page_full(struct ctkn__page *pg);

/* Put the len bytes of one item's JSON, whose ID is id (borrowed for the
 * call), after the items so far. CTKN_ENOMEM. */
int ctkn__page_put(struct ctkn__page *pg, const char *json, size_t len,
                   const char *id, struct ctkn_err *err);

/* Finish pg as rc says: when CTKN_OK, its meta (next: the following
 * page's URL, "" for NULL; total: estimated_total) and *json the page
 * (caller owns it, release with free()); else, or when out of memory,
 * *json NULL and pg freed. Returns rc, or CTKN_ENOMEM. */
int ctkn__page_end(struct ctkn__page *pg, int rc, const char *next,
                   int64_t total, const char *request_id, char **json,
                   struct ctkn_err *err);

/* The end of a page's next URL, after its own parameters and their '&':
 * from and to when given, order_by and per_page. */
int ctkn__page_link_tail(struct ctkn__buf *u, bool has_from, int64_t from_us,
                         bool has_to, int64_t to_us, bool desc, int per_page);

/* per_page and order_by by the token list's rules and words
 * (ctkn_list_params_per_page(), _order_by()); *out unchanged on error. */
int ctkn__page_per_page(const char *s, int *out, struct ctkn_err *err);
int ctkn__page_order_by(const char *s, bool *desc, struct ctkn_err *err);

/* An RFC 3339 date-time for list parameter name (from, to) into *us:
 * CTKN_EINVAL with field name otherwise. */
int ctkn__page_time(const char *name, const char *s, int64_t *us,
                    struct ctkn_err *err);

#endif /* CTKN_QUERY_INT_H */
