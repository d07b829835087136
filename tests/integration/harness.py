"""Shared helpers for ctkn's integration tests (run by ctest, label
"integration", against the real Kafka broker that the ctest fixture starts).

Environment: CTKN_BIN (the ctkn executable), CTKN_RAWPRODUCE (the test
producer), CTKN_TEST_BROKERS (bootstrap address).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

CTKN = os.environ["CTKN_BIN"]
RAW = os.environ.get("CTKN_RAWPRODUCE", "")
BROKERS = os.environ["CTKN_TEST_BROKERS"]


class Result:
    def __init__(self, proc, elapsed):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.elapsed = elapsed

    @property
    def json(self):
        return json.loads(self.out)

    @property
    def lines(self):
        return [json.loads(l) for l in self.out.splitlines() if l.strip()]

    @property
    def error(self):
        """The error envelope's "error" object from stderr."""
        first = self.err.splitlines()[0] if self.err else "{}"
        return json.loads(first)["error"]

    def __repr__(self):
        return f"rc={self.rc} out={self.out!r} err={self.err!r}"


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


class Env:
    """A fresh topic and a scratch directory for projections."""

    def __init__(self, partitions=3, name="t"):
        self.topic = f"it-{name}-{uuid.uuid4().hex[:10]}"
        self.dir = tempfile.mkdtemp(prefix=f"ctkn-{name}-")
        self.db = self.path("db")
        r = self.ctkn("init", "--partitions", str(partitions))
        check(r.rc == 0, f"init failed: {r}")

    def path(self, name):
        return os.path.join(self.dir, name)

    def ctkn(self, *args, db=None, brokers=None, timeout=60, env=None,
             input=None):
        argv = [CTKN, *args, "--topic", self.topic,
                "--brokers", brokers or BROKERS, "--db", db or self.db]
        return run(argv, timeout=timeout, env=env, input=input)

    def ok(self, *args, **kw):
        r = self.ctkn(*args, **kw)
        check(r.rc == 0, f"ctkn {' '.join(args)} failed: {r}")
        return r

    def end_offsets(self):
        r = self.ok("status", db=self.path("status-db"))
        return [p["log_end"] for p in r.json["data"]["partitions"]]

    def digest(self, db=None):
        return self.ok("digest", db=db).json["data"]

    def fresh_digest(self, name="fresh"):
        """Project the whole topic into a new directory and digest it."""
        db = self.path(name)
        shutil.rmtree(db, ignore_errors=True)
        self.ok("project", db=db)
        return self.digest(db)

    def raw(self, partition, key, value: bytes, etype="-", schema="-"):
        out = subprocess.run(
            [RAW, BROKERS, self.topic, str(partition), key, value.hex(),
             etype, schema], capture_output=True, text=True, timeout=60)
        check(out.returncode == 0, f"rawproduce failed: {out.stderr}")
        p, o = out.stdout.split()
        return int(p), int(o)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def run(argv, timeout=60, env=None, input=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=e, input=input)
    return Result(p, time.monotonic() - t0)


def main(tests):
    """Run each test function; print a summary line ctest can read."""
    failed = 0
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
            print(f"ok   {t.__name__} ({time.monotonic() - t0:.1f}s)",
                  flush=True)
        except Exception as e:  # report every failure, then fail the run
            failed += 1
            print(f"FAIL {t.__name__}: {e}", flush=True)
            import traceback
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def topic_command(*args):
    """Run Kafka's own topic admin tool (from the jar cache)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    home = os.environ.get("CTKN_KAFKA_HOME",
                          os.path.join(root, "deploy", "kafka", ".cache"))
    p = subprocess.run(
        ["java", "-Dlog4j.configuration=file:" +
         os.path.join(root, "deploy", "kafka", "tools-log4j.properties"),
         "-cp", os.path.join(home, "lib", "*"),
         "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", BROKERS,
         *args], capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"TopicCommand {args} failed: {p.stderr}")


def add_partitions(topic, total):
    topic_command("--alter", "--topic", topic, "--partitions", str(total))
