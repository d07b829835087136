"""Kafka's authorization against a real broker (the ctest fixture
"kafka_sasl": deploy/kafka/start with CTKN_KAFKA_SASL=1, SASL/PLAIN clients
and StandardAuthorizer). The test user `ctkn` starts with no ACL; `admin` is
the super user that creates the topic and grants ACLs.

A refusal is its own error, never the retryable `service_unavailable`: exit
1, code `kafka_authorization_failed` (HTTP 503 from `ctkn serve`, without
Retry-After), a detail naming the ACL to grant, and no retrying: `tail
--group` without Read on its group stops instead of retrying for ever.

Environment, besides harness.py's: CTKN_KAFKA_VERSION (the broker's; its
ACL tool's class moved in Kafka 4).
"""
import os
import subprocess
import tempfile
import time
import uuid

import harness
from harness import BROKERS, CTKN, Server, check, main, run

TIMEOUT = 5  # every command's --timeout, seconds
# A refusal must come at once, not after retrying: well inside the timeout
# plus process start, on a busy 2-core machine.
BOUND = TIMEOUT + 5


def sasl(user):
    return ["-X", "security.protocol=SASL_PLAINTEXT",
            "-X", "sasl.mechanism=PLAIN",
            "-X", f"sasl.username={user}",
            "-X", f"sasl.password={user}-secret"]


class AclEnv:
    """A topic created by admin, a scratch directory, and ctkn as the test
    user `ctkn` (no ACL until granted)."""

    def __init__(self, name="acl"):
        self.topic = f"it-{name}-{uuid.uuid4().hex[:10]}"
        self.dir = tempfile.mkdtemp(prefix=f"ctkn-{name}-")
        self.db = self.path("db")
        self.admin_conf = self.path("admin.properties")
        with open(self.admin_conf, "w") as f:
            f.write("security.protocol=SASL_PLAINTEXT\n"
                    "sasl.mechanism=PLAIN\n"
                    "sasl.jaas.config=org.apache.kafka.common.security.plain."
                    "PlainLoginModule required username=\"admin\" "
                    "password=\"admin-secret\";\n")
        self.vars = {"CTKN_TRUST_ROOT": "", "CTKN_WRITER_KEY": ""}
        r = self.ctkn("init", "--partitions", "2", user="admin")
        check(r.rc == 0, f"init as admin failed: {r}")
        # Trust, set up by admin: every reader judges, every writer signs
        # (the principal `ctkn` then needs Read on the settings topic too:
        # the grants below are prefixed).
        root, pub = harness.trust_root()
        writer = self.path("writer.key")
        scopes = [a for x in harness.WRITER_SCOPES for a in ("--scope", x)]
        r = self.ctkn("trust", "key", "add", "--root-key", root, "--name",
                      "acl", *scopes, "--out", writer, user="admin")
        check(r.rc == 0, f"trust key add as admin failed: {r}")
        self.vars = {"CTKN_TRUST_ROOT": pub, "CTKN_WRITER_KEY": writer}

    def path(self, name):
        return os.path.join(self.dir, name)

    def argv(self, *args, user="ctkn", db=None):
        return [CTKN, *args, "--topic", self.topic, "--brokers", BROKERS,
                "--db", db or self.db, "--timeout", str(TIMEOUT), *sasl(user)]

    def ctkn(self, *args, user="ctkn", db=None, timeout=60):
        return run(self.argv(*args, user=user, db=db), timeout=timeout,
                   env=self.vars)

    def grant(self, *args):
        """kafka-acls --add for User:ctkn, as admin."""
        v = os.environ.get("CTKN_KAFKA_VERSION", "") or "4"
        cls = ("org.apache.kafka.tools.AclCommand" if int(v.split(".")[0]) >= 4
               else "kafka.admin.AclCommand")
        harness.kafka_tool(cls, "--command-config", self.admin_conf, "--add",
                           "--allow-principal", "User:ctkn", *args)


