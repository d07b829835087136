#!/usr/bin/env python3
"""Paddle's events API on `ctkn serve` over the real broker.

1. GET /events, paged by following meta.pagination.next, on two replicas,
   gives exactly the events `ctkn tail --from-beginning` prints for the
   same topic, byte for byte per event (the webhook envelope), ordered by
   event ID; a quarantined record (bytes that are no event) appears in
   neither. order_by=id[DESC] is the reverse; event_type and from/to
   select what tail's --type and the events' occurred_at select.
2. The settings topic's events: a destination and an API key created on
   the CLI show up as notification_setting.created and api_key.created
   envelopes (never a secret), in one event-ID order with the tokens',
   page for page the same on two replicas; event_type selects them; a key
   sees only the events of the entities it may read (client_token.read:
   none of them), and an event_type it cannot read is 403.
3. GET /event-types lists every type with its group; a key is needed.

(A projection from before the events index is brought forward by the
first writer that opens it: tests/unit/test_store.c; one from before the
settings topic's events by the settings follower: tests/unit/test_akey.c.)
"""
import time
import urllib.parse

from harness import Env, Server, check, deploy_key, main

PER_PAGE = 7


def path_of(url):
    """The path and query of an absolute next URL."""
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


def pages(srv, first, key="reader"):
    """Every event from first's page on, following next while has_more;
    returns (events, number of pages)."""
    out, path, n = [], first, 0
    while True:
        r = srv.request("GET", path, key=key)
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
        # A type the key cannot read is 403; a bad one is 400.
        r = a.request("GET", "/events?event_type=api_key.created",
                      key="reader")
        check(r.status == 403 and r.json["error"]["code"] == "forbidden" and
              "api_key.read" in r.json["error"]["detail"], r)
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


ALL = "client_token.read,notification_setting.read,api_key.read"
SETTINGS_KEYS = Server.DEFAULT_KEYS + (("all", ALL),
                                       ("sread", "notification_setting.read"))


def test_settings_topic_events_on_two_replicas():
    env = Env(name="evset", partitions=2)
    a = b = None
    try:
        a = Server(env, name="a", keys=SETTINGS_KEYS)
        b = Server(env, name="b", keys=SETTINGS_KEYS)
        env.ok("create", "--name", "before")
        dest = env.ok("destination", "add", "--url", "https://example.com/h",
                      "--events", "client_token.created",
                      "--secret-key-file", deploy_key(env),
                      db=env.path("cli-db")).json["data"]
        env.ok("create", "--name", "between")
        akey = env.ok("apikey", "create", "--name", "evkey", "--permissions",
                      "client_token.read").json["data"]
        env.ok("create", "--name", "after")
        n = 3 + 1 + 1
        seen = []
        for srv in (a, b):
            deadline = time.monotonic() + 30
            while True:
                got, _ = pages(srv, "/events?per_page=2", key="all")
                if len(got) >= n:
                    break
                check(time.monotonic() < deadline,
                      f"{srv.url}: {len(got)} events, not {n}: {got}")
                time.sleep(0.1)
            seen.append(got)
            check(len(got) == n, got)
            ids = [e["event_id"] for e in got]
            check(ids == sorted(ids) and len(set(ids)) == n, ids)
            types = [e["event_type"] for e in got]
            check(types.count("client_token.created") == 3 and
                  "notification_setting.created" in types and
                  "api_key.created" in types, types)
            check(all(list(e) == ["event_id", "event_type", "occurred_at",
                                  "notification_id", "data"] for e in got),
                  "envelope members")
            ns = next(e for e in got
                      if e["event_type"] == "notification_setting.created")
            check(ns["data"]["id"] == dest["id"] and
                  ns["data"]["destination"] == "https://example.com/h" and
                  ns["notification_id"] is None and
                  "endpoint_secret_key" not in ns["data"], ns)
            ak = next(e for e in got if e["event_type"] == "api_key.created")
            check(ak["data"]["id"] == akey["id"] and
                  sorted(ak["data"]) == sorted([
                      "id", "name", "description", "status", "permissions",
                      "expires_at", "last_used_at", "created_at",
                      "updated_at"]) and
                  ak["data"]["status"] == "active" and
                  ak["data"]["permissions"] == ["client_token.read"], ak)
            text = srv.request("GET", "/events?per_page=200", key="all").body
            check(dest["endpoint_secret_key"] not in text and
                  akey["key"] not in text, "a secret in /events")
            rev, _ = pages(srv, "/events?order_by=id%5BDESC%5D&per_page=3",
                           key="all")
            check(rev == got[::-1], "id[DESC] is the reverse")
        check(seen[0] == seen[1],
              f"replicas differ:\n{seen[0]}\nvs\n{seen[1]}")
        # event_type selects them, and the next links carry it.
        for t, want in (("notification_setting.created", dest["id"]),
                        ("api_key.created", akey["id"])):
            got, _ = pages(b, f"/events?event_type={t}&per_page=1", key="all")
            check([e["data"]["id"] for e in got] == [want], (t, got))
        # Each key sees only the events of what it may read.
        got, _ = pages(a, "/events?per_page=200", key="reader")
        check([e["event_type"] for e in got] == ["client_token.created"] * 3,
              got)
        got, _ = pages(a, "/events?per_page=200", key="sread")
        check([e["event_type"] for e in got] ==
              ["notification_setting.created"], got)
        for t in ("api_key.created", "notification_setting.created"):
            r = a.request("GET", f"/events?event_type={t}", key="reader")
            check(r.status == 403 and
                  r.json["error"]["code"] == "forbidden", r)
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
          test_settings_topic_events_on_two_replicas,
          test_event_types])
