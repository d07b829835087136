"""The Python consumer of docs/consumers.md (examples/python-consumer)
against the real broker: its SQLite copy equals ctkn's projection, it
ignores exactly the events every replica rejects and skips exactly the
records they quarantine, it resumes from its stored offsets, a consumer
group's redelivery changes nothing, and a newer schema version stops it.

Needs confluent-kafka, protobuf and grpcio-tools (for protoc): installed
once into a virtualenv in the build tree. Where that cannot be done (no
venv module, no package index), the test says so and is skipped.
"""
import datetime
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading

from harness import BROKERS, CTKN, Env, check, main

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(ROOT, "examples", "python-consumer")
REQS = os.path.join(EXAMPLE, "requirements.txt")
VENV = os.path.join(os.path.dirname(os.path.abspath(CTKN)), "pyvenv-consumer")
PY = os.path.join(VENV, "bin", "python")


def prepare():
    """The venv's python with the example's packages, and a directory with
    ctkn_pb2.py generated from proto/ctkn.proto; or (None, reason)."""
    marker = os.path.join(VENV, ".requirements")
    with open(REQS) as f:
        want = f.read()
    if not (os.path.exists(marker) and open(marker).read() == want):
        shutil.rmtree(VENV, ignore_errors=True)
        r = subprocess.run([sys.executable, "-m", "venv", VENV],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"python3 -m venv failed: {r.stderr.strip()[-300:]}"
        r = subprocess.run([PY, "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", "-r", REQS],
                           capture_output=True, text=True, timeout=400)
        if r.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            return None, f"pip install failed: {r.stderr.strip()[-300:]}"
        with open(marker, "w") as f:
            f.write(want)
    gen = os.path.join(VENV, "gen")
    os.makedirs(gen, exist_ok=True)
    r = subprocess.run([PY, "-m", "grpc_tools.protoc",
                        "-I" + os.path.join(ROOT, "proto"),
                        "--python_out=" + gen,
                        os.path.join(ROOT, "proto", "ctkn.proto")],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"protoc failed: {r.stderr}")
    return gen, None


GEN = None


def consume(env, db, *args, rc=0):
    """Run the example to the log's end; returns (summary, stderr lines)."""
    p = subprocess.run(
        [PY, os.path.join(EXAMPLE, "consumer.py"), "--brokers", BROKERS,
         "--topic", env.topic, "--db", db, "--exit-at-end", *args],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": GEN})
    check(p.returncode == rc,
          f"consumer exit {p.returncode}, want {rc}: {p.stderr[-2000:]}")
    return json.loads(p.stdout.splitlines()[-1]), p.stderr.splitlines()


def rfc3339(us):
    if us is None:
        return None
    t = datetime.datetime.fromtimestamp(us // 1_000_000,
                                        datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{us % 1_000_000:06d}Z"


def rows(db):
    c = sqlite3.connect(db)
    out = {}
    for r in c.execute("SELECT id, token, name, description, status, "
                       "created_at, updated_at, revoked_at, version "
                       "FROM tokens"):
        out[r[0]] = ({"id": r[0], "token": r[1], "name": r[2],
                      "description": r[3], "status": r[4],
                      "created_at": rfc3339(r[5]),
                      "updated_at": rfc3339(r[6]),
                      "revoked_at": rfc3339(r[7])}, r[8])
    c.close()
    return out


def check_same_as_projection(env, db, proj):
    """Every token of the consumer's SQLite equals ctkn's, version too."""
    got = rows(db)
    lst = env.ok("list", "--status", "active,revoked", "--per-page", "200",
                 db=proj).json
    check(not lst["meta"]["pagination"]["has_more"], lst["meta"])
    want = {t["id"]: t for t in lst["data"]}
    check(set(got) == set(want),
          f"tokens differ: {set(got) ^ set(want)}")
    for tid, t in want.items():
        check(got[tid][0] == t, (got[tid][0], t))
    # Versions: the history length of a sample of tokens.
    for tid in sorted(want)[:12]:
        n = len(env.ok("history", tid, db=proj).lines)
        check(got[tid][1] == n, f"{tid}: version {got[tid][1]}, history {n}")


def write_some(env, n, tag):
    body = "".join(json.dumps({"name": f"{tag} {i}",
                               "description": f"{tag} description {i}"})
                   + "\n" for i in range(n))
    return [d["data"]["id"]
            for d in env.ok("create", "--batch", input=body).lines]


def race(env, tid):
    """Two replicas update one token at once until one loses: its event is
    in the log and every replica rejects it."""
    for i in range(15):
        barrier, res = threading.Barrier(2), {}

        def w(tag):
            barrier.wait()
            res[tag] = env.ctkn("update", tid, "--name", f"{tag}{i}",
                                db=env.path(f"racer-{tag}"))
        ts = [threading.Thread(target=w, args=(t,)) for t in "ab"]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if sorted(r.rc for r in res.values()) == [0, 1]:
            return True
    return False


def test_consumer_equals_the_projection():
    env = Env(name="pyconsumer", partitions=3)
    try:
        ids = write_some(env, 30, "bulk")
        for i, tid in enumerate(ids[:10]):
            args = ["update", tid, "--name", f"renamed {i}"]
            if i % 2:
                args.append("--no-description")
            env.ok(*args)
        for tid in ids[10:16]:
            env.ok("revoke", tid)
        for _ in range(2):  # a retried create appends one event
            env.ok("create", "--name", "keyed", "--idempotency-key", "k-1")
        check(race(env, ids[20]), "no update race produced a rejection")
        env.raw(0, "junk", b"\xff\xfe not protobuf", "client_token.created",
                "1")

        # ctkn's own account of the log: applied, rejected, quarantined.
        proj = env.path("proj")
        ref = env.ok("project", db=proj).json["data"]
        check(ref["rejected"] >= 1 and ref["quarantined"] == 1, ref)

        db = env.path("assign.sqlite")
        s, err = consume(env, db)
        check((s["applied"], s["ignored"], s["unusable"]) ==
              (ref["applied"], ref["rejected"], ref["quarantined"]),
              f"consumer {s}, ctkn {ref}: {err}")
        check(any("version already applied" in e for e in err), err)
        check(any("does not decode" in e for e in err), err)
        check_same_as_projection(env, db, proj)

        # Offsets live in the same SQLite transactions: a rerun has nothing
        # to do, and new events are all it reads next time.
        s, _ = consume(env, db)
        check(s["applied"] == 0 and s["ignored"] == 0, s)
        write_some(env, 5, "later")
        s, _ = consume(env, db)
        check(s["applied"] == 5 and s["ignored"] == 0, s)
        env.ok("project", db=proj)
        check_same_as_projection(env, db, proj)
    finally:
        env.close()


def test_group_redelivery_changes_nothing():
    env = Env(name="pygroup", partitions=3)
    try:
        ids = write_some(env, 20, "g")
        for tid in ids[:8]:
            env.ok("update", tid, "--description", "changed")
        for tid in ids[:4]:
            env.ok("revoke", tid)
        proj = env.path("proj")
        ref = env.ok("project", db=proj).json["data"]
        db = env.path("group.sqlite")
        group = f"{env.topic}-g1"
        s, _ = consume(env, db, "--group", group)
        check(s["applied"] == ref["applied"] == 32 and s["ignored"] == 0, s)
        check_same_as_projection(env, db, proj)
        # The group committed its offsets: nothing is delivered again.
        s, _ = consume(env, db, "--group", group)
        check(s["applied"] == 0 and s["ignored"] == 0, s)
        # A second group on the same SQLite is a full redelivery: every
        # event is a version the rows already have.
        s, _ = consume(env, db, "--group", f"{env.topic}-g2")
        check(s["applied"] == 0 and s["ignored"] == 32, s)
        check_same_as_projection(env, db, proj)
    finally:
        env.close()


def test_newer_schema_version_stops_it():
    env = Env(name="pyschema", partitions=1)
    try:
        write_some(env, 3, "s")
        p, off = env.raw(0, "ctkn_01jyq3v5k8q9r0s1t2v3w4x5y8", b"future",
                         "client_token.updated", "3")
        db = env.path("schema.sqlite")
        s, err = consume(env, db, rc=3)
        check(s["paused"] and s["applied"] == 3, (s, err))
        check(any("schema version 3" in e for e in err), err)
        stored = sqlite3.connect(db).execute(
            "SELECT next FROM offsets WHERE partition = ?", (p,)).fetchone()
        check(stored[0] == off, f"stored offset {stored} passed {off}")
        # ctkn's projector pauses at the same record.
        r = env.ok("project", db=env.path("proj")).json["data"]
        check(r["paused"] == 1 and r["applied"] == 3, r)
    finally:
        env.close()


if __name__ == "__main__":
    GEN, why = prepare()
    if GEN is None:
        print(f"skipped: {why}")
        print("0 passed, 0 failed, 3 skipped")
        sys.exit(0)
    main([test_consumer_equals_the_projection,
          test_group_redelivery_changes_nothing,
          test_newer_schema_version_stops_it])
