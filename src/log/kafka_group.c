/*
 * kafka_group.c - Kafka consumer groups: the rebalance callback, offset
 * commits, and leases (partitions held through a group without reading
 * them, log.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/kafka_int.h"

/* The group hands over changes, not whole assignments (cooperative-sticky,
 * and every KIP-848 group.protocol=consumer group). */
static bool cooperative(rd_kafka_t *rk)
{
  const char *proto = rd_kafka_rebalance_protocol(rk);

  return proto != NULL && strcmp(proto, "COOPERATIVE") == 0;
}

/*
 * Apply a rebalance's change to the assignment, as the group's protocol
 * requires: the whole new assignment under EAGER (classic range,
 * roundrobin), only the added or revoked partitions under COOPERATIVE
 * (cooperative-sticky, and KIP-848's group.protocol=consumer), which refuses
 * rd_kafka_assign(). A refusal is remembered in c->assign_err, for the next
 * poll to report: the member then holds nothing it could read.
 */
static bool rebalance_apply(rd_kafka_t *rk, struct ctkn__kafka_consumer *c,
                            bool add, rd_kafka_topic_partition_list_t *parts)
{
  bool coop = cooperative(rk);
  char why[160] = "";

  if (coop) {
    rd_kafka_error_t *e = add ? rd_kafka_incremental_assign(rk, parts)
                              : rd_kafka_incremental_unassign(rk, parts);
    if (e != NULL) {
      snprintf(why, sizeof(why), "%s", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
  } else {
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, add ? parts : NULL);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
      snprintf(why, sizeof(why), "%s", rd_kafka_err2str(e));
  }
  if (why[0] == '\0')
    return true;
  if (c->assign_err[0] == '\0')
    snprintf(c->assign_err, sizeof(c->assign_err),
             "%s the partitions of %s (%s protocol): %s",
             add ? "assigning" : "revoking", c->topic,
             coop ? "cooperative" : "eager", why);
  return false;
}

/* Where a group member with nothing committed starts with --from-time:
 * the first record at or after the instant; RD_KAFKA_OFFSET_END (-1) when
 * every record is older. */
static void start_at_time(rd_kafka_t *rk, struct ctkn__kafka_consumer *c,
                          rd_kafka_topic_partition_list_t *parts)
{
  rd_kafka_topic_partition_list_t *t;
  rd_kafka_t *qrk;

  if (rd_kafka_committed(rk, parts, c->timeout_ms) !=
      RD_KAFKA_RESP_ERR_NO_ERROR)
    return;
  if ((t = rd_kafka_topic_partition_list_copy(parts)) == NULL)
    return;
  for (int i = 0; i < t->cnt; i++)
    t->elems[i].offset = c->start_ts_ms;
  if (ctkn__kafka_query_handle(c, &qrk, NULL) == CTKN_OK &&
      rd_kafka_offsets_for_times(qrk, t, c->timeout_ms) ==
          RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < parts->cnt; i++) {
      if (parts->elems[i].offset < 0 && t->elems[i].err == 0)
        parts->elems[i].offset = t->elems[i].offset;
    }
  }
  rd_kafka_topic_partition_list_destroy(t);
}

/* Mark parts held (or no longer held) by the lease. */
static void lease_mark(struct ctkn__kafka_consumer *c,
                       const rd_kafka_topic_partition_list_t *parts, bool held)
{
  for (int i = 0; i < parts->cnt; i++) {
    if (parts->elems[i].partition >= 0 &&
        parts->elems[i].partition < CTKN__KAFKA_LEASE_MAX)
      c->owned[parts->elems[i].partition] = held;
  }
  c->owned_changed = true;
}

/*
 * Group rebalance, under either protocol: take the assignment, placing
 * partitions the group has committed nothing for at the member's start;
 * drop records of revoked partitions that were not handed out yet. A lease
 * records a partition as held only once its assignment took. Runs inside a
 * poll, on the polling thread.
 */
void ctkn__kafka_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                              rd_kafka_topic_partition_list_t *parts,
                              void *opaque)
{
  struct ctkn__kafka_consumer *c = ((struct ctkn__kctx *)opaque)->owner;
  bool eager = !cooperative(rk);

  if (e != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    ctkn__kafka_drop_pending(c, eager ? NULL : parts);
    rebalance_apply(rk, c, false, parts);
    if (c->lease) {
      /* Eager: everything is revoked, whatever the list says. */
      if (eager)
        memset(c->owned, 0, CTKN__KAFKA_LEASE_MAX * sizeof(*c->owned));
      lease_mark(c, parts, false);
    }
    return;
  }
  if (c->lease) {
    /* Hold the partitions without reading them. */
    if (!rebalance_apply(rk, c, true, parts))
      return;
    rd_kafka_pause_partitions(rk, parts);
    lease_mark(c, parts, true);
    return;
  }
  if (c->start == CTKN_START_TIME)
    start_at_time(rk, c, parts);
  rebalance_apply(rk, c, true, parts);
}

