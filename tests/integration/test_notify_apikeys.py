#!/usr/bin/env python3
"""API keys' events as webhooks (issue #14): a destination subscribed to
api_key.* receives them from `ctkn notify`, Paddle-signed with its own
secret, with the envelope GET /events serves.

* created, updated and revoked reach a destination subscribed to them,
  once each, in log order, and nothing else does (a token-only
  destination gets none; api_key.used and api_key.rotated are no events);
* the signature verifies with the destination's secret (HMAC-SHA256 over
  "ts:body", as Paddle's; and with Paddle's Node SDK) and the body is the /events envelope with the
  notification's ID;
* a second run sends nothing more, nor does another notifier of the
  group with a projection of its own (the group's metadata); a replay sends the event again under a
  new notification ID;
* a key with a short expires_at, under two `ctkn serve` replicas that
  both append due notices (--key-expiring-lead 4 for the test; 7 days by
  default), yields exactly one api_key.expiring and one api_key.expired
  per destination, whichever replica's record came first; copies of both
  records appended after them (a late appender's) are rejected by the
  projection, listed once by GET /events, and sent by nobody.
"""
import datetime
import hashlib
import hmac
import os
import subprocess
import time

from harness import BROKERS, Server, check, kafka_tool, main
from receiver import Receiver
from test_notify import FAST, NTF_RE, NEnv, sdk_verify

RAWCOPY = os.environ["CTKN_RAWCOPY"]
AKEY_ALL = ("api_key.created,api_key.updated,api_key.revoked,"
            "api_key.expiring,api_key.expired")


def verify(req, secret):
    """Paddle's scheme: ts=<t>;h1=<hex HMAC-SHA256(secret, "t:body")>."""
    parts = dict(p.split("=", 1) for p in req.signature.split(";"))
    mac = hmac.new(secret.encode(), parts["ts"].encode() + b":" + req.body,
                   hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts["h1"])


