#!/usr/bin/env python3
"""Delivery state on the log, read through Paddle's notifications API.

1. A notifier retrying a failing destination is SIGKILLed; a second one
   takes its partition over and delivers. A third process, `ctkn serve`
   on its own projection, answers GET /notifications/{id}/logs with every
   attempt the receiver saw, from both notifiers, in the order they came
   (response codes, content type and body prefix as answered), and
   GET /notifications/{id} says delivered after 3 attempts. The list
   filters by status and notification_setting_id and pages with next.
2. POST /notifications/{id}/replay answers 202 with a new notification ID;
   the notifier holding the partition sends it exactly once, and the
   replica reports it delivered, origin replay.
3. Errors: an unknown ID is 404, a bad status 400 naming it, a key without
   notification_setting.read 403.
"""
import time
import urllib.parse

from harness import Server, check, main
from receiver import Receiver
from test_notify import CREATED, NEnv, Notifier, TAKEOVER, wait_until, \
    workload

KEYS = (("reader", "notification_setting.read"),
        ("writer", "notification_setting.read,notification_setting.write"),
        ("tokens", "client_token.read"))
# Backoff drawn from [1 s, 2 s]: a kill in between lands between attempts.
SLOW_RETRY = ["--retry-initial", "2s", "--retry-max", "2s", "--max-age",
              "120s"]


def get(srv, path, key="reader", status=200):
    r = srv.request("GET", path, key=key)
    check(r.status == status, f"GET {path}: {r}")
    return r.json


def path_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


def test_takeover_history_and_replay_on_a_third_replica():
    env = NEnv("ntfapi", partitions=1)
    rx = Receiver()
    a = b = srv = None
    try:
        dest, _ = env.add_dest(rx.url("/h"), CREATED)
        rx.set_mode("/h", ("status", 503))
        a = Notifier(env, "a", *SLOW_RETRY, *TAKEOVER, db=env.path("a-db"))
        wait_until(lambda: a.owned() == {0}, 30, "a holds the partition")
        workload(env, 1, update=False, revoke=False, prefix="hist")
        wait_until(lambda: len(rx.requests("/h")) >= 2, 30, "a's 2 attempts")
        time.sleep(0.3)  # a's flush (20 ms), well before its next retry
        a.kill()
        a = None
        seen_a = len(rx.requests("/h"))
        check(seen_a == 2, f"a attempted {seen_a} times")

        srv = Server(env, "replica", keys=KEYS)
        rx.set_mode("/h", ("fail_n", 1, 502))
        b = Notifier(env, "b", *SLOW_RETRY, *TAKEOVER, db=env.path("b-db"))
        wait_until(lambda: rx.successful("/h"), 60, "b delivers")
        reqs = rx.requests("/h")
        ntf_id = reqs[0].json["notification_id"]
        check(len({r.json["notification_id"] for r in reqs}) == 1, reqs)

        # The third replica: the whole history, in order.
        def delivered():
            r = srv.request("GET", f"/notifications/{ntf_id}", key="reader")
            return r.status == 200 and \
                r.json["data"]["status"] == "delivered" and r.json
        doc = wait_until(delivered, 30, "the replica sees it delivered")
        n = doc["data"]
        check(n["times_attempted"] == len(reqs) == 4 and
              n["notification_setting_id"] == dest and
              n["origin"] == "event" and n["payload"]["notification_id"] ==
              ntf_id, f"notification {n} after {len(reqs)} requests")
        logs = get(srv, f"/notifications/{ntf_id}/logs")
        codes = [x["response_code"] for x in logs["data"]]
        check(codes == [r.status for r in reqs] == [503, 503, 502, 200],
              f"logs {codes} vs received {[r.status for r in reqs]}")
        at = [x["attempted_at"] for x in logs["data"]]
        check(at == sorted(at) and len(set(at)) == 4, f"attempted_at {at}")
        for x in logs["data"]:
            check(set(x) == {"id", "response_code", "response_content_type",
                             "response_body", "attempted_at"} and
                  x["id"].startswith("ntflog_"), f"log entity {x}")
        page = get(srv, f"/notifications/{ntf_id}/logs?per_page=3")
        check(page["meta"]["pagination"]["has_more"] is True and
              len(page["data"]) == 3, page)
        rest = get(srv, path_of(page["meta"]["pagination"]["next"]))
        check([x["id"] for x in rest["data"]] == [logs["data"][3]["id"]],
              f"second page {rest}")

        # The list, filtered, on the same replica.
        got = get(srv, f"/notifications?status=delivered"
                       f"&notification_setting_id={dest}")
        check([x["id"] for x in got["data"]] == [ntf_id], got)
        check(get(srv, "/notifications?status=failed")["data"] == [],
              "no failed notification")
        check(got["meta"]["pagination"]["next"].startswith(
            srv.url + "/notifications?"), got)

        # A replay over HTTP: 202, sent once by b.
        r = srv.request("POST", f"/notifications/{ntf_id}/replay",
                        key="writer")
        check(r.status == 202, f"replay: {r}")
        new = r.json["data"]["notification_id"]
        check(new.startswith("ntf_") and new != ntf_id, f"replay id {new}")
        wait_until(lambda: [q for q in rx.requests("/h")
                            if q.json["notification_id"] == new], 30,
                   "the replay is sent")
        time.sleep(3)  # b's queue scan runs every second: no second send
        sent = [q for q in rx.requests("/h")
                if q.json["notification_id"] == new]
        check(len(sent) == 1 and sent[0].ok, f"replay sent {sent}")
        check(sent[0].json["event_id"] == reqs[0].json["event_id"], sent)
        doc = wait_until(lambda: get(srv, f"/notifications/{new}")["data"]
                         ["status"] == "delivered" and
                         get(srv, f"/notifications/{new}"), 30,
                         "the replica sees the replay delivered")
        check(doc["data"]["origin"] == "replay", doc)

        # Errors in Paddle's envelope.
        get(srv, "/notifications/ntf_01kbp9s2c0a6r7k2ge1mj1ntf9", status=404)
        bad = get(srv, "/notifications?status=sent", status=400)
        check(bad["error"]["errors"][0]["field"] == "status", bad)
        get(srv, "/notifications", key="tokens", status=403)
        r = srv.request("POST", f"/notifications/{ntf_id}/replay",
                        key="reader")
        check(r.status == 403, f"replay as a reader: {r}")
    finally:
        for x in (a, b):
            if x is not None:
                x.kill()
        if srv is not None:
            srv.stop(check_exit=False)
        rx.close()
        env.close()


if __name__ == "__main__":
    main([test_takeover_history_and_replay_on_a_third_replica])