int ctkn__kafka_commit(ctkn_consumer *base, const struct ctkn_log_msg *msgs,
                       size_t n, struct ctkn_err *err)
{
  struct ctkn__kafka_consumer *c = (struct ctkn__kafka_consumer *)base;
  rd_kafka_topic_partition_list_t *l;
  rd_kafka_resp_err_t e;

  if ((l = rd_kafka_topic_partition_list_new(8)) == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory committing");
  for (size_t i = 0; i < n; i++) {
    rd_kafka_topic_partition_t *tp =
        rd_kafka_topic_partition_list_find(l, c->topic, msgs[i].partition);
    if (tp == NULL)
      tp = rd_kafka_topic_partition_list_add(l, c->topic, msgs[i].partition);
    if (msgs[i].offset + 1 > tp->offset)
      tp->offset = msgs[i].offset + 1;
  }
  e = rd_kafka_commit(c->rk, l, 0);
  rd_kafka_topic_partition_list_destroy(l);
  if (ctkn__kafka_denied(e))
    return ctkn__kafka_consumer_denied(c, e, "committing offsets of", err);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: committing offsets of %s: %s",
                     c->topic, rd_kafka_err2str(e));
  return CTKN_OK;
}

/* ---- leases ------------------------------------------------------------ */

int ctkn__kafka_lease_poll(ctkn_consumer *base, int timeout_ms, bool *owned,
                           int32_t n, bool *changed, struct ctkn_err *err)
{
  struct ctkn__kafka_consumer *c = (struct ctkn__kafka_consumer *)base;
  rd_kafka_message_t *m;
  int rc = CTKN_OK;

  if (!c->lease)
    return ctkn__err(err, CTKN_EINTERNAL, "not a lease");
  /* Serves the group protocol and the rebalance callback. A record can
   * only arrive if one was fetched before the pause took hold; it is
   * dropped (a lease reads nothing). */
  m = rd_kafka_consumer_poll(c->rk, timeout_ms < 0 ? 0 : timeout_ms);
  if (m != NULL) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR &&
        m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      rc = ctkn__kafka_consumer_error(c, m, err);
    rd_kafka_message_destroy(m);
  }
  if (rc == CTKN_OK)
    rc = ctkn__kafka_assign_failed(c, err);
  *changed = c->owned_changed;
  c->owned_changed = false;
  for (int32_t p = 0; p < n; p++)
    owned[p] = p < CTKN__KAFKA_LEASE_MAX && c->owned[p];
  return rc;
}

int ctkn__kafka_lease_committed(ctkn_consumer *base, int32_t partition,
                                int64_t *offset, char *meta, size_t metasz,
                                struct ctkn_err *err)
{
  struct ctkn__kafka_consumer *c = (struct ctkn__kafka_consumer *)base;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_resp_err_t e;

  if (l == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  rd_kafka_topic_partition_list_add(l, c->topic, partition);
  e = rd_kafka_committed(c->rk, l, c->timeout_ms);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
    e = l->elems[0].err;
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const rd_kafka_topic_partition_t *tp = &l->elems[0];
    *offset = tp->offset >= 0 ? tp->offset : -1;
    if (metasz > 0 && tp->metadata != NULL) {
      size_t n =
          tp->metadata_size < metasz - 1 ? tp->metadata_size : metasz - 1;
      memcpy(meta, tp->metadata, n);
      meta[n] = '\0';
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  if (ctkn__kafka_denied(e))
    return ctkn__kafka_consumer_denied(c, e, "the committed offsets of", err);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: committed offset of %s/%d: %s",
                     c->topic, (int)partition, rd_kafka_err2str(e));
  return CTKN_OK;
}

int ctkn__kafka_lease_commit(ctkn_consumer *base, int32_t partition,
                             int64_t offset, const char *meta,
                             struct ctkn_err *err)
{
  struct ctkn__kafka_consumer *c = (struct ctkn__kafka_consumer *)base;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_t *tp;
  rd_kafka_resp_err_t e;

  if (l == NULL)
    return ctkn__err(err, CTKN_ENOMEM, "out of memory");
  tp = rd_kafka_topic_partition_list_add(l, c->topic, partition);
  tp->offset = offset;
  if (meta != NULL && meta[0] != '\0') {
    /* The list frees it with the element. */
    size_t n = strlen(meta);
    if ((tp->metadata = malloc(n)) != NULL) {
      memcpy(tp->metadata, meta, n);
      tp->metadata_size = n;
    }
  }
  e = rd_kafka_commit(c->rk, l, 0);
  rd_kafka_topic_partition_list_destroy(l);
  if (ctkn__kafka_denied(e))
    return ctkn__kafka_consumer_denied(c, e, "committing offsets of", err);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return ctkn__err(err, CTKN_EKAFKA, "kafka: committing %s/%d: %s", c->topic,
                     (int)partition, rd_kafka_err2str(e));
  return CTKN_OK;
}
