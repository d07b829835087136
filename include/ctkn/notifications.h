/*
 * notifications.h - Paddle's notifications API over the projection of the
 * notifications topic (delivery.h): GET /notifications (paged, filtered),
 * GET /notifications/{id} and GET /notifications/{id}/logs, in Paddle's
 * shapes.
 *
 * Reads only LMDB, in one read transaction per call, so every replica
 * answers alike once it has projected the same log. A notification's
 * payload is its event's webhook envelope, rebuilt from the event
 * projection (null when this replica does not hold the event).
 *
 * Errors:   CTKN_EINVAL for a parameter that breaks a rule (naming it);
 *           CTKN_ENOTFOUND; CTKN_ESTORE; CTKN_ENOMEM.
 * Not here: the HTTP routes (src/api/notifications.c), the projection
 *           (delivery.h).
 */
#ifndef CTKN_NOTIFICATIONS_H
#define CTKN_NOTIFICATIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "ctkn/error.h"
#include "ctkn/notification.h"
#include "ctkn/store.h"

#define CTKN_NTF_DESTS_MAX 50 /* notification_setting_id values, at most */

/* GET /notifications's parameters. */
struct ctkn_ntfs_params {
  char after[CTKN_NTF_ID_BUF]; /* "" = from the start */
  int per_page;                /* 1..200 */
  bool desc;                   /* order_by id[DESC], Paddle's default */
  unsigned status_mask;        /* bit 1 << ctkn_ntf_status; 0: every one */
  char dests[CTKN_NTF_DESTS_MAX][CTKN_DEST_ID_BUF];
  size_t ndests;
  bool has_from, has_to;
  int64_t from_us; /* occurred_at >= from */
  int64_t to_us;   /* occurred_at < to */
};

/* per_page 50, id[DESC] (newest first, as Paddle), no filter. */
void ctkn_ntfs_params_init(struct ctkn_ntfs_params *p);

/*
 * Each setter parses one query parameter's value into p, leaving p as it
 * was on failure. Errors: CTKN_EINVAL naming the parameter:
 *   per_page  a positive integer (above 200 is capped);
 *   order_by  id[ASC] or id[DESC], the direction in any case;
 *   after     a notification ID (^ntf_[0-7][0-9a-hjkmnp-tv-z]{25}$);
 *   status    a comma-separated list of delivered, failed, needs_retry,
 *             not_attempted (adds to what is there);
 *   notification_setting_id  a comma-separated list of ntfset_ IDs (adds);
 *   from, to  RFC 3339 date-times.
 */
int ctkn_ntfs_params_per_page(struct ctkn_ntfs_params *p, const char *s,
                              struct ctkn_err *err);
int ctkn_ntfs_params_order_by(struct ctkn_ntfs_params *p, const char *s,
                              struct ctkn_err *err);
int ctkn_ntfs_params_after(struct ctkn_ntfs_params *p, const char *s,
                           struct ctkn_err *err);
int ctkn_ntfs_params_status(struct ctkn_ntfs_params *p, const char *s,
                            struct ctkn_err *err);
int ctkn_ntfs_params_dests(struct ctkn_ntfs_params *p, const char *s,
                           struct ctkn_err *err);
int ctkn_ntfs_params_from(struct ctkn_ntfs_params *p, const char *s,
                          struct ctkn_err *err);
int ctkn_ntfs_params_to(struct ctkn_ntfs_params *p, const char *s,
                        struct ctkn_err *err);

/*
 * One page, Paddle's list shape: {"data": [notifications], "meta":
 * {"request_id", "pagination": {"per_page", "next", "has_more",
 * "estimated_total"}}}; next is always the URL of the following page
 * (next_base, then every parameter in force and after = this page's last
 * ID; on an empty page the request's own cursor). estimated_total is the
 * number of notifications the projection holds (an upper bound when
 * filtered). On success caller owns *json; release with free().
 */
int ctkn_ntfs_list(ctkn_store *st, const struct ctkn_ntfs_params *p,
                   const char *next_base, const char *request_id, char **json,
                   struct ctkn_err *err);

/* {"data": notification, "meta": {"request_id"}}. Errors: CTKN_EINVAL
 * (field "notification_id"), CTKN_ENOTFOUND. */
int ctkn_ntfs_get(ctkn_store *st, const char *id, const char *request_id,
                  char **json, struct ctkn_err *err);

/* A notification's logs, oldest first, Paddle's list shape with Paddle's
 * notification log entities (codec.h, ctkn_json_notification_log()).
 * after: "" or an ntflog_ ID of this notification; per_page 1..200.
 * Errors: CTKN_EINVAL (field "notification_id" or "after"),
 * CTKN_ENOTFOUND. */
int ctkn_ntfs_logs(ctkn_store *st, const char *id, const char *after,
                   int per_page, const char *next_base, const char *request_id,
                   char **json, struct ctkn_err *err);

#endif /* CTKN_NOTIFICATIONS_H */