def test_api_key_events_are_signed_webhooks():
    env = NEnv("nakey", partitions=2)
    rx = Receiver()
    try:
        dk, sk = env.add_dest(rx.url("/keys"), AKEY_ALL)
        dt, _ = env.add_dest(rx.url("/tokens"), "client_token.created")
        k = env.ok("apikey", "create", "--name", "hooked", "--permissions",
                   "client_token.read").json["data"]
        env.ok("apikey", "update", k["id"], "--name", "renamed")
        env.ok("apikey", "rotate", k["id"])           # no event
        env.ok("apikey", "revoke", k["id"])
        stats = env.notify(*FAST)
        check(stats["delivered"] == 3 and stats["failed"] == 0,
              f"notify: {stats}")
        got = rx.requests("/keys")
        check([r.json["event_type"] for r in got] ==
              ["api_key.created", "api_key.updated", "api_key.revoked"],
              f"api_key events, in log order: {got}")
        check(rx.requests("/tokens") == [], "a token-only destination got "
                                            f"{rx.requests('/tokens')}")
        for r in got:
            check(verify(r, sk), f"signature does not verify: {r.signature}")
            b = r.json
            check(set(b) == {"event_id", "event_type", "occurred_at",
                             "notification_id", "data"}, f"body keys {b}")
            check(NTF_RE.match(b["notification_id"]), b)
            check(set(b["data"]) == {"id", "name", "description", "status",
                                     "permissions", "expires_at",
                                     "last_used_at", "created_at",
                                     "updated_at"} and
                  b["data"]["id"] == k["id"], f"Paddle's nine fields: {b}")
            check(k["key"] not in r.text and "sha256" not in r.text and
                  "hash" not in r.text, f"a secret in the body: {r.text}")
        # Paddle's Node SDK accepts them (its clock pinned to arrival).
        out = sdk_verify([{"secret": sk, "signature": r.signature,
                           "body": r.body.decode(), "now": int(r.wall)}
                          for r in got])
        for r, v in zip(got, out):
            check(v["valid"] and v["signature_valid"] and
                  v["event_type"] == r.json["event_type"] and
                  v["notification_id"] == r.json["notification_id"] and
                  v["sdk_class"] != "GenericEvent",
                  f"Paddle's SDK rejected {r}: {v}")
        check(got[2].json["data"]["status"] == "revoked" and
              got[1].json["data"]["name"] == "renamed", got)
        # The notification's payload (its stored audit) is the same body.
        listed = env.ntf("list", "--destination", dk)
        check(sorted(n["payload"]["event_id"] for n in listed) ==
              sorted(r.json["event_id"] for r in got) and
              all(n["status"] == "delivered" for n in listed),
              f"notification list: {listed}")
        for n in listed:
            body = [r.json for r in got
                    if r.json["event_id"] == n["payload"]["event_id"]][0]
            check(n["payload"] == body and n["type"] == body["event_type"],
                  f"payload {n['payload']} vs sent {body}")
        # Nothing more: not on a second run.
        again = env.notify(*FAST)
        check(again["attempts"] == 0 and len(rx.requests()) == 3,
              f"second run: {again}")
        # Nor from another notifier of the group on a projection of its
        # own: it starts where the group's metadata says (";@<ULID>=").
        other = env.notify(*FAST, db=env.path("other-db"))
        check(other["attempts"] == 0 and len(rx.requests()) == 3,
              f"another notifier: {other}")
        # A replay of an api_key notification: a new ID, the same event.
        old = [n for n in listed
               if n["payload"]["event_type"] == "api_key.revoked"][0]
        r = env.ctkn("notification", "replay", old["id"], db=env.ndb)
        check(r.rc == 0, f"replay: {r}")
        new = r.json["data"]["notification_id"]
        check(NTF_RE.match(new) and new != old["id"], f"replay id {new}")
        stats = env.notify(*FAST)
        check(stats["replayed"] == 1 and stats["attempts"] == 1,
              f"notify after replay: {stats}")
        again = rx.requests("/keys")[3:]
        check(len(again) == 1 and again[0].json["notification_id"] == new and
              again[0].json["event_id"] == old["payload"]["event_id"] and
              verify(again[0], sk), f"replayed: {again}")
        check(env.ntf("get", new)[0]["status"] == "delivered",
              env.ntf("get", new))
        # Events after that go out on the next run, once.
        k2 = env.ok("apikey", "create", "--name", "later", "--permissions",
                    "client_token.read").json["data"]
        env.notify(*FAST)
        later = [r for r in rx.requests("/keys")
                 if r.json["data"]["id"] == k2["id"]]
        check(len(later) == 1 and
              later[0].json["event_type"] == "api_key.created" and
              len(rx.requests()) == 5, f"later: {rx.requests()}")
    finally:
        rx.close()
        env.close()


def settings_types(env):
    """The ctkn-event-type of every settings record, in log order."""
    out = kafka_tool("org.apache.kafka.tools.consumer.ConsoleConsumer",
                     "--topic", env.topic + "_settings", "--from-beginning",
                     "--property", "print.headers=true",
                     "--property", "print.value=false",
                     "--timeout-ms", "5000", timeout=120)
    types = []
    for line in out.splitlines():
        for part in line.split(","):
            if part.startswith("ctkn-event-type:"):
                types.append(part.split(":", 1)[1].strip())
    return types


