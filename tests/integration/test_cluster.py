"""A 3-node Kafka cluster (the ctest fixture "kafka3") loses brokers to
SIGKILL while writers run and three reader replicas follow.

Every acknowledged command is in every replica, nothing is there twice, the
commands caught by the outage fail cleanly (exit 3, an error envelope,
within their --timeout) and succeed when retried with the same idempotency
key, and the replicas keep following and converge on one digest.

Environment, besides harness.py's: CTKN_KAFKA_STATE and CTKN_KAFKA_PORT name
the fixture's cluster (deploy/kafka), so the test can kill and restart nodes.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import harness
from harness import (CTKN, Env, Follower, Server, check, kafka, kafka_tool,
                     main, run, topic_leaders, wait_topic_everywhere)

TIMEOUT = 5  # every command's --timeout, in seconds
# A command that fails must fail within its --timeout. The margin covers
# process start and the last wait's own overrun (librdkafka checks its
# timers every 100 ms to 1 s) on a 2-core machine running three brokers.
BOUND = TIMEOUT + 3
HARD = 120  # a command still running after this long is reported as hung
NODES = 3
PORTS = [int(os.environ.get("CTKN_KAFKA_PORT", "0")) + 10 * i
         for i in range(NODES)]


class ClusterEnv(Env):
    """Env, but the topic is replicated to every node, and known to every
    broker before the test starts (`ctkn init` waits for that itself, as
    test_init_waits_for_every_broker checks; the wait here is a guard)."""

    def __init__(self, partitions=6, name="cluster", rf=NODES):
        self.topic = f"it-{name}-{uuid.uuid4().hex[:10]}"
        self.dir = tempfile.mkdtemp(prefix=f"ctkn-{name}-")
        self.db = self.path("db")
        self.vars = {"CTKN_TRUST_ROOT": "", "CTKN_WRITER_KEY": ""}
        r = self.ctkn("init", "--partitions", str(partitions),
                      "--replication-factor", str(rf))
        check(r.rc == 0, f"init failed: {r}")
        check(r.json["data"]["replication_factor"] == rf, r)
        wait_topic_everywhere(self.topic, partitions, PORTS)
        self.trust()  # every reader judges, every appender signs


def run_ctkn(*args):
    return run([CTKN, *args, "--timeout", str(TIMEOUT)], timeout=HARD)


class Op:
    def __init__(self, op, key, t0, result, elapsed):
        self.op, self.key, self.t0 = op, key, t0
        self.r, self.elapsed = result, elapsed  # result None: hung

    @property
    def ok(self):
        return self.r is not None and self.r.rc == 0

    def __repr__(self):
        return (f"{self.op} {self.key} at {self.t0:.1f}s took "
                f"{self.elapsed:.1f}s: {self.r!r}")


class Writer(threading.Thread):
    """Creates tokens with idempotency keys, revoking every second one, each
    command a process of its own with its own projection (a server)."""

    def __init__(self, env, j, stop, t0):
        super().__init__()
        self.env, self.j, self.stop, self.t0 = env, j, stop, t0
        self.db = env.path(f"writer{j}")
        self.ops = []

    def cmd(self, op, key, *args):
        start = time.monotonic()
        try:
            r = self.env.ctkn(*args, "--timeout", str(TIMEOUT), db=self.db,
                              timeout=HARD)
        except subprocess.TimeoutExpired:
            r = None
        o = Op(op, key, start - self.t0, r, time.monotonic() - start)
        self.ops.append(o)
        return o

    def run(self):
        n = 0
        while not self.stop.is_set():
            key = f"w{self.j}-{n}"
            c = self.cmd("create", key, "create", "--name", key,
                         "--idempotency-key", key)
            if c.ok and n % 2 == 1:
                self.cmd("revoke", key, "revoke", c.r.json["data"]["id"])
            n += 1


def check_clean(o):
    """A command either succeeded with data, or failed cleanly: not
    acknowledged (3), or acknowledged and not yet applied (4)."""
    check(o.r is not None, f"hung for more than {HARD}s: {o}")
    if o.r.rc == 0:
        check("data" in o.r.json, o)
        return
    if o.r.rc == 4:
        # Appended and acknowledged, then the projection could not follow
        # within --timeout (the partition's leader killed right after the
        # ack): durable, and documented as exit 4 (README, "Exit codes");
        # the retries below find the event. A command that reads the
        # projection before it plans may wait twice.
        e = o.r.error
        check(e["code"] == "service_unavailable" and
              "is appended" in e["detail"], o)
        check(o.elapsed <= 2 * TIMEOUT + 3,
              f"exit 4 after {o.elapsed:.1f}s, beyond two --timeout: {o}")
        return
    check(o.r.rc == 3, f"exit {o.r.rc}, want 0, 3 or 4: {o}")
    e = o.r.error
    check(e["code"] == "service_unavailable" and e["detail"], o)
    check(o.elapsed <= BOUND,
          f"failed after {o.elapsed:.1f}s, beyond --timeout {TIMEOUT}: {o}")


def quorum_leader():
    out = kafka_tool("org.apache.kafka.tools.MetadataQuorumCommand",
                     "describe", "--status")
    return int(re.search(r"^LeaderId:\s+(\d+)", out, re.M).group(1))


def all_tokens(env, db):
    """Every token of a projection, through `ctkn list`, 200 a page."""
    tokens, after = [], []
    while True:
        r = env.ok("list", "--status", "active,revoked", "--per-page", "200",
                   "--order-by", "id[ASC]", *after, db=db).json
        tokens += r["data"]
        if not r["meta"]["pagination"]["has_more"]:
            return tokens
        after = ["--after", r["data"][-1]["id"]]


def node_pid(node):
    state = os.environ["CTKN_KAFKA_STATE"]
    with open(os.path.join(state, f"node{node}", "kafka.pid")) as f:
        return int(f.read().strip())


def init_with_a_frozen_broker(node, others, topic):
    """Freeze broker `node` (SIGSTOP), run init through the others, and
    after 1.5 s tell whether the topic existed on the others then (it was
    created while the broker was frozen) and whether init had returned;
    then thaw it and wait for init. Returns (created, returned, Popen)."""
    pid = node_pid(node)
    os.kill(pid, signal.SIGSTOP)
    try:
        p = subprocess.Popen(
            [CTKN, "init", "--partitions", "6", "--replication-factor",
             str(NODES), "--topic", topic, "--brokers", others,
             "--timeout", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # A negative check: nothing to wait for but time. The other brokers
        # know a new topic well within a second.
        time.sleep(1.5)
        returned = p.poll() is not None
        created = all(topic_leaders(PORTS[i], topic) is not None
                      for i in range(NODES) if i != node - 1)
    finally:
        os.kill(pid, signal.SIGCONT)
    p.communicate(timeout=HARD)
    return created, returned, p


def test_init_waits_for_every_broker():
    """`ctkn init` returns only once every broker knows the topic, with a
    leader for each partition. One broker (not the quorum leader) is
    frozen (SIGSTOP) during init, so it cannot learn of the topic: once the
    others have it, init must still be waiting (it used to return as soon
    as the broker it asked had the topic), and return once the broker is
    thawed. (When librdkafka happened to send CreateTopics to the frozen
    broker, nothing was created while it was frozen and the attempt proves
    nothing: it is made again with a new topic.) Then every broker, asked
    directly (a plain socket: no client that could ask another broker),
    knows the topic at once, and a command sent to each broker alone never
    answers not_found."""
    leader = quorum_leader()
    node = next(i for i in range(NODES, 0, -1) if i != leader)
    others = ",".join(f"127.0.0.1:{PORTS[i]}" for i in range(NODES)
                      if i != node - 1)
    d = tempfile.mkdtemp(prefix="ctkn-init-")
    try:
        for attempt in range(8):
            topic = f"it-init-{uuid.uuid4().hex[:10]}"
            created, returned, p = init_with_a_frozen_broker(node, others,
                                                             topic)
            check(p.returncode == 0, f"init failed: {p.communicate()}")
            if created:
                break
        check(created, "CreateTopics always went to the frozen broker")
        check(not returned,
              f"init returned while broker {node} was frozen")
        for port in PORTS:
            leaders = topic_leaders(port, topic)
            check(leaders is not None and len(leaders) == 6,
                  f"init of {topic} returned, but broker on port {port} "
                  f"answers {leaders}")
        for port in PORTS:
            r = run_ctkn("project", "--topic", topic,
                         "--brokers", f"127.0.0.1:{port}",
                         "--db", os.path.join(d, str(port)),
                         "--trust-root", harness.trust_root()[1])
            check(r.rc == 0, f"project via {port} after init: {r}")
        print(f"   the topic was created while broker {node} was frozen on "
              f"attempt {attempt + 1}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_brokers_killed_and_restarted_under_load():
    env = ClusterEnv()
    replicas = [Follower(env, f"replica{i}") for i in range(1, 4)]
    stop = threading.Event()
    t0 = time.monotonic()
    writers = [Writer(env, j, stop, t0) for j in range(3)]
    events = []

    def at(what):
        events.append(f"{what} at {time.monotonic() - t0:.1f}s")

    try:
        for w in writers:
            w.start()
        # Round 1 kills the active controller (and a partition leader);
        # round 2 another node, which by then leads more partitions.
        first = quorum_leader()
        second = first % NODES + 1
        for victim in (first, second):
            time.sleep(3)
            kafka("stop", "--node", str(victim), "--kill")
            at(f"killed node {victim}")
            time.sleep(10)
            kafka("start", "--node", str(victim))
            at(f"restarted node {victim}")
        time.sleep(5)
    finally:
        stop.set()
        for w in writers:
            w.join()
    at("writers stopped")
    try:
        ops = [o for w in writers for o in w.ops]
        for o in ops:
            check_clean(o)
        failed = [o for o in ops if not o.ok]
        slowest = max(o.elapsed for o in ops)

        # Retry what failed, with the same idempotency key: each key ends
        # with exactly one token, whether or not its first event landed.
        # A retry may itself fail cleanly (exit 3: the cluster still
        # settling after the restarts) and is then retried, as a client
        # would; each attempt is held to the same rule.
        again = [0]

        def retry(*args):
            for attempt in range(4):
                start = time.monotonic()
                r = env.ctkn(*args, "--timeout", str(TIMEOUT),
                             db=env.path("retry"), timeout=HARD)
                o = Op("retry", args[-1], start - t0, r,
                       time.monotonic() - start)
                check_clean(o)
                if o.ok:
                    return r
                again[0] += 1
                time.sleep(1)
            check(False, f"{args}: still failing after 4 attempts: {r}")

        ids, revoked = {}, set()
        for o in ops:
            if o.ok and o.op == "create":
                ids[o.key] = o.r.json["data"]["id"]
        for o in failed:
            if o.op == "create":
                r = retry("create", "--name", o.key, "--idempotency-key",
                          o.key)
                ids[o.key] = r.json["data"]["id"]
        for o in ops:
            if o.op == "revoke":
                if not o.ok:
                    retry("revoke", ids[o.key])
                revoked.add(ids[o.key])
        at(f"retries done ({again[0]} retried again)")

        want = env.fresh_digest()
        check(want["tokens"] == len(ids),
              f"{want['tokens']} tokens in the log, {len(ids)} keys")
        records = env.events()  # the topic's records but checkpoints, keyrings
        check(records == len(ids) + len(revoked),
              f"{records} records, want {len(ids)} creates + "
              f"{len(revoked)} revokes: a command was appended twice")
        deadline = time.monotonic() + 60
        for rep in replicas:
            while env.digest(rep.db) != want:
                check(rep.alive(), f"{rep.db} exited: {rep.output()}")
                check(time.monotonic() < deadline,
                      f"{rep.db} did not converge: {env.digest(rep.db)} "
                      f"!= {want}\n{rep.output()}")
                time.sleep(0.5)
        at("replicas converged")

        for rep in replicas:
            check(rep.alive(), f"{rep.db} exited: {rep.output()}")
            tokens = all_tokens(env, rep.db)
            names = [t["name"] for t in tokens]
            check(len(names) == len(set(names)), "a key has two tokens")
            check(sorted(t["id"] for t in tokens) == sorted(ids.values()),
                  f"{rep.db}: tokens differ from the acknowledged ones")
            for key, tid in ids.items():
                r = env.ctkn("get", tid, db=rep.db)
                check(r.rc == 0, f"{rep.db}: {key} {tid} missing: {r}")
                status = "revoked" if tid in revoked else "active"
                check(r.json["data"]["status"] == status,
                      f"{rep.db}: {tid} is {r.json['data']['status']}")
        for rep in replicas:
            rc = rep.stop()
            check(rc == 0, f"{rep.db} exit {rc}: {rep.output()}")
        at("checked")
        print(f"   {len(ops)} commands, {len(failed)} failed cleanly and "
              f"were retried, slowest {slowest:.1f}s; {len(ids)} tokens, "
              f"{len(revoked)} revoked; " + ", ".join(events))
    finally:
        for rep in replicas:
            rep.stop()
        env.close()


def trust_for(env):
    """env's trust root's public key file and its writer key file."""
    return env.pub, env.writer


def test_64_writers_through_a_broker_restart():
    """Issue #15: 64 clients POST creates to one signed `ctkn serve`, each
    on a keep-alive connection of its own, while the node leading most
    partitions is killed and restarted. Every 201 is in the log exactly
    as answered, once; every other answer is a 503 envelope; no name is
    in the log twice; the server keeps serving."""
    env = ClusterEnv(name="post64")
    pub, wkey = trust_for(env)
    srv = Server(env, name="api", args=("--trust-root", pub, "--writer-key",
                                        wkey, "--timeout", str(TIMEOUT)))
    stop = threading.Event()
    t0 = time.monotonic()
    lock = threading.Lock()
    answers = []  # (name, status, body, seconds since t0)
    events = []

    def client(j):
        import http.client
        c, n = None, 0
        while not stop.is_set():
            name = f"c{j}-{n}"
            n += 1
            start = time.monotonic()
            try:
                if c is None:
                    c = srv.connection(timeout=HARD)
                c.request("POST", "/client-tokens",
                          body=json.dumps({"name": name}),
                          headers={"Authorization":
                                   f"Bearer {srv.keys['writer']}",
                                   "Content-Type": "application/json"})
                r = c.getresponse()
                got = (r.status, r.read().decode("utf-8", "replace"))
            except (OSError, http.client.HTTPException) as e:
                got = (None, repr(e))
                c.close()
                c = None
            with lock:
                answers.append((name, got[0], got[1], start - t0))
        if c is not None:
            c.close()

    threads = [threading.Thread(target=client, args=(j,)) for j in range(64)]
    try:
        for t in threads:
            t.start()
        time.sleep(4)
        victim = max(range(1, NODES + 1), key=lambda n: sum(
            1 for ld in (topic_leaders(PORTS[0], env.topic) or {}).values()
            if ld == n))
        kafka("stop", "--node", str(victim), "--kill")
        events.append(f"killed node {victim} at {time.monotonic() - t0:.1f}s")
        time.sleep(8)
        kafka("start", "--node", str(victim))
        events.append(f"restarted it at {time.monotonic() - t0:.1f}s")
        time.sleep(6)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=HARD)
    try:
        check(srv.alive(), f"serve exited:\n{srv.output()[-3000:]}")
        ok = {}
        failed = 0
        for name, status, body, at in answers:
            # The message only when it fails: it reads the server's whole
            # log, and tens of thousands of answers each reading a log of
            # megabytes took longer than the test's bound.
            if status is None:
                check(False, f"{name} at {at:.1f}s: no answer: {body}\n"
                      f"{srv.output()[-2000:]}")
            if status == 201:
                ok[name] = json.loads(body)["data"]
                continue
            failed += 1
            check(status == 503, f"{name} at {at:.1f}s: {status} {body}")
            e = json.loads(body)["error"]
            check(e["code"] == "service_unavailable" and e["detail"],
                  f"{name}: {body}")
        late = [a for a in answers if a[1] == 201 and a[3] > 12]
        check(len(ok) > 0 and late,
              f"no 201 after the restart: {len(ok)} in all")

        r = srv.request("GET", "/healthz", key=None)
        check(r.status == 200, f"healthz after: {r}")
        srv.stop()  # its closing checkpoint: the log stands still from here
        fresh = env.path("fresh")
        env.ok("project", "--trust-root", pub, db=fresh)
        # A batch the restart left unacknowledged may still have landed
        # without the checkpoint that would prove it: every replica
        # quarantines it alike (its request was answered 503). A 201's
        # event never is: each is checked in the projection below.
        q = env.ctkn("quarantine", db=fresh)
        check(q.rc == 0, f"quarantine: {q}")
        quarantined = [json.loads(l) for l in q.out.splitlines() if l.strip()]
        again = env.path("fresh2")
        env.ok("project", "--trust-root", pub, db=again)
        check(env.digest(again) == env.digest(fresh),
              "two new replicas of one log disagree")
        tokens = all_tokens(env, fresh)
        names = [t["name"] for t in tokens]
        check(len(names) == len(set(names)), "a request is in the log twice")
        sent = {a[0] for a in answers}
        check(set(names) <= sent, "the log holds a token nobody asked for")
        by_name = {t["name"]: t for t in tokens}
        for name, d in ok.items():
            t = by_name.get(name)
            check(t is not None, f"201 for {name} ({d['id']}), not in the log")
            for f in ("id", "token", "status", "created_at"):
                check(t[f] == d[f], f"{name}: {f} {t[f]!r}, answered {d[f]!r}")
        print(f"   {len(answers)} POSTs, {len(ok)} 201 (all in the log), "
              f"{failed} 503, {len(tokens) - len(ok)} of those in the log "
              f"too, {len(quarantined)} record(s) quarantined alike on "
              f"two new replicas; " + ", ".join(events))
    finally:
        srv.stop(check_exit=False)
        env.close()


def test_posts_while_every_broker_is_frozen_fail_within_the_timeout():
    """A signing `ctkn serve` whose brokers all stop answering (SIGSTOP):
    its command thread is then mostly inside a heartbeat that cannot be
    appended, and each write queued meanwhile used to wait that out and
    then its own append, about twice --timeout (17 s against 10). Now a
    write that waited on a write the log failed is refused at once: every
    POST is answered 503 within --timeout and the margin, and the server
    takes writes again once the brokers are back. Settings writes (here
    API keys), which run one at a time, likewise: three queued in the
    outage took one, two and three timeouts."""
    env = ClusterEnv(name="frozen")
    pub, wkey = trust_for(env)
    srv = Server(env, name="api", args=("--trust-root", pub, "--writer-key",
                                        wkey, "--timeout", str(TIMEOUT),
                                        "--heartbeat", "0.5"),
                 keys=Server.DEFAULT_KEYS + (("admin", "api_key.write"),))
    pids = [node_pid(n) for n in range(1, NODES + 1)]
    answers = []
    lock = threading.Lock()

    def client(j):
        import http.client
        start = time.monotonic()
        path, key, body = "/client-tokens", "writer", {"name": f"frozen-{j}"}
        if j >= 8:
            path, key = "/api-keys", "admin"
            body = {"name": f"frozen-{j}", "permissions": ["client_token.read"]}
        try:
            c = srv.connection(timeout=HARD)
            c.request("POST", path, body=json.dumps(body),
                      headers={"Authorization": f"Bearer {srv.keys[key]}",
                               "Content-Type": "application/json"})
            r = c.getresponse()
            got = (r.status, r.read().decode("utf-8", "replace"))
            c.close()
        except (OSError, http.client.HTTPException) as e:
            got = (None, repr(e))
        with lock:
            answers.append((j, got[0], got[1], time.monotonic() - start))

    try:
        r = srv.request("POST", "/client-tokens", {"name": "before"})
        check(r.status == 201, f"before the freeze: {r}")
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            # A heartbeat is under way by now, and cannot be appended.
            time.sleep(1.5)
            threads = [threading.Thread(target=client, args=(j,))
                       for j in range(11)]
            for t in threads:
                t.start()
                time.sleep(0.3)
            for t in threads:
                t.join(timeout=HARD)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        for j, status, body, took in sorted(answers):
            check(status == 503, f"frozen-{j}: {status} {body}")
            e = json.loads(body)["error"]
            check(e["code"] == "service_unavailable" and e["detail"],
                  f"frozen-{j}: {body}")
            check(took <= BOUND, f"frozen-{j} answered after {took:.1f}s, "
                  f"beyond --timeout {TIMEOUT}: {body}")
        refused = sum(1 for a in answers if a[0] < 8 and
                      "while this request waited" in a[2])
        check(refused > 0, f"no write was refused for waiting: {answers}")
        check(any("a settings write queued ahead" in a[2] for a in answers
                  if a[0] >= 8), f"no key write was refused: {answers}")
        deadline = time.monotonic() + 60
        while True:
            r = srv.request("POST", "/client-tokens", {"name": "after"})
            if r.status == 201 or time.monotonic() > deadline:
                break
            time.sleep(1)
        check(r.status == 201, f"after the thaw: {r}")
        print(f"   8 POSTs of tokens and 3 of API keys while frozen: 503 "
              f"within {max(a[3] for a in answers):.1f}s (--timeout "
              f"{TIMEOUT}), {refused} token writes refused for waiting on a "
              f"failed write")
    finally:
        srv.stop(check_exit=False)
        env.close()


if __name__ == "__main__":
    for v in ("CTKN_KAFKA_STATE", "CTKN_KAFKA_PORT"):
        if v not in os.environ:
            raise SystemExit(f"{v} is not set (run through ctest -L cluster)")
    main([test_init_waits_for_every_broker,
          test_brokers_killed_and_restarted_under_load,
          test_64_writers_through_a_broker_restart,
          test_posts_while_every_broker_is_frozen_fail_within_the_timeout])
