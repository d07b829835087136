#!/usr/bin/env python3
"""Webhook delivery end to end: `ctkn destination` and `ctkn notify` against
the real broker, a deployment key file and local receivers (receiver.py),
with Paddle's Node.js SDK checking the signatures.

Each test has its own topic, key file, notifier projection (DIR/notify-db)
and lease group, so a notifier killed in one test never holds up another.
Retries are fast (FAST) so that failures and recoveries take seconds.

The receivers listen on loopback, where webhooks never go unless allowed:
every destination add and every notifier here passes ALLOW_LO explicitly,
except where a test is about that rule (test_ssrf_*).
"""
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid

from harness import (BROKERS, CTKN, KIP848, Env, check, kip848_unsupported,
                     log_end_offsets, main, run)
from receiver import Receiver
from test_api_sdk import SDK_DIR, npm_ci

CREATED = "client_token.created"
UPDATED = "client_token.updated"
REVOKED = "client_token.revoked"
ALL = f"{CREATED},{UPDATED},{REVOKED}"
ORDER = {CREATED: 0, UPDATED: 1, REVOKED: 2}
FAST = ["--retry-initial", "200ms", "--retry-max", "1s", "--max-age", "30s"]
TAKEOVER = ["-X", "session.timeout.ms=6000"]
NTF_RE = re.compile(r"^ntf_[0-9a-z]{26}$")
ALLOW_LO = ["--allow-destination-network", "127.0.0.0/8"]
BODY_KEYS = {"event_id", "event_type", "occurred_at", "notification_id",
             "data"}