def test_expiry_notices_once_per_destination_with_two_appenders():
    env = NEnv("nexp", partitions=2)
    rx = Receiver()
    replicas = []
    try:
        # Before the destinations: its own created event goes to neither.
        admin = env.ok("apikey", "create", "--name", "admin", "--permissions",
                       "api_key.read").json["data"]
        da, sa = env.add_dest(rx.url("/a"), AKEY_ALL)
        db, sb = env.add_dest(rx.url("/b"), "api_key.expired")
        replicas = [Server(env, name=f"r{i}", keys=(),
                           args=("--key-expiring-lead", "4"))
                    for i in range(2)]
        at = (datetime.datetime.now(datetime.timezone.utc) +
              datetime.timedelta(seconds=7))
        k = env.ok("apikey", "create", "--name", "short", "--permissions",
                   "client_token.read", "--expires-at",
                   at.isoformat().replace("+00:00", "Z")).json["data"]
        # Not due before 4 s ahead of expires_at.
        time.sleep(1.5)
        env.notify(*FAST)
        check([r.json["event_type"] for r in rx.requests("/a")] ==
              ["api_key.created"], f"early: {rx.requests('/a')}")

        def expired_to_both():
            env.notify(*FAST)
            return (any(r.json["event_type"] == "api_key.expired"
                        for r in rx.requests("/a")) and
                    rx.requests("/b") != [])
        deadline = time.monotonic() + 30
        while not expired_to_both():
            check(time.monotonic() < deadline, "api_key.expired never sent: "
                  f"{rx.requests()}\n{replicas[0].output()[-2000:]}")
            time.sleep(0.5)
        # A late appender: the same notices again, after the first ones.
        types = settings_types(env)
        for t in ("api_key.expiring", "api_key.expired"):
            p = subprocess.run([RAWCOPY, BROKERS, env.topic + "_settings", "0",
                                str(types.index(t))],
                               capture_output=True, text=True, timeout=60)
            check(p.returncode == 0, f"rawcopy failed: {p.stderr}")
        # Both replicas have swept many times since; nothing more goes out.
        time.sleep(3)
        env.notify(*FAST)
        a = [r.json["event_type"] for r in rx.requests("/a")]
        check(a == ["api_key.created", "api_key.expiring", "api_key.expired"],
              f"/a: {a}")
        b = [r.json["event_type"] for r in rx.requests("/b")]
        check(b == ["api_key.expired"], f"/b: {b}")
        for r, secret in [(x, sa) for x in rx.requests("/a")] + \
                [(x, sb) for x in rx.requests("/b")]:
            check(verify(r, secret), f"signature: {r}")
            check(r.json["data"]["id"] == k["id"], r.json)
        out = sdk_verify([{"secret": sa, "signature": r.signature,
                           "body": r.body.decode(), "now": int(r.wall)}
                          for r in rx.requests("/a")])
        check(all(v["valid"] and v["signature_valid"] and
                  v["sdk_class"] != "GenericEvent" for v in out),
              f"Paddle's SDK: {out}")
        exp = [r.json for r in rx.requests("/a")][2]
        check(exp["data"]["status"] == "expired" and
              exp["occurred_at"] == exp["data"]["expires_at"], exp)
        check(rx.requests("/b")[0].json["event_id"] == exp["event_id"],
              "one event for both destinations")
        types = settings_types(env)
        n_exp, n_ing = (types.count("api_key.expired"),
                        types.count("api_key.expiring"))
        check(n_exp >= 2 and n_ing >= 2, f"settings records: {types}")
        # Every replica lists one of each.
        for srv in replicas:
            deadline = time.monotonic() + 10
            while True:
                r = srv.request("GET", "/events?per_page=200",
                                key=f"Bearer {admin['key']}")
                check(r.status == 200, r)
                mine = [e["event_type"] for e in r.json["data"]
                        if e["data"]["id"] == k["id"]]
                if mine == ["api_key.created", "api_key.expiring",
                            "api_key.expired"]:
                    break
                check(time.monotonic() < deadline, f"/events: {mine}")
                time.sleep(0.2)
        print(f"  settings topic: {n_ing} api_key.expiring, {n_exp} "
              f"api_key.expired record(s), the test's copies included",
              flush=True)
        # Every replica serves one expired event and one expiring.
        for srv in replicas:
            check("not applied" not in srv.output(), srv.output()[-2000:])
    finally:
        for srv in replicas:
            srv.stop()
        rx.close()
        env.close()


if __name__ == "__main__":
    main([test_api_key_events_are_signed_webhooks,
          test_expiry_notices_once_per_destination_with_two_appenders])
