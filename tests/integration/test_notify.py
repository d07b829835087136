#!/usr/bin/env python3
"""Webhook delivery end to end: `ctkn destination` and `ctkn notify` against
the real broker, a deployment key file and local receivers (receiver.py),
with Paddle's Node.js SDK checking the signatures.

Each test has its own topic, key file, notifier projection (DIR/notify-db)
and lease group, so a notifier killed in one test never holds up another.
Retries are fast (FAST) so that failures and recoveries take seconds.
"""
import json
import os
import re
import signal
import subprocess
import time

from harness import BROKERS, CTKN, Env, check, main, run
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
                    "--secret-key-file", self.key, *extra)
        d = r.json["data"]
        check(d["destination"] == url and d["active"] is True, f"add: {r}")
        check(sorted(e["name"] for e in d["subscribed_events"]) ==
              sorted(events.split(",")), f"add: events: {r}")
        secret = d["endpoint_secret_key"]
        check(secret.startswith("pdl_ntfset_"), f"add: secret: {r}")
        self.secrets[d["id"]] = secret
        return d["id"], secret

    def notify(self, *args, db=None, timeout=60):
        """One-shot `ctkn notify`; returns its stats."""
        r = self.ctkn("notify", "--secret-key-file", self.key, "--group",
                      self.group, *args, db=db or self.ndb, timeout=timeout)
        check(r.rc == 0, f"notify failed: {r}")
        return r.json["data"]

    def ntf(self, *args, db=None):
        """`ctkn notification ...` on the notifier's projection: JSON lines."""
        r = self.ctkn("notification", *args, db=db or self.ndb)
        check(r.rc == 0, f"notification {args} failed: {r}")
        return r.lines

    def settings_end(self):
        r = run([CTKN, "status", "--topic", self.topic + "_settings",
                 "--brokers", BROKERS, "--db", self.path("settings-status")])
        check(r.rc == 0, f"status of the settings topic: {r}")
        return [p["log_end"] for p in r.json["data"]["partitions"]]

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
                 "--group", env.group, *args, "--topic", env.topic,
                 "--brokers", BROKERS, "--db", self.db],
                stdout=f, stderr=subprocess.STDOUT)

    def output(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def attempts(self):
        out = []
        for line in self.output().splitlines():
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


def workload(env, n, update=True, revoke=True, prefix="tok"):
    """n creates (one batch), then an update of each, then a revoke of each;
    returns the token IDs."""
    lines = "".join(json.dumps({"name": f"{prefix} {i}"}) + "\n"
                    for i in range(n))
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
        check(all(a["response_code"] == 0 and a["outcome"] == "retry" and
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


# --- 8. bad destination input appends nothing ----------------------------------


def test_bad_destination_input_appends_nothing():
    env = NEnv("nbad")
    try:
        env.add_dest("http://127.0.0.1:9/ok", CREATED)
        before = env.settings_end()
        check(before == [1], f"settings topic {before}")
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
                         keyfile or env.key)
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


# --- 9. two notifiers share the partitions; one takes over from the other ----


def test_two_notifiers_share_and_take_over():
    env = NEnv("nshare")
    rx = Receiver()
    a = b = None
    try:
        env.add_dest(rx.url("/h"), CREATED)
        a = Notifier(env, "a", *FAST, *TAKEOVER, db=env.path("a-db"))
        wait_until(lambda: a.owned() == {0, 1, 2}, 30, "a holds all")
        b = Notifier(env, "b", *FAST, *TAKEOVER, db=env.path("b-db"))
        wait_until(lambda: a.owned() and b.owned() and
                   a.owned() | b.owned() == {0, 1, 2} and
                   not a.owned() & b.owned(), 30,
                   "the partitions shared between a and b")
        time.sleep(1.0)  # let the rebalance settle
        held_a, held_b = a.owned(), b.owned()

        t1 = workload(env, 30, update=False, revoke=False, prefix="shared")
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
          test_bad_destination_input_appends_nothing,
          test_two_notifiers_share_and_take_over])