def wait_until(pred, timeout, what, every=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        check(time.monotonic() < deadline, f"timed out after {timeout}s: {what}")
        time.sleep(every)


class NEnv(Env):
    """An Env with a deployment key file (mode 0600), a notifier projection
    and a lease group of its own."""

    def __init__(self, name, partitions=3):
        super().__init__(partitions=partitions, name=name)
        self.key = self.path("deploy.key")
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        self.ndb = self.path("notify-db")
        self.group = "g-" + self.topic
        self.secrets = {}

    def add_dest(self, url, events, *extra):
        r = self.ok("destination", "add", "--url", url, "--events", events,
                    "--secret-key-file", self.key, *ALLOW_LO, *extra)
        d = r.json["data"]
        check(d["destination"] == url and d["active"] is True, f"add: {r}")
        check(sorted(e["name"] for e in d["subscribed_events"]) ==
              sorted(events.split(",")), f"add: events: {r}")
        secret = d["endpoint_secret_key"]
        check(secret.startswith("pdl_ntfset_"), f"add: secret: {r}")
        self.secrets[d["id"]] = secret
        return d["id"], secret

    def notify(self, *args, db=None, timeout=60, allow=ALLOW_LO, result=False):
        """One-shot `ctkn notify`; returns its stats (and the Result)."""
        r = self.ctkn("notify", "--secret-key-file", self.key, "--group",
                      self.group, *allow, *args, db=db or self.ndb,
                      timeout=timeout)
        check(r.rc == 0, f"notify failed: {r}")
        return (r.json["data"], r) if result else r.json["data"]

    def ntf(self, *args, db=None):
        """`ctkn notification ...` on the notifier's projection: JSON lines."""
        r = self.ctkn("notification", *args, db=db or self.ndb)
        check(r.rc == 0, f"notification {args} failed: {r}")
        return r.lines

    def settings_end(self):
        return log_end_offsets(self.topic + "_settings")

    def events(self):
        """Every event in the log (webhook JSON, from `ctkn tail`)."""
        return self.ok("tail", "--from-beginning", "--exit-at-end").lines


class Notifier:
    """`ctkn notify --follow` in the background; output in DIR/NAME.log."""

    def __init__(self, env, name, *args, db=None):
        self.log = env.path(name + ".log")
        self.db = db or env.ndb
        with open(self.log, "w") as f:
            self.proc = subprocess.Popen(
                [CTKN, "notify", "--follow", "--secret-key-file", env.key,
                 "--group", env.group, *ALLOW_LO, *args, "--topic", env.topic,
                 "--brokers", BROKERS, "--db", self.db],
                stdout=f, stderr=subprocess.STDOUT)

    def output(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def attempts(self):
        out = []
        text = self.output()
        # A running notifier may be writing its last line: only whole lines.
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()
        for line in lines:
            if '"notify":"attempt"' in line:
                out.append(json.loads(line))
        return out

    def owned(self):
        """Partitions held now, from the acquired/released lines."""
        held = set()
        for m in re.finditer(r"partition (\d+) (acquired|released)",
                             self.output()):
            p = int(m.group(1))
            if m.group(2) == "acquired":
                held.add(p)
            else:
                held.discard(p)
        return held

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout=20):
        """SIGTERM; the notifier must exit 0 within timeout seconds."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"notify ignored SIGTERM for {timeout}s:\n"
                                 f"{self.output()[-3000:]}")
        check(rc == 0, f"notify exited {rc}:\n{self.output()[-3000:]}")


def workload(env, n, update=True, revoke=True, prefix="tok", spread=False):
    """n creates (one batch), then an update of each, then a revoke of each;
    returns the token IDs. With spread, each create has an idempotency key,
    whose hash picks its partition: a batch of creates without one goes to
    one partition."""
    lines = "".join(
        json.dumps({"name": f"{prefix} {i}"} |
                   ({"idempotency_key": f"{prefix}-{i}"} if spread else {}))
        + "\n" for i in range(n))
    r = env.ok("create", "--batch", input=lines)
    ids = [l["data"]["id"] for l in r.lines]
    check(len(ids) == n, f"batch created {len(ids)} of {n}: {r}")
    for t in ids if update else []:
        env.ok("update", t, "--name", f"{prefix} renamed")
    for t in ids if revoke else []:
        env.ok("revoke", t)
    return ids


def ok_pairs(rx, path):
    """(event_id, event_type) of each request answered 2xx on path."""
    return [(r.json["event_id"], r.json["event_type"])
            for r in rx.successful(path)]


def delivered_ids(rx, path):
    return {r.json["event_id"] for r in rx.successful(path)}


def one_id_per_event(reqs, what):
    """Every request for an event carries the same notification_id; returns
    {event_id: notification_id}."""
    ids = {}
    for r in reqs:
        e, n = r.json["event_id"], r.json["notification_id"]
        check(NTF_RE.match(n), f"{what}: bad notification_id {n}")
        check(ids.setdefault(e, n) == n,
              f"{what}: event {e} sent as {ids[e]} and as {n}")
    return ids


def check_token_order(reqs, what, every_request=False):
    """Per token, the 2xx responses (every request with every_request)
    follow log order: created, then updated, then revoked."""
    last = {}
    for r in sorted(reqs, key=lambda r: r.seq):
        if not every_request and not r.ok:
            continue
        tok, rank = r.json["data"]["id"], ORDER[r.json["event_type"]]
        check(rank >= last.get(tok, -1),
              f"{what}: {r.json['event_type']} of {tok} went before an "
              f"earlier event was delivered: {r}")
        last[tok] = rank


def sdk_verify(items):
    """Run verify-webhooks.mjs (Paddle's Node SDK) over items."""
    npm_ci()
    p = subprocess.run(
        ["node", "verify-webhooks.mjs"], cwd=SDK_DIR, capture_output=True,
        text=True, timeout=120,
        input="".join(json.dumps(i) + "\n" for i in items))
    check(p.returncode == 0, f"verify-webhooks.mjs: {p.stderr}")
    out = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    check(len(out) == len(items), f"verifier answered {len(out)} of "
                                  f"{len(items)}: {p.stderr}")
    return out


# --- 1. fan-out: every subscribed event, no other, once ---------------------


def test_fanout_by_subscription():
    env = NEnv("nfan")
    rx = Receiver()
    try:
        workload(env, 3, prefix="before all")         # no destination yet
        d1, _ = env.add_dest(rx.url("/created"), CREATED)
        t1 = workload(env, 4, update=False, revoke=False, prefix="batch1")
        before_d2 = {e["event_id"] for e in env.events()}
        d2, _ = env.add_dest(rx.url("/all"), ALL)
        d3, _ = env.add_dest(rx.url("/revoked"), REVOKED)
        t2 = workload(env, 5, prefix="batch2")
        for t in t1[:2]:                              # older tokens change too
            env.ok("update", t, "--name", "changed later")
            env.ok("revoke", t)
        events = env.events()
        evt = {e["event_id"]: e for e in events}
        after_d1 = {e["event_id"] for e in events
                    if e["data"]["id"] in set(t1) | set(t2)}
        after_d2 = set(evt) - before_d2
        check(len(after_d1) == 4 + 15 + 4 and len(after_d2) == 15 + 4,
              f"unexpected log: {len(events)} events")

        def want(ids, types):
            return {(e, evt[e]["event_type"]) for e in ids
                    if evt[e]["event_type"] in types}

        expect = {"/created": want(after_d1, {CREATED}),
                  "/all": want(after_d2, set(ORDER)),
                  "/revoked": want(after_d2, {REVOKED})}
        check(len(expect["/created"]) == 9 and len(expect["/all"]) == 19 and
              len(expect["/revoked"]) == 7, f"expectations: {expect}")

        stats = env.notify(*FAST)
        total = sum(len(v) for v in expect.values())
        check(stats["delivered"] == total and stats["attempts"] == total and
              stats["failed"] == 0, f"notify stats {stats}, want {total}")
        for path, pairs in expect.items():
            got = ok_pairs(rx, path)
            check(len(got) == len(set(got)), f"{path}: duplicates: {got}")
            check(set(got) == pairs,
                  f"{path}: missing {pairs - set(got)}, "
                  f"unexpected {set(got) - pairs}")
        check(len(rx.requests()) == total,
              f"requests beyond the subscriptions: {rx.requests()}")

        # The bodies are the webhook JSON, with a notification ID per
        # destination.
        per_dest = {}
        for path in expect:
            for r in rx.requests(path):
                b = r.json
                check(set(b) == BODY_KEYS, f"{path}: body keys {sorted(b)}")
                e = evt[b["event_id"]]
                check(b["occurred_at"] == e["occurred_at"] and
                      b["data"] == e["data"], f"{path}: body {b} vs log {e}")
                check(r.headers.get("Content-Type", "").startswith(
                    "application/json"), f"{path}: headers {r.headers}")
                per_dest.setdefault(b["event_id"], {})[path] = \
                    b["notification_id"]
            one_id_per_event(rx.requests(path), path)
        shared = [e for e, m in per_dest.items() if len(m) > 1]
        check(len(shared) >= 5, f"events sent to several destinations: "
                                f"{shared}")
        for e in shared:
            ids = list(per_dest[e].values())
            check(len(set(ids)) == len(ids),
                  f"event {e}: same notification_id for two "
                  f"destinations: {per_dest[e]}")

        # The audit trail agrees, and a second run has nothing to do.
        listed = env.ntf("list", "--status", "delivered")
        check(len(listed) == total, f"list: {len(listed)} of {total}")
        for path, d in (("/created", d1), ("/all", d2), ("/revoked", d3)):
            mine = env.ntf("list", "--destination", d)
            check({(n["payload"]["event_id"], n["type"]) for n in mine} ==
                  expect[path] and all(n["status"] == "delivered" and
                                       n["times_attempted"] == 1 and
                                       n["origin"] == "event"
                                       for n in mine),
                  f"list --destination {d}: {mine}")
        again = env.notify(*FAST)
        check(again["attempts"] == 0 and len(rx.requests()) == total,
              f"second run: {again}")
    finally:
        rx.close()
        env.close()


# --- 2. signatures: Paddle's Node SDK accepts them ---------------------------


def test_signatures_verify_with_paddle_sdk():
    env = NEnv("nsig")
    rx = Receiver()
    try:
        _, sa = env.add_dest(rx.url("/a"), ALL)
        _, sb = env.add_dest(rx.url("/b"), f"{CREATED},{REVOKED}")
        check(sa != sb, "two destinations share a secret")
        rx.set_mode("/b", ("fail_n", 2, 500))    # retried attempts too
        workload(env, 3, revoke=True)
        env.notify(*FAST)
        wait_until(lambda: len(rx.requests("/b")) >= 2, 5, "first attempts")
        time.sleep(1.2)                          # past the retry backoff
        env.notify(*FAST)
        check(len(rx.successful("/a")) == 9 and len(rx.successful("/b")) == 6,
              f"deliveries: {rx.requests()}")
        reqs = rx.requests()
        secret = {"/a": sa, "/b": sb}
        items = []
        for r in reqs:
            check(r.signature and re.fullmatch(r"ts=\d+;h1=[0-9a-f]{64}",
                                               r.signature),
                  f"Paddle-Signature {r.signature!r}")
            ts = int(r.signature.split(";")[0][3:])
            check(abs(ts - r.wall) < 3, f"signature ts {ts} vs arrival "
                                        f"{r.wall}")
            items.append({"secret": secret[r.path], "signature": r.signature,
                          "body": r.body.decode(), "now": int(r.wall)})
        bad = [dict(i, secret=secret["/b" if i["secret"] == sa else "/a"])
               for i in items]
        tampered = [dict(i, body=i["body"].replace('"data":{',
                                                   '"data":{"x":1,', 1))
                    for i in items[:3]]
        stale = [dict(i, now=i["now"] + 60) for i in items[:3]]
        out = sdk_verify(items + bad + tampered + stale)
        good, out = out[:len(items)], out[len(items):]
        for r, v in zip(reqs, good):
            check(v["valid"] and v["signature_valid"] and
                  v["event_id"] == r.json["event_id"] and
                  v["notification_id"] == r.json["notification_id"] and
                  v["event_type"] == r.json["event_type"],
                  f"SDK rejected {r}: {v}")
        check(all(v["sdk_class"] != "GenericEvent" for v in good),
              f"SDK did not know the event types: {good}")
        check(not any(v["valid"] or v["signature_valid"] for v in out),
              f"SDK accepted a wrong secret, body or time: {out}")
        retried = [r for r in reqs if r.path == "/b"]
        check(len(retried) == 8 and sum(not r.ok for r in retried) == 2,
              f"/b attempts: {retried}")
    finally:
        rx.close()
        env.close()


# --- 3. failures are retried until the receiver recovers ---------------------


def test_retries_until_recovery():
    env = NEnv("nretry")
    rx = Receiver()
    rx2 = Receiver()                 # refuses connections for a while
    n = None
    try:
        env.add_dest(rx.url("/fail"), ALL)
        env.add_dest(rx.url("/unavail"), ALL)
        dref, _ = env.add_dest(rx2.url("/ref"), ALL)
        rx.set_mode("/fail", ("fail_n", 3, 500))
        rx.set_mode("/unavail", ("status", 503))
        rx2.stop_listening()
        toks = workload(env, 6)
        expect = {e["event_id"] for e in env.events()}
        check(len(expect) == 18, f"{len(expect)} events")
        n = Notifier(env, "n", *FAST)
        # Several rounds of failures on every destination first.
        wait_until(lambda: len(rx.requests("/unavail")) >= 8 and any(
            sum(1 for r in rx.requests("/unavail")
                if r.json["event_id"] == e) >= 2 for e in expect),
            20, "retried 503s")
        wait_until(lambda: sum(1 for a in n.attempts()
                               if a["destination"] == dref and
                               a["attempt"] >= 2) >= 2, 20,
                   "refused connections retried")
        check(not rx.successful("/unavail"), "503 counted as delivered")
        rx.set_mode("/unavail", "ok")
        rx2.start_listening()
        for r, path in ((rx, "/fail"), (rx, "/unavail"), (rx2, "/ref")):
            wait_until(lambda: delivered_ids(r, path) >= expect, 30,
                       f"{path}: all delivered")
        n.stop()
        # Its attempt lines say what `notification logs` says: a
        # delivery has no error, a refused connection no status.
        lines = n.attempts()
        done = [a for a in lines if a["outcome"] == "delivered"]
        refused = [a for a in lines
                   if a["destination"] == dref and a["outcome"] == "retry"]
        check(done and refused and all(
            a["error"] is None and a["response_code"] == 200 for a in done)
            and all(a["error"] and a["response_code"] is None
                    for a in refused),
            f"attempt lines: {done[:2]} {refused[:2]}")
        n = None

        for r, path in ((rx, "/fail"), (rx, "/unavail"), (rx2, "/ref")):
            reqs = r.requests(path)
            ok = [q.json["event_id"] for q in reqs if q.ok]
            check(sorted(ok) == sorted(expect),
                  f"{path}: want each event delivered once: {reqs}")
            ids = one_id_per_event(reqs, path)
            check(len(set(ids.values())) == len(ids), f"{path}: ids {ids}")
            check_token_order(reqs, path, every_request=True)
            check({q.json["data"]["id"] for q in reqs} == set(toks), path)
        fails = [q for q in rx.requests("/fail") if not q.ok]
        check(len(fails) == 3 and all(q.status == 500 for q in fails),
              f"/fail: {fails}")
        retried_ok = {q.json["notification_id"]
                      for q in rx.successful("/fail")}
        check(all(q.json["notification_id"] in retried_ok for q in fails),
              "a failed notification was delivered under another ID")

        # The audit trail: delivered, with every attempt's status code.
        listed = env.ntf("list", "--status", "delivered")
        check(len(listed) == 54, f"delivered: {len(listed)}")
        check(env.ntf("list", "--status", "failed,pending") == [],
              "notifications left pending or failed")
        by_id = {x["id"]: x for x in listed}
        f0 = fails[0].json["notification_id"]
        codes = [a["response_code"] for a in env.ntf("logs", f0)]
        check(codes[0] == 500 and codes[-1] == 200 and
              set(codes) <= {500, 200} and codes.count(200) == 1 and
              by_id[f0]["times_attempted"] == len(codes),
              f"logs {f0}: {codes}, {by_id[f0]}")
        u0 = next(q.json["notification_id"] for q in rx.requests("/unavail"))
        codes = [a["response_code"] for a in env.ntf("logs", u0)]
        check(len(codes) >= 2 and codes[-1] == 200 and
              set(codes[:-1]) == {503}, f"logs {u0}: {codes}")
        r0 = next(x["id"] for x in listed
                  if x["notification_setting_id"] == dref and
                  x["times_attempted"] >= 2)
        logs = env.ntf("logs", r0)
        check(logs[-1]["response_code"] == 200 and all(
            a["response_code"] is None and a["error"] for a in logs[:-1]),
            f"logs {r0}: {logs}")
        check([a["attempt"] for a in logs] == list(range(1, len(logs) + 1)),
              f"attempt numbers {logs}")
    finally:
        if n is not None:
            n.kill()
        rx.close()
        rx2.close()
        env.close()


# --- 4. a notifier SIGKILLed mid-stream skips nothing ------------------------


def test_sigkill_and_restart_skips_nothing():
    env = NEnv("nkill")
    rx = Receiver()
    n = None
    try:
        env.add_dest(rx.url("/slow"), ALL)
        rx.set_mode("/slow", ("delay", 0.2))
        # 6 tokens of 5 events each: at most 6 requests in flight (one per
        # token), so the stream lasts 5 rounds of the receiver's delay.
        toks = workload(env, 6, update=False, revoke=False)
        for i in range(3):
            for t in toks:
                env.ok("update", t, "--name", f"rename {i}")
        for t in toks:
            env.ok("revoke", t)
        expect = {e["event_id"] for e in env.events()}
        check(len(expect) == 30, f"{len(expect)} events")
        n = Notifier(env, "n1", *FAST, *TAKEOVER)
        wait_until(lambda: len(rx.successful("/slow")) >= 8, 30,
                   "mid-stream")
        # Hold the next requests, so that some are surely unanswered when
        # the notifier dies.
        rx.set_mode("/slow", "hang")
        t_hang = time.monotonic()

        def held():
            return {r.json["event_id"] for r in rx.requests("/slow")
                    if r.t > t_hang and r.outcome == "pending"}
        wait_until(held, 10, "a request held")
        time.sleep(0.3)
        in_flight = held()
        n.kill()
        n = None
        # The receiver sees the dead client hang up on the held requests.
        wait_until(lambda: all(r.outcome != "pending"
                               for r in rx.requests("/slow")), 5,
                   "held requests aborted")
        before = rx.requests("/slow")
        check(all(not r.ok for r in before if r.json["event_id"] in
                  in_flight), "a held request was answered")
        check(len(delivered_ids(rx, "/slow")) < len(expect),
              "everything was delivered before the kill")
        rx.set_mode("/slow", ("delay", 0.05))
        n = Notifier(env, "n2", *FAST, *TAKEOVER)
        wait_until(lambda: delivered_ids(rx, "/slow") >= expect, 60,
                   "all delivered after the restart")
        n.stop()
        n = None
        reqs = rx.requests("/slow")
        ids = one_id_per_event(reqs, "/slow")
        check(set(ids) == expect, f"unexpected events {set(ids) - expect}")
        again = [r for r in reqs[len(before):]
                 if r.json["event_id"] in {b.json["event_id"] for b in before}]
        check({r.json["event_id"] for r in again} >= in_flight,
              f"in flight at the kill, not sent again: {in_flight}")
        print(f"  {len(in_flight)} in flight at the kill; {len(again)} "
              f"sent again")
        for r in again:
            check(r.json["notification_id"] ==
                  ids[r.json["event_id"]], f"resent under a new ID: {r}")
        check_token_order(reqs, "/slow")
    finally:
        if n is not None:
            n.kill()
        rx.close()
        env.close()


# --- 5. a paused destination catches up when resumed -------------------------


def test_paused_destination_catches_up():
    env = NEnv("npause")
    rx = Receiver()
    n = None
    try:
        env.add_dest(rx.url("/live"), ALL)
        dp, _ = env.add_dest(rx.url("/paused"), ALL)
        r = env.ok("destination", "update", dp, "--active", "false")
        check(r.json["data"]["active"] is False, f"pause: {r}")
        check(env.ok("destination", "get", dp).json["data"]["active"] is False,
              "get after pause")
        n = Notifier(env, "n", *FAST)
        wait_until(lambda: n.owned() == {0, 1, 2}, 30, "lease")
        workload(env, 4, revoke=False, prefix="early")
        time.sleep(0.5)
        workload(env, 4, update=False, prefix="late")
        expect = {e["event_id"] for e in env.events()}
        check(len(expect) == 16, f"{len(expect)} events")
        wait_until(lambda: delivered_ids(rx, "/live") >= expect, 30,
                   "live destination")
        time.sleep(1.0)
        check(rx.requests("/paused") == [],
              f"paused destination got {rx.requests('/paused')}")
        r = env.ok("destination", "update", dp, "--active", "true")
        check(r.json["data"]["active"] is True, f"resume: {r}")
        wait_until(lambda: delivered_ids(rx, "/paused") >= expect, 30,
                   "catch-up after resuming")
        more = workload(env, 2, update=False, revoke=False, prefix="after")
        wait_until(lambda: {r.json["data"]["id"] for r in
                            rx.successful("/paused")} >= set(more), 30,
                   "events after resuming")
        n.stop()
        n = None
        for path in ("/live", "/paused"):
            got = [p[0] for p in ok_pairs(rx, path)]
            check(len(got) == len(set(got)) == 18, f"{path}: {len(got)}")
            check_token_order(rx.requests(path), path)
    finally:
        if n is not None:
            n.kill()
        rx.close()
        env.close()


# --- 6. a hanging destination does not hold up the others --------------------


def test_hanging_destination_does_not_slow_others():
    env = NEnv("nhang")
    rx = Receiver()
    n = None
    N = 24
    try:
        dh, _ = env.add_dest(rx.url("/hang"), CREATED)
        env.add_dest(rx.url("/ok"), CREATED)
        rx.set_mode("/hang", "hang")
        workload(env, N, update=False, revoke=False)
        t0 = time.monotonic()
        n = Notifier(env, "n", "--request-timeout", "3s", *FAST)
        wait_until(lambda: len(rx.successful("/ok")) >= N, 30,
                   "ok destination")
        took = time.monotonic() - t0
        print(f"  {N} deliveries in {took:.1f}s beside a hanging destination")
        hung = rx.requests("/hang")
        check(hung and all(r.status is None for r in hung),
              f"the hanging destination was not tried: {hung}")
        check(took < 8, f"{N} deliveries took {took:.1f}s beside a hanging "
                        f"destination (N x timeout = {N * 3}s)")
        # The hanging requests time out after 3 s and are retried.
        wait_until(lambda: any(a["destination"] == dh and a["attempt"] >= 2
                               for a in n.attempts()), 15, "retry of a hang")
        timed_out = [a for a in n.attempts() if a["destination"] == dh]
        check(all(a["response_code"] is None and a["outcome"] == "retry" and
                  a["error"] and
                  2900 <= a["latency_ms"] < 6000 for a in timed_out),
              f"hung attempts: {timed_out}")
        check(len(rx.successful("/ok")) == N, "ok destination: duplicates")
        t1 = time.monotonic()
        n.stop()
        n = None
        check(time.monotonic() - t1 < 5, "stopping took long with hung "
                                         "requests in flight")
    finally:
        if n is not None:
            n.kill()
        rx.close()
        env.close()


# --- 7. max age: failed, then replayed under a new ID --------------------------


def test_max_age_fails_then_replay():
    env = NEnv("nage")
    rx = Receiver()
    n = None
    try:
        env.add_dest(rx.url("/down"), f"{CREATED},{UPDATED}")
        rx.set_mode("/down", ("status", 500))
        workload(env, 3, revoke=False)
        # A one-shot run attempts what is due and leaves the retries (and
        # the updates queued behind them, and what does not fit its
        # window) to a later run, rather than waiting for them.
        t0 = time.monotonic()
        stats = env.notify("--retry-initial", "3s", "--max-age", "60s",
                           "--window", "2", timeout=20)
        check(time.monotonic() - t0 < 8 and stats["attempts"] >= 1 and
              stats["failed"] == 0 and stats["delivered"] == 0,
              f"one-shot run: {stats} in {time.monotonic() - t0:.1f}s")
        check(env.ntf("list", "--status", "failed,delivered") == [],
              "settled already")
        n = Notifier(env, "n", "--retry-initial", "200ms", "--retry-max",
                     "500ms", "--max-age", "2s")
        failed = wait_until(
            lambda: len(env.ntf("list", "--status", "failed")) == 6 and
            env.ntf("list", "--status", "failed"), 40, "failed after max age",
            every=0.3)
        n.stop()
        n = None
        check(env.ntf("list", "--status", "delivered,pending") == [],
              "some notification is not failed")
        check_token_order(rx.requests("/down"), "/down", every_request=True)
        for f in failed:
            logs = env.ntf("logs", f["id"])
            check(len(logs) >= 2 and all(a["response_code"] == 500
                                         for a in logs),
                  f"attempts of {f['id']}: {logs}")
            check(f["times_attempted"] == len(logs) and f["origin"] ==
                  "event" and f["delivered_at"] is None, f"{f}")
        sent = len(rx.requests("/down"))

        rx.set_mode("/down", "ok")
        old = failed[0]
        r = env.ctkn("notification", "replay", old["id"], db=env.ndb)
        check(r.rc == 0, f"replay: {r}")
        new = r.json["data"]["notification_id"]
        check(NTF_RE.match(new) and new != old["id"], f"replay id {new}")
        got = env.ntf("get", new)[0]
        check(got["origin"] == "replay" and got["status"] == "not_attempted",
              f"queued replay: {got}")
        stats = env.notify(*FAST)
        check(stats["replayed"] == 1 and stats["attempts"] == 1,
              f"notify after replay: {stats}")
        later = rx.requests("/down")[sent:]
        check(len(later) == 1 and later[0].ok, f"after replay: {later}")
        body = later[0].json
        check(body["notification_id"] == new and
              body["event_id"] == old["payload"]["event_id"],
              f"replayed body {body}")
        got = env.ntf("get", new)[0]
        check(got["status"] == "delivered" and got["origin"] == "replay",
              f"replay after delivery: {got}")
        check(env.ntf("get", old["id"])[0]["status"] == "failed",
              "the original changed")
    finally:
        if n is not None:
            n.kill()
        rx.close()
        env.close()


def test_stuck_replays_do_not_starve_the_queue():
    """More than a scan's worth (64) of queued replays that cannot be sent
    (their destination was removed after they were queued: a replay asked
    for once it is removed is refused) must not keep a later replay to a
    live destination from ever being sent."""
    env = NEnv("nstarve", partitions=1)
    rx = Receiver()
    try:
        gone, _ = env.add_dest(rx.url("/gone"), CREATED)
        env.add_dest(rx.url("/live"), CREATED)
        workload(env, 66, update=False, revoke=False)
        stats = env.notify("--window", "64", *FAST)
        check(stats["delivered"] == 132, f"first run: {stats}")
        dead = env.ntf("list", "--destination", gone)
        live = env.ntf("list", "--destination",
                       [d for d in env.secrets if d != gone][0])
        check(len(dead) == 66 and len(live) == 66, "notifications")
        for n in dead:
            r = env.ctkn("notification", "replay", n["id"], db=env.ndb)
            check(r.rc == 0, f"replay: {r}")
        env.ok("destination", "remove", gone)
        # A run learns of the removal; the queued replays stay unsent.
        stats = env.notify(*FAST)
        check(stats["replayed"] == 0, f"sent to a removed one: {stats}")
        r = env.ctkn("notification", "replay", dead[0]["id"], db=env.ndb)
        check(r.rc == 1 and r.error["code"] == "notification_cannot_replay"
              and "was removed" in r.error["detail"], f"replay: {r}")
        r = env.ctkn("notification", "replay", live[0]["id"], db=env.ndb)
        check(r.rc == 0, f"replay: {r}")
        new = r.json["data"]["notification_id"]
        before = len(rx.requests("/live"))
        sent_gone = len(rx.requests("/gone"))
        stats = env.notify(*FAST)
        check(stats["replayed"] == 1, f"the live replay was not sent: {stats}")
        later = rx.requests("/live")[before:]
        check(len(later) == 1 and later[0].json["notification_id"] == new,
              f"after replay: {later}")
        check(rx.requests("/gone")[sent_gone:] == [], "sent to a removed one")
    finally:
        rx.close()
        env.close()


def test_many_paused_destinations_do_not_crowd_out_the_group_cursor():
    """The group's record of each lane's cursor (Kafka's commit metadata,
    4000 bytes) holds about 65 destinations. Paused ones must not crowd an
    active one out of it: a notifier taking the partition over (here, one
    on a fresh projection) would send it again every notification since
    its creation."""
    env = NEnv("ncrowd", partitions=1)
    rx = Receiver()
    try:
        for i in range(72):
            env.ok("destination", "add", "--url", rx.url(f"/paused{i}"),
                   "--events", CREATED, "--active", "false",
                   "--secret-key-file", env.key, *ALLOW_LO)
        env.add_dest(rx.url("/live"), CREATED)
        workload(env, 4, update=False, revoke=False)
        stats = env.notify()
        check(stats["delivered"] == 4, f"first notifier: {stats}")
        stats = env.notify(db=env.path("notify-db-2"))
        check(stats["attempts"] == 0,
              f"the next holder sent again what was delivered: {stats}")
        check(len(rx.requests("/live")) == 4, "duplicates")
    finally:
        rx.close()
        env.close()


# --- 8. bad destination input appends nothing ----------------------------------


def test_bad_destination_input_appends_nothing():
    env = NEnv("nbad")
    try:
        start = env.settings_end()
        env.add_dest("http://127.0.0.1:9/ok", CREATED)
        before = env.settings_end()
        # (signed: the destination and its writer's checkpoint)
        check(before[0] > start[0], f"settings topic {start} {before}")
        loose = env.path("loose.key")
        with open(loose, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        os.chmod(loose, 0o644)
        url = "http://127.0.0.1:9/x"
        cases = [
            (1, "invalid_field", "destination", "http", None,
             ["--url", "ftp://example.com/hook", "--events", CREATED]),
            (1, "invalid_field", "destination", None, None,
             ["--url", "not a url", "--events", CREATED]),
            (1, "invalid_field", "destination", None, None,
             ["--url", "http:///nohost", "--events", CREATED]),
            (1, "invalid_field", "subscribed_events", "client_token.exploded",
             None, ["--url", url, "--events", "client_token.exploded"]),
            (1, "invalid_field", "subscribed_events", None, None,
             ["--url", url, "--events", f"{CREATED},{CREATED}"]),
            (2, "bad_request", None, "--events", None, ["--url", url]),
            (1, "invalid_field", "secret_key_file", "No such file",
             env.path("missing.key"), ["--url", url, "--events", CREATED]),
            (1, "invalid_field", "secret_key_file", "0644", loose,
             ["--url", url, "--events", CREATED]),
        ]
        for rc, code, field, words, keyfile, args in cases:
            r = env.ctkn("destination", "add", *args, "--secret-key-file",
                         keyfile or env.key, *ALLOW_LO)
            what = f"destination add {args} (key {keyfile})"
            check(r.rc == rc, f"{what}: want exit {rc}: {r}")
            check(r.out == "", f"{what}: stdout {r.out!r}")
            e = r.error
            check(e["code"] == code and e["detail"], f"{what}: {r}")
            if field:
                check(e["errors"][0]["field"] == field, f"{what}: field: {r}")
            if words:
                check(words in e["detail"], f"{what}: detail: {r}")
        check(env.settings_end() == before, "bad input was appended")
        check(len(env.ok("destination", "list").json["data"]) == 1,
              "destination list changed")
    finally:
        env.close()


# --- 8b. where a destination may point, judged when it is created -------------


def test_unsafe_destinations_refused_at_creation():
    """Literal special-purpose addresses in every spelling (without an
    allowance), user info, and http in live are invalid_field on
    destination, for add and update; a bad --allow-destination-network is
    a usage error; nothing is appended."""
    env = NEnv("nunsafe")
    try:
        did, _ = env.add_dest("https://hooks.example.com/ok", CREATED)
        before = env.settings_end()
        loopback = "is not globally reachable (loopback 127.0.0.0/8); " \
                   "allow it with --allow-destination-network"
        refused = [  # url, allowances, what the detail says
            ("http://127.0.0.1:9/x", [], "127.0.0.1 " + loopback),
            ("http://localhost.:9/x", [], None),  # a name: judged later
            ("http://0:9/x", ALLOW_LO, "0.0.0.0 is not globally reachable "
                                       "(unspecified"),
            ("http://0.0.0.0:9/x", ALLOW_LO, "unspecified"),
            ("http://2130706433:9/x", [], "127.0.0.1 " + loopback),
            ("http://0x7f.1:9/x", [], "127.0.0.1 " + loopback),
            ("http://017700000001:9/x", [], "127.0.0.1 " + loopback),
            ("http://127.1:9/x", [], "127.0.0.1 " + loopback),
            ("http://127.0.0.1.:9/x", [], "127.0.0.1 " + loopback),
            ("http://[::1]:9/x", ALLOW_LO, "::1 is not globally reachable "
                                           "(loopback ::1/128)"),
            ("http://[::ffff:127.0.0.1]:9/x", ALLOW_LO, "(IPv4-mapped"),
            ("http://[::ffff:7f00:1]:9/x", ALLOW_LO, "(IPv4-mapped"),
            ("http://[::]:9/x", [], "(unspecified ::/128)"),
            ("http://[64:ff9b::7f00:1]/x", [], "translation 64:ff9b::/96"),
            ("http://[2002:7f00:1::1]/x", [], "6to4 2002::/16"),
            ("http://[2001::1]/x", [], "Teredo 2001::/32"),
            ("http://[fe80::1%25lo]/x", [], "link-local fe80::/10"),
            ("http://[fd00::1]/x", [], "unique local fc00::/7"),
            ("http://169.254.169.254/latest/meta-data/", ALLOW_LO,
             "169.254.169.254 is not globally reachable (link-local"),
            ("http://10.0.0.1/x", ALLOW_LO, "private-use 10.0.0.0/8"),
            ("http://172.16.0.1/x", [], "private-use 172.16.0.0/12"),
            ("http://192.168.1.1/x", [], "private-use 192.168.0.0/16"),
            ("http://100.64.0.1/x", [], "CGNAT"),
            ("http://192.0.2.1/x", [], "documentation 192.0.2.0/24"),
            ("http://198.18.0.1/x", [], "benchmarking 198.18.0.0/15"),
            ("http://192.0.0.1/x", [], "IETF protocol assignments"),
            ("http://224.0.0.1/x", [], "multicast 224.0.0.0/4"),
            ("http://240.0.0.1/x", [], "reserved 240.0.0.0/4"),
            ("http://255.255.255.255/x", [], "limited broadcast"),
            ("https://user:pass@hooks.example.com/x", [],
             "must not carry user info"),
            ("https://user@hooks.example.com/x", [], "user info"),
        ]
        for url, allow, words in refused:
            if words is None:
                continue
            for args in (["add", "--url", url, "--events", CREATED],
                         ["update", did, "--url", url]):
                r = env.ctkn("destination", *args, "--secret-key-file",
                             env.key, *allow)
                what = f"destination {args[0]} {url} {allow}"
                check(r.rc == 1 and r.out == "", f"{what}: {r}")
                e = r.error
                check(e["code"] == "invalid_field" and
                      e["errors"][0]["field"] == "destination" and
                      words in e["detail"], f"{what}: {r}")
        # The allowance admits exactly its network.
        r = env.ctkn("destination", "update", did, "--url",
                     "http://127.0.0.2:9/x", "--allow-destination-network",
                     "127.0.0.1/32")
        check(r.rc == 1 and "127.0.0.2 is not" in r.error["detail"], r)
        # A bad network is a usage error, naming the rule.
        for bad, words in (("127.0.0.1/8", "did you mean 127.0.0.0/8?"),
                           ("127.1/8", "is not an IPv4 address"),
                           ("::/129", "must be 0-128"),
                           ("localhost", "is not an IPv4 address")):
            for cmd in (["destination", "add", "--url",
                         "https://hooks.example.com/", "--events", CREATED,
                         "--secret-key-file", env.key],
                        ["notify", "--secret-key-file", env.key]):
                r = env.ctkn(*cmd, "--allow-destination-network", bad)
                check(r.rc == 2 and r.error["code"] == "bad_request" and
                      words in r.error["detail"], f"{cmd[0]} {bad}: {r}")
        # live: https only (a projection of its own: the store is bound to
        # its environment).
        live = ["--environment", "live"]
        r = env.ctkn("destination", "add", "--url",
                     "http://hooks.example.com/x", "--events", CREATED,
                     "--secret-key-file", env.key, *live,
                     db=env.path("live-db"))
        check(r.rc == 1 and r.error["errors"][0]["field"] == "destination"
              and "https:// URL in the live environment" in
              r.error["detail"], f"live http: {r}")
        check(env.settings_end() == before, "a refused URL was appended")
        r = env.ctkn("destination", "add", "--url",
                     "https://hooks.example.com/live", "--events", CREATED,
                     "--secret-key-file", env.key, *live,
                     db=env.path("live-db"))
        check(r.rc == 0, f"live https: {r}")
        # Names are judged when connecting; sandbox keeps http.
        env.ok("destination", "update", did, "--url", "http://localhost.:9/x")
        # (each with its writer's checkpoint: signed)
        check(env.settings_end()[0] >= before[0] + 2,
              "the good ones appended")
    finally:
        env.close()


# --- 8c. at most 10 active destinations, as Paddle ---------------------------


def test_at_most_ten_active_destinations():
    env = NEnv("nmax")
    try:
        url = "https://hooks.example.com/h"
        ids = [env.add_dest(f"{url}{i}", CREATED)[0] for i in range(10)]
        before = env.settings_end()

        def add(*extra):
            return env.ctkn("destination", "add", "--url", url + "x",
                            "--events", CREATED, "--secret-key-file",
                            env.key, *extra)

        def refused(r, n=10):
            check(r.rc == 1 and r.out == "" and r.error["code"] ==
                  "notification_maximum_active_settings_reached" and
                  f"at most {n} notification settings may be active" in
                  r.error["detail"], r)

        refused(add())
        check(env.settings_end() == before, "the 11th was appended")
        paused = add("--active", "false")
        check(paused.rc == 0, paused)
        pid = paused.json["data"]["id"]
        refused(env.ctkn("destination", "update", pid, "--active", "true"))
        # A change that keeps an active one active is not a new one.
        env.ok("destination", "update", ids[0], "--description", "still on")
        env.ok("destination", "update", ids[0], "--active", "false")
        env.ok("destination", "update", pid, "--active", "true")
        refused(env.ctkn("destination", "update", ids[0], "--active", "true"))
        # The limit is an option.
        r = add("--max-active-destinations", "11")
        check(r.rc == 0, f"--max-active-destinations 11: {r}")
        refused(add("--max-active-destinations", "11"), 11)
        r = env.ctkn("destination", "update", ids[0], "--active", "true",
                     "--max-active-destinations", "5")
        refused(r, 5)
        r = add("--max-active-destinations", "0")
        check(r.rc == 2 and "1 to 10000" in r.error["detail"], r)
        n = sum(d["active"] for d in env.ok("destination", "list")
                .json["data"])
        check(n == 11, f"{n} active")
    finally:
        env.close()


# --- 8d. SSRF: refused at connect time, after DNS ----------------------------


class Listener:
    """Plain TCP listeners on 127.0.0.1 and [::1] at one port, never
    accepting until asked how many connections arrived (each one a
    completed handshake in the backlog)."""

    def __init__(self):
        self.v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.v4.bind(("127.0.0.1", 0))
        self.port = self.v4.getsockname()[1]
        self.v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.v6.bind(("::1", self.port))
        self.socks = [self.v4, self.v6]
        for s in self.socks:
            s.listen(128)
            s.setblocking(False)

    def accepted(self):
        n = 0
        for s in self.socks:
            while True:
                try:
                    c, _ = s.accept()
                except BlockingIOError:
                    break
                c.close()
                n += 1
        return n

    def close(self):
        for s in self.socks:
            s.close()


class HostsEntry:
    """A name for 127.0.0.1 in /etc/hosts, added now and removed by
    remove(); when /etc/hosts is not writable, "localhost" instead (which
    resolves to loopback already) and self.added is False."""

    def __init__(self):
        self.name = f"ctkn-ssrf-{uuid.uuid4().hex[:12]}.test"
        self.line = f"127.0.0.1 {self.name}\n"
        self.added = False
        try:
            with open("/etc/hosts", "a") as f:
                f.write(self.line)
            self.added = True
        except OSError as e:
            print(f"  /etc/hosts is not writable ({e}): using localhost")
            self.name = "localhost"
        check(socket.gethostbyname(self.name) == "127.0.0.1",
              f"{self.name} does not resolve to 127.0.0.1")

    def remove(self):
        if not self.added:
            return
        with open("/etc/hosts") as f:
            text = f.read()
        with open("/etc/hosts", "w") as f:  # in place: it may be a mount
            f.write(text.replace(self.line, ""))
        self.added = False


# Every spelling of loopback (and its neighbours) a user may type, and the
# range the refusal must name. The creator is allowed each one.
SSRF_FORMS = [
    ("127.0.0.1", "loopback 127.0.0.0/8"),
    ("0", "unspecified 0.0.0.0/32"),
    ("0.0.0.0", "unspecified 0.0.0.0/32"),
    ("2130706433", "loopback 127.0.0.0/8"),
    ("0x7f.1", "loopback 127.0.0.0/8"),
    ("0x7f000001", "loopback 127.0.0.0/8"),
    ("017700000001", "loopback 127.0.0.0/8"),
    ("127.1", "loopback 127.0.0.0/8"),
    ("[::1]", "loopback ::1/128"),
    ("[::]", "unspecified ::/128"),
    ("[::ffff:127.0.0.1]", "IPv4-mapped ::ffff:0:0/96"),
    ("[::ffff:7f00:1]", "IPv4-mapped ::ffff:0:0/96"),
    ("[::127.0.0.1]", "IPv4-compatible ::/96"),
    ("[64:ff9b::7f00:1]", "IPv4/IPv6 translation 64:ff9b::/96"),
    ("[2002:7f00:1::1]", "6to4 2002::/16"),
    ("169.254.169.254", "link-local 169.254.0.0/16"),
]
CREATOR_ALLOWS = ["--allow-destination-network", "127.0.0.0/8",
                  "--allow-destination-network", "0.0.0.0/8",
                  "--allow-destination-network", "169.254.0.0/16",
                  "--allow-destination-network", "::/0"]


def test_ssrf_refused_at_connect_time():
    """Destinations made by a creator allowed into loopback, in every
    spelling and through a DNS name, are refused by a notifier that is not:
    the listener on loopback accepts no connection, and each attempt's
    error names the address and its range. The same notifier allowed into
    127.0.0.0/8 does connect (so the zero means something)."""
    env = NEnv("nssrf")
    lst = Listener()
    hosts = HostsEntry()
    try:
        forms = SSRF_FORMS + [(hosts.name, "loopback 127.0.0.0/8"),
                              ("localhost", "loopback")]
        want = {}
        for host, rng in forms:
            url = f"http://{host}:{lst.port}/h"
            r = env.ok("destination", "add", "--url", url, "--events",
                       CREATED, "--secret-key-file", env.key,
                       *CREATOR_ALLOWS, "--max-active-destinations", "100")
            want[r.json["data"]["id"]] = (host, rng)
        workload(env, 1, update=False, revoke=False, prefix="ssrf")

        # Retries come 1.5-3 s later: after this run, so it makes exactly
        # one attempt per destination.
        slow = ["--retry-initial", "3s", "--retry-max", "3s",
                "--max-age", "60s"]
        stats, r = env.notify(*slow, "--request-timeout", "2s", allow=[],
                              result=True)
        check(stats["attempts"] == len(forms) and stats["delivered"] == 0,
              f"stats {stats}")
        check(lst.accepted() == 0, "the notifier connected to loopback")
        for did, (host, rng) in want.items():
            ntf = env.ntf("list", "--destination", did)
            check(len(ntf) == 1, f"{host}: {ntf}")
            logs = env.ntf("logs", ntf[0]["id"])
            check(len(logs) == 1 and logs[0]["response_code"] is None,
                  f"{host}: {logs}")
            err = logs[0]["error"]
            check("is not globally reachable (" + rng in err and
                  "allow it with --allow-destination-network" in err,
                  f"{host}: the attempt says {err!r}, want {rng!r}")
        print(f"  {len(forms)} spellings refused; hosts entry "
              f"{'added' if hosts.name != 'localhost' else 'not writable'}")
        check("is not globally reachable" in r.err, "the log says why")
        hosts.remove()

        # Allowed into 127.0.0.0/8 only, the v4 loopback spellings connect
        # (nothing answers HTTP there: the requests time out).
        time.sleep(3.2)  # the retries are due
        env.notify(*slow, "--request-timeout", "1s", allow=ALLOW_LO)
        got = lst.accepted()
        check(got >= 6, f"allowed, only {got} connections arrived")
    finally:
        hosts.remove()
        lst.close()
        env.close()


# --- 9. two notifiers share the partitions; one takes over from the other ----


def test_two_notifiers_share_and_take_over():
    two_notifiers_share_and_take_over(TAKEOVER)


def test_kip848_two_notifiers_share_and_take_over():
    """The same under KIP-848 (-X group.protocol=consumer): the lease's
    assignments are incremental, and the session timeout is the broker's
    (deploy/kafka: 6 s)."""
    why = kip848_unsupported()
    if why:
        print(f"  skipped: {why}")
        return
    two_notifiers_share_and_take_over(KIP848)


def two_notifiers_share_and_take_over(takeover):
    env = NEnv("nshare")
    rx = Receiver()
    a = b = None
    try:
        env.add_dest(rx.url("/h"), CREATED)
        a = Notifier(env, "a", *FAST, *takeover, db=env.path("a-db"))
        wait_until(lambda: a.owned() == {0, 1, 2}, 30, "a holds all")
        b = Notifier(env, "b", *FAST, *takeover, db=env.path("b-db"))
        wait_until(lambda: a.owned() and b.owned() and
                   a.owned() | b.owned() == {0, 1, 2} and
                   not a.owned() & b.owned(), 30,
                   "the partitions shared between a and b")
        time.sleep(1.0)  # let the rebalance settle
        held_a, held_b = a.owned(), b.owned()

        t1 = workload(env, 30, update=False, revoke=False, prefix="shared",
                      spread=True)
        wait_until(lambda: {r.json["data"]["id"] for r in
                            rx.successful("/h")} >= set(t1), 30,
                   "shared deliveries")
        time.sleep(0.5)
        check((a.owned(), b.owned()) == (held_a, held_b),
              f"a rebalance happened: {a.owned()} {b.owned()}")
        reqs = rx.requests("/h")
        ntf = [r.json["notification_id"] for r in reqs]
        check(len(ntf) == len(set(ntf)) == 30 and all(r.ok for r in reqs),
              f"each event once: {reqs}")
        by_a = {x["event_id"] for x in a.attempts()}
        by_b = {x["event_id"] for x in b.attempts()}
        check(by_a and by_b and not by_a & by_b,
              f"a sent {len(by_a)}, b {len(by_b)}, both {by_a & by_b}")

        b.kill()
        killed = time.monotonic()
        t2 = workload(env, 20, update=False, revoke=False, prefix="later")
        wait_until(lambda: a.owned() == {0, 1, 2}, 6 + 15,
                   "a takes b's partitions over")
        took = time.monotonic() - killed
        wait_until(lambda: {r.json["data"]["id"] for r in
                            rx.successful("/h")} >= set(t2), 20,
                   "deliveries after the takeover")
        a.stop()
        a = None
        reqs = rx.requests("/h")
        one_id_per_event(reqs, "/h")
        check(all(r.ok for r in reqs), "failures")
        later = [r for r in reqs if r.json["data"]["id"] in set(t2)]
        check(len({r.json["event_id"] for r in later}) == 20,
              f"later events: {later}")
        print(f"  takeover after {took:.1f}s; "
              f"{len(later) - 20} duplicate(s) of later events")
    finally:
        for x in (a, b):
            if x is not None:
                x.kill()
        rx.close()
        env.close()


if __name__ == "__main__":
    main([test_fanout_by_subscription,
          test_signatures_verify_with_paddle_sdk,
          test_retries_until_recovery,
          test_sigkill_and_restart_skips_nothing,
          test_paused_destination_catches_up,
          test_hanging_destination_does_not_slow_others,
          test_max_age_fails_then_replay,
          test_stuck_replays_do_not_starve_the_queue,
          test_many_paused_destinations_do_not_crowd_out_the_group_cursor,
          test_bad_destination_input_appends_nothing,
          test_unsafe_destinations_refused_at_creation,
          test_at_most_ten_active_destinations,
          test_ssrf_refused_at_connect_time,
          test_two_notifiers_share_and_take_over,
          test_kip848_two_notifiers_share_and_take_over])