def check_denied(r, acl):
    """r is an authorization failure naming acl, reported at once."""
    check(r.rc == 1, f"exit {r.rc}, expected 1: {r}")
    err = r.error
    check(err["code"] == "kafka_authorization_failed", r)
    check(acl in err["detail"], f"the detail does not name {acl!r}: {r}")
    check(r.elapsed < BOUND, f"took {r.elapsed:.1f}s: retried? {r}")


def test_no_acl_at_all():
    """No ACL: reading the topic is refused, naming Describe on it."""
    env = AclEnv()
    check_denied(env.ctkn("project"), f"Describe (Read or Write imply it) "
                 f"on topic {env.topic}")
    # Control: the same command as admin works, so the refusal is the ACL's.
    r = env.ctkn("project", user="admin", db=env.path("admin-db"))
    check(r.rc == 0, r)


def test_reader_cannot_write():
    """Read only: project works, a write is refused naming Write on the
    topic (the idempotent producer's InitProducerId is what is refused:
    since Kafka 3.0 Write on a topic grants it)."""
    env = AclEnv()
    env.grant("--operation", "Read", "--topic", env.topic,
              "--resource-pattern-type", "prefixed")
    # The keyring's reader is an assigned consumer (docs/operations.md).
    env.grant("--operation", "Describe", "--group", "ctkn")
    r = env.ctkn("project")
    check(r.rc == 0, f"project with Read failed: {r}")
    check_denied(env.ctkn("create", "--name", "denied"),
                 f"Write on topic {env.topic}")


def test_tail_group_without_group_read():
    """Read on the topic but not on the group: `tail --group` stops with
    exit 1 naming Read on the group, where it used to retry for ever. With
    Read on the group granted, the same command reads the topic."""
    env = AclEnv()
    group = f"feed-{uuid.uuid4().hex[:8]}"  # ACLs outlive a run: a new group
    env.grant("--operation", "Read", "--topic", env.topic,
              "--resource-pattern-type", "prefixed")
    env.grant("--operation", "Describe", "--group", "ctkn")
    r = env.ctkn("create", "--name", "seen", user="admin",
                 db=env.path("admin-db"))
    check(r.rc == 0, r)
    try:
        r = env.ctkn("tail", "--group", group, "--from-beginning",
                     timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("tail --group without group Read still retrying "
                             "after 60 s")
    check_denied(r, f"Read on group {group}")

    env.grant("--operation", "Read", "--group", group)
    p = subprocess.Popen(env.argv("tail", "--group", group,
                                  "--from-beginning"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env={**os.environ, **env.vars})
    try:
        line = p.stdout.readline()  # blocks until the record's line
        check('"seen"' in line, f"tail --group printed {line!r}")
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_serve_answers_503_with_its_own_code():
    """`ctkn serve` for a principal with Read only: a create is 503
    kafka_authorization_failed naming the ACL, without Retry-After (a retry
    cannot help), while reads keep working."""
    env = AclEnv()
    env.grant("--operation", "Read", "--topic", env.topic,
              "--resource-pattern-type", "prefixed")
    # An assigned consumer's group.id (docs/operations.md, "Topic ACLs").
    env.grant("--operation", "Describe", "--group", "ctkn")
    srv = Server(env, args=tuple(sasl("ctkn")) + ("--timeout", str(TIMEOUT)))
    try:
        r = srv.request("POST", "/client-tokens", {"name": "denied"})
        check(r.status == 503, r)
        err = r.json["error"]
        check(err["code"] == "kafka_authorization_failed", r)
        check(f"Write on topic {env.topic}" in err["detail"], r)
        check("retry-after" not in r.headers, f"Retry-After on a refusal: {r}")
        r = srv.request("GET", "/client-tokens", key="reader")
        check(r.status == 200, r)
    finally:
        srv.stop()


if __name__ == "__main__":
    main([test_no_acl_at_all, test_reader_cannot_write,
          test_tail_group_without_group_read,
          test_serve_answers_503_with_its_own_code])
