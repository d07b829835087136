#!/usr/bin/env python3
"""Paddle's events API on `ctkn serve` over the real broker.

1. GET /events, paged by following meta.pagination.next, on two replicas,
   gives exactly the events `ctkn tail --from-beginning` prints for the
   same topic, byte for byte per event (the webhook envelope), ordered by
   event ID; a quarantined record (bytes that are no event) appears in
   neither. order_by=id[DESC] is the reverse; event_type and from/to
   select what tail's --type and the events' occurred_at select.
2. GET /event-types lists every type with its group; a key is needed.

(A projection from before the events index is brought forward by the
first writer that opens it: tests/unit/test_store.c.)
"""
import time
import urllib.parse

from harness import Env, Server, check, main

PER_PAGE = 7


def path_of(url):
    """The path and query of an absolute next URL."""
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


def pages(srv, first):
    """Every event from first's page on, following next while has_more;
    returns (events, number of pages)."""
    out, path, n = [], first, 0
    while True:
        r = srv.request("GET", path, key="reader")
        check(r.status == 200, f"GET {path}: {r}")
        doc = r.json
        check(r.headers.get("request-id") == doc["meta"]["request_id"], r)
        pg = doc["meta"]["pagination"]
        check(pg["next"].startswith(srv.url + "/events?"), pg)
        out += doc["data"]
        n += 1
        if not pg["has_more"]:
            return out, n
        path = path_of(pg["next"])


def wait_events(srv, want, timeout=30):
    """Wait until srv's /events holds want events (its follower applied
    them); fail past timeout."""
    deadline = time.monotonic() + timeout
    while True:
        r = srv.request("GET", "/events?per_page=1", key="reader")
        if r.status == 200 and \
                r.json["meta"]["pagination"]["estimated_total"] >= want:
            return
        check(time.monotonic() < deadline,
              f"{srv.url}: /events never reached {want}: {r}")
        time.sleep(0.05)


def seed(env):
    """Tokens created, updated and revoked through the CLI across the
    partitions, and one record that is no event; returns the number of
    events."""
    ids = [env.ok("create", "--name", f"ev {i}").json["data"]["id"]
           for i in range(12)]
    for i in range(0, 12, 3):
        env.ok("update", ids[i], "--name", f"ev {i} renamed")
    for i in range(0, 12, 4):
        env.ok("revoke", ids[i])
    env.raw(1, ids[1], b"\x00not an event", etype="client_token.updated",
            schema="1")
    return 12 + 4 + 3


def test_events_pages_equal_tail_from_beginning():
    env = Env(name="events", partitions=3)
    a = b = None
    try:
        n = seed(env)
        tail = env.ok("tail", "--exit-at-end", "--from-beginning").lines
        check(len(tail) == n, f"tail printed {len(tail)} events, not {n}")
        want = sorted(tail, key=lambda e: e["event_id"])
        a = Server(env, name="a")
        b = Server(env, name="b")
        for srv in (a, b):
            wait_events(srv, n)
            got, npages = pages(srv, f"/events?per_page={PER_PAGE}")
            check(npages == (n + PER_PAGE - 1) // PER_PAGE, npages)
            check(got == want, f"{srv.url}: /events differs from tail:\n"
                  f"{got}\nvs\n{want}")
            # The same envelope, member order included.
            check(all(list(e) == ["event_id", "event_type", "occurred_at",
                                  "notification_id", "data"] for e in got),
                  "envelope members")
            rev, _ = pages(srv, "/events?order_by=id%5Bdesc%5D&per_page=200")
            check(rev == want[::-1], "id[DESC] is the reverse")
        # event_type: what tail --type prints.
        only = env.ok("tail", "--exit-at-end", "--from-beginning",
                      "--type", "client_token.revoked").lines
        got, _ = pages(a, "/events?event_type=client_token.revoked")
        check(got == sorted(only, key=lambda e: e["event_id"]) and
              len(got) == 3, f"event_type: {got} vs {only}")
        # from (inclusive) and to (exclusive), on occurred_at.
        lo, hi = want[4]["occurred_at"], want[10]["occurred_at"]
        q = urllib.parse.urlencode({"from": lo, "to": hi, "per_page": 3})
        got, _ = pages(b, "/events?" + q)
        check(got == [e for e in want if lo <= e["occurred_at"] < hi],
              f"from/to: {[e['occurred_at'] for e in got]}")
        # Types no projection holds yet select nothing; a bad one is 400.
        got, _ = pages(a, "/events?event_type=api_key.created")
        check(got == [], got)
        r = a.request("GET", "/events?event_type=client_token.nope",
                      key="reader")
        check(r.status == 400 and
              r.json["error"]["errors"][0]["field"] == "event_type", r)
        for s in (a, b):
            s.stop()
    finally:
        for s in (a, b):
            if s is not None and s.alive():
                s.stop(check_exit=False)
        env.close()


def test_event_types():
    env = Env(name="evtypes", partitions=1)
    srv = None
    try:
        srv = Server(env, name="types")
        r = srv.request("GET", "/event-types", key="reader")
        check(r.status == 200, r)
        names = [t["name"] for t in r.json["data"]]
        check(names[:3] == ["client_token.created", "client_token.updated",
                            "client_token.revoked"] and
              "notification_setting.created" in names and
              "api_key.expiring" in names, names)
        check(all(t["available_versions"] == [1] and t["group"] and
                  t["description"] for t in r.json["data"]), r.json)
        check(srv.request("GET", "/event-types", key=None).status == 403,
              "a key is needed")
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


if __name__ == "__main__":
    main([test_events_pages_equal_tail_from_beginning,
          test_event_types])
